/* Log-entry commands: what the leader encodes every member decodes the same,
 * and malformed bytes are refused, never trusted. */
#include <criterion/criterion.h>
#include <string.h>

#include "harness.h"
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
