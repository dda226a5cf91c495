/* The connection server: the client port's listener and connections (TLS in
 * node_tls.c), their limits, frame intake to the dispatcher, and replies. */
#include "node/node_int.h"
#include "node/conn_int.h"

#include <errno.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/listener.h>
#include <event2/util.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/resource.h>
#include <sys/socket.h>

#include "node/evframe.h"
#include "util/evwrite.h"
#include "util/clock.h"
#include "util/log.h"
#include "util/net.h"

/* Memory per connection is bounded by what is in flight, replies included:
 * a connection whose unsent replies are over --conn-output-bytes, or that has
 * --conn-inflight-max requests unanswered, is neither read nor decoded until
 * it is under a quarter of the former and under the latter; one whose unsent
 * replies still pass CONN_OUT_CUT_FACTOR times the bound (replies of requests
 * already in flight, or a stream) is cut. Node-wide, once all connections'
 * unsent replies pass --node-output-bytes only connections with nothing
 * pending are read, until it falls to half; past twice it the connection with
 * the most unsent bytes is cut. */
#define CONN_OUT_CUT_FACTOR 8u
/* Frames taken from one connection per read callback: a loop turn spends a
 * bounded time on each connection, the rest waits for the next turn. */
#define CONN_FRAMES_PER_TURN 64u
/* At the connection limit, idle connections looked at (least recently active
 * first) for one to close in favour of an address with fewer. */
#define CONN_EVICT_SCAN 256u
/* Fds kept free for the peer transport, the ops port, the store's files. */
#define CONN_FD_RESERVE 1024u
/* How long an error reply may take to drain before the connection is cut. */
#define CONN_CLOSE_DRAIN_TIMEOUT_S 5
/* Bytes taken from one connection per read callback, so one busy client cannot
 * starve the others within a loop turn. */
#define CONN_READ_CHUNK (256u << 10)

/* --- connections --- */

void conn_ref(struct conn *c)
{
    c->refs++;
}

/* Requests taken and not yet answered: every reference beyond the list's,
 * the watches' and a running conn_read_cb's is a pending reply. */
static uint32_t conn_inflight(const struct conn *c)
{
    uint32_t held = 1 + c->watches + (c->in_read ? 1u : 0u);
    return c->refs > held ? c->refs - held : 0;
}

static size_t conn_out_len(const struct conn *c)
{
    return evbuffer_get_length(bufferevent_get_output(c->bev));
}

/* Unsent bytes at or below which a connection counts as drained: its write
 * callback's low watermark, and the output bound of conn_under. */
static size_t conn_out_low(const struct node *n)
{
    return n->cfg.conn_output_bytes / 4;
}

/* Over a limit: take no more of its requests. */
static bool conn_over(const struct conn *c)
{
    const struct node *n = c->node;
    size_t out = conn_out_len(c);
    uint32_t fl = conn_inflight(c);
    return out > n->cfg.conn_output_bytes || fl >= n->cfg.conn_inflight_max ||
           (n->srv->out_total > n->cfg.node_output_bytes && (out > 0 || fl > 0));
}

/* Back under the limits, with some room (hysteresis). */
static bool conn_under(const struct conn *c)
{
    const struct node *n = c->node;
    size_t out = conn_out_len(c);
    uint32_t fl = conn_inflight(c);
    return out <= conn_out_low(n) && fl < n->cfg.conn_inflight_max &&
           !((n->srv->out_over || n->srv->out_total > n->cfg.node_output_bytes / 2) && (out > 0 || fl > 0));
}

static void conn_pause(struct conn *c)
{
    struct node *n = c->node;
    if (c->read_paused)
        return;
    c->read_paused = true;
    n->srv->npaused++;
    if (n->srv->out_total > n->cfg.node_output_bytes)
        n->srv->out_over = true;
    bufferevent_disable(c->bev, EV_READ);
}

/* Take requests again if it is under the limits: reading resumes, and the
 * frames already buffered are decoded on a later turn. */
static void conn_resume_check(struct conn *c)
{
    if (!c->bev || !c->read_paused || c->close_after_flush || !conn_under(c))
        return;
    c->read_paused = false;
    c->node->srv->npaused--;
    c->partial_since_ms = 0; /* a half-in frame's deadline counts from now */
    bufferevent_enable(c->bev, EV_READ);
    bufferevent_trigger(c->bev, EV_READ, BEV_TRIG_IGNORE_WATERMARKS | BEV_TRIG_DEFER_CALLBACKS);
}

void conn_unref(struct conn *c)
{
    ASSERT(c->refs > 0);
    if (--c->refs == 0) {
        ASSERT(c->bev == NULL);
        frame_decoder_free(&c->dec);
        free(c->user);
        free(c);
        return;
    }
    if (c->read_paused && !c->in_read)
        conn_resume_check(c); /* a reply left: a request in flight fewer */
}

/* Unsent reply bytes of all connections, kept by every output buffer's callback. */
static void conn_out_cb(struct evbuffer *b, const struct evbuffer_cb_info *info, void *arg)
{
    struct conn *c = arg;
    struct node *n = c->node;
    (void)b;
    n->srv->out_total += info->n_added;
    n->srv->out_total -= info->n_deleted < n->srv->out_total ? info->n_deleted : n->srv->out_total;
    if (info->n_deleted > 0 || info->orig_size == 0)
        c->drained_ms = clock_mono_ms(); /* the client reads (or has just been given something to read) */
    if (n->srv->out_over && n->srv->out_total <= n->cfg.node_output_bytes / 2) {
        n->srv->out_over = false;
        if (n->srv->npaused)
            event_active(n->srv->conn_resume, EV_TIMEOUT, 0);
    }
}

static void conn_close(struct conn *c, const char *why);

/* Unsent bytes beyond which a connection is cut: CONN_OUT_CUT_FACTOR times
 * the bound, plus room for the replies of requests in flight (each at most
 * half a frame but for a value's), which a reading client may have land at
 * once. A client that does not read stops below it (it is not read), so
 * this catches streams and bugs, not pipelining. */
static uint64_t conn_cut_bytes(const struct node *n)
{
    return (uint64_t)n->cfg.conn_output_bytes * CONN_OUT_CUT_FACTOR +
           (uint64_t)n->cfg.conn_inflight_max * (n->cfg.max_frame_bytes / 2);
}

/* Cut the connections whose unsent replies passed the cut (replies of
 * requests already in flight landing at once, to a client that does not
 * read); then, while all connections' unsent replies are over twice
 * --node-output-bytes, the one with the most. Then let the connections under
 * the limits take requests again. */
static void conn_resume_all_cb(evutil_socket_t fd, short what, void *arg)
{
    struct node *n = arg;
    (void)fd;
    (void)what;
    uint64_t cut = conn_cut_bytes(n);
    for (struct conn *c = n->srv->conns, *next; c; c = next) {
        next = c->next;
        size_t len = conn_out_len(c);
        if (len > cut) {
            n->srv->conns_cut_output++;
            log_warn("conn %llu from %s: client not reading its replies: %zu bytes unsent, over %llu; closing",
                     (unsigned long long)c->id, c->peer, len, (unsigned long long)cut);
            conn_close(c, "replies not read");
        }
    }
    while (n->srv->out_total > 2 * (uint64_t)n->cfg.node_output_bytes) {
        struct conn *worst = NULL;
        size_t most = 0;
        for (struct conn *c = n->srv->conns; c; c = c->next) {
            size_t len = conn_out_len(c);
            if (len > most) {
                most = len;
                worst = c;
            }
        }
        if (!worst)
            break;
        n->srv->conns_cut_output++;
        log_warn("conn %llu from %s: the node's unsent replies are %llu bytes, over twice %u; closing the "
                 "connection with the most (%zu bytes unsent)",
                 (unsigned long long)worst->id, worst->peer, (unsigned long long)n->srv->out_total,
                 (unsigned)n->cfg.node_output_bytes, most);
        conn_close(worst, "replies not read");
    }
    for (struct conn *c = n->srv->conns, *next; c && n->srv->npaused; c = next) {
        next = c->next;
        conn_resume_check(c);
    }
}

/* The connection list is kept in order of activity, most recent first. */
static void conn_list_unlink(struct node *n, struct conn *c)
{
    if (c->prev)
        c->prev->next = c->next;
    else
        n->srv->conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    else
        n->srv->conns_tail = c->prev;
    c->prev = c->next = NULL;
}

static void conn_list_push(struct node *n, struct conn *c)
{
    c->prev = NULL;
    c->next = n->srv->conns;
    if (n->srv->conns)
        n->srv->conns->prev = c;
    else
        n->srv->conns_tail = c;
    n->srv->conns = c;
}

static void conn_touch(struct conn *c, uint64_t now_ms)
{
    c->active_ms = now_ms;
    if (c->node->srv->conns != c) {
        conn_list_unlink(c->node, c);
        conn_list_push(c->node, c);
    }
}

/* Idle: nothing in flight, no watch, nothing unsent, no frame half in, no
 * handshake running. Only such a connection is closed for idleness. */
static bool conn_idle(const struct conn *c)
{
    if (!c->bev || c->refs != 1 || c->auth_busy || c->tls_pending || c->close_after_flush ||
        frame_decoder_pending(&c->dec) != 0 || conn_out_len(c) != 0 ||
        evbuffer_get_length(bufferevent_get_input(c->bev)) != 0)
        return false;
    /* A request the client has just sent, still in the socket: not idle
     * (closing now would leave the client guessing about it). */
    int unread = 0;
    return ioctl(bufferevent_getfd(c->bev), FIONREAD, &unread) != 0 || unread == 0;
}

static void conn_close(struct conn *c, const char *why)
{
    if (!c->bev)
        return;
    struct node *n = c->node;
    size_t partial = frame_decoder_pending(&c->dec);
    if (partial)
        log_info("conn %llu from %s closed (%s) with %zu bytes of a partial frame discarded",
                 (unsigned long long)c->id, c->peer, why, partial);
    else
        log_debug("conn %llu from %s closed (%s)", (unsigned long long)c->id, c->peer, why);
    struct evbuffer *out = bufferevent_get_output(c->bev);
    size_t unsent = evbuffer_get_length(out);
    n->srv->out_total -= unsent < n->srv->out_total ? unsent : n->srv->out_total;
    evbuffer_remove_cb(out, conn_out_cb, c);
    bufferevent_free(c->bev);
    c->bev = NULL;
    frame_decoder_free(&c->dec);
    if (c->read_paused) {
        c->read_paused = false;
        n->srv->npaused--;
    }
    conn_list_unlink(n, c);
    n->srv->nconns--;
    if (c->addr) {
        ASSERT(c->addr->nconns > 0);
        c->addr->nconns--;
    }
    modules_on_conn_closed(n, c);
    conn_unref(c);
}

void conn_reply_begin(struct conn *c, struct msg_writer *w, uint32_t type, uint64_t request_id,
                      uint32_t nfields)
{
    struct node *n = c->node;
    buf_reset(&n->scratch);
    msg_begin(w, &n->scratch, type, lamport_tick(&n->clock), request_id, nfields);
}

void conn_reply_end(struct conn *c, struct msg_writer *w)
{
    if (msg_end(w) != ERR_OK) {
        log_error("out of memory encoding a reply on conn %llu", (unsigned long long)c->id);
        conn_close(c, "out of memory");
        return;
    }
    if (c->out) {
        c->out(c, w->b->data + w->start, w->b->len - w->start, c->out_ctx);
        return;
    }
    if (!c->bev)
        return;
    struct node *n = c->node;
    struct evbuffer *out = bufferevent_get_output(c->bev);
    if (evbuffer_add(out, w->b->data + w->start, w->b->len - w->start) != 0) {
        conn_close(c, "out of memory");
        return;
    }
    conn_touch(c, clock_mono_ms()); /* a connection being answered is not idle */
    if (!c->flush_queued && !n->srv->tls_client) {
        conn_ref(c);
        c->flush_queued = true;
        c->flush_next = n->srv->flushq;
        n->srv->flushq = c;
    }
    /* Cutting is left to a callback of its own: the caller may be walking
     * watchers or reads that a close would change under it. */
    if (evbuffer_get_length(out) > conn_cut_bytes(n) ||
        n->srv->out_total > 2 * (uint64_t)n->cfg.node_output_bytes)
        event_active(n->srv->conn_resume, EV_TIMEOUT, 0);
    if (!c->read_paused && conn_over(c))
        conn_pause(c);
}

void conn_reply_error(struct conn *c, uint64_t request_id, uint32_t code, const char *fmt, ...)
{
    char text[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(text, sizeof text, fmt, ap);
    va_end(ap);
    struct msg_writer w;
    conn_reply_begin(c, &w, DDKV_MSG_ERROR, request_id, 3);
    mw_u64(&w, code);
    mw_str(&w, text);
    /* NOT_LEADER names the leader's client address when this node knows it. */
    const char *leader = code == DDKV_WERR_NOT_LEADER ? cluster_leader_client_addr(c->node) : NULL;
    if (leader && strcmp(leader, c->node->srv->client_addr) != 0)
        mw_str(&w, leader);
    else
        mw_nil(&w);
    conn_reply_end(c, &w);
}

uint32_t err_to_wire(int rc)
{
    switch (rc) {
    case ERR_OK:
        return 0;
    case ERR_NOSPACE: /* heals by itself (the node rejoins): retry, or ask another member */
    case ERR_AGAIN:
    case ERR_CLOSED:
        return DDKV_WERR_UNAVAILABLE;
    case ERR_UNAVAILABLE: /* from a proposal or a membership change: not the leader */
        return DDKV_WERR_NOT_LEADER;
    case ERR_TOO_LARGE:
        return DDKV_WERR_TOO_LARGE;
    case ERR_BAD_INPUT:
    case ERR_EXISTS:
        return DDKV_WERR_BAD_REQUEST;
    case ERR_NOT_FOUND:
        return DDKV_WERR_NOT_FOUND;
    case ERR_TIMEOUT:
        return DDKV_WERR_TIMEOUT;
    default: /* ERR_NOMEM, ERR_IO, ERR_CORRUPT: this member's trouble, not the request's */
        return DDKV_WERR_INTERNAL;
    }
}

void conn_reply_not_leader(struct conn *c, uint64_t request_id)
{
    conn_reply_error(c, request_id, DDKV_WERR_NOT_LEADER, "this node is not the leader");
}

/* Answer, then close once the answer is on the wire. */
static void conn_fail(struct conn *c, uint64_t request_id, uint32_t code, const char *text)
{
    conn_reply_error(c, request_id, code, "%s", text);
    c->close_after_flush = true;
    if (c->bev) {
        bufferevent_disable(c->bev, EV_READ);
        struct timeval drain = {CONN_CLOSE_DRAIN_TIMEOUT_S, 0};
        bufferevent_set_timeouts(c->bev, NULL, &drain);
    }
}

static void conn_handle_frame(struct conn *c, const uint8_t *body, size_t len)
{
    struct node *n = c->node;
    struct msg m;
    struct errbuf eb;
    n->stats.frames_in++;
    if (msg_decode(&m, body, len, &msg_limits_request, &eb) != ERR_OK) {
        n->stats.frames_bad++;
        log_info("conn %llu from %s: bad frame: %s", (unsigned long long)c->id, c->peer, eb.msg);
        conn_fail(c, 0, DDKV_WERR_BAD_REQUEST, eb.msg);
        return;
    }
    /* A client's time moves the clock only within the client budget
     * (proto/lamport.h); a frame beyond it is refused and moves nothing. */
    uint64_t allowed = 0, now_before = n->clock.now;
    int lrc = lamport_admit_client(&n->clock, m.lamport, clock_mono_ms(), &allowed);
    if (lrc != ERR_OK) {
        char why[160];
        if (lrc == ERR_BAD_INPUT)
            snprintf(why, sizeof why, "lamport time %llu is out of range (must be below 2^62)",
                     (unsigned long long)m.lamport);
        else
            snprintf(why, sizeof why, "lamport time %llu is %llu ahead of this node's clock; at most %llu is accepted now",
                     (unsigned long long)m.lamport, (unsigned long long)(m.lamport - now_before),
                     (unsigned long long)allowed);
        n->stats.frames_bad++;
        log_info("conn %llu from %s: %s", (unsigned long long)c->id, c->peer, why);
        conn_fail(c, m.request_id, DDKV_WERR_BAD_REQUEST, why);
        msg_free(&m);
        return;
    }
    n->req_t0_ns = clock_mono_ns();
    const struct dispatch_entry *e = dispatcher_lookup(&n->disp, m.type);
    if (!e) {
        /* A well-formed frame of a type we do not know: answer and keep the
         * connection, so a newer client can probe an older node. */
        n->stats.unknown_types++;
        conn_reply_error(c, m.request_id, DDKV_WERR_BAD_REQUEST, "unknown message type %u", m.type);
    } else if (!e->fn) {
        n->stats.unknown_types++;
        conn_reply_error(c, m.request_id, DDKV_WERR_BAD_REQUEST,
                         "message type %u (%s) belongs on the peer port, not the client port",
                         m.type, msg_type_name(m.type));
    } else if (modules_admit(n, c, &m)) {
        e->fn(e->ctx, c, &m);
    }
    msg_free(&m);
}

void conn_take_frame(struct conn *c, const uint8_t *body, size_t len)
{
    ASSERT(c->out != NULL);
    conn_ref(c); /* a handler may close c */
    conn_handle_frame(c, body, len);
    conn_unref(c);
}

struct conn *conn_open_detached(struct node *n, const char *peer, conn_out_fn out, void *ctx)
{
    struct conn *c = calloc(1, sizeof *c);
    if (!c)
        return NULL;
    c->node = n;
    c->id = ++n->srv->next_conn_id;
    c->refs = 1;
    c->out = out;
    c->out_ctx = ctx;
    c->active_ms = clock_mono_ms();
    frame_decoder_init(&c->dec, n->cfg.max_frame_bytes);
    snprintf(c->peer, sizeof c->peer, "%s", peer);
    return c;
}

void conn_close_detached(struct conn *c)
{
    ASSERT(c->bev == NULL);
    if (c->out) {
        c->out = NULL;
        modules_on_conn_closed(c->node, c);
    }
    conn_unref(c);
}

static void conn_read_cb(struct bufferevent *bev, void *arg)
{
    struct conn *c = arg;
    struct evbuffer *in = bufferevent_get_input(bev);
    if (c->read_paused)
        return; /* a trigger from before it went over a limit */
    conn_ref(c); /* a handler may close c */
    c->in_read = true;
    size_t budget = CONN_READ_CHUNK;
    uint32_t frames = 0;
    bool more = false; /* stopped by this turn's share with work left */
    bool starved = false; /* stopped for want of bytes: a frame may be half in */
    uint64_t now = clock_mono_ms();
    /* One frame at a time, checking the limits before each: what is already
     * buffered is not decoded while the connection is over them. */
    while (c->bev && !c->close_after_flush) {
        if (conn_over(c)) {
            conn_pause(c);
            break;
        }
        if (frames >= CONN_FRAMES_PER_TURN) {
            more = true;
            break;
        }
        const uint8_t *body;
        size_t len;
        int frc = frame_decoder_next(&c->dec, &body, &len);
        if (frc == ERR_OK) {
            frames++;
            c->partial_since_ms = 0; /* progress: the next frame gets its own deadline */
            conn_touch(c, now);
            conn_handle_frame(c, body, len);
            continue;
        }
        if (frc == ERR_TOO_LARGE) {
            c->node->stats.frames_too_large++;
            char text[128];
            snprintf(text, sizeof text, "frame of %u bytes is over the limit of %u", c->dec.bad_len,
                     c->dec.max_frame);
            log_info("conn %llu from %s: %s", (unsigned long long)c->id, c->peer, text);
            conn_fail(c, 0, DDKV_WERR_TOO_LARGE, text);
            break;
        }
        if (frc != ERR_AGAIN) {
            conn_close(c, err_str(frc));
            break;
        }
        /* No whole frame buffered: feed the decoder more, within this turn's share. */
        if (evbuffer_get_length(in) == 0) {
            starved = true;
            break;
        }
        if (budget == 0) {
            more = true;
            break;
        }
        budget -= evframe_feed(&c->dec, in, budget, NULL);
        /* A refused header is sticky: frame_decoder_next reports it after the
         * frames before it. */
    }
    /* A frame left incomplete has a deadline from when it began: the
     * inactivity timeout catches a silent client, the check here one that
     * drips bytes to keep a large partial frame alive. */
    if (c->bev && !c->close_after_flush && starved) {
        if (frame_decoder_pending(&c->dec) == 0) {
            c->partial_since_ms = 0;
            bufferevent_set_timeouts(c->bev, NULL, NULL);
        } else if (c->partial_since_ms == 0) {
            c->partial_since_ms = clock_mono_ms();
            uint32_t ms = c->node->cfg.frame_timeout_ms;
            struct timeval partial = {(time_t)(ms / 1000), (suseconds_t)(ms % 1000) * 1000};
            bufferevent_set_timeouts(c->bev, &partial, NULL);
        } else if (clock_mono_ms() - c->partial_since_ms > c->node->cfg.frame_timeout_ms) {
            conn_close(c, "partial frame not completed in time");
        }
    }
    /* Work left for the next turn: libevent will not call us again for bytes
     * already buffered, so schedule ourselves. */
    if (c->bev && !c->close_after_flush && !c->read_paused && more)
        bufferevent_trigger(c->bev, EV_READ, BEV_TRIG_IGNORE_WATERMARKS | BEV_TRIG_DEFER_CALLBACKS);
    c->in_read = false;
    conn_unref(c);
}

static void conn_write_cb(struct bufferevent *bev, void *arg)
{
    struct conn *c = arg;
    size_t left = evbuffer_get_length(bufferevent_get_output(bev));
    if (c->close_after_flush && left == 0) {
        conn_close(c, "closed after error");
        return;
    }
    conn_resume_check(c);
    modules_on_conn_writable(c->node, c);
}

/* Write what c's plain socket has queued now (evwrite.h). The write
 * callback's follow-ups run here when what is left is down to its low
 * watermark, as they would have after the bufferevent's own write. */
static void conn_write_now(struct conn *c)
{
    if (evwrite_now(c->bev) <= 0)
        return;
    evwrite_idle(c->bev);
    if (conn_out_len(c) <= conn_out_low(c->node))
        conn_write_cb(c->bev, c);
}

void conn_flush_replies(struct node *n)
{
    /* Replies given meanwhile (a writable connection's module refilling its
     * stream) wait for the next call. */
    struct conn *q = n->srv->flushq;
    n->srv->flushq = NULL;
    while (q) {
        struct conn *c = q;
        q = c->flush_next;
        c->flush_queued = false;
        c->flush_next = NULL;
        if (c->bev) /* plain sockets only: TLS connections are never queued */
            conn_write_now(c);
        conn_unref(c);
    }
}

/* Best effort, on a fresh socket: one plain ERROR frame, then what the client
 * already sent is read away, so that the close is a FIN and the frame is not
 * lost to a reset. */
static void conn_say_plain(struct node *n, evutil_socket_t fd, uint32_t code, const char *text)
{
    struct buf b = BUF_INIT;
    if (msg_encode_error(&b, lamport_tick(&n->clock), 0, code, text, NULL) == ERR_OK) {
        ssize_t wr = send(fd, b.data, b.len, MSG_NOSIGNAL | MSG_DONTWAIT);
        (void)wr;
    }
    buf_free(&b);
    char sink[4096];
    for (int i = 0; i < 16 && recv(fd, sink, sizeof sink, MSG_DONTWAIT) > 0; i++)
        ;
}

/* A TLS handshake that failed: the reason is worth a line (a client without
 * the CA, a certificate from elsewhere, plain TCP on a TLS port). A client
 * that spoke plain TCP is told so in its own protocol: UNAVAILABLE, which a
 * client takes as "not acted on" (a write is not left in doubt). */
static void conn_tls_failed(struct conn *c, const char *why, bool plain)
{
    struct node *n = c->node;
    n->stats.tls_handshake_failures++;
    /* A misconfigured client retries in a loop: one line a second is enough. */
    uint64_t now = clock_mono_ms();
    if (n->srv->tls_fail_logged_ms && now - n->srv->tls_fail_logged_ms < 1000) {
        n->srv->tls_fail_unlogged++;
    } else {
        log_info("conn %llu from %s: TLS handshake failed: %s (%llu more failed since the last such line)",
                 (unsigned long long)c->id, c->peer, why, (unsigned long long)n->srv->tls_fail_unlogged);
        n->srv->tls_fail_logged_ms = now;
        n->srv->tls_fail_unlogged = 0;
    }
    if (plain)
        conn_say_plain(c->node, bufferevent_getfd(c->bev), DDKV_WERR_UNAVAILABLE,
                       "this port speaks TLS: connect with --tls-ca FILE (env DDKV_TLS_CA), the cluster's CA");
    conn_close(c, "TLS handshake failed");
}

static void conn_event_cb(struct bufferevent *bev, short what, void *arg)
{
    struct conn *c = arg;
    (void)bev;
    if (what & BEV_EVENT_CONNECTED) {
        node_tls_connected(c);
        return;
    }
    if ((what & (BEV_EVENT_TIMEOUT | BEV_EVENT_ERROR)) && c->tls_pending) {
        char why[200];
        bool plain = false;
        if (what & BEV_EVENT_TIMEOUT)
            snprintf(why, sizeof why, "not completed within %u ms", (unsigned)c->node->cfg.frame_timeout_ms);
        else
            plain = node_tls_error(c, why, sizeof why);
        conn_tls_failed(c, why, plain);
        return;
    }
    if (what & BEV_EVENT_TIMEOUT)
        conn_close(c, what & BEV_EVENT_READING ? "partial frame not completed in time"
                                               : "error reply not read in time");
    else if (what & BEV_EVENT_EOF)
        conn_close(c, "peer closed");
    else if (what & BEV_EVENT_ERROR)
        conn_close(c, evutil_socket_error_to_string(EVUTIL_SOCKET_ERROR()));
}

/* Refuse a fresh connection, saying why first (best effort: the socket is
 * fresh and empty). */
static void accept_refuse(struct node *n, evutil_socket_t fd, const char *why)
{
    n->stats.conns_refused++;
    struct buf b = BUF_INIT;
    if (msg_encode_error(&b, lamport_tick(&n->clock), 0, DDKV_WERR_UNAVAILABLE, why, NULL) == ERR_OK) {
        ssize_t wr = send(fd, b.data, b.len, MSG_NOSIGNAL | MSG_DONTWAIT);
        (void)wr;
    }
    buf_free(&b);
    evutil_closesocket(fd);
}

/* At the connection limit: close the least recently active idle connection
 * of an address that holds more connections than the newcomer's would, so
 * that idle connections hoarded by a few addresses cannot lock others out.
 * False if there is none. */
static bool accept_evict(struct node *n, const struct addr_entry *to)
{
    uint32_t seen = 0;
    for (struct conn *c = n->srv->conns_tail; c && seen < CONN_EVICT_SCAN; c = c->prev, seen++) {
        if (!conn_idle(c) || !c->addr || c->addr == to || c->addr->nconns <= to->nconns + 1)
            continue;
        n->srv->conns_evicted++;
        log_info("conn %llu from %s: idle, closed at the connection limit (%u) for a connection from %s, "
                 "which holds fewer (%u against %u)",
                 (unsigned long long)c->id, c->peer, (unsigned)n->cfg.max_connections, to->ip,
                 (unsigned)to->nconns, (unsigned)c->addr->nconns);
        conn_close(c, "evicted at the connection limit");
        return true;
    }
    return false;
}

/* "1.2.3.4:5" -> "1.2.3.4", "[::1]:5" -> "::1". */
static void addr_ip_of(const char *peer, char *out, size_t cap)
{
    const char *colon = strrchr(peer, ':');
    size_t len = colon ? (size_t)(colon - peer) : strlen(peer);
    if (len >= 2 && peer[0] == '[' && peer[len - 1] == ']') {
        peer++;
        len -= 2;
    }
    snprintf(out, cap, "%.*s", (int)len, peer);
}

static void accept_cb(struct evconnlistener *l, evutil_socket_t fd, struct sockaddr *sa, int salen,
                      void *arg)
{
    struct node *n = arg;
    (void)l;
    (void)salen;
    char peer[64], ip[48], why[160];
    net_format_addr(sa, peer, sizeof peer);
    addr_ip_of(peer, ip, sizeof ip);
    struct addr_entry *a = addr_get(n, ip);
    if (!a) {
        accept_refuse(n, fd, "too many client addresses");
        return;
    }
    if (a->nconns >= n->cfg.max_conns_per_addr) {
        snprintf(why, sizeof why, "too many connections from %s (the limit is %u per address)", ip,
                 (unsigned)n->cfg.max_conns_per_addr);
        accept_refuse(n, fd, why);
        return;
    }
    if (n->srv->nconns >= n->cfg.max_connections && !accept_evict(n, a)) {
        accept_refuse(n, fd, "too many connections");
        return;
    }
    struct conn *c = calloc(1, sizeof *c);
    struct bufferevent *bev = c ? node_tls_accept(n, c, fd) : NULL;
    if (!bev) {
        free(c);
        evutil_closesocket(fd);
        log_error("out of memory accepting a connection");
        return;
    }
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    c->node = n;
    c->id = ++n->srv->next_conn_id;
    c->bev = bev;
    c->refs = 1;
    c->addr = a;
    a->nconns++;
    c->active_ms = clock_mono_ms();
    frame_decoder_init(&c->dec, n->cfg.max_frame_bytes);
    snprintf(c->peer, sizeof c->peer, "%s", peer);
    conn_list_push(n, c);
    n->srv->nconns++;
    n->stats.conns_accepted++;
    bufferevent_setcb(bev, conn_read_cb, conn_write_cb, conn_event_cb, c);
    /* The write callback, which lets a paused connection go on, runs once
     * its unsent replies are down to a quarter of the bound. */
    bufferevent_setwatermark(bev, EV_WRITE, conn_out_low(n), 0);
    evbuffer_add_cb(bufferevent_get_output(bev), conn_out_cb, c);
    bufferevent_enable(bev, EV_READ | EV_WRITE);
}

/* Every second: close connections idle for --idle-timeout-ms (least recently
 * active first, so the walk stops at the first recent one it meets that is
 * idle) and forget addresses nothing refers to. */
static void conn_sweep_cb(evutil_socket_t fd, short what, void *arg)
{
    struct node *n = arg;
    (void)fd;
    (void)what;
    uint64_t now = clock_mono_ms();
    uint32_t idle = n->cfg.idle_timeout_ms;
    if (idle) {
        /* A client that has not taken a byte of its replies (or of a
         * stream: WATCH, SNAPSHOT_SAVE) for as long is not reading. */
        for (struct conn *c = n->srv->conns, *next; c; c = next) {
            next = c->next;
            if (conn_out_len(c) > 0 && now - c->drained_ms >= idle) {
                n->srv->conns_cut_output++;
                log_warn("conn %llu from %s: %zu bytes unsent and none taken for %llu ms (--idle-timeout-ms); closing",
                         (unsigned long long)c->id, c->peer, conn_out_len(c),
                         (unsigned long long)(now - c->drained_ms));
                conn_close(c, "replies not read");
            }
        }
        for (struct conn *c = n->srv->conns_tail, *prev; c; c = prev) {
            prev = c->prev;
            if (now - c->active_ms < idle)
                break;
            if (!conn_idle(c))
                continue;
            n->srv->conns_idle_closed++;
            log_info("conn %llu from %s: idle for %llu ms (--idle-timeout-ms %u); closing",
                     (unsigned long long)c->id, c->peer, (unsigned long long)(now - c->active_ms), (unsigned)idle);
            conn_close(c, "idle");
        }
    }
    addr_sweep(n);
}

static void accept_retry_cb(evutil_socket_t fd, short what, void *arg)
{
    struct node *n = arg;
    (void)fd;
    (void)what;
    if (!n->stopping)
        evconnlistener_enable(n->srv->listener);
}

static void accept_error_cb(struct evconnlistener *l, void *arg)
{
    struct node *n = arg;
    int e = EVUTIL_SOCKET_ERROR();
    /* Out of file descriptors (or similar): pause accepting briefly instead of
     * spinning; the established connections keep being served. */
    log_warn("accept failed: %s; pausing accepts for 100 ms", evutil_socket_error_to_string(e));
    evconnlistener_disable(l);
    struct timeval tv = {0, 100000};
    evtimer_add(n->srv->accept_retry, &tv);
}

void node_observe(struct node *n, uint32_t req_type, uint64_t t0_ns)
{
    ASSERT(req_type < DDKV_MSG_TYPE_MAX);
    hist_record(&n->h_req[req_type], clock_mono_ns() - t0_ns);
}

/* The client port's connections must leave file descriptors for the peer
 * transport, the ops port and the store: raise the soft limit as far as the
 * hard one allows, and serve fewer client connections if it is still short. */
static void conn_fd_room(struct node *n)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
        return;
    uint64_t want = (uint64_t)n->cfg.max_connections + CONN_FD_RESERVE;
    if (rl.rlim_cur != RLIM_INFINITY && rl.rlim_cur < want) {
        rlim_t cur = rl.rlim_cur;
        rl.rlim_cur = rl.rlim_max == RLIM_INFINITY || rl.rlim_max > want ? want : rl.rlim_max;
        if (setrlimit(RLIMIT_NOFILE, &rl) != 0)
            rl.rlim_cur = cur;
    }
    if (rl.rlim_cur != RLIM_INFINITY && rl.rlim_cur < want) {
        uint32_t room = rl.rlim_cur > 2 * CONN_FD_RESERVE ? (uint32_t)(rl.rlim_cur - CONN_FD_RESERVE)
                                                          : (uint32_t)(rl.rlim_cur / 2);
        log_warn("--max-connections %u does not fit the open-file limit %llu with %u kept for peers, the ops "
                 "port and the store: serving at most %u client connections",
                 (unsigned)n->cfg.max_connections, (unsigned long long)rl.rlim_cur, CONN_FD_RESERVE,
                 (unsigned)room);
        n->cfg.max_connections = room;
    }
}

int conn_listen(struct node *n, struct errbuf *eb)
{
    struct sockaddr_storage ss;
    socklen_t sslen;
    if (net_parse_addr(n->cfg.client_addr, &ss, &sslen) != ERR_OK)
        return errf(eb, ERR_BAD_INPUT, "bad --client-addr '%s' (want host:port)", n->cfg.client_addr);
    n->srv->listener = evconnlistener_new_bind(n->base, accept_cb, n,
                                          LEV_OPT_CLOSE_ON_FREE | LEV_OPT_REUSEABLE |
                                              LEV_OPT_CLOSE_ON_EXEC,
                                          1024, (struct sockaddr *)&ss, (int)sslen);
    if (!n->srv->listener)
        return errf(eb, ERR_IO, "cannot listen on %s: %s", n->cfg.client_addr, strerror(errno));
    evconnlistener_set_error_cb(n->srv->listener, accept_error_cb);
    struct sockaddr_storage bound;
    socklen_t blen = sizeof bound;
    getsockname(evconnlistener_get_fd(n->srv->listener), (struct sockaddr *)&bound, &blen);
    net_format_addr((struct sockaddr *)&bound, n->srv->client_addr, sizeof n->srv->client_addr);
    if (!net_is_loopback((struct sockaddr *)&bound) && !n->srv->tls_client)
        log_warn("client port %s is reachable beyond loopback without TLS: anyone who reaches it reads "
                 "and writes in clear (see --tls-cert, --tls-key, --tls-ca)",
                 n->srv->client_addr);
    return ERR_OK;
}

struct conn_server *conn_server_new(void)
{
    return calloc(1, sizeof(struct conn_server));
}

void conn_server_free(struct node *n)
{
    free(n->srv);
    n->srv = NULL;
}

const char *conn_server_addr(const struct node *n)
{
    return n->srv->client_addr;
}

void conn_server_stats(const struct node *n, struct conn_server_stats *out)
{
    const struct conn_server *s = n->srv;
    *out = (struct conn_server_stats){
        .conns = s->nconns,
        .waiting = s->npaused,
        .out_bytes = s->out_total,
        .idle_closed = s->conns_idle_closed,
        .cut_output = s->conns_cut_output,
        .evicted = s->conns_evicted,
    };
}

int conn_server_start(struct node *n)
{
    n->srv->accept_retry = evtimer_new(n->base, accept_retry_cb, n);
    n->srv->conn_resume = event_new(n->base, -1, 0, conn_resume_all_cb, n);
    n->srv->conn_sweep = event_new(n->base, -1, EV_PERSIST, conn_sweep_cb, n);
    if (!n->srv->accept_retry || !n->srv->conn_resume || !n->srv->conn_sweep)
        return ERR_NOMEM;
    struct timeval sweep_tv = {1, 0};
    event_add(n->srv->conn_sweep, &sweep_tv);
    conn_fd_room(n);
    return ERR_OK;
}

void conn_listen_stop(struct node *n)
{
    if (n->srv->listener)
        evconnlistener_free(n->srv->listener);
    n->srv->listener = NULL;
}

void conn_server_stop(struct node *n)
{
    conn_flush_replies(n); /* best effort: push out replies already given */
    while (n->srv->conns)
        conn_close(n->srv->conns, "node stopping");
    conn_flush_replies(n); /* the references of any queued by the closes */
    if (n->srv->accept_retry)
        event_free(n->srv->accept_retry);
    if (n->srv->conn_resume)
        event_free(n->srv->conn_resume);
    if (n->srv->conn_sweep)
        event_free(n->srv->conn_sweep);
    n->srv->accept_retry = n->srv->conn_resume = n->srv->conn_sweep = NULL;
}
