#!/usr/bin/env bash
# TLS: a 3-node cluster with mutual TLS between peers (deploy/cluster.sh with
# DDKV_TLS=1, certificates by deploy/certs.sh) serves the CLI and the bench; a
# node whose certificate comes from another CA cannot join; plain TCP on a TLS
# port, a TLS client on a plain port, garbage and silence are refused cleanly
# and the nodes keep serving; a client port that requires client certificates
# admits exactly the clients with one from the cluster CA.
source "$(dirname "$0")/lib.sh"

DDKV_TLS=1 start_cluster 3
CDIR=$WORK/cluster
CA=$CDIR/tls/ca.pem
T=(--tls-ca "$CA")
ep() { echo "127.0.0.1:$((DDKV_PORT_BASE + $1))"; }
peer_ep() { echo "127.0.0.1:$((DDKV_PORT_BASE + 100 + $1))"; }

# --- certs.sh: the files, and a second run keeps the CA ---
for f in ca.pem ca.key n1.pem n1.key n2.pem n3.pem client-root.pem client-root.key; do
  [ -s "$CDIR/tls/$f" ] || fail "deploy/certs.sh did not make $f"
done
[ "$(stat -c %a "$CDIR/tls/n1.key")" = 600 ] || fail "node key is not private (mode $(stat -c %a "$CDIR/tls/n1.key"))"
openssl x509 -in "$CDIR/tls/n2.pem" -noout -ext subjectAltName,extendedKeyUsage | tr -d ' ' >"$WORK/ext"
grep -q "IPAddress:127.0.0.1" "$WORK/ext" && grep -q "TLSWebServerAuthentication,TLSWebClientAuthentication" "$WORK/ext" ||
  fail "node certificate lacks the loopback SAN or an EKU: $(cat "$WORK/ext")"
sum=$(sha256sum <"$CA")
"$ROOT/deploy/certs.sh" "$CDIR/tls" n1 >"$WORK/certs.out"
[ "$(sha256sum <"$CA")" = "$sum" ] || fail "a second certs.sh run replaced the CA"
grep -q "left alone" "$WORK/certs.out" || fail "a second certs.sh run remade n1's certificate"
pass "deploy/certs.sh: CA, node and client certificates; a second run keeps them"

# --- the CLI over TLS, and a write reaches every member ---
expect_exit 0 "$DDKV" write greeting hello --endpoints "$EP" "${T[@]}"
[[ $OUT == "written at "* ]] || fail "write over TLS printed '$OUT'"
expect_exit 0 "$DDKV" read greeting --endpoints "$EP" "${T[@]}"
[ "$OUT" = hello ] || fail "read over TLS gave '$OUT'"
expect_exit 0 "$DDKV" list gr --endpoints "$EP" "${T[@]}"
[ "$OUT" = "greeting	hello" ] || fail "list over TLS gave '$OUT'"
for i in 1 2 3; do
  for _ in $(seq 50); do
    got=$("$DDKV" read greeting --consistency stale --endpoints "$(ep "$i")" "${T[@]}" 2>/dev/null || true)
    [ "$got" = hello ] && break
    sleep 0.1
  done
  [ "$got" = hello ] || fail "n$i did not receive the write over its TLS peer links (stale read: '$got')"
done
expect_exit 0 "$DDKV" status --endpoints "$EP" "${T[@]}" -o json
[ "$(grep -c '"healthy": *true' <<<"$OUT")" = 3 ] || fail "status over TLS: not 3 healthy members: $OUT"
expect_exit 0 "$ROOT/deploy/cluster.sh" status
grep -q "n3 .*yes" <<<"$OUT" || fail "cluster.sh status in TLS mode: $OUT"
pass "write, read, list, status over TLS; the write replicated to all 3 over mutual TLS"

expect_exit 0 "$DDKV" bench --workload write --ops 300 --clients 4 --endpoints "$EP" "${T[@]}" -o json
grep -q '"errors": *0' <<<"$OUT" || fail "bench over TLS: $OUT"
pass "ddkv bench over TLS"

# --- plain TCP on TLS ports ---
expect_exit 3 "$DDKV" ping --endpoints "$(ep 1)" --timeout-ms 1500
grep -q "speaks TLS" <<<"$ERR" || fail "plain ping on a TLS port: unclear message: $ERR"
expect_exit 3 "$DDKV" write plain nope --endpoints "$(ep 1)" --timeout-ms 1500
grep -q "speaks TLS" <<<"$ERR" && ! grep -q "outcome" <<<"$ERR" ||
  fail "plain write on a TLS port must fail as refused, not unknown: $ERR"
python3 - "$(ep 1)" "$(peer_ep 2)" <<'PY' || fail "garbage on a TLS port was not closed"
import socket, sys
for target in sys.argv[1:]:
    host, port = target.rsplit(":", 1)
    for junk in (b"GET / HTTP/1.0\r\n\r\n", b"\x00\x00\x00\x05hello" * 50, b"\x16\x03\x01\x00\x10" + b"x" * 16):
        s = socket.create_connection((host, int(port)), timeout=5)
        s.sendall(junk)
        try:
            while s.recv(4096):
                pass
        except ConnectionResetError:
            pass
        s.close()
PY
grep -q "TLS handshake failed" "$CDIR/n1.log" || fail "n1 did not log the refused handshakes"
grep -q "peer conn from .*TLS handshake failed" "$CDIR/n2.log" || fail "n2 did not log the refused peer handshake"
expect_exit 0 "$DDKV" write after garbage --endpoints "$EP" "${T[@]}"
failures=$(metric_value "127.0.0.1:$((DDKV_PORT_BASE + 201))" ddkv_tls_handshake_failures_total)
[ "${failures:-0}" -ge 3 ] || fail "ddkv_tls_handshake_failures_total on n1 is '$failures'"
pass "plain TCP and garbage on the TLS client and peer ports refused; the cluster serves on"

# --- a node with a certificate from another CA cannot join ---
"$ROOT/deploy/certs.sh" "$WORK/other" n4 >/dev/null
start_node n4 "$WORK/n4" --peer-addr 127.0.0.1:0 --join \
  --tls-cert "$WORK/other/n4.pem" --tls-key "$WORK/other/n4.key" --tls-ca "$WORK/other/ca.pem"
wait_log n4 "peer listening on 127.0.0.1:[0-9]+" 10
N4_PEER=$(grep -o 'peer listening on 127.0.0.1:[0-9]*' "$WORK/n4.log" | head -1 | awk '{print $4}')
expect_exit 0 "$DDKV" members add n4 "$N4_PEER" --endpoints "$EP" "${T[@]}"
sleep 4
expect_exit 0 "$DDKV" status --endpoints "127.0.0.1:$PORT_n4" --tls-ca "$WORK/other/ca.pem" -o json
grep -q '"applied": *0' <<<"$OUT" || fail "n4 (another CA) received entries: $OUT"
refusals=$(cat "$CDIR"/n[123].log | grep -c "at $N4_PEER: TLS handshake failed: certificate verify failed" || true)
[ "$refusals" -ge 1 ] || fail "no member logged n4's certificate as refused: $(grep -h "$N4_PEER" "$CDIR"/n*.log | tail -3)"
[ "$refusals" -le 20 ] || fail "n4 refused $refusals times in 4 s: the dialler does not back off"
grep -q "TLS handshake failed" "$WORK/n4.log" || fail "n4 did not log the members' refused handshakes"
expect_exit 0 "$DDKV" status --endpoints "$EP" "${T[@]}" -o json
grep -q '"name": *"n4"' <<<"$OUT" && grep -q '"learner"' <<<"$OUT" || fail "n4 should be a learner that never catches up: $OUT"
expect_exit 0 "$DDKV" write still works --endpoints "$EP" "${T[@]}"
pass "a node certified by another CA is refused by every member ($refusals refusals in 4 s, with backoff)"

# --- a TLS client on a plain port; a silent client on a TLS port ---
start_node plain "$WORK/plain"
expect_exit 3 "$DDKV" ping --endpoints "127.0.0.1:$PORT_plain" "${T[@]}" --timeout-ms 1000
grep -q "TLS handshake with .* failed" <<<"$ERR" || fail "TLS ping on a plain port: unclear message: $ERR"
expect_exit 0 "$DDKV" ping --endpoints "127.0.0.1:$PORT_plain"
pass "a TLS client on a plain port fails with a clear message; the node serves on"

# --- client certificates required ---
TLSDIR=$CDIR/tls
start_node req "$WORK/req" --tls-cert "$TLSDIR/n1.pem" --tls-key "$TLSDIR/n1.key" --tls-ca "$CA" \
  --tls-client-cert required --frame-timeout-ms 1000
RQ=127.0.0.1:$PORT_req
expect_exit 3 "$DDKV" write k v --endpoints "$RQ" "${T[@]}" --timeout-ms 1500
grep -q "certificate required" <<<"$ERR" && ! grep -q outcome <<<"$ERR" ||
  fail "no client certificate: want a refusal naming it: $ERR"
"$ROOT/deploy/certs.sh" "$WORK/other" --client intruder >/dev/null
expect_exit 3 "$DDKV" ping --endpoints "$RQ" "${T[@]}" --timeout-ms 1500 \
  --tls-cert "$WORK/other/client-intruder.pem" --tls-key "$WORK/other/client-intruder.key"
expect_exit 0 "$DDKV" write k v --endpoints "$RQ" "${T[@]}" \
  --tls-cert "$TLSDIR/client-root.pem" --tls-key "$TLSDIR/client-root.key"
DDKV_TLS_CA=$CA DDKV_TLS_CERT=$TLSDIR/client-root.pem DDKV_TLS_KEY=$TLSDIR/client-root.key \
  expect_exit 0 "$DDKV" read k --endpoints "$RQ"
[ "$OUT" = v ] || fail "read with TLS settings from the environment gave '$OUT'"
sleep 1.1 # past the node's one-line-a-second limit on handshake failure logs
ms=$(python3 - "$RQ" <<'PY'
import socket, sys, time
host, port = sys.argv[1].rsplit(":", 1)
s = socket.create_connection((host, int(port)), timeout=10)
t0 = time.monotonic()
assert s.recv(100) == b""
print(int((time.monotonic() - t0) * 1000))
PY
) || fail "a silent connection to a TLS port was not dropped"
[ "$ms" -lt 5000 ] || fail "a silent connection was dropped after $ms ms, want about --frame-timeout-ms (1000)"
grep -q "TLS handshake failed: not completed within 1000 ms" "$WORK/req.log" || fail "the silent connection's drop was not logged"
pass "client certificates required: none and another CA's refused, the cluster CA's accepted; silence dropped after ${ms} ms"

# --- with auth enabled, a client certificate logs its connection in as the
# user its common name names (client-root: user root), with no password ---
RC=(--tls-cert "$TLSDIR/client-root.pem" --tls-key "$TLSDIR/client-root.key")
expect_exit 0 "$DDKV" user add root --new-password "root-pw-$$" --endpoints "$EP" "${T[@]}"
expect_exit 0 "$DDKV" user grant root root --endpoints "$EP" "${T[@]}"
expect_exit 0 "$DDKV" auth enable --endpoints "$EP" "${T[@]}"
expect_exit 2 "$DDKV" read greeting --endpoints "$EP" "${T[@]}"
expect_exit 0 "$DDKV" read greeting --endpoints "$EP" "${T[@]}" "${RC[@]}"
[ "$OUT" = hello ] || fail "read as the certificate's user gave '$OUT'"
expect_exit 0 "$DDKV" write by-cert yes --endpoints "$EP" "${T[@]}" "${RC[@]}"
expect_exit 0 "$DDKV" auth disable --endpoints "$EP" "${T[@]}" "${RC[@]}"
pass "auth enabled: no certificate and no password refused (exit 2); the client-root certificate acts as root"

echo "all $PASSED TLS checks passed"
