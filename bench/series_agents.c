/* The series load test (issue 23 item 3): simulated agents writing named
 * series as `ddkv agent` does (src/apps/agent/agent_series.c), and chart queries
 * of the hub for 1-hour and 24-hour windows, timed.
 *
 *   ddkv-bench-series --endpoints EPS --hub HOST:PORT [--agents 1000]
 *       [--series 5] [--threads 50] [--duration-s 30] [--history-agents 10]
 *       [--query-rate 10] [--pid NAME=PID ...]
 *
 * Scaled to fit one 2-core machine, in one process:
 * - the agents: --threads threads each drive agents/threads simulated agents
 *   over ONE libddkv client per thread (a real agent has its own; 1,000
 *   connections and threads would measure the machine's scheduler). Every
 *   agent writes, once a second at its own phase, one transaction with a
 *   point of each of its --series series (keys series/<agent>/s<i>/r/<ts>),
 *   the minute rollups when a minute ends and its metas once, under a
 *   retention lease per thread: what the agent's series sender writes. The
 *   write latency is that transaction's, measured from when it was due (a
 *   thread that falls behind is charged for it: no coordinated omission).
 * - history: --history-agents of them get 24 hours of minute rollups and the
 *   last hour of raw points at 1 Hz first (in transactions of 128 keys). A
 *   24-hour query reads only the rollups and the raw points after the last
 *   one, a 1-hour query only raw points: older raw points are never read, so
 *   they are not written (that saves 86,400 x series keys per agent and
 *   changes no query's work).
 * - the queries: one thread sends --query-rate GETs a second, alternately
 *   window=1h and window=24h, of a random history agent's random series, on
 *   a keep-alive connection, latency from when each was due; an answer is
 *   good when it is 200 and a JSON array of at least 250 buckets (1 h: 300
 *   of 12 s; 24 h: 288 of 5 min).
 * With --pid NAME=PID it reports each process's CPU use over the timed phase
 * and its resident memory at the end, from /proc.
 * Prints a summary to stderr and one JSON object to stdout; exits 0 if no
 * write or query failed, 1 otherwise, 2 on usage. */
#define _GNU_SOURCE
#include <inttypes.h>
#include <math.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "agent/series.h"
#include "agent/series_store.h"
#include "httpc.h"
#include "ddkv/ddkv.h"

#define MAX_PIDS 8

static struct {
    const char *endpoints, *hub;
    uint32_t agents, series, threads, duration_s, history_agents;
    double query_rate;
    const char *pid_names[MAX_PIDS];
    int pids[MAX_PIDS];
    size_t npids;
} cfg = {.agents = 1000, .series = 5, .threads = 50, .duration_s = 30, .history_agents = 10, .query_rate = 10};

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static uint64_t wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static void sleep_until(uint64_t t_ns)
{
    uint64_t n = now_ns();
    if (t_ns > n) {
        struct timespec ts = {(time_t)((t_ns - n) / 1000000000ull), (long)((t_ns - n) % 1000000000ull)};
        nanosleep(&ts, NULL);
    }
}

static ddkv_client *client(void)
{
    struct ddkv_options o;
    ddkv_options_init(&o);
    o.endpoints = cfg.endpoints;
    o.timeout_ms = 5000;
    ddkv_client *c = NULL;
    char err[256];
    if (ddkv_client_new(&o, &c, err, sizeof err) != DDKV_OK) {
        fprintf(stderr, "series bench: %s\n", err);
        return NULL;
    }
    return c;
}

/* Latencies in microseconds, appended under a lock. */
struct lat {
    pthread_mutex_t mu;
    uint32_t *v;
    size_t n, cap;
    uint64_t errors;
};

static void lat_add(struct lat *l, uint64_t us)
{
    pthread_mutex_lock(&l->mu);
    if (l->n == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 65536;
        uint32_t *v = realloc(l->v, cap * sizeof *v);
        if (v) {
            l->v = v;
            l->cap = cap;
        }
    }
    if (l->n < l->cap)
        l->v[l->n++] = us > UINT32_MAX ? UINT32_MAX : (uint32_t)us;
    pthread_mutex_unlock(&l->mu);
}

static int cmp_u32(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return x < y ? -1 : x > y;
}

static double pct_ms(struct lat *l, double p)
{
    if (!l->n)
        return 0;
    size_t i = (size_t)ceil(p / 100.0 * (double)l->n);
    if (i)
        i--;
    if (i >= l->n)
        i = l->n - 1;
    return l->v[i] / 1000.0;
}

/* --- one batch of puts --- */

struct batch {
    struct ddkv_op ops[DDKV_TXN_MAX];
    char keys[DDKV_TXN_MAX][256];
    char vals[DDKV_TXN_MAX][160];
    size_t n;
};

static void put(struct batch *b, const char *key, int kl, const char *val, uint64_t lease)
{
    size_t i = b->n++;
    memcpy(b->keys[i], key, (size_t)kl + 1);
    snprintf(b->vals[i], sizeof b->vals[i], "%s", val);
    b->ops[i] = (struct ddkv_op){.kind = DDKV_OP_PUT, .key = b->keys[i], .key_len = (size_t)kl, .value = b->vals[i],
                                 .value_len = strlen(b->vals[i]), .lease_id = lease};
}

static ddkv_err flush(ddkv_client *c, struct batch *b)
{
    if (!b->n)
        return DDKV_OK;
    struct ddkv_txn_result tr;
    ddkv_err e = ddkv_txn(c, NULL, 0, b->ops, b->n, NULL, 0, &tr);
    b->n = 0;
    return e;
}

static double wave(uint32_t agent, uint32_t s, uint64_t t_ms)
{
    return 20.0 + 5.0 * sin((double)t_ms / 60000.0 + agent + s) + (double)(t_ms % 7) / 10.0;
}

/* --- history --- */

static int write_history(void)
{
    ddkv_client *c = client();
    if (!c)
        return -1;
    uint64_t lease, ttl;
    if (ddkv_lease_grant(c, 86400000ull + 3600000ull, &lease, &ttl) != DDKV_OK) {
        fprintf(stderr, "series bench: lease: %s\n", ddkv_client_errmsg(c));
        return -1;
    }
    static struct batch b;
    uint64_t now = wall_ms(), cur_min = now / 60000 * 60000, t0 = now - 3600000;
    char key[256], val[160], name[32], client_id[32];
    size_t keys = 0;
    for (uint32_t a = 0; a < cfg.history_agents; a++) {
        snprintf(client_id, sizeof client_id, "sim-%04u", a);
        for (uint32_t s = 0; s < cfg.series; s++) {
            snprintf(name, sizeof name, "s%u", s);
            struct series_meta m = {.interval_ms = 1000, .retention_s = 86400};
            snprintf(m.name, sizeof m.name, "%s", name);
            snprintf(m.unit, sizeof m.unit, "C");
            char *mt = series_meta_text(&m);
            int kl = series_key_meta(key, client_id, name);
            put(&b, key, kl, mt, lease);
            free(mt);
            for (uint64_t mn = cur_min - 86400000ull; mn < cur_min; mn += 60000) {
                struct series_agg ag = {0};
                for (uint64_t t = mn; t < mn + 60000; t += 1000)
                    series_agg_add(&ag, wave(a, s, t));
                snprintf(val, sizeof val, "{\"n\":%" PRIu64 ",\"min\":%.10g,\"avg\":%.10g,\"max\":%.10g}", ag.n, ag.min,
                         ag.sum / (double)ag.n, ag.max);
                kl = series_key_minute(key, client_id, name, mn);
                put(&b, key, kl, val, lease);
                if (b.n == DDKV_TXN_MAX && flush(c, &b) != DDKV_OK)
                    goto fail;
                keys++;
            }
            for (uint64_t t = t0 / 1000 * 1000; t < now; t += 1000) {
                series_value_text(val, sizeof val, wave(a, s, t));
                kl = series_key_raw(key, client_id, name, t);
                put(&b, key, kl, val, lease);
                if (b.n == DDKV_TXN_MAX && flush(c, &b) != DDKV_OK)
                    goto fail;
                keys++;
            }
        }
    }
    if (flush(c, &b) != DDKV_OK)
        goto fail;
    fprintf(stderr, "series bench: history written: %zu keys for %u agents x %u series\n", keys, cfg.history_agents,
            cfg.series);
    ddkv_client_free(c);
    return 0;
fail:
    fprintf(stderr, "series bench: history: %s\n", ddkv_client_errmsg(c));
    ddkv_client_free(c);
    return -1;
}

/* --- the agents --- */

static struct lat wlat = {.mu = PTHREAD_MUTEX_INITIALIZER};
static volatile int stop_agents;
static uint64_t t_end_ns;

struct agent_thread {
    uint32_t first, n;
};

struct agent_state {
    uint64_t minute;
    struct series_agg agg[16];
    bool meta;
};

static void *agent_main(void *arg)
{
    struct agent_thread *at = arg;
    ddkv_client *c = client();
    if (!c)
        return NULL;
    uint64_t lease = 0, ttl;
    ddkv_lease_grant(c, 3600000ull + 60000, &lease, &ttl);
    struct agent_state *st = calloc(at->n, sizeof *st);
    static __thread struct batch b;
    uint64_t start = now_ns(), period = 1000000000ull;
    char key[256], val[160], name[32], client_id[32];
    for (uint64_t tick = 0; !stop_agents; tick++) {
        for (uint32_t i = 0; i < at->n && !stop_agents; i++) {
            /* Agent i's phase within the second: spread evenly. */
            uint64_t due = start + tick * period + period * i / at->n;
            sleep_until(due);
            if (now_ns() >= t_end_ns)
                stop_agents = 1;
            uint32_t a = at->first + i;
            snprintf(client_id, sizeof client_id, "sim-%04u", a);
            uint64_t t = wall_ms(), minute = t / 60000 * 60000;
            struct agent_state *s = &st[i];
            for (uint32_t k = 0; k < cfg.series; k++) {
                snprintf(name, sizeof name, "s%u", k);
                int kl;
                if (!s->meta) {
                    struct series_meta m = {.interval_ms = 1000, .retention_s = 3600};
                    snprintf(m.name, sizeof m.name, "%s", name);
                    char *mt = series_meta_text(&m);
                    kl = series_key_meta(key, client_id, name);
                    put(&b, key, kl, mt, lease);
                    free(mt);
                }
                if (s->agg[k].n && s->minute != minute) {
                    struct series_agg *g = &s->agg[k];
                    snprintf(val, sizeof val, "{\"n\":%" PRIu64 ",\"min\":%.10g,\"avg\":%.10g,\"max\":%.10g}", g->n,
                             g->min, g->sum / (double)g->n, g->max);
                    kl = series_key_minute(key, client_id, name, s->minute);
                    put(&b, key, kl, val, lease);
                    memset(g, 0, sizeof *g);
                }
                double v = wave(a, k, t);
                series_agg_add(&s->agg[k], v);
                series_value_text(val, sizeof val, v);
                kl = series_key_raw(key, client_id, name, t);
                put(&b, key, kl, val, lease);
            }
            s->minute = minute;
            s->meta = true;
            ddkv_err e = flush(c, &b);
            if (e != DDKV_OK) {
                pthread_mutex_lock(&wlat.mu);
                if (wlat.errors++ < 5)
                    fprintf(stderr, "series bench: write: %s\n", ddkv_client_errmsg(c));
                pthread_mutex_unlock(&wlat.mu);
            } else {
                lat_add(&wlat, (now_ns() - due) / 1000);
            }
        }
    }
    free(st);
    ddkv_client_free(c);
    return NULL;
}

/* --- the queries --- */

static struct lat q1h = {.mu = PTHREAD_MUTEX_INITIALIZER}, q24h = {.mu = PTHREAD_MUTEX_INITIALIZER};

static const char *hresponse(struct httpc *h, int *status, size_t *hlen, size_t *blen, bool *keep, uint64_t dl)
{
    char *end;
    const char *e;
    while (!(end = memmem(h->buf ? h->buf : "", h->len, "\r\n\r\n", 4)))
        if ((e = httpc_fill(h, dl)))
            return e;
    *hlen = (size_t)(end - h->buf) + 4;
    char head[4096];
    size_t cl = *hlen < sizeof head ? *hlen : sizeof head - 1;
    memcpy(head, h->buf, cl);
    head[cl] = 0;
    if (sscanf(head, "HTTP/1.%*d %d", status) != 1)
        return "garbled status line";
    long len = -1;
    *keep = true;
    for (char *line = strstr(head, "\r\n"); line && line[2]; line = strstr(line + 2, "\r\n")) {
        if (strncasecmp(line + 2, "content-length:", 15) == 0)
            len = strtol(line + 17, NULL, 10);
        else if (strncasecmp(line + 2, "connection: close", 17) == 0)
            *keep = false;
    }
    if (len < 0)
        return "no Content-Length";
    while (h->len < *hlen + (size_t)len)
        if ((e = httpc_fill(h, dl)))
            return e;
    *blen = (size_t)len;
    return NULL;
}

static void *query_main(void *arg)
{
    (void)arg;
    struct httpc h = HTTPC_INIT;
    uint64_t start = now_ns(), gap = (uint64_t)(1e9 / cfg.query_rate);
    unsigned seed = 7;
    for (uint64_t i = 0;; i++) {
        uint64_t due = start + i * gap;
        if (due >= t_end_ns)
            break;
        sleep_until(due);
        bool day = i % 2;
        char req[256];
        int rl = snprintf(req, sizeof req,
                          "GET /api/clients/sim-%04u/series/s%u?window=%s HTTP/1.1\r\nHost: bench\r\n\r\n",
                          (unsigned)(rand_r(&seed) % cfg.history_agents), (unsigned)(rand_r(&seed) % cfg.series),
                          day ? "24h" : "1h");
        uint64_t dl = now_ns() + 10000000000ull;
        const char *e = NULL;
        int status = 0;
        size_t hl = 0, bl = 0;
        bool keep = true;
        for (int attempt = 0; attempt < 2; attempt++) {
            e = h.fd < 0 ? httpc_connect(&h, cfg.hub, dl) : NULL;
            if (!e)
                e = httpc_send(&h, req, (size_t)rl, dl);
            if (!e)
                e = hresponse(&h, &status, &hl, &bl, &keep, dl);
            if (!e)
                break;
            httpc_close(&h); /* a keep-alive connection the hub closed: once more on a new one */
        }
        struct lat *l = day ? &q24h : &q1h;
        long buckets = 0;
        if (!e)
            for (size_t k = 0; k < bl; k++)
                buckets += h.buf[hl + k] == '{';
        if (e || status != 200 || buckets < 250) {
            l->errors++;
            if (l->errors <= 5)
                fprintf(stderr, "series bench: query %s: %s (status %d, %ld buckets)\n", day ? "24h" : "1h",
                        e ? e : "bad answer", status, buckets);
        } else {
            lat_add(l, (now_ns() - due) / 1000);
        }
        if (!e)
            httpc_consume(&h, hl + bl);
        if (e || !keep)
            httpc_close(&h);
    }
    httpc_free(&h);
    return NULL;
}

/* --- /proc --- */

static double cpu_s(int pid)
{
    char p[64], buf[1024];
    snprintf(p, sizeof p, "/proc/%d/stat", pid);
    FILE *f = fopen(p, "r");
    if (!f)
        return -1;
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = 0;
    char *s = strrchr(buf, ')');
    unsigned long long ut = 0, st = 0;
    if (!s || sscanf(s + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &ut, &st) != 2)
        return -1;
    return (double)(ut + st) / (double)sysconf(_SC_CLK_TCK);
}

static long rss_kb(int pid)
{
    char p[64], line[256];
    snprintf(p, sizeof p, "/proc/%d/status", pid);
    FILE *f = fopen(p, "r");
    long kb = -1;
    while (f && fgets(line, sizeof line, f))
        if (!strncmp(line, "VmRSS:", 6))
            kb = strtol(line + 6, NULL, 10);
    if (f)
        fclose(f);
    return kb;
}

int main(int argc, char **argv)
{
    for (int i = 1; i < argc; i += 2) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!v)
            goto usage;
        if (!strcmp(a, "--endpoints"))
            cfg.endpoints = v;
        else if (!strcmp(a, "--hub"))
            cfg.hub = v;
        else if (!strcmp(a, "--agents"))
            cfg.agents = (uint32_t)atoi(v);
        else if (!strcmp(a, "--series"))
            cfg.series = (uint32_t)atoi(v);
        else if (!strcmp(a, "--threads"))
            cfg.threads = (uint32_t)atoi(v);
        else if (!strcmp(a, "--duration-s"))
            cfg.duration_s = (uint32_t)atoi(v);
        else if (!strcmp(a, "--history-agents"))
            cfg.history_agents = (uint32_t)atoi(v);
        else if (!strcmp(a, "--query-rate"))
            cfg.query_rate = atof(v);
        else if (!strcmp(a, "--pid") && cfg.npids < MAX_PIDS && strchr(v, '=')) {
            cfg.pid_names[cfg.npids] = v;
            cfg.pids[cfg.npids++] = atoi(strchr(v, '=') + 1);
        } else
            goto usage;
    }
    if (!cfg.endpoints || !cfg.hub || !cfg.agents || !cfg.series || cfg.series > 16 || !cfg.threads ||
        cfg.threads > cfg.agents || !cfg.history_agents || cfg.history_agents > cfg.agents || cfg.query_rate <= 0)
        goto usage;
    if (write_history() != 0)
        return 1;
    double cpu0[MAX_PIDS];
    for (size_t i = 0; i < cfg.npids; i++)
        cpu0[i] = cpu_s(cfg.pids[i]);
    uint64_t t0 = now_ns();
    t_end_ns = t0 + (uint64_t)cfg.duration_s * 1000000000ull;
    pthread_t *th = calloc(cfg.threads, sizeof *th);
    struct agent_thread *at = calloc(cfg.threads, sizeof *at);
    for (uint32_t i = 0, first = 0; i < cfg.threads; i++) {
        at[i].first = first;
        at[i].n = cfg.agents / cfg.threads + (i < cfg.agents % cfg.threads);
        first += at[i].n;
        pthread_create(&th[i], NULL, agent_main, &at[i]);
    }
    pthread_t qt;
    pthread_create(&qt, NULL, query_main, NULL);
    pthread_join(qt, NULL);
    for (uint32_t i = 0; i < cfg.threads; i++)
        pthread_join(th[i], NULL);
    double secs = (double)(now_ns() - t0) / 1e9;
    qsort(wlat.v, wlat.n, sizeof *wlat.v, cmp_u32);
    qsort(q1h.v, q1h.n, sizeof *q1h.v, cmp_u32);
    qsort(q24h.v, q24h.n, sizeof *q24h.v, cmp_u32);
    fprintf(stderr,
            "series bench: %u agents x %u series at 1 Hz over %u threads, %.1f s: %zu writes (%.0f points/s), "
            "write p50 %.1f ms p99 %.1f ms max %.1f ms, %" PRIu64 " failed\n",
            cfg.agents, cfg.series, cfg.threads, secs, wlat.n, (double)wlat.n * cfg.series / secs, pct_ms(&wlat, 50),
            pct_ms(&wlat, 99), pct_ms(&wlat, 100), wlat.errors);
    fprintf(stderr, "series bench: hub chart 1h: %zu queries p50 %.1f ms p99 %.1f ms, %" PRIu64 " failed\n", q1h.n,
            pct_ms(&q1h, 50), pct_ms(&q1h, 99), q1h.errors);
    fprintf(stderr, "series bench: hub chart 24h: %zu queries p50 %.1f ms p99 %.1f ms, %" PRIu64 " failed\n", q24h.n,
            pct_ms(&q24h, 50), pct_ms(&q24h, 99), q24h.errors);
    printf("{\"agents\":%u,\"series\":%u,\"threads\":%u,\"duration_s\":%.1f,\"writes\":%zu,\"write_errors\":%" PRIu64
           ",\"write_p50_ms\":%.2f,\"write_p99_ms\":%.2f,\"write_max_ms\":%.2f,"
           "\"q1h_n\":%zu,\"q1h_p50_ms\":%.2f,\"q1h_p99_ms\":%.2f,\"q1h_errors\":%" PRIu64
           ",\"q24h_n\":%zu,\"q24h_p50_ms\":%.2f,\"q24h_p99_ms\":%.2f,\"q24h_errors\":%" PRIu64 ",\"procs\":{",
           cfg.agents, cfg.series, cfg.threads, secs, wlat.n, wlat.errors, pct_ms(&wlat, 50), pct_ms(&wlat, 99),
           pct_ms(&wlat, 100), q1h.n, pct_ms(&q1h, 50), pct_ms(&q1h, 99), q1h.errors, q24h.n, pct_ms(&q24h, 50),
           pct_ms(&q24h, 99), q24h.errors);
    for (size_t i = 0; i < cfg.npids; i++) {
        double cpu = (cpu_s(cfg.pids[i]) - cpu0[i]) / secs * 100.0;
        long rss = rss_kb(cfg.pids[i]);
        int nl = (int)(strchr(cfg.pid_names[i], '=') - cfg.pid_names[i]);
        fprintf(stderr, "series bench: %.*s: %.0f%% of a core, %ld MiB resident\n", nl, cfg.pid_names[i], cpu,
                rss / 1024);
        printf("%s\"%.*s\":{\"cpu_pct\":%.1f,\"rss_mib\":%.1f}", i ? "," : "", nl, cfg.pid_names[i], cpu,
               rss / 1024.0);
    }
    printf("}}\n");
    free(th);
    free(at);
    free(wlat.v);
    free(q1h.v);
    free(q24h.v);
    return wlat.errors || q1h.errors || q24h.errors ? 1 : 0;
usage:
    fprintf(stderr, "usage: ddkv-bench-series --endpoints EPS --hub HOST:PORT [--agents 1000] [--series 5] "
                    "[--threads 50] [--duration-s 30] [--history-agents 10] [--query-rate 10] [--pid NAME=PID]...\n");
    return 2;
}
