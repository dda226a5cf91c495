/* A device's Basic credentials at the hub (hub/hub_session.h), the parts
 * that need no cluster: where they may come from (HTTPS, or loopback over
 * plain HTTP: a device elsewhere on plain HTTP is refused, which a test on
 * 127.0.0.1 cannot show end to end), and malformed headers: a clear 400, or
 * 401 counted in the per-address throttle like a failed /api/login. */
#include <criterion/criterion.h>
#include <string.h>

#include "hub/hub_session.h"

static void v4(uint8_t a[16], int b0, int b1, int b2, int b3)
{
    memset(a, 0, 16);
    a[0] = (uint8_t)b0, a[1] = (uint8_t)b1, a[2] = (uint8_t)b2, a[3] = (uint8_t)b3;
}

Test(hubdev_basic, transport)
{
    uint8_t a[16];
    v4(a, 127, 0, 0, 1);
    cr_assert(hubsess_basic_transport_ok(false, a));
    v4(a, 127, 9, 8, 7);
    cr_assert(hubsess_basic_transport_ok(false, a), "all of 127/8 is this machine");
    v4(a, 192, 0, 2, 1);
    cr_assert(!hubsess_basic_transport_ok(false, a), "another machine over plain HTTP");
    cr_assert(hubsess_basic_transport_ok(true, a), "another machine over HTTPS");
    v4(a, 10, 127, 0, 1);
    cr_assert(!hubsess_basic_transport_ok(false, a));
    uint8_t v6[16] = {0};
    v6[15] = 1;
    cr_assert(hubsess_basic_transport_ok(false, v6), "::1");
    uint8_t mapped[16] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 127, 0, 0, 1};
    cr_assert(hubsess_basic_transport_ok(false, mapped), "::ffff:127.0.0.1");
    mapped[12] = 192;
    cr_assert(!hubsess_basic_transport_ok(false, mapped), "::ffff:192.0.0.1");
    uint8_t doc6[16] = {0x20, 0x01, 0x0d, 0xb8};
    cr_assert(!hubsess_basic_transport_ok(false, doc6), "2001:db8::");
}

Test(hubdev_basic, malformed)
{
    struct ddkv_options o;
    memset(&o, 0, sizeof o);
    o.endpoints = "127.0.0.1:1"; /* never dialled: every case here ends before the cluster */
    struct hubsess *s = hubsess_new(&o, 60);
    cr_assert(s);
    uint8_t a[16];
    v4(a, 127, 0, 0, 9);
    struct hubsess_ref ref;
    char why[256];
    uint32_t retry = 0;
    /* Not base64 of USER:PASSWORD: 400, not counted. */
    const char *bad[] = {"", "!!!!", "abc", "bm9jb2xvbg==" /* nocolon */, NULL};
    for (int i = 0; bad[i]; i++) {
        cr_assert_eq(hubsess_basic(s, a, bad[i], &ref, why, sizeof why), 400, "'%s'", bad[i]);
        cr_assert(strstr(why, "USER:PASSWORD"), "'%s': %s", bad[i], why);
        cr_assert_null(ref.client);
    }
    char big[2000];
    memset(big, 'A', sizeof big - 1);
    big[sizeof big - 1] = 0;
    cr_assert_eq(hubsess_basic(s, a, big, &ref, why, sizeof why), 400, "an over-long header");
    cr_assert(!hubsess_throttled(s, a, &retry), "a malformed header is not a failed login");
    /* Well formed but no user could have it: 401 as a wrong password, counted. */
    const char *wrong[] = {"dXNlcjo=" /* user: (no password) */, "YmFkIHVzZXI6cHc=" /* bad user:pw */,
                           "OnB3" /* :pw */};
    for (int i = 0; i < 3; i++) {
        cr_assert_eq(hubsess_basic(s, a, wrong[i], &ref, why, sizeof why), 401, "'%s'", wrong[i]);
        cr_assert_str_eq(why, "wrong user or password");
        cr_assert_null(ref.client);
    }
    cr_assert(hubsess_throttled(s, a, &retry), "three failures: the address waits");
    cr_assert(retry >= 1 && retry <= 60, "%u", retry);
    uint8_t other[16];
    v4(other, 127, 0, 0, 10);
    cr_assert(!hubsess_throttled(s, other, &retry), "per address");
    hubsess_free(s);
}
