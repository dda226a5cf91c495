/* ddkv job submit FILE | list | get ID | cancel ID | delete ID: the job
 * queue from a shell.
 *
 * submit stores the file in the cluster in chunks and queues a job for it
 * (src/apps/jobs/submit.h: a 20 MB file is 40 chunks of 512 KiB); list prints every job; get prints one job's record and, once done, its
 * result (the key the worker named in its ack); cancel stops a queued or
 * running job; delete removes a job with its input and result (or, with
 * --result-only, its result). */
#include <errno.h>
#include <inttypes.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/commands.h"
#include "jobs/algo.h"
#include "jobs/submit.h"

static const struct opt_def job_opts[] = {
    {"algorithm", 0, OPT_ARG, "stats", "NAME",
     "submit: how the worker processes the file (stats: per-column statistics; vitals: also heart and breath rate "
     "trends and band crossings)"},
    {"max-attempts", 0, OPT_ARG, "3", "N", "submit: tries before the job is dead (1..100)"},
    {"priority", 0, OPT_ARG, "normal", "P", "submit: high, normal or low (of each 7 claims 4 high, 2 normal, 1 low)"},
    {"result-only", 0, 0, NULL, NULL, "delete: delete only the job's result"},
};

static long job_read_file(void *ctx, uint8_t *buf, size_t cap)
{
    FILE *f = ctx;
    size_t n = fread(buf, 1, cap, f);
    return n == 0 && ferror(f) ? -1 : (long)n;
}

static int job_submit_file(struct cli_ctx *ctx, ddkv_client *c, const char *path)
{
    uint32_t attempts = 3;
    if (opts_get_u32(ctx->opts, "max-attempts", 1, 100, &attempts) != 0) {
        out_error("job submit: %s", ctx->opts->err);
        return EXIT_USAGE;
    }
    const char *algo = opts_get(ctx->opts, "algorithm");
    bool known = false;
    for (size_t i = 0; i < algo_count; i++)
        known = known || !strcmp(algo, algo_registry[i].name);
    if (!known) {
        out_error("job submit: unknown algorithm '%.32s' (stats or vitals)", algo);
        return EXIT_USAGE;
    }
    FILE *f = strcmp(path, "-") == 0 ? stdin : fopen(path, "rb");
    if (!f) {
        out_error("job submit: cannot open %s: %s", path, strerror(errno));
        return EXIT_USAGE;
    }
    const char *base = strrchr(path, '/') ? strrchr(path, '/') + 1 : path;
    struct job_submitted js;
    char err[256];
    static const char *const prios[] = {"high", "normal", "low", NULL};
    int prio = 1;
    if (opts_get_choice(ctx->opts, "priority", prios, &prio) != 0) {
        if (f != stdin)
            fclose(f);
        out_error("job submit: %s", ctx->opts->err);
        return EXIT_USAGE;
    }
    ddkv_err e = job_submit_at(c, base, opts_get(ctx->opts, "algorithm"), prios[prio], attempts, job_read_file, f,
                               &js, err, sizeof err);
    if (f != stdin)
        fclose(f);
    if (e != DDKV_OK) {
        out_error("job submit: %s", err);
        return out_exit_code(e);
    }
    if (ctx->fmt == OUT_JSON) {
        json_t *o = json_pack("{s:s, s:s, s:I, s:I}", "id", js.id, "data", js.prefix, "size", (json_int_t)js.size,
                              "chunks", (json_int_t)js.chunks);
        return o && out_json_line(o) == 0 ? EXIT_DONE : EXIT_UNAVAILABLE;
    }
    printf("job %s queued (%" PRIu64 " bytes in %" PRIu64 " chunks under %s)\n", js.id, js.size, js.chunks,
           js.prefix);
    return EXIT_DONE;
}

/* A string field of a job record escaped for a text line (output.h), or
 * dflt if absent; caller frees (NULL if out of memory). */
static char *job_field(json_t *o, const char *name, const char *dflt)
{
    json_t *f = json_object_get(o, name);
    const char *s = json_is_string(f) ? json_string_value(f) : dflt;
    return out_text_dup(s, json_is_string(f) ? json_string_length(f) : strlen(s), 0);
}

static int job_list(struct cli_ctx *ctx, ddkv_client *c)
{
    struct ddkv_list l;
    ddkv_err e = ddkv_list_all(c, "jobs/", 5, 0, &l);
    if (e != DDKV_OK)
        return cli_fail(c, e, "job list", "jobs/", 5);
    if (ctx->fmt != OUT_JSON)
        printf("%-34s %-8s %-8s %-16s %s\n", "ID", "STATE", "ATTEMPTS", "WORKER", "DATA");
    for (size_t i = 0; i < l.n; i++) {
        json_error_t err;
        json_t *o = json_loadb((const char *)l.entries[i].value, l.entries[i].value_len, 0, &err);
        if (!json_is_object(o)) {
            json_decref(o);
            continue; /* not a job record (written by hand) */
        }
        if (ctx->fmt == OUT_JSON) {
            out_json_line(o);
            continue;
        }
        /* A record anyone with write on jobs/ may have written: escaped. */
        char *id = job_field(o, "id", "?"), *state = job_field(o, "state", "?");
        char *w = job_field(o, "worker", "-"), *data = job_field(o, "data", "");
        printf("%-34s %-8s %" PRId64 "/%-6" PRId64 " %-16s %s\n", id ? id : "?", state ? state : "?",
               (int64_t)json_integer_value(json_object_get(o, "attempts")),
               (int64_t)json_integer_value(json_object_get(o, "max_attempts")), w ? w : "-", data ? data : "");
        free(id);
        free(state);
        free(w);
        free(data);
        json_decref(o);
    }
    ddkv_list_free(&l);
    return EXIT_DONE;
}

static int job_get(struct cli_ctx *ctx, ddkv_client *c, const char *id)
{
    char key[128];
    snprintf(key, sizeof key, "jobs/%s", id);
    struct ddkv_value v;
    ddkv_err e = ddkv_read(c, key, strlen(key), DDKV_CONSISTENCY_LINEARIZABLE, 0, &v);
    if (e == DDKV_ERR_NOT_FOUND) {
        out_error("no job %s", id);
        return EXIT_NO;
    }
    if (e != DDKV_OK)
        return cli_fail(c, e, "job get", key, strlen(key));
    json_error_t err;
    json_t *job = json_loadb(v.value, v.len, 0, &err);
    ddkv_free(v.value);
    if (!json_is_object(job)) {
        json_decref(job);
        out_error("%s is not a job record", key);
        return EXIT_UNAVAILABLE;
    }
    /* The result of job ID lives at jobresult/ID (src/core/node/mod/jobs.c); a
     * record naming any other key (written by hand) is not followed. */
    char rkey[160];
    snprintf(rkey, sizeof rkey, "jobresult/%s", id);
    const char *result = json_string_value(json_object_get(job, "result"));
    if (result && strcmp(result, rkey) == 0) {
        struct ddkv_value rv;
        if (ddkv_read(c, rkey, strlen(rkey), DDKV_CONSISTENCY_LINEARIZABLE, 0, &rv) == DDKV_OK) {
            json_t *r = json_loadb(rv.value, rv.len, 0, &err);
            json_object_set_new(job, "result_value", r ? r : json_stringn(rv.value, rv.len));
            ddkv_free(rv.value);
        }
    }
    int rc;
    if (ctx->fmt == OUT_JSON) {
        rc = out_json_line(job) == 0 ? EXIT_DONE : EXIT_UNAVAILABLE;
    } else {
        char *s = json_dumps(job, JSON_INDENT(2) | JSON_SORT_KEYS);
        json_decref(job);
        rc = s ? EXIT_DONE : EXIT_UNAVAILABLE;
        if (s)
            printf("%s\n", s);
        free(s);
    }
    return rc;
}

static int job_remove(struct cli_ctx *ctx, ddkv_client *c, const char *verb, const char *id)
{
    char err[256] = "";
    ddkv_err e;
    const char *what;
    if (!strcmp(verb, "cancel")) {
        char *state = NULL;
        e = ddkv_job_cancel(c, id, DDKV_JOB_CANCEL, &state);
        ddkv_free(state);
        snprintf(err, sizeof err, "%s", ddkv_client_errmsg(c));
        what = "cancelled";
    } else {
        bool result_only = opts_is_set(ctx->opts, "result-only");
        e = job_delete(c, id, result_only, err, sizeof err);
        what = result_only ? "result deleted" : "deleted with its data and result";
    }
    if (e != DDKV_OK) {
        out_error("job %s %s: %s", verb, id, err);
        return e == DDKV_ERR_NOT_FOUND ? EXIT_NO : out_exit_code(e);
    }
    if (ctx->fmt == OUT_JSON) {
        json_t *o = json_pack("{s:s, s:s}", "id", id, "done", what);
        return o && out_json_line(o) == 0 ? EXIT_DONE : EXIT_UNAVAILABLE;
    }
    printf("job %s %s\n", id, what);
    return EXIT_DONE;
}

static int job_run(struct cli_ctx *ctx)
{
    const char *verb = ctx->opts->pos[0];
    unsigned want = strcmp(verb, "list") == 0 ? 1 : 2;
    if ((strcmp(verb, "submit") && strcmp(verb, "list") && strcmp(verb, "get") && strcmp(verb, "cancel") &&
         strcmp(verb, "delete")) ||
        ctx->opts->npos != want) {
        out_error("usage: ddkv job submit FILE | list | get ID | cancel ID | delete ID [--result-only]");
        return EXIT_USAGE;
    }
    ddkv_client *c = NULL;
    int rc = cli_client(ctx, &c);
    if (rc != EXIT_DONE)
        return rc;
    if (strcmp(verb, "submit") == 0)
        rc = job_submit_file(ctx, c, ctx->opts->pos[1]);
    else if (strcmp(verb, "list") == 0)
        rc = job_list(ctx, c);
    else if (strcmp(verb, "cancel") == 0 || strcmp(verb, "delete") == 0)
        rc = job_remove(ctx, c, verb, ctx->opts->pos[1]);
    else
        rc = job_get(ctx, c, ctx->opts->pos[1]);
    ddkv_client_free(c);
    return rc;
}

const struct cli_command cmd_job_commands[] = {
    {"job", "submit FILE | list | get ID | cancel ID | delete ID",
     "queue a data file for processing, list jobs, show a job and its result, cancel or delete a job",
     job_opts, sizeof job_opts / sizeof job_opts[0], CMD_CLIENT, 1, 2, NULL, job_run},
};

const size_t cmd_job_count = sizeof cmd_job_commands / sizeof cmd_job_commands[0];
