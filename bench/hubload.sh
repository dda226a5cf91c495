#!/usr/bin/env bash
# The hub under a fleet: a 3-node ddkv cluster and `ddkv hub` on loopback,
# AGENTS simulated agents writing a sample a second each (with --backfill-min
# minutes of history written first), and 20 GETs a second of
# /api/clients/<id>/metrics (the hub's default 40-minute window, ~2400 points
# per answer), for --duration-s seconds. It answers: does the hub answer
# under 50 ms at p99, and does the cluster hold the load (no failed write,
# every keepalive on time)?
#
#   bench/hubload.sh [--agents 50] [--duration-s 60] [--backfill-min 40]
#                    [--query-rate 20] [--query-threads 2]
#
# The load and the measurements are build/ddkv-bench-hub-agents
# (bench/hub_agents.c): the agents write exactly what `ddkv agent` writes,
# and queries are sent on a schedule (latency counted from when each was
# due). Prints its summary, the machine (cores, CPU model, load average: the
# figures mean little without it) and the CPU use of the hub and each node
# over the timed phase with their resident memory at the end; the JSON goes
# to bench/results/hubload-DATE.json.
#
# Builds the release first (scripts/build.sh release, into build/);
# DDKV_BUILD_DIR=DIR uses the binaries already built in DIR instead. Ports:
# a block at DDKV_PORT_BASE (client BASE+1..3, peer BASE+101..103, ops HTTP
# BASE+201..203, hub BASE+50) picked in 32600-32690 and checked free. Data and
# logs under var/hubload/STAMP/ (the data is removed at the end, the logs
# stay); every process is stopped by PID on exit, failure included.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
BT=(python3 "$ROOT/bench/benchtool.py")

usage() { sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; }
die() { echo "hubload.sh: $*" >&2; exit 1; }
say() { echo "hubload: $*" >&2; }

agents=50 duration_s=60 backfill_min=40 query_rate=20 query_threads=2
while (($#)); do
    case $1 in
    --agents) agents=${2:?}; shift 2 ;;
    --duration-s) duration_s=${2:?}; shift 2 ;;
    --backfill-min) backfill_min=${2:?}; shift 2 ;;
    --query-rate) query_rate=${2:?}; shift 2 ;;
    --query-threads) query_threads=${2:?}; shift 2 ;;
    -h | --help) usage; exit 0 ;;
    *) usage >&2; exit 2 ;;
    esac
done
for v in agents duration_s backfill_min query_threads; do
    [[ ${!v} =~ ^[0-9]+$ ]] || die "--${v//_/-} wants a whole number"
done
[[ $query_rate =~ ^[0-9]+([.][0-9]+)?$ ]] || die "--query-rate wants a number"

# --- the binaries -----------------------------------------------------------
if [[ -n ${DDKV_BUILD_DIR:-} ]]; then
    BUILD=$(cd "$DDKV_BUILD_DIR" && pwd)
else
    if ! scripts/build.sh release >/dev/null; then
        say "build failed; trying once more in 60 s (the tree may be mid-edit)"
        sleep 60
        scripts/build.sh release >/dev/null || die "scripts/build.sh release failed"
    fi
    BUILD=$ROOT/build
fi
export DDKV_BIN=$BUILD/ddkv
TOOL=$BUILD/ddkv-bench-hub-agents
[[ -x $DDKV_BIN ]] || die "no $DDKV_BIN"
[[ -x $TOOL ]] || die "no $TOOL (CMakeLists.txt builds it from bench/hub_agents.c)"

stamp=$(date -u +%Y%m%dT%H%M%SZ)
RUN=$ROOT/var/hubload/$stamp
mkdir -p "$RUN" bench/results
export DDKV_CLUSTER_DIR=$RUN/cluster
export DDKV_PORT_BASE=${DDKV_PORT_BASE:-$("${BT[@]}" free-base 32600 32690 10 1 2 3 50 101 102 103 201 202 203)}
HUB_ADDR=127.0.0.1:$((DDKV_PORT_BASE + 50))

# --- processes, stopped by PID whatever happens -----------------------------
TOOL_PID="" HUB_PID=""
stop_pid() { # stop_pid PID: TERM, up to 10 s, then KILL
    local pid=$1 t
    kill -0 "$pid" 2>/dev/null || return 0
    kill -TERM "$pid" 2>/dev/null
    for ((t = 0; t < 100; t++)); do kill -0 "$pid" 2>/dev/null || return 0; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null || true
}
cleanup() {
    set +e
    [[ -n $TOOL_PID ]] && stop_pid "$TOOL_PID"
    [[ -n $HUB_PID ]] && stop_pid "$HUB_PID"
    [[ -f $DDKV_CLUSTER_DIR/size ]] && deploy/cluster.sh stop >/dev/null 2>&1
    rm -rf "$DDKV_CLUSTER_DIR"/n[0-9] # the data; logs stay
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# --- the cluster and the hub ------------------------------------------------
say "$(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg);" \
    "cluster at base $DDKV_PORT_BASE, output in ${RUN#"$ROOT"/}"
deploy/cluster.sh start 3 >"$RUN/cluster.start.log" 2>&1 ||
    { cat "$RUN/cluster.start.log" >&2; die "the cluster did not come up"; }
EPS=$(deploy/cluster.sh endpoints)
"$DDKV_BIN" hub --endpoints "$EPS" --http-addr "$HUB_ADDR" --web-dir "$ROOT/web" >"$RUN/hub.log" 2>&1 </dev/null &
HUB_PID=$!
for ((t = 0; t < 100; t++)); do
    curl -fsS -o /dev/null "http://$HUB_ADDR/health" 2>/dev/null && break
    kill -0 "$HUB_PID" 2>/dev/null || { cat "$RUN/hub.log" >&2; die "the hub exited"; }
    sleep 0.1
done
curl -fsS -o /dev/null "http://$HUB_ADDR/health" || die "the hub's /health did not answer within 10 s (see $RUN/hub.log)"

# --- the run ----------------------------------------------------------------
pids=(--pid "hub=$HUB_PID")
for i in 1 2 3; do pids+=(--pid "n$i=$(cat "$DDKV_CLUSTER_DIR/n$i.pid")"); done
rc=0
"$TOOL" --endpoints "$EPS" --hub "$HUB_ADDR" --agents "$agents" --duration-s "$duration_s" \
    --backfill-min "$backfill_min" --query-rate "$query_rate" --query-threads "$query_threads" \
    "${pids[@]}" -o json >"$RUN/result.json" 2> >(tee "$RUN/tool.log" >&2) &
TOOL_PID=$!
wait "$TOOL_PID" || rc=$?
TOOL_PID=""
[[ -s $RUN/result.json ]] || die "no result (exit $rc; see $RUN/tool.log)"

# --- the machine, the verdict, the file -------------------------------------
cpu_model=$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1)
leader=$("${BT[@]}" ddkv-leader "$DDKV_BIN" "$EPS" 2>/dev/null | cut -d' ' -f1 || true)
out=bench/results/hubload-$(date -u +%Y-%m-%d).json
[[ -e $out ]] && out=bench/results/hubload-$(date -u +%Y-%m-%dT%H%M).json
cp "$RUN/result.json" "$out"
"${BT[@]}" meta "$out" "date=$(date -u +%FT%TZ)" "nproc:=$(nproc)" "cpu_model=$cpu_model" \
    "leader=${leader:-?}" "exit_code:=$rc" "run_dir=${RUN#"$ROOT"/}"
p99=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["hub_p99_ms"])' "$out")
verdict=$(python3 -c 'import sys; print("under" if float(sys.argv[1]) < 50 else "NOT under")' "$p99")
echo
echo "machine: $(nproc) cores, $cpu_model; load average now $(cut -d' ' -f1-3 /proc/loadavg)"
held="no failed write, keepalive or query"
((rc == 0)) || held="some operations failed: see $RUN/tool.log"
echo "hub p99 $p99 ms: $verdict 50 ms; the tool exited $rc ($held)"
echo "result: $out"
exit "$rc"
