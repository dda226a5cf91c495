/* The agent's series sources: command sources and built-in readers (sources.h). */
#define _GNU_SOURCE
#include "agent/sources.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <stdarg.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "util/clock.h"

extern char **environ;

/* --- command sources --- */

bool cmd_source_parse(char *spec, uint32_t default_ms, struct cmd_source *out, char *err, size_t errlen)
{
    memset(out, 0, sizeof *out);
    char *eq = strchr(spec, '=');
    if (!eq || !series_name_ok(spec, (size_t)(eq - spec))) {
        snprintf(err, errlen, "--source wants NAME=COMMAND[@INTERVAL_MS], NAME 1-%d of A-Z a-z 0-9 _ . : -",
                 SERIES_NAME_MAX);
        return false;
    }
    memcpy(out->name, spec, (size_t)(eq - spec));
    out->command = eq + 1;
    out->interval_ms = default_ms;
    char *at = strrchr(eq + 1, '@');
    if (at && at[1] && strspn(at + 1, "0123456789") == strlen(at + 1)) {
        unsigned long long iv = strlen(at + 1) > 8 ? 0 : strtoull(at + 1, NULL, 10);
        if (iv < 100 || iv > 3600000) {
            snprintf(err, errlen, "--source %s: the interval is 100 to 3600000 ms", out->name);
            return false;
        }
        out->interval_ms = (uint32_t)iv;
        *at = 0; /* the command ends there */
    }
    if (!*out->command) {
        snprintf(err, errlen, "--source %s: an empty command", out->name);
        return false;
    }
    return true;
}

static void run_err(struct cmd_run *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void run_err(struct cmd_run *r, const char *fmt, ...)
{
    if (r->err[0])
        return; /* the first error of a run is the one said */
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(r->err, sizeof r->err, fmt, ap);
    va_end(ap);
}

static void take_line(const struct cmd_source *src, const char *line, size_t n, size_t lineno, source_emit_fn emit,
                      void *arg, struct cmd_run *r)
{
    struct series_line sl;
    char why[128];
    if (!series_parse_line(line, n, &sl, why, sizeof why)) {
        if (why[0]) {
            r->bad_lines++;
            run_err(r, "line %zu: %s", lineno, why);
        }
        return;
    }
    if (r->points >= SOURCE_CMD_LINES_MAX) {
        r->bad_lines++;
        run_err(r, "more than %d points in one run", SOURCE_CMD_LINES_MAX);
        return;
    }
    char name[SERIES_NAME_MAX + 1];
    if (sl.name[0]) {
        int nl = snprintf(name, sizeof name, "%s.%s", src->name, sl.name);
        if (nl < 0 || (size_t)nl >= sizeof name) {
            r->bad_lines++;
            run_err(r, "line %zu: the series name %s.%s is over %d bytes", lineno, src->name, sl.name,
                    SERIES_NAME_MAX);
            return;
        }
    } else {
        snprintf(name, sizeof name, "%s", src->name);
    }
    emit(arg, name, sl.unit, sl.value);
    r->points++;
}

bool cmd_source_run(const struct cmd_source *src, volatile int *stop, source_emit_fn emit, void *arg,
                    struct cmd_run *r)
{
    memset(r, 0, sizeof *r);
    int p[2];
    if (pipe2(p, O_CLOEXEC) != 0) {
        run_err(r, "pipe: %s", strerror(errno));
        return false;
    }
    posix_spawn_file_actions_t fa;
    posix_spawnattr_t at;
    posix_spawn_file_actions_init(&fa);
    posix_spawnattr_init(&at);
    posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_adddup2(&fa, p[1], 1);
    posix_spawn_file_actions_addopen(&fa, 2, "/dev/null", O_WRONLY, 0);
    posix_spawnattr_setpgroup(&at, 0); /* a group of its own: killed whole */
    sigset_t none, all;
    sigemptyset(&none);
    sigfillset(&all);
    posix_spawnattr_setsigmask(&at, &none);
    posix_spawnattr_setsigdefault(&at, &all);
    posix_spawnattr_setflags(&at, POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
    char *argv[] = {"/bin/sh", "-c", (char *)src->command, NULL};
    pid_t pid;
    int se = posix_spawn(&pid, "/bin/sh", &fa, &at, argv, environ);
    posix_spawn_file_actions_destroy(&fa);
    posix_spawnattr_destroy(&at);
    close(p[1]);
    if (se != 0) {
        close(p[0]);
        run_err(r, "could not start /bin/sh: %s", strerror(se));
        return false;
    }
    uint32_t timeout = SOURCE_CMD_TIMEOUT(src->interval_ms);
    uint64_t deadline = clock_mono_ms() + timeout;
    char line[SERIES_LINE_MAX + 2];
    size_t ll = 0, lineno = 0, total = 0;
    bool overlong = false, eof = false;
    char buf[4096];
    while (!eof) {
        uint64_t now = clock_mono_ms();
        if (now >= deadline || (stop && *stop)) {
            r->timed_out = true;
            break;
        }
        struct pollfd pf = {.fd = p[0], .events = POLLIN};
        int pr = poll(&pf, 1, deadline - now < 100 ? (int)(deadline - now) : 100);
        if (pr < 0 && errno == EINTR)
            continue;
        if (pr <= 0)
            continue; /* the deadline is checked above */
        ssize_t n = read(p[0], buf, sizeof buf);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            eof = true;
            break;
        }
        total += (size_t)n;
        if (total > SOURCE_CMD_OUTPUT_MAX) {
            r->too_much = true;
            break;
        }
        for (ssize_t i = 0; i < n; i++) {
            if (buf[i] == '\n') {
                lineno++;
                if (overlong) {
                    r->bad_lines++;
                    run_err(r, "line %zu: over %d bytes", lineno, SERIES_LINE_MAX);
                } else {
                    take_line(src, line, ll, lineno, emit, arg, r);
                }
                ll = 0;
                overlong = false;
            } else if (ll < SERIES_LINE_MAX) {
                line[ll++] = buf[i];
            } else {
                overlong = true;
            }
        }
    }
    if (eof && (ll || overlong)) { /* a last line without its newline */
        lineno++;
        if (overlong) {
            r->bad_lines++;
            run_err(r, "line %zu: over %d bytes", lineno, SERIES_LINE_MAX);
        } else {
            take_line(src, line, ll, lineno, emit, arg, r);
        }
    }
    close(p[0]);
    /* Wait for it until the deadline; then the whole group goes. */
    bool exited = false;
    while (!exited) {
        pid_t w = waitpid(pid, &r->status, WNOHANG);
        if (w == pid) {
            exited = true;
            break;
        }
        if (w < 0 && errno != EINTR)
            break;
        if (r->timed_out || r->too_much || clock_mono_ms() >= deadline || (stop && *stop)) {
            if (!r->too_much)
                r->timed_out = true;
            break;
        }
        clock_sleep_ms(5);
    }
    kill(-pid, SIGKILL); /* its children too, even when the shell itself is done */
    if (!exited)
        while (waitpid(pid, &r->status, 0) < 0 && errno == EINTR) {
        }
    if (r->too_much) {
        r->err[0] = 0;
        run_err(r, "printed over %u bytes: killed", SOURCE_CMD_OUTPUT_MAX);
        return false;
    }
    if (r->timed_out) {
        r->err[0] = 0;
        run_err(r, "did not finish within %u ms: killed (%zu points taken)", timeout, r->points);
        return false;
    }
    if (exited && (!WIFEXITED(r->status) || WEXITSTATUS(r->status) != 0)) {
        char why[64];
        if (WIFEXITED(r->status))
            snprintf(why, sizeof why, "exited with status %d", WEXITSTATUS(r->status));
        else
            snprintf(why, sizeof why, "killed by signal %d", WIFSIGNALED(r->status) ? WTERMSIG(r->status) : 0);
        char first[sizeof r->err];
        snprintf(first, sizeof first, "%s", r->err);
        r->err[0] = 0;
        run_err(r, "%s%s%s", why, first[0] ? "; " : "", first);
        return false;
    }
    return r->bad_lines == 0;
}

/* --- built-in sources --- */

static FILE *open_under(const char *root, const char *path)
{
    char p[1024];
    snprintf(p, sizeof p, "%s%s", root && strcmp(root, "/") ? root : "", path);
    return fopen(p, "re");
}

static bool read_u64_file(const char *root, const char *path, int64_t *out)
{
    FILE *f = open_under(root, path);
    if (!f)
        return false;
    long long v;
    bool ok = fscanf(f, "%lld", &v) == 1;
    fclose(f);
    if (ok)
        *out = v;
    return ok;
}

/* A text as a series name segment: what is not [A-Za-z0-9_-] becomes '_'. */
static void name_segment(char *dst, size_t cap, const char *src)
{
    size_t i = 0;
    for (; src[i] && i + 1 < cap; i++) {
        char ch = src[i];
        bool ok = (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') || ch == '_' ||
                  ch == '-';
        dst[i] = ok ? ch : '_';
    }
    dst[i] = 0;
    if (!i && cap > 1) {
        dst[0] = '_';
        dst[1] = 0;
    }
}

static void read_net(const char *root, uint64_t *rx, uint64_t *tx, bool *ok)
{
    FILE *f = open_under(root, "/proc/net/dev");
    *ok = false;
    *rx = *tx = 0;
    if (!f)
        return;
    char line[512];
    while (fgets(line, sizeof line, f)) {
        char *colon = strchr(line, ':');
        if (!colon)
            continue; /* the two header lines */
        *colon = 0;
        char *ifn = line;
        while (*ifn == ' ')
            ifn++;
        unsigned long long v[9];
        if (sscanf(colon + 1, "%llu %llu %llu %llu %llu %llu %llu %llu %llu", &v[0], &v[1], &v[2], &v[3], &v[4],
                   &v[5], &v[6], &v[7], &v[8]) != 9)
            continue;
        if (!strcmp(ifn, "lo"))
            continue;
        *rx += v[0];
        *tx += v[8];
        *ok = true;
    }
    fclose(f);
}

static void read_disks(const char *root, struct builtin_state *st, uint64_t dt_ms, source_emit_fn emit, void *arg)
{
    FILE *f = open_under(root, "/proc/diskstats");
    if (!f)
        return;
    char line[512];
    while (fgets(line, sizeof line, f)) {
        unsigned maj, min;
        char dev[64];
        unsigned long long rd_ios, rd_merges, rd_sec, rd_ms, wr_ios, wr_merges, wr_sec;
        if (sscanf(line, "%u %u %63s %llu %llu %llu %llu %llu %llu %llu", &maj, &min, dev, &rd_ios, &rd_merges,
                   &rd_sec, &rd_ms, &wr_ios, &wr_merges, &wr_sec) != 10)
            continue;
        if (!strncmp(dev, "loop", 4) || !strncmp(dev, "ram", 3) || strlen(dev) >= sizeof st->devs[0].name)
            continue;
        char sys[128];
        struct stat sb;
        snprintf(sys, sizeof sys, "%s/sys/block/%s", root && strcmp(root, "/") ? root : "", dev);
        if (stat(sys, &sb) != 0)
            continue; /* a partition: its disk is counted */
        size_t i = 0;
        while (i < st->n_devs && strcmp(st->devs[i].name, dev))
            i++;
        if (i == st->n_devs) {
            if (st->n_devs == SOURCE_DEVS_MAX)
                continue;
            snprintf(st->devs[i].name, sizeof st->devs[i].name, "%s", dev);
            st->n_devs++;
        } else if (dt_ms && rd_sec >= st->devs[i].rd_sectors && wr_sec >= st->devs[i].wr_sectors) {
            char seg[32], name[SERIES_NAME_MAX + 1];
            name_segment(seg, sizeof seg, dev);
            snprintf(name, sizeof name, "disk.%s.read", seg);
            emit(arg, name, "B/s", (double)(rd_sec - st->devs[i].rd_sectors) * 512.0 * 1000.0 / (double)dt_ms);
            snprintf(name, sizeof name, "disk.%s.write", seg);
            emit(arg, name, "B/s", (double)(wr_sec - st->devs[i].wr_sectors) * 512.0 * 1000.0 / (double)dt_ms);
        }
        st->devs[i].rd_sectors = rd_sec;
        st->devs[i].wr_sectors = wr_sec;
    }
    fclose(f);
}

static void read_temps(const char *root, source_emit_fn emit, void *arg)
{
    char dir[600];
    const char *r = root && strcmp(root, "/") ? root : "";
    snprintf(dir, sizeof dir, "%s/sys/class/hwmon", r);
    DIR *d = opendir(dir);
    int emitted = 0;
    for (struct dirent *e; d && (e = readdir(d)) && emitted < 32;) {
        if (strncmp(e->d_name, "hwmon", 5))
            continue;
        char path[800], chip[32] = "hwmon";
        snprintf(path, sizeof path, "/sys/class/hwmon/%.64s/name", e->d_name);
        FILE *f = open_under(root, path);
        if (f) {
            char nm[64] = "";
            if (fgets(nm, sizeof nm, f))
                nm[strcspn(nm, "\n")] = 0;
            fclose(f);
            name_segment(chip, sizeof chip, nm);
        }
        for (int i = 1; i <= 16; i++) {
            int64_t v;
            snprintf(path, sizeof path, "/sys/class/hwmon/%.64s/temp%d_input", e->d_name, i);
            if (!read_u64_file(root, path, &v))
                continue;
            char name[SERIES_NAME_MAX + 1];
            snprintf(name, sizeof name, "temp.%s.%s.%d", chip, e->d_name + 5, i);
            emit(arg, name, "C", (double)v / 1000.0);
            emitted++;
        }
    }
    if (d)
        closedir(d);
    snprintf(dir, sizeof dir, "%s/sys/class/thermal", r);
    d = opendir(dir);
    for (struct dirent *e; d && (e = readdir(d)) && emitted < 48;) {
        if (strncmp(e->d_name, "thermal_zone", 12))
            continue;
        char path[800];
        int64_t v;
        snprintf(path, sizeof path, "/sys/class/thermal/%.64s/temp", e->d_name);
        if (!read_u64_file(root, path, &v))
            continue;
        char name[SERIES_NAME_MAX + 1];
        snprintf(name, sizeof name, "temp.zone%.16s", e->d_name + 12);
        emit(arg, name, "C", (double)v / 1000.0);
        emitted++;
    }
    if (d)
        closedir(d);
}

/* cpu, cpu.N, mem.used, mem.available, load.1 with the metrics path's
 * readers (sample.c): the same numbers the old /api/clients/ID/metrics has. */
static void read_cpu_mem_load(const char *root, struct builtin_state *st, source_emit_fn emit, void *arg)
{
    struct errbuf eb;
    struct cpu_stat cur;
    if (strlen(root ? root : "") >= SAMPLE_ROOT_MAX)
        return;
    if (sample_read_cpu_stat(root, &cur, &eb) == 0) {
        if (st->have_cpu) {
            struct sample s;
            sample_cpu_pct(&st->cpu, &cur, &s);
            if (s.cpu_pct != SAMPLE_NO_VALUE)
                emit(arg, "cpu", "%", s.cpu_pct);
            for (uint32_t i = 0; i < s.n_cores && i < SOURCE_CORES_MAX; i++) {
                if (s.cpu_core_pct[i] == SAMPLE_NO_VALUE)
                    continue;
                char name[24];
                snprintf(name, sizeof name, "cpu.%u", i);
                emit(arg, name, "%", s.cpu_core_pct[i]);
            }
        }
        st->cpu = cur;
        st->have_cpu = true;
    } else {
        st->have_cpu = false; /* a rate needs two good reads in a row */
    }
    struct sample m;
    memset(&m, 0, sizeof m);
    if (sample_read_mem(root, &m, &eb) == 0) {
        emit(arg, "mem.used", "B", (double)m.mem_used);
        emit(arg, "mem.available", "B", (double)m.mem_avail);
    }
    if (sample_read_load(root, &m, &eb) == 0)
        emit(arg, "load.1", "", m.load1);
}

void builtin_sources_read(const char *root, struct builtin_state *st, uint64_t now_ms, source_emit_fn emit,
                          void *arg)
{
    uint64_t dt = st->t_ms && now_ms > st->t_ms ? now_ms - st->t_ms : 0;
    uint64_t rx, tx;
    bool ok;
    read_net(root, &rx, &tx, &ok);
    if (ok && dt && rx >= st->net_rx && tx >= st->net_tx) {
        emit(arg, "net.rx", "B/s", (double)(rx - st->net_rx) * 1000.0 / (double)dt);
        emit(arg, "net.tx", "B/s", (double)(tx - st->net_tx) * 1000.0 / (double)dt);
    }
    st->net_rx = rx;
    st->net_tx = tx;
    read_disks(root, st, dt, emit, arg);
    read_temps(root, emit, arg);
    read_cpu_mem_load(root, st, emit, arg);
    st->t_ms = now_ms;
}
