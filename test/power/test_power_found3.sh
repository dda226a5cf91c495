#!/usr/bin/env bash
# A power cut of a whole new 3-node cluster within a second of its founding
# (issue 24): three members, each with its data dir on its own lossyfs, are
# founded, take writes for one second, and then all lose power at once
# (kill -9, then `crash` on every mount). Started again with the same
# commands, they must hold every acknowledged write: each was on a
# majority's disk, and so was each member's data dir and identity.
source "$(dirname "$0")/lib.sh"
WRITER=${POWER_WRITER_BIN:-$(dirname "$DDKV")/test/ddkv-power-writer}
[ -x "$WRITER" ] || fail "writer not found at $WRITER (set POWER_WRITER_BIN)"

free_port_block
base=$DDKV_PORT_BASE
spec="m1=127.0.0.1:$((base + 101)),m2=127.0.0.1:$((base + 102)),m3=127.0.0.1:$((base + 103))"
for i in 1 2 3; do lossy_mount "disk$i"; done
start_all() {
  for i in 1 2 3; do
    start_node "m$i" "$WORK/disk$i/m$i" --cluster "$spec" --peer-addr "127.0.0.1:$((base + 100 + i))"
  done
  EPS="127.0.0.1:$PORT_m1,127.0.0.1:$PORT_m2,127.0.0.1:$PORT_m3"
}
start_all
# The first write waits for the first leader; then one second of writes.
expect_exit 0 "$DDKV" --endpoints "$EPS" --timeout-ms 15000 write p/first x
echo p/first >"$WORK/acked"
"$WRITER" "$EPS" 8 100000 p 1 >>"$WORK/acked" || true
acked=$(wc -l <"$WORK/acked")
[ "$acked" -ge 50 ] || fail "only $acked writes acknowledged in the first second"
for i in 1 2 3; do p=PID_m$i; kill -9 "${!p}" 2>/dev/null || true; done
for i in 1 2 3; do
  p=PID_m$i; wait "${!p}" 2>/dev/null || true
  lossy_ctl "disk$i" crash
  echo "m$i: $OUT"
done
start_all
expect_exit 0 "$DDKV" --endpoints "$EPS" --timeout-ms 20000 list p/
printf '%s\n' "$OUT" | cut -f1 | sed '/^$/d' | sort >"$WORK/got"
sort "$WORK/acked" >"$WORK/want"
kept=$(comm -12 "$WORK/want" "$WORK/got" | wc -l)
echo "three members: $kept of $acked acknowledged writes survived the power cut of all members"
[ "$kept" -eq "$acked" ] || fail "$((acked - kept)) of $acked acknowledged writes lost (e.g. $(comm -23 "$WORK/want" "$WORK/got" | head -3 | tr '\n' ' '))"
pass "3 members founded, $acked writes in one second, power cut of all: every acknowledged write survives"
for i in 1 2 3; do p=PID_m$i; kill -TERM "${!p}"; wait "${!p}" 2>/dev/null || true; done
echo "$PASSED passed, 0 failed"
