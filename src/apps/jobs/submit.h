/* Storing a job's input file in the cluster and queueing the job: shared by
 * `ddkv job submit` and the hub's POST /api/jobs.
 *
 * Values are bounded (1 MiB by default), so a file is stored in chunks:
 *   jobdata/<16 hex>/meta        {"name","size","chunks","chunk_bytes","algorithm"}
 *   jobdata/<16 hex>/c/<000000>  the bytes, in order, JOB_CHUNK_BYTES each
 * and the job's data key is the prefix jobdata/<16 hex>/. */
#ifndef DDKV_JOBS_SUBMIT_H
#define DDKV_JOBS_SUBMIT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ddkv/ddkv.h"

#define JOB_CHUNK_BYTES (512u * 1024)

/* Reads up to cap bytes into buf; returns how many (0 at the end), or -1 on
 * an error (errno set). */
typedef long (*job_reader)(void *ctx, uint8_t *buf, size_t cap);

struct job_submitted {
    char id[64];
    char prefix[64];
    uint64_t size, chunks;
};

/* Store everything read from r under a fresh prefix, then queue a job for
 * it. name (a file's name: any bytes) is kept with '?' for what is not UTF-8
 * text, cut under 128 bytes. On failure returns the libddkv error (DDKV_ERR_USAGE for a read error)
 * with a message in err; chunks already stored are left (they are small
 * garbage without a job; a later cleaner may remove jobdata/ without jobs). */
ddkv_err job_submit(ddkv_client *c, const char *name, const char *algorithm, uint32_t max_attempts,
                    job_reader r, void *rctx, struct job_submitted *out, char *err, size_t errlen);

/* job_submit at a priority ("high", "normal", "low"; NULL: normal). */
ddkv_err job_submit_at(ddkv_client *c, const char *name, const char *algorithm, const char *priority,
                       uint32_t max_attempts, job_reader r, void *rctx, struct job_submitted *out, char *err,
                       size_t errlen);

/* Delete job id with its input (the jobdata/ prefix its record names, a
 * prefix job_submit made for it alone: deleted first) and its result; with
 * result_only, only its result. A running job's worker is fenced. On
 * failure, the libddkv error with a message in err. */
ddkv_err job_delete(ddkv_client *c, const char *id, bool result_only, char *err, size_t errlen);

#endif
