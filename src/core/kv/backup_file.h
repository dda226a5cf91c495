/* Backup files: what `ddkv snapshot save` writes and `ddkv snapshot restore`
 * reads. A backup is one state-machine image (the Raft snapshot image of
 * kv/snapshot.h, unchanged) behind a header that says where it came from, and
 * a SHA-256 over everything before it.
 *
 * File layout, all integers big-endian (also in docs/disk-format.md):
 *
 *   offset  size  field
 *   0       8     magic "DDKVBAK1"
 *   8       4     format version (1)
 *   12      4     header bytes H: the offset of the image (82 + M)
 *   16      8     cluster id of the cluster it was saved from
 *   24      8     index       the applied index the image is the state at
 *   32      8     term        the term of the entry at index
 *   40      8     revision    the revision at index
 *   48      8     lamport     the applied Lamport time at index
 *   56      8     keys        number of keys
 *   64      8     image bytes N
 *   72      8     created     Unix time in ms, on the saving client's clock
 *   80      2     M           length of the member list (<= 4096)
 *   82      M     members     "name=host:port,..." of the source cluster
 *   H       N     image       a snapshot image ("DDKVSNP1", its own CRC-32C trailer)
 *   H+N     32    SHA-256 of bytes [0, H+N)
 *
 * A file is accepted only whole: the size must be exactly H + N + 32, the
 * SHA-256 must match, and the image's own header and CRC-32C must agree with
 * the backup header. Writers produce FILE.tmp, fsync it, rename it to FILE
 * and fsync the directory, so FILE is either absent or complete. */
#ifndef DDKV_KV_BACKUP_FILE_H
#define DDKV_KV_BACKUP_FILE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "util/err.h"

#define BACKUP_MAGIC "DDKVBAK1"
#define BACKUP_VERSION 1u
#define BACKUP_FIXED_BYTES 82u
#define BACKUP_MAX_MEMBERS 4096u
#define BACKUP_SHA_BYTES 32u

struct backup_header {
    uint64_t cluster_id, index, term, revision, lamport, keys;
    uint64_t image_bytes;
    uint64_t created_ms;
    char members[BACKUP_MAX_MEMBERS + 1]; /* NUL-terminated */
    uint32_t header_bytes;                /* H; set by backup_verify and backup_writer_open */
};

/* ---- writing ---- */

struct backup_writer;

/* Create path.tmp (replacing one left over) and write h's header into it.
 * ERR_BAD_INPUT if the member list is too long or holds a NUL. *out owns the
 * writer until backup_writer_finish or backup_writer_abort. */
int backup_writer_open(const char *path, const struct backup_header *h, struct backup_writer **out,
                       struct errbuf *eb);
/* The next n bytes of the image. ERR_CORRUPT if they run past h->image_bytes. */
int backup_writer_append(struct backup_writer *w, const void *p, size_t n, struct errbuf *eb);
/* Check that the whole image arrived and is intact (its length, its header's
 * index and term, its CRC-32C), append the SHA-256, fsync, rename to path and
 * fsync the directory. sha (may be NULL) receives the checksum. The writer is
 * freed either way; on failure path.tmp is removed and path untouched. */
int backup_writer_finish(struct backup_writer *w, uint8_t sha[BACKUP_SHA_BYTES], struct errbuf *eb);
/* Give up: remove path.tmp and free the writer. NULL is a no-op. */
void backup_writer_abort(struct backup_writer *w);

/* ---- reading ---- */

/* Read the whole file once and check it (layout, size, SHA-256, the image's
 * header and CRC-32C). ERR_CORRUPT, saying what is wrong, for a damaged or
 * truncated file; ERR_NOT_FOUND or ERR_IO when it cannot be read. On ERR_OK h
 * and sha (may be NULL) are filled. */
int backup_verify(const char *path, struct backup_header *h, uint8_t sha[BACKUP_SHA_BYTES],
                  struct errbuf *eb);
/* Copy the image of a verified backup to out_path (created, fsync'd). */
int backup_extract_image(const char *path, const struct backup_header *h, const char *out_path,
                         struct errbuf *eb);

/* 64 lower-case hex digits and a NUL. */
void backup_hex(const uint8_t sha[BACKUP_SHA_BYTES], char out[2 * BACKUP_SHA_BYTES + 1]);

#endif
