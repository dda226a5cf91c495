"""Failover: a leader SIGKILLed during 1,000 writes and under a watch, and a write
whose answer is lost, retried under its session."""
import socket
import struct
import threading
import time

import pytest

import ddkv
from conftest import Cluster


@pytest.fixture(scope="module")
def fcluster(request):
    c = Cluster(3)
    try:
        c.start_all()
        yield c
    finally:
        c.stop()
        if request.session.testsfailed:
            import sys
            for x in c.names:
                sys.stderr.write(f"--- {x} log ---\n{c.tail(x, 20)}\n")
        bad = getattr(c, "failed_exit", None)
        c.cleanup()
        if bad:
            raise AssertionError(bad)


def leader_first(cluster, leader):
    return [cluster.client_addr(leader)] + [cluster.client_addr(x) for x in cluster.names if x != leader]


def test_leader_killed_during_1000_writes_and_a_watch(fcluster):
    """Every write is applied exactly once (version 1, at the revision the client
    was told) and the watch, connected to the leader that dies, sees every write
    once, in order, with no gap and no duplicate revision."""
    leader = fcluster.wait_leader()
    eps = leader_first(fcluster, leader)
    c = ddkv.Client(eps, timeout=15.0)
    w = ddkv.Client(eps, timeout=15.0).watch("py/kill/")
    assert w._c._conn.ep.text == fcluster.client_addr(leader)  # the watch is on the member that dies
    events, werr = [], []

    def watcher():
        try:
            deadline = time.monotonic() + 60
            while len(events) < 1000 and time.monotonic() < deadline:
                ev = w.next_event(1.0)
                if ev is not None:
                    events.append(ev)
        except Exception as e:  # reported by the assertions below
            werr.append(e)

    wt = threading.Thread(target=watcher)
    wt.start()
    killed = threading.Event()

    def killer():
        while len(revs) < 300:
            time.sleep(0.001)
        fcluster.kill(leader)  # SIGKILL while writes are in flight
        killed.set()

    revs = {}
    kt = threading.Thread(target=killer)
    kt.start()
    try:
        for i in range(1000):
            revs[i] = c.write(f"py/kill/{i:04d}", str(i)).revision
    finally:
        kt.join()
        wt.join(timeout=70)
    assert killed.is_set()
    new_leader = fcluster.wait_leader(exclude=leader)
    assert new_leader != leader

    # Exactly once: each key has version 1 and the revision its write returned.
    r = sorted(revs.values())
    assert len(set(r)) == 1000, "two writes were told the same revision"
    entries = list(c.list("py/kill/"))
    assert len(entries) == 1000
    dup = [(e.key, e.version, e.mod_rev) for e in entries if e.version != 1]
    assert not dup, f"writes applied more than once: {dup[:5]}"
    for e in entries:
        i = int(e.key.decode().rsplit("/", 1)[1])
        assert e.mod_rev == revs[i] and e.value == str(i).encode()

    # The watch: no error, no duplicate, no gap, in revision order.
    assert not werr, f"watch failed: {werr}"
    got = [ev.revision for ev in events]
    assert len(got) == len(set(got)), f"duplicate revisions in the watch: {len(got) - len(set(got))}"
    assert got == sorted(got)
    assert got == r, f"the watch missed {len(set(r) - set(got))} writes"
    assert w._c.endpoint != fcluster.client_addr(leader)  # it moved to another member
    w.close()
    c.close()
    fcluster.start(leader)  # back for the next test
    fcluster.wait_leader()


class ReplyDroppingProxy:
    """127.0.0.1 TCP proxy to a target: on the first connection it forwards the
    requests but, at the first reply of the given type, drops it and closes both
    ends, so the request was applied and its answer is lost."""

    def __init__(self, target, drop_type):
        self.target, self.drop_type = target, drop_type
        self.lsock = socket.socket()
        self.lsock.bind(("127.0.0.1", 0))
        self.lsock.listen(8)
        self.addr = f"127.0.0.1:{self.lsock.getsockname()[1]}"
        self.dropped = threading.Event()
        self.socks = []
        self.t = threading.Thread(target=self._accept, daemon=True)
        self.t.start()

    def _accept(self):
        while True:
            try:
                a, _ = self.lsock.accept()
            except OSError:
                return
            host, port = self.target.split(":")
            b = socket.create_connection((host, int(port)))
            self.socks += [a, b]
            threading.Thread(target=self._pump, args=(a, b, False), daemon=True).start()
            threading.Thread(target=self._pump, args=(b, a, True), daemon=True).start()

    def _pump(self, src, dst, replies):
        buf = b""
        try:
            while True:
                d = src.recv(65536)
                if not d:
                    break
                if not replies:
                    dst.sendall(d)
                    continue
                buf += d
                while len(buf) >= 4 and len(buf) >= 4 + struct.unpack(">I", buf[:4])[0]:
                    n = struct.unpack(">I", buf[:4])[0]
                    frame, buf = buf[:4 + n], buf[4 + n:]
                    # [type, ...]: a fixarray byte, then the type as a positive fixint.
                    if not self.dropped.is_set() and len(frame) > 5 and frame[5] == self.drop_type:
                        self.dropped.set()
                        raise OSError("dropped")
                    dst.sendall(frame)
        except OSError:
            pass
        for s in (src, dst):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            s.close()

    def close(self):
        self.lsock.close()
        for s in self.socks:
            try:
                s.close()
            except OSError:
                pass


@pytest.mark.parametrize("op", ["write", "txn"])
def test_retried_write_after_a_lost_answer_applies_once(fcluster, op):
    """The leader applies the write, the answer is lost with the connection: the
    client sends it again (to another member, redirected to the leader) under the
    same (client_id, seq) and is answered with the original result."""
    leader = fcluster.wait_leader()
    proxy = ReplyDroppingProxy(fcluster.client_addr(leader), drop_type=7 if op == "write" else 18)
    try:
        with ddkv.Client([proxy.addr] + fcluster.endpoints, timeout=10.0) as c:
            key = f"py/retry/{op}"
            if op == "write":
                res = c.write(key, b"once")
            else:
                res = c.txn([], [ddkv.Put(key, b"once")])
                assert res.succeeded
            assert proxy.dropped.is_set(), "the proxy did not drop the answer"
            assert c.endpoint != proxy.addr  # answered by a real member, after the retry
            v = c.read(key)
            assert v.version == 1, f"the retried {op} was applied {v.version} times"
            assert v.revision == res.revision
    finally:
        proxy.close()
