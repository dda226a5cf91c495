/* Log-linear histogram arithmetic. */
#include "util/hist.h"

#include <string.h>

#include "util/err.h"

void hist_init(struct hist *h)
{
    memset(h, 0, sizeof *h);
    h->min = UINT64_MAX;
}

uint32_t hist_bucket(uint64_t v)
{
    if (v < HIST_SUB)
        return (uint32_t)v;
    unsigned e = 63u - (unsigned)__builtin_clzll(v); /* e >= HIST_SUB_BITS */
    unsigned shift = e - HIST_SUB_BITS;
    uint32_t sub = (uint32_t)(v >> shift) & (HIST_SUB - 1);
    return (e - HIST_SUB_BITS + 1) * HIST_SUB + sub;
}

uint64_t hist_bucket_upper(uint32_t b)
{
    ASSERT(b < HIST_BUCKETS);
    if (b < HIST_SUB)
        return b;
    unsigned e = b / HIST_SUB + HIST_SUB_BITS - 1;
    unsigned shift = e - HIST_SUB_BITS;
    uint64_t lower = (uint64_t)(HIST_SUB + b % HIST_SUB) << shift;
    return lower + ((UINT64_C(1) << shift) - 1);
}

void hist_record(struct hist *h, uint64_t v)
{
    h->counts[hist_bucket(v)]++;
    h->total++;
    h->sum += v;
    if (v < h->min)
        h->min = v;
    if (v > h->max)
        h->max = v;
}

void hist_merge(struct hist *into, const struct hist *from)
{
    for (uint32_t i = 0; i < HIST_BUCKETS; i++)
        into->counts[i] += from->counts[i];
    into->total += from->total;
    into->sum += from->sum;
    if (from->min < into->min)
        into->min = from->min;
    if (from->max > into->max)
        into->max = from->max;
}

uint64_t hist_quantile(const struct hist *h, double q)
{
    if (h->total == 0)
        return 0;
    if (q <= 0)
        return h->min;
    if (q > 1)
        q = 1;
    /* The smallest value with at least ceil(q * total) values at or below it. */
    uint64_t rank = (uint64_t)(q * (double)h->total);
    if ((double)rank < q * (double)h->total)
        rank++;
    if (rank == 0)
        rank = 1;
    uint64_t seen = 0;
    for (uint32_t i = 0; i < HIST_BUCKETS; i++) {
        seen += h->counts[i];
        if (seen >= rank) {
            uint64_t up = hist_bucket_upper(i);
            return up < h->max ? up : h->max;
        }
    }
    return h->max;
}

uint64_t hist_count_le(const struct hist *h, uint64_t v)
{
    uint32_t last = hist_bucket(v);
    uint64_t n = 0;
    for (uint32_t i = 0; i < last; i++)
        n += h->counts[i];
    /* The bucket holding v counts only if v reaches its upper edge. */
    if (v >= hist_bucket_upper(last))
        n += h->counts[last];
    return n;
}
