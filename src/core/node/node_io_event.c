/* node_io_event: the node's I/O seam as `ddkv serve` runs it (node_io.h):
 * the log syncer thread, the peer transport, libevent timers, the snapshot
 * jobs' threads and OpenSSL's random bytes, exactly as before the seam. */
#include "node/node_io.h"

#include <event2/event.h>
#include <openssl/rand.h>
#include <stdlib.h>
#include <sys/stat.h>

#include "kv/snapshot.h"
#include "node/logsync.h"
#include "node/node_int.h"
#include "node/peer.h"
#include "node/pool.h"

static int nie_sync_start(struct node *n, struct errbuf *eb)
{
    struct logsync *ls = NULL;
    int rc = logsync_start(n->base, n->st, &ls, eb);
    n->io_ctx = ls;
    return rc;
}

static void nie_sync_stop(struct node *n)
{
    logsync_stop(n->io_ctx); /* waits for a sync in flight */
    n->io_ctx = NULL;
}

static void nie_sync_submit(struct node *n)
{
    logsync_submit(n->io_ctx);
}

static bool nie_sync_poll(struct node *n, int *rc, uint64_t *ns, struct errbuf *eb)
{
    return logsync_poll(n->io_ctx, rc, ns, eb);
}

static void nie_sync_wait(struct node *n, int *rc, uint64_t *ns, struct errbuf *eb)
{
    logsync_wait(n->io_ctx, rc, ns, eb);
}

static int nie_send(struct node *n, const struct raft_msg *m)
{
    struct peer_transport *pt = cluster_peers(n);
    return pt ? peer_send(pt, m) : ERR_NOT_FOUND;
}

static void nie_flush(struct node *n)
{
    struct peer_transport *pt = cluster_peers(n);
    if (pt)
        peer_flush(pt);
}

static uint64_t nie_peer_version(struct node *n, uint64_t id)
{
    struct peer_transport *pt = cluster_peers(n);
    return pt ? peer_version_of(pt, id) : 0;
}

static bool nie_has_peers(struct node *n)
{
    return cluster_peers(n) != NULL;
}

static uint64_t nie_peer_incarnation(struct node *n, uint64_t id)
{
    struct peer_transport *pt = cluster_peers(n);
    return pt ? peer_incarnation_of(pt, id) : 0;
}

static void nie_peer_refuse(struct node *n, uint64_t id, const char *why)
{
    struct peer_transport *pt = cluster_peers(n);
    if (pt)
        peer_drop_inbound(pt, id, why);
}

struct node_timer {
    struct node *n;
    node_timer_fn fn;
    struct event *ev;
    bool repeat;
};

static void nie_timer_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct node_timer *t = arg;
    t->fn(t->n);
}

static struct node_timer *nie_timer_new(struct node *n, node_timer_fn fn)
{
    struct node_timer *t = calloc(1, sizeof *t);
    if (!t)
        return NULL;
    t->n = n;
    t->fn = fn;
    return t;
}

static void nie_timer_arm(struct node *n, struct node_timer *t, uint32_t ms, bool repeat)
{
    if (!t->ev || t->repeat != repeat) {
        if (t->ev)
            event_free(t->ev);
        t->ev = event_new(n->base, -1, repeat ? EV_PERSIST : 0, nie_timer_cb, t);
        t->repeat = repeat;
        if (!t->ev)
            return; /* out of memory: the timer stays unarmed */
    }
    struct timeval tv = {(time_t)(ms / 1000), (suseconds_t)(ms % 1000) * 1000};
    event_add(t->ev, &tv);
}

static bool nie_timer_armed(struct node *n, struct node_timer *t)
{
    (void)n;
    return t->ev && event_pending(t->ev, EV_TIMEOUT, NULL);
}

static void nie_timer_cancel(struct node *n, struct node_timer *t)
{
    (void)n;
    if (t->ev)
        event_del(t->ev);
}

static void nie_timer_free(struct node *n, struct node_timer *t)
{
    (void)n;
    if (!t)
        return;
    if (t->ev)
        event_free(t->ev);
    free(t);
}

/* The jobs are kv/snapshot.c's, under the seam's opaque name. */
static int nie_snap_write_start(struct node *n, const char *path, uint64_t index, uint64_t term,
                                struct node_job **out, struct errbuf *eb)
{
    return snap_write_start(n->st, path, index, term, (struct snap_job **)out, eb);
}

static int nie_snap_install_start(struct node *n, const char *path, struct store_batch *raft_side,
                                  struct node_job **out, struct errbuf *eb)
{
    return snap_install_start(n->st, path, raft_side, (struct snap_job **)out, eb);
}

static bool nie_snap_job_done(struct node *n, struct node_job *j, int *rc, struct errbuf *eb)
{
    (void)n;
    return snap_job_done((struct snap_job *)j, rc, eb);
}

static void nie_snap_job_free(struct node *n, struct node_job *j)
{
    (void)n;
    if (j)
        snap_job_free((struct snap_job *)j);
}

static uint64_t nie_snap_bytes(struct node *n, const char *path)
{
    (void)n;
    struct stat st;
    return stat(path, &st) == 0 ? (uint64_t)st.st_size : 0;
}

static int nie_snap_verify(struct node *n, const char *path, struct errbuf *eb)
{
    (void)n;
    return snap_verify(path, NULL, NULL, NULL, eb);
}

static int nie_snap_read(struct node *n, const char *path, uint64_t offset, uint8_t *buf, size_t cap,
                         size_t *len, bool *last, struct errbuf *eb)
{
    (void)n;
    return snap_read(path, offset, buf, cap, len, last, eb);
}

static int nie_random(struct node *n, uint64_t *out)
{
    (void)n;
    return RAND_bytes((unsigned char *)out, sizeof *out) == 1 ? ERR_OK : ERR_IO;
}

static void nie_stop_loop(struct node *n)
{
    event_base_loopbreak(n->base);
}

const struct node_io node_io_event = {
    .sync_start = nie_sync_start,
    .sync_stop = nie_sync_stop,
    .sync_submit = nie_sync_submit,
    .sync_poll = nie_sync_poll,
    .sync_wait = nie_sync_wait,
    .send = nie_send,
    .flush = nie_flush,
    .has_peers = nie_has_peers,
    .peer_incarnation = nie_peer_incarnation,
    .peer_version = nie_peer_version,
    .peer_refuse = nie_peer_refuse,
    .timer_new = nie_timer_new,
    .timer_arm = nie_timer_arm,
    .timer_armed = nie_timer_armed,
    .timer_cancel = nie_timer_cancel,
    .timer_free = nie_timer_free,
    .snap_write_start = nie_snap_write_start,
    .snap_install_start = nie_snap_install_start,
    .snap_job_done = nie_snap_job_done,
    .snap_job_free = nie_snap_job_free,
    .snap_verify = nie_snap_verify,
    .snap_bytes = nie_snap_bytes,
    .snap_read = nie_snap_read,
    .pool_start = pool_start,
    .pool_submit = pool_submit,
    .pool_stop = pool_stop,
    .random = nie_random,
    .stop_loop = nie_stop_loop,
};
