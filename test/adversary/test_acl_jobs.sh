#!/usr/bin/env bash
# Issue 22, findings 7 and 10 (node side): privilege through the job queue,
# and client numbers and texts in job messages.
#  7. A job's result lives at jobresult/<id>: a worker's ack naming any other
#     key (a secret it may neither read nor write) is refused BAD_REQUEST, and
#     the job record never points there; a worker that may not write the
#     result space cannot complete a job or store a result (PERMISSION_DENIED,
#     nothing written); a job's input must be under jobdata/.
# 10. JOB_PUT (and the other job messages) with extreme numbers (client id
#     2^62, seq 2^62, 2^64-1, negatives) and texts jansson cannot encode
#     (invalid UTF-8, control characters) are answered, never INTERNAL: two
#     sessions' jobs never share an id, bad fields are BAD_REQUEST, and the
#     node keeps serving.
source "$(dirname "$0")/../cli/lib.sh"
export DDKV_AUTH_HASH_ITERATIONS=10000 # as test/cli/test_auth.sh: PBKDF2 is slow under ASan
start_cluster 3
D() { "$DDKV" "$@" --endpoints "$EP"; }
AS_ROOT=(--user root --password rootpw)

expect_exit 0 D user add root --new-password rootpw
expect_exit 0 D user grant root root
expect_exit 0 D role add worker
expect_exit 0 D role add weak
for p in jobs/ jobq/ jobc/; do
  expect_exit 0 D role grant worker "$p" readwrite
  expect_exit 0 D role grant weak "$p" readwrite
done
expect_exit 0 D role grant worker jobresult/ readwrite
expect_exit 0 D role grant worker jobdata/ read
expect_exit 0 D role grant weak jobdata/ read
expect_exit 0 D user add worker --new-password workerpw
expect_exit 0 D user grant worker worker
expect_exit 0 D user add weak --new-password weakpw
expect_exit 0 D user grant weak weak
expect_exit 0 D write secret/token s3cret-value
expect_exit 0 D auth enable
pass "auth on: worker may write jobresult/, weak may not; secret/token is root's"

cat >"$WORK/jobs.py" <<'PY'
import importlib.util, json, sys
spec = importlib.util.spec_from_file_location("w", sys.argv[2]); w = importlib.util.module_from_spec(spec)
spec.loader.exec_module(w)
JOB_PUT, JOB_CLAIM, JOB_ACK, JOB_NACK, JOB_EXTEND, READ, WRITE, PING = 27, 29, 31, 32, 33, 4, 6, 2
root = w.Cluster(sys.argv[1], "root", "rootpw")
worker = w.Cluster(sys.argv[1], "worker", "workerpw")
weak = w.Cluster(sys.argv[1], "weak", "weakpw")
bad = []

def check(what, got, want):
    d = w.describe(got)
    ok = d[:2] == want if want[0] == "ERROR" else d[0] == want[0]
    print(("ok    " if ok else "WRONG ") + what + ": " + json.dumps(d)[:160])
    if not ok:
        bad.append(what)
    return d

def read(key):
    r = root.call(READ, key)
    return w.text(r[4]) if r[0] == 5 else None

def put(data, name=b"job"):
    d = check("put " + data.decode(), root.call(JOB_PUT, data, 3, 0, 0, name), [28])
    return d[1].encode()

# --- finding 7 ---
id1 = put(b"jobdata/t1/")
d = check("worker claims", worker.call(JOB_CLAIM, b"w1", 60000), [30])
assert d[1].encode() == id1, d
tok1 = d[2]
check("ack naming secret/token, no result", worker.call(JOB_ACK, id1, tok1, b"secret/token", 0, 0),
      ["ERROR", "BAD_REQUEST"])
check("ack naming secret/token with a result", worker.call(JOB_ACK, id1, tok1, b"secret/token", 0, 0, b"pwned"),
      ["ERROR", "BAD_REQUEST"])
check("ack naming jobresult/ of another job", worker.call(JOB_ACK, id1, tok1, b"jobresult/other", 0, 0, b"x"),
      ["ERROR", "BAD_REQUEST"])
rec = read(b"jobs/" + id1)
print("job record after the refused acks:", rec)
if read(b"secret/token") != "s3cret-value" or "secret" in rec or '"claimed"' not in rec:
    bad.append("the secret changed or the job points at it")
if read(b"jobresult/other") is not None:
    bad.append("jobresult/other written")

id2 = put(b"jobdata/t2/")
d = check("weak claims", weak.call(JOB_CLAIM, b"w2", 60000), [30])
assert d[1].encode() == id2, d
tok2 = d[2]
check("weak acks with its result", weak.call(JOB_ACK, id2, tok2, b"jobresult/" + id2, 0, 0, b"weak's"),
      ["ERROR", "PERMISSION_DENIED"])
check("weak acks naming the result key only", weak.call(JOB_ACK, id2, tok2, b"jobresult/" + id2, 0, 0),
      ["ERROR", "PERMISSION_DENIED"])
check("weak acks naming no key", weak.call(JOB_ACK, id2, tok2, b"", 0, 0), ["ERROR", "PERMISSION_DENIED"])
if read(b"jobresult/" + id2) is not None or '"claimed"' not in read(b"jobs/" + id2):
    bad.append("weak's ack changed something")
check("weak gives it back", weak.call(JOB_NACK, id2, tok2, b"cannot store results", 0, 0), [34])

check("worker acks with its result", worker.call(JOB_ACK, id1, tok1, b"jobresult/" + id1, 0, 0, b"42"), [34])
rec = read(b"jobs/" + id1)
if read(b"jobresult/" + id1) != "42" or ('"result":"jobresult/%s"' % id1.decode()) not in rec or '"done"' not in rec:
    bad.append("the holder's result: " + rec)
check("input outside jobdata/", root.call(JOB_PUT, b"secret/", 3, 0, 0, b"x"), ["ERROR", "BAD_REQUEST"])

# --- finding 10: numbers and texts from the client ---
c62 = 1 << 62
a = check("client id 2^62, seq 2^62", root.call(JOB_PUT, b"jobdata/n/", 3, c62, c62), [28])
b = check("client id 2^62, seq 2^62+1", root.call(JOB_PUT, b"jobdata/n/", 3, c62, c62 + 1), [28])
if a[0] == 28 and b[0] == 28 and a[1] == b[1]:
    bad.append("two writes of one session got the same job id")
check("client id 2^64-1, seq 2^64-1", root.call(JOB_PUT, b"jobdata/n/", 3, (1 << 64) - 1, (1 << 64) - 1), [28])
check("client id 2^62, seq 1 (older: stale)", root.call(JOB_PUT, b"jobdata/n/", 3, c62, 1),
      ["ERROR", "BAD_REQUEST"])
for what, fields in [
        ("data key not UTF-8", [b"jobdata/\xff\xfe/", 3, 7, 1]),
        ("name not UTF-8", [b"jobdata/n/", 3, 7, 2, b"\xff\xfe"]),
        ("name with an escape sequence", [b"jobdata/n/", 3, 7, 3, b"\x1b[2J\x1b]0;owned\x07"]),
        ("name with a C1 control (CSI)", [b"jobdata/n/", 3, 7, 9, "\u009b31m".encode()]),
        ("max_attempts 2^64-1", [b"jobdata/n/", (1 << 64) - 1, 7, 4]),
        ("max_attempts 0", [b"jobdata/n/", 0, 7, 5]),
        ("client id -1", [b"jobdata/n/", 3, -1, 6]),
        ("seq -2^63", [b"jobdata/n/", 3, 7, -(1 << 63)]),
        ("data key of 300 bytes", [b"jobdata/" + b"a" * 292, 3, 7, 8])]:
    check("JOB_PUT " + what, root.call(JOB_PUT, *fields), ["ERROR", "BAD_REQUEST"])
check("JOB_CLAIM worker with control bytes", worker.call(JOB_CLAIM, b"w\x1b[31m", 1000), ["ERROR", "BAD_REQUEST"])
check("JOB_CLAIM visibility 2^64-1", worker.call(JOB_CLAIM, b"w", (1 << 64) - 1), ["ERROR", "BAD_REQUEST"])
check("JOB_ACK id ../secret", root.call(JOB_ACK, b"../secret", 1, b""), ["ERROR", "BAD_REQUEST"])
check("JOB_ACK token -1", root.call(JOB_ACK, id2, -1, b""), ["ERROR", "BAD_REQUEST"])
check("JOB_NACK reason not UTF-8", root.call(JOB_NACK, id2, 1, b"\xff"), ["ERROR", "BAD_REQUEST"])
check("JOB_EXTEND visibility 2^63", root.call(JOB_EXTEND, id2, 1, 1 << 63), ["ERROR", "BAD_REQUEST"])
check("ping", root.call(PING), [3])
check("a write", root.call(WRITE, b"after", b"ok"), [7])
if bad:
    print("FAILED:", bad)
    sys.exit(1)
PY
set +e
OUT=$(python3 "$WORK/jobs.py" "$EP" "$(dirname "$0")/acl_wire.py" 2>&1)
rc=$?
set -e
printf '%s\n' "$OUT"
[ $rc = 0 ] || fail "the job queue let a worker through (above)"
expect_exit 0 D read secret/token "${AS_ROOT[@]}"
[ "$OUT" = s3cret-value ] || fail "secret/token: $OUT"
for i in 1 2 3; do expect_exit 0 "$DDKV" ping --endpoints "127.0.0.1:$((DDKV_PORT_BASE + i))"; done
pass "acks naming keys outside jobresult/<id> refused, the secret unchanged; a worker without write on jobresult/ cannot complete a job; bad numbers and texts are BAD_REQUEST, every member serving"

# --- where the secret was served: a hub running as root, and `ddkv job get`
# as root, follow a job record's "result" only to that job's own result key.
# (A worker may write job records by hand: it has readwrite on jobs/.) ---
HUB=127.0.0.1:$((DDKV_PORT_BASE + 80))
DDKV_USER=root DDKV_PASSWORD=rootpw "$DDKV" hub --endpoints "$EP" --http-addr "$HUB" --web-dir "$ROOT/web" \
  2>"$WORK/hub.log" &
PIDS+=($!)
for _ in $(seq 100); do curl -sf "http://$HUB/health" >/dev/null 2>&1 && break; sleep 0.1; done
curl -sf "http://$HUB/health" >/dev/null || fail "the hub does not answer: $(cat "$WORK/hub.log")"
expect_exit 0 D write jobs/forged1 \
  '{"id":"forged1","state":"done","attempts":1,"max_attempts":1,"data":"jobdata/x/","result":"secret/token"}' \
  --user worker --password workerpw
BODY=$(curl -s "http://$HUB/api/jobs/forged1")
echo "hub GET /api/jobs/forged1 (no credentials): ${BODY:0:200}"
[[ $BODY != *s3cret* ]] || fail "the hub served the secret: $BODY"
expect_exit 0 D job get forged1 "${AS_ROOT[@]}"
[[ $OUT != *s3cret* ]] || fail "job get followed the forged result key: $OUT"
pass "a forged job record naming secret/token: neither the hub (as root) nor job get (as root) shows the secret"
