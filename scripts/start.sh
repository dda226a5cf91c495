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
cat <<MSG

ddkv is running: $N nodes on 127.0.0.1 (data in var/cluster/). Try:
  export DDKV_ENDPOINTS=$EP
  build/ddkv write greeting hello
  build/ddkv read greeting
  build/ddkv status
  curl -s http://127.0.0.1:$((BASE + 201))/status; curl -s http://127.0.0.1:$((BASE + 201))/metrics | head
  deploy/cluster.sh kill n1        # a crash: the others elect a leader and carry on
  deploy/cluster.sh restart n1     # it comes back and catches up
  deploy/cluster.sh stop           # stop every node; data survives in var/cluster/

MSG
