/* The log syncer: one thread that makes the Raft log durable while the event
 * loop goes on.
 *
 * The driver writes a ready batch's entries and hard state unsynced (memtable
 * and WAL in the page cache, microseconds), hands the fsync to this thread
 * and keeps serving: it reads acks and new requests, steps and proposes into
 * the core, and applies entries already durable. When the sync is done the
 * thread wakes the loop (an eventfd), and the driver finishes the batch and
 * advances the core. At most one sync is in flight (the core gives no new
 * ready before the advance), so everything that waits for the next one
 * gathers into it: group commit without a timer. */
#ifndef DDKV_NODE_LOGSYNC_H
#define DDKV_NODE_LOGSYNC_H

#include <stdbool.h>
#include <stdint.h>

#include "util/err.h"

struct event_base;
struct store;
struct logsync;

/* A thread syncing s; its completions wake base. */
int logsync_start(struct event_base *base, struct store *s, struct logsync **out, struct errbuf *eb);
/* Waits for a sync in flight, then stops the thread. NULL is fine. */
void logsync_stop(struct logsync *ls);

/* Start syncing everything written to the store so far. One at a time. */
void logsync_submit(struct logsync *ls);
/* True when no sync is in flight or the last one has finished; *rc (and eb)
 * say how it went, *ns how long it took. Consumes the completion. */
bool logsync_poll(struct logsync *ls, int *rc, uint64_t *ns, struct errbuf *eb);
/* Block until the sync in flight (if any) has finished; then as logsync_poll. */
void logsync_wait(struct logsync *ls, int *rc, uint64_t *ns, struct errbuf *eb);

#endif
