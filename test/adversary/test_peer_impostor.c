/* Issue 22, finding 2: anyone who reached a plain peer port could pose as a
 * member: members redirected clients to the impostor, and forged TIMEOUT_NOW
 * frames drove the term up with failed writes. Against a 3-node cluster with a
 * cluster token, an impostor that knows the cluster id (it is public) but not
 * the token says hello as the leader with its own client address (no proof,
 * then a wrong proof), each followed by forged TIMEOUT_NOW and RequestVote
 * frames; then frames with no hello at all; then, holding the token as n2,
 * frames that claim to come from n1. Asserts: no member names the impostor's
 * address in NOT_LEADER, the term and the leader do not change, a
 * well-behaved client's writes all succeed (p99 < 100 ms), every write
 * acknowledged before and during the attack is there, the refusals are
 * logged, and the token is in no log and not in STATUS. */
#define _GNU_SOURCE /* memmem */
#include <fcntl.h>

#include "test_peer_lib.h"

/* The leader address a follower names in NOT_LEADER ("" if none). */
static void redirect_of(int port, char *out, size_t cap)
{
    out[0] = 0;
    struct buf req = BUF_INIT, hold = BUF_INIT;
    req_write(&req, 3, "probe", 5, "x", 1);
    struct msg m;
    if (tp_rpc(port, &req, &hold, &m) == 0) {
        const uint8_t *p;
        size_t n;
        if (m.type == DDKV_MSG_ERROR && !msg_is_nil(&m, 2) && msg_bytes(&m, 2, &p, &n) == ERR_OK && n < cap) {
            memcpy(out, p, n);
            out[n] = 0;
        }
        msg_free(&m);
    }
    buf_free(&req);
    buf_free(&hold);
}

static bool file_has(const char *path, const char *needle)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return false;
    static char data[4 << 20];
    size_t n = fread(data, 1, sizeof data - 1, f);
    fclose(f);
    data[n] = 0;
    return strstr(data, needle) != NULL;
}

Test(peer_impostor, hello_without_the_token_is_refused_and_forged_raft_changes_nothing, .timeout = 120)
{
    struct proc_cluster pc;
    const char *extra[] = {"--cluster-token", TP_TOKEN, NULL};
    cr_assert_eq(pc_start(&pc, 3, extra), 0, "cluster did not start");
    int leader = pc_leader(&pc, 15000);
    cr_assert_geq(leader, 0, "no leader");
    uint64_t cluster = tp_cluster_id(pc.nodes[leader].port);
    cr_assert_neq(cluster, 0, "the cluster id is public (STATUS)");
    for (int k = 0; k < 20; k++) {
        char key[32];
        snprintf(key, sizeof key, "before/%d", k);
        cr_assert_eq(pn_write(pc.nodes[leader].port, key, "v", 1), 0);
    }
    char lname[16], leader_addr[64];
    snprintf(lname, sizeof lname, "n%d", leader + 1);
    snprintf(leader_addr, sizeof leader_addr, "127.0.0.1:%d", pc.nodes[leader].port);
    char got_leader[64];
    uint64_t term0 = 0;
    cr_assert_eq(pn_pong(pc.nodes[leader].port, got_leader, sizeof got_leader, &term0), 0);

    /* The impostor's own client address, where it would take passwords. */
    int iport = 0, ifd = listen_loopback(&iport, 100);
    cr_assert_geq(ifd, 0);
    char iaddr[64];
    snprintf(iaddr, sizeof iaddr, "127.0.0.1:%d", iport);

    static struct tp_writer writer;
    struct tp_writer *wr = &writer;
    tp_writer_start(wr, &pc, leader, "during");

    uint32_t redirected = 0, probes = 0, forged = 0;
    uint64_t lid = cluster_node_id(lname);
    for (int round = 0; round < 8; round++) {
        for (int i = 0; i < pc.n; i++) {
            char to[16];
            snprintf(to, sizeof to, "n%d", i + 1);
            uint64_t tid = cluster_node_id(to);
            /* As the leader (to a follower) or as a follower (to the leader). */
            const char *claim = i == leader ? (leader == 0 ? "n2" : "n1") : lname;
            uint64_t cid = cluster_node_id(claim);
            for (int proof = TP_NO_NONCE; proof <= TP_BAD_PROOF; proof++) {
                int fd = tp_hello(pc.peer_port[i], cluster, claim, 1, iaddr, (enum tp_proof)proof);
                if (fd < 0)
                    continue;
                for (int k = 0; k < 3; k++) {
                    tp_raft(fd, RAFT_MSG_TIMEOUT_NOW, cid, tid, term0 + 1 + (uint64_t)round, 1);
                    tp_raft(fd, RAFT_MSG_VOTE, cid, tid, term0 + 50 + (uint64_t)round, 1);
                    forged += 2;
                }
                if (i != leader) {
                    /* While the impostor's connection is open: whom does the
                     * follower name as the leader's client address? */
                    tp_sleep_ms(30);
                    char r[64];
                    redirect_of(pc.nodes[i].port, r, sizeof r);
                    probes++;
                    if (strcmp(r, iaddr) == 0)
                        redirected++;
                }
                close(fd);
            }
            /* No hello at all: Raft frames first. */
            int fd = tcp_connect_port(pc.peer_port[i]);
            if (fd >= 0) {
                tp_raft(fd, RAFT_MSG_TIMEOUT_NOW, lid == tid ? cid : lid, tid, term0 + 1, 1);
                tp_raft(fd, RAFT_MSG_VOTE, cid, tid, term0 + 60, 1);
                forged += 2;
                close(fd);
            }
        }
    }
    /* Holding the token as n2, claiming to be n1, to the members other than n2. */
    for (int i = 0; i < pc.n; i++) {
        if (i == 1)
            continue;
        char to[16];
        snprintf(to, sizeof to, "n%d", i + 1);
        int fd = tp_hello(pc.peer_port[i], cluster, "n2", 1, "127.0.0.1:7002", TP_PROVEN);
        if (fd < 0)
            continue;
        tp_raft(fd, RAFT_MSG_TIMEOUT_NOW, cluster_node_id("n1"), cluster_node_id(to), term0 + 1, 1);
        tp_raft(fd, RAFT_MSG_VOTE, cluster_node_id("n1"), cluster_node_id(to), term0 + 70, 1);
        forged += 2;
        tp_sleep_ms(50);
        close(fd);
    }
    tp_sleep_ms(1500); /* anything the forgeries set off would show by now */
    double p99 = tp_writer_stop(wr);
    uint64_t term1 = 0;
    char leader1[64] = "";
    int now_leader = pc_leader(&pc, 5000);
    if (now_leader >= 0)
        pn_pong(pc.nodes[now_leader].port, leader1, sizeof leader1, &term1);
    fprintf(stderr,
            "peer_impostor: %u forged Raft frames; NOT_LEADER named the impostor %u of %u times; term %llu -> %llu, "
            "leader %s -> %s; writes %u ok, %u failed, p99 %.1f ms\n",
            forged, redirected, probes, (unsigned long long)term0, (unsigned long long)term1, lname, leader1, wr->n,
            wr->failed, p99);
    cr_expect_eq(redirected, 0, "members redirected clients to the impostor (%u of %u)", redirected, probes);
    cr_expect_eq(term1, term0, "the term moved from %llu to %llu", (unsigned long long)term0, (unsigned long long)term1);
    cr_expect_str_eq(leader1, lname, "the leader changed");
    cr_expect_eq(wr->failed, 0, "%u writes failed during the attack", wr->failed);
    cr_expect_gt(wr->n, 10, "only %u writes got through", wr->n);
    cr_expect_lt(p99, 100.0, "write p99 %.1f ms during the attack", p99);
    unsigned rss = tp_max_rss_mib(&pc);
    fprintf(stderr, "peer_impostor: largest member RSS after the attack %u MiB (bound 256)\n", rss);
    cr_expect_lt(rss, 256, "a member's RSS is %u MiB after the attack", rss);
    /* Every acknowledged write is there. */
    int check = now_leader >= 0 ? now_leader : leader;
    struct buf out = BUF_INIT;
    for (int k = 0; k < 20; k++) {
        char key[32];
        snprintf(key, sizeof key, "before/%d", k);
        cr_expect_eq(pn_read(pc.nodes[check].port, key, &out), 0, "%s is gone", key);
    }
    buf_free(&out);
    cr_expect_eq(tp_missing(&pc, wr, check), 0, "writes acknowledged during the attack are missing");
    /* Refusals are logged; the token is nowhere in logs or STATUS. */
    bool logged = false;
    for (int i = 0; i < pc.n; i++) {
        logged |= file_has(pc.nodes[i].log, "refusing hello");
        cr_expect(!file_has(pc.nodes[i].log, TP_TOKEN), "n%d's log holds the cluster token", i + 1);
    }
    cr_expect(logged, "no member logged a refused hello");
    struct buf req = BUF_INIT, hold = BUF_INIT;
    struct msg_writer w;
    msg_begin(&w, &req, DDKV_MSG_STATUS, 1, 3, 0);
    msg_end(&w);
    struct msg m;
    cr_assert_eq(tp_rpc(pc.nodes[check].port, &req, &hold, &m), 0);
    cr_expect(memmem(hold.data, hold.len, TP_TOKEN, strlen(TP_TOKEN)) == NULL, "STATUS shows the token");
    msg_free(&m);
    buf_free(&req);
    buf_free(&hold);
    close(ifd);

    pc_cleanup(&pc);
}
