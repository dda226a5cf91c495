#!/usr/bin/env bash
# ddkv bench against a one-node cluster: each workload completes operations
# with no error, the JSON has every figure, the cas workload's counter ends at
# exactly the number of increments it reported, an unreachable cluster ends the run
# with exit 3, and a bad flag is a usage error. Open loop (--rate) keeps its
# rate and never counts a negative latency; the watch workload receives every
# event it is owed, once per watch.
source "$(dirname "$0")/lib.sh"
start_node n1 "$WORK/d1"
EP="127.0.0.1:$PORT_n1"
for wl in write read mixed cas; do
  expect_exit 0 "$DDKV" bench --endpoints "$EP" --workload "$wl" --clients 4 --duration-s 0.5 \
    --warmup-s 0 --keys 50 -o json
  echo "$OUT" | python3 -c '
import json, sys
r = json.loads(sys.stdin.read())
need = ["workload", "clients", "ops", "ops_per_s", "latency_ms", "errors", "unknown", "driver_cpu_pct"]
missing = [k for k in need if k not in r]
assert not missing, missing
assert r["workload"] == sys.argv[1], r
assert r["ops"] > 0 and r["ops_per_s"] > 0, r
assert r["errors"] == 0 and r["unknown"] == 0, r
l = r["latency_ms"]
assert 0 < l["p50"] <= l["p90"] <= l["p99"] <= l["p99_9"] <= l["max"], l
' "$wl" || fail "bench $wl: $OUT"
done
pass "write, read, mixed and cas each complete operations without error; the JSON is complete"

# Open loop: the rate is kept, and no latency is out of this world (a timer
# that fired early once made one wrap around to 1.8e13 ms).
expect_exit 0 "$DDKV" bench --endpoints "$EP" --workload write --clients 8 --rate 400 --duration-s 1.5 \
  --warmup-s 0.2 -o json
echo "$OUT" | python3 -c '
import json, sys
r = json.loads(sys.stdin.read())
assert 340 <= r["ops_per_s"] <= 460, r
l = r["latency_ms"]
assert 0 < l["p50"] <= l["p99"] <= l["p99_9"] <= l["max"] < 10000, l
' || fail "open loop: $OUT"
pass "open loop at 400/s: the rate is kept and every latency is sane"

# Watch: 30 watches, 7 to a connection (5 connections, the last with 2);
# every measured write's event reaches every watch, none twice.
expect_exit 0 "$DDKV" bench --endpoints "$EP" --workload watch --watchers 30 --watches-per-conn 7 \
  --clients 4 --rate 300 --duration-s 1 --warmup-s 0.3 --value-size 20 -o json
echo "$OUT" | python3 -c '
import json, sys
r = json.loads(sys.stdin.read())
w = r["watch"]
assert r["workload"] == "watch" and r["errors"] == 0 and r["unknown"] == 0, r
assert w["watchers"] == 30 and w["connections"] == 5, w
assert w["events_expected"] == 30 * r["ops"] > 0, (r["ops"], w)
assert w["events"] == w["events_expected"] and w["events_missing"] == 0, w
assert w["watches_lost"] == 0 and w["other_frames"] == 0, w
for k in ("event_latency_ms", "ack_to_event_ms"):
    l = w[k]
    assert 0 <= l["p50"] <= l["p99"] <= l["max"] < 10000, (k, l)
assert w["event_latency_ms"]["p50"] > 0, w
' || fail "watch: $OUT"
pass "watch: 30 watches on 5 connections receive each measured write's event exactly once"

# The counter: prefilled to 0, then one increment per reported op (no
# warm-up, and the run settles every increment in flight before it ends).
expect_exit 0 "$DDKV" bench --endpoints "$EP" --workload cas --clients 8 --ops 300 --warmup-s 0 -o json
ops=$(echo "$OUT" | python3 -c 'import json,sys; r = json.load(sys.stdin); assert r["unknown"] == 0 and r["errors"] == 0, r; print(r["ops"])') ||
  fail "cas run: $OUT"
expect_exit 0 "$DDKV" read --endpoints "$EP" bench/counter
[ "$OUT" = "$ops" ] || fail "counter is $OUT after $ops reported increments"
pass "cas: 8 clients, the counter ends at exactly the $ops increments reported"

# Nobody listens: --ops cannot be reached, and the bench gives up after
# --timeout-ms with exit 3 instead of reconnecting forever.
dead=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
t0=$(date +%s%N)
expect_exit 3 "$DDKV" bench --endpoints "127.0.0.1:$dead" --workload write --clients 4 --ops 10 --timeout-ms 1000
ms=$(( ($(date +%s%N) - t0) / 1000000 ))
(( ms < 5000 )) || fail "bench against nobody took $ms ms to give up"
pass "against an unreachable endpoint the bench stops after --timeout-ms (${ms} ms) with exit 3"

expect_exit 2 "$DDKV" bench --endpoints "$EP" --workload nosuch
expect_exit 2 "$DDKV" bench --endpoints "$EP" --read-ratio 2
pass "bad flags are usage errors"
echo "${PASSED} passed, 0 failed"
