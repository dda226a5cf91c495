/* Log replication and commitment (§5.3, §5.4.2), persistence before
 * acknowledgement (thesis 3.8), pipelining and fast backtracking. */
#include <criterion/criterion.h>
#include <string.h>

#include "harness.h"

static struct hnet net;

static void teardown(void) { h_free(&net); }

TestSuite(replication, .fini = teardown);

static struct raft_msg app(uint64_t from, uint64_t to, uint64_t term, uint64_t prev,
                           uint64_t prev_term, uint64_t commit, const struct raft_entry *e,
                           uint32_t n)
{
    struct raft_msg m;
    memset(&m, 0, sizeof m);
    m.type = RAFT_MSG_APP;
    m.from = from;
    m.to = to;
    m.term = term;
    m.index = prev;
    m.log_term = prev_term;
    m.commit = commit;
    m.entries = e;
    m.n_entries = n;
    return m;
}

static size_t count_to(const struct hnet *h, uint32_t type, uint64_t from, uint64_t to)
{
    size_t c = 0;
    for (size_t k = 0; k < h->nq; k++)
        c += h->q[k].m.type == type && h->q[k].m.from == from && h->q[k].m.to == to;
    return c;
}

Test(replication, mismatched_previous_entry_rejected,
     .description = "an append whose previous entry does not match the follower's log is rejected")
{
    h_init(&net, 3, 3, 0, NULL);
    cr_assert_eq(h_elect(&net, 1), RAFT_LEADER);
    h_drop_all(&net);
    struct raft_entry e = {.term = 2, .type = RAFT_ENTRY_NORMAL};
    struct raft_msg m = app(1, 2, 2, 10, 2, 4, &e, 1);
    h_step(&net, 2, &m);
    const struct raft_msg *r = h_find_to(&net, RAFT_MSG_APP_RESP, 2, 1);
    cr_assert(r && r->reject);
    cr_assert_eq(h_status(&net, 2).last_index, 4, "nothing appended");
}

Test(replication, conflicting_entries_replaced,
     .description = "conflicting entries in a follower are deleted and replaced by the leader's")
{
    h_init(&net, 3, 3, 0, NULL);
    cr_assert_eq(h_elect(&net, 1), RAFT_LEADER); /* term 2, no-op at 4 */
    h_isolate(&net, 1);
    h_propose(&net, 1, "lost-a");
    h_propose(&net, 1, "lost-b");
    h_settle(&net);
    cr_assert_eq(h_status(&net, 1).last_index, 6);
    cr_assert_eq(h_elect(&net, 2), RAFT_LEADER); /* term 3, no-op at 5 */
    h_propose(&net, 2, "kept");
    h_settle(&net);
    h_heal(&net);
    h_tick(&net, 2, 1);
    h_settle(&net);
    uint64_t t;
    cr_assert(raft_log_term(net.nd[1].r, 5, &t) && t == 3);
    const struct raft_entry *e = raft_log_entry(net.nd[1].r, 6);
    cr_assert(e && e->len == 4 && memcmp(e->data, "kept", 4) == 0);
    cr_assert_eq(h_status(&net, 1).last_index, 6);
    cr_assert_eq(h_status(&net, 1).commit, 6);
}

Test(replication, follower_commit_bounded_by_last_new_entry,
     .description = "a follower commits up to min(leader commit, index of the last new entry)")
{
    h_init(&net, 3, 3, 0, NULL);
    cr_assert_eq(h_elect(&net, 1), RAFT_LEADER);
    h_drop_all(&net);
    struct raft_entry e[2] = {{.term = 2, .data = (const uint8_t *)"x", .len = 1},
                              {.term = 2, .data = (const uint8_t *)"y", .len = 1}};
    struct raft_msg m = app(1, 2, 2, 4, 2, 100, e, 2);
    h_step(&net, 2, &m);
    cr_assert_eq(h_status(&net, 2).commit, 6);
    /* A shorter append must not let the follower commit entries it only
     * has from elsewhere. */
    struct raft_msg m2 = app(1, 3, 2, 3, 1, 100, NULL, 0);
    h_step(&net, 3, &m2);
    cr_assert_eq(h_status(&net, 3).commit, 4);
}

Test(replication, majority_commits,
     .description = "a leader commits an entry once a majority of voters has stored it")
{
    h_init(&net, 3, 3, 0, NULL);
    cr_assert_eq(h_elect(&net, 1), RAFT_LEADER);
    h_isolate(&net, 3);
    uint64_t i = h_propose(&net, 1, "v");
    h_settle(&net);
    cr_assert_eq(h_status(&net, 1).commit, i);
    cr_assert_eq(net.nd[1].applied, i, "and applies it");
}

Test(replication, minority_does_not_commit,
     .description = "an entry stored by less than a majority is not committed")
{
    h_init(&net, 5, 5, 0, NULL);
    cr_assert_eq(h_elect(&net, 1), RAFT_LEADER);
    h_isolate(&net, 3);
    h_isolate(&net, 4);
    h_isolate(&net, 5);
    uint64_t i = h_propose(&net, 1, "v");
    h_settle(&net);
    cr_assert_lt(h_status(&net, 1).commit, i);
}

/* Builds figure 8's key situation: node 1 leads term 4 with an uncommitted
 * entry of term 2 at index 5 and its own no-op at 6; all traffic dropped. */
static void figure8(void)
{
    h_init(&net, 3, 3, 0, NULL);
    cr_assert_eq(h_elect(&net, 1), RAFT_LEADER); /* term 2, no-op 4 */
    h_isolate(&net, 1);
    cr_assert_eq(h_propose(&net, 1, "old"), 5); /* term 2, only on node 1 */
    h_settle(&net);
    h_heal(&net);
    struct raft_msg up;
    memset(&up, 0, sizeof up);
    up.type = RAFT_MSG_HEARTBEAT_RESP;
    up.from = 2;
    up.to = 1;
    up.term = 3;
    h_step(&net, 1, &up); /* step down to term 3 */
    raft_campaign(net.nd[1].r);
    h_ready(&net, 1);
    /* deliver only the votes */
    while (h_status(&net, 1).role != RAFT_LEADER) {
        cr_assert(net.nq > 0);
        const struct hmsg *c = &net.q[0];
        if (c->m.type == RAFT_MSG_VOTE || c->m.type == RAFT_MSG_VOTE_RESP)
            h_deliver_one(&net);
        else
            memmove(net.q, net.q + 1, --net.nq * sizeof *net.q);
    }
    h_drop_all(&net);
    struct raft_status st = h_status(&net, 1);
    cr_assert_eq(st.term, 4);
    cr_assert_eq(st.last_index, 6);
    cr_assert_eq(st.commit, 4);
}

static void ack(uint64_t from, uint64_t index)
{
    struct raft_msg m;
    memset(&m, 0, sizeof m);
    m.type = RAFT_MSG_APP_RESP;
    m.from = from;
    m.to = 1;
    m.term = 4;
    m.index = index;
    h_step(&net, 1, &m);
}

Test(replication, commits_only_current_term_by_counting,
     .description = "a leader commits only entries of its own term by counting replicas (figure 8)")
{
    figure8();
    ack(2, 5); /* a majority now stores the term-2 entry at index 5 */
    cr_assert_eq(h_status(&net, 1).commit, 4, "an old-term entry is never committed by counting");
}

Test(replication, old_entries_commit_with_current_term_entry,
     .description = "entries of earlier terms are committed indirectly by a current-term entry")
{
    figure8();
    ack(2, 6);
    cr_assert_eq(h_status(&net, 1).commit, 6);
    cr_assert_geq(net.nd[1].applied, 5);
}

Test(replication, leader_counts_itself_once_durable,
     .description = "a leader counts its own entry toward commitment only once it is persisted")
{
    h_init(&net, 1, 1, 0, NULL);
    cr_assert_eq(h_elect(&net, 1), RAFT_LEADER);
    struct raft *r = net.nd[1].r;
    uint64_t idx;
    cr_assert_eq(raft_propose(r, "z", 1, &idx, NULL), ERR_OK);
    struct raft_ready rd;
    raft_ready(r, &rd);
    cr_assert_eq(rd.n_entries, 1);
    cr_assert_lt(h_status(&net, 1).commit, idx, "not committed before it is durable");
    raft_advance(r, &rd);
    cr_assert_eq(h_status(&net, 1).commit, idx);
    raft_ready(r, &rd);
    cr_assert_eq(rd.n_committed, 1);
    cr_assert_eq(rd.committed[0].index, idx);
    raft_advance(r, &rd);
}

Test(replication, append_ack_held_until_durable,
     .description = "a follower acknowledges entries only after they are persisted")
{
    h_init(&net, 3, 3, 0, NULL);
    cr_assert_eq(h_elect(&net, 1), RAFT_LEADER);
    h_drop_all(&net);
    struct raft *r = net.nd[2].r;
    struct raft_entry e = {.term = 2, .data = (const uint8_t *)"q", .len = 1};
    struct raft_msg m = app(1, 2, 2, 4, 2, 4, &e, 1);
    cr_assert_eq(raft_step(r, &m), ERR_OK);
    struct raft_ready rd;
    raft_ready(r, &rd);
    cr_assert_eq(rd.n_entries, 1);
    for (size_t k = 0; k < rd.n_msgs; k++)
        cr_assert_neq(rd.msgs[k].type, RAFT_MSG_APP_RESP, "ack before the entries are durable");
    raft_advance(r, &rd);
    raft_ready(r, &rd);
    cr_assert_eq(rd.n_msgs, 1);
    cr_assert_eq(rd.msgs[0].type, RAFT_MSG_APP_RESP);
    cr_assert_eq(rd.msgs[0].index, 5);
    raft_advance(r, &rd);
}

Test(replication, messages_may_leave_before_the_write,
     .description = "a leader's appends may be sent while its own write is in flight")
{
    h_init(&net, 3, 3, 0, NULL);
    cr_assert_eq(h_elect(&net, 1), RAFT_LEADER);
    struct raft *r = net.nd[1].r;
    raft_propose(r, "w", 1, NULL, NULL);
    struct raft_ready rd;
    raft_ready(r, &rd);
    cr_assert_eq(rd.n_entries, 1);
    size_t apps = 0;
    for (size_t k = 0; k < rd.n_msgs; k++)
        apps += rd.msgs[k].type == RAFT_MSG_APP && rd.msgs[k].n_entries == 1;
    cr_assert_eq(apps, 2, "replication overlaps the leader's disk write");
    raft_advance(r, &rd);
}

Test(replication, pipelining_fills_the_window,
     .description = "a leader pipelines appends to a replicating follower up to the inflight window")
{
    struct raft_config c = h_default_cfg();
    c.max_inflight = 3;
    c.max_msg_entries = 1;
    h_init(&net, 3, 3, 0, &c);
    cr_assert_eq(h_elect(&net, 1), RAFT_LEADER);
    h_isolate(&net, 2);
    h_isolate(&net, 3);
    for (int k = 0; k < 6; k++)
        h_propose(&net, 1, "p");
    cr_assert_eq(count_to(&net, RAFT_MSG_APP, 1, 2), 3, "three appends in flight, no more");
    h_heal(&net);
    h_drop_all(&net);
    h_tick(&net, 1, 1); /* heartbeat answers reopen the window */
    h_settle(&net);
    cr_assert_eq(h_status(&net, 2).last_index, 10);
}

Test(replication, probe_sends_one_append,
     .description = "a leader probing a follower sends one append at a time until it matches")
{
    h_init(&net, 3, 3, 0, NULL);
    /* votes only: progress stays in probe */
    h_elect_votes_only(&net, 1);
    h_drop_all(&net);
    h_ready(&net, 1);
    h_propose(&net, 1, "a");
    h_propose(&net, 1, "b");
    cr_assert_leq(count_to(&net, RAFT_MSG_APP, 1, 2), 1);
}

Test(replication, fast_backtracking,
     .description = "a rejection's conflict hint lets the leader skip a whole term at once")
{
    h_init(&net, 3, 3, 0, NULL);
    cr_assert_eq(h_elect(&net, 3), RAFT_LEADER); /* term 2, no-op 4 */
    h_isolate(&net, 3);
    for (int k = 0; k < 10; k++)
        h_propose(&net, 3, "stale"); /* 5..14, term 2, only on node 3 */
    h_settle(&net);
    cr_assert_eq(h_elect(&net, 1), RAFT_LEADER); /* term 3 */
    for (int k = 0; k < 10; k++)
        h_propose(&net, 1, "new");
    h_settle(&net);
    cr_assert_eq(h_elect(&net, 2), RAFT_LEADER); /* term 4: progress for 3 starts at 16 */
    h_settle(&net);
    h_heal(&net);
    memset(net.rejects, 0, sizeof net.rejects);
    for (int t = 0; t < 5; t++) {
        h_tick(&net, 2, 1);
        h_settle(&net);
    }
    cr_assert_eq(h_status(&net, 3).last_index, h_status(&net, 2).last_index);
    cr_assert_eq(h_status(&net, 3).commit, h_status(&net, 2).commit);
    cr_assert_leq(net.rejects[3], 1, "one rejection for a divergent tail of 11 entries, got %zu",
                  net.rejects[3]);
}

Test(replication, follower_hint_names_last_possible_match,
     .description = "a follower's rejection names the last index whose term is not newer than the leader's")
{
    h_init(&net, 3, 3, 0, NULL);
    cr_assert_eq(h_elect(&net, 3), RAFT_LEADER);
    h_isolate(&net, 3);
    for (int k = 0; k < 10; k++)
        h_propose(&net, 3, "x"); /* 5..14 of term 2 */
    h_drop_all(&net);
    struct raft_msg m = app(1, 3, 5, 20, 4, 4, NULL, 0);
    h_step(&net, 3, &m);
    const struct raft_msg *r = h_find_to(&net, RAFT_MSG_APP_RESP, 3, 1);
    cr_assert(r && r->reject);
    cr_assert_eq(r->index, 20);
    cr_assert_eq(r->hint_index, 14);
    cr_assert_eq(r->hint_term, 2);
}

Test(replication, applies_in_order_once,
     .description = "committed entries are handed out for apply in log order, each exactly once, across restarts")
{
    h_init(&net, 3, 3, 0, NULL);
    cr_assert_eq(h_elect(&net, 1), RAFT_LEADER);
    for (int k = 0; k < 5; k++)
        h_propose(&net, 1, "e");
    h_settle(&net);
    size_t before = net.nd[2].n_applied;
    uint64_t applied = net.nd[2].applied;
    cr_assert_eq(applied, 9);
    h_crash(&net, 2);
    h_start(&net, 2);
    h_ready(&net, 2);
    cr_assert_eq(net.nd[2].n_applied, before, "nothing applied twice after a restart");
    h_propose(&net, 1, "f");
    h_settle(&net);
    cr_assert_eq(net.nd[2].applied, 10);
    for (size_t k = 1; k < net.nd[2].n_applied; k++)
        cr_assert_eq(net.nd[2].applied_ents[k].index, net.nd[2].applied_ents[k - 1].index + 1);
}

Test(replication, stale_ack_ignored,
     .description = "an append acknowledgement for an index the leader never had is ignored")
{
    h_init(&net, 3, 3, 0, NULL);
    cr_assert_eq(h_elect(&net, 1), RAFT_LEADER);
    struct raft_msg m;
    memset(&m, 0, sizeof m);
    m.type = RAFT_MSG_APP_RESP;
    m.from = 2;
    m.to = 1;
    m.term = 2;
    m.index = 1000;
    h_step(&net, 1, &m);
    cr_assert_eq(h_status(&net, 1).commit, 4);
}

Test(replication, follower_that_lost_its_tail_is_caught_up_by_heartbeats,
     .description = "a follower whose disk lost entries it had acknowledged says so in its heartbeat "
                    "reply; the leader replicates again from what it holds, with no new proposal")
{
    h_init(&net, 3, 3, 0, NULL);
    cr_assert_eq(h_elect(&net, 1), RAFT_LEADER);
    uint64_t last = 0;
    for (int k = 0; k < 6; k++)
        last = h_propose(&net, 1, "v");
    h_settle(&net);
    cr_assert_eq(h_status(&net, 3).last_index, last);
    struct raft_progress_info pi;
    cr_assert_eq(raft_progress_get(net.nd[1].r, 3, &pi), ERR_OK);
    cr_assert_eq(pi.match, last);

    /* n3 loses the tail of its log (a disk that dropped acknowledged writes). */
    h_crash(&net, 3);
    struct hnode *n3 = &net.nd[3];
    size_t keep = 2;
    cr_assert(n3->n_log > keep);
    n3->n_log = keep;
    uint64_t kept = n3->log[keep - 1].index;
    if (n3->hs.commit > kept)
        n3->hs.commit = kept;
    if (n3->applied > kept)
        n3->applied = kept;
    h_start(&net, 3);
    cr_assert_eq(h_status(&net, 3).last_index, kept);

    /* Heartbeats alone (no proposal) must bring it back. */
    for (int round = 0; round < 5 && h_status(&net, 3).last_index < last; round++) {
        h_tick(&net, 1, (int)net.tmpl.heartbeat_ticks);
        h_settle(&net);
    }
    cr_assert_eq(h_status(&net, 3).last_index, last, "n3 at %llu, leader at %llu",
                 (unsigned long long)h_status(&net, 3).last_index, (unsigned long long)last);
    cr_assert_eq(h_status(&net, 1).regressions, 1);
    cr_assert_eq(raft_progress_get(net.nd[1].r, 3, &pi), ERR_OK);
    cr_assert_eq(pi.match, last);
    cr_assert_eq(h_status(&net, 3).leader_commit, h_status(&net, 1).commit,
                 "heartbeats tell the follower the real commit index");
}
