#!/usr/bin/env python3
"""Attacks on the hub (issue 22, finding 6), bounded in count and time, with
the figures the test_hub_*.sh tests assert on.

usage: test_hub_attack.py MODE HUB_ADDR HUB_PID [options]

While the attack runs, a monitor samples the hub's VmRSS every 100 ms and a
well-behaved client asks GET /health and GET /api/clients every 250 ms (a new
connection each, 5 s timeout; a failure counts as 5000 ms). At the end one
JSON object is printed: rss_start_mib, rss_max_mib, health_max_ms,
clients_max_ms, probe_failures, and what the mode reports.

Modes:
  sse      N streams that never read, then W writes of 512 KiB to metrics/
           (with the ddkv CLI: DDKV_BIN, DDKV_ENDPOINTS), and one stream that
           reads: how many metric events it got.
  headers  N connections each sending B bytes of header lines, a request
           head that never ends, and S slow ones sending a head line per second: the status
           each got and when the hub closed it.
  uploads  N POST /api/jobs announcing L bytes, each sending B of them at
           once and then stalling: the status each got and when it was closed.
  proxy    N concurrent GET /api/proxy/ID: each one's status and latency.
  replies  N connections that ask for --path and never read the answer, for
           --duration s or until --until-log has --until-count lines with
           --until-text.
  conns    N connections from --src (127.0.0.2) that send nothing: how many
           the hub refused with 503, and when it closed the others.
Only 127.0.0.0/8 is ever contacted.
"""
import argparse
import json
import os
import socket
import subprocess
import sys
import threading
import time
import urllib.request


def rss_mib(pid):
    try:
        with open(f"/proc/{pid}/status") as f:
            for ln in f:
                if ln.startswith("VmRSS:"):
                    return int(ln.split()[1]) / 1024.0
    except OSError:
        pass
    return 0.0


class Monitor:
    def __init__(self, addr, pid):
        self.addr, self.pid = addr, pid
        self.stop = threading.Event()
        self.rss_start = rss_mib(pid)
        self.rss_max = self.rss_start
        self.lat = {"/health": [], "/api/clients": []}
        self.failures = []
        self.threads = [threading.Thread(target=self._rss, daemon=True),
                        threading.Thread(target=self._probe, daemon=True)]
        for t in self.threads:
            t.start()

    def _rss(self):
        while not self.stop.is_set():
            self.rss_max = max(self.rss_max, rss_mib(self.pid))
            time.sleep(0.1)

    def _probe(self):
        while not self.stop.is_set():
            for path in ("/health", "/api/clients"):
                t0 = time.monotonic()
                try:
                    with urllib.request.urlopen(f"http://{self.addr}{path}", timeout=5) as r:
                        r.read()
                        ok = r.status == 200
                except Exception as e:  # timeout, reset, 5xx
                    ok = False
                    self.failures.append(f"{path}: {e}")
                ms = (time.monotonic() - t0) * 1000 if ok else 5000.0
                self.lat[path].append(ms)
            time.sleep(0.25)

    def finish(self):
        self.stop.set()
        for t in self.threads:
            t.join(10)
        self.rss_max = max(self.rss_max, rss_mib(self.pid))
        return {
            "rss_start_mib": round(self.rss_start, 1),
            "rss_max_mib": round(self.rss_max, 1),
            "rss_end_mib": round(rss_mib(self.pid), 1),
            "health_max_ms": round(max(self.lat["/health"] or [0]), 1),
            "clients_max_ms": round(max(self.lat["/api/clients"] or [0]), 1),
            "probes": len(self.lat["/health"]),
            "probe_failures": len(self.failures),
            "probe_failure_examples": self.failures[:3],
        }


def connect(addr, rcvbuf=None, src=None):
    host, port = addr.rsplit(":", 1)
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    if rcvbuf:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    if src:
        s.bind((src, 0))
    s.settimeout(5)
    s.connect((host, int(port)))
    return s


def status_of(buf):
    """The status code of the first response line in buf, or 0."""
    try:
        first = buf.split(b"\r\n", 1)[0].split()
        return int(first[1]) if first[:1] in ([b"HTTP/1.1"], [b"HTTP/1.0"]) else 0
    except (IndexError, ValueError):
        return 0


def closed(s):
    """True once the peer has closed s (its unread data is skipped)."""
    try:
        s.setblocking(False)
        while True:
            d = s.recv(65536)
            if not d:
                return True
    except BlockingIOError:
        return False
    except OSError:
        return True


def mode_sse(a, mon):
    socks = []
    for _ in range(a.n):
        s = connect(a.addr, rcvbuf=4096)
        s.sendall(b"GET /api/events HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        socks.append(s)
    got = {"metric": 0}
    stop = threading.Event()

    def reader():  # a browser that keeps up
        s = connect(a.addr)
        s.sendall(b"GET /api/events HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        s.settimeout(0.5)
        buf = b""
        while not stop.is_set():
            try:
                d = s.recv(1 << 20)
            except socket.timeout:
                continue
            if not d:
                break
            buf = buf[-64:] + d
            got["metric"] += d.count(b"event: metric\n")

    rt = threading.Thread(target=reader, daemon=True)
    rt.start()
    time.sleep(0.5)
    value = ("x" * (512 * 1024 - 64)).encode()
    t0 = time.monotonic()
    env = dict(os.environ)
    for i in range(a.writes):
        key = "metrics/attack/%013d" % (int(time.time() * 1000) + i)
        subprocess.run([os.environ["DDKV_BIN"], "write", key, "-"], input=value, env=env, check=True,
                       stdout=subprocess.DEVNULL, timeout=30)
    wrote_s = time.monotonic() - t0
    time.sleep(a.settle)
    stop.set()
    rt.join(5)
    still_open = sum(not closed(s) for s in socks)
    for s in socks:
        s.close()
    return {"streams": a.n, "writes": a.writes, "write_s": round(wrote_s, 1),
            "reader_metric_events": got["metric"], "streams_still_open": still_open}


def mode_headers(a, mon):
    res = []
    lock = threading.Lock()

    def big(i):
        t0 = time.monotonic()
        st, sent, buf, reset = 0, 0, b"", False
        try:
            s = connect(a.addr)
            s.sendall(b"GET /api/clients HTTP/1.1\r\nHost: 127.0.0.1\r\n")
            chunk = b"X-Filler: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n" * 1024  # 64 KiB of lines
            while sent < a.bytes and time.monotonic() - t0 < a.duration:
                s.sendall(chunk)
                sent += len(chunk)
                s.setblocking(False)
                try:  # the hub's answer as soon as it comes (it stops reading, then closes)
                    d = s.recv(65536)
                    buf += d
                    if buf and not d or status_of(buf):
                        break
                except BlockingIOError:
                    pass
                s.settimeout(5)
            # the head never ends: wait for the hub's answer and close
            s.settimeout(max(1.0, a.duration - (time.monotonic() - t0)))
            while True:
                d = s.recv(65536)
                if not d:
                    break
                buf += d
        except OSError:  # the hub closed while this was still sending
            reset = True
        st = status_of(buf)
        with lock:
            res.append({"kind": "big", "sent": sent, "status": st, "reset": reset,
                        "closed_s": round(time.monotonic() - t0, 2)})

    def slow(i):
        t0 = time.monotonic()
        buf = b""
        try:
            s = connect(a.addr)
            s.sendall(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n")
            s.settimeout(1.0)
            n = 0
            while time.monotonic() - t0 < a.duration:
                try:
                    d = s.recv(65536)
                    if not d:
                        break
                    buf += d
                except socket.timeout:
                    s.sendall(b"X-Slow-%d: y\r\n" % n)
                    n += 1
        except OSError:
            pass
        with lock:
            res.append({"kind": "slow", "status": status_of(buf), "closed_s": round(time.monotonic() - t0, 2)})

    ts = [threading.Thread(target=big, args=(i,)) for i in range(a.n)]
    ts += [threading.Thread(target=slow, args=(i,)) for i in range(a.slow)]
    for t in ts:
        t.start()
    for t in ts:
        t.join(a.duration + 10)
    return {"conns": sorted(res, key=lambda r: r["kind"])}


def mode_uploads(a, mon):
    res = []
    lock = threading.Lock()

    def up(i):
        t0 = time.monotonic()
        buf, sent = b"", 0
        try:
            s = connect(a.addr)
            s.sendall(b"POST /api/jobs?name=stall%d.csv HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: %d\r\n\r\n" %
                      (i, a.length))
            chunk = b"1" * 65536
            s.settimeout(0.001)
            while sent < a.bytes:
                try:  # an early answer (503) ends the upload
                    d = s.recv(65536)
                    buf += d
                    break
                except socket.timeout:
                    pass
                s.settimeout(5)
                s.sendall(chunk)
                sent += len(chunk)
                s.settimeout(0.001)
            s.settimeout(1.0)
            while time.monotonic() - t0 < a.duration:  # stalled
                try:
                    d = s.recv(65536)
                    if not d:
                        break
                    buf += d
                except socket.timeout:
                    pass
        except OSError:
            pass
        with lock:
            res.append({"sent": sent, "status": status_of(buf), "closed_s": round(time.monotonic() - t0, 2),
                        "reply": buf.split(b"\r\n\r\n", 1)[-1][:160].decode("utf-8", "replace")})

    ts = [threading.Thread(target=up, args=(i,)) for i in range(a.n)]
    for t in ts:
        t.start()
    for t in ts:
        t.join(a.duration + 10)
    return {"uploads": sorted(res, key=lambda r: r["status"])}


def mode_proxy(a, mon):
    res = []
    lock = threading.Lock()

    def one():
        t0 = time.monotonic()
        try:
            with urllib.request.urlopen(f"http://{a.addr}/api/proxy/{a.id}", timeout=a.duration) as r:
                r.read()
                st = r.status
        except urllib.error.HTTPError as e:
            st = e.code
            retry = e.headers.get("Retry-After")
            with lock:
                res.append({"status": st, "ms": round((time.monotonic() - t0) * 1000), "retry_after": retry})
            return
        except Exception:
            st = 0
        with lock:
            res.append({"status": st, "ms": round((time.monotonic() - t0) * 1000), "retry_after": None})

    ts = [threading.Thread(target=one) for _ in range(a.n)]
    for t in ts:
        t.start()
    time.sleep(a.watch)  # the well-behaved client's probes run meanwhile
    return {"requests": a.n, "_threads": ts, "_res": res}


def mode_conns(a, mon):
    """N connections from --src that send nothing: how many the hub refused
    (503 at once), and when it closed the others (idle timeout)."""
    t0 = time.monotonic()
    socks, refused = [], 0
    for _ in range(a.n):
        s = connect(a.addr, src=a.src)
        s.setblocking(False)
        socks.append([s, None, b""])
    while time.monotonic() - t0 < a.duration and any(x[1] is None for x in socks):
        for x in socks:
            if x[1] is not None:
                continue
            try:
                d = x[0].recv(4096)
                x[2] += d
                if not d:
                    x[1] = time.monotonic() - t0
            except BlockingIOError:
                pass
            except OSError:
                x[1] = time.monotonic() - t0
        time.sleep(0.05)
    refused = sum(status_of(x[2]) == 503 for x in socks)
    idle_closed = sorted(round(x[1], 1) for x in socks if x[1] is not None and status_of(x[2]) != 503)
    for x in socks:
        x[0].close()
    return {"conns": a.n, "refused_503": refused, "idle_closed": len(idle_closed),
            "idle_closed_s": idle_closed[:1] + idle_closed[-1:], "open_at_end": sum(x[1] is None for x in socks)}


def mode_replies(a, mon):
    """N connections that ask for --path and never read the answer."""
    socks = []
    for _ in range(a.n):
        s = connect(a.addr, rcvbuf=4096)
        s.sendall(b"GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n" % a.path.encode())
        socks.append(s)
    t0 = time.monotonic()
    seen = 0
    while time.monotonic() - t0 < a.duration:  # until the hub has logged --until-count lines, if asked
        if a.until_log:
            with open(a.until_log, errors="replace") as f:
                seen = sum(a.until_text in ln for ln in f)
            if seen >= a.until_count:
                break
        time.sleep(0.2)
    for s in socks:
        s.close()
    return {"conns": a.n, "log_lines": seen, "attack_s": round(time.monotonic() - t0, 1)}


def main():
    p = argparse.ArgumentParser()
    p.add_argument("mode", choices=["sse", "headers", "uploads", "proxy", "conns", "replies"])
    p.add_argument("addr")
    p.add_argument("pid", type=int)
    p.add_argument("--n", type=int, default=10)
    p.add_argument("--writes", type=int, default=30)
    p.add_argument("--settle", type=float, default=2.0)
    p.add_argument("--bytes", type=int, default=1 << 20)
    p.add_argument("--length", type=int, default=1 << 20)
    p.add_argument("--slow", type=int, default=0)
    p.add_argument("--duration", type=float, default=15.0)
    p.add_argument("--watch", type=float, default=8.0)
    p.add_argument("--id", default="ghost")
    p.add_argument("--src", default="127.0.0.2")
    p.add_argument("--path", default="/api/clients")
    p.add_argument("--until-log", default="")
    p.add_argument("--until-text", default="")
    p.add_argument("--until-count", type=int, default=0)
    a = p.parse_args()
    mon = Monitor(a.addr, a.pid)
    time.sleep(0.3)
    out = globals()["mode_" + a.mode](a, mon)
    figures = mon.finish()
    if a.mode == "proxy":  # the flood's own answers, after the probe window
        for t in out.pop("_threads"):
            t.join(a.duration + 5)
        res = out.pop("_res")
        out["status_counts"] = {str(k): sum(r["status"] == k for r in res) for k in sorted({r["status"] for r in res})}
        out["fast_503"] = sum(r["status"] == 503 and r["ms"] < 1000 and r["retry_after"] is not None for r in res)
        out["max_ms"] = max((r["ms"] for r in res), default=0)
    figures.update(out)
    json.dump(figures, sys.stdout)
    print()


if __name__ == "__main__":
    main()
