/* The linearizability checker on hand-made histories, both ways: legal ones
 * it must accept and illegal ones it must reject, naming the operation. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "linearize.h"

#define R(c, k, v, t0, t1) {.client = c, .kind = LIN_READ, .key = k, .value = v, .call = t0, .ret = t1}
#define W(c, k, v, t0, t1) {.client = c, .kind = LIN_WRITE, .key = k, .value = v, .call = t0, .ret = t1}
#define CAS(c, k, e, v, ok, t0, t1)                                                                 \
    {.client = c, .kind = LIN_CAS, .key = k, .expected = e, .value = v, .succeeded = ok, .call = t0, \
     .ret = t1}

static bool lin(struct lin_op *ops, size_t n, struct lin_report *r)
{
    for (size_t i = 0; i < n; i++)
        ops[i].line = i + 1;
    cr_assert_eq(lin_check(ops, n, r), 0, "%s", r->why);
    return r->linearizable;
}

Test(linearize, sequential_history_is_linearizable)
{
    struct lin_op h[] = {R(1, "x", NULL, 0, 1), W(1, "x", "a", 2, 3), R(2, "x", "a", 4, 5),
                         CAS(1, "x", "a", "b", true, 6, 7), CAS(2, "x", "a", "c", false, 8, 9),
                         R(1, "x", "b", 10, 11)};
    struct lin_report r;
    cr_assert(lin(h, sizeof h / sizeof h[0], &r), "%s", r.why);
    cr_assert_eq(r.ops_checked, 6);
}

Test(linearize, a_stale_read_after_a_completed_write_is_caught)
{
    /* The write returned before the read began, yet the read saw the old value. */
    struct lin_op h[] = {W(1, "x", "a", 0, 10), W(1, "x", "b", 20, 30), R(2, "x", "a", 40, 50)};
    struct lin_report r;
    cr_assert_not(lin(h, 3, &r));
    cr_assert_str_eq(r.key, "x");
    cr_assert_eq(r.stuck.line, 3, "the read is named (got line %zu)", r.stuck.line);
}

Test(linearize, concurrent_operations_may_take_either_order)
{
    /* The read overlaps both writes: seeing either is fine. */
    struct lin_op h1[] = {W(1, "x", "a", 0, 100), W(2, "x", "b", 10, 90), R(3, "x", "a", 50, 120)};
    struct lin_op h2[] = {W(1, "x", "a", 0, 100), W(2, "x", "b", 10, 90), R(3, "x", "b", 50, 120)};
    struct lin_report r;
    cr_assert(lin(h1, 3, &r), "%s", r.why);
    cr_assert(lin(h2, 3, &r), "%s", r.why);
    /* But a value never written is not. */
    struct lin_op h3[] = {W(1, "x", "a", 0, 100), W(2, "x", "b", 10, 90), R(3, "x", "c", 50, 120)};
    cr_assert_not(lin(h3, 3, &r));
}

Test(linearize, reads_cannot_go_back_in_time)
{
    /* Two sequential reads of a concurrent write: new then old is illegal. */
    struct lin_op h[] = {W(1, "x", "a", 0, 5), W(1, "x", "b", 10, 100), R(2, "x", "b", 20, 30),
                         R(2, "x", "a", 40, 50)};
    struct lin_report r;
    cr_assert_not(lin(h, 4, &r));
    cr_assert_eq(r.stuck.line, 4);
    /* Old then new is fine. */
    struct lin_op g[] = {W(1, "x", "a", 0, 5), W(1, "x", "b", 10, 100), R(2, "x", "a", 20, 30),
                         R(2, "x", "b", 40, 50)};
    cr_assert(lin(g, 4, &r), "%s", r.why);
}

Test(linearize, two_successful_cas_from_the_same_value_are_caught)
{
    /* Both swapped 0 -> 1: one of them must have seen 1. A lost increment. */
    struct lin_op h[] = {W(1, "n", "0", 0, 1), CAS(1, "n", "0", "1", true, 10, 50),
                         CAS(2, "n", "0", "1", true, 20, 60), R(3, "n", "1", 70, 80)};
    struct lin_report r;
    cr_assert_not(lin(h, 4, &r));
    /* Sequential increments are fine, and a CAS that lost must have seen
     * another value. */
    struct lin_op g[] = {W(1, "n", "0", 0, 1), CAS(1, "n", "0", "1", true, 10, 50),
                         CAS(2, "n", "0", "1", false, 20, 60), CAS(2, "n", "1", "2", true, 70, 80)};
    cr_assert(lin(g, 4, &r), "%s", r.why);
    struct lin_op bad[] = {W(1, "n", "0", 0, 1), CAS(2, "n", "0", "1", false, 20, 60)};
    cr_assert_not(lin(bad, 2, &r), "a CAS cannot fail while the value is what it expects");
}

Test(linearize, an_unknown_write_may_happen_late_or_never)
{
    struct lin_report r;
    /* Seen, long after its call: legal. */
    struct lin_op h1[] = {W(1, "x", "a", 0, 1), {.client = 2, .kind = LIN_WRITE, .key = "x", .value = "b",
                                                 .call = 10, .outcome = LIN_UNKNOWN},
                          R(3, "x", "a", 20, 30), R(3, "x", "b", 1000, 1010)};
    cr_assert(lin(h1, 4, &r), "%s", r.why);
    /* Never seen: legal too. */
    struct lin_op h2[] = {W(1, "x", "a", 0, 1), {.client = 2, .kind = LIN_WRITE, .key = "x", .value = "b",
                                                 .call = 10, .outcome = LIN_UNKNOWN},
                          R(3, "x", "a", 1000, 1010)};
    cr_assert(lin(h2, 3, &r), "%s", r.why);
    /* But not before it was called. */
    struct lin_op h3[] = {W(1, "x", "a", 0, 1), R(3, "x", "b", 2, 5),
                          {.client = 2, .kind = LIN_WRITE, .key = "x", .value = "b", .call = 10,
                           .outcome = LIN_UNKNOWN}};
    cr_assert_not(lin(h3, 3, &r));
    /* A failed write never happened. */
    struct lin_op h4[] = {W(1, "x", "a", 0, 1), {.client = 2, .kind = LIN_WRITE, .key = "x", .value = "b",
                                                 .call = 10, .ret = 20, .outcome = LIN_FAILED},
                          R(3, "x", "b", 30, 40)};
    cr_assert_not(lin(h4, 3, &r));
}

Test(linearize, keys_are_independent)
{
    struct lin_op h[] = {W(1, "x", "a", 0, 10), W(2, "y", "b", 0, 10), R(1, "y", "b", 20, 30),
                         R(2, "x", "a", 20, 30), R(1, "y", "a", 40, 50)};
    struct lin_report r;
    cr_assert_not(lin(h, 5, &r));
    cr_assert_str_eq(r.key, "y");
    cr_assert_eq(r.keys, 2, "x was checked (fine), then y");
}

/* A long random history produced by a real register behind a lock (each
 * operation takes effect at a random instant inside its interval) must pass;
 * the same history with one read's value changed must fail. */
Test(linearize, random_histories_of_a_real_register)
{
    uint64_t seed = 42;
    for (int round = 0; round < 20; round++) {
        enum { N = 300 };
        static struct lin_op h[N];
        static char vals[N][8];
        char cur[8] = "";
        bool present = false;
        uint64_t t = 0;
        for (int i = 0; i < N; i++) {
            /* Operations overlap: each starts before the previous one's effect
             * point plus some, ends after its own. */
            uint64_t call = t + test_rng(&seed) % 5, effect = call + 1 + test_rng(&seed) % 20;
            uint64_t ret = effect + 1 + test_rng(&seed) % 20;
            t = effect;
            int kind = (int)(test_rng(&seed) % 3);
            snprintf(vals[i], sizeof vals[i], "v%d", (int)(test_rng(&seed) % 4));
            struct lin_op *o = &h[i];
            memset(o, 0, sizeof *o);
            o->client = i % 5;
            o->key = "k";
            o->call = call;
            o->ret = ret;
            if (kind == 0) {
                o->kind = LIN_READ;
                o->value = present ? strcpy(vals[i], cur) : NULL;
            } else if (kind == 1) {
                o->kind = LIN_WRITE;
                o->value = vals[i];
                memcpy(cur, vals[i], sizeof cur);
                present = true;
            } else {
                o->kind = LIN_CAS;
                o->value = vals[i];
                o->expected = (test_rng(&seed) % 2 && present) ? "v0" : NULL;
                bool match = o->expected ? (present && strcmp(cur, o->expected) == 0) : !present;
                o->succeeded = match;
                if (match) {
                    memcpy(cur, vals[i], sizeof cur);
                    present = true;
                }
            }
        }
        /* Effect points are increasing but calls/returns overlap: sort-free
         * is fine, the checker orders events itself. */
        struct lin_report r;
        cr_assert(lin(h, N, &r), "round %d: a real register's history rejected: %s", round, r.why);
        /* Corrupt one read far from the start to a value never written. */
        for (int i = N - 1; i >= 0; i--) {
            if (h[i].kind == LIN_READ) {
                h[i].value = "never";
                break;
            }
        }
        cr_assert_not(lin(h, N, &r), "round %d: a read of a value never written passed", round);
    }
}

Test(linearize, reads_a_recorded_json_lines_history)
{
    char dir[256], path[300];
    cr_assert_eq(harness_tmpdir(dir, sizeof dir, "lin"), 0);
    snprintf(path, sizeof path, "%s/h.jsonl", dir);
    FILE *f = fopen(path, "w");
    fprintf(f, "{\"client\":1,\"op\":\"write\",\"key\":\"k\",\"value\":\"a\",\"expected\":null,\"call\":0,"
               "\"return\":10,\"ok\":true}\n");
    fprintf(f, "{\"client\":2,\"op\":\"cas\",\"key\":\"k\",\"value\":\"b\",\"expected\":\"a\",\"call\":20,"
               "\"return\":30,\"ok\":true}\n");
    fprintf(f, "{\"client\":3,\"op\":\"write\",\"key\":\"k\",\"value\":\"c\",\"expected\":null,\"call\":35,"
               "\"return\":0,\"ok\":\"unknown\"}\n");
    fprintf(f, "{\"client\":1,\"op\":\"read\",\"key\":\"k\",\"value\":\"b\",\"expected\":null,\"call\":40,"
               "\"return\":50,\"ok\":true}\n");
    fclose(f);
    struct lin_report r;
    cr_assert_eq(lin_check_file(path, &r), 0, "%s", r.why);
    cr_assert(r.linearizable, "%s", r.why);
    /* A read of the old value after the CAS completed: not linearizable. */
    f = fopen(path, "a");
    fprintf(f, "{\"client\":2,\"op\":\"read\",\"key\":\"k\",\"value\":\"a\",\"expected\":null,\"call\":60,"
               "\"return\":70,\"ok\":true}\n");
    fclose(f);
    cr_assert_eq(lin_check_file(path, &r), 0, "%s", r.why);
    cr_assert_not(r.linearizable);
    cr_assert_eq(r.stuck.line, 5, "the offending read is named by its line (got %zu)", r.stuck.line);
    f = fopen(path, "a");
    fprintf(f, "not json\n");
    fclose(f);
    cr_assert_eq(lin_check_file(path, &r), -1);
    harness_rmrf(dir);
}
