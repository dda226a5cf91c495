/* The cluster version in the state machine and the one new entry kind it
 * gates (proto/version.h): CLUSTER_VERSION moves the version up and never
 * down, stamps data-dir format 4 in its own batch when it reaches 0.2, and
 * survives a restart and a snapshot; DELETE_PREFIX deletes keys staged in the
 * same batch too, stops at its limit, and answers a retry from the session;
 * both encode and decode one way only. */
#include <criterion/criterion.h>
#include <string.h>

#include "harness.h"
#include "kv/cmd.h"
#include "kv/snapshot.h"
#include "proto/version.h"
#include "sm_fixture.h"

static struct member m0, m1;

static void setup(void)
{
    member_init(&m0, "ver", true);
}

static void teardown(void)
{
    member_fini(&m0);
    member_fini(&m1);
}

TestSuite(version, .init = setup, .fini = teardown);

static uint64_t meta_u64(struct member *m, const char *key)
{
    struct store_val v;
    struct errbuf eb;
    int rc = store_get(m->st, STORE_CF_META, key, strlen(key), NULL, &v, &eb);
    if (rc == ERR_NOT_FOUND)
        return 0;
    cr_assert_eq(rc, ERR_OK, "%s", eb.msg);
    cr_assert_eq(v.n, 8);
    uint64_t x = get_be64(v.p);
    store_val_release(&v);
    return x;
}

static struct sm_result set_version(struct member *m, uint64_t v)
{
    struct sm_op op = {.kind = SM_OP_CLUSTER_VERSION, .version = v};
    return fx_stage(m, op);
}

static struct sm_result del_prefix(struct member *m, const char *p, uint32_t limit, uint64_t client, uint64_t seq)
{
    struct sm_op op = {.kind = SM_OP_DELETE_PREFIX, .key = (const uint8_t *)p, .klen = strlen(p), .limit = limit,
                       .client_id = client, .seq = seq};
    return fx_stage(m, op);
}

Test(version, a_new_data_dir_is_format_3_at_cluster_version_0_1)
{
    cr_assert_eq(m0.sm.cluster_version, DDKV_VERSION_0_1_0);
    cr_assert_eq(meta_u64(&m0, "format_version"), 3, "a 0.1.0 build must still read it");
    cr_assert_eq(meta_u64(&m0, "cluster_version"), 0);
}

Test(version, the_cluster_version_moves_up_with_format_4_and_never_down)
{
    fx_put(&m0, "a", "1", 0);
    struct sm_result r = set_version(&m0, DDKV_VERSION_0_2_0);
    cr_assert(r.found, "raised");
    cr_assert_eq(m0.sm.cluster_version, DDKV_VERSION_0_1_0, "not before the commit");
    cr_assert_eq(meta_u64(&m0, "format_version"), 3, "nor on disk");
    fx_commit(&m0);
    cr_assert_eq(m0.sm.cluster_version, DDKV_VERSION_0_2_0);
    cr_assert_eq(meta_u64(&m0, "format_version"), 4, "stamped with the entry that brought 0.2");
    cr_assert_eq(meta_u64(&m0, "cluster_version"), DDKV_VERSION_0_2_0);
    /* An older (or the same) version changes nothing: no way down. */
    struct sm_op back = {.kind = SM_OP_CLUSTER_VERSION, .version = DDKV_VERSION_0_2_0};
    cr_assert_not(fx_stage(&m0, back).found);
    fx_commit(&m0);
    cr_assert_eq(m0.sm.cluster_version, DDKV_VERSION_0_2_0);
    member_restart(&m0);
    cr_assert_eq(m0.sm.cluster_version, DDKV_VERSION_0_2_0, "it survives a restart");
    /* A discarded batch leaves it where it was. */
    set_version(&m0, DDKV_VERSION_PACK(0, 3, 0));
    sm_discard(&m0.sm);
    cr_assert_eq(m0.sm.cluster_version, DDKV_VERSION_0_2_0);
    cr_assert_eq(m0.sm.st_cluster_version, DDKV_VERSION_0_2_0);
}

Test(version, a_snapshot_carries_the_cluster_version_and_the_format)
{
    set_version(&m0, DDKV_VERSION_0_2_0);
    fx_put(&m0, "k", "v", 0);
    fx_commit(&m0);
    char sdir[256], path[512];
    struct errbuf eb;
    cr_assert_eq(harness_tmpdir(sdir, sizeof sdir, "ver-snap"), 0);
    cr_assert_eq(snap_path(path, sizeof path, sdir, m0.sm.applied_index, 1, "snap", &eb), ERR_OK);
    cr_assert_eq(snap_write(m0.st, path, m0.sm.applied_index, 1, &eb), ERR_OK, "%s", eb.msg);
    member_init(&m1, "ver-b", false);
    sm_close(&m1.sm);
    cr_assert_eq(snap_install(m1.st, path, NULL, &eb), ERR_OK, "%s", eb.msg);
    cr_assert_eq(sm_open(&m1.sm, m1.st, &eb), ERR_OK, "%s", eb.msg);
    cr_assert_eq(m1.sm.cluster_version, DDKV_VERSION_0_2_0);
    cr_assert_eq(meta_u64(&m1, "format_version"), 4);
    harness_rmrf(sdir);
}

Test(version, a_data_dir_of_format_4_opens_and_5_is_refused)
{
    set_version(&m0, DDKV_VERSION_0_2_0);
    fx_commit(&m0);
    member_restart(&m0);
    member_close(&m0);
    struct errbuf eb;
    cr_assert_eq(store_open(&m0.st, m0.dir, NULL, &eb), ERR_OK);
    struct store_batch *b = store_batch_new(m0.st);
    uint8_t be[8];
    put_be64(be, 5);
    store_batch_put(b, STORE_CF_META, "format_version", 14, be, 8);
    cr_assert_eq(store_write(m0.st, b, true, &eb), ERR_OK);
    store_batch_free(b);
    cr_assert_neq(sm_open(&m0.sm, m0.st, &eb), ERR_OK);
    cr_assert(strstr(eb.msg, "format version 5") && strstr(eb.msg, "upgrade ddkv"), "%s", eb.msg);
    store_close(m0.st);
    m0.st = NULL;
}

Test(version, delete_prefix_takes_committed_and_staged_keys_at_one_revision)
{
    fx_put(&m0, "p/1", "a", 0);
    fx_put(&m0, "p/2", "b", 0);
    fx_put(&m0, "q", "c", 0);
    fx_commit(&m0);
    fx_del(&m0, "p/1");           /* staged: gone already */
    fx_put(&m0, "p/3", "c", 0);   /* staged: there already */
    size_t ev0 = m0.ev->n;
    struct sm_result r = del_prefix(&m0, "p/", SM_DELETE_PREFIX_MAX, 0, 0);
    uint64_t index = m0.sm.st_index;
    cr_assert_eq(r.count, 2, "p/2 (committed) and p/3 (staged in this batch), not p/1 (deleted in it)");
    cr_assert(r.found);
    cr_assert_not(r.succeeded, "nothing left");
    cr_assert_eq(r.revision, index);
    cr_assert_eq(m0.ev->n - ev0, 2);
    for (size_t i = ev0; i < m0.ev->n; i++) {
        cr_assert_eq(m0.ev->e[i].kind, DDKV_OP_DELETE);
        cr_assert_eq(m0.ev->e[i].mod_rev, index, "one revision for all");
    }
    cr_assert_str_eq(m0.ev->e[ev0].key, "p/2");
    cr_assert_str_eq(m0.ev->e[ev0 + 1].key, "p/3");
    fx_commit(&m0);
    struct kv_record rec;
    char val[16];
    cr_assert_not(fx_get(&m0, "p/2", &rec, val, sizeof val));
    cr_assert_not(fx_get(&m0, "p/3", &rec, val, sizeof val));
    cr_assert(fx_get(&m0, "q", &rec, val, sizeof val), "outside the prefix");
    cr_assert_eq(m0.sm.keys, 1);
}

Test(version, delete_prefix_stops_at_its_limit_and_says_more)
{
    char k[16];
    for (int i = 0; i < 5; i++) {
        snprintf(k, sizeof k, "r/%d", i);
        fx_put(&m0, k, "x", 0);
    }
    fx_commit(&m0);
    struct sm_result r = del_prefix(&m0, "r/", 3, 0, 0);
    cr_assert_eq(r.count, 3);
    cr_assert(r.succeeded, "two are left");
    r = del_prefix(&m0, "r/", 3, 0, 0);
    cr_assert_eq(r.count, 2);
    cr_assert_not(r.succeeded);
    r = del_prefix(&m0, "r/", 3, 0, 0);
    cr_assert_eq(r.count, 0);
    cr_assert_not(r.found);
    cr_assert_eq(r.revision, 0, "nothing changed");
    fx_commit(&m0);
    cr_assert_eq(m0.sm.keys, 0);
}

Test(version, a_retried_delete_prefix_is_answered_from_its_session)
{
    fx_put(&m0, "s/1", "x", 0);
    fx_put(&m0, "s/2", "x", 0);
    fx_commit(&m0);
    struct sm_result r = del_prefix(&m0, "s/", 10, 77, 1);
    cr_assert_eq(r.count, 2);
    fx_commit(&m0);
    fx_put(&m0, "s/3", "x", 0); /* a key that came after: a retry must not take it */
    fx_commit(&m0);
    struct sm_result again = del_prefix(&m0, "s/", 10, 77, 1);
    cr_assert(again.duplicate);
    cr_assert_eq(again.count, 2, "the original answer");
    cr_assert_eq(again.revision, r.revision);
    cr_assert_eq(again.lease_id, 0);
    fx_commit(&m0);
    member_restart(&m0);
    again = del_prefix(&m0, "s/", 10, 77, 1);
    cr_assert(again.duplicate && again.count == 2, "and after a restart");
    struct kv_record rec;
    char val[16];
    cr_assert(fx_get(&m0, "s/3", &rec, val, sizeof val));
}

Test(version, the_new_commands_round_trip_and_malformed_ones_are_refused)
{
    struct buf b = BUF_INIT;
    struct cmd *c = calloc(1, sizeof *c);
    cr_assert_not_null(c);
    struct sm_op v = {.kind = SM_OP_CLUSTER_VERSION, .version = DDKV_VERSION_0_2_0};
    cr_assert_eq(cmd_encode_op(&v, 9, &b), ERR_OK);
    cr_assert_eq(cmd_decode(b.data, b.len, c), ERR_OK);
    cr_assert_eq(c->op.kind, SM_OP_CLUSTER_VERSION);
    cr_assert_eq(c->op.version, DDKV_VERSION_0_2_0);
    /* 0.1.0, a patch level, a session: not a cluster version entry. */
    uint64_t bad[] = {DDKV_VERSION_0_1_0, DDKV_VERSION_PACK(0, 2, 1), 0};
    for (size_t i = 0; i < 3; i++) {
        struct sm_op o = v;
        o.version = bad[i];
        buf_reset(&b);
        cr_assert_eq(cmd_encode_op(&o, 9, &b), ERR_BAD_INPUT);
    }
    buf_reset(&b);
    cr_assert_eq(cmd_encode_op(&v, 9, &b), ERR_OK);
    put_be64(b.data + 26, 5); /* a client id */
    cr_assert_eq(cmd_decode(b.data, b.len, c), ERR_CORRUPT);

    struct sm_op d = {.kind = SM_OP_DELETE_PREFIX, .key = (const uint8_t *)"pre", .klen = 3, .limit = 10,
                      .client_id = 4, .seq = 2};
    buf_reset(&b);
    cr_assert_eq(cmd_encode_op(&d, 9, &b), ERR_OK);
    cr_assert_eq(cmd_decode(b.data, b.len, c), ERR_OK);
    cr_assert_eq(c->op.kind, SM_OP_DELETE_PREFIX);
    cr_assert_eq(c->op.klen, 3);
    cr_assert(memcmp(c->op.key, "pre", 3) == 0);
    cr_assert_eq(c->op.limit, 10);
    cr_assert_eq(c->op.seq, 2);
    buf_append(&b, "x", 1); /* a byte after the prefix */
    cr_assert_eq(cmd_decode(b.data, b.len, c), ERR_CORRUPT);
    d.limit = SM_DELETE_PREFIX_MAX + 1;
    buf_reset(&b);
    cr_assert_eq(cmd_encode_op(&d, 9, &b), ERR_BAD_INPUT);
    d.limit = 0;
    cr_assert_eq(cmd_encode_op(&d, 9, &b), ERR_BAD_INPUT);
    /* An empty prefix is every key. */
    d.limit = 1;
    d.klen = 0;
    cr_assert_eq(cmd_encode_op(&d, 9, &b), ERR_OK);
    cr_assert_eq(cmd_decode(b.data, b.len, c), ERR_OK);
    cr_assert_eq(c->op.klen, 0);
    buf_free(&b);
    free(c);
}
