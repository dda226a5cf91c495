/* Durable Raft state: what is staged and written comes back after a reopen,
 * conflicting suffixes are replaced, compaction forgets, corruption is caught. */
#include <criterion/criterion.h>
#include <string.h>

#include "harness.h"
#include "kv/raftlog.h"

static char dir[256];
static struct store *st;

static void reopen(void)
{
    struct errbuf eb;
    if (st)
        store_close(st);
    cr_assert_eq(store_open(&st, dir, NULL, &eb), ERR_OK, "%s", eb.msg);
}

static void setup(void)
{
    cr_assert_eq(harness_tmpdir(dir, sizeof dir, "raftlog"), 0);
    st = NULL;
    reopen();
}

static void teardown(void)
{
    store_close(st);
    st = NULL;
    harness_rmrf(dir);
}

static struct raft_entry ent(uint64_t index, uint64_t term, const char *data)
{
    return (struct raft_entry){.index = index, .term = term, .type = RAFT_ENTRY_NORMAL,
                               .data = (const uint8_t *)data, .len = strlen(data)};
}

static void write_batch(struct store_batch *b)
{
    struct errbuf eb;
    cr_assert_eq(store_write(st, b, true, &eb), ERR_OK, "%s", eb.msg);
    store_batch_free(b);
}

static struct raftlog_loaded load(void)
{
    struct raftlog_loaded l;
    struct errbuf eb;
    cr_assert_eq(raftlog_load(st, &l, &eb), ERR_OK, "%s", eb.msg);
    return l;
}

TestSuite(raftlog, .init = setup, .fini = teardown, .timeout = 60);

Test(raftlog, an_empty_store_loads_as_a_fresh_server)
{
    struct raftlog_loaded l = load();
    cr_assert_eq(l.hs.term, 0);
    cr_assert_eq(l.snap.index, 0);
    cr_assert_eq(l.n_entries, 0);
    raftlog_loaded_free(&l);
}

Test(raftlog, entries_and_hard_state_survive_a_reopen)
{
    struct store_batch *b = store_batch_new(st);
    struct raft_entry e[3] = {ent(1, 1, "a"), ent(2, 1, ""), ent(3, 2, "ccc")};
    e[1].type = RAFT_ENTRY_CONF;
    raftlog_stage_entries(b, e, 3, 0);
    struct raft_hard_state hs = {.term = 2, .vote = 3, .commit = 2};
    raftlog_stage_hard_state(b, &hs);
    write_batch(b);
    reopen();
    struct raftlog_loaded l = load();
    cr_assert_eq(l.hs.term, 2);
    cr_assert_eq(l.hs.vote, 3);
    cr_assert_eq(l.hs.commit, 2);
    cr_assert_eq(l.n_entries, 3);
    cr_assert_eq(l.entries[1].type, RAFT_ENTRY_CONF);
    cr_assert_eq(l.entries[1].len, 0);
    cr_assert_eq(l.entries[2].term, 2);
    cr_assert(l.entries[2].len == 3 && memcmp(l.entries[2].data, "ccc", 3) == 0);
    raftlog_loaded_free(&l);
}

Test(raftlog, a_conflicting_suffix_is_replaced_not_left_behind)
{
    struct store_batch *b = store_batch_new(st);
    struct raft_entry e[5] = {ent(1, 1, "1"), ent(2, 1, "2"), ent(3, 1, "3"), ent(4, 1, "4"),
                              ent(5, 1, "5")};
    raftlog_stage_entries(b, e, 5, 0);
    write_batch(b);
    /* A new leader of term 2 overwrites from index 3 with one entry: 4 and 5 must go. */
    b = store_batch_new(st);
    struct raft_entry n = ent(3, 2, "new");
    raftlog_stage_entries(b, &n, 1, 5);
    write_batch(b);
    reopen();
    struct raftlog_loaded l = load();
    cr_assert_eq(l.n_entries, 3, "stale entries after the conflict survived");
    cr_assert_eq(l.entries[2].term, 2);
    cr_assert(memcmp(l.entries[2].data, "new", 3) == 0);
    raftlog_loaded_free(&l);
}

Test(raftlog, a_snapshot_and_compaction_leave_only_the_tail)
{
    struct store_batch *b = store_batch_new(st);
    struct raft_entry e[6] = {ent(1, 1, "1"), ent(2, 1, "2"), ent(3, 1, "3"),
                              ent(4, 2, "4"), ent(5, 2, "5"), ent(6, 2, "6")};
    raftlog_stage_entries(b, e, 6, 0);
    write_batch(b);
    b = store_batch_new(st);
    struct raft_snap_meta m = {.index = 4, .term = 2, .conf = {.n = 3, .learners = 4, .ids = {1, 2, 9}}};
    raftlog_stage_snapshot(b, &m);
    raftlog_stage_compact(b, 1, 4);
    write_batch(b);
    reopen();
    struct raftlog_loaded l = load();
    cr_assert_eq(l.snap.index, 4);
    cr_assert_eq(l.snap.term, 2);
    cr_assert_eq(l.snap.conf.n, 3);
    cr_assert_eq(l.snap.conf.learners, 4);
    cr_assert_eq(l.snap.conf.ids[2], 9);
    cr_assert_eq(l.n_entries, 2);
    cr_assert_eq(l.entries[0].index, 5);
    raftlog_loaded_free(&l);
}

Test(raftlog, a_gap_in_the_log_is_reported_as_corruption)
{
    struct store_batch *b = store_batch_new(st);
    struct raft_entry e[3] = {ent(1, 1, "1"), ent(2, 1, "2"), ent(3, 1, "3")};
    raftlog_stage_entries(b, e, 3, 0);
    write_batch(b);
    b = store_batch_new(st);
    uint8_t k[8];
    put_be64(k, 2);
    store_batch_delete(b, STORE_CF_RAFT_LOG, k, 8);
    write_batch(b);
    struct raftlog_loaded l;
    struct errbuf eb;
    cr_assert_eq(raftlog_load(st, &l, &eb), ERR_CORRUPT);
    cr_assert(strstr(eb.msg, "gap") != NULL, "message: %s", eb.msg);
}

Test(raftlog, a_truncated_hard_state_is_reported_as_corruption)
{
    struct store_batch *b = store_batch_new(st);
    store_batch_put(b, STORE_CF_RAFT_STATE, "hard_state", 10, "short", 5);
    write_batch(b);
    struct raftlog_loaded l;
    struct errbuf eb;
    cr_assert_eq(raftlog_load(st, &l, &eb), ERR_CORRUPT);
}
