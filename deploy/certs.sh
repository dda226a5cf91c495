#!/usr/bin/env bash
# Certificates for a ddkv cluster, made with the openssl command.
#
#   deploy/certs.sh [options] DIR [NODE...]     (nodes default to n1 n2 n3)
#
# Makes, in DIR:
#   ca.pem, ca.key            the cluster CA (give ca.pem to every node and client as --tls-ca)
#   NODE.pem, NODE.key        one per node (--tls-cert, --tls-key): CN=NODE, good for both
#                             serverAuth (its ports) and clientAuth (dialling its peers),
#                             SAN IP:127.0.0.1, DNS:localhost, DNS:NODE and the extras below
#   client-NAME.pem, .key     one per client (--tls-cert, --tls-key of the CLI, hub, agent):
#                             CN=NAME (default: root), clientAuth only
#
# Options:
#   --ip ADDR       add IP:ADDR to every node certificate (repeatable; env DDKV_CERT_IPS=a,b)
#   --dns NAME      add DNS:NAME to every node certificate (repeatable; env DDKV_CERT_DNS=a,b)
#   --client NAME   make a client certificate for NAME (repeatable; default root)
#   --days N        validity of node and client certificates (default 825; the CA: 3650)
#   --force         make a new CA (and every certificate named) even if DIR has one
#
# Run again with more names to add nodes or clients: the existing CA signs them,
# and existing certificates are left alone. A node's CN must be its --name: a
# member accepts a peer's messages only from the member its certificate names.
#
# Keys are ECDSA P-256: handshakes cost a fraction of RSA 2048's (signing is
# ~20x cheaper), keys and certificates are small, and every TLS 1.2/1.3 client
# in use supports it.
set -euo pipefail

die() { echo "certs.sh: $*" >&2; exit 2; }
usage() { sed -n '2,25p' "$0" | sed 's/^# \{0,1\}//'; exit "${1:-2}"; }

IPS=() DNS=() CLIENTS=() DAYS=825 FORCE=0 ARGS=()
[[ -n ${DDKV_CERT_IPS:-} ]] && IFS=, read -r -a IPS <<<"$DDKV_CERT_IPS"
[[ -n ${DDKV_CERT_DNS:-} ]] && IFS=, read -r -a DNS <<<"$DDKV_CERT_DNS"
while (($#)); do
    case $1 in
    --ip) IPS+=("${2:?--ip needs an address}"); shift 2 ;;
    --dns) DNS+=("${2:?--dns needs a name}"); shift 2 ;;
    --client) CLIENTS+=("${2:?--client needs a name}"); shift 2 ;;
    --days) DAYS=${2:?--days needs a number}; shift 2 ;;
    --force) FORCE=1; shift ;;
    -h | --help) usage 0 ;;
    -*) die "unknown option $1" ;;
    *) ARGS+=("$1"); shift ;;
    esac
done
((${#ARGS[@]} >= 1)) || usage
DIR=${ARGS[0]}
NODES=("${ARGS[@]:1}")
((${#NODES[@]} > 0)) || NODES=(n1 n2 n3)
((${#CLIENTS[@]} > 0)) || CLIENTS=(root)
[[ $DAYS =~ ^[0-9]+$ ]] && ((DAYS > 0)) || die "--days wants a positive number"
command -v openssl >/dev/null || die "the openssl command is missing (apt-get install openssl)"
for n in "${NODES[@]}" "${CLIENTS[@]}"; do
    [[ $n =~ ^[A-Za-z0-9._-]{1,63}$ ]] || die "'$n' is not a usable name (letters, digits, . _ -; at most 63)"
done

mkdir -p "$DIR"
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
umask 077

# A fresh P-256 key and a certificate signed by the CA: NAME, FILE stem, extensions.
issue() {
    local cn=$1 stem=$2 ext=$3
    printf '%s\n' "$ext" >"$TMP/ext.cnf"
    openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj "/CN=$cn" \
        -keyout "$TMP/key.pem" -out "$TMP/req.csr" 2>"$TMP/err" || { cat "$TMP/err" >&2; die "key for $cn"; }
    openssl x509 -req -in "$TMP/req.csr" -CA "$DIR/ca.pem" -CAkey "$DIR/ca.key" \
        -set_serial "0x$(openssl rand -hex 16)" -days "$DAYS" -sha256 \
        -extfile "$TMP/ext.cnf" -extensions v3 -out "$TMP/cert.pem" 2>"$TMP/err" ||
        { cat "$TMP/err" >&2; die "certificate for $cn"; }
    install -m 0600 "$TMP/key.pem" "$DIR/$stem.key"
    install -m 0644 "$TMP/cert.pem" "$DIR/$stem.pem"
}

if [[ -e $DIR/ca.pem || -e $DIR/ca.key ]] && ((!FORCE)); then
    [[ -f $DIR/ca.pem && -f $DIR/ca.key ]] || die "$DIR has half a CA (ca.pem or ca.key missing); --force makes a new one"
    echo "using the existing CA in $DIR (--force makes a new one)"
else
    cat >"$TMP/ca.cnf" <<'EOF'
[req]
distinguished_name = dn
x509_extensions = v3
prompt = no
[dn]
CN = ddkv cluster CA
[v3]
basicConstraints = critical, CA:TRUE, pathlen:0
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash
EOF
    openssl req -x509 -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 3650 -sha256 \
        -config "$TMP/ca.cnf" -keyout "$TMP/ca.key" -out "$TMP/ca.pem" 2>"$TMP/err" ||
        { cat "$TMP/err" >&2; die "making the CA"; }
    install -m 0600 "$TMP/ca.key" "$DIR/ca.key"
    install -m 0644 "$TMP/ca.pem" "$DIR/ca.pem"
    FORCE_LEAVES=1
    echo "made a cluster CA: $DIR/ca.pem (keep $DIR/ca.key safe: it admits nodes)"
fi

san_of() {
    local s="IP:127.0.0.1,DNS:localhost,DNS:$1" x
    for x in "${IPS[@]}"; do s+=",IP:$x"; done
    for x in "${DNS[@]}"; do s+=",DNS:$x"; done
    echo "$s"
}

for n in "${NODES[@]}"; do
    if [[ -f $DIR/$n.pem && -z ${FORCE_LEAVES:-} ]]; then
        echo "node $n: $DIR/$n.pem exists, left alone"
        continue
    fi
    issue "$n" "$n" "[v3]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature
extendedKeyUsage = serverAuth, clientAuth
subjectAltName = $(san_of "$n")
authorityKeyIdentifier = keyid"
    echo "node $n: $DIR/$n.pem, $DIR/$n.key ($(san_of "$n"))"
done

for c in "${CLIENTS[@]}"; do
    if [[ -f $DIR/client-$c.pem && -z ${FORCE_LEAVES:-} ]]; then
        echo "client $c: $DIR/client-$c.pem exists, left alone"
        continue
    fi
    issue "$c" "client-$c" "[v3]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature
extendedKeyUsage = clientAuth
authorityKeyIdentifier = keyid"
    echo "client $c: $DIR/client-$c.pem, $DIR/client-$c.key"
done
