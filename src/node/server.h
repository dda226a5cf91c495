/* Node internals shared by the server core and its modules.
 *
 * One thread owns everything here. The loop runs one libevent turn, then
 * node_flush: everything that turn produced is persisted with one synced write
 * (group commit), then answered. That function is the one place that orders
 * persist -> reply, so no acknowledgement can leave before its data is durable. */
#ifndef DDKV_NODE_SERVER_H
#define DDKV_NODE_SERVER_H

#include <stdbool.h>
#include <stdint.h>

#include "kv/sm.h"
#include "kv/store.h"
#include "node/dispatch.h"
#include "node/node.h"
#include "proto/frame.h"
#include "proto/lamport.h"
#include "util/buf.h"
#include "util/hist.h"

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
    bool read_paused;  /* output backlog over the limit: stop reading until it drains */
    uint64_t partial_since_ms; /* when the incomplete frame now buffered began, 0 if none */
    char peer[64];
};

/* A module's reply waiting for node_flush. */
struct pending {
    struct conn *c;     /* referenced */
    uint64_t request_id;
    uint32_t kind;      /* DDKV_MSG_WRITTEN_AT / DDKV_MSG_DELETED */
    uint64_t t0_ns;     /* when the request arrived */
    struct sm_result res;
};

struct node_stats {
    uint64_t conns_accepted, conns_refused, frames_in, frames_bad, frames_too_large;
    uint64_t unknown_types, writes, deletes, reads, lists, commits, commit_errors;
    uint64_t commit_entries;
};

struct node {
    struct node_config cfg;
    struct event_base *base;
    struct evconnlistener *listener;
    struct event *sig_term, *sig_int, *accept_retry;
    struct evhttp *http;
    char client_addr[64]; /* as bound, with the real port */
    struct lamport clock;
    struct dispatcher disp;
    struct store *st;
    struct sm sm;
    struct conn *conns;
    uint32_t nconns;
    uint64_t next_conn_id;
    struct pending *pend;
    size_t npend, cappend;
    struct buf scratch; /* reply encoding */
    struct node_stats stats;
    struct hist h_commit;                  /* synced group commit, ns */
    struct hist h_req[DDKV_MSG_TYPE_MAX];  /* request arrival to reply, by request type, ns */
    uint64_t req_t0_ns;                    /* arrival of the request being handled */
    uint64_t started_ms;
    /* Set when a group commit failed: the store may hold a torn or unsynced
     * batch, so no further write is accepted until an operator restarts the
     * node (fail-stop for writes; reads keep being served). */
    int storage_failed;
    bool stopping;
};

/* Modules: each registers its message types with the dispatcher at start-up. */
struct module {
    const char *name;
    int (*init)(struct node *n, struct errbuf *eb);
};
extern const struct module mod_admin;
extern const struct module mod_kv;

/* Replies. conn_reply_begin stamps the Lamport time; conn_reply_end queues the
 * frame on the connection (dropped silently if it has closed). */
void conn_reply_begin(struct conn *c, struct msg_writer *w, uint32_t type, uint64_t request_id,
                      uint32_t nfields);
void conn_reply_end(struct conn *c, struct msg_writer *w);
void conn_reply_error(struct conn *c, uint64_t request_id, uint32_t code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
void conn_ref(struct conn *c);
void conn_unref(struct conn *c);
bool conn_is_open(const struct conn *c);

/* Queue a reply to be sent after the next group commit. */
void node_defer_reply(struct node *n, struct conn *c, uint64_t request_id, uint32_t kind,
                      const struct sm_result *res);

/* Record a request's latency from n->req_t0_ns (or t0_ns) to now. */
void node_observe(struct node *n, uint32_t req_type, uint64_t t0_ns);

/* Status as a msgpack map (STATUS_RESULT) and as JSON text (ops HTTP). */
void node_pack_status(struct node *n, struct msg_writer *w);
char *node_status_json(struct node *n); /* caller frees */

int ops_http_start(struct node *n, struct errbuf *eb);
void ops_http_stop(struct node *n);

#endif
