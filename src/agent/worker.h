/* The job worker of `ddkv agent --worker` (worker.c). */
#ifndef DDKV_AGENT_WORKER_H
#define DDKV_AGENT_WORKER_H

#include "ddkv/ddkv.h"

/* Claim and process jobs until *stop becomes nonzero. c is this thread's own. */
void worker_loop(ddkv_client *c, const char *worker, volatile int *stop);

#endif
