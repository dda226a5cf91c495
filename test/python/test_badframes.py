"""A server that misbehaves: the client raises a clear error within its timeout,
never hangs and never buffers an oversized frame. Fake servers on 127.0.0.1."""
import socket
import struct
import threading
import time

import msgpack
import pytest

import ddkv


class FakeNode:
    """Accepts connections; for each request frame, answers with reply(request)
    (raw bytes to send, or None to say nothing)."""

    def __init__(self, reply):
        self.reply = reply
        self.ls = socket.socket()
        self.ls.bind(("127.0.0.1", 0))
        self.ls.listen(8)
        self.addr = f"127.0.0.1:{self.ls.getsockname()[1]}"
        self.conns = []
        self.requests = 0
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            try:
                s, _ = self.ls.accept()
            except OSError:
                return
            self.conns.append(s)
            threading.Thread(target=self._serve, args=(s,), daemon=True).start()

    def _serve(self, s):
        buf = b""
        try:
            while True:
                d = s.recv(65536)
                if not d:
                    return
                buf += d
                while len(buf) >= 4 and len(buf) >= 4 + struct.unpack(">I", buf[:4])[0]:
                    n = struct.unpack(">I", buf[:4])[0]
                    req = msgpack.unpackb(buf[4:4 + n], raw=True)
                    buf = buf[4 + n:]
                    if req[0] == 48:
                        # HELLO: answered as a 0.1.0 node would, not knowing it.
                        body = msgpack.packb([1, 1, req[2], 4, b"unknown message type 48", None])
                        s.sendall(struct.pack(">I", len(body)) + body)
                        continue
                    self.requests += 1
                    out = self.reply(req)
                    if out:
                        s.sendall(out)
        except OSError:
            pass

    def close(self):
        self.ls.close()
        for s in self.conns:
            s.close()


def frame(obj):
    b = msgpack.packb(obj, use_bin_type=True)
    return struct.pack(">I", len(b)) + b


CASES = {
    "oversized frame": lambda r: struct.pack(">I", 0xFFFFFFF0) + b"\x00" * 100,
    "not msgpack": lambda r: struct.pack(">I", 3) + b"\xc1\xc1\xc1",
    "not an array": lambda r: frame({"a": 1}),
    "lamport out of range": lambda r: frame([3, 1 << 62, r[2], b"n", None, 1]),
    "wrong reply type": lambda r: frame([13, 1, r[2], {}]),
    "garbled fields": lambda r: frame([r[0] + 1, 1, r[2], "x", -1]),
    "garbled ERROR": lambda r: frame([1, 1, r[2], "not a code"]),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_garbled_replies(case):
    node = FakeNode(CASES[case])
    try:
        with ddkv.Client([node.addr], timeout=2.0) as c:
            t0 = time.monotonic()
            with pytest.raises(ddkv.ProtocolError):
                c.read("k")
            # A write whose reply is garbled may have been applied: unknown outcome.
            with pytest.raises(ddkv.UnknownOutcome):
                c.write("k", b"v")
            assert time.monotonic() - t0 < 3
    finally:
        node.close()


def test_silent_node_times_out():
    node = FakeNode(lambda r: None)
    try:
        with ddkv.Client([node.addr], timeout=0.5) as c:
            t0 = time.monotonic()
            with pytest.raises(ddkv.Timeout):
                c.read("k")
            with pytest.raises(ddkv.UnknownOutcome):
                c.write("k", b"v")
            assert time.monotonic() - t0 < 2
    finally:
        node.close()


def test_half_a_frame_then_silence():
    node = FakeNode(lambda r: struct.pack(">I", 1000) + b"\x90")
    try:
        with ddkv.Client([node.addr], timeout=0.5) as c:
            with pytest.raises(ddkv.Timeout):
                c.ping()
    finally:
        node.close()


def test_not_leader_followed_and_unavailable_retried():
    """A member that names another as leader is followed; UNAVAILABLE is retried."""
    good = FakeNode(lambda r: frame([3, 1, r[2], b"good", b"good", 7]))
    calls = []

    def redirect(r):
        calls.append(r[0])
        if len(calls) == 1:
            return frame([1, 1, r[2], 5, b"no quorum", None])  # UNAVAILABLE
        return frame([1, 1, r[2], 1, b"not the leader", good.addr.encode()])  # NOT_LEADER

    bad = FakeNode(redirect)
    try:
        with ddkv.Client([bad.addr], timeout=3.0) as c:
            p = c.ping()
            assert (p.node, p.leader, p.term) == ("good", "good", 7) and c.endpoint == good.addr
            assert len(calls) == 2
    finally:
        good.close()
        bad.close()


def test_watch_garbled_event():
    """A watch given an event outside its prefix reports ProtocolError (then reconnects)."""
    def reply(r):
        if r[0] == 12:  # STATUS
            return frame([13, 1, r[2], {"applied": 5}])
        return frame([24, 1, r[2], 1, b"other/key", b"v", 6, 6, 1, 9])

    node = FakeNode(reply)
    try:
        c = ddkv.Client([node.addr], timeout=1.0)
        w = c.watch("mine/")
        with pytest.raises(ddkv.ProtocolError):
            w.next_event(2.0)
        w.close()
    finally:
        node.close()
