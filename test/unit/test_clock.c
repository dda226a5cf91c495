/* util/clock.c: the machine's clocks, and the simulator's virtual ones in
 * their place while a source is set. */
#include <criterion/criterion.h>

#include "util/clock.h"

static uint64_t virt_ns = 5000000000ull, virt_wall = 1234;
static uint64_t v_mono(void *ctx)
{
    return *(uint64_t *)ctx;
}
static uint64_t v_wall(void *ctx)
{
    (void)ctx;
    return virt_wall;
}

Test(clock, machine_clocks_move_forward)
{
    uint64_t a = clock_mono_ns();
    clock_sleep_ms(2);
    uint64_t b = clock_mono_ns();
    cr_assert_geq(b - a, 2000000u);
    cr_assert_gt(clock_wall_ms(), 1600000000000ull); /* after 2020 */
}

Test(clock, a_virtual_source_replaces_them_until_cleared)
{
    struct clock_source src = {.mono_ns = v_mono, .wall_ms = v_wall, .ctx = &virt_ns};
    clock_set_source(&src);
    cr_assert_eq(clock_mono_ns(), 5000000000ull);
    cr_assert_eq(clock_mono_ms(), 5000u);
    cr_assert_eq(clock_wall_ms(), 1234u);
    virt_ns += 1500000; /* the simulator moves time; nothing else does */
    cr_assert_eq(clock_mono_ms(), 5001u);
    clock_set_source(NULL);
    cr_assert_gt(clock_wall_ms(), 1600000000000ull);
}
