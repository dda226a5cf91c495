/* Owns the peer connections: dialling, hellos, priority send queues, backoff, Raft frame intake. */
#include "node/peer.h"

#include <errno.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <event2/listener.h>
#include <event2/util.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>
#include <openssl/ssl.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "ddkv/wire.h"
#include "node/evframe.h"
#include "util/evwrite.h"
#include "proto/frame.h"
#include "proto/msg.h"
#include "proto/version.h"
#include "util/buf.h"
#include "util/clock.h"
#include "util/log.h"
#include "util/net.h"
#include "util/rng.h"
#include "util/tls.h"

/* An AppendEntries may carry up to 65536 entries of 4 objects each
 * (raft_msg.c); the request limits of the client port are far too small. */
static const struct mpcheck_limits peer_msg_limits = {.max_depth = 8, .max_objects = 1u << 19};

/* Bytes fed to one inbound connection's decoder per read callback, so one busy
 * peer cannot starve the others within a loop turn. */
#define PEER_READ_CHUNK (256u << 10)
/* An accepted connection must send its hello, and a started frame must finish,
 * within this; an idle connection between frames has no deadline. */
#define PEER_IN_TIMEOUT_S 30
/* A dial that has not connected, or a connection that has not taken a byte of
 * pending output, within this is cut and redialled: covers black-holed peers. */
#define PEER_WRITE_TIMEOUT_S 10
/* Accepted connections at once; beyond it new ones are closed at once. */
#define PEER_MAX_INBOUND 256u
/* The acceptor's challenge is small; a bigger answer to a hello is garbage. */
#define PEER_CHALLENGE_MAX 1024u
/* Handshake frames are flat arrays of a few fields. */
static const struct mpcheck_limits peer_hs_limits = {.max_depth = 2, .max_objects = 32};

/* One encoded frame (header included) waiting for the socket. */
struct peer_frame {
    struct peer_frame *next;
    size_t len;
    uint8_t data[];
};

struct peer_queue {
    struct peer_frame *head, *tail;
    size_t bytes;
};

enum peer_state {
    PEER_IDLE,        /* no connection and no retry pending: the next send dials */
    PEER_BACKOFF,     /* waiting for the retry timer */
    PEER_CONNECTING,  /* dial in progress */
    PEER_HANDSHAKE,   /* hello written, waiting for the acceptor's challenge (token only) */
    PEER_CONNECTED,   /* hello written (and proven), frames flowing */
};

/* An outbound target. */
struct peer {
    struct peer_transport *t;
    uint64_t id;
    char addr[128];
    struct sockaddr_storage ss;
    socklen_t sslen;
    enum peer_state state;
    struct bufferevent *bev;   /* while CONNECTING or CONNECTED */
    struct event *retry;       /* backoff timer */
    uint32_t backoff_ms;       /* the next delay's upper bound */
    uint64_t up_since_ms;      /* when the current connection was established */
    bool probe;                /* lost while up: dial again even with nothing to say */
    bool tls_started;          /* TCP connected, TLS handshake running (bev is the filter) */
    uint8_t nonce[DDKV_PEER_NONCE_BYTES]; /* this connection's hello nonce (token only) */
    struct frame_decoder dec;  /* the acceptor's challenge, while PEER_HANDSHAKE */
    struct peer_queue hi, lo;
    struct peer_stats stats;
    struct peer *next;
};

/* An accepted connection (receive only). */
struct peer_in {
    struct peer_transport *t;
    struct bufferevent *bev;
    struct frame_decoder dec;
    uint64_t from;             /* the hello's id; 0 until the hello arrived (and was proven) */
    uint64_t claimed;          /* with a token: the id a hello claims, until its proof */
    struct peer_hello hello;   /* that hello, acted on once proven */
    uint64_t hello_lamport;
    uint8_t nonce_d[DDKV_PEER_NONCE_BYTES], nonce_a[DDKV_PEER_NONCE_BYTES];
    bool closing;              /* closed inside its own read loop: free after it */
    bool tls_pending;          /* TLS handshake not completed */
    char cert_cn[TLS_CN_MAX + 1]; /* the verified client certificate's common name */
    char addr[64];
    struct peer_in *prev, *next;
};

struct peer_transport {
    struct event_base *base;
    struct peer_config cfg;
    struct lamport *clock;
    peer_deliver_fn deliver;
    peer_hello_fn hello;
    peer_refused_fn refused;
    void *ud;
    struct evconnlistener *listener;
    struct event *accept_retry;
    struct peer *peers;
    struct peer_in *ins;
    uint32_t nins;
    uint64_t rng;              /* xorshift64 state for backoff jitter */
    struct buf scratch;        /* encoding */
    struct peer_stats tot;
    const char *token;         /* cfg.token, NULL when none or empty */
    uint64_t refuse_log_ms;    /* last refused hello logged (at most one a second) */
    uint64_t refuse_quiet;     /* refusals not logged since */
};

/* Bump a counter in the totals and, when known, in the peer's own stats. */
#define PEER_COUNT(t, p, field)          \
    do {                                 \
        (t)->tot.field++;                \
        if (p)                           \
            (p)->stats.field++;          \
    } while (0)

static void peer_connect(struct peer *p);
static void peer_pump(struct peer *p);

void peer_config_defaults(struct peer_config *cfg)
{
    memset(cfg, 0, sizeof *cfg);
    cfg->max_frame_bytes = DDKV_DEFAULT_MAX_FRAME_BYTES;
    cfg->queue_bytes_max = 16u << 20;
    cfg->reconnect_min_ms = 50;
    cfg->reconnect_max_ms = 2000;
}

static struct peer *peer_find(const struct peer_transport *t, uint64_t id)
{
    for (struct peer *p = t->peers; p; p = p->next)
        if (p->id == id)
            return p;
    return NULL;
}

static uint64_t peer_rand(struct peer_transport *t)
{
    return rng_next(&t->rng);
}

/* --- queues --- */

static void peer_queue_push(struct peer_queue *q, struct peer_frame *f)
{
    f->next = NULL;
    if (q->tail)
        q->tail->next = f;
    else
        q->head = f;
    q->tail = f;
    q->bytes += f->len;
}

static struct peer_frame *peer_queue_pop(struct peer_queue *q)
{
    struct peer_frame *f = q->head;
    if (f) {
        q->head = f->next;
        if (!q->head)
            q->tail = NULL;
        q->bytes -= f->len;
    }
    return f;
}

static uint64_t peer_queue_clear(struct peer_queue *q)
{
    uint64_t n = 0;
    struct peer_frame *f;
    while ((f = peer_queue_pop(q))) {
        free(f);
        n++;
    }
    return n;
}

/* --- outbound --- */

static void peer_frame_cleanup(const void *data, size_t len, void *extra)
{
    (void)data;
    (void)len;
    free(extra);
}

static void peer_close(struct peer *p, const char *why)
{
    if (!p->bev)
        return;
    if (p->state == PEER_CONNECTED) {
        PEER_COUNT(p->t, p, disconnects);
        log_info("peer %llu at %s: connection lost (%s)", (unsigned long long)p->id, p->addr, why);
    } else if (p->tls_started) {
        /* Once per attempt, and attempts follow the backoff. */
        log_warn("peer %llu at %s: TLS handshake failed: %s", (unsigned long long)p->id, p->addr, why);
    } else if (p->state == PEER_HANDSHAKE) {
        log_warn("peer %llu at %s: hello not accepted: %s (does it have the same --cluster-token?)",
                 (unsigned long long)p->id, p->addr, why);
    } else {
        log_debug("peer %llu at %s: connect failed (%s)", (unsigned long long)p->id, p->addr, why);
    }
    bufferevent_free(p->bev);
    p->bev = NULL;
    p->tls_started = false;
    p->state = PEER_IDLE;
    frame_decoder_free(&p->dec);
    frame_decoder_init(&p->dec, PEER_CHALLENGE_MAX);
}

/* Close and arm the retry timer. A connection that stayed up PEER_STABLE_MS
 * starts the backoff over; any other failure doubles it. The delay is drawn
 * from [backoff/2, backoff] so that nodes restarted together do not redial in
 * lockstep. */
static void peer_fail(struct peer *p, const char *why)
{
    struct peer_transport *t = p->t;
    bool was_up = p->state == PEER_CONNECTED;
    uint64_t now = clock_mono_ms();
    p->probe = was_up;
    peer_close(p, why);
    if (was_up && now - p->up_since_ms >= PEER_STABLE_MS)
        p->backoff_ms = t->cfg.reconnect_min_ms;
    uint32_t b = p->backoff_ms;
    uint32_t delay = b / 2 + (uint32_t)(peer_rand(t) % (b - b / 2 + 1));
    uint64_t next = (uint64_t)b * 2;
    p->backoff_ms = next > t->cfg.reconnect_max_ms ? t->cfg.reconnect_max_ms : (uint32_t)next;
    struct timeval tv = {(time_t)(delay / 1000), (suseconds_t)(delay % 1000) * 1000};
    evtimer_add(p->retry, &tv);
    p->state = PEER_BACKOFF;
}

static void peer_retry_cb(evutil_socket_t fd, short what, void *arg)
{
    struct peer *p = arg;
    (void)fd;
    (void)what;
    ASSERT(p->state == PEER_BACKOFF);
    p->state = PEER_IDLE;
    /* Lazy: dial again only if there is something to say, or to learn
     * whether a peer whose connection broke is still there. */
    if (p->hi.head || p->lo.head || p->probe) {
        p->probe = false;
        peer_connect(p);
    }
}

/* Move queued frames into the socket's output buffer: every high-priority frame
 * while it holds less than PEER_OUT_HIGH, then snapshot frames only while it
 * holds less than PEER_SNAP_WATERMARK, so a heartbeat queued later never waits
 * behind a pile of snapshot bytes. The write callback calls this again whenever
 * the buffer drains below PEER_SNAP_WATERMARK. References, not copies: the
 * evbuffer frees each frame once written. */
static void peer_pump(struct peer *p)
{
    if (p->state != PEER_CONNECTED)
        return;
    struct evbuffer *out = bufferevent_get_output(p->bev);
    for (;;) {
        size_t have = evbuffer_get_length(out);
        struct peer_queue *q;
        if (p->hi.head && have < PEER_OUT_HIGH)
            q = &p->hi;
        else if (!p->hi.head && p->lo.head && have < PEER_SNAP_WATERMARK)
            q = &p->lo;
        else
            return;
        struct peer_frame *f = peer_queue_pop(q);
        if (evbuffer_add_reference(out, f->data, f->len, peer_frame_cleanup, f) != 0) {
            free(f);
            peer_fail(p, "out of memory");
            return;
        }
        PEER_COUNT(p->t, p, sent);
    }
}

static void peer_handshake_answer(struct peer *p, const uint8_t *body, size_t len);

static void peer_out_read_cb(struct bufferevent *bev, void *arg)
{
    /* The acceptor writes on our outbound connection only its challenge
     * (with a token); otherwise reading only serves to notice its close, and
     * anything that arrives is discarded. */
    struct peer *p = arg;
    struct evbuffer *in = bufferevent_get_input(bev);
    while (p->state == PEER_HANDSHAKE && evbuffer_get_length(in) > 0) {
        uint8_t chunk[512];
        int got = evbuffer_remove(in, chunk, sizeof chunk);
        if (got <= 0)
            break;
        if (frame_decoder_feed(&p->dec, chunk, (size_t)got) != ERR_OK) {
            peer_fail(p, "oversized answer to the hello");
            return;
        }
        const uint8_t *body;
        size_t len;
        if (frame_decoder_next(&p->dec, &body, &len) == ERR_OK) {
            peer_handshake_answer(p, body, len); /* may fail p: bev is gone then */
            return;
        }
    }
    if (p->state != PEER_HANDSHAKE)
        evbuffer_drain(in, evbuffer_get_length(in));
}

static void peer_out_write_cb(struct bufferevent *bev, void *arg)
{
    (void)bev;
    peer_pump(arg);
}

static int peer_write_hello(struct peer *p)
{
    struct peer_transport *t = p->t;
    struct msg_writer w;
    buf_reset(&t->scratch);
    if (t->token && RAND_bytes(p->nonce, sizeof p->nonce) != 1)
        return ERR_IO;
    msg_begin(&w, &t->scratch, DDKV_MSG_PEER_HELLO, lamport_tick(t->clock), 0, 9);
    mw_u64(&w, t->cfg.cluster_id);
    mw_u64(&w, t->cfg.self_id);
    mw_u64(&w, DDKV_PROTOCOL_VERSION);
    mw_str(&w, t->cfg.self_name);
    mw_str(&w, t->cfg.self_client_addr);
    mw_str(&w, t->cfg.self_peer_addr);
    if (t->token)
        mw_bin(&w, p->nonce, sizeof p->nonce);
    else
        mw_nil(&w);
    mw_u64(&w, t->cfg.self_incarnation);
    mw_u64(&w, DDKV_RELEASE_VERSION);
    int rc = msg_end(&w);
    if (rc == ERR_OK &&
        bufferevent_write(p->bev, t->scratch.data + w.start, t->scratch.len - w.start) != 0)
        rc = ERR_NOMEM;
    return rc;
}

static void peer_out_event_cb(struct bufferevent *bev, short what, void *arg);

/* A read deadline while the challenge is awaited; afterwards only what the
 * connection had: a write deadline on a plain socket, none on a TLS filter
 * (its socket underneath times stalled output). */
static void peer_handshake_timeouts(struct peer *p, bool awaiting)
{
    struct timeval tv = {PEER_WRITE_TIMEOUT_S, 0};
    bool tls = bufferevent_get_underlying(p->bev) != NULL;
    bufferevent_set_timeouts(p->bev, awaiting ? &tv : NULL, tls ? NULL : &tv);
}

/* The connection is usable for Raft: count it and move queued frames. */
static void peer_up(struct peer *p)
{
    p->state = PEER_CONNECTED;
    p->up_since_ms = clock_mono_ms();
    PEER_COUNT(p->t, p, connects);
    log_info("peer %llu at %s: connected%s", (unsigned long long)p->id, p->addr,
             p->t->token ? " (cluster token proven both ways)" : "");
    peer_pump(p);
}

void peer_auth_mac(const char *token, char role, uint64_t cluster_id, uint64_t dialer_id,
                   uint64_t acceptor_id, const uint8_t nonce_d[DDKV_PEER_NONCE_BYTES],
                   const uint8_t nonce_a[DDKV_PEER_NONCE_BYTES], uint8_t out[DDKV_PEER_MAC_BYTES])
{
    static const char label[] = "ddkv peer auth v1";
    uint8_t in[sizeof label - 1 + 1 + 24 + 2 * DDKV_PEER_NONCE_BYTES];
    size_t k = sizeof label - 1;
    memcpy(in, label, k);
    in[k++] = (uint8_t)role;
    put_be64(in + k, cluster_id);
    put_be64(in + k + 8, dialer_id);
    put_be64(in + k + 16, acceptor_id);
    k += 24;
    memcpy(in + k, nonce_d, DDKV_PEER_NONCE_BYTES);
    memcpy(in + k + DDKV_PEER_NONCE_BYTES, nonce_a, DDKV_PEER_NONCE_BYTES);
    k += 2 * DDKV_PEER_NONCE_BYTES;
    unsigned int len = 0;
    /* HMAC fails only without memory; a tag no one can match is then the
     * safe result (every comparison fails), so fill one from fresh random. */
    if (!HMAC(EVP_sha256(), token, (int)strlen(token), in, k, out, &len) || len != DDKV_PEER_MAC_BYTES) {
        if (RAND_bytes(out, DDKV_PEER_MAC_BYTES) != 1)
            ASSERT(!"no randomness for a peer handshake");
    }
}

/* The dialer's side of the proof: the acceptor's challenge must name the
 * member dialled and carry a tag only the token makes; then our own tag. */
static void peer_handshake_answer(struct peer *p, const uint8_t *body, size_t len)
{
    struct peer_transport *t = p->t;
    struct msg m;
    struct errbuf eb;
    uint64_t aid = 0;
    const uint8_t *na = NULL, *mac = NULL;
    size_t nal = 0, macl = 0;
    if (msg_decode(&m, body, len, &peer_hs_limits, &eb) != ERR_OK) {
        peer_fail(p, "undecodable answer to the hello");
        return;
    }
    const char *why = NULL;
    if (m.type != DDKV_MSG_PEER_CHALLENGE || msg_u64(&m, 0, &aid) || msg_bytes(&m, 1, &na, &nal) ||
        msg_bytes(&m, 2, &mac, &macl) || nal != DDKV_PEER_NONCE_BYTES || macl != DDKV_PEER_MAC_BYTES)
        why = "its answer to the hello is not a challenge";
    else if (aid != p->id)
        why = "it answered as another member than the one dialled";
    uint8_t want[DDKV_PEER_MAC_BYTES], nonce_a[DDKV_PEER_NONCE_BYTES];
    if (!why) {
        memcpy(nonce_a, na, sizeof nonce_a);
        peer_auth_mac(t->token, 'A', t->cfg.cluster_id, t->cfg.self_id, p->id, p->nonce, nonce_a, want);
        if (CRYPTO_memcmp(want, mac, sizeof want) != 0)
            why = "its proof of the cluster token is wrong";
    }
    uint64_t lamport = m.lamport;
    msg_free(&m);
    if (why) {
        peer_fail(p, why);
        return;
    }
    (void)lamport_observe_member(t->clock, lamport, clock_mono_ms());
    uint8_t tag[DDKV_PEER_MAC_BYTES];
    peer_auth_mac(t->token, 'D', t->cfg.cluster_id, t->cfg.self_id, p->id, p->nonce, nonce_a, tag);
    struct msg_writer w;
    buf_reset(&t->scratch);
    msg_begin(&w, &t->scratch, DDKV_MSG_PEER_AUTH, lamport_tick(t->clock), 0, 1);
    mw_bin(&w, tag, sizeof tag);
    if (msg_end(&w) != ERR_OK ||
        bufferevent_write(p->bev, t->scratch.data + w.start, t->scratch.len - w.start) != 0) {
        peer_fail(p, "out of memory");
        return;
    }
    peer_handshake_timeouts(p, false);
    peer_up(p);
}

/* TCP is up: run the TLS handshake in a filter over the socket's bufferevent.
 * The socket keeps at most PEER_SNAP_WATERMARK encrypted bytes; the rest of
 * the output waits as frames in the filter, where peer_pump measures it. */
static int peer_tls_start(struct peer *p)
{
    SSL *ssl = SSL_new(p->t->cfg.tls);
    struct bufferevent *f =
        ssl ? bufferevent_openssl_filter_new(p->t->base, p->bev, ssl, BUFFEREVENT_SSL_CONNECTING,
                                             BEV_OPT_CLOSE_ON_FREE)
            : NULL;
    if (!f) {
        SSL_free(ssl);
        return ERR_NOMEM;
    }
    bufferevent_setwatermark(p->bev, EV_WRITE, 0, PEER_SNAP_WATERMARK);
    p->bev = f; /* frees the socket's bufferevent with it */
    p->tls_started = true;
    bufferevent_openssl_set_allow_dirty_shutdown(f, 1);
    bufferevent_setcb(f, peer_out_read_cb, peer_out_write_cb, peer_out_event_cb, p);
    bufferevent_setwatermark(f, EV_WRITE, PEER_SNAP_WATERMARK, 0);
    struct timeval tv = {PEER_WRITE_TIMEOUT_S, 0};
    bufferevent_set_timeouts(f, &tv, &tv); /* the handshake, both ways */
    bufferevent_enable(f, EV_READ | EV_WRITE);
    return ERR_OK;
}

/* OpenSSL's reason for the failure of p's TLS connection. */
static void peer_tls_error(struct bufferevent *bev, char *out, size_t cap)
{
    unsigned long codes[8];
    size_t n = 0;
    unsigned long e;
    while ((e = bufferevent_get_openssl_error(bev)) != 0)
        if (n < sizeof codes / sizeof codes[0])
            codes[n++] = e;
    tls_error_text(bufferevent_openssl_get_ssl(bev), codes, n,
                   "closed by the other side (does it trust this node's certificate?)", out, cap);
}

/* The dialled member's certificate must name it; 0 or a reason to refuse. */
static int peer_tls_check_server(struct peer *p, char *why, size_t cap)
{
    char cn[TLS_CN_MAX + 1];
    SSL *ssl = bufferevent_openssl_get_ssl(p->bev);
    if (!ssl || tls_peer_cn(ssl, cn, sizeof cn) == 0) {
        snprintf(why, cap, "its certificate has no usable common name");
        return -1;
    }
    if (p->t->cfg.id_of_name && p->t->cfg.id_of_name(cn) != p->id) {
        snprintf(why, cap, "its certificate is for '%s', not the member dialled", cn);
        return -1;
    }
    return 0;
}

static void peer_out_event_cb(struct bufferevent *bev, short what, void *arg)
{
    struct peer *p = arg;
    if ((what & BEV_EVENT_CONNECTED) && p->t->cfg.tls && !p->tls_started) {
        if (peer_tls_start(p) != ERR_OK)
            peer_fail(p, "out of memory");
        return;
    }
    if (what & BEV_EVENT_CONNECTED) {
        char why[160];
        if (p->tls_started && peer_tls_check_server(p, why, sizeof why) != 0) {
            peer_fail(p, why);
            return;
        }
        if (p->tls_started) {
            /* Handshake done. Stalled output is timed by the socket's
             * bufferevent underneath (armed while it holds bytes): the
             * filter's own write timer would be re-armed by every write and
             * fire on a connection that is merely idle. */
            bufferevent_set_timeouts(bev, NULL, NULL);
            p->tls_started = false;
        }
        int one = 1;
        setsockopt(bufferevent_getfd(bev), IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        if (peer_write_hello(p) != ERR_OK) {
            peer_fail(p, "out of memory");
            return;
        }
        if (p->t->token) {
            /* Nothing but the challenge may come now, and it must come. */
            p->state = PEER_HANDSHAKE;
            peer_handshake_timeouts(p, true);
            return;
        }
        peer_up(p);
        return;
    }
    if (what & BEV_EVENT_TIMEOUT)
        peer_fail(p, p->state == PEER_CONNECTED ? "write stalled"
                     : p->state == PEER_HANDSHAKE ? "no answer to the hello"
                     : p->tls_started          ? "TLS handshake timed out"
                                               : "connect timed out");
    else if ((what & (BEV_EVENT_EOF | BEV_EVENT_ERROR)) && bufferevent_openssl_get_ssl(bev)) {
        /* A TLS error: a certificate refused by either side, or garbage. */
        char why[200];
        peer_tls_error(bev, why, sizeof why);
        peer_fail(p, what & BEV_EVENT_EOF && p->state == PEER_CONNECTED ? "peer closed" : why);
    } else if (what & BEV_EVENT_EOF)
        peer_fail(p, "peer closed");
    else if (what & BEV_EVENT_ERROR) {
        int err = EVUTIL_SOCKET_ERROR();
        bool refused = p->state == PEER_CONNECTING && err == ECONNREFUSED;
        uint64_t id = p->id;
        struct peer_transport *t = p->t;
        peer_fail(p, evutil_socket_error_to_string(err));
        if (refused && t->refused)
            t->refused(t->ud, id); /* last: it may act on the transport */
    }
}

static void peer_connect(struct peer *p)
{
    ASSERT(p->state == PEER_IDLE && p->bev == NULL);
    struct bufferevent *bev = bufferevent_socket_new(p->t->base, -1, BEV_OPT_CLOSE_ON_FREE);
    if (!bev) {
        log_error("peer %llu: out of memory dialling", (unsigned long long)p->id);
        p->state = PEER_CONNECTING; /* so peer_fail arms the timer the same way */
        peer_fail(p, "out of memory");
        return;
    }
    p->bev = bev;
    p->state = PEER_CONNECTING;
    bufferevent_setcb(bev, peer_out_read_cb, peer_out_write_cb, peer_out_event_cb, p);
    bufferevent_setwatermark(bev, EV_WRITE, PEER_SNAP_WATERMARK, 0);
    /* The write timeout covers the connect itself and, later, a peer that stops
     * taking bytes (SIGSTOP, black hole): both end in a redial. */
    struct timeval wt = {PEER_WRITE_TIMEOUT_S, 0};
    bufferevent_set_timeouts(bev, NULL, &wt);
    bufferevent_enable(bev, EV_READ | EV_WRITE);
    /* An immediate refusal is reported through the event callback on a later
     * turn; -1 here means the socket could not even be created. */
    if (bufferevent_socket_connect(bev, (struct sockaddr *)&p->ss, (int)p->sslen) != 0)
        peer_fail(p, evutil_socket_error_to_string(EVUTIL_SOCKET_ERROR()));
}

int peer_add(struct peer_transport *t, uint64_t id, const char *addr)
{
    if (id == 0 || id == t->cfg.self_id || !addr || strlen(addr) >= sizeof ((struct peer *)0)->addr)
        return ERR_BAD_INPUT;
    if (peer_find(t, id))
        return ERR_EXISTS;
    struct peer *p = calloc(1, sizeof *p);
    if (!p)
        return ERR_NOMEM;
    if (net_parse_addr(addr, &p->ss, &p->sslen) != ERR_OK) {
        free(p);
        return ERR_BAD_INPUT;
    }
    p->retry = evtimer_new(t->base, peer_retry_cb, p);
    if (!p->retry) {
        free(p);
        return ERR_NOMEM;
    }
    p->t = t;
    p->id = id;
    frame_decoder_init(&p->dec, PEER_CHALLENGE_MAX);
    snprintf(p->addr, sizeof p->addr, "%s", addr);
    p->state = PEER_IDLE;
    p->backoff_ms = t->cfg.reconnect_min_ms;
    p->next = t->peers;
    t->peers = p;
    return ERR_OK;
}

static void peer_destroy(struct peer *p)
{
    if (p->bev) {
        bufferevent_free(p->bev);
        p->bev = NULL;
    }
    event_free(p->retry);
    peer_queue_clear(&p->hi);
    peer_queue_clear(&p->lo);
    frame_decoder_free(&p->dec);
    free(p);
}

void peer_remove(struct peer_transport *t, uint64_t id)
{
    for (struct peer **pp = &t->peers; *pp; pp = &(*pp)->next) {
        struct peer *p = *pp;
        if (p->id != id)
            continue;
        *pp = p->next;
        t->tot.dropped += peer_queue_clear(&p->hi) + peer_queue_clear(&p->lo);
        peer_destroy(p);
        return;
    }
}

int peer_send(struct peer_transport *t, const struct raft_msg *m)
{
    ASSERT(m->from == t->cfg.self_id);
    struct peer *p = peer_find(t, m->to);
    if (!p)
        return ERR_NOT_FOUND;
    buf_reset(&t->scratch);
    int rc = raft_msg_encode(m, lamport_tick(t->clock), &t->scratch);
    if (rc != ERR_OK)
        return rc;
    size_t len = t->scratch.len;
    if (p->hi.bytes + p->lo.bytes + len > t->cfg.queue_bytes_max) {
        PEER_COUNT(t, p, dropped);
        return ERR_AGAIN;
    }
    struct peer_frame *f = malloc(sizeof *f + len);
    if (!f)
        return ERR_NOMEM;
    f->len = len;
    memcpy(f->data, t->scratch.data, len);
    peer_queue_push(m->type == RAFT_MSG_SNAP ? &p->lo : &p->hi, f);
    if (p->state == PEER_IDLE)
        peer_connect(p);
    else
        peer_pump(p);
    return ERR_OK;
}

/* --- inbound --- */

static void peer_in_free(struct peer_in *c)
{
    struct peer_transport *t = c->t;
    if (c->prev)
        c->prev->next = c->next;
    else
        t->ins = c->next;
    if (c->next)
        c->next->prev = c->prev;
    t->nins--;
    bufferevent_free(c->bev);
    frame_decoder_free(&c->dec);
    free(c);
}

/* Close an inbound connection. Inside its own read loop only mark it, so the
 * loop does not touch freed memory; the loop frees it on the way out. */
static void peer_in_close(struct peer_in *c, bool in_read_loop, const char *why)
{
    log_debug("peer conn from %s (id %llu) closed (%s)", c->addr, (unsigned long long)c->from, why);
    if (in_read_loop)
        c->closing = true;
    else
        peer_in_free(c);
}

/* Bad input: count it, say so once, close this connection only. */
static void peer_in_bad(struct peer_in *c, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void peer_in_bad(struct peer_in *c, const char *fmt, ...)
{
    struct peer_transport *t = c->t;
    PEER_COUNT(t, c->from ? peer_find(t, c->from) : NULL, bad_frames);
    char text[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(text, sizeof text, fmt, ap);
    va_end(ap);
    log_warn("peer conn from %s (id %llu): %s; closing", c->addr, (unsigned long long)c->from, text);
    peer_in_close(c, true, "bad frame");
}

/* Refuse a hello: count it, log it (at most once a second, so a flood of
 * impostors cannot flood the log), close this connection only. */
static void peer_in_refuse(struct peer_in *c, uint64_t from, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void peer_in_refuse(struct peer_in *c, uint64_t from, const char *fmt, ...)
{
    struct peer_transport *t = c->t;
    PEER_COUNT(t, peer_find(t, from), refused_hellos);
    uint64_t now = clock_mono_ms();
    if (t->refuse_log_ms && now - t->refuse_log_ms < 1000) {
        t->refuse_quiet++;
    } else {
        char text[320];
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(text, sizeof text, fmt, ap);
        va_end(ap);
        log_error("peer conn from %s: refusing hello of node %llx: %s%s", c->addr, (unsigned long long)from,
                  text, t->refuse_quiet ? " (and more refused hellos, not logged)" : "");
        t->refuse_log_ms = now;
        t->refuse_quiet = 0;
    }
    peer_in_close(c, true, "hello refused");
}

/* The hello is accepted (proven, with a token): only now does it count. */
static void peer_in_accept(struct peer_in *c)
{
    struct peer_transport *t = c->t;
    uint64_t from = c->hello.from;
    /* The node may still refuse it (a member whose data dir is not the one
     * the cluster knows): then nothing of the hello counts. */
    if (t->hello && !t->hello(t->ud, &c->hello)) {
        PEER_COUNT(t, peer_find(t, from), refused_hellos);
        peer_in_close(c, true, "hello refused by the node");
        return;
    }
    (void)lamport_observe_member(t->clock, c->hello_lamport, clock_mono_ms());
    c->from = from;
    c->claimed = 0;
    if (t->cfg.cluster_id == 0) {
        log_info("joining cluster %016llx (first hello, from node %llx)", (unsigned long long)c->hello.cluster_id,
                 (unsigned long long)from);
        t->cfg.cluster_id = c->hello.cluster_id;
    }
    /* A dialer keeps one connection to us; a new hello from the same id means
     * any older one from it is dead (its FIN may never come). */
    for (struct peer_in *o = t->ins, *next; o; o = next) {
        next = o->next;
        if (o != c && o->from == from && !o->closing)
            peer_in_close(o, false, "superseded by a new connection");
    }
    log_info("peer conn from %s: node %llu%s", c->addr, (unsigned long long)from,
             t->token ? " (cluster token proven)" : "");
}

static void peer_in_hello(struct peer_in *c, const struct msg *m)
{
    struct peer_transport *t = c->t;
    uint64_t cluster, from, version;
    if (m->type != DDKV_MSG_PEER_HELLO || msg_u64(m, 0, &cluster) || msg_u64(m, 1, &from) ||
        msg_u64(m, 2, &version)) {
        peer_in_bad(c, "first frame is %s, not a valid hello", msg_type_name(m->type));
        return;
    }
    if ((cluster != t->cfg.cluster_id && t->cfg.cluster_id != 0) || cluster == 0 ||
        version != DDKV_PROTOCOL_VERSION) {
        peer_in_refuse(c, from,
                       "cluster id %016llx, protocol %llu (this node %llx: cluster id %016llx, protocol %u): "
                       "a member of another cluster; check --cluster and --cluster-token",
                       (unsigned long long)cluster, (unsigned long long)version,
                       (unsigned long long)t->cfg.self_id, (unsigned long long)t->cfg.cluster_id,
                       DDKV_PROTOCOL_VERSION);
        return;
    }
    if (from == 0 || from == t->cfg.self_id) {
        peer_in_bad(c, "hello with invalid node id %llu", (unsigned long long)from);
        return;
    }
    if (t->cfg.tls && t->cfg.id_of_name && t->cfg.id_of_name(c->cert_cn) != from) {
        peer_in_refuse(c, from, "its certificate is for '%s' (node %llu)", c->cert_cn,
                       (unsigned long long)t->cfg.id_of_name(c->cert_cn));
        return;
    }
    /* Optional strings: older dialers send three fields. */
    c->hello = (struct peer_hello){.cluster_id = cluster, .from = from};
    c->hello_lamport = m->lamport;
    char *dst[3] = {c->hello.name, c->hello.client_addr, c->hello.peer_addr};
    for (uint32_t i = 0; i < 3; i++) {
        const uint8_t *p = NULL;
        size_t l = 0;
        if (msg_bytes_opt(m, 3 + i, &p, &l) == ERR_OK && l > 0 && l < sizeof c->hello.name && !memchr(p, 0, l))
            memcpy(dst[i], p, l);
    }
    if (msg_u64_opt(m, 7, 0, &c->hello.incarnation) != ERR_OK) {
        peer_in_bad(c, "hello with a malformed incarnation");
        return;
    }
    /* No release version: a 0.1.0 member (it sends eight fields). */
    if (msg_u64_opt(m, 8, DDKV_VERSION_0_1_0, &c->hello.version) != ERR_OK || !version_valid(c->hello.version)) {
        peer_in_bad(c, "hello with a malformed release version");
        return;
    }
    const uint8_t *nd = NULL;
    size_t ndl = 0;
    bool has_nonce = msg_bytes_opt(m, 6, &nd, &ndl) == ERR_OK && ndl > 0;
    if (!t->token) {
        if (has_nonce) {
            peer_in_refuse(c, from, "it proves a cluster token and this node has none: give every member "
                                    "the same --cluster-token");
            return;
        }
        peer_in_accept(c);
        return;
    }
    if (!has_nonce || ndl != DDKV_PEER_NONCE_BYTES) {
        peer_in_refuse(c, from, "it carries no proof of the cluster token, which this node requires: "
                                "give every member the same --cluster-token");
        return;
    }
    /* Challenge: our nonce and our tag; the dialer's tag must come next. */
    memcpy(c->nonce_d, nd, sizeof c->nonce_d);
    if (RAND_bytes(c->nonce_a, sizeof c->nonce_a) != 1) {
        peer_in_close(c, true, "no randomness");
        return;
    }
    uint8_t tag[DDKV_PEER_MAC_BYTES];
    peer_auth_mac(t->token, 'A', cluster, from, t->cfg.self_id, c->nonce_d, c->nonce_a, tag);
    struct msg_writer w;
    buf_reset(&t->scratch);
    msg_begin(&w, &t->scratch, DDKV_MSG_PEER_CHALLENGE, lamport_tick(t->clock), 0, 3);
    mw_u64(&w, t->cfg.self_id);
    mw_bin(&w, c->nonce_a, sizeof c->nonce_a);
    mw_bin(&w, tag, sizeof tag);
    if (msg_end(&w) != ERR_OK ||
        bufferevent_write(c->bev, t->scratch.data + w.start, t->scratch.len - w.start) != 0) {
        peer_in_close(c, true, "out of memory");
        return;
    }
    c->claimed = from;
}

/* The dialer's proof: until it checks, the connection is nobody's. */
static void peer_in_auth(struct peer_in *c, const struct msg *m)
{
    struct peer_transport *t = c->t;
    const uint8_t *mac = NULL;
    size_t macl = 0;
    if (m->type != DDKV_MSG_PEER_AUTH || msg_bytes(m, 0, &mac, &macl) || macl != DDKV_PEER_MAC_BYTES) {
        peer_in_refuse(c, c->claimed, "its second frame is %s, not the proof of the cluster token",
                       msg_type_name(m->type));
        return;
    }
    uint8_t want[DDKV_PEER_MAC_BYTES];
    peer_auth_mac(t->token, 'D', c->hello.cluster_id, c->claimed, t->cfg.self_id, c->nonce_d, c->nonce_a, want);
    if (CRYPTO_memcmp(want, mac, sizeof want) != 0) {
        peer_in_refuse(c, c->claimed, "its proof of the cluster token is wrong (another --cluster-token?)");
        return;
    }
    peer_in_accept(c);
}

static void peer_in_frame(struct peer_in *c, const uint8_t *body, size_t len)
{
    struct peer_transport *t = c->t;
    struct msg m;
    struct errbuf eb;
    if (msg_decode(&m, body, len, &peer_msg_limits, &eb) != ERR_OK) {
        peer_in_bad(c, "undecodable frame: %s", eb.msg);
        return;
    }
    if (!c->from) {
        if (c->claimed)
            peer_in_auth(c, &m);
        else
            peer_in_hello(c, &m);
        msg_free(&m);
        return;
    }
    struct raft_msg rm;
    if (raft_msg_decode(&m, &rm) != ERR_OK) {
        peer_in_bad(c, "bad Raft message (type %s)", msg_type_name(m.type));
        msg_free(&m);
        return;
    }
    /* Only the member this connection proved to be may speak on it, and only
     * to us. Check before observing: a refused frame must not move the clock.
     * A member's time is never a reason to drop its message: it is clamped
     * to the member budget instead (proto/lamport.h). */
    if (rm.from != c->from || rm.to != t->cfg.self_id) {
        peer_in_bad(c, "misaddressed %s %llu -> %llu on the connection of %llu to %llu",
                    msg_type_name(m.type), (unsigned long long)rm.from, (unsigned long long)rm.to,
                    (unsigned long long)c->from, (unsigned long long)t->cfg.self_id);
    } else {
        (void)lamport_observe_member(t->clock, m.lamport, clock_mono_ms());
        PEER_COUNT(t, peer_find(t, c->from), received);
        t->deliver(t->ud, &rm);
    }
    raft_msg_release(&rm);
    msg_free(&m);
}

/* A read deadline while the hello is missing or a frame is half in; none while
 * an identified connection sits idle between frames. */
static void peer_in_arm_timeout(struct peer_in *c)
{
    if (!c->from || frame_decoder_pending(&c->dec) > 0) {
        struct timeval tv = {PEER_IN_TIMEOUT_S, 0};
        bufferevent_set_timeouts(c->bev, &tv, NULL);
    } else {
        bufferevent_set_timeouts(c->bev, NULL, NULL);
    }
}

static void peer_in_read_cb(struct bufferevent *bev, void *arg)
{
    struct peer_in *c = arg;
    struct evbuffer *in = bufferevent_get_input(bev);
    size_t budget = PEER_READ_CHUNK;
    while (!c->closing && budget > 0 && evbuffer_get_length(in) > 0) {
        int rc;
        budget -= evframe_feed(&c->dec, in, budget, &rc);
        const uint8_t *body;
        size_t len;
        while (!c->closing && frame_decoder_next(&c->dec, &body, &len) == ERR_OK)
            peer_in_frame(c, body, len);
        if (c->closing)
            break;
        if (rc == ERR_TOO_LARGE) {
            peer_in_bad(c, "frame of %u bytes is over the limit of %u", c->dec.bad_len,
                        c->dec.max_frame);
        } else if (rc != ERR_OK) {
            peer_in_close(c, true, err_str(rc));
        }
    }
    if (c->closing) {
        peer_in_free(c);
        return;
    }
    peer_in_arm_timeout(c);
    /* Input left over: libevent will not call again for bytes already
     * buffered, so schedule ourselves for a later turn. */
    if (evbuffer_get_length(in) > 0)
        bufferevent_trigger(bev, EV_READ, BEV_TRIG_IGNORE_WATERMARKS | BEV_TRIG_DEFER_CALLBACKS);
}

static void peer_in_event_cb(struct bufferevent *bev, short what, void *arg)
{
    struct peer_in *c = arg;
    if (what & BEV_EVENT_CONNECTED) {
        /* The handshake verified the certificate against the cluster CA; the
         * hello must then come from the member it names. */
        c->tls_pending = false;
        if (tls_peer_cn(bufferevent_openssl_get_ssl(bev), c->cert_cn, sizeof c->cert_cn) == 0) {
            log_warn("peer conn from %s: certificate without a usable common name; closing", c->addr);
            peer_in_close(c, false, "no certificate name");
        }
        return;
    }
    if ((what & (BEV_EVENT_ERROR | BEV_EVENT_EOF)) && c->tls_pending) {
        char why[200];
        peer_tls_error(bev, why, sizeof why);
        c->t->tot.bad_frames++;
        log_warn("peer conn from %s: TLS handshake failed: %s; closing", c->addr, why);
        peer_in_close(c, false, "TLS handshake failed");
        return;
    }
    if (what & BEV_EVENT_TIMEOUT) {
        log_info("peer conn from %s (id %llu): %s in %d s; closing", c->addr,
                 (unsigned long long)c->from, c->from ? "frame not completed" : "no hello",
                 PEER_IN_TIMEOUT_S);
        peer_in_close(c, false, "timeout");
    } else if (what & (BEV_EVENT_EOF | BEV_EVENT_ERROR)) {
        if (frame_decoder_pending(&c->dec))
            log_info("peer conn from %s (id %llu): closed mid-frame", c->addr,
                     (unsigned long long)c->from);
        peer_in_close(c, false, what & BEV_EVENT_EOF ? "peer closed" : "socket error");
    }
}

/* An accepted connection's bufferevent: plain, or a TLS server one that
 * demands the dialer's certificate (the hello timeout bounds the handshake). */
static struct bufferevent *peer_in_bev(struct peer_transport *t, struct peer_in *c, evutil_socket_t fd)
{
    if (!t->cfg.tls)
        return bufferevent_socket_new(t->base, fd, BEV_OPT_CLOSE_ON_FREE);
    SSL *ssl = SSL_new(t->cfg.tls);
    struct bufferevent *bev =
        ssl ? bufferevent_openssl_socket_new(t->base, fd, ssl, BUFFEREVENT_SSL_ACCEPTING, BEV_OPT_CLOSE_ON_FREE)
            : NULL;
    if (!bev) {
        SSL_free(ssl);
        return NULL;
    }
    bufferevent_openssl_set_allow_dirty_shutdown(bev, 1);
    c->tls_pending = true;
    return bev;
}

static int peer_in_adopt(struct peer_transport *t, evutil_socket_t fd, const char *addr);

static void peer_accept_cb(struct evconnlistener *l, evutil_socket_t fd, struct sockaddr *sa,
                           int salen, void *arg)
{
    struct peer_transport *t = arg;
    (void)l;
    (void)salen;
    char addr[64];
    net_format_addr(sa, addr, sizeof addr);
    (void)peer_in_adopt(t, fd, addr);
}

/* fd is an accepted (or otherwise connected) socket: make it an inbound
 * connection, or close it. */
static int peer_in_adopt(struct peer_transport *t, evutil_socket_t fd, const char *addr)
{
    if (t->nins >= PEER_MAX_INBOUND) {
        /* Full: make room by dropping the oldest connection that has not
         * proven who it is yet, so connections that say nothing (or cannot
         * prove the token) cannot lock the members out. */
        struct peer_in *oldest = NULL;
        for (struct peer_in *o = t->ins; o; o = o->next)
            if (!o->from && !o->closing)
                oldest = o;
        if (oldest) {
            log_info("peer conn from %s: dropped unidentified to make room (%u peer connections open)",
                     oldest->addr, t->nins);
            peer_in_close(oldest, false, "room for a new connection");
        }
    }
    if (t->nins >= PEER_MAX_INBOUND) {
        log_warn("peer conn from %s refused: %u peer connections open", addr, t->nins);
        evutil_closesocket(fd);
        return ERR_UNAVAILABLE;
    }
    struct peer_in *c = calloc(1, sizeof *c);
    struct bufferevent *bev = c ? peer_in_bev(t, c, fd) : NULL;
    if (!bev) {
        free(c);
        evutil_closesocket(fd);
        log_error("out of memory accepting a peer connection");
        return ERR_NOMEM;
    }
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    c->t = t;
    c->bev = bev;
    snprintf(c->addr, sizeof c->addr, "%s", addr);
    frame_decoder_init(&c->dec, t->cfg.max_frame_bytes);
    c->next = t->ins;
    if (t->ins)
        t->ins->prev = c;
    t->ins = c;
    t->nins++;
    bufferevent_setcb(bev, peer_in_read_cb, NULL, peer_in_event_cb, c);
    peer_in_arm_timeout(c);
    /* Write too: the challenge is the one frame an acceptor sends. */
    bufferevent_enable(bev, EV_READ | EV_WRITE);
    return ERR_OK;
}

int peer_accept_fd(struct peer_transport *t, int fd)
{
    evutil_make_socket_nonblocking(fd);
    return peer_in_adopt(t, fd, "(adopted socket)");
}

static void peer_accept_retry_cb(evutil_socket_t fd, short what, void *arg)
{
    struct peer_transport *t = arg;
    (void)fd;
    (void)what;
    if (t->listener)
        evconnlistener_enable(t->listener);
}

static void peer_accept_error_cb(struct evconnlistener *l, void *arg)
{
    struct peer_transport *t = arg;
    int e = EVUTIL_SOCKET_ERROR();
    /* Out of descriptors: pause instead of spinning; live connections go on. */
    log_warn("peer accept failed: %s; pausing accepts for 100 ms", evutil_socket_error_to_string(e));
    evconnlistener_disable(l);
    struct timeval tv = {0, 100000};
    evtimer_add(t->accept_retry, &tv);
}

int peer_listen(struct peer_transport *t, const char *addr, char *bound, size_t n,
                struct errbuf *eb)
{
    if (t->listener)
        return errf(eb, ERR_EXISTS, "peer transport already listening");
    struct sockaddr_storage ss;
    socklen_t len;
    if (net_parse_addr(addr, &ss, &len) != ERR_OK)
        return errf(eb, ERR_BAD_INPUT, "bad peer address '%s' (want host:port)", addr);
    t->listener = evconnlistener_new_bind(t->base, peer_accept_cb, t,
                                          LEV_OPT_CLOSE_ON_FREE | LEV_OPT_REUSEABLE, -1,
                                          (struct sockaddr *)&ss, (int)len);
    if (!t->listener)
        return errf(eb, ERR_IO, "cannot listen on peer address %s: %s", addr,
                    evutil_socket_error_to_string(EVUTIL_SOCKET_ERROR()));
    evconnlistener_set_error_cb(t->listener, peer_accept_error_cb);
    if (bound && n) {
        struct sockaddr_storage got;
        socklen_t gl = sizeof got;
        if (getsockname(evconnlistener_get_fd(t->listener), (struct sockaddr *)&got, &gl) == 0)
            net_format_addr((struct sockaddr *)&got, bound, n);
        else
            snprintf(bound, n, "%s", addr);
    }
    return ERR_OK;
}

int peer_transport_new(struct event_base *base, const struct peer_config *cfg,
                       struct lamport *clock, peer_deliver_fn deliver, void *ud,
                       struct peer_transport **out, struct errbuf *eb)
{
    *out = NULL;
    if (cfg->self_id == 0 || cfg->max_frame_bytes == 0 || cfg->reconnect_min_ms == 0 ||
        cfg->reconnect_max_ms < cfg->reconnect_min_ms)
        return errf(eb, ERR_BAD_INPUT, "peer config: need self_id, max_frame_bytes and "
                                       "0 < reconnect_min_ms <= reconnect_max_ms");
    struct peer_transport *t = calloc(1, sizeof *t);
    if (!t)
        return errf(eb, ERR_NOMEM, "out of memory");
    t->accept_retry = evtimer_new(base, peer_accept_retry_cb, t);
    if (!t->accept_retry) {
        free(t);
        return errf(eb, ERR_NOMEM, "out of memory");
    }
    t->base = base;
    t->cfg = *cfg;
    t->token = cfg->token && *cfg->token ? cfg->token : NULL;
    t->clock = clock;
    if (!clock->budgeted)
        lamport_budget_init(clock, clock_mono_ms());
    t->deliver = deliver;
    t->ud = ud;
    /* Seeded from the node id (splitmix64 step) so members draw different
     * jitter without touching rand(); never zero, which xorshift cannot leave. */
    uint64_t z = cfg->self_id + UINT64_C(0x9e3779b97f4a7c15);
    z = (z ^ (z >> 30)) * UINT64_C(0xbf58476d1ce4e5b9);
    z = (z ^ (z >> 27)) * UINT64_C(0x94d049bb133111eb);
    z ^= z >> 31;
    t->rng = z ? z : 1;
    *out = t;
    return ERR_OK;
}

int peer_dial(struct peer_transport *t, uint64_t id)
{
    struct peer *p = peer_find(t, id);
    if (!p)
        return ERR_NOT_FOUND;
    if (p->state == PEER_IDLE)
        peer_connect(p);
    return ERR_OK;
}

void peer_flush(struct peer_transport *t)
{
    for (struct peer *p = t->peers; p; p = p->next) {
        if (p->state != PEER_CONNECTED)
            continue;
        /* With TLS the filter has already encrypted what fits into the
         * socket's bufferevent underneath: write that one. */
        struct bufferevent *sock = bufferevent_get_underlying(p->bev);
        /* Errors (EAGAIN, a reset) are left for the bufferevent to find. */
        if (evwrite_now(sock ? sock : p->bev) == 0)
            continue;
        if (!sock)
            evwrite_idle(p->bev);
        peer_pump(p);
    }
}

void peer_set_self_peer_addr(struct peer_transport *t, const char *addr)
{
    snprintf(t->cfg.self_peer_addr, sizeof t->cfg.self_peer_addr, "%s", addr);
}

void peer_set_refused_cb(struct peer_transport *t, peer_refused_fn fn)
{
    t->refused = fn;
}

uint64_t peer_incarnation_of(struct peer_transport *t, uint64_t id)
{
    for (struct peer_in *c = t->ins; c; c = c->next)
        if (c->from == id && !c->closing)
            return c->hello.incarnation;
    return 0;
}

uint64_t peer_version_of(struct peer_transport *t, uint64_t id)
{
    for (struct peer_in *c = t->ins; c; c = c->next)
        if (c->from == id && !c->closing)
            return c->hello.version;
    return 0;
}

void peer_drop_inbound(struct peer_transport *t, uint64_t id, const char *why)
{
    for (struct peer_in *c = t->ins, *next; c; c = next) {
        next = c->next;
        if (c->from == id && !c->closing)
            peer_in_close(c, false, why);
    }
}

void peer_set_hello_cb(struct peer_transport *t, peer_hello_fn fn)
{
    t->hello = fn;
}

void peer_transport_free(struct peer_transport *t)
{
    if (!t)
        return;
    if (t->listener)
        evconnlistener_free(t->listener);
    event_free(t->accept_retry);
    while (t->ins)
        peer_in_free(t->ins);
    while (t->peers) {
        struct peer *p = t->peers;
        t->peers = p->next;
        peer_destroy(p);
    }
    buf_free(&t->scratch);
    free(t);
}

void peer_get_stats(const struct peer_transport *t, uint64_t id, struct peer_stats *out)
{
    memset(out, 0, sizeof *out);
    if (id == 0) {
        *out = t->tot;
        out->queued_bytes = 0;
        for (const struct peer *p = t->peers; p; p = p->next)
            out->queued_bytes += p->hi.bytes + p->lo.bytes;
        return;
    }
    const struct peer *p = peer_find(t, id);
    if (p) {
        *out = p->stats;
        out->queued_bytes = p->hi.bytes + p->lo.bytes;
    }
}
