/* The frame codec's streaming decoder. */
#include "proto/frame.h"

#include <string.h>

#include "util/err.h"

#define FRAME_HDR 4u

/* Memory held by an idle connection after a large frame is given back above this. */
#define FRAME_KEEP_BYTES (64u * 1024)

void frame_decoder_init(struct frame_decoder *d, uint32_t max_frame_bytes)
{
    memset(d, 0, sizeof *d);
    d->max_frame = max_frame_bytes;
}

void frame_decoder_free(struct frame_decoder *d)
{
    buf_free(&d->in);
    d->pos = d->scan = 0;
}

/* Check every header that has fully arrived; returns how many of the n new bytes
 * may be kept (all of them, unless a header is refused). */
static size_t frame_scan(struct frame_decoder *d, const uint8_t *p, size_t n)
{
    size_t have = d->in.len; /* bytes already buffered, before p */
    size_t total = have + n;
    while (d->scan + FRAME_HDR <= total) {
        uint8_t hdr[4];
        for (size_t i = 0; i < 4; i++) {
            size_t at = d->scan + i;
            hdr[i] = at < have ? d->in.data[at] : p[at - have];
        }
        uint32_t len = get_be32(hdr);
        if (len > d->max_frame) {
            d->error = ERR_TOO_LARGE;
            d->bad_len = len;
            size_t keep_to = d->scan; /* drop the refused header and everything after it */
            return keep_to > have ? keep_to - have : 0;
        }
        d->scan += FRAME_HDR + len;
    }
    return n;
}

int frame_decoder_feed(struct frame_decoder *d, const void *p, size_t n)
{
    if (d->error)
        return d->error;
    /* Slide unconsumed bytes to the front before growing. */
    if (d->pos > 0 && (d->pos == d->in.len || d->pos >= d->in.cap / 2)) {
        size_t rest = d->in.len - d->pos;
        memmove(d->in.data, d->in.data + d->pos, rest);
        d->in.len = rest;
        d->scan -= d->pos;
        d->pos = 0;
        if (rest == 0 && d->in.cap > FRAME_KEEP_BYTES)
            buf_free(&d->in);
    }
    size_t keep = frame_scan(d, p, n);
    int rc = buf_append(&d->in, p, keep);
    if (rc) {
        /* frame_scan already stepped over the headers in the bytes just lost, so
         * the stream can no longer be framed: the error must be sticky. */
        d->error = rc;
        return rc;
    }
    return d->error;
}

int frame_decoder_next(struct frame_decoder *d, const uint8_t **body, size_t *len)
{
    size_t avail = d->in.len - d->pos;
    if (avail >= FRAME_HDR) {
        uint32_t n = get_be32(d->in.data + d->pos);
        /* Only headers already checked by frame_scan are here, so n is in bounds. */
        if (n <= d->max_frame && avail - FRAME_HDR >= n) {
            *body = d->in.data + d->pos + FRAME_HDR;
            *len = n;
            d->pos += FRAME_HDR + n;
            return ERR_OK;
        }
    }
    return d->error ? d->error : ERR_AGAIN;
}

size_t frame_decoder_pending(const struct frame_decoder *d)
{
    return d->in.len - d->pos;
}
