# Shared by the hub's adversarial tests (test_hub_*.sh; this file is not a
# test itself): a real hub on a kernel-picked port in front of a real
# cluster, the attack helper, and the bounds every attack is held to.
source "$(dirname "${BASH_SOURCE[0]}")/../cli/lib.sh"
ATTACK="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/test_hub_attack.py"
RSS_BOUND_MIB=256 # the hub's resident memory during any attack (README "The hub: limits")
LAT_BOUND_MS=1000 # /health and /api/clients for a well-behaved client during any attack

# start_hub [flags...]: the hub on 127.0.0.1:0 for the cluster in $EP; sets
# HUB (its HOST:PORT) and HUB_PID. Under ASan, freed memory waits in a
# quarantine (256 MiB by default) that is ASan's, not the hub's: a small one
# keeps the RSS figure the hub's own.
start_hub() {
  ASAN_OPTIONS="${ASAN_OPTIONS:-}:quarantine_size_mb=16" \
    "$DDKV" hub --endpoints "$EP" --http-addr 127.0.0.1:0 --web-dir "$ROOT/web" "$@" 2>"$WORK/hub.log" &
  HUB_PID=$!
  PIDS+=("$HUB_PID")
  local port=
  for _ in $(seq 100); do
    port=$(grep -o 'dashboard at http://127.0.0.1:[0-9]*' "$WORK/hub.log" | cut -d: -f3 || true)
    [ -n "$port" ] && break
    kill -0 "$HUB_PID" 2>/dev/null || fail "the hub exited at start: $(cat "$WORK/hub.log")"
    sleep 0.1
  done
  [ -n "$port" ] || fail "the hub did not start: $(cat "$WORK/hub.log")"
  HUB=127.0.0.1:$port
  for _ in $(seq 100); do curl -sf "http://$HUB/health" >/dev/null 2>&1 && return 0; sleep 0.1; done
  fail "the hub does not answer /health: $(tail -5 "$WORK/hub.log")"
}

# stop_hub: SIGTERM; the hub must stop cleanly (exit 0: no leak, no ASan report).
stop_hub() {
  kill -TERM "$HUB_PID" 2>/dev/null || true
  local rc=0
  for _ in $(seq 100); do kill -0 "$HUB_PID" 2>/dev/null || break; sleep 0.1; done
  kill -0 "$HUB_PID" 2>/dev/null && fail "the hub did not stop within 10 s of SIGTERM"
  wait "$HUB_PID" || rc=$?
  [ "$rc" = 0 ] || fail "the hub exited $rc: $(grep -A8 -m1 'ERROR\|runtime error' "$WORK/hub.log" || tail -5 "$WORK/hub.log")"
  ! grep -q 'AddressSanitizer\|runtime error' "$WORK/hub.log" || fail "sanitizer report: $(grep -m3 -A5 'Sanitizer\|runtime error' "$WORK/hub.log")"
}

# check_figures JSON: the bounds common to every attack (RSS, probe latency).
check_figures() {
  python3 - "$1" "$RSS_BOUND_MIB" "$LAT_BOUND_MS" <<'PY' || fail "bounds broken during the attack: $1"
import json, sys
f, rss, lat = json.loads(sys.argv[1]), float(sys.argv[2]), float(sys.argv[3])
assert f["rss_max_mib"] < rss, "hub RSS %.0f MiB >= %d MiB" % (f["rss_max_mib"], rss)
assert f["health_max_ms"] < lat, "/health took %.0f ms >= %d" % (f["health_max_ms"], lat)
assert f["clients_max_ms"] < lat, "/api/clients took %.0f ms >= %d" % (f["clients_max_ms"], lat)
assert f["probe_failures"] == 0 and f["probes"] >= 3, "probes: %d failed of %d" % (f["probe_failures"], f["probes"])
PY
}

# figure JSON EXPR: one value from the attack's figures (a Python expression on f).
figure() { python3 -c 'import json,sys; f=json.loads(sys.argv[1]); print(eval(sys.argv[2]))' "$1" "$2"; }
