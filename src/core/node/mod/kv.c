/* The kv module: READ, WRITE, DELETE and LIST on the state machine. */
#include <string.h>

#include "node/node_int.h"
#include "proto/version.h"

/* Check a key against the node's limits; answers the error itself. */
static bool kv_key_ok(struct node *n, struct conn *c, uint64_t rid, size_t klen)
{
    if (klen == 0) {
        conn_reply_error(c, rid, DDKV_WERR_BAD_REQUEST, "key must not be empty");
        return false;
    }
    if (klen > n->cfg.max_key_bytes) {
        conn_reply_error(c, rid, DDKV_WERR_TOO_LARGE, "key of %zu bytes is over the limit of %u",
                         klen, n->cfg.max_key_bytes);
        return false;
    }
    return true;
}

/* The answers to writes once their entries applied (replica_reply_fn). A
 * WRITE's is the replica's default: WRITTEN_AT [lamport, revision]. */

/* DELETED [lamport, revision], or NOT_FOUND when there was no such key. */
static void kv_answer_deleted(struct node *n, const struct proposal *p, const struct sm_result *res)
{
    (void)n;
    if (!res->found) {
        conn_reply_error(p->c, p->request_id, DDKV_WERR_NOT_FOUND, "key not found");
        return;
    }
    struct msg_writer w;
    conn_reply_begin(p->c, &w, DDKV_MSG_DELETED, p->request_id, 2);
    mw_u64(&w, res->lamport);
    mw_u64(&w, res->revision);
    conn_reply_end(p->c, &w);
}

/* DELETE_PREFIX: DELETED [lamport, revision, count, succeeded]. */
static void kv_answer_delete_prefix(struct node *n, const struct proposal *p, const struct sm_result *res)
{
    (void)n;
    struct msg_writer w;
    conn_reply_begin(p->c, &w, DDKV_MSG_DELETED, p->request_id, 4);
    mw_u64(&w, res->lamport);
    mw_u64(&w, res->revision);
    mw_u64(&w, res->count);
    mw_bool(&w, res->succeeded);
    conn_reply_end(p->c, &w);
}

/* TXN_RESULT [succeeded, lamport, revision]. */
static void kv_answer_txn(struct node *n, const struct proposal *p, const struct sm_result *res)
{
    (void)n;
    struct msg_writer w;
    conn_reply_begin(p->c, &w, DDKV_MSG_TXN_RESULT, p->request_id, 3);
    mw_bool(&w, res->succeeded);
    mw_u64(&w, res->lamport);
    mw_u64(&w, res->revision);
    conn_reply_end(p->c, &w);
}

/* READ [key, consistency, after_lamport]: the replica decides when it may be
 * answered (see replica_read). */
static void kv_read(void *ctx, struct conn *c, const struct msg *m)
{
    struct node *n = ctx;
    const uint8_t *key;
    size_t klen;
    uint64_t consistency, after;
    if (msg_bytes(m, 0, &key, &klen) || msg_u64_opt(m, 1, DDKV_CONSISTENCY_LINEARIZABLE, &consistency) ||
        msg_u64_opt(m, 2, 0, &after) || consistency > DDKV_CONSISTENCY_STALE) {
        conn_reply_error(c, m->request_id, DDKV_WERR_BAD_REQUEST, "READ wants [key, consistency, after_lamport]");
        return;
    }
    if (!kv_key_ok(n, c, m->request_id, klen))
        return;
    n->stats.reads++;
    struct read_target t = {.key = key, .klen = klen};
    replica_read(n, c, m->request_id, &t, (uint32_t)consistency, after);
}

/* WRITE [key, value, lease_id, client_id, seq]. (client_id, seq) make a retry
 * exactly-once (kv/sm.h); client_id 0 or absent: no session. */
static void kv_write(void *ctx, struct conn *c, const struct msg *m)
{
    struct node *n = ctx;
    struct sm_op op = {.kind = SM_OP_PUT};
    if (msg_bytes(m, 0, &op.key, &op.klen) || msg_bytes(m, 1, &op.val, &op.vlen) ||
        msg_u64_opt(m, 2, 0, &op.lease) || msg_u64_opt(m, 3, 0, &op.client_id) ||
        msg_u64_opt(m, 4, 0, &op.seq)) {
        conn_reply_error(c, m->request_id, DDKV_WERR_BAD_REQUEST,
                         "WRITE wants [key, value, lease_id, client_id, seq]");
        return;
    }
    if (!kv_key_ok(n, c, m->request_id, op.klen))
        return;
    if (op.vlen > n->cfg.max_value_bytes) {
        conn_reply_error(c, m->request_id, DDKV_WERR_TOO_LARGE,
                         "value of %zu bytes is over the limit of %u", op.vlen, n->cfg.max_value_bytes);
        return;
    }
    n->stats.writes++;
    replica_propose_reply(n, c, m->request_id, DDKV_MSG_WRITTEN_AT, NULL, &op);
}

/* DELETE [key, client_id, seq], with a session like WRITE. */
static void kv_delete(void *ctx, struct conn *c, const struct msg *m)
{
    struct node *n = ctx;
    struct sm_op op = {.kind = SM_OP_DELETE};
    if (msg_bytes(m, 0, &op.key, &op.klen) || msg_u64_opt(m, 1, 0, &op.client_id) ||
        msg_u64_opt(m, 2, 0, &op.seq)) {
        conn_reply_error(c, m->request_id, DDKV_WERR_BAD_REQUEST, "DELETE wants [key, client_id, seq]");
        return;
    }
    if (!kv_key_ok(n, c, m->request_id, op.klen))
        return;
    n->stats.deletes++;
    replica_propose_reply(n, c, m->request_id, DDKV_MSG_DELETED, kv_answer_deleted, &op);
}

/* DELETE_PREFIX [prefix, limit, client_id, seq] -> DELETED [lamport,
 * revision, count, more]: up to limit keys (SM_DELETE_PREFIX_MAX at most) at
 * one revision, with a session like WRITE. A new entry kind: only once the
 * cluster version has it (proto/version.h); until then a clear refusal. */
static void kv_delete_prefix(void *ctx, struct conn *c, const struct msg *m)
{
    struct node *n = ctx;
    struct sm_op op = {.kind = SM_OP_DELETE_PREFIX};
    uint64_t limit;
    if (msg_bytes(m, 0, &op.key, &op.klen) || msg_u64_opt(m, 1, SM_DELETE_PREFIX_MAX, &limit) ||
        msg_u64_opt(m, 2, 0, &op.client_id) || msg_u64_opt(m, 3, 0, &op.seq) || limit == 0) {
        conn_reply_error(c, m->request_id, DDKV_WERR_BAD_REQUEST,
                         "DELETE_PREFIX wants [prefix, limit (1 or more), client_id, seq]");
        return;
    }
    if (op.klen > n->cfg.max_key_bytes) {
        conn_reply_error(c, m->request_id, DDKV_WERR_TOO_LARGE, "prefix of %zu bytes is over the key limit of %u",
                         op.klen, n->cfg.max_key_bytes);
        return;
    }
    op.limit = limit > SM_DELETE_PREFIX_MAX ? SM_DELETE_PREFIX_MAX : (uint32_t)limit;
    struct raft_status st;
    raft_status(n->raft, &st);
    if (st.role == RAFT_LEADER && n->sm.cluster_version < VERSION_DELETE_PREFIX) {
        char cv[32], need[32];
        conn_reply_error(c, m->request_id, DDKV_WERR_BAD_REQUEST,
                         "deleting by prefix needs cluster version %s; this cluster runs at %s until every member "
                         "runs ddkv %s or later (README, Upgrading)",
                         version_text(VERSION_DELETE_PREFIX, need, sizeof need),
                         version_text(n->sm.cluster_version, cv, sizeof cv), need);
        return;
    }
    n->stats.deletes++;
    replica_propose_reply(n, c, m->request_id, DDKV_MSG_DELETE_PREFIX, kv_answer_delete_prefix, &op);
}

/* LIST [prefix, start_after, limit, consistency, after_lamport] ->
 * [[entries...], more, revision]. Consistency as for READ, linearizable
 * unless asked otherwise: each page is its own read. */
static void kv_list(void *ctx, struct conn *c, const struct msg *m)
{
    struct node *n = ctx;
    const uint8_t *prefix, *after;
    size_t plen, alen;
    uint64_t limit, consistency, after_lamport;
    if (msg_bytes_opt(m, 0, &prefix, &plen) || msg_bytes_opt(m, 1, &after, &alen) ||
        msg_u64_opt(m, 2, DDKV_DEFAULT_LIST_LIMIT, &limit) ||
        msg_u64_opt(m, 3, DDKV_CONSISTENCY_LINEARIZABLE, &consistency) || msg_u64_opt(m, 4, 0, &after_lamport) ||
        consistency > DDKV_CONSISTENCY_STALE) {
        conn_reply_error(c, m->request_id, DDKV_WERR_BAD_REQUEST,
                         "LIST wants [prefix, start_after, limit, consistency, after_lamport]");
        return;
    }
    if (plen > n->cfg.max_key_bytes || alen > n->cfg.max_key_bytes) {
        conn_reply_error(c, m->request_id, DDKV_WERR_TOO_LARGE, "prefix or start key over the key limit");
        return;
    }
    if (limit == 0 || limit > DDKV_MAX_LIST_LIMIT)
        limit = limit == 0 ? DDKV_DEFAULT_LIST_LIMIT : DDKV_MAX_LIST_LIMIT;
    n->stats.lists++;
    struct read_target t = {.key = prefix, .klen = plen, .list = true, .after = after, .alen = alen,
                            .limit = (uint32_t)limit};
    replica_read(n, c, m->request_id, &t, (uint32_t)consistency, after_lamport);
}

/* Parse one TXN operation list [[kind, key, value, lease]...] into ops.
 * False with *why, and *code the error to answer with. */
static bool kv_txn_ops(struct node *n, const msgpack_object *o, struct sm_txn_op *ops, size_t *nops,
                       const char **why, uint32_t *code)
{
    if (o->type == MSGPACK_OBJECT_NIL) {
        *nops = 0;
        return true;
    }
    if (o->type != MSGPACK_OBJECT_ARRAY || o->via.array.size > SM_TXN_MAX) {
        *why = "an operation list must be an array of at most 128";
        return false;
    }
    for (uint32_t i = 0; i < o->via.array.size; i++) {
        const msgpack_object *e = &o->via.array.ptr[i];
        struct sm_txn_op *op = &ops[i];
        uint64_t kind;
        memset(op, 0, sizeof *op);
        if (e->type != MSGPACK_OBJECT_ARRAY || e->via.array.size < 2 || e->via.array.size > 4 ||
            mpo_u64(&e->via.array.ptr[0], &kind) || (kind != DDKV_OP_PUT && kind != DDKV_OP_DELETE) ||
            mpo_bytes(&e->via.array.ptr[1], &op->key, &op->klen) ||
            (e->via.array.size > 2 && e->via.array.ptr[2].type != MSGPACK_OBJECT_NIL &&
             mpo_bytes(&e->via.array.ptr[2], &op->val, &op->vlen)) ||
            (e->via.array.size > 3 && e->via.array.ptr[3].type != MSGPACK_OBJECT_NIL &&
             mpo_u64(&e->via.array.ptr[3], &op->lease))) {
            *why = "an operation is [kind (1 put, 2 delete), key, value, lease_id]";
            return false;
        }
        op->kind = (uint8_t)kind;
        if (op->klen == 0) {
            *why = "an operation's key is empty";
            return false;
        }
        if (op->klen > n->cfg.max_key_bytes || op->vlen > n->cfg.max_value_bytes) {
            *why = "an operation's key or value is over its limit";
            *code = DDKV_WERR_TOO_LARGE;
            return false;
        }
        if (kind == DDKV_OP_DELETE)
            op->vlen = 0;
    }
    *nops = o->via.array.size;
    return true;
}

/* TXN [compares, on_success, on_failure, client_id, seq] */
static void kv_txn(void *ctx, struct conn *c, const struct msg *m)
{
    struct node *n = ctx;
    /* One at a time on the loop thread: the parsed form lives here. */
    static struct sm_cmp cmps[SM_TXN_MAX];
    static struct sm_txn_op ops[2][SM_TXN_MAX];
    struct sm_txn txn = {.cmps = cmps, .ops = {ops[0], ops[1]}};
    struct sm_op op = {.kind = SM_OP_TXN, .txn = &txn};
    const char *why = "TXN wants [compares, on_success, on_failure, client_id, seq]";
    uint32_t code = DDKV_WERR_BAD_REQUEST;
    if (m->nf < 3 || msg_u64_opt(m, 3, 0, &op.client_id) || msg_u64_opt(m, 4, 0, &op.seq))
        goto bad;
    const msgpack_object *co = &m->f[0];
    if (co->type != MSGPACK_OBJECT_ARRAY || co->via.array.size > SM_TXN_MAX) {
        why = "compares must be an array of at most 128";
        goto bad;
    }
    for (uint32_t i = 0; i < co->via.array.size; i++) {
        const msgpack_object *e = &co->via.array.ptr[i];
        struct sm_cmp *cm = &cmps[i];
        uint64_t field, cmp;
        memset(cm, 0, sizeof *cm);
        if (e->type != MSGPACK_OBJECT_ARRAY || e->via.array.size != 4 ||
            mpo_bytes(&e->via.array.ptr[0], &cm->key, &cm->klen) || mpo_u64(&e->via.array.ptr[1], &field) ||
            mpo_u64(&e->via.array.ptr[2], &cmp) || field > DDKV_CMP_MOD_REV || cmp > DDKV_CMP_GT ||
            (field == DDKV_CMP_VALUE ? mpo_bytes(&e->via.array.ptr[3], &cm->val, &cm->vlen)
                                     : mpo_u64(&e->via.array.ptr[3], &cm->num))) {
            why = "a compare is [key, field (0 value, 1 version, 2 create_rev, 3 mod_rev), "
                  "cmp (0 eq, 1 ne, 2 lt, 3 gt), operand]";
            goto bad;
        }
        if (cm->klen == 0) {
            why = "a compare's key is empty";
            goto bad;
        }
        if (cm->klen > n->cfg.max_key_bytes) {
            why = "a compare's key is over the key limit";
            code = DDKV_WERR_TOO_LARGE;
            goto bad;
        }
        cm->field = (uint8_t)field;
        cm->cmp = (uint8_t)cmp;
    }
    txn.ncmp = co->via.array.size;
    if (!kv_txn_ops(n, &m->f[1], ops[0], &txn.nops[0], &why, &code) ||
        !kv_txn_ops(n, &m->f[2], ops[1], &txn.nops[1], &why, &code))
        goto bad;
    n->stats.txns++;
    replica_propose_reply(n, c, m->request_id, DDKV_MSG_TXN_RESULT, kv_answer_txn, &op);
    return;
bad:
    conn_reply_error(c, m->request_id, code, "%s", why);
}

static int kv_init(struct node *n, struct errbuf *eb)
{
    int rc;
    if ((rc = dispatcher_register(&n->disp, DDKV_MSG_READ, "kv", kv_read, n, eb)) ||
        (rc = dispatcher_register(&n->disp, DDKV_MSG_WRITE, "kv", kv_write, n, eb)) ||
        (rc = dispatcher_register(&n->disp, DDKV_MSG_DELETE, "kv", kv_delete, n, eb)) ||
        (rc = dispatcher_register(&n->disp, DDKV_MSG_DELETE_PREFIX, "kv", kv_delete_prefix, n, eb)) ||
        (rc = dispatcher_register(&n->disp, DDKV_MSG_LIST, "kv", kv_list, n, eb)) ||
        (rc = dispatcher_register(&n->disp, DDKV_MSG_TXN, "kv", kv_txn, n, eb)))
        return rc;
    return ERR_OK;
}

const struct module mod_kv = {.name = "kv", .init = kv_init};
