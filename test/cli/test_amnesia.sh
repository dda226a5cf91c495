#!/usr/bin/env bash
# The amnesia guard (issue 24): a member restarted with the same name and
# flags on an empty data dir (a wiped or replaced disk) founds itself again,
# having forgotten its term, its vote and the entries it acknowledged. The
# others must refuse it -- never let it vote or count it -- and say why in
# their logs; the documented way back (members remove, empty --data-dir with
# --join, members add: deploy/cluster.sh rejoin) brings it back with every
# acknowledged write.
source "$(dirname "$0")/lib.sh"
start_cluster 3
CL=$ROOT/deploy/cluster.sh

: >"$WORK/acked"
for i in $(seq 40); do
  "$DDKV" write --endpoints "$EP" "k/$i" "v$i" >/dev/null && echo "k/$i v$i" >>"$WORK/acked"
done
for i in $(seq 50); do LEADER=$(status_leader) && break; sleep 0.2; done
[ -n "${LEADER:-}" ] || fail "no leader"
# Every member's incarnation is recorded through the log.
for i in $(seq 100); do
  [ "$(status_field "$LEADER" 'all(x.get("incarnation") for x in m.values())')" = True ] && break
  sleep 0.1
done
[ "$(status_field "$LEADER" 'all(x.get("incarnation") for x in m.values())')" = True ] ||
  fail "incarnations not recorded: $(status_field "$LEADER" m)"
for n in n1 n2 n3; do [ "$n" = "$LEADER" ] || F=$n; done
OLDINC=$(status_field "$LEADER" "m['$F']['incarnation']")
[ "$(status_field "$F" 's["incarnation"]')" = "$OLDINC" ] || fail "$F's own incarnation is not the recorded one"
TERM0=$(status_field "$LEADER" 's["term"]')
pass "every member's data-dir incarnation recorded through the log"

# --- the power cut took F's disk: same name, same flags, empty data dir ---
"$CL" kill "$F" >/dev/null
rm -rf "${DDKV_CLUSTER_DIR:?}/$F"
"$CL" restart "$F" >/dev/null
NEWINC=$(status_field "$F" 's["incarnation"]')
[ "$NEWINC" != "$OLDINC" ] || fail "a new data dir kept the old incarnation"
# Writes go on (to the leader: the amnesiac member must not take them).
for i in $(seq 41 80); do
  "$DDKV" write --endpoints "$(member_client "$LEADER")" "k/$i" "v$i" >/dev/null && echo "k/$i v$i" >>"$WORK/acked"
done
sleep 4 # past --health-max-lag-ms: the refused member cannot have caught up
refused=0
for n in n1 n2 n3; do
  [ "$n" = "$F" ] && continue
  grep -q "refusing member $F .*data dir is not the one the cluster knows" "$DDKV_CLUSTER_DIR/$n.log" &&
    refused=$((refused + 1))
done
[ $refused = 2 ] || fail "only $refused of 2 members logged refusing the amnesiac $F"
applied=$(status_field "$F" 's["applied"]')
[ "$applied" -le 5 ] || fail "the amnesiac $F was re-admitted: it applied $applied entries"
[ "$(status_field "$LEADER" "m['$F']['healthy']")" = False ] || fail "the leader reports the amnesiac $F healthy"
[ "$(status_leader)" = "$LEADER" ] && [ "$(status_field "$LEADER" 's["term"]')" = "$TERM0" ] ||
  fail "the amnesiac member disturbed the cluster: leader $(status_leader), term $(status_field "$LEADER" 's["term"]') (was $TERM0)"
pass "the amnesiac $F is refused by both members (applied $applied, leader and term $TERM0 kept)"

# --- the way back: remove, empty data dir with --join, add ---
for i in $(seq 81 100); do
  "$DDKV" write --endpoints "$(member_client "$LEADER")" "k/$i" "v$i" >/dev/null && echo "k/$i v$i" >>"$WORK/acked"
done
# No client write from here on: the re-added member must catch up by itself.
"$CL" rejoin "$F" >"$WORK/rejoin.out" 2>&1 || fail "rejoin: $(cat "$WORK/rejoin.out")"
for i in $(seq 150); do
  [ "$(status_field "$LEADER" "m['$F']['healthy'] and m['$F']['voter']")" = True ] && break
  sleep 0.1
done
[ "$(status_field "$LEADER" "m['$F']['healthy'] and m['$F']['voter']")" = True ] ||
  fail "$F did not come back as a healthy voter: $(status_field "$LEADER" "m['$F']")"
[ "$(status_field "$LEADER" "m['$F']['incarnation']")" = "$(status_field "$F" 's["incarnation"]')" ] ||
  fail "$F's new incarnation was not recorded"
missing=0
while read -r k v; do
  got=$("$DDKV" read --endpoints "$(member_client "$F")" --consistency stale "$k" 2>/dev/null || true)
  [ "$got" = "$v" ] || missing=$((missing + 1))
done <"$WORK/acked"
[ $missing = 0 ] || fail "$missing of $(wc -l <"$WORK/acked") acknowledged writes missing on the rejoined $F"
pass "after remove / --join / add, with no client write, $F is a healthy voter with all $(wc -l <"$WORK/acked") acknowledged writes"
echo "test_amnesia: ${PASSED:-0} passed"
