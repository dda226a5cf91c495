/* Reading RocksDB's own account of its background work out of the texts its
 * "rocksdb.cfstats-no-file-histogram" and "rocksdb.dbstats" properties
 * return (RocksDB 7.8's C API has no integer property for these counts).
 * Pure text; kv/store.c asks for the texts. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kv/store.h"

/* The line of text that starts (after blanks) with word; NULL if none. */
static const char *line_starting(const char *text, const char *word)
{
    size_t wn = strlen(word);
    for (const char *p = text; p && *p;) {
        const char *q = p;
        while (*q == ' ')
            q++;
        if (strncmp(q, word, wn) == 0)
            return q;
        p = strchr(p, '\n');
        if (p)
            p++;
    }
    return NULL;
}

/* Blank-separated fields of the line at p, at most cap; returns how many.
 * Fields point into the line; lens[i] are their lengths. */
static size_t fields(const char *p, const char **f, size_t *lens, size_t cap)
{
    size_t n = 0;
    while (*p && *p != '\n') {
        while (*p == ' ')
            p++;
        if (!*p || *p == '\n')
            break;
        const char *s = p;
        while (*p && *p != ' ' && *p != '\n')
            p++;
        if (n < cap) {
            f[n] = s;
            lens[n] = (size_t)(p - s);
        }
        n++;
    }
    return n < cap ? n : cap;
}

static bool field_u64(const char *f, size_t n, uint64_t *out)
{
    if (n == 0 || n > 19)
        return false;
    uint64_t v = 0;
    for (size_t i = 0; i < n; i++) {
        if (f[i] < '0' || f[i] > '9')
            return false;
        v = v * 10 + (uint64_t)(f[i] - '0');
    }
    *out = v;
    return true;
}

#define MAX_FIELDS 40

/* Comp(cnt) of the row starting with `row` in the table whose header starts
 * with "Priority": counted from the end of the line, since the Size column
 * is two fields in a row ("47.61 KB") and one in the header. */
static bool comp_count(const char *text, const char *row, uint64_t *out)
{
    const char *hdr = line_starting(text, "Priority ");
    if (!hdr)
        return false;
    const char *f[MAX_FIELDS];
    size_t len[MAX_FIELDS];
    size_t n = fields(hdr, f, len, MAX_FIELDS), from_end = 0;
    for (size_t i = 0; i < n; i++)
        if (len[i] == 9 && memcmp(f[i], "Comp(cnt)", 9) == 0)
            from_end = n - i;
    if (!from_end)
        return false;
    const char *r = line_starting(hdr, row);
    if (!r)
        return false;
    size_t rn = fields(r, f, len, MAX_FIELDS);
    return rn >= from_end && rn < MAX_FIELDS && field_u64(f[rn - from_end], len[rn - from_end], out);
}

/* The stalls of the "Stalls(count):" line: each cause's cumulative count,
 * up to the interval's total. "..._with_compaction" counts a subset of the
 * cause before it (the same stall while an L0 compaction ran): skipped. */
static bool stall_count(const char *text, uint64_t *out)
{
    const char *p = line_starting(text, "Stalls(count):");
    if (!p)
        return false;
    p += strlen("Stalls(count):");
    uint64_t sum = 0;
    bool any = false;
    for (;;) {
        while (*p == ' ')
            p++;
        if (!*p || *p == '\n' || strncmp(p, "interval", 8) == 0)
            break;
        const char *end = p;
        while (*end && *end != ',' && *end != '\n')
            end++;
        const char *num_end = p;
        while (num_end < end && *num_end >= '0' && *num_end <= '9')
            num_end++;
        uint64_t v;
        if (!field_u64(p, (size_t)(num_end - p), &v))
            return false;
        bool subset = false;
        for (const char *q = num_end; q + 15 <= end; q++)
            if (memcmp(q, "with_compaction", 15) == 0)
                subset = true;
        if (!subset)
            sum += v;
        any = true;
        p = *end == ',' ? end + 1 : end;
    }
    if (!any)
        return false;
    *out = sum;
    return true;
}

bool store_parse_cfstats(const char *text, struct store_engine_stats *out)
{
    uint64_t flushes, compactions, stalls;
    if (!text || !comp_count(text, "High ", &flushes) || !comp_count(text, "Low ", &compactions) ||
        !stall_count(text, &stalls))
        return false;
    out->flushes += flushes;
    out->compactions += compactions;
    out->stalls += stalls;
    return true;
}

bool store_parse_dbstats(const char *text, struct store_engine_stats *out)
{
    const char *p = text ? line_starting(text, "Cumulative stall:") : NULL;
    unsigned h, m;
    double s;
    if (!p || sscanf(p, "Cumulative stall: %u:%u:%lf H:M:S", &h, &m, &s) != 3 || s < 0 || s >= 60 || m >= 60)
        return false;
    out->stall_us += ((uint64_t)h * 3600 + m * 60) * 1000000u + (uint64_t)(s * 1e6 + 0.5);
    return true;
}
