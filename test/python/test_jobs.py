"""The job queue from Python: claims, fencing tokens, extend, reclaim, ack with a
result, nack; and the example worker (clients/python/examples/job_worker.py)."""
import json
import os
import sys
import time

import pytest

import ddkv

sys.path.insert(0, os.path.join(os.path.dirname(ddkv.__file__), "..", "examples"))
import job_worker  # noqa: E402


def drain(c):
    while (j := c.claim("py-drain", visibility=60)) is not None:
        c.ack(j)


def test_extend_fences_the_old_token(cluster):
    with cluster.client() as c:
        drain(c)
        jid = c.submit(b"1\n2\n3\n", name="ext.txt")
        j = c.claim("w1", visibility=5)
        assert j.id == jid and j.attempts == 1 and c.job_data(j.data_key) == b"1\n2\n3\n"
        j2 = c.extend(j, visibility=5)
        assert j2.id == jid and j2.token != j.token
        with pytest.raises(ddkv.Fenced) as ei:
            c.ack(j, b"stale result")
        assert ei.value.exit_code == 1 and isinstance(ei.value, ddkv.NotFound)
        with pytest.raises(ddkv.NotFound):
            c.read(f"jobresult/{jid}")  # the refused ack wrote nothing
        with pytest.raises(ddkv.Fenced):
            c.extend(j, visibility=5)
        assert c.ack(j2, b"fresh result") == "done"
        assert c.read(f"jobresult/{jid}").value == b"fresh result"
        assert json.loads(c.read(f"jobs/{jid}").value)["state"] == "done"
        with pytest.raises(ddkv.Fenced):
            c.nack(j2, "after done")  # settled: no token holds any more


def test_expired_claim_is_reclaimed_and_the_first_worker_fenced(cluster):
    with cluster.client() as a, cluster.client() as b:
        drain(a)
        jid = a.submit(b"10\n", max_attempts=3)
        ja = a.claim("worker-a", visibility=0.3)
        assert ja.id == jid
        assert b.claim("worker-b", visibility=5) is None  # still a's
        time.sleep(0.8)  # a's claim expires
        jb = b.claim("worker-b", visibility=5)
        assert jb is not None and jb.id == jid and jb.token != ja.token and jb.attempts == 2
        with pytest.raises(ddkv.Fenced):
            a.ack(ja, b"a's late result")
        assert b.ack(jb, b"b's result") == "done"
        assert a.read(f"jobresult/{jid}").value == b"b's result"


def test_nack_requeues_then_dead(cluster):
    with cluster.client() as c:
        drain(c)
        jid = c.submit(b"x", max_attempts=2)
        j = c.claim("w", visibility=5)
        assert c.nack(j, "try again") == "queued"
        j = c.claim("w", visibility=5)
        assert j.id == jid and j.attempts == 2
        assert c.nack(j, "give up") == "dead"
        assert c.claim("w", visibility=5) is None


def test_example_worker(cluster):
    with cluster.client() as c:
        drain(c)
        good = c.submit(b"value\n10\n11\n9\n10\n12\n10\n500\n", name="numbers.csv")
        bad = c.submit(b"1\nnot a number\n", name="bad.csv", max_attempts=1)
        out = [job_worker.work_one(c, "py-example") for _ in range(3)]
        assert out == [f"{good} done", f"{bad} dead", None]
        r = json.loads(c.read(f"jobresult/{good}").value)
        assert r["n"] == 7 and r["median"] == 10 and r["outliers"] == [500.0]
