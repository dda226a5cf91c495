#!/usr/bin/env bash
# Issue 22 finding 6: request heads that never end. Five connections each
# send 80 MB of header lines as fast as they can (before: the hub kept
# it all, 562 MiB for five of 100 MB), and ten send a head line per second
# and never finish it (before: kept open, each line restarting the timeout).
# Now a head over --max-header-bytes (16 KiB) answers 431 and closes; one not
# complete within --header-timeout-ms (10 s) answers 408 and closes.
# Asserted: the hub's RSS stays under 256 MiB, /health and /api/clients
# answer within 1 s throughout, each big head is cut within 3 s (431, or a
# reset if it was still sending), each slow one gets 408 between 9 and 13 s,
# and a 20 KiB head sent whole gets a JSON 431.
source "$(dirname "$0")/test_hub_lib.bash"
start_cluster 3
start_hub
f=$(python3 "$ATTACK" headers "$HUB" "$HUB_PID" --n 5 --bytes $((80 << 20)) --slow 10 --duration 14)
echo "figures: $f"
check_figures "$f"
python3 - "$f" <<'PY' || fail "heads: $f"
import json, sys
c = json.loads(sys.argv[1])["conns"]
big = [x for x in c if x["kind"] == "big"]
slow = [x for x in c if x["kind"] == "slow"]
assert len(big) == 5 and len(slow) == 10, c
# 431, or a reset when the hub closed while the attacker was still sending
assert all((x["status"] == 431 or x["reset"]) and x["closed_s"] < 3 for x in big), big
assert all(x["status"] == 408 and 9 <= x["closed_s"] < 13 for x in slow), slow
PY
# The answer itself, to a head sent whole: 431 with a JSON error, then close.
python3 - "$HUB" <<'PY' || fail "a 20 KiB head did not get a JSON 431"
import json, socket, sys
host, port = sys.argv[1].split(":")
s = socket.create_connection((host, int(port)), timeout=5)
s.sendall(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Big: " + b"b" * 20000 + b"\r\n\r\n")
buf = b""
while True:
    d = s.recv(65536)
    if not d:
        break
    buf += d
head, body = buf.split(b"\r\n\r\n", 1)
assert head.startswith(b"HTTP/1.1 431 "), head
assert b"Connection: close" in head, head
assert "16384 bytes" in json.loads(body)["error"], body
PY
pass "5 x 80 MB heads and 10 slow heads: 431 and 408, each closed; hub RSS $(figure "$f" 'f["rss_max_mib"]') MiB (< $RSS_BOUND_MIB), /health $(figure "$f" 'f["health_max_ms"]') ms, /api/clients $(figure "$f" 'f["clients_max_ms"]') ms"
stop_hub
pass "the hub stops cleanly after it"
echo "${PASSED} passed, 0 failed"
