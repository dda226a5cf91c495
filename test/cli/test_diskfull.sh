#!/usr/bin/env bash
# A full disk: the node answers writes with a clear error, keeps serving reads,
# loses nothing it acknowledged, and does not crash; once space returns it
# rejoins by itself, in the same process, with everything it acknowledged.
# Then three members, one follower on a small disk: the other two keep taking
# writes while it is full, and once space returns it catches up (same process)
# and holds what the leader holds. Runs in a private mount namespace with
# small tmpfs mounts, so nothing outlives the test.
set -euo pipefail
if [ "${DDKV_IN_NS:-}" != 1 ]; then
  if ! unshare -m true 2>/dev/null; then
    echo "SKIP: cannot create a mount namespace (needs root or user namespaces)"; exit 77
  fi
  DDKV_IN_NS=1 exec unshare -m --propagation private bash "$0" "$@"
fi
source "$(dirname "$0")/lib.sh"
mkdir -p "$WORK/small" "$WORK/small3"
mount -t tmpfs -o size=24m tmpfs "$WORK/small"
cleanup_extra() { umount -l "$WORK/small"; umount -l "$WORK/small3" 2>/dev/null || true; }
start_node n1 "$WORK/small/d" --http-addr 127.0.0.1:0
EP="127.0.0.1:$PORT_n1"
HTTP="127.0.0.1:$(http_port n1)"
head -c $((256 * 1024)) /dev/urandom >"$WORK/val"
acked=0
full=0
for i in $(seq 1 400); do
  set +e
  "$DDKV" --endpoints "$EP" write "fill/$i" - <"$WORK/val" >/dev/null 2>"$WORK/err"
  rc=$?
  set -e
  if [ $rc -eq 0 ]; then acked=$i; continue; fi
  [ $rc -eq 3 ] || fail "write on a full disk exited $rc: $(cat "$WORK/err")"
  grep -qi "disk full\|no space" "$WORK/err" || fail "unclear error on a full disk: $(cat "$WORK/err")"
  full=1
  break
done
[ $full -eq 1 ] || fail "the disk never filled (acked $acked writes)"
pass "a write on a full disk gets a clear error (after $acked acknowledged writes)"
kill -0 "$PID_n1" || fail "the node died on a full disk"
expect_exit 0 "$DDKV" --endpoints "$EP" ping
for i in 1 $((acked / 2)) $acked; do
  "$DDKV" --endpoints "$EP" read "fill/$i" >"$WORK/got" || fail "acknowledged fill/$i unreadable on a full disk"
  cmp -s "$WORK/got" "$WORK/val" || fail "fill/$i corrupted"
done
pass "the node keeps serving reads of every acknowledged write"
echo "$(cat "$WORK/err")" | head -1
expect_exit 3 "$DDKV" --endpoints "$EP" --timeout-ms 1000 write after-full x
echo "$ERR" | grep -q "refused" || fail "later write: unclear error: $ERR"
pass "later writes are refused up front with a clear message"
[ "$(metric_value "$HTTP" ddkv_storage_failed)" = 1 ] || fail "/metrics does not show the fence"

# Space returns while the node runs (the operator grows the volume): within a
# few seconds it takes writes again, without a restart.
mount -o remount,size=96m "$WORK/small"
t0=$(date +%s%N)
ok=0
for _ in $(seq 120); do
  if "$DDKV" --endpoints "$EP" --timeout-ms 2000 write after-space ok >/dev/null 2>"$WORK/err"; then ok=1; break; fi
  sleep 0.25
done
secs=$(( ($(date +%s%N) - t0) / 1000000 ))
[ $ok = 1 ] || fail "writes still refused 30 s after space returned: $(cat "$WORK/err")"
kill -0 "$PID_n1" 2>/dev/null || fail "the node died"
[ "$(grep -c 'client listening on' "$WORK/n1.log")" = 1 ] || fail "the node restarted"
grep -q "storage writable again: rejoining" "$WORK/n1.log" || fail "no rejoin logged"
pass "after space returned, writes succeed again in ${secs} ms, same process (pid $PID_n1), rejoin logged"
for i in $(seq 1 "$acked"); do
  "$DDKV" --endpoints "$EP" read "fill/$i" >"$WORK/got" || fail "fill/$i lost after the rejoin"
  cmp -s "$WORK/got" "$WORK/val" || fail "fill/$i corrupted after the rejoin"
done
expect_exit 0 "$DDKV" --endpoints "$EP" read after-space
[ "$OUT" = ok ] || fail "after-space reads '$OUT'"
pass "all $acked acknowledged writes are intact after the rejoin"
for i in $(seq 1 20); do
  expect_exit 0 "$DDKV" --endpoints "$EP" write "more/$i" - <"$WORK/val"
done
for i in 1 20; do
  "$DDKV" --endpoints "$EP" read --consistency linearizable "more/$i" >"$WORK/got" || fail "more/$i unreadable"
  cmp -s "$WORK/got" "$WORK/val" || fail "more/$i corrupted"
done
kill -0 "$PID_n1" 2>/dev/null || fail "the node died after the rejoin"
[ "$(metric_value "$HTTP" ddkv_storage_recoveries_total)" = 1 ] || fail "/metrics does not count the rejoin"
[ "$(metric_value "$HTTP" ddkv_storage_failed)" = 0 ] || fail "/metrics still shows the fence"
pass "the node stays up and keeps taking writes; /metrics counts one recovery"
kill -TERM "$PID_n1"; wait "$PID_n1" 2>/dev/null || true
grep -q "stopped cleanly" "$WORK/n1.log" || fail "n1 did not stop cleanly"

# --- Three members; m3, a follower, on a 16 MiB disk. m1 and m2 start first
# and elect a leader between them, so m3 joins as a follower.
free_port_block
base=$DDKV_PORT_BASE
mount -t tmpfs -o size=16m tmpfs "$WORK/small3"
spec="m1=127.0.0.1:$((base + 101)),m2=127.0.0.1:$((base + 102)),m3=127.0.0.1:$((base + 103))"
start_node m1 "$WORK/m1" --cluster "$spec" --peer-addr "127.0.0.1:$((base + 101))"
start_node m2 "$WORK/m2" --cluster "$spec" --peer-addr "127.0.0.1:$((base + 102))"
EP12="127.0.0.1:$PORT_m1,127.0.0.1:$PORT_m2"
expect_exit 0 "$DDKV" --endpoints "$EP12" --timeout-ms 15000 write warm up
start_node m3 "$WORK/small3/d" --cluster "$spec" --peer-addr "127.0.0.1:$((base + 103))"
EP3="127.0.0.1:$PORT_m3"
EPS="$EP12,$EP3"
for _ in $(seq 100); do
  [ "$("$DDKV" --endpoints "$EP3" read --consistency stale warm 2>/dev/null || true)" = up ] && break
  sleep 0.1
done
[ "$("$DDKV" --endpoints "$EP3" read --consistency stale warm 2>/dev/null || true)" = up ] || fail "m3 never caught up"
val3() { printf '%06d' "$1"; cat "$WORK/val"; }
n=0
after=-1
for i in $(seq 1 300); do
  val3 "$i" >"$WORK/v"
  expect_exit 0 "$DDKV" --endpoints "$EPS" --timeout-ms 15000 write "big/$i" - <"$WORK/v"
  kill -0 "$PID_m3" 2>/dev/null || fail "m3 died as its disk filled: $(tail -2 "$WORK/m3.log")"
  n=$i
  if [ $after -lt 0 ] && grep -q "stops taking part in consensus" "$WORK/m3.log"; then after=0; fi
  if [ $after -ge 0 ]; then after=$((after + 1)); [ $after -ge 10 ] && break; fi
done
[ $after -ge 10 ] || fail "m3's disk never filled ($n writes)"
grep "stops taking part" "$WORK/m3.log" | head -1 | grep -qi "no space\|disk full" || fail "m3 fenced for another reason: $(grep 'stops taking part' "$WORK/m3.log" | head -1)"
kill -0 "$PID_m3" 2>/dev/null || fail "m3 died on a full disk"
pass "m3's disk filled; the majority kept accepting writes ($n acknowledged, $after of them after m3 was fenced)"
expect_exit 0 "$DDKV" --endpoints "$EP3" read --consistency stale warm
[ "$OUT" = up ] || fail "m3 stale read while fenced: '$OUT'"

mount -o remount,size=160m "$WORK/small3"
wait_log m3 "storage writable again: rejoining" 30
caught=0
for _ in $(seq 300); do
  if "$DDKV" --endpoints "$EP3" read --consistency stale "big/$n" >"$WORK/got" 2>/dev/null; then
    val3 "$n" | cmp -s - "$WORK/got" && { caught=1; break; }
  fi
  sleep 0.1
done
[ $caught = 1 ] || fail "m3 did not catch up to big/$n within 30 s of rejoining"
kill -0 "$PID_m3" 2>/dev/null || fail "m3 died"
[ "$(grep -c 'client listening on' "$WORK/m3.log")" = 1 ] || fail "m3 restarted"
for i in $(seq 1 "$n"); do
  "$DDKV" --endpoints "$EP3" read --consistency stale "big/$i" >"$WORK/got" || fail "big/$i missing on m3"
  "$DDKV" --endpoints "$EPS" read --consistency linearizable "big/$i" >"$WORK/lead" || fail "big/$i unreadable"
  val3 "$i" | cmp -s - "$WORK/got" || fail "big/$i differs on m3"
  cmp -s "$WORK/lead" "$WORK/got" || fail "big/$i: m3 and the leader differ"
done
expect_exit 0 "$DDKV" --endpoints "$EPS" write after-m3 ok
pass "space returned: m3 rejoined (same pid $PID_m3), caught up, and holds all $n acknowledged writes as the leader does"
for m in m1 m2 m3; do
  p=PID_$m
  kill -TERM "${!p}"; wait "${!p}" 2>/dev/null || true
done
echo "${PASSED} passed, 0 failed"
