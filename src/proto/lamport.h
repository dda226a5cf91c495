/* The Lamport clock: tick on send, max(local, received) + 1 on receive.
 *
 * Overflow safety: a received time at or above DDKV_LAMPORT_MAX (2^62) is
 * refused as bad input, and a caller may also bound how far ahead of the local
 * clock an untrusted sender may push it. With that, local + 1 cannot wrap for
 * 2^62 events (centuries at any rate a node can reach), and every comparison is
 * a plain unsigned comparison of values below 2^63. */
#ifndef DDKV_PROTO_LAMPORT_H
#define DDKV_PROTO_LAMPORT_H

#include <stdint.h>

/* How far ahead of the node a client's message may claim to be. A real client
 * only carries times it learned from the cluster plus its own ticks; this caps
 * how fast a hostile one can burn the clock's range. */
#define LAMPORT_CLIENT_MAX_AHEAD (UINT64_C(1) << 32)

struct lamport {
    uint64_t now;
};

/* Advance for a local event or a send; returns the new time. */
uint64_t lamport_tick(struct lamport *c);
/* Apply the receive rule. max_ahead = 0 means no bound beyond DDKV_LAMPORT_MAX.
 * Returns ERR_OK, or ERR_BAD_INPUT (clock unchanged) if received is out of range. */
int lamport_observe(struct lamport *c, uint64_t received, uint64_t max_ahead);
/* -1, 0, 1 as a is before, equal to, after b. */
int lamport_cmp(uint64_t a, uint64_t b);

#endif
