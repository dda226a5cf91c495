/* Transactions in the state machine: compare-and-swap and its relatives
 * (every field, every comparison, absent keys), the branch taken and nothing
 * else applied, atomicity across a restart, one mod_rev per entry, retries
 * answered with their original outcome, leases named by a transaction, and
 * the change events each branch reports. */
#include "sm_fixture.h"

static struct member m0;

static void setup(void)
{
    member_init(&m0, "txn", true);
}

static void teardown(void)
{
    member_fini(&m0);
}

TestSuite(txn, .init = setup, .fini = teardown, .timeout = 120);

#define N(a) (sizeof(a) / sizeof((a)[0]))

Test(txn, compare_and_swap_succeeds_only_when_the_value_matches)
{
    fx_put(&m0, "k", "v1", 0);
    fx_commit(&m0);
    /* The wrong expected value: nothing changes. */
    struct sm_cmp wrong[] = {fx_cmp_val("k", DDKV_CMP_EQ, "v0")};
    struct sm_txn_op swap[] = {fx_tput("k", "v2", 0)};
    struct sm_result r = fx_txn(&m0, wrong, 1, swap, 1, NULL, 0);
    cr_assert_not(r.succeeded);
    cr_assert_eq(r.error, SM_ERR_NONE);
    cr_assert_eq(r.revision, 1, "a txn that changed nothing answers the store's revision");
    fx_commit(&m0);
    struct kv_record rec;
    char v[16];
    cr_assert(fx_get(&m0, "k", &rec, v, sizeof v));
    cr_assert_str_eq(v, "v1");
    cr_assert_eq(rec.version, 1);
    cr_assert_eq(rec.mod_rev, 1);
    cr_assert_eq(m0.sm.revision, 1);
    /* The right one: swapped, version and mod_rev move. */
    struct sm_cmp right[] = {fx_cmp_val("k", DDKV_CMP_EQ, "v1")};
    r = fx_txn(&m0, right, 1, swap, 1, NULL, 0);
    cr_assert(r.succeeded);
    cr_assert_eq(r.revision, 3);
    cr_assert_eq(r.lamport, m0.sm.st_lamport);
    fx_commit(&m0);
    cr_assert(fx_get(&m0, "k", &rec, v, sizeof v));
    cr_assert_str_eq(v, "v2");
    cr_assert_eq(rec.version, 2);
    cr_assert_eq(rec.mod_rev, 3);
    cr_assert_eq(rec.create_rev, 1);
    cr_assert_eq(rec.lamport, r.lamport);
    cr_assert_eq(m0.sm.revision, 3);
    cr_assert_eq(m0.sm.keys, 1);
    /* The same swap again no longer matches. */
    r = fx_txn(&m0, right, 1, swap, 1, NULL, 0);
    cr_assert_not(r.succeeded);
    cr_assert_eq(r.revision, 3);
}

Test(txn, must_not_exist_succeeds_once)
{
    struct sm_cmp absent[] = {fx_cmp_num("lock", DDKV_CMP_VERSION, DDKV_CMP_EQ, 0)};
    struct sm_txn_op take_a[] = {fx_tput("lock", "a", 0)};
    struct sm_txn_op take_b[] = {fx_tput("lock", "b", 0)};
    struct sm_result a = fx_txn(&m0, absent, 1, take_a, 1, NULL, 0);
    /* In the same batch: the second sees the first through the batch. */
    struct sm_result b = fx_txn(&m0, absent, 1, take_b, 1, NULL, 0);
    fx_commit(&m0);
    struct sm_result c = fx_txn(&m0, absent, 1, take_b, 1, NULL, 0);
    fx_commit(&m0);
    cr_assert(a.succeeded);
    cr_assert_eq(a.revision, 1);
    cr_assert_not(b.succeeded);
    cr_assert_eq(b.revision, 1);
    cr_assert_not(c.succeeded);
    char v[8];
    struct kv_record rec;
    cr_assert(fx_get(&m0, "lock", &rec, v, sizeof v));
    cr_assert_str_eq(v, "a");
    cr_assert_eq(rec.version, 1);
    cr_assert_eq(m0.sm.applied_index, 3);
    cr_assert_eq(m0.sm.revision, 1);
    /* Once deleted, it can be taken again. */
    fx_del(&m0, "lock");
    cr_assert(fx_txn(&m0, absent, 1, take_b, 1, NULL, 0).succeeded);
    fx_commit(&m0);
    cr_assert(fx_get(&m0, "lock", &rec, v, sizeof v));
    cr_assert_str_eq(v, "b");
    cr_assert_eq(rec.create_rev, 5);
}

Test(txn, a_failed_txn_applies_its_failure_branch_and_nothing_else)
{
    fx_put(&m0, "x", "1", 0);
    fx_put(&m0, "d", "doomed", 0);
    fx_put(&m0, "other", "o", 0);
    fx_commit(&m0);
    m0.ev->n = 0;
    /* The first compare holds, the second does not. */
    struct sm_cmp cmps[] = {fx_cmp_val("x", DDKV_CMP_EQ, "1"),
                            fx_cmp_num("x", DDKV_CMP_VERSION, DDKV_CMP_GT, 5)};
    struct sm_txn_op ok[] = {fx_tput("s", "yes", 0), fx_tdel("other")};
    struct sm_txn_op ko[] = {fx_tput("f", "no", 0), fx_tdel("d"), fx_tdel("never-was")};
    struct sm_result r = fx_txn(&m0, cmps, N(cmps), ok, N(ok), ko, N(ko));
    fx_commit(&m0);
    cr_assert_not(r.succeeded);
    cr_assert_eq(r.revision, 4);
    cr_assert_not(fx_get(&m0, "s", NULL, NULL, 0), "the success branch must not apply");
    cr_assert(fx_get(&m0, "other", NULL, NULL, 0), "the success branch must not apply");
    struct kv_record rec;
    char v[8];
    cr_assert(fx_get(&m0, "f", &rec, v, sizeof v));
    cr_assert_str_eq(v, "no");
    cr_assert_eq(rec.mod_rev, 4);
    cr_assert_not(fx_get(&m0, "d", NULL, NULL, 0));
    cr_assert(fx_get(&m0, "x", &rec, v, sizeof v));
    cr_assert_eq(rec.version, 1, "compares change nothing");
    cr_assert_eq(m0.sm.keys, 3); /* x, other, f */
    /* Events: the failure branch's put and its delete that found a key. */
    cr_assert_eq(m0.ev->n, 2);
    cr_assert_eq(m0.ev->e[0].kind, DDKV_OP_PUT);
    cr_assert_str_eq(m0.ev->e[0].key, "f");
    cr_assert_str_eq(m0.ev->e[0].val, "no");
    cr_assert_eq(m0.ev->e[0].mod_rev, 4);
    cr_assert_eq(m0.ev->e[0].create_rev, 4);
    cr_assert_eq(m0.ev->e[0].version, 1);
    cr_assert_eq(m0.ev->e[1].kind, DDKV_OP_DELETE);
    cr_assert_str_eq(m0.ev->e[1].key, "d");
    cr_assert_eq(m0.ev->e[1].mod_rev, 4);
    cr_assert_eq(m0.ev->e[1].version, 0);
    cr_assert_str_eq(m0.ev->e[1].val, "");
}

Test(txn, compares_on_version_create_and_mod_revisions)
{
    fx_put(&m0, "k", "1", 0);     /* 1: create */
    fx_put(&m0, "pad", "", 0);    /* 2 */
    fx_put(&m0, "k", "2", 0);     /* 3: version 2, mod_rev 3 */
    fx_commit(&m0);
    static const struct {
        enum ddkv_cmp_field f;
        enum ddkv_cmp_op op;
        uint64_t num;
        bool want;
    } cases[] = {
        {DDKV_CMP_VERSION, DDKV_CMP_EQ, 2, true},     {DDKV_CMP_VERSION, DDKV_CMP_EQ, 1, false},
        {DDKV_CMP_VERSION, DDKV_CMP_NE, 1, true},     {DDKV_CMP_VERSION, DDKV_CMP_NE, 2, false},
        {DDKV_CMP_VERSION, DDKV_CMP_LT, 3, true},     {DDKV_CMP_VERSION, DDKV_CMP_LT, 2, false},
        {DDKV_CMP_VERSION, DDKV_CMP_GT, 1, true},     {DDKV_CMP_VERSION, DDKV_CMP_GT, 2, false},
        {DDKV_CMP_CREATE_REV, DDKV_CMP_EQ, 1, true},  {DDKV_CMP_CREATE_REV, DDKV_CMP_EQ, 3, false},
        {DDKV_CMP_CREATE_REV, DDKV_CMP_NE, 3, true},  {DDKV_CMP_CREATE_REV, DDKV_CMP_NE, 1, false},
        {DDKV_CMP_CREATE_REV, DDKV_CMP_LT, 2, true},  {DDKV_CMP_CREATE_REV, DDKV_CMP_LT, 1, false},
        {DDKV_CMP_CREATE_REV, DDKV_CMP_GT, 0, true},  {DDKV_CMP_CREATE_REV, DDKV_CMP_GT, 1, false},
        {DDKV_CMP_MOD_REV, DDKV_CMP_EQ, 3, true},     {DDKV_CMP_MOD_REV, DDKV_CMP_EQ, 1, false},
        {DDKV_CMP_MOD_REV, DDKV_CMP_NE, 1, true},     {DDKV_CMP_MOD_REV, DDKV_CMP_NE, 3, false},
        {DDKV_CMP_MOD_REV, DDKV_CMP_LT, 4, true},     {DDKV_CMP_MOD_REV, DDKV_CMP_LT, 3, false},
        {DDKV_CMP_MOD_REV, DDKV_CMP_GT, 2, true},     {DDKV_CMP_MOD_REV, DDKV_CMP_GT, 3, false},
        {DDKV_CMP_MOD_REV, DDKV_CMP_GT, UINT64_MAX, false}, {DDKV_CMP_MOD_REV, DDKV_CMP_LT, UINT64_MAX, true},
    };
    for (size_t i = 0; i < N(cases); i++) {
        struct sm_cmp c[] = {fx_cmp_num("k", cases[i].f, cases[i].op, cases[i].num)};
        struct sm_result r = fx_txn(&m0, c, 1, NULL, 0, NULL, 0);
        cr_assert_eq(r.succeeded, cases[i].want, "case %zu: field %d cmp %d %llu", i, (int)cases[i].f,
                     (int)cases[i].op, (unsigned long long)cases[i].num);
        cr_assert_eq(r.revision, 3);
    }
    /* An absent key has 0 for all three. */
    static const enum ddkv_cmp_field fields[] = {DDKV_CMP_VERSION, DDKV_CMP_CREATE_REV, DDKV_CMP_MOD_REV};
    for (size_t i = 0; i < 3; i++) {
        struct sm_cmp eq0[] = {fx_cmp_num("absent", fields[i], DDKV_CMP_EQ, 0)};
        struct sm_cmp ne0[] = {fx_cmp_num("absent", fields[i], DDKV_CMP_NE, 0)};
        struct sm_cmp lt1[] = {fx_cmp_num("absent", fields[i], DDKV_CMP_LT, 1)};
        struct sm_cmp gt0[] = {fx_cmp_num("absent", fields[i], DDKV_CMP_GT, 0)};
        cr_assert(fx_txn(&m0, eq0, 1, NULL, 0, NULL, 0).succeeded);
        cr_assert_not(fx_txn(&m0, ne0, 1, NULL, 0, NULL, 0).succeeded);
        cr_assert(fx_txn(&m0, lt1, 1, NULL, 0, NULL, 0).succeeded);
        cr_assert_not(fx_txn(&m0, gt0, 1, NULL, 0, NULL, 0).succeeded);
    }
    /* All compares must hold: one false among true ones fails the txn. */
    struct sm_cmp all[] = {fx_cmp_num("k", DDKV_CMP_VERSION, DDKV_CMP_EQ, 2),
                           fx_cmp_num("k", DDKV_CMP_MOD_REV, DDKV_CMP_EQ, 3),
                           fx_cmp_num("pad", DDKV_CMP_CREATE_REV, DDKV_CMP_EQ, 2)};
    cr_assert(fx_txn(&m0, all, 3, NULL, 0, NULL, 0).succeeded);
    all[1].num = 2;
    cr_assert_not(fx_txn(&m0, all, 3, NULL, 0, NULL, 0).succeeded);
    /* No compares: succeeds. */
    cr_assert(fx_txn(&m0, NULL, 0, NULL, 0, NULL, 0).succeeded);
    fx_commit(&m0);
    cr_assert_eq(m0.sm.revision, 3, "compares alone make no revision");
    cr_assert_eq(m0.ev->n, 3, "compares alone report no event");
}

Test(txn, values_compare_bytewise_and_an_absent_value_equals_nothing)
{
    const char bin[] = {'b', 0, 'z'}; /* "b\0z": memcmp, not strcmp */
    fx_put(&m0, "k", "b", 0);
    fx_put(&m0, "empty", "", 0);
    struct sm_op p = fx_put_op("bin", "", 0);
    p.val = (const uint8_t *)bin;
    p.vlen = sizeof bin;
    fx_stage(&m0, p);
    fx_commit(&m0);
    static const struct {
        const char *key;
        enum ddkv_cmp_op op;
        const char *operand;
        bool want;
    } cases[] = {
        {"k", DDKV_CMP_EQ, "b", true},      {"k", DDKV_CMP_EQ, "bb", false},
        {"k", DDKV_CMP_NE, "b", false},     {"k", DDKV_CMP_NE, "", true},
        {"k", DDKV_CMP_LT, "c", true},      {"k", DDKV_CMP_LT, "bb", true}, /* a prefix sorts first */
        {"k", DDKV_CMP_LT, "b", false},     {"k", DDKV_CMP_LT, "a", false},
        {"k", DDKV_CMP_GT, "a", true},      {"k", DDKV_CMP_GT, "azzz", true},
        {"k", DDKV_CMP_GT, "", true},       {"k", DDKV_CMP_GT, "b", false},
        {"k", DDKV_CMP_GT, "ba", false},
        {"empty", DDKV_CMP_EQ, "", true},   {"empty", DDKV_CMP_LT, "a", true},
        {"empty", DDKV_CMP_GT, "", false},  {"empty", DDKV_CMP_NE, "", false},
        {"absent", DDKV_CMP_EQ, "", false}, {"absent", DDKV_CMP_EQ, "x", false},
        {"absent", DDKV_CMP_NE, "", true},  {"absent", DDKV_CMP_NE, "x", true},
        {"absent", DDKV_CMP_LT, "z", false}, {"absent", DDKV_CMP_GT, "", false},
        {"bin", DDKV_CMP_GT, "b", true},    {"bin", DDKV_CMP_LT, "b\x01", true},
        {"bin", DDKV_CMP_EQ, "b", false},
    };
    for (size_t i = 0; i < N(cases); i++) {
        struct sm_cmp c[] = {fx_cmp_val(cases[i].key, cases[i].op, cases[i].operand)};
        cr_assert_eq(fx_txn(&m0, c, 1, NULL, 0, NULL, 0).succeeded, cases[i].want, "case %zu: %s %d \"%s\"", i,
                     cases[i].key, (int)cases[i].op, cases[i].operand);
    }
    struct sm_cmp exact = {.key = (const uint8_t *)"bin", .klen = 3, .field = DDKV_CMP_VALUE,
                           .cmp = DDKV_CMP_EQ, .val = (const uint8_t *)bin, .vlen = sizeof bin};
    cr_assert(fx_txn(&m0, &exact, 1, NULL, 0, NULL, 0).succeeded, "bytes with a NUL compare whole");
}

Test(txn, a_multi_key_txn_is_atomic_across_a_restart_with_one_mod_rev)
{
    fx_put(&m0, "gone", "x", 0);
    fx_put(&m0, "b", "old", 0);
    fx_commit(&m0);
    struct sm_cmp cmps[] = {fx_cmp_num("b", DDKV_CMP_VERSION, DDKV_CMP_EQ, 1)};
    struct sm_txn_op ok[] = {fx_tput("a", "1", 0), fx_tput("b", "2", 0), fx_tdel("gone"), fx_tput("c", "3", 0)};
    /* Staged but never committed: after a restart none of it is there. */
    struct sm_result r = fx_txn(&m0, cmps, 1, ok, N(ok), NULL, 0);
    cr_assert(r.succeeded);
    member_restart(&m0);
    cr_assert_eq(m0.sm.applied_index, 2);
    cr_assert_not(fx_get(&m0, "a", NULL, NULL, 0));
    cr_assert_not(fx_get(&m0, "c", NULL, NULL, 0));
    cr_assert(fx_get(&m0, "gone", NULL, NULL, 0));
    /* Committed: after a restart all of it is. */
    r = fx_txn(&m0, cmps, 1, ok, N(ok), NULL, 0);
    cr_assert(r.succeeded);
    cr_assert_eq(r.revision, 3);
    fx_commit(&m0);
    member_restart(&m0);
    cr_assert_eq(m0.sm.applied_index, 3);
    cr_assert_eq(m0.sm.revision, 3);
    cr_assert_eq(m0.sm.keys, 3);
    static const char *const keys[] = {"a", "b", "c"};
    static const char *const vals[] = {"1", "2", "3"};
    for (size_t i = 0; i < 3; i++) {
        struct kv_record rec;
        char v[8];
        cr_assert(fx_get(&m0, keys[i], &rec, v, sizeof v));
        cr_assert_str_eq(v, vals[i]);
        cr_assert_eq(rec.mod_rev, 3, "every change of the txn has its index");
        cr_assert_eq(rec.lamport, r.lamport);
    }
    struct kv_record rec;
    cr_assert(fx_get(&m0, "b", &rec, NULL, 0));
    cr_assert_eq(rec.version, 2);
    cr_assert_eq(rec.create_rev, 2);
    cr_assert_not(fx_get(&m0, "gone", NULL, NULL, 0));
}

Test(txn, operations_on_one_key_apply_in_order)
{
    /* A key put twice: the last value, the version bumped once per put. */
    struct sm_txn_op twice[] = {fx_tput("k", "first", 0), fx_tput("k", "second", 0)};
    struct sm_result r = fx_txn(&m0, NULL, 0, twice, 2, NULL, 0);
    cr_assert(r.succeeded);
    cr_assert_eq(r.revision, 1);
    /* Put then delete: gone. Delete then put: created afresh. */
    struct sm_txn_op put_del[] = {fx_tput("pd", "x", 0), fx_tdel("pd")};
    fx_txn(&m0, NULL, 0, put_del, 2, NULL, 0);
    fx_put(&m0, "dp", "before", 0);
    struct sm_txn_op del_put[] = {fx_tdel("dp"), fx_tput("dp", "after", 0)};
    fx_txn(&m0, NULL, 0, del_put, 2, NULL, 0);
    fx_commit(&m0);
    struct kv_record rec;
    char v[16];
    cr_assert(fx_get(&m0, "k", &rec, v, sizeof v));
    cr_assert_str_eq(v, "second");
    cr_assert_eq(rec.version, 2);
    cr_assert_eq(rec.create_rev, 1);
    cr_assert_eq(rec.mod_rev, 1);
    cr_assert_not(fx_get(&m0, "pd", NULL, NULL, 0));
    cr_assert(fx_get(&m0, "dp", &rec, v, sizeof v));
    cr_assert_str_eq(v, "after");
    cr_assert_eq(rec.version, 1);
    cr_assert_eq(rec.create_rev, 4);
    cr_assert_eq(m0.sm.keys, 2);
    /* Every step reported, in order. */
    cr_assert_eq(m0.ev->n, 7);
    cr_assert(m0.ev->e[0].version == 1 && m0.ev->e[1].version == 2 && m0.ev->e[1].mod_rev == 1);
    cr_assert_eq(m0.ev->e[3].kind, DDKV_OP_DELETE);
    cr_assert_str_eq(m0.ev->e[3].key, "pd");
    cr_assert_eq(m0.ev->e[5].kind, DDKV_OP_DELETE);
    cr_assert_str_eq(m0.ev->e[6].val, "after");
    cr_assert_eq(m0.ev->e[6].create_rev, 4);
}

Test(txn, a_txn_that_changes_nothing_answers_the_stores_revision)
{
    fx_put(&m0, "k", "v", 0);
    fx_commit(&m0);
    struct sm_txn_op del_absent[] = {fx_tdel("nope")};
    struct sm_result r = fx_txn(&m0, NULL, 0, del_absent, 1, NULL, 0);
    cr_assert(r.succeeded);
    cr_assert_eq(r.revision, 1);
    fx_put(&m0, "k", "w", 0); /* staged revision 3 */
    r = fx_txn(&m0, NULL, 0, del_absent, 1, NULL, 0);
    cr_assert_eq(r.revision, 3, "the revision as of this entry, staged entries included");
    fx_commit(&m0);
    cr_assert_eq(m0.sm.revision, 3);
    cr_assert_eq(m0.ev->n, 2, "deleting an absent key reports nothing");
}

Test(txn, a_retried_txn_returns_its_original_outcome)
{
    struct sm_cmp absent[] = {fx_cmp_num("k", DDKV_CMP_VERSION, DDKV_CMP_EQ, 0)};
    struct sm_txn_op create[] = {fx_tput("k", "mine", 0)};
    struct sm_txn_op mark[] = {fx_tput("lost", "1", 0)};
    struct sm_result first = fx_txn_s(&m0, absent, 1, create, 1, mark, 1, 7, 1);
    cr_assert(first.succeeded);
    cr_assert_eq(first.revision, 1);
    fx_commit(&m0);
    /* Re-evaluated now the compare would fail (and on_failure would apply);
     * the retry gets the original answer and changes nothing. */
    size_t events = m0.ev->n;
    struct sm_result again = fx_txn_s(&m0, absent, 1, create, 1, mark, 1, 7, 1);
    cr_assert(again.duplicate);
    cr_assert(again.succeeded);
    cr_assert_eq(again.revision, first.revision);
    cr_assert_eq(again.lamport, first.lamport);
    cr_assert_eq(m0.ev->n, events, "a retry reports no event");
    /* A failed txn, retried once the compare would hold. */
    struct sm_result second = fx_txn_s(&m0, absent, 1, create, 1, NULL, 0, 7, 2);
    cr_assert_not(second.succeeded);
    cr_assert_eq(second.revision, 1);
    fx_del(&m0, "k");
    fx_commit(&m0);
    member_restart(&m0); /* and the session survives a restart */
    struct sm_result retry = fx_txn_s(&m0, absent, 1, create, 1, NULL, 0, 7, 2);
    cr_assert(retry.duplicate);
    cr_assert_not(retry.succeeded, "the retry says what happened then, not what would happen now");
    cr_assert_eq(retry.revision, 1);
    cr_assert_eq(retry.lamport, second.lamport);
    fx_commit(&m0);
    cr_assert_not(fx_get(&m0, "k", NULL, NULL, 0));
    cr_assert_not(fx_get(&m0, "lost", NULL, NULL, 0));
    struct sm_session s;
    struct errbuf eb;
    cr_assert_eq(sm_session_get(&m0.sm, 7, &s, &eb), ERR_OK);
    cr_assert_eq(s.kind, SM_OP_TXN);
    cr_assert_eq(s.last_seq, 2);
    cr_assert_not(s.succeeded);
    /* Older seqs are stale. */
    cr_assert(fx_txn_s(&m0, absent, 1, create, 1, NULL, 0, 7, 1).stale);
}

Test(txn, a_put_naming_a_missing_lease_makes_the_whole_txn_a_no_op)
{
    struct sm_result g = fx_grant(&m0, 1000); /* lease 1 */
    fx_put(&m0, "k", "v", 0);
    fx_commit(&m0);
    size_t events = m0.ev->n;
    struct sm_txn_op ops[] = {fx_tput("a", "1", 0), fx_tdel("k"), fx_tput("b", "2", 999)};
    struct sm_result r = fx_txn(&m0, NULL, 0, ops, N(ops), NULL, 0);
    cr_assert_eq(r.error, SM_ERR_NO_LEASE);
    cr_assert_not(r.succeeded);
    cr_assert_eq(r.revision, 0);
    fx_commit(&m0);
    cr_assert_not(fx_get(&m0, "a", NULL, NULL, 0), "nothing of the txn may apply");
    cr_assert(fx_get(&m0, "k", NULL, NULL, 0));
    cr_assert_eq(m0.ev->n, events);
    cr_assert_eq(m0.sm.revision, 2);
    cr_assert_eq(m0.sm.applied_index, 3);
    /* A missing lease in the branch not taken does not matter. */
    struct sm_cmp no[] = {fx_cmp_num("k", DDKV_CMP_VERSION, DDKV_CMP_EQ, 0)};
    struct sm_txn_op bad[] = {fx_tput("x", "1", 999)};
    struct sm_txn_op good[] = {fx_tput("y", "1", g.lease_id)};
    r = fx_txn(&m0, no, 1, bad, 1, good, 1);
    cr_assert_eq(r.error, SM_ERR_NONE);
    cr_assert_not(r.succeeded);
    cr_assert_eq(r.revision, 4);
    fx_commit(&m0);
    struct kv_record rec;
    cr_assert(fx_get(&m0, "y", &rec, NULL, 0));
    cr_assert_eq(rec.lease, g.lease_id);
    fx_check_leases(&m0);
}
