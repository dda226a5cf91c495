/* The latency histogram: exact below 32, within 1/32 above, mergeable. */
#include <criterion/criterion.h>
#include <stdlib.h>

#include "util/hist.h"

static struct hist h, h2;

Test(hist, small_values_are_exact)
{
    hist_init(&h);
    for (uint64_t v = 0; v < 32; v++)
        hist_record(&h, v);
    cr_assert_eq(hist_quantile(&h, 0.5), 15);
    cr_assert_eq(hist_quantile(&h, 1.0), 31);
    cr_assert_eq(hist_quantile(&h, 0.0), 0);
    cr_assert_eq(hist_count_le(&h, 9), 10);
}

Test(hist, every_value_lands_in_a_bucket_that_contains_it)
{
    uint64_t probes[] = {32, 33, 63, 64, 65, 1000, 4095, 4096, 123456789, UINT64_C(1) << 40,
                         (UINT64_C(1) << 40) - 1, UINT64_MAX};
    for (size_t i = 0; i < sizeof probes / sizeof probes[0]; i++) {
        uint64_t v = probes[i];
        uint32_t b = hist_bucket(v);
        cr_assert_lt(b, HIST_BUCKETS);
        cr_assert_geq(hist_bucket_upper(b), v, "bucket of %llu ends below it", (unsigned long long)v);
        if (b > 0)
            cr_assert_lt(hist_bucket_upper(b - 1), v, "bucket below %llu already holds it", (unsigned long long)v);
    }
}

static int cmp(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

Test(hist, quantiles_are_within_one_thirty_second_of_the_truth)
{
    enum { N = 100000 };
    static uint64_t vals[N];
    unsigned seed = 7;
    hist_init(&h);
    for (int i = 0; i < N; i++) {
        /* Latency-like: mostly ~200 us with a long tail. */
        uint64_t v = 150000 + (uint64_t)(rand_r(&seed) % 100000);
        if (i % 100 == 0)
            v *= 1 + (uint64_t)(rand_r(&seed) % 50);
        vals[i] = v;
        hist_record(&h, v);
    }
    qsort(vals, N, sizeof vals[0], cmp);
    double qs[] = {0.5, 0.9, 0.99, 0.999};
    for (size_t i = 0; i < 4; i++) {
        uint64_t truth = vals[(size_t)(qs[i] * N) - 1];
        uint64_t got = hist_quantile(&h, qs[i]);
        cr_assert_geq(got, truth, "q%.3f: %llu below the true %llu", qs[i], (unsigned long long)got,
                      (unsigned long long)truth);
        cr_assert_leq((double)(got - truth), (double)truth / 32.0 + 1, "q%.3f: %llu vs %llu", qs[i],
                      (unsigned long long)got, (unsigned long long)truth);
    }
    cr_assert_eq(hist_quantile(&h, 1.0), vals[N - 1], "the maximum is exact");
    cr_assert_eq(h.min, vals[0]);
}

Test(hist, merging_equals_recording_into_one)
{
    hist_init(&h);
    hist_init(&h2);
    struct hist all;
    hist_init(&all);
    for (uint64_t v = 1; v < 50000; v += 7) {
        hist_record(v % 2 ? &h : &h2, v * 13);
        hist_record(&all, v * 13);
    }
    hist_merge(&h, &h2);
    cr_assert_eq(h.total, all.total);
    cr_assert_eq(h.sum, all.sum);
    for (double q = 0.05; q < 1; q += 0.05)
        cr_assert_eq(hist_quantile(&h, q), hist_quantile(&all, q));
}

Test(hist, count_le_is_exact_at_bucket_edges)
{
    hist_init(&h);
    for (uint64_t v = 0; v < 100000; v++)
        hist_record(&h, v);
    uint64_t edges[] = {1023, 65535, 99999};
    for (size_t i = 0; i < 3; i++) {
        uint32_t b = hist_bucket(edges[i]);
        uint64_t up = hist_bucket_upper(b);
        cr_assert_eq(hist_count_le(&h, up), up + 1 < 100000 ? up + 1 : 100000);
    }
    cr_assert_eq(hist_quantile(&h, 0.0), 0);
}
