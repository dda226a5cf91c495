#!/usr/bin/env bash
# Issue 22, finding 9: CLI output of hostile data. Keys and values carrying
# terminal escape sequences, TAB, newline, CR, backslashes, C1 controls and
# bytes that are not UTF-8:
#  - `ddkv list` text output is one line per key, and unescaping each line
#    (\\ \t \n \r \xHH) gives back exactly the keys and values written;
#    `-o json` is unchanged;
#  - `ddkv read` to a terminal (a pseudo-terminal here) escapes control
#    characters (newline and TAB kept); piped, it is the value byte for byte;
#  - `ddkv watch` and `ddkv job list` lines carry no control character either.
source "$(dirname "$0")/../cli/lib.sh"
export DDKV_AUTH_HASH_ITERATIONS=10000 # as test/cli/test_auth.sh: PBKDF2 is slow under ASan
start_cluster 3
D() { "$DDKV" "$@" --endpoints "$EP"; }
expect_exit 0 D user add root --new-password rootpw
expect_exit 0 D user grant root root
expect_exit 0 D auth enable
export DDKV_USER=root DDKV_PASSWORD=rootpw

# The data: keys (argv: no NUL) and values (stdin: any bytes).
python3 - "$WORK" <<'PY'
import json, sys
data = [
    ("h/evil\tkey\nfake\tline", b"v1"),
    ("h/esc", b"\x1b]0;pwned\x07\x1b[2J\rhello\xc2\x9b31m \x9b31m \x00end\x7f"),
    ("h/back\\slash", b"a\\tb\\\\n"),
    ("h/utf8/\u00e9", "\u00fcn\u00efcode \u2603".encode()),
    ("h/multi", b"line1\nline2\ttab\r\n"),
    ("h/plain", b"just text"),
]
with open(sys.argv[1] + "/data.json", "w") as f:
    json.dump([[k, v.hex()] for k, v in data], f)
for i, (k, v) in enumerate(data):
    open("%s/key%d" % (sys.argv[1], i), "wb").write(k.encode())
    open("%s/val%d" % (sys.argv[1], i), "wb").write(v)
PY
for i in 0 1 2 3 4 5; do
  key=$(cat "$WORK/key$i"; printf x); key=${key%x}
  D write "$key" - <"$WORK/val$i" >/dev/null || fail "write key $i"
done

# --- list: one line per key, and it parses back exactly ---
D list h/ >"$WORK/list.txt" || fail "list"
D list h/ -o json >"$WORK/list.json" || fail "list -o json"
python3 - "$WORK" <<'PY' || fail "list output (above)"
import json, re, sys
w = sys.argv[1]
want = {k.encode(): bytes.fromhex(v) for k, v in json.load(open(w + "/data.json"))}
raw = open(w + "/list.txt", "rb").read()
lines = raw.split(b"\n")
assert lines[-1] == b"", "the output ends with a newline"
lines = lines[:-1]
print("list: %d lines for %d keys" % (len(lines), len(want)))
assert len(lines) == len(want), raw
bad = [b for b in raw if (b < 0x20 and b not in (0x09, 0x0a)) or b == 0x7f]
assert not bad, "control bytes in list output: %r" % bad

def unescape(s):
    out, i = bytearray(), 0
    while i < len(s):
        c = s[i:i + 1]
        if c != b"\\":
            out += c; i += 1; continue
        e = s[i + 1:i + 2]
        if e == b"x":
            out.append(int(s[i + 2:i + 4], 16)); i += 4
        else:
            out += {b"\\": b"\\", b"t": b"\t", b"n": b"\n", b"r": b"\r"}[e]; i += 2
    return bytes(out)

got = {}
for ln in lines:
    parts = ln.split(b"\t")
    assert len(parts) == 2, "not key TAB value: %r" % ln
    got[unescape(parts[0])] = unescape(parts[1])
assert got == want, (got, want)
# -o json: unchanged (JSON strings; base64 where not UTF-8).
import base64
for ln in open(w + "/list.json"):
    o = json.loads(ln)
    v = base64.b64decode(o["value"]) if o.get("encoding") == "base64" else o["value"].encode()
    assert want[o["key"].encode()] == v, o
print("list parses back exactly; -o json gives the same data")
PY
pass "list: one line per key (6), unescaped back to the exact keys and values; -o json unchanged"

# --- read: byte-exact when piped, escaped on a terminal ---
D read h/esc >"$WORK/esc.out" || fail "read h/esc"
cmp "$WORK/esc.out" "$WORK/val1" || fail "piped read is not byte-exact"
D read h/multi >"$WORK/multi.out" || fail "read h/multi"
cmp "$WORK/multi.out" "$WORK/val4" || fail "piped read is not byte-exact"
python3 - "$DDKV" "$EP" <<'PY' || fail "read on a terminal (above)"
import os, pty, subprocess, sys, tty
def on_tty(key):
    m, s = os.openpty()
    tty.setraw(s)  # no output processing: see exactly what ddkv wrote
    p = subprocess.Popen([sys.argv[1], "read", key, "--endpoints", sys.argv[2]], stdin=subprocess.DEVNULL,
                         stdout=s, stderr=subprocess.PIPE)
    os.close(s)
    out = b""
    while True:
        try:
            chunk = os.read(m, 65536)
        except OSError:
            break
        if not chunk:
            break
        out += chunk
    os.close(m)
    assert p.wait(timeout=30) == 0, p.stderr.read()
    return out
got = on_tty("h/esc")
print("read h/esc on a terminal:", got)
want = b"\\x1b]0;pwned\\x07\\x1b[2J\\rhello\\xc2\\x9b31m \\x9b31m \\x00end\\x7f\n"
assert got == want, (got, want)
got = on_tty("h/multi")
print("read h/multi on a terminal:", got)
assert got == b"line1\nline2\ttab\\r\n\n", got
got = on_tty("h/utf8/\u00e9")
assert got == "\u00fcn\u00efcode \u2603\n".encode(), got
PY
pass "read: piped output byte-exact; on a pseudo-terminal ESC, BEL, CR, C1 and non-UTF-8 bytes escaped, text kept"

# --- watch and job list lines ---
expect_exit 0 D write w/start x -o json
REV=$(python3 -c 'import json,sys; print(json.load(sys.stdin)["revision"])' <<<"$OUT")
D write $'w/\e[31mred\nPUT w/fake' - <"$WORK/val1" >/dev/null || fail "write w/"
D watch w/ --from-rev "$((REV + 1))" --count 1 >"$WORK/watch.txt" || fail "watch"
python3 - "$WORK/watch.txt" <<'PY' || fail "watch output (above)"
import sys
raw = open(sys.argv[1], "rb").read()
print("watch:", raw)
assert raw.count(b"\n") == 1 and raw.endswith(b"\n"), raw
assert not [b for b in raw[:-1] if b < 0x20 or b == 0x7f], raw
assert raw.startswith(b"PUT w/\\x1b[31mred\\nPUT w/fake \\x1b]0;pwned"), raw
PY
# A job record written by hand (anyone with write on jobs/ may).
D write jobs/forged '{"id":"x\u001b]0;pwned\u0007","state":"queued","attempts":0,"max_attempts":1,"worker":"w\nfake line","data":"d\r"}' >/dev/null
D job list >"$WORK/jobs.txt" || fail "job list"
python3 - "$WORK/jobs.txt" <<'PY' || fail "job list output (above)"
import sys
raw = open(sys.argv[1], "rb").read()
print("job list:", raw)
assert raw.count(b"\n") == 2, raw
assert not [b for b in raw if (b < 0x20 and b != 0x0a) or b == 0x7f], raw
PY
pass "watch and job list: one line each, no control character"
