/* Node internals shared by the server core and its modules.
 *
 * One thread owns everything here. The loop runs one libevent turn, then
 * replica_drive: every proposal that turn produced is persisted in the Raft log
 * with one synced write (group commit), applied once committed, then answered.
 * That function is the one place that orders persist -> send -> apply ->
 * reply, so no acknowledgement can leave before its data is durable. */
#ifndef DDKV_NODE_SERVER_H
#define DDKV_NODE_SERVER_H

#include <stdbool.h>
#include <stdint.h>

#include "consensus/raft.h"
#include "kv/sm.h"
#include "kv/snapshot.h"
#include "kv/store.h"
#include "node/dispatch.h"
#include "node/lag.h"
#include "node/module.h"
#include "node/node.h"
#include "node/mod/watch.h"
#include "proto/frame.h"
#include "proto/lamport.h"
#include "util/buf.h"
#include "util/hist.h"
#include "util/tls.h"

struct event_base;
struct bufferevent;
struct evconnlistener;
struct event;
struct evhttp;

struct conn {
    struct node *node;
    uint64_t id;
    struct bufferevent *bev; /* NULL once closed */
    struct frame_decoder dec;
    struct conn *prev, *next;
    uint32_t refs;     /* the node's list holds one; each pending reply one more */
    bool close_after_flush;
    bool read_paused;  /* over a limit (output, in flight): neither read nor decoded until under it */
    uint64_t partial_since_ms; /* when the incomplete frame now buffered began, 0 if none */
    bool tls_pending;  /* a TLS connection whose handshake has not completed */
    /* The common name of the client certificate verified in the TLS
     * handshake ("" without one): read it with conn_cert_cn. */
    char cert_cn[TLS_CN_MAX + 1];
    char peer[64];
    /* Identity (src/node/auth.c), checked against the applied auth state on
     * every request (access.c). user: who AUTH verified (owned, NULL: none),
     * valid while that user's rev is still user_rev. Without one, the user
     * named by the verified client certificate (cert_cn), if it exists. */
    char *user;
    uint64_t user_rev;
    uint64_t client_version; /* what its HELLO said (0: none sent; it is taken for 0.1.0) */
    bool auth_busy;          /* an AUTH is being verified off the loop */
    uint32_t auth_failures;  /* failed AUTHs on this connection */
    uint64_t auth_retry_ms;  /* no AUTH is taken before this (monotonic ms) after a failure */
    /* Limits (server.c): requests in flight are the references beyond the
     * list's, the watches' and conn_read_cb's own. */
    struct addr_entry *addr; /* its IP address's entry (addrtab.c), counted in nconns */
    uint64_t active_ms;      /* last frame taken: idle timeout, eviction order */
    uint64_t drained_ms;     /* the client last took reply bytes (or output appeared) */
    uint32_t watches;        /* WATCH streams on it (watch.c), each holding a reference */
    bool in_read;            /* conn_read_cb runs (and holds a reference) */
};

/* Per IP address (addrtab.c): connections, and failed logins across them. */
struct addr_entry {
    char ip[48];
    uint32_t nconns;
    uint32_t auth_jobs;      /* AUTHs from it held or queued (each refers to this entry) */
    uint32_t auth_queued;    /* of them, waiting for or in the password workers */
    double auth_score;       /* failed AUTHs, halving every AUTH_SCORE_HALF_LIFE_MS */
    uint64_t auth_score_ms;  /* when auth_score was last decayed (monotonic) */
    uint64_t auth_retry_ms;  /* no AUTH from this address is verified before this */
    uint64_t auth_good_ms;   /* its last successful AUTH (monotonic), 0: none */
    struct addr_entry *next;
};
/* How long a successful AUTH keeps its address in good standing (auth.c). */
#define AUTH_GOOD_MS (10u * 60 * 1000)
struct addr_table {
    struct addr_entry **b;
    size_t nb, n;
};
/* The entry of ip, made if missing (NULL: out of memory, or the table is full
 * of addresses with connections or recent failures). */
struct addr_entry *addr_get(struct node *n, const char *ip);
/* Decay failure scores; free entries nothing refers to any more. */
void addr_sweep(struct node *n);
void addr_free_all(struct node *n);
/* ip's failed-login score decayed to now. */
double addr_auth_score(struct addr_entry *e, uint64_t now_ms);

/* A client's write waiting for its log entry to commit and apply. */
struct proposal {
    struct conn *c;     /* referenced */
    uint64_t request_id;
    uint32_t kind;      /* reply: DDKV_MSG_WRITTEN_AT / DDKV_MSG_DELETED */
    uint64_t index, term; /* the entry; committed only if that index applies with that term */
    uint64_t t0_ns;     /* when the request arrived */
    struct sm_result res;
    bool lost;
    /* A module's own completion (mod_jobs.c): called instead of the reply
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
    void (*done)(struct node *n, struct conn *c, uint64_t request_id);
};

/* A member of the cluster as this node knows it. */
struct member {
    uint64_t id;
    char name[64];
    char peer_addr[64];
    char client_addr[64]; /* learned from its peer hello; "" until then */
    uint64_t inc_proposed_ms; /* a leader proposed its incarnation record then (cluster.c) */
    uint64_t inc_logged_ms;   /* a refusal of its incarnation was last logged then */
    uint64_t ver_logged_ms;   /* a refusal or hold-back for its release version was last logged then */
};

struct node_stats {
    uint64_t conns_accepted, conns_refused, frames_in, frames_bad, frames_too_large;
    uint64_t unknown_types, writes, deletes, reads, lists, commits, commit_errors;
    uint64_t commit_entries, peer_rejected, reads_linearizable, reads_causal, reads_stale;
    uint64_t reads_timed_out, leader_changes, proposals, proposals_refused, snapshots_taken,
        snapshots_installed, duplicates, watches, txns, leases_expired;
    uint64_t tls_handshake_failures; /* client port: handshakes refused or timed out */
    uint64_t auth_ok, auth_failed, auth_denied; /* AUTHs verified and refused; requests refused */
    uint64_t snap_image_errors; /* images a follower needed that could not be read (replaced) */
    uint64_t auth_throttled; /* AUTHs refused unverified: their address failed recently */
};

struct peer_transport;

struct node {
    struct node_config cfg;
    struct event_base *base;
    struct evconnlistener *listener;
    SSL_CTX *tls_client;  /* the client port's TLS context, NULL: plain TCP (node_tls.c) */
    SSL_CTX *tls_peer;    /* the peer transport's (mutual TLS), NULL: plain TCP */
    uint64_t tls_fail_logged_ms; /* client-port handshake failures: last logged, */
    uint64_t tls_fail_unlogged;  /* and how many since were not (one line a second) */
    struct event *sig_term, *sig_int, *accept_retry;
    struct evhttp *http;
    SSL_CTX *http_tls;    /* the ops HTTP port's HTTPS context, NULL: plain HTTP (ops_http.c) */
    char client_addr[64]; /* as bound, with the real port */
    struct lamport clock;
    struct dispatcher disp;
    struct store *st;
    struct sm sm;
    struct conn *conns;           /* most recently active first (conn_touch) */
    struct conn *conns_tail;      /* least recently active */
    uint32_t nconns;
    struct addr_table addrs;      /* per IP address (addrtab.c) */
    uint64_t out_total;           /* unsent reply bytes of all client connections */
    bool out_over;                /* out_total went over node_output_bytes; connections wait */
    uint32_t npaused;             /* connections whose requests wait (read_paused) */
    struct event *conn_resume;    /* out_total fell back: look at the waiting connections */
    struct event *conn_sweep;     /* every second: idle timeout, address table */
    uint64_t conns_idle_closed, conns_cut_output, conns_evicted; /* /metrics */
    uint64_t next_conn_id;
    struct raft *raft;
    uint64_t self_id, cluster_id;
    struct member members[RAFT_MAX_NODES * 2]; /* the configuration's, plus addresses learned */
    size_t nmembers;
    uint64_t incarnation;         /* this data dir's, random at creation (cluster.c) */
    bool inc_self_logged;         /* the cluster's record of us is another incarnation: said once */
    uint64_t cv_proposed_ms;      /* a leader proposed a cluster version then (cluster.c) */
    uint64_t cv_wait_id, cv_wait_ver; /* the member (and its version) it last said holds the cluster version */
    bool founding;                /* bootstrapped this run: the log starts with our --cluster */
    struct peer_transport *peers; /* NULL for a one-node cluster without --peer-addr */
    char peer_addr[64];           /* as bound */
    uint64_t last_leader;         /* to count leader changes */
    struct watch_hub watch;       /* history of applied changes, watchers (watch.c) */
    struct lease_table *leases;   /* leader only: lease deadlines (lease.c) */
    uint64_t leases_term;         /* the term the lease table was built for, 0: none */
    struct pending_read *reads;   /* in arrival order */
    size_t nreads, capreads;
    uint64_t read_ctx;            /* last ctx handed to raft_read_index */
    struct event *tick;           /* raft_tick every heartbeat_ms */
    struct store_batch *logb;     /* Raft log writes */
    uint64_t log_first, log_last; /* indexes stored in the raft_log column family */
    /* Snapshots (replica.c): one being written, one being received/installed. */
    struct snap_job *snap_job;
    uint64_t snap_index_taking;
    char snap_taking[600];
    uint64_t snap_newest;         /* the newest image written (the log is compacted to the one before) */
    char snap_newest_path[600];
    struct snap_recv srecv;
    char recv_done[600];          /* the last fully received image, "" if none */
    struct snap_job *install_job;
    struct store_batch *install_batch;
    bool installing;              /* an image is being installed: the state machine is off limits */
    struct raft_ready pending;    /* the ready batch the install holds open */
    struct raft_hard_state hs_synced; /* the hard state last written with an fsync */
    struct logsync *logsync;      /* the thread that fsyncs the log (logsync.h) */
    bool syncing;                 /* the ready batch in pending waits for its sync */
    size_t sync_applied;          /* of pending's committed entries, those applied already */
    struct buf cmdbuf;            /* proposal encoding */
    struct proposal *prop;        /* in index order */
    size_t nprop, capprop;
    struct buf scratch; /* reply encoding */
    struct node_stats stats;
    struct hist h_commit;                  /* synced group commit, ns */
    struct hist h_req[DDKV_MSG_TYPE_MAX];  /* request arrival to reply, by request type, ns */
    uint64_t req_t0_ns;                    /* arrival of the request being handled */
    uint64_t started_ms;
    /* Set when a storage write failed: the node stops driving Raft and
     * refuses writes; reads keep being served. A full disk (ERR_NOSPACE)
     * or an I/O error (a failed fsync: ERR_IO) clears by itself once the
     * store takes synced writes again (replica.c rejoins from the durable
     * state, after reopening the store for an I/O error); any other failure
     * waits for an operator's restart. */
    int storage_failed;
    bool store_reopened; /* since the fence (ERR_IO): the store was reopened */
    bool stopping;
    /* SIGTERM to a leader: leadership is handed over first, and the loop
     * stops once another member leads or at this deadline (0: not stopping). */
    uint64_t handoff_deadline_ms;
    /* A full disk or an I/O error is not final: every second
     * a timer checks whether the store takes writes again, and the node then
     * rejoins from its durable state as a restart would (replica.c). */
    struct event *storage_retry;
    uint64_t storage_failed_ms;  /* when the fence began (monotonic) */
    uint64_t storage_note_ms;    /* when the wait was last logged */
    uint64_t storage_recoveries; /* times it rejoined (/metrics) */
    /* The leader's address refused a connection: campaign soon (cluster.c). */
    struct event *campaign_soon;
    uint64_t leader_lost;        /* times that happened (/metrics) */
    struct jobs *jobs;           /* the job queue module's state (mod_jobs.c) */
    struct backups *backups;     /* snapshot saves in progress (mod_backup.c) */
    struct auth_worker *auth;    /* password hashing off the loop (auth.c) */
    struct lag lag;              /* when each commit index was first known (lag.h) */
    /* An image a follower needs could not be read: take a fresh one now and
     * compact the log to it (replica.c), instead of retrying the bad one. */
    bool snap_force;
    bool snap_forcing;           /* the snapshot being taken replaces an unreadable image */
    uint64_t snap_bad_index;     /* the last image reported unreadable (logged once) */
    uint64_t snap_verified_index, snap_verified_term; /* the image last checked whole */
    uint64_t regressions_seen;   /* followers found behind what they acknowledged, logged */
};

/* Modules (module.h; the list in modules.c): the driver calls their hooks. */
/* The user c acts as (borrowed from the applied auth state until the next
 * apply), or NULL: none (auth.c). */
const char *auth_conn_user(struct node *n, const struct conn *c);
/* Leases (lease.c): the leader's countdowns. */
struct lease_table;

/* Cluster identity and peers (cluster.c). */
uint64_t cluster_node_id(const char *name);
int cluster_parse(const char *spec, struct member *out, size_t *n, struct errbuf *eb);
/* The cluster id of a cluster founded by members m[0..n) (sorted, as
 * cluster_parse leaves them), with --cluster-token token (NULL or "": none)
 * and seed (0, or the first 8 bytes of the backup a cluster was restored
 * from). Never 0. */
uint64_t cluster_derive_id(const struct member *m, size_t n, const char *token, uint64_t seed);
/* A hash of the token kept in the data dir (0 for none), to tell at a restart
 * whether --cluster-token is the founding one without storing it. */
uint64_t cluster_token_fp(const char *token);
/* Stage the data dir's identity (raft_state): its member id, the cluster id,
 * the restore seed and the token's hash. */
void cluster_stage_identity(struct store_batch *b, uint64_t self_id, uint64_t cluster_id, uint64_t seed,
                            uint64_t token_fp);
/* Replace the address book in the state machine (meta m/ID) with m[0..nm),
 * in one synced write (restore.c: a restored cluster has new members). */
int cluster_replace_book(struct store *st, const struct member *m, size_t nm, struct errbuf *eb);
/* Members, self id and cluster id from the config and the data dir. */
int cluster_load(struct node *n, struct errbuf *eb);
/* Peer transport: listen and add every other member. After the client listener. */
int cluster_start(struct node *n, struct errbuf *eb);
void cluster_stop(struct node *n);
struct member *cluster_member(struct node *n, uint64_t id);
/* A voter to hand leadership to: the first other one whose connection is up
 * (0: none). */
uint64_t cluster_transfer_target(struct node *n);
/* Every tick while a SIGTERM'd leader hands over: stop once done (server.c). */
void node_handoff_check(struct node *n);
/* The leader's client address, NULL when no leader or its address is unknown. */
const char *cluster_leader_client_addr(struct node *n);
/* "NAME=PEER_ADDR", the context of a CONF entry that adds a member; 0 if too long. */
size_t cluster_ctx_encode(char *out, size_t cap, const char *name, const char *peer_addr);
/* A CONF entry was appended to the log (the member becomes reachable), or
 * applies (the address book in META is updated in the apply batch b). */
void cluster_on_appended(struct node *n, const struct raft_entry *e);
void cluster_on_applied(struct node *n, const struct raft_entry *e, struct store_batch *b);
/* Whether member id (name) may connect with data dir incarnation inc: the one
 * the cluster recorded, or none recorded yet (refusals logged). */
bool cluster_incarnation_ok(struct node *n, uint64_t id, const char *name, uint64_t inc);
/* Reload the address book after a snapshot replaced the state machine. */
int cluster_reload(struct node *n, struct errbuf *eb);
/* Whether raft message m may go to its member: not an entry or an image that
 * member's release cannot read (proto/version.h); held back ones are logged. */
bool cluster_may_send(struct node *n, const struct raft_msg *m);

/* Replies. conn_reply_begin stamps the Lamport time; conn_reply_end queues the
 * frame on the connection (dropped silently if it has closed). */
void conn_reply_begin(struct conn *c, struct msg_writer *w, uint32_t type, uint64_t request_id,
                      uint32_t nfields);
void conn_reply_end(struct conn *c, struct msg_writer *w);
void conn_reply_error(struct conn *c, uint64_t request_id, uint32_t code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
/* ERROR NOT_LEADER, with the leader's client address when this node knows it:
 * the one wording of that refusal. */
void conn_reply_not_leader(struct conn *c, uint64_t request_id);
/* The wire error code (DDKV_WERR_*) a client is told for internal error rc
 * (ERR_*): the one mapping. ERR_UNAVAILABLE is a proposal's or a membership
 * change's "not the leader"; a full disk (ERR_NOSPACE) is UNAVAILABLE, as it
 * heals by itself; this member's other failures are INTERNAL. 0 for ERR_OK. */
uint32_t err_to_wire(int rc);
void conn_ref(struct conn *c);
void conn_unref(struct conn *c);
bool conn_is_open(const struct conn *c);
/* The common name of the certificate the client presented and the TLS
 * handshake verified against --tls-ca, or NULL (plain TCP, no client
 * certificate, or the handshake still running). Borrowed from c. */
const char *conn_cert_cn(const struct conn *c);

/* TLS on the node (node_tls.c). */
/* Build the contexts from cfg (none when it names no certificate). ERR_BAD_INPUT
 * for inconsistent flags or unreadable files, with eb filled. */
int node_tls_init(struct node *n, struct errbuf *eb);
void node_tls_free(struct node *n);
/* A bufferevent for an accepted client connection: a TLS server one when the
 * client port speaks TLS (c->tls_pending set, handshake bounded by
 * --frame-timeout-ms), else a plain socket one. NULL on failure (fd closed). */
struct bufferevent *node_tls_accept(struct node *n, struct conn *c, int fd);
/* The handshake of c completed: note the client certificate's name. */
void node_tls_connected(struct conn *c);
/* Why c's handshake or TLS stream failed, into out. Returns true when the
 * client did not speak TLS at all (plain TCP, garbage). */
bool node_tls_error(struct conn *c, char *out, size_t cap);

/* The Raft driver (replica.c). */
int replica_start(struct node *n, struct errbuf *eb);
void replica_stop(struct node *n);
/* Run the core's ready batches: send, persist (written at once, fsynced by
 * the log syncer thread while the loop goes on), apply, answer. Called after
 * every loop turn and when a sync finishes: the group commit. */
void replica_drive(struct node *n);
/* A member's health (mod_admin.c): healthy = sees a leader, storage takes
 * writes, and within --health-max-lag-entries/-ms of the commit index. */
struct node_health {
    bool healthy, sees_leader;
    uint64_t lag_entries, lag_ms;
};
struct node_health node_health(struct node *n);
bool node_member_lag(struct node *n, uint64_t id, uint64_t *match, uint64_t *entries, uint64_t *ms);
/* Record what the node knows of the cluster's commit index (lag.h). */
void replica_note_commit(struct node *n);
/* Wait for the log sync in flight and finish its batch (stopping, rejoining). */
void replica_flush(struct node *n);
/* Propose a write for c; answered when it commits and applies. ERR_UNAVAILABLE
 * not the leader, ERR_AGAIN too many writes in flight, ERR_NOMEM. */
int replica_propose(struct node *n, struct conn *c, uint64_t request_id, uint32_t reply_kind,
                    const struct sm_op *op);
/* Answer c with reply_kind once the entry (index, term) applies (or say it
 * was lost). For MEMBER_CHANGED the reply is [index]. */
void replica_track(struct node *n, struct conn *c, uint64_t request_id, uint32_t reply_kind,
                   uint64_t index, uint64_t term);

/* Reads (replica.c): answered now, or parked until their ReadIndex round
 * completes (linearizable) or the state machine catches up (causal). */
void replica_read(struct node *n, struct conn *c, uint64_t request_id, const struct read_target *t,
                  uint32_t consistency, uint64_t after_lamport);
/* A linearizable read of nothing: done(n, c, request_id) runs once this
 * member has confirmed with a quorum that it was leader (or heard from the
 * leader) after the call, and has applied everything committed before it,
 * the moment a read would be answered. Failures (no leader in time) are
 * answered to c as a read's would be, and done is not called. Not while
 * storage_failed or installing. */
void replica_read_barrier(struct node *n, struct conn *c, uint64_t request_id,
                          void (*done)(struct node *n, struct conn *c, uint64_t request_id));
/* Propose a change for c, answered with reply_kind when it applies (see
 * replica_propose); refusals (fenced storage, not the leader, backpressure)
 * are answered at once. */
void replica_propose_reply(struct node *n, struct conn *c, uint64_t rid, uint32_t reply_kind,
                           const struct sm_op *op);
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
/* Answer READ with the key's committed value (mod_kv.c). */
void kv_reply_value(struct node *n, struct conn *c, uint64_t request_id, const uint8_t *key,
                    size_t klen);
/* Answer c with a LIST page from the applied state (mod_kv.c). */
void kv_reply_list(struct node *n, struct conn *c, uint64_t request_id, const uint8_t *prefix, size_t plen,
                   const uint8_t *after, size_t alen, uint32_t limit);
/* Answer a read of either kind from the applied state. */
void kv_reply_target(struct node *n, struct conn *c, uint64_t request_id, const struct read_target *t);

/* Record a request's latency from n->req_t0_ns (or t0_ns) to now. */
void node_observe(struct node *n, uint32_t req_type, uint64_t t0_ns);

/* True when this node knows a leader (for /health). */
bool node_has_leader(struct node *n);

/* Status as a msgpack map (STATUS_RESULT) and as JSON text (ops HTTP). */
void node_pack_status(struct node *n, struct msg_writer *w);
char *node_status_json(struct node *n); /* caller frees */

int ops_http_start(struct node *n, struct errbuf *eb);
void ops_http_stop(struct node *n);

#endif
