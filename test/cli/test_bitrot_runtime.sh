#!/usr/bin/env bash
# Bit rot found at run time. A follower's WAL is replayed into SST files (a
# restart), it is started again, and while it runs 8 bytes in the middle of
# every one of its SSTs are inverted. Reading every acknowledged key from it
# (stale reads, served locally, in order until one is refused) must never
# return a wrong value: a read whose block fails its checksum is refused,
# and the member fences itself with a
# log line naming the file (no vote, no acknowledgement, no read or write
# served), without crashing. The two others serve every acknowledged write;
# the README's sequence brings it back under load, caught up by a snapshot.
source "$(dirname "$0")/bitrot_lib.sh"

bitrot_cluster --snapshot-entries 100
bitrot_pick_follower
bitrot_write k 1 40
bitrot_fill 300
bitrot_flush "$F"
bitrot_start "$F"
pid=PID_$F
port=PORT_$F
FEP="127.0.0.1:${!port}"
sleep 1 # let a compaction the restart started end
n=0
for sst in "$WORK/$F"/*.sst; do
  size=$(stat -c %s "$sst" 2>/dev/null) || continue
  bitrot_flip "$sst" $((size / 2))
  n=$((n + 1))
done
right=0 refused=0
while IFS=$'\t' read -r k v; do
  set +e
  out=$("$DDKV" --endpoints "$FEP" --timeout-ms 1000 read --consistency stale "$k" 2>/dev/null)
  rc=$?
  set -e
  if [ $rc -eq 0 ]; then
    [ "$out" = "$v" ] || fail "$k read '${out:0:40}' from the damaged $F"
    right=$((right + 1))
  else
    refused=$((refused + 1))
    break # fenced now: every later read is refused (checked below)
  fi
done <"$ACKED"
[ $refused -gt 0 ] || fail "no read met the damage ($right right): the test did not hit a block"
wait_log "$F" "reading the store failed: .*Corruption.*\.sst.*stops taking part in consensus and refuses writes and reads" 10
kill -0 "${!pid}" 2>/dev/null || fail "$F exited instead of fencing itself"
line=$(grep -m1 "reading the store failed" "$WORK/$F.log" | sed 's/^[^ ]* ERROR [^ ]* //' | cut -c1-200)
pass "$n SSTs damaged under the running $F: $right reads right, $refused refused, none wrong; it fenced: $line"
set +e
"$DDKV" --endpoints "$FEP" --timeout-ms 1500 read --consistency stale k/1 >/dev/null 2>"$WORK/err"
rc=$?
set -e
[ $rc -ne 0 ] && grep -q "damaged" "$WORK/err" || fail "the fenced $F served a read (exit $rc: $(cat "$WORK/err"))"
readerr=$(head -c 160 "$WORK/err" | tr '\n' ' ')
set +e
"$DDKV" --endpoints "$FEP" --timeout-ms 1500 write via-damaged x >/dev/null 2>"$WORK/err"
rc=$?
set -e
[ $rc -ne 0 ] || fail "the fenced $F took a write"
pass "the fenced $F refuses reads ($readerr) and writes, and keeps running"
bitrot_stop "$F"
bitrot_serving
pass "the two others serve all $CHECKED acknowledged writes and take new ones"
bitrot_rejoin "$F"
pass "$F removed, wiped, rejoined with --join and added under load ($REJOIN_LOADED writes meanwhile): caught up by a snapshot, all $CHECKED acknowledged writes on it"
echo "${PASSED} passed, 0 failed"
