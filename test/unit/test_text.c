/* Unit tests for UTF-8 validation and base64 (src/core/util/text.c), checked against RFC vectors and a reference. */
#include <criterion/criterion.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "util/text.h"
#include "harness.h"

#define VALID(s) utf8_valid((s), sizeof(s) - 1)

/* --- UTF-8 --- */

/* Reference: Unicode 15 Table 3-7 (well-formed byte sequences), written as byte
 * ranges rather than arithmetic, plus our own rule that NUL is refused. */
static bool ref_utf8_valid(const uint8_t *s, size_t n)
{
    size_t i = 0;
    while (i < n) {
        uint8_t c = s[i];
        uint8_t lo = 0x80, hi = 0xbf;
        size_t need;
        if (c == 0x00)
            return false;
        if (c <= 0x7f) {
            i++;
            continue;
        } else if (c >= 0xc2 && c <= 0xdf) {
            need = 1;
        } else if (c == 0xe0) {
            need = 2;
            lo = 0xa0;
        } else if ((c >= 0xe1 && c <= 0xec) || c == 0xee || c == 0xef) {
            need = 2;
        } else if (c == 0xed) {
            need = 2;
            hi = 0x9f;
        } else if (c == 0xf0) {
            need = 3;
            lo = 0x90;
        } else if (c >= 0xf1 && c <= 0xf3) {
            need = 3;
        } else if (c == 0xf4) {
            need = 3;
            hi = 0x8f;
        } else {
            return false;
        }
        if (n - i - 1 < need)
            return false;
        if (s[i + 1] < lo || s[i + 1] > hi)
            return false;
        for (size_t k = 2; k <= need; k++)
            if (s[i + k] < 0x80 || s[i + k] > 0xbf)
                return false;
        i += need + 1;
    }
    return true;
}

/* Encode code point cp; returns the length. */
static size_t encode_cp(uint32_t cp, uint8_t *out)
{
    if (cp < 0x80) {
        out[0] = (uint8_t)cp;
        return 1;
    }
    if (cp < 0x800) {
        out[0] = (uint8_t)(0xc0 | cp >> 6);
        out[1] = (uint8_t)(0x80 | (cp & 0x3f));
        return 2;
    }
    if (cp < 0x10000) {
        out[0] = (uint8_t)(0xe0 | cp >> 12);
        out[1] = (uint8_t)(0x80 | (cp >> 6 & 0x3f));
        out[2] = (uint8_t)(0x80 | (cp & 0x3f));
        return 3;
    }
    out[0] = (uint8_t)(0xf0 | cp >> 18);
    out[1] = (uint8_t)(0x80 | (cp >> 12 & 0x3f));
    out[2] = (uint8_t)(0x80 | (cp >> 6 & 0x3f));
    out[3] = (uint8_t)(0x80 | (cp & 0x3f));
    return 4;
}

Test(utf8, valid_text)
{
    cr_assert(utf8_valid("", 0));
    cr_assert(VALID("plain ascii ~!@#"));
    cr_assert(VALID("\x7f"));
    cr_assert(VALID("caf\xc3\xa9"));         /* é */
    cr_assert(VALID("\xe2\x82\xac"));        /* € */
    cr_assert(VALID("\xf0\x9d\x84\x9e"));    /* 𝄞 U+1D11E */
    cr_assert(VALID("\xf4\x8f\xbf\xbf"));    /* U+10FFFF, the last code point */
    cr_assert(VALID("\xed\x9f\xbf"));        /* U+D7FF, just below the surrogates */
    cr_assert(VALID("\xee\x80\x80"));        /* U+E000, just above */
    cr_assert(VALID("\xef\xbf\xbf"));        /* U+FFFF */
    cr_assert(VALID("\xc2\x80"));            /* U+0080, smallest 2-byte */
    cr_assert(VALID("\xe0\xa0\x80"));        /* U+0800, smallest 3-byte */
    cr_assert(VALID("\xf0\x90\x80\x80"));    /* U+10000, smallest 4-byte */
    cr_assert(VALID("\xef\xbb\xbfwith BOM"));
}

Test(utf8, overlongs_refused)
{
    cr_assert_not(VALID("\xc0\x80"), "overlong NUL");
    cr_assert_not(VALID("\xc0\xaf"), "overlong /");
    cr_assert_not(VALID("\xc1\xbf"));
    cr_assert_not(VALID("\xe0\x80\x80"));
    cr_assert_not(VALID("\xe0\x80\xaf"));
    cr_assert_not(VALID("\xe0\x9f\xbf"), "U+07FF in 3 bytes");
    cr_assert_not(VALID("\xf0\x80\x80\x80"));
    cr_assert_not(VALID("\xf0\x80\x80\xaf"));
    cr_assert_not(VALID("\xf0\x8f\xbf\xbf"), "U+FFFF in 4 bytes");
}

Test(utf8, surrogates_refused)
{
    cr_assert_not(VALID("\xed\xa0\x80"), "U+D800");
    cr_assert_not(VALID("\xed\xad\xbf"), "U+DB7F");
    cr_assert_not(VALID("\xed\xb0\x80"), "U+DC00");
    cr_assert_not(VALID("\xed\xbf\xbf"), "U+DFFF");
    cr_assert_not(VALID("\xed\xa0\xbd\xed\xb2\xa9"), "CESU-8 pair");
}

Test(utf8, beyond_u10ffff_and_long_forms_refused)
{
    cr_assert_not(VALID("\xf4\x90\x80\x80"), "U+110000");
    cr_assert_not(VALID("\xf5\x80\x80\x80"));
    cr_assert_not(VALID("\xf7\xbf\xbf\xbf"));
    cr_assert_not(VALID("\xf8\x88\x80\x80\x80"), "5-byte form");
    cr_assert_not(VALID("\xfc\x84\x80\x80\x80\x80"), "6-byte form");
    cr_assert_not(VALID("\xfe"));
    cr_assert_not(VALID("\xff"));
}

Test(utf8, truncated_sequences_refused)
{
    cr_assert_not(VALID("\xc3"));
    cr_assert_not(VALID("ab\xc3"));
    cr_assert_not(VALID("\xe2\x82"));
    cr_assert_not(VALID("\xf0\x9d\x84"));
    cr_assert_not(VALID("\xf0\x9d"));
    cr_assert_not(VALID("\xc3" "A"), "lead byte then ASCII");
    cr_assert_not(VALID("\xe2\x82" "A"));
    cr_assert_not(VALID("\xf0\x9d\x84" "A"));
    /* n is honoured: a valid sequence cut by the length is truncated. */
    cr_assert_not(utf8_valid("\xc3\xa9", 1));
    cr_assert_not(utf8_valid("\xf0\x9d\x84\x9e", 3));
    cr_assert(utf8_valid("\xf0\x9d\x84\x9e", 4));
}

Test(utf8, stray_continuation_bytes_refused)
{
    cr_assert_not(VALID("\x80"));
    cr_assert_not(VALID("\xbf"));
    cr_assert_not(VALID("a\x80" "b"));
    cr_assert_not(VALID("\xc3\xa9\xa9"), "one continuation too many");
}

Test(utf8, nul_refused)
{
    cr_assert_not(utf8_valid("\0", 1));
    cr_assert_not(utf8_valid("a\0b", 3));
    cr_assert_not(utf8_valid("abc\0", 4));
    cr_assert(utf8_valid("abc\0", 3), "length excludes the NUL");
}

Test(utf8, every_code_point)
{
    /* Each scalar value encodes to valid UTF-8 except U+0000 (refused by our rule);
     * each surrogate, encoded the same way, is refused. */
    for (uint32_t cp = 0; cp <= 0x10ffff; cp++) {
        uint8_t b[4];
        size_t n = encode_cp(cp, b);
        bool want = cp != 0 && !(cp >= 0xd800 && cp <= 0xdfff);
        cr_assert_eq(utf8_valid(b, n), want, "U+%04X", cp);
        /* And every proper prefix of a multi-byte sequence is truncated. */
        for (size_t k = 1; k < n; k++)
            cr_assert_not(utf8_valid(b, k), "U+%04X cut to %zu bytes", cp, k);
    }
}

Test(utf8, all_short_byte_strings_match_the_reference)
{
    /* Exhaustive over every 1-, 2- and 3-byte string. */
    uint8_t b[3];
    for (uint32_t x = 0; x < 0x100; x++) {
        b[0] = (uint8_t)x;
        cr_assert_eq(utf8_valid(b, 1), ref_utf8_valid(b, 1), "%02x", x);
    }
    for (uint32_t x = 0; x < 0x10000; x++) {
        b[0] = (uint8_t)(x >> 8);
        b[1] = (uint8_t)x;
        cr_assert_eq(utf8_valid(b, 2), ref_utf8_valid(b, 2), "%04x", x);
    }
    for (uint32_t x = 0; x < 0x1000000; x++) {
        b[0] = (uint8_t)(x >> 16);
        b[1] = (uint8_t)(x >> 8);
        b[2] = (uint8_t)x;
        if (utf8_valid(b, 3) != ref_utf8_valid(b, 3))
            cr_assert_fail("%06x: utf8_valid %d, reference %d", x, utf8_valid(b, 3), ref_utf8_valid(b, 3));
    }
}

Test(utf8, random_strings_match_the_reference)
{
    /* Random mixes of 4-byte leads, continuation bytes and ASCII. */
    static const uint8_t pool[] = {0x00, 0x41, 0x7f, 0x80, 0x8f, 0x90, 0x9f, 0xa0, 0xbf, 0xc0, 0xc1, 0xc2,
                                   0xdf, 0xe0, 0xe1, 0xec, 0xed, 0xee, 0xef, 0xf0, 0xf1, 0xf3, 0xf4, 0xf5,
                                   0xf7, 0xf8, 0xfb, 0xfc, 0xfd, 0xfe, 0xff};
    uint64_t seed = 7;
    size_t valid = 0;
    for (int iter = 0; iter < 400000; iter++) {
        uint8_t b[12];
        size_t n = test_rng(&seed) % (sizeof b + 1);
        for (size_t i = 0; i < n; i++) {
            uint64_t r = test_rng(&seed);
            b[i] = r % 3 ? pool[(r >> 8) % sizeof pool] : (uint8_t)(r >> 16);
        }
        bool want = ref_utf8_valid(b, n);
        valid += want;
        cr_assert_eq(utf8_valid(b, n), want, "iteration %d", iter);
    }
    cr_assert_gt(valid, 1000);
}

/* --- base64 --- */

static void expect_b64(const char *plain, const char *encoded)
{
    char *e = base64_encode(plain, strlen(plain));
    cr_assert_not_null(e);
    cr_assert_str_eq(e, encoded, "encode(\"%s\")", plain);
    free(e);
    size_t n = 12345;
    uint8_t *d = base64_decode(encoded, &n);
    cr_assert_not_null(d, "decode(\"%s\") refused", encoded);
    cr_assert_eq(n, strlen(plain));
    cr_assert_eq(memcmp(d, plain, n), 0);
    free(d);
}

Test(base64, rfc4648_test_vectors)
{
    /* RFC 4648 section 10. */
    expect_b64("", "");
    expect_b64("f", "Zg==");
    expect_b64("fo", "Zm8=");
    expect_b64("foo", "Zm9v");
    expect_b64("foob", "Zm9vYg==");
    expect_b64("fooba", "Zm9vYmE=");
    expect_b64("foobar", "Zm9vYmFy");
}

Test(base64, whole_alphabet)
{
    /* 0x00 0x10 0x83 ... encodes to every symbol in order, including + and /. */
    uint8_t bin[48];
    for (int i = 0; i < 16; i++) {
        uint32_t v = (uint32_t)(4 * i) << 18 | (uint32_t)(4 * i + 1) << 12 | (uint32_t)(4 * i + 2) << 6 |
                     (uint32_t)(4 * i + 3);
        bin[3 * i] = (uint8_t)(v >> 16);
        bin[3 * i + 1] = (uint8_t)(v >> 8);
        bin[3 * i + 2] = (uint8_t)v;
    }
    char *e = base64_encode(bin, sizeof bin);
    cr_assert_not_null(e);
    cr_assert_str_eq(e, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/");
    size_t n;
    uint8_t *d = base64_decode(e, &n);
    cr_assert_not_null(d);
    cr_assert_eq(n, sizeof bin);
    cr_assert_eq(memcmp(d, bin, n), 0);
    free(d);
    free(e);
}

Test(base64, random_binary_round_trips)
{
    uint64_t seed = 12345;
    uint8_t buf[300];
    for (size_t len = 0; len <= 300; len++) {
        for (int rep = 0; rep < 4; rep++) {
            for (size_t i = 0; i < len; i++) {
                uint64_t r = test_rng(&seed);
                /* rep 0: all bits set, rep 1: zeros, else random (NUL and high bytes included). */
                buf[i] = rep == 0 ? 0xff : rep == 1 ? 0x00 : (uint8_t)(r >> 24);
            }
            char *e = base64_encode(buf, len);
            cr_assert_not_null(e);
            size_t elen = strlen(e);
            cr_assert_eq(elen, (len + 2) / 3 * 4, "length %zu encodes to %zu chars", len, elen);
            size_t pad = (3 - len % 3) % 3;
            for (size_t i = 0; i < elen; i++) {
                char c = e[i];
                bool ok = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
                          c == '+' || c == '/' || (c == '=' && i >= elen - pad);
                cr_assert(ok, "length %zu: bad char '%c' at %zu", len, c, i);
            }
            size_t n = 0;
            uint8_t *d = base64_decode(e, &n);
            cr_assert_not_null(d, "length %zu: own output refused", len);
            cr_assert_eq(n, len);
            if (len)
                cr_assert_eq(memcmp(d, buf, len), 0, "length %zu: round trip differs", len);
            free(d);
            free(e);
        }
    }
}

Test(base64, decode_rejects_bad_input)
{
    static const char *const bad[] = {
        "Z", "Zg", "Zg=", "Zm9", "Zm9vY",         /* not a multiple of 4 */
        "Zm9!", "Zm 9", "Zm9v\n", " Zm9", "Zm9\t", /* characters outside the alphabet */
        "-_-_", "Zm9v-A==",                         /* base64url is not base64 */
        "Zg==Zm9v", "Zm8=Zm8=",                     /* padding before the end */
        "====", "Z===", "=Zg=", "Zg=a", "Zm=v",     /* padding in the wrong place */
        "Zm9v====", "Zm9v=", "\xc3\xa9\x41\x41",    /* extra padding, non-ASCII */
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        size_t n = 0;
        void *d = base64_decode(bad[i], &n);
        cr_assert_null(d, "\"%s\" accepted", bad[i]);
    }
}

Test(base64, decode_of_empty_is_empty_not_an_error)
{
    size_t n = 99;
    void *d = base64_decode("", &n);
    cr_assert_not_null(d);
    cr_assert_eq(n, 0);
    free(d);
}
