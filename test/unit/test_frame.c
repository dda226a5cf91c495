/* Unit tests for the streaming frame decoder (src/core/proto/frame.c): splitting, limits, sticky errors, memory. */
#include <criterion/criterion.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "ddkv/wire.h"
#include "proto/frame.h"
#include "util/buf.h"
#include "util/err.h"
#include "harness.h"

/* A stream of frames built in memory, with the bodies remembered for comparison. */
struct stream {
    struct buf bytes;
    size_t nframes;
    size_t body_off[64];
    size_t body_len[64];
};

static void stream_add(struct stream *s, const void *body, uint32_t n)
{
    cr_assert_lt(s->nframes, 64);
    uint8_t hdr[4];
    put_be32(hdr, n);
    cr_assert_eq(buf_append(&s->bytes, hdr, 4), ERR_OK);
    s->body_off[s->nframes] = s->bytes.len;
    s->body_len[s->nframes] = n;
    s->nframes++;
    cr_assert_eq(buf_append(&s->bytes, body, n), ERR_OK);
}

/* Body bytes that differ per frame and per position, so a mix-up shows. */
static void stream_add_pattern(struct stream *s, uint32_t n, uint8_t seed)
{
    uint8_t *body = malloc(n ? n : 1);
    cr_assert_not_null(body);
    for (uint32_t i = 0; i < n; i++)
        body[i] = (uint8_t)(seed + i * 7);
    stream_add(s, body, n);
    free(body);
}

static const uint8_t *stream_body(const struct stream *s, size_t i)
{
    return s->bytes.data + s->body_off[i];
}

/* Take every complete frame, checking each against the next expected one. */
static void drain_expect(struct frame_decoder *d, const struct stream *s, size_t *next_frame)
{
    const uint8_t *body;
    size_t len;
    int rc;
    while ((rc = frame_decoder_next(d, &body, &len)) == ERR_OK) {
        cr_assert_lt(*next_frame, s->nframes, "decoder handed out more frames than were sent");
        size_t k = (*next_frame)++;
        cr_assert_eq(len, s->body_len[k], "frame %zu: length %zu, want %zu", k, len, s->body_len[k]);
        cr_assert_not_null(body);
        if (len)
            cr_assert_eq(memcmp(body, stream_body(s, k), len), 0, "frame %zu: body differs", k);
    }
    cr_assert_eq(rc, ERR_AGAIN);
}

static void build_mixed_stream(struct stream *s)
{
    memset(s, 0, sizeof *s);
    stream_add_pattern(s, 0, 1);
    stream_add_pattern(s, 5, 2);
    stream_add_pattern(s, 1, 3);
    stream_add_pattern(s, 0, 4);
    stream_add_pattern(s, 300, 5);
    stream_add_pattern(s, 3, 6);
}

Test(frame, empty_decoder_has_nothing)
{
    struct frame_decoder d;
    frame_decoder_init(&d, 1024);
    const uint8_t *body;
    size_t len;
    cr_assert_eq(frame_decoder_next(&d, &body, &len), ERR_AGAIN);
    cr_assert_eq(frame_decoder_pending(&d), 0);
    cr_assert_eq(frame_decoder_feed(&d, "", 0), ERR_OK);
    cr_assert_eq(frame_decoder_next(&d, &body, &len), ERR_AGAIN);
    frame_decoder_free(&d);
}

Test(frame, split_once_at_every_byte_boundary)
{
    struct stream s;
    build_mixed_stream(&s);
    for (size_t cut = 0; cut <= s.bytes.len; cut++) {
        struct frame_decoder d;
        frame_decoder_init(&d, 4096);
        size_t got = 0;
        cr_assert_eq(frame_decoder_feed(&d, s.bytes.data, cut), ERR_OK);
        drain_expect(&d, &s, &got);
        cr_assert_eq(frame_decoder_feed(&d, s.bytes.data + cut, s.bytes.len - cut), ERR_OK);
        drain_expect(&d, &s, &got);
        cr_assert_eq(got, s.nframes, "cut at %zu: got %zu of %zu frames", cut, got, s.nframes);
        cr_assert_eq(frame_decoder_pending(&d), 0);
        frame_decoder_free(&d);
    }
    buf_free(&s.bytes);
}

Test(frame, split_twice_at_every_pair_of_boundaries)
{
    struct stream s;
    memset(&s, 0, sizeof s);
    stream_add_pattern(&s, 0, 1);
    stream_add_pattern(&s, 6, 2);
    stream_add_pattern(&s, 2, 3);
    stream_add_pattern(&s, 9, 4);
    for (size_t a = 0; a <= s.bytes.len; a++) {
        for (size_t b = a; b <= s.bytes.len; b++) {
            struct frame_decoder d;
            frame_decoder_init(&d, 64);
            size_t got = 0;
            cr_assert_eq(frame_decoder_feed(&d, s.bytes.data, a), ERR_OK);
            drain_expect(&d, &s, &got);
            cr_assert_eq(frame_decoder_feed(&d, s.bytes.data + a, b - a), ERR_OK);
            drain_expect(&d, &s, &got);
            cr_assert_eq(frame_decoder_feed(&d, s.bytes.data + b, s.bytes.len - b), ERR_OK);
            drain_expect(&d, &s, &got);
            cr_assert_eq(got, s.nframes, "cuts %zu,%zu", a, b);
            cr_assert_eq(frame_decoder_pending(&d), 0);
            frame_decoder_free(&d);
        }
    }
    buf_free(&s.bytes);
}

Test(frame, one_byte_at_a_time)
{
    struct stream s;
    build_mixed_stream(&s);
    struct frame_decoder d;
    frame_decoder_init(&d, 4096);
    size_t got = 0;
    for (size_t i = 0; i < s.bytes.len; i++) {
        cr_assert_eq(frame_decoder_feed(&d, s.bytes.data + i, 1), ERR_OK);
        drain_expect(&d, &s, &got);
    }
    cr_assert_eq(got, s.nframes);
    cr_assert_eq(frame_decoder_pending(&d), 0);
    frame_decoder_free(&d);
    buf_free(&s.bytes);
}

Test(frame, several_frames_in_one_feed)
{
    struct stream s;
    build_mixed_stream(&s);
    struct frame_decoder d;
    frame_decoder_init(&d, 4096);
    cr_assert_eq(frame_decoder_feed(&d, s.bytes.data, s.bytes.len), ERR_OK);
    cr_assert_eq(frame_decoder_pending(&d), s.bytes.len);
    size_t got = 0;
    drain_expect(&d, &s, &got);
    cr_assert_eq(got, s.nframes);
    cr_assert_eq(frame_decoder_pending(&d), 0);
    frame_decoder_free(&d);
    buf_free(&s.bytes);
}

Test(frame, partial_frame_is_pending_not_handed_out)
{
    struct stream s;
    memset(&s, 0, sizeof s);
    stream_add_pattern(&s, 10, 9);
    struct frame_decoder d;
    frame_decoder_init(&d, 4096);
    const uint8_t *body;
    size_t len;
    cr_assert_eq(frame_decoder_feed(&d, s.bytes.data, s.bytes.len - 1), ERR_OK);
    cr_assert_eq(frame_decoder_next(&d, &body, &len), ERR_AGAIN);
    cr_assert_eq(frame_decoder_pending(&d), s.bytes.len - 1);
    cr_assert_eq(frame_decoder_feed(&d, s.bytes.data + s.bytes.len - 1, 1), ERR_OK);
    cr_assert_eq(frame_decoder_next(&d, &body, &len), ERR_OK);
    cr_assert_eq(len, 10);
    cr_assert_eq(memcmp(body, stream_body(&s, 0), 10), 0);
    cr_assert_eq(frame_decoder_pending(&d), 0);
    frame_decoder_free(&d);
    buf_free(&s.bytes);
}

Test(frame, zero_length_frame)
{
    static const uint8_t zero[4] = {0, 0, 0, 0};
    struct frame_decoder d;
    frame_decoder_init(&d, 16);
    cr_assert_eq(frame_decoder_feed(&d, zero, 4), ERR_OK);
    const uint8_t *body = NULL;
    size_t len = 99;
    cr_assert_eq(frame_decoder_next(&d, &body, &len), ERR_OK);
    cr_assert_eq(len, 0);
    cr_assert_not_null(body);
    cr_assert_eq(frame_decoder_next(&d, &body, &len), ERR_AGAIN);
    cr_assert_eq(frame_decoder_pending(&d), 0);
    frame_decoder_free(&d);
}

Test(frame, zero_limit_accepts_only_empty_frames)
{
    static const uint8_t bytes[] = {0, 0, 0, 0, 0, 0, 0, 1, 'x'};
    struct frame_decoder d;
    frame_decoder_init(&d, 0);
    cr_assert_eq(frame_decoder_feed(&d, bytes, sizeof bytes), ERR_TOO_LARGE);
    const uint8_t *body;
    size_t len;
    cr_assert_eq(frame_decoder_next(&d, &body, &len), ERR_OK);
    cr_assert_eq(len, 0);
    cr_assert_eq(frame_decoder_next(&d, &body, &len), ERR_TOO_LARGE);
    frame_decoder_free(&d);
}

Test(frame, exactly_at_limit_is_accepted)
{
    const uint32_t limit = 1000;
    struct stream s;
    memset(&s, 0, sizeof s);
    stream_add_pattern(&s, limit, 3);
    struct frame_decoder d;
    frame_decoder_init(&d, limit);
    cr_assert_eq(frame_decoder_feed(&d, s.bytes.data, 4), ERR_OK, "header of a frame at the limit refused");
    cr_assert_eq(frame_decoder_feed(&d, s.bytes.data + 4, s.bytes.len - 4), ERR_OK);
    size_t got = 0;
    drain_expect(&d, &s, &got);
    cr_assert_eq(got, 1);
    frame_decoder_free(&d);
    buf_free(&s.bytes);
}

Test(frame, default_limit_is_the_wire_limit)
{
    /* 4 MiB exactly is fine from the header alone; 4 MiB + 1 is refused. */
    uint8_t hdr[4];
    struct frame_decoder d;
    frame_decoder_init(&d, DDKV_DEFAULT_MAX_FRAME_BYTES);
    put_be32(hdr, DDKV_DEFAULT_MAX_FRAME_BYTES);
    cr_assert_eq(frame_decoder_feed(&d, hdr, 4), ERR_OK);
    frame_decoder_free(&d);
    frame_decoder_init(&d, DDKV_DEFAULT_MAX_FRAME_BYTES);
    put_be32(hdr, DDKV_DEFAULT_MAX_FRAME_BYTES + 1);
    cr_assert_eq(frame_decoder_feed(&d, hdr, 4), ERR_TOO_LARGE);
    frame_decoder_free(&d);
}

Test(frame, limit_plus_one_refused_from_header_alone)
{
    const uint32_t limit = 1000;
    uint8_t hdr[4];
    put_be32(hdr, limit + 1);
    struct frame_decoder d;
    frame_decoder_init(&d, limit);
    /* Only the 4 length bytes: no body has arrived, the answer is already no. */
    cr_assert_eq(frame_decoder_feed(&d, hdr, 4), ERR_TOO_LARGE);
    const uint8_t *body;
    size_t len;
    cr_assert_eq(frame_decoder_next(&d, &body, &len), ERR_TOO_LARGE);
    cr_assert_eq(frame_decoder_pending(&d), 0, "the refused header must not be buffered");
    cr_assert_leq(d.in.len, 4);
    frame_decoder_free(&d);
}

Test(frame, limit_plus_one_refused_when_header_trickles_in)
{
    const uint32_t limit = 1000;
    uint8_t hdr[4];
    put_be32(hdr, limit + 1);
    struct frame_decoder d;
    frame_decoder_init(&d, limit);
    for (int i = 0; i < 3; i++) {
        cr_assert_eq(frame_decoder_feed(&d, hdr + i, 1), ERR_OK, "refused before the length was known");
        cr_assert_eq(frame_decoder_pending(&d), (size_t)i + 1);
    }
    cr_assert_eq(frame_decoder_feed(&d, hdr + 3, 1), ERR_TOO_LARGE);
    /* At most the three length bytes that came before the verdict stay behind. */
    cr_assert_leq(frame_decoder_pending(&d), 3);
    const uint8_t *body;
    size_t len;
    cr_assert_eq(frame_decoder_next(&d, &body, &len), ERR_TOO_LARGE);
    frame_decoder_free(&d);
}

Test(frame, huge_length_prefix_with_junk_does_not_grow_buffer)
{
    /* One good frame, then a 2 GiB announcement and 64 KiB of junk in the same read. */
    const size_t junk = 64 * 1024;
    struct stream s;
    memset(&s, 0, sizeof s);
    stream_add_pattern(&s, 7, 1);
    size_t before = s.bytes.len;
    uint8_t hdr[4];
    put_be32(hdr, UINT32_C(0x80000000));
    cr_assert_eq(buf_append(&s.bytes, hdr, 4), ERR_OK);
    cr_assert_eq(buf_reserve(&s.bytes, junk), ERR_OK);
    memset(s.bytes.data + s.bytes.len, 0xab, junk);
    s.bytes.len += junk;

    struct frame_decoder d;
    frame_decoder_init(&d, DDKV_DEFAULT_MAX_FRAME_BYTES);
    cr_assert_eq(frame_decoder_feed(&d, s.bytes.data, s.bytes.len), ERR_TOO_LARGE);
    cr_assert_leq(d.in.len, before, "buffered %zu bytes, only %zu came before the bad header", d.in.len,
                  before);
    cr_assert_lt(d.in.cap, junk, "buffer grew to %zu for junk after a refused header", d.in.cap);
    /* More junk after the verdict is not buffered either. */
    cr_assert_eq(frame_decoder_feed(&d, s.bytes.data + before + 4, junk), ERR_TOO_LARGE);
    cr_assert_leq(d.in.len, before);
    cr_assert_lt(d.in.cap, junk);

    /* The frame before the refused one is still handed out, then the error. */
    size_t got = 0;
    const uint8_t *body;
    size_t len;
    cr_assert_eq(frame_decoder_next(&d, &body, &len), ERR_OK);
    cr_assert_eq(len, 7);
    cr_assert_eq(memcmp(body, stream_body(&s, 0), 7), 0);
    got++;
    cr_assert_eq(frame_decoder_next(&d, &body, &len), ERR_TOO_LARGE);
    cr_assert_eq(got, 1);
    frame_decoder_free(&d);
    buf_free(&s.bytes);
}

Test(frame, huge_length_prefix_in_separate_reads)
{
    /* Good frame, then the bad header split over two reads, then junk. */
    struct stream s;
    memset(&s, 0, sizeof s);
    stream_add_pattern(&s, 20, 4);
    uint8_t hdr[4];
    put_be32(hdr, UINT32_MAX);
    struct frame_decoder d;
    frame_decoder_init(&d, 4096);
    cr_assert_eq(frame_decoder_feed(&d, s.bytes.data, s.bytes.len), ERR_OK);
    cr_assert_eq(frame_decoder_feed(&d, hdr, 2), ERR_OK);
    cr_assert_eq(frame_decoder_feed(&d, hdr + 2, 2), ERR_TOO_LARGE);
    static uint8_t junk[8192];
    memset(junk, 0xee, sizeof junk);
    cr_assert_eq(frame_decoder_feed(&d, junk, sizeof junk), ERR_TOO_LARGE);
    cr_assert_leq(frame_decoder_pending(&d), s.bytes.len + 2);
    size_t got = 0;
    const uint8_t *body;
    size_t len;
    while (frame_decoder_next(&d, &body, &len) == ERR_OK) {
        cr_assert_eq(len, 20);
        cr_assert_eq(memcmp(body, stream_body(&s, 0), 20), 0);
        got++;
    }
    cr_assert_eq(got, 1);
    cr_assert_eq(frame_decoder_next(&d, &body, &len), ERR_TOO_LARGE);
    frame_decoder_free(&d);
    buf_free(&s.bytes);
}

Test(frame, frames_before_refused_one_are_handed_out)
{
    struct stream s;
    build_mixed_stream(&s);
    uint8_t hdr[4];
    put_be32(hdr, 4097);
    cr_assert_eq(buf_append(&s.bytes, hdr, 4), ERR_OK);
    cr_assert_eq(buf_append(&s.bytes, "trailing", 8), ERR_OK);
    /* Whatever the read sizes, the same frames come out and then the error. */
    for (size_t piece = 1; piece <= s.bytes.len; piece++) {
        struct frame_decoder d;
        frame_decoder_init(&d, 4096);
        size_t got = 0;
        int rc = ERR_OK;
        for (size_t off = 0; off < s.bytes.len && rc == ERR_OK; off += piece) {
            size_t n = s.bytes.len - off < piece ? s.bytes.len - off : piece;
            rc = frame_decoder_feed(&d, s.bytes.data + off, n);
            const uint8_t *body;
            size_t len;
            while (frame_decoder_next(&d, &body, &len) == ERR_OK) {
                cr_assert_lt(got, s.nframes);
                cr_assert_eq(len, s.body_len[got]);
                got++;
            }
        }
        cr_assert_eq(rc, ERR_TOO_LARGE, "piece %zu", piece);
        cr_assert_eq(got, s.nframes, "piece %zu: %zu of %zu good frames", piece, got, s.nframes);
        frame_decoder_free(&d);
    }
    buf_free(&s.bytes);
}

Test(frame, error_is_sticky)
{
    uint8_t bad[4];
    put_be32(bad, 65);
    struct stream good;
    memset(&good, 0, sizeof good);
    stream_add_pattern(&good, 3, 8);
    struct frame_decoder d;
    frame_decoder_init(&d, 64);
    cr_assert_eq(frame_decoder_feed(&d, bad, 4), ERR_TOO_LARGE);
    for (int i = 0; i < 3; i++) {
        /* A well-formed frame after the refusal is not accepted: the stream is dead. */
        cr_assert_eq(frame_decoder_feed(&d, good.bytes.data, good.bytes.len), ERR_TOO_LARGE);
        const uint8_t *body;
        size_t len;
        cr_assert_eq(frame_decoder_next(&d, &body, &len), ERR_TOO_LARGE);
        cr_assert_eq(frame_decoder_pending(&d), 0);
    }
    frame_decoder_free(&d);
    buf_free(&good.bytes);
}

Test(frame, memory_released_after_large_frame)
{
    const uint32_t big = 1024 * 1024;
    struct stream s;
    memset(&s, 0, sizeof s);
    stream_add_pattern(&s, big, 5);
    struct frame_decoder d;
    frame_decoder_init(&d, DDKV_DEFAULT_MAX_FRAME_BYTES);
    size_t got = 0;
    for (size_t off = 0; off < s.bytes.len; off += 4096) {
        size_t n = s.bytes.len - off < 4096 ? s.bytes.len - off : 4096;
        cr_assert_eq(frame_decoder_feed(&d, s.bytes.data + off, n), ERR_OK);
    }
    drain_expect(&d, &s, &got);
    cr_assert_eq(got, 1);
    cr_assert_eq(frame_decoder_pending(&d), 0);

    /* The next small read must not keep the megabyte alive on an idle connection. */
    static const uint8_t small[] = {0, 0, 0, 2, 'h', 'i'};
    cr_assert_eq(frame_decoder_feed(&d, small, sizeof small), ERR_OK);
    cr_assert_leq(d.in.cap, 64 * 1024, "still holding %zu bytes after a large frame", d.in.cap);
    const uint8_t *body;
    size_t len;
    cr_assert_eq(frame_decoder_next(&d, &body, &len), ERR_OK);
    cr_assert_eq(len, 2);
    cr_assert_eq(memcmp(body, "hi", 2), 0);
    cr_assert_eq(frame_decoder_pending(&d), 0);
    frame_decoder_free(&d);
    cr_assert_null(d.in.data);
    cr_assert_eq(frame_decoder_pending(&d), 0);
    buf_free(&s.bytes);
}

Test(frame, buffer_stays_bounded_over_a_long_stream)
{
    /* Many frames consumed as they arrive: memory follows the largest frame, not the total. */
    struct frame_decoder d;
    frame_decoder_init(&d, 4096);
    uint8_t frame[4 + 1000];
    put_be32(frame, 1000);
    memset(frame + 4, 0x5a, 1000);
    size_t got = 0;
    for (int i = 0; i < 5000; i++) {
        /* Reads that straddle frame boundaries, so a partial frame is always pending. */
        size_t cut = (size_t)(i % 7) * 100 + 3;
        cr_assert_eq(frame_decoder_feed(&d, frame, cut), ERR_OK);
        cr_assert_eq(frame_decoder_feed(&d, frame + cut, sizeof frame - cut), ERR_OK);
        const uint8_t *body;
        size_t len;
        while (frame_decoder_next(&d, &body, &len) == ERR_OK) {
            cr_assert_eq(len, 1000);
            got++;
        }
        cr_assert_leq(d.in.cap, 4 * sizeof frame + 256, "buffer grew to %zu", d.in.cap);
    }
    cr_assert_eq(got, 5000);
    frame_decoder_free(&d);
}

Test(frame, buffer_stays_bounded_when_reads_never_align_with_frames)
{
    /* A steady stream read in pieces that never end on a frame boundary: a partial
     * frame is always pending, so the consumed prefix must still be given back. */
    struct frame_decoder d;
    frame_decoder_init(&d, 4096);
    const size_t flen = 4 + 1000, nframes = 3000, piece = 999;
    uint8_t *stream = malloc(flen * nframes);
    cr_assert_not_null(stream);
    for (size_t i = 0; i < nframes; i++) {
        put_be32(stream + i * flen, 1000);
        memset(stream + i * flen + 4, (int)(i & 0xff), 1000);
    }
    size_t got = 0;
    for (size_t off = 0; off < flen * nframes; off += piece) {
        size_t n = flen * nframes - off < piece ? flen * nframes - off : piece;
        cr_assert_eq(frame_decoder_feed(&d, stream + off, n), ERR_OK);
        const uint8_t *body;
        size_t len;
        while (frame_decoder_next(&d, &body, &len) == ERR_OK) {
            cr_assert_eq(len, 1000);
            cr_assert_eq(body[0], (uint8_t)(got & 0xff));
            cr_assert_eq(body[999], (uint8_t)(got & 0xff));
            got++;
        }
        cr_assert_leq(d.in.cap, 8 * flen, "buffer grew to %zu after %zu frames", d.in.cap, got);
    }
    cr_assert_eq(got, nframes);
    cr_assert_eq(frame_decoder_pending(&d), 0);
    frame_decoder_free(&d);
    free(stream);
}

Test(frame, random_reads_and_takes_match_the_sent_frames)
{
    uint64_t seed = 0x9e3779b97f4a7c15u;
    for (int round = 0; round < 200; round++) {
        struct stream s;
        memset(&s, 0, sizeof s);
        size_t nf = 1 + test_rng(&seed) % 40;
        for (size_t i = 0; i < nf; i++) {
            uint32_t n = (uint32_t)(test_rng(&seed) % 4 == 0 ? test_rng(&seed) % 2000 : test_rng(&seed) % 16);
            stream_add_pattern(&s, n, (uint8_t)i);
        }
        struct frame_decoder d;
        frame_decoder_init(&d, 2000);
        size_t off = 0, got = 0;
        while (off < s.bytes.len) {
            size_t n = 1 + test_rng(&seed) % 700;
            if (n > s.bytes.len - off)
                n = s.bytes.len - off;
            cr_assert_eq(frame_decoder_feed(&d, s.bytes.data + off, n), ERR_OK);
            off += n;
            /* Sometimes leave frames queued across reads. */
            if (test_rng(&seed) % 3)
                drain_expect(&d, &s, &got);
        }
        drain_expect(&d, &s, &got);
        cr_assert_eq(got, s.nframes, "round %d", round);
        cr_assert_eq(frame_decoder_pending(&d), 0);
        frame_decoder_free(&d);
        buf_free(&s.bytes);
    }
}

Test(frame, body_pointer_stays_valid_until_next_feed)
{
    struct stream s;
    memset(&s, 0, sizeof s);
    stream_add_pattern(&s, 50, 1);
    stream_add_pattern(&s, 60, 2);
    struct frame_decoder d;
    frame_decoder_init(&d, 4096);
    cr_assert_eq(frame_decoder_feed(&d, s.bytes.data, s.bytes.len), ERR_OK);
    const uint8_t *b1, *b2;
    size_t l1, l2;
    /* Two frames taken between feeds are both readable. */
    cr_assert_eq(frame_decoder_next(&d, &b1, &l1), ERR_OK);
    cr_assert_eq(frame_decoder_next(&d, &b2, &l2), ERR_OK);
    cr_assert_eq(l1, 50);
    cr_assert_eq(l2, 60);
    cr_assert_eq(memcmp(b1, stream_body(&s, 0), 50), 0);
    cr_assert_eq(memcmp(b2, stream_body(&s, 1), 60), 0);
    frame_decoder_free(&d);
    buf_free(&s.bytes);
}

Test(frame, decoder_reusable_after_free)
{
    struct stream s;
    build_mixed_stream(&s);
    struct frame_decoder d;
    frame_decoder_init(&d, 4096);
    cr_assert_eq(frame_decoder_feed(&d, s.bytes.data, 10), ERR_OK);
    frame_decoder_free(&d);
    frame_decoder_init(&d, 4096);
    size_t got = 0;
    cr_assert_eq(frame_decoder_feed(&d, s.bytes.data, s.bytes.len), ERR_OK);
    drain_expect(&d, &s, &got);
    cr_assert_eq(got, s.nframes);
    frame_decoder_free(&d);
    buf_free(&s.bytes);
}
