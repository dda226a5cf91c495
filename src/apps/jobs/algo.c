/* The algorithm registry: see algo.h. */
#include "jobs/algo.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "jobs/csvstats.h"
#include "util/err.h"

const struct algo_info algo_registry[] = {
    {"stats", "Statistics", "per-column count, missing, min, max, mean, sd, percentiles and out-of-range counts"},
    {"vitals", "Vital signs",
     "statistics, plus heart and breath rate per minute window (mean, range, trend per minute) and the moments "
     "each crossed its normal band (heart 50-120 bpm, breath 8-25 per minute)"},
};
const size_t algo_count = sizeof algo_registry / sizeof algo_registry[0];

/* One bucket of one column: enough to merge two exactly and to fit a line
 * (t in seconds from the file's first timestamp). */
struct bucket {
    double n, sum, min, max, st, stt, stv;
};

/* Buckets of a fixed width that doubles (pairs merged) as the file grows. */
struct ladder {
    int64_t width;   /* µs, or rows without timestamps */
    int64_t origin;  /* the first row's position */
    bool started;
    size_t nb;       /* buckets used: 0..nb-1 */
    size_t ncol;
    struct bucket *b; /* ncol * ALGO_BUCKETS, column-major */
};

enum { BAND_IN, BAND_BELOW, BAND_ABOVE };

struct event {
    int64_t t;       /* position, as the ladder's */
    int series;      /* 0 heart, 1 breath */
    int to;          /* BAND_* */
    double value;
};

struct algo {
    int kind;        /* 0 stats, 1 vitals */
    struct csvstats *st;
    bool ts_mode, mode_set;
    uint64_t rowno;
    struct ladder chart, win;
    size_t chart_cols[ALGO_CHART_COLUMNS], nchart;
    bool cols_known;
    int vcol[2];     /* heart, breath: column index or -1 */
    int band[2];
    struct event ev[ALGO_EVENTS_KEPT];
    size_t nev;
    uint64_t events_total;
};

static void bucket_add(struct bucket *b, double t, double v)
{
    if (b->n == 0 || v < b->min)
        b->min = v;
    if (b->n == 0 || v > b->max)
        b->max = v;
    b->n++;
    b->sum += v;
    b->st += t;
    b->stt += t * t;
    b->stv += t * v;
}

static void bucket_merge(struct bucket *a, const struct bucket *b)
{
    if (b->n == 0)
        return;
    if (a->n == 0) {
        *a = *b;
        return;
    }
    a->min = b->min < a->min ? b->min : a->min;
    a->max = b->max > a->max ? b->max : a->max;
    a->n += b->n;
    a->sum += b->sum;
    a->st += b->st;
    a->stt += b->stt;
    a->stv += b->stv;
}

static bool ladder_init(struct ladder *l, size_t ncol, int64_t width)
{
    memset(l, 0, sizeof *l);
    l->ncol = ncol;
    l->width = width;
    l->b = ncol ? calloc(ncol * ALGO_BUCKETS, sizeof *l->b) : NULL;
    return !ncol || l->b;
}

/* The bucket of position pos, widening the ladder as needed. */
static size_t ladder_index(struct ladder *l, int64_t pos)
{
    if (!l->started) {
        l->origin = pos;
        l->started = true;
    }
    int64_t off = pos < l->origin ? 0 : pos - l->origin; /* earlier than the first row: the first bucket */
    while (off / l->width >= ALGO_BUCKETS) {
        for (size_t c = 0; c < l->ncol; c++) {
            struct bucket *b = &l->b[c * ALGO_BUCKETS];
            for (size_t i = 0; i < ALGO_BUCKETS / 2; i++) {
                struct bucket m = b[2 * i];
                bucket_merge(&m, &b[2 * i + 1]);
                b[i] = m;
            }
            memset(&b[ALGO_BUCKETS / 2], 0, (ALGO_BUCKETS / 2) * sizeof *b);
        }
        l->width *= 2;
        l->nb = (l->nb + 1) / 2;
    }
    size_t i = (size_t)(off / l->width);
    if (i + 1 > l->nb)
        l->nb = i + 1;
    return i;
}

static bool key_is(const char *key, const char *const *names)
{
    for (; *names; names++) {
        size_t n = strlen(*names);
        if (!strncmp(key, *names, n) &&
            (!key[n] || !strcmp(key + n, "_bpm") || !strcmp(key + n, "_brpm") || !strcmp(key + n, "_per_min")))
            return true;
    }
    return false;
}

static void find_columns(struct algo *a, size_t ncols)
{
    const struct csvstats_result *r = csvstats_result(a->st);
    static const char *const heart[] = {"heart_rate", "heartrate", "hr", "pulse_rate", "pulse", "bpm", NULL};
    static const char *const breath[] = {"breath_rate", "breathing_rate", "breaths_per_min", "resp_rate",
                                         "respiration_rate", "respiratory_rate", "resp", NULL};
    a->vcol[0] = a->vcol[1] = -1;
    for (size_t k = 0; k < ncols && k < r->ncolumns; k++) {
        if (a->nchart < ALGO_CHART_COLUMNS)
            a->chart_cols[a->nchart++] = k;
        if (a->vcol[0] < 0 && key_is(r->columns[k].key, heart))
            a->vcol[0] = (int)k;
        else if (a->vcol[1] < 0 && key_is(r->columns[k].key, breath))
            a->vcol[1] = (int)k;
    }
    a->cols_known = true;
}

static const double band_lo[2] = {VITALS_HR_LOW, VITALS_BR_LOW}, band_hi[2] = {VITALS_HR_HIGH, VITALS_BR_HIGH};

static void on_row(void *ctx, bool has_ts, int64_t ts_us, const double *v, const uint8_t *missing, size_t ncols)
{
    struct algo *a = ctx;
    if (!a->cols_known) {
        find_columns(a, ncols);
        /* Timestamps or row numbers, decided by the first row. */
        a->ts_mode = has_ts;
        if (!ladder_init(&a->chart, a->nchart, a->ts_mode ? (int64_t)ALGO_BUCKET_S * 1000000 : 1) ||
            !ladder_init(&a->win, a->kind ? 2 : 0, a->ts_mode ? (int64_t)ALGO_WINDOW_S * 1000000 : ALGO_WINDOW_S)) {
            a->nchart = 0;
            a->kind = 0;
        }
    }
    a->rowno++;
    if (a->ts_mode && !has_ts)
        return; /* a row without a timestamp has no place on a time axis */
    int64_t pos = a->ts_mode ? ts_us : (int64_t)a->rowno;
    if (a->nchart && a->chart.b) {
        size_t i = ladder_index(&a->chart, pos);
        double t = (double)(pos - a->chart.origin) / (a->ts_mode ? 1e6 : 1);
        for (size_t c = 0; c < a->nchart; c++)
            if (!missing[a->chart_cols[c]])
                bucket_add(&a->chart.b[c * ALGO_BUCKETS + i], t, v[a->chart_cols[c]]);
    }
    if (a->kind != 1 || !a->win.b)
        return;
    size_t i = ladder_index(&a->win, pos);
    double t = (double)(pos - a->win.origin) / (a->ts_mode ? 1e6 : 1);
    for (int s = 0; s < 2; s++) {
        int k = a->vcol[s];
        if (k < 0 || missing[k])
            continue;
        double x = v[k];
        bucket_add(&a->win.b[(size_t)s * ALGO_BUCKETS + i], t, x);
        int band = x < band_lo[s] ? BAND_BELOW : x > band_hi[s] ? BAND_ABOVE : BAND_IN;
        if (band != a->band[s]) {
            a->band[s] = band;
            a->events_total++;
            if (a->nev < ALGO_EVENTS_KEPT)
                a->ev[a->nev++] = (struct event){pos, s, band, x};
        }
    }
}

struct algo *algo_new(const char *name, size_t mem_bytes, bool *unknown)
{
    *unknown = false;
    int kind = -1;
    for (size_t i = 0; i < algo_count; i++)
        if (!strcmp(name, algo_registry[i].name))
            kind = (int)i;
    if (kind < 0) {
        *unknown = true;
        return NULL;
    }
    struct algo *a = calloc(1, sizeof *a);
    if (!a)
        return NULL;
    a->kind = kind;
    struct csvstats_opts o = {.on_row = on_row, .row_ctx = a};
    if (mem_bytes) {
        /* Half for values (16 bytes each with growth slack), a quarter for
         * the duplicate table (64 bytes a row while it grows). */
        o.max_values = mem_bytes / 2 / 16 + 1;
        o.max_rows = mem_bytes / 4 / 64 + 1;
    }
    a->st = csvstats_new(&o);
    if (!a->st) {
        free(a);
        return NULL;
    }
    return a;
}

void algo_free(struct algo *a)
{
    if (!a)
        return;
    csvstats_free(a->st);
    free(a->chart.b);
    free(a->win.b);
    free(a);
}

int algo_feed(struct algo *a, const void *p, size_t n)
{
    return csvstats_feed(a->st, p, n);
}

int algo_finish(struct algo *a)
{
    return csvstats_finish(a->st);
}

const char *algo_error(const struct algo *a)
{
    const char *m = csvstats_result(a->st)->error_msg;
    return m && *m ? m : "not a readings file";
}

uint64_t algo_rows(const struct algo *a)
{
    return csvstats_result(a->st)->rows_total + csvstats_result(a->st)->blank_lines;
}

size_t algo_memory(const struct algo *a)
{
    return csvstats_memory(a->st) + sizeof *a + (a->nchart + 2) * ALGO_BUCKETS * sizeof(struct bucket);
}

/* A position as the page shows it: Unix ms, or the row number. */
static json_t *pos_json(const struct algo *a, int64_t pos)
{
    return json_integer(a->ts_mode ? pos / 1000 : pos);
}

static json_t *num(double x)
{
    return isfinite(x) ? json_real(x) : json_null();
}

static json_t *chart_json(const struct algo *a)
{
    const struct csvstats_result *r = csvstats_result(a->st);
    json_t *ch = json_object(), *cols = json_array(), *t = json_array();
    json_object_set_new(ch, "axis", json_string(a->ts_mode ? "unix_ms" : "row"));
    json_object_set_new(ch, "bucket", json_integer(a->ts_mode ? a->chart.width / 1000 : a->chart.width));
    for (size_t i = 0; i < a->chart.nb; i++)
        json_array_append_new(t, pos_json(a, a->chart.origin + (int64_t)i * a->chart.width));
    json_object_set_new(ch, "t", t);
    for (size_t c = 0; c < a->nchart && a->chart.b; c++) {
        const struct csvstats_column *col = &r->columns[a->chart_cols[c]];
        json_t *o = json_pack("{s:s, s:s}", "name", col->name, "key", col->key);
        json_t *mn = json_array(), *av = json_array(), *mx = json_array();
        for (size_t i = 0; i < a->chart.nb; i++) {
            const struct bucket *b = &a->chart.b[c * ALGO_BUCKETS + i];
            json_array_append_new(mn, b->n ? num(b->min) : json_null());
            json_array_append_new(av, b->n ? num(b->sum / b->n) : json_null());
            json_array_append_new(mx, b->n ? num(b->max) : json_null());
        }
        json_object_set_new(o, "min", mn);
        json_object_set_new(o, "avg", av);
        json_object_set_new(o, "max", mx);
        if (col->has_range)
            json_object_set_new(o, "range", json_pack("[o, o]", num(col->range_min), num(col->range_max)));
        json_array_append_new(cols, o);
    }
    json_object_set_new(ch, "columns", cols);
    return ch;
}

static json_t *vitals_json(const struct algo *a)
{
    const struct csvstats_result *r = csvstats_result(a->st);
    static const char *const names[2] = {"heart_rate", "breath_rate"}, *const bands[3] = {"normal", "below", "above"};
    json_t *v = json_object(), *series = json_object();
    json_object_set_new(v, "window", json_integer(a->ts_mode ? a->win.width / 1000 : a->win.width));
    json_object_set_new(v, "window_unit", json_string(a->ts_mode ? "ms" : "rows"));
    for (int s = 0; s < 2; s++) {
        int k = a->vcol[s];
        if (k < 0 || !a->win.b) {
            json_object_set_new(series, names[s], json_null());
            continue;
        }
        json_t *o = json_pack("{s:s, s:[f, f]}", "column", r->columns[k].name, "band", band_lo[s], band_hi[s]);
        json_t *w = json_array();
        for (size_t i = 0; i < a->win.nb; i++) {
            const struct bucket *b = &a->win.b[(size_t)s * ALGO_BUCKETS + i];
            if (!b->n)
                continue;
            /* The least-squares slope of value on time, per minute (or per
             * row); undefined with one point or one instant. */
            double den = b->n * b->stt - b->st * b->st;
            json_t *slope = b->n >= 2 && den > 0
                                ? num((b->n * b->stv - b->st * b->sum) / den * (a->ts_mode ? 60.0 : 1.0))
                                : json_null();
            json_array_append_new(w, json_pack("{s:o, s:I, s:o, s:o, s:o, s:o}", "t",
                                               pos_json(a, a->win.origin + (int64_t)i * a->win.width), "n",
                                               (json_int_t)b->n, "min", num(b->min), "mean", num(b->sum / b->n),
                                               "max", num(b->max), "trend_per_min", slope));
        }
        json_object_set_new(o, "windows", w);
        json_object_set_new(series, names[s], o);
    }
    json_object_set_new(v, "series", series);
    json_t *ev = json_array();
    for (size_t i = 0; i < a->nev; i++)
        json_array_append_new(ev, json_pack("{s:o, s:s, s:s, s:o}", "t", pos_json(a, a->ev[i].t), "series",
                                            names[a->ev[i].series], "band", bands[a->ev[i].to], "value",
                                            num(a->ev[i].value)));
    json_object_set_new(v, "events", ev);
    json_object_set_new(v, "events_total", json_integer((json_int_t)a->events_total));
    return v;
}

int algo_to_json(const struct algo *a, json_t **out)
{
    int rc = csvstats_to_json(a->st, out);
    if (rc)
        return rc;
    json_object_set_new(*out, "algorithm", json_string(algo_registry[a->kind].name));
    json_object_set_new(*out, "chart", chart_json(a));
    if (a->kind == 1)
        json_object_set_new(*out, "vitals", vitals_json(a));
    return ERR_OK;
}
