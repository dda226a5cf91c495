#!/usr/bin/env bash
# Bit rot in the Raft hard state (term, vote, commit: the raft_state column
# family's hard_state key, docs/disk-format.md), where it lives on disk:
# (a) in the WAL: a follower is killed (-9) and the value of the first
#     hard_state record in its newest WAL is inverted (older hard states
#     and entries follow it): it must refuse to start (exit 4, naming the
#     WAL), not replay up to it and drop the rest;
# (b) in an SST: the undamaged copy is put back, its WAL replayed into SST
#     files (a restart), and the value after the hard_state key in the SST
#     that holds it is inverted: it must refuse (exit 4, naming the SST).
# The two others serve every acknowledged write; the README's sequence
# brings it back under load, caught up by a snapshot.
source "$(dirname "$0")/bitrot_lib.sh"

newest_wal() { find "$1" -maxdepth 1 -name '[0-9]*.log' | sort | tail -1; }

bitrot_cluster --snapshot-entries 100
bitrot_pick_follower
bitrot_write k 1 40
bitrot_fill 300
bitrot_crash "$F"
cp -a "$WORK/$F" "$WORK/$F.pristine"
wal=$(newest_wal "$WORK/$F")
off=$(bitrot_offset "$wal" hard_state first) || fail "no hard_state record in $wal"
bitrot_flip "$wal" "$off"
bitrot_expect_refused "$F" "$wal"
pass "(a) a hard state record damaged in the WAL (${wal##*/} at $off) is refused: $REFUSAL"

rm -rf "${WORK:?}/$F"
cp -a "$WORK/$F.pristine" "$WORK/$F"
bitrot_start "$F"
bitrot_flush "$F"
sst=$(grep -l hard_state "$WORK/$F"/*.sst | head -1)
[ -n "$sst" ] || fail "no SST of $F holds the hard state: $(ls "$WORK/$F")"
off=$(bitrot_offset "$sst" hard_state first)
bitrot_flip "$sst" "$off"
bitrot_expect_refused "$F" "$sst"
pass "(b) the hard state damaged in its SST (${sst##*/} at $off) is refused: $REFUSAL"

bitrot_serving
pass "the two others serve all $CHECKED acknowledged writes and take new ones"
bitrot_rejoin "$F"
pass "$F removed, wiped, rejoined with --join and added under load ($REJOIN_LOADED writes meanwhile): caught up by a snapshot, all $CHECKED acknowledged writes on it"
echo "${PASSED} passed, 0 failed"
