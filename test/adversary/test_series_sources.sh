#!/usr/bin/env bash
# Hostile sensor commands (issue 23 "a sensor command that hangs or prints
# garbage") against one agent: a command that hangs, one whose background
# child keeps its output open, one printing binary garbage, one printing
# 10 MB, one with over-long and non-finite lines, beside a good one at 300 ms.
# (The binary garbage has its digits removed: random bytes make a line like
# "7" now and then, which is a good point.)
# Asserted: the good series keeps its rate (no source delays another), each
# bad one is killed at its deadline or output cap with a clear log line, no
# process of a bad command outlives its deadline, garbage makes no series,
# the agent's RSS stays under 64 MiB, and it stops cleanly on SIGTERM.
source "$(dirname "$0")/../cli/lib.sh"
start_cluster 1
export DDKV_ENDPOINTS=$EP
MARK=$((RANDOM + 40000)) # a unique sleep length names this test's processes
"$DDKV" agent --name hostile --presence-ttl-s 3 \
  --source "hang=sleep $MARK@500" \
  --source "orphan=sleep $((MARK + 1)) & echo 5@500" \
  --source 'junk=head -c 30000 /dev/urandom | tr -d 0-9@500' \
  --source 'flood=yes 123 | head -c 10000000@500' \
  --source 'weird=printf "%0300d\n" 1; echo nan; echo inf; echo "x 1 2 3"; echo "a/b 1"; echo "7 9"; echo 4@500' \
  --source 'good=echo 1@300' 2>"$WORK/agent.log" &
AGENT=$!
PIDS+=($AGENT)
t_start=$(date +%s%3N)
sleep 6
kill -0 $AGENT 2>/dev/null || fail "the agent died: $(tail -5 "$WORK/agent.log")"
rss=$(awk '/VmRSS/ {print $2}' /proc/$AGENT/status)
echo "agent RSS after 6 s of hostile sources: $((rss / 1024)) MiB"
[ "$rss" -lt $((64 * 1024)) ] || fail "agent RSS $rss KiB"

expect_exit 0 "$DDKV" list series/hostile/good/r/
n_good=$(printf '%s\n' "$OUT" | grep -c . || true)
echo "good source: $n_good points in ~6 s (300 ms apart)"
[ "$n_good" -ge 12 ] || fail "the good source was held back by the bad ones: $n_good points"
pass "a good source keeps its rate (≥ 12 points in 6 s at 300 ms) beside hanging and flooding ones"

grep -q 'source hang: did not finish within 1000 ms: killed' "$WORK/agent.log" || fail "hang: $(grep hang "$WORK/agent.log")"
grep -q 'source orphan: did not finish within 1000 ms: killed' "$WORK/agent.log" || fail "orphan: $(grep orphan "$WORK/agent.log")"
grep -q 'source flood: printed over 65536 bytes: killed' "$WORK/agent.log" || fail "flood: $(grep flood "$WORK/agent.log")"
grep -Eq 'source junk: .*(not a number|over 256 bytes|more than 3 fields|bad series name|not a finite)' "$WORK/agent.log" ||
  fail "junk: $(grep junk "$WORK/agent.log")"
grep -q 'source weird: line 1: over 256 bytes' "$WORK/agent.log" || fail "weird: $(grep weird "$WORK/agent.log")"
[ "$(grep -c 'source hang:' "$WORK/agent.log")" -le 2 ] || fail "the same error is logged every run: $(grep -c 'source hang:' "$WORK/agent.log")"
pass "each bad command is killed at its deadline or output cap, with one clear log line (not one per run)"

# The orphan's point before it hung is kept; only good lines of "weird" count.
expect_exit 0 "$DDKV" list seriesmeta/hostile/
names=$(printf '%s\n' "$OUT" | cut -f1 | sed 's|seriesmeta/hostile/||' | grep -v -E '^(net|disk|temp|cpu|mem|load)(\.|$)' | sort | tr '\n' ' ')
echo "series: $names"
case " $names " in *" junk"*|*" hang "*) fail "garbage made a series: $names";; esac
# flood's lines are good numbers: the first 64 of a run count, then it is cut.
[ "$names" = "flood good orphan weird weird.7 " ] || fail "series: $names (want flood good orphan weird weird.7)"
expect_exit 0 "$DDKV" list series/hostile/weird/r/
printf '%s\n' "$OUT" | cut -f2 | sort -u | grep -qx 4 || fail "weird's good line: $OUT"
pass "garbage, binary, non-finite and malformed lines make no series; the good lines of a mixed output count"

# A run starts every 500 ms and has 1 s: none may be older than that (ps
# counts whole seconds: older than 2 s is a leak).
for _ in 1 2 3; do
  for p in $(pgrep -f "sleep ($MARK|$((MARK + 1)))\$" || true); do
    age=$(ps -o etimes= -p "$p" 2>/dev/null | tr -d ' ' || true)
    [ -z "$age" ] || [ "$age" -le 2 ] || fail "process $p of a killed command is $age s old: $(ps -o args= -p "$p")"
  done
  sleep 0.5
done
pass "no process of a hanging command (nor its background child) outlives its deadline"

kill -TERM $AGENT
for _ in $(seq 50); do kill -0 $AGENT 2>/dev/null || break; sleep 0.1; done
if kill -0 $AGENT 2>/dev/null; then fail "the agent did not stop within 5 s of SIGTERM"; fi
rc=0; wait $AGENT || rc=$?
[ $rc = 0 ] || fail "the agent exited $rc: $(tail -3 "$WORK/agent.log")"
left=$(pgrep -f "sleep ($MARK|$((MARK + 1)))\$" | tr '\n' ' ' || true)
[ -z "$left" ] || fail "processes of the agent's commands outlived it: $left"
t_end=$(date +%s%3N)
echo "elapsed $(( (t_end - t_start) / 1000 )) s"
pass "the agent stops cleanly on SIGTERM while its commands hang, and leaves no process of theirs"
echo "${PASSED} passed, 0 failed"
