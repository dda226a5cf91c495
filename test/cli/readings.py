#!/usr/bin/env python3
"""Readings files for the job tests, and an independent computation of their
statistics (written from the rules in src/apps/jobs/csvstats.h, sharing no code
with it), to check a job's result against.

  readings.py make FILE BYTES     a deterministic file of at least BYTES
  readings.py stats FILE          the expected figures, as JSON
  readings.py compare EXPECTED RESULT   exit 1 (and say where) if they differ
"""
import calendar
import json
import math
import random
import re
import sys

COLUMNS = ["heart_rate", "systolic", "diastolic", "breath_rate", "spo2", "temp_c"]
RANGES = {"heart_rate": (20, 250), "systolic": (50, 260), "diastolic": (20, 160),
          "breath_rate": (4, 60), "spo2": (50, 100), "temp_c": (30, 45)}
NUMBER = re.compile(r"^-?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$")
ISO = re.compile(r"^(\d{4})-(\d\d)-(\d\d)T(\d\d):(\d\d):(\d\d)Z$")
BASE = calendar.timegm((2026, 1, 1, 0, 0, 0))


def iso(t):
    y, mo, d, h, mi, s = __import__("time").gmtime(t)[:6]
    return f"{y:04d}-{mo:02d}-{d:02d}T{h:02d}:{mi:02d}:{s:02d}Z"


def make(path, want):
    rnd = random.Random(2026)
    good = []  # recent good rows, to repeat as duplicates
    size = 0
    t = BASE
    with open(path, "w") as f:
        header = "timestamp,heart_rate,systolic,diastolic,breath_rate,spo2,temp_c\n"
        f.write(header)
        size += len(header)
        i = 0
        while size < want:
            i += 1
            r = rnd.random()
            if r < 0.004 and good:  # a duplicate; integers sometimes written as 72.0
                row = rnd.choice(good)
                cells = row.split(",")
                cells = [c + ".0" if c.isdigit() and rnd.random() < 0.5 and k > 0 else c
                         for k, c in enumerate(cells)]
                line = ",".join(cells)
            elif r < 0.005:
                line = f"{iso(t)},{rnd.randint(50, 120)},{rnd.randint(90, 150)}"  # too few fields
            elif r < 0.006:
                line = f"{iso(t)},{rnd.choice(['abc', '12 bpm', 'nan', 'inf', '0x1f'])},120,80,14,97,36.6"
            elif r < 0.007:
                line = f"yesterday,72,120,80,14,97,36.6"
            elif r < 0.0072:
                line = ""  # a blank line
            else:
                if r < 0.008:
                    ts = t  # the same timestamp as the previous row, other values
                elif r < 0.0085:
                    ts = t - rnd.randint(5, 500)  # out of order
                else:
                    t += 1
                    ts = t
                cells = [iso(ts),
                         f"{rnd.gauss(75, 14):.1f}" if rnd.random() > 0.002 else rnd.choice(["15", "260.5"]),
                         str(rnd.randint(85, 175)),
                         str(rnd.randint(55, 105)),
                         str(rnd.randint(8, 28)) if rnd.random() > 0.001 else "70",
                         str(rnd.randint(88, 100)) if rnd.random() > 0.001 else "101",
                         f"{rnd.gauss(36.8, 0.4):.2f}"]
                if rnd.random() < 0.005:
                    cells[rnd.randint(1, 6)] = ""  # a missing reading
                line = ",".join(cells)
                good.append(line)
                if len(good) > 1000:
                    good = good[-500:]
            f.write(line + "\n")
            size += len(line) + 1


def parse_ts(s):
    m = ISO.match(s)
    if not m:
        return None
    y, mo, d, h, mi, sec = map(int, m.groups())
    return calendar.timegm((y, mo, d, h, mi, sec)) * 1000000


def percentile(xs, p):
    h = (len(xs) - 1) * p / 100
    lo = math.floor(h)
    if lo + 1 >= len(xs):
        return xs[lo]
    return xs[lo] + (h - lo) * (xs[lo + 1] - xs[lo])


def stats(path):
    rows_total = used = dups = malformed = blank = conflicting = out_of_order = 0
    seen = set()
    seen_ts = set()
    prev_ts = None
    first = last = None
    values = {c: [] for c in COLUMNS}
    missing = {c: 0 for c in COLUMNS}
    with open(path) as f:
        header = f.readline().strip().split(",")
        assert header[1:] == COLUMNS, header
        for line in f:
            line = line.rstrip("\n")
            if not line.strip():
                blank += 1
                continue
            rows_total += 1
            cells = line.split(",")
            if len(cells) != 1 + len(COLUMNS):
                malformed += 1
                continue
            ts = parse_ts(cells[0])
            nums = []
            bad = ts is None
            for c in cells[1:]:
                if c == "":
                    nums.append(None)
                elif NUMBER.match(c):
                    nums.append(float(c))
                else:
                    bad = True
            if bad:
                malformed += 1
                continue
            key = (ts, tuple(nums))
            if key in seen:
                dups += 1
                continue
            seen.add(key)
            used += 1
            if ts in seen_ts:
                conflicting += 1
            seen_ts.add(ts)
            if prev_ts is not None and ts < prev_ts:
                out_of_order += 1
            prev_ts = ts
            first = ts if first is None else min(first, ts)
            last = ts if last is None else max(last, ts)
            for c, v in zip(COLUMNS, nums):
                if v is None:
                    missing[c] += 1
                else:
                    values[c].append(v)
    cols = []
    for c in COLUMNS:
        xs = sorted(values[c])
        n = len(xs)
        mean = math.fsum(xs) / n
        sd = math.sqrt(math.fsum((x - mean) ** 2 for x in xs) / (n - 1))
        lo, hi = RANGES[c]
        cols.append({"key": c, "count": n, "missing": missing[c], "min": xs[0], "max": xs[-1],
                     "mean": mean, "sd": sd,
                     "percentiles": {f"p{p}": percentile(xs, p) for p in (5, 25, 50, 75, 95, 99)},
                     "out_of_range": {"below": sum(1 for x in xs if x < lo),
                                      "above": sum(1 for x in xs if x > hi)}})
    return {"rows": {"total": rows_total, "used": used, "duplicates": dups, "blank_lines": blank,
                     "conflicting_timestamps": conflicting, "malformed": malformed},
            "timestamps": {"first_unix_ms": first // 1000, "last_unix_ms": last // 1000,
                           "out_of_order": out_of_order},
            "columns": cols}


def compare(exp, got):
    bad = []

    def same(path, a, b):
        if isinstance(a, float) or isinstance(b, float):
            if b is None or not math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-9):
                bad.append(f"{path}: expected {a!r}, the job says {b!r}")
        elif a != b:
            bad.append(f"{path}: expected {a!r}, the job says {b!r}")

    for k, v in exp["rows"].items():
        g = got["rows"][k]
        same(f"rows.{k}", v, g["count"] if k == "malformed" else g)
    for k, v in exp["timestamps"].items():
        same(f"timestamps.{k}", v, got["timestamps"][k])
    gcols = {c["key"]: c for c in got["columns"]}
    assert len(gcols) == len(exp["columns"]), sorted(gcols)
    for e in exp["columns"]:
        g = gcols[e["key"]]
        for k in ("count", "missing", "min", "max", "mean", "sd"):
            same(f"{e['key']}.{k}", e[k], g[k])
        for p, v in e["percentiles"].items():
            same(f"{e['key']}.{p}", v, (g["percentiles"] or {}).get(p))
        for k, v in e["out_of_range"].items():
            same(f"{e['key']}.out_of_range.{k}", v, g["out_of_range"][k])
    for b in bad:
        print(b, file=sys.stderr)
    if not bad:
        print(f"{len(exp['columns'])} columns, "
              f"{exp['rows']['used']} rows used, {exp['rows']['duplicates']} duplicates, "
              f"{exp['rows']['malformed']} malformed: every figure matches")
    return not bad


if __name__ == "__main__":
    cmd = sys.argv[1]
    if cmd == "make":
        make(sys.argv[2], int(sys.argv[3]))
    elif cmd == "stats":
        json.dump(stats(sys.argv[2]), sys.stdout)
    elif cmd == "compare":
        ok = compare(json.load(open(sys.argv[2])), json.load(open(sys.argv[3])))
        sys.exit(0 if ok else 1)
    else:
        sys.exit(__doc__)
