/* The agent's named series (issue 23 item 3): a registry of the series this
 * agent reports (name, unit, interval), an outbox of points, the sender that
 * writes them to the cluster (key layout in series.h) and the threads that
 * feed it (the built-in sources every --interval-ms, one thread per command
 * source at its own interval, so a slow command delays only itself).
 *
 * The sender writes every point it has in transactions of up to
 * DDKV_TXN_MAX keys: the raw points; when a series' point starts a new
 * minute, the rollup of the minute before (counted in memory as points go
 * out); and each series' meta once per retention lease (a new lease every
 * minute, ttl the series' retention plus a minute: --retention-s, or the
 * first --retention rule matching its name, retention.h; one lease per
 * retention in use). Points wait in the outbox
 * (AGENT_SERIES_OUTBOX, the oldest dropped past it) while the cluster is
 * unreachable and go out, in order, when it is back. */
#ifndef DDKV_AGENT_AGENT_SERIES_H
#define DDKV_AGENT_AGENT_SERIES_H

#include "agent/agent.h"

#define AGENT_SERIES_MAX 256        /* series one agent reports; more are dropped (said once) */
#define AGENT_SERIES_OUTBOX 65536   /* points waiting for the cluster */
#define AGENT_SOURCES_MAX 16        /* --source flags */

struct agent_series;

/* Start the threads. name: the agent's (client id). Returns NULL with the
 * reason printed (a bad --source: *usage set) or on out of memory. */
struct agent_series *agent_series_start(const struct agent_config *cfg, const char *name, volatile int *stop,
                                        bool *usage);
/* Join the threads (after *stop became nonzero) and free everything. */
void agent_series_stop(struct agent_series *as);

#endif
