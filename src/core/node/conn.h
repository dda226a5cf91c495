/* The connection server (conn.c, node_tls.c, addrtab.c): the client port's
 * connections, their limits and TLS, and the one way to answer a request.
 * Knows nothing of the replica or the modules: requests go to the
 * dispatcher and the module hooks (module.h). */
#ifndef DDKV_NODE_CONN_H
#define DDKV_NODE_CONN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "proto/frame.h"
#include "proto/msg.h"
#include "util/err.h"
#include "util/tls.h"

struct node;
struct bufferevent;
struct conn;
struct conn_server;

/* Where a detached connection's replies go (the whole-node simulator): each
 * call is one whole frame, its length prefix included, borrowed for the call. */
typedef void (*conn_out_fn)(struct conn *c, const uint8_t *frame, size_t len, void *ctx);

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
    /* Identity (src/core/node/mod/auth.c), checked against the applied auth state on
     * every request (access.c). user: who AUTH verified (owned, NULL: none),
     * valid while that user's rev is still user_rev. Without one, the user
     * named by the verified client certificate (cert_cn), if it exists. */
    char *user;
    uint64_t user_rev;
    uint64_t client_version; /* what its HELLO said (0: none sent; it is taken for 0.1.0) */
    bool auth_busy;          /* an AUTH is being verified off the loop */
    uint32_t auth_failures;  /* failed AUTHs on this connection */
    uint64_t auth_retry_ms;  /* no AUTH is taken before this (monotonic ms) after a failure */
    /* Limits (conn.c): requests in flight are the references beyond the
     * list's, the watches' and conn_read_cb's own. */
    struct addr_entry *addr; /* its IP address's entry (addrtab.c), counted in nconns */
    uint64_t active_ms;      /* last frame taken: idle timeout, eviction order */
    uint64_t drained_ms;     /* the client last took reply bytes (or output appeared) */
    uint32_t watches;        /* WATCH streams on it (watch.c), each holding a reference */
    bool in_read;            /* conn_read_cb runs (and holds a reference) */
    bool flush_queued;       /* on the server's flush queue (conn_flush_replies) */
    struct conn *flush_next;
    /* A detached connection (conn_open_detached): no socket, replies to out. */
    conn_out_fn out;         /* NULL once closed, or for a socket's */
    void *out_ctx;
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

/* Whether c can still be answered (its socket is open). */
static inline bool conn_is_open(const struct conn *c)
{
    return c->bev != NULL || c->out != NULL;
}

/* The connection seam (the whole-node simulator drives a node without
 * sockets): a connection whose replies go to out(c, frame, len, ctx), not in
 * the node's list (no limits, idle timeout or TLS); the caller holds the one
 * reference. conn_take_frame hands it one request frame body (no length
 * prefix) as if read from a socket: decoded, admitted, dispatched.
 * conn_close_detached closes it (the modules' on_conn_closed run, the
 * caller's reference is dropped). */
struct conn *conn_open_detached(struct node *n, const char *peer, conn_out_fn out, void *ctx);
void conn_take_frame(struct conn *c, const uint8_t *body, size_t len);
void conn_close_detached(struct conn *c);

/* Write the replies given since the last call to their sockets now, instead
 * of on the loop's next turn (node.c calls it after each turn's group
 * commit). */
void conn_flush_replies(struct node *n);

/* Record a request's latency from n->req_t0_ns (or t0_ns) to now. */
void node_observe(struct node *n, uint32_t req_type, uint64_t t0_ns);

/* The part's state (conn_int.h): made before anything runs (NULL: out of
 * memory), freed after conn_server_stop. */
struct conn_server *conn_server_new(void);
void conn_server_free(struct node *n);
/* The client port's address as bound, with the real port ("" before
 * conn_listen, or without a listener). */
const char *conn_server_addr(const struct node *n);
/* What /metrics and STATUS show of the connections. */
struct conn_server_stats {
    uint32_t conns;      /* open client connections */
    uint32_t waiting;    /* over a limit, not being read */
    uint64_t out_bytes;  /* unsent reply bytes of all of them */
    uint64_t idle_closed, cut_output, evicted; /* closed: idle, not reading replies, for another address */
};
void conn_server_stats(const struct node *n, struct conn_server_stats *out);

/* Start and stop (node.c): the timers (resume, sweep, accept retry) and the
 * open-file room; the listener on --client-addr (its bound address in
 * conn_server_addr); closing the listener; closing every connection. */
int conn_server_start(struct node *n);
int conn_listen(struct node *n, struct errbuf *eb);
void conn_listen_stop(struct node *n);
void conn_server_stop(struct node *n);

#endif
