/* Leader election (§5.2, §5.4.1), pre-vote (thesis 9.6) and check-quorum
 * (thesis 6.2): one test per rule. */
#include <criterion/criterion.h>
#include <string.h>

#include "harness.h"

static struct hnet net;

static void teardown(void) { h_free(&net); }

TestSuite(election, .fini = teardown);

static struct raft_msg vote_req(uint32_t type, uint64_t from, uint64_t to, uint64_t term,
                                uint64_t last_index, uint64_t last_term)
{
    struct raft_msg m;
    memset(&m, 0, sizeof m);
    m.type = type;
    m.from = from;
    m.to = to;
    m.term = term;
    m.index = last_index;
    m.log_term = last_term;
    return m;
}

Test(election, follower_without_leader_starts_election,
     .description = "a follower that hears nothing for an election timeout starts an election")
{
    h_init(&net, 3, 3, 0, NULL);
    h_tick(&net, 1, 20); /* at most 2 x election_ticks */
    struct raft_status st = h_status(&net, 1);
    cr_assert_eq(st.role, RAFT_CANDIDATE);
    cr_assert_eq(st.term, 2);
    cr_assert_eq(h_count(&net, RAFT_MSG_VOTE, 1), 2, "asks both other voters");
}

Test(election, timeouts_are_randomized,
     .description = "election timeouts are drawn at random from [election, 2 x election)")
{
    h_init(&net, 8, 8, 0, NULL);
    int fired[9] = {0};
    for (int t = 1; t <= 25; t++)
        for (int i = 1; i <= 8; i++) {
            h_tick(&net, i, 1);
            if (!fired[i] && h_status(&net, i).role == RAFT_CANDIDATE)
                fired[i] = t;
        }
    bool differ = false;
    for (int i = 1; i <= 8; i++) {
        cr_assert(fired[i] >= 10 && fired[i] < 20, "node %d fired at tick %d", i, fired[i]);
        differ |= fired[i] != fired[1];
    }
    cr_assert(differ, "timeouts must not all be equal");
}

Test(election, candidate_votes_for_itself,
     .description = "a candidate increments its term and votes for itself, durably")
{
    h_init(&net, 3, 3, 0, NULL);
    raft_campaign(net.nd[1].r);
    h_ready(&net, 1);
    struct raft_status st = h_status(&net, 1);
    cr_assert_eq(st.term, 2);
    cr_assert_eq(st.vote, 1);
    cr_assert_eq(net.nd[1].hs.term, 2, "term persisted");
    cr_assert_eq(net.nd[1].hs.vote, 1, "self-vote persisted");
}

Test(election, majority_makes_leader,
     .description = "a candidate that receives votes from a majority becomes leader")
{
    h_init(&net, 5, 5, 0, NULL);
    h_isolate(&net, 4);
    h_isolate(&net, 5);
    cr_assert_eq(h_elect(&net, 1), RAFT_LEADER, "3 of 5 votes suffice");
    cr_assert_eq(h_status(&net, 2).leader, 1);
}

Test(election, minority_does_not_make_leader,
     .description = "a candidate without a majority of votes does not become leader")
{
    h_init(&net, 5, 5, 0, NULL);
    h_isolate(&net, 3);
    h_isolate(&net, 4);
    h_isolate(&net, 5);
    cr_assert_eq(h_elect(&net, 1), RAFT_CANDIDATE);
}

Test(election, candidate_steps_down_for_leader_of_its_term,
     .description = "a candidate that hears from a leader of its own term becomes its follower")
{
    h_init(&net, 3, 3, 0, NULL);
    raft_campaign(net.nd[1].r);
    h_ready(&net, 1);
    h_drop_all(&net);
    struct raft_msg m = vote_req(RAFT_MSG_HEARTBEAT, 3, 1, 2, 0, 0);
    cr_assert_eq(h_step(&net, 1, &m), ERR_OK);
    struct raft_status st = h_status(&net, 1);
    cr_assert_eq(st.role, RAFT_FOLLOWER);
    cr_assert_eq(st.leader, 3);
    cr_assert_eq(st.term, 2);
}

Test(election, higher_term_makes_follower,
     .description = "a server that sees a higher term adopts it and becomes a follower")
{
    h_init(&net, 3, 3, 0, NULL);
    cr_assert_eq(h_elect(&net, 1), RAFT_LEADER);
    struct raft_msg m = vote_req(RAFT_MSG_HEARTBEAT, 2, 1, 9, 0, 0);
    h_step(&net, 1, &m);
    struct raft_status st = h_status(&net, 1);
    cr_assert_eq(st.role, RAFT_FOLLOWER);
    cr_assert_eq(st.term, 9);
    cr_assert_eq(st.leader, 2);
}

Test(election, lower_term_vote_is_not_granted,
     .description = "a vote request with a term lower than the voter's is not granted")
{
    h_init(&net, 3, 3, 0, NULL);
    raft_campaign(net.nd[3].r); /* term 2 */
    raft_campaign(net.nd[3].r); /* term 3 */
    h_ready(&net, 3);
    h_drop_all(&net);
    struct raft_msg m = vote_req(RAFT_MSG_VOTE, 1, 3, 2, 10, 2);
    h_step(&net, 3, &m);
    const struct raft_msg *r = h_find_to(&net, RAFT_MSG_VOTE_RESP, 3, 1);
    cr_assert(r == NULL || r->reject);
    cr_assert_eq(h_status(&net, 3).vote, 3);
}

Test(election, one_vote_per_term,
     .description = "a server grants at most one vote per term, first come first served")
{
    h_init(&net, 3, 3, 0, NULL);
    struct raft_msg a = vote_req(RAFT_MSG_VOTE, 1, 3, 2, 3, 1);
    struct raft_msg b = vote_req(RAFT_MSG_VOTE, 2, 3, 2, 3, 1);
    h_step(&net, 3, &a);
    h_step(&net, 3, &b);
    const struct raft_msg *ra = h_find_to(&net, RAFT_MSG_VOTE_RESP, 3, 1);
    const struct raft_msg *rb = h_find_to(&net, RAFT_MSG_VOTE_RESP, 3, 2);
    cr_assert(ra && !ra->reject, "first candidate gets the vote");
    cr_assert(rb && rb->reject, "second candidate of the same term is refused");
}

Test(election, stale_log_refused,
     .description = "a candidate with a stale log is refused a vote (shorter log, same last term)")
{
    h_init(&net, 3, 3, 0, NULL); /* every log: 3 entries of term 1 */
    struct raft_msg m = vote_req(RAFT_MSG_VOTE, 1, 3, 2, 2, 1);
    h_step(&net, 3, &m);
    const struct raft_msg *r = h_find_to(&net, RAFT_MSG_VOTE_RESP, 3, 1);
    cr_assert(r && r->reject);
    cr_assert_eq(h_status(&net, 3).vote, 0);
}

Test(election, older_last_term_refused,
     .description = "a candidate whose last entry has an older term is refused, however long its log")
{
    h_init(&net, 3, 3, 0, NULL);
    cr_assert_eq(h_elect(&net, 2), RAFT_LEADER); /* term-2 no-op on every log */
    struct raft_msg m = vote_req(RAFT_MSG_VOTE, 1, 3, 5, 50, 1);
    h_step(&net, 3, &m);
    const struct raft_msg *r = h_find_to(&net, RAFT_MSG_VOTE_RESP, 3, 1);
    cr_assert(r && r->reject);
}

Test(election, up_to_date_log_granted,
     .description = "a candidate whose log is at least as up-to-date gets the vote")
{
    h_init(&net, 3, 3, 0, NULL);
    struct raft_msg m = vote_req(RAFT_MSG_VOTE, 1, 3, 2, 3, 1);
    h_step(&net, 3, &m);
    const struct raft_msg *r = h_find_to(&net, RAFT_MSG_VOTE_RESP, 3, 1);
    cr_assert(r && !r->reject);
    cr_assert_eq(r->term, 2);
}

Test(election, vote_grant_held_until_durable,
     .description = "a vote grant is not sent before the vote is persisted")
{
    h_init(&net, 3, 3, 0, NULL);
    struct raft *r = net.nd[3].r;
    struct raft_msg m = vote_req(RAFT_MSG_VOTE, 1, 3, 2, 3, 1);
    cr_assert_eq(raft_step(r, &m), ERR_OK);
    struct raft_ready rd;
    raft_ready(r, &rd);
    cr_assert(rd.hs_changed);
    cr_assert_eq(rd.hs.vote, 1);
    for (size_t k = 0; k < rd.n_msgs; k++)
        cr_assert_neq(rd.msgs[k].type, RAFT_MSG_VOTE_RESP, "grant left before its vote was durable");
    raft_advance(r, &rd);
    cr_assert(raft_has_ready(r));
    raft_ready(r, &rd);
    bool found = false;
    for (size_t k = 0; k < rd.n_msgs; k++)
        found |= rd.msgs[k].type == RAFT_MSG_VOTE_RESP && !rd.msgs[k].reject;
    cr_assert(found, "the grant goes out after the advance");
    raft_advance(r, &rd);
}

Test(election, candidate_requests_held_until_term_durable,
     .description = "a candidate sends its vote requests only after its new term and self-vote are durable")
{
    h_init(&net, 3, 3, 0, NULL);
    struct raft *r = net.nd[1].r;
    raft_campaign(r);
    struct raft_ready rd;
    raft_ready(r, &rd);
    cr_assert(rd.hs_changed && rd.hs.term == 2 && rd.hs.vote == 1);
    cr_assert_eq(rd.n_msgs, 0);
    raft_advance(r, &rd);
    raft_ready(r, &rd);
    cr_assert_eq(rd.n_msgs, 2);
    raft_advance(r, &rd);
}

Test(election, restart_keeps_term_and_vote,
     .description = "a restarted server remembers its term and vote and does not vote twice")
{
    h_init(&net, 3, 3, 0, NULL);
    struct raft_msg a = vote_req(RAFT_MSG_VOTE, 1, 3, 2, 3, 1);
    h_step(&net, 3, &a);
    h_crash(&net, 3);
    h_start(&net, 3);
    struct raft_status st = h_status(&net, 3);
    cr_assert_eq(st.term, 2);
    cr_assert_eq(st.vote, 1);
    h_drop_all(&net);
    struct raft_msg b = vote_req(RAFT_MSG_VOTE, 2, 3, 2, 3, 1);
    h_step(&net, 3, &b);
    const struct raft_msg *r = h_find_to(&net, RAFT_MSG_VOTE_RESP, 3, 2);
    cr_assert(r && r->reject);
}

Test(election, leader_sends_heartbeats,
     .description = "a leader sends heartbeats to every follower each heartbeat interval")
{
    h_init(&net, 3, 3, 0, NULL);
    cr_assert_eq(h_elect(&net, 1), RAFT_LEADER);
    h_drop_all(&net);
    h_tick(&net, 1, 1);
    cr_assert_eq(h_count(&net, RAFT_MSG_HEARTBEAT, 1), 2);
}

Test(election, heartbeats_keep_followers,
     .description = "followers that hear heartbeats do not start elections")
{
    h_init(&net, 3, 3, 0, NULL);
    cr_assert_eq(h_elect(&net, 1), RAFT_LEADER);
    for (int t = 0; t < 100; t++) {
        h_tick_all(&net, 1);
        h_settle(&net);
    }
    cr_assert_eq(h_status(&net, 1).role, RAFT_LEADER);
    cr_assert_eq(h_status(&net, 1).term, 2);
}

Test(election, leader_appends_noop,
     .description = "a new leader appends a no-op entry of its term and commits it")
{
    h_init(&net, 3, 3, 0, NULL);
    cr_assert_eq(h_elect(&net, 1), RAFT_LEADER);
    uint64_t t;
    cr_assert(raft_log_term(net.nd[1].r, 4, &t) && t == 2);
    cr_assert_eq(raft_log_entry(net.nd[1].r, 4)->len, 0);
    for (int i = 1; i <= 3; i++)
        cr_assert_eq(h_status(&net, i).commit, 4, "node %d", i);
}

/* --- pre-vote and check-quorum --- */

static struct raft_config cfg_pv_cq(void)
{
    struct raft_config c = h_default_cfg();
    c.pre_vote = true;
    c.check_quorum = true;
    return c;
}

Test(election, pre_candidate_keeps_term,
     .description = "a pre-candidate asks for votes in term + 1 without changing its own term")
{
    struct raft_config c = cfg_pv_cq();
    h_init(&net, 3, 3, 0, &c);
    raft_campaign(net.nd[1].r);
    h_ready(&net, 1);
    struct raft_status st = h_status(&net, 1);
    cr_assert_eq(st.role, RAFT_PRE_CANDIDATE);
    cr_assert_eq(st.term, 1);
    const struct raft_msg *m = h_find(&net, RAFT_MSG_PREVOTE, 1);
    cr_assert(m && m->term == 2);
}

Test(election, pre_vote_then_vote,
     .description = "a pre-candidate that wins the pre-vote starts a real election and wins it")
{
    struct raft_config c = cfg_pv_cq();
    h_init(&net, 3, 3, 0, &c);
    cr_assert_eq(h_elect(&net, 1), RAFT_LEADER);
    cr_assert_eq(h_status(&net, 1).term, 2);
}

Test(election, rejoining_node_cannot_depose_leader,
     .description = "a partitioned node that rejoins cannot depose a healthy leader (pre-vote)")
{
    struct raft_config c = cfg_pv_cq();
    h_init(&net, 3, 3, 0, &c);
    cr_assert_eq(h_elect(&net, 1), RAFT_LEADER);
    h_isolate(&net, 3);
    for (int t = 0; t < 60; t++) {
        h_tick_all(&net, 1);
        h_settle(&net);
    }
    cr_assert_eq(h_status(&net, 3).term, 2, "pre-votes that fail do not raise the term");
    h_heal(&net);
    for (int t = 0; t < 60; t++) {
        h_tick_all(&net, 1);
        h_settle(&net);
    }
    cr_assert_eq(h_status(&net, 1).role, RAFT_LEADER);
    cr_assert_eq(h_status(&net, 1).term, 2);
    cr_assert_eq(h_status(&net, 3).leader, 1);
}

Test(election, lease_ignores_votes,
     .description = "a follower that heard from its leader within the election timeout ignores vote requests")
{
    struct raft_config c = h_default_cfg();
    c.check_quorum = true;
    h_init(&net, 3, 3, 0, &c);
    cr_assert_eq(h_elect(&net, 1), RAFT_LEADER);
    h_drop_all(&net);
    struct raft_msg m = vote_req(RAFT_MSG_VOTE, 3, 2, 9, 100, 2);
    h_step(&net, 2, &m);
    cr_assert_eq(h_status(&net, 2).term, 2, "term unchanged");
    cr_assert_eq(h_count(&net, RAFT_MSG_VOTE_RESP, 2), 0);
}

Test(election, leader_without_quorum_steps_down,
     .description = "a leader that cannot reach a quorum steps down after an election timeout")
{
    struct raft_config c = h_default_cfg();
    c.check_quorum = true;
    h_init(&net, 3, 3, 0, &c);
    cr_assert_eq(h_elect(&net, 1), RAFT_LEADER);
    h_isolate(&net, 1);
    for (int t = 0; t < 20; t++) {
        h_tick(&net, 1, 1);
        h_settle(&net);
    }
    cr_assert_eq(h_status(&net, 1).role, RAFT_FOLLOWER);
}

Test(election, leader_with_quorum_stays,
     .description = "a leader that hears from a quorum keeps leading under check-quorum")
{
    struct raft_config c = h_default_cfg();
    c.check_quorum = true;
    h_init(&net, 3, 3, 0, &c);
    cr_assert_eq(h_elect(&net, 1), RAFT_LEADER);
    h_isolate(&net, 3);
    for (int t = 0; t < 50; t++) {
        h_tick(&net, 1, 1);
        h_tick(&net, 2, 1);
        h_settle(&net);
    }
    cr_assert_eq(h_status(&net, 1).role, RAFT_LEADER);
}

/* --- a leader known to be gone --- */

Test(election, followers_that_lost_the_leader_elect_a_new_one_without_waiting,
     .description = "when every follower learns the leader's process is gone, a campaign wins at once")
{
    struct raft_config c = cfg_pv_cq();
    h_init(&net, 3, 3, 0, &c);
    cr_assert_eq(h_elect(&net, 1), RAFT_LEADER);
    h_isolate(&net, 1); /* killed */
    cr_assert_eq(raft_leader_lost(net.nd[2].r, 1), 0);
    cr_assert_eq(raft_leader_lost(net.nd[3].r, 1), 0);
    cr_assert_eq(h_status(&net, 2).leader, 0, "the lost leader is forgotten");
    cr_assert_eq(raft_campaign(net.nd[2].r), 0);
    h_ready(&net, 2);
    h_settle(&net); /* no tick: no timeout elapsed */
    cr_assert_eq(h_status(&net, 2).role, RAFT_LEADER);
    cr_assert_eq(h_status(&net, 3).leader, 2);
    cr_assert_eq(h_status(&net, 2).term, 3);
}

Test(election, a_follower_still_in_the_leaders_lease_refuses_the_early_campaign,
     .description = "a follower that did not lose the leader keeps its lease: the early campaign fails")
{
    struct raft_config c = cfg_pv_cq();
    h_init(&net, 3, 3, 0, &c);
    cr_assert_eq(h_elect(&net, 1), RAFT_LEADER);
    h_isolate(&net, 1);
    cr_assert_eq(raft_leader_lost(net.nd[2].r, 1), 0);
    cr_assert_eq(raft_campaign(net.nd[2].r), 0);
    h_ready(&net, 2);
    h_settle(&net);
    cr_assert_neq(h_status(&net, 2).role, RAFT_LEADER);
    cr_assert_eq(h_status(&net, 3).leader, 1, "node 3 still follows 1");
    cr_assert_eq(h_status(&net, 3).term, 2, "and its term did not move");
}

Test(election, leader_lost_only_applies_to_a_follower_of_that_leader,
     .description = "leader_lost naming another node, or on the leader itself, changes nothing")
{
    struct raft_config c = cfg_pv_cq();
    h_init(&net, 3, 3, 0, &c);
    cr_assert_eq(h_elect(&net, 1), RAFT_LEADER);
    cr_assert_neq(raft_leader_lost(net.nd[2].r, 3), 0);
    cr_assert_neq(raft_leader_lost(net.nd[1].r, 1), 0);
    cr_assert_neq(raft_leader_lost(net.nd[2].r, 0), 0);
    cr_assert_eq(h_status(&net, 2).leader, 1);
    cr_assert_eq(h_status(&net, 1).role, RAFT_LEADER);
}

Test(election, a_live_leader_wrongly_declared_lost_keeps_or_regains_its_followers,
     .description = "a false alarm costs at most an election: one leader per term, logs agree")
{
    struct raft_config c = cfg_pv_cq();
    h_init(&net, 3, 3, 0, &c);
    cr_assert_eq(h_elect(&net, 1), RAFT_LEADER);
    cr_assert_eq(raft_leader_lost(net.nd[2].r, 1), 0);
    cr_assert_eq(raft_leader_lost(net.nd[3].r, 1), 0);
    raft_campaign(net.nd[2].r);
    h_ready(&net, 2);
    for (int t = 0; t < 40; t++) {
        h_tick_all(&net, 1);
        h_settle(&net);
    }
    int leaders = 0;
    for (int i = 1; i <= 3; i++)
        leaders += h_status(&net, i).role == RAFT_LEADER;
    cr_assert_eq(leaders, 1);
    uint64_t lead = h_status(&net, 1).leader;
    cr_assert_neq(lead, 0);
    for (int i = 2; i <= 3; i++)
        cr_assert_eq(h_status(&net, i).leader, lead);
}
