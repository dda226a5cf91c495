#!/usr/bin/env bash
# Issue 22, finding 8: leases across users. A lease belongs to the user who
# granted it: another user may not keep it alive, attach a key to it (WRITE,
# TXN) or revoke it (PERMISSION_DENIED, exit 2), whether the lease is root's
# or a third user's; its owner and root still can. The owner is replicated
# state: it holds after a leader kill, a restart of every member, and on a
# member that caught up by snapshot (the log compacted under it). A lease id
# not applied yet on the member asked is refused (UNAVAILABLE), so nobody can
# attach to another user's grant on its way.
source "$(dirname "$0")/../cli/lib.sh"
export DDKV_AUTH_HASH_ITERATIONS=10000 # as test/cli/test_auth.sh: PBKDF2 is slow under ASan
export DDKV_SNAPSHOT_ENTRIES=100        # compact often: a member behind catches up by snapshot
start_cluster 3
CS=$ROOT/deploy/cluster.sh
WIRE=$(dirname "$0")/acl_wire.py
D() { "$DDKV" "$@" --endpoints "$EP"; }
AS_ROOT=(--user root --password rootpw)
BOB=(--user bob --password bobpw)
CAROL=(--user carol --password carolpw)

expect_exit 0 D user add root --new-password rootpw
expect_exit 0 D user grant root root
for u in bob carol; do
  expect_exit 0 D user add "$u" --new-password "${u}pw"
  expect_exit 0 D role add "$u-rw"
  expect_exit 0 D role grant "$u-rw" "$u/" readwrite
  expect_exit 0 D role grant "$u-rw" shared/ readwrite
  expect_exit 0 D user grant "$u" "$u-rw"
done
expect_exit 0 D auth enable

lease_id() { python3 -c 'import json,sys; print(json.load(sys.stdin)["lease"])' <<<"$OUT"; }
expect_exit 0 D lease grant 120 "${AS_ROOT[@]}" -o json
LR=$(lease_id)
expect_exit 0 D lease grant 120 "${CAROL[@]}" -o json
LC=$(lease_id)
expect_exit 0 D lease grant 120 "${BOB[@]}" -o json
LB=$(lease_id)
expect_exit 0 D write carol/k mine --lease "$LC" "${CAROL[@]}"

# bob_refused: every way bob could use root's and carol's leases is refused
# with PERMISSION_DENIED (exit 2), naming the owner, and changes nothing.
# $1: extra flags (an endpoint to ask), for the checks after failures.
bob_refused() {
  local where=$1 L
  for L in "$LR" "$LC"; do
    expect_exit 2 "$DDKV" lease keepalive "$L" "${BOB[@]}" --endpoints "$where"
    [[ $ERR == *"permission denied: lease $L belongs to user '"* ]] || fail "bob keepalive $L: $ERR"
    expect_exit 2 "$DDKV" lease revoke "$L" "${BOB[@]}" --endpoints "$where"
    expect_exit 2 "$DDKV" write shared/bob-on-$L x --lease "$L" "${BOB[@]}" --endpoints "$where"
    [[ $ERR == *"belongs to user"* ]] || fail "bob write with lease $L: $ERR"
    # A TXN put with the lease (what cas and every txn client sends).
    OUT=$(python3 - "$where" "$L" "$WIRE" <<'PY'
import importlib.util, json, sys
spec = importlib.util.spec_from_file_location("w", sys.argv[3]); w = importlib.util.module_from_spec(spec)
spec.loader.exec_module(w)
c = w.Cluster(sys.argv[1], "bob", "bobpw")
print(json.dumps(w.describe(c.call(17, [], [[1, b"shared/txn-bob", b"x", int(sys.argv[2])]], []))))
PY
)
    [[ $OUT == *PERMISSION_DENIED* ]] || fail "bob txn with lease $L: $OUT"
  done
  expect_exit 1 D read "shared/bob-on-$LR" "${AS_ROOT[@]}"
  expect_exit 1 D read "shared/bob-on-$LC" "${AS_ROOT[@]}"
  expect_exit 1 D read shared/txn-bob "${AS_ROOT[@]}"
}

bob_refused "$EP"
pass "bob may not keep alive, revoke, write or txn with root's lease $LR or carol's lease $LC (exit 2, nothing written)"

expect_exit 0 D lease keepalive "$LB" "${BOB[@]}"
expect_exit 0 D write bob/k v --lease "$LB" "${BOB[@]}"
expect_exit 0 D lease keepalive "$LC" "${CAROL[@]}"
expect_exit 0 D write carol/k2 v --lease "$LC" "${CAROL[@]}"
expect_exit 0 D lease keepalive "$LC" "${AS_ROOT[@]}"
expect_exit 0 D lease keepalive "$LR" "${AS_ROOT[@]}"
pass "each owner keeps its own lease alive and attaches keys to it; root may use any"

# A lease id past what the member applied: perhaps another user's grant on its
# way. Refused (retry), never attached.
OUT=$(python3 - "$EP" "$WIRE" <<'PY'
import importlib.util, json, sys
spec = importlib.util.spec_from_file_location("w", sys.argv[2]); w = importlib.util.module_from_spec(spec)
spec.loader.exec_module(w)
for ep in sys.argv[1].split(","):
    c = w.Conn(ep); c.login("bob", "bobpw")
    print(json.dumps(w.describe(c.call(6, b"bob/future", b"x", 1 << 40, 0, 0))))
PY
)
[ "$(grep -c UNAVAILABLE <<<"$OUT")" = 3 ] || fail "a write with a lease not yet granted: $OUT"
expect_exit 1 D read bob/future "${AS_ROOT[@]}"
pass "a lease id not yet applied is refused UNAVAILABLE on every member (nobody attaches to a grant on its way)"

leader() { "$DDKV" ping --endpoints "$EP" -o json 2>/dev/null | python3 -c 'import json,sys; print(json.load(sys.stdin)["leader"] or "")'; }
wait_leader_not() {
  local l
  for _ in $(seq 100); do
    l=$(leader || true)
    [[ -n $l && $l != "$1" ]] && { echo "$l"; return 0; }
    sleep 0.2
  done
  fail "no new leader after $1"
}
# eventually CODE cmd...: retried for up to 15 s (an election, a catching-up leader).
eventually() {
  local want=$1 got; shift
  for _ in $(seq 75); do
    set +e; OUT=$("$@" 2>"$WORK/stderr"); got=$?; set -e
    [ "$got" -eq "$want" ] && return 0
    sleep 0.2
  done
  fail "'$*' exited $got, want $want (stderr: $(cat "$WORK/stderr"))"
}

OLD=$(leader)
"$CS" kill "$OLD" >/dev/null
NEW=$(wait_leader_not "$OLD")
eventually 0 D lease keepalive "$LC" "${CAROL[@]}"
bob_refused "$EP"
"$CS" restart "$OLD" >/dev/null
pass "after killing leader $OLD, the new leader $NEW knows the owners: bob refused, carol keeps hers"

# A member far behind catches up by snapshot: stop one follower, write past
# several compactions, start it again.
for i in 1 2 3; do [ "n$i" != "$NEW" ] && F=n$i; done
FEP=127.0.0.1:$((DDKV_PORT_BASE + ${F#n}))
"$CS" kill "$F" >/dev/null
before=$(grep -c "installed snapshot" "$DDKV_CLUSTER_DIR/$F.log" || true)
python3 - "$EP" "$WIRE" <<'PY'
import importlib.util, sys
spec = importlib.util.spec_from_file_location("w", sys.argv[2]); w = importlib.util.module_from_spec(spec)
spec.loader.exec_module(w)
c = w.Cluster(sys.argv[1], "root", "rootpw")
for i in range(350):
    r = c.call(6, b"fill/%04d" % i, b"x" * 64)
    assert r[0] == 7, w.describe(r)
PY
"$CS" restart "$F" >/dev/null
for _ in $(seq 150); do
  [ "$(grep -c "installed snapshot" "$DDKV_CLUSTER_DIR/$F.log" || true)" -gt "$before" ] && break
  sleep 0.2
done
[ "$(grep -c "installed snapshot" "$DDKV_CLUSTER_DIR/$F.log" || true)" -gt "$before" ] ||
  fail "$F did not catch up by snapshot: $(tail -3 "$DDKV_CLUSTER_DIR/$F.log")"
# The member that installed the image decides bob's requests itself (every
# member checks what it receives against its own applied state)...
bob_refused "$FEP"
# ...and leads with it.
eventually 0 D members transfer "$F" "${AS_ROOT[@]}"
for _ in $(seq 50); do [ "$(leader || true)" = "$F" ] && break; sleep 0.2; done
[ "$(leader)" = "$F" ] || fail "leadership did not move to $F"
eventually 0 D lease keepalive "$LC" "${CAROL[@]}"
bob_refused "$EP"
pass "$F caught up by snapshot keeps the owners: it refuses bob, and as leader serves carol"

# Every member restarted.
"$CS" stop >/dev/null
for i in 1 2 3; do "$CS" restart "n$i" >/dev/null; done
eventually 0 D lease keepalive "$LC" "${CAROL[@]}"
bob_refused "$EP"
expect_exit 0 D lease revoke "$LC" "${CAROL[@]}"
expect_exit 1 D read carol/k "${AS_ROOT[@]}"
expect_exit 0 D lease revoke "$LR" "${AS_ROOT[@]}"
expect_exit 0 D lease revoke "$LB" "${BOB[@]}"
pass "after a restart of every member the owners hold; carol, root and bob revoke their own leases"
