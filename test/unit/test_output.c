/* The CLI's escaping of user data in text output (src/apps/cli/output.c,
 * out_text): the result holds no control byte, no C1 control and nothing
 * that is not UTF-8, and unescaping it gives back the input exactly, for
 * every 1- and 2-byte input and for random ones; UTF-8 text passes as it is. */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

/* The CLI is not a library: compile its output module in. */
#include "../../src/apps/cli/output.c"

#include "util/rng.h"

static size_t unescape(const char *s, size_t n, uint8_t *out)
{
    size_t o = 0;
    for (size_t i = 0; i < n;) {
        if (s[i] != '\\') {
            out[o++] = (uint8_t)s[i++];
            continue;
        }
        cr_assert_lt(i + 1, n, "a lone backslash at the end");
        char e = s[i + 1];
        if (e == 'x') {
            cr_assert_leq(i + 4, n);
            char hex[3] = {s[i + 2], s[i + 3], 0};
            out[o++] = (uint8_t)strtoul(hex, NULL, 16);
            i += 4;
        } else {
            cr_assert(e == '\\' || e == 't' || e == 'n' || e == 'r', "unknown escape \\%c", e);
            out[o++] = e == '\\' ? '\\' : e == 't' ? '\t' : e == 'n' ? '\n' : '\r';
            i += 2;
        }
    }
    return o;
}

static void round_trip(const uint8_t *p, size_t n)
{
    char *s = out_text_dup(p, n, 0);
    cr_assert_not_null(s);
    size_t sl = strlen(s);
    for (size_t i = 0; i < sl; i++)
        cr_assert((unsigned char)s[i] >= 0x20 && s[i] != 0x7f, "control byte 0x%02x in the output",
                  (unsigned char)s[i]);
    cr_assert(utf8_valid(s, sl), "the output is UTF-8");
    for (size_t i = 0; i + 1 < sl; i++)
        cr_assert(!((unsigned char)s[i] == 0xc2 && (unsigned char)s[i + 1] < 0xa0), "a C1 control in the output");
    uint8_t *back = malloc(n + 1);
    cr_assert_not_null(back);
    cr_assert_eq(unescape(s, sl, back), n);
    cr_assert(!memcmp(back, p, n), "unescaping does not give the input back");
    free(back);
    free(s);
}

Test(output, every_short_input_round_trips_and_is_safe)
{
    for (unsigned a = 0; a < 256; a++) {
        uint8_t one = (uint8_t)a;
        round_trip(&one, 1);
        for (unsigned b = 0; b < 256; b++) {
            uint8_t two[2] = {(uint8_t)a, (uint8_t)b};
            round_trip(two, 2);
        }
    }
}

Test(output, random_inputs_round_trip)
{
    uint64_t seed = 22;
    uint8_t buf[64];
    for (int i = 0; i < 20000; i++) {
        size_t n = (size_t)(rng_next(&seed) % sizeof buf);
        for (size_t k = 0; k < n; k++)
            buf[k] = (uint8_t)rng_next(&seed);
        round_trip(buf, n);
    }
}

Test(output, text_passes_and_controls_are_named)
{
    char *s = out_text_dup("k\u00e9y \u2603\t\n\r\\\x1b[0m\xc2\x9b\xff", strlen("k\u00e9y \u2603\t\n\r\\\x1b[0m\xc2\x9b\xff"), 0);
    cr_assert_str_eq(s, "k\u00e9y \u2603\\t\\n\\r\\\\\\x1b[0m\\xc2\\x9b\\xff");
    free(s);
    s = out_text_dup("a\tb\nc\rd", 7, OUT_TEXT_KEEP_LINES);
    cr_assert_str_eq(s, "a\tb\nc\\rd");
    free(s);
}
