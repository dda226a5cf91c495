/* The agent's sampler: /proc and /etc readers under a root, CPU percent from
 * /proc/stat deltas, the sample ring and backlog, and their JSON. */
#include "agent/sample.h"

#include <arpa/inet.h>
#include <errno.h>
#include <ifaddrs.h>
#include <net/if.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/statvfs.h>
#include <sys/utsname.h>
#include <unistd.h>

#include "util/clock.h"
#include "util/text.h"

/* ---- files under a root ---------------------------------------------------- */

/* ROOT + rel (rel starts with '/'). "/" and NULL mean the real root, so the
 * real machine's paths are the plain ones. */
static int path_under(char *out, size_t n, const char *root, const char *rel)
{
    if (!root)
        root = "/";
    size_t len = strlen(root);
    while (len > 0 && root[len - 1] == '/')
        len--;
    int w = snprintf(out, n, "%.*s%s", (int)len, root, rel);
    return w >= 0 && (size_t)w < n ? 0 : ERR_TOO_LARGE;
}

static FILE *open_under(const char *root, const char *rel, char *path, size_t path_n, int *rc,
                        struct errbuf *eb)
{
    if (path_under(path, path_n, root, rel) != 0) {
        *rc = errf(eb, ERR_TOO_LARGE, "root too long for %s", rel);
        return NULL;
    }
    FILE *f = fopen(path, "re");
    if (!f)
        *rc = errf(eb, ERR_IO, "%s: %s", path, strerror(errno));
    return f;
}

static bool is_blank(char c)
{
    return c == ' ' || c == '\t';
}

static const char *skip_blanks(const char *p)
{
    while (is_blank(*p))
        p++;
    return p;
}

static bool at_line_end(const char *p)
{
    p = skip_blanks(p);
    return *p == '\0' || *p == '\n';
}

/* An unsigned decimal after optional blanks; no sign, no overflow. */
static bool parse_u64(const char **pp, uint64_t *out)
{
    const char *p = skip_blanks(*pp);
    if (*p < '0' || *p > '9')
        return false;
    uint64_t v = 0;
    for (; *p >= '0' && *p <= '9'; p++) {
        uint64_t d = (uint64_t)(*p - '0');
        if (v > (UINT64_MAX - d) / 10)
            return false;
        v = v * 10 + d;
    }
    *pp = p;
    *out = v;
    return true;
}

/* "12.34" or "12": /proc's fixed-point numbers, parsed by hand so the C locale
 * of whoever embeds us cannot change the decimal point. */
static bool parse_decimal(const char **pp, double *out)
{
    const char *p = *pp;
    uint64_t whole;
    if (!parse_u64(&p, &whole))
        return false;
    double v = (double)whole;
    if (*p == '.') {
        p++;
        if (*p < '0' || *p > '9')
            return false;
        double scale = 0.1;
        for (; *p >= '0' && *p <= '9'; p++, scale /= 10)
            v += (double)(*p - '0') * scale;
    }
    *pp = p;
    *out = v;
    return true;
}

/* Copy at most n-1 bytes, cutting before a UTF-8 sequence rather than inside it. */
static void copy_str(char *dst, size_t n, const char *src, size_t len)
{
    if (len >= n) {
        len = n - 1;
        while (len > 0 && ((unsigned char)src[len] & 0xC0) == 0x80)
            len--;
    }
    memcpy(dst, src, len);
    dst[len] = '\0';
}

/* ---- /proc/stat ----------------------------------------------------------- */

/* "  user nice system idle [iowait irq softirq steal guest guest_nice ...]".
 * Old kernels print fewer columns (missing ones are 0); newer ones may print
 * more (ignored). guest and guest_nice are inside user and nice already. */
static bool parse_cpu_fields(const char *p, struct cpu_ticks *t)
{
    uint64_t f[10] = {0};
    int n = 0;
    while (!at_line_end(p)) {
        uint64_t v;
        if (!parse_u64(&p, &v))
            return false;
        if (n < 10)
            f[n] = v;
        n++;
    }
    if (n < 4)
        return false;
    t->busy = f[0] + f[1] + f[2] + f[5] + f[6] + f[7];
    t->idle = f[3] + f[4];
    t->online = true;
    return true;
}

int sample_read_cpu_stat(const char *root, struct cpu_stat *out, struct errbuf *eb)
{
    char path[SAMPLE_ROOT_MAX + 64];
    int rc = 0;
    FILE *f = open_under(root, "/proc/stat", path, sizeof path, &rc, eb);
    if (!f)
        return rc;
    memset(out, 0, sizeof *out);
    out->btime = -1;
    char *line = NULL;
    size_t cap = 0;
    while (getline(&line, &cap, f) > 0) {
        if (strncmp(line, "cpu", 3) == 0) {
            const char *p = line + 3;
            struct cpu_ticks *t = NULL;
            uint64_t idx = 0;
            if (is_blank(*p)) {
                t = &out->total;
            } else if (parse_u64(&p, &idx) && is_blank(*p)) {
                out->online++;
                if (idx < SAMPLE_CORES_MAX) {
                    t = &out->cores[idx];
                    if (idx + 1 > out->n_cores)
                        out->n_cores = (uint32_t)idx + 1;
                }
            } else {
                rc = errf(eb, ERR_BAD_INPUT, "%s: bad cpu line", path);
                break;
            }
            if (t && !parse_cpu_fields(p, t)) {
                rc = errf(eb, ERR_BAD_INPUT, "%s: bad numbers on line %.*s", path,
                          (int)strcspn(line, " \t\n"), line);
                break;
            }
        } else if (strncmp(line, "btime ", 6) == 0) {
            const char *p = line + 6;
            uint64_t v;
            if (!parse_u64(&p, &v) || v > INT64_MAX || !at_line_end(p)) {
                rc = errf(eb, ERR_BAD_INPUT, "%s: bad btime", path);
                break;
            }
            out->btime = (int64_t)v;
        }
    }
    if (rc == 0 && ferror(f))
        rc = errf(eb, ERR_IO, "%s: read failed", path);
    if (rc == 0 && !out->total.online)
        rc = errf(eb, ERR_BAD_INPUT, "%s: no cpu line", path);
    free(line);
    fclose(f);
    return rc;
}

static float interval_pct(const struct cpu_ticks *a, const struct cpu_ticks *b)
{
    if (!a->online || !b->online)
        return SAMPLE_NO_VALUE;  /* hotplug: the core was not there for the whole interval */
    if (b->busy < a->busy || b->idle < a->idle)
        return SAMPLE_NO_VALUE;  /* went backwards: the delta means nothing */
    uint64_t busy = b->busy - a->busy, idle = b->idle - a->idle;
    if (busy + idle == 0)
        return SAMPLE_NO_VALUE;  /* no tick between the reads */
    return (float)(100.0 * (double)busy / ((double)busy + (double)idle));
}

void sample_cpu_pct(const struct cpu_stat *prev, const struct cpu_stat *cur, struct sample *out)
{
    /* The kernel sums the "cpu" line over every possible CPU, offline ones
     * included, so it stays monotonic through hotplug. */
    out->cpu_pct = interval_pct(&prev->total, &cur->total);
    uint32_t n = prev->n_cores > cur->n_cores ? prev->n_cores : cur->n_cores;
    ASSERT(n <= SAMPLE_CORES_MAX);
    out->n_cores = n;
    for (uint32_t i = 0; i < n; i++)
        out->cpu_core_pct[i] = interval_pct(&prev->cores[i], &cur->cores[i]);
}

/* ---- /proc/meminfo, /proc/loadavg, /proc/uptime ------------------------------ */

int sample_read_mem(const char *root, struct sample *out, struct errbuf *eb)
{
    enum { TOTAL, AVAIL, FREE, BUFFERS, CACHED, SWAP_TOTAL, SWAP_FREE, NKEYS };
    static const char *const keys[NKEYS] = {"MemTotal",   "MemAvailable", "MemFree", "Buffers",
                                            "Cached",     "SwapTotal",    "SwapFree"};
    uint64_t val[NKEYS] = {0};
    bool have[NKEYS] = {false};
    char path[SAMPLE_ROOT_MAX + 64];
    int rc = 0;
    FILE *f = open_under(root, "/proc/meminfo", path, sizeof path, &rc, eb);
    if (!f)
        return rc;
    char *line = NULL;
    size_t cap = 0;
    while (rc == 0 && getline(&line, &cap, f) > 0) {
        const char *colon = strchr(line, ':');
        if (!colon)
            continue;
        size_t klen = (size_t)(colon - line);
        for (int k = 0; k < NKEYS; k++) {
            if (strlen(keys[k]) != klen || strncmp(line, keys[k], klen) != 0)
                continue;
            const char *p = colon + 1;
            uint64_t v;
            if (!parse_u64(&p, &v) || v > UINT64_MAX / 1024) {
                rc = errf(eb, ERR_BAD_INPUT, "%s: bad %s", path, keys[k]);
                break;
            }
            p = skip_blanks(p);
            if (strncmp(p, "kB", 2) == 0) {
                v *= 1024;
                p += 2;
            }
            if (!at_line_end(p)) {
                rc = errf(eb, ERR_BAD_INPUT, "%s: bad %s", path, keys[k]);
                break;
            }
            val[k] = v;
            have[k] = true;
        }
    }
    if (rc == 0 && ferror(f))
        rc = errf(eb, ERR_IO, "%s: read failed", path);
    free(line);
    fclose(f);
    if (rc != 0)
        return rc;
    if (!have[TOTAL] || val[TOTAL] == 0)
        return errf(eb, ERR_BAD_INPUT, "%s: no MemTotal", path);
    uint64_t avail;
    if (have[AVAIL])
        avail = val[AVAIL];
    else if (have[FREE])
        avail = val[FREE] + val[BUFFERS] + val[CACHED];  /* before Linux 3.14 */
    else
        return errf(eb, ERR_BAD_INPUT, "%s: no MemAvailable or MemFree", path);
    if (avail > val[TOTAL])
        avail = val[TOTAL];
    out->mem_total = val[TOTAL];
    out->mem_avail = avail;
    out->mem_used = val[TOTAL] - avail;
    out->mem_pct = (float)(100.0 * (double)out->mem_used / (double)out->mem_total);
    out->swap_total = val[SWAP_TOTAL];
    out->swap_free = val[SWAP_FREE] > val[SWAP_TOTAL] ? val[SWAP_TOTAL] : val[SWAP_FREE];
    return 0;
}

/* The first line of a small file, for loadavg and uptime. */
static int read_first_line(const char *root, const char *rel, char *buf, size_t n, char *path,
                           size_t path_n, struct errbuf *eb)
{
    int rc = 0;
    FILE *f = open_under(root, rel, path, path_n, &rc, eb);
    if (!f)
        return rc;
    if (!fgets(buf, (int)n, f))
        rc = errf(eb, ferror(f) ? ERR_IO : ERR_BAD_INPUT, "%s: empty", path);
    fclose(f);
    return rc;
}

int sample_read_load(const char *root, struct sample *out, struct errbuf *eb)
{
    char buf[256], path[SAMPLE_ROOT_MAX + 64];
    int rc = read_first_line(root, "/proc/loadavg", buf, sizeof buf, path, sizeof path, eb);
    if (rc != 0)
        return rc;
    const char *p = buf;
    double l1, l5, l15;
    if (!parse_decimal(&p, &l1) || !is_blank(*p) || !parse_decimal(&p, &l5) || !is_blank(*p) ||
        !parse_decimal(&p, &l15) || !(is_blank(*p) || at_line_end(p)))
        return errf(eb, ERR_BAD_INPUT, "%s: bad load averages", path);
    out->load1 = l1;
    out->load5 = l5;
    out->load15 = l15;
    return 0;
}

int sample_read_uptime(const char *root, struct sample *out, struct errbuf *eb)
{
    char buf[256], path[SAMPLE_ROOT_MAX + 64];
    int rc = read_first_line(root, "/proc/uptime", buf, sizeof buf, path, sizeof path, eb);
    if (rc != 0)
        return rc;
    const char *p = buf;
    double up;
    if (!parse_decimal(&p, &up) || !(is_blank(*p) || at_line_end(p)) || up >= 1e15)
        return errf(eb, ERR_BAD_INPUT, "%s: bad uptime", path);
    out->uptime_s = (uint64_t)up;
    return 0;
}

/* ---- disks ----------------------------------------------------------------- */

void sample_read_disks(const char *root, const char *const *mounts, size_t n_mounts, struct sample *out)
{
    ASSERT(n_mounts <= SAMPLE_DISKS_MAX);
    out->n_disks = (uint32_t)n_mounts;
    for (size_t i = 0; i < n_mounts; i++) {
        struct disk_sample *d = &out->disks[i];
        memset(d, 0, sizeof *d);
        size_t len = strlen(mounts[i]);
        ASSERT(len < SAMPLE_MOUNT_MAX);
        memcpy(d->mount, mounts[i], len + 1);
        char path[SAMPLE_ROOT_MAX + SAMPLE_MOUNT_MAX];
        struct statvfs v;
        if (path_under(path, sizeof path, root, mounts[i]) != 0) {
            d->err = ENAMETOOLONG;
            continue;
        }
        if (statvfs(path, &v) != 0) {
            d->err = errno;
            continue;
        }
        uint64_t frsize = v.f_frsize ? v.f_frsize : v.f_bsize;
        uint64_t used_blocks = v.f_blocks >= v.f_bfree ? (uint64_t)(v.f_blocks - v.f_bfree) : 0;
        d->total = (uint64_t)v.f_blocks * frsize;
        d->used = used_blocks * frsize;
        d->avail = (uint64_t)v.f_bavail * frsize;
        /* df's Use%: the share of what non-root users can have (used + avail),
         * not of total, which also holds the blocks reserved for root. */
        uint64_t base = d->used + d->avail;
        d->pct = base ? (float)(100.0 * (double)d->used / (double)base) : 0.0f;
    }
}

/* ---- the sampler ------------------------------------------------------------- */

int sampler_init(struct sampler *s, const char *root, const char *const *mounts, size_t n_mounts,
                 struct errbuf *eb)
{
    memset(s, 0, sizeof *s);
    if (!root || !*root)
        root = "/";
    if (strlen(root) >= sizeof s->root)
        return errf(eb, ERR_TOO_LARGE, "root directory path too long");
    strcpy(s->root, root);
    if (n_mounts > SAMPLE_DISKS_MAX)
        return errf(eb, ERR_TOO_LARGE, "%zu mount points, at most %d", n_mounts, SAMPLE_DISKS_MAX);
    for (size_t i = 0; i < n_mounts; i++) {
        size_t len = strlen(mounts[i]);
        if (mounts[i][0] != '/')
            return errf(eb, ERR_BAD_INPUT, "mount point %s is not an absolute path", mounts[i]);
        if (len >= SAMPLE_MOUNT_MAX)
            return errf(eb, ERR_TOO_LARGE, "mount point %s longer than %d bytes", mounts[i],
                        SAMPLE_MOUNT_MAX - 1);
        memcpy(s->mounts[i], mounts[i], len + 1);
    }
    s->n_mounts = (uint32_t)n_mounts;
    return sample_read_cpu_stat(s->root, &s->prev, eb);
}

int sampler_sample(struct sampler *s, struct sample *out, struct errbuf *eb)
{
    struct cpu_stat cur;
    memset(out, 0, sizeof *out);
    int rc = sample_read_cpu_stat(s->root, &cur, eb);
    if (rc != 0)
        return rc;
    out->ts_ms = clock_wall_ms();
    if ((rc = sample_read_mem(s->root, out, eb)) != 0 || (rc = sample_read_load(s->root, out, eb)) != 0 ||
        (rc = sample_read_uptime(s->root, out, eb)) != 0)
        return rc;
    const char *mounts[SAMPLE_DISKS_MAX];
    for (uint32_t i = 0; i < s->n_mounts; i++)
        mounts[i] = s->mounts[i];
    sample_read_disks(s->root, mounts, s->n_mounts, out);
    sample_cpu_pct(&s->prev, &cur, out);
    s->prev = cur;
    return 0;
}

/* ---- host info --------------------------------------------------------------- */

/* os-release: KEY=value, the value shell-quoted ("...", '...') or bare. */
static void os_release_value(const char *p, char *out, size_t n)
{
    size_t len = 0;
    char q = (*p == '"' || *p == '\'') ? *p++ : 0;
    for (; *p && *p != '\n' && len + 1 < n; p++) {
        if (q && *p == q)
            break;
        if (q == '"' && *p == '\\' && p[1] && strchr("\"\\$`", p[1]))
            p++;
        out[len++] = *p;
    }
    /* Cut short by n: drop a UTF-8 sequence left incomplete at the end. */
    size_t lead = len;
    while (lead > 0 && len - lead < 4 && ((unsigned char)out[lead - 1] & 0xC0) == 0x80)
        lead--;
    if (lead > 0 && (unsigned char)out[lead - 1] >= 0xC0) {
        unsigned char c = (unsigned char)out[lead - 1];
        size_t need = c >= 0xF0 ? 4 : c >= 0xE0 ? 3 : 2;
        if (len - (lead - 1) < need)
            len = lead - 1;
    }
    out[len] = '\0';
}

static void read_os_release(const char *root, struct host_info *hi)
{
    char path[SAMPLE_ROOT_MAX + 64];
    int rc = 0;
    FILE *f = open_under(root, "/etc/os-release", path, sizeof path, &rc, NULL);
    if (!f)
        f = open_under(root, "/usr/lib/os-release", path, sizeof path, &rc, NULL);
    if (!f)
        return;
    char name[sizeof hi->os] = "";
    char *line = NULL;
    size_t cap = 0;
    while (getline(&line, &cap, f) > 0) {
        if (strncmp(line, "PRETTY_NAME=", 12) == 0)
            os_release_value(line + 12, hi->os, sizeof hi->os);
        else if (strncmp(line, "NAME=", 5) == 0)
            os_release_value(line + 5, name, sizeof name);
    }
    if (!hi->os[0])
        strcpy(hi->os, name);
    free(line);
    fclose(f);
}

static void read_cpu_model(const char *root, struct host_info *hi)
{
    /* x86 says "model name"; 32-bit ARM "Processor"; MIPS "cpu model"; POWER
     * "cpu". arm64 often has none of them: then the model stays "". */
    static const char *const keys[] = {"model name", "Processor", "cpu model", "cpu"};
    enum { NKEYS = sizeof keys / sizeof keys[0] };
    char path[SAMPLE_ROOT_MAX + 64];
    int rc = 0;
    FILE *f = open_under(root, "/proc/cpuinfo", path, sizeof path, &rc, NULL);
    if (!f)
        return;
    size_t best = NKEYS;
    char *line = NULL;
    size_t cap = 0;
    while (best > 0 && getline(&line, &cap, f) > 0) {
        const char *colon = strchr(line, ':');
        if (!colon)
            continue;
        size_t klen = (size_t)(colon - line);
        while (klen > 0 && is_blank(line[klen - 1]))
            klen--;
        for (size_t k = 0; k < best; k++) {
            if (strlen(keys[k]) == klen && strncmp(line, keys[k], klen) == 0) {
                const char *v = skip_blanks(colon + 1);
                size_t vlen = strcspn(v, "\n");
                while (vlen > 0 && is_blank(v[vlen - 1]))
                    vlen--;
                copy_str(hi->cpu_model, sizeof hi->cpu_model, v, vlen);
                best = k;
                break;
            }
        }
    }
    free(line);
    fclose(f);
}

static bool is_loopback_addr(const struct sockaddr *sa)
{
    if (sa->sa_family == AF_INET) {
        const struct sockaddr_in *in = (const struct sockaddr_in *)(const void *)sa;
        return (ntohl(in->sin_addr.s_addr) >> 24) == 127;
    }
    const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)(const void *)sa;
    return IN6_IS_ADDR_LOOPBACK(&in6->sin6_addr);
}

static void read_addrs(struct host_info *hi)
{
    struct ifaddrs *list;
    if (getifaddrs(&list) != 0)
        return;  /* no addresses is a fact the dashboard can show; not worth failing for */
    for (struct ifaddrs *ifa = list; ifa && hi->n_addrs < HOST_ADDRS_MAX; ifa = ifa->ifa_next) {
        const struct sockaddr *sa = ifa->ifa_addr;
        if (!sa || (sa->sa_family != AF_INET && sa->sa_family != AF_INET6))
            continue;
        if ((ifa->ifa_flags & IFF_LOOPBACK) || is_loopback_addr(sa))
            continue;
        struct host_addr *a = &hi->addrs[hi->n_addrs];
        const void *bin = sa->sa_family == AF_INET
                              ? (const void *)&((const struct sockaddr_in *)(const void *)sa)->sin_addr
                              : (const void *)&((const struct sockaddr_in6 *)(const void *)sa)->sin6_addr;
        if (!inet_ntop(sa->sa_family, bin, a->addr, sizeof a->addr))
            continue;
        copy_str(a->ifname, sizeof a->ifname, ifa->ifa_name, strlen(ifa->ifa_name));
        a->family = sa->sa_family == AF_INET ? 4 : 6;
        hi->n_addrs++;
    }
    freeifaddrs(list);
}

int host_info_read(const char *root, struct host_info *hi, struct errbuf *eb)
{
    memset(hi, 0, sizeof *hi);
    struct utsname u;
    if (uname(&u) != 0)
        return errf(eb, ERR_IO, "uname: %s", strerror(errno));
    copy_str(hi->hostname, sizeof hi->hostname, u.nodename, strlen(u.nodename));
    copy_str(hi->sysname, sizeof hi->sysname, u.sysname, strlen(u.sysname));
    copy_str(hi->release, sizeof hi->release, u.release, strlen(u.release));
    copy_str(hi->machine, sizeof hi->machine, u.machine, strlen(u.machine));
    read_addrs(hi);
    read_os_release(root, hi);
    read_cpu_model(root, hi);

    struct cpu_stat *st = malloc(sizeof *st);
    if (!st)
        return errf(eb, ERR_NOMEM, "out of memory");
    int rc = sample_read_cpu_stat(root, st, eb);
    if (rc == 0 && st->btime < 0)
        rc = errf(eb, ERR_BAD_INPUT, "/proc/stat: no btime");
    if (rc == 0) {
        hi->boot_time_s = st->btime;
        hi->cpus = st->online;
        if (hi->cpus == 0) {  /* a /proc/stat with only the "cpu" line */
            long n = sysconf(_SC_NPROCESSORS_ONLN);
            hi->cpus = n > 0 ? (uint32_t)n : 1;
        }
    }
    free(st);
    if (rc != 0)
        return rc;

    struct sample *m = malloc(sizeof *m);
    if (!m)
        return errf(eb, ERR_NOMEM, "out of memory");
    rc = sample_read_mem(root, m, eb);
    hi->mem_total = m->mem_total;
    free(m);
    return rc;
}

/* ---- ring and backlog ---------------------------------------------------------- */

int sample_ring_init(struct sample_ring *r, size_t capacity)
{
    memset(r, 0, sizeof *r);
    if (capacity == 0)
        return ERR_BAD_INPUT;
    r->slots = calloc(capacity, sizeof *r->slots);
    if (!r->slots)
        return ERR_NOMEM;
    r->cap = capacity;
    return 0;
}

void sample_ring_free(struct sample_ring *r)
{
    free(r->slots);
    memset(r, 0, sizeof *r);
}

void sample_ring_push(struct sample_ring *r, const struct sample *s)
{
    ASSERT(r->cap > 0);
    if (r->count < r->cap) {
        r->slots[(r->start + r->count) % r->cap] = *s;
        r->count++;
    } else {
        r->slots[r->start] = *s;
        r->start = (r->start + 1) % r->cap;
    }
}

size_t sample_ring_count(const struct sample_ring *r)
{
    return r->count;
}

size_t sample_ring_capacity(const struct sample_ring *r)
{
    return r->cap;
}

const struct sample *sample_ring_get(const struct sample_ring *r, size_t i)
{
    ASSERT(i < r->count);
    return &r->slots[(r->start + i) % r->cap];
}

struct sample_iter sample_ring_last(const struct sample_ring *r, size_t n)
{
    size_t k = n < r->count ? n : r->count;
    return (struct sample_iter){.ring = r, .next = r->count - k, .end = r->count};
}

struct sample_iter sample_ring_since(const struct sample_ring *r, uint64_t since_ms)
{
    size_t i = r->count;
    while (i > 0 && sample_ring_get(r, i - 1)->ts_ms > since_ms)
        i--;
    return (struct sample_iter){.ring = r, .next = i, .end = r->count};
}

const struct sample *sample_iter_next(struct sample_iter *it)
{
    if (it->next >= it->end)
        return NULL;
    return sample_ring_get(it->ring, it->next++);
}

int sample_backlog_init(struct sample_backlog *b, size_t capacity)
{
    b->dropped = 0;
    return sample_ring_init(&b->ring, capacity);
}

void sample_backlog_free(struct sample_backlog *b)
{
    sample_ring_free(&b->ring);
    b->dropped = 0;
}

void sample_backlog_push(struct sample_backlog *b, const struct sample *s)
{
    if (b->ring.count == b->ring.cap)
        b->dropped++;
    sample_ring_push(&b->ring, s);
}

const struct sample *sample_backlog_peek(const struct sample_backlog *b)
{
    return b->ring.count ? sample_ring_get(&b->ring, 0) : NULL;
}

bool sample_backlog_pop(struct sample_backlog *b, struct sample *out)
{
    if (b->ring.count == 0)
        return false;
    if (out)
        *out = *sample_ring_get(&b->ring, 0);
    b->ring.start = (b->ring.start + 1) % b->ring.cap;
    b->ring.count--;
    return true;
}

size_t sample_backlog_count(const struct sample_backlog *b)
{
    return b->ring.count;
}

size_t sample_backlog_capacity(const struct sample_backlog *b)
{
    return b->ring.cap;
}

uint64_t sample_backlog_dropped(const struct sample_backlog *b)
{
    return b->dropped;
}

/* ---- JSON ------------------------------------------------------------------------ */

/* Text from the machine (os-release, cpuinfo, interface names, mount points)
 * is not promised to be UTF-8, which jansson requires: bytes of an invalid
 * string above 0x7f become '?' rather than failing the whole object. */
static json_t *json_text(const char *s)
{
    size_t n = strlen(s);
    if (utf8_valid(s, n))
        return json_stringn(s, n);
    char *c = strdup(s);
    if (!c)
        return NULL;
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)c[i] >= 0x80)
            c[i] = '?';
    json_t *j = json_stringn(c, n);
    free(c);
    return j;
}

static json_t *json_pct(float v)
{
    return v < 0 ? json_null() : json_real((double)v);
}

static json_t *json_u64(uint64_t v)
{
    /* json_int_t is 64-bit signed; no byte count or timestamp gets near 2^63. */
    return json_integer(v > (uint64_t)INT64_MAX ? INT64_MAX : (json_int_t)v);
}

/* json_object_set_new fails on a NULL value too, so one check covers both the
 * value's allocation and the insertion. */
static bool put(json_t *o, const char *key, json_t *v)
{
    return json_object_set_new(o, key, v) == 0;
}

static json_t *disk_to_json(const struct disk_sample *d)
{
    json_t *o = json_object();
    if (!o)
        return NULL;
    bool ok = put(o, "mount", json_text(d->mount));
    if (d->err) {
        char msg[128];
        if (strerror_r(d->err, msg, sizeof msg) != 0)
            snprintf(msg, sizeof msg, "errno %d", d->err);
        ok = ok && put(o, "error", json_string(msg));
    } else {
        ok = ok && put(o, "total", json_u64(d->total)) && put(o, "used", json_u64(d->used)) &&
             put(o, "avail", json_u64(d->avail)) && put(o, "pct", json_real((double)d->pct));
    }
    if (!ok) {
        json_decref(o);
        return NULL;
    }
    return o;
}

json_t *sample_to_json(const struct sample *s)
{
    json_t *o = json_object(), *cores = json_array(), *disks = json_array();
    bool ok = o && cores && disks;
    for (uint32_t i = 0; ok && i < s->n_cores; i++)
        ok = json_array_append_new(cores, json_pct(s->cpu_core_pct[i])) == 0;
    for (uint32_t i = 0; ok && i < s->n_disks; i++)
        ok = json_array_append_new(disks, disk_to_json(&s->disks[i])) == 0;
    ok = ok && put(o, "ts", json_u64(s->ts_ms)) && put(o, "cpu", json_pct(s->cpu_pct)) &&
         put(o, "cpu_cores", json_incref(cores)) && put(o, "mem_total", json_u64(s->mem_total)) &&
         put(o, "mem_used", json_u64(s->mem_used)) && put(o, "mem_avail", json_u64(s->mem_avail)) &&
         put(o, "mem_pct", json_real((double)s->mem_pct)) && put(o, "swap_total", json_u64(s->swap_total)) &&
         put(o, "swap_free", json_u64(s->swap_free)) && put(o, "load1", json_real(s->load1)) &&
         put(o, "load5", json_real(s->load5)) && put(o, "load15", json_real(s->load15)) &&
         put(o, "disks", json_incref(disks)) && put(o, "uptime_s", json_u64(s->uptime_s));
    json_decref(cores);
    json_decref(disks);
    if (!ok) {
        json_decref(o);
        return NULL;
    }
    return o;
}

json_t *host_info_to_json(const struct host_info *hi)
{
    json_t *o = json_object(), *addrs = json_array();
    bool ok = o && addrs;
    for (uint32_t i = 0; ok && i < hi->n_addrs; i++) {
        const struct host_addr *a = &hi->addrs[i];
        json_t *ao = json_object();
        ok = ao && put(ao, "if", json_text(a->ifname)) && put(ao, "addr", json_text(a->addr)) &&
             put(ao, "fam", json_integer(a->family));
        ok = json_array_append_new(addrs, ao) == 0 && ok;
    }
    ok = ok && put(o, "host", json_text(hi->hostname)) && put(o, "addrs", json_incref(addrs)) &&
         put(o, "os", json_text(hi->os)) && put(o, "sysname", json_text(hi->sysname)) &&
         put(o, "release", json_text(hi->release)) && put(o, "machine", json_text(hi->machine)) &&
         put(o, "cpus", json_integer(hi->cpus)) && put(o, "cpu_model", json_text(hi->cpu_model)) &&
         put(o, "mem_total", json_u64(hi->mem_total)) && put(o, "boot_time_s", json_integer(hi->boot_time_s));
    json_decref(addrs);
    if (!ok) {
        json_decref(o);
        return NULL;
    }
    return o;
}

json_t *client_record_json(const struct host_info *hi, const char *name, uint32_t interval_ms, uint64_t started_ms,
                           bool worker)
{
    json_t *o = host_info_to_json(hi);
    if (o) {
        json_object_set_new(o, "name", json_string(name));
        json_object_set_new(o, "interval_ms", json_integer(interval_ms));
        json_object_set_new(o, "started_ms", json_integer((json_int_t)started_ms));
        json_object_set_new(o, "worker", json_boolean(worker));
    }
    return o;
}
