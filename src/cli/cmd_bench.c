/* ddkv bench: a load generator on libevent.
 *
 * One process, one event loop, --clients connections. Each connection is a
 * client session of its own (a client id and a sequence number per write, as
 * libddkv uses them), with one operation in flight: closed loop by default;
 * with --rate, operations are due on a fixed schedule and latency counts from
 * when each was due (so a stall is not hidden by the operations it delayed).
 * It follows NOT_LEADER to the leader and resends a write whose connection
 * broke under the same session number, like libddkv; what has no answer after
 * --timeout-ms counts as an unknown outcome. With --user, each connection
 * sends AUTH first and starts its operations once answered AUTHED; a refused
 * login stops the run (exit 2).
 *
 * Workloads: write; read (at --consistency); mixed (--read-ratio of reads);
 * cas (every client increments one counter: a linearizable read, then a
 * transaction that writes the value + 1 if the value is still what was read,
 * retried until it holds; the latency is that of a whole increment).
 * Latency goes into a log-linear histogram (util/hist.h). */
#include <errno.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <jansson.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/resource.h>
#include <sys/socket.h>

#include "cli/cmd.h"
#include "ddkv/wire.h"
#include "proto/frame.h"
#include "proto/lamport.h"
#include "proto/msg.h"
#include "util/buf.h"
#include "util/clock.h"
#include "util/err.h"
#include "util/hist.h"
#include "util/net.h"
#include "util/rng.h"
#include "util/tls.h"

enum workload { WL_WRITE, WL_READ, WL_MIXED, WL_CAS };
static const char *const workload_names[] = {"write", "read", "mixed", "cas", NULL};
static const char *const consistency_names[] = {"linearizable", "causal", "stale", NULL};

#define BENCH_MAX_EPS 16
#define BENCH_MAX_CLIENTS 4096
#define BENCH_COUNTER "bench/counter"

enum bstate { B_IDLE, B_CONNECTING, B_READ, B_WRITE, B_CAS_READ, B_CAS_TXN };

struct bench;

struct bconn {
    struct bench *b;
    int id;
    int ep, home_ep;        /* where it is; where it started (reads return there) */
    struct bufferevent *bev;
    struct frame_decoder dec;
    bool up;
    enum bstate op;         /* what is in flight (or to resend once connected) */
    bool prefill;           /* the operation belongs to the prefill phase */
    uint64_t client_id, seq;
    uint64_t rid;
    uint64_t due_ns;        /* when the operation was due: latency counts from here */
    uint64_t sent_ns;       /* when it (last) went out, for the timeout */
    uint64_t deadline_ns;   /* give up on it: unknown outcome */
    uint32_t key;
    uint64_t counter;       /* cas: the value read */
    uint64_t seen;          /* Lamport time of the newest data this session saw (causal reads) */
    bool authing;           /* connected, AUTH sent, not answered yet */
    uint64_t auth_rid;
    struct event *wait;     /* open loop: the next operation is not due yet */
    uint64_t retry_ns;      /* a refused connection is tried again from then on */
    uint32_t backoff_ms;    /* doubles with each refusal in a row, up to 1 s */
};

struct bench {
    struct event_base *base;
    struct event *tick;
    enum workload wl;
    int consistency;
    uint32_t clients, keys, key_size, value_size;
    uint64_t ops_target;     /* 0: run for duration */
    double duration_s, warmup_s, rate, read_ratio;
    uint32_t timeout_ms;
    char eps[BENCH_MAX_EPS][64];
    struct sockaddr_storage ep_ss[BENCH_MAX_EPS];
    socklen_t ep_len[BENCH_MAX_EPS];
    int neps;
    SSL_CTX *tls;            /* NULL: plain TCP */
    bool tls_check_name;
    struct lamport clock;
    struct bconn *c;
    uint8_t *value;
    struct buf out;
    uint64_t rng;
    /* Phases. */
    uint32_t prefill_next, prefill_done;
    bool prefilling;
    uint64_t start_ns, measure_ns, end_ns;
    bool stopping;
    uint64_t progress_ns;    /* the start, or the last operation that succeeded */
    bool gave_up;            /* nothing did for --timeout-ms */
    /* Results (measured phase only). */
    struct hist lat;
    uint64_t ops, errors, unknown, redirects, reconnects, cas_attempts, reads, writes;
    char last_error[160];
    const char *user, *password; /* credentials (NULL user: none) */
    bool auth_refused;           /* a login was refused: the run stops */
};

static uint64_t bench_rand(struct bench *b)
{
    return rng_next(&b->rng);
}

static void bench_key(struct bench *b, uint32_t k, char *out)
{
    /* "bench/" and the number, zero-padded to key_size. */
    snprintf(out, b->key_size + 1, "bench/%0*u", (int)(b->key_size > 6 ? b->key_size - 6 : 1), k);
}

static int bench_add_ep(struct bench *b, const char *text)
{
    for (int i = 0; i < b->neps; i++)
        if (strcmp(b->eps[i], text) == 0)
            return i;
    if (b->neps == BENCH_MAX_EPS || strlen(text) >= sizeof b->eps[0] ||
        net_parse_addr(text, &b->ep_ss[b->neps], &b->ep_len[b->neps]) != ERR_OK)
        return -1;
    snprintf(b->eps[b->neps], sizeof b->eps[0], "%s", text);
    return b->neps++;
}

static void bconn_start(struct bconn *c);

/* A request sent now gets --timeout-ms for its answer. */
static void bconn_arm_deadline(struct bconn *c)
{
    c->deadline_ns = clock_mono_ns() + (uint64_t)c->b->timeout_ms * 1000000u;
}
static void bconn_send(struct bconn *c);
static void bconn_connect(struct bconn *c, int ep);

static bool bench_measuring(struct bench *b, uint64_t now)
{
    return !b->prefilling && now >= b->measure_ns;
}

/* Past the end, no operation starts; the run ends when every one in flight
 * has settled (so what the cluster applied is what was counted), or after
 * the operation timeout. */
static void bench_maybe_stop(struct bench *b)
{
    uint64_t now = clock_mono_ns();
    /* The clock starts when the prefill is done, however long it took. */
    if (!b->stopping && !b->prefilling &&
        ((b->ops_target && b->ops >= b->ops_target) || (!b->ops_target && now >= b->end_ns)))
        b->stopping = true;
    if (!b->stopping)
        return;
    bool idle = true;
    for (uint32_t i = 0; i < b->clients && idle; i++)
        idle = b->c[i].op == B_IDLE;
    if (idle) {
        b->end_ns = now;
        event_base_loopexit(b->base, NULL);
    }
}

/* The operation is over (answered, or given up on). */
static void bconn_done(struct bconn *c, bool ok, bool unknown)
{
    struct bench *b = c->b;
    uint64_t now = clock_mono_ns();
    bool prefill = c->prefill;
    if (ok)
        b->progress_ns = now;
    if (prefill) {
        b->prefill_done++;
        if (!ok)
            b->errors++;
    } else if (bench_measuring(b, c->due_ns)) {
        if (ok) {
            b->ops++;
            hist_record(&b->lat, now - c->due_ns);
        } else if (unknown) {
            b->unknown++;
        } else {
            b->errors++;
        }
    }
    c->op = B_IDLE;
    c->prefill = false;
    bench_maybe_stop(b);
    if (b->stopping)
        return; /* no new operation */
    if (b->prefilling && b->prefill_done >= b->keys + (b->wl == WL_CAS)) {
        /* Every key is there: measuring starts after the warm-up. */
        b->prefilling = false;
        b->start_ns = now;
        b->measure_ns = now + (uint64_t)(b->warmup_s * 1e9);
        b->end_ns = b->measure_ns + (uint64_t)(b->duration_s * 1e9);
        for (uint32_t i = 0; i < b->clients; i++) {
            struct bconn *x = &b->c[i];
            if (x->op != B_IDLE)
                continue;
            if (b->wl == WL_READ && x->ep != x->home_ep)
                bconn_connect(x, x->home_ep); /* the prefill writes took it to the leader */
            else if (x->up)
                bconn_start(x);
        }
        return;
    }
    if (b->prefilling && b->prefill_next >= b->keys + (b->wl == WL_CAS))
        return; /* wait for the others' prefill writes */
    if (b->rate > 0 && !prefill) {
        /* Open loop: the next one is due a fixed interval after this one was. */
        uint64_t interval = (uint64_t)(1e9 * b->clients / b->rate);
        c->due_ns += interval;
        if (c->due_ns > now) {
            uint64_t d = c->due_ns - now;
            struct timeval tv = {(time_t)(d / 1000000000u), (suseconds_t)(d % 1000000000u / 1000)};
            evtimer_add(c->wait, &tv);
            return;
        }
    } else {
        c->due_ns = 0;
    }
    bconn_start(c);
}

static void wait_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    bconn_start(arg);
}

/* Pick the next operation and send it. */
static void bconn_start(struct bconn *c)
{
    struct bench *b = c->b;
    if (b->stopping)
        return;
    uint64_t now = clock_mono_ns();
    if (!c->due_ns || b->rate <= 0)
        c->due_ns = now;
    bconn_arm_deadline(c);
    if (b->prefilling) {
        if (b->prefill_next >= b->keys + (b->wl == WL_CAS))
            return;
        c->prefill = true;
        c->key = b->prefill_next++;
        c->op = B_WRITE;
        c->seq++;
    } else {
        switch (b->wl) {
        case WL_WRITE: c->op = B_WRITE; break;
        case WL_READ: c->op = B_READ; break;
        case WL_MIXED:
            c->op = (double)(bench_rand(b) % 1000000) < b->read_ratio * 1e6 ? B_READ : B_WRITE;
            break;
        case WL_CAS: c->op = B_CAS_READ; break;
        }
        c->key = (uint32_t)(bench_rand(b) % b->keys);
        if (c->op == B_WRITE)
            c->seq++;
    }
    bconn_send(c);
}

static void bench_encode(struct bench *b, struct bconn *c)
{
    char key[128];
    struct msg_writer w;
    buf_reset(&b->out);
    c->rid++;
    uint64_t lt = lamport_tick(&b->clock);
    bool counter = b->wl == WL_CAS && (c->op == B_CAS_READ || c->op == B_CAS_TXN ||
                                       (c->prefill && c->key == b->keys));
    if (counter)
        snprintf(key, sizeof key, "%s", BENCH_COUNTER);
    else
        bench_key(b, c->key, key);
    switch (c->op) {
    case B_READ:
    case B_CAS_READ:
        msg_begin(&w, &b->out, DDKV_MSG_READ, lt, c->rid, 3);
        mw_bin(&w, key, strlen(key));
        mw_u64(&w, c->op == B_CAS_READ ? DDKV_CONSISTENCY_LINEARIZABLE : (uint64_t)b->consistency);
        mw_u64(&w, c->seen);
        break;
    case B_WRITE:
        msg_begin(&w, &b->out, DDKV_MSG_WRITE, lt, c->rid, 5);
        mw_bin(&w, key, strlen(key));
        if (counter)
            mw_bin(&w, "0", 1);
        else
            mw_bin(&w, b->value, b->value_size);
        mw_u64(&w, 0);
        mw_u64(&w, c->client_id);
        mw_u64(&w, c->seq);
        break;
    case B_CAS_TXN: {
        char have[24], next[24];
        int hl = snprintf(have, sizeof have, "%llu", (unsigned long long)c->counter);
        int nl = snprintf(next, sizeof next, "%llu", (unsigned long long)c->counter + 1);
        msg_begin(&w, &b->out, DDKV_MSG_TXN, lt, c->rid, 5);
        mw_array(&w, 1);
        mw_array(&w, 4);
        mw_bin(&w, key, strlen(key));
        mw_u64(&w, DDKV_CMP_VALUE);
        mw_u64(&w, DDKV_CMP_EQ);
        mw_bin(&w, have, (size_t)hl);
        mw_array(&w, 1);
        mw_array(&w, 4);
        mw_u64(&w, DDKV_OP_PUT);
        mw_bin(&w, key, strlen(key));
        mw_bin(&w, next, (size_t)nl);
        mw_u64(&w, 0);
        mw_array(&w, 0);
        mw_u64(&w, c->client_id);
        mw_u64(&w, c->seq);
        break;
    }
    default:
        return;
    }
    msg_end(&w);
}

static void bconn_send(struct bconn *c)
{
    struct bench *b = c->b;
    if (!c->up) {
        if (!c->bev)
            bconn_connect(c, c->ep);
        return; /* sent once connected */
    }
    bench_encode(b, c);
    c->sent_ns = clock_mono_ns();
    if (bufferevent_write(c->bev, b->out.data, b->out.len) != 0)
        bconn_connect(c, (c->ep + 1) % b->neps);
}

static void bconn_close(struct bconn *c)
{
    if (c->bev)
        bufferevent_free(c->bev);
    c->bev = NULL;
    c->up = false;
    c->authing = false;
    frame_decoder_free(&c->dec);
    frame_decoder_init(&c->dec, DDKV_DEFAULT_MAX_FRAME_BYTES);
}

static void read_cb(struct bufferevent *bev, void *arg);
static void event_cb(struct bufferevent *bev, short what, void *arg);

/* A TLS client bufferevent for endpoint ep (the handshake runs once the
 * connect completes), or NULL. */
static struct bufferevent *bench_tls_bev(struct bench *b, int ep)
{
    char host[64];
    snprintf(host, sizeof host, "%s", b->eps[ep][0] == '[' ? b->eps[ep] + 1 : b->eps[ep]);
    char *end = b->eps[ep][0] == '[' ? strchr(host, ']') : strrchr(host, ':');
    if (end)
        *end = 0;
    SSL *ssl = SSL_new(b->tls);
    if (!ssl || (b->tls_check_name && tls_expect_host(ssl, host) != ERR_OK)) {
        SSL_free(ssl);
        return NULL;
    }
    struct bufferevent *bev =
        bufferevent_openssl_socket_new(b->base, -1, ssl, BUFFEREVENT_SSL_CONNECTING, BEV_OPT_CLOSE_ON_FREE);
    if (!bev) {
        SSL_free(ssl);
        return NULL;
    }
    bufferevent_openssl_set_allow_dirty_shutdown(bev, 1);
    return bev;
}

static void bconn_connect(struct bconn *c, int ep)
{
    struct bench *b = c->b;
    bconn_close(c);
    c->ep = ep;
    c->bev = b->tls ? bench_tls_bev(b, ep) : bufferevent_socket_new(b->base, -1, BEV_OPT_CLOSE_ON_FREE);
    if (!c->bev)
        return;
    bufferevent_setcb(c->bev, read_cb, NULL, event_cb, c);
    bufferevent_enable(c->bev, EV_READ | EV_WRITE);
    if (bufferevent_socket_connect(c->bev, (struct sockaddr *)&b->ep_ss[ep], (int)b->ep_len[ep]) != 0)
        bconn_close(c); /* the tick tries again */
}

/* The answer arrived (or the attempt failed): settle the operation or retry it. */
static void bconn_answer(struct bconn *c, const struct msg *m)
{
    struct bench *b = c->b;
    if (m->type == DDKV_MSG_ERROR) {
        uint64_t code = 0;
        msg_u64(m, 0, &code);
        const uint8_t *p;
        size_t n;
        if (code == DDKV_WERR_NOT_FOUND && (c->op == B_READ)) {
            bconn_done(c, true, false);
            return;
        }
        if (code == DDKV_WERR_NOT_LEADER) {
            int ep = -1;
            if (!msg_is_nil(m, 2) && msg_bytes(m, 2, &p, &n) == ERR_OK && n < 64) {
                char addr[64];
                memcpy(addr, p, n);
                addr[n] = 0;
                ep = bench_add_ep(b, addr);
            }
            b->redirects++;
            bconn_connect(c, ep >= 0 ? ep : (c->ep + 1) % b->neps);
            return;
        }
        if ((code == DDKV_WERR_UNAVAILABLE || code == DDKV_WERR_TIMEOUT) &&
            clock_mono_ns() < c->deadline_ns) {
            bconn_connect(c, (c->ep + 1) % b->neps); /* another member, same session number */
            return;
        }
        if (msg_bytes(m, 1, &p, &n) == ERR_OK)
            snprintf(b->last_error, sizeof b->last_error, "%.*s", (int)(n < 150 ? n : 150), (const char *)p);
        bconn_done(c, false, code == DDKV_WERR_TIMEOUT || code == DDKV_WERR_UNAVAILABLE);
        return;
    }
    /* The data's Lamport time: what a causal read of this session must see. */
    uint64_t lt = 0;
    uint32_t at = m->type == DDKV_MSG_VALUE ? 5 : m->type == DDKV_MSG_TXN_RESULT ? 1 : 0;
    if (msg_u64(m, at, &lt) == ERR_OK && lt > c->seen && lt < DDKV_LAMPORT_MAX)
        c->seen = lt;
    switch (c->op) {
    case B_READ:
        b->reads += !c->prefill && bench_measuring(b, c->due_ns);
        bconn_done(c, m->type == DDKV_MSG_VALUE, false);
        return;
    case B_WRITE:
        b->writes += !c->prefill && bench_measuring(b, c->due_ns);
        bconn_done(c, m->type == DDKV_MSG_WRITTEN_AT, false);
        return;
    case B_CAS_READ: {
        const uint8_t *p;
        size_t n;
        char num[24];
        if (m->type != DDKV_MSG_VALUE || msg_bytes(m, 1, &p, &n) != ERR_OK || n == 0 || n >= sizeof num) {
            bconn_done(c, false, false);
            return;
        }
        memcpy(num, p, n);
        num[n] = 0;
        c->counter = strtoull(num, NULL, 10);
        c->op = B_CAS_TXN;
        c->seq++;
        /* Each request of an increment has its own deadline: losing races
         * for longer than --timeout-ms is contention, not an unknown outcome. */
        bconn_arm_deadline(c);
        if (bench_measuring(b, c->due_ns))
            b->cas_attempts++;
        bconn_send(c);
        return;
    }
    case B_CAS_TXN: {
        if (m->type != DDKV_MSG_TXN_RESULT || m->nf < 1) {
            bconn_done(c, false, false);
            return;
        }
        bool swapped = mpo_bool(&m->f[0]);
        if (swapped) {
            bconn_done(c, true, false);
        } else {
            c->op = B_CAS_READ; /* someone else won: read again */
            bconn_arm_deadline(c);
            bconn_send(c);
        }
        return;
    }
    default:
        return;
    }
}

/* The connection may carry operations: resend what was in flight (same
 * session number), or start the next. */
static void bconn_ready(struct bconn *c)
{
    c->up = true;
    if (c->op != B_IDLE)
        bconn_send(c);
    else if (!c->b->stopping)
        bconn_start(c);
}

/* Log the new connection in before its first operation. */
static void bconn_auth(struct bconn *c)
{
    struct bench *b = c->b;
    struct msg_writer w;
    buf_reset(&b->out);
    c->auth_rid = ++c->rid;
    msg_begin(&w, &b->out, DDKV_MSG_AUTH, lamport_tick(&b->clock), c->auth_rid, 2);
    mw_str(&w, b->user);
    mw_str(&w, b->password);
    c->authing = true;
    if (msg_end(&w) != ERR_OK || bufferevent_write(c->bev, b->out.data, b->out.len) != 0)
        bconn_close(c); /* the tick reconnects */
}

static void bconn_authed(struct bconn *c, const struct msg *m)
{
    struct bench *b = c->b;
    c->authing = false;
    if (m->type == DDKV_MSG_AUTHED) {
        bconn_ready(c);
        return;
    }
    uint64_t code = 0;
    const uint8_t *p = NULL;
    size_t n = 0;
    msg_u64(m, 0, &code);
    if (code == DDKV_WERR_UNAVAILABLE) { /* the member is busy checking passwords: try another */
        bconn_connect(c, (c->ep + 1) % b->neps);
        return;
    }
    msg_bytes_opt(m, 1, &p, &n);
    snprintf(b->last_error, sizeof b->last_error, "authenticating as '%s': %.*s", b->user, (int)(n < 100 ? n : 100),
             p ? (const char *)p : "refused");
    b->auth_refused = true;
    event_base_loopexit(b->base, NULL);
}

static void read_cb(struct bufferevent *bev, void *arg)
{
    struct bconn *c = arg;
    struct bench *b = c->b;
    struct evbuffer *in = bufferevent_get_input(bev);
    size_t n = evbuffer_get_length(in);
    if (frame_decoder_feed(&c->dec, evbuffer_pullup(in, (ssize_t)n), n) != ERR_OK) {
        bconn_connect(c, (c->ep + 1) % b->neps);
        return;
    }
    evbuffer_drain(in, n);
    const uint8_t *body;
    size_t len;
    while (c->bev == bev && frame_decoder_next(&c->dec, &body, &len) == ERR_OK) {
        struct msg m;
        struct errbuf eb;
        if (msg_decode(&m, body, len, &msg_limits_reply, &eb) != ERR_OK) {
            bconn_connect(c, (c->ep + 1) % b->neps);
            return;
        }
        lamport_observe(&b->clock, m.lamport, UINT64_MAX / 2);
        if (c->authing && m.request_id == c->auth_rid)
            bconn_authed(c, &m);
        else if (m.request_id == c->rid && c->op != B_IDLE)
            bconn_answer(c, &m);
        msg_free(&m);
    }
}

static void event_cb(struct bufferevent *bev, short what, void *arg)
{
    struct bconn *c = arg;
    struct bench *b = c->b;
    if (what & BEV_EVENT_CONNECTED) {
        int one = 1;
        setsockopt(bufferevent_getfd(bev), IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        c->backoff_ms = 0;
        if (b->user)
            bconn_auth(c);
        else
            bconn_ready(c);
        return;
    }
    /* Broken or refused: the tick reconnects (to the next member) and resends. */
    SSL *ssl = bufferevent_openssl_get_ssl(bev);
    if (ssl && !c->up) {
        unsigned long codes[4];
        size_t n = 0;
        unsigned long e;
        while ((e = bufferevent_get_openssl_error(bev)) != 0)
            if (n < 4)
                codes[n++] = e;
        char why[120];
        /* Before the handshake, a refused or reset connect shows as a bare
         * syscall failure: say what the socket says. */
        tls_error_text(ssl, codes, n, evutil_socket_error_to_string(EVUTIL_SOCKET_ERROR()), why, sizeof why);
        snprintf(b->last_error, sizeof b->last_error, "TLS handshake with %s failed: %s", b->eps[c->ep], why);
    }
    if (c->up) {
        b->reconnects++;
    } else {
        /* Refused: back off, so a cluster that is down is not hammered. */
        c->backoff_ms = c->backoff_ms ? (c->backoff_ms >= 500 ? 1000 : c->backoff_ms * 2) : 50;
        c->retry_ns = clock_mono_ns() + (uint64_t)c->backoff_ms * 1000000u;
    }
    bconn_close(c);
    c->ep = (c->ep + 1) % b->neps;
}

/* Every 50 ms: reconnect idle connections, give up on late operations. */
static void tick_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct bench *b = arg;
    uint64_t now = clock_mono_ns();
    /* No operation succeeded for a whole --timeout-ms (every one refused,
     * timed out or never sent): the cluster is unreachable or has no quorum;
     * stop rather than wait for --ops forever. */
    if (!b->stopping && now - b->progress_ns > (uint64_t)b->timeout_ms * 1000000u) {
        b->stopping = b->gave_up = true;
        for (uint32_t i = 0; i < b->clients; i++)
            if (b->c[i].bev && !b->c[i].up)
                bconn_close(&b->c[i]);
    }
    bench_maybe_stop(b);
    for (uint32_t i = 0; i < b->clients; i++) {
        struct bconn *c = &b->c[i];
        if (c->op != B_IDLE && now >= c->deadline_ns) {
            bconn_close(c); /* whatever it was doing, we stop waiting */
            bconn_done(c, false, c->op != B_READ && c->op != B_CAS_READ);
            continue;
        }
        if (!c->bev && now >= c->retry_ns &&
            (c->op != B_IDLE || (!b->stopping && (!b->prefilling || b->prefill_next < b->keys))))
            bconn_connect(c, c->ep);
    }
}

/* --- the command --- */

static const struct opt_def bench_opts[] = {
    {"workload", 0, OPT_ARG, "write", "NAME", "write | read | mixed | cas (one contended counter)"},
    {"clients", 0, OPT_ARG, "64", "N", "connections, each a client session with one operation in flight"},
    {"ops", 0, OPT_ARG, "0", "N", "stop after N measured operations (0: run --duration-s)"},
    {"duration-s", 0, OPT_ARG, "10", "S", "measure for S seconds (after --warmup-s)"},
    {"warmup-s", 0, OPT_ARG, "1", "S", "run this long before measuring"},
    {"key-size", 0, OPT_ARG, "16", "BYTES", "key length (at least 8)"},
    {"value-size", 0, OPT_ARG, "256", "BYTES", "value length"},
    {"keys", 0, OPT_ARG, "10000", "N", "key space (read and mixed write every key first)"},
    {"consistency", 0, OPT_ARG, "linearizable", "LEVEL", "reads: linearizable | causal | stale"},
    {"read-ratio", 0, OPT_ARG, "0.9", "R", "mixed: share of reads, 0..1"},
    {"rate", 0, OPT_ARG, "0", "OPS", "open loop: this many operations per second in all (0: closed loop)"},
};

static int bench_parse_double(struct opts *o, const char *name, double min, double max, double *out)
{
    const char *s = opts_get(o, name);
    char *end;
    errno = 0;
    double v = strtod(s ? s : "", &end);
    if (!s || !*s || *end || errno || v < min || v > max) {
        out_error("bench: --%s wants a number from %g to %g, not '%s'", name, min, max, s ? s : "");
        return -1;
    }
    *out = v;
    return 0;
}

static void bench_print(struct bench *b, enum out_format fmt, double cpu_s)
{
    double secs = (double)(b->end_ns - b->measure_ns) / 1e9;
    if (secs <= 0)
        secs = 1e-9;
    double ops_s = (double)b->ops / secs;
    double ms[6] = {hist_quantile(&b->lat, 0.50) / 1e6, hist_quantile(&b->lat, 0.90) / 1e6,
                    hist_quantile(&b->lat, 0.99) / 1e6, hist_quantile(&b->lat, 0.999) / 1e6,
                    (double)b->lat.max / 1e6, b->lat.total ? (double)b->lat.sum / (double)b->lat.total / 1e6 : 0};
    double cpu_pct = 100.0 * cpu_s / ((double)(b->end_ns - b->start_ns) / 1e9);
    const char *cons = b->wl == WL_READ || b->wl == WL_MIXED ? consistency_names[b->consistency] : NULL;
    if (fmt == OUT_JSON) {
        json_t *o = json_pack("{s:s, s:s?, s:i, s:f, s:I, s:f, s:{s:f, s:f, s:f, s:f, s:f, s:f}, s:I, s:I, "
                              "s:I, s:I, s:f, s:s?}",
                              "workload", workload_names[b->wl], "consistency", cons, "clients", (int)b->clients,
                              "duration_s", secs, "ops", (json_int_t)b->ops, "ops_per_s", ops_s, "latency_ms",
                              "p50", ms[0], "p90", ms[1], "p99", ms[2], "p99_9", ms[3], "max", ms[4], "mean", ms[5],
                              "errors", (json_int_t)b->errors, "unknown", (json_int_t)b->unknown, "redirects",
                              (json_int_t)b->redirects, "cas_attempts", (json_int_t)b->cas_attempts,
                              "driver_cpu_pct", cpu_pct, "last_error", b->last_error[0] ? b->last_error : NULL);
        if (o)
            out_json_line(o);
        return;
    }
    printf("%s%s%s, %u clients%s, %.1f s: %.0f ops/s (%llu ops)\n", workload_names[b->wl], cons ? " " : "",
           cons ? cons : "", b->clients, b->rate > 0 ? " (open loop)" : "", secs, ops_s,
           (unsigned long long)b->ops);
    printf("latency ms: p50 %.3f  p90 %.3f  p99 %.3f  p99.9 %.3f  max %.3f\n", ms[0], ms[1], ms[2], ms[3], ms[4]);
    printf("errors %llu, unknown outcome %llu, redirects %llu", (unsigned long long)b->errors,
           (unsigned long long)b->unknown, (unsigned long long)b->redirects);
    if (b->wl == WL_CAS)
        printf(", %.2f attempts per increment",
               b->ops ? (double)b->cas_attempts / (double)b->ops : 0.0);
    printf("; driver cpu %.0f%% of one core\n", cpu_pct);
    if (b->last_error[0])
        printf("last error: %s\n", b->last_error);
}

static int bench_run(struct cli_ctx *ctx)
{
    struct opts *o = ctx->opts;
    static struct bench bench;
    struct bench *b = &bench;
    memset(b, 0, sizeof *b);
    int wl = 0, cons = 0;
    uint64_t ops = 0;
    if (opts_get_choice(o, "workload", workload_names, &wl) != 0 ||
        opts_get_choice(o, "consistency", consistency_names, &cons) != 0 ||
        opts_get_u32(o, "clients", 1, BENCH_MAX_CLIENTS, &b->clients) != 0 ||
        opts_get_u64(o, "ops", 0, UINT64_MAX / 2, &ops) != 0 ||
        opts_get_u32(o, "key-size", 8, 100, &b->key_size) != 0 ||
        opts_get_u32(o, "value-size", 0, 1u << 20, &b->value_size) != 0 ||
        opts_get_u32(o, "keys", 1, 100000000, &b->keys) != 0) {
        out_error("bench: %s", o->err);
        return EXIT_USAGE;
    }
    if (bench_parse_double(o, "duration-s", 0.1, 86400, &b->duration_s) ||
        bench_parse_double(o, "warmup-s", 0, 3600, &b->warmup_s) ||
        bench_parse_double(o, "read-ratio", 0, 1, &b->read_ratio) ||
        bench_parse_double(o, "rate", 0, 1e9, &b->rate))
        return EXIT_USAGE;
    b->wl = (enum workload)wl;
    b->consistency = cons;
    b->ops_target = ops;
    if (ops)
        b->duration_s = 86400;
    b->timeout_ms = ctx->client.timeout_ms ? ctx->client.timeout_ms : 5000;
    b->user = ctx->client.user;
    b->password = ctx->client.password;
    char eps[1024];
    snprintf(eps, sizeof eps, "%s", ctx->client.endpoints ? ctx->client.endpoints : "127.0.0.1:7001");
    for (char *save = NULL, *t = strtok_r(eps, ",", &save); t; t = strtok_r(NULL, ",", &save))
        if (bench_add_ep(b, t) < 0) {
            out_error("bench: bad endpoint '%s' (want host:port, at most %d)", t, BENCH_MAX_EPS);
            return EXIT_USAGE;
        }
    if (ctx->client.tls_ca_file) {
        struct errbuf eb;
        if (tls_client_ctx(&b->tls, ctx->client.tls_ca_file, ctx->client.tls_cert_file, ctx->client.tls_key_file,
                           &eb) != ERR_OK) {
            out_error("bench: %s", eb.msg);
            return EXIT_USAGE;
        }
        b->tls_check_name = !ctx->client.tls_skip_name_check;
    }
    /* A node that dies under load must not take the bench with it. */
    signal(SIGPIPE, SIG_IGN);
    if (getrandom(&b->rng, sizeof b->rng, 0) != (ssize_t)sizeof b->rng || !b->rng)
        b->rng = clock_mono_ns() | 1;
    b->value = malloc(b->value_size + 1);
    b->c = calloc(b->clients, sizeof *b->c);
    b->base = event_base_new();
    if (!b->value || !b->c || !b->base) {
        out_error("bench: out of memory");
        return EXIT_UNAVAILABLE;
    }
    for (uint32_t i = 0; i < b->value_size; i++)
        b->value[i] = (uint8_t)('a' + bench_rand(b) % 26);
    hist_init(&b->lat);
    b->prefilling = b->wl != WL_WRITE;
    uint64_t now = clock_mono_ns();
    b->start_ns = b->progress_ns = now;
    b->measure_ns = now + (uint64_t)(b->warmup_s * 1e9);
    b->end_ns = b->measure_ns + (uint64_t)(b->duration_s * 1e9);
    for (uint32_t i = 0; i < b->clients; i++) {
        struct bconn *c = &b->c[i];
        c->b = b;
        c->id = (int)i;
        c->ep = c->home_ep = (int)(i % (uint32_t)b->neps); /* spread; writes follow NOT_LEADER */
        c->client_id = bench_rand(b) | 1;
        frame_decoder_init(&c->dec, DDKV_DEFAULT_MAX_FRAME_BYTES);
        c->wait = evtimer_new(b->base, wait_cb, c);
        bconn_connect(c, c->ep);
    }
    b->tick = event_new(b->base, -1, EV_PERSIST, tick_cb, b);
    struct timeval tv = {0, 50000};
    event_add(b->tick, &tv);
    struct rusage r0, r1;
    getrusage(RUSAGE_SELF, &r0);
    event_base_dispatch(b->base);
    getrusage(RUSAGE_SELF, &r1);
    double cpu = (double)(r1.ru_utime.tv_sec - r0.ru_utime.tv_sec) +
                 (double)(r1.ru_utime.tv_usec - r0.ru_utime.tv_usec) / 1e6 +
                 (double)(r1.ru_stime.tv_sec - r0.ru_stime.tv_sec) +
                 (double)(r1.ru_stime.tv_usec - r0.ru_stime.tv_usec) / 1e6;
    int rc;
    if (b->auth_refused) {
        out_error("bench: %s", b->last_error);
        rc = EXIT_USAGE;
    } else {
        bench_print(b, ctx->fmt, cpu);
        rc = b->ops && !b->gave_up ? EXIT_DONE : EXIT_UNAVAILABLE;
        if (b->gave_up)
            out_error("bench: no operation succeeded for %u ms; stopped%s%s", b->timeout_ms,
                      b->last_error[0] ? ": " : "", b->last_error);
        else if (!b->ops)
            out_error("bench: no operation completed%s%s", b->last_error[0] ? ": " : "", b->last_error);
    }
    for (uint32_t i = 0; i < b->clients; i++) {
        bconn_close(&b->c[i]);
        frame_decoder_free(&b->c[i].dec);
        event_free(b->c[i].wait);
    }
    event_free(b->tick);
    event_base_free(b->base);
    SSL_CTX_free(b->tls);
    buf_free(&b->out);
    free(b->c);
    free(b->value);
    return rc;
}

#define BENCH_OPTS(t) (t), sizeof(t) / sizeof((t)[0])

const struct cli_command cmd_bench_commands[] = {
    {"bench", "", "load a cluster and print ops/s and latency percentiles", BENCH_OPTS(bench_opts), CMD_CLIENT, 0,
     0, NULL, bench_run},
};

const size_t cmd_bench_count = sizeof cmd_bench_commands / sizeof cmd_bench_commands[0];
