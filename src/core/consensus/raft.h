/* The Raft consensus core: a pure state machine with no I/O.
 *
 * The caller feeds it events -- raft_tick(), raft_step(msg), raft_propose(),
 * raft_read_index(), raft_transfer_leadership(), raft_propose_conf_change(),
 * raft_compact() -- and takes from it a *ready* batch (raft_ready) which it
 * acts on and then acknowledges (raft_advance). Nothing in here reads a clock,
 * touches a socket or a file, or calls rand(): time is the count of ticks, and
 * randomness is a splitmix64 state seeded by the caller in raft_config.seed.
 * One thread owns a struct raft; it holds no global state.
 *
 * What the caller does with a ready batch, in this order:
 *   1. persist: rd.chunk (snapshot bytes), then rd.install (replace the state
 *      machine and the stored log by that snapshot), then rd.entries (writing
 *      an entry at index i first deletes every stored entry >= i), then rd.hs.
 *   2. send rd.msgs. These may go out before, during or after step 1: every
 *      message that needs durable state (a vote grant, an append ack, the
 *      requests of a candidate, anything sent under a term not yet durable) is
 *      held inside the core and only appears in a ready *after* the
 *      raft_advance that made its state durable. So sending early is always
 *      safe, and the leader's disk write overlaps its followers' (thesis 10.2.1).
 *   3. apply rd.committed in order (they are always within what step 1 made
 *      durable).
 *   4. answer rd.reads once the state machine has applied rd.reads[i].index.
 *   5. raft_advance(r, &rd): tells the core that 1-3 are done.
 * Between raft_ready and raft_advance the caller may keep calling step, tick,
 * propose, etc. (say, while an fsync runs on another thread); it must not call
 * raft_ready again before advancing.
 *
 * Ownership: everything a ready points to is owned by the core and borrowed by
 * the caller until raft_advance. Messages passed to raft_step are borrowed for
 * the call only (the core copies what it keeps). Proposal data is copied.
 * Allocation failure inside the core is fail-stop (an assertion), like a failed
 * fsync of the log.
 *
 * Membership: one server at a time (thesis 4.1). A configuration entry takes
 * effect on every server as soon as it is appended to its log, committed or
 * not; a leader starts a change only when the previous one is committed and it
 * has committed an entry of its own term. Learners receive the log but neither
 * vote nor count toward a quorum; promotion waits until the learner caught up.
 */
#ifndef DDKV_CONSENSUS_RAFT_H
#define DDKV_CONSENSUS_RAFT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ddkv/wire.h"
#include "util/buf.h"
#include "util/err.h"

struct msg;

/* Voters plus learners of one configuration, at most this many. */
#define RAFT_MAX_NODES 16
/* Terms and indexes from the network at or above this are refused, so that
 * term + 1 and index + n can never wrap. */
#define RAFT_NUM_MAX (UINT64_C(1) << 62)
/* Upper bound for raft_config.max_inflight. */
#define RAFT_MAX_INFLIGHT 64

enum raft_role {
    RAFT_FOLLOWER = 0,
    RAFT_PRE_CANDIDATE = 1,
    RAFT_CANDIDATE = 2,
    RAFT_LEADER = 3,
};

enum raft_entry_type {
    RAFT_ENTRY_NORMAL = 0, /* opaque data for the state machine (empty: a leader's no-op) */
    RAFT_ENTRY_CONF = 1,   /* a configuration change, see raft_cc_encode */
};

enum raft_cc_type {
    RAFT_CC_ADD_VOTER = 1,   /* a new server that votes at once (prefer learner + promote) */
    RAFT_CC_ADD_LEARNER = 2, /* a new non-voting server */
    RAFT_CC_PROMOTE = 3,     /* learner -> voter, once it caught up */
    RAFT_CC_REMOVE = 4,      /* voter or learner leaves */
};
#define RAFT_CC_BYTES 9 /* a CONF entry's data: type byte + big-endian node id */
/* ... optionally followed by this many bytes at most of the caller's context
 * (say, the new member's name and address), which the core carries but never
 * reads: it reaches every member with the entry. */
#define RAFT_CC_CTX_MAX 512

/* Entry payloads are reference counted so a ready batch, an outgoing message
 * and the log can share one copy. */
struct raft_blob {
    uint32_t refs;
    size_t len;
    uint8_t data[];
};

struct raft_entry {
    uint64_t term;
    uint64_t index;
    uint8_t type;            /* enum raft_entry_type */
    const uint8_t *data;     /* len bytes; never NULL when len > 0 */
    size_t len;
    struct raft_blob *blob;  /* owner of data inside the core; NULL when borrowed */
};

/* A configuration: ids[0..n), learners has bit i set when ids[i] is a learner. */
struct raft_conf {
    uint32_t n;
    uint32_t learners;
    uint64_t ids[RAFT_MAX_NODES];
};

/* What a snapshot covers: everything up to index (whose term is term), and the
 * configuration in force at index. */
struct raft_snap_meta {
    uint64_t index;
    uint64_t term;
    struct raft_conf conf;
};

struct raft_hard_state {
    uint64_t term;
    uint64_t vote;   /* 0: no vote in term */
    uint64_t commit;
};

/* Peer message kinds: the wire numbers, defined once in include/ddkv/wire.h. */
enum raft_msg_type {
    RAFT_MSG_APP = DDKV_MSG_RAFT_APP,                 /* AppendEntries: index/log_term = previous entry */
    RAFT_MSG_APP_RESP = DDKV_MSG_RAFT_APP_RESP,       /* index = last matching index, or rejected prev index */
    RAFT_MSG_VOTE = DDKV_MSG_RAFT_VOTE,               /* index/log_term = candidate's last entry */
    RAFT_MSG_VOTE_RESP = DDKV_MSG_RAFT_VOTE_RESP,
    RAFT_MSG_PREVOTE = DDKV_MSG_RAFT_PREVOTE,         /* term = the term the sender would campaign in */
    RAFT_MSG_PREVOTE_RESP = DDKV_MSG_RAFT_PREVOTE_RESP,
    RAFT_MSG_HEARTBEAT = DDKV_MSG_RAFT_HEARTBEAT,     /* commit, ctx = read-index round */
    RAFT_MSG_HEARTBEAT_RESP = DDKV_MSG_RAFT_HEARTBEAT_RESP, /* ctx echoed */
    RAFT_MSG_SNAP = DDKV_MSG_RAFT_SNAP,               /* one InstallSnapshot chunk */
    RAFT_MSG_SNAP_RESP = DDKV_MSG_RAFT_SNAP_RESP,     /* offset = bytes the follower has made durable */
    RAFT_MSG_TIMEOUT_NOW = DDKV_MSG_RAFT_TIMEOUT_NOW, /* leadership transfer: campaign now */
    RAFT_MSG_READ_INDEX = DDKV_MSG_RAFT_READ_INDEX,   /* follower -> leader: ctx */
    RAFT_MSG_READ_INDEX_RESP = DDKV_MSG_RAFT_READ_INDEX_RESP, /* leader -> follower: ctx, index (reject: no leader) */
};
#define RAFT_MSG_TYPE_FIRST RAFT_MSG_APP
#define RAFT_MSG_TYPE_LAST RAFT_MSG_READ_INDEX_RESP

#define RAFT_MSGF_TRANSFER 1u /* VOTE/PREVOTE: campaign of a leadership transfer */
#define RAFT_MSGF_LAST 2u     /* SNAP: the last chunk */

struct raft_msg {
    uint32_t type;        /* enum raft_msg_type */
    uint64_t from, to, term;
    uint64_t index, log_term;
    uint64_t commit;
    bool reject;
    uint64_t hint_index;  /* APP_RESP reject: where the follower's log may match */
    uint64_t hint_term;   /* ... and its term there */
    uint64_t ctx;         /* HEARTBEAT(_RESP): read round; READ_INDEX(_RESP): caller ctx */
    uint32_t flags;       /* RAFT_MSGF_* */
    const struct raft_entry *entries; /* APP: index + 1, index + 2, ... */
    uint32_t n_entries;
    /* SNAP: index/log_term are the snapshot's index/term; conf its configuration;
     * data[0..len) the bytes at offset. SNAP_RESP: index = snapshot index. */
    struct raft_conf conf;
    uint64_t offset;
    const uint8_t *data;
    size_t len;
    struct raft_blob *blob; /* owner of data inside the core; NULL when borrowed */
};

/* The caller's snapshot store, read by a leader that sends InstallSnapshot.
 * read() fills buf with up to cap bytes of the snapshot described by meta
 * starting at offset, sets *n and *last (true when the snapshot ends with
 * these bytes) and returns ERR_OK, or an error code (ERR_NOT_FOUND when that
 * snapshot is gone; the core then starts over with its newest one). It is
 * called from raft_tick/raft_step/raft_ready and must not call back into the
 * core. */
struct raft_snapshot_source {
    int (*read)(void *ud, const struct raft_snap_meta *meta, uint64_t offset, uint8_t *buf,
                size_t cap, size_t *n, bool *last);
    void *ud;
};

struct raft_config {
    uint64_t id;               /* nonzero, unique in the cluster */
    uint32_t election_ticks;   /* follower timeout is random in [e, 2e); e > heartbeat */
    uint32_t heartbeat_ticks;
    uint64_t seed;             /* seeds the election-timeout PRNG */
    bool pre_vote;             /* thesis 9.6 */
    bool check_quorum;         /* leader steps down without a quorum; vote lease */
    bool lease_reads;          /* raft_read_index may answer from the lease (needs check_quorum) */
    uint32_t max_inflight;     /* appends in flight per follower (1..RAFT_MAX_INFLIGHT) */
    uint32_t max_msg_entries;  /* entries per AppendEntries */
    size_t max_msg_bytes;      /* payload bytes per AppendEntries (at least one entry) */
    size_t snap_chunk_bytes;   /* InstallSnapshot chunk size */
    uint64_t promote_lag;      /* a learner may be promoted when match + lag >= last index */
    uint64_t max_uncommitted;  /* proposals refused (ERR_AGAIN) while this many entries
                                  wait for commit: backpressure; 0 = no limit */
    struct raft_snapshot_source snap_src;
};

/* Defaults: election 10 ticks, heartbeat 1, pre-vote and check-quorum on. */
void raft_config_defaults(struct raft_config *cfg, uint64_t id);

/* What the caller loaded from its disk. A server that will be added to a
 * running cluster starts from all zeroes (empty configuration, no entries);
 * a founding member starts from raft_bootstrap. */
struct raft_persisted {
    struct raft_hard_state hs;
    struct raft_snap_meta snap;        /* latest snapshot (index 0: none) */
    const struct raft_entry *entries;  /* snap.index + 1, ... (copied; borrowed for the call) */
    size_t n_entries;
    uint64_t applied;                  /* the state machine's applied index (>= snap.index) */
};

/* The founding configuration goes in the log, as CONF entries 1..n of term 1
 * that every founding member holds committed, so that servers added later
 * learn it by replication like any other change. raft_bootstrap fills p (and
 * the entries in b, which p points to) for a founding member; the caller
 * persists those entries and hs before using them. ERR_BAD_INPUT when conf is
 * not a valid configuration with a voter. */
struct raft_bootstrap_buf {
    struct raft_entry ents[RAFT_MAX_NODES];
    uint8_t data[RAFT_MAX_NODES][RAFT_CC_BYTES];
};
int raft_bootstrap(const struct raft_conf *conf, struct raft_bootstrap_buf *b,
                   struct raft_persisted *p);

/* Snapshot bytes to store. Chunks of one image arrive in order; a chunk at
 * offset 0 starts a new image (drop any partial one). When `last` is set the
 * image is complete and rd.install names it. */
struct raft_snap_chunk {
    struct raft_snap_meta meta; /* which snapshot these bytes belong to */
    uint64_t offset;
    const uint8_t *data;
    size_t len;
    bool last;                  /* if set, rd.install names the finished snapshot */
};

struct raft_read_state {
    uint64_t ctx;   /* the caller's ctx from raft_read_index */
    uint64_t index; /* answer once applied >= index */
};

struct raft_ready {
    bool hs_changed;
    struct raft_hard_state hs;
    const struct raft_snap_chunk *chunk;    /* NULL or snapshot bytes to store */
    const struct raft_snap_meta *install;   /* NULL or the snapshot to install */
    const struct raft_entry *entries;       /* to persist */
    size_t n_entries;
    const struct raft_msg *msgs;            /* to send (any time, see above) */
    size_t n_msgs;
    const struct raft_entry *committed;     /* to apply, in order; CONF entries are
                                               already in force (raft_get_conf), the
                                               state machine may skip them */
    size_t n_committed;
    const struct raft_read_state *reads;    /* linearizable reads that may be answered */
    size_t n_reads;
};

struct raft_status {
    uint64_t id, term, vote, leader;
    enum raft_role role;
    uint64_t commit, applied;
    uint64_t first_index, last_index, stable_index;
    uint64_t snap_index, snap_term;
    uint64_t transferee;    /* leadership transfer in progress to this id, or 0 */
    uint64_t leader_commit; /* the cluster's commit index as last heard (a leader: its own) */
    uint64_t regressions;   /* followers seen holding less than they had acknowledged */
};

/* A leader's view of one member (itself included: match = its durable log). */
struct raft_progress_info {
    uint64_t match, next;
    uint32_t state;          /* 0 probe, 1 replicate, 2 snapshot */
    bool recent_active;
};

struct raft;

/* Create a core. Returns ERR_BAD_INPUT for a bad config, ERR_CORRUPT when the
 * persisted state is inconsistent (eb says why). */
int raft_create(const struct raft_config *cfg, const struct raft_persisted *p, struct raft **out,
                struct errbuf *eb);
void raft_destroy(struct raft *r);

/* One unit of logical time. */
void raft_tick(struct raft *r);

/* Feed one message from a peer (borrowed for the call). Returns ERR_OK, or
 * ERR_BAD_INPUT for a message that is malformed or not for this node (it is
 * then ignored). A message can never make the core assert. */
int raft_step(struct raft *r, const struct raft_msg *m);

/* Append data (copied) to the log. Only a leader accepts (ERR_UNAVAILABLE
 * otherwise, or while a leadership transfer runs); ERR_AGAIN when
 * max_uncommitted entries already wait for commit. *index and *term (either may
 * be NULL) identify the entry: it is committed if an entry with that index and
 * term is ever handed out in rd.committed. */
int raft_propose(struct raft *r, const void *data, size_t len, uint64_t *index, uint64_t *term);

/* Propose a membership change. ERR_UNAVAILABLE: not the leader; ERR_AGAIN: an
 * earlier change is not committed yet, the leader has not committed an entry
 * of its term yet, or (PROMOTE) the learner has not caught up; ERR_BAD_INPUT:
 * the change does not fit the configuration (unknown id, duplicate, full,
 * removing the last voter). */
int raft_propose_conf_change(struct raft *r, enum raft_cc_type type, uint64_t node,
                             uint64_t *index, uint64_t *term);
/* The same with a context (at most RAFT_CC_CTX_MAX bytes, else ERR_BAD_INPUT)
 * stored after the change in the entry's data. */
int raft_propose_conf_change_ctx(struct raft *r, enum raft_cc_type type, uint64_t node,
                                 const void *ctx, size_t ctx_len, uint64_t *index, uint64_t *term);

/* Ask for a linearizable read (thesis 6.4). ctx comes back in a ready's reads
 * once it is safe to answer at the given index. Reads asked for in the same
 * ready cycle share one heartbeat round. A follower forwards to its leader.
 * ERR_UNAVAILABLE if no leader is known. A read may be silently dropped when
 * leadership changes: the caller times it out. */
int raft_read_index(struct raft *r, uint64_t ctx);

/* Hand leadership to voter `to` (thesis 3.10). ERR_UNAVAILABLE when not the
 * leader, ERR_BAD_INPUT when `to` is not another voter. Proposals are refused
 * until it completes or aborts (after an election timeout). */
int raft_transfer_leadership(struct raft *r, uint64_t to);

/* Start an election now (as if the election timeout fired). */
int raft_campaign(struct raft *r);

/* The caller knows the leader `leader` is gone (its process refuses
 * connections): a follower forgets it and leaves its leader lease, so it
 * grants votes at once; the caller then campaigns (raft_campaign) after a
 * short random delay rather than a whole election timeout. ERR_BAD_INPUT
 * (nothing changes) unless this is a follower of that leader. */
int raft_leader_lost(struct raft *r, uint64_t leader);

/* The caller has a snapshot of its state machine at `index` (<= applied):
 * forget log entries up to it. ERR_BAD_INPUT when index is out of range. */
int raft_compact(struct raft *r, uint64_t index);

bool raft_has_ready(struct raft *r);
void raft_ready(struct raft *r, struct raft_ready *rd);
void raft_advance(struct raft *r, const struct raft_ready *rd);

void raft_status(const struct raft *r, struct raft_status *st);
/* On a leader: what it knows of member id. ERR_NOT_FOUND when not leading or
 * id is not in the configuration. */
int raft_progress_get(const struct raft *r, uint64_t id, struct raft_progress_info *out);
const struct raft_conf *raft_get_conf(const struct raft *r);
/* The latest snapshot metadata the core knows (index 0: none). */
const struct raft_snap_meta *raft_get_snap(const struct raft *r);
/* Term of the entry at index: false when unknown (compacted or past the end). */
bool raft_log_term(const struct raft *r, uint64_t index, uint64_t *term);
/* The entry at index, or NULL (compacted or past the end); borrowed until the
 * next call into the core. */
const struct raft_entry *raft_log_entry(const struct raft *r, uint64_t index);

/* Configurations. */
bool raft_conf_has(const struct raft_conf *c, uint64_t id);
bool raft_conf_is_voter(const struct raft_conf *c, uint64_t id);
uint32_t raft_conf_voters(const struct raft_conf *c);
/* Apply a change to c; returns ERR_BAD_INPUT (c unchanged) when it does not fit. */
int raft_conf_apply(struct raft_conf *c, enum raft_cc_type type, uint64_t id);
void raft_cc_encode(uint8_t out[RAFT_CC_BYTES], enum raft_cc_type type, uint64_t id);
/* Decodes the change of a CONF entry's data; its context, if any, is
 * p[RAFT_CC_BYTES..n). */
int raft_cc_decode(const uint8_t *p, size_t n, enum raft_cc_type *type, uint64_t *id);

/* Wire codec (raft_msg.c). Encode appends one frame with the Lamport time in
 * its header. Decode validates strictly (types, ranges, entry order) and
 * returns ERR_BAD_INPUT for anything off; on success m's entries array is
 * allocated (release with raft_msg_release) and data points into wm, so wm
 * must outlive m. */
int raft_msg_encode(const struct raft_msg *m, uint64_t lamport, struct buf *b);
int raft_msg_decode(const struct msg *wm, struct raft_msg *m);
void raft_msg_release(struct raft_msg *m);
const char *raft_msg_type_name(uint32_t type);
const char *raft_role_name(enum raft_role role);

#endif
