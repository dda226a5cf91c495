/* The metrics sampler of `ddkv agent`: what a monitored Linux machine is
 * (struct host_info, read once) and how it is doing (struct sample, read every
 * interval), a ring of recent samples for the dashboard, a bounded backlog for
 * while the cluster is unreachable, and both as JSON.
 *
 * Every reader takes a root directory (NULL or "/" is the real machine) and
 * reads ROOT/proc/... and ROOT/etc/..., so tests point it at a fake tree and an
 * agent in a container at the host's root mounted elsewhere. The disk paths are
 * taken under ROOT as well (statvfs of ROOT/MOUNT, reported as MOUNT). uname,
 * gethostname and getifaddrs always describe the real machine.
 *
 * CPU utilisation is a rate, so it comes from two reads of /proc/stat:
 *
 *     busy = user + nice + system + irq + softirq + steal
 *     idle = idle + iowait
 *     pct  = 100 * (busy2 - busy1) / ((busy2 - busy1) + (idle2 - idle1))
 *
 * guest and guest_nice are not added: the kernel already counts them in user
 * and nice. A core (or the whole-machine "cpu" line) has no value for an
 * interval (SAMPLE_NO_VALUE, JSON null) when it is missing from either read
 * (hotplug), when its busy or idle sum went backwards (a counter reset, or a
 * bad read: iowait alone may dip, which is why the sums are compared and not
 * each field), or when no tick passed between the reads. Never garbage.
 *
 * Units: bytes, Unix milliseconds (ts), seconds (uptime, boot time), percent
 * in 0..100. Nothing here is thread-safe: one agent thread owns it all. */
#ifndef DDKV_AGENT_SAMPLE_H
#define DDKV_AGENT_SAMPLE_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "util/err.h"

#define SAMPLE_CORES_MAX 256  /* per-core values kept; "cpu" still covers every core */
#define SAMPLE_DISKS_MAX 8
#define SAMPLE_MOUNT_MAX 64   /* with the NUL; a longer mount point is refused */
#define SAMPLE_ROOT_MAX 512
#define SAMPLE_NO_VALUE (-1.0f)
#define HOST_ADDRS_MAX 64     /* more addresses than this are left out */

/* Dump flags for the JSON below: compact, and percents and load averages at
 * 6 significant digits instead of jansson's default 17 ("33.3333", not
 * "33.333332061767578"). */
#define SAMPLE_JSON_FLAGS (JSON_COMPACT | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(6))

/* ---- static data ---------------------------------------------------------- */

struct host_addr {
    char ifname[32];
    char addr[48];  /* inet_ntop text; an IPv6 link-local address has no %scope */
    int family;     /* 4 or 6 */
};

struct host_info {
    char hostname[256];
    struct host_addr addrs[HOST_ADDRS_MAX];  /* non-loopback IPv4 and IPv6 */
    uint32_t n_addrs;
    char os[128];        /* os-release PRETTY_NAME; "" if there is none */
    char sysname[65];    /* uname: "Linux" */
    char release[65];    /* uname: "6.5.0-27-generic" */
    char machine[65];    /* uname: "x86_64" */
    uint32_t cpus;       /* online CPUs: cpuN lines of /proc/stat */
    char cpu_model[128]; /* /proc/cpuinfo "model name" (or the ARM/POWER field); "" if none */
    uint64_t mem_total;  /* bytes */
    int64_t boot_time_s; /* /proc/stat btime, Unix seconds */
};

/* Fill hi. Errors (ERR_IO for a missing file, ERR_BAD_INPUT for a malformed
 * one) come from /proc/stat and /proc/meminfo, which every Linux has;
 * os-release and cpuinfo are optional (empty strings). */
int host_info_read(const char *root, struct host_info *hi, struct errbuf *eb);

/* ---- samples -------------------------------------------------------------- */

struct disk_sample {
    char mount[SAMPLE_MOUNT_MAX];
    int err;          /* 0, or the errno of statvfs; then the numbers are 0 */
    uint64_t total;   /* f_blocks * f_frsize */
    uint64_t used;    /* (f_blocks - f_bfree) * f_frsize */
    uint64_t avail;   /* f_bavail * f_frsize: what an unprivileged user can still write */
    float pct;        /* 100 * used / (used + avail), as df; df shows it rounded up */
};

struct sample {
    uint64_t ts_ms;         /* wall clock when taken */
    float cpu_pct;          /* whole machine, or SAMPLE_NO_VALUE */
    uint32_t n_cores;       /* slots in cpu_core_pct: highest core index seen in either read + 1 */
    float cpu_core_pct[SAMPLE_CORES_MAX];  /* by core index; SAMPLE_NO_VALUE for none */
    uint64_t mem_total;     /* MemTotal */
    uint64_t mem_avail;     /* MemAvailable (MemFree + Buffers + Cached before Linux 3.14) */
    uint64_t mem_used;      /* mem_total - mem_avail */
    float mem_pct;          /* 100 * mem_used / mem_total */
    uint64_t swap_total, swap_free;
    double load1, load5, load15;
    uint64_t uptime_s;
    uint32_t n_disks;
    struct disk_sample disks[SAMPLE_DISKS_MAX];
};

/* One read of /proc/stat, reduced to what the formula needs. */
struct cpu_ticks {
    uint64_t busy, idle;
    bool online;  /* the line was there */
};
struct cpu_stat {
    struct cpu_ticks total;                  /* the "cpu" line */
    struct cpu_ticks cores[SAMPLE_CORES_MAX]; /* cpuN at index N */
    uint32_t n_cores;                        /* highest N kept + 1 */
    uint32_t online;                         /* cpuN lines, all of them (also past the cap) */
    int64_t btime;                           /* -1 if absent */
};

/* The readers, one file each. Errors: ERR_IO (could not open: errno in eb),
 * ERR_BAD_INPUT (a line that should be there is missing or not numbers). */
int sample_read_cpu_stat(const char *root, struct cpu_stat *out, struct errbuf *eb);
int sample_read_mem(const char *root, struct sample *out, struct errbuf *eb);
int sample_read_load(const char *root, struct sample *out, struct errbuf *eb);
int sample_read_uptime(const char *root, struct sample *out, struct errbuf *eb);
/* statvfs of each ROOT/mounts[i] into out->disks; a failure is that disk's
 * err, not the sample's. n_mounts <= SAMPLE_DISKS_MAX, each shorter than
 * SAMPLE_MOUNT_MAX (asserted: sampler_init checks them). */
void sample_read_disks(const char *root, const char *const *mounts, size_t n_mounts, struct sample *out);
/* Fill out->cpu_pct, n_cores and cpu_core_pct from two reads (the formula above). */
void sample_cpu_pct(const struct cpu_stat *prev, const struct cpu_stat *cur, struct sample *out);

/* The sampler: the root, the disks to watch, and the previous /proc/stat read
 * (so each sample's CPU covers the time since the one before). About 7 KiB;
 * the caller owns the storage. */
struct sampler {
    char root[SAMPLE_ROOT_MAX];
    char mounts[SAMPLE_DISKS_MAX][SAMPLE_MOUNT_MAX];
    uint32_t n_mounts;
    struct cpu_stat prev;
};

/* Copies root (NULL: "/") and the mount points (absolute paths; ERR_TOO_LARGE
 * past SAMPLE_DISKS_MAX or SAMPLE_MOUNT_MAX-1 bytes, ERR_BAD_INPUT if
 * relative) and reads /proc/stat once, so the first sample has CPU values. */
int sampler_init(struct sampler *s, const char *root, const char *const *mounts, size_t n_mounts,
                 struct errbuf *eb);
/* Take one sample. On error out is unspecified and the previous /proc/stat
 * read is kept, so the next sample's CPU spans the failed one. */
int sampler_sample(struct sampler *s, struct sample *out, struct errbuf *eb);

/* ---- the ring: the last `capacity` samples, oldest overwritten ------------- */

struct sample_ring {
    struct sample *slots;  /* owned */
    size_t cap;
    size_t start;          /* slot of the oldest */
    size_t count;
};

/* A range of a ring, oldest first. Borrowed: valid until the ring changes. */
struct sample_iter {
    const struct sample_ring *ring;
    size_t next, end;  /* logical indexes, 0 = oldest */
};

/* ERR_BAD_INPUT for capacity 0, ERR_NOMEM. sizeof(struct sample) is about
 * 2 KiB, so an hour at 1 s is about 7 MiB. */
int sample_ring_init(struct sample_ring *r, size_t capacity);
void sample_ring_free(struct sample_ring *r);
void sample_ring_push(struct sample_ring *r, const struct sample *s);
size_t sample_ring_count(const struct sample_ring *r);
size_t sample_ring_capacity(const struct sample_ring *r);
/* The i-th oldest (i < count). Borrowed until the next push. */
const struct sample *sample_ring_get(const struct sample_ring *r, size_t i);
/* The last min(n, count) samples. */
struct sample_iter sample_ring_last(const struct sample_ring *r, size_t n);
/* The newest samples with ts_ms > since_ms (strictly: pass the last ts you
 * have and get only what is new). Scans back from the newest and stops at the
 * first one not newer, so a wall-clock step backwards cannot return old
 * samples twice; but after one, a cursor past the new clock sees nothing
 * until the clock passes it again (sample_ring_last has no such limit). */
struct sample_iter sample_ring_since(const struct sample_ring *r, uint64_t since_ms);
/* The next sample of the range, or NULL at its end. */
const struct sample *sample_iter_next(struct sample_iter *it);

/* ---- the backlog: samples not yet delivered, bounded ----------------------- */

struct sample_backlog {
    struct sample_ring ring;
    uint64_t dropped;  /* oldest samples pushed out by a full backlog, ever */
};

int sample_backlog_init(struct sample_backlog *b, size_t capacity);
void sample_backlog_free(struct sample_backlog *b);
/* Append; when full the oldest is dropped (and counted): the newest data is
 * what a dashboard wants when the cluster comes back. */
void sample_backlog_push(struct sample_backlog *b, const struct sample *s);
/* The oldest, borrowed until the next push or pop; NULL if empty. For
 * flushing: peek, send, and pop only once the cluster took it. */
const struct sample *sample_backlog_peek(const struct sample_backlog *b);
/* Remove the oldest, copying it to out if out is non-NULL. False if empty. */
bool sample_backlog_pop(struct sample_backlog *b, struct sample *out);
size_t sample_backlog_count(const struct sample_backlog *b);
size_t sample_backlog_capacity(const struct sample_backlog *b);
uint64_t sample_backlog_dropped(const struct sample_backlog *b);

/* ---- JSON ------------------------------------------------------------------ *
 * Both return a new reference (caller json_decref's it) or NULL when out of
 * memory. Dump with SAMPLE_JSON_FLAGS. Numbers without a value are null.
 *
 * sample_to_json:
 *   {"ts":1718000000123,"cpu":37.5,"cpu_cores":[25,50,null],
 *    "mem_total":8254312448,"mem_used":3127345152,"mem_avail":5126967296,"mem_pct":37.8877,
 *    "swap_total":2147479552,"swap_free":2147479552,
 *    "load1":0.52,"load5":0.61,"load15":0.7,
 *    "disks":[{"mount":"/","total":105089261568,"used":42141122560,"avail":57560289280,"pct":42.2625},
 *             {"mount":"/data","error":"No such file or directory"}],
 *    "uptime_s":23308}
 *
 * host_info_to_json:
 *   {"host":"web1","addrs":[{"if":"eth0","addr":"10.0.0.5","fam":4},
 *                           {"if":"eth0","addr":"fe80::1","fam":6}],
 *    "os":"Ubuntu 22.04.4 LTS","sysname":"Linux","release":"6.5.0-27-generic",
 *    "machine":"x86_64","cpus":8,"cpu_model":"Intel(R) Xeon(R) ...",
 *    "mem_total":8254312448,"boot_time_s":1717976692}
 */
json_t *sample_to_json(const struct sample *s);
json_t *host_info_to_json(const struct host_info *hi);
/* What an agent announces as clients/<name>: host_info_to_json plus the
 * agent's own name, interval_ms, started_ms and worker. */
json_t *client_record_json(const struct host_info *hi, const char *name, uint32_t interval_ms, uint64_t started_ms,
                           bool worker);

#endif
