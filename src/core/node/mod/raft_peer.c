/* The raft module: owns the peer message types in the dispatcher and steps
 * the core with each validated one. */
#include "node/node_int.h"

static void raft_peer_step(void *ctx, const struct raft_msg *m)
{
    struct node *n = ctx;
    if (!n->raft || replica_fenced(n))
        return; /* a fenced node takes no part (ARCHITECTURE.md) */
    if (raft_step(n->raft, m) != ERR_OK)
        n->stats.peer_rejected++;
}

static int raft_mod_init(struct node *n, struct errbuf *eb)
{
    for (uint32_t t = RAFT_MSG_TYPE_FIRST; t <= RAFT_MSG_TYPE_LAST; t++) {
        int rc = dispatcher_register_peer(&n->disp, t, "raft", raft_peer_step, n, eb);
        if (rc)
            return rc;
    }
    return ERR_OK;
}

const struct module mod_raft = {.name = "raft", .init = raft_mod_init};
