/* kv/engine_stats.c: RocksDB's statistics texts read into counts, and texts
 * in another shape refused rather than misread. The texts are what RocksDB
 * 7.8 (Debian 12) prints, with numbers changed so each count is distinct. */
#include <criterion/criterion.h>
#include <string.h>

#include "kv/store.h"

static const char cfstats[] =
    "\n** Compaction Stats [default] **\n"
    "Level    Files   Size     Score Read(GB)  Rn(GB) Rnp1(GB) Write(GB) Wnew(GB) Moved(GB) W-Amp Rd(MB/s) "
    "Wr(MB/s) Comp(sec) CompMergeCPU(sec) Comp(cnt) Avg(sec) KeyIn KeyDrop Rblob(GB) Wblob(GB)\n"
    "------------------------------------------------------------------\n"
    "  L0      0/0    0.00 KB   0.0      0.0     0.0      0.0       0.0      0.0       0.0   1.0      0.0      "
    "9.1      0.05              0.03        64    0.001       0      0       0.0       0.0\n"
    "  L1      1/0   47.61 KB   0.0      0.0     0.0      0.0       0.0     -0.0       0.0   1.7     24.2     "
    "14.9      0.04              0.03        14    0.003     59K    17K       0.0       0.0\n"
    " Sum      1/0   47.61 KB   0.0      0.0     0.0      0.0       0.0      0.0       0.0   2.4     11.3     "
    "11.8      0.09              0.06        78    0.001     59K    17K       0.0       0.0\n"
    "\n** Compaction Stats [default] **\n"
    "Priority    Files   Size     Score Read(GB)  Rn(GB) Rnp1(GB) Write(GB) Wnew(GB) Moved(GB) W-Amp Rd(MB/s) "
    "Wr(MB/s) Comp(sec) CompMergeCPU(sec) Comp(cnt) Avg(sec) KeyIn KeyDrop Rblob(GB) Wblob(GB)\n"
    "------------------------------------------------------------------\n"
    " Low      0/0    0.00 KB   0.0      0.0     0.0      0.0       0.0     -0.0       0.0   0.0     24.2     "
    "14.9      0.04              0.03        13    0.003     59K    17K       0.0       0.0\n"
    "High      0/0    0.00 KB   0.0      0.0     0.0      0.0       0.0      0.0       0.0   0.0      0.0      "
    "9.1      0.05              0.03        63    0.001       0      0       0.0       0.0\n"
    "\nUptime(secs): 0.2 total, 0.1 interval\n"
    "Stalls(count): 2 level0_slowdown, 1 level0_slowdown_with_compaction, 3 level0_numfiles, 1 "
    "level0_numfiles_with_compaction, 4 stop for pending_compaction_bytes, 5 slowdown for "
    "pending_compaction_bytes, 20 memtable_compaction, 6 memtable_slowdown, interval 7 total count\n";

static const char dbstats[] =
    "\n** DB Stats **\nUptime(secs): 0.2 total, 0.1 interval\n"
    "Cumulative writes: 20K writes, 20K keys, 20K commit groups, 1.0 writes per commit group, ingest: 0.00 GB\n"
    "Cumulative stall: 01:02:3.036 H:M:S, 24.0 percent\n"
    "Interval stall: 00:00:0.036 H:M:S, 24.9 percent\n";

Test(engine_stats, reads_each_count)
{
    struct store_engine_stats es = {0};
    cr_assert(store_parse_cfstats(cfstats, &es));
    cr_assert_eq(es.flushes, 63, "High priority row: flushes, got %llu", (unsigned long long)es.flushes);
    cr_assert_eq(es.compactions, 13, "Low priority row: compactions, got %llu", (unsigned long long)es.compactions);
    /* 2 + 3 + 4 + 5 + 20 + 6: the with_compaction subsets and the interval are not added */
    cr_assert_eq(es.stalls, 40, "got %llu", (unsigned long long)es.stalls);
    cr_assert(store_parse_dbstats(dbstats, &es));
    cr_assert_eq(es.stall_us, 3723036000ull, "01:02:3.036, got %llu", (unsigned long long)es.stall_us);
    /* Families add up. */
    cr_assert(store_parse_cfstats(cfstats, &es));
    cr_assert_eq(es.flushes, 126);
    cr_assert_eq(es.stalls, 80);
}

Test(engine_stats, another_shape_is_refused_and_adds_nothing)
{
    static const char *const bad[] = {
        "",
        "no tables here\n",
        /* No Priority table. */
        "Level Files Comp(cnt) Avg(sec)\n  L0 1/0 5 0.1\nStalls(count): 1 memtable_compaction, interval 1 total count\n",
        /* No Comp(cnt) column. */
        "Priority Files Size Count\n Low 0/0 0.0 KB 3\nHigh 0/0 0.0 KB 4\n"
        "Stalls(count): 1 memtable_compaction, interval 1 total count\n",
        /* A count that is not a number. */
        "Priority Files Comp(cnt) Avg(sec)\n Low 0/0 x 0.1\nHigh 0/0 4 0.1\n"
        "Stalls(count): 1 memtable_compaction, interval 1 total count\n",
        /* No stall line. */
        "Priority Files Comp(cnt) Avg(sec)\n Low 0/0 3 0.1\nHigh 0/0 4 0.1\n",
        /* A stall cause without its count. */
        "Priority Files Comp(cnt) Avg(sec)\n Low 0/0 3 0.1\nHigh 0/0 4 0.1\n"
        "Stalls(count): memtable_compaction, interval 1 total count\n",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        struct store_engine_stats es = {0};
        cr_assert_not(store_parse_cfstats(bad[i], &es), "text %zu", i);
        cr_assert_eq(es.flushes + es.compactions + es.stalls, 0, "text %zu", i);
    }
    struct store_engine_stats es = {0};
    cr_assert_not(store_parse_cfstats(NULL, &es));
    cr_assert_not(store_parse_dbstats(NULL, &es));
    cr_assert_not(store_parse_dbstats("Cumulative stall: soon H:M:S\n", &es));
    cr_assert_not(store_parse_dbstats("Interval stall: 00:00:1.000 H:M:S\n", &es));
    cr_assert_eq(es.stall_us, 0);
    /* The smallest well-formed text is read. */
    cr_assert(store_parse_cfstats("Priority Files Comp(cnt) Avg(sec)\n Low 0/0 3 0.1\nHigh 0/0 4 0.1\n"
                                  "Stalls(count): 1 memtable_compaction, interval 1 total count\n",
                                  &es));
    cr_assert_eq(es.flushes, 4);
    cr_assert_eq(es.compactions, 3);
    cr_assert_eq(es.stalls, 1);
}
