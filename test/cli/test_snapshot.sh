#!/usr/bin/env bash
# Backup and disaster recovery: `ddkv snapshot save` from a 3-node cluster under
# write load, `ddkv snapshot restore` into a new 3-node cluster (new ports, new
# data dirs): every write acknowledged before the save began is there with its
# value; the new cluster has a new id and refuses the old cluster's members; a
# damaged or truncated backup is refused and leaves no data dir; a node started
# on another cluster's data dir refuses to start, naming both cluster ids.
source "$(dirname "$0")/lib.sh"
start_cluster 3
OLD_BASE=$DDKV_PORT_BASE

# Keys written before the load, one of them overwritten, one under a lease
# that outlives the test (and, right before the save, one under a short one).
"$DDKV" write --endpoints "$EP" fixed/a first >/dev/null
"$DDKV" write --endpoints "$EP" fixed/a second >/dev/null
"$DDKV" write --endpoints "$EP" fixed/leased kept --ttl 600 >/dev/null

# The write load: two recording writers (each acknowledged write appended to
# its file after `ddkv write` succeeded) and a bench in the background.
writer() {
  local w=$1 i=0 v
  while [ ! -e "$WORK/stop" ]; do
    i=$((i + 1))
    v="value-$w-$i-$RANDOM"
    if "$DDKV" write --endpoints "$EP" --timeout-ms 5000 "load/$w/$i" "$v" >/dev/null 2>&1; then
      printf '%s\t%s\n' "load/$w/$i" "$v" >>"$WORK/acked.$w"
    fi
  done
}
for w in 1 2 3; do
  : >"$WORK/acked.$w"
  writer $w &
  PIDS+=($!)
done
"$DDKV" bench --endpoints "$EP" --workload write --clients 4 --duration-s 120 --warmup-s 0 --timeout-ms 5000 \
  -o json >"$WORK/bench.json" 2>"$WORK/bench.err" &
BENCH=$!
PIDS+=($BENCH)
# Let the recorders get some writes in (a busy machine starts processes slowly).
for _ in $(seq 600); do
  [ "$(cat "$WORK"/acked.? | wc -l)" -ge 30 ] && break
  sleep 0.1
done

# A lease whose ttl is short, but longer than the save and the restored
# cluster's first seconds: the new leader gives it its full ttl again.
"$DDKV" write --endpoints "$EP" fixed/short brief --ttl 20 >/dev/null
# What was acknowledged before the save began: every line written so far.
cat "$WORK"/acked.? >"$WORK/before-save"
printf 'fixed/a\tsecond\nfixed/leased\tkept\nfixed/short\tbrief\n' >>"$WORK/before-save"
expect_exit 0 "$DDKV" snapshot save "$WORK/backup.ddkv" --endpoints "$EP" -o json
SAVE=$OUT
sleep 1
touch "$WORK/stop"
kill -0 "$BENCH" 2>/dev/null || fail "the bench load stopped early: $(cat "$WORK/bench.err")"
kill -TERM "$BENCH"
for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
AFTER=$(cat "$WORK"/acked.? | wc -l)
NBEFORE=$(wc -l <"$WORK/before-save")
[ "$NBEFORE" -ge 30 ] || fail "only $NBEFORE writes were acknowledged before the save: no load to speak of"
[ "$AFTER" -gt "$((NBEFORE - 3))" ] || fail "the recorders stopped writing during the save"
[ -f "$WORK/backup.ddkv" ] && [ ! -e "$WORK/backup.ddkv.tmp" ] || fail "the save left no file, or its .tmp"
read -r OLD_ID SAVE_INDEX SAVE_SHA < <(python3 -c '
import json, sys
s = json.loads(sys.argv[1])
print(s["cluster_id"], s["index"], s["sha256"])' "$SAVE")
pass "saved under load at index $SAVE_INDEX (a bench of 4 writers running; $NBEFORE recorded writes acknowledged before the save, $((AFTER - NBEFORE + 3)) more during and after it)"

# The file checks: its own SHA-256 at the end, over everything before it.
python3 - "$WORK/backup.ddkv" "$SAVE_SHA" <<'PY' || fail "the file's trailing SHA-256 is not that of its contents"
import hashlib, sys
b = open(sys.argv[1], "rb").read()
assert b[:8] == b"DDKVBAK1", b[:8]
assert hashlib.sha256(b[:-32]).digest() == b[-32:]
assert b[-32:].hex() == sys.argv[2]
PY
pass "the file is a DDKVBAK1 header + image + SHA-256 of what precedes it"

# Damaged copies are refused before anything is written.
cp "$WORK/backup.ddkv" "$WORK/flipped.ddkv"
python3 - "$WORK/flipped.ddkv" <<'PY'
import sys
p = sys.argv[1]
b = bytearray(open(p, "rb").read())
b[len(b) // 2] ^= 0x01
open(p, "wb").write(b)
PY
head -c "$(($(stat -c %s "$WORK/backup.ddkv") - 100))" "$WORK/backup.ddkv" >"$WORK/truncated.ddkv"
for f in flipped truncated; do
  expect_exit 2 "$DDKV" snapshot restore "$WORK/$f.ddkv" --data-dir "$WORK/bad-$f" --name n1 \
    --cluster n1=127.0.0.1:1
  echo "$ERR" | grep -q "refusing" || fail "restore of the $f file did not say why: $ERR"
  [ ! -e "$WORK/bad-$f" ] || fail "restore of the $f file left $WORK/bad-$f behind"
done
pass "a flipped byte and a truncated file are refused (exit 2) and leave no data dir: $(echo "$ERR" | head -c 150)"

# Restore into a new cluster: new ports, new data dirs, its own token.
free_port_block
NEW_BASE=$DDKV_PORT_BASE
export DDKV_PORT_BASE=$OLD_BASE
SPEC=n1=127.0.0.1:$((NEW_BASE + 101)),n2=127.0.0.1:$((NEW_BASE + 102)),n3=127.0.0.1:$((NEW_BASE + 103))
for i in 1 2 3; do
  expect_exit 0 "$DDKV" snapshot restore "$WORK/backup.ddkv" --data-dir "$WORK/new$i" --name "n$i" \
    --cluster "$SPEC" --cluster-token new-cluster -o json
  NEW_ID=$(python3 -c 'import json,sys; print(json.loads(sys.argv[1])["cluster_id"])' "$OUT")
done
expect_exit 2 "$DDKV" snapshot restore "$WORK/backup.ddkv" --data-dir "$WORK/new1" --name n1 --cluster "$SPEC"
echo "$ERR" | grep -q "not empty" || fail "restore into a used data dir: $ERR"
for i in 1 2 3; do
  NONAME=1 start_node "r$i" "$WORK/new$i" --name "n$i" --peer-addr "127.0.0.1:$((NEW_BASE + 100 + i))" --cluster "$SPEC" \
    --cluster-token new-cluster
done
NEP=127.0.0.1:$PORT_r1,127.0.0.1:$PORT_r2,127.0.0.1:$PORT_r3
for _ in $(seq 100); do
  "$DDKV" ping --endpoints "$NEP" --timeout-ms 500 2>/dev/null | grep -q "leader n" && break
  sleep 0.1
done
"$DDKV" ping --endpoints "$NEP" --timeout-ms 2000 | grep -q "leader n" || fail "the restored cluster elected no leader"
pass "restored the file into three new data dirs; they formed cluster $NEW_ID"

"$DDKV" list "" --endpoints "$NEP" >"$WORK/restored.tsv"
python3 - "$WORK/before-save" "$WORK/restored.tsv" <<'PY' || fail "the restored cluster lost acknowledged writes"
import sys
want = dict(l.rstrip("\n").split("\t", 1) for l in open(sys.argv[1]) if l.strip())
have = dict(l.rstrip("\n").split("\t", 1) for l in open(sys.argv[2]) if l.strip())
missing = [k for k in want if k not in have]
wrong = [k for k in want if k in have and have[k] != want[k]]
assert not missing and not wrong, ("missing", missing[:5], "wrong", wrong[:5])
print("ok - all %d writes acknowledged before the save are in the new cluster with their values "
      "(%d keys there in all)" % (len(want), len(have)))
PY
PASSED=$((PASSED + 1))

# Identity: a new id, shown in status; the old cluster's members are refused.
"$DDKV" status --endpoints "$NEP" -o json >"$WORK/new-status"
"$DDKV" status --endpoints "$EP" -o json >"$WORK/old-status"
python3 - "$WORK/old-status" "$WORK/new-status" "$OLD_ID" "$NEW_ID" <<'PY' || fail "cluster ids in status are wrong"
import json, sys
old = {json.loads(l)["cluster_id"] for l in open(sys.argv[1])}
new = {json.loads(l)["cluster_id"] for l in open(sys.argv[2])}
assert old == {sys.argv[3]} and new == {sys.argv[4]} and old != new, (old, new)
PY
pass "status shows the old cluster as $OLD_ID and the new one as $NEW_ID on every member"
# Point the old cluster at a member of the new one: its hello is refused.
"$DDKV" members add x9 "127.0.0.1:$((NEW_BASE + 101))" --endpoints "$EP" >/dev/null
wait_log r1 "refusing hello.*cluster id $OLD_ID" 20
"$DDKV" write --endpoints "$NEP" after restore >/dev/null
[ "$("$DDKV" read --endpoints "$NEP" after)" = restore ] || fail "the new cluster does not take writes"
[ "$("$DDKV" read --endpoints "$NEP" fixed/leased)" = kept ] || fail "the leased key did not survive the restore"
pass "the new cluster refuses the old one's hello (cluster id $OLD_ID) and goes on serving"

# Leases: the restored leader gives each lease its full ttl again, then they expire.
gone=0
deadline=$(($(date +%s) + 60))
while [ "$(date +%s)" -lt $deadline ]; do
  if ! "$DDKV" read --endpoints "$NEP" fixed/short >/dev/null 2>&1; then gone=1; break; fi
  sleep 0.2
done
[ $gone = 1 ] || fail "the 20 s lease restored with its key never expired in the new cluster"
pass "a short lease restored with its key expires in the new cluster; a long one is kept"

# A node started on another cluster's data dir refuses, naming both ids.
"$ROOT/deploy/cluster.sh" kill n1 >/dev/null
expect_exit 2 "$DDKV" serve --name n1 --data-dir "$WORK/cluster/n1" --client-addr 127.0.0.1:0 \
  --peer-addr "127.0.0.1:$((NEW_BASE + 101))" --cluster "$SPEC" --cluster-token new-cluster
# (The flags derive another id than NEW_ID for this data dir: it holds no restore seed.)
echo "$ERR" | grep -Eq "belongs to cluster $OLD_ID, but --cluster and --cluster-token describe cluster [0-9a-f]{16}" ||
  fail "no clear refusal for the old data dir under the new flags: $ERR"
kill -TERM "$PID_r1"
wait "$PID_r1" || true
OLDSPEC=n1=127.0.0.1:$((OLD_BASE + 101)),n2=127.0.0.1:$((OLD_BASE + 102)),n3=127.0.0.1:$((OLD_BASE + 103))
expect_exit 2 "$DDKV" serve --name n1 --data-dir "$WORK/new1" --client-addr 127.0.0.1:0 \
  --peer-addr "127.0.0.1:$((OLD_BASE + 101))" --cluster "$OLDSPEC" --cluster-token "$(cat "$WORK/cluster/token")"
echo "$ERR" | grep -q "belongs to cluster $NEW_ID" || fail "no clear refusal for the new data dir under the old flags: $ERR"
pass "a node started on another cluster's data dir refuses: $(echo "$ERR" | sed 's/^.*ERROR n1 //' | head -c 200)"
"$ROOT/deploy/cluster.sh" restart n1 >/dev/null || fail "the old n1 does not start again with its own flags"
pass "the old n1 starts again with its own flags"
echo "${PASSED} passed, 0 failed"
