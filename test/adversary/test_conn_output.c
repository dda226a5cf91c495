/* Issue 22, finding 3: clients that pipeline requests for large replies and
 * never read them. Ten connections to the leader of a 3-node cluster send
 * READs of a 1 MiB value (four stale, four linearizable) and stale LISTs of
 * 2 MiB pages (two) as fast as their sockets take them, reading nothing, for 8 s. Before the
 * fix the leader decoded everything buffered and queued every reply (about
 * 300 MiB per connection, GiBs in seconds). Asserted: the leader's RSS stays
 * under 256 MiB, a well-behaved writer's p99 under 100 ms with no error, the
 * leader keeps its leadership (same member, same term), and every write
 * acknowledged before and during the attack is there after it. */
#include "conn_attack.h"

static struct proc_cluster pc;

static void stop_all(void)
{
    pc_cleanup(&pc);
}

TestSuite(conn_output, .fini = stop_all, .timeout = 240);

#define RSS_BOUND_KB (256L * 1024)
#define RSS_ABORT_KB (1536L * 1024) /* stop the attack early: the machine is shared */
#define ATTACK_MS 8000
#define ATTACKERS 10
#define LISTERS 2
#define BIG_VALUE (1u << 20)
#define LIST_KEYS 8

struct attacker {
    pthread_t th;
    int port;
    bool list;
    uint32_t consistency;
    char src[32];
    volatile int *stop;
    uint64_t sent_bytes, requests;
    bool connected;
};

/* Pipeline the same request over and over, never reading. */
static void *attacker_main(void *arg)
{
    struct attacker *a = arg;
    int fd = conn_from(a->src, a->port, 2000);
    if (fd < 0)
        return NULL;
    a->connected = true;
    struct buf frames = BUF_INIT;
    for (uint64_t rid = 1; rid <= 256; rid++) {
        struct msg_writer w;
        if (a->list) {
            msg_begin(&w, &frames, DDKV_MSG_LIST, 1, rid, 4);
            mw_bin(&w, "list/", 5);
            mw_nil(&w);
            mw_u64(&w, 1000);
            mw_u64(&w, DDKV_CONSISTENCY_STALE);
        } else {
            msg_begin(&w, &frames, DDKV_MSG_READ, 1, rid, 3);
            mw_bin(&w, "big", 3);
            mw_u64(&w, a->consistency);
            mw_u64(&w, 0);
        }
        msg_end(&w);
    }
    size_t off = 0;
    uint64_t until = clock_mono_ms() + ATTACK_MS;
    while (!*a->stop && clock_mono_ms() < until) {
        struct pollfd p = {.fd = fd, .events = POLLOUT};
        if (poll(&p, 1, 50) <= 0)
            continue;
        ssize_t n = send(fd, frames.data + off, frames.len - off, MSG_NOSIGNAL);
        if (n < 0 && (errno == EAGAIN || errno == EINTR))
            continue;
        if (n <= 0)
            break; /* cut off by the node */
        a->sent_bytes += (uint64_t)n;
        off += (size_t)n;
        if (off == frames.len) {
            off = 0;
            a->requests += 256;
        }
    }
    buf_free(&frames);
    close(fd);
    return NULL;
}

Test(conn_output, pipelined_large_replies_never_read)
{
    conn_small_quarantine();
    static const char *const extra[] = {"--election-timeout-ms", "1000", "--heartbeat-ms", "100", NULL};
    cr_assert_eq(pc_start(&pc, 3, extra), 0, "cluster did not start (see %s)", pc.nodes[0].log);
    int leader = pc_leader(&pc, 15000);
    cr_assert_geq(leader, 0, "no leader elected");
    char lname[64];
    uint64_t term0 = 0, term1 = 0;
    cr_assert_eq(pn_pong(pc.nodes[leader].port, lname, sizeof lname, &term0), 0);
    char ep[512], lep[64];
    pc_endpoints(&pc, ep, sizeof ep);
    snprintf(lep, sizeof lep, "127.0.0.1:%d", pc.nodes[leader].port);

    /* The large values the attack asks for. */
    struct ddkv_options o;
    ddkv_options_init(&o);
    o.endpoints = ep;
    o.timeout_ms = 10000;
    ddkv_client *c = NULL;
    char err[256];
    cr_assert_eq(ddkv_client_new(&o, &c, err, sizeof err), DDKV_OK, "%s", err);
    char *big = malloc(BIG_VALUE);
    memset(big, 'x', BIG_VALUE);
    cr_assert_eq(kv_put(c, "big", 3, big, BIG_VALUE), DDKV_OK, "%s", ddkv_client_errmsg(c));
    for (int i = 0; i < LIST_KEYS; i++) {
        char key[32];
        snprintf(key, sizeof key, "list/%d", i);
        cr_assert_eq(kv_put(c, key, strlen(key), big, BIG_VALUE / 2), DDKV_OK, "%s",
                     ddkv_client_errmsg(c));
    }
    free(big);
    ddkv_client_free(c);

    /* Writes acknowledged before the attack. */
    static struct writer before, during;
    memset(&before, 0, sizeof before);
    snprintf(before.endpoints, sizeof before.endpoints, "%s", ep);
    snprintf(before.prefix, sizeof before.prefix, "pre/");
    pthread_create(&before.th, NULL, writer_main, &before);
    usleep(500 * 1000);
    before.stop = 1;
    pthread_join(before.th, NULL);
    cr_assert_eq(before.errors, 0, "%s", before.err);

    long rss0 = pn_rss_kb(&pc.nodes[leader]);
    memset(&during, 0, sizeof during);
    snprintf(during.endpoints, sizeof during.endpoints, "%s", lep);
    snprintf(during.prefix, sizeof during.prefix, "during/");
    during.pause_ms = 5;
    pthread_create(&during.th, NULL, writer_main, &during);

    static struct attacker att[ATTACKERS];
    volatile int stop = 0;
    for (int i = 0; i < ATTACKERS; i++) {
        memset(&att[i], 0, sizeof att[i]);
        att[i].port = pc.nodes[leader].port;
        att[i].list = i < LISTERS;
        /* Stale reads are answered at once; linearizable ones wait for their
         * ReadIndex round, so their replies land together. */
        att[i].consistency = i < ATTACKERS / 2 + 1 ? DDKV_CONSISTENCY_STALE : DDKV_CONSISTENCY_LINEARIZABLE;
        att[i].stop = &stop;
        snprintf(att[i].src, sizeof att[i].src, "127.0.0.%d", 2 + i);
        pthread_create(&att[i].th, NULL, attacker_main, &att[i]);
    }
    long rss_max = rss0;
    uint64_t until = clock_mono_ms() + ATTACK_MS;
    while (clock_mono_ms() < until) {
        long r = pn_rss_kb(&pc.nodes[leader]);
        if (r > rss_max)
            rss_max = r;
        if (r > RSS_ABORT_KB)
            break;
        usleep(100 * 1000);
    }
    stop = 1;
    uint64_t requests = 0, sent = 0;
    for (int i = 0; i < ATTACKERS; i++) {
        pthread_join(att[i].th, NULL);
        requests += att[i].requests;
        sent += att[i].sent_bytes;
        cr_assert(att[i].connected, "attacker %d could not connect", i);
    }
    during.stop = 1;
    pthread_join(during.th, NULL);
    double p50 = writer_quantile_ms(&during, 0.5), p99 = writer_quantile_ms(&during, 0.99);
    int now_leader = pc_leader(&pc, 5000);
    cr_assert_eq(pn_pong(pc.nodes[leader].port, lname, sizeof lname, &term1), 0);
    fprintf(stderr,
            "conn_output: leader RSS %ld MiB before, max %ld MiB during (bound %ld); attackers sent %llu bytes "
            "(%llu requests); writer %d writes, p50 %.1f ms, p99 %.1f ms, %d errors; leader n%d -> n%d, term "
            "%llu -> %llu\n",
            rss0 / 1024, rss_max / 1024, RSS_BOUND_KB / 1024, (unsigned long long)sent,
            (unsigned long long)requests, during.n, p50, p99, during.errors, leader + 1, now_leader + 1,
            (unsigned long long)term0, (unsigned long long)term1);
    cr_assert_lt(rss_max, RSS_BOUND_KB, "leader RSS reached %ld MiB (bound %ld MiB)", rss_max / 1024,
                 RSS_BOUND_KB / 1024);
    cr_assert_eq(during.errors, 0, "well-behaved writer failed: %s", during.err);
    cr_assert_gt(during.n, 20, "well-behaved writer made only %d writes", during.n);
    cr_assert_lt(p99, 100.0, "well-behaved writer p99 %.1f ms during the attack", p99);
    cr_assert_eq(now_leader, leader, "leadership moved from n%d to n%d", leader + 1, now_leader + 1);
    cr_assert_eq(term1, term0, "term went from %llu to %llu", (unsigned long long)term0, (unsigned long long)term1);
    writer_check_present(&before, ep);
    writer_check_present(&during, ep);
}
