/* Owns the commit-time samples behind a member's lag (lag.h). */
#include "node/lag.h"

void lag_note(struct lag *l, uint64_t commit, uint64_t now_ms)
{
    if (commit <= l->known)
        return;
    l->known = commit;
    if (l->count > 0) {
        uint32_t last = (l->start + l->count - 1) % LAG_RING;
        if (now_ms < l->ms[last] + LAG_MIN_SPACING_MS) {
            l->idx[last] = commit; /* merged: these entries count as older than they are */
            return;
        }
    }
    if (l->count == LAG_RING) {
        /* Merge the two oldest: the second takes the first's (older) time. */
        uint32_t second = (l->start + 1) % LAG_RING;
        l->ms[second] = l->ms[l->start];
        l->start = second;
        l->count--;
    }
    uint32_t at = (l->start + l->count) % LAG_RING;
    l->idx[at] = commit;
    l->ms[at] = now_ms;
    l->count++;
}

uint64_t lag_age_ms(const struct lag *l, uint64_t have, uint64_t now_ms)
{
    if (have >= l->known || l->count == 0)
        return 0;
    /* The first sample whose index is above have (indexes increase). */
    uint32_t lo = 0, hi = l->count - 1;
    while (lo < hi) {
        uint32_t mid = lo + (hi - lo) / 2;
        if (l->idx[(l->start + mid) % LAG_RING] > have)
            hi = mid;
        else
            lo = mid + 1;
    }
    uint64_t t = l->ms[(l->start + lo) % LAG_RING];
    return now_ms > t ? now_ms - t : 0;
}

bool lag_within(const struct lag *l, uint64_t have, uint64_t now_ms, uint64_t max_entries,
                uint64_t max_ms)
{
    return lag_entries(l, have) <= max_entries && lag_age_ms(l, have, now_ms) <= max_ms;
}
