/* CRC-32C: published check values (RFC 3720 B.4 and the "123456789" check),
 * chaining, and agreement of the fast path with a bit-at-a-time reference at
 * every length and alignment. */
#include <criterion/criterion.h>
#include <string.h>

#include "util/crc32c.h"

/* The definition, one bit at a time: the reference the tables must match. */
static uint32_t crc_bitwise(const uint8_t *p, size_t n)
{
    uint32_t c = 0xFFFFFFFFu;
    for (size_t i = 0; i < n; i++) {
        c ^= p[i];
        for (int b = 0; b < 8; b++)
            c = (c & 1u) ? (c >> 1) ^ 0x82F63B78u : c >> 1;
    }
    return ~c;
}

Test(crc32c, check_value)
{
    cr_assert_eq(crc32c("123456789", 9), 0xE3069283u);
    cr_assert_eq(crc32c("", 0), 0u, "the CRC of nothing is 0");
    cr_assert_eq(crc32c("a", 1), 0xC1D04330u);
}

Test(crc32c, rfc3720_vectors)
{
    uint8_t b[32];
    memset(b, 0, sizeof b);
    cr_assert_eq(crc32c(b, sizeof b), 0x8A9136AAu, "32 zero bytes");
    memset(b, 0xff, sizeof b);
    cr_assert_eq(crc32c(b, sizeof b), 0x62A8AB43u, "32 bytes of 0xff");
    for (int i = 0; i < 32; i++)
        b[i] = (uint8_t)i;
    cr_assert_eq(crc32c(b, sizeof b), 0x46DD794Eu, "0, 1, ..., 31");
    for (int i = 0; i < 32; i++)
        b[i] = (uint8_t)(31 - i);
    cr_assert_eq(crc32c(b, sizeof b), 0x113FDB5Cu, "31, 30, ..., 0");
}

Test(crc32c, chaining_equals_one_pass)
{
    const char *s = "The quick brown fox jumps over the lazy dog, twice over.";
    size_t n = strlen(s);
    uint32_t whole = crc32c(s, n);
    for (size_t cut = 0; cut <= n; cut++) {
        uint32_t c = crc32c_update(0, s, cut);
        c = crc32c_update(c, s + cut, n - cut);
        cr_assert_eq(c, whole, "split at %zu", cut);
    }
}

Test(crc32c, fast_path_matches_reference_at_every_length_and_alignment)
{
    static uint8_t buf[1100];
    uint64_t x = 0x9E3779B97F4A7C15u;
    for (size_t i = 0; i < sizeof buf; i++) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        buf[i] = (uint8_t)x;
    }
    for (size_t off = 0; off < 8; off++)
        for (size_t n = 0; n + off <= sizeof buf; n += (n < 64 ? 1 : 37))
            cr_assert_eq(crc32c(buf + off, n), crc_bitwise(buf + off, n), "offset %zu length %zu", off, n);
}

Test(crc32c, every_single_byte_change_is_detected)
{
    uint8_t b[64];
    for (int i = 0; i < 64; i++)
        b[i] = (uint8_t)(i * 7);
    uint32_t good = crc32c(b, sizeof b);
    for (int i = 0; i < 64; i++)
        for (int d = 1; d < 256; d++) {
            b[i] ^= (uint8_t)d;
            cr_assert_neq(crc32c(b, sizeof b), good, "byte %d xor %d", i, d);
            b[i] ^= (uint8_t)d;
        }
}
