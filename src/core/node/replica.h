/* The replica (replica.c, logsync.c, lag.c): the Raft driver, its log batch,
 * the proposal and read queues, snapshots, the log syncer and the storage
 * fence. Modules propose and read through it; it calls them back only
 * through their hooks (module.h). */
#ifndef DDKV_NODE_REPLICA_H
#define DDKV_NODE_REPLICA_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "kv/sm.h"
#include "util/err.h"

struct node;
struct conn;
struct hist;
struct lag;
struct raft;
struct raft_ready;
struct replica;

struct proposal;
/* How a module answers its write once the entry applied cleanly (no error,
 * not a stale retry, not refused by the state machine): it encodes its own
 * reply to p->c (open), from res. The replica knows no module's replies. */
typedef void (*replica_reply_fn)(struct node *n, const struct proposal *p, const struct sm_result *res);

/* A client's write waiting for its log entry to commit and apply. */
struct proposal {
    struct conn *c;     /* referenced */
    uint64_t request_id;
    uint32_t kind;      /* the reply's type (its request's, for latency) */
    replica_reply_fn reply; /* the module's answer; NULL: kind [lamport, revision] */
    uint64_t index, term; /* the entry; committed only if that index applies with that term */
    uint64_t t0_ns;     /* when the request arrived */
    struct sm_result res;
    bool lost;
    /* A module's own completion (mod/jobs.c): called instead of the reply
     * replica.c would send, with the result, or with the error the client
     * would otherwise get (err_code nonzero). p->c is still referenced. */
    void (*done)(struct node *n, const struct proposal *p, const struct sm_result *res, uint32_t err_code,
                 const char *err_text);
    void *done_ctx;
};

/* What a read asks for: one key, or a LIST page. */
struct read_target {
    const uint8_t *key; /* the key, or the LIST's prefix */
    size_t klen;
    bool list;
    const uint8_t *after; /* LIST: start strictly after this key */
    size_t alen;
    uint32_t limit;
};

/* A read waiting for its turn: a linearizable one for its ReadIndex round and
 * then for the state machine to reach that index, a causal one for the applied
 * Lamport time to reach the client's. */
struct pending_read {
    struct conn *c;       /* referenced */
    uint64_t request_id;
    uint64_t ctx;         /* linearizable: the raft_read_index ctx; 0 for causal */
    uint64_t index;       /* linearizable: answer once applied >= index (set when ready) */
    bool ready;
    uint64_t after_lamport; /* causal: answer once applied_lamport >= this */
    uint64_t deadline_ms;
    uint64_t t0_ns;
    struct read_target t; /* its key (and start_after) point into buf */
    uint8_t *buf;         /* owned copy of the key, then a LIST's start_after */
    /* A barrier (replica_read_barrier): called instead of answering t, with
     * the connection still open, once the read could be answered. */
    void (*done)(struct node *n, struct conn *c, uint64_t request_id, uint64_t arg);
    uint64_t done_arg; /* handed to done */
};

/* The Raft driver (replica.c). replica_new makes the part's state (NULL: out
 * of memory), replica_free frees it after replica_stop. replica_start opens
 * the core from the store and starts ticking; replica_stop stops the log
 * syncer and the snapshot jobs, frees the core and drops the reads still
 * waiting (their connections are closed). replica_fail_all answers every
 * proposal still waiting "unavailable" (a stop, a crash). */
struct replica *replica_new(void);
void replica_free(struct node *n);
int replica_start(struct node *n, struct errbuf *eb);
void replica_stop(struct node *n);
void replica_fail_all(struct node *n);
/* Run the core's ready batches: send, persist (written at once, fsynced by
 * the log syncer thread while the loop goes on), apply, answer. Called after
 * every loop turn and when a sync finishes: the group commit. */
void replica_drive(struct node *n);
/* Record what the node knows of the cluster's commit index (lag.h). */
void replica_note_commit(struct node *n);
/* Wait for the log sync in flight and finish its batch (stopping, rejoining). */
void replica_flush(struct node *n);
/* Propose a write for c; answered when it commits and applies. ERR_UNAVAILABLE
 * not the leader, ERR_AGAIN too many writes in flight, ERR_NOMEM. */
int replica_propose(struct node *n, struct conn *c, uint64_t request_id, uint32_t reply_kind,
                    const struct sm_op *op);
/* Answer c once the entry (index, term) applies, with reply (NULL: reply_kind
 * [lamport, revision]), or say it was lost. */
void replica_track(struct node *n, struct conn *c, uint64_t request_id, uint32_t reply_kind,
                   replica_reply_fn reply, uint64_t index, uint64_t term);

/* Reads (replica.c): answered now, or parked until their ReadIndex round
 * completes (linearizable) or the state machine catches up (causal). */
void replica_read(struct node *n, struct conn *c, uint64_t request_id, const struct read_target *t,
                  uint32_t consistency, uint64_t after_lamport);
/* A linearizable read of nothing: done(n, c, request_id) runs once this
 * member has confirmed with a quorum that it was leader (or heard from the
 * leader) after the call, and has applied everything committed before it,
 * the moment a read would be answered. Failures (no leader in time) are
 * answered to c as a read's would be, and done is not called. Not while
 * the storage is fenced or an image is being installed. */
void replica_read_barrier(struct node *n, struct conn *c, uint64_t request_id,
                          void (*done)(struct node *n, struct conn *c, uint64_t request_id, uint64_t arg),
                          uint64_t arg);
/* Propose a change for c, answered by reply (NULL: reply_kind [lamport,
 * revision]) when it applies, or with the error it met (see replica_propose);
 * refusals (fenced storage, not the leader, backpressure) are answered at once. */
void replica_propose_reply(struct node *n, struct conn *c, uint64_t rid, uint32_t reply_kind,
                           replica_reply_fn reply, const struct sm_op *op);
/* Answer c the refusal rc of replica_propose (nonzero). */
void replica_refuse(struct conn *c, uint64_t rid, int rc);
/* True when this member leads (with writable: and its storage takes writes);
 * otherwise c is answered NOT_LEADER (naming the leader when known). */
bool replica_lead_or_refuse(struct node *n, struct conn *c, uint64_t rid, bool writable);
/* Propose for c, and call done (see struct proposal) when the entry applies
 * or is lost, instead of replying; refusals are returned (as replica_propose). */
int replica_propose_done(struct node *n, struct conn *c, uint64_t request_id, const struct sm_op *op,
                         void (*done)(struct node *, const struct proposal *, const struct sm_result *,
                                      uint32_t, const char *),
                         void *done_ctx);
/* Propose a change of the node's own (a lease expiry): nobody waits for it. */
int replica_propose_internal(struct node *n, const struct sm_op *op);
/* Point the state machine's change events at the watch history. */
void replica_sm_hooks(struct node *n);

/* Load the state machine from the store the way start-up does: finish a
 * snapshot install a crash interrupted (snap_install_recover), open the state
 * machine (applied index, Lamport time, revision, sessions), point its events
 * at the watch history, and raise the clock to its applied Lamport time. Used
 * at start (node_run) and when a node fenced by a full disk rejoins. n->sm is
 * replaced only on success; eb says which step failed. */
int replica_load_state(struct node *n, struct errbuf *eb);

/* What the others may know of the replica. */
/* The storage fence: 0, or the error that stopped this member's writes (a
 * full disk or a failed sync clears by itself). */
int replica_fenced(const struct node *n);
/* An image is being installed: the state machine is off limits. */
bool replica_installing(const struct node *n);
/* The last index the Raft log holds. */
uint64_t replica_log_last(const struct node *n);
/* When each commit index was first known, for this member's lag (lag.h). */
const struct lag *replica_lag(const struct node *n);
/* Synced group commits, ns (/metrics). */
const struct hist *replica_commit_hist(const struct node *n);
/* Times the member rejoined after its disk took writes again. */
uint64_t replica_recoveries(const struct node *n);
/* The peer transport found member id's address refusing connections
 * (cluster_start's leader_refused; node is the struct node): when id is this
 * follower's leader, its process is gone, and rather than wait out the
 * election timeout the member campaigns after a short random delay. Only
 * liveness is at stake (raft_leader_lost). replica_leader_lost: times. */
void replica_leader_refused(void *node, uint64_t id);
uint64_t replica_leader_lost(const struct node *n);
/* A SIGTERM'd leader: hand leadership to a reachable voter and stop once
 * another member leads (or after an election timeout). False when this
 * member does not lead, its storage is fenced, a handoff already runs, or no
 * voter can take it: stop at once. */
bool replica_handoff(struct node *n);
/* For the whole-node simulator's checks: whether a log sync is in flight,
 * the ready batch it holds open, and the proposals waiting (index order). */
bool replica_syncing(const struct node *n);
const struct raft_ready *replica_pending(const struct node *n);
const struct proposal *replica_proposals(const struct node *n, size_t *count);

#endif
