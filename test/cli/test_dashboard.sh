#!/usr/bin/env bash
# The dashboard in a real browser (test/browser/dashboard.mjs: Debian's
# chromium driven by playwright-core): a 3-node cluster, the hub and two
# agents; the page lists both machines, a CPU chart gains points live, fresh
# data comes on demand, an uploaded file's job is processed and its result
# shown, kill -9 of the leader leaves the page updating without a reload, and a
# killed agent leaves the list. Screenshots are kept in $DDKV_ARTIFACTS
# (default build-asan/artifacts/dashboard/).
source "$(dirname "$0")/lib.sh"
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
[ -x /usr/bin/chromium ] || { echo "SKIP: /usr/bin/chromium missing (scripts/deps.sh installs it)"; exit 77; }
[ -d "$ROOT/test/browser/node_modules/playwright-core" ] || { echo "SKIP: playwright-core missing (scripts/deps.sh installs it)"; exit 77; }
start_cluster 3
base=$DDKV_PORT_BASE
HUB=127.0.0.1:$((base + 80))
"$DDKV" hub --endpoints "$EP" --http-addr "$HUB" --web-dir "$ROOT/web" 2>"$WORK/hub.log" &
PIDS+=($!)
"$DDKV" agent --endpoints "$EP" --name alpha --worker --presence-ttl-s 3 2>"$WORK/alpha.log" &
ALPHA=$!; PIDS+=($ALPHA)
"$DDKV" agent --endpoints "$EP" --name beta --presence-ttl-s 3 2>"$WORK/beta.log" &
BETA=$!; PIDS+=($BETA)
for _ in $(seq 100); do curl -sf "http://$HUB/health" >/dev/null 2>&1 && break; sleep 0.1; done
python3 - "$WORK/readings.csv" <<'PY'
import random, sys
random.seed(7)
with open(sys.argv[1], "w") as f:
    f.write("timestamp,heart_rate,systolic,diastolic,breath_rate\n")
    for i in range(20000):
        f.write(f"{1700000000 + i},{random.randint(50, 120)},{random.randint(90, 150)},{random.randint(60, 95)},{random.randint(10, 25)}\n")
PY
pids="{"
for i in 1 2 3; do pids+="\"n$i\": $(cat "$DDKV_CLUSTER_DIR/n$i.pid"),"; done
pids="${pids%,}}"
SHOTS=${DDKV_ARTIFACTS:-$ROOT/build-asan/artifacts/dashboard}
rm -rf "$SHOTS"; mkdir -p "$SHOTS"
HUB_URL="http://$HUB/" SHOTS=$SHOTS NODE_PIDS=$pids AGENT_PIDS="{\"alpha\": $ALPHA, \"beta\": $BETA}" \
  CSV_FILE="$WORK/readings.csv" DDKV_ENDPOINTS=$EP \
  node "$ROOT/test/browser/dashboard.mjs" || fail "browser test failed (screenshots in $SHOTS; hub log: $(tail -5 "$WORK/hub.log"))"
PASSED=6
echo "${PASSED} passed, 0 failed"
