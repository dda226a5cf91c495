/* Command encoding for Raft log entries (layout in cmd.h). */
#include "kv/cmd.h"

#include <string.h>

#include "util/err.h"

int cmd_encode(const struct cmd *c, struct buf *b)
{
    ASSERT(c->op.kind == SM_OP_PUT || c->op.kind == SM_OP_DELETE);
    ASSERT(c->op.klen <= UINT32_MAX);
    uint8_t h[CMD_HEADER];
    h[0] = CMD_FORMAT;
    h[1] = (uint8_t)c->op.kind;
    put_be64(h + 2, c->lamport);
    put_be64(h + 10, c->op.time_ms);
    put_be64(h + 18, c->op.lease);
    put_be64(h + 26, c->op.client_id);
    put_be64(h + 34, c->op.seq);
    put_be32(h + 42, (uint32_t)c->op.klen);
    size_t vlen = c->op.kind == SM_OP_PUT ? c->op.vlen : 0;
    int rc = buf_reserve(b, sizeof h + c->op.klen + vlen);
    if (rc)
        return rc;
    buf_append(b, h, sizeof h);
    buf_append(b, c->op.key, c->op.klen);
    buf_append(b, c->op.val, vlen);
    return ERR_OK;
}

int cmd_decode(const uint8_t *p, size_t n, struct cmd *c)
{
    memset(c, 0, sizeof *c);
    if (n < CMD_HEADER || p[0] != CMD_FORMAT || (p[1] != SM_OP_PUT && p[1] != SM_OP_DELETE))
        return ERR_CORRUPT;
    uint32_t klen = get_be32(p + 42);
    if (klen == 0 || klen > n - CMD_HEADER)
        return ERR_CORRUPT;
    c->op.kind = (enum sm_op_kind)p[1];
    c->lamport = get_be64(p + 2);
    c->op.time_ms = get_be64(p + 10);
    c->op.lease = get_be64(p + 18);
    c->op.client_id = get_be64(p + 26);
    c->op.seq = get_be64(p + 34);
    c->op.key = p + CMD_HEADER;
    c->op.klen = klen;
    c->op.val = p + CMD_HEADER + klen;
    c->op.vlen = n - CMD_HEADER - klen;
    if (c->op.kind == SM_OP_DELETE && c->op.vlen != 0)
        return ERR_CORRUPT;
    return ERR_OK;
}
