/* The client subcommands (ping, read, write, delete, list, status, members): libddkv calls and their output. */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/commands.h"
#include "proto/version.h"
#include "util/buf.h"
#include "util/err.h"

/* Bound on a value read from stdin. The node enforces its own (smaller) value
 * limit; this only stops `ddkv write k - < /dev/zero` from eating the memory. */
#define KV_STDIN_MAX_BYTES (64u * 1024 * 1024)
/* Members are asked for their own status with at most this timeout each, so one
 * dead member does not hold the table for the whole --timeout-ms. */
#define KV_MEMBER_PROBE_MS 1000u

int cli_client(struct cli_ctx *ctx, ddkv_client **c)
{
    char why[256];
    ddkv_err rc = ddkv_client_new(&ctx->client, c, why, sizeof why);
    if (rc != DDKV_OK) {
        out_error("%s", why);
        return out_exit_code(rc);
    }
    return EXIT_DONE;
}

/* Report a failed call: "ddkv: read 'k': <detail>". */
int cli_fail(ddkv_client *c, ddkv_err rc, const char *what, const void *key, size_t klen)
{
    char esc[160];
    const char *detail = ddkv_client_errmsg(c);
    if (!*detail)
        detail = ddkv_strerror(rc);
    if (key)
        out_error("%s '%s': %s", what, out_escape(key, klen, esc, sizeof esc), detail);
    else
        out_error("%s: %s", what, detail);
    return out_exit_code(rc);
}

/* NOT_FOUND is an answer, not an error: JSON mode says so on stdout. */
static int kv_not_found(struct cli_ctx *ctx, const char *key, size_t klen)
{
    if (ctx->fmt == OUT_JSON) {
        json_t *o = json_object();
        if (!o || out_json_set_bytes(o, "key", "key_encoding", key, klen) != 0 ||
            json_object_set_new(o, "found", json_false()) != 0) {
            json_decref(o);
            out_error("out of memory");
            return EXIT_UNAVAILABLE;
        }
        return out_json_line(o) == 0 ? EXIT_NO : EXIT_UNAVAILABLE;
    }
    char esc[160];
    out_error("key not found: '%s'", out_escape(key, klen, esc, sizeof esc));
    return EXIT_NO;
}

/* --- ping --- */

static int kv_ping(struct cli_ctx *ctx)
{
    ddkv_client *c = NULL;
    struct ddkv_pong p = {0};
    int rc = cli_client(ctx, &c);
    if (rc != EXIT_DONE)
        return rc;
    ddkv_err e = ddkv_ping(c, &p);
    if (e != DDKV_OK) {
        rc = cli_fail(c, e, "ping", NULL, 0);
        goto fail;
    }
    const char *ep = ddkv_client_endpoint(c);
    /* The answering node's release and cluster version, from its greeting. */
    uint64_t nv = 0, cv = 0;
    char nvs[32] = "?", cvs[32] = "?";
    ddkv_client_versions(c, &nv, &cv);
    if (nv)
        version_text(nv, nvs, sizeof nvs);
    if (cv)
        version_text(cv, cvs, sizeof cvs);
    if (ctx->fmt == OUT_JSON) {
        json_t *o = json_pack("{s:b, s:s, s:s, s:o, s:I, s:f, s:I, s:s, s:s}", "pong", 1, "node", p.node,
                              "endpoint", ep ? ep : "", "leader",
                              p.leader ? json_string(p.leader) : json_null(), "term",
                              (json_int_t)p.term, "rtt_ms", (double)p.rtt_ns / 1e6, "rtt_ns",
                              (json_int_t)p.rtt_ns, "version", nvs, "cluster_version", cvs);
        rc = out_json_line(o) == 0 ? EXIT_DONE : EXIT_UNAVAILABLE;
    } else {
        printf("pong from %s at %s: leader %s, term %llu, rtt %.3f ms, ddkv %s, cluster version %s\n", p.node,
               ep ? ep : "?", p.leader ? p.leader : "(none)", (unsigned long long)p.term, (double)p.rtt_ns / 1e6,
               nvs, cvs);
    }

fail:
    ddkv_pong_free(&p);
    ddkv_client_free(c);
    return rc;
}

/* --- read --- */

static const struct opt_def kv_read_opts[] = {
    {"consistency", 0, OPT_ARG, "linearizable", "LEVEL",
     "linearizable | causal (any member that has applied --after) | stale (whatever the member has)"},
    {"after", 0, OPT_ARG, "0", "LAMPORT", "causal reads: wait until the member has applied this Lamport time"},
};

static const char *const kv_consistency_names[] = {"linearizable", "causal", "stale", NULL};

static int kv_read(struct cli_ctx *ctx)
{
    const char *key = ctx->opts->pos[0];
    size_t klen = strlen(key);
    int level = DDKV_CONSISTENCY_LINEARIZABLE;
    uint64_t after = 0;
    ddkv_client *c = NULL;
    struct ddkv_value v = {0};
    if (opts_get_choice(ctx->opts, "consistency", kv_consistency_names, &level) != 0 ||
        opts_get_u64(ctx->opts, "after", 0, DDKV_LAMPORT_MAX - 1, &after) != 0) {
        out_error("%s", ctx->opts->err);
        return EXIT_USAGE;
    }
    int rc = cli_client(ctx, &c);
    if (rc != EXIT_DONE)
        return rc;
    /* The names are listed in wire order, so the index is the wire value. */
    ddkv_err e = ddkv_read(c, key, klen, (enum ddkv_consistency)level, after, &v);
    if (e == DDKV_ERR_NOT_FOUND) {
        rc = kv_not_found(ctx, key, klen);
        goto fail;
    }
    if (e != DDKV_OK) {
        rc = cli_fail(c, e, "read", key, klen);
        goto fail;
    }
    if (ctx->fmt == OUT_JSON) {
        json_t *o = json_object();
        if (!o || out_json_set_bytes(o, "key", "key_encoding", key, klen) != 0 ||
            out_json_set_bytes(o, "value", "encoding", v.value, v.len) != 0 ||
            json_object_set_new(o, "revision", json_integer((json_int_t)v.mod_rev)) != 0 ||
            json_object_set_new(o, "lamport", json_integer((json_int_t)v.lamport)) != 0 ||
            json_object_set_new(o, "found", json_true()) != 0 ||
            json_object_set_new(o, "create_revision", json_integer((json_int_t)v.create_rev)) != 0 ||
            json_object_set_new(o, "version", json_integer((json_int_t)v.version)) != 0) {
            json_decref(o);
            out_error("out of memory");
            rc = EXIT_UNAVAILABLE;
            goto fail;
        }
        rc = out_json_line(o) == 0 ? EXIT_DONE : EXIT_UNAVAILABLE;
    } else {
        /* Raw, so `ddkv read k > file` gives back exactly the bytes written.
         * A person at a terminal gets control characters escaped (a value
         * must not drive the terminal: ESC sequences can retitle it, move
         * the cursor, rewrite what is shown) and a final newline. */
        if (isatty(STDOUT_FILENO)) {
            out_text(stdout, v.value, v.len, OUT_TEXT_KEEP_LINES);
            putchar('\n');
        } else {
            out_raw(v.value, v.len);
        }
    }

fail:
    ddkv_free(v.value);
    ddkv_client_free(c);
    return rc;
}

/* --- write / delete --- */

static const struct opt_def kv_write_opts[] = {
    {"ttl", 0, OPT_ARG, NULL, "SECONDS",
     "grant a lease of SECONDS and write with it: the key goes when the lease expires"},
    {"lease", 0, OPT_ARG, NULL, "ID", "attach the key to an existing lease (ddkv lease grant)"},
};

/* Read all of stdin, binary safe, refusing more than KV_STDIN_MAX_BYTES. */
static int kv_read_stdin(struct buf *b)
{
    for (;;) {
        if (buf_reserve(b, 64 * 1024) != ERR_OK) {
            out_error("out of memory reading the value from stdin");
            return EXIT_UNAVAILABLE;
        }
        size_t room = b->cap - b->len;
        size_t n = fread(b->data + b->len, 1, room, stdin);
        b->len += n;
        if (b->len > KV_STDIN_MAX_BYTES) {
            out_error("the value on stdin is over %u MiB", KV_STDIN_MAX_BYTES >> 20);
            return EXIT_USAGE;
        }
        if (n < room) {
            if (ferror(stdin)) {
                out_error("reading the value from stdin failed");
                return EXIT_USAGE;
            }
            return EXIT_DONE;
        }
    }
}

/* Print a WRITTEN_AT / DELETED result; lease_id (0: none) is the lease the
 * key was written with. */
static int kv_print_change(struct cli_ctx *ctx, const char *verb, const char *key, size_t klen,
                           const struct ddkv_write_result *r, uint64_t lease_id)
{
    if (ctx->fmt == OUT_TEXT) {
        printf("%s at %llu rev %llu", verb, (unsigned long long)r->lamport,
               (unsigned long long)r->revision);
        if (lease_id)
            printf(" lease %llu", (unsigned long long)lease_id);
        putchar('\n');
        return EXIT_DONE;
    }
    json_t *o = json_object();
    if (!o || out_json_set_bytes(o, "key", "key_encoding", key, klen) != 0 ||
        json_object_set_new(o, verb, json_true()) != 0 ||
        json_object_set_new(o, "lamport", json_integer((json_int_t)r->lamport)) != 0 ||
        json_object_set_new(o, "revision", json_integer((json_int_t)r->revision)) != 0 ||
        (lease_id && json_object_set_new(o, "lease", json_integer((json_int_t)lease_id)) != 0)) {
        json_decref(o);
        out_error("out of memory");
        return EXIT_UNAVAILABLE;
    }
    return out_json_line(o) == 0 ? EXIT_DONE : EXIT_UNAVAILABLE;
}

static int kv_write(struct cli_ctx *ctx)
{
    const char *key = ctx->opts->pos[0];
    const char *arg = ctx->opts->pos[1];
    size_t klen = strlen(key);
    struct buf in = BUF_INIT;
    ddkv_client *c = NULL;
    int rc;
    const char *ttl_arg = opts_get(ctx->opts, "ttl");
    uint64_t ttl_ms = 0, lease = 0;
    if (ttl_arg && coord_parse_seconds(ttl_arg, &ttl_ms) != 0) {
        out_error("--ttl: '%.64s' is not a number of seconds (above 0, at most a year, 3 decimals)", ttl_arg);
        return EXIT_USAGE;
    }
    if (opts_get_u64(ctx->opts, "lease", 1, UINT64_MAX, &lease) != 0) {
        out_error("%s", ctx->opts->err);
        return EXIT_USAGE;
    }
    if (ttl_arg && lease) {
        out_error("--ttl grants a new lease: it does not go with --lease");
        return EXIT_USAGE;
    }
    const void *val = arg;
    size_t vlen = strlen(arg);
    if (strcmp(arg, "-") == 0) {
        rc = kv_read_stdin(&in);
        if (rc != EXIT_DONE)
            goto fail;
        val = in.data ? (const void *)in.data : "";
        vlen = in.len;
    }
    rc = cli_client(ctx, &c);
    if (rc != EXIT_DONE)
        goto fail;
    if (ttl_ms) {
        ddkv_err e = ddkv_lease_grant(c, ttl_ms, &lease, NULL);
        if (e != DDKV_OK) {
            rc = cli_fail(c, e, "write --ttl: lease grant for", key, klen);
            goto fail;
        }
    }
    struct ddkv_write_result r;
    ddkv_err e = ddkv_write(c, key, klen, val, vlen, lease, &r);
    if (e == DDKV_ERR_NOT_FOUND && lease && !ttl_ms) {
        out_error("write: lease %llu not found (expired or revoked)", (unsigned long long)lease);
        rc = EXIT_NO;
        goto fail;
    }
    if (e != DDKV_OK) {
        rc = cli_fail(c, e, "write", key, klen);
        if (ttl_ms) /* never used, or attached to a key in doubt: either way it expires */
            out_error("lease %llu, granted for this write, expires on its own", (unsigned long long)lease);
        goto fail;
    }
    rc = kv_print_change(ctx, "written", key, klen, &r, lease);

fail:
    buf_free(&in);
    ddkv_client_free(c);
    return rc;
}

static const struct opt_def kv_delete_opts[] = {
    {"prefix", 0, 0, NULL, NULL,
     "delete every key that starts with KEY (in rounds of up to 10,000 keys; exit 1 if there was none); "
     "needs cluster version 0.2.0"},
};

/* delete --prefix: how many went, and the last round's revision. */
static int kv_delete_prefix(struct cli_ctx *ctx, ddkv_client *c, const char *prefix, size_t plen)
{
    struct ddkv_write_result r;
    uint64_t n = 0;
    ddkv_err e = ddkv_delete_prefix(c, prefix, plen, &n, &r);
    if (e != DDKV_OK) {
        if (n)
            out_error("%llu keys were deleted before this failure", (unsigned long long)n);
        return cli_fail(c, e, "delete --prefix", prefix, plen);
    }
    if (n == 0)
        return kv_not_found(ctx, prefix, plen);
    if (ctx->fmt == OUT_TEXT) {
        printf("deleted %llu keys at %llu rev %llu\n", (unsigned long long)n, (unsigned long long)r.lamport,
               (unsigned long long)r.revision);
        return EXIT_DONE;
    }
    json_t *o = json_object();
    if (!o || out_json_set_bytes(o, "prefix", "prefix_encoding", prefix, plen) != 0 ||
        json_object_set_new(o, "deleted", json_integer((json_int_t)n)) != 0 ||
        json_object_set_new(o, "lamport", json_integer((json_int_t)r.lamport)) != 0 ||
        json_object_set_new(o, "revision", json_integer((json_int_t)r.revision)) != 0) {
        json_decref(o);
        out_error("out of memory");
        return EXIT_UNAVAILABLE;
    }
    return out_json_line(o) == 0 ? EXIT_DONE : EXIT_UNAVAILABLE;
}

static int kv_delete(struct cli_ctx *ctx)
{
    const char *key = ctx->opts->pos[0];
    size_t klen = strlen(key);
    ddkv_client *c = NULL;
    int rc = cli_client(ctx, &c);
    if (rc != EXIT_DONE)
        return rc;
    if (opts_is_set(ctx->opts, "prefix")) {
        rc = kv_delete_prefix(ctx, c, key, klen);
        ddkv_client_free(c);
        return rc;
    }
    struct ddkv_write_result r;
    ddkv_err e = ddkv_delete(c, key, klen, &r);
    if (e == DDKV_ERR_NOT_FOUND)
        rc = kv_not_found(ctx, key, klen);
    else if (e != DDKV_OK)
        rc = cli_fail(c, e, "delete", key, klen);
    else
        rc = kv_print_change(ctx, "deleted", key, klen, &r, 0);
    ddkv_client_free(c);
    return rc;
}

/* --- list --- */

static const struct opt_def kv_list_opts[] = {
    {"limit", 0, OPT_ARG, NULL, "N", "print at most N keys (default: all of them, fetched page by page)"},
    {"consistency", 0, OPT_ARG, "linearizable", "LEVEL",
     "each page: linearizable | causal (any member that has applied what this command saw) | stale"},
};

static int kv_print_entry(struct cli_ctx *ctx, const struct ddkv_entry *e)
{
    if (ctx->fmt == OUT_TEXT) {
        /* Escaped (output.h), so each line is exactly one key TAB value. */
        if (out_text(stdout, e->key, e->key_len, 0) != 0 || putchar('\t') == EOF ||
            out_text(stdout, e->value, e->value_len, 0) != 0 || putchar('\n') == EOF)
            return -1;
        return 0;
    }
    json_t *o = json_object();
    if (!o || out_json_set_bytes(o, "key", "key_encoding", e->key, e->key_len) != 0 ||
        out_json_set_bytes(o, "value", "encoding", e->value, e->value_len) != 0 ||
        json_object_set_new(o, "revision", json_integer((json_int_t)e->mod_rev)) != 0 ||
        json_object_set_new(o, "lamport", json_integer((json_int_t)e->lamport)) != 0 ||
        json_object_set_new(o, "create_revision", json_integer((json_int_t)e->create_rev)) != 0 ||
        json_object_set_new(o, "version", json_integer((json_int_t)e->version)) != 0) {
        json_decref(o);
        out_error("out of memory");
        return -1;
    }
    return out_json_line(o);
}

/* Pages are printed as they arrive, so listing a large keyspace needs the
 * memory of one page, not of the whole answer. */
static int kv_list(struct cli_ctx *ctx)
{
    const char *prefix = ctx->opts->npos ? ctx->opts->pos[0] : "";
    size_t plen = strlen(prefix);
    uint64_t limit = 0; /* 0: everything */
    int level = DDKV_CONSISTENCY_LINEARIZABLE;
    if (opts_get_u64(ctx->opts, "limit", 1, UINT64_MAX, &limit) != 0 ||
        opts_get_choice(ctx->opts, "consistency", kv_consistency_names, &level) != 0) {
        out_error("%s", ctx->opts->err);
        return EXIT_USAGE;
    }
    ctx->client.list_consistency = (uint32_t)level;
    ddkv_client *c = NULL;
    struct ddkv_list page = {0};
    uint8_t *after = NULL;
    size_t after_len = 0;
    uint64_t printed = 0;
    int rc = cli_client(ctx, &c);
    if (rc != EXIT_DONE)
        return rc;
    for (;;) {
        uint64_t want = DDKV_DEFAULT_LIST_LIMIT;
        if (limit && limit - printed < want)
            want = limit - printed;
        ddkv_err e = ddkv_list(c, prefix, plen, after, after_len, (uint32_t)want, &page);
        if (e != DDKV_OK) {
            rc = cli_fail(c, e, "list", prefix, plen);
            goto fail;
        }
        for (size_t i = 0; i < page.n && (!limit || printed < limit); i++, printed++) {
            if (kv_print_entry(ctx, &page.entries[i]) != 0) {
                rc = EXIT_UNAVAILABLE;
                goto fail;
            }
        }
        if (!page.more || (limit && printed >= limit))
            break;
        if (page.n == 0) {
            /* Asking again from the same key would loop for ever. */
            out_error("list: %s returned an empty page that says more keys follow",
                      ddkv_client_endpoint(c) ? ddkv_client_endpoint(c) : "the node");
            rc = EXIT_UNAVAILABLE;
            goto fail;
        }
        /* Continue after this page's last key: copied, since the page goes. */
        const struct ddkv_entry *last = &page.entries[page.n - 1];
        free(after);
        after = malloc(last->key_len ? last->key_len : 1);
        if (!after) {
            out_error("out of memory");
            rc = EXIT_UNAVAILABLE;
            goto fail;
        }
        memcpy(after, last->key, last->key_len);
        after_len = last->key_len;
        ddkv_list_free(&page);
    }
    rc = EXIT_DONE;

fail:
    free(after);
    ddkv_list_free(&page);
    ddkv_client_free(c);
    return rc;
}

/* --- status --- */

/* One row of the status table; strings borrowed from a ddkv_status or cell. */
struct kv_row {
    const char *name, *address, *role;
    const char *cluster_id; /* as the member itself reports it, or NULL */
    bool known; /* term..lamport came from the member itself */
    uint64_t term, commit, applied, lamport;
    bool healthy;
    bool lag_known; /* the leader's view of it: match index and lag */
    uint64_t match, lag_entries, lag_ms;
    const char *version, *cluster_version; /* its release and applied cluster version, or NULL */
};

enum { KV_STATUS_COLS = 12 };

static int kv_print_rows(struct cli_ctx *ctx, const struct kv_row *rows, size_t n)
{
    if (ctx->fmt == OUT_JSON) {
        for (size_t i = 0; i < n; i++) {
            const struct kv_row *r = &rows[i];
            json_t *o = json_pack("{s:s?, s:s?, s:s?, s:o, s:o, s:o, s:o, s:b, s:s?, s:o, s:o, s:o, s:s?, s:s?}", "name",
                                  r->name, "address", r->address, "role", r->role, "term",
                                  r->known ? json_integer((json_int_t)r->term) : json_null(), "commit",
                                  r->known ? json_integer((json_int_t)r->commit) : json_null(),
                                  "applied", r->known ? json_integer((json_int_t)r->applied) : json_null(),
                                  "lamport", r->known ? json_integer((json_int_t)r->lamport) : json_null(),
                                  "healthy", r->healthy, "cluster_id", r->cluster_id, "match",
                                  r->lag_known ? json_integer((json_int_t)r->match) : json_null(), "lag_entries",
                                  r->lag_known ? json_integer((json_int_t)r->lag_entries) : json_null(), "lag_ms",
                                  r->lag_known ? json_integer((json_int_t)r->lag_ms) : json_null(), "version",
                                  r->version, "cluster_version", r->cluster_version);
            if (out_json_line(o) != 0)
                return EXIT_UNAVAILABLE;
        }
        return EXIT_DONE;
    }
    /* HEALTHY stays last (scripts look for " yes$"). */
    static const char *const header[KV_STATUS_COLS] = {"NAME",    "ADDRESS", "ROLE",   "TERM",
                                                       "COMMIT",  "APPLIED", "LAMPORT", "MATCH",
                                                       "LAG",     "LAG_MS",  "VERSION", "HEALTHY"};
    const char **cells = calloc(n * KV_STATUS_COLS + 1, sizeof *cells);
    char (*num)[7][24] = calloc(n + 1, sizeof *num);
    char **names = calloc(2 * n + 1, sizeof *names);
    if (!cells || !num || !names) {
        free(cells);
        free(num);
        free(names);
        out_error("out of memory");
        return EXIT_UNAVAILABLE;
    }
    for (size_t i = 0; i < n; i++) {
        const struct kv_row *r = &rows[i];
        const char **row = cells + i * KV_STATUS_COLS;
        uint64_t v[4] = {r->term, r->commit, r->applied, r->lamport};
        for (int k = 0; k < 4; k++) {
            if (r->known)
                snprintf(num[i][k], sizeof num[i][k], "%llu", (unsigned long long)v[k]);
            else
                snprintf(num[i][k], sizeof num[i][k], "-");
            row[3 + k] = num[i][k];
        }
        /* Names and addresses are what members were given: escaped. */
        names[2 * i] = r->name ? out_text_dup(r->name, strlen(r->name), 0) : NULL;
        names[2 * i + 1] = r->address ? out_text_dup(r->address, strlen(r->address), 0) : NULL;
        row[0] = names[2 * i] ? names[2 * i] : "-";
        row[1] = names[2 * i + 1] ? names[2 * i + 1] : "-";
        row[2] = r->role ? r->role : "-";
        uint64_t lv[3] = {r->match, r->lag_entries, r->lag_ms};
        for (int k = 0; k < 3; k++) {
            if (r->lag_known)
                snprintf(num[i][4 + k], sizeof num[i][4 + k], "%llu", (unsigned long long)lv[k]);
            else
                snprintf(num[i][4 + k], sizeof num[i][4 + k], "-");
            row[7 + k] = num[i][4 + k];
        }
        row[10] = r->version ? r->version : "-";
        row[11] = r->healthy ? "yes" : "no";
    }
    out_table(stdout, KV_STATUS_COLS, header, cells, n);
    for (size_t i = 0; i < 2 * n; i++)
        free(names[i]);
    free(names);
    free(cells);
    free(num);
    return EXIT_DONE;
}

/* Ask one member for its own status (term, commit, applied and Lamport time are
 * per member; the answering node only knows its own). */
static bool kv_probe(struct cli_ctx *ctx, const char *addr, struct ddkv_status *out)
{
    struct ddkv_options o = ctx->client;
    ddkv_client *c = NULL;
    o.endpoints = addr;
    if (o.timeout_ms > KV_MEMBER_PROBE_MS)
        o.timeout_ms = KV_MEMBER_PROBE_MS;
    if (ddkv_client_new(&o, &c, NULL, 0) != DDKV_OK)
        return false;
    bool ok = ddkv_status(c, out) == DDKV_OK;
    ddkv_client_free(c);
    return ok;
}

static int kv_status(struct cli_ctx *ctx)
{
    ddkv_client *c = NULL;
    struct ddkv_status s = {0};
    struct ddkv_status *probes = NULL;
    struct kv_row *rows = NULL;
    size_t n = 0;
    int rc = cli_client(ctx, &c);
    if (rc != EXIT_DONE)
        return rc;
    ddkv_err e = ddkv_status(c, &s);
    if (e != DDKV_OK) {
        rc = cli_fail(c, e, "status", NULL, 0);
        goto fail;
    }
    /* A node that lists no members is a cluster of itself. */
    n = s.n_members ? s.n_members : 1;
    probes = calloc(n, sizeof *probes);
    rows = calloc(n, sizeof *rows);
    if (!probes || !rows) {
        n = probes ? n : 0;
        out_error("out of memory");
        rc = EXIT_UNAVAILABLE;
        goto fail;
    }
    const char *self_addr = s.client_addr ? s.client_addr : ddkv_client_endpoint(c);
    for (size_t i = 0; i < n; i++) {
        const struct ddkv_member *m = s.n_members ? &s.members[i] : NULL;
        bool self = !m || (m->name && s.name && strcmp(m->name, s.name) == 0);
        if (!self && m->client_addr)
            (void)kv_probe(ctx, m->client_addr, &probes[i]);
    }
    /* The leader's status (the answering node's, or a probed member's)
     * knows how far behind each member is. */
    const struct ddkv_status *lead = s.role && strcmp(s.role, "leader") == 0 ? &s : NULL;
    for (size_t i = 0; !lead && i < n; i++)
        if (probes[i].role && strcmp(probes[i].role, "leader") == 0)
            lead = &probes[i];
    for (size_t i = 0; i < n; i++) {
        struct kv_row *r = &rows[i];
        const struct ddkv_member *m = s.n_members ? &s.members[i] : NULL;
        bool self = !m || (m->name && s.name && strcmp(m->name, s.name) == 0);
        const struct ddkv_status *st = NULL;
        if (self)
            st = &s;
        else if (probes[i].name)
            st = &probes[i];
        r->name = m ? m->name : s.name;
        r->address = m && m->client_addr ? m->client_addr : self ? self_addr : NULL;
        /* A member's own word on its role is fresher than another's view. */
        r->role = st && st->role ? st->role : m ? m->role : NULL;
        /* Healthy: it answers, sees a leader, says it is healthy itself
         * (storage, lag) and the leader finds it within the lag bounds. */
        r->healthy = st != NULL && st->leader != NULL && (!st->healthy_known || st->healthy);
        for (size_t k = 0; lead && r->name && k < lead->n_members; k++) {
            const struct ddkv_member *lm = &lead->members[k];
            if (!lm->name || strcmp(lm->name, r->name) != 0)
                continue;
            r->healthy = r->healthy && lm->healthy;
            r->lag_known = lm->lag_known;
            r->match = lm->match;
            r->lag_entries = lm->lag_entries;
            r->lag_ms = lm->lag_ms;
            if (!r->version)
                r->version = lm->version;
        }
        if (st) {
            r->known = true;
            r->term = st->term;
            r->commit = st->commit;
            r->applied = st->applied;
            r->lamport = st->lamport;
            r->cluster_id = st->cluster_id;
            /* A 0.1.0 member says neither its cluster version nor (in this
             * form) its release; its status "version" is "0.1.0". */
            if (st->version)
                r->version = st->version;
            r->cluster_version = st->cluster_version   ? st->cluster_version
                                 : st->version && strcmp(st->version, "0.1.0") == 0 ? "0.1.0"
                                                                                     : NULL;
        }
    }
    rc = kv_print_rows(ctx, rows, n);

fail:
    for (size_t i = 0; probes && i < n; i++)
        ddkv_status_free(&probes[i]);
    free(probes);
    free(rows);
    ddkv_status_free(&s);
    ddkv_client_free(c);
    return rc;
}

/* --- members --- */

static int kv_transfer(struct cli_ctx *ctx)
{
    const char *name = ctx->opts->npos == 2 ? ctx->opts->pos[1] : "";
    ddkv_client *c = NULL;
    int rc = cli_client(ctx, &c);
    if (rc != EXIT_DONE)
        return rc;
    char *leader = NULL;
    ddkv_err e = ddkv_leader_transfer(c, name, &leader);
    if (e == DDKV_ERR_NOT_FOUND) {
        out_error("%s is not a voting member", name);
        rc = EXIT_NO;
    } else if (e != DDKV_OK) {
        rc = cli_fail(c, e, "members transfer", name, strlen(name));
    } else if (ctx->fmt == OUT_JSON) {
        json_t *o = json_pack("{s:s}", "leader", leader);
        rc = o && out_json_line(o) == 0 ? EXIT_DONE : EXIT_UNAVAILABLE;
    } else {
        printf("%s is the leader\n", leader);
        rc = EXIT_DONE;
    }
    ddkv_free(leader);
    ddkv_client_free(c);
    return rc;
}

static int kv_members(struct cli_ctx *ctx)
{
    const char *verb = ctx->opts->pos[0];
    if (strcmp(verb, "transfer") == 0) {
        if (ctx->opts->npos > 2) {
            out_error("usage: ddkv members transfer [NAME]");
            return EXIT_USAGE;
        }
        return kv_transfer(ctx);
    }
    bool add = strcmp(verb, "add") == 0;
    if (!add && strcmp(verb, "remove") != 0) {
        out_error("members: unknown action '%s' (add NAME PEER_ADDR | remove NAME | transfer [NAME])", verb);
        return EXIT_USAGE;
    }
    if ((add && ctx->opts->npos != 3) || (!add && ctx->opts->npos != 2)) {
        out_error("usage: ddkv members add NAME PEER_ADDR | ddkv members remove NAME | ddkv members transfer [NAME]");
        return EXIT_USAGE;
    }
    const char *name = ctx->opts->pos[1];
    ddkv_client *c = NULL;
    int rc = cli_client(ctx, &c);
    if (rc != EXIT_DONE)
        return rc;
    uint64_t index = 0;
    ddkv_err e = add ? ddkv_member_add(c, name, ctx->opts->pos[2], &index)
                     : ddkv_member_remove(c, name, &index);
    if (e == DDKV_ERR_NOT_FOUND) {
        out_error("%s is not a member", name);
        rc = EXIT_NO;
    } else if (e != DDKV_OK) {
        rc = cli_fail(c, e, add ? "members add" : "members remove", name, strlen(name));
    } else if (ctx->fmt == OUT_JSON) {
        json_t *o = json_pack("{s:s, s:s, s:I}", "member", name, "change", verb, "index", (json_int_t)index);
        rc = o && out_json_line(o) == 0 ? EXIT_DONE : EXIT_UNAVAILABLE;
    } else {
        if (add)
            printf("%s added as a learner at %s (index %llu); the leader promotes it to voter once it "
                   "has caught up\n", name, ctx->opts->pos[2], (unsigned long long)index);
        else
            printf("%s removed (index %llu)\n", name, (unsigned long long)index);
        rc = EXIT_DONE;
    }
    ddkv_client_free(c);
    return rc;
}

/* --- the table --- */

const char cmd_kv_read_help[] =
    "Text output is the value's bytes exactly when stdout is not a terminal (`ddkv read k > file`).\n"
    "On a terminal, control characters are escaped as in `ddkv list` (newline and TAB kept) and a\n"
    "newline ends the value. -o json gives the value as UTF-8 or base64.\n";

const char cmd_kv_list_help[] =
    "Text output is one line per key, key TAB value, terminal or not. In keys and values a\n"
    "backslash is written \\\\, TAB \\t, newline \\n, carriage return \\r, and every other control\n"
    "character (and any byte that is not UTF-8 text) \\xHH; everything else as it is. Undo\n"
    "those escapes to get the bytes back. -o json is not escaped this way (JSON strings, or\n"
    "base64 for bytes that are not UTF-8).\n";

#define KV_OPTS(t) (t), sizeof(t) / sizeof((t)[0])

const struct cli_command cmd_kv_commands[] = {
    {"ping", "", "ask a node for the leader, term and round-trip time", NULL, 0, CMD_CLIENT, 0, 0,
     NULL, kv_ping},
    {"read", "KEY", "print a key's value (exit 1 if not found)", KV_OPTS(kv_read_opts), CMD_CLIENT,
     1, 1, NULL, kv_read},
    {"write", "KEY VALUE|-", "set a key (VALUE - reads it from stdin, binary safe; --ttl S: expires)",
     KV_OPTS(kv_write_opts), CMD_CLIENT, 2, 2, NULL, kv_write},
    {"delete", "KEY", "delete a key (exit 1 if not found); --prefix: every key under KEY",
     KV_OPTS(kv_delete_opts), CMD_CLIENT, 1, 1, NULL, kv_delete},
    {"list", "[PREFIX]", "print key<TAB>value for keys with the prefix, sorted",
     KV_OPTS(kv_list_opts), CMD_CLIENT, 0, 1, NULL, kv_list},
    {"status", "", "one row per member: name, address, role, term, commit, applied, lamport, healthy",
     NULL, 0, CMD_CLIENT, 0, 0, NULL, kv_status},
    {"members", "add NAME PEER_ADDR | remove NAME | transfer [NAME]",
     "change the cluster's members (one at a time), or hand leadership to a member", NULL, 0, CMD_CLIENT,
     1, 3, NULL, kv_members},
};

const size_t cmd_kv_count = sizeof cmd_kv_commands / sizeof cmd_kv_commands[0];
