#!/usr/bin/env bash
# The rolling upgrade of issue 21: a 3-node cluster of the newest release
# named in RELEASES (built from its commit, cached) is upgraded, one member at
# a time, to the build under test ($DDKV_BIN) while ddkv-upgrade-load writes
# and reads. Each member gets SIGTERM (a leader hands leadership over first),
# must exit 0, and is started again from the new binary on the same data dir
# with the same flags; the next one goes only once it is healthy (/health
# 200). Followers go first, the leader last (UPGRADE_ORDER=names: n1, n2, n3).
# Then: no write failed or ended in doubt, no read failed, the history is
# linearizable (ddkv-faults --check), every acknowledged unique key is there,
# and the three members hold the same data.
#
# The last section (marked below) checks what the versioning of issue 21
# adds: the cluster version, a gated feature, the refused downgrade.
#
# Environment: DDKV_BIN (the build under test), UPGRADE_LOAD_BIN, FAULTS_BIN
# (set by ctest); UPGRADE_OLD_BIN (this binary as the old release, no build);
# UPGRADE_RELEASES (another RELEASES file); UPGRADE_ORDER (followers-first,
# the default, or names); UPGRADE_TIMEOUT_MS (the load's per-operation
# timeout, 10000); UPGRADE_MAX_PAUSE_MS (the longest pause between two
# acknowledged writes allowed, 5000); UPGRADE_KILL=1 (SIGKILL instead of
# SIGTERM, exit code not checked: with a tiny UPGRADE_TIMEOUT_MS, shows the
# test failing); UPGRADE_FINAL_SECTION=on (the last section, see below).
source "$(dirname "$0")/../cli/lib.sh"
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
BUILD=$(cd "$(dirname "$DDKV")" && pwd)
LOAD=${UPGRADE_LOAD_BIN:-$BUILD/test/ddkv-upgrade-load}
FAULTS=${FAULTS_BIN:-$BUILD/test/ddkv-faults}
[ -x "$LOAD" ] || fail "load binary not found at $LOAD (build ddkv-upgrade-load or set UPGRADE_LOAD_BIN)"
[ -x "$FAULTS" ] || fail "ddkv-faults not found at $FAULTS (set FAULTS_BIN)"
ms() { date +%s%3N; }
T_START=$(ms)

# --- the old release: built from its commit, cached by commit ---------------

# The newest release line of RELEASES: "VERSION COMMIT DATE".
RELEASES=${UPGRADE_RELEASES:-$ROOT/RELEASES}
read -r OLD_VERSION OLD_SHA _ < <(grep -Ev '^[[:space:]]*(#|$)' "$RELEASES" | tail -1) ||
  fail "no release named in $RELEASES"
[[ $OLD_SHA =~ ^[0-9a-f]{40}$ ]] || fail "RELEASES: '$OLD_SHA' is not a full commit id"

build_old() {
  local cache=$BUILD/upgrade-cache/$OLD_SHA
  OLD_BIN=$cache/ddkv
  [ -x "$OLD_BIN" ] || git -C "$ROOT" cat-file -e "$OLD_SHA^{commit}" 2>/dev/null ||
    fail "release $OLD_VERSION: commit $OLD_SHA is not in the repository at $ROOT (a shallow clone? fetch it)"
  mkdir -p "$cache"
  # One build at a time (parallel runs share the cache).
  exec 8>"$cache/lock"
  flock 8
  if [ -x "$OLD_BIN" ]; then
    echo "old release $OLD_VERSION ($OLD_SHA): cached build $OLD_BIN"
    flock -u 8
    return 0
  fi
  local t0 src=$cache/src bld=$cache/build
  t0=$(ms)
  rm -rf "$src" "$bld"
  mkdir -p "$src"
  git -C "$ROOT" archive "$OLD_SHA" | tar -x -C "$src" || fail "git archive $OLD_SHA failed"
  if ! { cmake -S "$src" -B "$bld" -DCMAKE_BUILD_TYPE=Release -DDDKV_TESTS=OFF &&
    cmake --build "$bld" -j2 --target ddkv; } >"$cache/build.log" 2>&1; then
    tail -30 "$cache/build.log" >&2
    fail "building release $OLD_VERSION ($OLD_SHA) failed (log: $cache/build.log)"
  fi
  cp "$bld/ddkv" "$OLD_BIN.tmp" && mv "$OLD_BIN.tmp" "$OLD_BIN"
  rm -rf "$src" "$bld"
  flock -u 8
  echo "old release $OLD_VERSION ($OLD_SHA): built in $((($(ms) - t0) / 1000)) s into $OLD_BIN"
}

# --- the cluster -------------------------------------------------------------

N=3
TOKEN=$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')
client_addr() { echo "127.0.0.1:$((DDKV_PORT_BASE + $1))"; }
peer_addr() { echo "127.0.0.1:$((DDKV_PORT_BASE + 100 + $1))"; }
http_addr() { echo "127.0.0.1:$((DDKV_PORT_BASE + 200 + $1))"; }
endpoints() { local i s=""; for ((i = 1; i <= N; i++)); do s+="${s:+,}$(client_addr $i)"; done; echo "$s"; }
spec() { local i s=""; for ((i = 1; i <= N; i++)); do s+="${s:+,}n$i=$(peer_addr $i)"; done; echo "$s"; }

declare -A MPID MBIN # member -> its PID, the binary it runs
# start_member I BIN: n<I> from BIN on its data dir, always the same flags;
# returns once it listens (fails if it exits first).
start_member() {
  local i=$1 bin=$2 log=$WORK/n$1.log
  echo "=== start $(date -u +%T) $bin" >>"$log"
  "$bin" serve --name "n$i" --data-dir "$WORK/n$i" --client-addr "$(client_addr "$i")" \
    --peer-addr "$(peer_addr "$i")" --http-addr "$(http_addr "$i")" --cluster "$(spec)" \
    --cluster-token "$TOKEN" >>"$log" 2>&1 </dev/null &
  local pid=$!
  PIDS+=("$pid")
  MPID[n$i]=$pid
  MBIN[n$i]=$bin
  local starts t
  starts=$(grep -c '^=== start' "$log")
  for ((t = 0; t < 300; t++)); do
    [ "$(grep -c 'client listening on' "$log")" -ge "$starts" ] && return 0
    kill -0 "$pid" 2>/dev/null || fail "n$i ($bin) exited at start: $(tail -5 "$log")"
    sleep 0.1
  done
  fail "n$i did not listen within 30 s: $(tail -5 "$log")"
}

# stop_member NAME SIGNAL: signal it, wait (≤ 20 s) for it to exit; sets STOP_RC.
stop_member() {
  local name=$1 sig=$2 pid=${MPID[$1]} t
  kill -"$sig" "$pid"
  for ((t = 0; t < 200; t++)); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  kill -0 "$pid" 2>/dev/null && fail "$name (pid $pid) still runs 20 s after SIG$sig: $(tail -5 "$WORK/$name.log")"
  set +e
  wait "$pid" 2>/dev/null
  STOP_RC=$?
  set -e
}

# Member NAME's ops HTTP: the status code of PATH, its /status JSON ("" if none).
http_code() { curl -s -o /dev/null -m 2 -w '%{http_code}' "http://$(http_addr "${1#n}")$2" 2>/dev/null || true; }
status_json() { curl -s -m 2 "http://$(http_addr "${1#n}")/status" 2>/dev/null || true; }
role_of() { status_json "$1" | python3 -c 'import json,sys; print(json.load(sys.stdin).get("role",""))' 2>/dev/null || true; }
leader() { local i; for ((i = 1; i <= N; i++)); do [ "$(role_of "n$i")" = leader ] && { echo "n$i"; return 0; }; done; return 1; }

# wait_healthy NAME SECONDS: /health answers 200.
wait_healthy() {
  local name=$1 secs=$2 t
  for ((t = 0; t < secs * 10; t++)); do
    [ "$(http_code "$name" /health)" = 200 ] && return 0
    kill -0 "${MPID[$name]}" 2>/dev/null || fail "$name exited: $(tail -5 "$WORK/$name.log")"
    sleep 0.1
  done
  fail "$name not healthy within $secs s: $(status_json "$name") $(tail -5 "$WORK/$name.log")"
}

wait_leader() {
  local t
  for ((t = 0; t < 300; t++)); do leader >/dev/null && return 0; sleep 0.1; done
  fail "no leader within 30 s"
}

# Each member's whole keyspace, read from itself alone (--consistency stale),
# once all have applied the same index; equal on all three or fail.
check_members_equal() {
  local try i applied sums
  for ((try = 0; try < 50; try++)); do
    applied=$(for ((i = 1; i <= N; i++)); do
      status_json "n$i" | python3 -c 'import json,sys; print(json.load(sys.stdin)["applied"])' 2>/dev/null || echo x$i
    done | sort -u)
    if [ "$(echo "$applied" | wc -l)" = 1 ] && [[ $applied =~ ^[0-9]+$ ]]; then
      for ((i = 1; i <= N; i++)); do
        "$DDKV" list --endpoints "$(client_addr "$i")" --consistency stale >"$WORK/data.n$i" 2>"$WORK/stderr" ||
          fail "list from n$i: $(cat "$WORK/stderr")"
      done
      sums=$(md5sum "$WORK"/data.n* | cut -d' ' -f1 | sort -u | wc -l)
      if [ "$sums" = 1 ]; then
        DATA_KEYS=$(wc -l <"$WORK/data.n1")
        return 0
      fi
    fi
    sleep 0.2
  done
  for ((i = 2; i <= N; i++)); do diff "$WORK/data.n1" "$WORK/data.n$i" | head -5 >&2 || true; done
  fail "the members' data differ (applied: $(echo "$applied" | tr "\n" " "))"
}

# --- the run -----------------------------------------------------------------

main() {
  if [ -n "${UPGRADE_OLD_BIN:-}" ]; then
    OLD_BIN=$UPGRADE_OLD_BIN
    echo "old release: $OLD_BIN (UPGRADE_OLD_BIN)"
  else
    build_old
  fi

  free_port_block
  local EP i name t0 t1
  EP=$(endpoints)
  cleanup_extra() { [ -n "${LOAD_PID:-}" ] && kill -9 "$LOAD_PID" 2>/dev/null; return 0; }
  for ((i = 1; i <= N; i++)); do start_member "$i" "$OLD_BIN"; done
  wait_leader
  for ((i = 1; i <= N; i++)); do wait_healthy "n$i" 30; done
  pass "a 3-node cluster of $OLD_VERSION is up (leader $(leader))"
  if [ "$FINAL_SECTION" = on ]; then versioning_before; fi

  # The load: writers (write, CAS, unique keys) and linearizable readers.
  local timeout_ms=${UPGRADE_TIMEOUT_MS:-10000}
  "$LOAD" --endpoints "$EP" --writers 3 --readers 2 --keys 4 --timeout-ms "$timeout_ms" \
    --history "$WORK/history.jsonl" --acked "$WORK/acked.txt" --stop-file "$WORK/stop" \
    >"$WORK/load.out" 2>"$WORK/load.err" &
  LOAD_PID=$!
  PIDS+=("$LOAD_PID")
  sleep 3
  [ -s "$WORK/history.jsonl" ] || fail "the load recorded nothing in 3 s: $(cat "$WORK/load.err")"

  # One member at a time: followers first, the leader last.
  local sig=TERM order=${UPGRADE_ORDER:-followers-first} done_list="" per="" L cand
  [ "${UPGRADE_KILL:-0}" = 1 ] && sig=KILL
  local T_ROLL0
  T_ROLL0=$(ms)
  for ((k = 0; k < N; k++)); do
    if [ "$order" = names ]; then
      name=n$((k + 1))
    else
      wait_leader
      L=$(leader)
      name=
      for ((i = 1; i <= N; i++)); do
        cand=n$i
        [[ " $done_list " == *" $cand "* || $cand == "$L" ]] && continue
        name=$cand
        break
      done
      [ -n "$name" ] || name=$L
    fi
    local was
    was=$(role_of "$name")
    t0=$(ms)
    stop_member "$name" "$sig"
    if [ "$sig" = TERM ]; then
      [ "$STOP_RC" = 0 ] || fail "$name ($was) exited $STOP_RC on SIGTERM, want 0: $(tail -5 "$WORK/$name.log")"
    fi
    t1=$(ms)
    local how=""
    # What the old build logged since its last start.
    if [ "$was" = leader ] && sed -n '/^=== start/h; /^=== start/!H; ${x;p}' "$WORK/$name.log" | grep -q "leadership handed over"; then
      how=", leadership handed over first"
    fi
    start_member "${name#n}" "$DDKV"
    wait_healthy "$name" 60
    local took=$(($(ms) - t0))
    per+="${per:+, }$name ($was) $took ms"
    pass "$name ($was) replaced by the new build: stopped in $((t1 - t0)) ms (exit $STOP_RC$how), healthy again after $took ms"
    done_list+=" $name"
    if [ "$FINAL_SECTION" = on ]; then versioning_mixed "$name" "$k"; fi
    sleep 3 # the load runs against the mixed cluster for a while
  done
  local T_ROLL=$(($(ms) - T_ROLL0))
  for ((i = 1; i <= N; i++)); do [ "${MBIN[n$i]}" = "$DDKV" ] || fail "n$i still runs ${MBIN[n$i]}"; done

  # Stop the load, judge its figures.
  touch "$WORK/stop"
  local t
  for ((t = 0; t < 300; t++)); do kill -0 "$LOAD_PID" 2>/dev/null || break; sleep 0.1; done
  kill -0 "$LOAD_PID" 2>/dev/null && fail "the load did not stop within 30 s of its stop file"
  set +e
  wait "$LOAD_PID"
  local lrc=$?
  set -e
  LOAD_PID=
  [ "$lrc" = 0 ] || fail "the load exited $lrc: $(tail -5 "$WORK/load.err")"
  local summary
  summary=$(grep '^summary ' "$WORK/load.out") || fail "the load printed no summary: $(cat "$WORK/load.out")"
  echo "$summary"
  grep 'no write acknowledged' "$WORK/load.err" || true
  local ops writes_ok writes_failed writes_unknown reads_ok reads_failed max_write_ms max_gap_ms unique_acked seconds
  eval "$(echo "${summary#summary }" | tr ' ' '\n' | grep -E '^[a-z_]+=[0-9.]+$')"
  [ "$writes_failed" = 0 ] && [ "$writes_unknown" = 0 ] ||
    fail "writes failed during the upgrade: $writes_failed failed, $writes_unknown unknown of $((writes_ok + writes_failed + writes_unknown)) (first errors: $(head -3 "$WORK/load.err"))"
  [ "$reads_failed" = 0 ] || fail "$reads_failed reads failed during the upgrade (first: $(head -3 "$WORK/load.err"))"
  [ "$writes_ok" -gt 0 ] && [ "$reads_ok" -gt 0 ] && [ "$unique_acked" -gt 0 ] || fail "the load did nothing: $summary"
  # A handover pauses writes for about a round trip; an election timeout or
  # a member that takes writes down with it is far longer. The bound leaves
  # room for a shared, slow machine.
  local max_pause=${UPGRADE_MAX_PAUSE_MS:-5000}
  [ "$max_gap_ms" -le "$max_pause" ] ||
    fail "writes paused for $max_gap_ms ms during the upgrade (bound $max_pause ms): $(grep 'no write acknowledged' "$WORK/load.err" | head -3)"
  pass "no write or read failed: $writes_ok writes, $reads_ok reads, 0 failed, 0 unknown; longest write $max_write_ms ms, longest pause between acknowledged writes $max_gap_ms ms"

  "$FAULTS" --check "$WORK/history.jsonl" >"$WORK/check.out" 2>&1 || fail "history: $(cat "$WORK/check.out")"
  pass "the history is linearizable ($(sed 's/.*: \([0-9]* keys\)/\1/' "$WORK/check.out"))"

  # Every acknowledged unique key, with its value, on the upgraded cluster.
  "$DDKV" list u/ --endpoints "$EP" >"$WORK/u.list" 2>"$WORK/stderr" || fail "list u/: $(cat "$WORK/stderr")"
  local missing
  missing=$(python3 - "$WORK/acked.txt" "$WORK/u.list" <<'PY'
import sys
acked = [l.rstrip("\n") for l in open(sys.argv[1]) if l.strip()]
have = dict(l.rstrip("\n").split("\t", 1) for l in open(sys.argv[2]) if l.strip())
bad = [k for k in acked if have.get(k) != k]
print(len(bad), " ".join(bad[:5]))
PY
)
  [ "${missing%% *}" = 0 ] || fail "acknowledged unique keys missing or wrong after the upgrade: $missing"
  pass "all $unique_acked acknowledged unique keys are there ($(wc -l <"$WORK/u.list") under u/)"

  check_members_equal
  pass "the three members hold the same data ($DATA_KEYS keys, each read from itself)"

  if [ "$FINAL_SECTION" = on ]; then
    versioning_after
  else
    echo "# final section (cluster version, gated feature, downgrade) not run: UPGRADE_FINAL_SECTION=$FINAL_SECTION"
  fi

  echo "figures: failed writes $writes_failed (unknown $writes_unknown), ops $ops in ${seconds} s, longest write pause $max_gap_ms ms (longest write $max_write_ms ms); per member: $per; rolling $((T_ROLL / 1000)) s, test total $((($(ms) - T_START) / 1000)) s"
  echo "$PASSED passed, 0 failed"
}

# ============================================================================
# The versioning (src/core/proto/version.h, README Upgrading):
#   - ddkv status -o json: per member "version" ("0.1.0" for v0.1.0 members,
#     the new build's otherwise) and "cluster_version";
#   - cluster_version is 0.1.0 while any member runs v0.1.0, 0.2.0 once all
#     three run the new build;
#   - `ddkv delete --prefix P` is refused (exit 2, "cluster version") while the
#     cluster version is 0.1.0 and works once it is 0.2.0;
#   - the data dir gets format 4 once the cluster version reaches 0.2.0; the
#     old binary refuses it (non-zero exit, "format version" or "upgrade
#     ddkv"), and the data dir still works with the new build afterwards.
# ============================================================================
FINAL_SECTION=${UPGRADE_FINAL_SECTION:-on}

# ddkv status -o json, one object per member: FIELD of member NAME.
member_field() {
  "$DDKV" status --endpoints "$(endpoints)" -o json 2>/dev/null | python3 -c '
import json, sys
for line in sys.stdin:
    if line.strip():
        m = json.loads(line)
        if m.get("name") == sys.argv[1]:
            print(m.get(sys.argv[2], ""))' "$1" "$2"
}

# Before the upgrade: every member says version 0.1.0, cluster version 0.1.0.
versioning_before() {
  local i
  for ((i = 1; i <= N; i++)); do
    [ "$(member_field "n$i" version)" = 0.1.0 ] || fail "n$i (old) version: '$(member_field "n$i" version)', want 0.1.0"
  done
  pass "the old members report version 0.1.0"
}

# After member NAME (the K-th, from 0) runs the new build: the cluster
# version stays 0.1.0 and the gated feature is refused until all three do.
versioning_mixed() {
  local name=$1 k=$2 i cv
  [ "$k" -lt $((N - 1)) ] || return 0
  [ "$(member_field "$name" version)" != 0.1.0 ] || fail "$name runs the new build but reports version 0.1.0"
  for ((i = 1; i <= N; i++)); do
    cv=$(member_field "n$i" cluster_version)
    [ -z "$cv" ] || [ "$cv" = 0.1.0 ] || fail "n$i: cluster_version $cv with an old member left, want 0.1.0"
  done
  expect_exit 2 "$DDKV" delete --prefix gated/ --endpoints "$(client_addr "${name#n}")"
  echo "$ERR$OUT" | grep -qi "cluster version" || fail "delete --prefix refused without naming the cluster version: $ERR"
  pass "mixed cluster ($((k + 1)) of $N new): cluster version 0.1.0, delete --prefix refused ($ERR)"
  [ "$k" = $((N - 2)) ] || return 0
  # A leader of the new build with an old member left: it must neither
  # raise the cluster version nor propose the new entry kind (the old
  # member would stop at it), and says so itself.
  expect_exit 0 "$DDKV" members transfer "$name" --endpoints "$(endpoints)"
  local t
  for ((t = 0; t < 100; t++)); do [ "$(leader)" = "$name" ] && break; sleep 0.1; done
  [ "$(leader)" = "$name" ] || fail "leadership did not move to $name"
  expect_exit 2 "$DDKV" delete --prefix gated/ --endpoints "$(client_addr "${name#n}")"
  echo "$ERR" | grep -q "this cluster runs at 0.1.0" ||
    fail "the new leader did not refuse delete --prefix itself: $ERR"
  sleep 2 # time enough for a wrong raise (the leader looks every tick)
  for ((i = 1; i <= N; i++)); do
    cv=$(member_field "n$i" cluster_version)
    [ -z "$cv" ] || [ "$cv" = 0.1.0 ] || fail "n$i: cluster_version $cv under a new leader with an old member, want 0.1.0"
  done
  grep -q "cluster version stays 0.1.0: member n[0-9] runs 0.1.0" "$WORK/$name.log" ||
    fail "the new leader does not say what holds the cluster version: $(grep -i version "$WORK/$name.log" | tail -3)"
  pass "a new-build leader ($name) with an old member keeps cluster version 0.1.0 and refuses delete --prefix itself ($ERR)"
}

versioning_after() {
  local EP i t cv ok
  EP=$(endpoints)
  for ((t = 0; t < 100; t++)); do
    ok=1
    for ((i = 1; i <= N; i++)); do
      cv=$(member_field "n$i" cluster_version)
      [ "$cv" = 0.2.0 ] || ok=0
    done
    [ $ok = 1 ] && break
    sleep 0.2
  done
  [ $ok = 1 ] || fail "cluster_version did not reach 0.2.0 on every member within 20 s: $("$DDKV" status --endpoints "$EP" -o json)"
  pass "cluster_version flipped to 0.2.0 with all three on the new build"

  "$DDKV" write gated/a 1 --endpoints "$EP" >/dev/null && "$DDKV" write gated/b 2 --endpoints "$EP" >/dev/null ||
    fail "write gated/*"
  expect_exit 0 "$DDKV" delete --prefix gated/ --endpoints "$EP"
  [ -z "$("$DDKV" list gated/ --endpoints "$EP")" ] || fail "delete --prefix gated/ left keys"
  pass "delete --prefix works at cluster version 0.2.0"

  # Downgrade: a member's data dir, now format 4, refused by the old binary.
  check_members_equal
  cp "$WORK/data.n1" "$WORK/before-downgrade"
  local name=n1 L
  L=$(leader) || true
  [ "$L" = n1 ] && name=n2
  stop_member "$name" TERM
  [ "$STOP_RC" = 0 ] || fail "$name exited $STOP_RC on SIGTERM"
  local log=$WORK/$name.downgrade.log rc dpid t
  "$OLD_BIN" serve --name "$name" --data-dir "$WORK/$name" --client-addr "$(client_addr "${name#n}")" \
    --peer-addr "$(peer_addr "${name#n}")" --http-addr "$(http_addr "${name#n}")" --cluster "$(spec)" \
    --cluster-token "$TOKEN" >"$log" 2>&1 </dev/null &
  dpid=$!
  PIDS+=("$dpid")
  for ((t = 0; t < 200; t++)); do kill -0 "$dpid" 2>/dev/null || break; sleep 0.1; done
  kill -0 "$dpid" 2>/dev/null && fail "the old binary runs on a migrated data dir (20 s): $(tail -5 "$log")"
  set +e
  wait "$dpid" 2>/dev/null
  rc=$?
  set -e
  [ "$rc" != 0 ] || fail "the old binary on a migrated data dir exited 0, want a refusal: $(tail -5 "$log")"
  grep -Eqi "format version|upgrade ddkv" "$log" || fail "the old binary's refusal does not say why: $(tail -5 "$log")"
  pass "downgrade refused: $OLD_VERSION on $name's data dir exits $rc ($(grep -Ei 'format version|upgrade ddkv' "$log" | head -1))"
  start_member "${name#n}" "$DDKV"
  wait_healthy "$name" 60
  check_members_equal
  cmp -s "$WORK/before-downgrade" "$WORK/data.n1" || fail "data changed across the refused downgrade"
  pass "$name's data dir works with the new build after the refused downgrade (data equal)"
  versioning_old_joiner
}

# An old release added to the upgraded cluster (a fresh data dir, so its
# format does not stop it): its hello is refused, and nothing it cannot read
# is sent to it (it would stop at the CLUSTER_VERSION entry: 0.1.0 aborts on
# an entry it cannot decode). It stays up, a learner that never catches up,
# and the cluster serves on until it is removed.
versioning_old_joiner() {
  local EP L log=$WORK/n4.log pid t
  EP=$(endpoints)
  for off in 4 104 204; do
    if (exec 3<>"/dev/tcp/127.0.0.1/$((DDKV_PORT_BASE + off))") 2>/dev/null; then
      fail "port $((DDKV_PORT_BASE + off)) for n4 is taken"
    fi
  done
  "$OLD_BIN" serve --name n4 --data-dir "$WORK/n4" --client-addr "$(client_addr 4)" --peer-addr "$(peer_addr 4)" \
    --http-addr "$(http_addr 4)" --join --cluster-token "$TOKEN" >"$log" 2>&1 </dev/null &
  pid=$!
  PIDS+=("$pid")
  MPID[n4]=$pid
  for ((t = 0; t < 300; t++)); do grep -q 'client listening on' "$log" && break; sleep 0.1; done
  expect_exit 0 "$DDKV" members add n4 "$(peer_addr 4)" --endpoints "$EP"
  L=$(leader)
  for ((t = 0; t < 100; t++)); do
    grep -q "refusing member n4 (node [0-9a-f]*): it runs ddkv 0.1.0, older than the cluster version 0.2.0" \
      "$WORK/$L.log" && break
    sleep 0.1
  done
  grep -q "refusing member n4 (node [0-9a-f]*): it runs ddkv 0.1.0, older than the cluster version 0.2.0" "$WORK/$L.log" ||
    fail "the leader $L did not refuse the 0.1.0 member's hello: $(grep n4 "$WORK/$L.log" | tail -3)"
  "$DDKV" write after/old-joiner 1 --endpoints "$EP" >/dev/null || fail "a write with n4 (0.1.0) in the configuration"
  sleep 3
  kill -0 "$pid" 2>/dev/null || fail "n4 (0.1.0) stopped: it was sent what it cannot read: $(tail -3 "$log")"
  ! grep -q "is not a valid command" "$log" || fail "n4 (0.1.0) met an entry it cannot decode: $(tail -3 "$log")"
  [ -z "$(status_json n4 | python3 -c 'import json,sys; print(json.load(sys.stdin).get("cluster_version",""))' 2>/dev/null)" ] ||
    fail "n4 reports a cluster version"
  expect_exit 0 "$DDKV" members remove n4 --endpoints "$EP"
  stop_member n4 TERM
  pass "a 0.1.0 member added after the upgrade is refused by the leader ($L), sent nothing it cannot read (it ran on; hold-backs logged: $(grep -c 'holding back' "$WORK/$L.log"), none needed when its answers never reach the leader), and removed; writes went on"
}

main "$@"
