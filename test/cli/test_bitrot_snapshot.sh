#!/usr/bin/env bash
# Bit rot in a snapshot image (DATA/snap/snap-<index>-<term>.snap, CRC-32C
# over the whole file, docs/disk-format.md). With --snapshot-entries 100 a
# follower writes images of its own; it is stopped and 8 bytes in the middle
# of its newest image are inverted: its next start must refuse (exit 4,
# naming the image) rather than keep a damaged image it would send to a
# member that is behind; the two others serve every acknowledged write; the
# README's sequence brings it back under load, caught up by a snapshot.
source "$(dirname "$0")/bitrot_lib.sh"

bitrot_cluster --snapshot-entries 100
bitrot_pick_follower
bitrot_write k 1 40
bitrot_fill 300
bitrot_stop "$F"
img=$(ls -t "$WORK/$F"/snap/snap-*.snap 2>/dev/null | head -1)
[ -n "$img" ] || fail "$F wrote no snapshot image: $(ls "$WORK/$F/snap")"
size=$(stat -c %s "$img")
bitrot_flip "$img" $((size / 2))
bitrot_expect_refused "$F" "$img"
pass "$F refuses its data dir with a damaged snapshot image (${img##*/}, $size bytes, 8 bytes inverted at $((size / 2))): $REFUSAL"
bitrot_serving
pass "the two others serve all $CHECKED acknowledged writes and take new ones"
bitrot_rejoin "$F"
pass "$F removed, wiped, rejoined with --join and added under load ($REJOIN_LOADED writes meanwhile): caught up by a snapshot, all $CHECKED acknowledged writes on it"
echo "${PASSED} passed, 0 failed"
