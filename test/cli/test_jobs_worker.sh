#!/usr/bin/env bash
# The worker's side of job management (issue 23): the vital-sign algorithm
# (per-minute windows of heart and breath rate with their trend, the band
# crossings, the downsampled chart), progress in the record, several worker
# threads, a per-job memory cap that refuses a bigger file, and a cancel that
# stops a running job (the worker learns it through its watch).
source "$(dirname "$0")/lib.sh"
start_cluster 1
export DDKV_ENDPOINTS=$EP
AG=()
stop_agent() { for p in "${AG[@]}"; do kill "$p" 2>/dev/null; wait "$p" 2>/dev/null; done; AG=(); }
state_of() { "$DDKV" job get "$1" -o json 2>/dev/null | python3 -c 'import json,sys; print(json.load(sys.stdin)["state"])'; }
wait_state() { # ID STATE SECONDS
  for _ in $(seq $(($3 * 5))); do [ "$(state_of "$1")" = "$2" ] && return 0; sleep 0.2; done
  return 1
}

# 5 minutes at 1 Hz: heart 70 rising to 130 in minute 3, back to 80; breath
# 14, dropping to 6 in minute 4.
python3 - "$WORK/vitals.csv" <<'PY'
import sys
with open(sys.argv[1], "w") as f:
    f.write("timestamp,heart_rate,breath_rate,spo2\n")
    for s in range(300):
        hr = 130 if 120 <= s < 180 else 70 + s / 60
        br = 6 if 180 <= s < 240 else 14
        f.write("2026-01-01T00:%02d:%02dZ,%.2f,%d,97\n" % (s // 60, s % 60, hr, br))
PY
expect_exit 2 "$DDKV" job submit "$WORK/vitals.csv" --algorithm nope
grep -q "unknown algorithm" "$WORK/stderr" || fail "unknown algorithm: $(cat "$WORK/stderr")"
expect_exit 0 "$DDKV" job submit "$WORK/vitals.csv" --algorithm vitals --priority high -o json
vid=$(echo "$OUT" | python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])')
# A file over the worker's 1 MiB per job.
python3 -c "
import sys
with open(sys.argv[1], 'w') as f:
    f.write('timestamp,hr\n')
    for s in range(120000): f.write('%d,%d\n' % (1700000000 + s, 60 + s % 40))
" "$WORK/big.csv"
expect_exit 0 "$DDKV" job submit "$WORK/big.csv" --max-attempts 1 -o json
bid=$(echo "$OUT" | python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])')

"$DDKV" agent --name w --worker --worker-threads 2 --worker-nice 5 --job-memory-mb 1 --interval-ms 1000 \
  --timeout-ms 2000 2>"$WORK/agent1.log" &
AG+=($!); PIDS+=($!)
wait_state "$vid" done 30 || fail "the vitals job is $(state_of "$vid"): $(cat "$WORK/agent1.log")"
wait_state "$bid" dead 30 || fail "the big job is $(state_of "$bid"): $(cat "$WORK/agent1.log")"
"$DDKV" job get "$bid" -o json >"$WORK/big.json"
grep -q "MiB per job" "$WORK/big.json" || fail "the refusal does not say why: $(cat "$WORK/big.json")"
pass "a worker refuses a file over its --job-memory-mb, saying so"

"$DDKV" job get "$vid" -o json >"$WORK/v.json"
python3 - "$WORK/v.json" <<'PY' || fail "vitals result: $(head -c 3000 "$WORK/v.json")"
import json, sys
j = json.load(open(sys.argv[1]))
assert j["priority"] == "high" and j.get("progress", {"percent": 100})["percent"] == 100, j.get("progress")
assert j["worker"] in ("w/1", "w/2"), j["worker"]
r = j["result_value"]
assert r["algorithm"] == "vitals"
v = r["vitals"]
hr = v["series"]["heart_rate"]["windows"]
br = v["series"]["breath_rate"]["windows"]
assert v["window"] == 60000 and len(hr) == 5 and len(br) == 5, (len(hr), len(br))
assert [w["n"] for w in hr] == [60] * 5
assert hr[2]["mean"] == 130 and hr[2]["trend_per_min"] == 0
assert abs(hr[0]["trend_per_min"] - 1.0) < 0.01, hr[0]  # 70 + s/60 (to 2 decimals): one beat per minute
assert br[3]["min"] == 6 and br[0]["mean"] == 14
ev = [(e["series"], e["band"], e["t"]) for e in v["events"]]
t0 = 1767225600000
assert ev == [("heart_rate", "above", t0 + 120000), ("heart_rate", "normal", t0 + 180000),
              ("breath_rate", "below", t0 + 180000), ("breath_rate", "normal", t0 + 240000)], ev
assert v["events_total"] == 4
ch = r["chart"]
assert ch["axis"] == "unix_ms" and len(ch["t"]) == 300 and ch["t"][0] == t0
cols = {c["key"]: c for c in ch["columns"]}
assert set(cols) == {"heart_rate", "breath_rate", "spo2"}
assert cols["heart_rate"]["range"] == [20, 250] and cols["heart_rate"]["max"][150] == 130
assert r["columns"][0]["name"] == "heart_rate"
PY
pass "vitals: per-minute windows with trends, band crossings at the right times, a chart of every column"
stop_agent

# A long job (4 chunks, a pause per chunk) shows its progress, then a cancel
# stops it: the worker sees the record change through its watch.
python3 -c "
import sys
with open(sys.argv[1], 'w') as f:
    f.write('timestamp,hr\n')
    for s in range(150000): f.write('%d,%d\n' % (1700000000 + s, 60 + s % 40))
" "$WORK/long.csv"
expect_exit 0 "$DDKV" job submit "$WORK/long.csv" -o json
lid=$(echo "$OUT" | python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])')
DDKV_WORKER_CHUNK_DELAY_MS=1500 "$DDKV" agent --name slow --worker --claim-ttl-ms 30000 --interval-ms 1000 \
  --timeout-ms 2000 2>"$WORK/agent2.log" &
AG+=($!); PIDS+=($!)
got=
for _ in $(seq 100); do
  "$DDKV" job get "$lid" -o json >"$WORK/l.json" 2>/dev/null
  python3 -c 'import json,sys; j=json.load(open(sys.argv[1])); p=j.get("progress"); assert j["state"]=="claimed" and p and p["rows"]>0 and 0<p["percent"]<100' \
    "$WORK/l.json" 2>/dev/null && { got=1; break; }
  sleep 0.2
done
[ -n "$got" ] || fail "no progress while running: $(cat "$WORK/l.json") $(cat "$WORK/agent2.log")"
pass "a running job's record shows rows done and percent"
expect_exit 0 "$DDKV" job cancel "$lid"
for _ in $(seq 200); do grep -q "job $lid cancelled" "$WORK/agent2.log" && break; sleep 0.1; done # a chunk under ASan and load: seconds
grep -q "job $lid cancelled" "$WORK/agent2.log" || fail "the worker did not stop: $(cat "$WORK/agent2.log")"
[ "$(state_of "$lid")" = cancelled ] || fail "state after cancel: $(state_of "$lid")"
expect_exit 1 "$DDKV" read "jobresult/$lid"
pass "a cancel stops the running worker at its next chunk (through its watch); no result is written"
stop_agent
echo "${PASSED} passed, 0 failed"
