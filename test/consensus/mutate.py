#!/usr/bin/env python3
"""Mutation check for the Raft core: break one rule at a time in a *copy* of
src/core/consensus, build the simulator against the copy, and count how many seeds
it takes the simulator to notice. The source tree is never modified.

  test/consensus/mutate.py [--build DIR] [--seeds N] [a|b|c ...]

  a  commit by counting replicas of entries from earlier terms (§5.4.2 off)
  b  grant votes without the log up-to-date check (§5.4.1 off)
  c  send vote grants before the vote is durable (thesis 3.8 off)
"""
import argparse, os, shutil, subprocess, sys, tempfile, time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

MUTATIONS = {
    "a": ("current-term commit rule", "raft.c",
          "if (mci <= r->commit || !rlog_match(&r->log, mci, r->term))",
          "if (mci <= r->commit)"),
    "b": ("log up-to-date check in voting", "raft.c",
          "return term > lt || (term == lt && index >= rlog_last(&r->log));",
          "(void)lt; (void)index; (void)term; return true;"),
    "c": ("persisting the vote before replying", "raft.c",
          "    ob_push(r, m, hold ? OB_WAIT_READY : OB_SEND);",
          "    if (m->type == RAFT_MSG_VOTE_RESP && !m->reject)\n"
          "        hold = false;\n"
          "    ob_push(r, m, hold ? OB_WAIT_READY : OB_SEND);"),
}


def build(tmp, build_dir):
    srcs = [os.path.join(tmp, "src", "core", "consensus", f)
            for f in sorted(os.listdir(os.path.join(tmp, "src", "core", "consensus"))) if f.endswith(".c")]
    msgpack = subprocess.check_output(["pkg-config", "--cflags", "--libs", "msgpack"], text=True).split()
    exe = os.path.join(tmp, "sim")
    cmd = (["cc", "-std=c11", "-O1", "-g", "-D_POSIX_C_SOURCE=200809L", "-D_DEFAULT_SOURCE",
            "-fsanitize=address,undefined", "-fno-sanitize-recover=undefined",
            "-I", os.path.join(tmp, "src", "core"), "-I", os.path.join(ROOT, "src", "core"),
            "-I", os.path.join(ROOT, "include"), "-o", exe]
           + srcs + [os.path.join(ROOT, "test", "consensus", "sim.c"),
                     os.path.join(build_dir, "libddkv_proto.a")] + msgpack)
    subprocess.check_call(cmd)
    return exe


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", default=os.path.join(ROOT, "build"))
    ap.add_argument("--seeds", type=int, default=2000)
    ap.add_argument("which", nargs="*", default=sorted(MUTATIONS))
    a = ap.parse_args()
    if not os.path.exists(os.path.join(a.build, "libddkv_proto.a")):
        sys.exit("build ddkv_proto in %s first" % a.build)
    for key in a.which:
        what, fname, old, new = MUTATIONS[key]
        tmp = tempfile.mkdtemp(prefix="raft-mutant-")
        try:
            shutil.copytree(os.path.join(ROOT, "src", "core", "consensus"), os.path.join(tmp, "src", "core", "consensus"))
            path = os.path.join(tmp, "src", "core", "consensus", fname)
            text = open(path).read()
            if text.count(old) != 1:
                sys.exit("mutation %s: pattern not found exactly once in %s" % (key, fname))
            open(path, "w").write(text.replace(old, new))
            exe = build(tmp, a.build)
            env = dict(os.environ, ASAN_OPTIONS="detect_leaks=0", UBSAN_OPTIONS="halt_on_error=1")
            env.pop("DDKV_SEED", None)
            env.pop("DDKV_SEEDS", None)
            caught, first, t0 = set(), None, time.time()
            seed = 1
            while seed <= a.seeds:
                # One process runs many seeds; an assertion in the core kills
                # it, and the last "SEED n" line says which seed did it.
                r = subprocess.run([exe, "--first", str(seed), "--count", str(a.seeds - seed + 1),
                                    "--quiet", "--all"], env=env, stdout=subprocess.DEVNULL,
                                   stderr=subprocess.PIPE, text=True, errors="replace")
                cur, last_seed = None, seed
                for l in r.stderr.splitlines():
                    if l.startswith("SEED "):
                        cur = int(l.split()[1])
                        last_seed = cur
                    elif "SIM FAILURE" in l or "panic" in l.lower() or "assert" in l.lower() \
                            or "ERROR: AddressSanitizer" in l or "runtime error" in l:
                        if cur is not None and cur not in caught:
                            caught.add(cur)
                            if first is None or cur < first[0]:
                                first = (cur, l.strip()[:300])
                if r.returncode != 0 and last_seed not in caught and \
                        not r.stderr.rstrip().endswith("failed"):
                    caught.add(last_seed)
                    if first is None or last_seed < first[0]:
                        first = (last_seed, r.stderr.strip().splitlines()[-1][:300])
                if r.returncode == 0 or r.stderr.rstrip().endswith("failed"):
                    break
                seed = last_seed + 1
            if first:
                print("(%s) first caught by seed %d: %s" % (key, first[0], first[1]), flush=True)
            caught = len(caught)
            first = first[0] if first else None
            print("(%s) %s disabled: caught by %d of %d seeds; first at seed %s (%.0fs)"
                  % (key, what, caught, a.seeds, first, time.time() - t0), flush=True)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
