/* Log-entry commands: what the leader encodes every member decodes the same,
 * and malformed bytes are refused, never trusted. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "ddkv/wire.h"
#include "kv/cmd.h"

static struct cmd put_cmd(const char *k, const char *v)
{
    struct cmd c = {.op = {.kind = SM_OP_PUT, .key = (const uint8_t *)k, .klen = strlen(k),
                           .val = (const uint8_t *)v, .vlen = strlen(v), .lease = 77,
                           .client_id = UINT64_MAX, .seq = 42, .time_ms = 1700000000123},
                    .lamport = 1234567};
    return c;
}

Test(cmd, a_put_round_trips_every_field)
{
    struct buf b = BUF_INIT;
    struct cmd in = put_cmd("key", "value bytes"), out;
    cr_assert_eq(cmd_encode(&in, &b), ERR_OK);
    cr_assert_eq(b.len, CMD_HEADER + 3 + 11);
    cr_assert_eq(cmd_decode(b.data, b.len, &out), ERR_OK);
    cr_assert_eq(out.op.kind, SM_OP_PUT);
    cr_assert_eq(out.lamport, 1234567);
    cr_assert_eq(out.op.lease, 77);
    cr_assert_eq(out.op.client_id, UINT64_MAX);
    cr_assert_eq(out.op.seq, 42);
    cr_assert_eq(out.op.time_ms, 1700000000123);
    cr_assert(out.op.klen == 3 && memcmp(out.op.key, "key", 3) == 0);
    cr_assert(out.op.vlen == 11 && memcmp(out.op.val, "value bytes", 11) == 0);
    buf_free(&b);
}

Test(cmd, a_delete_and_an_empty_value_round_trip)
{
    struct buf b = BUF_INIT;
    struct cmd in = {.op = {.kind = SM_OP_DELETE, .key = (const uint8_t *)"gone", .klen = 4}}, out;
    cr_assert_eq(cmd_encode(&in, &b), ERR_OK);
    cr_assert_eq(cmd_decode(b.data, b.len, &out), ERR_OK);
    cr_assert_eq(out.op.kind, SM_OP_DELETE);
    cr_assert_eq(out.op.vlen, 0);
    buf_reset(&b);
    in = put_cmd("k", "");
    cr_assert_eq(cmd_encode(&in, &b), ERR_OK);
    cr_assert_eq(cmd_decode(b.data, b.len, &out), ERR_OK);
    cr_assert_eq(out.op.vlen, 0);
    buf_free(&b);
}

Test(cmd, malformed_commands_are_refused)
{
    struct buf b = BUF_INIT;
    struct cmd in = put_cmd("key", "v"), out;
    cmd_encode(&in, &b);
    /* every truncation of the header or key */
    for (size_t n = 0; n < CMD_HEADER + 3; n++)
        cr_assert_eq(cmd_decode(b.data, n, &out), ERR_CORRUPT, "truncated to %zu accepted", n);
    uint8_t copy[64];
    memcpy(copy, b.data, b.len);
    copy[0] = 3; /* unknown format */
    cr_assert_eq(cmd_decode(copy, b.len, &out), ERR_CORRUPT);
    copy[0] = 1; /* format 1 (never released) */
    cr_assert_eq(cmd_decode(copy, b.len, &out), ERR_CORRUPT);
    memcpy(copy, b.data, b.len);
    copy[1] = 3; /* unknown op */
    cr_assert_eq(cmd_decode(copy, b.len, &out), ERR_CORRUPT);
    memcpy(copy, b.data, b.len);
    put_be32(copy + 42, 0xffffffffu); /* key longer than the entry */
    cr_assert_eq(cmd_decode(copy, b.len, &out), ERR_CORRUPT);
    put_be32(copy + 42, 0); /* empty key */
    cr_assert_eq(cmd_decode(copy, b.len, &out), ERR_CORRUPT);
    memcpy(copy, b.data, b.len);
    copy[1] = SM_OP_DELETE; /* a delete carrying a value */
    cr_assert_eq(cmd_decode(copy, b.len, &out), ERR_CORRUPT);
    buf_free(&b);
}

Test(cmd, the_format_2_layout_is_fixed)
{
    /* The bytes every member decodes: a change here is a log format change. */
    struct buf b = BUF_INIT;
    struct cmd in = {.op = {.kind = SM_OP_DELETE, .key = (const uint8_t *)"k", .klen = 1,
                            .lease = 0x0303030303030303, .client_id = 0x0404040404040404,
                            .seq = 0x0505050505050505, .time_ms = 0x0202020202020202},
                     .lamport = 0x0101010101010101};
    cr_assert_eq(cmd_encode(&in, &b), ERR_OK);
    static const uint8_t want[] = {
        2, 2,                                           /* format, op */
        1, 1, 1, 1, 1, 1, 1, 1,                         /* lamport */
        2, 2, 2, 2, 2, 2, 2, 2,                         /* time_ms */
        3, 3, 3, 3, 3, 3, 3, 3,                         /* lease */
        4, 4, 4, 4, 4, 4, 4, 4,                         /* client_id */
        5, 5, 5, 5, 5, 5, 5, 5,                         /* seq */
        0, 0, 0, 1,                                     /* key length */
        'k'};
    cr_assert_eq(b.len, sizeof want);
    cr_assert_eq(memcmp(b.data, want, sizeof want), 0);
    buf_free(&b);
}

/* A TXN using every field: compares of each kind, puts with and without a
 * lease, deletes, an empty value, and both lists. */
static struct sm_cmp t_cmps[3];
static struct sm_txn_op t_ops[2][3];
static struct sm_txn t_txn;

static struct cmd txn_cmd(void)
{
    t_cmps[0] = (struct sm_cmp){.key = (const uint8_t *)"a", .klen = 1, .field = DDKV_CMP_VALUE,
                                .cmp = DDKV_CMP_EQ, .val = (const uint8_t *)"old", .vlen = 3};
    t_cmps[1] = (struct sm_cmp){.key = (const uint8_t *)"bb", .klen = 2, .field = DDKV_CMP_MOD_REV,
                                .cmp = DDKV_CMP_LT, .num = 0x1122334455667788};
    t_cmps[2] = (struct sm_cmp){.key = (const uint8_t *)"c", .klen = 1, .field = DDKV_CMP_VALUE,
                                .cmp = DDKV_CMP_GT, .val = NULL, .vlen = 0};
    t_ops[0][0] = (struct sm_txn_op){.kind = DDKV_OP_PUT, .key = (const uint8_t *)"a", .klen = 1,
                                     .val = (const uint8_t *)"new", .vlen = 3, .lease = 99};
    t_ops[0][1] = (struct sm_txn_op){.kind = DDKV_OP_DELETE, .key = (const uint8_t *)"bb", .klen = 2};
    t_ops[0][2] = (struct sm_txn_op){.kind = DDKV_OP_PUT, .key = (const uint8_t *)"e", .klen = 1};
    t_ops[1][0] = (struct sm_txn_op){.kind = DDKV_OP_PUT, .key = (const uint8_t *)"fail", .klen = 4,
                                     .val = (const uint8_t *)"1", .vlen = 1};
    t_txn = (struct sm_txn){.cmps = t_cmps, .ncmp = 3, .ops = {t_ops[0], t_ops[1]}, .nops = {3, 1}};
    struct cmd c = {.op = {.kind = SM_OP_TXN, .txn = &t_txn, .client_id = 5, .seq = 6, .time_ms = 7},
                    .lamport = 8};
    return c;
}

static struct cmd dec; /* large: not on the stack */

Test(cmd, a_txn_round_trips_every_field)
{
    struct buf b = BUF_INIT;
    struct cmd in = txn_cmd();
    cr_assert_eq(cmd_encode(&in, &b), ERR_OK);
    cr_assert_eq(cmd_decode(b.data, b.len, &dec), ERR_OK);
    cr_assert_eq(dec.op.kind, SM_OP_TXN);
    cr_assert_eq(dec.lamport, 8);
    cr_assert_eq(dec.op.client_id, 5);
    cr_assert_eq(dec.op.seq, 6);
    cr_assert_eq(dec.op.time_ms, 7);
    const struct sm_txn *t = dec.op.txn;
    cr_assert_eq(t, &dec.txn);
    cr_assert_eq(t->ncmp, 3);
    cr_assert_eq(t->nops[0], 3);
    cr_assert_eq(t->nops[1], 1);
    for (size_t i = 0; i < 3; i++) {
        const struct sm_cmp *x = &t->cmps[i], *y = &t_cmps[i];
        cr_assert_eq(x->field, y->field);
        cr_assert_eq(x->cmp, y->cmp);
        cr_assert(x->klen == y->klen && memcmp(x->key, y->key, x->klen) == 0);
        cr_assert_eq(x->vlen, y->vlen);
        cr_assert(x->vlen == 0 || memcmp(x->val, y->val, x->vlen) == 0);
        cr_assert_eq(x->num, y->num);
    }
    for (int l = 0; l < 2; l++) {
        for (size_t i = 0; i < t->nops[l]; i++) {
            const struct sm_txn_op *x = &t->ops[l][i], *y = &t_ops[l][i];
            cr_assert_eq(x->kind, y->kind);
            cr_assert(x->klen == y->klen && memcmp(x->key, y->key, x->klen) == 0);
            cr_assert_eq(x->vlen, y->vlen);
            cr_assert(x->vlen == 0 || memcmp(x->val, y->val, x->vlen) == 0);
            cr_assert_eq(x->lease, y->lease);
        }
    }
    /* Re-encoding the decoded command gives the same bytes. */
    struct buf b2 = BUF_INIT;
    cr_assert_eq(cmd_encode(&dec, &b2), ERR_OK);
    cr_assert(b2.len == b.len && memcmp(b2.data, b.data, b.len) == 0);
    buf_free(&b);
    buf_free(&b2);
}

Test(cmd, an_empty_txn_and_full_lists_round_trip)
{
    struct buf b = BUF_INIT;
    struct sm_txn empty = {0};
    struct cmd in = {.op = {.kind = SM_OP_TXN, .txn = &empty}};
    cr_assert_eq(cmd_encode(&in, &b), ERR_OK);
    cr_assert_eq(b.len, CMD_TXN_HEADER);
    cr_assert_eq(cmd_decode(b.data, b.len, &dec), ERR_OK);
    cr_assert(dec.op.txn->ncmp == 0 && dec.op.txn->nops[0] == 0 && dec.op.txn->nops[1] == 0);
    static struct sm_cmp cmps[SM_TXN_MAX];
    static struct sm_txn_op ops[SM_TXN_MAX];
    static char keys[SM_TXN_MAX][8];
    for (size_t i = 0; i < SM_TXN_MAX; i++) {
        snprintf(keys[i], sizeof keys[i], "k%zu", i);
        cmps[i] = (struct sm_cmp){.key = (const uint8_t *)keys[i], .klen = strlen(keys[i]),
                                  .field = DDKV_CMP_VERSION, .cmp = DDKV_CMP_EQ, .num = i};
        ops[i] = (struct sm_txn_op){.kind = DDKV_OP_PUT, .key = (const uint8_t *)keys[i],
                                    .klen = strlen(keys[i]), .val = (const uint8_t *)"v", .vlen = 1};
    }
    struct sm_txn full = {.cmps = cmps, .ncmp = SM_TXN_MAX, .ops = {ops, ops}, .nops = {SM_TXN_MAX, SM_TXN_MAX}};
    in.op.txn = &full;
    buf_reset(&b);
    cr_assert_eq(cmd_encode(&in, &b), ERR_OK);
    cr_assert_eq(cmd_decode(b.data, b.len, &dec), ERR_OK);
    cr_assert_eq(dec.op.txn->ncmp, SM_TXN_MAX);
    cr_assert_eq(dec.op.txn->nops[1], SM_TXN_MAX);
    cr_assert_eq(dec.op.txn->cmps[127].num, 127);
    cr_assert(dec.op.txn->ops[1][127].klen == 4 && memcmp(dec.op.txn->ops[1][127].key, "k127", 4) == 0);
    /* One more is refused by the encoder, and by the decoder if forged. */
    full.ncmp = SM_TXN_MAX + 1;
    size_t len = b.len;
    cr_assert_eq(cmd_encode(&in, &b), ERR_BAD_INPUT);
    cr_assert_eq(b.len, len, "a refused encoding appends nothing");
    b.data[42] = 0;
    b.data[43] = SM_TXN_MAX + 1;
    cr_assert_eq(cmd_decode(b.data, b.len, &dec), ERR_CORRUPT);
    buf_free(&b);
}

Test(cmd, leases_round_trip)
{
    struct buf b = BUF_INIT;
    struct cmd in = {.op = {.kind = SM_OP_LEASE_GRANT, .lease_ttl_ms = 30000, .client_id = 3, .seq = 4},
                     .lamport = 10};
    cr_assert_eq(cmd_encode(&in, &b), ERR_OK);
    cr_assert_eq(b.len, CMD_PREFIX);
    cr_assert_eq(cmd_decode(b.data, b.len, &dec), ERR_OK);
    cr_assert_eq(dec.op.kind, SM_OP_LEASE_GRANT);
    cr_assert_eq(dec.op.lease_ttl_ms, 30000);
    cr_assert_eq(dec.op.lease, 0);
    cr_assert_eq(dec.op.client_id, 3);
    cr_assert_eq(dec.op.seq, 4);
    cr_assert_eq(dec.lamport, 10);
    for (size_t n = 0; n < b.len; n++)
        cr_assert_eq(cmd_decode(b.data, n, &dec), ERR_CORRUPT);
    uint8_t longer[CMD_PREFIX + 1];
    memcpy(longer, b.data, b.len);
    longer[CMD_PREFIX] = 0;
    cr_assert_eq(cmd_decode(longer, sizeof longer, &dec), ERR_CORRUPT, "trailing bytes");
    buf_reset(&b);
    in = (struct cmd){.op = {.kind = SM_OP_LEASE_REVOKE, .lease = 12345}, .lamport = 11};
    cr_assert_eq(cmd_encode(&in, &b), ERR_OK);
    cr_assert_eq(cmd_decode(b.data, b.len, &dec), ERR_OK);
    cr_assert_eq(dec.op.kind, SM_OP_LEASE_REVOKE);
    cr_assert_eq(dec.op.lease, 12345);
    cr_assert_eq(dec.op.lease_ttl_ms, 0);
    buf_free(&b);
}

Test(cmd, every_truncation_and_corruption_of_a_txn_is_refused)
{
    struct buf b = BUF_INIT;
    struct cmd in = txn_cmd();
    cr_assert_eq(cmd_encode(&in, &b), ERR_OK);
    /* Every proper prefix, each copied into a buffer of exactly its size so
     * ASan sees any read past the end. */
    for (size_t n = 0; n < b.len; n++) {
        uint8_t *p = malloc(n ? n : 1);
        memcpy(p, b.data, n);
        cr_assert_eq(cmd_decode(p, n, &dec), ERR_CORRUPT, "truncated to %zu of %zu accepted", n, b.len);
        free(p);
    }
    /* Trailing bytes. */
    uint8_t *p = malloc(b.len + 1);
    memcpy(p, b.data, b.len);
    p[b.len] = 0;
    cr_assert_eq(cmd_decode(p, b.len + 1, &dec), ERR_CORRUPT);
    free(p);
    /* Every single byte changed to every value: refused, or a command that
     * re-encodes to exactly those bytes (no crash, no read out of bounds). */
    p = malloc(b.len);
    struct buf re = BUF_INIT;
    size_t refused = 0;
    for (size_t i = 0; i < b.len; i++) {
        for (unsigned v = 0; v < 256; v++) {
            memcpy(p, b.data, b.len);
            p[i] = (uint8_t)v;
            if (cmd_decode(p, b.len, &dec) != ERR_OK) {
                refused++;
                continue;
            }
            buf_reset(&re);
            cr_assert_eq(cmd_encode(&dec, &re), ERR_OK);
            cr_assert(re.len == b.len && memcmp(re.data, p, b.len) == 0, "byte %zu = %u re-encodes differently", i, v);
        }
    }
    cr_assert_gt(refused, 0);
    free(p);
    buf_free(&re);
    /* Specific refusals, at known offsets. */
    uint8_t *q = malloc(b.len);
#define FRESH() memcpy(q, b.data, b.len)
    FRESH();
    put_be64(q + 18, 1); /* a txn carries no lease in the prefix */
    cr_assert_eq(cmd_decode(q, b.len, &dec), ERR_CORRUPT);
    FRESH();
    q[42] = 1; /* 256 + 3 compares */
    cr_assert_eq(cmd_decode(q, b.len, &dec), ERR_CORRUPT);
    FRESH();
    q[45] = 0x81; /* 129 success ops */
    cr_assert_eq(cmd_decode(q, b.len, &dec), ERR_CORRUPT);
    FRESH();
    q[47] = 0; /* one op fewer than present: trailing bytes */
    cr_assert_eq(cmd_decode(q, b.len, &dec), ERR_CORRUPT);
    FRESH();
    q[47] = 2; /* one more than present: runs past the end */
    cr_assert_eq(cmd_decode(q, b.len, &dec), ERR_CORRUPT);
    FRESH();
    q[48] = 4; /* unknown field */
    cr_assert_eq(cmd_decode(q, b.len, &dec), ERR_CORRUPT);
    FRESH();
    q[49] = 4; /* unknown cmp */
    cr_assert_eq(cmd_decode(q, b.len, &dec), ERR_CORRUPT);
    FRESH();
    put_be32(q + 50, 0); /* empty compare key */
    cr_assert_eq(cmd_decode(q, b.len, &dec), ERR_CORRUPT);
    FRESH();
    put_be32(q + 50, 0xffffffffu); /* key past the end */
    cr_assert_eq(cmd_decode(q, b.len, &dec), ERR_CORRUPT);
    FRESH();
    put_be32(q + 55, 0xfffffff0u); /* value past the end */
    cr_assert_eq(cmd_decode(q, b.len, &dec), ERR_CORRUPT);
    /* The first operation starts after the compares: 48 + (2+4+1+4+3) +
     * (2+4+2+8) + (2+4+1+4+0) = 48 + 14 + 16 + 11 = 89. */
    FRESH();
    cr_assert_eq(q[89], DDKV_OP_PUT);
    q[89] = 3; /* unknown op kind */
    cr_assert_eq(cmd_decode(q, b.len, &dec), ERR_CORRUPT);
    FRESH();
    q[89] = 0;
    cr_assert_eq(cmd_decode(q, b.len, &dec), ERR_CORRUPT);
    free(q);
#undef FRESH
    /* The encoder refuses what the decoder would. */
    struct buf x = BUF_INIT;
    t_cmps[0].field = 9;
    cr_assert_eq(cmd_encode(&in, &x), ERR_BAD_INPUT);
    in = txn_cmd();
    t_ops[1][0].kind = 3;
    cr_assert_eq(cmd_encode(&in, &x), ERR_BAD_INPUT);
    in = txn_cmd();
    t_ops[0][1].klen = 0;
    cr_assert_eq(cmd_encode(&in, &x), ERR_BAD_INPUT);
    in = txn_cmd();
    in.op.txn = NULL;
    cr_assert_eq(cmd_encode(&in, &x), ERR_BAD_INPUT);
    struct cmd put = put_cmd("", "v");
    cr_assert_eq(cmd_encode(&put, &x), ERR_BAD_INPUT);
    cr_assert_eq(x.len, 0);
    buf_free(&x);
    buf_free(&b);
}

Test(cmd, the_txn_layout_is_fixed)
{
    static const struct sm_cmp cmps[] = {
        {.key = (const uint8_t *)"k", .klen = 1, .field = DDKV_CMP_VERSION, .cmp = DDKV_CMP_EQ, .num = 0},
        {.key = (const uint8_t *)"k", .klen = 1, .field = DDKV_CMP_VALUE, .cmp = DDKV_CMP_NE,
         .val = (const uint8_t *)"x", .vlen = 1}};
    static const struct sm_txn_op ok[] = {
        {.kind = DDKV_OP_PUT, .key = (const uint8_t *)"k", .klen = 1, .val = (const uint8_t *)"v", .vlen = 1,
         .lease = 0x0707070707070707}};
    static const struct sm_txn_op ko[] = {{.kind = DDKV_OP_DELETE, .key = (const uint8_t *)"j", .klen = 1}};
    struct sm_txn t = {.cmps = cmps, .ncmp = 2, .ops = {ok, ko}, .nops = {1, 1}};
    struct cmd in = {.op = {.kind = SM_OP_TXN, .txn = &t, .client_id = 0x0404040404040404,
                            .seq = 0x0505050505050505, .time_ms = 0x0202020202020202},
                     .lamport = 0x0101010101010101};
    struct buf b = BUF_INIT;
    cr_assert_eq(cmd_encode(&in, &b), ERR_OK);
    static const uint8_t want[] = {
        2, 4,                                           /* format, op txn */
        1, 1, 1, 1, 1, 1, 1, 1,                         /* lamport */
        2, 2, 2, 2, 2, 2, 2, 2,                         /* time_ms */
        0, 0, 0, 0, 0, 0, 0, 0,                         /* arg: 0 */
        4, 4, 4, 4, 4, 4, 4, 4,                         /* client_id */
        5, 5, 5, 5, 5, 5, 5, 5,                         /* seq */
        0, 2, 0, 1, 0, 1,                               /* counts */
        1, 0, 0, 0, 0, 1, 'k', 0, 0, 0, 0, 0, 0, 0, 0,  /* VERSION EQ 0 */
        0, 1, 0, 0, 0, 1, 'k', 0, 0, 0, 1, 'x',         /* VALUE NE "x" */
        1, 0, 0, 0, 1, 'k', 7, 7, 7, 7, 7, 7, 7, 7, 0, 0, 0, 1, 'v', /* put k=v lease */
        2, 0, 0, 0, 1, 'j'};                            /* delete j */
    cr_assert_eq(b.len, sizeof want);
    cr_assert_eq(memcmp(b.data, want, sizeof want), 0);
    buf_reset(&b);
    in = (struct cmd){.op = {.kind = SM_OP_LEASE_GRANT, .lease_ttl_ms = 0x0303030303030303}, .lamport = 1};
    cr_assert_eq(cmd_encode(&in, &b), ERR_OK);
    cr_assert(b.len == 42 && b.data[1] == 5 && b.data[18] == 3 && b.data[25] == 3);
    buf_free(&b);
}

Test(cmd, a_noop_consumes_an_index_and_changes_nothing)
{
    char dir[256];
    cr_assert_eq(harness_tmpdir(dir, sizeof dir, "cmd"), 0);
    struct store *st;
    struct sm sm;
    struct errbuf eb;
    cr_assert_eq(store_open(&st, dir, NULL, &eb), ERR_OK);
    cr_assert_eq(sm_open(&sm, st, &eb), ERR_OK);
    struct sm_result r;
    struct sm_op noop = {.kind = SM_OP_NOOP};
    struct sm_op put = {.kind = SM_OP_PUT, .key = (const uint8_t *)"k", .klen = 1,
                        .val = (const uint8_t *)"v", .vlen = 1};
    cr_assert_eq(sm_stage(&sm, 1, 0, &noop, &r, &eb), ERR_OK);
    cr_assert_eq(r.revision, 0);
    cr_assert_eq(sm_stage(&sm, 2, 9, &put, &r, &eb), ERR_OK);
    cr_assert_eq(sm_stage(&sm, 3, 0, &noop, &r, &eb), ERR_OK);
    cr_assert_eq(sm_commit(&sm, true, &eb), ERR_OK);
    cr_assert_eq(sm.applied_index, 3);
    cr_assert_eq(sm.revision, 2, "a no-op is not a revision");
    cr_assert_eq(sm.applied_lamport, 9, "a no-op does not move the applied Lamport time");
    cr_assert_eq(sm.keys, 1);
    sm_close(&sm);
    store_close(st);
    harness_rmrf(dir);
}

/* A grant carries its owner (the granting user) after the prefix; a grant
 * without one is the prefix alone, which is also how every grant written
 * before owners looks, so old log entries still decode (owner none). */
Test(cmd, a_grant_carries_its_owner_and_an_old_grant_decodes_without_one)
{
    struct buf b = BUF_INIT;
    struct cmd in = {.op = {.kind = SM_OP_LEASE_GRANT, .lease_ttl_ms = 5000, .owner = "carol", .owner_len = 5,
                            .client_id = 1, .seq = 2},
                     .lamport = 7};
    cr_assert_eq(cmd_encode(&in, &b), ERR_OK);
    cr_assert_eq(b.len, CMD_PREFIX + 4 + 5, "the owner follows the prefix with its length");
    cr_assert_eq(get_be32(b.data + CMD_PREFIX), 5);
    cr_assert(!memcmp(b.data + CMD_PREFIX + 4, "carol", 5));
    cr_assert_eq(cmd_decode(b.data, b.len, &dec), ERR_OK);
    cr_assert_eq(dec.op.kind, SM_OP_LEASE_GRANT);
    cr_assert_eq(dec.op.lease_ttl_ms, 5000);
    cr_assert_eq(dec.op.owner_len, 5);
    cr_assert(!memcmp(dec.op.owner, "carol", 5));
    for (size_t n = CMD_PREFIX + 1; n < b.len; n++)
        cr_assert_eq(cmd_decode(b.data, n, &dec), ERR_CORRUPT, "cut at %zu", n);
    /* An empty owner has one encoding: none at all. */
    uint8_t empty[CMD_PREFIX + 4];
    memcpy(empty, b.data, CMD_PREFIX);
    put_be32(empty + CMD_PREFIX, 0);
    cr_assert_eq(cmd_decode(empty, sizeof empty, &dec), ERR_CORRUPT, "an owner of length 0");
    /* Over the user name limit. */
    char big[DDKV_AUTH_NAME_MAX + 1];
    memset(big, 'u', sizeof big);
    in.op.owner = big;
    in.op.owner_len = sizeof big;
    buf_reset(&b);
    cr_assert_eq(cmd_encode(&in, &b), ERR_BAD_INPUT);
    /* A grant as written before owners: the 42 bytes alone. */
    static const uint8_t old[CMD_PREFIX] = {2, 5, 0, 0, 0, 0, 0, 0, 0, 9, 0, 0, 0, 0, 0, 0, 0, 1,
                                            0, 0, 0, 0, 0, 0, 0x75, 0x30, 0, 0, 0, 0, 0, 0, 0, 0,
                                            0, 0, 0, 0, 0, 0, 0, 0};
    cr_assert_eq(cmd_decode(old, sizeof old, &dec), ERR_OK);
    cr_assert_eq(dec.op.kind, SM_OP_LEASE_GRANT);
    cr_assert_eq(dec.op.lease_ttl_ms, 30000);
    cr_assert_eq(dec.op.owner_len, 0);
    cr_assert_null(dec.op.owner);
    buf_free(&b);
}

Test(cmd, a_write_admitted_under_an_auth_rev_travels_in_an_envelope)
{
    struct buf b = BUF_INIT;
    struct cmd in = put_cmd("key", "v"), out;
    in.op.auth_checked = true;
    in.op.auth_rev = 0x0102030405060708;
    cr_assert_eq(cmd_encode(&in, &b), ERR_OK);
    cr_assert_eq(b.len, CMD_AUTH_ENVELOPE + CMD_HEADER + 3 + 1);
    cr_assert_eq(b.data[0], CMD_FORMAT_AUTH_REV);
    cr_assert_eq(b.data[CMD_AUTH_ENVELOPE], CMD_FORMAT, "the format-2 command follows the envelope");
    cr_assert_eq(cmd_decode(b.data, b.len, &out), ERR_OK);
    cr_assert(out.op.auth_checked);
    cr_assert_eq(out.op.auth_rev, 0x0102030405060708);
    cr_assert(out.op.klen == 3 && memcmp(out.op.key, "key", 3) == 0);
    cr_assert_eq(out.op.seq, 42);
    /* Without the envelope: format 2, not checked. */
    struct buf b2 = BUF_INIT;
    in.op.auth_checked = false;
    cr_assert_eq(cmd_encode(&in, &b2), ERR_OK);
    cr_assert_eq(cmd_decode(b2.data, b2.len, &out), ERR_OK);
    cr_assert(!out.op.auth_checked);
    /* Refused: a truncated envelope, an envelope in an envelope, a bad inner format. */
    cr_assert_eq(cmd_decode(b.data, CMD_AUTH_ENVELOPE - 1, &out), ERR_CORRUPT);
    cr_assert_eq(cmd_decode(b.data, CMD_AUTH_ENVELOPE + CMD_PREFIX - 1, &out), ERR_CORRUPT);
    b.data[CMD_AUTH_ENVELOPE] = CMD_FORMAT_AUTH_REV;
    cr_assert_eq(cmd_decode(b.data, b.len, &out), ERR_CORRUPT);
    buf_free(&b);
    buf_free(&b2);
}
