/* Frames: a 4-byte big-endian length, then that many bytes of one msgpack value.
 *
 * The streaming decoder takes bytes in whatever pieces the socket delivers and
 * hands out whole frames. It refuses a frame whose declared length is over the
 * limit as soon as the 4 length bytes have arrived, before buffering its body,
 * so a peer announcing 2 GiB costs at most the bytes of one read. */
#ifndef DDKV_PROTO_FRAME_H
#define DDKV_PROTO_FRAME_H

#include <stddef.h>
#include <stdint.h>

#include "util/buf.h"

struct frame_decoder {
    struct buf in;      /* buffered bytes; in.data[pos..in.len) not yet handed out */
    size_t pos;         /* start of the next frame to hand out */
    size_t scan;        /* start of the first frame whose header is not yet checked */
    uint32_t max_frame; /* largest body accepted */
    int error;          /* sticky: once a frame is refused the stream is dead */
    uint32_t bad_len;   /* the refused length, for the error message */
};

void frame_decoder_init(struct frame_decoder *d, uint32_t max_frame_bytes);
void frame_decoder_free(struct frame_decoder *d);

/* Append received bytes. Returns ERR_OK, ERR_TOO_LARGE if a frame header
 * announces more than the limit, or ERR_NOMEM (both sticky). Bytes after the
 * refused header are not buffered. */
int frame_decoder_feed(struct frame_decoder *d, const void *p, size_t n);

/* Take the next complete frame. Returns ERR_OK with body and len pointing into the
 * decoder (borrowed until the next feed or free), ERR_AGAIN if no complete frame
 * is buffered, or the sticky error. */
int frame_decoder_next(struct frame_decoder *d, const uint8_t **body, size_t *len);

/* Bytes buffered but not yet handed out (a partial frame, at the end of a stream,
 * means the peer disconnected mid-frame). */
size_t frame_decoder_pending(const struct frame_decoder *d);

#endif
