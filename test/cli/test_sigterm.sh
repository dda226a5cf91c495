#!/usr/bin/env bash
# SIGTERM to the leader of a 3-node cluster under write load: it hands
# leadership to a follower before it stops, so no write fails, and the pause
# the writers see is an election's round trip, not an election timeout.
source "$(dirname "$0")/lib.sh"
start_cluster 3
leader() { "$DDKV" ping --endpoints "$EP" -o json | python3 -c 'import json,sys; print(json.load(sys.stdin)["leader"])'; }
L=$(leader)
PID=$(cat "$DDKV_CLUSTER_DIR/$L.pid")

"$DDKV" bench --endpoints "$EP" --workload write --clients 4 --duration-s 6 --warmup-s 0 --timeout-ms 5000 -o json \
  >"$WORK/bench.json" 2>"$WORK/bench.err" &
BENCH=$!
PIDS+=($BENCH)
sleep 2
t0=$(date +%s%3N)
kill -TERM "$PID"
for _ in $(seq 50); do kill -0 "$PID" 2>/dev/null || break; sleep 0.1; done
kill -0 "$PID" 2>/dev/null && fail "$L still runs 5 s after SIGTERM"
took=$(($(date +%s%3N) - t0))
LOG=$DDKV_CLUSTER_DIR/$L.log
grep -q "handing leadership to" "$LOG" || fail "$L did not hand leadership over: $(tail -5 "$LOG")"
grep -q "leadership handed over" "$LOG" || fail "$L stopped before another member led: $(tail -5 "$LOG")"
grep -E "handing|handed|stopp" "$LOG" | tail -4
pass "SIGTERM: the leader $L handed leadership over and stopped (gone from the process table $took ms after the signal, reaping included)"

wait "$BENCH" || fail "bench failed: $(cat "$WORK/bench.err")"
python3 - "$WORK/bench.json" <<'PY' || fail "writes failed across the handover: $(cat "$WORK/bench.json")"
import json, sys
r = json.load(open(sys.argv[1]))
assert r["errors"] == 0 and r["unknown"] == 0 and r["ops"] > 0, r
print("ok - no write failed across it: %d writes, the longest took %.0f ms (p99 %.1f ms)"
      % (r["ops"], r["latency_ms"]["max"], r["latency_ms"]["p99"]))
PY
PASSED=$((PASSED + 1))
N=$(leader)
[ -n "$N" ] && [ "$N" != "$L" ] || fail "no new leader after the handover"
echo "${PASSED} passed, 0 failed"
