/* Commands: what a kv write becomes inside a Raft log entry.
 *
 * The leader encodes a client's WRITE or DELETE, with the Lamport time it gave
 * it, into a NORMAL entry; every member decodes the same bytes at apply time,
 * so the state machine is a pure function of the log. Layout (big-endian):
 *   0   u8   format (1)
 *   1   u8   op: 1 put, 2 delete
 *   2   u64  lamport   time the leader gave the change
 *   10  u64  lease     lease id, 0 for none
 *   18  u64  client_id (client, seq) identify a retried write (exactly once)
 *   26  u64  seq
 *   34  u32  key length k
 *   38  k    key
 *   38+k     value (the rest; empty for delete)
 * An empty entry is a leader's no-op; CONF entries are not commands. */
#ifndef DDKV_KV_CMD_H
#define DDKV_KV_CMD_H

#include <stddef.h>
#include <stdint.h>

#include "kv/sm.h"
#include "util/buf.h"

#define CMD_FORMAT 1
#define CMD_HEADER 38

struct cmd {
    struct sm_op op;   /* key and val borrowed from the decoded bytes */
    uint64_t lamport;
    uint64_t client_id;
    uint64_t seq;
};

/* Append the encoding of c to b. ERR_NOMEM or ERR_OK. */
int cmd_encode(const struct cmd *c, struct buf *b);
/* Decode p[0..n); ERR_CORRUPT if the bytes are not a well-formed command. */
int cmd_decode(const uint8_t *p, size_t n, struct cmd *c);

#endif
