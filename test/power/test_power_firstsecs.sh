#!/usr/bin/env bash
# A power cut in a node's first seconds (issue 24): `ddkv serve --data-dir
# ROOT/n1` on a fresh ROOT on lossyfs, about 1,000 acknowledged writes in its
# first seconds, then kill -9 and `crash` (everything never fsynced is gone:
# file contents at their last fsync, directory entries at their directory's
# last fsync). The same command started again must find every acknowledged
# write: the data dir's entry in ROOT, and everything in it, was made
# durable before the first acknowledgement.
source "$(dirname "$0")/lib.sh"
WRITER=${POWER_WRITER_BIN:-$(dirname "$DDKV")/test/ddkv-power-writer}
[ -x "$WRITER" ] || fail "writer not found at $WRITER (set POWER_WRITER_BIN)"
N=${POWER_WRITES:-1000}

lossy_mount disk
ROOT=$LOSSY_MNT

# check_all LABEL EP ACKED: every key in ACKED reads back (one LIST).
check_all() {
  local label=$1 ep=$2 acked=$3
  expect_exit 0 "$DDKV" --endpoints "$ep" list p/
  printf '%s\n' "$OUT" | cut -f1 | sed '/^$/d' | sort >"$WORK/got"
  sort "$acked" >"$WORK/want"
  local want got missing
  want=$(wc -l <"$WORK/want")
  got=$(comm -12 "$WORK/want" "$WORK/got" | wc -l)
  missing=$((want - got))
  echo "$label: $got of $want acknowledged writes survived the power cut"
  [ "$missing" -eq 0 ] || fail "$label: $missing of $want acknowledged writes lost ($got kept; e.g. $(comm -23 "$WORK/want" "$WORK/got" | head -3 | tr '\n' ' '))"
}

# --- one node, the issue's command: a fresh data dir in an existing ROOT
t0=$(date +%s.%N)
start_node n1 "$ROOT/n1"
"$WRITER" "127.0.0.1:$PORT_n1" 8 "$N" p 15 >"$WORK/acked1" || fail "the writer got $(wc -l <"$WORK/acked1") of $N writes acknowledged"
t1=$(date +%s.%N)
lossy_ctl disk report
echo "before the cut ($("$PY" -c "print(round($t1 - $t0, 1))") s after the start):"; echo "$OUT"
lossy_power_cut disk "$PID_n1"
echo "$OUT"
start_node n1 "$ROOT/n1"
check_all "one node" "127.0.0.1:$PORT_n1" "$WORK/acked1"
pass "one node, fresh data dir: $N writes in the first seconds, power cut, all there"

# The restarted node keeps working, and a second cut right after new writes
# loses nothing either.
"$WRITER" "127.0.0.1:$PORT_n1" 4 200 p/again 15 >>"$WORK/acked1" || fail "writes after the restart"
lossy_power_cut disk "$PID_n1"
start_node n1 "$ROOT/n1"
check_all "one node, second cut" "127.0.0.1:$PORT_n1" "$WORK/acked1"
kill -TERM "$PID_n1"; wait "$PID_n1" 2>/dev/null || true
pass "a second power cut after 200 more writes: all there"

# --- a data dir whose parents are missing too: the node creates them (mkdir
# -p), each made durable in its parent before the first acknowledgement.
start_node n2 "$ROOT/x/y/n2"
"$WRITER" "127.0.0.1:$PORT_n2" 8 300 p 15 >"$WORK/acked2" || fail "the writer got $(wc -l <"$WORK/acked2") of 300 writes acknowledged"
lossy_power_cut disk "$PID_n2"
start_node n2 "$ROOT/x/y/n2"
check_all "missing parents" "127.0.0.1:$PORT_n2" "$WORK/acked2"
kill -TERM "$PID_n2"; wait "$PID_n2" 2>/dev/null || true
pass "a data dir with two missing parents, created by the node: 300 writes, power cut, all there"

echo "$PASSED passed, 0 failed"
