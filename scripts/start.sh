#!/usr/bin/env bash
# The main job: install what is missing, build, and start a local 3-node ddkv
# cluster on loopback (data, logs and PIDs under var/cluster/), then print how
# to talk to it. The nodes keep running in the background; stop them with
# `deploy/cluster.sh stop`. Running this again is harmless (running members are
# left alone, stopped ones are started).
#
#   DDKV_MEMBERS=5 scripts/start.sh     a 5-node cluster instead
#   DDKV_PORT_BASE=9000 scripts/start.sh  clients on 9001.., peers 9101.., HTTP 9201..
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh
scripts/build.sh release
N=${DDKV_MEMBERS:-3}
deploy/cluster.sh start "$N"
EP=$(deploy/cluster.sh endpoints)
BASE=${DDKV_PORT_BASE:-7000}
HUB=127.0.0.1:$((BASE + 80))
DIR=${DDKV_CLUSTER_DIR:-var/cluster}
# The hub and a local agent (also a job worker), in the background like the
# nodes, their PIDs next to the nodes'; an earlier pair is stopped first.
for p in hub agent; do
  if [ -f "$DIR/$p.pid" ] && kill -0 "$(cat "$DIR/$p.pid")" 2>/dev/null; then
    kill "$(cat "$DIR/$p.pid")" 2>/dev/null || true
    sleep 0.5
  fi
done
nohup build/ddkv hub --endpoints "$EP" --http-addr "$HUB" >>"$DIR/hub.log" 2>&1 &
echo $! >"$DIR/hub.pid"
nohup build/ddkv agent --endpoints "$EP" --name "$(hostname)" --worker >>"$DIR/agent.log" 2>&1 &
echo $! >"$DIR/agent.pid"
for _ in $(seq 50); do
  curl -sf "http://$HUB/health" >/dev/null 2>&1 && break
  sleep 0.1
done
cat <<MSG

ddkv is running: $N nodes on 127.0.0.1 (data in $DIR/), the hub, and an agent
reporting this machine (and processing jobs).

  Dashboard:  http://$HUB/

Try:
  export DDKV_ENDPOINTS=$EP
  build/ddkv write greeting hello
  build/ddkv read greeting
  build/ddkv status
  build/ddkv job submit readings.csv   # then watch it on the dashboard
  deploy/cluster.sh kill n1        # a crash: the others elect a leader and carry on
  deploy/cluster.sh restart n1     # it comes back and catches up
  deploy/cluster.sh stop           # stop every node, the hub and the agent; data survives

MSG
