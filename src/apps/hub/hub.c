/* ddkv hub (see hub.h): its HTTP/1.1 server, the worker lanes that call the
 * cluster (the handlers they run are hub_api.c's), and the event streams. */
#include "hub/hub.h"

#include <errno.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <event2/listener.h>
#include <event2/thread.h>
#include <inttypes.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <arpa/inet.h>
#include <stdarg.h>
#include <jansson.h>
#include <openssl/crypto.h>
#include <openssl/ssl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/queue.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "ddkv/ddkv.h"
#include "hub/hub_int.h"
#include "hub/hub_jobs.h"
#include "hub/hub_series.h"
#include "hub/hub_session.h"
#include "util/clock.h"
#include "util/err.h"
#include "util/tls.h"

#define HUB_JOB_NAME_MAX 127             /* bytes: the node's JOB_PUT bound */
#define HUB_UPLOAD_WINDOW_S 10           /* the upload rate is judged over the last this many seconds */
#define HUB_OUT_PAUSE (256u << 10)       /* a connection's unsent replies: stop reading its requests */
#define HUB_LINGER_MS 1000               /* after an error reply: drain what the client still sends */
#define HUB_LINGER_BYTES (256u << 10)
#define HUB_LIGHT_WORKERS 2              /* threads for the cheap, small answers (/health, /api/clients, a job) */
#define HUB_FD_RESERVE 64                /* descriptors kept for the hub's own cluster clients */
#define HUB_HOST_MAX 256                 /* the host part of --http-addr */
#define HUB_SMALL_BODY_MAX 8192 /* a JSON body (login, user management) */
#define HUB_SSE_ALL 0xfu        /* event kinds: 1 client, 2 metric, 4 job, 8 cluster */

enum cstate {
    C_HEAD,    /* waiting for (the rest of) a request head */
    C_BODY,    /* reading an upload's body */
    C_BUSY,    /* a worker has the request; not reading */
    C_SSE,     /* an event stream */
    C_CLOSING, /* the last reply goes out, then a short drain, then close */
};

struct conn {
    struct hub *h;
    struct bufferevent *bev;
    struct event *timer;   /* idle, head, body-rate or linger deadline */
    enum cstate st;
    char peer[64];
    uint8_t addr[16];      /* the client's IP address (v4 in the first 4) */
    bool started;          /* a request head has begun */
    bool keep;             /* keep-alive after this reply */
    bool head_only;        /* HEAD: no body in the reply */
    bool paused;           /* reading stopped until the replies are sent */
    bool shut;             /* C_CLOSING: our side is shut down */
    uint64_t t_start_ms;   /* the head's first byte, or the body's start */
    uint64_t body_left, lingered;
    uint64_t sec_bytes[HUB_UPLOAD_WINDOW_S]; /* body bytes per second, a ring */
    uint32_t secs;                           /* seconds of body so far */
    struct task *task;     /* the request in progress */
    char sse_series[128];  /* C_SSE of /api/events?series=ID: only ID's series events ("": the main feed) */
    unsigned sse_mask;     /* C_SSE: the event kinds this stream gets */
    /* The request head's Cookie, X-CSRF-Token, Host, Origin (reset per request). */
    char *cookie;
    char *basic;           /* Authorization: Basic's base64 (malloc); taken on the push routes only */
    char csrf[80], host[256], origin[256];
    bool has_host, has_origin;
    bool mutating;         /* this request's method changes state */
    struct conn *prev, *next;
};

/* An encoded event, shared by reference by every stream's output buffer. */
struct blob {
    size_t refs, n;
    char data[];
};

/* --- the lanes (worker threads) --- */

static void reply_cb(evutil_socket_t fd, short what, void *arg);
static void sse_open(struct conn *c, const char *query);

static void *worker_main(void *arg)
{
    struct lane *l = arg;
    struct hub *h = l->h;
    ddkv_client *c = hub_client(h->cfg, h->cfg->endpoints, h->cfg->timeout_ms);
    for (;;) {
        pthread_mutex_lock(&l->mu);
        while (!l->qh && !h->stopping)
            pthread_cond_wait(&l->cv, &l->mu);
        struct task *t = l->qh;
        if (!t) {
            pthread_mutex_unlock(&l->mu);
            break;
        }
        l->qh = t->next;
        if (!l->qh)
            l->qt = NULL;
        l->queued--;
        pthread_mutex_unlock(&l->mu);
        if (!c)
            hub_task_error(t, 500, "no client");
        else
            hub_task_run(t, c);
        if (!t->out && !t->outbuf)
            hub_task_error(t, 500, "out of memory");
        struct timeval now = {0, 0};
        event_base_once(h->base, -1, EV_TIMEOUT, reply_cb, t, &now);
    }
    ddkv_client_free(c);
    return NULL;
}

static int lane_start(struct hub *h, struct lane *l, uint32_t threads, uint32_t cap)
{
    l->h = h;
    l->cap = cap;
    l->n = threads;
    pthread_mutex_init(&l->mu, NULL);
    pthread_cond_init(&l->cv, NULL);
    l->threads = calloc(threads, sizeof *l->threads);
    if (!l->threads)
        return -1;
    for (uint32_t i = 0; i < threads; i++)
        pthread_create(&l->threads[i], NULL, worker_main, l);
    return 0;
}

static void lane_stop(struct lane *l)
{
    pthread_mutex_lock(&l->mu);
    pthread_cond_broadcast(&l->cv);
    pthread_mutex_unlock(&l->mu);
    for (uint32_t i = 0; l->threads && i < l->n; i++)
        pthread_join(l->threads[i], NULL);
    free(l->threads);
    pthread_mutex_destroy(&l->mu);
    pthread_cond_destroy(&l->cv);
}

/* Queue t unless the lane is full (then false: the caller answers 503). */
static bool lane_push(struct lane *l, struct task *t)
{
    pthread_mutex_lock(&l->mu);
    if (l->cap && l->queued >= l->cap) {
        pthread_mutex_unlock(&l->mu);
        return false;
    }
    t->queued = true;
    t->next = NULL;
    if (l->qt)
        l->qt->next = t;
    else
        l->qh = t;
    l->qt = t;
    l->queued++;
    pthread_cond_signal(&l->cv);
    pthread_mutex_unlock(&l->mu);
    return true;
}

static void task_free(struct task *t)
{
    if (t->upload)
        t->h->uploads_active--;
    if (t->series_post)
        t->h->series_posts--;
    evhttp_clear_headers(&t->query);
    if (t->body && !t->upload)
        OPENSSL_cleanse(t->body, t->body_cap); /* a login's or a new user's password */
    free(t->body);
    free(t->out);
    free(t->cookie);
    if (t->basic) {
        OPENSSL_cleanse(t->basic, strlen(t->basic));
        free(t->basic);
    }
    free(t->set_cookie);
    if (t->outbuf)
        evbuffer_free(t->outbuf);
    free(t);
}

/* --- connections --- */

static void conn_parse(struct conn *c);

static void conn_free(struct conn *c)
{
    struct hub *h = c->h;
    if (c->prev)
        c->prev->next = c->next;
    else
        h->conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    if (c->task) {
        if (c->task->queued)
            c->task->conn = NULL; /* reply_cb frees it */
        else
            task_free(c->task);
    }
    if (c->st == C_SSE && c->sse_series[0])
        __atomic_sub_fetch(&h->series_streams, 1, __ATOMIC_RELAXED);
    event_free(c->timer);
    bufferevent_free(c->bev);
    free(c->cookie);
    if (c->basic) {
        OPENSSL_cleanse(c->basic, strlen(c->basic));
        free(c->basic);
    }
    h->nconns--;
    free(c);
}

static void conn_arm(struct conn *c, uint32_t ms)
{
    struct timeval tv = {ms / 1000, (ms % 1000) * 1000};
    event_add(c->timer, &tv);
}

/* The head of a reply; the body follows unless the request was HEAD. */
static void conn_head(struct conn *c, int status, const char *ctype, const char *cache, size_t len, const char *extra)
{
    const char *reason = status == 200 ? "OK" : status == 201 ? "Created" : status < 400 ? "OK" : "Error";
    evbuffer_add_printf(bufferevent_get_output(c->bev),
                        "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\nCache-Control: %s\r\n"
                        "Connection: %s\r\n%s\r\n",
                        status, reason, ctype, len, cache, c->keep ? "keep-alive" : "close", extra ? extra : "");
}

static void conn_send(struct conn *c, int status, const char *ctype, const char *cache, const void *body, size_t n,
                      const char *extra)
{
    conn_head(c, status, ctype, cache, n, extra);
    if (!c->head_only && n)
        evbuffer_add(bufferevent_get_output(c->bev), body, n);
}

/* After a reply: wait for the next request, or close once it is sent. */
static void conn_done(struct conn *c)
{
    if (!c->keep) {
        c->st = C_CLOSING;
        event_del(c->timer);
        bufferevent_enable(c->bev, EV_READ);
        return;
    }
    c->st = C_HEAD;
    c->started = false;
    c->head_only = false;
    bufferevent_enable(c->bev, EV_READ);
    conn_arm(c, c->h->cfg->idle_timeout_ms);
}

static void conn_json(struct conn *c, int status, const char *json, const char *extra)
{
    conn_send(c, status, "application/json", "no-store", json, strlen(json), extra);
}

/* A JSON error; with close, the connection ends after it (what the client
 * sent after the head is not read: a body, or the rest of a huge head). */
static void conn_error(struct conn *c, int status, bool close, const char *extra, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));
static void conn_error(struct conn *c, int status, bool close, const char *extra, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    char *s = hub_dump(json_pack("{s:s}", "error", msg));
    if (close)
        c->keep = false;
    conn_json(c, status, s ? s : "{\"error\":\"out of memory\"}", extra);
    free(s);
    if (c->task && !c->task->queued) {
        task_free(c->task);
        c->task = NULL;
    }
    conn_done(c);
}

static void free_reply(const void *data, size_t len, void *arg)
{
    (void)len;
    (void)arg;
    free((void *)data);
}

/* Replies not yet taken by their clients, all connections but the event
 * streams (whose bytes are shared, and bounded each by --sse-max-kb), are
 * held under --max-unsent-mb: past it, the connection with the most unsent
 * is closed (logged), but never the one just answered, so one reply of
 * any size still goes out. */
static void unsent_bound(struct hub *h, struct conn *keep)
{
    for (;;) {
        size_t total = 0, most = 0;
        struct conn *worst = NULL;
        for (struct conn *c = h->conns; c; c = c->next) {
            if (c->st == C_SSE)
                continue;
            size_t n = evbuffer_get_length(bufferevent_get_output(c->bev));
            total += n;
            if (c != keep && n > most) {
                most = n;
                worst = c;
            }
        }
        if (total <= h->cfg->max_unsent_bytes || !worst)
            return;
        fprintf(stderr, "ddkv hub: connection of %s dropped: %zu bytes of replies unsent, %zu in all (--max-unsent-mb %u)\n",
                worst->peer, most, total, (unsigned)(h->cfg->max_unsent_bytes >> 20));
        conn_free(worst);
    }
}

/* Back on the loop: answer, unless the browser went away meanwhile. The
 * reply's bytes move into the connection's buffer without a copy. */
static void reply_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct task *t = arg;
    struct hub *h = t->h;
    struct conn *c = t->conn;
    if (c && t->route == R_EVENTS && t->status == 200) {
        c->task = NULL;
        c->sse_mask = t->sse_mask;
        /* A client's series stream (sse_open checks the id). */
        const char *sid = evhttp_find_header(&t->query, "series");
        char q[160] = "";
        if (sid)
            snprintf(q, sizeof q, "series=%.140s", sid);
        task_free(t);
        sse_open(c, q[0] ? q : NULL);
        return;
    }
    if (c) {
        c->task = NULL;
        struct evbuffer *out = bufferevent_get_output(c->bev);
        size_t n = t->outbuf ? evbuffer_get_length(t->outbuf) : strlen(t->out);
        char extra[512];
        snprintf(extra, sizeof extra, "%s%s", t->status == 503 ? "Retry-After: 1\r\n" : "",
                 t->set_cookie ? t->set_cookie : "");
        conn_head(c, t->status, t->ctype ? t->ctype : "application/json", "no-store", n, extra);
        if (!c->head_only && t->outbuf)
            evbuffer_add_buffer(out, t->outbuf);
        else if (!c->head_only && evbuffer_add_reference(out, t->out, n, free_reply, NULL) == 0)
            t->out = NULL;
        conn_done(c);
    }
    task_free(t);
    if (c) {
        unsent_bound(h, c);
        if (c->st == C_HEAD)
            conn_parse(c); /* a request that came in meanwhile */
    }
}

/* --- static files --- */

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

static void send_file(struct conn *c, const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        conn_error(c, 404, false, NULL, "no such file");
        return;
    }
    struct evbuffer *b = evbuffer_new();
    char buf[65536];
    size_t n;
    while (b && (n = fread(buf, 1, sizeof buf, f)) > 0)
        evbuffer_add(b, buf, n);
    fclose(f);
    if (!b) {
        conn_error(c, 500, false, NULL, "out of memory");
        return;
    }
    conn_head(c, 200, content_type(path), "no-cache", evbuffer_get_length(b), NULL);
    if (!c->head_only)
        evbuffer_add_buffer(bufferevent_get_output(c->bev), b);
    evbuffer_free(b);
    conn_done(c);
    unsent_bound(c->h, c);
}

/* --- server-sent events --- */

static void blob_unref(const void *data, size_t len, void *arg)
{
    (void)data;
    (void)len;
    struct blob *b = arg;
    if (--b->refs == 0)
        free(b);
}


/* GET /api/events: the main feed; with ?series=ID a stream of that client's
 * new series points alone (a `series` event each), so that a browser
 * charting one client is not sent every client's points. */
static void sse_open(struct conn *c, const char *query)
{
    struct evkeyvalq q;
    TAILQ_INIT(&q);
    if (query)
        (void)evhttp_parse_query_str(query, &q);
    const char *sid = evhttp_find_header(&q, "series");
    if (sid && !hub_id_ok(sid)) {
        evhttp_clear_headers(&q);
        conn_error(c, 400, false, NULL, "bad client id in series=");
        return;
    }
    snprintf(c->sse_series, sizeof c->sse_series, "%s", sid ? sid : "");
    evhttp_clear_headers(&q);
    c->keep = false; /* the stream ends with the connection */
    evbuffer_add_printf(bufferevent_get_output(c->bev),
                        "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nCache-Control: no-store\r\n"
                        "Connection: close\r\n\r\n%s",
                        c->head_only ? "" : "retry: 1000\n: connected\n\n");
    if (c->head_only) {
        conn_done(c);
        return;
    }
    c->st = C_SSE;
    if (c->sse_series[0])
        __atomic_add_fetch(&c->h->series_streams, 1, __ATOMIC_RELAXED);
    event_del(c->timer);
}

/* Each stream gets a reference to the one encoded copy. A stream whose
 * unsent bytes would pass cfg->sse_max_pending is dropped, with a log line:
 * the browser's EventSource reconnects and reloads. */
static void sse_broadcast(struct hub *h, struct blob *b, unsigned kind)
{
    for (struct conn *c = h->conns, *next; c; c = next) {
        next = c->next;
        if (c->st != C_SSE || !(c->sse_mask & kind))
            continue;
        if (c->sse_series[0] && kind != HUB_SSE_ALL)
            continue; /* a series stream has only its own events (series_dispatch), and the pings */
        struct evbuffer *out = bufferevent_get_output(c->bev);
        size_t pending = evbuffer_get_length(out);
        if (pending && pending + b->n > h->cfg->sse_max_pending) {
            fprintf(stderr, "ddkv hub: event stream of %s dropped: %zu bytes unsent, over --sse-max-kb %u\n", c->peer,
                    pending, h->cfg->sse_max_pending >> 10);
            conn_free(c);
            continue;
        }
        b->refs++;
        if (evbuffer_add_reference(out, b->data, b->n, blob_unref, b) != 0)
            b->refs--;
    }
}

static struct blob *blob_new(const void *p, size_t n)
{
    struct blob *b = malloc(sizeof *b + n);
    if (b) {
        b->refs = 1;
        b->n = n;
        memcpy(b->data, p, n);
    }
    return b;
}

/* Each series event to the streams of its client alone (a copy each: they
 * are small, and most have one reader). */
static void series_dispatch(struct hub *h, struct evbuffer *recs)
{
    uint8_t idl;
    uint32_t n;
    char id[256], *text = NULL;
    while (evbuffer_remove(recs, &idl, 1) == 1 && evbuffer_remove(recs, id, idl) == idl &&
           evbuffer_remove(recs, &n, 4) == 4) {
        id[idl] = 0;
        char *t = realloc(text, n);
        if (!t || evbuffer_remove(recs, t, n) != (int)n) {
            free(t ? t : text);
            return;
        }
        text = t;
        for (struct conn *c = h->conns, *next; c; c = next) {
            next = c->next;
            if (c->st != C_SSE || strcmp(c->sse_series, id))
                continue;
            struct evbuffer *out = bufferevent_get_output(c->bev);
            size_t pending = evbuffer_get_length(out);
            if (pending && pending + n > h->cfg->sse_max_pending) {
                fprintf(stderr, "ddkv hub: series stream of %s dropped: %zu bytes unsent, over --sse-max-kb %u\n",
                        c->peer, pending, h->cfg->sse_max_pending >> 10);
                conn_free(c);
                continue;
            }
            evbuffer_add(out, text, n);
        }
    }
    free(text);
}

static void feed_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct hub *h = arg;
    struct evbuffer *recs = evbuffer_new();
    pthread_mutex_lock(&h->fmu);
    if (recs)
        evbuffer_add_buffer(recs, h->sfeed);
    pthread_mutex_unlock(&h->fmu);
    for (unsigned k = 0; k < 4; k++) {
        pthread_mutex_lock(&h->fmu);
        size_t n = evbuffer_get_length(h->feed[k]);
        struct blob *b = n ? malloc(sizeof *b + n) : NULL;
        if (b) {
            b->refs = 1;
            b->n = n;
            evbuffer_remove(h->feed[k], b->data, n);
        }
        pthread_mutex_unlock(&h->fmu);
        if (b) {
            sse_broadcast(h, b, 1u << k);
            blob_unref(NULL, 0, b);
        }
    }
    if (recs) {
        series_dispatch(h, recs);
        evbuffer_free(recs);
    }
}

/* A series event for the streams of its client (watch threads). */
static void series_feed_push(struct hub *h, json_t *data)
{
    const char *jid = json_string_value(json_object_get(data, "id"));
    char id[256];
    size_t idl = jid ? strlen(jid) : 0;
    char *s = jid && idl < sizeof id ? json_dumps(data, JSON_COMPACT | JSON_REAL_PRECISION(10)) : NULL;
    if (s)
        memcpy(id, jid, idl + 1); /* jid is data's: gone with it */
    json_decref(data);
    if (!s)
        return;
    char text[512];
    int n = snprintf(text, sizeof text, "event: series\ndata: %s\n\n", s);
    free(s);
    if (n <= 0 || (size_t)n >= sizeof text)
        return;
    uint8_t l8 = (uint8_t)idl;
    uint32_t n32 = (uint32_t)n;
    pthread_mutex_lock(&h->fmu);
    evbuffer_add(h->sfeed, &l8, 1);
    evbuffer_add(h->sfeed, id, idl);
    evbuffer_add(h->sfeed, &n32, 4);
    evbuffer_add(h->sfeed, text, (size_t)n);
    pthread_mutex_unlock(&h->fmu);
    event_active(h->feed_ev, EV_READ, 0);
}

static void ping_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct blob *b = blob_new(": ping\n\n", 8);
    if (b) {
        sse_broadcast(arg, b, HUB_SSE_ALL);
        blob_unref(NULL, 0, b);
    }
}

/* kind: 0 client, 1 metric, 2 job, 3 cluster (a stream gets the kinds its
 * person may read). */
static void feed_push(struct hub *h, unsigned kind, const char *event, json_t *data)
{
    char *s = hub_dump(data);
    if (!s)
        return;
    pthread_mutex_lock(&h->fmu);
    evbuffer_add_printf(h->feed[kind], "event: %s\ndata: %s\n\n", event, s);
    pthread_mutex_unlock(&h->fmu);
    free(s);
    event_active(h->feed_ev, EV_READ, 0);
}

struct watch_arg {
    struct hub *h;
    const char *prefix, *event;
    unsigned kind;
};

static void *watch_main(void *arg)
{
    struct watch_arg *wa = arg;
    struct hub *h = wa->h;
    struct ddkv_options o;
    hub_options(h->cfg, h->cfg->endpoints, h->cfg->timeout_ms, &o);
    size_t plen = strlen(wa->prefix);
    bool denied_said = false;
    uint32_t pause_ms = 0; /* before opening again: grows while the watch keeps failing */
    while (!h->stopping) {
        ddkv_watch *w = NULL;
        char err[256];
        if (pause_ms)
            clock_sleep_ms(pause_ms);
        if (ddkv_watch_open(&o, wa->prefix, plen, 0, &w, err, sizeof err) != DDKV_OK) {
            clock_sleep_ms(500);
            continue;
        }
        while (!h->stopping) {
            struct ddkv_event ev;
            ddkv_err e = ddkv_watch_next(w, &ev, 300);
            if (e == DDKV_OK) {
                /* metrics/<id>/<ts>, clients/<id>, jobs/<id>, series/<id>/<name>/r/<ts> */
                const char *k = (const char *)ev.key + plen;
                size_t kl = ev.key_len - plen;
                if (!strcmp(wa->event, "series")) {
                    /* Only new raw points: rollups and expiries are not news to a chart. */
                    if (ev.kind == DDKV_OP_PUT && __atomic_load_n(&h->series_streams, __ATOMIC_RELAXED))
                        series_feed_push(h, hub_series_event(k, kl, ev.value, ev.value_len));
                    ddkv_event_free(&ev);
                    continue;
                }
                const char *slash = memchr(k, '/', kl);
                json_t *d = json_pack("{s:s%, s:s, s:I}", "id", k, slash ? (size_t)(slash - k) : kl, "kind",
                                      ev.kind == DDKV_OP_PUT ? "put" : "delete", "revision",
                                      (json_int_t)ev.mod_rev);
                if (d && ev.kind == DDKV_OP_PUT)
                    json_object_set_new(d, "value", hub_value_json(ev.value, ev.value_len));
                feed_push(h, wa->kind, wa->event, d);
                ddkv_event_free(&ev);
                pause_ms = 0;
                denied_said = false;
            } else if (e == DDKV_ERR_PERMISSION_DENIED) {
                /* The hub's own user may not read this prefix: nothing to
                 * reload, and asking again at once would only spin. Said
                 * once, asked again every few seconds (a grant may come). */
                if (!denied_said)
                    fprintf(stderr, "ddkv hub: cannot watch %s: %s (give the hub's user read on %s)\n", wa->prefix,
                            ddkv_watch_errmsg(w), wa->prefix);
                denied_said = true;
                pause_ms = 5000;
                break;
            } else if (e != DDKV_ERR_TIMEOUT && e != DDKV_ERR_UNAVAILABLE && e != DDKV_ERR_PROTOCOL) {
                feed_push(h, wa->kind, "reset", json_pack("{s:s}", "prefix", wa->prefix)); /* reload what this covers */
                /* A watch that breaks again at once is not retried at once. */
                pause_ms = pause_ms ? (pause_ms * 2 > 5000 ? 5000 : pause_ms * 2) : 200;
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
    ddkv_client *c = hub_client(h->cfg, h->cfg->endpoints, h->cfg->timeout_ms);
    while (!h->stopping) {
        feed_push(h, 3, "cluster", hub_cluster_json(h->cfg, h->cfg->endpoints, h->cfg->timeout_ms));
        /* Whether the cluster's auth is on now (it decides whether requests
         * need a session); unknown (no answer) keeps the last word. */
        struct ddkv_auth_status st;
        if (c && ddkv_auth_status(c, &st) == DDKV_OK) {
            if (auth_on_get(h) != st.enabled)
                fprintf(stderr, "ddkv hub: the cluster's authentication is now %s\n", st.enabled ? "on" : "off");
            __atomic_store_n(&h->auth_on, st.enabled ? 1 : 0, __ATOMIC_RELAXED);
            ddkv_auth_status_free(&st);
        }
        for (int i = 0; i < 20 && !h->stopping; i++)
            clock_sleep_ms(100);
    }
    ddkv_client_free(c);
    return NULL;
}

/* --- requests --- */

/* An id from a path: one segment of printable bytes. Keys built from it
 * (clients/<id>, metrics/<id>/, jobs/<id>, jobresult/<id>) stay in their
 * space: it holds no '/' (the router splits on it). */
bool hub_id_ok(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > 127)
        return false;
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)s[i] <= 0x20 || s[i] == 0x7f || s[i] == '/')
            return false;
    return true;
}

static struct task *task_new(struct conn *c, enum route route, const char *arg, const char *query)
{
    struct task *t = calloc(1, sizeof *t);
    if (!t)
        return NULL;
    t->h = c->h;
    t->conn = c;
    t->route = route;
    snprintf(t->arg, sizeof t->arg, "%s", arg ? arg : "");
    memcpy(t->addr, c->addr, sizeof t->addr);
    memcpy(t->csrf, c->csrf, sizeof t->csrf);
    t->cookie = c->cookie ? strdup(c->cookie) : NULL;
    t->mutating = c->mutating;
    TAILQ_INIT(&t->query);
    if (query)
        (void)evhttp_parse_query_str(query, &t->query); /* what parses is used, as before */
    return t;
}

/* A request for a lane by its cost, so that a flood of one kind never holds
 * the others: light (/health, /api/clients, one job: a few small reads),
 * main (metric series, the job list, the cluster's status: big answers or
 * several calls), proxy (waits for an agent, up to HUB_PROXY_WAIT_MS). A
 * full lane answers 503 with Retry-After at once. */
static void api_submit_named(struct conn *c, enum route route, const char *arg, const char *name, const char *query)
{
    struct hub *h = c->h;
    if (arg && !hub_id_ok(arg)) {
        conn_error(c, 400, false, NULL, "bad id in the path");
        return;
    }
    struct task *t = task_new(c, route, arg, query);
    if (!t) {
        conn_error(c, 500, false, NULL, "out of memory");
        return;
    }
    if (name)
        snprintf(t->arg2, sizeof t->arg2, "%s", name);
    c->task = t;
    c->st = C_BUSY;
    bufferevent_disable(c->bev, EV_READ);
    event_del(c->timer);
    bool light = route == R_HEALTH || route == R_CLIENTS || route == R_JOB || route == R_SERIES_LIST ||
                 route == R_SESSION || route == R_EVENTS;
    struct lane *l = route == R_PROXY ? &h->proxy_lane : light ? &h->light_lane : &h->main_lane;
    if (!lane_push(l, t))
        conn_error(c, 503, false, "Retry-After: 1\r\n", "the hub is busy (%u requests wait for its %s workers); retry",
                   l->cap, route == R_PROXY ? "proxy" : light ? "light" : "cluster");
}

static void api_submit(struct conn *c, enum route route, const char *arg, const char *query)
{
    api_submit_named(c, route, arg, NULL, query);
}

static void body_feed(struct conn *c)
{
    struct evbuffer *in = bufferevent_get_input(c->bev);
    size_t n = evbuffer_get_length(in);
    if (n > c->body_left)
        n = (size_t)c->body_left;
    if (n) {
        struct task *t = c->task;
        evbuffer_remove(in, t->body + t->body_len, n);
        t->body_len += n;
        c->body_left -= n;
        c->sec_bytes[c->secs % HUB_UPLOAD_WINDOW_S] += n;
    }
    if (c->body_left)
        return;
    c->st = C_BUSY;
    bufferevent_disable(c->bev, EV_READ);
    event_del(c->timer);
    if (c->task->upload)
        lane_push(&c->h->upload_lane, c->task); /* unbounded: the upload slots bound it */
    else if (!lane_push(&c->h->main_lane, c->task))
        conn_error(c, 503, false, "Retry-After: 1\r\n", "the hub is busy; retry");
}

/* The body of c's task t comes next: a flat buffer of the announced len (at
 * least a byte). false: out of memory, answered (which frees t). */
static bool body_alloc(struct conn *c, struct task *t, uint64_t len)
{
    c->task = t;
    t->body_cap = len ? (size_t)len : 1;
    t->body = malloc(t->body_cap);
    if (!t->body) {
        conn_error(c, 500, true, NULL, "out of memory");
        return false;
    }
    return true;
}

/* Read c's body of len bytes into its task, under the body deadline and
 * rate checks (body_check); with expect, say 100 Continue first. */
static void body_read(struct conn *c, uint64_t len, bool expect)
{
    c->st = C_BODY;
    c->body_left = len;
    c->t_start_ms = clock_mono_ms();
    c->secs = 0;
    memset(c->sec_bytes, 0, sizeof c->sec_bytes);
    if (expect)
        evbuffer_add_printf(bufferevent_get_output(c->bev), "HTTP/1.1 100 Continue\r\n\r\n");
    conn_arm(c, 1000);
    body_feed(c);
}

/* A small JSON body (login, user management): read under the header
 * deadline's rules for uploads, then run on the main lane. */
static void small_body_start(struct conn *c, enum route route, const char *arg, const char *query, bool have_len,
                             uint64_t len)
{
    if (arg && !hub_id_ok(arg)) {
        conn_error(c, 400, len > 0, NULL, "bad id in the path");
        return;
    }
    if (len > HUB_SMALL_BODY_MAX) {
        conn_error(c, 413, true, NULL, "this request's body is at most %d bytes", HUB_SMALL_BODY_MAX);
        return;
    }
    (void)have_len;
    struct task *t = task_new(c, route, arg, query);
    if (!t) {
        conn_error(c, 500, true, NULL, "out of memory");
        return;
    }
    t->mutating = true;
    if (body_alloc(c, t, len))
        body_read(c, len, false);
}

/* POST /api/jobs: admitted only with a fitting name and Content-Length and a
 * free upload slot; the body is then read under a deadline and a rate floor. */
static void upload_start(struct conn *c, const char *query, bool have_len, uint64_t len, bool expect);

/* POST /api/clients/ID/series/NAME: a JSON body of at most
 * HUB_SERIES_BODY_MAX, read like an upload's (deadline, rate floor) but
 * without taking an upload slot: HUB_SERIES_POSTS at once, then 503. */
#define HUB_SERIES_POSTS 16
static void series_post_start(struct conn *c, const char *id, const char *name, bool have_len, uint64_t len,
                              bool expect)
{
    struct hub *h = c->h;
    if (!hub_id_ok(id)) {
        conn_error(c, 400, true, NULL, "bad id in the path");
        return;
    }
    if (!have_len || len == 0) {
        conn_error(c, have_len ? 400 : 411, true, NULL, "a series push wants a JSON body with a Content-Length");
        return;
    }
    if (len > HUB_SERIES_BODY_MAX) {
        conn_error(c, 413, true, NULL, "a series push is at most %u bytes (this one %" PRIu64 ")", HUB_SERIES_BODY_MAX,
                   len);
        return;
    }
    if (h->series_posts >= HUB_SERIES_POSTS) {
        conn_error(c, 503, true, "Retry-After: 1\r\n", "%d series pushes are in progress; retry", HUB_SERIES_POSTS);
        return;
    }
    struct task *t = task_new(c, name[0] ? R_SERIES_POST : R_SERIES_BATCH, id, NULL);
    if (!t || (c->basic && !(t->basic = strdup(c->basic)))) {
        if (t)
            task_free(t);
        conn_error(c, 500, true, NULL, "out of memory");
        return;
    }
    snprintf(t->arg2, sizeof t->arg2, "%s", name);
    if (!body_alloc(c, t, len))
        return;
    t->series_post = true;
    h->series_posts++;
    body_read(c, len, expect);
}

static void upload_start(struct conn *c, const char *query, bool have_len, uint64_t len, bool expect)
{
    struct hub *h = c->h;
    const struct hub_config *cfg = h->cfg;
    struct task *t = task_new(c, R_JOB_POST, NULL, query);
    if (!t) {
        conn_error(c, 500, true, NULL, "out of memory");
        return;
    }
    c->task = t;
    const char *name = evhttp_find_header(&t->query, "name");
    if (name && strlen(name) > HUB_JOB_NAME_MAX) {
        conn_error(c, 400, true, NULL, "a job name is at most %d bytes (this one has %zu)", HUB_JOB_NAME_MAX,
                   strlen(name));
        return;
    }
    const char *algo = evhttp_find_header(&t->query, "algorithm"), *prio = evhttp_find_header(&t->query, "priority");
    if ((algo && *algo && !hub_job_algorithm_ok(algo)) || !hub_job_priority_ok(prio)) {
        conn_error(c, 400, true, NULL, "unknown %s (see GET /api/algorithms; priority: high, normal or low)",
                   algo && *algo && !hub_job_algorithm_ok(algo) ? "algorithm" : "priority");
        return;
    }
    if (!have_len) {
        conn_error(c, 411, true, NULL, "POST /api/jobs wants the file as the body, with a Content-Length");
        return;
    }
    if (len == 0) {
        conn_error(c, 400, false, NULL, "POST /api/jobs wants the file as the request body");
        return;
    }
    if (len > cfg->max_upload_bytes) {
        conn_error(c, 413, true, NULL, "the file has %" PRIu64 " bytes, over the hub's %" PRIu64 " (--max-upload-mb)",
                   len, cfg->max_upload_bytes);
        return;
    }
    if (h->uploads_active >= cfg->uploads) {
        conn_error(c, 503, true, "Retry-After: 5\r\n", "%u uploads are in progress (--uploads); retry", cfg->uploads);
        return;
    }
    /* One flat buffer of the announced size: untouched pages cost nothing,
     * and received bytes are held once (an evbuffer's chains would take up
     * to twice their payload). */
    if (!body_alloc(c, t, len))
        return;
    t->upload = true;
    h->uploads_active++;
    body_read(c, len, expect);
}

/* Once a second while a body comes in: the whole upload's deadline, and the
 * rate over the last HUB_UPLOAD_WINDOW_S seconds (a sliding window, so a
 * burst followed by a stall is cut that long after the stall began). */
static void body_check(struct conn *c)
{
    const struct hub_config *cfg = c->h->cfg;
    if (!c->task->upload && clock_mono_ms() - c->t_start_ms >= cfg->header_timeout_ms) {
        conn_error(c, 408, true, NULL, "the request body did not arrive within %u ms (--header-timeout-ms)",
                   cfg->header_timeout_ms);
        return;
    }
    if (clock_mono_ms() - c->t_start_ms >= cfg->upload_timeout_ms) {
        conn_error(c, 408, true, NULL, "the upload took over %u s (--upload-timeout-s)", cfg->upload_timeout_ms / 1000);
        return;
    }
    c->secs++;
    if (c->secs >= HUB_UPLOAD_WINDOW_S) {
        uint64_t sum = 0;
        for (int i = 0; i < HUB_UPLOAD_WINDOW_S; i++)
            sum += c->sec_bytes[i];
        if (sum < (uint64_t)cfg->upload_min_rate * HUB_UPLOAD_WINDOW_S) {
            fprintf(stderr, "ddkv hub: upload from %s cut: %" PRIu64 " bytes in the last %d s, %" PRIu64 " to go\n",
                    c->peer, sum, HUB_UPLOAD_WINDOW_S, c->body_left);
            conn_error(c, 408, true, NULL, "the upload was slower than %u KiB/s over %d s (--upload-min-rate-kbs)",
                       cfg->upload_min_rate >> 10, HUB_UPLOAD_WINDOW_S);
            return;
        }
    }
    c->sec_bytes[c->secs % HUB_UPLOAD_WINDOW_S] = 0; /* the second now starting */
    conn_arm(c, 1000);
}

static bool addr_is_loopback(const uint8_t a[16])
{
    static const uint8_t v6[16] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1};
    return a[0] == 127 || !memcmp(a, v6, 16);
}

/* Whether the Host header names this hub. A page on another DNS name that
 * resolves to the hub (DNS rebinding) carries that name: refused. An IP
 * address is no such trick (its page's origin is the hub's own), and
 * localhost, the listening name and --allowed-hosts are the hub's. The port
 * is not judged (a proxy in front may change it). */
static bool host_ok(const struct hub *h, const char *host)
{
    char name[256];
    if (host[0] == '[') {
        const char *end = strchr(host, ']');
        if (!end)
            return false;
        snprintf(name, sizeof name, "%.*s", (int)(end - host - 1), host + 1);
        struct in6_addr a6;
        return inet_pton(AF_INET6, name, &a6) == 1;
    }
    snprintf(name, sizeof name, "%.*s", (int)strcspn(host, ":"), host);
    struct in_addr a4;
    if (inet_pton(AF_INET, name, &a4) == 1 || !strcasecmp(name, "localhost"))
        return true;
    const char *la = h->cfg->http_addr;
    size_t ll = strcspn(la, ":");
    if (ll && strlen(name) == ll && !strncasecmp(name, la, ll))
        return true;
    for (const char *p = h->cfg->allowed_hosts; p && *p;) {
        p += strspn(p, " ,");
        size_t n = strcspn(p, ",: ");
        if (n && strlen(name) == n && !strncasecmp(name, p, n))
            return true;
        p += strcspn(p, ",");
    }
    return false;
}

/* An Origin header must be this hub's own (scheme://Host): a page of another
 * site may send requests here, but never with one of ours. A plain-HTTP hub
 * also takes https:// (a TLS-terminating proxy in front of it); an HTTPS hub
 * never takes http:// (a page on a plain connection is not ours). */
static bool origin_ok(const struct conn *c)
{
    if (!c->has_origin)
        return true; /* not a browser's cross-origin request (curl, a same-origin GET) */
    const char *o = c->origin;
    const char *rest = !strncmp(o, "https://", 8) ? o + 8 : !c->h->tls && !strncmp(o, "http://", 7) ? o + 7 : NULL;
    return rest && c->has_host && !strcasecmp(rest, c->host);
}

/* A POST whose body the hub reads (sign-in, user management, a job's file):
 * true when path is one (answered, or its body being read). */
static bool route_body(struct conn *c, const char *path, const char *query, bool have_len, uint64_t len,
                       bool expect)
{
    struct hub *h = c->h;
    char uid[128];
    if (!strcmp(path, "/api/login")) {
        uint32_t retry_s = 0;
        if (hubsess_throttled(h->sess, c->addr, &retry_s)) {
            char ra[64];
            snprintf(ra, sizeof ra, "Retry-After: %u\r\n", retry_s);
            conn_error(c, 429, len > 0, ra, "too many failed sign-ins from your address: wait %u s", retry_s);
            return true;
        }
        small_body_start(c, R_LOGIN, NULL, query, have_len, len);
        return true;
    }
    if (!strcmp(path, "/api/logout")) {
        small_body_start(c, R_LOGOUT, NULL, query, have_len, len);
        return true;
    }
    if (!strcmp(path, "/api/users")) {
        small_body_start(c, R_USER_ADD, NULL, query, have_len, len);
        return true;
    }
    if (sscanf(path, "/api/users/%127[^/]/", uid) == 1) {
        const char *verb = path + strlen("/api/users/") + strlen(uid);
        enum route r = !strcmp(verb, "/remove") ? R_USER_REMOVE
                       : !strcmp(verb, "/grant") ? R_USER_GRANT
                       : !strcmp(verb, "/revoke") ? R_USER_REVOKE
                                                  : R_LOGIN;
        if (r != R_LOGIN) {
            small_body_start(c, r, uid, query, have_len, len);
            return true;
        }
    }
    if (!strcmp(path, "/api/jobs")) {
        upload_start(c, query, have_len, len, expect);
        return true;
    }
    return false;
}

/* Everything else: the page, its assets, the event stream, the API's GETs
 * and the job routes (hub_jobs.c). */
static void route_plain(struct conn *c, bool get, bool post, bool del, const char *path, const char *query)
{
    struct hub *h = c->h;
    char id[128];
    if (get && (!strcmp(path, "/") || !strcmp(path, "/index.html"))) {
        char p[512];
        snprintf(p, sizeof p, "%s/index.html", h->cfg->web_dir);
        send_file(c, p);
    } else if (get && !strcmp(path, "/assets/vendor/chart.js")) {
        send_file(c, h->cfg->chart_js);
    } else if (get && !strncmp(path, "/assets/", 8)) {
        const char *name = path + 8;
        if (!*name || strstr(name, "..") || strchr(name, '/')) {
            conn_error(c, 404, false, NULL, "no such asset");
            return;
        }
        char p[512];
        snprintf(p, sizeof p, "%s/%s", h->cfg->web_dir, name);
        send_file(c, p);
    } else if (get && !strcmp(path, "/api/events")) {
        if (auth_on_get(h)) {
            api_submit(c, R_EVENTS, NULL, query); /* as the person: the kinds of event they may read */
        } else {
            c->sse_mask = HUB_SSE_ALL;
            sse_open(c, query);
        }
    } else if (get && !strcmp(path, "/api/session")) {
        api_submit(c, R_SESSION, NULL, query);
    } else if (get && !strcmp(path, "/api/users")) {
        api_submit(c, R_USERS, NULL, query);
    } else if (get && !strcmp(path, "/api/clients")) {
        api_submit(c, R_CLIENTS, NULL, query);
    } else if (get && sscanf(path, "/api/clients/%127[^/]/metrics", id) == 1 &&
               !strcmp(path + strlen("/api/clients/") + strlen(id), "/metrics")) {
        api_submit(c, R_METRICS, id, query);
    } else if (get && sscanf(path, "/api/proxy/%127[^/]", id) == 1 &&
               strlen(path) == strlen("/api/proxy/") + strlen(id)) {
        api_submit(c, R_PROXY, id, query);
    } else if (get && !strcmp(path, "/api/cluster")) {
        api_submit(c, R_CLUSTER, NULL, query);
    } else if (get && !strcmp(path, "/api/jobs")) {
        api_submit(c, R_JOBS, NULL, query);
    } else if (get && sscanf(path, "/api/jobs/%127[^/]", id) == 1 && strlen(path) == strlen("/api/jobs/") + strlen(id)) {
        api_submit(c, R_JOB, id, query);
    } else if (get && !strcmp(path, "/api/algorithms")) {
        api_submit(c, R_ALGORITHMS, NULL, query);
    } else if (sscanf(path, "/api/jobs/%127[^/]", id) == 1 && (get || post || del)) {
        /* hub_jobs.c: /api/jobs/ID (DELETE), /ID/cancel (POST), /ID/result (DELETE), /ID/result.csv and .json (GET) */
        const char *rest = path + strlen("/api/jobs/") + strlen(id);
        enum route r = del && !*rest                         ? R_JOB_DELETE
                       : post && !strcmp(rest, "/cancel")    ? R_JOB_CANCEL
                       : del && !strcmp(rest, "/result")     ? R_JOB_DELETE_RESULT
                       : get && !strcmp(rest, "/result.csv") ? R_JOB_CSV
                       : get && !strcmp(rest, "/result.json") ? R_JOB_JSON
                                                             : R_HEALTH;
        if (r == R_HEALTH)
            conn_error(c, 404, false, NULL, "no such endpoint");
        else
            api_submit(c, r, id, query);
    } else if (get && !strcmp(path, "/health")) {
        api_submit(c, R_HEALTH, NULL, query);
    } else {
        conn_error(c, 404, false, NULL, "no such endpoint");
    }
}

/* A request: the checks every route passes (method, target, Host, Origin, the
 * auth-off rule), then its route. */
static void route(struct conn *c, const char *method, char *target, bool have_len, uint64_t len, bool expect)
{
    struct hub *h = c->h;
    bool get = !strcmp(method, "GET") || !strcmp(method, "HEAD");
    bool post = !strcmp(method, "POST"), del = !strcmp(method, "DELETE");
    c->mutating = !get;
    if (!get && !post && !del) {
        conn_error(c, 405, len > 0, "Allow: GET, HEAD, POST, DELETE\r\n", "method %.16s is not allowed", method);
        return;
    }
    if (target[0] != '/') {
        conn_error(c, 400, true, NULL, "bad request target");
        return;
    }
    char *query = strchr(target, '?');
    if (query)
        *query++ = 0;
    const char *path = target;
    bool health = !strcmp(path, "/health");
    if (!health && c->has_host && !host_ok(h, c->host)) {
        conn_error(c, 403, len > 0, NULL, "Host '%.200s' is not this hub's name (ddkv hub --allowed-hosts)", c->host);
        return;
    }
    if (!health && !origin_ok(c)) {
        conn_error(c, 403, len > 0, NULL, "a request from another site (Origin '%.200s') is refused", c->origin);
        return;
    }
    /* The cluster's auth went off while this hub listens beyond loopback:
     * nobody but this machine is served (see hub_run). */
    if (!health && !auth_on_get(h) && !h->loopback && !h->cfg->allow_no_auth && !addr_is_loopback(c->addr)) {
        conn_error(c, 403, len > 0, NULL,
                   "the cluster has authentication off, so this hub serves only its own machine (ddkv auth enable, "
                   "or ddkv hub --allow-no-auth)");
        return;
    }
    if (post && route_body(c, path, query, have_len, len, expect))
        return;
    char id[128], sname[72];
    int sn = 0;
    /* /api/clients/ID/series[/NAME] */
    if (sscanf(path, "/api/clients/%127[^/]/series%n", id, &sn) == 1 && sn > 0 &&
        (path[sn] == 0 || (path[sn] == '/' && strlen(path + sn + 1) < sizeof sname && !strchr(path + sn + 1, '/')))) {
        snprintf(sname, sizeof sname, "%s", path[sn] ? path + sn + 1 : "");
        if (post && (sname[0] || !path[sn])) {
            /* A device pushes with Basic credentials (README "Device push"):
             * over HTTPS, or plain HTTP from this machine only. */
            if (c->basic && !hubsess_basic_transport_ok(h->tls != NULL, c->addr)) {
                conn_error(c, 403, true, NULL,
                           "Authorization: Basic over plain HTTP is refused (the password would cross the network "
                           "in clear): push over HTTPS (ddkv hub --https-cert/--https-key) or from the hub's machine");
                return;
            }
            uint32_t retry_s = 0;
            if (c->basic && auth_on_get(h) && hubsess_throttled(h->sess, c->addr, &retry_s)) {
                char ra[64];
                snprintf(ra, sizeof ra, "Retry-After: %u\r\n", retry_s);
                conn_error(c, 429, true, ra, "too many failed sign-ins from your address: wait %u s", retry_s);
                return;
            }
            series_post_start(c, id, sname, have_len, len, expect);
            return;
        }
        if (len > 0)
            c->keep = false;
        if (!get) {
            conn_error(c, 405, false, "Allow: GET, HEAD, POST\r\n", "%s wants /api/clients/ID/series[/NAME]", method);
        } else if (!sname[0]) {
            api_submit(c, R_SERIES_LIST, id, query);
        } else {
            api_submit_named(c, R_SERIES, id, sname, query);
        }
        return;
    }
    if (len > 0)
        c->keep = false; /* a body nobody reads: the connection ends after the reply */
    route_plain(c, get, post, del, path, query);
}

/* Whether a comma-separated header value lists token (any case). */
static bool has_token(const char *v, const char *token)
{
    size_t tl = strlen(token);
    while (*v) {
        v += strspn(v, " \t,");
        size_t n = strcspn(v, ",");
        size_t m = n;
        while (m && (v[m - 1] == ' ' || v[m - 1] == '\t'))
            m--;
        if (m == tl && !strncasecmp(v, token, tl))
            return true;
        v += n;
    }
    return false;
}

/* One request head (NUL-terminated, ending in a blank line). */
static void conn_request(struct conn *c, char *head)
{
    char *save = NULL;
    char *line = strtok_r(head, "\r\n", &save);
    char *sp1 = line ? strchr(line, ' ') : NULL, *sp2 = line ? strrchr(line, ' ') : NULL;
    if (!sp1 || sp1 == sp2) {
        conn_error(c, 400, true, NULL, "bad request line");
        return;
    }
    *sp1 = 0;
    *sp2 = 0;
    const char *method = line, *version = sp2 + 1;
    char *target = sp1 + 1;
    bool v11 = !strcmp(version, "HTTP/1.1");
    if (!v11 && strcmp(version, "HTTP/1.0")) {
        conn_error(c, 505, true, NULL, "HTTP/1.0 or HTTP/1.1 only");
        return;
    }
    bool have_len = false, chunked = false, close_hdr = false, keep_alive = false, expect = false;
    uint64_t len = 0;
    free(c->cookie);
    c->cookie = NULL;
    if (c->basic) {
        OPENSSL_cleanse(c->basic, strlen(c->basic));
        free(c->basic);
        c->basic = NULL;
    }
    c->csrf[0] = c->host[0] = c->origin[0] = 0;
    c->has_host = c->has_origin = false;
    while ((line = strtok_r(NULL, "\r\n", &save))) {
        char *colon = strchr(line, ':');
        if (!colon || colon == line) {
            conn_error(c, 400, true, NULL, "bad header line");
            return;
        }
        *colon = 0;
        char *v = colon + 1;
        v += strspn(v, " \t");
        for (size_t n = strlen(v); n && (v[n - 1] == ' ' || v[n - 1] == '\t'); n--)
            v[n - 1] = 0;
        if (!strcasecmp(line, "Content-Length")) {
            errno = 0;
            unsigned long long n = strtoull(v, NULL, 10);
            if (!*v || strspn(v, "0123456789") != strlen(v) || errno || (have_len && n != len)) {
                conn_error(c, 400, true, NULL, "bad Content-Length");
                return;
            }
            have_len = true;
            len = n;
        } else if (!strcasecmp(line, "Transfer-Encoding")) {
            chunked = true;
        } else if (!strcasecmp(line, "Connection")) {
            close_hdr |= has_token(v, "close");
            keep_alive |= has_token(v, "keep-alive");
        } else if (!strcasecmp(line, "Expect")) {
            expect = !strcasecmp(v, "100-continue");
        } else if (!strcasecmp(line, "Cookie")) {
            /* Several Cookie lines are one list (the head's size bounds it). */
            size_t jl = (c->cookie ? strlen(c->cookie) + 2 : 0) + strlen(v) + 1;
            char *joined = malloc(jl);
            if (joined)
                snprintf(joined, jl, "%s%s%s", c->cookie ? c->cookie : "", c->cookie ? "; " : "", v);
            free(c->cookie);
            c->cookie = joined;
        } else if (!strcasecmp(line, "Authorization") && !strncasecmp(v, "Basic ", 6) && !c->basic) {
            const char *b = v + 6;
            b += strspn(b, " ");
            c->basic = strdup(b);
        } else if (!strcasecmp(line, "X-CSRF-Token")) {
            snprintf(c->csrf, sizeof c->csrf, "%s", v);
        } else if (!strcasecmp(line, "Host")) {
            c->has_host = true;
            snprintf(c->host, sizeof c->host, "%s", v);
        } else if (!strcasecmp(line, "Origin")) {
            c->has_origin = true;
            snprintf(c->origin, sizeof c->origin, "%s", v);
        }
    }
    c->keep = v11 ? !close_hdr : keep_alive && !close_hdr;
    c->head_only = !strcmp(method, "HEAD");
    if (chunked) {
        conn_error(c, 411, true, NULL, "a request body needs a Content-Length (no Transfer-Encoding)");
        return;
    }
    route(c, method, target, have_len, len, expect);
}

/* Parse what has come in while waiting for a request head: a head over
 * --max-header-bytes answers 431, one not complete within
 * --header-timeout-ms 408 (conn_timer); both close. */
static void conn_parse(struct conn *c)
{
    const struct hub_config *cfg = c->h->cfg;
    struct evbuffer *in = bufferevent_get_input(c->bev);
    while (c->st == C_HEAD) {
        if (evbuffer_get_length(bufferevent_get_output(c->bev)) > HUB_OUT_PAUSE) {
            c->paused = true; /* the client does not read its replies: stop reading its requests */
            bufferevent_disable(c->bev, EV_READ);
            return;
        }
        unsigned char ch;
        while (!c->started && evbuffer_copyout(in, &ch, 1) == 1 && (ch == '\r' || ch == '\n'))
            evbuffer_drain(in, 1);
        size_t len = evbuffer_get_length(in);
        if (!len)
            return;
        if (!c->started) {
            c->started = true;
            c->t_start_ms = clock_mono_ms();
            conn_arm(c, cfg->header_timeout_ms);
        }
        struct evbuffer_ptr p = evbuffer_search(in, "\r\n\r\n", 4, NULL);
        if (p.pos < 0 || (size_t)p.pos + 4 > cfg->max_header_bytes) {
            if (p.pos >= 0 || len > cfg->max_header_bytes)
                conn_error(c, 431, true, NULL, "the request head is over %u bytes (--max-header-bytes)",
                           cfg->max_header_bytes);
            return;
        }
        size_t hl = (size_t)p.pos + 4;
        char *head = malloc(hl + 1);
        if (!head) {
            conn_error(c, 500, true, NULL, "out of memory");
            return;
        }
        evbuffer_remove(in, head, hl);
        head[hl] = 0;
        event_del(c->timer);
        conn_request(c, head);
        free(head);
    }
}

static void conn_read(struct bufferevent *bev, void *arg)
{
    struct conn *c = arg;
    struct evbuffer *in = bufferevent_get_input(bev);
    switch (c->st) {
    case C_HEAD: conn_parse(c); break;
    case C_BODY: body_feed(c); break;
    case C_SSE: evbuffer_drain(in, evbuffer_get_length(in)); break;
    case C_CLOSING:
        c->lingered += evbuffer_get_length(in);
        evbuffer_drain(in, evbuffer_get_length(in));
        if (c->lingered > HUB_LINGER_BYTES)
            conn_free(c);
        break;
    case C_BUSY: break;
    }
}

static void conn_write(struct bufferevent *bev, void *arg)
{
    struct conn *c = arg;
    if (c->st == C_CLOSING && !c->shut) {
        /* All sent: end our side, and drain the client's for a moment so
         * that closing does not reset the reply away. */
        c->shut = true;
        shutdown(bufferevent_getfd(bev), SHUT_WR);
        conn_arm(c, HUB_LINGER_MS);
    } else if (c->st == C_HEAD && c->paused) {
        c->paused = false;
        bufferevent_enable(bev, EV_READ);
        conn_parse(c);
    }
}

static void conn_event(struct bufferevent *bev, short what, void *arg)
{
    (void)bev;
    if (what & BEV_EVENT_CONNECTED)
        return; /* HTTPS: the handshake is done */
    conn_free(arg); /* EOF, an error (a failed handshake too), or a reply unread for --idle-timeout-ms */
}

static void conn_timer(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct conn *c = arg;
    switch (c->st) {
    case C_HEAD:
        if (c->started)
            conn_error(c, 408, true, NULL, "the request head did not arrive within %u ms (--header-timeout-ms)",
                       c->h->cfg->header_timeout_ms);
        else if (evbuffer_get_length(bufferevent_get_output(c->bev)))
            conn_arm(c, c->h->cfg->idle_timeout_ms); /* a reply still going out: the write timeout watches it */
        else
            conn_free(c); /* idle */
        break;
    case C_BODY: body_check(c); break;
    case C_CLOSING: conn_free(c); break;
    case C_BUSY:
    case C_SSE: break;
    }
}

static void accept_cb(struct evconnlistener *l, evutil_socket_t fd, struct sockaddr *sa, int salen, void *arg)
{
    (void)l;
    (void)salen;
    struct hub *h = arg;
    uint8_t addr[16] = {0};
    if (sa->sa_family == AF_INET)
        memcpy(addr, &((struct sockaddr_in *)sa)->sin_addr, 4);
    else if (sa->sa_family == AF_INET6)
        memcpy(addr, &((struct sockaddr_in6 *)sa)->sin6_addr, 16);
    uint32_t same = 0;
    for (struct conn *o = h->conns; o && same < h->cfg->max_conns_per_addr; o = o->next)
        same += !memcmp(o->addr, addr, sizeof addr);
    bool room = h->nconns < h->max_conns && same < h->cfg->max_conns_per_addr;
    struct conn *c = room ? calloc(1, sizeof *c) : NULL;
    struct bufferevent *bev = NULL;
    if (c && h->tls) {
        /* HTTPS: the handshake runs under the idle deadline armed below;
         * the SSL is freed with the bufferevent. */
        SSL *ssl = SSL_new(h->tls);
        bev = ssl ? bufferevent_openssl_socket_new(h->base, fd, ssl, BUFFEREVENT_SSL_ACCEPTING, BEV_OPT_CLOSE_ON_FREE)
                  : NULL;
        if (!bev && ssl)
            SSL_free(ssl);
        if (bev)
            bufferevent_openssl_set_allow_dirty_shutdown(bev, 1);
    } else if (c) {
        bev = bufferevent_socket_new(h->base, fd, BEV_OPT_CLOSE_ON_FREE);
    }
    struct event *timer = bev ? evtimer_new(h->base, conn_timer, c) : NULL;
    if (!timer) {
#define HUB_BUSY_BODY "{\"error\":\"too many connections, try again\"}"
        static const char busy[] = "HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\n"
                                   "Retry-After: 1\r\nConnection: close\r\nContent-Length: 43\r\n\r\n" HUB_BUSY_BODY;
        _Static_assert(sizeof HUB_BUSY_BODY - 1 == 43, "the Content-Length above");
        (void)!send(fd, busy, sizeof busy - 1, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (h->refused_conns++ % 1000 == 0)
            fprintf(stderr,
                    "ddkv hub: refusing a connection from %s: %u open, %u from that address (--max-conns %u, "
                    "--max-conns-per-addr %u; %" PRIu64 " refused so far)\n",
                    sa->sa_family == AF_INET ? inet_ntoa(((struct sockaddr_in *)sa)->sin_addr) : "an IPv6 address",
                    h->nconns, same, h->max_conns, h->cfg->max_conns_per_addr, h->refused_conns);
        if (bev)
            bufferevent_free(bev);
        else
            evutil_closesocket(fd);
        free(c);
        return;
    }
    c->h = h;
    c->bev = bev;
    c->timer = timer;
    c->st = C_HEAD;
    c->keep = true;
    memcpy(c->addr, addr, sizeof addr);
    char ip[INET6_ADDRSTRLEN] = "?";
    int port = 0;
    if (sa->sa_family == AF_INET) {
        inet_ntop(AF_INET, &((struct sockaddr_in *)sa)->sin_addr, ip, sizeof ip);
        port = ntohs(((struct sockaddr_in *)sa)->sin_port);
    } else if (sa->sa_family == AF_INET6) {
        inet_ntop(AF_INET6, &((struct sockaddr_in6 *)sa)->sin6_addr, ip, sizeof ip);
        port = ntohs(((struct sockaddr_in6 *)sa)->sin6_port);
    }
    snprintf(c->peer, sizeof c->peer, "%s:%d", ip, port);
    /* Answers go out in pieces (a metrics answer is about 1 MB): without
     * TCP_NODELAY a piece can wait for the browser's delayed ACK, 40 ms. */
    int one = 1;
    (void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    bufferevent_setcb(bev, conn_read, conn_write, conn_event, c);
    struct timeval wt = {h->cfg->idle_timeout_ms / 1000, (h->cfg->idle_timeout_ms % 1000) * 1000};
    bufferevent_set_timeouts(bev, NULL, &wt); /* a reply (or stream) nobody reads */
    bufferevent_enable(bev, EV_READ | EV_WRITE);
    c->next = h->conns;
    if (h->conns)
        h->conns->prev = c;
    h->conns = c;
    h->nconns++;
    conn_arm(c, h->cfg->idle_timeout_ms);
}

static void accept_resume(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    evconnlistener_enable(arg);
}

static void accept_error_cb(struct evconnlistener *l, void *arg)
{
    (void)arg;
    /* Out of descriptors (EMFILE): a listener left on would spin. */
    fprintf(stderr, "ddkv hub: accept: %s\n", strerror(errno));
    evconnlistener_disable(l);
    struct timeval tv = {0, 200 * 1000};
    event_base_once(evconnlistener_get_base(l), -1, EV_TIMEOUT, accept_resume, l, &tv);
}

/* --- running --- */

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
    cfg->max_conns = 1024;
    cfg->max_conns_per_addr = 256;
    cfg->max_header_bytes = 16 << 10;
    cfg->header_timeout_ms = 10000;
    cfg->idle_timeout_ms = 60000;
    cfg->queue = 64;
    cfg->proxy_workers = 4;
    cfg->proxy_queue = 8;
    cfg->uploads = 2;
    cfg->max_upload_bytes = 64u << 20;
    cfg->upload_min_rate = 16 << 10;
    cfg->upload_timeout_ms = 600000;
    cfg->sse_max_pending = 8u << 20;
    cfg->max_unsent_bytes = 32u << 20;
    cfg->session_ttl_s = 8 * 3600;
    ddkv_options_init(&cfg->cluster);
}

/* --max-conns within the descriptors this process may open (raising the
 * soft limit to the hard one if needed), keeping HUB_FD_RESERVE for the
 * hub's own cluster connections. */
static uint32_t conn_limit(uint32_t want)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
        return want;
    rlim_t need = (rlim_t)want + HUB_FD_RESERVE;
    if (rl.rlim_cur < need && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max < need ? rl.rlim_max : need;
        (void)setrlimit(RLIMIT_NOFILE, &rl);
        (void)getrlimit(RLIMIT_NOFILE, &rl);
    }
    if (rl.rlim_cur != RLIM_INFINITY && rl.rlim_cur < need) {
        uint32_t got = rl.rlim_cur > 2 * HUB_FD_RESERVE ? (uint32_t)(rl.rlim_cur - HUB_FD_RESERVE) : HUB_FD_RESERVE;
        fprintf(stderr, "ddkv hub: --max-conns %u lowered to %u (open files limit %llu)\n", want, got,
                (unsigned long long)rl.rlim_cur);
        return got;
    }
    return want;
}

/* --http-addr as a socket address: its length, 0 if it is not HOST:PORT.
 * host gets HOST (for the start-up line). */
static int http_addr_parse(const char *http_addr, char host[HUB_HOST_MAX], struct sockaddr_storage *ss)
{
    const char *colon = strrchr(http_addr, ':');
    memset(ss, 0, sizeof *ss);
    int sl = 0;
    char *end = NULL;
    long port = colon ? strtol(colon + 1, &end, 10) : -1;
    if (colon && (size_t)(colon - http_addr) < HUB_HOST_MAX) {
        memcpy(host, http_addr, (size_t)(colon - http_addr));
        host[colon - http_addr] = 0;
    }
    if (colon && *end == 0 && port >= 0 && port <= 65535 && (size_t)(colon - http_addr) < HUB_HOST_MAX) {
        /* An address or a name, as evhttp took it; [v6] in brackets. */
        char name[256];
        size_t hl = strlen(host);
        if (hl >= 2 && host[0] == '[' && host[hl - 1] == ']')
            snprintf(name, sizeof name, "%.*s", (int)hl - 2, host + 1);
        else
            snprintf(name, sizeof name, "%s", host);
        struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM, .ai_flags = AI_PASSIVE}, *ai = NULL;
        if (getaddrinfo(name[0] ? name : NULL, "0", &hints, &ai) == 0 && ai && ai->ai_addrlen <= sizeof *ss) {
            memcpy(ss, ai->ai_addr, ai->ai_addrlen);
            sl = (int)ai->ai_addrlen;
            if (ss->ss_family == AF_INET)
                ((struct sockaddr_in *)ss)->sin_port = htons((uint16_t)port);
            else
                ((struct sockaddr_in6 *)ss)->sin6_port = htons((uint16_t)port);
        }
        if (ai)
            freeaddrinfo(ai);
    }
    return sl;
}

/* Whether the cluster's auth is on, asked once at start-up (unknown counts
 * as on). 2: it is off and this hub would listen beyond loopback without
 * --allow-no-auth (said on stderr). */
static int auth_probe(struct hub *h)
{
    h->auth_on = 1;
    ddkv_client *ac = hub_client(h->cfg, h->cfg->endpoints, h->cfg->timeout_ms);
    struct ddkv_auth_status ast;
    if (ac && ddkv_auth_status(ac, &ast) == DDKV_OK) {
        h->auth_on = ast.enabled;
        if (ast.enabled && !ast.user)
            fprintf(stderr, "ddkv hub: the cluster has authentication on but this hub has no user of its own "
                            "(--user): nobody can sign in\n");
        ddkv_auth_status_free(&ast);
        if (!h->auth_on && !h->loopback && !h->cfg->allow_no_auth) {
            fprintf(stderr,
                    "ddkv hub: the cluster has authentication off, so anyone reaching %s could do anything: "
                    "refusing to listen beyond loopback (turn it on with ddkv auth enable, listen on 127.0.0.1, "
                    "or pass --allow-no-auth)\n",
                    h->cfg->http_addr);
            ddkv_client_free(ac);
            return 2;
        }
    } else {
        fprintf(stderr, "ddkv hub: the cluster does not answer yet; sign-in is required until it says its "
                        "authentication is off\n");
    }
    ddkv_client_free(ac);
    return 0;
}

/* After the loop: the lanes and the threads stopped, the replies they
 * posted sent, everything freed. */
static void hub_stop(struct hub *h)
{
    h->stopping = 1;
    lane_stop(&h->light_lane);
    lane_stop(&h->main_lane);
    lane_stop(&h->proxy_lane);
    lane_stop(&h->upload_lane);
    for (int i = 0; i < 4; i++)
        pthread_join(h->watchers[i], NULL);
    pthread_join(h->poller, NULL);
    /* Replies the workers posted after the loop stopped. */
    event_base_loop(h->base, EVLOOP_NONBLOCK);
    while (h->conns)
        conn_free(h->conns);
    evconnlistener_free(h->listener);
    event_free(h->feed_ev);
    event_free(h->ping_ev);
    event_free(h->sig_int);
    event_free(h->sig_term);
    for (int k = 0; k < 4; k++)
        evbuffer_free(h->feed[k]);
    evbuffer_free(h->sfeed);
    hubsess_free(h->sess);
    if (h->tls)
        SSL_CTX_free(h->tls);
    event_base_free(h->base);
    pthread_mutex_destroy(&h->fmu);
}

int hub_run(const struct hub_config *cfg)
{
    static struct hub hub;
    struct hub *h = &hub;
    memset(h, 0, sizeof *h);
    h->cfg = cfg;
    evthread_use_pthreads();
    char host[HUB_HOST_MAX];
    const char *colon = strrchr(cfg->http_addr, ':');
    struct sockaddr_storage ss;
    int sl = http_addr_parse(cfg->http_addr, host, &ss);
    if (!sl) {
        fprintf(stderr, "ddkv hub: --http-addr wants HOST:PORT\n");
        return 2;
    }
    h->max_conns = conn_limit(cfg->max_conns);
    if (cfg->https_cert || cfg->https_key) {
        struct errbuf eb = {{0}};
        if (!cfg->https_cert || !cfg->https_key) {
            fprintf(stderr, "ddkv hub: --https-cert and --https-key go together\n");
            return 2;
        }
        if (tls_server_ctx(&h->tls, cfg->https_cert, cfg->https_key, NULL, TLS_PEER_CERT_NONE, &eb) != 0) {
            fprintf(stderr, "ddkv hub: HTTPS: %s\n", eb.msg);
            return 2;
        }
    }
    /* Sign-in: is the cluster's auth on? Unknown (no answer yet) counts as
     * on: every request then wants a session, and nothing is open. */
    h->loopback = (ss.ss_family == AF_INET && ntohl(((struct sockaddr_in *)&ss)->sin_addr.s_addr) >> 24 == 127) ||
                  (ss.ss_family == AF_INET6 && IN6_IS_ADDR_LOOPBACK(&((struct sockaddr_in6 *)&ss)->sin6_addr));
    if (auth_probe(h) != 0)
        return 2;
    struct ddkv_options so;
    hub_options(cfg, cfg->endpoints, cfg->timeout_ms, &so);
    so.connect_timeout_ms = 500;
    so.list_consistency = DDKV_CONSISTENCY_CAUSAL; /* as hub_client's */
    h->sess = hubsess_new(&so, cfg->session_ttl_s ? cfg->session_ttl_s : 8 * 3600);
    h->base = event_base_new();
    for (int k = 0; k < 4; k++)
        h->feed[k] = evbuffer_new();
    h->sfeed = evbuffer_new();
    if (!h->base || !h->feed[0] || !h->feed[1] || !h->feed[2] || !h->feed[3] || !h->sfeed || !h->sess) {
        fprintf(stderr, "ddkv hub: out of memory\n");
        return 1;
    }
    signal(SIGPIPE, SIG_IGN);
    h->listener = evconnlistener_new_bind(h->base, accept_cb, h, LEV_OPT_CLOSE_ON_FREE | LEV_OPT_REUSEABLE, 511,
                                          (struct sockaddr *)&ss, sl);
    if (!h->listener) {
        fprintf(stderr, "ddkv hub: cannot listen on %s: %s\n", cfg->http_addr, strerror(errno));
        return 2;
    }
    evconnlistener_set_error_cb(h->listener, accept_error_cb);
    pthread_mutex_init(&h->fmu, NULL);
    h->feed_ev = event_new(h->base, -1, 0, feed_cb, h);
    h->ping_ev = event_new(h->base, -1, EV_PERSIST, ping_cb, h);
    struct timeval fifteen = {15, 0};
    event_add(h->ping_ev, &fifteen);
    h->sig_int = evsignal_new(h->base, SIGINT, on_signal, h);
    h->sig_term = evsignal_new(h->base, SIGTERM, on_signal, h);
    event_add(h->sig_int, NULL);
    event_add(h->sig_term, NULL);
    if (lane_start(h, &h->light_lane, HUB_LIGHT_WORKERS, cfg->queue) != 0 ||
        lane_start(h, &h->main_lane, cfg->workers ? cfg->workers : 4, cfg->queue) != 0 ||
        lane_start(h, &h->proxy_lane, cfg->proxy_workers ? cfg->proxy_workers : 1, cfg->proxy_queue) != 0 ||
        lane_start(h, &h->upload_lane, cfg->uploads ? cfg->uploads : 1, 0) != 0) {
        fprintf(stderr, "ddkv hub: out of memory\n");
        return 1;
    }
    static struct watch_arg wa[4];
    const char *prefixes[4] = {"clients/", "metrics/", "jobs/", "series/"},
               *events[4] = {"client", "metric", "job", "series"};
    for (int i = 0; i < 4; i++) {
        wa[i] = (struct watch_arg){h, prefixes[i], events[i], (unsigned)i};
        pthread_create(&h->watchers[i], NULL, watch_main, &wa[i]);
    }
    pthread_create(&h->poller, NULL, poller_main, h);
    /* The address the kernel gave, for port 0. */
    evutil_socket_t fd = evconnlistener_get_fd(h->listener);
    struct sockaddr_storage bound_ss;
    socklen_t bl = sizeof bound_ss;
    int bound = atoi(colon + 1);
    if (getsockname(fd, (struct sockaddr *)&bound_ss, &bl) == 0) {
        if (bound_ss.ss_family == AF_INET)
            bound = ntohs(((struct sockaddr_in *)&bound_ss)->sin_port);
        else if (bound_ss.ss_family == AF_INET6)
            bound = ntohs(((struct sockaddr_in6 *)&bound_ss)->sin6_port);
    }
    fprintf(stderr, "ddkv hub: dashboard at %s://%s:%d/ (cluster %s)\n", h->tls ? "https" : "http", host, bound,
            cfg->endpoints);
    event_base_dispatch(h->base);
    hub_stop(h);
    fprintf(stderr, "ddkv hub: stopped\n");
    return 0;
}
