/* Fuzz the peer path as a node runs it, past the handshake: the input is a
 * frame body a member sends. First the decoders alone (message, Raft message,
 * each appended entry as a kv command: whatever decodes must re-encode to
 * bytes that decode the same); then the same bytes as a frame on a real peer
 * transport (src/core/node/peer.c) over a socketpair, after a complete cluster
 * token handshake as member 1, so they reach the transport's Raft intake and,
 * when they are a Raft message from member 1 to member 2, a Raft core (member
 * 2 of {1, 2, 3}) stepped with it and driven through ready/advance. Nothing
 * may crash, leak or read out of bounds. */
#include <event2/event.h>
#include <openssl/rand.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "consensus/raft.h"
#include "kv/cmd.h"
#include "node/peer.h"
#include "proto/msg.h"
#include "util/log.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const struct mpcheck_limits peer_limits = {.max_depth = 8, .max_objects = 1u << 16};

#define FUZZ_TOKEN "fuzz-cluster-token"
#define FUZZ_CLUSTER 42
#define FUZZ_FROM 1
#define FUZZ_SELF 2

/* --- the decoders alone (as before the session existed) --- */

static void fuzz_decoders(const uint8_t *data, size_t size)
{
    struct msg wm;
    struct errbuf eb;
    if (msg_decode(&wm, data, size, &peer_limits, &eb) != ERR_OK)
        return;
    struct raft_msg m;
    if (raft_msg_decode(&wm, &m) == ERR_OK) {
        for (uint32_t i = 0; i < m.n_entries; i++) {
            const struct raft_entry *e = &m.entries[i];
            struct cmd c;
            if (e->type == RAFT_ENTRY_NORMAL && e->len > 0 && cmd_decode(e->data, e->len, &c) == ERR_OK) {
                /* A decoded command re-encodes to the same bytes. */
                struct buf b = BUF_INIT;
                if (cmd_encode(&c, &b) == ERR_OK && (b.len != e->len || memcmp(b.data, e->data, b.len) != 0))
                    __builtin_trap();
                buf_free(&b);
            }
        }
        /* What decoded re-encodes and decodes to the same message. */
        struct buf out = BUF_INIT;
        if (raft_msg_encode(&m, wm.lamport, &out) == ERR_OK) {
            struct msg wm2;
            struct raft_msg m2;
            if (msg_decode(&wm2, out.data + 4, out.len - 4, &peer_limits, &eb) != ERR_OK)
                __builtin_trap();
            if (raft_msg_decode(&wm2, &m2) != ERR_OK)
                __builtin_trap();
            if (m2.type != m.type || m2.term != m.term || m2.index != m.index ||
                m2.n_entries != m.n_entries || m2.from != m.from || m2.to != m.to)
                __builtin_trap();
            raft_msg_release(&m2);
            msg_free(&wm2);
        }
        buf_free(&out);
        raft_msg_release(&m);
    }
    msg_free(&wm);
}

/* --- the session: a transport with a token and a Raft core behind it --- */

static struct event_base *fz_base;
static struct peer_transport *fz_t;
static struct lamport fz_clock;
static struct raft *fz_raft; /* per input */
static uint64_t fz_delivered;

static int fz_snap_read(void *ud, const struct raft_snap_meta *meta, uint64_t offset, uint8_t *buf, size_t cap,
                        size_t *n, bool *last)
{
    (void)ud, (void)meta, (void)offset, (void)buf, (void)cap, (void)n, (void)last;
    return ERR_NOT_FOUND;
}

/* The core as the node drives it, minus the disk: every ready is taken as
 * persisted and applied at once. Bounded: each ready settles what it names. */
static void fz_drive(void)
{
    for (int i = 0; i < 64 && raft_has_ready(fz_raft); i++) {
        struct raft_ready rd;
        raft_ready(fz_raft, &rd);
        raft_advance(fz_raft, &rd);
    }
}

static void fz_deliver(void *ud, const struct raft_msg *m)
{
    (void)ud;
    fz_delivered++;
    (void)raft_step(fz_raft, m);
    fz_drive();
}

/* DDKV_FUZZ_PEER_STATS=1: say at exit how many inputs reached the Raft core
 * (to check that the session gets past the handshake). */
static uint64_t fz_inputs;
static void fz_stats(void)
{
    fprintf(stderr, "fuzz_peer: %llu inputs, %llu Raft messages delivered to the core\n",
            (unsigned long long)fz_inputs, (unsigned long long)fz_delivered);
}

static void fz_setup(void)
{
    if (getenv("DDKV_FUZZ_PEER_STATS"))
        atexit(fz_stats);
    log_set_level(LOG_ERROR); /* a line per connection would drown the fuzzer's output */
    fz_base = event_base_new();
    struct peer_config cfg;
    peer_config_defaults(&cfg);
    cfg.self_id = FUZZ_SELF;
    cfg.cluster_id = FUZZ_CLUSTER;
    cfg.max_frame_bytes = 1u << 20;
    cfg.token = FUZZ_TOKEN;
    struct errbuf eb;
    if (!fz_base || peer_transport_new(fz_base, &cfg, &fz_clock, fz_deliver, NULL, &fz_t, &eb) != ERR_OK)
        abort();
}

static void fz_raft_new(void)
{
    struct raft_conf c = {.n = 3, .ids = {1, 2, 3}};
    struct raft_bootstrap_buf bb;
    struct raft_persisted p;
    struct raft_config cfg;
    struct errbuf eb;
    raft_config_defaults(&cfg, FUZZ_SELF);
    cfg.snap_src.read = fz_snap_read;
    if (raft_bootstrap(&c, &bb, &p) != ERR_OK || raft_create(&cfg, &p, &fz_raft, &eb) != ERR_OK)
        abort();
    fz_drive();
}

static void fz_turns(int n)
{
    for (int i = 0; i < n; i++)
        event_base_loop(fz_base, EVLOOP_NONBLOCK);
}

/* One frame from the socket, within a few loop turns; 0 or -1. */
static int fz_recv_frame(int fd, struct buf *out)
{
    buf_reset(out);
    for (int i = 0; i < 50; i++) {
        fz_turns(1);
        uint8_t tmp[1024];
        ssize_t r = recv(fd, tmp, sizeof tmp, MSG_DONTWAIT);
        if (r > 0 && buf_append(out, tmp, (size_t)r) != ERR_OK)
            return -1;
        if (r == 0)
            return -1;
        if (out->len >= 4) {
            uint32_t len = get_be32(out->data);
            if (out->len >= 4 + (size_t)len)
                return 0;
        }
    }
    return -1;
}

static void fz_send(int fd, const void *p, size_t n)
{
    const uint8_t *b = p;
    while (n > 0) {
        ssize_t w = send(fd, b, n, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (w <= 0) {
            fz_turns(1); /* let the transport read */
            continue;
        }
        b += w;
        n -= (size_t)w;
    }
}

/* Hello with a nonce, the acceptor's challenge, our proof: 0 once done. */
static int fz_handshake(int fd)
{
    uint8_t nd[DDKV_PEER_NONCE_BYTES];
    memset(nd, 0x5a, sizeof nd); /* any nonce will do for the fuzzer's side */
    struct buf b = BUF_INIT;
    struct msg_writer w;
    msg_begin(&w, &b, DDKV_MSG_PEER_HELLO, 1, 0, 7);
    mw_u64(&w, FUZZ_CLUSTER);
    mw_u64(&w, FUZZ_FROM);
    mw_u64(&w, DDKV_PROTOCOL_VERSION);
    mw_str(&w, "n1");
    mw_str(&w, "127.0.0.1:1");
    mw_str(&w, "127.0.0.1:2");
    mw_bin(&w, nd, sizeof nd);
    if (msg_end(&w) != ERR_OK)
        abort();
    fz_send(fd, b.data, b.len);
    int rc = -1;
    struct msg m;
    struct errbuf eb;
    if (fz_recv_frame(fd, &b) == 0 && msg_decode(&m, b.data + 4, b.len - 4, &peer_limits, &eb) == ERR_OK) {
        uint64_t aid;
        const uint8_t *na;
        size_t nal;
        if (m.type == DDKV_MSG_PEER_CHALLENGE && msg_u64(&m, 0, &aid) == ERR_OK && aid == FUZZ_SELF &&
            msg_bytes(&m, 1, &na, &nal) == ERR_OK && nal == DDKV_PEER_NONCE_BYTES) {
            uint8_t tag[DDKV_PEER_MAC_BYTES];
            peer_auth_mac(FUZZ_TOKEN, 'D', FUZZ_CLUSTER, FUZZ_FROM, FUZZ_SELF, nd, na, tag);
            struct buf a = BUF_INIT;
            msg_begin(&w, &a, DDKV_MSG_PEER_AUTH, 1, 0, 1);
            mw_bin(&w, tag, sizeof tag);
            if (msg_end(&w) != ERR_OK)
                abort();
            fz_send(fd, a.data, a.len);
            buf_free(&a);
            rc = 0;
        }
        msg_free(&m);
    }
    buf_free(&b);
    return rc;
}

static void fuzz_session(const uint8_t *data, size_t size)
{
    if (!fz_t)
        fz_setup();
    fz_inputs++;
    fz_raft_new();
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) != 0)
        abort();
    if (peer_accept_fd(fz_t, sv[0]) != ERR_OK)
        abort();
    /* The handshake must succeed every time: the token is known. */
    if (fz_handshake(sv[1]) != 0)
        __builtin_trap();
    uint8_t hdr[4];
    put_be32(hdr, (uint32_t)size);
    fz_send(sv[1], hdr, sizeof hdr);
    fz_send(sv[1], data, size);
    fz_turns(4);
    close(sv[1]);
    fz_turns(4); /* the transport sees the close and frees the connection */
    raft_destroy(fz_raft);
    fz_raft = NULL;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fuzz_decoders(data, size);
    if (size <= (1u << 20))
        fuzz_session(data, size);
    return 0;
}
