#!/usr/bin/env bash
# Named series (issue 23 item 3) against a 3-node cluster: an agent's command
# sources at two rates and its built-in sources listed with unit and
# interval; the chart API's bucket shape and min/avg/max math on pushed
# points (raw buckets for 5m and 1h, minute rollups for 24h); `ddkv metric
# push`; the 0.1.0 metric layout still served; and a JSON error for every
# bad request.
source "$(dirname "$0")/lib.sh"
start_cluster 3
base=$DDKV_PORT_BASE
export DDKV_ENDPOINTS=$EP
HUB=127.0.0.1:$((base + 80))
"$DDKV" hub --http-addr "$HUB" --web-dir "$ROOT/web" 2>"$WORK/hub.log" &
PIDS+=($!)
"$DDKV" agent --name box --presence-ttl-s 3 --source 'fast=echo 21.5@200' \
  --source 'multi=printf "a 1 C\nb 2.5\n"@1000' 2>"$WORK/agent.log" &
PIDS+=($!)
for _ in $(seq 100); do curl -sf "http://$HUB/health" >/dev/null 2>&1 && break; sleep 0.1; done
curl -sf "http://$HUB/health" >/dev/null || fail "the hub does not answer: $(cat "$WORK/hub.log")"

get() { curl -s -o "$WORK/body" -w '%{http_code}' "http://$HUB$1"; }
post() { curl -s -o "$WORK/body" -w '%{http_code}' -X POST -H 'Content-Type: application/json' --data-binary "$2" "http://$HUB$1"; }
check() { python3 -c "import json,sys; b=json.load(open(sys.argv[1])); $1" "$WORK/body" "${@:2}"; }

# The agent's series: two command sources at their own rates, a unit from
# the command's output, and the built-in network rates (every Linux box has
# an interface other than lo in /proc/net/dev; a test box without one skips
# that check).
for _ in $(seq 100); do
  [ "$(get /api/clients/box/series)" = 200 ] && check 'assert {"fast","multi.a","multi.b"} <= {s["name"] for s in b}' 2>/dev/null && break
  sleep 0.1
done
check '
m = {s["name"]: s for s in b}
assert m["fast"]["interval_ms"] == 200 and m["fast"]["unit"] == "", m["fast"]
assert m["multi.a"]["interval_ms"] == 1000 and m["multi.a"]["unit"] == "C", m["multi.a"]
assert m["multi.b"]["unit"] == "" and m["multi.b"]["retention_s"] == 3600, m["multi.b"]
assert all(set(s) >= {"name", "unit", "interval_ms"} for s in b), b
' || fail "series list: $(cat "$WORK/body")"
if awk -F: 'NR>2 && $1 !~ /^ *lo$/ {f=1} END {exit !f}' /proc/net/dev; then
  for _ in $(seq 50); do get /api/clients/box/series >/dev/null; check 'assert "net.rx" in {s["name"] for s in b}' 2>/dev/null && break; sleep 0.1; done
  check 'm = {s["name"]: s for s in b}; assert m["net.rx"]["unit"] == "B/s" and m["net.tx"]["unit"] == "B/s", b' ||
    fail "built-in network series: $(cat "$WORK/body")"
fi
pass "GET /api/clients/{id}/series: command sources with their own interval and unit, built-in sources"

sleep 2
[ "$(get '/api/clients/box/series/fast?window=5m')" = 200 ] || fail "fast 5m: $(cat "$WORK/body")"
check '
assert len(b) >= 2, b
assert all(set(x) >= {"t", "min", "avg", "max"} for x in b), b
assert all(x["t"] % 1000 == 0 for x in b), b
assert all(x["min"] == x["avg"] == x["max"] == 21.5 for x in b), b
assert max(x["n"] for x in b) >= 3, b   # 200 ms apart: several points to a 1 s bucket
assert [x["t"] for x in b] == sorted(x["t"] for x in b), b
' || fail "a 5-minute window of the 200 ms source: $(cat "$WORK/body")"
[ "$(get '/api/clients/box/series/multi.a?window=5m')" = 200 ] || fail "multi.a: $(cat "$WORK/body")"
check 'assert b and all(x["avg"] == 1 and x["n"] == 1 for x in b), b' || fail "multi.a points: $(cat "$WORK/body")"
pass "a source's points come back in 1-second buckets of the 5-minute window"

# Downsampling math on pushed points at known times.
now=$(date +%s%3N)
t0=$(( (now - 100000) / 12000 * 12000 ))   # a 12 s bucket start, so also a 1 s one
pts=""
for k in 0 1 2 3 4 5 6 7; do pts+="{\"t\":$((t0 + k * 250)),\"v\":$k},"; done
pts+="{\"t\":$((t0 + 12000)),\"v\":-4}"
[ "$(post /api/clients/dev1/series/temp "{\"unit\":\"C\",\"interval_ms\":250,\"retention_s\":7200,\"points\":[$pts]}")" = 201 ] ||
  fail "POST series: $(cat "$WORK/body")"
check 'assert b == {"written": 9}, b' || fail "POST answer: $(cat "$WORK/body")"
[ "$(get '/api/clients/dev1/series/temp?window=5m')" = 200 ] || fail "temp 5m: $(cat "$WORK/body")"
check '
t0 = int(sys.argv[2])
assert b == [{"t": t0, "min": 0, "avg": 1.5, "max": 3, "n": 4}, {"t": t0 + 1000, "min": 4, "avg": 5.5, "max": 7, "n": 4},
             {"t": t0 + 12000, "min": -4, "avg": -4, "max": -4, "n": 1}], b
' "$t0" || fail "5m buckets (t0 $t0): $(cat "$WORK/body")"
[ "$(get '/api/clients/dev1/series/temp?window=1h')" = 200 ] || fail "temp 1h: $(cat "$WORK/body")"
check '
t0 = int(sys.argv[2])
assert b == [{"t": t0, "min": 0, "avg": 3.5, "max": 7, "n": 8}, {"t": t0 + 12000, "min": -4, "avg": -4, "max": -4, "n": 1}], b
' "$t0" || fail "1h buckets (t0 $t0): $(cat "$WORK/body")"
# 24 h: from minute rollups. Two minutes of one 5-minute bucket, pushed in
# two requests (the second recomputes only its own minute).
m0=$(( (now - 1800000) / 300000 * 300000 ))
post /api/clients/dev1/series/temp "{\"unit\":\"C\",\"retention_s\":7200,\"points\":[{\"t\":$m0,\"v\":1},{\"t\":$((m0 + 59999)),\"v\":2},{\"t\":$((m0 + 30000)),\"v\":3}]}" >/dev/null
[ "$(post /api/clients/dev1/series/temp "{\"unit\":\"C\",\"retention_s\":7200,\"points\":[{\"t\":$((m0 + 60000)),\"v\":10}]}")" = 201 ] ||
  fail "POST: $(cat "$WORK/body")"
expect_exit 0 "$DDKV" read "series/dev1/temp/m/$(printf %013d "$m0")"
python3 -c 'import json,sys; r=json.loads(sys.argv[1]); assert (r["n"],r["min"],r["avg"],r["max"])==(3,1,2,3), r' "$OUT" ||
  fail "the first minute's rollup: $OUT"
# A rollup without raw points (as if they had expired) is read by 24h, not by 1h.
r0=$(( m0 - 600000 ))
expect_exit 0 "$DDKV" write "series/dev1/temp/m/$(printf %013d "$r0")" '{"n":60,"min":-1,"avg":0.5,"max":2}'
[ "$(get '/api/clients/dev1/series/temp?window=24h')" = 200 ] || fail "temp 24h: $(cat "$WORK/body")"
check 'r0 = int(sys.argv[2]); assert {"t": r0, "min": -1, "avg": 0.5, "max": 2, "n": 60} in b, b' "$r0" ||
  fail "24h does not read the minute rollups: $(cat "$WORK/body")"
[ "$(get '/api/clients/dev1/series/temp?window=1h')" = 200 ] || fail "temp 1h: $(cat "$WORK/body")"
check 'assert sum(x["n"] for x in b) == 13 and all(x["n"] < 60 for x in b), b' || fail "1h reads rollups: $(cat "$WORK/body")"
expect_exit 0 "$DDKV" delete "series/dev1/temp/m/$(printf %013d "$r0")"
[ "$(get '/api/clients/dev1/series/temp?window=24h')" = 200 ] || fail "temp 24h: $(cat "$WORK/body")"
check '
m0, t0 = int(sys.argv[2]), int(sys.argv[3])
assert b[0] == {"t": m0, "min": 1, "avg": 4, "max": 10, "n": 4}, b
assert sum(x["n"] for x in b) == 13 and all(x["t"] % 300000 == 0 for x in b), b
last = [x for x in b if x["t"] <= t0 < x["t"] + 300000 or x["t"] <= t0 + 12000 < x["t"] + 300000]
assert sum(x["n"] for x in last) == 9 and min(x["min"] for x in last) == -4 and max(x["max"] for x in last) == 7, b
' "$m0" "$t0" || fail "24h buckets from rollups (m0 $m0): $(cat "$WORK/body")"
[ "$(get /api/clients/dev1/series)" = 200 ] || fail "dev1 series"
check 'assert b == [{"name": "temp", "unit": "C", "interval_ms": 0, "retention_s": 7200}], b' ||
  fail "pushed series meta: $(cat "$WORK/body")"
pass "min/avg/max per bucket: 1 s (5m) and 12 s (1h) from raw points, 5 min (24h) from minute rollups"

expect_exit 0 "$DDKV" metric push dev1 hum 55.5 --unit %
expect_exit 0 "$DDKV" metric push dev1 hum 44.5 --unit %
[ "$(get '/api/clients/dev1/series/hum?window=15m')" = 200 ] || fail "hum: $(cat "$WORK/body")"
check 'assert sum(x["n"] for x in b) == 2 and min(x["min"] for x in b) == 44.5 and max(x["max"] for x in b) == 55.5, b' ||
  fail "pushed by the CLI: $(cat "$WORK/body")"
get /api/clients/dev1/series >/dev/null
check 'assert {"name": "hum", "unit": "%", "interval_ms": 0, "retention_s": 3600} in b, b' || fail "hum meta: $(cat "$WORK/body")"
expect_exit 2 "$DDKV" metric push dev1 'bad/name' 1
expect_exit 2 "$DDKV" metric push dev1 hum abc
expect_exit 2 "$DDKV" metric push dev1 hum nan
expect_exit 2 "$DDKV" metric push 'a/b' hum 1
pass "ddkv metric push writes a point and its unit; a bad name, value or client is refused (exit 2)"

[ "$(get /api/clients/box/metrics)" = 200 ] || fail "metrics"
check 'assert b and "cpu" in b[-1] and "disks" in b[-1], b[-1:]' || fail "the 0.1.0 layout: $(head -c 300 "$WORK/body")"
pass "the agent still writes metrics/<id>/<ts> samples, served as before"

# Live points: a stream per client (/api/events?series=ID) carries that
# client's new points alone; the main stream carries none.
curl -sN --max-time 4 "http://$HUB/api/events?series=dev1" >"$WORK/sse-dev1" &
S1=$!; PIDS+=($S1)
curl -sN --max-time 4 "http://$HUB/api/events" >"$WORK/sse-main" &
S2=$!; PIDS+=($S2)
sleep 1
expect_exit 0 "$DDKV" metric push dev1 hum 33.25 --unit %
wait $S1 $S2 || true
grep -q '^data: {"id":"dev1","series":"hum","t":[0-9]*,"v":33.25}' "$WORK/sse-dev1" || fail "dev1's stream: $(head -c 600 "$WORK/sse-dev1")"
! grep -q '"id":"box"' "$WORK/sse-dev1" || fail "dev1's stream carries box's points"
! grep -q '^event: series' "$WORK/sse-main" || fail "the main stream carries series points"
grep -q '^event: metric' "$WORK/sse-main" || fail "the main stream lost its metric events"
[ "$(get '/api/events?series=a%20b')" = 400 ] && [ "$(get '/api/events?series=')" = 400 ] || fail "a bad series= id: $(cat "$WORK/body")"
pass "/api/events?series=ID streams that client's new points alone; the main stream has none"

json_error() { check 'assert isinstance(b["error"], str) and b["error"]' || fail "$1: not a JSON error: $(cat "$WORK/body")"; }
for q in '/api/clients/dev1/series/temp?window=7d' '/api/clients/dev1/series/bad%2Fname' '/api/clients/dev1/series/a$b'; do
  [ "$(get "$q")" = 400 ] || fail "$q: want 400, got $(cat "$WORK/body")"; json_error "$q"
done
[ "$(get /api/clients/dev1/series/nothing)" = 404 ] || fail "unknown series: $(cat "$WORK/body")"; json_error 404
old=$(( now - 3 * 86400000 ))
for body in 'not json' '[]' '{"points":[]}' '{"points":[{"v":"x"}]}' '{"points":[{"v":1,"t":-5}]}' \
  "{\"points\":[{\"v\":1,\"t\":$old}]}" '{"unit":"a\"b","points":[{"v":1}]}' '{"retention_s":1,"points":[{"v":1}]}' \
  '{"points":[{"v":1e999}]}'; do
  code=$(post /api/clients/dev1/series/temp "$body")
  [ "$code" = 400 ] || fail "POST $body: want 400, got $code $(cat "$WORK/body")"; json_error "POST $body"
done
spread=$(python3 -c 'import sys; n=int(sys.argv[1]); print("{\"retention_s\":86400,\"points\":[" + ",".join("{\"t\":%d,\"v\":1}" % (n - 60000 * i) for i in range(1, 200)) + "]}")' "$now")
code=$(post /api/clients/dev1/series/spread "$spread")
[ "$code" = 400 ] && grep -q 'spans 199 minutes' "$WORK/body" || fail "a push over 199 minutes: $code $(cat "$WORK/body")"
python3 -c 'print("{\"points\":[" + ",".join("{\"v\":1}" for _ in range(40000)) + "]}")' >"$WORK/big.json"
code=$(curl -s -o "$WORK/body" -w '%{http_code}' -X POST --data-binary @"$WORK/big.json" "http://$HUB/api/clients/dev1/series/temp")
[ "$code" = 413 ] || fail "a 320 KB push: want 413, got $code"
[ "$(get /health)" = 200 ] || fail "the hub stopped answering"
pass "bad windows, names, bodies, values, times and sizes get a JSON 4xx; the hub keeps serving"
echo "${PASSED} passed, 0 failed"
