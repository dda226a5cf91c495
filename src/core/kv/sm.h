/* The key-value state machine on top of the store.
 *
 * Entries are applied in index order. Applying stages the data changes, the
 * applied index, the applied Lamport time and the revision into one write batch,
 * and sm_commit writes it atomically, so a crash never leaves them apart and a
 * restart resumes exactly after the last committed index. Everything here is a
 * function of the log: no clock, no randomness, and every iteration is in the
 * stored keys' byte order.
 *
 * A user key maps to a record in the data column family:
 *   byte 0       record format (1)
 *   bytes 1..40  create_rev, mod_rev, version, lamport, lease (big-endian u64)
 *   bytes 41..   the value
 * create_rev/mod_rev are the indexes of the key's creation and last change;
 * version counts changes since creation; lamport is the time the change was
 * given by the leader; lease is the lease the key is attached to (0: none).
 *
 * Transactions (SM_OP_TXN, like etcd's): every compare is evaluated against
 * the state as staged so far (committed plus the open batch); if all hold, the
 * on_success operations are applied in order, else the on_failure ones, all
 * at the entry's index (every key changed gets mod_rev = index). Operations
 * apply one after the other: a key put twice ends with the last value and its
 * version bumped once per put (create_rev stays the first put's if it was
 * new); deleting an absent key is a no-op; a put after a delete of the same
 * key creates it afresh. An absent key has version, create_rev and mod_rev 0
 * and its VALUE never compares equal (EQ false, NE true, LT and GT false);
 * LT/GT on a present VALUE compare bytes (memcmp, then the shorter first).
 *
 * Leases: LEASE_GRANT stores a lease whose id is the entry's index (unique,
 * the same on every member) and its ttl, which the state machine only keeps:
 * expiry is decided by the leader, which proposes a LEASE_REVOKE, so no clock
 * is read here. A key put with a lease is attached to it; overwriting the key
 * with another lease (or none) or deleting it detaches it. LEASE_REVOKE
 * deletes the lease and every key attached to it, in key order, at its index.
 * A PUT (plain or in the chosen branch of a TXN) naming a lease that does not
 * exist makes the whole entry change nothing, with result error
 * SM_ERR_NO_LEASE. A lease belongs to the user who granted it (the grant
 * carries the name; who may use a lease is checked in src/core/node/access.c);
 * a lease granted without one (no identity, or before format 3) has no
 * owner. Meta column family keys:
 *   "l/" + be64 lease_id                   -> [u64 ttl_ms][owner, 0..64 bytes]
 *                                             (format 2 wrote the ttl only:
 *                                             no owner)
 *   "k/" + be64 lease_id + user key        -> empty (the keys attached to it)
 *   "leases"                               -> u64 live leases (for status)
 *
 * Client sessions make writes exactly-once (Raft thesis 6.3). Every command
 * but NOOP (PUT, DELETE, TXN, LEASE_GRANT, LEASE_REVOKE) carries (client_id,
 * seq); the meta column family keeps, per client, the last seq applied and its
 * result:
 *   "s/" + be64 client_id                  -> [u64 last_seq][u64 last_used_ms]
 *                                             [u8 op kind][u8 flags: 1 found,
 *                                             2 succeeded][u64 revision]
 *                                             [u64 lamport][u8 error]
 *                                             [u64 lease_id][u64 lease_ttl_ms]
 *                                             (51 bytes; format 1 wrote the
 *                                             first 34 only, still read)
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
 * absent at once) and each command removes at most SM_SESSION_EXPIRE_BATCH
 * expired sessions, oldest first in (last_used_ms, client_id) order. Which
 * entries a caller groups into one commit never changes the outcome.
 *
 * Change events (for watch): if on_event is set, sm_stage reports every key
 * change as it stages it, in application order (see struct sm_event). They
 * describe staged state: the caller buffers them and publishes them only
 * after sm_commit succeeds, and drops them when it discards the batch (or
 * sm_stage or sm_commit fails). */
#ifndef DDKV_KV_SM_H
#define DDKV_KV_SM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "kv/authdb.h"
#include "kv/store.h"
#include "util/buf.h"

/* Auth changes (SM_OP_AUTH) carry a session like every write; their records
 * (users, roles, the switch) are described in kv/authdb.h.
 *
 * 2: session records grew to 51 bytes, leases. 3: lease records carry their
 * owner. 4: the cluster version reached 0.2 (proto/version.h): the log and
 * the sessions may hold kinds a 0.1.0 build cannot read (CLUSTER_VERSION,
 * DELETE_PREFIX), so that build must refuse the data dir, which it does for
 * any format above 3. An older data dir is read and stamped 3 when opened;
 * 4 is stamped by the CLUSTER_VERSION entry that brings 0.2, in its batch. */
#define SM_FORMAT_VERSION 4 /* the newest this build reads */
#define SM_FORMAT_BASE 3    /* what a data dir is stamped before the cluster version moves it on */
#define KV_RECORD_HEADER 41

/* How long a client session outlives its last write, by entry time. Every
 * member must use the same value (tests shorten sm.session_ttl_ms). */
#define SM_SESSION_TTL_MS (10u * 60 * 1000)
/* At most this many expired sessions are removed per applied command. */
#define SM_SESSION_EXPIRE_BATCH 64
#define SM_SESSION_RECORD 51
#define SM_SESSION_RECORD_V1 34 /* format 1's, without the fields after lamport */
/* At most this many compares, and operations per list, in a TXN. */
#define SM_TXN_MAX 128

struct kv_record {
    uint64_t create_rev, mod_rev, version, lamport, lease;
    const uint8_t *value; /* borrowed from the store_val it was decoded from */
    size_t vlen;
};

int kv_record_decode(const uint8_t *p, size_t n, struct kv_record *r);

/* NOOP: an entry that consumes an index but changes no key (a leader's empty
 * entry, a configuration change). */
enum sm_op_kind {
    SM_OP_PUT = 1,
    SM_OP_DELETE = 2,
    SM_OP_NOOP = 3,
    SM_OP_TXN = 4,
    SM_OP_LEASE_GRANT = 5,
    SM_OP_LEASE_REVOKE = 6,
    SM_OP_AUTH = 7, /* a change of users, roles or the auth switch (kv/authdb.h) */
    SM_OP_MEMBER_INC = 8, /* a member's data-dir incarnation, as the cluster knows it (0: forget) */
    /* Since 0.2 (proto/version.h): proposed only once the cluster version allows. */
    SM_OP_CLUSTER_VERSION = 9, /* the cluster version moves up to version (never down) */
    SM_OP_DELETE_PREFIX = 10,  /* delete up to limit keys under key (the prefix), in key order */
};
#define SM_OP__MAX SM_OP_DELETE_PREFIX
/* At most this many keys per DELETE_PREFIX entry (one batch, one revision). */
#define SM_DELETE_PREFIX_MAX 10000u

/* Result errors: the entry changed nothing and the client gets an error. */
enum sm_error {
    SM_ERR_NONE = 0,
    SM_ERR_NO_LEASE = 1, /* a PUT named a lease that does not exist */
    /* An AUTH change refused (kv/authdb.c): */
    SM_ERR_AUTH_EXISTS = 2,    /* the user or role exists already */
    SM_ERR_AUTH_NO_USER = 3,
    SM_ERR_AUTH_NO_ROLE = 4,
    SM_ERR_AUTH_NO_GRANT = 5,  /* revoking what was not granted */
    SM_ERR_AUTH_NO_ROOT = 6,   /* enabling without a user root holding the role root */
    SM_ERR_AUTH_ROOT_KEPT = 7, /* the root role, or (while enabled) root's user or role, stays */
    SM_ERR_AUTH_INVALID = 8,   /* a bad name, prefix, permission or hash */
    SM_ERR_AUTH_LIMIT = 9,     /* too many users, roles, grants */
    /* A client's write admitted under permissions an auth change applied
     * since has replaced (sm_op.auth_rev); never kept in a session. */
    SM_ERR_AUTH_CHANGED = 10,
    SM_ERR__MAX = 10,
};

/* The wire error code and message for a refused entry's result error. */
const char *sm_error_text(int error, uint32_t *wire_code);

/* One TXN compare: key's field (enum ddkv_cmp_field) cmp (enum ddkv_cmp_op)
 * the operand: val/vlen for DDKV_CMP_VALUE, num for the others. */
struct sm_cmp {
    const uint8_t *key;
    size_t klen;
    uint8_t field;
    uint8_t cmp;
    const uint8_t *val;
    size_t vlen;
    uint64_t num;
};

/* One TXN operation: kind DDKV_OP_PUT (val, lease: 0 none) or DDKV_OP_DELETE. */
struct sm_txn_op {
    uint8_t kind;
    const uint8_t *key;
    size_t klen;
    const uint8_t *val;
    size_t vlen;
    uint64_t lease;
};

/* A transaction: if every compare holds, ops[0] (on success), else ops[1]
 * (on failure). Counts are at most SM_TXN_MAX each. */
struct sm_txn {
    const struct sm_cmp *cmps;
    size_t ncmp;
    const struct sm_txn_op *ops[2];
    size_t nops[2];
};

struct sm_op {
    enum sm_op_kind kind;
    const uint8_t *key; /* PUT, DELETE */
    size_t klen;
    const uint8_t *val; /* PUT */
    size_t vlen;
    uint64_t lease;          /* PUT: lease to attach the key to (0: none); LEASE_REVOKE: the lease */
    uint64_t lease_ttl_ms;   /* LEASE_GRANT */
    const char *owner;       /* LEASE_GRANT: the granting user, owner_len bytes (0: none) */
    size_t owner_len;        /* at most DDKV_AUTH_NAME_MAX */
    const struct sm_txn *txn; /* TXN */
    const struct sm_auth *auth; /* AUTH */
    uint64_t member_id, incarnation, member_cluster; /* MEMBER_INC (member_cluster: the cluster id) */
    uint64_t version;        /* CLUSTER_VERSION: DDKV_VERSION_PACK'd major.minor.0 */
    uint32_t limit;          /* DELETE_PREFIX: at most this many keys (1..SM_DELETE_PREFIX_MAX) */
    uint64_t client_id, seq; /* the client's session and write number; client_id 0: none */
    /* A client's write: the auth state's rev (kv/auth.h) when the leader
     * admitted it. Where it applies, if auth is enabled and an auth change
     * applied since, it is refused (SM_ERR_AUTH_CHANGED) and changes
     * nothing: it was admitted under permissions no longer in force.
     * auth_checked false (entries before cluster version 0.2): not checked. */
    bool auth_checked;
    uint64_t auth_rev;
    uint64_t time_ms;        /* the leader's wall clock (ms) when it proposed the entry */
};

struct sm_result {
    bool found;        /* PUT, DELETE: the key existed; LEASE_REVOKE: the lease existed;
                          DELETE_PREFIX: a key was deleted */
    bool succeeded;    /* TXN: every compare held (on_success was applied);
                          DELETE_PREFIX: keys are left under the prefix (beyond the limit) */
    int error;         /* enum sm_error; nonzero: nothing changed, the fields below but
                          lamport are 0 (and so is succeeded) */
    /* The index that made the change; 0 if nothing changed, except for a TXN
     * that changed nothing: the (unchanged) revision of the store. */
    uint64_t revision;
    uint64_t lamport;
    uint64_t lease_id;     /* LEASE_GRANT: the new lease (the entry's index); LEASE_REVOKE: the lease if found */
    uint64_t lease_ttl_ms; /* LEASE_GRANT: its ttl; 0 after a revoke */
    uint64_t count;        /* DELETE_PREFIX: keys deleted (kept in the session's lease_id slot) */
    /* A retry of the session's last write: nothing changed, and every field
     * above is that of the original write. */
    bool duplicate;
    /* A retry of a write older than the session's last: nothing changed and
     * the other fields are 0; the client gets an error. */
    bool stale;
};

/* One key change, reported while staging (pointers borrowed for the call).
 * kind DDKV_OP_PUT: the key's new record. DDKV_OP_DELETE: val empty, version
 * and create_rev 0, mod_rev the deleting index, lease the lease the key had. */
struct sm_event {
    uint8_t kind;
    const uint8_t *key;
    size_t klen;
    const uint8_t *val;
    size_t vlen;
    uint64_t create_rev, mod_rev, version, lamport, lease;
};

/* A client session as stored (see the top of this file). */
struct sm_session {
    uint64_t last_seq, last_used_ms;
    enum sm_op_kind kind; /* of the last write */
    bool found, succeeded;
    int error;
    uint64_t revision, lamport;
    uint64_t lease_id, lease_ttl_ms;
};

/* The session cache: SM_SESS_CACHE slots (a power of two), direct-mapped by
 * client id, each holding what the staged view (the open batch over the
 * store) says of one client's session, present or not. */
#define SM_SESS_CACHE 4096
struct sm_sess_slot {
    uint64_t client_id;
    uint32_t gen; /* holds something iff this is sm->cache_gen */
    bool present;
    struct sm_session s;
};

/* The key cache: SM_KEY_CACHE slots (a power of two), direct-mapped by a
 * hash of the key, each holding what the staged view says of one key of at
 * most SM_KEY_CACHE_KEY bytes: absent, or its record's header (no value). */
#define SM_KEY_CACHE 16384
#define SM_KEY_CACHE_KEY 48
struct sm_key_slot {
    uint32_t gen; /* holds something iff this is sm->cache_gen */
    bool exists;
    uint8_t klen;
    uint8_t key[SM_KEY_CACHE_KEY];
    uint64_t create_rev, mod_rev, version, lamport, lease;
};

/* A lease attachment staged in the open batch: key bytes at off in st_att_keys. */
struct sm_attach {
    uint64_t lease;
    size_t off, len;
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
    uint64_t cluster_version; /* proto/version.h; a data dir without one is at 0.1.0 */
    /* staged state of the open batch */
    uint64_t st_cluster_version;
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
    /* Every write reads its client's session: this cache answers from memory
     * what the staged view holds (sess_read with the open batch). Written
     * through by every change of a session key (sess_record, sess_remove),
     * kept by a commit (the staged view becomes the durable one), and
     * emptied whenever staged changes are dropped instead (sm_discard, which
     * a failed sm_commit calls and a failed sm_stage's caller must). In
     * memory only; a committed-view read (sm_session_get) goes to the store. */
    struct sm_sess_slot *sess_cache;
    /* Every put and delete reads the key's record first (its create
     * revision, version and lease): the same kind of cache, for keys. */
    struct sm_key_slot *key_cache;
    uint32_t cache_gen; /* emptying both caches moves it on (no memset) */
    /* leases */
    uint64_t leases; /* live leases (for status) */
    int64_t st_leases_delta;
    /* Store iterators do not see the open batch either: the attachments it
     * made are listed here (in memory, cleared with the batch) so a revoke
     * in the same batch finds them. */
    struct sm_attach *st_att;
    size_t st_att_n, st_att_cap;
    struct buf st_att_keys;
    struct buf scratch; /* for building meta keys */
    /* Users, roles and the auth switch: as committed (what permission checks
     * read), and the open batch's changed copy (valid while st_auth_open). */
    struct auth_db auth;
    struct auth_db st_auth;
    bool st_auth_open;
    /* Change events (see the top of this file); set after sm_open. */
    void (*on_event)(void *ctx, const struct sm_event *ev);
    void *event_ctx;
};

/* Load the applied index, Lamport time, revision and session state; refuses a
 * newer format. A state machine whose store was replaced underneath it (a
 * snapshot install) must be closed and opened again. */
int sm_open(struct sm *sm, struct store *st, struct errbuf *eb);
void sm_close(struct sm *sm);

/* Stage entry `index` (must be st_index + 1) into the open batch: apply op
 * with its client session (see the top of this file), expire sessions, and
 * report each key change to on_event. A TXN's contents must be well formed
 * (as cmd_decode guarantees). On failure the caller must sm_discard (or stop
 * applying altogether), and drop the events of the batch. */
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

/* Every committed lease, in id order. The callback returns nonzero to stop
 * with that error. */
int sm_lease_foreach(struct sm *sm, int (*cb)(void *ctx, uint64_t id, uint64_t ttl_ms), void *ctx,
                     struct errbuf *eb);
/* A committed lease's ttl and owner (owner may be NULL; else filled with the
 * owner's name, "" for a lease without one); ERR_NOT_FOUND if there is no
 * such lease. */
int sm_lease_get(struct sm *sm, uint64_t id, uint64_t *ttl_ms, auth_name owner, struct errbuf *eb);
/* The incarnation of member id's data dir as applied for cluster cluster_id
 * (0: none recorded; a record of another cluster, as a restored backup
 * carries, counts as none). */
int sm_member_incarnation(struct sm *sm, uint64_t cluster_id, uint64_t id, uint64_t *inc, struct errbuf *eb);

/* The keys attached to a committed lease, in key order (borrowed for the
 * call). The callback returns nonzero to stop with that error. */
int sm_lease_keys_foreach(struct sm *sm, uint64_t lease, int (*cb)(void *ctx, const uint8_t *key, size_t klen),
                          void *ctx, struct errbuf *eb);

/* Keys with the prefix, strictly after start_after (if non-empty), in order, at
 * most limit of them and at most max_bytes of keys and values together (at
 * least one is always returned). *more tells whether keys remain. The callback
 * returns nonzero to stop with that error. */
typedef int (*sm_list_cb)(void *ctx, const uint8_t *key, size_t klen, const struct kv_record *r);
int sm_list(struct sm *sm, const uint8_t *prefix, size_t plen, const uint8_t *start_after,
            size_t salen, uint32_t limit, size_t max_bytes, sm_list_cb cb, void *ctx, bool *more,
            struct errbuf *eb);

#endif
