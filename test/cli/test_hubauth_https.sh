#!/usr/bin/env bash
# HTTPS for the hub (issue 23 item 2): with --https-cert/--https-key (files
# from deploy/certs.sh) the hub speaks only TLS; curl with --cacert verifies
# it and signs in, the session cookie is Secure; an http:// Origin is not the
# hub's; plain HTTP to the port gets no answer and the hub keeps serving; a
# client that does not trust the CA is refused; a bad key file is a clear
# startup error. The nodes' ops HTTP port: with --http-tls-cert/--http-tls-key
# /health, /status and /metrics are served over HTTPS only (curl --cacert),
# plain HTTP gets no answer, the client port and `ddkv status` are unchanged.
source "$(dirname "$0")/lib.sh"
export DDKV_AUTH_HASH_ITERATIONS=10000
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
start_cluster 1
base=$DDKV_PORT_BASE
D() { "$DDKV" "$@" --endpoints "$EP"; }
"$ROOT/deploy/certs.sh" "$WORK/certs" hub >/dev/null 2>&1 || fail "certs.sh"
CA=$WORK/certs/ca.pem
expect_exit 0 D user add root --new-password rootpw-h1
expect_exit 0 D user grant root root
expect_exit 0 D user add hub --new-password hubpw-h2
expect_exit 0 D role add hubsvc
expect_exit 0 D role grant hubsvc hubsess/ readwrite
expect_exit 0 D user grant hub hubsvc
expect_exit 0 D auth enable
export DDKV_USER=hub DDKV_PASSWORD=hubpw-h2

HUB=127.0.0.1:$((base + 85))
set +e
"$DDKV" hub --endpoints "$EP" --http-addr "$HUB" --https-cert "$WORK/certs/hub.pem" --https-key "$CA" 2>"$WORK/bad.log"
rc=$?
set -e
[ $rc = 2 ] && grep -q "HTTPS" "$WORK/bad.log" || fail "a key that is not the certificate's: exit $rc $(cat "$WORK/bad.log")"
pass "a wrong --https-key is a clear startup error (exit 2)"

"$DDKV" hub --endpoints "$EP" --http-addr "$HUB" --web-dir "$ROOT/web" \
  --https-cert "$WORK/certs/hub.pem" --https-key "$WORK/certs/hub.key" 2>"$WORK/hub.log" &
HUBPID=$!; PIDS+=($HUBPID)
for _ in $(seq 100); do curl -s -o /dev/null --cacert "$CA" "https://$HUB/health" && break; sleep 0.1; done
grep -q "dashboard at https://" "$WORK/hub.log" || fail "the hub does not say https: $(cat "$WORK/hub.log")"
code=$(curl -s -o "$WORK/body" -w '%{http_code}' --cacert "$CA" "https://$HUB/health" || true)
[ "$code" = 200 ] || fail "/health over HTTPS: $code $(cat "$WORK/body")"
code=$(curl -s -o /dev/null -w '%{http_code}' --cacert "$CA" "https://$HUB/" || true)
[ "$code" = 200 ] || fail "the page over HTTPS: $code"
pass "the hub serves HTTPS, verified with curl --cacert"

set +e
curl -s -o /dev/null "https://$HUB/health"; rc_untrusted=$?
curl -s -o /dev/null -m 5 "http://$HUB/health"; rc_plain=$?
set -e
[ $rc_untrusted = 60 ] || fail "a client without the CA: curl exit $rc_untrusted, want 60 (certificate problem)"
[ $rc_plain != 0 ] || fail "plain HTTP answered on the HTTPS port"
code=$(curl -s -o /dev/null -w '%{http_code}' --cacert "$CA" "https://$HUB/health" || true)
[ "$code" = 200 ] || fail "after plain HTTP: $code"
pass "an untrusted client fails verification; plain HTTP gets no answer and the hub keeps serving"

code=$(curl -s -o "$WORK/body" -D "$WORK/hdr" -w '%{http_code}' --cacert "$CA" -X POST \
  --data '{"user":"root","password":"rootpw-h1"}' "https://$HUB/api/login" || true)
[ "$code" = 200 ] || fail "login over HTTPS: $code $(cat "$WORK/body")"
grep -i '^set-cookie:' "$WORK/hdr" | grep -q '; Secure' || fail "cookie not Secure: $(grep -i set-cookie "$WORK/hdr")"
ck=$(grep -i '^set-cookie:' "$WORK/hdr" | sed 's/^[^=]*=\([^;]*\);.*/\1/')
csrf=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["csrf"])' "$WORK/body")
code=$(curl -s -o "$WORK/body" -w '%{http_code}' --cacert "$CA" -X POST -H "Cookie: ddkv_session=$ck" \
  -H "X-CSRF-Token: $csrf" -H "Origin: http://$HUB" "https://$HUB/api/logout" || true)
[ "$code" = 403 ] || fail "an http:// Origin on the HTTPS hub: $code $(cat "$WORK/body")"
code=$(curl -s -o "$WORK/body" -w '%{http_code}' --cacert "$CA" -X POST -H "Cookie: ddkv_session=$ck" \
  -H "X-CSRF-Token: $csrf" -H "Origin: https://$HUB" "https://$HUB/api/logout" || true)
[ "$code" = 200 ] || fail "logout with the hub's own https Origin: $code $(cat "$WORK/body")"
pass "over HTTPS: sign-in sets a Secure cookie; Origin http:// is another site, https:// the hub's own"

kill "$HUBPID"; wait "$HUBPID" 2>/dev/null || true
grep -E "Sanitizer|runtime error" "$WORK/hub.log" && fail "the hub's sanitizers reported"
grep -q rootpw-h1 "$WORK/hub.log" && fail "a password in the hub's log"
pass "the hub stopped cleanly"

# --- a node's ops HTTP port over HTTPS ---
"$ROOT/deploy/certs.sh" "$WORK/certs" ops1 >/dev/null 2>&1 || fail "certs.sh ops1"
set +e
"$DDKV" serve --name ops0 --data-dir "$WORK/ops0" --client-addr 127.0.0.1:0 --http-addr 127.0.0.1:0 \
  --http-tls-cert "$WORK/certs/ops1.pem" 2>"$WORK/ops0.log"
rc=$?
set -e
[ $rc = 2 ] && grep -q -- "--http-tls-key" "$WORK/ops0.log" || fail "--http-tls-cert alone: exit $rc $(tail -2 "$WORK/ops0.log")"
start_node ops1 "$WORK/ops1" --http-addr 127.0.0.1:0 --http-tls-cert "$WORK/certs/ops1.pem" --http-tls-key "$WORK/certs/ops1.key"
wait_log ops1 "http listening on 127.0.0.1:[0-9]+ \(HTTPS\)"
OPS=127.0.0.1:$(http_port ops1)
for _ in $(seq 100); do curl -sf -o /dev/null --cacert "$CA" "https://$OPS/health" && break; sleep 0.1; done
code=$(curl -s -o "$WORK/body" -w '%{http_code}' --cacert "$CA" "https://$OPS/health" || true)
[ "$code" = 200 ] && grep -q '"healthy":true' "$WORK/body" || fail "ops /health over HTTPS: $code $(cat "$WORK/body")"
code=$(curl -s -o "$WORK/body" -w '%{http_code}' --cacert "$CA" "https://$OPS/status" || true)
[ "$code" = 200 ] && grep -q '"name":"ops1"' "$WORK/body" || fail "ops /status over HTTPS: $code"
code=$(curl -s -o "$WORK/body" -w '%{http_code}' --cacert "$CA" "https://$OPS/metrics" || true)
[ "$code" = 200 ] && grep -q '^ddkv_' "$WORK/body" || fail "ops /metrics over HTTPS: $code"
set +e
curl -s -o /dev/null -m 5 "http://$OPS/health"; rc_plain=$?
set -e
[ $rc_plain != 0 ] || fail "plain HTTP answered on the node's HTTPS ops port"
expect_exit 0 "$DDKV" status --endpoints "127.0.0.1:$PORT_ops1"
[[ $OUT == *ops1* ]] || fail "ddkv status: $OUT"
code=$(curl -s -o /dev/null -w '%{http_code}' --cacert "$CA" "https://$OPS/health" || true)
[ "$code" = 200 ] || fail "ops /health after plain HTTP: $code"
pass "a node's ops port over HTTPS: /health, /status, /metrics with curl --cacert; plain HTTP no answer; ddkv status unchanged"
kill "$PID_ops1"; wait "$PID_ops1" 2>/dev/null || true
grep -E "Sanitizer|runtime error" "$WORK/ops1.log" && fail "the node's sanitizers reported"
echo "all $PASSED passed"
