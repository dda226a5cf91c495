#!/usr/bin/env bash
# deploy/cluster.sh end to end: start 3 on loopback, write, kill -9 a member,
# keep writing, restart it, status shows every member healthy, pause/resume,
# stop by PID. Ports: a random block checked free first.
source "$(dirname "$0")/lib.sh"
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
export DDKV_BIN=$DDKV DDKV_CLUSTER_DIR=$WORK/cluster
cleanup_extra() { "$ROOT/deploy/cluster.sh" stop >/dev/null 2>&1 || true; }

free_port_block
base=$DDKV_PORT_BASE
CL="$ROOT/deploy/cluster.sh"

expect_exit 0 "$CL" start 3
echo "$OUT" | grep -q "leader n" || fail "start did not wait for a leader: $OUT"
EP=$("$CL" endpoints)
[ "$EP" = "127.0.0.1:$((base + 1)),127.0.0.1:$((base + 2)),127.0.0.1:$((base + 3))" ] || fail "endpoints: $EP"
expect_exit 0 "$DDKV" write --endpoints "$EP" k1 v1
pass "a 3-node cluster starts, elects a leader and takes a write"

leader=$("$DDKV" ping --endpoints "$EP" | sed -n 's/.*leader \(n[0-9]\).*/\1/p')
[ -n "$leader" ] || fail "no leader in ping"
expect_exit 0 "$CL" kill "$leader"
expect_exit 0 "$DDKV" write --endpoints "$EP" --timeout-ms 10000 k2 v2
pass "kill -9 of the leader ($leader): the next write goes through"

expect_exit 0 "$CL" restart "$leader"
for _ in $(seq 100); do
  "$DDKV" status --endpoints "$EP" >"$WORK/status" 2>/dev/null || true
  [ "$(grep -c ' yes$' "$WORK/status")" = 3 ] && break
  sleep 0.1
done
[ "$(grep -c ' yes$' "$WORK/status")" = 3 ] || fail "not all healthy after restart: $(cat "$WORK/status")"
expect_exit 0 "$DDKV" read --endpoints "127.0.0.1:$((base + ${leader#n}))" --consistency linearizable k2
[ "$OUT" = v2 ] || fail "restarted member reads '$OUT'"
pass "the killed member restarts, catches up and serves"

# Hand leadership to each other member in turn, under the CLI.
for _ in 1 2; do
  cur=$("$DDKV" ping --endpoints "$EP" | sed -n 's/.*leader \(n[0-9]\).*/\1/p')
  to=n$(( ${cur#n} % 3 + 1 ))
  expect_exit 0 "$DDKV" members transfer --endpoints "$EP" "$to"
  [ "$OUT" = "$to is the leader" ] || fail "transfer $cur -> $to said: $OUT"
  now=$("$DDKV" ping --endpoints "127.0.0.1:$((base + ${cur#n}))" | sed -n 's/.*leader \(n[0-9]\).*/\1/p')
  [ "$now" = "$to" ] || fail "after transfer to $to, $cur names $now leader"
  expect_exit 0 "$DDKV" write --endpoints "$EP" "after-$to" x
done
expect_exit 1 "$DDKV" members transfer --endpoints "$EP" n9
echo "$ERR" | grep -q "not a voting member" || fail "transfer to a stranger: $ERR"
pass "members transfer hands leadership over (twice) and writes go on; a stranger is refused"

expect_exit 0 "$CL" pause n1
expect_exit 0 "$CL" status
echo "$OUT" | grep -q "n1 pid [0-9]* (paused)" || fail "status does not show n1 paused: $OUT"
expect_exit 0 "$CL" resume n1
expect_exit 2 "$CL" kill n9
pass "pause/resume show in status; an unknown member is a usage error"

pids=$(cat "$DDKV_CLUSTER_DIR"/n*.pid)
expect_exit 0 "$CL" stop
# Stopped: gone, or exited and not reaped yet (a zombie: init reaps it later).
for p in $pids; do
    if kill -0 "$p" 2>/dev/null && [[ $(awk '/^State:/ { print $2 }' "/proc/$p/status" 2>/dev/null) != Z ]]; then
        fail "pid $p still running after stop"
    fi
done
grep -q "stopped cleanly" "$DDKV_CLUSTER_DIR/n1.log" || fail "n1 did not stop cleanly"
pass "stop ends every member by PID, cleanly"
echo "all $PASSED cluster.sh checks passed"
