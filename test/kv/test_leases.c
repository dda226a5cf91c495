/* Leases in the state machine: ids are grant indexes, keys attach and detach,
 * a revoke deletes exactly the keys still attached (in key order, at its own
 * index, reported as events), unknown leases change nothing, the leader's
 * view (sm_lease_foreach, sm_lease_get) survives restarts, retries get their
 * original answers, and members applying the same random log of puts,
 * deletes, transactions, grants and revokes end byte-identical however they
 * batch and restart. */
#include "sm_fixture.h"

#include "kv/snapshot.h"

static struct member m0, m1;

static void setup(void)
{
    member_init(&m0, "lease", true);
}

static void teardown(void)
{
    member_fini(&m0);
    member_fini(&m1);
}

TestSuite(leases, .init = setup, .fini = teardown, .timeout = 300);

#define N(a) (sizeof(a) / sizeof((a)[0]))

/* The committed leases, collected by sm_lease_foreach. */
struct lease_list {
    uint64_t id[64], ttl[64];
    size_t n;
};

static int collect_lease(void *ctx, uint64_t id, uint64_t ttl_ms)
{
    struct lease_list *l = ctx;
    cr_assert_lt(l->n, 64);
    l->id[l->n] = id;
    l->ttl[l->n++] = ttl_ms;
    return 0;
}

static struct lease_list leases(struct member *m)
{
    struct lease_list l = {.n = 0};
    struct errbuf eb;
    cr_assert_eq(sm_lease_foreach(&m->sm, collect_lease, &l, &eb), ERR_OK, "%s", eb.msg);
    return l;
}

Test(leases, a_grant_is_identified_by_its_index)
{
    fx_put(&m0, "k", "v", 0);
    struct sm_result g = fx_grant(&m0, 5000);
    cr_assert_eq(g.lease_id, 2, "the lease id is the grant's index");
    cr_assert_eq(g.lease_ttl_ms, 5000);
    cr_assert_eq(g.error, SM_ERR_NONE);
    cr_assert_eq(g.revision, 0, "a grant changes no key");
    struct sm_result g2 = fx_grant(&m0, 7000);
    cr_assert_eq(g2.lease_id, 3);
    /* Not visible to the leader until committed. */
    uint64_t ttl;
    struct errbuf eb;
    cr_assert_eq(sm_lease_get(&m0.sm, 2, &ttl, NULL, &eb), ERR_NOT_FOUND);
    fx_commit(&m0);
    cr_assert_eq(sm_lease_get(&m0.sm, 2, &ttl, NULL, &eb), ERR_OK);
    cr_assert_eq(ttl, 5000);
    cr_assert_eq(sm_lease_get(&m0.sm, 3, &ttl, NULL, &eb), ERR_OK);
    cr_assert_eq(ttl, 7000);
    cr_assert_eq(sm_lease_get(&m0.sm, 1, &ttl, NULL, &eb), ERR_NOT_FOUND);
    cr_assert_eq(m0.sm.leases, 2);
    cr_assert_eq(m0.sm.revision, 1);
    cr_assert_eq(m0.ev->n, 1, "grants report no event");
    fx_check_leases(&m0);
}

Test(leases, a_put_with_an_unknown_lease_changes_nothing)
{
    fx_put(&m0, "k", "v", 0);
    fx_commit(&m0);
    struct sm_result r = fx_put(&m0, "k", "new", 4);
    cr_assert_eq(r.error, SM_ERR_NO_LEASE);
    cr_assert_eq(r.revision, 0);
    struct sm_result r2 = fx_put(&m0, "fresh", "x", 4);
    cr_assert_eq(r2.error, SM_ERR_NO_LEASE);
    fx_commit(&m0);
    char v[8];
    struct kv_record rec;
    cr_assert(fx_get(&m0, "k", &rec, v, sizeof v));
    cr_assert_str_eq(v, "v");
    cr_assert_eq(rec.version, 1);
    cr_assert_not(fx_get(&m0, "fresh", NULL, NULL, 0));
    cr_assert_eq(m0.sm.revision, 1);
    cr_assert_eq(m0.sm.applied_index, 3);
    cr_assert_eq(m0.ev->n, 1);
    /* With a session, the error is the write's answer for good: a retry
     * after lease 4 came to exist still gets it, and applies nothing. */
    struct sm_op op = fx_put_op("s", "1", 5);
    op.client_id = 9;
    op.seq = 1;
    r = fx_stage(&m0, op); /* index 4 */
    cr_assert_eq(r.error, SM_ERR_NO_LEASE);
    struct sm_result g = fx_grant(&m0, 100); /* index 5 */
    cr_assert_eq(g.lease_id, 5);
    r = fx_stage(&m0, op);
    cr_assert(r.duplicate);
    cr_assert_eq(r.error, SM_ERR_NO_LEASE);
    fx_commit(&m0);
    cr_assert_not(fx_get(&m0, "s", NULL, NULL, 0));
    /* A new seq applies. */
    op.seq = 2;
    r = fx_stage(&m0, op);
    cr_assert_eq(r.error, SM_ERR_NONE);
    cr_assert_eq(r.revision, 7);
    fx_commit(&m0);
    cr_assert(fx_get(&m0, "s", &rec, NULL, 0));
    cr_assert_eq(rec.lease, 5);
    fx_check_leases(&m0);
}

Test(leases, a_revoke_deletes_exactly_the_keys_still_attached)
{
    uint64_t a = fx_grant(&m0, 1000).lease_id; /* 1 */
    uint64_t b = fx_grant(&m0, 1000).lease_id; /* 2 */
    fx_put(&m0, "k3", "x", a);
    fx_put(&m0, "k1", "x", a);
    fx_put(&m0, "k2", "x", a);
    fx_put(&m0, "kept-plain", "x", a);
    fx_put(&m0, "moved", "x", a);
    fx_put(&m0, "deleted", "x", a);
    fx_put(&m0, "other", "x", 0);
    fx_commit(&m0);
    fx_check_leases(&m0);
    cr_assert_eq(fx_count_meta(&m0, "k/"), 6);
    fx_put(&m0, "kept-plain", "y", 0); /* re-put without the lease: detached */
    fx_put(&m0, "moved", "y", b);      /* re-put with another lease */
    fx_del(&m0, "deleted");
    fx_commit(&m0);
    fx_check_leases(&m0);
    cr_assert_eq(fx_count_meta(&m0, "k/"), 4);
    uint64_t keys = m0.sm.keys;
    m0.ev->n = 0;
    struct sm_result r = fx_revoke(&m0, a); /* index 13 */
    cr_assert(r.found);
    cr_assert_eq(r.lease_id, a);
    cr_assert_eq(r.lease_ttl_ms, 0);
    cr_assert_eq(r.revision, 13);
    fx_commit(&m0);
    cr_assert_not(fx_get(&m0, "k1", NULL, NULL, 0));
    cr_assert_not(fx_get(&m0, "k2", NULL, NULL, 0));
    cr_assert_not(fx_get(&m0, "k3", NULL, NULL, 0));
    struct kv_record rec;
    cr_assert(fx_get(&m0, "kept-plain", &rec, NULL, 0));
    cr_assert_eq(rec.lease, 0);
    cr_assert(fx_get(&m0, "moved", &rec, NULL, 0));
    cr_assert_eq(rec.lease, b);
    cr_assert(fx_get(&m0, "other", NULL, NULL, 0));
    cr_assert_eq(m0.sm.keys, keys - 3);
    cr_assert_eq(m0.sm.revision, 13);
    cr_assert_eq(m0.sm.leases, 1);
    /* One delete event per key, in key order, at the revoke's index. */
    cr_assert_eq(m0.ev->n, 3);
    static const char *const order[] = {"k1", "k2", "k3"};
    for (size_t i = 0; i < 3; i++) {
        cr_assert_eq(m0.ev->e[i].kind, DDKV_OP_DELETE);
        cr_assert_str_eq(m0.ev->e[i].key, order[i]);
        cr_assert_eq(m0.ev->e[i].mod_rev, 13);
        cr_assert_eq(m0.ev->e[i].version, 0);
        cr_assert_eq(m0.ev->e[i].lease, a);
    }
    fx_check_leases(&m0);
    /* Revoking it again, or a lease never granted: not found, no change. */
    r = fx_revoke(&m0, a);
    cr_assert_not(r.found);
    cr_assert_eq(r.revision, 0);
    cr_assert_eq(r.lease_id, 0);
    r = fx_revoke(&m0, 12345);
    cr_assert_not(r.found);
    r = fx_revoke(&m0, 0);
    cr_assert_not(r.found);
    fx_commit(&m0);
    cr_assert_eq(m0.sm.revision, 13);
    cr_assert_eq(m0.sm.leases, 1);
    cr_assert_eq(m0.ev->n, 3);
    /* A lease with no keys left: revoked, no revision. */
    fx_del(&m0, "moved");
    r = fx_revoke(&m0, b);
    cr_assert(r.found);
    cr_assert_eq(r.revision, 0);
    fx_commit(&m0);
    cr_assert_eq(m0.sm.leases, 0);
    cr_assert_eq(m0.sm.revision, 17);
    fx_check_leases(&m0);
}

Test(leases, attachments_made_in_the_open_batch_are_revoked_too)
{
    /* Some attachments committed, some only staged, some staged and moved
     * again within the batch: the revoke must see the staged view. */
    uint64_t a = fx_grant(&m0, 1000).lease_id;
    uint64_t b = fx_grant(&m0, 1000).lease_id;
    fx_put(&m0, "c-committed", "1", a);
    fx_put(&m0, "e-committed-then-moved", "1", a);
    fx_commit(&m0);
    m0.ev->n = 0;
    fx_put(&m0, "a-staged", "1", a);
    fx_put(&m0, "d-staged-then-detached", "1", a);
    fx_put(&m0, "d-staged-then-detached", "2", 0);
    fx_put(&m0, "b-staged-twice", "1", a);
    fx_put(&m0, "b-staged-twice", "2", b);
    fx_put(&m0, "b-staged-twice", "3", a);
    fx_put(&m0, "e-committed-then-moved", "2", b);
    struct sm_txn_op t[] = {fx_tput("f-txn", "1", a), fx_tput("c-committed", "2", a)};
    fx_txn(&m0, NULL, 0, t, 2, NULL, 0);
    size_t before = m0.ev->n;
    struct sm_result r = fx_revoke(&m0, a);
    cr_assert(r.found);
    static const char *const gone[] = {"a-staged", "b-staged-twice", "c-committed", "f-txn"};
    cr_assert_eq(m0.ev->n - before, N(gone));
    for (size_t i = 0; i < N(gone); i++) {
        cr_assert_str_eq(m0.ev->e[before + i].key, gone[i], "event %zu", i);
        cr_assert_eq(m0.ev->e[before + i].kind, DDKV_OP_DELETE);
    }
    /* And a put with the revoked lease in the same batch is refused. */
    cr_assert_eq(fx_put(&m0, "late", "1", a).error, SM_ERR_NO_LEASE);
    fx_commit(&m0);
    for (size_t i = 0; i < N(gone); i++)
        cr_assert_not(fx_get(&m0, gone[i], NULL, NULL, 0), "%s survived", gone[i]);
    cr_assert(fx_get(&m0, "d-staged-then-detached", NULL, NULL, 0));
    struct kv_record rec;
    cr_assert(fx_get(&m0, "e-committed-then-moved", &rec, NULL, 0));
    cr_assert_eq(rec.lease, b);
    cr_assert_eq(m0.sm.keys, 2);
    fx_check_leases(&m0);
    /* The same, with the whole history in one batch from the start. */
    member_fini(&m0);
    member_init(&m0, "lease", true);
    a = fx_grant(&m0, 1).lease_id;
    fx_put(&m0, "x", "1", a);
    fx_put(&m0, "y", "1", a);
    fx_del(&m0, "x");
    fx_put(&m0, "x", "again", a);
    cr_assert(fx_revoke(&m0, a).found);
    fx_commit(&m0);
    cr_assert_not(fx_get(&m0, "x", NULL, NULL, 0));
    cr_assert_not(fx_get(&m0, "y", NULL, NULL, 0));
    cr_assert_eq(m0.sm.keys, 0);
    cr_assert_eq(m0.sm.leases, 0);
    fx_check_leases(&m0);
}

Test(leases, the_leader_sees_exactly_the_live_leases_across_restarts)
{
    uint64_t ids[6];
    for (size_t i = 0; i < 6; i++)
        ids[i] = fx_grant(&m0, 1000 * (i + 1)).lease_id;
    fx_commit(&m0);
    fx_revoke(&m0, ids[1]);
    fx_revoke(&m0, ids[4]);
    fx_commit(&m0);
    fx_revoke(&m0, ids[0]); /* staged only: lost in the restart */
    member_restart(&m0);
    struct lease_list l = leases(&m0);
    static const size_t live[] = {0, 2, 3, 5};
    cr_assert_eq(l.n, N(live));
    for (size_t i = 0; i < N(live); i++) {
        cr_assert_eq(l.id[i], ids[live[i]]);
        cr_assert_eq(l.ttl[i], 1000 * (live[i] + 1));
    }
    cr_assert_eq(m0.sm.leases, 4);
    fx_revoke(&m0, ids[0]);
    uint64_t g = fx_grant(&m0, 42).lease_id;
    fx_commit(&m0);
    member_restart(&m0);
    l = leases(&m0);
    cr_assert_eq(l.n, 4);
    cr_assert_eq(l.id[0], ids[2]);
    cr_assert_eq(l.id[3], g);
    cr_assert_eq(l.ttl[3], 42);
    cr_assert_eq(m0.sm.leases, 4);
    fx_check_leases(&m0);
}

static int stop_at_two(void *ctx, uint64_t id, uint64_t ttl_ms)
{
    (void)id;
    (void)ttl_ms;
    return ++*(int *)ctx == 2 ? ERR_EXISTS : 0;
}

Test(leases, foreach_stops_when_the_callback_says_so)
{
    for (int i = 0; i < 5; i++)
        fx_grant(&m0, 1);
    fx_commit(&m0);
    int calls = 0;
    struct errbuf eb;
    cr_assert_eq(sm_lease_foreach(&m0.sm, stop_at_two, &calls, &eb), ERR_EXISTS);
    cr_assert_eq(calls, 2);
}

Test(leases, retried_grants_and_revokes_return_their_original_answers)
{
    struct sm_op grant = {.kind = SM_OP_LEASE_GRANT, .lease_ttl_ms = 3000, .client_id = 4, .seq = 1};
    struct sm_result g = fx_stage(&m0, grant);
    cr_assert_eq(g.lease_id, 1);
    fx_commit(&m0);
    member_restart(&m0);
    grant.lease_ttl_ms = 9999; /* a retry is answered from the session, whatever it carries */
    struct sm_result again = fx_stage(&m0, grant);
    cr_assert(again.duplicate);
    cr_assert_eq(again.lease_id, 1);
    cr_assert_eq(again.lease_ttl_ms, 3000);
    cr_assert_eq(again.lamport, g.lamport);
    fx_commit(&m0);
    cr_assert_eq(m0.sm.leases, 1, "a retried grant makes no second lease");
    fx_put(&m0, "k", "v", 1);
    struct sm_op revoke = {.kind = SM_OP_LEASE_REVOKE, .lease = 1, .client_id = 4, .seq = 2};
    struct sm_result rv = fx_stage(&m0, revoke);
    cr_assert(rv.found);
    cr_assert_eq(rv.revision, 4);
    fx_commit(&m0);
    struct sm_result rv2 = fx_stage(&m0, revoke);
    cr_assert(rv2.duplicate);
    cr_assert(rv2.found, "the retry says the lease was found, though it is gone now");
    cr_assert_eq(rv2.lease_id, 1);
    cr_assert_eq(rv2.revision, 4);
    fx_commit(&m0);
    struct sm_session s;
    struct errbuf eb;
    cr_assert_eq(sm_session_get(&m0.sm, 4, &s, &eb), ERR_OK);
    cr_assert_eq(s.kind, SM_OP_LEASE_REVOKE);
    cr_assert(s.found);
    cr_assert_eq(s.lease_id, 1);
}

Test(leases, events_report_every_change_in_order_and_nothing_else)
{
    uint64_t l = fx_grant(&m0, 10).lease_id;           /* 1: no event */
    fx_put(&m0, "a", "1", 0);                          /* 2 */
    fx_put(&m0, "b", "1", l);                          /* 3 */
    fx_del(&m0, "absent");                             /* 4: nothing */
    fx_del(&m0, "a");                                  /* 5 */
    struct sm_cmp fail[] = {fx_cmp_val("b", DDKV_CMP_EQ, "nope")};
    fx_txn(&m0, fail, 1, (struct sm_txn_op[]){fx_tput("s", "1", 0)}, 1, NULL, 0); /* 6: nothing */
    struct sm_txn_op ko[] = {fx_tput("c", "2", l), fx_tdel("absent"), fx_tdel("b")};
    fx_txn(&m0, fail, 1, NULL, 0, ko, N(ko));          /* 7: put c, delete b */
    fx_put(&m0, "c", "3", 0);                          /* 8 (detaches c) */
    fx_put(&m0, "d", "4", l);                          /* 9 */
    fx_put(&m0, "bad", "x", 77);                       /* 10: no lease, nothing */
    fx_revoke(&m0, l);                                 /* 11: delete d */
    fx_commit(&m0);
    static const struct {
        uint8_t kind;
        const char *key, *val;
        uint64_t create_rev, mod_rev, version, lease;
    } want[] = {
        {DDKV_OP_PUT, "a", "1", 2, 2, 1, 0},    {DDKV_OP_PUT, "b", "1", 3, 3, 1, 1},
        {DDKV_OP_DELETE, "a", "", 0, 5, 0, 0},  {DDKV_OP_PUT, "c", "2", 7, 7, 1, 1},
        {DDKV_OP_DELETE, "b", "", 0, 7, 0, 1},  {DDKV_OP_PUT, "c", "3", 7, 8, 2, 0},
        {DDKV_OP_PUT, "d", "4", 9, 9, 1, 1},    {DDKV_OP_DELETE, "d", "", 0, 11, 0, 1},
    };
    cr_assert_eq(m0.ev->n, N(want));
    for (size_t i = 0; i < N(want); i++) {
        const struct fx_event *e = &m0.ev->e[i];
        cr_assert_eq(e->kind, want[i].kind, "event %zu", i);
        cr_assert_str_eq(e->key, want[i].key, "event %zu", i);
        cr_assert_str_eq(e->val, want[i].val, "event %zu", i);
        cr_assert_eq(e->create_rev, want[i].create_rev, "event %zu", i);
        cr_assert_eq(e->mod_rev, want[i].mod_rev, "event %zu", i);
        cr_assert_eq(e->version, want[i].version, "event %zu", i);
        cr_assert_eq(e->lease, want[i].lease, "event %zu", i);
        cr_assert_gt(e->lamport, 0);
    }
    /* Lamport times are the entries'. */
    cr_assert_lt(m0.ev->e[0].lamport, m0.ev->e[1].lamport);
    cr_assert_eq(m0.ev->e[3].lamport, m0.ev->e[4].lamport, "one entry, one time");
    fx_check_leases(&m0);
}

/* --- determinism --- */

static uint64_t rng_next(uint64_t *s)
{
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return *s;
}

#define MAX_OPS 6
struct entry {
    enum sm_op_kind kind;
    char key[8], val[16];
    uint64_t lease, ttl, client, seq;
    struct sm_cmp cmps[2];
    char ckey[2][8], cval[2][16];
    size_t ncmp;
    struct sm_txn_op ops[2][MAX_OPS];
    char okey[2][MAX_OPS][8], oval[2][MAX_OPS][16];
    size_t nops[2];
    struct sm_txn txn;
};

/* A lease id for an operation: mostly one granted recently (perhaps already
 * revoked), sometimes none, now and then one that never existed. */
static uint64_t pick_lease(uint64_t r, const uint64_t *grants, size_t ngrants)
{
    unsigned how = (unsigned)(r % 10);
    if (how < 4 || ngrants == 0)
        return 0;
    if (how == 9)
        return 1000000 + r % 7;
    size_t back = (size_t)(r >> 8) % (ngrants < 6 ? ngrants : 6);
    return grants[ngrants - 1 - back];
}

static void make_log(struct entry *e, size_t n, uint64_t seed)
{
    uint64_t s = seed, seqs[64] = {0};
    uint64_t grants[4096];
    size_t ngrants = 0;
    for (size_t i = 0; i < n; i++) {
        struct entry *x = &e[i];
        memset(x, 0, sizeof *x);
        uint64_t r = rng_next(&s);
        unsigned roll = (unsigned)(r % 100);
        x->kind = roll < 30 ? SM_OP_PUT : roll < 40 ? SM_OP_DELETE : roll < 74 ? SM_OP_TXN
                  : roll < 84 ? SM_OP_LEASE_GRANT : roll < 92 ? SM_OP_LEASE_REVOKE : SM_OP_NOOP;
        r = rng_next(&s);
        snprintf(x->key, sizeof x->key, "k%u", (unsigned)(r % 40));
        snprintf(x->val, sizeof x->val, "v%zu", i);
        x->lease = pick_lease(rng_next(&s), grants, ngrants);
        if (x->kind == SM_OP_LEASE_GRANT) {
            x->ttl = 1000 + i;
            grants[ngrants++] = i + 1; /* the id: the entry's index */
        }
        if (x->kind == SM_OP_LEASE_REVOKE) {
            r = rng_next(&s);
            /* mostly one of the last few grants (maybe revoked already) */
            size_t span = ngrants < 8 ? ngrants : 8;
            x->lease = ngrants && r % 8 ? grants[ngrants - 1 - (size_t)(r >> 8) % span] : r % 3;
        }
        if (x->kind == SM_OP_TXN) {
            r = rng_next(&s);
            x->ncmp = (size_t)(r % 3);
            for (size_t c = 0; c < x->ncmp; c++) {
                r = rng_next(&s);
                snprintf(x->ckey[c], sizeof x->ckey[c], "k%u", (unsigned)(r % 40));
                snprintf(x->cval[c], sizeof x->cval[c], "v%u", (unsigned)((r >> 8) % (i + 1)));
                uint8_t field = (uint8_t)((r >> 20) % 4), cmp = (uint8_t)((r >> 24) % 4);
                x->cmps[c] = (struct sm_cmp){.key = (const uint8_t *)x->ckey[c], .klen = strlen(x->ckey[c]),
                                             .field = field, .cmp = cmp, .num = (r >> 28) % 4 ? (r >> 32) % 3 : i};
                if (field == DDKV_CMP_VALUE) {
                    x->cmps[c].val = (const uint8_t *)x->cval[c];
                    x->cmps[c].vlen = strlen(x->cval[c]);
                }
            }
            for (int l = 0; l < 2; l++) {
                x->nops[l] = (size_t)(rng_next(&s) % (MAX_OPS + 1));
                for (size_t o = 0; o < x->nops[l]; o++) {
                    r = rng_next(&s);
                    snprintf(x->okey[l][o], sizeof x->okey[l][o], "k%u", (unsigned)(r % 40));
                    snprintf(x->oval[l][o], sizeof x->oval[l][o], "t%zu.%d.%zu", i, l, o);
                    if (r >> 32 & 3)
                        x->ops[l][o] = fx_tput(x->okey[l][o], x->oval[l][o],
                                               pick_lease(rng_next(&s), grants, ngrants));
                    else
                        x->ops[l][o] = fx_tdel(x->okey[l][o]);
                }
            }
        }
        r = rng_next(&s);
        if (x->kind != SM_OP_NOOP && r % 3 == 0) {
            x->client = 1 + r % 63;
            unsigned how = (unsigned)(r >> 32 & 7);
            x->seq = how == 0 && seqs[x->client] ? seqs[x->client] : ++seqs[x->client];
        }
    }
}

static void apply_entry(struct member *m, struct entry *x, struct sm_result *r, size_t index)
{
    struct sm_op op = {.kind = x->kind, .client_id = x->client, .seq = x->seq, .time_ms = 1000 + index};
    switch (x->kind) {
    case SM_OP_PUT:
        op = fx_put_op(x->key, x->val, x->lease);
        break;
    case SM_OP_DELETE:
        op = fx_del_op(x->key);
        break;
    case SM_OP_TXN:
        x->txn = (struct sm_txn){.cmps = x->cmps, .ncmp = x->ncmp, .ops = {x->ops[0], x->ops[1]},
                                 .nops = {x->nops[0], x->nops[1]}};
        op.txn = &x->txn;
        break;
    case SM_OP_LEASE_GRANT:
        op.lease_ttl_ms = x->ttl;
        break;
    case SM_OP_LEASE_REVOKE:
        op.lease = x->lease;
        break;
    default:
        break;
    }
    op.client_id = x->client;
    op.seq = x->seq;
    op.time_ms = 1000 + index;
    *r = fx_stage(m, op);
}

Test(leases, members_batching_differently_end_with_identical_bytes_and_events)
{
    enum { N_ENTRIES = 6000 };
    static struct entry log[N_ENTRIES];
    make_log(log, N_ENTRIES, 0x2545f4914f6cdd1dull);
    member_init(&m1, "lease1", true);
    uint64_t s = 777;
    size_t next_commit = 1, compares = 0, revokes_with_keys = 0, no_lease = 0, dups = 0, succ = 0, fail = 0;
    for (size_t i = 0; i < N_ENTRIES; i++) {
        struct sm_result a, b;
        /* m0 commits every entry; m1 in batches of 1 to 300, restarting now
         * and then, so revokes meet attachments made in their own batch. */
        size_t e0 = m0.ev->n, e1 = m1.ev->n;
        apply_entry(&m0, &log[i], &a, i);
        fx_commit(&m0);
        apply_entry(&m1, &log[i], &b, i);
        cr_assert(a.found == b.found && a.succeeded == b.succeeded && a.error == b.error &&
                      a.revision == b.revision && a.lamport == b.lamport && a.lease_id == b.lease_id &&
                      a.lease_ttl_ms == b.lease_ttl_ms && a.duplicate == b.duplicate && a.stale == b.stale,
                  "entry %zu answered differently", i);
        cr_assert_eq(m0.ev->n - e0, m1.ev->n - e1, "entry %zu reported different events", i);
        cr_assert(memcmp(&m0.ev->e[e0], &m1.ev->e[e1], (m0.ev->n - e0) * sizeof m0.ev->e[0]) == 0,
                  "entry %zu reported different events", i);
        if (log[i].kind == SM_OP_LEASE_REVOKE && a.revision != 0 && !a.duplicate)
            revokes_with_keys++;
        no_lease += a.error == SM_ERR_NO_LEASE;
        dups += a.duplicate;
        if (log[i].kind == SM_OP_TXN && !a.duplicate && !a.error) {
            succ += a.succeeded;
            fail += !a.succeeded;
        }
        /* The event buffers only need the current entry. */
        if (m0.ev->n > FX_MAX_EVENTS / 2) {
            m0.ev->n = 0;
            m1.ev->n = 0;
        }
        if (i + 1 == next_commit || i + 1 == N_ENTRIES) {
            fx_commit(&m1);
            fx_assert_same_bytes(&m0, &m1);
            fx_check_leases(&m1);
            cr_assert_eq(m0.sm.leases, m1.sm.leases);
            cr_assert_eq(m0.sm.keys, m1.sm.keys);
            compares++;
            next_commit = i + 2 + (size_t)(rng_next(&s) % 300);
            if (rng_next(&s) % 3 == 0)
                member_restart(&m1);
        }
    }
    cr_log_info("%zu compares, %zu revokes with keys, %zu missing leases, %zu retries, %zu/%zu txns held",
                compares, revokes_with_keys, no_lease, dups, succ, succ + fail);
    cr_assert_gt(compares, 20);
    cr_assert_gt(revokes_with_keys, 50, "the log should revoke leases holding keys");
    cr_assert_gt(no_lease, 50, "the log should name missing leases");
    cr_assert_gt(dups, 50, "the log should hold retries");
    cr_assert_gt(succ, 200);
    cr_assert_gt(fail, 200);
    fx_assert_same_bytes(&m0, &m1);
    fx_check_leases(&m0);
    cr_assert_gt(m0.sm.leases, 0);
    cr_assert_eq(m0.sm.applied_index, N_ENTRIES);
}

/* --- owners (src/core/node/access.c decides who may use a lease by them) --- */

static struct sm_result grant_as(struct member *m, uint64_t ttl_ms, const char *owner)
{
    return fx_stage(m, (struct sm_op){.kind = SM_OP_LEASE_GRANT, .lease_ttl_ms = ttl_ms, .owner = owner,
                                      .owner_len = owner ? strlen(owner) : 0});
}

static void expect_owner(struct member *m, uint64_t id, uint64_t ttl_want, const char *owner_want)
{
    uint64_t ttl = 0;
    auth_name owner;
    struct errbuf eb;
    cr_assert_eq(sm_lease_get(&m->sm, id, &ttl, owner, &eb), ERR_OK, "lease %llu: %s", (unsigned long long)id,
                 eb.msg);
    cr_assert_eq(ttl, ttl_want);
    cr_assert_str_eq(owner, owner_want, "lease %llu", (unsigned long long)id);
}

Test(leases, a_lease_keeps_its_owner_through_commit_restart_and_a_snapshot_install)
{
    struct sm_result c = grant_as(&m0, 4000, "carol");
    struct sm_result r = grant_as(&m0, 5000, "root");
    struct sm_result none = grant_as(&m0, 6000, NULL);
    fx_put(&m0, "k", "v", c.lease_id);
    fx_commit(&m0);
    expect_owner(&m0, c.lease_id, 4000, "carol");
    expect_owner(&m0, r.lease_id, 5000, "root");
    expect_owner(&m0, none.lease_id, 6000, "");
    member_restart(&m0);
    expect_owner(&m0, c.lease_id, 4000, "carol");
    expect_owner(&m0, none.lease_id, 6000, "");
    fx_check_leases(&m0);

    /* An image carries the owners to a member that installs it. */
    char sdir[256], path[512];
    struct errbuf eb;
    cr_assert_eq(harness_tmpdir(sdir, sizeof sdir, "lease-snap"), 0);
    cr_assert_eq(snap_path(path, sizeof path, sdir, m0.sm.applied_index, 1, "snap", &eb), ERR_OK);
    cr_assert_eq(snap_write(m0.st, path, m0.sm.applied_index, 1, &eb), ERR_OK, "%s", eb.msg);
    member_init(&m1, "lease-b", false);
    cr_assert_eq(snap_install(m1.st, path, NULL, &eb), ERR_OK, "%s", eb.msg);
    member_restart(&m1);
    expect_owner(&m1, c.lease_id, 4000, "carol");
    expect_owner(&m1, r.lease_id, 5000, "root");
    expect_owner(&m1, none.lease_id, 6000, "");
    fx_assert_same_bytes(&m0, &m1);
    harness_rmrf(sdir);
}

/* A data dir (or an image) of format 2 holds lease records of the ttl
 * alone: they load as leases without an owner, and the dir is stamped 3. */
Test(leases, a_format_2_lease_record_loads_as_a_lease_without_owner)
{
    struct errbuf eb;
    struct store_batch *b = store_batch_new(m0.st);
    uint8_t v[8], k[10] = {'l', '/'};
    put_be64(v, 2);
    store_batch_put(b, STORE_CF_META, "format_version", 14, v, 8);
    put_be64(k + 2, 7);
    put_be64(v, 9000);
    store_batch_put(b, STORE_CF_META, k, sizeof k, v, 8);
    put_be64(v, 1);
    store_batch_put(b, STORE_CF_META, "leases", 6, v, 8);
    put_be64(v, 7);
    store_batch_put(b, STORE_CF_META, "applied_index", 13, v, 8);
    cr_assert_eq(store_write(m0.st, b, true, &eb), ERR_OK, "%s", eb.msg);
    store_batch_free(b);

    /* An image of that state, as a format 2 member would have sent it. */
    char sdir[256], path[512];
    cr_assert_eq(harness_tmpdir(sdir, sizeof sdir, "lease-old"), 0);
    cr_assert_eq(snap_path(path, sizeof path, sdir, 7, 1, "snap", &eb), ERR_OK);
    cr_assert_eq(snap_write(m0.st, path, 7, 1, &eb), ERR_OK, "%s", eb.msg);

    member_restart(&m0);
    expect_owner(&m0, 7, 9000, "");
    struct lease_list l = leases(&m0);
    cr_assert_eq(l.n, 1);
    cr_assert_eq(l.id[0], 7);
    struct store_val sv;
    cr_assert_eq(store_get(m0.st, STORE_CF_META, "format_version", 14, NULL, &sv, &eb), ERR_OK);
    cr_assert_eq(get_be64(sv.p), SM_FORMAT_BASE, "stamped with the base format when opened");
    store_val_release(&sv);
    /* Keys still attach to it, and it revokes. */
    cr_assert_eq(fx_put(&m0, "a", "1", 7).error, SM_ERR_NONE);
    cr_assert_eq(fx_revoke(&m0, 7).found, true);
    fx_commit(&m0);

    member_init(&m1, "lease-old-b", false);
    cr_assert_eq(snap_install(m1.st, path, NULL, &eb), ERR_OK, "%s", eb.msg);
    member_restart(&m1);
    expect_owner(&m1, 7, 9000, "");
    harness_rmrf(sdir);
}
