/* struct node: the node composed of its parts, for the files that work on
 * it (node.c, the parts, the modules).
 *
 * One thread owns everything here. The loop runs one libevent turn, then
 * replica_drive: every proposal that turn produced is persisted in the Raft log
 * with one synced write (group commit), applied once committed, then answered.
 * That function is the one place that orders persist -> send -> apply ->
 * reply, so no acknowledgement can leave before its data is durable.
 *
 * The parts, each with its own header: the connection server (conn.h), the
 * replica (replica.h), the cluster (cluster.h) and the modules (module.h,
 * the list in modules.c). Each part's state is its own struct, defined only
 * in its files (struct replica in replica.c, struct cluster in cluster.c,
 * struct conn_server in conn_int.h for conn.c, node_tls.c and addrtab.c):
 * struct node holds a pointer to each, and what the parts share (identity,
 * clock, store, state machine, dispatcher, counters). Others reach a part's
 * state only through its header's functions (scripts/check-tiers.sh checks
 * that no other file includes a private header). A part's header never
 * includes this one. */
#ifndef DDKV_NODE_NODE_INT_H
#define DDKV_NODE_NODE_INT_H

#include <stdbool.h>
#include <stdint.h>

#include "consensus/raft.h"
#include "kv/sm.h"
#include "kv/snapshot.h"
#include "kv/store.h"
#include "node/cluster.h"
#include "node/conn.h"
#include "node/dispatch.h"
#include "node/lag.h"
#include "node/mod/watch.h"
#include "node/module.h"
#include "node/node.h"
#include "node/node_io.h"
#include "node/replica.h"
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
struct lease_table; /* mod/lease.c */

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
    /* Everything the replica and the cluster do outside memory (node_io.h):
     * &node_io_event in `ddkv serve`, the simulator's in test/nodesim. */
    const struct node_io *io;
    void *io_ctx;
    struct event_base *base;
    /* The parts, each with private state behind its own header. */
    struct conn_server *srv;      /* the client port (conn.h) */
    struct replica *rep;          /* Raft, the log, proposals, reads, snapshots, the fence (replica.h) */
    struct cluster *cl;           /* members, the address book, the peer transport (cluster.h) */
    const struct module *const *modules; /* the module list (modules.c), set by node_run */
    size_t nmodules;
    /* What the parts share: the consensus core (made, driven and freed by
     * the replica; the cluster and the modules ask it for status and the
     * configuration), the identity, the clock, the store and the state
     * machine, the dispatcher, the counters. */
    struct raft *raft;
    uint64_t self_id, cluster_id;
    struct lamport clock;
    struct dispatcher disp;
    struct store *st;
    struct sm sm;
    SSL_CTX *tls_peer;            /* the peer transport's (mutual TLS) context, NULL: plain TCP (node_tls.c) */
    struct node_stats stats;
    struct hist h_req[DDKV_MSG_TYPE_MAX];  /* request arrival to reply, by request type, ns */
    uint64_t req_t0_ns;                    /* arrival of the request being handled */
    struct buf scratch;           /* reply encoding */
    uint64_t started_ms;
    bool stopping;
    struct event *sig_term, *sig_int;
    struct evhttp *http;          /* the ops HTTP port (ops_http.c) */
    SSL_CTX *http_tls;            /* its HTTPS context, NULL: plain HTTP */
    /* The modules' own state, each private to its file in mod/. */
    struct watch_hub watch;       /* history of applied changes, watchers (watch.c) */
    struct lease_table *leases;   /* leader only: lease deadlines (lease.c) */
    struct members_state *mstate; /* mod/members.c */
    struct jobs *jobs;            /* the job queue (mod/jobs.c) */
    struct backups *backups;      /* snapshot saves in progress (mod/backup.c) */
    struct auth_worker *auth;     /* password hashing off the loop (mod/auth.c) */
};

int ops_http_start(struct node *n, struct errbuf *eb);
void ops_http_stop(struct node *n);
/* Make the parts' state (node_run and the simulator, before anything else
 * runs): ERR_NOMEM. node_free_parts frees it. */
int node_parts_new(struct node *n);
/* Stop's second half (node.c), after the connections are closed: answer what
 * still waits, free the modules, cluster, replica and state machine, close
 * the store (clean: marked whole). The simulator crashes a member with it. */
void node_free_parts(struct node *n, bool clean);

#endif
