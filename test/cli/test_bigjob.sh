#!/usr/bin/env bash
# A 20 MB readings file as a job on a 3-node cluster: `ddkv job submit`
# stores it in chunks and queues it; worker A claims it and is killed -9 in
# the middle of it (it reads its chunks slowly: DDKV_WORKER_CHUNK_DELAY_MS);
# its claim runs out and worker B completes the job, exactly once. The result
# is checked figure by figure against an independent computation in Python
# (test/cli/readings.py), malformed rows, duplicates and out-of-range
# readings included.
source "$(dirname "$0")/lib.sh"
start_cluster 3
export DDKV_ENDPOINTS=$EP DDKV_TIMEOUT_MS=20000

python3 "$ROOT/test/cli/readings.py" make "$WORK/readings.csv" 20000000
size=$(stat -c %s "$WORK/readings.csv")
[ "$size" -ge 20000000 ] || fail "the file is $size bytes, not 20 MB"
python3 "$ROOT/test/cli/readings.py" stats "$WORK/readings.csv" >"$WORK/expected.json" &
EXPECT=$!

expect_exit 0 "$DDKV" job submit "$WORK/readings.csv" -o json
ID=$(echo "$OUT" | python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])')
chunks=$(echo "$OUT" | python3 -c 'import json,sys; print(json.load(sys.stdin)["chunks"])')
job_field() { "$DDKV" job get "$ID" -o json | python3 -c "import json,sys; print(json.load(sys.stdin).get('$1', ''))"; }
[ "$chunks" -ge 38 ] || fail "20 MB in $chunks chunks"
[ "$(job_field name)" = readings.csv ] || fail "the job record names $(job_field name), not the file"
pass "a $size-byte file is stored in $chunks chunks and queued as job $ID"


# Worker A: 0.3 s per chunk, so the job takes it more than 10 s.
DDKV_WORKER_CHUNK_DELAY_MS=300 "$DDKV" agent --name worker-a --worker --claim-ttl-ms 2000 --interval-ms 1000 \
  2>"$WORK/worker-a.log" &
A=$!; PIDS+=($A)
for _ in $(seq 100); do [ "$(job_field worker)" = worker-a ] && break; sleep 0.1; done
[ "$(job_field state)" = claimed ] && [ "$(job_field worker)" = worker-a ] || fail "worker A did not claim the job"
sleep 2 # in the middle of it: its claim has been extended at least once
[ "$(job_field state)" = claimed ] || fail "worker A is not mid-job: $(job_field state)"
kill -9 "$A"; wait "$A" 2>/dev/null || true
t_kill=$(date +%s%3N)
pass "worker A claimed the job and was killed -9 in the middle of it"

"$DDKV" agent --name worker-b --worker --claim-ttl-ms 2000 --interval-ms 1000 2>"$WORK/worker-b.log" &
B=$!; PIDS+=($B)
for _ in $(seq 600); do [ "$(job_field state)" = done ] && break; sleep 0.1; done
[ "$(job_field state)" = done ] || fail "the job is not done 60 s after worker A died: $(tail -3 "$WORK/worker-b.log")"
t_done=$(date +%s%3N)
[ "$(job_field worker)" = worker-b ] || fail "completed by $(job_field worker), not worker B"
[ "$(job_field attempts)" = 2 ] || fail "$(job_field attempts) attempts, want 2 (A's and B's)"
grep -c "job $ID done" "$WORK/worker-b.log" | grep -qx 1 || fail "worker B did not complete it once: $(cat "$WORK/worker-b.log")"
expect_exit 0 "$DDKV" read "jobresult/$ID" -o json
echo "$OUT" | python3 -c '
import json, sys
r = json.load(sys.stdin)
assert r["version"] == 1, "the result was written %d times" % r["version"]
assert json.loads(r["value"])["worker"] == "worker-b", r["value"][:200]' || fail "result record: ${OUT:0:300}"
took=$(grep -o "job $ID done in [0-9]* ms" "$WORK/worker-b.log" | grep -o "[0-9]* ms")
pass "worker B completed it exactly once, $((t_done - t_kill)) ms after A died, processing it in $took (attempts 2, result written once)"

wait "$EXPECT" || fail "the independent computation failed"
"$DDKV" read "jobresult/$ID" >"$WORK/result.json"
python3 "$ROOT/test/cli/readings.py" compare "$WORK/expected.json" "$WORK/result.json" ||
  fail "the job's statistics differ from the independent computation"
pass "every figure matches the independent computation"
echo "${PASSED} passed, 0 failed"
