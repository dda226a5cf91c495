#!/usr/bin/env bash
# Named series under a fleet (issue 23 item 3): a 3-node ddkv cluster and
# `ddkv hub` on loopback, AGENTS simulated agents writing SERIES series each
# at 1 Hz as `ddkv agent` does, and chart queries of the hub (window=1h and
# window=24h, alternately) for --duration-s seconds. Reports the agents'
# write p50/p99, the hub's chart query p50/p99 per window, and the CPU and
# resident memory of the hub and each node (bench/series_agents.c says how
# the simulation is scaled into one process on a small machine).
#
#   bench/seriesload.sh [--agents 1000] [--series 5] [--threads 50]
#                       [--duration-s 30] [--history-agents 10] [--query-rate 10]
#
# Builds the release first (DDKV_BUILD_DIR=DIR: use DIR's binaries). Ports:
# a block at DDKV_PORT_BASE picked in 32700-32790 and checked free. Data and
# logs under var/seriesload/STAMP/ (the data removed at the end); the JSON
# goes to bench/results/seriesload-DATE.json. Every process is stopped by PID
# on exit, failure included.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
BT=(python3 "$ROOT/bench/benchtool.py")
die() { echo "seriesload.sh: $*" >&2; exit 1; }
say() { echo "seriesload: $*" >&2; }
args=()
while (($#)); do
    case $1 in
    --agents | --series | --threads | --duration-s | --history-agents | --query-rate)
        [[ ${2:-} =~ ^[0-9]+([.][0-9]+)?$ ]] || die "$1 wants a number"; args+=("$1" "$2"); shift 2 ;;
    -h | --help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) die "unknown argument $1" ;;
    esac
done
if [[ -n ${DDKV_BUILD_DIR:-} ]]; then BUILD=$(cd "$DDKV_BUILD_DIR" && pwd); else
    scripts/build.sh release >/dev/null || die "scripts/build.sh release failed"; BUILD=$ROOT/build; fi
export DDKV_BIN=$BUILD/ddkv
TOOL=$BUILD/ddkv-bench-series
[[ -x $TOOL ]] || die "no $TOOL (CMakeLists.txt builds it from bench/series_agents.c)"
stamp=$(date -u +%Y%m%dT%H%M%SZ)
RUN=$ROOT/var/seriesload/$stamp
mkdir -p "$RUN" bench/results
export DDKV_CLUSTER_DIR=$RUN/cluster
export DDKV_PORT_BASE=${DDKV_PORT_BASE:-$("${BT[@]}" free-base 32700 32790 10 1 2 3 50 101 102 103 201 202 203)}
HUB_ADDR=127.0.0.1:$((DDKV_PORT_BASE + 50))
TOOL_PID="" HUB_PID=""
stop_pid() {
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
    rm -rf "$DDKV_CLUSTER_DIR"/n[0-9]
}
trap cleanup EXIT
trap 'exit 130' INT TERM
say "$(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg); cluster at base $DDKV_PORT_BASE, output in ${RUN#"$ROOT"/}"
deploy/cluster.sh start 3 >"$RUN/cluster.start.log" 2>&1 || { cat "$RUN/cluster.start.log" >&2; die "the cluster did not come up"; }
EPS=$(deploy/cluster.sh endpoints)
"$DDKV_BIN" hub --endpoints "$EPS" --http-addr "$HUB_ADDR" --web-dir "$ROOT/web" >"$RUN/hub.log" 2>&1 </dev/null &
HUB_PID=$!
for ((t = 0; t < 100; t++)); do curl -fsS -o /dev/null "http://$HUB_ADDR/health" 2>/dev/null && break; sleep 0.1; done
curl -fsS -o /dev/null "http://$HUB_ADDR/health" || die "the hub did not answer (see $RUN/hub.log)"
pids=(--pid "hub=$HUB_PID")
for i in 1 2 3; do pids+=(--pid "n$i=$(cat "$DDKV_CLUSTER_DIR/n$i.pid")"); done
rc=0
"$TOOL" --endpoints "$EPS" --hub "$HUB_ADDR" "${args[@]}" "${pids[@]}" >"$RUN/result.json" 2> >(tee "$RUN/tool.log" >&2) &
TOOL_PID=$!
wait "$TOOL_PID" || rc=$?
TOOL_PID=""
[[ -s $RUN/result.json ]] || die "no result (exit $rc; see $RUN/tool.log)"
out=bench/results/seriesload-$(date -u +%Y-%m-%d).json
[[ -e $out ]] && out=bench/results/seriesload-$(date -u +%Y-%m-%dT%H%M).json
cp "$RUN/result.json" "$out"
"${BT[@]}" meta "$out" "date=$(date -u +%FT%TZ)" "nproc:=$(nproc)" \
    "cpu_model=$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1)" "exit_code:=$rc" "run_dir=${RUN#"$ROOT"/}"
echo "machine: $(nproc) cores; load average now $(cut -d' ' -f1-3 /proc/loadavg); result: $out"
exit "$rc"
