# Shared by bench/compare.sh and bench/scale.sh (sourced once ROOT and BT are
# set and say, die and want defined; the functions use RUN, META, stamp and
# DDKV, set later): what they need, ddkv and etcd clusters on loopback,
# started fresh and stopped by PID whatever happens, and the ceilings both
# scripts measure in the same run.
# shellcheck shell=bash
# bench_needs: what both scripts need, installed (Debian) and built: the
# project's build dependencies (a failure there, of a package the benchmark
# does not need, is not fatal if the build still works), etcd and its load
# tool when etcd runs (want etcd; sets tool), gnuplot, and ddkv (release;
# sets DDKV).
bench_needs() {
    local sudo=()
    [ "$(id -u)" -eq 0 ] || sudo=(sudo)
    scripts/deps.sh || say "scripts/deps.sh failed; building with what is installed"
    tool=""
    if want etcd; then
        tool=$(bench/etcd-benchmark.sh) # also installs etcd-server and etcd-client
    fi
    if ! command -v gnuplot >/dev/null; then
        say "installing gnuplot-nox"
        "${sudo[@]}" apt-get update -qq
        DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq --no-install-recommends gnuplot-nox \
            >/dev/null 2>&1 || die "apt-get install gnuplot-nox failed"
    fi
    if ! scripts/build.sh release >/dev/null; then
        say "build failed; trying once more in 60 s (the tree may be mid-edit)"
        sleep 60
        scripts/build.sh release >/dev/null || die "scripts/build.sh release failed"
    fi
    DDKV=$ROOT/build/ddkv
}

# bench_run_dir NAME: this run's directory var/NAME/STAMP (RUN, with raw/),
# its meta.json (META) and results.jsonl (RESULTS, empty), and the report's
# prefix bench/results/NAME-DATE[-quick] (OUT).
bench_run_dir() {
    stamp=$(date -u +%Y%m%dT%H%M%SZ)
    RUN=var/$1/$stamp
    mkdir -p "$RUN/raw" bench/results
    OUT=bench/results/$1-$(date -u +%Y-%m-%d)
    ((quick)) && OUT+=-quick
    META=$RUN/meta.json
    RESULTS=$RUN/results.jsonl
    : >"$RESULTS"
}

# --- servers, stopped by PID whatever happens -----------------------------
ETCD_PIDS=()
cleanup() {
    set +e
    if [[ -n ${DDKV_CLUSTER_DIR:-} ]]; then deploy/cluster.sh stop >/dev/null 2>&1; fi
    etcd_stop
}
trap cleanup EXIT
trap 'exit 130' INT TERM

is_our_etcd() { grep -q "etcd" "/proc/$1/cmdline" 2>/dev/null && grep -q "$ROOT/$RUN" "/proc/$1/cmdline" 2>/dev/null; }

etcd_stop() {
    local pid t
    for pid in "${ETCD_PIDS[@]}"; do is_our_etcd "$pid" && kill -TERM "$pid" 2>/dev/null; done
    for pid in "${ETCD_PIDS[@]}"; do
        for ((t = 0; t < 100; t++)); do is_our_etcd "$pid" || break; sleep 0.1; done
        is_our_etcd "$pid" && kill -KILL "$pid" 2>/dev/null
    done
    ETCD_PIDS=()
    return 0
}

# etcd_start NAME N: a fresh N-member etcd cluster in $RUN/NAME; sets ETCD_EPS.
# ETCD_EXTRA (an array, may be unset) adds flags to every member.
etcd_start() {
    local name=$1 n=$2 i
    ETCD_DIR=$ROOT/$RUN/$name ETCD_IC="" ETCD_EPS="" ETCD_TOKEN="bench-$stamp-$name"
    mkdir -p "$ETCD_DIR"
    ETCD_BASE=${ETCD_PORT_BASE:-$("${BT[@]}" free-base 32000 32280 20 1 2 3 4 5 11 12 13 14 15)}
    for ((i = 1; i <= n; i++)); do
        ETCD_IC+="${ETCD_IC:+,}e$i=http://127.0.0.1:$((ETCD_BASE + 10 + i))"
        ETCD_EPS+="${ETCD_EPS:+,}127.0.0.1:$((ETCD_BASE + i))"
    done
    for ((i = 1; i <= n; i++)); do etcd_member_start "$i" new; done
    "${BT[@]}" wait-etcd-healthy etcdctl "$ETCD_EPS" 60 || { tail -3 "$ETCD_DIR"/e*.log >&2; die "etcd $name did not come up"; }
}

# etcd_member_start I new|existing: start member I of the cluster etcd_start made.
etcd_member_start() {
    local i=$1 base=$ETCD_BASE
    etcd --name "e$i" --data-dir "$ETCD_DIR/e$i" \
        --listen-client-urls "http://127.0.0.1:$((base + i))" \
        --advertise-client-urls "http://127.0.0.1:$((base + i))" \
        --listen-peer-urls "http://127.0.0.1:$((base + 10 + i))" \
        --initial-advertise-peer-urls "http://127.0.0.1:$((base + 10 + i))" \
        --initial-cluster "$ETCD_IC" --initial-cluster-state "$2" --initial-cluster-token "$ETCD_TOKEN" \
        --heartbeat-interval 100 --election-timeout 1000 --pre-vote=true \
        --quota-backend-bytes $((8 * 1024 * 1024 * 1024)) ${ETCD_EXTRA[@]+"${ETCD_EXTRA[@]}"} \
        --logger zap --log-outputs stderr --log-level warn >>"$ETCD_DIR/e$i.log" 2>&1 </dev/null &
    ETCD_PIDS[i - 1]=$!
}

# etcd_member_stop I: SIGTERM member I and wait for it to exit.
etcd_member_stop() {
    local pid=${ETCD_PIDS[$1 - 1]:-} t
    [[ -n $pid ]] || return 0
    is_our_etcd "$pid" && kill -TERM "$pid" 2>/dev/null
    for ((t = 0; t < 200; t++)); do is_our_etcd "$pid" || break; sleep 0.1; done
    is_our_etcd "$pid" && kill -KILL "$pid" 2>/dev/null
    return 0
}

lead_first() { # lead_first ddkv|etcd: make the first endpoint's member the leader
    if [[ $1 == etcd ]]; then
        "${BT[@]}" etcd-lead-first etcdctl "$ETCD_EPS" || say "etcd: the first member does not lead"
        return 0
    fi
    local t lead
    for ((t = 0; t < 20; t++)); do
        read -r lead _ < <("${BT[@]}" ddkv-leader "$DDKV" "$DDKV_EPS" 2>/dev/null) || lead=""
        [[ $lead == n1 ]] && return 0
        "$DDKV" members transfer n1 --endpoints "$DDKV_EPS" >/dev/null 2>&1 || true
        sleep 0.2
    done
    say "ddkv: n1 does not lead"
}

etcd_finish() { # stop, and drop the data (the logs stay)
    etcd_stop
    rm -rf "${RUN:?}/$1"/e[0-9]
}

ddkv_start() { # ddkv_start NAME N: a fresh N-member ddkv cluster; sets DDKV_EPS
    export DDKV_CLUSTER_DIR=$ROOT/$RUN/$1
    local user_base=${USER_DDKV_PORT_BASE:-}
    export DDKV_PORT_BASE=${user_base:-$("${BT[@]}" free-base 32300 32560 10 1 2 3 4 5 101 102 103 104 105 201 202 203 204 205)}
    deploy/cluster.sh start "$2" >"$DDKV_CLUSTER_DIR.start.log" 2>&1 || { cat "$DDKV_CLUSTER_DIR.start.log" >&2; die "ddkv $1 did not come up"; }
    DDKV_EPS=$(deploy/cluster.sh endpoints)
}
USER_DDKV_PORT_BASE=${DDKV_PORT_BASE:-}

ddkv_finish() {
    deploy/cluster.sh stop >/dev/null
    rm -rf "${DDKV_CLUSTER_DIR:?}"/n[0-9]
    unset DDKV_CLUSTER_DIR
}


first_leads() { # first_leads ddkv|etcd: yes/no, is the first endpoint (client 0's) the leader
    local ep lead
    if [[ $1 == ddkv ]]; then
        ep=${DDKV_EPS%%,*}
        read -r _ lead < <("${BT[@]}" ddkv-leader "$DDKV" "$DDKV_EPS" 2>/dev/null) || { echo unknown; return; }
    else
        ep=${ETCD_EPS%%,*}
        read -r lead _ < <("${BT[@]}" etcd-leader etcdctl "$ETCD_EPS" 2>/dev/null) || { echo unknown; return; }
    fi
    [[ $lead == "$ep" ]] && echo yes || echo no
}

# ceiling WHEN: synced 4 KiB writes per second on the disk under var/, by one
# writer, then by each of three writers at once (what three members syncing
# their logs on one disk get).
ceiling() {
    local f=$RUN/dd.tmp out secs i
    out=$(LC_ALL=C dd if=/dev/zero of="$f" bs=4k count="$dd_count" oflag=dsync 2>&1 >/dev/null) || true
    rm -f "$f"
    secs=$(sed -n 's/.* copied, \([0-9.e+-]*\) s,.*/\1/p' <<<"$out")
    [[ -n $secs ]] || { say "dd said: $out"; return 0; }
    "${BT[@]}" meta "$META" "ceilings:=$(awk -v n="$dd_count" -v s="$secs" -v w="$1" \
        'BEGIN { printf "{\"when\": \"%s\", \"count\": %d, \"seconds\": %g, \"writes_per_s\": %.1f}", w, n, s, n / s }')"
    for i in 1 2 3; do
        LC_ALL=C dd if=/dev/zero of="$f.$i" bs=4k count="$dd_count" oflag=dsync 2>"$f.$i.err" >/dev/null &
    done
    wait
    secs=$(cat "$f".[123].err | sed -n 's/.* copied, \([0-9.e+-]*\) s,.*/\1/p' |
        awk '{ s += $1; n++ } END { if (n == 3) printf "%g", s / n }')
    rm -f "$f".[123] "$f".[123].err
    [[ -n $secs ]] || { say "three dd writers at once did not all finish"; return 0; }
    "${BT[@]}" meta "$META" "ceilings:=$(awk -v n="$dd_count" -v s="$secs" -v w="$1, each of 3 writers at once" \
        'BEGIN { printf "{\"when\": \"%s\", \"count\": %d, \"seconds\": %g, \"writes_per_s\": %.1f}", w, n, s, n / s }')"
}
