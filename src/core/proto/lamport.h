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
 * paid from a token bucket. There are two: clients' (2^32, refilled at 2^24/s)
 * and members' (2^40, refilled at 2^29/s: authenticated peers, log entries,
 * snapshot images). A client frame that costs more than its bucket holds, or
 * more than LAMPORT_CLIENT_MAX_AHEAD, is refused and moves nothing; a member's
 * advance is clamped to what its bucket holds instead, so a member's message
 * is never dropped for its time. Over any T seconds outside input moves a
 * node's clock by at most
 *   clients: 2^32 + 2^24 * T      members: 2^40 + 2^29 * T    (plus +1 per event)
 * so from 0, reaching 2^62 takes 2^62 / (2^29 + 2^24) s ~ 264 years of
 * uninterrupted attack even by a faulty member, and 2^38 s by clients alone;
 * clients alone need 16 hours to pass 10^12. Legitimate advances stay far
 * below: a client only carries times it learned from the cluster (members'
 * clocks differ by about a heartbeat's events, < 10^6 at 10^6 events/s), and
 * members' clocks differ by the events of a partition (the member burst covers
 * 12 days of partition at 10^6 events/s; its refill is 500 times that rate). */
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
/* The buckets' capacities and refills. */
#define LAMPORT_CLIENT_BURST (UINT64_C(1) << 32)
#define LAMPORT_CLIENT_REFILL_PER_S (UINT64_C(1) << 24)
#define LAMPORT_MEMBER_BURST (UINT64_C(1) << 40)
#define LAMPORT_MEMBER_REFILL_PER_S (UINT64_C(1) << 29)

struct lamport_bucket {
    uint64_t tokens;
    uint64_t last_ms;     /* when tokens was last refilled (monotonic ms) */
    uint64_t burst, refill_per_s;
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
