/* Per-column statistics of a CSV of readings, fed in chunks (definitions in
 * csvstats.h).
 *
 * The scanner walks the bytes once with a four-state machine (field start,
 * unquoted, quoted, quote seen inside quotes) that only finds where records
 * end; each record is copied into a line buffer of at most max_line bytes and
 * then split (unquoting in place), checked and folded into the figures. A
 * record that outgrows the buffer is dropped and the input skipped to the next
 * line feed. Values are kept as doubles for the percentiles, which are found
 * by selection (expected linear time) rather than a full sort.
 *
 * The JSON document (csvstats_to_json), for a file whose rows are 10:00 72,98;
 * 10:01 75,97 twice; 10:02 abc,97; 10:02 260,(empty); 10:03 68,96; 10:03 69,96:
 *   {"timestamp_column": "timestamp",
 *    "rows": {"lines": 8, "blank_lines": 0, "total": 7, "used": 5, "duplicates": 1,
 *             "conflicting_timestamps": 1,
 *             "malformed": {"count": 1, "wrong_field_count": 0, "not_a_number": 1,
 *                           "bad_timestamp": 0, "bad_quotes": 0, "line_too_long": 0,
 *                           "samples": [{"line": 5, "kind": "not_a_number",
 *                                        "reason": "column \"hr\": \"abc\" is not a number"}]}},
 *    "timestamps": {"first": "2026-11-24T10:00:00Z", "last": "2026-11-24T10:03:00Z",
 *                   "first_unix_ms": 1795514400000, "last_unix_ms": 1795514580000,
 *                   "span_s": 180.0, "missing": 0, "out_of_order": 0},
 *    "columns": [{"name": "hr", "key": "hr", "count": 5, "missing": 0, "min": 68.0, "max": 260.0,
 *                 "mean": 108.8, "sd": 84.5677243397267,
 *                 "percentiles": {"p5": 68.2, "p25": 69.0, "p50": 72.0, "p75": 75.0,
 *                                 "p95": 223.0, "p99": 252.6},
 *                 "range": {"min": 20.0, "max": 250.0}, "out_of_range": {"below": 0, "above": 1}},
 *                {"name": "spo2", ...}],
 *    "limits": {"max_values": 8388608, "values_limit_reached": false,
 *               "max_rows": 2097152, "duplicate_check_limit_reached": false},
 *    "definitions": {"sd": "...", "percentiles": "...", "duplicates": "...", "out_of_range": "..."},
 *    "error": null}
 * "timestamps" is null without a timestamp column; figures that are undefined
 * (min of no values, sd of one, percentiles not kept, an infinite range end)
 * are null. */
#include "jobs/csvstats.h"

#include <math.h> /* isfinite, INFINITY: macros only, the tree links no libm */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/err.h"
#include "util/text.h"

const unsigned csvstats_pcts[CSVSTATS_NPCT] = {5, 25, 50, 75, 95, 99};

enum { ST_START, ST_UNQUOTED, ST_QUOTED, ST_QUOTE_SEEN };
enum { KIND_TS = -1, KIND_SKIP = -2 }; /* colkind[]: >= 0 is a numeric column */

struct field {
    uint8_t *p;
    size_t n;
};

struct numcol {
    double *vals; /* the values, in row order, while kept; nvals == count */
    size_t cap;
    double wmean, wm2; /* Welford's running mean and sum of squared deviations */
};

struct tsent {
    int64_t ts;
    uint64_t h; /* hash of the first row with this timestamp; 0: empty slot */
};

struct rangedef {
    char *key;
    double min, max;
};

struct csvstats {
    size_t max_values, max_rows, max_line, max_columns;
    char *ts_key;
    char **skip_keys;
    size_t nskip;
    struct rangedef *ranges;
    size_t nranges;
    bool default_ranges;

    /* scanner */
    uint8_t *rec;
    size_t rec_len, rec_cap;
    int st;
    bool skipping, bom_done, header_done, finished, partial_line;
    unsigned bom_seen; /* bytes of a leading byte order mark matched so far */
    uint64_t line;     /* line feeds seen */
    uint64_t rec_line; /* the line the current record starts on */

    /* header */
    size_t nfields;
    int *colkind;
    struct csvstats_column *cols;
    struct numcol *nc;
    size_t ncols;
    char *ts_name;
    struct field *fields;
    double *rowv;
    uint8_t *rowmiss;

    /* duplicates */
    struct tsent *tsmap;
    size_t tscap, tsn;
    uint64_t *hset;
    size_t hcap, hn;
    bool have_prev_ts;
    int64_t prev_ts;

    size_t values_kept;
    void (*on_row)(void *ctx, bool has_ts, int64_t ts_us, const double *v, const uint8_t *missing, size_t ncols);
    void *row_ctx;
    size_t mem, mem_peak;
    char errmsg[256];
    struct csvstats_result r;
};

/* --- allocation, counted ------------------------------------------------- */

static void *mem_realloc(struct csvstats *s, void *p, size_t old, size_t n)
{
    void *q = realloc(p, n);
    if (!q)
        return NULL;
    s->mem = s->mem - old + n;
    if (s->mem > s->mem_peak)
        s->mem_peak = s->mem;
    return q;
}

static void *mem_calloc(struct csvstats *s, size_t count, size_t size)
{
    if (count && size > SIZE_MAX / count)
        return NULL;
    void *p = calloc(count ? count : 1, size ? size : 1);
    if (!p)
        return NULL;
    s->mem += count * size;
    if (s->mem > s->mem_peak)
        s->mem_peak = s->mem;
    return p;
}

static void mem_free(struct csvstats *s, void *p, size_t size)
{
    if (!p)
        return;
    free(p);
    s->mem -= size;
}

static char *mem_strndup(struct csvstats *s, const char *p, size_t n)
{
    char *d = mem_calloc(s, n + 1, 1);
    if (d && n)
        memcpy(d, p, n);
    return d;
}

static void mem_strfree(struct csvstats *s, char *p)
{
    if (p)
        mem_free(s, p, strlen(p) + 1);
}

static int fatal(struct csvstats *s, int code, const char *fmt, const char *arg)
{
    if (!s->r.error) {
        s->r.error = code;
        snprintf(s->errmsg, sizeof s->errmsg, fmt, arg);
    }
    return s->r.error;
}

static int nomem(struct csvstats *s)
{
    return fatal(s, ERR_NOMEM, "%s", "out of memory");
}

/* --- text helpers -------------------------------------------------------- */

static bool is_space(uint8_t c)
{
    return c == ' ' || c == '\t';
}

static void trim(const uint8_t **p, size_t *n)
{
    while (*n && is_space((*p)[0])) {
        (*p)++;
        (*n)--;
    }
    while (*n && is_space((*p)[*n - 1]))
        (*n)--;
}

/* Lowercase ASCII letters and digits; every run of anything else is one '_';
 * no '_' at either end. out has room for n + 1 bytes. */
static void normalise(const char *in, size_t n, char *out)
{
    size_t o = 0;
    bool gap = false;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)in[i];
        if (c >= 'A' && c <= 'Z')
            c = (unsigned char)(c - 'A' + 'a');
        if ((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9')) {
            if (gap && o)
                out[o++] = '_';
            gap = false;
            out[o++] = (char)c;
        } else {
            gap = true;
        }
    }
    out[o] = 0;
}

static char *mem_normalise(struct csvstats *s, const char *in)
{
    size_t n = strlen(in);
    char *d = mem_calloc(s, n + 1, 1);
    if (d)
        normalise(in, n, d);
    return d;
}

/* A value quoted for a reason: printable ASCII, at most 24 bytes. */
static void quote_value(const uint8_t *p, size_t n, char *out, size_t outsz)
{
    size_t o = 0, max = n > 24 ? 24 : n;
    for (size_t i = 0; i < max && o + 2 < outsz; i++)
        out[o++] = (p[i] >= 0x20 && p[i] < 0x7f && p[i] != '"') ? (char)p[i] : '?';
    if (n > max && o + 4 < outsz) {
        memcpy(out + o, "...", 3);
        o += 3;
    }
    out[o] = 0;
}

/* A square root without libm (the tree does not link it): Newton's iteration
 * from an estimate made on the exponent; within one ulp of the true root. */
static double dsqrt(double x)
{
    if (!(x > 0) || !isfinite(x))
        return x > 0 ? x : 0;
    uint64_t b;
    memcpy(&b, &x, sizeof b);
    b = (b >> 1) + ((uint64_t)0x1ff << 52);
    double y;
    memcpy(&y, &b, sizeof y);
    y = 0.5 * (y + x / y); /* from here on y >= sqrt(x), up to rounding */
    for (int i = 0; i < 2100; i++) {
        double z = 0.5 * (y + x / y);
        if (!(z < y))
            break;
        y = z;
    }
    return y;
}

/* --- numbers and timestamps ---------------------------------------------- */

/* A finite decimal number: [+-] digits [. digits] [e [+-] digits], with at
 * least one digit before the exponent. */
static bool parse_number(const uint8_t *p, size_t n, double *out)
{
    if (n == 0 || n > 128)
        return false;
    size_t i = 0, digits = 0;
    if (p[i] == '+' || p[i] == '-')
        i++;
    while (i < n && p[i] >= '0' && p[i] <= '9') {
        i++;
        digits++;
    }
    if (i < n && p[i] == '.') {
        i++;
        while (i < n && p[i] >= '0' && p[i] <= '9') {
            i++;
            digits++;
        }
    }
    if (!digits)
        return false;
    if (i < n && (p[i] == 'e' || p[i] == 'E')) {
        i++;
        if (i < n && (p[i] == '+' || p[i] == '-'))
            i++;
        size_t e = i;
        while (i < n && p[i] >= '0' && p[i] <= '9')
            i++;
        if (i == e)
            return false;
    }
    if (i != n)
        return false;
    /* Fast path (Clinger): at most 15 digits and no exponent, so the digits
     * are an exact integer below 2^53 and the power of ten is exact: one
     * division rounds exactly as strtod would. */
    if (digits <= 15 && n <= 17) {
        static const double pow10[16] = {1e0, 1e1, 1e2,  1e3,  1e4,  1e5,  1e6,  1e7,
                                         1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15};
        uint64_t m = 0;
        int frac = -1;
        bool fast = true;
        for (size_t k = (p[0] == '+' || p[0] == '-'); k < n && fast; k++) {
            if (p[k] == '.')
                frac = 0;
            else if (p[k] >= '0' && p[k] <= '9') {
                m = m * 10 + (uint64_t)(p[k] - '0');
                frac += frac >= 0;
            } else {
                fast = false; /* an exponent */
            }
        }
        if (fast) {
            double v = (double)m / pow10[frac > 0 ? frac : 0];
            *out = (p[0] == '-' ? -v : v) + 0.0;
            return true;
        }
    }
    char tmp[130];
    memcpy(tmp, p, n);
    tmp[n] = 0;
    double v = strtod(tmp, NULL);
    if (!isfinite(v))
        return false;
    *out = v + 0.0; /* -0 is 0 */
    return true;
}

/* Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's algorithm). */
static int64_t days_from_civil(int64_t y, unsigned m, unsigned d)
{
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    unsigned yoe = (unsigned)(y - era * 400);
    unsigned doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
    unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + (int64_t)doe - 719468;
}

static void civil_from_days(int64_t z, int64_t *y, unsigned *m, unsigned *d)
{
    z += 719468;
    int64_t era = (z >= 0 ? z : z - 146096) / 146097;
    unsigned doe = (unsigned)(z - era * 146097);
    unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    unsigned mp = (5 * doy + 2) / 153;
    *d = doy - (153 * mp + 2) / 5 + 1;
    *m = mp < 10 ? mp + 3 : mp - 9;
    *y = (int64_t)yoe + era * 400 + (*m <= 2);
}

static bool leap(int64_t y)
{
    return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

static bool digits_at(const uint8_t *p, size_t n, size_t at, size_t count, unsigned *out)
{
    if (at + count > n)
        return false;
    unsigned v = 0;
    for (size_t i = at; i < at + count; i++) {
        if (p[i] < '0' || p[i] > '9')
            return false;
        v = v * 10 + (unsigned)(p[i] - '0');
    }
    *out = v;
    return true;
}

static int parse_iso(const uint8_t *p, size_t n, int64_t *us)
{
    unsigned y, mo, d, hh = 0, mi = 0, ss = 0;
    if (!digits_at(p, n, 0, 4, &y) || p[4] != '-' || !digits_at(p, n, 5, 2, &mo) || n < 8 || p[7] != '-' ||
        !digits_at(p, n, 8, 2, &d))
        return -1;
    static const unsigned dim[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    if (mo < 1 || mo > 12 || d < 1 || d > dim[mo - 1] + (mo == 2 && leap(y)))
        return -1;
    size_t i = 10;
    int64_t frac_us = 0, offset_s = 0;
    if (i < n) {
        if (p[i] != 'T' && p[i] != 't' && p[i] != ' ')
            return -1;
        i++;
        if (!digits_at(p, n, i, 2, &hh) || i + 2 >= n || p[i + 2] != ':' || !digits_at(p, n, i + 3, 2, &mi))
            return -1;
        i += 5;
        if (i < n && p[i] == ':') {
            if (!digits_at(p, n, i + 1, 2, &ss))
                return -1;
            i += 3;
            if (i < n && (p[i] == '.' || p[i] == ',')) {
                i++;
                size_t start = i;
                int64_t scale = 100000;
                while (i < n && p[i] >= '0' && p[i] <= '9') {
                    frac_us += (p[i] - '0') * scale;
                    scale /= 10;
                    i++;
                }
                if (i == start)
                    return -1;
            }
        }
        if (hh > 23 || mi > 59 || ss > 59)
            return -1;
        if (i < n && (p[i] == 'Z' || p[i] == 'z')) {
            i++;
        } else if (i < n && (p[i] == '+' || p[i] == '-')) {
            int sign = p[i] == '-' ? -1 : 1;
            unsigned oh, om = 0;
            if (!digits_at(p, n, i + 1, 2, &oh))
                return -1;
            i += 3;
            bool colon = i < n && p[i] == ':';
            if (colon)
                i++;
            if (i < n || colon) {
                if (!digits_at(p, n, i, 2, &om))
                    return -1;
                i += 2;
            }
            if (oh > 23 || om > 59)
                return -1;
            offset_s = sign * (int64_t)(oh * 3600 + om * 60);
        }
    }
    if (i != n)
        return -1;
    int64_t secs = days_from_civil(y, mo, d) * 86400 + hh * 3600 + mi * 60 + ss - offset_s;
    *us = secs * 1000000 + frac_us;
    return 0;
}

#define MAX_UNIX_MS INT64_C(253402300799999) /* 9999-12-31T23:59:59.999Z */

static int parse_unix(const uint8_t *p, size_t n, int64_t *us)
{
    size_t i = 0;
    int64_t ip = 0;
    while (i < n && p[i] >= '0' && p[i] <= '9') {
        if (i >= 15)
            return -1;
        ip = ip * 10 + (p[i] - '0');
        i++;
    }
    if (i == 0)
        return -1;
    bool ms = ip >= INT64_C(100000000000);
    int64_t frac = 0, scale = ms ? 100 : 100000;
    if (i < n && p[i] == '.') {
        i++;
        size_t start = i;
        while (i < n && p[i] >= '0' && p[i] <= '9') {
            frac += (p[i] - '0') * scale;
            scale /= 10;
            i++;
        }
        if (i == start)
            return -1;
    }
    if (i != n || (ms && ip > MAX_UNIX_MS))
        return -1;
    *us = ms ? ip * 1000 + frac : ip * 1000000 + frac;
    return 0;
}

int csvstats_parse_ts(const char *s, size_t n, int64_t *us)
{
    const uint8_t *p = (const uint8_t *)s;
    trim(&p, &n);
    if (n >= 10 && p[4] == '-')
        return parse_iso(p, n, us);
    return parse_unix(p, n, us);
}

void csvstats_format_ts(int64_t us, char out[32])
{
    int64_t secs = us / 1000000, sub = us % 1000000;
    if (sub < 0) {
        sub += 1000000;
        secs--;
    }
    int64_t days = secs / 86400, sod = secs % 86400;
    if (sod < 0) {
        sod += 86400;
        days--;
    }
    int64_t y;
    unsigned m, d;
    civil_from_days(days, &y, &m, &d);
    int k = snprintf(out, 32, "%04lld-%02u-%02uT%02u:%02u:%02u", (long long)y, m, d, (unsigned)(sod / 3600),
                     (unsigned)(sod / 60 % 60), (unsigned)(sod % 60));
    if (k < 0 || k >= 32)
        k = 0;
    if (sub % 1000 == 0 && sub)
        snprintf(out + k, 32 - (size_t)k, ".%03uZ", (unsigned)(sub / 1000));
    else if (sub)
        snprintf(out + k, 32 - (size_t)k, ".%06uZ", (unsigned)sub);
    else
        snprintf(out + k, 32 - (size_t)k, "Z");
}

/* --- ranges -------------------------------------------------------------- */

struct default_range {
    const char *keys;
    double min, max;
};

static const struct default_range default_ranges[] = {
    {" heart_rate heartrate hr pulse pulse_rate bpm ", 20, 250},
    {" systolic sys sbp systolic_bp bp_systolic systolic_pressure ", 50, 260},
    {" diastolic dia dbp diastolic_bp bp_diastolic diastolic_pressure ", 20, 160},
    {" breath_rate breathing_rate breaths_per_min resp_rate resp respiration_rate respiratory_rate ", 4, 60},
    {" spo2 sp_o2 sao2 o2_sat o2_saturation oxygen_saturation ", 50, 100},
    {" temperature temp body_temp body_temperature ", 30, 45},
};

static const char *const unit_suffixes[] = {"_bpm", "_mmhg", "_c", "_degc", "_celsius", "_pct", "_percent",
                                            "_brpm", "_per_min"};

static bool in_word_list(const char *list, const char *key)
{
    size_t n = strlen(key);
    if (!n)
        return false;
    for (const char *p = strstr(list, key); p; p = strstr(p + 1, key))
        if (p[-1] == ' ' && p[n] == ' ')
            return true;
    return false;
}

static bool lookup_default(const char *key, double *min, double *max)
{
    size_t n = strlen(key);
    char base[64];
    if (n >= sizeof base)
        return false; /* no known name is that long */
    memcpy(base, key, n + 1);
    for (int pass = 0; pass < 2; pass++) {
        for (size_t i = 0; i < sizeof default_ranges / sizeof default_ranges[0]; i++)
            if (in_word_list(default_ranges[i].keys, base)) {
                *min = default_ranges[i].min;
                *max = default_ranges[i].max;
                return true;
            }
        bool stripped = false;
        for (size_t i = 0; i < sizeof unit_suffixes / sizeof unit_suffixes[0] && !stripped; i++) {
            size_t sl = strlen(unit_suffixes[i]);
            if (n > sl && strcmp(base + n - sl, unit_suffixes[i]) == 0) {
                base[n - sl] = 0;
                stripped = true;
            }
        }
        if (!stripped)
            return false;
    }
    return false;
}

static const char ts_names[] = " timestamp time ts datetime date_time date time_stamp time_utc timestamp_utc "
                               "recorded_at measured_at unix_time epoch ";

/* --- life cycle ---------------------------------------------------------- */

struct csvstats *csvstats_new(const struct csvstats_opts *o)
{
    static const struct csvstats_opts defaults;
    if (!o)
        o = &defaults;
    for (size_t i = 0; i < o->nranges; i++)
        if (!o->ranges || !o->ranges[i].column || !(o->ranges[i].min <= o->ranges[i].max))
            return NULL;
    if (o->nskip_columns && !o->skip_columns)
        return NULL;
    struct csvstats *s = calloc(1, sizeof *s);
    if (!s)
        return NULL;
    s->mem = s->mem_peak = sizeof *s;
    s->max_values = o->max_values ? o->max_values : CSVSTATS_DEFAULT_MAX_VALUES;
    s->max_rows = o->max_rows ? o->max_rows : CSVSTATS_DEFAULT_MAX_ROWS;
    s->max_line = o->max_line ? o->max_line : CSVSTATS_DEFAULT_MAX_LINE;
    if (s->max_line < 8)
        s->max_line = 8;
    s->max_columns = o->max_columns ? o->max_columns : CSVSTATS_DEFAULT_MAX_COLUMNS;
    s->default_ranges = !o->no_default_ranges;
    s->on_row = o->on_row;
    s->row_ctx = o->row_ctx;
    s->rec_line = 1;
    s->st = ST_START;
    s->r.error_msg = s->errmsg;
    if (o->timestamp_column && !(s->ts_key = mem_normalise(s, o->timestamp_column)))
        goto fail;
    if (o->nskip_columns) {
        if (!(s->skip_keys = mem_calloc(s, o->nskip_columns, sizeof *s->skip_keys)))
            goto fail;
        s->nskip = o->nskip_columns;
        for (size_t i = 0; i < s->nskip; i++)
            if (!o->skip_columns[i] || !(s->skip_keys[i] = mem_normalise(s, o->skip_columns[i])))
                goto fail;
    }
    if (o->nranges) {
        if (!(s->ranges = mem_calloc(s, o->nranges, sizeof *s->ranges)))
            goto fail;
        s->nranges = o->nranges;
        for (size_t i = 0; i < s->nranges; i++) {
            s->ranges[i].min = o->ranges[i].min;
            s->ranges[i].max = o->ranges[i].max;
            if (!(s->ranges[i].key = mem_normalise(s, o->ranges[i].column)))
                goto fail;
        }
    }
    return s;
fail:
    csvstats_free(s);
    return NULL;
}

static void free_values(struct csvstats *s)
{
    for (size_t i = 0; i < s->ncols; i++) {
        mem_free(s, s->nc[i].vals, s->nc[i].cap * sizeof(double));
        s->nc[i].vals = NULL;
        s->nc[i].cap = 0;
    }
    s->values_kept = 0;
}

void csvstats_free(struct csvstats *s)
{
    if (!s)
        return;
    mem_strfree(s, s->ts_key);
    for (size_t i = 0; i < s->nskip && s->skip_keys; i++)
        mem_strfree(s, s->skip_keys[i]);
    mem_free(s, s->skip_keys, s->nskip * sizeof *s->skip_keys);
    for (size_t i = 0; i < s->nranges && s->ranges; i++)
        mem_strfree(s, s->ranges[i].key);
    mem_free(s, s->ranges, s->nranges * sizeof *s->ranges);
    mem_free(s, s->rec, s->rec_cap);
    if (s->nc)
        free_values(s);
    for (size_t i = 0; i < s->ncols && s->cols; i++) {
        mem_strfree(s, (char *)s->cols[i].name);
        mem_strfree(s, (char *)s->cols[i].key);
    }
    /* Sized for every field; the first ncols are used. */
    mem_free(s, s->cols, s->nfields * sizeof *s->cols);
    mem_free(s, s->nc, s->nfields * sizeof *s->nc);
    mem_free(s, s->rowv, s->nfields * sizeof *s->rowv);
    mem_free(s, s->rowmiss, s->nfields);
    mem_free(s, s->colkind, s->nfields * sizeof *s->colkind);
    mem_free(s, s->fields, s->nfields * sizeof *s->fields);
    mem_strfree(s, s->ts_name);
    mem_free(s, s->tsmap, s->tscap * sizeof *s->tsmap);
    mem_free(s, s->hset, s->hcap * sizeof *s->hset);
    free(s);
}

const struct csvstats_result *csvstats_result(const struct csvstats *s)
{
    return &s->r;
}

size_t csvstats_memory(const struct csvstats *s)
{
    return s->mem;
}

size_t csvstats_memory_peak(const struct csvstats *s)
{
    return s->mem_peak;
}

/* --- records ------------------------------------------------------------- */

/* Splits a record into fields, unquoting quoted ones in place. Stores at most
 * maxf and returns how many there are, or -1 with *why on a quote error. */
static long split(uint8_t *p, size_t n, struct field *f, size_t maxf, const char **why)
{
    size_t i = 0;
    long nf = 0;
    for (;;) {
        size_t a = i;
        while (a < n && is_space(p[a]))
            a++;
        struct field cur;
        if (a < n && p[a] == '"') {
            size_t r = a + 1, w = a + 1;
            for (;;) {
                if (r >= n) {
                    *why = "unterminated quoted field";
                    return -1;
                }
                if (p[r] == '"') {
                    if (r + 1 < n && p[r + 1] == '"') {
                        p[w++] = '"';
                        r += 2;
                        continue;
                    }
                    r++;
                    break;
                }
                p[w++] = p[r++];
            }
            cur.p = p + a + 1;
            cur.n = w - (a + 1);
            while (r < n && is_space(p[r]))
                r++;
            if (r < n && p[r] != ',') {
                *why = "text after a closing quote";
                return -1;
            }
            i = r;
            const uint8_t *tp = cur.p;
            trim(&tp, &cur.n);
            cur.p = (uint8_t *)tp;
        } else {
            size_t e = a;
            while (e < n && p[e] != ',')
                e++;
            size_t t = e;
            while (t > a && is_space(p[t - 1]))
                t--;
            cur.p = p + a;
            cur.n = t - a;
            i = e;
        }
        if ((size_t)nf < maxf)
            f[nf] = cur;
        nf++;
        if (i >= n)
            return nf;
        i++; /* the comma */
    }
}

static const char *const bad_names[CSVSTATS_BAD__COUNT] = {
    [CSVSTATS_BAD_FIELD_COUNT] = "wrong_field_count", [CSVSTATS_BAD_NUMBER] = "not_a_number",
    [CSVSTATS_BAD_TIMESTAMP] = "bad_timestamp",       [CSVSTATS_BAD_QUOTES] = "bad_quotes",
    [CSVSTATS_BAD_TOO_LONG] = "line_too_long",
};

static void bad_row(struct csvstats *s, enum csvstats_bad kind, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void bad_row(struct csvstats *s, enum csvstats_bad kind, const char *fmt, ...)
{
    s->r.rows_total++;
    s->r.malformed++;
    s->r.malformed_by_kind[kind]++;
    if (s->r.nsamples < CSVSTATS_SAMPLES) {
        struct csvstats_sample *x = &s->r.samples[s->r.nsamples++];
        x->line = s->rec_line;
        x->kind = kind;
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(x->reason, sizeof x->reason, fmt, ap);
        va_end(ap);
        /* Printable ASCII: a column name cut short may end inside a UTF-8 sequence. */
        for (char *c = x->reason; *c; c++)
            if ((unsigned char)*c < 0x20 || (unsigned char)*c >= 0x7f)
                *c = '?';
    }
}

static char *display_name(struct csvstats *s, const uint8_t *p, size_t n, size_t idx)
{
    if (n == 0) {
        char tmp[32];
        snprintf(tmp, sizeof tmp, "column_%zu", idx + 1);
        return mem_strndup(s, tmp, strlen(tmp));
    }
    char *d = mem_strndup(s, (const char *)p, n);
    if (d && !utf8_valid(d, n))
        for (size_t i = 0; i < n; i++)
            if ((uint8_t)d[i] < 0x20 || (uint8_t)d[i] >= 0x80)
                d[i] = '?';
    return d;
}

static int parse_header(struct csvstats *s, uint8_t *p, size_t n)
{
    const char *why = NULL;
    struct field *f = mem_calloc(s, s->max_columns, sizeof *f);
    if (!f)
        return nomem(s);
    long nf = split(p, n, f, s->max_columns, &why);
    size_t cap = s->max_columns;
    if (nf < 0 || (size_t)nf > s->max_columns) {
        mem_free(s, f, cap * sizeof *f);
        if (nf < 0)
            return fatal(s, ERR_BAD_INPUT, "header: %s", why);
        char lim[32];
        snprintf(lim, sizeof lim, "%zu", s->max_columns);
        return fatal(s, ERR_TOO_LARGE, "header: more than %s columns", lim);
    }
    /* A first line of numbers is data: the file has no header. */
    bool all_numbers = true;
    for (long i = 0; i < nf && all_numbers; i++) {
        double v;
        int64_t t;
        all_numbers = parse_number(f[i].p, f[i].n, &v) || csvstats_parse_ts((const char *)f[i].p, f[i].n, &t) == 0;
    }
    if (all_numbers) {
        mem_free(s, f, cap * sizeof *f);
        return fatal(s, ERR_BAD_INPUT, "%s", "no header row: the first line holds only numbers");
    }
    /* Shrink the field array to the header's width. */
    struct field *g = mem_calloc(s, (size_t)nf, sizeof *g);
    if (!g) {
        mem_free(s, f, cap * sizeof *f);
        return nomem(s);
    }
    s->fields = g;
    s->nfields = (size_t)nf;
    s->colkind = mem_calloc(s, s->nfields, sizeof *s->colkind);
    s->cols = mem_calloc(s, s->nfields, sizeof *s->cols);
    s->nc = mem_calloc(s, s->nfields, sizeof *s->nc);
    char **keys = mem_calloc(s, s->nfields, sizeof *keys);
    char **names = mem_calloc(s, s->nfields, sizeof *names);
    int rc = 0;
    if (!s->colkind || !s->cols || !s->nc || !keys || !names) {
        rc = nomem(s);
        goto out;
    }
    for (size_t i = 0; i < s->nfields; i++) {
        names[i] = display_name(s, f[i].p, f[i].n, i);
        keys[i] = names[i] ? mem_calloc(s, strlen(names[i]) + 1, 1) : NULL;
        if (!keys[i]) {
            rc = nomem(s);
            goto out;
        }
        normalise(names[i], strlen(names[i]), keys[i]);
    }
    /* The timestamp column. */
    long ts = -1;
    for (size_t i = 0; i < s->nfields && ts < 0; i++)
        if (s->ts_key ? strcmp(keys[i], s->ts_key) == 0 : in_word_list(ts_names, keys[i]))
            ts = (long)i;
    if (s->ts_key && ts < 0) {
        rc = fatal(s, ERR_BAD_INPUT, "timestamp column \"%s\" is not in the header", s->ts_key);
        goto out;
    }
    for (size_t i = 0; i < s->nfields; i++) {
        bool skip = false;
        for (size_t k = 0; k < s->nskip; k++)
            skip |= strcmp(keys[i], s->skip_keys[k]) == 0;
        if ((long)i == ts) {
            s->colkind[i] = KIND_TS;
            s->ts_name = names[i];
            names[i] = NULL;
            s->r.timestamp_column = s->ts_name;
        } else if (skip) {
            s->colkind[i] = KIND_SKIP;
        } else {
            struct csvstats_column *c = &s->cols[s->ncols];
            s->colkind[i] = (int)s->ncols++;
            c->name = names[i];
            c->key = keys[i];
            names[i] = keys[i] = NULL;
            for (size_t k = 0; k < s->nranges; k++)
                if (strcmp(c->key, s->ranges[k].key) == 0) {
                    c->has_range = true;
                    c->range_min = s->ranges[k].min;
                    c->range_max = s->ranges[k].max;
                }
            if (!c->has_range && s->default_ranges)
                c->has_range = lookup_default(c->key, &c->range_min, &c->range_max);
        }
    }
    s->rowv = mem_calloc(s, s->nfields, sizeof *s->rowv);
    s->rowmiss = mem_calloc(s, s->nfields, 1);
    if (!s->rowv || !s->rowmiss) {
        rc = nomem(s);
        goto out;
    }
    s->r.columns = s->cols;
    s->r.ncolumns = s->ncols;
    s->header_done = true;
out:
    for (size_t i = 0; i < s->nfields && names && keys; i++) {
        mem_strfree(s, names[i]);
        mem_strfree(s, keys[i]);
    }
    mem_free(s, names, s->nfields * sizeof *names);
    mem_free(s, keys, s->nfields * sizeof *keys);
    mem_free(s, f, cap * sizeof *f);
    return rc;
}

/* --- duplicates ---------------------------------------------------------- */

static uint64_t mix64(uint64_t x)
{
    x ^= x >> 30;
    x *= UINT64_C(0xbf58476d1ce4e5b9);
    x ^= x >> 27;
    x *= UINT64_C(0x94d049bb133111eb);
    x ^= x >> 31;
    return x;
}

static uint64_t row_hash(const struct csvstats *s, bool has_ts, int64_t ts)
{
    uint64_t h = mix64(UINT64_C(0x9e3779b97f4a7c15) + (has_ts ? 1 : 2));
    if (has_ts)
        h = mix64(h ^ (uint64_t)ts);
    for (size_t i = 0; i < s->ncols; i++) {
        uint64_t w = UINT64_C(0x7ff4000000000001); /* a NaN: never a parsed value */
        if (!s->rowmiss[i])
            memcpy(&w, &s->rowv[i], sizeof w);
        h = mix64(h ^ w) + i;
    }
    return h ? h : 1;
}

static int grow_tables(struct csvstats *s, bool tsmap)
{
    if (tsmap) {
        size_t cap = s->tscap ? s->tscap * 2 : 1024;
        struct tsent *t = mem_calloc(s, cap, sizeof *t);
        if (!t)
            return nomem(s);
        for (size_t i = 0; i < s->tscap; i++) {
            if (!s->tsmap[i].h)
                continue;
            size_t j = mix64((uint64_t)s->tsmap[i].ts) & (cap - 1);
            while (t[j].h)
                j = (j + 1) & (cap - 1);
            t[j] = s->tsmap[i];
        }
        mem_free(s, s->tsmap, s->tscap * sizeof *s->tsmap);
        s->tsmap = t;
        s->tscap = cap;
    } else {
        size_t cap = s->hcap ? s->hcap * 2 : 1024;
        uint64_t *t = mem_calloc(s, cap, sizeof *t);
        if (!t)
            return nomem(s);
        for (size_t i = 0; i < s->hcap; i++) {
            if (!s->hset[i])
                continue;
            size_t j = s->hset[i] & (cap - 1);
            while (t[j])
                j = (j + 1) & (cap - 1);
            t[j] = s->hset[i];
        }
        mem_free(s, s->hset, s->hcap * sizeof *s->hset);
        s->hset = t;
        s->hcap = cap;
    }
    return 0;
}

/* Adds h to the set of row hashes; *seen if it was there. */
static int hset_add(struct csvstats *s, uint64_t h, bool *seen)
{
    if ((s->hn + 1) * 4 > s->hcap * 3) {
        int rc = grow_tables(s, false);
        if (rc)
            return rc;
    }
    size_t j = h & (s->hcap - 1);
    while (s->hset[j]) {
        if (s->hset[j] == h) {
            *seen = true;
            return 0;
        }
        j = (j + 1) & (s->hcap - 1);
    }
    s->hset[j] = h;
    s->hn++;
    *seen = false;
    return 0;
}

/* Decides whether the row in rowv/rowmiss is a duplicate; counts conflicts. */
static int dedupe(struct csvstats *s, bool has_ts, int64_t ts, bool *dup)
{
    *dup = false;
    if (s->r.dedupe_limit_hit)
        return 0;
    if (s->tsn + s->hn >= s->max_rows) {
        s->r.dedupe_limit_hit = true;
        return 0;
    }
    uint64_t h = row_hash(s, has_ts, ts);
    if (!has_ts)
        return hset_add(s, h, dup);
    if ((s->tsn + 1) * 4 > s->tscap * 3) {
        int rc = grow_tables(s, true);
        if (rc)
            return rc;
    }
    size_t j = mix64((uint64_t)ts) & (s->tscap - 1);
    while (s->tsmap[j].h) {
        if (s->tsmap[j].ts == ts) {
            if (s->tsmap[j].h == h) {
                *dup = true;
                return 0;
            }
            /* Same time, other values: a duplicate of a later row at that time, or a conflict. */
            int rc = hset_add(s, h, dup);
            if (!rc && !*dup)
                s->r.conflicting_timestamps++;
            return rc;
        }
        j = (j + 1) & (s->tscap - 1);
    }
    s->tsmap[j].ts = ts;
    s->tsmap[j].h = h;
    s->tsn++;
    return 0;
}

/* --- figures ------------------------------------------------------------- */

static int keep_value(struct csvstats *s, struct numcol *nc, size_t count_before, double v)
{
    if (s->r.values_limit_hit)
        return 0;
    if (s->values_kept >= s->max_values) {
        s->r.values_limit_hit = true;
        free_values(s);
        return 0;
    }
    if (count_before == nc->cap) {
        size_t cap = nc->cap ? nc->cap * 2 : 256;
        if (cap > s->max_values)
            cap = s->max_values;
        if (cap > SIZE_MAX / sizeof(double))
            return nomem(s);
        double *p = mem_realloc(s, nc->vals, nc->cap * sizeof(double), cap * sizeof(double));
        if (!p)
            return nomem(s);
        nc->vals = p;
        nc->cap = cap;
    }
    nc->vals[count_before] = v;
    s->values_kept++;
    return 0;
}

static int data_row(struct csvstats *s, uint8_t *p, size_t n)
{
    const char *why = NULL;
    long nf = split(p, n, s->fields, s->nfields, &why);
    if (nf < 0) {
        bad_row(s, CSVSTATS_BAD_QUOTES, "%s", why);
        return 0;
    }
    if ((size_t)nf != s->nfields) {
        bad_row(s, CSVSTATS_BAD_FIELD_COUNT, "expected %zu fields, found %ld", s->nfields, nf);
        return 0;
    }
    bool has_ts = false;
    int64_t ts = 0;
    for (size_t i = 0; i < s->nfields; i++) {
        struct field *f = &s->fields[i];
        int kind = s->colkind[i];
        char q[32];
        if (kind == KIND_SKIP)
            continue;
        if (kind == KIND_TS) {
            if (f->n == 0)
                continue;
            if (csvstats_parse_ts((const char *)f->p, f->n, &ts) != 0) {
                quote_value(f->p, f->n, q, sizeof q);
                bad_row(s, CSVSTATS_BAD_TIMESTAMP, "timestamp \"%s\" is neither ISO-8601 nor Unix time", q);
                return 0;
            }
            has_ts = true;
            continue;
        }
        s->rowmiss[kind] = f->n == 0;
        if (f->n && !parse_number(f->p, f->n, &s->rowv[kind])) {
            quote_value(f->p, f->n, q, sizeof q);
            bad_row(s, CSVSTATS_BAD_NUMBER, "column \"%.40s\": \"%s\" is not a number", s->cols[kind].name, q);
            return 0;
        }
    }
    s->r.rows_total++;
    bool dup;
    int rc = dedupe(s, has_ts, ts, &dup);
    if (rc)
        return rc;
    if (dup) {
        s->r.duplicates++;
        return 0;
    }
    s->r.rows_used++;
    if (s->r.timestamp_column) {
        if (!has_ts) {
            s->r.ts_missing++;
        } else {
            if (!s->r.have_timestamps) {
                s->r.ts_first_us = s->r.ts_last_us = ts;
                s->r.have_timestamps = true;
            }
            if (ts < s->r.ts_first_us)
                s->r.ts_first_us = ts;
            if (ts > s->r.ts_last_us)
                s->r.ts_last_us = ts;
            if (s->have_prev_ts && ts < s->prev_ts)
                s->r.ts_out_of_order++;
            s->have_prev_ts = true;
            s->prev_ts = ts;
        }
    }
    for (size_t k = 0; k < s->ncols; k++) {
        struct csvstats_column *c = &s->cols[k];
        if (s->rowmiss[k]) {
            c->missing++;
            continue;
        }
        double v = s->rowv[k];
        uint64_t before = c->count++;
        if (!before)
            c->min = c->max = v;
        if (v < c->min)
            c->min = v;
        if (v > c->max)
            c->max = v;
        struct numcol *nc = &s->nc[k];
        double d = v - nc->wmean;
        nc->wmean += d / (double)c->count;
        nc->wm2 += d * (v - nc->wmean);
        if (c->has_range) {
            c->below += v < c->range_min;
            c->above += v > c->range_max;
        }
        if ((rc = keep_value(s, nc, (size_t)before, v)) != 0)
            return rc;
    }
    if (s->on_row)
        s->on_row(s->row_ctx, has_ts, ts, s->rowv, s->rowmiss, s->ncols);
    return 0;
}

static int end_record(struct csvstats *s)
{
    uint8_t *p = s->rec;
    size_t n = s->rec_len;
    if (n && p[n - 1] == '\r')
        n--;
    size_t i = 0;
    while (i < n && is_space(p[i]))
        i++;
    if (i == n) {
        s->r.blank_lines++;
        return 0;
    }
    return s->header_done ? data_row(s, p, n) : parse_header(s, p, n);
}

static int append(struct csvstats *s, const uint8_t *p, size_t n)
{
    if (!n)
        return 0;
    size_t need = s->rec_len + n; /* <= max_line, checked by the caller */
    if (need > s->rec_cap) {
        size_t cap = s->rec_cap ? s->rec_cap : 256;
        while (cap < need)
            cap *= 2;
        if (cap > s->max_line)
            cap = s->max_line;
        uint8_t *q = mem_realloc(s, s->rec, s->rec_cap, cap);
        if (!q)
            return nomem(s);
        s->rec = q;
        s->rec_cap = cap;
    }
    memcpy(s->rec + s->rec_len, p, n);
    s->rec_len = need;
    return 0;
}

static int overlong(struct csvstats *s)
{
    char lim[32];
    snprintf(lim, sizeof lim, "%zu", s->max_line);
    if (!s->header_done)
        return fatal(s, ERR_TOO_LARGE, "header: longer than %s bytes", lim);
    bad_row(s, CSVSTATS_BAD_TOO_LONG, "line longer than %s bytes", lim);
    s->rec_len = 0;
    s->skipping = true;
    return 0;
}

int csvstats_feed(struct csvstats *s, const void *data, size_t n)
{
    ASSERT(!s->finished);
    const uint8_t *b = data;
    size_t i = 0;
    if (s->r.error)
        return s->r.error;
    if (n)
        s->partial_line = b[n - 1] != '\n';
    /* A byte order mark is dropped before the scanner sees it. */
    static const uint8_t bom[3] = {0xef, 0xbb, 0xbf};
    while (!s->bom_done && i < n) {
        if (b[i] == bom[s->bom_seen]) {
            i++;
            s->bom_done = ++s->bom_seen == 3;
            continue;
        }
        s->bom_done = true;
        if (s->bom_seen) { /* they were data after all */
            int rc = append(s, bom, s->bom_seen);
            if (rc)
                return rc;
            s->st = ST_UNQUOTED;
        }
    }
    while (i < n) {
        if (s->skipping) {
            const uint8_t *nl = memchr(b + i, '\n', n - i);
            if (!nl)
                return 0;
            i = (size_t)(nl - b) + 1;
            s->line++;
            s->skipping = false;
            s->st = ST_START;
            s->rec_line = s->line + 1;
            continue;
        }
        size_t start = i, room = s->max_line - s->rec_len;
        int st = s->st;
        bool ended = false, over = false;
        for (; i < n; i++) {
            uint8_t c = b[i];
            if (c == '\n' && st != ST_QUOTED) {
                ended = true;
                break;
            }
            if (i - start >= room) {
                over = true;
                break;
            }
            switch (st) {
            case ST_START:
                if (c == '"')
                    st = ST_QUOTED;
                else if (c != ',' && !is_space(c))
                    st = ST_UNQUOTED;
                break;
            case ST_UNQUOTED:
                if (c == ',')
                    st = ST_START;
                break;
            case ST_QUOTED:
                if (c == '"')
                    st = ST_QUOTE_SEEN;
                else if (c == '\n')
                    s->line++;
                break;
            default: /* ST_QUOTE_SEEN */
                st = c == '"' ? ST_QUOTED : c == ',' ? ST_START : ST_UNQUOTED;
                break;
            }
        }
        s->st = st;
        if (over) {
            int rc = overlong(s);
            if (rc)
                return rc;
            continue;
        }
        int rc = append(s, b + start, i - start);
        if (rc)
            return rc;
        if (ended) {
            i++;
            s->line++;
            rc = end_record(s);
            s->rec_len = 0;
            s->st = ST_START;
            s->rec_line = s->line + 1;
            if (rc)
                return rc;
        }
    }
    return 0;
}

/* Places the value of rank k (0-based) at a[k], with nothing greater before it
 * and nothing smaller after, searching only a[lo..hi) (which must hold it).
 * Random pivots and a three-way partition (readings repeat a lot) make it
 * linear on average; a heap sort after too many rounds bounds the worst case. */
static void sift(double *a, size_t n, size_t i)
{
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= n)
            return;
        if (c + 1 < n && a[c + 1] > a[c])
            c++;
        if (!(a[c] > a[i]))
            return;
        double t = a[i];
        a[i] = a[c];
        a[c] = t;
        i = c;
    }
}

static void heap_sort(double *a, size_t n)
{
    for (size_t i = n / 2; i-- > 0;)
        sift(a, n, i);
    for (size_t e = n; e-- > 1;) {
        double t = a[0];
        a[0] = a[e];
        a[e] = t;
        sift(a, e, 0);
    }
}

static void select_rank(double *a, size_t lo, size_t hi, size_t k, uint64_t *rng)
{
    unsigned rounds = 0;
    while (hi - lo > 16) {
        if (++rounds > 128) {
            heap_sort(a + lo, hi - lo);
            return;
        }
        *rng = mix64(*rng + UINT64_C(0x9e3779b97f4a7c15));
        double piv = a[lo + *rng % (hi - lo)];
        size_t lt = lo, i = lo, gt = hi;
        while (i < gt) {
            double v = a[i];
            if (v < piv) {
                a[i++] = a[lt];
                a[lt++] = v;
            } else if (v > piv) {
                a[i] = a[--gt];
                a[gt] = v;
            } else {
                i++;
            }
        }
        if (k < lt)
            hi = lt;
        else if (k >= gt)
            lo = gt;
        else
            return;
    }
    for (size_t i = lo + 1; i < hi; i++) {
        double v = a[i];
        size_t j = i;
        while (j > lo && a[j - 1] > v) {
            a[j] = a[j - 1];
            j--;
        }
        a[j] = v;
    }
}

static void column_figures(struct csvstats_column *c, struct numcol *nc, bool kept)
{
    size_t n = (size_t)c->count;
    if (n == 0)
        return;
    if (!kept) {
        c->mean = nc->wmean;
        c->sd = n > 1 ? dsqrt(nc->wm2 / (double)(n - 1)) : 0;
        return;
    }
    double *a = nc->vals, sum = 0, ss = 0;
    for (size_t i = 0; i < n; i++)
        sum += a[i];
    c->mean = sum / (double)n;
    for (size_t i = 0; i < n; i++)
        ss += (a[i] - c->mean) * (a[i] - c->mean);
    c->sd = n > 1 ? dsqrt(ss / (double)(n - 1)) : 0;
    uint64_t rng = n;
    size_t from = 0;
    for (int q = 0; q < CSVSTATS_NPCT; q++) {
        uint64_t h = (uint64_t)(n - 1) * csvstats_pcts[q];
        size_t lo = (size_t)(h / 100);
        unsigned rem = (unsigned)(h % 100);
        select_rank(a, from, n, lo, &rng);
        double x0 = a[lo];
        c->pct[q] = x0;
        if (rem) {
            select_rank(a, lo + 1, n, lo + 1, &rng);
            c->pct[q] = x0 + (a[lo + 1] - x0) * ((double)rem / 100.0);
        }
        from = lo;
    }
    c->have_percentiles = true;
}

int csvstats_finish(struct csvstats *s)
{
    ASSERT(!s->finished);
    s->finished = true;
    if (!s->bom_done && s->bom_seen && !s->r.error) {
        int rc = append(s, (const uint8_t *)"\xef\xbb", s->bom_seen);
        if (rc)
            return rc;
    }
    if (!s->r.error && !s->skipping && s->rec_len) {
        int rc = end_record(s);
        s->rec_len = 0;
        if (rc)
            return rc;
    }
    s->r.lines = s->line + (s->partial_line ? 1 : 0);
    if (s->r.error)
        return s->r.error;
    if (!s->header_done)
        return fatal(s, ERR_BAD_INPUT, "%s", "no header row: the file is empty");
    for (size_t i = 0; i < s->ncols; i++)
        column_figures(&s->cols[i], &s->nc[i], !s->r.values_limit_hit);
    free_values(s);
    mem_free(s, s->tsmap, s->tscap * sizeof *s->tsmap);
    mem_free(s, s->hset, s->hcap * sizeof *s->hset);
    s->tsmap = NULL;
    s->hset = NULL;
    s->tscap = s->hcap = 0;
    return 0;
}

/* --- JSON ---------------------------------------------------------------- */

static void put(json_t *o, const char *k, json_t *v, bool *ok)
{
    if (json_object_set_new(o, k, v) != 0)
        *ok = false;
}

static json_t *jreal(double v)
{
    return isfinite(v) ? json_real(v) : json_null();
}

static json_t *jcount(uint64_t v)
{
    return json_integer((json_int_t)v);
}

static json_t *column_json(const struct csvstats_column *c, bool *ok)
{
    json_t *o = json_object();
    if (!o) {
        *ok = false;
        return NULL;
    }
    put(o, "name", json_string(c->name), ok);
    put(o, "key", json_string(c->key), ok);
    put(o, "count", jcount(c->count), ok);
    put(o, "missing", jcount(c->missing), ok);
    put(o, "min", c->count ? jreal(c->min) : json_null(), ok);
    put(o, "max", c->count ? jreal(c->max) : json_null(), ok);
    put(o, "mean", c->count ? jreal(c->mean) : json_null(), ok);
    put(o, "sd", c->count > 1 ? jreal(c->sd) : json_null(), ok);
    json_t *p = json_null();
    if (c->have_percentiles) {
        p = json_object();
        for (int q = 0; q < CSVSTATS_NPCT && p; q++) {
            char k[8];
            snprintf(k, sizeof k, "p%u", csvstats_pcts[q]);
            put(p, k, jreal(c->pct[q]), ok);
        }
    }
    put(o, "percentiles", p, ok);
    json_t *r = json_null(), *oor = json_null();
    if (c->has_range) {
        r = json_object();
        put(r, "min", jreal(c->range_min), ok);
        put(r, "max", jreal(c->range_max), ok);
        oor = json_object();
        put(oor, "below", jcount(c->below), ok);
        put(oor, "above", jcount(c->above), ok);
    }
    put(o, "range", r, ok);
    put(o, "out_of_range", oor, ok);
    return o;
}

int csvstats_to_json(const struct csvstats *s, json_t **out)
{
    const struct csvstats_result *r = &s->r;
    bool ok = true;
    json_t *doc = json_object();
    if (!doc)
        return ERR_NOMEM;
    put(doc, "timestamp_column", r->timestamp_column ? json_string(r->timestamp_column) : json_null(), &ok);

    json_t *rows = json_object();
    if (rows) {
        put(rows, "lines", jcount(r->lines), &ok);
        put(rows, "blank_lines", jcount(r->blank_lines), &ok);
        put(rows, "total", jcount(r->rows_total), &ok);
        put(rows, "used", jcount(r->rows_used), &ok);
        put(rows, "duplicates", jcount(r->duplicates), &ok);
        put(rows, "conflicting_timestamps", jcount(r->conflicting_timestamps), &ok);
        json_t *m = json_object();
        if (m) {
            put(m, "count", jcount(r->malformed), &ok);
            for (int k = 0; k < CSVSTATS_BAD__COUNT; k++)
                put(m, bad_names[k], jcount(r->malformed_by_kind[k]), &ok);
            json_t *arr = json_array();
            for (size_t i = 0; i < r->nsamples && arr; i++) {
                json_t *x = json_object();
                if (x) {
                    put(x, "line", jcount(r->samples[i].line), &ok);
                    put(x, "kind", json_string(bad_names[r->samples[i].kind]), &ok);
                    put(x, "reason", json_string(r->samples[i].reason), &ok);
                }
                if (json_array_append_new(arr, x) != 0)
                    ok = false;
            }
            put(m, "samples", arr, &ok);
        }
        put(rows, "malformed", m, &ok);
    }
    put(doc, "rows", rows, &ok);

    json_t *t = json_null();
    if (r->timestamp_column) {
        t = json_object();
        if (t) {
            char a[32], b[32];
            csvstats_format_ts(r->ts_first_us, a);
            csvstats_format_ts(r->ts_last_us, b);
            bool have = r->have_timestamps;
            put(t, "first", have ? json_string(a) : json_null(), &ok);
            put(t, "last", have ? json_string(b) : json_null(), &ok);
            put(t, "first_unix_ms", have ? json_integer(r->ts_first_us / 1000) : json_null(), &ok);
            put(t, "last_unix_ms", have ? json_integer(r->ts_last_us / 1000) : json_null(), &ok);
            put(t, "span_s", have ? json_real((double)(r->ts_last_us - r->ts_first_us) / 1e6) : json_null(), &ok);
            put(t, "missing", jcount(r->ts_missing), &ok);
            put(t, "out_of_order", jcount(r->ts_out_of_order), &ok);
        }
    }
    put(doc, "timestamps", t, &ok);

    json_t *cols = json_array();
    for (size_t i = 0; i < r->ncolumns && cols; i++)
        if (json_array_append_new(cols, column_json(&r->columns[i], &ok)) != 0)
            ok = false;
    put(doc, "columns", cols, &ok);

    json_t *lim = json_object();
    if (lim) {
        put(lim, "max_values", jcount(s->max_values), &ok);
        put(lim, "values_limit_reached", json_boolean(r->values_limit_hit), &ok);
        put(lim, "max_rows", jcount(s->max_rows), &ok);
        put(lim, "duplicate_check_limit_reached", json_boolean(r->dedupe_limit_hit), &ok);
    }
    put(doc, "limits", lim, &ok);

    json_t *defs = json_object();
    if (defs) {
        put(defs, "sd", json_string("sample standard deviation: sqrt(sum((x - mean)^2) / (n - 1))"), &ok);
        put(defs, "percentiles",
            json_string("linear interpolation between closest ranks (numpy's default, R type 7): "
                        "h = (n - 1) * p / 100, x[floor h] + (h - floor h) * (x[floor h + 1] - x[floor h])"),
            &ok);
        put(defs, "duplicates",
            json_string("a row whose timestamp and every numeric value equal an earlier row's is dropped; "
                        "rows sharing a timestamp with different values are kept and counted as "
                        "conflicting_timestamps"),
            &ok);
        put(defs, "out_of_range", json_string("counted, still included in every figure"), &ok);
    }
    put(doc, "definitions", defs, &ok);
    put(doc, "error", r->error ? json_string(r->error_msg) : json_null(), &ok);
    if (!ok) {
        json_decref(doc);
        return ERR_NOMEM;
    }
    *out = doc;
    return 0;
}
