/* Unit tests for the Lamport clock (src/core/proto/lamport.c): tick, receive rule, range checks, happened-before. */
#include <criterion/criterion.h>
#include <signal.h>
#include <stdint.h>
#include <string.h>

#include "ddkv/wire.h"
#include "proto/lamport.h"
#include "util/err.h"
#include "harness.h"

Test(lamport, tick_is_strictly_monotonic)
{
    struct lamport c = {0};
    uint64_t prev = c.now;
    for (int i = 0; i < 10000; i++) {
        uint64_t t = lamport_tick(&c);
        cr_assert_eq(t, prev + 1);
        cr_assert_eq(c.now, t, "tick returned %llu but the clock holds %llu", (unsigned long long)t,
                     (unsigned long long)c.now);
        prev = t;
    }
}

Test(lamport, observe_received_below_local)
{
    struct lamport c = {.now = 10};
    cr_assert_eq(lamport_observe(&c, 5, 0), ERR_OK);
    cr_assert_eq(c.now, 11);
    cr_assert_eq(lamport_observe(&c, 0, 0), ERR_OK);
    cr_assert_eq(c.now, 12);
}

Test(lamport, observe_received_equal_to_local)
{
    struct lamport c = {.now = 10};
    cr_assert_eq(lamport_observe(&c, 10, 0), ERR_OK);
    cr_assert_eq(c.now, 11);
}

Test(lamport, observe_received_above_local)
{
    struct lamport c = {.now = 10};
    cr_assert_eq(lamport_observe(&c, 1000, 0), ERR_OK);
    cr_assert_eq(c.now, 1001);
    struct lamport fresh = {0};
    cr_assert_eq(lamport_observe(&fresh, 0, 0), ERR_OK);
    cr_assert_eq(fresh.now, 1);
}

Test(lamport, observe_is_max_plus_one_for_many_pairs)
{
    static const uint64_t vals[] = {0, 1, 2, 99, 100, 101, UINT32_MAX, DDKV_LAMPORT_MAX / 2,
                                    DDKV_LAMPORT_MAX - 2, DDKV_LAMPORT_MAX - 1};
    size_t nv = sizeof vals / sizeof vals[0];
    for (size_t i = 0; i < nv; i++) {
        for (size_t j = 0; j < nv; j++) {
            struct lamport c = {.now = vals[i]};
            cr_assert_eq(lamport_observe(&c, vals[j], 0), ERR_OK);
            uint64_t want = (vals[i] > vals[j] ? vals[i] : vals[j]) + 1;
            if (want > LAMPORT_CEIL)
                want = LAMPORT_CEIL; /* the clock saturates */
            cr_assert_eq(c.now, want, "local %llu received %llu: %llu, want %llu", (unsigned long long)vals[i],
                         (unsigned long long)vals[j], (unsigned long long)c.now, (unsigned long long)want);
        }
    }
}

Test(lamport, received_at_or_above_max_refused_and_clock_unchanged)
{
    static const uint64_t bad[] = {DDKV_LAMPORT_MAX, DDKV_LAMPORT_MAX + 1, UINT64_C(1) << 63, UINT64_MAX};
    static const uint64_t local[] = {0, 7, DDKV_LAMPORT_MAX - 5, DDKV_LAMPORT_MAX + 3};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        for (size_t j = 0; j < sizeof local / sizeof local[0]; j++) {
            struct lamport c = {.now = local[j]};
            cr_assert_eq(lamport_observe(&c, bad[i], 0), ERR_BAD_INPUT, "received %llu accepted",
                         (unsigned long long)bad[i]);
            cr_assert_eq(c.now, local[j], "refused input changed the clock");
            cr_assert_eq(lamport_observe(&c, bad[i], LAMPORT_CLIENT_MAX_AHEAD), ERR_BAD_INPUT);
            cr_assert_eq(c.now, local[j]);
        }
    }
}

Test(lamport, just_below_max_accepted)
{
    struct lamport c = {0};
    cr_assert_eq(lamport_observe(&c, DDKV_LAMPORT_MAX - 2, 0), ERR_OK);
    cr_assert_eq(c.now, LAMPORT_CEIL);
    /* The clock never reaches the receive limit by its own ticks: it saturates,
     * so every time it hands out is one every receiver accepts. */
    cr_assert_eq(lamport_tick(&c), LAMPORT_CEIL);
    cr_assert_eq(lamport_observe(&c, DDKV_LAMPORT_MAX - 1, 0), ERR_OK);
    cr_assert_eq(c.now, LAMPORT_CEIL);
}

Test(lamport, max_ahead_bound)
{
    struct lamport c = {.now = 100};
    cr_assert_eq(lamport_observe(&c, 110, 10), ERR_OK, "exactly max_ahead ahead refused");
    cr_assert_eq(c.now, 111);
    cr_assert_eq(lamport_observe(&c, 111 + 11, 10), ERR_BAD_INPUT, "max_ahead + 1 ahead accepted");
    cr_assert_eq(c.now, 111, "refused input changed the clock");
    /* Behind or equal is never too far ahead. */
    cr_assert_eq(lamport_observe(&c, 3, 10), ERR_OK);
    cr_assert_eq(c.now, 112);
    cr_assert_eq(lamport_observe(&c, 112, 1), ERR_OK);
    cr_assert_eq(c.now, 113);
    /* 0 means no bound beyond the global maximum. */
    cr_assert_eq(lamport_observe(&c, DDKV_LAMPORT_MAX - 1, 0), ERR_OK);
    cr_assert_eq(c.now, LAMPORT_CEIL);
}

Test(lamport, client_max_ahead_constant)
{
    struct lamport c = {0};
    cr_assert_eq(lamport_observe(&c, LAMPORT_CLIENT_MAX_AHEAD, LAMPORT_CLIENT_MAX_AHEAD), ERR_OK);
    cr_assert_eq(c.now, LAMPORT_CLIENT_MAX_AHEAD + 1);
    uint64_t before = c.now;
    cr_assert_eq(lamport_observe(&c, before + LAMPORT_CLIENT_MAX_AHEAD + 1, LAMPORT_CLIENT_MAX_AHEAD),
                 ERR_BAD_INPUT);
    cr_assert_eq(c.now, before);
    /* A hostile client needs 2^30 messages to burn the range up to the global limit. */
    struct lamport near = {.now = DDKV_LAMPORT_MAX - 10};
    cr_assert_eq(lamport_observe(&near, DDKV_LAMPORT_MAX - 1, LAMPORT_CLIENT_MAX_AHEAD), ERR_OK);
    cr_assert_eq(lamport_observe(&near, DDKV_LAMPORT_MAX, LAMPORT_CLIENT_MAX_AHEAD), ERR_BAD_INPUT);
}

Test(lamport, cmp_orders_without_wrap)
{
    cr_assert_eq(lamport_cmp(1, 2), -1);
    cr_assert_eq(lamport_cmp(2, 1), 1);
    cr_assert_eq(lamport_cmp(5, 5), 0);
    cr_assert_eq(lamport_cmp(DDKV_LAMPORT_MAX - 1, DDKV_LAMPORT_MAX), -1);
    cr_assert_eq(lamport_cmp(DDKV_LAMPORT_MAX + 1, DDKV_LAMPORT_MAX - 1), 1);
    cr_assert_eq(lamport_cmp(DDKV_LAMPORT_MAX, DDKV_LAMPORT_MAX), 0);
    /* Far apart: a signed-difference comparison would get these wrong. */
    cr_assert_eq(lamport_cmp(0, (UINT64_C(1) << 63) + 1), -1);
    cr_assert_eq(lamport_cmp((UINT64_C(1) << 63) + 1, 0), 1);
    cr_assert_eq(lamport_cmp(UINT64_MAX, 1), 1);
    cr_assert_eq(lamport_cmp(1, UINT64_MAX), -1);
    cr_assert_eq(lamport_cmp(0, DDKV_LAMPORT_MAX + 5), -1);
}

Test(lamport, cmp_is_antisymmetric_and_transitive_near_the_top)
{
    uint64_t v[9];
    for (int i = 0; i < 9; i++)
        v[i] = DDKV_LAMPORT_MAX - 4 + (uint64_t)i;
    for (int i = 0; i < 9; i++) {
        for (int j = 0; j < 9; j++) {
            int want = i < j ? -1 : i > j;
            cr_assert_eq(lamport_cmp(v[i], v[j]), want, "cmp(MAX%+d, MAX%+d)", i - 4, j - 4);
            cr_assert_eq(lamport_cmp(v[i], v[j]), -lamport_cmp(v[j], v[i]));
        }
    }
}

Test(lamport, tick_saturates_at_the_ceiling)
{
    /* Unreachable by outside input within the budgets (lamport.h); a clock
     * that gets there anyway keeps working instead of handing out times every
     * receiver refuses. */
    struct lamport c = {.now = LAMPORT_CEIL - 2};
    cr_assert_eq(lamport_tick(&c), LAMPORT_CEIL - 1);
    cr_assert_eq(lamport_tick(&c), LAMPORT_CEIL);
    cr_assert_eq(lamport_tick(&c), LAMPORT_CEIL);
    cr_assert_lt(c.now, DDKV_LAMPORT_MAX);
}

/* --- happened-before across three simulated processes --- */

#define NPROC 3
#define NEVENTS 3000

struct event {
    int proc;
    uint64_t lamport;
    uint32_t vc[NPROC]; /* vector clock: the exact happened-before relation */
};

struct message {
    int to;
    uint64_t lamport;
    uint32_t vc[NPROC];
};

/* a happened before b iff a's vector clock is <= b's everywhere and they differ. */
static bool happened_before(const struct event *a, const struct event *b)
{
    bool le = true, differ = false;
    for (int k = 0; k < NPROC; k++) {
        le &= a->vc[k] <= b->vc[k];
        differ |= a->vc[k] != b->vc[k];
    }
    return le && differ;
}

static struct event events[NEVENTS];
static struct message inflight[NEVENTS];

Test(lamport, happened_before_implies_smaller_time)
{
    for (uint64_t seed0 = 1; seed0 <= 5; seed0++) {
        uint64_t seed = seed0 * 0x9e3779b97f4a7c15u;
        struct lamport clk[NPROC];
        uint32_t vc[NPROC][NPROC];
        memset(clk, 0, sizeof clk);
        memset(vc, 0, sizeof vc);
        size_t ne = 0, nm = 0;
        size_t sends = 0, receives = 0;
        while (ne < NEVENTS) {
            int p = (int)(test_rng(&seed) % NPROC);
            uint64_t r = test_rng(&seed) % 10;
            struct event *e = &events[ne];
            e->proc = p;
            /* Receive the oldest message for p (channels may reorder across senders). */
            size_t mi = nm;
            if (r < 4) {
                for (size_t i = 0; i < nm; i++)
                    if (inflight[i].to == p) {
                        mi = i;
                        break;
                    }
            }
            if (mi < nm) {
                struct message msg = inflight[mi];
                memmove(&inflight[mi], &inflight[mi + 1], (nm - mi - 1) * sizeof inflight[0]);
                nm--;
                cr_assert_eq(lamport_observe(&clk[p], msg.lamport, 0), ERR_OK);
                for (int k = 0; k < NPROC; k++)
                    vc[p][k] = vc[p][k] > msg.vc[k] ? vc[p][k] : msg.vc[k];
                vc[p][p]++;
                e->lamport = clk[p].now;
                receives++;
            } else {
                /* A local event, or a send (the send is itself an event). */
                e->lamport = lamport_tick(&clk[p]);
                vc[p][p]++;
                if (r >= 6 && nm < NEVENTS) {
                    struct message *msg = &inflight[nm++];
                    msg->to = (p + 1 + (int)(test_rng(&seed) % (NPROC - 1))) % NPROC;
                    msg->lamport = e->lamport;
                    memcpy(msg->vc, vc[p], sizeof msg->vc);
                    sends++;
                }
            }
            memcpy(e->vc, vc[p], sizeof e->vc);
            ne++;
        }
        cr_assert_gt(receives, 100, "the simulation exchanged too few messages");
        cr_assert_gt(sends, 100);
        size_t ordered = 0, concurrent = 0;
        for (size_t i = 0; i < ne; i++) {
            for (size_t j = 0; j < ne; j++) {
                if (happened_before(&events[i], &events[j])) {
                    ordered++;
                    cr_assert_lt(events[i].lamport, events[j].lamport,
                                 "seed %llu: event %zu (P%d, L=%llu) -> event %zu (P%d, L=%llu) but L not smaller",
                                 (unsigned long long)seed0, i, events[i].proc,
                                 (unsigned long long)events[i].lamport, j, events[j].proc,
                                 (unsigned long long)events[j].lamport);
                } else if (i < j && !happened_before(&events[j], &events[i])) {
                    concurrent++;
                }
            }
        }
        /* Both kinds of pairs occur, so the property was tested on cross-process chains. */
        cr_assert_gt(ordered, 1000);
        cr_assert_gt(concurrent, 100);
    }
}

/* --- the budgets for outside input (issue 22) --- */

Test(lamport_budget, client_within_budget_moves_the_clock_beyond_it_is_refused)
{
    struct lamport c = {.now = 1000};
    lamport_budget_init(&c, 0);
    uint64_t allowed = 0;
    /* One frame may be at most LAMPORT_CLIENT_MAX_AHEAD ahead. */
    cr_assert_eq(lamport_admit_client(&c, 1000 + LAMPORT_CLIENT_MAX_AHEAD + 1, 0, &allowed), ERR_TOO_LARGE);
    cr_assert_eq(c.now, 1000, "a refused frame moved the clock");
    cr_assert_eq(allowed, LAMPORT_CLIENT_MAX_AHEAD);
    cr_assert_eq(lamport_admit_client(&c, 1000 + LAMPORT_CLIENT_MAX_AHEAD, 0, NULL), ERR_OK);
    cr_assert_eq(c.now, 1000 + LAMPORT_CLIENT_MAX_AHEAD + 1);
    /* Out of range is its own refusal. */
    cr_assert_eq(lamport_admit_client(&c, DDKV_LAMPORT_MAX, 0, NULL), ERR_BAD_INPUT);
    cr_assert_eq(lamport_admit_client(&c, UINT64_MAX, 0, NULL), ERR_BAD_INPUT);
    cr_assert_eq(c.now, 1000 + LAMPORT_CLIENT_MAX_AHEAD + 1);
    /* Behind or equal costs nothing and is never refused. */
    uint64_t tokens = c.client.tokens;
    cr_assert_eq(lamport_admit_client(&c, 5, 0, NULL), ERR_OK);
    cr_assert_eq(c.client.tokens, tokens);
}

Test(lamport_budget, client_sequence_is_bounded_by_burst_plus_refill)
{
    /* A hostile client sending frames each as far ahead as it may, for 10 s
     * of (simulated) time at 100,000 frames/s: the clock moves at most
     * burst + refill * 10 s beyond its own ticks. */
    struct lamport c = {.now = 1};
    lamport_budget_init(&c, 0);
    uint64_t start = c.now, frames = 0, refused = 0;
    for (uint64_t ms = 0; ms <= 10000; ms++) {
        for (int k = 0; k < 100; k++) {
            frames++;
            if (lamport_admit_client(&c, c.now + LAMPORT_CLIENT_MAX_AHEAD, ms, NULL) != ERR_OK)
                refused++;
        }
    }
    uint64_t bound = LAMPORT_CLIENT_BURST + LAMPORT_CLIENT_REFILL_PER_S * 10 + frames;
    cr_assert_leq(c.now - start, bound, "moved %llu, bound %llu", (unsigned long long)(c.now - start),
                  (unsigned long long)bound);
    cr_assert_gt(refused, 0);
    /* And it did use the budget: the bound is tight within a frame's worth. */
    cr_assert_geq(c.now - start + LAMPORT_CLIENT_MAX_AHEAD, LAMPORT_CLIENT_BURST + LAMPORT_CLIENT_REFILL_PER_S * 10);
}

Test(lamport_budget, member_advance_is_clamped_never_refused)
{
    struct lamport c = {.now = 10};
    lamport_budget_init(&c, 0);
    /* The hello of issue 22: 2^62 - 300. Clamped to the burst. */
    uint64_t short_by = lamport_observe_member(&c, DDKV_LAMPORT_MAX - 300, 0);
    cr_assert_eq(c.now, 10 + LAMPORT_MEMBER_BURST + 1);
    cr_assert_eq(short_by, DDKV_LAMPORT_MAX - 300 - 10 - LAMPORT_MEMBER_BURST);
    /* Out of range counts as the ceiling; with the bucket empty, +1 only. */
    uint64_t before = c.now;
    cr_assert_gt(lamport_observe_member(&c, UINT64_MAX, 0), 0);
    cr_assert_eq(c.now, before + 1);
    /* One second later the refill is available, no more. */
    before = c.now;
    lamport_observe_member(&c, DDKV_LAMPORT_MAX - 300, 1000);
    cr_assert_eq(c.now, before + LAMPORT_MEMBER_REFILL_PER_S + 1);
    /* Legitimate catch-up (a member a million events ahead) is applied in full. */
    struct lamport d = {.now = 5};
    lamport_budget_init(&d, 0);
    cr_assert_eq(lamport_observe_member(&d, 1000005, 0), 0);
    cr_assert_eq(d.now, 1000006);
}

Test(lamport_budget, client_and_member_buckets_are_apart)
{
    /* A client draining its bucket does not clamp a member's catch-up. */
    struct lamport c = {.now = 0};
    lamport_budget_init(&c, 0);
    while (lamport_admit_client(&c, c.now + LAMPORT_CLIENT_MAX_AHEAD, 0, NULL) == ERR_OK)
        ;
    cr_assert_lt(c.client.tokens, LAMPORT_CLIENT_MAX_AHEAD);
    cr_assert_eq(lamport_admit_client(&c, c.now + LAMPORT_CLIENT_MAX_AHEAD, 0, NULL), ERR_TOO_LARGE);
    uint64_t before = c.now;
    cr_assert_eq(lamport_observe_member(&c, before + 1000000, 0), 0);
    cr_assert_eq(c.now, before + 1000001);
}

Test(lamport_budget, refill_caps_at_burst_and_survives_clock_steps)
{
    struct lamport c = {.now = 0};
    lamport_budget_init(&c, 5000);
    lamport_observe_member(&c, LAMPORT_MEMBER_BURST, 5000);
    cr_assert_eq(c.member.tokens, 0);
    /* A monotonic clock never goes back, but a caller passing an older time
     * must not be credited (or wrap). */
    lamport_observe_member(&c, c.now + 10, 4000);
    cr_assert_eq(c.member.tokens, 0);
    /* After a very long pause the bucket is full, not more. */
    c.member.last_ms = 5000;
    lamport_observe_member(&c, c.now + 5, UINT64_C(1) << 50);
    cr_assert_eq(c.member.tokens, LAMPORT_MEMBER_BURST - 5);
}

Test(lamport_budget, saturated_clock_keeps_working)
{
    /* A node whose stored time is at (or, from an older version, past) the
     * limit: raised to the ceiling, it still ticks, observes and admits. */
    struct lamport c = {0};
    lamport_raise(&c, DDKV_LAMPORT_MAX + 3);
    cr_assert_eq(c.now, LAMPORT_CEIL);
    lamport_budget_init(&c, 0);
    cr_assert_eq(lamport_tick(&c), LAMPORT_CEIL);
    cr_assert_eq(lamport_admit_client(&c, 17, 0, NULL), ERR_OK);
    cr_assert_eq(lamport_admit_client(&c, LAMPORT_CEIL, 0, NULL), ERR_OK);
    cr_assert_eq(lamport_observe_member(&c, UINT64_MAX, 0), 0);
    cr_assert_eq(c.now, LAMPORT_CEIL);
    /* raise never lowers. */
    lamport_raise(&c, 5);
    cr_assert_eq(c.now, LAMPORT_CEIL);
}
