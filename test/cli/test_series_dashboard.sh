#!/usr/bin/env bash
# Named series in a real browser (test/browser/series.mjs): a 3-node
# cluster, the hub and an agent with two command sources at different rates
# (a temperature every 300 ms, a humidity every 1.5 s). Screenshots are kept
# in $DDKV_ARTIFACTS (default build-asan/artifacts/series/).
source "$(dirname "$0")/lib.sh"
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
[ -x /usr/bin/chromium ] || { echo "SKIP: /usr/bin/chromium missing (scripts/deps.sh installs it)"; exit 77; }
[ -d "$ROOT/test/browser/node_modules/playwright-core" ] || { echo "SKIP: playwright-core missing (scripts/deps.sh installs it)"; exit 77; }
start_cluster 3
HUB=127.0.0.1:$((DDKV_PORT_BASE + 80))
"$DDKV" hub --endpoints "$EP" --http-addr "$HUB" --web-dir "$ROOT/web" 2>"$WORK/hub.log" &
PIDS+=($!)
"$DDKV" agent --endpoints "$EP" --name sensors --presence-ttl-s 3 \
  --source 'temp=echo "$((20 + $(od -An -N1 -tu1 /dev/urandom) % 7)).5 C"@300' \
  --source 'hum=echo "$((40 + $(od -An -N1 -tu1 /dev/urandom) % 20)) %"@1500' 2>"$WORK/agent.log" &
PIDS+=($!)
for _ in $(seq 100); do curl -sf "http://$HUB/health" >/dev/null 2>&1 && break; sleep 0.1; done
# A client with 60 per-core series and a sensor named to sort last.
for i in $(seq 0 59); do
  "$DDKV" metric push --endpoints "$EP" bigbox "cpu.$i" "$i" --unit % >/dev/null || fail "metric push cpu.$i"
done
"$DDKV" metric push --endpoints "$EP" bigbox zz.sensor 21.5 --unit C >/dev/null || fail "metric push zz.sensor"
SHOTS=${DDKV_ARTIFACTS:-$ROOT/build-asan/artifacts/series}
rm -rf "$SHOTS"; mkdir -p "$SHOTS"
BIGBOX=1 HUB_URL="http://$HUB/" SHOTS=$SHOTS node "$ROOT/test/browser/series.mjs" ||
  fail "browser test failed (screenshots in $SHOTS; hub log: $(tail -5 "$WORK/hub.log"))"
PASSED=5
echo "${PASSED} passed, 0 failed"
