/* ddkv hub: the dashboard's HTTP server (src/hub/hub.h). */
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "cli/cmd.h"
#include "hub/hub.h"

static const struct opt_def hub_opts[] = {
    {"http-addr", 0, OPT_ARG, "127.0.0.1:8080", "HOST:PORT", "where the dashboard and its API listen (port 0: any)"},
    {"web-dir", 0, OPT_ARG, NULL, "DIR", "the page and its assets (default: web/ next to the binary's build tree)"},
    {"chart-js", 0, OPT_ARG, "/usr/share/javascript/chart.js/chart.min.js", "FILE",
     "Chart.js (Debian's libjs-chart.js)"},
    {"workers", 0, OPT_ARG, "4", "N", "threads for cluster calls"},
};

/* web/ of the source tree: the binary lives in a build directory of it. */
static void default_web_dir(char *out, size_t n)
{
    char exe[1024];
    ssize_t l = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (l > 0) {
        exe[l] = 0;
        char *slash = strrchr(exe, '/');
        if (slash) {
            *slash = 0;
            snprintf(out, n, "%s/../web", exe);
            if (access(out, R_OK) == 0)
                return;
        }
    }
    snprintf(out, n, "web");
}

static int hub_cmd(struct cli_ctx *ctx)
{
    struct hub_config cfg;
    hub_config_defaults(&cfg);
    struct opts *o = ctx->opts;
    if (opts_get_u32(o, "workers", 1, 64, &cfg.workers) != 0) {
        out_error("hub: %s", o->err);
        return EXIT_USAGE;
    }
    char web[1100];
    if (opts_get(o, "web-dir"))
        snprintf(web, sizeof web, "%s", opts_get(o, "web-dir"));
    else
        default_web_dir(web, sizeof web);
    cfg.web_dir = web;
    cfg.http_addr = opts_get(o, "http-addr");
    cfg.chart_js = opts_get(o, "chart-js");
    cfg.endpoints = ctx->client.endpoints ? ctx->client.endpoints : "127.0.0.1:7001";
    cfg.timeout_ms = ctx->client.timeout_ms ? ctx->client.timeout_ms : 3000;
    cfg.cluster = ctx->client; /* TLS and credentials */
    int rc = hub_run(&cfg);
    return rc == 2 ? EXIT_USAGE : rc ? EXIT_UNAVAILABLE : EXIT_DONE;
}

const struct cli_command cmd_hub_commands[] = {
    {"hub", "", "serve the dashboard and its HTTP API (stateless: everything lives in the cluster)", hub_opts,
     sizeof hub_opts / sizeof hub_opts[0], CMD_CLIENT, 0, 0, NULL, hub_cmd},
};

const size_t cmd_hub_count = sizeof cmd_hub_commands / sizeof cmd_hub_commands[0];
