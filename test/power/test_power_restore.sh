#!/usr/bin/env bash
# A power cut right after a backup and right after a restore (issue 24): the
# backup file `ddkv snapshot save` wrote to a lossyfs mount, and the data dir
# `ddkv snapshot restore` built there, must both survive `crash` once the
# command has exited 0; the restored member then serves every key.
source "$(dirname "$0")/lib.sh"
WRITER=${POWER_WRITER_BIN:-$(dirname "$DDKV")/test/ddkv-power-writer}
[ -x "$WRITER" ] || fail "writer not found at $WRITER (set POWER_WRITER_BIN)"

lossy_mount disk
D=$LOSSY_MNT
start_node src "$WORK/src"
"$WRITER" "127.0.0.1:$PORT_src" 8 500 p 15 >"$WORK/acked" || fail "the writer got $(wc -l <"$WORK/acked") of 500 writes acknowledged"
expect_exit 0 "$DDKV" snapshot save "$D/backup.ddkv" --endpoints "127.0.0.1:$PORT_src"
kill -TERM "$PID_src"; wait "$PID_src" 2>/dev/null || true
lossy_ctl disk crash
echo "after the save: $OUT"
[ -s "$D/backup.ddkv" ] || fail "the backup file did not survive a power cut after save exited 0"
pass "a saved backup survives a power cut"

sort "$WORK/acked" >"$WORK/want"
# restore_and_cut NAME DIR: restore into DIR, power cut, serve it: every key.
restore_and_cut() {
  local name=$1 dir=$2 kept
  expect_exit 0 "$DDKV" snapshot restore "$D/backup.ddkv" --data-dir "$dir" --name "$name"
  lossy_ctl disk crash
  echo "after the restore into $dir: $OUT"
  start_node "$name" "$dir"
  local port=PORT_$name pid=PID_$name
  expect_exit 0 "$DDKV" --endpoints "127.0.0.1:${!port}" list p/
  printf '%s\n' "$OUT" | cut -f1 | sed '/^$/d' | sort >"$WORK/got"
  kept=$(comm -12 "$WORK/want" "$WORK/got" | wc -l)
  echo "restored member $name: $kept of 500 keys after the power cut"
  [ "$kept" -eq 500 ] || fail "the restored data dir $dir lost $((500 - kept)) of 500 keys in a power cut after restore exited 0"
  kill -TERM "${!pid}"; wait "${!pid}" 2>/dev/null || true
}
restore_and_cut r1 "$D/r1"
pass "a restored data dir survives a power cut: 500 of 500 keys"
restore_and_cut r2 "$D/restored/r2"
pass "a restored data dir with a missing parent, created by restore, survives a power cut: 500 of 500 keys"
echo "$PASSED passed, 0 failed"
