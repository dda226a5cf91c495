/* The storage engine boundary: the only interface to RocksDB.
 *
 * One RocksDB database per node, with a column family per kind of data so that
 * one atomic, optionally synced write batch can span them (they share one WAL):
 *   meta        node metadata: format version, applied index and Lamport time
 *   data        user keys -> record (see sm.h)
 *   raft_log    Raft log entries, big-endian uint64 index keys (consensus issue)
 *   raft_state  Raft hard state and snapshot metadata (consensus issue)
 * RocksDB's char **errptr strings become err codes here and nowhere else. */
#ifndef DDKV_KV_STORE_H
#define DDKV_KV_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "util/err.h"

enum store_cf { STORE_CF_DEFAULT = 0, STORE_CF_META, STORE_CF_DATA, STORE_CF_RAFT_LOG,
                STORE_CF_RAFT_STATE, STORE_CF__COUNT };

struct store;
struct store_batch;
struct store_iter;
struct store_snapshot;

struct store_options {
    size_t write_buffer_bytes; /* per column family memtable; small when several nodes share a host */
    int max_open_files;
};

/* Open (creating if missing) the database in dir. Fails with a clear message if
 * another process holds it. ERR_CORRUPT, with a message naming the file, when
 * the data dir is damaged: a WAL record damaged with whole records after it
 * (a torn tail is dropped and logged instead), a MANIFEST or table RocksDB
 * refuses, or any block of any column family whose checksum fails (every key
 * is read once, at open). */
int store_open(struct store **out, const char *dir, const struct store_options *opt,
               struct errbuf *eb);
void store_close(struct store *s);
/* Close after a clean stop with nothing failed: as store_close, then a marker
 * (DIR/ddkv-clean-stop) records that the newest WAL file ends whole, so the
 * next open refuses any damage in it, its last record included (otherwise
 * indistinguishable from a torn write, which it drops). */
void store_close_clean(struct store *s);

/* A value read from the store, pinned in RocksDB's cache: borrowed until
 * store_val_release. */
struct store_val {
    const uint8_t *p;
    size_t n;
    void *handle;
};
void store_val_release(struct store_val *v);

/* Point read. If overlay is non-NULL the read sees the batch's pending writes
 * first. Returns ERR_OK, ERR_NOT_FOUND, or an I/O error. */
int store_get(struct store *s, enum store_cf cf, const void *k, size_t kn,
              struct store_batch *overlay, struct store_val *out, struct errbuf *eb);

/* Write batches: atomic across column families, readable before commit. */
struct store_batch *store_batch_new(struct store *s);
void store_batch_free(struct store_batch *b);
void store_batch_clear(struct store_batch *b);
void store_batch_put(struct store_batch *b, enum store_cf cf, const void *k, size_t kn,
                     const void *v, size_t vn);
/* Put a value made of two parts (a header and a payload) without joining them. */
void store_batch_put2(struct store_batch *b, enum store_cf cf, const void *k, size_t kn,
                      const void *v1, size_t n1, const void *v2, size_t n2);
void store_batch_delete(struct store_batch *b, enum store_cf cf, const void *k, size_t kn);
/* Commit the batch; sync = fsync the WAL before returning (the batch is durable
 * once this returns ERR_OK). A full disk is ERR_NOSPACE. */
int store_write(struct store *s, struct store_batch *b, bool sync, struct errbuf *eb);
/* Make every write that returned before this call durable (fsync of the WAL).
 * Safe to call from another thread while the owner keeps writing unsynced:
 * RocksDB syncs the WAL without holding up writers, so a batch written
 * unsynced and then synced here costs the writer no wait (replica.c's log
 * syncer). A full disk is ERR_NOSPACE. */
int store_sync_wal(struct store *s, struct errbuf *eb);

/* One small synced write that changes no data: ERR_OK once the store takes
 * writes again after a failure (RocksDB holds a background error after a
 * failed write, e.g. ERR_NOSPACE, and refuses every write until it has
 * recovered from it by itself, which it does once space returns). */
int store_probe(struct store *s, struct errbuf *eb);

/* Whether any call on s (from any thread) has met a corruption since it was
 * opened: a block or record whose checksum failed, on a read, a write (a
 * compaction's background error) or an iteration. *msg is the first such
 * error, naming the file; borrowed until store_close. */
bool store_corruption(struct store *s, const char **msg);

/* Close and open the store again in place (the same struct: every pointer to
 * it stays good), as a restart would: RocksDB recovers from its WAL and
 * writes what it recovered into new, synced tables. After a failed fsync
 * this is the way back: RocksDB holds a write error it does not recover
 * from by itself, and what the failed sync covered is rewritten from memory
 * and synced rather than trusted to pages the kernel may have dropped.
 * ERR_AGAIN (nothing done) while iterators or snapshots are open. On any
 * other error the store is closed and unusable: the caller must stop. */
int store_reopen(struct store *s, const char *dir, struct errbuf *eb);

/* Bytes held in memtables, all column families (0 if unknown): about what a
 * flush of them needs on disk, which RocksDB's recovery from a failed write
 * does first. */
uint64_t store_memtable_bytes(struct store *s);

/* What the storage engine did in the background since the store opened, as
 * RocksDB counts it (all column families): memtable flushes, compactions,
 * write stalls (slowdowns and stops, each cause counted) and the time writes
 * spent stalled. All 0 on the simulated disk, which has no engine. */
struct store_engine_stats {
    uint64_t flushes, compactions, stalls, stall_us;
};
void store_engine_stats(struct store *s, struct store_engine_stats *out);
/* The parsers behind it (kv/engine_stats.c, pure text): one column family's
 * "rocksdb.cfstats-no-file-histogram" (flushes: the High priority row's
 * Comp(cnt); compactions: the Low row's; stalls: the causes of the
 * Stalls(count) line) and the "rocksdb.dbstats" text ("Cumulative stall:
 * H:M:S"). Each adds to *out and returns false, adding nothing, when the
 * text lacks a line it should have (another RocksDB's format). */
bool store_parse_cfstats(const char *text, struct store_engine_stats *out);
bool store_parse_dbstats(const char *text, struct store_engine_stats *out);

/* Forward iteration over keys >= start within [lower, upper) (bounds optional). */
struct store_iter *store_iter_new(struct store *s, enum store_cf cf, const void *upper, size_t upper_n);
/* The same over the store as the batch overlay would leave it: the batch's
 * pending puts and deletes seen as if written (no upper bound). */
struct store_iter *store_iter_new_overlay(struct store *s, enum store_cf cf, struct store_batch *overlay);
void store_iter_seek(struct store_iter *it, const void *k, size_t kn);
bool store_iter_valid(struct store_iter *it);
void store_iter_next(struct store_iter *it);
const uint8_t *store_iter_key(struct store_iter *it, size_t *n);
const uint8_t *store_iter_value(struct store_iter *it, size_t *n);
int store_iter_status(struct store_iter *it, struct errbuf *eb);
void store_iter_free(struct store_iter *it);

/* A consistent point-in-time view of every column family (a RocksDB snapshot):
 * reads through it see exactly the writes committed before store_snapshot_new
 * returned, whatever is written afterwards. Cheap to take; while held, RocksDB
 * keeps the versions it needs (compaction cannot drop them), so release it
 * once done. The handle may be used and released from any thread, but by one
 * thread at a time; release it before store_close. */
struct store_snapshot *store_snapshot_new(struct store *s);
void store_snapshot_free(struct store_snapshot *snap);

/* Point read as of the snapshot (NULL: the current state). */
int store_get_at(struct store *s, enum store_cf cf, const struct store_snapshot *snap,
                 const void *k, size_t kn, struct store_val *out, struct errbuf *eb);

/* An iterator as of the snapshot (NULL: the current state), for bulk scans:
 * the blocks it reads do not fill the block cache. Otherwise as store_iter_new. */
struct store_iter *store_iter_new_at(struct store *s, enum store_cf cf,
                                     const struct store_snapshot *snap, const void *upper,
                                     size_t upper_n);

/* Delete every key of the column family in one write (a range deletion, so
 * the cost does not grow with the number of keys); sync as in store_write.
 * Keys written concurrently by another thread may survive: the caller keeps
 * other writers off the column family meanwhile. */
int store_wipe_cf(struct store *s, enum store_cf cf, bool sync, struct errbuf *eb);

#endif
