/* Named series (agent/series.h, agent/sources.h): a command's output lines
 * (every accepted and refused form), series names, the min/avg/max bucket
 * arithmetic and its alignment, rollups merged by weight, --source parsing,
 * and the built-in sources read from a fake /proc and /sys (rates from two
 * reads, counters going backwards, partitions and loop devices left out). */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "agent/series.h"
#include "agent/sources.h"
#include "harness.h"

static bool parse(const char *s, struct series_line *out, char *err)
{
    return series_parse_line(s, strlen(s), out, err, 128);
}

Test(series, lines_accepted)
{
    struct series_line l;
    char err[128];
    cr_assert(parse("21.5", &l, err));
    cr_assert_str_eq(l.name, "");
    cr_assert_eq(l.value, 21.5);
    cr_assert(!l.has_unit);
    cr_assert(parse("  -3e2 lux\r", &l, err));
    cr_assert_eq(l.value, -300);
    cr_assert_str_eq(l.unit, "lux");
    cr_assert_str_eq(l.name, "");
    cr_assert(parse("cpu_temp\t48.0 C", &l, err));
    cr_assert_str_eq(l.name, "cpu_temp");
    cr_assert_eq(l.value, 48);
    cr_assert_str_eq(l.unit, "C");
    cr_assert(parse("7 9", &l, err)); /* two numbers: series "7" */
    cr_assert_str_eq(l.name, "7");
    cr_assert_eq(l.value, 9);
    cr_assert(!parse("", &l, err));
    cr_assert_str_eq(err, "", "an empty line is skipped, not an error");
    cr_assert(!parse("   \t", &l, err));
    cr_assert_str_eq(err, "");
}

Test(series, lines_refused)
{
    struct series_line l;
    char err[128];
    const char *bad[] = {"nan", "inf", "-inf", "1e999", "abc", "x 1 2 3", "a/b 1", "x nan", "x 1 a\"b",
                         "0x", "x 1 waytoolongunitname", "12abc", "\x01\x02"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        cr_assert(!parse(bad[i], &l, err), "accepted '%s'", bad[i]);
        cr_assert(err[0], "no reason for '%s'", bad[i]);
    }
    char longl[400];
    memset(longl, '1', sizeof longl - 1);
    longl[sizeof longl - 1] = 0;
    cr_assert(!parse(longl, &l, err));
    cr_assert(strstr(err, "at most 256"), "%s", err);
}

Test(series, names)
{
    cr_assert(series_name_ok("net.rx", 6));
    cr_assert(series_name_ok("a:b-c_d.9", 9));
    cr_assert(!series_name_ok("", 0));
    cr_assert(!series_name_ok("a/b", 3));
    cr_assert(!series_name_ok("a b", 3));
    cr_assert(!series_name_ok("a%2F", 4));
    char n65[66];
    memset(n65, 'a', 65);
    n65[65] = 0;
    cr_assert(series_name_ok(n65, 64));
    cr_assert(!series_name_ok(n65, 65));
}

Test(series, buckets)
{
    struct series_buckets sb;
    /* 10:00:00.500 to 10:00:05.200 in 1 s buckets: aligned down, 6 slots. */
    cr_assert_eq(series_buckets_init(&sb, 36000500, 36005200, 1000), 0);
    cr_assert_eq(sb.t0, 36000000);
    cr_assert_eq(sb.nb, 6);
    double v[] = {4, -2, 10, 0.5};
    for (int i = 0; i < 4; i++)
        series_buckets_add(&sb, 36001000 + (uint64_t)i * 250, v[i]);
    series_buckets_add(&sb, 35999999, 100); /* before the window: ignored */
    series_buckets_add(&sb, 36006000, 100); /* after it: ignored */
    series_buckets_add(&sb, 36005999, 7);   /* the last slot */
    cr_assert_eq(sb.b[0].n, 0);
    cr_assert_eq(sb.b[1].n, 4);
    cr_assert_eq(sb.b[1].min, -2);
    cr_assert_eq(sb.b[1].max, 10);
    cr_assert_eq(sb.b[1].sum / (double)sb.b[1].n, 3.125);
    cr_assert_eq(sb.b[5].n, 1);
    cr_assert_eq(sb.b[5].max, 7);
    series_buckets_free(&sb);
}

Test(series, rollups_merge_by_weight)
{
    struct series_buckets sb;
    cr_assert_eq(series_buckets_init(&sb, 0, 600000, 300000), 0);
    series_buckets_merge(&sb, 60000, 60, 1, 2, 3);   /* 60 points of avg 2 */
    series_buckets_merge(&sb, 120000, 20, -5, 10, 40); /* 20 of avg 10 */
    series_buckets_merge(&sb, 180000, 0, 99, 99, 99);  /* an empty rollup counts for nothing */
    series_buckets_add(&sb, 200000, 6);                /* a raw point beside them */
    cr_assert_eq(sb.b[0].n, 81);
    cr_assert_eq(sb.b[0].min, -5);
    cr_assert_eq(sb.b[0].max, 40);
    cr_assert_float_eq(sb.b[0].sum / 81.0, (60 * 2 + 20 * 10 + 6) / 81.0, 1e-12);
    series_buckets_free(&sb);
    cr_assert_neq(series_buckets_init(&sb, 10, 5, 1000), 0, "end before start");
}

Test(series, windows)
{
    const struct series_window *w = series_window_find("24h");
    cr_assert(w && w->rollups && w->bucket_ms == 300000 && w->span_ms == 86400000);
    w = series_window_find("1h");
    cr_assert(w && !w->rollups && w->span_ms / w->bucket_ms == 300);
    cr_assert(series_window_find("5m") && !series_window_find("7d") && !series_window_find(NULL));
}

Test(series, source_specs)
{
    struct cmd_source s;
    char err[256];
    char a[] = "temp=echo 21@500";
    cr_assert(cmd_source_parse(a, 1000, &s, err, sizeof err));
    cr_assert_str_eq(s.name, "temp");
    cr_assert_str_eq(s.command, "echo 21");
    cr_assert_eq(s.interval_ms, 500);
    char b[] = "mail=echo a@b.c";
    cr_assert(cmd_source_parse(b, 1000, &s, err, sizeof err));
    cr_assert_str_eq(s.command, "echo a@b.c", "an '@' not followed by digits alone is the command's");
    cr_assert_eq(s.interval_ms, 1000);
    char c[] = "bad/name=echo 1", d[] = "x=echo 1@50", e[] = "x=@500", f[] = "noequals", g[] = "x=echo@99999999999";
    cr_assert(!cmd_source_parse(c, 1000, &s, err, sizeof err));
    cr_assert(!cmd_source_parse(d, 1000, &s, err, sizeof err));
    cr_assert(strstr(err, "100 to 3600000"), "%s", err);
    cr_assert(!cmd_source_parse(e, 1000, &s, err, sizeof err));
    cr_assert(!cmd_source_parse(f, 1000, &s, err, sizeof err));
    cr_assert(!cmd_source_parse(g, 1000, &s, err, sizeof err));
}

/* --- built-in sources on a fake tree --- */

static char root[256];
struct got {
    char names[64][SERIES_NAME_MAX + 1];
    char units[64][SERIES_UNIT_MAX + 1];
    double v[64];
    int n;
};

static void collect(void *arg, const char *name, const char *unit, double v)
{
    struct got *g = arg;
    cr_assert_lt(g->n, 64);
    snprintf(g->names[g->n], sizeof g->names[0], "%s", name);
    snprintf(g->units[g->n], sizeof g->units[0], "%s", unit);
    g->v[g->n++] = v;
}

static double value_of(struct got *g, const char *name, const char *unit)
{
    for (int i = 0; i < g->n; i++)
        if (!strcmp(g->names[i], name)) {
            cr_assert_str_eq(g->units[i], unit, "%s", name);
            return g->v[i];
        }
    return -12345;
}

static void put(const char *rel, const char *text)
{
    char p[512];
    snprintf(p, sizeof p, "%s%s", root, rel);
    for (char *s = p + strlen(root) + 1; (s = strchr(s, '/')); s++) {
        *s = 0;
        mkdir(p, 0755);
        *s = '/';
    }
    FILE *f = fopen(p, "w");
    cr_assert(f, "%s", p);
    fputs(text, f);
    fclose(f);
}

static void net(unsigned long long lo, unsigned long long rx, unsigned long long tx)
{
    char t[1024];
    snprintf(t, sizeof t,
             "Inter-|   Receive                                                |  Transmit\n"
             " face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls carrier compressed\n"
             "    lo: %llu 10 0 0 0 0 0 0 %llu 10 0 0 0 0 0 0\n"
             "  eth0: %llu 5 0 0 0 0 0 0 %llu 5 0 0 0 0 0 0\n"
             "  wlan0: 100 1 0 0 0 0 0 0 50 1 0 0 0 0 0 0\n",
             lo, lo, rx, tx);
    put("/proc/net/dev", t);
}

static void disks(unsigned long long rd, unsigned long long wr)
{
    char t[1024];
    snprintf(t, sizeof t,
             "   8       0 sda 10 0 %llu 5 20 0 %llu 7 0 9 12 0 0 0 0\n"
             "   8       1 sda1 10 0 999999 5 20 0 999999 7 0 9 12 0 0 0 0\n"
             "   7       0 loop0 10 0 555 5 20 0 555 7 0 9 12 0 0 0 0\n",
             rd, wr);
    put("/proc/diskstats", t);
}

static void tree_setup(void)
{
    cr_assert_eq(harness_tmpdir(root, sizeof root, "series"), 0);
    put("/sys/block/sda/size", "1\n");
    put("/sys/block/loop0/size", "1\n");
    put("/sys/class/hwmon/hwmon3/name", "k10 temp!\n");
    put("/sys/class/hwmon/hwmon3/temp1_input", "48250\n");
    put("/sys/class/hwmon/hwmon3/temp2_input", "garbage\n");
    put("/sys/class/thermal/thermal_zone0/temp", "-1500\n");
}

static void tree_teardown(void)
{
    harness_rmrf(root);
}

Test(series, builtin_sources, .init = tree_setup, .fini = tree_teardown)
{
    struct builtin_state st;
    memset(&st, 0, sizeof st);
    struct got g = {0};
    net(1000, 5000, 8000);
    disks(100, 200);
    builtin_sources_read(root, &st, 10000, collect, &g);
    /* No rates on the first read; temperatures at once. */
    cr_assert_eq(value_of(&g, "net.rx", "B/s"), -12345);
    cr_assert_eq(value_of(&g, "temp.k10_temp_.3.1", "C"), 48.25);
    cr_assert_eq(value_of(&g, "temp.zone0", "C"), -1.5);
    cr_assert_eq(g.n, 2, "the garbage temp2_input is left out");

    memset(&g, 0, sizeof g);
    net(999999, 5000 + 4000, 8000 + 1000); /* lo's traffic does not count */
    disks(100 + 8, 200 + 2048);            /* sectors of 512 bytes */
    builtin_sources_read(root, &st, 12000, collect, &g);
    cr_assert_eq(value_of(&g, "net.rx", "B/s"), 2000);
    cr_assert_eq(value_of(&g, "net.tx", "B/s"), 500);
    cr_assert_eq(value_of(&g, "disk.sda.read", "B/s"), 8 * 512 / 2.0);
    cr_assert_eq(value_of(&g, "disk.sda.write", "B/s"), 2048 * 512 / 2.0);
    cr_assert_eq(value_of(&g, "disk.sda1.read", "B/s"), -12345, "partitions are counted in their disk");
    cr_assert_eq(value_of(&g, "disk.loop0.read", "B/s"), -12345, "loop devices are left out");

    memset(&g, 0, sizeof g);
    net(0, 10, 10); /* counters reset (an interface came back): no rate, not a huge one */
    disks(1, 1);
    builtin_sources_read(root, &st, 13000, collect, &g);
    cr_assert_eq(value_of(&g, "net.rx", "B/s"), -12345);
    cr_assert_eq(value_of(&g, "disk.sda.read", "B/s"), -12345);
}
