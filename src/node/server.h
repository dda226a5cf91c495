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

/* A client's write waiting for its log entry to commit and apply. */
struct proposal {
    struct conn *c;     /* referenced */
    uint64_t request_id;
    uint32_t kind;      /* reply: DDKV_MSG_WRITTEN_AT / DDKV_MSG_DELETED */
    uint64_t index, term; /* the entry; committed only if that index applies with that term */
    uint64_t t0_ns;     /* when the request arrived */
    struct sm_result res;
    bool lost;
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
    struct raft *raft;
    struct event *tick;           /* raft_tick every heartbeat_ms */
    struct store_batch *logb;     /* Raft log writes */
    uint64_t log_last;            /* last index stored in the raft_log column family */
    struct raft_hard_state hs_synced; /* the hard state last written with an fsync */
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
     * refuses writes until an operator restarts it; reads keep being served. */
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

/* The Raft driver (replica.c). */
int replica_start(struct node *n, struct errbuf *eb);
void replica_stop(struct node *n);
/* Run the core's ready batches: persist (one synced write), send, apply,
 * answer. Called after every loop turn: the group commit. */
void replica_drive(struct node *n);
/* Propose a write for c; answered when it commits and applies. ERR_UNAVAILABLE
 * not the leader, ERR_AGAIN too many writes in flight, ERR_NOMEM. */
int replica_propose(struct node *n, struct conn *c, uint64_t request_id, uint32_t reply_kind,
                    const struct sm_op *op);

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
