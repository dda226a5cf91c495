/* A small fast generator for jitter and load generation, never for secrets:
 * xorshift64 (Marsaglia 2003). The state must start non-zero (zero is its one
 * fixed point); rng_seed makes sure of that. */
#ifndef DDKV_UTIL_RNG_H
#define DDKV_UTIL_RNG_H

#include <stdint.h>

static inline uint64_t rng_next(uint64_t *s)
{
    uint64_t x = *s;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    return *s = x;
}

static inline uint64_t rng_seed(uint64_t seed)
{
    return seed ? seed : 0x9e3779b97f4a7c15u;
}

#endif
