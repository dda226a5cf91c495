/* The dispatcher: a table from message type to the module that owns it.
 *
 * Modules register their message types at start-up; a type registered twice is
 * a start-up error, and a type nobody registered is answered ERROR BAD_REQUEST
 * by the caller of dispatcher_lookup. Adding a module means adding a module,
 * never editing a switch. */
#ifndef DDKV_NODE_DISPATCH_H
#define DDKV_NODE_DISPATCH_H

#include <stdbool.h>
#include <stdint.h>

#include "ddkv/wire.h"
#include "proto/msg.h"
#include "util/err.h"

struct conn;
struct raft_msg;

/* A handler owns the reply: it answers on c now or later (c stays valid while
 * the handler holds a reference, see conn_ref). m is borrowed for the call. */
typedef void (*dispatch_fn)(void *ctx, struct conn *c, const struct msg *m);

/* A peer-port handler: a validated Raft message from another member (from
 * and to already checked by the transport), borrowed for the call. */
typedef void (*dispatch_peer_fn)(void *ctx, const struct raft_msg *m);

/* A type is owned by one module, as a client type (fn) or a peer type (peer_fn). */
struct dispatch_entry {
    dispatch_fn fn;
    dispatch_peer_fn peer_fn;
    void *ctx;
    const char *module;
};

struct dispatcher {
    struct dispatch_entry table[DDKV_MSG_TYPE_MAX];
};

void dispatcher_init(struct dispatcher *d);
/* ERR_EXISTS if another module (named in eb) already owns type; ERR_BAD_INPUT
 * if type is out of range. */
int dispatcher_register(struct dispatcher *d, uint32_t type, const char *module, dispatch_fn fn,
                        void *ctx, struct errbuf *eb);
/* The same for a type that arrives on the peer port. */
int dispatcher_register_peer(struct dispatcher *d, uint32_t type, const char *module,
                             dispatch_peer_fn fn, void *ctx, struct errbuf *eb);
/* NULL if no module owns type. */
const struct dispatch_entry *dispatcher_lookup(const struct dispatcher *d, uint32_t type);

#endif
