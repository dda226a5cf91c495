/* The Raft driver's start-up and storage recovery (replica.c), beyond the
 * driver interface in server.h. */
#ifndef DDKV_NODE_REPLICA_H
#define DDKV_NODE_REPLICA_H

#include "util/err.h"

struct node;

/* Load the state machine from the store the way start-up does: finish a
 * snapshot install a crash interrupted (snap_install_recover), open the state
 * machine (applied index, Lamport time, revision, sessions), point its events
 * at the watch history, and raise the clock to its applied Lamport time. Used
 * at start (node_run) and when a node fenced by a full disk rejoins. n->sm is
 * replaced only on success; eb says which step failed. */
int replica_load_state(struct node *n, struct errbuf *eb);

#endif
