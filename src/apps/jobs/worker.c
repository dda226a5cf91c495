/* ddkv agent --worker: claim jobs, run their algorithm, store the result, and
 * complete them with the claim's fencing token.
 *
 * A job's input is the chunked file under its data key (src/apps/jobs/submit.h).
 * The worker reads the chunks in order into the job's algorithm
 * (src/apps/jobs/algo.h: statistics, vital signs), extending its claim as it goes
 * so that a long job keeps it, with its progress (rows, percent of the
 * bytes) at most every progress_ms, writes the result JSON to
 * jobresult/<id> and acks with that key. It watches jobs/<id> meanwhile: a
 * cancel or delete (the record leaves "claimed", or goes) stops it at the
 * next chunk. A file bigger than the worker's per-job memory is refused.
 * If another worker claimed the job meanwhile (our claim expired: we were
 * paused, or cut off), the ack is FENCED and our result is thrown away: the
 * job is completed by exactly one worker. An input that cannot be read or is
 * not a CSV with a header is refused (nack), and retried up to the job's
 * limit, then dead. */
#include "jobs/worker.h"

#include <inttypes.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "jobs/algo.h"
#include "util/clock.h"
#include "util/err.h"

/* Whether the watch on jobs/<id> saw the job leave "claimed" (a cancel) or
 * go (a delete). The events of this worker's own extends keep it claimed. */
static bool cancelled_within(ddkv_watch *w, uint32_t wait_ms)
{
    struct ddkv_event ev;
    while (w && ddkv_watch_next(w, &ev, wait_ms) == DDKV_OK) {
        bool gone = ev.kind == DDKV_OP_DELETE || !strstr((const char *)ev.value, "\"state\":\"claimed\"");
        ddkv_event_free(&ev);
        if (gone)
            return true;
    }
    return false;
}

static bool cancelled(ddkv_watch *w)
{
    return cancelled_within(w, 1); /* 1 ms: 0 would not read the socket */
}

/* Process one claimed job. Returns what happened, for the log. */
static const char *work(ddkv_client *c, const char *worker, const struct worker_opts *opt, struct ddkv_job_claim *j,
                        char *why, size_t whylen)
{
    why[0] = 0;
    char key[320];
    snprintf(key, sizeof key, "%smeta", j->data_key);
    struct ddkv_value v;
    ddkv_err e = ddkv_read(c, key, strlen(key), DDKV_CONSISTENCY_LINEARIZABLE, 0, &v);
    if (e != DDKV_OK) {
        snprintf(why, whylen, "input %s unreadable: %s", key, ddkv_client_errmsg(c));
        return e == DDKV_ERR_NOT_FOUND ? "refuse" : "retry";
    }
    json_error_t je;
    json_t *meta = json_loadb(v.value, v.len, 0, &je);
    ddkv_free(v.value);
    json_int_t chunks = json_integer_value(json_object_get(meta, "chunks"));
    json_int_t size = json_integer_value(json_object_get(meta, "size"));
    const char *algo_name = json_string_value(json_object_get(meta, "algorithm"));
    char aname[32];
    snprintf(aname, sizeof aname, "%s", algo_name ? algo_name : "stats");
    if (opt->job_memory && size > 0 && (uint64_t)size > opt->job_memory) {
        snprintf(why, whylen, "the file (%" PRId64 " bytes) needs more than this worker's %" PRIu64 " MiB per job",
                 (int64_t)size, opt->job_memory >> 20);
        json_decref(meta);
        return "refuse";
    }
    json_t *name = json_incref(json_object_get(meta, "name"));
    json_decref(meta);
    bool unknown;
    struct algo *st = algo_new(aname, opt->job_memory, &unknown);
    if (!st) {
        json_decref(name);
        snprintf(why, whylen, unknown ? "unknown algorithm '%.32s'" : "out of memory", aname);
        return unknown ? "refuse" : "retry";
    }
    /* The watch that tells of a cancel: changes of jobs/<id> after the claim. */
    ddkv_watch *w = NULL;
    if (opt->watch) {
        char wkey[96], werr[128];
        snprintf(wkey, sizeof wkey, "jobs/%s", j->id);
        if (ddkv_watch_open(opt->watch, wkey, strlen(wkey), j->token + 1, &w, werr, sizeof werr) != DDKV_OK)
            w = NULL; /* then an extend's FENCED tells instead */
    }
    uint64_t last_extend = clock_mono_ms(), done_bytes = 0;
    uint64_t every = opt->progress_ms ? opt->progress_ms : 1000;
    if (every > opt->visibility_ms / 3)
        every = opt->visibility_ms / 3;
    const char *verdict = NULL;
    for (json_int_t i = 0; i < chunks && !verdict; i++) {
        if (cancelled(w)) {
            snprintf(why, whylen, "cancelled or deleted while running; stopped");
            verdict = "cancelled";
            break;
        }
        snprintf(key, sizeof key, "%sc/%06" PRId64, j->data_key, (int64_t)i);
        e = ddkv_read(c, key, strlen(key), DDKV_CONSISTENCY_LINEARIZABLE, 0, &v);
        if (e != DDKV_OK) {
            snprintf(why, whylen, "chunk %s unreadable: %s", key, ddkv_client_errmsg(c));
            verdict = e == DDKV_ERR_NOT_FOUND ? "refuse" : "retry";
            break;
        }
        if (opt->chunk_delay_ms)
            clock_sleep_ms(opt->chunk_delay_ms);
        int rc = algo_feed(st, v.value, v.len);
        done_bytes += v.len;
        ddkv_free(v.value);
        if (rc && rc != ERR_OK) {
            snprintf(why, whylen, "not a readings file: %s", algo_error(st));
            verdict = "refuse";
            break;
        }
        if (clock_mono_ms() - last_extend >= every && cancelled(w)) {
            snprintf(why, whylen, "cancelled or deleted while running; stopped");
            verdict = "cancelled";
            break;
        }
        if (clock_mono_ms() - last_extend >= every) {
            uint32_t pct = size > 0 ? (uint32_t)(done_bytes * 100 / (uint64_t)size) : 0;
            e = ddkv_job_progress(c, j->id, &j->token, opt->visibility_ms, algo_rows(st), pct > 100 ? 100 : pct);
            if (e == DDKV_ERR_FENCED || e == DDKV_ERR_NOT_FOUND) {
                /* A cancel's event may trail the refusal: the watch says which. */
                bool gone = cancelled_within(w, 2000);
                snprintf(why, whylen, gone ? "cancelled or deleted while running; stopped"
                                           : "lost the claim while working (claimed again, cancelled or deleted)");
                verdict = gone ? "cancelled" : "fenced";
                break;
            }
            last_extend = clock_mono_ms();
        }
    }
    if (w)
        ddkv_watch_close(w);
    int rc = verdict ? ERR_OK : algo_finish(st);
    if (!verdict && rc != ERR_OK) {
        snprintf(why, whylen, "not a readings file: %s", algo_error(st));
        verdict = "refuse";
    }
    json_t *res = NULL;
    if (!verdict && algo_to_json(st, &res) != ERR_OK) {
        snprintf(why, whylen, "out of memory");
        verdict = "retry";
    }
    algo_free(st);
    if (verdict) {
        json_decref(name);
        return verdict;
    }
    json_object_set_new(res, "job", json_string(j->id));
    if (name)
        json_object_set_new(res, "file", name);
    json_object_set_new(res, "worker", json_string(worker));
    char *out = json_dumps(res, JSON_COMPACT | JSON_REAL_PRECISION(15));
    json_decref(res);
    if (!out) {
        snprintf(why, whylen, "out of memory");
        return "retry";
    }
    /* The result goes with the ack, in its fenced transaction: written only
     * if this worker still holds the claim. */
    char rkey[128];
    snprintf(rkey, sizeof rkey, "jobresult/%s", j->id);
    e = ddkv_job_ack(c, j->id, j->token, rkey, out, strlen(out));
    free(out);
    if (e == DDKV_ERR_TOO_LARGE) {
        snprintf(why, whylen, "the result is over the value limit: %s", ddkv_client_errmsg(c));
        return "refuse";
    }
    if (e == DDKV_ERR_FENCED || e == DDKV_ERR_NOT_FOUND) {
        snprintf(why, whylen, "another worker holds the job now, or it was cancelled or deleted; result discarded");
        return "fenced";
    }
    if (e != DDKV_OK) {
        snprintf(why, whylen, "ack: %s", ddkv_client_errmsg(c));
        return "unknown";
    }
    return "done";
}

void worker_loop(ddkv_client *c, const char *worker, const struct worker_opts *opt, volatile int *stop)
{
    uint64_t idle_ms = 200;
    while (!*stop) {
        struct ddkv_job_claim j;
        ddkv_err e = ddkv_job_claim(c, worker, opt->visibility_ms, &j);
        if (e != DDKV_OK) {
            /* Nothing waits (or the cluster is away): look again soon. */
            clock_sleep_ms(idle_ms);
            idle_ms = idle_ms * 2 > 2000 ? 2000 : idle_ms * 2;
            continue;
        }
        idle_ms = 200;
        char why[256];
        uint64_t t0 = clock_mono_ms();
        const char *what = work(c, worker, opt, &j, why, sizeof why);
        if (!strcmp(what, "refuse") || !strcmp(what, "retry")) {
            char *state = NULL;
            ddkv_job_nack(c, j.id, j.token, why, &state);
            fprintf(stderr, "ddkv agent: job %s refused (%s): now %s\n", j.id, why, state ? state : "?");
            ddkv_free(state);
        } else {
            fprintf(stderr, "ddkv agent: job %s %s in %" PRIu64 " ms%s%s\n", j.id, what, clock_mono_ms() - t0,
                    why[0] ? ": " : "", why);
        }
        ddkv_job_claim_free(&j);
    }
}
