#!/usr/bin/env bash
# Job management through the hub and the CLI (issue 23): an upload at a
# priority with a chosen algorithm, the algorithm list, bad priority or
# algorithm refused before the body is read, the result as CSV and as a JSON
# download (GET /api/jobs/{id}/result.json, 404 once deleted), deleting the
# result alone then the whole job (its data file too), cancelling a queued
# job, and JSON errors for bad ids and states.
source "$(dirname "$0")/lib.sh"
start_cluster 1
base=$DDKV_PORT_BASE
export DDKV_ENDPOINTS=$EP
HUB=127.0.0.1:$((base + 80))
"$DDKV" hub --http-addr "$HUB" --web-dir "$ROOT/web" 2>"$WORK/hub.log" &
PIDS+=($!)
for _ in $(seq 100); do curl -sf "http://$HUB/health" >/dev/null 2>&1 && break; sleep 0.1; done
curl -sf "http://$HUB/health" >/dev/null || fail "the hub does not answer: $(cat "$WORK/hub.log")"
req() { curl -s -o "$WORK/body" -D "$WORK/head" -w '%{http_code}' "$@"; }
js() { python3 -c "import json,sys; d=json.load(open('$WORK/body')); $1" || fail "$2: $(cat "$WORK/body")"; }

[ "$(req "http://$HUB/api/algorithms")" = 200 ] || fail "/api/algorithms"
js 'assert "stats" in [a["name"] for a in d] and all(a["title"] and a["description"] for a in d), d' "algorithm list"
pass "GET /api/algorithms lists the workers' algorithms"

printf 'timestamp,heart_rate\n2026-01-01T00:00:00Z,70\n2026-01-01T00:00:01Z,80\n' >"$WORK/r.csv"
code=$(req -X POST --data-binary @"$WORK/r.csv" "http://$HUB/api/jobs?name=r.csv&priority=urgent")
[ "$code" = 400 ] || fail "priority=urgent answered $code"
js 'assert "priority" in d["error"]' "bad priority"
code=$(req -X POST --data-binary @"$WORK/r.csv" "http://$HUB/api/jobs?name=r.csv&algorithm=%3Cb%3E")
[ "$code" = 400 ] || fail "algorithm=<b> answered $code"
js 'assert "algorithm" in d["error"] and "<b>" not in d["error"]' "bad algorithm"
pass "an unknown priority or algorithm is a 400 JSON error"

code=$(req -X POST --data-binary @"$WORK/r.csv" "http://$HUB/api/jobs?name=r.csv&priority=high&algorithm=stats")
[ "$code" = 201 ] || fail "POST /api/jobs: $code $(cat "$WORK/body")"
id=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["id"])' "$WORK/body")
data=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["data"])' "$WORK/body")
[ "$(req "http://$HUB/api/jobs/$id")" = 200 ] || fail "GET the job"
js 'assert d["priority"] == "high" and d["state"] == "queued", d' "the job's priority"
pass "POST /api/jobs?priority=high&algorithm=stats queues a high-priority job"

"$DDKV" agent --endpoints "$EP" --name w1 --worker --interval-ms 1000 --timeout-ms 2000 2>"$WORK/agent.log" &
AGENT=$!
PIDS+=($AGENT)
for _ in $(seq 150); do
  [ "$(req "http://$HUB/api/jobs/$id")" = 200 ] && grep -q '"state": *"done"' "$WORK/body" && break
  sleep 0.2
done
grep -q '"state": *"done"' "$WORK/body" || fail "the job was not done: $(cat "$WORK/body") $(cat "$WORK/agent.log")"
kill "$AGENT"; wait "$AGENT" 2>/dev/null
[ "$(req "http://$HUB/api/jobs/$id/result.csv")" = 200 ] || fail "result.csv: $(cat "$WORK/body")"
grep -qi '^content-type: text/csv' "$WORK/head" || fail "result.csv type: $(cat "$WORK/head")"
head -1 "$WORK/body" | grep -q '^column,count,missing,min,max,mean' || fail "csv head: $(cat "$WORK/body")"
grep -q '^heart_rate,2,0,70,80,75,' "$WORK/body" || fail "csv row: $(cat "$WORK/body")"
pass "GET /api/jobs/{id}/result.csv: one row of statistics per column"

[ "$(req "http://$HUB/api/jobs/$id/result.json")" = 200 ] || fail "result.json: $(cat "$WORK/body")"
grep -qi '^content-type: application/json' "$WORK/head" || fail "result.json type: $(cat "$WORK/head")"
grep -qi "^content-disposition: attachment; filename=\"job-$id.json\"" "$WORK/head" || fail "result.json disposition: $(cat "$WORK/head")"
js 'c = {x["name"]: x for x in d["columns"]}; assert c["heart_rate"]["count"] == 2 and c["heart_rate"]["min"] == 70 and c["heart_rate"]["max"] == 80, d' "result.json"
cp "$WORK/body" "$WORK/result.json"
"$DDKV" read "jobresult/$id" >"$WORK/stored.json" || fail "read jobresult/$id"
python3 -c 'import json,sys; a=json.load(open(sys.argv[1])); b=json.load(open(sys.argv[2])); assert a == b, (a, b)' \
  "$WORK/result.json" "$WORK/stored.json" || fail "result.json is not the stored result"
[ "$(req "http://$HUB/api/jobs/not-a-job/result.json")" = 400 ] || fail "result.json of a bad id: $(cat "$WORK/body")"
curl -s "http://$HUB/assets/jobs.js" | grep -qF 'json.href = `${base}/result.json`' || fail "the result page has no JSON download link to result.json"
pass "GET /api/jobs/{id}/result.json: the result as an application/json attachment (the stored result); the page links it"

# A column name a spreadsheet would run as a formula is quoted as text.
printf 'timestamp,"=HYPERLINK(""x"")",@sum\n2026-01-01T00:00:00Z,1,2\n' >"$WORK/f.csv"
code=$(req -X POST --data-binary @"$WORK/f.csv" "http://$HUB/api/jobs?name=f.csv")
[ "$code" = 201 ] || fail "POST f.csv: $code"
fid=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["id"])' "$WORK/body")
"$DDKV" agent --endpoints "$EP" --name w2 --worker --interval-ms 1000 --timeout-ms 2000 2>"$WORK/agent2.log" &
AGENT=$!
PIDS+=($AGENT)
for _ in $(seq 150); do
  [ "$(req "http://$HUB/api/jobs/$fid")" = 200 ] && grep -q '"state": *"done"' "$WORK/body" && break
  sleep 0.2
done
kill "$AGENT"; wait "$AGENT" 2>/dev/null
[ "$(req "http://$HUB/api/jobs/$fid/result.csv")" = 200 ] || fail "f result.csv: $(cat "$WORK/body")"
grep -q "^\"'=HYPERLINK(\"\"x\"\")\",1," "$WORK/body" || fail "formula cell: $(cat "$WORK/body")"
grep -q "^\"'@sum\",1," "$WORK/body" || fail "@ cell: $(cat "$WORK/body")"
pass "result.csv quotes cells that start like a formula as text"

[ "$(req -X DELETE "http://$HUB/api/jobs/$id/result")" = 200 ] || fail "DELETE result: $(cat "$WORK/body")"
[ "$(req "http://$HUB/api/jobs/$id/result.csv")" = 404 ] || fail "the result is still there"
[ "$(req "http://$HUB/api/jobs/$id/result.json")" = 404 ] || fail "result.json after the result went: $(cat "$WORK/body")"
js 'assert "no result" in d["error"]' "result.json 404"
[ "$(req "http://$HUB/api/jobs/$id")" = 200 ] || fail "deleting the result deleted the job"
js 'assert d["state"] == "done" and "result" not in d and "result_value" not in d, d' "job after its result went"
expect_exit 0 "$DDKV" list "$data"
[ -n "$OUT" ] || fail "the data file went with the result"
pass "DELETE /api/jobs/{id}/result deletes the result only"

[ "$(req -X DELETE "http://$HUB/api/jobs/$id")" = 200 ] || fail "DELETE job: $(cat "$WORK/body")"
[ "$(req "http://$HUB/api/jobs/$id")" = 404 ] || fail "the job is still there"
expect_exit 0 "$DDKV" list "$data"
[ -z "$OUT" ] || fail "the data file is left: $OUT"
[ "$(req -X DELETE "http://$HUB/api/jobs/$id")" = 404 ] || fail "deleting twice"
js 'assert d["error"]' "second delete"
pass "DELETE /api/jobs/{id} deletes the job, its data file and result; again: 404"

code=$(req -X POST --data-binary @"$WORK/r.csv" "http://$HUB/api/jobs?name=q.csv&priority=low")
[ "$code" = 201 ] || fail "POST: $code"
id2=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["id"])' "$WORK/body")
[ "$(req -X POST "http://$HUB/api/jobs/$id2/cancel")" = 200 ] || fail "cancel: $(cat "$WORK/body")"
[ "$(req "http://$HUB/api/jobs/$id2")" = 200 ] || fail "GET cancelled"
js 'assert d["state"] == "cancelled", d' "cancelled job"
[ "$(req -X POST "http://$HUB/api/jobs/$id2/cancel")" = 409 ] || fail "cancel twice: $(cat "$WORK/body")"
js 'assert "cancel" in d["error"]' "cancel twice"
for bad in '%3Cscript%3E' 'zz'; do
  [ "$(req -X DELETE "http://$HUB/api/jobs/$bad")" = 400 ] || fail "DELETE /api/jobs/$bad: $(cat "$WORK/body")"
  js 'assert "not a job id" in d["error"] and "<script>" not in d["error"]' "bad id"
done
[ "$(req -X POST "http://$HUB/api/jobs/$id2/explode")" = 404 ] || fail "unknown job action"
pass "POST /api/jobs/{id}/cancel cancels a queued job; twice: 409; a bad id: 400"

# The CLI: submit at a priority, cancel, delete with --result-only, delete.
expect_exit 0 "$DDKV" job submit "$WORK/r.csv" --priority low -o json
id3=$(echo "$OUT" | python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])')
expect_exit 2 "$DDKV" job submit "$WORK/r.csv" --priority urgent
expect_exit 0 "$DDKV" job cancel "$id3"
expect_exit 0 "$DDKV" job get "$id3" -o json
echo "$OUT" | grep -q '"state": *"cancelled"' || fail "CLI cancel: $OUT"
expect_exit 2 "$DDKV" job delete "$id3" --result-only # a cancelled job has no result
expect_exit 0 "$DDKV" job delete "$id3"
expect_exit 1 "$DDKV" job get "$id3"
pass "ddkv job submit --priority, cancel, delete"
echo "${PASSED} passed, 0 failed"
