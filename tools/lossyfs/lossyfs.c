/* lossyfs: a FUSE passthrough filesystem that remembers what was never made
 * durable and forgets it on command, as a disk does when the power goes.
 *
 * Usage:
 *   lossyfs mount BACKING MOUNTPOINT --control SOCKET [--seed N] [--single-thread] [--die-with-parent]
 *   lossyfs ctl SOCKET COMMAND [ARG]     (crash | crash-torn [SEED] | freeze | fail-fsync N | fsync-delay US | report | ping)
 *
 * The design (docs/lossyfs.md has the model it implements):
 *
 * The backing directory always holds the *current* contents, what a program
 * reading the mount sees; lossyfs keeps in memory an undo log back to the
 * *durable* state, and a crash applies it. Undo rather than redo because the
 * common case (RocksDB appending to a new file, then fdatasync) then costs
 * nothing: pages past a file's durable size need no saved copy, since a
 * crash simply truncates them away. So memory is bounded by the unsynced
 * change itself: one saved 4 KiB page per page of durable data overwritten
 * (or cut by a truncation, or punched by fallocate) since the last sync.
 *
 * Per file (keyed by the backing inode, so renames and hard links need
 * nothing special): the durable size, the durable contents of each page
 * overwritten since the last fsync/fdatasync, and the last write (for
 * crash-torn). An open O_RDWR descriptor on the inode is held while it is
 * dirty, so a crash can restore it wherever its names went.
 *
 * Per directory (keyed by inode, with an O_PATH descriptor): for each name
 * created, removed or renamed since the directory's last fsync, what the name
 * held at that moment, which is its durable entry: nothing; a file, kept
 * alive by a hard link in the hidden stash (BACKING/.lossyfs-state/stash),
 * so an undone unlink can link it back; or a directory, kept by an O_PATH
 * descriptor (an rmdir of such a directory parks it in the stash instead).
 *
 * A crash: every dirty file gets its saved pages written back and is cut to
 * its durable size; then every changed name is emptied (moved to the trash)
 * and every name that held something gets it back; trash and stash are then
 * emptied. Everything runs under one mutex (the FUSE loop is multithreaded,
 * but a read is the only operation that does not take it).
 */
#define FUSE_USE_VERSION 31
#define _GNU_SOURCE

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <linux/falloc.h>
#include <fuse.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#define PAGE 4096u
#define STATE_DIR ".lossyfs-state"
#define REPLY_MAX (64 * 1024)

/* --- the undo log --- */

/* Saved durable pages of one file: open addressing on the page index. */
struct page_map {
    uint64_t *keys; /* page index + 1; 0 is an empty slot */
    uint8_t **vals;
    size_t cap, n;
};

struct frec { /* a file written since its last fsync */
    struct frec *next;
    ino_t ino;
    int fd;             /* O_RDWR on the backing inode, held until sync or crash */
    off_t durable_size; /* its size at the last sync */
    struct page_map pages;
    bool has_last;
    off_t last_off; /* the last write, which crash-torn tears */
    size_t last_len;
    uint64_t written; /* bytes written since the last sync (report) */
};

enum nkind { N_ABSENT, N_FILE, N_DIR };

struct nrec { /* a name changed since its directory's last fsync */
    struct nrec *next;
    char *name;
    enum nkind kind; /* what it durably holds */
    char stash[32];  /* N_FILE: the hard link in the stash */
    int dfd;         /* N_DIR: O_PATH on the directory */
    ino_t ino;
};

struct drec {
    struct drec *next;
    ino_t ino;
    int fd; /* O_PATH | O_DIRECTORY */
    struct nrec *names;
    size_t n_names;
};

static struct {
    pthread_mutex_t mu;
    char backing[PATH_MAX];
    char stash_path[PATH_MAX + 64], trash_path[PATH_MAX + 64];
    int root, stash, trash;
    const char *ctl_path;
    int ctl_fd;
    pthread_t ctl_thread;
    bool ctl_running;
    struct frec *files;
    struct drec *dirs;
    uint64_t seq;
    uint64_t rng;
    long fail_fsync;
    atomic_long fsync_delay_us; /* every fsync takes this long before it makes anything durable */
    atomic_bool frozen;         /* the power is going: no fsync completes until the crash */
    atomic_ulong crashes;       /* crashes so far: an fsync a crash overtook made nothing durable */
    size_t saved_bytes; /* memory held by saved pages */
} L = {.mu = PTHREAD_MUTEX_INITIALIZER, .root = -1, .stash = -1, .trash = -1, .ctl_fd = -1};

static void warnx_(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "lossyfs: ");
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "\n");
    va_end(ap);
}

static uint64_t rng_next(void)
{ /* splitmix64: seeded, so every torn crash replays */
    uint64_t z = (L.rng += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static uint8_t **pm_find(struct page_map *m, uint64_t idx)
{
    if (!m->cap)
        return NULL;
    size_t mask = m->cap - 1;
    for (size_t i = (size_t)(idx * 0x9e3779b97f4a7c15ull) & mask;; i = (i + 1) & mask) {
        if (m->keys[i] == 0)
            return NULL;
        if (m->keys[i] == idx + 1)
            return &m->vals[i];
    }
}

static int pm_put(struct page_map *m, uint64_t idx, uint8_t *page)
{
    if ((m->n + 1) * 2 > m->cap) {
        size_t ncap = m->cap ? m->cap * 2 : 16;
        uint64_t *nk = calloc(ncap, sizeof *nk);
        uint8_t **nv = calloc(ncap, sizeof *nv);
        if (!nk || !nv) {
            free(nk);
            free(nv);
            return -ENOMEM;
        }
        for (size_t i = 0; i < m->cap; i++) {
            if (!m->keys[i])
                continue;
            size_t j = (size_t)((m->keys[i] - 1) * 0x9e3779b97f4a7c15ull) & (ncap - 1);
            while (nk[j])
                j = (j + 1) & (ncap - 1);
            nk[j] = m->keys[i];
            nv[j] = m->vals[i];
        }
        free(m->keys);
        free(m->vals);
        m->keys = nk;
        m->vals = nv;
        m->cap = ncap;
    }
    size_t mask = m->cap - 1;
    size_t i = (size_t)(idx * 0x9e3779b97f4a7c15ull) & mask;
    while (m->keys[i])
        i = (i + 1) & mask;
    m->keys[i] = idx + 1;
    m->vals[i] = page;
    m->n++;
    return 0;
}

static void frec_free(struct frec *f)
{
    for (size_t i = 0; i < f->pages.cap; i++)
        if (f->pages.keys[i]) {
            free(f->pages.vals[i]);
            L.saved_bytes -= PAGE;
        }
    free(f->pages.keys);
    free(f->pages.vals);
    if (f->fd >= 0)
        close(f->fd);
    free(f);
}

static struct frec *frec_find(ino_t ino)
{
    for (struct frec *f = L.files; f; f = f->next)
        if (f->ino == ino)
            return f;
    return NULL;
}

/* The record of the file open as fd, made on its first change since a sync:
 * the durable size is the size now, as nothing changed it since. */
static int frec_get(int fd, struct frec **out)
{
    struct stat st;
    if (fstat(fd, &st) != 0)
        return -errno;
    struct frec *f = frec_find(st.st_ino);
    if (!f) {
        char p[64];
        snprintf(p, sizeof p, "/proc/self/fd/%d", fd);
        int rfd = open(p, O_RDWR | O_CLOEXEC); /* works for an unlinked inode too */
        if (rfd < 0)
            return -errno;
        f = calloc(1, sizeof *f);
        if (!f) {
            close(rfd);
            return -ENOMEM;
        }
        f->ino = st.st_ino;
        f->fd = rfd;
        f->durable_size = st.st_size;
        f->next = L.files;
        L.files = f;
    }
    *out = f;
    return 0;
}

/* Keep the durable contents of every page in [off, off + len) that lies
 * within the durable size and has no saved copy yet: called before anything
 * overwrites, cuts or punches those bytes. */
static int frec_save(struct frec *f, off_t off, off_t len)
{
    if (len <= 0 || off >= f->durable_size)
        return 0;
    off_t end = off + len < f->durable_size ? off + len : f->durable_size;
    for (uint64_t idx = (uint64_t)off / PAGE; (off_t)(idx * PAGE) < end; idx++) {
        if (pm_find(&f->pages, idx))
            continue;
        uint8_t *pg = calloc(1, PAGE);
        if (!pg)
            return -ENOMEM;
        ssize_t r = pread(f->fd, pg, PAGE, (off_t)(idx * PAGE));
        if (r < 0 || pm_put(&f->pages, idx, pg) != 0) {
            free(pg);
            return r < 0 ? -errno : -ENOMEM;
        }
        L.saved_bytes += PAGE;
    }
    return 0;
}

static void frec_drop(ino_t ino)
{
    for (struct frec **pp = &L.files; *pp; pp = &(*pp)->next)
        if ((*pp)->ino == ino) {
            struct frec *f = *pp;
            *pp = f->next;
            frec_free(f);
            return;
        }
}

static void nrec_release(struct nrec *r, bool committed)
{
    if (r->kind == N_FILE && committed)
        unlinkat(L.stash, r->stash, 0);
    if (r->kind == N_DIR)
        close(r->dfd);
    free(r->name);
    free(r);
}

static void drec_free(struct drec *d, bool committed)
{
    struct nrec *r = d->names;
    while (r) {
        struct nrec *nx = r->next;
        nrec_release(r, committed);
        r = nx;
    }
    close(d->fd);
    free(d);
}

/* Drop every record: after a crash has undone them (committed false), or at
 * unmount, where what was not durable stays as it is (committed true). */
static void records_free(bool committed)
{
    while (L.files) {
        struct frec *f = L.files;
        L.files = f->next;
        frec_free(f);
    }
    while (L.dirs) {
        struct drec *d = L.dirs;
        L.dirs = d->next;
        drec_free(d, committed);
    }
}

/* FUSE path "/a/b" -> backing-relative "a/b" ("/" -> "."). */
static const char *rel(const char *path)
{
    while (*path == '/')
        path++;
    return *path ? path : ".";
}

static bool hidden(const char *path)
{
    const char *r = rel(path);
    size_t n = strlen(STATE_DIR);
    return strncmp(r, STATE_DIR, n) == 0 && (r[n] == 0 || r[n] == '/');
}

/* Split a FUSE path into its parent (backing-relative) and last name. */
static int split(const char *path, char *parent, size_t pn, const char **name)
{
    const char *r = rel(path);
    const char *slash = strrchr(r, '/');
    if (!slash) {
        snprintf(parent, pn, ".");
        *name = r;
    } else {
        if ((size_t)(slash - r) >= pn)
            return -ENAMETOOLONG;
        memcpy(parent, r, (size_t)(slash - r));
        parent[slash - r] = 0;
        *name = slash + 1;
    }
    return 0;
}

static int drec_get(const char *parent, struct drec **out)
{
    int fd = openat(L.root, parent, O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    struct stat st;
    if (fstat(fd, &st) != 0) {
        int e = -errno;
        close(fd);
        return e;
    }
    for (struct drec *d = L.dirs; d; d = d->next)
        if (d->ino == st.st_ino) {
            close(fd);
            *out = d;
            return 0;
        }
    struct drec *d = calloc(1, sizeof *d);
    if (!d) {
        close(fd);
        return -ENOMEM;
    }
    d->ino = st.st_ino;
    d->fd = fd;
    d->next = L.dirs;
    L.dirs = d;
    *out = d;
    return 0;
}

/* Record the durable entry of PATH's name before the first change to it
 * since its directory's last fsync (later changes keep the first record). */
static int note_name(const char *path)
{
    char parent[PATH_MAX];
    const char *name;
    int rc = split(path, parent, sizeof parent, &name);
    struct drec *d = NULL;
    if (rc || (rc = drec_get(parent, &d)))
        return rc;
    for (struct nrec *r = d->names; r; r = r->next)
        if (strcmp(r->name, name) == 0)
            return 0;
    struct nrec *r = calloc(1, sizeof *r);
    if (!r || !(r->name = strdup(name))) {
        free(r);
        return -ENOMEM;
    }
    r->dfd = -1;
    struct stat st;
    if (fstatat(d->fd, name, &st, AT_SYMLINK_NOFOLLOW) != 0) {
        if (errno != ENOENT) {
            rc = -errno;
            goto fail;
        }
        r->kind = N_ABSENT;
    } else if (S_ISDIR(st.st_mode)) {
        r->kind = N_DIR;
        r->ino = st.st_ino;
        r->dfd = openat(d->fd, name, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (r->dfd < 0) {
            rc = -errno;
            goto fail;
        }
    } else {
        r->kind = N_FILE;
        r->ino = st.st_ino;
        snprintf(r->stash, sizeof r->stash, "f%" PRIu64, ++L.seq);
        if (linkat(d->fd, name, L.stash, r->stash, 0) != 0) {
            rc = -errno;
            goto fail;
        }
    }
    r->next = d->names;
    d->names = r;
    d->n_names++;
    return 0;
fail:
    free(r->name);
    free(r);
    return rc;
}

static bool dir_held(ino_t ino)
{
    for (struct drec *d = L.dirs; d; d = d->next)
        for (struct nrec *r = d->names; r; r = r->next)
            if (r->kind == N_DIR && r->ino == ino)
                return true;
    return false;
}

static int rm_entry(const char *p, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    if (ftw->level == 0)
        return 0;
    if (flag == FTW_DP)
        rmdir(p);
    else
        unlink(p);
    return 0;
}

/* Empty a state directory (trash or stash), keeping the directory itself. */
static void empty_dir(const char *path)
{
    nftw(path, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

/* --- the commands --- */

struct out {
    char *p;
    size_t n, cap;
};

static void outf(struct out *o, const char *fmt, ...)
{
    if (o->n >= o->cap)
        return;
    va_list ap;
    va_start(ap, fmt);
    int w = vsnprintf(o->p + o->n, o->cap - o->n, fmt, ap);
    va_end(ap);
    if (w > 0)
        o->n = o->n + (size_t)w < o->cap ? o->n + (size_t)w : o->cap - 1;
}

static void fd_path(int fd, char *buf, size_t n)
{
    char p[64];
    snprintf(p, sizeof p, "/proc/self/fd/%d", fd);
    ssize_t r = readlink(p, buf, n - 1);
    buf[r < 0 ? 0 : r] = 0;
    size_t bl = strlen(L.backing);
    if (strncmp(buf, L.backing, bl) == 0 && (buf[bl] == '/' || buf[bl] == 0))
        memmove(buf, buf + bl, strlen(buf + bl) + 1);
    if (!*buf)
        snprintf(buf, n, "/");
}

/* Forget everything not durable. torn: the last write of each dirty file
 * survives in part (a random prefix; half the time the rest of the torn page
 * is garbage). Runs with L.mu held. */
static void do_crash(bool torn, struct out *o)
{
    atomic_fetch_add(&L.crashes, 1); /* fsyncs waiting (frozen or delayed) end with EIO */
    atomic_store(&L.frozen, false);
    size_t files = 0, names = 0, bytes = 0;
    for (struct frec *f = L.files; f; f = f->next) {
        uint8_t *last = NULL;
        ssize_t got = 0;
        if (torn && f->has_last && f->last_len > 0 && (last = malloc(f->last_len)))
            got = pread(f->fd, last, f->last_len, f->last_off);
        for (size_t i = 0; i < f->pages.cap; i++) {
            if (!f->pages.keys[i])
                continue;
            off_t at = (off_t)((f->pages.keys[i] - 1) * PAGE);
            size_t n = f->durable_size - at < (off_t)PAGE ? (size_t)(f->durable_size - at) : PAGE;
            if (pwrite(f->fd, f->pages.vals[i], n, at) != (ssize_t)n)
                warnx_("crash: restoring a page of inode %lu: %s", (unsigned long)f->ino, strerror(errno));
            bytes += n;
        }
        struct stat st;
        if (fstat(f->fd, &st) == 0 && st.st_size > f->durable_size)
            bytes += (size_t)(st.st_size - f->durable_size);
        if (ftruncate(f->fd, f->durable_size) != 0)
            warnx_("crash: truncating inode %lu: %s", (unsigned long)f->ino, strerror(errno));
        if (got > 0) {
            size_t keep = (size_t)(rng_next() % ((uint64_t)got + 1));
            if (keep > 0 && pwrite(f->fd, last, keep, f->last_off) != (ssize_t)keep)
                warnx_("crash-torn: %s", strerror(errno));
            if (keep < (size_t)got && (rng_next() & 1)) {
                off_t cut = f->last_off + (off_t)keep;
                off_t page_end = (cut / PAGE + 1) * PAGE;
                off_t end = f->last_off + got < page_end ? f->last_off + got : page_end;
                uint8_t junk[PAGE];
                for (off_t k = 0; k < end - cut; k++)
                    junk[k] = (uint8_t)rng_next();
                if (end > cut && pwrite(f->fd, junk, (size_t)(end - cut), cut) != end - cut)
                    warnx_("crash-torn: %s", strerror(errno));
            }
            outf(o, "torn inode %lu: kept %zu of %zd bytes at %lld\n", (unsigned long)f->ino, keep, got,
                 (long long)f->last_off);
        }
        free(last);
        files++;
    }
    /* Names: empty every changed name first (a renamed directory may sit
     * under another changed name), then put the durable entries back. */
    for (struct drec *d = L.dirs; d; d = d->next)
        for (struct nrec *r = d->names; r; r = r->next) {
            struct stat st;
            if (fstatat(d->fd, r->name, &st, AT_SYMLINK_NOFOLLOW) != 0)
                continue;
            char t[32];
            snprintf(t, sizeof t, "t%" PRIu64, ++L.seq);
            if (renameat(d->fd, r->name, L.trash, t) != 0)
                warnx_("crash: removing %s: %s", r->name, strerror(errno));
            names++;
        }
    for (struct drec *d = L.dirs; d; d = d->next)
        for (struct nrec *r = d->names; r; r = r->next) {
            if (r->kind == N_FILE) {
                if (linkat(L.stash, r->stash, d->fd, r->name, 0) != 0)
                    warnx_("crash: restoring %s: %s", r->name, strerror(errno));
            } else if (r->kind == N_DIR) {
                char p[64], where[PATH_MAX];
                snprintf(p, sizeof p, "/proc/self/fd/%d", r->dfd);
                ssize_t n = readlink(p, where, sizeof where - 1);
                if (n < 0) {
                    warnx_("crash: directory %s lost: %s", r->name, strerror(errno));
                    continue;
                }
                where[n] = 0;
                if (renameat(AT_FDCWD, where, d->fd, r->name) != 0)
                    warnx_("crash: restoring directory %s from %s: %s", r->name, where, strerror(errno));
            }
        }
    records_free(false);
    empty_dir(L.trash_path);
    empty_dir(L.stash_path);
    outf(o, "ok crash%s: %zu files restored (%zu bytes undone), %zu names undone\n", torn ? "-torn" : "", files,
         bytes, names);
}

static void do_report(struct out *o)
{
    uint64_t total = 0;
    for (struct frec *f = L.files; f; f = f->next) {
        char p[PATH_MAX];
        fd_path(f->fd, p, sizeof p);
        struct stat st;
        off_t size = fstat(f->fd, &st) == 0 ? st.st_size : -1;
        /* Unsynced bytes: durable pages rewritten, plus the size change. */
        uint64_t u = (uint64_t)f->pages.n * PAGE;
        if (size > f->durable_size)
            u += (uint64_t)(size - f->durable_size);
        total += u;
        outf(o, "file %s ino=%lu unsynced_bytes=%" PRIu64 " durable_size=%lld size=%lld saved_pages=%zu written=%" PRIu64
                "\n",
             p, (unsigned long)f->ino, u, (long long)f->durable_size, (long long)size, f->pages.n, f->written);
    }
    for (struct drec *d = L.dirs; d; d = d->next) {
        char p[PATH_MAX];
        fd_path(d->fd, p, sizeof p);
        outf(o, "dir %s unsynced_entries=%zu:", p, d->n_names);
        for (struct nrec *r = d->names; r; r = r->next)
            outf(o, " %s(%s)", r->name, r->kind == N_ABSENT ? "new" : r->kind == N_FILE ? "file" : "dir");
        outf(o, "\n");
    }
    outf(o, "ok unsynced_bytes=%" PRIu64 " saved_bytes=%zu fail_fsync=%ld\n", total, L.saved_bytes, L.fail_fsync);
}

static void run_command(char *line, struct out *o)
{
    char *save = NULL;
    char *cmd = strtok_r(line, " \t\r\n", &save);
    char *arg = strtok_r(NULL, " \t\r\n", &save);
    pthread_mutex_lock(&L.mu);
    if (!cmd) {
        outf(o, "error: empty command\n");
    } else if (strcmp(cmd, "ping") == 0) {
        outf(o, "ok\n");
    } else if (strcmp(cmd, "freeze") == 0) {
        atomic_store(&L.frozen, true);
        outf(o, "ok no fsync completes until the next crash\n");
    } else if (strcmp(cmd, "crash") == 0) {
        do_crash(false, o);
    } else if (strcmp(cmd, "crash-torn") == 0) {
        if (arg)
            L.rng = strtoull(arg, NULL, 10);
        do_crash(true, o);
    } else if (strcmp(cmd, "fail-fsync") == 0 && arg) {
        char *end;
        long n = strtol(arg, &end, 10);
        if (*end || n < 0) {
            outf(o, "error: fail-fsync N (N >= 0)\n");
        } else {
            L.fail_fsync = n;
            outf(o, "ok the next %ld fsyncs fail with EIO\n", n);
        }
    } else if (strcmp(cmd, "fsync-delay") == 0 && arg) {
        char *end;
        long us = strtol(arg, &end, 10);
        if (*end || us < 0 || us > 10000000) {
            outf(o, "error: fsync-delay US (0 to 10000000)\n");
        } else {
            atomic_store(&L.fsync_delay_us, us);
            outf(o, "ok every fsync takes %ld us before it makes anything durable\n", us);
        }
    } else if (strcmp(cmd, "report") == 0) {
        do_report(o);
    } else {
        outf(o, "error: unknown command (crash | crash-torn [SEED] | freeze | fail-fsync N | fsync-delay US | report | ping)\n");
    }
    pthread_mutex_unlock(&L.mu);
}

static void *ctl_main(void *arg)
{
    (void)arg;
    char *buf = malloc(REPLY_MAX);
    if (!buf)
        return NULL;
    for (;;) {
        int c = accept(L.ctl_fd, NULL, NULL);
        if (c < 0) {
            if (errno == EINTR || errno == ECONNABORTED)
                continue;
            break; /* the listener was shut down at unmount */
        }
        char line[256];
        size_t n = 0;
        while (n < sizeof line - 1) {
            ssize_t r = read(c, line + n, sizeof line - 1 - n);
            if (r <= 0)
                break;
            n += (size_t)r;
            if (memchr(line, '\n', n))
                break;
        }
        line[n] = 0;
        struct out o = {buf, 0, REPLY_MAX};
        buf[0] = 0;
        run_command(line, &o);
        size_t off = 0;
        while (off < o.n) {
            ssize_t w = write(c, buf + off, o.n - off);
            if (w <= 0)
                break;
            off += (size_t)w;
        }
        close(c);
    }
    free(buf);
    return NULL;
}

/* --- the filesystem --- */

/* An open file or directory (one struct for both: the kernel may pass a
 * directory's handle to setattr). */
struct fh {
    int fd;
    int flags;
    ino_t ino;
    DIR *dp;   /* directories */
    bool root; /* the mount's root: hide the state directory */
};

static struct fh *FH(struct fuse_file_info *fi) { return (struct fh *)(uintptr_t)fi->fh; }

static void *lfs_init(struct fuse_conn_info *conn, struct fuse_config *cfg)
{
    (void)conn;
    /* No caching of names or attributes: after a crash the kernel must see
     * the backing directory as it is. Unlinked open files stay usable by
     * descriptor (hard_remove: no .fuse_hidden renames, paths may be NULL). */
    cfg->use_ino = 1;
    cfg->entry_timeout = 0;
    cfg->attr_timeout = 0;
    cfg->negative_timeout = 0;
    cfg->hard_remove = 1;
    cfg->nullpath_ok = 1;
    cfg->kernel_cache = 0;
    /* The control socket comes up only once the mount is there: a client
     * that can ping it can use the mount. */
    if (pthread_create(&L.ctl_thread, NULL, ctl_main, NULL) == 0)
        L.ctl_running = true;
    return NULL;
}

static void lfs_destroy(void *p)
{
    (void)p;
    if (L.ctl_running) {
        shutdown(L.ctl_fd, SHUT_RDWR);
        pthread_join(L.ctl_thread, NULL);
    }
    /* Unmounted: what was not durable stays as it is in the backing
     * directory (an unmount is no power cut); the records go. */
    records_free(true);
}

static int lfs_getattr(const char *path, struct stat *st, struct fuse_file_info *fi)
{
    if (fi && fi->fh)
        return fstat(FH(fi)->fd, st) == 0 ? 0 : -errno;
    if (!path || hidden(path))
        return -ENOENT;
    return fstatat(L.root, rel(path), st, AT_SYMLINK_NOFOLLOW) == 0 ? 0 : -errno;
}

static int lfs_readlink(const char *path, char *buf, size_t n)
{
    if (hidden(path))
        return -ENOENT;
    ssize_t r = readlinkat(L.root, rel(path), buf, n - 1);
    if (r < 0)
        return -errno;
    buf[r] = 0;
    return 0;
}

/* Run a namespace change with its names recorded first. */
#define WITH_NAMES(...)                                                                                        \
    do {                                                                                                       \
        pthread_mutex_lock(&L.mu);                                                                             \
        int rc_ = 0;                                                                                           \
        const char *names_[] = {__VA_ARGS__};                                                                  \
        for (size_t i_ = 0; i_ < sizeof names_ / sizeof names_[0] && !rc_; i_++)                               \
            rc_ = hidden(names_[i_]) ? -EPERM : note_name(names_[i_]);                                         \
        if (rc_) {                                                                                             \
            pthread_mutex_unlock(&L.mu);                                                                       \
            return rc_;                                                                                        \
        }                                                                                                      \
    } while (0)

static int done(int r)
{
    int rc = r == 0 ? 0 : -errno;
    pthread_mutex_unlock(&L.mu);
    return rc;
}

static int lfs_mknod(const char *path, mode_t mode, dev_t dev)
{
    WITH_NAMES(path);
    return done(mknodat(L.root, rel(path), mode, dev));
}

static int lfs_mkdir(const char *path, mode_t mode)
{
    WITH_NAMES(path);
    return done(mkdirat(L.root, rel(path), mode));
}

static int lfs_unlink(const char *path)
{
    WITH_NAMES(path);
    return done(unlinkat(L.root, rel(path), 0));
}

static int lfs_rmdir(const char *path)
{
    WITH_NAMES(path);
    struct stat st;
    if (fstatat(L.root, rel(path), &st, AT_SYMLINK_NOFOLLOW) != 0)
        return done(-1);
    if (!S_ISDIR(st.st_mode)) {
        errno = ENOTDIR;
        return done(-1);
    }
    if (!dir_held(st.st_ino))
        return done(unlinkat(L.root, rel(path), AT_REMOVEDIR));
    /* A directory some name durably holds: park it in the stash (if empty)
     * so that a crash can bring it back. */
    int fd = openat(L.root, rel(path), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return done(-1);
    DIR *dp = fdopendir(fd);
    if (!dp) {
        close(fd);
        return done(-1);
    }
    struct dirent *e;
    bool empty = true;
    while ((e = readdir(dp)))
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, ".."))
            empty = false;
    closedir(dp);
    if (!empty) {
        errno = ENOTEMPTY;
        return done(-1);
    }
    char s[32];
    snprintf(s, sizeof s, "d%" PRIu64, ++L.seq);
    return done(renameat(L.root, rel(path), L.stash, s));
}

static int lfs_symlink(const char *target, const char *path)
{
    WITH_NAMES(path);
    return done(symlinkat(target, L.root, rel(path)));
}

static int lfs_rename(const char *from, const char *to, unsigned int flags)
{
    WITH_NAMES(from, to);
    return done(renameat2(L.root, rel(from), L.root, rel(to), flags));
}

static int lfs_link(const char *from, const char *to)
{
    if (hidden(from))
        return -ENOENT;
    WITH_NAMES(to);
    return done(linkat(L.root, rel(from), L.root, rel(to), 0));
}

static int lfs_chmod(const char *path, mode_t mode, struct fuse_file_info *fi)
{
    if (fi && fi->fh)
        return fchmod(FH(fi)->fd, mode) == 0 ? 0 : -errno;
    if (!path || hidden(path))
        return -ENOENT;
    return fchmodat(L.root, rel(path), mode, 0) == 0 ? 0 : -errno;
}

static int lfs_chown(const char *path, uid_t uid, gid_t gid, struct fuse_file_info *fi)
{
    if (fi && fi->fh)
        return fchown(FH(fi)->fd, uid, gid) == 0 ? 0 : -errno;
    if (!path || hidden(path))
        return -ENOENT;
    return fchownat(L.root, rel(path), uid, gid, AT_SYMLINK_NOFOLLOW) == 0 ? 0 : -errno;
}

static int lfs_utimens(const char *path, const struct timespec tv[2], struct fuse_file_info *fi)
{
    if (fi && fi->fh)
        return futimens(FH(fi)->fd, tv) == 0 ? 0 : -errno;
    if (!path || hidden(path))
        return -ENOENT;
    return utimensat(L.root, rel(path), tv, AT_SYMLINK_NOFOLLOW) == 0 ? 0 : -errno;
}

/* Cut the file open as fd to size, keeping the durable pages it cuts. */
static int truncate_fd(int fd, off_t size)
{
    struct frec *f;
    int rc = frec_get(fd, &f);
    if (rc)
        return rc;
    if ((rc = frec_save(f, size, f->durable_size - size)))
        return rc;
    if (ftruncate(fd, size) != 0)
        return -errno;
    f->has_last = false;
    return 0;
}

static int lfs_truncate(const char *path, off_t size, struct fuse_file_info *fi)
{
    pthread_mutex_lock(&L.mu);
    int rc;
    if (fi && fi->fh) {
        rc = truncate_fd(FH(fi)->fd, size);
    } else if (!path || hidden(path)) {
        rc = -ENOENT;
    } else {
        int fd = openat(L.root, rel(path), O_RDWR | O_CLOEXEC);
        rc = fd < 0 ? -errno : truncate_fd(fd, size);
        if (fd >= 0)
            close(fd);
    }
    pthread_mutex_unlock(&L.mu);
    return rc;
}

static int open_fh(int fd, int flags, struct fuse_file_info *fi)
{
    struct stat st;
    struct fh *h = malloc(sizeof *h);
    if (!h || fstat(fd, &st) != 0) {
        int e = h ? -errno : -ENOMEM;
        free(h);
        close(fd);
        return e;
    }
    h->fd = fd;
    h->flags = flags;
    h->ino = st.st_ino;
    h->dp = NULL;
    h->root = false;
    fi->fh = (uint64_t)(uintptr_t)h;
    return 0;
}

static int lfs_open(const char *path, struct fuse_file_info *fi)
{
    if (hidden(path))
        return -ENOENT;
    pthread_mutex_lock(&L.mu);
    int flags = fi->flags & ~(O_CREAT | O_EXCL | O_NOCTTY | O_TRUNC);
    /* The backing descriptor can always read: saving pages needs it. */
    if ((flags & O_ACCMODE) == O_WRONLY)
        flags = (flags & ~O_ACCMODE) | O_RDWR;
    int fd = openat(L.root, rel(path), flags | O_CLOEXEC);
    int rc = fd < 0 ? -errno : 0;
    if (!rc && (fi->flags & O_TRUNC))
        rc = truncate_fd(fd, 0);
    if (!rc)
        rc = open_fh(fd, fi->flags, fi);
    else if (fd >= 0)
        close(fd);
    pthread_mutex_unlock(&L.mu);
    return rc;
}

static int lfs_create(const char *path, mode_t mode, struct fuse_file_info *fi)
{
    WITH_NAMES(path);
    int flags = fi->flags & ~(O_NOCTTY | O_TRUNC);
    if ((flags & O_ACCMODE) == O_WRONLY)
        flags = (flags & ~O_ACCMODE) | O_RDWR;
    int fd = openat(L.root, rel(path), flags | O_CREAT | O_CLOEXEC, mode);
    int rc = fd < 0 ? -errno : 0;
    if (!rc && (fi->flags & O_TRUNC))
        rc = truncate_fd(fd, 0);
    if (!rc)
        rc = open_fh(fd, fi->flags, fi);
    else if (fd >= 0)
        close(fd);
    pthread_mutex_unlock(&L.mu);
    return rc;
}

static int lfs_read(const char *path, char *buf, size_t n, off_t off, struct fuse_file_info *fi)
{
    (void)path;
    ssize_t r = pread(FH(fi)->fd, buf, n, off);
    return r < 0 ? -errno : (int)r;
}

static int lfs_write(const char *path, const char *buf, size_t n, off_t off, struct fuse_file_info *fi)
{
    (void)path;
    struct fh *h = FH(fi);
    pthread_mutex_lock(&L.mu);
    struct frec *f;
    int rc = frec_get(h->fd, &f);
    if (!rc && (h->flags & O_APPEND)) {
        struct stat st; /* O_APPEND: the backing write lands at the end */
        if (fstat(h->fd, &st) != 0)
            rc = -errno;
        else
            off = st.st_size;
    }
    if (!rc)
        rc = frec_save(f, off, (off_t)n);
    ssize_t w = 0;
    if (!rc) {
        w = pwrite(h->fd, buf, n, off);
        if (w < 0) {
            rc = -errno;
        } else {
            f->has_last = true;
            f->last_off = off;
            f->last_len = (size_t)w;
            f->written += (uint64_t)w;
        }
    }
    pthread_mutex_unlock(&L.mu);
    return rc ? rc : (int)w;
}

static int lfs_statfs(const char *path, struct statvfs *sv)
{
    (void)path;
    return fstatvfs(L.root, sv) == 0 ? 0 : -errno;
}

static int lfs_release(const char *path, struct fuse_file_info *fi)
{
    (void)path;
    struct fh *h = FH(fi);
    close(h->fd);
    free(h);
    return 0;
}

/* fsync and fdatasync alike make the file's data and size durable (the size
 * is metadata fdatasync must write, since reading the data needs it). The
 * backing file is not synced: its disk is not the one that loses power. */
/* A disk takes time to flush: what an fsync makes durable becomes so at its
 * end (a crash meanwhile loses it). Other calls go on during the wait. Once
 * frozen (the power is going), no fsync ends before the crash. Returns the
 * crash count at the start: if it changed, a crash overtook this fsync. */
static unsigned long fsync_wait(void)
{
    unsigned long gen = atomic_load(&L.crashes);
    long us = atomic_load(&L.fsync_delay_us);
    if (us > 0) {
        struct timespec ts = {us / 1000000, (us % 1000000) * 1000};
        while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
        }
    }
    while (atomic_load(&L.frozen) && atomic_load(&L.crashes) == gen) {
        struct timespec ts = {0, 1000000};
        nanosleep(&ts, NULL);
    }
    return gen;
}

static int lfs_fsync(const char *path, int datasync, struct fuse_file_info *fi)
{
    (void)path;
    (void)datasync;
    unsigned long gen = fsync_wait();
    pthread_mutex_lock(&L.mu);
    int rc = 0;
    if (atomic_load(&L.crashes) != gen) {
        rc = -EIO; /* the power went during it: nothing became durable */
    } else if (L.fail_fsync > 0) {
        L.fail_fsync--;
        rc = -EIO; /* nothing becomes durable */
    } else {
        frec_drop(FH(fi)->ino);
    }
    pthread_mutex_unlock(&L.mu);
    return rc;
}

static int lfs_fallocate(const char *path, int mode, off_t off, off_t len, struct fuse_file_info *fi)
{
    (void)path;
    pthread_mutex_lock(&L.mu);
    struct frec *f;
    int rc = frec_get(FH(fi)->fd, &f);
    /* Plain allocation (mode 0, KEEP_SIZE: RocksDB's preallocation) changes
     * no byte, and a size it grows is cut back by a crash; punching or
     * zeroing changes the range; collapsing or inserting shifts all after. */
    if (!rc && (mode & (FALLOC_FL_PUNCH_HOLE | FALLOC_FL_ZERO_RANGE)))
        rc = frec_save(f, off, len);
    else if (!rc && (mode & (FALLOC_FL_COLLAPSE_RANGE | FALLOC_FL_INSERT_RANGE)))
        rc = frec_save(f, off, f->durable_size - off);
    if (!rc && fallocate(FH(fi)->fd, mode, off, len) != 0)
        rc = -errno;
    pthread_mutex_unlock(&L.mu);
    return rc;
}

static int lfs_opendir(const char *path, struct fuse_file_info *fi)
{
    if (hidden(path))
        return -ENOENT;
    int fd = openat(L.root, rel(path), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    struct stat st;
    struct fh *d = malloc(sizeof *d);
    if (!d || fstat(fd, &st) != 0 || !(d->dp = fdopendir(fd))) {
        int e = d ? -errno : -ENOMEM;
        free(d);
        close(fd);
        return e;
    }
    d->fd = fd;
    d->flags = O_RDONLY;
    d->ino = st.st_ino;
    d->root = strcmp(rel(path), ".") == 0;
    fi->fh = (uint64_t)(uintptr_t)d;
    return 0;
}

static int lfs_readdir(const char *path, void *buf, fuse_fill_dir_t fill, off_t off, struct fuse_file_info *fi,
                       enum fuse_readdir_flags flags)
{
    (void)path;
    (void)flags;
    struct fh *d = FH(fi);
    if (off == 0)
        rewinddir(d->dp);
    else
        seekdir(d->dp, off);
    struct dirent *e;
    while ((e = readdir(d->dp))) {
        if (d->root && strcmp(e->d_name, STATE_DIR) == 0)
            continue;
        struct stat st = {.st_ino = e->d_ino, .st_mode = (mode_t)DTTOIF(e->d_type)};
        if (fill(buf, e->d_name, &st, telldir(d->dp), 0))
            break;
    }
    return 0;
}

static int lfs_releasedir(const char *path, struct fuse_file_info *fi)
{
    (void)path;
    struct fh *d = FH(fi);
    closedir(d->dp);
    free(d);
    return 0;
}

/* A directory fsync makes its entries durable: the names recorded since its
 * last fsync are dropped with their stash links, and an unlinked file that no
 * name can bring back any more needs no undo either. */
static int lfs_fsyncdir(const char *path, int datasync, struct fuse_file_info *fi)
{
    (void)path;
    (void)datasync;
    struct fh *dh = FH(fi);
    unsigned long gen = fsync_wait();
    pthread_mutex_lock(&L.mu);
    int rc = 0;
    if (atomic_load(&L.crashes) != gen) {
        rc = -EIO;
        goto out;
    }
    if (L.fail_fsync > 0) {
        L.fail_fsync--;
        rc = -EIO;
        goto out;
    }
    for (struct drec **pp = &L.dirs; *pp; pp = &(*pp)->next) {
        if ((*pp)->ino != dh->ino)
            continue;
        struct drec *d = *pp;
        *pp = d->next;
        for (struct nrec *r = d->names; r; r = r->next) {
            if (r->kind != N_DIR)
                continue;
            /* A removed directory parked in the stash that nothing else holds. */
            char where[PATH_MAX];
            fd_path(r->dfd, where, sizeof where);
            ino_t ino = r->ino;
            r->kind = N_ABSENT;
            close(r->dfd);
            if (!dir_held(ino) && strncmp(where, "/" STATE_DIR "/stash/", strlen("/" STATE_DIR "/stash/")) == 0)
                unlinkat(L.stash, where + strlen("/" STATE_DIR "/stash/"), AT_REMOVEDIR);
        }
        drec_free(d, true);
        break;
    }
    for (struct frec **pp = &L.files; *pp;) {
        struct stat st;
        if (fstat((*pp)->fd, &st) == 0 && st.st_nlink == 0) {
            struct frec *f = *pp;
            *pp = f->next;
            frec_free(f);
        } else {
            pp = &(*pp)->next;
        }
    }
out:
    pthread_mutex_unlock(&L.mu);
    return rc;
}

static const struct fuse_operations ops = {
    .init = lfs_init,
    .destroy = lfs_destroy,
    .getattr = lfs_getattr,
    .readlink = lfs_readlink,
    .mknod = lfs_mknod,
    .mkdir = lfs_mkdir,
    .unlink = lfs_unlink,
    .rmdir = lfs_rmdir,
    .symlink = lfs_symlink,
    .rename = lfs_rename,
    .link = lfs_link,
    .chmod = lfs_chmod,
    .chown = lfs_chown,
    .truncate = lfs_truncate,
    .open = lfs_open,
    .read = lfs_read,
    .write = lfs_write,
    .statfs = lfs_statfs,
    .release = lfs_release,
    .fsync = lfs_fsync,
    .opendir = lfs_opendir,
    .readdir = lfs_readdir,
    .releasedir = lfs_releasedir,
    .fsyncdir = lfs_fsyncdir,
    .create = lfs_create,
    .utimens = lfs_utimens,
    .fallocate = lfs_fallocate,
};

/* --- main --- */

static int usage(void)
{
    fprintf(stderr, "usage: lossyfs mount BACKING MOUNTPOINT --control SOCKET [--seed N] [--single-thread] "
                    "[--die-with-parent]\n"
                    "       lossyfs ctl SOCKET crash | crash-torn [SEED] | freeze | fail-fsync N | fsync-delay US | report | ping\n");
    return 2;
}

static int ctl_client(int argc, char **argv)
{
    if (argc < 4)
        return usage();
    struct sockaddr_un a = {.sun_family = AF_UNIX};
    if (strlen(argv[2]) >= sizeof a.sun_path) {
        fprintf(stderr, "lossyfs: socket path too long\n");
        return 2;
    }
    strcpy(a.sun_path, argv[2]);
    char line[256] = "";
    for (int i = 3; i < argc; i++) {
        strncat(line, argv[i], sizeof line - strlen(line) - 2);
        strncat(line, i + 1 < argc ? " " : "\n", sizeof line - strlen(line) - 1);
    }
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0 || connect(fd, (struct sockaddr *)&a, sizeof a) != 0) {
        fprintf(stderr, "lossyfs: %s: %s\n", argv[2], strerror(errno));
        return 1;
    }
    if (write(fd, line, strlen(line)) < 0) {
        fprintf(stderr, "lossyfs: %s: %s\n", argv[2], strerror(errno));
        return 1;
    }
    shutdown(fd, SHUT_WR);
    /* The reply's last line starts with "ok" or "error". */
    char buf[4096], last[8] = "";
    size_t ln = 0;
    bool bol = true;
    ssize_t r;
    while ((r = read(fd, buf, sizeof buf)) > 0) {
        fwrite(buf, 1, (size_t)r, stdout);
        for (ssize_t i = 0; i < r; i++) {
            if (bol)
                ln = 0;
            bol = buf[i] == '\n';
            if (!bol && ln < sizeof last - 1)
                last[ln++] = buf[i], last[ln] = 0;
        }
    }
    close(fd);
    fflush(stdout);
    return strncmp(last, "ok", 2) == 0 ? 0 : 1;
}

static int mk_state(const char *name, char *path, size_t pn, int *fd)
{
    snprintf(path, pn, "%s/%s/%s", L.backing, STATE_DIR, name);
    mkdir(path, 0700);
    empty_dir(path);
    *fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (*fd < 0) {
        fprintf(stderr, "lossyfs: %s: %s\n", path, strerror(errno));
        return -1;
    }
    return 0;
}

int main(int argc, char **argv)
{
    if (argc >= 2 && strcmp(argv[1], "ctl") == 0)
        return ctl_client(argc, argv);
    if (argc < 4 || strcmp(argv[1], "mount") != 0)
        return usage();
    const char *backing = argv[2], *mnt = argv[3];
    bool single = false;
    L.rng = (uint64_t)time(NULL);
    for (int i = 4; i < argc; i++) {
        if (strcmp(argv[i], "--control") == 0 && i + 1 < argc)
            L.ctl_path = argv[++i];
        else if (strcmp(argv[i], "--seed") == 0 && i + 1 < argc)
            L.rng = strtoull(argv[++i], NULL, 10);
        else if (strcmp(argv[i], "--single-thread") == 0)
            single = true;
        else if (strcmp(argv[i], "--die-with-parent") == 0)
            prctl(PR_SET_PDEATHSIG, SIGTERM); /* unmounts, as on SIGTERM */
        else
            return usage();
    }
    if (!L.ctl_path)
        return usage();
    if (!realpath(backing, L.backing)) {
        fprintf(stderr, "lossyfs: %s: %s\n", backing, strerror(errno));
        return 1;
    }
    L.root = open(L.backing, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (L.root < 0) {
        fprintf(stderr, "lossyfs: %s: %s\n", backing, strerror(errno));
        return 1;
    }
    char sp[PATH_MAX + 64];
    snprintf(sp, sizeof sp, "%s/%s", L.backing, STATE_DIR);
    mkdir(sp, 0700);
    if (mk_state("stash", L.stash_path, sizeof L.stash_path, &L.stash) ||
        mk_state("trash", L.trash_path, sizeof L.trash_path, &L.trash))
        return 1;

    struct sockaddr_un a = {.sun_family = AF_UNIX};
    if (strlen(L.ctl_path) >= sizeof a.sun_path) {
        fprintf(stderr, "lossyfs: control socket path too long: %s\n", L.ctl_path);
        return 2;
    }
    strcpy(a.sun_path, L.ctl_path);
    unlink(L.ctl_path);
    L.ctl_fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (L.ctl_fd < 0 || bind(L.ctl_fd, (struct sockaddr *)&a, sizeof a) != 0 || listen(L.ctl_fd, 8) != 0) {
        fprintf(stderr, "lossyfs: control socket %s: %s\n", L.ctl_path, strerror(errno));
        return 1;
    }

    char *fargs[8];
    int fn = 0;
    fargs[fn++] = argv[0];
    fargs[fn++] = "-f";
    if (single)
        fargs[fn++] = "-s";
    fargs[fn++] = "-o"; /* max_idle_threads given: libfuse 3.14 warns about its default */
    fargs[fn++] = "fsname=lossyfs,subtype=lossyfs,max_threads=8,max_idle_threads=4";
    fargs[fn++] = (char *)mnt;
    fargs[fn] = NULL;
    int rc = fuse_main(fn, fargs, &ops, NULL);
    close(L.ctl_fd);
    unlink(L.ctl_path);
    return rc;
}
