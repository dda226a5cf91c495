#!/usr/bin/env bash
# Issue 22 finding 6 (and 4, for the hub): connections that do nothing. The
# hub had no connection limit and kept idle connections ~50 s (each byte
# restarting it). Now one address may hold --max-conns-per-addr (256), all
# together --max-conns (1024): more get 503 with Retry-After at accept; a
# connection without a request for --idle-timeout-ms (60 s) is closed.
# Asserted: of 300 idle connections from 127.0.0.2, 44 get 503 at once while
# /health and /api/clients from 127.0.0.1 answer within 1 s and RSS stays
# under 256 MiB; then, with --idle-timeout-ms 2000 --max-conns 40, 40 idle
# ones are closed after 2 s and the 41st of them gets 503.
source "$(dirname "$0")/test_hub_lib.bash"
start_cluster 3
start_hub
f=$(python3 "$ATTACK" conns "$HUB" "$HUB_PID" --n 300 --src 127.0.0.2 --duration 4)
echo "figures: $f"
check_figures "$f"
[ "$(figure "$f" 'f["refused_503"]')" = 44 ] || fail "refused $(figure "$f" 'f["refused_503"]') of 300 from one address, want 44: $f"
[ "$(figure "$f" 'f["open_at_end"]')" = 256 ] || fail "$(figure "$f" 'f["open_at_end"]') kept open, want 256: $f"
pass "300 idle connections from one address: 256 kept, 44 refused with 503; /health $(figure "$f" 'f["health_max_ms"]') ms, /api/clients $(figure "$f" 'f["clients_max_ms"]') ms from another, hub RSS $(figure "$f" 'f["rss_max_mib"]') MiB"
stop_hub

start_hub --idle-timeout-ms 2000 --max-conns 40
f=$(python3 "$ATTACK" conns "$HUB" "$HUB_PID" --n 41 --src 127.0.0.3 --duration 5)
echo "figures: $f"
python3 - "$f" <<'PY' || fail "idle: $f"
import json, sys
f = json.loads(sys.argv[1])
# the probes of the well-behaved client hold a connection now and then, so
# one or two more may be refused
assert 1 <= f["refused_503"] <= 3, f
assert f["open_at_end"] == 0 and f["idle_closed"] == 41 - f["refused_503"], f
assert 1.8 <= f["idle_closed_s"][0] and f["idle_closed_s"][-1] < 3.5, f
PY
pass "--max-conns 40: the 41st connection gets 503; --idle-timeout-ms 2000: idle ones closed after $(figure "$f" 'f["idle_closed_s"]') s"
curl -sf "http://$HUB/health" >/dev/null || fail "/health after the idle ones were closed"
stop_hub
pass "the hub stops cleanly after it"
echo "${PASSED} passed, 0 failed"
