/* Command encoding for Raft log entries (layout in cmd.h). */
#include "kv/cmd.h"

#include <string.h>

#include "ddkv/wire.h"
#include "util/err.h"

/* The bytes a TXN's lists take, or 0 if the TXN cannot be encoded. */
static size_t txn_size(const struct sm_txn *t)
{
    if (!t || t->ncmp > SM_TXN_MAX || t->nops[0] > SM_TXN_MAX || t->nops[1] > SM_TXN_MAX)
        return 0;
    size_t n = CMD_TXN_HEADER;
    for (size_t i = 0; i < t->ncmp; i++) {
        const struct sm_cmp *c = &t->cmps[i];
        if (c->field > DDKV_CMP_MOD_REV || c->cmp > DDKV_CMP_GT || c->klen == 0 || c->klen > UINT32_MAX)
            return 0;
        n += 6 + c->klen;
        if (c->field == DDKV_CMP_VALUE) {
            if (c->vlen > UINT32_MAX)
                return 0;
            n += 4 + c->vlen;
        } else {
            n += 8;
        }
    }
    for (int l = 0; l < 2; l++) {
        for (size_t i = 0; i < t->nops[l]; i++) {
            const struct sm_txn_op *o = &t->ops[l][i];
            if ((o->kind != DDKV_OP_PUT && o->kind != DDKV_OP_DELETE) || o->klen == 0 || o->klen > UINT32_MAX)
                return 0;
            n += 5 + o->klen;
            if (o->kind == DDKV_OP_PUT) {
                if (o->vlen > UINT32_MAX)
                    return 0;
                n += 12 + o->vlen;
            }
        }
    }
    return n;
}

static void append_u32(struct buf *b, size_t v)
{
    uint8_t x[4];
    put_be32(x, (uint32_t)v);
    buf_append(b, x, 4);
}

static void append_u64(struct buf *b, uint64_t v)
{
    uint8_t x[8];
    put_be64(x, v);
    buf_append(b, x, 8);
}

/* The TXN's lists after the prefix; room is reserved. */
static void txn_append(const struct sm_txn *t, struct buf *b)
{
    uint8_t h[6];
    h[0] = (uint8_t)(t->ncmp >> 8);
    h[1] = (uint8_t)t->ncmp;
    h[2] = (uint8_t)(t->nops[0] >> 8);
    h[3] = (uint8_t)t->nops[0];
    h[4] = (uint8_t)(t->nops[1] >> 8);
    h[5] = (uint8_t)t->nops[1];
    buf_append(b, h, sizeof h);
    for (size_t i = 0; i < t->ncmp; i++) {
        const struct sm_cmp *c = &t->cmps[i];
        uint8_t fc[2] = {c->field, c->cmp};
        buf_append(b, fc, 2);
        append_u32(b, c->klen);
        buf_append(b, c->key, c->klen);
        if (c->field == DDKV_CMP_VALUE) {
            append_u32(b, c->vlen);
            buf_append(b, c->val, c->vlen);
        } else {
            append_u64(b, c->num);
        }
    }
    for (int l = 0; l < 2; l++) {
        for (size_t i = 0; i < t->nops[l]; i++) {
            const struct sm_txn_op *o = &t->ops[l][i];
            buf_append(b, &o->kind, 1);
            append_u32(b, o->klen);
            buf_append(b, o->key, o->klen);
            if (o->kind == DDKV_OP_PUT) {
                append_u64(b, o->lease);
                append_u32(b, o->vlen);
                buf_append(b, o->val, o->vlen);
            }
        }
    }
}

/* An auth change's fields after the prefix; room is reserved. */
static void auth_append(const struct sm_auth *a, struct buf *b)
{
    buf_append(b, &a->perm, 1);
    append_u32(b, a->nlen);
    buf_append(b, a->name, a->nlen);
    append_u32(b, a->alen);
    buf_append(b, a->arg, a->alen);
}

/* A cluster version: 0.2.0 or later (0.1.0 is where every cluster starts),
 * major.minor with patch 0. */
static bool cluster_version_ok(uint64_t v)
{
    return v >= DDKV_VERSION_0_2_0 && (v & 0xffff) == 0 && (v >> 32) < 0x10000;
}

/* A command in format 2 (the layout in cmd.h). */
static int encode_v2(const struct sm_op *op, uint64_t lamport, struct buf *b)
{
    ASSERT(op->kind == SM_OP_PUT || op->kind == SM_OP_DELETE || op->kind == SM_OP_TXN ||
           op->kind == SM_OP_LEASE_GRANT || op->kind == SM_OP_LEASE_REVOKE || op->kind == SM_OP_AUTH ||
           op->kind == SM_OP_MEMBER_INC || op->kind == SM_OP_CLUSTER_VERSION || op->kind == SM_OP_DELETE_PREFIX);
    uint8_t h[CMD_HEADER];
    uint64_t arg = 0;
    size_t size = CMD_PREFIX, vlen = 0;
    switch (op->kind) {
    case SM_OP_PUT:
    case SM_OP_DELETE:
        if (op->klen == 0 || op->klen > UINT32_MAX)
            return ERR_BAD_INPUT;
        vlen = op->kind == SM_OP_PUT ? op->vlen : 0;
        arg = op->lease;
        size = CMD_HEADER + op->klen + vlen;
        put_be32(h + CMD_PREFIX, (uint32_t)op->klen);
        break;
    case SM_OP_TXN:
        if ((size = txn_size(op->txn)) == 0)
            return ERR_BAD_INPUT;
        break;
    case SM_OP_LEASE_GRANT:
        if (op->owner_len > DDKV_AUTH_NAME_MAX)
            return ERR_BAD_INPUT;
        arg = op->lease_ttl_ms;
        size = CMD_PREFIX + (op->owner_len ? 4 + op->owner_len : 0);
        break;
    case SM_OP_MEMBER_INC:
        if (op->member_id == 0)
            return ERR_BAD_INPUT;
        arg = op->member_id;
        size = CMD_PREFIX + 16;
        break;
    case SM_OP_CLUSTER_VERSION:
        if (!cluster_version_ok(op->version))
            return ERR_BAD_INPUT;
        arg = op->version;
        break;
    case SM_OP_DELETE_PREFIX:
        if (op->limit == 0 || op->limit > SM_DELETE_PREFIX_MAX || op->klen > UINT32_MAX)
            return ERR_BAD_INPUT;
        arg = op->limit;
        size = CMD_HEADER + op->klen;
        put_be32(h + CMD_PREFIX, (uint32_t)op->klen);
        break;
    case SM_OP_AUTH:
        if (!op->auth || op->auth->op < DDKV_AUTH_ENABLE || op->auth->op > DDKV_AUTH_ROLE_REVOKE ||
            op->auth->nlen > UINT32_MAX || op->auth->alen > UINT32_MAX)
            return ERR_BAD_INPUT;
        arg = op->auth->op;
        size = CMD_AUTH_HEADER + op->auth->nlen + 4 + op->auth->alen;
        break;
    default: arg = op->lease; break;
    }
    h[0] = CMD_FORMAT;
    h[1] = (uint8_t)op->kind;
    put_be64(h + 2, lamport);
    put_be64(h + 10, op->time_ms);
    put_be64(h + 18, arg);
    put_be64(h + 26, op->client_id);
    put_be64(h + 34, op->seq);
    int rc = buf_reserve(b, size);
    if (rc)
        return rc;
    if (op->kind == SM_OP_PUT || op->kind == SM_OP_DELETE || op->kind == SM_OP_DELETE_PREFIX) {
        buf_append(b, h, CMD_HEADER);
        buf_append(b, op->key, op->klen);
        buf_append(b, op->val, vlen);
    } else {
        buf_append(b, h, CMD_PREFIX);
        if (op->kind == SM_OP_TXN)
            txn_append(op->txn, b);
        else if (op->kind == SM_OP_AUTH)
            auth_append(op->auth, b);
        else if (op->kind == SM_OP_MEMBER_INC) {
            uint8_t inc[16];
            put_be64(inc, op->member_cluster);
            put_be64(inc + 8, op->incarnation);
            buf_append(b, inc, 16);
        } else if (op->kind == SM_OP_LEASE_GRANT && op->owner_len) {
            append_u32(b, op->owner_len);
            buf_append(b, op->owner, op->owner_len);
        }
    }
    return ERR_OK;
}

int cmd_encode_op(const struct sm_op *op, uint64_t lamport, struct buf *b)
{
    if (!op->auth_checked)
        return encode_v2(op, lamport, b);
    size_t at = b->len;
    uint8_t h[CMD_AUTH_ENVELOPE];
    h[0] = CMD_FORMAT_AUTH_REV;
    put_be64(h + 1, op->auth_rev);
    int rc = buf_append(b, h, sizeof h);
    if (!rc)
        rc = encode_v2(op, lamport, b);
    if (rc)
        b->len = at;
    return rc;
}

int cmd_encode(const struct cmd *c, struct buf *b)
{
    return cmd_encode_op(&c->op, c->lamport, b);
}

/* A bounds-checked reader over the entry's bytes. */
struct rd {
    const uint8_t *p;
    size_t n, at;
};

static bool rd_bytes(struct rd *r, size_t k, const uint8_t **out)
{
    if (r->n - r->at < k)
        return false;
    *out = r->p + r->at;
    r->at += k;
    return true;
}

static bool rd_u8(struct rd *r, uint8_t *v)
{
    const uint8_t *q;
    if (!rd_bytes(r, 1, &q))
        return false;
    *v = q[0];
    return true;
}

static bool rd_u32(struct rd *r, size_t *v)
{
    const uint8_t *q;
    if (!rd_bytes(r, 4, &q))
        return false;
    *v = get_be32(q);
    return true;
}

static bool rd_u64(struct rd *r, uint64_t *v)
{
    const uint8_t *q;
    if (!rd_bytes(r, 8, &q))
        return false;
    *v = get_be64(q);
    return true;
}

/* A length-prefixed byte string; nonempty if asked. */
static bool rd_str(struct rd *r, bool nonempty, const uint8_t **p, size_t *len)
{
    return rd_u32(r, len) && (!nonempty || *len > 0) && rd_bytes(r, *len, p);
}

static int txn_decode(const uint8_t *p, size_t n, struct cmd *c)
{
    if (n < CMD_TXN_HEADER)
        return ERR_CORRUPT;
    size_t ncmp = (size_t)p[42] << 8 | p[43];
    size_t nops[2] = {(size_t)p[44] << 8 | p[45], (size_t)p[46] << 8 | p[47]};
    if (ncmp > SM_TXN_MAX || nops[0] > SM_TXN_MAX || nops[1] > SM_TXN_MAX)
        return ERR_CORRUPT;
    struct rd r = {.p = p, .n = n, .at = CMD_TXN_HEADER};
    for (size_t i = 0; i < ncmp; i++) {
        struct sm_cmp *cm = &c->cmps[i];
        memset(cm, 0, sizeof *cm);
        if (!rd_u8(&r, &cm->field) || !rd_u8(&r, &cm->cmp) || cm->field > DDKV_CMP_MOD_REV ||
            cm->cmp > DDKV_CMP_GT || !rd_str(&r, true, &cm->key, &cm->klen))
            return ERR_CORRUPT;
        if (cm->field == DDKV_CMP_VALUE ? !rd_str(&r, false, &cm->val, &cm->vlen) : !rd_u64(&r, &cm->num))
            return ERR_CORRUPT;
    }
    for (int l = 0; l < 2; l++) {
        for (size_t i = 0; i < nops[l]; i++) {
            struct sm_txn_op *o = &c->ops[l][i];
            memset(o, 0, sizeof *o);
            if (!rd_u8(&r, &o->kind) || (o->kind != DDKV_OP_PUT && o->kind != DDKV_OP_DELETE) ||
                !rd_str(&r, true, &o->key, &o->klen))
                return ERR_CORRUPT;
            if (o->kind == DDKV_OP_PUT && (!rd_u64(&r, &o->lease) || !rd_str(&r, false, &o->val, &o->vlen)))
                return ERR_CORRUPT;
        }
    }
    if (r.at != n)
        return ERR_CORRUPT; /* trailing bytes */
    c->txn = (struct sm_txn){.cmps = c->cmps, .ncmp = ncmp, .ops = {c->ops[0], c->ops[1]},
                             .nops = {nops[0], nops[1]}};
    c->op.txn = &c->txn;
    return ERR_OK;
}

static int auth_decode(const uint8_t *p, size_t n, uint64_t arg, struct cmd *c)
{
    struct sm_auth *a = &c->auth;
    memset(a, 0, sizeof *a);
    struct rd r = {.p = p, .n = n, .at = CMD_PREFIX};
    if (arg < DDKV_AUTH_ENABLE || arg > DDKV_AUTH_ROLE_REVOKE || !rd_u8(&r, &a->perm) ||
        !rd_str(&r, false, &a->name, &a->nlen) || !rd_str(&r, false, &a->arg, &a->alen) || r.at != n)
        return ERR_CORRUPT;
    a->op = (uint8_t)arg;
    c->op.auth = a;
    return ERR_OK;
}

static int decode_v2(const uint8_t *p, size_t n, struct cmd *c);

int cmd_decode(const uint8_t *p, size_t n, struct cmd *c)
{
    if (n >= CMD_AUTH_ENVELOPE && p[0] == CMD_FORMAT_AUTH_REV) {
        int rc = decode_v2(p + CMD_AUTH_ENVELOPE, n - CMD_AUTH_ENVELOPE, c);
        if (rc)
            return rc;
        c->op.auth_checked = true;
        c->op.auth_rev = get_be64(p + 1);
        return ERR_OK;
    }
    return decode_v2(p, n, c);
}

static int decode_v2(const uint8_t *p, size_t n, struct cmd *c)
{
    /* Not the arrays: only their first counts are ever read. */
    memset(&c->op, 0, sizeof c->op);
    memset(&c->txn, 0, sizeof c->txn);
    c->lamport = 0;
    if (n < CMD_PREFIX || p[0] != CMD_FORMAT)
        return ERR_CORRUPT;
    uint8_t kind = p[1];
    uint64_t arg = get_be64(p + 18);
    c->op.kind = (enum sm_op_kind)kind;
    c->lamport = get_be64(p + 2);
    c->op.time_ms = get_be64(p + 10);
    c->op.client_id = get_be64(p + 26);
    c->op.seq = get_be64(p + 34);
    switch (kind) {
    case SM_OP_PUT:
    case SM_OP_DELETE: {
        if (n < CMD_HEADER)
            return ERR_CORRUPT;
        uint32_t klen = get_be32(p + 42);
        if (klen == 0 || klen > n - CMD_HEADER)
            return ERR_CORRUPT;
        c->op.lease = arg;
        c->op.key = p + CMD_HEADER;
        c->op.klen = klen;
        c->op.val = p + CMD_HEADER + klen;
        c->op.vlen = n - CMD_HEADER - klen;
        if (kind == SM_OP_DELETE && c->op.vlen != 0)
            return ERR_CORRUPT;
        return ERR_OK;
    }
    case SM_OP_TXN:
        if (arg != 0)
            return ERR_CORRUPT;
        return txn_decode(p, n, c);
    case SM_OP_LEASE_GRANT: {
        /* The owner, when there is one (a grant without one is the 42 bytes
         * alone, as every grant was before owners). */
        c->op.lease_ttl_ms = arg;
        if (n == CMD_PREFIX)
            return ERR_OK;
        struct rd r = {.p = p, .n = n, .at = CMD_PREFIX};
        const uint8_t *o;
        size_t olen;
        if (!rd_str(&r, true, &o, &olen) || olen > DDKV_AUTH_NAME_MAX || r.at != n)
            return ERR_CORRUPT;
        c->op.owner = (const char *)o;
        c->op.owner_len = olen;
        return ERR_OK;
    }
    case SM_OP_LEASE_REVOKE:
        if (n != CMD_PREFIX)
            return ERR_CORRUPT;
        c->op.lease = arg;
        return ERR_OK;
    case SM_OP_AUTH:
        return auth_decode(p, n, arg, c);
    case SM_OP_MEMBER_INC:
        if (n != CMD_PREFIX + 16 || arg == 0)
            return ERR_CORRUPT;
        c->op.member_id = arg;
        c->op.member_cluster = get_be64(p + CMD_PREFIX);
        c->op.incarnation = get_be64(p + CMD_PREFIX + 8);
        return ERR_OK;
    case SM_OP_CLUSTER_VERSION:
        if (n != CMD_PREFIX || !cluster_version_ok(arg) || c->op.client_id != 0)
            return ERR_CORRUPT;
        c->op.version = arg;
        return ERR_OK;
    case SM_OP_DELETE_PREFIX: {
        if (n < CMD_HEADER || arg == 0 || arg > SM_DELETE_PREFIX_MAX)
            return ERR_CORRUPT;
        uint32_t klen = get_be32(p + 42);
        if (klen != n - CMD_HEADER)
            return ERR_CORRUPT;
        c->op.limit = (uint32_t)arg;
        c->op.key = p + CMD_HEADER;
        c->op.klen = klen;
        return ERR_OK;
    }
    default:
        return ERR_CORRUPT;
    }
}
