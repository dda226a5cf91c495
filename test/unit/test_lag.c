/* node/lag.c: a member's lag in entries and in time, from commit samples. */
#include <criterion/criterion.h>
#include <string.h>

#include "node/lag.h"

static struct lag l;

static void setup(void) { memset(&l, 0, sizeof l); }

TestSuite(lag, .init = setup);

Test(lag, nothing_known_nothing_lacking)
{
    cr_assert_eq(lag_entries(&l, 0), 0);
    cr_assert_eq(lag_age_ms(&l, 0, 1000), 0);
    cr_assert(lag_within(&l, 0, 1000, 0, 0));
}

Test(lag, age_is_that_of_the_oldest_entry_lacking)
{
    lag_note(&l, 10, 1000);
    lag_note(&l, 20, 2000);
    lag_note(&l, 30, 3000);
    cr_assert_eq(lag_entries(&l, 5), 25);
    cr_assert_eq(lag_age_ms(&l, 5, 5000), 4000, "entry 6 was known committed at 1000");
    cr_assert_eq(lag_age_ms(&l, 10, 5000), 3000, "entry 11 at 2000");
    cr_assert_eq(lag_age_ms(&l, 25, 5000), 2000, "entry 26 at 3000");
    cr_assert_eq(lag_age_ms(&l, 30, 5000), 0, "holds everything");
    cr_assert_eq(lag_age_ms(&l, 99, 5000), 0, "ahead of what this node knows");
    cr_assert(!lag_within(&l, 5, 5000, 100, 3999));
    cr_assert(lag_within(&l, 5, 5000, 100, 4000));
    cr_assert(!lag_within(&l, 5, 5000, 24, 10000), "too many entries");
}

Test(lag, close_samples_merge_keeping_the_older_time)
{
    lag_note(&l, 10, 1000);
    lag_note(&l, 20, 1000 + LAG_MIN_SPACING_MS - 1);
    cr_assert_eq(l.count, 1);
    cr_assert_eq(lag_age_ms(&l, 15, 2000), 1000, "never under-stated");
    lag_note(&l, 15, 3000); /* not above what is known: ignored */
    cr_assert_eq(l.known, 20);
}

Test(lag, a_full_ring_merges_its_oldest_and_never_understates)
{
    uint64_t t = 0;
    for (uint64_t i = 1; i <= 3 * LAG_RING; i++) {
        t += LAG_MIN_SPACING_MS;
        lag_note(&l, i, t);
    }
    cr_assert_eq(l.count, LAG_RING);
    /* Entry 1 was known at LAG_MIN_SPACING_MS: its age stays at least that old. */
    cr_assert_geq(lag_age_ms(&l, 0, t), t - LAG_MIN_SPACING_MS);
    /* Recent entries stay exact. */
    cr_assert_eq(lag_age_ms(&l, 3 * LAG_RING - 1, t), 0);
    cr_assert_eq(lag_age_ms(&l, 3 * LAG_RING - 2, t), LAG_MIN_SPACING_MS);
    /* Ages never fall as the entry lacking gets older. */
    uint64_t prev = 0;
    for (uint64_t have = 3 * LAG_RING - 1; have > 0; have -= 7) {
        uint64_t a = lag_age_ms(&l, have, t);
        cr_assert_geq(a, prev);
        prev = a;
        if (have < 7)
            break;
    }
}
