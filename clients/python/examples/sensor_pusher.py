#!/usr/bin/env python3
"""A sensor pusher: writes a time series the way `ddkv agent` does, so the hub
charts it next to the agents.

    metrics/<name>/<13-digit ms timestamp>   one JSON sample (ts, cpu, mem_pct, load1, ...)
    clients/<name>                           presence, on a lease kept alive while running

Samples are written with a lease that expires after the retention window, so
old points clean themselves up. Stdlib only (reads /proc on Linux).

    python3 sensor_pusher.py --endpoints 127.0.0.1:7001,127.0.0.1:7002 --name py-sensor --count 10
"""
import argparse
import json
import os
import socket
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
import ddkv  # noqa: E402


def sample() -> dict:
    """One reading: load averages and memory, with the agent's field names."""
    ts = int(time.time() * 1000)
    load1, load5, load15 = os.getloadavg()
    mem = {}
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                k, v = line.split(":", 1)
                mem[k] = int(v.split()[0]) * 1024
    except OSError:
        pass
    total, avail = mem.get("MemTotal", 0), mem.get("MemAvailable", 0)
    cpus = os.cpu_count() or 1
    return {"ts": ts, "cpu": min(100.0, 100.0 * load1 / cpus), "cpu_cores": [], "mem_total": total,
            "mem_used": total - avail, "mem_avail": avail, "mem_pct": 100.0 * (total - avail) / total if total else 0.0,
            "swap_total": mem.get("SwapTotal", 0), "swap_free": mem.get("SwapFree", 0), "load1": load1,
            "load5": load5, "load15": load15, "disks": [], "uptime_s": int(time.monotonic())}


def push(c: ddkv.Client, name: str, count: int, interval: float, retention: float) -> int:
    """Write count samples (0: until interrupted); returns how many were written."""
    written = 0
    with c.lease(ttl=10.0) as presence:
        c.write(f"clients/{name}", json.dumps({"id": name, "host": socket.gethostname(), "interval_ms":
                                                int(interval * 1000), "started_ms": int(time.time() * 1000)}),
                lease=presence.id)
        window, window_end = 0, 0.0
        while count == 0 or written < count:
            s = sample()
            if not window or time.monotonic() >= window_end:
                window, _ = c.lease_grant(retention + 60)  # one lease per minute of samples
                window_end = time.monotonic() + 60
            try:
                c.write(f"metrics/{name}/{s['ts']:013d}", json.dumps(s), lease=window)
                written += 1
            except ddkv.UnknownOutcome:
                pass  # the same sample again would be a new point: skip it, the next one follows
            except ddkv.BadRequest:
                window = 0  # the window lease expired during an outage: take a new one
            if count == 0 or written < count:
                time.sleep(interval)
    return written


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--endpoints", default=os.environ.get("DDKV_ENDPOINTS", "127.0.0.1:7001"))
    ap.add_argument("--name", default=socket.gethostname() + "-py")
    ap.add_argument("--count", type=int, default=0, help="samples to write (0: until interrupted)")
    ap.add_argument("--interval", type=float, default=1.0, help="seconds between samples")
    ap.add_argument("--retention", type=float, default=3600.0, help="seconds a sample is kept")
    a = ap.parse_args()
    try:
        with ddkv.Client(a.endpoints, timeout=5.0) as c:
            n = push(c, a.name, a.count, a.interval, a.retention)
    except KeyboardInterrupt:
        return 0
    except ddkv.Error as e:
        print(f"sensor_pusher: {e}", file=sys.stderr)
        return e.exit_code
    print(f"wrote {n} samples under metrics/{a.name}/")
    return 0


if __name__ == "__main__":
    sys.exit(main())
