/* ddkv agent: reports one machine to the cluster, for the dashboard hub.
 *
 * What it keeps in the cluster (all ordinary keys, so the hub needs nothing
 * but reads and watches, and holds no state of its own):
 *   clients/<name>                 the machine's static data (host_info JSON,
 *                                  plus name, interval_ms, started_ms, worker)
 *                                  under a presence lease (--presence-ttl-s,
 *                                  kept alive every third of it): when the
 *                                  agent dies the key goes, and the machine
 *                                  leaves the hub's list
 *   metrics/<name>/<ts, 13 digits> one sample (sample_to_json), under a
 *                                  retention lease shared by a minute of
 *                                  samples whose ttl is --retention-s plus
 *                                  that minute: old points expire by themselves
 *   req/<name>/<id>                a request from a hub: {"kind":"now"} or
 *                                  {"kind":"history","minutes":N}
 *   resp/<name>/<id>               the answer ({"kind","sample"} or
 *                                  {"kind","samples":[...]}), under a 60 s
 *                                  lease; the request key is then deleted
 * Sampling never waits for the cluster: samples go into a local ring (the
 * last hour, for history requests) and a bounded backlog that a sender thread
 * drains into the cluster; while the cluster is unreachable the backlog fills
 * (the oldest dropped past its capacity, and counted) and is flushed, in
 * order, when it comes back. A presence lease that expired during an outage
 * is granted anew and the machine announced again.
 * With --worker the agent is also a job worker (jobs/worker.c). */
#ifndef DDKV_AGENT_AGENT_H
#define DDKV_AGENT_AGENT_H

#include <stdbool.h>
#include <stdint.h>

#include "ddkv/ddkv.h"

struct agent_config {
    const char *endpoints;
    const char *name;          /* default: the host name */
    const char *root;          /* where /proc and /etc are ("/"; tests use a fake tree) */
    const char *disks;         /* comma-separated mount points ("/") */
    uint32_t interval_ms;      /* sampling period (1000) */
    uint32_t retention_s;      /* how long metric points live (3600) */
    uint32_t presence_ttl_s;   /* the presence lease (10) */
    uint32_t backlog;          /* samples kept while the cluster is unreachable (3600) */
    uint32_t timeout_ms;       /* per cluster operation (3000) */
    const char *sources;       /* --source NAME=COMMAND[@MS] specs, '\n'-separated (agent_series.h) */
    const char *retention;     /* --retention PATTERN=SECONDS specs, '\n'-separated (retention.h) */
    bool worker;               /* also process jobs */
    uint32_t claim_ttl_ms;     /* a worker's claim (30000) */
    uint32_t worker_threads;   /* jobs processed at once, each on its own thread (1) */
    int worker_nice;           /* the worker threads' nice value, 0..19 (10): a CPU share below the sampler's */
    uint32_t job_memory_mb;    /* per job (0: the parser's defaults); a bigger file is refused */
    /* Everything else about reaching the cluster (TLS, credentials): the
     * CLI's client options as given; endpoints and timeout_ms above win. */
    struct ddkv_options cluster;
};

void agent_config_defaults(struct agent_config *cfg);

/* Run until *stop becomes nonzero (a signal handler sets it). Returns 0, or
 * 2 for a bad configuration (the message printed to stderr). */
int agent_run(const struct agent_config *cfg, volatile int *stop);

#endif
