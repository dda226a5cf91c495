/* ddkv hub: the dashboard's HTTP server. Stateless: everything it shows is
 * read from the cluster, and live updates come from watches, so any number
 * of hubs can run and any can restart.
 *
 * One libevent loop serves HTTP/1.1 (its own small server: every byte a
 * client may make the hub hold is bounded, see the limits below); requests
 * that talk to the cluster (libddkv calls block) run on worker threads in
 * lanes by cost (light, main, proxy, upload), each thread with its own client, and
 * their replies are sent back on the loop. Three watch threads (clients/,
 * metrics/, jobs/) and a cluster poller feed /api/events, a server-sent
 * event stream per browser; each event is encoded once and shared by
 * reference by every stream.
 *
 * What the hub reads from the cluster: clients/, metrics/<id>/, jobs/, a
 * job's result at jobresult/<job id> only (never a key named by stored data
 * or by a request), and its own proxy exchange (req/<id>/, resp/<id>/).
 *
 *   GET  /                          the dashboard (web/index.html)
 *   GET  /assets/NAME               web/NAME; /assets/vendor/chart.js is
 *                                   Debian's libjs-chart.js, served in place
 *   GET  /api/clients               [{id, host, os, ...static data}]
 *   GET  /api/clients/ID/metrics?since=MS   [samples after MS] (default: 40 min)
 *   GET  /api/proxy/ID?kind=now|history&minutes=N   fresh data from the agent
 *   GET  /api/cluster               [{name, role, term, commit, applied, healthy, ...}]
 *   GET  /api/jobs                  [jobs]
 *   POST /api/jobs?name=FILE        body: the file; {"id": ...}
 *   GET  /api/jobs/ID               the job, and its result once done
 *   POST /api/jobs?...&priority=P&algorithm=A   (high|normal|low; GET /api/algorithms)
 *   POST /api/jobs/ID/cancel        DELETE /api/jobs/ID (job, data file, result)
 *   DELETE /api/jobs/ID/result      GET /api/jobs/ID/result.csv, result.json (hub_jobs.c)
 *   GET  /api/events                text/event-stream: client, metric, job,
 *                                   cluster events (data: JSON)
 *   GET  /health                    {"ok": true} when the cluster answers
 *   POST /api/login, POST /api/logout, GET /api/session; /api/users (hub_users.h)
 *   GET|POST /api/clients/ID/series[/NAME], POST /api/clients/ID/series (a
 *                                   batch): hub_series.h; the two POSTs also
 *                                   take Authorization: Basic (a device's own
 *                                   user; HTTPS or loopback only, hub_session.h)
 * Errors are JSON {"error": "..."} with a 4xx/5xx status. */
#ifndef DDKV_HUB_HUB_H
#define DDKV_HUB_HUB_H

#include <stdbool.h>
#include <stdint.h>

#include "ddkv/ddkv.h"

struct hub_config {
    const char *endpoints;
    const char *http_addr;  /* "127.0.0.1:8080" */
    const char *web_dir;    /* the page and its assets */
    const char *chart_js;   /* Chart.js, from Debian's libjs-chart.js */
    uint32_t timeout_ms;    /* per cluster operation */
    uint32_t workers;       /* threads for cluster calls (the main lane) */
    /* Bounds on what clients can make the hub hold (README "The hub"). */
    uint32_t max_conns;          /* open HTTP connections; more: 503 at accept */
    uint32_t max_conns_per_addr; /* of those, from one client address */
    uint32_t max_header_bytes;   /* request line + headers; more: 431 */
    uint32_t header_timeout_ms;  /* from a request's first byte to its blank line; else 408 */
    uint32_t idle_timeout_ms;    /* a keep-alive connection without a request; a reply unread */
    uint32_t queue;              /* requests waiting for the main lane; more: 503 Retry-After */
    uint32_t proxy_workers;      /* threads for /api/proxy (its own lane) */
    uint32_t proxy_queue;        /* proxy requests waiting (each may wait 5 s for its agent) */
    uint32_t uploads;            /* POST /api/jobs bodies at once; more: 503 Retry-After */
    uint64_t max_upload_bytes;   /* one upload; more: 413 */
    uint32_t upload_min_rate;    /* bytes/s over every 10 s window; slower: 408 */
    uint32_t upload_timeout_ms;  /* one upload's whole body; longer: 408 */
    uint32_t sse_max_pending;    /* unsent bytes of an event stream; more: dropped */
    uint64_t max_unsent_bytes;   /* unsent replies of all other connections; more: the biggest dropped */
    /* Sign-in (README "Sign-in"): with cluster auth on, every API path but
     * the login wants a session; with it off the hub listens on loopback
     * only unless allow_no_auth. allowed_hosts: extra Host names (comma
     * separated, a port optional) besides the listening address and
     * localhost, for a hub behind a DNS name. */
    uint32_t session_ttl_s;
    /* HTTPS: a certificate (PEM, chain allowed) and its key; NULL: plain HTTP. */
    const char *https_cert, *https_key;
    bool allow_no_auth;
    const char *allowed_hosts;
    /* Everything else about reaching the cluster (TLS, credentials): the
     * CLI's client options as given; endpoints and timeout_ms above win. */
    struct ddkv_options cluster;
};

void hub_config_defaults(struct hub_config *cfg);

/* Serve until SIGINT/SIGTERM. Returns 0, or 2 (bad configuration, said on stderr). */
int hub_run(const struct hub_config *cfg);

#endif
