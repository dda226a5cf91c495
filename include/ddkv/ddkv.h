/* libddkv: the blocking client library for a ddkv cluster.
 *
 * One ddkv_client talks to one node at a time over one TCP connection, which it
 * keeps open across operations and reopens when it breaks. Every operation is
 * blocking, bounded by the client's timeout_ms, and follows the cluster on its
 * own: a refused or broken connection moves it to the next endpoint, NOT_LEADER
 * moves it to the leader the node names, UNAVAILABLE (no quorum, an election,
 * a node shutting down) is retried with a small exponential backoff until the
 * deadline.
 *
 * Writes and deletes carry (client_id, seq): seq grows by one per logical write
 * and stays the same across that write's retries. The cluster keeps a session
 * per client id and applies a (client_id, seq) once, answering a retry with the
 * original result. So when a connection dies after a write left, no reply
 * comes within 1.5 s (a leader whose machine vanished without a reset looks
 * like this; the connection is then closed), or the node answers TIMEOUT, the
 * client sends the same write to another member until the deadline; only if
 * the deadline passes with the write still in doubt does the call return
 * DDKV_ERR_UNKNOWN_OUTCOME (read the key to find out). Reads are asked again
 * elsewhere the same way. After an operation that ran out of time waiting on
 * a member, the next one starts at another member. Sessions
 * idle for more than 10 minutes are forgotten, so a client should not sit on
 * an unanswered write that long.
 *
 * Threads: a ddkv_client is not thread-safe; use one per thread, or lock.
 * Signals: sockets are written with MSG_NOSIGNAL, so a dead peer never raises
 * SIGPIPE in the caller's process (TLS included: OpenSSL writes through a BIO
 * the library gives it).
 *
 * Ownership, in one place: every pointer a function returns inside a result
 * struct is owned by that struct and released by its _free function (or by
 * ddkv_free for a bare buffer); strings returned directly by a ddkv_client_*
 * accessor are borrowed from the client until the next call on it. Inputs are
 * only borrowed for the duration of the call. */
#ifndef DDKV_DDKV_H
#define DDKV_DDKV_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ddkv/wire.h" /* enum ddkv_consistency, ddkv_cmp_field, ddkv_cmp_op, ddkv_op_kind */

#ifdef __cplusplus
extern "C" {
#endif

#define DDKV_API __attribute__((visibility("default")))

/* Defaults for struct ddkv_options. */
#define DDKV_DEFAULT_ENDPOINTS "127.0.0.1:7001"
#define DDKV_DEFAULT_TIMEOUT_MS 5000u
#define DDKV_DEFAULT_CONNECT_TIMEOUT_MS 1000u
/* Largest reply frame accepted: a value (1 MiB by default) or a LIST page, with
 * room for nodes configured with larger limits. Above this the reply is treated
 * as garbled rather than buffered. */
#define DDKV_DEFAULT_MAX_REPLY_BYTES (64u * 1024 * 1024)

typedef enum ddkv_err {
    DDKV_OK = 0,
    DDKV_ERR_NOT_FOUND,       /* the key does not exist */
    DDKV_ERR_BAD_REQUEST,     /* the node refused the request as malformed */
    DDKV_ERR_TOO_LARGE,       /* key, value or frame over the node's limit */
    DDKV_ERR_UNAVAILABLE,     /* no endpoint reachable, no quorum, or node storage failure */
    DDKV_ERR_TIMEOUT,         /* a read-only operation ran out of time */
    DDKV_ERR_UNKNOWN_OUTCOME, /* a write was sent but no answer came: it may or may not be applied */
    DDKV_ERR_PROTOCOL,        /* the node's reply was garbled */
    DDKV_ERR_NOMEM,
    DDKV_ERR_USAGE,           /* bad argument to the library (e.g. an unparsable endpoint) */
    DDKV_ERR_COMPACTED,       /* the revision asked for is older than the history kept */
    DDKV_ERR_FENCED,          /* a job token that is no longer the claim's (claimed again, or settled) */
    DDKV_ERR_PERMISSION_DENIED, /* auth: wrong user or password, no credentials, or the user may not
                                 * do this; nothing was changed */
    DDKV_ERR__COUNT
} ddkv_err;

/* A static description of the code ("key not found"). Never NULL. */
DDKV_API const char *ddkv_strerror(ddkv_err err);

typedef struct ddkv_client ddkv_client;

struct ddkv_options {
    /* "host:port[,host:port...]"; IPv6 hosts in brackets ("[::1]:7001").
     * Borrowed by ddkv_client_new (which copies it). */
    const char *endpoints;
    /* Deadline of one whole operation, retries and redirects included. Each
     * attempt waits for its reply 1.5 s at most (never past this deadline;
     * ddkv_snapshot_save's imaging waits until it), then goes to the next
     * member. */
    uint32_t timeout_ms;
    /* Deadline of one connection attempt (never past the operation's). */
    uint32_t connect_timeout_ms;
    /* Largest reply frame accepted. */
    uint32_t max_reply_bytes;
    /* What LIST pages (ddkv_list, ddkv_list_all) read: DDKV_CONSISTENCY_LINEARIZABLE
     * (the default, 0), CAUSAL (any member that has applied what this client
     * has seen) or STALE, as for ddkv_read. */
    uint32_t list_consistency;
    /* TLS. With tls_ca_file every connection speaks TLS and the node's
     * certificate must chain to that CA (PEM) and, unless tls_skip_name_check,
     * name the endpoint's host: a SAN IP entry for an address ("127.0.0.1:7001"),
     * a SAN DNS entry for a name. The handshake is part of the connection
     * attempt, bounded by connect_timeout_ms and the operation's deadline.
     * tls_cert_file and tls_key_file (both or neither) are this client's
     * certificate, for nodes that ask for one. Borrowed by ddkv_client_new
     * (the files are read there). NULL: plain TCP. */
    const char *tls_ca_file;
    const char *tls_cert_file;
    const char *tls_key_file;
    bool tls_skip_name_check;
    /* Credentials for a cluster with auth enabled (NULL user: none). Every
     * connection the client opens (after a failover or a redirect too)
     * authenticates with them before its first request, and again if the
     * node says the connection's identity is no longer valid. Copied by
     * ddkv_client_new; the password is wiped from the client's memory when
     * it is freed. */
    const char *user;
    const char *password;
    /* A NULL endpoints or a 0 number means that field's default. */
};

/* Fill o with the defaults above. Call it before setting fields, so that fields
 * added in later versions get their defaults too. */
DDKV_API void ddkv_options_init(struct ddkv_options *o);

/* Create a client (no connection is made until the first operation). opts may
 * be NULL for all defaults. On success *out owns the client: release it with
 * ddkv_client_free. On failure *out is NULL and, if errbuf is non-NULL, it holds
 * a NUL-terminated explanation (at most errlen bytes). */
DDKV_API ddkv_err ddkv_client_new(const struct ddkv_options *opts, ddkv_client **out,
                                  char *errbuf, size_t errlen);
/* Close the connection and free the client. NULL is a no-op. */
DDKV_API void ddkv_client_free(ddkv_client *c);

/* The detail of the last failed operation ("server: key over 4096 bytes",
 * "connect 127.0.0.1:7001: Connection refused"), or "" after a success.
 * Borrowed until the next call on c. */
DDKV_API const char *ddkv_client_errmsg(const ddkv_client *c);
/* "host:port" of the node that answered the last operation, or NULL if none has.
 * Borrowed until the next call on c. */
DDKV_API const char *ddkv_client_endpoint(const ddkv_client *c);
/* The client's Lamport clock: ticked on every send, max(clock, reply) + 1 on
 * every reply. */
DDKV_API uint64_t ddkv_client_lamport(const ddkv_client *c);
/* The highest Lamport time of a committed change this client has written or
 * read. A DDKV_CONSISTENCY_CAUSAL read with after_lamport 0 waits for this, so
 * a client always reads its own writes, even from a follower. */
DDKV_API uint64_t ddkv_client_seen_lamport(const ddkv_client *c);
/* The random 64-bit id this client sends with writes (for exactly-once). */
DDKV_API uint64_t ddkv_client_id(const ddkv_client *c);

/* Free a buffer returned by the library (a read's value). NULL is a no-op. */
DDKV_API void ddkv_free(void *p);

/* --- ping --- */

struct ddkv_pong {
    char *node;       /* name of the node that answered; owned, see ddkv_pong_free */
    char *leader;     /* name of the leader it knows, or NULL if none; owned */
    uint64_t term;
    uint64_t rtt_ns;  /* from sending the PING to receiving the PONG */
};

DDKV_API ddkv_err ddkv_ping(ddkv_client *c, struct ddkv_pong *out);
/* Free the strings in p (not p itself) and zero it. */
DDKV_API void ddkv_pong_free(struct ddkv_pong *p);

/* --- single keys --- */

struct ddkv_value {
    /* The value's bytes, followed by a NUL that is not counted in len (so text
     * values can be used as C strings). Never NULL on success. Caller frees with
     * ddkv_free. */
    void *value;
    size_t len;
    uint64_t create_rev; /* revision that created the key */
    uint64_t mod_rev;    /* revision of the last change */
    uint64_t version;    /* number of changes since creation */
    uint64_t lamport;    /* Lamport time the leader gave the last change */
};

/* Read a key. consistency is one of enum ddkv_consistency (wire.h); a node
 * answering a CAUSAL read waits until it has applied after_lamport (0 means
 * ddkv_client_seen_lamport). Returns DDKV_ERR_NOT_FOUND if the key does not
 * exist (out is then zeroed). */
DDKV_API ddkv_err ddkv_read(ddkv_client *c, const void *key, size_t key_len,
                            enum ddkv_consistency consistency, uint64_t after_lamport,
                            struct ddkv_value *out);

struct ddkv_write_result {
    uint64_t lamport;  /* Lamport time of the change */
    uint64_t revision; /* revision (log index) that made it */
};

/* Set key to value. lease_id 0 means no lease. On DDKV_ERR_UNKNOWN_OUTCOME the
 * write may or may not have been applied: read the key to find out. */
DDKV_API ddkv_err ddkv_write(ddkv_client *c, const void *key, size_t key_len, const void *value,
                             size_t value_len, uint64_t lease_id, struct ddkv_write_result *out);
/* Delete key; DDKV_ERR_NOT_FOUND if it did not exist. Same outcome rules as
 * ddkv_write. */
/* Delete every key under prefix (prefix_len 0: every key), in rounds of at
 * most 10,000 keys, each its own write at its own revision (so a reader or a
 * watcher may see the prefix partly deleted in between). *deleted counts the
 * keys deleted, also on failure; out is the last round's. Needs cluster
 * version 0.2.0: an older cluster answers DDKV_ERR_BAD_REQUEST saying so. */
DDKV_API ddkv_err ddkv_delete_prefix(ddkv_client *c, const void *prefix, size_t prefix_len, uint64_t *deleted,
                                     struct ddkv_write_result *out);
/* The versions the node last connected to said in its WELCOME (packed as
 * major << 32 | minor << 16 | patch; a node that sent none: 0.1.0), or 0
 * before the first connection. */
DDKV_API void ddkv_client_versions(const ddkv_client *c, uint64_t *node_version, uint64_t *cluster_version);
DDKV_API ddkv_err ddkv_delete(ddkv_client *c, const void *key, size_t key_len,
                              struct ddkv_write_result *out);

/* --- ranges --- */

struct ddkv_entry {
    /* key and value are each followed by an uncounted NUL; both owned by the
     * ddkv_list that holds the entry. */
    uint8_t *key;
    size_t key_len;
    uint8_t *value;
    size_t value_len;
    uint64_t create_rev, mod_rev, version, lamport;
};

struct ddkv_list {
    struct ddkv_entry *entries; /* sorted by key; owned, see ddkv_list_free */
    size_t n;
    bool more;         /* keys with the prefix remain after the last entry */
    uint64_t revision; /* the node's revision when it answered the (last) page */
};

/* One page: keys starting with prefix, strictly after start_after (empty: from
 * the first), at most limit of them (0: the node's default). The node may
 * return fewer than limit and set more (it also bounds a page by bytes). Each
 * page is read with the client's list_consistency (linearizable by default). */
DDKV_API ddkv_err ddkv_list(ddkv_client *c, const void *prefix, size_t prefix_len,
                            const void *start_after, size_t start_after_len, uint32_t limit,
                            struct ddkv_list *out);
/* Page through every key with the prefix, stopping after max_entries (0: no
 * bound); out->more then says whether keys were left. Each page is its own
 * operation with its own deadline, and pages are not one snapshot: a key
 * written during the walk may or may not appear. On failure out is empty. */
DDKV_API ddkv_err ddkv_list_all(ddkv_client *c, const void *prefix, size_t prefix_len,
                                uint64_t max_entries, struct ddkv_list *out);
/* Free every entry and zero l (not l itself). */
DDKV_API void ddkv_list_free(struct ddkv_list *l);

/* --- cluster status --- */

struct ddkv_member {
    char *name;        /* owned by the ddkv_status holding it; NULL if not reported */
    char *client_addr; /* where clients reach it, or NULL */
    char *peer_addr;   /* where peers reach it, or NULL */
    char *role;        /* "leader", "follower", ... as the answering node sees it, or NULL */
    bool healthy;      /* the answering node's view */
    bool lag_known;    /* the answering node leads, and so knows the three below */
    uint64_t match;        /* highest log index the leader knows the member stores */
    uint64_t lag_entries;  /* committed entries it does not hold yet */
    uint64_t lag_ms;       /* age of the oldest of them */
    char *version;         /* its release ("0.2.0") as the answering node knows it, or NULL */
};

/* The answering node's own state, and the members it knows. Fields the node did
 * not report are 0 or NULL. ddkv status prints a row per member by asking each
 * member's client_addr for its own ddkv_status. */
struct ddkv_status {
    char *name;        /* all strings owned, see ddkv_status_free */
    char *role;
    char *leader;      /* leader's name, or NULL if none known */
    char *client_addr;
    uint64_t term, commit, applied, lamport, revision, keys;
    struct ddkv_member *members;
    size_t n_members;
    char *cluster_id;  /* the cluster's id, 16 hex digits, or NULL if not reported */
    bool healthy_known;    /* the node reported its own health (older nodes do not) */
    bool healthy;          /* sees a leader, storage works, within the lag bounds */
    uint64_t lag_entries, lag_ms; /* its own lag behind the commit index it knows */
    char *version;         /* its release, "X.Y.Z" */
    char *cluster_version; /* the cluster version it has applied (NULL from a 0.1.0 node: "0.1.0") */
};

DDKV_API ddkv_err ddkv_status(ddkv_client *c, struct ddkv_status *out);
/* Free everything in s (not s itself) and zero it. */
DDKV_API void ddkv_status_free(struct ddkv_status *s);

/* --- membership --- */

/* Add a member (ddkv serve --join started with that name and peer address):
 * the leader adds it as a learner, which receives the log without voting, and
 * promotes it to voter by itself once it has caught up. Returns once the
 * addition committed; *index is its log index (0: it was already a member
 * with that address). */
DDKV_API ddkv_err ddkv_member_add(ddkv_client *c, const char *name, const char *peer_addr,
                                  uint64_t *index);
/* Remove a member; DDKV_ERR_NOT_FOUND if it is not one. Removing the leader
 * makes it step down once the removal committed. */
DDKV_API ddkv_err ddkv_member_remove(ddkv_client *c, const char *name, uint64_t *index);
/* Hand leadership to the voter `name` (NULL or "": one the leader picks) and
 * wait, within the client's timeout, until a member names it leader. The
 * leader first brings it up to date, so no acknowledged write is at risk;
 * writes pause for about one round trip. On DDKV_OK *new_leader (if not NULL)
 * is its name, to ddkv_free. DDKV_ERR_NOT_FOUND: not a voter; DDKV_ERR_TIMEOUT:
 * the transfer did not complete (the old leader resumes after an election
 * timeout, or another election happened). */
DDKV_API ddkv_err ddkv_leader_transfer(ddkv_client *c, const char *name, char **new_leader);

/* --- backups --- */

/* What the leader imaged for a snapshot save. */
struct ddkv_snapshot_meta {
    uint64_t cluster_id;  /* of the cluster it comes from */
    uint64_t index, term; /* the applied index the image is the state at, and its term */
    uint64_t revision, lamport, keys;
    uint64_t image_bytes; /* the image's length: the sink receives exactly this many bytes */
    char *members;        /* "name=peer_addr,..." of the configuration; owned, see ddkv_snapshot_meta_free */
};

/* Receives the image: first once with data NULL and len 0 (meta is then
 * known), then each piece in order (offset: where it starts in the image).
 * meta is borrowed for the call. Return 0 to go on, anything else to stop
 * the transfer (ddkv_snapshot_save then returns DDKV_ERR_USAGE). */
typedef int (*ddkv_snapshot_sink)(void *ud, const struct ddkv_snapshot_meta *meta, uint64_t offset,
                                  const void *data, size_t len);

/* A consistent image of the cluster's state, from the leader: it confirms it
 * still leads (as for a linearizable read) and images its state once it has
 * applied everything committed before the call, so every write acknowledged
 * before the call is in it. The image is in the format of
 * docs/disk-format.md (a Raft snapshot image, with its own CRC-32C). The
 * client's timeout bounds reaching the leader and the imaging, then each
 * piece's arrival; a stream that breaks is not resumed (DDKV_ERR_UNAVAILABLE:
 * call again). On DDKV_OK *out holds the meta (release with
 * ddkv_snapshot_meta_free). */
DDKV_API ddkv_err ddkv_snapshot_save(ddkv_client *c, ddkv_snapshot_sink sink, void *ud,
                                     struct ddkv_snapshot_meta *out);
/* Free the strings in m (not m itself) and zero it. */
DDKV_API void ddkv_snapshot_meta_free(struct ddkv_snapshot_meta *m);

/* --- the job queue --- */

/* A job lives in the cluster as jobs/<id> (JSON: id, state queued | claimed |
 * done | dead, data, name, attempts, max_attempts, worker, deadline_ms,
 * created_ms, result, error); its input is whatever data_key names (the CLI stores a
 * file under a prefix in chunks), its result is at jobresult/<id>. */

/* Queue a job whose input is data_key (under jobdata/, < 256 bytes), to be
 * tried at most max_attempts times (1..100). name (NULL or < 128 bytes, e.g.
 * the file's name) is kept in the job record for people to read. Both are
 * UTF-8 text without control characters (DDKV_ERR_BAD_REQUEST otherwise). *id (to ddkv_free) names it. A retried
 * put is applied once. */
DDKV_API ddkv_err ddkv_job_put(ddkv_client *c, const char *data_key, const char *name, uint32_t max_attempts,
                               char **id);

struct ddkv_job_claim {
    char *id;        /* owned, see ddkv_job_claim_free */
    char *data_key;  /* owned */
    uint64_t token;  /* fencing token: present it to ack, nack or extend */
    uint64_t attempts;
};
/* Claim the oldest waiting job (or one whose previous worker let its claim
 * expire) for visibility_ms (100 ms .. 24 h): until then no other worker gets
 * it. DDKV_ERR_NOT_FOUND: no job waits. A claim whose answer was lost (UNKNOWN_OUTCOME)
 * simply expires. */
DDKV_API ddkv_err ddkv_job_claim(ddkv_client *c, const char *worker, uint64_t visibility_ms,
                                 struct ddkv_job_claim *out);
DDKV_API void ddkv_job_claim_free(struct ddkv_job_claim *j);
/* Complete the job. Its result lives at jobresult/<id>: result_key is that
 * key, or NULL or "" (the same); any other key is refused (BAD_REQUEST).
 * With `result` (not NULL), the result itself (at most the value limit) is
 * put there by the same transaction, which applies only while the token is
 * the claim's: a worker that lost its claim never overwrites the result of
 * the one that holds it. With auth enabled the worker must be able to write
 * jobresult/<id> (PERMISSION_DENIED otherwise, and nothing changes).
 * DDKV_ERR_FENCED: the token is no longer the claim's (it expired and another
 * worker claimed the job, or it was settled): nothing was written and the
 * result must be thrown away. */
DDKV_API ddkv_err ddkv_job_ack(ddkv_client *c, const char *id, uint64_t token, const char *result_key,
                               const void *result, size_t rlen);
/* Give the job back (it is queued again, or dead once its attempts are used
 * up; *state, if not NULL, says which: "queued" or "dead", to ddkv_free). */
DDKV_API ddkv_err ddkv_job_nack(ddkv_client *c, const char *id, uint64_t token, const char *reason,
                                char **state);
/* Keep the claim visibility_ms longer from now; *token becomes the new token. */
DDKV_API ddkv_err ddkv_job_extend(ddkv_client *c, const char *id, uint64_t *token, uint64_t visibility_ms);
/* ddkv_job_extend that also records the worker's progress in the job record
 * ("progress": {"rows", "percent"}, percent 0..100). */
DDKV_API ddkv_err ddkv_job_progress(ddkv_client *c, const char *id, uint64_t *token, uint64_t visibility_ms,
                                    uint64_t rows, uint32_t percent);
/* As ddkv_job_put, at a priority: "high", "normal" or "low" (NULL or "":
 * normal). While jobs of every priority wait, of each 7 claims 4 take a high
 * job, 2 a normal one and 1 a low one (a priority with nothing waiting passes
 * its turn on): low never starves. */
DDKV_API ddkv_err ddkv_job_put_priority(ddkv_client *c, const char *data_key, const char *name,
                                        uint32_t max_attempts, const char *priority, char **id);
enum ddkv_job_removal {
    DDKV_JOB_CANCEL = 0,        /* a queued or running job becomes "cancelled" */
    DDKV_JOB_DELETE = 1,        /* the job record and its result are deleted */
    DDKV_JOB_DELETE_RESULT = 2, /* the result of a done job is deleted */
};
/* One JOB_CANCEL (*state, if not NULL: "cancelled", "deleted" or "done", to
 * ddkv_free). DDKV_ERR_NOT_FOUND: no such job; DDKV_ERR_BAD_REQUEST: not in
 * a state that allows it (a done job cannot be cancelled). A worker holding a
 * cancelled job's claim gets DDKV_ERR_FENCED at its next extend or ack, a
 * deleted job's DDKV_ERR_NOT_FOUND; either way nothing it sends is kept. */
DDKV_API ddkv_err ddkv_job_cancel(ddkv_client *c, const char *id, enum ddkv_job_removal what, char **state);

/* --- transactions --- */

/* Most compares, and most operations in each of on_success and on_failure. */
#define DDKV_TXN_MAX 128u

/* One condition of a transaction: the key's field compared with an operand.
 * field DDKV_CMP_VALUE compares the value's bytes with value[0..value_len);
 * the other fields compare numbers with `number`. A key that does not exist
 * has version, create_rev and mod_rev 0 (so "must not exist" is VERSION EQ 0)
 * and never equals any VALUE. */
struct ddkv_compare {
    const void *key;
    size_t key_len;
    enum ddkv_cmp_field field;
    enum ddkv_cmp_op cmp;
    const void *value; /* operand of DDKV_CMP_VALUE */
    size_t value_len;
    uint64_t number;   /* operand of the other fields */
};

/* One operation of a transaction. A DDKV_OP_PUT sets key to value (attached to
 * lease_id, 0: none); a DDKV_OP_DELETE removes key (value and lease_id are not
 * sent). */
struct ddkv_op {
    enum ddkv_op_kind kind;
    const void *key;
    size_t key_len;
    const void *value;
    size_t value_len;
    uint64_t lease_id;
};

struct ddkv_txn_result {
    bool succeeded;    /* every compare held: on_success ran (else on_failure) */
    uint64_t lamport;  /* Lamport time the leader gave the transaction */
    uint64_t revision; /* its revision (log index): the mod_rev of every key it changed */
};

/* Apply a transaction atomically (one log entry): if every compare holds, the
 * on_success operations, else the on_failure ones. A NULL list is allowed
 * with a count of 0. At most DDKV_TXN_MAX compares and DDKV_TXN_MAX
 * operations per list (DDKV_ERR_USAGE otherwise). A transaction is a write:
 * it carries (client_id, seq), is retried exactly-once, and on
 * DDKV_ERR_UNKNOWN_OUTCOME it may or may not have been applied. A compare that
 * does not hold is not an error: DDKV_OK with out->succeeded false. */
DDKV_API ddkv_err ddkv_txn(ddkv_client *c, const struct ddkv_compare *cmps, size_t ncmp,
                           const struct ddkv_op *on_success, size_t nsucc,
                           const struct ddkv_op *on_failure, size_t nfail,
                           struct ddkv_txn_result *out);

/* Compare-and-swap: set key to value (with lease_id, 0: none) if its value is
 * expected[0..elen), or, with expect_absent, if it does not exist (expected is
 * then ignored). out->succeeded says whether it swapped. */
DDKV_API ddkv_err ddkv_cas(ddkv_client *c, const void *key, size_t klen, const void *expected,
                           size_t elen, bool expect_absent, const void *value, size_t vlen,
                           uint64_t lease_id, struct ddkv_txn_result *out);

/* --- leases --- */

/* Grant a lease of ttl_ms (the node accepts 100 ms to one year). Keys written
 * with its id are deleted when it expires or is revoked; it expires unless kept
 * alive within each ttl. *lease_id and *granted_ttl_ms say what was granted.
 * A write: exactly-once retries, DDKV_ERR_UNKNOWN_OUTCOME if in doubt. */
DDKV_API ddkv_err ddkv_lease_grant(ddkv_client *c, uint64_t ttl_ms, uint64_t *lease_id,
                                   uint64_t *granted_ttl_ms);
/* Restart the lease's countdown; *ttl_ms (may be NULL) is the time it now has.
 * Not a write (nothing is logged), so it is safely resent. DDKV_ERR_NOT_FOUND
 * if the lease expired or was revoked. */
DDKV_API ddkv_err ddkv_lease_keepalive(ddkv_client *c, uint64_t lease_id, uint64_t *ttl_ms);
/* Revoke the lease: it and every key attached to it are deleted at one
 * revision. DDKV_ERR_NOT_FOUND if the lease is unknown (expired or revoked).
 * A write, with the same outcome rules as ddkv_write. */
DDKV_API ddkv_err ddkv_lease_revoke(ddkv_client *c, uint64_t lease_id);

/* --- watch --- */

/* A stream of the changes to keys with a prefix, on its own connection. It
 * follows the cluster like a client does: when its member fails (the
 * connection breaks, or the member answers UNAVAILABLE or NOT_LEADER) it
 * reconnects to another endpoint, with backoff, and asks again from the last
 * revision it delivered, skipping the events of that revision it already
 * delivered, so the caller sees every change once, in revision order, with no
 * gap, across failovers. Not thread-safe; one thread per watch. */
typedef struct ddkv_watch ddkv_watch;

/* One change. key and value are each followed by an uncounted NUL; both are
 * owned by the event: release them with ddkv_event_free. */
struct ddkv_event {
    enum ddkv_op_kind kind; /* DDKV_OP_PUT or DDKV_OP_DELETE */
    uint8_t *key;
    size_t key_len;
    uint8_t *value;         /* empty for a delete */
    size_t value_len;
    uint64_t create_rev;    /* revision that created the key */
    uint64_t mod_rev;       /* revision of this change (of the delete, for a delete) */
    uint64_t version;       /* changes since creation; 0 for a delete */
    uint64_t lamport;       /* Lamport time the leader gave the change */
};

/* Start watching keys with the prefix (empty: every key) from revision
 * from_rev on (every change at a revision >= from_rev); from_rev 0 means the
 * changes after the answering member's applied index when the watch opens.
 * Connects and sends the request within opts->timeout_ms; events and errors
 * come from ddkv_watch_next. opts may be NULL for the defaults. On failure
 * *out is NULL and errbuf (if non-NULL) explains. */
DDKV_API ddkv_err ddkv_watch_open(const struct ddkv_options *opts, const void *prefix, size_t plen,
                                  uint64_t from_rev, ddkv_watch **out, char *errbuf, size_t errlen);
/* Wait at most wait_ms for the next event. Returns
 *   DDKV_OK: *ev holds one event (release it with ddkv_event_free);
 *   DDKV_ERR_TIMEOUT: none arrived in time; the watch goes on;
 *   DDKV_ERR_UNAVAILABLE: no member has served the watch for opts->timeout_ms;
 *       the watch goes on trying at the next call;
 *   DDKV_ERR_PROTOCOL: a member sent something garbled or inconsistent; the
 *       next call reconnects (to another endpoint);
 *   DDKV_ERR_COMPACTED: the revision to resume from is older than every
 *       member's history (ddkv_watch_compacted_rev says what is left): read the
 *       current state again and open a new watch; final;
 *   DDKV_ERR_BAD_REQUEST, DDKV_ERR_TOO_LARGE: the node refused the watch; final.
 * On anything but DDKV_OK *ev is zeroed and ddkv_watch_errmsg says why. */
DDKV_API ddkv_err ddkv_watch_next(ddkv_watch *w, struct ddkv_event *ev, uint32_t wait_ms);
/* The revision of the last event delivered (0: none yet). */
DDKV_API uint64_t ddkv_watch_revision(const ddkv_watch *w);
/* After DDKV_ERR_COMPACTED: the oldest revision a member still has (a new
 * watch may start there); 0 before. */
DDKV_API uint64_t ddkv_watch_compacted_rev(const ddkv_watch *w);
/* The detail of the last failed ddkv_watch_next, or "". Borrowed until the
 * next call on w. */
DDKV_API const char *ddkv_watch_errmsg(const ddkv_watch *w);
/* Close the connection and free the watch. NULL is a no-op. */
DDKV_API void ddkv_watch_close(ddkv_watch *w);
/* Free the event's bytes (not ev itself) and zero it. */
DDKV_API void ddkv_event_free(struct ddkv_event *ev);

/* --- authentication and permissions --- */

/* Auth is off until ddkv_auth_enable; then every request needs a user (see
 * struct ddkv_options), and users get what their roles grant: read or
 * readwrite on key prefixes, or everything with the built-in role "root".
 * A refused request returns DDKV_ERR_PERMISSION_DENIED and changed nothing.
 * Every change below is a write through the log (exactly-once retries,
 * DDKV_ERR_UNKNOWN_OUTCOME if in doubt) and needs the root role once auth is
 * enabled. Changes refused by the cluster's state: DDKV_ERR_NOT_FOUND (no
 * such user, role or grant), DDKV_ERR_BAD_REQUEST (exists already, a bad
 * name, or a rule about root; ddkv_client_errmsg says which). */

/* Turn auth on; refused unless the user "root" exists and holds the role "root". */
DDKV_API ddkv_err ddkv_auth_enable(ddkv_client *c);
DDKV_API ddkv_err ddkv_auth_disable(ddkv_client *c);

struct ddkv_auth_status {
    bool enabled;  /* as the answering member has applied it */
    char *user;    /* this connection's user, or NULL; owned, see ddkv_auth_status_free */
    bool root;     /* the user holds the root role */
    char **roles;  /* the user's role names (none from a node before 0.2); owned */
    size_t n_roles;
};
DDKV_API ddkv_err ddkv_auth_status(ddkv_client *c, struct ddkv_auth_status *out);
DDKV_API void ddkv_auth_status_free(struct ddkv_auth_status *s);

/* Users: names are 1..64 of [A-Za-z0-9_.@-]; passwords 1..1024 bytes, sent to
 * the node, which stores only a salted PBKDF2 hash. */
DDKV_API ddkv_err ddkv_user_add(ddkv_client *c, const char *name, const char *password);
DDKV_API ddkv_err ddkv_user_passwd(ddkv_client *c, const char *name, const char *password);
DDKV_API ddkv_err ddkv_user_remove(ddkv_client *c, const char *name);
DDKV_API ddkv_err ddkv_user_grant(ddkv_client *c, const char *name, const char *role);
DDKV_API ddkv_err ddkv_user_revoke(ddkv_client *c, const char *name, const char *role);
/* Roles: a grant gives perm on every key starting with prefix ("" : all);
 * granting a prefix again replaces its perm. Removing a role takes it from
 * every user. */
DDKV_API ddkv_err ddkv_role_add(ddkv_client *c, const char *name);
DDKV_API ddkv_err ddkv_role_remove(ddkv_client *c, const char *name);
DDKV_API ddkv_err ddkv_role_grant(ddkv_client *c, const char *name, const void *prefix, size_t plen,
                                  enum ddkv_perm perm);
DDKV_API ddkv_err ddkv_role_revoke(ddkv_client *c, const char *name, const void *prefix, size_t plen);

struct ddkv_grant {
    uint8_t *prefix; /* followed by an uncounted NUL; owned by the list */
    size_t prefix_len;
    enum ddkv_perm perm;
};
struct ddkv_role {
    char *name;
    struct ddkv_grant *grants; /* sorted by prefix */
    size_t n_grants;
};
struct ddkv_user {
    char *name;
    char **roles; /* sorted */
    size_t n_roles;
};
struct ddkv_auth_list {
    bool enabled;
    struct ddkv_user *users; /* sorted by name; everything owned, see ddkv_auth_list_free */
    size_t n_users;
    struct ddkv_role *roles; /* sorted by name; the built-in "root" is not listed */
    size_t n_roles;
};
/* Every user and role, as the answering member has applied them. */
DDKV_API ddkv_err ddkv_auth_list(ddkv_client *c, struct ddkv_auth_list *out);
DDKV_API void ddkv_auth_list_free(struct ddkv_auth_list *l);

#ifdef __cplusplus
}
#endif

#endif
