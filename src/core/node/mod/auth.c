/* The auth module: AUTH (a connection's identity), AUTH_CHANGE (users, roles
 * and the switch, through the log), AUTH_STATUS, AUTH_LIST; the permission
 * check of every client request (the rules are in access.c); and the jobs
 * that hash and verify passwords off the event loop.
 *
 * PBKDF2 with 100,000 iterations takes 40-80 ms here: on the loop it would
 * stall every other client of the node for that long per AUTH. The node's
 * work pool (node_io.h: threads in `ddkv serve`, virtual time in the
 * simulator) does it instead and hands each result back to the loop. The queue is bounded (AUTH_QUEUE_MAX: beyond it AUTH is refused
 * UNAVAILABLE). A failed AUTH makes its connection wait before it may try
 * again (doubling, up to AUTH_BACKOFF_MAX_MS); an unknown user is verified
 * against a dummy hash, so it takes as long and gets the same answer as a
 * wrong password.
 *
 * Guessers open fresh connections, so failures also count against the client
 * address across all its connections (addrtab.c: a score that halves every
 * minute): an address that failed waits before its next AUTH is verified
 * (doubling with the score, up to AUTH_ADDR_BACKOFF_MAX_MS) and may have one
 * AUTH queued at a time (unless it is in good standing). An AUTH that must
 * wait is held, and checked when its address's turn comes (refused unchecked
 * only after AUTH_HOLD_MAX_MS), so a guesser waits for every answer instead of
 * spinning through connections, and a user who mistyped gets a real answer,
 * later. The queue is served by the address's standing (one that logged in
 * recently and has not failed since, then one not known, then one that
 * failed), the last two filling only part of it. One thread takes every class, a second only the first (see
 * AUTH_THREADS): guessing costs at most one core's worth of hashes, and a user
 * logging in from an address in good standing never waits behind a guess. */
#include <openssl/crypto.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "kv/passwd.h"
#include "node/access.h"
#include "node/node_int.h"
#include "node/mod/auth.h"
#include "util/clock.h"
#include "util/log.h"

#define AUTH_QUEUE_MAX 64
#define AUTH_BACKOFF_MIN_MS 250u
#define AUTH_BACKOFF_MAX_MS 8000u
#define AUTH_ADDR_BACKOFF_MAX_MS 30000u
/* AUTHs one address may have queued at once: in good standing (a hub
 * logging in its connections), otherwise (more wait, held). */
#define AUTH_ADDR_QUEUED_MAX 8u
#define AUTH_ADDR_QUEUED_OTHER 1u
/* The thread that checks guesses runs at a lower priority than the event
 * loop (and the good-standing thread), so hashing never slows serving. */
#define AUTH_GENERAL_NICE 10
/* The standing of an AUTH's address, the order its queue is served in: one
 * that logged in within AUTH_GOOD_MS and has not failed since; one not known
 * either way; one that failed recently. The last two may fill only part of
 * the queue, so that the first always finds room. */
enum { AUTH_CLASS_GOOD, AUTH_CLASS_NEW, AUTH_CLASS_FAILING, AUTH_CLASSES };
static const size_t auth_class_cap[AUTH_CLASSES] = {64, 48, 32};
/* An AUTH whose address must wait (or whose share of the queue is full) is
 * held, and checked once the wait is over: a guesser waits for each answer
 * instead of opening connection after connection, and a user who mistyped
 * gets a real answer, only later. Held longer than AUTH_HOLD_MAX_MS it is
 * refused unchecked (told how long to wait). At most AUTH_HELD_MAX are held
 * (one per connection); beyond, refusals are immediate. */
#define AUTH_HOLD_MAX_MS 5000u
#define AUTH_HELD_MAX 4096u
#define AUTH_HOLD_TICK_MS 50

enum auth_job_kind { AUTH_JOB_VERIFY, AUTH_JOB_HASH };

/* One password to verify (AUTH) or hash (USER_ADD, USER_PASSWD). The loop
 * fills it and queues it; the worker reads pw and rec and writes ok (and rec,
 * when hashing); the loop takes it back and answers. */
struct auth_worker;
struct auth_job {
    struct node_work work;   /* first: the pool's handle */
    struct auth_worker *w;   /* the dummy record and the iterations, read off the loop */
    enum auth_job_kind kind;
    struct conn *c; /* referenced */
    uint64_t rid;
    auth_name user;
    uint64_t rev;   /* VERIFY: the user's rev when it was looked up */
    bool known;     /* VERIFY: the user exists (else the worker's dummy is checked) */
    uint8_t rec[PASSWD_RECORD_BYTES];
    char *pw;       /* owned; wiped when freed */
    size_t pwlen;
    bool ok;
    uint8_t op, perm; /* HASH: the change to propose with the hash */
    uint64_t client_id, seq;
    struct addr_entry *addr; /* VERIFY: the client's address, its auth_queued counting this job */
    uint8_t cls;             /* AUTH_CLASS_*: which queue (the address's standing) */
    uint64_t queued_ms;      /* when it arrived (monotonic) */
    uint64_t due_ms;         /* held: when to try to queue it again */
    bool in_queue;           /* counted in addr->auth_queued */
    struct auth_job *next;
};

/* Two threads of the node's work pool (node_io.h): the first takes every
 * class in order; the second only addresses in good standing (and hashing),
 * so a user who logs in from one never waits behind a guess being checked.
 * Guessing costs at most one core's worth of hashes. A class is a lane. */
#define AUTH_THREADS 2
static const unsigned auth_thread_lanes[AUTH_THREADS] = {AUTH_CLASSES, AUTH_CLASS_GOOD + 1};
static const int auth_thread_nice[AUTH_THREADS] = {AUTH_GENERAL_NICE, 0};

struct auth_worker {
    struct node_pool *pool;
    size_t pending;  /* queued and not yet answered (loop thread only) */
    size_t pending_cls[AUTH_CLASSES]; /* of them, by class (loop thread only) */
    pthread_mutex_t dummy_mu;
    uint8_t dummy[PASSWD_RECORD_BYTES]; /* under dummy_mu until made, then read only (auth_dummy) */
    bool dummy_made;
    uint32_t iterations;                /* of new hashes: --auth-hash-iterations */
    struct auth_job **held;             /* AUTHs waiting for their address's turn (loop thread) */
    size_t nheld, capheld;
    struct node_timer *hold_tick;       /* queues them when due, while any is held */
};

static void job_free(struct auth_job *j)
{
    if (j->pw) {
        OPENSSL_cleanse(j->pw, j->pwlen);
        free(j->pw);
    }
    if (j->c)
        conn_unref(j->c);
    if (j->addr) {
        ASSERT(j->addr->auth_jobs > 0);
        j->addr->auth_jobs--;
        if (j->in_queue) {
            ASSERT(j->addr->auth_queued > 0);
            j->addr->auth_queued--;
        }
    }
    OPENSSL_cleanse(j, sizeof *j);
    free(j);
}

/* Unknown users are checked against this, so they cost what a real user
 * costs. Made by the worker the first time an unknown user logs in (a node
 * with auth off, or never asked for one, spends nothing on it); only the
 * worker reads it. If OpenSSL fails it stays malformed and matches nothing. */
static const uint8_t *auth_dummy(struct auth_worker *w)
{
    static const char junk[] = "no user has this password: a dummy's";
    pthread_mutex_lock(&w->dummy_mu);
    if (!w->dummy_made && passwd_hash(junk, sizeof junk - 1, w->iterations, w->dummy) != ERR_OK)
        memset(w->dummy, 0, sizeof w->dummy);
    w->dummy_made = true;
    pthread_mutex_unlock(&w->dummy_mu);
    return w->dummy;
}

/* On a pool thread: check or hash the password. */
static void auth_job_run(struct node_work *work)
{
    struct auth_job *j = (struct auth_job *)work;
    if (j->kind == AUTH_JOB_VERIFY)
        j->ok = passwd_verify(j->pw, j->pwlen, j->known ? j->rec : auth_dummy(j->w), sizeof j->rec);
    else
        j->ok = passwd_hash(j->pw, j->pwlen, j->w->iterations, j->rec) == ERR_OK;
}

static void auth_job_done(struct node *n, struct node_work *work);

/* Hand j to the pool on its class's lane. */
static void auth_queue(struct node *n, struct auth_job *j)
{
    struct auth_worker *w = n->auth;
    j->w = w;
    j->work = (struct node_work){.run = auth_job_run, .done = auth_job_done, .lane = j->cls};
    n->io->pool_submit(n, w->pool, &j->work);
}

/* --- identity --- */

/* The user this connection acts as, or NULL: the one AUTH verified while
 * that user still exists with the same password (rev), else the client
 * certificate's, if such a user exists. */
static const struct auth_user *auth_identity(struct node *n, const struct conn *c)
{
    const struct auth_db *db = &n->sm.auth;
    if (c->user) {
        const struct auth_user *u = auth_user_find(db, c->user);
        if (u && u->rev == c->user_rev)
            return u;
    }
    const char *cn = conn_cert_cn(c);
    return cn ? auth_user_find(db, cn) : NULL;
}

const char *auth_conn_user(struct node *n, const struct conn *c)
{
    const struct auth_user *u = auth_identity(n, c);
    return u ? u->name : NULL;
}

static bool auth_admit(struct node *n, struct conn *c, const struct msg *m)
{
    if (!n->sm.auth.enabled)
        return true;
    const struct auth_user *u = auth_identity(n, c);
    char why[256];
    uint32_t code = access_check(&n->sm.auth, &n->sm, u ? u->name : NULL, m, why, sizeof why);
    if (code == 0)
        return true;
    n->stats.auth_denied++;
    log_debug("conn %llu from %s: %s refused: %s", (unsigned long long)c->id, c->peer, msg_type_name(m->type), why);
    conn_reply_error(c, m->request_id, code, "%s", why);
    return false;
}

/* --- held AUTHs: the address's turn --- */

static void auth_submit(struct node *n, struct auth_job *j);

static void auth_hold_cb(struct node *n)
{
    struct auth_worker *w = n->auth;
    uint64_t now = clock_mono_ms();
    /* Take the due ones out first: auth_submit may hold a job again. */
    struct auth_job *due = NULL, **tail = &due;
    for (size_t i = 0; i < w->nheld;) {
        struct auth_job *j = w->held[i];
        if (j->due_ms > now) {
            i++;
            continue;
        }
        w->held[i] = w->held[--w->nheld];
        j->next = NULL;
        *tail = j;
        tail = &j->next;
    }
    while (due) {
        struct auth_job *j = due;
        due = j->next;
        if (!conn_is_open(j->c)) {
            j->c->auth_busy = false;
            job_free(j); /* hung up: nothing to check */
            continue;
        }
        auth_submit(n, j);
    }
    if (!w->nheld)
        n->io->timer_cancel(n, w->hold_tick);
}

/* Answer j's AUTH without checking it and drop it. */
static void auth_refuse(struct node *n, struct auth_job *j, bool busy)
{
    struct conn *c = j->c;
    uint64_t now = clock_mono_ms();
    c->auth_busy = false;
    if (busy) {
        conn_reply_error(c, j->rid, DDKV_WERR_UNAVAILABLE, "too many passwords being checked on this member; retry");
    } else {
        n->stats.auth_throttled++;
        uint64_t retry = j->addr ? j->addr->auth_retry_ms : 0;
        conn_reply_error(c, j->rid, DDKV_WERR_PERMISSION_DENIED,
                         "wrong user or password; after failed attempts from %s wait %llu ms before the next",
                         j->addr ? j->addr->ip : c->peer, (unsigned long long)(retry > now ? retry - now : 0));
    }
    job_free(j);
}

/* Queue j, a VERIFY (c referenced, auth_busy set), for the worker if its
 * address may have it checked now, else hold it until it may. */
static void auth_submit(struct node *n, struct auth_job *j)
{
    struct auth_worker *w = n->auth;
    struct addr_entry *a = j->addr;
    uint64_t now = clock_mono_ms();
    uint64_t until = 0;
    bool busy = false;
    bool failing = a && addr_auth_score(a, now) >= 0.5; /* a failure within the last minute */
    j->cls = failing                                                 ? AUTH_CLASS_FAILING
             : a && a->auth_good_ms && now - a->auth_good_ms < AUTH_GOOD_MS ? AUTH_CLASS_GOOD
                                                                           : AUTH_CLASS_NEW;
    if (a && now < a->auth_retry_ms) {
        until = a->auth_retry_ms;
    } else if (a && a->auth_queued >= (j->cls == AUTH_CLASS_GOOD ? AUTH_ADDR_QUEUED_MAX : AUTH_ADDR_QUEUED_OTHER)) {
        until = now + AUTH_HOLD_TICK_MS;
        busy = !failing;
    } else if (w->pending >= AUTH_QUEUE_MAX || w->pending_cls[j->cls] >= auth_class_cap[j->cls]) {
        if (j->cls == AUTH_CLASS_GOOD) {
            auth_refuse(n, j, true);
            return;
        }
        until = now + 4 * AUTH_HOLD_TICK_MS;
        busy = true;
    } else {
        w->pending++;
        w->pending_cls[j->cls]++;
        if (a) {
            a->auth_queued++;
            j->in_queue = true;
        }
        auth_queue(n, j);
        return;
    }
    if (until - j->queued_ms > AUTH_HOLD_MAX_MS) {
        /* Its turn is too far off: refused, but only once it has been held
         * that long, so that a guesser still waits for the answer. */
        if (now - j->queued_ms >= AUTH_HOLD_MAX_MS) {
            auth_refuse(n, j, busy);
            return;
        }
        until = j->queued_ms + AUTH_HOLD_MAX_MS;
    }
    if (w->nheld == w->capheld && w->capheld < AUTH_HELD_MAX) {
        size_t cap = w->capheld ? w->capheld * 2 : 64;
        struct auth_job **h = realloc(w->held, cap * sizeof *h);
        if (h) {
            w->held = h;
            w->capheld = cap;
        }
    }
    if (w->nheld == w->capheld) {
        auth_refuse(n, j, busy);
        return;
    }
    j->due_ms = until;
    w->held[w->nheld++] = j;
    if (!n->io->timer_armed(n, w->hold_tick))
        n->io->timer_arm(n, w->hold_tick, AUTH_HOLD_TICK_MS, true);
}

/* --- the worker's results, on the loop --- */

/* A failed AUTH from a: its score goes up by one and its next AUTH waits. */
static void auth_addr_failed(struct addr_entry *a)
{
    uint64_t now = clock_mono_ms();
    double score = addr_auth_score(a, now) + 1;
    a->auth_score = score;
    uint32_t shift = score >= 8 ? 7 : (uint32_t)(score + 0.5) - 1; /* rounded: decay shaves a little */
    uint64_t wait_ms = (uint64_t)AUTH_BACKOFF_MIN_MS << shift;
    if (wait_ms > AUTH_ADDR_BACKOFF_MAX_MS)
        wait_ms = AUTH_ADDR_BACKOFF_MAX_MS;
    if (a->auth_retry_ms < now + wait_ms)
        a->auth_retry_ms = now + wait_ms;
}

static void auth_verified(struct node *n, struct auth_job *j)
{
    struct conn *c = j->c;
    c->auth_busy = false;
    const struct auth_db *db = &n->sm.auth;
    const struct auth_user *u = auth_user_find(db, j->user);
    /* The user may have been removed or given a new password meanwhile. */
    bool ok = j->ok && j->known && u && u->rev == j->rev;
    if (!ok && j->addr)
        auth_addr_failed(j->addr); /* even if the guesser has hung up */
    if (!conn_is_open(c))
        return;
    if (ok && j->addr)
        j->addr->auth_good_ms = clock_mono_ms();
    log_debug("conn %llu: AUTH as '%s' from %s (queue %u) answered after %llu ms: %s", (unsigned long long)c->id,
              j->user, j->addr ? j->addr->ip : "-", (unsigned)j->cls,
              (unsigned long long)(clock_mono_ms() - j->queued_ms), ok ? "ok" : "refused");
    if (ok) {
        free(c->user);
        c->user = strdup(u->name);
        c->user_rev = u->rev;
        c->auth_failures = 0;
        n->stats.auth_ok++;
        struct msg_writer w;
        conn_reply_begin(c, &w, DDKV_MSG_AUTHED, j->rid, 3);
        mw_str(&w, c->user);
        mw_bool(&w, auth_is_root(db, u));
        mw_bool(&w, db->enabled);
        conn_reply_end(c, &w);
        return;
    }
    n->stats.auth_failed++;
    uint32_t shift = c->auth_failures < 5 ? c->auth_failures : 5;
    uint64_t wait_ms = (uint64_t)AUTH_BACKOFF_MIN_MS << shift;
    c->auth_failures++;
    c->auth_retry_ms = clock_mono_ms() + (wait_ms < AUTH_BACKOFF_MAX_MS ? wait_ms : AUTH_BACKOFF_MAX_MS);
    log_info("conn %llu from %s: authentication as '%s' failed", (unsigned long long)c->id, c->peer, j->user);
    conn_reply_error(c, j->rid, DDKV_WERR_PERMISSION_DENIED, "wrong user or password");
}

static void auth_hashed(struct node *n, struct auth_job *j)
{
    if (!conn_is_open(j->c))
        return;
    if (!j->ok) {
        conn_reply_error(j->c, j->rid, DDKV_WERR_INTERNAL, "cannot hash the password (OpenSSL failed)");
        return;
    }
    struct sm_auth a = {.op = j->op, .name = (const uint8_t *)j->user, .nlen = strlen(j->user),
                        .arg = j->rec, .alen = sizeof j->rec, .perm = 0};
    struct sm_op op = {.kind = SM_OP_AUTH, .auth = &a, .client_id = j->client_id, .seq = j->seq};
    replica_propose_reply(n, j->c, j->rid, DDKV_MSG_AUTH_CHANGED, NULL, &op);
}

/* Back on the loop: answer the AUTH, or propose the hashed change. */
static void auth_job_done(struct node *n, struct node_work *work)
{
    struct auth_job *j = (struct auth_job *)work;
    struct auth_worker *w = n->auth;
    ASSERT(w->pending > 0);
    w->pending--;
    ASSERT(w->pending_cls[j->cls] > 0);
    w->pending_cls[j->cls]--;
    if (j->kind == AUTH_JOB_VERIFY)
        auth_verified(n, j);
    else
        auth_hashed(n, j);
    job_free(j);
}

/* Queue j, a HASH (taking a reference on its connection), or refuse it. */
static bool auth_enqueue(struct node *n, struct conn *c, struct auth_job *j)
{
    struct auth_worker *w = n->auth;
    if (w->pending >= AUTH_QUEUE_MAX || w->pending_cls[j->cls] >= auth_class_cap[j->cls]) {
        conn_reply_error(c, j->rid, DDKV_WERR_UNAVAILABLE, "too many passwords being checked on this member; retry");
        job_free(j);
        return false;
    }
    conn_ref(c);
    j->c = c;
    w->pending++;
    w->pending_cls[j->cls]++;
    j->queued_ms = clock_mono_ms();
    auth_queue(n, j);
    return true;
}

static struct auth_job *auth_job_new(enum auth_job_kind kind, uint64_t rid, const uint8_t *pw, size_t pwlen)
{
    struct auth_job *j = calloc(1, sizeof *j);
    if (j && !(j->pw = malloc(pwlen ? pwlen : 1))) {
        free(j);
        j = NULL;
    }
    if (!j)
        return NULL;
    j->kind = kind;
    j->rid = rid;
    memcpy(j->pw, pw, pwlen);
    j->pwlen = pwlen;
    return j;
}

/* --- handlers --- */

/* AUTH [user, password] -> AUTHED [user, root, auth_enabled]. With auth off
 * nothing is checked and the connection gets no identity (it needs none). */
static void auth_handle(void *ctx, struct conn *c, const struct msg *m)
{
    struct node *n = ctx;
    const uint8_t *user, *pw;
    size_t ulen, pwlen;
    if (msg_bytes(m, 0, &user, &ulen) || msg_bytes(m, 1, &pw, &pwlen) || ulen > DDKV_AUTH_NAME_MAX ||
        pwlen > DDKV_AUTH_PASSWORD_MAX) {
        conn_reply_error(c, m->request_id, DDKV_WERR_BAD_REQUEST,
                         "AUTH wants [user (<= %u bytes), password (<= %u bytes)]", DDKV_AUTH_NAME_MAX,
                         DDKV_AUTH_PASSWORD_MAX);
        return;
    }
    if (c->auth_busy) {
        conn_reply_error(c, m->request_id, DDKV_WERR_BAD_REQUEST, "an AUTH is already in progress on this connection");
        return;
    }
    uint64_t now = clock_mono_ms();
    if (now < c->auth_retry_ms) {
        conn_reply_error(c, m->request_id, DDKV_WERR_PERMISSION_DENIED,
                         "wrong user or password; after failed attempts wait %llu ms before the next",
                         (unsigned long long)(c->auth_retry_ms - now));
        return;
    }
    const struct auth_db *db = &n->sm.auth;
    if (!db->enabled) {
        struct msg_writer w;
        conn_reply_begin(c, &w, DDKV_MSG_AUTHED, m->request_id, 3);
        mw_strn(&w, (const char *)user, ulen);
        mw_bool(&w, false);
        mw_bool(&w, false);
        conn_reply_end(c, &w);
        return;
    }
    struct auth_job *j = auth_job_new(AUTH_JOB_VERIFY, m->request_id, pw, pwlen);
    if (!j) {
        conn_reply_error(c, m->request_id, DDKV_WERR_INTERNAL, "out of memory");
        return;
    }
    memcpy(j->user, user, ulen);
    j->user[ulen] = 0;
    const struct auth_user *u = auth_name_ok(user, ulen) ? auth_user_find(db, j->user) : NULL;
    j->known = u != NULL;
    j->rev = u ? u->rev : 0;
    if (u)
        memcpy(j->rec, u->hash, sizeof j->rec);
    /* The address's turn: after failures from it, a wait and one check at a
     * time (auth_submit). */
    j->addr = c->addr;
    if (j->addr)
        j->addr->auth_jobs++;
    j->queued_ms = now;
    conn_ref(c);
    j->c = c;
    c->auth_busy = true;
    auth_submit(n, j);
}

/* What AUTH_CHANGE's arg must be for op; NULL if it is fine. */
static const char *auth_change_arg_bad(struct node *n, uint8_t op, size_t nlen, const uint8_t *name,
                                       const uint8_t *arg, size_t alen, uint64_t perm)
{
    bool named = op != DDKV_AUTH_ENABLE && op != DDKV_AUTH_DISABLE;
    if (named ? !auth_name_ok(name, nlen) : nlen != 0)
        return "a user or role name is 1..64 of [A-Za-z0-9_.@-] (none for enable and disable)";
    switch (op) {
    case DDKV_AUTH_USER_ADD:
    case DDKV_AUTH_USER_PASSWD:
        return alen == 0 || alen > DDKV_AUTH_PASSWORD_MAX ? "a password is 1..1024 bytes" : NULL;
    case DDKV_AUTH_USER_GRANT:
    case DDKV_AUTH_USER_REVOKE:
        return auth_name_ok(arg, alen) ? NULL : "a role name is 1..64 of [A-Za-z0-9_.@-]";
    case DDKV_AUTH_ROLE_GRANT:
        if (perm != DDKV_PERM_READ && perm != DDKV_PERM_READWRITE)
            return "perm is 1 (read) or 2 (readwrite)";
        /* fall through */
    case DDKV_AUTH_ROLE_REVOKE:
        return alen > AUTH_PREFIX_MAX || alen > n->cfg.max_key_bytes ? "the prefix is over the limit" : NULL;
    default:
        return NULL;
    }
}

/* AUTH_CHANGE [op, name, arg, perm, client_id, seq] -> AUTH_CHANGED
 * [lamport, revision] once the change applied. A password is hashed here,
 * off the loop, and only its hash goes into the log. */
static void auth_change(void *ctx, struct conn *c, const struct msg *m)
{
    struct node *n = ctx;
    uint64_t op, perm, client_id, seq;
    const uint8_t *name, *arg;
    size_t nlen, alen;
    if (msg_u64(m, 0, &op) || op < DDKV_AUTH_ENABLE || op > DDKV_AUTH_ROLE_REVOKE ||
        msg_bytes_opt(m, 1, &name, &nlen) || msg_bytes_opt(m, 2, &arg, &alen) || msg_u64_opt(m, 3, 0, &perm) ||
        msg_u64_opt(m, 4, 0, &client_id) || msg_u64_opt(m, 5, 0, &seq)) {
        conn_reply_error(c, m->request_id, DDKV_WERR_BAD_REQUEST,
                         "AUTH_CHANGE wants [op 1..11, name, arg, perm, client_id, seq]");
        return;
    }
    const char *bad = auth_change_arg_bad(n, (uint8_t)op, nlen, name, arg, alen, perm);
    if (bad) {
        conn_reply_error(c, m->request_id, DDKV_WERR_BAD_REQUEST, "%s", bad);
        return;
    }
    bool uses_arg = op >= DDKV_AUTH_USER_ADD && op != DDKV_AUTH_USER_REMOVE && op != DDKV_AUTH_ROLE_ADD &&
                    op != DDKV_AUTH_ROLE_REMOVE;
    if (op != DDKV_AUTH_USER_ADD && op != DDKV_AUTH_USER_PASSWD) {
        struct sm_auth a = {.op = (uint8_t)op, .name = name, .nlen = nlen, .arg = uses_arg ? arg : NULL,
                            .alen = uses_arg ? alen : 0, .perm = op == DDKV_AUTH_ROLE_GRANT ? (uint8_t)perm : 0};
        struct sm_op sop = {.kind = SM_OP_AUTH, .auth = &a, .client_id = client_id, .seq = seq};
        replica_propose_reply(n, c, m->request_id, DDKV_MSG_AUTH_CHANGED, NULL, &sop);
        return;
    }
    /* Only the leader proposes: say so before spending a hash on it. */
    if (!replica_lead_or_refuse(n, c, m->request_id, false))
        return;
    struct auth_job *j = auth_job_new(AUTH_JOB_HASH, m->request_id, arg, alen);
    if (!j) {
        conn_reply_error(c, m->request_id, DDKV_WERR_INTERNAL, "out of memory");
        return;
    }
    memcpy(j->user, name, nlen);
    j->user[nlen] = 0;
    j->op = (uint8_t)op;
    j->client_id = client_id;
    j->seq = seq;
    auth_enqueue(n, c, j);
}

/* AUTH_STATUS [] -> AUTH_INFO [auth_enabled, user|nil, root, roles]: roles
 * (the user's own role names, so that a non-root user such as the hub acting
 * for a person learns what that person holds) came in 0.2; a reply-only
 * field, which older clients ignore and newer ones do without. */
static void auth_status(void *ctx, struct conn *c, const struct msg *m)
{
    struct node *n = ctx;
    const struct auth_user *u = auth_identity(n, c);
    struct msg_writer w;
    conn_reply_begin(c, &w, DDKV_MSG_AUTH_INFO, m->request_id, 4);
    mw_bool(&w, n->sm.auth.enabled);
    mw_str(&w, u ? u->name : NULL);
    mw_bool(&w, u && auth_is_root(&n->sm.auth, u));
    mw_array(&w, u ? (uint32_t)u->nroles : 0);
    for (size_t r = 0; u && r < u->nroles; r++)
        mw_str(&w, u->roles[r]);
    conn_reply_end(c, &w);
}

/* AUTH_LIST [] -> AUTH_LIST_RESULT [users, roles, auth_enabled] from this
 * member's applied state. */
static void auth_list(void *ctx, struct conn *c, const struct msg *m)
{
    struct node *n = ctx;
    const struct auth_db *db = &n->sm.auth;
    struct msg_writer w;
    conn_reply_begin(c, &w, DDKV_MSG_AUTH_LIST_RESULT, m->request_id, 3);
    mw_array(&w, (uint32_t)db->nusers);
    for (size_t i = 0; i < db->nusers; i++) {
        const struct auth_user *u = &db->users[i];
        mw_array(&w, 2);
        mw_str(&w, u->name);
        mw_array(&w, (uint32_t)u->nroles);
        for (size_t r = 0; r < u->nroles; r++)
            mw_str(&w, u->roles[r]);
    }
    mw_array(&w, (uint32_t)db->nroles);
    for (size_t i = 0; i < db->nroles; i++) {
        const struct auth_role *r = &db->roles[i];
        mw_array(&w, 2);
        mw_str(&w, r->name);
        mw_array(&w, (uint32_t)r->nperms);
        for (size_t p = 0; p < r->nperms; p++) {
            mw_array(&w, 2);
            mw_bin(&w, r->perms[p].prefix, r->perms[p].plen);
            mw_u64(&w, r->perms[p].perm);
        }
    }
    mw_bool(&w, db->enabled);
    conn_reply_end(c, &w);
}

/* --- start and stop --- */

static int auth_init(struct node *n, struct errbuf *eb)
{
    struct auth_worker *w = calloc(1, sizeof *w);
    if (!w)
        return errf(eb, ERR_NOMEM, "out of memory");
    w->iterations = n->cfg.auth_hash_iterations;
    n->auth = w;
    pthread_mutex_init(&w->dummy_mu, NULL);
    if (!(w->hold_tick = n->io->timer_new(n, auth_hold_cb)))
        return errf(eb, ERR_NOMEM, "cannot start the auth hold timer");
    if (!(w->pool = n->io->pool_start(n, AUTH_THREADS, auth_thread_lanes, auth_thread_nice, eb)))
        return ERR_IO;
    int rc;
    if ((rc = dispatcher_register(&n->disp, DDKV_MSG_AUTH, "auth", auth_handle, n, eb)) ||
        (rc = dispatcher_register(&n->disp, DDKV_MSG_AUTH_CHANGE, "auth", auth_change, n, eb)) ||
        (rc = dispatcher_register(&n->disp, DDKV_MSG_AUTH_STATUS, "auth", auth_status, n, eb)) ||
        (rc = dispatcher_register(&n->disp, DDKV_MSG_AUTH_LIST, "auth", auth_list, n, eb)))
        return rc;
    return ERR_OK;
}

static void auth_job_drop(struct node_work *work)
{
    job_free((struct auth_job *)work);
}

/* Stop the worker and answer nothing more. */
static void auth_free(struct node *n)
{
    struct auth_worker *w = n->auth;
    if (!w)
        return;
    n->io->pool_stop(n, w->pool, auth_job_drop);
    n->io->timer_free(n, w->hold_tick);
    for (size_t i = 0; i < w->nheld; i++)
        job_free(w->held[i]);
    free(w->held);
    pthread_mutex_destroy(&w->dummy_mu);
    OPENSSL_cleanse(w->dummy, sizeof w->dummy);
    free(w);
    n->auth = NULL;
}

const struct module mod_auth = {.name = "auth", .init = auth_init, .admit = auth_admit, .free = auth_free};
