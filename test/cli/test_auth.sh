#!/usr/bin/env bash
# Authentication and permissions on a 3-node cluster: with auth enabled, a
# user with read on metrics/ reads there and nowhere else, writes without
# permission change nothing, wrong passwords and unknown users are refused
# alike, requests without credentials are refused, root can do everything,
# a follower checks the same, a revoke takes effect, `auth disable` opens up
# again; the agent logs in from its environment; no password reaches disk.
source "$(dirname "$0")/lib.sh"
# Fewer PBKDF2 iterations than the default 100,000: under ASan, OpenSSL's
# PBKDF2 runs ~20x slower (its allocations and copies are intercepted), and
# on a loaded test machine one login then took seconds. The count is stored
# with each hash; what is tested is the same.
export DDKV_AUTH_HASH_ITERATIONS=10000
start_cluster 3
D() { "$DDKV" "$@" --endpoints "$EP"; }
ROOTPW=r00t-pw-1
VIEWPW=view-pw-2
AS_ROOT=(--user root --password "$ROOTPW")
VIEW=(--user viewer --password "$VIEWPW")

# eventually CODE cmd...: like expect_exit, but retried for up to 5 s (a
# follower applies a change a heartbeat or so after the leader answered).
eventually() {
  local want=$1; shift
  for _ in $(seq 50); do
    set +e; OUT=$("$@" 2>"$WORK/stderr"); local got=$?; set -e
    [ "$got" -eq "$want" ] && { ERR=$(cat "$WORK/stderr"); return 0; }
    sleep 0.1
  done
  fail "'$*' exited $got, want $want, for 5 s (stderr: $(cat "$WORK/stderr"))"
}

# --- before enabling: everything is open, and the users are set up ---
expect_exit 0 D write metrics/x v1
expect_exit 0 D write other/y y1
expect_exit 0 D write metrics/cpu 42
expect_exit 2 D auth enable
[[ $ERR == *"needs a user 'root' holding the role 'root'"* ]] || fail "enable without root: $ERR"
expect_exit 0 D user add root --new-password "$ROOTPW"
echo "$VIEWPW" | D user add viewer >/dev/null 2>&1 || fail "user add viewer (password on stdin)"
expect_exit 0 D user grant root root
expect_exit 0 D role add metrics-read
expect_exit 0 D role grant metrics-read metrics/ read
expect_exit 0 D user grant viewer metrics-read
expect_exit 0 D auth status
[ "$OUT" = "auth: disabled" ] || fail "auth status before enable: $OUT"
pass "auth refuses to start without root; users and roles set up while it is off"

expect_exit 0 D auth enable
[ "$OUT" = "auth enabled" ] || fail "auth enable said: $OUT"
pass "auth enable"

# --- the viewer: read on metrics/ and nothing else ---
expect_exit 0 D read metrics/x "${VIEW[@]}"
[ "$OUT" = v1 ] || fail "viewer read metrics/x: '$OUT'"
expect_exit 0 D list metrics/ "${VIEW[@]}"
[ "$(printf '%s\n' "$OUT" | cut -f1 | tr '\n' ' ')" = "metrics/cpu metrics/x " ] || fail "viewer list: $OUT"
pass "viewer reads and lists metrics/"

expect_exit 2 D read other/y "${VIEW[@]}"
[[ $ERR == *"permission denied: user 'viewer' may not read key 'other/y'"* ]] || fail "read other/y: $ERR"
expect_exit 2 D list "" "${VIEW[@]}"
expect_exit 2 D list metrics "${VIEW[@]}"   # 'metrics' would cover metricsX/... too
expect_exit 2 D write metrics/x hacked "${VIEW[@]}"
[[ $ERR == *"may not write key 'metrics/x'"* ]] || fail "write metrics/x: $ERR"
expect_exit 2 D delete metrics/x "${VIEW[@]}"
expect_exit 2 D cas metrics/x v1 hacked "${VIEW[@]}"
expect_exit 2 D write other/z new "${VIEW[@]}"
expect_exit 2 D lease grant 30 "${VIEW[@]}"
expect_exit 2 D user add mallory --new-password x "${VIEW[@]}"
expect_exit 2 D auth disable "${VIEW[@]}"
expect_exit 0 D read metrics/x "${AS_ROOT[@]}"
[ "$OUT" = v1 ] || fail "metrics/x changed by refused requests: '$OUT'"
expect_exit 1 D read other/z "${AS_ROOT[@]}"
expect_exit 0 D auth status "${VIEW[@]}"
[ "$OUT" = "$(printf 'auth: enabled\nuser: viewer')" ] || fail "auth status as viewer: $OUT"
pass "viewer cannot read other/, list beyond metrics/, write, delete, cas, lease or administer; nothing changed"

# --- credentials ---
expect_exit 2 D read metrics/x --user viewer --password wrong
WRONG=$ERR
[[ $WRONG == *"wrong user or password"* ]] || fail "wrong password: $WRONG"
expect_exit 2 D read metrics/x --user ghost --password wrong
[ "${ERR//ghost/viewer}" = "$WRONG" ] || fail "unknown user answered differently: '$ERR' vs '$WRONG'"
expect_exit 2 D read metrics/x
[[ $ERR == *"authentication required"* ]] || fail "no credentials: $ERR"
expect_exit 0 D ping
pass "wrong password and unknown user refused alike; no credentials refused; ping stays open"

printf '%s\n' "$VIEWPW" >"$WORK/viewer.pw"
expect_exit 0 D read metrics/cpu --user viewer --password-file "$WORK/viewer.pw"
[ "$OUT" = 42 ] || fail "password file read: $OUT"
OUT=$(DDKV_USER=viewer DDKV_PASSWORD=$VIEWPW "$DDKV" read metrics/cpu --endpoints "$EP") || fail "env credentials"
[ "$OUT" = 42 ] || fail "env credentials read: $OUT"
expect_exit 2 D read metrics/x --password "$VIEWPW"
[[ $ERR == *"need --user"* ]] || fail "password without user: $ERR"
pass "credentials from --password-file and DDKV_USER/DDKV_PASSWORD"

# --- root can do everything ---
expect_exit 0 D write other/y y2 "${AS_ROOT[@]}"
expect_exit 0 D cas other/y y2 y3 "${AS_ROOT[@]}"
expect_exit 0 D delete metrics/cpu "${AS_ROOT[@]}"
expect_exit 0 D list "" "${AS_ROOT[@]}"
expect_exit 0 D status "${AS_ROOT[@]}"
expect_exit 0 D role add app-rw "${AS_ROOT[@]}"
expect_exit 0 D role grant app-rw app/ readwrite "${AS_ROOT[@]}"
expect_exit 0 D user add writer --new-password w-pw "${AS_ROOT[@]}"
expect_exit 0 D user grant writer app-rw "${AS_ROOT[@]}"
expect_exit 0 D user list "${AS_ROOT[@]}"
printf '%s\n' "$OUT" | grep -qx $'writer\tapp-rw' || fail "user list: $OUT"
expect_exit 0 D role get app-rw "${AS_ROOT[@]}" -o json
[ "$OUT" = '{"role":"app-rw","grants":[{"perm":"readwrite","prefix":"app/"}]}' ] || fail "role get: $OUT"
expect_exit 0 D write app/k 1 --user writer --password w-pw
expect_exit 2 D write other/k 1 --user writer --password w-pw
expect_exit 2 D user remove root "${AS_ROOT[@]}"
pass "root writes, deletes, lists everything and administers users and roles; a readwrite grant works"

# --- a follower checks the same ---
L=$("$DDKV" ping --endpoints "$EP" -o json | python3 -c 'import json,sys; print(json.load(sys.stdin)["leader"])')
for i in 1 2 3; do [ "n$i" != "$L" ] && { F=127.0.0.1:$((DDKV_PORT_BASE + i)); break; }; done
expect_exit 0 "$DDKV" read metrics/x --endpoints "$F" --consistency stale "${VIEW[@]}"
expect_exit 2 "$DDKV" read other/y --endpoints "$F" --consistency stale "${VIEW[@]}"
expect_exit 2 "$DDKV" read metrics/x --endpoints "$F" --consistency stale
expect_exit 2 "$DDKV" write metrics/x via-follower --endpoints "$F" "${VIEW[@]}"
pass "follower $F: the same answers"

# --- a revoke takes effect, on the leader and the follower ---
expect_exit 0 D role revoke metrics-read metrics/ "${AS_ROOT[@]}"
expect_exit 2 D read metrics/x "${VIEW[@]}"
eventually 2 "$DDKV" read metrics/x --endpoints "$F" --consistency stale "${VIEW[@]}"
expect_exit 0 D role grant metrics-read metrics/ read "${AS_ROOT[@]}"
eventually 0 "$DDKV" read metrics/x --endpoints "$F" --consistency stale "${VIEW[@]}"
expect_exit 0 D user passwd viewer --new-password new-view-pw "${AS_ROOT[@]}"
expect_exit 2 D read metrics/x "${VIEW[@]}"
expect_exit 0 D read metrics/x --user viewer --password new-view-pw
pass "revoking a grant and changing a password take effect (leader and follower)"

# --- the agent takes its credentials from the environment ---
expect_exit 0 D role add agents "${AS_ROOT[@]}"
for p in clients/ metrics/ series/ seriesmeta/ req/ resp/; do expect_exit 0 D role grant agents "$p" readwrite "${AS_ROOT[@]}"; done
expect_exit 0 D user add agent1 --new-password a-pw "${AS_ROOT[@]}"
expect_exit 0 D user grant agent1 agents "${AS_ROOT[@]}"
DDKV_USER=agent1 DDKV_PASSWORD=a-pw "$DDKV" agent --endpoints "$EP" --name authbox --interval-ms 200 \
  2>"$WORK/agent.log" &
AGENT=$!
PIDS+=("$AGENT")
eventually 0 D read clients/authbox "${AS_ROOT[@]}"
kill -TERM "$AGENT"; wait "$AGENT" 2>/dev/null || true
pass "the agent logs in from DDKV_USER/DDKV_PASSWORD and reports"

# --- no password in the data dirs (only salted hashes) ---
for pw in "$ROOTPW" "$VIEWPW" new-view-pw w-pw; do
  ! grep -rqa -- "$pw" "$DDKV_CLUSTER_DIR" 2>/dev/null || fail "password '$pw' found on disk"
done
pass "no password is stored in the data dirs or logs"

# --- disable: open again ---
expect_exit 2 D auth disable
expect_exit 0 D auth disable "${AS_ROOT[@]}"
eventually 0 D write other/open 1
eventually 0 "$DDKV" read other/y --endpoints "$F" --consistency stale
pass "auth disable (root only) restores open access"
echo "${PASSED} passed, 0 failed"
