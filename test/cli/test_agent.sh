#!/usr/bin/env bash
# ddkv agent against a one-node cluster: it announces the machine under a
# lease, writes metric points, answers a hub's "now" and "history" requests,
# keeps sampling while the cluster is down and flushes the backlog when it is
# back, and its machine leaves the list a presence-ttl after it is killed.
source "$(dirname "$0")/lib.sh"
free_port_block
PORT=$((DDKV_PORT_BASE + 1))
EP=127.0.0.1:$PORT
start_fixed() {
  "$DDKV" serve --name n1 --data-dir "$WORK/d" --client-addr "$EP" 2>>"$WORK/n1.log" &
  NODE=$!
  PIDS+=("$NODE")
  for _ in $(seq 100); do "$DDKV" ping --endpoints "$EP" >/dev/null 2>&1 && return 0; sleep 0.1; done
  fail "node did not start"
}
start_fixed
"$DDKV" agent --endpoints "$EP" --name box1 --interval-ms 200 --presence-ttl-s 2 --timeout-ms 1000 \
  2>"$WORK/agent.log" &
AGENT=$!
PIDS+=("$AGENT")
for _ in $(seq 50); do
  n=$("$DDKV" list --endpoints "$EP" metrics/box1/ 2>/dev/null | wc -l)
  [ "$n" -ge 3 ] && break
  sleep 0.2
done
[ "$n" -ge 3 ] || fail "no metric points after 10 s: $(cat "$WORK/agent.log")"
expect_exit 0 "$DDKV" read --endpoints "$EP" clients/box1
echo "$OUT" | python3 -c '
import json, sys
c = json.load(sys.stdin)
assert c["name"] == "box1" and c["cpus"] >= 1 and c["mem_total"] > 0 and c["os"], c' || fail "presence: $OUT"
"$DDKV" list --endpoints "$EP" metrics/box1/ | tail -1 | cut -f2 | python3 -c '
import json, sys
s = json.load(sys.stdin)
assert 0 <= s["cpu"] <= 100 and len(s["cpu_cores"]) >= 1 and s["mem_total"] > 0, s
assert s["disks"][0]["mount"] == "/" and 0 <= s["disks"][0]["pct"] <= 100, s' || fail "bad metric point"
pass "the agent announces the machine and writes metric points"

expect_exit 0 "$DDKV" write --endpoints "$EP" req/box1/q1 '{"kind":"now"}'
expect_exit 0 "$DDKV" write --endpoints "$EP" req/box1/q2 '{"kind":"history","minutes":5}'
for q in q1 q2; do
  for _ in $(seq 50); do "$DDKV" read --endpoints "$EP" "resp/box1/$q" >"$WORK/$q" 2>/dev/null && break; sleep 0.1; done
done
python3 - "$WORK/q1" "$WORK/q2" <<'PY' || fail "answers: $(cat "$WORK/q1" "$WORK/q2")"
import json, sys
now = json.load(open(sys.argv[1])); hist = json.load(open(sys.argv[2]))
assert now["kind"] == "now" and 0 <= now["sample"]["cpu"] <= 100, now
assert hist["kind"] == "history" and len(hist["samples"]) >= 3, hist
ts = [s["ts"] for s in hist["samples"]]
assert ts == sorted(ts), "history out of order"
PY
expect_exit 1 "$DDKV" read --endpoints "$EP" req/box1/q1
pass "the agent answers 'now' and 'history' requests and removes them"

# The cluster goes away for 2 s: sampling goes on into the backlog, which is
# flushed when the node is back, so the outage leaves no hole.
before=$("$DDKV" list --endpoints "$EP" metrics/box1/ | wc -l)
t0=$(date +%s%3N)
kill -9 "$NODE"; wait "$NODE" 2>/dev/null || true
sleep 2
t1=$(date +%s%3N)
start_fixed
for _ in $(seq 60); do
  "$DDKV" list --endpoints "$EP" metrics/box1/ | cut -f1 | sed 's|.*/||' >"$WORK/ts"
  inside=$(awk -v a="$t0" -v b="$t1" '$1+0 > a+300 && $1+0 < b-300' "$WORK/ts" | wc -l)
  [ "$inside" -ge 5 ] && break
  sleep 0.2
done
[ "$inside" -ge 5 ] || fail "only $inside points from inside the outage were flushed: $(tail -3 "$WORK/agent.log")"
grep -q "backlog flushed" "$WORK/agent.log" || fail "no flush logged: $(cat "$WORK/agent.log")"
pass "samples taken while the cluster was down were flushed when it came back ($inside from the outage)"

kill -9 "$AGENT"; wait "$AGENT" 2>/dev/null || true
gone=0
for _ in $(seq 60); do
  if ! "$DDKV" read --endpoints "$EP" clients/box1 >/dev/null 2>&1; then gone=1; break; fi
  sleep 0.1
done
[ $gone = 1 ] || fail "clients/box1 still there 6 s after the agent died"
pass "a killed agent's machine leaves the list when its presence lease ends"
echo "${PASSED} passed, 0 failed"
