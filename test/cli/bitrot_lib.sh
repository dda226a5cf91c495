# Shared by test_bitrot_*.sh (sourced; not a test itself): a three-member
# cluster n1..n3 on 127.0.0.1 whose members a test stops, damages and brings
# back by the README's "Disk corruption" sequence.
#
#   bitrot_cluster [serve flags...]   start n1..n3 (kernel-picked client ports,
#                                     peer ports from free_port_block); sets EPS
#   bitrot_pick_follower              F = a member that does not lead
#   bitrot_write PREFIX FROM TO       acknowledged writes PREFIX/i, recorded in $ACKED
#   bitrot_stop NAME                  SIGTERM, wait (a clean stop)
#   bitrot_crash NAME                 kill -9, wait
#   bitrot_start NAME [flags...]      start NAME again on its data dir
#   bitrot_flush NAME                 stop it, start it and stop it again: RocksDB
#                                     replays its WAL into SST files at open
#   bitrot_flip FILE OFFSET [N]       invert N (8) bytes of FILE from OFFSET
#   bitrot_expect_refused NAME FILE   a start of NAME exits 4 and its log names FILE
#   bitrot_serving                    the two others take writes and serve every
#                                     acknowledged one
#   bitrot_rejoin NAME                the README sequence under a write load: remove
#                                     NAME, wipe its dir, start it --join, add it;
#                                     it is caught up by a snapshot and holds every
#                                     acknowledged write
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

ACKED=$WORK/acked # key<TAB>value of every acknowledged write
: >"$ACKED"
BITROT_FLAGS=()

bitrot_val() { echo "v-$1-$(printf '%0200d' 7)"; }

bitrot_start() {
  local name=$1; shift
  local i=${name#n}
  start_node "$name" "$WORK/$name" --cluster "$SPEC" --peer-addr "127.0.0.1:$((BASE + 100 + i))" \
    "${BITROT_FLAGS[@]}" "$@"
}

bitrot_cluster() {
  BITROT_FLAGS=("$@")
  free_port_block
  BASE=$DDKV_PORT_BASE
  SPEC="n1=127.0.0.1:$((BASE + 101)),n2=127.0.0.1:$((BASE + 102)),n3=127.0.0.1:$((BASE + 103))"
  local i
  for i in 1 2 3; do bitrot_start "n$i"; done
  bitrot_eps
  expect_exit 0 "$DDKV" --endpoints "$EPS" --timeout-ms 15000 write warm up
}

# EPS: the client endpoints of the members running now.
bitrot_eps() {
  local i p e=""
  for i in 1 2 3; do
    p=PORT_n$i
    [ -n "${!p:-}" ] && e+="${e:+,}127.0.0.1:${!p}"
  done
  EPS=$e
}

bitrot_pick_follower() {
  local leader
  leader=$("$DDKV" --endpoints "$EPS" ping | sed -n 's/.*leader \(n[0-9]\).*/\1/p')
  [ -n "$leader" ] || fail "no leader in ping"
  F=n1; [ "$leader" = n1 ] && F=n2
  return 0
}

bitrot_write() {
  local prefix=$1 from=$2 to=$3 i v
  for ((i = from; i <= to; i++)); do
    v=$(bitrot_val "$i")
    expect_exit 0 "$DDKV" --endpoints "$EPS" --timeout-ms 15000 write "$prefix/$i" "$v"
    printf '%s\t%s\n' "$prefix/$i" "$v" >>"$ACKED"
  done
}

bitrot_stop() {
  local p=PID_$1
  kill -TERM "${!p}"; wait "${!p}" 2>/dev/null || true
  printf -v "PORT_$1" '%s' ""
  bitrot_eps
}

# bitrot_crash NAME: kill -9 (no clean stop).
bitrot_crash() {
  local p=PID_$1
  kill -9 "${!p}"; wait "${!p}" 2>/dev/null || true
  printf -v "PORT_$1" '%s' ""
  bitrot_eps
}

bitrot_flush() {
  bitrot_stop "$1"
  bitrot_start "$1"
  bitrot_stop "$1"
  ls "$WORK/$1"/*.sst >/dev/null 2>&1 || fail "$1 has no SST file after a restart: $(ls "$WORK/$1")"
}

bitrot_flip() {
  python3 - "$1" "$2" "${3:-8}" <<'PY'
import sys
path, off, n = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
with open(path, "r+b") as f:
    f.seek(off)
    b = f.read(n)
    f.seek(off)
    f.write(bytes(x ^ 0xFF for x in b))
PY
}

# bitrot_offset FILE BYTES [last]: the offset just past the first (or last)
# occurrence of BYTES in FILE.
bitrot_offset() {
  python3 - "$1" "$2" "${3:-first}" <<'PY'
import sys
data = open(sys.argv[1], "rb").read()
needle = sys.argv[2].encode()
at = data.rfind(needle) if sys.argv[3] == "last" else data.find(needle)
if at < 0:
    sys.exit(1)
print(at + len(needle))
PY
}

bitrot_expect_refused() {
  local name=$1 file=$2 i=${1#n} rc=0
  local log="$WORK/$name.refused.log"
  timeout 60 "$DDKV" serve --name "$name" --data-dir "$WORK/$name" --client-addr 127.0.0.1:0 \
    --cluster "$SPEC" --peer-addr "127.0.0.1:$((BASE + 100 + i))" "${BITROT_FLAGS[@]}" 2>"$log" || rc=$?
  [ "$rc" -eq 4 ] || fail "$name started on its damaged data dir: exit $rc, want 4 (log: $(tail -3 "$log"))"
  grep -q "ERROR.*$file" "$log" || fail "$name's refusal does not name $file: $(cat "$log")"
  grep -q "members remove $name" "$log" || fail "$name's refusal does not say how to bring it back: $(cat "$log")"
  REFUSAL=$(grep "ERROR.*$file" "$log" | head -1 | sed 's/^[^ ]* ERROR [^ ]* //' | cut -c1-240)
}

# Every acknowledged write, read from the endpoints given ($2: consistency).
bitrot_check_all() {
  local eps=$1 cons=$2 what=$3 k v n=0
  while IFS=$'\t' read -r k v; do
    expect_exit 0 "$DDKV" --endpoints "$eps" --timeout-ms 15000 read --consistency "$cons" "$k"
    [ "$OUT" = "$v" ] || fail "$k reads '${OUT:0:40}' on $what"
    n=$((n + 1))
  done <"$ACKED"
  CHECKED=$n
}

bitrot_serving() {
  bitrot_write during 1 20
  bitrot_check_all "$EPS" linearizable "the two healthy members"
}

# The writer a rejoin runs beside: acknowledged writes load/i until $WORK/stop.
bitrot_load() {
  local i=1 v
  while [ ! -e "$WORK/stop" ] && [ $i -le 400 ]; do
    v=$(bitrot_val "$i")
    if "$DDKV" --endpoints "$EPS" --timeout-ms 10000 write "load/$i" "$v" >/dev/null 2>&1; then
      printf '%s\t%s\n' "load/$i" "$v" >>"$WORK/load.acked"
    fi
    i=$((i + 1))
  done
}

bitrot_rejoin() {
  local name=$1 i=${1#n} m round
  # Both others' logs compacted past their start, so that a new member can
  # only be caught up by a snapshot (a member compacts at its second image).
  for round in 1 2 3 4 5 6; do
    local all=1
    for m in n1 n2 n3; do
      [ "$m" = "$name" ] && continue
      grep -q "log compacted up to" "$WORK/$m.log" || all=0
    done
    [ $all = 1 ] && break
    [ "$round" -lt 6 ] || fail "the others did not compact their logs: $(grep -h snapshot "$WORK"/n*.log | tail -4)"
    bitrot_fill 120
    sleep 0.5
  done
  : >"$WORK/load.acked"
  rm -f "$WORK/stop"
  bitrot_load &
  local lpid=$!
  PIDS+=("$lpid")
  # The README's sequence, as an operator types it.
  expect_exit 0 "$DDKV" --endpoints "$EPS" --timeout-ms 15000 members remove "$name"
  mv "$WORK/$name" "$WORK/$name.damaged"
  bitrot_start "$name" --join
  expect_exit 0 "$DDKV" --endpoints "$EPS" --timeout-ms 15000 members add "$name" "127.0.0.1:$((BASE + 100 + i))"
  local port=PORT_$name
  wait_log "$name" "installed snapshot at index" 25
  sleep 1
  touch "$WORK/stop"
  wait "$lpid" 2>/dev/null || true
  local loaded
  loaded=$(wc -l <"$WORK/load.acked")
  [ "$loaded" -ge 5 ] || fail "the load acknowledged only $loaded writes during the rejoin"
  cat "$WORK/load.acked" >>"$ACKED"
  # Caught up: the last acknowledged write is on it, then all of them are.
  local last lastv ok=0
  last=$(tail -1 "$ACKED" | cut -f1)
  lastv=$(tail -1 "$ACKED" | cut -f2)
  for _ in $(seq 200); do
    if [ "$("$DDKV" --endpoints "127.0.0.1:${!port}" read --consistency stale "$last" 2>/dev/null || true)" = "$lastv" ]; then
      ok=1; break
    fi
    sleep 0.1
  done
  [ $ok = 1 ] || fail "$name did not catch up to $last within 20 s of rejoining"
  bitrot_check_all "127.0.0.1:${!port}" stale "the rejoined $name"
  bitrot_eps
  REJOIN_LOADED=$loaded
}

# bitrot_fill N: N more log entries quickly (bench writes to its own keys),
# so that the log is compacted past its start and a new member needs a
# snapshot (--snapshot-entries 100 keeps at least 100 entries).
bitrot_fill() {
  expect_exit 0 "$DDKV" --endpoints "$EPS" --timeout-ms 15000 bench --workload write --clients 8 \
    --ops "$1" --warmup-s 0 --keys 100 --key-size 12 --value-size 64
}
