/* Snapshot images: the writer (worker thread over a RocksDB snapshot), the
 * chunk reader, the receiver, the verifying installer and its crash recovery. */
#include "kv/snapshot.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "util/buf.h"
#include "util/crc32c.h"
#include "util/file.h"

/* The state machine's applied index in meta (written by sm_commit, sm.c). */
static const char META_APPLIED_INDEX[] = "applied_index";

#define IO_BUF_BYTES (256u << 10)
#define LOAD_BATCH_BYTES (4u << 20)
#define REC_HEADER 9 /* cf u8, klen u32, vlen u32 */

static size_t min_sz(size_t a, uint64_t b)
{
    return (uint64_t)a < b ? a : (size_t)b;
}

/* ---- files ---- */

/* Read n bytes at off; *got < n only at the end of the file. 0 or an errno. */
static int pread_full(int fd, void *p, size_t n, uint64_t off, size_t *got)
{
    uint8_t *d = p;
    *got = 0;
    while (*got < n) {
        ssize_t r = pread(fd, d + *got, n - *got, (off_t)(off + *got));
        if (r < 0) {
            if (errno == EINTR)
                continue;
            return errno;
        }
        if (r == 0)
            break;
        *got += (size_t)r;
    }
    return 0;
}

static bool join_path(char *out, size_t cap, const char *dir, const char *name)
{
    int n = snprintf(out, cap, "%s/%s", dir, name);
    return n >= 0 && (size_t)n < cap;
}

int snap_path(char *out, size_t cap, const char *dir, uint64_t index, uint64_t term,
              const char *ext, struct errbuf *eb)
{
    int n = snprintf(out, cap, "%s/snap-%llu-%llu.%s", dir, (unsigned long long)index,
                     (unsigned long long)term, ext);
    if (n < 0 || (size_t)n >= cap)
        return errf(eb, ERR_TOO_LARGE, "snapshot path in %s is too long", dir);
    return ERR_OK;
}

/* ---- writing an image ---- */

struct img_writer {
    int fd;
    const char *path; /* for messages */
    uint8_t *buf;
    size_t len;
    uint32_t crc; /* of everything put so far */
};

static int w_flush(struct img_writer *w, struct errbuf *eb)
{
    int e = file_write_all(w->fd, w->buf, w->len);
    w->len = 0;
    return e ? file_io_err(eb, e, "write", w->path) : ERR_OK;
}

static int w_put(struct img_writer *w, const void *p, size_t n, struct errbuf *eb)
{
    w->crc = crc32c_update(w->crc, p, n);
    const uint8_t *s = p;
    while (n > 0) {
        if (w->len == IO_BUF_BYTES) {
            int rc = w_flush(w, eb);
            if (rc)
                return rc;
        }
        size_t k = min_sz(IO_BUF_BYTES - w->len, n);
        memcpy(w->buf + w->len, s, k);
        w->len += k;
        s += k;
        n -= k;
    }
    return ERR_OK;
}

/* Every key of one column family as of snap, as records. */
static int write_cf(struct img_writer *w, struct store *st, const struct store_snapshot *snap,
                    enum store_cf cf, uint8_t code, uint64_t *count, const atomic_bool *cancel,
                    struct errbuf *eb)
{
    struct store_iter *it = store_iter_new_at(st, cf, snap, NULL, 0);
    int rc = ERR_OK;
    for (store_iter_seek(it, "", 0); store_iter_valid(it); store_iter_next(it)) {
        if (cancel && atomic_load_explicit(cancel, memory_order_relaxed)) {
            rc = errf(eb, ERR_CLOSED, "snapshot write to %s cancelled", w->path);
            break;
        }
        size_t kn, vn;
        const uint8_t *k = store_iter_key(it, &kn);
        const uint8_t *v = store_iter_value(it, &vn);
        if (kn > SNAP_MAX_KEY || vn > SNAP_MAX_VALUE) {
            rc = errf(eb, ERR_TOO_LARGE, "a key of %zu bytes with a value of %zu bytes is over the snapshot limits",
                      kn, vn);
            break;
        }
        uint8_t h[REC_HEADER];
        h[0] = code;
        put_be32(h + 1, (uint32_t)kn);
        put_be32(h + 5, (uint32_t)vn);
        if ((rc = w_put(w, h, sizeof h, eb)) || (rc = w_put(w, k, kn, eb)) || (rc = w_put(w, v, vn, eb)))
            break;
        (*count)++;
    }
    if (!rc)
        rc = store_iter_status(it, eb);
    store_iter_free(it);
    return rc;
}

/* Write path.tmp, fsync, rename to path, fsync the directory; on failure
 * nothing is left behind. */
static int image_write(struct store *st, const struct store_snapshot *snap, const char *path,
                       uint64_t index, uint64_t term, const atomic_bool *cancel, struct errbuf *eb)
{
    char tmp[PATH_MAX];
    int n = snprintf(tmp, sizeof tmp, "%s.tmp", path);
    if (n < 0 || (size_t)n >= sizeof tmp)
        return errf(eb, ERR_TOO_LARGE, "snapshot path %s is too long", path);
    struct img_writer w = {.fd = -1, .path = tmp};
    w.fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (w.fd < 0)
        return file_io_err(eb, errno, "create", tmp);
    w.buf = malloc(IO_BUF_BYTES);
    ASSERT(w.buf != NULL);

    uint8_t hdr[SNAP_HEADER_BYTES];
    memcpy(hdr, SNAP_MAGIC, 8);
    put_be64(hdr + 8, index);
    put_be64(hdr + 16, term);
    uint64_t count = 0;
    int rc = w_put(&w, hdr, sizeof hdr, eb);
    if (!rc)
        rc = write_cf(&w, st, snap, STORE_CF_META, SNAP_CF_META, &count, cancel, eb);
    if (!rc)
        rc = write_cf(&w, st, snap, STORE_CF_DATA, SNAP_CF_DATA, &count, cancel, eb);
    if (!rc) {
        uint8_t trl[SNAP_TRAILER_BYTES];
        trl[0] = 0;
        put_be64(trl + 1, count);
        put_be32(trl + 9, w.crc); /* the CRC of everything before the trailer */
        rc = w_put(&w, trl, sizeof trl, eb);
    }
    if (!rc)
        rc = w_flush(&w, eb);
    if (!rc && fsync(w.fd) != 0)
        rc = file_io_err(eb, errno, "fsync", tmp);
    int fd = w.fd;
    w.fd = -1;
    if (close(fd) != 0 && !rc)
        rc = file_io_err(eb, errno, "close", tmp);
    free(w.buf);
    if (!rc)
        rc = file_rename_durable(tmp, path, eb);
    if (rc)
        unlink(tmp);
    return rc;
}

/* The state as of snap must be the state at index. */
static int check_applied(struct store *st, const struct store_snapshot *snap, uint64_t index,
                         struct errbuf *eb)
{
    struct store_val v;
    uint64_t applied = 0;
    int rc = store_get_at(st, STORE_CF_META, snap, META_APPLIED_INDEX, strlen(META_APPLIED_INDEX), &v, eb);
    if (rc && rc != ERR_NOT_FOUND)
        return rc;
    if (rc == ERR_OK) {
        if (v.n != 8) {
            store_val_release(&v);
            return errf(eb, ERR_CORRUPT, "meta applied_index has %zu bytes, want 8", v.n);
        }
        applied = get_be64(v.p);
        store_val_release(&v);
    }
    if (applied != index)
        return errf(eb, ERR_BAD_INPUT, "snapshot at index %llu asked, but the state machine has applied %llu",
                    (unsigned long long)index, (unsigned long long)applied);
    return ERR_OK;
}

int snap_write(struct store *st, const char *path, uint64_t index, uint64_t term, struct errbuf *eb)
{
    struct store_snapshot *snap = store_snapshot_new(st);
    int rc = check_applied(st, snap, index, eb);
    if (!rc)
        rc = image_write(st, snap, path, index, term, NULL, eb);
    store_snapshot_free(snap);
    return rc;
}

/* ---- reading an image ---- */

struct img_reader {
    int fd;
    const char *path;
    uint64_t pos;    /* file offset just past the buffered bytes */
    uint64_t end;    /* offset of the trailer: records end here */
    uint8_t *buf;
    size_t len, off; /* bytes buffered, of which off are consumed */
    uint32_t crc;    /* of every byte read from the file so far */
};

static uint64_t r_left(const struct img_reader *r)
{
    return (r->end - r->pos) + (r->len - r->off);
}

static int r_take(struct img_reader *r, uint8_t *dst, size_t n, struct errbuf *eb)
{
    while (n > 0) {
        if (r->off == r->len) {
            if (r->pos >= r->end)
                return errf(eb, ERR_CORRUPT, "snapshot %s: a record runs past the end (truncated or damaged)",
                            r->path);
            size_t want = min_sz(IO_BUF_BYTES, r->end - r->pos), got;
            int e = pread_full(r->fd, r->buf, want, r->pos, &got);
            if (e)
                return file_io_err(eb, e, "read", r->path);
            if (got < want)
                return errf(eb, ERR_CORRUPT, "snapshot %s shrank while being read", r->path);
            r->crc = crc32c_update(r->crc, r->buf, got);
            r->pos += got;
            r->len = got;
            r->off = 0;
        }
        size_t k = min_sz(r->len - r->off, n);
        memcpy(dst, r->buf + r->off, k);
        r->off += k;
        dst += k;
        n -= k;
    }
    return ERR_OK;
}

/* RocksDB's default (bytewise) order. */
static int key_cmp(const struct buf *a, const struct buf *b)
{
    size_t n = a->len < b->len ? a->len : b->len;
    int c = n ? memcmp(a->data, b->data, n) : 0;
    if (c)
        return c;
    return a->len < b->len ? -1 : a->len > b->len;
}

typedef int (*rec_fn)(void *ctx, int cf, const uint8_t *k, size_t kn, const uint8_t *v, size_t vn,
                      struct errbuf *eb);

struct img_info {
    uint64_t index, term, records;
};

/* Read the image at path once, checking everything the format promises; fn
 * (if any) sees each record as it is read, so before the checksum at the end
 * has been compared. */
static int image_walk(const char *path, struct img_info *info, rec_fn fn, void *ctx, struct errbuf *eb)
{
    struct img_reader r = {.fd = -1, .path = path};
    r.fd = open(path, O_RDONLY | O_CLOEXEC);
    if (r.fd < 0)
        return file_io_err(eb, errno, "open", path);
    struct buf keys[2] = {BUF_INIT, BUF_INIT}, val = BUF_INIT;
    struct buf *prev = &keys[0], *cur = &keys[1];
    int rc = ERR_OK;
    struct stat sb;
    if (fstat(r.fd, &sb) != 0) {
        rc = file_io_err(eb, errno, "stat", path);
        goto out;
    }
    uint64_t size = (uint64_t)sb.st_size;
    if (size < SNAP_HEADER_BYTES + SNAP_TRAILER_BYTES) {
        rc = errf(eb, ERR_CORRUPT, "snapshot %s: %llu bytes is too short for an image (truncated?)", path,
                  (unsigned long long)size);
        goto out;
    }
    uint8_t trl[SNAP_TRAILER_BYTES];
    size_t got;
    int e = pread_full(r.fd, trl, sizeof trl, size - SNAP_TRAILER_BYTES, &got);
    if (e || got != sizeof trl) {
        rc = e ? file_io_err(eb, e, "read", path) : errf(eb, ERR_CORRUPT, "snapshot %s shrank while being read", path);
        goto out;
    }
    if (trl[0] != 0) {
        rc = errf(eb, ERR_CORRUPT, "snapshot %s has no trailer at its end (truncated or damaged)", path);
        goto out;
    }
    r.end = size - SNAP_TRAILER_BYTES;
    r.buf = malloc(IO_BUF_BYTES);
    ASSERT(r.buf != NULL);
    uint8_t hdr[SNAP_HEADER_BYTES];
    if ((rc = r_take(&r, hdr, sizeof hdr, eb)))
        goto out;
    if (memcmp(hdr, SNAP_MAGIC, 8) != 0) {
        rc = errf(eb, ERR_CORRUPT, "%s is not a ddkv snapshot image (bad magic)", path);
        goto out;
    }
    info->index = get_be64(hdr + 8);
    info->term = get_be64(hdr + 16);
    uint64_t count = 0;
    int prev_cf = 0;
    bool seen_applied = false;
    while (r_left(&r) > 0) {
        uint8_t h[REC_HEADER];
        if ((rc = r_take(&r, h, sizeof h, eb)))
            goto out;
        int cf = h[0];
        uint32_t kn = get_be32(h + 1), vn = get_be32(h + 5);
        if (cf != SNAP_CF_META && cf != SNAP_CF_DATA) {
            rc = errf(eb, ERR_CORRUPT, "snapshot %s: record %llu has column family %d", path,
                      (unsigned long long)count, cf);
            goto out;
        }
        if (cf < prev_cf) {
            rc = errf(eb, ERR_CORRUPT, "snapshot %s: record %llu is meta after data", path, (unsigned long long)count);
            goto out;
        }
        if (kn > SNAP_MAX_KEY || vn > SNAP_MAX_VALUE || (uint64_t)kn + vn > r_left(&r)) {
            rc = errf(eb, ERR_CORRUPT, "snapshot %s: record %llu (key %u bytes, value %u bytes) is over the limits or "
                      "runs past the end", path, (unsigned long long)count, kn, vn);
            goto out;
        }
        cur->len = 0;
        val.len = 0;
        /* Room for at least one byte, so data is never NULL. */
        if (buf_reserve(cur, kn ? kn : 1) || buf_reserve(&val, vn ? vn : 1)) {
            rc = errf(eb, ERR_NOMEM, "out of memory reading snapshot %s", path);
            goto out;
        }
        if ((rc = r_take(&r, cur->data, kn, eb)) || (rc = r_take(&r, val.data, vn, eb)))
            goto out;
        cur->len = kn;
        val.len = vn;
        if (cf == prev_cf && key_cmp(prev, cur) >= 0) {
            rc = errf(eb, ERR_CORRUPT, "snapshot %s: record %llu is out of key order", path, (unsigned long long)count);
            goto out;
        }
        if (cf == SNAP_CF_META && kn == strlen(META_APPLIED_INDEX) &&
            memcmp(cur->data, META_APPLIED_INDEX, kn) == 0) {
            if (vn != 8 || get_be64(val.data) != info->index) {
                rc = errf(eb, ERR_CORRUPT, "snapshot %s: its applied_index is not its header's index %llu", path,
                          (unsigned long long)info->index);
                goto out;
            }
            seen_applied = true;
        }
        if (fn && (rc = fn(ctx, cf, cur->data, kn, val.data, vn, eb)))
            goto out;
        count++;
        prev_cf = cf;
        struct buf *t = prev;
        prev = cur;
        cur = t;
    }
    uint32_t want_crc = get_be32(trl + 9);
    if (r.crc != want_crc) {
        rc = errf(eb, ERR_CORRUPT, "snapshot %s: checksum mismatch (stored %08x, computed %08x)", path,
                  (unsigned)want_crc, (unsigned)r.crc);
        goto out;
    }
    if (count != get_be64(trl + 1)) {
        rc = errf(eb, ERR_CORRUPT, "snapshot %s has %llu records, its trailer says %llu", path,
                  (unsigned long long)count, (unsigned long long)get_be64(trl + 1));
        goto out;
    }
    if (!seen_applied && info->index != 0) {
        rc = errf(eb, ERR_CORRUPT, "snapshot %s at index %llu has no applied_index", path,
                  (unsigned long long)info->index);
        goto out;
    }
    info->records = count;
out:
    close(r.fd);
    free(r.buf);
    buf_free(&keys[0]);
    buf_free(&keys[1]);
    buf_free(&val);
    return rc;
}

int snap_verify(const char *path, uint64_t *index, uint64_t *term, uint64_t *records, struct errbuf *eb)
{
    struct img_info info;
    int rc = image_walk(path, &info, NULL, NULL, eb);
    if (rc)
        return rc;
    if (index)
        *index = info.index;
    if (term)
        *term = info.term;
    if (records)
        *records = info.records;
    return ERR_OK;
}

int snap_read(const char *path, uint64_t offset, uint8_t *buf, size_t cap, size_t *n, bool *last,
              struct errbuf *eb)
{
    *n = 0;
    *last = false;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return file_io_err(eb, errno, "open", path);
    struct stat sb;
    int rc = ERR_OK;
    if (fstat(fd, &sb) != 0) {
        rc = file_io_err(eb, errno, "stat", path);
    } else if (offset > (uint64_t)sb.st_size) {
        rc = errf(eb, ERR_BAD_INPUT, "offset %llu is past the end of %s (%lld bytes)", (unsigned long long)offset,
                  path, (long long)sb.st_size);
    } else {
        size_t got;
        int e = pread_full(fd, buf, min_sz(cap, (uint64_t)sb.st_size - offset), offset, &got);
        if (e) {
            rc = file_io_err(eb, e, "read", path);
        } else {
            *n = got;
            *last = offset + got >= (uint64_t)sb.st_size;
        }
    }
    close(fd);
    return rc;
}

int snap_file_info(const char *path, uint64_t *index, uint64_t *term, uint64_t *bytes, struct errbuf *eb)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return file_io_err(eb, errno, "open", path);
    struct stat sb;
    uint8_t hdr[SNAP_HEADER_BYTES];
    size_t got = 0;
    int rc = ERR_OK, e;
    if (fstat(fd, &sb) != 0)
        rc = file_io_err(eb, errno, "stat", path);
    else if ((e = pread_full(fd, hdr, sizeof hdr, 0, &got)))
        rc = file_io_err(eb, e, "read", path);
    else if (got < sizeof hdr || memcmp(hdr, SNAP_MAGIC, 8) != 0)
        rc = errf(eb, ERR_CORRUPT, "%s is not a ddkv snapshot image", path);
    close(fd);
    if (rc)
        return rc;
    *index = get_be64(hdr + 8);
    *term = get_be64(hdr + 16);
    *bytes = (uint64_t)sb.st_size;
    return ERR_OK;
}

/* ---- receiving ---- */

void snap_recv_init(struct snap_recv *r)
{
    memset(r, 0, sizeof *r);
    r->fd = -1;
}

static void recv_close(struct snap_recv *r)
{
    if (r->fd >= 0)
        close(r->fd);
    snap_recv_init(r);
}

void snap_recv_reset(struct snap_recv *r, const char *dir)
{
    recv_close(r);
    char tmp[PATH_MAX];
    if (join_path(tmp, sizeof tmp, dir, SNAP_RECV_TMP))
        unlink(tmp);
}

int snap_recv_chunk(struct snap_recv *r, const char *dir, uint64_t index, uint64_t term, uint64_t offset,
                    const uint8_t *data, size_t len, bool last, char *done_path, size_t done_cap,
                    struct errbuf *eb)
{
    char tmp[PATH_MAX], fin[PATH_MAX];
    if (!join_path(tmp, sizeof tmp, dir, SNAP_RECV_TMP))
        return errf(eb, ERR_TOO_LARGE, "snapshot directory path %s is too long", dir);
    int rc = ERR_OK;
    if (offset == 0) {
        recv_close(r);
        int fd = open(tmp, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
        if (fd < 0)
            return file_io_err(eb, errno, "create", tmp);
        r->fd = fd;
        r->index = index;
        r->term = term;
        r->next = 0;
    } else if (r->fd < 0 || r->index != index || r->term != term || offset != r->next) {
        if (r->fd < 0)
            rc = errf(eb, ERR_BAD_INPUT, "snapshot chunk at offset %llu, but no transfer is open",
                      (unsigned long long)offset);
        else if (r->index != index || r->term != term)
            rc = errf(eb, ERR_BAD_INPUT, "snapshot chunk of %llu/%llu, but the open transfer is %llu/%llu",
                      (unsigned long long)index, (unsigned long long)term, (unsigned long long)r->index,
                      (unsigned long long)r->term);
        else
            rc = errf(eb, ERR_BAD_INPUT, "snapshot chunk at offset %llu, expected %llu", (unsigned long long)offset,
                      (unsigned long long)r->next);
        goto abandon;
    }
    if (len > 0) {
        int e = file_write_all(r->fd, data, len);
        if (e) {
            rc = file_io_err(eb, e, "write", tmp);
            goto abandon;
        }
        r->next += len;
    }
    if (!last)
        return ERR_OK;

    if ((rc = snap_path(fin, sizeof fin, dir, index, term, "recv", eb)))
        goto abandon;
    if (strlen(fin) >= done_cap) {
        rc = errf(eb, ERR_TOO_LARGE, "no room for the snapshot path %s", fin);
        goto abandon;
    }
    uint8_t hdr[SNAP_HEADER_BYTES];
    size_t got;
    int e = pread_full(r->fd, hdr, sizeof hdr, 0, &got);
    if (e) {
        rc = file_io_err(eb, e, "read", tmp);
        goto abandon;
    }
    if (got < sizeof hdr || memcmp(hdr, SNAP_MAGIC, 8) != 0 || get_be64(hdr + 8) != index ||
        get_be64(hdr + 16) != term) {
        rc = errf(eb, ERR_BAD_INPUT, "the received image is not a snapshot at %llu/%llu",
                  (unsigned long long)index, (unsigned long long)term);
        goto abandon;
    }
    if (fsync(r->fd) != 0) {
        rc = file_io_err(eb, errno, "fsync", tmp);
        goto abandon;
    }
    int fd = r->fd;
    r->fd = -1;
    if (close(fd) != 0) {
        rc = file_io_err(eb, errno, "close", tmp);
        goto abandon;
    }
    if ((rc = file_rename_durable(tmp, fin, eb)))
        goto abandon;
    recv_close(r);
    snprintf(done_path, done_cap, "%s", fin);
    return ERR_OK;

abandon:
    snap_recv_reset(r, dir);
    return rc;
}

/* ---- installing ---- */

int snap_install_mark(struct store *st, const char *path, struct store_batch *raft_side, struct errbuf *eb)
{
    char *abs = realpath(path, NULL);
    if (!abs) {
        int e = errno;
        if (raft_side)
            store_batch_clear(raft_side);
        return file_io_err(eb, e, "resolve", path);
    }
    struct store_batch *b = raft_side ? raft_side : store_batch_new(st);
    store_batch_put(b, STORE_CF_RAFT_STATE, SNAP_INSTALL_MARKER, strlen(SNAP_INSTALL_MARKER), abs, strlen(abs));
    int rc = store_write(st, b, true, eb);
    if (raft_side)
        store_batch_clear(raft_side);
    else
        store_batch_free(b);
    free(abs);
    return rc;
}

int snap_install_pending(struct store *st, char *out, size_t cap, struct errbuf *eb)
{
    struct store_val v;
    int rc = store_get(st, STORE_CF_RAFT_STATE, SNAP_INSTALL_MARKER, strlen(SNAP_INSTALL_MARKER), NULL, &v, eb);
    if (rc)
        return rc;
    if (v.n == 0 || v.n >= cap || memchr(v.p, 0, v.n)) {
        size_t n = v.n;
        store_val_release(&v);
        return errf(eb, ERR_CORRUPT, "the snapshot install marker holds %zu bytes, not a path", n);
    }
    memcpy(out, v.p, v.n);
    out[v.n] = 0;
    store_val_release(&v);
    return ERR_OK;
}

struct loader {
    struct store *st;
    struct store_batch *b;
    size_t bytes; /* staged in b */
};

static int load_rec(void *ctx, int cf, const uint8_t *k, size_t kn, const uint8_t *v, size_t vn,
                    struct errbuf *eb)
{
    struct loader *l = ctx;
    store_batch_put(l->b, cf == SNAP_CF_META ? STORE_CF_META : STORE_CF_DATA, k, kn, v, vn);
    l->bytes += kn + vn + 16;
    if (l->bytes < LOAD_BATCH_BYTES)
        return ERR_OK;
    int rc = store_write(l->st, l->b, false, eb);
    store_batch_clear(l->b);
    l->bytes = 0;
    return rc;
}

int snap_install_load(struct store *st, const char *path, struct errbuf *eb)
{
    int rc;
    if ((rc = store_wipe_cf(st, STORE_CF_META, false, eb)) || (rc = store_wipe_cf(st, STORE_CF_DATA, false, eb)))
        return rc;
    struct loader l = {.st = st, .b = store_batch_new(st)};
    struct img_info info;
    rc = image_walk(path, &info, load_rec, &l, eb);
    if (!rc) {
        /* The last records and the end of the install, synced: the WAL is
         * shared, so this also makes the wipe and every batch before durable. */
        store_batch_delete(l.b, STORE_CF_RAFT_STATE, SNAP_INSTALL_MARKER, strlen(SNAP_INSTALL_MARKER));
        rc = store_write(st, l.b, true, eb);
    }
    store_batch_free(l.b);
    return rc;
}

static int install_run(struct store *st, const char *path, struct store_batch *raft_side, struct errbuf *eb)
{
    struct img_info info;
    int rc = image_walk(path, &info, NULL, NULL, eb);
    if (rc) {
        if (raft_side)
            store_batch_clear(raft_side);
        return rc;
    }
    if ((rc = snap_install_mark(st, path, raft_side, eb)))
        return rc;
    return snap_install_load(st, path, eb);
}

int snap_install(struct store *st, const char *path, struct store_batch *raft_side, struct errbuf *eb)
{
    return install_run(st, path, raft_side, eb);
}

int snap_install_recover(struct store *st, struct errbuf *eb)
{
    char path[PATH_MAX];
    int rc = snap_install_pending(st, path, sizeof path, eb);
    if (rc == ERR_NOT_FOUND)
        return ERR_OK;
    if (rc)
        return rc;
    struct stat sb;
    if (stat(path, &sb) != 0)
        return errf(eb, ERR_CORRUPT,
                    "an interrupted snapshot install needs %s, which is unreadable (%s): the state machine is "
                    "incomplete; restore the file, or empty the data dir and rejoin the cluster",
                    path, strerror(errno));
    struct errbuf e2;
    rc = snap_install_load(st, path, &e2);
    if (rc == ERR_NOT_FOUND)
        rc = ERR_CORRUPT;
    if (rc)
        return errf(eb, rc, "finishing the interrupted snapshot install: %s", e2.msg);
    return ERR_OK;
}

/* ---- background jobs ---- */

enum job_kind { JOB_WRITE, JOB_INSTALL };

struct snap_job {
    enum job_kind kind;
    pthread_t thread;
    atomic_int done;    /* set (release) by the worker after rc and eb */
    atomic_bool cancel; /* write jobs: stop early */
    int rc;
    struct errbuf eb;
    struct store *st;
    struct store_snapshot *snap; /* write: released by the worker when done */
    struct store_batch *raft_side;
    uint64_t index, term;
    char path[];
};

static void *job_main(void *arg)
{
    struct snap_job *j = arg;
    if (j->kind == JOB_WRITE) {
        j->rc = image_write(j->st, j->snap, j->path, j->index, j->term, &j->cancel, &j->eb);
        store_snapshot_free(j->snap); /* let RocksDB drop old versions at once */
        j->snap = NULL;
    } else {
        j->rc = install_run(j->st, j->path, j->raft_side, &j->eb);
    }
    atomic_store_explicit(&j->done, 1, memory_order_release);
    return NULL;
}

static struct snap_job *job_new(enum job_kind kind, struct store *st, const char *path)
{
    size_t pn = strlen(path);
    struct snap_job *j = calloc(1, sizeof *j + pn + 1);
    ASSERT(j != NULL);
    j->kind = kind;
    j->st = st;
    atomic_init(&j->done, 0);
    atomic_init(&j->cancel, false);
    memcpy(j->path, path, pn + 1);
    return j;
}

/* Start the worker with every signal blocked: signals stay the loop's. */
static int job_spawn(struct snap_job *j, struct errbuf *eb)
{
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    int e = pthread_create(&j->thread, NULL, job_main, j);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (e)
        return errf(eb, e == EAGAIN ? ERR_NOMEM : ERR_IO, "cannot start a snapshot thread: %s", strerror(e));
    return ERR_OK;
}

int snap_write_start(struct store *st, const char *path, uint64_t index, uint64_t term, struct snap_job **out,
                     struct errbuf *eb)
{
    *out = NULL;
    if (strlen(path) + 5 > PATH_MAX)
        return errf(eb, ERR_TOO_LARGE, "snapshot path %s is too long", path);
    struct store_snapshot *snap = store_snapshot_new(st);
    int rc = check_applied(st, snap, index, eb);
    if (rc) {
        store_snapshot_free(snap);
        return rc;
    }
    struct snap_job *j = job_new(JOB_WRITE, st, path);
    j->snap = snap;
    j->index = index;
    j->term = term;
    if ((rc = job_spawn(j, eb))) {
        store_snapshot_free(snap);
        free(j);
        return rc;
    }
    *out = j;
    return ERR_OK;
}

int snap_install_start(struct store *st, const char *path, struct store_batch *raft_side, struct snap_job **out,
                       struct errbuf *eb)
{
    *out = NULL;
    if (strlen(path) >= PATH_MAX)
        return errf(eb, ERR_TOO_LARGE, "snapshot path %s is too long", path);
    struct snap_job *j = job_new(JOB_INSTALL, st, path);
    j->raft_side = raft_side;
    int rc = job_spawn(j, eb);
    if (rc) {
        free(j);
        return rc;
    }
    *out = j;
    return ERR_OK;
}

bool snap_job_done(struct snap_job *j, int *rc, struct errbuf *eb)
{
    if (!atomic_load_explicit(&j->done, memory_order_acquire))
        return false;
    *rc = j->rc;
    if (j->rc && eb)
        *eb = j->eb;
    return true;
}

void snap_job_free(struct snap_job *j)
{
    if (!j)
        return;
    if (j->kind == JOB_WRITE)
        atomic_store_explicit(&j->cancel, true, memory_order_relaxed);
    pthread_join(j->thread, NULL);
    store_snapshot_free(j->snap);
    free(j);
}

/* ---- housekeeping ---- */

/* "snap-<index>-<term>.<ext>" with ext one of exts; the index out. */
static bool parse_snap_name(const char *name, const char *const *exts, uint64_t *index)
{
    if (strncmp(name, "snap-", 5) != 0)
        return false;
    const char *p = name + 5;
    uint64_t nums[2];
    for (int i = 0; i < 2; i++) {
        if (*p < '0' || *p > '9')
            return false;
        uint64_t v = 0;
        for (; *p >= '0' && *p <= '9'; p++) {
            if (v > (UINT64_MAX - 9) / 10)
                return false;
            v = v * 10 + (uint64_t)(*p - '0');
        }
        nums[i] = v;
        if (*p++ != (i == 0 ? '-' : '.'))
            return false;
    }
    for (; *exts; exts++)
        if (strcmp(p, *exts) == 0) {
            *index = nums[0];
            return true;
        }
    return false;
}

int snap_prune(const char *dir, const char *keep_path, struct errbuf *eb)
{
    static const char *const keep_exts[] = {"snap", "recv", NULL};
    static const char *const prune_exts[] = {"snap", "recv", "snap.tmp", NULL};
    const char *slash = strrchr(keep_path, '/');
    const char *keep = slash ? slash + 1 : keep_path;
    uint64_t keep_index;
    if (!parse_snap_name(keep, keep_exts, &keep_index))
        return errf(eb, ERR_BAD_INPUT, "%s is not a snapshot file name", keep_path);
    DIR *d = opendir(dir);
    if (!d)
        return file_io_err(eb, errno, "open directory", dir);
    int rc = ERR_OK;
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        uint64_t idx;
        if (!parse_snap_name(de->d_name, prune_exts, &idx) || strcmp(de->d_name, keep) == 0 || idx > keep_index)
            continue;
        char p[PATH_MAX];
        if (!join_path(p, sizeof p, dir, de->d_name))
            continue;
        if (unlink(p) != 0 && errno != ENOENT && rc == ERR_OK)
            rc = file_io_err(eb, errno, "remove", p);
    }
    closedir(d);
    return rc;
}

int snap_check_dir(const char *dir, struct errbuf *eb)
{
    static const char *const exts[] = {"snap", "recv", NULL};
    DIR *d = opendir(dir);
    if (!d)
        return errno == ENOENT ? ERR_OK : file_io_err(eb, errno, "open directory", dir);
    int rc = ERR_OK;
    struct dirent *de;
    while (rc == ERR_OK && (de = readdir(d)) != NULL) {
        uint64_t idx;
        char p[PATH_MAX];
        if (!parse_snap_name(de->d_name, exts, &idx) || !join_path(p, sizeof p, dir, de->d_name))
            continue;
        struct errbuf e2;
        rc = snap_verify(p, NULL, NULL, NULL, &e2);
        if (rc == ERR_NOT_FOUND)
            rc = ERR_OK; /* pruned meanwhile */
        else if (rc)
            errf(eb, rc, "snapshot image %s is damaged: %s", p, e2.msg);
    }
    closedir(d);
    return rc;
}
