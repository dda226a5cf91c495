/* The power tests' writer: CLIENTS threads, each writing its own keys
 * PREFIX/<client>/<seq> one at a time, print every write the cluster
 * acknowledged (one key per line, value = key), so that after a power cut the
 * test can require each of them back.
 *
 *   ddkv-power-writer ENDPOINTS CLIENTS OPS PREFIX [SECONDS]
 *
 * Stops after OPS acknowledged writes in all, or after SECONDS (default 20).
 * A write that fails is not printed (its outcome may be unknown: a test
 * counts only what was acknowledged). Exit 0 when OPS writes were
 * acknowledged, 1 otherwise. */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ddkv/ddkv.h"
#include "util/clock.h"

struct worker {
    pthread_t th;
    int id;
    char **acked; /* keys, owned */
    size_t n, cap;
    uint64_t errors;
};

static const char *endpoints, *prefix;
static long ops_max;
static atomic_long ops_taken;
static uint64_t deadline_ms;

static void *run(void *arg)
{
    struct worker *w = arg;
    struct ddkv_options o;
    ddkv_options_init(&o);
    o.endpoints = endpoints;
    ddkv_client *c;
    char err[256];
    if (ddkv_client_new(&o, &c, err, sizeof err) != DDKV_OK) {
        fprintf(stderr, "client %d: %s\n", w->id, err);
        return NULL;
    }
    for (uint64_t seq = 0; clock_mono_ms() < deadline_ms; seq++) {
        if (atomic_fetch_add(&ops_taken, 1) >= ops_max)
            break;
        char key[128];
        int kl = snprintf(key, sizeof key, "%s/%02d/%06llu", prefix, w->id, (unsigned long long)seq);
        struct ddkv_write_result r;
        ddkv_err e = ddkv_write(c, key, (size_t)kl, key, (size_t)kl, 0, &r);
        if (e != DDKV_OK) {
            w->errors++;
            atomic_fetch_sub(&ops_taken, 1);
            continue;
        }
        if (w->n == w->cap) {
            w->cap = w->cap ? w->cap * 2 : 256;
            char **nk = realloc(w->acked, w->cap * sizeof *nk);
            if (!nk)
                abort();
            w->acked = nk;
        }
        w->acked[w->n++] = strdup(key);
    }
    ddkv_client_free(c);
    return NULL;
}

int main(int argc, char **argv)
{
    if (argc < 5) {
        fprintf(stderr, "usage: %s ENDPOINTS CLIENTS OPS PREFIX [SECONDS]\n", argv[0]);
        return 2;
    }
    endpoints = argv[1];
    int n = atoi(argv[2]);
    ops_max = atol(argv[3]);
    prefix = argv[4];
    deadline_ms = clock_mono_ms() + (uint64_t)(argc > 5 ? atof(argv[5]) * 1000 : 20000);
    if (n < 1 || n > 64 || ops_max < 1) {
        fprintf(stderr, "CLIENTS 1..64, OPS >= 1\n");
        return 2;
    }
    struct worker *ws = calloc((size_t)n, sizeof *ws);
    for (int i = 0; i < n; i++) {
        ws[i].id = i;
        pthread_create(&ws[i].th, NULL, run, &ws[i]);
    }
    long acked = 0;
    uint64_t errors = 0;
    for (int i = 0; i < n; i++) {
        pthread_join(ws[i].th, NULL);
        for (size_t k = 0; k < ws[i].n; k++) {
            printf("%s\n", ws[i].acked[k]);
            free(ws[i].acked[k]);
        }
        free(ws[i].acked);
        acked += (long)ws[i].n;
        errors += ws[i].errors;
    }
    free(ws);
    fprintf(stderr, "acknowledged %ld writes (%llu failed)\n", acked, (unsigned long long)errors);
    return acked >= ops_max ? 0 : 1;
}
