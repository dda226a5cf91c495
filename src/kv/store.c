/* RocksDB behind the store interface (the one file that includes rocksdb/c.h). */
#include "kv/store.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <rocksdb/c.h>
#include <stdio.h>
#include <stdlib.h>
#include <stdatomic.h>
#include <string.h>
#include <unistd.h>

#include "util/buf.h"
#include "util/crc32c.h"
#include "util/file.h"
#include "util/log.h"

static const char *const cf_names[STORE_CF__COUNT] = {
    [STORE_CF_DEFAULT] = "default",
    [STORE_CF_META] = "meta",
    [STORE_CF_DATA] = "data",
    [STORE_CF_RAFT_LOG] = "raft_log",
    [STORE_CF_RAFT_STATE] = "raft_state",
};

struct store {
    rocksdb_t *db;
    rocksdb_options_t *opts;
    rocksdb_column_family_handle_t *cf[STORE_CF__COUNT];
    rocksdb_readoptions_t *ro;
    rocksdb_writeoptions_t *wo_sync;
    rocksdb_writeoptions_t *wo_nosync;
    atomic_int live; /* iterators and snapshots not yet freed (store_reopen waits for none) */
};

struct store_batch {
    rocksdb_writebatch_wi_t *wb;
    struct store *s; /* for column family handles */
};

struct store_iter {
    struct store *s;
    rocksdb_iterator_t *it;
    rocksdb_readoptions_t *ro;
    uint8_t *upper; /* RocksDB references the bound; we own the copy */
};

struct store_snapshot {
    struct store *s;
    const rocksdb_snapshot_t *snap;
    rocksdb_readoptions_t *ro; /* reads as of snap */
};

/* Translate a RocksDB error string (which we free) into our code. */
static int store_err(char *rerr, struct errbuf *eb, const char *what)
{
    int code = ERR_IO;
    if (strstr(rerr, "No space left") || strstr(rerr, "NoSpace"))
        code = ERR_NOSPACE;
    else if (strstr(rerr, "Corruption"))
        code = ERR_CORRUPT;
    errf(eb, code, "%s: %s", what, rerr);
    rocksdb_free(rerr);
    return code;
}

/* --- the write-ahead log's tail, looked at before RocksDB replays it ---
 *
 * A crash in the middle of a WAL append leaves a torn record at the end of
 * the newest WAL file. Nothing in it was acknowledged: every write that
 * matters (Raft entries, hard state) is acknowledged only after its synced
 * write returned, and a record is appended whole before that fsync. RocksDB
 * drops such a tail by itself in point-in-time recovery (store_open), but
 * silently (its info LOG is off, see there); this walk finds it first so the
 * node can say that it recovered from one. The format is RocksDB's
 * (db/log_format.h): 32 KiB blocks of records, each with a 7-byte header
 * [masked CRC-32C u32 LE][length u16 LE][type u8] (11 bytes for the
 * recyclable types, with the log number), never crossing a block; fewer than
 * 7 bytes left in a block are padding. The CRC covers the type byte, the log
 * number if any, and the payload. */
#define WAL_BLOCK 32768u
#define WAL_HEADER 7u
#define WAL_RECYCLABLE_HEADER 11u

static uint32_t wal_unmask(uint32_t masked)
{
    uint32_t rot = masked - 0xa282ead8u;
    return (rot >> 17) | (rot << 15);
}

static bool wal_all_zero(const uint8_t *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (p[i])
            return false;
    return true;
}

/* The length of the block's prefix made of whole records (n if all of it);
 * zeros to the end of the block count as whole (preallocated space). */
static size_t wal_block_valid(const uint8_t *p, size_t n)
{
    size_t off = 0;
    while (off < n) {
        if (WAL_BLOCK - off < WAL_HEADER)
            return n; /* the block's trailer padding */
        if (n - off < WAL_HEADER)
            return wal_all_zero(p + off, n - off) ? n : off;
        uint32_t len = (uint32_t)p[off + 4] | (uint32_t)p[off + 5] << 8;
        uint8_t type = p[off + 6];
        if (type == 0 && len == 0 && wal_all_zero(p + off, n - off))
            return n;
        /* 1-4 full/first/middle/last, 5-8 their recyclable forms, 9 the
         * compression type record, 10-11 (newer RocksDB) the timestamp size
         * record and its recyclable form; anything else is not a record. */
        if (type == 0 || type > 11)
            return off;
        size_t hdr = (type >= 5 && type <= 8) || type == 11 ? WAL_RECYCLABLE_HEADER : WAL_HEADER;
        if (hdr + len > n - off)
            return off; /* cut short: a torn append */
        uint32_t got = crc32c(p + off + 6, 1 + (hdr - WAL_HEADER) + len);
        uint32_t want = (uint32_t)p[off] | (uint32_t)p[off + 1] << 8 | (uint32_t)p[off + 2] << 16 |
                        (uint32_t)p[off + 3] << 24;
        if (got != wal_unmask(want))
            return off;
        off += hdr + len;
    }
    return n;
}

/* WAL files are numbered, zero-padded to at least 6 digits: shorter first. */
static int wal_name_cmp(const void *a, const void *b)
{
    const char *x = *(char *const *)a, *y = *(char *const *)b;
    size_t lx = strlen(x), ly = strlen(y);
    return lx != ly ? (lx < ly ? -1 : 1) : strcmp(x, y);
}

/* Walk every WAL file in dir; log where a torn or damaged record begins. A
 * failure to read is not ours to report: RocksDB's open will say. */
static void store_wal_check(const char *dir)
{
    DIR *d = opendir(dir);
    if (!d)
        return;
    char *names[64];
    size_t nn = 0;
    struct dirent *de;
    while ((de = readdir(d)) != NULL && nn < 64) {
        size_t l = strlen(de->d_name);
        if (l > 4 && l < 32 && strcmp(de->d_name + l - 4, ".log") == 0 &&
            strspn(de->d_name, "0123456789") == l - 4 && (names[nn] = strdup(de->d_name)) != NULL)
            nn++;
    }
    closedir(d);
    qsort(names, nn, sizeof names[0], wal_name_cmp);
    uint8_t *block = malloc(WAL_BLOCK);
    bool damaged = false;
    for (size_t i = 0; i < nn; i++) {
        char path[4200];
        snprintf(path, sizeof path, "%s/%s", dir, names[i]);
        int fd = open(path, O_RDONLY | O_CLOEXEC);
        if (fd < 0 || !block)
            continue;
        off_t size = lseek(fd, 0, SEEK_END);
        off_t pos = 0;
        while (!damaged && size > 0 && pos < size) {
            size_t want = (size_t)(size - pos) < WAL_BLOCK ? (size_t)(size - pos) : WAL_BLOCK;
            ssize_t got = pread(fd, block, want, pos);
            if (got != (ssize_t)want)
                break;
            size_t ok = wal_block_valid(block, want);
            if (ok < want) {
                damaged = true;
                unsigned long long at = (unsigned long long)pos + ok;
                if (i + 1 == nn)
                    log_warn("write-ahead log %s ends in a torn write: the last %llu bytes (from offset "
                             "%llu) are not a whole record; recovering to the last whole record before "
                             "them and dropping them (an append a crash cut short: nothing in it was "
                             "acknowledged)",
                             path, (unsigned long long)size - at, at);
                else
                    log_error("write-ahead log %s has a damaged record at offset %llu, and %zu newer "
                              "log files follow: recovery keeps every record before it and drops the rest",
                              path, at, nn - i - 1);
            }
            pos += (off_t)want;
        }
        close(fd);
    }
    free(block);
    for (size_t i = 0; i < nn; i++)
        free(names[i]);
}

int store_open(struct store **out, const char *dir, const struct store_options *opt,
               struct errbuf *eb)
{
    struct store *s = calloc(1, sizeof *s);
    if (!s)
        return errf(eb, ERR_NOMEM, "out of memory");
    s->opts = rocksdb_options_create();
    rocksdb_options_set_create_if_missing(s->opts, 1);
    rocksdb_options_set_create_missing_column_families(s->opts, 1);
    size_t wbs = opt && opt->write_buffer_bytes ? opt->write_buffer_bytes : 8u << 20;
    rocksdb_options_set_write_buffer_size(s->opts, wbs);
    rocksdb_options_set_max_open_files(s->opts, opt && opt->max_open_files ? opt->max_open_files : 256);
    rocksdb_options_set_keep_log_file_num(s->opts, 3);
    rocksdb_options_set_max_log_file_size(s->opts, 4u << 20);
    rocksdb_options_set_max_background_jobs(s->opts, 2);
    /* A crash can tear the last WAL append. Point-in-time recovery replays
     * every whole record up to the first bad one and drops the rest, so a
     * torn tail (never acknowledged: see store_wal_check) is truncated and
     * the node starts. It is RocksDB's default too, set here so it cannot
     * change under us: absolute consistency (1) would refuse to open, and
     * tolerating corrupted tail records (0) refuses a whole record whose
     * checksum fails; skipping any corrupted record (3) could replay writes
     * past a hole, which breaks the Raft log's "prefix" promise. */
    rocksdb_options_set_wal_recovery_mode(s->opts, rocksdb_point_in_time_recovery);
    /* RocksDB's own info LOG (DATA/LOG) lives on the data disk. In the
     * librocksdb 7.8 that Debian ships (built with assertions on), once a
     * LOG write failed (a full disk), the next LOG message aborts the whole
     * process (WritableFileWriter: "Assertion `sync_without_flush_called_'
     * failed"), and a full disk produces such messages (background errors,
     * recovery attempts, the periodic stats dump): the node would crash
     * instead of fencing itself and recovering when space returns. So only
     * fatal messages (and the options header at open) go there; every
     * error RocksDB returns to us is logged by the node. */
    rocksdb_options_set_info_log_level(s->opts, 4 /* FATAL_LEVEL */);

    const rocksdb_options_t *cf_opts[STORE_CF__COUNT];
    for (int i = 0; i < STORE_CF__COUNT; i++)
        cf_opts[i] = s->opts;
    store_wal_check(dir);
    char *rerr = NULL;
    s->db = rocksdb_open_column_families(s->opts, dir, STORE_CF__COUNT, cf_names, cf_opts, s->cf, &rerr);
    if (rerr) {
        int code;
        if (strstr(rerr, "lock") || strstr(rerr, "LOCK")) {
            code = errf(eb, ERR_IO, "data dir %s is in use by another process (%s)", dir, rerr);
            rocksdb_free(rerr);
        } else {
            code = store_err(rerr, eb, "open");
        }
        rocksdb_options_destroy(s->opts);
        free(s);
        return code;
    }
    /* The store's identity is durable before anything is read from or
     * acknowledged out of it: RocksDB (7.8) syncs IDENTITY, CURRENT and its
     * directory when it creates them, but that is its internals, not a
     * promise; one fsync of each here makes it ours (util/file.h). */
    char idp[PATH_MAX];
    int rc = ERR_OK;
    snprintf(idp, sizeof idp, "%s/IDENTITY", dir);
    if (access(idp, F_OK) == 0)
        rc = file_fsync_path(idp, eb);
    if (!rc)
        rc = file_fsync_dir(dir, eb);
    if (rc) {
        for (int i = 0; i < STORE_CF__COUNT; i++)
            rocksdb_column_family_handle_destroy(s->cf[i]);
        rocksdb_close(s->db);
        rocksdb_options_destroy(s->opts);
        free(s);
        return rc;
    }
    s->ro = rocksdb_readoptions_create();
    rocksdb_readoptions_set_verify_checksums(s->ro, 1);
    s->wo_sync = rocksdb_writeoptions_create();
    rocksdb_writeoptions_set_sync(s->wo_sync, 1);
    s->wo_nosync = rocksdb_writeoptions_create();
    *out = s;
    return ERR_OK;
}

void store_close(struct store *s)
{
    if (!s)
        return;
    for (int i = 0; i < STORE_CF__COUNT; i++)
        rocksdb_column_family_handle_destroy(s->cf[i]);
    rocksdb_close(s->db);
    rocksdb_readoptions_destroy(s->ro);
    rocksdb_writeoptions_destroy(s->wo_sync);
    rocksdb_writeoptions_destroy(s->wo_nosync);
    rocksdb_options_destroy(s->opts);
    free(s);
}

void store_val_release(struct store_val *v)
{
    if (v->handle == NULL) {
        /* nothing pinned */
    } else if ((uintptr_t)v->p == (uintptr_t)v->handle) {
        rocksdb_free(v->handle); /* a malloc'd copy (read through a batch) */
    } else {
        rocksdb_pinnableslice_destroy(v->handle);
    }
    v->handle = NULL;
    v->p = NULL;
    v->n = 0;
}

/* A point read pinned in RocksDB's cache (no copy), through read options ro. */
static int store_get_pinned(struct store *s, const rocksdb_readoptions_t *ro, enum store_cf cf,
                            const void *k, size_t kn, struct store_val *out, struct errbuf *eb)
{
    char *rerr = NULL;
    rocksdb_pinnableslice_t *ps = rocksdb_get_pinned_cf(s->db, ro, s->cf[cf], k, kn, &rerr);
    if (rerr)
        return store_err(rerr, eb, "get");
    if (!ps)
        return ERR_NOT_FOUND;
    size_t n = 0;
    const char *p = rocksdb_pinnableslice_value(ps, &n);
    if (!p) {
        rocksdb_pinnableslice_destroy(ps);
        return ERR_NOT_FOUND;
    }
    out->p = (const uint8_t *)p;
    out->n = n;
    out->handle = ps;
    return ERR_OK;
}

int store_get(struct store *s, enum store_cf cf, const void *k, size_t kn,
              struct store_batch *overlay, struct store_val *out, struct errbuf *eb)
{
    char *rerr = NULL;
    memset(out, 0, sizeof *out);
    if (overlay) {
        size_t n = 0;
        char *v = rocksdb_writebatch_wi_get_from_batch_and_db_cf(overlay->wb, s->db, s->ro, s->cf[cf],
                                                                  k, kn, &n, &rerr);
        if (rerr)
            return store_err(rerr, eb, "get");
        if (!v)
            return ERR_NOT_FOUND;
        out->p = (const uint8_t *)v;
        out->n = n;
        out->handle = v;
        return ERR_OK;
    }
    return store_get_pinned(s, s->ro, cf, k, kn, out, eb);
}

struct store_batch *store_batch_new(struct store *s)
{
    struct store_batch *b = calloc(1, sizeof *b);
    ASSERT(b != NULL);
    b->s = s;
    b->wb = rocksdb_writebatch_wi_create(0, 1 /* overwrite_keys: reads see the last write */);
    return b;
}

void store_batch_free(struct store_batch *b)
{
    if (!b)
        return;
    rocksdb_writebatch_wi_destroy(b->wb);
    free(b);
}

void store_batch_clear(struct store_batch *b)
{
    rocksdb_writebatch_wi_clear(b->wb);
}


void store_batch_put(struct store_batch *b, enum store_cf cf, const void *k, size_t kn,
                     const void *v, size_t vn)
{
    rocksdb_writebatch_wi_put_cf(b->wb, b->s->cf[cf], k, kn, v, vn);
}

void store_batch_put2(struct store_batch *b, enum store_cf cf, const void *k, size_t kn,
                      const void *v1, size_t n1, const void *v2, size_t n2)
{
    const char *parts[2] = {v1, v2};
    size_t sizes[2] = {n1, n2};
    const char *kp = k;
    rocksdb_writebatch_wi_putv_cf(b->wb, b->s->cf[cf], 1, &kp, &kn, 2, parts, sizes);
}

void store_batch_delete(struct store_batch *b, enum store_cf cf, const void *k, size_t kn)
{
    rocksdb_writebatch_wi_delete_cf(b->wb, b->s->cf[cf], k, kn);
}

int store_write(struct store *s, struct store_batch *b, bool sync, struct errbuf *eb)
{
    ASSERT(b->s == s);
    char *rerr = NULL;
    rocksdb_write_writebatch_wi(s->db, sync ? s->wo_sync : s->wo_nosync, b->wb, &rerr);
    if (rerr)
        return store_err(rerr, eb, "write");
    return ERR_OK;
}

int store_sync_wal(struct store *s, struct errbuf *eb)
{
    char *rerr = NULL;
    rocksdb_flush_wal(s->db, 1, &rerr);
    if (rerr)
        return store_err(rerr, eb, "WAL sync");
    return ERR_OK;
}

int store_probe(struct store *s, struct errbuf *eb)
{
    /* A synced write that changes nothing: a delete, in the unused default
     * column family, of a key nothing writes. */
    static const char key[] = "ddkv-probe";
    char *rerr = NULL;
    rocksdb_delete_cf(s->db, s->wo_sync, s->cf[STORE_CF_DEFAULT], key, sizeof key - 1, &rerr);
    if (rerr)
        return store_err(rerr, eb, "probe write");
    return ERR_OK;
}

int store_reopen(struct store *s, const char *dir, struct errbuf *eb)
{
    if (atomic_load(&s->live) > 0)
        return errf(eb, ERR_AGAIN, "%d iterators or snapshots still read the store", atomic_load(&s->live));
    for (int i = 0; i < STORE_CF__COUNT; i++)
        rocksdb_column_family_handle_destroy(s->cf[i]);
    rocksdb_close(s->db);
    s->db = NULL;
    const rocksdb_options_t *cf_opts[STORE_CF__COUNT];
    for (int i = 0; i < STORE_CF__COUNT; i++)
        cf_opts[i] = s->opts;
    store_wal_check(dir);
    char *rerr = NULL;
    s->db = rocksdb_open_column_families(s->opts, dir, STORE_CF__COUNT, cf_names, cf_opts, s->cf, &rerr);
    if (rerr) {
        s->db = NULL;
        return store_err(rerr, eb, "reopen");
    }
    return ERR_OK;
}

uint64_t store_memtable_bytes(struct store *s)
{
    /* A per-column-family property: without a family it is the default's. */
    uint64_t sum = 0;
    for (int i = 0; i < STORE_CF__COUNT; i++) {
        uint64_t v = 0;
        if (rocksdb_property_int_cf(s->db, s->cf[i], "rocksdb.cur-size-all-mem-tables", &v) == 0)
            sum += v;
    }
    return sum;
}

static struct store_iter *iter_make(struct store *s, enum store_cf cf, const struct store_snapshot *snap,
                                    bool fill_cache, const void *upper, size_t upper_n)
{
    struct store_iter *it = calloc(1, sizeof *it);
    ASSERT(it != NULL);
    it->s = s;
    atomic_fetch_add(&s->live, 1);
    it->ro = rocksdb_readoptions_create();
    rocksdb_readoptions_set_verify_checksums(it->ro, 1);
    if (!fill_cache)
        rocksdb_readoptions_set_fill_cache(it->ro, 0);
    if (snap) {
        ASSERT(snap->s == s);
        rocksdb_readoptions_set_snapshot(it->ro, snap->snap);
    }
    if (upper) {
        it->upper = malloc(upper_n ? upper_n : 1);
        ASSERT(it->upper != NULL);
        memcpy(it->upper, upper, upper_n);
        rocksdb_readoptions_set_iterate_upper_bound(it->ro, (const char *)it->upper, upper_n);
    }
    it->it = rocksdb_create_iterator_cf(s->db, it->ro, s->cf[cf]);
    return it;
}

struct store_iter *store_iter_new(struct store *s, enum store_cf cf, const void *upper, size_t upper_n)
{
    return iter_make(s, cf, NULL, true, upper, upper_n);
}

struct store_iter *store_iter_new_at(struct store *s, enum store_cf cf,
                                     const struct store_snapshot *snap, const void *upper,
                                     size_t upper_n)
{
    return iter_make(s, cf, snap, false, upper, upper_n);
}

void store_iter_seek(struct store_iter *it, const void *k, size_t kn)
{
    rocksdb_iter_seek(it->it, k, kn);
}

bool store_iter_valid(struct store_iter *it)
{
    return rocksdb_iter_valid(it->it);
}

void store_iter_next(struct store_iter *it)
{
    rocksdb_iter_next(it->it);
}

const uint8_t *store_iter_key(struct store_iter *it, size_t *n)
{
    return (const uint8_t *)rocksdb_iter_key(it->it, n);
}

const uint8_t *store_iter_value(struct store_iter *it, size_t *n)
{
    return (const uint8_t *)rocksdb_iter_value(it->it, n);
}

int store_iter_status(struct store_iter *it, struct errbuf *eb)
{
    char *rerr = NULL;
    rocksdb_iter_get_error(it->it, &rerr);
    if (rerr)
        return store_err(rerr, eb, "iterate");
    return ERR_OK;
}

void store_iter_free(struct store_iter *it)
{
    if (!it)
        return;
    rocksdb_iter_destroy(it->it);
    rocksdb_readoptions_destroy(it->ro);
    atomic_fetch_sub(&it->s->live, 1);
    free(it->upper);
    free(it);
}

struct store_snapshot *store_snapshot_new(struct store *s)
{
    struct store_snapshot *snap = calloc(1, sizeof *snap);
    ASSERT(snap != NULL);
    snap->s = s;
    atomic_fetch_add(&s->live, 1);
    snap->snap = rocksdb_create_snapshot(s->db);
    ASSERT(snap->snap != NULL);
    snap->ro = rocksdb_readoptions_create();
    rocksdb_readoptions_set_verify_checksums(snap->ro, 1);
    rocksdb_readoptions_set_snapshot(snap->ro, snap->snap);
    return snap;
}

void store_snapshot_free(struct store_snapshot *snap)
{
    if (!snap)
        return;
    rocksdb_readoptions_destroy(snap->ro);
    rocksdb_release_snapshot(snap->s->db, snap->snap);
    atomic_fetch_sub(&snap->s->live, 1);
    free(snap);
}

int store_get_at(struct store *s, enum store_cf cf, const struct store_snapshot *snap,
                 const void *k, size_t kn, struct store_val *out, struct errbuf *eb)
{
    if (!snap)
        return store_get(s, cf, k, kn, NULL, out, eb);
    ASSERT(snap->s == s);
    memset(out, 0, sizeof *out);
    return store_get_pinned(s, snap->ro, cf, k, kn, out, eb);
}

int store_wipe_cf(struct store *s, enum store_cf cf, bool sync, struct errbuf *eb)
{
    /* Keys are arbitrary bytes, so there is no key above them all to end a
     * range with: delete ["", last) as a range and the last key itself. */
    struct store_iter *it = iter_make(s, cf, NULL, false, NULL, 0);
    rocksdb_iter_seek_to_last(it->it);
    int rc = ERR_OK;
    if (!rocksdb_iter_valid(it->it)) {
        rc = store_iter_status(it, eb);
        store_iter_free(it);
        return rc;
    }
    size_t lastn = 0;
    const char *last = rocksdb_iter_key(it->it, &lastn);
    rocksdb_writebatch_t *wb = rocksdb_writebatch_create();
    if (lastn > 0)
        rocksdb_writebatch_delete_range_cf(wb, s->cf[cf], "", 0, last, lastn);
    rocksdb_writebatch_delete_cf(wb, s->cf[cf], last, lastn);
    store_iter_free(it); /* the batch holds its own copies of the keys */
    char *rerr = NULL;
    rocksdb_write(s->db, sync ? s->wo_sync : s->wo_nosync, wb, &rerr);
    rocksdb_writebatch_destroy(wb);
    if (rerr)
        rc = store_err(rerr, eb, "wipe");
    return rc;
}
