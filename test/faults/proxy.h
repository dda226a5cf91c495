/* A fault-injecting TCP proxy for the peer traffic of a test cluster.
 *
 * Every member is told (--peer-addr) that each other member lives at a front
 * port of this proxy, while it really listens elsewhere (--listen-peer-addr).
 * A connection to the front of member B is forwarded to B; the proxy learns
 * who dialled from the PEER_HELLO that opens every peer connection (its name
 * field), so it knows, for each connection, both ends by name.
 *
 * A cut from A to B stops the bytes flowing from A to B on every connection
 * between them, whoever dialled: the proxy stops reading from A's socket, so
 * A's kernel buffers fill as they would behind a dead link, and nothing is
 * dropped from the middle of a stream. Healing lets the held bytes through,
 * late, as TCP retransmission would. Cuts are per direction, so one-way
 * (asymmetric) partitions are expressible.
 *
 * The proxy runs its own libevent loop on its own thread; the calls below are
 * safe from any thread. Everything listens on 127.0.0.1 only. */
#ifndef DDKV_TEST_FAULTS_PROXY_H
#define DDKV_TEST_FAULTS_PROXY_H

#include <stdbool.h>
#include <stdint.h>

struct fproxy;

/* Start the proxy thread. NULL on failure. */
struct fproxy *fproxy_new(void);
/* Stop the thread, close every connection and listener. */
void fproxy_free(struct fproxy *p);

/* A front for member `name` on 127.0.0.1:front_port (0: any; the port is
 * returned), forwarding to 127.0.0.1:target_port. Returns the port or -1. */
int fproxy_front(struct fproxy *p, const char *name, int front_port, int target_port);

/* Member `name` is down (its process was killed): close its front so that
 * dialling it is refused, as dialling a dead process's port is; up again
 * reopens it on the same port. Returns 0 or -1. */
int fproxy_set_down(struct fproxy *p, const char *name, bool down);

/* Cut (or restore) the direction from -> to. */
void fproxy_cut(struct fproxy *p, const char *from, const char *to, bool cut);
/* Restore every direction. */
void fproxy_heal(struct fproxy *p);
/* Is from -> to cut? */
bool fproxy_is_cut(struct fproxy *p, const char *from, const char *to);

struct fproxy_stats {
    uint64_t conns;      /* connections accepted */
    uint64_t identified; /* ... whose hello named the dialler */
    uint64_t bytes;      /* forwarded, both directions */
};
void fproxy_stats(struct fproxy *p, struct fproxy_stats *out);

#endif
