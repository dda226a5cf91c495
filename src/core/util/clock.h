/* Time sources for the I/O layers (never used by src/core/consensus). */
#ifndef DDKV_UTIL_CLOCK_H
#define DDKV_UTIL_CLOCK_H

#include <stdint.h>

uint64_t clock_mono_ns(void);
uint64_t clock_mono_ms(void);
uint64_t clock_wall_ms(void);
/* Sleep ms milliseconds (less if a signal interrupts it). */
void clock_sleep_ms(uint64_t ms);

/* The simulator's seam for time (issue 17): while a source is set, the two
 * clocks above read it instead of the machine's (clock_sleep_ms still
 * sleeps: nothing a simulated node runs may call it). The whole process
 * shares one source; a simulator that gives members different clocks
 * switches what ctx answers as it switches members. NULL restores the
 * machine's clocks. Set it before any thread reads the clocks. */
struct clock_source {
    uint64_t (*mono_ns)(void *ctx);
    uint64_t (*wall_ms)(void *ctx);
    void *ctx;
};
void clock_set_source(const struct clock_source *src);

#endif
