#!/usr/bin/env bash
# Issue 22, finding 2: a plain peer port beyond loopback without a cluster
# token let anyone who reached it pose as a member. Now such a node refuses to
# start, before binding anything, with a message naming the fixes; a token (or
# --insecure-peers) lifts the refusal. The address is 192.0.2.1 (TEST-NET-1,
# not on this machine), so no run of this test ever listens beyond loopback:
# where the node gets past the refusal, binding it fails instead.
source "$(dirname "$0")/../cli/lib.sh"

serve() { timeout 20 "$DDKV" serve --name n1 --data-dir "$WORK/d$1" --client-addr 127.0.0.1:0 \
  --peer-addr 192.0.2.1:7101 "${@:2}"; }

set +e
serve 1 >/dev/null 2>"$WORK/plain.err"; rc=$?
set -e
[ "$rc" -ne 0 ] || fail "a plain peer port beyond loopback without a token started"
grep -q "peer port 192.0.2.1:7101 is reachable beyond loopback without TLS or a --cluster-token" "$WORK/plain.err" ||
  fail "no clear refusal: $(tail -3 "$WORK/plain.err")"
grep -q -- "--insecure-peers" "$WORK/plain.err" || fail "the refusal does not name --insecure-peers"
grep -q "cannot listen" "$WORK/plain.err" && fail "it tried to bind before refusing"
pass "plain peer port beyond loopback without a token: refused at start (exit $rc)"

for how in "--cluster-token=s3cret-token-value" "--insecure-peers"; do
  set +e
  serve 2 "$how" >/dev/null 2>"$WORK/other.err"; rc=$?
  set -e
  grep -q "without TLS or a --cluster-token" "$WORK/other.err" && fail "$how still refused: $(tail -3 "$WORK/other.err")"
  grep -q "cannot listen on peer address 192.0.2.1:7101" "$WORK/other.err" ||
    fail "with $how: not the bind error that follows: $(tail -3 "$WORK/other.err")"
  grep -q "s3cret-token-value" "$WORK/other.err" && fail "the token is in the node's output"
  rm -rf "$WORK/d2"
  pass "with ${how%%=*}: past the check (then the bind of 192.0.2.1 fails, exit $rc)"
done
# Loopback without a token stays as it was.
start_node lo "$WORK/d3" --peer-addr 127.0.0.1:0
pass "loopback peer port without a token starts"
