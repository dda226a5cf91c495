/* Backup files (see backup_file.h): the header codec, the checksumming writer, the
 * verifier and the image extractor. */
#include "kv/backup_file.h"

#include <errno.h>
#include <fcntl.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "kv/snapshot.h"
#include "util/buf.h"
#include "util/crc32c.h"
#include "util/file.h"

#define BACKUP_IO_BYTES (256u << 10)

/* ---- helpers ---- */

/* Up to n bytes; *got < n only at the end of the file. 0 or an errno. */
static int backup_read_full(int fd, void *p, size_t n, size_t *got)
{
    uint8_t *d = p;
    *got = 0;
    while (*got < n) {
        ssize_t r = read(fd, d + *got, n - *got);
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

void backup_hex(const uint8_t sha[BACKUP_SHA_BYTES], char out[2 * BACKUP_SHA_BYTES + 1])
{
    static const char digits[] = "0123456789abcdef";
    for (size_t i = 0; i < BACKUP_SHA_BYTES; i++) {
        out[2 * i] = digits[sha[i] >> 4];
        out[2 * i + 1] = digits[sha[i] & 15];
    }
    out[2 * BACKUP_SHA_BYTES] = 0;
}

/* The fixed part and the member list, into out (BACKUP_FIXED_BYTES + M bytes). */
static size_t backup_header_encode(const struct backup_header *h, uint8_t *out)
{
    size_t m = strlen(h->members);
    memcpy(out, BACKUP_MAGIC, 8);
    put_be32(out + 8, BACKUP_VERSION);
    put_be32(out + 12, (uint32_t)(BACKUP_FIXED_BYTES + m));
    put_be64(out + 16, h->cluster_id);
    put_be64(out + 24, h->index);
    put_be64(out + 32, h->term);
    put_be64(out + 40, h->revision);
    put_be64(out + 48, h->lamport);
    put_be64(out + 56, h->keys);
    put_be64(out + 64, h->image_bytes);
    put_be64(out + 72, h->created_ms);
    out[80] = (uint8_t)(m >> 8);
    out[81] = (uint8_t)m;
    memcpy(out + BACKUP_FIXED_BYTES, h->members, m);
    return BACKUP_FIXED_BYTES + m;
}

/* The fixed part (BACKUP_FIXED_BYTES bytes) into h; *m is the member list's length. */
static int backup_header_decode(const uint8_t *p, struct backup_header *h, size_t *m, struct errbuf *eb)
{
    memset(h, 0, sizeof *h);
    if (memcmp(p, BACKUP_MAGIC, 8) != 0)
        return errf(eb, ERR_CORRUPT, "not a ddkv snapshot file (bad magic)");
    uint32_t version = get_be32(p + 8);
    if (version != BACKUP_VERSION)
        return errf(eb, ERR_CORRUPT, "snapshot file format version %u, this ddkv reads version %u", version,
                    BACKUP_VERSION);
    *m = (size_t)p[80] << 8 | p[81];
    h->header_bytes = get_be32(p + 12);
    if (*m > BACKUP_MAX_MEMBERS || h->header_bytes != BACKUP_FIXED_BYTES + *m)
        return errf(eb, ERR_CORRUPT, "snapshot file header is damaged (header length %u, member list %zu)",
                    h->header_bytes, *m);
    h->cluster_id = get_be64(p + 16);
    h->index = get_be64(p + 24);
    h->term = get_be64(p + 32);
    h->revision = get_be64(p + 40);
    h->lamport = get_be64(p + 48);
    h->keys = get_be64(p + 56);
    h->image_bytes = get_be64(p + 64);
    h->created_ms = get_be64(p + 72);
    if (h->image_bytes < SNAP_HEADER_BYTES + SNAP_TRAILER_BYTES || h->image_bytes > (UINT64_C(1) << 50))
        return errf(eb, ERR_CORRUPT, "snapshot file header is damaged (image of %llu bytes)",
                    (unsigned long long)h->image_bytes);
    return ERR_OK;
}

/* Follows the image bytes as they stream by: its header (to compare with the
 * backup header) and its CRC-32C, which covers every byte before the
 * trailer and sits in the trailer's last 4 bytes. */
struct image_check {
    uint64_t bytes, seen;
    uint8_t head[SNAP_HEADER_BYTES];
    uint8_t tail[4];
    uint32_t crc;
};

static void image_check_feed(struct image_check *ic, const uint8_t *p, size_t n)
{
    uint64_t crc_end = ic->bytes - SNAP_TRAILER_BYTES, crc_at = ic->bytes - 4;
    for (size_t i = 0; i < n; i++, ic->seen++) {
        uint64_t at = ic->seen;
        if (at < SNAP_HEADER_BYTES)
            ic->head[at] = p[i];
        if (at >= crc_at) {
            ic->tail[at - crc_at] = p[i];
        } else if (at < crc_end) {
            /* The run of bytes from here that all go into the CRC, at once. */
            size_t run = n - i;
            if ((uint64_t)run > crc_end - at)
                run = (size_t)(crc_end - at);
            if (at < SNAP_HEADER_BYTES && run > SNAP_HEADER_BYTES - at)
                run = (size_t)(SNAP_HEADER_BYTES - at);
            for (size_t k = 1; k < run && at + k < SNAP_HEADER_BYTES; k++)
                ic->head[at + k] = p[i + k];
            ic->crc = crc32c_update(ic->crc, p + i, run);
            ic->seen += run - 1;
            i += run - 1;
        }
    }
}

static int image_check_end(const struct image_check *ic, const struct backup_header *h, struct errbuf *eb)
{
    if (ic->seen != ic->bytes)
        return errf(eb, ERR_CORRUPT, "the image has %llu of its %llu bytes", (unsigned long long)ic->seen,
                    (unsigned long long)ic->bytes);
    if (memcmp(ic->head, SNAP_MAGIC, 8) != 0)
        return errf(eb, ERR_CORRUPT, "the image inside is not a ddkv state-machine image");
    if (get_be64(ic->head + 8) != h->index || get_be64(ic->head + 16) != h->term)
        return errf(eb, ERR_CORRUPT, "the image is at index %llu term %llu, the header says %llu term %llu",
                    (unsigned long long)get_be64(ic->head + 8), (unsigned long long)get_be64(ic->head + 16),
                    (unsigned long long)h->index, (unsigned long long)h->term);
    if (get_be32(ic->tail) != ic->crc)
        return errf(eb, ERR_CORRUPT, "the image's CRC-32C does not match its bytes");
    return ERR_OK;
}

/* ---- writing ---- */

struct backup_writer {
    int fd;
    char path[4096], tmp[4100];
    EVP_MD_CTX *md;
    struct backup_header h;
    struct image_check ic;
};

int backup_writer_open(const char *path, const struct backup_header *h, struct backup_writer **out,
                       struct errbuf *eb)
{
    *out = NULL;
    size_t m = strnlen(h->members, sizeof h->members);
    if (m > BACKUP_MAX_MEMBERS)
        return errf(eb, ERR_BAD_INPUT, "member list over %u bytes", BACKUP_MAX_MEMBERS);
    if (h->image_bytes < SNAP_HEADER_BYTES + SNAP_TRAILER_BYTES)
        return errf(eb, ERR_BAD_INPUT, "an image of %llu bytes is too small", (unsigned long long)h->image_bytes);
    struct backup_writer *w = calloc(1, sizeof *w);
    if (!w)
        return errf(eb, ERR_NOMEM, "out of memory");
    w->fd = -1;
    w->h = *h;
    w->h.header_bytes = (uint32_t)(BACKUP_FIXED_BYTES + m);
    w->ic.bytes = h->image_bytes;
    int n1 = snprintf(w->path, sizeof w->path, "%s", path);
    int n2 = snprintf(w->tmp, sizeof w->tmp, "%s.tmp", path);
    if (n1 < 0 || (size_t)n1 >= sizeof w->path || n2 < 0 || (size_t)n2 >= sizeof w->tmp) {
        free(w);
        return errf(eb, ERR_TOO_LARGE, "path %s is too long", path);
    }
    w->md = EVP_MD_CTX_new();
    if (!w->md || EVP_DigestInit_ex(w->md, EVP_sha256(), NULL) != 1) {
        EVP_MD_CTX_free(w->md);
        free(w);
        return errf(eb, ERR_NOMEM, "cannot start a SHA-256 digest");
    }
    w->fd = open(w->tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (w->fd < 0) {
        int rc = file_io_err(eb, errno, "create", w->tmp);
        EVP_MD_CTX_free(w->md);
        free(w);
        return rc;
    }
    uint8_t head[BACKUP_FIXED_BYTES + BACKUP_MAX_MEMBERS];
    size_t hn = backup_header_encode(&w->h, head);
    int e = file_write_all(w->fd, head, hn);
    if (e) {
        int rc = file_io_err(eb, e, "write", w->tmp);
        backup_writer_abort(w);
        return rc;
    }
    EVP_DigestUpdate(w->md, head, hn);
    *out = w;
    return ERR_OK;
}

int backup_writer_append(struct backup_writer *w, const void *p, size_t n, struct errbuf *eb)
{
    if (w->ic.seen + n > w->ic.bytes)
        return errf(eb, ERR_CORRUPT, "more image bytes than the %llu announced", (unsigned long long)w->ic.bytes);
    int e = file_write_all(w->fd, p, n);
    if (e)
        return file_io_err(eb, e, "write", w->tmp);
    EVP_DigestUpdate(w->md, p, n);
    image_check_feed(&w->ic, p, n);
    return ERR_OK;
}

static void backup_writer_free(struct backup_writer *w)
{
    if (w->fd >= 0)
        close(w->fd);
    EVP_MD_CTX_free(w->md);
    free(w);
}

void backup_writer_abort(struct backup_writer *w)
{
    if (!w)
        return;
    unlink(w->tmp);
    backup_writer_free(w);
}

int backup_writer_finish(struct backup_writer *w, uint8_t sha[BACKUP_SHA_BYTES], struct errbuf *eb)
{
    uint8_t digest[EVP_MAX_MD_SIZE];
    unsigned dn = 0;
    int rc = image_check_end(&w->ic, &w->h, eb);
    if (rc)
        goto fail;
    if (EVP_DigestFinal_ex(w->md, digest, &dn) != 1 || dn != BACKUP_SHA_BYTES) {
        rc = errf(eb, ERR_IO, "SHA-256 failed");
        goto fail;
    }
    int e = file_write_all(w->fd, digest, BACKUP_SHA_BYTES);
    if (e || fsync(w->fd) != 0) {
        rc = file_io_err(eb, e ? e : errno, e ? "write" : "fsync", w->tmp);
        goto fail;
    }
    if (close(w->fd) != 0) {
        w->fd = -1;
        rc = file_io_err(eb, errno, "close", w->tmp);
        goto fail;
    }
    w->fd = -1;
    if ((rc = file_rename_durable(w->tmp, w->path, eb))) {
        backup_writer_free(w);
        return rc;
    }
    if (sha)
        memcpy(sha, digest, BACKUP_SHA_BYTES);
    backup_writer_free(w);
    return ERR_OK;

fail:
    backup_writer_abort(w);
    return rc;
}

/* ---- reading ---- */

int backup_verify(const char *path, struct backup_header *h, uint8_t sha[BACKUP_SHA_BYTES], struct errbuf *eb)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return file_io_err(eb, errno, "open", path);
    uint8_t *buf = malloc(BACKUP_IO_BYTES);
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    int rc = ERR_OK;
    size_t got = 0, m = 0;
    struct stat sb;
    if (!buf || !md || EVP_DigestInit_ex(md, EVP_sha256(), NULL) != 1) {
        rc = errf(eb, ERR_NOMEM, "out of memory");
        goto out;
    }
    if (fstat(fd, &sb) != 0) {
        rc = file_io_err(eb, errno, "stat", path);
        goto out;
    }
    int e = backup_read_full(fd, buf, BACKUP_FIXED_BYTES, &got);
    if (e) {
        rc = file_io_err(eb, e, "read", path);
        goto out;
    }
    if (got < BACKUP_FIXED_BYTES) {
        rc = errf(eb, ERR_CORRUPT, "%s is truncated: %zu bytes, not even a header", path, got);
        goto out;
    }
    if ((rc = backup_header_decode(buf, h, &m, eb)))
        goto out;
    uint64_t want = (uint64_t)h->header_bytes + h->image_bytes + BACKUP_SHA_BYTES;
    if ((uint64_t)sb.st_size != want) {
        rc = errf(eb, ERR_CORRUPT, "%s has %llu bytes, its header says %llu: %s", path,
                  (unsigned long long)sb.st_size, (unsigned long long)want,
                  (uint64_t)sb.st_size < want ? "truncated" : "extra bytes at the end");
        goto out;
    }
    EVP_DigestUpdate(md, buf, BACKUP_FIXED_BYTES);
    if ((e = backup_read_full(fd, buf, m, &got)) || got != m) {
        rc = e ? file_io_err(eb, e, "read", path) : errf(eb, ERR_CORRUPT, "%s is truncated", path);
        goto out;
    }
    if (memchr(buf, 0, m)) {
        rc = errf(eb, ERR_CORRUPT, "snapshot file header is damaged (NUL in the member list)");
        goto out;
    }
    memcpy(h->members, buf, m);
    h->members[m] = 0;
    EVP_DigestUpdate(md, buf, m);
    struct image_check ic = {.bytes = h->image_bytes};
    for (uint64_t left = h->image_bytes; left > 0;) {
        size_t n = left < BACKUP_IO_BYTES ? (size_t)left : BACKUP_IO_BYTES;
        if ((e = backup_read_full(fd, buf, n, &got)) || got != n) {
            rc = e ? file_io_err(eb, e, "read", path) : errf(eb, ERR_CORRUPT, "%s is truncated", path);
            goto out;
        }
        EVP_DigestUpdate(md, buf, n);
        image_check_feed(&ic, buf, n);
        left -= n;
    }
    uint8_t digest[EVP_MAX_MD_SIZE], stored[BACKUP_SHA_BYTES];
    unsigned dn = 0;
    if ((e = backup_read_full(fd, stored, BACKUP_SHA_BYTES, &got)) || got != BACKUP_SHA_BYTES) {
        rc = e ? file_io_err(eb, e, "read", path) : errf(eb, ERR_CORRUPT, "%s is truncated", path);
        goto out;
    }
    if (EVP_DigestFinal_ex(md, digest, &dn) != 1 || dn != BACKUP_SHA_BYTES) {
        rc = errf(eb, ERR_IO, "SHA-256 failed");
        goto out;
    }
    if (memcmp(digest, stored, BACKUP_SHA_BYTES) != 0) {
        rc = errf(eb, ERR_CORRUPT, "%s is damaged: its SHA-256 does not match its contents", path);
        goto out;
    }
    if ((rc = image_check_end(&ic, h, eb)))
        goto out;
    if (sha)
        memcpy(sha, digest, BACKUP_SHA_BYTES);
out:
    EVP_MD_CTX_free(md);
    free(buf);
    close(fd);
    return rc;
}

int backup_extract_image(const char *path, const struct backup_header *h, const char *out_path,
                         struct errbuf *eb)
{
    int in = open(path, O_RDONLY | O_CLOEXEC);
    if (in < 0)
        return file_io_err(eb, errno, "open", path);
    int out = open(out_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (out < 0) {
        int rc = file_io_err(eb, errno, "create", out_path);
        close(in);
        return rc;
    }
    uint8_t *buf = malloc(BACKUP_IO_BYTES);
    int rc = buf ? ERR_OK : errf(eb, ERR_NOMEM, "out of memory");
    if (!rc && lseek(in, (off_t)h->header_bytes, SEEK_SET) < 0)
        rc = file_io_err(eb, errno, "seek in", path);
    for (uint64_t left = h->image_bytes; !rc && left > 0;) {
        size_t n = left < BACKUP_IO_BYTES ? (size_t)left : BACKUP_IO_BYTES, got = 0;
        int e = backup_read_full(in, buf, n, &got);
        if (e || got != n)
            rc = e ? file_io_err(eb, e, "read", path) : errf(eb, ERR_CORRUPT, "%s is truncated", path);
        else if ((e = file_write_all(out, buf, n)))
            rc = file_io_err(eb, e, "write", out_path);
        left -= n;
    }
    if (!rc && fsync(out) != 0)
        rc = file_io_err(eb, errno, "fsync", out_path);
    free(buf);
    close(in);
    if (close(out) != 0 && !rc)
        rc = file_io_err(eb, errno, "close", out_path);
    if (rc)
        unlink(out_path);
    return rc;
}
