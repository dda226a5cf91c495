/* ddkv hub: the dashboard's HTTP server (src/apps/hub/hub.h). */
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "cli/commands.h"
#include "hub/hub.h"

static const struct opt_def hub_opts[] = {
    {"http-addr", 0, OPT_ARG, "127.0.0.1:8080", "HOST:PORT", "where the dashboard and its API listen (port 0: any)"},
    {"web-dir", 0, OPT_ARG, NULL, "DIR", "the page and its assets (default: web/ next to the binary's build tree, or the package's /usr/share/ddkv/web)"},
    {"chart-js", 0, OPT_ARG, "/usr/share/javascript/chart.js/chart.min.js", "FILE",
     "Chart.js (Debian's libjs-chart.js)"},
    {"workers", 0, OPT_ARG, "4", "N", "threads for cluster calls"},
    /* What clients can make the hub hold (README "The hub: limits"). */
    {"max-conns", 0, OPT_ARG, "1024", "N", "open HTTP connections (more: 503)"},
    {"max-conns-per-addr", 0, OPT_ARG, "256", "N", "open HTTP connections from one client address (more: 503)"},
    {"max-header-bytes", 0, OPT_ARG, "16384", "N", "a request's line and headers (more: 431)"},
    {"header-timeout-ms", 0, OPT_ARG, "10000", "MS", "from a request's first byte to its end of headers (else 408)"},
    {"idle-timeout-ms", 0, OPT_ARG, "60000", "MS", "a keep-alive connection without a request, or a reply unread"},
    {"queue", 0, OPT_ARG, "64", "N", "requests waiting for the workers (more: 503 with Retry-After)"},
    {"proxy-workers", 0, OPT_ARG, "4", "N", "threads for /api/proxy, a lane of their own"},
    {"proxy-queue", 0, OPT_ARG, "8", "N", "/api/proxy requests waiting for those (more: 503 with Retry-After)"},
    {"uploads", 0, OPT_ARG, "2", "N", "POST /api/jobs bodies at once (more: 503 with Retry-After)"},
    {"max-upload-mb", 0, OPT_ARG, "64", "MB", "one uploaded file (more: 413)"},
    {"upload-min-rate-kbs", 0, OPT_ARG, "16", "KB", "an upload slower than this over 10 s is cut (408)"},
    {"upload-timeout-s", 0, OPT_ARG, "600", "S", "one upload's whole body (longer: 408)"},
    {"sse-max-kb", 0, OPT_ARG, "8192", "KB", "unsent bytes of an event stream before it is dropped"},
    {"max-unsent-mb", 0, OPT_ARG, "32", "MB", "unsent replies in all; more: the connection with the most is closed"},
    /* Sign-in (README "The dashboard hub: sign-in"). */
    {"session-ttl-s", 0, OPT_ARG, "28800", "S", "a sign-in lasts this long"},
    {"allowed-hosts", 0, OPT_ARG, NULL, "NAMES", "DNS names this hub answers to (Host header), besides localhost, "
     "IP addresses and the --http-addr name; comma separated"},
    {"https-cert", 0, OPT_ARG, NULL, "FILE", "serve HTTPS with this certificate (PEM, chain allowed; deploy/certs.sh "
     "makes one); --tls-cert stays the hub's client certificate towards the cluster"},
    {"https-key", 0, OPT_ARG, NULL, "FILE", "the key of --https-cert (PEM)"},
    {"allow-no-auth", 0, 0, NULL, NULL, "listen beyond loopback even though the cluster has authentication off"},
};

/* web/ of the source tree (the binary lives in a build directory of it), or the package's. */
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
            snprintf(out, n, "%s/../share/ddkv/web", exe); /* the Debian package: /usr/bin, /usr/share/ddkv/web */
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
    uint32_t upload_mb = (uint32_t)(cfg.max_upload_bytes >> 20), rate_kb = cfg.upload_min_rate >> 10,
             upload_s = cfg.upload_timeout_ms / 1000, sse_kb = cfg.sse_max_pending >> 10,
             unsent_mb = (uint32_t)(cfg.max_unsent_bytes >> 20);
    if (opts_get_u32(o, "workers", 1, 64, &cfg.workers) != 0 ||
        opts_get_u32(o, "max-conns", 1, 1000000, &cfg.max_conns) != 0 ||
        opts_get_u32(o, "max-conns-per-addr", 1, 1000000, &cfg.max_conns_per_addr) != 0 ||
        opts_get_u32(o, "max-header-bytes", 1024, 1u << 20, &cfg.max_header_bytes) != 0 ||
        opts_get_u32(o, "header-timeout-ms", 100, 3600000, &cfg.header_timeout_ms) != 0 ||
        opts_get_u32(o, "idle-timeout-ms", 100, 86400000, &cfg.idle_timeout_ms) != 0 ||
        opts_get_u32(o, "queue", 1, 100000, &cfg.queue) != 0 ||
        opts_get_u32(o, "proxy-workers", 1, 64, &cfg.proxy_workers) != 0 ||
        opts_get_u32(o, "proxy-queue", 1, 100000, &cfg.proxy_queue) != 0 ||
        opts_get_u32(o, "uploads", 1, 64, &cfg.uploads) != 0 ||
        opts_get_u32(o, "max-upload-mb", 1, 1u << 20, &upload_mb) != 0 ||
        opts_get_u32(o, "upload-min-rate-kbs", 0, 1u << 20, &rate_kb) != 0 ||
        opts_get_u32(o, "upload-timeout-s", 1, 86400, &upload_s) != 0 ||
        opts_get_u32(o, "sse-max-kb", 16, 1u << 20, &sse_kb) != 0 ||
        opts_get_u32(o, "max-unsent-mb", 1, 1u << 20, &unsent_mb) != 0 ||
        opts_get_u32(o, "session-ttl-s", 1, 30u * 86400, &cfg.session_ttl_s) != 0) {
        out_error("hub: %s", o->err);
        return EXIT_USAGE;
    }
    cfg.max_upload_bytes = (uint64_t)upload_mb << 20;
    cfg.upload_min_rate = rate_kb << 10;
    cfg.upload_timeout_ms = upload_s * 1000;
    cfg.sse_max_pending = sse_kb << 10;
    cfg.max_unsent_bytes = (uint64_t)unsent_mb << 20;
    char web[1100];
    if (opts_get(o, "web-dir"))
        snprintf(web, sizeof web, "%s", opts_get(o, "web-dir"));
    else
        default_web_dir(web, sizeof web);
    cfg.web_dir = web;
    cfg.http_addr = opts_get(o, "http-addr");
    cfg.chart_js = opts_get(o, "chart-js");
    cfg.allowed_hosts = opts_get(o, "allowed-hosts");
    cfg.https_cert = opts_get(o, "https-cert");
    cfg.https_key = opts_get(o, "https-key");
    cfg.allow_no_auth = opts_is_set(o, "allow-no-auth");
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
