#!/usr/bin/env bash
# The node's ops HTTP endpoints: /health, /status, /metrics.
source "$(dirname "$0")/lib.sh"
start_node n1 "$WORK/d" --http-addr 127.0.0.1:0
HTTP=$(grep -o 'http listening on 127.0.0.1:[0-9]*' "$WORK/n1.log" | cut -d' ' -f4)
[ -n "$HTTP" ] || fail "no http port logged"
"$DDKV" --endpoints "127.0.0.1:$PORT_n1" write a 1 >/dev/null
rev=$("$DDKV" --endpoints "127.0.0.1:$PORT_n1" write b 2 | awk '{print $5}')
python3 - "$HTTP" "$rev" <<'PY' || fail "ops HTTP"
import json, sys, urllib.request, urllib.error
base = "http://" + sys.argv[1]
r = urllib.request.urlopen(base + "/health", timeout=5)
assert r.status == 200, r.status
h = json.load(r)
assert h["healthy"] is True and h["name"] == "n1", h
s = json.load(urllib.request.urlopen(base + "/status", timeout=5))
for k in ("name", "role", "term", "leader", "commit", "applied", "lamport", "members", "uptime_ms", "connections", "version", "revision", "keys"):
    assert k in s, (k, s)
rev = int(sys.argv[2])
assert s["name"] == "n1" and s["role"] == "leader" and s["leader"] == "n1", s
assert s["applied"] == s["commit"] >= rev and s["revision"] == rev and s["keys"] == 2, s
assert s["members"][0]["name"] == "n1" and s["members"][0]["healthy"] is True, s
m = urllib.request.urlopen(base + "/metrics", timeout=5).read().decode()
assert "# TYPE ddkv_writes_total counter" in m and "\nddkv_writes_total 2\n" in m, m
# Histograms: two synced commits and two WRITE requests were observed; buckets
# are cumulative and end at +Inf == count; every line parses as exposition text.
import re
line_re = re.compile(r'^(# (HELP|TYPE) .*|[a-z_]+(\{[^}]*\})? [0-9.e+-]+)$')
for ln in m.strip().split("\n"):
    assert line_re.match(ln), ln
fsyncs = int(m.split("\nddkv_commit_fsync_seconds_count ")[1].split("\n")[0])
assert fsyncs >= 2, fsyncs  # at least one synced log write per acknowledged write
assert '\nddkv_request_seconds_count{type="WRITE"} 2\n' in m, m
for series in ('ddkv_commit_fsync_seconds_bucket{', 'ddkv_request_seconds_bucket{type="WRITE",'):
    vals = [int(l.rsplit(" ", 1)[1]) for l in m.split("\n") if l.startswith(series)]
    assert len(vals) == 15 and vals == sorted(vals) and vals[-1] >= 2, (series, vals)
try:
    urllib.request.urlopen(base + "/nosuch", timeout=5)
    raise AssertionError("404 expected")
except urllib.error.HTTPError as e:
    assert e.code == 404, e.code
PY
pass "/health, /status and /metrics answer with the node's state"
echo "${PASSED} passed, 0 failed"
