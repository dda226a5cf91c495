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
 * the list in modules.c). Their state is still fields of struct node (to
 * move behind each part next); a part's header never includes this one. */
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
    const struct module *const *modules; /* the list (modules.c), set by node_run */
    size_t nmodules;
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
    struct members_state *mstate; /* the members module's own (mod/members.c) */
    bool founding;                /* bootstrapped this run: the log starts with our --cluster */
    struct peer_transport *peers; /* NULL for a one-node cluster without --peer-addr */
    char peer_addr[64];           /* as bound */
    uint64_t last_leader;         /* to count leader changes */
    struct watch_hub watch;       /* history of applied changes, watchers (watch.c) */
    struct lease_table *leases;   /* leader only: lease deadlines (lease.c) */
    struct pending_read *reads;   /* in arrival order */
    size_t nreads, capreads;
    uint64_t read_ctx;            /* last ctx handed to raft_read_index */
    struct node_timer *tick;      /* raft_tick every heartbeat_ms */
    struct store_batch *logb;     /* Raft log writes */
    uint64_t log_first, log_last; /* indexes stored in the raft_log column family */
    /* Snapshots (replica.c): one being written, one being received/installed. */
    struct node_job *snap_job;
    uint64_t snap_index_taking;
    char snap_taking[600];
    uint64_t snap_newest;         /* the newest image written (the log is compacted to the one before) */
    char snap_newest_path[600];
    struct snap_recv srecv;
    char recv_done[600];          /* the last fully received image, "" if none */
    struct node_job *install_job;
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
    struct node_timer *storage_retry;
    uint64_t storage_failed_ms;  /* when the fence began (monotonic) */
    uint64_t storage_note_ms;    /* when the wait was last logged */
    uint64_t storage_recoveries; /* times it rejoined (/metrics) */
    /* The leader's address refused a connection: campaign soon (cluster.c). */
    struct node_timer *campaign_soon;
    uint64_t leader_lost;        /* times that happened (/metrics) */
    struct jobs *jobs;           /* the job queue module's state (mod/jobs.c) */
    struct backups *backups;     /* snapshot saves in progress (mod/backup.c) */
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

int ops_http_start(struct node *n, struct errbuf *eb);
void ops_http_stop(struct node *n);
/* Stop's second half (node.c), after the connections are closed: answer what
 * still waits, free the modules, cluster, replica and state machine, close
 * the store (clean: marked whole). The simulator crashes a member with it. */
void node_free_parts(struct node *n, bool clean);

#endif
