"""The Python client's operations against a real 3-node cluster."""
import threading
import time

import pytest

import ddkv


def test_read_write_delete(cluster):
    with cluster.client() as c:
        w = c.write("py/basic/k", b"v1")
        assert w.revision > 0 and w.lamport > 0
        v = c.read("py/basic/k")
        assert (v.value, v.revision, v.lamport, v.version) == (b"v1", w.revision, w.lamport, 1)
        w2 = c.write(b"py/basic/k", "v2")
        assert w2.revision > w.revision and c.read("py/basic/k", consistency="causal").value == b"v2"
        d = c.delete("py/basic/k")
        assert d.revision > w2.revision
        with pytest.raises(ddkv.NotFound) as ei:
            c.read("py/basic/k")
        assert ei.value.exit_code == 1
        with pytest.raises(ddkv.NotFound):
            c.delete("py/basic/k")


def test_exit_classes(cluster):
    with cluster.client() as c:
        with pytest.raises(ddkv.TooLarge) as ei:
            c.write("x" * 5000, b"v")
        assert isinstance(ei.value, ddkv.BadRequest) and ei.value.exit_code == 2
        # Nothing listens here: unavailable (exit 3), within the call's timeout.
        with ddkv.Client([f"127.0.0.1:{cluster.base + 9}"], timeout=0.5) as dead:
            t0 = time.monotonic()
            with pytest.raises(ddkv.Unavailable) as ei:
                dead.ping()
            assert ei.value.exit_code == 3 and time.monotonic() - t0 < 3
        # The client still works after refusals.
        assert c.ping().leader


def test_list_pages(cluster):
    with cluster.client() as c:
        for i in range(25):
            c.write(f"py/list/{i:03d}", str(i))
        c.write("py/lisz", b"outside")
        pages = list(c.list_pages("py/list/", page_size=10))
        assert [len(p.entries) for p in pages] == [10, 10, 5]
        assert [p.more for p in pages] == [True, True, False]
        keys = [e.key for e in c.list("py/list/", page_size=7)]
        assert keys == [f"py/list/{i:03d}".encode() for i in range(25)]
        assert [e.value for e in c.list("py/list/", limit=3)] == [b"0", b"1", b"2"]


def test_cas_and_txn(cluster):
    with cluster.client() as c:
        assert c.cas("py/cas", None, b"1").succeeded
        assert not c.cas("py/cas", None, b"x").succeeded
        assert not c.cas("py/cas", b"0", b"2")
        r = c.cas("py/cas", b"1", b"2")
        assert r and c.read("py/cas").value == b"2" and c.read("py/cas").revision == r.revision
        t = c.txn([ddkv.Compare("py/cas", "version", "==", 2)],
                  [ddkv.Put("py/txn/a", b"A"), ddkv.Delete("py/cas")], [ddkv.Put("py/txn/fail", b"F")])
        assert t.succeeded and c.read("py/txn/a").revision == t.revision
        with pytest.raises(ddkv.NotFound):
            c.read("py/cas")
        t = c.txn([ddkv.Compare("py/txn/a", "value", "!=", b"A")], [ddkv.Put("py/txn/x", b"X")],
                  [ddkv.Put("py/txn/fail", b"F")])
        assert not t.succeeded and c.read("py/txn/fail").value == b"F"


def test_lease_context_manager(cluster):
    with cluster.client() as c:
        with c.lease(ttl=0.6) as lease:
            c.write("py/lease/k", b"held", lease=lease.id)
            time.sleep(1.5)  # past the ttl: only the keepalive thread keeps it
            assert c.read("py/lease/k").value == b"held"
            assert not lease.lost.is_set()
        # Revoked at the end of the block: the key went with it.
        with pytest.raises(ddkv.NotFound):
            c.read("py/lease/k")
        with pytest.raises(ddkv.NotFound):
            c.lease_keepalive(lease.id)
        lid, ttl = c.lease_grant(0.3)
        c.write("py/lease/k2", b"v", lease=lid)
        time.sleep(1.2)
        with pytest.raises(ddkv.NotFound):
            c.read("py/lease/k2")


def test_status_and_ping(cluster):
    with cluster.client() as c:
        s = c.status()
        assert s.name in cluster.names and s.term > 0 and s.applied > 0
        assert sorted(m.name for m in s.members) == cluster.names
        p = c.ping()
        assert p.node in cluster.names and p.leader in cluster.names and p.term >= 1


def test_client_shared_by_threads(cluster):
    with cluster.client() as c:
        errors = []

        def worker(t):
            try:
                for i in range(20):
                    c.write(f"py/thr/{t}/{i}", b"x")
            except Exception as e:  # pragma: no cover - reported below
                errors.append(e)

        ts = [threading.Thread(target=worker, args=(t,)) for t in range(4)]
        for t in ts:
            t.start()
        for t in ts:
            t.join()
        assert not errors
        assert sum(1 for _ in c.list("py/thr/")) == 80


def test_example_sensor_pusher(cluster):
    import json
    import os
    import sys
    sys.path.insert(0, os.path.join(os.path.dirname(ddkv.__file__), "..", "examples"))
    import sensor_pusher
    with cluster.client() as c:
        assert sensor_pusher.push(c, "py-sensor", count=3, interval=0.01, retention=60) == 3
        pts = list(c.list("metrics/py-sensor/"))
        assert len(pts) == 3
        for p in pts:
            s = json.loads(p.value)
            assert p.key == f"metrics/py-sensor/{s['ts']:013d}".encode() and "load1" in s
        with pytest.raises(ddkv.NotFound):
            c.read("clients/py-sensor")  # presence went with its lease


def test_members_and_leader_transfer(cluster):
    with cluster.client() as c:
        old = c.ping().leader
        target = next(x for x in cluster.names if x != old)
        assert c.leader_transfer(target, timeout=15.0) == target
        assert cluster.wait_leader() == target
        assert c.write("py/after-transfer", b"ok").revision > 0
        with pytest.raises(ddkv.NotFound):
            c.member_remove("no-such-member")
        # Adding a member again with its own address changes nothing (index 0).
        assert c.member_add(target, cluster.peer_addr(target)) == 0
        with pytest.raises(ddkv.BadRequest):
            c.member_add("", "x")


def test_versions_and_delete_prefix(cluster):
    with cluster.client() as c:
        c.ping()
        assert c.node_version == ddkv._wire.VERSION_0_2_0, "the node's WELCOME"
        # Every member runs 0.2.0: the leader raises the cluster version at once.
        deadline = time.monotonic() + 10
        while c.status().cluster_version != "0.2.0" and time.monotonic() < deadline:
            time.sleep(0.1)
        st = c.status()
        assert (st.version, st.cluster_version) == ("0.2.0", "0.2.0")
        for i in range(30):
            c.write(f"py/dp/{i:02d}", b"x")
        c.write("py/dq", b"kept")
        assert c.delete_prefix("py/dp/") == 30
        assert list(c.list("py/dp/")) == []
        assert c.read("py/dq").value == b"kept"
        assert c.delete_prefix("py/dp/") == 0
