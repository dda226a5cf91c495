/* Monotonic and wall clocks in integer units, or a simulator's virtual ones. */
#include "util/clock.h"

#include <stddef.h>
#include <time.h>

static const struct clock_source *clock_src; /* NULL: the machine's clocks */

void clock_set_source(const struct clock_source *src)
{
    clock_src = src;
}

uint64_t clock_mono_ns(void)
{
    if (clock_src)
        return clock_src->mono_ns(clock_src->ctx);
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

uint64_t clock_mono_ms(void)
{
    return clock_mono_ns() / 1000000u;
}

uint64_t clock_wall_ms(void)
{
    if (clock_src)
        return clock_src->wall_ms(clock_src->ctx);
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

void clock_sleep_ms(uint64_t ms)
{
    struct timespec ts = {(time_t)(ms / 1000), (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}
