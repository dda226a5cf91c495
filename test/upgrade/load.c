/* The rolling-upgrade test's load (test/upgrade/test_rolling.sh): a
 * continuous write and read load against a cluster, every operation recorded
 * in the history format `ddkv-faults --check` reads (test/faults/linearize.h).
 *
 *   ddkv-upgrade-load --endpoints EPS --history FILE --acked FILE
 *       [--writers N] [--readers M] [--keys K] [--timeout-ms MS]
 *       [--duration-s S] [--stop-file PATH] [--pause-ms MS]
 *
 * Writers (client ids 0..N-1) write and compare-and-swap the register keys
 * r0..r<K-1> (values c<client>-<seq>, unique) and write unique keys
 * u/<client>/<n> (value: the key). Readers (client ids N..N+M-1) read the
 * register keys linearizably. Every client is its own ddkv_client with a
 * generous timeout, so libddkv rides out a member going away or a leadership
 * handover by retrying (writes keep their session number: exactly once).
 *
 * Runs until --duration-s passes (0: no bound), SIGTERM or SIGINT, or the
 * --stop-file exists; operations in flight finish first. Then it prints one
 * summary line on stdout,
 *
 *   summary ops=.. writes_ok=.. writes_failed=.. writes_unknown=.. reads_ok=..
 *           reads_failed=.. max_write_ms=.. max_gap_ms=.. unique_acked=.. seconds=..
 *
 * (writes count writes and CASes; a CAS answered "not swapped" is ok;
 * max_gap_ms is the longest time between two consecutive acknowledged writes
 * of all writers), writes each acknowledged unique key to --acked, one a
 * line, and logs each gap over a second to stderr. It judges nothing: exit 0
 * after a run, 2 on bad usage or when it cannot start. */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ddkv/ddkv.h"
#include "util/clock.h"

#define MAX_CLIENTS 64
#define MAX_KEYS 64

struct client {
    pthread_t th;
    int id;
    bool writer;
    uint64_t rng;
    /* counts, read by main after the join */
    uint64_t ops, w_ok, w_failed, w_unknown, r_ok, r_failed, max_write_ns;
    char **acked; /* unique keys acknowledged, owned */
    size_t nacked, cap;
};

static const char *g_endpoints;
static uint32_t g_timeout_ms = 10000, g_pause_ms = 5;
static int g_keys = 4;
static const char *g_stop_file;
static uint64_t g_deadline_ms; /* 0: none */
static volatile sig_atomic_t g_signalled;
static atomic_bool g_stop;

static pthread_mutex_t g_mu = PTHREAD_MUTEX_INITIALIZER;
static FILE *g_hist;
static char g_last[MAX_KEYS][32];  /* last value of each register seen acknowledged or read */
static uint64_t g_t0_ns, g_last_ack_ns, g_max_gap_ns;

static void on_signal(int sig)
{
    (void)sig;
    g_signalled = 1;
}

static uint64_t rng_next(uint64_t *s)
{
    /* splitmix64 */
    uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

/* Whether to stop: checked between operations, by every client. */
static bool stopping(void)
{
    if (atomic_load(&g_stop))
        return true;
    if (g_signalled || (g_deadline_ms && clock_mono_ms() >= g_deadline_ms) ||
        (g_stop_file && access(g_stop_file, F_OK) == 0)) {
        atomic_store(&g_stop, true);
        return true;
    }
    return false;
}

/* One history line (lin_check_file's format); value/expected NULL: null. All
 * strings are the load's own plain ASCII. */
static void record(int client, const char *op, const char *key, const char *value, const char *expected,
                   uint64_t call, uint64_t ret, const char *ok)
{
    pthread_mutex_lock(&g_mu);
    fprintf(g_hist, "{\"client\":%d,\"op\":\"%s\",\"key\":\"%s\",\"value\":", client, op, key);
    if (value)
        fprintf(g_hist, "\"%s\"", value);
    else
        fputs("null", g_hist);
    fputs(",\"expected\":", g_hist);
    if (expected)
        fprintf(g_hist, "\"%s\"", expected);
    else
        fputs("null", g_hist);
    fprintf(g_hist, ",\"call\":%" PRIu64 ",\"return\":%" PRIu64 ",\"ok\":%s}\n", call, ret, ok);
    pthread_mutex_unlock(&g_mu);
}

/* A write (or CAS) the cluster acknowledged at ret: the gap since the last one. */
static void note_ack(uint64_t ret)
{
    pthread_mutex_lock(&g_mu);
    if (g_last_ack_ns && ret > g_last_ack_ns) {
        uint64_t gap = ret - g_last_ack_ns;
        if (gap > g_max_gap_ns)
            g_max_gap_ns = gap;
        if (gap > 1000000000ull)
            fprintf(stderr, "load: no write acknowledged for %" PRIu64 " ms (from t=%.1f s to t=%.1f s)\n",
                    gap / 1000000, (double)(g_last_ack_ns - g_t0_ns) / 1e9, (double)(ret - g_t0_ns) / 1e9);
    }
    if (ret > g_last_ack_ns)
        g_last_ack_ns = ret;
    pthread_mutex_unlock(&g_mu);
}

/* The outcome of a write or CAS that did not succeed, for the history: only
 * an explicit refusal did not happen; anything else may have. */
static const char *write_outcome(ddkv_err e)
{
    return e == DDKV_ERR_BAD_REQUEST || e == DDKV_ERR_TOO_LARGE || e == DDKV_ERR_PERMISSION_DENIED
               ? "false"
               : "\"unknown\"";
}

static void count_write(struct client *cl, ddkv_err e, uint64_t call, uint64_t ret)
{
    if (ret - call > cl->max_write_ns)
        cl->max_write_ns = ret - call;
    if (e == DDKV_OK) {
        cl->w_ok++;
        note_ack(ret);
    } else if (e == DDKV_ERR_UNKNOWN_OUTCOME) {
        cl->w_unknown++;
    } else {
        cl->w_failed++;
    }
}

static void report_error(struct client *cl, ddkv_client *c, const char *what, const char *key, ddkv_err e)
{
    fprintf(stderr, "load: client %d: %s %s: %s (%s)\n", cl->id, what, key, ddkv_strerror(e),
            ddkv_client_errmsg(c));
}

static void writer_op(struct client *cl, ddkv_client *c, uint64_t *seq, uint64_t *useq)
{
    int k = (int)(rng_next(&cl->rng) % (uint64_t)g_keys);
    char key[48], val[32], exp[32];
    int what = (int)(rng_next(&cl->rng) % 10);
    uint64_t call = clock_mono_ns();
    if (what < 4) { /* a unique key */
        snprintf(key, sizeof key, "u/%02d/%06" PRIu64, cl->id, (*useq)++);
        struct ddkv_write_result wr;
        ddkv_err e = ddkv_write(c, key, strlen(key), key, strlen(key), 0, &wr);
        uint64_t ret = clock_mono_ns();
        record(cl->id, "write", key, key, NULL, call, ret, e == DDKV_OK ? "true" : write_outcome(e));
        count_write(cl, e, call, ret);
        if (e != DDKV_OK) {
            report_error(cl, c, "write", key, e);
            return;
        }
        if (cl->nacked == cl->cap) {
            cl->cap = cl->cap ? cl->cap * 2 : 256;
            char **n = realloc(cl->acked, cl->cap * sizeof *n);
            if (!n)
                abort();
            cl->acked = n;
        }
        if (!(cl->acked[cl->nacked++] = strdup(key)))
            abort();
        return;
    }
    snprintf(key, sizeof key, "r%d", k);
    snprintf(val, sizeof val, "c%d-%" PRIu64, cl->id, ++*seq);
    if (what < 8) { /* a register write */
        struct ddkv_write_result wr;
        ddkv_err e = ddkv_write(c, key, strlen(key), val, strlen(val), 0, &wr);
        uint64_t ret = clock_mono_ns();
        record(cl->id, "write", key, val, NULL, call, ret, e == DDKV_OK ? "true" : write_outcome(e));
        count_write(cl, e, call, ret);
        if (e == DDKV_OK) {
            pthread_mutex_lock(&g_mu);
            snprintf(g_last[k], sizeof g_last[k], "%s", val);
            pthread_mutex_unlock(&g_mu);
        } else {
            report_error(cl, c, "write", key, e);
        }
        return;
    }
    /* a CAS from the last value seen (absent if none yet) */
    pthread_mutex_lock(&g_mu);
    snprintf(exp, sizeof exp, "%s", g_last[k]);
    pthread_mutex_unlock(&g_mu);
    bool absent = exp[0] == 0;
    call = clock_mono_ns();
    struct ddkv_txn_result tr;
    ddkv_err e = ddkv_cas(c, key, strlen(key), exp, strlen(exp), absent, val, strlen(val), 0, &tr);
    uint64_t ret = clock_mono_ns();
    record(cl->id, "cas", key, val, absent ? NULL : exp, call, ret,
           e == DDKV_OK ? (tr.succeeded ? "true" : "false") : write_outcome(e));
    count_write(cl, e, call, ret);
    if (e == DDKV_OK && tr.succeeded) {
        pthread_mutex_lock(&g_mu);
        snprintf(g_last[k], sizeof g_last[k], "%s", val);
        pthread_mutex_unlock(&g_mu);
    } else if (e != DDKV_OK) {
        report_error(cl, c, "cas", key, e);
    }
}

static void reader_op(struct client *cl, ddkv_client *c)
{
    int k = (int)(rng_next(&cl->rng) % (uint64_t)g_keys);
    char key[16];
    snprintf(key, sizeof key, "r%d", k);
    struct ddkv_value v;
    uint64_t call = clock_mono_ns();
    ddkv_err e = ddkv_read(c, key, strlen(key), DDKV_CONSISTENCY_LINEARIZABLE, 0, &v);
    uint64_t ret = clock_mono_ns();
    if (e == DDKV_OK) {
        record(cl->id, "read", key, v.value, NULL, call, ret, "true");
        pthread_mutex_lock(&g_mu);
        snprintf(g_last[k], sizeof g_last[k], "%s", (const char *)v.value);
        pthread_mutex_unlock(&g_mu);
        ddkv_free(v.value);
        cl->r_ok++;
    } else if (e == DDKV_ERR_NOT_FOUND) {
        record(cl->id, "read", key, NULL, NULL, call, ret, "true");
        cl->r_ok++;
    } else {
        /* A failed read says nothing (the checker drops it). */
        record(cl->id, "read", key, NULL, NULL, call, ret, "false");
        cl->r_failed++;
        report_error(cl, c, "read", key, e);
    }
}

static void *client_main(void *arg)
{
    struct client *cl = arg;
    struct ddkv_options o;
    ddkv_options_init(&o);
    o.endpoints = g_endpoints;
    o.timeout_ms = g_timeout_ms;
    ddkv_client *c = NULL;
    char err[256];
    if (ddkv_client_new(&o, &c, err, sizeof err) != DDKV_OK) {
        fprintf(stderr, "load: client %d: %s\n", cl->id, err);
        atomic_store(&g_stop, true);
        return NULL;
    }
    uint64_t seq = 0, useq = 0;
    while (!stopping()) {
        if (cl->writer)
            writer_op(cl, c, &seq, &useq);
        else
            reader_op(cl, c);
        cl->ops++;
        if (g_pause_ms)
            clock_sleep_ms(rng_next(&cl->rng) % (g_pause_ms + 1));
    }
    ddkv_client_free(c);
    return NULL;
}

static void usage(const char *argv0)
{
    fprintf(stderr,
            "usage: %s --endpoints EPS --history FILE --acked FILE [--writers N (3)] [--readers M (2)]\n"
            "       [--keys K (4)] [--timeout-ms MS (10000)] [--duration-s S (0: until stopped)]\n"
            "       [--stop-file PATH] [--pause-ms MS (5): up to this long between a client's operations]\n",
            argv0);
}

/* A whole non-negative number in [lo, hi], or -1. */
static long parse_num(const char *s, long lo, long hi)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || end == s || *end || v < lo || v > hi)
        return -1;
    return v;
}

int main(int argc, char **argv)
{
    static const struct option lo[] = {
        {"endpoints", 1, 0, 'e'}, {"history", 1, 0, 'H'},   {"acked", 1, 0, 'a'},
        {"writers", 1, 0, 'w'},   {"readers", 1, 0, 'r'},   {"keys", 1, 0, 'k'},
        {"timeout-ms", 1, 0, 't'}, {"duration-s", 1, 0, 'd'}, {"stop-file", 1, 0, 's'},
        {"pause-ms", 1, 0, 'p'},  {"help", 0, 0, 'h'},      {0, 0, 0, 0},
    };
    const char *hist_path = NULL, *acked_path = NULL;
    long writers = 3, readers = 2, duration = 0;
    int ch;
    while ((ch = getopt_long(argc, argv, "", lo, NULL)) != -1) {
        long v = 0;
        switch (ch) {
        case 'e': g_endpoints = optarg; break;
        case 'H': hist_path = optarg; break;
        case 'a': acked_path = optarg; break;
        case 's': g_stop_file = optarg; break;
        case 'w': v = writers = parse_num(optarg, 1, MAX_CLIENTS / 2); break;
        case 'r': v = readers = parse_num(optarg, 0, MAX_CLIENTS / 2); break;
        case 'k': v = g_keys = (int)parse_num(optarg, 1, MAX_KEYS); break;
        case 't': v = parse_num(optarg, 1, 600000); g_timeout_ms = (uint32_t)v; break;
        case 'd': v = duration = parse_num(optarg, 0, 86400); break;
        case 'p': v = parse_num(optarg, 0, 10000); g_pause_ms = (uint32_t)v; break;
        case 'h': usage(argv[0]); return 0;
        default: usage(argv[0]); return 2;
        }
        if (v < 0) {
            fprintf(stderr, "%s: bad value: %s\n", argv[0], optarg);
            usage(argv[0]);
            return 2;
        }
    }
    if (optind != argc || !g_endpoints || !hist_path || !acked_path) {
        usage(argv[0]);
        return 2;
    }
    g_hist = fopen(hist_path, "w");
    if (!g_hist) {
        fprintf(stderr, "%s: %s: %s\n", argv[0], hist_path, strerror(errno));
        return 2;
    }
    FILE *acked = fopen(acked_path, "w");
    if (!acked) {
        fprintf(stderr, "%s: %s: %s\n", argv[0], acked_path, strerror(errno));
        fclose(g_hist);
        return 2;
    }
    struct sigaction sa = {.sa_handler = on_signal};
    sigemptyset(&sa.sa_mask);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);

    g_t0_ns = clock_mono_ns();
    if (duration)
        g_deadline_ms = clock_mono_ms() + (uint64_t)duration * 1000;
    int n = (int)(writers + readers);
    struct client *cls = calloc((size_t)n, sizeof *cls);
    if (!cls)
        abort();
    uint64_t seed = clock_mono_ns() ^ ((uint64_t)getpid() << 32);
    int started = 0;
    for (int i = 0; i < n; i++) {
        cls[i].id = i;
        cls[i].writer = i < writers;
        cls[i].rng = seed + (uint64_t)i * 7919;
        if (pthread_create(&cls[i].th, NULL, client_main, &cls[i]) != 0) {
            fprintf(stderr, "%s: cannot start client %d\n", argv[0], i);
            atomic_store(&g_stop, true);
            break;
        }
        started++;
    }
    uint64_t ops = 0, w_ok = 0, w_failed = 0, w_unknown = 0, r_ok = 0, r_failed = 0, max_write = 0, uniq = 0;
    for (int i = 0; i < started; i++) {
        pthread_join(cls[i].th, NULL);
        struct client *cl = &cls[i];
        ops += cl->ops;
        w_ok += cl->w_ok;
        w_failed += cl->w_failed;
        w_unknown += cl->w_unknown;
        r_ok += cl->r_ok;
        r_failed += cl->r_failed;
        if (cl->max_write_ns > max_write)
            max_write = cl->max_write_ns;
        for (size_t k = 0; k < cl->nacked; k++) {
            fprintf(acked, "%s\n", cl->acked[k]);
            free(cl->acked[k]);
        }
        uniq += cl->nacked;
        free(cl->acked);
    }
    free(cls);
    int rc = started == n ? 0 : 2;
    if (fclose(acked) != 0 || fclose(g_hist) != 0) {
        fprintf(stderr, "%s: writing the history or the acknowledged keys: %s\n", argv[0], strerror(errno));
        rc = 2;
    }
    printf("summary ops=%" PRIu64 " writes_ok=%" PRIu64 " writes_failed=%" PRIu64 " writes_unknown=%" PRIu64
           " reads_ok=%" PRIu64 " reads_failed=%" PRIu64 " max_write_ms=%" PRIu64 " max_gap_ms=%" PRIu64
           " unique_acked=%" PRIu64 " seconds=%.1f\n",
           ops, w_ok, w_failed, w_unknown, r_ok, r_failed, max_write / 1000000, g_max_gap_ns / 1000000, uniq,
           (double)(clock_mono_ns() - g_t0_ns) / 1e9);
    return rc;
}
