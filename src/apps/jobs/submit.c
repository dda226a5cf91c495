#include "jobs/submit.h"

#include <errno.h>
#include <inttypes.h>
#include <stdbool.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "util/clock.h"
#include "util/text.h"

/* name as the job record may hold it (src/core/node/mod/jobs.c: UTF-8 without
 * control characters, under 128 bytes): any other byte becomes '?', and a
 * longer name is cut at a character boundary. A file may be named anything. */
static void job_name_clean(const char *in, char *out, size_t cap)
{
    size_t o = 0, n = strlen(in);
    for (size_t i = 0; i < n;) {
        unsigned char b = (unsigned char)in[i];
        size_t len = b < 0x80 ? 1 : b >= 0xf0 ? 4 : b >= 0xe0 ? 3 : b >= 0xc2 ? 2 : 0;
        bool ok = len && n - i >= len && utf8_valid(in + i, len) && b >= 0x20 && b != 0x7f &&
                  !(b == 0xc2 && (unsigned char)in[i + 1] < 0xa0);
        if (!ok)
            len = 1;
        if (o + len >= cap)
            break;
        if (ok)
            memcpy(out + o, in + i, len);
        else
            out[o] = '?';
        o += len;
        i += len;
    }
    out[o] = 0;
}

ddkv_err job_submit(ddkv_client *c, const char *name, const char *algorithm, uint32_t max_attempts,
                    job_reader r, void *rctx, struct job_submitted *out, char *err, size_t errlen)
{
    return job_submit_at(c, name, algorithm, NULL, max_attempts, r, rctx, out, err, errlen);
}

ddkv_err job_submit_at(ddkv_client *c, const char *name, const char *algorithm, const char *priority,
                       uint32_t max_attempts, job_reader r, void *rctx, struct job_submitted *out, char *err,
                       size_t errlen)
{
    char clean[128];
    job_name_clean(name ? name : "", clean, sizeof clean);
    name = clean;
    memset(out, 0, sizeof *out);
    uint64_t rnd = 0;
    if (getrandom(&rnd, sizeof rnd, 0) != (ssize_t)sizeof rnd)
        rnd = 0;
    rnd ^= clock_mono_ns();
    snprintf(out->prefix, sizeof out->prefix, "jobdata/%016" PRIx64 "/", rnd);
    uint8_t *buf = malloc(JOB_CHUNK_BYTES);
    if (!buf) {
        snprintf(err, errlen, "out of memory");
        return DDKV_ERR_NOMEM;
    }
    ddkv_err e = DDKV_OK;
    for (;;) {
        /* Fill a whole chunk (a reader may return less). */
        size_t have = 0;
        long n = 0;
        while (have < JOB_CHUNK_BYTES && (n = r(rctx, buf + have, JOB_CHUNK_BYTES - have)) > 0)
            have += (size_t)n;
        if (n < 0) {
            snprintf(err, errlen, "reading the input: %s", strerror(errno));
            e = DDKV_ERR_USAGE;
            break;
        }
        if (have == 0)
            break;
        char key[96];
        snprintf(key, sizeof key, "%sc/%06" PRIu64, out->prefix, out->chunks);
        struct ddkv_write_result wr;
        if ((e = ddkv_write(c, key, strlen(key), buf, have, 0, &wr)) != DDKV_OK) {
            snprintf(err, errlen, "storing %s: %s", key, ddkv_client_errmsg(c));
            break;
        }
        out->size += have;
        out->chunks++;
        if (n == 0)
            break;
    }
    free(buf);
    if (e != DDKV_OK)
        return e;
    json_t *meta = json_pack("{s:s, s:I, s:I, s:I, s:s}", "name", name ? name : "", "size", (json_int_t)out->size,
                             "chunks", (json_int_t)out->chunks, "chunk_bytes", (json_int_t)JOB_CHUNK_BYTES,
                             "algorithm", algorithm ? algorithm : "stats");
    char *ms = meta ? json_dumps(meta, JSON_COMPACT | JSON_SORT_KEYS) : NULL;
    json_decref(meta);
    if (!ms) {
        snprintf(err, errlen, "out of memory");
        return DDKV_ERR_NOMEM;
    }
    char key[96];
    snprintf(key, sizeof key, "%smeta", out->prefix);
    struct ddkv_write_result wr;
    e = ddkv_write(c, key, strlen(key), ms, strlen(ms), 0, &wr);
    free(ms);
    if (e != DDKV_OK) {
        snprintf(err, errlen, "storing %s: %s", key, ddkv_client_errmsg(c));
        return e;
    }
    char *id = NULL;
    if ((e = ddkv_job_put_priority(c, out->prefix, name, max_attempts, priority, &id)) != DDKV_OK) {
        snprintf(err, errlen, "queueing the job: %s", ddkv_client_errmsg(c));
        return e;
    }
    snprintf(out->id, sizeof out->id, "%s", id);
    ddkv_free(id);
    return DDKV_OK;
}

ddkv_err job_delete(ddkv_client *c, const char *id, bool result_only, char *err, size_t errlen)
{
    if (!id[0] || strlen(id) >= 64 || strspn(id, "0123456789abcdef-") != strlen(id)) {
        snprintf(err, errlen, "'%.64s' is not a job id", id);
        return DDKV_ERR_USAGE;
    }
    ddkv_err rc;
    if (result_only) {
        if ((rc = ddkv_job_cancel(c, id, DDKV_JOB_DELETE_RESULT, NULL)) != DDKV_OK)
            snprintf(err, errlen, "%s", ddkv_client_errmsg(c));
        return rc;
    }
    char key[80];
    snprintf(key, sizeof key, "jobs/%s", id);
    struct ddkv_value v;
    rc = ddkv_read(c, key, strlen(key), DDKV_CONSISTENCY_LINEARIZABLE, 0, &v);
    if (rc != DDKV_OK) {
        snprintf(err, errlen, "%s", rc == DDKV_ERR_NOT_FOUND ? "no such job" : ddkv_client_errmsg(c));
        return rc;
    }
    /* The input: a prefix under jobdata/ that job_submit made for this job
     * alone. Anything else the record names is left alone. */
    json_error_t je;
    json_t *o = json_loadb(v.value, v.len, 0, &je);
    ddkv_free(v.value);
    const char *data = json_string_value(json_object_get(o, "data"));
    if (data && !strncmp(data, "jobdata/", 8) && strlen(data) > 8 && data[strlen(data) - 1] == '/') {
        uint64_t deleted;
        struct ddkv_write_result wr;
        rc = ddkv_delete_prefix(c, data, strlen(data), &deleted, &wr);
        if (rc == DDKV_ERR_BAD_REQUEST) {
            /* A cluster before 0.2.0: one key at a time. */
            struct ddkv_list l;
            rc = ddkv_list_all(c, data, strlen(data), 0, &l);
            for (size_t i = 0; rc == DDKV_OK && i < l.n; i++)
                rc = ddkv_delete(c, l.entries[i].key, l.entries[i].key_len, &wr);
            if (rc == DDKV_ERR_NOT_FOUND)
                rc = DDKV_OK;
            ddkv_list_free(&l);
        }
    }
    json_decref(o);
    if (rc == DDKV_OK)
        rc = ddkv_job_cancel(c, id, DDKV_JOB_DELETE, NULL);
    if (rc != DDKV_OK)
        snprintf(err, errlen, "%s", ddkv_client_errmsg(c));
    return rc;
}
