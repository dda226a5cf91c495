/* The backup module: SNAPSHOT_SAVE, a consistent image of the state machine
 * streamed from the leader to a client (`ddkv snapshot save`).
 *
 * A save goes through three states:
 *   1. barrier: the leader confirms it still leads (a ReadIndex round, as a
 *      linearizable read) and waits until it has applied that index, so the
 *      image holds every write acknowledged before the request arrived;
 *   2. imaging: at that moment (the state machine committed, applied index I
 *      >= the read index) a RocksDB snapshot is taken on the loop thread and a
 *      worker thread writes the image (kv/snapshot.c, the same format Raft
 *      InstallSnapshot sends) to DATA/backup/, while the loop keeps serving;
 *   3. streaming: the file is opened and unlinked (it goes away with the
 *      descriptor, whatever happens next), SNAPSHOT_META is sent, then
 *      SNAPSHOT_CHUNKs are read from the file only while the connection's
 *      output holds less than BACKUP_OUT_HIGH: a slow client holds back the
 *      reading, never makes the node buffer the image.
 * A connection that closes cancels its save at any state. */
#include <dirent.h>
#include <errno.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "node/node_int.h"
#include "node/node_io.h"
#include "util/file.h"
#include "util/log.h"

/* Saves at once per node: each costs an image's worth of disk for a while. */
#define BACKUP_MAX_ACTIVE 2
#define BACKUP_CHUNK_BYTES (256u << 10)
#define BACKUP_OUT_HIGH (1u << 20)
#define BACKUP_POLL_MS 20

enum export_state { EXPORT_IMAGING, EXPORT_STREAMING };

struct export {
    struct export *next;
    struct conn *c; /* referenced */
    uint64_t request_id;
    enum export_state state;
    struct node_job *job; /* imaging (node_io.h) */
    char path[600];
    int fd;               /* streaming: the unlinked image */
    uint64_t index, term, revision, lamport, keys;
    uint64_t bytes, off;
};

struct backups {
    struct export *list;
    unsigned active;
    uint64_t seq;
    struct event *poll;
    uint8_t *chunk; /* BACKUP_CHUNK_BYTES, shared: used only within one pump */
    bool busy;      /* walking the list: a connection closing meanwhile is swept after */
};

static void backup_dir(struct node *n, char *out, size_t cap)
{
    snprintf(out, cap, "%s/backup", n->cfg.data_dir);
}

static void export_free(struct node *n, struct export *e)
{
    if (e->job)
        n->io->snap_job_free(n, e->job); /* cancels the write; its .tmp goes */
    if (e->state == EXPORT_IMAGING)
        unlink(e->path); /* a write that finished before the cancel */
    if (e->fd >= 0)
        close(e->fd);
    conn_unref(e->c);
    n->backups->active--;
    free(e);
}

/* Unlink e from the list and free it. */
static void export_drop(struct node *n, struct export *e)
{
    for (struct export **pp = &n->backups->list; *pp; pp = &(*pp)->next) {
        if (*pp == e) {
            *pp = e->next;
            break;
        }
    }
    export_free(n, e);
}

/* Send what the connection has room for. Returns false once e is finished
 * or failed (the caller drops it). */
static bool export_pump(struct node *n, struct export *e)
{
    struct conn *c = e->c;
    while (conn_is_open(c) && evbuffer_get_length(bufferevent_get_output(c->bev)) < BACKUP_OUT_HIGH) {
        size_t want = e->bytes - e->off < BACKUP_CHUNK_BYTES ? (size_t)(e->bytes - e->off) : BACKUP_CHUNK_BYTES;
        size_t got = 0;
        while (got < want) {
            ssize_t r = pread(e->fd, n->backups->chunk + got, want - got, (off_t)(e->off + got));
            if (r < 0 && errno == EINTR)
                continue;
            if (r <= 0) {
                log_error("snapshot save: reading the image failed at %llu: %s",
                          (unsigned long long)(e->off + got), r < 0 ? strerror(errno) : "short file");
                conn_reply_error(c, e->request_id, DDKV_WERR_INTERNAL, "reading the image failed on the node");
                return false;
            }
            got += (size_t)r;
        }
        bool last = e->off + got == e->bytes;
        struct msg_writer w;
        conn_reply_begin(c, &w, DDKV_MSG_SNAPSHOT_CHUNK, e->request_id, 3);
        mw_u64(&w, e->off);
        mw_bin(&w, n->backups->chunk, got);
        mw_bool(&w, last);
        conn_reply_end(c, &w);
        e->off += got;
        if (last) {
            log_info("snapshot save: sent the image at index %llu (%llu bytes) to %s", (unsigned long long)e->index,
                     (unsigned long long)e->bytes, c->peer);
            return false;
        }
    }
    return conn_is_open(c);
}

/* The image is written: open it, unlink it, announce it, start sending. */
static bool export_stream(struct node *n, struct export *e)
{
    e->fd = open(e->path, O_RDONLY | O_CLOEXEC);
    struct stat sb;
    if (e->fd < 0 || fstat(e->fd, &sb) != 0) {
        log_error("snapshot save: cannot open the image %s: %s", e->path, strerror(errno));
        conn_reply_error(e->c, e->request_id, DDKV_WERR_INTERNAL, "cannot open the image on the node");
        return false;
    }
    unlink(e->path);
    e->state = EXPORT_STREAMING;
    e->bytes = (uint64_t)sb.st_size;
    /* The member list of the configuration in force, "name=peer_addr,...". */
    char members[4096];
    size_t off = 0;
    members[0] = 0;
    const struct raft_conf *conf = raft_get_conf(n->raft);
    for (uint32_t i = 0; i < conf->n; i++) {
        const struct member *m = cluster_member(n, conf->ids[i]);
        int k = snprintf(members + off, sizeof members - off, "%s%s=%s", off ? "," : "", m ? m->name : "?",
                         m ? m->peer_addr : "");
        if (k < 0 || (size_t)k >= sizeof members - off) {
            members[off] = 0;
            break;
        }
        off += (size_t)k;
    }
    struct msg_writer w;
    conn_reply_begin(e->c, &w, DDKV_MSG_SNAPSHOT_META, e->request_id, 8);
    mw_u64(&w, n->cluster_id);
    mw_u64(&w, e->index);
    mw_u64(&w, e->term);
    mw_u64(&w, e->revision);
    mw_u64(&w, e->lamport);
    mw_u64(&w, e->keys);
    mw_u64(&w, e->bytes);
    mw_str(&w, members);
    conn_reply_end(e->c, &w);
    return export_pump(n, e);
}

static void backup_sweep_closed(struct node *n);

static void backup_poll_arm(struct node *n)
{
    struct timeval tv = {0, BACKUP_POLL_MS * 1000};
    evtimer_add(n->backups->poll, &tv);
}

/* While images are being written: check on them. */
static void backup_poll_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct node *n = arg;
    bool waiting = false;
    n->backups->busy = true;
    struct export **pp = &n->backups->list;
    while (*pp) {
        struct export *e = *pp;
        int rc;
        struct errbuf eb;
        bool keep = true;
        if (e->state == EXPORT_IMAGING) {
            if (!n->io->snap_job_done(n, e->job, &rc, &eb)) {
                waiting = true;
            } else {
                n->io->snap_job_free(n, e->job);
                e->job = NULL;
                if (rc) {
                    log_error("snapshot save: writing the image at %llu failed: %s", (unsigned long long)e->index,
                              eb.msg);
                    conn_reply_error(e->c, e->request_id, err_to_wire(rc),
                                     "writing the image on the node failed: %s", eb.msg);
                    keep = false;
                } else {
                    keep = export_stream(n, e);
                }
            }
        }
        if (keep) {
            pp = &e->next;
        } else {
            *pp = e->next;
            export_free(n, e);
        }
    }
    n->backups->busy = false;
    backup_sweep_closed(n);
    if (waiting)
        backup_poll_arm(n);
}

/* The ReadIndex round completed and the state machine caught up: image it
 * now, at exactly the applied index. */
static void backup_on_barrier(struct node *n, struct conn *c, uint64_t request_id, uint64_t arg)
{
    (void)arg;
    struct backups *b = n->backups;
    struct errbuf eb;
    uint64_t index = n->sm.applied_index, term = 0;
    if (replica_fenced(n) || replica_installing(n) || !raft_log_term(n->raft, index, &term)) {
        conn_reply_error(c, request_id, DDKV_WERR_UNAVAILABLE, "cannot image the state now; retry");
        return;
    }
    if (b->active >= BACKUP_MAX_ACTIVE) {
        conn_reply_error(c, request_id, DDKV_WERR_UNAVAILABLE, "%d snapshot saves are running; retry later",
                         BACKUP_MAX_ACTIVE);
        return;
    }
    struct export *e = calloc(1, sizeof *e);
    ASSERT(e != NULL);
    char dir[512];
    backup_dir(n, dir, sizeof dir);
    snprintf(e->path, sizeof e->path, "%s/save-%llu-%llu.img", dir, (unsigned long long)++b->seq,
             (unsigned long long)index);
    int rc = n->io->snap_write_start(n, e->path, index, term, &e->job, &eb);
    if (rc) {
        free(e);
        log_error("snapshot save: cannot start the image at %llu: %s", (unsigned long long)index, eb.msg);
        conn_reply_error(c, request_id, DDKV_WERR_INTERNAL, "cannot start the image: %s", eb.msg);
        return;
    }
    conn_ref(c);
    e->c = c;
    e->request_id = request_id;
    e->fd = -1;
    e->state = EXPORT_IMAGING;
    e->index = index;
    e->term = term;
    e->revision = n->sm.revision;
    e->lamport = n->sm.applied_lamport;
    e->keys = n->sm.keys;
    e->next = b->list;
    b->list = e;
    b->active++;
    log_info("snapshot save for %s: imaging the state at index %llu (revision %llu, %llu keys)", c->peer,
             (unsigned long long)index, (unsigned long long)e->revision, (unsigned long long)e->keys);
    backup_poll_arm(n);
}

/* SNAPSHOT_SAVE []: only the leader images (a follower names it). */
static void backup_save(void *ctx, struct conn *c, const struct msg *m)
{
    struct node *n = ctx;
    if (replica_fenced(n) || replica_installing(n)) {
        conn_reply_error(c, m->request_id, DDKV_WERR_UNAVAILABLE, "this member cannot image its state now; retry");
        return;
    }
    if (!replica_lead_or_refuse(n, c, m->request_id, false))
        return;
    if (n->backups->active >= BACKUP_MAX_ACTIVE) {
        conn_reply_error(c, m->request_id, DDKV_WERR_UNAVAILABLE, "%d snapshot saves are running; retry later",
                         BACKUP_MAX_ACTIVE);
        return;
    }
    replica_read_barrier(n, c, m->request_id, backup_on_barrier, 0);
}

/* Drop the saves whose connection closed while the list was being walked. */
static void backup_sweep_closed(struct node *n)
{
    for (struct export *e = n->backups->list, *next; e; e = next) {
        next = e->next;
        if (!conn_is_open(e->c))
            export_drop(n, e);
    }
}

static void backup_conn_writable(struct node *n, struct conn *c)
{
    if (!n->backups || n->backups->busy)
        return;
    n->backups->busy = true;
    for (struct export *e = n->backups->list, *next; e; e = next) {
        next = e->next;
        if (e->c == c && e->state == EXPORT_STREAMING && !export_pump(n, e))
            export_drop(n, e);
    }
    n->backups->busy = false;
    backup_sweep_closed(n);
}

static void backup_conn_closed(struct node *n, struct conn *c)
{
    if (!n->backups || n->backups->busy)
        return; /* swept when the walk ends */
    for (struct export *e = n->backups->list, *next; e; e = next) {
        next = e->next;
        if (e->c == c) {
            if (e->state == EXPORT_STREAMING && e->off < e->bytes)
                log_info("snapshot save: %s went away after %llu of %llu bytes", c->peer,
                         (unsigned long long)e->off, (unsigned long long)e->bytes);
            export_drop(n, e);
        }
    }
}

static void backup_free(struct node *n)
{
    struct backups *b = n->backups;
    if (!b)
        return;
    while (b->list) {
        struct export *e = b->list;
        b->list = e->next;
        export_free(n, e);
    }
    if (b->poll)
        event_free(b->poll);
    free(b->chunk);
    free(b);
    n->backups = NULL;
}

/* Images of saves a crash interrupted are of no use to anyone. */
static void backup_clean_dir(const char *dir)
{
    DIR *d = opendir(dir);
    if (!d)
        return;
    struct dirent *de;
    char path[1100];
    while ((de = readdir(d)) != NULL) {
        if (strncmp(de->d_name, "save-", 5) != 0)
            continue;
        snprintf(path, sizeof path, "%s/%s", dir, de->d_name);
        if (unlink(path) == 0)
            log_info("removed %s, left by a snapshot save that did not finish", path);
    }
    closedir(d);
}

static int backup_init(struct node *n, struct errbuf *eb)
{
    char dir[512];
    backup_dir(n, dir, sizeof dir);
    int rc = file_mkdir_durable(dir, 0700, eb);
    if (rc)
        return rc;
    backup_clean_dir(dir);
    struct backups *b = calloc(1, sizeof *b);
    if (!b || !(b->chunk = malloc(BACKUP_CHUNK_BYTES)) || !(b->poll = evtimer_new(n->base, backup_poll_cb, n))) {
        if (b)
            free(b->chunk);
        free(b);
        return errf(eb, ERR_NOMEM, "out of memory");
    }
    n->backups = b;
    return dispatcher_register(&n->disp, DDKV_MSG_SNAPSHOT_SAVE, "backup", backup_save, n, eb);
}

const struct module mod_backup = {
    .name = "backup",
    .init = backup_init,
    .on_conn_writable = backup_conn_writable,
    .on_conn_closed = backup_conn_closed,
    .free = backup_free, /* before the store closes */
};
