/* The ops HTTP endpoints of a node: /health, /status, /metrics. */
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <event2/util.h>
#include <openssl/ssl.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <errno.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "node/peer.h"
#include "node/node_int.h"
#include "node/mod/admin.h"
#include "util/log.h"
#include "util/net.h"
#include "util/tls.h"

static void http_reply(struct evhttp_request *req, int code, const char *type, const char *body)
{
    struct evkeyvalq *h = evhttp_request_get_output_headers(req);
    evhttp_add_header(h, "Content-Type", type);
    evhttp_add_header(h, "Cache-Control", "no-store");
    struct evbuffer *b = evbuffer_new();
    if (!b) {
        evhttp_send_error(req, 500, NULL);
        return;
    }
    evbuffer_add(b, body, strlen(body));
    evhttp_send_reply(req, code, code == 200 ? "OK" : "Service Unavailable", b);
    evbuffer_free(b);
}

static void http_health(struct evhttp_request *req, void *arg)
{
    struct node *n = arg;
    /* 200 when this node sees a leader, can store writes and is within the
     * configured lag of the commit index; 503 otherwise. */
    struct node_health h = node_health(n);
    bool ok = h.healthy;
    char body[320];
    snprintf(body, sizeof body,
             "{\"healthy\":%s,\"name\":\"%s\",\"storage_failed\":%s,\"sees_leader\":%s,"
             "\"lag_entries\":%llu,\"lag_ms\":%llu}",
             ok ? "true" : "false", n->cfg.name, replica_fenced(n) ? "true" : "false",
             h.sees_leader ? "true" : "false", (unsigned long long)h.lag_entries, (unsigned long long)h.lag_ms);
    http_reply(req, ok ? 200 : 503, "application/json", body);
}

static void http_status(struct evhttp_request *req, void *arg)
{
    char *s = node_status_json(arg);
    if (!s) {
        evhttp_send_error(req, 500, "status unavailable");
        return;
    }
    http_reply(req, 200, "application/json", s);
    free(s);
}

static void metric(struct evbuffer *b, const char *name, const char *type, const char *help,
                   unsigned long long v)
{
    evbuffer_add_printf(b, "# HELP %s %s\n# TYPE %s %s\n%s %llu\n", name, help, name, type, name, v);
}

/* A Prometheus histogram in seconds from a histogram in nanoseconds. Counts
 * at each bound are exact to the histogram's bucket width (3%). */
static void metric_hist(struct evbuffer *b, const char *name, const char *help, const char *label,
                        const struct hist *h, bool header)
{
    static const double bounds_s[] = {0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01,
                                      0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5};
    if (header)
        evbuffer_add_printf(b, "# HELP %s %s\n# TYPE %s histogram\n", name, help, name);
    const char *sep = label && *label ? "," : "";
    for (size_t i = 0; i < sizeof bounds_s / sizeof bounds_s[0]; i++)
        evbuffer_add_printf(b, "%s_bucket{%s%sle=\"%g\"} %llu\n", name, label ? label : "", sep,
                            bounds_s[i], (unsigned long long)hist_count_le(h, (uint64_t)(bounds_s[i] * 1e9)));
    evbuffer_add_printf(b, "%s_bucket{%s%sle=\"+Inf\"} %llu\n", name, label ? label : "", sep,
                        (unsigned long long)h->total);
    const char *open = label && *label ? "{" : "";
    const char *close = label && *label ? "}" : "";
    evbuffer_add_printf(b, "%s_sum%s%s%s %.9f\n", name, open, label ? label : "", close, (double)h->sum / 1e9);
    evbuffer_add_printf(b, "%s_count%s%s%s %llu\n", name, open, label ? label : "", close,
                        (unsigned long long)h->total);
}

/* The storage engine's background work (kv/store.h). */
static void metrics_store(struct evbuffer *b, struct store *st)
{
    struct store_engine_stats es;
    store_engine_stats(st, &es);
    metric(b, "ddkv_store_flushes_total", "counter", "Memtable flushes RocksDB finished (all column families).",
           es.flushes);
    metric(b, "ddkv_store_compactions_total", "counter", "Compactions RocksDB finished (all column families).",
           es.compactions);
    metric(b, "ddkv_store_write_stalls_total", "counter",
           "Times RocksDB slowed or stopped writes (each cause counted once).", es.stalls);
    evbuffer_add_printf(b, "# HELP ddkv_store_write_stall_seconds_total Time RocksDB held writes stalled.\n"
                           "# TYPE ddkv_store_write_stall_seconds_total counter\n"
                           "ddkv_store_write_stall_seconds_total %.6f\n", (double)es.stall_us / 1e6);
}

static void http_metrics(struct evhttp_request *req, void *arg)
{
    struct node *n = arg;
    struct evbuffer *b = evbuffer_new();
    if (!b) {
        evhttp_send_error(req, 500, NULL);
        return;
    }
    const struct node_stats *s = &n->stats;
    struct conn_server_stats cs;
    conn_server_stats(n, &cs);
    metric(b, "ddkv_connections", "gauge", "Open client connections.", cs.conns);
    metric(b, "ddkv_connections_accepted_total", "counter", "Client connections accepted.", s->conns_accepted);
    metric(b, "ddkv_connections_refused_total", "counter", "Connections refused over the limit.", s->conns_refused);
    metric(b, "ddkv_connections_idle_closed_total", "counter", "Client connections closed for idleness.",
           cs.idle_closed);
    metric(b, "ddkv_connections_evicted_total", "counter",
           "Idle client connections closed at the limit for an address holding fewer.", cs.evicted);
    metric(b, "ddkv_connections_cut_output_total", "counter",
           "Client connections closed for not reading their replies.", cs.cut_output);
    metric(b, "ddkv_connections_waiting", "gauge", "Client connections over a limit, not being read.", cs.waiting);
    metric(b, "ddkv_output_bytes", "gauge", "Unsent reply bytes of all client connections.", cs.out_bytes);
    metric(b, "ddkv_auth_throttled_total", "counter", "AUTHs refused because their address failed recently.",
           s->auth_throttled);
    metric(b, "ddkv_tls_handshake_failures_total", "counter",
           "Client-port TLS handshakes that failed or timed out.", s->tls_handshake_failures);
    metric(b, "ddkv_frames_received_total", "counter", "Frames received.", s->frames_in);
    metric(b, "ddkv_frames_bad_total", "counter", "Frames refused as malformed.", s->frames_bad);
    metric(b, "ddkv_frames_too_large_total", "counter", "Frames refused over the size limit.", s->frames_too_large);
    metric(b, "ddkv_unknown_types_total", "counter", "Messages of an unknown type.", s->unknown_types);
    metric(b, "ddkv_writes_total", "counter", "WRITE requests accepted.", s->writes);
    metric(b, "ddkv_deletes_total", "counter", "DELETE requests accepted.", s->deletes);
    metric(b, "ddkv_reads_total", "counter", "READ requests served.", s->reads);
    metric(b, "ddkv_lists_total", "counter", "LIST requests served.", s->lists);
    metric(b, "ddkv_commits_total", "counter", "Synced group commits.", s->commits);
    metric(b, "ddkv_commit_entries_total", "counter", "Entries written by group commits.", s->commit_entries);
    metric(b, "ddkv_commit_errors_total", "counter", "Group commits that failed.", s->commit_errors);
    metric(b, "ddkv_storage_failed", "gauge", "1 while a storage failure fences this member.",
           replica_fenced(n) != 0);
    metric(b, "ddkv_storage_recoveries_total", "counter",
           "Times this member rejoined after its disk took writes again.", replica_recoveries(n));
    metric(b, "ddkv_leader_lost_total", "counter",
           "Times the leader's address refused a connection and this member campaigned early.", replica_leader_lost(n));
    metric(b, "ddkv_applied_index", "gauge", "Last applied index.", n->sm.applied_index);
    struct raft_status rs;
    raft_status(n->raft, &rs);
    metric(b, "ddkv_raft_term", "gauge", "Current Raft term.", rs.term);
    metric(b, "ddkv_raft_commit_index", "gauge", "Raft commit index.", rs.commit);
    metric(b, "ddkv_raft_last_index", "gauge", "Last index in the Raft log.", rs.last_index);
    metric(b, "ddkv_raft_snapshot_index", "gauge", "Index of the latest snapshot.", rs.snap_index);
    metric(b, "ddkv_raft_is_leader", "gauge", "1 if this member is the leader.", rs.role == RAFT_LEADER);
    metric(b, "ddkv_raft_has_leader", "gauge", "1 if this member knows a leader.", rs.leader != 0);
    metric(b, "ddkv_raft_leader_changes_total", "counter", "Leaders seen by this member.", s->leader_changes);
    metric(b, "ddkv_raft_proposals_total", "counter", "Entries this member proposed as leader.", s->proposals);
    metric(b, "ddkv_raft_proposals_refused_total", "counter", "Proposals refused (not leader, backpressure).",
           s->proposals_refused);
    metric(b, "ddkv_raft_peer_messages_rejected_total", "counter", "Peer messages the Raft core refused.",
           s->peer_rejected);
    metric(b, "ddkv_reads_linearizable_total", "counter", "Linearizable reads (ReadIndex).", s->reads_linearizable);
    metric(b, "ddkv_reads_causal_total", "counter", "Causal reads.", s->reads_causal);
    metric(b, "ddkv_reads_stale_total", "counter", "Stale reads.", s->reads_stale);
    metric(b, "ddkv_reads_timed_out_total", "counter", "Reads that timed out waiting.", s->reads_timed_out);
    metric(b, "ddkv_write_retries_deduplicated_total", "counter",
           "Retried writes answered from their client session instead of applied again.", s->duplicates);
    metric(b, "ddkv_sessions", "gauge", "Client sessions held by the state machine.", n->sm.sessions);
    size_t watchers = 0;
    for (const struct watcher *w = n->watch.watchers; w; w = w->next)
        watchers++;
    metric(b, "ddkv_watchers", "gauge", "Open watch streams.", watchers);
    metric(b, "ddkv_watch_events_sent_total", "counter", "Events written to watchers.", n->watch.delivered);
    metric(b, "ddkv_watch_cut_off_total", "counter", "Watchers cut off for falling behind the history.",
           n->watch.cut_off);
    metric(b, "ddkv_watch_history_bytes", "gauge", "Keys and values held in the watch history.", n->watch.bytes);
    metric(b, "ddkv_watch_oldest_revision", "gauge", "Oldest revision a watch can start from.",
           n->watch.oldest_rev);
    metric(b, "ddkv_txns_total", "counter", "TXN requests proposed.", s->txns);
    metric(b, "ddkv_leases", "gauge", "Live leases in the state machine.", n->sm.leases);
    metric(b, "ddkv_leases_expired_total", "counter", "Lease expiries this member proposed as leader.",
           s->leases_expired);
    metric(b, "ddkv_auth_enabled", "gauge", "1 when authentication is enabled (as applied here).",
           n->sm.auth.enabled);
    metric(b, "ddkv_auth_logins_total", "counter", "AUTH requests that verified a password.", s->auth_ok);
    metric(b, "ddkv_auth_login_failures_total", "counter", "AUTH requests refused (wrong user or password).",
           s->auth_failed);
    metric(b, "ddkv_auth_denied_total", "counter", "Requests refused by the permission check.", s->auth_denied);
    metric(b, "ddkv_snapshots_taken_total", "counter", "Snapshots written.", s->snapshots_taken);
    metric(b, "ddkv_snapshots_installed_total", "counter", "Snapshots received and installed.",
           s->snapshots_installed);
    metric(b, "ddkv_snapshot_image_errors_total", "counter",
           "Snapshot images a follower needed that could not be read (each replaced by a fresh one).",
           s->snap_image_errors);
    metric(b, "ddkv_raft_follower_regressions_total", "counter",
           "Followers found holding less of the log than they had acknowledged.", rs.regressions);
    struct node_health nh = node_health(n);
    metric(b, "ddkv_healthy", "gauge", "1 when this member is healthy (as /health says).", nh.healthy);
    metric(b, "ddkv_lag_entries", "gauge", "Committed entries this member has not applied.", nh.lag_entries);
    evbuffer_add_printf(b, "# HELP ddkv_lag_seconds Age of the oldest committed entry this member has not applied.\n"
                           "# TYPE ddkv_lag_seconds gauge\nddkv_lag_seconds %.3f\n", (double)nh.lag_ms / 1e3);
    if (rs.role == RAFT_LEADER) {
        /* The leader's view of every member: match index and lag. */
        const struct raft_conf *conf = raft_get_conf(n->raft);
        static const char *const names[3] = {"ddkv_member_match_index", "ddkv_member_lag_entries",
                                             "ddkv_member_lag_seconds"};
        static const char *const helps[3] = {
            "Highest log index the leader knows is stored on the member.",
            "Committed entries the member does not hold yet (leader's view).",
            "Age of the oldest committed entry the member does not hold (leader's view)."};
        for (int k = 0; k < 3; k++) {
            evbuffer_add_printf(b, "# HELP %s %s\n# TYPE %s gauge\n", names[k], helps[k], names[k]);
            for (uint32_t i = 0; i < conf->n; i++) {
                uint64_t match, entries, ms;
                const struct member *m = cluster_member(n, conf->ids[i]);
                if (!m || !node_member_lag(n, conf->ids[i], &match, &entries, &ms))
                    continue;
                if (k == 2)
                    evbuffer_add_printf(b, "%s{member=\"%s\"} %.3f\n", names[k], m->name, (double)ms / 1e3);
                else
                    evbuffer_add_printf(b, "%s{member=\"%s\"} %llu\n", names[k], m->name,
                                        (unsigned long long)(k == 0 ? match : entries));
            }
        }
    }
    if (cluster_peers(n)) {
        struct peer_stats ps;
        peer_get_stats(cluster_peers(n), 0, &ps);
        metric(b, "ddkv_peer_frames_sent_total", "counter", "Peer frames sent.", ps.sent);
        metric(b, "ddkv_peer_frames_received_total", "counter", "Peer frames received.", ps.received);
        metric(b, "ddkv_peer_frames_dropped_total", "counter", "Peer frames dropped (queue full).", ps.dropped);
        metric(b, "ddkv_peer_bad_frames_total", "counter", "Peer connections closed for bad input.", ps.bad_frames);
        metric(b, "ddkv_peer_refused_hellos_total", "counter", "Peer hellos refused: another cluster, or no valid proof of the cluster token.", ps.refused_hellos);
        metric(b, "ddkv_peer_queued_bytes", "gauge", "Bytes waiting in peer send queues.", ps.queued_bytes);
    }
    metric(b, "ddkv_revision", "gauge", "Current revision.", n->sm.revision);
    metric(b, "ddkv_lamport", "gauge", "Lamport clock.", n->clock.now);
    metric(b, "ddkv_keys", "gauge", "Live keys.", n->sm.keys);
    metrics_store(b, n->st);
    metric_hist(b, "ddkv_commit_fsync_seconds", "Synced group commit duration.", NULL, replica_commit_hist(n), true);
    static const uint32_t req_types[] = {DDKV_MSG_READ, DDKV_MSG_WRITE, DDKV_MSG_DELETE, DDKV_MSG_LIST};
    for (size_t i = 0; i < sizeof req_types / sizeof req_types[0]; i++) {
        char label[48];
        snprintf(label, sizeof label, "type=\"%s\"", msg_type_name(req_types[i]));
        metric_hist(b, "ddkv_request_seconds", "Request arrival to reply, by request type.", label,
                    &n->h_req[req_types[i]], i == 0);
    }
    struct evkeyvalq *h = evhttp_request_get_output_headers(req);
    evhttp_add_header(h, "Content-Type", "text/plain; version=0.0.4");
    evhttp_send_reply(req, 200, "OK", b);
    evbuffer_free(b);
}

/* HTTPS: each accepted connection's bufferevent does TLS (evhttp frees it,
 * and the SSL with it). NULL refuses the connection. */
static struct bufferevent *https_bev(struct event_base *base, void *arg)
{
    struct node *n = arg;
    SSL *ssl = SSL_new(n->http_tls);
    struct bufferevent *bev =
        ssl ? bufferevent_openssl_socket_new(base, -1, ssl, BUFFEREVENT_SSL_ACCEPTING, BEV_OPT_CLOSE_ON_FREE) : NULL;
    if (!bev && ssl)
        SSL_free(ssl);
    if (bev)
        bufferevent_openssl_set_allow_dirty_shutdown(bev, 1);
    return bev;
}

int ops_http_start(struct node *n, struct errbuf *eb)
{
    struct sockaddr_storage ss;
    socklen_t sl;
    if (net_parse_addr(n->cfg.http_addr, &ss, &sl) != ERR_OK)
        return errf(eb, ERR_BAD_INPUT, "bad --http-addr '%s' (want host:port)", n->cfg.http_addr);
    if (!n->cfg.http_tls_cert != !n->cfg.http_tls_key)
        return errf(eb, ERR_BAD_INPUT, "--http-tls-cert and --http-tls-key go together");
    if (n->cfg.http_tls_cert) {
        int rc = tls_server_ctx(&n->http_tls, n->cfg.http_tls_cert, n->cfg.http_tls_key, NULL, TLS_PEER_CERT_NONE, eb);
        if (rc)
            return rc;
    }
    n->http = evhttp_new(n->base);
    if (!n->http)
        return errf(eb, ERR_NOMEM, "cannot create the HTTP server");
    if (n->http_tls)
        evhttp_set_bevcb(n->http, https_bev, n);
    evhttp_set_allowed_methods(n->http, EVHTTP_REQ_GET | EVHTTP_REQ_HEAD);
    evhttp_set_timeout(n->http, 30);
    evhttp_set_max_headers_size(n->http, 16384);
    evhttp_set_max_body_size(n->http, 4096);
    evhttp_set_cb(n->http, "/health", http_health, n);
    evhttp_set_cb(n->http, "/status", http_status, n);
    evhttp_set_cb(n->http, "/metrics", http_metrics, n);
    /* Bind ourselves (evhttp's own binder refuses port 0), then hand it over. */
    evutil_socket_t fd = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    int one = 1;
    if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) != 0 ||
        bind(fd, (struct sockaddr *)&ss, sl) != 0 || listen(fd, 128) != 0) {
        int e = errno;
        if (fd >= 0)
            close(fd);
        return errf(eb, ERR_IO, "cannot listen for HTTP on %s: %s", n->cfg.http_addr, strerror(e));
    }
    if (!evhttp_accept_socket_with_handle(n->http, fd)) {
        close(fd);
        return errf(eb, ERR_IO, "cannot serve HTTP on %s", n->cfg.http_addr);
    }
    struct sockaddr_storage bound;
    socklen_t blen = sizeof bound;
    getsockname(fd, (struct sockaddr *)&bound, &blen);
    char where[80];
    net_format_addr((struct sockaddr *)&bound, where, sizeof where);
    log_info("http listening on %s%s", where, n->http_tls ? " (HTTPS)" : "");
    return ERR_OK;
}

void ops_http_stop(struct node *n)
{
    if (n->http)
        evhttp_free(n->http);
    n->http = NULL;
    if (n->http_tls)
        SSL_CTX_free(n->http_tls);
    n->http_tls = NULL;
}
