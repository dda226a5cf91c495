/* The agent's named series: registry, outbox, sender and sources (agent_series.h). */
#include "agent/agent_series.h"

#include <inttypes.h>
#include <jansson.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agent/series.h"
#include "agent/retention.h"
#include "agent/series_store.h"
#include "agent/sources.h"
#include "util/clock.h"

#define LEASE_WINDOW_MS 60000u

struct reg_entry {
    struct series_meta meta;
    /* The sender's own (no lock): the minute being counted for the rollup. */
    uint64_t minute;
    struct series_agg agg;
    uint64_t meta_lease; /* the lease its meta was last written under */
};

struct out_point {
    uint32_t series;
    uint64_t t_ms;
    double v;
};

struct agent_series {
    const struct agent_config *cfg;
    struct retention_rules retention; /* --retention */
    char client[64];
    volatile int *stop;
    pthread_mutex_t mu; /* the registry's count and metas, the outbox */
    struct reg_entry reg[AGENT_SERIES_MAX];
    uint32_t n_reg;
    bool full_said;
    struct out_point *ring;
    size_t start, count;
    uint64_t dropped;
    struct cmd_source srcs[AGENT_SOURCES_MAX];
    char *specs[AGENT_SOURCES_MAX]; /* what srcs borrow */
    size_t n_srcs;
    pthread_t sender, builtin, cmd_threads[AGENT_SOURCES_MAX];
};

struct emit_ctx {
    struct agent_series *as;
    uint32_t interval_ms;
    uint64_t t_ms;
};

static void nap(volatile int *stop, uint64_t ms)
{
    while (ms && !*stop) {
        uint64_t step = ms < 100 ? ms : 100;
        clock_sleep_ms(step);
        ms -= step;
    }
}

/* A point into the outbox (any thread). */
static void emit_point(void *arg, const char *name, const char *unit, double v)
{
    struct emit_ctx *ec = arg;
    struct agent_series *as = ec->as;
    pthread_mutex_lock(&as->mu);
    uint32_t i = 0;
    while (i < as->n_reg && strcmp(as->reg[i].meta.name, name))
        i++;
    if (i == as->n_reg) {
        if (as->n_reg == AGENT_SERIES_MAX) {
            if (!as->full_said)
                fprintf(stderr, "ddkv agent: over %d series; %s and later new ones are left out\n", AGENT_SERIES_MAX,
                        name);
            as->full_said = true;
            pthread_mutex_unlock(&as->mu);
            return;
        }
        struct reg_entry *e = &as->reg[as->n_reg++];
        memset(e, 0, sizeof *e);
        snprintf(e->meta.name, sizeof e->meta.name, "%s", name);
        snprintf(e->meta.unit, sizeof e->meta.unit, "%s", unit ? unit : "");
        e->meta.interval_ms = ec->interval_ms;
        e->meta.retention_s = retention_for(&as->retention, name, as->cfg->retention_s);
    } else if (unit && *unit && strcmp(as->reg[i].meta.unit, unit)) {
        snprintf(as->reg[i].meta.unit, sizeof as->reg[i].meta.unit, "%s", unit);
        as->reg[i].meta_lease = 0; /* written again */
    }
    if (as->count == AGENT_SERIES_OUTBOX) {
        as->start = (as->start + 1) % AGENT_SERIES_OUTBOX;
        as->count--;
        as->dropped++;
    }
    as->ring[(as->start + as->count) % AGENT_SERIES_OUTBOX] = (struct out_point){i, ec->t_ms, v};
    as->count++;
    pthread_mutex_unlock(&as->mu);
}

/* --- the sender --- */

struct batch {
    struct ddkv_op ops[DDKV_TXN_MAX];
    char keys[DDKV_TXN_MAX][256];
    char *vals[DDKV_TXN_MAX];
    char small[DDKV_TXN_MAX][96];
    size_t n;
};

static bool batch_put(struct batch *b, const char *key, int kl, const char *val, uint64_t lease, bool owned)
{
    if (b->n == DDKV_TXN_MAX)
        return false;
    size_t i = b->n++;
    memcpy(b->keys[i], key, (size_t)kl + 1);
    if (owned) {
        b->vals[i] = (char *)val;
    } else {
        snprintf(b->small[i], sizeof b->small[i], "%s", val);
        b->vals[i] = NULL;
    }
    b->ops[i] = (struct ddkv_op){.kind = DDKV_OP_PUT, .key = b->keys[i], .key_len = (size_t)kl,
                                 .value = owned ? val : b->small[i], .value_len = strlen(owned ? val : b->small[i]),
                                 .lease_id = lease};
    return true;
}

static void batch_clear(struct batch *b)
{
    for (size_t i = 0; i < b->n; i++)
        free(b->vals[i]);
    b->n = 0;
}

static void rollup_text(char *buf, size_t cap, const struct series_agg *a)
{
    snprintf(buf, cap, "{\"n\":%" PRIu64 ",\"min\":%.10g,\"avg\":%.10g,\"max\":%.10g}", a->n, a->min,
             a->sum / (double)a->n, a->max);
}

/* The sender's leases, one per retention in use (a series' points and keys
 * live under a lease of its retention plus a minute; a new one each minute). */
struct sender_lease {
    uint32_t retention_s;
    uint64_t id, end_ms;
    bool fresh; /* granted in this round */
};

/* The lease for retention_s, granted when there is none or it is a minute
 * old; 0 when the cluster refused or did not answer. */
static uint64_t lease_for(ddkv_client *c, struct sender_lease *ls, size_t *n, uint32_t retention_s, uint64_t now,
                          bool *all_fresh)
{
    size_t i = 0;
    while (i < *n && ls[i].retention_s != retention_s)
        i++;
    if (i == *n) {
        if (*n == RETENTION_RULES_MAX + 1)
            i = 0; /* cannot happen (one retention per rule, and the default): reuse a slot */
        else
            (*n)++;
        ls[i] = (struct sender_lease){.retention_s = retention_s};
    }
    if (!ls[i].id || now >= ls[i].end_ms) {
        uint64_t ttl;
        if (ddkv_lease_grant(c, (uint64_t)retention_s * 1000 + LEASE_WINDOW_MS, &ls[i].id, &ttl) != DDKV_OK) {
            ls[i].id = 0;
            return 0;
        }
        ls[i].end_ms = now + LEASE_WINDOW_MS;
        ls[i].fresh = true;
    }
    if (!ls[i].fresh)
        *all_fresh = false;
    return ls[i].id;
}

static void *sender_main(void *arg)
{
    struct agent_series *as = arg;
    struct ddkv_options o = as->cfg->cluster;
    o.endpoints = as->cfg->endpoints;
    o.timeout_ms = as->cfg->timeout_ms;
    ddkv_client *c = NULL;
    char err[256];
    if (ddkv_client_new(&o, &c, err, sizeof err) != DDKV_OK) {
        fprintf(stderr, "ddkv agent: series: %s\n", err);
        return NULL;
    }
    static struct batch b; /* one sender per process */
    struct reg_entry shadow[AGENT_SERIES_MAX];
    struct sender_lease leases[RETENTION_RULES_MAX + 1];
    size_t n_leases = 0;
    uint64_t backoff = 100;
    bool down = false;
    while (!*as->stop) {
        pthread_mutex_lock(&as->mu);
        size_t avail = as->count;
        uint32_t n_reg = as->n_reg;
        memcpy(shadow, as->reg, sizeof shadow[0] * n_reg);
        pthread_mutex_unlock(&as->mu);
        if (!avail) {
            nap(as->stop, 100);
            continue;
        }
        uint64_t now = clock_wall_ms();
        bool all_fresh = true, no_lease = false;
        for (size_t i = 0; i < n_leases; i++)
            leases[i].fresh = false;
        /* Build one transaction from the oldest points (shadow: the rollup
         * state as it will be if it commits). */
        size_t taken = 0;
        batch_clear(&b);
        for (; taken < avail; taken++) {
            pthread_mutex_lock(&as->mu);
            struct out_point p = as->ring[(as->start + taken) % AGENT_SERIES_OUTBOX];
            bool gone = taken >= as->count;
            pthread_mutex_unlock(&as->mu);
            if (gone)
                break;
            struct reg_entry *e = &shadow[p.series];
            uint64_t lease = lease_for(c, leases, &n_leases, e->meta.retention_s, now, &all_fresh);
            if (!lease) {
                no_lease = true;
                break;
            }
            uint64_t minute = p.t_ms / SERIES_MINUTE_MS * SERIES_MINUTE_MS;
            size_t need = 1 + (e->meta_lease != lease) + (e->agg.n && minute != e->minute);
            if (b.n + need > DDKV_TXN_MAX)
                break;
            char key[256], val[96];
            int kl;
            if (e->meta_lease != lease) {
                kl = series_key_meta(key, as->client, e->meta.name);
                char *m = series_meta_text(&e->meta);
                if (!m)
                    break;
                batch_put(&b, key, kl, m, lease, true);
                e->meta_lease = lease;
            }
            if (e->agg.n && minute != e->minute) {
                kl = series_key_minute(key, as->client, e->meta.name, e->minute);
                rollup_text(val, sizeof val, &e->agg);
                batch_put(&b, key, kl, val, lease, false);
                memset(&e->agg, 0, sizeof e->agg);
            }
            e->minute = minute;
            series_agg_add(&e->agg, p.v);
            kl = series_key_raw(key, as->client, e->meta.name, p.t_ms);
            series_value_text(val, sizeof val, p.v);
            batch_put(&b, key, kl, val, lease, false);
        }
        if (no_lease)
            goto down;
        if (!b.n) {
            nap(as->stop, 100);
            continue;
        }
        struct ddkv_txn_result tr;
        ddkv_err e = ddkv_txn(c, NULL, 0, b.ops, b.n, NULL, 0, &tr);
        if (e == DDKV_ERR_BAD_REQUEST && !all_fresh) {
            n_leases = 0; /* a lease is gone (expired in an outage): new ones */
            continue;
        }
        if (e != DDKV_OK)
            goto down;
        pthread_mutex_lock(&as->mu);
        /* Committed: the points leave the outbox (unless the outbox dropped
         * some meanwhile: then only what is still there), the rollup state
         * and meta leases become the real ones. */
        size_t pop = taken < as->count ? taken : as->count;
        as->start = (as->start + pop) % AGENT_SERIES_OUTBOX;
        as->count -= pop;
        for (uint32_t i = 0; i < n_reg; i++) {
            as->reg[i].minute = shadow[i].minute;
            as->reg[i].agg = shadow[i].agg;
            as->reg[i].meta_lease = shadow[i].meta_lease;
        }
        pthread_mutex_unlock(&as->mu);
        if (down) {
            fprintf(stderr, "ddkv agent: series: cluster reachable again (%" PRIu64 " points dropped while it was not)\n",
                    as->dropped);
            down = false;
        }
        backoff = 100;
        if (taken == avail)
            nap(as->stop, 100);
        continue;
    down:
        if (!down)
            fprintf(stderr, "ddkv agent: series: cluster unreachable (%s); points wait in the outbox\n",
                    ddkv_client_errmsg(c));
        down = true;
        nap(as->stop, backoff);
        backoff = backoff * 2 > 2000 ? 2000 : backoff * 2;
    }
    batch_clear(&b);
    ddkv_client_free(c);
    return NULL;
}

/* --- sources --- */

static void *builtin_main(void *arg)
{
    struct agent_series *as = arg;
    struct builtin_state st;
    memset(&st, 0, sizeof st);
    uint64_t next = clock_mono_ms();
    while (!*as->stop) {
        struct emit_ctx ec = {as, as->cfg->interval_ms, clock_wall_ms()};
        builtin_sources_read(as->cfg->root, &st, ec.t_ms, emit_point, &ec);
        next += as->cfg->interval_ms;
        uint64_t now = clock_mono_ms();
        if (next > now)
            nap(as->stop, next - now);
        else
            next = now;
    }
    return NULL;
}

struct cmd_arg {
    struct agent_series *as;
    const struct cmd_source *src;
};

static void *cmd_main(void *arg)
{
    struct cmd_arg *ca = arg;
    struct agent_series *as = ca->as;
    const struct cmd_source *src = ca->src;
    char last_err[200] = "";
    uint64_t said_ms = 0, failures = 0, next = clock_mono_ms();
    while (!*as->stop) {
        struct emit_ctx ec = {as, src->interval_ms, clock_wall_ms()};
        struct cmd_run r;
        bool ok = cmd_source_run(src, as->stop, emit_point, &ec, &r);
        if (!ok) {
            failures++;
            /* Said when it starts failing, then once a minute: a broken
             * sensor script (whose every run may fail differently) does
             * not flood the log. */
            uint64_t now = clock_mono_ms();
            if (!last_err[0] || now - said_ms >= 60000) {
                fprintf(stderr, "ddkv agent: source %s: %s (%zu bad lines, %zu points; %" PRIu64 " failed runs)\n",
                        src->name, r.err, r.bad_lines, r.points, failures);
                snprintf(last_err, sizeof last_err, "%s", r.err[0] ? r.err : "failed");
                said_ms = now;
            }
        } else if (last_err[0]) {
            fprintf(stderr, "ddkv agent: source %s: working again\n", src->name);
            last_err[0] = 0;
        }
        next += src->interval_ms;
        uint64_t now = clock_mono_ms();
        if (next > now)
            nap(as->stop, next - now);
        else
            next = now; /* a slow command: no burst to catch up */
    }
    free(ca);
    return NULL;
}

struct agent_series *agent_series_start(const struct agent_config *cfg, const char *name, volatile int *stop,
                                        bool *usage)
{
    *usage = false;
    struct agent_series *as = calloc(1, sizeof *as);
    if (!as)
        return NULL;
    as->cfg = cfg;
    as->stop = stop;
    snprintf(as->client, sizeof as->client, "%s", name);
    char rerr[256];
    if (!retention_rules_parse(cfg->retention, &as->retention, rerr, sizeof rerr)) {
        fprintf(stderr, "ddkv agent: %s\n", rerr);
        *usage = true;
        free(as);
        return NULL;
    }
    if (cfg->sources && *cfg->sources) {
        char *copy = strdup(cfg->sources);
        for (char *save = NULL, *t = copy ? strtok_r(copy, "\n", &save) : NULL; t; t = strtok_r(NULL, "\n", &save)) {
            char err[256];
            if (as->n_srcs == AGENT_SOURCES_MAX) {
                fprintf(stderr, "ddkv agent: at most %d --source flags\n", AGENT_SOURCES_MAX);
                *usage = true;
                break;
            }
            /* The spec is kept for the agent's life: the command points into it. */
            char *spec = strdup(t);
            as->specs[as->n_srcs] = spec;
            if (!spec || !cmd_source_parse(spec, cfg->interval_ms, &as->srcs[as->n_srcs], err, sizeof err)) {
                fprintf(stderr, "ddkv agent: %s\n", spec ? err : "out of memory");
                *usage = spec != NULL;
                free(spec);
                break;
            }
            for (size_t i = 0; i < as->n_srcs; i++)
                if (!strcmp(as->srcs[i].name, as->srcs[as->n_srcs].name)) {
                    fprintf(stderr, "ddkv agent: two --source flags named %s\n", as->srcs[i].name);
                    *usage = true;
                }
            as->n_srcs++;
        }
        bool failed = *usage || !copy;
        free(copy);
        if (failed) {
            for (size_t i = 0; i < as->n_srcs; i++)
                free(as->specs[i]);
            free(as);
            return NULL;
        }
    }
    as->ring = malloc(AGENT_SERIES_OUTBOX * sizeof *as->ring);
    if (!as->ring) {
        free(as);
        return NULL;
    }
    pthread_mutex_init(&as->mu, NULL);
    pthread_create(&as->sender, NULL, sender_main, as);
    pthread_create(&as->builtin, NULL, builtin_main, as);
    for (size_t i = 0; i < as->n_srcs; i++) {
        struct cmd_arg *ca = malloc(sizeof *ca);
        *ca = (struct cmd_arg){as, &as->srcs[i]};
        pthread_create(&as->cmd_threads[i], NULL, cmd_main, ca);
        fprintf(stderr, "ddkv agent: source %s every %u ms: %s\n", as->srcs[i].name, as->srcs[i].interval_ms,
                as->srcs[i].command);
    }
    return as;
}

void agent_series_stop(struct agent_series *as)
{
    if (!as)
        return;
    pthread_join(as->sender, NULL);
    pthread_join(as->builtin, NULL);
    for (size_t i = 0; i < as->n_srcs; i++)
        pthread_join(as->cmd_threads[i], NULL);
    pthread_mutex_destroy(&as->mu);
    for (size_t i = 0; i < as->n_srcs; i++)
        free(as->specs[i]);
    free(as->ring);
    free(as);
}
