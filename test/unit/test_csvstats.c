/* The job-file statistics engine (src/apps/jobs/csvstats.c): figures checked
 * against answers worked out by hand, every kind of bad row counted at its
 * line, duplicates, CSV quoting, chunked input at every split point, a
 * 200,000-row file checked against a separate computation, and garbage that
 * must give counters, not crashes or unbounded memory. */
#include <criterion/criterion.h>
#include <jansson.h>
#include <math.h> /* INFINITY */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "jobs/csvstats.h"
#include "util/err.h"

#define X_10H INT64_C(1795514400000000) /* 2026-11-24T10:00:00Z in microseconds */

static struct csvstats *run_opts(const char *csv, size_t n, const struct csvstats_opts *o, int *rc_out)
{
    struct csvstats *s = csvstats_new(o);
    cr_assert_not_null(s);
    int rc = csvstats_feed(s, csv, n);
    int rc2 = csvstats_finish(s);
    if (!rc)
        rc = rc2;
    if (rc_out)
        *rc_out = rc;
    else
        cr_assert_eq(rc, 0, "rc %d: %s", rc, csvstats_result(s)->error_msg);
    return s;
}

static struct csvstats *run(const char *csv)
{
    return run_opts(csv, strlen(csv), NULL, NULL);
}

static const struct csvstats_column *col(const struct csvstats *s, const char *name)
{
    const struct csvstats_result *r = csvstats_result(s);
    for (size_t i = 0; i < r->ncolumns; i++)
        if (strcmp(r->columns[i].name, name) == 0)
            return &r->columns[i];
    cr_assert_fail("no column %s", name);
    return NULL;
}

static char *dump(const struct csvstats *s)
{
    json_t *j = NULL;
    cr_assert_eq(csvstats_to_json(s, &j), 0);
    char *t = json_dumps(j, JSON_SORT_KEYS | JSON_COMPACT);
    cr_assert_not_null(t);
    json_decref(j);
    return t;
}

#define EQ(a, b) cr_assert_float_eq((double)(a), (double)(b), 1e-9, "%s = %.17g, expected %.17g", #a, (double)(a), (double)(b))

/* --- figures known by hand ---------------------------------------------- */

Test(csvstats, figures_of_a_small_file)
{
    struct csvstats *s = run("timestamp,heart_rate,systolic\n"
                             "2026-11-24T10:00:00Z,60,120\n"
                             "2026-11-24T10:01:00Z,70,130\n"
                             "2026-11-24T10:02:00Z,80,110\n"
                             "2026-11-24T10:03:00Z,90,140\n"
                             "2026-11-24T10:04:00Z,100,150\n");
    const struct csvstats_result *r = csvstats_result(s);
    cr_assert_eq(r->ncolumns, 2);
    cr_assert_str_eq(r->timestamp_column, "timestamp");
    cr_assert_eq(r->rows_total, 5);
    cr_assert_eq(r->rows_used, 5);
    cr_assert_eq(r->lines, 6);
    const struct csvstats_column *hr = col(s, "heart_rate");
    cr_assert_eq(hr->count, 5);
    cr_assert_eq(hr->missing, 0);
    cr_assert_eq(hr->min, 60);
    cr_assert_eq(hr->max, 100);
    cr_assert_eq(hr->mean, 80);
    EQ(hr->sd, 15.811388300841896); /* sqrt((400 + 100 + 0 + 100 + 400) / 4) */
    cr_assert(hr->have_percentiles);
    /* h = 4p/100: 0.2, 1, 2, 3, 3.8, 3.96 */
    EQ(hr->pct[0], 62);
    EQ(hr->pct[1], 70);
    EQ(hr->pct[2], 80);
    EQ(hr->pct[3], 90);
    EQ(hr->pct[4], 98);
    EQ(hr->pct[5], 99.6);
    cr_assert(hr->has_range);
    cr_assert_eq(hr->range_min, 20);
    cr_assert_eq(hr->range_max, 250);
    const struct csvstats_column *sys = col(s, "systolic");
    cr_assert_eq(sys->mean, 130);
    EQ(sys->pct[0], 112);
    EQ(sys->pct[2], 130);
    cr_assert_eq(sys->range_min, 50);
    cr_assert_eq(sys->range_max, 260);
    cr_assert(r->have_timestamps);
    cr_assert_eq(r->ts_first_us, X_10H);
    cr_assert_eq(r->ts_last_us, X_10H + INT64_C(240000000));
    cr_assert_eq(r->ts_out_of_order, 0);
    csvstats_free(s);
}

Test(csvstats, sample_sd_and_interpolated_percentiles_with_ties)
{
    /* Unsorted, with ties: 2 4 4 4 5 5 7 9, mean 5, sum of squares 32. */
    struct csvstats *s = run("t,v\n1,5\n2,4\n3,9\n4,4\n5,2\n6,7\n7,4\n8,5\n");
    const struct csvstats_column *v = col(s, "v");
    cr_assert_eq(v->count, 8);
    cr_assert_eq(v->mean, 5);
    EQ(v->sd, 2.1380899352993950); /* sqrt(32 / 7): the sample sd, not sqrt(32 / 8) = 2 */
    /* h = 7p/100 = 0.35, 1.75, 3.5, 5.25, 6.65, 6.93 */
    EQ(v->pct[0], 2.7);
    EQ(v->pct[1], 4);
    EQ(v->pct[2], 4.5);
    EQ(v->pct[3], 5.5);
    EQ(v->pct[4], 8.3);
    EQ(v->pct[5], 8.86);
    cr_assert_not(v->has_range, "an unknown column has no range");
    csvstats_free(s);
}

Test(csvstats, one_value_and_no_values)
{
    struct csvstats *s = run("ts,a,b\n1700000000,42.5,\n");
    const struct csvstats_column *a = col(s, "a"), *b = col(s, "b");
    cr_assert_eq(a->count, 1);
    cr_assert_eq(a->min, 42.5);
    cr_assert_eq(a->pct[0], 42.5);
    cr_assert_eq(a->pct[5], 42.5);
    cr_assert_eq(b->count, 0);
    cr_assert_eq(b->missing, 1);
    cr_assert_not(b->have_percentiles);
    json_t *j;
    cr_assert_eq(csvstats_to_json(s, &j), 0);
    json_t *cols = json_object_get(j, "columns");
    cr_assert(json_is_null(json_object_get(json_array_get(cols, 0), "sd")), "sd of one value is null");
    cr_assert(json_is_real(json_object_get(json_array_get(cols, 0), "mean")));
    json_t *jb = json_array_get(cols, 1);
    cr_assert(json_is_null(json_object_get(jb, "min")));
    cr_assert(json_is_null(json_object_get(jb, "percentiles")));
    json_decref(j);
    csvstats_free(s);
}

/* --- bad rows ------------------------------------------------------------ */

Test(csvstats, every_malformed_kind_is_counted_at_its_line)
{
    static const char csv[] =
        "timestamp,hr,spo2\n"                      /* 1 */
        "2026-11-24T10:00:00Z,70,98\n"             /* 2 ok */
        "2026-11-24T10:01:00Z,71\n"                /* 3 field count */
        "2026-11-24T10:02:00Z,abc,97\n"            /* 4 number */
        "yesterday,72,96\n"                        /* 5 timestamp */
        "2026-11-24T10:03:00Z,\"73\"x,97\n"        /* 6 quotes */
        "2026-11-24T10:04:00Z,74,97,,,,,,,,,,,,,,,,,,,,,,,,,,,,,,,,,,,,,,,,,,,,,,\n" /* 7 too long */
        "2026-11-24T10:05:00Z,75,95\n"             /* 8 ok */
        "2026-11-24T10:06:00Z,1e999,95\n"          /* 9 number: not finite */
        "2026-11-24T10:07:00Z,nan,95\n"            /* 10 number */
        "2026-11-24T10:08:00Z,0x10,95\n"           /* 11 number */
        "2026-11-24T10:09:00Z,76,95,\n"            /* 12 field count */
        "2026-11-24T25:00:00Z,76,95\n"             /* 13 timestamp: hour 25 */
        "2026-02-30T10:00:00Z,76,95\n"             /* 14 timestamp: 30 February */
        "\"2026-11-24T10:10:00Z\",77,94\n"         /* 15 ok, quoted */
        "2026-11-24T10:11:00Z,\"78";               /* 16 quotes: unterminated at the end */
    struct csvstats_opts o = {.max_line = 64};
    struct csvstats *s = run_opts(csv, sizeof csv - 1, &o, NULL);
    const struct csvstats_result *r = csvstats_result(s);
    cr_assert_eq(r->lines, 16);
    cr_assert_eq(r->rows_total, 15);
    cr_assert_eq(r->rows_used, 3);
    cr_assert_eq(r->malformed, 12);
    cr_assert_eq(r->malformed_by_kind[CSVSTATS_BAD_FIELD_COUNT], 2);
    cr_assert_eq(r->malformed_by_kind[CSVSTATS_BAD_NUMBER], 4);
    cr_assert_eq(r->malformed_by_kind[CSVSTATS_BAD_TIMESTAMP], 3);
    cr_assert_eq(r->malformed_by_kind[CSVSTATS_BAD_QUOTES], 2);
    cr_assert_eq(r->malformed_by_kind[CSVSTATS_BAD_TOO_LONG], 1);
    cr_assert_eq(r->nsamples, CSVSTATS_SAMPLES, "only the first few are kept");
    static const uint64_t lines[CSVSTATS_SAMPLES] = {3, 4, 5, 6, 7, 9, 10, 11, 12, 13};
    static const enum csvstats_bad kinds[CSVSTATS_SAMPLES] = {
        CSVSTATS_BAD_FIELD_COUNT, CSVSTATS_BAD_NUMBER, CSVSTATS_BAD_TIMESTAMP, CSVSTATS_BAD_QUOTES,
        CSVSTATS_BAD_TOO_LONG,    CSVSTATS_BAD_NUMBER, CSVSTATS_BAD_NUMBER,    CSVSTATS_BAD_NUMBER,
        CSVSTATS_BAD_FIELD_COUNT, CSVSTATS_BAD_TIMESTAMP};
    for (int i = 0; i < CSVSTATS_SAMPLES; i++) {
        cr_assert_eq(r->samples[i].line, lines[i], "sample %d at line %llu", i,
                     (unsigned long long)r->samples[i].line);
        cr_assert_eq(r->samples[i].kind, kinds[i], "sample %d (line %llu): %s", i,
                     (unsigned long long)lines[i], r->samples[i].reason);
    }
    cr_assert_str_eq(r->samples[0].reason, "expected 3 fields, found 2");
    cr_assert_str_eq(r->samples[1].reason, "column \"hr\": \"abc\" is not a number");
    cr_assert(strstr(r->samples[2].reason, "\"yesterday\""), "%s", r->samples[2].reason);
    /* Bad rows are left out of every figure. */
    const struct csvstats_column *hr = col(s, "hr");
    cr_assert_eq(hr->count, 3);
    cr_assert_eq(hr->min, 70);
    cr_assert_eq(hr->max, 77);
    cr_assert_eq(r->ts_last_us, X_10H + INT64_C(600000000));
    csvstats_free(s);
}

Test(csvstats, empty_cells_are_missing_not_malformed)
{
    struct csvstats *s = run("timestamp,hr,spo2\n"
                             "2026-11-24T10:00:00Z,,98\n"
                             "2026-11-24T10:01:00Z,  ,\n"
                             ",72,\"\"\n"
                             "2026-11-24T10:02:00Z,70,97\n");
    const struct csvstats_result *r = csvstats_result(s);
    cr_assert_eq(r->malformed, 0);
    cr_assert_eq(r->rows_used, 4);
    cr_assert_eq(r->ts_missing, 1, "an empty timestamp is missing, the row is used");
    cr_assert_eq(col(s, "hr")->count, 2);
    cr_assert_eq(col(s, "hr")->missing, 2);
    cr_assert_eq(col(s, "spo2")->count, 2);
    cr_assert_eq(col(s, "spo2")->missing, 2);
    cr_assert_eq(col(s, "hr")->mean, 71);
    csvstats_free(s);
}

/* --- duplicates ---------------------------------------------------------- */

Test(csvstats, duplicates_and_conflicting_timestamps)
{
    struct csvstats *s = run("timestamp,hr,sys\n"
                             "2026-11-24T10:00:00Z,70,120\n"   /* kept */
                             "2026-11-24T10:00:00Z,70,120\n"   /* duplicate */
                             "2026-11-24T10:00:00Z,71,120\n"   /* conflict: same time, other values */
                             "2026-11-24T10:00:00Z,71,120.0\n" /* duplicate of the one above: 120 == 120.0 */
                             "2026-11-24T10:01:00Z,72,\n"      /* kept */
                             "2026-11-24T10:01:00Z,72.0,\"\"\n" /* duplicate: missing equals missing */
                             "2026-11-24T10:02:00Z,73,121\n"   /* kept */
                             "2026-11-24T10:00:00Z,70,120\n"   /* duplicate, not adjacent */
                             "2026-11-24T10:01:00Z,72,0\n"     /* conflict: 0 is not missing */
                             "1795514400000,70,120\n"          /* duplicate: the same instant in Unix ms */
                             "2026-11-24T10:00:00.001Z,70,120\n"); /* kept: another millisecond */
    const struct csvstats_result *r = csvstats_result(s);
    cr_assert_eq(r->rows_total, 11);
    cr_assert_eq(r->duplicates, 5);
    cr_assert_eq(r->conflicting_timestamps, 2);
    cr_assert_eq(r->rows_used, 6);
    cr_assert_eq(col(s, "hr")->count, 6);
    cr_assert_eq(col(s, "sys")->missing, 1);
    cr_assert_eq(r->ts_out_of_order, 2, "10:01 after 10:02, 10:00:00.001 after 10:01");
    csvstats_free(s);
}

Test(csvstats, without_a_timestamp_column_duplicates_compare_values)
{
    struct csvstats *s = run("hr,spo2\n70,98\n70,98\n71,98\n70,98.0\n");
    const struct csvstats_result *r = csvstats_result(s);
    cr_assert_null(r->timestamp_column);
    cr_assert_eq(r->duplicates, 2);
    cr_assert_eq(r->conflicting_timestamps, 0);
    cr_assert_eq(r->rows_used, 2);
    json_t *j;
    cr_assert_eq(csvstats_to_json(s, &j), 0);
    cr_assert(json_is_null(json_object_get(j, "timestamps")));
    json_decref(j);
    csvstats_free(s);
}

/* --- CSV details --------------------------------------------------------- */

static const char messy[] =
    "\xEF\xBB\xBF  Time , \"Heart Rate (bpm)\" ,Temp \xC2\xB0" "C, note \r\n"    /* 1: BOM, spaces */
    "2026-11-24 10:00:00+01:00, \"72\", 36.6 ,\"said \"\"hi\"\", then left\"\r\n" /* 2 */
    "\r\n"                                                                        /* 3 blank */
    "   \r\n"                                                                     /* 4 blank */
    "2026-11-24T09:01:00.500Z,73,\"37.0\",\"two\r\n"                              /* 5 */
    "lines\"\r\n"                                                                 /* 6 */
    "2026-11-24T09:02:00Z,oops,37.2,x\r\n"                                        /* 7 malformed */
    "2026-11-24T09:03:00Z,,46.1,\r\n"                                             /* 8 */
    "2026-11-24T09:03:00Z,,46.1,\"again\"\r\n"                                    /* 9 duplicate */
    "2026-11-24T09:03:00Z,75,46.1,\r\n";                                          /* 10 conflict */

static const struct csvstats_opts messy_opts = {.skip_columns = (const char *const[]){"NOTE"}, .nskip_columns = 1};

Test(csvstats, crlf_bom_quotes_blank_lines_and_header_spaces)
{
    struct csvstats *s = run_opts(messy, sizeof messy - 1, &messy_opts, NULL);
    const struct csvstats_result *r = csvstats_result(s);
    cr_assert_str_eq(r->timestamp_column, "Time");
    cr_assert_eq(r->ncolumns, 2, "the note column is skipped");
    cr_assert_str_eq(r->columns[0].name, "Heart Rate (bpm)");
    cr_assert_str_eq(r->columns[0].key, "heart_rate_bpm");
    cr_assert_str_eq(r->columns[1].name, "Temp \xC2\xB0" "C");
    cr_assert_str_eq(r->columns[1].key, "temp_c");
    cr_assert_eq(r->lines, 10);
    cr_assert_eq(r->blank_lines, 2);
    cr_assert_eq(r->rows_total, 6);
    cr_assert_eq(r->rows_used, 4);
    cr_assert_eq(r->malformed, 1);
    cr_assert_eq(r->duplicates, 1, "the skipped note column is not compared");
    cr_assert_eq(r->conflicting_timestamps, 1);
    cr_assert_eq(r->samples[0].line, 7, "line numbers count the line break inside quotes");
    const struct csvstats_column *hr = &r->columns[0], *temp = &r->columns[1];
    cr_assert_eq(hr->count, 3);
    cr_assert_eq(hr->missing, 1);
    EQ(hr->mean, 220.0 / 3);
    cr_assert(hr->has_range, "\"bpm\" is a unit: heart_rate's range");
    cr_assert_eq(hr->range_max, 250);
    cr_assert_eq(temp->count, 4);
    cr_assert(temp->has_range, "\"temp_c\" is temp in Celsius");
    cr_assert_eq(temp->range_min, 30);
    cr_assert_eq(temp->above, 2);
    cr_assert_eq(temp->below, 0);
    EQ(temp->max, 46.1);
    cr_assert_eq(r->ts_first_us, X_10H - INT64_C(3600000000), "10:00+01:00 is 09:00Z");
    cr_assert_eq(r->ts_last_us, X_10H - INT64_C(3600000000) + INT64_C(180000000));
    csvstats_free(s);
}

Test(csvstats, quoted_fields_and_bad_quotes)
{
    /* A quoted cell may hold commas, doubled quotes and line breaks. */
    static const char *const skip[] = {"label"};
    struct csvstats_opts o = {.skip_columns = skip, .nskip_columns = 1};
    static const char csv[] = "ts,label,v\n"
                              "1,\"a, b\",1\n"
                              "2,\"say \"\"x\"\"\",2\n"
                              "3,\"multi\nline, with \"\"quotes\"\"\",3\n"
                              "4, \"padded\" ,4\n"
                              "5,\"no close,5\n"
                              "6,x,6\n"
                              "7,x,7\n";
    struct csvstats *s = run_opts(csv, sizeof csv - 1, &o, NULL);
    const struct csvstats_result *r = csvstats_result(s);
    cr_assert_eq(col(s, "v")->count, 4);
    cr_assert_eq(col(s, "v")->max, 4);
    /* The unterminated quote runs to the end of the file: one bad record from line 7. */
    cr_assert_eq(r->malformed_by_kind[CSVSTATS_BAD_QUOTES], 1);
    cr_assert_eq(r->rows_total, 5);
    cr_assert_eq(r->samples[0].line, 7);
    cr_assert_eq(r->lines, 9);
    csvstats_free(s);
}

/* --- ranges -------------------------------------------------------------- */

Test(csvstats, default_ranges_count_out_of_range_readings)
{
    struct csvstats *s = run("timestamp,HR,Systolic,diastolic,Resp-Rate,SpO2,temperature,weight,temp_f\n"
                             "1,19,49,19,3,49,29.9,500,98\n"           /* all below */
                             "2,20,50,20,4,50,30,1,98\n"               /* all at the lower bound */
                             "3,250,260,160,60,100,45,2,98\n"          /* all at the upper bound */
                             "4,251,261,161,61,100.5,45.1,3,98\n"      /* all above */
                             "5,72,120,80,16,97,36.8,4,98\n");
    static const char *const names[] = {"HR", "Systolic", "diastolic", "Resp-Rate", "SpO2", "temperature"};
    for (size_t i = 0; i < 6; i++) {
        const struct csvstats_column *c = col(s, names[i]);
        cr_assert(c->has_range, "%s", names[i]);
        cr_assert_eq(c->below, 1, "%s below", names[i]);
        cr_assert_eq(c->above, 1, "%s above", names[i]);
        cr_assert_eq(c->count, 5, "out-of-range values still count");
    }
    cr_assert_str_eq(col(s, "Resp-Rate")->key, "resp_rate");
    cr_assert_not(col(s, "weight")->has_range);
    cr_assert_not(col(s, "temp_f")->has_range, "Fahrenheit is not the Celsius range");
    json_t *j;
    cr_assert_eq(csvstats_to_json(s, &j), 0);
    json_t *w = json_array_get(json_object_get(j, "columns"), 6);
    cr_assert_str_eq(json_string_value(json_object_get(w, "name")), "weight");
    cr_assert(json_is_null(json_object_get(w, "range")));
    cr_assert(json_is_null(json_object_get(w, "out_of_range")));
    json_decref(j);
    csvstats_free(s);
}

Test(csvstats, configured_ranges_override_the_defaults)
{
    struct csvstats_range ranges[] = {{"Heart Rate", 40, 180}, {"weight", 2, 300}};
    struct csvstats_opts o = {.ranges = ranges, .nranges = 2};
    static const char csv[] = "t,heart_rate,weight,spo2\n1,30,1,40\n2,190,400,99\n";
    struct csvstats *s = run_opts(csv, sizeof csv - 1, &o, NULL);
    cr_assert_eq(col(s, "heart_rate")->range_min, 40);
    cr_assert_eq(col(s, "heart_rate")->below, 1);
    cr_assert_eq(col(s, "heart_rate")->above, 1);
    cr_assert_eq(col(s, "weight")->below, 1);
    cr_assert_eq(col(s, "weight")->above, 1);
    cr_assert_eq(col(s, "spo2")->below, 1, "the other defaults stay");
    csvstats_free(s);
    o.no_default_ranges = true;
    s = run_opts(csv, sizeof csv - 1, &o, NULL);
    cr_assert_not(col(s, "spo2")->has_range);
    cr_assert(col(s, "weight")->has_range);
    csvstats_free(s);
    struct csvstats_range one_sided[] = {{"spo2", 90, INFINITY}};
    o = (struct csvstats_opts){.ranges = one_sided, .nranges = 1};
    s = run_opts(csv, sizeof csv - 1, &o, NULL);
    cr_assert_eq(col(s, "spo2")->below, 1);
    cr_assert_eq(col(s, "spo2")->above, 0);
    json_t *j;
    cr_assert_eq(csvstats_to_json(s, &j), 0);
    json_t *range = json_object_get(json_array_get(json_object_get(j, "columns"), 3), "range"); /* t is a column too */
    cr_assert_eq(json_real_value(json_object_get(range, "min")), 90);
    cr_assert(json_is_null(json_object_get(range, "max")), "an open end is null");
    json_decref(j);
    csvstats_free(s);
    struct csvstats_range bad[] = {{"x", 5, 1}};
    struct csvstats_opts ob = {.ranges = bad, .nranges = 1};
    cr_assert_null(csvstats_new(&ob), "min > max is refused");
}

/* --- timestamps ---------------------------------------------------------- */

Test(csvstats, timestamp_formats)
{
    static const struct {
        const char *in;
        int64_t us;
    } ok[] = {
        {"2026-11-24T10:00:00Z", X_10H},
        {"2026-11-24t10:00:00z", X_10H},
        {"2026-11-24 10:00:00", X_10H},
        {"2026-11-24T10:00Z", X_10H},
        {"2026-11-24T10:00:00.123Z", X_10H + 123000},
        {"2026-11-24T10:00:00,5Z", X_10H + 500000},
        {"2026-11-24T10:00:00.123456789Z", X_10H + 123456},
        {"2026-11-24T11:00:00+01:00", X_10H},
        {"2026-11-24T11:00:00+0100", X_10H},
        {"2026-11-24T11:00:00+01", X_10H},
        {"2026-11-24T05:30:00-04:30", X_10H},
        {"2026-11-24", X_10H - INT64_C(36000000000)},
        {" 2026-11-24T10:00:00Z ", X_10H},
        {"2024-02-29T00:00:00Z", INT64_C(1709164800000000)},
        {"1795514400", X_10H},
        {"1795514400.25", X_10H + 250000},
        {"1795514400000", X_10H},
        {"1795514400123.5", X_10H + 123500},
        {"0", 0},
        {"99999999999", INT64_C(99999999999000000)}, /* below 1e11: seconds */
        {"100000000000", INT64_C(100000000000000)},  /* 1e11: milliseconds */
    };
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
        int64_t us = -1;
        cr_assert_eq(csvstats_parse_ts(ok[i].in, strlen(ok[i].in), &us), 0, "%s", ok[i].in);
        cr_assert_eq(us, ok[i].us, "%s: %lld", ok[i].in, (long long)us);
    }
    static const char *const bad[] = {"",
                                      "abc",
                                      "-5",
                                      "1e9",
                                      "1795514400.",
                                      "2026-13-01",
                                      "2023-02-29",
                                      "2026-11-31",
                                      "2026-11-24T24:00:00Z",
                                      "2026-11-24T10:60:00Z",
                                      "2026-11-24T10:00:60Z",
                                      "2026-11-24T10:00:00ZZ",
                                      "2026-11-24T10:00:00+25:00",
                                      "2026-11-24T10:00:00+01:",
                                      "2026-11-24T10",
                                      "2026-11-24X10:00:00",
                                      "2026/11/24 10:00:00",
                                      "999999999999999999"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        int64_t us;
        cr_assert_eq(csvstats_parse_ts(bad[i], strlen(bad[i]), &us), -1, "%s parsed", bad[i]);
    }
    char t[32];
    csvstats_format_ts(X_10H, t);
    cr_assert_str_eq(t, "2026-11-24T10:00:00Z");
    csvstats_format_ts(X_10H + 123000, t);
    cr_assert_str_eq(t, "2026-11-24T10:00:00.123Z");
    csvstats_format_ts(X_10H + 1, t);
    cr_assert_str_eq(t, "2026-11-24T10:00:00.000001Z");
    csvstats_format_ts(0, t);
    cr_assert_str_eq(t, "1970-01-01T00:00:00Z");
    csvstats_format_ts(INT64_C(1709164800000000) - 1000000, t);
    cr_assert_str_eq(t, "2024-02-28T23:59:59Z");
}

/* --- JSON ---------------------------------------------------------------- */

Test(csvstats, json_document)
{
    struct csvstats *s = run("timestamp,hr\n"
                             "2026-11-24T10:00:00Z,72.3\n"
                             "2026-11-24T10:01:00Z,x\n"
                             "2026-11-24T10:02:00Z,74.3\n"
                             "2026-11-24T10:02:00Z,74.3\n");
    json_t *j;
    cr_assert_eq(csvstats_to_json(s, &j), 0);
    json_t *rows = json_object_get(j, "rows");
    cr_assert_eq(json_integer_value(json_object_get(rows, "total")), 4);
    cr_assert_eq(json_integer_value(json_object_get(rows, "used")), 2);
    cr_assert_eq(json_integer_value(json_object_get(rows, "duplicates")), 1);
    json_t *m = json_object_get(rows, "malformed");
    cr_assert_eq(json_integer_value(json_object_get(m, "count")), 1);
    cr_assert_eq(json_integer_value(json_object_get(m, "not_a_number")), 1);
    json_t *s0 = json_array_get(json_object_get(m, "samples"), 0);
    cr_assert_eq(json_integer_value(json_object_get(s0, "line")), 3);
    cr_assert_str_eq(json_string_value(json_object_get(s0, "kind")), "not_a_number");
    json_t *t = json_object_get(j, "timestamps");
    cr_assert_str_eq(json_string_value(json_object_get(t, "first")), "2026-11-24T10:00:00Z");
    cr_assert_str_eq(json_string_value(json_object_get(t, "last")), "2026-11-24T10:02:00Z");
    cr_assert_eq(json_integer_value(json_object_get(t, "first_unix_ms")), INT64_C(1795514400000));
    cr_assert_eq(json_real_value(json_object_get(t, "span_s")), 120.0);
    json_t *c = json_array_get(json_object_get(j, "columns"), 0);
    cr_assert_str_eq(json_string_value(json_object_get(c, "name")), "hr");
    EQ(json_real_value(json_object_get(json_object_get(c, "percentiles"), "p50")), 73.3);
    cr_assert_eq(json_real_value(json_object_get(json_object_get(c, "range"), "max")), 250);
    cr_assert_eq(json_integer_value(json_object_get(json_object_get(c, "out_of_range"), "above")), 0);
    cr_assert(json_is_string(json_object_get(json_object_get(j, "definitions"), "sd")));
    cr_assert(json_is_false(json_object_get(json_object_get(j, "limits"), "values_limit_reached")));
    cr_assert(json_is_null(json_object_get(j, "error")));
    char *text = json_dumps(c, JSON_REAL_PRECISION(15) | JSON_COMPACT);
    cr_assert(strstr(text, "\"min\":72.3,"), "clean figures with JSON_REAL_PRECISION(15): %s", text);
    free(text);
    json_decref(j);
    csvstats_free(s);
}

/* --- chunks -------------------------------------------------------------- */

Test(csvstats, chunked_input_gives_the_same_result_at_every_split)
{
    struct csvstats *one = run_opts(messy, sizeof messy - 1, &messy_opts, NULL);
    char *want = dump(one);
    csvstats_free(one);
    size_t n = sizeof messy - 1;
    /* Two pieces at every split point (b == n), and three with a short middle
     * piece anywhere (multi-byte things such as the BOM, CRLF and "" cut twice). */
    for (size_t a = 0; a <= n; a++) {
        for (size_t k = 0; k <= 7; k++) {
            size_t b = k < 7 ? a + k : n;
            if (b > n)
                continue;
            struct csvstats *s = csvstats_new(&messy_opts);
            cr_assert_eq(csvstats_feed(s, messy, a), 0);
            cr_assert_eq(csvstats_feed(s, messy + a, b - a), 0);
            cr_assert_eq(csvstats_feed(s, messy + b, n - b), 0);
            cr_assert_eq(csvstats_finish(s), 0);
            char *got = dump(s);
            cr_assert_str_eq(got, want, "split at %zu and %zu", a, b);
            free(got);
            csvstats_free(s);
        }
    }
    struct csvstats *s = csvstats_new(&messy_opts);
    for (size_t i = 0; i < n; i++)
        cr_assert_eq(csvstats_feed(s, messy + i, 1), 0);
    cr_assert_eq(csvstats_finish(s), 0);
    char *got = dump(s);
    cr_assert_str_eq(got, want, "a byte at a time");
    free(got);
    csvstats_free(s);
    free(want);
}

Test(csvstats, a_partial_byte_order_mark_is_data)
{
    struct csvstats *s = run("\xEF\xBBx,hr\n1,2\n");
    cr_assert_str_eq(csvstats_result(s)->columns[0].name, "??x");
    csvstats_free(s);
    s = run_opts("\xEF", 1, NULL, NULL);
    cr_assert_str_eq(csvstats_result(s)->columns[0].name, "?");
    csvstats_free(s);
}

/* --- a large file, checked by a separate computation -------------------- */

static uint64_t xorshift(uint64_t *x)
{
    *x ^= *x << 13;
    *x ^= *x >> 7;
    *x ^= *x << 17;
    return *x;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

struct truth {
    double *v;
    size_t n;
};

/* Closest-rank interpolation with a floating h, as numpy computes it. */
static double ref_pct(const double *sorted, size_t n, double p)
{
    double h = (double)(n - 1) * p / 100.0;
    size_t lo = (size_t)h;
    double frac = h - (double)lo;
    if (lo + 1 >= n)
        return sorted[n - 1];
    return sorted[lo] + frac * (sorted[lo + 1] - sorted[lo]);
}

static void check_column(const struct csvstats_column *c, struct truth *t, const char *what)
{
    size_t n = t->n;
    cr_assert_eq(c->count, n, "%s count", what);
    double sum = 0, ss = 0;
    for (size_t i = 0; i < n; i++)
        sum += t->v[i];
    double mean = sum / (double)n;
    for (size_t i = 0; i < n; i++)
        ss += (t->v[i] - mean) * (t->v[i] - mean);
    double var = ss / (double)(n - 1);
    qsort(t->v, n, sizeof *t->v, cmp_double);
    cr_assert_eq(c->min, t->v[0], "%s min", what);
    cr_assert_eq(c->max, t->v[n - 1], "%s max", what);
    cr_assert_float_eq(c->mean, mean, 1e-12 * mean, "%s mean %.17g vs %.17g", what, c->mean, mean);
    cr_assert_float_eq(c->sd * c->sd, var, 1e-12 * var, "%s sd^2 %.17g vs var %.17g", what, c->sd * c->sd, var);
    cr_assert(c->have_percentiles);
    for (int q = 0; q < CSVSTATS_NPCT; q++) {
        double want = ref_pct(t->v, n, csvstats_pcts[q]);
        cr_assert_float_eq(c->pct[q], want, 1e-12 * want, "%s p%u: %.17g vs %.17g", what, csvstats_pcts[q],
                           c->pct[q], want);
    }
}

Test(csvstats, two_hundred_thousand_rows_match_a_separate_computation, .timeout = 120)
{
    enum { N = 200000 };
    size_t cap = (size_t)N * 64, len = 0;
    char *csv = malloc(cap);
    struct truth hr = {malloc(N * sizeof(double)), 0}, sys = {malloc(N * sizeof(double)), 0},
                 temp = {malloc(N * sizeof(double)), 0};
    cr_assert(csv && hr.v && sys.v && temp.v);
    len += (size_t)snprintf(csv + len, cap - len, "timestamp,heart_rate,systolic,temperature\r\n");
    uint64_t x = 88172645463325252u, temp_above = 0, hr_missing = 0;
    int64_t base_ms = INT64_C(1795478400000); /* 2026-11-24T00:00:00Z */
    for (int i = 0; i < N; i++) {
        uint64_t r = xorshift(&x);
        int hk = 300 + (int)(r % 1800);           /* 30.0 .. 209.9 */
        int sk = 80 + (int)((r >> 16) % 120);     /* 80 .. 199 */
        int tk = 350 + (int)((r >> 32) % 80);     /* 35.0 .. 42.9 */
        if ((r >> 48) % 100 == 0)
            tk = 455;                              /* 45.5, above the range */
        bool miss = i % 97 == 5;
        size_t start = len;
        len += (size_t)snprintf(csv + len, cap - len, "%lld,", (long long)(base_ms + (int64_t)i * 1000));
        if (miss)
            hr_missing++;
        else
            len += (size_t)snprintf(csv + len, cap - len, "%d.%d", hk / 10, hk % 10);
        len += (size_t)snprintf(csv + len, cap - len, ",%d,%d.%d\r\n", sk, tk / 10, tk % 10);
        if (!miss)
            hr.v[hr.n++] = hk / 10.0;
        sys.v[sys.n++] = sk;
        temp.v[temp.n++] = tk / 10.0;
        temp_above += tk == 455;
        /* After every 1000th row, that row again: a duplicate. */
        if (i % 1000 == 999) {
            memcpy(csv + len, csv + start, len - start);
            len += len - start;
        }
    }
    cr_assert_lt(len, cap);
    /* Fed in 1 MiB pieces, as values come out of the store. */
    struct csvstats *s = csvstats_new(NULL);
    for (size_t off = 0; off < len; off += 1 << 20)
        cr_assert_eq(csvstats_feed(s, csv + off, len - off < (1u << 20) ? len - off : 1u << 20), 0);
    cr_assert_eq(csvstats_finish(s), 0);
    const struct csvstats_result *r = csvstats_result(s);
    cr_assert_eq(r->rows_total, N + N / 1000);
    cr_assert_eq(r->duplicates, N / 1000);
    cr_assert_eq(r->rows_used, N);
    cr_assert_eq(r->malformed, 0);
    cr_assert_eq(r->conflicting_timestamps, 0);
    cr_assert_eq(r->ts_first_us, base_ms * 1000);
    cr_assert_eq(r->ts_last_us, (base_ms + (int64_t)(N - 1) * 1000) * 1000);
    cr_assert_eq(col(s, "heart_rate")->missing, hr_missing);
    cr_assert_eq(col(s, "temperature")->above, temp_above);
    check_column(col(s, "heart_rate"), &hr, "heart_rate");
    check_column(col(s, "systolic"), &sys, "systolic");
    check_column(col(s, "temperature"), &temp, "temperature");
    cr_assert_lt(csvstats_memory(s), 64 * 1024, "values and tables are freed by finish");
    csvstats_free(s);
    free(csv);
    free(hr.v);
    free(sys.v);
    free(temp.v);
}

/* --- limits and garbage -------------------------------------------------- */

Test(csvstats, the_values_limit_drops_percentiles_not_figures)
{
    struct csvstats_opts o = {.max_values = 100};
    char csv[8192];
    size_t len = (size_t)snprintf(csv, sizeof csv, "t,a,b\n");
    for (int i = 1; i <= 150; i++)
        len += (size_t)snprintf(csv + len, sizeof csv - len, "%d,%d,%d\n", i, i, 2 * i);
    struct csvstats *s = run_opts(csv, len, &o, NULL);
    const struct csvstats_result *r = csvstats_result(s);
    cr_assert(r->values_limit_hit);
    const struct csvstats_column *a = col(s, "a");
    cr_assert_not(a->have_percentiles);
    cr_assert_eq(a->count, 150);
    cr_assert_eq(a->min, 1);
    cr_assert_eq(a->max, 150);
    EQ(a->mean, 75.5);
    EQ(a->sd * a->sd, 150.0 * 151 / 12); /* n(n+1)/12 for 1..n */
    json_t *j;
    cr_assert_eq(csvstats_to_json(s, &j), 0);
    cr_assert(json_is_true(json_object_get(json_object_get(j, "limits"), "values_limit_reached")));
    cr_assert(json_is_null(json_object_get(json_array_get(json_object_get(j, "columns"), 0), "percentiles")));
    json_decref(j);
    csvstats_free(s);
}

Test(csvstats, the_duplicate_limit_stops_checking)
{
    struct csvstats_opts o = {.max_rows = 10};
    char csv[4096];
    size_t len = (size_t)snprintf(csv, sizeof csv, "t,a\n");
    for (int i = 0; i < 10; i++) /* 5 rows, each twice */
        len += (size_t)snprintf(csv + len, sizeof csv - len, "1,%d\n", i % 5);
    for (int i = 0; i < 20; i++) /* 5 more fill the 10 remembered; then no more checks */
        len += (size_t)snprintf(csv + len, sizeof csv - len, "1,%d\n", 100 + i);
    for (int i = 0; i < 5; i++) /* would be duplicates */
        len += (size_t)snprintf(csv + len, sizeof csv - len, "1,%d\n", i);
    struct csvstats *s = run_opts(csv, len, &o, NULL);
    const struct csvstats_result *r = csvstats_result(s);
    cr_assert(r->dedupe_limit_hit);
    cr_assert_eq(r->rows_total, 35);
    cr_assert_eq(r->duplicates, 5);
    cr_assert_eq(r->rows_used, 30);
    csvstats_free(s);
}

Test(csvstats, header_problems_are_fatal_and_sticky)
{
    int rc;
    struct csvstats *s = run_opts("", 0, NULL, &rc);
    cr_assert_eq(rc, ERR_BAD_INPUT);
    json_t *j;
    cr_assert_eq(csvstats_to_json(s, &j), 0);
    cr_assert(json_is_string(json_object_get(j, "error")));
    json_decref(j);
    csvstats_free(s);

    s = run_opts("\n \r\n\n", 5, NULL, &rc);
    cr_assert_eq(rc, ERR_BAD_INPUT, "only blank lines: no header");
    csvstats_free(s);

    s = run_opts("1700000000,72,98\n1700000001,73,97\n", 34, NULL, &rc);
    cr_assert_eq(rc, ERR_BAD_INPUT);
    cr_assert(strstr(csvstats_result(s)->error_msg, "no header"), "%s", csvstats_result(s)->error_msg);
    csvstats_free(s);

    struct csvstats_opts o = {.timestamp_column = "when"};
    s = run_opts("time,hr\n1,2\n", 12, &o, &rc);
    cr_assert_eq(rc, ERR_BAD_INPUT);
    csvstats_free(s);

    o = (struct csvstats_opts){.max_columns = 3};
    s = run_opts("a,b,c,d\n", 8, &o, &rc);
    cr_assert_eq(rc, ERR_TOO_LARGE);
    csvstats_free(s);

    s = csvstats_new(NULL);
    cr_assert_eq(csvstats_feed(s, "\"open,hr\n1,2\n", 13), 0);
    cr_assert_eq(csvstats_finish(s), ERR_BAD_INPUT, "unterminated quote in the header");
    csvstats_free(s);

    /* A header with nothing after it is fine: columns with no values. */
    s = run("timestamp,hr\n");
    cr_assert_eq(csvstats_result(s)->ncolumns, 1);
    cr_assert_eq(csvstats_result(s)->rows_total, 0);
    cr_assert_not(csvstats_result(s)->have_timestamps);
    cr_assert_eq(csvstats_to_json(s, &j), 0);
    cr_assert(json_is_null(json_object_get(json_object_get(j, "timestamps"), "first")));
    json_decref(j);
    csvstats_free(s);
}

#define BIG (10u * 1024 * 1024)

Test(csvstats, a_ten_megabyte_line_is_one_bad_row_in_bounded_memory, .timeout = 120)
{
    char *chunk = malloc(1 << 20);
    cr_assert_not_null(chunk);
    memset(chunk, '7', 1 << 20);
    struct csvstats *s = csvstats_new(NULL);
    static const char head[] = "timestamp,hr\n1,70\n2,";
    cr_assert_eq(csvstats_feed(s, head, sizeof head - 1), 0);
    for (unsigned i = 0; i < BIG >> 20; i++)
        cr_assert_eq(csvstats_feed(s, chunk, 1 << 20), 0);
    cr_assert_eq(csvstats_feed(s, "\n3,71", 5), 0);
    cr_assert_eq(csvstats_finish(s), 0);
    const struct csvstats_result *r = csvstats_result(s);
    cr_assert_eq(r->malformed_by_kind[CSVSTATS_BAD_TOO_LONG], 1);
    cr_assert_eq(r->samples[0].line, 3);
    cr_assert_eq(r->rows_used, 2, "the rows around it are read");
    cr_assert_eq(r->lines, 4);
    cr_assert_lt(csvstats_memory_peak(s), CSVSTATS_DEFAULT_MAX_LINE + 64 * 1024, "peak %zu",
                 csvstats_memory_peak(s));
    csvstats_free(s);

    /* As the header: fatal, and nothing more is read. */
    s = csvstats_new(NULL);
    int rc = 0;
    for (unsigned i = 0; i < BIG >> 20 && !rc; i++)
        rc = csvstats_feed(s, chunk, 1 << 20);
    cr_assert_eq(rc, ERR_TOO_LARGE);
    cr_assert_eq(csvstats_feed(s, "a\n", 2), ERR_TOO_LARGE);
    cr_assert_eq(csvstats_finish(s), ERR_TOO_LARGE);
    cr_assert_lt(csvstats_memory_peak(s), CSVSTATS_DEFAULT_MAX_LINE + 64 * 1024);
    csvstats_free(s);

    /* An opening quote that never closes: also one bad row. */
    s = csvstats_new(NULL);
    cr_assert_eq(csvstats_feed(s, "t,v\n1,\"", 7), 0);
    for (unsigned i = 0; i < BIG >> 20; i++)
        cr_assert_eq(csvstats_feed(s, chunk, 1 << 20), 0);
    cr_assert_eq(csvstats_feed(s, "\n2,5\n", 5), 0);
    cr_assert_eq(csvstats_finish(s), 0);
    cr_assert_eq(csvstats_result(s)->malformed_by_kind[CSVSTATS_BAD_TOO_LONG], 1);
    cr_assert_eq(csvstats_result(s)->rows_used, 1);
    cr_assert_lt(csvstats_memory_peak(s), CSVSTATS_DEFAULT_MAX_LINE + 64 * 1024);
    csvstats_free(s);
    free(chunk);
}

static void feed_random(struct csvstats *s, size_t total, uint64_t seed, bool text_like)
{
    uint8_t *buf = malloc(70000);
    cr_assert_not_null(buf);
    uint64_t x = seed;
    size_t done = 0;
    while (done < total) {
        size_t n = 1 + xorshift(&x) % 70000;
        if (n > total - done)
            n = total - done;
        for (size_t i = 0; i < n; i++) {
            uint64_t r = xorshift(&x);
            if (text_like) {
                static const char alphabet[] = "0123456789,,,,\n\n\"-.eE :TZ\r\t";
                buf[i] = (uint8_t)alphabet[r % (sizeof alphabet - 1)];
            } else {
                buf[i] = (uint8_t)r;
            }
        }
        int rc = csvstats_feed(s, buf, n);
        if (rc)
            break;
        done += n;
    }
    free(buf);
}

static void check_consistent(struct csvstats *s)
{
    const struct csvstats_result *r = csvstats_result(s);
    cr_assert_eq(r->rows_total, r->rows_used + r->duplicates + r->malformed);
    uint64_t sum = 0;
    for (int k = 0; k < CSVSTATS_BAD__COUNT; k++)
        sum += r->malformed_by_kind[k];
    cr_assert_eq(sum, r->malformed);
    cr_assert_leq(r->nsamples, CSVSTATS_SAMPLES);
    json_t *j;
    cr_assert_eq(csvstats_to_json(s, &j), 0, "the document builds from any input");
    char *t = json_dumps(j, 0);
    cr_assert_not_null(t);
    free(t);
    json_decref(j);
}

Test(csvstats, random_bytes_give_counters_not_crashes, .timeout = 120)
{
    for (uint64_t seed = 1; seed <= 4; seed++) {
        struct csvstats *s = csvstats_new(NULL);
        feed_random(s, 2u << 20, seed * 7919, false);
        (void)csvstats_finish(s);
        check_consistent(s);
        cr_assert_lt(csvstats_memory_peak(s), 4u << 20, "peak %zu", csvstats_memory_peak(s));
        csvstats_free(s);

        /* After a good header, so the rows themselves are read. */
        s = csvstats_new(NULL);
        cr_assert_eq(csvstats_feed(s, "timestamp,hr,spo2\n", 18), 0);
        feed_random(s, 2u << 20, seed * 104729, seed % 2 == 0);
        cr_assert_eq(csvstats_finish(s), 0);
        check_consistent(s);
        cr_assert_gt(csvstats_result(s)->malformed, 0);
        cr_assert_lt(csvstats_memory_peak(s), 8u << 20, "peak %zu", csvstats_memory_peak(s));
        csvstats_free(s);
    }
}

Test(csvstats, odd_header_bytes_still_make_valid_json)
{
    static const char csv[] = "timestamp,\"h\x00r\",\xff\xfe,,\"\"\n1,2,3,4,5\n";
    struct csvstats *s = run_opts(csv, sizeof csv - 1, NULL, NULL);
    const struct csvstats_result *r = csvstats_result(s);
    cr_assert_eq(r->ncolumns, 4);
    cr_assert_str_eq(r->columns[0].name, "h?r");
    cr_assert_str_eq(r->columns[1].name, "??");
    cr_assert_str_eq(r->columns[2].name, "column_4");
    cr_assert_str_eq(r->columns[3].name, "column_5");
    char *t = dump(s);
    cr_assert(strstr(t, "\"h?r\""), "%s", t);
    free(t);
    csvstats_free(s);

    /* A long non-ASCII name in a reason, cut short: the reason stays ASCII. */
    char csv2[256];
    size_t len = (size_t)snprintf(csv2, sizeof csv2, "t,");
    for (int i = 0; i < 45; i++)
        len += (size_t)snprintf(csv2 + len, sizeof csv2 - len, "\xC3\xA9");
    len += (size_t)snprintf(csv2 + len, sizeof csv2 - len, "\n1,x\n");
    s = run_opts(csv2, len, NULL, NULL);
    r = csvstats_result(s);
    cr_assert_eq(r->nsamples, 1);
    for (const char *c = r->samples[0].reason; *c; c++)
        cr_assert((unsigned char)*c >= 0x20 && (unsigned char)*c < 0x7f, "%s", r->samples[0].reason);
    t = dump(s);
    free(t);
    csvstats_free(s);
}

Test(csvstats, numbers_read_exactly_as_strtod_reads_them)
{
    static const char *const fixed[] = {"0.1", "-0", "+.5", "5.", "1e2", "-1.5E-3", "123456789012345",
                                        "1234567890123456", "9007199254740993", "0.000000000000001",
                                        "72.30000000000000001", "99999999999999.9"};
    uint64_t x = 42;
    for (int i = 0; i < 2000 + (int)(sizeof fixed / sizeof fixed[0]); i++) {
        char num[40];
        if (i < (int)(sizeof fixed / sizeof fixed[0])) {
            snprintf(num, sizeof num, "%s", fixed[i]);
        } else {
            uint64_t r = xorshift(&x);
            int digits = 1 + (int)(r % 18), point = (int)((r >> 8) % (unsigned)(digits + 1));
            size_t k = 0;
            if (r >> 63)
                num[k++] = '-';
            for (int d = 0; d < digits; d++) {
                if (d == point && d)
                    num[k++] = '.';
                num[k++] = (char)('0' + (xorshift(&x) % 10));
            }
            num[k] = 0;
        }
        char csv[80];
        int len = snprintf(csv, sizeof csv, "v\n%s\n", num);
        struct csvstats *s = run_opts(csv, (size_t)len, NULL, NULL);
        const struct csvstats_column *c = &csvstats_result(s)->columns[0];
        cr_assert_eq(c->count, 1, "%s", num);
        double want = strtod(num, NULL) + 0.0;
        cr_assert(c->min == want, "%s: %.17g, strtod %.17g", num, c->min, want);
        csvstats_free(s);
    }
}
