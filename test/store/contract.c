/* The store contract (kv/store.h): one suite, built twice — against RocksDB
 * (store.c, ctest kv.store_contract) and against the simulated disk
 * (store_mem.c with STORE_MEM, kv.store_contract_mem) — so the simulator's
 * store cannot drift from the real one in anything the node relies on:
 * column families, batches read through as overlays, byte order and upper
 * bounds, iterators and snapshots that keep the state of their creation,
 * wiping a family, a restart keeping unsynced writes, reopening in place.
 * The last test drives both with the same seeded random operations and
 * checks every read against a model kept here. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "harness.h"
#include "kv/store.h"
#ifdef STORE_MEM
#include "kv/memdisk.h"
#endif

static char dir[256];
#ifdef STORE_MEM
static struct memdisk *disk;
static int ndirs;
static void setup(void)
{
    snprintf(dir, sizeof dir, "/sim/contract-%d", ndirs++);
    disk = memdisk_new();
    memdisk_register(dir, disk);
}
static void teardown(void)
{
    memdisk_register(dir, NULL);
    memdisk_free(disk);
}
#else
static void setup(void)
{
    cr_assert_eq(harness_tmpdir(dir, sizeof dir, "store-contract"), 0);
}
static void teardown(void)
{
    harness_rmrf(dir);
}
#endif

TestSuite(store, .init = setup, .fini = teardown, .timeout = 120);

static struct store *open_store(void)
{
    struct store *st = NULL;
    struct errbuf eb;
    cr_assert_eq(store_open(&st, dir, NULL, &eb), ERR_OK, "%s", eb.msg);
    return st;
}

static void put(struct store *st, enum store_cf cf, const char *k, const char *v, bool sync)
{
    struct store_batch *b = store_batch_new(st);
    store_batch_put(b, cf, k, strlen(k), v, strlen(v));
    struct errbuf eb;
    cr_assert_eq(store_write(st, b, sync, &eb), ERR_OK, "%s", eb.msg);
    store_batch_free(b);
}

static void del(struct store *st, enum store_cf cf, const char *k)
{
    struct store_batch *b = store_batch_new(st);
    store_batch_delete(b, cf, k, strlen(k));
    struct errbuf eb;
    cr_assert_eq(store_write(st, b, false, &eb), ERR_OK, "%s", eb.msg);
    store_batch_free(b);
}

/* The value of k as a string ("" with rc ERR_NOT_FOUND). */
static int get(struct store *st, enum store_cf cf, struct store_batch *ov, const char *k, char *out, size_t cap)
{
    struct store_val v;
    struct errbuf eb;
    int rc = store_get(st, cf, k, strlen(k), ov, &v, &eb);
    out[0] = 0;
    if (rc == ERR_OK) {
        snprintf(out, cap, "%.*s", (int)v.n, (const char *)v.p);
        store_val_release(&v);
    }
    return rc;
}

static void expect(struct store *st, enum store_cf cf, const char *k, const char *want)
{
    char got[256];
    int rc = get(st, cf, NULL, k, got, sizeof got);
    if (!want)
        cr_assert_eq(rc, ERR_NOT_FOUND, "%s should be absent, is '%s'", k, got);
    else
        cr_assert(rc == ERR_OK && !strcmp(got, want), "%s: want '%s', got rc %d '%s'", k, want, rc, got);
}

/* The keys an iterator yields from start, joined by ',' (values after '='). */
static void scan(struct store_iter *it, const char *start, char *out, size_t cap)
{
    size_t off = 0;
    out[0] = 0;
    store_iter_seek(it, start, strlen(start));
    for (; store_iter_valid(it); store_iter_next(it)) {
        size_t kn, vn;
        const uint8_t *k = store_iter_key(it, &kn), *v = store_iter_value(it, &vn);
        off += (size_t)snprintf(out + off, cap - off, "%s%.*s=%.*s", off ? "," : "", (int)kn, (const char *)k,
                                (int)vn, (const char *)v);
        cr_assert_lt(off, cap);
    }
    struct errbuf eb;
    cr_assert_eq(store_iter_status(it, &eb), ERR_OK);
}

Test(store, families_are_separate_and_reads_see_writes)
{
    struct store *st = open_store();
    put(st, STORE_CF_DATA, "k", "data", false);
    put(st, STORE_CF_META, "k", "meta", true);
    expect(st, STORE_CF_DATA, "k", "data");
    expect(st, STORE_CF_META, "k", "meta");
    expect(st, STORE_CF_RAFT_LOG, "k", NULL);
    del(st, STORE_CF_DATA, "k");
    expect(st, STORE_CF_DATA, "k", NULL);
    expect(st, STORE_CF_META, "k", "meta");
    del(st, STORE_CF_DATA, "never"); /* deleting a missing key is no error */
    store_close(st);
}

Test(store, batch_is_atomic_and_read_through_as_overlay)
{
    struct store *st = open_store();
    put(st, STORE_CF_DATA, "a", "1", false);
    put(st, STORE_CF_DATA, "b", "2", false);
    struct store_batch *b = store_batch_new(st);
    store_batch_put(b, STORE_CF_DATA, "a", 1, "10", 2);
    store_batch_put(b, STORE_CF_DATA, "a", 1, "11", 2); /* the last write of a key wins */
    store_batch_delete(b, STORE_CF_DATA, "b", 1);
    store_batch_put2(b, STORE_CF_DATA, "c", 1, "he", 2, "llo", 3);
    char got[64];
    cr_assert_eq(get(st, STORE_CF_DATA, b, "a", got, sizeof got), ERR_OK);
    cr_assert_str_eq(got, "11");
    cr_assert_eq(get(st, STORE_CF_DATA, b, "b", got, sizeof got), ERR_NOT_FOUND);
    cr_assert_eq(get(st, STORE_CF_DATA, b, "c", got, sizeof got), ERR_OK);
    cr_assert_str_eq(got, "hello");
    cr_assert_eq(get(st, STORE_CF_META, b, "a", got, sizeof got), ERR_NOT_FOUND);
    /* Nothing is written before store_write. */
    expect(st, STORE_CF_DATA, "a", "1");
    expect(st, STORE_CF_DATA, "b", "2");
    expect(st, STORE_CF_DATA, "c", NULL);
    char s[256];
    struct store_iter *it = store_iter_new_overlay(st, STORE_CF_DATA, b);
    scan(it, "", s, sizeof s);
    cr_assert_str_eq(s, "a=11,c=hello");
    store_iter_free(it);
    struct errbuf eb;
    cr_assert_eq(store_write(st, b, true, &eb), ERR_OK);
    expect(st, STORE_CF_DATA, "a", "11");
    expect(st, STORE_CF_DATA, "b", NULL);
    expect(st, STORE_CF_DATA, "c", "hello");
    store_batch_clear(b);
    cr_assert_eq(get(st, STORE_CF_DATA, b, "b", got, sizeof got), ERR_NOT_FOUND);
    cr_assert_eq(store_write(st, b, false, &eb), ERR_OK); /* an empty batch */
    store_batch_free(b);
    store_close(st);
}

Test(store, bytewise_order_seek_and_upper_bound)
{
    struct store *st = open_store();
    struct store_batch *b = store_batch_new(st);
    const char *keys[] = {"b", "a", "ab", "abc", "a\x7f", "\xff", "aa"};
    for (size_t i = 0; i < sizeof keys / sizeof *keys; i++)
        store_batch_put(b, STORE_CF_DATA, keys[i], strlen(keys[i]), "v", 1);
    store_batch_put(b, STORE_CF_DATA, "a\0z", 3, "z", 1); /* a key with a zero byte */
    struct errbuf eb;
    cr_assert_eq(store_write(st, b, false, &eb), ERR_OK);
    store_batch_free(b);
    struct store_iter *it = store_iter_new(st, STORE_CF_DATA, NULL, 0);
    cr_assert(!store_iter_valid(it), "an iterator is positioned by a seek");
    size_t n = 0;
    char prev[8] = {0};
    size_t prevn = 0;
    for (store_iter_seek(it, "", 0); store_iter_valid(it); store_iter_next(it), n++) {
        size_t kn;
        const uint8_t *k = store_iter_key(it, &kn);
        if (n) {
            size_t m = kn < prevn ? kn : prevn;
            int c = memcmp(prev, k, m);
            cr_assert(c < 0 || (c == 0 && prevn < kn), "keys out of bytewise order");
        }
        memcpy(prev, k, kn);
        prevn = kn;
    }
    cr_assert_eq(n, 8);
    char s[256];
    scan(it, "ab", s, sizeof s);
    cr_assert_str_eq(s, "ab=v,abc=v,a\x7f=v,b=v,\xff=v");
    scan(it, "\xff\xff", s, sizeof s);
    cr_assert_str_eq(s, "");
    store_iter_free(it);
    it = store_iter_new(st, STORE_CF_DATA, "ab", 2); /* upper bound: exclusive */
    scan(it, "aa", s, sizeof s);
    cr_assert_str_eq(s, "aa=v");
    store_iter_free(it);
    it = store_iter_new(st, STORE_CF_META, NULL, 0);
    scan(it, "", s, sizeof s);
    cr_assert_str_eq(s, "");
    store_iter_free(it);
    store_close(st);
}

Test(store, iterators_and_snapshots_keep_their_moment)
{
    struct store *st = open_store();
    put(st, STORE_CF_DATA, "k1", "old", false);
    put(st, STORE_CF_DATA, "k2", "old", false);
    struct store_iter *it = store_iter_new(st, STORE_CF_DATA, NULL, 0);
    struct store_snapshot *snap = store_snapshot_new(st);
    put(st, STORE_CF_DATA, "k1", "new", true);
    del(st, STORE_CF_DATA, "k2");
    put(st, STORE_CF_DATA, "k3", "new", false);
    struct errbuf eb;
    cr_assert_eq(store_wipe_cf(st, STORE_CF_META, false, &eb), ERR_OK);
    char s[256];
    scan(it, "", s, sizeof s);
    cr_assert_str_eq(s, "k1=old,k2=old");
    store_iter_free(it);
    struct store_val v;
    cr_assert_eq(store_get_at(st, STORE_CF_DATA, snap, "k2", 2, &v, &eb), ERR_OK);
    cr_assert_eq(v.n, 3);
    store_val_release(&v);
    cr_assert_eq(store_get_at(st, STORE_CF_DATA, snap, "k3", 2, &v, &eb), ERR_NOT_FOUND);
    it = store_iter_new_at(st, STORE_CF_DATA, snap, "k2", 2);
    scan(it, "", s, sizeof s);
    cr_assert_str_eq(s, "k1=old");
    store_iter_free(it);
    store_snapshot_free(snap);
    it = store_iter_new(st, STORE_CF_DATA, NULL, 0);
    scan(it, "", s, sizeof s);
    cr_assert_str_eq(s, "k1=new,k3=new");
    store_iter_free(it);
    store_close(st);
}

Test(store, wipe_empties_one_family)
{
    struct store *st = open_store();
    put(st, STORE_CF_RAFT_LOG, "", "empty key", false);
    put(st, STORE_CF_RAFT_LOG, "\xff\xff\xff", "last", false);
    put(st, STORE_CF_RAFT_LOG, "mid", "m", false);
    put(st, STORE_CF_RAFT_STATE, "hs", "h", false);
    struct errbuf eb;
    cr_assert_eq(store_wipe_cf(st, STORE_CF_RAFT_LOG, true, &eb), ERR_OK);
    char s[256];
    struct store_iter *it = store_iter_new(st, STORE_CF_RAFT_LOG, NULL, 0);
    scan(it, "", s, sizeof s);
    cr_assert_str_eq(s, "");
    store_iter_free(it);
    expect(st, STORE_CF_RAFT_STATE, "hs", "h");
    cr_assert_eq(store_wipe_cf(st, STORE_CF_RAFT_LOG, true, &eb), ERR_OK); /* already empty */
    put(st, STORE_CF_RAFT_LOG, "again", "a", false);
    expect(st, STORE_CF_RAFT_LOG, "again", "a");
    store_close(st);
}

Test(store, a_restart_keeps_every_write_and_one_opener_at_a_time)
{
    struct store *st = open_store();
    put(st, STORE_CF_DATA, "synced", "1", true);
    put(st, STORE_CF_DATA, "unsynced", "2", false); /* in the OS's cache: a process exit keeps it */
    struct store *other = NULL;
    struct errbuf eb;
    cr_assert_neq(store_open(&other, dir, NULL, &eb), ERR_OK, "a second opener of one data dir is refused");
    cr_assert(strstr(eb.msg, "in use"), "%s", eb.msg);
    store_close(st);
    st = open_store();
    expect(st, STORE_CF_DATA, "synced", "1");
    expect(st, STORE_CF_DATA, "unsynced", "2");
    cr_assert_eq(store_sync_wal(st, &eb), ERR_OK);
    cr_assert_eq(store_probe(st, &eb), ERR_OK);
    store_close_clean(st);
    st = open_store();
    expect(st, STORE_CF_DATA, "unsynced", "2");
    store_close(st);
}

Test(store, reopen_in_place_waits_for_readers)
{
    struct store *st = open_store();
    put(st, STORE_CF_DATA, "k", "v", false);
    struct store_iter *it = store_iter_new(st, STORE_CF_DATA, NULL, 0);
    struct errbuf eb;
    cr_assert_eq(store_reopen(st, dir, &eb), ERR_AGAIN);
    store_iter_free(it);
    cr_assert_eq(store_reopen(st, dir, &eb), ERR_OK, "%s", eb.msg);
    expect(st, STORE_CF_DATA, "k", "v");
    put(st, STORE_CF_DATA, "k2", "v2", true);
    expect(st, STORE_CF_DATA, "k2", "v2");
    store_close(st);
}

/* --- the same random operations against the store and a model ---------------- */

#define MODEL_KEYS 48

struct model {
    bool has[STORE_CF__COUNT][MODEL_KEYS];
    char val[STORE_CF__COUNT][MODEL_KEYS][24];
};

static uint64_t rng_state;
static uint32_t rnd(uint32_t n)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return (uint32_t)(rng_state % n);
}

/* Key i as bytes: varying lengths so prefixes and order are exercised. */
static size_t model_key(int i, char *k)
{
    static const char *stems[] = {"a", "ab", "b", "b\x01", "c"};
    return (size_t)sprintf(k, "%s%.*d", stems[i % 5], i % 3, i / 5);
}

static int key_rank_cmp(const void *a, const void *b)
{
    char ka[16], kb[16];
    size_t na = model_key(*(const int *)a, ka), nb = model_key(*(const int *)b, kb);
    size_t m = na < nb ? na : nb;
    int c = memcmp(ka, kb, m);
    return c ? c : (na < nb ? -1 : na > nb ? 1 : 0);
}

static void model_check_scan(struct store *st, const struct model *m, enum store_cf cf, int from)
{
    int order[MODEL_KEYS];
    for (int i = 0; i < MODEL_KEYS; i++)
        order[i] = i;
    qsort(order, MODEL_KEYS, sizeof *order, key_rank_cmp);
    char fk[16];
    size_t fn = model_key(from, fk);
    struct store_iter *it = store_iter_new(st, cf, NULL, 0);
    store_iter_seek(it, fk, fn);
    for (int r = 0; r < MODEL_KEYS; r++) {
        int i = order[r];
        if (key_rank_cmp(&i, &from) < 0 || !m->has[cf][i])
            continue;
        cr_assert(store_iter_valid(it), "scan from %d ends before key %d", from, i);
        size_t kn, vn;
        const uint8_t *k = store_iter_key(it, &kn), *v = store_iter_value(it, &vn);
        char want[16];
        size_t wn = model_key(i, want);
        cr_assert(kn == wn && !memcmp(k, want, kn), "scan from %d: wrong key at %d", from, i);
        cr_assert(vn == strlen(m->val[cf][i]) && !memcmp(v, m->val[cf][i], vn), "scan: wrong value of key %d", i);
        store_iter_next(it);
    }
    cr_assert(!store_iter_valid(it), "scan from %d yields a key the model lacks", from);
    store_iter_free(it);
}

Test(store, random_operations_match_a_model)
{
    struct store *st = open_store();
    struct model m;
    memset(&m, 0, sizeof m);
    rng_state = 0x9e3779b97f4a7c15ull;
    struct errbuf eb;
    for (int i = 0; i < MODEL_KEYS; i++) /* the model's keys are distinct */
        for (int j = 0; j < i; j++)
            cr_assert_neq(key_rank_cmp(&i, &j), 0, "keys %d and %d are equal", i, j);
    for (int step = 0; step < 3000; step++) {
        enum store_cf cf = (enum store_cf)(1 + rnd(STORE_CF__COUNT - 1));
        uint32_t what = rnd(100);
        if (what < 60) { /* a batch of puts and deletes, checked through the overlay first */
            struct store_batch *b = store_batch_new(st);
            struct model next = m;
            int n = 1 + (int)rnd(6);
            for (int j = 0; j < n; j++) {
                int i = (int)rnd(MODEL_KEYS);
                char k[16];
                size_t kn = model_key(i, k);
                if (rnd(4)) {
                    snprintf(next.val[cf][i], sizeof next.val[cf][i], "v%d.%d", step, j);
                    store_batch_put(b, cf, k, kn, next.val[cf][i], strlen(next.val[cf][i]));
                    next.has[cf][i] = true;
                } else {
                    store_batch_delete(b, cf, k, kn);
                    next.has[cf][i] = false;
                }
            }
            int probe = (int)rnd(MODEL_KEYS);
            char k[16], got[64];
            model_key(probe, k);
            int rc = get(st, cf, b, k, got, sizeof got);
            cr_assert_eq(rc, next.has[cf][probe] ? ERR_OK : ERR_NOT_FOUND, "step %d overlay", step);
            if (rc == ERR_OK)
                cr_assert_str_eq(got, next.val[cf][probe]);
            cr_assert_eq(store_write(st, b, rnd(5) == 0, &eb), ERR_OK, "%s", eb.msg);
            store_batch_free(b);
            m = next;
        } else if (what < 85) {
            int i = (int)rnd(MODEL_KEYS);
            char k[16], got[64];
            model_key(i, k);
            int rc = get(st, cf, NULL, k, got, sizeof got);
            cr_assert_eq(rc, m.has[cf][i] ? ERR_OK : ERR_NOT_FOUND, "step %d get %d", step, i);
            if (rc == ERR_OK)
                cr_assert_str_eq(got, m.val[cf][i]);
        } else if (what < 97) {
            model_check_scan(st, &m, cf, (int)rnd(MODEL_KEYS));
        } else if (what < 98) {
            cr_assert_eq(store_wipe_cf(st, cf, false, &eb), ERR_OK);
            memset(m.has[cf], 0, sizeof m.has[cf]);
        } else { /* a restart */
            store_close(st);
            st = open_store();
        }
    }
    for (int cf = 1; cf < STORE_CF__COUNT; cf++)
        model_check_scan(st, &m, (enum store_cf)cf, 0);
    store_close(st);
}

/* The engine's account of its background work (kv/store.h): on RocksDB,
 * enough small memtables filled make flushes, and the level-0 files they
 * leave make compactions; the simulated disk has no engine and says 0. */
Test(store, engine_stats_count_background_work)
{
    struct store *st = NULL;
    struct errbuf eb;
    struct store_options o = {.write_buffer_bytes = 64u << 10};
    cr_assert_eq(store_open(&st, dir, &o, &eb), ERR_OK, "%s", eb.msg);
    struct store_engine_stats es;
    store_engine_stats(st, &es);
    cr_assert_eq(es.flushes + es.compactions + es.stalls + es.stall_us, 0, "a fresh store did nothing yet");
    char k[32], v[512];
    memset(v, 'v', sizeof v - 1);
    v[sizeof v - 1] = 0;
    for (int i = 0; i < 8000; i++) {
        snprintf(k, sizeof k, "key-%05d", i % 2000);
        put(st, STORE_CF_DATA, k, v, false);
    }
    for (int t = 0; t < 200; t++) { /* background work: up to 10 s */
        store_engine_stats(st, &es);
        if (es.flushes >= 4 && es.compactions >= 1)
            break;
        usleep(50 * 1000);
    }
#ifdef STORE_MEM
    cr_assert_eq(es.flushes + es.compactions + es.stalls + es.stall_us, 0);
#else
    cr_assert_geq(es.flushes, 4, "4 MiB through 64 KiB memtables: %llu flushes", (unsigned long long)es.flushes);
    cr_assert_geq(es.compactions, 1, "%llu flushes left level-0 files: %llu compactions",
                  (unsigned long long)es.flushes, (unsigned long long)es.compactions);
#endif
    store_close(st);
}
