/* The hub's load test: N simulated agents writing what `ddkv agent` writes,
 * and open-loop readers of the hub's /api/clients/{id}/metrics, timed.
 *
 *   ddkv-bench-hub-agents --endpoints EPS --hub HOST:PORT [--agents 50]
 *       [--interval-ms 1000] [--duration-s 60] [--backfill-min 40] [--cores 8]
 *       [--query-rate 20] [--query-threads 2] [--retention-s 3600]
 *       [--presence-ttl-s 10] [--pid NAME=PID ...] [-o json]
 *
 * The agents (sim-000, sim-001, ...) are what src/apps/agent/agent.c keeps in the
 * cluster, built by the agent's own JSON functions (sample_to_json,
 * host_info_to_json), so the hub reads byte for byte what it reads from real
 * agents:
 *   clients/<name>               host_info JSON plus name, interval_ms,
 *                                started_ms, worker, under a presence lease
 *                                (--presence-ttl-s) kept alive every third of it;
 *   metrics/<name>/<ts, 13 digits> one sample (random-walk CPU per core,
 *                                memory, load, one disk) every --interval-ms,
 *                                under a retention lease shared by a minute of
 *                                samples, ttl --retention-s plus that minute.
 * Each agent has its own libddkv client (its own connection and session, as a
 * real agent's sender has); a thread drives AGENTS_PER_THREAD of them with
 * blocking calls, which is plenty at one write per agent per second.
 *
 * History first: every agent's samples start --backfill-min minutes in the
 * past and are written in transactions of up to BATCH puts until they reach
 * the present (the way a real agent flushes a backlog, but batched), so the
 * hub's default window (the last 40 minutes) holds a full dashboard's worth
 * of points per client. From then on each sample is one write when it is due.
 * The timed phase starts once every agent has caught up.
 *
 * The readers: --query-threads threads share --query-rate GETs per second of
 * /api/clients/<random sim>/metrics (no since: the hub's default window), over
 * HTTP/1.1 keep-alive on raw sockets. The rate is kept by a schedule, not by
 * the answers: the latency of a query is measured from the moment it was due,
 * so an answer that arrives late also delays, and is charged to, the queries
 * queued behind it on that thread (no coordinated omission); the time from
 * sending to the whole answer, and to its first bytes (the hub's own work:
 * the hub sends nothing before the whole reply is built), are reported
 * beside it. An answer is good when it is HTTP 200, a JSON array, and holds
 * at least the points written in the window it covers, less
 * WINDOW_SLACK_POINTS (the sample being written at that moment, and the
 * window's edge). The array is checked by a structural scan (brackets,
 * braces, strings) rather than a full parse, so checking 20 MB/s of answers
 * does not take the CPU the hub needs.
 *
 * With --pid NAME=PID (repeatable) it also reports each process's CPU use
 * over the timed phase and its resident memory at the end, from /proc.
 *
 * Prints a summary to stderr, and with -o json one JSON object to stdout.
 * Exits 0 if no write, keepalive or query failed, 1 otherwise, 2 on usage. */
#define _GNU_SOURCE
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "agent/sample.h"
#include "ddkv/ddkv.h"
#include "httpc.h"
#include "util/clock.h"
#include "util/rng.h"

#define AGENTS_MAX 1000
#define AGENTS_PER_THREAD 5
#define QUERY_THREADS_MAX 64
#define PIDS_MAX 8
#define BATCH 120                        /* puts per backfill transaction (<= DDKV_TXN_MAX) */
#define WINDOW_MS 60000u                 /* samples sharing a retention lease (agent.c) */
#define HUB_DEFAULT_WINDOW_MS 2400000u   /* the hub's default ?since: 40 minutes (hub.c) */
#define WINDOW_SLACK_POINTS 3
#define CLIENT_TIMEOUT_MS 3000u          /* the agent's default per-operation deadline */
#define QUERY_TIMEOUT_MS 10000u
#define BACKFILL_RETRIES 5
#define BACKFILL_MAX_S 1800

_Static_assert(BATCH <= DDKV_TXN_MAX, "a backfill batch is one transaction");

/* --- clocks, randomness, growable latency arrays --- */

static void sleep_ns(uint64_t ns)
{
    struct timespec ts = {(time_t)(ns / 1000000000u), (long)(ns % 1000000000u)};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

/* Uniform in [-1, 1). */
static double unit(uint64_t *s)
{
    return (double)(rng_next(s) >> 11) / (double)(1ull << 52) - 1.0;
}

static double clampd(double v, double lo, double hi)
{
    return v < lo ? lo : v > hi ? hi : v;
}

/* Latencies in ns, appended by one thread, merged and sorted at the end. */
struct lat {
    uint64_t *v;
    size_t n, cap;
};

static void lat_add(struct lat *l, uint64_t ns)
{
    if (l->n == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 4096;
        uint64_t *v = realloc(l->v, cap * sizeof *v);
        if (!v)
            return; /* out of memory: drop the sample rather than the run */
        l->v = v;
        l->cap = cap;
    }
    l->v[l->n++] = ns;
}

static void lat_merge(struct lat *into, const struct lat *from)
{
    for (size_t i = 0; i < from->n; i++)
        lat_add(into, from->v[i]);
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

/* The p-quantile (0 < p <= 1) of a sorted array, in ms: the smallest value
 * with at least p of the samples at or below it. 0 when empty. */
static double pct_ms(const struct lat *sorted, double p)
{
    if (!sorted->n)
        return 0;
    size_t i = (size_t)ceil(p * (double)sorted->n);
    i = i ? i - 1 : 0;
    if (i >= sorted->n)
        i = sorted->n - 1;
    return (double)sorted->v[i] / 1e6;
}

/* --- configuration and shared counters --- */

static struct {
    const char *endpoints;
    char hub_host[64], hub_port[16];
    const char *hub; /* HOST:PORT */
    int agents;
    uint32_t interval_ms;
    double duration_s;
    uint32_t backfill_min;
    uint32_t cores;
    double query_rate;
    int query_threads;
    uint32_t retention_s;
    uint32_t presence_ttl_s;
    bool json;
    struct {
        char name[32];
        int pid;
    } pids[PIDS_MAX];
    int npids;
} cfg = {.agents = 50, .interval_ms = 1000, .duration_s = 60, .backfill_min = 40, .cores = 8,
         .query_rate = 20, .query_threads = 2, .retention_s = 3600, .presence_ttl_s = 10};

static atomic_int stop_agents, stop_queries, timed, caught_up_threads;
static atomic_ullong samples_written, write_errors, keepalive_errors, backfill_points, backfill_txns;
static uint64_t data_start_ms; /* the first sample's time: no agent has points before it */

/* At most one error line per second on stderr, so a sick cluster cannot
 * bury the summary. */
static void complain(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void complain(const char *fmt, ...)
{
    static atomic_ullong last_ns;
    unsigned long long now = clock_mono_ns(), last = atomic_load(&last_ns);
    if (now - last < 1000000000u || !atomic_compare_exchange_strong(&last_ns, &last, now))
        return;
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "hub_agents: ");
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
}

/* --- one simulated agent --- */

struct agent_sim {
    int idx;
    char name[16];
    ddkv_client *c;
    uint64_t rng;
    struct host_info hi;
    uint64_t started_ms;
    uint64_t presence;            /* lease id, 0: not announced */
    uint64_t next_keepalive_ns;
    uint64_t window_lease, window_end_ms; /* live samples' retention lease (agent.c) */
    uint64_t bf_lease, bf_minute;         /* backfill: the lease of bf_minute's samples */
    uint64_t next_ts;             /* wall ms of the next sample */
    struct sample s;              /* the random walk's state */
    double cpu_base;              /* each machine idles at its own level */
};

/* The machine's static data: plausible, distinct per agent. */
static void agent_host_info(struct agent_sim *a)
{
    struct host_info *hi = &a->hi;
    memset(hi, 0, sizeof *hi);
    snprintf(hi->hostname, sizeof hi->hostname, "%s", a->name);
    hi->n_addrs = 2;
    snprintf(hi->addrs[0].ifname, sizeof hi->addrs[0].ifname, "eth0");
    snprintf(hi->addrs[0].addr, sizeof hi->addrs[0].addr, "10.42.%d.%d", a->idx / 250, a->idx % 250 + 1);
    hi->addrs[0].family = 4;
    snprintf(hi->addrs[1].ifname, sizeof hi->addrs[1].ifname, "eth0");
    snprintf(hi->addrs[1].addr, sizeof hi->addrs[1].addr, "fe80::5054:ff:fe42:%x", a->idx);
    hi->addrs[1].family = 6;
    snprintf(hi->os, sizeof hi->os, "Debian GNU/Linux 12 (bookworm)");
    snprintf(hi->sysname, sizeof hi->sysname, "Linux");
    snprintf(hi->release, sizeof hi->release, "6.1.0-18-amd64");
    snprintf(hi->machine, sizeof hi->machine, "x86_64");
    hi->cpus = cfg.cores;
    snprintf(hi->cpu_model, sizeof hi->cpu_model, "Simulated CPU @ 2.40GHz");
    hi->mem_total = (8ull << 30) << (a->idx % 3); /* 8, 16 or 32 GiB */
    hi->boot_time_s = (int64_t)(a->started_ms / 1000) - 86400 * (1 + a->idx % 30);
}

/* The walk's starting point. */
static void agent_sample_init(struct agent_sim *a)
{
    struct sample *s = &a->s;
    memset(s, 0, sizeof *s);
    a->cpu_base = 5 + (double)(rng_next(&a->rng) % 50);
    s->n_cores = cfg.cores;
    for (uint32_t i = 0; i < s->n_cores; i++)
        s->cpu_core_pct[i] = (float)a->cpu_base;
    s->mem_total = a->hi.mem_total;
    s->mem_used = s->mem_total / 3;
    s->swap_total = 2ull << 30;
    s->swap_free = s->swap_total;
    s->load1 = s->load5 = s->load15 = a->cpu_base / 100 * s->n_cores;
    s->n_disks = 1;
    struct disk_sample *d = &s->disks[0];
    snprintf(d->mount, sizeof d->mount, "/");
    d->total = 100ull << 30;
    d->used = d->total / 4 + (rng_next(&a->rng) % (d->total / 4));
}

/* One step of the walk, as the sample at ts_ms. */
static void agent_sample_step(struct agent_sim *a, uint64_t ts_ms)
{
    struct sample *s = &a->s;
    s->ts_ms = ts_ms;
    double sum = 0;
    for (uint32_t i = 0; i < s->n_cores; i++) {
        /* Each core wanders, pulled back towards the machine's level. */
        double v = s->cpu_core_pct[i] + 6 * unit(&a->rng) + 0.1 * (a->cpu_base - s->cpu_core_pct[i]);
        s->cpu_core_pct[i] = (float)clampd(v, 0, 100);
        sum += s->cpu_core_pct[i];
    }
    s->cpu_pct = (float)(sum / s->n_cores);
    double used = (double)s->mem_used + 0.01 * (double)s->mem_total * unit(&a->rng);
    s->mem_used = (uint64_t)clampd(used, 0.1 * (double)s->mem_total, 0.9 * (double)s->mem_total);
    s->mem_avail = s->mem_total - s->mem_used;
    s->mem_pct = (float)(100.0 * (double)s->mem_used / (double)s->mem_total);
    s->swap_free = s->swap_total - (uint64_t)(s->swap_total / 100 * (rng_next(&a->rng) % 3));
    /* Load follows CPU, smoothed over 1, 5 and 15 minutes of samples. */
    double run = s->cpu_pct / 100.0 * s->n_cores * (1 + 0.2 * unit(&a->rng));
    double per_min = 60000.0 / cfg.interval_ms;
    s->load1 += (run - s->load1) / per_min;
    s->load5 += (run - s->load5) / (5 * per_min);
    s->load15 += (run - s->load15) / (15 * per_min);
    s->uptime_s = ts_ms / 1000 - (uint64_t)a->hi.boot_time_s;
    struct disk_sample *d = &s->disks[0];
    if (rng_next(&a->rng) % 4 == 0 && d->used < d->total / 10 * 9)
        d->used += 4096 * (rng_next(&a->rng) % 256);
    uint64_t reserved = d->total / 20; /* root's 5% */
    d->avail = d->total - d->used - reserved;
    d->pct = (float)(100.0 * (double)d->used / (double)(d->used + d->avail));
}

static char *json_text(json_t *o)
{
    char *v = o ? json_dumps(o, SAMPLE_JSON_FLAGS) : NULL;
    json_decref(o);
    return v;
}

/* Grant the presence lease and write clients/<name> under it (agent.c: announce). */
static ddkv_err agent_announce(struct agent_sim *a)
{
    uint64_t ttl;
    ddkv_err e = ddkv_lease_grant(a->c, (uint64_t)cfg.presence_ttl_s * 1000, &a->presence, &ttl);
    if (e != DDKV_OK) {
        a->presence = 0;
        return e;
    }
    char *v = json_text(client_record_json(&a->hi, a->name, cfg.interval_ms, a->started_ms, false));
    if (!v)
        return DDKV_ERR_NOMEM;
    char key[64];
    snprintf(key, sizeof key, "clients/%s", a->name);
    struct ddkv_write_result wr;
    e = ddkv_write(a->c, key, strlen(key), v, strlen(v), a->presence, &wr);
    free(v);
    a->next_keepalive_ns = clock_mono_ns() + (uint64_t)cfg.presence_ttl_s * 1000000000u / 3;
    return e;
}

/* Keep the presence lease alive every third of its ttl; announce again if it
 * is gone. Every failure here is a failure of the run. */
static void agent_presence_tick(struct agent_sim *a)
{
    if (a->presence && clock_mono_ns() < a->next_keepalive_ns)
        return;
    ddkv_err e = a->presence ? ddkv_lease_keepalive(a->c, a->presence, NULL) : DDKV_ERR_NOT_FOUND;
    if (e == DDKV_OK) {
        a->next_keepalive_ns = clock_mono_ns() + (uint64_t)cfg.presence_ttl_s * 1000000000u / 3;
        return;
    }
    atomic_fetch_add(&keepalive_errors, 1);
    complain("%s: keepalive: %s (%s)", a->name, ddkv_strerror(e), ddkv_client_errmsg(a->c));
    if (e == DDKV_ERR_NOT_FOUND && agent_announce(a) == DDKV_OK)
        return;
    /* Try again in a tenth of the ttl, as the agent does after a failure. */
    a->next_keepalive_ns = clock_mono_ns() + (uint64_t)cfg.presence_ttl_s * 1000000000u / 10;
}

/* The retention lease of the backfill minute holding ts: it lives until a
 * real agent's lease for that minute would have (granted at the minute's
 * start for --retention-s plus a minute). */
static ddkv_err agent_backfill_lease(struct agent_sim *a, uint64_t ts, uint64_t now_ms)
{
    uint64_t minute = ts / WINDOW_MS;
    if (a->bf_lease && a->bf_minute == minute)
        return DDKV_OK;
    uint64_t until = minute * WINDOW_MS + (uint64_t)cfg.retention_s * 1000 + WINDOW_MS;
    uint64_t ttl_ms = until > now_ms + 1000 ? until - now_ms : 1000, granted;
    ddkv_err e = ddkv_lease_grant(a->c, ttl_ms, &a->bf_lease, &granted);
    a->bf_minute = e == DDKV_OK ? minute : 0;
    if (e != DDKV_OK)
        a->bf_lease = 0;
    return e;
}

/* Write the agent's due samples (ts <= now) in one transaction of at most
 * BATCH puts. Returns how many were written (0 on failure, after retries:
 * the puts are idempotent, so a retry after UNKNOWN_OUTCOME is safe). */
static size_t agent_backfill_batch(struct agent_sim *a)
{
    uint64_t now = clock_wall_ms();
    struct ddkv_op ops[BATCH];
    char keys[BATCH][48];
    char *vals[BATCH];
    size_t n = 0;
    uint64_t ts = a->next_ts;
    struct sample saved = a->s;
    ddkv_err e = DDKV_OK;
    for (; n < BATCH && ts <= now; ts += cfg.interval_ms, n++) {
        if ((e = agent_backfill_lease(a, ts, now)) != DDKV_OK)
            break;
        agent_sample_step(a, ts);
        int kl = snprintf(keys[n], sizeof keys[n], "metrics/%s/%013" PRIu64, a->name, ts);
        vals[n] = json_text(sample_to_json(&a->s));
        if (!vals[n]) {
            e = DDKV_ERR_NOMEM;
            break;
        }
        ops[n] = (struct ddkv_op){.kind = DDKV_OP_PUT, .key = keys[n], .key_len = (size_t)kl, .value = vals[n],
                                  .value_len = strlen(vals[n]), .lease_id = a->bf_lease};
    }
    /* Every failed attempt counts against the cluster; a retry resends the
     * same puts, which is harmless whether or not the last one applied. */
    for (int attempt = 0; e == DDKV_OK && n; attempt++) {
        struct ddkv_txn_result r;
        e = ddkv_txn(a->c, NULL, 0, ops, n, NULL, 0, &r);
        if (e == DDKV_OK)
            break;
        if (e == DDKV_ERR_BAD_REQUEST)
            a->bf_lease = 0; /* a lease is gone: the next call rebuilds the batch */
        if (e == DDKV_ERR_BAD_REQUEST || attempt == BACKFILL_RETRIES)
            break;
        atomic_fetch_add(&write_errors, 1);
        complain("%s: backfill transaction: %s (%s); retrying", a->name, ddkv_strerror(e), ddkv_client_errmsg(a->c));
    }
    for (size_t i = 0; i < n; i++)
        free(vals[i]);
    if (e != DDKV_OK) {
        atomic_fetch_add(&write_errors, 1);
        complain("%s: backfill: %s (%s)", a->name, ddkv_strerror(e), ddkv_client_errmsg(a->c));
        a->s = saved; /* the same walk again next time */
        sleep_ns(100000000u);
        return 0;
    }
    a->next_ts = ts;
    atomic_fetch_add(&backfill_points, n);
    atomic_fetch_add(&backfill_txns, 1);
    return n;
}

/* Write the sample due at a->next_ts on its own, under the minute's retention
 * lease (agent.c: the sender's drain loop). */
static void agent_live_sample(struct agent_sim *a, struct lat *wl)
{
    uint64_t now = clock_wall_ms();
    if (!a->window_lease || now >= a->window_end_ms) {
        uint64_t ttl;
        ddkv_err e = ddkv_lease_grant(a->c, (uint64_t)cfg.retention_s * 1000 + WINDOW_MS, &a->window_lease, &ttl);
        if (e != DDKV_OK) {
            a->window_lease = 0;
            atomic_fetch_add(&write_errors, 1);
            complain("%s: retention lease: %s (%s)", a->name, ddkv_strerror(e), ddkv_client_errmsg(a->c));
            sleep_ns(100000000u);
            return; /* the sample stays due: tried again on the next turn */
        }
        a->window_end_ms = now + WINDOW_MS;
    }
    struct sample saved = a->s;
    agent_sample_step(a, a->next_ts);
    char key[48];
    snprintf(key, sizeof key, "metrics/%s/%013" PRIu64, a->name, a->next_ts);
    char *v = json_text(sample_to_json(&a->s));
    if (!v) {
        a->s = saved;
        atomic_fetch_add(&write_errors, 1);
        return;
    }
    struct ddkv_write_result wr;
    uint64_t t0 = clock_mono_ns();
    ddkv_err e = ddkv_write(a->c, key, strlen(key), v, strlen(v), a->window_lease, &wr);
    uint64_t took = clock_mono_ns() - t0;
    free(v);
    if (e != DDKV_OK) {
        a->s = saved;
        if (e == DDKV_ERR_BAD_REQUEST)
            a->window_lease = 0; /* the lease is gone: the agent grants another */
        atomic_fetch_add(&write_errors, 1);
        complain("%s: sample write: %s (%s)", a->name, ddkv_strerror(e), ddkv_client_errmsg(a->c));
        sleep_ns(100000000u);
        return;
    }
    if (atomic_load(&timed)) {
        lat_add(wl, took);
        atomic_fetch_add(&samples_written, 1);
    }
    a->next_ts += cfg.interval_ms;
}

/* --- the agent threads --- */

struct agent_thread {
    pthread_t th;
    struct agent_sim *agents;
    int n;
    struct lat writes; /* sample write latencies in the timed phase */
};

static void *agent_thread_main(void *arg)
{
    struct agent_thread *t = arg;
    for (int i = 0; i < t->n; i++) {
        struct agent_sim *a = &t->agents[i];
        struct ddkv_options o;
        ddkv_options_init(&o);
        o.endpoints = cfg.endpoints;
        o.timeout_ms = CLIENT_TIMEOUT_MS;
        char err[256];
        if (ddkv_client_new(&o, &a->c, err, sizeof err) != DDKV_OK) {
            fprintf(stderr, "hub_agents: %s: %s\n", a->name, err);
            atomic_fetch_add(&write_errors, 1);
            a->c = NULL;
            continue;
        }
        ddkv_err e = agent_announce(a);
        if (e != DDKV_OK) {
            atomic_fetch_add(&write_errors, 1);
            complain("%s: announce: %s (%s)", a->name, ddkv_strerror(e), ddkv_client_errmsg(a->c));
        }
    }
    /* History: round-robin one batch per agent until every agent is within
     * one interval of now. */
    for (bool behind = true; behind && !atomic_load(&stop_agents);) {
        behind = false;
        for (int i = 0; i < t->n; i++) {
            struct agent_sim *a = &t->agents[i];
            if (!a->c)
                continue;
            agent_presence_tick(a);
            if (a->next_ts + cfg.interval_ms <= clock_wall_ms()) {
                agent_backfill_batch(a);
                behind = true;
            }
        }
    }
    atomic_fetch_add(&caught_up_threads, 1);
    /* Live: each sample when it is due, one write each. */
    while (!atomic_load(&stop_agents)) {
        struct agent_sim *next = NULL;
        for (int i = 0; i < t->n; i++) {
            struct agent_sim *a = &t->agents[i];
            if (!a->c)
                continue;
            agent_presence_tick(a);
            if (!next || a->next_ts < next->next_ts)
                next = a;
        }
        if (!next) {
            sleep_ns(100000000u);
            continue;
        }
        uint64_t now = clock_wall_ms();
        if (next->next_ts > now) {
            uint64_t wait = next->next_ts - now;
            sleep_ns((wait < 100 ? wait : 100) * 1000000u); /* short naps: keepalives and stop */
            continue;
        }
        agent_live_sample(next, &t->writes);
    }
    /* A clean stop leaves the hub's list at once (agent.c). */
    for (int i = 0; i < t->n; i++) {
        struct agent_sim *a = &t->agents[i];
        if (a->c && a->presence)
            ddkv_lease_revoke(a->c, a->presence);
        ddkv_client_free(a->c);
        a->c = NULL;
    }
    return NULL;
}

/* --- the hub's readers: HTTP/1.1 keep-alive over a raw socket --- */

/* One response with a Content-Length body (what evhttp_send_reply sends).
 * On success the body is h->buf[hlen .. hlen + *blen) until the next call;
 * *keep is false when the hub closes the connection after it. */
static const char *hresponse(struct httpc *h, int *status, size_t *hlen, size_t *blen, bool *keep,
                             uint64_t deadline_ns)
{
    char *end;
    const char *e;
    while (!(end = memmem(h->buf ? h->buf : "", h->len, "\r\n\r\n", 4)))
        if ((e = httpc_fill(h, deadline_ns)))
            return e;
    *hlen = (size_t)(end - h->buf) + 4;
    char head[4096];
    size_t cl = *hlen < sizeof head ? *hlen : sizeof head - 1;
    memcpy(head, h->buf, cl);
    head[cl] = 0;
    if (sscanf(head, "HTTP/1.%*d %d", status) != 1)
        return "garbled status line";
    long content_length = -1;
    *keep = true;
    for (char *line = strstr(head, "\r\n"); line && line[2]; line = strstr(line + 2, "\r\n")) {
        char *l = line + 2;
        if (strncasecmp(l, "content-length:", 15) == 0)
            content_length = strtol(l + 15, NULL, 10);
        else if (strncasecmp(l, "connection:", 11) == 0 && strncasecmp(l + 11 + strspn(l + 11, " "), "close", 5) == 0)
            *keep = false;
    }
    if (content_length < 0)
        return "response without a Content-Length";
    while (h->len < *hlen + (size_t)content_length)
        if ((e = httpc_fill(h, deadline_ns)))
            return e;
    *blen = (size_t)content_length;
    return NULL;
}

/* The number of elements of a top-level JSON array, or -1 if p is not one:
 * a structural scan (strings, escapes, nesting), not a full parse. */
static bool is_space(char ch)
{
    return ch == ' ' || ch == '\n' || ch == '\r' || ch == '\t';
}

static long json_array_count(const char *p, size_t n)
{
    size_t i = 0;
    while (i < n && is_space(p[i]))
        i++;
    if (i == n || p[i] != '[')
        return -1;
    long commas = 0;
    int depth = 1;
    bool in_str = false, empty = true;
    for (i++; i < n; i++) {
        char ch = p[i];
        if (in_str) {
            if (ch == '\\')
                i++;
            else if (ch == '"')
                in_str = false;
            continue;
        }
        if (is_space(ch))
            continue;
        if ((ch == ']' || ch == '}') && --depth == 0) {
            if (ch != ']')
                return -1;
            for (i++; i < n; i++) /* only whitespace may follow */
                if (!is_space(p[i]))
                    return -1;
            return empty ? 0 : commas + 1;
        }
        empty = false;
        if (ch == '"')
            in_str = true;
        else if (ch == '[' || ch == '{')
            depth++;
        else if (ch == ',' && depth == 1)
            commas++;
    }
    return -1; /* unterminated */
}

struct query_thread {
    pthread_t th;
    int id;
    uint64_t start_ns;
    uint64_t rng;
    struct lat lat;     /* from the time the query was due to the whole answer */
    struct lat service; /* from sending it to the whole answer */
    struct lat ttfb;    /* from sending it to the answer's first bytes: the hub's work, not the transfer */
    uint64_t queries, errors, points, bytes;
    long min_points;
};

static void *query_thread_main(void *arg)
{
    struct query_thread *q = arg;
    struct httpc h = {.fd = -1};
    double period_ns = 1e9 * cfg.query_threads / cfg.query_rate;
    q->min_points = -1;
    for (uint64_t k = 0; !atomic_load(&stop_queries); k++) {
        /* Thread i takes the slots i, i + T, i + 2T... of the shared schedule. */
        uint64_t due = q->start_ns + (uint64_t)(period_ns * (double)k + 1e9 * q->id / cfg.query_rate);
        for (uint64_t now; (now = clock_mono_ns()) < due && !atomic_load(&stop_queries);)
            sleep_ns(due - now < 100000000u ? due - now : 100000000u); /* short naps notice the stop */
        if (atomic_load(&stop_queries))
            break;
        int sim = (int)(rng_next(&q->rng) % (uint64_t)cfg.agents);
        char req[256];
        int rl = snprintf(req, sizeof req,
                          "GET /api/clients/sim-%03d/metrics HTTP/1.1\r\nHost: %s:%s\r\n"
                          "Accept: application/json\r\n\r\n",
                          sim, cfg.hub_host, cfg.hub_port);
        uint64_t sent = clock_mono_ns(), deadline = sent + (uint64_t)QUERY_TIMEOUT_MS * 1000000u;
        h.first_byte_ns = 0;
        const char *e = NULL;
        if (h.fd < 0)
            e = httpc_connect(&h, cfg.hub, deadline);
        if (!e)
            e = httpc_send(&h, req, (size_t)rl, deadline);
        int status = 0;
        size_t hlen = 0, blen = 0;
        bool keep = false;
        if (!e)
            e = hresponse(&h, &status, &hlen, &blen, &keep, deadline);
        uint64_t done = clock_mono_ns();
        q->queries++;
        if (e) {
            q->errors++;
            complain("query sim-%03d: %s", sim, e);
            httpc_close(&h);
            continue;
        }
        /* The points the window holds: it spans the last 40 minutes, or back
         * to the first sample if history is shorter. */
        uint64_t wnow = clock_wall_ms();
        uint64_t from = wnow - HUB_DEFAULT_WINDOW_MS > data_start_ms ? wnow - HUB_DEFAULT_WINDOW_MS : data_start_ms;
        long want = (long)((wnow - from) / cfg.interval_ms) - WINDOW_SLACK_POINTS;
        long points = status == 200 ? json_array_count(h.buf + hlen, blen) : -1;
        if (status != 200 || points < want) {
            q->errors++;
            complain("query sim-%03d: HTTP %d, %ld points (want >= %ld): %.120s", sim, status, points, want,
                     h.buf + hlen);
        } else {
            lat_add(&q->lat, done - (due < sent ? due : sent));
            lat_add(&q->service, done - sent);
            lat_add(&q->ttfb, h.first_byte_ns - sent);
            q->points += (uint64_t)points;
            q->bytes += blen;
            if (q->min_points < 0 || points < q->min_points)
                q->min_points = points;
        }
        /* Drop this response from the buffer, keep anything after it. */
        size_t used = hlen + blen;
        memmove(h.buf, h.buf + used, h.len - used);
        h.len -= used;
        if (!keep)
            httpc_close(&h);
    }
    httpc_free(&h);
    return NULL;
}

/* --- processes watched through /proc --- */

/* utime + stime of pid, in clock ticks; -1 if it is gone. */
static long long proc_cpu_ticks(int pid)
{
    char path[64], buf[2048];
    snprintf(path, sizeof path, "/proc/%d/stat", pid);
    FILE *f = fopen(path, "re");
    if (!f)
        return -1;
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = 0;
    /* The command name may hold spaces and parentheses: fields start after the last ')'. */
    char *p = strrchr(buf, ')');
    unsigned long long ut, st;
    if (!p || sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &ut, &st) != 2)
        return -1;
    return (long long)(ut + st);
}

/* VmRSS of pid in MiB; -1 if it is gone. */
static double proc_rss_mib(int pid)
{
    char path[64], line[256];
    snprintf(path, sizeof path, "/proc/%d/status", pid);
    FILE *f = fopen(path, "re");
    if (!f)
        return -1;
    double kib = -1;
    while (fgets(line, sizeof line, f))
        if (sscanf(line, "VmRSS: %lf", &kib) == 1)
            break;
    fclose(f);
    return kib < 0 ? -1 : kib / 1024;
}

/* --- main --- */

static int usage(void)
{
    fprintf(stderr,
            "usage: ddkv-bench-hub-agents --endpoints EPS --hub HOST:PORT [--agents 50] [--interval-ms 1000]\n"
            "           [--duration-s 60] [--backfill-min 40] [--cores 8] [--query-rate 20] [--query-threads 2]\n"
            "           [--retention-s 3600] [--presence-ttl-s 10] [--pid NAME=PID ...] [-o json]\n");
    return 2;
}

/* The 1, 5 and 15 minute load averages as a JSON array. */
static void read_loadavg(char *dst, size_t n)
{
    FILE *f = fopen("/proc/loadavg", "re");
    double a = 0, b = 0, c = 0;
    if (f) {
        if (fscanf(f, "%lf %lf %lf", &a, &b, &c) != 3)
            a = b = c = 0;
        fclose(f);
    }
    snprintf(dst, n, "[%.2f,%.2f,%.2f]", a, b, c);
}

int main(int argc, char **argv)
{
    const char *hub = NULL;
    for (int i = 1; i < argc; i++) {
        const char *f = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!v)
            return usage();
        i++;
        if (!strcmp(f, "--endpoints"))
            cfg.endpoints = v;
        else if (!strcmp(f, "--hub"))
            hub = v;
        else if (!strcmp(f, "--agents"))
            cfg.agents = atoi(v);
        else if (!strcmp(f, "--interval-ms"))
            cfg.interval_ms = (uint32_t)atol(v);
        else if (!strcmp(f, "--duration-s"))
            cfg.duration_s = atof(v);
        else if (!strcmp(f, "--backfill-min"))
            cfg.backfill_min = (uint32_t)atol(v);
        else if (!strcmp(f, "--cores"))
            cfg.cores = (uint32_t)atol(v);
        else if (!strcmp(f, "--query-rate"))
            cfg.query_rate = atof(v);
        else if (!strcmp(f, "--query-threads"))
            cfg.query_threads = atoi(v);
        else if (!strcmp(f, "--retention-s"))
            cfg.retention_s = (uint32_t)atol(v);
        else if (!strcmp(f, "--presence-ttl-s"))
            cfg.presence_ttl_s = (uint32_t)atol(v);
        else if (!strcmp(f, "-o") && !strcmp(v, "json"))
            cfg.json = true;
        else if (!strcmp(f, "--pid") && cfg.npids < PIDS_MAX && strchr(v, '=')) {
            const char *eq = strchr(v, '=');
            snprintf(cfg.pids[cfg.npids].name, sizeof cfg.pids[0].name, "%.*s", (int)(eq - v), v);
            cfg.pids[cfg.npids++].pid = atoi(eq + 1);
        } else
            return usage();
    }
    const char *colon = hub ? strrchr(hub, ':') : NULL;
    if (!cfg.endpoints || !colon || (size_t)(colon - hub) >= sizeof cfg.hub_host ||
        strlen(colon + 1) >= sizeof cfg.hub_port || cfg.agents < 1 || cfg.agents > AGENTS_MAX ||
        cfg.interval_ms < 10 || cfg.duration_s <= 0 || cfg.cores < 1 || cfg.cores > SAMPLE_CORES_MAX ||
        cfg.query_rate <= 0 || cfg.query_threads < 1 || cfg.query_threads > QUERY_THREADS_MAX ||
        cfg.retention_s < 60 || cfg.presence_ttl_s < 1)
        return usage();
    snprintf(cfg.hub_host, sizeof cfg.hub_host, "%.*s", (int)(colon - hub), hub);
    snprintf(cfg.hub_port, sizeof cfg.hub_port, "%s", colon + 1);
    cfg.hub = hub;
    signal(SIGPIPE, SIG_IGN);

    /* The agents, AGENTS_PER_THREAD to a thread; their samples start
     * --backfill-min minutes ago, spread over one interval. */
    uint64_t t0_ms = clock_wall_ms(), seed = clock_mono_ns();
    uint64_t first_ms = t0_ms - (uint64_t)cfg.backfill_min * 60000;
    uint64_t spread_ms = (uint64_t)cfg.interval_ms / (uint64_t)cfg.agents;
    data_start_ms = first_ms + spread_ms * (uint64_t)(cfg.agents - 1); /* when the last agent's history starts */
    struct agent_sim *agents = calloc((size_t)cfg.agents, sizeof *agents);
    int nthreads = (cfg.agents + AGENTS_PER_THREAD - 1) / AGENTS_PER_THREAD;
    struct agent_thread *ats = calloc((size_t)nthreads, sizeof *ats);
    if (!agents || !ats) {
        fprintf(stderr, "hub_agents: out of memory\n");
        return 1;
    }
    for (int i = 0; i < cfg.agents; i++) {
        struct agent_sim *a = &agents[i];
        a->idx = i;
        snprintf(a->name, sizeof a->name, "sim-%03d", i);
        a->rng = (seed ^ ((uint64_t)(i + 1) * 0x9e3779b97f4a7c15u)) | 1;
        a->started_ms = t0_ms;
        a->next_ts = first_ms + spread_ms * (uint64_t)i;
        agent_host_info(a);
        agent_sample_init(a);
    }
    for (int t = 0; t < nthreads; t++) {
        ats[t].agents = &agents[t * AGENTS_PER_THREAD];
        ats[t].n = cfg.agents - t * AGENTS_PER_THREAD < AGENTS_PER_THREAD ? cfg.agents - t * AGENTS_PER_THREAD
                                                                             : AGENTS_PER_THREAD;
        pthread_create(&ats[t].th, NULL, agent_thread_main, &ats[t]);
    }
    fprintf(stderr, "hub_agents: %d agents on %d threads, backfilling %u minutes of %u ms samples...\n", cfg.agents,
            nthreads, cfg.backfill_min, cfg.interval_ms);
    uint64_t bf0 = clock_mono_ns();
    while (atomic_load(&caught_up_threads) < nthreads) {
        if (clock_mono_ns() - bf0 > (uint64_t)BACKFILL_MAX_S * 1000000000u) {
            fprintf(stderr, "hub_agents: the backfill did not finish in %d s (%llu write errors)\n", BACKFILL_MAX_S,
                    (unsigned long long)atomic_load(&write_errors));
            return 1;
        }
        sleep_ns(50000000u);
    }
    double backfill_s = (double)(clock_mono_ns() - bf0) / 1e9;
    uint64_t bf_points = atomic_load(&backfill_points), bf_txns = atomic_load(&backfill_txns);
    fprintf(stderr, "hub_agents: backfill: %" PRIu64 " points in %" PRIu64 " transactions, %.1f s (%.0f points/s)\n",
            bf_points, bf_txns, backfill_s, backfill_s > 0 ? (double)bf_points / backfill_s : 0);

    /* The timed phase. */
    long long cpu0[PIDS_MAX];
    for (int i = 0; i < cfg.npids; i++)
        cpu0[i] = proc_cpu_ticks(cfg.pids[i].pid);
    char load0[64];
    read_loadavg(load0, sizeof load0);
    struct query_thread *qts = calloc((size_t)cfg.query_threads, sizeof *qts);
    if (!qts)
        return 1;
    uint64_t p0 = clock_mono_ns();
    atomic_store(&timed, 1);
    for (int i = 0; i < cfg.query_threads; i++) {
        qts[i].id = i;
        qts[i].start_ns = p0;
        qts[i].rng = (seed ^ ((uint64_t)(i + 1) * 0xbf58476d1ce4e5b9u)) | 1;
        pthread_create(&qts[i].th, NULL, query_thread_main, &qts[i]);
    }
    fprintf(stderr, "hub_agents: timed phase: %.0f s, %.1f queries/s on %d threads to %s:%s\n", cfg.duration_s,
            cfg.query_rate, cfg.query_threads, cfg.hub_host, cfg.hub_port);
    sleep_ns((uint64_t)(cfg.duration_s * 1e9));
    atomic_store(&stop_queries, 1);
    for (int i = 0; i < cfg.query_threads; i++)
        pthread_join(qts[i].th, NULL);
    atomic_store(&timed, 0);
    double phase_s = (double)(clock_mono_ns() - p0) / 1e9;
    long long cpu1[PIDS_MAX];
    double rss[PIDS_MAX];
    for (int i = 0; i < cfg.npids; i++) {
        cpu1[i] = proc_cpu_ticks(cfg.pids[i].pid);
        rss[i] = proc_rss_mib(cfg.pids[i].pid);
    }
    char load1[64];
    read_loadavg(load1, sizeof load1);
    atomic_store(&stop_agents, 1);
    struct lat writes = {0};
    for (int t = 0; t < nthreads; t++) {
        pthread_join(ats[t].th, NULL);
        lat_merge(&writes, &ats[t].writes);
        free(ats[t].writes.v);
    }

    struct lat lat = {0}, service = {0}, ttfb = {0};
    uint64_t queries = 0, qerrors = 0, points = 0, bytes = 0;
    long min_points = -1;
    for (int i = 0; i < cfg.query_threads; i++) {
        lat_merge(&lat, &qts[i].lat);
        lat_merge(&service, &qts[i].service);
        lat_merge(&ttfb, &qts[i].ttfb);
        queries += qts[i].queries;
        qerrors += qts[i].errors;
        points += qts[i].points;
        bytes += qts[i].bytes;
        if (qts[i].min_points >= 0 && (min_points < 0 || qts[i].min_points < min_points))
            min_points = qts[i].min_points;
        free(qts[i].lat.v);
        free(qts[i].service.v);
        free(qts[i].ttfb.v);
    }
    qsort(writes.v, writes.n, sizeof *writes.v, cmp_u64);
    qsort(lat.v, lat.n, sizeof *lat.v, cmp_u64);
    qsort(service.v, service.n, sizeof *service.v, cmp_u64);
    qsort(ttfb.v, ttfb.n, sizeof *ttfb.v, cmp_u64);
    uint64_t good = lat.n;
    double ppa = good ? (double)points / (double)good : 0, abytes = good ? (double)bytes / (double)good : 0;
    uint64_t werr = atomic_load(&write_errors), kerr = atomic_load(&keepalive_errors),
             written = atomic_load(&samples_written);
    double tick = (double)sysconf(_SC_CLK_TCK);

    fprintf(stderr,
            "hub_agents: %d agents, one sample per %u ms, %.1f s timed\n"
            "  writes:  %" PRIu64 " samples (%.1f/s), p50 %.2f ms, p99 %.2f ms, max %.2f ms; %" PRIu64
            " write errors, %" PRIu64 " keepalive errors\n"
            "  history: %" PRIu64 " points backfilled in %.1f s\n"
            "  hub:     %" PRIu64 " queries (%.1f/s), %" PRIu64 " bad; %.0f points (min %ld) and %.0f KiB per answer\n"
            "           from due: p50 %.1f ms, p90 %.1f ms, p99 %.1f ms, max %.1f ms\n"
            "           from sent: p50 %.1f ms, p99 %.1f ms; first byte: p50 %.1f ms, p99 %.1f ms\n"
            "  load average %s at the start, %s at the end\n",
            cfg.agents, cfg.interval_ms, phase_s, written, (double)written / phase_s, pct_ms(&writes, 0.5),
            pct_ms(&writes, 0.99), pct_ms(&writes, 1), werr, kerr, bf_points, backfill_s, queries,
            (double)queries / phase_s, qerrors, ppa, min_points, abytes / 1024, pct_ms(&lat, 0.5), pct_ms(&lat, 0.9),
            pct_ms(&lat, 0.99), pct_ms(&lat, 1), pct_ms(&service, 0.5), pct_ms(&service, 0.99), pct_ms(&ttfb, 0.5),
            pct_ms(&ttfb, 0.99), load0, load1);
    double cpu_pct[PIDS_MAX]; /* of one core, over the timed phase; -1 if the process went away */
    for (int i = 0; i < cfg.npids; i++) {
        cpu_pct[i] = cpu0[i] >= 0 && cpu1[i] >= 0 ? 100.0 * (double)(cpu1[i] - cpu0[i]) / tick / phase_s : -1;
        fprintf(stderr, "  %-8s pid %d: %.1f%% CPU over the timed phase, RSS %.1f MiB\n", cfg.pids[i].name,
                cfg.pids[i].pid, cpu_pct[i], rss[i]);
    }
    if (cfg.json) {
        printf("{\"agents\":%d,\"interval_ms\":%u,\"duration_s\":%.1f,\"samples_written\":%" PRIu64
               ",\"write_errors\":%" PRIu64 ",\"write_p50_ms\":%.3f,\"write_p99_ms\":%.3f,\"write_max_ms\":%.3f"
               ",\"keepalive_errors\":%" PRIu64 ",\"backfill_points\":%" PRIu64 ",\"backfill_txns\":%" PRIu64
               ",\"backfill_s\":%.2f,\"queries\":%" PRIu64 ",\"query_errors\":%" PRIu64
               ",\"query_rate\":%.2f,\"points_per_answer\":%.1f,\"min_points_per_answer\":%ld"
               ",\"answer_bytes\":%.0f,\"hub_p50_ms\":%.2f,\"hub_p90_ms\":%.2f,\"hub_p99_ms\":%.2f,\"hub_max_ms\":%.2f"
               ",\"hub_service_p50_ms\":%.2f,\"hub_service_p99_ms\":%.2f"
               ",\"hub_first_byte_p50_ms\":%.2f,\"hub_first_byte_p99_ms\":%.2f,\"loadavg_start\":%s,\"loadavg_end\":%s",
               cfg.agents, cfg.interval_ms, phase_s, written, werr, pct_ms(&writes, 0.5), pct_ms(&writes, 0.99),
               pct_ms(&writes, 1), kerr, bf_points, bf_txns, backfill_s, queries, qerrors,
               (double)queries / phase_s, ppa, min_points, abytes, pct_ms(&lat, 0.5), pct_ms(&lat, 0.9),
               pct_ms(&lat, 0.99), pct_ms(&lat, 1), pct_ms(&service, 0.5), pct_ms(&service, 0.99),
               pct_ms(&ttfb, 0.5), pct_ms(&ttfb, 0.99), load0, load1);
        printf(",\"procs\":{");
        for (int i = 0; i < cfg.npids; i++)
            printf("%s\"%s\":{\"pid\":%d,\"cpu_pct\":%.1f,\"rss_mib\":%.1f}", i ? "," : "", cfg.pids[i].name,
                   cfg.pids[i].pid, cpu_pct[i], rss[i]);
        printf("}}\n");
    }
    free(writes.v);
    free(lat.v);
    free(service.v);
    free(ttfb.v);
    free(qts);
    free(ats);
    free(agents);
    return werr || kerr || qerrors ? 1 : 0;
}
