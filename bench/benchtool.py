#!/usr/bin/env python3
"""Helpers of bench/compare.sh and bench/failover.sh (python3, standard library only).

  benchtool.py free-base LO HI STEP OFF...     first BASE in LO..HI (by STEP) with every
                                               BASE+OFF unused by any TCP socket
  benchtool.py rtt [N]                         loopback TCP ping-pong, N round trips (JSON)
  benchtool.py syncfloor DIR [ROUNDS]          synced 4 KiB appends: one writer, and three released together (JSON)
  benchtool.py parse ddkv|etcd FILE NODES WORKLOAD CLIENTS [cpu=FILE] [key=value...]
                                               one result (ddkv bench -o json, or etcd
                                               benchmark's text report) -> one JSON line
  benchtool.py etcd-rate FILE                  ops/s and seconds of an etcd benchmark run
  benchtool.py ddkv-rate FILE                  ops/s of a ddkv bench -o json run
  benchtool.py etcd-revision ETCDCTL EPS       the store revision (for compaction)
  benchtool.py meta FILE key=value key:=JSON   merge fields into a JSON object file
  benchtool.py etcd-leader ETCDCTL EPS         endpoint, index (1-based) and term of the leader
  benchtool.py etcd-lead-first ETCDCTL EPS     move leadership to the first endpoint's member
  benchtool.py wait-etcd-healthy ETCDCTL EPS TIMEOUT_S
  benchtool.py ddkv-leader DDKV EPS            name and client address of the leader
  benchtool.py wait-ddkv-healthy DDKV EPS TIMEOUT_S
  benchtool.py wait-acks ACKS TIMEOUT_S        wait for the first ack line
  benchtool.py wait-resumed SYSTEM ACKS T_NS KILLED TIMEOUT_S [QUIET_MS]
                                               wait for an ack from a new leader after T_NS;
                                               with QUIET_MS, exit 3 at once if the old leader
                                               acknowledged a write later than T_NS + QUIET_MS
                                               (it was not cut off)
  benchtool.py gaps [--fault kill|silent] [--json FILE] [--quiet-ms MS]
                    SYSTEM NODES ACKS KILLS [LOG...]
                                               per-round gaps, median, p99 and max (and when
                                               the members' logs show the new leader); --json
                                               appends one summary line to FILE
  benchtool.py report RUN_DIR OUT_PREFIX       .md, .json and .png from a compare run
"""
import json
import os
import re
import socket
import statistics
import subprocess
import sys
import time


def die(msg):
    print("benchtool: " + msg, file=sys.stderr)
    sys.exit(1)


# --- ports ---------------------------------------------------------------

def ports_in_use():
    """Local ports of every TCP socket, listening or connected, any state."""
    used = set()
    for f in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(f) as fh:
                next(fh)
                for line in fh:
                    local = line.split()[1]
                    used.add(int(local.rsplit(":", 1)[1], 16))
        except OSError:
            pass
    return used


def cmd_free_base(args):
    lo, hi, step = int(args[0]), int(args[1]), int(args[2])
    offs = [int(x) for x in args[3:]]
    used = ports_in_use()
    for base in range(lo, hi + 1, step):
        if all(base + o not in used for o in offs):
            print(base)
            return
    die("no free port block in %d..%d" % (lo, hi))


# --- the commit floor on one disk ----------------------------------------

def cmd_syncfloor(args):
    """syncfloor DIR [ROUNDS]: three writers, each appending 4 KiB to its own
    file and fdatasync'ing it, released together each round (as three
    members' log syncs of one entry fall together on a shared disk), and one
    writer alone. A 3-member commit needs two members' syncs (the leader's and
    one follower's): the second of the three completions is the floor one
    synced write costs a 3-node cluster whose members share this disk."""
    import threading
    d, rounds = args[0], int(args[1]) if len(args) > 1 else 1000
    block = b"x" * 4096

    def run(nw):
        fds = [os.open(os.path.join(d, "syncfloor.%d" % i), os.O_CREAT | os.O_TRUNC | os.O_WRONLY | os.O_APPEND,
                       0o600) for i in range(nw)]
        done = [[0.0] * nw for _ in range(rounds)]
        start = [0.0] * rounds
        bar = threading.Barrier(nw)

        def worker(i):
            for r in range(rounds):
                if bar.wait() == 0:
                    start[r] = time.perf_counter()
                bar.wait()  # start[r] is set before anyone writes
                os.write(fds[i], block)
                os.fdatasync(fds[i])
                done[r][i] = time.perf_counter()

        th = [threading.Thread(target=worker, args=(i,)) for i in range(nw)]
        for t in th:
            t.start()
        for t in th:
            t.join()
        for i, fd in enumerate(fds):
            os.close(fd)
            os.unlink(os.path.join(d, "syncfloor.%d" % i))
        # per round, the k-th completion after the release (µs); the first
        # 5% warm up
        skip = rounds // 20
        return [sorted((t - start[r]) * 1e6 for t in done[r]) for r in range(skip, rounds)]

    def pct(xs, q):
        xs = sorted(xs)
        return xs[min(len(xs) - 1, int(q * len(xs)))]

    one = run(1)
    three = run(3)
    out = {"rounds": rounds, "method": "python threads, 4 KiB O_APPEND write + fdatasync, own file each",
           "single_p50_us": pct([x[0] for x in one], 0.5), "single_p99_us": pct([x[0] for x in one], 0.99)}
    for k, name in ((0, "first"), (1, "second"), (2, "third")):
        out["%s_of_three_p50_us" % name] = pct([x[k] for x in three], 0.5)
        out["%s_of_three_p99_us" % name] = pct([x[k] for x in three], 0.99)
    print(json.dumps(out))


# --- loopback round trip --------------------------------------------------

def cmd_rtt(args):
    n = int(args[0]) if args else 10000
    srv = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    srv.bind(("127.0.0.1", 0))
    srv.listen(1)
    port = srv.getsockname()[1]
    pid = os.fork()
    if pid == 0:  # the echo side, in its own process (no GIL between the two)
        try:
            c, _ = srv.accept()
            c.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            while True:
                b = c.recv(64)
                if not b:
                    break
                c.sendall(b)
        finally:
            os._exit(0)
    srv.close()
    c = socket.create_connection(("127.0.0.1", port))
    c.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    msg = b"x" * 16
    lat = []
    for _ in range(n + 100):
        t0 = time.perf_counter_ns()
        c.sendall(msg)
        got = 0
        while got < len(msg):
            got += len(c.recv(64))
        lat.append(time.perf_counter_ns() - t0)
    c.close()
    os.waitpid(pid, 0)
    lat = sorted(lat[100:])  # the first 100 warm up
    print(json.dumps({"round_trips": n, "median_us": lat[len(lat) // 2] / 1e3,
                      "p99_us": lat[int((len(lat) - 1) * 0.99)] / 1e3,
                      "method": "python3 TCP ping-pong, 16 bytes, TCP_NODELAY, two processes"}))


# --- benchmark outputs -----------------------------------------------------

NUM = r"([0-9.]+(?:[eE][-+]?[0-9]+)?)"


def etcd_parse(path, cpu_path=None):
    text = open(path, errors="replace").read()
    out = {}
    m = re.search(r"Requests/sec:\s*" + NUM, text)
    if not m:  # no request succeeded: the report has only the error distribution, if that
        err = re.search(r"Error distribution:\s*\n\s*\[\d+\]\s*(.*)", text)
        return {"ops_per_s": None, "p50_ms": None, "p99_ms": None,
                "failed": err.group(1)[:150] if err else "no report (see the .err file)"}
    out["ops_per_s"] = float(m.group(1))
    m = re.search(r"Total:\s*" + NUM + r" secs", text)
    out["duration_s"] = float(m.group(1)) if m else None
    for p in ("50", "90", "99", "99.9"):
        m = re.search(r"\b" + re.escape(p) + r"% in " + NUM + r" secs", text)
        out["p" + p.replace(".", "_") + "_ms"] = float(m.group(1)) * 1e3 if m else None
    errors = 0
    if "Error distribution:" in text:
        for m in re.finditer(r"^\s*\[(\d+)\]\s", text.split("Error distribution:", 1)[1], re.M):
            errors += int(m.group(1))
    out["errors"] = errors
    if out["duration_s"]:
        out["ops"] = round(out["ops_per_s"] * out["duration_s"])
    if cpu_path and os.path.exists(cpu_path):
        # bash `time` output (TIMEFORMAT='%U %S %R'): user sys real
        u, s, r = (float(x) for x in open(cpu_path).read().split()[:3])
        out["driver_cpu_pct"] = 100.0 * (u + s) / r if r > 0 else None
    return out


def cmd_etcd_rate(args):
    """RATE SECONDS of a (calibration) run."""
    out = etcd_parse(args[0])
    print("%g %g" % (out["ops_per_s"] or 0, out.get("duration_s") or 0))


def cmd_ddkv_rate(args):
    print("%g" % (ddkv_parse(args[0])["ops_per_s"] or 0))


def ddkv_parse(path):
    lines = [x for x in open(path).read().splitlines() if x.startswith("{")]
    if not lines:
        die("no JSON line in " + path)
    j = json.loads(lines[-1])
    lat = j.get("latency_ms", {})
    out = {"ops_per_s": j["ops_per_s"], "duration_s": j["duration_s"], "ops": j["ops"],
           "p50_ms": lat.get("p50"), "p90_ms": lat.get("p90"), "p99_ms": lat.get("p99"),
           "p99_9_ms": lat.get("p99_9"), "errors": j.get("errors", 0) + j.get("unknown", 0),
           "driver_cpu_pct": j.get("driver_cpu_pct")}
    if j.get("workload") == "cas" and j.get("ops"):
        out["attempts_per_op"] = j.get("cas_attempts", 0) / j["ops"]
    if not j.get("ops"):
        out["ops_per_s"] = None
        out["failed"] = j.get("last_error") or "no operation completed"
    return out


def cmd_parse(args):
    """parse ddkv|etcd FILE NODES WORKLOAD CLIENTS [cpu=FILE] [key=value...]: one line of
    results.jsonl (cpu: bash `time` output of the etcd tool; the others are copied)."""
    system, path, nodes, workload, clients = args[0], args[1], int(args[2]), args[3], int(args[4])
    extra = dict(a.split("=", 1) for a in args[5:])
    cpu = extra.pop("cpu", None)
    out = {"system": system, "nodes": nodes, "workload": workload, "clients": clients}
    out.update(ddkv_parse(path) if system == "ddkv" else etcd_parse(path, cpu))
    out.update(extra)
    out["raw"] = path
    print(json.dumps(out))


# --- cluster state ----------------------------------------------------------

def etcd_status(etcdctl, eps):
    r = subprocess.run([etcdctl, "--endpoints", eps, "--command-timeout=2s", "--dial-timeout=1s",
                        "endpoint", "status", "-w", "json"],
                       capture_output=True, text=True, env=dict(os.environ, ETCDCTL_API="3"))
    try:
        rows = json.loads(r.stdout) if r.stdout.strip() else []
    except ValueError:
        rows = []
    return rows


def cmd_etcd_revision(args):
    rows = etcd_status(args[0], args[1])
    if not rows:
        die("no etcd member answered")
    print(max(r["Status"]["header"]["revision"] for r in rows))


def cmd_etcd_leader(args):
    """ENDPOINT INDEX TERM of the member that says it leads (INDEX: 1-based in EPS)."""
    order = args[1].split(",")
    for row in etcd_status(args[0], args[1]):
        st = row["Status"]
        if st["header"]["member_id"] == st["leader"] and st["leader"] != 0 and row["Endpoint"] in order:
            print(row["Endpoint"], order.index(row["Endpoint"]) + 1, st["raftTerm"])
            return
    die("no etcd member says it leads")


def cmd_etcd_lead_first(args):
    """etcd-lead-first ETCDCTL EPS: move leadership to the first endpoint's member."""
    etcdctl, eps = args[0], args[1]
    first = eps.split(",")[0]
    end = time.monotonic() + 20
    while time.monotonic() < end:
        rows = {r["Endpoint"]: r["Status"] for r in etcd_status(etcdctl, eps)}
        st = rows.get(first)
        if st and st["leader"] == st["header"]["member_id"]:
            return
        lead = [ep for ep, s in rows.items() if s["leader"] == s["header"]["member_id"]]
        if st and lead:
            subprocess.run([etcdctl, "--endpoints", lead[0], "move-leader", "%x" % st["header"]["member_id"]],
                           capture_output=True)
        time.sleep(0.2)
    die("could not make the member at %s the etcd leader" % first)


def cmd_wait_etcd_healthy(args):
    etcdctl, eps, timeout = args[0], args[1], float(args[2])
    n = len(eps.split(","))
    end = time.monotonic() + timeout
    floor = None
    while time.monotonic() < end:
        rows = etcd_status(etcdctl, eps)
        if len(rows) == n:
            leaders = {r["Status"]["leader"] for r in rows}
            terms = {r["Status"]["raftTerm"] for r in rows}
            if len(leaders) == 1 and 0 not in leaders and len(terms) == 1:
                lead = [r for r in rows if r["Status"]["header"]["member_id"] == r["Status"]["leader"]]
                if lead:
                    if floor is None:
                        floor = lead[0]["Status"]["raftIndex"]
                    if all(r["Status"].get("raftAppliedIndex", r["Status"]["raftIndex"]) >= floor for r in rows):
                        return
        time.sleep(0.1)
    die("etcd cluster not healthy after %.0f s" % timeout)


def ddkv_status(ddkv, eps):
    r = subprocess.run([ddkv, "status", "--endpoints", eps, "--timeout-ms", "1000", "-o", "json"],
                       capture_output=True, text=True)
    rows = []
    for line in r.stdout.splitlines():
        try:
            rows.append(json.loads(line))
        except ValueError:
            pass
    return rows


def cmd_ddkv_leader(args):
    """NAME CLIENT_ADDRESS of the member that says it leads."""
    for row in ddkv_status(args[0], args[1]):
        if row.get("role") == "leader":
            print(row["name"], row["address"])
            return
    die("no ddkv member says it leads")


def cmd_wait_ddkv_healthy(args):
    ddkv, eps, timeout = args[0], args[1], float(args[2])
    n = len(eps.split(","))
    end = time.monotonic() + timeout
    floor = None
    while time.monotonic() < end:
        rows = [r for r in ddkv_status(ddkv, eps) if "term" in r]
        if len(rows) == n and all(r.get("healthy") for r in rows):
            lead = [r for r in rows if r.get("role") == "leader"]
            if len(lead) == 1 and len({r["term"] for r in rows}) == 1:
                if floor is None:
                    floor = lead[0]["commit"]
                if all(r["applied"] >= floor for r in rows):
                    return
        time.sleep(0.1)
    die("ddkv cluster not healthy after %.0f s" % timeout)


# --- failover ----------------------------------------------------------------

def read_acks(path, tail=None):
    """[(ns, who)] from an ack file (the last `tail` bytes only, if given)."""
    try:
        with open(path, "rb") as fh:
            if tail:
                fh.seek(0, 2)
                fh.seek(max(0, fh.tell() - tail))
            data = fh.read()
    except OSError:
        return []
    out = []
    for line in data.split(b"\n"):
        f = line.split()
        if len(f) == 2 and f[0].isdigit():
            out.append((int(f[0]), f[1].decode()))
    return out


def from_new_leader(system, who, killed):
    """Whether an ack came from a leader after the killed one: for ddkv (only the
    leader acknowledges a write) another member's address; for etcd a later term."""
    if system == "ddkv":
        return who != killed
    return who.isdigit() and int(who) > int(killed)


def from_old_leader(system, who, killed):
    """Whether an ack came from the leader that was cut off: for ddkv its address,
    for etcd its term (acks of a later term come from a later leader)."""
    return who == killed


def cmd_wait_resumed(args):
    """wait-resumed SYSTEM ACKS T_NS KILLED TIMEOUT_S [QUIET_MS]: until a new leader
    acknowledged a write. With QUIET_MS (a leader cut off silently): an ack of the
    old leader more than QUIET_MS after T_NS means it was not cut off at all; that
    ends the wait at once, with exit status 3."""
    system, path, t, killed, timeout = args[0], args[1], int(args[2]), args[3], float(args[4])
    quiet = int(args[5]) * 1000000 if len(args) > 5 else None
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        acks = read_acks(path, 1 << 16)
        if quiet is not None:
            late = [ns for ns, who in acks if ns > t + quiet and from_old_leader(system, who, killed)]
            if late:
                print("benchtool: the old leader (%s) acknowledged a write %.0f ms after it was cut off: "
                      "it was not isolated" % (killed, (late[-1] - t) / 1e6), file=sys.stderr)
                sys.exit(3)
        if any(ns > t and from_new_leader(system, who, killed) for ns, who in acks):
            return
        time.sleep(0.01)
    die("no write acknowledged by a new leader within %.0f s of the fault" % timeout)


def cmd_wait_acks(args):
    """wait-acks ACKS TIMEOUT_S: until the first acknowledgement."""
    end = time.monotonic() + float(args[1])
    while time.monotonic() < end:
        if read_acks(args[0], 4096):
            return
        time.sleep(0.05)
    die("no write acknowledged within %s s" % args[1])


def leader_events(system, logs):
    """[(realtime ns, leader, term)] from the members' logs: ddkv's "leader is now
    NAME (term T)" lines, etcd's "elected leader ID at term T" (zap, info level)."""
    from datetime import datetime
    ev = []
    for path in logs:
        try:
            lines = open(path, errors="replace").read().splitlines()
        except OSError:
            continue
        for line in lines:
            if system == "ddkv":
                m = re.match(r"(\S+Z) INFO \S+ leader is now (\S+) \(term (\d+)\)", line)
                if not m:
                    continue
                ts, who, term = m.group(1), m.group(2), int(m.group(3))
            else:
                m = re.search(r'"ts":"([^"]+)".*elected leader (\w+) at term (\d+)', line)
                if not m:
                    continue
                ts, who, term = m.group(1), m.group(2), int(m.group(3))
            t = datetime.fromisoformat(ts.replace("Z", "+00:00")).timestamp()
            ev.append((int(t * 1e9), who, term))
    return sorted(ev)


def p99(xs):
    """The 99th percentile by nearest rank: the smallest value with at least 99% of
    the values at or below it (over fewer than 100 values, the largest)."""
    import math
    v = sorted(xs)
    return v[max(0, math.ceil(0.99 * len(v)) - 1)]


def cmd_gaps(args):
    """gaps [--fault kill|silent] [--json FILE] [--quiet-ms MS] SYSTEM NODES ACKS KILLS [LOG...]:
    KILLS has "T_NS MEMBER WHO REAL_NS [END_NS]" per round (T_NS: the kill, or the
    leader's link going down; END_NS: the end of that isolation, when the member was
    killed and its link brought up again). A round in which the old leader still
    acknowledged writes more than MS (500) after T_NS and before END_NS was no
    isolation: it is reported and left out."""
    import bisect
    fault, json_path, quiet_ms = "kill", None, 500
    while args and args[0].startswith("--"):
        if args[0] == "--fault":
            fault = args[1]
        elif args[0] == "--json":
            json_path = args[1]
        elif args[0] == "--quiet-ms":
            quiet_ms = int(args[1])
        else:
            die("gaps: unknown option " + args[0])
        args = args[2:]
    system, nodes, acks_path, kills_path = args[0], args[1], args[2], args[3]
    verb = {"kill": "killed", "silent": "isolated"}.get(fault, fault)
    what = {"kill": "the kill", "silent": "the isolation"}.get(fault, "the fault")
    events = leader_events(system, args[4:])
    acks = sorted(read_acks(acks_path))
    times = [ns for ns, _ in acks]
    gaps, firsts, elected, bad = [], [], [], 0
    rounds = 0
    for i, line in enumerate(open(kills_path).read().splitlines()):
        f = line.split()
        if len(f) < 3:
            continue
        rounds += 1
        t, member, killed = int(f[0]), f[1], f[2]
        k = bisect.bisect_right(times, t)
        if len(f) > 4:
            t_end = int(f[4])
            late = [ns for ns, who in acks[k:bisect.bisect_left(times, t_end)]
                    if ns > t + quiet_ms * 1000000 and from_old_leader(system, who, killed)]
            if late:
                bad += 1
                print("%s %s nodes round %2d: %s leader %s: NOT ISOLATED: it acknowledged %d writes from %.0f "
                      "to %.0f ms after its link went down; no gap"
                      % (system, nodes, i + 1, verb, member, len(late), (late[0] - t) / 1e6, (late[-1] - t) / 1e6))
                continue
        j = next((j for j in range(k, len(acks)) if from_new_leader(system, acks[j][1], killed)), None)
        if k == 0 or j is None:
            print("%s %s nodes round %2d: %s leader %s: no ack on one side of %s"
                  % (system, nodes, i + 1, verb, member, what))
            continue
        gap = (times[j] - times[k - 1]) / 1e6
        first = (times[j] - t) / 1e6
        gaps.append(gap)
        firsts.append(first)
        el = ""
        if len(f) > 3:
            treal = int(f[3])
            # the first leader after the kill: for ddkv another member, for etcd a later term
            e = next((e for e in events if e[0] > treal and
                      (e[1] != member if system == "ddkv" else e[2] > int(killed))), None)
            if e:
                elected.append((e[0] - treal) / 1e6)
                el = ", new leader in the logs %.0f ms after %s" % (elected[-1], what)
        print("%s %s nodes round %2d: %s leader %s: gap %.0f ms (last ack %.0f ms before %s, first "
              "from the new leader %.0f ms after%s; %d acks of the old leader arrived after %s)"
              % (system, nodes, i + 1, verb, member, gap, (t - times[k - 1]) / 1e6, what, first, el, j - k,
                 what))
    noun = {"kill": "kills", "silent": "isolations"}.get(fault, "rounds")
    to_first = {"kill": "kill", "silent": "link down"}.get(fault, "fault")
    if gaps:
        extra = ""
        if elected:
            extra = "; new leader logged: median %.0f ms, max %.0f ms" % (statistics.median(elected), max(elected))
        lost = ""
        if len(gaps) < rounds:
            lost = " of %d" % rounds
        print("%s %s nodes (%s): median %.0f ms, p99 %.0f ms, max %.0f ms over %d%s %s (%s to first ack: "
              "median %.0f ms, p99 %.0f ms, max %.0f ms%s)"
              % (system, nodes, fault, statistics.median(gaps), p99(gaps), max(gaps), len(gaps), lost, noun,
                 to_first, statistics.median(firsts), p99(firsts), max(firsts), extra))
    else:
        print("%s %s nodes (%s): no %s measured" % (system, nodes, fault, noun[:-1]))
    if json_path:
        r2 = lambda x: round(x, 1)
        row = {"system": system, "nodes": int(nodes), "fault": fault, "rounds": rounds,
               "measured": len(gaps), "not_isolated": bad,
               "median_ms": r2(statistics.median(gaps)) if gaps else None,
               "p99_ms": r2(p99(gaps)) if gaps else None, "max_ms": r2(max(gaps)) if gaps else None,
               "gaps": [r2(g) for g in gaps],
               "to_first_ack_ms": [r2(x) for x in firsts],
               "new_leader_logged_ms": [r2(x) for x in elected]}
        with open(json_path, "a") as fh:
            fh.write(json.dumps(row) + "\n")
    if bad:
        sys.exit(3)


# --- compare report ----------------------------------------------------------

NOTES = """
## What runs on each side, and where they differ

Every run is closed loop: each client has its own connection and one request in flight. Before
each 3-node workload, leadership is moved to the first member on both sides (`ddkv members
transfer n1`, `etcdctl move-leader`), so the one client of a 1-client run talks to the leader
in both systems (client 0 uses the first endpoint in both tools). ddkv's
load tool is `ddkv bench` (one C process, one libevent thread, one TCP connection per client);
etcd's is its own `tools/benchmark` (Go, gRPC) with `--conns N --clients N`, so each client also
has its own connection (HTTP/2). Both tools run on the same 2 cores as the servers; their CPU use
is listed above. On both sides the connections start spread over the members (client *i* on
member *i* mod n).

| workload | ddkv | etcd |
|---|---|---|
| synced writes | `ddkv bench --workload write`: a random key of 10,000, 16 B, value 256 B | `benchmark put --key-size 16 --val-size 256 --key-space-size 10000`: a random key of 10,000 (16 B, a binary varint), value 256 B |
| linearizable reads | `--workload read --consistency linearizable`: a random key of the 10,000 (all written first, untimed) | `benchmark range KEY --consistency l`: **always the same key** (written once before the runs, 256 B) |
| local reads | `--consistency stale`: the member's applied state; `--consistency causal`: the same once the member has applied what this client saw (in a read-only run it never waits) | `range KEY --consistency s` (serializable): the member's applied state. etcd has no causal level: both ddkv rows are set against the one serializable run |
| contended counter | `--workload cas`: every client increments one key: a linearizable read, then a transaction "if the value is still what I read, put value + 1", both retried until it holds | `benchmark stm --isolation s --keys 1 --keys-per-txn 1 --txn-wr-percent 100 --val-size 8`: every client runs an STM transaction on one key (see below) |

Where they differ, and which way it leans:

- **Writes go to the leader differently.** ddkv clients follow NOT_LEADER to the leader, so every
  write is sent to it directly. etcd members take a put on any member and a follower forwards
  it to the leader, so two thirds of the etcd connections write through a follower (an extra
  hop, and the answer waits until that follower has applied the entry). That is how each
  system's clients behave by default; etcd's tool could pin every connection to the leader
  (`--target-leader`), which this script does not do.
- **Reads hit one key on etcd, 10,000 on ddkv.** etcd's `range` benchmark repeats one named key;
  ddkv's spreads over 10,000 keys. Both data sets stay in memory (bbolt's mmap; RocksDB's block
  cache), so the difference is mostly cache locality, in etcd's favour.
- **Linearizable reads** are ReadIndex on both (etcd's default ReadOnlySafe; ddkv without leader
  leases): the leader confirms its leadership with a heartbeat round, batched over the reads
  waiting; a follower asks the leader for the index, then waits until it has applied it.
- **The counter is not the same operation.** etcd's tool has no counter. The nearest is `stm`
  (clientv3/concurrency STM): with `--isolation s` the first attempt reads the key with a
  linearizable read (a read-only Txn), then commits `Txn(If mod_revision == the one read,
  Then Put(key, 8 random bytes), Else Get(key))`; on a conflict it retries with the value the
  Else branch brought back, so **a retry costs etcd one round trip and ddkv two** (a new
  linearizable read, then the transaction). etcd compares the key's revision, ddkv the value
  (equivalent here: every write changes both); etcd writes random bytes, not value + 1, so it
  is a contended read-modify-write of one key rather than a counter. Latency is that of a
  whole transaction, retries included, on both. Note that with the tool's default
  `--txn-wr-percent 50` and one key per transaction, etcd's stm writes nothing
  (int(1 × 50 / 100) = 0): it would be a read-only benchmark, hence 100.
- **The client side is part of every figure.** Each number covers the whole path from the
  load tool through its protocol to the server and back: gRPC over HTTP/2 with protobuf from a
  Go program for etcd, msgpack frames over plain TCP from a C event loop for ddkv. At 1 client,
  where a read does no disk I/O, much of the latency is that client-side cost and not the
  server's work; where etcd's tool uses most of a core (the CPU line above), etcd's figure is
  partly the tool's own limit on this 2-core machine.
- **Measurement.** ddkv bench computes percentiles from a log-linear histogram (a few % bucket
  width). Writes and the counter run for `--duration-s` after a 1 s warm-up. Reads run
  count-based (`--ops`, calibrated by a short count-based run over 10 keys to take about
  `--duration-s`), because ddkv bench counts its prefill (writing all 10,000 keys, untimed)
  against the run's time and, at 1 client, measures nothing; the warm-up still follows the
  prefill. The counter runs with `--keys 1` (it uses a key of its own; the prefill is then two
  writes). etcd's tool is count-based: `--total` is calibrated from short runs just before
  (which also warm the cluster up) to take about the same time, percentiles are exact over
  every request (`--precise`), and its ops/s is successful requests over the whole run,
  connection set-up included. A run that took less than half the asked duration (the
  calibration missed) is flagged in the table.
- **Durability and settings.** Both acknowledge a write once it is fsync'd on a majority (ddkv:
  the Raft log, a synced RocksDB batch; etcd: its WAL; `--unsafe-no-fsync` is never used); both
  apply to the state machine without a further fsync (etcd: bbolt commits in batches). Election
  settings match: etcd `--heartbeat-interval 100 --election-timeout 1000 --pre-vote=true`
  (check-quorum is always on in etcd), ddkv defaults (heartbeat 100 ms, election 1000 ms,
  pre-vote and check-quorum on). etcd has `--quota-backend-bytes` 8 GiB and, since it keeps every
  revision until compacted, each workload starts on a fresh cluster and the history is
  compacted and defragmented between concurrency levels (untimed); ddkv compacts its log by
  itself (a snapshot every 10,000 entries) and also gets a fresh cluster per workload.
- **One machine.** Servers and load tool share 2 cores and one disk: the numbers say how each
  system uses a small shared box, not what it does on three machines. The ceilings above are
  the bounds: a one-node, one-client synced write cannot beat the disk's synced 4 KiB writes/s,
  and no request beats one loopback round trip.
"""


def cmd_meta(args):
    """meta FILE key=value... key:=JSON...: merge into the JSON object in FILE."""
    path = args[0]
    meta = json.load(open(path)) if os.path.exists(path) else {}
    for a in args[1:]:
        k, v = a.split("=", 1)
        if k.endswith(":"):  # key:=JSON; a list-valued key gets the value appended
            k, v = k[:-1], json.loads(v)
            if isinstance(meta.get(k), list) and not isinstance(v, list):
                meta[k].append(v)
                continue
        meta[k] = v
    with open(path, "w") as fh:
        json.dump(meta, fh, indent=1)


WORKLOADS = [
    # key, title, ddkv run, etcd run (key of the etcd results to compare with)
    ("write", "synced writes", "write", "write"),
    ("read-linearizable", "linearizable reads", "read-linearizable", "read-linearizable"),
    ("read-stale", "local reads: ddkv stale / etcd serializable", "read-stale", "read-serializable"),
    ("read-causal", "local reads: ddkv causal / etcd serializable", "read-causal", "read-serializable"),
    ("counter", "contended counter: ddkv cas / etcd stm", "counter", "counter"),
]


def fmt_num(x, digits=0):
    if x is None:
        return "–"
    if digits == 0:
        return "{:,.0f}".format(x)
    return "{:.{d}f}".format(x, d=digits)


def fmt_ms(x):
    if x is None:
        return "–"
    return "%.2f" % x if x < 10 else "%.1f" % x if x < 100 else "%.0f" % x


def ops_cell(r):
    if not r:
        return "–"
    if r.get("failed"):
        return "failed"
    return fmt_num(r["ops_per_s"])


def lat_pair(r):
    if not r or r.get("failed"):
        return "–"
    return "%s / %s" % (fmt_ms(r.get("p50_ms")), fmt_ms(r.get("p99_ms")))


def targets(w, m, rows):
    """The three targets of the performance issue, judged on this run's rows."""
    def row(wl, c):
        for r in rows:
            if r["nodes"] == 3 and r["workload"] == wl and r["clients"] == c:
                return r
        return None

    def ok(x):
        return "**met**" if x else "**not met**"

    lines = []
    r = row("write", 64)
    if r and r["ddkv"] and not r["ddkv"].get("failed"):
        d, e = r["ddkv"], r["etcd"]
        ratio = d["ops_per_s"] / e["ops_per_s"] if e and not e.get("failed") and e.get("ops_per_s") else None
        good = d["ops_per_s"] >= 10000 and (d.get("p99_ms") or 1e9) < 20 and ratio is not None and ratio >= 2.5
        lines.append("1. 3-node synced writes at 64 clients ≥ 2.5× etcd and ≥ 10,000 ops/s, p99 < 20 ms: "
                     "%s ops/s, %s× etcd, p99 %s ms: %s." % (fmt_num(d["ops_per_s"]),
                                                             "%.2f" % ratio if ratio else "–",
                                                             fmt_ms(d.get("p99_ms")), ok(good)))
    r = row("write", 1)
    ceil = m.get("ceilings") or []
    rtt = m.get("rtt")
    if r and r["ddkv"] and not r["ddkv"].get("failed") and ceil and rtt:
        sync_ms = 1e3 / ceil[0]["writes_per_s"]
        rtt_ms = rtt["median_us"] / 1e3
        bound = 1.5 * (sync_ms + rtt_ms)
        p50 = r["ddkv"].get("p50_ms")
        text = ("2. single-client 3-node write p50 ≤ 1.5 × (one synced 4 KiB write + one loopback round trip) "
                "= 1.5 × (%.3f + %.3f) = %.3f ms: p50 %.3f ms: %s." % (sync_ms, rtt_ms, bound, p50, ok(p50 <= bound)))
        sf = m.get("syncfloor")
        if sf:
            floor = sf["second_of_three_p50_us"] / 1e3 + 2 * rtt_ms
            text += (" On one shared disk a commit waits for two of three members' syncs that fall together: "
                     "the second of three synced appends released at once finishes after %.3f ms (one alone: "
                     "%.3f ms), so no 3-node write here can beat %.3f ms (that plus the client's and the "
                     "follower's round trips); ddkv's p50 is %.2f× that floor."
                     % (sf["second_of_three_p50_us"] / 1e3, sf["single_p50_us"] / 1e3, floor, p50 / floor))
        lines.append(text)
    r = row("read-linearizable", 64)
    if r and r["ddkv"] and r["etcd"] and not r["ddkv"].get("failed") and not r["etcd"].get("failed"):
        ratio = r["ddkv"]["ops_per_s"] / r["etcd"]["ops_per_s"]
        lines.append("3. linearizable reads at 64 clients ≥ 5× etcd: %.2f×: %s." % (ratio, ok(ratio >= 5)))
    if lines:
        w("## Targets")
        w("")
        w("The performance issue's three targets, judged on the rows above:")
        w("")
        for x in lines:
            w(x)
        w("")


def cmd_report(args):
    run_dir, prefix = args[0], args[1]
    meta = json.load(open(os.path.join(run_dir, "meta.json")))
    results = []
    p = os.path.join(run_dir, "results.jsonl")
    if os.path.exists(p):
        results = [json.loads(x) for x in open(p) if x.strip()]

    def find(system, nodes, wl, clients):
        for r in results:
            if r["system"] == system and r["nodes"] == nodes and r["workload"] == wl and r["clients"] == clients:
                return r
        return None

    rows = []
    for nodes in (3, 1):
        for key, title, dwl, ewl in WORKLOADS:
            for c in sorted({r["clients"] for r in results if r["nodes"] == nodes}):
                d, e = find("ddkv", nodes, dwl, c), find("etcd", nodes, ewl, c)
                if not d and not e:
                    continue
                ratio = (d["ops_per_s"] / e["ops_per_s"]
                         if d and e and d["ops_per_s"] and e["ops_per_s"] else None)
                rows.append({"nodes": nodes, "workload": key, "title": title, "clients": c,
                             "ddkv": d, "etcd": e, "ratio_ops": ratio})
    doc = {"meta": meta, "results": results, "rows": [
        {k: v for k, v in r.items() if k not in ("ddkv", "etcd")} |
        {"ddkv_ops_per_s": r["ddkv"]["ops_per_s"] if r["ddkv"] else None,
         "ddkv_p50_ms": r["ddkv"]["p50_ms"] if r["ddkv"] else None,
         "ddkv_p99_ms": r["ddkv"]["p99_ms"] if r["ddkv"] else None,
         "etcd_ops_per_s": r["etcd"]["ops_per_s"] if r["etcd"] else None,
         "etcd_p50_ms": r["etcd"]["p50_ms"] if r["etcd"] else None,
         "etcd_p99_ms": r["etcd"]["p99_ms"] if r["etcd"] else None}
        for r in rows]}
    with open(prefix + ".json", "w") as fh:
        json.dump(doc, fh, indent=1)
        fh.write("\n")

    plot(run_dir, prefix, meta, results)
    m = meta
    out = []
    w = out.append
    title = "# ddkv vs etcd on one machine, %s" % m["date"]
    if m.get("quick"):
        title += " (--quick smoke run)"
    w(title)
    w("")
    if m.get("warning"):
        w("> **%s**" % m["warning"])
        w("")
    w("`bench/compare.sh %s` at commit `%s`. Every process on 127.0.0.1, every data directory on the "
      "same disk (`%s`), one system running at a time. Raw outputs: `%s/`."
      % (m["args"], m["commit"], m["data_dir"], m["run_dir"]))
    w("")
    w("## Machine and physical ceilings")
    w("")
    w("| what | value |")
    w("|---|---|")
    w("| CPU | %s × %s |" % (m["nproc"], m["cpu"]))
    w("| kernel | %s |" % m["kernel"])
    w("| disk under var/ | %s |" % m["disk"])
    w("| load average at start | %s |" % m.get("loadavg", "?"))
    for c in m.get("ceilings", []):
        w("| synced 4 KiB writes/s (`dd oflag=dsync`, %d writes, %s) | %s |"
          % (c["count"], c["when"], fmt_num(c["writes_per_s"])))
    if m.get("rtt"):
        w("| loopback TCP round trip (%s, %d round trips) | median %.1f µs, p99 %.1f µs |"
          % (m["rtt"]["method"], m["rtt"]["round_trips"], m["rtt"]["median_us"], m["rtt"]["p99_us"]))
    sf = m.get("syncfloor")
    if sf:
        w("| synced 4 KiB append, one writer (`benchtool.py syncfloor`, %d rounds) | median %.0f µs, p99 %.0f µs |"
          % (sf["rounds"], sf["single_p50_us"], sf["single_p99_us"]))
        w("| the same, three writers released together (three members' log syncs on this one disk): "
          "first / second / third to finish | medians %.0f / %.0f / %.0f µs |"
          % (sf["first_of_three_p50_us"], sf["second_of_three_p50_us"], sf["third_of_three_p50_us"]))
    w("| etcd | %s |" % m.get("etcd_version", "not run"))
    w("| load tools | ddkv: `ddkv bench` (one libevent thread); etcd: its `tools/benchmark` built from "
      "Debian's source of the same version (`bench/etcd-benchmark.sh`), Go/gRPC |")
    w("")
    for nodes in (3, 1):
        nrows = [r for r in rows if r["nodes"] == nodes]
        if not nrows:
            continue
        w("## %s" % ("Three nodes" if nodes == 3 else "One node"))
        w("")
        w("Closed loop, key 16 B, value 256 B, key space 10,000, about %s s per run. Latency in ms."
          % m["duration_s"])
        w("")
        w("| workload | clients | ddkv ops/s | etcd ops/s | ddkv/etcd | ddkv p50 / p99 | etcd p50 / p99 |")
        w("|---|---:|---:|---:|---:|---:|---:|")
        for r in nrows:
            d, e = r["ddkv"], r["etcd"]
            flag = ""
            for s, x in (("ddkv", d), ("etcd", e)):
                if x and x.get("errors"):
                    flag += " (%s: %d errors)" % (s, x["errors"])
                if x and x.get("duration_s") and x["duration_s"] < 0.5 * float(m["duration_s"]):
                    flag += " (%s: only a %.2f s run)" % (s, x["duration_s"])
            w("| %s%s | %d | %s | %s | %s | %s | %s |" % (
                r["title"], flag, r["clients"], ops_cell(d), ops_cell(e),
                ("%.2f" % r["ratio_ops"]) if r["ratio_ops"] else "–", lat_pair(d), lat_pair(e)))
        w("")
        fails = ["%s %s %d clients: %s" % (s, r["workload"], r["clients"], x["failed"])
                 for r in nrows for s, x in (("ddkv", r["ddkv"]), ("etcd", r["etcd"])) if x and x.get("failed")]
        if fails:
            w("Failed runs (see the raw outputs): " + "; ".join(sorted(set(fails))) + ".")
            w("")
        if nodes == 3:
            place = []
            for r in nrows:
                if r["clients"] != 1 or r["workload"] == "read-causal":
                    continue
                for s in ("ddkv", "etcd"):
                    x = r[s]
                    if x and x.get("first_endpoint_leads") in ("yes", "no"):
                        place.append("%s %s %s" % (s, r["workload"], x["first_endpoint_leads"]))
            if place:
                w("Was the member the single client talked to (the first endpoint) the leader? "
                  + ", ".join(place) + ". It matters for 1-client latency: through a follower a write "
                  "(etcd) or a linearizable read (both) takes one more round trip.")
                w("")
            extra = [r for r in nrows if r["workload"] == "counter" and r["ddkv"] and "attempts_per_op" in r["ddkv"]]
            if extra:
                w("ddkv counter attempts per increment: " + ", ".join(
                    "%d clients %.2f" % (r["clients"], r["ddkv"]["attempts_per_op"]) for r in extra) + ".")
                w("")
            cpu = [(r["clients"], r["workload"], r["ddkv"], r["etcd"]) for r in nrows]
            if any((d and d.get("driver_cpu_pct")) or (e and e.get("driver_cpu_pct")) for _, _, d, e in cpu):
                w("Load generator CPU (% of one core; they share the 2 cores with the servers): " + "; ".join(
                    "%s %d: ddkv %s, etcd %s" % (wl, c, fmt_num(d.get("driver_cpu_pct")) if d else "–",
                                                  fmt_num(e.get("driver_cpu_pct")) if e else "–")
                    for c, wl, d, e in cpu if wl != "read-causal") + ".")
                w("")
    targets(w, m, rows)
    if os.path.exists(prefix + ".png"):
        w("Plot: `%s.png` (three nodes: throughput and p99 against clients)." % os.path.basename(prefix))
        w("")
    w(NOTES.strip())
    w("")
    with open(prefix + ".md", "w") as fh:
        fh.write("\n".join(out))


def plot(run_dir, prefix, meta, results):
    """Throughput and p99 against clients, three nodes, one row of panels per workload."""
    series = {
        "write": [("ddkv", "write", "ddkv"), ("etcd", "write", "etcd put")],
        "read-linearizable": [("ddkv", "read-linearizable", "ddkv linearizable"),
                              ("etcd", "read-linearizable", "etcd range (l)")],
        "local": [("ddkv", "read-stale", "ddkv stale"), ("ddkv", "read-causal", "ddkv causal"),
                  ("etcd", "read-serializable", "etcd range (s)")],
        "counter": [("ddkv", "counter", "ddkv cas"), ("etcd", "counter", "etcd stm")],
    }
    titles = {"write": "Synced writes", "read-linearizable": "Linearizable reads",
              "local": "Local reads", "counter": "Contended counter (one key)"}
    styles = {"ddkv": 'lc rgb "#1f77b4"', "etcd": 'lc rgb "#d62728"'}
    dashes = ["dt 1 pt 7", "dt 2 pt 5", "dt 1 pt 9"]
    panels = []
    for key in ("write", "read-linearizable", "local", "counter"):
        lines = []
        for i, (system, wl, label) in enumerate(series[key]):
            pts = sorted((r["clients"], r["ops_per_s"], r.get("p99_ms")) for r in results
                         if r["system"] == system and r["nodes"] == 3 and r["workload"] == wl
                         and r.get("ops_per_s"))
            if not pts:
                continue
            path = os.path.join(run_dir, "plot-%s-%s.dat" % (system, wl))
            with open(path, "w") as fh:
                for c, ops, p99 in pts:
                    fh.write("%d %g %g\n" % (c, ops, p99 if p99 is not None else float("nan")))
            nth = sum(1 for s, _, _ in series[key][:i] if s == system)
            lines.append((path, label, styles[system], dashes[nth % len(dashes)]))
        if lines:
            panels.append((titles[key], lines))
    if not panels:
        return
    clients = sorted({r["clients"] for r in results if r["nodes"] == 3})
    tics = ", ".join('"%d" %d' % (c, c) for c in clients)
    xr = "[%g:%g]" % (min(clients) / 1.5, max(clients) * 1.5)
    g = []
    a = g.append
    height = 330 * len(panels) + 90
    a('set terminal pngcairo size 1300,%d font "DejaVu Sans,11" noenhanced' % height)
    a('set output "%s.png"' % prefix)
    head = "ddkv vs etcd, 3 nodes on one %s-core machine, %s, commit %s" % (meta["nproc"], meta["date"], meta["commit"])
    if meta.get("quick"):
        head += " (--quick smoke run, figures not meaningful)"
    a('set multiplot layout %d,2 title "%s" font ",14"' % (len(panels), head))
    a("set logscale x 2")
    a("set xrange %s" % xr)
    a("set xtics (%s)" % tics)
    a("set grid xtics ytics mytics lc rgb '#dddddd'")
    a("set key top left box opaque")
    a("set logscale y 10")
    a("set format y '%.0s%c'")
    a("set xlabel 'clients (log scale)'")
    for title, lines in panels:
        a("set title '%s: throughput'" % title)
        a("set ylabel 'ops/s (log scale)'")
        a("plot " + ", ".join("'%s' using 1:2 with linespoints lw 2 ps 1.3 %s %s title '%s'"
                              % (p, st, ds, lbl) for p, lbl, st, ds in lines))
        a("set title '%s: p99 latency'" % title)
        a("set ylabel 'p99 latency, ms (log scale)'")
        a("set format y '%g'")
        a("plot " + ", ".join("'%s' using 1:3 with linespoints lw 2 ps 1.3 %s %s title '%s'"
                              % (p, st, ds, lbl) for p, lbl, st, ds in lines))
        a("set format y '%.0s%c'")
    a("unset multiplot")
    gnuplot(run_dir, g, "benchtool")


def gnuplot(run_dir, lines, who):
    """Write the script lines to RUN_DIR/plot.gp and run gnuplot on it (a failure is
    reported on stderr, not fatal: the .md and .json stand without the plot)."""
    gp = os.path.join(run_dir, "plot.gp")
    with open(gp, "w") as fh:
        fh.write("\n".join(lines) + "\n")
    r = subprocess.run(["gnuplot", gp], capture_output=True, text=True)
    if r.returncode != 0:
        print("%s: gnuplot failed:\n%s" % (who, r.stderr), file=sys.stderr)


COMMANDS = {
    "free-base": cmd_free_base, "rtt": cmd_rtt, "syncfloor": cmd_syncfloor, "parse": cmd_parse, "etcd-rate": cmd_etcd_rate,
    "ddkv-rate": cmd_ddkv_rate,
    "etcd-revision": cmd_etcd_revision, "meta": cmd_meta,
    "etcd-leader": cmd_etcd_leader, "etcd-lead-first": cmd_etcd_lead_first, "wait-etcd-healthy": cmd_wait_etcd_healthy,
    "ddkv-leader": cmd_ddkv_leader, "wait-ddkv-healthy": cmd_wait_ddkv_healthy,
    "wait-resumed": cmd_wait_resumed, "wait-acks": cmd_wait_acks, "gaps": cmd_gaps, "report": cmd_report,
}

if __name__ == "__main__":
    if len(sys.argv) < 2 or sys.argv[1] not in COMMANDS:
        print(__doc__, file=sys.stderr)
        sys.exit(2)
    COMMANDS[sys.argv[1]](sys.argv[2:])
