#!/usr/bin/env bash
# How ddkv's costs grow with the work, next to etcd in the same run, point by
# point (issue 19's scale curves). Writes bench/results/scale-DATE.md, .json
# and .png.
#
#   bench/scale.sh [--curves "size conns"] [--sizes "10000 100000 1000000"]
#                  [--conns "0 1000 10000"] [--duration-s S] [--quick] [--only ddkv|etcd]
#
#   --curves LIST    which curves (default "size conns"):
#                    size   a 3-member cluster grown to each of --sizes keys of 256 B:
#                           load rate, 64-client write and linearizable-read throughput,
#                           members' RSS, disk bytes per live byte, and the time for a
#                           follower to restart (open, replay, catch up) at each size
#                    conns  --conns idle client connections held open (spread over the
#                           members) on a fresh cluster: the members' RSS with them, then
#                           while 64 clients write: throughput, p99, RSS
#   --sizes LIST     key counts of the size curve, growing (default "10000 100000
#                    1000000"; add 10000000 for the 10^7 point, about an hour more)
#   --conns LIST     idle connections of the conns curve (default "0 1000 10000")
#   --duration-s S   measured seconds per throughput run (default 10)
#   --quick          smoke run of the script itself: sizes "1000 5000", conns "0 200",
#                    2 s runs; writes scale-DATE-quick.*
#   --only SYSTEM    run ddkv or etcd alone
#
# The same machine, one system at a time, fresh clusters for each curve, under
# var/scale/STAMP/ (raw outputs, logs); every server is stopped by PID on exit,
# failure included. Ports as bench/compare.sh's (bench/lib.sh). Not here yet
# (issue 19): the watch fan-out, the silent-leader failover and the one-hour
# curves, and the snapshot catch-up rate of a new member.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
BT=(python3 "$ROOT/bench/benchtool.py")
ST=(python3 "$ROOT/bench/scaletool.py")

usage() { sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; }
die() { echo "scale.sh: $*" >&2; exit 1; }
say() { echo "scale: $*" >&2; }

curves="size conns" sizes="" conns="" duration="" only="" quick=0
while (($#)); do
    case $1 in
    --curves) curves=${2:?}; shift 2 ;;
    --sizes) sizes=${2:?}; shift 2 ;;
    --conns) conns=${2:?}; shift 2 ;;
    --duration-s) duration=${2:?}; shift 2 ;;
    --quick) quick=1; shift ;;
    --only) only=${2:?}; shift 2 ;;
    -h | --help) usage; exit 0 ;;
    *) usage >&2; exit 2 ;;
    esac
done
if ((quick)); then
    sizes=${sizes:-"1000 5000"} conns=${conns:-"0 200"} duration=${duration:-2} warmup=0.5 dd_count=300
else
    sizes=${sizes:-"10000 100000 1000000"} conns=${conns:-"0 1000 10000"} duration=${duration:-10} warmup=1 dd_count=2000
fi
[[ $duration =~ ^[0-9]+([.][0-9]+)?$ ]] || die "--duration-s wants seconds, not '$duration'"
prev=0
for s in $sizes; do
    [[ $s =~ ^[0-9]+$ ]] && ((s > prev && s <= 100000000)) || die "--sizes wants growing key counts up to 10^8, not '$s'"
    prev=$s
done
for k in $conns; do
    [[ $k =~ ^[0-9]+$ ]] && ((k <= 30000)) || die "--conns wants counts up to 30000, not '$k'"
done
for c in $curves; do
    case $c in size | conns) ;; *) die "unknown curve '$c' (size, conns)" ;; esac
done
case $only in "" | ddkv | etcd) ;; *) die "--only takes ddkv or etcd" ;; esac
want() { [[ -z $only || $only == "$1" ]]; }
curve() { [[ " $curves " == *" $1 "* ]]; }

# --- what it needs (bench/lib.sh) -----------------------------------------------
source "$ROOT/bench/lib.sh"
bench_needs # sets tool (etcd's load tool, when etcd runs) and DDKV
# Room for the idle connections: the nodes, etcd and the holder inherit it.
if curve conns; then
    ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)" || true
fi

bench_run_dir scale # sets stamp, RUN (var/scale/STAMP), OUT, META, RESULTS
HOLDER=""
trap 'holder_stop; cleanup' EXIT

holder_stop() {
    if [[ -n $HOLDER ]] && kill -0 "$HOLDER" 2>/dev/null; then
        kill -TERM "$HOLDER" 2>/dev/null
        wait "$HOLDER" 2>/dev/null || true
    fi
    HOLDER=""
}

# row CURVE SYSTEM POINT key=value...: one line of results.jsonl
row() {
    "${ST[@]}" row "$@" >>"$RESULTS"
    tail -1 "$RESULTS" | "${ST[@]}" show >&2
}

ddkv_pids() { cat "$DDKV_CLUSTER_DIR"/n[0-9].pid 2>/dev/null | tr '\n' ' '; }
etcd_pids() { echo "${ETCD_PIDS[*]}"; }

# ddkv_bench OUT ARGS...: a ddkv bench run against the cluster, JSON to OUT
ddkv_bench() {
    local out=$1
    shift
    "$DDKV" bench --endpoints "$DDKV_EPS" --key-size 16 --value-size 256 -o json "$@" >"$out" 2>"$out.err" ||
        say "ddkv bench exited $? (see $out.err)"
}

# etcd_bench OUT SECONDS ARGS...: an etcd benchmark run of about SECONDS, its
# --total calibrated on a short run first (as bench/compare.sh does).
etcd_bench() {
    local out=$1 secs=$2 rate total
    shift 2
    local base=("$tool" --endpoints "$ETCD_EPS" --conns 64 --clients 64 --precise)
    "${base[@]}" "$@" --total 2000 >"$out.cal" 2>"$out.cal.err" || true
    read -r rate _ < <("${BT[@]}" etcd-rate "$out.cal" 2>/dev/null || echo "0 0")
    total=$(awk -v r="$rate" -v d="$secs" 'BEGIN { t = r * d; if (t < 640) t = 640; printf "%d", t }')
    "${base[@]}" "$@" --total "$total" >"$out" 2>"$out.err" || say "etcd benchmark exited $? (see $out.err)"
}

READ_KEY=bench/0000000001
VALUE=$(head -c 256 /dev/zero | tr '\0' v)

# --- the size curve ---------------------------------------------------------------
size_ddkv() {
    ddkv_start "ddkv-size" 3
    lead_first ddkv
    local n t0 t1 f
    for n in $sizes; do
        f=$RUN/raw/ddkv-size-$n
        # Load: every key of 0..n-1 written once (the keys below the last
        # point again: a tenth of the work), 64 clients.
        t0=$(date +%s.%N)
        ddkv_bench "$f-load.json" --workload read --keys "$n" --clients 64 --ops 1 --warmup-s 0
        t1=$(date +%s.%N)
        local disk rss restart load_s
        load_s=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.3f", b - a }')
        disk=$("${ST[@]}" du "$DDKV_CLUSTER_DIR"/n1 "$DDKV_CLUSTER_DIR"/n2 "$DDKV_CLUSTER_DIR"/n3)
        rss=$("${ST[@]}" rss $(ddkv_pids))
        ddkv_bench "$f-write.json" --workload write --keys "$n" --clients 64 --duration-s "$duration" --warmup-s "$warmup"
        ddkv_bench "$f-read.json" --workload read --prefill off --consistency linearizable --keys "$n" --clients 64 \
            --duration-s "$duration" --warmup-s "$warmup"
        # A follower's restart: SIGTERM, start, until every member is healthy
        # and has applied what the leader had committed.
        t0=$(date +%s.%N)
        deploy/cluster.sh restart n3 >/dev/null
        "${BT[@]}" wait-ddkv-healthy "$DDKV" "$DDKV_EPS" 600 || say "ddkv: n3 not healthy after its restart"
        restart=$(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN { printf "%.3f", b - a }')
        row size ddkv "$n" "load_s=$load_s" \
            "write=$f-write.json" "read=$f-read.json" "disk_bytes=$disk" "rss_kb=$rss" "restart_s=$restart" \
            "live_bytes=$((n * (16 + 256)))"
    done
    ddkv_finish
}

size_etcd() {
    etcd_start "etcd-size" 3
    lead_first etcd
    etcdctl --endpoints "$ETCD_EPS" put "$READ_KEY" "$VALUE" >/dev/null
    local n t0 t1 f
    for n in $sizes; do
        f=$RUN/raw/etcd-size-$n
        # Load: the keys not written yet (etcd's --sequential-keys numbers from 0,
        # so the total is the new point's count; the old keys are overwritten).
        t0=$(date +%s.%N)
        "$tool" --endpoints "$ETCD_EPS" --conns 64 --clients 64 put --key-size 16 --val-size 256 \
            --sequential-keys --key-space-size "$n" --total "$n" >"$f-load.txt" 2>"$f-load.err" ||
            say "etcd load exited $? (see $f-load.err)"
        t1=$(date +%s.%N)
        local disk rss restart load_s
        load_s=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.3f", b - a }')
        # etcd keeps every revision until compacted: compact, so the disk figure is
        # for the live keys (as ddkv's, whose log is compacted by its snapshots).
        etcd_compact
        disk=$("${ST[@]}" du "$ETCD_DIR"/e1 "$ETCD_DIR"/e2 "$ETCD_DIR"/e3)
        rss=$("${ST[@]}" rss $(etcd_pids))
        etcd_bench "$f-write.txt" "$duration" put --key-size 16 --val-size 256 --key-space-size "$n"
        etcd_bench "$f-read.txt" "$duration" range "$READ_KEY" --consistency l
        etcd_compact
        t0=$(date +%s.%N)
        etcd_member_stop 3
        etcd_member_start 3 existing
        "${BT[@]}" wait-etcd-healthy etcdctl "$ETCD_EPS" 600 || say "etcd: e3 not healthy after its restart"
        restart=$(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN { printf "%.3f", b - a }')
        row size etcd "$n" "load_s=$load_s" \
            "write=$f-write.txt" "read=$f-read.txt" "disk_bytes=$disk" "rss_kb=$rss" "restart_s=$restart" \
            "live_bytes=$((n * (16 + 256)))"
    done
    etcd_finish "etcd-size"
}

etcd_compact() {
    local rev
    rev=$("${BT[@]}" etcd-revision etcdctl "$ETCD_EPS") || return 0
    etcdctl --endpoints "$ETCD_EPS" compact "$rev" --physical >/dev/null 2>&1 || true
    etcdctl --endpoints "$ETCD_EPS" defrag >/dev/null 2>&1 || true
}

# --- the connections curve ---------------------------------------------------------
# conns_point SYSTEM K: on a fresh cluster, K idle connections held (the
# members' RSS with them), then 64 clients write (and the RSS after).
conns_point() {
    local sys=$1 k=$2 f=$RUN/raw/$1-conns-$2 eps pids rss_idle rss held
    if [[ $sys == ddkv ]]; then
        # Idle connections are the point: no idle timeout, and room for them
        # all from one address (the flags' environment variables, which
        # deploy/cluster.sh hands on).
        DDKV_IDLE_TIMEOUT_MS=0 DDKV_MAX_CONNS_PER_ADDR=30000 DDKV_MAX_CONNECTIONS=31000 ddkv_start "ddkv-conns-$k" 3
        eps=$DDKV_EPS
        pids=$(ddkv_pids)
    else
        etcd_start "etcd-conns-$k" 3
        eps=$ETCD_EPS
        pids=$(etcd_pids)
    fi
    lead_first "$sys"
    if ((k > 0)); then
        "${ST[@]}" hold "$sys" "$eps" "$k" "$f.held" 2>"$f.hold.err" &
        HOLDER=$!
        "${ST[@]}" wait-held "$f.held" 120 || { cat "$f.hold.err" >&2; die "$sys: $k connections not held"; }
    fi
    sleep 1
    rss_idle=$("${ST[@]}" rss $pids)
    if [[ $sys == ddkv ]]; then
        ddkv_bench "$f-write.json" --workload write --keys 10000 --clients 64 --duration-s "$duration" --warmup-s "$warmup"
    else
        etcd_bench "$f-write.txt" "$duration" put --key-size 16 --val-size 256 --key-space-size 10000
    fi
    rss=$("${ST[@]}" rss $pids)
    if ((k > 0)) && ! kill -0 "$HOLDER" 2>/dev/null; then
        say "$sys: the holder of $k connections died (see $f.hold.err)"
    fi
    holder_stop # the holder writes the count still open as it stops
    held=$(cat "$f.held" 2>/dev/null || echo 0)
    if [[ $sys == ddkv ]]; then
        row conns ddkv "$k" "write=$f-write.json" "rss_idle_kb=$rss_idle" "rss_kb=$rss" "held=$held"
        ddkv_finish
    else
        row conns etcd "$k" "write=$f-write.txt" "rss_idle_kb=$rss_idle" "rss_kb=$rss" "held=$held"
        etcd_finish "etcd-conns-$k"
    fi
}

# --- the run -----------------------------------------------------------------------
load=$(cut -d' ' -f1-3 /proc/loadavg)
warning=""
((quick)) && warning="--quick smoke run: small points and 2 s runs, to test the script; the figures mean nothing."
if awk -v l="${load%% *}" -v n="$(nproc)" 'BEGIN { exit !(l > 0.5 * n) }'; then
    warning+="${warning:+ }Load average ${load%% *} on $(nproc) cores at the start: other processes were using the CPU, so these figures are contaminated."
fi
args="--curves \"$curves\" --sizes \"$sizes\" --conns \"$conns\" --duration-s $duration${only:+ --only $only}"
((quick)) && args="--quick $args"
"${BT[@]}" meta "$META" "date=$(date -u '+%Y-%m-%d %H:%M UTC')" "commit=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)" \
    "args=$args" "nproc=$(nproc)" "cpu=$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1)" \
    "mem=$(awk '/MemTotal/ { printf "%.1f GiB", $2 / 1048576 }' /proc/meminfo)" "kernel=$(uname -srm)" \
    "disk=$(df -h var | awk 'NR == 2 { print $1 ", " $2 " total, " $4 " free" }') ($(findmnt -n -o FSTYPE -T var 2>/dev/null || echo ?))" \
    "loadavg=$load" "duration_s=$duration" "run_dir=$RUN" "warning=$warning" "ceilings:=[]" \
    "quick:=$( ((quick)) && echo true || echo false)"
if want etcd; then
    "${BT[@]}" meta "$META" "etcd_version=$(etcd --version | sed -n 's/^etcd Version: //p') (Debian etcd-server $(dpkg-query -W -f='${Version}' etcd-server))"
fi
say "run in $RUN; load average $load"
ceiling start
if curve size; then
    if want ddkv; then size_ddkv; fi
    if want etcd; then size_etcd; fi
fi
if curve conns; then
    for k in $conns; do
        if want ddkv; then conns_point ddkv "$k"; fi
        if want etcd; then conns_point etcd "$k"; fi
    done
fi
ceiling end
"${ST[@]}" report "$RUN" "$OUT"
say "wrote $OUT.md, $OUT.json, $OUT.png (raw outputs in $RUN)"
