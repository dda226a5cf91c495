/* Named series in the cluster: key names and pushes (series_store.h). */
#include "agent/series_store.h"

#include <inttypes.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/clock.h"

int series_key_meta(char *buf, const char *client, const char *name)
{
    return snprintf(buf, 256, "seriesmeta/%s/%s", client, name);
}

int series_key_raw(char *buf, const char *client, const char *name, uint64_t t_ms)
{
    return snprintf(buf, 256, "series/%s/%s/r/%013" PRIu64, client, name, t_ms);
}

int series_key_minute(char *buf, const char *client, const char *name, uint64_t minute_ms)
{
    return snprintf(buf, 256, "series/%s/%s/m/%013" PRIu64, client, name, minute_ms);
}

char *series_meta_text(const struct series_meta *m)
{
    json_t *o = json_pack("{s:s, s:s, s:I, s:I}", "name", m->name, "unit", m->unit, "interval_ms",
                          (json_int_t)m->interval_ms, "retention_s", (json_int_t)m->retention_s);
    char *s = o ? json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;
    json_decref(o);
    return s;
}

int series_value_text(char *buf, size_t cap, double v)
{
    return snprintf(buf, cap, "%.10g", v);
}

static bool client_ok(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > SERIES_CLIENT_MAX)
        return false;
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)s[i] <= 0x20 || s[i] == 0x7f || s[i] == '/')
            return false;
    return true;
}

/* Recompute the rollup of the minute starting at minute_ms from its raw points. */
static ddkv_err rollup_minute(ddkv_client *c, const char *client, const char *name, uint64_t minute_ms,
                              uint64_t lease)
{
    char from[256], prefix[256];
    int pl = snprintf(prefix, sizeof prefix, "series/%s/%s/r/", client, name);
    int fl = series_key_raw(from, client, name, minute_ms);
    /* The page starts after `from`: step back one ms so the minute's first ms counts. */
    if (minute_ms)
        fl = series_key_raw(from, client, name, minute_ms - 1);
    struct series_agg a = {0};
    uint64_t seen = 0;
    bool more = true;
    while (more && seen < SERIES_MINUTE_SCAN_MAX) {
        struct ddkv_list l;
        ddkv_err e = ddkv_list(c, prefix, (size_t)pl, from, (size_t)fl, 1000, &l);
        if (e != DDKV_OK)
            return e;
        bool past = false;
        for (size_t i = 0; i < l.n && !past; i++) {
            const char *k = (const char *)l.entries[i].key + pl;
            uint64_t t = strtoull(k, NULL, 10);
            if (t >= minute_ms + SERIES_MINUTE_MS) {
                past = true;
                break;
            }
            char vb[64];
            size_t vl = l.entries[i].value_len < sizeof vb - 1 ? l.entries[i].value_len : sizeof vb - 1;
            memcpy(vb, l.entries[i].value, vl);
            vb[vl] = 0;
            double v = strtod(vb, NULL);
            if (isfinite(v))
                series_agg_add(&a, v);
            seen++;
        }
        more = !past && l.more && l.n > 0;
        if (l.n)
            fl = snprintf(from, sizeof from, "%.*s", (int)l.entries[l.n - 1].key_len,
                          (const char *)l.entries[l.n - 1].key);
        ddkv_list_free(&l);
    }
    if (!a.n)
        return DDKV_OK;
    char key[256];
    int kl = series_key_minute(key, client, name, minute_ms);
    json_t *o = json_pack("{s:I, s:f, s:f, s:f}", "n", (json_int_t)a.n, "min", a.min, "avg", a.sum / (double)a.n,
                          "max", a.max);
    char *v = o ? json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(10)) : NULL;
    json_decref(o);
    if (!v)
        return DDKV_ERR_NOMEM;
    struct ddkv_write_result wr;
    ddkv_err e = ddkv_write(c, key, (size_t)kl, v, strlen(v), lease, &wr);
    free(v);
    return e;
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

/* The minute each point falls in, sorted (malloc'd; NULL: out of memory). */
static uint64_t *push_minutes(const struct series_point *pts, size_t n)
{
    uint64_t *minutes = malloc((n ? n : 1) * sizeof *minutes);
    if (!minutes)
        return NULL;
    for (size_t i = 0; i < n; i++)
        minutes[i] = pts[i].t_ms / SERIES_MINUTE_MS * SERIES_MINUTE_MS;
    qsort(minutes, n, sizeof *minutes, cmp_u64);
    return minutes;
}

ddkv_err series_push_check(const char *client, const struct series_meta *m, const struct series_point *pts, size_t n,
                           char *err, size_t errlen)
{
    err[0] = 0;
    if (!client_ok(client)) {
        snprintf(err, errlen, "a client id is 1-%d printable bytes without '/'", SERIES_CLIENT_MAX);
        return DDKV_ERR_USAGE;
    }
    if (!series_name_ok(m->name, strlen(m->name))) {
        snprintf(err, errlen, "a series name is 1-%d of A-Z a-z 0-9 _ . : -", SERIES_NAME_MAX);
        return DDKV_ERR_USAGE;
    }
    if (!series_unit_ok(m->unit, strlen(m->unit))) {
        snprintf(err, errlen, "a unit is at most %d printable bytes without '\"' or '\\'", SERIES_UNIT_MAX);
        return DDKV_ERR_USAGE;
    }
    if (m->retention_s < 10 || m->retention_s > SERIES_RETENTION_MAX_S) {
        snprintf(err, errlen, "a retention is 10 to %u s", SERIES_RETENTION_MAX_S);
        return DDKV_ERR_USAGE;
    }
    if (n == 0 || n > SERIES_PUSH_MAX) {
        snprintf(err, errlen, "a push has 1 to %d points (this one %zu)", SERIES_PUSH_MAX, n);
        return DDKV_ERR_USAGE;
    }
    uint64_t now = clock_wall_ms();
    for (size_t i = 0; i < n; i++) {
        if (!isfinite(pts[i].v)) {
            snprintf(err, errlen, "point %zu: the value is not a finite number", i);
            return DDKV_ERR_USAGE;
        }
        if (pts[i].t_ms + (uint64_t)m->retention_s * 1000 < now || pts[i].t_ms > now + SERIES_MINUTE_MS) {
            snprintf(err, errlen, "point %zu: its time %" PRIu64 " ms is outside the retention (%u s) or in the future",
                     i, pts[i].t_ms, m->retention_s);
            return DDKV_ERR_USAGE;
        }
    }
    uint64_t *minutes = push_minutes(pts, n);
    if (!minutes)
        return DDKV_ERR_NOMEM;
    size_t distinct = 0;
    for (size_t i = 0; i < n; i++)
        distinct += i == 0 || minutes[i] != minutes[i - 1];
    free(minutes);
    if (distinct > SERIES_PUSH_MINUTES_MAX) {
        snprintf(err, errlen, "a push spans %zu minutes (at most %d: push older points in several)", distinct,
                 SERIES_PUSH_MINUTES_MAX);
        return DDKV_ERR_USAGE;
    }
    return DDKV_OK;
}

ddkv_err series_push(ddkv_client *c, const char *client, const struct series_meta *m, const struct series_point *pts,
                     size_t n, char *err, size_t errlen)
{
    ddkv_err e = series_push_check(client, m, pts, n, err, errlen);
    if (e != DDKV_OK)
        return e;
    /* The minutes it touches: each costs a rollup (a list and a write). */
    uint64_t *minutes = push_minutes(pts, n);
    if (!minutes)
        return DDKV_ERR_NOMEM;
    uint64_t lease = 0, ttl = 0;
    e = ddkv_lease_grant(c, (uint64_t)m->retention_s * 1000 + SERIES_MINUTE_MS, &lease, &ttl);
    if (e != DDKV_OK) {
        free(minutes);
        return e;
    }
    /* Raw points, DDKV_TXN_MAX to a transaction. */
    static const size_t per_txn = DDKV_TXN_MAX;
    char(*keys)[256] = malloc(per_txn * sizeof *keys);
    char(*vals)[32] = malloc(per_txn * sizeof *vals);
    struct ddkv_op *ops = calloc(per_txn, sizeof *ops);
    if (!keys || !vals || !ops) {
        e = DDKV_ERR_NOMEM;
        goto done;
    }
    for (size_t i = 0; i < n && e == DDKV_OK;) {
        size_t k = 0;
        for (; k < per_txn && i < n; k++, i++) {
            int kl = series_key_raw(keys[k], client, m->name, pts[i].t_ms);
            int vl = series_value_text(vals[k], sizeof vals[k], pts[i].v);
            ops[k] = (struct ddkv_op){.kind = DDKV_OP_PUT, .key = keys[k], .key_len = (size_t)kl, .value = vals[k],
                                      .value_len = (size_t)vl, .lease_id = lease};
        }
        struct ddkv_txn_result tr;
        e = ddkv_txn(c, NULL, 0, ops, k, NULL, 0, &tr);
    }
    if (e != DDKV_OK)
        goto done;
    for (size_t i = 0; i < n && e == DDKV_OK; i++)
        if (i == 0 || minutes[i] != minutes[i - 1])
            e = rollup_minute(c, client, m->name, minutes[i], lease);
    if (e == DDKV_OK) {
        char key[256];
        int kl = series_key_meta(key, client, m->name);
        char *v = series_meta_text(m);
        struct ddkv_write_result wr;
        e = v ? ddkv_write(c, key, (size_t)kl, v, strlen(v), lease, &wr) : DDKV_ERR_NOMEM;
        free(v);
    }
done:
    free(keys);
    free(vals);
    free(ops);
    free(minutes);
    return e;
}
