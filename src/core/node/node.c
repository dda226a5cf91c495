/* The node: its configuration's defaults, and node_run, which composes the
 * parts (connection server, replica, cluster, modules) into one process,
 * starts them in order, runs the loop (one turn, then one group commit) and
 * stops them in the reverse order. */
#include <signal.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>

#include "kv/passwd.h"
#include "node/access.h"
#include "node/node_int.h"
#include "node/node_io.h"
#include "node/replica.h"
#include "util/clock.h"
#include "util/file.h"
#include "util/evwrite.h"
#include "util/log.h"

void node_config_defaults(struct node_config *cfg)
{
    memset(cfg, 0, sizeof *cfg);
    cfg->name = "n1";
    cfg->client_addr = "127.0.0.1:7001";
    cfg->max_frame_bytes = DDKV_DEFAULT_MAX_FRAME_BYTES;
    cfg->max_key_bytes = DDKV_DEFAULT_MAX_KEY_BYTES;
    cfg->max_value_bytes = DDKV_DEFAULT_MAX_VALUE_BYTES;
    cfg->max_connections = 10000;
    /* A frame that has started arriving must finish within this, or the
     * connection is closed: a client cannot pin a partial frame's memory
     * forever. An idle connection between frames has no deadline (clients
     * pool them). */
    cfg->frame_timeout_ms = 30000;
    cfg->heartbeat_ms = 100;
    cfg->election_timeout_ms = 1000;
    cfg->snapshot_entries = 10000;
    cfg->watch_history_bytes = WATCH_HISTORY_BYTES;
    cfg->log_level = "info";
    cfg->auth_hash_iterations = PASSWD_ITERATIONS;
    cfg->health_max_lag_entries = 10000;
    cfg->health_max_lag_ms = 3000;
    /* Enough for real local use (bench opens 64+, the hub and agents several)
     * while no one address takes the node's connections. */
    cfg->max_conns_per_addr = 1000;
    cfg->idle_timeout_ms = 300000;
    cfg->conn_output_bytes = 4u << 20;
    cfg->conn_inflight_max = 16;
    cfg->node_output_bytes = 128u << 20;
}

/* Every client message type a module registered has a rule in the permission
 * table (access.c): a type without one would be refused to all but root. */
static int node_access_covered(struct node *n, struct errbuf *eb)
{
    for (uint32_t t = 1; t < DDKV_MSG_TYPE_MAX; t++)
        if (n->disp.table[t].fn && !access_has_rule(t))
            return errf(eb, ERR_BAD_INPUT, "message type %u (%s) of module %s has no rule in src/core/node/access.c", t,
                        msg_type_name(t), n->disp.table[t].module);
    return ERR_OK;
}

/* SIGTERM or SIGINT. A leader with a reachable voter hands leadership over
 * first (the core brings it up to date, then tells it to campaign), so that
 * writes pause for an election's round trip instead of an election timeout;
 * the loop stops once another member leads, or after an election timeout.
 * A second signal stops at once. */
static void signal_cb(evutil_socket_t sig, short what, void *arg)
{
    struct node *n = arg;
    (void)what;
    if (replica_handoff(n)) {
        log_info("signal %d: stopping once leadership has moved", (int)sig);
        return;
    }
    log_info("signal %d: stopping", (int)sig);
    n->stopping = true;
    event_base_loopbreak(n->base);
}

/* Answer what still waits, free the modules, the cluster, the replica and
 * the state machine, and close the store (clean: mark its log whole). The
 * connections are closed already. node_teardown's, and the simulator's at a
 * member's crash. */
int node_parts_new(struct node *n)
{
    n->srv = conn_server_new();
    n->rep = replica_new();
    n->cl = cluster_new();
    return n->srv && n->rep && n->cl ? ERR_OK : ERR_NOMEM;
}

void node_free_parts(struct node *n, bool clean)
{
    if (n->rep)
        replica_fail_all(n);
    modules_free(n); /* before the address table: a queued AUTH refers to its entry */
    if (n->srv)
        addr_free_all(n);
    if (n->cl)
        cluster_stop(n);
    if (n->rep)
        replica_stop(n);
    if (n->sm.batch)
        sm_close(&n->sm);
    /* A clean stop with a healthy store marks its log whole (store.h). */
    if (clean && !replica_fenced(n))
        store_close_clean(n->st);
    else
        store_close(n->st);
    n->st = NULL;
    buf_free(&n->scratch);
    if (n->srv)
        node_tls_free(n); /* the connections and the peer transport are gone */
    replica_free(n);
    cluster_free(n);
    conn_server_free(n);
}

static void node_teardown(struct node *n)
{
    bool clean = n->stopping && n->rep && n->raft != NULL; /* a stop asked for, after a start */
    if (n->srv)
        conn_listen_stop(n);
    if (n->rep && n->raft) {
        replica_flush(n);
        replica_drive(n);
        replica_flush(n);
    }
    ops_http_stop(n);
    if (n->srv)
        conn_server_stop(n);
    if (n->sig_term)
        event_free(n->sig_term);
    if (n->sig_int)
        event_free(n->sig_int);
    node_free_parts(n, clean);
    if (n->base)
        event_base_free(n->base);
}

/* The exit status of a start refused with rc: 4 when the data dir is
 * damaged (ERR_CORRUPT: a checksum failed; the message before this one names
 * the file), which no restart can cure and deploy/ddkv.service does not
 * restart (RestartPreventExitStatus); 1 otherwise. */
static int node_exit_damaged(const struct node_config *cfg, int rc)
{
    if (rc != ERR_CORRUPT)
        return 1;
    log_error("refusing to start: data dir %s is damaged, and this member serves and replicates "
              "nothing from it. To bring it back: 'ddkv members remove %s' on the cluster, move "
              "this data dir away, start it empty with --join, then 'ddkv members add %s %s' "
              "(README, \"Disk corruption\")",
              cfg->data_dir, cfg->name ? cfg->name : "NAME", cfg->name ? cfg->name : "NAME",
              cfg->peer_addr ? cfg->peer_addr : "PEER_ADDR");
    return 4;
}

int node_run(const struct node_config *cfg)
{
    /* Heap, not stack: the latency histograms make the node a few MiB. */
    struct node *n = calloc(1, sizeof *n);
    struct errbuf eb = {{0}};
    int exit_code = 1;
    if (!n) {
        log_error("out of memory");
        return 1;
    }
    n->cfg = *cfg;
    n->io = &node_io_event;
    n->modules = node_modules; /* free hooks run at every stop, even before init: each frees what it made */
    n->nmodules = node_nmodules;
    log_set_name(cfg->name);
    int lvl = log_level_parse(cfg->log_level ? cfg->log_level : "info");
    if (lvl < 0) {
        log_error("bad --log-level '%s' (debug|info|warn|error)", cfg->log_level);
        return 2;
    }
    log_set_level((enum log_level)lvl);
    if (!cfg->data_dir || !*cfg->data_dir) {
        log_error("--data-dir is required");
        return 2;
    }
    if (cfg->heartbeat_ms == 0 || cfg->election_timeout_ms < 2 * cfg->heartbeat_ms) {
        log_error("--election-timeout-ms (%u) must be at least twice --heartbeat-ms (%u)",
                  cfg->election_timeout_ms, cfg->heartbeat_ms);
        return 2;
    }
    if (cfg->auth_hash_iterations < PASSWD_ITERATIONS_MIN || cfg->auth_hash_iterations > PASSWD_ITERATIONS_MAX) {
        log_error("--auth-hash-iterations must be %u..%u", PASSWD_ITERATIONS_MIN, PASSWD_ITERATIONS_MAX);
        return 2;
    }
    if (cfg->max_frame_bytes < 1024 || cfg->max_key_bytes == 0 || cfg->max_value_bytes == 0 ||
        (uint64_t)cfg->max_key_bytes + cfg->max_value_bytes + 1024 > cfg->max_frame_bytes) {
        log_error("limits must satisfy key + value + 1 KiB <= frame (frame %u, key %u, value %u)",
                  cfg->max_frame_bytes, cfg->max_key_bytes, cfg->max_value_bytes);
        return 2;
    }
    if (node_parts_new(n) != ERR_OK) {
        log_error("out of memory");
        node_free_parts(n, false);
        free(n);
        return 1;
    }
    signal(SIGPIPE, SIG_IGN);
    n->started_ms = clock_wall_ms();
    for (int i = 0; i < DDKV_MSG_TYPE_MAX; i++)
        hist_init(&n->h_req[i]);
    /* The data dir (and any missing parent) is durable before anything in
     * it is relied on: a power cut must not take it (util/file.h). */
    if (file_mkdir_durable(cfg->data_dir, 0700, &eb) != ERR_OK) {
        log_error("cannot create data dir %s: %s", cfg->data_dir, eb.msg);
        node_free_parts(n, false);
        free(n);
        return 1;
    }
    struct store_options so = {0};
    int rc = store_open(&n->st, cfg->data_dir, &so, &eb);
    if (rc) {
        log_error("cannot open data dir %s: %s", cfg->data_dir, eb.msg);
        node_free_parts(n, false);
        free(n);
        return node_exit_damaged(cfg, rc);
    }
    /* An install a crash interrupted is finished before anything reads the
     * state machine (its image is durable; see src/core/kv/snapshot.h); then the
     * state machine is loaded and the clock set above its Lamport time. The
     * same function reloads it when a node fenced by a full disk rejoins. */
    if ((rc = replica_load_state(n, &eb))) {
        log_error("%s", eb.msg);
        exit_code = node_exit_damaged(cfg, rc);
        goto out;
    }
    n->base = evbase_new();
    if (!n->base) {
        log_error("cannot create event loop");
        goto out;
    }
    dispatcher_init(&n->disp);
    if ((rc = modules_init(n, &eb)))
        goto out; /* logged, naming the module */
    if ((rc = node_tls_init(n, &eb))) {
        log_error("%s", eb.msg);
        exit_code = rc == ERR_BAD_INPUT ? 2 : 1;
        goto out;
    }
    if ((rc = node_access_covered(n, &eb))) {
        log_error("%s", eb.msg);
        goto out;
    }
    if ((rc = cluster_load(n, &eb))) {
        log_error("%s", eb.msg);
        exit_code = rc == ERR_BAD_INPUT ? 2 : 1;
        goto out;
    }
    if (conn_server_start(n) != ERR_OK) {
        log_error("out of memory");
        goto out;
    }
    n->sig_term = evsignal_new(n->base, SIGTERM, signal_cb, n);
    n->sig_int = evsignal_new(n->base, SIGINT, signal_cb, n);
    event_add(n->sig_term, NULL);
    event_add(n->sig_int, NULL);
    /* Listeners first (nothing is served before the loop runs): the peer
     * hello carries the client address as bound. */
    if ((rc = conn_listen(n, &eb)) == ERR_OK) {
        cluster_set_client_addr(n, conn_server_addr(n));
        rc = cluster_start(n, replica_leader_refused, &eb);
    }
    if (rc) {
        log_error("%s", eb.msg);
        exit_code = rc == ERR_BAD_INPUT ? 2 : 1;
        goto out;
    }
    if ((rc = replica_start(n, &eb))) {
        log_error("cannot start Raft from %s: %s", cfg->data_dir, eb.msg);
        exit_code = node_exit_damaged(cfg, rc);
        goto out;
    }
    if (cfg->http_addr && *cfg->http_addr && (rc = ops_http_start(n, &eb))) {
        log_error("%s", eb.msg);
        exit_code = rc == ERR_BAD_INPUT ? 2 : 1;
        goto out;
    }
    log_info("data dir %s: applied index %llu, revision %llu, lamport %llu, %llu keys, "
             "raft log to %llu",
             cfg->data_dir, (unsigned long long)n->sm.applied_index,
             (unsigned long long)n->sm.revision, (unsigned long long)n->sm.applied_lamport,
             (unsigned long long)n->sm.keys, (unsigned long long)replica_log_last(n));
    log_info("client listening on %s", conn_server_addr(n));

    /* One loop turn, then one group commit: the libevent 2.1 stand-in for a
     * before-sleep hook (see ARCHITECTURE.md). */
    while (!n->stopping) {
        if (event_base_loop(n->base, EVLOOP_ONCE) < 0) {
            log_error("event loop failed");
            goto out;
        }
        replica_drive(n);
        conn_flush_replies(n);
    }
    exit_code = 0;
    log_info("stopped cleanly");
out:
    node_teardown(n);
    free(n);
    return exit_code;
}
