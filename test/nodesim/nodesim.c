/* nodesim: whole ddkv nodes (the replica, the state machine and the modules)
 * in one process under one seeded scheduler and virtual time (issue 17).
 *
 * Each member is a real struct node, started as node_run starts one but
 * without sockets or a libevent loop: its I/O seam (node_io.h) is this
 * file's. Raft messages go through the wire codec into a simulated network
 * that drops, duplicates, delays, reorders and partitions; a log sync
 * completes after a simulated latency (or fails with EIO); timers fire in
 * virtual time; storage is store_mem.c over a memdisk per member, so a crash
 * keeps only what was synced plus a random prefix of the rest (sometimes a
 * torn record in the middle, which the member must refuse at restart).
 * Clients reach members through detached connections (conn.h) whose replies
 * come back here; every operation is recorded and the history checked for
 * linearizability (test/faults/linearize.h) after the faults heal, with a
 * final read of every key (no acknowledged write lost) and the members' data
 * compared. Writes carry a session (client_id, seq) and are retried with it,
 * so a retry applied twice shows up as a non-linearizable history.
 *
 *   nodesim [--first F] [--count N] [--nodes 3|5] [--quiet]
 *   DDKV_SEED=S              replay exactly seed S
 *   DDKV_NODESIM_TRACE=1     with a readable trace of every event and the
 *                            members' own log lines
 * Exit 0 when every seed passed; 1 names the first failing seed. */
#define _GNU_SOURCE /* memmem */
#include <ftw.h>
#include <signal.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "consensus/raft.h"
#include "ddkv/wire.h"
#include "proto/version.h"
#include "kv/authdb.h"
#include "kv/memdisk.h"
#include "kv/sm.h"
#include "kv/store.h"
#include "linearize.h"
#include "node/cluster.h"
#include "node/conn.h"
#include "node/node_int.h"
#include "node/node_io.h"
#include "node/replica.h"
#include "proto/mpcheck.h"
#include "proto/msg.h"
#include "util/buf.h"
#include "util/clock.h"
#include "util/log.h"

#define NS_MAX_NODES 5
#define NS_MAX_TIMERS 16
#define NS_CLIENTS 5
#define NS_KEYS 4
#define NS_MS ((uint64_t)1000000)
#define NS_RUN_MS 2000      /* faults and client load */
#define NS_SETTLE_MS 10000  /* faults healed: a leader, every member caught up */
#define NS_ATTEMPT_MS 1500  /* a client gives an attempt this long */
#define NS_OP_MS 4000      /* a client gives up an operation after this (outcome unknown) */

/* --- PRNG (splitmix64): the only source of choices --- */
static uint64_t rng_s;
static uint64_t rnd(void)
{
    uint64_t z = (rng_s += UINT64_C(0x9e3779b97f4a7c15));
    z = (z ^ (z >> 30)) * UINT64_C(0xbf58476d1ce4e5b9);
    z = (z ^ (z >> 27)) * UINT64_C(0x94d049bb133111eb);
    return z ^ (z >> 31);
}
static uint64_t below(uint64_t n)
{
    return n ? rnd() % n : 0;
}
static bool pct(unsigned p)
{
    return below(100) < p;
}

/* --- virtual time --- */
static uint64_t now_ns;
static uint64_t sim_mono_ns(void *ctx)
{
    (void)ctx;
    return now_ns + 1000000000ull; /* never 0: 0 means "unset" in places */
}
static uint64_t sim_wall_ms(void *ctx)
{
    (void)ctx;
    return 1790000000000ull + now_ns / NS_MS;
}

static bool tracing;
static void trace(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void trace(const char *fmt, ...)
{
    if (!tracing)
        return;
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "[%6" PRIu64 ".%03" PRIu64 "] ", now_ns / NS_MS, (now_ns / 1000) % 1000);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
}

/* --- members --- */
struct node_timer {
    struct simnode *sn;
    int slot;
    bool used, armed, repeat;
    uint32_t ms;
    uint64_t token;
    node_timer_fn fn;
};

struct node_job {
    int rc;
    struct errbuf eb;
};

struct simnode {
    int idx;
    char name[8];
    char dir[256];
    uint64_t id;
    struct memdisk *disk;
    struct node *n;       /* NULL while down */
    uint64_t gen;         /* changes at every start and crash: stale events are dropped */
    bool refused;         /* its disk was found damaged at restart: out until rebuilt */
    bool joined;          /* rebuilt: removed, wiped, started empty with --join, added again */
    char peer_addr[32];
    uint64_t paused_until, full_until, restart_at, eio_until;
    struct node_timer timers[NS_MAX_TIMERS];
    bool sync_in_flight, sync_finished;
    int sync_rc;
    uint64_t sync_token;
    struct errbuf sync_eb;
    uint64_t crashes, syncs_failed;
    /* The member's log as the simulated disk holds it synced: entries up to
     * `durable` survive a power cut; the sync in flight covers to sub_last. */
    uint64_t durable, sub_last;
    struct node_pool *pool; /* its work pool (the auth module's password jobs) */
};

static int nnodes;
static struct simnode nodes[NS_MAX_NODES];
static bool cut[NS_MAX_NODES][NS_MAX_NODES]; /* cut[a][b]: a's messages to b are lost */
static unsigned drop_pct, dup_pct;
static bool faults_on;
/* The member being rebuilt (removed, wiped, added back), -1: none; phase 1
 * removing, 2 adding. */
static int rebuild_target = -1, rebuild_phase;
static char admin_bad[160]; /* an answer the admin was given that the cluster contradicts */
static char durable_bad[200]; /* a member's invariant broken during a turn (durability, the proposal queue) */
static uint64_t rebuilds;
static char base_dir[128];
static char cluster_spec[256];
static uint32_t snapshot_entries;
static uint32_t heartbeat_ms;

/* --- the event queue: a binary heap on (time, sequence) --- */
enum ev_kind { EV_TIMER, EV_SYNC, EV_MSG, EV_CREQ, EV_CTICK, EV_CTIMEOUT, EV_FAULT, EV_HEAL, EV_WATCH, EV_MSTEP, EV_LSTEP, EV_JSTEP,
               EV_WORK, EV_CSTASH, EV_WATCHGO, EV_ASTEP, EV_ISTEP };
struct ev {
    uint64_t t, seq;
    enum ev_kind kind;
    int node, from;
    uint64_t gen, token;
    int slot;
    uint8_t *data;
    size_t len;
};
static struct ev *heap;
static size_t nheap, capheap;
static uint64_t ev_seq;

static void ev_push(struct ev e)
{
    e.seq = ++ev_seq;
    if (nheap == capheap) {
        capheap = capheap ? capheap * 2 : 256;
        heap = realloc(heap, capheap * sizeof *heap);
        ASSERT(heap);
    }
    size_t i = nheap++;
    while (i > 0) {
        size_t p = (i - 1) / 2;
        if (heap[p].t < e.t || (heap[p].t == e.t && heap[p].seq < e.seq))
            break;
        heap[i] = heap[p];
        i = p;
    }
    heap[i] = e;
}

static struct ev ev_pop(void)
{
    struct ev top = heap[0];
    struct ev last = heap[--nheap];
    size_t i = 0;
    for (;;) {
        size_t l = 2 * i + 1, r = l + 1, m = i;
        const struct ev *best = &last;
        if (l < nheap && (heap[l].t < best->t || (heap[l].t == best->t && heap[l].seq < best->seq)))
            m = l, best = &heap[l];
        if (r < nheap && (heap[r].t < best->t || (heap[r].t == best->t && heap[r].seq < best->seq)))
            m = r;
        if (m == i)
            break;
        heap[i] = heap[m];
        i = m;
    }
    if (nheap)
        heap[i] = last;
    return top;
}

static void heap_clear(void)
{
    for (size_t i = 0; i < nheap; i++)
        free(heap[i].data);
    nheap = 0;
}

static struct simnode *SN(struct node *n)
{
    return n->io_ctx;
}

/* A member applies an entry only once its own log holds it synced (or a
 * snapshot it installed covers it): otherwise a power cut leaves its state
 * machine ahead of its log, with an entry its log may no longer have. */
static void durable_check(struct simnode *sn)
{
    struct node *n = sn->n;
    if (!n || !n->raft || durable_bad[0])
        return;
    struct raft_status st;
    raft_status(n->raft, &st);
    /* The proposals waiting for their entries stay in index order (what
     * replica_track and the apply loop rely on). */
    size_t nprop;
    const struct proposal *prop = replica_proposals(n, &nprop);
    for (size_t i = 1; i < nprop; i++)
        if (prop[i - 1].index >= prop[i].index) {
            snprintf(durable_bad, sizeof durable_bad,
                     "proposal queue: %s's is out of order: index %" PRIu64 " before %" PRIu64, sn->name,
                     prop[i - 1].index, prop[i].index);
            return;
        }
    uint64_t covered = sn->durable > st.snap_index ? sn->durable : st.snap_index;
    if (n->sm.applied_index > covered)
        snprintf(durable_bad, sizeof durable_bad,
                 "durability: %s applied entry %" PRIu64 " at %" PRIu64 " ms while its log was durable only to %" PRIu64,
                 sn->name, n->sm.applied_index, now_ns / NS_MS, covered);
}

static void node_turn(struct simnode *sn)
{
    if (sn->n) {
        replica_drive(sn->n);
        durable_check(sn);
    }
}

/* --- the sim's node_io --- */
static int sio_sync_start(struct node *n, struct errbuf *eb)
{
    (void)eb;
    struct simnode *sn = SN(n);
    sn->sync_in_flight = sn->sync_finished = false;
    return ERR_OK;
}

static void sio_sync_stop(struct node *n)
{
    struct simnode *sn = SN(n);
    sn->sync_in_flight = false;
    sn->sync_token++;
}

static void sio_sync_submit(struct node *n)
{
    struct simnode *sn = SN(n);
    ASSERT(!sn->sync_in_flight);
    /* The batch written for this sync: entries from its first index replace
     * what the log held there, unsynced until the sync completes. */
    const struct raft_ready *pend = replica_pending(n);
    if (pend->n_entries && pend->entries[0].index <= sn->durable)
        sn->durable = pend->entries[0].index - 1;
    sn->sub_last = pend->n_entries ? pend->entries[pend->n_entries - 1].index : sn->durable;
    sn->sync_in_flight = true;
    sn->sync_finished = false;
    uint64_t lat = 50000 + below(1500000);
    if (pct(3))
        lat += below(20) * NS_MS; /* a slow disk */
    ev_push((struct ev){.t = now_ns + lat, .kind = EV_SYNC, .node = sn->idx, .gen = sn->gen,
                        .token = ++sn->sync_token});
}

static void sio_do_sync(struct simnode *sn)
{
    sn->sync_eb = (struct errbuf){{0}};
    sn->sync_rc = store_sync_wal(sn->n->st, &sn->sync_eb);
    if (!sn->sync_rc)
        sn->durable = sn->sub_last;
    sn->sync_finished = true;
    sn->sync_token++;
    if (sn->sync_rc)
        trace("%s: log sync failed: %s", sn->name, sn->sync_eb.msg);
}

static void sio_take(struct simnode *sn, int *rc, uint64_t *ns, struct errbuf *eb)
{
    *rc = sn->sync_rc;
    *ns = 1000;
    if (eb)
        *eb = sn->sync_eb;
    sn->sync_in_flight = sn->sync_finished = false;
}

static bool sio_sync_poll(struct node *n, int *rc, uint64_t *ns, struct errbuf *eb)
{
    struct simnode *sn = SN(n);
    if (!sn->sync_in_flight) {
        *rc = ERR_OK, *ns = 0;
        return true;
    }
    if (!sn->sync_finished)
        return false;
    sio_take(sn, rc, ns, eb);
    return true;
}

static void sio_sync_wait(struct node *n, int *rc, uint64_t *ns, struct errbuf *eb)
{
    struct simnode *sn = SN(n);
    if (!sn->sync_in_flight) {
        *rc = ERR_OK, *ns = 0;
        return;
    }
    if (!sn->sync_finished)
        sio_do_sync(sn);
    sio_take(sn, rc, ns, eb);
}

static struct simnode *node_by_id(uint64_t id)
{
    for (int i = 0; i < nnodes; i++)
        if (nodes[i].id == id)
            return &nodes[i];
    return NULL;
}

static struct buf sendbuf;

static int sio_send(struct node *n, const struct raft_msg *m)
{
    struct simnode *from = SN(n), *to = node_by_id(m->to);
    if (!to)
        return ERR_NOT_FOUND;
    buf_reset(&sendbuf);
    int rc = raft_msg_encode(m, lamport_tick(&n->clock), &sendbuf);
    if (rc)
        return rc;
    if (faults_on && pct(drop_pct))
        return ERR_OK; /* lost */
    int copies = faults_on && pct(dup_pct) ? 2 : 1;
    for (int k = 0; k < copies; k++) {
        uint64_t lat = 100000 + below(2 * NS_MS);
        if (faults_on && pct(5))
            lat += below(50) * NS_MS; /* delayed: overtaken by later ones */
        uint8_t *d = malloc(sendbuf.len);
        ASSERT(d);
        memcpy(d, sendbuf.data, sendbuf.len);
        ev_push((struct ev){.t = now_ns + lat, .kind = EV_MSG, .node = to->idx, .from = from->idx, .data = d,
                            .len = sendbuf.len, .token = cluster_incarnation(n)});
    }
    return ERR_OK;
}

static void sio_flush(struct node *n)
{
    (void)n;
}

/* The hello's incarnation: what member id's data dir says, while it is up
 * and reachable both ways (a live connection). */
static bool sio_has_peers(struct node *n)
{
    (void)n;
    return true;
}

static uint64_t sio_peer_incarnation(struct node *n, uint64_t id)
{
    struct simnode *me = SN(n), *p = node_by_id(id);
    if (!p || !p->n || cut[p->idx][me->idx] || cut[me->idx][p->idx])
        return 0;
    return cluster_incarnation(p->n);
}

/* Every member runs this build: a member that is up has said so. */
static uint64_t sio_peer_version(struct node *n, uint64_t id)
{
    (void)n;
    struct simnode *p = node_by_id(id);
    return p && p->n ? DDKV_RELEASE_VERSION : 0;
}

static void sio_peer_refuse(struct node *n, uint64_t id, const char *why)
{
    (void)n;
    (void)id;
    (void)why; /* each message is checked at delivery (cluster_incarnation_ok) */
}

static struct node_timer *sio_timer_new(struct node *n, node_timer_fn fn)
{
    struct simnode *sn = SN(n);
    for (int i = 0; i < NS_MAX_TIMERS; i++) {
        struct node_timer *t = &sn->timers[i];
        if (!t->used) {
            uint64_t tok = t->token + 1;
            *t = (struct node_timer){.sn = sn, .slot = i, .used = true, .fn = fn, .token = tok};
            return t;
        }
    }
    ASSERT(!"out of simulated timers");
    return NULL;
}

static void sio_timer_arm(struct node *n, struct node_timer *t, uint32_t ms, bool repeat)
{
    (void)n;
    t->armed = true;
    t->repeat = repeat;
    t->ms = ms;
    t->token++;
    ev_push((struct ev){.t = now_ns + (uint64_t)ms * NS_MS, .kind = EV_TIMER, .node = t->sn->idx,
                        .gen = t->sn->gen, .slot = t->slot, .token = t->token});
}

static bool sio_timer_armed(struct node *n, struct node_timer *t)
{
    (void)n;
    return t->armed;
}

static void sio_timer_cancel(struct node *n, struct node_timer *t)
{
    (void)n;
    t->armed = false;
    t->token++;
}

static void sio_timer_free(struct node *n, struct node_timer *t)
{
    (void)n;
    if (!t)
        return;
    t->used = t->armed = false;
    t->token++;
}

/* Snapshot jobs run on the calling thread here and are done at once; their
 * completion is still learned at the next tick, as with threads. */
static int sio_snap_write_start(struct node *n, const char *path, uint64_t index, uint64_t term,
                                struct node_job **out, struct errbuf *eb)
{
    struct node_job *j = calloc(1, sizeof *j);
    if (!j)
        return errf(eb, ERR_NOMEM, "out of memory");
    j->rc = snap_write(n->st, path, index, term, &j->eb);
    *out = j;
    return ERR_OK;
}

static int sio_snap_install_start(struct node *n, const char *path, struct store_batch *raft_side,
                                  struct node_job **out, struct errbuf *eb)
{
    struct node_job *j = calloc(1, sizeof *j);
    if (!j)
        return errf(eb, ERR_NOMEM, "out of memory");
    j->rc = snap_install(n->st, path, raft_side, &j->eb);
    *out = j;
    return ERR_OK;
}

static bool sio_snap_job_done(struct node *n, struct node_job *j, int *rc, struct errbuf *eb)
{
    (void)n;
    *rc = j->rc;
    if (eb)
        *eb = j->eb;
    return true;
}

static void sio_snap_job_free(struct node *n, struct node_job *j)
{
    (void)n;
    free(j);
}

static uint64_t sio_snap_bytes(struct node *n, const char *path)
{
    (void)n;
    struct stat st;
    return stat(path, &st) == 0 ? (uint64_t)st.st_size : 0;
}

static int sio_snap_verify(struct node *n, const char *path, struct errbuf *eb)
{
    (void)n;
    return snap_verify(path, NULL, NULL, NULL, eb);
}

static int sio_snap_read(struct node *n, const char *path, uint64_t offset, uint8_t *buf, size_t cap,
                         size_t *len, bool *last, struct errbuf *eb)
{
    (void)n;
    return snap_read(path, offset, buf, cap, len, last, eb);
}

/* The work pool: each work runs on the member's own turn, a little later in
 * virtual time (one turn per work submitted), the lowest lane first. */
struct node_pool {
    struct node_work *head;
};

static struct node_pool *sio_pool_start(struct node *n, unsigned nthreads, const unsigned *lanes, const int *nice,
                                        struct errbuf *eb)
{
    (void)nthreads, (void)lanes, (void)nice, (void)eb;
    struct node_pool *p = calloc(1, sizeof *p);
    ASSERT(p);
    SN(n)->pool = p;
    return p;
}

static void sio_pool_submit(struct node *n, struct node_pool *p, struct node_work *w)
{
    struct simnode *sn = SN(n);
    struct node_work **at = &p->head;
    while (*at)
        at = &(*at)->next;
    w->next = NULL;
    *at = w;
    ev_push((struct ev){.t = now_ns + 200000 + below(5 * NS_MS), .kind = EV_WORK, .node = sn->idx, .gen = sn->gen});
}

static void sio_pool_stop(struct node *n, struct node_pool *p, void (*drop)(struct node_work *w))
{
    if (!p)
        return;
    while (p->head) {
        struct node_work *w = p->head;
        p->head = w->next;
        if (drop)
            drop(w);
    }
    free(p);
    SN(n)->pool = NULL;
}

/* One work of sn's pool: run and done, on the member's turn. */
static void sim_pool_turn(struct simnode *sn)
{
    struct node_pool *p = sn->pool;
    if (!p || !p->head)
        return;
    struct node_work **best = &p->head;
    for (struct node_work **at = &p->head; *at; at = &(*at)->next)
        if ((*at)->lane < (*best)->lane)
            best = at;
    struct node_work *w = *best;
    *best = w->next;
    w->run(w);
    w->done(sn->n, w);
}

static int sio_random(struct node *n, uint64_t *out)
{
    (void)n;
    *out = rnd();
    return ERR_OK;
}

static void sio_stop_loop(struct node *n)
{
    n->stopping = true;
}

static const struct node_io sim_io = {
    .sync_start = sio_sync_start,
    .sync_stop = sio_sync_stop,
    .sync_submit = sio_sync_submit,
    .sync_poll = sio_sync_poll,
    .sync_wait = sio_sync_wait,
    .send = sio_send,
    .flush = sio_flush,
    .has_peers = sio_has_peers,
    .peer_incarnation = sio_peer_incarnation,
    .peer_version = sio_peer_version,
    .peer_refuse = sio_peer_refuse,
    .timer_new = sio_timer_new,
    .timer_arm = sio_timer_arm,
    .timer_armed = sio_timer_armed,
    .timer_cancel = sio_timer_cancel,
    .timer_free = sio_timer_free,
    .snap_write_start = sio_snap_write_start,
    .snap_install_start = sio_snap_install_start,
    .snap_job_done = sio_snap_job_done,
    .snap_job_free = sio_snap_job_free,
    .snap_verify = sio_snap_verify,
    .snap_bytes = sio_snap_bytes,
    .snap_read = sio_snap_read,
    .pool_start = sio_pool_start,
    .pool_submit = sio_pool_submit,
    .pool_stop = sio_pool_stop,
    .random = sio_random,
    .stop_loop = sio_stop_loop,
};


/* --- clients --- */
struct client {
    int idx;
    struct conn *conns[NS_MAX_NODES];
    uint64_t conn_gen[NS_MAX_NODES];
    bool busy;
    bool is_write;
    int member_op; /* the admin: 0 none, 1 MEMBER_REMOVE, 2 MEMBER_ADD of member `key` */
    int lease_op;  /* the lease holder: 0 none, 1 GRANT, 2 WRITE attached, 3 KEEPALIVE, 4 READ */
    int job_op;    /* a job worker: 0 none, 1 JOB_PUT, 2 JOB_CLAIM, 3 JOB_ACK */
    char job_id[64];
    uint64_t job_token, job_seq;
    int key;
    char val[32];
    uint64_t seq, rid, token;
    int node; /* of the attempt in flight */
    int attempts;
    bool maybe_applied;
    uint64_t call_ns;
    int hint; /* the member that last led for us */
    int silent; /* the member whose attempt last went unanswered, until it answers */
    uint64_t nwrites;
    /* With auth on: the user it signs in as, and per member connection 0 no
     * AUTH yet, 1 one in flight (the request waits in stash), 2 answered. */
    const char *user, *password;
    uint8_t auth_st[NS_MAX_NODES];
    uint8_t *stash[NS_MAX_NODES];
    size_t stash_len[NS_MAX_NODES];
    uint64_t auth_rid;
    int auth_op;  /* the auth admin: 1.. the setup step in flight */
    bool intrude; /* the intruder: a write as the read-only user in flight */
};
/* NS_CLIENTS clients, then the final reader, then the admin (membership). */
#define NS_READER NS_CLIENTS
#define NS_ADMIN (NS_CLIENTS + 1)
#define NS_LEASEC (NS_CLIENTS + 2)
#define NS_JOBC (NS_CLIENTS + 3) /* and the next: two job workers */
#define NS_AUTHC (NS_CLIENTS + 5) /* sets up users and roles, then enables auth */
#define NS_INTRUDER (NS_CLIENTS + 6) /* signed in as a read-only user, tries to write */
#define NS_ALLC (NS_CLIENTS + 7)
/* AUTH's request ids: apart from the requests'. */
#define NS_AUTH_RID (UINT64_C(1) << 62)
static struct client clients[NS_ALLC];

/* Job claims and acknowledgements, checked at the end: an ACK that settled
 * a job must carry the newest token any claim of that job was answered with
 * before the ACK was sent (a claim's token fences every older one). */
struct jrec {
    char id[64];
    uint64_t token, t; /* claim: answered at t; ack: sent at t */
    int worker;
};
static struct jrec jclaims[512], jacks[256];
static size_t njclaims, njacks;
static uint64_t jfenced;

/* The lease holder: grants a lease, attaches a key to it, keeps it alive and
 * reads the key. The lease must never end before the ttl after the call of
 * the last keepalive (or grant) it was answered: a NOT_FOUND keepalive or an
 * absent key answered before that is an early expiry. */
static struct {
    uint64_t id, ttl_ms;
    uint64_t deadline_ns; /* no expiry may be observed before this */
    bool key_written;
    uint64_t grants, keepalives;
    char bad[200];
} LS;

/* Auth (a third of the seeds): the auth admin adds users and roles and
 * enables auth, everyone then signs in (AUTH on each new connection, again
 * when a member says UNAUTHENTICATED), and the intruder, signed in as a
 * read-only user, tries to write once auth is enabled: no such write may be
 * acknowledged or seen, and no one else may be refused a permission. */
static struct {
    bool on;           /* this seed runs with auth */
    bool enabled;      /* ENABLE was acknowledged */
    uint64_t intrusions, denied, toggles;
    uint64_t cv_index;  /* where the cluster version 0.2 entry applied (0: not yet) */
    uint64_t enveloped; /* client writes applied with their auth rev (on any member) */
    char bad[200];
} AU;
static const struct {
    uint8_t op;
    const char *name, *arg;
    uint8_t perm;
} auth_steps[] = {
    {DDKV_AUTH_USER_ADD, "root", "rootpw", 0},    {DDKV_AUTH_USER_GRANT, "root", "root", 0},
    {DDKV_AUTH_USER_ADD, "app", "apppw", 0},      {DDKV_AUTH_ROLE_ADD, "rw", NULL, 0},
    {DDKV_AUTH_ROLE_GRANT, "rw", "", DDKV_PERM_READWRITE}, {DDKV_AUTH_USER_GRANT, "app", "rw", 0},
    {DDKV_AUTH_USER_ADD, "ro", "ropw", 0},        {DDKV_AUTH_ROLE_ADD, "r", NULL, 0},
    {DDKV_AUTH_ROLE_GRANT, "r", "", DDKV_PERM_READ}, {DDKV_AUTH_USER_GRANT, "ro", "r", 0},
    {DDKV_AUTH_ENABLE, NULL, NULL, 0},
    /* Then, until the faults heal, 'ro' is given write access and has it
     * taken away again, over and over. */
    {DDKV_AUTH_USER_GRANT, "ro", "rw", 0},        {DDKV_AUTH_USER_REVOKE, "ro", "rw", 0},
};
#define NS_AUTH_SETUP 11 /* steps 1..11 set up and enable */
#define NS_AUTH_STEPS (sizeof auth_steps / sizeof auth_steps[0])

/* The log a member holds once it starts or rejoins is what its disk kept:
 * all of it is on the disk now. */
static void sim_log_reloaded(struct node *n)
{
    struct raft_status st;
    raft_status(n->raft, &st);
    SN(n)->durable = SN(n)->sub_last = st.last_index;
}

/* Every write takes effect under the permissions in force at its place in
 * the log: one by the intruder ('ro') that a member applies while the auth
 * state there (with the changes staged before it in the batch) denies it
 * was admitted under older permissions and must not have been applied. */
static void sim_applied(struct node *n, const struct raft_entry *e, const struct sm_op *op,
                        const struct sm_result *res)
{
    if (op->kind == SM_OP_CLUSTER_VERSION && !AU.cv_index)
        AU.cv_index = e->index;
    if (op->client_id && op->auth_checked)
        AU.enveloped++;
    /* Only a write in an envelope is checked where it applies: one a leader
     * at cluster version 0.1 proposed (while a member was down, say) is
     * checked at admission alone, as 0.1 members would have it. */
    if (!AU.on || AU.bad[0] || op->kind != SM_OP_PUT || op->client_id != NS_INTRUDER + 1 || !op->auth_checked ||
        res->error || res->stale || res->duplicate || !res->revision)
        return; /* a retry the session answers with the first result applies nothing */
    const struct auth_db *db = n->sm.st_auth_open ? &n->sm.st_auth : &n->sm.auth;
    const struct auth_user *u = auth_user_find(db, "ro");
    if (db->enabled && !(u && auth_may(db, u, op->key, op->klen, DDKV_PERM_READWRITE)))
        snprintf(AU.bad, sizeof AU.bad,
                 "%s applied a write of %.*s by 'ro' at index %" PRIu64
                 " while the permissions at that index deny it (admitted under older ones)",
                 SN(n)->name, (int)op->klen, (const char *)op->key, e->index);
}

/* The simulator's own probe, last in the list: it learns of rejoins and
 * checks applied writes against the permissions. */
static const struct module mod_simprobe = {.name = "simprobe", .on_applied = sim_applied, .on_rejoin = sim_log_reloaded};

/* The modules a simulated member runs: all but backup's (its streaming
 * needs a libevent base of its own). */
extern const struct module mod_admin, mod_kv, mod_raft, mod_members, mod_watch, mod_jobs, mod_lease, mod_auth;
static const struct module *const sim_modules[] = {&mod_admin, &mod_kv,   &mod_raft, &mod_members, &mod_watch,
                                                   &mod_jobs,  &mod_lease, &mod_auth, &mod_simprobe};

/* Over all seeds, printed at the end: what the runs exercised. */
static struct {
    uint64_t ops_ok, ops_unknown, ops_failed, crashes, refused, syncs_failed, snapshots, installs, rejoins,
        duplicates, guard_stalls, jobs_claimed, jobs_done, leases_granted, keepalives, auth_seeds, auth_signins,
        intrusions_denied;
} totals;

/* The revision each acknowledged write was told (WRITTEN_AT), by client and
 * write number (values are "c<client>-<number>"). */
#define NS_MAX_WRITES 4096
static uint64_t acked_rev[NS_ALLC][NS_MAX_WRITES];
static int acked_key[NS_ALLC][NS_MAX_WRITES];

/* The watcher: one WATCH of the keys' prefix, resumed on another member from
 * the revision after its last event when its member goes (a chain of
 * streams), or started afresh when no member's history reaches back that far
 * (a new chain). Its events are checked at the end: in order, without
 * duplicates, every acknowledged write inside a chain's span present with its
 * revision, key and value, no event that no write made. */
struct wev {
    uint64_t rev;
    int key;
    char val[32];
    uint32_t chain;
};
static struct {
    struct conn *c;
    int node;
    uint64_t rid;
    bool open;
    uint32_t chain;
    uint64_t last_rev;  /* of the chain */
    uint64_t chain_from[64];
    int compacted_tries;
    uint64_t from;      /* of the WATCH being opened */
    struct wev *ev;
    size_t nev, cap;
    char bad[200];      /* the first violation seen as it happened */
} W;

static struct lin_op *hist;
static size_t nhist, caphist;
static char *keys_s[NS_KEYS];

static void hist_add(const struct client *cl, bool write, const char *value, uint64_t call, uint64_t ret,
                     enum lin_outcome oc)
{
    if (nhist == caphist) {
        caphist = caphist ? caphist * 2 : 256;
        hist = realloc(hist, caphist * sizeof *hist);
        ASSERT(hist);
    }
    size_t line = nhist + 1;
    hist[nhist++] = (struct lin_op){.client = cl->idx, .kind = write ? LIN_WRITE : LIN_READ,
                                    .key = keys_s[cl->key], .value = value ? strdup(value) : NULL,
                                    .call = call, .ret = ret, .outcome = oc, .line = line};
    if (oc == LIN_OK)
        totals.ops_ok++;
    else if (oc == LIN_UNKNOWN)
        totals.ops_unknown++;
    else
        totals.ops_failed++;
    trace("client %d: %s %s %s -> %s", cl->idx, write ? "write" : "read", keys_s[cl->key],
          value ? value : "(absent)", oc == LIN_OK ? "ok" : oc == LIN_FAILED ? "failed" : "unknown");
}

static void client_out(struct conn *c, const uint8_t *frame, size_t len, void *ctx);

/* AUTH [user, password] on c (not from inside one of c's replies). */
static void send_auth(struct conn *c, uint64_t rid, const char *user, const char *password)
{
    struct buf b = {0};
    struct msg_writer w;
    msg_begin(&w, &b, DDKV_MSG_AUTH, 0, rid, 2);
    mw_bin(&w, user, strlen(user));
    mw_bin(&w, password, strlen(password));
    ASSERT(msg_end(&w) == ERR_OK);
    conn_take_frame(c, b.data + 4, b.len - 4);
    buf_free(&b);
}

static uint64_t auth_rid_at[NS_ALLC][NS_MAX_NODES]; /* the AUTH in flight on each connection */

static void client_auth(struct client *cl, int node)
{
    auth_rid_at[cl->idx][node] = NS_AUTH_RID | ++cl->auth_rid;
    send_auth(cl->conns[node], auth_rid_at[cl->idx][node], cl->user, cl->password);
}

/* The member a reply on c came from, or -1. */
static int client_conn_node(const struct client *cl, const struct conn *c)
{
    for (int i = 0; i < nnodes; i++)
        if (cl->conns[i] == c)
            return i;
    return -1;
}

static void watch_schedule(uint64_t delay)
{
    ev_push((struct ev){.t = now_ns + delay, .kind = EV_WATCH});
}

static void client_close_node(int node)
{
    if (W.c && W.node == node) {
        struct conn *c = W.c;
        W.c = NULL;
        W.open = false;
        conn_close_detached(c);
        watch_schedule((20 + below(80)) * NS_MS);
    }
    for (int i = 0; i < NS_ALLC; i++) {
        struct client *cl = &clients[i];
        if (cl->conns[node]) {
            struct conn *c = cl->conns[node];
            cl->conns[node] = NULL;
            conn_close_detached(c);
        }
    }
}

static void client_schedule(struct client *cl, uint64_t delay)
{
    ev_push((struct ev){.t = now_ns + delay, .kind = EV_CTICK, .node = cl->idx});
}

static void member_step(bool ok);
static void member_rebuild(int idx);
static struct simnode *leader_node(void);

static void client_finish(struct client *cl, enum lin_outcome oc, const char *read_value, bool found)
{
    if (cl->lease_op) {
        cl->token++;
        ev_push((struct ev){.t = now_ns, .kind = EV_LSTEP, .slot = oc == LIN_OK});
        return;
    }
    if (cl->job_op) {
        cl->token++;
        ev_push((struct ev){.t = now_ns, .kind = EV_JSTEP, .from = cl->idx, .slot = oc == LIN_OK});
        return;
    }
    if (cl->auth_op) {
        cl->token++;
        ev_push((struct ev){.t = now_ns, .kind = EV_ASTEP, .slot = oc == LIN_OK});
        return;
    }
    if (cl->member_op) {
        /* The next step runs as an event of its own: this may be a member's
         * reply, from inside that member, which the step may free. */
        cl->token++;
        ev_push((struct ev){.t = now_ns, .kind = EV_MSTEP, .slot = oc == LIN_OK});
        return;
    }
    if (cl->is_write)
        hist_add(cl, true, cl->val, cl->call_ns, now_ns, oc);
    else if (oc == LIN_OK)
        hist_add(cl, false, found ? read_value : NULL, cl->call_ns, now_ns, oc);
    cl->busy = false;
    cl->token++;
    if (cl->idx < NS_CLIENTS)
        client_schedule(cl, below(30) * NS_MS);
    if (cl->intrude) {
        cl->intrude = false;
        ev_push((struct ev){.t = now_ns + (20 + below(100)) * NS_MS, .kind = EV_ISTEP});
    }
}

static int client_pick(struct client *cl)
{
    /* As a client library does: not straight back to a member that just let
     * an attempt time out (a dead member would starve the client), for the
     * next attempt only (the member may be the leader once it is back). */
    int silent = cl->silent;
    cl->silent = -1;
    if (cl->hint >= 0 && cl->hint != silent && !pct(20))
        return cl->hint;
    int pick = (int)below((uint64_t)nnodes);
    if (pick == silent)
        pick = (pick + 1 + (int)below((uint64_t)nnodes - 1)) % nnodes;
    return pick;
}

/* Send the op's next attempt to a member, through the network. */
static void client_attempt(struct client *cl)
{
    if (now_ns - cl->call_ns >= NS_OP_MS * NS_MS) {
        client_finish(cl, cl->maybe_applied ? LIN_UNKNOWN : LIN_FAILED, NULL, false);
        return;
    }
    cl->attempts++;
    cl->node = client_pick(cl);
    cl->rid++;
    cl->token++;
    struct buf b = {0};
    struct msg_writer w;
    char lkey[32];
    snprintf(lkey, sizeof lkey, "l/%" PRIu64, LS.id);
    if (cl->job_op == 1) {
        msg_begin(&w, &b, DDKV_MSG_JOB_PUT, 0, cl->rid, 4);
        mw_bin(&w, "jobdata/x", 9);
        mw_u64(&w, 100);
        mw_u64(&w, (uint64_t)cl->idx + 1);
        mw_u64(&w, cl->job_seq);
    } else if (cl->job_op == 2) {
        char wn[16];
        snprintf(wn, sizeof wn, "w%d", cl->idx);
        msg_begin(&w, &b, DDKV_MSG_JOB_CLAIM, 0, cl->rid, 2);
        mw_str(&w, wn);
        mw_u64(&w, 100 + 50 * (uint64_t)(cl->idx % 3));
    } else if (cl->job_op == 3) {
        msg_begin(&w, &b, DDKV_MSG_JOB_ACK, 0, cl->rid, 5);
        mw_bin(&w, cl->job_id, strlen(cl->job_id));
        mw_u64(&w, cl->job_token);
        mw_bin(&w, "", 0);
        mw_u64(&w, (uint64_t)cl->idx + 1);
        mw_u64(&w, cl->job_seq);
    } else if (cl->lease_op == 1) {
        msg_begin(&w, &b, DDKV_MSG_LEASE_GRANT, 0, cl->rid, 3);
        mw_u64(&w, LS.ttl_ms);
        mw_u64(&w, 0);
        mw_u64(&w, 0);
    } else if (cl->lease_op == 2) {
        msg_begin(&w, &b, DDKV_MSG_WRITE, 0, cl->rid, 5);
        mw_bin(&w, lkey, strlen(lkey));
        mw_bin(&w, "held", 4);
        mw_u64(&w, LS.id);
        mw_u64(&w, 0);
        mw_u64(&w, 0);
    } else if (cl->lease_op == 3) {
        msg_begin(&w, &b, DDKV_MSG_LEASE_KEEPALIVE, 0, cl->rid, 1);
        mw_u64(&w, LS.id);
    } else if (cl->lease_op == 4) {
        msg_begin(&w, &b, DDKV_MSG_READ, 0, cl->rid, 3);
        mw_bin(&w, lkey, strlen(lkey));
        mw_u64(&w, 0);
        mw_u64(&w, 0);
    } else if (cl->auth_op) {
        const char *name = auth_steps[cl->auth_op - 1].name, *arg = auth_steps[cl->auth_op - 1].arg;
        msg_begin(&w, &b, DDKV_MSG_AUTH_CHANGE, 0, cl->rid, 6);
        mw_u64(&w, auth_steps[cl->auth_op - 1].op);
        mw_bin(&w, name ? name : "", name ? strlen(name) : 0);
        mw_bin(&w, arg ? arg : "", arg ? strlen(arg) : 0);
        mw_u64(&w, auth_steps[cl->auth_op - 1].perm);
        mw_u64(&w, (uint64_t)cl->idx + 1);
        mw_u64(&w, cl->seq);
    } else if (cl->member_op == 1) {
        msg_begin(&w, &b, DDKV_MSG_MEMBER_REMOVE, 0, cl->rid, 1);
        mw_bin(&w, nodes[cl->key].name, strlen(nodes[cl->key].name));
    } else if (cl->member_op == 2) {
        char addr[32];
        snprintf(addr, sizeof addr, "127.0.0.1:%d", 7100 + cl->key);
        msg_begin(&w, &b, DDKV_MSG_MEMBER_ADD, 0, cl->rid, 2);
        mw_bin(&w, nodes[cl->key].name, strlen(nodes[cl->key].name));
        mw_bin(&w, addr, strlen(addr));
    } else if (cl->is_write) {
        msg_begin(&w, &b, DDKV_MSG_WRITE, 0, cl->rid, 5);
        mw_bin(&w, keys_s[cl->key], strlen(keys_s[cl->key]));
        mw_bin(&w, cl->val, strlen(cl->val));
        mw_u64(&w, 0);
        mw_u64(&w, (uint64_t)cl->idx + 1);
        mw_u64(&w, cl->seq);
    } else {
        msg_begin(&w, &b, DDKV_MSG_READ, 0, cl->rid, 3);
        mw_bin(&w, keys_s[cl->key], strlen(keys_s[cl->key]));
        mw_u64(&w, 0);
        mw_u64(&w, 0);
    }
    ASSERT(msg_end(&w) == ERR_OK);
    ev_push((struct ev){.t = now_ns + 100000 + below(NS_MS), .kind = EV_CREQ, .node = cl->node,
                        .from = cl->idx, .data = b.data, .len = b.len});
    ev_push((struct ev){.t = now_ns + NS_ATTEMPT_MS * NS_MS, .kind = EV_CTIMEOUT, .from = cl->idx,
                        .token = cl->token});
}

static void client_start_op(struct client *cl, bool write, int key)
{
    cl->busy = true;
    cl->is_write = write;
    cl->key = key;
    cl->attempts = 0;
    cl->maybe_applied = false;
    cl->call_ns = now_ns;
    if (write) {
        cl->seq++;
        snprintf(cl->val, sizeof cl->val, "c%d-%" PRIu64, cl->idx, ++cl->nwrites);
        if (cl->nwrites < NS_MAX_WRITES)
            acked_key[cl->idx][cl->nwrites] = key;
    }
    client_attempt(cl);
}

static void client_retry(struct client *cl, uint64_t delay)
{
    cl->token++;
    ev_push((struct ev){.t = now_ns + delay, .kind = EV_CTIMEOUT, .from = cl->idx, .token = cl->token,
                        .slot = 1});
}

/* NOT_LEADER names the leader the answering member knows (its client
 * address): the member index of it, or -1. */
static int leader_hint(int node)
{
    struct node *n = nodes[node].n;
    if (!n || !n->raft)
        return -1;
    struct raft_status st;
    raft_status(n->raft, &st);
    struct simnode *l = st.leader ? node_by_id(st.leader) : NULL;
    return l ? l->idx : -1;
}

static void client_out(struct conn *c, const uint8_t *frame, size_t len, void *ctx)
{
    (void)c;
    struct client *cl = ctx;
    struct msg m;
    struct errbuf eb;
    ASSERT(len >= 4);
    if (msg_decode(&m, frame + 4, len - 4, &msg_limits_reply, &eb) != ERR_OK) {
        fprintf(stderr, "nodesim: undecodable reply: %s\n", eb.msg);
        abort();
    }
    uint64_t code = 0;
    if (m.request_id & NS_AUTH_RID) {
        int at = client_conn_node(cl, c);
        if (at >= 0 && cl->auth_st[at] == 1 && m.request_id == auth_rid_at[cl->idx][at]) {
            if (m.type == DDKV_MSG_AUTHED) {
                cl->auth_st[at] = 2;
                totals.auth_signins++;
                ev_push((struct ev){.t = now_ns, .kind = EV_CSTASH, .node = at, .from = cl->idx});
            } else {
                /* Refused (busy, or a wait after failures): the request
                 * that waited is dropped, the attempt tried again. */
                cl->auth_st[at] = 0;
                free(cl->stash[at]);
                cl->stash[at] = NULL;
                if (cl->busy)
                    client_retry(cl, (10 + below(40)) * NS_MS);
            }
        }
        msg_free(&m);
        return;
    }
    if (!cl->busy || m.request_id != cl->rid) {
        msg_free(&m);
        return; /* an attempt given up on */
    }
    if (AU.on && m.type == DDKV_MSG_ERROR && msg_u64(&m, 0, &code) == ERR_OK &&
        (code == DDKV_WERR_UNAUTHENTICATED || code == DDKV_WERR_PERMISSION_DENIED)) {
        const uint8_t *t = NULL;
        size_t tn = 0;
        (void)msg_bytes(&m, 1, &t, &tn);
        if (code == DDKV_WERR_PERMISSION_DENIED && cl->intrude) {
            /* Refused at admission: not applied (unless an earlier attempt was). */
            AU.denied++;
            client_finish(cl, cl->maybe_applied ? LIN_UNKNOWN : LIN_FAILED, NULL, false);
            msg_free(&m);
            return;
        }
        if (code == DDKV_WERR_PERMISSION_DENIED && cl->lease_op && t && memmem(t, tn, "has no owner", 12)) {
            /* A lease granted before auth was enabled is root's alone: the
             * holder lets it go and takes a new one. */
            trace("lease %" PRIu64 ": granted without a login, root's now: let go", LS.id);
            LS.id = 0;
            client_finish(cl, LIN_OK, NULL, false);
            msg_free(&m);
            return;
        }
        if (code == DDKV_WERR_PERMISSION_DENIED && !AU.bad[0])
            snprintf(AU.bad, sizeof AU.bad, "client %d, signed in as '%s', refused by %s: %.*s", cl->idx, cl->user,
                     nodes[cl->node].name, (int)tn, t ? (const char *)t : "");
        /* Signed in before auth was enabled there (no identity): again. A
         * refusal at admission: nothing was proposed. */
        int at = client_conn_node(cl, c);
        if (at >= 0)
            cl->auth_st[at] = 0;
        client_retry(cl, (10 + below(40)) * NS_MS);
        msg_free(&m);
        return;
    }
    if (cl->job_op) {
        bool is_err = m.type == DDKV_MSG_ERROR && msg_u64(&m, 0, &code) == ERR_OK;
        if (!is_err && cl->job_op == 1 && m.type == DDKV_MSG_JOB) {
            client_finish(cl, LIN_OK, NULL, false);
        } else if (!is_err && cl->job_op == 2 && m.type == DDKV_MSG_JOB_CLAIMED) {
            const uint8_t *id;
            size_t idn;
            cl->job_id[0] = 0;
            if (msg_bytes(&m, 0, &id, &idn) == ERR_OK && idn < sizeof cl->job_id) {
                ASSERT(msg_u64(&m, 1, &cl->job_token) == ERR_OK);
                memcpy(cl->job_id, id, idn);
                cl->job_id[idn] = 0;
                if (njclaims < sizeof jclaims / sizeof jclaims[0]) {
                    struct jrec *r = &jclaims[njclaims++];
                    snprintf(r->id, sizeof r->id, "%s", cl->job_id);
                    r->token = cl->job_token;
                    r->t = now_ns;
                    r->worker = cl->idx;
                }
                trace("worker %d: claimed job %s, token %" PRIu64, cl->idx, cl->job_id, cl->job_token);
            }
            client_finish(cl, LIN_OK, NULL, false);
        } else if (!is_err && cl->job_op == 3 && m.type == DDKV_MSG_JOB_SETTLED) {
            if (njacks < sizeof jacks / sizeof jacks[0]) {
                struct jrec *r = &jacks[njacks++];
                snprintf(r->id, sizeof r->id, "%s", cl->job_id);
                r->token = cl->job_token;
                r->t = cl->call_ns;
                r->worker = cl->idx;
            }
            trace("worker %d: job %s done with token %" PRIu64, cl->idx, cl->job_id, cl->job_token);
            client_finish(cl, LIN_OK, NULL, false);
        } else if (is_err && cl->job_op == 3 && (code == DDKV_WERR_FENCED || code == DDKV_WERR_NOT_FOUND)) {
            jfenced++;
            trace("worker %d: ack of job %s token %" PRIu64 " fenced", cl->idx, cl->job_id, cl->job_token);
            client_finish(cl, LIN_OK, NULL, false);
        } else {
            if (is_err && code == DDKV_WERR_NOT_LEADER)
                cl->hint = leader_hint(cl->node);
            client_retry(cl, (10 + below(40)) * NS_MS);
        }
    } else if (cl->lease_op) {
        bool is_err = m.type == DDKV_MSG_ERROR && msg_u64(&m, 0, &code) == ERR_OK;
        if (!is_err && cl->lease_op == 1 && m.type == DDKV_MSG_LEASE) {
            ASSERT(msg_u64(&m, 0, &LS.id) == ERR_OK);
            /* Its countdown starts when the leader applies the grant: after the call. */
            LS.deadline_ns = cl->call_ns + LS.ttl_ms * NS_MS;
            LS.key_written = false;
            LS.grants++;
            trace("lease %" PRIu64 ": granted (ttl %" PRIu64 " ms, asked at %" PRIu64 " ms) by %s", LS.id, LS.ttl_ms,
                  cl->call_ns / NS_MS, nodes[cl->node].name);
            client_finish(cl, LIN_OK, NULL, false);
        } else if (!is_err && cl->lease_op == 2 && m.type == DDKV_MSG_WRITTEN_AT) {
            LS.key_written = true;
            trace("lease %" PRIu64 ": key attached", LS.id);
            client_finish(cl, LIN_OK, NULL, false);
        } else if (!is_err && cl->lease_op == 3 && m.type == DDKV_MSG_LEASE) {
            uint64_t d = cl->call_ns + LS.ttl_ms * NS_MS;
            LS.deadline_ns = d > LS.deadline_ns ? d : LS.deadline_ns;
            LS.keepalives++;
            trace("lease %" PRIu64 ": kept alive (asked at %" PRIu64 " ms) by %s", LS.id, cl->call_ns / NS_MS,
                  nodes[cl->node].name);
            client_finish(cl, LIN_OK, NULL, false);
        } else if (!is_err && cl->lease_op == 4 && m.type == DDKV_MSG_VALUE) {
            client_finish(cl, LIN_OK, NULL, false);
        } else if (is_err && code == DDKV_WERR_NOT_FOUND && (cl->lease_op == 3 || cl->lease_op == 4 ||
                                                              cl->lease_op == 2)) {
            /* The lease is gone (a keepalive or the attached write finds no
             * lease; a read finds no key). Only the read is evidence of a
             * revoke: a NOT_FOUND may come from a deposed leader that does
             * not know it yet and never had the lease in its table (the safe
             * direction: the holder stops early). The key must not be gone
             * before the deadline. */
            if (cl->lease_op == 4 && now_ns < LS.deadline_ns && !LS.bad[0] && LS.key_written)
                snprintf(LS.bad, sizeof LS.bad,
                         "lease %" PRIu64 " (ttl %" PRIu64 " ms) found gone by %s at %" PRIu64
                         " ms, %" PRIu64 " ms before the ttl after its last answered keepalive", LS.id,
                         LS.ttl_ms, cl->lease_op == 4 ? "a read" : cl->lease_op == 3 ? "a keepalive" : "a write",
                         now_ns / NS_MS, (LS.deadline_ns - now_ns) / NS_MS);
            trace("lease %" PRIu64 ": gone (%s, said %s, asked at %" PRIu64 " ms)", LS.id,
                  cl->lease_op == 4 ? "key absent" : "NOT_FOUND", nodes[cl->node].name, cl->call_ns / NS_MS);
            LS.id = 0;
            client_finish(cl, LIN_OK, NULL, false);
        } else {
            if (is_err && code == DDKV_WERR_NOT_LEADER)
                cl->hint = leader_hint(cl->node);
            client_retry(cl, (10 + below(40)) * NS_MS);
        }
    } else if (cl->auth_op) {
        bool is_err = m.type == DDKV_MSG_ERROR && msg_u64(&m, 0, &code) == ERR_OK;
        if (m.type == DDKV_MSG_AUTH_CHANGED) {
            trace("auth admin: step %d done", cl->auth_op);
            client_finish(cl, LIN_OK, NULL, false);
        } else {
            if (is_err && code == DDKV_WERR_NOT_LEADER)
                cl->hint = leader_hint(cl->node);
            const uint8_t *t = NULL;
            size_t tn = 0;
            if (is_err)
                (void)msg_bytes(&m, 1, &t, &tn);
            trace("auth admin: step %d at %s: %.*s", cl->auth_op, nodes[cl->node].name, (int)tn,
                  t ? (const char *)t : "");
            /* "exists already": a retry of a step whose session record a
             * snapshot or a session expiry dropped. Done either way. */
            if (is_err && code == DDKV_WERR_BAD_REQUEST && t && tn >= 14 && memmem(t, tn, "exists already", 14))
                client_finish(cl, LIN_OK, NULL, false);
            else
                client_retry(cl, (20 + below(80)) * NS_MS);
        }
    } else if (cl->member_op) {
        if (m.type == DDKV_MSG_MEMBER_CHANGED ||
            (m.type == DDKV_MSG_ERROR && msg_u64(&m, 0, &code) == ERR_OK && code == DDKV_WERR_NOT_FOUND &&
             cl->member_op == 1)) {
            trace("admin: %s %s done", cl->member_op == 1 ? "MEMBER_REMOVE" : "MEMBER_ADD", nodes[cl->key].name);
            client_finish(cl, LIN_OK, NULL, false);
        } else {
            if (m.type == DDKV_MSG_ERROR && code == DDKV_WERR_NOT_LEADER)
                cl->hint = leader_hint(cl->node);
            const uint8_t *t = NULL;
            size_t tn = 0;
            if (m.type == DDKV_MSG_ERROR)
                (void)msg_bytes(&m, 1, &t, &tn);
            trace("admin: %s %s at %s: %.*s", cl->member_op == 1 ? "MEMBER_REMOVE" : "MEMBER_ADD",
                  nodes[cl->key].name, nodes[cl->node].name, (int)tn, t ? (const char *)t : "");
            client_retry(cl, (20 + below(80)) * NS_MS);
        }
    } else if (m.type == DDKV_MSG_WRITTEN_AT && cl->is_write) {
        uint64_t rev = 0;
        ASSERT(msg_u64(&m, 1, &rev) == ERR_OK);
        if (cl->nwrites < NS_MAX_WRITES)
            acked_rev[cl->idx][cl->nwrites] = rev;
        cl->hint = cl->node;
        client_finish(cl, LIN_OK, NULL, false);
    } else if (m.type == DDKV_MSG_VALUE && !cl->is_write) {
        const uint8_t *v;
        size_t vn;
        ASSERT(msg_bytes(&m, 1, &v, &vn) == ERR_OK);
        char val[64];
        snprintf(val, sizeof val, "%.*s", (int)vn, (const char *)v);
        cl->hint = cl->node;
        client_finish(cl, LIN_OK, val, true);
    } else if (m.type == DDKV_MSG_ERROR && msg_u64(&m, 0, &code) == ERR_OK) {
        if (code == DDKV_WERR_NOT_FOUND && !cl->is_write) {
            cl->hint = cl->node;
            client_finish(cl, LIN_OK, NULL, false);
        } else {
            /* NOT_LEADER is a refusal before proposing; anything else may
             * have been proposed (a fence, a lost leadership, a timeout). */
            if (code != DDKV_WERR_NOT_LEADER && cl->is_write)
                cl->maybe_applied = true;
            if (code == DDKV_WERR_NOT_LEADER)
                cl->hint = leader_hint(cl->node);
            client_retry(cl, (10 + below(60)) * NS_MS);
        }
    } else {
        fprintf(stderr, "nodesim: unexpected reply type %u to client %d\n", m.type, cl->idx);
        abort();
    }
    msg_free(&m);
}

static void watch_bad(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void watch_bad(const char *fmt, ...)
{
    if (W.bad[0])
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(W.bad, sizeof W.bad, fmt, ap);
    va_end(ap);
}

static void watch_out(struct conn *c, const uint8_t *frame, size_t len, void *ctx)
{
    (void)c;
    (void)ctx;
    struct msg m;
    struct errbuf eb;
    ASSERT(msg_decode(&m, frame + 4, len - 4, &msg_limits_reply, &eb) == ERR_OK);
    uint64_t kind, rev, code;
    const uint8_t *k, *v;
    size_t kn, vn;
    if (m.request_id == (NS_AUTH_RID | W.rid) && W.open) {
        /* Signed in (or refused): the WATCH goes as an event of its own. */
        if (m.type == DDKV_MSG_AUTHED) {
            totals.auth_signins++;
            ev_push((struct ev){.t = now_ns, .kind = EV_WATCHGO, .node = W.node, .token = W.rid});
        } else {
            W.open = false;
            watch_schedule((10 + below(40)) * NS_MS);
        }
        msg_free(&m);
        return;
    }
    if (m.request_id != W.rid || !W.open) {
        msg_free(&m);
        return;
    }
    if (m.type == DDKV_MSG_EVENT) {
        ASSERT(msg_u64(&m, 0, &kind) == ERR_OK && msg_bytes(&m, 1, &k, &kn) == ERR_OK &&
               msg_bytes(&m, 2, &v, &vn) == ERR_OK && msg_u64(&m, 4, &rev) == ERR_OK);
        W.compacted_tries = 0;
        if (rev <= W.last_rev)
            watch_bad("event at revision %" PRIu64 " after one at %" PRIu64 " (duplicate or out of order)", rev,
                      W.last_rev);
        W.last_rev = rev;
        if (W.nev == W.cap) {
            W.cap = W.cap ? 2 * W.cap : 256;
            W.ev = realloc(W.ev, W.cap * sizeof *W.ev);
            ASSERT(W.ev);
        }
        struct wev *e = &W.ev[W.nev++];
        *e = (struct wev){.rev = rev, .key = kn == 2 ? k[1] - '0' : -1, .chain = W.chain};
        snprintf(e->val, sizeof e->val, "%.*s", (int)vn, (const char *)v);
        trace("watcher: event rev %" PRIu64 " %.*s=%s (%s)", rev, (int)kn, (const char *)k, e->val,
              kind == 1 ? "put" : "delete");
    } else if (m.type == DDKV_MSG_ERROR && msg_u64(&m, 0, &code) == ERR_OK && code == DDKV_WERR_COMPACTED) {
        /* This member's history does not reach back to where the chain is:
         * try another; when none does, a new chain starts. */
        W.open = false;
        W.compacted_tries++;
        trace("watcher: COMPACTED at %s (try %d)", nodes[W.node].name, W.compacted_tries);
        watch_schedule((10 + below(40)) * NS_MS);
    } else if (m.type == DDKV_MSG_ERROR && msg_u64(&m, 0, &code) == ERR_OK && code == DDKV_WERR_UNAUTHENTICATED &&
               AU.on) {
        /* Signed in before auth was enabled on that member: again. */
        W.open = false;
        watch_schedule((10 + below(40)) * NS_MS);
    } else {
        fprintf(stderr, "nodesim: unexpected reply type %u to the watcher\n", m.type);
        abort();
    }
    msg_free(&m);
}

/* The WATCH of the stream being opened, on W.c. */
static void watch_send(void)
{
    struct buf b = {0};
    struct msg_writer w;
    msg_begin(&w, &b, DDKV_MSG_WATCH, 0, W.rid, 2);
    mw_bin(&w, "k", 1);
    mw_u64(&w, W.from);
    ASSERT(msg_end(&w) == ERR_OK);
    trace("watcher: WATCH k from %" PRIu64 " at %s (chain %u)", W.from, nodes[W.node].name, W.chain);
    log_set_name(nodes[W.node].name);
    conn_take_frame(W.c, b.data + 4, b.len - 4);
    buf_free(&b);
    node_turn(&nodes[W.node]);
}

static void watch_open(void)
{
    if (W.open)
        return;
    if (W.c) {
        struct conn *c = W.c;
        W.c = NULL;
        conn_close_detached(c);
    }
    int up[NS_MAX_NODES], nup = 0;
    for (int i = 0; i < nnodes; i++)
        if (nodes[i].n && nodes[i].paused_until <= now_ns)
            up[nup++] = i;
    if (!nup) {
        watch_schedule(50 * NS_MS);
        return;
    }
    if (W.compacted_tries > 2 * nnodes && W.chain + 1 < 64) {
        W.chain++;
        W.last_rev = 0;
        W.compacted_tries = 0;
        trace("watcher: no member's history reaches back; a new chain");
    }
    W.node = up[below((uint64_t)nup)];
    struct node *n = nodes[W.node].n;
    uint64_t from = W.last_rev ? W.last_rev + 1 : 0;
    if (!W.last_rev && W.chain == 0)
        from = 1; /* the first chain: from the beginning */
    if (!W.last_rev)
        W.chain_from[W.chain] = from;
    W.c = conn_open_detached(n, "watcher", watch_out, NULL);
    ASSERT(W.c);
    W.rid++;
    W.open = true;
    W.from = from;
    if (AU.on) { /* sign in first: the WATCH goes once AUTHED */
        log_set_name(nodes[W.node].name);
        send_auth(W.c, NS_AUTH_RID | W.rid, "app", "apppw");
        node_turn(&nodes[W.node]);
        return;
    }
    watch_send();
}

/* The watcher's events against the acknowledged writes and each other. */
static bool watch_check(char *why, size_t cap)
{
    if (W.bad[0]) {
        snprintf(why, cap, "%s", W.bad);
        return false;
    }
    for (size_t i = 0; i < W.nev; i++) {
        const struct wev *e = &W.ev[i];
        int cid;
        uint64_t num;
        if (sscanf(e->val, "c%d-%" SCNu64, &cid, &num) != 2 || cid < 0 || (cid > NS_CLIENTS && cid != NS_INTRUDER) ||
            num == 0 ||
            num > clients[cid].nwrites) {
            snprintf(why, cap, "event at revision %" PRIu64 " carries %s, a value no client wrote", e->rev, e->val);
            return false;
        }
        if (num < NS_MAX_WRITES && e->key != acked_key[cid][num]) {
            snprintf(why, cap, "event at revision %" PRIu64 " puts %s on key k%d; it was written to k%d", e->rev,
                     e->val, e->key, acked_key[cid][num]);
            return false;
        }
        if (num < NS_MAX_WRITES && acked_rev[cid][num] && acked_rev[cid][num] != e->rev) {
            snprintf(why, cap, "write %s was acknowledged at revision %" PRIu64 " but its event is at %" PRIu64,
                     e->val, acked_rev[cid][num], e->rev);
            return false;
        }
    }
    /* Every acknowledged write inside a chain's span has its event. */
    for (uint32_t ch = 0; ch <= W.chain; ch++) {
        uint64_t lo = UINT64_MAX, hi = 0;
        for (size_t i = 0; i < W.nev; i++)
            if (W.ev[i].chain == ch) {
                lo = W.ev[i].rev < lo ? W.ev[i].rev : lo;
                hi = W.ev[i].rev > hi ? W.ev[i].rev : hi;
            }
        if (!hi)
            continue;
        if (W.chain_from[ch] && W.chain_from[ch] < lo)
            lo = W.chain_from[ch];
        for (int cid = 0; cid <= NS_INTRUDER; cid++)
            for (uint64_t num = 1; (cid <= NS_CLIENTS || cid == NS_INTRUDER) && num <= clients[cid].nwrites &&
                                   num < NS_MAX_WRITES;
                 num++) {
                uint64_t r = acked_rev[cid][num];
                if (!r || r < lo || r > hi)
                    continue;
                bool seen = false;
                for (size_t i = 0; i < W.nev && !seen; i++)
                    seen = W.ev[i].chain == ch && W.ev[i].rev == r;
                if (!seen) {
                    snprintf(why, cap,
                             "write c%d-%" PRIu64 " acknowledged at revision %" PRIu64
                             " is missing from the watch stream covering %" PRIu64 "..%" PRIu64 " (a gap)",
                             cid, num, r, lo, hi);
                    return false;
                }
            }
    }
    return true;
}

/* --- members: start, crash --- */
static void node_free(struct simnode *sn)
{
    struct node *n = sn->n;
    totals.snapshots += n->stats.snapshots_taken;
    totals.installs += n->stats.snapshots_installed;
    totals.rejoins += replica_recoveries(n);
    totals.duplicates += n->stats.duplicates;
    client_close_node(sn->idx);
    node_free_parts(n, false); /* a crash: the store closed as after a kill */
    free(n);
    sn->n = NULL;
    sn->gen++;
    for (int i = 0; i < NS_MAX_TIMERS; i++) {
        sn->timers[i].used = sn->timers[i].armed = false;
        sn->timers[i].token++;
    }
    sn->sync_in_flight = sn->sync_finished = false;
}

static int node_start(struct simnode *sn, struct errbuf *eb)
{
    struct node *n = calloc(1, sizeof *n);
    ASSERT(n);
    node_config_defaults(&n->cfg);
    n->cfg.name = sn->name;
    n->cfg.data_dir = sn->dir;
    n->cfg.cluster = sn->joined ? NULL : cluster_spec;
    n->cfg.join = sn->joined;
    n->cfg.peer_addr = sn->peer_addr;
    n->cfg.client_addr = "127.0.0.1:1";
    n->cfg.snapshot_entries = snapshot_entries;
    n->cfg.heartbeat_ms = heartbeat_ms;
    n->cfg.election_timeout_ms = 10 * heartbeat_ms;
    n->io = &sim_io;
    n->io_ctx = sn;
    n->modules = sim_modules;
    n->nmodules = sizeof sim_modules / sizeof sim_modules[0];
    n->started_ms = clock_wall_ms();
    if (node_parts_new(n) != ERR_OK) {
        fprintf(stderr, "nodesim: out of memory\n");
        abort();
    }
    for (int i = 0; i < DDKV_MSG_TYPE_MAX; i++)
        hist_init(&n->h_req[i]);
    sn->n = n;
    sn->gen++;
    log_set_name(sn->name);
    struct store_options so = {0};
    int rc = store_open(&n->st, sn->dir, &so, eb);
    if (!rc)
        rc = replica_load_state(n, eb);
    if (!rc) {
        dispatcher_init(&n->disp);
        rc = modules_init(n, eb);
    }
    if (!rc)
        rc = cluster_load(n, eb);
    if (!rc)
        rc = replica_start(n, eb);
    if (rc) {
        node_free(sn);
        return rc;
    }
    sim_log_reloaded(n);
    return ERR_OK;
}

static void node_crash(struct simnode *sn)
{
    node_free(sn);
    size_t unsynced = memdisk_unsynced(sn->disk);
    size_t keep = (size_t)below(unsynced + 1);
    enum memdisk_tear tear = keep >= 2 && pct(10) ? MEMDISK_TEAR_MIDDLE : MEMDISK_TEAR_NONE;
    memdisk_crash(sn->disk, keep, tear);
    sn->crashes++;
    totals.crashes++;
    trace("%s: CRASH (kept %zu of %zu unsynced writes%s)", sn->name, keep, unsynced,
          tear ? ", one torn in the middle" : "");
}

static void node_restart(struct simnode *sn)
{
    struct errbuf eb = {{0}};
    int rc = node_start(sn, &eb);
    if (rc == ERR_CORRUPT) {
        /* A torn record with whole ones after it: refused, never served. */
        sn->refused = true;
        totals.refused++;
        trace("%s: refused at restart (damaged disk): %s", sn->name, eb.msg);
        member_rebuild(sn->idx);
        return;
    }
    if (rc) {
        fprintf(stderr, "nodesim: %s cannot restart: %s\n", sn->name, eb.msg);
        abort();
    }
    trace("%s: restarted", sn->name);
}

static int rm_one(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb;
    (void)flag;
    if (ftw->level > 0)
        remove(path);
    return 0;
}

/* --- the job workers' steps --- */
static void job_op_start(struct client *cl, int op)
{
    cl->busy = true;
    cl->job_op = op;
    cl->is_write = false;
    cl->attempts = 0;
    cl->call_ns = now_ns;
    if (op != 2)
        cl->job_seq++; /* a new PUT or ACK; a retry keeps its seq */
    client_attempt(cl);
}

static void job_step(struct client *cl, bool ok)
{
    cl->busy = false;
    if (!faults_on)
        return;
    if (cl->job_op == 2 && ok && cl->job_id[0]) {
        /* Work on it: sometimes past the claim's visibility, so that it
         * expires and another worker may claim it. */
        cl->job_op = 3;
        cl->busy = true;
        ev_push((struct ev){.t = now_ns + below(300) * NS_MS, .kind = EV_JSTEP, .from = cl->idx, .slot = 3});
        return;
    }
    if (pct(30))
        job_op_start(cl, 1);
    else
        job_op_start(cl, 2);
}

static bool jobs_check(char *why, size_t cap)
{
    for (size_t i = 0; i < njacks; i++) {
        const struct jrec *a = &jacks[i];
        for (size_t j = 0; j < njclaims; j++) {
            const struct jrec *c = &jclaims[j];
            if (!strcmp(c->id, a->id) && c->token > a->token && c->t < a->t) {
                snprintf(why, cap,
                         "job %.60s settled by worker %d's ack with token %" PRIu64 ", sent at %" PRIu64
                         " ms after worker %d had claimed it with token %" PRIu64 " (at %" PRIu64 " ms)",
                         a->id, a->worker, a->token, a->t / NS_MS, c->worker, c->token, c->t / NS_MS);
                return false;
            }
        }
        for (size_t j = 0; j < i; j++)
            if (!strcmp(jacks[j].id, a->id) && jacks[j].token != a->token) {
                snprintf(why, cap, "job %.60s settled twice: tokens %" PRIu64 " and %" PRIu64, a->id, jacks[j].token,
                         a->token);
                return false;
            }
    }
    return true;
}

/* --- the lease holder's steps --- */
static void lease_op_start(int op, uint64_t delay)
{
    struct client *cl = &clients[NS_LEASEC];
    (void)delay;
    cl->busy = true;
    cl->lease_op = op;
    cl->is_write = false;
    cl->attempts = 0;
    cl->call_ns = now_ns;
    client_attempt(cl);
}

static void lease_step(bool ok)
{
    struct client *cl = &clients[NS_LEASEC];
    cl->busy = false;
    if (!faults_on)
        return; /* winding down */
    int op = cl->lease_op;
    if (!LS.id) {
        LS.ttl_ms = 200 + 50 * below(8);
        lease_op_start(1, 0);
        return;
    }
    if (!ok && op == 3) {
        lease_op_start(3, 0);
        return;
    }
    if (op == 1 || (op == 2 && !ok)) {
        lease_op_start(2, 0);
        return;
    }
    /* Keep it alive (a third of the ttl apart), reading its key between, or
     * sometimes let it lapse. */
    if (faults_on && pct(3)) {
        trace("lease %" PRIu64 ": let lapse", LS.id);
        LS.id = 0;
        ev_push((struct ev){.t = now_ns + (LS.ttl_ms + 50) * NS_MS, .kind = EV_LSTEP, .slot = 1});
        return;
    }
    cl->lease_op = op == 3 ? 4 : 3;
    cl->busy = true;
    ev_push((struct ev){.t = now_ns + LS.ttl_ms / 6 * NS_MS, .kind = EV_LSTEP, .slot = 3});
}

/* --- membership: a member removed, wiped and added back empty --- */
static void member_op_start(int op, int idx)
{
    struct client *cl = &clients[NS_ADMIN];
    cl->busy = true;
    cl->member_op = op;
    cl->is_write = false;
    cl->key = idx;
    cl->attempts = 0;
    cl->call_ns = now_ns;
    client_attempt(cl);
}

static void member_rebuild(int idx)
{
    if (rebuild_target >= 0)
        return;
    rebuild_target = idx;
    rebuild_phase = 1;
    rebuilds++;
    trace("admin: rebuilding %s: MEMBER_REMOVE, wipe, start empty with --join, MEMBER_ADD", nodes[idx].name);
    member_op_start(1, idx);
}

static void member_step(bool ok)
{
    struct simnode *sn = &nodes[rebuild_target];
    if (!ok) {
        member_op_start(rebuild_phase, rebuild_target); /* again */
        return;
    }
    if (rebuild_phase == 1) {
        if (sn->n)
            node_free(sn);
        memdisk_register(sn->dir, NULL);
        memdisk_free(sn->disk);
        sn->disk = memdisk_new();
        memdisk_register(sn->dir, sn->disk);
        nftw(sn->dir, rm_one, 8, FTW_DEPTH | FTW_PHYS);
        sn->refused = false;
        sn->joined = true;
        struct errbuf eb = {{0}};
        if (node_start(sn, &eb)) {
            fprintf(stderr, "nodesim: %s cannot start empty: %s\n", sn->name, eb.msg);
            abort();
        }
        trace("%s: started empty, waiting to be added", sn->name);
        rebuild_phase = 2;
        member_op_start(2, rebuild_target);
        return;
    }
    if (rebuild_phase == 2) {
        /* MEMBER_CHANGED is a promise: the leader's configuration has it. */
        struct simnode *l = leader_node();
        if (l && !raft_conf_has(raft_get_conf(l->n->raft), sn->id) && !admin_bad[0])
            snprintf(admin_bad, sizeof admin_bad,
                     "MEMBER_ADD %s was answered done, but the leader %s's configuration lacks it", sn->name,
                     l->name);
        /* Added: it must now take the log. If the cluster refuses it (its
         * removal was not in effect when it was wiped, so the data dir the
         * cluster recorded is gone), the operator's way out is to remove and
         * add it again: so does the admin. */
        rebuild_phase = 3;
        ev_push((struct ev){.t = now_ns + 3000 * NS_MS, .kind = EV_MSTEP, .slot = 2});
        return;
    }
    if (!sn->n || sn->n->sm.applied_index == 0) {
        trace("admin: %s was added but took nothing: removing and adding it again", sn->name);
        rebuild_phase = 1;
        member_op_start(1, rebuild_target);
        return;
    }
    trace("admin: %s rebuilt", sn->name);
    rebuild_target = -1;
    rebuild_phase = 0;
    for (int i = 0; i < nnodes; i++)
        if (nodes[i].refused) {
            member_rebuild(i);
            break;
        }
}

/* --- faults --- */
static int impaired(void)
{
    int k = 0;
    for (int i = 0; i < nnodes; i++) {
        struct simnode *sn = &nodes[i];
        bool cutoff = false;
        for (int j = 0; j < nnodes; j++)
            cutoff |= cut[i][j] || cut[j][i];
        k += !sn->n || sn->paused_until > now_ns || sn->full_until > now_ns || sn->eio_until > now_ns || cutoff ||
             rebuild_target == i;
    }
    return k;
}

/* The leader of the highest term (a deposed one may not know it yet). */
static struct simnode *leader_node(void)
{
    struct simnode *best = NULL;
    uint64_t best_term = 0;
    for (int i = 0; i < nnodes; i++) {
        struct node *n = nodes[i].n;
        if (!n || !n->raft)
            continue;
        struct raft_status st;
        raft_status(n->raft, &st);
        if (st.role == RAFT_LEADER && st.term > best_term) {
            best = &nodes[i];
            best_term = st.term;
        }
    }
    return best;
}

static void fault_step(void)
{
    int room = (nnodes - 1) / 2 - impaired();
    struct simnode *sn = &nodes[below((uint64_t)nnodes)];
    uint64_t span = (100 + below(1200)) * NS_MS;
    unsigned f = (unsigned)below(100);
    if (room > 0 && sn->n && f < 25) {
        node_crash(sn);
        sn->restart_at = now_ns + span;
        ev_push((struct ev){.t = sn->restart_at, .kind = EV_HEAL, .node = sn->idx, .slot = 1});
    } else if (room > 0 && sn->n && f < 40) {
        sn->paused_until = now_ns + span;
        trace("%s: PAUSED for %" PRIu64 " ms", sn->name, span / NS_MS);
    } else if (room > 0 && f < 55) {
        for (int j = 0; j < nnodes; j++) {
            bool both = pct(70);
            if (j != sn->idx) {
                cut[sn->idx][j] = true;
                cut[j][sn->idx] = both;
            }
        }
        trace("%s: PARTITIONED for %" PRIu64 " ms", sn->name, span / NS_MS);
        ev_push((struct ev){.t = now_ns + span, .kind = EV_HEAL, .node = sn->idx, .slot = 2});
    } else if (room > 0 && sn->n && f < 65) {
        /* Counted as impaired while the fence it causes may last. */
        sn->eio_until = now_ns + 1000 * NS_MS;
        memdisk_fail_next_sync(sn->disk, pct(50));
        sn->syncs_failed++;
        totals.syncs_failed++;
        trace("%s: the next log sync fails (EIO)", sn->name);
    } else if (room > 0 && sn->n && f < 72) {
        memdisk_set_full(sn->disk, true);
        sn->full_until = now_ns + span;
        trace("%s: DISK FULL for %" PRIu64 " ms", sn->name, span / NS_MS);
        ev_push((struct ev){.t = sn->full_until, .kind = EV_HEAL, .node = sn->idx, .slot = 3});
    } else if (room > 0 && f < 86 && f >= 82 && rebuild_target < 0) {
        member_rebuild(sn->idx);
    } else if (f < 82) {
        struct simnode *l = leader_node();
        if (l && sn != l && sn->n) {
            trace("%s: leadership transfer to %s", l->name, sn->name);
            (void)raft_transfer_leadership(l->n->raft, sn->id);
            node_turn(l);
        }
    }
}

static void heal_all(void)
{
    memset(cut, 0, sizeof cut);
    for (int i = 0; i < nnodes; i++) {
        struct simnode *sn = &nodes[i];
        sn->paused_until = 0;
        if (sn->full_until) {
            memdisk_set_full(sn->disk, false);
            sn->full_until = 0;
        }
        if (!sn->n && !sn->refused)
            node_restart(sn);
    }
}

/* --- the run --- */
/* The auth admin's setup step `step` (1..NS_AUTH_STEPS); again: a retry
 * of the same step, in the same session sequence. */
static void auth_step_start(int step, bool again)
{
    struct client *cl = &clients[NS_AUTHC];
    cl->auth_op = step;
    cl->busy = true;
    if (!again)
        cl->seq++;
    cl->attempts = 0;
    cl->maybe_applied = false;
    cl->call_ns = now_ns;
    client_attempt(cl);
}

static void handle(struct ev *e)
{
    if (e->kind == EV_FAULT) {
        if (faults_on) {
            fault_step();
            ev_push((struct ev){.t = now_ns + (50 + below(300)) * NS_MS, .kind = EV_FAULT});
        }
        return;
    }
    if (e->kind == EV_HEAL) {
        struct simnode *sn = &nodes[e->node];
        if (e->slot == 1 && !sn->n && !sn->refused && sn->restart_at == e->t)
            node_restart(sn);
        else if (e->slot == 2) {
            for (int j = 0; j < nnodes; j++)
                cut[sn->idx][j] = cut[j][sn->idx] = false;
            trace("%s: partition healed", sn->name);
        } else if (e->slot == 3 && sn->full_until == e->t) {
            memdisk_set_full(sn->disk, false);
            sn->full_until = 0;
            trace("%s: disk has room again", sn->name);
        }
        return;
    }
    if (e->kind == EV_JSTEP) {
        struct client *cl = &clients[e->from];
        if (e->slot == 3) { /* the work is done: acknowledge it */
            cl->busy = false;
            if (faults_on)
                job_op_start(cl, 3);
            return;
        }
        job_step(cl, e->slot != 0);
        return;
    }
    if (e->kind == EV_LSTEP) {
        if (e->slot == 3) { /* the pause between keepalives is over */
            if (!faults_on) {
                clients[NS_LEASEC].busy = false;
                return;
            }
            lease_op_start(clients[NS_LEASEC].lease_op, 0);
            return;
        }
        lease_step(e->slot != 0);
        return;
    }
    if (e->kind == EV_MSTEP) {
        if (e->slot != 2)
            clients[NS_ADMIN].busy = false;
        member_step(e->slot != 0);
        return;
    }
    if (e->kind == EV_WATCH) {
        watch_open();
        return;
    }
    if (e->kind == EV_ASTEP) {
        struct client *cl = &clients[NS_AUTHC];
        cl->busy = false;
        if (e->slot == 3) { /* the pause between grant and revoke is over */
            if (faults_on)
                auth_step_start(cl->auth_op == NS_AUTH_SETUP + 1 ? NS_AUTH_SETUP + 2 : NS_AUTH_SETUP + 1, false);
            else
                cl->auth_op = 0;
        } else if (e->slot == 0) { /* no answer in time: the same step again */
            auth_step_start(cl->auth_op, true);
        } else if (cl->auth_op > NS_AUTH_SETUP) {
            AU.toggles++;
            cl->busy = true; /* until the pause is over */
            ev_push((struct ev){.t = now_ns + (30 + below(300)) * NS_MS, .kind = EV_ASTEP, .slot = 3});
        } else if (cl->auth_op == NS_AUTH_SETUP) {
            AU.enabled = true;
            trace("auth admin: auth enabled (acknowledged)");
            /* The moment that matters: the leader that applied it goes at
             * once, before the others learn it committed; the intruder
             * tries the next leader as it takes over. */
            struct simnode *l = &nodes[cl->node];
            if (faults_on && l->n && (nnodes - 1) / 2 - impaired() > 0 && pct(50)) {
                node_crash(l);
                l->restart_at = now_ns + (100 + below(1000)) * NS_MS;
                ev_push((struct ev){.t = l->restart_at, .kind = EV_HEAL, .node = l->idx, .slot = 1});
            }
            ev_push((struct ev){.t = now_ns + below(5) * NS_MS, .kind = EV_ISTEP});
            cl->busy = true; /* until the pause is over: then the grants and revokes */
            ev_push((struct ev){.t = now_ns + (30 + below(300)) * NS_MS, .kind = EV_ASTEP, .slot = 3});
        } else {
            auth_step_start(cl->auth_op + 1, false);
        }
        return;
    }
    if (e->kind == EV_ISTEP) {
        struct client *cl = &clients[NS_INTRUDER];
        if (cl->busy || !faults_on || !AU.enabled)
            return;
        cl->intrude = true;
        AU.intrusions++;
        client_start_op(cl, true, (int)below(NS_KEYS));
        return;
    }
    if (e->kind == EV_CTICK) {
        struct client *cl = &clients[e->node];
        if (cl->busy || !faults_on)
            return;
        /* Two draws, in this order (an argument list's order is the
         * compiler's: the same seed must replay the same in every build). */
        bool write = pct(50);
        int key = (int)below(NS_KEYS);
        client_start_op(cl, write, key);
        return;
    }
    if (e->kind == EV_CTIMEOUT) {
        struct client *cl = &clients[e->from];
        if (!cl->busy || e->token != cl->token)
            return;
        if (e->slot == 0 && cl->is_write)
            cl->maybe_applied = true; /* no answer in time: it may have applied */
        if (e->slot == 0) {
            cl->hint = -1;
            cl->silent = cl->node;
        }
        client_attempt(cl);
        return;
    }
    struct simnode *sn = &nodes[e->node];
    /* A paused member does nothing until it resumes: its events wait. */
    if (sn->paused_until > now_ns && sn->n) {
        e->t = sn->paused_until;
        ev_push(*e);
        e->data = NULL;
        return;
    }
    struct node *n = sn->n;
    log_set_name(sn->name);
    if (e->kind == EV_TIMER) {
        if (!n || e->gen != sn->gen)
            return;
        struct node_timer *t = &sn->timers[e->slot];
        if (!t->used || !t->armed || t->token != e->token)
            return;
        if (t->repeat)
            ev_push((struct ev){.t = now_ns + (uint64_t)t->ms * NS_MS, .kind = EV_TIMER, .node = sn->idx,
                                .gen = sn->gen, .slot = t->slot, .token = t->token});
        else
            t->armed = false;
        t->fn(n);
        node_turn(sn);
    } else if (e->kind == EV_SYNC) {
        if (!n || e->gen != sn->gen || e->token != sn->sync_token || !sn->sync_in_flight || sn->sync_finished)
            return;
        sio_do_sync(sn);
        node_turn(sn);
    } else if (e->kind == EV_MSG) {
        if (!n || cut[e->from][e->node])
            return;
        struct msg m;
        struct errbuf eb;
        static const struct mpcheck_limits lim = {.max_depth = 8, .max_objects = 1u << 19};
        if (msg_decode(&m, e->data + 4, e->len - 4, &lim, &eb) != ERR_OK) {
            fprintf(stderr, "nodesim: undecodable peer frame: %s\n", eb.msg);
            abort();
        }
        struct raft_msg rm;
        ASSERT(raft_msg_decode(&m, &rm) == ERR_OK);
        ASSERT(rm.to == sn->id);
        /* The amnesia guard the peer hello applies: a sender whose data dir
         * is not the one this member's state machine recorded is refused. */
        if (!cluster_incarnation_ok(n, rm.from, nodes[e->from].name, e->token)) {
            raft_msg_release(&rm);
            msg_free(&m);
            return;
        }
        (void)lamport_observe_member(&n->clock, m.lamport, clock_mono_ms());
        const struct dispatch_entry *de = dispatcher_lookup(&n->disp, m.type);
        ASSERT(de && de->peer_fn);
        de->peer_fn(de->ctx, &rm);
        raft_msg_release(&rm);
        msg_free(&m);
        node_turn(sn);
    } else if (e->kind == EV_CREQ) {
        struct client *cl = &clients[e->from];
        if (!n)
            return; /* the attempt times out */
        if (!cl->conns[sn->idx] || cl->conn_gen[sn->idx] != sn->gen) {
            char peer[32];
            snprintf(peer, sizeof peer, "client%d", cl->idx);
            cl->conns[sn->idx] = conn_open_detached(n, peer, client_out, cl);
            ASSERT(cl->conns[sn->idx]);
            cl->conn_gen[sn->idx] = sn->gen;
            cl->auth_st[sn->idx] = 0;
        }
        if (AU.on && cl->auth_st[sn->idx] != 2) {
            /* Sign in first; the request waits for the answer. */
            free(cl->stash[sn->idx]);
            cl->stash[sn->idx] = e->data;
            cl->stash_len[sn->idx] = e->len;
            e->data = NULL;
            if (cl->auth_st[sn->idx] == 0) {
                cl->auth_st[sn->idx] = 1;
                client_auth(cl, sn->idx);
            }
            node_turn(sn);
            return;
        }
        conn_take_frame(cl->conns[sn->idx], e->data + 4, e->len - 4);
        node_turn(sn);
    } else if (e->kind == EV_CSTASH) {
        /* Signed in on this member: the request that waited goes now. */
        struct client *cl = &clients[e->from];
        uint8_t *f = cl->stash[sn->idx];
        cl->stash[sn->idx] = NULL;
        if (!n || !f || !cl->conns[sn->idx] || cl->conn_gen[sn->idx] != sn->gen || cl->auth_st[sn->idx] != 2) {
            free(f);
            return;
        }
        conn_take_frame(cl->conns[sn->idx], f + 4, cl->stash_len[sn->idx] - 4);
        free(f);
        node_turn(sn);
    } else if (e->kind == EV_WORK) {
        if (!n || e->gen != sn->gen)
            return;
        sim_pool_turn(sn);
        node_turn(sn);
    } else if (e->kind == EV_WATCHGO) {
        if (!n || !W.open || !W.c || W.node != sn->idx || e->token != W.rid)
            return;
        watch_send();
    }
}

static bool run_until(uint64_t t_end, bool (*done)(void))
{
    while (nheap && heap[0].t <= t_end) {
        struct ev e = ev_pop();
        now_ns = e.t;
        handle(&e);
        free(e.data);
        if (done && done())
            return true;
    }
    now_ns = t_end;
    return done ? done() : true;
}

static bool clients_idle(void)
{
    for (int i = 0; i <= NS_ADMIN; i++)
        if (clients[i].busy)
            return false;
    return rebuild_target < 0 && !clients[NS_LEASEC].busy && !clients[NS_JOBC].busy && !clients[NS_JOBC + 1].busy &&
           !clients[NS_AUTHC].busy && !clients[NS_INTRUDER].busy;
}

static uint64_t applied_max(void)
{
    uint64_t m = 0;
    for (int i = 0; i < nnodes; i++)
        if (nodes[i].n && nodes[i].n->sm.applied_index > m)
            m = nodes[i].n->sm.applied_index;
    return m;
}

static bool members_caught_up(void)
{
    struct simnode *l = leader_node();
    if (!l)
        return false;
    struct raft_status st;
    raft_status(l->n->raft, &st);
    for (int i = 0; i < nnodes; i++) {
        struct node *n = nodes[i].n;
        if (nodes[i].refused)
            continue;
        if (!n || replica_fenced(n) || n->sm.applied_index < st.commit || replica_syncing(n) || replica_installing(n))
            return false;
    }
    return W.open && W.c && nodes[W.node].n;
}

static bool fail(uint64_t seed, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static bool fail(uint64_t seed, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "nodesim: seed %" PRIu64 " FAILED: ", seed);
    vfprintf(stderr, fmt, ap);
    for (int i = 0; i < nnodes; i++) {
        struct node *n = nodes[i].n;
        if (!n || !n->raft) {
            fprintf(stderr, "\n  %s: %s", nodes[i].name, nodes[i].refused ? "refused (damaged disk)" : "down");
            continue;
        }
        struct raft_status st;
        raft_status(n->raft, &st);
        fprintf(stderr,
                "\n  %s: %s term %" PRIu64 " commit %" PRIu64 " applied %" PRIu64 " (sm %" PRIu64 ") log %" PRIu64
                "..%" PRIu64 " storage_failed %d syncing %d installing %d",
                nodes[i].name, raft_role_name(st.role), st.term, st.commit, st.applied, n->sm.applied_index,
                st.first_index, st.last_index, replica_fenced(n), replica_syncing(n), replica_installing(n));
    }
    fprintf(stderr, "\n  replay: DDKV_SEED=%" PRIu64 " DDKV_NODESIM_TRACE=1 nodesim --nodes %d\n", seed, nnodes);
    va_end(ap);
    return false;
}

/* The members' data column families, key by key. */
static bool members_equal(uint64_t seed)
{
    struct simnode *ref = NULL;
    for (int i = 0; i < nnodes; i++) {
        if (!nodes[i].n)
            continue;
        if (!ref) {
            ref = &nodes[i];
            continue;
        }
        struct store_iter *a = store_iter_new(ref->n->st, STORE_CF_DATA, NULL, 0);
        struct store_iter *b = store_iter_new(nodes[i].n->st, STORE_CF_DATA, NULL, 0);
        store_iter_seek(a, "", 0);
        store_iter_seek(b, "", 0);
        bool same = true;
        while (same && store_iter_valid(a) && store_iter_valid(b)) {
            size_t ak, bk, av, bv;
            const uint8_t *ka = store_iter_key(a, &ak), *kb = store_iter_key(b, &bk);
            const uint8_t *va = store_iter_value(a, &av), *vb = store_iter_value(b, &bv);
            same = ak == bk && av == bv && !memcmp(ka, kb, ak) && !memcmp(va, vb, av);
            store_iter_next(a);
            store_iter_next(b);
        }
        same = same && !store_iter_valid(a) && !store_iter_valid(b);
        store_iter_free(a);
        store_iter_free(b);
        if (!same)
            return fail(seed, "members %s and %s hold different data at applied index %" PRIu64 "/%" PRIu64,
                        ref->name, nodes[i].name, ref->n->sm.applied_index, nodes[i].n->sm.applied_index);
    }
    return true;
}


/* A PANIC (an assertion in the node) aborts: say which seed. */
static char abort_msg[160];
static size_t abort_len;
static void on_abort(int sig)
{
    (void)sig;
    if (abort_len)
        (void)!write(2, abort_msg, abort_len);
    signal(SIGABRT, SIG_DFL);
}

static bool run_seed(uint64_t seed)
{
    rng_s = seed * UINT64_C(0x2545F4914F6CDD1D) + 1;
    now_ns = 0;
    ev_seq = 0;
    memset(cut, 0, sizeof cut);
    drop_pct = (unsigned)below(8);
    dup_pct = (unsigned)below(5);
    snapshot_entries = pct(50) ? 20 + (uint32_t)below(40) : 10000;
    heartbeat_ms = 20 + 10 * (uint32_t)below(4);
    nhist = 0;
    size_t o = 0;
    for (int i = 0; i < nnodes; i++) {
        struct simnode *sn = &nodes[i];
        memset(sn, 0, sizeof *sn);
        sn->idx = i;
        snprintf(sn->name, sizeof sn->name, "n%d", i + 1);
        snprintf(sn->dir, sizeof sn->dir, "%s/%s", base_dir, sn->name);
        nftw(sn->dir, rm_one, 8, FTW_DEPTH | FTW_PHYS);
        sn->id = cluster_node_id(sn->name);
        snprintf(sn->peer_addr, sizeof sn->peer_addr, "127.0.0.1:%d", 7100 + i);
        sn->disk = memdisk_new();
        memdisk_register(sn->dir, sn->disk);
        o += (size_t)snprintf(cluster_spec + o, sizeof cluster_spec - o, "%s%s=127.0.0.1:%d", i ? "," : "",
                              sn->name, 7100 + i);
    }
    rebuild_target = -1;
    rebuild_phase = 0;
    admin_bad[0] = 0;
    durable_bad[0] = 0;
    memset(&LS, 0, sizeof LS);
    njclaims = njacks = 0;
    memset(&AU, 0, sizeof AU);
    AU.on = below(3) == 0;
    totals.auth_seeds += AU.on;
    for (int i = 0; i < NS_ALLC; i++) {
        for (int j = 0; j < NS_MAX_NODES; j++)
            free(clients[i].stash[j]);
        memset(&clients[i], 0, sizeof clients[i]);
        clients[i].idx = i;
        clients[i].hint = clients[i].silent = -1;
        clients[i].user = i == NS_ADMIN || i == NS_AUTHC ? "root" : i == NS_INTRUDER ? "ro" : "app";
        clients[i].password = i == NS_ADMIN || i == NS_AUTHC ? "rootpw" : i == NS_INTRUDER ? "ropw" : "apppw";
    }
    free(W.ev);
    memset(&W, 0, sizeof W);
    memset(acked_rev, 0, sizeof acked_rev);
    faults_on = true;
    for (int i = 0; i < nnodes; i++) {
        struct errbuf eb = {{0}};
        if (node_start(&nodes[i], &eb)) {
            fprintf(stderr, "nodesim: cannot start %s: %s\n", nodes[i].name, eb.msg);
            abort();
        }
    }
    trace("seed %" PRIu64 ": %d members, drop %u%%, duplicate %u%%, snapshot every %u entries, heartbeat %u ms",
          seed, nnodes, drop_pct, dup_pct, snapshot_entries, heartbeat_ms);
    for (int i = 0; i < NS_CLIENTS; i++)
        client_schedule(&clients[i], (200 + below(300)) * NS_MS);
    ev_push((struct ev){.t = (300 + below(500)) * NS_MS, .kind = EV_FAULT});
    watch_schedule((50 + below(200)) * NS_MS);
    ev_push((struct ev){.t = (100 + below(300)) * NS_MS, .kind = EV_LSTEP, .slot = 1});
    for (int w = NS_JOBC; w < NS_JOBC + 2; w++)
        ev_push((struct ev){.t = (100 + below(300)) * NS_MS, .kind = EV_JSTEP, .from = w, .slot = 0});
    if (AU.on) {
        trace("auth: on (the admin sets up users and roles, then enables it)");
        auth_step_start(1, false);
    }
    bool ok = true;
    run_until(NS_RUN_MS * NS_MS, NULL);
    /* Heal: no more faults or new operations; the operations in flight end. */
    faults_on = false;
    heal_all();
    trace("--- faults healed ---");
    uint64_t t_end = now_ns + NS_SETTLE_MS * NS_MS;
    bool idle = run_until(t_end, clients_idle);
    if (durable_bad[0]) /* the cause of whatever else went wrong */
        ok = fail(seed, "%s", durable_bad);
    else if (!idle)
        ok = fail(seed, "client operations still unanswered %d ms after the faults healed", NS_SETTLE_MS);
    /* No acknowledged write lost: a final read of every key, recorded. */
    for (int k = 0; ok && k < NS_KEYS; k++) {
        struct client *cl = &clients[NS_READER];
        client_start_op(cl, false, k);
        if (!run_until(now_ns + NS_SETTLE_MS * NS_MS, clients_idle))
            ok = fail(seed, "the final read of %s did not complete", keys_s[k]);
    }
    /* A known liveness gap of the amnesia guard (reported, not hidden): a
     * member whose log is behind a re-add still holds the member's old
     * incarnation and refuses it; if that member leads, the lagging one never
     * catches up. The operator's way out, a leadership transfer, is taken
     * here, and counted. */
    if (ok && !run_until(now_ns + 3000 * NS_MS, members_caught_up)) {
        struct simnode *l = leader_node();
        for (int i = 0; l && i < nnodes; i++) {
            struct node *m = nodes[i].n;
            if (!m || &nodes[i] == l || cluster_incarnation_ok(m, l->id, l->name, cluster_incarnation(l->n)))
                continue;
            for (int j = 0; j < nnodes; j++)
                if (&nodes[j] != l && j != i && nodes[j].n &&
                    raft_conf_is_voter(raft_get_conf(l->n->raft), nodes[j].id) &&
                    raft_transfer_leadership(l->n->raft, nodes[j].id) == ERR_OK) {
                    totals.guard_stalls++;
                    trace("%s refuses the leader %s (an incarnation its log has not caught up with): leadership "
                          "moved to %s",
                          nodes[i].name, l->name, nodes[j].name);
                    node_turn(l);
                    break;
                }
            break;
        }
    }
    if (ok && !run_until(now_ns + NS_SETTLE_MS * NS_MS, members_caught_up))
        ok = fail(seed, "members did not catch up with the leader (applied max %" PRIu64 ")", applied_max());
    if (ok) {
        struct lin_report r;
        if (lin_check(hist, nhist, &r) != 0)
            ok = fail(seed, "linearizability check gave up: %s", r.why);
        else if (!r.linearizable)
            ok = fail(seed, "history not linearizable on key %s: %s (client %d, line %zu)", r.key, r.why,
                      r.stuck.client, r.stuck.line);
    }
    if (ok)
        ok = members_equal(seed);
    if (ok && admin_bad[0])
        ok = fail(seed, "membership: %s", admin_bad);
    if (ok && durable_bad[0])
        ok = fail(seed, "%s", durable_bad);
    if (ok && AU.bad[0])
        ok = fail(seed, "auth: %s", AU.bad);
    if (ok && AU.on && !AU.enabled)
        ok = fail(seed, "auth: the setup was never acknowledged");
    /* From cluster version 0.2 on, clients' writes carry their auth rev. */
    if (ok && AU.cv_index && applied_max() > AU.cv_index + 100 && !AU.enveloped)
        ok = fail(seed, "auth: the cluster version is 0.2 from index %" PRIu64 " to %" PRIu64
                        ", yet no client write carried the auth rev it was admitted under",
                  AU.cv_index, applied_max());
    totals.intrusions_denied += AU.denied;
    if (ok && LS.bad[0])
        ok = fail(seed, "lease expired early: %s", LS.bad);
    totals.jobs_claimed += njclaims;
    totals.jobs_done += njacks;
    totals.leases_granted += LS.grants;
    totals.keepalives += LS.keepalives;
    char jwhy[300];
    if (ok && !jobs_check(jwhy, sizeof jwhy))
        ok = fail(seed, "job claims not fenced: %s", jwhy);
    char why[300];
    if (ok && !watch_check(why, sizeof why))
        ok = fail(seed, "watch stream: %s", why);
    if (ok)
        trace("seed %" PRIu64 " passed: %zu operations, applied %" PRIu64, seed, nhist, applied_max());
    /* Tear down: members stop as in a crash, disks are freed. */
    heap_clear();
    for (int i = 0; i < nnodes; i++) {
        if (nodes[i].n)
            node_free(&nodes[i]);
        memdisk_register(nodes[i].dir, NULL);
        memdisk_free(nodes[i].disk);
    }
    for (size_t i = 0; i < nhist; i++)
        free((char *)hist[i].value);
    return ok;
}

static int rm_all(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb;
    (void)flag;
    (void)ftw;
    remove(path);
    return 0;
}

int main(int argc, char **argv)
{
    uint64_t first = 1, count = 100;
    bool quiet = false;
    nnodes = 3;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--first") && i + 1 < argc)
            first = strtoull(argv[++i], NULL, 10);
        else if (!strcmp(argv[i], "--count") && i + 1 < argc)
            count = strtoull(argv[++i], NULL, 10);
        else if (!strcmp(argv[i], "--nodes") && i + 1 < argc)
            nnodes = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--quiet"))
            quiet = true;
        else {
            fprintf(stderr, "usage: nodesim [--first F] [--count N] [--nodes 3|5] [--quiet]\n");
            return 2;
        }
    }
    if (nnodes != 3 && nnodes != 5) {
        fprintf(stderr, "nodesim: --nodes is 3 or 5\n");
        return 2;
    }
    const char *s = getenv("DDKV_SEED");
    if (s && *s) {
        first = strtoull(s, NULL, 10);
        count = 1;
    }
    tracing = getenv("DDKV_NODESIM_TRACE") && *getenv("DDKV_NODESIM_TRACE") == '1';
    log_set_level(tracing ? LOG_INFO : (enum log_level)(LOG_ERROR + 1));
    static const struct clock_source src = {.mono_ns = sim_mono_ns, .wall_ms = sim_wall_ms};
    clock_set_source(&src);
    /* Memory-backed by default: the simulated disks live in memory, but
     * snapshot images and their directories are real files, fsynced. */
    const char *tmp = getenv("TMPDIR");
    if (!tmp || !*tmp)
        tmp = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp";
    snprintf(base_dir, sizeof base_dir, "%s/nodesim.XXXXXX", tmp);
    if (!mkdtemp(base_dir)) {
        perror("nodesim: mkdtemp");
        return 1;
    }
    for (int k = 0; k < NS_KEYS; k++) {
        char kb[16];
        snprintf(kb, sizeof kb, "k%d", k);
        keys_s[k] = strdup(kb);
    }
    int rc = 0;
    uint64_t passed = 0;
    signal(SIGABRT, on_abort);
    for (uint64_t seed = first; seed < first + count; seed++) {
        int len = snprintf(abort_msg, sizeof abort_msg,
                           "nodesim: seed %" PRIu64 " ABORTED (replay: DDKV_SEED=%" PRIu64
                           " DDKV_NODESIM_TRACE=1 nodesim --nodes %d)\n",
                           seed, seed, nnodes);
        abort_len = len > 0 && (size_t)len < sizeof abort_msg ? (size_t)len : 0;
        if (!run_seed(seed)) {
            rc = 1;
            break;
        }
        passed++;
    }
    if (!quiet || rc)
        printf("nodesim: %" PRIu64 " seeds passed (%d members)%s\n", passed, nnodes, rc ? "; one failed" : "");
    if (!quiet)
        printf("  operations: %" PRIu64 " ok, %" PRIu64 " unknown, %" PRIu64 " failed; crashes %" PRIu64
               " (members refused for a torn disk %" PRIu64 "), failed syncs armed %" PRIu64
               ", rejoins after a storage fence %" PRIu64 ", snapshots %" PRIu64 ", installs %" PRIu64
               ", duplicate retries %" PRIu64 ", members rebuilt %" PRIu64
               "; amnesia-guard stalls worked around %" PRIu64 "\n  jobs claimed %" PRIu64 ", settled %" PRIu64
               ", acks fenced %" PRIu64 "; leases granted %" PRIu64 ", keepalives answered %" PRIu64
               "\n  auth on in %" PRIu64 " seeds: %" PRIu64 " sign-ins, %" PRIu64 " writes of the read-only user refused\n",
               totals.ops_ok, totals.ops_unknown, totals.ops_failed, totals.crashes, totals.refused,
               totals.syncs_failed, totals.rejoins, totals.snapshots, totals.installs, totals.duplicates, rebuilds, totals.guard_stalls, totals.jobs_claimed,
               totals.jobs_done, jfenced, totals.leases_granted, totals.keepalives, totals.auth_seeds,
               totals.auth_signins, totals.intrusions_denied);
    nftw(base_dir, rm_all, 8, FTW_DEPTH | FTW_PHYS);
    for (int k = 0; k < NS_KEYS; k++)
        free(keys_s[k]);
    free(hist);
    free(W.ev);
    free(heap);
    buf_free(&sendbuf);
    clock_set_source(NULL);
    return rc;
}
