#!/usr/bin/env bash
# Failover window, ddkv and etcd: a 3- and a 5-node cluster of each on
# loopback under a steady closed-loop write load (4 clients, 256-byte values,
# each client one write in flight); kill -9 the leader ROUNDS times (default
# 20), each time waiting until writes resume, restarting the killed member and
# waiting until the cluster is healthy and caught up again. For each kill: the
# gap between the last write acknowledged before the kill and the first one
# acknowledged after it; per-round gaps, then the median and max:
#
#   ddkv 3 nodes: median X ms, max Y ms over 20 kills (kill to first ack: ...)
#
#   bench/failover.sh [ROUNDS] [--rounds N] [--sizes "3 5"] [--only ddkv|etcd]
#                     [--clients N] [--etcd-attempt-timeout-ms MS]
#
# The load is build/ddkv-bench-ack-loop (bench/ack_loop.c), one line per
# acknowledged write with its CLOCK_MONOTONIC time; it also stamps each kill
# on the same clock. ddkv: through libddkv (its own retry policy). etcd:
# through etcd's v3 JSON gateway (POST /v3/kv/put, HTTP/1.1 keep-alive), by the
# same program over raw sockets, with a per-attempt deadline (default 500 ms;
# etcd leaves a put forwarded to a dead leader unanswered) and libddkv's
# backoff; see bench/ack_loop.c. Election settings are the same: ddkv's
# defaults (heartbeat 100 ms, election timeout 1000 ms, pre-vote) and etcd
# --heartbeat-interval 100 --election-timeout 1000 --pre-vote=true.
#
# That every acknowledged write survives each kill is checked by the test
# suite (build/test/node_test_cluster --filter 'cluster/kill_9_the_leader_under_load*',
# DDKV_FAILOVER_ROUNDS=N), not here. Ports: etcd 32000-32299, ddkv 32300-32565,
# checked free; data and logs under var/failover/STAMP/; every process is
# stopped by PID on exit, failure included.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
BT=(python3 "$ROOT/bench/benchtool.py")

usage() { sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; }
die() { echo "failover.sh: $*" >&2; exit 1; }
say() { echo "failover: $*" >&2; }

rounds=20 sizes="3 5" only="" clients=4 attempt_ms=500 settle_s=1
while (($#)); do
    case $1 in
    --rounds) rounds=${2:?}; shift 2 ;;
    --sizes) sizes=${2:?}; shift 2 ;;
    --only) only=${2:?}; shift 2 ;;
    --clients) clients=${2:?}; shift 2 ;;
    --etcd-attempt-timeout-ms) attempt_ms=${2:?}; shift 2 ;;
    -h | --help) usage; exit 0 ;;
    [0-9]*) rounds=$1; shift ;;
    *) usage >&2; exit 2 ;;
    esac
done
if ! [[ $rounds =~ ^[0-9]+$ ]] || ((rounds < 1)); then die "ROUNDS wants a positive number"; fi
if ! [[ $clients =~ ^[0-9]+$ ]] || ((clients < 1 || clients > 256)); then die "--clients wants 1..256"; fi
[[ $attempt_ms =~ ^[0-9]+$ ]] || die "--etcd-attempt-timeout-ms wants milliseconds"
for n in $sizes; do [[ $n == 3 || $n == 5 ]] || die "--sizes takes 3 and/or 5"; done
case $only in "" | ddkv | etcd) ;; *) die "--only takes ddkv or etcd" ;; esac
want() { [[ -z $only || $only == "$1" ]]; }

# --- what it needs ---------------------------------------------------------
# The project's build dependencies; a failure there (a package this script does
# not need) is not fatal if the build below still works.
scripts/deps.sh || say "scripts/deps.sh failed; building with what is installed"
if want etcd; then
    missing=()
    for p in etcd-server etcd-client; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
    done
    if ((${#missing[@]})); then
        SUDO=()
        [ "$(id -u)" -eq 0 ] || SUDO=(sudo)
        say "installing ${missing[*]}"
        "${SUDO[@]}" apt-get update -qq
        DEBIAN_FRONTEND=noninteractive "${SUDO[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" \
            >/dev/null 2>&1 || die "apt-get install ${missing[*]} failed"
    fi
fi
if ! scripts/build.sh release >/dev/null; then
    say "build failed; trying once more in 60 s (the tree may be mid-edit)"
    sleep 60
    scripts/build.sh release >/dev/null || die "scripts/build.sh release failed"
fi
DDKV=$ROOT/build/ddkv
ACK=$ROOT/build/ddkv-bench-ack-loop
[[ -x $ACK ]] || die "no $ACK (CMakeLists.txt builds it from bench/ack_loop.c)"

stamp=$(date -u +%Y%m%dT%H%M%SZ)
RUN=var/failover/$stamp
mkdir -p "$RUN"
SUMMARY=$RUN/summary.txt
: >"$SUMMARY"
USER_DDKV_PORT_BASE=${DDKV_PORT_BASE:-}

# --- processes, stopped by PID whatever happens ----------------------------
LOAD_PID=""
ETCD_DIR="" ETCD_N=0
cleanup() {
    set +e
    if [[ -n $LOAD_PID ]] && kill -0 "$LOAD_PID" 2>/dev/null; then
        kill -TERM "$LOAD_PID"
        wait "$LOAD_PID" 2>/dev/null
    fi
    if [[ -n ${DDKV_CLUSTER_DIR:-} ]]; then deploy/cluster.sh stop >/dev/null 2>&1; fi
    etcd_stop
}
trap cleanup EXIT
trap 'exit 130' INT TERM

etcd_pid() { # etcd_pid I: the PID of member I if it is our etcd and alive
    local f=$ETCD_DIR/e$1.pid pid
    [[ -f $f ]] || return 1
    pid=$(cat "$f")
    grep -q "etcd" "/proc/$pid/cmdline" 2>/dev/null && grep -q "$ETCD_DIR/e$1" "/proc/$pid/cmdline" 2>/dev/null || return 1
    echo "$pid"
}

etcd_stop() {
    local i t pid
    [[ -n $ETCD_DIR ]] || return 0
    for ((i = 1; i <= ETCD_N; i++)); do
        if pid=$(etcd_pid "$i"); then kill -TERM "$pid"; fi
    done
    for ((i = 1; i <= ETCD_N; i++)); do
        for ((t = 0; t < 100; t++)); do etcd_pid "$i" >/dev/null || break; sleep 0.1; done
        if pid=$(etcd_pid "$i"); then kill -KILL "$pid"; fi
        rm -f "$ETCD_DIR/e$i.pid"
    done
    ETCD_DIR="" ETCD_N=0
}

etcd_member_start() { # etcd_member_start I (a new member, or a restart on its data)
    local i=$1
    etcd --name "e$i" --data-dir "$ETCD_DIR/e$i" \
        --listen-client-urls "http://127.0.0.1:$((ETCD_BASE + i))" \
        --advertise-client-urls "http://127.0.0.1:$((ETCD_BASE + i))" \
        --listen-peer-urls "http://127.0.0.1:$((ETCD_BASE + 10 + i))" \
        --initial-advertise-peer-urls "http://127.0.0.1:$((ETCD_BASE + 10 + i))" \
        --initial-cluster "$ETCD_IC" --initial-cluster-state new --initial-cluster-token "failover-$stamp-$ETCD_N" \
        --heartbeat-interval 100 --election-timeout 1000 --pre-vote=true \
        --quota-backend-bytes $((8 * 1024 * 1024 * 1024)) \
        --logger zap --log-outputs stderr --log-level info >>"$ETCD_DIR/e$i.log" 2>&1 </dev/null &
    echo $! >"$ETCD_DIR/e$i.pid"
    disown $! # no "Killed" job notice when a round kills it; cleanup stops it by PID
}

etcd_start() { # etcd_start DIR N; sets EPS
    local i
    ETCD_DIR=$ROOT/$1 ETCD_N=$2 ETCD_IC="" EPS=""
    mkdir -p "$ETCD_DIR"
    ETCD_BASE=${ETCD_PORT_BASE:-$("${BT[@]}" free-base 32000 32280 20 1 2 3 4 5 11 12 13 14 15)}
    for ((i = 1; i <= ETCD_N; i++)); do
        ETCD_IC+="${ETCD_IC:+,}e$i=http://127.0.0.1:$((ETCD_BASE + 10 + i))"
        EPS+="${EPS:+,}127.0.0.1:$((ETCD_BASE + i))"
    done
    for ((i = 1; i <= ETCD_N; i++)); do etcd_member_start "$i"; done
    "${BT[@]}" wait-etcd-healthy etcdctl "$EPS" 60 || die "etcd did not come up (logs in $ETCD_DIR)"
}

ddkv_start() { # ddkv_start DIR N; sets EPS
    export DDKV_CLUSTER_DIR=$ROOT/$1
    export DDKV_PORT_BASE=${USER_DDKV_PORT_BASE:-$("${BT[@]}" free-base 32300 32560 10 1 2 3 4 5 101 102 103 104 105 201 202 203 204 205)}
    deploy/cluster.sh start "$2" >"$DDKV_CLUSTER_DIR.start.log" 2>&1 ||
        { cat "$DDKV_CLUSTER_DIR.start.log" >&2; die "ddkv did not come up"; }
    EPS=$(deploy/cluster.sh endpoints)
}

# one_system SYSTEM N: the rounds against one cluster; appends its summary line.
one_system() {
    local sys=$1 n=$2 dir=$RUN/$1-$2 r name idx pid t treal who
    say "$sys $n nodes: starting the cluster"
    if [[ $sys == ddkv ]]; then ddkv_start "$dir" "$n"; else etcd_start "$dir" "$n"; fi
    local acks=$dir.acks kills=$dir.kills
    : >"$kills"
    local extra=()
    [[ $sys == etcd ]] && extra=(--timeout-ms "$attempt_ms")
    "$ACK" "$sys" "$EPS" --threads "$clients" --max-s 7200 "${extra[@]}" >"$acks" 2>"$dir.load.log" &
    LOAD_PID=$!
    "${BT[@]}" wait-acks "$acks" 30 || die "$sys: no write acknowledged (see $dir.load.log)"
    sleep "$settle_s"
    for ((r = 1; r <= rounds; r++)); do
        # who: what tells the new leader's acks from the old one's (ack_loop.c)
        if [[ $sys == ddkv ]]; then
            read -r name who < <("${BT[@]}" ddkv-leader "$DDKV" "$EPS") || die "round $r: no leader"
            pid=$(cat "$DDKV_CLUSTER_DIR/$name.pid")
        else
            read -r _ idx who < <("${BT[@]}" etcd-leader etcdctl "$EPS") || die "round $r: no leader"
            name=e$idx
            pid=$(etcd_pid "$idx") || die "round $r: leader e$idx has no live PID"
        fi
        read -r t treal < <("$ACK" kill "$pid") || die "round $r: kill $pid failed"
        echo "$t $name $who $treal" >>"$kills"
        if [[ $sys == ddkv ]]; then rm -f "$DDKV_CLUSTER_DIR/$name.pid"; fi
        "${BT[@]}" wait-resumed "$sys" "$acks" "$t" "$who" 60 || say "round $r: writes did not resume within 60 s"
        if [[ $sys == ddkv ]]; then
            deploy/cluster.sh restart "$name" >/dev/null || die "round $r: $name did not restart"
            "${BT[@]}" wait-ddkv-healthy "$DDKV" "$EPS" 60 || die "round $r: cluster not healthy again"
        else
            etcd_member_start "$idx"
            "${BT[@]}" wait-etcd-healthy etcdctl "$EPS" 60 || die "round $r: cluster not healthy again"
        fi
        say "$sys $n nodes: round $r/$rounds done (killed $name)"
        sleep "$settle_s"
    done
    kill -TERM "$LOAD_PID"
    wait "$LOAD_PID" || true
    LOAD_PID=""
    tail -1 "$dir.load.log" >&2
    if [[ $sys == ddkv ]]; then
        deploy/cluster.sh stop >/dev/null
        unset DDKV_CLUSTER_DIR
    else
        etcd_stop
    fi
    rm -rf "$dir"/n[0-9] "$dir"/e[0-9] # the data; logs stay
    "${BT[@]}" gaps "$sys" "$n" "$acks" "$kills" "$dir"/[ne][0-9].log | tee "$dir.gaps" >&2
    tail -1 "$dir.gaps" >>"$SUMMARY"
}

say "$(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg); output in $RUN"
for n in $sizes; do
    for sys in ddkv etcd; do
        want "$sys" && one_system "$sys" "$n"
    done
done
echo
cat "$SUMMARY"
