#!/usr/bin/env bash
# The hub's sign-in (issue 23 item 1) against a cluster with auth on: every
# /api/* but /api/login and /health answers 401 without a session; a login
# gives an HttpOnly, SameSite=Strict cookie and a CSRF token; a viewer reads
# the dashboards and the cluster refuses its job upload (403) while an
# operator's goes through; a state-changing request without the token is
# 403; a session survives a hub restart and works on a second hub; logout on
# one hub ends it on the other; sessions expire; root manages users and
# roles from /api/users, a viewer may not; no password reaches a log. Before
# auth is on: the hub refuses to listen beyond loopback unless told to, and
# /api/session says auth is off.
source "$(dirname "$0")/lib.sh"
export DDKV_AUTH_HASH_ITERATIONS=10000 # PBKDF2 is slow under ASan; what is tested is the same
start_cluster 1
base=$DDKV_PORT_BASE
D() { "$DDKV" "$@" --endpoints "$EP"; }
ROOTPW=r00t-pw-hub1 HUBPW=hub-svc-pw-2 VIEWPW=view-pw-3 OPPW=oper-pw-4

# req METHOD URL [curl args]: CODE, the body in $WORK/body, headers in $WORK/hdr.
req() {
  local m=$1 u=$2; shift 2
  CODE=$(curl -s -o "$WORK/body" -D "$WORK/hdr" -w '%{http_code}' -X "$m" "$@" "$u")
}
body() { cat "$WORK/body"; }
jget() { python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))[sys.argv[2]])' "$WORK/body" "$1"; }
start_hub() { # NAME ADDR [flags]: PID_hub_NAME
  local n=$1 a=$2; shift 2
  "$DDKV" hub --endpoints "$EP" --http-addr "$a" --web-dir "$ROOT/web" "$@" 2>>"$WORK/hub_$n.log" &
  local pid=$!
  PIDS+=("$pid")
  printf -v "PID_hub_$n" '%s' "$pid"
  for _ in $(seq 100); do curl -s -o /dev/null "http://$a/health" && return 0; kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  fail "hub $n did not start: $(tail -3 "$WORK/hub_$n.log")"
}
stop_hub() { local p="PID_hub_$1"; kill "${!p}"; wait "${!p}" 2>/dev/null || true; }

# --- auth off: loopback only, and the page is told ---
HA=127.0.0.1:$((base + 81))
# 192.0.2.1 (TEST-NET-1) is no address of this machine: a hub that did not
# refuse would fail to bind it, saying so, and so never listens beyond loopback.
set +e
"$DDKV" hub --endpoints "$EP" --http-addr 192.0.2.1:$((base + 82)) --web-dir "$ROOT/web" 2>"$WORK/open.log"
rc=$?
set -e
[ $rc = 2 ] && grep -q "authentication off" "$WORK/open.log" || fail "auth off, beyond loopback: exit $rc: $(cat "$WORK/open.log")"
set +e
"$DDKV" hub --endpoints "$EP" --http-addr 192.0.2.1:$((base + 82)) --web-dir "$ROOT/web" --allow-no-auth 2>"$WORK/open.log"
rc=$?
set -e
grep -q "authentication off" "$WORK/open.log" && fail "--allow-no-auth still refused: $(cat "$WORK/open.log")"
grep -q "cannot listen" "$WORK/open.log" || fail "--allow-no-auth: $(cat "$WORK/open.log")"
pass "auth off: the hub refuses to listen beyond loopback (exit 2, says why) unless --allow-no-auth"

start_hub a "$HA"
req GET "http://$HA/api/session"
[ "$CODE" = 200 ] && [ "$(jget auth)" = False ] || fail "session with auth off: $CODE $(body)"
req GET "http://$HA/api/clients"
[ "$CODE" = 200 ] || fail "auth off: /api/clients $CODE $(body)"
stop_hub a
pass "auth off: /api/session says so, the API is open on loopback"

# --- users and roles, then auth on ---
expect_exit 0 D user add root --new-password "$ROOTPW"
expect_exit 0 D user grant root root
expect_exit 0 D user add hub --new-password "$HUBPW"
expect_exit 0 D role add hubsvc
for p in clients/ metrics/ jobs/ jobresult/; do expect_exit 0 D role grant hubsvc "$p" read; done
expect_exit 0 D role grant hubsvc hubsess/ readwrite
expect_exit 0 D user grant hub hubsvc
expect_exit 0 D role add viewer
for p in clients/ metrics/ jobs/ jobresult/; do expect_exit 0 D role grant viewer "$p" read; done
expect_exit 0 D role add operator
for p in clients/ metrics/ jobresult/; do expect_exit 0 D role grant operator "$p" read; done
for p in jobs/ jobq/ jobc/ jobdata/; do expect_exit 0 D role grant operator "$p" readwrite; done
expect_exit 0 D user add vera --new-password "$VIEWPW"
expect_exit 0 D user grant vera viewer
expect_exit 0 D user add otto --new-password "$OPPW"
expect_exit 0 D user grant otto operator
expect_exit 0 D user grant otto viewer
expect_exit 0 D write clients/box '{"name":"box"}'
expect_exit 0 D auth enable
export DDKV_USER=hub DDKV_PASSWORD=$HUBPW
start_hub a "$HA"

req GET "http://$HA/api/clients"
[ "$CODE" = 401 ] || fail "no session: /api/clients $CODE $(body)"
req GET "http://$HA/api/session"
[ "$CODE" = 401 ] || fail "no session: /api/session $CODE $(body)"
req GET "http://$HA/api/events"
[ "$CODE" = 401 ] || fail "no session: /api/events $CODE $(body)"
req GET "http://$HA/health"
[ "$CODE" = 200 ] || fail "/health without a session: $CODE $(body)"
req GET "http://$HA/"
[ "$CODE" = 200 ] || fail "the page without a session: $CODE"
pass "auth on: /api/* answers 401 without a session; /health and the page do not"

login() { # USER PASSWORD [curl args]: the cookie in $WORK/jar_USER, CSRF in $CSRF
  req POST "http://$HA/api/login" -H 'Content-Type: application/json' --data "{\"user\":\"$1\",\"password\":\"$2\"}" \
    -c "$WORK/jar_$1" "${@:3}"
}
login vera wrong-pw
[ "$CODE" = 401 ] && [ "$(jget error)" = "wrong user or password" ] || fail "wrong password: $CODE $(body)"
login nobody "$VIEWPW"
[ "$CODE" = 401 ] && [ "$(jget error)" = "wrong user or password" ] || fail "unknown user: $CODE $(body)"
login vera "$VIEWPW"
[ "$CODE" = 200 ] || fail "login vera: $CODE $(body)"
VCSRF=$(jget csrf)
[ "$(jget user)" = vera ] && [ "$(jget roles)" = "['viewer']" ] && [ ${#VCSRF} = 64 ] || fail "login reply: $(body)"
sc=$(grep -i '^set-cookie:' "$WORK/hdr")
for attr in HttpOnly SameSite=Strict Max-Age=28800 Path=/; do
  [[ $sc == *"$attr"* ]] || fail "cookie lacks $attr: $sc"
done
[[ $sc == *Secure* ]] && fail "Secure on a plain HTTP hub: $sc"
pass "login: wrong password and unknown user alike 401; a viewer gets user, roles, csrf and an HttpOnly SameSite=Strict cookie"

# Bad input: each a clear error, the hub keeps serving.
req POST "http://$HA/api/login" --data-binary $'\x00\xff{garbage'
[ "$CODE" = 400 ] && [[ $(body) == *'wants JSON'* ]] || fail "garbage login body: $CODE $(body)"
req POST "http://$HA/api/login" --data "$(head -c 9000 /dev/zero | tr '\0' x)"
[ "$CODE" = 413 ] || fail "a 9000-byte login body: $CODE $(body)"
req POST "http://$HA/api/login" --data '{"user":"<b>x</b>\u00e9","password":"p"}'
[ "$CODE" = 401 ] || fail "a user name with HTML: $CODE $(body)"
req POST "http://$HA/api/login" --data '{"user":"vera","password":"a\u0000b"}'
[ "$CODE" = 400 ] || fail "a password with NUL (JSON with \\u0000 is refused whole): $CODE $(body)"
req GET "http://$HA/api/clients" -H "Cookie: ddkv_session=$(head -c 48 /dev/urandom | od -An -tx1 | tr -d ' \n' | head -c 32).$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n')"
[ "$CODE" = 401 ] || fail "a forged cookie: $CODE $(body)"
req GET "http://$HA/api/clients" -H "Cookie: ddkv_session=../../etc; ddkv_session=%00"
[ "$CODE" = 401 ] || fail "a malformed cookie: $CODE $(body)"
VSID=$(awk '$6 == "ddkv_session" {print $7}' "$WORK/jar_vera")
req GET "http://$HA/api/clients" -H "Cookie: ddkv_session=${VSID%%.*}.$(printf '0%.0s' $(seq 64))"
[ "$CODE" = 401 ] || fail "a real session id with the wrong key: $CODE $(body)"
req GET "http://$HA/health"
[ "$CODE" = 200 ] || fail "the hub after bad input: $CODE"
pass "bad input: a garbage or oversized login body, HTML in a name, NUL in a password, forged, malformed and wrong-key cookies each get a clear 4xx"

V=(-b "$WORK/jar_vera")
req GET "http://$HA/api/clients" "${V[@]}"
[ "$CODE" = 200 ] && [[ $(body) == *box* ]] || fail "viewer /api/clients: $CODE $(body)"
req GET "http://$HA/api/session" "${V[@]}"
[ "$CODE" = 200 ] && [ "$(jget user)" = vera ] && [ "$(jget csrf)" = "$VCSRF" ] || fail "viewer session: $CODE $(body)"
printf 'timestamp,heart_rate\n2026-01-01T00:00:00Z,70\n' >"$WORK/r.csv"
req POST "http://$HA/api/jobs?name=r.csv" "${V[@]}" --data-binary @"$WORK/r.csv"
[ "$CODE" = 403 ] && [[ $(body) == *X-CSRF-Token* ]] || fail "viewer upload without the token: $CODE $(body)"
req POST "http://$HA/api/jobs?name=r.csv" "${V[@]}" -H "X-CSRF-Token: $VCSRF" --data-binary @"$WORK/r.csv"
[ "$CODE" = 403 ] && [[ $(body) == *"permission denied"* ]] || fail "viewer upload with the token: $CODE $(body)"
expect_exit 0 D list jobs/ --user root --password "$ROOTPW"
[ -z "$OUT" ] || fail "a refused upload left a job: $OUT"
pass "viewer: reads the dashboards; its upload is 403 without the CSRF token and 403 from the cluster's permissions with it"

login otto "$OPPW"
[ "$CODE" = 200 ] || fail "login otto: $CODE $(body)"
OCSRF=$(jget csrf)
O=(-b "$WORK/jar_otto")
req POST "http://$HA/api/jobs?name=r.csv" "${O[@]}" -H "X-CSRF-Token: $VCSRF" --data-binary @"$WORK/r.csv"
[ "$CODE" = 403 ] || fail "operator upload with the viewer's token: $CODE $(body)"
req POST "http://$HA/api/jobs?name=r.csv" "${O[@]}" -H "X-CSRF-Token: $OCSRF" --data-binary @"$WORK/r.csv"
[ "$CODE" = 201 ] || fail "operator upload: $CODE $(body)"
pass "operator: the upload goes through with its own token, not with another session's"

# --- an event stream carries only what its person may read ---
expect_exit 0 D role add clients-only --user root --password "$ROOTPW"
expect_exit 0 D role grant clients-only clients/ read --user root --password "$ROOTPW"
expect_exit 0 D user add cleo --new-password cleo-pw-6 --user root --password "$ROOTPW"
expect_exit 0 D user grant cleo clients-only --user root --password "$ROOTPW"
login cleo cleo-pw-6
[ "$CODE" = 200 ] || fail "login cleo: $CODE $(body)"
curl -sN -m 4 -b "$WORK/jar_cleo" "http://$HA/api/events" >"$WORK/ev_cleo" 2>/dev/null &
EV1=$!; PIDS+=($EV1)
curl -sN -m 4 -b "$WORK/jar_otto" "http://$HA/api/events" >"$WORK/ev_otto" 2>/dev/null &
EV2=$!; PIDS+=($EV2)
sleep 1.5
expect_exit 0 D write "metrics/box/$(date +%s%3N)" '{"ts":1,"cpu":7}' --user root --password "$ROOTPW"
expect_exit 0 D write clients/box '{"name":"box","v":2}' --user root --password "$ROOTPW"
wait "$EV1" "$EV2" 2>/dev/null || true
grep -q '^event: metric' "$WORK/ev_otto" && grep -q '^event: client' "$WORK/ev_otto" || fail "otto's stream: $(head -c 600 "$WORK/ev_otto")"
# The hub's user here may not read series/: the hub says so once and does
# not spin on that watch (a reset a turn flooded every stream before).
nres=$(grep -c '^event: reset' "$WORK/ev_otto" || true)
[ "$nres" -le 1 ] || fail "otto's stream carries $nres resets: a watch the hub may not read spins"
[ "$(grep -c 'cannot watch series/' "$WORK/hub_a.log")" -ge 1 ] || fail "the hub does not say it cannot watch series/"
grep -q '^event: client' "$WORK/ev_cleo" || fail "cleo's stream lacks the client event: $(head -c 600 "$WORK/ev_cleo")"
grep -q '^event: metric' "$WORK/ev_cleo" && fail "cleo (no read on metrics/) got a metric event"
pass "event streams: a user with read on clients/ only gets client events and no metric events; an operator gets both"

# --- Host and Origin ---
port=${HA##*:}
req GET "http://$HA/api/clients" "${O[@]}" -H "Host: rebind.example:$port"
[ "$CODE" = 403 ] && [[ $(body) == *"Host"* ]] || fail "foreign Host: $CODE $(body)"
req GET "http://$HA/" -H "Host: rebind.example"
[ "$CODE" = 403 ] || fail "foreign Host on the page: $CODE"
# (curl keeps a cookie to the URL's host: for another Host it is sent by hand)
req GET "http://$HA/api/clients" -H "Cookie: ddkv_session=$(awk '$6 == "ddkv_session" {print $7}' "$WORK/jar_otto")" \
  -H "Host: localhost:$port"
[ "$CODE" = 200 ] || fail "Host localhost: $CODE $(body)"
req POST "http://$HA/api/jobs?name=r.csv" "${O[@]}" -H "X-CSRF-Token: $OCSRF" -H "Origin: http://evil.example" \
  --data-binary @"$WORK/r.csv"
[ "$CODE" = 403 ] && [[ $(body) == *"another site"* ]] || fail "cross-site POST: $CODE $(body)"
login vera "$VIEWPW" -H "Origin: http://evil.example"
[ "$CODE" = 403 ] || fail "cross-site login: $CODE $(body)"
req POST "http://$HA/api/jobs?name=r.csv" "${O[@]}" -H "X-CSRF-Token: $OCSRF" -H "Origin: http://$HA" \
  --data-binary @"$WORK/r.csv"
[ "$CODE" = 201 ] || fail "same-origin POST: $CODE $(body)"
pass "Host: a DNS name not the hub's is 403 (localhost and IPs pass); Origin of another site is 403, the hub's own passes"

# --- throttling, per client address (127.0.0.9 guesses; 127.0.0.1 is unaffected) ---
for i in 1 2 3; do
  req POST "http://$HA/api/login" --interface 127.0.0.9 --data '{"user":"vera","password":"guess'$i'"}'
  [ "$CODE" = 401 ] || fail "guess $i: $CODE $(body)"
done
req POST "http://$HA/api/login" --interface 127.0.0.9 --data "{\"user\":\"vera\",\"password\":\"$VIEWPW\"}"
[ "$CODE" = 429 ] && grep -qi '^retry-after: [0-9]' "$WORK/hdr" || fail "4th try after 3 failures: $CODE $(body)"
login vera "$VIEWPW"
[ "$CODE" = 200 ] || fail "another address is throttled too: $CODE $(body)"
VCSRF=$(jget csrf)
sleep 1.2
req POST "http://$HA/api/login" --interface 127.0.0.9 --data "{\"user\":\"vera\",\"password\":\"$VIEWPW\"}"
[ "$CODE" = 200 ] || fail "after the wait: $CODE $(body)"
pass "failed logins: after 3 from one address it must wait (429, Retry-After); other addresses sign in meanwhile"

# --- stateless: a restart, a second hub, logout on one ends it on both ---
stop_hub a
start_hub a "$HA"
req GET "http://$HA/api/session" "${V[@]}"
[ "$CODE" = 200 ] && [ "$(jget user)" = vera ] || fail "session after a hub restart: $CODE $(body)"
HB=127.0.0.1:$((base + 83))
start_hub b "$HB"
req GET "http://$HB/api/clients" "${V[@]}"
[ "$CODE" = 200 ] || fail "session on a second hub: $CODE $(body)"
pass "a session survives a hub restart and works on a second hub"

req POST "http://$HB/api/logout" "${V[@]}"
[ "$CODE" = 403 ] || fail "logout without the token: $CODE $(body)"
req POST "http://$HB/api/logout" "${V[@]}" -H "X-CSRF-Token: $VCSRF"
[ "$CODE" = 200 ] && grep -qi '^set-cookie: ddkv_session=;.*Max-Age=0' "$WORK/hdr" || fail "logout: $CODE $(body) $(cat "$WORK/hdr")"
req GET "http://$HA/api/clients" "${V[@]}"
[ "$CODE" = 401 ] || fail "the old cookie after logout on the other hub: $CODE $(body)"
pass "logout (CSRF-checked) clears the cookie and ends the session on every hub"

# --- user management: root may, a viewer may not ---
login root "$ROOTPW"
RCSRF=$(jget csrf)
[ "$(jget roles)" = "['root']" ] || fail "root's roles: $(body)"
R=(-b "$WORK/jar_root" -H "X-CSRF-Token: $RCSRF")
req GET "http://$HA/api/users" "${R[@]}"
[ "$CODE" = 200 ] && [[ $(body) == *'"name":"otto"'* ]] && [[ $(body) == *'"operator"'* ]] || fail "list users: $CODE $(body)"
req POST "http://$HA/api/users" "${R[@]}" --data '{"user":"carol","password":"carol-pw-5"}'
[ "$CODE" = 201 ] || fail "add carol: $CODE $(body)"
req POST "http://$HA/api/users/carol/grant" "${R[@]}" --data '{"role":"viewer"}'
[ "$CODE" = 200 ] || fail "grant: $CODE $(body)"
login carol carol-pw-5
[ "$CODE" = 200 ] && [ "$(jget roles)" = "['viewer']" ] || fail "carol signs in as a viewer: $CODE $(body)"
req POST "http://$HA/api/users/carol/revoke" "${R[@]}" --data '{"role":"viewer"}'
[ "$CODE" = 200 ] || fail "revoke: $CODE $(body)"
req GET "http://$HA/api/session" -b "$WORK/jar_carol"
[ "$CODE" = 200 ] && [ "$(jget roles)" = "[]" ] || fail "carol's roles after the revoke: $CODE $(body)"
req GET "http://$HA/api/clients" -b "$WORK/jar_carol"
[ "$CODE" = 403 ] || fail "carol reads clients after the revoke: $CODE $(body)"
req POST "http://$HA/api/users/carol/remove" "${R[@]}"
[ "$CODE" = 200 ] || fail "remove: $CODE $(body)"
expect_exit 0 D user list --user root --password "$ROOTPW"
[[ $OUT == *carol* ]] && fail "carol still listed: $OUT"
login otto "$OPPW"
OCSRF=$(jget csrf)
req GET "http://$HA/api/users" "${O[@]}"
[ "$CODE" = 403 ] || fail "operator lists users: $CODE $(body)"
req POST "http://$HA/api/users" "${O[@]}" -H "X-CSRF-Token: $OCSRF" --data '{"user":"mallory","password":"x-pw"}'
[ "$CODE" = 403 ] || fail "operator adds a user: $CODE $(body)"
pass "root lists users and roles, adds a user, grants and revokes a role (seen at once), removes the user; an operator is refused"

# --- expiry ---
stop_hub b
start_hub b "$HB" --session-ttl-s 2
req POST "http://$HB/api/login" --data "{\"user\":\"otto\",\"password\":\"$OPPW\"}" -c "$WORK/jar_short"
[ "$CODE" = 200 ] && grep -qi '^set-cookie:.*Max-Age=2;' "$WORK/hdr" || fail "short session: $CODE $(body)"
req GET "http://$HB/api/clients" -b "$WORK/jar_short"
[ "$CODE" = 200 ] || fail "short session at once: $CODE $(body)"
sleep 2.5
# curl drops an expired cookie itself: send it by hand, as a stolen copy would be.
ck=$(awk '$6 == "ddkv_session" {print $7}' "$WORK/jar_short")
req GET "http://$HB/api/clients" -H "Cookie: ddkv_session=$ck"
[ "$CODE" = 401 ] && [[ $(body) == *expired* || $(body) == *ended* ]] || fail "expired session: $CODE $(body)"
pass "a session expires (--session-ttl-s), its cookie refused afterwards"

for pw in "$ROOTPW" "$VIEWPW" "$OPPW" carol-pw-5; do
  grep -q -- "$pw" "$WORK"/hub_*.log && fail "a password in a hub log"
done
pass "no password in the hub's logs"
stop_hub a
stop_hub b
grep -E "Sanitizer|runtime error" "$WORK"/hub_*.log && fail "the hub's sanitizers reported"
pass "the hubs stopped cleanly (no sanitizer report)"
echo "all $PASSED passed"
