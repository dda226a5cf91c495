/* Named series: names, a command's output lines, and the bucket math (series.h). */
#include "agent/series.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

bool series_name_ok(const char *s, size_t n)
{
    if (n == 0 || n > SERIES_NAME_MAX)
        return false;
    for (size_t i = 0; i < n; i++) {
        char ch = s[i];
        bool ok = (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') || ch == '_' ||
                  ch == '.' || ch == ':' || ch == '-';
        if (!ok)
            return false;
    }
    return true;
}

bool series_unit_ok(const char *s, size_t n)
{
    if (n > SERIES_UNIT_MAX)
        return false;
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)s[i] < 0x20 || (unsigned char)s[i] > 0x7e || s[i] == '"' || s[i] == '\\')
            return false;
    return true;
}

/* A whole field as a finite number. */
static bool parse_number(const char *f, size_t n, double *out)
{
    char buf[64];
    if (n == 0 || n >= sizeof buf)
        return false;
    memcpy(buf, f, n);
    buf[n] = 0;
    char *end = NULL;
    double v = strtod(buf, &end);
    if (end != buf + n || !isfinite(v))
        return false;
    *out = v;
    return true;
}

bool series_parse_line(const char *line, size_t n, struct series_line *out, char *err, size_t errlen)
{
    memset(out, 0, sizeof *out);
    err[0] = 0;
    if (n > SERIES_LINE_MAX) {
        snprintf(err, errlen, "a line of %zu bytes (at most %d)", n, SERIES_LINE_MAX);
        return false;
    }
    const char *f[4];
    size_t fl[4], nf = 0;
    for (size_t i = 0; i < n;) {
        while (i < n && (line[i] == ' ' || line[i] == '\t' || line[i] == '\r'))
            i++;
        if (i == n)
            break;
        if (nf == 3) {
            snprintf(err, errlen, "more than 3 fields (want: VALUE or SERIES VALUE [UNIT])");
            return false;
        }
        f[nf] = line + i;
        while (i < n && line[i] != ' ' && line[i] != '\t' && line[i] != '\r')
            i++;
        fl[nf] = (size_t)(line + i - f[nf]);
        nf++;
    }
    if (nf == 0)
        return false; /* an empty line: skipped */
    if (nf == 1) {
        if (!parse_number(f[0], fl[0], &out->value)) {
            snprintf(err, errlen, "not a number (want: VALUE or SERIES VALUE [UNIT])");
            return false;
        }
        return true;
    }
    double tmp;
    if (nf == 2 && parse_number(f[0], fl[0], &out->value) && !parse_number(f[1], fl[1], &tmp)) {
        /* "VALUE UNIT": the source's own series, with a unit. */
        if (!series_unit_ok(f[1], fl[1])) {
            snprintf(err, errlen, "a bad unit (at most %d printable bytes)", SERIES_UNIT_MAX);
            return false;
        }
        memcpy(out->unit, f[1], fl[1]);
        out->has_unit = true;
        return true;
    }
    if (!series_name_ok(f[0], fl[0])) {
        snprintf(err, errlen, "a bad series name (1-%d of A-Z a-z 0-9 _ . : -)", SERIES_NAME_MAX);
        return false;
    }
    if (!parse_number(f[1], fl[1], &out->value)) {
        snprintf(err, errlen, "the value is not a finite number");
        return false;
    }
    if (nf == 3) {
        if (!series_unit_ok(f[2], fl[2])) {
            snprintf(err, errlen, "a bad unit (at most %d printable bytes)", SERIES_UNIT_MAX);
            return false;
        }
        memcpy(out->unit, f[2], fl[2]);
        out->has_unit = true;
    }
    memcpy(out->name, f[0], fl[0]);
    return true;
}

void series_agg_add(struct series_agg *a, double v)
{
    if (a->n == 0 || v < a->min)
        a->min = v;
    if (a->n == 0 || v > a->max)
        a->max = v;
    a->sum += v;
    a->n++;
}

void series_agg_merge(struct series_agg *a, uint64_t n, double min, double avg, double max)
{
    if (n == 0)
        return;
    if (a->n == 0 || min < a->min)
        a->min = min;
    if (a->n == 0 || max > a->max)
        a->max = max;
    a->sum += avg * (double)n;
    a->n += n;
}

static const struct series_window windows[] = {
    {"5m", 5 * 60000ull, 1000, false},          {"15m", 15 * 60000ull, 3000, false},
    {"1h", 3600000ull, 12000, false},           {"6h", 6 * 3600000ull, 60000, true},
    {"24h", 24 * 3600000ull, 5 * 60000ull, true},
};

const struct series_window *series_window_find(const char *name)
{
    for (size_t i = 0; name && i < sizeof windows / sizeof windows[0]; i++)
        if (!strcmp(windows[i].name, name))
            return &windows[i];
    return NULL;
}

const char *series_window_names(void)
{
    return "5m, 15m, 1h, 6h, 24h";
}

int series_buckets_init(struct series_buckets *sb, uint64_t start_ms, uint64_t end_ms, uint64_t bucket_ms)
{
    memset(sb, 0, sizeof *sb);
    if (!bucket_ms || end_ms < start_ms)
        return -1;
    sb->bucket_ms = bucket_ms;
    sb->t0 = start_ms / bucket_ms * bucket_ms;
    sb->nb = (size_t)((end_ms - sb->t0) / bucket_ms + 1);
    sb->b = calloc(sb->nb, sizeof *sb->b);
    return sb->b ? 0 : -1;
}

void series_buckets_free(struct series_buckets *sb)
{
    free(sb->b);
    sb->b = NULL;
}

static struct series_agg *bucket_of(struct series_buckets *sb, uint64_t t_ms)
{
    if (t_ms < sb->t0)
        return NULL;
    uint64_t i = (t_ms - sb->t0) / sb->bucket_ms;
    return i < sb->nb ? &sb->b[i] : NULL;
}

void series_buckets_add(struct series_buckets *sb, uint64_t t_ms, double v)
{
    struct series_agg *a = bucket_of(sb, t_ms);
    if (a)
        series_agg_add(a, v);
}

void series_buckets_merge(struct series_buckets *sb, uint64_t t_ms, uint64_t n, double min, double avg, double max)
{
    struct series_agg *a = bucket_of(sb, t_ms);
    if (a)
        series_agg_merge(a, n, min, avg, max);
}
