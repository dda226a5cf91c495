#!/usr/bin/env bash
# Credential stuffing on the hub's device push (HTTP Basic on POST
# /api/clients/ID/series[/NAME]): one address tries 300 wrong passwords and
# 60 malformed Authorization headers, over and over as fast as it can (at
# most 2,000 requests, 15 s),
# while a device on another loopback address pushes every 100 ms with the
# right ones. Bounds: every attack reply is a 400, 401 or 429 (never a 5xx,
# never a 201); the throttle lets at most 12 wrong passwords reach the
# cluster's password check (the node's ddkv_auth_login_failures_total), the
# rest answered 429 before any body is read; every device push is 201 with
# a p99 under 1000 ms; the hub's RSS stays under 256 MiB; it stops cleanly
# with no password in its log.
source "$(dirname "$0")/test_hub_lib.bash"
export DDKV_AUTH_HASH_ITERATIONS=10000
start_cluster 1
D() { "$DDKV" "$@" --endpoints "$EP"; }
ROOTPW=r00t-stuff-1 HUBPW=hub-stuff-2 DEVPW=dev-stuff-3
expect_exit 0 D user add root --new-password "$ROOTPW"
expect_exit 0 D user grant root root
expect_exit 0 D user add hub --new-password "$HUBPW"
expect_exit 0 D role add hubsvc
for p in clients/ metrics/ jobs/ jobresult/ series/; do expect_exit 0 D role grant hubsvc "$p" read; done
expect_exit 0 D role grant hubsvc hubsess/ readwrite
expect_exit 0 D user grant hub hubsvc
expect_exit 0 D role add devs
expect_exit 0 D role grant devs series/dev1/ readwrite
expect_exit 0 D role grant devs seriesmeta/dev1/ readwrite
expect_exit 0 D user add dev1 --new-password "$DEVPW"
expect_exit 0 D user grant dev1 devs
expect_exit 0 D auth enable
export DDKV_USER=hub DDKV_PASSWORD=$HUBPW
start_hub
NODE_HTTP=$(member_http n1)
F0=$(metric_value "$NODE_HTTP" ddkv_auth_login_failures_total)

python3 - "$HUB" "$HUB_PID" "$DEVPW" >"$WORK/fig.json" <<'PY' || fail "the attack run: $(cat "$WORK/fig.json")"
import base64, http.client, json, os, random, sys, threading, time
hub, pid, devpw = sys.argv[1], int(sys.argv[2]), sys.argv[3]
host, port = hub.split(":")
deadline = time.monotonic() + 15
codes, lat, rss = {}, [], [0]
def post(src, auth, body, path="/api/clients/dev1/series/temp"):
    c = http.client.HTTPConnection(host, int(port), timeout=10, source_address=(src, 0))
    try:
        c.request("POST", path, body=body, headers={"Authorization": auth, "Content-Type": "application/json"})
        r = c.getresponse(); r.read(); return r.status
    finally:
        c.close()
def b64(s): return "Basic " + base64.b64encode(s.encode()).decode()
def attacker():
    rnd = random.Random(7)
    tries = [b64("dev1:guess-%d" % i) for i in range(300)]
    tries += ["Basic " + "".join(rnd.choice("!@#$%^&*()") for _ in range(rnd.randint(1, 40))) for _ in range(30)]
    tries += ["Basic " + base64.b64encode(os.urandom(rnd.randint(1, 200))).decode() for _ in range(30)]
    rnd.shuffle(tries)
    for i in range(2000):  # the list again and again, for 15 s at most
        a = tries[i % len(tries)]
        if time.monotonic() > deadline: break
        path = "/api/clients/dev1/series" if i % 2 else "/api/clients/dev1/series/temp"
        body = '{"series":[{"name":"temp","points":[{"v":1}]}]}' if i % 2 else '{"points":[{"v":1}]}'
        st = post("127.0.0.3", a, body, path)
        codes[st] = codes.get(st, 0) + 1
def device():
    while time.monotonic() < deadline - 1:
        t0 = time.monotonic()
        st = post("127.0.0.2", b64("dev1:" + devpw), '{"unit":"C","points":[{"v":21.5}]}')
        lat.append(((time.monotonic() - t0) * 1000, st))
        time.sleep(0.1)
def sampler():
    while time.monotonic() < deadline:
        with open("/proc/%d/status" % pid) as f:
            for ln in f:
                if ln.startswith("VmRSS:"): rss[0] = max(rss[0], int(ln.split()[1]) / 1024)
        time.sleep(0.2)
ts = [threading.Thread(target=f) for f in (attacker, device, sampler)]
for t in ts: t.start()
for t in ts: t.join()
ls = sorted(x[0] for x in lat)
print(json.dumps({"attack_codes": codes, "device_pushes": len(lat), "device_codes": sorted(set(x[1] for x in lat)),
                  "device_p99_ms": ls[int(len(ls) * 0.99) - 1] if ls else None, "rss_max_mib": rss[0]}))
PY
F1=$(metric_value "$NODE_HTTP" ddkv_auth_login_failures_total)
cat "$WORK/fig.json"
echo "password checks failed at the node during the attack: $((F1 - F0))"
python3 - "$WORK/fig.json" "$((F1 - F0))" <<'PY' || fail "bounds broken: $(cat "$WORK/fig.json"), node failures $((F1 - F0))"
import json, sys
f, node_fail = json.load(open(sys.argv[1])), int(sys.argv[2])
codes = {int(k): v for k, v in f["attack_codes"].items()}
assert set(codes) <= {400, 401, 429}, codes
assert codes.get(429, 0) >= 100, codes
assert node_fail <= 12, node_fail
assert f["device_pushes"] >= 20 and f["device_codes"] == [201], f
assert f["device_p99_ms"] < 1000, f
assert f["rss_max_mib"] < 256, f
PY
pass "stuffing: $(python3 -c 'import json,sys; f=json.load(open(sys.argv[1])); print("attack", f["attack_codes"], "device", f["device_pushes"], "pushes all 201, p99", round(f["device_p99_ms"]), "ms, hub RSS", round(f["rss_max_mib"]), "MiB")' "$WORK/fig.json"); node password failures $((F1 - F0)) (<= 12)"
curl -sf "http://$HUB/health" >/dev/null || fail "the hub stopped serving"
stop_hub
grep -qF -- "$DEVPW" "$WORK/hub.log" && fail "the device's password in the hub's log"
grep -q "guess-" "$WORK/hub.log" && fail "a tried password in the hub's log"
pass "the hub stopped cleanly; no password in its log"
echo "all $PASSED passed"
