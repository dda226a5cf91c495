#!/usr/bin/env bash
# ddkv against etcd on this machine, in one run: the same workloads with the
# same parameters against a 3-node cluster of each (then a 1-node one), one
# system at a time, next to the disk's and loopback's own ceilings measured in
# the same run. Writes bench/results/compare-DATE.md, .json and .png.
#
#   bench/compare.sh [--duration-s S] [--clients "1 16 64 256"] [--quick] [--only ddkv|etcd]
#
#   --duration-s S   measured seconds per run (default 10; etcd runs are count-based:
#                    their --total is calibrated to take about S seconds)
#   --clients LIST   concurrency levels of the 3-node matrix (default "1 16 64 256");
#                    the 1-node runs use "1 64"
#   --quick          smoke run of the script itself: 2 s runs, clients "1 16" (1 node:
#                    "1 16"), shorter ceilings; writes compare-DATE-quick.*
#   --only SYSTEM    run ddkv or etcd alone (the other's columns stay empty)
#
# Installs what it needs from Debian (etcd-server, etcd-client and etcd's own load
# tool via bench/etcd-benchmark.sh; gnuplot-nox), builds ddkv (release). Ports:
# etcd in 32000-32299, ddkv (DDKV_PORT_BASE of deploy/cluster.sh) in 32300-32565,
# both below the kernel's ephemeral range so no outgoing connection holds them,
# each block checked free (any TCP socket) before use; ETCD_PORT_BASE and
# DDKV_PORT_BASE in the environment pin them. Data and raw outputs under
# var/compare/STAMP/; every server is stopped by PID on exit, failure included.
# What each workload is on each side, and how they differ: the notes at the end
# of the .md (bench/benchtool.py, NOTES).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
BT=(python3 "$ROOT/bench/benchtool.py")

usage() { sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; }
die() { echo "compare.sh: $*" >&2; exit 1; }
say() { echo "compare: $*" >&2; }

duration="" clients="" only="" quick=0
while (($#)); do
    case $1 in
    --duration-s) duration=${2:?}; shift 2 ;;
    --clients) clients=${2:?}; shift 2 ;;
    --quick) quick=1; shift ;;
    --only) only=${2:?}; shift 2 ;;
    -h | --help) usage; exit 0 ;;
    *) usage >&2; exit 2 ;;
    esac
done
if ((quick)); then
    duration=${duration:-2} clients=${clients:-"1 16"} one_clients="1 16"
    warmup=0.5 dd_count=300 rtt_n=2000 cal_min_s=0.3 sf_rounds=200
else
    duration=${duration:-10} clients=${clients:-"1 16 64 256"} one_clients="1 64"
    warmup=1 dd_count=2000 rtt_n=10000 cal_min_s=1 sf_rounds=2000
fi
[[ $duration =~ ^[0-9]+([.][0-9]+)?$ ]] || die "--duration-s wants seconds, not '$duration'"
for c in $clients; do
    if ! [[ $c =~ ^[0-9]+$ ]] || ((c < 1 || c > 1024)); then die "bad client count '$c'"; fi
done
case $only in "" | ddkv | etcd) ;; *) die "--only takes ddkv or etcd" ;; esac
want() { [[ -z $only || $only == "$1" ]]; }

# --- what it needs (bench/lib.sh) -----------------------------------------------
source "$ROOT/bench/lib.sh"
bench_needs # sets tool (etcd's load tool, when etcd runs) and DDKV

bench_run_dir compare # sets stamp, RUN (var/compare/STAMP), OUT, META, RESULTS

show() { # one progress line from the last results line
    tail -1 "$RESULTS" | python3 -c '
import json, sys
r = json.load(sys.stdin)
what = "compare: %s %d-node %s, %d clients: " % (r["system"], r["nodes"], r["workload"], r["clients"])
if r.get("failed"):
    print(what + "FAILED: " + r["failed"])
else:
    print(what + "%.0f ops/s, p50 %.2f ms, p99 %.2f ms%s" % (r["ops_per_s"], r["p50_ms"] or 0, r["p99_ms"] or 0,
          ", %d errors" % r["errors"] if r.get("errors") else ""))' >&2
}


# run_ddkv NODES WORKLOAD CLIENTS BENCH-ARGS...
# ddkv bench first writes every key of --keys for read (and cas) workloads,
# and that prefill counts against --warmup-s + --duration-s: when it takes
# longer (10,000 synced writes from 1 client take 12 s or more) the run ends
# with no operation measured. So reads run count-based, like etcd's: a short
# count-based calibration on 10 keys gives the rate, then --ops for about
# $duration s on the full key space (the warm-up still follows the prefill). The counter
# uses one key of its own, so cas gets --keys 1 (its prefill is then 2 writes).
run_ddkv() {
    local nodes=$1 wl=$2 c=$3
    shift 3
    local out=$RUN/raw/ddkv-${nodes}n-$wl-c$c.json
    local common=(--endpoints "$DDKV_EPS" --clients "$c" --key-size 16 --value-size 256 -o json)
    local len=(--duration-s "$duration" --warmup-s "$warmup") keys=10000 rate ops
    if [[ $wl == read-* ]]; then
        ops=$((c * 100 > 1000 ? c * 100 : 1000))
        "$DDKV" bench "${common[@]}" --keys 10 --ops "$ops" --warmup-s 0.2 "$@" >"$out.cal" 2>&1 || true
        rate=$("${BT[@]}" ddkv-rate "$out.cal" 2>/dev/null || echo 0)
        [[ $rate != 0 ]] || say "ddkv calibration failed for $wl/$c (see $out.cal); guessing 100 ops/s"
        ops=$(awk -v r="$rate" -v d="$duration" -v c="$c" \
            'BEGIN { if (r <= 0) r = 100; t = r * d; if (t < 10 * c) t = 10 * c; printf "%d", t }')
        len=(--ops "$ops" --warmup-s "$warmup")
    fi
    [[ $wl == counter ]] && keys=1
    local lead
    lead=$(first_leads ddkv)
    "$DDKV" bench "${common[@]}" "${len[@]}" --keys "$keys" "$@" >"$out" 2>"$out.err" ||
        say "ddkv bench exited $? for $wl/$c (see $out.err)"
    if "${BT[@]}" parse ddkv "$out" "$nodes" "$wl" "$c" "first_endpoint_leads=$lead" >>"$RESULTS"; then show; fi
}

# run_etcd NODES WORKLOAD CLIENTS TOOL-ARGS...: calibrate --total on short runs
# (which also warm the cluster up), then one run of about $duration seconds.
run_etcd() {
    local nodes=$1 wl=$2 c=$3
    shift 3
    local out=$RUN/raw/etcd-${nodes}n-$wl-c$c.txt
    local base=("$tool" --endpoints "$ETCD_EPS" --conns "$c" --clients "$c" --precise)
    local total=$((c * 10 > 200 ? c * 10 : 200)) try rate=0 secs=0
    for ((try = 0; try < 6; try++)); do
        "${base[@]}" "$@" --total "$total" >"$out.cal" 2>"$out.cal.err" || true
        read -r rate secs < <("${BT[@]}" etcd-rate "$out.cal" 2>/dev/null || echo "0 0")
        awk -v s="$secs" -v m="$cal_min_s" 'BEGIN { exit !(s >= m) }' && break
        total=$(awk -v t="$total" -v s="$secs" -v m="$cal_min_s" \
            'BEGIN { f = (s > 0) ? 1.3 * m / s : 4; if (f > 10) f = 10; if (f < 2) f = 2; printf "%d", t * f }')
    done
    total=$(awk -v r="$rate" -v d="$duration" -v c="$c" 'BEGIN { t = r * d; if (t < 10 * c) t = 10 * c; printf "%d", t }')
    local TIMEFORMAT='%U %S %R' rc=0 lead
    lead=$(first_leads etcd)
    { time "${base[@]}" "$@" --total "$total" >"$out" 2>"$out.err"; } 2>"$out.cpu" || rc=$?
    ((rc == 0)) || say "etcd benchmark exited $rc for $wl/$c (see $out.err)"
    if "${BT[@]}" parse etcd "$out" "$nodes" "$wl" "$c" "cpu=$out.cpu" "first_endpoint_leads=$lead" >>"$RESULTS"; then
        show
    fi
}

etcd_compact() { # keep etcd's history from growing from one run into the next
    local rev
    rev=$("${BT[@]}" etcd-revision etcdctl "$ETCD_EPS") || return 0
    etcdctl --endpoints "$ETCD_EPS" compact "$rev" --physical >/dev/null 2>&1 || true
    etcdctl --endpoints "$ETCD_EPS" defrag >/dev/null 2>&1 || true
}

READ_KEY=bench/0000000001 # 16 bytes, ddkv bench's own key format
VALUE=$(head -c 256 /dev/zero | tr '\0' v)


# --- the machine, the ceilings ---------------------------------------------
load=$(cut -d' ' -f1-3 /proc/loadavg)
warning=""
if ((quick)); then
    warning="--quick smoke run: 2 s runs, to test the script; the figures mean nothing."
fi
if awk -v l="${load%% *}" -v n="$(nproc)" 'BEGIN { exit !(l > 0.5 * n) }'; then
    warning+="${warning:+ }Load average ${load%% *} on $(nproc) cores at the start: other processes were using the CPU, so these figures are contaminated."
fi
args="--duration-s $duration --clients \"$clients\"${only:+ --only $only}"
((quick)) && args="--quick $args"
"${BT[@]}" meta "$META" "date=$(date -u '+%Y-%m-%d %H:%M UTC')" "commit=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)" \
    "args=$args" \
    "nproc=$(nproc)" "cpu=$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1)" \
    "kernel=$(uname -srm)" \
    "disk=$(df -h var | awk 'NR == 2 { print $1 ", " $2 " total, " $4 " free" }') ($(findmnt -n -o FSTYPE -T var 2>/dev/null || echo ?))" \
    "loadavg=$load" "duration_s=$duration" "run_dir=$RUN" "data_dir=$RUN" "quick:=$( ((quick)) && echo true || echo false)" \
    "warning=$warning" "ceilings:=[]" "clients=$clients" "one_node_clients=$one_clients"
if want etcd; then
    "${BT[@]}" meta "$META" "etcd_version=$(etcd --version | sed -n 's/^etcd Version: //p') (Debian etcd-server $(dpkg-query -W -f='${Version}' etcd-server))"
fi
say "run in $RUN; load average $load"
ceiling start
"${BT[@]}" meta "$META" "rtt:=$("${BT[@]}" rtt "$rtt_n")"
"${BT[@]}" meta "$META" "syncfloor:=$("${BT[@]}" syncfloor "$RUN" "$sf_rounds")"

# --- three nodes -------------------------------------------------------------
for wl in write read-linearizable read-stale read-causal counter; do
    if want ddkv; then
        ddkv_start "ddkv-3-$wl" 3
        lead_first ddkv
        for c in $clients; do
            case $wl in
            write) run_ddkv 3 "$wl" "$c" --workload write ;;
            read-*) run_ddkv 3 "$wl" "$c" --workload read --consistency "${wl#read-}" ;;
            counter) run_ddkv 3 "$wl" "$c" --workload cas ;;
            esac
        done
        ddkv_finish
    fi
    if want etcd && [[ $wl != read-causal ]]; then
        ewl=$wl
        [[ $wl == read-stale ]] && ewl=read-serializable
        etcd_start "etcd-3-$ewl" 3
        lead_first etcd
        [[ $wl == read-* ]] && etcdctl --endpoints "$ETCD_EPS" put "$READ_KEY" "$VALUE" >/dev/null
        for c in $clients; do
            case $wl in
            write) run_etcd 3 "$ewl" "$c" put --key-size 16 --val-size 256 --key-space-size 10000 ;;
            read-linearizable) run_etcd 3 "$ewl" "$c" range "$READ_KEY" --consistency l ;;
            read-stale) run_etcd 3 "$ewl" "$c" range "$READ_KEY" --consistency s ;;
            counter) run_etcd 3 "$ewl" "$c" stm --isolation s --keys 1 --keys-per-txn 1 --txn-wr-percent 100 --val-size 8 ;;
            esac
            etcd_compact
        done
        etcd_finish "etcd-3-$ewl"
    fi
done

# --- one node ----------------------------------------------------------------
for wl in write read-linearizable; do
    if want ddkv; then
        ddkv_start "ddkv-1-$wl" 1
        for c in $one_clients; do
            if [[ $wl == write ]]; then
                run_ddkv 1 "$wl" "$c" --workload write
            else
                run_ddkv 1 "$wl" "$c" --workload read --consistency linearizable
            fi
        done
        ddkv_finish
    fi
    if want etcd; then
        etcd_start "etcd-1-$wl" 1
        [[ $wl == read-* ]] && etcdctl --endpoints "$ETCD_EPS" put "$READ_KEY" "$VALUE" >/dev/null
        for c in $one_clients; do
            if [[ $wl == write ]]; then
                run_etcd 1 "$wl" "$c" put --key-size 16 --val-size 256 --key-space-size 10000
            else
                run_etcd 1 "$wl" "$c" range "$READ_KEY" --consistency l
            fi
            etcd_compact
        done
        etcd_finish "etcd-1-$wl"
    fi
done

ceiling end
"${BT[@]}" report "$RUN" "$OUT"
say "wrote $OUT.md, $OUT.json, $OUT.png (raw outputs in $RUN)"
