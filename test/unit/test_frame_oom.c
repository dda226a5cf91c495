/* Unit tests for the frame decoder when memory runs out (src/core/proto/frame.c): ERR_NOMEM is sticky. */
#include <criterion/criterion.h>
#include <stdint.h>
#include <string.h>

#include "proto/frame.h"
#include "util/buf.h"
#include "util/err.h"

/* Out-of-memory is made real with ASan's allocator: allocations over 8 MiB fail
 * (return NULL) in this test binary only. Without ASan the tests are skipped. */
#if defined(__SANITIZE_ADDRESS__)
#define HAVE_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define HAVE_ASAN 1
#endif
#endif

const char *__asan_default_options(void);
const char *__asan_default_options(void)
{
    return "allocator_may_return_null=1:max_allocation_size_mb=8";
}

static uint8_t chunk[1024 * 1024];

/* A small frame, then the header of a 32 MiB one whose body is fed until the
 * buffer cannot grow. Returns the feed's error. */
static int feed_until_nomem(struct frame_decoder *d)
{
    static const uint8_t small[] = {0, 0, 0, 3, 'a', 'b', 'c'};
    cr_assert_eq(frame_decoder_feed(d, small, sizeof small), ERR_OK);
    uint8_t hdr[4];
    put_be32(hdr, 32u * 1024 * 1024);
    cr_assert_eq(frame_decoder_feed(d, hdr, 4), ERR_OK);
    memset(chunk, 0x77, sizeof chunk);
    for (int i = 0; i < 32; i++) {
        int rc = frame_decoder_feed(d, chunk, sizeof chunk);
        if (rc != ERR_OK)
            return rc;
    }
    return ERR_OK;
}

Test(frame_oom, nomem_is_sticky)
{
#ifndef HAVE_ASAN
    cr_skip_test("needs ASan to make allocations fail");
#endif
    struct frame_decoder d;
    frame_decoder_init(&d, 64u * 1024 * 1024);
    cr_assert_eq(feed_until_nomem(&d), ERR_NOMEM, "the 8 MiB allocation limit was not hit");
    /* Bytes were dropped, so what follows cannot be framed: refuse it. */
    static const uint8_t ping[] = {0, 0, 0, 1, 0xc0};
    cr_assert_eq(frame_decoder_feed(&d, ping, sizeof ping), ERR_NOMEM, "decoder accepted input after losing bytes");
    cr_assert_eq(frame_decoder_feed(&d, chunk, 16), ERR_NOMEM);
    /* The frame completed before the failure is still handed out, then the error. */
    const uint8_t *body;
    size_t len;
    cr_assert_eq(frame_decoder_next(&d, &body, &len), ERR_OK);
    cr_assert_eq(len, 3);
    cr_assert_eq(memcmp(body, "abc", 3), 0);
    cr_assert_eq(frame_decoder_next(&d, &body, &len), ERR_NOMEM);
    cr_assert_eq(frame_decoder_next(&d, &body, &len), ERR_NOMEM);
    frame_decoder_free(&d);
}

Test(frame_oom, fresh_decoder_works_after_another_ran_out)
{
#ifndef HAVE_ASAN
    cr_skip_test("needs ASan to make allocations fail");
#endif
    struct frame_decoder d;
    frame_decoder_init(&d, 64u * 1024 * 1024);
    cr_assert_eq(feed_until_nomem(&d), ERR_NOMEM);
    frame_decoder_free(&d);
    /* The failure is per connection: a new decoder starts clean. */
    frame_decoder_init(&d, 1024);
    static const uint8_t ping[] = {0, 0, 0, 1, 0xc0};
    cr_assert_eq(frame_decoder_feed(&d, ping, sizeof ping), ERR_OK);
    const uint8_t *body;
    size_t len;
    cr_assert_eq(frame_decoder_next(&d, &body, &len), ERR_OK);
    cr_assert_eq(len, 1);
    frame_decoder_free(&d);
}
