#!/usr/bin/env bash
# A device's push with auth on (issue 23, "Device push"): over HTTPS a device
# user holding only readwrite on series/<id>/ and seriesmeta/<id>/ pushes with
# curl -u (Authorization: Basic, no session, no CSRF token), one series and a
# batch; a signed-in viewer then reads the points; a wrong password is 401
# and repeated failures are throttled (429, Retry-After) in the same
# per-address throttle as /api/login; a user without the grant gets 403 with
# the cluster's words; a bad series in a batch names it and writes nothing;
# Basic is not taken on the other routes; after a password change the old
# one is refused at once, pooled or not; a plain-HTTP hub takes Basic from
# loopback; `ddkv metric push` still works; no password in the hub's log.
source "$(dirname "$0")/lib.sh"
export DDKV_AUTH_HASH_ITERATIONS=10000 # PBKDF2 is slow under ASan; what is tested is the same
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
start_cluster 1
base=$DDKV_PORT_BASE
D() { "$DDKV" "$@" --endpoints "$EP"; }
ROOTPW=r00t-pw-hd1 HUBPW=hub-pw-hd2 DEVPW=dev-secret-hd3 VIEWPW=view-pw-hd4 NOPW=nogrant-pw-hd5
"$ROOT/deploy/certs.sh" "$WORK/certs" hub >/dev/null 2>&1 || fail "certs.sh"
CA=$WORK/certs/ca.pem

expect_exit 0 D user add root --new-password "$ROOTPW"
expect_exit 0 D user grant root root
expect_exit 0 D user add hub --new-password "$HUBPW"
expect_exit 0 D role add hubsvc
for p in clients/ metrics/ jobs/ jobresult/ series/; do expect_exit 0 D role grant hubsvc "$p" read; done
expect_exit 0 D role grant hubsvc hubsess/ readwrite
expect_exit 0 D user grant hub hubsvc
expect_exit 0 D role add dev1push
expect_exit 0 D role grant dev1push series/dev1/ readwrite
expect_exit 0 D role grant dev1push seriesmeta/dev1/ readwrite
expect_exit 0 D user add dev1 --new-password "$DEVPW"
expect_exit 0 D user grant dev1 dev1push
expect_exit 0 D role add viewer
for p in clients/ series/ seriesmeta/; do expect_exit 0 D role grant viewer "$p" read; done
expect_exit 0 D user add vera --new-password "$VIEWPW"
expect_exit 0 D user grant vera viewer
expect_exit 0 D user add nog --new-password "$NOPW"
expect_exit 0 D auth enable
export DDKV_USER=hub DDKV_PASSWORD=$HUBPW

HUB=127.0.0.1:$((base + 85))
"$DDKV" hub --endpoints "$EP" --http-addr "$HUB" --web-dir "$ROOT/web" \
  --https-cert "$WORK/certs/hub.pem" --https-key "$WORK/certs/hub.key" 2>"$WORK/hub.log" &
HUBPID=$!; PIDS+=($HUBPID)
for _ in $(seq 100); do curl -s -o /dev/null --cacert "$CA" "https://$HUB/health" && break; sleep 0.1; done
U=https://$HUB

# req METHOD URL [curl args]: CODE, the body in $WORK/body, headers in $WORK/hdr.
req() {
  local m=$1 u=$2; shift 2
  CODE=$(curl -s --cacert "$CA" -o "$WORK/body" -D "$WORK/hdr" -w '%{http_code}' -X "$m" "$@" "$u" || true)
}
body() { cat "$WORK/body"; }
now=$(date +%s%3N)

# --- one series, then a batch, by curl -u ---
req POST "$U/api/clients/dev1/series/temp" -u "dev1:$DEVPW" -H 'Content-Type: application/json' \
  --data "{\"unit\":\"C\",\"interval_ms\":1000,\"points\":[{\"t\":$((now - 2000)),\"v\":21.5},{\"t\":$((now - 1000)),\"v\":22.5}]}"
[ "$CODE" = 201 ] && grep -q '"written":2' "$WORK/body" || fail "single push with curl -u: $CODE $(body)"
req POST "$U/api/clients/dev1/series" -u "dev1:$DEVPW" --data "{\"series\":[
  {\"name\":\"hum\",\"unit\":\"%\",\"interval_ms\":5000,\"retention_s\":7200,\"points\":[{\"t\":$((now - 1500)),\"v\":40},{\"v\":41}]},
  {\"name\":\"light\",\"unit\":\"lx\",\"points\":[{\"t\":$((now - 500)),\"v\":300}]}]}"
[ "$CODE" = 201 ] && grep -q '"written":3' "$WORK/body" || fail "batched push: $CODE $(body)"
pass "a device user pushes with curl -u over HTTPS: one series (201, written 2) and a batch of two (201, written 3)"

# Pooled per credential: five more pushes cost the node no password check.
L0=$(metric_value "$(member_http n1)" ddkv_auth_logins_total)
for i in 1 2 3 4 5; do
  req POST "$U/api/clients/dev1/series/temp" -u "dev1:$DEVPW" --data '{"unit":"C","interval_ms":1000,"points":[{"v":22}]}'
  [ "$CODE" = 201 ] || fail "push $i: $CODE $(body)"
done
L1=$(metric_value "$(member_http n1)" ddkv_auth_logins_total)
[ -n "$L0" ] && [ $((L1 - L0)) -le 1 ] || fail "5 pushes with one credential cost $((L1 - L0)) logins (want <= 1)"
pass "five more pushes with the same credentials cost the node $((L1 - L0)) password checks (pooled, not 5)"

# --- a viewer sees them ---
req POST "$U/api/login" --data "{\"user\":\"vera\",\"password\":\"$VIEWPW\"}"
[ "$CODE" = 200 ] || fail "viewer login: $CODE $(body)"
ck=$(grep -i '^set-cookie:' "$WORK/hdr" | sed 's/^[^=]*=\([^;]*\);.*/\1/')
req GET "$U/api/clients/dev1/series" -H "Cookie: ddkv_session=$ck"
[ "$CODE" = 200 ] || fail "series list: $CODE $(body)"
python3 - "$WORK/body" <<'EOF' || fail "series list: $(body)"
import json, sys
s = {x["name"]: x for x in json.load(open(sys.argv[1]))}
assert set(s) == {"temp", "hum", "light"}, s
assert s["temp"]["unit"] == "C" and s["hum"]["retention_s"] == 7200 and s["hum"]["interval_ms"] == 5000, s
EOF
req GET "$U/api/clients/dev1/series/temp?window=5m" -H "Cookie: ddkv_session=$ck"
python3 - "$WORK/body" <<'EOF' || fail "temp points: $CODE $(body)"
import json, sys
b = json.load(open(sys.argv[1]))
assert sum(x["n"] for x in b) == 7 and min(x["min"] for x in b) == 21.5 and max(x["max"] for x in b) == 22.5, b
EOF
req GET "$U/api/clients/dev1/series/hum?window=5m" -H "Cookie: ddkv_session=$ck"
python3 -c 'import json,sys; b=json.load(open(sys.argv[1])); assert sum(x["n"] for x in b)==2, b' "$WORK/body" ||
  fail "hum points: $CODE $(body)"
pass "a signed-in viewer reads the pushed series (names, units, retention) and their points"

# --- a bad series in a batch: named, nothing written ---
req POST "$U/api/clients/dev1/series" -u "dev1:$DEVPW" --data \
  '{"series":[{"name":"okay","points":[{"v":1}]},{"name":"broken","points":[{"v":"x"}]}]}'
[ "$CODE" = 400 ] && grep -q 'series broken: points\[0\]' "$WORK/body" || fail "bad batch: $CODE $(body)"
req GET "$U/api/clients/dev1/series" -H "Cookie: ddkv_session=$ck"
grep -q '"okay"' "$WORK/body" && fail "a refused batch wrote its good series: $(body)"
req POST "$U/api/clients/dev1/series" -u "dev1:$DEVPW" --data '{"series":[]}'
[ "$CODE" = 400 ] || fail "an empty batch: $CODE $(body)"
req POST "$U/api/clients/dev1/series" -u "dev1:$DEVPW" --data "$(python3 -c '
import json; print(json.dumps({"series": [{"name": "s%d" % i, "points": [{"v": 1}]} for i in range(65)]}))')"
[ "$CODE" = 400 ] && grep -q '1 to 64' "$WORK/body" || fail "65 series in a batch: $CODE $(body)"
pass "a batch with a bad series names it and writes nothing; an empty or over-long batch is 400"

# --- a user without the grant: 403 in the cluster's words ---
req POST "$U/api/clients/dev1/series/temp" -u "nog:$NOPW" --data '{"points":[{"v":1}]}'
[ "$CODE" = 403 ] && grep -qi 'permission' "$WORK/body" || fail "a user without the grant: $CODE $(body)"
req POST "$U/api/clients/other/series/temp" -u "dev1:$DEVPW" --data '{"points":[{"v":1}]}'
[ "$CODE" = 403 ] || fail "dev1 pushing for another client: $CODE $(body)"
pass "a user lacking write on series/<id>/ gets 403 with the cluster's words (also dev1 for another client)"

# --- Basic only on the push routes ---
req GET "$U/api/clients/dev1/series" -u "vera:$VIEWPW"
[ "$CODE" = 401 ] || fail "Basic on a read route: $CODE $(body)"
req POST "$U/api/jobs/x/cancel" -u "root:$ROOTPW"
[ "$CODE" = 401 ] || fail "Basic on a job route: $CODE $(body)"
pass "Basic credentials are not taken beyond the push routes (401 there)"

# --- a changed password: the old one stops working at once, pooled or not ---
req POST "$U/api/clients/dev1/series/temp" -u "dev1:$DEVPW" --data '{"unit":"C","points":[{"v":22}]}'
[ "$CODE" = 201 ] || fail "a push before the password change: $CODE $(body)"
expect_exit 0 D user passwd dev1 --new-password "$DEVPW-2" --user root --password "$ROOTPW"
for i in 1 2; do
  req POST "$U/api/clients/dev1/series/temp" -u "dev1:$DEVPW" --data '{"unit":"C","points":[{"v":99}]}'
  [ "$CODE" = 401 ] || [ "$CODE" = 403 ] || fail "the old password after the change (push $i): $CODE $(body)"
  echo "  old password, push $i: $CODE $(body)"
done
expect_exit 0 D user passwd dev1 --new-password "$DEVPW" --user root --password "$ROOTPW"
pass "a changed password: the old one is refused at once although its client was pooled"

# --- wrong password, then the throttle ---
req POST "$U/api/clients/dev1/series/temp" -u "dev1:not-the-password" --data '{"points":[{"v":1}]}'
[ "$CODE" = 401 ] && grep -q 'wrong user or password' "$WORK/body" || fail "wrong password: $CODE $(body)"
grep -qi '^www-authenticate: Basic' "$WORK/hdr" || fail "401 without WWW-Authenticate: $(cat "$WORK/hdr")"
throttled=
for i in $(seq 6); do
  req POST "$U/api/clients/dev1/series/temp" -u "dev1:wrong-$i" --data '{"points":[{"v":1}]}'
  if [ "$CODE" = 429 ]; then throttled=1; break; fi
  [ "$CODE" = 401 ] || fail "failure $i: $CODE $(body)"
done
[ -n "$throttled" ] || fail "6 more wrong passwords were never throttled"
grep -qi '^retry-after: [0-9]' "$WORK/hdr" || fail "429 without Retry-After: $(cat "$WORK/hdr")"
req POST "$U/api/login" --data "{\"user\":\"vera\",\"password\":\"$VIEWPW\"}"
[ "$CODE" = 429 ] || fail "the login route is not throttled after failed Basic pushes: $CODE $(body)"
pass "a wrong password is 401 (WWW-Authenticate); repeated failures 429 with Retry-After, /api/login too (one throttle)"

# --- the CLI's push still works; a plain-HTTP hub takes Basic from loopback ---
DDKV_USER=dev1 DDKV_PASSWORD=$DEVPW expect_exit 0 D metric push dev1 temp 23.5 --unit C
HUB2=127.0.0.1:$((base + 86))
"$DDKV" hub --endpoints "$EP" --http-addr "$HUB2" --web-dir "$ROOT/web" 2>"$WORK/hub2.log" &
HUB2PID=$!; PIDS+=($HUB2PID)
for _ in $(seq 100); do curl -s -o /dev/null "http://$HUB2/health" && break; sleep 0.1; done
CODE=$(curl -s -o "$WORK/body" -w '%{http_code}' -u "dev1:$DEVPW" --data '{"points":[{"v":24.5}]}' \
  "http://$HUB2/api/clients/dev1/series/temp" || true)
[ "$CODE" = 201 ] || fail "plain HTTP from loopback with Basic: $CODE $(body)"
req GET "$U/api/clients/dev1/series/temp?window=5m" -H "Cookie: ddkv_session=$ck"
python3 -c 'import json,sys; b=json.load(open(sys.argv[1])); assert sum(x["n"] for x in b)==10 and max(x["max"] for x in b)==24.5, b' \
  "$WORK/body" || fail "temp after ddkv metric push and the plain-HTTP push: $(body)"
pass "ddkv metric push still works; a plain-HTTP hub takes Basic from loopback (both points read back)"

kill "$HUBPID" "$HUB2PID"; wait "$HUBPID" "$HUB2PID" 2>/dev/null || true
grep -E "Sanitizer|runtime error" "$WORK/hub.log" "$WORK/hub2.log" && fail "the hub's sanitizers reported"
for pw in "$DEVPW" "$NOPW" "$VIEWPW" "$ROOTPW" not-the-password "$(printf 'dev1:%s' "$DEVPW" | base64)"; do
  grep -qF -- "$pw" "$WORK/hub.log" "$WORK/hub2.log" && fail "a password in the hub's log"
done
pass "the hubs stopped cleanly, no password (nor its base64) in their logs"
echo "all $PASSED passed"
