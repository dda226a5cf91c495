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
 *   jobq/<P><created_ms, 15 hex>-<id>  in the queue (value empty), P the
 *                priority (1 high, 2 normal, 3 low); a job written by 0.1.0
 *                has jobq/<created_ms, 16 hex>-<id> (P 0: normal)
 *   jobc/<id>    claimed (value: the claim's deadline, decimal ms)
 *   jobc/x/<deadline_ms, 16 hex>-<id>  the same claim by deadline, so the
 *                earliest is the first key (value: the largest uint64 in
 *                decimal, so that a 0.1.0 leader, which scans jobc/ for an
 *                expired deadline, never takes it for a claim)
 * Every change is one transaction guarded by the job's mod_rev, so it applies
 * only to the state it was decided on:
 *   put     creates jobs/<id> and jobq/<id> if jobs/<id> does not exist;
 *   claim   the leader picks the claim whose deadline is earliest if it
 *           expired (its worker went quiet), or else a queued job by
 *           priority (below), and moves it to claimed with
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
 * Priorities: while jobs of every level wait, of each 7 claims from the
 * queue 4 take a high job, 2 a normal one and 1 a low one (a level with
 * nothing waiting passes its turn to the next by priority), oldest first
 * within a level: low never starves, it gets at least one claim in seven.
 * The turn is counted on the leader (a new leader starts the cycle again).
 * Each claim reads a few first keys (the earliest deadline, the head of
 * each level), never the whole claimed set. Claims a 0.1.0 leader made have
 * no jobc/x/ key: a new leader finds them by one scan of jobc/ when it first
 * claims in its term, and keeps them (deadline order) in memory.
 * cancel  (JOB_CANCEL) a queued or claimed job becomes "cancelled" and leaves
 *         the queue and the claimed set (the worker's next extend or ack is
 *         FENCED; it also learns it by watching jobs/<id>); delete removes the
 *         job, its index keys and its result; delete-result removes the
 *         result of a done job. The data under jobdata/ is the client's to
 *         delete (libddkv's ddkv_job_delete does, before deleting the job).
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
#include "node/node_int.h"
#include "proto/version.h"
#include "util/clock.h"
#include "util/err.h"
#include "util/log.h"
#include "util/text.h"

/* 16 hex digits, '-', up to 16 hex digits, NUL (an id from a session). */
#define JOB_ID_LEN 40
#define JOB_KEY_MAX 256
#define JOB_CLAIM_RETRIES 8
#define JOB_DATA_PREFIX "jobdata/"   /* where a job's input lives (src/apps/jobs/submit.h) */
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

/* A claim a 0.1.0 leader made (no jobc/x/ key). */
struct legacy_claim {
    uint64_t deadline;
    char id[JOB_ID_LEN];
};

struct jobs {
    uint64_t term, seq;            /* ids: the leader's term, then a counter */
    bool claiming;                 /* a claim transaction is in flight */
    struct claim_wait *head, *tail;
    /* The claim in flight: what to tell its client once it applies. */
    char cur_id[JOB_ID_LEN], cur_data[JOB_KEY_MAX];
    uint64_t cur_attempts;
    bool cur_dead;                 /* it buried a job rather than claiming it */
    bool cur_clean;                /* it only removed a stale index key */
    bool cur_queued;               /* it took a job from the queue */
    uint64_t turn;                 /* claims from the queue this term: the priority cycle */
    uint64_t scanned_term;         /* the term whose legacy claims were gathered */
    struct legacy_claim *legacy;   /* those claims, by deadline */
    size_t nlegacy, legacy_at;
    /* Per queue (jobq/0 .. jobq/3): the last key this leader claimed from
     * it, where the next look starts, past the deleted keys before it that
     * the store would otherwise step over one by one (its tombstones). A
     * hint only: when nothing follows it the queue is read from its start,
     * and a requeue or put below it clears it. */
    char qcur[4][JOB_KEY_MAX];
    char cur_key[JOB_KEY_MAX];     /* the queue key of the claim in flight */
};

#define JOB_PRIO_NONE (-1) /* a job from 0.1.0: normal, in its old queue key */
static const char *const prio_names[] = {"high", "normal", "low"};

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
    int prio;         /* 0 high, 1 normal, 2 low, or JOB_PRIO_NONE */
    bool has_progress;
    uint64_t progress_rows, progress_pct; /* what the worker last reported (JOB_EXTEND) */
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
    if (j->prio >= 0 && j->prio <= 2)
        json_object_set_new(o, "priority", json_string(prio_names[j->prio]));
    if (j->has_progress)
        json_object_set_new(o, "progress", json_pack("{s:I, s:I}", "rows", (json_int_t)j->progress_rows, "percent",
                                                     (json_int_t)j->progress_pct));
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
    json_t *pg = json_object_get(o, "progress");
    if (json_is_object(pg)) {
        j->has_progress = true;
        j->progress_rows = (uint64_t)json_integer_value(json_object_get(pg, "rows"));
        j->progress_pct = (uint64_t)json_integer_value(json_object_get(pg, "percent"));
    }
    j->prio = JOB_PRIO_NONE;
    const char *pr = json_string_value(json_object_get(o, "priority"));
    for (int i = 0; pr && i < 3; i++)
        if (!strcmp(pr, prio_names[i]))
            j->prio = i;
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
    struct sm_txn_op ops[6];
    size_t nops;
    struct sm_txn txn;
    struct sm_op op;
    char keys[6][JOB_KEY_MAX];
    char *rec;
};

static void jt_key(struct job_txn *t, int i, const char *prefix, const char *id)
{
    snprintf(t->keys[i], sizeof t->keys[i], "%s%s", prefix, id);
}

/* jobq/<P><created_ms, 15 hex>-<id>: each priority's queue in submission
 * order (a retried job keeps its place); a 0.1.0 job's key has no P. Both
 * keep the id at the same offset, where a 0.1.0 leader looks for it. */
static void jt_queue_key(struct job_txn *t, int i, const struct job *j)
{
    if (j->prio == JOB_PRIO_NONE)
        snprintf(t->keys[i], sizeof t->keys[i], "jobq/%016" PRIx64 "-%s", j->created_ms, j->id);
    else
        snprintf(t->keys[i], sizeof t->keys[i], "jobq/%x%015" PRIx64 "-%s", j->prio + 1,
                 j->created_ms & 0x0fffffffffffffffu, j->id);
}
#define JOBQ_PREFIX_LEN (5 + 16 + 1)

/* jobc/x/<deadline_ms, 16 hex>-<id>: the claims by deadline. */
#define JOBX_PREFIX "jobc/x/"
#define JOBX_PREFIX_LEN (7 + 16 + 1)
#define JOBX_VALUE "18446744073709551615"
static void jt_expiry_key(struct job_txn *t, int i, const char *id, uint64_t deadline)
{
    snprintf(t->keys[i], sizeof t->keys[i], JOBX_PREFIX "%016" PRIx64 "-%s", deadline, id);
}

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

/* Refusals of a proposal, answered as every module's are (replica_refuse). */
static bool jobs_refused(struct node *n, struct conn *c, uint64_t rid, int rc)
{
    (void)n;
    if (rc == ERR_OK)
        return false;
    replica_refuse(c, rid, rc);
    return true;
}

static bool jobs_leader(struct node *n, struct conn *c, uint64_t rid)
{
    if (!replica_lead_or_refuse(n, c, rid, true))
        return false;
    struct raft_status st;
    raft_status(n->raft, &st);
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

/* A key was queued at `key`: a look that starts past it would miss it. */
static void queue_cursor_below(struct jobs *js, const char *key)
{
    int q = key[5] >= '0' && key[5] <= '3' ? key[5] - '0' : 0;
    if (js->qcur[q][0] && strcmp(key, js->qcur[q]) <= 0)
        js->qcur[q][0] = 0;
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
    char prio[16] = "";
    j.prio = 1;
    if (!arg_str(m, 0, j.data, sizeof j.data, false) || strncmp(j.data, JOB_DATA_PREFIX, strlen(JOB_DATA_PREFIX)) ||
        msg_u64(m, 1, &j.max_attempts) != ERR_OK || j.max_attempts < 1 || j.max_attempts > 100 ||
        msg_u64_opt(m, 2, 0, &client_id) != ERR_OK || msg_u64_opt(m, 3, 0, &seq) != ERR_OK ||
        (m->nf > 4 && !arg_str(m, 4, j.name, sizeof j.name, true)) ||
        (m->nf > 5 && !arg_str(m, 5, prio, sizeof prio, true))) {
        conn_reply_error(c, m->request_id, DDKV_WERR_BAD_REQUEST,
                         "JOB_PUT wants [data_key (under " JOB_DATA_PREFIX ", < %d bytes of UTF-8 text), max_attempts "
                         "1..100, client_id, seq, name (< 128 bytes of UTF-8 text), priority]",
                         JOB_KEY_MAX);
        return;
    }
    if (prio[0]) {
        j.prio = -2;
        for (int i = 0; i < 3; i++)
            if (!strcmp(prio, prio_names[i]))
                j.prio = i;
        if (j.prio < 0) {
            conn_reply_error(c, m->request_id, DDKV_WERR_BAD_REQUEST,
                             "unknown priority '%s': high, normal or low", prio);
            return;
        }
    }
    if (!jobs_leader(n, c, m->request_id))
        return;
    /* Per-priority queue keys only once no 0.1.0 member can lead: such a
     * leader would delete the 0.1.0 key of a job it claims and leave this
     * one behind (and claim that job again through it). Until then a job
     * is queued as 0.1.0 queues it, at normal priority. */
    if (n->sm.cluster_version < VERSION_JOB_PRIORITY && raft_get_conf(n->raft)->n > 1) {
        if (j.prio != 1) {
            char cv[32], need[32];
            conn_reply_error(c, m->request_id, DDKV_WERR_BAD_REQUEST,
                             "job priorities need cluster version %s; this cluster runs at %s until every member "
                             "runs ddkv %s or later (README, Upgrading)",
                             version_text(VERSION_JOB_PRIORITY, need, sizeof need),
                             version_text(n->sm.cluster_version, cv, sizeof cv), need);
            return;
        }
        j.prio = JOB_PRIO_NONE;
    }
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
    queue_cursor_below(n->jobs, t.keys[1]);
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

/* The first key under a prefix: the id after `idoff` bytes and the 16 hex
 * digits before it (a deadline or a queue position). */
struct pick {
    char id[JOB_ID_LEN];
    char key[JOB_KEY_MAX];
    uint64_t num;
    size_t idoff;
    bool found;
};

static int pick_first(void *ctx, const uint8_t *key, size_t klen, const struct kv_record *r)
{
    (void)r;
    struct pick *pk = ctx;
    if (klen > pk->idoff && klen - pk->idoff < sizeof pk->id && klen < sizeof pk->key) {
        memcpy(pk->id, key + pk->idoff, klen - pk->idoff);
        pk->id[klen - pk->idoff] = 0;
        memcpy(pk->key, key, klen);
        pk->key[klen] = 0;
        char hex[17];
        memcpy(hex, key + pk->idoff - 17, 16);
        hex[16] = 0;
        pk->num = strtoull(hex, NULL, 16);
        pk->found = true;
    }
    return 1;
}

static bool first_key(struct node *n, const char *prefix, size_t idoff, const char *after, struct pick *pk)
{
    memset(pk, 0, sizeof *pk);
    pk->idoff = idoff;
    struct errbuf eb;
    bool more;
    size_t alen = after ? strlen(after) : 0;
    sm_list(&n->sm, (const uint8_t *)prefix, strlen(prefix), (const uint8_t *)after, alen, 1, 1u << 20, pick_first,
            pk, &more, &eb);
    if (!pk->found && alen)
        sm_list(&n->sm, (const uint8_t *)prefix, strlen(prefix), NULL, 0, 1, 1u << 20, pick_first, pk, &more, &eb);
    return pk->found;
}


/* Claims without a jobc/x/ key (a 0.1.0 leader's), gathered once a term. */
struct legacy_scan {
    struct legacy_claim *v;
    size_t n, cap;
};

static int legacy_collect(void *ctx, const uint8_t *key, size_t klen, const struct kv_record *r)
{
    struct legacy_scan *ls = ctx;
    if (klen >= 7 && !memcmp(key, JOBX_PREFIX, 7))
        return 1; /* the index (after every id: 'x' sorts after hex) */
    if (klen - 5 >= JOB_ID_LEN)
        return 0;
    if (ls->n == ls->cap) {
        size_t cap = ls->cap ? ls->cap * 2 : 64;
        struct legacy_claim *v = realloc(ls->v, cap * sizeof *v);
        if (!v)
            return 1;
        ls->v = v;
        ls->cap = cap;
    }
    struct legacy_claim *lc = &ls->v[ls->n++];
    memcpy(lc->id, key + 5, klen - 5);
    lc->id[klen - 5] = 0;
    char num[24];
    size_t vl = r->vlen < sizeof num - 1 ? r->vlen : sizeof num - 1;
    memcpy(num, r->value, vl);
    num[vl] = 0;
    lc->deadline = strtoull(num, NULL, 10);
    return 0;
}

static int legacy_cmp(const void *a, const void *b)
{
    const struct legacy_claim *x = a, *y = b;
    return x->deadline < y->deadline ? -1 : x->deadline > y->deadline;
}

static void legacy_gather(struct node *n, uint64_t term)
{
    struct jobs *js = n->jobs;
    free(js->legacy);
    js->legacy = NULL;
    js->nlegacy = js->legacy_at = 0;
    js->scanned_term = term;
    struct legacy_scan ls = {0};
    struct errbuf eb;
    bool more = true;
    uint8_t after[JOB_KEY_MAX];
    size_t alen = 0;
    while (more) {
        size_t before = ls.n;
        if (sm_list(&n->sm, (const uint8_t *)"jobc/", 5, alen ? after : NULL, alen, 10000, 16u << 20, legacy_collect,
                    &ls, &more, &eb) != ERR_OK || ls.n == before)
            break;
        alen = (size_t)snprintf((char *)after, sizeof after, "jobc/%s", ls.v[ls.n - 1].id);
    }
    /* Keep only those the index lacks. */
    size_t k = 0;
    for (size_t i = 0; i < ls.n; i++) {
        char key[JOB_KEY_MAX];
        int kl = snprintf(key, sizeof key, JOBX_PREFIX "%016" PRIx64 "-%s", ls.v[i].deadline, ls.v[i].id);
        struct kv_record r;
        struct store_val hold;
        if (sm_get(&n->sm, (const uint8_t *)key, (size_t)kl, &r, &hold, &eb) == ERR_OK) {
            store_val_release(&hold);
            continue;
        }
        ls.v[k++] = ls.v[i];
    }
    if (k)
        qsort(ls.v, k, sizeof *ls.v, legacy_cmp);
    else {
        free(ls.v);
        ls.v = NULL;
    }
    js->legacy = ls.v;
    js->nlegacy = k;
    if (k)
        log_info("jobs: %zu claims without a deadline index (from a 0.1.0 leader) kept in memory", k);
}

/* The head of priority level lv (0 high, 1 normal, 2 low): for normal, the
 * older of its own queue and the 0.1.0 one. */
static bool pick_level(struct node *n, int lv, struct pick *pk)
{
    char prefix[8];
    snprintf(prefix, sizeof prefix, "jobq/%x", lv + 1);
    bool found = first_key(n, prefix, JOBQ_PREFIX_LEN, n->jobs->qcur[lv + 1], pk);
    if (lv == 1) {
        struct pick old;
        if (first_key(n, "jobq/0", JOBQ_PREFIX_LEN, n->jobs->qcur[0], &old) &&
            (!found || old.num < (pk->num & 0x0fffffffffffffffu)))
            *pk = old, found = true;
    }
    return found;
}

/* Which level's turn it is: a cycle of 7, 4 high, 2 normal, 1 low; a level
 * with nothing waiting passes its turn on. */
static bool pick_queued(struct node *n, struct pick *pk)
{
    static const int order[7][3] = {{0, 1, 2}, {0, 1, 2}, {0, 1, 2}, {0, 1, 2}, {1, 0, 2}, {1, 0, 2}, {2, 0, 1}};
    const int *o = order[n->jobs->turn % 7];
    for (int i = 0; i < 3; i++)
        if (pick_level(n, o[i], pk))
            return true;
    return false;
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
    } else if (js->cur_clean && res->succeeded) {
        /* A stale index key removed: pick again (each removal is progress). */
    } else if (!res->succeeded || js->cur_dead) {
        /* Raced with another change of the job, or buried it: pick again. */
        if (++w->tries >= JOB_CLAIM_RETRIES) {
            if (conn_is_open(w->c))
                conn_reply_error(w->c, w->rid, DDKV_WERR_UNAVAILABLE, "the queue is busy; retry");
            claim_pop(n);
        }
    } else {
        if (js->cur_queued) {
            js->turn++;
            int q = js->cur_key[5] - '0';
            if (q >= 0 && q <= 3)
                snprintf(js->qcur[q], sizeof js->qcur[q], "%s", js->cur_key);
        }
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

/* Remove index key `key` of job id, if the job is still at mod_rev rev (0:
 * absent): it names a state the job has left. */
static int claim_clean(struct node *n, struct claim_wait *w, const char *key, uint64_t rev)
{
    struct job_txn t;
    memset(&t, 0, sizeof t);
    snprintf(t.keys[0], sizeof t.keys[0], "jobs/%s", n->jobs->cur_id);
    t.cmp.key = (const uint8_t *)t.keys[0];
    t.cmp.klen = strlen(t.keys[0]);
    t.cmp.field = DDKV_CMP_MOD_REV;
    t.cmp.cmp = DDKV_CMP_EQ;
    t.cmp.num = rev;
    snprintf(t.keys[1], sizeof t.keys[1], "%s", key);
    jt_op(&t, DDKV_OP_DELETE, 1, NULL, 0);
    jt_finish(&t, 0, 0);
    n->jobs->cur_clean = true;
    return replica_propose_done(n, w->c, w->rid, &t.op, claim_done, NULL);
}

/* Decide the head waiter's claim on the applied state and propose it. */
static void claim_next(struct node *n)
{
    struct jobs *js = n->jobs;
    while (js->head && !js->claiming) {
        struct claim_wait *w = js->head;
        if (!replica_lead_or_refuse(n, w->c, w->rid, true)) { /* dropped if w->c closed */
            claim_pop(n);
            continue;
        }
        struct raft_status st;
        raft_status(n->raft, &st);
        if (js->scanned_term != st.term) {
            legacy_gather(n, st.term);
            memset(js->qcur, 0, sizeof js->qcur);
            js->turn = 0;
        }
        uint64_t now = clock_wall_ms();
        js->cur_clean = js->cur_dead = js->cur_queued = false;
        /* The earliest claim deadline, from the index or the legacy list. */
        struct pick pk;
        bool expired = first_key(n, JOBX_PREFIX, JOBX_PREFIX_LEN, NULL, &pk) && pk.num < now;
        bool legacy = false;
        if (js->legacy_at < js->nlegacy && js->legacy[js->legacy_at].deadline < now &&
            (!expired || js->legacy[js->legacy_at].deadline < pk.num)) {
            struct legacy_claim *lc = &js->legacy[js->legacy_at];
            memset(&pk, 0, sizeof pk);
            snprintf(pk.id, sizeof pk.id, "%s", lc->id);
            pk.num = lc->deadline;
            expired = legacy = true;
        }
        if (!expired && !pick_queued(n, &pk)) {
            if (conn_is_open(w->c))
                claim_reply_none(w);
            claim_pop(n);
            continue;
        }
        snprintf(js->cur_id, sizeof js->cur_id, "%s", pk.id);
        struct job j;
        int rc = job_read(n, pk.id, &j);
        bool current = rc == ERR_OK && (expired ? !strcmp(j.state, "claimed") && j.deadline_ms == pk.num
                                                : !strcmp(j.state, "queued"));
        if (legacy) {
            js->legacy_at++; /* taken now, or stale */
            if (!current)
                continue;
        } else if (!current) {
            /* An index key of a state the job has left (or of a record
             * that is not a job): remove it, guarded, then pick again. */
            rc = claim_clean(n, w, pk.key, rc == ERR_OK ? j.mod_rev : 0);
            if (rc == ERR_OK) {
                js->claiming = true;
                return;
            }
            jobs_refused(n, w->c, w->rid, rc);
            claim_pop(n);
            continue;
        }
        uint64_t rev = j.mod_rev, old_deadline = j.deadline_ms;
        js->cur_queued = !expired;
        snprintf(js->cur_key, sizeof js->cur_key, "%s", expired ? "" : pk.key);
        js->cur_dead = j.attempts >= j.max_attempts;
        if (js->cur_dead) {
            snprintf(j.state, sizeof j.state, "dead");
            snprintf(j.error, sizeof j.error, "%s after %" PRIu64 " attempts", expired ? "claim expired" : "given up",
                     j.attempts);
            j.deadline_ms = 0;
        } else {
            snprintf(j.state, sizeof j.state, "claimed");
            snprintf(j.worker, sizeof j.worker, "%s", w->worker);
            j.attempts++;
            j.deadline_ms = now + w->visibility_ms;
        }
        struct job_txn t;
        if (jt_begin(&t, &j, rev) != ERR_OK) {
            conn_reply_error(w->c, w->rid, DDKV_WERR_INTERNAL, "out of memory");
            claim_pop(n);
            continue;
        }
        char deadline[24];
        if (expired) {
            jt_expiry_key(&t, 1, j.id, old_deadline);
            jt_op(&t, DDKV_OP_DELETE, 1, NULL, 0);
            if (js->cur_dead) {
                jt_key(&t, 2, "jobc/", j.id);
                jt_op(&t, DDKV_OP_DELETE, 2, NULL, 0);
            }
        } else {
            snprintf(t.keys[1], sizeof t.keys[1], "%s", pk.key);
            jt_op(&t, DDKV_OP_DELETE, 1, NULL, 0);
        }
        if (!js->cur_dead) {
            int dl = snprintf(deadline, sizeof deadline, "%" PRIu64, j.deadline_ms);
            jt_key(&t, 3, "jobc/", j.id);
            jt_op(&t, DDKV_OP_PUT, 3, deadline, (size_t)dl);
            jt_expiry_key(&t, 4, j.id, j.deadline_ms);
            jt_op(&t, DDKV_OP_PUT, 4, JOBX_VALUE, strlen(JOBX_VALUE));
        }
        jt_finish(&t, 0, 0);
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

/* What an ACK (arg: the result key), NACK (arg: the reason) or EXTEND (by
 * vis ms, with progress if given) makes of job j's record. true: a NACK
 * that puts the job back in the queue. */
static bool settle_record(struct job *j, uint32_t kind, const char *arg, uint64_t vis, bool progress, uint64_t prows,
                          uint64_t ppct)
{
    bool requeue = false, dead = false;
    if (kind == DDKV_MSG_JOB_ACK) {
        snprintf(j->state, sizeof j->state, "done");
        if (j->has_progress)
            j->progress_pct = 100;
        snprintf(j->result, sizeof j->result, "%s", arg);
        j->deadline_ms = 0;
    } else if (kind == DDKV_MSG_JOB_NACK) {
        dead = j->attempts >= j->max_attempts;
        requeue = !dead;
        snprintf(j->state, sizeof j->state, dead ? "dead" : "queued");
        snprintf(j->error, sizeof j->error, "%s", arg[0] ? arg : "refused by the worker");
        j->deadline_ms = 0;
        j->worker[0] = 0;
    } else {
        j->deadline_ms = clock_wall_ms() + vis;
        if (progress) {
            j->has_progress = true;
            j->progress_rows = prows;
            j->progress_pct = ppct;
        }
    }
    return requeue;
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
    /* JOB_EXTEND's optional progress: rows done and percent (0..100). */
    uint64_t prows = 0, ppct = 0;
    bool progress = kind == DDKV_MSG_JOB_EXTEND && m->nf > 6;
    if (progress)
        ok = ok && msg_u64(m, 5, &prows) == ERR_OK && msg_u64(m, 6, &ppct) == ERR_OK && ppct <= 100;
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
    uint64_t old_deadline = j.deadline_ms;
    bool requeue = settle_record(&j, kind, arg, vis, progress, prows, ppct);
    snprintf(sc->state, sizeof sc->state, "%s", j.state);
    struct job_txn t;
    if (jt_begin(&t, &j, token) != ERR_OK) {
        free(sc);
        conn_reply_error(c, m->request_id, DDKV_WERR_INTERNAL, "out of memory");
        return;
    }
    char deadline[24];
    jt_key(&t, 1, "jobc/", id);
    jt_expiry_key(&t, 3, id, old_deadline);
    jt_op(&t, DDKV_OP_DELETE, 3, NULL, 0);
    if (kind == DDKV_MSG_JOB_EXTEND) {
        int dl = snprintf(deadline, sizeof deadline, "%" PRIu64, j.deadline_ms);
        jt_op(&t, DDKV_OP_PUT, 1, deadline, (size_t)dl);
        jt_expiry_key(&t, 4, id, j.deadline_ms);
        jt_op(&t, DDKV_OP_PUT, 4, JOBX_VALUE, strlen(JOBX_VALUE));
    } else {
        jt_op(&t, DDKV_OP_DELETE, 1, NULL, 0);
    }
    if (requeue) {
        jt_queue_key(&t, 2, &j);
        jt_op(&t, DDKV_OP_PUT, 2, "", 0);
        queue_cursor_below(n->jobs, t.keys[2]);
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

/* --- JOB_CANCEL: cancel, delete, delete the result --- */

static void cancel_done(struct node *n, const struct proposal *p, const struct sm_result *res, uint32_t err,
                        const char *text)
{
    (void)n;
    char *state = p->done_ctx;
    if (conn_is_open(p->c)) {
        if (err) {
            conn_reply_error(p->c, p->request_id, err, "%s", text);
        } else if (res->stale) {
            conn_reply_error(p->c, p->request_id, DDKV_WERR_BAD_REQUEST, "stale retry");
        } else if (!res->succeeded) {
            conn_reply_error(p->c, p->request_id, DDKV_WERR_UNAVAILABLE, "the job changed meanwhile; retry");
        } else {
            struct msg_writer w;
            conn_reply_begin(p->c, &w, DDKV_MSG_JOB_SETTLED, p->request_id, 1);
            mw_str(&w, state);
            conn_reply_end(p->c, &w);
        }
    }
    free(state);
}

static void jobs_cancel(void *ctx, struct conn *c, const struct msg *m)
{
    struct node *n = ctx;
    char id[JOB_ID_LEN];
    uint64_t what = 0, client_id = 0, seq = 0;
    if (!arg_str(m, 0, id, sizeof id, false) || !job_id_ok(id) || msg_u64(m, 1, &what) != ERR_OK || what > 2 ||
        msg_u64_opt(m, 2, 0, &client_id) != ERR_OK || msg_u64_opt(m, 3, 0, &seq) != ERR_OK) {
        conn_reply_error(c, m->request_id, DDKV_WERR_BAD_REQUEST,
                         "JOB_CANCEL wants [id, what (0 cancel, 1 delete, 2 delete the result), client_id, seq]");
        return;
    }
    if (!jobs_leader(n, c, m->request_id))
        return;
    static const char *const outcome[] = {"cancelled", "deleted", "done"};
    if (client_id) {
        struct sm_session ss;
        struct errbuf eb;
        if (sm_session_get(&n->sm, client_id, &ss, &eb) == ERR_OK && ss.last_seq >= seq) {
            /* A retry of one applied already: its outcome. */
            struct msg_writer w;
            if (ss.last_seq == seq && ss.succeeded) {
                conn_reply_begin(c, &w, DDKV_MSG_JOB_SETTLED, m->request_id, 1);
                mw_str(&w, outcome[what]);
                conn_reply_end(c, &w);
            } else {
                conn_reply_error(c, m->request_id, DDKV_WERR_BAD_REQUEST, "stale retry");
            }
            return;
        }
    }
    struct job j;
    int rc = job_read(n, id, &j);
    if (rc == ERR_NOT_FOUND) {
        conn_reply_error(c, m->request_id, DDKV_WERR_NOT_FOUND, "no job %s", id);
        return;
    }
    if (rc && !(rc == ERR_CORRUPT && what == 1)) {
        conn_reply_error(c, m->request_id, DDKV_WERR_INTERNAL, "job %s unreadable: %s", id, err_str(rc));
        return;
    }
    bool queued = !strcmp(j.state, "queued"), claimed = !strcmp(j.state, "claimed");
    if (what == 0 && !queued && !claimed) {
        conn_reply_error(c, m->request_id, DDKV_WERR_BAD_REQUEST, "job %s is %s: only a queued or running job can be cancelled",
                         id, j.state[0] ? j.state : "not a job");
        return;
    }
    if (what == 2 && strcmp(j.state, "done") != 0) {
        conn_reply_error(c, m->request_id, DDKV_WERR_BAD_REQUEST, "job %s is %s: only a done job has a result", id,
                         j.state);
        return;
    }
    struct job_txn t;
    uint64_t rev = j.mod_rev, old_deadline = j.deadline_ms;
    if (what == 1) {
        /* No new record: delete it, guarded on the revision read here. */
        memset(&t, 0, sizeof t);
        jt_key(&t, 0, "jobs/", id);
        t.cmp.key = (const uint8_t *)t.keys[0];
        t.cmp.klen = strlen(t.keys[0]);
        t.cmp.field = DDKV_CMP_MOD_REV;
        t.cmp.cmp = DDKV_CMP_EQ;
        t.cmp.num = rev;
        jt_op(&t, DDKV_OP_DELETE, 0, NULL, 0);
        jt_key(&t, 1, JOB_RESULT_PREFIX, id);
        jt_op(&t, DDKV_OP_DELETE, 1, NULL, 0);
    } else {
        if (what == 0) {
            snprintf(j.state, sizeof j.state, "cancelled");
            snprintf(j.error, sizeof j.error, "cancelled%s", claimed ? " while running" : "");
            j.deadline_ms = 0;
        } else {
            j.result[0] = 0;
        }
        if (jt_begin(&t, &j, rev) != ERR_OK) {
            conn_reply_error(c, m->request_id, DDKV_WERR_INTERNAL, "out of memory");
            return;
        }
        if (what == 2) {
            jt_key(&t, 1, JOB_RESULT_PREFIX, id);
            jt_op(&t, DDKV_OP_DELETE, 1, NULL, 0);
        }
    }
    if (what != 2 && queued) {
        jt_queue_key(&t, 2, &j);
        jt_op(&t, DDKV_OP_DELETE, 2, NULL, 0);
    }
    if (what != 2 && claimed) {
        jt_key(&t, 3, "jobc/", id);
        jt_op(&t, DDKV_OP_DELETE, 3, NULL, 0);
        jt_expiry_key(&t, 4, id, old_deadline);
        jt_op(&t, DDKV_OP_DELETE, 4, NULL, 0);
    }
    jt_finish(&t, client_id, seq);
    char *state = strdup(outcome[what]);
    rc = state ? replica_propose_done(n, c, m->request_id, &t.op, cancel_done, state) : ERR_NOMEM;
    if (rc)
        free(state);
    jobs_refused(n, c, m->request_id, rc);
    jt_free(&t);
}

/* --- the module --- */

/* Answer the waiting claims and free the module's state. */
static void jobs_free(struct node *n)
{
    if (!n->jobs)
        return;
    while (n->jobs->head)
        claim_pop(n);
    free(n->jobs->legacy);
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
        (rc = dispatcher_register(&n->disp, DDKV_MSG_JOB_EXTEND, "jobs", jobs_extend, n, eb)) ||
        (rc = dispatcher_register(&n->disp, DDKV_MSG_JOB_CANCEL, "jobs", jobs_cancel, n, eb)))
        return rc;
    return ERR_OK;
}

const struct module mod_jobs = {.name = "jobs", .init = jobs_init, .free = jobs_free};
