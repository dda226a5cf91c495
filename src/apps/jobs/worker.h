/* The job worker of `ddkv agent --worker` (worker.c). */
#ifndef DDKV_JOBS_WORKER_H
#define DDKV_JOBS_WORKER_H

#include <stdint.h>

#include "ddkv/ddkv.h"

struct worker_opts {
    uint64_t visibility_ms;  /* a claim's lease; extended every third of it while working */
    uint64_t chunk_delay_ms; /* test hook (env DDKV_WORKER_CHUNK_DELAY_MS): a pause per input chunk, to
                                catch a worker mid-job */
    uint64_t progress_ms;    /* how often progress is reported (with an extend); 0: 1000 */
    uint64_t job_memory;     /* bytes one job may hold (0: the parser's defaults); a bigger file is refused */
    const struct ddkv_options *watch; /* how to open the watch that learns of a cancel (NULL: none) */
};

/* Claim and process jobs until *stop becomes nonzero. c is this thread's own. */
void worker_loop(ddkv_client *c, const char *worker, const struct worker_opts *opt, volatile int *stop);

#endif
