#!/usr/bin/env bash
# Bit rot in the MANIFEST. A follower's WAL is replayed into SST files (a
# restart, so the MANIFEST lists them), it is stopped, and 8 bytes in the
# middle of its MANIFEST are inverted: its next start must refuse (exit 4,
# naming the MANIFEST) and not serve; the two others keep serving every
# acknowledged write; the README's sequence brings it back under load,
# caught up by a snapshot, with every acknowledged write on it.
source "$(dirname "$0")/bitrot_lib.sh"

bitrot_cluster --snapshot-entries 100
bitrot_pick_follower
bitrot_write k 1 40
bitrot_fill 300
bitrot_flush "$F"
man=$(ls "$WORK/$F"/MANIFEST-* | head -1)
size=$(stat -c %s "$man")
bitrot_flip "$man" $((size / 2))
bitrot_expect_refused "$F" "$man"
pass "$F refuses its data dir with a damaged MANIFEST (${man##*/}, $size bytes, 8 bytes inverted at $((size / 2))): $REFUSAL"
bitrot_serving
pass "the two others serve all $CHECKED acknowledged writes and take new ones"
bitrot_rejoin "$F"
pass "$F removed, wiped, rejoined with --join and added under load ($REJOIN_LOADED writes meanwhile): caught up by a snapshot, all $CHECKED acknowledged writes on it"
echo "${PASSED} passed, 0 failed"
