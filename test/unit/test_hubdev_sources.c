/* CPU, memory and load as named series (agent/sources.h, issue 23): the
 * built-in reader on a fake /proc emits cpu and cpu.N (% since the previous
 * read), mem.used and mem.available (bytes), load.1, with the numbers the
 * metrics path computes from the same files; a core offline in one read, a
 * counter going backwards and garbage files leave those series out without
 * touching the others. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "agent/sources.h"
#include "harness.h"

static char root[256];

struct seen {
    char names[96][SERIES_NAME_MAX + 1];
    char units[96][SERIES_UNIT_MAX + 1];
    double v[96];
    int n;
};

static void keep(void *arg, const char *name, const char *unit, double v)
{
    struct seen *g = arg;
    cr_assert_lt(g->n, 96);
    snprintf(g->names[g->n], sizeof g->names[0], "%s", name);
    snprintf(g->units[g->n], sizeof g->units[0], "%s", unit);
    g->v[g->n++] = v;
}

#define NONE (-12345.0)
static double got(const struct seen *g, const char *name, const char *unit)
{
    for (int i = 0; i < g->n; i++)
        if (!strcmp(g->names[i], name)) {
            cr_assert_str_eq(g->units[i], unit, "the unit of %s", name);
            return g->v[i];
        }
    return NONE;
}

static void write_file(const char *rel, const char *text)
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

/* /proc/stat: user nice system idle iowait irq softirq steal (busy: all but idle and iowait). */
static void stat_file(const char *text)
{
    write_file("/proc/stat", text);
}

static void setup(void)
{
    cr_assert_eq(harness_tmpdir(root, sizeof root, "hubdev-src"), 0);
    write_file("/proc/meminfo", "MemTotal:       16000000 kB\nMemFree:         1000000 kB\n"
                                "MemAvailable:    4000000 kB\nBuffers:          100000 kB\nCached:          2000000 kB\n"
                                "SwapTotal:             0 kB\nSwapFree:              0 kB\n");
    write_file("/proc/loadavg", "0.75 0.50 0.25 2/345 6789\n");
}

static void teardown(void)
{
    harness_rmrf(root);
}

Test(hubdev_sources, cpu_mem_load, .init = setup, .fini = teardown)
{
    struct builtin_state st;
    memset(&st, 0, sizeof st);
    struct seen g = {0};
    stat_file("cpu  100 0 100 800 0 0 0 0 0 0\n"
              "cpu0 50 0 50 400 0 0 0 0 0 0\n"
              "cpu1 50 0 50 400 0 0 0 0 0 0\n"
              "btime 1700000000\n");
    builtin_sources_read(root, &st, 10000, keep, &g);
    /* No CPU on the first read (a rate); memory and load at once. */
    cr_assert_eq(got(&g, "cpu", "%"), NONE);
    cr_assert_eq(got(&g, "mem.used", "B"), 12000000.0 * 1024);
    cr_assert_eq(got(&g, "mem.available", "B"), 4000000.0 * 1024);
    cr_assert_float_eq(got(&g, "load.1", ""), 0.75, 1e-9);
    cr_assert_eq(g.n, 3);

    memset(&g, 0, sizeof g);
    stat_file("cpu  500 0 200 1500 0 0 0 0 0 0\n"  /* +500 busy, +700 idle */
              "cpu0 350 0 50 500 0 0 0 0 0 0\n"    /* +300 busy, +100 idle: 75% */
              "cpu1 150 0 150 1000 0 0 0 0 0 0\n"  /* +200 busy, +600 idle: 25% */
              "btime 1700000000\n");
    builtin_sources_read(root, &st, 11000, keep, &g);
    cr_assert_float_eq(got(&g, "cpu", "%"), 100.0 * 500 / 1200, 1e-3);
    cr_assert_float_eq(got(&g, "cpu.0", "%"), 75.0, 1e-3);
    cr_assert_float_eq(got(&g, "cpu.1", "%"), 25.0, 1e-3);
    cr_assert_eq(got(&g, "cpu.2", "%"), NONE);
    cr_assert_eq(got(&g, "mem.used", "B"), 12000000.0 * 1024);
    cr_assert_float_eq(got(&g, "load.1", ""), 0.75, 1e-9);

    /* cpu1 goes offline, cpu0 goes backwards: neither is a series this
     * time; the machine's cpu still is. */
    memset(&g, 0, sizeof g);
    stat_file("cpu  600 0 200 1600 0 0 0 0 0 0\n"
              "cpu0 10 0 10 10 0 0 0 0 0 0\n"
              "btime 1700000000\n");
    builtin_sources_read(root, &st, 12000, keep, &g);
    cr_assert_float_eq(got(&g, "cpu", "%"), 50.0, 1e-3);
    cr_assert_eq(got(&g, "cpu.0", "%"), NONE, "a core whose counters went backwards");
    cr_assert_eq(got(&g, "cpu.1", "%"), NONE, "a core offline in this read");
}

Test(hubdev_sources, garbage_leaves_series_out, .init = setup, .fini = teardown)
{
    struct builtin_state st;
    memset(&st, 0, sizeof st);
    struct seen g = {0};
    stat_file("cpu  100 0 100 800 0 0 0 0 0 0\n");
    builtin_sources_read(root, &st, 10000, keep, &g);
    stat_file("cpu  garbage\n");
    write_file("/proc/meminfo", "MemFree: lots\n");
    write_file("/proc/loadavg", "\x01\x02 not a load\n");
    memset(&g, 0, sizeof g);
    builtin_sources_read(root, &st, 11000, keep, &g);
    cr_assert_eq(g.n, 0, "nothing from garbage files (got %d series, the first %s)", g.n, g.n ? g.names[0] : "");
    /* A good read after a bad one is a first read again: no rate across the gap. */
    stat_file("cpu  200 0 200 1600 0 0 0 0 0 0\n");
    builtin_sources_read(root, &st, 12000, keep, &g);
    cr_assert_eq(got(&g, "cpu", "%"), NONE);
    stat_file("cpu  300 0 200 1700 0 0 0 0 0 0\n");
    builtin_sources_read(root, &st, 13000, keep, &g);
    cr_assert_float_eq(got(&g, "cpu", "%"), 50.0, 1e-3);
}
