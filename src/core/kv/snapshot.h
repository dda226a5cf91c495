/* Raft snapshots of the state machine: write an image of it, read the image in
 * chunks for sending, receive chunks into a file, install an image (crash-safe)
 * and finish an install a crash interrupted.
 *
 * The state machine's whole state is the `meta` and `data` column families; an
 * image is a consistent copy of every key of both at one applied index. The
 * `raft_log` and `raft_state` families never travel: they are the node's own.
 *
 * Why one image file and not a RocksDB checkpoint directory: a checkpoint
 * copies (hard-links) the whole database, so it would carry the sender's Raft
 * log and hard state along with the state machine, and installing one means
 * closing the live database and swapping directories under the running node.
 * Instead the writer takes a RocksDB snapshot (a cheap, consistent
 * point-in-time view) on the loop thread right after the state machine
 * committed the snapshot index, and a worker thread serializes meta + data as
 * seen through it into one file while the loop keeps applying. The file is
 * one stream of bytes, easy to send in chunks, to checksum and to verify before
 * anything is touched; installing it is ordinary writes into the open database.
 *
 * Image file, all integers big-endian (also in docs/disk-format.md):
 *
 *   offset  size  field
 *   0       8     magic "DDKVSNP1"
 *   8       8     index   the applied index the image is the state at
 *   16      8     term    the term of the entry at index
 *   24      ...   records, each:
 *                   1   cf     1 = meta, 2 = data
 *                   4   klen   (<= SNAP_MAX_KEY)
 *                   4   vlen   (<= SNAP_MAX_VALUE)
 *                   klen key, vlen value
 *                 every meta record before every data record, keys in strictly
 *                 increasing bytewise order within a column family
 *   end-13  1     0 (the trailer's cf byte)
 *   end-12  8     count   number of records
 *   end-4   4     CRC-32C of every byte before the trailer (header + records)
 *
 * A valid image also holds meta "applied_index" equal to the header's index
 * (or, at index 0 only, no such key).
 *
 * Installing (snap_install_start) is atomic in effect and crash-safe:
 *   a. verify the whole file (magic, framing, order, count, checksum) before
 *      touching the database: a damaged image is ERR_CORRUPT and changes nothing;
 *   b. one synced write: the caller's raft_side batch (snapshot metadata, log
 *      truncation) plus the marker raft_state "snap_install" -> absolute path;
 *   c. delete every key of meta and data;
 *   d. load the records, in batches of about 4 MiB;
 *   e. one synced write deleting the marker (it also makes c and d durable:
 *      the column families share one WAL).
 * A crash after b leaves the marker, and snap_install_recover, called at start
 * before anything reads the state machine, redoes c-e from the named file,
 * which was fsync'd before b. A crash before b leaves the database as it was. */
#ifndef DDKV_KV_SNAPSHOT_H
#define DDKV_KV_SNAPSHOT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "kv/store.h"
#include "util/err.h"

#define SNAP_MAGIC "DDKVSNP1"
#define SNAP_HEADER_BYTES 24
#define SNAP_TRAILER_BYTES 13
#define SNAP_CF_META 1
#define SNAP_CF_DATA 2
/* Bounds a reader holds a record in memory against (keys are <= 4 KiB and
 * values <= 1 MiB + record header in ddkv; meta values are small). */
#define SNAP_MAX_KEY (64u << 10)
#define SNAP_MAX_VALUE (16u << 20)
/* The install marker's key in STORE_CF_RAFT_STATE (value: the image's absolute path). */
#define SNAP_INSTALL_MARKER "snap_install"
/* The receiver's file for a transfer in progress, in its directory. */
#define SNAP_RECV_TMP "recv.tmp"

/* A background job: writing an image or installing one. */
struct snap_job;

/* dir/snap-<index>-<term>.<ext> (decimal), the names snap_prune knows: ext
 * "snap" for images this node wrote, "recv" for images it received.
 * ERR_TOO_LARGE if it does not fit in cap. */
int snap_path(char *out, size_t cap, const char *dir, uint64_t index, uint64_t term,
              const char *ext, struct errbuf *eb);

/* ---- Writing (any node) ---- */

/* Start writing the image of the state machine at `index` (whose entry has
 * `term`) to path. Call on the loop thread right after the state machine
 * committed applied_index == index: the RocksDB snapshot is taken here, so
 * the image is exactly the state at index however much is applied meanwhile.
 * ERR_BAD_INPUT if the committed applied index is not index. A worker thread
 * writes path.tmp, fsyncs it, renames it to path and fsyncs the directory; on
 * failure neither file is left. One job per path at a time. */
int snap_write_start(struct store *st, const char *path, uint64_t index, uint64_t term,
                     struct snap_job **out, struct errbuf *eb);
/* The same, on the calling thread; returns when the image is durable. */
int snap_write(struct store *st, const char *path, uint64_t index, uint64_t term,
               struct errbuf *eb);

/* Has the job finished? Never blocks. When true, *rc is its result (and eb
 * says more if it failed). Poll from one thread (the loop's tick). */
bool snap_job_done(struct snap_job *j, int *rc, struct errbuf *eb);
/* Wait for the thread and release everything, the RocksDB snapshot included
 * (so call it before store_close). A write job still running is cancelled
 * first (its .tmp file is removed); an install job is always waited for.
 * NULL is a no-op. */
void snap_job_free(struct snap_job *j);

/* ---- Sending (leader): backs raft_snapshot_source.read ---- */

/* Up to cap bytes of the file at offset into buf: *n bytes, *last when they
 * reach the end of the file. ERR_NOT_FOUND when the file is gone,
 * ERR_BAD_INPUT for an offset past the end. Opens the file each call. */
int snap_read(const char *path, uint64_t offset, uint8_t *buf, size_t cap, size_t *n,
              bool *last, struct errbuf *eb);
/* The header's index and term and the file's size, from the header alone
 * (ERR_CORRUPT when there is no valid header; the rest is not checked). */
int snap_file_info(const char *path, uint64_t *index, uint64_t *term, uint64_t *bytes,
                   struct errbuf *eb);
/* Check the whole file as an install would, reading it once; the outputs
 * (any may be NULL) are filled on ERR_OK. */
int snap_verify(const char *path, uint64_t *index, uint64_t *term, uint64_t *records,
                struct errbuf *eb);

/* ---- Receiving (follower), on the loop thread ---- */

/* A transfer in progress. The state is in memory only: after a restart any
 * chunk but one at offset 0 is refused, and the sender starts over. */
struct snap_recv {
    int fd;             /* dir/recv.tmp while a transfer is open, else -1 */
    uint64_t index, term;
    uint64_t next;      /* bytes received: the offset the next chunk must have */
};

void snap_recv_init(struct snap_recv *r);
/* Abandon any transfer: close and remove dir/recv.tmp. */
void snap_recv_reset(struct snap_recv *r, const char *dir);
/* Store one chunk of snapshot (index, term). Offset 0 starts a new transfer
 * into dir/recv.tmp (truncated), dropping any other. Later chunks must carry
 * the same index and term and continue exactly where the last one ended:
 * anything else is ERR_BAD_INPUT and abandons the transfer (the sender starts
 * over from 0). Chunks are appended without fsync. With `last`, the file's
 * header must name (index, term) (ERR_BAD_INPUT if not); it is fsync'd,
 * renamed to dir/snap-<index>-<term>.recv, the directory fsync'd, and that path
 * written to done_path. Any error abandons the transfer. */
int snap_recv_chunk(struct snap_recv *r, const char *dir, uint64_t index, uint64_t term,
                    uint64_t offset, const uint8_t *data, size_t len, bool last, char *done_path,
                    size_t done_cap, struct errbuf *eb);

/* ---- Installing (follower) ---- */

/* Install the image at path on a worker thread (steps a-e above). raft_side
 * (may be NULL) is a batch of st holding what the Raft side must make durable
 * together with the decision to install (snapshot metadata, log truncation);
 * the job borrows it until snap_job_done reports, and leaves it cleared
 * whether or not it was written. While the job runs the caller must not read
 * or write the state machine (meta and data are replaced piece by piece) nor
 * touch raft_side; other column families may be used. On success the caller
 * reopens its struct sm (sm_close, sm_open) to pick up the new applied index.
 * A damaged image fails with ERR_CORRUPT (a missing one ERR_NOT_FOUND)
 * before anything is written. A failure after the marker was written (a
 * storage error while loading; snap_install_pending then finds the marker)
 * leaves the state machine incomplete: treat it like any storage failure
 * (fence the node); a restart finishes the install in snap_install_recover. */
int snap_install_start(struct store *st, const char *path, struct store_batch *raft_side,
                       struct snap_job **out, struct errbuf *eb);
/* The same, on the calling thread. */
int snap_install(struct store *st, const char *path, struct store_batch *raft_side,
                 struct errbuf *eb);

/* At start, before anything reads the state machine: if an install was
 * interrupted (the marker is present), finish it from the file the marker
 * names (steps c-e). ERR_OK when there is no marker or the install completed;
 * ERR_CORRUPT, saying which file, when that file is missing or damaged (the
 * state machine is then incomplete and the node must not serve it).
 * Idempotent. */
int snap_install_recover(struct store *st, struct errbuf *eb);

/* The install's steps one at a time, for tests that stop between them as a
 * crash would, and for recovery. snap_install_mark is step b (it does not
 * verify the file: the caller ran snap_verify); snap_install_load is steps
 * c-e; snap_install_pending reads the marker: ERR_OK and the path in out, or
 * ERR_NOT_FOUND when no install is pending. */
int snap_install_mark(struct store *st, const char *path, struct store_batch *raft_side,
                      struct errbuf *eb);
int snap_install_load(struct store *st, const char *path, struct errbuf *eb);
int snap_install_pending(struct store *st, char *out, size_t cap, struct errbuf *eb);

/* ---- Housekeeping ---- */

/* Remove from dir the snapshot files older than keep_path (a
 * snap-<index>-<term>.snap or .recv in dir, which stays): every
 * snap-<i>-<t>.snap, .recv and .snap.tmp with i below keep's index, or with
 * the same index and another name. Newer ones (a write or install that may be
 * in progress) and recv.tmp (the receiver's, see snap_recv_reset) stay. Do not
 * prune the file of a pending install (after snap_install_recover it is none).
 * ERR_BAD_INPUT if keep_path is not such a name; ERR_IO if a removal failed
 * (the others are still done). */
int snap_prune(const char *dir, const char *keep_path, struct errbuf *eb);

/* Verify every image in dir (snap-*.snap and .recv) whole, as an install
 * would: ERR_CORRUPT (or ERR_IO) naming the first that fails; ERR_OK when
 * all pass or dir does not exist. For start-up: an image is what this member
 * sends a follower that is behind, and a damaged one means its disk changed
 * bytes it had written and synced. */
int snap_check_dir(const char *dir, struct errbuf *eb);

#endif
