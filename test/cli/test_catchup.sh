#!/usr/bin/env bash
# A follower that cannot catch up must be seen and must recover, with no
# client writes to push it (issue 25):
#  1. the leader's snapshot image is deleted, then damaged, while a member
#     needs it: the leader logs the file, counts it in /metrics, takes a fresh
#     image and the member catches up within seconds;
#  2. a member restarted after losing the tail of its log (its data dir put
#     back to an older copy: it had acknowledged entries it no longer holds)
#     catches up from heartbeats alone;
#  3. a member that lags is reported not healthy by the leader's /status and
#     `ddkv status`, with its match index and lag, until it has caught up.
source "$(dirname "$0")/lib.sh"
export DDKV_SNAPSHOT_ENTRIES=100 DDKV_HEALTH_MAX_LAG_MS=1000
start_cluster 3
# (kept exported: members restarted below get the same settings)
CL=$ROOT/deploy/cluster.sh
# wait_caught_up NODE LEADER SECS: NODE's applied index reaches the leader's commit.
wait_caught_up() {
  local i want got
  want=$(status_field "$2" 's["commit"]')
  for ((i = 0; i < $3 * 10; i++)); do
    got=$(status_field "$1" 's["applied"]' 2>/dev/null || echo 0)
    [ "$got" -ge "$want" ] && { CAUGHT_MS=$((i * 100)); return 0; }
    sleep 0.1
  done
  fail "$1 stayed at applied $got while the leader committed $want (no client writes)"
}
write_n() { # write_n PREFIX N
  "$DDKV" bench --endpoints "$EP" --workload write --clients 4 --ops "$2" --keys 50 --value-size 64 \
    --timeout-ms 10000 -o json >"$WORK/bench.json" 2>&1 || fail "bench: $(cat "$WORK/bench.json")"
  "$DDKV" write --endpoints "$EP" "$1" "after" >/dev/null
}

# CATCHUP_ONLY="1 3" runs only those parts (to show each fails on a build without its fix).
only() { [ -z "${CATCHUP_ONLY:-}" ] || [[ " $CATCHUP_ONLY " == *" $1 "* ]]; }

for i in $(seq 30); do LEADER=$(status_leader) && break; sleep 0.2; done
[ -n "${LEADER:-}" ] || fail "no leader"
others=()
for n in n1 n2 n3; do [ "$n" = "$LEADER" ] || others+=("$n"); done
F=${others[0]}

# --- 1. the image a member needs is gone, then damaged ---
for damage in delete corrupt; do
  only 1 || break
  "$CL" kill "$F" >/dev/null
  write_n "img/$damage" 450
  # The leader has compacted its log behind an image: it must send F one.
  # (The image is written in the background: wait for it on a busy machine.)
  img=
  for i in $(seq 100); do
    img=$(ls "$DDKV_CLUSTER_DIR/$LEADER/snap/"*.snap 2>/dev/null | head -1 || true)
    [ -n "$img" ] && break
    sleep 0.1
  done
  [ -n "$img" ] || fail "the leader has no snapshot image after 450 writes"
  # ... and until no snapshot is being written or pruned (the listing holds still).
  prev=
  for i in $(seq 50); do
    cur=$(ls "$DDKV_CLUSTER_DIR/$LEADER/snap/" 2>/dev/null | tr '\n' ' ')
    [ "$cur" = "$prev" ] && [[ $cur != *tmp* ]] && break
    prev=$cur
    sleep 0.3
  done
  before=$(metric_value "$(member_http "$LEADER")" ddkv_snapshot_image_errors_total)
  for f in "$DDKV_CLUSTER_DIR/$LEADER/snap/"*.snap; do
    if [ $damage = delete ]; then
      rm -f "$f"
    else
      python3 - "$f" <<'PY'
import os, sys
p = sys.argv[1]
if not os.path.exists(p):
    sys.exit(0)
n = os.path.getsize(p)
with open(p, "r+b") as f:
    f.seek(n // 2)
    b = f.read(16)
    f.seek(n // 2)
    f.write(bytes(x ^ 0xA5 for x in b))
PY
    fi
  done
  "$CL" restart "$F" >/dev/null
  wait_caught_up "$F" "$LEADER" 15
  after=$(metric_value "$(member_http "$LEADER")" ddkv_snapshot_image_errors_total)
  [ "$after" -gt "$before" ] || fail "$damage: ddkv_snapshot_image_errors_total stayed $after"
  grep -q "snapshot image for index .* cannot be sent" "$DDKV_CLUSTER_DIR/$LEADER.log" ||
    fail "$damage: the leader did not log the unreadable image"
  [ "$("$DDKV" read --endpoints "127.0.0.1:$((DDKV_PORT_BASE + ${F#n}))" --consistency stale "img/$damage")" = after ] ||
    fail "$damage: $F lacks the last write after catching up"
  pass "$damage image: replaced, logged, counted; $F caught up in ${CAUGHT_MS} ms with no client write"
done

# --- 2. a member that lost the tail of its log ---
if only 2; then
"$CL" kill "$F" >/dev/null
cp -a "$DDKV_CLUSTER_DIR/$F" "$WORK/$F.old"
"$CL" restart "$F" >/dev/null
wait_caught_up "$F" "$LEADER" 15
write_n "tail/x" 60 # F acknowledges these ...
wait_caught_up "$F" "$LEADER" 15
"$CL" kill "$F" >/dev/null
rm -rf "${DDKV_CLUSTER_DIR:?}/$F"
cp -a "$WORK/$F.old" "$DDKV_CLUSTER_DIR/$F" # ... and comes back without them
regr0=$(metric_value "$(member_http "$LEADER")" ddkv_raft_follower_regressions_total)
"$CL" restart "$F" >/dev/null
wait_caught_up "$F" "$LEADER" 15
regr1=$(metric_value "$(member_http "$LEADER")" ddkv_raft_follower_regressions_total)
[ "$regr1" -gt "$regr0" ] || fail "the leader did not count the follower that lost its tail ($regr0 -> $regr1)"
[ "$("$DDKV" read --endpoints "127.0.0.1:$((DDKV_PORT_BASE + ${F#n}))" --consistency stale tail/x)" = after ] ||
  fail "$F lacks the lost tail after catching up"
pass "a member that lost its log tail caught up in ${CAUGHT_MS} ms from heartbeats alone"
fi

# --- 3. health tells the truth about a lagging member ---
only 3 || { echo "test_catchup: ${PASSED:-0} passed"; exit 0; }
"$CL" pause "$F" >/dev/null
# Writes go to the leader: a paused member takes a request and never answers.
EP=127.0.0.1:$((DDKV_PORT_BASE + ${LEADER#n}))
write_n "lag/x" 200
sleep 1.5 # past --health-max-lag-ms
h=$(status_field "$LEADER" "m['$F']['healthy']")
[ "$h" = False ] || fail "the leader reports paused $F healthy, 200 writes behind"
lag=$(status_field "$LEADER" "m['$F']['lag_entries']")
lagms=$(status_field "$LEADER" "m['$F']['lag_ms']")
[ "$lag" -ge 200 ] && [ "$lagms" -ge 1000 ] || fail "lag of $F: $lag entries, $lagms ms (want >= 200, >= 1000)"
"$DDKV" status --endpoints "127.0.0.1:$((DDKV_PORT_BASE + ${LEADER#n}))" -o json --timeout-ms 1000 >"$WORK/st.json" || true
python3 - "$WORK/st.json" "$F" <<'PY' || fail "ddkv status: $(cat "$WORK/st.json")"
import json, sys
rows = {r["name"]: r for r in map(json.loads, open(sys.argv[1]))}
r = rows[sys.argv[2]]
assert r["healthy"] is False and r["lag_entries"] >= 200 and r["match"] is not None, r
PY
metric_value "$(member_http "$LEADER")" 'ddkv_member_lag_entries{member="'"$F"'"}' >"$WORK/m"
[ "$(cut -d. -f1 <"$WORK/m")" -ge 200 ] || fail "metrics: member lag of $F is '$(cat "$WORK/m")'"
"$CL" resume "$F" >/dev/null
for i in $(seq 50); do
  [ "$(status_field "$LEADER" "m['$F']['healthy']")" = True ] && break
  sleep 0.1
done
[ "$(status_field "$LEADER" "m['$F']['healthy']")" = True ] || fail "$F not healthy again after catching up"
[ "$(status_field "$F" 's["healthy"]')" = True ] || fail "$F does not find itself healthy after catching up"
pass "a lagging member is reported not healthy ($lag entries, $lagms ms behind) until it caught up"
echo "test_catchup: ${PASSED:-0} passed"
