/* The algorithm registry (src/apps/jobs/algo.c): the downsampled chart's buckets
 * double and merge exactly, a file without timestamps is charted by row,
 * vitals without a heart or breath column says so, an unknown name is
 * refused, and a memory cap bounds what a long file holds. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "jobs/algo.h"

static json_t *run(const char *algo, const char *csv, size_t mem)
{
    bool unknown;
    struct algo *a = algo_new(algo, mem, &unknown);
    cr_assert_not_null(a);
    cr_assert_eq(algo_feed(a, csv, strlen(csv)), 0, "%s", algo_error(a));
    cr_assert_eq(algo_finish(a), 0, "%s", algo_error(a));
    json_t *r;
    cr_assert_eq(algo_to_json(a, &r), 0);
    algo_free(a);
    return r;
}

static char *rows(size_t n, bool ts)
{
    size_t cap = n * 32 + 64, len = 0;
    char *s = malloc(cap);
    len += (size_t)snprintf(s + len, cap - len, ts ? "timestamp,v\n" : "v\n");
    for (size_t i = 0; i < n; i++)
        len += ts ? (size_t)snprintf(s + len, cap - len, "%zu,%zu\n", 1700000000 + i, i)
                  : (size_t)snprintf(s + len, cap - len, "%zu\n", i);
    return s;
}

Test(algo, chart_buckets_double_and_merge_exactly)
{
    char *csv = rows(1000, true);
    json_t *r = run("stats", csv, 0);
    json_t *ch = json_object_get(r, "chart");
    cr_assert_str_eq(json_string_value(json_object_get(ch, "axis")), "unix_ms");
    /* 1000 s in at most 400 buckets: 1 s -> 2 s -> 4 s wide, 250 of them. */
    cr_assert_eq(json_integer_value(json_object_get(ch, "bucket")), 4000);
    json_t *t = json_object_get(ch, "t");
    cr_assert_eq(json_array_size(t), 250);
    json_t *col = json_array_get(json_object_get(ch, "columns"), 0);
    for (size_t i = 0; i < 250; i++) {
        cr_assert_eq(json_integer_value(json_array_get(t, i)), 1700000000000 + (json_int_t)i * 4000);
        cr_assert_float_eq(json_real_value(json_array_get(json_object_get(col, "min"), i)), 4.0 * i, 1e-9);
        cr_assert_float_eq(json_real_value(json_array_get(json_object_get(col, "max"), i)), 4.0 * i + 3, 1e-9);
        cr_assert_float_eq(json_real_value(json_array_get(json_object_get(col, "avg"), i)), 4.0 * i + 1.5, 1e-9);
    }
    cr_assert_str_eq(json_string_value(json_object_get(r, "algorithm")), "stats");
    cr_assert_null(json_object_get(r, "vitals"));
    json_decref(r);
    free(csv);
}

Test(algo, a_file_without_timestamps_is_charted_by_row)
{
    char *csv = rows(500, false);
    json_t *r = run("stats", csv, 0);
    json_t *ch = json_object_get(r, "chart");
    cr_assert_str_eq(json_string_value(json_object_get(ch, "axis")), "row");
    cr_assert_eq(json_integer_value(json_object_get(ch, "bucket")), 2);
    cr_assert_eq(json_array_size(json_object_get(ch, "t")), 250);
    cr_assert_eq(json_integer_value(json_array_get(json_object_get(ch, "t"), 0)), 1);
    json_decref(r);
    free(csv);
}

Test(algo, vitals_without_its_columns_says_so_and_unknown_names_are_refused)
{
    json_t *r = run("vitals", "timestamp,temp\n2026-01-01T00:00:00Z,36.6\n", 0);
    json_t *v = json_object_get(r, "vitals");
    cr_assert(json_is_null(json_object_get(json_object_get(v, "series"), "heart_rate")));
    cr_assert_eq(json_integer_value(json_object_get(v, "events_total")), 0);
    json_decref(r);
    bool unknown = false;
    cr_assert_null(algo_new("<script>", 0, &unknown));
    cr_assert(unknown);
}

Test(algo, a_memory_cap_bounds_a_long_file)
{
    char *csv = rows(300000, true);
    bool unknown;
    struct algo *a = algo_new("vitals", 1u << 20, &unknown);
    cr_assert_not_null(a);
    size_t n = strlen(csv), most = 0;
    for (size_t off = 0; off < n; off += 65536) {
        size_t k = n - off < 65536 ? n - off : 65536;
        cr_assert_eq(algo_feed(a, csv + off, k), 0);
        size_t m = algo_memory(a);
        most = m > most ? m : most;
    }
    cr_assert_eq(algo_finish(a), 0);
    cr_assert_lt(most, 3u << 20, "held %zu bytes under a 1 MiB cap", most);
    json_t *r;
    cr_assert_eq(algo_to_json(a, &r), 0);
    cr_assert(json_is_true(json_object_get(json_object_get(r, "limits"), "values_limit_reached")));
    cr_assert_eq(json_integer_value(json_object_get(json_object_get(r, "rows"), "used")), 300000);
    json_decref(r);
    algo_free(a);
    free(csv);
}
