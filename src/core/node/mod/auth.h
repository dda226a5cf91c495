/* The auth module (mod/auth.c): what other modules ask of it. */
#ifndef DDKV_NODE_MOD_AUTH_H
#define DDKV_NODE_MOD_AUTH_H

struct node;
struct conn;

/* The user c acts as (borrowed from the applied auth state until the next
 * apply), or NULL: none (auth.c). */
const char *auth_conn_user(struct node *n, const struct conn *c);

#endif
