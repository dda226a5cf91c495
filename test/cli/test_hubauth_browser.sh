#!/usr/bin/env bash
# Sign-in in a real browser (test/browser/signin.mjs): before auth is on, the
# page says so plainly; then a one-node cluster with auth on, the hub and an agent; an operator signs in and out, a viewer sees
# no upload and its forged POSTs are refused, a cross-site POST makes no job,
# root manages users from the page. Screenshots in $DDKV_ARTIFACTS (default
# build-asan/artifacts/hubauth/).
source "$(dirname "$0")/lib.sh"
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
[ -x /usr/bin/chromium ] || { echo "SKIP: /usr/bin/chromium missing (scripts/deps.sh installs it)"; exit 77; }
[ -d "$ROOT/test/browser/node_modules/playwright-core" ] || { echo "SKIP: playwright-core missing (scripts/deps.sh installs it)"; exit 77; }
export DDKV_AUTH_HASH_ITERATIONS=10000 # PBKDF2 is slow under ASan; what is tested is the same
start_cluster 1
base=$DDKV_PORT_BASE
D() { "$DDKV" "$@" --endpoints "$EP"; }
ROOTPW=root-pw-b1 HUBPW=hub-pw-b2 VIEWPW=view-pw-b3 OPPW=oper-pw-b4 AGENTPW=agent-pw-b5
expect_exit 0 D user add root --new-password "$ROOTPW"
expect_exit 0 D user grant root root
expect_exit 0 D role add hubsvc
for p in clients/ metrics/ jobs/ jobresult/; do expect_exit 0 D role grant hubsvc "$p" read; done
expect_exit 0 D role grant hubsvc hubsess/ readwrite
expect_exit 0 D user add hub --new-password "$HUBPW"
expect_exit 0 D user grant hub hubsvc
expect_exit 0 D role add viewer
for p in clients/ metrics/ jobs/ jobresult/ resp/; do expect_exit 0 D role grant viewer "$p" read; done
expect_exit 0 D role add operator
for p in jobs/ jobq/ jobc/ jobdata/; do expect_exit 0 D role grant operator "$p" readwrite; done
expect_exit 0 D user add vera --new-password "$VIEWPW"
expect_exit 0 D user grant vera viewer
expect_exit 0 D user add otto --new-password "$OPPW"
expect_exit 0 D user grant otto viewer
expect_exit 0 D user grant otto operator
expect_exit 0 D role add agent
for p in clients/ metrics/ req/ resp/; do expect_exit 0 D role grant agent "$p" readwrite; done
expect_exit 0 D user add alpha --new-password "$AGENTPW"
expect_exit 0 D user grant alpha agent
HUB=127.0.0.1:$((base + 84))
SHOTS=${DDKV_ARTIFACTS:-$ROOT/build-asan/artifacts/hubauth}
rm -rf "$SHOTS"; mkdir -p "$SHOTS"
# Auth still off: the page must say so.
"$DDKV" hub --endpoints "$EP" --http-addr "$HUB" --web-dir "$ROOT/web" 2>"$WORK/hub0.log" &
HUB0=$!; PIDS+=($HUB0)
for _ in $(seq 100); do curl -sf "http://$HUB/health" >/dev/null 2>&1 && break; sleep 0.1; done
MODE=auth-off HUB_URL="http://$HUB/" SHOTS=$SHOTS node "$ROOT/test/browser/signin.mjs" || fail "auth-off page (hub log: $(tail -3 "$WORK/hub0.log"))"
kill "$HUB0"; wait "$HUB0" 2>/dev/null || true
expect_exit 0 D auth enable
DDKV_USER=hub DDKV_PASSWORD=$HUBPW "$DDKV" hub --endpoints "$EP" --http-addr "$HUB" --web-dir "$ROOT/web" 2>"$WORK/hub.log" &
HUBPID=$!; PIDS+=($HUBPID)
DDKV_USER=alpha DDKV_PASSWORD=$AGENTPW "$DDKV" agent --endpoints "$EP" --name alpha --presence-ttl-s 3 2>"$WORK/alpha.log" &
PIDS+=($!)
for _ in $(seq 100); do curl -sf "http://$HUB/health" >/dev/null 2>&1 && break; sleep 0.1; done
HUB_URL="http://$HUB/" OTHER_ORIGIN="http://localhost:${HUB##*:}/" SHOTS=$SHOTS DDKV_BIN=$DDKV DDKV_ENDPOINTS=$EP \
  PASSWORDS="{\"root\": \"$ROOTPW\", \"otto\": \"$OPPW\", \"vera\": \"$VIEWPW\"}" \
  node "$ROOT/test/browser/signin.mjs" || fail "browser test failed (screenshots in $SHOTS; hub log: $(tail -5 "$WORK/hub.log"))"
kill "$HUBPID"; wait "$HUBPID" 2>/dev/null || true
grep -E "Sanitizer|runtime error" "$WORK/hub.log" && fail "the hub's sanitizers reported"
for pw in "$ROOTPW" "$VIEWPW" "$OPPW" nina-pw-7; do grep -q -- "$pw" "$WORK/hub.log" && fail "a password in the hub's log"; done
echo "all passed"
