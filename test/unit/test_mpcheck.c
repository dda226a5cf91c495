/* Unit tests for the msgpack bounds check (src/core/proto/mpcheck.c): lying lengths, depth, object count, every format. */
#include <criterion/criterion.h>
#include <msgpack.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "proto/mpcheck.h"
#include "proto/msg.h"
#include "util/err.h"
#include "harness.h"

/* Wide limits, for tests about something other than depth and count. */
static const struct mpcheck_limits lim_wide = {.max_depth = 16, .max_objects = 1u << 24};

#define BYTES(...) ((const uint8_t[]){__VA_ARGS__}), sizeof((const uint8_t[]){__VA_ARGS__})

static int check(const uint8_t *p, size_t n)
{
    return mpcheck(p, n, &lim_wide, NULL);
}

static void expect_refused(const uint8_t *p, size_t n, const char *what)
{
    const char *why = NULL;
    cr_assert_eq(mpcheck(p, n, &lim_wide, &why), ERR_BAD_INPUT, "%s: accepted", what);
    cr_assert_not_null(why, "%s: refused without a reason", what);
    cr_assert_gt(strlen(why), 0);
}

/* msgpack-c itself must agree that an accepted value is exactly one whole value. */
static void expect_unpacks(const uint8_t *p, size_t n, const char *what)
{
    msgpack_unpacked up;
    msgpack_unpacked_init(&up);
    size_t off = 0;
    msgpack_unpack_return ret = msgpack_unpack_next(&up, (const char *)p, n, &off);
    cr_assert_eq(ret, MSGPACK_UNPACK_SUCCESS, "%s: msgpack-c says %d", what, (int)ret);
    cr_assert_eq(off, n, "%s: msgpack-c consumed %zu of %zu", what, off, n);
    msgpack_unpacked_destroy(&up);
}

/* An accepted value: whole value ok, every proper prefix refused (msgpack values are
 * prefix-free, so a cut value is always truncated), one extra byte refused. */
static void expect_valid_value(const uint8_t *p, size_t n, const char *what)
{
    const char *why = "untouched";
    cr_assert_eq(mpcheck(p, n, &lim_wide, &why), ERR_OK, "%s: refused (%s)", what, why);
    cr_assert_str_eq(why, "untouched", "%s: why written on success", what);
    expect_unpacks(p, n, what);
    for (size_t cut = 0; cut < n; cut++) {
        /* Long values: all short cuts and all cuts near the end, plus a sample between. */
        if (n > 512 && cut > 64 && cut < n - 64 && cut % 997 != 0)
            continue;
        cr_assert_eq(check(p, cut), ERR_BAD_INPUT, "%s: prefix of %zu/%zu bytes accepted", what, cut, n);
    }
    uint8_t *longer = malloc(n + 1);
    cr_assert_not_null(longer);
    memcpy(longer, p, n);
    longer[n] = 0xc0;
    cr_assert_eq(check(longer, n + 1), ERR_BAD_INPUT, "%s: trailing byte accepted", what);
    free(longer);
}

/* --- the allocation attacks from DEPENDENCIES.md --- */

Test(mpcheck, map32_claiming_16m_pairs)
{
    expect_refused(BYTES(0xdf, 0x01, 0x00, 0x00, 0x00), "df 01 00 00 00");
}

Test(mpcheck, array32_claiming_4g_elements)
{
    expect_refused(BYTES(0xdd, 0xff, 0xff, 0xff, 0xff), "dd ff ff ff ff");
}

Test(mpcheck, array16_claiming_65535_elements)
{
    expect_refused(BYTES(0xdc, 0xff, 0xff), "dc ff ff");
    /* Still a lie with some elements present. */
    expect_refused(BYTES(0xdc, 0xff, 0xff, 0xc0, 0xc0, 0xc0), "dc ff ff + 3 nils");
}

Test(mpcheck, map16_claiming_more_pairs_than_bytes)
{
    expect_refused(BYTES(0xde, 0xff, 0xff, 0xc0, 0xc0), "de ff ff");
    /* 2 pairs need 4 values; 3 present. */
    expect_refused(BYTES(0xde, 0x00, 0x02, 0xc0, 0xc0, 0xc0), "de 00 02 short");
}

Test(mpcheck, str_and_bin_lengths_past_the_end)
{
    expect_refused(BYTES(0xdb, 0xff, 0xff, 0xff, 0xff, 'a', 'b'), "str32 4G");
    expect_refused(BYTES(0xdb, 0x00, 0x00, 0x00, 0x03, 'a', 'b'), "str32 one short");
    expect_refused(BYTES(0xc6, 0xff, 0xff, 0xff, 0xff, 0x00), "bin32 4G");
    expect_refused(BYTES(0xc6, 0x00, 0x00, 0x00, 0x02, 0x00), "bin32 one short");
    expect_refused(BYTES(0xda, 0xff, 0xff, 'x'), "str16 64K");
    expect_refused(BYTES(0xc5, 0x01, 0x00, 'x'), "bin16 256");
    expect_refused(BYTES(0xd9, 0x05, 'a', 'b', 'c', 'd'), "str8 one short");
    expect_refused(BYTES(0xc4, 0x01), "bin8 empty body");
    expect_refused(BYTES(0xa5, 'a', 'b'), "fixstr 5 with 2");
}

Test(mpcheck, ext_lengths_past_the_end)
{
    expect_refused(BYTES(0xc9, 0xff, 0xff, 0xff, 0xff, 0x01), "ext32 4G");
    expect_refused(BYTES(0xc9, 0x00, 0x00, 0x00, 0x01, 0x01), "ext32 data missing");
    expect_refused(BYTES(0xc8, 0xff, 0xff, 0x01, 0x00), "ext16 64K");
    expect_refused(BYTES(0xc7, 0x02, 0x01, 0xaa), "ext8 one short");
    /* The type byte counts too: a zero-length ext still needs it. */
    expect_refused(BYTES(0xc7, 0x00), "ext8 without type byte");
    expect_refused(BYTES(0xd4, 0x01), "fixext1 without data");
    expect_refused(BYTES(0xd5, 0x01, 0x00), "fixext2 short");
    expect_refused(BYTES(0xd6, 0x01, 0x00, 0x00, 0x00), "fixext4 short");
    expect_refused(BYTES(0xd7, 0x01, 0, 0, 0, 0, 0, 0, 0), "fixext8 short");
    expect_refused(BYTES(0xd8, 0x01, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0), "fixext16 short");
}

Test(mpcheck, attacks_nested_inside_a_message_are_refused)
{
    /* [WRITE, 0, 0, <attack>] and {"k": <attack>}: the lie is found at any depth. */
    static const uint8_t attacks[][5] = {
        {0xdf, 0x01, 0x00, 0x00, 0x00},
        {0xdd, 0xff, 0xff, 0xff, 0xff},
        {0xdc, 0xff, 0xff, 0xc0, 0xc0},
        {0xdb, 0x7f, 0xff, 0xff, 0xff},
        {0xc6, 0x7f, 0xff, 0xff, 0xff},
        {0xc9, 0x7f, 0xff, 0xff, 0xff},
    };
    for (size_t i = 0; i < sizeof attacks / sizeof attacks[0]; i++) {
        uint8_t msg[4 + 5] = {0x94, 0x06, 0x00, 0x00};
        memcpy(msg + 4, attacks[i], 5);
        expect_refused(msg, sizeof msg, "attack in message");
        uint8_t map[3 + 5] = {0x81, 0xa1, 'k'};
        memcpy(map + 3, attacks[i], 5);
        expect_refused(map, sizeof map, "attack in map");

        struct msg m;
        struct errbuf eb = {{0}};
        cr_assert_eq(msg_decode(&m, msg, sizeof msg, &msg_limits_request, &eb), ERR_BAD_INPUT);
        cr_assert_gt(strlen(eb.msg), 0);
    }
}

Test(mpcheck, count_one_more_than_present)
{
    expect_refused(BYTES(0x93, 0xc0, 0xc0), "fixarray 3 of 2");
    expect_refused(BYTES(0x82, 0xc0, 0xc0, 0xc0), "fixmap 2 with 3 values");
    expect_refused(BYTES(0xdc, 0x00, 0x03, 0x01, 0x02), "array16 3 of 2");
    expect_refused(BYTES(0xdd, 0x00, 0x00, 0x00, 0x02, 0x01), "array32 2 of 1");
    expect_refused(BYTES(0xdf, 0x00, 0x00, 0x00, 0x01, 0xc0), "map32 key without value");
    /* A count equal to the bytes left, but the elements are longer than one byte. */
    expect_refused(BYTES(0x92, 0xcd, 0x01), "elements longer than the count allows");
}

/* --- structure limits --- */

/* depth nested one-element arrays around a nil. */
static size_t nested_arrays(uint8_t *out, size_t depth)
{
    for (size_t i = 0; i < depth; i++)
        out[i] = 0x91;
    out[depth] = 0xc0;
    return depth + 1;
}

Test(mpcheck, nesting_at_limit_accepted_one_deeper_refused)
{
    for (uint32_t limit = 1; limit <= 12; limit++) {
        struct mpcheck_limits lim = {.max_depth = limit, .max_objects = 1000};
        uint8_t b[64];
        size_t n = nested_arrays(b, limit);
        const char *why = NULL;
        cr_assert_eq(mpcheck(b, n, &lim, &why), ERR_OK, "depth %u at limit %u: %s", limit, limit, why);
        n = nested_arrays(b, limit + 1);
        cr_assert_eq(mpcheck(b, n, &lim, &why), ERR_BAD_INPUT, "depth %u over limit %u accepted", limit + 1,
                     limit);
    }
}

Test(mpcheck, nested_maps_count_toward_depth)
{
    /* {"a": {"a": ... nil}} */
    struct mpcheck_limits lim = {.max_depth = 4, .max_objects = 1000};
    uint8_t b[64];
    size_t n = 0;
    for (int i = 0; i < 4; i++) {
        b[n++] = 0x81;
        b[n++] = 0xa1;
        b[n++] = 'a';
    }
    b[n++] = 0xc0;
    cr_assert_eq(mpcheck(b, n, &lim, NULL), ERR_OK);
    expect_unpacks(b, n, "4 nested maps");
    lim.max_depth = 3;
    cr_assert_eq(mpcheck(b, n, &lim, NULL), ERR_BAD_INPUT);
}

Test(mpcheck, message_limits_refuse_deep_nesting)
{
    /* [PING, 0, 0, [[[[[[[[nil]]]]]]]]]: 9 containers is past the limit of 8. */
    uint8_t b[64] = {0x94, 0x02, 0x00, 0x00};
    size_t n = 4 + nested_arrays(b + 4, msg_limits_request.max_depth);
    cr_assert_eq(mpcheck(b, n, &msg_limits_request, NULL), ERR_BAD_INPUT);
    cr_assert_eq(mpcheck(b, n, &msg_limits_reply, NULL), ERR_BAD_INPUT);
    n = 4 + nested_arrays(b + 4, msg_limits_request.max_depth - 1);
    cr_assert_eq(mpcheck(b, n, &msg_limits_request, NULL), ERR_OK);
}

Test(mpcheck, depth_limit_has_a_hard_ceiling)
{
    /* Even a caller asking for no depth limit cannot make the walk overflow its stack. */
    struct mpcheck_limits lim = {.max_depth = UINT32_MAX, .max_objects = UINT32_MAX};
    static uint8_t b[100001];
    size_t n = nested_arrays(b, 100000);
    cr_assert_eq(mpcheck(b, n, &lim, NULL), ERR_BAD_INPUT);
    n = nested_arrays(b, 200);
    cr_assert_eq(mpcheck(b, n, &lim, NULL), ERR_BAD_INPUT);
    n = nested_arrays(b, 16);
    cr_assert_eq(mpcheck(b, n, &lim, NULL), ERR_OK);
}

Test(mpcheck, object_count_at_limit_accepted_one_more_refused)
{
    /* An array of k nils is k + 1 objects. */
    const uint32_t limit = 100;
    struct mpcheck_limits lim = {.max_depth = 4, .max_objects = limit};
    uint8_t b[3 + 200];
    b[0] = 0xdc;
    b[1] = 0;
    b[2] = (uint8_t)(limit - 1);
    memset(b + 3, 0xc0, limit - 1);
    cr_assert_eq(mpcheck(b, 3 + limit - 1, &lim, NULL), ERR_OK);
    b[2] = (uint8_t)limit;
    memset(b + 3, 0xc0, limit);
    const char *why = NULL;
    cr_assert_eq(mpcheck(b, 3 + limit, &lim, &why), ERR_BAD_INPUT);
    cr_assert_not_null(why);
}

Test(mpcheck, object_count_includes_nested_values_and_map_keys)
{
    /* [[nil, nil], {"k": nil}] = 1 + (1 + 2) + (1 + 2) = 7 objects. */
    const uint8_t b[] = {0x92, 0x92, 0xc0, 0xc0, 0x81, 0xa1, 'k', 0xc0};
    struct mpcheck_limits lim = {.max_depth = 4, .max_objects = 7};
    cr_assert_eq(mpcheck(b, sizeof b, &lim, NULL), ERR_OK);
    lim.max_objects = 6;
    cr_assert_eq(mpcheck(b, sizeof b, &lim, NULL), ERR_BAD_INPUT);
}

Test(mpcheck, request_limits_refuse_many_small_objects)
{
    /* 5000 one-byte fields fit in a frame but exceed the request object limit. */
    size_t n = 5000;
    uint8_t *b = malloc(5 + n);
    cr_assert_not_null(b);
    b[0] = 0xdd;
    b[1] = 0;
    b[2] = 0;
    b[3] = (uint8_t)(n >> 8);
    b[4] = (uint8_t)n;
    memset(b + 5, 0x01, n);
    cr_assert_eq(mpcheck(b, 5 + n, &msg_limits_request, NULL), ERR_BAD_INPUT);
    cr_assert_eq(mpcheck(b, 5 + n, &msg_limits_reply, NULL), ERR_OK);
    free(b);
}

/* --- malformed bytes --- */

Test(mpcheck, empty_input_refused)
{
    const uint8_t none = 0;
    expect_refused(&none, 0, "empty");
}

Test(mpcheck, trailing_bytes_refused)
{
    expect_refused(BYTES(0xc0, 0xc0), "two nils");
    expect_refused(BYTES(0x90, 0x00), "empty array then 0");
    expect_refused(BYTES(0x93, 0x01, 0x02, 0x03, 0x04), "array then extra");
    expect_refused(BYTES(0xa1, 'a', 'b'), "fixstr then extra");
}

Test(mpcheck, reserved_byte_c1_refused)
{
    expect_refused(BYTES(0xc1), "c1");
    expect_refused(BYTES(0x92, 0x01, 0xc1), "c1 in array");
    expect_refused(BYTES(0x81, 0xc1, 0xc0), "c1 as map key");
    expect_refused(BYTES(0x81, 0xa1, 'k', 0xc1), "c1 as map value");
}

Test(mpcheck, byte_c1_as_payload_is_fine)
{
    /* 0xc1 is only reserved as a type byte: as data or an ext type it is ordinary. */
    expect_valid_value(BYTES(0xcc, 0xc1), "uint8 0xc1");
    expect_valid_value(BYTES(0xa1, 0xc1), "fixstr holding c1");
    expect_valid_value(BYTES(0xc4, 0x01, 0xc1), "bin8 holding c1");
    expect_valid_value(BYTES(0xd4, 0xc1, 0x00), "fixext1 of type -63");
}

Test(mpcheck, truncated_numbers_refused)
{
    static const struct {
        uint8_t tag;
        uint8_t payload;
    } nums[] = {{0xca, 4}, {0xcb, 8}, {0xcc, 1}, {0xcd, 2}, {0xce, 4}, {0xcf, 8},
                {0xd0, 1}, {0xd1, 2}, {0xd2, 4}, {0xd3, 8}};
    for (size_t i = 0; i < sizeof nums / sizeof nums[0]; i++) {
        uint8_t b[1 + 8 + 1] = {nums[i].tag};
        memset(b + 1, 0x11, 8);
        /* Every short payload, alone and as the last element of an array. */
        for (uint8_t have = 0; have < nums[i].payload; have++) {
            expect_refused(b, 1 + (size_t)have, "truncated number");
            uint8_t a[1 + 1 + 8] = {0x91};
            memcpy(a + 1, b, 1 + (size_t)have);
            expect_refused(a, 2 + (size_t)have, "truncated number in array");
        }
        expect_valid_value(b, 1 + (size_t)nums[i].payload, "full number");
    }
}

Test(mpcheck, truncated_length_fields_refused)
{
    static const struct {
        uint8_t tag;
        uint8_t lenbytes;
    } tags[] = {{0xc4, 1}, {0xc5, 2}, {0xc6, 4}, {0xc7, 1}, {0xc8, 2}, {0xc9, 4}, {0xd9, 1},
                {0xda, 2}, {0xdb, 4}, {0xdc, 2}, {0xdd, 4}, {0xde, 2}, {0xdf, 4}};
    for (size_t i = 0; i < sizeof tags / sizeof tags[0]; i++) {
        uint8_t b[5] = {tags[i].tag, 0, 0, 0, 0};
        for (uint8_t have = 0; have < tags[i].lenbytes; have++)
            expect_refused(b, 1 + (size_t)have, "truncated length field");
    }
}

/* --- every format, valid --- */

/* The smallest interesting valid value whose first byte is b (b != 0xc1), built from
 * the msgpack spec independently of mpcheck. Returns its length. */
static size_t value_starting_with(uint8_t b, uint8_t *out)
{
    size_t n = 0;
    out[n++] = b;
    if (b <= 0x7f || b >= 0xe0 || b == 0xc0 || b == 0xc2 || b == 0xc3)
        return n;
    if (b >= 0x80 && b <= 0x8f) { /* fixmap: nil keys and values */
        for (unsigned i = 0; i < (b & 0x0fu) * 2; i++)
            out[n++] = 0xc0;
        return n;
    }
    if (b >= 0x90 && b <= 0x9f) {
        for (unsigned i = 0; i < (b & 0x0fu); i++)
            out[n++] = (uint8_t)i;
        return n;
    }
    if (b >= 0xa0 && b <= 0xbf) {
        for (unsigned i = 0; i < (b & 0x1fu); i++)
            out[n++] = (uint8_t)('a' + i % 26);
        return n;
    }
    /* len(k) = k as a big-endian field of w bytes */
#define LEN(w, k)                                                                                  \
    do {                                                                                           \
        for (int s_ = (w)-1; s_ >= 0; s_--)                                                        \
            out[n++] = (uint8_t)((unsigned)(k) >> (8 * s_));                                       \
    } while (0)
#define FILL(k, v)                                                                                 \
    do {                                                                                           \
        for (unsigned f_ = 0; f_ < (unsigned)(k); f_++)                                            \
            out[n++] = (uint8_t)(v);                                                               \
    } while (0)
    switch (b) {
    case 0xc4: LEN(1, 3); FILL(3, 0xff); break;
    case 0xc5: LEN(2, 3); FILL(3, 0x00); break;
    case 0xc6: LEN(4, 3); FILL(3, 0xc1); break;
    case 0xc7: LEN(1, 3); out[n++] = 0x05; FILL(3, 0xaa); break;
    case 0xc8: LEN(2, 3); out[n++] = 0xff; FILL(3, 0xaa); break;
    case 0xc9: LEN(4, 0); out[n++] = 0x01; break;
    case 0xca: FILL(4, 0x3f); break;
    case 0xcb: FILL(8, 0x40); break;
    case 0xcc: FILL(1, 0xff); break;
    case 0xcd: FILL(2, 0xff); break;
    case 0xce: FILL(4, 0xff); break;
    case 0xcf: FILL(8, 0xff); break;
    case 0xd0: FILL(1, 0x80); break;
    case 0xd1: FILL(2, 0x80); break;
    case 0xd2: FILL(4, 0x80); break;
    case 0xd3: FILL(8, 0x80); break;
    case 0xd4: out[n++] = 0x01; FILL(1, 0x00); break;
    case 0xd5: out[n++] = 0x01; FILL(2, 0x00); break;
    case 0xd6: out[n++] = 0xff; FILL(4, 0x00); break; /* timestamp 32 */
    case 0xd7: out[n++] = 0x01; FILL(8, 0x00); break;
    case 0xd8: out[n++] = 0x01; FILL(16, 0x00); break;
    case 0xd9: LEN(1, 3); FILL(3, 'x'); break;
    case 0xda: LEN(2, 3); FILL(3, 'y'); break;
    case 0xdb: LEN(4, 3); FILL(3, 'z'); break;
    case 0xdc: LEN(2, 3); FILL(3, 0xc0); break;
    case 0xdd: LEN(4, 3); FILL(3, 0xc3); break;
    case 0xde: LEN(2, 2); FILL(4, 0x01); break;
    case 0xdf: LEN(4, 2); FILL(4, 0x02); break;
    default: cr_assert_fail("no value for 0x%02x", b);
    }
#undef LEN
#undef FILL
    return n;
}

Test(mpcheck, every_first_byte_has_a_valid_value)
{
    for (unsigned b = 0; b <= 0xff; b++) {
        if (b == 0xc1)
            continue;
        uint8_t v[64];
        size_t n = value_starting_with((uint8_t)b, v);
        char what[32];
        snprintf(what, sizeof what, "format 0x%02x", b);
        expect_valid_value(v, n, what);
        /* The same value as an element of an array and as a map value. */
        uint8_t a[70] = {0x92, 0xc0};
        memcpy(a + 2, v, n);
        expect_valid_value(a, n + 2, what);
        uint8_t m[70] = {0x81, 0xa1, 'k'};
        memcpy(m + 3, v, n);
        expect_valid_value(m, n + 3, what);
    }
}

Test(mpcheck, empty_containers_and_strings)
{
    expect_valid_value(BYTES(0x90), "[]");
    expect_valid_value(BYTES(0x80), "{}");
    expect_valid_value(BYTES(0xa0), "\"\"");
    expect_valid_value(BYTES(0xdc, 0x00, 0x00), "array16 0");
    expect_valid_value(BYTES(0xdd, 0x00, 0x00, 0x00, 0x00), "array32 0");
    expect_valid_value(BYTES(0xde, 0x00, 0x00), "map16 0");
    expect_valid_value(BYTES(0xdf, 0x00, 0x00, 0x00, 0x00), "map32 0");
    expect_valid_value(BYTES(0xc4, 0x00), "bin8 0");
    expect_valid_value(BYTES(0xc6, 0x00, 0x00, 0x00, 0x00), "bin32 0");
    expect_valid_value(BYTES(0xdb, 0x00, 0x00, 0x00, 0x00), "str32 0");
    expect_valid_value(BYTES(0xc7, 0x00, 0x01), "ext8 0");
    expect_valid_value(BYTES(0x92, 0x90, 0x80), "[[], {}]");
}

/* Pack value number k with msgpack-c's own packer; returns false past the last one.
 * *first is the format byte the packer is expected to choose. */
static bool pack_value(msgpack_packer *pk, int k, uint8_t *first)
{
    static char big[70000];
    memset(big, 'q', sizeof big);
    switch (k) {
    case 0: *first = 0xc0; msgpack_pack_nil(pk); break;
    case 1: *first = 0xc3; msgpack_pack_true(pk); break;
    case 2: *first = 0xc2; msgpack_pack_false(pk); break;
    case 3: *first = 0x05; msgpack_pack_uint64(pk, 5); break;
    case 4: *first = 0xcc; msgpack_pack_uint64(pk, 200); break;
    case 5: *first = 0xcd; msgpack_pack_uint64(pk, 60000); break;
    case 6: *first = 0xce; msgpack_pack_uint64(pk, 4000000000u); break;
    case 7: *first = 0xcf; msgpack_pack_uint64(pk, UINT64_MAX); break;
    case 8: *first = 0xff; msgpack_pack_int64(pk, -1); break;
    case 9: *first = 0xd0; msgpack_pack_int64(pk, -100); break;
    case 10: *first = 0xd1; msgpack_pack_int64(pk, -30000); break;
    case 11: *first = 0xd2; msgpack_pack_int64(pk, -2000000000); break;
    case 12: *first = 0xd3; msgpack_pack_int64(pk, INT64_MIN); break;
    case 13: *first = 0xca; msgpack_pack_float(pk, 1.5f); break;
    case 14: *first = 0xcb; msgpack_pack_double(pk, -2.25); break;
    case 15: *first = 0xa3; msgpack_pack_str_with_body(pk, "abc", 3); break;
    case 16: *first = 0xd9; msgpack_pack_str_with_body(pk, big, 200); break;
    case 17: *first = 0xda; msgpack_pack_str_with_body(pk, big, 1000); break;
    case 18: *first = 0xdb; msgpack_pack_str_with_body(pk, big, sizeof big); break;
    case 19: *first = 0xc4; msgpack_pack_bin_with_body(pk, big, 10); break;
    case 20: *first = 0xc5; msgpack_pack_bin_with_body(pk, big, 300); break;
    case 21: *first = 0xc6; msgpack_pack_bin_with_body(pk, big, sizeof big); break;
    case 22:
        *first = 0x93;
        msgpack_pack_array(pk, 3);
        msgpack_pack_nil(pk);
        msgpack_pack_str_with_body(pk, "x", 1);
        msgpack_pack_array(pk, 0);
        break;
    case 23:
        *first = 0xdc;
        msgpack_pack_array(pk, 20);
        for (int i = 0; i < 20; i++)
            msgpack_pack_int(pk, i - 10);
        break;
    case 24:
        *first = 0xdd;
        msgpack_pack_array(pk, 70000);
        for (int i = 0; i < 70000; i++)
            msgpack_pack_nil(pk);
        break;
    case 25:
        *first = 0x82;
        msgpack_pack_map(pk, 2);
        msgpack_pack_str_with_body(pk, "a", 1);
        msgpack_pack_uint64(pk, 1);
        msgpack_pack_uint64(pk, 7); /* non-string keys are legal msgpack */
        msgpack_pack_map(pk, 0);
        break;
    case 26:
        *first = 0xde;
        msgpack_pack_map(pk, 16);
        for (int i = 0; i < 16; i++) {
            msgpack_pack_int(pk, i);
            msgpack_pack_true(pk);
        }
        break;
    case 27:
        *first = 0xdf;
        msgpack_pack_map(pk, 70000);
        for (int i = 0; i < 70000; i++) {
            msgpack_pack_int(pk, i);
            msgpack_pack_nil(pk);
        }
        break;
    case 28: *first = 0xd4; msgpack_pack_ext_with_body(pk, "a", 1, 1); break;
    case 29: *first = 0xd5; msgpack_pack_ext_with_body(pk, "ab", 2, 2); break;
    case 30: *first = 0xd6; msgpack_pack_ext_with_body(pk, "abcd", 4, 3); break;
    case 31: *first = 0xd7; msgpack_pack_ext_with_body(pk, "abcdefgh", 8, 4); break;
    case 32: *first = 0xd8; msgpack_pack_ext_with_body(pk, big, 16, 5); break;
    case 33: *first = 0xc7; msgpack_pack_ext_with_body(pk, big, 3, -5); break;
    case 34: *first = 0xc8; msgpack_pack_ext_with_body(pk, big, 1000, 6); break;
    case 35: *first = 0xc9; msgpack_pack_ext_with_body(pk, big, sizeof big, 7); break;
    case 36: {
        msgpack_timestamp ts = {.tv_sec = 1700000000, .tv_nsec = 123};
        *first = 0xd7;
        msgpack_pack_timestamp(pk, &ts);
        break;
    }
    default: return false;
    }
    return true;
}

Test(mpcheck, values_from_msgpack_packer_accepted)
{
    int k = 0;
    for (;; k++) {
        msgpack_sbuffer sb;
        msgpack_sbuffer_init(&sb);
        msgpack_packer pk;
        msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
        uint8_t first = 0;
        if (!pack_value(&pk, k, &first)) {
            msgpack_sbuffer_destroy(&sb);
            break;
        }
        char what[32];
        snprintf(what, sizeof what, "packed value %d", k);
        cr_assert_gt(sb.size, 0);
        cr_assert_eq((uint8_t)sb.data[0], first, "%s: format 0x%02x, meant 0x%02x", what,
                     (uint8_t)sb.data[0], first);
        expect_valid_value((const uint8_t *)sb.data, sb.size, what);
        msgpack_sbuffer_destroy(&sb);
    }
    cr_assert_eq(k, 37);
}

Test(mpcheck, why_may_be_null)
{
    cr_assert_eq(mpcheck((const uint8_t *)"\xc1", 1, &lim_wide, NULL), ERR_BAD_INPUT);
    cr_assert_eq(mpcheck((const uint8_t *)"\xc0", 1, &lim_wide, NULL), ERR_OK);
}

Test(mpcheck, accepted_random_bytes_always_unpack_whole)
{
    /* Random short inputs biased toward headers and small lengths: whatever mpcheck
     * accepts, msgpack-c must unpack as exactly one value using every byte. */
    static const uint8_t pool[] = {0x00, 0x01, 0x7f, 0x80, 0x81, 0x82, 0x90, 0x91, 0x92, 0x93, 0xa0, 0xa1,
                                   0xa2, 0xc0, 0xc1, 0xc2, 0xc3, 0xc4, 0xc5, 0xc6, 0xc7, 0xc8, 0xc9, 0xca,
                                   0xcb, 0xcc, 0xcd, 0xce, 0xcf, 0xd0, 0xd1, 0xd2, 0xd3, 0xd4, 0xd5, 0xd6,
                                   0xd7, 0xd8, 0xd9, 0xda, 0xdb, 0xdc, 0xdd, 0xde, 0xdf, 0xe0, 0xff};
    uint64_t seed = 42;
    int accepted = 0;
    for (int iter = 0; iter < 300000; iter++) {
        uint8_t b[24];
        size_t n = 1 + test_rng(&seed) % sizeof b;
        for (size_t i = 0; i < n; i++) {
            uint64_t r = test_rng(&seed);
            b[i] = r % 4 == 0 ? (uint8_t)(r >> 8) : pool[(r >> 8) % sizeof pool];
        }
        if (mpcheck(b, n, &lim_wide, NULL) != ERR_OK)
            continue;
        accepted++;
        expect_unpacks(b, n, "random");
    }
    cr_assert_gt(accepted, 1000, "the generator hardly produced valid values (%d)", accepted);
}
