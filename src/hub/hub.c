/* ddkv hub (see hub.h). */
#include "hub/hub.h"

#include <errno.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <event2/thread.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdarg.h>
#include <jansson.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include "ddkv/ddkv.h"
#include "jobs/submit.h"
#include "util/clock.h"

#define HUB_SSE_MAX_QUEUED (8u << 20)  /* a browser this far behind is dropped */
#define HUB_METRICS_DEFAULT_MS (40u * 60 * 1000)
#define HUB_LAMPORT_MAX 1000000000000ull /* a `since` below it (2001-09-09 in ms) is a Lamport time */
#define HUB_PROXY_WAIT_MS 5000
#define HUB_MAX_BODY (64 << 20)

enum route { R_CLIENTS, R_METRICS, R_PROXY, R_CLUSTER, R_JOBS, R_JOB, R_JOB_POST, R_HEALTH };

struct hub;

struct task {
    struct hub *h;
    struct evhttp_request *req;
    struct evhttp_connection *evcon;
    enum route route;
    char arg[128];         /* the id in the path */
    struct evkeyvalq query;
    struct evbuffer *body; /* POST */
    int status;
    char *out;             /* the JSON reply (malloc) */
    bool cancelled;        /* the browser went away */
    struct task *next;                 /* the work queue */
    struct task *iprev, *inext;        /* in flight (loop thread only) */
};

struct sse {
    struct evhttp_request *req;
    struct evhttp_connection *evcon;
    struct sse *next;
};

struct hub {
    const struct hub_config *cfg;
    struct event_base *base;
    struct evhttp *http;
    volatile int stopping;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    struct task *qh, *qt;
    pthread_t *workers;
    uint32_t nworkers;
    struct task *inflight;
    struct sse *sse;
    pthread_mutex_t fmu;
    struct evbuffer *feed;
    struct event *feed_ev, *ping_ev, *sig_int, *sig_term;
    pthread_t watchers[3], poller;
};

/* --- small helpers --- */

/* Client options for endpoints: the hub's timeout, TLS and credentials. */
static void hub_options(const struct hub_config *cfg, const char *endpoints, uint32_t timeout_ms,
                        struct ddkv_options *o)
{
    *o = cfg->cluster;
    o->endpoints = endpoints;
    o->timeout_ms = timeout_ms;
}

static ddkv_client *hub_client(const struct hub_config *cfg, const char *endpoints, uint32_t timeout_ms)
{
    struct ddkv_options o;
    hub_options(cfg, endpoints, timeout_ms, &o);
    o.connect_timeout_ms = 500;
    /* What the hub lists (machines, metric points, jobs) is for display:
     * any member that has applied what this hub has seen may answer, without
     * a ReadIndex round through the leader per page. */
    o.list_consistency = DDKV_CONSISTENCY_CAUSAL;
    ddkv_client *c = NULL;
    char err[256];
    return ddkv_client_new(&o, &c, err, sizeof err) == DDKV_OK ? c : NULL;
}

static char *dump(json_t *o)
{
    char *s = o ? json_dumps(o, JSON_COMPACT | JSON_REAL_PRECISION(8)) : NULL;
    json_decref(o);
    return s;
}

static void task_error(struct task *t, int status, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void task_error(struct task *t, int status, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    t->status = status;
    free(t->out);
    t->out = dump(json_pack("{s:s}", "error", msg));
}

/* A libddkv failure as an HTTP status. */
static void task_fail(struct task *t, ddkv_client *c, ddkv_err e, const char *what)
{
    int status = e == DDKV_ERR_NOT_FOUND ? 404 : e == DDKV_ERR_BAD_REQUEST || e == DDKV_ERR_TOO_LARGE ? 400 : 503;
    task_error(t, status, "%s: %s", what, c ? ddkv_client_errmsg(c) : ddkv_strerror(e));
}

/* A stored value as JSON, or as a string if it is not JSON. */
static json_t *value_json(const void *p, size_t n)
{
    json_error_t e;
    json_t *o = json_loadb(p, n, 0, &e);
    return o ? o : json_stringn_nocheck(p, n);
}

/* --- the handlers (worker threads) --- */

/* Every key under prefix as a JSON array of its values; with id_field, each
 * object value also gets the key's rest after the prefix under that name. */
static void list_json(struct task *t, ddkv_client *c, const char *prefix, uint64_t max, const char *id_field,
                      const char *what)
{
    size_t plen = strlen(prefix);
    struct ddkv_list l;
    ddkv_err e = ddkv_list_all(c, prefix, plen, max, &l);
    if (e != DDKV_OK) {
        task_fail(t, c, e, what);
        return;
    }
    json_t *arr = json_array();
    for (size_t i = 0; i < l.n; i++) {
        json_t *o = value_json(l.entries[i].value, l.entries[i].value_len);
        if (id_field && json_is_object(o))
            json_object_set_new(o, id_field,
                                json_stringn((const char *)l.entries[i].key + plen, l.entries[i].key_len - plen));
        json_array_append_new(arr, o);
    }
    ddkv_list_free(&l);
    t->status = 200;
    t->out = dump(arr);
}

static void h_clients(struct task *t, ddkv_client *c)
{
    list_json(t, c, "clients/", 10000, "id", "listing clients");
}

static void h_metrics(struct task *t, ddkv_client *c)
{
    /* since: a Unix time in ms (points sampled after it), or, below
     * HUB_LAMPORT_MAX, a Lamport time (points written after it, whatever
     * their sample time: a flushed backlog included). Default: the last 40
     * minutes. */
    const char *s = evhttp_find_header(&t->query, "since");
    uint64_t since = s ? strtoull(s, NULL, 10) : 0, lamport = 0;
    if (since && since < HUB_LAMPORT_MAX) {
        lamport = since;
        since = 0;
    } else if (!since) {
        since = clock_wall_ms() - HUB_METRICS_DEFAULT_MS;
    }
    char prefix[192], after[224];
    int pl = snprintf(prefix, sizeof prefix, "metrics/%s/", t->arg);
    int al = lamport ? 0 : snprintf(after, sizeof after, "%s%013" PRIu64, prefix, since);
    /* The points are JSON already: splice them into one array. */
    struct evbuffer *out = evbuffer_new();
    evbuffer_add(out, "[", 1);
    bool first = true, more = true;
    while (more) {
        struct ddkv_list l;
        ddkv_err e = ddkv_list(c, prefix, (size_t)pl, after, (size_t)al, 1000, &l);
        if (e != DDKV_OK) {
            evbuffer_free(out);
            task_fail(t, c, e, "listing metrics");
            return;
        }
        for (size_t i = 0; i < l.n; i++) {
            if (l.entries[i].lamport <= lamport && lamport)
                continue;
            if (!first)
                evbuffer_add(out, ",", 1);
            evbuffer_add(out, l.entries[i].value, l.entries[i].value_len);
            first = false;
        }
        more = l.more && l.n > 0;
        if (l.n) {
            al = snprintf(after, sizeof after, "%.*s", (int)l.entries[l.n - 1].key_len,
                          (const char *)l.entries[l.n - 1].key);
        }
        ddkv_list_free(&l);
    }
    evbuffer_add(out, "]", 2); /* with the NUL */
    size_t n = evbuffer_get_length(out);
    t->out = malloc(n);
    if (t->out)
        evbuffer_remove(out, t->out, n);
    evbuffer_free(out);
    t->status = t->out ? 200 : 500;
}

static void h_proxy(struct task *t, ddkv_client *c)
{
    char key[192];
    snprintf(key, sizeof key, "clients/%s", t->arg);
    struct ddkv_value v;
    ddkv_err e = ddkv_read(c, key, strlen(key), DDKV_CONSISTENCY_LINEARIZABLE, 0, &v);
    if (e != DDKV_OK) {
        task_fail(t, c, e, e == DDKV_ERR_NOT_FOUND ? "no such client (or its agent is gone)" : "reading the client");
        return;
    }
    ddkv_free(v.value);
    const char *kind = evhttp_find_header(&t->query, "kind");
    const char *minutes = evhttp_find_header(&t->query, "minutes");
    bool history = kind && strcmp(kind, "history") == 0;
    json_t *q = history ? json_pack("{s:s, s:i}", "kind", "history", "minutes", minutes ? atoi(minutes) : 5)
                        : json_pack("{s:s}", "kind", "now");
    char *qs = dump(q);
    uint64_t rid = 0;
    if (getrandom(&rid, sizeof rid, 0) != (ssize_t)sizeof rid)
        rid = clock_mono_ns();
    char req[192], resp[192];
    snprintf(req, sizeof req, "req/%s/%016" PRIx64, t->arg, rid);
    snprintf(resp, sizeof resp, "resp/%s/%016" PRIx64, t->arg, rid);
    struct ddkv_write_result wr;
    e = qs ? ddkv_write(c, req, strlen(req), qs, strlen(qs), 0, &wr) : DDKV_ERR_NOMEM;
    free(qs);
    if (e != DDKV_OK) {
        task_fail(t, c, e, "asking the agent");
        return;
    }
    uint64_t until = clock_mono_ms() + HUB_PROXY_WAIT_MS;
    while (clock_mono_ms() < until) {
        e = ddkv_read(c, resp, strlen(resp), DDKV_CONSISTENCY_LINEARIZABLE, 0, &v);
        if (e == DDKV_OK) {
            t->out = malloc(v.len + 1);
            if (t->out)
                memcpy(t->out, v.value, v.len + 1);
            ddkv_free(v.value);
            t->status = t->out ? 200 : 500;
            return;
        }
        clock_sleep_ms(30);
    }
    ddkv_delete(c, req, strlen(req), &wr);
    task_error(t, 504, "the agent of %s did not answer within %d ms", t->arg, HUB_PROXY_WAIT_MS);
}

/* Each endpoint's own status; a member that does not answer is named from
 * the member list of one that does (matching its client address). */
static json_t *cluster_json(const struct hub_config *cfg, const char *endpoints, uint32_t timeout_ms)
{
    json_t *arr = json_array();
    char eps[1024];
    snprintf(eps, sizeof eps, "%s", endpoints);
    struct ddkv_status known = {0}; /* the first answer's member list */
    bool have_known = false;
    for (char *save = NULL, *ep = strtok_r(eps, ",", &save); ep; ep = strtok_r(NULL, ",", &save)) {
        ddkv_client *c = hub_client(cfg, ep, timeout_ms < 1000 ? timeout_ms : 1000);
        struct ddkv_status st;
        if (c && ddkv_status(c, &st) == DDKV_OK) {
            json_array_append_new(arr, json_pack("{s:s, s:s, s:s?, s:s?, s:I, s:I, s:I, s:I, s:I, s:b}", "endpoint", ep,
                                                 "name", st.name ? st.name : "?", "role", st.role, "leader", st.leader,
                                                 "term", (json_int_t)st.term, "commit", (json_int_t)st.commit,
                                                 "applied", (json_int_t)st.applied, "revision",
                                                 (json_int_t)st.revision, "keys", (json_int_t)st.keys, "healthy",
                                                 st.leader != NULL));
            if (!have_known) {
                known = st;
                have_known = true;
            } else {
                ddkv_status_free(&st);
            }
        } else {
            json_array_append_new(arr, json_pack("{s:s, s:b, s:s}", "endpoint", ep, "healthy", 0, "error",
                                                 c ? ddkv_client_errmsg(c) : "bad endpoint"));
        }
        ddkv_client_free(c);
    }
    size_t i;
    json_t *o;
    json_array_foreach(arr, i, o) {
        if (json_object_get(o, "name"))
            continue;
        const char *ep = json_string_value(json_object_get(o, "endpoint"));
        for (size_t m = 0; have_known && m < known.n_members; m++) {
            const struct ddkv_member *mb = &known.members[m];
            if (mb->name && mb->client_addr && ep && !strcmp(mb->client_addr, ep))
                json_object_set_new(o, "name", json_string(mb->name));
        }
    }
    if (have_known)
        ddkv_status_free(&known);
    return arr;
}

static void h_cluster(struct task *t, ddkv_client *c)
{
    (void)c;
    t->status = 200;
    t->out = dump(cluster_json(t->h->cfg, t->h->cfg->endpoints, t->h->cfg->timeout_ms));
}

static void h_jobs(struct task *t, ddkv_client *c)
{
    list_json(t, c, "jobs/", 100000, NULL, "listing jobs");
}

static void h_job(struct task *t, ddkv_client *c)
{
    char key[192];
    snprintf(key, sizeof key, "jobs/%s", t->arg);
    struct ddkv_value v;
    ddkv_err e = ddkv_read(c, key, strlen(key), DDKV_CONSISTENCY_LINEARIZABLE, 0, &v);
    if (e != DDKV_OK) {
        task_fail(t, c, e, e == DDKV_ERR_NOT_FOUND ? "no such job" : "reading the job");
        return;
    }
    json_t *job = value_json(v.value, v.len);
    ddkv_free(v.value);
    /* The result of job ID lives at jobresult/ID (src/node/mod_jobs.c); a
     * record naming any other key (written by hand) is not followed. */
    char rkey[208];
    snprintf(rkey, sizeof rkey, "jobresult/%s", t->arg);
    const char *result = json_string_value(json_object_get(job, "result"));
    if (result && strcmp(result, rkey) == 0 &&
        ddkv_read(c, rkey, strlen(rkey), DDKV_CONSISTENCY_LINEARIZABLE, 0, &v) == DDKV_OK) {
        json_object_set_new(job, "result_value", value_json(v.value, v.len));
        ddkv_free(v.value);
    }
    t->status = 200;
    t->out = dump(job);
}

static long read_evbuffer(void *ctx, uint8_t *buf, size_t cap)
{
    return (long)evbuffer_remove(ctx, buf, cap);
}

static void h_job_post(struct task *t, ddkv_client *c)
{
    const char *name = evhttp_find_header(&t->query, "name");
    if (!t->body || evbuffer_get_length(t->body) == 0) {
        task_error(t, 400, "POST /api/jobs wants the file as the request body");
        return;
    }
    struct job_submitted js;
    char err[256];
    ddkv_err e = job_submit(c, name ? name : "upload", "stats", 3, read_evbuffer, t->body, &js, err, sizeof err);
    if (e != DDKV_OK) {
        task_error(t, e == DDKV_ERR_TOO_LARGE ? 413 : 503, "%s", err);
        return;
    }
    t->status = 201;
    t->out = dump(json_pack("{s:s, s:s, s:I}", "id", js.id, "data", js.prefix, "size", (json_int_t)js.size));
}

static void h_health(struct task *t, ddkv_client *c)
{
    struct ddkv_pong p;
    ddkv_err e = ddkv_ping(c, &p);
    if (e != DDKV_OK || !p.leader) {
        if (e == DDKV_OK)
            ddkv_pong_free(&p);
        task_error(t, 503, "the cluster does not answer with a leader");
        return;
    }
    t->status = 200;
    t->out = dump(json_pack("{s:b, s:s}", "ok", 1, "leader", p.leader));
    ddkv_pong_free(&p);
}

/* --- the worker pool --- */

static void reply_cb(evutil_socket_t fd, short what, void *arg);

static void *worker_main(void *arg)
{
    struct hub *h = arg;
    ddkv_client *c = hub_client(h->cfg, h->cfg->endpoints, h->cfg->timeout_ms);
    for (;;) {
        pthread_mutex_lock(&h->mu);
        while (!h->qh && !h->stopping)
            pthread_cond_wait(&h->cv, &h->mu);
        struct task *t = h->qh;
        if (!t) {
            pthread_mutex_unlock(&h->mu);
            break;
        }
        h->qh = t->next;
        if (!h->qh)
            h->qt = NULL;
        pthread_mutex_unlock(&h->mu);
        if (!c) {
            task_error(t, 500, "no client");
        } else {
            switch (t->route) {
            case R_CLIENTS: h_clients(t, c); break;
            case R_METRICS: h_metrics(t, c); break;
            case R_PROXY: h_proxy(t, c); break;
            case R_CLUSTER: h_cluster(t, c); break;
            case R_JOBS: h_jobs(t, c); break;
            case R_JOB: h_job(t, c); break;
            case R_JOB_POST: h_job_post(t, c); break;
            case R_HEALTH: h_health(t, c); break;
            }
        }
        if (!t->out)
            task_error(t, 500, "out of memory");
        struct timeval now = {0, 0};
        event_base_once(h->base, -1, EV_TIMEOUT, reply_cb, t, &now);
    }
    ddkv_client_free(c);
    return NULL;
}

static void task_free(struct task *t)
{
    evhttp_clear_headers(&t->query);
    if (t->body)
        evbuffer_free(t->body);
    free(t->out);
    free(t);
}

/* Back on the loop: answer, unless the browser went away meanwhile. */
static void reply_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct task *t = arg;
    struct hub *h = t->h;
    if (t->iprev)
        t->iprev->inext = t->inext;
    else
        h->inflight = t->inext;
    if (t->inext)
        t->inext->iprev = t->iprev;
    if (!t->cancelled) {
        struct evkeyvalq *hd = evhttp_request_get_output_headers(t->req);
        evhttp_add_header(hd, "Content-Type", "application/json");
        evhttp_add_header(hd, "Cache-Control", "no-store");
        struct evbuffer *b = evbuffer_new();
        if (b) {
            evbuffer_add(b, t->out, strlen(t->out));
            evhttp_send_reply(t->req, t->status, t->status < 300 ? "OK" : "Error", b);
            evbuffer_free(b);
        } else {
            evhttp_send_error(t->req, 500, NULL);
        }
    }
    task_free(t);
}

static void conn_closed(struct evhttp_connection *evcon, void *arg)
{
    struct hub *h = arg;
    for (struct task *t = h->inflight; t; t = t->inext)
        if (t->evcon == evcon)
            t->cancelled = true;
    for (struct sse **pp = &h->sse; *pp;) {
        if ((*pp)->evcon == evcon) {
            struct sse *s = *pp;
            *pp = s->next;
            free(s);
        } else {
            pp = &(*pp)->next;
        }
    }
}

static void submit(struct hub *h, struct evhttp_request *req, enum route route, const char *arg, const char *query)
{
    struct task *t = calloc(1, sizeof *t);
    if (!t) {
        evhttp_send_error(req, 500, NULL);
        return;
    }
    t->h = h;
    t->req = req;
    t->route = route;
    t->evcon = evhttp_request_get_connection(req);
    snprintf(t->arg, sizeof t->arg, "%s", arg ? arg : "");
    TAILQ_INIT(&t->query);
    if (query)
        evhttp_parse_query_str(query, &t->query);
    if (route == R_JOB_POST) {
        t->body = evbuffer_new();
        if (t->body)
            evbuffer_add_buffer(t->body, evhttp_request_get_input_buffer(req));
    }
    evhttp_connection_set_closecb(t->evcon, conn_closed, h);
    t->inext = h->inflight;
    if (h->inflight)
        h->inflight->iprev = t;
    h->inflight = t;
    pthread_mutex_lock(&h->mu);
    if (h->qt)
        h->qt->next = t;
    else
        h->qh = t;
    h->qt = t;
    pthread_cond_signal(&h->cv);
    pthread_mutex_unlock(&h->mu);
}

/* --- static files --- */

static void send_json_error(struct evhttp_request *req, int status, const char *msg)
{
    char *s = dump(json_pack("{s:s}", "error", msg));
    struct evhttp_request *r = req;
    evhttp_add_header(evhttp_request_get_output_headers(r), "Content-Type", "application/json");
    struct evbuffer *b = evbuffer_new();
    if (b && s)
        evbuffer_add(b, s, strlen(s));
    evhttp_send_reply(r, status, "Error", b);
    if (b)
        evbuffer_free(b);
    free(s);
}

static const char *content_type(const char *path)
{
    const char *dot = strrchr(path, '.');
    if (!dot)
        return "application/octet-stream";
    if (!strcmp(dot, ".html"))
        return "text/html; charset=utf-8";
    if (!strcmp(dot, ".js"))
        return "text/javascript; charset=utf-8";
    if (!strcmp(dot, ".css"))
        return "text/css; charset=utf-8";
    if (!strcmp(dot, ".svg"))
        return "image/svg+xml";
    if (!strcmp(dot, ".png"))
        return "image/png";
    return "application/octet-stream";
}

static void send_file(struct evhttp_request *req, const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        send_json_error(req, 404, "no such file");
        return;
    }
    struct evbuffer *b = evbuffer_new();
    char buf[65536];
    size_t n;
    while (b && (n = fread(buf, 1, sizeof buf, f)) > 0)
        evbuffer_add(b, buf, n);
    fclose(f);
    evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Type", content_type(path));
    evhttp_add_header(evhttp_request_get_output_headers(req), "Cache-Control", "no-cache");
    evhttp_send_reply(req, 200, "OK", b);
    if (b)
        evbuffer_free(b);
}

/* --- server-sent events --- */

static void sse_open(struct hub *h, struct evhttp_request *req)
{
    struct sse *s = calloc(1, sizeof *s);
    if (!s) {
        evhttp_send_error(req, 500, NULL);
        return;
    }
    s->req = req;
    s->evcon = evhttp_request_get_connection(req);
    evhttp_connection_set_closecb(s->evcon, conn_closed, h);
    struct evkeyvalq *hd = evhttp_request_get_output_headers(req);
    evhttp_add_header(hd, "Content-Type", "text/event-stream");
    evhttp_add_header(hd, "Cache-Control", "no-store");
    evhttp_send_reply_start(req, 200, "OK");
    struct evbuffer *b = evbuffer_new();
    if (b) {
        evbuffer_add_printf(b, "retry: 1000\n: connected\n\n");
        evhttp_send_reply_chunk(req, b);
        evbuffer_free(b);
    }
    s->next = h->sse;
    h->sse = s;
}

static void sse_broadcast(struct hub *h, const void *p, size_t n)
{
    for (struct sse **pp = &h->sse; *pp;) {
        struct sse *s = *pp;
        struct bufferevent *bev = evhttp_connection_get_bufferevent(s->evcon);
        if (bev && evbuffer_get_length(bufferevent_get_output(bev)) > HUB_SSE_MAX_QUEUED) {
            /* Too far behind: drop it; the browser reconnects and reloads. */
            *pp = s->next;
            struct evhttp_connection *evcon = s->evcon;
            free(s);
            evhttp_connection_free(evcon);
            continue;
        }
        struct evbuffer *b = evbuffer_new();
        if (b) {
            evbuffer_add(b, p, n);
            evhttp_send_reply_chunk(s->req, b);
            evbuffer_free(b);
        }
        pp = &s->next;
    }
}

static void feed_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct hub *h = arg;
    pthread_mutex_lock(&h->fmu);
    size_t n = evbuffer_get_length(h->feed);
    char *p = n ? malloc(n) : NULL;
    if (p)
        evbuffer_remove(h->feed, p, n);
    pthread_mutex_unlock(&h->fmu);
    if (p)
        sse_broadcast(h, p, n);
    free(p);
}

static void ping_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    sse_broadcast(arg, ": ping\n\n", 8);
}

static void feed_push(struct hub *h, const char *event, json_t *data)
{
    char *s = dump(data);
    if (!s)
        return;
    pthread_mutex_lock(&h->fmu);
    evbuffer_add_printf(h->feed, "event: %s\ndata: %s\n\n", event, s);
    pthread_mutex_unlock(&h->fmu);
    free(s);
    event_active(h->feed_ev, EV_READ, 0);
}

struct watch_arg {
    struct hub *h;
    const char *prefix, *event;
};

static void *watch_main(void *arg)
{
    struct watch_arg *wa = arg;
    struct hub *h = wa->h;
    struct ddkv_options o;
    hub_options(h->cfg, h->cfg->endpoints, h->cfg->timeout_ms, &o);
    size_t plen = strlen(wa->prefix);
    while (!h->stopping) {
        ddkv_watch *w = NULL;
        char err[256];
        if (ddkv_watch_open(&o, wa->prefix, plen, 0, &w, err, sizeof err) != DDKV_OK) {
            clock_sleep_ms(500);
            continue;
        }
        while (!h->stopping) {
            struct ddkv_event ev;
            ddkv_err e = ddkv_watch_next(w, &ev, 300);
            if (e == DDKV_OK) {
                /* metrics/<id>/<ts>, clients/<id>, jobs/<id> */
                const char *k = (const char *)ev.key + plen;
                size_t kl = ev.key_len - plen;
                const char *slash = memchr(k, '/', kl);
                json_t *d = json_pack("{s:s%, s:s, s:I}", "id", k, slash ? (size_t)(slash - k) : kl, "kind",
                                      ev.kind == DDKV_OP_PUT ? "put" : "delete", "revision",
                                      (json_int_t)ev.mod_rev);
                if (d && ev.kind == DDKV_OP_PUT)
                    json_object_set_new(d, "value", value_json(ev.value, ev.value_len));
                feed_push(h, wa->event, d);
                ddkv_event_free(&ev);
            } else if (e != DDKV_ERR_TIMEOUT && e != DDKV_ERR_UNAVAILABLE && e != DDKV_ERR_PROTOCOL) {
                feed_push(h, "reset", json_pack("{s:s}", "prefix", wa->prefix)); /* reload what this covers */
                break;
            }
        }
        ddkv_watch_close(w);
    }
    return NULL;
}

static void *poller_main(void *arg)
{
    struct hub *h = arg;
    while (!h->stopping) {
        feed_push(h, "cluster", cluster_json(h->cfg, h->cfg->endpoints, h->cfg->timeout_ms));
        for (int i = 0; i < 20 && !h->stopping; i++)
            clock_sleep_ms(100);
    }
    return NULL;
}

/* --- routing --- */

static void route_cb(struct evhttp_request *req, void *arg)
{
    struct hub *h = arg;
    const struct evhttp_uri *uri = evhttp_request_get_evhttp_uri(req);
    const char *path = uri ? evhttp_uri_get_path(uri) : NULL;
    const char *query = uri ? evhttp_uri_get_query(uri) : NULL;
    enum evhttp_cmd_type cmd = evhttp_request_get_command(req);
    if (!path) {
        send_json_error(req, 400, "bad request");
        return;
    }
    /* Answers go out in pieces (a metrics answer is about 1 MB): without
     * TCP_NODELAY a piece can wait for the browser's delayed ACK, 40 ms. */
    struct evhttp_connection *hc = evhttp_request_get_connection(req);
    struct bufferevent *hbev = hc ? evhttp_connection_get_bufferevent(hc) : NULL;
    evutil_socket_t hfd = hbev ? bufferevent_getfd(hbev) : -1;
    if (hfd >= 0) {
        int one = 1;
        (void)setsockopt(hfd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    }
    char id[128];
    bool get = cmd == EVHTTP_REQ_GET || cmd == EVHTTP_REQ_HEAD;
    if (get && (!strcmp(path, "/") || !strcmp(path, "/index.html"))) {
        char p[512];
        snprintf(p, sizeof p, "%s/index.html", h->cfg->web_dir);
        send_file(req, p);
    } else if (get && !strcmp(path, "/assets/vendor/chart.js")) {
        send_file(req, h->cfg->chart_js);
    } else if (get && !strncmp(path, "/assets/", 8)) {
        const char *name = path + 8;
        if (!*name || strstr(name, "..") || strchr(name, '/')) {
            send_json_error(req, 404, "no such asset");
            return;
        }
        char p[512];
        snprintf(p, sizeof p, "%s/%s", h->cfg->web_dir, name);
        send_file(req, p);
    } else if (get && !strcmp(path, "/api/events")) {
        sse_open(h, req);
    } else if (get && !strcmp(path, "/api/clients")) {
        submit(h, req, R_CLIENTS, NULL, query);
    } else if (get && sscanf(path, "/api/clients/%127[^/]/metrics", id) == 1 &&
               !strcmp(path + strlen("/api/clients/") + strlen(id), "/metrics")) {
        submit(h, req, R_METRICS, id, query);
    } else if (get && sscanf(path, "/api/proxy/%127[^/]", id) == 1 &&
               strlen(path) == strlen("/api/proxy/") + strlen(id)) {
        submit(h, req, R_PROXY, id, query);
    } else if (get && !strcmp(path, "/api/cluster")) {
        submit(h, req, R_CLUSTER, NULL, query);
    } else if (!strcmp(path, "/api/jobs") && (get || cmd == EVHTTP_REQ_POST)) {
        submit(h, req, get ? R_JOBS : R_JOB_POST, NULL, query);
    } else if (get && sscanf(path, "/api/jobs/%127[^/]", id) == 1 &&
               strlen(path) == strlen("/api/jobs/") + strlen(id)) {
        submit(h, req, R_JOB, id, query);
    } else if (get && !strcmp(path, "/health")) {
        submit(h, req, R_HEALTH, NULL, query);
    } else {
        send_json_error(req, 404, "no such endpoint");
    }
}

static void on_signal(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct hub *h = arg;
    event_base_loopbreak(h->base);
}

void hub_config_defaults(struct hub_config *cfg)
{
    memset(cfg, 0, sizeof *cfg);
    cfg->http_addr = "127.0.0.1:8080";
    cfg->web_dir = "web";
    cfg->chart_js = "/usr/share/javascript/chart.js/chart.min.js";
    cfg->timeout_ms = 3000;
    cfg->workers = 4;
    ddkv_options_init(&cfg->cluster);
}

int hub_run(const struct hub_config *cfg)
{
    static struct hub hub;
    struct hub *h = &hub;
    memset(h, 0, sizeof *h);
    h->cfg = cfg;
    evthread_use_pthreads();
    char host[256];
    const char *colon = strrchr(cfg->http_addr, ':');
    if (!colon || (size_t)(colon - cfg->http_addr) >= sizeof host) {
        fprintf(stderr, "ddkv hub: --http-addr wants HOST:PORT\n");
        return 2;
    }
    memcpy(host, cfg->http_addr, (size_t)(colon - cfg->http_addr));
    host[colon - cfg->http_addr] = 0;
    int port = atoi(colon + 1);
    h->base = event_base_new();
    h->http = h->base ? evhttp_new(h->base) : NULL;
    h->feed = evbuffer_new();
    if (!h->http || !h->feed) {
        fprintf(stderr, "ddkv hub: out of memory\n");
        return 1;
    }
    evhttp_set_allowed_methods(h->http, EVHTTP_REQ_GET | EVHTTP_REQ_HEAD | EVHTTP_REQ_POST);
    evhttp_set_max_body_size(h->http, HUB_MAX_BODY);
    evhttp_set_gencb(h->http, route_cb, h);
    struct evhttp_bound_socket *bs = evhttp_bind_socket_with_handle(h->http, host, (ev_uint16_t)port);
    if (!bs) {
        fprintf(stderr, "ddkv hub: cannot listen on %s: %s\n", cfg->http_addr, strerror(errno));
        return 2;
    }
    pthread_mutex_init(&h->mu, NULL);
    pthread_cond_init(&h->cv, NULL);
    pthread_mutex_init(&h->fmu, NULL);
    h->feed_ev = event_new(h->base, -1, 0, feed_cb, h);
    h->ping_ev = event_new(h->base, -1, EV_PERSIST, ping_cb, h);
    struct timeval fifteen = {15, 0};
    event_add(h->ping_ev, &fifteen);
    h->sig_int = evsignal_new(h->base, SIGINT, on_signal, h);
    h->sig_term = evsignal_new(h->base, SIGTERM, on_signal, h);
    event_add(h->sig_int, NULL);
    event_add(h->sig_term, NULL);
    signal(SIGPIPE, SIG_IGN);
    h->nworkers = cfg->workers ? cfg->workers : 4;
    h->workers = calloc(h->nworkers, sizeof *h->workers);
    for (uint32_t i = 0; i < h->nworkers; i++)
        pthread_create(&h->workers[i], NULL, worker_main, h);
    static struct watch_arg wa[3];
    const char *prefixes[3] = {"clients/", "metrics/", "jobs/"}, *events[3] = {"client", "metric", "job"};
    for (int i = 0; i < 3; i++) {
        wa[i] = (struct watch_arg){h, prefixes[i], events[i]};
        pthread_create(&h->watchers[i], NULL, watch_main, &wa[i]);
    }
    pthread_create(&h->poller, NULL, poller_main, h);
    /* The address the kernel gave, for port 0. */
    evutil_socket_t fd = evhttp_bound_socket_get_fd(bs);
    struct sockaddr_storage ss;
    socklen_t sl = sizeof ss;
    int bound = port;
    if (getsockname(fd, (struct sockaddr *)&ss, &sl) == 0 && ss.ss_family == AF_INET)
        bound = ntohs(((struct sockaddr_in *)&ss)->sin_port);
    fprintf(stderr, "ddkv hub: dashboard at http://%s:%d/ (cluster %s)\n", host, bound, cfg->endpoints);
    event_base_dispatch(h->base);
    h->stopping = 1;
    pthread_mutex_lock(&h->mu);
    pthread_cond_broadcast(&h->cv);
    pthread_mutex_unlock(&h->mu);
    for (uint32_t i = 0; i < h->nworkers; i++)
        pthread_join(h->workers[i], NULL);
    for (int i = 0; i < 3; i++)
        pthread_join(h->watchers[i], NULL);
    pthread_join(h->poller, NULL);
    /* Replies the workers posted after the loop stopped. */
    event_base_loop(h->base, EVLOOP_NONBLOCK);
    while (h->sse) {
        struct sse *s = h->sse;
        h->sse = s->next;
        free(s);
    }
    evhttp_free(h->http);
    event_free(h->feed_ev);
    event_free(h->ping_ev);
    event_free(h->sig_int);
    event_free(h->sig_term);
    evbuffer_free(h->feed);
    event_base_free(h->base);
    free(h->workers);
    fprintf(stderr, "ddkv hub: stopped\n");
    return 0;
}
