#!/usr/bin/env python3
"""Helpers of bench/scale.sh (python3, standard library only; results parsed by
bench/benchtool.py's readers).

  scaletool.py rss PID...                   the processes' resident memory (JSON:
                                            sum_kb, max_kb, n)
  scaletool.py du DIR...                    disk blocks used under each DIR (JSON:
                                            sum_bytes, n)
  scaletool.py hold ddkv|etcd EPS K FILE    open K client connections spread over the
                                            endpoints, greet each (ddkv: HELLO; etcd: the
                                            HTTP/2 preface and SETTINGS), write K to FILE
                                            once all are up, then hold them, answering
                                            nothing but what keeps them open (SETTINGS
                                            acks, PINGs), until SIGTERM, when FILE gets the
                                            count still open
  scaletool.py wait-held FILE TIMEOUT_S     until FILE holds a count (exit 1: a failure or
                                            the timeout)
  scaletool.py half-rate FILE               half the ops/s of a ddkv bench (.json) or etcd
                                            benchmark output, as a whole number (exit 1: none)
  scaletool.py engine HOST:PORT,...         the members' storage engine counters summed from
                                            their /metrics (JSON: flushes, compactions, stalls,
                                            stall_s, n)
  scaletool.py cpu PID...                   CPU seconds the processes used so far (user + system)
  scaletool.py cpu-pct CPU0 T0 PID...       their CPU since CPU0 (from cpu) and T0 (date +%s.%N),
                                            in percent of one core
  scaletool.py row CURVE SYSTEM POINT k=v.. one line of results.jsonl (write=FILE and
                                            read=FILE are parsed; rss_kb, disk_bytes JSON)
  scaletool.py show                         a progress line from a results line (stdin)
  scaletool.py report RUN_DIR OUT_PREFIX    .md, .json and .png from a scale run
"""
import errno
import json
import os
import selectors
import signal
import socket
import struct
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import benchtool  # noqa: E402  (the readers of ddkv bench and etcd benchmark outputs)


def die(msg):
    print("scaletool: " + msg, file=sys.stderr)
    sys.exit(1)


def cmd_rss(args):
    kbs = []
    for pid in args:
        try:
            with open("/proc/%s/status" % pid) as fh:
                for line in fh:
                    if line.startswith("VmRSS:"):
                        kbs.append(int(line.split()[1]))
        except OSError:
            pass
    print(json.dumps({"sum_kb": sum(kbs), "max_kb": max(kbs) if kbs else 0, "n": len(kbs)}))


def cmd_du(args):
    total = 0
    for d in args:
        for root, _, files in os.walk(d):
            for f in files:
                try:
                    total += os.lstat(os.path.join(root, f)).st_blocks * 512
                except OSError:
                    pass
    print(json.dumps({"sum_bytes": total, "n": len(args)}))


# --- idle connections ------------------------------------------------------------

def mp_uint(v):
    """msgpack encoding of an unsigned integer."""
    if v < 0x80:
        return bytes([v])
    if v < 0x100:
        return b"\xcc" + bytes([v])
    if v < 0x10000:
        return b"\xcd" + struct.pack(">H", v)
    if v < 0x100000000:
        return b"\xce" + struct.pack(">I", v)
    return b"\xcf" + struct.pack(">Q", v)


def ddkv_hello():
    """HELLO [protocol 1, client release 0.2.0] as one frame (docs/wire-format.md)."""
    fields = [48, 1, 1, 1, (0 << 32) | (2 << 16) | 0]
    body = bytes([0x90 | len(fields)]) + b"".join(mp_uint(f) for f in fields)
    return struct.pack(">I", len(body)) + body


H2_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"


def h2_frame(ftype, flags, stream, payload=b""):
    return struct.pack(">I", len(payload))[1:] + bytes([ftype, flags]) + struct.pack(">I", stream) + payload


class Held:
    def __init__(self, sock, system):
        self.sock, self.system, self.buf, self.out = sock, system, b"", b""


def h2_answer(h):
    """Answer the server's SETTINGS and PINGs; drop everything else."""
    while len(h.buf) >= 9:
        n = int.from_bytes(h.buf[0:3], "big")
        if len(h.buf) < 9 + n:
            return
        ftype, flags, payload = h.buf[3], h.buf[4], h.buf[9:9 + n]
        h.buf = h.buf[9 + n:]
        if ftype == 4 and not flags & 1:
            h.out += h2_frame(4, 1, 0)
        elif ftype == 6 and not flags & 1:
            h.out += h2_frame(6, 1, 0, payload)


def cmd_hold(args):
    system, eps, k, path = args[0], args[1].split(","), int(args[2]), args[3]
    stop = []
    signal.signal(signal.SIGTERM, lambda *_: stop.append(1))
    sel = selectors.DefaultSelector()
    greeting = ddkv_hello() if system == "ddkv" else H2_PREFACE + h2_frame(4, 0, 0)
    held = {}
    for i in range(k):
        host, port = eps[i % len(eps)].rsplit(":", 1)
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setblocking(False)
        rc = s.connect_ex((host, int(port)))
        if rc not in (0, errno.EINPROGRESS):
            die("connection %d to %s: %s" % (i, eps[i % len(eps)], os.strerror(rc)))
        h = Held(s, system)
        h.out = greeting
        held[s.fileno()] = h
        sel.register(s, selectors.EVENT_READ | selectors.EVENT_WRITE, h)
        if i % 500 == 499:  # let the listeners' backlogs drain
            poll(sel, held, 0.05)
    deadline = time.monotonic() + 60
    while any(h.out for h in held.values()) and time.monotonic() < deadline:
        poll(sel, held, 0.1)
    if len(held) < k or any(h.out for h in held.values()):
        die("%d of %d connections up and greeted" % (sum(1 for h in held.values() if not h.out), k))
    with open(path + ".tmp", "w") as fh:
        fh.write("%d\n" % len(held))
    os.rename(path + ".tmp", path)
    while not stop:
        poll(sel, held, 0.5)
    with open(path, "w") as fh:
        fh.write("%d\n" % len(held))


def poll(sel, held, timeout):
    for key, ev in sel.select(timeout):
        h = key.data
        try:
            if ev & selectors.EVENT_WRITE and h.out:
                n = h.sock.send(h.out)
                h.out = h.out[n:]
            if ev & selectors.EVENT_READ:
                data = h.sock.recv(65536)
                if not data:
                    raise OSError("closed by the server")
                if h.system == "etcd":
                    h.buf += data
                    h2_answer(h)
        except (BlockingIOError, InterruptedError):
            pass
        except OSError:
            sel.unregister(h.sock)
            held.pop(h.sock.fileno(), None)
            h.sock.close()
            continue
        sel.modify(h.sock, selectors.EVENT_READ | (selectors.EVENT_WRITE if h.out else 0), h)


def cmd_wait_held(args):
    path, end = args[0], time.monotonic() + float(args[1])
    while time.monotonic() < end:
        try:
            if open(path).read().strip():
                return
        except OSError:
            pass
        time.sleep(0.1)
    sys.exit(1)


def cmd_half_rate(args):
    p = perf(args[0])
    if not p or not p.get("ops_per_s"):
        sys.exit(1)
    print(max(1, int(p["ops_per_s"] / 2)))


ENGINE = {"ddkv_store_flushes_total": "flushes", "ddkv_store_compactions_total": "compactions",
          "ddkv_store_write_stalls_total": "stalls", "ddkv_store_write_stall_seconds_total": "stall_s"}


def cmd_engine(args):
    import urllib.request
    out = {v: 0 for v in ENGINE.values()}
    out["n"] = 0
    for addr in args[0].split(","):
        try:
            text = urllib.request.urlopen("http://%s/metrics" % addr, timeout=5).read().decode()
        except OSError as e:
            print("scaletool: %s/metrics: %s" % (addr, e), file=sys.stderr)
            continue
        seen = 0
        for line in text.splitlines():
            parts = line.split()
            if len(parts) == 2 and parts[0] in ENGINE:
                out[ENGINE[parts[0]]] += float(parts[1])
                seen += 1
        out["n"] += seen == len(ENGINE)
    print(json.dumps(out))


def proc_cpu(pids):
    tick = os.sysconf("SC_CLK_TCK")
    total = 0.0
    for pid in pids:
        try:
            f = open("/proc/%s/stat" % pid).read().rsplit(")", 1)[1].split()
            total += (int(f[11]) + int(f[12])) / tick
        except (OSError, IndexError, ValueError):
            pass
    return total


def cmd_cpu(args):
    print("%.2f" % proc_cpu(args))


def cmd_cpu_pct(args):
    c0, t0 = float(args[0]), float(args[1])
    dt = time.time() - t0
    print("%.1f" % (100.0 * (proc_cpu(args[2:]) - c0) / dt if dt > 0 else 0))


def watch_perf(path):
    """A watch point: ddkv bench's JSON (its "watch" object) or etcd's watch-latency report."""
    if not path or not os.path.exists(path):
        return None
    if path.endswith(".json"):
        lines = [x for x in open(path).read().splitlines() if x.startswith("{")]
        if not lines:
            return None
        j = json.loads(lines[-1])
        w = j.get("watch") or {}
        el, al = w.get("event_latency_ms") or {}, w.get("ack_to_event_ms") or {}
        return {"events_per_s": w.get("events_per_s"), "writes_per_s": j.get("ops_per_s"),
                "events": w.get("events"), "missing": w.get("events_missing"), "lost": w.get("watches_lost"),
                "p50_ms": el.get("p50"), "p99_ms": el.get("p99"), "ack_p50_ms": al.get("p50"),
                "ack_p99_ms": al.get("p99"), "driver_cpu_pct": j.get("driver_cpu_pct"),
                "write_p99_ms": (j.get("latency_ms") or {}).get("p99")}
    r = benchtool.etcd_parse(path)
    if not r.get("ops_per_s"):
        return {"failed": r.get("failed")}
    # Each result is one watcher's event of one put.
    return {"events_per_s": r["ops_per_s"], "events": r.get("ops"), "ack_p50_ms": r.get("p50_ms"),
            "ack_p99_ms": r.get("p99_ms")}

# --- results ---------------------------------------------------------------------

def perf(path):
    if not path or not os.path.exists(path):
        return None
    try:
        r = benchtool.ddkv_parse(path) if path.endswith(".json") else benchtool.etcd_parse(path)
    except SystemExit:
        return None
    return {k: r.get(k) for k in ("ops_per_s", "p50_ms", "p99_ms", "p99_9_ms", "errors", "failed")
            if r.get(k) is not None}


def cmd_row(args):
    curve, system, point = args[0], args[1], int(args[2])
    out = {"curve": curve, "system": system, "point": point}
    for a in args[3:]:
        k, v = a.split("=", 1)
        if k in ("write", "read"):
            out[k] = perf(v)
            out[k + "_raw"] = v
        elif k == "watch":
            out[k] = watch_perf(v)
            out[k + "_raw"] = v
        elif v.startswith("{"):
            out[k] = json.loads(v)
        else:
            try:
                out[k] = float(v) if "." in v else int(v)
            except ValueError:
                out[k] = v
    print(json.dumps(out))


def ops(r, k):
    p = r.get(k) or {}
    return p.get("ops_per_s")


def cmd_show(_):
    r = json.loads(sys.stdin.read().strip().splitlines()[-1])
    parts = []
    for k in ("write", "read"):
        p = r.get(k)
        if p and p.get("ops_per_s"):
            parts.append("%s %.0f ops/s (p99 %.2f ms)" % (k, p["ops_per_s"], p.get("p99_ms") or 0))
        elif k + "_raw" in r:
            parts.append("%s FAILED" % k)
    if "rss_idle_kb" in r:
        parts.append("RSS idle %s MiB/member" % fmt(per_member_mib(r["rss_idle_kb"])))
    if "rss_kb" in r:
        parts.append("RSS %s MiB/member" % fmt(per_member_mib(r["rss_kb"])))
    if "disk_bytes" in r and r.get("live_bytes"):
        parts.append("disk %.2f x live" % (r["disk_bytes"]["sum_bytes"] / r["disk_bytes"]["n"] / r["live_bytes"]))
    if "restart_s" in r:
        parts.append("restart %.2f s" % r["restart_s"])
    if r.get("watch"):
        w = r["watch"]
        parts.append("events %s/s, write to event p50/p99 %s/%s ms, ack to event p50/p99 %s/%s ms, node CPU %s%%"
                     % (fmt(w.get("events_per_s")), fmt(w.get("p50_ms"), "%.2f"), fmt(w.get("p99_ms"), "%.2f"),
                        fmt(w.get("ack_p50_ms"), "%.2f"), fmt(w.get("ack_p99_ms"), "%.2f"),
                        fmt(r.get("node_cpu_pct"))))
    elif "watch_raw" in r:
        parts.append("watch FAILED")
    if "catchup_s" in r:
        parts.append("caught up in %.2f s: %s MB/s of live data (disk sequential %s MiB/s)"
                     % (r["catchup_s"], fmt(catchup_mbs(r), "%.1f"), fmt(r.get("seq_mib_s"), "%.0f")))
    if r.get("engine"):
        e = r["engine"]
        parts.append("engine: %d flushes, %d compactions, %d stalls (%.1f s)"
                     % (e["flushes"], e["compactions"], e["stalls"], e["stall_s"]))
    if "load_s" in r and r["load_s"]:
        parts.append("load %.0f keys/s" % (r["point"] / r["load_s"]))
    print("scale: %s %s %d: %s" % (r["curve"], r["system"], r["point"], ", ".join(parts)))


def size_cols(r):
    rss = r.get("rss_kb")
    disk = r.get("disk_bytes") or {}
    return {
        "write": ops(r, "write"), "write_p99": (r.get("write") or {}).get("p99_ms"),
        "read": ops(r, "read"), "read_p99": (r.get("read") or {}).get("p99_ms"),
        "load": r["point"] / r["load_s"] if r.get("load_s") else None,
        "rss_mib": per_member_mib(rss),
        "disk_x": disk["sum_bytes"] / disk["n"] / r["live_bytes"] if disk.get("n") and r.get("live_bytes") else None,
        "disk_mib": disk["sum_bytes"] / disk["n"] / 1048576 if disk.get("n") else None,
        "restart": r.get("restart_s"),
    }


def per_member_mib(rss):
    return rss["sum_kb"] / 1024 / rss["n"] if rss and rss.get("n") else None


def fmt(v, f="%.0f"):
    return "—" if v is None else f % v


def cmd_report(args):
    run_dir, prefix = args[0], args[1]
    meta = json.load(open(os.path.join(run_dir, "meta.json")))
    p = os.path.join(run_dir, "results.jsonl")
    rows = [json.loads(x) for x in open(p) if x.strip()] if os.path.exists(p) else []
    for r in rows:
        if r["curve"] == "size":
            r["cols"] = size_cols(r)
    with open(prefix + ".json", "w") as fh:
        json.dump({"meta": meta, "results": rows}, fh, indent=1)
    md = ["# ddkv scale curves, %s" % meta.get("date", "?"), ""]
    if meta.get("warning"):
        md += ["**%s**" % meta["warning"], ""]
    md += ["Commit %s on %s cores (%s), %s, %s; disk %s. %s. Run: `bench/scale.sh %s` (raw outputs in `%s`)."
           % (meta.get("commit"), meta.get("nproc"), meta.get("cpu"), meta.get("mem", "?"), meta.get("kernel"),
              meta.get("disk"), meta.get("etcd_version") and "etcd " + meta["etcd_version"] or "no etcd",
              meta.get("args", ""), meta.get("run_dir")), ""]
    ce = meta.get("ceilings") or []
    if ce:
        md += ["Disk ceiling (`dd oflag=dsync`, synced 4 KiB writes per second; \"each of 3\": three "
               "writers at once, as three members on this one disk): " +
               ", ".join("%s %.0f" % (c["when"], c["writes_per_s"]) for c in ce) + ".", ""]
    size = [r for r in rows if r["curve"] == "size"]
    if size:
        md += ["## Data size", "",
               "A 3-member cluster grown to each key count (16-byte keys, 256-byte values). *Write*: 64 "
               "clients overwriting random keys of the whole key space for %s s; *read*: 64 clients, "
               "linearizable, random keys (ddkv) / one key (etcd's range benchmark); *load*: the rate "
               "the keys were first written at, 64 clients; *RSS*: per member, after the load; *disk*: "
               "a member's data dir over the live bytes (keys + values; etcd compacted and defragmented "
               "first); *restart*: a follower stopped and started until every member is healthy and "
               "has applied what the leader had committed." % meta.get("duration_s"), "",
               "| keys | system | write ops/s (p99 ms) | read ops/s (p99 ms) | load keys/s | RSS MiB | "
               "disk MiB (x live) | restart s |", "|---|---|---|---|---|---|---|---|"]
        for r in sorted(size, key=lambda r: (r["point"], r["system"])):
            c = r["cols"]
            md.append("| %s | %s | %s (%s) | %s (%s) | %s | %s | %s (%s) | %s |" % (
                "{:,}".format(r["point"]), r["system"], fmt(c["write"]), fmt(c["write_p99"], "%.1f"),
                fmt(c["read"]), fmt(c["read_p99"], "%.1f"), fmt(c["load"]), fmt(c["rss_mib"]),
                fmt(c["disk_mib"], "%.1f"), fmt(c["disk_x"], "%.2f"), fmt(c["restart"], "%.2f")))
        md.append("")
        for system in ("ddkv", "etcd"):
            pts = sorted((r for r in size if r["system"] == system), key=lambda r: r["point"])
            if len(pts) < 2:
                continue
            first, last = pts[0]["cols"], pts[-1]["cols"]
            bits = []
            for k, name in (("write", "writes"), ("read", "reads")):
                if first[k] and last[k]:
                    bits.append("%s %+.0f%%" % (name, 100 * (last[k] / first[k] - 1)))
            md.append("- %s from %s to %s keys: %s." % (system, "{:,}".format(pts[0]["point"]),
                                                       "{:,}".format(pts[-1]["point"]), ", ".join(bits) or "—"))
        md.append("")
    conns = [r for r in rows if r["curve"] == "conns"]
    if conns:
        md += ["## Idle connections", "",
               "Idle client connections held open (spread over the three members; ddkv: each sent "
               "HELLO; etcd: each an HTTP/2 connection with its SETTINGS exchanged) while 64 clients "
               "write for %s s, each point on a fresh cluster. RSS per member: idle (the connections "
               "held, before the writes) and at the end of the writes." % meta.get("duration_s"), "",
               "| idle connections | system | held at the end | write ops/s | p99 ms | RSS MiB idle | RSS MiB after writes |",
               "|---|---|---|---|---|---|---|"]
        for r in sorted(conns, key=lambda r: (r["point"], r["system"])):
            w = r.get("write") or {}
            md.append("| %s | %s | %s | %s | %s | %s | %s |" % (
                "{:,}".format(r["point"]), r["system"], "{:,}".format(r.get("held", 0)), fmt(w.get("ops_per_s")),
                fmt(w.get("p99_ms"), "%.1f"), fmt(per_member_mib(r.get("rss_idle_kb"))),
                fmt(per_member_mib(r.get("rss_kb")))))
        md.append("")
        for system in ("ddkv", "etcd"):
            pts = sorted((r for r in conns if r["system"] == system), key=lambda r: r["point"])
            if len(pts) >= 2 and pts[-1]["point"] > pts[0]["point"]:
                a, b = per_member_mib(pts[0].get("rss_idle_kb")), per_member_mib(pts[-1].get("rss_idle_kb"))
                if a is not None and b is not None:
                    md.append("- %s: %.1f KiB of RSS per idle connection (members' idle RSS, %s against %s "
                              "connections)." % (system, (b - a) * 1024 * 3 / (pts[-1]["point"] - pts[0]["point"]),
                                                 "{:,}".format(pts[-1]["point"]), "{:,}".format(pts[0]["point"])))
        md.append("")
    wt = [r for r in rows if r["curve"] == "watch"]
    if wt:
        md += watch_section(wt, meta)
    cu = [r for r in rows if r["curve"] == "catchup"]
    if cu:
        md += catchup_section(cu, meta)
    tm = [r for r in rows if r["curve"] == "time"]
    if tm:
        md += time_section(tm, meta)
    md += ["Not measured here: failover when the leader vanishes silently (bench/failover.sh --fault silent).", ""]
    with open(prefix + ".md", "w") as fh:
        fh.write("\n".join(md))
    plot(run_dir, prefix, meta, size, conns, tm, wt, cu)


def median(xs):
    xs = sorted(x for x in xs if x is not None)
    if not xs:
        return None
    n = len(xs)
    return xs[n // 2] if n % 2 else (xs[n // 2 - 1] + xs[n // 2]) / 2


def catchup_mbs(r, key="live_bytes"):
    v = r.get(key)
    if isinstance(v, dict):
        v = v["sum_bytes"] / v["n"] if v.get("n") else None
    return v / 1e6 / r["catchup_s"] if v and r.get("catchup_s") else None


def catchup_section(cu, meta):
    md = ["## A new member's catch-up by snapshot", "",
          "A 3-member cluster loaded with each key count (16-byte keys, 256-byte values), then one member "
          "loses its data and comes back as a new one: ddkv `deploy/cluster.sh rejoin n3` (data dir wiped, "
          "started to join, `members add` again: it catches up by snapshot as a learner, then votes); etcd: "
          "`member remove`, data dir wiped, `member add`, started with `--initial-cluster-state existing` "
          "(after a compaction, so its snapshot is of the live keys). *Time*: from the start of the rejoin "
          "until every member has applied what the leader had committed. *MB/s*: live bytes (keys + values) "
          "over that time, and the new member's data dir over it; *disk*: `dd` sequential writes (1 MiB "
          "blocks, O_DIRECT, fdatasync) just before, MiB/s.", "",
          "| keys | system | time s | live MB/s | data dir MB (MB/s) | disk MiB/s |", "|---|---|---|---|---|---|"]
    for r in sorted(cu, key=lambda r: (r["point"], r["system"])):
        d = r.get("member_bytes") or {}
        md.append("| %s | %s | %s | %s | %s (%s) | %s |" % (
            "{:,}".format(r["point"]), r["system"], fmt(r.get("catchup_s"), "%.2f"), fmt(catchup_mbs(r), "%.1f"),
            fmt(d["sum_bytes"] / d["n"] / 1e6 if d.get("n") else None, "%.0f"),
            fmt(catchup_mbs(r, "member_bytes"), "%.1f"), fmt(r.get("seq_mib_s"), "%.0f")))
    return md + [""]


def watch_section(wt, meta):
    md = ["## Watch fan-out", "",
          "Watches of one prefix (ddkv: 100 to a connection, the connections spread over the three "
          "members; etcd: --clients watchers over --conns = watchers/100 gRPC connections, one stream "
          "each) while writes of new keys of it (32-byte values) are due at 1,000/s. ddkv: `ddkv bench "
          "--workload watch`, 16 writers in open loop for %s s; *write → event*: from when the write "
          "was due to the event's arrival at each watcher. etcd: `benchmark watch-latency --put-rate "
          "1000`, which puts one key and waits until every watcher has its event before the next put "
          "(so its put rate falls as watchers grow); it measures *ack → event* only: from the put's "
          "acknowledgement to each event (0 when the event came first), which ddkv bench reports too. "
          "*Node CPU*: the three members' CPU over the run, in percent of one core (this machine has "
          "%s). *Missing*: events owed for the measured writes that had not arrived 3 s after the "
          "writers stopped." % (meta.get("duration_s"), meta.get("nproc")), "",
          "| watchers | system | writes/s | events/s | write → event p50 / p99 ms | ack → event p50 / p99 ms "
          "| missing | node CPU % | bench CPU % |", "|---|---|---|---|---|---|---|---|---|"]
    for r in sorted(wt, key=lambda r: (r["point"], r["system"])):
        w = r.get("watch") or {}
        ev = w.get("events_per_s")
        md.append("| %s | %s | %s | %s | %s / %s | %s / %s | %s | %s | %s |" % (
            "{:,}".format(r["point"]), r["system"],
            fmt(w.get("writes_per_s") if r["system"] == "ddkv" else (ev / r["point"] if ev else None)),
            fmt(ev), fmt(w.get("p50_ms"), "%.2f"), fmt(w.get("p99_ms"), "%.2f"), fmt(w.get("ack_p50_ms"), "%.2f"),
            fmt(w.get("ack_p99_ms"), "%.2f"), fmt(w.get("missing")), fmt(r.get("node_cpu_pct")),
            fmt(w.get("driver_cpu_pct"))))
    return md + [""]


def time_section(tm, meta):
    secs = meta.get("minute_s") or 60
    md = ["## Time", "",
          "A fresh 3-member cluster written at half its peak rate (the peak: 64 clients, closed loop, "
          "%s s) by 64 clients in open loop (latency counts from when each write was due, so a stall "
          "shows in full), 16-byte keys over a space of 10,000, 256-byte values, in back-to-back runs "
          "of %s s (\"minutes\"). Engine: ddkv's storage engine (RocksDB) counters from the members' "
          "`/metrics`, summed over the three: memtable flushes, compactions, write stalls (slowdowns "
          "and stops) and the time writes were held; etcd's bbolt has none of these (etcd was run with "
          "--auto-compaction-mode periodic --auto-compaction-retention 5m)." % (meta.get("duration_s"), secs), ""]
    for system in ("ddkv", "etcd"):
        pts = sorted((r for r in tm if r["system"] == system), key=lambda r: r["point"])
        if not pts:
            continue
        w = [r.get("write") or {} for r in pts]
        p99 = [x.get("p99_ms") for x in w]
        ops_ = [x.get("ops_per_s") for x in w]
        k = max(1, len(pts) // 6)
        first, last = median(p99[:k]), median(p99[-k:])
        worst = max(range(len(pts)), key=lambda i: p99[i] if p99[i] is not None else -1)
        rss0, rss1 = per_member_mib(pts[0].get("rss_kb")), per_member_mib(pts[-1].get("rss_kb"))
        d0, d1 = pts[0].get("disk_bytes") or {}, pts[-1].get("disk_bytes") or {}
        line = ("- **%s**, %d runs at %s writes/s: throughput %s–%s ops/s (median %s); p99 per run median "
                "%s ms (first %d: %s ms, last %d: %s ms), worst %s ms in run %d; errors %d; RSS per member "
                "%s → %s MiB; data dir per member %s → %s MiB" % (
                    system, len(pts), "{:,}".format(pts[0].get("rate", 0)), fmt(min(o for o in ops_ if o) if any(ops_) else None),
                    fmt(max(o for o in ops_ if o) if any(ops_) else None), fmt(median(ops_)),
                    fmt(median(p99), "%.2f"), k, fmt(first, "%.2f"), k, fmt(last, "%.2f"),
                    fmt(p99[worst], "%.2f"), pts[worst]["point"], sum(x.get("errors") or 0 for x in w),
                    fmt(rss0), fmt(rss1),
                    fmt(d0["sum_bytes"] / d0["n"] / 1048576 if d0.get("n") else None, "%.1f"),
                    fmt(d1["sum_bytes"] / d1["n"] / 1048576 if d1.get("n") else None, "%.1f")))
        e = pts[-1].get("engine")
        if e and e.get("n"):
            stalled = [r["point"] for i, r in enumerate(pts)
                       if (r.get("engine") or {}).get("stalls", 0) > ((pts[i - 1].get("engine") or {}).get("stalls", 0) if i else 0)]
            line += ("; engine over the run: %d flushes, %d compactions, %d write stalls (%.2f s held)%s"
                     % (e["flushes"], e["compactions"], e["stalls"], e["stall_s"],
                        ", in runs " + ", ".join(map(str, stalled)) if stalled else ""))
        md.append(line + ".")
    md.append("")
    md += ["| run | system | ops/s | p50 ms | p99 ms | p99.9 ms | RSS MiB | compactions | stalls |",
           "|---|---|---|---|---|---|---|---|---|"]
    n = max(r["point"] for r in tm)
    step = max(1, n // 12)
    for r in sorted(tm, key=lambda r: (r["point"], r["system"])):
        if r["point"] % step and r["point"] not in (1, n):
            continue
        w, e = r.get("write") or {}, r.get("engine") or {}
        md.append("| %d | %s | %s | %s | %s | %s | %s | %s | %s |" % (
            r["point"], r["system"], fmt(w.get("ops_per_s")), fmt(w.get("p50_ms"), "%.2f"),
            fmt(w.get("p99_ms"), "%.2f"), fmt(w.get("p99_9_ms"), "%.2f"), fmt(per_member_mib(r.get("rss_kb"))),
            fmt(e.get("compactions") if e.get("n") else None), fmt(e.get("stalls") if e.get("n") else None)))
    md += ["", "(every %d%s run shown; all in the .json)" % (step, {1: "st", 2: "nd", 3: "rd"}.get(step, "th")), ""]
    return md


def plot(run_dir, prefix, meta, size, conns, tm, wt, cu):
    panels = []

    def series(rows, curve, key, get):
        out = []
        for system in ("ddkv", "etcd"):
            pts = sorted((r["point"], get(r)) for r in rows if r["system"] == system and get(r) is not None)
            if not pts:
                continue
            path = os.path.join(run_dir, "plot-%s-%s-%s.dat" % (curve, key, system))
            with open(path, "w") as fh:
                fh.writelines("%d %g\n" % p for p in pts)
            out.append((path, system))
        return out

    if size:
        for key, title, ylab in (("write", "Writes, 64 clients", "ops/s"), ("read", "Linearizable reads, 64 clients", "ops/s"),
                                 ("rss_mib", "RSS per member", "MiB"), ("disk_x", "Disk bytes per live byte", "x"),
                                 ("restart", "Follower restart to healthy", "s")):
            s = series(size, "size", key, lambda r, k=key: r["cols"][k])
            if s:
                panels.append((title, "keys (log scale)", ylab, True, s))
    if conns:
        s = series(conns, "conns", "write", lambda r: (r.get("write") or {}).get("ops_per_s"))
        if s:
            panels.append(("Writes with idle connections held", "idle connections", "ops/s", False, s))
        s = series(conns, "conns", "rss", lambda r: per_member_mib(r.get("rss_idle_kb")))
        if s:
            panels.append(("RSS per member holding idle connections", "idle connections", "MiB", False, s))
    if wt:
        s = series(wt, "watch", "events", lambda r: (r.get("watch") or {}).get("events_per_s"))
        if s:
            panels.append(("Watch events delivered per second", "watchers (log scale)", "events/s", True, s))
        s = series(wt, "watch", "ackp99", lambda r: (r.get("watch") or {}).get("ack_p99_ms"))
        if s:
            panels.append(("Watch: acknowledgement to event, p99", "watchers (log scale)", "ms", True, s))
    if cu:
        s = series(cu, "catchup", "mbs", lambda r: catchup_mbs(r))
        if s:
            panels.append(("A new member catching up by snapshot", "keys (log scale)", "MB/s of live data", True, s))
    if tm:
        run = "run (%s s each)" % meta.get("minute_s", 60)
        s = series(tm, "time", "p99", lambda r: (r.get("write") or {}).get("p99_ms"))
        if s:
            panels.append(("Write p99 per run, half the peak rate", run, "ms", False, s))
        s = series(tm, "time", "rss", lambda r: per_member_mib(r.get("rss_kb")))
        if s:
            panels.append(("RSS per member over time", run, "MiB", False, s))
        s = series(tm, "time", "compactions", lambda r: (r.get("engine") or {}).get("compactions")
                   if (r.get("engine") or {}).get("n") else None)
        if s:
            panels.append(("Engine compactions (cumulative, 3 members)", run, "compactions", False, s))
    if not panels:
        return
    styles = {"ddkv": 'lc rgb "#1f77b4" pt 7', "etcd": 'lc rgb "#d62728" pt 5'}
    rows_n = (len(panels) + 1) // 2
    g = ['set terminal pngcairo size 1300,%d font "DejaVu Sans,11" noenhanced' % (330 * rows_n + 90),
         'set output "%s.png"' % prefix]
    head = "ddkv vs etcd as the work grows: 3 nodes, %s cores, %s, %s" % (
        meta.get("nproc"), meta.get("date"), meta.get("commit"))
    if meta.get("quick"):
        head += " (--quick: not meaningful)"
    g.append('set multiplot layout %d,2 title "%s" font ",14"' % (rows_n, head))
    g.append("set grid lc rgb '#dddddd'")
    g.append("set key top left box opaque")
    g.append("set yrange [0:*]")
    for title, xlab, ylab, logx, lines in panels:
        g.append(("set logscale x 10" if logx else "unset logscale x"))
        g.append("set title '%s'" % title)
        g.append("set xlabel '%s'" % xlab)
        g.append("set ylabel '%s'" % ylab)
        g.append("plot " + ", ".join("'%s' using 1:2 with linespoints lw 2 ps 1.3 %s title '%s'"
                                     % (p, styles[sys_], sys_) for p, sys_ in lines))
    g.append("unset multiplot")
    benchtool.gnuplot(run_dir, g, "scaletool")


COMMANDS = {"cpu": cmd_cpu, "cpu-pct": cmd_cpu_pct, "half-rate": cmd_half_rate, "engine": cmd_engine, "rss": cmd_rss, "du": cmd_du, "hold": cmd_hold, "wait-held": cmd_wait_held, "row": cmd_row,
            "show": cmd_show, "report": cmd_report}

if __name__ == "__main__":
    if len(sys.argv) < 2 or sys.argv[1] not in COMMANDS:
        print(__doc__, file=sys.stderr)
        sys.exit(2)
    COMMANDS[sys.argv[1]](sys.argv[2:])
