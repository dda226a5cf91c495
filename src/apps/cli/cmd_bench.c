/* ddkv bench: a load generator on libevent.
 *
 * One process, one event loop, --clients connections. Each connection is a
 * client session of its own (a client id and a sequence number per write, as
 * libddkv uses them), with one operation in flight: closed loop by default;
 * with --rate, operations are due on a fixed schedule and latency counts from
 * when each was due (so a stall is not hidden by the operations it delayed).
 * Each connection runs libddkv's client core (client/core.h) on this event
 * loop: the same greeting, login, leader-following, per-attempt reply deadline,
 * resends under the session and in-doubt rules as the blocking library; a
 * write still in doubt after --timeout-ms counts as an unknown outcome. With
 * --user a refused login stops the run (exit 2).
 *
 * Workloads: write; read (at --consistency); mixed (--read-ratio of reads);
 * cas (every client increments one counter: a linearizable read, then a
 * transaction that writes the value + 1 if the value is still what was read,
 * retried until it holds; the latency is that of a whole increment);
 * watch (--watchers watches of one fresh prefix, --watches-per-conn to a
 * connection, the connections spread over the members like the writers;
 * once every watch is sent the writers start, each write a new key of the
 * prefix named by its number; for each event: the time from when its write
 * was due to the event's arrival, and from the write's acknowledgement to
 * the event's arrival, 0 if the event came first (what etcd's benchmark
 * watch-latency measures); after the writers stop, the events still owed
 * are waited for up to 3 s, then counted missing).
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

#include "cli/commands.h"
#include "client/core.h"
#include "ddkv/wire.h"
#include "proto/frame.h"
#include "proto/lamport.h"
#include "proto/msg.h"
#include "util/buf.h"
#include "util/clock.h"
#include "util/err.h"
#include "util/evwrite.h"
#include "util/hist.h"
#include "util/net.h"
#include "util/rng.h"
#include "util/tls.h"

enum workload { WL_WRITE, WL_READ, WL_MIXED, WL_CAS, WL_WATCH };
static const char *const workload_names[] = {"write", "read", "mixed", "cas", "watch", NULL};
static const char *const consistency_names[] = {"linearizable", "causal", "stale", NULL};
static const char *const onoff_names[] = {"off", "on", NULL};

#define BENCH_MAX_CLIENTS 4096
#define BENCH_COUNTER "bench/counter"
#define BENCH_MAX_WATCHERS 100000u
/* Writes of the watch workload remembered by number (mod this): when due,
 * when acknowledged. Events come within seconds; 2^20 writes is minutes. */
#define WRING (1u << 20)

enum bstate { B_IDLE, B_READ, B_WRITE, B_CAS_READ, B_CAS_TXN, B_WATCH_GREET, B_WATCHING };

struct bench;

/* One connection: a client core of its own (client/core.h: endpoints, leader
 * hints, the session, login and the retry rules), driven here on libevent. */
struct bconn {
    struct bench *b;
    int id;
    size_t home_ep;         /* where it started (reads return there after the prefill) */
    struct cc cc;
    struct cc_call k;       /* the request in flight (while op != B_IDLE) */
    enum cc_do act;         /* what the core waits for */
    struct cc_field f[5];
    struct ddkv_compare cmp;
    struct ddkv_op put;
    char key[128], have[24], next[24];
    struct bufferevent *bev;
    struct frame_decoder dec;
    enum bstate op;         /* what is in flight */
    bool prefill;           /* the operation belongs to the prefill phase */
    uint64_t due_ns;        /* when the operation was due: latency counts from here */
    uint32_t key_no;
    uint64_t wseq;          /* watch workload: the write's number */
    uint32_t nwatch;        /* a watch connection: the watches it carries */
    uint64_t counter;       /* cas: the value read */
    uint64_t seen;          /* Lamport time of the newest data this session saw (causal reads) */
    struct event *wait;     /* open loop: the next operation is not due yet */
    struct event *nap;      /* the core's backoff */
};

struct bench {
    struct event_base *base;
    struct event *tick;
    enum workload wl;
    int consistency;
    uint32_t clients, keys, key_size, value_size;
    uint64_t ops_target;     /* 0: run for duration */
    double duration_s, warmup_s, rate, read_ratio;
    uint32_t timeout_ms, connect_timeout_ms;
    const char *endpoints;
    size_t neps;             /* given */
    SSL_CTX *tls;            /* NULL: plain TCP */
    bool tls_check_name;
    struct bconn *c;
    uint8_t *value;
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
    /* The watch workload: b->c[clients .. clients + nwc) are the watch
     * connections, after the writers. */
    uint32_t nconns;             /* writers and watch connections */
    uint32_t watchers, per_conn, nwc;
    uint32_t armed;              /* watch connections whose WATCHes are sent */
    bool arming;                 /* the writers wait for every watch */
    char wprefix[32];
    size_t wplen;
    uint64_t wseq;               /* the next write's number */
    uint64_t *w_due, *w_ack, *w_tag; /* by number % WRING; w_tag: the number held there */
    uint8_t *w_meas;             /* that write is measured */
    struct hist elat, alat;      /* due -> event; acknowledged -> event */
    uint64_t ev_expected, ev_got, ev_other, watch_lost, drain_end_ns;
    uint64_t exit_ns;            /* the loop's end (after the watch drain) */
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

static void bconn_start(struct bconn *c);
static void bconn_drive(struct bconn *c, enum cc_do d);
static void watch_arm(struct bconn *c);

static bool bench_measuring(struct bench *b, uint64_t now)
{
    return !b->prefilling && !b->arming && now >= b->measure_ns;
}

/* Past the end, no operation starts; the run ends when every one in flight
 * has settled (so what the cluster applied is what was counted), or after
 * the operation timeout. */
static void bench_maybe_stop(struct bench *b)
{
    uint64_t now = clock_mono_ns();
    /* The clock starts when the prefill is done, however long it took. */
    if (!b->stopping && !b->prefilling && !b->arming &&
        ((b->ops_target && b->ops >= b->ops_target) || (!b->ops_target && now >= b->end_ns)))
        b->stopping = true;
    if (!b->stopping)
        return;
    bool idle = true;
    for (uint32_t i = 0; i < b->clients && idle; i++)
        idle = b->c[i].op == B_IDLE;
    if (!idle)
        return;
    if (b->wl == WL_WATCH && !b->gave_up) {
        /* The writers are done: wait (a bounded while) for the events owed. */
        if (!b->drain_end_ns) {
            b->end_ns = now;
            b->drain_end_ns = now + 3000000000u;
        }
        if (b->ev_got < b->ev_expected && now < b->drain_end_ns)
            return;
    } else {
        b->end_ns = now;
    }
    b->exit_ns = now;
    event_base_loopexit(b->base, NULL);
}

static void bconn_close(struct bconn *c)
{
    if (c->bev)
        bufferevent_free(c->bev);
    c->bev = NULL;
    cc_lost(&c->cc);
    frame_decoder_free(&c->dec);
    frame_decoder_init(&c->dec, DDKV_DEFAULT_MAX_FRAME_BYTES);
}

/* Open loop: the time between one client's operations. */
static uint64_t bench_interval_ns(const struct bench *b)
{
    return (uint64_t)(1e9 * b->clients / b->rate);
}

/* Open loop: arm the wait for c's next operation if it is not due at now.
 * Returns true if it waits. */
static bool bconn_wait_due(struct bconn *c, uint64_t now)
{
    if (c->due_ns <= now)
        return false;
    uint64_t d = c->due_ns - now;
    /* Rounded up to the timer's microseconds: never early by the rounding. */
    d += 999;
    struct timeval tv = {(time_t)(d / 1000000000u), (suseconds_t)(d % 1000000000u / 1000)};
    evtimer_add(c->wait, &tv);
    return true;
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
            if (b->wl == WL_READ && x->cc.cur != x->home_ep) {
                bconn_close(x); /* the prefill writes took it to the leader */
                x->cc.cur = x->home_ep;
            }
            bconn_start(x);
        }
        return;
    }
    if (b->prefilling && b->prefill_next >= b->keys + (b->wl == WL_CAS))
        return; /* wait for the others' prefill writes */
    if (b->rate > 0 && !prefill) {
        /* Open loop: the next one is due a fixed interval after this one was. */
        c->due_ns += bench_interval_ns(b);
        if (bconn_wait_due(c, now))
            return;
    } else {
        c->due_ns = 0;
    }
    bconn_start(c);
}

static void wait_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct bconn *c = arg;
    /* libevent times a timer from the loop's cached clock, which can be a
     * little behind: it may fire before the operation is due. Not sent early
     * (and its latency, counted from when it was due, never negative). */
    if (c->b->rate > 0 && bconn_wait_due(c, clock_mono_ns()))
        return;
    bconn_start(c);
}

/* Describe the operation c->op to the core and start it. Writes take the
 * session's next sequence number, kept across the core's resends. */
static void bconn_request(struct bconn *c)
{
    struct bench *b = c->b;
    bool counter = b->wl == WL_CAS && (c->op == B_CAS_READ || c->op == B_CAS_TXN ||
                                       (c->prefill && c->key_no == b->keys));
    if (counter)
        snprintf(c->key, sizeof c->key, "%s", BENCH_COUNTER);
    else if (b->wl == WL_WATCH)
        snprintf(c->key, sizeof c->key, "%s%010llu", b->wprefix, (unsigned long long)c->wseq);
    else
        bench_key(b, c->key_no, c->key);
    size_t kl = strlen(c->key);
    memset(&c->k, 0, sizeof c->k);
    c->k.f = c->f;
    switch (c->op) {
    case B_READ:
    case B_CAS_READ:
    case B_WATCH_GREET: /* a stale read: the connection greeted (and logged in) by the core */
        c->f[0] = (struct cc_field){.kind = CC_BIN, .p = c->key, .n = kl};
        c->f[1] = (struct cc_field){.kind = CC_U64,
                                    .u = c->op == B_CAS_READ      ? DDKV_CONSISTENCY_LINEARIZABLE
                                         : c->op == B_WATCH_GREET ? DDKV_CONSISTENCY_STALE
                                                                  : (uint64_t)b->consistency};
        c->f[2] = (struct cc_field){.kind = CC_U64, .u = c->seen};
        c->k.type = DDKV_MSG_READ;
        c->k.reply_type = DDKV_MSG_VALUE;
        c->k.nf = 3;
        break;
    case B_WRITE:
        c->f[0] = (struct cc_field){.kind = CC_BIN, .p = c->key, .n = kl};
        c->f[1] = counter ? (struct cc_field){.kind = CC_BIN, .p = "0", .n = 1}
                          : (struct cc_field){.kind = CC_BIN, .p = b->value, .n = b->value_size};
        c->f[2] = (struct cc_field){.kind = CC_U64, .u = 0};
        c->f[3] = (struct cc_field){.kind = CC_U64, .u = c->cc.client_id};
        c->f[4] = (struct cc_field){.kind = CC_U64, .u = ++c->cc.seq};
        c->k.type = DDKV_MSG_WRITE;
        c->k.reply_type = DDKV_MSG_WRITTEN_AT;
        c->k.mutates = true;
        c->k.nf = 5;
        break;
    case B_CAS_TXN: {
        int hl = snprintf(c->have, sizeof c->have, "%llu", (unsigned long long)c->counter);
        int nl = snprintf(c->next, sizeof c->next, "%llu", (unsigned long long)c->counter + 1);
        c->cmp = (struct ddkv_compare){.key = c->key, .key_len = kl, .field = DDKV_CMP_VALUE, .cmp = DDKV_CMP_EQ,
                                       .value = c->have, .value_len = (size_t)hl};
        c->put = (struct ddkv_op){.kind = DDKV_OP_PUT, .key = c->key, .key_len = kl, .value = c->next,
                                  .value_len = (size_t)nl};
        c->f[0] = (struct cc_field){.kind = CC_CMPS, .p = &c->cmp, .n = 1};
        c->f[1] = (struct cc_field){.kind = CC_OPS, .p = &c->put, .n = 1};
        c->f[2] = (struct cc_field){.kind = CC_OPS, .p = NULL, .n = 0};
        c->f[3] = (struct cc_field){.kind = CC_U64, .u = c->cc.client_id};
        c->f[4] = (struct cc_field){.kind = CC_U64, .u = ++c->cc.seq};
        c->k.type = DDKV_MSG_TXN;
        c->k.reply_type = DDKV_MSG_TXN_RESULT;
        c->k.mutates = true;
        c->k.nf = 5;
        break;
    }
    default:
        return;
    }
    bconn_drive(c, cc_start(&c->cc, &c->k, clock_mono_ms()));
}

/* Pick the next operation and start it. */
static void bconn_start(struct bconn *c)
{
    struct bench *b = c->b;
    if (b->stopping)
        return;
    uint64_t now = clock_mono_ns();
    if (!c->due_ns || b->rate <= 0) {
        c->due_ns = now;
        if (b->rate > 0 && !b->prefilling) {
            /* Open loop, the first operation: the clients' schedules spread
             * evenly over one interval, not all due at the same instants. */
            c->due_ns = now + bench_interval_ns(b) * (uint64_t)(c - b->c) / b->clients;
            if (bconn_wait_due(c, now))
                return;
        }
    }
    if (b->prefilling) {
        if (b->prefill_next >= b->keys + (b->wl == WL_CAS))
            return;
        c->prefill = true;
        c->key_no = b->prefill_next++;
        c->op = B_WRITE;
    } else {
        switch (b->wl) {
        case WL_WRITE: c->op = B_WRITE; break;
        case WL_READ: c->op = B_READ; break;
        case WL_MIXED:
            c->op = (double)(bench_rand(b) % 1000000) < b->read_ratio * 1e6 ? B_READ : B_WRITE;
            break;
        case WL_CAS: c->op = B_CAS_READ; break;
        case WL_WATCH: {
            c->op = B_WRITE;
            c->wseq = b->wseq++;
            uint32_t i = (uint32_t)(c->wseq % WRING);
            b->w_tag[i] = c->wseq;
            b->w_due[i] = c->due_ns;
            b->w_ack[i] = 0;
            b->w_meas[i] = bench_measuring(b, c->due_ns);
            break;
        }
        }
        c->key_no = (uint32_t)(bench_rand(b) % b->keys);
    }
    bconn_request(c);
}

static void read_cb(struct bufferevent *bev, void *arg);
static void event_cb(struct bufferevent *bev, short what, void *arg);

/* A TLS client bufferevent for endpoint e (the handshake runs once the
 * connect completes), or NULL. */
static struct bufferevent *bench_tls_bev(struct bench *b, const struct cc_endpoint *e)
{
    SSL *ssl = SSL_new(b->tls);
    if (!ssl || (b->tls_check_name && tls_expect_host(ssl, e->host) != ERR_OK)) {
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

/* Start connecting to the core's current endpoint: 0, or -1 (errmsg set). */
static int bconn_connect(struct bconn *c)
{
    struct bench *b = c->b;
    bconn_close(c);
    const struct cc_endpoint *e = &c->cc.eps[c->cc.cur];
    struct sockaddr_storage ss;
    socklen_t len;
    if (net_parse_addr(e->text, &ss, &len) != ERR_OK) {
        cc_fail(&c->cc, DDKV_ERR_UNAVAILABLE, "%s: not a numeric host:port", e->text);
        return -1;
    }
    c->bev = b->tls ? bench_tls_bev(b, e) : bufferevent_socket_new(b->base, -1, BEV_OPT_CLOSE_ON_FREE);
    if (!c->bev) {
        cc_fail(&c->cc, DDKV_ERR_NOMEM, "out of memory for a connection");
        return -1;
    }
    bufferevent_setcb(c->bev, read_cb, NULL, event_cb, c);
    bufferevent_enable(c->bev, EV_READ | EV_WRITE);
    if (bufferevent_socket_connect(c->bev, (struct sockaddr *)&ss, (int)len) != 0) {
        bconn_close(c);
        cc_fail(&c->cc, DDKV_ERR_UNAVAILABLE, "connect %s failed", e->text);
        return -1;
    }
    return 0;
}

/* A watch connection is greeted: send its WATCHes (from now on, the prefix);
 * when every connection has, the writers start and the clock with them. */
static void watch_arm(struct bconn *c)
{
    struct bench *b = c->b;
    struct cc_field f[2] = {{.kind = CC_BIN, .p = b->wprefix, .n = b->wplen}, {.kind = CC_U64, .u = 0}};
    for (uint32_t j = 0; j < c->nwatch; j++) {
        struct cc_call k = {.type = DDKV_MSG_WATCH, .reply_type = DDKV_MSG_EVENT, .f = f, .nf = 2};
        if (cc_encode(&c->cc, &k) != ERR_OK || bufferevent_write(c->bev, c->cc.out.data, c->cc.out.len) != 0) {
            snprintf(b->last_error, sizeof b->last_error, "out of memory sending WATCH");
            b->stopping = b->gave_up = true;
            event_base_loopexit(b->base, NULL);
            return;
        }
    }
    c->op = B_WATCHING;
    if (++b->armed < b->nwc)
        return;
    b->arming = false;
    uint64_t now = clock_mono_ns();
    b->start_ns = b->progress_ns = now;
    b->measure_ns = now + (uint64_t)(b->warmup_s * 1e9);
    b->end_ns = b->measure_ns + (uint64_t)(b->duration_s * 1e9);
    for (uint32_t i = 0; i < b->clients; i++)
        bconn_start(&b->c[i]);
}

/* A frame on a watch connection: an EVENT of one of the writes, or an ERROR
 * (a refused or cut-off watch). */
static void watch_frame(struct bconn *c, const uint8_t *body, size_t len)
{
    struct bench *b = c->b;
    uint64_t now = clock_mono_ns();
    struct msg m;
    if (cc_decode(&c->cc, body, len, &m) != ERR_OK) {
        b->ev_other++;
        return;
    }
    const uint8_t *kp;
    size_t kn;
    if (m.type == DDKV_MSG_EVENT && msg_bytes(&m, 1, &kp, &kn) == ERR_OK && kn == b->wplen + 10 &&
        memcmp(kp, b->wprefix, b->wplen) == 0) {
        uint64_t seq = 0;
        for (size_t i = b->wplen; i < kn; i++)
            seq = seq * 10 + (uint64_t)(kp[i] - '0');
        uint32_t i = (uint32_t)(seq % WRING);
        if (b->w_tag[i] == seq && b->w_meas[i]) {
            b->ev_got++;
            hist_record(&b->elat, now > b->w_due[i] ? now - b->w_due[i] : 0);
            hist_record(&b->alat, b->w_ack[i] && now > b->w_ack[i] ? now - b->w_ack[i] : 0);
        }
    } else if (m.type == DDKV_MSG_ERROR) {
        const uint8_t *t;
        size_t tn;
        if (msg_bytes(&m, 1, &t, &tn) != ERR_OK)
            tn = 0;
        snprintf(b->last_error, sizeof b->last_error, "a watch on %s ended: %.*s", cc_cur_text(&c->cc),
                 (int)(tn > 100 ? 100 : tn), tn ? (const char *)t : "");
        b->watch_lost++;
    } else if (m.type != DDKV_MSG_EVENT) {
        b->ev_other++;
    }
    msg_free(&m);
    if (b->stopping && b->ev_got >= b->ev_expected)
        bench_maybe_stop(b);
}

/* The core settled the request: count it, or go on with the increment. */
static void bconn_settled(struct bconn *c)
{
    struct bench *b = c->b;
    struct cc_call *k = &c->k;
    if (k->err != DDKV_OK) {
        if (k->ended_in == CC_P_LOGIN &&
            (k->err == DDKV_ERR_PERMISSION_DENIED || k->err == DDKV_ERR_BAD_REQUEST)) {
            snprintf(b->last_error, sizeof b->last_error, "%.150s", c->cc.errmsg);
            b->auth_refused = true;
            event_base_loopexit(b->base, NULL);
            return;
        }
        if (k->err == DDKV_ERR_NOT_FOUND && c->op == B_READ) {
            bconn_done(c, true, false);
            return;
        }
        if (k->err == DDKV_ERR_NOT_FOUND && c->op == B_WATCH_GREET) {
            watch_arm(c);
            return;
        }
        if (c->op == B_WATCH_GREET) {
            snprintf(b->last_error, sizeof b->last_error, "watch connection: %.130s", c->cc.errmsg);
            b->stopping = b->gave_up = true;
            event_base_loopexit(b->base, NULL);
            return;
        }
        snprintf(b->last_error, sizeof b->last_error, "%.150s", c->cc.errmsg);
        bconn_done(c, false, k->err == DDKV_ERR_UNKNOWN_OUTCOME);
        return;
    }
    struct msg *m = &k->reply;
    /* The data's Lamport time: what a causal read of this session must see. */
    uint64_t lt = 0;
    uint32_t at = m->type == DDKV_MSG_VALUE ? 5 : m->type == DDKV_MSG_TXN_RESULT ? 1 : 0;
    if (msg_u64(m, at, &lt) == ERR_OK && lt > c->seen && lt < DDKV_LAMPORT_MAX)
        c->seen = lt;
    switch (c->op) {
    case B_READ:
        b->reads += !c->prefill && bench_measuring(b, c->due_ns);
        msg_free(m);
        bconn_done(c, true, false);
        return;
    case B_WRITE:
        b->writes += !c->prefill && bench_measuring(b, c->due_ns);
        msg_free(m);
        if (b->wl == WL_WATCH) {
            uint32_t i = (uint32_t)(c->wseq % WRING);
            if (b->w_tag[i] == c->wseq) {
                b->w_ack[i] = clock_mono_ns();
                if (b->w_meas[i])
                    b->ev_expected += b->watchers;
            }
        }
        bconn_done(c, true, false);
        return;
    case B_WATCH_GREET:
        msg_free(m);
        watch_arm(c);
        return;
    case B_CAS_READ: {
        const uint8_t *p;
        size_t n;
        char num[24];
        if (msg_bytes(m, 1, &p, &n) != ERR_OK || n == 0 || n >= sizeof num) {
            msg_free(m);
            bconn_done(c, false, false);
            return;
        }
        memcpy(num, p, n);
        num[n] = 0;
        msg_free(m);
        c->counter = strtoull(num, NULL, 10);
        c->op = B_CAS_TXN;
        /* Each request of an increment has its own deadline: losing races
         * for longer than --timeout-ms is contention, not an unknown outcome. */
        if (bench_measuring(b, c->due_ns))
            b->cas_attempts++;
        bconn_request(c);
        return;
    }
    case B_CAS_TXN: {
        bool swapped = m->nf >= 1 && mpo_bool(&m->f[0]);
        msg_free(m);
        if (swapped) {
            bconn_done(c, true, false);
        } else {
            c->op = B_CAS_READ; /* someone else won: read again */
            bconn_request(c);
        }
        return;
    }
    default:
        msg_free(m);
        return;
    }
}

static void nap_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct bconn *c = arg;
    if (c->act == CC_DO_SLEEP && c->op != B_IDLE)
        bconn_drive(c, cc_woke(&c->cc, &c->k, clock_mono_ms()));
}

/* Do what the core asks until it waits for the network or the clock. */
static void bconn_drive(struct bconn *c, enum cc_do d)
{
    for (;;) {
        c->act = d;
        if (!c->cc.up && c->bev && d != CC_DO_CONNECT)
            bconn_close(c); /* the core gave up on this connection */
        switch (d) {
        case CC_DO_DONE:
            bconn_settled(c);
            return;
        case CC_DO_SLEEP: {
            uint64_t now = clock_mono_ms(), ms = c->k.until_ms > now ? c->k.until_ms - now : 0;
            struct timeval tv = {(time_t)(ms / 1000), (suseconds_t)(ms % 1000 * 1000)};
            evtimer_add(c->nap, &tv);
            return;
        }
        case CC_DO_CONNECT:
            if (bconn_connect(c) == 0)
                return; /* event_cb reports */
            d = cc_connect_failed(&c->cc, &c->k, clock_mono_ms());
            continue;
        case CC_DO_SEND:
            /* Handed to libevent, not yet to the kernel: taken as sent, so a
             * write whose connection breaks now is resent under its session. */
            if (bufferevent_write(c->bev, c->cc.out.data, c->cc.out.len) != 0) {
                cc_fail(&c->cc, DDKV_ERR_NOMEM, "out of memory sending to %s", cc_cur_text(&c->cc));
                d = cc_failed(&c->cc, &c->k, CC_IO_BROKEN, clock_mono_ms());
                continue;
            }
            /* Sent now rather than when the loop next polls (util/evwrite.h):
             * the core sends only on a connected socket. */
            if (!c->b->tls && evwrite_now(c->bev) > 0)
                evwrite_idle(c->bev);
            d = cc_sent(&c->cc, &c->k, clock_mono_ms());
            continue;
        case CC_DO_RECV:
            return; /* read_cb reports */
        }
    }
}

static void read_cb(struct bufferevent *bev, void *arg)
{
    struct bconn *c = arg;
    struct evbuffer *in = bufferevent_get_input(bev);
    size_t n = evbuffer_get_length(in);
    int rc = frame_decoder_feed(&c->dec, evbuffer_pullup(in, (ssize_t)n), n);
    evbuffer_drain(in, n);
    if (rc != ERR_OK) {
        cc_fail(&c->cc, DDKV_ERR_PROTOCOL, "%s sent a frame the bench cannot read", cc_cur_text(&c->cc));
        if (c->op == B_WATCHING) {
            c->b->watch_lost += c->nwatch;
            c->op = B_IDLE;
            bconn_close(c);
        } else if (c->act == CC_DO_RECV && c->op != B_IDLE)
            bconn_drive(c, cc_failed(&c->cc, &c->k, CC_IO_GARBLED, clock_mono_ms()));
        else
            bconn_close(c);
        return;
    }
    const uint8_t *body;
    size_t len;
    while (c->bev == bev && frame_decoder_next(&c->dec, &body, &len) == ERR_OK) {
        if (c->op == B_WATCHING) {
            watch_frame(c, body, len);
            continue;
        }
        if (c->act != CC_DO_RECV || c->op == B_IDLE)
            continue; /* nothing asked: a stale answer */
        enum cc_do d = cc_frame(&c->cc, &c->k, body, len, clock_mono_ms());
        if (d != CC_DO_RECV)
            bconn_drive(c, d);
    }
}

static void event_cb(struct bufferevent *bev, short what, void *arg)
{
    struct bconn *c = arg;
    struct bench *b = c->b;
    if (what & BEV_EVENT_CONNECTED) {
        int one = 1;
        setsockopt(bufferevent_getfd(bev), IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        if (c->act == CC_DO_CONNECT && c->op != B_IDLE)
            bconn_drive(c, cc_connected(&c->cc, &c->k, clock_mono_ms()));
        return;
    }
    if (c->op == B_WATCHING) {
        /* Not followed elsewhere: the events it owed count as missing. */
        snprintf(b->last_error, sizeof b->last_error, "watch connection to %s lost", cc_cur_text(&c->cc));
        b->watch_lost += c->nwatch;
        c->op = B_IDLE;
        bconn_close(c);
        return;
    }
    bool connecting = c->act == CC_DO_CONNECT;
    SSL *ssl = bufferevent_openssl_get_ssl(bev);
    if (ssl && connecting) {
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
        snprintf(b->last_error, sizeof b->last_error, "TLS handshake with %s failed: %s", cc_cur_text(&c->cc), why);
        cc_fail(&c->cc, DDKV_ERR_UNAVAILABLE, "%s", b->last_error);
    } else {
        cc_fail(&c->cc, DDKV_ERR_UNAVAILABLE, "%s %s", connecting ? "connect" : "connection to",
                cc_cur_text(&c->cc));
    }
    if (!connecting)
        b->reconnects++;
    bconn_close(c);
    if (c->op == B_IDLE)
        return; /* the next operation reconnects */
    if (connecting)
        bconn_drive(c, cc_connect_failed(&c->cc, &c->k, clock_mono_ms()));
    else if (c->act == CC_DO_RECV)
        bconn_drive(c, cc_failed(&c->cc, &c->k, CC_IO_BROKEN, clock_mono_ms()));
}

/* Every 50 ms: stop a run that makes no progress; end waits the core bounded
 * (a connect or a reply past its time). */
static void tick_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct bench *b = arg;
    uint64_t now = clock_mono_ns(), now_ms = clock_mono_ms();
    /* No operation succeeded for a whole --timeout-ms (every one refused,
     * timed out or never sent): the cluster is unreachable or has no quorum;
     * stop rather than wait for --ops forever. */
    if (!b->stopping && now - b->progress_ns > (uint64_t)b->timeout_ms * 1000000u)
        b->stopping = b->gave_up = true;
    for (uint32_t i = 0; i < b->nconns; i++) {
        struct bconn *c = &b->c[i];
        if (c->op == B_IDLE || c->op == B_WATCHING || now_ms < c->k.until_ms)
            continue;
        if (c->act == CC_DO_CONNECT) {
            cc_fail(&c->cc, DDKV_ERR_UNAVAILABLE, "connect %s: timed out", cc_cur_text(&c->cc));
            bconn_close(c);
            bconn_drive(c, cc_connect_failed(&c->cc, &c->k, now_ms));
        } else if (c->act == CC_DO_RECV) {
            cc_no_reply(&c->cc, &c->k); /* until_ms is the attempt's deadline: the core resends */
            bconn_drive(c, cc_failed(&c->cc, &c->k, CC_IO_TIMEOUT, now_ms));
        }
    }
    bench_maybe_stop(b);
}

/* --- the command --- */

static const struct opt_def bench_opts[] = {
    {"workload", 0, OPT_ARG, "write", "NAME",
     "write | read | mixed | cas (one contended counter) | watch (event delivery to --watchers)"},
    {"clients", 0, OPT_ARG, "64", "N", "connections, each a client session with one operation in flight"},
    {"ops", 0, OPT_ARG, "0", "N", "stop after N measured operations (0: run --duration-s)"},
    {"duration-s", 0, OPT_ARG, "10", "S", "measure for S seconds (after --warmup-s)"},
    {"warmup-s", 0, OPT_ARG, "1", "S", "run this long before measuring"},
    {"key-size", 0, OPT_ARG, "16", "BYTES", "key length (at least 8)"},
    {"value-size", 0, OPT_ARG, "256", "BYTES", "value length"},
    {"keys", 0, OPT_ARG, "10000", "N", "key space (read and mixed write every key first)"},
    {"prefill", 0, OPT_ARG, "on", "on|off", "read and mixed: write every key first (off: they exist already)"},
    {"consistency", 0, OPT_ARG, "linearizable", "LEVEL", "reads: linearizable | causal | stale"},
    {"read-ratio", 0, OPT_ARG, "0.9", "R", "mixed: share of reads, 0..1"},
    {"rate", 0, OPT_ARG, "0", "OPS", "open loop: this many operations per second in all (0: closed loop)"},
    {"watchers", 0, OPT_ARG, "100", "N", "watch: watches of the writes' prefix"},
    {"watches-per-conn", 0, OPT_ARG, "100", "N", "watch: watches one connection carries (at most 1024)"},
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
    /* Over the whole loop: the watch drain after the writers is work too. */
    uint64_t ran_ns = (b->exit_ns > b->end_ns ? b->exit_ns : b->end_ns) - b->start_ns;
    double cpu_pct = 100.0 * cpu_s / ((double)(ran_ns ? ran_ns : 1) / 1e9);
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
        if (o && b->wl == WL_WATCH) {
            json_t *w = json_pack("{s:i, s:i, s:I, s:I, s:I, s:I, s:I, s:f}", "watchers", (int)b->watchers,
                                  "connections", (int)b->nwc, "events", (json_int_t)b->ev_got, "events_expected",
                                  (json_int_t)b->ev_expected, "events_missing",
                                  (json_int_t)(b->ev_expected > b->ev_got ? b->ev_expected - b->ev_got : 0),
                                  "watches_lost", (json_int_t)b->watch_lost, "other_frames", (json_int_t)b->ev_other,
                                  "events_per_s", (double)b->ev_got / secs);
            const struct hist *hs[2] = {&b->elat, &b->alat};
            const char *names[2] = {"event_latency_ms", "ack_to_event_ms"};
            for (int i = 0; w && i < 2; i++)
                json_object_set_new(w, names[i],
                                    json_pack("{s:f, s:f, s:f, s:f, s:f}", "p50", hist_quantile(hs[i], 0.5) / 1e6,
                                              "p90", hist_quantile(hs[i], 0.9) / 1e6, "p99",
                                              hist_quantile(hs[i], 0.99) / 1e6, "p99_9",
                                              hist_quantile(hs[i], 0.999) / 1e6, "max", (double)hs[i]->max / 1e6));
            if (w)
                json_object_set_new(o, "watch", w);
        }
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
    if (b->wl == WL_WATCH) {
        printf("watch: %u watches on %u connections: %llu events of %llu owed (%.0f/s), %llu watches lost\n",
               b->watchers, b->nwc, (unsigned long long)b->ev_got, (unsigned long long)b->ev_expected,
               (double)b->ev_got / secs, (unsigned long long)b->watch_lost);
        printf("event latency ms (write due to event): p50 %.3f  p99 %.3f  p99.9 %.3f  max %.3f\n",
               hist_quantile(&b->elat, 0.5) / 1e6, hist_quantile(&b->elat, 0.99) / 1e6,
               hist_quantile(&b->elat, 0.999) / 1e6, (double)b->elat.max / 1e6);
        printf("ack to event ms (0 when the event came first): p50 %.3f  p99 %.3f  max %.3f\n",
               hist_quantile(&b->alat, 0.5) / 1e6, hist_quantile(&b->alat, 0.99) / 1e6,
               (double)b->alat.max / 1e6);
    }
    if (b->last_error[0])
        printf("last error: %s\n", b->last_error);
}

/* The watch workload's connections and the record of its writes. False:
 * out of memory. */
static bool watch_setup(struct bench *b)
{
    b->nwc = (b->watchers + b->per_conn - 1) / b->per_conn;
    b->nconns += b->nwc;
    b->wplen = (size_t)snprintf(b->wprefix, sizeof b->wprefix, "bench/w/%08llx/",
                                (unsigned long long)(bench_rand(b) & 0xffffffffu));
    b->w_due = calloc(WRING, sizeof *b->w_due);
    b->w_ack = calloc(WRING, sizeof *b->w_ack);
    b->w_tag = malloc(WRING * sizeof *b->w_tag);
    b->w_meas = calloc(WRING, 1);
    if (b->w_tag)
        memset(b->w_tag, 0xff, WRING * sizeof *b->w_tag); /* no write has a number yet */
    b->arming = true;
    return b->w_due && b->w_ack && b->w_tag && b->w_meas;
}

/* Everything bench_run made. */
static void bench_free(struct bench *b)
{
    for (uint32_t i = 0; i < b->nconns; i++) {
        struct bconn *c = &b->c[i];
        bconn_close(c);
        frame_decoder_free(&c->dec);
        if (c->op != B_IDLE && c->k.phase == CC_P_DONE && c->k.err == DDKV_OK)
            msg_free(&c->k.reply);
        cc_free(&c->cc);
        if (c->wait)
            event_free(c->wait);
        if (c->nap)
            event_free(c->nap);
    }
    event_free(b->tick);
    event_base_free(b->base);
    SSL_CTX_free(b->tls);
    free(b->c);
    free(b->value);
    free(b->w_due);
    free(b->w_ack);
    free(b->w_tag);
    free(b->w_meas);
}

static int bench_run(struct cli_ctx *ctx)
{
    struct opts *o = ctx->opts;
    static struct bench bench;
    struct bench *b = &bench;
    memset(b, 0, sizeof *b);
    int wl = 0, cons = 0, prefill = 1;
    uint64_t ops = 0;
    if (opts_get_choice(o, "workload", workload_names, &wl) != 0 ||
        opts_get_choice(o, "prefill", onoff_names, &prefill) != 0 ||
        opts_get_choice(o, "consistency", consistency_names, &cons) != 0 ||
        opts_get_u32(o, "clients", 1, BENCH_MAX_CLIENTS, &b->clients) != 0 ||
        opts_get_u64(o, "ops", 0, UINT64_MAX / 2, &ops) != 0 ||
        opts_get_u32(o, "key-size", 8, 100, &b->key_size) != 0 ||
        opts_get_u32(o, "value-size", 0, 1u << 20, &b->value_size) != 0 ||
        opts_get_u32(o, "keys", 1, 100000000, &b->keys) != 0 ||
        opts_get_u32(o, "watchers", 1, BENCH_MAX_WATCHERS, &b->watchers) != 0 ||
        opts_get_u32(o, "watches-per-conn", 1, 1024, &b->per_conn) != 0) {
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
    b->connect_timeout_ms = ctx->client.connect_timeout_ms;
    b->endpoints = ctx->client.endpoints ? ctx->client.endpoints : "127.0.0.1:7001";
    {
        /* The endpoints as every connection's core will read them. */
        struct cc probe;
        char why[200];
        ddkv_err erc = cc_init(&probe, b->endpoints, 1, b->timeout_ms, b->connect_timeout_ms, why, sizeof why);
        b->neps = probe.n_eps;
        cc_free(&probe);
        if (erc != DDKV_OK) {
            out_error("bench: %s", why);
            return EXIT_USAGE;
        }
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
    b->nconns = b->clients;
    bool watch_ok = b->wl != WL_WATCH || watch_setup(b);
    b->c = calloc(b->nconns, sizeof *b->c);
    b->base = evbase_new();
    if (!b->value || !b->c || !b->base || !watch_ok) {
        out_error("bench: out of memory");
        return EXIT_UNAVAILABLE;
    }
    for (uint32_t i = 0; i < b->value_size; i++)
        b->value[i] = (uint8_t)('a' + bench_rand(b) % 26);
    hist_init(&b->lat);
    hist_init(&b->elat);
    hist_init(&b->alat);
    b->prefilling = b->wl != WL_WRITE && (prefill || b->wl == WL_CAS);
    uint64_t now = clock_mono_ns();
    b->start_ns = b->progress_ns = now;
    b->measure_ns = now + (uint64_t)(b->warmup_s * 1e9);
    b->end_ns = b->measure_ns + (uint64_t)(b->duration_s * 1e9);
    for (uint32_t i = 0; i < b->nconns; i++) {
        struct bconn *c = &b->c[i];
        c->b = b;
        c->id = (int)i;
        char why[200];
        if (cc_init(&c->cc, b->endpoints, bench_rand(b) | 1, b->timeout_ms, b->connect_timeout_ms, why,
                    sizeof why) != DDKV_OK ||
            (b->user && cc_set_credentials(&c->cc, b->user, b->password, why, sizeof why) != DDKV_OK)) {
            out_error("bench: %s", why);
            return EXIT_USAGE;
        }
        c->cc.cur = c->home_ep = i % b->neps; /* spread; writes follow NOT_LEADER */
        if (i >= b->clients) { /* a watch connection */
            c->cc.cur = c->home_ep = (i - b->clients) % b->neps;
            uint32_t j = i - b->clients;
            c->nwatch = j + 1 < b->nwc ? b->per_conn : b->watchers - j * b->per_conn;
        }
        frame_decoder_init(&c->dec, DDKV_DEFAULT_MAX_FRAME_BYTES);
        c->wait = evtimer_new(b->base, wait_cb, c);
        c->nap = evtimer_new(b->base, nap_cb, c);
    }
    if (b->wl == WL_WATCH) {
        for (uint32_t i = b->clients; i < b->nconns; i++) { /* the writers start once these are armed */
            b->c[i].op = B_WATCH_GREET;
            bconn_request(&b->c[i]);
        }
    } else {
        for (uint32_t i = 0; i < b->clients; i++)
            bconn_start(&b->c[i]);
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
    for (uint32_t i = 0; i < b->clients; i++)
        b->redirects += b->c[i].cc.redirects_total;
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
    bench_free(b);
    return rc;
}

#define BENCH_OPTS(t) (t), sizeof(t) / sizeof((t)[0])

const struct cli_command cmd_bench_commands[] = {
    {"bench", "", "load a cluster and print ops/s and latency percentiles", BENCH_OPTS(bench_opts), CMD_CLIENT, 0,
     0, NULL, bench_run},
};

const size_t cmd_bench_count = sizeof cmd_bench_commands / sizeof cmd_bench_commands[0];
