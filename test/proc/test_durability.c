/* Durability through the Raft log: kill -9 in the middle of a burst of
 * pipelined writes, restart, and every write that was acknowledged is there. */
#include <criterion/criterion.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "ddkv/wire.h"
#include "harness.h"

static struct proc_node node;

static void start(void)
{
    memset(&node, 0, sizeof node);
    cr_assert_eq(pn_start(&node, NULL, NULL), 0, "node did not start (see %s)", node.log);
}

static void stop(void)
{
    pn_cleanup(&node);
}

TestSuite(durability, .init = start, .fini = stop, .timeout = 180);

Test(durability, kill_9_mid_burst_loses_no_acknowledged_write)
{
    enum { BURST = 2000, ROUNDS = 4 };
    static bool acked[ROUNDS][BURST + 1];
    uint64_t last_rev = 0;
    for (int round = 0; round < ROUNDS; round++) {
        int fd = tcp_connect_port(node.port);
        cr_assert_geq(fd, 0);
        struct buf req = BUF_INIT;
        for (int i = 1; i <= BURST; i++) {
            char k[32], v[32];
            snprintf(k, sizeof k, "dur/%d/%05d", round, i);
            snprintf(v, sizeof v, "v%d.%d", round, i);
            req_write(&req, (uint64_t)i, k, strlen(k), v, strlen(v));
        }
        cr_assert_eq(send_all(fd, req.data, req.len), 0);
        buf_free(&req);
        /* Take acknowledgements until a few hundred are in, then kill the
         * node with the rest of the burst still in flight. */
        int got = 0, stop_at = 300 + round * 400;
        struct buf hold = BUF_INIT;
        while (got < stop_at && recv_frame(fd, 10000, &hold) == 0) {
            struct msg m;
            struct errbuf eb;
            cr_assert_eq(msg_decode(&m, hold.data, hold.len, &msg_limits_reply, &eb), 0);
            cr_assert_eq(m.type, DDKV_MSG_WRITTEN_AT, "write refused: %s", msg_type_name(m.type));
            uint64_t lamport, rev;
            cr_assert_eq(msg_u64(&m, 0, &lamport), 0);
            cr_assert_eq(msg_u64(&m, 1, &rev), 0);
            cr_assert_gt(rev, last_rev, "revisions must grow, across restarts too");
            last_rev = rev;
            acked[round][m.request_id] = true;
            got++;
            msg_free(&m);
        }
        buf_free(&hold);
        cr_assert_eq(got, stop_at, "only %d acknowledgements before the kill", got);
        pn_kill(&node, SIGKILL);
        close(fd);
        cr_assert_eq(pn_start(&node, NULL, NULL), 0, "restart %d failed (see %s)", round, node.log);
        /* Every acknowledged write of every round so far is back. */
        struct buf v = BUF_INIT;
        for (int r = 0; r <= round; r++)
            for (int i = 1; i <= BURST; i++) {
                if (!acked[r][i])
                    continue;
                char k[32], want[32];
                snprintf(k, sizeof k, "dur/%d/%05d", r, i);
                snprintf(want, sizeof want, "v%d.%d", r, i);
                cr_assert_eq(pn_read(node.port, k, &v), 0, "acknowledged %s lost after kill -9", k);
                cr_assert(v.len == strlen(want) && memcmp(v.data, want, v.len) == 0, "%s changed", k);
            }
        buf_free(&v);
    }
}
