/* The agent's sampler: CPU percent from /proc/stat deltas (exact values, with
 * counters going backwards and cores coming and going), memory, load and
 * uptime from a fake /proc, bad files as errors, the ring and the backlog,
 * the JSON a dashboard reads, and one real sample of this machine. */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "agent/sample.h"
#include "harness.h"
#include "util/clock.h"

static char root[256];

static void setup(void)
{
    cr_assert_eq(harness_tmpdir(root, sizeof root, "sample"), 0);
    char p[300];
    snprintf(p, sizeof p, "%s/proc", root);
    cr_assert_eq(mkdir(p, 0755), 0);
    snprintf(p, sizeof p, "%s/etc", root);
    cr_assert_eq(mkdir(p, 0755), 0);
}

static void teardown(void)
{
    harness_rmrf(root);
}

TestSuite(sample, .init = setup, .fini = teardown);

static void put_file(const char *rel, const char *text)
{
    char p[300];
    snprintf(p, sizeof p, "%s%s", root, rel);
    FILE *f = fopen(p, "w");
    cr_assert_not_null(f, "%s: %s", p, strerror(errno));
    fputs(text, f);
    fclose(f);
}

static void rm_file(const char *rel)
{
    char p[300];
    snprintf(p, sizeof p, "%s%s", root, rel);
    cr_assert_eq(remove(p), 0);
}

/* A plausible machine: everything sampler_sample needs. */
static void put_machine(const char *stat)
{
    put_file("/proc/stat", stat);
    put_file("/proc/meminfo", "MemTotal:        8000000 kB\n"
                              "MemFree:         1000000 kB\n"
                              "MemAvailable:    6000000 kB\n"
                              "Buffers:          100000 kB\n"
                              "Cached:          2000000 kB\n"
                              "SwapTotal:       2000000 kB\n"
                              "SwapFree:        1500000 kB\n"
                              "HugePages_Total:       0\n"
                              "Hugepagesize:       2048 kB\n");
    put_file("/proc/loadavg", "0.52 1.25 10.00 3/456 7890\n");
    put_file("/proc/uptime", "23308.74 20917.16\n");
}

/*                      user nice system idle iowait irq softirq steal guest guest_nice */
#define STAT1                                                                   \
    "cpu  2000 200 1000 16000 400 100 100 200 300 0\n"                          \
    "cpu0 1000 100 500 8000 200 50 50 100 150 0\n"                              \
    "cpu1 1000 100 500 8000 200 50 50 100 150 0\n"                              \
    "intr 12345 0 0 0\n"                                                        \
    "ctxt 999\n"                                                                \
    "btime 1717976692\n"                                                        \
    "processes 1000\n"

/* cpu0: user +100 (of which guest +80: already inside user, not added again),
 *       system +50 -> busy +150; idle +300, iowait +50 -> idle +350: 30%.
 * cpu1: user +200, irq +20, softirq +30, steal +100 -> busy +350; idle +150: 70%.
 * cpu: the sums, busy +500, idle +500: 50%. */
#define STAT2                                                                   \
    "cpu  2300 200 1050 16450 450 120 130 300 380 0\n"                          \
    "cpu0 1100 100 550 8300 250 50 50 100 230 0\n"                              \
    "cpu1 1200 100 500 8150 200 70 80 200 150 0\n"                              \
    "intr 12399 0 0 0\n"                                                        \
    "btime 1717976692\n"

static void read_stat(const char *text, struct cpu_stat *st)
{
    put_file("/proc/stat", text);
    struct errbuf eb = {{0}};
    int rc = sample_read_cpu_stat(root, st, &eb);
    cr_assert_eq(rc, 0, "%s", eb.msg);
}

static struct cpu_stat st1, st2;
static struct sample smp;

Test(sample, cpu_percent_is_the_busy_share_of_the_ticks_between_two_reads)
{
    read_stat(STAT1, &st1);
    read_stat(STAT2, &st2);
    memset(&smp, 0, sizeof smp);
    sample_cpu_pct(&st1, &st2, &smp);
    cr_assert_eq(smp.cpu_pct, 50.0f, "overall %f", smp.cpu_pct);
    cr_assert_eq(smp.n_cores, 2);
    cr_assert_eq(smp.cpu_core_pct[0], 30.0f, "cpu0 %f", smp.cpu_core_pct[0]);
    cr_assert_eq(smp.cpu_core_pct[1], 70.0f, "cpu1 %f", smp.cpu_core_pct[1]);
}

Test(sample, the_sampler_measures_each_sample_since_the_one_before)
{
    put_machine(STAT1);
    static struct sampler s;
    struct errbuf eb = {{0}};
    cr_assert_eq(sampler_init(&s, root, NULL, 0, &eb), 0, "%s", eb.msg);
    put_file("/proc/stat", STAT2);
    uint64_t before = clock_wall_ms();
    cr_assert_eq(sampler_sample(&s, &smp, &eb), 0, "%s", eb.msg);
    cr_assert_geq(smp.ts_ms, before);
    cr_assert_leq(smp.ts_ms, clock_wall_ms());
    cr_assert_eq(smp.cpu_pct, 50.0f);
    cr_assert_eq(smp.cpu_core_pct[0], 30.0f);
    cr_assert_eq(smp.cpu_core_pct[1], 70.0f);
    /* Nothing moved since: no tick passed, so no value rather than 0 or NaN. */
    cr_assert_eq(sampler_sample(&s, &smp, &eb), 0, "%s", eb.msg);
    cr_assert_eq(smp.cpu_pct, SAMPLE_NO_VALUE);
    cr_assert_eq(smp.cpu_core_pct[0], SAMPLE_NO_VALUE);
    cr_assert_eq(smp.cpu_core_pct[1], SAMPLE_NO_VALUE);
}

Test(sample, counters_going_backwards_give_no_value_for_that_interval)
{
    read_stat(STAT1, &st1);
    /* cpu1's busy ticks fell (a reset): no value. cpu0's iowait dipped by 10
     * while idle rose by 110: the idle sum still grew by 100, a real interval
     * (the kernel documents that iowait may decrease): busy +100 -> 50%. */
    read_stat("cpu  2100 200 1000 16110 390 100 100 200 300 0\n"
              "cpu0 1100 100 500 8110 190 50 50 100 150 0\n"
              "cpu1 900 100 500 8100 200 50 50 100 150 0\n",
              &st2);
    memset(&smp, 0, sizeof smp);
    sample_cpu_pct(&st1, &st2, &smp);
    cr_assert_eq(smp.cpu_core_pct[0], 50.0f, "cpu0 %f", smp.cpu_core_pct[0]);
    cr_assert_eq(smp.cpu_core_pct[1], SAMPLE_NO_VALUE);

    /* The whole-machine line going backwards: no overall value either. */
    read_stat("cpu  1000 200 1000 17000 400 100 100 200 300 0\n"
              "cpu0 1000 100 500 8100 200 50 50 100 150 0\n",
              &st2);
    sample_cpu_pct(&st1, &st2, &smp);
    cr_assert_eq(smp.cpu_pct, SAMPLE_NO_VALUE);
    cr_assert_eq(smp.cpu_core_pct[0], 0.0f, "cpu0 only idled: 0%%, a real value");
}

Test(sample, a_core_that_goes_offline_or_comes_online_has_no_value_that_interval)
{
    read_stat("cpu  400 0 0 400 0 0 0 0 0 0\n"
              "cpu0 100 0 0 100 0 0 0 0 0 0\n"
              "cpu1 100 0 0 100 0 0 0 0 0 0\n"
              "cpu2 100 0 0 100 0 0 0 0 0 0\n"
              "cpu3 100 0 0 100 0 0 0 0 0 0\n",
              &st1);
    /* cpu2 went offline, cpu4 came online; the kernel keeps counting every
     * possible CPU in the "cpu" line. */
    read_stat("cpu  600 0 0 800 0 0 0 0 0 0\n"
              "cpu0 150 0 0 150 0 0 0 0 0 0\n"
              "cpu1 200 0 0 100 0 0 0 0 0 0\n"
              "cpu3 100 0 0 200 0 0 0 0 0 0\n"
              "cpu4 50 0 0 50 0 0 0 0 0 0\n",
              &st2);
    cr_assert_eq(st2.online, 4);
    memset(&smp, 0, sizeof smp);
    sample_cpu_pct(&st1, &st2, &smp);
    cr_assert_eq(smp.n_cores, 5);
    cr_assert_eq(smp.cpu_core_pct[0], 50.0f);
    cr_assert_eq(smp.cpu_core_pct[1], 100.0f);
    cr_assert_eq(smp.cpu_core_pct[2], SAMPLE_NO_VALUE);
    cr_assert_eq(smp.cpu_core_pct[3], 0.0f);
    cr_assert_eq(smp.cpu_core_pct[4], SAMPLE_NO_VALUE);
    cr_assert_float_eq(smp.cpu_pct, 100.0 / 3, 1e-5, "overall %f", smp.cpu_pct);

    json_t *j = sample_to_json(&smp);
    cr_assert_not_null(j);
    json_t *cores = json_object_get(j, "cpu_cores");
    cr_assert_eq(json_array_size(cores), 5);
    cr_assert(json_is_null(json_array_get(cores, 2)));
    cr_assert(json_is_null(json_array_get(cores, 4)));
    cr_assert_float_eq(json_real_value(json_array_get(cores, 1)), 100.0, 1e-9);
    json_decref(j);

    /* The next interval, with cpu2 still gone: the array holds the cores there are. */
    sample_cpu_pct(&st2, &st2, &smp);
    cr_assert_eq(smp.n_cores, 5);
    cr_assert_eq(smp.cpu_core_pct[2], SAMPLE_NO_VALUE);
}

Test(sample, memory_comes_from_meminfo_in_bytes)
{
    put_machine(STAT1);
    struct errbuf eb = {{0}};
    memset(&smp, 0, sizeof smp);
    cr_assert_eq(sample_read_mem(root, &smp, &eb), 0, "%s", eb.msg);
    cr_assert_eq(smp.mem_total, 8000000ull * 1024);
    cr_assert_eq(smp.mem_avail, 6000000ull * 1024);
    cr_assert_eq(smp.mem_used, 2000000ull * 1024);
    cr_assert_eq(smp.mem_pct, 25.0f);
    cr_assert_eq(smp.swap_total, 2000000ull * 1024);
    cr_assert_eq(smp.swap_free, 1500000ull * 1024);

    /* Before Linux 3.14 there is no MemAvailable: free + buffers + cached. */
    put_file("/proc/meminfo", "MemTotal: 1000 kB\nMemFree: 100 kB\nBuffers: 50 kB\nCached: 350 kB\n");
    cr_assert_eq(sample_read_mem(root, &smp, &eb), 0, "%s", eb.msg);
    cr_assert_eq(smp.mem_avail, 500ull * 1024);
    cr_assert_eq(smp.mem_used, 500ull * 1024);
    cr_assert_eq(smp.mem_pct, 50.0f);
    cr_assert_eq(smp.swap_total, 0);
}

Test(sample, load_and_uptime_come_from_proc)
{
    put_machine(STAT1);
    struct errbuf eb = {{0}};
    memset(&smp, 0, sizeof smp);
    cr_assert_eq(sample_read_load(root, &smp, &eb), 0, "%s", eb.msg);
    cr_assert_float_eq(smp.load1, 0.52, 1e-9);
    cr_assert_float_eq(smp.load5, 1.25, 1e-9);
    cr_assert_float_eq(smp.load15, 10.0, 1e-9);
    cr_assert_eq(sample_read_uptime(root, &smp, &eb), 0, "%s", eb.msg);
    cr_assert_eq(smp.uptime_s, 23308);

    static struct sampler s;
    cr_assert_eq(sampler_init(&s, root, NULL, 0, &eb), 0, "%s", eb.msg);
    cr_assert_eq(sampler_sample(&s, &smp, &eb), 0, "%s", eb.msg);
    cr_assert_eq(smp.mem_total, 8000000ull * 1024);
    cr_assert_float_eq(smp.load5, 1.25, 1e-9);
    cr_assert_eq(smp.uptime_s, 23308);
    cr_assert_eq(smp.n_disks, 0);
}

static int stat_rc(const char *text)
{
    put_file("/proc/stat", text);
    struct errbuf eb = {{0}};
    return sample_read_cpu_stat(root, &st1, &eb);
}

Test(sample, malformed_or_missing_files_are_errors)
{
    struct errbuf eb = {{0}};
    memset(&smp, 0, sizeof smp);
    /* Missing: ERR_IO, naming the file. */
    cr_assert_eq(sample_read_cpu_stat(root, &st1, &eb), ERR_IO);
    cr_assert(strstr(eb.msg, "/proc/stat") != NULL, "%s", eb.msg);
    cr_assert_eq(sample_read_mem(root, &smp, &eb), ERR_IO);
    cr_assert_eq(sample_read_load(root, &smp, &eb), ERR_IO);
    cr_assert_eq(sample_read_uptime(root, &smp, &eb), ERR_IO);

    /* /proc/stat */
    cr_assert_eq(stat_rc(""), ERR_BAD_INPUT, "empty");
    cr_assert_eq(stat_rc("intr 1 2 3\nbtime 5\n"), ERR_BAD_INPUT, "no cpu line");
    cr_assert_eq(stat_rc("cpu  1 2 3\n"), ERR_BAD_INPUT, "three columns");
    cr_assert_eq(stat_rc("cpu  1 2 x 4\n"), ERR_BAD_INPUT, "not a number");
    cr_assert_eq(stat_rc("cpu  1 2 -3 4\n"), ERR_BAD_INPUT, "negative");
    cr_assert_eq(stat_rc("cpu  1 2 99999999999999999999999 4\n"), ERR_BAD_INPUT, "over 2^64");
    cr_assert_eq(stat_rc("cpu  1 2 3 4\ncpuX 1 2 3 4\n"), ERR_BAD_INPUT, "bad core name");
    cr_assert_eq(stat_rc("cpu  1 2 3 4\ncpu0 1 2\n"), ERR_BAD_INPUT, "short core line");
    cr_assert_eq(stat_rc("cpu  1 2 3 4\nbtime soon\n"), ERR_BAD_INPUT, "bad btime");
    cr_assert_eq(stat_rc("cpu  1 2 3 4\n"), 0, "four columns: a very old kernel");
    cr_assert_eq(stat_rc("cpu  1 2 3 4 5 6 7 8 9 10 11 12\n"), 0, "more columns: a newer kernel");
    cr_assert_eq(stat_rc("cpu  1 2 3 4\ncpu9999 1 2 3 4\n"), 0, "a core past the cap is counted");
    cr_assert_eq(st1.online, 1);
    cr_assert_eq(st1.n_cores, 0);

    /* /proc/meminfo */
    put_file("/proc/meminfo", "");
    cr_assert_eq(sample_read_mem(root, &smp, &eb), ERR_BAD_INPUT);
    put_file("/proc/meminfo", "MemFree: 10 kB\nMemAvailable: 10 kB\n");
    cr_assert_eq(sample_read_mem(root, &smp, &eb), ERR_BAD_INPUT, "no MemTotal");
    put_file("/proc/meminfo", "MemTotal: lots kB\nMemAvailable: 10 kB\n");
    cr_assert_eq(sample_read_mem(root, &smp, &eb), ERR_BAD_INPUT);
    put_file("/proc/meminfo", "MemTotal: 100 kB junk\nMemAvailable: 10 kB\n");
    cr_assert_eq(sample_read_mem(root, &smp, &eb), ERR_BAD_INPUT);
    put_file("/proc/meminfo", "MemTotal: 0 kB\nMemAvailable: 0 kB\n");
    cr_assert_eq(sample_read_mem(root, &smp, &eb), ERR_BAD_INPUT, "zero total: no division by it");
    put_file("/proc/meminfo", "MemTotal: 100 kB\n");
    cr_assert_eq(sample_read_mem(root, &smp, &eb), ERR_BAD_INPUT, "nothing to say what is free");

    /* /proc/loadavg and /proc/uptime */
    put_file("/proc/loadavg", "");
    cr_assert_eq(sample_read_load(root, &smp, &eb), ERR_BAD_INPUT);
    put_file("/proc/loadavg", "0.5 1.0\n");
    cr_assert_eq(sample_read_load(root, &smp, &eb), ERR_BAD_INPUT);
    put_file("/proc/loadavg", "0.5 high 1.0 1/2 3\n");
    cr_assert_eq(sample_read_load(root, &smp, &eb), ERR_BAD_INPUT);
    put_file("/proc/loadavg", "0.5. 1.0 2.0 1/2 3\n");
    cr_assert_eq(sample_read_load(root, &smp, &eb), ERR_BAD_INPUT);
    put_file("/proc/uptime", "up a while\n");
    cr_assert_eq(sample_read_uptime(root, &smp, &eb), ERR_BAD_INPUT);
    put_file("/proc/uptime", "-5.00 1.00\n");
    cr_assert_eq(sample_read_uptime(root, &smp, &eb), ERR_BAD_INPUT);
}

Test(sample, a_failed_sample_keeps_the_previous_cpu_read)
{
    put_machine(STAT1);
    static struct sampler s;
    struct errbuf eb = {{0}};
    cr_assert_eq(sampler_init(&s, root, NULL, 0, &eb), 0, "%s", eb.msg);
    put_file("/proc/stat", STAT2);
    put_file("/proc/meminfo", "garbage\n");
    cr_assert_eq(sampler_sample(&s, &smp, &eb), ERR_BAD_INPUT);
    put_machine(STAT2);
    /* The sample after the failure spans both intervals: STAT1 -> STAT2. */
    cr_assert_eq(sampler_sample(&s, &smp, &eb), 0, "%s", eb.msg);
    cr_assert_eq(smp.cpu_pct, 50.0f);
    cr_assert_eq(smp.cpu_core_pct[0], 30.0f);

    /* No /proc/stat at start: the sampler refuses to start. */
    rm_file("/proc/stat");
    cr_assert_eq(sampler_init(&s, root, NULL, 0, &eb), ERR_IO);
}

Test(sample, sampler_init_checks_the_mount_points)
{
    put_machine(STAT1);
    static struct sampler s;
    struct errbuf eb = {{0}};
    const char *rel[] = {"data"};
    cr_assert_eq(sampler_init(&s, root, rel, 1, &eb), ERR_BAD_INPUT);
    char longm[SAMPLE_MOUNT_MAX + 1];
    memset(longm, 'a', sizeof longm - 1);
    longm[0] = '/';
    longm[sizeof longm - 1] = '\0';
    const char *lm[] = {longm};
    cr_assert_eq(sampler_init(&s, root, lm, 1, &eb), ERR_TOO_LARGE);
    const char *many[SAMPLE_DISKS_MAX + 1];
    for (int i = 0; i <= SAMPLE_DISKS_MAX; i++)
        many[i] = "/";
    cr_assert_eq(sampler_init(&s, root, many, SAMPLE_DISKS_MAX + 1, &eb), ERR_TOO_LARGE);
}

Test(sample, disk_usage_is_statvfs_under_the_root_as_df_computes_it)
{
    put_machine(STAT1);
    char p[300];
    snprintf(p, sizeof p, "%s/data", root);
    cr_assert_eq(mkdir(p, 0755), 0);
    static struct sampler s;
    struct errbuf eb = {{0}};
    const char *mounts[] = {"/", "/data", "/gone"};
    cr_assert_eq(sampler_init(&s, root, mounts, 3, &eb), 0, "%s", eb.msg);
    cr_assert_eq(sampler_sample(&s, &smp, &eb), 0, "%s", eb.msg);
    cr_assert_eq(smp.n_disks, 3);
    for (int i = 0; i < 2; i++) {
        const struct disk_sample *d = &smp.disks[i];
        cr_assert_str_eq(d->mount, mounts[i]);
        cr_assert_eq(d->err, 0);
        cr_assert_gt(d->total, 0);
        cr_assert_leq(d->used + d->avail, d->total, "bavail <= bfree: reserved blocks are neither");
        cr_assert(d->pct >= 0 && d->pct <= 100, "pct %f", d->pct);
        double want = 100.0 * (double)d->used / (double)(d->used + d->avail);
        cr_assert_float_eq(d->pct, want, 1e-3);
    }
    cr_assert_str_eq(smp.disks[2].mount, "/gone");
    cr_assert_eq(smp.disks[2].err, ENOENT);

    json_t *j = sample_to_json(&smp);
    cr_assert_not_null(j);
    json_t *disks = json_object_get(j, "disks");
    cr_assert_eq(json_array_size(disks), 3);
    json_t *d0 = json_array_get(disks, 0);
    cr_assert_str_eq(json_string_value(json_object_get(d0, "mount")), "/");
    cr_assert_eq((uint64_t)json_integer_value(json_object_get(d0, "total")), smp.disks[0].total);
    cr_assert_eq((uint64_t)json_integer_value(json_object_get(d0, "used")), smp.disks[0].used);
    cr_assert_eq((uint64_t)json_integer_value(json_object_get(d0, "avail")), smp.disks[0].avail);
    cr_assert(json_is_real(json_object_get(d0, "pct")));
    json_t *d2 = json_array_get(disks, 2);
    cr_assert_str_eq(json_string_value(json_object_get(d2, "error")), strerror(ENOENT));
    cr_assert_null(json_object_get(d2, "total"), "a failed disk has no numbers");
    json_decref(j);
}

/* ---- host info ---- */

static struct host_info hi;

Test(sample, host_info_reads_the_fake_tree_and_the_real_kernel)
{
    put_machine("cpu  1 2 3 4\ncpu0 1 2 3 4\ncpu1 1 2 3 4\ncpu3 1 2 3 4\nbtime 1717976692\n");
    put_file("/etc/os-release", "NAME=\"Ubuntu\"\n"
                                "VERSION_ID=\"22.04\"\n"
                                "PRETTY_NAME=\"Ubuntu 22.04.4 LTS \\\"Jammy\\\"\"\n"
                                "ID=ubuntu\n");
    put_file("/proc/cpuinfo", "processor\t: 0\n"
                              "vendor_id\t: GenuineIntel\n"
                              "model name\t: Intel(R) Xeon(R) CPU E5-2680 v4 @ 2.40GHz \n"
                              "flags\t\t: fpu vme\n\n"
                              "processor\t: 1\n"
                              "model name\t: Intel(R) Xeon(R) CPU E5-2680 v4 @ 2.40GHz\n");
    struct errbuf eb = {{0}};
    cr_assert_eq(host_info_read(root, &hi, &eb), 0, "%s", eb.msg);
    cr_assert_str_eq(hi.os, "Ubuntu 22.04.4 LTS \"Jammy\"");
    cr_assert_str_eq(hi.cpu_model, "Intel(R) Xeon(R) CPU E5-2680 v4 @ 2.40GHz");
    cr_assert_eq(hi.cpus, 3, "online cores are the cpuN lines (cpu2 is offline)");
    cr_assert_eq(hi.mem_total, 8000000ull * 1024);
    cr_assert_eq(hi.boot_time_s, 1717976692);
    /* From the real machine. */
    cr_assert_neq(hi.hostname[0], '\0');
    cr_assert_str_eq(hi.sysname, "Linux");
    cr_assert_neq(hi.release[0], '\0');
    cr_assert_neq(hi.machine[0], '\0');
    for (uint32_t i = 0; i < hi.n_addrs; i++) {
        cr_assert(hi.addrs[i].family == 4 || hi.addrs[i].family == 6);
        cr_assert_neq(hi.addrs[i].ifname[0], '\0');
        cr_assert_str_neq(hi.addrs[i].addr, "127.0.0.1");
        cr_assert_str_neq(hi.addrs[i].addr, "::1");
    }

    json_t *j = host_info_to_json(&hi);
    cr_assert_not_null(j);
    cr_assert_str_eq(json_string_value(json_object_get(j, "host")), hi.hostname);
    cr_assert_str_eq(json_string_value(json_object_get(j, "os")), "Ubuntu 22.04.4 LTS \"Jammy\"");
    cr_assert_str_eq(json_string_value(json_object_get(j, "sysname")), "Linux");
    cr_assert_str_eq(json_string_value(json_object_get(j, "release")), hi.release);
    cr_assert_str_eq(json_string_value(json_object_get(j, "machine")), hi.machine);
    cr_assert_eq(json_integer_value(json_object_get(j, "cpus")), 3);
    cr_assert_str_eq(json_string_value(json_object_get(j, "cpu_model")), hi.cpu_model);
    cr_assert_eq(json_integer_value(json_object_get(j, "mem_total")), 8000000ll * 1024);
    cr_assert_eq(json_integer_value(json_object_get(j, "boot_time_s")), 1717976692);
    json_t *addrs = json_object_get(j, "addrs");
    cr_assert(json_is_array(addrs));
    cr_assert_eq(json_array_size(addrs), hi.n_addrs);
    if (hi.n_addrs > 0) {
        json_t *a = json_array_get(addrs, 0);
        cr_assert_str_eq(json_string_value(json_object_get(a, "if")), hi.addrs[0].ifname);
        cr_assert_str_eq(json_string_value(json_object_get(a, "addr")), hi.addrs[0].addr);
        cr_assert_eq(json_integer_value(json_object_get(a, "fam")), hi.addrs[0].family);
    }
    json_decref(j);
}

Test(sample, host_info_tolerates_missing_optional_files_but_not_missing_proc)
{
    put_machine(STAT1);
    struct errbuf eb = {{0}};
    /* No os-release, no cpuinfo: empty strings, not an error. */
    cr_assert_eq(host_info_read(root, &hi, &eb), 0, "%s", eb.msg);
    cr_assert_str_eq(hi.os, "");
    cr_assert_str_eq(hi.cpu_model, "");
    cr_assert_eq(hi.cpus, 2);
    /* Only NAME, single-quoted; POWER's "cpu" field. */
    put_file("/etc/os-release", "NAME='Alpine Linux'\nID=alpine\n");
    put_file("/proc/cpuinfo", "processor\t: 0\ncpu\t\t: POWER9 (raw), altivec supported\n");
    cr_assert_eq(host_info_read(root, &hi, &eb), 0, "%s", eb.msg);
    cr_assert_str_eq(hi.os, "Alpine Linux");
    cr_assert_str_eq(hi.cpu_model, "POWER9 (raw), altivec supported");
    /* An unterminated quote or a line too long is cut, never overrun. */
    char big[400];
    memset(big, 0, sizeof big);
    strcpy(big, "PRETTY_NAME=\"");
    memset(big + strlen(big), 'x', 300);
    strcat(big, "\n");
    put_file("/etc/os-release", big);
    cr_assert_eq(host_info_read(root, &hi, &eb), 0, "%s", eb.msg);
    cr_assert_eq(strlen(hi.os), sizeof hi.os - 1);

    put_file("/proc/stat", "cpu  1 2 3 4\n");
    cr_assert_eq(host_info_read(root, &hi, &eb), ERR_BAD_INPUT, "no btime");
    rm_file("/proc/meminfo");
    put_file("/proc/stat", STAT1);
    cr_assert_eq(host_info_read(root, &hi, &eb), ERR_IO);
}

Test(sample, text_that_is_not_utf8_does_not_break_the_json)
{
    memset(&hi, 0, sizeof hi);
    strcpy(hi.hostname, "h\xff\xfe");
    /* "é" cut after its first byte. */
    strcpy(hi.os, "Caf\xc3");
    json_t *j = host_info_to_json(&hi);
    cr_assert_not_null(j);
    cr_assert_str_eq(json_string_value(json_object_get(j, "host")), "h??");
    cr_assert_str_eq(json_string_value(json_object_get(j, "os")), "Caf?");
    json_decref(j);
}

/* ---- ring and backlog ---- */

static struct sample *mk(uint64_t ts)
{
    memset(&smp, 0, sizeof smp);
    smp.ts_ms = ts;
    return &smp;
}

static void expect_range(struct sample_iter it, const uint64_t *want, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        const struct sample *s = sample_iter_next(&it);
        cr_assert_not_null(s, "ended after %zu of %zu", i, n);
        cr_assert_eq(s->ts_ms, want[i], "item %zu: %llu, wanted %llu", i, (unsigned long long)s->ts_ms,
                     (unsigned long long)want[i]);
    }
    cr_assert_null(sample_iter_next(&it), "more than %zu", n);
}

Test(sample, the_ring_keeps_the_newest_and_iterates_oldest_first)
{
    struct sample_ring r;
    cr_assert_eq(sample_ring_init(&r, 0), ERR_BAD_INPUT);
    cr_assert_eq(sample_ring_init(&r, 5), 0);
    cr_assert_eq(sample_ring_capacity(&r), 5);
    expect_range(sample_ring_last(&r, 3), NULL, 0);
    expect_range(sample_ring_since(&r, 0), NULL, 0);
    for (uint64_t t = 1; t <= 3; t++)
        sample_ring_push(&r, mk(t * 1000));
    cr_assert_eq(sample_ring_count(&r), 3);
    expect_range(sample_ring_last(&r, 10), (uint64_t[]){1000, 2000, 3000}, 3);
    /* Wrap around twice over. */
    for (uint64_t t = 4; t <= 12; t++)
        sample_ring_push(&r, mk(t * 1000));
    cr_assert_eq(sample_ring_count(&r), 5);
    cr_assert_eq(sample_ring_get(&r, 0)->ts_ms, 8000);
    cr_assert_eq(sample_ring_get(&r, 4)->ts_ms, 12000);
    expect_range(sample_ring_last(&r, 3), (uint64_t[]){10000, 11000, 12000}, 3);
    expect_range(sample_ring_last(&r, 100), (uint64_t[]){8000, 9000, 10000, 11000, 12000}, 5);
    expect_range(sample_ring_last(&r, 0), NULL, 0);
    /* Since T is strictly after T: the last ts seen gives only what is new. */
    expect_range(sample_ring_since(&r, 9000), (uint64_t[]){10000, 11000, 12000}, 3);
    expect_range(sample_ring_since(&r, 9500), (uint64_t[]){10000, 11000, 12000}, 3);
    expect_range(sample_ring_since(&r, 12000), NULL, 0);
    expect_range(sample_ring_since(&r, 0), (uint64_t[]){8000, 9000, 10000, 11000, 12000}, 5);
    sample_ring_free(&r);
}

Test(sample, since_stops_at_a_wall_clock_step_back)
{
    struct sample_ring r;
    cr_assert_eq(sample_ring_init(&r, 8), 0);
    uint64_t ts[] = {100, 200, 300, 50, 60};  /* the clock was set back after 300 */
    for (size_t i = 0; i < 5; i++)
        sample_ring_push(&r, mk(ts[i]));
    /* Not 100, 200, 300 again: the scan stops at 50, the first not newer. */
    expect_range(sample_ring_since(&r, 55), (uint64_t[]){60}, 1);
    expect_range(sample_ring_since(&r, 10), (uint64_t[]){100, 200, 300, 50, 60}, 5);
    /* The limit of a wall-clock cursor: a poller that saw 300 sees nothing new
     * until the clock passes 300 again (sample_ring_last does not care). */
    expect_range(sample_ring_since(&r, 300), NULL, 0);
    expect_range(sample_ring_last(&r, 2), (uint64_t[]){50, 60}, 2);
    sample_ring_free(&r);
}

Test(sample, the_backlog_is_bounded_drops_the_oldest_and_counts_them)
{
    struct sample_backlog b;
    cr_assert_eq(sample_backlog_init(&b, 3), 0);
    cr_assert_eq(sample_backlog_capacity(&b), 3);
    cr_assert_null(sample_backlog_peek(&b));
    cr_assert_not(sample_backlog_pop(&b, NULL));
    for (uint64_t t = 1; t <= 5; t++)
        sample_backlog_push(&b, mk(t));
    cr_assert_eq(sample_backlog_count(&b), 3);
    cr_assert_eq(sample_backlog_dropped(&b), 2);
    cr_assert_eq(sample_backlog_peek(&b)->ts_ms, 3);

    static struct sample out;
    cr_assert(sample_backlog_pop(&b, &out));
    cr_assert_eq(out.ts_ms, 3);
    /* Room again: the next push drops nothing. */
    sample_backlog_push(&b, mk(6));
    cr_assert_eq(sample_backlog_dropped(&b), 2);
    uint64_t want[] = {4, 5, 6};
    for (size_t i = 0; i < 3; i++) {
        cr_assert(sample_backlog_pop(&b, &out));
        cr_assert_eq(out.ts_ms, want[i]);
    }
    cr_assert_eq(sample_backlog_count(&b), 0);
    cr_assert_not(sample_backlog_pop(&b, &out));
    /* Empty, then overfilled again: the count keeps growing. */
    for (uint64_t t = 10; t < 17; t++)
        sample_backlog_push(&b, mk(t));
    cr_assert_eq(sample_backlog_dropped(&b), 6);
    cr_assert_eq(sample_backlog_peek(&b)->ts_ms, 14);
    sample_backlog_free(&b);
}

/* ---- JSON ---- */

Test(sample, sample_json_has_the_dashboard_fields)
{
    memset(&smp, 0, sizeof smp);
    smp.ts_ms = 1718000000123ull;
    smp.cpu_pct = 37.5f;
    smp.n_cores = 3;
    smp.cpu_core_pct[0] = 25.0f;
    smp.cpu_core_pct[1] = 50.0f;
    smp.cpu_core_pct[2] = SAMPLE_NO_VALUE;
    smp.mem_total = 3000;
    smp.mem_avail = 2000;
    smp.mem_used = 1000;
    smp.mem_pct = (float)(100.0 / 3);
    smp.swap_total = 500;
    smp.swap_free = 400;
    smp.load1 = 0.5;
    smp.load5 = 1.25;
    smp.load15 = 2.0;
    smp.uptime_s = 23308;
    smp.n_disks = 1;
    strcpy(smp.disks[0].mount, "/");
    smp.disks[0].total = 100;
    smp.disks[0].used = 40;
    smp.disks[0].avail = 50;
    smp.disks[0].pct = 40.0f * 100 / 90;

    json_t *j = sample_to_json(&smp);
    cr_assert_not_null(j);
    cr_assert_eq(json_integer_value(json_object_get(j, "ts")), 1718000000123ll);
    cr_assert_float_eq(json_real_value(json_object_get(j, "cpu")), 37.5, 1e-9);
    json_t *cores = json_object_get(j, "cpu_cores");
    cr_assert_eq(json_array_size(cores), 3);
    cr_assert_float_eq(json_real_value(json_array_get(cores, 0)), 25.0, 1e-9);
    cr_assert_float_eq(json_real_value(json_array_get(cores, 1)), 50.0, 1e-9);
    cr_assert(json_is_null(json_array_get(cores, 2)));
    cr_assert_eq(json_integer_value(json_object_get(j, "mem_total")), 3000);
    cr_assert_eq(json_integer_value(json_object_get(j, "mem_used")), 1000);
    cr_assert_eq(json_integer_value(json_object_get(j, "mem_avail")), 2000);
    cr_assert_float_eq(json_real_value(json_object_get(j, "mem_pct")), 100.0 / 3, 1e-5);
    cr_assert_eq(json_integer_value(json_object_get(j, "swap_total")), 500);
    cr_assert_eq(json_integer_value(json_object_get(j, "swap_free")), 400);
    cr_assert_float_eq(json_real_value(json_object_get(j, "load1")), 0.5, 1e-9);
    cr_assert_float_eq(json_real_value(json_object_get(j, "load5")), 1.25, 1e-9);
    cr_assert_float_eq(json_real_value(json_object_get(j, "load15")), 2.0, 1e-9);
    cr_assert_eq(json_integer_value(json_object_get(j, "uptime_s")), 23308);
    json_t *d = json_array_get(json_object_get(j, "disks"), 0);
    cr_assert_str_eq(json_string_value(json_object_get(d, "mount")), "/");
    cr_assert_eq(json_integer_value(json_object_get(d, "total")), 100);
    cr_assert_eq(json_integer_value(json_object_get(d, "used")), 40);
    cr_assert_eq(json_integer_value(json_object_get(d, "avail")), 50);
    cr_assert_float_eq(json_real_value(json_object_get(d, "pct")), 400.0 / 9, 1e-4);

    /* The recommended dump is compact with short reals, in field order. */
    char *text = json_dumps(j, SAMPLE_JSON_FLAGS);
    cr_assert_not_null(text);
    const char *head = "{\"ts\":1718000000123,\"cpu\":37.5,\"cpu_cores\":[25.0,50.0,null],";
    cr_assert(strncmp(text, head, strlen(head)) == 0, "%s", text);
    cr_assert(strstr(text, "\"mem_pct\":33.3333,") != NULL, "%s", text);
    cr_assert(strstr(text, "\"pct\":44.4444}") != NULL, "%s", text);
    free(text);
    json_decref(j);

    /* No CPU value yet: null, not 0 or -1. */
    smp.cpu_pct = SAMPLE_NO_VALUE;
    j = sample_to_json(&smp);
    cr_assert(json_is_null(json_object_get(j, "cpu")));
    json_decref(j);
}

/* ---- the real machine ---- */

Test(sample, two_real_samples_a_tenth_of_a_second_apart)
{
    static struct sampler s;
    struct errbuf eb = {{0}};
    const char *mounts[] = {"/"};
    cr_assert_eq(sampler_init(&s, NULL, mounts, 1, &eb), 0, "%s", eb.msg);
    cr_assert_eq(sampler_sample(&s, &smp, &eb), 0, "%s", eb.msg);
    nanosleep(&(struct timespec){0, 100 * 1000 * 1000}, NULL);
    cr_assert_eq(sampler_sample(&s, &smp, &eb), 0, "%s", eb.msg);

    cr_assert(smp.cpu_pct >= 0 && smp.cpu_pct <= 100, "cpu %f", smp.cpu_pct);
    cr_assert_geq(smp.n_cores, 1);
    for (uint32_t i = 0; i < smp.n_cores; i++)
        cr_assert(smp.cpu_core_pct[i] == SAMPLE_NO_VALUE ||
                      (smp.cpu_core_pct[i] >= 0 && smp.cpu_core_pct[i] <= 100),
                  "cpu%u %f", i, smp.cpu_core_pct[i]);
    cr_assert_gt(smp.mem_total, 0);
    cr_assert_leq(smp.mem_used, smp.mem_total);
    cr_assert(smp.mem_pct >= 0 && smp.mem_pct <= 100);
    cr_assert_gt(smp.uptime_s, 0);
    cr_assert(smp.load1 >= 0);
    cr_assert_eq(smp.disks[0].err, 0);
    cr_assert_gt(smp.disks[0].total, 0);
    cr_assert(smp.disks[0].pct >= 0 && smp.disks[0].pct <= 100);
    uint64_t now = clock_wall_ms();
    cr_assert(smp.ts_ms <= now && smp.ts_ms + 5000 > now);

    struct errbuf eb2 = {{0}};
    cr_assert_eq(host_info_read(NULL, &hi, &eb2), 0, "%s", eb2.msg);
    cr_assert_neq(hi.hostname[0], '\0');
    cr_assert_geq(hi.cpus, 1);
    cr_assert_eq(hi.mem_total, smp.mem_total);
    cr_assert_gt(hi.boot_time_s, 946684800, "after 2000");
    cr_assert_leq(hi.boot_time_s, (int64_t)(now / 1000));

    json_t *j = sample_to_json(&smp);
    cr_assert_not_null(j);
    char *text = json_dumps(j, SAMPLE_JSON_FLAGS);
    cr_assert_not_null(text);
    free(text);
    json_decref(j);
    j = host_info_to_json(&hi);
    cr_assert_not_null(j);
    json_decref(j);
}
