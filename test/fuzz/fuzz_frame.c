/* libFuzzer target: the streaming frame decoder fed in input-chosen pieces, checked against a one-shot reference, each frame through msg_decode. */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ddkv/wire.h"
#include "proto/frame.h"
#include "proto/msg.h"
#include "util/buf.h"
#include "util/err.h"

/* Input layout (see gen_corpus.c, which writes seeds in it):
 *   [0..2)  max frame bytes, big-endian; 0xffff means the wire default (4 MiB)
 *   [2]     k, the number of piece-size bytes that follow
 *   [3..3+k) piece sizes, used in turn (cycled) to cut the stream into reads
 *   rest    the byte stream as a socket would deliver it */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "fuzz_frame: check failed at line %d: %s\n", __LINE__, #cond);        \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

/* Frames a one-shot parse of the whole stream finds: the oracle for the decoder. */
struct expected {
    size_t n;
    size_t *off;   /* body offsets in the stream */
    uint32_t *len;
    bool refused;  /* a header announced more than the limit */
    size_t bad_at; /* offset of that header */
};

static void reference_parse(const uint8_t *s, size_t n, uint32_t max_frame, struct expected *e)
{
    /* Every frame takes at least its 4 header bytes. */
    e->off = malloc((n / 4 + 1) * sizeof *e->off);
    e->len = malloc((n / 4 + 1) * sizeof *e->len);
    CHECK(e->off && e->len);
    e->n = 0;
    e->refused = false;
    size_t off = 0;
    while (n - off >= 4) {
        uint32_t len = get_be32(s + off);
        if (len > max_frame) {
            e->refused = true;
            e->bad_at = off;
            return;
        }
        if (n - off - 4 < len)
            return; /* a partial frame: the peer would still be sending */
        e->off[e->n] = off + 4;
        e->len[e->n] = len;
        e->n++;
        off += 4 + (size_t)len;
    }
}

/* Read every field the way a handler would; all reads must stay inside the body. */
static void touch_message(const struct msg *m, const uint8_t *body, size_t len)
{
    volatile uint8_t sink = 0;
    for (uint32_t i = 0; i < m->nf + 2; i++) {
        uint64_t v;
        const uint8_t *p;
        size_t n;
        if (msg_u64(m, i, &v) == ERR_OK)
            sink ^= (uint8_t)v;
        if (msg_bytes(m, i, &p, &n) == ERR_OK) {
            CHECK(n == 0 || (p >= body && p + n <= body + len));
            for (size_t k = 0; k < n; k++)
                sink ^= p[k];
        }
        (void)msg_is_nil(m, i);
        (void)msg_u64_opt(m, i, 7, &v);
        (void)msg_bytes_opt(m, i, &p, &n);
    }
    (void)sink;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 3)
        return 0;
    uint32_t max_frame = (uint32_t)data[0] << 8 | data[1];
    if (max_frame == 0xffff)
        max_frame = DDKV_DEFAULT_MAX_FRAME_BYTES;
    size_t k = data[2];
    if (k > size - 3)
        k = size - 3;
    const uint8_t *ctrl = data + 3;
    const uint8_t *stream = data + 3 + k;
    size_t slen = size - 3 - k;

    struct expected exp_frames;
    reference_parse(stream, slen, max_frame, &exp_frames);

    struct frame_decoder d;
    frame_decoder_init(&d, max_frame);
    size_t fed = 0, got = 0, consumed = 0, ci = 0;
    size_t cap_bound = 256;
    int sticky = ERR_OK;
    while (fed < slen) {
        /* Piece sizes: 0 = the rest; high bit = large steps; else 1..127 bytes. */
        size_t piece = slen - fed;
        bool drain = true;
        if (k > 0) {
            uint8_t c = ctrl[ci++ % k];
            if (c != 0)
                piece = c & 0x80 ? (size_t)(c & 0x3f) * 509 + 1 : c;
            /* Bit 6 with the high bit: leave frames queued across this read. */
            drain = !((c & 0xc0) == 0xc0);
        }
        if (piece > slen - fed)
            piece = slen - fed;

        size_t pending_before = frame_decoder_pending(&d);
        size_t cap_before = d.in.cap;
        int rc = frame_decoder_feed(&d, stream + fed, piece);
        fed += piece;

        if (sticky != ERR_OK) {
            CHECK(rc == sticky); /* once refused, always refused */
        } else if (rc != ERR_OK) {
            CHECK(rc == ERR_TOO_LARGE);
            /* Refused exactly when the bad header has fully arrived, not before. */
            CHECK(exp_frames.refused && fed >= exp_frames.bad_at + 4);
            sticky = rc;
        } else {
            CHECK(!exp_frames.refused || fed < exp_frames.bad_at + 4);
        }
        /* Nothing at or after a refused header is ever buffered. */
        if (exp_frames.refused)
            CHECK(consumed + frame_decoder_pending(&d) <= exp_frames.bad_at + 3);
        else
            CHECK(consumed + frame_decoder_pending(&d) == fed);
        /* Memory follows what is pending plus one read, never the announced sizes. */
        size_t grow = 4 * (pending_before + piece);
        if (grow > cap_bound)
            cap_bound = grow;
        CHECK(d.in.cap <= (cap_before > cap_bound ? cap_before : cap_bound));
        if (pending_before == 0 && sticky == ERR_OK)
            CHECK(d.in.cap <= 64 * 1024 || d.in.cap <= 2 * piece + 256);

        if (!drain)
            continue;
        const uint8_t *body;
        size_t len;
        int nrc;
        while ((nrc = frame_decoder_next(&d, &body, &len)) == ERR_OK) {
            CHECK(got < exp_frames.n);
            CHECK(len == exp_frames.len[got]);
            CHECK(len == 0 || memcmp(body, stream + exp_frames.off[got], len) == 0);
            CHECK(len <= max_frame);
            got++;
            consumed += 4 + len;

            struct msg m;
            struct errbuf eb;
            if (msg_decode(&m, body, len, &msg_limits_request, &eb) == ERR_OK) {
                CHECK(m.type > 0 && m.type < DDKV_MSG_TYPE_MAX);
                touch_message(&m, body, len);
                msg_free(&m);
            }
        }
        CHECK(nrc == ERR_AGAIN || (nrc == sticky && sticky != ERR_OK));
    }
    /* Drain what is left: the same frames as the one-shot parse, in order. */
    const uint8_t *body;
    size_t len;
    while (frame_decoder_next(&d, &body, &len) == ERR_OK) {
        CHECK(got < exp_frames.n);
        CHECK(len == exp_frames.len[got]);
        CHECK(len == 0 || memcmp(body, stream + exp_frames.off[got], len) == 0);
        got++;
    }
    CHECK(got == exp_frames.n);
    CHECK((sticky != ERR_OK) == exp_frames.refused);
    frame_decoder_free(&d);
    free(exp_frames.off);
    free(exp_frames.len);
    return 0;
}
