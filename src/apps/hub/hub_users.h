/* /api/users: the cluster's users and roles from the page, as the person
 * signed in (the cluster lets root alone do it).
 *   GET  /api/users                    {"enabled", "users": [{name, roles}], "roles": [{name, grants}]}
 *   POST /api/users                    {"user", "password"}: add a user
 *   POST /api/users/NAME/remove        remove a user
 *   POST /api/users/NAME/grant         {"role"}: give NAME a role
 *   POST /api/users/NAME/revoke        {"role"}: take it back */
#ifndef DDKV_HUB_USERS_H
#define DDKV_HUB_USERS_H

#include <stddef.h>

#include "ddkv/ddkv.h"

enum hubusers_op { HUBUSERS_LIST, HUBUSERS_ADD, HUBUSERS_REMOVE, HUBUSERS_GRANT, HUBUSERS_REVOKE };

/* The JSON reply (malloc; NULL: out of memory) and its HTTP status. */
char *hubusers_handle(ddkv_client *c, enum hubusers_op op, const char *name, const char *body, size_t n, int *status);

#endif
