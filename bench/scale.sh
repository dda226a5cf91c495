#!/usr/bin/env bash
# How ddkv's costs grow with the work, next to etcd in the same run, point by
# point (issue 19's scale curves). Writes bench/results/scale-DATE.md, .json
# and .png.
#
#   bench/scale.sh [--curves "size conns watch catchup"] [--sizes "10000 100000 1000000"]
#                  [--conns "0 1000 10000"] [--watchers "1 100 1000 10000"]
#                  [--catchup-sizes "100000 1000000"]
#                  [--duration-s S] [--minutes M]
#                  [--quick] [--only ddkv|etcd]
#
#   --curves LIST    which curves (default "size conns watch catchup"; "time" runs an hour per
#                    system, so it is asked for by name):
#                    size   a 3-member cluster grown to each of --sizes keys of 256 B:
#                           load rate, 64-client write and linearizable-read throughput,
#                           members' RSS, disk bytes per live byte, and the time for a
#                           follower to restart (open, replay, catch up) at each size
#                    conns  --conns idle client connections held open (spread over the
#                           members) on a fresh cluster: the members' RSS with them, then
#                           while 64 clients write: throughput, p99, RSS
#                    watch  --watchers watches of one prefix (100 to a connection,
#                           spread over the members) while 16 clients write new
#                           keys of it at 1,000/s (32-byte values): events delivered
#                           per second, latency from write to event (ddkv) and from
#                           the write's acknowledgement to the event (both; what
#                           etcd's benchmark watch-latency measures: its writer
#                           waits for every watcher before the next put), the
#                           members' CPU
#                    catchup  at each of --catchup-sizes keys (256 B values), a member
#                           that lost its data catches up by snapshot (ddkv:
#                           deploy/cluster.sh rejoin: wiped, started to join, added
#                           again; etcd: member remove, wipe, member add, start):
#                           the time until every member has applied what the leader
#                           had committed, in MB/s of live data and of the member's
#                           data dir, against the disk's sequential write rate
#                           (dd, 1 MiB blocks, O_DIRECT) measured in the same run
#                    time   a fresh 3-member cluster written at half its peak rate
#                           (64 clients, open loop: latency counts from when each
#                           write was due) for --minutes minutes: throughput, p50,
#                           p99 and max per minute, members' RSS and disk, and the
#                           storage engine's flushes, compactions and write stalls
#                           (ddkv's /metrics; etcd's bbolt has neither)
#   --sizes LIST     key counts of the size curve, growing (default "10000 100000
#                    1000000"; add 10000000 for the 10^7 point, about an hour more)
#   --conns LIST     idle connections of the conns curve (default "0 1000 10000")
#   --watchers LIST  watches of the watch curve (default "1 100 1000 10000")
#   --catchup-sizes LIST  key counts of the catchup curve (default "100000 1000000")
#   --duration-s S   measured seconds per throughput run (default 10)
#   --minutes M      length of the time curve (default 60)
#   --quick          smoke run of the script itself: sizes "1000 5000", conns "0 200",
#                    2 s runs, watchers "1 50", 3 "minutes" of 5 s; writes
#                    scale-DATE-quick.*
#   --only SYSTEM    run ddkv or etcd alone
#
# The same machine, one system at a time, fresh clusters for each curve, under
# var/scale/STAMP/ (raw outputs, logs); every server is stopped by PID on exit,
# failure included. Ports as bench/compare.sh's (bench/lib.sh). Not here yet
# (issue 19): the 10^7 point and 64 KiB values (the silent-leader failover is
# bench/failover.sh --fault silent).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
BT=(python3 "$ROOT/bench/benchtool.py")
ST=(python3 "$ROOT/bench/scaletool.py")

usage() { sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; }
die() { echo "scale.sh: $*" >&2; exit 1; }
say() { echo "scale: $*" >&2; }

curves="size conns watch catchup" sizes="" conns="" duration="" only="" quick=0 minutes="" watchers="" csizes=""
while (($#)); do
    case $1 in
    --curves) curves=${2:?}; shift 2 ;;
    --sizes) sizes=${2:?}; shift 2 ;;
    --conns) conns=${2:?}; shift 2 ;;
    --watchers) watchers=${2:?}; shift 2 ;;
    --catchup-sizes) csizes=${2:?}; shift 2 ;;
    --duration-s) duration=${2:?}; shift 2 ;;
    --minutes) minutes=${2:?}; shift 2 ;;
    --quick) quick=1; shift ;;
    --only) only=${2:?}; shift 2 ;;
    -h | --help) usage; exit 0 ;;
    *) usage >&2; exit 2 ;;
    esac
done
if ((quick)); then
    sizes=${sizes:-"1000 5000"} conns=${conns:-"0 200"} duration=${duration:-2} warmup=0.5 dd_count=300
    minutes=${minutes:-3} minute_s=5 watchers=${watchers:-"1 50"} csizes=${csizes:-"2000 8000"}
else
    sizes=${sizes:-"10000 100000 1000000"} conns=${conns:-"0 1000 10000"} duration=${duration:-10} warmup=1 dd_count=2000
    minutes=${minutes:-60} minute_s=60 watchers=${watchers:-"1 100 1000 10000"}
    csizes=${csizes:-"100000 1000000"}
fi
[[ $minutes =~ ^[0-9]+$ ]] && ((minutes >= 1 && minutes <= 1440)) || die "--minutes wants 1..1440, not '$minutes'"
[[ $duration =~ ^[0-9]+([.][0-9]+)?$ ]] || die "--duration-s wants seconds, not '$duration'"
prev=0
for s in $sizes; do
    [[ $s =~ ^[0-9]+$ ]] && ((s > prev && s <= 100000000)) || die "--sizes wants growing key counts up to 10^8, not '$s'"
    prev=$s
done
prev=0
for s in $csizes; do
    [[ $s =~ ^[0-9]+$ ]] && ((s > prev && s <= 100000000)) || die "--catchup-sizes wants growing key counts up to 10^8, not '$s'"
    prev=$s
done
for w in $watchers; do
    [[ $w =~ ^[0-9]+$ ]] && ((w >= 1 && w <= 100000)) || die "--watchers wants counts from 1 to 100000, not '$w'"
done
for k in $conns; do
    [[ $k =~ ^[0-9]+$ ]] && ((k <= 30000)) || die "--conns wants counts up to 30000, not '$k'"
done
for c in $curves; do
    case $c in size | conns | watch | catchup | time) ;; *) die "unknown curve '$c' (size, conns, watch, catchup, time)" ;; esac
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
# Other curves than the default ones: their own report (the day's default one stays).
[[ $curves == "size conns watch catchup" ]] || OUT+=-${curves// /-}
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

# --- the watch curve ------------------------------------------------------------------
# One cluster per system; a point per --watchers count.
watch_ddkv() {
    ddkv_start "ddkv-watch" 3
    lead_first ddkv
    local w f c0 t0
    for w in $watchers; do
        f=$RUN/raw/ddkv-watch-$w
        c0=$("${ST[@]}" cpu $(ddkv_pids)) t0=$(date +%s.%N)
        ddkv_bench "$f.json" --workload watch --watchers "$w" --watches-per-conn 100 --rate 1000 --clients 16 \
            --value-size 32 --duration-s "$duration" --warmup-s "$warmup"
        row watch ddkv "$w" "watch=$f.json" "node_cpu_pct=$("${ST[@]}" cpu-pct "$c0" "$t0" $(ddkv_pids))"
    done
    ddkv_finish
}

watch_etcd() {
    etcd_start "etcd-watch" 3
    lead_first etcd
    local w f c0 t0
    for w in $watchers; do
        f=$RUN/raw/etcd-watch-$w
        c0=$("${ST[@]}" cpu $(etcd_pids)) t0=$(date +%s.%N)
        # Puts at up to 1,000/s, each waiting for every watcher's event: as
        # many as 1,000/s would put in --duration-s, fewer past 1,000 watchers
        # (at 10,000 its puts run about 13/s: 10,000 of them took 13 minutes).
        "$tool" --endpoints "$ETCD_EPS" --conns $(((w + 99) / 100)) --clients "$w" --precise watch-latency \
            --put-rate 1000 --total "$(awk -v d="$duration" -v w="$w" 'BEGIN { t = d * 1000; if (w > 1000) t = t * 1000 / w; printf "%d", t < 100 ? 100 : t }')" \
            --key-size 32 --val-size 32 >"$f.txt" 2>"$f.txt.err" || say "etcd watch-latency exited $? (see $f.txt.err)"
        row watch etcd "$w" "watch=$f.txt" "node_cpu_pct=$("${ST[@]}" cpu-pct "$c0" "$t0" $(etcd_pids))"
    done
    etcd_finish "etcd-watch"
}

# --- the catch-up curve ---------------------------------------------------------------
# seq_mib_s: the disk's sequential write rate, MiB/s (dd, 1 MiB blocks, O_DIRECT).
seq_mib_s() {
    local f=$RUN/dd.seq out
    out=$(LC_ALL=C dd if=/dev/zero of="$f" bs=1M count=256 oflag=direct conv=fdatasync 2>&1 | tail -1)
    rm -f "$f"
    awk -v l="$out" 'BEGIN { n = split(l, a, " "); for (i = 1; i < n; i++) if (a[i] == "bytes") b = a[i - 1];
        for (i = 1; i < n; i++) if (a[i] == "s,") s = a[i - 1]; if (s > 0) printf "%.1f", b / s / 1048576; else print 0 }'
}

catchup_ddkv() {
    ddkv_start "ddkv-catchup" 3
    lead_first ddkv
    local n f t0 secs seq
    for n in $csizes; do
        f=$RUN/raw/ddkv-catchup-$n
        # Every key of 0..n-1 written (the prefill of a read run of one op).
        ddkv_bench "$f-load.json" --workload read --keys "$n" --clients 64 --ops 1 --warmup-s 0
        # Each member has a snapshot of the loaded state to send: the same
        # pacing as in use (a log of half an image's bytes after the last).
        seq=$(seq_mib_s)
        t0=$(date +%s.%N)
        deploy/cluster.sh rejoin n3 >"$f.rejoin.log" 2>&1 || say "ddkv: rejoin n3 failed (see $f.rejoin.log)"
        "${BT[@]}" wait-ddkv-healthy "$DDKV" "$DDKV_EPS" 900 || say "ddkv: n3 did not catch up"
        secs=$(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN { printf "%.3f", b - a }')
        row catchup ddkv "$n" "catchup_s=$secs" "member_bytes=$("${ST[@]}" du "$DDKV_CLUSTER_DIR"/n3)" \
            "live_bytes=$((n * (16 + 256)))" "seq_mib_s=$seq"
    done
    ddkv_finish
}

catchup_etcd() {
    etcd_start "etcd-catchup" 3
    lead_first etcd
    local n f t0 secs seq id
    for n in $csizes; do
        f=$RUN/raw/etcd-catchup-$n
        "$tool" --endpoints "$ETCD_EPS" --conns 64 --clients 64 put --key-size 16 --val-size 256 \
            --sequential-keys --key-space-size "$n" --total "$n" >"$f-load.txt" 2>"$f-load.err" ||
            say "etcd load exited $? (see $f-load.err)"
        etcd_compact # the snapshot a new member gets is then of the live keys
        seq=$(seq_mib_s)
        t0=$(date +%s.%N)
        id=$(etcdctl --endpoints "$ETCD_EPS" member list | awk -F', ' '$3 == "e3" { print $1 }')
        etcd_member_stop 3
        etcdctl --endpoints "$ETCD_EPS" member remove "$id" >"$f.rejoin.log" 2>&1 || say "etcd: member remove e3 failed"
        rm -rf "$ETCD_DIR/e3"
        # Right after a removal etcd refuses an add ("unhealthy cluster") for a while.
        local t
        for ((t = 0; t < 100; t++)); do
            etcdctl --endpoints "$ETCD_EPS" member add e3 --peer-urls "http://127.0.0.1:$((ETCD_BASE + 13))" \
                >>"$f.rejoin.log" 2>&1 && break
            sleep 0.2
        done
        ((t < 100)) || die "etcd: member add e3 refused for 20 s (see $f.rejoin.log)"
        etcd_member_start 3 existing
        "${BT[@]}" wait-etcd-healthy etcdctl "$ETCD_EPS" 900 || say "etcd: e3 did not catch up"
        secs=$(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN { printf "%.3f", b - a }')
        row catchup etcd "$n" "catchup_s=$secs" "member_bytes=$("${ST[@]}" du "$ETCD_DIR"/e3)" \
            "live_bytes=$((n * (16 + 256)))" "seq_mib_s=$seq"
    done
    etcd_finish "etcd-catchup"
}

# --- the time curve ------------------------------------------------------------------
# time_ddkv / time_etcd: the peak (closed loop, 64 clients), then --minutes
# back-to-back open-loop runs of minute_s seconds at half of it, one row each.
time_ddkv() {
    ddkv_start "ddkv-time" 3
    lead_first ddkv
    local f=$RUN/raw/ddkv-time m rate http="" i
    for i in 1 2 3; do http+="${http:+,}127.0.0.1:$((DDKV_PORT_BASE + 200 + i))"; done
    ddkv_bench "$f-peak.json" --workload write --keys 10000 --clients 64 --duration-s "$duration" --warmup-s "$warmup"
    rate=$("${ST[@]}" half-rate "$f-peak.json") || die "ddkv: no peak rate (see $f-peak.json.err)"
    say "ddkv time: peak $((rate * 2)) writes/s; $minutes runs of $minute_s s at $rate/s"
    for ((m = 1; m <= minutes; m++)); do
        ddkv_bench "$f-$m.json" --workload write --keys 10000 --clients 64 --rate "$rate" \
            --duration-s "$minute_s" --warmup-s 0
        row time ddkv "$m" "write=$f-$m.json" "rate=$rate" "rss_kb=$("${ST[@]}" rss $(ddkv_pids))" \
            "disk_bytes=$("${ST[@]}" du "$DDKV_CLUSTER_DIR"/n1 "$DDKV_CLUSTER_DIR"/n2 "$DDKV_CLUSTER_DIR"/n3)" \
            "engine=$("${ST[@]}" engine "$http")"
    done
    ddkv_finish
}

time_etcd() {
    # An hour of overwrites: etcd keeps every revision until compacted, so
    # compact as its operators are told to (every 5 minutes).
    ETCD_EXTRA=(--auto-compaction-mode periodic --auto-compaction-retention 5m)
    etcd_start "etcd-time" 3
    ETCD_EXTRA=()
    lead_first etcd
    local f=$RUN/raw/etcd-time m rate
    etcd_bench "$f-peak.txt" "$duration" put --key-size 16 --val-size 256 --key-space-size 10000
    rate=$("${ST[@]}" half-rate "$f-peak.txt") || die "etcd: no peak rate (see $f-peak.txt.err)"
    say "etcd time: peak $((rate * 2)) writes/s; $minutes runs of $minute_s s at $rate/s"
    for ((m = 1; m <= minutes; m++)); do
        "$tool" --endpoints "$ETCD_EPS" --conns 64 --clients 64 --precise put --key-size 16 --val-size 256 \
            --key-space-size 10000 --rate "$rate" --total $((rate * minute_s)) >"$f-$m.txt" 2>"$f-$m.txt.err" ||
            say "etcd benchmark exited $? (see $f-$m.txt.err)"
        row time etcd "$m" "write=$f-$m.txt" "rate=$rate" "rss_kb=$("${ST[@]}" rss $(etcd_pids))" \
            "disk_bytes=$("${ST[@]}" du "$ETCD_DIR"/e1 "$ETCD_DIR"/e2 "$ETCD_DIR"/e3)"
    done
    etcd_finish "etcd-time"
}

# --- the run -----------------------------------------------------------------------
load=$(cut -d' ' -f1-3 /proc/loadavg)
warning=""
((quick)) && warning="--quick smoke run: small points and 2 s runs, to test the script; the figures mean nothing."
if awk -v l="${load%% *}" -v n="$(nproc)" 'BEGIN { exit !(l > 0.5 * n) }'; then
    warning+="${warning:+ }Load average ${load%% *} on $(nproc) cores at the start: other processes were using the CPU, so these figures are contaminated."
fi
args="--curves \"$curves\" --sizes \"$sizes\" --conns \"$conns\" --watchers \"$watchers\" --catchup-sizes \"$csizes\" --duration-s $duration --minutes $minutes${only:+ --only $only}"
((quick)) && args="--quick $args"
"${BT[@]}" meta "$META" "date=$(date -u '+%Y-%m-%d %H:%M UTC')" "commit=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)" \
    "args=$args" "nproc=$(nproc)" "cpu=$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1)" \
    "mem=$(awk '/MemTotal/ { printf "%.1f GiB", $2 / 1048576 }' /proc/meminfo)" "kernel=$(uname -srm)" \
    "disk=$(df -h var | awk 'NR == 2 { print $1 ", " $2 " total, " $4 " free" }') ($(findmnt -n -o FSTYPE -T var 2>/dev/null || echo ?))" \
    "loadavg=$load" "duration_s=$duration" "minute_s=$minute_s" "run_dir=$RUN" "warning=$warning" "ceilings:=[]" \
    "quick:=$( ((quick)) && echo true || echo false)"
if want etcd; then
    "${BT[@]}" meta "$META" "etcd_version=$(etcd --version | sed -n 's/^etcd Version: //p') (Debian etcd-server $(dpkg-query -W -f='${Version}' etcd-server))"
fi
say "run in $RUN; load average $load"
ceiling start
# The curves with one cluster per system: CURVE_SYSTEM runs it.
for c in size watch catchup time; do
    curve "$c" || continue
    for sys in ddkv etcd; do
        if want "$sys"; then "${c}_$sys"; fi
    done
done
if curve conns; then
    for k in $conns; do
        if want ddkv; then conns_point ddkv "$k"; fi
        if want etcd; then conns_point etcd "$k"; fi
    done
fi
ceiling end
"${ST[@]}" report "$RUN" "$OUT"
say "wrote $OUT.md, $OUT.json, $OUT.png (raw outputs in $RUN)"
