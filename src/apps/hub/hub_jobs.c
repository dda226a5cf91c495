/* The hub's job management: see hub_jobs.h. */
#include "hub/hub_jobs.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "jobs/algo.h"
#include "jobs/submit.h"

static char *err_json(const char *fmt, const char *a, const char *b)
{
    char msg[512];
    snprintf(msg, sizeof msg, fmt, a, b);
    json_t *o = json_pack("{s:s}", "error", msg);
    char *s = o ? json_dumps(o, JSON_COMPACT) : NULL;
    json_decref(o);
    return s;
}

static bool id_ok(const char *id)
{
    return id[0] && strlen(id) < 64 && strspn(id, "0123456789abcdef-") == strlen(id);
}

bool hub_job_algorithm_ok(const char *name)
{
    for (size_t i = 0; i < algo_count; i++)
        if (!strcmp(name, algo_registry[i].name))
            return true;
    return false;
}

bool hub_job_priority_ok(const char *p)
{
    return !p || !*p || !strcmp(p, "high") || !strcmp(p, "normal") || !strcmp(p, "low");
}

int hub_algorithms(char **out)
{
    json_t *a = json_array();
    for (size_t i = 0; a && i < algo_count; i++)
        json_array_append_new(a, json_pack("{s:s, s:s, s:s}", "name", algo_registry[i].name, "title",
                                           algo_registry[i].title, "description", algo_registry[i].description));
    *out = a ? json_dumps(a, JSON_COMPACT) : NULL;
    json_decref(a);
    return 200;
}

static int status_of(ddkv_err e)
{
    return e == DDKV_ERR_NOT_FOUND                                  ? 404
           : e == DDKV_ERR_BAD_REQUEST || e == DDKV_ERR_USAGE       ? 409
           : e == DDKV_ERR_PERMISSION_DENIED                        ? 403
                                                                    : 503;
}

int hub_job_remove(ddkv_client *c, const char *id, int what, char **out)
{
    if (!id_ok(id)) {
        *out = err_json("'%.64s' is not a job id%s", id, "");
        return 400;
    }
    char err[256] = "";
    ddkv_err e;
    if (what == 0) {
        e = ddkv_job_cancel(c, id, DDKV_JOB_CANCEL, NULL);
        if (e != DDKV_OK)
            snprintf(err, sizeof err, "%s", ddkv_client_errmsg(c));
    } else {
        e = job_delete(c, id, what == 2, err, sizeof err);
    }
    if (e != DDKV_OK) {
        *out = err_json("job %s: %s", id, err);
        return status_of(e);
    }
    json_t *o = json_pack("{s:s, s:s}", "id", id, "done", what == 0 ? "cancelled" : what == 1 ? "deleted" : "result deleted");
    *out = o ? json_dumps(o, JSON_COMPACT) : NULL;
    json_decref(o);
    return 200;
}

/* One CSV cell: quoted when needed, and a leading = + - @ (a formula to a
 * spreadsheet) made text with a leading '. */
static void cell(FILE *f, const char *s, bool last)
{
    bool formula = strchr("=+-@\t\r", s[0]) && s[0];
    if (formula || strpbrk(s, ",\"\r\n")) {
        fputc('"', f);
        if (formula)
            fputc('\'', f);
        for (; *s; s++) {
            if (*s == '"')
                fputc('"', f);
            fputc(*s, f);
        }
        fputc('"', f);
    } else {
        fputs(s, f);
    }
    fputs(last ? "\r\n" : ",", f);
}

static void num_cell(FILE *f, json_t *v, bool last)
{
    char b[64] = "";
    if (json_is_integer(v))
        snprintf(b, sizeof b, "%" JSON_INTEGER_FORMAT, json_integer_value(v));
    else if (json_is_real(v))
        snprintf(b, sizeof b, "%.10g", json_real_value(v));
    cell(f, b, last);
}

/* The stored result of job id, parsed: 200 with *r, or the status with *out
 * set to the error. */
static int result_load(ddkv_client *c, const char *id, json_t **r, char **out)
{
    if (!id_ok(id)) {
        *out = err_json("'%.64s' is not a job id%s", id, "");
        return 400;
    }
    char key[96];
    snprintf(key, sizeof key, "jobresult/%s", id);
    struct ddkv_value v;
    ddkv_err e = ddkv_read(c, key, strlen(key), DDKV_CONSISTENCY_LINEARIZABLE, 0, &v);
    if (e != DDKV_OK) {
        *out = err_json("job %s: %s", id, e == DDKV_ERR_NOT_FOUND ? "no result (not done, or deleted)" : ddkv_client_errmsg(c));
        return e == DDKV_ERR_NOT_FOUND ? 404 : e == DDKV_ERR_PERMISSION_DENIED ? 403 : 503;
    }
    json_error_t je;
    *r = json_loadb(v.value, v.len, 0, &je);
    ddkv_free(v.value);
    if (!*r) {
        *out = err_json("job %s: its stored result is not JSON%s", id, "");
        return 500;
    }
    return 200;
}

int hub_job_result_json(ddkv_client *c, const char *id, char **out)
{
    json_t *r;
    int st = result_load(c, id, &r, out);
    if (st != 200)
        return st;
    *out = json_dumps(r, JSON_COMPACT | JSON_PRESERVE_ORDER);
    json_decref(r);
    return 200;
}

int hub_job_result_csv(ddkv_client *c, const char *id, char **out)
{
    json_t *r;
    int st = result_load(c, id, &r, out);
    if (st != 200)
        return st;
    json_t *cols = json_object_get(r, "columns");
    if (!json_is_array(cols)) {
        json_decref(r);
        *out = err_json("job %s: its result has no columns%s", id, "");
        return 404;
    }
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    if (!f) {
        json_decref(r);
        return 500;
    }
    static const char *const head[] = {"column", "count", "missing", "min", "max", "mean", "sd", "p5", "p25", "p50",
                                       "p75", "p95", "p99", "range_min", "range_max", "below_range", "above_range"};
    for (size_t i = 0; i < sizeof head / sizeof head[0]; i++)
        cell(f, head[i], i + 1 == sizeof head / sizeof head[0]);
    size_t i;
    json_t *col;
    json_array_foreach(cols, i, col)
    {
        const char *name = json_string_value(json_object_get(col, "name"));
        cell(f, name ? name : "", false);
        static const char *const plain[] = {"count", "missing", "min", "max", "mean", "sd"};
        for (size_t k = 0; k < 6; k++)
            num_cell(f, json_object_get(col, plain[k]), false);
        json_t *p = json_object_get(col, "percentiles");
        static const char *const pct[] = {"p5", "p25", "p50", "p75", "p95", "p99"};
        for (size_t k = 0; k < 6; k++)
            num_cell(f, json_object_get(p, pct[k]), false);
        json_t *rg = json_object_get(col, "range"), *oor = json_object_get(col, "out_of_range");
        num_cell(f, json_object_get(rg, "min"), false);
        num_cell(f, json_object_get(rg, "max"), false);
        num_cell(f, json_object_get(oor, "below"), false);
        num_cell(f, json_object_get(oor, "above"), true);
    }
    fclose(f);
    json_decref(r);
    *out = buf;
    return 200;
}
