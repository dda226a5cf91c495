/* ddkv metric push: one point of a named series, for a device that cannot
 * run an agent (agent/series_store.h has the key layout). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agent/series_store.h"
#include "cli/commands.h"
#include "util/clock.h"

static const struct opt_def metric_opts[] = {
    {"unit", 0, OPT_ARG, "", "U", "the series' unit (\"C\", \"%\", \"lux\"...), at most 16 printable bytes"},
    {"interval-ms", 0, OPT_ARG, "0", "MS", "how often the device pushes (0: irregular), for the dashboard"},
    {"retention-s", 0, OPT_ARG, "3600", "S", "how long the point lives in the cluster"},
    {"time-ms", 0, OPT_ARG, NULL, "MS", "the point's time, Unix ms (default now)"},
};

static int metric_run(struct cli_ctx *ctx)
{
    struct opts *o = ctx->opts;
    if (ctx->opts->npos != 4 || strcmp(o->pos[0], "push") != 0) {
        out_error("usage: ddkv metric push CLIENT SERIES VALUE [--unit U]");
        return EXIT_USAGE;
    }
    struct series_meta m = {0};
    if (opts_get_u32(o, "interval-ms", 0, 86400000, &m.interval_ms) != 0 ||
        opts_get_u32(o, "retention-s", 10, SERIES_RETENTION_MAX_S, &m.retention_s) != 0) {
        out_error("metric push: %s", o->err);
        return EXIT_USAGE;
    }
    const char *unit = opts_get(o, "unit"), *name = o->pos[2], *value = o->pos[3], *tm = opts_get(o, "time-ms");
    if (strlen(name) > SERIES_NAME_MAX || (unit && strlen(unit) > SERIES_UNIT_MAX)) {
        out_error("metric push: a series name is at most %d bytes, a unit %d", SERIES_NAME_MAX, SERIES_UNIT_MAX);
        return EXIT_USAGE;
    }
    snprintf(m.name, sizeof m.name, "%s", name);
    snprintf(m.unit, sizeof m.unit, "%s", unit ? unit : "");
    struct series_point p = {.t_ms = clock_wall_ms()};
    char *end = NULL;
    p.v = strtod(value, &end);
    if (!*value || *end || !isfinite(p.v)) {
        out_error("metric push: the value '%.40s' is not a finite number", value);
        return EXIT_USAGE;
    }
    if (tm) {
        p.t_ms = strtoull(tm, &end, 10);
        if (!*tm || *end || p.t_ms == 0) {
            out_error("metric push: --time-ms wants Unix milliseconds");
            return EXIT_USAGE;
        }
    }
    ddkv_client *c = NULL;
    int rc = cli_client(ctx, &c);
    if (rc != EXIT_DONE)
        return rc;
    char err[256];
    ddkv_err e = series_push(c, o->pos[1], &m, &p, 1, err, sizeof err);
    if (e == DDKV_ERR_USAGE) {
        out_error("metric push: %s", err);
        rc = EXIT_USAGE;
    } else if (e != DDKV_OK) {
        rc = cli_fail(c, e, "metric push", NULL, 0);
    } else {
        printf("pushed %s/%s\n", o->pos[1], m.name);
    }
    ddkv_client_free(c);
    return rc;
}

const struct cli_command cmd_metric_commands[] = {
    {"metric", "push CLIENT SERIES VALUE", "push one point of a named series (a device that cannot run an agent)",
     metric_opts, sizeof metric_opts / sizeof metric_opts[0], CMD_CLIENT, 4, 4, NULL, metric_run},
};

const size_t cmd_metric_count = sizeof cmd_metric_commands / sizeof cmd_metric_commands[0];
