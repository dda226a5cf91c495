/* The simulated disk's failure model (kv/memdisk.h, store_mem.c), which the
 * whole-node simulator's storage faults rest on: what a power cut keeps,
 * a torn record in the middle, a failed fsync, a full disk, bit rot. The
 * contract suite (contract.c) shows the same store without faults behaves as
 * RocksDB does. ctest kv.memdisk. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

#include "kv/memdisk.h"
#include "kv/store.h"

static struct memdisk *disk;
static const char *dir = "/sim/memdisk";

static void setup(void)
{
    disk = memdisk_new();
    memdisk_register(dir, disk);
}
static void teardown(void)
{
    memdisk_register(dir, NULL);
    memdisk_free(disk);
}

TestSuite(memdisk, .init = setup, .fini = teardown, .timeout = 60);

static struct store *open_ok(void)
{
    struct store *st = NULL;
    struct errbuf eb;
    cr_assert_eq(store_open(&st, dir, NULL, &eb), ERR_OK, "%s", eb.msg);
    return st;
}

static int put(struct store *st, const char *k, const char *v, bool sync)
{
    struct store_batch *b = store_batch_new(st);
    store_batch_put(b, STORE_CF_DATA, k, strlen(k), v, strlen(v));
    struct errbuf eb;
    int rc = store_write(st, b, sync, &eb);
    store_batch_free(b);
    return rc;
}

static bool has(struct store *st, const char *k)
{
    struct store_val v;
    struct errbuf eb;
    int rc = store_get(st, STORE_CF_DATA, k, strlen(k), NULL, &v, &eb);
    if (rc == ERR_OK)
        store_val_release(&v);
    cr_assert(rc == ERR_OK || rc == ERR_NOT_FOUND, "get %s: %d", k, rc);
    return rc == ERR_OK;
}

Test(memdisk, a_power_cut_keeps_what_was_synced_and_a_prefix_of_the_rest)
{
    struct store *st = open_ok();
    cr_assert_eq(put(st, "s1", "v", true), ERR_OK);
    cr_assert_eq(put(st, "u1", "v", false), ERR_OK);
    cr_assert_eq(put(st, "u2", "v", false), ERR_OK);
    cr_assert_eq(put(st, "u3", "v", false), ERR_OK);
    cr_assert_eq(memdisk_unsynced(disk), 3);
    store_close(st); /* the process died: its writes are in the OS's cache */
    st = open_ok();
    cr_assert(has(st, "u3"), "a process exit alone loses nothing");
    store_close(st);
    memdisk_crash(disk, 2, MEMDISK_TEAR_NONE); /* then the power went */
    st = open_ok();
    cr_assert(has(st, "s1") && has(st, "u1") && has(st, "u2"));
    cr_assert(!has(st, "u3"), "the third unsynced write is past what survived");
    cr_assert_eq(memdisk_unsynced(disk), 0);
    store_close(st);
    memdisk_crash(disk, 0, MEMDISK_TEAR_NONE);
    st = open_ok();
    cr_assert(has(st, "u2"), "what a power cut kept is on the disk for good");
    store_close(st);
}

Test(memdisk, a_sync_makes_every_earlier_write_durable)
{
    struct store *st = open_ok();
    cr_assert_eq(put(st, "a", "v", false), ERR_OK);
    cr_assert_eq(put(st, "b", "v", false), ERR_OK);
    struct errbuf eb;
    cr_assert_eq(store_sync_wal(st, &eb), ERR_OK);
    cr_assert_eq(put(st, "c", "v", false), ERR_OK);
    store_close(st);
    memdisk_crash(disk, 0, MEMDISK_TEAR_NONE);
    st = open_ok();
    cr_assert(has(st, "a") && has(st, "b") && !has(st, "c"));
    store_close(st);
}

Test(memdisk, a_record_torn_in_the_middle_is_refused_at_open)
{
    struct store *st = open_ok();
    for (int i = 0; i < 4; i++) {
        char k[8];
        snprintf(k, sizeof k, "k%d", i);
        cr_assert_eq(put(st, k, "v", false), ERR_OK);
    }
    store_close(st);
    memdisk_crash(disk, 3, MEMDISK_TEAR_MIDDLE);
    struct store *st2 = NULL;
    struct errbuf eb;
    cr_assert_eq(store_open(&st2, dir, NULL, &eb), ERR_CORRUPT);
    cr_assert(strstr(eb.msg, "damaged"), "%s", eb.msg);
}

Test(memdisk, a_failed_sync_holds_writes_until_reopen_and_may_lose_what_it_covered)
{
    struct store *st = open_ok();
    cr_assert_eq(put(st, "durable", "v", true), ERR_OK);
    cr_assert_eq(put(st, "pending", "v", false), ERR_OK);
    memdisk_fail_next_sync(disk, true);
    struct errbuf eb;
    cr_assert_eq(store_sync_wal(st, &eb), ERR_IO);
    cr_assert(strstr(eb.msg, "Input/output"), "%s", eb.msg);
    cr_assert_eq(put(st, "after", "v", false), ERR_IO, "writes are refused after a failed sync");
    cr_assert_eq(store_probe(st, &eb), ERR_IO);
    cr_assert(has(st, "pending"), "the open store still shows the write (cached pages)");
    cr_assert_eq(store_reopen(st, dir, &eb), ERR_OK, "%s", eb.msg);
    cr_assert(has(st, "durable"));
    cr_assert(!has(st, "pending"), "the failed sync's pages were dropped: a reopen shows the disk");
    cr_assert_eq(put(st, "after", "v", true), ERR_OK);
    store_close(st);
    memdisk_crash(disk, 0, MEMDISK_TEAR_NONE);
    st = open_ok();
    cr_assert(has(st, "after"));
    store_close(st);
}

Test(memdisk, a_failed_sync_that_loses_nothing_keeps_its_writes_through_reopen)
{
    struct store *st = open_ok();
    cr_assert_eq(put(st, "pending", "v", false), ERR_OK);
    memdisk_fail_next_sync(disk, false);
    struct errbuf eb;
    cr_assert_eq(put(st, "synced", "v", true), ERR_IO);
    cr_assert_eq(store_reopen(st, dir, &eb), ERR_OK);
    cr_assert(has(st, "pending") && has(st, "synced"));
    store_close(st);
    memdisk_crash(disk, 0, MEMDISK_TEAR_NONE);
    st = open_ok();
    cr_assert(has(st, "pending"), "a reopen writes what it recovered out, synced");
    store_close(st);
}

Test(memdisk, a_full_disk_refuses_writes_until_space_returns)
{
    struct store *st = open_ok();
    cr_assert_eq(put(st, "a", "v", false), ERR_OK);
    memdisk_set_full(disk, true);
    cr_assert_eq(put(st, "b", "v", false), ERR_NOSPACE);
    cr_assert(!has(st, "b"), "a refused write is not applied");
    struct errbuf eb;
    cr_assert_eq(store_probe(st, &eb), ERR_NOSPACE);
    cr_assert_eq(store_wipe_cf(st, STORE_CF_DATA, true, &eb), ERR_NOSPACE);
    cr_assert(has(st, "a"));
    memdisk_set_full(disk, false);
    cr_assert_eq(store_probe(st, &eb), ERR_OK);
    cr_assert_eq(put(st, "b", "v", true), ERR_OK);
    store_close(st);
}

Test(memdisk, bit_rot_is_found_at_open_and_on_read)
{
    struct store *st = open_ok();
    cr_assert_eq(put(st, "good", "v", false), ERR_OK);
    cr_assert_eq(put(st, "rots", "v", true), ERR_OK);
    memdisk_rot(disk, STORE_CF_DATA, "rots", 4);
    const char *msg = NULL;
    cr_assert(!store_corruption(st, &msg));
    struct store_val v;
    struct errbuf eb;
    cr_assert_eq(store_get(st, STORE_CF_DATA, "rots", 4, NULL, &v, &eb), ERR_CORRUPT);
    cr_assert(store_corruption(st, &msg) && strstr(msg, "checksum"));
    struct store_iter *it = store_iter_new(st, STORE_CF_DATA, NULL, 0);
    store_iter_seek(it, "", 0);
    cr_assert(store_iter_valid(it)); /* "good" */
    store_iter_next(it);
    cr_assert(!store_iter_valid(it), "iteration stops at the rotten block");
    cr_assert_eq(store_iter_status(it, &eb), ERR_CORRUPT);
    store_iter_free(it);
    store_close(st);
    struct store *st2 = NULL;
    cr_assert_eq(store_open(&st2, dir, NULL, &eb), ERR_CORRUPT, "the verification at open finds it");
    cr_assert(strstr(eb.msg, "data"), "%s", eb.msg);
}

Test(memdisk, each_dir_is_its_own_disk)
{
    struct memdisk *d2 = memdisk_new();
    memdisk_register("/sim/other", d2);
    struct store *a = open_ok(), *b = NULL;
    struct errbuf eb;
    cr_assert_eq(store_open(&b, "/sim/other", NULL, &eb), ERR_OK);
    cr_assert_eq(put(a, "only-a", "v", true), ERR_OK);
    cr_assert(!has(b, "only-a"));
    cr_assert(memdisk_is_open(d2));
    store_close(b);
    store_close(a);
    memdisk_register("/sim/other", NULL);
    memdisk_free(d2);
    cr_assert_eq(store_open(&b, "/sim/none", NULL, &eb), ERR_IO);
}
