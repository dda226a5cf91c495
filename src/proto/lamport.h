/* The Lamport clock: tick on send, max(local, received) + 1 on receive, with
 * a bound on how far outside input may move it.
 *
 * Range. No clock holds or hands out a time at or above DDKV_LAMPORT_MAX
 * (2^62): a tick at LAMPORT_CEIL (2^62 - 1) stays there (the clock saturates:
 * order information is lost, progress is not), and a received time at or above
 * 2^62 is out of range. Every comparison is then a plain unsigned comparison of
 * values below 2^63.
 *
 * Budget (a node's clock only; see lamport_budget_init). The part of an
 * external advance beyond +1, i.e. received - local when received > local, is
 * paid from a token bucket: LAMPORT_BURST tokens, refilled at
 * LAMPORT_REFILL_PER_S per second. There are two buckets: one for client
 * frames, which are refused (clock unchanged) when they cost more than it holds
 * or more than LAMPORT_CLIENT_MAX_AHEAD, and one for members (authenticated
 * peers, and the entries of the log), whose advance is clamped to what the
 * bucket holds instead, so a message is never dropped for its time. Over any
 * T seconds outside input moves a node's clock by at most
 *   2 * (2^40 + 2^29 * T) = 2^41 + 2^30 * T    (plus +1 per event)
 * so from 0, reaching 2^62 takes (2^62 - 2^41) / 2^30 s ~ 2^32 s ~ 136 years
 * of uninterrupted attack, while legitimate advances (clocks of one cluster
 * stay within the events of a partition of each other; at most ~10^6 events/s)
 * never come near either figure: a burst covers 12 days of a partition at
 * 10^6 events/s, and the refill is 500 times that rate. */
#ifndef DDKV_PROTO_LAMPORT_H
#define DDKV_PROTO_LAMPORT_H

#include <stdbool.h>
#include <stdint.h>

#include "ddkv/wire.h"

/* The highest time a clock holds; ticks saturate here. */
#define LAMPORT_CEIL (DDKV_LAMPORT_MAX - 1)
/* How far ahead of the node one client frame may claim to be, at most. A real
 * client only carries times it learned from the cluster plus its own ticks. */
#define LAMPORT_CLIENT_MAX_AHEAD (UINT64_C(1) << 32)
/* Each bucket's capacity and refill. */
#define LAMPORT_BURST (UINT64_C(1) << 40)
#define LAMPORT_REFILL_PER_S (UINT64_C(1) << 29)

struct lamport_bucket {
    uint64_t tokens;
    uint64_t last_ms; /* when tokens was last refilled (monotonic ms) */
};

struct lamport {
    uint64_t now;
    /* A node's budgets (unused by clients' clocks). */
    bool budgeted;
    struct lamport_bucket client, member;
};

/* Advance for a local event or a send; returns the new time (saturates at
 * LAMPORT_CEIL). */
uint64_t lamport_tick(struct lamport *c);
/* Apply the receive rule, unbudgeted (clients' clocks). max_ahead = 0 means no
 * bound beyond DDKV_LAMPORT_MAX. Returns ERR_OK, or ERR_BAD_INPUT (clock
 * unchanged) if received is out of range. */
int lamport_observe(struct lamport *c, uint64_t received, uint64_t max_ahead);
/* Raise the clock to at least t (clamped to LAMPORT_CEIL), without a tick and
 * without a budget: for times this node itself handed out and stored (its
 * applied state and log at start-up). */
void lamport_raise(struct lamport *c, uint64_t t);
/* Give the clock full budgets as of now_ms (monotonic); the node does this at
 * start. */
void lamport_budget_init(struct lamport *c, uint64_t now_ms);
/* A client frame's time: ERR_OK (observed, paid from the client bucket),
 * ERR_BAD_INPUT (at or above DDKV_LAMPORT_MAX) or ERR_TOO_LARGE (ahead by more
 * than LAMPORT_CLIENT_MAX_AHEAD or than the bucket holds; *allowed, if not
 * NULL, says how far ahead a time may be now). Refused: the clock is unchanged. */
int lamport_admit_client(struct lamport *c, uint64_t received, uint64_t now_ms, uint64_t *allowed);
/* A member's time (an authenticated peer's message, a log entry): never
 * refused. The advance is paid from the member bucket and clamped to what it
 * holds; a time at or above DDKV_LAMPORT_MAX counts as LAMPORT_CEIL. Returns by
 * how much the advance fell short of the receive rule (0: it was applied in full). */
uint64_t lamport_observe_member(struct lamport *c, uint64_t received, uint64_t now_ms);
/* -1, 0, 1 as a is before, equal to, after b. */
int lamport_cmp(uint64_t a, uint64_t b);

#endif
