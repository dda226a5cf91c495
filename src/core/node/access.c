/* The permission table and the check every client message passes when auth
 * is enabled (rules in access.h). */
#include "node/access.h"

#include <stdio.h>
#include <string.h>

#include "ddkv/wire.h"
#include "kv/sm.h"

enum access_kind {
    ACCESS_OPEN, /* anyone */
    ACCESS_USER, /* any authenticated user */
    ACCESS_ROOT, /* the root role */
    ACCESS_KEYS, /* what the rule's keys function asks for */
};

/* One check in progress: the first refusal wins and is described in why. */
struct access_ctx {
    const struct auth_db *db;
    const struct auth_user *u;
    struct sm *sm;
    uint32_t code; /* 0 while everything asked for is allowed */
    char *why;
    size_t whylen;
};

/* Lists what m touches by calling need() for each key or range; returns
 * false if m is too malformed to tell (the handler would refuse it too). */
typedef bool (*access_keys_fn)(struct access_ctx *a, const struct msg *m);

struct access_rule {
    uint32_t type;
    enum access_kind kind;
    access_keys_fn keys;
};

/* Printable ASCII as is, the rest as \xNN, cut with "..." to fit cap. */
static void escape(const uint8_t *p, size_t n, char *out, size_t cap)
{
    ASSERT(cap >= 8);
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        char one[8];
        size_t k = 1;
        if (p[i] >= 0x20 && p[i] < 0x7f && p[i] != '\'' && p[i] != '\\')
            one[0] = (char)p[i];
        else
            k = (size_t)snprintf(one, sizeof one, "\\x%02x", p[i]);
        if (o + k + 4 > cap) { /* room for "..." and the NUL stays */
            memcpy(out + o, "...", 3);
            o += 3;
            break;
        }
        memcpy(out + o, one, k);
        o += k;
    }
    out[o] = 0;
}

/* Ask for perm on key p[0..n) (range: on every key starting with it). */
static void need(struct access_ctx *a, const uint8_t *p, size_t n, uint8_t perm, bool range)
{
    if (a->code || auth_may(a->db, a->u, p, n, perm))
        return;
    char shown[96];
    escape(p, n, shown, sizeof shown);
    a->code = DDKV_WERR_PERMISSION_DENIED;
    snprintf(a->why, a->whylen, "permission denied: user '%s' may not %s %s '%s'", a->u->name,
             perm == DDKV_PERM_READ ? "read" : "write", range ? "keys with the prefix" : "key", shown);
}

/* Using lease id (keeping it alive, attaching a key, revoking it) is for
 * its owner, the user who granted it (root passed before this). A lease
 * without an owner (granted with no identity, or before owners were kept)
 * is root's alone. A lease this member does not know: if its id (the index
 * of its grant) is applied here, it does not exist and the handler says so;
 * if not, it may be a grant still on its way, and deciding now could let
 * another user attach to it: refused, to be retried. */
static void need_lease(struct access_ctx *a, uint64_t id)
{
    if (a->code || id == 0 || !a->sm)
        return;
    auth_name owner;
    struct errbuf eb;
    int rc = sm_lease_get(a->sm, id, NULL, owner, &eb);
    if (rc == ERR_NOT_FOUND) {
        if (id > a->sm->applied_index) {
            a->code = DDKV_WERR_UNAVAILABLE;
            snprintf(a->why, a->whylen, "lease %llu is not applied on this member yet (applied up to %llu); retry",
                     (unsigned long long)id, (unsigned long long)a->sm->applied_index);
        }
        return;
    }
    if (rc) {
        a->code = DDKV_WERR_INTERNAL;
        snprintf(a->why, a->whylen, "storage: %s", eb.msg);
        return;
    }
    if (strcmp(owner, a->u->name) == 0)
        return;
    a->code = DDKV_WERR_PERMISSION_DENIED;
    if (owner[0])
        snprintf(a->why, a->whylen, "permission denied: lease %llu belongs to user '%s'; user '%s' may not use it",
                 (unsigned long long)id, owner, a->u->name);
    else
        snprintf(a->why, a->whylen, "permission denied: lease %llu has no owner (granted without a login), so only "
                 "root may use it; user '%s' may not", (unsigned long long)id, a->u->name);
}

static bool keys_read_key(struct access_ctx *a, const struct msg *m)
{
    const uint8_t *k;
    size_t n;
    if (msg_bytes(m, 0, &k, &n))
        return false;
    need(a, k, n, DDKV_PERM_READ, false);
    return true;
}

static bool keys_write_key(struct access_ctx *a, const struct msg *m)
{
    const uint8_t *k;
    size_t n;
    if (msg_bytes(m, 0, &k, &n))
        return false;
    need(a, k, n, DDKV_PERM_READWRITE, false);
    return true;
}

/* WRITE [key, value, lease_id, ...]: the key, and the lease it attaches to. */
static bool keys_write(struct access_ctx *a, const struct msg *m)
{
    uint64_t lease;
    if (!keys_write_key(a, m) || msg_u64_opt(m, 2, 0, &lease))
        return false;
    need_lease(a, lease);
    return true;
}

/* LIST and WATCH: field 0 is the prefix (nil or absent: every key). */
static bool keys_read_range(struct access_ctx *a, const struct msg *m)
{
    const uint8_t *p;
    size_t n;
    if (msg_bytes_opt(m, 0, &p, &n))
        return false;
    need(a, p, n, DDKV_PERM_READ, true);
    return true;
}

/* DELETE_PREFIX: readwrite on the whole prefix range. */
static bool keys_write_range(struct access_ctx *a, const struct msg *m)
{
    const uint8_t *p;
    size_t n;
    if (msg_bytes(m, 0, &p, &n))
        return false;
    need(a, p, n, DDKV_PERM_READWRITE, true);
    return true;
}

/* Field i of m: nil, or an array of arrays whose element at `at` is a key. */
static bool txn_list(struct access_ctx *a, const struct msg *m, uint32_t i, uint32_t at, uint8_t perm)
{
    if (i >= m->nf)
        return false;
    const msgpack_object *o = &m->f[i];
    if (o->type == MSGPACK_OBJECT_NIL)
        return true;
    if (o->type != MSGPACK_OBJECT_ARRAY)
        return false;
    for (uint32_t j = 0; j < o->via.array.size; j++) {
        const msgpack_object *e = &o->via.array.ptr[j];
        const uint8_t *k;
        size_t n;
        if (e->type != MSGPACK_OBJECT_ARRAY || e->via.array.size <= at || mpo_bytes(&e->via.array.ptr[at], &k, &n))
            return false;
        need(a, k, n, perm, false);
        /* An operation [kind, key, value, lease]: a put's lease. */
        uint64_t lease = 0;
        if (at == 1 && e->via.array.size > 3 && e->via.array.ptr[3].type != MSGPACK_OBJECT_NIL &&
            mpo_u64(&e->via.array.ptr[3], &lease))
            return false;
        need_lease(a, lease);
    }
    return true;
}

static bool keys_txn(struct access_ctx *a, const struct msg *m)
{
    return txn_list(a, m, 0, 0, DDKV_PERM_READ) && txn_list(a, m, 1, 1, DDKV_PERM_READWRITE) &&
           txn_list(a, m, 2, 1, DDKV_PERM_READWRITE);
}

/* A lease is nobody's key: granting one needs the right to write somewhere
 * (a reader has no use for leases). */
static bool keys_lease(struct access_ctx *a, const struct msg *m)
{
    (void)m;
    if (!a->code && !auth_may_write_somewhere(a->db, a->u)) {
        a->code = DDKV_WERR_PERMISSION_DENIED;
        snprintf(a->why, a->whylen, "permission denied: user '%s' may write no key, so may hold no lease",
                 a->u->name);
    }
    return true;
}

/* LEASE_KEEPALIVE [lease_id]: that, and the lease must be the user's. */
static bool keys_lease_keepalive(struct access_ctx *a, const struct msg *m)
{
    uint64_t id;
    if (msg_u64(m, 0, &id) || !keys_lease(a, m))
        return false;
    need_lease(a, id);
    return true;
}

static int revoke_key(void *ctx, const uint8_t *key, size_t klen)
{
    struct access_ctx *a = ctx;
    need(a, key, klen, DDKV_PERM_READWRITE, false);
    return a->code ? ERR_EXISTS : ERR_OK; /* stop at the first refusal */
}

/* Revoking deletes every key attached to the lease: each must be writable. */
static bool keys_lease_revoke(struct access_ctx *a, const struct msg *m)
{
    uint64_t id;
    if (msg_u64(m, 0, &id) || !keys_lease(a, m))
        return false;
    need_lease(a, id);
    if (a->code || !a->sm)
        return true;
    struct errbuf eb;
    int rc = sm_lease_keys_foreach(a->sm, id, revoke_key, a, &eb);
    if (rc && !a->code) {
        a->code = DDKV_WERR_INTERNAL;
        snprintf(a->why, a->whylen, "storage: %s", eb.msg);
    }
    return true;
}

/* The job queue's own keys (src/core/node/mod/jobs.c). */
static void job_space(struct access_ctx *a)
{
    static const char *const spaces[] = {"jobs/", "jobq/", "jobc/"};
    for (size_t i = 0; i < sizeof spaces / sizeof spaces[0]; i++)
        need(a, (const uint8_t *)spaces[i], strlen(spaces[i]), DDKV_PERM_READWRITE, true);
}

static bool keys_jobs(struct access_ctx *a, const struct msg *m)
{
    (void)m;
    job_space(a);
    return true;
}

/* JOB_PUT [data_key, ...]: the job's input is every key under data_key. */
static bool keys_job_put(struct access_ctx *a, const struct msg *m)
{
    const uint8_t *p;
    size_t n;
    if (msg_bytes(m, 0, &p, &n))
        return false;
    job_space(a);
    need(a, p, n, DDKV_PERM_READ, true);
    return true;
}

/* JOB_ACK [id, token, result_key, client_id, seq, result]: the result of
 * job id is jobresult/<id> (mod/jobs.c refuses an ack naming any other
 * key), and the ack makes it the job's result, writing it when it carries
 * it: the acknowledging user must be able to write that key, whatever the
 * ack names. */
static bool keys_job_ack(struct access_ctx *a, const struct msg *m)
{
    const uint8_t *id;
    size_t n;
    if (msg_bytes(m, 0, &id, &n) || n == 0 || n > 64)
        return false;
    job_space(a);
    uint8_t k[80];
    memcpy(k, "jobresult/", 10);
    memcpy(k + 10, id, n);
    need(a, k, 10 + n, DDKV_PERM_READWRITE, false);
    return true;
}

static const struct access_rule access_rules[] = {
    {DDKV_MSG_PING, ACCESS_OPEN, NULL},
    {DDKV_MSG_HELLO, ACCESS_OPEN, NULL},
    {DDKV_MSG_AUTH, ACCESS_OPEN, NULL},
    {DDKV_MSG_AUTH_STATUS, ACCESS_OPEN, NULL},
    {DDKV_MSG_STATUS, ACCESS_USER, NULL},
    {DDKV_MSG_READ, ACCESS_KEYS, keys_read_key},
    {DDKV_MSG_WRITE, ACCESS_KEYS, keys_write},
    {DDKV_MSG_DELETE, ACCESS_KEYS, keys_write_key},
    {DDKV_MSG_DELETE_PREFIX, ACCESS_KEYS, keys_write_range},
    {DDKV_MSG_LIST, ACCESS_KEYS, keys_read_range},
    {DDKV_MSG_WATCH, ACCESS_KEYS, keys_read_range},
    {DDKV_MSG_TXN, ACCESS_KEYS, keys_txn},
    {DDKV_MSG_LEASE_GRANT, ACCESS_KEYS, keys_lease},
    {DDKV_MSG_LEASE_KEEPALIVE, ACCESS_KEYS, keys_lease_keepalive},
    {DDKV_MSG_LEASE_REVOKE, ACCESS_KEYS, keys_lease_revoke},
    {DDKV_MSG_JOB_PUT, ACCESS_KEYS, keys_job_put},
    {DDKV_MSG_JOB_CLAIM, ACCESS_KEYS, keys_jobs},
    {DDKV_MSG_JOB_ACK, ACCESS_KEYS, keys_job_ack},
    {DDKV_MSG_JOB_NACK, ACCESS_KEYS, keys_jobs},
    {DDKV_MSG_JOB_EXTEND, ACCESS_KEYS, keys_jobs},
    {DDKV_MSG_JOB_CANCEL, ACCESS_KEYS, keys_job_ack}, /* it may delete jobresult/<id> */
    {DDKV_MSG_MEMBER_ADD, ACCESS_ROOT, NULL},
    {DDKV_MSG_MEMBER_REMOVE, ACCESS_ROOT, NULL},
    {DDKV_MSG_LEADER_TRANSFER, ACCESS_ROOT, NULL},
    {DDKV_MSG_AUTH_CHANGE, ACCESS_ROOT, NULL},
    {DDKV_MSG_AUTH_LIST, ACCESS_ROOT, NULL},
    /* A backup holds every key and the auth state (password hashes). */
    {DDKV_MSG_SNAPSHOT_SAVE, ACCESS_ROOT, NULL},
};

static const struct access_rule *access_rule(uint32_t type)
{
    for (size_t i = 0; i < sizeof access_rules / sizeof access_rules[0]; i++)
        if (access_rules[i].type == type)
            return &access_rules[i];
    return NULL;
}

bool access_has_rule(uint32_t type)
{
    return access_rule(type) != NULL;
}

uint32_t access_check(const struct auth_db *db, struct sm *sm, const char *user, const struct msg *m, char *why,
                      size_t whylen)
{
    why[0] = 0;
    if (!db->enabled)
        return 0;
    const struct access_rule *r = access_rule(m->type);
    enum access_kind kind = r ? r->kind : ACCESS_ROOT; /* fail closed */
    if (kind == ACCESS_OPEN)
        return 0;
    const struct auth_user *u = user ? auth_user_find(db, user) : NULL;
    if (!u) {
        snprintf(why, whylen, "authentication required: auth is enabled and this connection has no valid "
                              "identity (give --user and --password, or send AUTH)");
        return DDKV_WERR_UNAUTHENTICATED;
    }
    if (kind == ACCESS_USER || auth_is_root(db, u))
        return 0;
    if (kind == ACCESS_ROOT) {
        snprintf(why, whylen, "permission denied: %s needs the root role (user '%s' does not hold it)",
                 msg_type_name(m->type), u->name);
        return DDKV_WERR_PERMISSION_DENIED;
    }
    struct access_ctx a = {.db = db, .u = u, .sm = sm, .code = 0, .why = why, .whylen = whylen};
    if (!r->keys(&a, m) && !a.code) {
        snprintf(why, whylen, "malformed %s", msg_type_name(m->type));
        return DDKV_WERR_BAD_REQUEST;
    }
    return a.code;
}
