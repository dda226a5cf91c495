#!/usr/bin/env bash
# A torn final write after a crash is truncated on restart, not fatal.
# (a) One node: acknowledged writes, kill -9, then a partial record (a header
#     announcing 4 KiB, and 100 bytes of it) appended to the newest RocksDB
#     WAL, as a crash in the middle of an append leaves it: the node starts,
#     says it dropped a torn write, and every acknowledged key is there.
# (b) Three members: kill -9 a follower and cut the last few dozen bytes off
#     its newest WAL (a torn tail of entries the other two hold): it starts,
#     catches up, and serves every key the cluster acknowledged.
# The data dir is the RocksDB directory itself (WAL files NNNNNN.log; the
# snapshot images live in DATA/snap).
source "$(dirname "$0")/lib.sh"

# newest_wal DIR: the highest-numbered WAL file in DIR.
newest_wal() {
  find "$1" -maxdepth 1 -name '[0-9]*.log' | sort | tail -1
}

# --- (a) one node, a partial record appended
start_node n1 "$WORK/d1"
EP="127.0.0.1:$PORT_n1"
N=40
for i in $(seq 1 "$N"); do
  expect_exit 0 "$DDKV" --endpoints "$EP" write "k/$i" "value-$i-$(printf '%0200d' "$i")"
done
kill -9 "$PID_n1"; wait "$PID_n1" 2>/dev/null || true
wal=$(newest_wal "$WORK/d1")
[ -n "$wal" ] || fail "no WAL file in $WORK/d1: $(ls "$WORK/d1")"
size_before=$(stat -c %s "$wal")
python3 - "$wal" <<'PY'
import os, struct, sys
# A record header (masked CRC, length, type FULL) announcing 4096 bytes, then
# only 100 of them: an append cut short by the crash.
with open(sys.argv[1], "ab") as f:
    f.write(os.urandom(4) + struct.pack("<HB", 4096, 1) + os.urandom(100))
PY
start_node n1 "$WORK/d1"
EP="127.0.0.1:$PORT_n1"
grep -q "ends in a torn write" "$WORK/n1.log" || fail "the node did not say it dropped a torn write: $(head -5 "$WORK/n1.log")"
grep "ends in a torn write" "$WORK/n1.log" | grep -q "the last 107 bytes (from offset $size_before)" ||
  fail "the torn write is not reported where it was made (offset $size_before): $(grep 'torn' "$WORK/n1.log")"
for i in $(seq 1 "$N"); do
  expect_exit 0 "$DDKV" --endpoints "$EP" read "k/$i"
  [ "$OUT" = "value-$i-$(printf '%0200d' "$i")" ] || fail "k/$i reads '$OUT' after the torn write"
done
expect_exit 0 "$DDKV" --endpoints "$EP" write after-torn ok
pass "a torn WAL append after kill -9: the node starts, logs that it dropped it, and all $N acknowledged keys are there"
# And again: the tail RocksDB truncated does not come back, and the new writes stay.
kill -9 "$PID_n1"; wait "$PID_n1" 2>/dev/null || true
start_node n1 "$WORK/d1"
EP="127.0.0.1:$PORT_n1"
grep -q "torn write" "$WORK/n1.log" && fail "a torn write reported again on the next start"
expect_exit 0 "$DDKV" --endpoints "$EP" read after-torn
[ "$OUT" = ok ] || fail "after-torn reads '$OUT'"
expect_exit 0 "$DDKV" --endpoints "$EP" read "k/$N"
pass "the next restart finds a clean log and every write"
kill -TERM "$PID_n1"; wait "$PID_n1" 2>/dev/null || true

# --- (b) three members, a follower's WAL loses its last bytes
free_port_block
base=$DDKV_PORT_BASE
spec="m1=127.0.0.1:$((base + 101)),m2=127.0.0.1:$((base + 102)),m3=127.0.0.1:$((base + 103))"
for i in 1 2 3; do
  start_node "m$i" "$WORK/m$i" --cluster "$spec" --peer-addr "127.0.0.1:$((base + 100 + i))"
done
EPS="127.0.0.1:$PORT_m1,127.0.0.1:$PORT_m2,127.0.0.1:$PORT_m3"
expect_exit 0 "$DDKV" --endpoints "$EPS" --timeout-ms 15000 write warm up
leader=$("$DDKV" --endpoints "$EPS" ping | sed -n 's/.*leader \(m[0-9]\).*/\1/p')
[ -n "$leader" ] || fail "no leader in ping"
f=m1; [ "$leader" = m1 ] && f=m2
M=60
for i in $(seq 1 "$M"); do
  expect_exit 0 "$DDKV" --endpoints "$EPS" write "c/$i" "val-$i-$(printf '%0300d' "$i")"
done
fpid=PID_$f
kill -9 "${!fpid}"; wait "${!fpid}" 2>/dev/null || true
wal=$(newest_wal "$WORK/$f")
[ -n "$wal" ] || fail "no WAL file in $WORK/$f"
size=$(stat -c %s "$wal")
[ "$size" -ge 200 ] || fail "$f's newest WAL holds only $size bytes"
truncate -s $((size - 48)) "$wal"
# Keep writing while it is down: the catch-up is more than the lost tail.
for i in $(seq $((M + 1)) $((M + 15))); do
  expect_exit 0 "$DDKV" --endpoints "$EPS" --timeout-ms 15000 write "c/$i" "val-$i-$(printf '%0300d' "$i")"
done
M=$((M + 15))
n=${f#m}
start_node "$f" "$WORK/$f" --cluster "$spec" --peer-addr "127.0.0.1:$((base + 100 + n))"
fport=PORT_$f
EPF="127.0.0.1:${!fport}"
torn=$(grep -c "torn write" "$WORK/$f.log" || true)
caught=0
for _ in $(seq 300); do
  if [ "$("$DDKV" --endpoints "$EPF" read --consistency stale "c/$M" 2>/dev/null || true)" = "val-$M-$(printf '%0300d' "$M")" ]; then
    caught=1; break
  fi
  sleep 0.1
done
[ $caught = 1 ] || fail "$f did not catch up within 30 s after its WAL tail was cut"
for i in $(seq 1 "$M"); do
  expect_exit 0 "$DDKV" --endpoints "$EPF" read --consistency stale "c/$i"
  [ "$OUT" = "val-$i-$(printf '%0300d' "$i")" ] || fail "c/$i on $f reads '$OUT'"
done
expect_exit 0 "$DDKV" --endpoints "$EPF" read --consistency stale warm
expect_exit 0 "$DDKV" --endpoints "$EPS" write after-cut ok
pass "a follower ($f) whose WAL lost its last 48 bytes starts (torn write logged: $torn), catches up, and serves all $M acknowledged keys"
for i in 1 2 3; do
  p=PID_m$i
  kill -TERM "${!p}"; wait "${!p}" 2>/dev/null || true
done
echo "${PASSED} passed, 0 failed"
