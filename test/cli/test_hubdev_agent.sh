#!/usr/bin/env bash
# The agent's series, issue 23's last pieces: retention per series
# (--retention PATTERN=SECONDS, first match wins, the rest --retention-s) as
# GET /api/clients/ID/series shows it, with points of series under different
# retentions all arriving; CPU, memory and load as named series (cpu, cpu.N,
# mem.used, mem.available, load.1) beside the others while the old metrics
# path (GET /api/clients/ID/metrics) keeps its samples; a bad --retention is
# a clear usage error (exit 2) and `ddkv agent --help` documents the flag.
source "$(dirname "$0")/lib.sh"
start_cluster 1
base=$DDKV_PORT_BASE
export DDKV_ENDPOINTS=$EP
HUB=127.0.0.1:$((base + 80))
"$DDKV" hub --http-addr "$HUB" --web-dir "$ROOT/web" 2>"$WORK/hub.log" &
PIDS+=($!)

for bad in 'cpu' 'cpu=5' 'cpu/x=60' 'cpu=60s'; do
  set +e
  "$DDKV" agent --name bad --retention "$bad" 2>"$WORK/bad.log" >/dev/null
  rc=$?
  set -e
  [ $rc = 2 ] && grep -q -- "--retention '$bad'" "$WORK/bad.log" || fail "--retention '$bad': exit $rc: $(cat "$WORK/bad.log")"
done
"$DDKV" agent --help >"$WORK/help.txt" 2>&1 || true
grep -q -- '--retention PATTERN=S' "$WORK/help.txt" || fail "agent --help does not show --retention: $(cat "$WORK/help.txt")"
pass "a bad --retention is a usage error naming the flag (exit 2); --help documents it"

"$DDKV" agent --name box --interval-ms 500 --retention-s 1800 --source 'temp=echo 21.5@300' \
  --retention 'temp=86400' --retention 'cpu*=600' --retention 'mem.used=7200' 2>"$WORK/agent.log" &
PIDS+=($!)
for _ in $(seq 100); do curl -sf "http://$HUB/health" >/dev/null 2>&1 && break; sleep 0.1; done
get() { curl -s -o "$WORK/body" -w '%{http_code}' "http://$HUB$1"; }
check() { python3 -c "import json,sys; b=json.load(open(sys.argv[1])); $1" "$WORK/body"; }
want='{"temp","cpu","cpu.0","mem.used","mem.available","load.1"}'
for _ in $(seq 150); do
  [ "$(get /api/clients/box/series)" = 200 ] && check "assert $want <= {s['name'] for s in b}" 2>/dev/null && break
  sleep 0.1
done
check "
m = {s['name']: s for s in b}
assert $want <= set(m), sorted(m)
assert m['temp']['retention_s'] == 86400, m['temp']
assert m['cpu']['retention_s'] == 600 and m['cpu.0']['retention_s'] == 600, (m['cpu'], m['cpu.0'])
assert m['mem.used']['retention_s'] == 7200 and m['mem.available']['retention_s'] == 1800, m
assert m['load.1']['retention_s'] == 1800, m['load.1']
assert m['cpu']['unit'] == '%' and m['mem.used']['unit'] == 'B' and m['load.1']['unit'] == '', m
assert m['cpu']['interval_ms'] == 500 and m['temp']['interval_ms'] == 300, m
" || fail "series list: $(cat "$WORK/body")"
pass "retention per series: temp 86400 (by name), cpu and cpu.N 600 (cpu*), mem.used 7200, the rest --retention-s 1800"

for s in temp cpu cpu.0 mem.used mem.available load.1; do
  for _ in $(seq 50); do
    [ "$(get "/api/clients/box/series/$s?window=5m")" = 200 ] && check 'assert sum(x["n"] for x in b) >= 1' 2>/dev/null && break
    sleep 0.1
  done
  check 'assert sum(x["n"] for x in b) >= 1' || fail "no points of $s: $(cat "$WORK/body")"
done
get "/api/clients/box/series/cpu?window=5m" >/dev/null
check 'assert all(0 <= x["min"] <= x["max"] <= 100 for x in b), b' || fail "cpu outside 0..100: $(cat "$WORK/body")"
get "/api/clients/box/series/mem.available?window=5m" >/dev/null
check 'assert all(x["min"] > 0 for x in b), b' || fail "mem.available: $(cat "$WORK/body")"
pass "points of every series arrive, each under its retention's lease (cpu in 0..100 %, mem.available > 0 B)"

[ "$(get /api/clients/box/metrics)" = 200 ] && check 'assert len(b) >= 1 and "cpu" in b[-1] and "mem_used" in b[-1], b[-1]' ||
  fail "the old metrics path: $(cat "$WORK/body")"
pass "the old metrics path still has its samples (cpu, mem_used)"
grep -E "Sanitizer|runtime error" "$WORK/agent.log" "$WORK/hub.log" && fail "sanitizers reported"
echo "all $PASSED passed"
