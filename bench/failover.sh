#!/usr/bin/env bash
# Failover window, ddkv and etcd: a 3- and a 5-node cluster of each on
# loopback under a steady closed-loop write load (4 clients, 256-byte values,
# each client one write in flight); kill -9 the leader ROUNDS times (default
# 20), each time waiting until writes resume, restarting the killed member and
# waiting until the cluster is healthy and caught up again. For each kill: the
# gap between the last write acknowledged before the kill and the first one
# acknowledged after it; per-round gaps, then the median, p99 and max:
#
#   ddkv 3 nodes (kill): median X ms, p99 Y ms, max Z ms over 20 kills (kill to first ack: ...)
#
#   bench/failover.sh [ROUNDS] [--rounds N] [--sizes "3 5"] [--only ddkv|etcd]
#                     [--fault kill|silent] [--clients N] [--etcd-attempt-timeout-ms MS]
#
# --fault kill (the default): kill -9, as above; the peers and clients of the
# killed leader see its connections close at once.
# --fault silent: the leader's machine vanishes without a trace: no connection
# is reset, its packets just stop. Needs root: the script runs itself again
# under unshare -n -m (after the build), so everything it makes is private and
# vanishes with it: a bridge br0 (10.77.0.254/24) and member i in a network
# namespace foI of its own at 10.77.0.I/24, joined to br0 by a veth pair (vfoI
# on the bridge's side); members listen on their address (same ports), the
# load and etcdctl / ddkv status run beside the bridge. A round: the leader's
# vfoI goes down (stamped on the load's clock like a kill; packets to and from
# it vanish), writes resume from a new leader, then the isolated member is
# killed -9 (its machine is dead), its link comes up and it restarts on its
# data. A check that the isolation took: the old leader must acknowledge no
# write more than 500 ms after its link went down; a round where it did is
# reported NOT ISOLATED, left out of the figures, and the script exits 1 at
# the end. FAILOVER_KEEP_LINK_UP=1 leaves the link up: a broken copy, to see
# that check fire.
#
# Per round, the gap is measured from the last ack before the fault; the p99
# is by nearest rank (over fewer than 100 rounds, the largest gap). The
# summary lines go to var/failover/STAMP/summary.txt, and as JSON lines
# (system, nodes, fault, rounds, median_ms, p99_ms, max_ms, gaps, ...) to
# summary.jsonl beside it.
#
# The load is build/ddkv-bench-ack-loop (bench/ack_loop.c), one line per
# acknowledged write with its CLOCK_MONOTONIC time; it also stamps each kill
# (or link taken down) on the same clock. ddkv: through libddkv (its own retry
# policy; a write it sent waits for its reply up to its whole deadline, 5 s,
# so on a silent leader that wait is part of ddkv's gap). etcd:
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
# checked free (--fault silent: on each member's own address); data and logs
# under var/failover/STAMP/; every process is stopped by PID on exit, failure
# included.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
BT=(python3 "$ROOT/bench/benchtool.py")

ARGS=("$@")
usage() { sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; }
die() { echo "failover.sh: $*" >&2; exit 1; }
say() { echo "failover: $*" >&2; }

rounds=20 sizes="3 5" only="" clients=4 attempt_ms=500 settle_s=1 fault=kill
quiet_ms=500 # --fault silent: no ack of the isolated leader later than this after its link went down
while (($#)); do
    case $1 in
    --rounds) rounds=${2:?}; shift 2 ;;
    --sizes) sizes=${2:?}; shift 2 ;;
    --only) only=${2:?}; shift 2 ;;
    --fault) fault=${2:?}; shift 2 ;;
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
case $fault in kill | silent) ;; *) die "--fault takes kill or silent" ;; esac
want() { [[ -z $only || $only == "$1" ]]; }
INNER=${_FAILOVER_NETNS:-} # set when this is the run inside the namespaces
if [[ $fault == silent && -z $INNER ]]; then
    [[ $(id -u) -eq 0 ]] || die "--fault silent needs root (unshare -n -m, ip netns, veth pairs, a bridge): run it as root"
    for c in unshare ip mount; do command -v "$c" >/dev/null || die "--fault silent needs $c (util-linux, iproute2)"; done
fi

# --- what it needs ---------------------------------------------------------
# The project's build dependencies; a failure there (a package this script does
# not need) is not fatal if the build below still works. Done before --fault
# silent's namespaces, which have no network.
needs() {
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
}
[[ -n $INNER ]] || needs
DDKV=$ROOT/build/ddkv
ACK=$ROOT/build/ddkv-bench-ack-loop
[[ -x $ACK ]] || die "no $ACK (CMakeLists.txt builds it from bench/ack_loop.c)"

# --- silent: the same script again, in namespaces of its own ----------------
if [[ $fault == silent && -z $INNER ]]; then
    say "--fault silent: running again in a network and mount namespace of its own (unshare -n -m)"
    exec env _FAILOVER_NETNS=1 unshare -n -m "$ROOT/bench/failover.sh" "${ARGS[@]}"
fi
NS_MAX=0 # member namespaces made (--fault silent)
for n in $sizes; do ((n > NS_MAX)) && NS_MAX=$n; done
if [[ $fault == silent ]]; then
    # Members: member i at 10.77.0.i in namespace foi; the script, the load and
    # the status tools stay in this (unshared) namespace, on the bridge.
    HOST_FMT=10.77.0.%d EXEC_FMT="ip netns exec fo%d"
    [[ $(ip -o link show | grep -cv ': lo:') == 0 ]] ||
        die "_FAILOVER_NETNS is set but this network namespace is not a fresh one (it has links besides lo)"
    mount --make-rprivate /
    mkdir -p /run/netns
    mount -t tmpfs ddkvns /run/netns # the netns files stay out of the host's /run/netns
    ip link set lo up
    ip link add br0 type bridge
    ip addr add 10.77.0.254/24 dev br0
    ip link set br0 up
    for ((i = 1; i <= NS_MAX; i++)); do
        ip netns add "fo$i"
        ip link add "vfo$i" type veth peer name eth0 netns "fo$i"
        ip link set "vfo$i" master br0
        ip link set "vfo$i" up
        ip -n "fo$i" addr add "10.77.0.$i/24" dev eth0
        ip -n "fo$i" link set eth0 up
        ip -n "fo$i" link set lo up
    done
    export DDKV_MEMBER_HOST=$HOST_FMT DDKV_MEMBER_EXEC=$EXEC_FMT # deploy/cluster.sh's
else
    HOST_FMT=127.0.0.1 EXEC_FMT=""
    unset DDKV_MEMBER_HOST DDKV_MEMBER_EXEC
fi
# shellcheck disable=SC2059 # formats
member_host() { printf "$HOST_FMT" "$1"; }
# shellcheck disable=SC2059
member_exec() { [[ -z $EXEC_FMT ]] || printf "$EXEC_FMT" "$1"; }

stamp=$(date -u +%Y%m%dT%H%M%SZ)
RUN=var/failover/$stamp
mkdir -p "$RUN"
SUMMARY=$RUN/summary.txt
: >"$SUMMARY"
: >"$RUN/summary.jsonl"
NOT_ISOLATED=""
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
    local i=$1 h pre=()
    h=$(member_host "$i")
    read -ra pre <<<"$(member_exec "$i")"
    "${pre[@]}" etcd --name "e$i" --data-dir "$ETCD_DIR/e$i" \
        --listen-client-urls "http://$h:$((ETCD_BASE + i))" \
        --advertise-client-urls "http://$h:$((ETCD_BASE + i))" \
        --listen-peer-urls "http://$h:$((ETCD_BASE + 10 + i))" \
        --initial-advertise-peer-urls "http://$h:$((ETCD_BASE + 10 + i))" \
        --initial-cluster "$ETCD_IC" --initial-cluster-state new --initial-cluster-token "failover-$stamp-$ETCD_N" \
        --heartbeat-interval 100 --election-timeout 1000 --pre-vote=true \
        --quota-backend-bytes $((8 * 1024 * 1024 * 1024)) \
        --logger zap --log-outputs stderr --log-level info >>"$ETCD_DIR/e$i.log" 2>&1 </dev/null &
    echo $! >"$ETCD_DIR/e$i.pid"
    disown $! # no "Killed" job notice when a round kills it; cleanup stops it by PID
}

# etcd_restart I: start member I on its data again. Seen once in a silent
# round of 5 members: the restarted etcd found its peer port still bound
# ("address already in use") moments after the killed one was gone, and
# exited; it is started again, up to 5 times a second apart.
etcd_restart() {
    local i=$1 try pid t
    for ((try = 1; try <= 5; try++)); do
        etcd_member_start "$i"
        pid=$(cat "$ETCD_DIR/e$i.pid")
        for ((t = 0; t < 20; t++)); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        kill -0 "$pid" 2>/dev/null && return 0
        tail -2 "$ETCD_DIR/e$i.log" | grep -q "address already in use" || return 1
        say "e$i: its port was still bound; starting it again in 1 s"
        sleep 1
    done
    return 1
}

etcd_start() { # etcd_start DIR N; sets EPS
    local i
    ETCD_DIR=$ROOT/$1 ETCD_N=$2 ETCD_IC="" EPS=""
    mkdir -p "$ETCD_DIR"
    ETCD_BASE=${ETCD_PORT_BASE:-$("${BT[@]}" free-base 32000 32280 20 1 2 3 4 5 11 12 13 14 15)}
    for ((i = 1; i <= ETCD_N; i++)); do
        ETCD_IC+="${ETCD_IC:+,}e$i=http://$(member_host "$i"):$((ETCD_BASE + 10 + i))"
        EPS+="${EPS:+,}$(member_host "$i"):$((ETCD_BASE + i))"
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

gone() { # gone PID: wait until it has exited (a zombie counts: its files are closed)
    local t st
    for ((t = 0; t < 600; t++)); do
        st=$(awk '{print $3}' "/proc/$1/stat" 2>/dev/null) || return 0
        [[ -z $st || $st == Z ]] && return 0
        sleep 0.05
    done
    return 1
}

# one_system SYSTEM N: the rounds against one cluster; appends its summary line.
one_system() {
    local sys=$1 n=$2 dir=$RUN/$1-$2 r name idx pid t treal who out rc t_end link down
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
            idx=${name#n}
            pid=$(cat "$DDKV_CLUSTER_DIR/$name.pid")
        else
            read -r _ idx who < <("${BT[@]}" etcd-leader etcdctl "$EPS") || die "round $r: no leader"
            name=e$idx
            pid=$(etcd_pid "$idx") || die "round $r: leader e$idx has no live PID"
        fi
        if [[ $fault == kill ]]; then
            read -r t treal < <("$ACK" kill "$pid") || die "round $r: kill $pid failed"
            echo "$t $name $who $treal" >>"$kills"
            if [[ $sys == ddkv ]]; then rm -f "$DDKV_CLUSTER_DIR/$name.pid"; fi
            "${BT[@]}" wait-resumed "$sys" "$acks" "$t" "$who" 60 || say "round $r: writes did not resume within 60 s"
        else
            link=vfo$idx down=(ip link set "vfo$idx" down)
            [[ ${FAILOVER_KEEP_LINK_UP:-0} == 1 ]] && down=(true) # the broken copy
            out=$("$ACK" stamp "${down[@]}") || die "round $r: ${down[*]} failed"
            read -r t treal <<<"$out"
            rc=0
            "${BT[@]}" wait-resumed "$sys" "$acks" "$t" "$who" 60 "$quiet_ms" || rc=$?
            if ((rc == 3)); then
                say "round $r: NOT ISOLATED: the leader $name kept acknowledging writes after its link went down" \
                    "(writes never stopped); this round gives no gap"
            elif ((rc != 0)); then
                say "round $r: writes did not resume within 60 s"
            fi
            t_end=$("$ACK" now)
            echo "$t $name $who $treal $t_end" >>"$kills"
            # Its machine is dead: the member goes, then its link comes back for the restart.
            if [[ $sys == ddkv ]]; then
                deploy/cluster.sh kill "$name" >/dev/null || die "round $r: could not kill $name"
            else
                kill -KILL "$pid" 2>/dev/null || true
                gone "$pid" || die "round $r: $name (pid $pid) did not die"
            fi
            ip link set "$link" up
        fi
        if [[ $sys == ddkv ]]; then
            deploy/cluster.sh restart "$name" >/dev/null || die "round $r: $name did not restart"
            "${BT[@]}" wait-ddkv-healthy "$DDKV" "$EPS" 60 || die "round $r: cluster not healthy again"
        else
            etcd_restart "$idx" || die "round $r: e$idx did not restart (see $ETCD_DIR/e$idx.log)"
            "${BT[@]}" wait-etcd-healthy etcdctl "$EPS" 60 || die "round $r: cluster not healthy again"
        fi
        say "$sys $n nodes: round $r/$rounds done ($([[ $fault == kill ]] && echo killed || echo isolated) $name)"
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
    rc=0
    "${BT[@]}" gaps --fault "$fault" --quiet-ms "$quiet_ms" --json "$RUN/summary.jsonl" \
        "$sys" "$n" "$acks" "$kills" "$dir"/[ne][0-9].log >"$dir.gaps" || rc=$?
    cat "$dir.gaps" >&2
    ((rc == 0 || rc == 3)) || die "benchtool.py gaps failed for $sys $n nodes"
    ((rc == 0)) || NOT_ISOLATED+="${NOT_ISOLATED:+, }$sys $n nodes"
    tail -1 "$dir.gaps" >>"$SUMMARY"
}

say "$(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg); fault: $fault; output in $RUN"
for n in $sizes; do
    for sys in ddkv etcd; do
        want "$sys" && one_system "$sys" "$n"
    done
done
echo
cat "$SUMMARY"
[[ -z $NOT_ISOLATED ]] || die "rounds NOT ISOLATED (the leader kept acknowledging writes after its link went down) in: $NOT_ISOLATED; see the .gaps files in $RUN"
