/* The peer transport (src/core/node/peer.c) in-process on 127.0.0.1: delivery, reconnects, hellos, bad input, priority, queue bounds. */
#include <criterion/criterion.h>
#include <errno.h>
#include <event2/event.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "consensus/raft.h"
#include "ddkv/wire.h"
#include "node/peer.h"
#include "proto/msg.h"
#include "util/buf.h"
#include "util/clock.h"
#include "util/err.h"
#include "util/net.h"

#define MAX_GOT 4096

/* What one delivered message looked like. */
struct got {
    uint32_t type;
    uint64_t from, to, term, index, log_term, commit, ctx, offset;
    uint32_t n_entries, flags;
    size_t len;
    bool data_ok;      /* SNAP: bytes match the pattern for their offset */
    uint64_t clock_at; /* receiver's Lamport time inside deliver */
};

/* One member: its clock, transport and everything it received. */
struct member {
    uint64_t id;
    struct lamport clock;
    struct peer_transport *t;
    char addr[64];
    size_t n;
    struct got got[MAX_GOT];
    struct buf entries; /* APP entry bytes, concatenated as delivered */
};

static uint8_t snap_byte(uint64_t off)
{
    return (uint8_t)(off * 31 + (off >> 8));
}

static void deliver(void *ud, const struct raft_msg *m)
{
    struct member *mb = ud;
    cr_assert_lt(mb->n, MAX_GOT);
    struct got *g = &mb->got[mb->n++];
    *g = (struct got){.type = m->type, .from = m->from, .to = m->to, .term = m->term,
                      .index = m->index, .log_term = m->log_term, .commit = m->commit,
                      .ctx = m->ctx, .offset = m->offset, .n_entries = m->n_entries,
                      .flags = m->flags, .len = m->len, .clock_at = mb->clock.now};
    for (uint32_t i = 0; i < m->n_entries; i++) {
        cr_assert_eq(m->entries[i].index, m->index + 1 + i);
        cr_assert_eq(buf_append(&mb->entries, m->entries[i].data, m->entries[i].len), ERR_OK);
    }
    if (m->type == RAFT_MSG_SNAP) {
        g->data_ok = true;
        for (size_t i = 0; i < m->len; i++)
            if (m->data[i] != snap_byte(m->offset + i)) {
                g->data_ok = false;
                break;
            }
    }
}

static struct peer_config config(uint64_t id, uint64_t cluster)
{
    struct peer_config cfg;
    peer_config_defaults(&cfg);
    cfg.self_id = id;
    cfg.cluster_id = cluster;
    cfg.reconnect_min_ms = 20;
    cfg.reconnect_max_ms = 200;
    return cfg;
}

static struct member *member_new(struct event_base *base, const struct peer_config *cfg)
{
    struct member *mb = calloc(1, sizeof *mb);
    cr_assert_not_null(mb);
    mb->id = cfg->self_id;
    struct errbuf eb;
    cr_assert_eq(peer_transport_new(base, cfg, &mb->clock, deliver, mb, &mb->t, &eb), ERR_OK, "%s",
                 eb.msg);
    return mb;
}

static void member_listen(struct member *mb, const char *addr)
{
    struct errbuf eb;
    cr_assert_eq(peer_listen(mb->t, addr, mb->addr, sizeof mb->addr, &eb), ERR_OK, "%s", eb.msg);
}

static void member_free(struct member *mb)
{
    peer_transport_free(mb->t);
    buf_free(&mb->entries);
    free(mb);
}

static void wake_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    (void)arg;
}

/* Run the loop until pred holds or ms pass. Each turn waits at most 2 ms (a
 * timer bounds EVLOOP_ONCE), so the loop neither spins nor sleeps unbounded. */
static bool run_until(struct event_base *base, bool (*pred)(void *), void *arg, uint64_t ms)
{
    struct event *wake = evtimer_new(base, wake_cb, NULL);
    cr_assert_not_null(wake);
    uint64_t deadline = clock_mono_ms() + ms;
    bool ok = false;
    for (;;) {
        if (pred && pred(arg)) {
            ok = true;
            break;
        }
        if (clock_mono_ms() >= deadline)
            break;
        struct timeval tv = {0, 2000};
        evtimer_add(wake, &tv);
        event_base_loop(base, EVLOOP_ONCE);
    }
    event_free(wake);
    return ok;
}

struct want {
    struct member *mb;
    size_t n;
};

static bool has_n(void *arg)
{
    struct want *w = arg;
    return w->mb->n >= w->n;
}

static bool has_n_2(void *arg)
{
    return ((struct member *)arg)->n >= 2;
}

static bool wait_n(struct event_base *base, struct member *mb, size_t n, uint64_t ms)
{
    struct want w = {mb, n};
    return run_until(base, has_n, &w, ms);
}

static struct raft_msg heartbeat(uint64_t from, uint64_t to, uint64_t term, uint64_t commit)
{
    return (struct raft_msg){.type = RAFT_MSG_HEARTBEAT, .from = from, .to = to, .term = term,
                             .commit = commit, .ctx = commit * 10};
}

static struct peer_stats stats(struct member *mb, uint64_t id)
{
    struct peer_stats s;
    peer_get_stats(mb->t, id, &s);
    return s;
}

Test(peer, app_and_heartbeat_arrive_intact_in_order_with_lamport)
{
    struct event_base *base = event_base_new();
    struct peer_config ca = config(1, 42), cb = config(2, 42);
    struct member *a = member_new(base, &ca), *b = member_new(base, &cb);
    a->clock.now = 1000;
    b->clock.now = 5;
    member_listen(b, "127.0.0.1:0");
    cr_assert_eq(peer_add(a->t, 2, b->addr), ERR_OK);
    cr_assert_eq(peer_add(a->t, 2, b->addr), ERR_EXISTS);
    cr_assert_eq(peer_add(a->t, 1, b->addr), ERR_BAD_INPUT);
    cr_assert_eq(peer_add(a->t, 3, "nonsense"), ERR_BAD_INPUT);

    static const char d0[] = "put k1 v1", d2[] = "put k2 a-longer-value";
    struct raft_entry ents[3] = {
        {.term = 6, .type = RAFT_ENTRY_NORMAL, .data = (const uint8_t *)d0, .len = sizeof d0 - 1},
        {.term = 7, .type = RAFT_ENTRY_NORMAL, .data = NULL, .len = 0}, /* a leader's no-op */
        {.term = 7, .type = RAFT_ENTRY_NORMAL, .data = (const uint8_t *)d2, .len = sizeof d2 - 1},
    };
    struct raft_msg app = {.type = RAFT_MSG_APP, .from = 1, .to = 2, .term = 7, .index = 10,
                           .log_term = 5, .commit = 9, .entries = ents, .n_entries = 3};
    cr_assert_eq(peer_send(a->t, &app), ERR_OK);
    struct raft_msg hb = heartbeat(1, 2, 7, 12);
    cr_assert_eq(peer_send(a->t, &hb), ERR_OK);
    struct raft_msg stray = heartbeat(1, 9, 7, 12);
    cr_assert_eq(peer_send(a->t, &stray), ERR_NOT_FOUND);

    cr_assert(wait_n(base, b, 2, 5000), "delivered %zu of 2", b->n);
    struct got *g = &b->got[0];
    cr_assert_eq(g->type, RAFT_MSG_APP);
    cr_assert_eq(g->from, 1);
    cr_assert_eq(g->to, 2);
    cr_assert_eq(g->term, 7);
    cr_assert_eq(g->index, 10);
    cr_assert_eq(g->log_term, 5);
    cr_assert_eq(g->commit, 9);
    cr_assert_eq(g->n_entries, 3);
    const char want[] = "put k1 v1put k2 a-longer-value";
    cr_assert_eq(b->entries.len, sizeof want - 1);
    cr_assert_arr_eq(b->entries.data, want, sizeof want - 1);
    cr_assert_gt(g->clock_at, 1000, "receiver clock %llu not past the sender's",
                 (unsigned long long)g->clock_at);
    g = &b->got[1];
    cr_assert_eq(g->type, RAFT_MSG_HEARTBEAT);
    cr_assert_eq(g->commit, 12);
    cr_assert_eq(g->ctx, 120);
    cr_assert_gt(g->clock_at, b->got[0].clock_at);

    struct peer_stats sa = stats(a, 2), sb = stats(b, 0);
    cr_assert_eq(sa.sent, 2);
    cr_assert_eq(sa.connects, 1);
    cr_assert_eq(sa.dropped, 0);
    cr_assert_eq(sb.received, 2);
    cr_assert_eq(sb.bad_frames, 0);
    member_free(a);
    member_free(b);
    event_base_free(base);
}

Test(peer, queued_messages_arrive_after_the_peer_comes_up)
{
    struct event_base *base = event_base_new();
    struct peer_config ca = config(1, 42), cb = config(2, 42);
    struct member *a = member_new(base, &ca), *b = member_new(base, &cb);
    member_listen(b, "127.0.0.1:0"); /* only to reserve a port number */
    char addr[64];
    snprintf(addr, sizeof addr, "%s", b->addr);
    member_free(b);

    cr_assert_eq(peer_add(a->t, 2, addr), ERR_OK);
    for (uint64_t i = 1; i <= 3; i++) {
        struct raft_msg hb = heartbeat(1, 2, 3, i);
        cr_assert_eq(peer_send(a->t, &hb), ERR_OK);
    }
    run_until(base, NULL, NULL, 300); /* several refused dials */
    struct peer_stats sa = stats(a, 2);
    cr_assert_eq(sa.connects, 0);
    cr_assert_eq(sa.sent, 0);
    cr_assert_gt(sa.queued_bytes, 0);

    b = member_new(base, &cb);
    member_listen(b, addr);
    cr_assert(wait_n(base, b, 3, 5000), "delivered %zu of 3", b->n);
    for (size_t i = 0; i < 3; i++)
        cr_assert_eq(b->got[i].commit, i + 1);
    sa = stats(a, 2);
    cr_assert_eq(sa.connects, 1);
    cr_assert_eq(sa.queued_bytes, 0);
    member_free(a);
    member_free(b);
    event_base_free(base);
}

/* peer_flush writes what is queued at once: the frames reach the other
 * member while the sender's loop does not turn again (the leader's append
 * goes out before its own fsync, not after the loop's next turn). */
Test(peer, flush_writes_without_the_senders_loop)
{
    struct event_base *ba = event_base_new(), *bb = event_base_new();
    struct peer_config ca = config(1, 42), cb = config(2, 42);
    struct member *a = member_new(ba, &ca), *b = member_new(bb, &cb);
    member_listen(b, "127.0.0.1:0");
    cr_assert_eq(peer_add(a->t, 2, b->addr), ERR_OK);
    struct raft_msg hb = heartbeat(1, 2, 3, 1);
    cr_assert_eq(peer_send(a->t, &hb), ERR_OK);
    /* Both loops, until the connection is up both ways and one frame is in. */
    uint64_t deadline = clock_mono_ms() + 5000;
    while ((b->n < 1 || stats(a, 2).connects < 1) && clock_mono_ms() < deadline) {
        event_base_loop(ba, EVLOOP_NONBLOCK);
        event_base_loop(bb, EVLOOP_NONBLOCK);
    }
    cr_assert_eq(b->n, 1);
    /* Let a's loop finish what the first frame left (its write events). */
    for (int i = 0; i < 10; i++)
        event_base_loop(ba, EVLOOP_NONBLOCK);
    hb = heartbeat(1, 2, 3, 2);
    cr_assert_eq(peer_send(a->t, &hb), ERR_OK);
    peer_flush(a->t);
    /* Only b's loop from here on. */
    cr_assert(run_until(bb, has_n_2, b, 2000), "the flushed frame did not arrive: %zu of 2", b->n);
    cr_assert_eq(b->got[1].commit, 2);
    member_free(a);
    member_free(b);
    event_base_free(ba);
    event_base_free(bb);
}

static bool refused_twice(void *arg)
{
    struct member *b = arg;
    return stats(b, 0).refused_hellos >= 2;
}

Test(peer, hello_of_another_cluster_is_refused_and_the_dialer_keeps_trying)
{
    struct event_base *base = event_base_new();
    struct peer_config ca = config(1, 42), cb = config(2, 43);
    struct member *a = member_new(base, &ca), *b = member_new(base, &cb);
    member_listen(b, "127.0.0.1:0");
    cr_assert_eq(peer_add(a->t, 2, b->addr), ERR_OK);
    cr_assert_eq(peer_add(b->t, 1, "127.0.0.1:1"), ERR_OK); /* so B counts per peer too */
    /* Like a leader, keep sending heartbeats: the transport dials lazily, when
     * something is queued and the backoff has passed. */
    bool refused = false;
    for (int i = 0; i < 250 && !refused; i++) {
        struct raft_msg hb = heartbeat(1, 2, 3, (uint64_t)i + 1);
        int rc = peer_send(a->t, &hb);
        cr_assert(rc == ERR_OK || rc == ERR_AGAIN);
        refused = run_until(base, refused_twice, b, 20);
    }
    cr_assert(refused);
    cr_assert_eq(b->n, 0);
    struct peer_stats sb = stats(b, 0), sb1 = stats(b, 1), sa = stats(a, 2);
    cr_assert_geq(sb1.refused_hellos, 2);
    cr_assert_eq(sb.received, 0);
    cr_assert_geq(sa.connects, 2);
    cr_assert_geq(sa.disconnects, 1);
    member_free(a);
    member_free(b);
    event_base_free(base);
}

/* --- raw connections for bad input --- */

static int raw_connect(const char *addr)
{
    struct sockaddr_storage ss;
    socklen_t len;
    cr_assert_eq(net_parse_addr(addr, &ss, &len), ERR_OK);
    int fd = socket(ss.ss_family, SOCK_STREAM, 0);
    cr_assert_geq(fd, 0);
    cr_assert_eq(connect(fd, (struct sockaddr *)&ss, len), 0, "%s", strerror(errno));
    return fd;
}

static void raw_send(int fd, const void *p, size_t n)
{
    cr_assert_eq(send(fd, p, n, MSG_NOSIGNAL), (ssize_t)n);
}

static void raw_hello(int fd, uint64_t cluster, uint64_t from)
{
    struct buf b = BUF_INIT;
    struct msg_writer w;
    msg_begin(&w, &b, DDKV_MSG_PEER_HELLO, 7, 0, 3);
    mw_u64(&w, cluster);
    mw_u64(&w, from);
    mw_u64(&w, DDKV_PROTOCOL_VERSION);
    cr_assert_eq(msg_end(&w), ERR_OK);
    raw_send(fd, b.data, b.len);
    buf_free(&b);
}

struct closed_wait {
    struct member *mb;
    uint64_t bad;
    int fd;
};

/* The transport counted the bad frame and the raw socket sees EOF. */
static bool closed_and_counted(void *arg)
{
    struct closed_wait *c = arg;
    if (stats(c->mb, 0).bad_frames < c->bad)
        return false;
    char tmp[64];
    ssize_t r = recv(c->fd, tmp, sizeof tmp, MSG_DONTWAIT);
    return r == 0 || (r < 0 && errno == ECONNRESET);
}

static void expect_closed(struct event_base *base, struct member *b, int fd, uint64_t bad)
{
    struct closed_wait c = {b, bad, fd};
    cr_assert(run_until(base, closed_and_counted, &c, 5000), "bad frame %llu not closed/counted",
              (unsigned long long)bad);
    close(fd);
}

Test(peer, bad_input_closes_only_that_connection)
{
    struct event_base *base = event_base_new();
    struct peer_config ca = config(1, 42), cb = config(2, 42);
    cb.max_frame_bytes = 64u << 10;
    struct member *a = member_new(base, &ca), *b = member_new(base, &cb);
    member_listen(b, "127.0.0.1:0");
    cr_assert_eq(peer_add(a->t, 2, b->addr), ERR_OK);
    struct raft_msg hb = heartbeat(1, 2, 3, 1);
    cr_assert_eq(peer_send(a->t, &hb), ERR_OK);
    cr_assert(wait_n(base, b, 1, 5000));
    uint64_t clock_before = b->clock.now;

    /* 1. Garbage in a well-formed frame, instead of a hello. */
    int fd = raw_connect(b->addr);
    static const uint8_t junk[] = {0, 0, 0, 5, 0xc1, 0xc1, 0xc1, 0xc1, 0xc1};
    raw_send(fd, junk, sizeof junk);
    expect_closed(base, b, fd, 1);

    /* 2. A valid hello from node 9, then a Raft message claiming to be from 1. */
    fd = raw_connect(b->addr);
    raw_hello(fd, 42, 9);
    struct buf f = BUF_INIT;
    struct raft_msg spoof = heartbeat(1, 2, 99, 5);
    cr_assert_eq(raft_msg_encode(&spoof, UINT64_C(1) << 40, &f), ERR_OK);
    raw_send(fd, f.data, f.len);
    expect_closed(base, b, fd, 2);
    cr_assert_lt(b->clock.now, UINT64_C(1) << 40, "a refused frame moved the clock");

    /* 3. A hello, then a frame header over max_frame_bytes. */
    fd = raw_connect(b->addr);
    raw_hello(fd, 42, 9);
    uint8_t big[4];
    put_be32(big, cb.max_frame_bytes + 1);
    raw_send(fd, big, sizeof big);
    expect_closed(base, b, fd, 3);

    /* 4. Raw bytes that are no frame at all (a header of ~1.2 GB). */
    fd = raw_connect(b->addr);
    raw_send(fd, "GARBAGE!GARBAGE!", 16);
    expect_closed(base, b, fd, 4);

    /* 5. A hello, then a second hello (not a Raft message). */
    fd = raw_connect(b->addr);
    raw_hello(fd, 42, 9);
    raw_hello(fd, 42, 9);
    expect_closed(base, b, fd, 5);
    buf_free(&f);

    cr_assert_eq(b->n, 1, "nothing from the bad connections was delivered");
    cr_assert_geq(b->clock.now, clock_before);
    /* The well-behaved peer's connection was never touched. */
    hb = heartbeat(1, 2, 3, 2);
    cr_assert_eq(peer_send(a->t, &hb), ERR_OK);
    cr_assert(wait_n(base, b, 2, 5000));
    cr_assert_eq(b->got[1].commit, 2);
    cr_assert_eq(stats(a, 2).connects, 1);
    cr_assert_eq(stats(a, 2).disconnects, 0);
    cr_assert_eq(stats(b, 0).bad_frames, 5);
    member_free(a);
    member_free(b);
    event_base_free(base);
}

Test(peer, heartbeat_overtakes_queued_snapshot_chunks)
{
    enum { CHUNK = 1u << 20, NCHUNKS = 6 };
    struct event_base *base = event_base_new();
    struct peer_config ca = config(1, 42), cb = config(2, 42);
    ca.queue_bytes_max = 16u << 20;
    cb.max_frame_bytes = 2u << 20;
    struct member *a = member_new(base, &ca), *b = member_new(base, &cb);
    member_listen(b, "127.0.0.1:0");
    cr_assert_eq(peer_add(a->t, 2, b->addr), ERR_OK);
    struct raft_msg hb = heartbeat(1, 2, 3, 1);
    cr_assert_eq(peer_send(a->t, &hb), ERR_OK);
    cr_assert(wait_n(base, b, 1, 5000)); /* connected */

    uint8_t *data = malloc((size_t)CHUNK * NCHUNKS);
    cr_assert_not_null(data);
    for (size_t i = 0; i < (size_t)CHUNK * NCHUNKS; i++)
        data[i] = snap_byte(i);
    struct raft_conf conf = {.n = 3, .ids = {1, 2, 3}};
    for (uint32_t k = 0; k < NCHUNKS; k++) {
        struct raft_msg s = {.type = RAFT_MSG_SNAP, .from = 1, .to = 2, .term = 3, .index = 500,
                             .log_term = 2, .conf = conf, .offset = (uint64_t)k * CHUNK,
                             .data = data + (size_t)k * CHUNK, .len = CHUNK,
                             .flags = k == NCHUNKS - 1 ? RAFT_MSGF_LAST : 0};
        cr_assert_eq(peer_send(a->t, &s), ERR_OK);
    }
    hb = heartbeat(1, 2, 3, 2);
    cr_assert_eq(peer_send(a->t, &hb), ERR_OK);
    cr_assert(wait_n(base, b, 1 + NCHUNKS + 1, 10000), "delivered %zu", b->n);

    size_t hb_at = 0, next_chunk = 0;
    for (size_t i = 1; i < b->n; i++) {
        struct got *g = &b->got[i];
        if (g->type == RAFT_MSG_HEARTBEAT) {
            hb_at = i;
            continue;
        }
        cr_assert_eq(g->type, RAFT_MSG_SNAP);
        cr_assert_eq(g->offset, (uint64_t)next_chunk * CHUNK, "chunks out of order");
        cr_assert_eq(g->len, CHUNK);
        cr_assert(g->data_ok, "chunk %zu corrupted", next_chunk);
        next_chunk++;
    }
    cr_assert_eq(next_chunk, NCHUNKS);
    /* Queued after six chunks, delivered after at most the one already started
     * on the wire (position 1 is the first chunk, since got[0] is the warm-up). */
    cr_assert_leq(hb_at, 2, "heartbeat waited behind %zu snapshot chunks", hb_at - 1);
    cr_assert_eq(b->got[NCHUNKS + 1].flags & RAFT_MSGF_LAST, RAFT_MSGF_LAST);
    free(data);
    member_free(a);
    member_free(b);
    event_base_free(base);
}

Test(peer, queue_is_bounded_while_the_peer_is_down)
{
    struct event_base *base = event_base_new();
    struct peer_config ca = config(1, 42), cb = config(2, 42);
    ca.queue_bytes_max = 64u << 10;
    struct member *a = member_new(base, &ca), *b = member_new(base, &cb);
    member_listen(b, "127.0.0.1:0");
    char addr[64];
    snprintf(addr, sizeof addr, "%s", b->addr);
    member_free(b);
    cr_assert_eq(peer_add(a->t, 2, addr), ERR_OK);

    static uint8_t payload[1024];
    memset(payload, 'x', sizeof payload);
    size_t ok = 0, dropped = 0;
    for (uint64_t i = 0; i < 500; i++) {
        struct raft_entry e = {.term = 3, .type = RAFT_ENTRY_NORMAL, .data = payload,
                               .len = sizeof payload};
        struct raft_msg app = {.type = RAFT_MSG_APP, .from = 1, .to = 2, .term = 3,
                               .index = 100 + i, .log_term = 3, .entries = &e, .n_entries = 1};
        int rc = peer_send(a->t, &app);
        cr_assert(rc == ERR_OK || rc == ERR_AGAIN, "rc %d", rc);
        if (rc == ERR_OK)
            ok++;
        else
            dropped++;
        struct peer_stats s = stats(a, 2);
        cr_assert_leq(s.queued_bytes, ca.queue_bytes_max);
        if (i % 50 == 0)
            run_until(base, NULL, NULL, 5); /* let refused dials happen meanwhile */
    }
    cr_assert_gt(ok, 10);
    cr_assert_gt(dropped, 400);
    struct peer_stats s = stats(a, 2);
    cr_assert_eq(s.dropped, dropped);
    cr_assert_eq(stats(a, 0).dropped, dropped);

    b = member_new(base, &cb);
    member_listen(b, addr);
    cr_assert(wait_n(base, b, ok, 5000), "delivered %zu of %zu", b->n, ok);
    run_until(base, NULL, NULL, 50);
    cr_assert_eq(b->n, ok);
    for (size_t i = 1; i < b->n; i++)
        cr_assert_gt(b->got[i].index, b->got[i - 1].index, "out of order");
    cr_assert_eq(stats(a, 2).sent, ok);
    member_free(a);
    member_free(b);
    event_base_free(base);
}

/* --- the cluster token handshake (issue 22) --- */

/* a -> b with the given tokens: delivered (true) or refused. */
static bool token_pair_delivers(const char *ta, const char *tb)
{
    struct event_base *base = event_base_new();
    struct peer_config ca = config(1, 42), cb = config(2, 42);
    ca.token = ta;
    cb.token = tb;
    struct member *a = member_new(base, &ca), *b = member_new(base, &cb);
    member_listen(b, "127.0.0.1:0");
    cr_assert_eq(peer_add(a->t, 2, b->addr), ERR_OK);
    /* A few redials' worth (backoff 20..200 ms): either side may be the one
     * that refuses (the dialer checks the acceptor's proof first). */
    bool delivered = false;
    for (int i = 0; i < 40 && !delivered; i++) {
        struct raft_msg hb = heartbeat(1, 2, 3, (uint64_t)i + 1);
        int rc = peer_send(a->t, &hb);
        cr_assert(rc == ERR_OK || rc == ERR_AGAIN);
        delivered = wait_n(base, b, 1, 20);
    }
    if (!delivered) {
        cr_assert_eq(b->n, 0);
        /* A dialer with a token waits for the proof before it calls the
         * connection up; one without cannot know it was refused. */
        if (ta && *ta)
            cr_assert_eq(stats(a, 2).connects, 0, "the dialer counted a refused connection as up");
        cr_assert_eq(stats(b, 0).received, 0);
    }
    member_free(a);
    member_free(b);
    event_base_free(base);
    return delivered;
}

Test(peer, cluster_token_must_be_proven_both_ways)
{
    cr_assert(token_pair_delivers("s3cret", "s3cret"), "same token: not delivered");
    cr_assert(!token_pair_delivers("s3cret", "other"), "another token: delivered");
    cr_assert(!token_pair_delivers(NULL, "s3cret"), "no token to a node with one: delivered");
    cr_assert(!token_pair_delivers("s3cret", NULL), "a token to a node without: delivered");
    cr_assert(token_pair_delivers(NULL, NULL), "no token on either side: not delivered");
    cr_assert(token_pair_delivers("", NULL), "an empty token is none");
}

Test(peer, auth_tags_bind_role_ids_cluster_and_nonces)
{
    uint8_t nd[DDKV_PEER_NONCE_BYTES] = {1}, na[DDKV_PEER_NONCE_BYTES] = {2}, base_tag[32], t[32];
    peer_auth_mac("tok", 'D', 42, 1, 2, nd, na, base_tag);
    peer_auth_mac("tok", 'D', 42, 1, 2, nd, na, t);
    cr_assert_eq(memcmp(base_tag, t, 32), 0, "not deterministic");
    peer_auth_mac("tok", 'A', 42, 1, 2, nd, na, t);
    cr_assert_neq(memcmp(base_tag, t, 32), 0, "role not bound (reflection)");
    peer_auth_mac("tok", 'D', 43, 1, 2, nd, na, t);
    cr_assert_neq(memcmp(base_tag, t, 32), 0, "cluster not bound");
    peer_auth_mac("tok", 'D', 42, 2, 1, nd, na, t);
    cr_assert_neq(memcmp(base_tag, t, 32), 0, "direction not bound");
    peer_auth_mac("tok", 'D', 42, 1, 2, na, nd, t);
    cr_assert_neq(memcmp(base_tag, t, 32), 0, "nonces not bound in order");
    peer_auth_mac("tok2", 'D', 42, 1, 2, nd, na, t);
    cr_assert_neq(memcmp(base_tag, t, 32), 0, "token not bound");
}

Test(peer, silent_connections_cannot_lock_a_member_out)
{
    /* Fill every inbound slot with connections that never say hello; a
     * member dialling then still gets in (an unidentified one makes room). */
    struct event_base *base = event_base_new();
    struct peer_config ca = config(1, 42), cb = config(2, 42);
    ca.token = cb.token = "tok";
    struct member *a = member_new(base, &ca), *b = member_new(base, &cb);
    member_listen(b, "127.0.0.1:0");
    enum { SILENT = 300 };
    static int fds[SILENT];
    for (int i = 0; i < SILENT; i++) {
        fds[i] = raw_connect(b->addr);
        run_until(base, NULL, NULL, 1);
    }
    cr_assert_eq(peer_add(a->t, 2, b->addr), ERR_OK);
    bool delivered = false;
    for (int i = 0; i < 100 && !delivered; i++) {
        struct raft_msg hb = heartbeat(1, 2, 3, (uint64_t)i + 1);
        int rc = peer_send(a->t, &hb);
        cr_assert(rc == ERR_OK || rc == ERR_AGAIN);
        delivered = wait_n(base, b, 1, 20);
    }
    cr_assert(delivered, "a member was locked out by silent connections");
    for (int i = 0; i < SILENT; i++)
        close(fds[i]);
    member_free(a);
    member_free(b);
    event_base_free(base);
}

Test(peer, unproven_hello_moves_no_clock_and_learns_nothing)
{
    struct event_base *base = event_base_new();
    struct peer_config cb = config(2, 42);
    cb.token = "tok";
    struct member *b = member_new(base, &cb);
    member_listen(b, "127.0.0.1:0");
    uint64_t before = b->clock.now;
    /* The hello of issue 22: the right cluster, time 2^62 - 300, no proof;
     * then a heartbeat as if accepted. */
    int fd = raw_connect(b->addr);
    struct buf hb = BUF_INIT;
    struct msg_writer w;
    msg_begin(&w, &hb, DDKV_MSG_PEER_HELLO, DDKV_LAMPORT_MAX - 300, 0, 3);
    mw_u64(&w, 42);
    mw_u64(&w, 1);
    mw_u64(&w, DDKV_PROTOCOL_VERSION);
    cr_assert_eq(msg_end(&w), ERR_OK);
    struct raft_msg m = heartbeat(1, 2, 9, 1);
    cr_assert_eq(raft_msg_encode(&m, DDKV_LAMPORT_MAX - 300, &hb), ERR_OK);
    raw_send(fd, hb.data, hb.len);
    buf_free(&hb);
    expect_closed(base, b, fd, 0);
    cr_assert_eq(b->n, 0, "a message behind an unproven hello was delivered");
    cr_assert_eq(b->clock.now, before, "an unproven hello moved the clock to %llu", (unsigned long long)b->clock.now);
    cr_assert_geq(stats(b, 0).refused_hellos, 1);
    member_free(b);
    event_base_free(base);
}
