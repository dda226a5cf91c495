#!/usr/bin/env bash
# The CLI against a real node: the issue's acceptance path (write, read, kill -9,
# restart, read), exit codes, stdin values, JSON output, env and config.
source "$(dirname "$0")/lib.sh"

start_node n1 "$WORK/d1"
EP="127.0.0.1:$PORT_n1"

expect_exit 0 "$DDKV" --endpoints "$EP" write k v
[[ "$OUT" =~ ^written\ at\ [0-9]+\ rev\ [0-9]+$ ]] || fail "write printed '$OUT'"
rev1=$(echo "$OUT" | awk '{print $5}')
lam1=$(echo "$OUT" | awk '{print $3}')
pass "write prints the Lamport time and revision ($OUT)"

expect_exit 0 "$DDKV" --endpoints "$EP" read k
[ "$OUT" = "v" ] || fail "read printed '$OUT'"
[ "$("$DDKV" --endpoints "$EP" read k | od -An -c | tr -d ' \n')" = "v" ] || fail "read added bytes to the value"
pass "read prints the value alone, no newline when not a terminal"

expect_exit 0 "$DDKV" --endpoints "$EP" write k v2
lam2=$(echo "$OUT" | awk '{print $3}'); rev2=$(echo "$OUT" | awk '{print $5}')
[ "$lam2" -gt "$lam1" ] && [ "$rev2" -gt "$rev1" ] || fail "Lamport/revision did not grow: $lam1/$rev1 -> $lam2/$rev2"
pass "each write gets a later Lamport time and revision"

kill -9 "$PID_n1"; wait "$PID_n1" 2>/dev/null || true
start_node n1 "$WORK/d1"
EP="127.0.0.1:$PORT_n1"
expect_exit 0 "$DDKV" --endpoints "$EP" read k
[ "$OUT" = "v2" ] || fail "after kill -9 and restart, read printed '$OUT'"
expect_exit 0 "$DDKV" --endpoints "$EP" write k3 v3
lam3=$(echo "$OUT" | awk '{print $3}')
[ "$lam3" -gt "$lam2" ] || fail "Lamport went backwards after restart: $lam2 -> $lam3"
pass "kill -9 and restart: acknowledged writes survive, the clock keeps rising"

expect_exit 1 "$DDKV" --endpoints "$EP" read nosuch
[ -z "$OUT" ] || fail "read of a missing key printed '$OUT'"
pass "read of a missing key exits 1"

expect_exit 0 "$DDKV" --endpoints "$EP" delete k3
expect_exit 1 "$DDKV" --endpoints "$EP" delete k3
expect_exit 1 "$DDKV" --endpoints "$EP" read k3
pass "delete, then delete again exits 1"

head -c 5000 /dev/urandom >"$WORK/bin.in"
expect_exit 0 "$DDKV" --endpoints "$EP" write blob - <"$WORK/bin.in"
"$DDKV" --endpoints "$EP" read blob >"$WORK/bin.out"
cmp -s "$WORK/bin.in" "$WORK/bin.out" || fail "binary value from stdin did not round-trip"
pass "write KEY - takes a binary value from stdin"

expect_exit 0 "$DDKV" --endpoints "$EP" -o json read k
python3 -c 'import json,sys; o=json.loads(sys.argv[1]); assert o["key"]=="k" and o["value"]=="v2" and o["found"] is True and o["revision"]>0 and o["lamport"]>0, o' "$OUT" \
  || fail "json read: $OUT"
expect_exit 0 "$DDKV" --endpoints "$EP" -o json read blob
python3 - "$OUT" "$WORK/bin.in" <<'PY' || fail "json read of a binary value"
import base64, json, sys
o = json.loads(sys.argv[1])
assert o["encoding"] == "base64", o
assert base64.b64decode(o["value"]) == open(sys.argv[2], "rb").read()
PY
expect_exit 1 "$DDKV" --endpoints "$EP" -o json read nosuch
python3 -c 'import json,sys; o=json.loads(sys.argv[1]); assert o["found"] is False' "$OUT" || fail "json not-found: $OUT"
pass "-o json read, with base64 for binary values and found:false"

for i in 3 1 2; do "$DDKV" --endpoints "$EP" write "list/$i" "value $i" >/dev/null; done
expect_exit 0 "$DDKV" --endpoints "$EP" list list/
[ "$OUT" = "$(printf 'list/1\tvalue 1\nlist/2\tvalue 2\nlist/3\tvalue 3')" ] || fail "list printed '$OUT'"
expect_exit 0 "$DDKV" --endpoints "$EP" list list/ --limit 2
[ "$(echo "$OUT" | wc -l)" -eq 2 ] || fail "list --limit 2 printed '$OUT'"
pass "list prints key<TAB>value sorted, --limit bounds it"

for i in $(seq 1 2500); do printf 'page/%05d\n' "$i"; done >"$WORK/keys"
python3 - "$EP" <<'PY'
# 2,500 keys through the wire directly (fast), then list must page through all.
import socket, struct, sys
host, port = sys.argv[1].split(":")
s = socket.create_connection((host, int(port)))
def pack_bin(b): return (b"\xc4" + bytes([len(b)]) + b) if len(b) < 256 else None
frames = b""
for i in range(1, 2501):
    k = b"page/%05d" % i
    body = b"\x98\x06\x01" + b"\xcd" + struct.pack(">H", i) + pack_bin(k) + pack_bin(b"x") + b"\x00\x00\x00"
    frames += struct.pack(">I", len(body)) + body
s.sendall(frames)
got = 0; buf = b""
while got < 2500:
    buf += s.recv(65536)
    while len(buf) >= 4 and len(buf) >= 4 + struct.unpack(">I", buf[:4])[0]:
        n = struct.unpack(">I", buf[:4])[0]; body = buf[4:4+n]; buf = buf[4+n:]
        assert body[1] == 7, body  # WRITTEN_AT
        got += 1
PY
expect_exit 0 "$DDKV" --endpoints "$EP" list page/
[ "$(echo "$OUT" | wc -l)" -eq 2500 ] || fail "list of 2500 keys gave $(echo "$OUT" | wc -l) lines"
[ "$(echo "$OUT" | cut -f1)" = "$(cat "$WORK/keys")" ] || fail "list pages out of order or with gaps"
pass "list pages through 2,500 keys in order without gaps"

expect_exit 0 "$DDKV" --endpoints "$EP" status
echo "$OUT" | grep -q "n1" || fail "status: $OUT"
expect_exit 0 "$DDKV" --endpoints "$EP" -o json status
python3 -c 'import json,sys; o=json.loads(sys.argv[1].splitlines()[0]); assert o["name"]=="n1", o' "$OUT" || fail "json status: $OUT"
expect_exit 0 "$DDKV" --endpoints "$EP" ping
echo "$OUT" | grep -qi "pong" || fail "ping: $OUT"
pass "status and ping"

# A one-node cluster (no peer port) is every member there is: its cluster
# version rises to this release at once, and delete --prefix works.
cv=
for _ in $(seq 50); do
  cv=$("$DDKV" --endpoints "$EP" -o json status | python3 -c 'import json,sys; print(json.loads(sys.stdin.readline()).get("cluster_version"))')
  [ "$cv" = 0.2.0 ] && break
  sleep 0.1
done
[ "$cv" = 0.2.0 ] || fail "a one-node cluster stays at cluster version $cv"
for k in a b c; do "$DDKV" --endpoints "$EP" write "dp/$k" x >/dev/null; done
expect_exit 0 "$DDKV" --endpoints "$EP" delete --prefix dp/
echo "$OUT" | grep -q "deleted 3 keys" || fail "delete --prefix: $OUT"
expect_exit 1 "$DDKV" --endpoints "$EP" delete --prefix dp/
pass "one node: cluster version $cv, delete --prefix deletes 3 keys, then finds none (exit 1)"

DDKV_ENDPOINTS="$EP" expect_exit 0 "$DDKV" read k
[ "$OUT" = "v2" ] || fail "DDKV_ENDPOINTS not used"
DDKV_ENDPOINTS=127.0.0.1:1 expect_exit 0 "$DDKV" --endpoints "$EP" read k
pass "endpoints from the environment; the flag beats the environment"

t0=$(date +%s%N)
expect_exit 3 "$DDKV" --endpoints 127.0.0.1:1 --timeout-ms 700 read k
t1=$(date +%s%N)
[ $(( (t1 - t0) / 1000000 )) -lt 5000 ] || fail "unreachable took $(( (t1 - t0) / 1000000 )) ms"
expect_exit 3 "$DDKV" --endpoints 127.0.0.1:1 --timeout-ms 500 write k x
pass "an unreachable cluster exits 3 within --timeout-ms"

expect_exit 2 "$DDKV" --endpoints "$EP" write onlykey
expect_exit 2 "$DDKV" --endpoints "$EP" frobnicate
expect_exit 2 "$DDKV" --endpoints "$EP" read k --consistency sometimes
expect_exit 2 "$DDKV" --endpoints "$EP" write "" v
head -c $((1024 * 1024 + 1)) /dev/zero >"$WORK/big"
expect_exit 2 "$DDKV" --endpoints "$EP" write big - <"$WORK/big"
pass "usage errors, an empty key and a value over the limit exit 2"

# serve: --config file, env and flag precedence; SIGTERM exits 0.
cat >"$WORK/n2.conf" <<CONF
# a config file: same names as the flags
name = fromfile
data-dir = $WORK/d2
CONF
NONAME=1 DDKV_NAME=fromenv start_node n2 "$WORK/d2b" --config "$WORK/n2.conf"
grep -q " fromenv " "$WORK/n2.log" || fail "env did not beat the config file for --name"
kill -TERM "$PID_n2"; set +e; wait "$PID_n2"; rc=$?; set -e
[ $rc -eq 0 ] || fail "SIGTERM exit code $rc"
[ -d "$WORK/d2b" ] && [ ! -d "$WORK/d2" ] || fail "the --data-dir flag did not beat the config file"
pass "serve: flag beats env beats config file; SIGTERM exits 0"

expect_exit 2 "$DDKV" serve --client-addr 127.0.0.1:0
pass "serve without --data-dir exits 2"

echo "${PASSED} passed, 0 failed"
