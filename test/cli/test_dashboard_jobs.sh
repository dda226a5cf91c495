#!/usr/bin/env bash
# Job management in a real browser (test/browser/jobs.mjs, like
# test_dashboard.sh): a one-node cluster, the hub, and a worker that pauses
# per chunk so the job's progress can be watched. Screenshots are kept in
# $DDKV_ARTIFACTS (default build-asan/artifacts/dashboard-jobs/).
source "$(dirname "$0")/lib.sh"
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
[ -x /usr/bin/chromium ] || { echo "SKIP: /usr/bin/chromium missing (scripts/deps.sh installs it)"; exit 77; }
[ -d "$ROOT/test/browser/node_modules/playwright-core" ] || { echo "SKIP: playwright-core missing (scripts/deps.sh installs it)"; exit 77; }
start_cluster 1
HUB=127.0.0.1:$((DDKV_PORT_BASE + 80))
"$DDKV" hub --endpoints "$EP" --http-addr "$HUB" --web-dir "$ROOT/web" 2>"$WORK/hub.log" &
PIDS+=($!)
DDKV_WORKER_CHUNK_DELAY_MS=1200 "$DDKV" agent --endpoints "$EP" --name worker --worker 2>"$WORK/worker.log" &
PIDS+=($!)
for _ in $(seq 100); do curl -sf "http://$HUB/health" >/dev/null 2>&1 && break; sleep 0.1; done
# 14 hours at 1 Hz (about 2 MB: 4 chunks): heart rate with excursions above
# its plausible range and out of its normal band, breath rate dipping.
python3 - "$WORK/vitals.csv" <<'PY'
import math, sys
with open(sys.argv[1], "w") as f:
    f.write("timestamp,heart_rate,breath_rate\n")
    for i in range(50000):
        hr = 75 + 10 * math.sin(i / 900)
        if 20000 <= i < 20300: hr = 140
        if 30000 <= i < 30050: hr = 262
        br = 5 if 40000 <= i < 40600 else 15
        f.write(f"{1767225600 + i},{hr:.1f},{br}\n")
PY
SHOTS=${DDKV_ARTIFACTS:-$ROOT/build-asan/artifacts/dashboard-jobs}
rm -rf "$SHOTS"; mkdir -p "$SHOTS"
HUB_URL="http://$HUB/" SHOTS=$SHOTS CSV_FILE="$WORK/vitals.csv" \
  node "$ROOT/test/browser/jobs.mjs" || fail "browser test failed (screenshots in $SHOTS; worker: $(tail -3 "$WORK/worker.log"); hub: $(tail -3 "$WORK/hub.log"))"
PASSED=5
echo "${PASSED} passed, 0 failed"
