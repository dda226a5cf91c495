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

/* A LIST page: prefix p, after a (NULL: from the first), entries e (n of them), more m. */
#define PAGE(c, p, a, e, n, m, t0, t1)                                                                   \
    {.client = c, .kind = LIN_LIST, .key = p, .after = a, .entries = e, .nentries = n, .more = m, .call = t0, \
     .ret = t1}
#define NE(e) (sizeof e / sizeof e[0])

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

/* --- LIST pages: each is a read, at one instant of its interval, of every key
 * of the history in the range it covers --- */

Test(linearize, a_list_page_missing_an_acknowledged_write_is_caught)
{
    /* k1 was written and acknowledged before the page began; the page covers
     * (start, k2] and does not return it: a stale page (the old LIST bug). */
    static const struct lin_entry got[] = {{"k2", "b"}};
    struct lin_op h[] = {W(1, "k1", "a", 0, 10), W(2, "k2", "b", 0, 10), PAGE(3, "k", NULL, got, 1, true, 20, 30)};
    struct lin_report r;
    cr_assert_not(lin(h, NE(h), &r));
    cr_assert_str_eq(r.key, "k1");
    cr_assert_eq(r.stuck.line, 3, "the page is named (got line %zu)", r.stuck.line);
    cr_assert(r.stuck.from_list);
    cr_assert(strstr(r.why, "list page from line 3") != NULL, "%s", r.why);
    cr_assert_eq(r.pages, 1);

    /* The last page of a walk (no more) covers everything after its start:
     * missing a key written before it is caught too, even with no entries. */
    struct lin_op g[] = {W(1, "k5", "e", 0, 10), PAGE(3, "k", "k2", NULL, 0, false, 20, 30)};
    cr_assert_not(lin(g, NE(g), &r));
    cr_assert_str_eq(r.key, "k5");
    cr_assert_eq(r.stuck.line, 2);

    /* An old value after a newer write completed. */
    static const struct lin_entry old[] = {{"k1", "a"}};
    struct lin_op o[] = {W(1, "k1", "a", 0, 10), W(1, "k1", "b", 20, 30), PAGE(2, "k", NULL, old, 1, false, 40, 50)};
    cr_assert_not(lin(o, NE(o), &r));
    cr_assert_eq(r.stuck.line, 3);
}

Test(linearize, a_list_page_consistent_with_some_order_passes)
{
    struct lin_report r;
    /* A write overlapping the page: seen or not, both are legal. */
    static const struct lin_entry seen[] = {{"k1", "a"}};
    struct lin_op h1[] = {W(1, "k1", "a", 0, 100), PAGE(2, "k", NULL, seen, 1, false, 50, 120)};
    struct lin_op h2[] = {W(1, "k1", "a", 0, 100), PAGE(2, "k", NULL, NULL, 0, false, 50, 120)};
    cr_assert(lin(h1, NE(h1), &r), "%s", r.why);
    cr_assert(lin(h2, NE(h2), &r), "%s", r.why);
    cr_assert_eq(r.ops_checked, 2, "the write and the page's read of k1");

    /* Pages of one walk are separate reads at separate instants: the second
     * may see a write made after the first page. */
    static const struct lin_entry p1[] = {{"k0", "a"}}, p2[] = {{"k1", "b"}};
    struct lin_op walk[] = {W(1, "k0", "a", 0, 10), PAGE(3, "k", NULL, p1, 1, true, 20, 30), W(2, "k1", "b", 40, 50),
                            PAGE(3, "k", "k0", p2, 1, false, 60, 70)};
    cr_assert(lin(walk, NE(walk), &r), "%s", r.why);
    cr_assert_eq(r.pages, 2);

    /* An unknown write may show up in a page long after, or never. */
    struct lin_op u[] = {{.client = 1, .kind = LIN_WRITE, .key = "k1", .value = "a", .call = 0, .outcome = LIN_UNKNOWN},
                         PAGE(2, "k", NULL, seen, 1, false, 1000, 1010)};
    cr_assert(lin(u, NE(u), &r), "%s", r.why);
    u[1] = (struct lin_op)PAGE(2, "k", NULL, NULL, 0, false, 1000, 1010);
    cr_assert(lin(u, NE(u), &r), "%s", r.why);

    /* A page that failed says nothing, whatever it holds. */
    static const struct lin_entry junk[] = {{"k1", "never"}};
    struct lin_op f[] = {W(1, "k1", "a", 0, 10), PAGE(2, "k", NULL, junk, 1, false, 20, 30)};
    f[1].outcome = LIN_FAILED;
    cr_assert(lin(f, NE(f), &r), "%s", r.why);
    f[1].outcome = LIN_UNKNOWN;
    cr_assert(lin(f, NE(f), &r), "%s", r.why);
    cr_assert_eq(r.pages, 0);
    f[1].outcome = LIN_OK;
    cr_assert_not(lin(f, NE(f), &r), "the same page answered is a read of a value never written");
}

Test(linearize, a_list_page_does_not_constrain_keys_outside_its_range)
{
    /* Written before the page: k0 (its start_after), k3 (returned), k5 (after
     * its last entry, more keys remain), other (not the prefix). The page
     * covers (k0, k3] only: k0, k5 and other are not read by it. */
    static const struct lin_entry got[] = {{"k3", "c"}};
    struct lin_op h[] = {W(1, "k0", "a", 0, 10), W(1, "k3", "c", 0, 10), W(1, "k5", "e", 0, 10),
                         W(1, "other", "o", 0, 10), PAGE(2, "k", "k0", got, 1, true, 20, 30)};
    struct lin_report r;
    cr_assert(lin(h, NE(h), &r), "%s", r.why);
    cr_assert_eq(r.ops_checked, 5, "4 writes and one read (of k3), got %zu", r.ops_checked);
    /* Without more, the page covers (k0, end of prefix): k5 absent is stale. */
    h[4].more = false;
    cr_assert_not(lin(h, NE(h), &r));
    cr_assert_str_eq(r.key, "k5");
    /* Keys never named by the history are not read (nothing to check). */
    struct lin_op e[] = {PAGE(2, "k", NULL, NULL, 0, false, 20, 30)};
    cr_assert(lin(e, 1, &r), "%s", r.why);
    cr_assert_eq(r.ops_checked, 0);
}

Test(linearize, a_malformed_list_page_is_a_violation)
{
    struct lin_report r;
    /* Entries out of order, at or before start_after, or outside the prefix. */
    static const struct lin_entry unsorted[] = {{"k2", "b"}, {"k1", "a"}}, before[] = {{"k1", "a"}},
                                  foreign[] = {{"x1", "a"}};
    struct lin_op h[] = {W(1, "k1", "a", 0, 10), W(1, "k2", "b", 0, 10), PAGE(2, "k", NULL, unsorted, 2, false, 20, 30)};
    cr_assert_not(lin(h, NE(h), &r));
    cr_assert_eq(r.stuck.line, 3);
    cr_assert(strstr(r.why, "list page from line 3") != NULL, "%s", r.why);
    h[2] = (struct lin_op)PAGE(2, "k", "k1", before, 1, false, 20, 30);
    cr_assert_not(lin(h, NE(h), &r));
    h[2] = (struct lin_op)PAGE(2, "k", NULL, foreign, 1, false, 20, 30);
    cr_assert_not(lin(h, NE(h), &r));
}

/* A store of four keys behind a lock: writes, reads and LIST walks of two keys
 * a page, each taking effect at a random instant inside its interval. Its
 * history must pass; with one page's entry changed to a value never written,
 * it must fail on that key. */
Test(linearize, random_histories_of_a_real_store_with_list_pages)
{
    uint64_t seed = 7;
    static const char *names[] = {"k0", "k1", "k2", "k3"};
    for (int round = 0; round < 20; round++) {
        enum { N = 300 };
        static struct lin_op h[N];
        static struct lin_entry ents[N][2];
        static char vals[N][8];
        const char *cur[4] = {NULL, NULL, NULL, NULL};
        uint64_t t = 0;
        const char *after = NULL; /* the walk in progress */
        for (int i = 0; i < N; i++) {
            uint64_t call = t + test_rng(&seed) % 5, effect = call + 1 + test_rng(&seed) % 20;
            uint64_t ret = effect + 1 + test_rng(&seed) % 20;
            t = effect;
            struct lin_op *o = &h[i];
            memset(o, 0, sizeof *o);
            o->client = i % 5;
            o->call = call;
            o->ret = ret;
            int kind = (int)(test_rng(&seed) % 3), k = (int)(test_rng(&seed) % 4);
            if (after || kind == 0) { /* the next page: keys after `after`, two at most */
                o->kind = LIN_LIST;
                o->key = "k";
                o->after = after;
                o->entries = ents[i];
                size_t n = 0;
                int j = after ? after[1] - '0' + 1 : 0;
                for (; j < 4 && n < 2; j++)
                    if (cur[j])
                        ents[i][n++] = (struct lin_entry){names[j], cur[j]};
                bool more = false;
                for (; j < 4; j++)
                    more |= cur[j] != NULL;
                o->nentries = n;
                o->more = more && n > 0;
                after = o->more ? ents[i][n - 1].key : NULL;
            } else if (kind == 1) {
                o->kind = LIN_READ;
                o->key = names[k];
                o->value = cur[k];
            } else {
                snprintf(vals[i], sizeof vals[i], "v%d", i);
                o->kind = LIN_WRITE;
                o->key = names[k];
                o->value = cur[k] = vals[i];
            }
        }
        struct lin_report r;
        cr_assert(lin(h, N, &r), "round %d: a real store's history rejected: %s", round, r.why);
        cr_assert_gt(r.pages, 0);
        int i = N - 1;
        while (i >= 0 && !(h[i].kind == LIN_LIST && h[i].nentries > 0))
            i--;
        cr_assert_geq(i, 0);
        ents[i][0].value = "never";
        cr_assert_not(lin(h, N, &r), "round %d: a page with a value never written passed", round);
        cr_assert_str_eq(r.key, ents[i][0].key, "round %d", round);
    }
}

Test(linearize, reads_recorded_list_pages)
{
    char dir[256], path[300];
    cr_assert_eq(harness_tmpdir(dir, sizeof dir, "linlist"), 0);
    snprintf(path, sizeof path, "%s/h.jsonl", dir);
    FILE *f = fopen(path, "w");
    fprintf(f, "{\"client\":1,\"op\":\"write\",\"key\":\"k1\",\"value\":\"a\",\"expected\":null,\"call\":0,"
               "\"return\":10,\"ok\":true}\n");
    fprintf(f, "{\"client\":1,\"op\":\"write\",\"key\":\"k2\",\"value\":\"b\",\"expected\":null,\"call\":0,"
               "\"return\":10,\"ok\":true}\n");
    fprintf(f, "{\"client\":2,\"op\":\"list\",\"prefix\":\"k\",\"after\":null,\"entries\":[[\"k1\",\"a\"]],"
               "\"more\":true,\"call\":20,\"return\":30,\"ok\":true}\n");
    fprintf(f, "{\"client\":2,\"op\":\"list\",\"prefix\":\"k\",\"after\":\"k1\",\"entries\":[[\"k2\",\"b\"]],"
               "\"more\":false,\"call\":40,\"return\":50,\"ok\":true}\n");
    fprintf(f, "{\"client\":3,\"op\":\"list\",\"prefix\":\"k\",\"after\":null,\"entries\":[],"
               "\"more\":false,\"call\":40,\"return\":0,\"ok\":false}\n");
    fclose(f);
    struct lin_report r;
    cr_assert_eq(lin_check_file(path, &r), 0, "%s", r.why);
    cr_assert(r.linearizable, "%s", r.why);
    cr_assert_eq(r.pages, 2, "the failed page is dropped");
    cr_assert_eq(r.ops_checked, 4, "two writes, one read of each key from the pages (got %zu)", r.ops_checked);
    /* A later page that misses k2: not linearizable, and the page is named. */
    f = fopen(path, "a");
    fprintf(f, "{\"client\":2,\"op\":\"list\",\"prefix\":\"k\",\"after\":\"k1\",\"entries\":[],"
               "\"more\":false,\"call\":60,\"return\":70,\"ok\":true}\n");
    fclose(f);
    cr_assert_eq(lin_check_file(path, &r), 0, "%s", r.why);
    cr_assert_not(r.linearizable);
    cr_assert_eq(r.stuck.line, 6, "got line %zu", r.stuck.line);
    cr_assert(strstr(r.why, "list page from line 6") != NULL, "%s", r.why);
    /* A page whose entries are not [key, value] pairs is a bad file. */
    f = fopen(path, "a");
    fprintf(f, "{\"client\":2,\"op\":\"list\",\"prefix\":\"k\",\"after\":null,\"entries\":[\"k1\"],"
               "\"more\":false,\"call\":80,\"return\":90,\"ok\":true}\n");
    fclose(f);
    cr_assert_eq(lin_check_file(path, &r), -1);
    harness_rmrf(dir);
}
