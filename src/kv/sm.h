/* The key-value state machine on top of the store.
 *
 * Entries are applied in index order. Applying stages the data changes, the
 * applied index, the applied Lamport time and the revision into one write batch,
 * and sm_commit writes it atomically, so a crash never leaves them apart and a
 * restart resumes exactly after the last committed index.
 *
 * A user key maps to a record in the data column family:
 *   byte 0       record format (1)
 *   bytes 1..40  create_rev, mod_rev, version, lamport, lease (big-endian u64)
 *   bytes 41..   the value
 * create_rev/mod_rev are the indexes of the key's creation and last change;
 * version counts changes since creation; lamport is the time the change was
 * given by the leader.
 *
 * Client sessions make writes exactly-once (Raft thesis 6.3). A PUT or DELETE
 * carries (client_id, seq); the meta column family keeps, per client, the last
 * seq applied and its result:
 *   "s/" + be64 client_id                  -> [u64 last_seq][u64 last_used_ms]
 *                                             [u8 op kind][u8 found]
 *                                             [u64 revision][u64 lamport]
 *   "e/" + be64 last_used_ms + be64 client_id -> empty (the expiry index)
 * A write with the session's last seq is a retry of a write already applied:
 * nothing changes and the original result comes back, flagged duplicate. An
 * older seq changes nothing and is flagged stale. A newer seq (or no session)
 * applies and becomes the session's last. client_id 0 has no session.
 *
 * Expiry is a function of the log alone, so every member ends with the same
 * bytes: an entry's "now" is max(its time_ms, every time_ms applied before),
 * the high-water mark being persisted with the applied index; a session whose
 * last_used_ms + session_ttl_ms < now is expired (a lookup treats it as
 * absent at once) and each PUT/DELETE removes at most SM_SESSION_EXPIRE_BATCH
 * expired sessions, oldest first in (last_used_ms, client_id) order. Which
 * entries a caller groups into one commit never changes the outcome. */
#ifndef DDKV_KV_SM_H
#define DDKV_KV_SM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "kv/store.h"

#define SM_FORMAT_VERSION 1
#define KV_RECORD_HEADER 41

/* How long a client session outlives its last write, by entry time. Every
 * member must use the same value (tests shorten sm.session_ttl_ms). */
#define SM_SESSION_TTL_MS (10u * 60 * 1000)
/* At most this many expired sessions are removed per applied PUT/DELETE. */
#define SM_SESSION_EXPIRE_BATCH 64
#define SM_SESSION_RECORD 34

struct kv_record {
    uint64_t create_rev, mod_rev, version, lamport, lease;
    const uint8_t *value; /* borrowed from the store_val it was decoded from */
    size_t vlen;
};

int kv_record_decode(const uint8_t *p, size_t n, struct kv_record *r);

/* NOOP: an entry that consumes an index but changes no key (a leader's empty
 * entry, a configuration change). */
enum sm_op_kind { SM_OP_PUT = 1, SM_OP_DELETE = 2, SM_OP_NOOP = 3 };

struct sm_op {
    enum sm_op_kind kind;
    const uint8_t *key;
    size_t klen;
    const uint8_t *val;
    size_t vlen;
    uint64_t lease;
    uint64_t client_id, seq; /* the client's session and write number; client_id 0: none */
    uint64_t time_ms;        /* the leader's wall clock (ms) when it proposed the entry */
};

struct sm_result {
    bool found;        /* DELETE: the key existed */
    uint64_t revision; /* the index that made the change (0 if nothing changed) */
    uint64_t lamport;
    /* A retry of the session's last write: nothing changed, and found,
     * revision and lamport are those of the original write. */
    bool duplicate;
    /* A retry of a write older than the session's last: nothing changed and
     * the other fields are 0; the client gets an error. */
    bool stale;
};

/* A client session as stored (see the top of this file). */
struct sm_session {
    uint64_t last_seq, last_used_ms;
    enum sm_op_kind kind; /* of the last write */
    bool found;
    uint64_t revision, lamport;
};

/* An expiry index key, in memory. */
struct sm_exp_key {
    uint64_t ms, client_id;
    bool removed; /* in st_new: the batch removed it again */
};

struct sm {
    struct store *st;
    struct store_batch *batch;
    /* durable state (as of the last successful commit) */
    uint64_t applied_index;
    uint64_t applied_lamport;
    uint64_t revision;
    /* staged state of the open batch */
    uint64_t st_index, st_lamport, st_revision;
    int64_t st_keys_delta;
    uint64_t keys; /* approximate live key count (for status) */
    /* client sessions */
    uint64_t applied_time_ms; /* highest entry time applied (the expiry clock) */
    uint64_t sessions;        /* live sessions stored (expired ones count until removed) */
    uint64_t session_ttl_ms;  /* SM_SESSION_TTL_MS; set after sm_open to change it */
    uint64_t st_time_ms;
    int64_t st_sessions_delta;
    /* Expiry bookkeeping, in memory only (rebuilt by sm_open). exp_floor is at
     * or below the last_used_ms of every stored session (UINT64_MAX: none), so
     * most entries need no scan. Store iterators do not see the open batch,
     * so the index keys the batch added are kept in st_new (sorted, those
     * before st_new_head or marked removed gone again); every stored index
     * key at or before st_cursor has been removed by the batch. */
    uint64_t exp_floor, st_exp_floor;
    bool st_cursor_set;
    struct sm_exp_key st_cursor;
    struct sm_exp_key *st_new;
    size_t st_new_head, st_new_n, st_new_cap;
};

/* Load the applied index, Lamport time, revision and session state; refuses a
 * newer format. A state machine whose store was replaced underneath it (a
 * snapshot install) must be closed and opened again. */
int sm_open(struct sm *sm, struct store *st, struct errbuf *eb);
void sm_close(struct sm *sm);

/* Stage entry `index` (must be st_index + 1) into the open batch: apply op
 * with its client session (see the top of this file), and expire sessions. On
 * failure the caller must sm_discard (or stop applying altogether). */
int sm_stage(struct sm *sm, uint64_t index, uint64_t lamport, const struct sm_op *op,
             struct sm_result *res, struct errbuf *eb);
/* Write everything staged in one atomic batch (synced if asked). On failure the
 * staged changes are dropped and the state is as before the first stage. */
int sm_commit(struct sm *sm, bool sync, struct errbuf *eb);
void sm_discard(struct sm *sm);

/* Read a key's committed record. hold keeps the bytes alive: release it with
 * store_val_release. */
int sm_get(struct sm *sm, const uint8_t *key, size_t klen, struct kv_record *r,
           struct store_val *hold, struct errbuf *eb);

/* Read a client's committed session. ERR_NOT_FOUND if it has none (an expired
 * session may still be returned until it is removed). */
int sm_session_get(struct sm *sm, uint64_t client_id, struct sm_session *s, struct errbuf *eb);

/* Keys with the prefix, strictly after start_after (if non-empty), in order, at
 * most limit of them and at most max_bytes of keys and values together (at
 * least one is always returned). *more tells whether keys remain. The callback
 * returns nonzero to stop with that error. */
typedef int (*sm_list_cb)(void *ctx, const uint8_t *key, size_t klen, const struct kv_record *r);
int sm_list(struct sm *sm, const uint8_t *prefix, size_t plen, const uint8_t *start_after,
            size_t salen, uint32_t limit, size_t max_bytes, sm_list_cb cb, void *ctx, bool *more,
            struct errbuf *eb);

#endif
