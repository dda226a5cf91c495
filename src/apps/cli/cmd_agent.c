/* ddkv agent: report this machine to the cluster (src/apps/agent/agent.h). */
#include <signal.h>
#include <stdio.h>
#include <string.h>

#include "agent/agent.h"
#include "cli/commands.h"

static volatile int agent_stop;

static void agent_on_signal(int sig)
{
    (void)sig;
    agent_stop = 1;
}

static const struct opt_def agent_opts[] = {
    {"name", 0, OPT_ARG, NULL, "NAME", "how the hub lists this machine (default: the host name)"},
    {"interval-ms", 0, OPT_ARG, "1000", "MS", "sampling period"},
    {"retention-s", 0, OPT_ARG, "3600", "S", "how long metric points and series live in the cluster (see --retention)"},
    {"presence-ttl-s", 0, OPT_ARG, "10", "S", "the machine leaves the hub's list this long after the agent dies"},
    {"backlog", 0, OPT_ARG, "3600", "N", "samples kept while the cluster is unreachable (then flushed)"},
    {"disks", 0, OPT_ARG, "/", "MOUNTS", "comma-separated mount points to report"},
    {"root", 0, OPT_ARG, "/", "DIR", "where /proc and /etc are (for containers watching their host)"},
    {"source", 0, OPT_ARG | OPT_MULTI, NULL, "NAME=COMMAND[@MS]",
     "a series from a program run every MS (default --interval-ms): each output line VALUE [UNIT] (series NAME) or SERIES VALUE [UNIT] (series NAME.SERIES); "
     "may be given up to 16 times"},
    {"retention", 0, OPT_ARG | OPT_MULTI, NULL, "PATTERN=S",
     "how long a series' points live, overriding --retention-s: PATTERN is a series name or a prefix ending in * "
     "(disk.*, or * for all); the first matching flag wins; up to 32 times"},
    {"worker", 0, 0, NULL, NULL, "also claim and process jobs"},
    {"claim-ttl-ms", 0, OPT_ARG, "30000", "MS",
     "a worker's claim on a job: if the worker dies, the job goes back to the queue this long after"},
    {"worker-threads", 0, OPT_ARG, "1", "N", "jobs processed at once (1..64), each on its own thread"},
    {"worker-nice", 0, OPT_ARG, "10", "N", "the worker threads' nice value (0..19): their CPU share"},
    {"job-memory-mb", 0, OPT_ARG, "0", "N", "memory per job (0: no cap); a bigger file is refused"},
};

static int agent_cmd(struct cli_ctx *ctx)
{
    struct agent_config cfg;
    agent_config_defaults(&cfg);
    struct opts *o = ctx->opts;
    uint32_t nice = 10;
    if (opts_get_u32(o, "interval-ms", 100, 3600000, &cfg.interval_ms) != 0 ||
        opts_get_u32(o, "retention-s", 10, 86400 * 30, &cfg.retention_s) != 0 ||
        opts_get_u32(o, "presence-ttl-s", 1, 3600, &cfg.presence_ttl_s) != 0 ||
        opts_get_u32(o, "backlog", 1, 10000000, &cfg.backlog) != 0 ||
        opts_get_u32(o, "claim-ttl-ms", 300, 86400000, &cfg.claim_ttl_ms) != 0 ||
        opts_get_u32(o, "worker-threads", 1, 64, &cfg.worker_threads) != 0 ||
        opts_get_u32(o, "worker-nice", 0, 19, &nice) != 0 ||
        opts_get_u32(o, "job-memory-mb", 0, 1u << 20, &cfg.job_memory_mb) != 0) {
        out_error("agent: %s", o->err);
        return EXIT_USAGE;
    }
    cfg.name = opts_get(o, "name");
    cfg.disks = opts_get(o, "disks");
    cfg.root = opts_get(o, "root");
    cfg.worker = opts_is_set(o, "worker");
    cfg.worker_nice = (int)nice;
    cfg.sources = opts_get(o, "source");
    cfg.retention = opts_get(o, "retention");
    cfg.endpoints = ctx->client.endpoints ? ctx->client.endpoints : "127.0.0.1:7001";
    cfg.timeout_ms = ctx->client.timeout_ms ? ctx->client.timeout_ms : 3000;
    cfg.cluster = ctx->client; /* TLS and credentials */
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = agent_on_signal;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
    int rc = agent_run(&cfg, &agent_stop);
    return rc == 2 ? EXIT_USAGE : rc ? EXIT_UNAVAILABLE : EXIT_DONE;
}

const struct cli_command cmd_agent_commands[] = {
    {"agent", "", "report this machine's CPU, memory and disks to the cluster (and, with --worker, run jobs)",
     agent_opts, sizeof agent_opts / sizeof agent_opts[0], CMD_CLIENT, 0, 0, NULL, agent_cmd},
};

const size_t cmd_agent_count = sizeof cmd_agent_commands / sizeof cmd_agent_commands[0];
