/* Single-server membership changes with learners (thesis 4.1-4.2) and
 * leadership transfer (thesis 3.10). */
#include <criterion/criterion.h>
#include <string.h>

#include "harness.h"

static struct hnet net;

static void teardown(void) { h_free(&net); }

TestSuite(membership, .fini = teardown);

static void run(int rounds)
{
    for (int t = 0; t < rounds; t++) {
        h_tick_all(&net, 1);
        h_settle(&net);
    }
}

static int leader(void)
{
    for (int i = 1; i <= net.n; i++)
        if (net.nd[i].r && h_status(&net, i).role == RAFT_LEADER)
            return i;
    return 0;
}

Test(membership, conf_takes_effect_on_append,
     .description = "a configuration entry takes effect as soon as it is appended, before it commits")
{
    h_init(&net, 4, 3, 0, NULL);
    cr_assert_eq(h_elect(&net, 1), RAFT_LEADER);
    h_isolate(&net, 1);
    uint64_t idx;
    cr_assert_eq(raft_propose_conf_change(net.nd[1].r, RAFT_CC_ADD_LEARNER, 4, &idx, NULL), ERR_OK);
    cr_assert(raft_conf_has(raft_get_conf(net.nd[1].r), 4));
    cr_assert_lt(h_status(&net, 1).commit, idx);
}

Test(membership, one_change_at_a_time,
     .description = "a leader refuses a configuration change while the previous one is uncommitted")
{
    h_init(&net, 5, 3, 0, NULL);
    cr_assert_eq(h_elect(&net, 1), RAFT_LEADER);
    h_isolate(&net, 1);
    cr_assert_eq(raft_propose_conf_change(net.nd[1].r, RAFT_CC_ADD_LEARNER, 4, NULL, NULL), ERR_OK);
    cr_assert_eq(raft_propose_conf_change(net.nd[1].r, RAFT_CC_ADD_LEARNER, 5, NULL, NULL), ERR_AGAIN);
    h_heal(&net);
    h_ready(&net, 1);
    h_settle(&net);
    cr_assert_eq(raft_propose_conf_change(net.nd[1].r, RAFT_CC_ADD_LEARNER, 5, NULL, NULL), ERR_OK);
}

Test(membership, change_waits_for_commit_in_term,
     .description = "a new leader changes the configuration only after committing an entry of its term")
{
    h_init(&net, 4, 3, 0, NULL);
    h_elect_votes_only(&net, 1);
    cr_assert_eq(raft_propose_conf_change(net.nd[1].r, RAFT_CC_ADD_LEARNER, 4, NULL, NULL), ERR_AGAIN);
    h_settle(&net);
    cr_assert_eq(raft_propose_conf_change(net.nd[1].r, RAFT_CC_ADD_LEARNER, 4, NULL, NULL), ERR_OK);
}

Test(membership, bad_changes_refused,
     .description = "a change that does not fit the configuration is refused")
{
    h_init(&net, 4, 3, 0, NULL);
    cr_assert_eq(h_elect(&net, 1), RAFT_LEADER);
    struct raft *r = net.nd[1].r;
    cr_assert_eq(raft_propose_conf_change(r, RAFT_CC_ADD_VOTER, 2, NULL, NULL), ERR_BAD_INPUT);
    cr_assert_eq(raft_propose_conf_change(r, RAFT_CC_REMOVE, 9, NULL, NULL), ERR_BAD_INPUT);
    cr_assert_eq(raft_propose_conf_change(r, RAFT_CC_PROMOTE, 2, NULL, NULL), ERR_BAD_INPUT);
    cr_assert_eq(raft_propose_conf_change(net.nd[2].r, RAFT_CC_ADD_LEARNER, 4, NULL, NULL),
                 ERR_UNAVAILABLE, "only the leader");
}

Test(membership, learner_never_votes_or_campaigns,
     .description = "a learner receives the log but never campaigns and never counts toward a quorum")
{
    h_init(&net, 4, 3, 1, NULL);
    cr_assert_eq(h_elect(&net, 1), RAFT_LEADER);
    uint64_t i = h_propose(&net, 1, "l");
    h_settle(&net);
    cr_assert_eq(net.nd[4].applied, i, "the learner applies the log");
    h_drop_all(&net);
    h_tick(&net, 4, 100);
    cr_assert_eq(h_status(&net, 4).role, RAFT_FOLLOWER);
    cr_assert_eq(h_count(&net, 0, 4), 0, "a learner never asks for votes");
    cr_assert_eq(raft_campaign(net.nd[4].r), ERR_UNAVAILABLE);
    h_isolate(&net, 2);
    h_isolate(&net, 3);
    uint64_t j = h_propose(&net, 1, "m");
    h_settle(&net);
    cr_assert_eq(h_status(&net, 4).last_index, j, "the learner stored it");
    cr_assert_lt(h_status(&net, 1).commit, j, "but leader + learner is no quorum of 3 voters");
}

Test(membership, learner_promoted_after_catch_up,
     .description = "a learner is promoted to voter only once it has caught up with the leader")
{
    h_init(&net, 4, 3, 0, NULL);
    cr_assert_eq(h_elect(&net, 1), RAFT_LEADER);
    h_isolate(&net, 4);
    cr_assert_eq(raft_propose_conf_change(net.nd[1].r, RAFT_CC_ADD_LEARNER, 4, NULL, NULL), ERR_OK);
    h_ready(&net, 1);
    for (int k = 0; k < 10; k++)
        h_propose(&net, 1, "c");
    h_settle(&net);
    cr_assert_eq(raft_propose_conf_change(net.nd[1].r, RAFT_CC_PROMOTE, 4, NULL, NULL), ERR_AGAIN);
    h_heal(&net);
    run(5);
    cr_assert_eq(raft_propose_conf_change(net.nd[1].r, RAFT_CC_PROMOTE, 4, NULL, NULL), ERR_OK);
    h_ready(&net, 1);
    h_settle(&net);
    cr_assert(raft_conf_is_voter(raft_get_conf(net.nd[4].r), 4));
    cr_assert_eq(raft_conf_voters(raft_get_conf(net.nd[1].r)), 4);
}

Test(membership, added_voter_counts,
     .description = "after a server joins, the quorum is a majority of the new configuration")
{
    h_init(&net, 4, 3, 0, NULL);
    cr_assert_eq(h_elect(&net, 1), RAFT_LEADER);
    cr_assert_eq(raft_propose_conf_change(net.nd[1].r, RAFT_CC_ADD_VOTER, 4, NULL, NULL), ERR_OK);
    h_ready(&net, 1);
    h_settle(&net);
    h_isolate(&net, 3);
    h_isolate(&net, 4);
    uint64_t i = h_propose(&net, 1, "q");
    h_settle(&net);
    cr_assert_lt(h_status(&net, 1).commit, i, "2 of 4 voters is no quorum");
}

Test(membership, removed_leader_steps_down,
     .description = "a leader removed from the configuration steps down once the removal commits")
{
    h_init(&net, 3, 3, 0, NULL);
    cr_assert_eq(h_elect(&net, 1), RAFT_LEADER);
    uint64_t idx;
    cr_assert_eq(raft_propose_conf_change(net.nd[1].r, RAFT_CC_REMOVE, 1, &idx, NULL), ERR_OK);
    cr_assert_eq(h_status(&net, 1).role, RAFT_LEADER, "leads until the removal commits");
    h_ready(&net, 1);
    h_settle(&net);
    cr_assert_eq(h_status(&net, 1).role, RAFT_FOLLOWER);
    cr_assert_geq(h_status(&net, 2).commit, idx);
    run(40);
    int l = leader();
    cr_assert(l == 2 || l == 3, "the remaining voters elect a leader");
    h_propose(&net, l, "after");
    h_settle(&net);
    cr_assert_eq(net.nd[2].applied, net.nd[3].applied);
}

Test(membership, removed_follower_gone_from_quorum,
     .description = "a removed voter no longer counts toward the quorum")
{
    h_init(&net, 3, 3, 0, NULL);
    cr_assert_eq(h_elect(&net, 1), RAFT_LEADER);
    cr_assert_eq(raft_propose_conf_change(net.nd[1].r, RAFT_CC_REMOVE, 3, NULL, NULL), ERR_OK);
    h_ready(&net, 1);
    h_settle(&net);
    h_isolate(&net, 3);
    uint64_t i = h_propose(&net, 1, "two");
    h_settle(&net);
    cr_assert_eq(h_status(&net, 1).commit, i, "1 and 2 are a quorum of 2");
}

Test(membership, truncated_change_reverts,
     .description = "when an uncommitted configuration entry is overwritten, the previous configuration returns")
{
    h_init(&net, 4, 3, 0, NULL);
    cr_assert_eq(h_elect(&net, 1), RAFT_LEADER);
    h_isolate(&net, 1);
    cr_assert_eq(raft_propose_conf_change(net.nd[1].r, RAFT_CC_ADD_LEARNER, 4, NULL, NULL), ERR_OK);
    h_ready(&net, 1);
    h_settle(&net);
    cr_assert(raft_conf_has(raft_get_conf(net.nd[1].r), 4));
    cr_assert_eq(h_elect(&net, 2), RAFT_LEADER);
    h_propose(&net, 2, "x");
    h_settle(&net);
    h_heal(&net);
    h_tick(&net, 2, 1);
    h_settle(&net);
    cr_assert(!raft_conf_has(raft_get_conf(net.nd[1].r), 4), "the change was never committed");
    cr_assert_eq(raft_get_conf(net.nd[1].r)->n, 3);
}

/* --- leadership transfer --- */

Test(membership, transfer_with_timeout_now,
     .description = "a leader hands leadership to a caught-up voter with TimeoutNow")
{
    h_init(&net, 3, 3, 0, NULL);
    cr_assert_eq(h_elect(&net, 1), RAFT_LEADER);
    cr_assert_eq(raft_transfer_leadership(net.nd[1].r, 2), ERR_OK);
    h_ready(&net, 1);
    h_settle(&net);
    cr_assert_eq(leader(), 2);
    cr_assert_eq(h_status(&net, 2).term, 3);
    cr_assert_eq(h_status(&net, 1).leader, 2);
}

Test(membership, transfer_catches_up_target_first,
     .description = "a leader brings a lagging transfer target up to date before sending TimeoutNow")
{
    h_init(&net, 3, 3, 0, NULL);
    cr_assert_eq(h_elect(&net, 1), RAFT_LEADER);
    h_isolate(&net, 3);
    for (int k = 0; k < 5; k++)
        h_propose(&net, 1, "t");
    h_settle(&net);
    h_heal(&net);
    cr_assert_eq(raft_transfer_leadership(net.nd[1].r, 3), ERR_OK);
    h_ready(&net, 1);
    cr_assert_eq(h_count(&net, RAFT_MSG_TIMEOUT_NOW, 1), 0, "not before it caught up");
    h_settle(&net);
    h_tick(&net, 1, 1);
    h_settle(&net);
    cr_assert_eq(leader(), 3);
    cr_assert_eq(h_status(&net, 3).last_index, 10, "target had every entry");
}

Test(membership, transfer_bypasses_lease,
     .description = "a transfer target's election succeeds even though the voters' leases hold")
{
    struct raft_config c = h_default_cfg();
    c.pre_vote = true;
    c.check_quorum = true;
    h_init(&net, 3, 3, 0, &c);
    cr_assert_eq(h_elect(&net, 1), RAFT_LEADER);
    cr_assert_eq(raft_transfer_leadership(net.nd[1].r, 3), ERR_OK);
    h_ready(&net, 1);
    h_settle(&net);
    cr_assert_eq(leader(), 3);
}

Test(membership, proposals_refused_during_transfer,
     .description = "a leader refuses proposals while a leadership transfer is in progress")
{
    h_init(&net, 3, 3, 0, NULL);
    cr_assert_eq(h_elect(&net, 1), RAFT_LEADER);
    h_isolate(&net, 2);
    cr_assert_eq(raft_transfer_leadership(net.nd[1].r, 2), ERR_OK);
    cr_assert_eq(raft_propose(net.nd[1].r, "x", 1, NULL, NULL), ERR_UNAVAILABLE);
}

Test(membership, stuck_transfer_aborts,
     .description = "a transfer that does not complete within an election timeout is aborted")
{
    h_init(&net, 3, 3, 0, NULL);
    cr_assert_eq(h_elect(&net, 1), RAFT_LEADER);
    h_isolate(&net, 2);
    cr_assert_eq(raft_transfer_leadership(net.nd[1].r, 2), ERR_OK);
    h_tick(&net, 1, 10);
    h_settle(&net);
    cr_assert_eq(h_status(&net, 1).role, RAFT_LEADER);
    cr_assert_eq(h_status(&net, 1).transferee, 0);
    cr_assert_eq(raft_propose(net.nd[1].r, "x", 1, NULL, NULL), ERR_OK);
}

Test(membership, transfer_target_must_vote,
     .description = "leadership can only be handed to another voter")
{
    h_init(&net, 4, 3, 1, NULL);
    cr_assert_eq(h_elect(&net, 1), RAFT_LEADER);
    cr_assert_eq(raft_transfer_leadership(net.nd[1].r, 4), ERR_BAD_INPUT, "a learner");
    cr_assert_eq(raft_transfer_leadership(net.nd[1].r, 1), ERR_BAD_INPUT, "itself");
    cr_assert_eq(raft_transfer_leadership(net.nd[2].r, 3), ERR_UNAVAILABLE, "not the leader");
}

Test(membership, conf_context_travels_with_the_entry,
     .description = "a configuration change's context reaches every member in the CONF entry, unread by the core")
{
    h_init(&net, 4, 3, 0, NULL);
    cr_assert_eq(h_elect(&net, 1), RAFT_LEADER);
    static const char ctx[] = "n4=127.0.0.1:7104";
    uint64_t idx;
    cr_assert_eq(raft_propose_conf_change_ctx(net.nd[1].r, RAFT_CC_ADD_LEARNER, 4, ctx, sizeof ctx - 1,
                                              &idx, NULL), ERR_OK);
    h_ready(&net, 1);
    h_settle(&net);
    for (int i = 1; i <= 3; i++) {
        const struct raft_entry *e = raft_log_entry(net.nd[i].r, idx);
        cr_assert_not_null(e, "member %d holds the entry", i);
        cr_assert_eq(e->type, RAFT_ENTRY_CONF);
        cr_assert_eq(e->len, RAFT_CC_BYTES + sizeof ctx - 1);
        cr_assert_eq(memcmp(e->data + RAFT_CC_BYTES, ctx, sizeof ctx - 1), 0);
        cr_assert(raft_conf_has(raft_get_conf(net.nd[i].r), 4), "member %d applied the change", i);
    }
    uint8_t big[RAFT_CC_CTX_MAX + 1] = {0};
    cr_assert_eq(raft_propose_conf_change_ctx(net.nd[1].r, RAFT_CC_ADD_LEARNER, 5, big, sizeof big, NULL,
                                              NULL), ERR_BAD_INPUT, "an oversized context is refused");
}
