/* The ddkv binary's entry point: the subcommand tables, global flags, dispatch, and the serve command. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/commands.h"
#include "node/node.h"
#include "util/build_info.h"

#define MAIN_OPTS(t) (t), sizeof(t) / sizeof((t)[0])

/* Flags of every command that talks to a cluster, accepted before or after the
 * command name ("ddkv --endpoints h:p write k v" and "ddkv write k v --endpoints h:p"). */
static const struct opt_def main_client_opts[] = {
    {"endpoints", 0, OPT_ARG, DDKV_DEFAULT_ENDPOINTS, "HOST:PORT[,...]", "nodes to talk to"},
    {"timeout-ms", 0, OPT_ARG, "5000", "MS",
     "deadline of each operation, retries included"},
    {"output", 'o', OPT_ARG, "text", "FORMAT", "text | json (one JSON object per result line)"},
    {"tls-ca", 0, OPT_ARG, NULL, "FILE", "speak TLS; the nodes' certificates must chain to this CA (PEM)"},
    {"tls-cert", 0, OPT_ARG, NULL, "FILE", "with --tls-ca: this client's certificate (PEM), for nodes that ask"},
    {"tls-key", 0, OPT_ARG, NULL, "FILE", "the key of --tls-cert (PEM)"},
    {"tls-check-name", 0, OPT_ARG, "on", "on|off",
     "the node's certificate must name the endpoint's host (SAN IP or DNS entry)"},
    {"user", 0, OPT_ARG, NULL, "NAME", "authenticate as this user (clusters with auth enabled)"},
    {"password", 0, OPT_ARG, NULL, "PASSWORD",
     "the user's password (better DDKV_PASSWORD or --password-file: flags show in ps)"},
    {"password-file", 0, OPT_ARG, NULL, "FILE", "read the user's password from the first line of FILE"},
};

const struct opt_def *const cli_global_opts = main_client_opts;
const size_t cli_global_nopts = sizeof main_client_opts / sizeof main_client_opts[0];

static const char *const main_on_off[] = {"off", "on", NULL};

static const char *const main_output_names[] = {"text", "json", NULL};

/* --- serve --- */

/* Not const: the numeric defaults are filled from node_config_defaults() at
 * start-up, so `ddkv serve --help` shows exactly what node_run would use. */
static struct opt_def serve_opts[] = {
    {"name", 0, OPT_ARG, NULL, "NAME", "node name, in logs and status"},
    {"data-dir", 0, OPT_ARG | OPT_REQUIRED, NULL, "DIR", "where the node keeps its data (created if missing)"},
    {"client-addr", 0, OPT_ARG, NULL, "HOST:PORT", "client port (port 0: any free port, logged)"},
    {"http-addr", 0, OPT_ARG, NULL, "HOST:PORT", "ops HTTP port for /health, /status, /metrics (default: none)"},
    {"peer-addr", 0, OPT_ARG, NULL, "HOST:PORT", "peer port (default: this node's address in --cluster)"},
    {"listen-peer-addr", 0, OPT_ARG, NULL, "HOST:PORT",
     "bind the peer port here when peers reach it at another address (--peer-addr is then what they dial)"},
    {"cluster", 0, OPT_ARG, NULL, "N=HOST:PORT,...", "founding members and their peer addresses (default: one-node cluster)"},
    {"join", 0, 0, NULL, NULL, "an empty data dir waits to be added by 'ddkv members add' instead of founding"},
    {"cluster-token", 0, OPT_ARG, NULL, "TOKEN",
     "mixed into the cluster id at founding, so clusters founded apart never share one (like etcd's "
     "initial-cluster-token); give every member, and every restart, the same one. Members also "
     "prove it to each other on every peer connection (env DDKV_CLUSTER_TOKEN or the config file "
     "keep it off the command line)"},
    {"insecure-peers", 0, 0, NULL, NULL,
     "allow a plain peer port beyond loopback without a --cluster-token (anyone who reaches it "
     "can speak Raft to this node)"},
    {"max-frame-bytes", 0, OPT_ARG, NULL, "N", "largest frame accepted"},
    {"max-key-bytes", 0, OPT_ARG, NULL, "N", "largest key accepted"},
    {"max-value-bytes", 0, OPT_ARG, NULL, "N", "largest value accepted"},
    {"max-connections", 0, OPT_ARG, NULL, "N", "client connections served at once"},
    {"frame-timeout-ms", 0, OPT_ARG, NULL, "MS", "a frame that has begun arriving must complete within this"},
    {"heartbeat-ms", 0, OPT_ARG, NULL, "MS", "Raft heartbeat interval (one tick)"},
    {"election-timeout-ms", 0, OPT_ARG, NULL, "MS", "Raft election timeout (at least 2 heartbeats)"},
    {"snapshot-entries", 0, OPT_ARG, NULL, "N", "snapshot and compact the Raft log after N applied entries (and at least half the last image's bytes of log)"},
    {"watch-history-bytes", 0, OPT_ARG, NULL, "N", "bytes of recent changes kept for watchers to resume from"},
    {"log-level", 0, OPT_ARG, NULL, "LEVEL", "debug | info | warn | error"},
    {"tls-cert", 0, OPT_ARG, NULL, "FILE", "the node's certificate (PEM, chain allowed): the client port speaks TLS only"},
    {"tls-key", 0, OPT_ARG, NULL, "FILE", "the key of --tls-cert (PEM)"},
    {"tls-ca", 0, OPT_ARG, NULL, "FILE", "the cluster CA (PEM): peers' and clients' certificates must chain to it"},
    {"peer-tls", 0, OPT_ARG, NULL, "on|off", "mutual TLS between members (default: on with --tls-cert)"},
    {"http-tls-cert", 0, OPT_ARG, NULL, "FILE", "the ops HTTP port speaks HTTPS only, with this certificate (PEM; "
     "the node's --tls-cert will do)"},
    {"http-tls-key", 0, OPT_ARG, NULL, "FILE", "the key of --http-tls-cert (PEM)"},
    {"tls-client-cert", 0, OPT_ARG, NULL, "MODE",
     "none | optional | required: the client port's demand for client certificates "
     "(default: optional with --tls-ca, else none)"},
    {"auth-hash-iterations", 0, OPT_ARG, NULL, "N",
     "PBKDF2 iterations of new password hashes (each hash keeps its count; checked off the event loop)"},
    {"health-max-lag-entries", 0, OPT_ARG, NULL, "N",
     "a member is healthy only if it lacks at most N committed entries ..."},
    {"health-max-lag-ms", 0, OPT_ARG, NULL, "MS",
     "... and the oldest committed entry it lacks is at most MS old (/health, status, metrics)"},
    {"config", 0, OPT_ARG | OPT_NO_FILE, NULL, "FILE", "read 'name = value' lines (flag names, # comments)"},
    /* Connection limits (README "Connection limits"). */
    {"max-conns-per-addr", 0, OPT_ARG, NULL, "N", "client connections from one IP address"},
    {"idle-timeout-ms", 0, OPT_ARG, NULL, "MS",
     "close a client connection with nothing in flight (no request, no watch) after this; 0: never"},
    {"conn-output-bytes", 0, OPT_ARG, NULL, "N",
     "a connection's unsent replies over this: its requests wait unread (8x: it is closed)"},
    {"conn-inflight-max", 0, OPT_ARG, NULL, "N", "requests in flight per connection; more wait unread"},
    {"node-output-bytes", 0, OPT_ARG, NULL, "N",
     "all connections' unsent replies over this: only connections with nothing pending are read "
     "(2x: the one with the most is closed)"},
};

#define SERVE_NUM_COUNT 12
static char serve_dflt_num[SERVE_NUM_COUNT][16];

static struct opt_def *serve_opt(const char *name)
{
    for (size_t i = 0; i < sizeof serve_opts / sizeof serve_opts[0]; i++)
        if (strcmp(serve_opts[i].name, name) == 0)
            return &serve_opts[i];
    abort(); /* a name below that the table lacks: a bug caught by any test */
}

/* In enum log_level order (util/log.h). */
static const char *const serve_log_levels[] = {"debug", "info", "warn", "error", NULL};

static void serve_fill_defaults(void)
{
    struct node_config cfg;
    node_config_defaults(&cfg);
    static const char *const names[SERVE_NUM_COUNT] = {
        "max-frame-bytes", "max-key-bytes", "max-value-bytes", "max-connections", "frame-timeout-ms",
        "heartbeat-ms", "election-timeout-ms", "snapshot-entries", "watch-history-bytes", "auth-hash-iterations",
        "health-max-lag-entries", "health-max-lag-ms"};
    const uint32_t nums[SERVE_NUM_COUNT] = {cfg.max_frame_bytes, cfg.max_key_bytes, cfg.max_value_bytes,
                                            cfg.max_connections, cfg.frame_timeout_ms, cfg.heartbeat_ms,
                                            cfg.election_timeout_ms, cfg.snapshot_entries,
                                            cfg.watch_history_bytes, cfg.auth_hash_iterations,
                                            cfg.health_max_lag_entries, cfg.health_max_lag_ms};
    for (size_t i = 0; i < SERVE_NUM_COUNT; i++) {
        snprintf(serve_dflt_num[i], sizeof serve_dflt_num[i], "%u", (unsigned)nums[i]);
        serve_opt(names[i])->dflt = serve_dflt_num[i];
    }
    static const char *const limit_names[] = {"max-conns-per-addr", "idle-timeout-ms", "conn-output-bytes",
                                              "conn-inflight-max", "node-output-bytes"};
    const uint32_t limits[] = {cfg.max_conns_per_addr, cfg.idle_timeout_ms, cfg.conn_output_bytes,
                               cfg.conn_inflight_max, cfg.node_output_bytes};
    static char limit_dflt[sizeof limits / sizeof limits[0]][16];
    for (size_t i = 0; i < sizeof limits / sizeof limits[0]; i++) {
        snprintf(limit_dflt[i], sizeof limit_dflt[i], "%u", (unsigned)limits[i]);
        serve_opt(limit_names[i])->dflt = limit_dflt[i];
    }
    serve_opt("name")->dflt = cfg.name;
    serve_opt("client-addr")->dflt = cfg.client_addr;
    serve_opt("log-level")->dflt = cfg.log_level;
}

static int serve_run(struct cli_ctx *ctx)
{
    struct opts *o = ctx->opts;
    struct node_config cfg;
    node_config_defaults(&cfg);
    cfg.name = opts_get(o, "name");
    cfg.data_dir = opts_get(o, "data-dir");
    cfg.client_addr = opts_get(o, "client-addr");
    cfg.http_addr = opts_get(o, "http-addr");
    cfg.peer_addr = opts_get(o, "peer-addr");
    cfg.listen_peer_addr = opts_get(o, "listen-peer-addr");
    cfg.cluster = opts_get(o, "cluster");
    cfg.join = opts_is_set(o, "join");
    cfg.cluster_token = opts_get(o, "cluster-token");
    cfg.insecure_peers = opts_is_set(o, "insecure-peers");
    int level = -1, peer_tls = -1, client_cert = -1;
    static const char *const client_cert_modes[] = {"none", "optional", "required", NULL};
    if (opts_get_choice(o, "peer-tls", main_on_off, &peer_tls) != 0 ||
        opts_get_choice(o, "tls-client-cert", client_cert_modes, &client_cert) != 0) {
        out_error("serve: %s", o->err);
        return EXIT_USAGE;
    }
    if (peer_tls >= 0)
        cfg.peer_tls = peer_tls ? NODE_PEER_TLS_ON : NODE_PEER_TLS_OFF;
    if (client_cert >= 0)
        cfg.tls_client_cert = (enum node_client_cert)(NODE_CLIENT_CERT_NONE + client_cert);
    cfg.tls_cert = opts_get(o, "tls-cert");
    cfg.tls_key = opts_get(o, "tls-key");
    cfg.tls_ca = opts_get(o, "tls-ca");
    cfg.http_tls_cert = opts_get(o, "http-tls-cert");
    cfg.http_tls_key = opts_get(o, "http-tls-key");
    if (opts_get_u32(o, "max-frame-bytes", 1, UINT32_MAX, &cfg.max_frame_bytes) != 0 ||
        opts_get_u32(o, "max-key-bytes", 1, UINT32_MAX, &cfg.max_key_bytes) != 0 ||
        opts_get_u32(o, "max-value-bytes", 1, UINT32_MAX, &cfg.max_value_bytes) != 0 ||
        opts_get_u32(o, "max-connections", 1, UINT32_MAX, &cfg.max_connections) != 0 ||
        opts_get_u32(o, "frame-timeout-ms", 1, UINT32_MAX, &cfg.frame_timeout_ms) != 0 ||
        opts_get_u32(o, "heartbeat-ms", 1, 60000, &cfg.heartbeat_ms) != 0 ||
        opts_get_u32(o, "election-timeout-ms", 2, 600000, &cfg.election_timeout_ms) != 0 ||
        opts_get_u32(o, "snapshot-entries", 100, UINT32_MAX, &cfg.snapshot_entries) != 0 ||
        opts_get_u32(o, "watch-history-bytes", 1u << 20, UINT32_MAX, &cfg.watch_history_bytes) != 0 ||
        opts_get_u32(o, "auth-hash-iterations", 1000, 10000000, &cfg.auth_hash_iterations) != 0 ||
        opts_get_u32(o, "health-max-lag-entries", 0, UINT32_MAX, &cfg.health_max_lag_entries) != 0 ||
        opts_get_u32(o, "health-max-lag-ms", 0, UINT32_MAX, &cfg.health_max_lag_ms) != 0 ||
        opts_get_choice(o, "log-level", serve_log_levels, &level) != 0) {
        out_error("serve: %s", o->err);
        return EXIT_USAGE;
    }
    if (opts_get_u32(o, "max-conns-per-addr", 1, UINT32_MAX, &cfg.max_conns_per_addr) != 0 ||
        opts_get_u32(o, "idle-timeout-ms", 0, UINT32_MAX, &cfg.idle_timeout_ms) != 0 ||
        opts_get_u32(o, "conn-output-bytes", 64u << 10, 1u << 30, &cfg.conn_output_bytes) != 0 ||
        opts_get_u32(o, "conn-inflight-max", 1, 1u << 20, &cfg.conn_inflight_max) != 0 ||
        opts_get_u32(o, "node-output-bytes", 1u << 20, 2047u << 20, &cfg.node_output_bytes) != 0) {
        out_error("serve: %s", o->err);
        return EXIT_USAGE;
    }
    if (!cfg.name || !*cfg.name) {
        out_error("serve: --name must not be empty");
        return EXIT_USAGE;
    }
    if (!*cfg.data_dir) {
        out_error("serve: --data-dir must not be empty");
        return EXIT_USAGE;
    }
    if (cfg.http_addr && !*cfg.http_addr)
        cfg.http_addr = NULL;
    if (cfg.peer_addr && !*cfg.peer_addr)
        cfg.peer_addr = NULL;
    if (cfg.listen_peer_addr && !*cfg.listen_peer_addr)
        cfg.listen_peer_addr = NULL;
    if (cfg.cluster && !*cfg.cluster)
        cfg.cluster = NULL;
    if (cfg.cluster_token && !*cfg.cluster_token)
        cfg.cluster_token = NULL;
    if (level >= 0)
        cfg.log_level = serve_log_levels[level];
    return node_run(&cfg);
}

/* --- the tables --- */

static const struct cli_command main_commands[] = {
    {"serve", "", "run a node (one-node cluster without --cluster)", MAIN_OPTS(serve_opts), 0, 0, 0,
     "config", serve_run},
};

struct main_table {
    const struct cli_command *cmds;
    const size_t *n;
};

static const size_t main_commands_n = sizeof main_commands / sizeof main_commands[0];

static const struct main_table main_tables[] = {
    {main_commands, &main_commands_n},
    {cmd_kv_commands, &cmd_kv_count},
    {cmd_coord_commands, &cmd_coord_count},
    {cmd_bench_commands, &cmd_bench_count},
    {cmd_job_commands, &cmd_job_count},
    {cmd_agent_commands, &cmd_agent_count},
    {cmd_metric_commands, &cmd_metric_count},
    {cmd_hub_commands, &cmd_hub_count},
    {cmd_snapshot_commands, &cmd_snapshot_count},
    {cmd_auth_commands, &cmd_auth_count},
    {cmd_doc_commands, &cmd_doc_count},
};

const struct cli_command *cli_command_at(size_t i)
{
    for (size_t t = 0; t < sizeof main_tables / sizeof main_tables[0]; t++) {
        if (i < *main_tables[t].n)
            return &main_tables[t].cmds[i];
        i -= *main_tables[t].n;
    }
    return NULL;
}

static const struct cli_command *main_find(const char *name)
{
    for (size_t t = 0; t < sizeof main_tables / sizeof main_tables[0]; t++)
        for (size_t i = 0; i < *main_tables[t].n; i++)
            if (strcmp(main_tables[t].cmds[i].name, name) == 0)
                return &main_tables[t].cmds[i];
    return NULL;
}

/* --- help --- */

static void main_help(FILE *f)
{
    fprintf(f, "usage: ddkv [global options] COMMAND [ARGS] [options]\n\n"
               "ddkv %s: a replicated key-value service.\n\nCommands:\n",
            version_string());
    for (size_t t = 0; t < sizeof main_tables / sizeof main_tables[0]; t++)
        for (size_t i = 0; i < *main_tables[t].n; i++) {
            const struct cli_command *c = &main_tables[t].cmds[i];
            if (c->flags & CMD_HIDDEN)
                continue;
            fprintf(f, "  %-9s %s%s\n", c->name, c->summary,
                    c->run ? "" : " (not available in this version)");
        }
    fprintf(f, "\nGlobal options (commands that talk to a cluster; before or after COMMAND):\n");
    opts_print_help(f, MAIN_OPTS(main_client_opts));
    fprintf(f, "\nEvery option can also be set in the environment as DDKV_<OPTION> (upper case,\n"
               "'-' as '_'); a flag beats the environment, which beats serve's --config file.\n"
               "Run 'ddkv COMMAND --help' for a command's options; 'ddkv --version' for the version.\n\n"
               "Exit codes: 0 success, 1 the answer is no (not found, cas lost, history compacted),\n"
               "2 usage or bad input (permission denied included: wrong credentials or a request\n"
               "the user may not make), 3 cluster unreachable,\n"
               "unavailable or timed out (for a write the message then says its outcome is unknown).\n");
}

static void main_command_usage(FILE *f, const struct cli_command *c)
{
    fprintf(f, "usage: ddkv %s%s%s [options]\n", c->name, *c->args ? " " : "", c->args);
}

static void main_command_help(FILE *f, const struct cli_command *c)
{
    main_command_usage(f, c);
    fprintf(f, "\n%s\n", c->summary);
    if (strcmp(c->name, "read") == 0 || strcmp(c->name, "list") == 0)
        fprintf(f, "\n%s", strcmp(c->name, "read") == 0 ? cmd_kv_read_help : cmd_kv_list_help);
    if (c->nopts) {
        fprintf(f, "\nOptions:\n");
        opts_print_help(f, c->opts, c->nopts);
    }
    if (c->flags & CMD_CLIENT) {
        fprintf(f, "\nGlobal options:\n");
        opts_print_help(f, MAIN_OPTS(main_client_opts));
    }
}

/* A usage error: the message, then how to get help; exit 2. */
static int main_usage_error(const struct cli_command *c, const char *msg)
{
    out_error("%s", msg);
    if (c) {
        main_command_usage(stderr, c);
        fprintf(stderr, "Run 'ddkv %s --help' for its options.\n", c->name);
    } else {
        fprintf(stderr, "usage: ddkv [global options] COMMAND [ARGS] [options]\n"
                        "Run 'ddkv --help' for the commands.\n");
    }
    return EXIT_USAGE;
}

/* --- dispatch --- */

/* The password of --user: --password, or the first line of --password-file
 * (without its line end). Lives as long as the process. */
static char main_password[DDKV_AUTH_PASSWORD_MAX + 2];

static int main_password_file(struct cli_ctx *ctx, const char *path)
{
    FILE *f = fopen(path, "r");
    if (!f) {
        char msg[300];
        snprintf(msg, sizeof msg, "--password-file %.200s: cannot read it", path);
        return main_usage_error(ctx->cmd, msg);
    }
    bool got = fgets(main_password, sizeof main_password, f) != NULL;
    fclose(f);
    main_password[got ? strcspn(main_password, "\r\n") : 0] = 0;
    if (!main_password[0] || strlen(main_password) > DDKV_AUTH_PASSWORD_MAX)
        return main_usage_error(ctx->cmd, "--password-file: the first line must hold the password (1..1024 bytes)");
    return EXIT_DONE;
}

/* --user with --password or --password-file (or their DDKV_ variables). */
static int main_credentials(struct cli_ctx *ctx)
{
    const char *user = opts_get(ctx->opts, "user"), *pw = opts_get(ctx->opts, "password");
    const char *file = opts_get(ctx->opts, "password-file");
    if (user && !*user)
        user = NULL;
    if (!user) {
        if (pw || file)
            return main_usage_error(ctx->cmd, "--password and --password-file need --user (or DDKV_USER)");
        return EXIT_DONE;
    }
    if (pw && file)
        return main_usage_error(ctx->cmd, "give either --password or --password-file, not both");
    if (!pw && !file)
        return main_usage_error(ctx->cmd, "--user needs a password: --password, DDKV_PASSWORD or --password-file");
    if (file) {
        int rc = main_password_file(ctx, file);
        if (rc != EXIT_DONE)
            return rc;
        pw = main_password;
    }
    ctx->client.user = user;
    ctx->client.password = pw;
    return EXIT_DONE;
}

/* Client commands: --endpoints, --timeout-ms, -o and credentials into ctx. */
static int main_client_ctx(struct cli_ctx *ctx)
{
    int fmt = OUT_TEXT;
    ddkv_options_init(&ctx->client);
    ctx->client.endpoints = opts_get(ctx->opts, "endpoints");
    if (opts_get_u32(ctx->opts, "timeout-ms", 1, UINT32_MAX, &ctx->client.timeout_ms) != 0 ||
        opts_get_choice(ctx->opts, "output", main_output_names, &fmt) != 0)
        return main_usage_error(ctx->cmd, ctx->opts->err);
    ctx->fmt = (enum out_format)fmt;
    int check_name = 1;
    if (opts_get_choice(ctx->opts, "tls-check-name", main_on_off, &check_name) != 0)
        return main_usage_error(ctx->cmd, ctx->opts->err);
    const char *ca = opts_get(ctx->opts, "tls-ca"), *cert = opts_get(ctx->opts, "tls-cert"),
               *key = opts_get(ctx->opts, "tls-key");
    if ((cert || key) && !ca)
        return main_usage_error(ctx->cmd, "--tls-cert and --tls-key need --tls-ca (the CA of the nodes' certificates)");
    if (!cert != !key)
        return main_usage_error(ctx->cmd, "--tls-cert and --tls-key go together");
    ctx->client.tls_ca_file = ca;
    ctx->client.tls_cert_file = cert;
    ctx->client.tls_key_file = key;
    ctx->client.tls_skip_name_check = !check_name;
    /* A connection attempt never outlasts the operation it serves. */
    if (ctx->client.connect_timeout_ms > ctx->client.timeout_ms)
        ctx->client.connect_timeout_ms = ctx->client.timeout_ms;
    return main_credentials(ctx);
}

int main(int argc, char **argv)
{
    struct opts o;
    struct cli_ctx ctx;
    int rc;
    serve_fill_defaults();
    opts_init(&o);
    memset(&ctx, 0, sizeof ctx);
    ctx.opts = &o;
    if (argc == 2 && strcmp(argv[1], "--version") == 0) {
        printf("ddkv %s (git %s)\n", version_string(), version_git_rev());
        rc = fflush(stdout) == 0 && !ferror(stdout) ? EXIT_DONE : EXIT_USAGE;
        goto done;
    }
    /* Before the command name only the global flags are known. */
    if (opts_add(&o, MAIN_OPTS(main_client_opts)) != 0) {
        rc = main_usage_error(NULL, o.err);
        goto done;
    }
    int at = argc > 1 ? opts_parse(&o, argc - 1, argv + 1, true) : 0;
    if (at < 0) {
        rc = main_usage_error(NULL, o.err);
        goto done;
    }
    if (at >= argc - 1) {
        if (o.help) {
            main_help(stdout);
            rc = EXIT_DONE;
        } else {
            rc = main_usage_error(NULL, "no command given");
        }
        goto done;
    }
    const char *name = argv[1 + at];
    const struct cli_command *cmd = main_find(name);
    ctx.cmd = cmd;
    if (!cmd) {
        char msg[160];
        snprintf(msg, sizeof msg, "unknown command '%.64s'", name);
        rc = main_usage_error(NULL, msg);
        goto done;
    }
    if (!cmd->run) {
        out_error("'%s' is not available in this version", cmd->name);
        rc = EXIT_USAGE;
        goto done;
    }
    if (!(cmd->flags & CMD_CLIENT)) {
        for (size_t i = 0; i < o.n; i++)
            if (o.src[i] == OPT_SRC_FLAG) {
                char msg[160];
                snprintf(msg, sizeof msg, "--%s does not apply to '%s'", o.defs[i]->name, cmd->name);
                rc = main_usage_error(cmd, msg);
                goto done;
            }
        bool help = o.help;
        opts_free(&o);
        opts_init(&o);
        o.help = help;
    }
    if (opts_add(&o, cmd->opts, cmd->nopts) != 0 ||
        opts_parse(&o, argc - 2 - at, argv + 2 + at, false) < 0) {
        rc = main_usage_error(cmd, o.err);
        goto done;
    }
    if (o.help) {
        main_command_help(stdout, cmd);
        rc = EXIT_DONE;
        goto done;
    }
    if (opts_resolve(&o, cmd->config_opt) != 0) {
        rc = main_usage_error(cmd, o.err);
        goto done;
    }
    if (o.npos < cmd->min_args || o.npos > cmd->max_args) {
        char msg[160];
        if (o.npos > cmd->max_args)
            snprintf(msg, sizeof msg, "%s: unexpected argument '%.64s'", cmd->name, o.pos[cmd->max_args]);
        else
            snprintf(msg, sizeof msg, "%s: expected %s", cmd->name, cmd->args);
        rc = main_usage_error(cmd, msg);
        goto done;
    }
    if ((cmd->flags & CMD_CLIENT) && (rc = main_client_ctx(&ctx)) != EXIT_DONE)
        goto done;
    rc = cmd->run(&ctx);
    if (fflush(stdout) != 0 || ferror(stdout)) {
        out_error("writing the output failed");
        if (rc == EXIT_DONE)
            rc = EXIT_USAGE;
    }

done:
    opts_free(&o);
    return rc;
}
