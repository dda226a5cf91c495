/* The hub's series API: the list, a window downsampled to buckets, and
 * pushes (hub_series.h). */
#include "hub/hub_series.h"

#include <inttypes.h>
#include <jansson.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agent/series.h"
#include "agent/series_store.h"
#include "util/clock.h"

static char *dump(json_t *o)
{
    char *s = o ? json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(10)) : NULL;
    json_decref(o);
    return s;
}

static int fail(char **out, int status, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int fail(char **out, int status, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    *out = dump(json_pack("{s:s}", "error", msg));
    return status;
}

static int cluster_fail(char **out, ddkv_client *c, ddkv_err e, const char *what)
{
    int status = e == DDKV_ERR_NOT_FOUND             ? 404
                 : e == DDKV_ERR_PERMISSION_DENIED ? 403
                 : e == DDKV_ERR_BAD_REQUEST || e == DDKV_ERR_TOO_LARGE ? 400
                                                                       : 503;
    return fail(out, status, "%s: %s", what, ddkv_client_errmsg(c));
}

int hub_series_list(ddkv_client *c, const char *id, char **out)
{
    char prefix[192];
    int pl = snprintf(prefix, sizeof prefix, "seriesmeta/%s/", id);
    struct ddkv_list l;
    ddkv_err e = ddkv_list_all(c, prefix, (size_t)pl, 10000, &l);
    if (e != DDKV_OK)
        return cluster_fail(out, c, e, "listing series");
    json_t *arr = json_array();
    for (size_t i = 0; i < l.n; i++) {
        json_error_t je;
        json_t *o = json_loadb((const char *)l.entries[i].value, l.entries[i].value_len, 0, &je);
        if (!json_is_object(o)) {
            json_decref(o);
            continue; /* not written by us: left out */
        }
        /* The name is the key's: a value cannot rename a series. */
        json_object_set_new(o, "name", json_stringn((const char *)l.entries[i].key + pl, l.entries[i].key_len - pl));
        json_array_append_new(arr, o);
    }
    ddkv_list_free(&l);
    *out = dump(arr);
    return 200;
}

/* Scan keys prefix<13-digit ts> with ts in [from_ms, to_ms], calling fn for
 * each; at most max keys. Returns DDKV_OK or the error; *truncated when the
 * bound stopped it. */
typedef void (*scan_fn)(void *arg, uint64_t t_ms, const uint8_t *v, size_t vlen);
static ddkv_err scan_range(ddkv_client *c, const char *prefix, uint64_t from_ms, uint64_t to_ms, uint64_t max,
                           bool *truncated, uint64_t *seen, scan_fn fn, void *arg)
{
    size_t pl = strlen(prefix);
    char after[256];
    int al = from_ms ? snprintf(after, sizeof after, "%s%013" PRIu64, prefix, from_ms - 1) : 0;
    bool more = true;
    while (more) {
        if (*seen >= max) {
            *truncated = true;
            break;
        }
        struct ddkv_list l;
        ddkv_err e = ddkv_list(c, prefix, pl, after, (size_t)al, 1000, &l);
        if (e != DDKV_OK)
            return e;
        bool past = false;
        for (size_t i = 0; i < l.n; i++) {
            if (l.entries[i].key_len != pl + 13)
                continue;
            uint64_t t = strtoull((const char *)l.entries[i].key + pl, NULL, 10);
            if (t > to_ms) {
                past = true;
                break;
            }
            fn(arg, t, l.entries[i].value, l.entries[i].value_len);
            (*seen)++;
        }
        more = !past && l.more && l.n > 0;
        if (l.n)
            al = snprintf(after, sizeof after, "%.*s", (int)l.entries[l.n - 1].key_len,
                          (const char *)l.entries[l.n - 1].key);
        ddkv_list_free(&l);
    }
    return DDKV_OK;
}

struct scan_ctx {
    struct series_buckets *sb;
    uint64_t last_minute; /* the newest rollup seen, +1 (0: none) */
};

static void add_raw(void *arg, uint64_t t, const uint8_t *v, size_t n)
{
    struct scan_ctx *sc = arg;
    char buf[64];
    if (n == 0 || n >= sizeof buf)
        return;
    memcpy(buf, v, n);
    buf[n] = 0;
    char *end;
    double x = strtod(buf, &end);
    if (*end == 0 && isfinite(x))
        series_buckets_add(sc->sb, t, x);
}

static void add_minute(void *arg, uint64_t t, const uint8_t *v, size_t n)
{
    struct scan_ctx *sc = arg;
    json_error_t je;
    json_t *o = json_loadb((const char *)v, n, 0, &je);
    json_int_t cnt = json_integer_value(json_object_get(o, "n"));
    double mn = json_number_value(json_object_get(o, "min")), av = json_number_value(json_object_get(o, "avg")),
           mx = json_number_value(json_object_get(o, "max"));
    if (cnt > 0 && isfinite(mn) && isfinite(av) && isfinite(mx)) {
        series_buckets_merge(sc->sb, t, (uint64_t)cnt, mn, av, mx);
        sc->last_minute = t + 1;
    }
    json_decref(o);
}

int hub_series_query(ddkv_client *c, const char *id, const char *name, const char *window, char **out)
{
    if (!series_name_ok(name, strlen(name)))
        return fail(out, 400, "a series name is 1-%d of A-Z a-z 0-9 _ . : -", SERIES_NAME_MAX);
    const struct series_window *w = series_window_find(window ? window : "5m");
    if (!w)
        return fail(out, 400, "window is one of %s", series_window_names());
    char key[256];
    int kl = series_key_meta(key, id, name);
    struct ddkv_value mv;
    ddkv_err e = ddkv_read(c, key, (size_t)kl, DDKV_CONSISTENCY_CAUSAL, 0, &mv);
    if (e == DDKV_ERR_NOT_FOUND)
        return fail(out, 404, "client %s has no series %s", id, name);
    if (e != DDKV_OK)
        return cluster_fail(out, c, e, "reading the series");
    ddkv_free(mv.value);
    uint64_t now = clock_wall_ms(), start = now - w->span_ms;
    struct series_buckets sb;
    if (series_buckets_init(&sb, start, now, w->bucket_ms) != 0)
        return fail(out, 500, "out of memory");
    struct scan_ctx sc = {.sb = &sb};
    bool truncated = false;
    uint64_t seen = 0, raw_from = start;
    char prefix[256];
    if (w->rollups) {
        snprintf(prefix, sizeof prefix, "series/%s/%s/m/", id, name);
        e = scan_range(c, prefix, start / SERIES_MINUTE_MS * SERIES_MINUTE_MS, now, HUB_SERIES_RAW_SCAN_MAX,
                       &truncated, &seen, add_minute, &sc);
        if (sc.last_minute)
            raw_from = sc.last_minute - 1 + SERIES_MINUTE_MS; /* what the rollups cover is not read twice */
    }
    if (e == DDKV_OK) {
        snprintf(prefix, sizeof prefix, "series/%s/%s/r/", id, name);
        seen = 0;
        e = scan_range(c, prefix, raw_from, now, HUB_SERIES_RAW_SCAN_MAX, &truncated, &seen, add_raw, &sc);
    }
    if (e != DDKV_OK) {
        series_buckets_free(&sb);
        return cluster_fail(out, c, e, "reading the series");
    }
    json_t *arr = json_array();
    for (size_t i = 0; i < sb.nb; i++) {
        const struct series_agg *a = &sb.b[i];
        if (!a->n)
            continue;
        json_array_append_new(arr, json_pack("{s:I, s:f, s:f, s:f, s:I}", "t",
                                             (json_int_t)(sb.t0 + i * sb.bucket_ms), "min", a->min, "avg",
                                             a->sum / (double)a->n, "max", a->max, "n", (json_int_t)a->n));
    }
    series_buckets_free(&sb);
    if (truncated)
        fprintf(stderr, "ddkv hub: series %s/%s window %s: over %u raw points, the oldest left out\n", id, name,
                w->name, HUB_SERIES_RAW_SCAN_MAX);
    *out = dump(arr);
    return 200;
}

/* One series of a push: its meta and points from o (a JSON object), checked.
 * 0, or a 4xx/5xx status with *out the error, prefixed with what (the
 * series' name in a batch). *p: malloc'd, *n points. */
static int push_parse(json_t *o, const char *name, const char *what, struct series_meta *m, struct series_point **p,
                      size_t *n, char **out)
{
    *p = NULL;
    *n = 0;
    if (!series_name_ok(name, strlen(name)))
        return fail(out, 400, "%sa series name is 1-%d of A-Z a-z 0-9 _ . : -", what, SERIES_NAME_MAX);
    if (!json_is_object(o))
        return fail(out, 400, "%sa JSON object {\"unit\",\"interval_ms\",\"retention_s\",\"points\":[{\"t\",\"v\"}]}",
                    what);
    memset(m, 0, sizeof *m);
    m->retention_s = 3600;
    snprintf(m->name, sizeof m->name, "%s", name);
    json_t *u = json_object_get(o, "unit"), *iv = json_object_get(o, "interval_ms"),
           *rs = json_object_get(o, "retention_s"), *pts = json_object_get(o, "points");
    if (u && (!json_is_string(u) || !series_unit_ok(json_string_value(u), json_string_length(u))))
        return fail(out, 400, "%sunit: a string of at most %d printable bytes", what, SERIES_UNIT_MAX);
    if (u)
        snprintf(m->unit, sizeof m->unit, "%s", json_string_value(u));
    if (iv && (!json_is_integer(iv) || json_integer_value(iv) < 0 || json_integer_value(iv) > 86400000))
        return fail(out, 400, "%sinterval_ms: an integer of 0 to 86400000", what);
    m->interval_ms = iv ? (uint32_t)json_integer_value(iv) : 0;
    if (rs && (!json_is_integer(rs) || json_integer_value(rs) < 10 || json_integer_value(rs) > SERIES_RETENTION_MAX_S))
        return fail(out, 400, "%sretention_s: an integer of 10 to %u", what, SERIES_RETENTION_MAX_S);
    if (rs)
        m->retention_s = (uint32_t)json_integer_value(rs);
    size_t np = json_array_size(pts);
    if (!json_is_array(pts) || np == 0 || np > SERIES_PUSH_MAX)
        return fail(out, 400, "%spoints: an array of 1 to %d {\"t\": ms, \"v\": number}", what, SERIES_PUSH_MAX);
    struct series_point *pp = calloc(np, sizeof *pp);
    if (!pp)
        return fail(out, 500, "out of memory");
    uint64_t now = clock_wall_ms();
    for (size_t i = 0; i < np; i++) {
        json_t *pt = json_array_get(pts, i), *t = json_object_get(pt, "t"), *v = json_object_get(pt, "v");
        if (!json_is_object(pt) || !json_is_number(v) || (t && (!json_is_integer(t) || json_integer_value(t) <= 0))) {
            free(pp);
            return fail(out, 400, "%spoints[%zu]: want {\"t\": ms since 1970 (default now), \"v\": number}", what, i);
        }
        pp[i].t_ms = t ? (uint64_t)json_integer_value(t) : now;
        pp[i].v = json_number_value(v);
    }
    *p = pp;
    *n = np;
    return 0;
}

/* Write one checked series; 0 or the status with *out the error. */
static int push_write(ddkv_client *c, const char *id, const struct series_meta *m, const struct series_point *p,
                      size_t n, const char *what, char **out)
{
    char err[256];
    ddkv_err e = series_push(c, id, m, p, n, err, sizeof err);
    if (e == DDKV_ERR_USAGE)
        return fail(out, 400, "%s%s", what, err);
    if (e != DDKV_OK) {
        char w[160];
        snprintf(w, sizeof w, "%swriting the series", what);
        return cluster_fail(out, c, e, w);
    }
    return 0;
}

int hub_series_post(ddkv_client *c, const char *id, const char *name, const uint8_t *body, size_t len, char **out)
{
    json_error_t je;
    json_t *o = json_loadb((const char *)body, len, JSON_REJECT_DUPLICATES, &je);
    struct series_meta m;
    struct series_point *p = NULL;
    size_t n = 0;
    int status = push_parse(o, name, "", &m, &p, &n, out);
    if (!status)
        status = push_write(c, id, &m, p, n, "", out);
    if (!status) {
        *out = dump(json_pack("{s:I}", "written", (json_int_t)n));
        status = 201;
    }
    free(p);
    json_decref(o);
    return status;
}

int hub_series_post_batch(ddkv_client *c, const char *id, const uint8_t *body, size_t len, char **out)
{
    json_error_t je;
    json_t *o = json_loadb((const char *)body, len, JSON_REJECT_DUPLICATES, &je);
    json_t *arr = json_object_get(o, "series");
    size_t ns = json_array_size(arr);
    if (!json_is_object(o) || !json_is_array(arr) || ns == 0 || ns > HUB_SERIES_BATCH_MAX) {
        json_decref(o);
        return fail(out, 400, "the body is {\"series\": [1 to %u of {\"name\",\"unit\",\"interval_ms\",\"retention_s\","
                    "\"points\":[{\"t\",\"v\"}]}]}", HUB_SERIES_BATCH_MAX);
    }
    struct series_meta *m = calloc(ns, sizeof *m);
    struct series_point **p = calloc(ns, sizeof *p);
    size_t *np = calloc(ns, sizeof *np);
    int status = 0;
    size_t total = 0, done = 0;
    if (!m || !p || !np) {
        status = fail(out, 500, "out of memory");
        goto out;
    }
    /* Every series checked before any is written: a bad one writes nothing. */
    for (size_t i = 0; i < ns && !status; i++) {
        json_t *one = json_array_get(arr, i);
        const char *name = json_string_value(json_object_get(one, "name"));
        char what[128];
        if (name && series_name_ok(name, strlen(name)))
            snprintf(what, sizeof what, "series %s: ", name);
        else
            snprintf(what, sizeof what, "series[%zu]: ", i);
        for (size_t k = 0; k < i && name; k++)
            if (!strcmp(m[k].name, name)) {
                status = fail(out, 400, "%sgiven twice in one push", what);
                break;
            }
        if (!status)
            status = push_parse(one, name ? name : "", what, &m[i], &p[i], &np[i], out);
        char err[256];
        if (!status && series_push_check(id, &m[i], p[i], np[i], err, sizeof err) != DDKV_OK)
            status = fail(out, 400, "%s%s", what, err);
        total += np[i];
    }
    for (size_t i = 0; i < ns && !status; i++) {
        char what[128];
        snprintf(what, sizeof what, "series %s (%zu of %zu series written): ", m[i].name, done, ns);
        status = push_write(c, id, &m[i], p[i], np[i], what, out);
        if (!status)
            done++;
    }
    if (!status) {
        *out = dump(json_pack("{s:I, s:I}", "written", (json_int_t)total, "series", (json_int_t)ns));
        status = 201;
    }
out:
    for (size_t i = 0; p && i < ns; i++)
        free(p[i]);
    free(m);
    free(p);
    free(np);
    json_decref(o);
    return status;
}

json_t *hub_series_event(const char *key, size_t klen, const uint8_t *value, size_t vlen)
{
    /* <id>/<name>/r/<13 digits> */
    if (klen < 18 || memcmp(key + klen - 16, "/r/", 3) != 0)
        return NULL;
    const char *slash = memchr(key, '/', klen - 16);
    if (!slash)
        return NULL;
    char vb[64];
    if (vlen == 0 || vlen >= sizeof vb)
        return NULL;
    memcpy(vb, value, vlen);
    vb[vlen] = 0;
    char *end;
    double v = strtod(vb, &end);
    if (*end || !isfinite(v))
        return NULL;
    uint64_t t = strtoull(key + klen - 13, NULL, 10);
    return json_pack("{s:s%, s:s%, s:I, s:f}", "id", key, (size_t)(slash - key), "series", slash + 1,
                     (size_t)(key + klen - 16 - slash - 1), "t", (json_int_t)t, "v", v);
}
