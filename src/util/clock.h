/* Time sources for the I/O layers (never used by src/consensus). */
#ifndef DDKV_UTIL_CLOCK_H
#define DDKV_UTIL_CLOCK_H

#include <stdint.h>

uint64_t clock_mono_ns(void);
uint64_t clock_mono_ms(void);
uint64_t clock_wall_ms(void);
/* Sleep ms milliseconds (less if a signal interrupts it). */
void clock_sleep_ms(uint64_t ms);

#endif
