#!/usr/bin/env bash
# Bit rot in the write-ahead log.
# (a) A follower is killed (-9: no clean stop) and 8 bytes in the middle of
#     its newest WAL are inverted: a damaged record with whole records after
#     it. RocksDB's point-in-time recovery would replay up to it and drop
#     every record after it in silence (acknowledged entries and hard state
#     included); the member must refuse to start (exit 4, naming the WAL).
#     The undamaged copy, put back, starts (a crash is not damage).
# (b) After a clean stop (SIGTERM), the last 8 bytes of its newest WAL (the
#     last record: what a torn write would look like after a crash) are
#     inverted: the clean-stop marker says that log ended whole, so it must
#     refuse too.
# Meanwhile the two others serve every acknowledged write; then the README's
# sequence brings it back under load, caught up by a snapshot.
source "$(dirname "$0")/bitrot_lib.sh"

newest_wal() { find "$1" -maxdepth 1 -name '[0-9]*.log' | sort | tail -1; }

bitrot_cluster --snapshot-entries 100
bitrot_pick_follower
bitrot_write k 1 40
bitrot_fill 300
bitrot_crash "$F"
cp -a "$WORK/$F" "$WORK/$F.pristine"
wal=$(newest_wal "$WORK/$F")
size=$(stat -c %s "$wal")
[ "$size" -ge 20000 ] || fail "$F's newest WAL holds only $size bytes"
bitrot_flip "$wal" $((size / 2))
bitrot_expect_refused "$F" "$wal"
pass "(a) after kill -9, a WAL damaged in the middle (${wal##*/}, $size bytes, at $((size / 2))) is refused: $REFUSAL"

rm -rf "${WORK:?}/$F"
cp -a "$WORK/$F.pristine" "$WORK/$F"
bitrot_start "$F"
bitrot_eps
bitrot_write k 41 50 # into its new WAL (the restart replayed the old one into SSTs)
port=PORT_$F
for _ in $(seq 100); do
  [ "$("$DDKV" --endpoints "127.0.0.1:${!port}" read --consistency stale k/50 2>/dev/null || true)" = "$(bitrot_val 50)" ] && break
  sleep 0.1
done
bitrot_stop "$F"
[ -f "$WORK/$F/ddkv-clean-stop" ] || fail "$F's clean stop left no marker: $(ls "$WORK/$F")"
wal=$(newest_wal "$WORK/$F")
size=$(stat -c %s "$wal")
[ "$size" -ge 16 ] || fail "$F's newest WAL after a clean stop holds only $size bytes"
bitrot_flip "$wal" $((size - 8))
bitrot_expect_refused "$F" "$wal"
pass "(b) the undamaged copy starts; after a clean stop, its WAL's last record damaged (${wal##*/}, last 8 of $size bytes) is refused: $REFUSAL"

bitrot_serving
pass "the two others serve all $CHECKED acknowledged writes and take new ones"
bitrot_rejoin "$F"
pass "$F removed, wiped, rejoined with --join and added under load ($REJOIN_LOADED writes meanwhile): caught up by a snapshot, all $CHECKED acknowledged writes on it"
echo "${PASSED} passed, 0 failed"
