/* The state machine on a real RocksDB: revisions, atomic commit, restart,
 * prefix scans and pagination, format-version refusal. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

#include "harness.h"
#include "kv/sm.h"
#include "kv/store.h"
#include "util/buf.h"

static char dir[256];
static struct store *st;
static struct sm sm;

static void open_db(void)
{
    struct errbuf eb;
    cr_assert_eq(store_open(&st, dir, NULL, &eb), ERR_OK, "%s", eb.msg);
    cr_assert_eq(sm_open(&sm, st, &eb), ERR_OK, "%s", eb.msg);
}

static void close_db(void)
{
    sm_close(&sm);
    store_close(st);
    st = NULL;
}

static void setup(void)
{
    cr_assert_eq(harness_tmpdir(dir, sizeof dir, "sm"), 0);
    open_db();
}

static void teardown(void)
{
    if (st)
        close_db();
    harness_rmrf(dir);
}

static struct sm_result put(const char *k, const char *v)
{
    struct sm_op op = {.kind = SM_OP_PUT, .key = (const uint8_t *)k, .klen = strlen(k),
                       .val = (const uint8_t *)v, .vlen = strlen(v)};
    struct sm_result r;
    struct errbuf eb;
    cr_assert_eq(sm_stage(&sm, sm.st_index + 1, sm.st_lamport + 3, &op, &r, &eb), ERR_OK, "%s", eb.msg);
    return r;
}

static struct sm_result del(const char *k)
{
    struct sm_op op = {.kind = SM_OP_DELETE, .key = (const uint8_t *)k, .klen = strlen(k)};
    struct sm_result r;
    struct errbuf eb;
    cr_assert_eq(sm_stage(&sm, sm.st_index + 1, sm.st_lamport + 1, &op, &r, &eb), ERR_OK, "%s", eb.msg);
    return r;
}

static void commit(void)
{
    struct errbuf eb;
    cr_assert_eq(sm_commit(&sm, true, &eb), ERR_OK, "%s", eb.msg);
}

/* 1 and the record if found, 0 if not. */
static int get(const char *k, struct kv_record *r, struct buf *val)
{
    struct store_val hold;
    struct errbuf eb;
    int rc = sm_get(&sm, (const uint8_t *)k, strlen(k), r, &hold, &eb);
    if (rc == ERR_NOT_FOUND)
        return 0;
    cr_assert_eq(rc, ERR_OK, "%s", eb.msg);
    buf_reset(val);
    buf_append(val, r->value, r->vlen);
    store_val_release(&hold);
    return 1;
}

TestSuite(sm, .init = setup, .fini = teardown, .timeout = 60);

Test(sm, revisions_versions_and_lamport_follow_each_change)
{
    struct sm_result a = put("a", "1");
    struct sm_result b = put("b", "1");
    struct sm_result a2 = put("a", "2");
    commit();
    cr_assert_eq(a.revision, 1);
    cr_assert_eq(b.revision, 2);
    cr_assert_eq(a2.revision, 3);
    struct kv_record r;
    struct buf v = BUF_INIT;
    cr_assert(get("a", &r, &v));
    cr_assert_eq(r.create_rev, 1, "create revision is the index that created the key");
    cr_assert_eq(r.mod_rev, 3, "mod revision is the index of the last change");
    cr_assert_eq(r.version, 2, "version counts changes");
    cr_assert_eq(r.lamport, a2.lamport);
    cr_assert(v.len == 1 && v.data[0] == '2');
    cr_assert_eq(sm.revision, 3);
    cr_assert_eq(sm.applied_index, 3);
    cr_assert_eq(sm.keys, 2);
    buf_free(&v);
}

Test(sm, a_deleted_key_starts_over_when_written_again)
{
    put("k", "1");
    put("k", "2");
    commit();
    struct sm_result d = del("k");
    cr_assert(d.found);
    struct sm_result missing = del("k");
    cr_assert_not(missing.found, "deleting twice in one batch sees the first delete");
    cr_assert_eq(missing.revision, 0, "a delete that changes nothing makes no revision");
    put("k", "3");
    commit();
    struct kv_record r;
    struct buf v = BUF_INIT;
    cr_assert(get("k", &r, &v));
    cr_assert_eq(r.version, 1);
    cr_assert_eq(r.create_rev, 5);
    cr_assert_eq(sm.revision, 5);
    cr_assert_eq(sm.applied_index, 5, "every entry consumes an index, even a no-op delete");
    cr_assert_eq(sm.keys, 1);
    buf_free(&v);
}

Test(sm, staged_changes_are_invisible_until_committed_and_lost_if_discarded)
{
    put("x", "committed");
    commit();
    put("x", "staged");
    put("y", "staged");
    struct kv_record r;
    struct buf v = BUF_INIT;
    cr_assert(get("x", &r, &v));
    cr_assert(v.len == 9 && memcmp(v.data, "committed", 9) == 0, "reads see only committed state");
    sm_discard(&sm);
    cr_assert_eq(sm.st_index, 1);
    cr_assert_not(get("y", &r, &v));
    put("z", "after discard");
    commit();
    cr_assert_eq(sm.applied_index, 2);
    buf_free(&v);
}

Test(sm, a_restart_resumes_exactly_after_the_last_commit)
{
    for (int i = 0; i < 100; i++) {
        char k[16];
        snprintf(k, sizeof k, "key%03d", i);
        put(k, k);
        if (i % 10 == 9)
            commit();
    }
    uint64_t lamport = sm.applied_lamport;
    put("uncommitted", "x"); /* staged, never written */
    close_db();
    open_db();
    cr_assert_eq(sm.applied_index, 100);
    cr_assert_eq(sm.revision, 100);
    cr_assert_eq(sm.applied_lamport, lamport);
    cr_assert_eq(sm.keys, 100);
    struct kv_record r;
    struct buf v = BUF_INIT;
    cr_assert_not(get("uncommitted", &r, &v));
    cr_assert(get("key042", &r, &v));
    cr_assert(v.len == 6 && memcmp(v.data, "key042", 6) == 0);
    buf_free(&v);
}

struct collected {
    char keys[64][16];
    int n;
};

static int collect(void *ctx, const uint8_t *key, size_t klen, const struct kv_record *r)
{
    struct collected *c = ctx;
    (void)r;
    cr_assert_lt(c->n, 64);
    cr_assert_lt(klen, 16);
    memcpy(c->keys[c->n], key, klen);
    c->keys[c->n][klen] = 0;
    c->n++;
    return 0;
}

static struct collected list(const char *prefix, const char *after, uint32_t limit, bool *more)
{
    struct collected c = {.n = 0};
    struct errbuf eb;
    cr_assert_eq(sm_list(&sm, (const uint8_t *)prefix, strlen(prefix), (const uint8_t *)after,
                         strlen(after), limit, 1 << 20, collect, &c, more, &eb),
                 ERR_OK, "%s", eb.msg);
    return c;
}

Test(sm, list_returns_the_prefix_in_order_and_pages_without_gaps)
{
    put("app/b", "");
    put("app/a", "");
    put("app/c", "");
    put("apq", "");
    put("ap", "");
    put("zzz", "");
    commit();
    bool more;
    struct collected c = list("app/", "", 100, &more);
    cr_assert_eq(c.n, 3);
    cr_assert_str_eq(c.keys[0], "app/a");
    cr_assert_str_eq(c.keys[2], "app/c");
    cr_assert_not(more);
    c = list("app/", "", 2, &more);
    cr_assert_eq(c.n, 2);
    cr_assert(more);
    /* A key inserted before the cursor between pages is not returned, none is skipped. */
    put("app/aa", "");
    commit();
    c = list("app/", "app/b", 2, &more);
    cr_assert_eq(c.n, 1);
    cr_assert_str_eq(c.keys[0], "app/c");
    cr_assert_not(more);
    c = list("", "", 100, &more);
    cr_assert_eq(c.n, 7);
    cr_assert_str_eq(c.keys[0], "ap");
    cr_assert_str_eq(c.keys[6], "zzz");
    /* start_after before the prefix starts at the prefix. */
    c = list("app/", "a", 100, &more);
    cr_assert_eq(c.n, 4);
    /* start_after past the prefix range returns nothing. */
    c = list("app/", "b", 100, &more);
    cr_assert_eq(c.n, 0);
}

Test(sm, list_handles_prefixes_ending_in_0xff)
{
    const char k1[] = {'p', (char)0xff, 'a', 0};
    const char k2[] = {'p', (char)0xff, (char)0xff, 0};
    const char k3[] = {'q', 0};
    put(k1, "");
    put(k2, "");
    put(k3, "");
    commit();
    bool more;
    const char pfx[] = {'p', (char)0xff, 0};
    struct collected c = list(pfx, "", 100, &more);
    cr_assert_eq(c.n, 2, "the 0xff prefix must not leak into 'q'");
}

Test(sm, a_data_dir_from_a_newer_format_is_refused)
{
    close_db();
    struct errbuf eb;
    cr_assert_eq(store_open(&st, dir, NULL, &eb), ERR_OK);
    struct store_batch *b = store_batch_new(st);
    uint8_t be[8];
    put_be64(be, SM_FORMAT_VERSION + 1);
    store_batch_put(b, STORE_CF_META, "format_version", 14, be, 8);
    cr_assert_eq(store_write(st, b, true, &eb), ERR_OK);
    store_batch_free(b);
    int rc = sm_open(&sm, st, &eb);
    cr_assert_neq(rc, ERR_OK);
    cr_assert(strstr(eb.msg, "format version") != NULL, "message: %s", eb.msg);
    store_close(st);
    st = NULL;
}

Test(sm, a_second_process_cannot_open_a_held_data_dir)
{
    struct store *other = NULL;
    struct errbuf eb;
    int rc = store_open(&other, dir, NULL, &eb);
    cr_assert_neq(rc, ERR_OK, "two stores opened one data dir");
    cr_assert(strstr(eb.msg, "in use") != NULL, "message: %s", eb.msg);
}

Test(sm, a_corrupt_record_is_reported_not_trusted)
{
    put("good", "v");
    commit();
    struct store_batch *b = store_batch_new(st);
    store_batch_put(b, STORE_CF_DATA, "bad", 3, "\x02short", 6);
    struct errbuf eb;
    cr_assert_eq(store_write(st, b, true, &eb), ERR_OK);
    store_batch_free(b);
    struct kv_record r;
    struct store_val hold;
    cr_assert_eq(sm_get(&sm, (const uint8_t *)"bad", 3, &r, &hold, &eb), ERR_CORRUPT);
}
