/* The write-ahead log at open: a damaged record with whole records after it
 * is refused (ERR_CORRUPT, naming the file), a torn tail is dropped, and
 * after a clean stop (store_close_clean) any damage is refused, the last
 * record's included (src/core/kv/store.c, store_wal_check). */
#define _GNU_SOURCE /* memmem */
#include <criterion/criterion.h>
#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "harness.h"
#include "kv/store.h"

#define KEYS 100

static char dir[256];

static void setup(void)
{
    cr_assert_eq(harness_tmpdir(dir, sizeof dir, "bitrot-wal"), 0);
}

static void teardown(void)
{
    harness_rmrf(dir);
}

TestSuite(bitrot_wal, .init = setup, .fini = teardown, .timeout = 60);

static void key_of(char *k, int i)
{
    snprintf(k, 16, "k%04d", i);
}

/* KEYS synced writes, one WAL record each (about 330 bytes), then a close:
 * clean (the marker) or as after a crash. */
static void fill(bool clean)
{
    struct store *st;
    struct errbuf eb;
    cr_assert_eq(store_open(&st, dir, NULL, &eb), ERR_OK, "%s", eb.msg);
    char v[300];
    memset(v, 'v', sizeof v);
    for (int i = 1; i <= KEYS; i++) {
        char k[16];
        key_of(k, i);
        struct store_batch *b = store_batch_new(st);
        store_batch_put(b, STORE_CF_DATA, k, strlen(k), v, sizeof v);
        cr_assert_eq(store_write(st, b, true, &eb), ERR_OK, "%s", eb.msg);
        store_batch_free(b);
    }
    if (clean)
        store_close_clean(st);
    else
        store_close(st);
}

/* The newest WAL file's path. */
static void wal_path(char *out, size_t cap)
{
    DIR *d = opendir(dir);
    cr_assert(d != NULL);
    struct dirent *de;
    char best[64] = "";
    while ((de = readdir(d)) != NULL) {
        size_t l = strlen(de->d_name);
        if (l > 4 && strcmp(de->d_name + l - 4, ".log") == 0 && strspn(de->d_name, "0123456789") == l - 4 &&
            (strlen(de->d_name) > strlen(best) ||
             (strlen(de->d_name) == strlen(best) && strcmp(de->d_name, best) > 0)))
            snprintf(best, sizeof best, "%s", de->d_name);
    }
    closedir(d);
    cr_assert(best[0], "no WAL file in %s", dir);
    snprintf(out, cap, "%s/%s", dir, best);
}

static uint8_t *slurp(const char *path, size_t *n)
{
    struct stat sb;
    cr_assert_eq(stat(path, &sb), 0);
    uint8_t *p = malloc((size_t)sb.st_size + 1);
    FILE *f = fopen(path, "rb");
    cr_assert(p && f);
    *n = fread(p, 1, (size_t)sb.st_size, f);
    fclose(f);
    return p;
}

static void spill(const char *path, const uint8_t *p, size_t n)
{
    FILE *f = fopen(path, "wb");
    cr_assert(f != NULL);
    cr_assert_eq(fwrite(p, 1, n, f), n);
    fclose(f);
}

static void flip(const char *path, size_t off, size_t n)
{
    size_t len;
    uint8_t *p = slurp(path, &len);
    cr_assert(off + n <= len);
    for (size_t i = 0; i < n; i++)
        p[off + i] ^= 0xff;
    spill(path, p, len);
    free(p);
}

/* The offset of the WAL record holding key i: records are whole batches here
 * (each under a block), so it is the header just before the key's batch. */
static size_t record_of(const uint8_t *p, size_t n, int i)
{
    char k[16];
    key_of(k, i);
    size_t off = 0;
    while (off + 7 <= n) {
        if (32768 - off % 32768 < 7) {
            off += 32768 - off % 32768; /* the block's trailer */
            continue;
        }
        size_t len = (size_t)p[off + 4] | (size_t)p[off + 5] << 8;
        if (len == 0)
            break;
        if (memmem(p + off + 7, len, k, strlen(k)))
            return off;
        off += 7 + len;
    }
    cr_assert_fail("no record holds %s", k);
    return 0;
}

/* Open; count the keys 1..KEYS present (and the highest). */
static int open_count(int *highest, struct errbuf *eb)
{
    struct store *st;
    int rc = store_open(&st, dir, NULL, eb);
    if (rc)
        return rc;
    *highest = 0;
    int n = 0;
    for (int i = 1; i <= KEYS; i++) {
        char k[16];
        key_of(k, i);
        struct store_val v;
        struct errbuf e2;
        if (store_get(st, STORE_CF_DATA, k, strlen(k), NULL, &v, &e2) == ERR_OK) {
            n++;
            *highest = i;
            store_val_release(&v);
        }
    }
    store_close(st);
    return n == *highest ? ERR_OK : ERR_BAD_INPUT; /* a prefix, never a hole */
}

Test(bitrot_wal, a_damaged_record_with_whole_records_after_it_is_refused)
{
    fill(false);
    char wal[512];
    wal_path(wal, sizeof wal);
    size_t n;
    uint8_t *p = slurp(wal, &n);
    size_t at = record_of(p, n, KEYS / 2) + 7 + 100; /* inside key 50's value */
    free(p);
    flip(wal, at, 8);
    int highest;
    struct errbuf eb;
    cr_assert_eq(open_count(&highest, &eb), ERR_CORRUPT, "a WAL damaged in the middle opened");
    cr_assert(strstr(eb.msg, wal) != NULL, "the message does not name %s: %s", wal, eb.msg);
    /* And again: nothing was dropped or "repaired" by the refused open. */
    cr_assert_eq(open_count(&highest, &eb), ERR_CORRUPT);
}

Test(bitrot_wal, a_torn_tail_is_dropped)
{
    fill(false);
    char wal[512];
    wal_path(wal, sizeof wal);
    struct stat sb;
    cr_assert_eq(stat(wal, &sb), 0);
    cr_assert_eq(truncate(wal, sb.st_size - 100), 0); /* the last append cut short */
    int highest;
    struct errbuf eb;
    cr_assert_eq(open_count(&highest, &eb), ERR_OK, "%s", eb.msg);
    cr_assert_eq(highest, KEYS - 1);
}

Test(bitrot_wal, garbage_in_the_page_being_written_is_a_torn_tail)
{
    fill(false);
    char wal[512];
    wal_path(wal, sizeof wal);
    size_t n;
    uint8_t *p = slurp(wal, &n);
    size_t at = record_of(p, n, KEYS);
    srand(7);
    for (size_t i = at + 20; i < n; i++)
        p[i] = (uint8_t)rand(); /* the last record half written, then garbage */
    spill(wal, p, n);
    free(p);
    int highest;
    struct errbuf eb;
    cr_assert_eq(open_count(&highest, &eb), ERR_OK, "%s", eb.msg);
    cr_assert_eq(highest, KEYS - 1);
}

Test(bitrot_wal, unwritten_space_then_a_surviving_later_write_is_a_torn_tail)
{
    /* A power cut: appends of keys 90..94 never reached the disk (zeros),
     * a later one (95..100) did; none was synced, as a sync covers every
     * record before it. Nothing acknowledged is lost by dropping them. */
    fill(false);
    char wal[512];
    wal_path(wal, sizeof wal);
    size_t n;
    uint8_t *p = slurp(wal, &n);
    size_t from = record_of(p, n, 90), to = record_of(p, n, 95);
    memset(p + from, 0, to - from);
    spill(wal, p, n);
    free(p);
    int highest;
    struct errbuf eb;
    int rc = open_count(&highest, &eb);
    cr_assert_neq(rc, ERR_CORRUPT, "a power cut's unwritten space judged as damage: %s", eb.msg);
    cr_assert_eq(rc, ERR_OK, "%s", eb.msg);
    cr_assert_geq(highest, 89);
}

Test(bitrot_wal, without_a_clean_stop_a_damaged_last_record_reads_as_torn)
{
    /* The one case the walk cannot tell apart (ARCHITECTURE.md): dropped. */
    fill(false);
    char wal[512];
    wal_path(wal, sizeof wal);
    struct stat sb;
    cr_assert_eq(stat(wal, &sb), 0);
    flip(wal, (size_t)sb.st_size - 8, 8);
    int highest;
    struct errbuf eb;
    cr_assert_eq(open_count(&highest, &eb), ERR_OK, "%s", eb.msg);
    cr_assert_eq(highest, KEYS - 1);
}

Test(bitrot_wal, after_a_clean_stop_a_damaged_last_record_is_refused)
{
    fill(true);
    char wal[512], marker[512];
    wal_path(wal, sizeof wal);
    snprintf(marker, sizeof marker, "%s/ddkv-clean-stop", dir);
    cr_assert_eq(access(marker, F_OK), 0, "a clean stop left no marker");
    struct stat sb;
    cr_assert_eq(stat(wal, &sb), 0);
    flip(wal, (size_t)sb.st_size - 8, 8);
    int highest;
    struct errbuf eb;
    cr_assert_eq(open_count(&highest, &eb), ERR_CORRUPT, "the damaged last record was dropped as torn");
    cr_assert(strstr(eb.msg, wal) != NULL, "the message does not name %s: %s", wal, eb.msg);
    cr_assert_eq(access(marker, F_OK), 0, "a refused open removed the marker");
    cr_assert_eq(open_count(&highest, &eb), ERR_CORRUPT);
}

Test(bitrot_wal, after_a_clean_stop_a_shortened_log_is_refused)
{
    fill(true);
    char wal[512];
    wal_path(wal, sizeof wal);
    struct stat sb;
    cr_assert_eq(stat(wal, &sb), 0);
    cr_assert_eq(truncate(wal, sb.st_size - 330), 0); /* a whole record gone */
    int highest;
    struct errbuf eb;
    cr_assert_eq(open_count(&highest, &eb), ERR_CORRUPT, "a shortened log after a clean stop opened");
    cr_assert(strstr(eb.msg, wal) != NULL, "%s", eb.msg);
}

Test(bitrot_wal, the_marker_is_gone_once_opened)
{
    /* A clean stop, a clean open: the marker is removed, so the next run's
     * crash is judged as a crash (a torn tail dropped, not refused). */
    fill(true);
    int highest;
    struct errbuf eb;
    cr_assert_eq(open_count(&highest, &eb), ERR_OK, "%s", eb.msg);
    cr_assert_eq(highest, KEYS);
    char marker[512];
    snprintf(marker, sizeof marker, "%s/ddkv-clean-stop", dir);
    cr_assert_neq(access(marker, F_OK), 0, "the marker outlived the open");
    fill(false);
    char wal[512];
    wal_path(wal, sizeof wal);
    struct stat sb;
    cr_assert_eq(stat(wal, &sb), 0);
    cr_assert_eq(truncate(wal, sb.st_size - 100), 0);
    cr_assert_eq(open_count(&highest, &eb), ERR_OK, "%s", eb.msg);
}
