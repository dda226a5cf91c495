#!/usr/bin/env bash
# The coordination commands against a real node: cas (exit 0 swapped, 1 not),
# lease grant/keepalive/revoke, write --ttl and --lease, watch (--count,
# --from-rev, JSON, SIGINT, COMPACTED after a restart). Skipped (77) if the
# node does not know TXN yet.
source "$(dirname "$0")/lib.sh"

start_node n1 "$WORK/d1"
EP="127.0.0.1:$PORT_n1"
ddkv() { "$DDKV" --endpoints "$EP" "$@"; }

set +e
probe=$(ddkv cas probe "" x 2>&1)
set -e
if echo "$probe" | grep -qi "unknown message type"; then
  echo "skip: the node does not support TXN yet ($probe)"
  exit 77
fi

# --- cas ---
expect_exit 0 ddkv cas c "" v1
[[ "$OUT" =~ ^swapped\ at\ [0-9]+\ rev\ [0-9]+$ ]] || fail "cas printed '$OUT'"
expect_exit 1 ddkv cas c "" v2
[[ "$OUT" == "not swapped: c already exists" ]] || fail "cas on an existing key printed '$OUT'"
expect_exit 0 ddkv cas c v1 v2
expect_exit 0 ddkv read c
[ "$OUT" = "v2" ] || fail "after cas, read printed '$OUT'"
expect_exit 1 ddkv cas c wrong v3
[[ "$OUT" == "not swapped: c was not 'wrong'" ]] || fail "lost cas printed '$OUT'"
expect_exit 0 ddkv read c
[ "$OUT" = "v2" ] || fail "a lost cas changed the value to '$OUT'"
pass "cas: swaps when the value matches or the key is absent, exits 1 otherwise"

expect_exit 0 ddkv -o json cas c v2 v3
python3 -c 'import json,sys; o=json.loads(sys.argv[1]); assert o["key"]=="c" and o["succeeded"] is True and o["revision"]>0 and o["lamport"]>0, o' "$OUT" \
  || fail "json cas: $OUT"
expect_exit 1 ddkv -o json cas c nope v4
python3 -c 'import json,sys; o=json.loads(sys.argv[1]); assert o["succeeded"] is False, o' "$OUT" || fail "json lost cas: $OUT"
expect_exit 2 ddkv cas c onlytwo
pass "cas -o json, and a usage error exits 2"

# --- leases ---
expect_exit 0 ddkv lease grant 30
[[ "$OUT" =~ ^lease\ ([0-9]+)\ granted\ for\ 30\ s$ ]] || fail "lease grant printed '$OUT'"
lease=${BASH_REMATCH[1]}
expect_exit 0 ddkv lease keepalive "$lease"
echo "$OUT" | grep -q "lease $lease" || fail "keepalive printed '$OUT'"
expect_exit 0 ddkv -o json lease keepalive "$lease"
python3 -c 'import json,sys; o=json.loads(sys.argv[1]); assert o["lease"]==int(sys.argv[2]) and o["ttl_ms"]==30000, o' "$OUT" "$lease" \
  || fail "json keepalive: $OUT"
expect_exit 0 ddkv write leased v --lease "$lease"
[[ "$OUT" == *" lease $lease" ]] || fail "write --lease printed '$OUT'"
expect_exit 0 ddkv read leased
expect_exit 0 ddkv lease revoke "$lease"
expect_exit 1 ddkv read leased
expect_exit 1 ddkv lease revoke "$lease"
expect_exit 1 ddkv lease keepalive "$lease"
# The node refuses a write to a lease that is gone as BAD_REQUEST (bad input: 2).
expect_exit 2 ddkv write late v --lease "$lease"
expect_exit 2 ddkv lease grant 0
expect_exit 2 ddkv lease renew 1
pass "lease grant, keepalive, revoke (deletes its keys; an unknown lease exits 1)"

# Fractional seconds, and a ttl long enough that starting the keepalive
# process on a loaded machine cannot outlast it.
expect_exit 0 ddkv -o json lease grant 12.5
python3 -c 'import json,sys; o=json.loads(sys.argv[1]); assert o["lease"]>0 and o["ttl_ms"]==12500, o' "$OUT" || fail "json grant: $OUT"
lease2=$(python3 -c 'import json,sys; print(json.loads(sys.argv[1])["lease"])' "$OUT")
# Signalled directly, not through timeout(1): timeout also sends SIGCONT,
# which can swallow the SIGSTOP of LeakSanitizer's exit-time check in
# sanitizer builds and hang the process.
"$DDKV" --endpoints "$EP" lease keepalive "$lease2" --every-ms 300 >"$WORK/ka.out" 2>"$WORK/ka.err" &
ka=$!
sleep 1.2
kill -INT "$ka" 2>/dev/null || true
set +e; wait "$ka"; rc=$?; set -e
[ "$rc" -eq 0 ] || fail "keepalive --every-ms ended with $rc on SIGINT ($(cat "$WORK/ka.err"))"
[ "$(wc -l <"$WORK/ka.out")" -ge 3 ] || fail "keepalive --every-ms printed: $(cat "$WORK/ka.out")"
pass "lease keepalive --every-ms repeats until interrupted, then exits 0"

# --- write --ttl ---
expect_exit 0 ddkv write short v --ttl 1
[[ "$OUT" =~ ^written\ at\ [0-9]+\ rev\ [0-9]+\ lease\ [0-9]+$ ]] || fail "write --ttl printed '$OUT'"
expect_exit 0 ddkv read short
gone=0
for _ in $(seq 50); do
  set +e; ddkv read short >/dev/null 2>&1; rc=$?; set -e
  [ "$rc" -eq 1 ] && { gone=1; break; }
  sleep 0.1
done
[ "$gone" = 1 ] || fail "a key written with --ttl 1 was still there after 5 s"
expect_exit 2 ddkv write k v --ttl 1 --lease 5
expect_exit 2 ddkv write k v --ttl abc
pass "write --ttl: the key goes when its lease expires"

# --- watch ---
"$DDKV" --endpoints "$EP" watch w/ --count 4 >"$WORK/watch.out" 2>"$WORK/watch.err" &
wpid=$!
sleep 0.5
ddkv write w/1 one >/dev/null
ddkv write other x >/dev/null
ddkv write w/2 "two words" >/dev/null
ddkv cas w/1 one uno >/dev/null
ddkv delete w/2 >/dev/null
for _ in $(seq 100); do kill -0 "$wpid" 2>/dev/null || break; sleep 0.1; done
set +e; wait "$wpid"; rc=$?; set -e
[ "$rc" -eq 0 ] || fail "watch --count 4 exited $rc: $(cat "$WORK/watch.err")"
mapfile -t lines <"$WORK/watch.out"
[ "${#lines[@]}" -eq 4 ] || fail "watch printed ${#lines[@]} lines: $(cat "$WORK/watch.out")"
[[ "${lines[0]}" =~ ^PUT\ w/1\ one\ rev\ ([0-9]+)$ ]] || fail "watch line 1: '${lines[0]}'"
first_rev=${BASH_REMATCH[1]}
[[ "${lines[1]}" =~ ^PUT\ w/2\ two\ words\ rev\ [0-9]+$ ]] || fail "watch line 2: '${lines[1]}'"
[[ "${lines[2]}" =~ ^PUT\ w/1\ uno\ rev\ [0-9]+$ ]] || fail "watch line 3: '${lines[2]}'"
[[ "${lines[3]}" =~ ^DELETE\ w/2\ rev\ [0-9]+$ ]] || fail "watch line 4: '${lines[3]}'"
pass "watch prints each change under the prefix, in order, and --count stops it"

expect_exit 0 timeout 10 "$DDKV" --endpoints "$EP" watch w/ --from-rev "$first_rev" --count 4
[ "$OUT" = "$(cat "$WORK/watch.out")" ] || fail "watch --from-rev replayed '$OUT'"
expect_exit 0 timeout 10 "$DDKV" --endpoints "$EP" -o json watch w/ --from-rev "$first_rev" --count 4
python3 - "$OUT" "$first_rev" <<'PY' || fail "json watch: $OUT"
import json, sys
evs = [json.loads(l) for l in sys.argv[1].splitlines()]
assert [e["type"] for e in evs] == ["PUT", "PUT", "PUT", "DELETE"], evs
assert evs[0]["key"] == "w/1" and evs[0]["value"] == "one" and evs[0]["revision"] == int(sys.argv[2]), evs
assert evs[1]["value"] == "two words" and evs[2]["version"] == 2, evs
assert evs[3]["value"] == "" and evs[3]["version"] == 0, evs
revs = [e["revision"] for e in evs]
assert revs == sorted(revs) and all(e["lamport"] > 0 and e["create_revision"] > 0 for e in evs[:3]), evs
PY
pass "watch --from-rev replays history; -o json gives one object per event"

"$DDKV" --endpoints "$EP" watch bin/ -o json --count 1 >"$WORK/bin.out" 2>&1 &
wpid=$!
sleep 0.5
printf 'a\xffb' | ddkv write bin/x - >/dev/null
for _ in $(seq 100); do kill -0 "$wpid" 2>/dev/null || break; sleep 0.1; done
set +e; wait "$wpid"; rc=$?; set -e
[ "$rc" -eq 0 ] || fail "binary watch exited $rc: $(cat "$WORK/bin.out")"
python3 -c 'import base64,json,sys; o=json.loads(open(sys.argv[1]).read()); assert o["encoding"]=="base64" and base64.b64decode(o["value"])==b"a\xffb", o' "$WORK/bin.out" \
  || fail "binary watch value: $(cat "$WORK/bin.out")"
pass "watch -o json: a binary value is base64"

"$DDKV" --endpoints "$EP" watch txn/ >"$WORK/int.out" 2>"$WORK/int.err" &
wpid=$!
sleep 0.5
ddkv write txn/a 1 >/dev/null
sleep 0.3
kill -INT "$wpid"
set +e; wait "$wpid"; rc=$?; set -e
[ "$rc" -eq 0 ] || fail "watch ended with $rc on SIGINT: $(cat "$WORK/int.err")"
grep -q "^PUT txn/a 1 rev" "$WORK/int.out" || fail "watch before SIGINT printed: $(cat "$WORK/int.out")"
"$DDKV" --endpoints "$EP" watch txn/ >/dev/null 2>"$WORK/term.err" &
wpid=$!
sleep 0.5
kill -TERM "$wpid"
set +e; wait "$wpid"; rc=$?; set -e
[ "$rc" -eq 0 ] || fail "watch ended with $rc on SIGTERM: $(cat "$WORK/term.err")"
pass "watch: SIGINT and SIGTERM end it with exit 0, lines already flushed"

# After a restart a member's history starts at its applied index + 1: an
# older revision is COMPACTED, which names the oldest one left (exit 1).
kill -9 "$PID_n1"; wait "$PID_n1" 2>/dev/null || true
start_node n1 "$WORK/d1"
EP="127.0.0.1:$PORT_n1"
expect_exit 1 timeout 10 "$DDKV" --endpoints "$EP" watch w/ --from-rev "$first_rev"
echo "$ERR" | grep -Eq "oldest revision available [0-9]+" || fail "COMPACTED said: $ERR"
expect_exit 1 timeout 10 "$DDKV" --endpoints "$EP" -o json watch w/ --from-rev "$first_rev"
python3 -c 'import json,sys; o=json.loads(sys.argv[1]); assert o["compacted"] is True and o["oldest_revision"]>int(sys.argv[2]), o' "$OUT" "$first_rev" \
  || fail "json COMPACTED: $OUT"
pass "watch from a revision older than the history exits 1 naming the oldest revision"

expect_exit 3 "$DDKV" --endpoints 127.0.0.1:1 --timeout-ms 300 watch w/
pass "watch of an unreachable cluster exits 3"

# --- watch across failovers (3 nodes, deploy/cluster.sh) ---
# The watch starts on n1 (the first endpoint); n1 is killed, later n2: it
# resumes on another member each time, and a lease revoke (5 deletes at one
# revision) arrives whole. Every change exactly once, in order.
kill -9 "$PID_n1"; wait "$PID_n1" 2>/dev/null || true
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
export DDKV_BIN=$DDKV DDKV_CLUSTER_DIR=$WORK/cluster
CL="$ROOT/deploy/cluster.sh"
cleanup_extra() { "$CL" stop >/dev/null 2>&1 || true; }
free_port_block
base=$DDKV_PORT_BASE
expect_exit 0 "$CL" start 3
EP=$("$CL" endpoints)
"$DDKV" --endpoints "$EP" -o json watch f/ >"$WORK/fo.out" 2>"$WORK/fo.err" &
wpid=$!
sleep 0.5
expect_exit 0 ddkv -o json lease grant 60
flease=$(python3 -c 'import json,sys; print(json.loads(sys.argv[1])["lease"])' "$OUT")
for i in 1 2 3 4 5; do expect_exit 0 ddkv write "f/l$i" x --lease "$flease"; done
for i in $(seq 1 40); do
  expect_exit 0 ddkv write "f/$i" "v$i"
  case $i in
    10) "$CL" kill n1 >/dev/null ;;
    20) expect_exit 0 ddkv lease revoke "$flease" ;;
    25) "$CL" restart n1 >/dev/null; "$CL" kill n2 >/dev/null ;;
  esac
done
for _ in $(seq 100); do
  [ "$(wc -l <"$WORK/fo.out")" -ge 45 ] && break
  sleep 0.1
done
kill -INT "$wpid"
set +e; wait "$wpid"; rc=$?; set -e
[ "$rc" -eq 0 ] || fail "watch across failovers exited $rc: $(cat "$WORK/fo.err")"
python3 - "$WORK/fo.out" <<'PY' || fail "watch across failovers: $(cat "$WORK/fo.out") $(cat "$WORK/fo.err")"
import json, sys
evs = [json.loads(l) for l in open(sys.argv[1])]
revs = [e["revision"] for e in evs]
assert revs == sorted(revs), "out of order"
ids = [(e["type"], e["key"], e["revision"]) for e in evs]
assert len(set(ids)) == len(ids), "duplicates"
puts = [e["key"] for e in evs if e["type"] == "PUT" and e["key"][2:].isdigit()]
assert puts == ["f/%d" % i for i in range(1, 41)], puts
dels = [e for e in evs if e["type"] == "DELETE"]
assert sorted(e["key"] for e in dels) == ["f/l%d" % i for i in range(1, 6)], dels
assert len({e["revision"] for e in dels}) == 1, "a revoke is one revision"
assert len(evs) == 50, len(evs)
PY
pass "watch survives two member failures: every change once, in order"

echo "${PASSED} passed, 0 failed"
