#!/usr/bin/env bash
# Issue 23's "Done when" in a real browser (test/browser/product.mjs): a
# 3-node cluster with auth on, users and roles made by root (an operator, a
# viewer, the hub's own user, the agents'), the hub over HTTPS (certificates
# from deploy/certs.sh), an agent with the built-in sources and two command
# sources (temp every 1 s, hum every 3 s), and a job worker slowed per chunk so
# its progress can be watched while the leader is killed. Screenshots of
# every step are kept in $DDKV_ARTIFACTS (default build-asan/artifacts/product/).
source "$(dirname "$0")/lib.sh"
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
[ -x /usr/bin/chromium ] || { echo "SKIP: /usr/bin/chromium missing (scripts/deps.sh installs it)"; exit 77; }
[ -d "$ROOT/test/browser/node_modules/playwright-core" ] || { echo "SKIP: playwright-core missing (scripts/deps.sh installs it)"; exit 77; }
export DDKV_AUTH_HASH_ITERATIONS=10000 # PBKDF2 is slow under ASan; what is tested is the same
start_cluster 3
base=$DDKV_PORT_BASE
ROOTPW=root-pw-p1 HUBPW=hub-pw-p2 OLGAPW=olga-pw-p3 VICPW=vic-pw-p4 AGENTPW=agent-pw-p5 WORKERPW=worker-pw-p6

# Users and roles, as README "Authentication" says: root first, auth on, then the rest as root.
D() { "$DDKV" "$@" --endpoints "$EP"; }
expect_exit 0 D user add root --new-password "$ROOTPW"
expect_exit 0 D user grant root root
expect_exit 0 D auth enable
R() { DDKV_USER=root DDKV_PASSWORD=$ROOTPW "$DDKV" "$@" --endpoints "$EP"; }
role() { # role NAME MODE PREFIX...
  local name=$1 mode=$2 p; shift 2
  R role get "$name" >/dev/null 2>&1 || expect_exit 0 R role add "$name"
  for p in "$@"; do expect_exit 0 R role grant "$name" "$p" "$mode"; done
}
user() { # user NAME PASSWORD ROLE...
  local name=$1 pass=$2 r; shift 2
  expect_exit 0 R user add "$name" --new-password "$pass"
  for r in "$@"; do expect_exit 0 R user grant "$name" "$r"; done
}
role hubsvc read clients/ metrics/ jobs/ jobresult/ series/
role hubsvc readwrite hubsess/
role viewer read clients/ metrics/ series/ seriesmeta/ jobs/ jobresult/ resp/
role viewer readwrite req/
role operator read clients/ metrics/ series/ seriesmeta/ resp/
role operator readwrite req/ jobs/ jobq/ jobc/ jobdata/ jobresult/
role agent readwrite clients/ metrics/ series/ seriesmeta/ req/ resp/
role worker readwrite jobs/ jobq/ jobc/ jobresult/
role worker read jobdata/
user hub "$HUBPW" hubsvc
user olga "$OLGAPW" operator
user vic "$VICPW" viewer
user sensors "$AGENTPW" agent
user worker "$WORKERPW" agent worker

"$ROOT/deploy/certs.sh" "$WORK/certs" hub >/dev/null 2>&1 || fail "deploy/certs.sh"
HUB=127.0.0.1:$((base + 86))
DDKV_USER=hub DDKV_PASSWORD=$HUBPW "$DDKV" hub --endpoints "$EP" --http-addr "$HUB" --web-dir "$ROOT/web" \
  --https-cert "$WORK/certs/hub.pem" --https-key "$WORK/certs/hub.key" 2>"$WORK/hub.log" &
HUBPID=$!; PIDS+=($HUBPID)
DDKV_USER=sensors DDKV_PASSWORD=$AGENTPW "$DDKV" agent --endpoints "$EP" --name sensors --presence-ttl-s 3 \
  --source 'temp=s=$(date +%s); echo "$((20 + s % 10)).$((s % 7)) C"@1000' \
  --source 'hum=s=$(date +%s); echo "$((40 + s % 20)) %"@3000' 2>"$WORK/sensors.log" &
PIDS+=($!)
DDKV_WORKER_CHUNK_DELAY_MS=${PRODUCT_CHUNK_DELAY_MS:-2000} DDKV_USER=worker DDKV_PASSWORD=$WORKERPW \
  "$DDKV" agent --endpoints "$EP" --name worker --worker --presence-ttl-s 3 2>"$WORK/worker.log" &
PIDS+=($!)
for _ in $(seq 150); do curl -s -o /dev/null --cacert "$WORK/certs/ca.pem" "https://$HUB/health" && break; sleep 0.1; done
curl -sf -o /dev/null --cacert "$WORK/certs/ca.pem" "https://$HUB/health" || fail "the hub does not answer over HTTPS: $(tail -3 "$WORK/hub.log")"

# 42 hours at 1 Hz (about 3 MB: 6 chunks of 512 KiB, 2 s each at the worker):
# heart rate with excursions out of its band and above its plausible range,
# breath rate dipping.
python3 - "$WORK/vitals.csv" <<'PY'
import math, sys
with open(sys.argv[1], "w") as f:
    f.write("timestamp,heart_rate,breath_rate\n")
    for i in range(150000):
        hr = 75 + 10 * math.sin(i / 900)
        if 40000 <= i < 40300: hr = 140
        if 90000 <= i < 90050: hr = 262
        br = 5 if 120000 <= i < 120600 else 15
        f.write(f"{1767225600 + i},{hr:.1f},{br}\n")
PY
pids="{"
for i in 1 2 3; do pids+="\"n$i\": $(cat "$DDKV_CLUSTER_DIR/n$i.pid"),"; done
pids="${pids%,}}"
SPKI=$(openssl x509 -in "$WORK/certs/hub.pem" -pubkey -noout | openssl pkey -pubin -outform der | openssl dgst -sha256 -binary | base64)
SHOTS=${DDKV_ARTIFACTS:-$ROOT/build-asan/artifacts/product}
rm -rf "$SHOTS"; mkdir -p "$SHOTS"
HUB_URL="https://$HUB/" EVIL_ORIGIN="https://127.0.0.2:$((base + 87))" HUB_SPKI=$SPKI NODE_EXTRA_CA_CERTS=$WORK/certs/ca.pem \
  SHOTS=$SHOTS CSV_FILE="$WORK/vitals.csv" NODE_PIDS=$pids DDKV_BIN=$DDKV DDKV_ENDPOINTS=$EP \
  PASSWORDS="{\"root\": \"$ROOTPW\", \"olga\": \"$OLGAPW\", \"vic\": \"$VICPW\"}" \
  node "$ROOT/test/browser/product.mjs" ||
  fail "browser test failed (screenshots in $SHOTS; hub: $(tail -3 "$WORK/hub.log"); worker: $(tail -3 "$WORK/worker.log"))"
echo "screenshots: $SHOTS"
ls "$SHOTS"
kill "$HUBPID"; wait "$HUBPID" 2>/dev/null || true
grep -E "Sanitizer|runtime error" "$WORK/hub.log" "$WORK/worker.log" "$WORK/sensors.log" && fail "a sanitizer reported"
for p in "$ROOTPW" "$OLGAPW" "$VICPW"; do grep -q -- "$p" "$WORK/hub.log" && fail "a password in the hub's log"; done
echo "all passed"
