#!/usr/bin/env bash
# fsyncs that fail with EIO (issue 16): a one-member cluster on lossyfs whose
# fsyncs start failing must fence itself as on a full disk -- the write whose
# sync failed is not acknowledged, later writes are refused, reads are still
# served -- and rejoin by itself, without a restart, once fsyncs work again
# (it reopens its store); the writes acknowledged before survive a power cut.
source "$(dirname "$0")/lib.sh"

lossy_mount disk
start_node n1 "$WORK/disk/n1"
EP="127.0.0.1:$PORT_n1"
for i in 1 2 3 4 5; do expect_exit 0 "$DDKV" --endpoints "$EP" write "before/$i" "v$i"; done

lossy_ctl disk fail-fsync 1000000
expect_exit 3 "$DDKV" --endpoints "$EP" --timeout-ms 3000 write failed x
echo "the write whose sync failed: $ERR"
expect_exit 3 "$DDKV" --endpoints "$EP" --timeout-ms 3000 write refused x
grep -q "I/O error" <<<"$ERR" || fail "a write while fenced was not refused as an I/O error: $ERR"
kill -0 "$PID_n1" || fail "the node exited on a failed fsync"
expect_exit 0 "$DDKV" --endpoints "$EP" read --consistency stale before/3
[ "$OUT" = v3 ] || fail "a stale read while fenced returned '$OUT'"
pass "failed fsyncs: the write is not acknowledged, the next is refused (I/O error), reads are served"

lossy_ctl disk fail-fsync 0
ok=0
for _ in $(seq 100); do
  if "$DDKV" --endpoints "$EP" --timeout-ms 2000 write after x >/dev/null 2>&1; then ok=1; break; fi
  sleep 0.2
done
[ "$ok" = 1 ] || fail "the node did not take writes again within 20 s of fsyncs working (log: $(grep -E 'ERROR|WARN' "$WORK/n1.log" | tail -3))"
grep -q "store reopened after an I/O error" "$WORK/n1.log" || fail "the store was not reopened"
kill -0 "$PID_n1" || fail "the node restarted"
pass "fsyncs work again: the node rejoined by itself (store reopened) and takes writes"

lossy_power_cut disk "$PID_n1"
start_node n1 "$WORK/disk/n1"
EP="127.0.0.1:$PORT_n1"
for i in 1 2 3 4 5; do
  expect_exit 0 "$DDKV" --endpoints "$EP" --timeout-ms 15000 read "before/$i"
  [ "$OUT" = "v$i" ] || fail "before/$i is '$OUT' after the power cut"
done
expect_exit 0 "$DDKV" --endpoints "$EP" read after
pass "after a power cut every acknowledged write is there"
kill -TERM "$PID_n1"; wait "$PID_n1" 2>/dev/null || true
echo "$PASSED passed, 0 failed"
