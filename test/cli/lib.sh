# Shared by the CLI tests: start ddkv nodes on 127.0.0.1 with kernel-picked
# ports, stop them by PID on exit whatever happens, and assert helpers.
set -euo pipefail
DDKV=${DDKV_BIN:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)/build/ddkv}
[ -x "$DDKV" ] || { echo "ddkv binary not found at $DDKV (set DDKV_BIN)" >&2; exit 1; }
WORK=$(mktemp -d "${TMPDIR:-/tmp}/ddkv-cli-XXXXXX")
PIDS=()
cleanup() {
  local rc=$?
  for p in "${PIDS[@]}"; do kill -9 "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done
  if declare -F cleanup_extra >/dev/null; then cleanup_extra || true; fi
  if [ $rc -ne 0 ]; then
    echo "--- node logs (test failed) ---" >&2
    tail -n 20 "$WORK"/*.log >&2 2>/dev/null || true
  fi
  rm -rf "$WORK"
  exit $rc
}
trap cleanup EXIT

fail() { echo "FAIL: $*" >&2; exit 1; }
pass() { echo "ok - $*"; PASSED=$((${PASSED:-0} + 1)); }

# start_node NAME DATA_DIR [extra flags...]: sets PID_<NAME> and PORT_<NAME>.
start_node() {
  local name=$1 dir=$2; shift 2
  local log="$WORK/$name.log"
  : >"$log"
  local name_flag=(--name "$name")
  [ "${NONAME:-}" = 1 ] && name_flag=()   # let env or a config file name the node
  "$DDKV" serve "${name_flag[@]}" --data-dir "$dir" --client-addr 127.0.0.1:0 "$@" 2>>"$log" &
  local pid=$!
  PIDS+=("$pid")
  local port=
  for _ in $(seq 300); do
    port=$(grep -o 'client listening on 127.0.0.1:[0-9]*' "$log" | tail -1 | cut -d: -f2 || true)
    [ -n "$port" ] && break
    kill -0 "$pid" 2>/dev/null || fail "node $name exited at start: $(tail -3 "$log")"
    sleep 0.1
  done
  [ -n "$port" ] || fail "node $name did not start"
  printf -v "PID_$name" '%s' "$pid"
  printf -v "PORT_$name" '%s' "$port"
}

# expect_exit CODE cmd...: run, check the exit code, keep stdout in $OUT.
expect_exit() {
  local want=$1; shift
  set +e
  OUT=$("$@" 2>"$WORK/stderr")
  local got=$?
  set -e
  ERR=$(cat "$WORK/stderr")
  [ "$got" -eq "$want" ] || fail "'$*' exited $got, want $want (stderr: $ERR)"
}

# free_port_block: set DDKV_PORT_BASE to a random base whose cluster ports
# (client BASE+1..3, peer BASE+101..103, HTTP BASE+201..203, as
# deploy/cluster.sh uses them) are all free on 127.0.0.1. Bases stay below
# the kernel's ephemeral range (32768..), where outgoing connections of
# parallel tests would take ports from under us.
free_port_block() {
  local base ok off
  for _ in $(seq 50); do
    # 300 apart: a block spans base+1..203 (hub +80), so no two blocks overlap
    # even when two tests pick at the same moment, before either listens.
    base=$((20000 + (RANDOM % 40) * 300))
    ok=1
    for off in 1 2 3 101 102 103 201 202 203; do
      if (exec 3<>"/dev/tcp/127.0.0.1/$((base + off))") 2>/dev/null; then ok=0; break; fi
    done
    [ $ok = 1 ] && { export DDKV_PORT_BASE=$base; return 0; }
  done
  fail "no free port block"
}

# wait_log NAME PATTERN [SECONDS]: wait until node NAME's log has a line
# matching the extended regex PATTERN; fail after SECONDS (default 30).
wait_log() {
  local name=$1 pat=$2 secs=${3:-30}
  local i
  for ((i = 0; i < secs * 10; i++)); do
    grep -Eq "$pat" "$WORK/$name.log" && return 0
    sleep 0.1
  done
  fail "node $name did not log /$pat/ within $secs s: $(tail -3 "$WORK/$name.log")"
}

# http_port NAME: the ops HTTP port node NAME logged (started with --http-addr 127.0.0.1:0).
http_port() {
  grep -o 'http listening on 127.0.0.1:[0-9]*' "$WORK/$1.log" | tail -1 | cut -d: -f2
}

# metric_value HOSTPORT NAME: one unlabelled series of /metrics ("" if absent).
metric_value() {
  python3 - "$1" "$2" <<'PY'
import sys, urllib.request
m = urllib.request.urlopen("http://" + sys.argv[1] + "/metrics", timeout=5).read().decode()
for ln in m.split("\n"):
    if ln.startswith(sys.argv[2] + " "):
        print(ln.split(" ", 1)[1])
        break
PY
}

# Stop the cluster start_cluster made; any member still alive after that (a
# stop that could not run) is killed by the PID in its pid file.
stop_cluster_members() {
  "$_LIB_CLUSTER_SH" stop >/dev/null 2>&1 || true
  local f p
  for f in "$DDKV_CLUSTER_DIR"/*.pid; do
    [ -f "$f" ] || continue
    p=$(cat "$f")
    if grep -q ddkv "/proc/$p/cmdline" 2>/dev/null; then
      echo "warning: $(basename "$f" .pid) (pid $p) outlived cluster.sh stop; killed" >&2
      kill -9 "$p" 2>/dev/null || true
    fi
  done
}

# start_cluster N: a local N-node cluster by deploy/cluster.sh on a free port
# block (DDKV_PORT_BASE), data and logs under $WORK/cluster, stopped at exit;
# sets ROOT and EP (its client endpoints).
start_cluster() {
  ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
  _LIB_CLUSTER_SH=$ROOT/deploy/cluster.sh # kept apart: a test may reuse ROOT
  export DDKV_BIN=$DDKV DDKV_CLUSTER_DIR=$WORK/cluster
  cleanup_extra() { stop_cluster_members; }
  free_port_block
  "$ROOT/deploy/cluster.sh" start "$1" >/dev/null
  EP=$("$ROOT/deploy/cluster.sh" endpoints)
}

# For a start_cluster member NAME (n1..nN): its ops HTTP and client address.
member_http() { echo "127.0.0.1:$((DDKV_PORT_BASE + 200 + ${1#n}))"; }
member_client() { echo "127.0.0.1:$((DDKV_PORT_BASE + ${1#n}))"; }

# status_field NAME EXPR: a python expression over s, member NAME's /status
# JSON, and m, its members by name.
status_field() {
  python3 - "$(member_http "$1")" "$2" <<'PY'
import json, sys, urllib.request
s = json.load(urllib.request.urlopen("http://" + sys.argv[1] + "/status", timeout=5))
m = {x["name"]: x for x in s.get("members", [])}
print(eval(sys.argv[2]))
PY
}

# status_leader: the member of a 3-node start_cluster that says it leads.
status_leader() {
  local n
  for n in n1 n2 n3; do
    [ "$(status_field "$n" 's["role"]' 2>/dev/null)" = leader ] && { echo "$n"; return 0; }
  done
  return 1
}
