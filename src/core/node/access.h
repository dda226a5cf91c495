/* Who may send which client message: the permission table.
 *
 * One rule per client message type, in one table (access.c), so the whole
 * policy is read in one place. When auth is enabled every client frame is
 * checked against it by the server before its handler runs (conn.c), on
 * whichever member received it, against that member's applied auth state; a
 * refused request reaches no handler and so changes nothing. A client type
 * with no rule is a start-up error (access_rules_cover).
 *
 *   PING, HELLO, AUTH, AUTH_STATUS          open (health checks, versions, logging in)
 *   STATUS                                  any authenticated user
 *   READ                                    read on the key
 *   WRITE, DELETE                           readwrite on the key (and a
 *                                           WRITE's lease is the user's)
 *   LIST, WATCH                             read on the whole prefix range
 *   DELETE_PREFIX                           readwrite on the whole prefix range
 *   TXN                                     read on every compare's key,
 *                                           readwrite on every operation's key
 *                                           (both branches), every put's lease
 *                                           the user's
 *   LEASE_GRANT                             readwrite on some prefix
 *   LEASE_KEEPALIVE                         that, and the lease is the user's
 *                                           (its owner: who granted it)
 *   LEASE_REVOKE                            that, and readwrite on every key
 *                                           attached to the lease (its revoke
 *                                           deletes them)
 * A lease without an owner (granted with no identity, or before owners)
 * is root's alone. A lease unknown here whose id is not applied here yet is
 * refused UNAVAILABLE (it may be another user's grant on its way).
 *   JOB_PUT                                 readwrite on jobs/, jobq/, jobc/,
 *                                           read on the input's prefix
 *   JOB_CLAIM, JOB_NACK, JOB_EXTEND         readwrite on jobs/, jobq/, jobc/
 *   JOB_ACK                                 that, and readwrite on the job's
 *                                           result key jobresult/<id> (the
 *                                           only key an ack may name)
 *   MEMBER_*, LEADER_TRANSFER, AUTH_CHANGE,
 *   AUTH_LIST                               the root role
 * The root role passes every check. With auth disabled everything is open. */
#ifndef DDKV_NODE_ACCESS_H
#define DDKV_NODE_ACCESS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "kv/authdb.h"
#include "proto/msg.h"

struct sm;

/* Whether user (NULL: the connection has no identity) may send m, by db (sm
 * is read only for a LEASE_REVOKE's attached keys; may be NULL otherwise).
 * Returns 0 if so, else the wire error (UNAUTHENTICATED, PERMISSION_DENIED,
 * or BAD_REQUEST when m is too malformed to tell what it touches, INTERNAL
 * on a storage error) with why[0..whylen) saying what was refused. */
uint32_t access_check(const struct auth_db *db, struct sm *sm, const char *user, const struct msg *m, char *why,
                      size_t whylen);

/* Whether the table has a rule for this client message type. */
bool access_has_rule(uint32_t type);

#endif
