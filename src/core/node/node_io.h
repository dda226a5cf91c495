/* The node's I/O seam: everything the replica and the cluster do outside
 * memory that a simulator must control, as one table of function pointers.
 *
 * Two implementations: node_io_event (node_io_event.c: today's threads and
 * libevent calls, what `ddkv serve` runs) and the whole-node simulator's
 * (test/nodesim/: a simulated network, syncs that complete in virtual time,
 * timers on the scheduler's clock, one seeded PRNG). Storage calls stay on
 * kv/store.h (the simulator links store_mem.c) and time on util/clock.h
 * (clock_set_source); what is here is what those two cannot express: work
 * that completes asynchronously, messages, timers and randomness.
 *
 * Every function takes the node; an implementation's own state is n->io_ctx.
 * The hot path (a log sync per group commit, a send per message) is one
 * indirect call each. All of it runs on the node's one thread. */
#ifndef DDKV_NODE_NODE_IO_H
#define DDKV_NODE_NODE_IO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "util/err.h"

struct node;
struct raft_msg;
struct store_batch;
/* A timer (owned by the implementation, freed by timer_free). */
struct node_timer;
/* A background snapshot job: writing an image or installing one. */
struct node_job;

typedef void (*node_timer_fn)(struct node *n);

/* Work done off the node's thread (the auth module's password hashes): run
 * runs elsewhere and touches nothing of the node's, then done runs on the
 * node's thread. The caller owns it (embeds it in its own job). */
struct node_work {
    void (*run)(struct node_work *w);
    void (*done)(struct node *n, struct node_work *w);
    unsigned lane;          /* 0..NODE_POOL_LANES-1: the lower is served first */
    struct node_work *next; /* the implementation's */
};
#define NODE_POOL_LANES 4
#define NODE_POOL_THREADS_MAX 4
/* A pool of threads for node_work (owned by the implementation). */
struct node_pool;

struct node_io {
    /* The log syncer. sync_start before the first submit, sync_stop at the
     * end (waits for a sync in flight). sync_submit starts making everything
     * written to n->st so far durable, one at a time; its completion is
     * learned by sync_poll (never blocks; true when none is in flight or it
     * finished, and then *rc, *ns and eb say how it went, consumed) or
     * sync_wait (blocks until it finished). When a sync finishes, the
     * implementation makes sure replica_drive runs soon after. */
    int (*sync_start)(struct node *n, struct errbuf *eb);
    void (*sync_stop)(struct node *n);
    void (*sync_submit)(struct node *n);
    bool (*sync_poll)(struct node *n, int *rc, uint64_t *ns, struct errbuf *eb);
    void (*sync_wait)(struct node *n, int *rc, uint64_t *ns, struct errbuf *eb);

    /* A Raft message to a peer (m and what it points to are borrowed for
     * the call): ERR_OK queued, ERR_AGAIN dropped for backpressure, another
     * code not sendable (no such peer). flush sends what was queued. */
    int (*send)(struct node *n, const struct raft_msg *m);
    void (*flush)(struct node *n);
    /* What the peers said in their hellos (mod/members.c): has_peers, false
     * when there is no peer transport at all (a one-node cluster without a
     * peer port); peer_incarnation, the data dir incarnation member id's live
     * connection announced (0: none); peer_refuse, drop its connections (its
     * data dir is not the one the cluster recorded). */
    bool (*has_peers)(struct node *n);
    uint64_t (*peer_incarnation)(struct node *n, uint64_t id);
    /* The release member id's live connection announced (0: none), which
     * raises the cluster version (mod/members.c). */
    uint64_t (*peer_version)(struct node *n, uint64_t id);
    void (*peer_refuse)(struct node *n, uint64_t id, const char *why);

    /* Timers: fn(n) runs on the node's thread ms after timer_arm, again every
     * ms if repeat, until timer_cancel (or re-arming). NULL: out of memory. */
    struct node_timer *(*timer_new)(struct node *n, node_timer_fn fn);
    void (*timer_arm)(struct node *n, struct node_timer *t, uint32_t ms, bool repeat);
    bool (*timer_armed)(struct node *n, struct node_timer *t);
    void (*timer_cancel)(struct node *n, struct node_timer *t);
    void (*timer_free)(struct node *n, struct node_timer *t); /* NULL is fine */

    /* Snapshot images (kv/snapshot.h's jobs): writing one of n->st's
     * applied state to path, installing the image at path (raft_side is
     * borrowed until the job reports, as snap_install_start), asking whether
     * a job has finished (never blocks), and freeing it (a running write is
     * cancelled, an install waited for). Reading an image's chunks for a
     * follower: snap_verify (the whole file, once per send) and snap_read;
     * snap_bytes, an image's size (it paces the next snapshot). */
    int (*snap_write_start)(struct node *n, const char *path, uint64_t index, uint64_t term,
                            struct node_job **out, struct errbuf *eb);
    int (*snap_install_start)(struct node *n, const char *path, struct store_batch *raft_side,
                              struct node_job **out, struct errbuf *eb);
    bool (*snap_job_done)(struct node *n, struct node_job *j, int *rc, struct errbuf *eb);
    void (*snap_job_free)(struct node *n, struct node_job *j); /* NULL is fine */
    int (*snap_verify)(struct node *n, const char *path, struct errbuf *eb);
    uint64_t (*snap_bytes)(struct node *n, const char *path); /* an image's size, 0: unknown */
    int (*snap_read)(struct node *n, const char *path, uint64_t offset, uint8_t *buf, size_t cap,
                     size_t *len, bool *last, struct errbuf *eb);

    /* A work pool: nthreads threads, thread i taking work from lanes
     * 0..lanes[i]-1 (the lowest first) at nice[i] (NULL: all 0). submit
     * queues w; stop joins the threads and hands each work not yet done
     * back to drop (NULL: forgotten). NULL from pool_start: eb says why. */
    struct node_pool *(*pool_start)(struct node *n, unsigned nthreads, const unsigned *lanes, const int *nice,
                                    struct errbuf *eb);
    void (*pool_submit)(struct node *n, struct node_pool *p, struct node_work *w);
    void (*pool_stop)(struct node *n, struct node_pool *p, void (*drop)(struct node_work *w));

    /* Random bits where the node draws them: the Raft core's election jitter
     * seed, a data dir's incarnation, the delay before campaigning when the
     * leader's process is gone. ERR_IO when none can be had. */
    int (*random)(struct node *n, uint64_t *out);

    /* A SIGTERM'd leader's handoff is over: the node's loop stops. */
    void (*stop_loop)(struct node *n);
};

/* Today's: the log syncer thread (logsync.c) woken through an eventfd, the
 * peer transport (peer.c), libevent timers on n->base, kv/snapshot.c's
 * threads, the work pool's threads (pool.c), OpenSSL's RAND_bytes. n->io_ctx
 * is its log syncer (struct logsync, between sync_start and sync_stop). */
extern const struct node_io node_io_event;

#endif
