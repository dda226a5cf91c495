/* The disk's ceiling for the one-node benchmark: synced RocksDB puts per
 * second through the store layer (one WriteBatch, one fsync'd WAL write each),
 * from 1 thread and from N threads at once (RocksDB groups concurrent
 * writers into one WAL sync, as the node's group commit does). */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kv/store.h"
#include "util/clock.h"

struct worker {
    pthread_t th;
    struct store *st;
    int id;
    double seconds;
    uint64_t ops;
};

static double now_s(void)
{
    return (double)clock_mono_ns() / 1e9;
}

static void *run(void *arg)
{
    struct worker *w = arg;
    struct store_batch *b = store_batch_new(w->st);
    char val[256];
    memset(val, 'v', sizeof val);
    double end = now_s() + w->seconds;
    struct errbuf eb;
    while (now_s() < end) {
        char key[32];
        int kl = snprintf(key, sizeof key, "raw/%03d/%06llu", w->id, (unsigned long long)(w->ops % 10000));
        store_batch_clear(b);
        store_batch_put(b, STORE_CF_DATA, key, (size_t)kl, val, sizeof val);
        if (store_write(w->st, b, true, &eb) != ERR_OK) {
            fprintf(stderr, "write: %s\n", eb.msg);
            break;
        }
        w->ops++;
    }
    store_batch_free(b);
    return NULL;
}

int main(int argc, char **argv)
{
    if (argc < 3) {
        fprintf(stderr, "usage: %s DIR THREADS [SECONDS]\n", argv[0]);
        return 2;
    }
    int n = atoi(argv[2]);
    double secs = argc > 3 ? atof(argv[3]) : 5;
    if (n < 1 || n > 1024) {
        fprintf(stderr, "bad thread count\n");
        return 2;
    }
    struct store *st;
    struct errbuf eb;
    if (store_open(&st, argv[1], NULL, &eb) != ERR_OK) {
        fprintf(stderr, "open: %s\n", eb.msg);
        return 1;
    }
    struct worker *ws = calloc((size_t)n, sizeof *ws);
    double t0 = now_s();
    for (int i = 0; i < n; i++) {
        ws[i] = (struct worker){.st = st, .id = i, .seconds = secs};
        pthread_create(&ws[i].th, NULL, run, &ws[i]);
    }
    uint64_t ops = 0;
    for (int i = 0; i < n; i++) {
        pthread_join(ws[i].th, NULL);
        ops += ws[i].ops;
    }
    double elapsed = now_s() - t0;
    printf("rocksdb synced puts: threads=%d value=256B seconds=%.1f ops=%llu ops/s=%.0f\n", n, elapsed,
           (unsigned long long)ops, (double)ops / elapsed);
    free(ws);
    store_close(st);
    return 0;
}
