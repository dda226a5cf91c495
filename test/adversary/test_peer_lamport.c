/* Issue 22, finding 1: the Lamport clock pushed to its limit stopped a cluster
 * for good. Against a 3-node cluster with a cluster token: forged hellos with
 * time 2^62 - 300 (no proof, and a wrong proof), a faulty member (it holds the
 * token) sending that time on every frame, and client PINGs as far ahead as
 * they may go and beyond. Asserts: a leader throughout, a well-behaved
 * client's writes all succeed with p99 < 100 ms, every member's clock moved by
 * at most the stated bound (proto/lamport.h: 2^40 + 2^32 + (2^29 + 2^24)/s,
 * plus 1 per event),
 * and after all members restart they elect a leader and take writes. */
#include "test_peer_lib.h"

#define HUGE_TIME (DDKV_LAMPORT_MAX - 300)

/* PINGs with a chosen time on one connection; counts the refused ones (each
 * refusal closes the connection: reconnect). */
static void ping_attack(int port, int count, uint64_t ahead, uint64_t fixed, uint32_t *refused, uint32_t *ok,
                        char *last_error, size_t cap)
{
    int fd = -1;
    uint64_t seen = tp_clock(port);
    struct buf req = BUF_INIT, hold = BUF_INIT;
    for (int i = 0; i < count; i++) {
        if (fd < 0 && (fd = tcp_connect_port(port)) < 0)
            break;
        buf_reset(&req);
        struct msg_writer w;
        msg_begin(&w, &req, DDKV_MSG_PING, fixed ? fixed : seen + ahead, (uint64_t)i + 1, 0);
        msg_end(&w);
        struct msg m;
        if (rpc(fd, &req, &hold, &m) != 0) {
            close(fd);
            fd = -1;
            continue;
        }
        if (m.type == DDKV_MSG_PONG) {
            (*ok)++;
            seen = m.lamport;
        } else {
            (*refused)++;
            const uint8_t *p;
            size_t n;
            if (m.type == DDKV_MSG_ERROR && msg_bytes(&m, 1, &p, &n) == ERR_OK && n < cap) {
                memcpy(last_error, p, n);
                last_error[n] = 0;
            }
            close(fd);
            fd = -1;
        }
        msg_free(&m);
    }
    if (fd >= 0)
        close(fd);
    buf_free(&req);
    buf_free(&hold);
}

Test(peer_lamport, forged_times_never_stop_the_cluster, .timeout = 120)
{
    struct proc_cluster pc;
    const char *extra[] = {"--cluster-token", TP_TOKEN, NULL};
    cr_assert_eq(pc_start(&pc, 3, extra), 0, "cluster did not start");
    int leader = pc_leader(&pc, 15000);
    cr_assert_geq(leader, 0, "no leader");
    uint64_t cluster = tp_cluster_id(pc.nodes[leader].port);
    cr_assert_neq(cluster, 0);
    uint64_t c0 = tp_max_clock(&pc), t0 = clock_mono_ms();

    static struct tp_writer writer;
    struct tp_writer *wr = &writer;
    tp_writer_start(wr, &pc, leader, "well");

    /* 1. Forged hellos, unproven and wrongly proven, each followed by Raft
     * frames at the huge time. */
    for (int round = 0; round < 10; round++) {
        for (int i = 0; i < pc.n; i++) {
            const char *claim = i == 1 ? "n1" : "n2";
            int fd = tp_hello(pc.peer_port[i], cluster, claim, HUGE_TIME, "127.0.0.1:1", TP_NO_NONCE);
            if (fd >= 0) {
                tp_raft(fd, RAFT_MSG_HEARTBEAT_RESP, cluster_node_id(claim), cluster_node_id(i == 0 ? "n1" : i == 1 ? "n2" : "n3"), 1,
                        HUGE_TIME);
                close(fd);
            }
            fd = tp_hello(pc.peer_port[i], cluster, claim, HUGE_TIME, "127.0.0.1:1", TP_BAD_PROOF);
            if (fd >= 0)
                close(fd);
        }
    }
    /* 2. A faulty member: it holds the token (named n9, not in the
     * configuration, so it supersedes no real member's connection), and every
     * frame it sends carries the huge time. Never dropped for its time, its
     * advance is clamped. */
    char leader_name[16];
    snprintf(leader_name, sizeof leader_name, "n%d", leader + 1);
    for (int i = 0; i < pc.n; i++) {
        char to[16];
        snprintf(to, sizeof to, "n%d", i + 1);
        int fd = tp_hello(pc.peer_port[i], cluster, "n9", HUGE_TIME, "127.0.0.1:1", TP_PROVEN);
        if (fd < 0)
            continue;
        for (int k = 0; k < 50; k++)
            tp_raft(fd, RAFT_MSG_HEARTBEAT_RESP, cluster_node_id("n9"), cluster_node_id(to), 1, HUGE_TIME);
        tp_sleep_ms(100);
        close(fd);
    }
    /* 3. Client PINGs: the huge time itself, then as far ahead as one frame
     * may be (2^32), until the client budget refuses them. */
    uint32_t refused = 0, ok = 0;
    char last_error[256] = "";
    for (int i = 0; i < pc.n; i++) {
        ping_attack(pc.nodes[i].port, 5, 0, HUGE_TIME, &refused, &ok, last_error, sizeof last_error);
        ping_attack(pc.nodes[i].port, 400, (UINT64_C(1) << 32) - 1, 0, &refused, &ok, last_error, sizeof last_error);
    }
    uint64_t t1 = clock_mono_ms();
    tp_sleep_ms(300); /* the writer keeps going a little after the attack */
    double p99 = tp_writer_stop(wr);
    uint64_t c1 = tp_max_clock(&pc);
    double secs = (double)(t1 - t0) / 1000.0 + 1;
    /* Both buckets' bursts, their refill for the attack's duration, and one
     * tick per event (generously 10^7). */
    uint64_t bound = LAMPORT_CLIENT_BURST + LAMPORT_MEMBER_BURST +
                     (uint64_t)((double)(LAMPORT_CLIENT_REFILL_PER_S + LAMPORT_MEMBER_REFILL_PER_S) * secs) + 10000000u;
    int now_leader = pc_leader(&pc, 5000);
    fprintf(stderr,
            "peer_lamport: clock %llu -> %llu (moved %llu, bound %llu = 2^40 + 2^32 + (2^29 + 2^24)/s * %.1f s + 10^7); "
            "writes %u ok, %u failed, p99 %.1f ms; PINGs %u accepted, %u refused (\"%s\"); leader %d -> %d\n",
            (unsigned long long)c0, (unsigned long long)c1, (unsigned long long)(c1 - c0),
            (unsigned long long)bound, secs, wr->n, wr->failed, p99, ok, refused, last_error, leader, now_leader);
    cr_expect_geq(now_leader, 0, "no leader after the attack");
    cr_expect_gt(c1, 0, "no member answers");
    cr_expect_leq(c1 - c0, bound, "the clock moved %llu, over the bound %llu", (unsigned long long)(c1 - c0),
                  (unsigned long long)bound);
    cr_expect_lt(c1, UINT64_C(1) << 50, "clock %llu far beyond what the cluster handed out", (unsigned long long)c1);
    cr_expect_gt(wr->n, 10, "the well-behaved client got only %u writes through", wr->n);
    cr_expect_eq(wr->failed, 0, "%u writes failed during the attack", wr->failed);
    cr_expect_lt(p99, 100.0, "write p99 %.1f ms during the attack", p99);
    unsigned rss = tp_max_rss_mib(&pc);
    fprintf(stderr, "peer_lamport: largest member RSS after the attack %u MiB (bound 256)\n", rss);
    cr_expect_lt(rss, 256, "a member's RSS is %u MiB after the attack", rss);
    cr_expect_gt(refused, 0, "no PING was refused");
    if (now_leader >= 0)
        cr_expect_eq(tp_missing(&pc, wr, now_leader), 0, "acknowledged writes are missing");

    /* Restart every member: the clock is on disk; they must still progress. */
    for (int i = 0; i < pc.n; i++)
        pn_stop(&pc.nodes[i]);
    for (int i = 0; i < pc.n; i++) /* the same data dirs and flags */
        cr_assert_eq(pc_start_node(&pc, i), 0, "n%d did not restart", i + 1);
    int after = pc_leader(&pc, 15000);
    cr_assert_geq(after, 0, "no leader after restarting every member");
    int wrote = -1;
    for (int k = 0; k < 50 && wrote != 0; k++) {
        wrote = pn_write(pc.nodes[after].port, "after-restart", "yes", 3);
        if (wrote != 0) {
            tp_sleep_ms(100);
            after = pc_leader(&pc, 3000);
            cr_assert_geq(after, 0);
        }
    }
    uint64_t c2 = tp_max_clock(&pc);
    fprintf(stderr, "peer_lamport: after restarting all members: leader n%d, write %s, clock %llu\n", after + 1,
            wrote == 0 ? "ok" : "FAILED", (unsigned long long)c2);
    cr_expect_eq(wrote, 0, "no write succeeds after the restart");
    cr_expect_eq(tp_missing(&pc, wr, after), 0, "acknowledged writes missing after the restart");

    pc_cleanup(&pc);
}
