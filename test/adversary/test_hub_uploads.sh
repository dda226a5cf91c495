#!/usr/bin/env bash
# Issue 22 finding 6: uploads that never finish. Ten POST /api/jobs announce
# 63 MB, send 40 MB of it at once and stall (before: the hub kept every byte
# of all ten, 653 MiB, and they were still open after 70 s). Now at most
# --uploads (2) bodies are read at once: the others get 503 with Retry-After
# before their body is read; an upload that sends less than
# --upload-min-rate-kbs (16 KiB/s) over 10 s is cut with 408.
# Asserted: the hub's RSS stays under 256 MiB, /health and /api/clients
# answer within 1 s throughout, 8 uploads get 503 + Retry-After within 3 s,
# the 2 admitted ones get 408 10 s after they stalled (within 19 s), and an
# upload that does finish after all that is queued as a job.
source "$(dirname "$0")/test_hub_lib.bash"
start_cluster 3
start_hub
f=$(python3 "$ATTACK" uploads "$HUB" "$HUB_PID" --n 10 --length 63000000 --bytes 40000000 --duration 20)
echo "figures: $f"
check_figures "$f"
python3 - "$f" <<'PY' || fail "uploads: $f"
import json, sys
u = json.loads(sys.argv[1])["uploads"]
busy = [x for x in u if x["status"] == 503]
cut = [x for x in u if x["status"] == 408]
assert len(busy) == 8 and all(x["closed_s"] < 3 and "--uploads" in x["reply"] for x in busy), busy
assert len(cut) == 2 and all(x["closed_s"] < 19 and "KiB/s" in x["reply"] for x in cut), cut
PY
pass "10 stalled 63 MB uploads: 8 refused with 503 at once, 2 cut with 408; hub RSS $(figure "$f" 'f["rss_max_mib"]') MiB (< $RSS_BOUND_MIB), /health $(figure "$f" 'f["health_max_ms"]') ms, /api/clients $(figure "$f" 'f["clients_max_ms"]') ms"

printf 'timestamp,heart_rate\n2026-01-01T00:00:00Z,70\n' >"$WORK/r.csv"
code=$(curl -s -o "$WORK/body" -w '%{http_code}' -D "$WORK/head" -X POST --data-binary @"$WORK/r.csv" "http://$HUB/api/jobs?name=r.csv")
[ "$code" = 201 ] || fail "an upload after the attack: $code $(cat "$WORK/body")"
pass "an upload after the attack is queued (201)"
stop_hub
pass "the hub stops cleanly after it"
echo "${PASSED} passed, 0 failed"
