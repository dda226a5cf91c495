#!/usr/bin/env bash
# A full disk: the node answers writes with a clear error, keeps serving reads,
# loses nothing it acknowledged, and does not crash. Runs in a private mount
# namespace with a small tmpfs, so nothing outlives the test.
set -euo pipefail
if [ "${DDKV_IN_NS:-}" != 1 ]; then
  if ! unshare -m true 2>/dev/null; then
    echo "SKIP: cannot create a mount namespace (needs root or user namespaces)"; exit 77
  fi
  DDKV_IN_NS=1 exec unshare -m --propagation private bash "$0" "$@"
fi
source "$(dirname "$0")/lib.sh"
mkdir -p "$WORK/small"
mount -t tmpfs -o size=24m tmpfs "$WORK/small"
cleanup_extra() { umount -l "$WORK/small"; }
start_node n1 "$WORK/small/d"
EP="127.0.0.1:$PORT_n1"
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

# The operator frees space and restarts: everything acknowledged is there, writes work.
kill -TERM "$PID_n1"; wait "$PID_n1" 2>/dev/null || true
mount -o remount,size=96m "$WORK/small"
start_node n1 "$WORK/small/d"
EP="127.0.0.1:$PORT_n1"
for i in $(seq 1 "$acked"); do
  "$DDKV" --endpoints "$EP" read "fill/$i" >"$WORK/got" || fail "fill/$i lost after restart"
  cmp -s "$WORK/got" "$WORK/val" || fail "fill/$i corrupted after restart"
done
expect_exit 0 "$DDKV" --endpoints "$EP" write after-restart ok
pass "after freeing space and a restart, all $acked acknowledged writes are intact and writes work"
kill -TERM "$PID_n1"; wait "$PID_n1" 2>/dev/null || true
echo "${PASSED} passed, 0 failed"
