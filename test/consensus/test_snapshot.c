/* Log compaction and InstallSnapshot (§7), in chunks. */
#include <criterion/criterion.h>
#include <string.h>

#include "harness.h"

static struct hnet net;

static void teardown(void) { h_free(&net); }

TestSuite(snapshot, .fini = teardown);

/* Node 3 misses entries that the leader then compacts away. */
static uint64_t lagging_follower(void)
{
    h_init(&net, 3, 3, 0, NULL);
    cr_assert_eq(h_elect(&net, 1), RAFT_LEADER);
    h_isolate(&net, 3);
    for (int k = 0; k < 6; k++)
        h_propose(&net, 1, "s");
    h_settle(&net);
    uint64_t applied = net.nd[1].applied;
    cr_assert_eq(applied, 10);
    cr_assert_eq(h_compact(&net, 1, applied), ERR_OK);
    return applied;
}

Test(snapshot, compaction_forgets_prefix,
     .description = "compaction forgets entries up to the index but remembers the term there")
{
    uint64_t at = lagging_follower();
    struct raft_status st = h_status(&net, 1);
    cr_assert_eq(st.first_index, at + 1);
    cr_assert_eq(st.snap_index, at);
    uint64_t t;
    cr_assert(raft_log_term(net.nd[1].r, at, &t) && t == 2);
    cr_assert(!raft_log_term(net.nd[1].r, at - 1, &t));
    cr_assert_null(raft_log_entry(net.nd[1].r, at));
    cr_assert_eq(raft_compact(net.nd[1].r, at + 5), ERR_BAD_INPUT, "not past applied");
}

Test(snapshot, leader_sends_snapshot_when_log_compacted,
     .description = "a leader sends InstallSnapshot to a follower whose next entry was compacted")
{
    uint64_t at = lagging_follower();
    h_heal(&net);
    memset(net.delivered, 0, sizeof net.delivered);
    for (int t = 0; t < 10; t++) {
        h_tick(&net, 1, 1);
        h_settle(&net);
    }
    cr_assert_gt(net.delivered[RAFT_MSG_SNAP - RAFT_MSG_TYPE_FIRST], 0);
    cr_assert_eq(net.nd[3].snap.index, at, "installed the leader's snapshot");
    cr_assert_eq(net.nd[3].applied, net.nd[1].applied);
    cr_assert_eq(net.nd[3].sm_hash, net.nd[1].sm_hash, "same state machine");
    h_propose(&net, 1, "after");
    h_settle(&net);
    cr_assert_eq(net.nd[3].applied, net.nd[1].applied, "and replicates normally afterwards");
}

Test(snapshot, snapshot_in_chunks,
     .description = "a snapshot travels in chunks and is installed only after its last chunk is durable")
{
    lagging_follower(); /* image: 56 bytes, chunks of 16 */
    h_heal(&net);
    h_drop_all(&net);
    h_tick(&net, 1, 1); /* heartbeat */
    size_t chunks = 0;
    for (int k = 0; k < 1000 && net.nq > 0; k++) {
        const struct raft_msg *m = &net.q[0].m;
        if (m->type == RAFT_MSG_SNAP) {
            chunks++;
            cr_assert_leq(m->len, 16);
            if (!(m->flags & RAFT_MSGF_LAST))
                cr_assert_eq(net.nd[3].snap.index, 0, "nothing installed before the last chunk");
        }
        h_deliver_one(&net);
    }
    cr_assert_eq(chunks, 4);
    cr_assert_eq(net.nd[3].snap.index, 10);
}

Test(snapshot, chunk_ack_held_until_durable,
     .description = "a follower acknowledges a snapshot chunk only after it is persisted")
{
    lagging_follower();
    h_heal(&net);
    h_drop_all(&net);
    h_tick(&net, 1, 1);
    for (int k = 0; k < 100 && net.nq > 0; k++) {
        bool snap = net.q[0].m.type == RAFT_MSG_SNAP && net.q[0].m.to == 3;
        if (snap)
            net.nd[3].auto_ready = false;
        h_deliver_one(&net);
        if (snap)
            break;
    }
    struct raft *r = net.nd[3].r;
    struct raft_ready rd;
    raft_ready(r, &rd);
    cr_assert_not_null(rd.chunk);
    for (size_t k = 0; k < rd.n_msgs; k++)
        cr_assert_neq(rd.msgs[k].type, RAFT_MSG_SNAP_RESP);
    raft_advance(r, &rd);
    raft_ready(r, &rd);
    bool acked = false;
    for (size_t k = 0; k < rd.n_msgs; k++)
        acked |= rd.msgs[k].type == RAFT_MSG_SNAP_RESP && rd.msgs[k].offset == 16;
    cr_assert(acked);
    raft_advance(r, &rd);
}

Test(snapshot, snapshot_matching_log_keeps_suffix,
     .description = "a snapshot whose last entry the follower already holds keeps the entries after it")
{
    h_init(&net, 3, 3, 0, NULL);
    cr_assert_eq(h_elect(&net, 1), RAFT_LEADER);
    for (int k = 0; k < 3; k++)
        h_propose(&net, 1, "k");
    h_settle(&net); /* every log: 1..7, committed */
    struct raft_entry e[2] = {{.term = 2, .data = (const uint8_t *)"p", .len = 1},
                              {.term = 2, .data = (const uint8_t *)"q", .len = 1}};
    struct raft_msg a;
    memset(&a, 0, sizeof a);
    a.type = RAFT_MSG_APP;
    a.from = 1;
    a.to = 2;
    a.term = 2;
    a.index = 7;
    a.log_term = 2;
    a.commit = 7;
    a.entries = e;
    a.n_entries = 2;
    h_step(&net, 2, &a); /* node 2 holds 8 and 9, commit 7 */
    struct raft_msg m;
    memset(&m, 0, sizeof m);
    m.type = RAFT_MSG_SNAP;
    m.from = 1;
    m.to = 2;
    m.term = 2;
    m.index = 8;
    m.log_term = 2;
    m.conf = *raft_get_conf(net.nd[1].r);
    m.data = (const uint8_t *)"ignored";
    m.len = 7;
    m.flags = RAFT_MSGF_LAST;
    h_step(&net, 2, &m);
    struct raft_status st = h_status(&net, 2);
    cr_assert_eq(st.last_index, 9, "entries after the snapshot kept");
    cr_assert_eq(st.commit, 8);
    cr_assert_eq(st.snap_index, 0, "nothing installed");
}

Test(snapshot, restart_from_snapshot,
     .description = "a server restarts from its snapshot and log with the right indexes and configuration")
{
    h_init(&net, 4, 3, 0, NULL);
    cr_assert_eq(h_elect(&net, 1), RAFT_LEADER);
    cr_assert_eq(raft_propose_conf_change(net.nd[1].r, RAFT_CC_ADD_LEARNER, 4, NULL, NULL), ERR_OK);
    h_ready(&net, 1);
    h_settle(&net);
    h_propose(&net, 1, "a");
    h_propose(&net, 1, "b");
    h_settle(&net);
    uint64_t applied = net.nd[1].applied;
    cr_assert_eq(h_compact(&net, 1, applied - 1), ERR_OK);
    h_crash(&net, 1);
    h_start(&net, 1);
    struct raft_status st = h_status(&net, 1);
    cr_assert_eq(st.snap_index, applied - 1);
    cr_assert_eq(st.last_index, applied);
    cr_assert_eq(st.applied, applied);
    const struct raft_conf *c = raft_get_conf(net.nd[1].r);
    cr_assert(raft_conf_has(c, 4) && !raft_conf_is_voter(c, 4), "learner 4 survives compaction");
    cr_assert_eq(raft_conf_voters(c), 3);
}

Test(snapshot, new_server_catches_up_by_snapshot,
     .description = "a server added after compaction receives the configuration and state by snapshot")
{
    h_init(&net, 4, 3, 0, NULL);
    cr_assert_eq(h_elect(&net, 1), RAFT_LEADER);
    for (int k = 0; k < 4; k++)
        h_propose(&net, 1, "x");
    h_settle(&net);
    cr_assert_eq(h_compact(&net, 1, net.nd[1].applied), ERR_OK);
    cr_assert_eq(raft_propose_conf_change(net.nd[1].r, RAFT_CC_ADD_LEARNER, 4, NULL, NULL), ERR_OK);
    h_ready(&net, 1);
    for (int t = 0; t < 10; t++) {
        h_tick(&net, 1, 1);
        h_settle(&net);
    }
    cr_assert_eq(net.nd[4].applied, net.nd[1].applied);
    cr_assert_eq(net.nd[4].sm_hash, net.nd[1].sm_hash);
    cr_assert_eq(raft_conf_voters(raft_get_conf(net.nd[4].r)), 3);
}

Test(snapshot, chunks_of_two_senders_never_spliced,
     .description = "chunks from different leaders are never joined into one snapshot image")
{
    h_init(&net, 3, 3, 0, NULL);
    struct raft_msg m;
    memset(&m, 0, sizeof m);
    m.type = RAFT_MSG_SNAP;
    m.from = 1;
    m.to = 3;
    m.term = 2;
    m.index = 20;
    m.log_term = 2;
    m.conf = *raft_get_conf(net.nd[3].r);
    m.data = (const uint8_t *)"0123456789abcdef";
    m.len = 16;
    h_step(&net, 3, &m); /* leader 1 of term 2: bytes 0..16 of its image */
    h_drop_all(&net);
    m.from = 2;
    m.term = 3;
    m.offset = 16; /* leader 2 of term 3 continues "its" image of the same index */
    m.flags = RAFT_MSGF_LAST;
    h_step(&net, 3, &m);
    const struct raft_msg *r = h_find(&net, RAFT_MSG_SNAP_RESP, 3);
    cr_assert(r && r->reject && r->offset == 0, "the second sender must start over");
    cr_assert_eq(h_status(&net, 3).snap_index, 0, "nothing installed");
}
