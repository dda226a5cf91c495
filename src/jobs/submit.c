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

/* name as the job record may hold it (src/node/mod_jobs.c: UTF-8 without
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
    if ((e = ddkv_job_put(c, out->prefix, name, max_attempts, &id)) != DDKV_OK) {
        snprintf(err, errlen, "queueing the job: %s", ddkv_client_errmsg(c));
        return e;
    }
    snprintf(out->id, sizeof out->id, "%s", id);
    ddkv_free(id);
    return DDKV_OK;
}
