/* A recorded history checked for linearizability: 5 clients do linearizable
 * reads, writes and CAS on 4 keys of a 3-node cluster while the leader is
 * killed and restarted; every operation's call and return times and outcome
 * go to a JSON-lines file (the fault suite's format), which the checker in
 * test/faults must find linearizable. The start of the fault suite: the
 * nemesis there adds pauses, partitions and membership changes. */
#include <criterion/criterion.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cluster_client.h"
#include "harness.h"
#include "linearize.h"
#include "util/clock.h"

TestSuite(history, .fini = stop_all, .timeout = 600);

#define NCLIENTS 5
static pthread_mutex_t hist_lock = PTHREAD_MUTEX_INITIALIZER;
static FILE *hist;

struct recorder {
    pthread_t th;
    int id;
    char endpoints[512];
    volatile int *stop;
    uint64_t seed;
    int ops;
};

static void record(int client, const char *op, const char *key, const char *value, const char *expected,
                   uint64_t call, uint64_t ret, const char *ok)
{
    pthread_mutex_lock(&hist_lock);
    fprintf(hist, "{\"client\":%d,\"op\":\"%s\",\"key\":\"%s\",\"value\":", client, op, key);
    if (value)
        fprintf(hist, "\"%s\"", value);
    else
        fputs("null", hist);
    fputs(",\"expected\":", hist);
    if (expected)
        fprintf(hist, "\"%s\"", expected);
    else
        fputs("null", hist);
    fprintf(hist, ",\"call\":%llu,\"return\":%llu,\"ok\":%s}\n", (unsigned long long)call,
            (unsigned long long)ret, ok);
    pthread_mutex_unlock(&hist_lock);
}

static void *recorder_main(void *arg)
{
    struct recorder *rc = arg;
    ddkv_client *c = client_for(rc->endpoints, 4000);
    int seq = 0;
    while (!*rc->stop) {
        char key[8], val[32], exp[32];
        snprintf(key, sizeof key, "k%d", (int)(test_rng(&rc->seed) % 4));
        int what = (int)(test_rng(&rc->seed) % 3);
        uint64_t call = clock_mono_ns();
        if (what == 0) {
            struct ddkv_value v;
            ddkv_err e = ddkv_read(c, key, strlen(key), DDKV_CONSISTENCY_LINEARIZABLE, 0, &v);
            uint64_t ret = clock_mono_ns();
            if (e == DDKV_OK) {
                record(rc->id, "read", key, v.value, NULL, call, ret, "true");
                ddkv_free(v.value);
            } else if (e == DDKV_ERR_NOT_FOUND) {
                record(rc->id, "read", key, NULL, NULL, call, ret, "true");
            } else {
                record(rc->id, "read", key, NULL, NULL, call, ret, "false");
            }
        } else if (what == 1) {
            snprintf(val, sizeof val, "c%d-%d", rc->id, ++seq);
            struct ddkv_write_result wr;
            ddkv_err e = ddkv_write(c, key, strlen(key), val, strlen(val), 0, &wr);
            record(rc->id, "write", key, val, NULL, call, clock_mono_ns(),
                   e == DDKV_OK ? "true" : e == DDKV_ERR_UNKNOWN_OUTCOME ? "\"unknown\"" : "false");
        } else {
            /* CAS from a value some client wrote, usually a recent one. */
            snprintf(val, sizeof val, "c%d-%d", rc->id, ++seq);
            snprintf(exp, sizeof exp, "c%d-%d", (int)(test_rng(&rc->seed) % NCLIENTS),
                     seq > 3 ? seq - (int)(test_rng(&rc->seed) % 3) : 1);
            struct ddkv_txn_result tr;
            ddkv_err e = ddkv_cas(c, key, strlen(key), exp, strlen(exp), false, val, strlen(val), 0, &tr);
            /* Any error but an answer: its effect is not known here. */
            record(rc->id, "cas", key, val, exp, call, clock_mono_ns(),
                   e == DDKV_OK ? (tr.succeeded ? "true" : "false") : "\"unknown\"");
        }
        rc->ops++;
    }
    ddkv_client_free(c);
    return NULL;
}

Test(history, operations_across_leader_kills_are_linearizable)
{
    static const char *const extra[] = {"--election-timeout-ms", "1000", "--heartbeat-ms", "100", NULL};
    cr_assert_eq(pc_start(&pc, 3, extra), 0);
    cr_assert_geq(pc_leader(&pc, 15000), 0);
    char dir[256], path[300];
    cr_assert_eq(harness_tmpdir(dir, sizeof dir, "history"), 0);
    snprintf(path, sizeof path, "%s/history.jsonl", dir);
    hist = fopen(path, "w");
    cr_assert_not_null(hist);
    struct recorder rs[NCLIENTS];
    volatile int stop = 0;
    for (int i = 0; i < NCLIENTS; i++) {
        memset(&rs[i], 0, sizeof rs[i]);
        rs[i].id = i;
        rs[i].stop = &stop;
        rs[i].seed = 0x9e3779b97f4a7c15ull * (uint64_t)(i + 1);
        pc_endpoints(&pc, rs[i].endpoints, sizeof rs[i].endpoints);
        cr_assert_eq(pthread_create(&rs[i].th, NULL, recorder_main, &rs[i]), 0);
    }
    for (int round = 0; round < 2; round++) {
        usleep(1500 * 1000);
        int leader = pc_leader(&pc, 10000);
        cr_assert_geq(leader, 0);
        pn_kill(&pc.nodes[leader], SIGKILL);
        usleep(2500 * 1000);
        cr_assert_eq(pc_start_node(&pc, leader), 0);
    }
    usleep(1500 * 1000);
    stop = 1;
    int ops = 0;
    for (int i = 0; i < NCLIENTS; i++) {
        pthread_join(rs[i].th, NULL);
        ops += rs[i].ops;
    }
    fclose(hist);
    struct lin_report r;
    uint64_t t0 = clock_mono_ns();
    cr_assert_eq(lin_check_file(path, &r), 0, "%s", r.why);
    cr_log_info("%d operations on %zu keys, checked in %.2f s: %s", ops, r.keys,
                (double)(clock_mono_ns() - t0) / 1e9, r.linearizable ? "linearizable" : r.why);
    cr_assert(r.linearizable, "%s (history kept in %s)", r.why, path);
    cr_assert_gt(ops, 200);
    harness_rmrf(dir);
}
