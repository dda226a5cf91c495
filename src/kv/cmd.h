/* Commands: what a kv write becomes inside a Raft log entry.
 *
 * The leader encodes a client's WRITE or DELETE, with the Lamport time it gave
 * it and its wall-clock time, into a NORMAL entry; every member decodes the
 * same bytes at apply time, so the state machine is a pure function of the log.
 * Layout (format 2, big-endian):
 *   0   u8   format (2)
 *   1   u8   op: 1 put, 2 delete
 *   2   u64  lamport   time the leader gave the change
 *   10  u64  time_ms   the leader's wall clock (ms since the epoch) at proposal;
 *                      drives client-session expiry (sm.h)
 *   18  u64  lease     lease id, 0 for none
 *   26  u64  client_id (client, seq) identify a retried write (exactly once);
 *   34  u64  seq       client_id 0 means no session
 *   42  u32  key length k (> 0)
 *   46  k    key
 *   46+k     value (the rest; empty for delete)
 * Format 1 (no time_ms) was never released and is refused as corrupt.
 * An empty entry is a leader's no-op; CONF entries are not commands. */
#ifndef DDKV_KV_CMD_H
#define DDKV_KV_CMD_H

#include <stddef.h>
#include <stdint.h>

#include "kv/sm.h"
#include "util/buf.h"

#define CMD_FORMAT 2
#define CMD_HEADER 46

struct cmd {
    struct sm_op op; /* key and val borrowed from the decoded bytes; client_id,
                        seq and time_ms travel in op too */
    uint64_t lamport;
};

/* Append the encoding of c to b. ERR_NOMEM or ERR_OK. */
int cmd_encode(const struct cmd *c, struct buf *b);
/* Decode p[0..n); ERR_CORRUPT if the bytes are not a well-formed command of
 * this format. */
int cmd_decode(const uint8_t *p, size_t n, struct cmd *c);

#endif
