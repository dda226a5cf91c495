#!/usr/bin/env python3
"""A job worker with its own algorithm: for every job it claims, it reads the
job's input (text, one number per line, e.g. a CSV column), computes a robust
summary — median, the median absolute deviation, and the values further than
3.5 MADs from the median (modified z-score outliers) — and acks that JSON as
the job's result (jobresult/<id>). The ack carries the claim's fencing token:
if the claim expired and another worker took the job, the cluster refuses it
(ddkv.Fenced) and this worker's result is thrown away. A long job extends its
claim as it goes (each extend gives a new token). Bad input is nacked.

    python3 job_worker.py --endpoints 127.0.0.1:7001 --name py-worker --max-jobs 10
    ddkv job submit --endpoints 127.0.0.1:7001 numbers.txt    # gives it work
"""
import argparse
import json
import os
import statistics
import sys
import time
from typing import List, Optional

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
import ddkv  # noqa: E402


def numbers(data: bytes) -> List[float]:
    """One number per line (the first comma-separated field); blank lines and a header are skipped."""
    out = []
    for i, line in enumerate(data.decode("utf-8", "replace").splitlines()):
        field = line.split(",")[0].strip()
        if not field:
            continue
        try:
            out.append(float(field))
        except ValueError:
            if i == 0:
                continue  # a header
            raise ValueError(f"line {i + 1}: {field!r} is not a number") from None
    if not out:
        raise ValueError("no numbers")
    return out


def robust_summary(xs: List[float]) -> dict:
    med = statistics.median(xs)
    mad = statistics.median(abs(x - med) for x in xs)
    # 0.6745 makes the MAD consistent with a normal distribution's sigma.
    outliers = [x for x in xs if mad and abs(0.6745 * (x - med) / mad) > 3.5]
    return {"n": len(xs), "median": med, "mad": mad, "min": min(xs), "max": max(xs), "outliers": outliers}


def work_one(c: ddkv.Client, name: str, visibility: float = 30.0) -> Optional[str]:
    """Claim one job and settle it; returns its id and outcome, or None if none waits."""
    job = c.claim(name, visibility=visibility)
    if job is None:
        return None
    try:
        data = c.job_data(job.data_key)
        job = c.extend(job, visibility)  # a fresh claim (and token) before the real work
        result = robust_summary(numbers(data))
    except (ValueError, ddkv.NotFound) as e:
        state = c.nack(job, reason=str(e)[:200])
        return f"{job.id} {state}"
    try:
        c.ack(job, json.dumps(result, sort_keys=True))
        return f"{job.id} done"
    except ddkv.Fenced:
        return f"{job.id} fenced"  # another worker owns it now: drop our result


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--endpoints", default=os.environ.get("DDKV_ENDPOINTS", "127.0.0.1:7001"))
    ap.add_argument("--name", default=f"py-worker-{os.getpid()}")
    ap.add_argument("--max-jobs", type=int, default=0, help="stop after this many (0: run for ever)")
    ap.add_argument("--idle-exit", action="store_true", help="stop when no job waits")
    a = ap.parse_args()
    done = 0
    try:
        with ddkv.Client(a.endpoints, timeout=5.0) as c:
            while a.max_jobs == 0 or done < a.max_jobs:
                r = work_one(c, a.name)
                if r is None:
                    if a.idle_exit:
                        break
                    time.sleep(0.5)
                    continue
                print(r, flush=True)
                done += 1
    except KeyboardInterrupt:
        pass
    except ddkv.Error as e:
        print(f"job_worker: {e}", file=sys.stderr)
        return e.exit_code
    return 0


if __name__ == "__main__":
    sys.exit(main())
