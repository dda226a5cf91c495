#!/usr/bin/env python3
"""Mutation check for the whole-node simulator: break one rule of the node at
a time in a *copy* of the tree, build nodesim from the copy, and count the
seeds it takes to notice. The source tree is never modified.

  test/nodesim/mutate.py [--seeds N] [--nodes 3|5] [answer apply dedup ...]

  answer  a write answered before its entry's log sync completes (the batch is
          finished at once, the sync never asked for)
  apply   a committed entry applied before it is durable in the local log
  dedup   session deduplication skipped: a retried write applies again
  watch   a watch event delivered before its entry committed (published as
          the entry is staged, not once the state machine batch is written)
  lease   a lease expired by a follower's clock: a new leader's countdowns
          run on as if started when it, a follower, saw the lease (half the
          ttl left) instead of the full ttl
  jobs    a job claim not fenced: an ACK, NACK or EXTEND is checked and
          guarded against the job's current revision, not its token
Regressions: the node bugs nodesim found, each put back:
  fence   a full disk's fence whose probe meets a failed fsync stays a full
          disk's (the store is never reopened: fenced for good)
  watchfrom  a WATCH from a revision the member has not applied yet is sent
          what it applies below that revision
  memberlead MEMBER_ADD's "already done" answered by any member
  leaserevoke a keepalive answered for a lease whose revoke is proposed
  leasefence  a keepalive answered by a leader whose storage failed
  keepalive   a keepalive answered at once, without the ReadIndex round that
          shows this member still leads (a deposed leader extends a lease)
  authrev     a client's write carries no auth rev (no envelope)
  authcheck   a write admitted under permissions a revoke (or a leader's
          unapplied change) has replaced applies all the same
  takeprops   stale proposals answered (running completions that propose
          again) before the new proposal is queued: the queue loses its order

Prints, for each, the seeds run until the first failure ("caught at seed S")
or "NOT caught in N seeds". Exit 1 if any mutant survives.
"""
import argparse, os, re, shutil, subprocess, sys, tempfile, time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

MUTATIONS = {
    "answer": ("an answer sent before its entry's sync completes", "src/core/node/replica.c",
               "    n->rep->syncing = true;\n    n->io->sync_submit(n);",
               "    n->rep->syncing = true;\n    replica_sync_done(n, ERR_OK, 0, \"\");"),
    "apply": ("an entry applied before it is durable locally", "src/core/node/replica.c",
              "    size_t k = replica_durable_committed(n, rd);",
              "    size_t k = rd->n_committed + 0 * replica_durable_committed(n, rd);"),
    "dedup": ("session deduplication skipped", "src/core/kv/sm.c",
              "&& op->seq <= sess.last_seq) {",
              "&& op->seq <= sess.last_seq && op->kind == SM_OP_NOOP) {"),
    "watch": ("a watch event delivered before its entry committed", "src/core/node/mod/watch.c",
              "                ev->version, ev->lamport);\n}",
              "                ev->version, ev->lamport);\n    watch_publish(n);\n}"),
    "lease": ("a lease expired by a follower's clock", "src/core/node/mod/lease.c",
              "    lt_put(t, id, ttl_ms, clock_mono_ms() + ttl_ms);",
              "    lt_put(t, id, ttl_ms, clock_mono_ms() + ttl_ms / 2);"),
    "jobs": ("a job claim not fenced", "src/core/node/mod/jobs.c",
             ("    if (j.mod_rev != token || strcmp(j.state, \"claimed\") != 0) {",
              "    if (jt_begin(&t, &j, token) != ERR_OK) {"),
             ("    if (strcmp(j.state, \"claimed\") != 0) {",
              "    if (jt_begin(&t, &j, j.mod_rev) != ERR_OK) {")),
    "fence": ("(regression) a fence that meets EIO in its probe", "src/core/node/replica.c",
              "            n->rep->storage_failed = ERR_IO;\n            n->rep->store_reopened = false;",
              "            if (n->rep->storage_failed == ERR_IO)\n                n->rep->store_reopened = false;"),
    "watchfrom": ("(regression) WATCH sends below its from_rev", "src/core/node/mod/watch.c",
                  "        if (e->mod_rev < w->from_rev || e->klen < w->plen ||",
                  "        if (e->klen < w->plen ||"),
    "leaserevoke": ("(regression) keepalive of a lease being revoked", "src/core/node/mod/lease.c",
                    "    if (!s || s->revoking_until_ms) {", "    if (!s) {"),
    "leasefence": ("(regression) keepalive answered by a fenced leader", "src/core/node/mod/lease.c",
                   "    if (!replica_lead_or_refuse(n, c, rid, true))\n        return NULL;\n    struct raft_status st;",
                   "    if (!replica_lead_or_refuse(n, c, rid, false))\n        return NULL;\n    struct raft_status st;"),
    "keepalive": ("(regression) keepalive answered without a ReadIndex round", "src/core/node/mod/lease.c",
                  "    replica_read_barrier(n, c, m->request_id, lease_keepalive_confirmed, id);",
                  "    lease_keepalive_confirmed(n, c, m->request_id, id);"),
    "takeprops": ("(regression) stale proposals answered before the new one is queued", "src/core/node/replica.c",
                  ("    struct proposal *old = replica_take(n, keep, stale);\n",
                   "    replica_fail_props(n, old, stale, DDKV_WERR_UNAVAILABLE,\n"
                   "                       \"leadership changed before this write committed; it was not applied\");\n}"),
                  ("    struct proposal *old = replica_take(n, keep, stale);\n"
                   "    replica_fail_props(n, old, stale, DDKV_WERR_UNAVAILABLE, \"leadership changed\");\n",
                   "}")),
    "authrev": ("(regression) a client's write without its auth rev", "src/core/node/replica.c",
                "        o.auth_checked = true;\n", "        o.auth_checked = false;\n"),
    "authcheck": ("(regression) a write admitted under old permissions applied", "src/core/kv/sm.c",
                  "    if (apply && op->auth_checked && adb->enabled && adb->rev > op->auth_rev) {",
                  "    if (apply && op->auth_checked && adb->enabled && adb->rev > op->auth_rev && 0) {"),
    "memberlead": ("(regression) MEMBER_ADD done answered by a follower", "src/core/node/mod/members.c",
                   "    if (!replica_lead_or_refuse(n, c, m->request_id, true))\n        return;\n"
                   "    uint64_t id = cluster_node_id(name);\n    if (raft_conf_has(",
                   "    uint64_t id = cluster_node_id(name);\n    if (raft_conf_has("),
}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--seeds", type=int, default=2000)
    ap.add_argument("--nodes", type=int, default=3)
    ap.add_argument("which", nargs="*", default=[k for k in MUTATIONS if k in ("answer", "apply", "dedup", "watch", "lease", "jobs")])
    a = ap.parse_args()
    tmp = tempfile.mkdtemp(prefix="nodesim-mutant-")
    survived = 0
    try:
        files = subprocess.check_output(["git", "-C", ROOT, "ls-files"], text=True).split("\n")
        for f in files:
            if not f:
                continue
            src = os.path.join(ROOT, f)
            if os.path.isfile(src):
                os.makedirs(os.path.dirname(os.path.join(tmp, f)), exist_ok=True)
                shutil.copy2(src, os.path.join(tmp, f))
        bld = os.path.join(tmp, "build")
        subprocess.check_call(["cmake", "-S", tmp, "-B", bld, "-DCMAKE_BUILD_TYPE=RelWithDebInfo",
                               "-DCMAKE_C_COMPILER=gcc"], stdout=subprocess.DEVNULL)
        jobs = str(os.cpu_count() or 2)
        for key in a.which:
            what, fname, old, new = MUTATIONS[key]
            path = os.path.join(tmp, fname)
            orig = open(path).read()
            olds, news = (old, new) if isinstance(old, tuple) else ((old,), (new,))
            text = orig
            for o, nw in zip(olds, news):
                if text.count(o) != 1:
                    sys.exit("mutation %s: the text to change is not found once in %s" % (key, fname))
                text = text.replace(o, nw)
            open(path, "w").write(text)
            try:
                subprocess.check_call(["cmake", "--build", bld, "--target", "nodesim", "-j", jobs],
                                      stdout=subprocess.DEVNULL)
                t0 = time.time()
                p = subprocess.run([os.path.join(bld, "test", "nodesim", "nodesim"), "--first", "1",
                                    "--count", str(a.seeds), "--nodes", str(a.nodes), "--quiet"],
                                   capture_output=True, text=True)
                secs = time.time() - t0
                m = re.search(r"seed (\d+) FAILED: (.*)", p.stderr)
                if p.returncode != 0 and m:
                    print("%-7s %-52s caught at seed %s (%.1f s): %s" % (key, what, m.group(1), secs,
                                                                      m.group(2)[:100]))
                elif p.returncode != 0:
                    print("%-7s %-52s caught (the simulator died, rc %d, %.1f s): %s" % (
                        key, what, p.returncode, secs, (p.stderr.strip().splitlines() or ["?"])[-1][:100]))
                else:
                    survived += 1
                    print("%-7s %-52s NOT caught in %d seeds (%.1f s)" % (key, what, a.seeds, secs))
                sys.stdout.flush()
            finally:
                open(path, "w").write(orig)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return 1 if survived else 0


if __name__ == "__main__":
    sys.exit(main())
