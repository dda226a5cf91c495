/* Helpers for the peer attacks (test_peer_*.c): a hostile program on the peer
 * and client ports of real nodes. The attacker speaks raw frames: hellos with
 * or without a nonce, the token handshake done right or with a wrong token,
 * Raft messages claiming any sender, client PINGs with any Lamport time. It
 * also measures a well-behaved client's writes meanwhile. Everything talks to
 * 127.0.0.1 only and every loop is bounded. */
#ifndef DDKV_TEST_PEER_LIB_H
#define DDKV_TEST_PEER_LIB_H

#include <criterion/criterion.h>
#include <errno.h>
#include <openssl/rand.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "consensus/raft.h"
#include "ddkv/wire.h"
#include "harness.h"
#include "node/peer.h"
#include "node/cluster.h"
#include "proto/msg.h"
#include "util/buf.h"
#include "util/clock.h"

#define TP_TOKEN "adversary-test-token-3f9c2b7a51d04e8e"

static inline void tp_sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* One request on a fresh connection to a client port; the reply in *m (the
 * caller frees it and hold). 0 or -1. */
static inline int tp_rpc(int port, const struct buf *req, struct buf *hold, struct msg *m)
{
    int fd = tcp_connect_port(port);
    if (fd < 0)
        return -1;
    int rc = rpc(fd, req, hold, m);
    close(fd);
    return rc;
}

/* The cluster id from STATUS (what the ops port's /status shows to anyone). */
static inline uint64_t tp_cluster_id(int port)
{
    struct buf req = BUF_INIT, hold = BUF_INIT;
    struct msg_writer w;
    msg_begin(&w, &req, DDKV_MSG_STATUS, 1, 3, 0);
    msg_end(&w);
    struct msg m;
    uint64_t id = 0;
    if (tp_rpc(port, &req, &hold, &m) == 0) {
        if (m.type == DDKV_MSG_STATUS_RESULT && m.nf >= 1) {
            const msgpack_object *o = mpo_map_get(&m.f[0], "cluster_id");
            const uint8_t *p;
            size_t n;
            char hex[17] = {0};
            if (o && mpo_bytes(o, &p, &n) == ERR_OK && n == 16) {
                memcpy(hex, p, 16);
                id = strtoull(hex, NULL, 16);
            }
        }
        msg_free(&m);
    }
    buf_free(&req);
    buf_free(&hold);
    return id;
}

/* A node's Lamport clock as its PONG's header shows it (0: no answer). */
static inline uint64_t tp_clock(int port)
{
    struct buf req = BUF_INIT, hold = BUF_INIT;
    req_ping(&req, 5);
    struct msg m;
    uint64_t t = 0;
    if (tp_rpc(port, &req, &hold, &m) == 0) {
        t = m.lamport;
        msg_free(&m);
    }
    buf_free(&req);
    buf_free(&hold);
    return t;
}

/* The highest clock of the live members. */
/* The largest VmRSS (MiB) among the cluster's live members (0 if none read). */
static inline unsigned tp_max_rss_mib(struct proc_cluster *pc)
{
    unsigned max = 0;
    for (int i = 0; i < pc->n; i++) {
        char path[64], line[256];
        snprintf(path, sizeof path, "/proc/%d/status", (int)pc->nodes[i].pid);
        FILE *f = fopen(path, "r");
        if (!f)
            continue;
        unsigned kb = 0;
        while (fgets(line, sizeof line, f))
            if (sscanf(line, "VmRSS: %u kB", &kb) == 1)
                break;
        fclose(f);
        if (kb / 1024 > max)
            max = kb / 1024;
    }
    return max;
}

static inline uint64_t tp_max_clock(struct proc_cluster *pc)
{
    uint64_t max = 0;
    for (int i = 0; i < pc->n; i++) {
        uint64_t t = pc->nodes[i].pid > 0 ? tp_clock(pc->nodes[i].port) : 0;
        if (t > max)
            max = t;
    }
    return max;
}

enum tp_proof {
    TP_NO_NONCE,    /* a hello as before the token handshake existed */
    TP_BAD_PROOF, /* a nonce, then a tag made with another token */
    TP_PROVEN,      /* the real handshake (a faulty member: it holds the token) */
};

/* Connect to a peer port and say hello as `name` with the given proof. With a
 * nonce, waits up to 1 s for the challenge and answers it (a node that sends
 * none, as before the handshake existed, gets the frames anyway). Returns the
 * socket (the caller closes it) or -1 if the connection could not be made. */
static inline int tp_hello(int peer_port, uint64_t cluster, const char *name, uint64_t lamport,
                           const char *client_addr, enum tp_proof proof)
{
    int fd = tcp_connect_port(peer_port);
    if (fd < 0)
        return -1;
    uint8_t nonce_d[DDKV_PEER_NONCE_BYTES];
    cr_assert_eq(RAND_bytes(nonce_d, sizeof nonce_d), 1);
    struct buf b = BUF_INIT;
    struct msg_writer w;
    msg_begin(&w, &b, DDKV_MSG_PEER_HELLO, lamport, 0, proof == TP_NO_NONCE ? 6 : 7);
    mw_u64(&w, cluster);
    mw_u64(&w, cluster_node_id(name));
    mw_u64(&w, DDKV_PROTOCOL_VERSION);
    mw_str(&w, name);
    mw_str(&w, client_addr);
    mw_str(&w, client_addr);
    if (proof != TP_NO_NONCE)
        mw_bin(&w, nonce_d, sizeof nonce_d);
    cr_assert_eq(msg_end(&w), ERR_OK);
    (void)send_all(fd, b.data, b.len);
    buf_free(&b);
    if (proof == TP_NO_NONCE)
        return fd;
    struct buf hold = BUF_INIT;
    struct msg m;
    struct errbuf eb;
    if (recv_frame(fd, 1000, &hold) == 0 && msg_decode(&m, hold.data, hold.len, &msg_limits_reply, &eb) == ERR_OK) {
        uint64_t aid = 0;
        const uint8_t *na = NULL;
        size_t nal = 0;
        if (m.type == DDKV_MSG_PEER_CHALLENGE && msg_u64(&m, 0, &aid) == ERR_OK &&
            msg_bytes(&m, 1, &na, &nal) == ERR_OK && nal == DDKV_PEER_NONCE_BYTES) {
            uint8_t tag[DDKV_PEER_MAC_BYTES];
            peer_auth_mac(proof == TP_PROVEN ? TP_TOKEN : "not-the-token", 'D', cluster, cluster_node_id(name), aid,
                          nonce_d, na, tag);
            struct buf a = BUF_INIT;
            msg_begin(&w, &a, DDKV_MSG_PEER_AUTH, lamport, 0, 1);
            mw_bin(&w, tag, sizeof tag);
            cr_assert_eq(msg_end(&w), ERR_OK);
            (void)send_all(fd, a.data, a.len);
            buf_free(&a);
        }
        msg_free(&m);
    }
    buf_free(&hold);
    return fd;
}

/* A Raft message on a peer connection (errors ignored: the node may have
 * closed it, which is the point). */
static inline void tp_raft(int fd, uint32_t type, uint64_t from, uint64_t to, uint64_t term, uint64_t lamport)
{
    struct raft_msg rm;
    memset(&rm, 0, sizeof rm);
    rm.type = type;
    rm.from = from;
    rm.to = to;
    rm.term = term;
    rm.index = 1u << 30; /* a log that claims to be far ahead */
    rm.log_term = term;
    struct buf b = BUF_INIT;
    if (raft_msg_encode(&rm, lamport, &b) == ERR_OK)
        (void)send(fd, b.data, b.len, MSG_NOSIGNAL | MSG_DONTWAIT);
    buf_free(&b);
}

/* A well-behaved client: writes to the leader, one at a time, until stopped;
 * each latency and each failure recorded. */
#define TP_LAT_MAX 20000
struct tp_writer {
    struct proc_cluster *pc;
    atomic_bool stop;
    pthread_t th;
    int leader;
    uint32_t n, failed;
    double ms[TP_LAT_MAX];
    uint32_t acked[TP_LAT_MAX]; /* the key numbers acknowledged */
    char prefix[16];
};

static void *tp_writer_main(void *arg)
{
    struct tp_writer *wr = arg;
    for (uint32_t k = 0; !atomic_load(&wr->stop) && wr->n < TP_LAT_MAX; k++) {
        char key[48], val[32];
        snprintf(key, sizeof key, "%s/%u", wr->prefix, k);
        snprintf(val, sizeof val, "v%u", k);
        uint64_t t0 = clock_mono_ns();
        int rc = wr->leader >= 0 ? pn_write(wr->pc->nodes[wr->leader].port, key, val, strlen(val)) : -1;
        double ms = (double)(clock_mono_ns() - t0) / 1e6;
        if (rc == 0) {
            wr->acked[wr->n] = k;
            wr->ms[wr->n++] = ms;
        } else {
            wr->failed++;
            wr->leader = pc_leader(wr->pc, 3000);
        }
        tp_sleep_ms(5);
    }
    return NULL;
}

static inline void tp_writer_start(struct tp_writer *wr, struct proc_cluster *pc, int leader, const char *prefix)
{
    memset(wr, 0, sizeof *wr);
    wr->pc = pc;
    wr->leader = leader;
    snprintf(wr->prefix, sizeof wr->prefix, "%s", prefix);
    cr_assert_eq(pthread_create(&wr->th, NULL, tp_writer_main, wr), 0);
}

static int tp_cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* Stop the writer; its p99 in ms (0 if no write succeeded). */
static inline double tp_writer_stop(struct tp_writer *wr)
{
    atomic_store(&wr->stop, true);
    pthread_join(wr->th, NULL);
    if (!wr->n)
        return 0;
    qsort(wr->ms, wr->n, sizeof wr->ms[0], tp_cmp_double);
    return wr->ms[(size_t)((double)(wr->n - 1) * 0.99)];
}

/* How many keys the writer had acknowledged are missing (read from member i). */
static inline uint32_t tp_missing(struct proc_cluster *pc, const struct tp_writer *wr, int i)
{
    uint32_t missing = 0;
    struct buf out = BUF_INIT;
    for (uint32_t j = 0; j < wr->n; j++) {
        char key[48], val[32];
        snprintf(key, sizeof key, "%s/%u", wr->prefix, wr->acked[j]);
        snprintf(val, sizeof val, "v%u", wr->acked[j]);
        if (pn_read(pc->nodes[i].port, key, &out) != 0 || out.len != strlen(val) || memcmp(out.data, val, out.len))
            missing++;
    }
    buf_free(&out);
    return missing;
}

#endif
