/* The coordination subcommands (cas, lease, watch): transactions, leases, watch streams, output. */
#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>

#include "cli/commands.h"
#include "util/clock.h"

/* How long one ddkv_watch_next waits before the loop looks at the signal flag:
 * the delay between Ctrl-C and a clean exit. */
#define COORD_WATCH_POLL_MS 200u
/* The longest TTL a command accepts, in seconds (the node's limit is a year). */
#define COORD_MAX_TTL_S (UINT64_C(365) * 24 * 3600)

/* Set by SIGINT/SIGTERM during watch and keepalive --every-ms: the loop ends
 * cleanly, with exit 0. */
static volatile sig_atomic_t coord_stop;

static void coord_on_signal(int sig)
{
    (void)sig;
    coord_stop = 1;
}

/* Catch SIGINT and SIGTERM. poll(2) and nanosleep(2) end with EINTR even
 * under SA_RESTART, so a wait ends at once and the loop sees the flag; a write
 * to stdout is restarted rather than failed. */
static void coord_catch_signals(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = coord_on_signal;
    sa.sa_flags = SA_RESTART;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
}

int coord_parse_seconds(const char *s, uint64_t *ms)
{
    uint64_t whole = 0, frac = 0;
    unsigned nfrac = 0;
    const char *p = s;
    if (*p < '0' || *p > '9')
        return -1;
    for (; *p >= '0' && *p <= '9'; p++) {
        whole = whole * 10 + (uint64_t)(*p - '0');
        if (whole > COORD_MAX_TTL_S)
            return -1;
    }
    if (*p == '.') {
        for (p++; *p >= '0' && *p <= '9'; p++) {
            if (++nfrac > 3)
                return -1;
            frac = frac * 10 + (uint64_t)(*p - '0');
        }
        if (nfrac == 0)
            return -1;
        for (unsigned i = nfrac; i < 3; i++)
            frac *= 10;
    }
    if (*p)
        return -1;
    uint64_t v = whole * 1000 + frac;
    if (v == 0 || v > COORD_MAX_TTL_S * 1000)
        return -1;
    *ms = v;
    return 0;
}

/* ms as seconds: "30", or "1.5" when not whole. */
static const char *coord_seconds(uint64_t ms, char *buf, size_t len)
{
    if (ms % 1000 == 0)
        snprintf(buf, len, "%llu", (unsigned long long)(ms / 1000));
    else
        snprintf(buf, len, "%llu.%03llu", (unsigned long long)(ms / 1000),
                 (unsigned long long)(ms % 1000));
    /* Trailing zeros of the fraction say nothing. */
    char *dot = strchr(buf, '.');
    if (dot) {
        size_t n = strlen(buf);
        while (n && buf[n - 1] == '0')
            buf[--n] = 0;
    }
    return buf;
}

/* Print the JSON object and drop it; out of memory if it is NULL. */
static int coord_json(json_t *o)
{
    return out_json_line(o) == 0 ? EXIT_DONE : EXIT_UNAVAILABLE;
}

/* --- cas --- */

static int coord_cas(struct cli_ctx *ctx)
{
    const char *key = ctx->opts->pos[0];
    const char *expected = ctx->opts->pos[1];
    const char *value = ctx->opts->pos[2];
    size_t klen = strlen(key), elen = strlen(expected);
    bool absent = elen == 0; /* EXPECTED "" means "must not exist" */
    ddkv_client *c = NULL;
    int rc = cli_client(ctx, &c);
    if (rc != EXIT_DONE)
        return rc;
    struct ddkv_txn_result r;
    ddkv_err e = ddkv_cas(c, key, klen, expected, elen, absent, value, strlen(value), 0, &r);
    if (e != DDKV_OK) {
        rc = cli_fail(c, e, "cas", key, klen);
        goto done;
    }
    rc = r.succeeded ? EXIT_DONE : EXIT_NO;
    if (ctx->fmt == OUT_JSON) {
        json_t *o = json_object();
        if (!o || out_json_set_bytes(o, "key", "key_encoding", key, klen) != 0 ||
            json_object_set_new(o, "succeeded", json_boolean(r.succeeded)) != 0 ||
            json_object_set_new(o, "revision", json_integer((json_int_t)r.revision)) != 0 ||
            json_object_set_new(o, "lamport", json_integer((json_int_t)r.lamport)) != 0) {
            json_decref(o);
            o = NULL;
        }
        if (coord_json(o) != EXIT_DONE)
            rc = EXIT_UNAVAILABLE;
    } else if (r.succeeded) {
        printf("swapped at %llu rev %llu\n", (unsigned long long)r.lamport,
               (unsigned long long)r.revision);
    } else {
        char ek[160], ee[160];
        out_escape(key, klen, ek, sizeof ek);
        if (absent)
            printf("not swapped: %s already exists\n", ek);
        else
            printf("not swapped: %s was not '%s'\n", ek, out_escape(expected, elen, ee, sizeof ee));
    }

done:
    ddkv_client_free(c);
    return rc;
}

/* --- lease --- */

static const struct opt_def coord_lease_opts[] = {
    {"every-ms", 0, OPT_ARG, NULL, "MS",
     "keepalive: send one every MS until interrupted, printing the ttl each time"},
};

static int coord_lease_id(const char *s, uint64_t *id)
{
    uint64_t v = 0;
    if (!*s)
        return -1;
    for (const char *p = s; *p; p++) {
        if (*p < '0' || *p > '9' || v > (UINT64_MAX - (uint64_t)(*p - '0')) / 10)
            return -1;
        v = v * 10 + (uint64_t)(*p - '0');
    }
    if (v == 0)
        return -1;
    *id = v;
    return 0;
}

/* "lease <id> <what>" or {"lease": id, "ttl_ms": ttl} (plus "revoked" for a revoke). */
static int coord_print_lease(struct cli_ctx *ctx, uint64_t id, uint64_t ttl_ms, const char *verb)
{
    char secs[32];
    if (ctx->fmt == OUT_JSON) {
        json_t *o = json_pack("{s:I, s:I}", "lease", (json_int_t)id, "ttl_ms", (json_int_t)ttl_ms);
        if (o && strcmp(verb, "revoked") == 0 && json_object_set_new(o, "revoked", json_true()) != 0) {
            json_decref(o);
            o = NULL;
        }
        return coord_json(o);
    }
    if (strcmp(verb, "granted") == 0)
        printf("lease %llu granted for %s s\n", (unsigned long long)id, coord_seconds(ttl_ms, secs, sizeof secs));
    else if (strcmp(verb, "revoked") == 0)
        printf("lease %llu revoked\n", (unsigned long long)id);
    else
        printf("lease %llu kept alive: ttl %s s\n", (unsigned long long)id,
               coord_seconds(ttl_ms, secs, sizeof secs));
    return EXIT_DONE;
}

static int coord_lease_not_found(uint64_t id)
{
    out_error("lease %llu not found (expired or revoked)", (unsigned long long)id);
    return EXIT_NO;
}

static int coord_keepalive(struct cli_ctx *ctx, ddkv_client *c, uint64_t id)
{
    uint64_t every = 0;
    if (opts_get_u64(ctx->opts, "every-ms", 1, UINT32_MAX, &every) != 0) {
        out_error("%s", ctx->opts->err);
        return EXIT_USAGE;
    }
    if (every)
        coord_catch_signals();
    for (;;) {
        uint64_t ttl = 0;
        ddkv_err e = ddkv_lease_keepalive(c, id, &ttl);
        if (e == DDKV_ERR_NOT_FOUND)
            return coord_lease_not_found(id);
        if (e != DDKV_OK)
            return cli_fail(c, e, "lease keepalive", NULL, 0);
        int rc = coord_print_lease(ctx, id, ttl, "kept alive");
        if (rc != EXIT_DONE || !every)
            return rc;
        if (fflush(stdout) != 0)
            return EXIT_UNAVAILABLE;
        /* Sleep in short steps so a signal ends the loop promptly. */
        for (uint64_t slept = 0; slept < every && !coord_stop; slept += COORD_WATCH_POLL_MS) {
            uint64_t step = every - slept < COORD_WATCH_POLL_MS ? every - slept : COORD_WATCH_POLL_MS;
            clock_sleep_ms(step);
        }
        if (coord_stop)
            return EXIT_DONE;
    }
}

static int coord_lease(struct cli_ctx *ctx)
{
    const char *verb = ctx->opts->pos[0];
    const char *arg = ctx->opts->pos[1];
    enum { GRANT, KEEPALIVE, REVOKE } what;
    if (strcmp(verb, "grant") == 0)
        what = GRANT;
    else if (strcmp(verb, "keepalive") == 0)
        what = KEEPALIVE;
    else if (strcmp(verb, "revoke") == 0)
        what = REVOKE;
    else {
        out_error("lease: unknown action '%s' (grant TTL_S | keepalive ID | revoke ID)", verb);
        return EXIT_USAGE;
    }
    uint64_t n = 0;
    if (what == GRANT ? coord_parse_seconds(arg, &n) != 0 : coord_lease_id(arg, &n) != 0) {
        if (what == GRANT)
            out_error("lease grant: '%.64s' is not a ttl in seconds (0.1 .. %llu, at most 3 decimals)", arg,
                      (unsigned long long)COORD_MAX_TTL_S);
        else
            out_error("lease %s: '%.64s' is not a lease id", verb, arg);
        return EXIT_USAGE;
    }
    if (what != KEEPALIVE && opts_get(ctx->opts, "every-ms")) {
        out_error("lease %s: --every-ms applies to keepalive only", verb);
        return EXIT_USAGE;
    }
    ddkv_client *c = NULL;
    int rc = cli_client(ctx, &c);
    if (rc != EXIT_DONE)
        return rc;
    if (what == GRANT) {
        uint64_t id = 0, ttl = 0;
        ddkv_err e = ddkv_lease_grant(c, n, &id, &ttl);
        rc = e == DDKV_OK ? coord_print_lease(ctx, id, ttl, "granted") : cli_fail(c, e, "lease grant", NULL, 0);
    } else if (what == KEEPALIVE) {
        rc = coord_keepalive(ctx, c, n);
    } else {
        ddkv_err e = ddkv_lease_revoke(c, n);
        if (e == DDKV_ERR_NOT_FOUND)
            rc = coord_lease_not_found(n);
        else if (e != DDKV_OK)
            rc = cli_fail(c, e, "lease revoke", NULL, 0);
        else
            rc = coord_print_lease(ctx, n, 0, "revoked");
    }
    ddkv_client_free(c);
    return rc;
}

/* --- watch --- */

static const struct opt_def coord_watch_opts[] = {
    {"from-rev", 0, OPT_ARG, NULL, "REV",
     "start with the changes at revision REV and after (default: the next change)"},
    {"count", 0, OPT_ARG, NULL, "N", "stop after N events"},
};

/* One event: "PUT key value rev R" / "DELETE key rev R", bytes escaped; or a
 * JSON object. Returns 0, or -1 if stdout failed. */
static int coord_print_event(struct cli_ctx *ctx, const struct ddkv_event *ev)
{
    bool put = ev->kind == DDKV_OP_PUT;
    if (ctx->fmt == OUT_JSON) {
        json_t *o = json_object();
        if (!o || json_object_set_new(o, "type", json_string(put ? "PUT" : "DELETE")) != 0 ||
            out_json_set_bytes(o, "key", "key_encoding", ev->key, ev->key_len) != 0 ||
            out_json_set_bytes(o, "value", "encoding", ev->value, ev->value_len) != 0 ||
            json_object_set_new(o, "revision", json_integer((json_int_t)ev->mod_rev)) != 0 ||
            json_object_set_new(o, "create_revision", json_integer((json_int_t)ev->create_rev)) != 0 ||
            json_object_set_new(o, "version", json_integer((json_int_t)ev->version)) != 0 ||
            json_object_set_new(o, "lamport", json_integer((json_int_t)ev->lamport)) != 0) {
            json_decref(o);
            o = NULL;
        }
        return out_json_line(o);
    }
    /* Escaped (output.h): one line per change, safe on a terminal. */
    fputs(put ? "PUT " : "DELETE ", stdout);
    out_text(stdout, ev->key, ev->key_len, 0);
    if (put) {
        putchar(' ');
        out_text(stdout, ev->value, ev->value_len, 0);
    }
    printf(" rev %llu\n", (unsigned long long)ev->mod_rev);
    return ferror(stdout) ? -1 : 0;
}

static int coord_watch(struct cli_ctx *ctx)
{
    const char *prefix = ctx->opts->npos ? ctx->opts->pos[0] : "";
    size_t plen = strlen(prefix);
    uint64_t from = 0, count = 0;
    if (opts_get_u64(ctx->opts, "from-rev", 1, UINT64_MAX, &from) != 0 ||
        opts_get_u64(ctx->opts, "count", 1, UINT64_MAX, &count) != 0) {
        out_error("%s", ctx->opts->err);
        return EXIT_USAGE;
    }
    coord_catch_signals();
    ddkv_watch *w = NULL;
    char why[256];
    ddkv_err e = ddkv_watch_open(&ctx->client, prefix, plen, from, &w, why, sizeof why);
    if (e != DDKV_OK) {
        char esc[160];
        out_error("watch '%s': %s", out_escape(prefix, plen, esc, sizeof esc), why);
        return out_exit_code(e);
    }
    uint64_t seen = 0;
    int rc = EXIT_DONE;
    while (!coord_stop && (!count || seen < count)) {
        struct ddkv_event ev;
        e = ddkv_watch_next(w, &ev, COORD_WATCH_POLL_MS);
        if (e == DDKV_ERR_TIMEOUT)
            continue;
        if (e == DDKV_OK) {
            int prc = coord_print_event(ctx, &ev);
            ddkv_event_free(&ev);
            /* Each line as it happens, for whoever reads the pipe. */
            if (prc != 0 || fflush(stdout) != 0) {
                rc = EXIT_UNAVAILABLE;
                break;
            }
            seen++;
            continue;
        }
        if (e == DDKV_ERR_COMPACTED) {
            uint64_t oldest = ddkv_watch_compacted_rev(w);
            if (ctx->fmt == OUT_JSON)
                coord_json(json_pack("{s:b, s:I}", "compacted", 1, "oldest_revision", (json_int_t)oldest));
            out_error("watch: %s; read the keys again and watch from revision %llu",
                      ddkv_watch_errmsg(w), (unsigned long long)oldest);
            rc = out_exit_code(e);
            break;
        }
        char esc[160];
        const char *detail = ddkv_watch_errmsg(w);
        out_error("watch '%s': %s", out_escape(prefix, plen, esc, sizeof esc),
                  *detail ? detail : ddkv_strerror(e));
        rc = out_exit_code(e);
        break;
    }
    ddkv_watch_close(w);
    return rc;
}

/* --- the table --- */

#define COORD_OPTS(t) (t), sizeof(t) / sizeof((t)[0])

const struct cli_command cmd_coord_commands[] = {
    {"cas", "KEY EXPECTED NEW",
     "compare-and-swap: set KEY to NEW if it is EXPECTED (\"\": absent); exit 1 if not",
     NULL, 0, CMD_CLIENT, 3, 3, NULL, coord_cas},
    {"lease", "grant TTL_S | keepalive ID | revoke ID",
     "grant a lease (keys written with it go when it expires), keep one alive, or revoke one",
     COORD_OPTS(coord_lease_opts), CMD_CLIENT, 2, 2, NULL, coord_lease},
    {"watch", "[PREFIX]", "print each change to keys with the prefix, until interrupted",
     COORD_OPTS(coord_watch_opts), CMD_CLIENT, 0, 1, NULL, coord_watch},
};

const size_t cmd_coord_count = sizeof cmd_coord_commands / sizeof cmd_coord_commands[0];
