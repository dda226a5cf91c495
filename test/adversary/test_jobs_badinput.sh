#!/usr/bin/env bash
# Issue 23's bad job inputs, each a clear error or a correct result, and no
# worker or hub crash: a 10-million-row file (over the hub's upload limit:
# 413; through the CLI, over the worker's --job-memory-mb: refused, saying
# so), binary garbage, an empty file, a CSV with 10,000 columns (each dead
# after its one attempt with the reason in the record), a file name with HTML
# in it (kept as text, JSON-escaped by the hub, never echoed into an error).
# Then the same worker and hub still serve: a good file gets its result.
source "$(dirname "$0")/../cli/lib.sh"
start_cluster 1
export DDKV_ENDPOINTS=$EP
HUB=127.0.0.1:$((DDKV_PORT_BASE + 80))
"$DDKV" hub --http-addr "$HUB" --web-dir "$ROOT/web" --max-upload-mb 16 2>"$WORK/hub.log" &
HUB_PID=$!
PIDS+=($HUB_PID)
for _ in $(seq 100); do curl -sf "http://$HUB/health" >/dev/null 2>&1 && break; sleep 0.1; done
curl -sf "http://$HUB/health" >/dev/null || fail "the hub does not answer: $(cat "$WORK/hub.log")"
"$DDKV" agent --name w --worker --job-memory-mb 16 --interval-ms 1000 --timeout-ms 2000 2>"$WORK/agent.log" &
AGENT=$!
PIDS+=($AGENT)
req() { curl -s -o "$WORK/body" -w '%{http_code}' "$@"; }
submit() { # FILE -> job id (one attempt)
  expect_exit 0 "$DDKV" job submit "$1" --max-attempts 1 -o json
  echo "$OUT" | python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])'
}
settled() { # ID STATE SECONDS -> the record in $WORK/job.json
  for _ in $(seq $(($3 * 5))); do
    "$DDKV" job get "$1" -o json >"$WORK/job.json" 2>/dev/null && grep -q "\"state\": *\"$2\"" "$WORK/job.json" && return 0
    sleep 0.2
  done
  fail "job $1 is not $2 after $3 s: $(head -c 600 "$WORK/job.json") $(tail -3 "$WORK/agent.log")"
}

# 10 million rows (40 MB).
python3 -c '
import sys
with open(sys.argv[1], "w") as f:
    f.write("t,hr\n")
    f.write("1,2\n" * 10000000)
' "$WORK/rows.csv"
code=$(req -X POST --data-binary @"$WORK/rows.csv" -H 'Content-Type: text/csv' "http://$HUB/api/jobs?name=rows.csv")
[ "$code" = 413 ] || fail "a 40 MB upload over --max-upload-mb 16 answered $code"
python3 -c 'import json,sys; assert "16" in json.load(open(sys.argv[1]))["error"]' "$WORK/body" || fail "413 body: $(cat "$WORK/body")"
id=$(submit "$WORK/rows.csv")
settled "$id" dead 20
grep -q "MiB per job" "$WORK/job.json" || fail "10M rows: $(cat "$WORK/job.json")"
pass "10 million rows: 413 from the hub over its limit; refused by a worker with less memory, saying why"

# No digits: a line of garbage that happened to be one (a 1-byte line "7"
# under a 1-column header) was a valid reading, about one run in six.
head -c 300000 /dev/urandom | tr -d "0-9" >"$WORK/garbage.bin"
id=$(submit "$WORK/garbage.bin")
for _ in $(seq 100); do
  "$DDKV" job get "$id" -o json >"$WORK/job.json" 2>/dev/null && grep -qE '"state": *"(dead|done)"' "$WORK/job.json" && break
  sleep 0.2
done
# Either the header is refused (dead, with the reason), or every row is
# counted malformed and none used: a correct, empty result.
python3 - "$WORK/job.json" <<'PY' || fail "garbage: $(head -c 800 "$WORK/job.json")"
import json, sys
j = json.load(open(sys.argv[1]))
if j["state"] == "dead":
    assert j["error"].startswith("not a readings file"), j["error"]
else:
    assert j["state"] == "done", j["state"]
    rows = j["result_value"]["rows"]
    assert rows["used"] == 0 and rows["malformed"]["count"] == rows["total"] > 0, rows
PY
pass "binary garbage: refused with the reason, or every row counted malformed and none used"

: >"$WORK/empty.csv"
id=$(submit "$WORK/empty.csv")
settled "$id" dead 20
grep -q '"error": *"not a readings file' "$WORK/job.json" || fail "empty: $(cat "$WORK/job.json")"
code=$(req -X POST --data-binary @"$WORK/empty.csv" "http://$HUB/api/jobs?name=empty.csv")
[ "$code" = 400 ] || fail "an empty upload answered $code"
pass "an empty file: dead with the reason; the hub refuses an empty upload (400)"

python3 -c '
import sys
with open(sys.argv[1], "w") as f:
    f.write(",".join("c%d" % i for i in range(10000)) + "\n")
    f.write(",".join("1" for i in range(10000)) + "\n")
' "$WORK/wide.csv"
id=$(submit "$WORK/wide.csv")
settled "$id" dead 20
grep -q 'columns' "$WORK/job.json" || fail "10,000 columns: $(cat "$WORK/job.json")"
pass "10,000 columns: dead with a reason naming the column limit"

printf 'timestamp,heart_rate\n2026-01-01T00:00:00Z,70\n2026-01-01T00:00:01Z,80\n' >"$WORK/ok.csv"
name='<img src=x onerror=alert(1)>"&.csv'
enc=$(python3 -c 'import urllib.parse,sys; print(urllib.parse.quote(sys.argv[1]))' "$name")
code=$(req -X POST --data-binary @"$WORK/ok.csv" "http://$HUB/api/jobs?name=$enc&algorithm=vitals")
[ "$code" = 201 ] || fail "upload with an HTML name: $code $(cat "$WORK/body")"
hid=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["id"])' "$WORK/body")
settled "$hid" done 20
[ "$(req "http://$HUB/api/jobs/$hid")" = 200 ] || fail "GET the job"
python3 - "$WORK/body" "$name" <<'PY' || fail "HTML name: $(head -c 600 "$WORK/body")"
import json, sys
raw = open(sys.argv[1]).read()
j = json.loads(raw)
assert j["name"] == sys.argv[2] and j["result_value"]["file"] == sys.argv[2], j["name"]
assert j["result_value"]["algorithm"] == "vitals"
# JSON from the hub keeps it text: the page sets it with textContent.
PY
grep -q 'el.textContent = s' "$ROOT/web/app.js" || fail "the page no longer sets text with textContent"
code=$(req -X DELETE "http://$HUB/api/jobs/%3Cimg%3E")
[ "$code" = 400 ] && ! grep -q '<img' "$WORK/body" || fail "a bad id is echoed: $code $(cat "$WORK/body")"
pass "a file name with HTML is kept as text; an HTML id is refused without echoing it"

kill -0 "$AGENT" 2>/dev/null || fail "the worker died: $(tail -5 "$WORK/agent.log")"
kill -0 "$HUB_PID" 2>/dev/null || fail "the hub died: $(tail -5 "$WORK/hub.log")"
[ "$(req "http://$HUB/health")" = 200 ] || fail "hub health"
pass "the worker and the hub are alive and serving after all of it"
echo "${PASSED} passed, 0 failed"
