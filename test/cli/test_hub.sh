#!/usr/bin/env bash
# The hub's HTTP API (SPEC.md "Hub, agent, jobs") against a one-node cluster,
# without a browser: the client list, metric points by sample time and by
# Lamport time, the cluster panel naming a dead member, a job posted and
# listed, and JSON errors for what does not exist.
source "$(dirname "$0")/lib.sh"
start_cluster 3
base=$DDKV_PORT_BASE
export DDKV_ENDPOINTS=$EP
HUB=127.0.0.1:$((base + 80))
"$DDKV" hub --http-addr "$HUB" --web-dir "$ROOT/web" 2>"$WORK/hub.log" &
PIDS+=($!)
for _ in $(seq 100); do curl -sf "http://$HUB/health" >/dev/null 2>&1 && break; sleep 0.1; done
curl -sf "http://$HUB/health" >/dev/null || fail "the hub does not answer: $(cat "$WORK/hub.log")"

# A machine as an agent writes it: presence, then three points.
now=$(date +%s%3N)
expect_exit 0 "$DDKV" write clients/box '{"name":"box","cpus":2}'
for i in 3 2 1; do
  expect_exit 0 "$DDKV" write "metrics/box/$(printf %013d $((now - i * 1000)))" "{\"ts\":$((now - i * 1000)),\"cpu\":$i}"
done
lamport=$(echo "$OUT" | grep -o 'at [0-9]*' | cut -d' ' -f2) # the last point's
expect_exit 0 "$DDKV" write "metrics/box/$(printf %013d $((now - 3600 * 1000)))" '{"ts":0,"cpu":9}' # an hour old

get() { curl -s -o "$WORK/body" -w '%{http_code}' "http://$HUB$1"; }
[ "$(get /api/clients)" = 200 ] || fail "/api/clients: $(cat "$WORK/body")"
python3 -c 'import json,sys; c=json.load(open(sys.argv[1])); assert [x["id"] for x in c]==["box"] and c[0]["cpus"]==2, c' \
  "$WORK/body" || fail "client list: $(cat "$WORK/body")"
pass "/api/clients lists the machine with its static data"

[ "$(get /api/clients/box/metrics)" = 200 ] || fail "metrics: $(cat "$WORK/body")"
python3 -c 'import json,sys; p=json.load(open(sys.argv[1])); assert [x["cpu"] for x in p]==[3,2,1], p' "$WORK/body" ||
  fail "default window: $(cat "$WORK/body")"
[ "$(get "/api/clients/box/metrics?since=$((now - 2500))")" = 200 ] || fail "since ms"
python3 -c 'import json,sys; p=json.load(open(sys.argv[1])); assert [x["cpu"] for x in p]==[2,1], p' "$WORK/body" ||
  fail "since a Unix time: $(cat "$WORK/body")"
[ "$(get "/api/clients/box/metrics?since=$((lamport - 1))")" = 200 ] || fail "since lamport"
python3 -c 'import json,sys; p=json.load(open(sys.argv[1])); assert sorted(x["cpu"] for x in p)==[1,9], p' "$WORK/body" ||
  fail "since a Lamport time (the last two written): $(cat "$WORK/body")"
[ "$(get /api/clients/nobody/metrics)" = 200 ] && [ "$(cat "$WORK/body")" = "[]" ] || fail "unknown client: $(cat "$WORK/body")"
pass "/api/clients/{id}/metrics: the last 40 minutes, since a Unix time in ms, since a Lamport time"

"$ROOT/deploy/cluster.sh" kill n3 >/dev/null
[ "$(get /api/cluster)" = 200 ] || fail "/api/cluster: $(cat "$WORK/body")"
python3 - "$WORK/body" <<'PY' || fail "cluster: $(cat "$WORK/body")"
import json, sys
c = json.load(open(sys.argv[1]))
assert sorted(n["name"] for n in c) == ["n1", "n2", "n3"], c
down = [n for n in c if not n["healthy"]]
assert [n["name"] for n in down] == ["n3"] and "error" in down[0], c
assert all(n.get("role") in ("leader", "follower") for n in c if n["healthy"]), c
# The leader knows how far behind each member is: match index and lag.
if any(n.get("role") == "leader" for n in c):
    assert all("match" in n and "lag_entries" in n and "lag_ms" in n for n in c), c
PY
pass "/api/cluster: every member's role, term, match index and lag, a dead one named and marked down"

printf 'timestamp,heart_rate\n2026-01-01T00:00:00Z,70\n2026-01-01T00:00:01Z,80\n' >"$WORK/r.csv"
code=$(curl -s -o "$WORK/body" -w '%{http_code}' -X POST --data-binary @"$WORK/r.csv" "http://$HUB/api/jobs?name=r.csv")
[ "$code" = 201 ] || [ "$code" = 200 ] || fail "POST /api/jobs: $code $(cat "$WORK/body")"
id=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["id"])' "$WORK/body")
[ "$(get /api/jobs)" = 200 ] || fail "/api/jobs"
python3 -c 'import json,sys; j=json.load(open(sys.argv[1])); assert [(x["id"],x["name"],x["state"]) for x in j]==[(sys.argv[2],"r.csv","queued")], j' \
  "$WORK/body" "$id" || fail "job list: $(cat "$WORK/body")"
[ "$(get "/api/jobs/$id")" = 200 ] || fail "/api/jobs/$id: $(cat "$WORK/body")"
pass "POST /api/jobs queues the file under its name; GET /api/jobs and /api/jobs/{id} show it"

for path in /api/jobs/nope /api/nothing /api/proxy/nobody; do
  code=$(get "$path")
  [ "${code:0:1}" = 4 ] || [ "${code:0:1}" = 5 ] || fail "$path answered $code"
  python3 -c 'import json,sys; assert json.load(open(sys.argv[1]))["error"]' "$WORK/body" ||
    fail "$path: not a JSON error: $(cat "$WORK/body")"
done
pass "what does not exist gets a JSON error with a 4xx/5xx status"
echo "${PASSED} passed, 0 failed"
