/* A simple closed-loop benchmark: N threads, each with its own libddkv client,
 * write (or read, at a chosen consistency) for a fixed time; prints ops/s and
 * latency percentiles. Each client starts at a different endpoint of the list,
 * so reads that any member may answer spread over the members.
 * (The full bench suite with etcd comparison is its own issue.) */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ddkv/ddkv.h"
#include "util/clock.h"

struct worker {
    pthread_t th;
    int id;
    const char *endpoints;
    double seconds;
    size_t value_size;
    int mode; /* -1 write, else a read consistency */
    uint64_t ops, errors;
    uint64_t *lat_us; /* one sample per op, up to cap */
    size_t nlat, cap;
};

static double now_s(void)
{
    return (double)clock_mono_ns() / 1e9;
}

static void *run(void *arg)
{
    struct worker *w = arg;
    /* Rotate the endpoint list by the worker's id. */
    char eps[1024], *list[64];
    int ne = 0;
    snprintf(eps, sizeof eps, "%s", w->endpoints);
    for (char *save = NULL, *t = strtok_r(eps, ",", &save); t && ne < 64; t = strtok_r(NULL, ",", &save))
        list[ne++] = t;
    char mine[1024] = "";
    for (int i = 0; i < ne; i++) {
        size_t l = strlen(mine);
        snprintf(mine + l, sizeof mine - l, "%s%s", i ? "," : "", list[(i + w->id) % ne]);
    }
    struct ddkv_options o;
    ddkv_options_init(&o);
    o.endpoints = mine;
    ddkv_client *c;
    char err[256];
    if (ddkv_client_new(&o, &c, err, sizeof err) != DDKV_OK) {
        fprintf(stderr, "client: %s\n", err);
        w->errors++;
        return NULL;
    }
    char *val = malloc(w->value_size);
    memset(val, 'v', w->value_size);
    enum { READ_KEYS = 100 };
    if (w->mode >= 0) {
        /* Reads need keys: write this worker's set first (not timed). */
        for (int i = 0; i < READ_KEYS; i++) {
            char key[32];
            int kl = snprintf(key, sizeof key, "bench/%03d/%06d", w->id, i);
            struct ddkv_write_result r;
            if (ddkv_write(c, key, (size_t)kl, val, w->value_size, 0, &r) != DDKV_OK)
                w->errors++;
        }
    }
    double end = now_s() + w->seconds;
    for (uint64_t i = 0;; i++) {
        double t0 = now_s();
        if (t0 >= end)
            break;
        char key[32];
        int kl = snprintf(key, sizeof key, "bench/%03d/%06llu", w->id, (unsigned long long)(i % 10000));
        ddkv_err e;
        if (w->mode < 0) {
            struct ddkv_write_result r;
            e = ddkv_write(c, key, (size_t)kl, val, w->value_size, 0, &r);
        } else {
            kl = snprintf(key, sizeof key, "bench/%03d/%06llu", w->id, (unsigned long long)(i % READ_KEYS));
            struct ddkv_value v;
            e = ddkv_read(c, key, (size_t)kl, (enum ddkv_consistency)w->mode, 0, &v);
            if (e == DDKV_OK)
                ddkv_free(v.value);
        }
        if (e != DDKV_OK) {
            w->errors++;
            continue;
        }
        w->ops++;
        if (w->nlat == w->cap) {
            w->cap = w->cap ? w->cap * 2 : 4096;
            w->lat_us = realloc(w->lat_us, w->cap * sizeof *w->lat_us);
        }
        w->lat_us[w->nlat++] = (uint64_t)((now_s() - t0) * 1e6);
    }
    free(val);
    ddkv_client_free(c);
    return NULL;
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

int main(int argc, char **argv)
{
    if (argc < 3) {
        fprintf(stderr, "usage: %s ENDPOINTS CLIENTS [SECONDS] [VALUE_BYTES] "
                        "[write|linearizable|causal|stale]\n", argv[0]);
        return 2;
    }
    int n = atoi(argv[2]);
    double secs = argc > 3 ? atof(argv[3]) : 5;
    size_t vs = argc > 4 ? (size_t)atol(argv[4]) : 256;
    const char *what = argc > 5 ? argv[5] : "write";
    int mode = strcmp(what, "write") == 0          ? -1
               : strcmp(what, "linearizable") == 0 ? DDKV_CONSISTENCY_LINEARIZABLE
               : strcmp(what, "causal") == 0       ? DDKV_CONSISTENCY_CAUSAL
               : strcmp(what, "stale") == 0        ? DDKV_CONSISTENCY_STALE
                                                   : -2;
    if (n < 1 || n > 1024 || secs <= 0 || mode == -2) {
        fprintf(stderr, "bad arguments\n");
        return 2;
    }
    struct worker *ws = calloc((size_t)n, sizeof *ws);
    double t0 = now_s();
    for (int i = 0; i < n; i++) {
        ws[i] = (struct worker){.id = i, .endpoints = argv[1], .seconds = secs, .value_size = vs,
                                .mode = mode};
        pthread_create(&ws[i].th, NULL, run, &ws[i]);
    }
    uint64_t ops = 0, errors = 0;
    size_t total = 0;
    for (int i = 0; i < n; i++) {
        pthread_join(ws[i].th, NULL);
        ops += ws[i].ops;
        errors += ws[i].errors;
        total += ws[i].nlat;
    }
    double elapsed = now_s() - t0;
    uint64_t *all = malloc((total ? total : 1) * sizeof *all);
    size_t k = 0;
    for (int i = 0; i < n; i++) {
        memcpy(all + k, ws[i].lat_us, ws[i].nlat * sizeof *all);
        k += ws[i].nlat;
        free(ws[i].lat_us);
    }
    qsort(all, total, sizeof *all, cmp_u64);
#define PCT(p) (total ? all[(size_t)((double)(total - 1) * (p))] : 0)
    printf("%s clients=%d value=%zuB seconds=%.1f ops=%llu errors=%llu ops/s=%.0f "
           "p50=%lluus p99=%lluus max=%lluus\n",
           what, n, vs, elapsed, (unsigned long long)ops, (unsigned long long)errors, (double)ops / elapsed,
           (unsigned long long)PCT(0.50), (unsigned long long)PCT(0.99), (unsigned long long)PCT(1.0));
    free(all);
    free(ws);
    return errors ? 1 : 0;
}
