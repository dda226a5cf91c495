#!/usr/bin/env bash
# Bit rot in an SST. A follower's WAL is replayed into SST files (a restart),
# then it is stopped and 8 bytes in the middle of its largest SST are
# inverted: its next start must refuse (exit 4, naming the file: every block
# of every column family is read and its checksum verified at open) and not
# serve; the two others keep serving every acknowledged write; the README's
# sequence (members remove, wipe, --join, members add) brings it back under a
# write load, caught up by a snapshot, with every acknowledged write on it.
source "$(dirname "$0")/bitrot_lib.sh"

bitrot_cluster --snapshot-entries 100
bitrot_pick_follower
bitrot_write k 1 40
bitrot_fill 300
bitrot_flush "$F"
sst=$(ls -S "$WORK/$F"/*.sst | head -1)
size=$(stat -c %s "$sst")
bitrot_flip "$sst" $((size / 2))
bitrot_expect_refused "$F" "$sst"
pass "$F refuses its data dir with a damaged SST (${sst##*/}, $size bytes, 8 bytes inverted at $((size / 2))): $REFUSAL"
bitrot_serving
pass "the two others serve all $CHECKED acknowledged writes and take new ones"
bitrot_rejoin "$F"
pass "$F removed, wiped, rejoined with --join and added under load ($REJOIN_LOADED writes meanwhile): caught up by a snapshot, all $CHECKED acknowledged writes on it"
echo "${PASSED} passed, 0 failed"
