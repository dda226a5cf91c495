/* Linearizable reads: ReadIndex (thesis 6.4) and lease reads (6.4.1). */
#include <criterion/criterion.h>
#include <string.h>

#include "harness.h"

static struct hnet net;

static void teardown(void) { h_free(&net); }

TestSuite(reads, .fini = teardown);

Test(reads, read_waits_for_quorum,
     .description = "a read is answered only after a quorum confirms the leader is still leader")
{
    h_init(&net, 3, 3, 0, NULL);
    cr_assert_eq(h_elect(&net, 1), RAFT_LEADER);
    h_drop_all(&net);
    cr_assert_eq(raft_read_index(net.nd[1].r, 77), ERR_OK);
    h_ready(&net, 1);
    cr_assert_eq(net.nd[1].n_reads, 0, "not before the heartbeat round");
    cr_assert_eq(h_count(&net, RAFT_MSG_HEARTBEAT, 1), 2);
    h_isolate(&net, 2);
    h_isolate(&net, 3);
    h_settle(&net);
    cr_assert_eq(net.nd[1].n_reads, 0, "not without a quorum");
    h_heal(&net);
    h_tick(&net, 1, 1);
    h_settle(&net);
    cr_assert_eq(net.nd[1].n_reads, 1);
    cr_assert_eq(net.nd[1].reads[0].ctx, 77);
    cr_assert_eq(net.nd[1].reads[0].index, h_status(&net, 1).commit);
}

Test(reads, reads_batch_into_one_round,
     .description = "reads asked for together share one heartbeat round")
{
    h_init(&net, 3, 3, 0, NULL);
    cr_assert_eq(h_elect(&net, 1), RAFT_LEADER);
    h_drop_all(&net);
    for (uint64_t c = 1; c <= 5; c++)
        cr_assert_eq(raft_read_index(net.nd[1].r, c), ERR_OK);
    h_ready(&net, 1);
    cr_assert_eq(h_count(&net, RAFT_MSG_HEARTBEAT, 1), 2, "one heartbeat per follower for five reads");
    h_settle(&net);
    cr_assert_eq(net.nd[1].n_reads, 5);
}

Test(reads, new_leader_defers_reads,
     .description = "a new leader answers reads only after it committed an entry of its term")
{
    h_init(&net, 3, 3, 0, NULL);
    h_elect_votes_only(&net, 1);
    cr_assert_eq(h_status(&net, 1).commit, 3, "the no-op is not committed yet");
    cr_assert_eq(raft_read_index(net.nd[1].r, 9), ERR_OK);
    h_ready(&net, 1);
    h_settle(&net);
    h_tick(&net, 1, 1);
    h_settle(&net);
    cr_assert_eq(net.nd[1].n_reads, 1);
    cr_assert_geq(net.nd[1].reads[0].index, 4, "at least the new term's no-op");
}

Test(reads, follower_read_forwarded,
     .description = "a follower's read is forwarded to the leader and answered with the leader's commit index")
{
    h_init(&net, 3, 3, 0, NULL);
    cr_assert_eq(h_elect(&net, 1), RAFT_LEADER);
    h_propose(&net, 1, "v");
    h_settle(&net);
    cr_assert_eq(raft_read_index(net.nd[2].r, 5), ERR_OK);
    h_ready(&net, 2);
    cr_assert_eq(h_count(&net, RAFT_MSG_READ_INDEX, 2), 1);
    h_settle(&net);
    h_tick(&net, 1, 1);
    h_settle(&net);
    cr_assert_eq(net.nd[2].n_reads, 1);
    cr_assert_eq(net.nd[2].reads[0].ctx, 5);
    cr_assert_eq(net.nd[2].reads[0].index, 5);
}

Test(reads, no_leader_no_read,
     .description = "a server that knows no leader refuses a read")
{
    h_init(&net, 3, 3, 0, NULL);
    cr_assert_eq(raft_read_index(net.nd[2].r, 1), ERR_UNAVAILABLE);
}

Test(reads, single_voter_reads_at_once,
     .description = "a lone voter confirms reads by itself")
{
    h_init(&net, 1, 1, 0, NULL);
    cr_assert_eq(h_elect(&net, 1), RAFT_LEADER);
    cr_assert_eq(raft_read_index(net.nd[1].r, 3), ERR_OK);
    h_ready(&net, 1);
    cr_assert_eq(net.nd[1].n_reads, 1);
}

static int lease_leader(void)
{
    struct raft_config c = h_default_cfg();
    c.pre_vote = true;
    c.check_quorum = true;
    c.lease_reads = true;
    h_init(&net, 3, 3, 0, &c);
    for (int t = 0; t < 60; t++) {
        h_tick_all(&net, 1);
        h_settle(&net);
    }
    for (int i = 1; i <= 3; i++)
        if (h_status(&net, i).role == RAFT_LEADER)
            return i;
    cr_assert_fail("no leader");
    return 0;
}

Test(reads, lease_read_without_round_trip,
     .description = "with lease reads, a leader holding a quorum's lease answers without a heartbeat round")
{
    int l = lease_leader();
    h_drop_all(&net);
    cr_assert_eq(raft_read_index(net.nd[l].r, 11), ERR_OK);
    h_ready(&net, l);
    cr_assert_eq(net.nd[l].n_reads, 1);
    cr_assert_eq(h_count(&net, RAFT_MSG_HEARTBEAT, (uint64_t)l), 0);
}

Test(reads, lease_expires,
     .description = "a leader whose lease ran out falls back to a heartbeat round")
{
    int l = lease_leader();
    h_isolate(&net, l);
    for (int t = 0; t < 8; t++) {
        h_tick(&net, l, 1);
        h_settle(&net);
    }
    cr_assert_eq(h_status(&net, l).role, RAFT_LEADER);
    h_drop_all(&net);
    cr_assert_eq(raft_read_index(net.nd[l].r, 12), ERR_OK);
    h_ready(&net, l);
    cr_assert_eq(net.nd[l].n_reads, 0, "no answer from an expired lease");
}

Test(reads, transfer_breaks_lease,
     .description = "a leader that sent TimeoutNow stops answering from its lease")
{
    int l = lease_leader();
    int to = l == 1 ? 2 : 1;
    cr_assert_eq(raft_transfer_leadership(net.nd[l].r, (uint64_t)to), ERR_OK);
    h_ready(&net, l);
    h_drop_all(&net);
    cr_assert_eq(raft_read_index(net.nd[l].r, 13), ERR_OK);
    h_ready(&net, l);
    cr_assert_eq(net.nd[l].n_reads, 0);
}
