/* Subcommands of the one ddkv binary, as data.
 *
 * main.c looks a subcommand up in the tables, builds its options (the global
 * client flags when it talks to a cluster, then its own), parses and resolves
 * them, checks the positional count and calls run. A later feature adds a row
 * to a table (and an options table), not a case to a switch. */
#ifndef DDKV_CLI_COMMANDS_H
#define DDKV_CLI_COMMANDS_H

#include <stddef.h>

#include "cli/opts.h"
#include "cli/output.h"
#include "ddkv/ddkv.h"

struct cli_command;

struct cli_ctx {
    const struct cli_command *cmd;
    struct opts *opts;
    enum out_format fmt;         /* -o; text for non-client commands */
    struct ddkv_options client;  /* from --endpoints and --timeout-ms (client commands) */
};

enum cli_command_flag {
    CMD_CLIENT = 1 << 0, /* talks to a cluster: takes --endpoints, --timeout-ms, -o */
    CMD_HIDDEN = 1 << 1, /* tooling (man page sections): not in help, completion or the man page */
};

struct cli_command {
    const char *name;
    const char *args;    /* positional arguments for the usage line: "KEY VALUE|-" */
    const char *summary; /* one line for ddkv --help */
    const struct opt_def *opts;
    size_t nopts;
    unsigned flags;      /* enum cli_command_flag */
    unsigned min_args, max_args;
    const char *config_opt; /* option naming a key = value config file, or NULL */
    /* Returns the process exit code. NULL: the SPEC names the command but this
     * version does not have it. */
    int (*run)(struct cli_ctx *ctx);
};

/* More for `ddkv read --help` and `ddkv list --help`, after the summary: how
 * their text output escapes user data (cmd_kv.c). */
extern const char cmd_kv_read_help[], cmd_kv_list_help[];

/* A client from the command's --endpoints/--timeout-ms: EXIT_DONE, or the
 * exit code after printing why not. */
int cli_client(struct cli_ctx *ctx, ddkv_client **c);
/* Report a failed call ("ddkv: WHAT 'KEY': detail") and return its exit code. */
int cli_fail(ddkv_client *c, ddkv_err rc, const char *what, const void *key, size_t klen);

/* ping, read, write, delete, list, status, members (cmd_kv.c). */
extern const struct cli_command cmd_kv_commands[];
extern const size_t cmd_kv_count;

/* cas, lease, watch (cmd_coord.c). */
extern const struct cli_command cmd_coord_commands[];
extern const size_t cmd_coord_count;

/* bench (cmd_bench.c). */
extern const struct cli_command cmd_bench_commands[];
extern const size_t cmd_bench_count;

/* job submit|list|get (cmd_job.c). */
extern const struct cli_command cmd_job_commands[];
extern const size_t cmd_job_count;

/* metric push (cmd_metric.c). */
extern const struct cli_command cmd_metric_commands[];
extern const size_t cmd_metric_count;

/* agent (cmd_agent.c). */
extern const struct cli_command cmd_agent_commands[];
extern const size_t cmd_agent_count;

/* hub (cmd_hub.c). */
extern const struct cli_command cmd_hub_commands[];
extern const size_t cmd_hub_count;

/* snapshot save|restore (cmd_snapshot.c). */
extern const struct cli_command cmd_snapshot_commands[];
extern const size_t cmd_snapshot_count;
/* auth, user, role (cmd_auth.c). */
extern const struct cli_command cmd_auth_commands[];
extern const size_t cmd_auth_count;

/* completion, __doc (cmd_doc.c): documents generated from these tables. */
extern const struct cli_command cmd_doc_commands[];
extern const size_t cmd_doc_count;

/* Every command in help order: the i-th, or NULL past the last (main.c). */
const struct cli_command *cli_command_at(size_t i);
/* The global flags of client commands (main.c). */
extern const struct opt_def *const cli_global_opts;
extern const size_t cli_global_nopts;

/* A TTL in seconds, whole or with up to 3 decimals ("30", "0.5"), above 0 and
 * at most a year, into milliseconds. Returns 0, or -1 if s is not one. */
int coord_parse_seconds(const char *s, uint64_t *ms);

#endif
