/* The admin module (mod/admin.c): PING, STATUS, and the member's health and
 * status that the ops HTTP port serves too. */
#ifndef DDKV_NODE_MOD_ADMIN_H
#define DDKV_NODE_MOD_ADMIN_H

#include <stdbool.h>
#include <stdint.h>

struct node;
struct msg_writer;

/* A member's health (mod/admin.c): healthy = sees a leader, storage takes
 * writes, and within --health-max-lag-entries/-ms of the commit index. */
struct node_health {
    bool healthy, sees_leader;
    uint64_t lag_entries, lag_ms;
};
struct node_health node_health(struct node *n);
bool node_member_lag(struct node *n, uint64_t id, uint64_t *match, uint64_t *entries, uint64_t *ms);
/* True when this node knows a leader (for /health). */
bool node_has_leader(struct node *n);

/* Status as a msgpack map (STATUS_RESULT) and as JSON text (ops HTTP). */
void node_pack_status(struct node *n, struct msg_writer *w);
char *node_status_json(struct node *n); /* caller frees */

#endif
