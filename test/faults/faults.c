/* ddkv-faults: Jepsen-style fault schedules against a real ddkv cluster.
 *
 * One schedule: start a cluster (3 or 5 members) whose peer traffic all goes
 * through the fault proxy (proxy.h); run concurrent clients doing linearizable
 * reads, writes, compare-and-swaps and LISTs on a few keys, recording every
 * operation's call, return and outcome as JSON lines (a LIST walks the keys
 * PAGE_LIMIT at a time, and each page, its own linearizable read, is recorded
 * as its own operation: linearize.h); run two watchers over
 * the same keys; meanwhile a nemesis, on a schedule drawn from the seed, kills
 * and restarts members, pauses them, partitions the network (halves, an
 * isolated leader, a bridge, one-way cuts), restarts every member at once,
 * adds and removes members and hands leadership over; and, each member's
 * data dir being its own lossyfs mount (tools/lossyfs; the run re-executes
 * itself in a private mount namespace), cuts the power of one member, a
 * minority or all (also torn), fails their fsyncs, and cuts the power during
 * snapshot saves and installs, membership changes and leadership transfers
 * (--no-power: none of that; --power-only, --only KIND). At the end it heals
 * everything and checks:
 *   - the history is linearizable (linearize.h);
 *   - no acknowledged write is lost: each appears in the watch streams at the
 *     revision it was acknowledged with, and no key's final revision is older;
 *   - no write was applied twice (every value written is unique);
 *   - the watch streams have no gap: revisions increase, both watchers saw the
 *     same change at each revision they both cover, and every acknowledged
 *     write in a range a watcher covered is in it;
 *   - every member's data is the same, and the cluster is healthy;
 *   - every member booted after every power cut, and one whose fsyncs failed
 *     served reads meanwhile and rejoined by itself once they worked.
 * Prints one line per schedule and a summary line; exit 0 only if all passed.
 *
 *   ddkv-faults [--seed S] [--schedules N] [--duration-s D] [--nodes 3|5]
 *               [--out DIR] [--keep] [--no-power] [--power-only] [--only KIND]
 *   ddkv-faults --check HISTORY.jsonl...   (check kept histories again)
 *
 * The ddkv binary comes from $DDKV_BIN. Everything listens on 127.0.0.1;
 * every node is killed by PID at the end (and dies with this process). */
#define _GNU_SOURCE /* close_range */
#include <dirent.h>
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <fcntl.h>
#include <limits.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <netinet/in.h>

#include "ddkv/ddkv.h"
#include "harness.h"
#include "linearize.h"
#include "proxy.h"
#include "util/clock.h"

#define SLOTS 8
#define NCLIENTS 5
#define NKEYS 6
#define PAGE_LIMIT 2 /* keys per LIST page: a LIST over NKEYS keys takes several pages */
#define NWATCHERS 2
#define CLIENT_TIMEOUT_MS 8000

/* --- small helpers --- */

static void msleep(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

static double now_s(uint64_t t0)
{
    return (double)(clock_mono_ns() - t0) / 1e9;
}

static bool port_free(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return false;
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    bool ok = bind(fd, (struct sockaddr *)&a, sizeof a) == 0;
    close(fd);
    return ok;
}

static void append_file(const char *to, const char *from)
{
    FILE *in = fopen(from, "r");
    if (!in)
        return;
    FILE *out = fopen(to, "a");
    if (out) {
        char buf[65536];
        size_t n;
        while ((n = fread(buf, 1, sizeof buf, in)) > 0)
            fwrite(buf, 1, n, out);
        fclose(out);
    }
    fclose(in);
}

/* --- the run --- */

struct slot {
    char name[16];
    int client_port, peer_port, front_port;
    bool member;   /* started and (meant to be) in the configuration */
    bool joiner;   /* started with --join */
    bool paused;
    struct proc_node pn;
    char dir[300], log_all[320];
    /* Power faults: the data dir is a lossyfs mount (tools/lossyfs) over
     * back, driven through the control socket sock. */
    pid_t lfs_pid;
    char back[320], sock[108], lfs_log[320];
};

/* A write or CAS whose outcome matters to the checks. */
struct wrec {
    char key[8];
    char value[24];
    uint64_t rev;  /* acknowledged revision; 0 if unknown */
    bool acked;
};

struct wev {
    char key[8];
    char value[24];
    uint64_t rev;
    bool del;
};

struct segment {
    uint64_t from, to; /* revisions covered: every change in [from, to] was delivered */
};

struct watcher {
    pthread_t th;
    int id;
    struct run *r;
    struct wev *ev;
    size_t n, cap;
    struct segment seg[64];
    int nseg;
    uint64_t last_rev;
    int compactions;
    char err[256];
};

struct client {
    pthread_t th;
    int id;
    struct run *r;
    uint64_t rng;
    int ops;
};

struct run {
    uint64_t seed, rng;
    int duration_s, nstart, sched;
    char dir[256];
    struct fproxy *px;
    struct slot s[SLOTS];
    int nslots;
    char spec[512], endpoints[512];
    int base_port;
    uint64_t t0;
    FILE *nlog; /* the nemesis's log */
    char faults[2048];
    int nfaults;
    /* History. */
    pthread_mutex_t mu;
    FILE *hist;
    struct wrec *w;
    size_t nw, capw;
    char last_val[NKEYS][24]; /* a recent value of each key, for CAS */
    volatile int stop_clients, stop_watchers;
    volatile uint64_t watch_target;
    struct client c[NCLIENTS];
    struct watcher wt[NWATCHERS];
    /* Results. */
    int ops, unknown, failed_ops, pages; /* pages: LIST pages recorded (in ops too) */
    int crashes;           /* members that exited without being killed */
    char crash_msg[512];
    int fsync_us;          /* how long each fsync takes on the lossyfs mounts (a disk's flush) */
    int unbootable;        /* members that did not boot again after a power cut */
    int unhealed;          /* members that did not rejoin by themselves after fsync errors stopped */
    int unserved;          /* members fenced by fsync errors that stopped serving reads */
    char power_msg[512];
};

static void nlogf(struct run *r, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(r->nlog, "%8.3f ", now_s(r->t0));
    vfprintf(r->nlog, fmt, ap);
    fputc('\n', r->nlog);
    fflush(r->nlog);
    va_end(ap);
}

/* Faults of each kind over every schedule of this process, for the summary. */
#define MAX_KINDS 48
static struct {
    char name[32];
    int n;
} g_kinds[MAX_KINDS];
static int g_nkinds;

static bool power_kind(const char *what)
{
    return strncmp(what, "power-cut", 9) == 0 || strcmp(what, "torn-power-cut") == 0 ||
           strcmp(what, "fsync-eio") == 0;
}

static void note_fault(struct run *r, const char *what)
{
    size_t l = strlen(r->faults);
    snprintf(r->faults + l, sizeof r->faults - l, "%s%s", l ? "," : "", what);
    r->nfaults++;
    int k = 0;
    while (k < g_nkinds && strcmp(g_kinds[k].name, what) != 0)
        k++;
    if (k == g_nkinds && g_nkinds < MAX_KINDS)
        snprintf(g_kinds[g_nkinds++].name, sizeof g_kinds[0].name, "%s", what);
    if (k < g_nkinds)
        g_kinds[k].n++;
}

static uint64_t rnd(struct run *r, uint64_t n)
{
    return n ? test_rng(&r->rng) % n : 0;
}

/* --- lossyfs: each member's data dir on its own mount --- */

/* Snapshots often, with power faults: cuts during saves and installs. */
#define SNAP_ENTRIES 500
#define SNAP_ENTRIES_S "500"

/* Power faults need tools/lossyfs (LOSSYFS_BIN, else next to DDKV_BIN) and
 * fusermount3; the schedule then runs in a private mount namespace (main). */
static char g_lossyfs[PATH_MAX];    /* empty: power faults off */
static char g_fusermount[PATH_MAX];
static char g_sockdir[64];          /* control sockets (their paths must be short) */
static struct run *volatile g_run;  /* the schedule running, for the signal cleanup */
static bool g_power_only;           /* --power-only: every fault a power fault */
static int g_only = -1;             /* --only KIND: every fault of that kind */
static int g_only_sub = -1;         /* ... and of that timed power cut */

/* --only's names, by the number fault() draws (the first of each). */
static const struct {
    const char *name;
    int kind;
} g_only_names[] = {{"kill", 0},           {"pause", 2},          {"partition", 3},
                    {"isolate-leader", 5}, {"bridge", 6},         {"one-way", 7},
                    {"restart-all", 8},    {"membership", 9},     {"transfer", 10},
                    {"power-cut", 11},     {"power-cut-minority", 13}, {"power-cut-all", 14},
                    {"torn-power-cut", 16}, {"fsync-eio", 17},    {"power-cut-timed", 18},
                    {"power-cut-install", 100}, {"power-cut-save", 101}, {"power-cut-member", 102},
                    {"power-cut-transfer", 103}};

static bool is_mounted(const char *path)
{
    FILE *f = fopen("/proc/self/mounts", "r");
    if (!f)
        return false;
    char line[1024], want[400];
    snprintf(want, sizeof want, " %s fuse", path);
    bool found = false;
    while (!found && fgets(line, sizeof line, f))
        found = strstr(line, want) != NULL;
    fclose(f);
    return found;
}

/* Send one command to a mount's control socket; the connection, or -1 (why
 * in out). */
static int lfs_send(const struct slot *s, const char *cmd, char *out, size_t cap)
{
    out[0] = 0;
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return snprintf(out, cap, "socket: %s", strerror(errno)), -1;
    struct sockaddr_un a = {.sun_family = AF_UNIX};
    snprintf(a.sun_path, sizeof a.sun_path, "%s", s->sock);
    struct timeval tv = {20, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    if (connect(fd, (struct sockaddr *)&a, sizeof a) != 0) {
        snprintf(out, cap, "connect %s: %s", s->sock, strerror(errno));
        close(fd);
        return -1;
    }
    char line[128];
    int n = snprintf(line, sizeof line, "%s\n", cmd);
    if (write(fd, line, (size_t)n) != n) {
        snprintf(out, cap, "write: %s", strerror(errno));
        close(fd);
        return -1;
    }
    return fd;
}

/* The reply on fd (closed); 0 if its last line starts with "ok". */
static int lfs_recv(int fd, char *out, size_t cap)
{
    size_t got = 0;
    for (;;) {
        ssize_t k = read(fd, out + got, cap - 1 - got);
        if (k <= 0)
            break;
        got += (size_t)k;
        if (got == cap - 1) { /* keep the tail: the verdict is on the last line */
            memmove(out, out + cap / 2, got - cap / 2);
            got -= cap / 2;
        }
    }
    close(fd);
    out[got] = 0;
    while (got && out[got - 1] == '\n')
        out[--got] = 0;
    const char *last = strrchr(out, '\n');
    last = last ? last + 1 : out;
    return strncmp(last, "ok", 2) == 0 ? 0 : -1;
}

/* One command; 0 if the reply's last line starts with "ok". The reply (or
 * why not) in out. */
static int lfs_ctl(const struct slot *s, const char *cmd, char *out, size_t cap)
{
    int fd = lfs_send(s, cmd, out, cap);
    return fd < 0 ? -1 : lfs_recv(fd, out, cap);
}

static int run_wait(const char *const *argv)
{
    pid_t pid = fork();
    if (pid < 0)
        return -1;
    if (pid == 0) {
        int devnull = open("/dev/null", O_RDWR);
        if (devnull >= 0) {
            dup2(devnull, 1);
            dup2(devnull, 2);
        }
        execv(argv[0], (char *const *)argv);
        _exit(127);
    }
    int st;
    while (waitpid(pid, &st, 0) < 0 && errno == EINTR) {
    }
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

/* Mount member i's data dir (once: it stays mounted across restarts and power
 * cuts, as a disk does). */
static int lfs_mount(struct run *r, int i)
{
    struct slot *s = &r->s[i];
    if (!g_lossyfs[0] || s->lfs_pid > 0)
        return 0;
    char parent[300];
    snprintf(parent, sizeof parent, "%s/%s", r->dir, s->name);
    snprintf(s->back, sizeof s->back, "%s/disk", parent);
    snprintf(s->lfs_log, sizeof s->lfs_log, "%s/lossyfs.log", parent);
    snprintf(s->sock, sizeof s->sock, "%s/%d-n%d.sock", g_sockdir, r->sched, i + 1);
    mkdir(parent, 0755);
    mkdir(s->back, 0755);
    mkdir(s->dir, 0755);
    unlink(s->sock);
    char seed[32];
    snprintf(seed, sizeof seed, "%" PRIu64, r->seed * 31 + (uint64_t)i);
    pid_t parent_pid = getpid();
    pid_t pid = fork();
    if (pid < 0)
        return -1;
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGTERM); /* and --die-with-parent: it unmounts */
        if (getppid() != parent_pid)
            _exit(127);
        int logfd = open(s->lfs_log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
        if (logfd >= 0)
            dup2(logfd, 2);
        int devnull = open("/dev/null", O_RDWR);
        if (devnull >= 0) {
            dup2(devnull, 0);
            dup2(devnull, 1);
        }
        close_range(3, ~0u, 0);
        execl(g_lossyfs, "lossyfs", "mount", s->back, s->dir, "--control", s->sock, "--seed", seed,
              "--die-with-parent", (char *)NULL);
        _exit(127);
    }
    s->lfs_pid = pid;
    char reply[256], cmd[64];
    snprintf(cmd, sizeof cmd, "fsync-delay %d", r->fsync_us);
    for (int t = 0; t < 200; t++) {
        if (lfs_ctl(s, "ping", reply, sizeof reply) == 0 && is_mounted(s->dir)) {
            if (lfs_ctl(s, cmd, reply, sizeof reply) != 0) {
                nlogf(r, "lossyfs for %s: %s: %s", s->name, cmd, reply);
                return -1;
            }
            return 0;
        }
        int st;
        if (waitpid(pid, &st, WNOHANG) == pid) {
            s->lfs_pid = 0;
            nlogf(r, "lossyfs for %s exited (see %s)", s->name, s->lfs_log);
            return -1;
        }
        msleep(50);
    }
    nlogf(r, "lossyfs for %s did not mount", s->name);
    return -1;
}

/* Unmount member i's data dir and stop its lossyfs, by PID. */
static void lfs_umount(struct slot *s)
{
    if (s->lfs_pid <= 0)
        return;
    if (is_mounted(s->dir)) {
        const char *u[] = {g_fusermount, "-u", s->dir, NULL};
        const char *uz[] = {g_fusermount, "-uz", s->dir, NULL};
        if (run_wait(u) != 0)
            run_wait(uz);
    }
    int st;
    bool gone = false;
    for (int t = 0; t < 100 && !gone; t++) {
        gone = waitpid(s->lfs_pid, &st, WNOHANG) == s->lfs_pid;
        if (!gone)
            msleep(50);
    }
    if (!gone) {
        kill(s->lfs_pid, SIGTERM);
        msleep(200);
        kill(s->lfs_pid, SIGKILL);
        waitpid(s->lfs_pid, &st, 0);
    }
    s->lfs_pid = 0;
    unlink(s->sock);
}

/* A signal ends the run: every node and lossyfs of the schedule stopped by
 * PID, every mount undone (fork, execv, kill and waitpid are safe here). */
static void on_signal(int sig)
{
    struct run *r = g_run;
    for (int i = 0; r && i < SLOTS; i++)
        if (r->s[i].pn.pid > 0)
            kill(r->s[i].pn.pid, SIGKILL);
    for (int i = 0; r && i < SLOTS; i++) {
        struct slot *s = &r->s[i];
        if (s->lfs_pid <= 0)
            continue;
        pid_t p = fork();
        if (p == 0) {
            execl(g_fusermount, "fusermount3", "-uz", s->dir, (char *)NULL);
            _exit(127);
        }
        if (p > 0)
            waitpid(p, NULL, 0);
        kill(s->lfs_pid, SIGTERM);
        for (int t = 0; t < 20 && waitpid(s->lfs_pid, NULL, WNOHANG) == 0; t++) {
            struct timespec ts = {0, 50000000};
            nanosleep(&ts, NULL);
        }
        kill(s->lfs_pid, SIGKILL); /* one with a frozen fsync: its connection is aborted */
        unlink(s->sock);
    }
    if (g_sockdir[0])
        rmdir(g_sockdir);
    _exit(128 + sig);
}

/* --- members --- */

static int slot_start(struct run *r, int i)
{
    struct slot *s = &r->s[i];
    char client[32], peer[32], listen[32];
    snprintf(client, sizeof client, "127.0.0.1:%d", s->client_port);
    snprintf(peer, sizeof peer, "127.0.0.1:%d", s->front_port);
    snprintf(listen, sizeof listen, "127.0.0.1:%d", s->peer_port);
    const char *argv[] = {"--name", s->name, "--client-addr", client, "--peer-addr", peer,
                          "--listen-peer-addr", listen, "--snapshot-entries",
                          g_lossyfs[0] ? SNAP_ENTRIES_S : "2000",
                          s->joiner ? "--join" : "--cluster", s->joiner ? NULL : r->spec, NULL};
    if (s->pn.log[0])
        append_file(s->log_all, s->pn.log);
    char parent[300];
    snprintf(parent, sizeof parent, "%s/%s", r->dir, s->name);
    mkdir(parent, 0755);
    if (lfs_mount(r, i) != 0)
        return -1;
    fproxy_set_down(r->px, s->name, false);
    for (int attempt = 0; attempt < 3; attempt++) {
        if (pn_start(&s->pn, s->dir, argv) == 0) {
            s->paused = false;
            return 0;
        }
        append_file(s->log_all, s->pn.log);
        msleep(500); /* a port still held by a dying process */
    }
    nlogf(r, "cannot start %s", s->name);
    return -1;
}

static bool slot_running(const struct slot *s)
{
    return s->pn.pid > 0;
}

static bool reap_one(struct run *r, int i);

static void slot_kill(struct run *r, int i)
{
    struct slot *s = &r->s[i];
    if (reap_one(r, i) || !slot_running(s))
        return; /* it crashed by itself: noted */
    if (s->paused)
        kill(s->pn.pid, SIGCONT);
    pn_kill(&s->pn, SIGKILL);
    s->paused = false;
    if (r->px)
        fproxy_set_down(r->px, s->name, true); /* dialling a dead member is refused */
}

static void slot_pause(struct run *r, int i, bool pause)
{
    struct slot *s = &r->s[i];
    if (!slot_running(s) || s->paused == pause)
        return;
    kill(s->pn.pid, pause ? SIGSTOP : SIGCONT);
    s->paused = pause;
    (void)r;
}

/* Members meant to be in the configuration, as indexes. */
static int members(struct run *r, int *out)
{
    int n = 0;
    for (int i = 0; i < r->nslots; i++)
        if (r->s[i].member)
            out[n++] = i;
    return n;
}

/* The member that says it leads, in the highest term; -1 if none. */
static int leader(struct run *r)
{
    int best = -1;
    uint64_t best_term = 0;
    for (int i = 0; i < r->nslots; i++) {
        struct slot *s = &r->s[i];
        if (!s->member || !slot_running(s) || s->paused)
            continue;
        char name[64];
        uint64_t term;
        if (pn_pong(s->client_port, name, sizeof name, &term) == 0 && strcmp(name, s->name) == 0 &&
            term >= best_term) {
            best = i;
            best_term = term;
        }
    }
    return best;
}

static int wait_leader(struct run *r, int ms)
{
    for (int waited = 0; waited < ms; waited += 100) {
        int l = leader(r);
        if (l >= 0)
            return l;
        msleep(100);
    }
    return -1;
}

static ddkv_client *new_client(const char *endpoints, uint32_t timeout_ms)
{
    struct ddkv_options o;
    ddkv_options_init(&o);
    o.endpoints = endpoints;
    o.timeout_ms = timeout_ms;
    o.connect_timeout_ms = 500;
    o.list_consistency = DDKV_CONSISTENCY_LINEARIZABLE;
    ddkv_client *c = NULL;
    char err[256];
    if (ddkv_client_new(&o, &c, err, sizeof err) != DDKV_OK)
        return NULL;
    return c;
}

static ddkv_client *slot_client(struct run *r, int i, uint32_t timeout_ms)
{
    char ep[64];
    snprintf(ep, sizeof ep, "127.0.0.1:%d", r->s[i].client_port);
    return new_client(ep, timeout_ms);
}

/* --- the workload --- */

static void record(struct run *r, int client, const char *op, const char *key, const char *value,
                   const char *expected, uint64_t call, uint64_t ret, const char *ok)
{
    pthread_mutex_lock(&r->mu);
    fprintf(r->hist, "{\"client\":%d,\"op\":\"%s\",\"key\":\"%s\",\"value\":", client, op, key);
    if (value)
        fprintf(r->hist, "\"%s\"", value);
    else
        fputs("null", r->hist);
    fputs(",\"expected\":", r->hist);
    if (expected)
        fprintf(r->hist, "\"%s\"", expected);
    else
        fputs("null", r->hist);
    fprintf(r->hist, ",\"call\":%" PRIu64 ",\"return\":%" PRIu64 ",\"ok\":%s}\n", call, ret, ok);
    r->ops++;
    if (strcmp(ok, "\"unknown\"") == 0)
        r->unknown++;
    pthread_mutex_unlock(&r->mu);
}

/* One LIST page (l NULL: it failed, and constrains nothing), in the format of
 * lin_check_file. Keys and values are the workload's, plain ASCII. */
static void record_page(struct run *r, int client, const char *prefix, const char *after,
                        const struct ddkv_list *l, uint64_t call, uint64_t ret)
{
    pthread_mutex_lock(&r->mu);
    fprintf(r->hist, "{\"client\":%d,\"op\":\"list\",\"prefix\":\"%s\",\"after\":", client, prefix);
    if (after[0])
        fprintf(r->hist, "\"%s\"", after);
    else
        fputs("null", r->hist);
    fputs(",\"entries\":[", r->hist);
    for (size_t i = 0; l && i < l->n; i++)
        fprintf(r->hist, "%s[\"%.*s\",\"%.*s\"]", i ? "," : "", (int)l->entries[i].key_len,
                (const char *)l->entries[i].key, (int)l->entries[i].value_len, (const char *)l->entries[i].value);
    fprintf(r->hist, "],\"more\":%s,\"call\":%" PRIu64 ",\"return\":%" PRIu64 ",\"ok\":%s}\n",
            l && l->more ? "true" : "false", call, ret, l ? "true" : "false");
    r->ops++;
    r->pages++;
    pthread_mutex_unlock(&r->mu);
}

static void note_write(struct run *r, const char *key, const char *value, uint64_t rev, bool acked)
{
    pthread_mutex_lock(&r->mu);
    if (r->nw == r->capw) {
        r->capw = r->capw ? 2 * r->capw : 1024;
        r->w = realloc(r->w, r->capw * sizeof *r->w);
        if (!r->w)
            abort();
    }
    struct wrec *w = &r->w[r->nw++];
    snprintf(w->key, sizeof w->key, "%s", key);
    snprintf(w->value, sizeof w->value, "%s", value);
    w->rev = rev;
    w->acked = acked;
    pthread_mutex_unlock(&r->mu);
}

/* The client a read goes through: for the client that has one per member
 * (member[0] set), a member picked at random; else c. */
static ddkv_client *pick_reader(struct run *r, struct client *cl, ddkv_client *const *member, ddkv_client *c)
{
    for (int t = 0; member[0] && t < 16; t++) {
        int i = (int)(test_rng(&cl->rng) % SLOTS);
        if (__atomic_load_n(&r->s[i].member, __ATOMIC_RELAXED)) /* may be stale: a failed read */
            return member[i];
    }
    return c;
}

/* A LIST of the workload's keys (prefix "k"), page by page: each page is its
 * own linearizable read, through its own pick of reader, recorded as its own
 * operation. A failed page ends the walk, as in ddkv_list_all. */
static void list_walk(struct run *r, struct client *cl, ddkv_client *const *member, ddkv_client *c)
{
    char after[8] = "";
    for (int page = 0; page <= NKEYS && !r->stop_clients; page++) {
        ddkv_client *lc = pick_reader(r, cl, member, c);
        struct ddkv_list l;
        uint64_t call = clock_mono_ns();
        ddkv_err e = ddkv_list(lc, "k", 1, after, strlen(after), PAGE_LIMIT, &l);
        uint64_t ret = clock_mono_ns();
        record_page(r, cl->id, "k", after, e == DDKV_OK ? &l : NULL, call, ret);
        if (e != DDKV_OK)
            return;
        bool more = l.more && l.n > 0;
        if (more)
            snprintf(after, sizeof after, "%.*s", (int)l.entries[l.n - 1].key_len,
                     (const char *)l.entries[l.n - 1].key);
        ddkv_list_free(&l);
        if (!more)
            return;
    }
}

static void *client_main(void *arg)
{
    struct client *cl = arg;
    struct run *r = cl->r;
    /* One impatient client: its operations time out during faults, so the
     * history has outcomes that are unknown (they may take effect later). */
    ddkv_client *c = new_client(r->endpoints, cl->id == NCLIENTS - 1 ? 1200 : CLIENT_TIMEOUT_MS);
    if (!c)
        return NULL;
    /* One client reads (and lists) through a member picked at random for each
     * read (page), so followers (ReadIndex through the leader) and deposed
     * leaders answer linearizable reads too, not only the leader the others
     * settle on. */
    ddkv_client *member[SLOTS] = {0};
    if (cl->id == NCLIENTS - 2)
        for (int i = 0; i < SLOTS; i++)
            member[i] = slot_client(r, i, 2000);
    int seq = 0;
    while (!r->stop_clients) {
        int k = (int)(test_rng(&cl->rng) % NKEYS);
        char key[8], val[24], exp[24];
        snprintf(key, sizeof key, "k%d", k);
        /* 30% reads, 10% LISTs, 40% writes, 20% CAS. */
        int what = (int)(test_rng(&cl->rng) % 10);
        uint64_t call = clock_mono_ns();
        if (what == 3) {
            list_walk(r, cl, member, c);
        } else if (what < 3) {
            struct ddkv_value v;
            ddkv_client *rc = pick_reader(r, cl, member, c);
            ddkv_err e = ddkv_read(rc, key, strlen(key), DDKV_CONSISTENCY_LINEARIZABLE, 0, &v);
            uint64_t ret = clock_mono_ns();
            if (e == DDKV_OK) {
                record(r, cl->id, "read", key, v.value, NULL, call, ret, "true");
                pthread_mutex_lock(&r->mu);
                snprintf(r->last_val[k], sizeof r->last_val[k], "%s", (const char *)v.value);
                pthread_mutex_unlock(&r->mu);
                ddkv_free(v.value);
            } else if (e == DDKV_ERR_NOT_FOUND) {
                record(r, cl->id, "read", key, NULL, NULL, call, ret, "true");
            } else {
                record(r, cl->id, "read", key, NULL, NULL, call, ret, "false");
            }
        } else if (what < 8) {
            snprintf(val, sizeof val, "c%d-%d", cl->id, ++seq);
            struct ddkv_write_result wr;
            ddkv_err e = ddkv_write(c, key, strlen(key), val, strlen(val), 0, &wr);
            uint64_t ret = clock_mono_ns();
            /* Only an explicit refusal is a failure; anything else may have
             * happened (libddkv retries under one session number, so it
             * says UNKNOWN_OUTCOME only at its deadline). */
            bool refused = e == DDKV_ERR_BAD_REQUEST || e == DDKV_ERR_TOO_LARGE;
            record(r, cl->id, "write", key, val, NULL, call, ret,
                   e == DDKV_OK ? "true" : refused ? "false" : "\"unknown\"");
            if (e == DDKV_OK || !refused)
                note_write(r, key, val, e == DDKV_OK ? wr.revision : 0, e == DDKV_OK);
            if (e == DDKV_OK) {
                pthread_mutex_lock(&r->mu);
                snprintf(r->last_val[k], sizeof r->last_val[k], "%s", val);
                pthread_mutex_unlock(&r->mu);
            }
        } else {
            snprintf(val, sizeof val, "c%d-%d", cl->id, ++seq);
            pthread_mutex_lock(&r->mu);
            snprintf(exp, sizeof exp, "%s", r->last_val[k]);
            pthread_mutex_unlock(&r->mu);
            bool absent = exp[0] == 0;
            struct ddkv_txn_result tr;
            ddkv_err e = ddkv_cas(c, key, strlen(key), exp, strlen(exp), absent, val, strlen(val), 0, &tr);
            uint64_t ret = clock_mono_ns();
            record(r, cl->id, "cas", key, val, absent ? NULL : exp, call, ret,
                   e == DDKV_OK ? (tr.succeeded ? "true" : "false") : "\"unknown\"");
            if (e != DDKV_OK || tr.succeeded)
                note_write(r, key, val, e == DDKV_OK ? tr.revision : 0, e == DDKV_OK);
        }
        cl->ops++;
        msleep((int)(test_rng(&cl->rng) % 8));
    }
    for (int i = 0; i < SLOTS; i++)
        ddkv_client_free(member[i]);
    ddkv_client_free(c);
    return NULL;
}

/* --- watchers --- */

static void watcher_push(struct watcher *w, const struct ddkv_event *ev)
{
    if (w->n == w->cap) {
        w->cap = w->cap ? 2 * w->cap : 4096;
        w->ev = realloc(w->ev, w->cap * sizeof *w->ev);
        if (!w->ev)
            abort();
    }
    struct wev *e = &w->ev[w->n++];
    snprintf(e->key, sizeof e->key, "%.*s", (int)ev->key_len, (const char *)ev->key);
    snprintf(e->value, sizeof e->value, "%.*s", (int)ev->value_len, (const char *)ev->value);
    e->rev = ev->mod_rev;
    e->del = ev->kind == DDKV_OP_DELETE;
}

static void *watcher_main(void *arg)
{
    struct watcher *w = arg;
    struct run *r = w->r;
    struct ddkv_options o;
    ddkv_options_init(&o);
    o.endpoints = r->endpoints;
    o.timeout_ms = 3000;
    o.connect_timeout_ms = 500;
    uint64_t from = 1;
    ddkv_watch *wa = NULL;
    uint64_t stop_at = 0;
    while (w->nseg < 64) {
        if (!wa) {
            char err[256];
            if (ddkv_watch_open(&o, "k", 1, from, &wa, err, sizeof err) != DDKV_OK) {
                if (r->stop_watchers && clock_mono_ms() > stop_at + 30000 && stop_at)
                    break;
                msleep(200);
                continue;
            }
            w->seg[w->nseg].from = from;
            w->seg[w->nseg].to = from - 1;
            w->nseg++;
        }
        if (r->stop_watchers) {
            if (!stop_at)
                stop_at = clock_mono_ms();
            if (w->last_rev >= r->watch_target || clock_mono_ms() > stop_at + 30000)
                break;
        }
        struct ddkv_event ev;
        ddkv_err e = ddkv_watch_next(wa, &ev, 300);
        if (e == DDKV_OK) {
            if (ev.mod_rev <= w->last_rev && w->n) {
                snprintf(w->err, sizeof w->err, "revision went back from %" PRIu64 " to %" PRIu64,
                         w->last_rev, ev.mod_rev);
            }
            watcher_push(w, &ev);
            w->last_rev = ev.mod_rev;
            w->seg[w->nseg - 1].to = ev.mod_rev;
            ddkv_event_free(&ev);
        } else if (e == DDKV_ERR_COMPACTED) {
            /* Told, not silently skipped: start again where history begins. */
            w->compactions++;
            from = ddkv_watch_compacted_rev(wa);
            if (from <= w->last_rev)
                from = w->last_rev + 1;
            ddkv_watch_close(wa);
            wa = NULL;
        } else if (e == DDKV_ERR_BAD_REQUEST || e == DDKV_ERR_TOO_LARGE) {
            snprintf(w->err, sizeof w->err, "watch refused: %s", ddkv_watch_errmsg(wa));
            break;
        }
        /* TIMEOUT, UNAVAILABLE, PROTOCOL: the watch goes on (it reconnects). */
    }
    /* The last segment covers up to what was asked to be reached, if reached. */
    if (w->nseg && w->last_rev >= r->watch_target && r->watch_target)
        w->seg[w->nseg - 1].to = r->watch_target;
    ddkv_watch_close(wa);
    return NULL;
}

/* --- the nemesis --- */

static void cut_groups(struct run *r, const int *a, int na, const int *b, int nb, bool both)
{
    for (int i = 0; i < na; i++)
        for (int j = 0; j < nb; j++) {
            fproxy_cut(r->px, r->s[a[i]].name, r->s[b[j]].name, true);
            if (both)
                fproxy_cut(r->px, r->s[b[j]].name, r->s[a[i]].name, true);
        }
}

static void shuffle(struct run *r, int *v, int n)
{
    for (int i = n - 1; i > 0; i--) {
        int j = (int)rnd(r, (uint64_t)i + 1), t = v[i];
        v[i] = v[j];
        v[j] = t;
    }
}

static void names_of(struct run *r, const int *v, int n, char *out, size_t cap)
{
    size_t off = 0;
    out[0] = 0;
    for (int i = 0; i < n && off < cap; i++)
        off += (size_t)snprintf(out + off, cap - off, "%s%s", i ? "," : "", r->s[v[i]].name);
}

/* Add a member in a free slot; returns its index or -1. */
static int grow(struct run *r)
{
    int i = -1;
    for (int k = 0; k < r->nslots; k++)
        if (!r->s[k].member && !slot_running(&r->s[k]) && r->s[k].pn.dir[0] == 0) {
            i = k;
            break;
        }
    if (i < 0)
        return -1;
    r->s[i].joiner = true;
    if (slot_start(r, i) != 0)
        return -1;
    r->s[i].member = true; /* from now on it may be in the configuration */
    ddkv_client *c = new_client(r->endpoints, 4000);
    char peer[32];
    snprintf(peer, sizeof peer, "127.0.0.1:%d", r->s[i].front_port);
    uint64_t index = 0;
    ddkv_err e = c ? ddkv_member_add(c, r->s[i].name, peer, &index) : DDKV_ERR_NOMEM;
    nlogf(r, "members add %s: %s (index %" PRIu64 ")", r->s[i].name, ddkv_strerror(e), index);
    ddkv_client_free(c);
    return i;
}

static int shrink(struct run *r, int victim)
{
    ddkv_client *c = new_client(r->endpoints, 4000);
    uint64_t index = 0;
    ddkv_err e = c ? ddkv_member_remove(c, r->s[victim].name, &index) : DDKV_ERR_NOMEM;
    nlogf(r, "members remove %s: %s (index %" PRIu64 ")", r->s[victim].name, ddkv_strerror(e), index);
    ddkv_client_free(c);
    if (e == DDKV_OK) {
        r->s[victim].member = false;
        slot_kill(r, victim);
        return 0;
    }
    return -1;
}

static void heal(struct run *r)
{
    fproxy_heal(r->px);
    for (int i = 0; i < r->nslots; i++)
        slot_pause(r, i, false);
}

static void restart_dead(struct run *r)
{
    for (int i = 0; i < r->nslots; i++)
        if (r->s[i].member && !slot_running(&r->s[i]))
            slot_start(r, i);
}

/* --- power faults (lossyfs) --- */


static void last_error(const char *log, char *out, size_t cap)
{
    char buf[512];
    out[0] = 0;
    FILE *f = fopen(log, "r");
    while (f && fgets(buf, sizeof buf, f))
        if (strstr(buf, "PANIC") || strstr(buf, "ERROR"))
            snprintf(out, cap, "%s", buf);
    if (f)
        fclose(f);
    out[strcspn(out, "\n")] = 0;
}

static void power_fail(struct run *r, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    nlogf(r, "POWER FAULT FAILED: %s", msg);
    if (!r->power_msg[0])
        snprintf(r->power_msg, sizeof r->power_msg, "%s", msg);
}

/* The power goes at once on members v[0..n): every process SIGKILLed before
 * any is reaped, then each mount forgets what was not durable (crash, or
 * crash-torn: the last unsynced write of each file survives in part). */
static void power_cut(struct run *r, const int *v, int n, bool torn)
{
    /* First no fsync may complete any more (one under way when the power
     * goes made nothing durable), then the processes die. */
    int fds[SLOTS];
    char fr[256];
    for (int k = 0; k < n; k++) /* all at once: one instant for every member */
        if ((fds[k] = lfs_send(&r->s[v[k]], "freeze", fr, sizeof fr)) < 0)
            power_fail(r, "lossyfs freeze of %s failed: %s", r->s[v[k]].name, fr);
    for (int k = 0; k < n; k++)
        if (fds[k] >= 0 && lfs_recv(fds[k], fr, sizeof fr) != 0)
            power_fail(r, "lossyfs freeze of %s failed: %s", r->s[v[k]].name, fr);
    for (int k = 0; k < n; k++) {
        struct slot *s = &r->s[v[k]];
        if (reap_one(r, v[k]) || !slot_running(s))
            continue;
        if (s->paused)
            kill(s->pn.pid, SIGCONT);
        kill(s->pn.pid, SIGKILL);
    }
    /* A process whose fsync is frozen cannot die before the crash answers
     * it (the kernel waits for the FUSE reply): reap what exits at once,
     * crash, then reap the rest. */
    for (int w = 0; w < 30; w++) {
        bool all = true;
        for (int k = 0; k < n; k++) {
            struct slot *s = &r->s[v[k]];
            int st;
            if (slot_running(s) && waitpid(s->pn.pid, &st, WNOHANG) == s->pn.pid)
                s->pn.pid = 0;
            all &= !slot_running(s);
        }
        if (all)
            break;
        msleep(10);
    }
    for (int k = 0; k < n; k++) {
        struct slot *s = &r->s[v[k]];
        char cmd[64], reply[2048];
        if (torn)
            snprintf(cmd, sizeof cmd, "crash-torn %" PRIu64, test_rng(&r->rng));
        else
            snprintf(cmd, sizeof cmd, "crash");
        int rc = lfs_ctl(s, cmd, reply, sizeof reply);
        for (char *p = reply; (p = strchr(p, '\n'));)
            *p = '|';
        nlogf(r, "%s of %s: %s", cmd, s->name, reply);
        if (rc != 0)
            power_fail(r, "lossyfs %s of %s failed: %s", cmd, s->name, reply);
    }
    for (int k = 0; k < n; k++) {
        struct slot *s = &r->s[v[k]];
        if (slot_running(s)) {
            int st;
            waitpid(s->pn.pid, &st, 0);
            s->pn.pid = 0;
        }
        s->paused = false;
        fproxy_set_down(r->px, s->name, true);
    }
}

/* Power back on: each must boot (an unbootable member is a failure). */
static void power_on(struct run *r, const int *v, int n)
{
    for (int k = 0; k < n; k++) {
        struct slot *s = &r->s[v[k]];
        if (slot_running(s))
            continue;
        if (slot_start(r, v[k]) != 0) {
            char line[512];
            last_error(s->pn.log, line, sizeof line);
            r->unbootable++;
            power_fail(r, "%s does not boot after a power cut (%s)", s->name, line[0] ? line : "nothing logged");
        }
    }
    nlogf(r, "power back on");
}

static void power_cut_one(struct run *r, int v, bool torn, int off_ms)
{
    power_cut(r, &v, 1, torn);
    msleep(off_ms);
    power_on(r, &v, 1);
}

/* Bytes appended to a member's log since *off. */
static bool log_has(struct slot *s, long *off, const char *what)
{
    FILE *f = fopen(s->pn.log, "r");
    if (!f)
        return false;
    bool found = false;
    if (fseek(f, *off, SEEK_SET) == 0) {
        char buf[1024];
        while (!found && fgets(buf, sizeof buf, f)) {
            found = strstr(buf, what) != NULL;
            if (strchr(buf, '\n'))
                *off = ftell(f);
        }
    }
    fclose(f);
    return found;
}

static long log_end(struct slot *s)
{
    struct stat sb;
    return stat(s->pn.log, &sb) == 0 ? (long)sb.st_size : 0;
}

static bool saving(struct slot *s)
{
    char dir[400];
    snprintf(dir, sizeof dir, "%s/snap", s->dir);
    DIR *d = opendir(dir);
    bool found = false;
    struct dirent *de;
    while (d && !found && (de = readdir(d)))
        found = strstr(de->d_name, ".snap.tmp") != NULL;
    if (d)
        closedir(d);
    return found;
}

static uint64_t applied_of(struct run *r, int i)
{
    ddkv_client *c = slot_client(r, i, 1000);
    struct ddkv_status st;
    uint64_t a = 0;
    if (c && ddkv_status(c, &st) == DDKV_OK) {
        a = st.applied;
        ddkv_status_free(&st);
    }
    ddkv_client_free(c);
    return a;
}

/* A membership change or a leadership transfer asked from a thread, so that
 * the power can go while it is under way (processes are only ever started
 * from the main thread: they die with the thread that forked them). */
struct admin_call {
    pthread_t th;
    struct run *r;
    int kind; /* 0 add, 1 remove, 2 transfer */
    char name[16], peer[32];
    ddkv_err e;
    uint64_t index;
};

static void *admin_main(void *arg)
{
    struct admin_call *a = arg;
    ddkv_client *c = new_client(a->r->endpoints, 4000);
    a->e = DDKV_ERR_NOMEM;
    if (c && a->kind == 0)
        a->e = ddkv_member_add(c, a->name, a->peer, &a->index);
    else if (c && a->kind == 1)
        a->e = ddkv_member_remove(c, a->name, &a->index);
    else if (c) {
        char *to = NULL;
        a->e = ddkv_leader_transfer(c, a->name, &to);
        ddkv_free(to);
    }
    ddkv_client_free(c);
    return NULL;
}

/* A power cut timed to land during a snapshot install, a snapshot save, a
 * membership change or a leadership transfer. */
static void timed_power_cut(struct run *r, int hold_ms, const int *m, int nm, int l)
{
    uint64_t sub = rnd(r, 4);
    if (g_only_sub >= 0)
        sub = (uint64_t)g_only_sub;
    switch (sub) {
    case 0: { /* install: a member kept down until the log was compacted past it */
        int f[SLOTS], nf = 0;
        for (int k = 0; k < nm; k++)
            if (m[k] != l)
                f[nf++] = m[k];
        if (l < 0 || nf == 0)
            return;
        int v = f[rnd(r, (uint64_t)nf)];
        note_fault(r, "power-cut-install");
        nlogf(r, "kill -9 %s, to be sent a snapshot", r->s[v].name);
        slot_kill(r, v);
        uint64_t a0 = applied_of(r, l), a = a0;
        for (int w = 0; w < 80 && a < a0 + 3 * SNAP_ENTRIES; w++) {
            msleep(100);
            a = applied_of(r, l) ? applied_of(r, l) : a;
        }
        nlogf(r, "leader applied %" PRIu64 " -> %" PRIu64 "; restarting %s", a0, a, r->s[v].name);
        if (slot_start(r, v) != 0)
            return;
        long off = 0;
        bool seen = false;
        for (int w = 0; w < 3000 && !seen && slot_running(&r->s[v]); w++) {
            seen = log_has(&r->s[v], &off, "installing snapshot");
            if (!seen)
                msleep(2);
        }
        /* The install syncs a start mark, loads the image, syncs its end:
         * land anywhere in it (a crash between the two needs the image). */
        int after = seen ? (int)rnd(r, (uint64_t)(2 * r->fsync_us / 1000 + 4)) : 0;
        msleep(after);
        nlogf(r, "power cut %s %s, %d ms after its start", r->s[v].name,
              seen ? "during its snapshot install" : "(no install seen)", after);
        power_cut_one(r, v, rnd(r, 2), hold_ms / 4);
        break;
    }
    case 1: { /* save: the power goes while an image is written, or right after */
        note_fault(r, "power-cut-save");
        long off[SLOTS];
        for (int k = 0; k < nm; k++)
            off[m[k]] = log_end(&r->s[m[k]]);
        int v = -1;
        const char *when = "";
        for (int w = 0; w < (hold_ms + 3000) / 3 && v < 0; w++) {
            for (int k = 0; k < nm && v < 0; k++) {
                struct slot *s = &r->s[m[k]];
                if (!slot_running(s))
                    continue;
                if (saving(s))
                    v = m[k], when = "while it writes a snapshot image";
                else if (log_has(s, &off[m[k]], "snapshot at index"))
                    v = m[k], when = "right after it wrote a snapshot";
            }
            if (v < 0)
                msleep(3);
        }
        if (v < 0) {
            v = m[rnd(r, (uint64_t)nm)];
            when = "(no snapshot seen)";
        }
        nlogf(r, "power cut %s %s", r->s[v].name, when);
        power_cut_one(r, v, rnd(r, 2), hold_ms / 4);
        break;
    }
    case 2: { /* membership change */
        struct admin_call a = {.r = r};
        int j = -1;
        if (nm <= r->nstart) {
            for (int k = 0; k < r->nslots && j < 0; k++)
                if (!r->s[k].member && !slot_running(&r->s[k]) && r->s[k].pn.dir[0] == 0)
                    j = k;
            if (j < 0)
                return;
            r->s[j].joiner = true;
            if (slot_start(r, j) != 0)
                return;
            r->s[j].member = true;
            a.kind = 0;
            snprintf(a.name, sizeof a.name, "%s", r->s[j].name);
            snprintf(a.peer, sizeof a.peer, "127.0.0.1:%d", r->s[j].front_port);
        } else {
            j = m[rnd(r, (uint64_t)nm)];
            a.kind = 1;
            snprintf(a.name, sizeof a.name, "%s", r->s[j].name);
        }
        note_fault(r, "power-cut-member");
        pthread_create(&a.th, NULL, admin_main, &a);
        msleep((int)rnd(r, 300));
        int v = l >= 0 && rnd(r, 2) ? l : j;
        nlogf(r, "power cut %s while %s %s", r->s[v].name, a.kind ? "removing" : "adding", a.name);
        power_cut(r, &v, 1, rnd(r, 2));
        pthread_join(a.th, NULL);
        nlogf(r, "members %s %s: %s (index %" PRIu64 ")", a.kind ? "remove" : "add", a.name, ddkv_strerror(a.e),
              a.index);
        if (a.kind == 1 && a.e == DDKV_OK) {
            r->s[j].member = false;
            slot_kill(r, j);
        }
        msleep(hold_ms / 3);
        if (r->s[v].member)
            power_on(r, &v, 1);
        break;
    }
    default: { /* leadership transfer */
        if (l < 0 || nm < 2)
            return;
        int li = 0;
        while (li < nm && m[li] != l)
            li++;
        int t = m[(li + 1 + (int)rnd(r, (uint64_t)nm - 1)) % nm];
        struct admin_call a = {.r = r, .kind = 2};
        snprintf(a.name, sizeof a.name, "%s", r->s[t].name);
        note_fault(r, "power-cut-transfer");
        pthread_create(&a.th, NULL, admin_main, &a);
        msleep((int)rnd(r, 150));
        int v = rnd(r, 2) ? l : t;
        nlogf(r, "power cut %s during a leadership transfer %s -> %s", r->s[v].name, r->s[l].name, r->s[t].name);
        power_cut(r, &v, 1, rnd(r, 2));
        pthread_join(a.th, NULL);
        nlogf(r, "transfer leadership %s -> %s: %s", r->s[l].name, r->s[t].name, ddkv_strerror(a.e));
        msleep(hold_ms / 3);
        power_on(r, &v, 1);
        break;
    }
    }
}

/* fsyncs fail with EIO on a member: it must fence itself (nothing the failed
 * sync covered acknowledged), keep serving reads, and rejoin by itself once
 * syncs work again -- or, a third of the time, lose its power meanwhile. */
static void fsync_eio(struct run *r, int hold_ms, const int *m, int nm, int l)
{
    int v = l >= 0 && rnd(r, 2) ? l : m[rnd(r, (uint64_t)nm)];
    struct slot *s = &r->s[v];
    char reply[512];
    note_fault(r, "fsync-eio");
    if (lfs_ctl(s, "fail-fsync 1000000000", reply, sizeof reply) != 0) {
        power_fail(r, "lossyfs fail-fsync on %s: %s", s->name, reply);
        return;
    }
    nlogf(r, "fsyncs fail on %s%s", s->name, v == l ? " (leader)" : "");
    msleep(hold_ms);
    /* Reads go on, from its own state (a stale read). */
    if (!reap_one(r, v) && slot_running(s)) {
        ddkv_err e = DDKV_ERR_UNAVAILABLE;
        char why_not[256] = "";
        for (int t = 0; t < 3 && e != DDKV_OK && e != DDKV_ERR_NOT_FOUND; t++) {
            ddkv_client *c = slot_client(r, v, 3000);
            struct ddkv_value val;
            e = c ? ddkv_read(c, "k0", 2, DDKV_CONSISTENCY_STALE, 0, &val) : DDKV_ERR_NOMEM;
            if (e == DDKV_OK)
                ddkv_free(val.value);
            else if (c)
                snprintf(why_not, sizeof why_not, "%s", ddkv_client_errmsg(c));
            ddkv_client_free(c);
        }
        if (e != DDKV_OK && e != DDKV_ERR_NOT_FOUND) {
            r->unserved++;
            power_fail(r, "%s does not serve reads while its fsyncs fail: %s", s->name, why_not);
        }
    }
    if (rnd(r, 3) == 0) {
        nlogf(r, "power cut %s while its fsyncs fail", s->name);
        power_cut(r, &v, 1, rnd(r, 2));
        lfs_ctl(s, "fail-fsync 0", reply, sizeof reply);
        power_on(r, &v, 1);
        return;
    }
    lfs_ctl(s, "fail-fsync 0", reply, sizeof reply);
    nlogf(r, "fsyncs work again on %s", s->name);
    bool healthy = false;
    for (int w = 0; w < 250 && !healthy && !reap_one(r, v) && slot_running(s); w++) {
        ddkv_client *c = slot_client(r, v, 1000);
        struct ddkv_status st;
        if (c && ddkv_status(c, &st) == DDKV_OK) {
            healthy = st.healthy_known && st.healthy;
            ddkv_status_free(&st);
        }
        ddkv_client_free(c);
        if (!healthy)
            msleep(100);
    }
    if (!healthy && slot_running(s)) {
        char line[512];
        last_error(s->pn.log, line, sizeof line);
        r->unhealed++;
        power_fail(r, "%s did not rejoin by itself within 25 s of its fsyncs working again (%s)", s->name,
                   line);
    } else {
        nlogf(r, "%s healthy again", s->name);
    }
}

/* One fault: applied, held, healed. The first of a schedule is a power fault
 * when they are on. */
static void fault(struct run *r, int hold_ms, bool first)
{
    int m[SLOTS];
    int nm = members(r, m);
    int l = leader(r);
    char a[128], b[128];
    bool power = g_lossyfs[0] != 0;
    uint64_t kind = (first || g_power_only) && power ? 11 + rnd(r, 9) : rnd(r, power ? 20 : 11);
    if (g_only >= 0)
        kind = (uint64_t)g_only;
    switch (kind) {
    case 0: /* kill -9 a member (the leader half the time), restart it later */
    case 1: {
        int v = l >= 0 && rnd(r, 2) ? l : m[rnd(r, (uint64_t)nm)];
        nlogf(r, "kill -9 %s%s", r->s[v].name, v == l ? " (leader)" : "");
        note_fault(r, v == l ? "kill-leader" : "kill");
        slot_kill(r, v);
        msleep(hold_ms);
        slot_start(r, v);
        nlogf(r, "restarted %s", r->s[v].name);
        break;
    }
    case 2: { /* pause */
        int v = l >= 0 && rnd(r, 2) ? l : m[rnd(r, (uint64_t)nm)];
        nlogf(r, "SIGSTOP %s%s", r->s[v].name, v == l ? " (leader)" : "");
        note_fault(r, v == l ? "pause-leader" : "pause");
        slot_pause(r, v, true);
        msleep(hold_ms);
        slot_pause(r, v, false);
        nlogf(r, "SIGCONT %s", r->s[v].name);
        break;
    }
    case 3: /* majority / minority */
    case 4: {
        shuffle(r, m, nm);
        int minority = (nm - 1) / 2;
        names_of(r, m, minority, a, sizeof a);
        names_of(r, m + minority, nm - minority, b, sizeof b);
        nlogf(r, "partition {%s} | {%s}", a, b);
        note_fault(r, "partition");
        cut_groups(r, m, minority, m + minority, nm - minority, true);
        msleep(hold_ms);
        fproxy_heal(r->px);
        nlogf(r, "healed");
        break;
    }
    case 5: { /* the leader alone */
        if (l < 0)
            return;
        int rest[SLOTS], nr = 0;
        for (int i = 0; i < nm; i++)
            if (m[i] != l)
                rest[nr++] = m[i];
        nlogf(r, "isolate leader %s", r->s[l].name);
        note_fault(r, "isolate-leader");
        cut_groups(r, &l, 1, rest, nr, true);
        msleep(hold_ms);
        fproxy_heal(r->px);
        nlogf(r, "healed");
        break;
    }
    case 6: { /* a bridge: two sides that only the bridge member joins */
        shuffle(r, m, nm);
        int bridge = m[0], na = (nm - 1) / 2;
        names_of(r, m + 1, na, a, sizeof a);
        names_of(r, m + 1 + na, nm - 1 - na, b, sizeof b);
        nlogf(r, "bridge %s between {%s} and {%s}", r->s[bridge].name, a, b);
        note_fault(r, "bridge");
        cut_groups(r, m + 1, na, m + 1 + na, nm - 1 - na, true);
        msleep(hold_ms);
        fproxy_heal(r->px);
        nlogf(r, "healed");
        break;
    }
    case 7: { /* one way: a member (often the leader) can send but not hear, or the reverse */
        int v = l >= 0 && rnd(r, 2) ? l : m[rnd(r, (uint64_t)nm)];
        int rest[SLOTS], nr = 0;
        for (int i = 0; i < nm; i++)
            if (m[i] != v)
                rest[nr++] = m[i];
        bool deaf = rnd(r, 2);
        nlogf(r, "one-way: %s %s", r->s[v].name, deaf ? "hears nobody" : "reaches nobody");
        note_fault(r, deaf ? "one-way-in" : "one-way-out");
        if (deaf)
            cut_groups(r, rest, nr, &v, 1, false);
        else
            cut_groups(r, &v, 1, rest, nr, false);
        msleep(hold_ms);
        fproxy_heal(r->px);
        nlogf(r, "healed");
        break;
    }
    case 8: { /* every member at once */
        nlogf(r, "kill -9 every member");
        note_fault(r, "restart-all");
        for (int i = 0; i < nm; i++)
            slot_kill(r, m[i]);
        msleep(hold_ms / 4);
        for (int i = 0; i < nm; i++)
            slot_start(r, m[i]);
        nlogf(r, "restarted every member");
        break;
    }
    case 9: { /* membership: grow by one, or shrink back (the leader half the time) */
        if (nm > r->nstart) {
            int v = l >= 0 && rnd(r, 2) ? l : m[rnd(r, (uint64_t)nm)];
            note_fault(r, v == l ? "remove-leader" : "remove");
            shrink(r, v);
        } else {
            note_fault(r, "add");
            grow(r);
        }
        msleep(hold_ms / 2);
        break;
    }
    case 10: { /* leadership transfer */
        if (l < 0)
            return;
        int li = 0;
        while (li < nm && m[li] != l)
            li++;
        int v = m[(li + 1 + (int)rnd(r, (uint64_t)nm - 1)) % nm];
        ddkv_client *c = new_client(r->endpoints, 3000);
        char *to = NULL;
        ddkv_err e = c ? ddkv_leader_transfer(c, r->s[v].name, &to) : DDKV_ERR_NOMEM;
        nlogf(r, "transfer leadership %s -> %s: %s", r->s[l].name, r->s[v].name, ddkv_strerror(e));
        note_fault(r, "transfer");
        ddkv_free(to);
        ddkv_client_free(c);
        msleep(hold_ms / 2);
        break;
    }
    case 11: /* the power of one member (the leader half the time) */
    case 12: {
        int v = l >= 0 && rnd(r, 2) ? l : m[rnd(r, (uint64_t)nm)];
        nlogf(r, "power cut %s%s", r->s[v].name, v == l ? " (leader)" : "");
        note_fault(r, "power-cut");
        power_cut_one(r, v, false, hold_ms);
        break;
    }
    case 13: { /* a minority */
        shuffle(r, m, nm);
        int k = (nm - 1) / 2;
        names_of(r, m, k, a, sizeof a);
        nlogf(r, "power cut {%s}", a);
        note_fault(r, "power-cut-minority");
        power_cut(r, m, k, false);
        msleep(hold_ms);
        power_on(r, m, k);
        break;
    }
    case 14: /* every member at once: what a majority acknowledged survives */
    case 15:
        nlogf(r, "power cut of every member");
        note_fault(r, "power-cut-all");
        power_cut(r, m, nm, false);
        msleep(hold_ms / 4);
        power_on(r, m, nm);
        break;
    case 16: { /* torn: one member, or a third of the time all */
        bool all = rnd(r, 3) == 0;
        int v = l >= 0 && rnd(r, 2) ? l : m[rnd(r, (uint64_t)nm)];
        nlogf(r, "torn power cut of %s", all ? "every member" : r->s[v].name);
        note_fault(r, all ? "torn-power-cut-all" : "torn-power-cut");
        if (all) {
            power_cut(r, m, nm, true);
            msleep(hold_ms / 4);
            power_on(r, m, nm);
        } else {
            power_cut_one(r, v, true, hold_ms);
        }
        break;
    }
    case 17:
        fsync_eio(r, hold_ms, m, nm, l);
        break;
    default: /* 18, 19: timed to a save, an install, a membership change, a transfer */
        timed_power_cut(r, hold_ms, m, nm, l);
        break;
    }
}

/* --- the checks --- */

struct verdict {
    bool linearizable, healthy, equal, lin_error;
    int lost, dups, gaps, uncovered, crashes, unbootable;
    char why[1024];
};

static void why(struct verdict *v, const char *fmt, ...)
{
    size_t l = strlen(v->why);
    if (l + 8 >= sizeof v->why)
        return;
    va_list ap;
    va_start(ap, fmt);
    if (l)
        v->why[l++] = ';', v->why[l++] = ' ';
    vsnprintf(v->why + l, sizeof v->why - l, fmt, ap);
    va_end(ap);
}

static const struct wev *find_rev(const struct watcher *w, uint64_t rev)
{
    size_t lo = 0, hi = w->n;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (w->ev[mid].rev < rev)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo < w->n && w->ev[lo].rev == rev ? &w->ev[lo] : NULL;
}

static bool covers(const struct watcher *w, uint64_t rev)
{
    for (int i = 0; i < w->nseg; i++)
        if (w->seg[i].from <= rev && rev <= w->seg[i].to)
            return true;
    return false;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

struct final_kv {
    bool found;
    char value[24];
    uint64_t mod_rev, version;
};

static void check_watchers(struct run *r, struct verdict *v, const struct final_kv *fin)
{
    for (int k = 0; k < NWATCHERS; k++) {
        struct watcher *w = &r->wt[k];
        if (w->err[0]) {
            v->gaps++;
            why(v, "watcher %d: %s", k, w->err);
        }
        if (w->last_rev < r->watch_target) {
            v->gaps++;
            why(v, "watcher %d reached revision %" PRIu64 " of %" PRIu64, k, w->last_rev, r->watch_target);
        }
        for (size_t i = 1; i < w->n; i++)
            if (w->ev[i].rev <= w->ev[i - 1].rev) {
                v->gaps++;
                why(v, "watcher %d: revision %" PRIu64 " after %" PRIu64, k, w->ev[i].rev, w->ev[i - 1].rev);
                break;
            }
        /* Duplicates: a value written once must be applied once. */
        const char **vals = malloc((w->n + 1) * sizeof *vals);
        size_t nv = 0;
        for (size_t i = 0; i < w->n; i++)
            if (!w->ev[i].del)
                vals[nv++] = w->ev[i].value;
        qsort(vals, nv, sizeof *vals, cmp_str);
        for (size_t i = 1; i < nv; i++)
            if (strcmp(vals[i], vals[i - 1]) == 0) {
                v->dups++;
                why(v, "value %s applied twice (watcher %d)", vals[i], k);
            }
        free(vals);
        /* The last change of each key seen in the final segment is the final state. */
        if (v->equal && w->nseg && w->last_rev >= r->watch_target)
            for (int key = 0; key < NKEYS; key++) {
                char name[8];
                snprintf(name, sizeof name, "k%d", key);
                const struct wev *last = NULL;
                for (size_t i = w->n; i-- > 0 && w->ev[i].rev >= w->seg[w->nseg - 1].from;)
                    if (strcmp(w->ev[i].key, name) == 0) {
                        last = &w->ev[i];
                        break;
                    }
                if (last && (last->rev != fin[key].mod_rev || strcmp(last->value, fin[key].value) != 0)) {
                    v->gaps++;
                    why(v, "watcher %d: last change of %s is %s@%" PRIu64 ", the key holds %s@%" PRIu64, k, name,
                        last->value, last->rev, fin[key].value, fin[key].mod_rev);
                }
            }
    }
    /* Both watchers agree wherever both cover. */
    struct watcher *w0 = &r->wt[0], *w1 = &r->wt[1];
    for (int pass = 0; pass < 2; pass++) {
        struct watcher *x = pass ? w1 : w0, *y = pass ? w0 : w1;
        for (size_t i = 0; i < x->n; i++) {
            if (!covers(y, x->ev[i].rev))
                continue;
            const struct wev *o = find_rev(y, x->ev[i].rev);
            if (!o || strcmp(o->key, x->ev[i].key) != 0 || strcmp(o->value, x->ev[i].value) != 0) {
                v->gaps++;
                why(v, "revision %" PRIu64 " (%s=%s) seen by one watcher only", x->ev[i].rev, x->ev[i].key,
                    x->ev[i].value);
                break;
            }
        }
    }
    /* Every acknowledged write: in each stream covering its revision, and not
     * newer than its key's final revision. */
    for (size_t i = 0; i < r->nw; i++) {
        const struct wrec *wr = &r->w[i];
        if (!wr->acked)
            continue;
        int key = atoi(wr->key + 1);
        bool seen = false, lost = false;
        char how[160] = "";
        for (int k = 0; k < NWATCHERS; k++) {
            if (!covers(&r->wt[k], wr->rev))
                continue;
            const struct wev *e = find_rev(&r->wt[k], wr->rev);
            if (e && strcmp(e->key, wr->key) == 0 && strcmp(e->value, wr->value) == 0) {
                seen = true;
            } else {
                lost = true;
                snprintf(how, sizeof how, "watcher %d has %s%s%s there", k, e ? e->key : "nothing",
                         e ? "=" : "", e ? e->value : "");
            }
        }
        if (v->equal && fin[key].mod_rev < wr->rev) {
            lost = true;
            snprintf(how, sizeof how, "the key's final revision is %" PRIu64, fin[key].mod_rev);
        }
        if (lost) {
            v->lost++;
            if (v->lost <= 3)
                why(v, "acknowledged %s=%s at revision %" PRIu64 " is missing (%s)", wr->key, wr->value, wr->rev,
                    how);
        } else if (!seen) {
            v->uncovered++;
        }
    }
}

/* Wait until every running member has applied the same index, then compare
 * each key on each member (stale reads: its own state). */
static void check_equal(struct run *r, struct verdict *v, struct final_kv *fin)
{
    int m[SLOTS];
    int nm = members(r, m);
    uint64_t applied[SLOTS];
    bool same = false;
    /* 30 s by the clock: a member that is down costs each round its client's timeout. */
    uint64_t deadline = clock_mono_ms() + 30000;
    while (!same && clock_mono_ms() < deadline) {
        same = true;
        for (int i = 0; i < nm; i++) {
            ddkv_client *c = slot_client(r, m[i], 2000);
            struct ddkv_status st;
            applied[i] = 0;
            if (c && ddkv_status(c, &st) == DDKV_OK) {
                applied[i] = st.applied;
                ddkv_status_free(&st);
            }
            ddkv_client_free(c);
            if (!applied[i] || applied[i] != applied[0])
                same = false;
        }
        if (!same)
            msleep(200);
    }
    if (!same) {
        v->equal = false;
        char got[256];
        size_t off = 0;
        got[0] = 0;
        for (int i = 0; i < nm && off < sizeof got; i++)
            off += (size_t)snprintf(got + off, sizeof got - off, " %s:%" PRIu64, r->s[m[i]].name, applied[i]);
        why(v, "members did not reach the same applied index in 30 s (applied:%s)", got);
        return;
    }
    v->equal = true;
    for (int i = 0; i < nm; i++) {
        ddkv_client *c = slot_client(r, m[i], 2000);
        for (int key = 0; key < NKEYS && c; key++) {
            char name[8];
            snprintf(name, sizeof name, "k%d", key);
            struct ddkv_value val;
            ddkv_err e = ddkv_read(c, name, strlen(name), DDKV_CONSISTENCY_STALE, 0, &val);
            struct final_kv got = {0};
            if (e == DDKV_OK) {
                got.found = true;
                snprintf(got.value, sizeof got.value, "%s", (const char *)val.value);
                got.mod_rev = val.mod_rev;
                got.version = val.version;
                ddkv_free(val.value);
            } else if (e != DDKV_ERR_NOT_FOUND) {
                v->equal = false;
                why(v, "%s: read %s: %s", r->s[m[i]].name, name, ddkv_client_errmsg(c));
                continue;
            }
            if (i == 0) {
                fin[key] = got;
            } else if (got.found != fin[key].found || strcmp(got.value, fin[key].value) != 0 ||
                       got.mod_rev != fin[key].mod_rev || got.version != fin[key].version) {
                v->equal = false;
                why(v, "%s has %s=%s@%" PRIu64 " v%" PRIu64 ", %s has %s@%" PRIu64 " v%" PRIu64, r->s[m[i]].name,
                    name, got.value, got.mod_rev, got.version, r->s[m[0]].name, fin[key].value,
                    fin[key].mod_rev, fin[key].version);
            }
        }
        ddkv_client_free(c);
    }
}

/* A member that exited without being killed crashed: that is a failure
 * whatever else holds. Note it with its last PANIC or ERROR line. Returns
 * true if member i had exited. */
static bool reap_one(struct run *r, int i)
{
    struct slot *s = &r->s[i];
    int st;
    if (s->pn.pid <= 0 || waitpid(s->pn.pid, &st, WNOHANG) != s->pn.pid)
        return false;
    s->pn.pid = 0;
    s->paused = false;
    r->crashes++;
    char line[512] = "", buf[512];
    FILE *f = fopen(s->pn.log, "r");
    while (f && fgets(buf, sizeof buf, f))
        if (strstr(buf, "PANIC") || strstr(buf, "ERROR"))
            snprintf(line, sizeof line, "%s", buf);
    if (f)
        fclose(f);
    line[strcspn(line, "\n")] = 0;
    char how[32];
    if (WIFSIGNALED(st))
        snprintf(how, sizeof how, "signal %d", WTERMSIG(st));
    else
        snprintf(how, sizeof how, "exit %d", WEXITSTATUS(st));
    if (!r->crash_msg[0])
        snprintf(r->crash_msg, sizeof r->crash_msg, "%s crashed, %s (%s)", s->name, how,
                 line[0] ? line : "nothing logged");
    nlogf(r, "%s CRASHED, %s: %s", s->name, how, line);
    return true;
}

/* Start again every member found crashed, so the rest of the schedule still
 * means something. */
static void reap(struct run *r)
{
    for (int i = 0; i < r->nslots; i++)
        if (reap_one(r, i) && r->s[i].member)
            slot_start(r, i);
}

/* --- one schedule --- */

static int setup(struct run *r, int nodes)
{
    /* Ports come from their own generator (the clock), so that the seed alone
     * decides the schedule. */
    uint64_t prng = clock_mono_ns() ^ ((uint64_t)getpid() << 20);
    for (int attempt = 0; attempt < 50; attempt++) {
        /* Below the kernel's ephemeral range, so no outgoing connection can
         * sit on a port a member is restarted on. */
        r->base_port = 12000 + (int)(test_rng(&prng) % 200) * 100 + (int)(test_rng(&prng) % 4) * 24;
        bool ok = true;
        for (int p = 0; p < SLOTS * 3 && ok; p++)
            ok = port_free(r->base_port + p);
        if (ok)
            break;
        r->base_port = 0;
    }
    if (!r->base_port)
        return -1;
    r->px = fproxy_new();
    if (!r->px)
        return -1;
    r->nslots = SLOTS;
    size_t off = 0, eoff = 0;
    for (int i = 0; i < SLOTS; i++) {
        struct slot *s = &r->s[i];
        snprintf(s->name, sizeof s->name, "n%d", i + 1);
        s->client_port = r->base_port + 3 * i;
        s->peer_port = r->base_port + 3 * i + 1;
        s->front_port = fproxy_front(r->px, s->name, r->base_port + 3 * i + 2, s->peer_port);
        if (s->front_port < 0)
            return -1;
        snprintf(s->dir, sizeof s->dir, "%s/%s/data", r->dir, s->name);
        snprintf(s->log_all, sizeof s->log_all, "%s/%s.log", r->dir, s->name);
        if (i < nodes) {
            s->member = true;
            off += (size_t)snprintf(r->spec + off, sizeof r->spec - off, "%s%s=127.0.0.1:%d", i ? "," : "",
                                    s->name, s->front_port);
        }
        eoff += (size_t)snprintf(r->endpoints + eoff, sizeof r->endpoints - eoff, "%s127.0.0.1:%d",
                                 i ? "," : "", s->client_port);
    }
    r->nstart = nodes;
    for (int i = 0; i < nodes; i++)
        if (slot_start(r, i) != 0)
            return -1;
    return wait_leader(r, 20000) >= 0 ? 0 : -1;
}

static void teardown(struct run *r, bool keep)
{
    for (int i = 0; i < r->nslots; i++)
        slot_kill(r, i);
    for (int i = 0; i < r->nslots; i++)
        lfs_umount(&r->s[i]);
    for (int i = 0; i < r->nslots; i++) {
        if (r->s[i].pn.log[0]) {
            append_file(r->s[i].log_all, r->s[i].pn.log);
            unlink(r->s[i].pn.log);
        }
        if (!keep && r->s[i].pn.dir[0]) {
            char parent[300];
            snprintf(parent, sizeof parent, "%s/%s", r->dir, r->s[i].name);
            harness_rmrf(parent);
            unlink(r->s[i].log_all);
        }
    }
    fproxy_free(r->px);
    r->px = NULL;
}

static int run_schedule(struct run *r, int nodes, bool keep, struct verdict *v)
{
    memset(v, 0, sizeof *v);
    mkdir(r->dir, 0755);
    char path[400];
    snprintf(path, sizeof path, "%s/nemesis.log", r->dir);
    r->nlog = fopen(path, "w");
    snprintf(path, sizeof path, "%s/history.jsonl", r->dir);
    r->hist = fopen(path, "w");
    if (!r->nlog || !r->hist)
        return -1;
    pthread_mutex_init(&r->mu, NULL);
    r->t0 = clock_mono_ns();
    g_run = r;
    if (setup(r, nodes) != 0) {
        why(v, "the cluster did not start");
        teardown(r, true);
        g_run = NULL;
        return -1;
    }
    nlogf(r, "cluster of %d up, ports from %d, seed %" PRIu64 "%s, fsyncs take %d us", nodes, r->base_port, r->seed,
          g_lossyfs[0] ? ", data dirs on lossyfs" : "", r->fsync_us);
    for (int i = 0; i < NCLIENTS; i++) {
        r->c[i].id = i;
        r->c[i].r = r;
        r->c[i].rng = r->seed * 0x9e3779b97f4a7c15ull + (uint64_t)i + 1;
        pthread_create(&r->c[i].th, NULL, client_main, &r->c[i]);
    }
    for (int i = 0; i < NWATCHERS; i++) {
        r->wt[i].id = i;
        r->wt[i].r = r;
        pthread_create(&r->wt[i].th, NULL, watcher_main, &r->wt[i]);
    }
    uint64_t end = r->t0 + (uint64_t)r->duration_s * 1000000000ull;
    msleep(1000);
    bool first = true;
    while (clock_mono_ns() + 4000000000ull < end) {
        int hold = 1000 + (int)rnd(r, 3000);
        fault(r, hold, first);
        first = false;
        reap(r);
        msleep(300 + (int)rnd(r, 1500));
    }
    reap(r);
    /* Heal everything; the cluster must then be healthy. */
    heal(r);
    restart_dead(r);
    nlogf(r, "final heal");
    int l = wait_leader(r, 30000);
    v->healthy = false;
    if (l >= 0) {
        ddkv_client *c = new_client(r->endpoints, 20000);
        struct ddkv_write_result wr;
        v->healthy = c && ddkv_write(c, "health", 6, "ok", 2, 0, &wr) == DDKV_OK;
        ddkv_client_free(c);
    }
    if (!v->healthy)
        why(v, "no healthy cluster 30 s after the final heal");
    msleep(1500); /* clients keep going on the healed cluster */
    r->stop_clients = 1;
    for (int i = 0; i < NCLIENTS; i++)
        pthread_join(r->c[i].th, NULL);
    /* Final linearizable reads, part of the history. */
    ddkv_client *c = new_client(r->endpoints, 10000);
    for (int key = 0; key < NKEYS && c; key++) {
        char name[8];
        snprintf(name, sizeof name, "k%d", key);
        uint64_t call = clock_mono_ns();
        struct ddkv_value val;
        ddkv_err e = ddkv_read(c, name, strlen(name), DDKV_CONSISTENCY_LINEARIZABLE, 0, &val);
        uint64_t ret = clock_mono_ns();
        if (e == DDKV_OK) {
            record(r, NCLIENTS, "read", name, val.value, NULL, call, ret, "true");
            ddkv_free(val.value);
        } else {
            record(r, NCLIENTS, "read", name, NULL, NULL, call, ret, e == DDKV_ERR_NOT_FOUND ? "true" : "false");
        }
    }
    struct ddkv_status st;
    if (c && ddkv_status(c, &st) == DDKV_OK) {
        r->watch_target = st.revision;
        ddkv_status_free(&st);
    }
    ddkv_client_free(c);
    fclose(r->hist);
    r->hist = NULL;
    /* Members that are running but were never added (a failed add) or were
     * removed (an answer lost): whoever the leader lists is a member. */
    l = wait_leader(r, 10000);
    if (l >= 0) {
        ddkv_client *lc = slot_client(r, l, 3000);
        struct ddkv_status ls;
        if (lc && ddkv_status(lc, &ls) == DDKV_OK) {
            for (int i = 0; i < r->nslots; i++) {
                bool listed = false;
                for (size_t j = 0; j < ls.n_members; j++)
                    listed |= ls.members[j].name && strcmp(ls.members[j].name, r->s[i].name) == 0;
                if (listed && !r->s[i].member && r->s[i].pn.dir[0]) {
                    r->s[i].member = true;
                    slot_start(r, i);
                } else if (!listed && r->s[i].member) {
                    r->s[i].member = false;
                    slot_kill(r, i);
                }
            }
            ddkv_status_free(&ls);
        }
        ddkv_client_free(lc);
    }
    struct final_kv fin[NKEYS];
    memset(fin, 0, sizeof fin);
    check_equal(r, v, fin);
    r->stop_watchers = 1;
    for (int i = 0; i < NWATCHERS; i++)
        pthread_join(r->wt[i].th, NULL);
    check_watchers(r, v, fin);
    struct lin_report lr;
    snprintf(path, sizeof path, "%s/history.jsonl", r->dir);
    if (lin_check_file(path, &lr) != 0) {
        v->lin_error = true;
        why(v, "checker: %s", lr.why);
    } else {
        v->linearizable = lr.linearizable;
        if (!lr.linearizable)
            why(v, "not linearizable: %s", lr.why);
    }
    reap(r);
    v->crashes = r->crashes;
    if (r->crashes)
        why(v, "%d crash(es), first: %s", r->crashes, r->crash_msg);
    v->unbootable = r->unbootable;
    if (r->power_msg[0])
        why(v, "power faults: %d unbootable, %d not rejoined after fsync errors, %d not serving reads; first: %s",
            r->unbootable, r->unhealed, r->unserved, r->power_msg);
    bool pass = v->linearizable && v->healthy && v->equal && !v->lost && !v->dups && !v->gaps && !v->crashes &&
                !r->power_msg[0];
    teardown(r, keep || !pass);
    g_run = NULL;
    nlogf(r, "%s: %s", pass ? "PASS" : "FAIL", v->why);
    fclose(r->nlog);
    for (int i = 0; i < NWATCHERS; i++)
        free(r->wt[i].ev);
    free(r->w);
    pthread_mutex_destroy(&r->mu);
    return pass ? 0 : 1;
}

/* Power faults on: find lossyfs and fusermount3, and run in a private mount
 * namespace (re-executed under unshare -m, the PID kept: the marker says
 * which process already is), so the mounts are seen by nobody else and
 * vanish with it whatever happens; signals unmount and stop everything. */
static int power_setup(char **argv)
{
    const char *bin = getenv("LOSSYFS_BIN");
    if (bin && *bin) {
        snprintf(g_lossyfs, sizeof g_lossyfs, "%s", bin);
    } else {
        const char *ddkv = getenv("DDKV_BIN");
        const char *slash = ddkv ? strrchr(ddkv, '/') : NULL;
        if (slash)
            snprintf(g_lossyfs, sizeof g_lossyfs, "%.*s/lossyfs", (int)(slash - ddkv), ddkv);
    }
    if (!g_lossyfs[0] || access(g_lossyfs, X_OK) != 0) {
        fprintf(stderr, "ddkv-faults: lossyfs not found at '%s' (set LOSSYFS_BIN, or --no-power)\n", g_lossyfs);
        return -1;
    }
    if (access("/dev/fuse", R_OK | W_OK) != 0) {
        fprintf(stderr, "ddkv-faults: SKIP: /dev/fuse: %s (power faults need FUSE; --no-power runs without)\n",
                strerror(errno));
        exit(77);
    }
    const char *path = getenv("PATH");
    char dirs[4096];
    snprintf(dirs, sizeof dirs, "%s:/usr/bin:/bin:/usr/sbin:/sbin", path ? path : "");
    char *save = NULL;
    for (char *d = strtok_r(dirs, ":", &save); d && !g_fusermount[0]; d = strtok_r(NULL, ":", &save)) {
        char p[PATH_MAX];
        snprintf(p, sizeof p, "%s/fusermount3", d);
        if (access(p, X_OK) == 0)
            snprintf(g_fusermount, sizeof g_fusermount, "%s", p);
    }
    if (!g_fusermount[0]) {
        fprintf(stderr, "ddkv-faults: fusermount3 not found (scripts/deps.sh installs fuse3)\n");
        return -1;
    }
    char me[32];
    snprintf(me, sizeof me, "%d", (int)getpid());
    const char *ns = getenv("DDKV_FAULTS_NS");
    if (!ns || strcmp(ns, me) != 0) {
        char self[PATH_MAX];
        ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
        if (n <= 0) {
            fprintf(stderr, "ddkv-faults: /proc/self/exe: %s\n", strerror(errno));
            return -1;
        }
        self[n] = 0;
        setenv("DDKV_FAULTS_NS", me, 1);
        int argc = 0;
        while (argv[argc])
            argc++;
        char **nargv = calloc((size_t)argc + 6, sizeof *nargv);
        if (!nargv)
            return -1;
        int k = 0;
        nargv[k++] = "unshare";
        nargv[k++] = "-m";
        nargv[k++] = "--propagation";
        nargv[k++] = "private";
        nargv[k++] = self;
        for (int i = 1; i < argc; i++)
            nargv[k++] = argv[i];
        nargv[k] = NULL;
        fflush(NULL);
        execvp("unshare", nargv);
        fprintf(stderr, "ddkv-faults: cannot run unshare -m: %s\n", strerror(errno));
        return -1;
    }
    snprintf(g_sockdir, sizeof g_sockdir, "/tmp/ddkv-faults-XXXXXX");
    if (!mkdtemp(g_sockdir)) {
        fprintf(stderr, "ddkv-faults: mkdtemp: %s\n", strerror(errno));
        return -1;
    }
    struct sigaction sa = {.sa_handler = on_signal};
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGHUP, &sa, NULL);
    return 0;
}

static void power_cleanup(void)
{
    if (g_sockdir[0])
        rmdir(g_sockdir);
}

/* --check: each history file checked again, one line each; 0 if all pass. */
static int check_files(int n, char **paths)
{
    int bad = 0;
    for (int i = 0; i < n; i++) {
        struct lin_report lr;
        int rc = lin_check_file(paths[i], &lr);
        printf("%s: %zu keys, %zu reads/writes/cas checked (%zu list pages): %s%s%s\n", paths[i], lr.keys,
               lr.ops_checked, lr.pages,
               rc != 0 ? "checker error" : lr.linearizable ? "linearizable" : "NOT LINEARIZABLE",
               rc != 0 || !lr.linearizable ? ": " : "", rc != 0 || !lr.linearizable ? lr.why : "");
        bad += rc != 0 || !lr.linearizable;
    }
    return bad ? 1 : 0;
}

int main(int argc, char **argv)
{
    uint64_t seed = (uint64_t)time(NULL);
    int schedules = 1, duration = 60, nodes = 0;
    const char *out = "var/faults";
    bool keep = false, no_power = false;
    static const struct option lo[] = {
        {"seed", 1, 0, 's'}, {"schedules", 1, 0, 'n'}, {"duration-s", 1, 0, 'd'},
        {"nodes", 1, 0, 'N'}, {"out", 1, 0, 'o'}, {"keep", 0, 0, 'k'}, {"check", 0, 0, 'c'},
        {"no-power", 0, 0, 'P'}, {"power-only", 0, 0, 'O'}, {"only", 1, 0, 'K'}, {0, 0, 0, 0}};
    bool check = false;
    int ch;
    while ((ch = getopt_long(argc, argv, "", lo, NULL)) != -1) {
        switch (ch) {
        case 's': seed = strtoull(optarg, NULL, 0); break;
        case 'n': schedules = atoi(optarg); break;
        case 'd': duration = atoi(optarg); break;
        case 'N': nodes = atoi(optarg); break;
        case 'o': out = optarg; break;
        case 'k': keep = true; break;
        case 'c': check = true; break;
        case 'P': no_power = true; break;
        case 'O': g_power_only = true; break;
        case 'K':
            for (size_t i = 0; i < sizeof g_only_names / sizeof g_only_names[0]; i++)
                if (strcmp(optarg, g_only_names[i].name) == 0)
                    g_only = g_only_names[i].kind;
            if (g_only >= 100) { /* a timed power cut of one kind */
                g_only_sub = g_only - 100;
                g_only = 18;
            }
            if (g_only < 0) {
                fprintf(stderr, "ddkv-faults: --only: unknown fault %s\n", optarg);
                return 2;
            }
            break;
        default:
            fprintf(stderr, "usage: ddkv-faults [--seed S] [--schedules N] [--duration-s D] [--nodes 3|5] "
                            "[--out DIR] [--keep] [--no-power] [--power-only] [--only KIND]\n       ddkv-faults --check HISTORY.jsonl...\n");
            return 2;
        }
    }
    if (check)
        return optind < argc ? check_files(argc - optind, argv + optind) : 2;
    if (schedules < 1 || duration < 8 || (nodes && nodes != 3 && nodes != 5)) {
        fprintf(stderr, "ddkv-faults: want --schedules >= 1, --duration-s >= 8, --nodes 3 or 5\n");
        return 2;
    }
    signal(SIGPIPE, SIG_IGN);
    if (!no_power && power_setup(argv) != 0)
        return 1;
    mkdir(out, 0755);
    char outabs[PATH_MAX];
    if (!realpath(out, outabs)) {
        fprintf(stderr, "ddkv-faults: %s: %s\n", out, strerror(errno));
        return 1;
    }
    out = outabs;
    if (strlen(out) > 200) {
        fprintf(stderr, "ddkv-faults: --out %s: a shorter path, please\n", out);
        return 2;
    }
    long ops = 0, pages = 0;
    int failed = 0, violations = 0, lost = 0, unbootable = 0, pca_schedules = 0;
    uint64_t t0 = clock_mono_ns();
    for (int k = 0; k < schedules; k++) {
        struct run *r = calloc(1, sizeof *r);
        if (!r)
            return 1;
        r->seed = seed + (uint64_t)k;
        r->rng = r->seed * 0x2545f4914f6cdd1dull + 0x9e3779b97f4a7c15ull;
        r->duration_s = duration;
        r->sched = k;
        snprintf(r->dir, sizeof r->dir, "%.200s/seed-%" PRIu64, out, r->seed);
        int n = nodes ? nodes : (rnd(r, 3) == 0 ? 5 : 3);
        /* A disk takes time to flush: 0 to 4 ms per fsync, per schedule. */
        static const int fsync_us[] = {0, 500, 1000, 2000, 4000};
        r->fsync_us = fsync_us[rnd(r, 5)];
        struct verdict v;
        uint64_t t1 = clock_mono_ns();
        int rc = run_schedule(r, n, keep, &v);
        ops += r->ops;
        pages += r->pages;
        violations += !v.linearizable;
        lost += v.lost;
        unbootable += v.unbootable;
        pca_schedules += strstr(r->faults, "power-cut-all") != NULL;
        failed += rc != 0;
        printf("schedule %d seed %" PRIu64 " nodes %d: %.0f s, %d ops (%d unknown, %d list pages), faults %d [%s], "
               "%s, lost %d, duplicates %d, watch gaps %d (events %zu, compacted %d, uncovered %d), "
               "crashes %d, unbootable %d, equal %s, healthy %s -> %s%s%s\n",
               k + 1, r->seed, n, now_s(t1), r->ops, r->unknown, r->pages, r->nfaults, r->faults,
               v.lin_error ? "checker error" : v.linearizable ? "linearizable" : "NOT LINEARIZABLE", v.lost,
               v.dups, v.gaps, r->wt[0].n, r->wt[0].compactions + r->wt[1].compactions, v.uncovered, v.crashes, v.unbootable, v.equal ? "yes" : "NO", v.healthy ? "yes" : "NO", rc ? "FAIL" : "pass",
               rc ? " (" : "", rc ? v.why : "");
        if (rc)
            printf("   kept in %s\n", r->dir);
        fflush(stdout);
        free(r);
    }
    int total = 0, npower = 0;
    char kinds[2048];
    size_t ko = 0;
    kinds[0] = 0;
    for (int k = 0; k < g_nkinds; k++) {
        total += g_kinds[k].n;
        npower += power_kind(g_kinds[k].name) ? g_kinds[k].n : 0;
        if (ko < sizeof kinds)
            ko += (size_t)snprintf(kinds + ko, sizeof kinds - ko, "%s%s=%d", k ? " " : "", g_kinds[k].name,
                                   g_kinds[k].n);
    }
    printf("schedules: %d, operations: %ld, violations: %d, lost: %d, unbootable: %d (failed schedules: %d, "
           "%.0f s, list pages %ld; faults %d, power %d, power-cut-all in %d schedules; kinds: %s)\n",
           schedules, ops, violations, lost, unbootable, failed, now_s(t0), pages, total, npower, pca_schedules,
           kinds);
    power_cleanup();
    return failed ? 1 : 0;
}
