/* Job management (issue 23): priorities without starvation, cancel of a
 * queued or running job, deleting a result or a whole job, and claims on a
 * queue that 0.1.0 wrote (its queue keys without a priority, its claims
 * without a deadline index). */
#include <criterion/criterion.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cluster_client.h"
#include "harness.h"

TestSuite(jobs_manage, .fini = stop_all, .timeout = 300);

static char eps[512];

static ddkv_client *start(void)
{
    static const char *const extra[] = {"--election-timeout-ms", "1000", "--heartbeat-ms", "100", NULL};
    cr_assert_eq(pc_start(&pc, 1, extra), 0, "node did not start (see %s)", pc.nodes[0].log);
    cr_assert_geq(pc_leader(&pc, 15000), 0, "no leader elected");
    pc_endpoints(&pc, eps, sizeof eps);
    return client_for(eps, 10000);
}

static bool has(ddkv_client *c, const char *key)
{
    struct ddkv_value v;
    ddkv_err e = ddkv_read(c, key, strlen(key), DDKV_CONSISTENCY_LINEARIZABLE, 0, &v);
    cr_assert(e == DDKV_OK || e == DDKV_ERR_NOT_FOUND, "read %s: %s", key, ddkv_client_errmsg(c));
    if (e == DDKV_OK)
        ddkv_free(v.value);
    return e == DDKV_OK;
}

static void record_has(ddkv_client *c, const char *id, const char *text)
{
    char key[96];
    snprintf(key, sizeof key, "jobs/%s", id);
    struct ddkv_value v;
    cr_assert_eq(ddkv_read(c, key, strlen(key), DDKV_CONSISTENCY_LINEARIZABLE, 0, &v), DDKV_OK, "%s", key);
    cr_assert_not_null(strstr(v.value, text), "%s lacks %s: %s", key, text, (char *)v.value);
    ddkv_free(v.value);
}

/* Which of ids[0..n) id is, or -1. */
static int which(char **ids, int n, const char *id)
{
    for (int i = 0; i < n; i++)
        if (!strcmp(ids[i], id))
            return i;
    return -1;
}

Test(jobs_manage, of_seven_claims_four_take_high_two_normal_one_low_and_low_never_starves)
{
    ddkv_client *c = start();
    /* 10 low first, then 10 normal, then 10 high: submission order alone
     * would hand out the low ones first. */
    static const char *const prio[] = {"low", "normal", "high"};
    char *ids[30];
    for (int i = 0; i < 30; i++) {
        char data[32];
        snprintf(data, sizeof data, "jobdata/p%02d/", i);
        cr_assert_eq(ddkv_job_put_priority(c, data, NULL, 3, prio[i / 10], &ids[i]), DDKV_OK, "%s",
                     ddkv_client_errmsg(c));
        usleep(2000); /* distinct submission times */
    }
    char *bad = NULL;
    cr_assert_eq(ddkv_job_put_priority(c, "jobdata/x/", NULL, 3, "urgent", &bad), DDKV_ERR_USAGE);
    record_has(c, ids[0], "\"priority\":\"low\"");
    record_has(c, ids[29], "\"priority\":\"high\"");
    int got[3] = {0, 0, 0}, next[3] = {0, 10, 20};
    bool seen[30] = {false};
    for (int k = 0; k < 30; k++) {
        struct ddkv_job_claim j;
        cr_assert_eq(ddkv_job_claim(c, "w", 60000, &j), DDKV_OK, "claim %d: %s", k, ddkv_client_errmsg(c));
        int i = which(ids, 30, j.id);
        cr_assert_geq(i, 0, "claimed an unknown job %s", j.id);
        cr_assert(!seen[i], "job %d claimed twice", i);
        seen[i] = true;
        int lv = i / 10;
        cr_assert_eq(i, next[lv], "within a priority, oldest first: claim %d got job %d, want %d", k, i, next[lv]);
        next[lv]++;
        got[lv]++;
        if (k == 6) /* the first cycle: every level waits */
            cr_assert(got[2] == 4 && got[1] == 2 && got[0] == 1,
                      "the first 7 claims took %d high, %d normal, %d low; want 4, 2, 1", got[2], got[1], got[0]);
        if (k == 13)
            cr_assert(got[2] == 8 && got[1] == 4 && got[0] == 2,
                      "the first 14 claims took %d high, %d normal, %d low; want 8, 4, 2", got[2], got[1], got[0]);
        ddkv_job_claim_free(&j);
    }
    cr_assert(got[0] == 10 && got[1] == 10 && got[2] == 10);
    struct ddkv_job_claim j;
    cr_assert_eq(ddkv_job_claim(c, "w", 60000, &j), DDKV_ERR_NOT_FOUND);
    for (int i = 0; i < 30; i++)
        ddkv_free(ids[i]);
    ddkv_client_free(c);
}

Test(jobs_manage, a_cancelled_job_leaves_the_queue_and_its_running_worker_is_fenced)
{
    ddkv_client *c = start();
    char *q, *r, *state = NULL;
    cr_assert_eq(ddkv_job_put(c, "jobdata/q/", "queued.csv", 3, &q), DDKV_OK);
    usleep(2000);
    cr_assert_eq(ddkv_job_put(c, "jobdata/r/", "running.csv", 3, &r), DDKV_OK);
    /* Cancel the queued one: the next claim gets the other. */
    cr_assert_eq(ddkv_job_cancel(c, q, DDKV_JOB_CANCEL, &state), DDKV_OK, "%s", ddkv_client_errmsg(c));
    cr_assert_str_eq(state, "cancelled");
    ddkv_free(state);
    record_has(c, q, "\"state\":\"cancelled\"");
    struct ddkv_job_claim j, none;
    cr_assert_eq(ddkv_job_claim(c, "w", 400, &j), DDKV_OK, "%s", ddkv_client_errmsg(c));
    cr_assert_str_eq(j.id, r, "a cancelled job was claimed");
    /* Cancel it while it runs: its worker can neither extend nor ack. */
    cr_assert_eq(ddkv_job_cancel(c, r, DDKV_JOB_CANCEL, NULL), DDKV_OK, "%s", ddkv_client_errmsg(c));
    record_has(c, r, "\"state\":\"cancelled\"");
    uint64_t tok = j.token;
    cr_assert_eq(ddkv_job_extend(c, j.id, &tok, 5000), DDKV_ERR_FENCED);
    cr_assert_eq(ddkv_job_ack(c, j.id, j.token, "", "late", 4), DDKV_ERR_FENCED);
    /* Its claim would have expired by now: nothing comes back. */
    usleep(800 * 1000);
    cr_assert_eq(ddkv_job_claim(c, "w2", 5000, &none), DDKV_ERR_NOT_FOUND, "a cancelled job came back: %s",
                 none.id ? none.id : "");
    record_has(c, r, "\"state\":\"cancelled\"");
    /* A finished job cannot be cancelled; an unknown one is not found. */
    cr_assert_eq(ddkv_job_cancel(c, r, DDKV_JOB_CANCEL, NULL), DDKV_ERR_BAD_REQUEST);
    cr_assert_eq(ddkv_job_cancel(c, "0123-4", DDKV_JOB_CANCEL, NULL), DDKV_ERR_NOT_FOUND);
    ddkv_job_claim_free(&j);
    ddkv_free(q);
    ddkv_free(r);
    ddkv_client_free(c);
}

Test(jobs_manage, deleting_a_result_then_the_job_removes_record_result_and_claims)
{
    ddkv_client *c = start();
    char *id, *other;
    cr_assert_eq(ddkv_job_put(c, "jobdata/d/", "d.csv", 3, &id), DDKV_OK);
    struct ddkv_job_claim j;
    cr_assert_eq(ddkv_job_claim(c, "w", 60000, &j), DDKV_OK);
    char rkey[96], jkey[96];
    snprintf(rkey, sizeof rkey, "jobresult/%s", id);
    snprintf(jkey, sizeof jkey, "jobs/%s", id);
    cr_assert_eq(ddkv_job_cancel(c, id, DDKV_JOB_DELETE_RESULT, NULL), DDKV_ERR_BAD_REQUEST,
                 "a running job has no result to delete");
    cr_assert_eq(ddkv_job_ack(c, j.id, j.token, "", "{\"rows\":1}", 10), DDKV_OK);
    cr_assert(has(c, rkey));
    cr_assert_eq(ddkv_job_cancel(c, id, DDKV_JOB_DELETE_RESULT, NULL), DDKV_OK, "%s", ddkv_client_errmsg(c));
    cr_assert(!has(c, rkey), "the result is still there");
    cr_assert(has(c, jkey), "deleting the result deleted the job");
    record_has(c, id, "\"state\":\"done\"");
    cr_assert_eq(ddkv_job_cancel(c, id, DDKV_JOB_DELETE, NULL), DDKV_OK, "%s", ddkv_client_errmsg(c));
    cr_assert(!has(c, jkey), "the job is still there");
    cr_assert_eq(ddkv_job_cancel(c, id, DDKV_JOB_DELETE, NULL), DDKV_ERR_NOT_FOUND);
    /* A running job deleted: record and claim gone, its worker's ack refused, and
     * nothing left to claim once the claim would have expired. */
    cr_assert_eq(ddkv_job_put(c, "jobdata/e/", "e.csv", 3, &other), DDKV_OK);
    struct ddkv_job_claim k, none;
    cr_assert_eq(ddkv_job_claim(c, "w", 400, &k), DDKV_OK);
    cr_assert_eq(ddkv_job_cancel(c, other, DDKV_JOB_DELETE, NULL), DDKV_OK, "%s", ddkv_client_errmsg(c));
    char okey[96];
    snprintf(okey, sizeof okey, "jobc/%s", other);
    cr_assert(!has(c, okey), "its claim key is left");
    cr_assert_eq(ddkv_job_ack(c, k.id, k.token, "", "late", 4), DDKV_ERR_NOT_FOUND, "the worker's ack of a deleted job");
    char lkey[96];
    snprintf(lkey, sizeof lkey, "jobresult/%s", other);
    cr_assert(!has(c, lkey), "a deleted job's late ack wrote a result");
    usleep(800 * 1000);
    cr_assert_eq(ddkv_job_claim(c, "w2", 5000, &none), DDKV_ERR_NOT_FOUND);
    struct ddkv_list l;
    cr_assert_eq(ddkv_list_all(c, "jobc/", 5, 0, &l), DDKV_OK);
    cr_assert_eq(l.n, 0, "claim keys left: %zu", l.n);
    ddkv_list_free(&l);
    cr_assert_eq(ddkv_list_all(c, "jobq/", 5, 0, &l), DDKV_OK);
    cr_assert_eq(l.n, 0, "queue keys left: %zu", l.n);
    ddkv_list_free(&l);
    ddkv_job_claim_free(&j);
    ddkv_job_claim_free(&k);
    ddkv_free(id);
    ddkv_free(other);
    ddkv_client_free(c);
}

static void put(ddkv_client *c, const char *key, const char *val)
{
    struct ddkv_write_result w;
    cr_assert_eq(ddkv_write(c, key, strlen(key), val, strlen(val), 0, &w), DDKV_OK, "%s", ddkv_client_errmsg(c));
}

Test(jobs_manage, a_queue_that_0_1_0_wrote_is_claimed_expired_claims_first)
{
    ddkv_client *c = start();
    /* As a 0.1.0 leader leaves them: a queued job under jobq/<16 hex>-<id>
     * and a claimed one whose deadline passed, with only jobc/<id>. */
    put(c, "jobs/00000001-1",
        "{\"attempts\":0,\"created_ms\":1000,\"data\":\"jobdata/old/\",\"deadline_ms\":0,\"id\":\"00000001-1\","
        "\"max_attempts\":3,\"state\":\"queued\"}");
    put(c, "jobq/00000000000003e8-00000001-1", "");
    put(c, "jobs/00000001-2",
        "{\"attempts\":1,\"created_ms\":900,\"data\":\"jobdata/old2/\",\"deadline_ms\":5000,\"id\":\"00000001-2\","
        "\"max_attempts\":3,\"state\":\"claimed\",\"worker\":\"gone\"}");
    put(c, "jobc/00000001-2", "5000");
    /* And a new job of this release at normal priority, submitted later. */
    char *id;
    cr_assert_eq(ddkv_job_put(c, "jobdata/new/", NULL, 3, &id), DDKV_OK);
    struct ddkv_job_claim a, b, d, none;
    cr_assert_eq(ddkv_job_claim(c, "w", 60000, &a), DDKV_OK, "%s", ddkv_client_errmsg(c));
    cr_assert_str_eq(a.id, "00000001-2", "the expired 0.1.0 claim goes first");
    cr_assert_eq(a.attempts, 2);
    cr_assert_eq(ddkv_job_claim(c, "w", 60000, &b), DDKV_OK, "%s", ddkv_client_errmsg(c));
    cr_assert_str_eq(b.id, "00000001-1", "the older 0.1.0 queued job before the newer one");
    cr_assert_eq(ddkv_job_claim(c, "w", 60000, &d), DDKV_OK, "%s", ddkv_client_errmsg(c));
    cr_assert_str_eq(d.id, id);
    cr_assert_eq(ddkv_job_claim(c, "w", 60000, &none), DDKV_ERR_NOT_FOUND);
    cr_assert_eq(ddkv_job_ack(c, a.id, a.token, "", NULL, 0), DDKV_OK, "%s", ddkv_client_errmsg(c));
    cr_assert_eq(ddkv_job_ack(c, b.id, b.token, "", NULL, 0), DDKV_OK, "%s", ddkv_client_errmsg(c));
    cr_assert(!has(c, "jobc/00000001-2") && !has(c, "jobq/00000000000003e8-00000001-1"));
    ddkv_job_claim_free(&a);
    ddkv_job_claim_free(&b);
    ddkv_job_claim_free(&d);
    ddkv_free(id);
    ddkv_client_free(c);
}

Test(jobs_manage, priorities_and_cancel_keep_working_across_a_leader_kill)
{
    static const char *const extra[] = {"--election-timeout-ms", "1000", "--heartbeat-ms", "100", NULL};
    cr_assert_eq(pc_start(&pc, 3, extra), 0, "cluster did not start (see %s)", pc.nodes[0].log);
    int leader = pc_leader(&pc, 15000);
    cr_assert_geq(leader, 0, "no leader elected");
    pc_endpoints(&pc, eps, sizeof eps);
    ddkv_client *c = client_for(eps, 15000);
    /* Priorities wait for the cluster version 0.2.0 (raised once the leader
     * sees every member's release): until then a high job is refused. */
    char *probe = NULL;
    ddkv_err pe = DDKV_ERR_BAD_REQUEST;
    for (int t = 0; t < 100 && pe == DDKV_ERR_BAD_REQUEST; t++) {
        pe = ddkv_job_put_priority(c, "jobdata/probe/", NULL, 3, "high", &probe);
        if (pe == DDKV_ERR_BAD_REQUEST) {
            cr_assert_not_null(strstr(ddkv_client_errmsg(c), "cluster version"), "%s", ddkv_client_errmsg(c));
            usleep(100 * 1000);
        }
    }
    cr_assert_eq(pe, DDKV_OK, "%s", ddkv_client_errmsg(c));
    struct ddkv_job_claim pj;
    cr_assert_eq(ddkv_job_claim(c, "w", 60000, &pj), DDKV_OK);
    cr_assert_str_eq(pj.id, probe);
    cr_assert_eq(ddkv_job_ack(c, pj.id, pj.token, "", NULL, 0), DDKV_OK);
    ddkv_job_claim_free(&pj);
    ddkv_free(probe);
    static const char *const prio[] = {"low", "normal", "high"};
    char *ids[18];
    for (int i = 0; i < 18; i++) {
        char data[32];
        snprintf(data, sizeof data, "jobdata/k%02d/", i);
        cr_assert_eq(ddkv_job_put_priority(c, data, NULL, 3, prio[i / 6], &ids[i]), DDKV_OK, "%s",
                     ddkv_client_errmsg(c));
        usleep(2000);
    }
    int times[18] = {0}, got[3] = {0};
    for (int k = 0; k < 7; k++) {
        struct ddkv_job_claim j;
        cr_assert_eq(ddkv_job_claim(c, "w", 60000, &j), DDKV_OK, "%s", ddkv_client_errmsg(c));
        int i = which(ids, 18, j.id);
        cr_assert_geq(i, 0);
        times[i]++;
        got[i / 6]++;
        cr_assert_eq(ddkv_job_ack(c, j.id, j.token, "", NULL, 0), DDKV_OK, "%s", ddkv_client_errmsg(c));
        ddkv_job_claim_free(&j);
    }
    cr_assert(got[2] == 4 && got[1] == 2 && got[0] == 1, "before the kill: %d high, %d normal, %d low", got[2],
              got[1], got[0]);
    /* Cancel a normal job still queued (the 4th normal: 2 were taken). */
    cr_assert_eq(ddkv_job_cancel(c, ids[9], DDKV_JOB_CANCEL, NULL), DDKV_OK, "%s", ddkv_client_errmsg(c));
    pn_kill(&pc.nodes[leader], SIGKILL);
    /* The new leader goes on: every job left is claimed once, the cancelled
     * one never. */
    for (;;) {
        struct ddkv_job_claim j;
        ddkv_err e = ddkv_job_claim(c, "w2", 60000, &j);
        if (e == DDKV_ERR_NOT_FOUND)
            break;
        if (e == DDKV_ERR_UNAVAILABLE || e == DDKV_ERR_UNKNOWN_OUTCOME) {
            usleep(200 * 1000); /* a lost claim expires in 60 s: not awaited here, counted below */
            continue;
        }
        cr_assert_eq(e, DDKV_OK, "%s", ddkv_client_errmsg(c));
        int i = which(ids, 18, j.id);
        cr_assert_geq(i, 0);
        cr_assert_neq(i, 9, "the cancelled job was claimed");
        times[i]++;
        cr_assert_eq(ddkv_job_ack(c, j.id, j.token, "", NULL, 0), DDKV_OK, "%s", ddkv_client_errmsg(c));
        ddkv_job_claim_free(&j);
    }
    int lost = 0;
    for (int i = 0; i < 18; i++) {
        cr_assert_leq(times[i], 1, "job %d claimed %d times", i, times[i]);
        if (i != 9 && times[i] == 0) {
            /* Only a claim whose answer the kill lost: it is claimed, not queued. */
            record_has(c, ids[i], "\"state\":\"claimed\"");
            lost++;
        }
    }
    cr_assert_leq(lost, 1, "%d jobs neither claimed nor cancelled", lost);
    record_has(c, ids[9], "\"state\":\"cancelled\"");
    for (int i = 0; i < 18; i++)
        ddkv_free(ids[i]);
    ddkv_client_free(c);
}
