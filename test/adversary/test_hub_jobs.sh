#!/usr/bin/env bash
# Issue 22, the hub's part of findings 10 and 7.
# 10: a job name over 127 bytes (the node's bound) answered 503 after the
#     whole file had been stored; now 400 with a JSON error, before the body
#     is read, and a name of 127 bytes is accepted.
# 7:  the hub followed the key a job record names as its "result" (a worker
#     chose it), so a record naming secret/k made GET /api/jobs/{id} serve
#     that key to anyone. Now the hub reads a job's result only at
#     jobresult/<that job's id>, whatever the record says.
source "$(dirname "$0")/test_hub_lib.bash"
start_cluster 3
export DDKV_ENDPOINTS=$EP
start_hub
get() { curl -s -o "$WORK/body" -w '%{http_code}' "http://$HUB$1"; }
post() { curl -s -o "$WORK/body" -w '%{http_code}' -X POST --data-binary @"$WORK/r.csv" "http://$HUB$1"; }
printf 'timestamp,heart_rate\n2026-01-01T00:00:00Z,70\n' >"$WORK/r.csv"

long=$(printf 'n%.0s' $(seq 128))
code=$(post "/api/jobs?name=$long")
[ "$code" = 400 ] || fail "a 128-byte job name answered $code: $(cat "$WORK/body")"
python3 -c 'import json,sys; e=json.load(open(sys.argv[1]))["error"]; assert "127 bytes" in e, e' "$WORK/body" ||
  fail "not a clear JSON error: $(cat "$WORK/body")"
name=${long:1}
code=$(post "/api/jobs?name=$name")
[ "$code" = 201 ] || fail "a 127-byte job name answered $code: $(cat "$WORK/body")"
id=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["id"])' "$WORK/body")
[ "$(get "/api/jobs/$id")" = 200 ] || fail "/api/jobs/$id"
python3 -c 'import json,sys; assert json.load(open(sys.argv[1]))["name"]==sys.argv[2]' "$WORK/body" "$name" ||
  fail "the job's name: $(cat "$WORK/body")"
pass "a job name of 128 bytes gets 400 with a JSON error; one of 127 bytes is queued under that name"

expect_exit 0 "$DDKV" write secret/k 'TOPSECRET-42'
expect_exit 0 "$DDKV" write jobs/forged '{"id":"forged","state":"done","name":"x","result":"secret/k"}'
[ "$(get /api/jobs/forged)" = 200 ] || fail "/api/jobs/forged: $(cat "$WORK/body")"
! grep -q TOPSECRET "$WORK/body" || fail "the hub served the key a job record named: $(cat "$WORK/body")"
expect_exit 0 "$DDKV" write jobresult/legit '{"columns":[],"rows":{"used":1}}'
expect_exit 0 "$DDKV" write jobs/legit '{"id":"legit","state":"done","result":"jobresult/legit"}'
expect_exit 0 "$DDKV" write jobs/other '{"id":"other","state":"done","result":"jobresult/legit"}'
[ "$(get /api/jobs/legit)" = 200 ] || fail "/api/jobs/legit"
python3 -c 'import json,sys; assert json.load(open(sys.argv[1]))["result_value"]["rows"]["used"]==1' "$WORK/body" ||
  fail "a job's own result is not served: $(cat "$WORK/body")"
[ "$(get /api/jobs/other)" = 200 ] || fail "/api/jobs/other"
python3 -c 'import json,sys; assert "result_value" not in json.load(open(sys.argv[1]))' "$WORK/body" ||
  fail "another job's result served for a record naming it: $(cat "$WORK/body")"
pass "a job's result is read only at jobresult/<its id>: a record naming secret/k (or another job's result) gets none"
stop_hub
pass "the hub stops cleanly after it"
echo "${PASSED} passed, 0 failed"
