/* Claim latency with a deep job queue (issue 23): queue N jobs, then claim
 * them one after another (without acking, so the claimed set grows to N) and
 * print the claim latency per tenth of the run: the first tenth claims with
 * N queued and few claimed, the last with few queued and nearly N claimed.
 *
 *   ddkv-bench-job-claims ENDPOINTS N [PUT_THREADS (16)] [MAX_CLAIM_S (120)]
 *
 * Stops claiming after MAX_CLAIM_S seconds and says how far it got (a claim
 * path that scans every claim key slows down as the claimed set grows). */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ddkv/ddkv.h"
#include "util/clock.h"

struct putter {
    pthread_t th;
    const char *endpoints;
    long from, to;
    long errors;
};

static ddkv_client *connect_to(const char *endpoints)
{
    struct ddkv_options o;
    ddkv_options_init(&o);
    o.endpoints = endpoints;
    ddkv_client *c;
    char err[256];
    if (ddkv_client_new(&o, &c, err, sizeof err) != DDKV_OK) {
        fprintf(stderr, "client: %s\n", err);
        return NULL;
    }
    return c;
}

static void *put_run(void *arg)
{
    struct putter *p = arg;
    ddkv_client *c = connect_to(p->endpoints);
    if (!c) {
        p->errors = p->to - p->from;
        return NULL;
    }
    for (long i = p->from; i < p->to; i++) {
        char *id = NULL;
        if (ddkv_job_put(c, "jobdata/bench/", "bench", 1, &id) != DDKV_OK)
            p->errors++;
        ddkv_free(id);
    }
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
        fprintf(stderr, "usage: %s ENDPOINTS N [PUT_THREADS] [MAX_CLAIM_S]\n", argv[0]);
        return 2;
    }
    long n = atol(argv[2]);
    int threads = argc > 3 ? atoi(argv[3]) : 16;
    double max_s = argc > 4 ? atof(argv[4]) : 120;
    if (n < 10 || threads < 1 || threads > 256)
        return 2;
    uint64_t t0 = clock_mono_ns();
    struct putter *ps = calloc((size_t)threads, sizeof *ps);
    for (int i = 0; i < threads; i++) {
        ps[i].endpoints = argv[1];
        ps[i].from = n * i / threads;
        ps[i].to = n * (i + 1) / threads;
        pthread_create(&ps[i].th, NULL, put_run, &ps[i]);
    }
    long perr = 0;
    for (int i = 0; i < threads; i++) {
        pthread_join(ps[i].th, NULL);
        perr += ps[i].errors;
    }
    free(ps);
    printf("queued %ld jobs in %.1f s (%ld errors)\n", n - perr, (double)(clock_mono_ns() - t0) / 1e9, perr);
    ddkv_client *c = connect_to(argv[1]);
    if (!c)
        return 1;
    long tenth = n / 10;
    uint64_t *lat = calloc((size_t)tenth, sizeof *lat);
    uint64_t end = clock_mono_ns() + (uint64_t)(max_s * 1e9);
    long done = 0, errs = 0;
    printf("%-22s %8s %8s %8s %8s\n", "claims (claimed before)", "p50 us", "p99 us", "max us", "claims/s");
    for (int d = 0; d < 10; d++) {
        long k = 0;
        uint64_t s0 = clock_mono_ns();
        for (; k < tenth && clock_mono_ns() < end; k++) {
            struct ddkv_job_claim j;
            uint64_t a = clock_mono_ns();
            ddkv_err e = ddkv_job_claim(c, "bench", 3600 * 1000, &j);
            lat[k] = (clock_mono_ns() - a) / 1000;
            if (e == DDKV_OK)
                ddkv_job_claim_free(&j);
            else
                errs++;
        }
        if (!k)
            break;
        double secs = (double)(clock_mono_ns() - s0) / 1e9;
        qsort(lat, (size_t)k, sizeof *lat, cmp_u64);
        char label[48];
        snprintf(label, sizeof label, "%ld..%ld", done, done + k);
        printf("%-22s %8llu %8llu %8llu %8.0f\n", label, (unsigned long long)lat[k / 2],
               (unsigned long long)lat[k * 99 / 100], (unsigned long long)lat[k - 1], (double)k / secs);
        done += k;
        if (k < tenth)
            break;
    }
    printf("claimed %ld of %ld (%ld errors)%s\n", done - errs, n, errs,
           done < n ? ": stopped at the time limit" : "");
    free(lat);
    ddkv_client_free(c);
    return 0;
}
