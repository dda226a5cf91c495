"""A real 3-node ddkv cluster for the Python client's tests.

Nodes run the binary in DDKV_BIN (the ASan build under ctest), or
build-asan/ddkv, or build/ddkv. They listen on 127.0.0.1 only, on a block of
ports found free the way test/cli/lib.sh's free_port_block does (client
BASE+i, peer BASE+100+i, HTTP BASE+200+i), and are stopped by PID in the
fixture's finalizer whatever happens. DDKV_PYTHON_CLIENT names the client
package's directory (default clients/python), so a deliberately broken copy
can be run against these tests.
"""
from __future__ import annotations

import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from typing import Dict, List, Optional

import pytest

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
sys.path.insert(0, os.environ.get("DDKV_PYTHON_CLIENT") or os.path.join(ROOT, "clients", "python"))

import ddkv  # noqa: E402


def ddkv_bin() -> str:
    for p in (os.environ.get("DDKV_BIN"), os.path.join(ROOT, "build-asan", "ddkv"), os.path.join(ROOT, "build", "ddkv")):
        if p and os.access(p, os.X_OK):
            return p
    pytest.exit("ddkv binary not found (set DDKV_BIN or build: scripts/build.sh asan)", returncode=1)
    raise AssertionError


def _port_free(port: int) -> bool:
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        s.bind(("127.0.0.1", port))
        return True
    except OSError:
        return False
    finally:
        s.close()


def free_port_block() -> int:
    """A base whose 9 cluster ports are free, below the ephemeral range (32768..)."""
    for _ in range(100):
        base = 20000 + random.randrange(120) * 100
        if all(_port_free(base + off) for off in (1, 2, 3, 101, 102, 103, 201, 202, 203)):
            return base
    raise RuntimeError("no free port block")


class Cluster:
    """n1..n3 on 127.0.0.1; kill/restart by name; stop() ends every process by PID.
    extra: more serve flags, with {name} and {dir} (the cluster's directory) filled in."""

    def __init__(self, n: int = 3, extra: Optional[List[str]] = None, dir: Optional[str] = None) -> None:
        self.bin = ddkv_bin()
        self.n = n
        self.extra = extra or []
        self.dir = dir or tempfile.mkdtemp(prefix="ddkv-py-")
        self.base = free_port_block()
        self.token = os.urandom(16).hex()
        self.procs: Dict[str, subprocess.Popen] = {}
        self.names = [f"n{i}" for i in range(1, n + 1)]
        self.env = dict(os.environ)
        for k in ("DDKV_TLS_CERT", "DDKV_TLS_KEY", "DDKV_TLS_CA", "DDKV_PEER_TLS"):
            self.env.pop(k, None)
        self.env["DDKV_CLUSTER_TOKEN"] = self.token

    def client_addr(self, name: str) -> str:
        return f"127.0.0.1:{self.base + int(name[1:])}"

    def peer_addr(self, name: str) -> str:
        return f"127.0.0.1:{self.base + 100 + int(name[1:])}"

    @property
    def endpoints(self) -> List[str]:
        return [self.client_addr(x) for x in self.names]

    def log(self, name: str) -> str:
        return os.path.join(self.dir, f"{name}.log")

    def start(self, name: str) -> None:
        spec = ",".join(f"{x}={self.peer_addr(x)}" for x in self.names)
        with open(self.log(name), "ab") as lf:
            lf.write(b"=== start\n")
            lf.flush()
            starts = open(self.log(name), "rb").read().count(b"=== start")
            p = subprocess.Popen(
                [self.bin, "serve", "--name", name, "--data-dir", os.path.join(self.dir, name),
                 "--client-addr", self.client_addr(name), "--peer-addr", self.peer_addr(name),
                 "--http-addr", f"127.0.0.1:{self.base + 200 + int(name[1:])}", "--cluster", spec, *[x.format(name=name, dir=self.dir) for x in self.extra]],
                stdout=lf, stderr=lf, stdin=subprocess.DEVNULL, env=self.env)
        self.procs[name] = p
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if open(self.log(name), "rb").read().count(b"client listening on") >= starts:
                return
            if p.poll() is not None:
                raise RuntimeError(f"{name} exited at start: {self.tail(name)}")
            time.sleep(0.05)
        raise RuntimeError(f"{name} did not start: {self.tail(name)}")

    def tail(self, name: str, n: int = 10) -> str:
        try:
            return "\n".join(open(self.log(name), errors="replace").read().splitlines()[-n:])
        except OSError:
            return ""

    def start_all(self) -> None:
        for x in self.names:
            self.start(x)
        self.wait_leader()

    def client(self, **kw) -> "ddkv.Client":
        kw.setdefault("timeout", 10.0)
        return ddkv.Client(self.endpoints, **kw)

    def wait_leader(self, timeout: float = 20.0, exclude: Optional[str] = None, **kw) -> str:
        """The name of the leader once every live member agrees there is one."""
        deadline = time.monotonic() + timeout
        last = ""
        while time.monotonic() < deadline:
            try:
                leaders = set()
                for x in self.names:
                    if x in self.procs and self.procs[x].poll() is None:
                        with ddkv.Client([self.client_addr(x)], timeout=2.0, **kw) as c:
                            leaders.add(c.ping().leader)
                if len(leaders) == 1 and None not in leaders and exclude not in leaders:
                    return leaders.pop()
                last = f"leaders seen: {leaders}"
            except ddkv.Error as e:
                last = str(e)
            time.sleep(0.1)
        raise RuntimeError(f"no leader within {timeout} s ({last})")

    def kill(self, name: str) -> None:
        p = self.procs.pop(name)
        p.send_signal(signal.SIGKILL)
        p.wait()

    def stop(self) -> None:
        for p in self.procs.values():
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for name, p in list(self.procs.items()):
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
            # ASan reports (a leak, an error) make the node exit non-zero.
            if p.returncode not in (0, -signal.SIGTERM):
                self.failed_exit = f"{name} exited {p.returncode}: {self.tail(name, 30)}"
        self.procs.clear()

    def cleanup(self) -> None:
        self.stop()
        if getattr(self, "failed_exit", None):
            sys.stderr.write(f"node logs kept in {self.dir}\n")
        else:
            shutil.rmtree(self.dir, ignore_errors=True)


@pytest.fixture(scope="session")
def cluster(request):
    c = Cluster(3)
    try:
        c.start_all()
        yield c
    finally:
        c.stop()
        bad = getattr(c, "failed_exit", None)
        if request.session.testsfailed or bad:
            for x in c.names:
                sys.stderr.write(f"--- {x} log ---\n{c.tail(x, 20)}\n")
        c.cleanup()
        if bad:
            raise AssertionError(bad)
