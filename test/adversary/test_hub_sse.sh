#!/usr/bin/env bash
# Issue 22 finding 6: 200 event streams that never read, while 30 values of
# 512 KiB are written to metrics/ (every stream is sent every one). Before:
# every stream kept its own copy of every event up to 8 MiB, 1.6 GiB in all.
# Now each event is encoded once and shared by reference, and a stream more
# than --sse-max-kb (8 MiB) behind is dropped with a log line naming why.
# Asserted: the hub's RSS stays under 256 MiB, /health and /api/clients
# answer within 1 s throughout, every non-reading stream is dropped (logged),
# and a stream that reads gets every metric event.
source "$(dirname "$0")/test_hub_lib.bash"
start_cluster 3
export DDKV_ENDPOINTS=$EP DDKV_BIN=$DDKV
start_hub
f=$(python3 "$ATTACK" sse "$HUB" "$HUB_PID" --n 200 --writes 30 --settle 2)
echo "figures: $f"
check_figures "$f"
[ "$(figure "$f" 'f["reader_metric_events"]')" = 30 ] || fail "the reading stream got $(figure "$f" 'f["reader_metric_events"]') of 30 metric events"
dropped=$(grep -c 'event stream of .* dropped: .* unsent' "$WORK/hub.log" || true)
[ "$dropped" -ge 200 ] || fail "$dropped of the 200 non-reading streams were dropped (hub log: $(tail -3 "$WORK/hub.log"))"
pass "200 non-reading event streams, 30 x 512 KiB metric writes: hub RSS $(figure "$f" 'f["rss_max_mib"]') MiB (< $RSS_BOUND_MIB), /health $(figure "$f" 'f["health_max_ms"]') ms, /api/clients $(figure "$f" 'f["clients_max_ms"]') ms; all 200 dropped with a reason; a reading stream got all 30 events"
stop_hub
pass "the hub stops cleanly after it"
echo "${PASSED} passed, 0 failed"
