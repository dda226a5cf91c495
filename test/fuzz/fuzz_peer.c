/* Fuzz the peer path: a frame body from another node is decoded as a message,
 * then as a Raft message, and each appended entry as a kv command, exactly as
 * the node will on receipt. Nothing may crash, leak or read out of bounds,
 * and whatever decodes must re-encode to bytes that decode the same. */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "consensus/raft.h"
#include "kv/cmd.h"
#include "proto/msg.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const struct mpcheck_limits peer_limits = {.max_depth = 8, .max_objects = 1u << 16};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct msg wm;
    struct errbuf eb;
    if (msg_decode(&wm, data, size, &peer_limits, &eb) != ERR_OK)
        return 0;
    struct raft_msg m;
    if (raft_msg_decode(&wm, &m) == ERR_OK) {
        for (uint32_t i = 0; i < m.n_entries; i++) {
            const struct raft_entry *e = &m.entries[i];
            struct cmd c;
            if (e->type == RAFT_ENTRY_NORMAL && e->len > 0 && cmd_decode(e->data, e->len, &c) == ERR_OK) {
                /* A decoded command re-encodes to the same bytes. */
                struct buf b = BUF_INIT;
                if (cmd_encode(&c, &b) == ERR_OK && (b.len != e->len || memcmp(b.data, e->data, b.len) != 0))
                    __builtin_trap();
                buf_free(&b);
            }
        }
        /* What decoded re-encodes and decodes to the same message. */
        struct buf out = BUF_INIT;
        if (raft_msg_encode(&m, wm.lamport, &out) == ERR_OK) {
            struct msg wm2;
            struct raft_msg m2;
            if (msg_decode(&wm2, out.data + 4, out.len - 4, &peer_limits, &eb) != ERR_OK)
                __builtin_trap();
            if (raft_msg_decode(&wm2, &m2) != ERR_OK)
                __builtin_trap();
            if (m2.type != m.type || m2.term != m.term || m2.index != m.index ||
                m2.n_entries != m.n_entries || m2.from != m.from || m2.to != m.to)
                __builtin_trap();
            raft_msg_release(&m2);
            msg_free(&wm2);
        }
        buf_free(&out);
        raft_msg_release(&m);
    }
    msg_free(&wm);
    return 0;
}
