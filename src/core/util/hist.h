/* A log-linear latency histogram (HdrHistogram's idea, our code): values below
 * 32 are counted exactly; above, each power of two is split into 32 buckets,
 * so a reported percentile is within 1/32 (3.1%) of the true value. Fixed
 * size (about 15 KiB), no allocation, mergeable; record is a few instructions. */
#ifndef DDKV_UTIL_HIST_H
#define DDKV_UTIL_HIST_H

#include <stdint.h>

#define HIST_SUB_BITS 5
#define HIST_SUB (1u << HIST_SUB_BITS)
#define HIST_BUCKETS ((64 - HIST_SUB_BITS + 1) * HIST_SUB)

struct hist {
    uint64_t counts[HIST_BUCKETS];
    uint64_t total;
    uint64_t sum;   /* wraps after 2^64 ns of recorded time (~584 years) */
    uint64_t min, max;
};

void hist_init(struct hist *h);
void hist_record(struct hist *h, uint64_t v);
void hist_merge(struct hist *into, const struct hist *from);
/* The value at quantile q in [0, 1]: the upper edge of the bucket holding it,
 * capped by the largest value recorded (so q = 1 is exact). 0 if empty. */
uint64_t hist_quantile(const struct hist *h, double q);
/* How many recorded values are <= v (exact when v is a bucket's upper edge,
 * as Prometheus `le` bounds chosen as powers of two minus one are). */
uint64_t hist_count_le(const struct hist *h, uint64_t v);

/* Bucket arithmetic, exposed for tests. */
uint32_t hist_bucket(uint64_t v);
uint64_t hist_bucket_upper(uint32_t b);

#endif
