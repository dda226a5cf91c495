"""A hostile client's view of the client port, for the test_acl_* tests:
frames (4-byte big-endian length, one msgpack value) built by hand, so a
test can send what no ddkv client would (any field, any number).

Only the msgpack subset the protocol uses: nil, bool, ints, bytes/str,
arrays, maps. Talks to 127.0.0.1 only.

  python3 acl_wire.py HOST:PORT [--user U --password P] TYPE FIELD...

sends one request [TYPE, 0, 1, FIELD...] (after an AUTH if asked) and prints
the reply as JSON (bytes as text where they decode), e.g.
  ["ERROR", 4, "JOB_PUT wants ..."]. FIELD: i:123, s:text, x:hex, nil.
"""
import json
import socket
import struct
import sys


def pack(o):
    if o is None:
        return b"\xc0"
    if o is True:
        return b"\xc3"
    if o is False:
        return b"\xc2"
    if isinstance(o, int):
        if 0 <= o < 128:
            return bytes([o])
        if o >= 0:
            return b"\xcf" + struct.pack(">Q", o)
        return b"\xd3" + struct.pack(">q", o)
    if isinstance(o, str):
        o = o.encode()
        return b"\xdb" + struct.pack(">I", len(o)) + o
    if isinstance(o, (bytes, bytearray)):
        return b"\xc6" + struct.pack(">I", len(o)) + bytes(o)
    if isinstance(o, (list, tuple)):
        return b"\xdd" + struct.pack(">I", len(o)) + b"".join(pack(x) for x in o)
    raise TypeError(type(o))


def unpack(b, i=0):
    t = b[i]
    i += 1
    if t <= 0x7F:
        return t, i
    if t >= 0xE0:
        return t - 256, i
    if 0x80 <= t <= 0x8F:
        return _map(b, i, t & 0x0F)
    if 0x90 <= t <= 0x9F:
        return _arr(b, i, t & 0x0F)
    if 0xA0 <= t <= 0xBF:
        n = t & 0x1F
        return b[i:i + n], i + n
    fixed = {0xC0: None, 0xC2: False, 0xC3: True}
    if t in fixed:
        return fixed[t], i
    ints = {0xCC: ">B", 0xCD: ">H", 0xCE: ">I", 0xCF: ">Q", 0xD0: ">b", 0xD1: ">h", 0xD2: ">i", 0xD3: ">q"}
    if t in ints:
        f = ints[t]
        n = struct.calcsize(f)
        return struct.unpack(f, b[i:i + n])[0], i + n
    lens = {0xC4: ">B", 0xC5: ">H", 0xC6: ">I", 0xD9: ">B", 0xDA: ">H", 0xDB: ">I"}
    if t in lens:
        f = lens[t]
        k = struct.calcsize(f)
        n = struct.unpack(f, b[i:i + k])[0]
        i += k
        return b[i:i + n], i + n
    if t in (0xDC, 0xDD):
        f = ">H" if t == 0xDC else ">I"
        k = struct.calcsize(f)
        return _arr(b, i + k, struct.unpack(f, b[i:i + k])[0])
    if t in (0xDE, 0xDF):
        f = ">H" if t == 0xDE else ">I"
        k = struct.calcsize(f)
        return _map(b, i + k, struct.unpack(f, b[i:i + k])[0])
    raise ValueError("msgpack type 0x%02x" % t)


def _arr(b, i, n):
    out = []
    for _ in range(n):
        v, i = unpack(b, i)
        out.append(v)
    return out, i


def _map(b, i, n):
    out = {}
    for _ in range(n):
        k, i = unpack(b, i)
        v, i = unpack(b, i)
        out[k if not isinstance(k, bytes) else k.decode(errors="replace")] = v
    return out, i


class Conn:
    def __init__(self, addr, timeout=10.0):
        host, port = addr.rsplit(":", 1)
        assert host.startswith("127."), "tests talk to 127.0.0.0/8 only"
        self.s = socket.create_connection((host, int(port)), timeout=timeout)
        self.rid = 0

    def call(self, mtype, *fields):
        self.rid += 1
        body = pack([mtype, 0, self.rid] + list(fields))
        self.s.sendall(struct.pack(">I", len(body)) + body)
        hdr = self._read(4)
        (n,) = struct.unpack(">I", hdr)
        msg, _ = unpack(self._read(n))
        return msg

    def _read(self, n):
        out = b""
        while len(out) < n:
            chunk = self.s.recv(n - len(out))
            if not chunk:
                raise ConnectionError("closed by the node")
            out += chunk
        return out

    def login(self, user, password):
        r = self.call(40, user, password)
        if r[0] != 41:
            raise RuntimeError("AUTH refused: %r" % (r,))

    def close(self):
        self.s.close()


class Cluster:
    """Requests as user to whichever member leads: a NOT_LEADER answer names
    the leader's client address; UNAVAILABLE (an election) is retried for a
    few seconds."""

    def __init__(self, endpoints, user=None, password=None):
        self.eps = endpoints.split(",") if isinstance(endpoints, str) else list(endpoints)
        self.user, self.password = user, password
        self.conns = {}

    def conn(self, ep):
        if ep not in self.conns:
            c = Conn(ep)
            if self.user:
                c.login(self.user, self.password)
            self.conns[ep] = c
        return self.conns[ep]

    def call(self, mtype, *fields):
        import time
        deadline = time.time() + 10
        ep = self.eps[0]
        while True:
            try:
                r = self.conn(ep).call(mtype, *fields)
            except (OSError, ConnectionError):
                self.conns.pop(ep, None)
                r = None
            if r is not None and not (r[0] == 1 and r[3] in (1, 5)):
                return r
            if time.time() > deadline:
                return r
            if r is not None and r[3] == 1 and len(r) > 5 and r[5]:
                ep = text(r[5])
            else:
                ep = self.eps[(self.eps.index(ep) + 1) % len(self.eps)] if ep in self.eps else self.eps[0]
                time.sleep(0.2)

    def close(self):
        for c in self.conns.values():
            c.close()
        self.conns = {}


ERRORS = {1: "NOT_LEADER", 2: "NOT_FOUND", 3: "TOO_LARGE", 4: "BAD_REQUEST", 5: "UNAVAILABLE", 6: "TIMEOUT",
          7: "COMPACTED", 8: "PERMISSION_DENIED", 9: "INTERNAL", 10: "FENCED", 11: "UNAUTHENTICATED"}


def text(o):
    if isinstance(o, bytes):
        return o.decode(errors="replace")
    if isinstance(o, list):
        return [text(x) for x in o]
    if isinstance(o, dict):
        return {k: text(v) for k, v in o.items()}
    return o


def describe(reply):
    """["ERROR", "BAD_REQUEST", message] for an error, else [type, fields...]."""
    if reply[0] == 1:
        return ["ERROR", ERRORS.get(reply[3], reply[3]), text(reply[4])]
    return [reply[0]] + text(reply[3:])


def field(s):
    if s == "nil":
        return None
    kind, _, v = s.partition(":")
    if kind == "i":
        return int(v, 0)
    if kind == "s":
        return v.encode()
    if kind == "x":
        return bytes.fromhex(v)
    raise ValueError("field " + s)


def main(argv):
    addr = argv[1]
    rest = argv[2:]
    user = password = None
    while rest and rest[0].startswith("--"):
        if rest[0] == "--user":
            user = rest[1]
        elif rest[0] == "--password":
            password = rest[1]
        rest = rest[2:]
    c = Conn(addr)
    if user:
        c.login(user, password)
    print(json.dumps(describe(c.call(int(rest[0]), *[field(f) for f in rest[1:]]))))
    c.close()


if __name__ == "__main__":
    main(sys.argv)
