/* The job queue on a real 3-node cluster: submission order, fencing tokens
 * (a worker whose claim expired cannot complete the job another worker
 * claimed since), retries with a limit then the dead state, extending a
 * claim, and many workers completing every job exactly once across a leader
 * kill. */
#include <criterion/criterion.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cluster_client.h"
#include "harness.h"
#include "proto/msg.h"
#include "util/buf.h"

TestSuite(jobs, .fini = stop_all, .timeout = 600);

static char eps[512];

static ddkv_client *start(void)
{
    static const char *const extra[] = {"--election-timeout-ms", "1000", "--heartbeat-ms", "100", NULL};
    cr_assert_eq(pc_start(&pc, 3, extra), 0, "cluster did not start (see %s)", pc.nodes[0].log);
    cr_assert_geq(pc_leader(&pc, 15000), 0, "no leader elected");
    pc_endpoints(&pc, eps, sizeof eps);
    return client_for(eps, 10000);
}

/* The job's record, as the hub would read it. */
static void job_state(ddkv_client *c, const char *id, char *state, size_t n)
{
    char key[96];
    snprintf(key, sizeof key, "jobs/%s", id);
    struct ddkv_value v;
    cr_assert_eq(ddkv_read(c, key, strlen(key), DDKV_CONSISTENCY_LINEARIZABLE, 0, &v), DDKV_OK, "%s", key);
    const char *s = strstr(v.value, "\"state\":\"");
    cr_assert_not_null(s, "%s", (char *)v.value);
    s += 9;
    size_t l = strcspn(s, "\"");
    snprintf(state, n, "%.*s", (int)l, s);
    ddkv_free(v.value);
}

Test(jobs, claims_follow_submission_order_and_an_empty_queue_says_so)
{
    ddkv_client *c = start();
    char *ids[5];
    for (int i = 0; i < 5; i++) {
        char data[32];
        snprintf(data, sizeof data, "jobdata/%d", i);
        cr_assert_eq(ddkv_job_put(c, data, NULL, 3, &ids[i]), DDKV_OK, "%s", ddkv_client_errmsg(c));
        usleep(2000); /* distinct submission times */
    }
    for (int i = 0; i < 5; i++) {
        struct ddkv_job_claim j;
        cr_assert_eq(ddkv_job_claim(c, "w1", 10000, &j), DDKV_OK, "%s", ddkv_client_errmsg(c));
        cr_assert_str_eq(j.id, ids[i], "claim %d got %s", i, j.id);
        char want[32];
        snprintf(want, sizeof want, "jobdata/%d", i);
        cr_assert_str_eq(j.data_key, want);
        cr_assert_eq(j.attempts, 1);
        cr_assert_eq(ddkv_job_ack(c, j.id, j.token, "", NULL, 0), DDKV_OK, "%s", ddkv_client_errmsg(c));
        char st[16];
        job_state(c, j.id, st, sizeof st);
        cr_assert_str_eq(st, "done");
        cr_assert_eq(ddkv_job_ack(c, j.id, j.token, "", NULL, 0), DDKV_ERR_FENCED, "a second ack must be fenced");
        ddkv_job_claim_free(&j);
        ddkv_free(ids[i]);
    }
    struct ddkv_job_claim j;
    cr_assert_eq(ddkv_job_claim(c, "w1", 10000, &j), DDKV_ERR_NOT_FOUND);
    ddkv_client_free(c);
}

Test(jobs, a_worker_whose_claim_expired_is_fenced_and_the_next_one_completes_the_job)
{
    ddkv_client *c = start();
    char *id;
    cr_assert_eq(ddkv_job_put(c, "jobdata/slow", NULL, 5, &id), DDKV_OK);
    struct ddkv_job_claim a, b;
    cr_assert_eq(ddkv_job_claim(c, "slow-worker", 300, &a), DDKV_OK);
    cr_assert_eq(ddkv_job_claim(c, "other", 300, &b), DDKV_ERR_NOT_FOUND, "claimed twice before expiry");
    usleep(600 * 1000); /* the first worker goes quiet past its deadline */
    cr_assert_eq(ddkv_job_claim(c, "fast-worker", 10000, &b), DDKV_OK, "%s", ddkv_client_errmsg(c));
    cr_assert_str_eq(b.id, id);
    cr_assert_eq(b.attempts, 2);
    cr_assert_gt(b.token, a.token, "tokens grow");
    /* Both carry their result to the job's result key: only the holder's is
     * written. */
    char rkey[96];
    snprintf(rkey, sizeof rkey, "jobresult/%s", id);
    cr_assert_eq(ddkv_job_ack(c, a.id, a.token, rkey, "stale", 5), DDKV_ERR_FENCED,
                 "the stale worker completed it");
    cr_assert_eq(ddkv_job_extend(c, a.id, &a.token, 5000), DDKV_ERR_FENCED);
    struct ddkv_value v;
    cr_assert_eq(ddkv_read(c, rkey, strlen(rkey), DDKV_CONSISTENCY_LINEARIZABLE, 0, &v), DDKV_ERR_NOT_FOUND,
                 "a fenced ack wrote its result");
    cr_assert_eq(ddkv_job_ack(c, b.id, b.token, "jobs/x", "bad", 3), DDKV_ERR_BAD_REQUEST,
                 "a result inside the queue's own keys");
    cr_assert_eq(ddkv_job_ack(c, b.id, b.token, "result/one", "bad", 3), DDKV_ERR_BAD_REQUEST,
                 "a result outside the job's own result key");
    cr_assert_eq(ddkv_job_ack(c, b.id, b.token, rkey, "good", 4), DDKV_OK, "%s", ddkv_client_errmsg(c));
    cr_assert_eq(ddkv_read(c, rkey, strlen(rkey), DDKV_CONSISTENCY_LINEARIZABLE, 0, &v), DDKV_OK);
    cr_assert(v.len == 4 && !memcmp(v.value, "good", 4), "the result is not the holder's");
    ddkv_free(v.value);
    char key[96];
    snprintf(key, sizeof key, "jobs/%s", id);
    cr_assert_eq(ddkv_read(c, key, strlen(key), DDKV_CONSISTENCY_LINEARIZABLE, 0, &v), DDKV_OK);
    char want[128];
    snprintf(want, sizeof want, "\"result\":\"%s\"", rkey);
    cr_assert_not_null(strstr(v.value, want), "%s", (char *)v.value);
    cr_assert_not_null(strstr(v.value, "\"worker\":\"fast-worker\""), "%s", (char *)v.value);
    ddkv_free(v.value);
    ddkv_job_claim_free(&a);
    ddkv_job_claim_free(&b);
    ddkv_free(id);
    ddkv_client_free(c);
}

Test(jobs, nack_requeues_until_the_attempts_are_used_up_then_the_job_is_dead)
{
    ddkv_client *c = start();
    char *id;
    cr_assert_eq(ddkv_job_put(c, "jobdata/bad", NULL, 2, &id), DDKV_OK);
    for (int attempt = 1; attempt <= 2; attempt++) {
        struct ddkv_job_claim j;
        cr_assert_eq(ddkv_job_claim(c, "w", 10000, &j), DDKV_OK, "attempt %d", attempt);
        cr_assert_eq(j.attempts, (uint64_t)attempt);
        char *state = NULL;
        cr_assert_eq(ddkv_job_nack(c, j.id, j.token, "malformed input", &state), DDKV_OK);
        cr_assert_str_eq(state, attempt < 2 ? "queued" : "dead");
        ddkv_free(state);
        ddkv_job_claim_free(&j);
    }
    char st[16];
    job_state(c, id, st, sizeof st);
    cr_assert_str_eq(st, "dead");
    struct ddkv_job_claim j;
    cr_assert_eq(ddkv_job_claim(c, "w", 10000, &j), DDKV_ERR_NOT_FOUND, "a dead job was handed out");
    ddkv_free(id);
    ddkv_client_free(c);
}

Test(jobs, extending_a_claim_keeps_it_and_replaces_the_token)
{
    ddkv_client *c = start();
    char *id;
    cr_assert_eq(ddkv_job_put(c, "jobdata/long", NULL, 3, &id), DDKV_OK);
    struct ddkv_job_claim j, other;
    cr_assert_eq(ddkv_job_claim(c, "w", 400, &j), DDKV_OK);
    uint64_t old = j.token, tok = j.token;
    for (int i = 0; i < 4; i++) { /* 800 ms of work, kept alive every 200 ms */
        usleep(200 * 1000);
        cr_assert_eq(ddkv_job_extend(c, j.id, &tok, 400), DDKV_OK, "%s", ddkv_client_errmsg(c));
    }
    cr_assert_gt(tok, old);
    cr_assert_eq(ddkv_job_claim(c, "thief", 400, &other), DDKV_ERR_NOT_FOUND, "an extended claim was taken");
    cr_assert_eq(ddkv_job_ack(c, j.id, old, "", NULL, 0), DDKV_ERR_FENCED, "the old token still works");
    cr_assert_eq(ddkv_job_ack(c, j.id, tok, "", NULL, 0), DDKV_OK);
    ddkv_job_claim_free(&j);
    ddkv_free(id);
    ddkv_client_free(c);
}

/* --- many workers, a leader kill --- */

#define NJOBS 120
#define NWORKERS 6
static int acked[NJOBS];   /* acks answered OK */
static int unknown[NJOBS]; /* acks whose answer was lost in the failover */
static pthread_mutex_t acked_lock = PTHREAD_MUTEX_INITIALIZER;
static volatile int stop_workers;

struct worker {
    pthread_t th;
    int id, done, fenced;
};

static void *worker_main(void *arg)
{
    struct worker *w = arg;
    ddkv_client *c = client_for(eps, 5000);
    char name[16];
    snprintf(name, sizeof name, "w%d", w->id);
    while (!stop_workers) {
        struct ddkv_job_claim j;
        ddkv_err e = ddkv_job_claim(c, name, 2000, &j);
        if (e != DDKV_OK) {
            usleep(20 * 1000); /* empty, or a failover: a lost claim simply expires */
            continue;
        }
        int n = atoi(strrchr(j.data_key, '/') + 1);
        usleep(20000 + (useconds_t)(test_rng(&(uint64_t){(uint64_t)n + 1}) % 40000)); /* the work */
        e = ddkv_job_ack(c, j.id, j.token, "", NULL, 0);
        if (e == DDKV_OK) {
            pthread_mutex_lock(&acked_lock);
            acked[n]++;
            pthread_mutex_unlock(&acked_lock);
            w->done++;
        } else if (e == DDKV_ERR_FENCED) {
            w->fenced++;
        } else if (e == DDKV_ERR_UNKNOWN_OUTCOME) {
            pthread_mutex_lock(&acked_lock);
            unknown[n]++;
            pthread_mutex_unlock(&acked_lock);
        }
        ddkv_job_claim_free(&j);
    }
    ddkv_client_free(c);
    return NULL;
}

Test(jobs, six_workers_complete_every_job_exactly_once_across_a_leader_kill)
{
    ddkv_client *c = start();
    char *ids[NJOBS];
    for (int i = 0; i < NJOBS; i++) {
        char data[32];
        snprintf(data, sizeof data, "jobdata/%d", i);
        cr_assert_eq(ddkv_job_put(c, data, NULL, 10, &ids[i]), DDKV_OK, "%s", ddkv_client_errmsg(c));
    }
    struct worker ws[NWORKERS];
    for (int i = 0; i < NWORKERS; i++) {
        memset(&ws[i], 0, sizeof ws[i]);
        ws[i].id = i;
        pthread_create(&ws[i].th, NULL, worker_main, &ws[i]);
    }
    usleep(300 * 1000);
    int leader = pc_leader(&pc, 10000);
    cr_assert_geq(leader, 0);
    pthread_mutex_lock(&acked_lock);
    int before = 0;
    for (int i = 0; i < NJOBS; i++)
        before += acked[i];
    pthread_mutex_unlock(&acked_lock);
    cr_assert_lt(before, NJOBS / 2, "the kill must come mid-queue (%d of %d done already)", before, NJOBS);
    pn_kill(&pc.nodes[leader], SIGKILL);
    /* Every job ends done, as its record says: wait for it (claims lost in
     * the failover expire and are claimed again). */
    size_t done = 0;
    for (int waited = 0; waited < 120000 && done < NJOBS; waited += 500) {
        usleep(500 * 1000);
        struct ddkv_list l;
        if (ddkv_list_all(c, "jobs/", 5, 0, &l) != DDKV_OK)
            continue;
        done = 0;
        for (size_t i = 0; i < l.n; i++)
            done += strstr((const char *)l.entries[i].value, "\"state\":\"done\"") != NULL;
        ddkv_list_free(&l);
    }
    stop_workers = 1;
    int fenced = 0;
    for (int i = 0; i < NWORKERS; i++) {
        pthread_join(ws[i].th, NULL);
        fenced += ws[i].fenced;
    }
    /* At most one ack per job was ever accepted; a job with none was
     * completed by an ack whose answer was lost (it applied: the job is done). */
    int lost_answers = 0;
    for (int i = 0; i < NJOBS; i++) {
        cr_assert_leq(acked[i], 1, "job %d completed %d times", i, acked[i]);
        cr_assert_geq(acked[i] + unknown[i], 1, "job %d done by nobody's ack", i);
        lost_answers += acked[i] == 0;
        char st[16];
        job_state(c, ids[i], st, sizeof st);
        cr_assert_str_eq(st, "done", "job %d is %s", i, st);
        ddkv_free(ids[i]);
    }
    cr_log_info("%d jobs, each completed once by %d workers across a leader kill (%d stale acks fenced, %d acks "
                "whose answer was lost)", NJOBS, NWORKERS, fenced, lost_answers);
    ddkv_client_free(c);
}

/* JOB_ACK [id, token, result, client_id, seq] on a raw connection. */
static uint32_t raw_ack(int port, const char *id, uint64_t token, uint64_t client_id, uint64_t seq, char *state,
                        size_t n)
{
    int fd = tcp_connect_port(port);
    cr_assert_geq(fd, 0);
    struct buf req = BUF_INIT, hold = BUF_INIT;
    struct msg_writer w;
    msg_begin(&w, &req, DDKV_MSG_JOB_ACK, 1, 7, 5);
    mw_str(&w, id);
    mw_u64(&w, token);
    mw_str(&w, "");
    mw_u64(&w, client_id);
    mw_u64(&w, seq);
    cr_assert_eq(msg_end(&w), 0);
    struct msg m;
    cr_assert_eq(rpc(fd, &req, &hold, &m), 0);
    close(fd);
    uint32_t type = m.type;
    uint64_t code = 0;
    const uint8_t *p;
    size_t len;
    state[0] = 0;
    if (type == DDKV_MSG_JOB_SETTLED && msg_bytes(&m, 0, &p, &len) == 0 && len < n) {
        memcpy(state, p, len);
        state[len] = 0;
    } else if (type == DDKV_MSG_ERROR && msg_u64(&m, 0, &code) == 0) {
        snprintf(state, n, "error %llu", (unsigned long long)code);
    }
    msg_free(&m);
    buf_free(&req);
    buf_free(&hold);
    return type;
}

Test(jobs, an_ack_retried_under_its_session_gets_the_first_answer_not_fenced)
{
    ddkv_client *c = start();
    char *id;
    cr_assert_eq(ddkv_job_put(c, "jobdata/retry", NULL, 3, &id), DDKV_OK);
    struct ddkv_job_claim j;
    cr_assert_eq(ddkv_job_claim(c, "w", 10000, &j), DDKV_OK);
    int leader = pc_leader(&pc, 10000);
    cr_assert_geq(leader, 0);
    char st[32];
    raw_ack(pc.nodes[leader].port, j.id, j.token, 0xabc, 1, st, sizeof st);
    cr_assert_str_eq(st, "done");
    /* The answer was "lost": the same session write again. */
    raw_ack(pc.nodes[leader].port, j.id, j.token, 0xabc, 1, st, sizeof st);
    cr_assert_str_eq(st, "done", "a retried ack was answered '%s'", st);
    /* Another session with the same stale token is fenced. */
    raw_ack(pc.nodes[leader].port, j.id, j.token, 0xdef, 1, st, sizeof st);
    char want[32];
    snprintf(want, sizeof want, "error %d", DDKV_WERR_FENCED);
    cr_assert_str_eq(st, want);
    ddkv_job_claim_free(&j);
    ddkv_free(id);
    ddkv_client_free(c);
}
