/* How far behind the cluster's commit a member is, in entries and in time.
 *
 * A node remembers when it first knew of each commit index (a leader: when it
 * committed; a follower: when a heartbeat or append told it), as a ring of
 * (index, time) samples. The time lag of a member that holds entries up to
 * `have` is the age of the oldest committed entry it lacks: now minus the
 * time the node first knew of a commit index above `have`. A member that keeps
 * up under load lags a few milliseconds; one that is stuck lags ever more,
 * with or without new writes. Samples closer than LAG_MIN_SPACING_MS are
 * merged (the older time is kept), and a full ring merges its two oldest, so
 * an age is never under-stated and is exact to LAG_MIN_SPACING_MS for recent
 * entries. No allocation; one per node. */
#ifndef DDKV_NODE_LAG_H
#define DDKV_NODE_LAG_H

#include <stdbool.h>
#include <stdint.h>

#define LAG_RING 1024
#define LAG_MIN_SPACING_MS 20

struct lag {
    uint64_t idx[LAG_RING]; /* commit indexes, increasing from start */
    uint64_t ms[LAG_RING];  /* when each was first known (monotonic ms) */
    uint32_t start, count;
    uint64_t known;         /* the highest commit index known */
};

/* The node knows at now_ms that the cluster's commit index is commit. */
void lag_note(struct lag *l, uint64_t commit, uint64_t now_ms);
/* Age in ms of the oldest known-committed entry above have (0: none lacking). */
uint64_t lag_age_ms(const struct lag *l, uint64_t have, uint64_t now_ms);
/* Entries known committed above have. */
static inline uint64_t lag_entries(const struct lag *l, uint64_t have)
{
    return l->known > have ? l->known - have : 0;
}
/* Whether a member holding entries up to have is within both bounds. */
bool lag_within(const struct lag *l, uint64_t have, uint64_t now_ms, uint64_t max_entries,
                uint64_t max_ms);

#endif
