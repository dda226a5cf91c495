#!/usr/bin/env bash
# A local ddkv cluster on loopback, for trying it and for tests by hand.
#
#   deploy/cluster.sh start [3|5]     start n1..nN in the background (idempotent)
#   deploy/cluster.sh status          one row per member (ddkv status) and their PIDs
#   deploy/cluster.sh stop            SIGTERM every member, wait for each to exit
#   deploy/cluster.sh kill NAME       SIGKILL one member (a crash)
#   deploy/cluster.sh pause NAME      SIGSTOP one member; resume NAME sends SIGCONT
#   deploy/cluster.sh restart NAME    start a stopped or killed member again
#   deploy/cluster.sh rejoin NAME     the way back for a member whose data is lost or damaged:
#                                     members remove, wipe its data dir, start it empty with
#                                     --join, members add (it catches up by snapshot)
#   deploy/cluster.sh endpoints       the client endpoints, for --endpoints
#   deploy/cluster.sh logs NAME       follow a member's log
#   deploy/cluster.sh tls-env         the DDKV_TLS_* exports a client needs (TLS clusters)
#
# DDKV_TLS=1 with start makes a TLS cluster: deploy/certs.sh puts a cluster CA,
# node and client certificates in the cluster dir's tls/ (kept across
# restarts), every member serves its client port with TLS and talks mutual TLS
# to its peers. The other commands see tls/ and follow. Clients then need
# --tls-ca (eval "$(deploy/cluster.sh tls-env)" sets it and the root client
# certificate for this shell).
#
# Member i (1-based) listens on 127.0.0.1: client 7000+i, peer 7100+i, ops
# HTTP 7200+i (DDKV_PORT_BASE moves the block: client BASE+i, peer BASE+100+i,
# HTTP BASE+200+i). Data, logs and PIDs live under var/cluster/ (DDKV_CLUSTER_DIR).
# The member count is remembered there, so stop/status/restart need no N, and so
# is the cluster's --cluster-token (random, made when the cluster is created), so
# two clusters made here never share a cluster id.
#
# Members on hosts of their own (bench/failover.sh --fault silent puts each in
# a network namespace), both printf formats in which %d is the member's index:
#   DDKV_MEMBER_HOST  the IPv4 address member i listens on and is reached at
#                     (client, peer and HTTP), e.g. 10.77.0.%d; default 127.0.0.1
#   DDKV_MEMBER_EXEC  a command prefix member i runs under, e.g.
#                     "ip netns exec fo%d" (it must exec the server, so the PID
#                     stays the server's); default none
# Given at start, each is remembered in the cluster dir like the member count,
# so the other commands (endpoints, status, restart, stop...) need them no more;
# given to a later command, it wins over the remembered one. (A TLS cluster
# there needs those addresses in its certificates: DDKV_CERT_IPS, deploy/certs.sh.)
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
DDKV=${DDKV_BIN:-$ROOT/build/ddkv}
DIR=${DDKV_CLUSTER_DIR:-$ROOT/var/cluster}
BASE=${DDKV_PORT_BASE:-7000}
TLSDIR=$DIR/tls

die() { echo "cluster.sh: $*" >&2; exit 2; }

members() { cat "$DIR/size" 2>/dev/null || echo 0; }
remembered() { cat "$DIR/$1" 2>/dev/null || true; }
HOST_FMT=${DDKV_MEMBER_HOST:-$(remembered member-host)}
HOST_FMT=${HOST_FMT:-127.0.0.1}
EXEC_FMT=${DDKV_MEMBER_EXEC:-$(remembered member-exec)}
# shellcheck disable=SC2059 # the formats are meant to be formats
member_host() { printf "$HOST_FMT" "$1"; }
client_addr() { echo "$(member_host "$1"):$((BASE + $1))"; }
peer_addr() { echo "$(member_host "$1"):$((BASE + 100 + $1))"; }
http_addr() { echo "$(member_host "$1"):$((BASE + 200 + $1))"; }
# The command prefix of member $1 (words split on blanks; none: empty).
# shellcheck disable=SC2059
member_exec() { [[ -z $EXEC_FMT ]] || printf "$EXEC_FMT" "$1"; }

spec() {
    local n=$1 s="" i
    for ((i = 1; i <= n; i++)); do s+="${s:+,}n$i=$(peer_addr "$i")"; done
    echo "$s"
}

# The cluster's token: made when the cluster is created, kept with the data
# (a cluster made before tokens existed has none, and keeps having none).
new_token() { (umask 077 && od -An -N16 -tx1 /dev/urandom | tr -d ' \n' >"$DIR/token"); }
# Handed over in the environment (DDKV_CLUSTER_TOKEN), not as a flag: it is
# the peer secret, and a command line is visible to everyone through ps.
token_env() { [[ -s $DIR/token ]] && echo "DDKV_CLUSTER_TOKEN=$(cat "$DIR/token")" || true; }

endpoints() {
    local n s="" i
    n=$(members)
    for ((i = 1; i <= n; i++)); do s+="${s:+,}$(client_addr "$i")"; done
    echo "$s"
}

tls_on() { [[ -f $TLSDIR/ca.pem ]]; }

# Flags of a client command run by this script.
client_flags() {
    tls_on && echo "--tls-ca $TLSDIR/ca.pem --tls-cert $TLSDIR/client-root.pem --tls-key $TLSDIR/client-root.key"
    return 0
}

# Whether PID runs: a process that exited but is not reaped yet (a zombie,
# until its parent or init collects it, which some inits do only every
# second or so) has stopped.
running() {
    kill -0 "$1" 2>/dev/null || return 1
    [[ $(awk '/^State:/ { print $2 }' "/proc/$1/status" 2>/dev/null) != Z ]]
}

pid_of() {
    local f="$DIR/$1.pid"
    [[ -f $f ]] || return 1
    local pid
    pid=$(cat "$f")
    running "$pid" || return 1
    # The PID must still be our node, not a recycled number.
    grep -q "ddkv" "/proc/$pid/cmdline" 2>/dev/null || return 1
    echo "$pid"
}

index_of() {
    [[ $1 =~ ^n([0-9]+)$ ]] || die "no member named '$1' (names are n1..nN)"
    local i=${BASH_REMATCH[1]}
    ((i >= 1 && i <= $(members))) || die "no member named '$1' in this ${DIR##*/} of $(members)"
    echo "$i"
}

start_one() {
    local i=$1 n
    shift
    n=$(members)
    if pid_of "n$i" >/dev/null; then
        echo "n$i already running (pid $(pid_of "n$i"))"
        return 0
    fi
    mkdir -p "$DIR"
    local tls=() pre=()
    tls_on && tls=(--tls-cert "$TLSDIR/n$i.pem" --tls-key "$TLSDIR/n$i.key" --tls-ca "$TLSDIR/ca.pem")
    read -ra pre <<<"$(member_exec "$i")"
    # A shell set up for a TLS client (DDKV_TLS_CERT is then the client's
    # certificate) must not hand its settings to the nodes.
    env -u DDKV_TLS_CERT -u DDKV_TLS_KEY -u DDKV_TLS_CA -u DDKV_PEER_TLS -u DDKV_CLUSTER_TOKEN $(token_env) \
        "${pre[@]}" "$DDKV" serve --name "n$i" --data-dir "$DIR/n$i" \
        --client-addr "$(client_addr "$i")" --peer-addr "$(peer_addr "$i")" \
        --http-addr "$(http_addr "$i")" --cluster "$(spec "$n")" "${tls[@]}" "$@" \
        >>"$DIR/n$i.log" 2>&1 </dev/null &
    echo $! >"$DIR/n$i.pid"
    # Up when it logs its client port (or gone if it refused to start).
    local t
    for ((t = 0; t < 100; t++)); do
        if grep -q "client listening on" "$DIR/n$i.log" 2>/dev/null &&
            [[ $(grep -c "client listening on" "$DIR/n$i.log") -ge $(grep -c "^=== start" "$DIR/n$i.log") ]]; then
            echo "n$i started (pid $!, client $(client_addr "$i"), http $(http_addr "$i"))"
            return 0
        fi
        running $! || { tail -5 "$DIR/n$i.log" >&2; die "n$i did not start"; }
        sleep 0.1
    done
    die "n$i did not report its port within 10 s (see $DIR/n$i.log)"
}

mark_start() { echo "=== start $(date -u +%FT%TZ)" >>"$DIR/n$1.log"; }

cmd=${1:-}
case $cmd in
start)
    n=${2:-3}
    [[ $n == 3 || $n == 5 || $n == 1 ]] || die "start takes 1, 3 or 5 members"
    [[ -x $DDKV ]] || die "no ddkv binary at $DDKV (build first: scripts/build.sh release)"
    mkdir -p "$DIR"
    old=$(members)
    if ((old != 0 && old != n)); then
        die "$DIR holds a cluster of $old; stop it and remove $DIR to start one of $n"
    fi
    ((old != 0)) || new_token
    echo "$n" >"$DIR/size"
    if [[ -n ${DDKV_MEMBER_HOST:-} ]]; then echo "$DDKV_MEMBER_HOST" >"$DIR/member-host"; fi
    if [[ -n ${DDKV_MEMBER_EXEC:-} ]]; then echo "$DDKV_MEMBER_EXEC" >"$DIR/member-exec"; fi
    if [[ ${DDKV_TLS:-0} == 1 ]]; then
        names=()
        for ((i = 1; i <= n; i++)); do names+=("n$i"); done
        "$ROOT/deploy/certs.sh" "$TLSDIR" "${names[@]}" >/dev/null
        echo "TLS: certificates in $TLSDIR (clients: eval \"\$($0 tls-env)\")"
    elif tls_on; then
        die "$DIR holds a TLS cluster; start it with DDKV_TLS=1 (or remove $DIR)"
    fi
    for ((i = 1; i <= n; i++)); do mark_start "$i"; start_one "$i"; done
    # Wait for a leader, so the first command a user types just works.
    for ((t = 0; t < 100; t++)); do
        # shellcheck disable=SC2046
        if "$DDKV" ping --endpoints "$(endpoints)" --timeout-ms 500 $(client_flags) 2>/dev/null | grep -q "leader n"; then
            # shellcheck disable=SC2046
            "$DDKV" ping --endpoints "$(endpoints)" --timeout-ms 1000 $(client_flags)
            exit 0
        fi
        sleep 0.1
    done
    die "no leader after 10 s; see the logs in $DIR"
    ;;
stop)
    n=$(members)
    # The hub and agent scripts/start.sh runs beside the nodes, first.
    for p in agent hub; do
        f="$DIR/$p.pid"
        [[ -f $f ]] || continue
        pid=$(cat "$f")
        kill -TERM "$pid" 2>/dev/null || true
        for ((t = 0; t < 50; t++)); do running "$pid" || break; sleep 0.1; done
        kill -KILL "$pid" 2>/dev/null || true
        rm -f "$f"
        echo "$p stopped"
    done
    for ((i = 1; i <= n; i++)); do
        if pid=$(pid_of "n$i"); then
            kill -CONT "$pid" 2>/dev/null || true
            kill -TERM "$pid"
        fi
    done
    for ((i = 1; i <= n; i++)); do
        f="$DIR/n$i.pid"
        [[ -f $f ]] || continue
        pid=$(cat "$f")
        for ((t = 0; t < 100; t++)); do running "$pid" || break; sleep 0.1; done
        if running "$pid"; then kill -KILL "$pid"; echo "n$i killed (did not stop in 10 s)"; fi
        rm -f "$f"
        echo "n$i stopped"
    done
    ;;
status)
    n=$(members)
    ((n > 0)) || die "no cluster in $DIR (start one: deploy/cluster.sh start 3)"
    for ((i = 1; i <= n; i++)); do
        if pid=$(pid_of "n$i"); then
            state=$(awk '/^State:/ {print $2}' "/proc/$pid/status")
            echo "n$i pid $pid ($( [[ $state == T ]] && echo paused || echo running ))"
        else
            echo "n$i down"
        fi
    done
    # shellcheck disable=SC2046
    "$DDKV" status --endpoints "$(endpoints)" --timeout-ms 2000 $(client_flags) || true
    ;;
kill)
    i=$(index_of "${2:-}")
    pid=$(pid_of "n$i") || die "n$i is not running"
    kill -KILL "$pid"
    # SIGKILL is delivered at once, but the process is gone (its files,
    # the data dir's lock among them, closed) only a moment later: wait
    # for it, so a command after this one finds the data dir free. A
    # zombie counts as gone: its files are closed already. A process in
    # the middle of an fsync dies only once it returns: up to 30 s.
    for ((t = 0; t < 600; t++)); do
        st=$(awk '{print $3}' "/proc/$pid/stat" 2>/dev/null) || break
        [[ -z $st || $st == Z ]] && break
        sleep 0.05
    done
    rm -f "$DIR/n$i.pid"
    echo "n$i killed (pid $pid)"
    ;;
pause | resume)
    i=$(index_of "${2:-}")
    pid=$(pid_of "n$i") || die "n$i is not running"
    kill "-$([[ $cmd == pause ]] && echo STOP || echo CONT)" "$pid"
    echo "n$i ${cmd}d (pid $pid)"
    ;;
restart)
    i=$(index_of "${2:-}")
    if pid=$(pid_of "n$i"); then
        kill -TERM "$pid"
        for ((t = 0; t < 100; t++)); do running "$pid" || break; sleep 0.1; done
    fi
    mark_start "$i"
    start_one "$i"
    ;;
rejoin)
    # A member whose data dir was lost, wiped or damaged is refused by the
    # others (its data dir is not the one the cluster knows: it may have
    # forgotten its vote). The way back: remove it, start it on an empty data
    # dir as a joiner, add it again; it catches up as a learner and is
    # promoted to voter once it has.
    i=$(index_of "${2:-}")
    # shellcheck disable=SC2046
    "$DDKV" members remove "n$i" --endpoints "$(endpoints)" --timeout-ms 10000 $(client_flags) >/dev/null 2>&1 ||
        echo "n$i was not a member (or the removal failed: see 'status')" >&2
    if pid=$(pid_of "n$i"); then kill -KILL "$pid"; fi
    rm -f "$DIR/n$i.pid"
    rm -rf "${DIR:?}/n$i"
    mark_start "$i"
    start_one "$i" --join
    # shellcheck disable=SC2046
    "$DDKV" members add "n$i" "$(peer_addr "$i")" --endpoints "$(endpoints)" --timeout-ms 10000 $(client_flags) >/dev/null ||
        die "members add n$i failed"
    echo "n$i rejoined as a learner; it becomes a voter once caught up"
    ;;
endpoints)
    endpoints
    ;;
tls-env)
    tls_on || die "no TLS cluster in $DIR (start one: DDKV_TLS=1 deploy/cluster.sh start 3)"
    echo "export DDKV_TLS_CA=$TLSDIR/ca.pem DDKV_TLS_CERT=$TLSDIR/client-root.pem DDKV_TLS_KEY=$TLSDIR/client-root.key"
    ;;
logs)
    i=$(index_of "${2:-}")
    exec tail -f "$DIR/n$i.log"
    ;;
*)
    sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'
    [[ -z $cmd || $cmd == help || $cmd == -h || $cmd == --help ]] && exit 0
    exit 2
    ;;
esac
