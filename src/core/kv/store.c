/* RocksDB behind the store interface (the one file that includes rocksdb/c.h). */
#include "kv/store.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <rocksdb/c.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <stdatomic.h>
#include <string.h>
#include <sys/stat.h>
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

/* The block cache of each store (one per member). */
#define STORE_BLOCK_CACHE_BYTES (64u << 20)

struct store {
    char *dir;
    rocksdb_t *db;
    rocksdb_options_t *opts;
    rocksdb_column_family_handle_t *cf[STORE_CF__COUNT];
    rocksdb_readoptions_t *ro;
    rocksdb_writeoptions_t *wo_sync;
    rocksdb_writeoptions_t *wo_nosync;
    /* The first corruption any call reported (store_corruption): claimed
     * once by whichever thread saw it, published after the message. */
    atomic_int corrupt_claim;
    atomic_int corrupt;
    char corrupt_msg[512];
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

/* Translate a RocksDB error string (which we free) into our code. A
 * corruption (a block or record whose checksum fails; RocksDB's message names
 * the file) is also latched in s for store_corruption. */
static int store_err(struct store *s, char *rerr, struct errbuf *eb, const char *what)
{
    int code = ERR_IO;
    if (strstr(rerr, "No space left") || strstr(rerr, "NoSpace"))
        code = ERR_NOSPACE;
    else if (strstr(rerr, "Corruption"))
        code = ERR_CORRUPT;
    errf(eb, code, "%s: %s", what, rerr);
    rocksdb_free(rerr);
    int unclaimed = 0;
    if (code == ERR_CORRUPT && s && atomic_compare_exchange_strong(&s->corrupt_claim, &unclaimed, 1)) {
        snprintf(s->corrupt_msg, sizeof s->corrupt_msg, "%s", eb->msg);
        atomic_store(&s->corrupt, 1);
    }
    return code;
}

bool store_corruption(struct store *s, const char **msg)
{
    if (!atomic_load(&s->corrupt))
        return false;
    *msg = s->corrupt_msg;
    return true;
}

/* --- the write-ahead log, looked at before RocksDB replays it ---
 *
 * Two kinds of damage look alike to RocksDB and must not be treated alike.
 *
 * A torn tail: a crash (a power cut) in the middle of unsynced appends leaves
 * the newest WAL file ending in a record cut short, garbage in the page the
 * disk was writing, or unwritten space (zeros) followed by a part of the last
 * write. Nothing in it was acknowledged: every write that matters (Raft
 * entries, hard state) is acknowledged only after a sync that covered it, and
 * a sync covers every record appended before it. RocksDB's point-in-time
 * recovery (store_open) replays every whole record up to the first bad one
 * and drops the rest: right for a torn tail.
 *
 * Rot: a record in the synced part, with whole records after it, whose bytes
 * changed on the disk. Point-in-time recovery would drop it *and every record
 * after it* and open "successfully": acknowledged entries and hard state gone
 * in silence. So this walk finds the first bad record and looks past it for a
 * whole record (a known type, a length that fits, a matching CRC-32C): later
 * in its block at any offset, at the start of every later block (a block
 * starts with a record) and of every later WAL file. If one is there and the
 * bad record's header is not unwritten space (zeros, which is what a power
 * cut leaves between the synced end and a later surviving write), the damage
 * is in the middle: store_open refuses the data dir, naming the file and the
 * offset. A bad record with nothing whole after it is a torn tail: logged,
 * and dropped by RocksDB as before. (The one case this cannot tell apart is
 * rot in the very last record of the newest file: see ARCHITECTURE.md.)
 *
 * The format is RocksDB's (db/log_format.h): 32 KiB blocks of records, each
 * with a 7-byte header [masked CRC-32C u32 LE][length u16 LE][type u8] (11
 * bytes for the recyclable types, with the log number), never crossing a
 * block; fewer than 7 bytes left in a block are padding. The CRC covers the
 * type byte, the log number if any, and the payload. */
#define WAL_BLOCK 32768u
#define WAL_HEADER 7u
#define WAL_RECYCLABLE_HEADER 11u
#define WAL_FILES_MAX 64

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

/* Whether a whole record begins at off of the block p (its first n bytes). */
static bool wal_record_at(const uint8_t *p, size_t n, size_t off)
{
    if (off >= n || n - off < WAL_HEADER || WAL_BLOCK - off < WAL_HEADER)
        return false;
    uint32_t len = (uint32_t)p[off + 4] | (uint32_t)p[off + 5] << 8;
    uint8_t type = p[off + 6];
    /* 1-4 full/first/middle/last, 5-8 their recyclable forms, 9 the
     * compression type record, 10-11 (newer RocksDB) the timestamp size
     * record and its recyclable form; anything else is not a record. */
    if (type == 0 || type > 11)
        return false;
    size_t hdr = (type >= 5 && type <= 8) || type == 11 ? WAL_RECYCLABLE_HEADER : WAL_HEADER;
    if (hdr + len > n - off)
        return false;
    uint32_t got = crc32c(p + off + 6, 1 + (hdr - WAL_HEADER) + len);
    uint32_t want = (uint32_t)p[off] | (uint32_t)p[off + 1] << 8 | (uint32_t)p[off + 2] << 16 |
                    (uint32_t)p[off + 3] << 24;
    return got == wal_unmask(want);
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
        if (p[off + 6] == 0 && wal_all_zero(p + off, n - off))
            return n;
        if (!wal_record_at(p, n, off))
            return off;
        uint8_t type = p[off + 6];
        size_t hdr = (type >= 5 && type <= 8) || type == 11 ? WAL_RECYCLABLE_HEADER : WAL_HEADER;
        off += hdr + ((size_t)p[off + 4] | (size_t)p[off + 5] << 8);
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

/* Read the block of fd at pos (at most WAL_BLOCK bytes, fewer at the end of
 * the file): its length, 0 at or past the end or on a read error. */
static size_t wal_read_block(int fd, off_t size, off_t pos, uint8_t *block)
{
    if (pos >= size)
        return 0;
    size_t want = (size_t)(size - pos) < WAL_BLOCK ? (size_t)(size - pos) : WAL_BLOCK;
    return pread(fd, block, want, pos) == (ssize_t)want ? want : 0;
}

/* Open WAL file dir/name for reading: its descriptor (-1 if it cannot be
 * opened), its path in path and its size in *size. */
static int wal_open(const char *dir, const char *name, char *path, size_t cap, off_t *size)
{
    snprintf(path, cap, "%s/%s", dir, name);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd >= 0)
        *size = lseek(fd, 0, SEEK_END);
    return fd;
}

/* After damage at offset at of block bpos in names[fi]: where the first
 * whole record after it is (file index and offset), false if none. */
static bool wal_find_after(const char *dir, char **names, size_t nn, size_t fi, off_t bpos, size_t at,
                           uint8_t *block, size_t *found_file, off_t *found_off)
{
    for (size_t i = fi; i < nn; i++) {
        char path[4200];
        off_t size;
        int fd = wal_open(dir, names[i], path, sizeof path, &size);
        if (fd < 0)
            continue;
        off_t pos = i == fi ? bpos : 0;
        bool hit = false;
        for (; !hit && pos < size; pos += WAL_BLOCK) {
            size_t n = wal_read_block(fd, size, pos, block);
            if (n == 0)
                break;
            if (i == fi && pos == bpos) {
                /* The damaged block: any offset after the bad record's start. */
                for (size_t o = at + 1; o + WAL_HEADER <= n && !hit; o++)
                    if (wal_record_at(block, n, o)) {
                        *found_off = pos + (off_t)o;
                        hit = true;
                    }
            } else if (wal_record_at(block, n, 0)) {
                *found_off = pos;
                hit = true;
            }
        }
        close(fd);
        if (hit) {
            *found_file = i;
            return true;
        }
    }
    return false;
}

/* The WAL files in dir, oldest first (at most WAL_FILES_MAX; the caller
 * frees each name). */
static size_t wal_names(const char *dir, char **names)
{
    DIR *d = opendir(dir);
    if (!d)
        return 0;
    size_t nn = 0;
    struct dirent *de;
    while ((de = readdir(d)) != NULL && nn < WAL_FILES_MAX) {
        size_t l = strlen(de->d_name);
        if (l > 4 && l < 32 && strcmp(de->d_name + l - 4, ".log") == 0 &&
            strspn(de->d_name, "0123456789") == l - 4 && (names[nn] = strdup(de->d_name)) != NULL)
            nn++;
    }
    closedir(d);
    qsort(names, nn, sizeof names[0], wal_name_cmp);
    return nn;
}

/* --- the clean-stop marker ---
 *
 * The one damage the walk cannot tell from a torn write is a bad last record
 * of the newest WAL file. After a clean stop there is no torn write: a node
 * that stopped cleanly with a healthy store writes STORE_CLEAN_FILE (after
 * RocksDB closed: the newest WAL's name and size), and the next open, finding
 * it, holds that file to be whole to exactly that size. The marker is removed
 * (durably) before RocksDB opens, so a crash of the next run is judged by the
 * ordinary rules again. */
#define STORE_CLEAN_FILE "ddkv-clean-stop"

struct wal_clean {
    char name[32];
    long long size;
};

/* ERR_NOT_FOUND without a marker; ERR_CORRUPT if it cannot be read. */
static int store_clean_read(const char *dir, struct wal_clean *c, struct errbuf *eb)
{
    char path[PATH_MAX], buf[128];
    snprintf(path, sizeof path, "%s/" STORE_CLEAN_FILE, dir);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return errno == ENOENT ? ERR_NOT_FOUND : file_io_err(eb, errno, "open", path);
    ssize_t n = read(fd, buf, sizeof buf - 1);
    close(fd);
    buf[n > 0 ? n : 0] = 0;
    if (n <= 0 || sscanf(buf, "ddkv clean stop 1 %31s %lld", c->name, &c->size) != 2 || c->size < 0)
        return errf(eb, ERR_CORRUPT, "clean-stop marker %s is unreadable", path);
    return ERR_OK;
}

/* Write the marker for the WAL files of dir as they are now (RocksDB closed). */
static void store_clean_write(const char *dir)
{
    char *names[WAL_FILES_MAX];
    size_t nn = wal_names(dir, names);
    char path[PATH_MAX], walp[PATH_MAX], text[128];
    struct stat st;
    snprintf(path, sizeof path, "%s/" STORE_CLEAN_FILE, dir);
    if (nn > 0) {
        snprintf(walp, sizeof walp, "%s/%s", dir, names[nn - 1]);
        if (stat(walp, &st) == 0) {
            int tl = snprintf(text, sizeof text, "ddkv clean stop 1 %s %lld\n", names[nn - 1],
                              (long long)st.st_size);
            struct errbuf eb;
            if (file_write_durable(path, text, (size_t)tl, 0600, &eb) != ERR_OK)
                log_warn("cannot mark the clean stop (%s): the next start checks the log as after "
                         "a crash", eb.msg);
        }
    }
    for (size_t i = 0; i < nn; i++)
        free(names[i]);
}

/* Walk every WAL file in dir. A torn tail is logged and left to RocksDB;
 * damage with whole records after it is ERR_CORRUPT, naming the file. After a
 * clean stop (clean non-NULL) the newest file must be exactly as the marker
 * says and whole. A failure to read is not ours to report: RocksDB's open
 * will say. */
static int store_wal_check(const char *dir, const struct wal_clean *clean, struct errbuf *eb)
{
    char *names[WAL_FILES_MAX];
    size_t nn = wal_names(dir, names);
    uint8_t *block = malloc(WAL_BLOCK);
    int rc = ERR_OK;
    if (clean && (nn == 0 || strcmp(names[nn - 1], clean->name) != 0))
        rc = errf(eb, ERR_CORRUPT, "write-ahead log %s/%s, the newest at the last clean stop, is %s",
                  dir, clean->name, nn == 0 ? "missing" : "no longer the newest");
    bool damaged = rc != ERR_OK;
    for (size_t i = 0; i < nn && !damaged && block; i++) {
        char path[4200];
        off_t size;
        int fd = wal_open(dir, names[i], path, sizeof path, &size);
        if (fd < 0)
            continue;
        bool strict = clean && i + 1 == nn;
        if (strict && size != clean->size) {
            rc = errf(eb, ERR_CORRUPT, "write-ahead log %s holds %lld bytes, %lld at the last clean stop",
                      path, (long long)size, clean->size);
            damaged = true;
        }
        for (off_t pos = 0; !damaged && pos < size; pos += WAL_BLOCK) {
            size_t n = wal_read_block(fd, size, pos, block);
            if (n == 0)
                break;
            size_t ok = wal_block_valid(block, n);
            if (ok == n)
                continue;
            damaged = true;
            unsigned long long at = (unsigned long long)pos + ok;
            /* Unwritten space (zeros) where a record should begin: what a
             * power cut leaves between the synced end and a later part of
             * an unsynced write that reached the disk. */
            bool hole = n - ok >= WAL_HEADER && wal_all_zero(block + ok, WAL_HEADER);
            /* A header whose record the end of the file cuts short: an
             * append that stopped part-way (a crash, a full disk). */
            size_t len = n - ok >= WAL_HEADER ? ((size_t)block[ok + 4] | (size_t)block[ok + 5] << 8) : 0;
            bool cut = pos + (off_t)n == size && (n - ok < WAL_HEADER || (ok + WAL_HEADER + len > n &&
                                                                          ok + WAL_HEADER + len <= WAL_BLOCK));
            size_t ff = 0;
            off_t fo = 0;
            if (strict) {
                rc = errf(eb, ERR_CORRUPT,
                          "write-ahead log %s: damaged record at offset %llu, in a log a clean stop "
                          "left whole (its disk changed synced bytes)",
                          path, at);
            } else if (!hole && wal_find_after(dir, names, nn, i, pos, ok, block, &ff, &fo) &&
                       (ff == i || !cut)) {
                rc = errf(eb, ERR_CORRUPT,
                          "write-ahead log %s: damaged record at offset %llu with whole records after "
                          "it (%s offset %llu): its disk changed synced bytes",
                          path, at, ff == i ? "at" : names[ff], (unsigned long long)fo);
            } else if (i + 1 == nn) {
                log_warn("write-ahead log %s ends in a torn write: the last %llu bytes (from offset "
                         "%llu) are not a whole record%s; recovering to the last whole record before "
                         "them and dropping them (an append a crash cut short: nothing in it was "
                         "acknowledged)",
                         path, (unsigned long long)size - at, at,
                         hole ? " (unwritten space, then the rest of an unsynced write)" : "");
            } else {
                log_warn("write-ahead log %s ends in a torn write at offset %llu (%zu newer log files "
                         "follow): recovery keeps every record before it",
                         path, at, nn - i - 1);
            }
        }
        close(fd);
    }
    free(block);
    for (size_t i = 0; i < nn; i++)
        free(names[i]);
    return rc;
}

/* Read every key of every column family once, each block's checksum
 * verified (not cached): an SST whose bytes changed on the disk since it was
 * written is found now, at start, with RocksDB's message naming the file,
 * instead of by a read or a compaction later. RocksDB itself checks at open
 * only what it opens (the MANIFEST, each table's footer and index). */
static int store_verify(struct store *s, struct errbuf *eb)
{
    for (int cf = 0; cf < STORE_CF__COUNT; cf++) {
        struct store_iter *it = store_iter_new_at(s, (enum store_cf)cf, NULL, NULL, 0);
        rocksdb_iter_seek_to_first(it->it);
        while (rocksdb_iter_valid(it->it))
            rocksdb_iter_next(it->it);
        struct errbuf e2;
        int rc = store_iter_status(it, &e2);
        store_iter_free(it);
        if (rc)
            return errf(eb, rc, "verify %s: %s", cf_names[cf], e2.msg);
    }
    return ERR_OK;
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
    /* Point reads of a large state (bench/scale.sh): a bloom filter per
     * table (10 bits a key, about 1% false positives) spares the tables a
     * key is not in, and a block cache of STORE_BLOCK_CACHE_BYTES keeps the
     * hot index and data blocks decoded. Older tables without a filter
     * still read (the filter is only consulted where it exists). */
    {
        rocksdb_block_based_table_options_t *bbo = rocksdb_block_based_options_create();
        rocksdb_cache_t *cache = rocksdb_cache_create_lru(STORE_BLOCK_CACHE_BYTES);
        rocksdb_block_based_options_set_block_cache(bbo, cache);
        rocksdb_block_based_options_set_filter_policy(bbo, rocksdb_filterpolicy_create_bloom_full(10));
        rocksdb_options_set_block_based_table_factory(s->opts, bbo);
        rocksdb_cache_destroy(cache); /* the table factory holds its own reference */
        rocksdb_block_based_options_destroy(bbo);
    }
    /* A crash can tear the last WAL append. Point-in-time recovery replays
     * every whole record up to the first bad one and drops the rest, so a
     * torn tail (never acknowledged) is truncated and the node starts. It
     * is RocksDB's default too, set here so it cannot change under us. But
     * it drops a damaged record in the middle just as silently, with every
     * record after it: store_wal_check tells the two apart first and
     * refuses the second. The other modes cannot: absolute consistency (1)
     * refuses every torn tail (a power cut would leave a member that never
     * boots); tolerating corrupted tail records (0) refuses a torn record
     * whose length survived but whose bytes did not (garbage in the page
     * the disk was writing: the same member that never boots); skipping
     * any corrupted record (3) replays writes past a hole, which breaks the
     * Raft log's "prefix" promise. */
    rocksdb_options_set_wal_recovery_mode(s->opts, rocksdb_point_in_time_recovery);
    /* Also RocksDB's default, pinned: a corruption found while opening
     * (the MANIFEST, a table's footer or index, its size against the
     * MANIFEST) or by a background job fails the open or stops writes
     * instead of being skipped. */
    rocksdb_options_set_paranoid_checks(s->opts, 1);
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
    struct wal_clean clean;
    int wrc = store_clean_read(dir, &clean, eb);
    if (wrc == ERR_OK || wrc == ERR_NOT_FOUND)
        wrc = store_wal_check(dir, wrc == ERR_OK ? &clean : NULL, eb);
    if (wrc == ERR_OK) {
        char cp[PATH_MAX];
        snprintf(cp, sizeof cp, "%s/" STORE_CLEAN_FILE, dir);
        if (unlink(cp) == 0)
            wrc = file_fsync_dir(dir, eb);
        else if (errno != ENOENT)
            wrc = file_io_err(eb, errno, "remove", cp);
    }
    if (wrc) {
        rocksdb_options_destroy(s->opts);
        free(s);
        return wrc;
    }
    char *rerr = NULL;
    s->db = rocksdb_open_column_families(s->opts, dir, STORE_CF__COUNT, cf_names, cf_opts, s->cf, &rerr);
    if (rerr) {
        int code;
        if (strstr(rerr, "lock") || strstr(rerr, "LOCK")) {
            code = errf(eb, ERR_IO, "data dir %s is in use by another process (%s)", dir, rerr);
            rocksdb_free(rerr);
        } else {
            code = store_err(NULL, rerr, eb, "open");
        }
        rocksdb_options_destroy(s->opts);
        free(s);
        return code;
    }
    s->dir = strdup(dir);
    ASSERT(s->dir != NULL);
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
    if (!rc)
        rc = store_verify(s, eb);
    if (rc) {
        for (int i = 0; i < STORE_CF__COUNT; i++)
            rocksdb_column_family_handle_destroy(s->cf[i]);
        rocksdb_close(s->db);
        rocksdb_options_destroy(s->opts);
        free(s->dir);
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

static void store_close_db(struct store *s)
{
    for (int i = 0; i < STORE_CF__COUNT; i++)
        rocksdb_column_family_handle_destroy(s->cf[i]);
    rocksdb_close(s->db);
    rocksdb_readoptions_destroy(s->ro);
    rocksdb_writeoptions_destroy(s->wo_sync);
    rocksdb_writeoptions_destroy(s->wo_nosync);
    rocksdb_options_destroy(s->opts);
}

void store_close(struct store *s)
{
    if (!s)
        return;
    store_close_db(s);
    free(s->dir);
    free(s);
}

void store_close_clean(struct store *s)
{
    if (!s)
        return;
    store_close_db(s);
    store_clean_write(s->dir);
    free(s->dir);
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
        return store_err(s, rerr, eb, "get");
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
            return store_err(s, rerr, eb, "get");
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
        return store_err(s, rerr, eb, "write");
    return ERR_OK;
}

int store_sync_wal(struct store *s, struct errbuf *eb)
{
    char *rerr = NULL;
    rocksdb_flush_wal(s->db, 1, &rerr);
    if (rerr)
        return store_err(s, rerr, eb, "WAL sync");
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
        return store_err(s, rerr, eb, "probe write");
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
    /* The same check as at start (no clean-stop marker: this is not one):
     * a torn tail is dropped, a record damaged in the middle refused. */
    int wrc = store_wal_check(dir, NULL, eb);
    if (wrc)
        return wrc;
    char *rerr = NULL;
    s->db = rocksdb_open_column_families(s->opts, dir, STORE_CF__COUNT, cf_names, cf_opts, s->cf, &rerr);
    if (rerr) {
        s->db = NULL;
        return store_err(NULL, rerr, eb, "reopen");
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

void store_engine_stats(struct store *s, struct store_engine_stats *out)
{
    *out = (struct store_engine_stats){0};
    if (!s->db)
        return; /* closed by a reopen that failed: the node is stopping */
    for (int i = 0; i < STORE_CF__COUNT; i++) {
        char *t = rocksdb_property_value_cf(s->db, s->cf[i], "rocksdb.cfstats-no-file-histogram");
        store_parse_cfstats(t, out);
        free(t);
    }
    char *t = rocksdb_property_value(s->db, "rocksdb.dbstats");
    store_parse_dbstats(t, out);
    free(t);
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

struct store_iter *store_iter_new_overlay(struct store *s, enum store_cf cf, struct store_batch *overlay)
{
    ASSERT(overlay->s == s);
    /* No upper bound: the merged iterator's handling of a bound on its base
     * has varied between RocksDB releases; the caller stops at its range's end. */
    struct store_iter *it = iter_make(s, cf, NULL, true, NULL, 0);
    /* The merged iterator takes over the base iterator (the C wrapper frees
     * only its own struct). */
    it->it = rocksdb_writebatch_wi_create_iterator_with_base_cf(overlay->wb, it->it, s->cf[cf]);
    return it;
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
        return store_err(it->s, rerr, eb, "iterate");
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
        rc = store_err(s, rerr, eb, "wipe");
    return rc;
}
