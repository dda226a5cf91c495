/* Time sources for the I/O layers (never used by src/consensus). */
#ifndef DDKV_UTIL_CLOCK_H
#define DDKV_UTIL_CLOCK_H

#include <stdint.h>

uint64_t clock_mono_ns(void);
uint64_t clock_mono_ms(void);
uint64_t clock_wall_ms(void);

#endif
