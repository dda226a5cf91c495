#!/usr/bin/env bash
# A torn write is not bit rot. The WAL check that refuses a damaged record
# with whole records after it (test/cli/test_bitrot_wal.sh) must not refuse
# what a power cut leaves: one node on lossyfs, under 8 writers, is cut
# (kill -9, then `crash-torn SEED`: every file back to its last fsync, and
# the last unsynced write of each surviving in part, with garbage to the end
# of its page half the time, after unwritten space when earlier unsynced
# writes were lost) four times with fixed seeds. Each time it must start
# again (no refusal) with every write ever acknowledged.
source "$(dirname "$0")/lib.sh"
WRITER=${POWER_WRITER_BIN:-$(dirname "$DDKV")/test/ddkv-power-writer}
[ -x "$WRITER" ] || fail "writer not found at $WRITER (set POWER_WRITER_BIN)"

lossy_mount disk
D=$LOSSY_MNT/n1
: >"$WORK/acked"
torn=0 holes=0
for round in 1 2 3 4; do
  start_node n1 "$D"
  "$WRITER" "127.0.0.1:$PORT_n1" 8 100000 "p/$round" 1 >"$WORK/acked.$round" &
  wpid=$!
  PIDS+=("$wpid")
  sleep "0.$((4 + round))"
  kill -9 "$PID_n1"; wait "$PID_n1" 2>/dev/null || true
  lossy_ctl disk crash-torn "$((1000 + round))"
  wait "$wpid" 2>/dev/null || true
  cat "$WORK/acked.$round" >>"$WORK/acked"
  start_node n1 "$D" # fails the test if it refuses to start
  grep -q "damaged record" "$WORK/n1.log" && fail "round $round: a torn power cut judged as damage: $(grep 'damaged' "$WORK/n1.log")"
  grep -q "torn write" "$WORK/n1.log" && torn=$((torn + 1))
  grep -q "unwritten space" "$WORK/n1.log" && holes=$((holes + 1))
  expect_exit 0 "$DDKV" --endpoints "127.0.0.1:$PORT_n1" list p/
  printf '%s\n' "$OUT" | cut -f1 | sed '/^$/d' | sort >"$WORK/got"
  sort "$WORK/acked" >"$WORK/want"
  missing=$(comm -23 "$WORK/want" "$WORK/got" | wc -l)
  [ "$missing" -eq 0 ] || fail "round $round: $missing of $(wc -l <"$WORK/want") acknowledged writes lost"
  kill -9 "$PID_n1"; wait "$PID_n1" 2>/dev/null || true
done
pass "4 torn power cuts under 8 writers: the node started every time ($torn with a torn WAL tail logged, $holes of them after unwritten space), $(wc -l <"$WORK/acked") acknowledged writes all there"
echo "$PASSED passed, 0 failed"
