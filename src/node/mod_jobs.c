/* The job queue: a node module with message types of its own (JOB_PUT,
 * JOB_CLAIM, JOB_ACK, JOB_NACK, JOB_EXTEND), registered with the dispatcher
 * like any other, and replicated through the log like every write.
 *
 * A job is an ordinary key, so watches, snapshots, the CLI and the hub see
 * it like any other data:
 *   jobs/<id>    the job, a JSON object: id, state (queued | claimed | done |
 *                dead), data (the key prefix of its input), name (the
 *                submitter's, e.g. a file name), attempts, max_attempts,
 *                worker, deadline_ms, created_ms, result, error
 *   jobq/<id>    in the queue (value empty); ids sort in submission order
 *   jobc/<id>    claimed (value: the claim's deadline, decimal ms)
 * Every change is one transaction guarded by the job's mod_rev, so it applies
 * only to the state it was decided on:
 *   put     creates jobs/<id> and jobq/<id> if jobs/<id> does not exist;
 *   claim   the leader picks the oldest claim that expired (its worker went
 *           quiet) or else the oldest queued job, and moves it to claimed with
 *           attempts + 1 and a deadline; the transaction's revision, the job's
 *           new mod_rev, is the claim's fencing token (monotonic: a log
 *           index). A job whose attempts are used up goes to dead instead.
 *   ack     done, only if the token is still the job's mod_rev (else ERROR
 *           FENCED: another worker has claimed it since); an ack may carry
 *           the result itself, put at the result key in the same
 *           transaction, so that only the claim holder's result is ever
 *           written (a late worker's result is refused with its ack);
 *   nack    back to the queue (or dead, attempts used up), same check;
 *   extend  a new deadline (and so a new token), same check.
 * Claims are decided on the leader's applied state, one at a time (the next
 * waits until the previous one applied), so a claim never races another
 * claim; it can race an ack or a put, and then its guard fails and it picks
 * again. Deadlines use the leader's wall clock, like lease and session
 * expiry: a claim can only expire early by the clock difference between two
 * leaders, and the token keeps a late worker from completing a job that was
 * claimed again.
 *
 * What a client names is confined: a job's result lives at its own key,
 * jobresult/<id>, whatever else an ack names (refused, BAD_REQUEST), so a
 * worker can neither make the job point at a key it may not write nor
 * write one through its ack (access.c checks the acknowledging user's
 * write permission on that key); a job's input is under jobdata/; every
 * text a client gives (data key, name, worker, reason, id) is checked at
 * decode (UTF-8 without control characters, ids in their own alphabet), so
 * the job record can always be encoded and a bad field is BAD_REQUEST, never
 * INTERNAL. Ids are sized for any (client_id, seq): no two sessions' jobs
 * can share one by truncation. */
#include <inttypes.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ddkv/wire.h"
#include "kv/sm.h"
#include "kv/store.h"
#include "node/server.h"
#include "util/clock.h"
#include "util/err.h"
#include "util/log.h"
#include "util/text.h"

/* 16 hex digits, '-', up to 16 hex digits, NUL (an id from a session). */
#define JOB_ID_LEN 40
#define JOB_KEY_MAX 256
#define JOB_CLAIM_RETRIES 8
#define JOB_DATA_PREFIX "jobdata/"   /* where a job's input lives (src/jobs/submit.h) */
#define JOB_RESULT_PREFIX "jobresult/" /* the result of job ID is jobresult/ID */
#define JOB_VISIBILITY_MIN_MS 100
#define JOB_VISIBILITY_MAX_MS (24u * 3600 * 1000)

/* A claim waiting for its turn (claims run one at a time). */
struct claim_wait {
    struct conn *c; /* referenced */
    uint64_t rid;
    char worker[64];
    uint64_t visibility_ms;
    int tries;
    struct claim_wait *next;
};

struct jobs {
    uint64_t term, seq;            /* ids: the leader's term, then a counter */
    bool claiming;                 /* a claim transaction is in flight */
    struct claim_wait *head, *tail;
    /* The claim in flight: what to tell its client once it applies. */
    char cur_id[JOB_ID_LEN], cur_data[JOB_KEY_MAX];
    uint64_t cur_attempts;
    bool cur_dead;                 /* it buried a job rather than claiming it */
};

/* --- the job record --- */

struct job {
    char id[JOB_ID_LEN];
    char state[12];
    char data[JOB_KEY_MAX];
    char worker[64];
    char result[JOB_KEY_MAX];
    char error[128];
    char name[128]; /* what the submitter called it (a file name), may be empty */
    uint64_t attempts, max_attempts, deadline_ms, created_ms;
    uint64_t mod_rev; /* of jobs/<id> when read */
};

static char *job_encode(const struct job *j)
{
    json_t *o = json_pack("{s:s, s:s, s:s, s:I, s:I, s:I, s:I}", "id", j->id, "state", j->state, "data", j->data,
                          "attempts", (json_int_t)j->attempts, "max_attempts", (json_int_t)j->max_attempts,
                          "deadline_ms", (json_int_t)j->deadline_ms, "created_ms", (json_int_t)j->created_ms);
    if (!o)
        return NULL;
    if (j->worker[0])
        json_object_set_new(o, "worker", json_string(j->worker));
    if (j->result[0])
        json_object_set_new(o, "result", json_string(j->result));
    if (j->error[0])
        json_object_set_new(o, "error", json_string(j->error));
    if (j->name[0])
        json_object_set_new(o, "name", json_string(j->name));
    char *s = json_dumps(o, JSON_COMPACT | JSON_SORT_KEYS);
    json_decref(o);
    return s;
}

static void copy_str(char *dst, size_t cap, json_t *o, const char *name)
{
    const char *s = json_string_value(json_object_get(o, name));
    snprintf(dst, cap, "%s", s ? s : "");
}

static bool job_decode(const uint8_t *p, size_t n, struct job *j)
{
    memset(j, 0, sizeof *j);
    json_error_t e;
    json_t *o = json_loadb((const char *)p, n, 0, &e);
    if (!json_is_object(o)) {
        json_decref(o);
        return false;
    }
    copy_str(j->id, sizeof j->id, o, "id");
    copy_str(j->state, sizeof j->state, o, "state");
    copy_str(j->data, sizeof j->data, o, "data");
    copy_str(j->worker, sizeof j->worker, o, "worker");
    copy_str(j->result, sizeof j->result, o, "result");
    copy_str(j->error, sizeof j->error, o, "error");
    copy_str(j->name, sizeof j->name, o, "name");
    j->attempts = (uint64_t)json_integer_value(json_object_get(o, "attempts"));
    j->max_attempts = (uint64_t)json_integer_value(json_object_get(o, "max_attempts"));
    j->deadline_ms = (uint64_t)json_integer_value(json_object_get(o, "deadline_ms"));
    j->created_ms = (uint64_t)json_integer_value(json_object_get(o, "created_ms"));
    json_decref(o);
    return j->id[0] != 0;
}

/* Read jobs/<id> from the applied state. ERR_NOT_FOUND, or ERR_CORRUPT for a
 * record that is not a job (someone wrote the key by hand). */
static int job_read(struct node *n, const char *id, struct job *j)
{
    char key[JOB_ID_LEN + 8];
    int kl = snprintf(key, sizeof key, "jobs/%s", id);
    struct kv_record r;
    struct store_val hold;
    struct errbuf eb;
    int rc = sm_get(&n->sm, (const uint8_t *)key, (size_t)kl, &r, &hold, &eb);
    if (rc)
        return rc;
    bool ok = job_decode(r.value, r.vlen, j);
    j->mod_rev = r.mod_rev;
    store_val_release(&hold);
    return ok ? ERR_OK : ERR_CORRUPT;
}

/* --- transactions --- */

/* One transaction: if jobs/<id>'s mod_rev is `rev` (0: it must not exist),
 * put the job's new record and apply the index changes. */
struct job_txn {
    struct sm_cmp cmp;
    struct sm_txn_op ops[4];
    size_t nops;
    struct sm_txn txn;
    struct sm_op op;
    char keys[4][JOB_KEY_MAX];
    char *rec;
};

static void jt_key(struct job_txn *t, int i, const char *prefix, const char *id)
{
    snprintf(t->keys[i], sizeof t->keys[i], "%s%s", prefix, id);
}

/* jobq/<created_ms, 16 hex>-<id>: the queue in submission order (a retried
 * job keeps its place). */
static void jt_queue_key(struct job_txn *t, int i, const struct job *j)
{
    snprintf(t->keys[i], sizeof t->keys[i], "jobq/%016" PRIx64 "-%s", j->created_ms, j->id);
}
#define JOBQ_PREFIX_LEN (5 + 16 + 1)

static void jt_op(struct job_txn *t, uint8_t kind, int key, const void *val, size_t vlen)
{
    struct sm_txn_op *o = &t->ops[t->nops++];
    memset(o, 0, sizeof *o);
    o->kind = kind;
    o->key = (const uint8_t *)t->keys[key];
    o->klen = strlen(t->keys[key]);
    o->val = val;
    o->vlen = vlen;
}

/* The guard and the job's new record; the caller adds index changes. */
static int jt_begin(struct job_txn *t, const struct job *j, uint64_t rev)
{
    memset(t, 0, sizeof *t);
    t->rec = job_encode(j);
    if (!t->rec)
        return ERR_NOMEM;
    jt_key(t, 0, "jobs/", j->id);
    t->cmp.key = (const uint8_t *)t->keys[0];
    t->cmp.klen = strlen(t->keys[0]);
    t->cmp.field = DDKV_CMP_MOD_REV;
    t->cmp.cmp = DDKV_CMP_EQ;
    t->cmp.num = rev;
    jt_op(t, DDKV_OP_PUT, 0, t->rec, strlen(t->rec));
    return ERR_OK;
}

static void jt_finish(struct job_txn *t, uint64_t client_id, uint64_t seq)
{
    t->txn.cmps = &t->cmp;
    t->txn.ncmp = 1;
    t->txn.ops[0] = t->ops;
    t->txn.nops[0] = t->nops;
    t->op.kind = SM_OP_TXN;
    t->op.txn = &t->txn;
    t->op.client_id = client_id;
    t->op.seq = seq;
}

static void jt_free(struct job_txn *t)
{
    free(t->rec);
}

/* Refusals of a proposal, as kv_propose words them. */
static bool jobs_refused(struct node *n, struct conn *c, uint64_t rid, int rc)
{
    if (rc == ERR_OK)
        return false;
    if (rc == ERR_UNAVAILABLE)
        conn_reply_error(c, rid, DDKV_WERR_NOT_LEADER, "this node is not the leader");
    else if (rc == ERR_AGAIN)
        conn_reply_error(c, rid, DDKV_WERR_UNAVAILABLE, "too many writes in flight; retry");
    else
        conn_reply_error(c, rid, DDKV_WERR_INTERNAL, "cannot propose: %s", err_str(rc));
    (void)n;
    return true;
}

static bool jobs_leader(struct node *n, struct conn *c, uint64_t rid)
{
    struct raft_status st;
    raft_status(n->raft, &st);
    if (st.role != RAFT_LEADER || n->storage_failed) {
        conn_reply_error(c, rid, DDKV_WERR_NOT_LEADER, "this node is not the leader");
        return false;
    }
    if (st.term != n->jobs->term) {
        n->jobs->term = st.term;
        n->jobs->seq = 0;
    }
    return true;
}

/* Field i as a C string of fewer than cap bytes: text that goes into the
 * job record (JSON) and before people (job list, the dashboard), so
 * well-formed UTF-8 without control characters. */
static bool arg_str(const struct msg *m, uint32_t i, char *out, size_t cap, bool may_be_empty)
{
    const uint8_t *p;
    size_t len;
    if (msg_bytes(m, i, &p, &len) != ERR_OK || len >= cap || (!len && !may_be_empty) || !utf8_valid(p, len))
        return false;
    for (size_t k = 0; k < len; k++)
        if (p[k] < 0x20 || p[k] == 0x7f || (p[k] == 0xc2 && k + 1 < len && p[k + 1] < 0xa0))
            return false; /* C0 and C1 controls (U+0080..U+009F are 0xc2 0x80..0x9f) */
    memcpy(out, p, len);
    out[len] = 0;
    return true;
}

/* A job id as this module makes them: hex digits and '-'. */
static bool job_id_ok(const char *id)
{
    return id[0] && strspn(id, "0123456789abcdef-") == strlen(id);
}

/* --- JOB_PUT --- */

static void put_done(struct node *n, const struct proposal *p, const struct sm_result *res, uint32_t err,
                     const char *text)
{
    (void)n;
    char *id = p->done_ctx;
    if (conn_is_open(p->c)) {
        if (err) {
            conn_reply_error(p->c, p->request_id, err, "%s", text);
        } else if (res->stale) {
            conn_reply_error(p->c, p->request_id, DDKV_WERR_BAD_REQUEST, "stale retry");
        } else if (!res->succeeded) {
            /* Only a session's (client_id, seq) used again after its
             * session expired can name an existing job. */
            conn_reply_error(p->c, p->request_id, DDKV_WERR_BAD_REQUEST,
                             "job id %s taken: this (client_id, seq) was used before", id);
        } else {
            struct msg_writer w;
            conn_reply_begin(p->c, &w, DDKV_MSG_JOB, p->request_id, 2);
            mw_str(&w, id);
            mw_u64(&w, res->revision);
            conn_reply_end(p->c, &w);
        }
    }
    free(id);
}

static void jobs_put(void *ctx, struct conn *c, const struct msg *m)
{
    struct node *n = ctx;
    struct job j;
    memset(&j, 0, sizeof j);
    uint64_t client_id = 0, seq = 0;
    if (!arg_str(m, 0, j.data, sizeof j.data, false) || strncmp(j.data, JOB_DATA_PREFIX, strlen(JOB_DATA_PREFIX)) ||
        msg_u64(m, 1, &j.max_attempts) != ERR_OK || j.max_attempts < 1 || j.max_attempts > 100 ||
        msg_u64_opt(m, 2, 0, &client_id) != ERR_OK || msg_u64_opt(m, 3, 0, &seq) != ERR_OK ||
        (m->nf > 4 && !arg_str(m, 4, j.name, sizeof j.name, true))) {
        conn_reply_error(c, m->request_id, DDKV_WERR_BAD_REQUEST,
                         "JOB_PUT wants [data_key (under " JOB_DATA_PREFIX ", < %d bytes of UTF-8 text), max_attempts "
                         "1..100, client_id, seq, name (< 128 bytes of UTF-8 text)]",
                         JOB_KEY_MAX);
        return;
    }
    if (!jobs_leader(n, c, m->request_id))
        return;
    /* A retried put (same session write) must name the same job: derive the
     * id from the session when there is one. Ids sort in submission order
     * within a term; across terms, by term. */
    if (client_id)
        snprintf(j.id, sizeof j.id, "%016" PRIx64 "-%" PRIx64, client_id, seq);
    else
        snprintf(j.id, sizeof j.id, "%08" PRIx64 "%08" PRIx64, n->jobs->term, ++n->jobs->seq);
    snprintf(j.state, sizeof j.state, "queued");
    j.created_ms = clock_wall_ms();
    struct job_txn t;
    if (jt_begin(&t, &j, 0) != ERR_OK) {
        conn_reply_error(c, m->request_id, DDKV_WERR_INTERNAL, "out of memory");
        return;
    }
    jt_queue_key(&t, 1, &j);
    jt_op(&t, DDKV_OP_PUT, 1, "", 0);
    jt_finish(&t, client_id, seq);
    char *id = strdup(j.id);
    int rc = id ? replica_propose_done(n, c, m->request_id, &t.op, put_done, id) : ERR_NOMEM;
    if (rc)
        free(id);
    jobs_refused(n, c, m->request_id, rc);
    jt_free(&t);
}

/* --- JOB_CLAIM --- */

static void claim_next(struct node *n);

struct pick {
    char id[JOB_ID_LEN];
    bool found;
    uint64_t now;
};

/* The first claimed job whose deadline passed. */
static int pick_expired(void *ctx, const uint8_t *key, size_t klen, const struct kv_record *r)
{
    struct pick *pk = ctx;
    char num[24];
    size_t vl = r->vlen < sizeof num - 1 ? r->vlen : sizeof num - 1;
    memcpy(num, r->value, vl);
    num[vl] = 0;
    if (strtoull(num, NULL, 10) < pk->now && klen - 5 < sizeof pk->id) {
        memcpy(pk->id, key + 5, klen - 5);
        pk->id[klen - 5] = 0;
        pk->found = true;
        return 1; /* stop */
    }
    return 0;
}

static int pick_first(void *ctx, const uint8_t *key, size_t klen, const struct kv_record *r)
{
    (void)r;
    struct pick *pk = ctx;
    if (klen > JOBQ_PREFIX_LEN && klen - JOBQ_PREFIX_LEN < sizeof pk->id) {
        memcpy(pk->id, key + JOBQ_PREFIX_LEN, klen - JOBQ_PREFIX_LEN);
        pk->id[klen - JOBQ_PREFIX_LEN] = 0;
        pk->found = true;
    }
    return 1;
}

static void claim_reply_none(struct claim_wait *w)
{
    struct msg_writer mw;
    conn_reply_begin(w->c, &mw, DDKV_MSG_JOB_CLAIMED, w->rid, 0);
    conn_reply_end(w->c, &mw);
}

static void claim_pop(struct node *n)
{
    struct claim_wait *w = n->jobs->head;
    n->jobs->head = w->next;
    if (!n->jobs->head)
        n->jobs->tail = NULL;
    conn_unref(w->c);
    free(w);
}

static void claim_done(struct node *n, const struct proposal *p, const struct sm_result *res, uint32_t err,
                       const char *text)
{
    struct jobs *js = n->jobs;
    if (!js)
        return; /* stopping */
    struct claim_wait *w = js->head;
    js->claiming = false;
    if (!w) /* the node stopped leading and dropped its waiters */
        return;
    if (err) {
        if (conn_is_open(w->c))
            conn_reply_error(w->c, w->rid, err, "%s", text);
        claim_pop(n);
    } else if (!res->succeeded || js->cur_dead) {
        /* Raced with another change of the job, or buried it: pick again. */
        if (++w->tries >= JOB_CLAIM_RETRIES) {
            if (conn_is_open(w->c))
                conn_reply_error(w->c, w->rid, DDKV_WERR_UNAVAILABLE, "the queue is busy; retry");
            claim_pop(n);
        }
    } else {
        if (conn_is_open(w->c)) {
            struct msg_writer mw;
            conn_reply_begin(w->c, &mw, DDKV_MSG_JOB_CLAIMED, w->rid, 4);
            mw_str(&mw, js->cur_id);
            mw_u64(&mw, res->revision); /* the fencing token: the job's new mod_rev */
            mw_str(&mw, js->cur_data);
            mw_u64(&mw, js->cur_attempts);
            conn_reply_end(w->c, &mw);
        }
        claim_pop(n);
    }
    (void)p;
    claim_next(n);
}

/* Decide the head waiter's claim on the applied state and propose it. */
static void claim_next(struct node *n)
{
    struct jobs *js = n->jobs;
    while (js->head && !js->claiming) {
        struct claim_wait *w = js->head;
        struct raft_status st;
        raft_status(n->raft, &st);
        if (st.role != RAFT_LEADER || n->storage_failed) {
            if (conn_is_open(w->c))
                conn_reply_error(w->c, w->rid, DDKV_WERR_NOT_LEADER, "this node is not the leader");
            claim_pop(n);
            continue;
        }
        struct pick pk = {.now = clock_wall_ms()};
        struct errbuf eb;
        bool more;
        sm_list(&n->sm, (const uint8_t *)"jobc/", 5, NULL, 0, 100000, 16u << 20, pick_expired, &pk, &more, &eb);
        if (!pk.found)
            sm_list(&n->sm, (const uint8_t *)"jobq/", 5, NULL, 0, 1, 1u << 20, pick_first, &pk, &more, &eb);
        if (!pk.found) {
            if (conn_is_open(w->c))
                claim_reply_none(w);
            claim_pop(n);
            continue;
        }
        struct job j;
        int rc = job_read(n, pk.id, &j);
        if (rc) {
            if (conn_is_open(w->c))
                conn_reply_error(w->c, w->rid, DDKV_WERR_INTERNAL, "job %s unreadable: %s", pk.id, err_str(rc));
            claim_pop(n);
            continue;
        }
        uint64_t rev = j.mod_rev;
        bool was_claimed = strcmp(j.state, "claimed") == 0;
        js->cur_dead = j.attempts >= j.max_attempts;
        if (js->cur_dead) {
            snprintf(j.state, sizeof j.state, "dead");
            snprintf(j.error, sizeof j.error, "%s after %" PRIu64 " attempts",
                     was_claimed ? "claim expired" : "given up", j.attempts);
            j.deadline_ms = 0;
        } else {
            snprintf(j.state, sizeof j.state, "claimed");
            snprintf(j.worker, sizeof j.worker, "%s", w->worker);
            j.attempts++;
            j.deadline_ms = pk.now + w->visibility_ms;
        }
        struct job_txn t;
        if (jt_begin(&t, &j, rev) != ERR_OK) {
            conn_reply_error(w->c, w->rid, DDKV_WERR_INTERNAL, "out of memory");
            claim_pop(n);
            continue;
        }
        if (was_claimed)
            jt_key(&t, 1, "jobc/", j.id);
        else
            jt_queue_key(&t, 1, &j);
        jt_op(&t, DDKV_OP_DELETE, 1, NULL, 0);
        char deadline[24];
        if (!js->cur_dead) {
            int dl = snprintf(deadline, sizeof deadline, "%" PRIu64, j.deadline_ms);
            jt_key(&t, 2, "jobc/", j.id);
            jt_op(&t, DDKV_OP_PUT, 2, deadline, (size_t)dl);
        }
        jt_finish(&t, 0, 0);
        snprintf(js->cur_id, sizeof js->cur_id, "%s", j.id);
        snprintf(js->cur_data, sizeof js->cur_data, "%s", j.data);
        js->cur_attempts = j.attempts;
        rc = replica_propose_done(n, w->c, w->rid, &t.op, claim_done, NULL);
        jt_free(&t);
        if (rc == ERR_OK) {
            js->claiming = true;
            return;
        }
        jobs_refused(n, w->c, w->rid, rc);
        claim_pop(n);
    }
}

static void jobs_claim(void *ctx, struct conn *c, const struct msg *m)
{
    struct node *n = ctx;
    struct claim_wait *w = calloc(1, sizeof *w);
    if (!w) {
        conn_reply_error(c, m->request_id, DDKV_WERR_INTERNAL, "out of memory");
        return;
    }
    if (!arg_str(m, 0, w->worker, sizeof w->worker, false) || msg_u64(m, 1, &w->visibility_ms) != ERR_OK ||
        w->visibility_ms < JOB_VISIBILITY_MIN_MS || w->visibility_ms > JOB_VISIBILITY_MAX_MS) {
        free(w);
        conn_reply_error(c, m->request_id, DDKV_WERR_BAD_REQUEST,
                         "JOB_CLAIM wants [worker (< 64 bytes), visibility_ms %u..%u]", JOB_VISIBILITY_MIN_MS,
                         JOB_VISIBILITY_MAX_MS);
        return;
    }
    if (!jobs_leader(n, c, m->request_id)) {
        free(w);
        return;
    }
    conn_ref(c);
    w->c = c;
    w->rid = m->request_id;
    if (n->jobs->tail)
        n->jobs->tail->next = w;
    else
        n->jobs->head = w;
    n->jobs->tail = w;
    claim_next(n);
}

/* --- JOB_ACK, JOB_NACK, JOB_EXTEND: a claim holder's changes --- */

struct settle_ctx {
    uint32_t kind;    /* the request */
    char state[12];   /* what the job became */
    char id[JOB_ID_LEN], data[JOB_KEY_MAX];
    uint64_t attempts;
};

static void settle_done(struct node *n, const struct proposal *p, const struct sm_result *res, uint32_t err,
                        const char *text)
{
    (void)n;
    struct settle_ctx *sc = p->done_ctx;
    if (conn_is_open(p->c)) {
        if (err) {
            conn_reply_error(p->c, p->request_id, err, "%s", text);
        } else if (res->stale) {
            conn_reply_error(p->c, p->request_id, DDKV_WERR_BAD_REQUEST, "stale retry");
        } else if (!res->succeeded) {
            conn_reply_error(p->c, p->request_id, DDKV_WERR_FENCED,
                             "job %s changed since this token: it was claimed again or settled", sc->id);
        } else if (sc->kind == DDKV_MSG_JOB_EXTEND) {
            struct msg_writer w;
            conn_reply_begin(p->c, &w, DDKV_MSG_JOB_CLAIMED, p->request_id, 4);
            mw_str(&w, sc->id);
            mw_u64(&w, res->revision);
            mw_str(&w, sc->data);
            mw_u64(&w, sc->attempts);
            conn_reply_end(p->c, &w);
        } else {
            struct msg_writer w;
            conn_reply_begin(p->c, &w, DDKV_MSG_JOB_SETTLED, p->request_id, 1);
            mw_str(&w, sc->state);
            conn_reply_end(p->c, &w);
        }
    }
    free(sc);
}

/* A settle the session says was applied already (a retry after a lost
 * answer): answer with that outcome instead of deciding again. */
static void settle_replay(struct node *n, struct conn *c, uint64_t rid, uint32_t kind, const char *id,
                          const struct sm_session *s)
{
    if (!s->succeeded) {
        conn_reply_error(c, rid, DDKV_WERR_FENCED, "job %s changed since this token", id);
        return;
    }
    struct job j;
    if (job_read(n, id, &j) != ERR_OK) {
        conn_reply_error(c, rid, DDKV_WERR_NOT_FOUND, "no job %s", id);
        return;
    }
    struct msg_writer w;
    if (kind == DDKV_MSG_JOB_EXTEND) {
        conn_reply_begin(c, &w, DDKV_MSG_JOB_CLAIMED, rid, 4);
        mw_str(&w, id);
        mw_u64(&w, s->revision);
        mw_str(&w, j.data);
        mw_u64(&w, j.attempts);
    } else {
        conn_reply_begin(c, &w, DDKV_MSG_JOB_SETTLED, rid, 1);
        mw_str(&w, kind == DDKV_MSG_JOB_ACK ? "done" : j.state);
    }
    conn_reply_end(c, &w);
}

static void jobs_settle(struct node *n, struct conn *c, const struct msg *m, uint32_t kind)
{
    char id[JOB_ID_LEN], arg[JOB_KEY_MAX] = "";
    uint64_t token, vis = 0, client_id = 0, seq = 0;
    bool ok = arg_str(m, 0, id, sizeof id, false) && job_id_ok(id) && msg_u64(m, 1, &token) == ERR_OK;
    if (kind == DDKV_MSG_JOB_EXTEND)
        ok = ok && msg_u64(m, 2, &vis) == ERR_OK && vis >= JOB_VISIBILITY_MIN_MS && vis <= JOB_VISIBILITY_MAX_MS;
    else
        ok = ok && arg_str(m, 2, arg, kind == DDKV_MSG_JOB_NACK ? 128 : sizeof arg, true);
    if (!ok) {
        conn_reply_error(c, m->request_id, DDKV_WERR_BAD_REQUEST,
                         kind == DDKV_MSG_JOB_ACK    ? "JOB_ACK wants [id, token, result_key (jobresult/<id> or \"\")]"
                         : kind == DDKV_MSG_JOB_NACK ? "JOB_NACK wants [id, token, reason (< 128 bytes)]"
                                                     : "JOB_EXTEND wants [id, token, visibility_ms]");
        return;
    }
    ok = msg_u64_opt(m, 3, 0, &client_id) == ERR_OK && msg_u64_opt(m, 4, 0, &seq) == ERR_OK;
    if (!ok) {
        conn_reply_error(c, m->request_id, DDKV_WERR_BAD_REQUEST, "bad client_id or seq");
        return;
    }
    /* The result of job ID lives at jobresult/ID and nowhere else: an ack
     * naming another key is refused (it may name that key, or nothing). */
    char rkey[sizeof JOB_RESULT_PREFIX + JOB_ID_LEN];
    snprintf(rkey, sizeof rkey, JOB_RESULT_PREFIX "%s", id);
    if (kind == DDKV_MSG_JOB_ACK) {
        if (arg[0] && strcmp(arg, rkey) != 0) {
            conn_reply_error(c, m->request_id, DDKV_WERR_BAD_REQUEST,
                             "the result of job %s is %s; an ack may name no other key", id, rkey);
            return;
        }
        snprintf(arg, sizeof arg, "%s", rkey);
    }
    /* JOB_ACK's optional result, stored at the result key by the ack's own
     * (fenced) transaction. Not in the module's own key space. */
    const uint8_t *result = NULL;
    size_t rlen = 0;
    if (kind == DDKV_MSG_JOB_ACK && m->nf > 5) {
        size_t klen = strlen(arg);
        if (msg_bytes(m, 5, &result, &rlen) != ERR_OK) {
            conn_reply_error(c, m->request_id, DDKV_WERR_BAD_REQUEST, "JOB_ACK's result must be bytes");
            return;
        }
        if (klen > n->cfg.max_key_bytes || rlen > n->cfg.max_value_bytes) {
            conn_reply_error(c, m->request_id, DDKV_WERR_TOO_LARGE,
                             "result of %zu bytes (key %zu) is over the limit of %u (%u)", rlen, klen,
                             n->cfg.max_value_bytes, n->cfg.max_key_bytes);
            return;
        }
    }
    if (!jobs_leader(n, c, m->request_id))
        return;
    if (client_id) {
        struct sm_session ss;
        struct errbuf eb;
        if (sm_session_get(&n->sm, client_id, &ss, &eb) == ERR_OK && ss.last_seq >= seq) {
            if (ss.last_seq == seq)
                settle_replay(n, c, m->request_id, kind, id, &ss);
            else
                conn_reply_error(c, m->request_id, DDKV_WERR_BAD_REQUEST, "stale retry");
            return;
        }
    }
    struct job j;
    int rc = job_read(n, id, &j);
    if (rc == ERR_NOT_FOUND) {
        conn_reply_error(c, m->request_id, DDKV_WERR_NOT_FOUND, "no job %s", id);
        return;
    }
    if (rc) {
        conn_reply_error(c, m->request_id, DDKV_WERR_INTERNAL, "job %s unreadable: %s", id, err_str(rc));
        return;
    }
    /* Decided here on the applied state; the transaction's guard (the token
     * as mod_rev) makes it apply only if nothing changed since. (A retry of
     * one still in flight passes this check and is then deduplicated by the
     * session at apply time.) */
    if (j.mod_rev != token || strcmp(j.state, "claimed") != 0) {
        conn_reply_error(c, m->request_id, DDKV_WERR_FENCED,
                         "job %s is %s at revision %" PRIu64 ", not claimed with token %" PRIu64, id, j.state,
                         j.mod_rev, token);
        return;
    }
    struct settle_ctx *sc = calloc(1, sizeof *sc);
    if (!sc) {
        conn_reply_error(c, m->request_id, DDKV_WERR_INTERNAL, "out of memory");
        return;
    }
    sc->kind = kind;
    snprintf(sc->id, sizeof sc->id, "%s", id);
    snprintf(sc->data, sizeof sc->data, "%s", j.data);
    sc->attempts = j.attempts;
    bool requeue = false, dead = false;
    if (kind == DDKV_MSG_JOB_ACK) {
        snprintf(j.state, sizeof j.state, "done");
        snprintf(j.result, sizeof j.result, "%s", arg);
        j.deadline_ms = 0;
    } else if (kind == DDKV_MSG_JOB_NACK) {
        dead = j.attempts >= j.max_attempts;
        requeue = !dead;
        snprintf(j.state, sizeof j.state, dead ? "dead" : "queued");
        snprintf(j.error, sizeof j.error, "%s", arg[0] ? arg : "refused by the worker");
        j.deadline_ms = 0;
        j.worker[0] = 0;
    } else {
        j.deadline_ms = clock_wall_ms() + vis;
    }
    snprintf(sc->state, sizeof sc->state, "%s", j.state);
    struct job_txn t;
    if (jt_begin(&t, &j, token) != ERR_OK) {
        free(sc);
        conn_reply_error(c, m->request_id, DDKV_WERR_INTERNAL, "out of memory");
        return;
    }
    char deadline[24];
    jt_key(&t, 1, "jobc/", id);
    if (kind == DDKV_MSG_JOB_EXTEND) {
        int dl = snprintf(deadline, sizeof deadline, "%" PRIu64, j.deadline_ms);
        jt_op(&t, DDKV_OP_PUT, 1, deadline, (size_t)dl);
    } else {
        jt_op(&t, DDKV_OP_DELETE, 1, NULL, 0);
    }
    if (requeue) {
        jt_queue_key(&t, 2, &j);
        jt_op(&t, DDKV_OP_PUT, 2, "", 0);
    }
    if (result) {
        snprintf(t.keys[2], sizeof t.keys[2], "%s", arg);
        jt_op(&t, DDKV_OP_PUT, 2, result, rlen);
    }
    jt_finish(&t, client_id, seq);
    rc = replica_propose_done(n, c, m->request_id, &t.op, settle_done, sc);
    jt_free(&t);
    if (rc)
        free(sc);
    jobs_refused(n, c, m->request_id, rc);
}

static void jobs_ack(void *ctx, struct conn *c, const struct msg *m)
{
    jobs_settle(ctx, c, m, DDKV_MSG_JOB_ACK);
}

static void jobs_nack(void *ctx, struct conn *c, const struct msg *m)
{
    jobs_settle(ctx, c, m, DDKV_MSG_JOB_NACK);
}

static void jobs_extend(void *ctx, struct conn *c, const struct msg *m)
{
    jobs_settle(ctx, c, m, DDKV_MSG_JOB_EXTEND);
}

/* --- the module --- */

void jobs_free(struct node *n)
{
    if (!n->jobs)
        return;
    while (n->jobs->head)
        claim_pop(n);
    free(n->jobs);
    n->jobs = NULL;
}

static int jobs_init(struct node *n, struct errbuf *eb)
{
    n->jobs = calloc(1, sizeof *n->jobs);
    if (!n->jobs)
        return errf(eb, ERR_NOMEM, "out of memory");
    int rc;
    if ((rc = dispatcher_register(&n->disp, DDKV_MSG_JOB_PUT, "jobs", jobs_put, n, eb)) ||
        (rc = dispatcher_register(&n->disp, DDKV_MSG_JOB_CLAIM, "jobs", jobs_claim, n, eb)) ||
        (rc = dispatcher_register(&n->disp, DDKV_MSG_JOB_ACK, "jobs", jobs_ack, n, eb)) ||
        (rc = dispatcher_register(&n->disp, DDKV_MSG_JOB_NACK, "jobs", jobs_nack, n, eb)) ||
        (rc = dispatcher_register(&n->disp, DDKV_MSG_JOB_EXTEND, "jobs", jobs_extend, n, eb)))
        return rc;
    return ERR_OK;
}

const struct module mod_jobs = {"jobs", jobs_init};
