/* ddkv job submit FILE | list | get ID: the job queue from a shell.
 *
 * submit stores the file in the cluster under jobdata/<random>/ in chunks
 * (values are bounded; a 20 MB file is 40 chunks of 512 KiB), with a meta
 * record, then queues a job whose data key is that prefix:
 *   jobdata/<r>/meta        {"name","size","chunks","chunk_bytes","algorithm"}
 *   jobdata/<r>/c/<000000>  the bytes, in order
 * list prints every job; get prints one job's record and, once done, its
 * result (the key the worker named in its ack). */
#include <errno.h>
#include <inttypes.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "cli/cmd.h"
#include "util/clock.h"

#define JOB_CHUNK_BYTES (512u * 1024)

static const struct opt_def job_opts[] = {
    {"algorithm", 0, OPT_ARG, "stats", "NAME", "submit: how the worker processes the file (stats: per-column statistics)"},
    {"max-attempts", 0, OPT_ARG, "3", "N", "submit: tries before the job is dead (1..100)"},
};

static int job_submit(struct cli_ctx *ctx, ddkv_client *c, const char *path)
{
    uint32_t attempts = 3;
    if (opts_get_u32(ctx->opts, "max-attempts", 1, 100, &attempts) != 0) {
        out_error("job submit: %s", ctx->opts->err);
        return EXIT_USAGE;
    }
    const char *algo = opts_get(ctx->opts, "algorithm");
    FILE *f = strcmp(path, "-") == 0 ? stdin : fopen(path, "rb");
    if (!f) {
        out_error("job submit: cannot open %s: %s", path, strerror(errno));
        return EXIT_USAGE;
    }
    uint8_t rnd[8];
    uint64_t r = 0;
    if (getrandom(rnd, sizeof rnd, 0) == (ssize_t)sizeof rnd)
        memcpy(&r, rnd, sizeof r);
    r ^= clock_mono_ns();
    char prefix[64];
    snprintf(prefix, sizeof prefix, "jobdata/%016" PRIx64 "/", r);
    uint8_t *buf = malloc(JOB_CHUNK_BYTES);
    if (!buf) {
        if (f != stdin)
            fclose(f);
        out_error("job submit: out of memory");
        return EXIT_UNAVAILABLE;
    }
    uint64_t size = 0, chunks = 0;
    int rc = EXIT_DONE;
    for (;;) {
        size_t n = fread(buf, 1, JOB_CHUNK_BYTES, f);
        if (n == 0)
            break;
        char key[96];
        snprintf(key, sizeof key, "%sc/%06" PRIu64, prefix, chunks);
        struct ddkv_write_result wr;
        ddkv_err e = ddkv_write(c, key, strlen(key), buf, n, 0, &wr);
        if (e != DDKV_OK) {
            rc = cli_fail(c, e, "job submit: storing", key, strlen(key));
            break;
        }
        size += n;
        chunks++;
    }
    if (rc == EXIT_DONE && ferror(f)) {
        out_error("job submit: reading %s: %s", path, strerror(errno));
        rc = EXIT_USAGE;
    }
    if (f != stdin)
        fclose(f);
    free(buf);
    if (rc != EXIT_DONE)
        return rc;
    const char *base = strrchr(path, '/') ? strrchr(path, '/') + 1 : path;
    json_t *meta = json_pack("{s:s, s:I, s:I, s:I, s:s}", "name", base, "size", (json_int_t)size, "chunks",
                             (json_int_t)chunks, "chunk_bytes", (json_int_t)JOB_CHUNK_BYTES, "algorithm",
                             algo ? algo : "stats");
    char *ms = meta ? json_dumps(meta, JSON_COMPACT | JSON_SORT_KEYS) : NULL;
    json_decref(meta);
    if (!ms) {
        out_error("job submit: out of memory");
        return EXIT_UNAVAILABLE;
    }
    char key[96];
    snprintf(key, sizeof key, "%smeta", prefix);
    struct ddkv_write_result wr;
    ddkv_err e = ddkv_write(c, key, strlen(key), ms, strlen(ms), 0, &wr);
    free(ms);
    if (e != DDKV_OK)
        return cli_fail(c, e, "job submit: storing", key, strlen(key));
    char *id = NULL;
    e = ddkv_job_put(c, prefix, attempts, &id);
    if (e != DDKV_OK)
        return cli_fail(c, e, "job submit", prefix, strlen(prefix));
    if (ctx->fmt == OUT_JSON) {
        json_t *o = json_pack("{s:s, s:s, s:I, s:I}", "id", id, "data", prefix, "size", (json_int_t)size, "chunks",
                              (json_int_t)chunks);
        rc = o && out_json_line(o) == 0 ? EXIT_DONE : EXIT_UNAVAILABLE;
    } else {
        printf("job %s queued (%" PRIu64 " bytes in %" PRIu64 " chunks under %s)\n", id, size, chunks, prefix);
    }
    ddkv_free(id);
    return rc;
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
        const char *w = json_string_value(json_object_get(o, "worker"));
        printf("%-34s %-8s %" PRId64 "/%-6" PRId64 " %-16s %s\n",
               json_string_value(json_object_get(o, "id")) ? json_string_value(json_object_get(o, "id")) : "?",
               json_string_value(json_object_get(o, "state")) ? json_string_value(json_object_get(o, "state")) : "?",
               (int64_t)json_integer_value(json_object_get(o, "attempts")),
               (int64_t)json_integer_value(json_object_get(o, "max_attempts")), w ? w : "-",
               json_string_value(json_object_get(o, "data")) ? json_string_value(json_object_get(o, "data")) : "");
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
    const char *result = json_string_value(json_object_get(job, "result"));
    if (result) {
        struct ddkv_value rv;
        if (ddkv_read(c, result, strlen(result), DDKV_CONSISTENCY_LINEARIZABLE, 0, &rv) == DDKV_OK) {
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

static int job_run(struct cli_ctx *ctx)
{
    const char *verb = ctx->opts->pos[0];
    unsigned want = strcmp(verb, "list") == 0 ? 1 : 2;
    if ((strcmp(verb, "submit") && strcmp(verb, "list") && strcmp(verb, "get")) || ctx->opts->npos != want) {
        out_error("usage: ddkv job submit FILE | ddkv job list | ddkv job get ID");
        return EXIT_USAGE;
    }
    ddkv_client *c = NULL;
    int rc = cli_client(ctx, &c);
    if (rc != EXIT_DONE)
        return rc;
    if (strcmp(verb, "submit") == 0)
        rc = job_submit(ctx, c, ctx->opts->pos[1]);
    else if (strcmp(verb, "list") == 0)
        rc = job_list(ctx, c);
    else
        rc = job_get(ctx, c, ctx->opts->pos[1]);
    ddkv_client_free(c);
    return rc;
}

const struct cli_command cmd_job_commands[] = {
    {"job", "submit FILE | list | get ID", "queue a data file for processing, list jobs, show a job and its result",
     job_opts, sizeof job_opts / sizeof job_opts[0], CMD_CLIENT, 1, 2, NULL, job_run},
};

const size_t cmd_job_count = sizeof cmd_job_commands / sizeof cmd_job_commands[0];
