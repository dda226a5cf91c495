/* Commands: what a kv write becomes inside a Raft log entry.
 *
 * The leader encodes a client's write (PUT, DELETE, TXN, LEASE_GRANT,
 * LEASE_REVOKE; also its own lease expiry, a LEASE_REVOKE), with the Lamport
 * time it gave it and its wall-clock time, into a NORMAL entry; every member
 * decodes the same bytes at apply time, so the state machine is a pure
 * function of the log. Layout (format 2, big-endian):
 *   0   u8   format (2)
 *   1   u8   op: 1 put, 2 delete, 4 txn, 5 lease grant, 6 lease revoke, 7 auth,
 *            8 member incarnation, 9 cluster version, 10 delete prefix
 *            (the values of enum sm_op_kind; 3, a no-op, is never a command)
 *   2   u64  lamport   time the leader gave the change
 *   10  u64  time_ms   the leader's wall clock (ms since the epoch) at proposal;
 *                      drives client-session expiry (sm.h)
 *   18  u64  arg       put, delete: lease id, 0 for none; txn: 0;
 *                      lease grant: ttl_ms; lease revoke: the lease id;
 *                      auth: the change (enum ddkv_auth_op, 1..11)
 *   26  u64  client_id (client, seq) identify a retried write (exactly once);
 *   34  u64  seq       client_id 0 means no session
 * then, for put and delete:
 *   42  u32  key length k (> 0)
 *   46  k    key
 *   46+k     value (the rest; empty for delete)
 * for delete prefix (since cluster version 0.2; arg: the limit, 1..SM_DELETE_PREFIX_MAX):
 *   42  u32  prefix length p (may be 0: every key), then the prefix, nothing after;
 * for cluster version (since 0.2; arg: the version, major.minor.0, at least
 *          0.2.0; no session): nothing (42 bytes in all);
 * for lease revoke: nothing (42 bytes in all);
 * for lease grant: nothing when it has no owner (as every grant before
 * owners was), else
 *   42  u32  owner length o (1..DDKV_AUTH_NAME_MAX), then the owner's name
 *            (the granting user), and nothing after it;
 * for auth (kv/authdb.h; a password is never in the log, only its hash):
 *   42  u8   perm (enum ddkv_perm, or 0)
 *   43  u32  name length n, then the name
 *   47+n u32 arg length, then the arg, and nothing after it
 * for txn:
 *   42  u16  compares       (each count at most SM_TXN_MAX)
 *   44  u16  on_success operations
 *   46  u16  on_failure operations
 *   48       the compares, then the on_success operations, then the
 *            on_failure ones, and nothing after them:
 *     compare:   u8 field (enum ddkv_cmp_field), u8 cmp (enum ddkv_cmp_op),
 *                u32 key length (> 0), key, then for field VALUE
 *                u32 value length, value; for the others u64 operand
 *     operation: u8 kind (1 put, 2 delete), u32 key length (> 0), key, then
 *                for a put u64 lease (0 none), u32 value length, value
 * Every command has exactly one encoding: cmd_decode refuses anything
 * cmd_encode would not write.
 * Format 1 (no time_ms) was never released and is refused as corrupt.
 * An empty entry is a leader's no-op; CONF entries are not commands. */
#ifndef DDKV_KV_CMD_H
#define DDKV_KV_CMD_H

#include <stddef.h>
#include <stdint.h>

#include "kv/sm.h"
#include "util/buf.h"

#define CMD_FORMAT 2
/* Since cluster version 0.2, a client's write travels in an envelope:
 *   0   u8   format 3
 *   1   u64  auth_rev  the auth state's rev when the leader admitted it (sm.h)
 *   9        the command in format 2
 * (cmd_encode writes it when op.auth_checked, cmd_decode sets auth_checked.) */
#define CMD_FORMAT_AUTH_REV 3
#define CMD_AUTH_ENVELOPE 9
#define CMD_PREFIX 42       /* the part every command has */
#define CMD_HEADER 46       /* put and delete: the prefix and the key length */
#define CMD_TXN_HEADER 48   /* txn: the prefix and the three counts */
#define CMD_AUTH_HEADER 47  /* auth: the prefix, perm and the name length */

/* A decoded command. For a TXN, op.txn points at txn, whose lists point into
 * cmps and ops, whose keys and values point into the decoded bytes: keep
 * both alive (and do not copy the struct) while op is in use. The arrays
 * make it large (about 18.6 KB on LP64): keep it static or on the heap. */
struct cmd {
    struct sm_op op; /* key and val borrowed from the decoded bytes; client_id,
                        seq and time_ms travel in op too */
    uint64_t lamport;
    struct sm_txn txn;
    struct sm_auth auth;
    struct sm_cmp cmps[SM_TXN_MAX];
    struct sm_txn_op ops[2][SM_TXN_MAX];
};

/* Append the encoding of op (with the Lamport time the leader gave it) to b.
 * op->kind is not NOOP. ERR_BAD_INPUT, leaving b as it was, if op could not
 * be decoded again (an empty key, a TXN over SM_TXN_MAX or with an unknown
 * operation kind, field or cmp, a length over u32); else ERR_NOMEM or ERR_OK. */
int cmd_encode_op(const struct sm_op *op, uint64_t lamport, struct buf *b);
/* cmd_encode_op(&c->op, c->lamport, b). */
int cmd_encode(const struct cmd *c, struct buf *b);
/* Decode p[0..n); ERR_CORRUPT if the bytes are not a well-formed command of
 * this format. */
int cmd_decode(const uint8_t *p, size_t n, struct cmd *c);

#endif
