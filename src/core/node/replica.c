/* The node's Raft driver: start-up from disk, proposals, and the one loop that
 * orders persist -> send -> apply -> answer for everything a turn produced. */
#include <stdlib.h>
#include <string.h>
#include <errno.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include "kv/cmd.h"
#include "kv/raftlog.h"
#include "kv/snapshot.h"
#include "node/module.h"
#include "node/replica.h"
#include "proto/version.h"
#include "node/node_int.h"
#include "node/node_io.h"
#include "util/clock.h"
#include "util/file.h"
#include "util/log.h"

/* The replica's state: nothing outside replica.c reads or writes it but
 * through replica.h. */
struct replica {
    struct node_timer *tick;      /* raft_tick every heartbeat_ms */
    uint64_t last_leader;         /* to count leader changes */
    /* Writes waiting for their entries (in index order) and reads waiting
     * for their turn (in arrival order). */
    struct proposal *prop;
    size_t nprop, capprop;
    struct buf cmdbuf;            /* proposal encoding */
    struct pending_read *reads;
    size_t nreads, capreads;
    uint64_t read_ctx;            /* last ctx handed to raft_read_index */
    /* The Raft log: its writes, the indexes it holds, the hard state last
     * made durable, and the ready batch waiting for its sync. */
    struct store_batch *logb;
    uint64_t log_first, log_last; /* indexes stored in the raft_log column family */
    struct raft_hard_state hs_synced;
    struct raft_ready pending;    /* the ready batch a sync or an install holds open */
    bool syncing;                 /* pending waits for its sync */
    size_t sync_applied;          /* of pending's committed entries, those applied already */
    struct hist h_commit;         /* synced group commit, ns */
    struct lag lag;               /* when each commit index was first known (lag.h) */
    uint64_t regressions_seen;    /* followers found behind what they acknowledged, logged */
    /* Snapshots: one being written, one being received or installed. */
    struct node_job *snap_job;
    uint64_t snap_index_taking;
    char snap_taking[600];
    uint64_t snap_newest;         /* the newest image written (the log is compacted to the one before) */
    char snap_newest_path[600];
    struct snap_recv srecv;
    char recv_done[600];          /* the last fully received image, "" if none */
    struct node_job *install_job;
    struct store_batch *install_batch;
    bool installing;              /* an image is being installed: the state machine is off limits */
    /* An image a follower needs could not be read: take a fresh one now and
     * compact the log to it, instead of retrying the bad one. */
    bool snap_force;
    bool snap_forcing;            /* the snapshot being taken replaces an unreadable image */
    uint64_t snap_bad_index;      /* the last image reported unreadable (logged once) */
    uint64_t snap_verified_index, snap_verified_term; /* the image last checked whole */
    /* The next snapshot waits for --snapshot-entries entries and for log
     * bytes of at least half the newest image (SNAP_LOG_SHARE): an image is
     * the whole state, so at 10^6 keys one every 10,000 entries rewrote
     * 300 MB every few seconds on each member. Bytes of the entries applied
     * since the last snapshot began, and the newest image's size. */
    uint64_t snap_log_bytes;
    uint64_t snap_image_bytes;
    /* The storage fence: set when a storage write failed, the member stops
     * driving Raft and refuses writes; reads keep being served. A full disk
     * (ERR_NOSPACE) or an I/O error (a failed fsync: ERR_IO) clears by
     * itself once the store takes synced writes again (replica_rejoin, after
     * reopening the store for an I/O error); any other failure waits for an
     * operator's restart. Every second a timer checks. */
    int storage_failed;
    bool store_reopened;          /* since the fence (ERR_IO): the store was reopened */
    struct node_timer *storage_retry;
    uint64_t storage_failed_ms;   /* when the fence began (monotonic) */
    uint64_t storage_note_ms;     /* when the wait was last logged */
    uint64_t storage_recoveries;  /* times it rejoined (/metrics) */
    /* SIGTERM to a leader: leadership is handed over first, and the loop
     * stops once another member leads or at this deadline (0: not stopping). */
    uint64_t handoff_deadline_ms;
    /* The leader's address refused a connection: campaign soon. */
    struct node_timer *campaign_soon;
    uint64_t leader_lost;         /* times that happened (/metrics) */
};

static void replica_sweep(struct node *n);
/* A snapshot is taken once the log since the last one holds at least
 * 1/SNAP_LOG_SHARE of the newest image's bytes (and --snapshot-entries
 * entries): writing images then costs at most SNAP_LOG_SHARE bytes per byte
 * of log, whatever the state's size, and the log in memory stays under about
 * half the state. */
#define SNAP_LOG_SHARE 2u

/* Where commands are decoded: 18 KiB with a transaction's room, too big for
 * the stack; the loop thread is the only user, and a decoded command is done
 * with before the next decode. */
static struct cmd replica_cmd;

/* Double a queue's capacity (64 to start); running out of memory is fail-stop. */
static void *replica_grow(void *p, size_t *cap, size_t elem)
{
    size_t want = *cap ? *cap * 2 : 64;
    void *q = realloc(p, want * elem);
    ASSERT(q != NULL);
    *cap = want;
    return q;
}
static void replica_snap_tick(struct node *n);
static bool replica_sync_end(struct node *n, bool block);
static void replica_snap_dir(struct node *n, char *out, size_t cap);
static int replica_snap_read(void *ud, const struct raft_snap_meta *meta, uint64_t offset, uint8_t *buf,
                             size_t cap, size_t *len, bool *last);

/* The highest Lamport time among committed-but-unapplied commands, so the
 * clock restarts above every time the log has ever handed out. */
static uint64_t replica_log_lamport(const struct raftlog_loaded *l, uint64_t applied)
{
    uint64_t max = 0;
    for (size_t i = 0; i < l->n_entries; i++) {
        const struct raft_entry *e = &l->entries[i];
        struct cmd *c = &replica_cmd;
        if (e->index > applied && e->type == RAFT_ENTRY_NORMAL && e->len > 0 &&
            cmd_decode(e->data, e->len, c) == ERR_OK && c->lamport > max)
            max = c->lamport;
    }
    return max;
}

/* What the node knows of the cluster's commit index, for lag (lag.h); and a
 * follower found holding less than it had acknowledged, logged. */
void replica_note_commit(struct node *n)
{
    struct raft_status st;
    raft_status(n->raft, &st);
    lag_note(&n->rep->lag, st.leader_commit > st.commit ? st.leader_commit : st.commit, clock_mono_ms());
    if (st.regressions > n->rep->regressions_seen) {
        n->rep->regressions_seen = st.regressions;
        log_warn("a follower holds less of the log than it had acknowledged (its disk lost entries, or it "
                 "came back empty): replicating to it again from what it holds");
    }
}

/* Every tick while a SIGTERM'd leader hands over (node.c): stop once another
 * member leads, or at the deadline. */
static void replica_handoff_check(struct node *n)
{
    if (!n->rep->handoff_deadline_ms || n->stopping)
        return;
    struct raft_status st;
    raft_status(n->raft, &st);
    bool moved = st.role != RAFT_LEADER;
    if (!moved && clock_mono_ms() < n->rep->handoff_deadline_ms)
        return;
    const struct member *m = st.leader ? cluster_member(n, st.leader) : NULL;
    if (moved)
        log_info("leadership handed over (%s leads, term %llu): stopping", m ? m->name : "no one yet",
                 (unsigned long long)st.term);
    else
        log_warn("leadership not handed over within the election timeout: stopping anyway");
    n->stopping = true;
    n->io->stop_loop(n);
}

static void replica_tick_cb(struct node *n)
{
    if (!n->rep->storage_failed) {
        replica_note_commit(n);
        raft_tick(n->raft);
        modules_on_tick(n);
        replica_snap_tick(n);
    }
    replica_sweep(n);
    replica_handoff_check(n);
}

/* The state machine as the store holds it, the way start-up loads it: an
 * install a crash (or a storage failure) interrupted is finished first, then
 * the applied index, Lamport time, revision and sessions are read. The
 * struct sm is replaced only on success. */
int replica_load_state(struct node *n, struct errbuf *eb)
{
    struct errbuf e2;
    int rc = snap_install_recover(n->st, &e2);
    if (rc)
        return errf(eb, rc, "cannot finish the snapshot install a crash interrupted in %s: %s",
                    n->cfg.data_dir, e2.msg);
    struct sm fresh;
    if ((rc = sm_open(&fresh, n->st, &e2))) {
        sm_close(&fresh);
        return errf(eb, rc, "cannot load state from %s: %s", n->cfg.data_dir, e2.msg);
    }
    if (n->sm.batch)
        sm_close(&n->sm);
    n->sm = fresh;
    replica_sm_hooks(n);
    /* The clock never goes below what was already handed out (clamped to
     * the ceiling: a time stored by an older version may be past it). */
    lamport_raise(&n->clock, n->sm.applied_lamport);
    return ERR_OK;
}

/* The durable Raft state (hard state, log bounds and entries, snapshot
 * metadata, and the configuration they carry) loaded from the store, and a
 * core created from it above the state machine's applied index: at start,
 * and again when a fenced node rejoins. A founding member with an empty log
 * bootstraps it first. *out is set only on success. */
static int replica_core_open(struct node *n, struct raft **out, struct errbuf *eb)
{
    struct raftlog_loaded l;
    int rc = raftlog_load(n->st, &l, eb);
    if (rc)
        return rc;
    struct raft_persisted p = {0};
    struct raft_bootstrap_buf bb;
    bool fresh = l.hs.term == 0 && l.n_entries == 0 && l.snap.index == 0;
    if (fresh) {
        if (n->sm.applied_index != 0) {
            raftlog_loaded_free(&l);
            return errf(eb, ERR_CORRUPT,
                        "data dir holds %llu applied entries but no Raft log "
                        "(made by a pre-release ddkv): start from an empty data dir",
                        (unsigned long long)n->sm.applied_index);
        }
        if (!cluster_founding(n)) {
            /* Joining: an empty log and configuration; the leader that adds
             * us sends the log (or a snapshot) with the configuration in it. */
            log_info("waiting to be added to a cluster (ddkv members add %s %s)", n->cfg.name,
                     cluster_peer_addr(n)[0] ? cluster_peer_addr(n) : "PEER_ADDR");
            n->rep->log_first = n->rep->log_last = 0;
            goto create;
        }
        /* A founding member: its configuration is the first entries of its
         * log, made durable before the core is created. Each carries the
         * member's "name=peer_addr", so the address book is in the log too. */
        size_t nm;
        const struct member *members = cluster_members(n, &nm);
        struct raft_conf conf = {.n = (uint32_t)nm};
        for (size_t i = 0; i < nm; i++)
            conf.ids[i] = members[i].id;
        rc = raft_bootstrap(&conf, &bb, &p);
        ASSERT(rc == ERR_OK);
        static char ctxbuf[RAFT_MAX_NODES][RAFT_CC_BYTES + 130];
        for (size_t i = 0; i < p.n_entries; i++) {
            struct raft_entry *e = &bb.ents[i];
            enum raft_cc_type t;
            uint64_t id;
            ASSERT(raft_cc_decode(e->data, e->len, &t, &id) == ERR_OK);
            const struct member *m = cluster_member(n, id);
            memcpy(ctxbuf[i], e->data, RAFT_CC_BYTES);
            size_t cl = cluster_ctx_encode(ctxbuf[i] + RAFT_CC_BYTES, 130, m->name, m->peer_addr);
            e->data = (const uint8_t *)ctxbuf[i];
            e->len = RAFT_CC_BYTES + cl;
        }
        struct store_batch *b = store_batch_new(n->st);
        raftlog_stage_entries(b, p.entries, p.n_entries, 0);
        raftlog_stage_hard_state(b, &p.hs);
        rc = store_write(n->st, b, true, eb);
        store_batch_free(b);
        if (rc) {
            raftlog_loaded_free(&l);
            return rc;
        }
        n->rep->log_last = p.entries[p.n_entries - 1].index;
        log_info("bootstrapped a new %zu-member cluster", nm);
    } else {
        p.hs = l.hs;
        p.snap = l.snap;
        p.entries = l.entries;
        p.n_entries = l.n_entries;
        n->rep->log_last = l.n_entries ? l.entries[l.n_entries - 1].index : l.snap.index;
    }
    n->rep->log_first = l.snap.index + 1;
create:
    p.applied = n->sm.applied_index;
    n->rep->hs_synced = p.hs;
    uint64_t log_lamport = replica_log_lamport(&l, p.applied);
    lamport_raise(&n->clock, log_lamport);
    lamport_budget_init(&n->clock, clock_mono_ms());

    struct raft_config rc_cfg;
    raft_config_defaults(&rc_cfg, n->self_id);
    rc_cfg.heartbeat_ticks = 1;
    rc_cfg.election_ticks = n->cfg.election_timeout_ms / n->cfg.heartbeat_ms;
    /* Election jitter only; nothing about safety depends on this seed. */
    if (n->io->random(n, &rc_cfg.seed) != ERR_OK)
        rc_cfg.seed = clock_mono_ns() ^ n->self_id;
    rc_cfg.max_uncommitted = 65536;
    rc_cfg.snap_src = (struct raft_snapshot_source){.read = replica_snap_read, .ud = n};
    /* Chunks small enough that a heartbeat never waits long behind one. */
    rc_cfg.snap_chunk_bytes = 256u << 10;
    rc = raft_create(&rc_cfg, &p, out, eb);
    raftlog_loaded_free(&l);
    return rc;
}

/* The only voter need not wait out an election timeout. */
static void replica_campaign_if_alone(struct node *n)
{
    if (raft_conf_voters(raft_get_conf(n->raft)) == 1 &&
        raft_conf_is_voter(raft_get_conf(n->raft), n->self_id))
        raft_campaign(n->raft);
}

int replica_start(struct node *n, struct errbuf *eb)
{
    snap_recv_init(&n->rep->srecv);
    char sdir[512];
    replica_snap_dir(n, sdir, sizeof sdir);
    int rc = file_mkdir_durable(sdir, 0700, eb); /* its images are relied on */
    if (rc || (rc = snap_check_dir(sdir, eb)))
        return rc;
    if ((rc = replica_core_open(n, &n->raft, eb)))
        return rc;
    n->rep->logb = store_batch_new(n->st);
    if ((rc = n->io->sync_start(n, eb)))
        return rc;
    if (!(n->rep->tick = n->io->timer_new(n, replica_tick_cb)))
        return errf(eb, ERR_NOMEM, "out of memory");
    n->io->timer_arm(n, n->rep->tick, n->cfg.heartbeat_ms, true);
    replica_campaign_if_alone(n);
    replica_drive(n);
    return ERR_OK;
}

/* Finish the batch whose sync is in flight, if any, waiting for it: on the
 * way out, so the writes it commits are answered. */
void replica_flush(struct node *n)
{
    if (n->rep->syncing)
        (void)replica_sync_end(n, true);
}

struct replica *replica_new(void)
{
    struct replica *r = calloc(1, sizeof *r);
    if (r)
        hist_init(&r->h_commit);
    return r;
}

void replica_free(struct node *n)
{
    free(n->rep);
    n->rep = NULL;
}

void replica_fail_all(struct node *n)
{
    struct sm_result none = {0};
    /* Answer from the queue swapped out whole: a module's completion may
     * propose again, appending to (and moving) the queue; until it is empty. */
    while (n->rep->nprop) {
        struct proposal *props = n->rep->prop;
        size_t count = n->rep->nprop;
        n->rep->prop = NULL;
        n->rep->nprop = n->rep->capprop = 0;
        for (size_t i = 0; i < count; i++) {
            if (props[i].done) /* a module's: it frees what it holds */
                props[i].done(n, &props[i], &none, DDKV_WERR_UNAVAILABLE, "node stopping");
            conn_unref(props[i].c); /* their connections are closed */
        }
        free(props);
    }
    free(n->rep->prop);
    n->rep->prop = NULL;
    n->rep->capprop = 0;
}

void replica_stop(struct node *n)
{
    n->io->sync_stop(n); /* waits for a sync in flight */
    n->rep->syncing = false;
    if (n->rep->snap_job)
        n->io->snap_job_free(n, n->rep->snap_job); /* cancels a running write */
    n->rep->snap_job = NULL;
    if (n->rep->install_job)
        n->io->snap_job_free(n, n->rep->install_job); /* waits: an install is finished, or recovered at start */
    n->rep->install_job = NULL;
    store_batch_free(n->rep->install_batch);
    n->rep->install_batch = NULL;
    char sdir[512];
    replica_snap_dir(n, sdir, sizeof sdir);
    snap_recv_reset(&n->rep->srecv, sdir);
    n->io->timer_free(n, n->rep->tick);
    n->rep->tick = NULL;
    n->io->timer_free(n, n->rep->storage_retry);
    n->rep->storage_retry = NULL;
    n->io->timer_free(n, n->rep->campaign_soon);
    n->rep->campaign_soon = NULL;
    store_batch_free(n->rep->logb);
    n->rep->logb = NULL;
    if (n->raft)
        raft_destroy(n->raft);
    n->raft = NULL;
    for (size_t i = 0; i < n->rep->nreads; i++) {
        conn_unref(n->rep->reads[i].c);
        free(n->rep->reads[i].buf);
    }
    free(n->rep->reads);
    n->rep->reads = NULL;
    n->rep->nreads = n->rep->capreads = 0;
    buf_free(&n->rep->cmdbuf);
}

int replica_fenced(const struct node *n)
{
    return n->rep->storage_failed;
}

bool replica_installing(const struct node *n)
{
    return n->rep->installing;
}

uint64_t replica_log_last(const struct node *n)
{
    return n->rep->log_last;
}

const struct lag *replica_lag(const struct node *n)
{
    return &n->rep->lag;
}

const struct hist *replica_commit_hist(const struct node *n)
{
    return &n->rep->h_commit;
}

uint64_t replica_recoveries(const struct node *n)
{
    return n->rep->storage_recoveries;
}

bool replica_syncing(const struct node *n)
{
    return n->rep->syncing;
}

const struct raft_ready *replica_pending(const struct node *n)
{
    return &n->rep->pending;
}

const struct proposal *replica_proposals(const struct node *n, size_t *count)
{
    *count = n->rep->nprop;
    return n->rep->prop;
}

/* A follower whose leader's address refuses connections knows the leader's
 * process is gone (a crash, kill -9, a stop): rather than wait out the
 * election timeout (1-2 s by default), it leaves the leader's lease and
 * campaigns after a short random delay, by which time the other followers,
 * whose connections broke at the same moment, know it too and grant their
 * votes. A machine that vanishes or a partition refuse nothing: those still
 * take the timeout. Only liveness is at stake (raft_leader_lost). */
static void replica_campaign_cb(struct node *n)
{
    if (n->raft && !n->rep->storage_failed && !n->rep->installing)
        raft_campaign(n->raft);
}

void replica_leader_refused(void *node, uint64_t id)
{
    struct node *n = node;
    struct replica *r = n->rep;
    if (!n->raft || r->storage_failed || r->installing)
        return;
    if (raft_leader_lost(n->raft, id) != ERR_OK)
        return; /* not our leader (or we are not a follower) */
    r->leader_lost++;
    uint32_t hb = n->cfg.heartbeat_ms ? n->cfg.heartbeat_ms : 100;
    uint64_t rnd;
    if (n->io->random(n, &rnd) != ERR_OK)
        rnd = clock_mono_ns() ^ n->self_id;
    uint32_t delay = 20 + (uint32_t)(rnd % hb);
    const struct member *m = cluster_member(n, id);
    log_info("leader %s refuses connections (its process is gone): campaigning in %u ms", m ? m->name : "?",
             delay);
    if (!r->campaign_soon)
        r->campaign_soon = n->io->timer_new(n, replica_campaign_cb);
    if (r->campaign_soon)
        n->io->timer_arm(n, r->campaign_soon, delay, false);
}

uint64_t replica_leader_lost(const struct node *n)
{
    return n->rep->leader_lost;
}

bool replica_handoff(struct node *n)
{
    struct replica *r = n->rep;
    if (!n->raft || r->handoff_deadline_ms || r->storage_failed)
        return false;
    struct raft_status st;
    raft_status(n->raft, &st);
    if (st.role != RAFT_LEADER)
        return false;
    uint64_t to = cluster_transfer_target(n);
    if (!to || raft_transfer_leadership(n->raft, to) != ERR_OK)
        return false;
    const struct member *m = cluster_member(n, to);
    log_info("handing leadership to %s before stopping", m ? m->name : "?");
    r->handoff_deadline_ms = clock_mono_ms() + n->cfg.election_timeout_ms;
    return true;
}


int replica_propose(struct node *n, struct conn *c, uint64_t request_id, uint32_t reply_kind,
                    const struct sm_op *op)
{
    struct sm_op o = *op;
    /* The leader's clock, for session expiry; members use the entry's time,
     * never their own (src/core/kv/sm.h). */
    o.time_ms = clock_wall_ms();
    /* A client's write was admitted under the permissions this member has
     * applied: it says which, and is refused where it applies if they have
     * changed since (a revoke proposed before it, or one this new leader
     * had not applied yet). Not for entries a 0.1 member would refuse. */
    if (c && n->sm.cluster_version >= VERSION_AUTH_REV) {
        o.auth_checked = true;
        o.auth_rev = n->sm.auth.rev;
    }
    buf_reset(&n->rep->cmdbuf);
    int erc = cmd_encode_op(&o, lamport_tick(&n->clock), &n->rep->cmdbuf);
    if (erc != ERR_OK)
        return erc;
    uint64_t index, term;
    int rc = raft_propose(n->raft, n->rep->cmdbuf.data, n->rep->cmdbuf.len, &index, &term);
    if (rc) {
        n->stats.proposals_refused++;
        return rc;
    }
    n->stats.proposals++;
    if (c)
        replica_track(n, c, request_id, reply_kind, NULL, index, term);
    return ERR_OK;
}

void replica_refuse(struct conn *c, uint64_t rid, int rc)
{
    ASSERT(rc != ERR_OK);
    if (rc == ERR_UNAVAILABLE)
        conn_reply_not_leader(c, rid);
    else if (rc == ERR_AGAIN)
        conn_reply_error(c, rid, err_to_wire(rc), "too many writes waiting to commit; retry");
    else if (rc == ERR_BAD_INPUT)
        conn_reply_error(c, rid, err_to_wire(rc), "the request cannot be encoded as a command");
    else
        conn_reply_error(c, rid, err_to_wire(rc), "cannot propose: %s", err_str(rc));
}

void replica_propose_reply(struct node *n, struct conn *c, uint64_t rid, uint32_t reply_kind,
                           replica_reply_fn reply, const struct sm_op *op)
{
    if (n->rep->storage_failed) {
        if (n->rep->storage_failed == ERR_NOSPACE)
            conn_reply_error(c, rid, DDKV_WERR_UNAVAILABLE,
                             "writes refused: disk full on this member; it rejoins by itself once space returns");
        else if (n->rep->storage_failed == ERR_CORRUPT)
            conn_reply_error(c, rid, DDKV_WERR_UNAVAILABLE,
                             "writes refused: this member's data dir is damaged; ask another member");
        else if (n->rep->storage_failed == ERR_IO)
            conn_reply_error(c, rid, DDKV_WERR_UNAVAILABLE,
                             "writes refused: an I/O error (a failed fsync) on this member's disk; it rejoins by "
                             "itself once synced writes work again");
        else
            conn_reply_error(c, rid, DDKV_WERR_UNAVAILABLE,
                             "writes refused since a storage failure (%s); restart the node",
                             err_str(n->rep->storage_failed));
        return;
    }
    int rc = replica_propose(n, c, rid, reply_kind, op);
    if (rc)
        replica_refuse(c, rid, rc);
    else
        n->rep->prop[n->rep->nprop - 1].reply = reply;
}

bool replica_lead_or_refuse(struct node *n, struct conn *c, uint64_t rid, bool writable)
{
    struct raft_status st;
    raft_status(n->raft, &st);
    if (st.role == RAFT_LEADER && !(writable && n->rep->storage_failed))
        return true;
    conn_reply_not_leader(c, rid);
    return false;
}

int replica_propose_done(struct node *n, struct conn *c, uint64_t request_id, const struct sm_op *op,
                         void (*done)(struct node *, const struct proposal *, const struct sm_result *,
                                      uint32_t, const char *),
                         void *done_ctx)
{
    int rc = replica_propose(n, c, request_id, 0, op);
    if (rc == ERR_OK) {
        n->rep->prop[n->rep->nprop - 1].done = done;
        n->rep->prop[n->rep->nprop - 1].done_ctx = done_ctx;
    }
    return rc;
}

int replica_propose_internal(struct node *n, const struct sm_op *op)
{
    return replica_propose(n, NULL, 0, 0, op);
}

/* The state machine reports each key change while it stages an entry; the
 * modules (the watch history) take it, to use once the batch is committed. */
static void replica_on_event(void *ctx, const struct sm_event *ev)
{
    modules_on_change(ctx, ev);
}

void replica_sm_hooks(struct node *n)
{
    n->sm.on_event = replica_on_event;
    n->sm.event_ctx = n;
}

static void replica_answer(struct node *n, struct proposal *p, const struct sm_result *res,
                           uint32_t err_code, const char *err_text);

/* Take count proposals at position from out of the queue, as a copy the
 * caller answers (replica_fail_props) and frees. Never answer from the queue
 * itself: an answer can run a module's completion (a job claim settles, the
 * queue claims the next job) that proposes again, which appends to the queue
 * and may move it (found by nodesim seed 202618: the new entry's index fell
 * behind a proposal still waiting to be answered). */
static struct proposal *replica_take(struct node *n, size_t from, size_t count)
{
    ASSERT(from + count <= n->rep->nprop);
    if (!count)
        return NULL;
    struct proposal *out = malloc(count * sizeof *out);
    ASSERT(out != NULL);
    memcpy(out, n->rep->prop + from, count * sizeof *out);
    memmove(n->rep->prop + from, n->rep->prop + from + count, (n->rep->nprop - from - count) * sizeof *n->rep->prop);
    n->rep->nprop -= count;
    return out;
}

/* Answer every taken proposal with one error and free the copy. */
static void replica_fail_props(struct node *n, struct proposal *props, size_t count, uint32_t err_code,
                               const char *err_text)
{
    struct sm_result none = {0};
    for (size_t i = 0; i < count; i++)
        replica_answer(n, &props[i], &none, err_code, err_text);
    free(props);
}

void replica_track(struct node *n, struct conn *c, uint64_t request_id, uint32_t reply_kind,
                   replica_reply_fn reply, uint64_t index, uint64_t term)
{
    /* Proposals are appended in index order, so the queue stays sorted. One
     * at or past this index is left from an earlier leadership of this node
     * that it lost and won back before that proposal settled (found by the
     * fault suite): the leader of a later term in between overwrote it, and
     * now this leader has another entry at that index, so by leader
     * completeness the old entry was never committed and never will be. It
     * was not applied: say so (the client may retry; a session dedups). */
    size_t keep = n->rep->nprop;
    while (keep > 0 && n->rep->prop[keep - 1].index >= index) {
        ASSERT(n->rep->prop[keep - 1].term < term);
        keep--;
    }
    size_t stale = n->rep->nprop - keep;
    struct proposal *old = replica_take(n, keep, stale);
    /* The new one first: a completion run by the answers below proposes
     * after it, at a higher index. */
    if (n->rep->nprop == n->rep->capprop)
        n->rep->prop = replica_grow(n->rep->prop, &n->rep->capprop, sizeof *n->rep->prop);
    conn_ref(c);
    n->rep->prop[n->rep->nprop++] = (struct proposal){.c = c, .request_id = request_id, .kind = reply_kind, .reply = reply,
                                            .index = index, .term = term, .t0_ns = n->req_t0_ns};
    replica_fail_props(n, old, stale, DDKV_WERR_UNAVAILABLE,
                       "leadership changed before this write committed; it was not applied");
}

static void replica_answer(struct node *n, struct proposal *p, const struct sm_result *res,
                           uint32_t err_code, const char *err_text)
{
    if (p->done) {
        p->done(n, p, res, err_code, err_text);
        conn_unref(p->c);
        return;
    }
    if (conn_is_open(p->c)) {
        if (err_code) {
            conn_reply_error(p->c, p->request_id, err_code, "%s", err_text);
        } else if (res->stale) {
            conn_reply_error(p->c, p->request_id, DDKV_WERR_BAD_REQUEST,
                             "stale retry: a newer write of this client was already applied");
        } else if (res->error) {
            uint32_t code;
            const char *text = sm_error_text(res->error, &code);
            conn_reply_error(p->c, p->request_id, code, "%s", text);
        } else if (p->reply) {
            p->reply(n, p, res);
        } else {
            struct msg_writer w;
            conn_reply_begin(p->c, &w, p->kind, p->request_id, 2);
            mw_u64(&w, res->lamport);
            mw_u64(&w, res->revision);
            conn_reply_end(p->c, &w);
        }
    }
    if (res->duplicate)
        n->stats.duplicates++;
    node_observe(n, p->kind == DDKV_MSG_DELETED || p->kind == DDKV_MSG_DELETE_PREFIX ? DDKV_MSG_DELETE
                    : p->kind == DDKV_MSG_MEMBER_CHANGED ? DDKV_MSG_MEMBER_ADD : DDKV_MSG_WRITE,
                 p->t0_ns);
    conn_unref(p->c);
}

/* --- storage failure: fence, and rejoin when the disk takes writes again --- */

/* How often a node fenced by a full disk checks whether it can rejoin. */
#define REPLICA_RETRY_MS 1000
/* How often, while it waits, it says why (the first time at once). */
#define REPLICA_RETRY_NOTE_MS 30000

static void replica_retry_cb(struct node *n);
static void replica_read_fail(struct node *n, struct pending_read *r, uint32_t code, const char *text);

/* Storage failed: the core assumes what it handed out was persisted, so it
 * must not be driven again. Answer what is in flight as outcome unknown, and
 * refuse writes (ARCHITECTURE.md). A full disk or an I/O error (a failed
 * fsync or write) is retried every second (replica_retry_cb) and the node
 * rejoins by itself once the store takes synced writes again; after an I/O
 * error the store is first reopened, so that RocksDB rewrites what it
 * recovers into new synced tables instead of trusting pages a failed fsync
 * may have left unwritten. Any other failure (a damaged record) needs an
 * operator. */
static bool replica_heals(int rc)
{
    return rc == ERR_NOSPACE || rc == ERR_IO;
}

static void replica_fence(struct node *n, int rc, const char *what, const char *detail)
{
    bool again = n->rep->storage_failed != 0;
    n->rep->storage_failed = rc;
    n->stats.commit_errors++;
    if (!again)
        n->rep->storage_failed_ms = clock_mono_ms();
    log_error("%s failed: %s; this node stops taking part in consensus and refuses writes %s", what,
              detail,
              replica_heals(rc) ? "until the disk takes synced writes again (checked every second; it "
                                  "then rejoins by itself)"
              : rc == ERR_CORRUPT ? "and reads: its data dir is damaged (remove it from the cluster, wipe "
                                    "its data dir and add it back: README, \"Disk corruption\")"
                                  : "(fix the cause, then restart it)");
    char text[96];
    snprintf(text, sizeof text, "storage failure (%s)", rc == ERR_NOSPACE ? "disk full" : err_str(rc));
    size_t count = n->rep->nprop;
    replica_fail_props(n, replica_take(n, 0, count), count, DDKV_WERR_INTERNAL, text);
    n->rep->store_reopened = false;
    if (replica_heals(rc) && n->rep->tick) {
        if (!n->rep->storage_retry)
            n->rep->storage_retry = n->io->timer_new(n, replica_retry_cb);
        if (n->rep->storage_retry && !n->io->timer_armed(n, n->rep->storage_retry))
            n->io->timer_arm(n, n->rep->storage_retry, REPLICA_RETRY_MS, true);
        n->rep->storage_note_ms = 0;
    } else if (n->rep->storage_retry) {
        n->io->timer_cancel(n, n->rep->storage_retry);
    }
}

/* Free space the data dir's file system must have before a fenced node tries
 * its store again, besides room to flush the memtables (RocksDB's recovery
 * does that first): 5% of it, at least 4 MiB, at most 64 MiB. Rejoining with
 * only a little free would only fence it again at the next write, and a
 * flapping member answers every write in flight with an error each time. */
static uint64_t replica_space_needed(uint64_t total)
{
    uint64_t need = total / 20;
    if (need < (4u << 20))
        need = 4u << 20;
    if (need > (64u << 20))
        need = 64u << 20;
    return need;
}

/* Rejoin after a storage failure, as if the process had restarted.
 *
 * Safety. The core's memory may be ahead of the disk: the batch whose write
 * failed held entries and maybe a term or vote, and the state machine batch
 * that failed held applied entries. None of it was acknowledged: a
 * follower's append or vote reply, and a leader's count of itself, are
 * released by the core only at the raft_advance after the synced write that
 * made them durable, and that advance never happened; a client is answered
 * only after its entry was applied and that batch written. Messages the core
 * had already released depend only on durable state. So the store holds
 * every write that succeeded, in order, and nothing anybody was told depends
 * on the failed ones: exactly the state a crash at the failing write would
 * have left (RocksDB refuses every write after a failed one until it has
 * recovered from it, so nothing later slipped in). Rebuilding everything from
 * the store, as start-up does, is a crash-restart, which Raft tolerates.
 * What is not rebuilt is what a restart would keep anyway: the peer
 * connections (messages queued there are ones any restart could see arrive
 * late), client connections, the watch history (the state machine's
 * committed state did not change unless an interrupted install was
 * finished), and the Lamport clock, which only moves up. */
static int replica_rejoin(struct node *n, struct errbuf *eb)
{
    uint64_t applied_before = n->sm.applied_index;
    /* A sync in flight belongs to the fenced core: let it end (its outcome
     * does not matter, the store is read back below). */
    replica_flush(n);
    /* A snapshot write in progress reads the old state through a RocksDB
     * snapshot; a restart would not have it either. */
    if (n->rep->snap_job)
        n->io->snap_job_free(n, n->rep->snap_job); /* cancels it; its .tmp file goes */
    n->rep->snap_job = NULL;
    int rc = replica_load_state(n, eb);
    if (rc)
        return rc;
    /* The address book as the applied state holds it (start-up: cluster_load). */
    if ((rc = cluster_reload(n, eb)))
        return rc;
    struct raft *fresh = NULL;
    if ((rc = replica_core_open(n, &fresh, eb)))
        return rc;
    raft_destroy(n->raft);
    n->raft = fresh;
    /* What a restart starts without: a transfer being received, the newest
     * image written this run, the leader's lease countdowns. */
    char sdir[512];
    replica_snap_dir(n, sdir, sizeof sdir);
    snap_recv_reset(&n->rep->srecv, sdir);
    n->rep->recv_done[0] = 0;
    n->rep->snap_newest = 0;
    n->rep->snap_newest_path[0] = 0;
    n->rep->installing = false;
    memset(&n->rep->pending, 0, sizeof n->rep->pending);
    store_batch_clear(n->rep->logb);
    modules_on_rejoin(n);
    if (n->sm.applied_index != applied_before)
        modules_on_state_replaced(n, n->sm.applied_index);
    /* Linearizable reads wait for ReadIndex rounds of the old core, which
     * will never complete: answer them now. Causal ones wait for the applied
     * Lamport time and stay. */
    size_t keep = 0;
    for (size_t i = 0; i < n->rep->nreads; i++) {
        struct pending_read *r = &n->rep->reads[i];
        if (r->ctx == 0) {
            n->rep->reads[keep++] = *r;
            continue;
        }
        replica_read_fail(n, r, DDKV_WERR_UNAVAILABLE,
                          "this member restarted its Raft state after a storage failure; retry");
        conn_unref(r->c);
        free(r->buf);
    }
    n->rep->nreads = keep;
    /* Writes proposed on the fenced core (a membership change) never reach
     * the new one: their outcome is not known here. */
    size_t count = n->rep->nprop;
    replica_fail_props(n, replica_take(n, 0, count), count, DDKV_WERR_UNAVAILABLE,
                       "this member restarted its Raft state after a storage failure; the write's "
                       "outcome is unknown");
    uint64_t fenced_ms = clock_mono_ms() - n->rep->storage_failed_ms;
    n->rep->storage_failed = 0;
    n->rep->storage_recoveries++;
    struct raft_status st;
    raft_status(n->raft, &st);
    log_info("storage writable again: rejoining after %llu ms fenced, from the durable state "
             "(term %llu, applied index %llu, raft log %llu..%llu)",
             (unsigned long long)fenced_ms, (unsigned long long)st.term,
             (unsigned long long)n->sm.applied_index, (unsigned long long)n->rep->log_first,
             (unsigned long long)n->rep->log_last);
    replica_campaign_if_alone(n);
    return ERR_OK;
}

/* Every second while fenced by a full disk: enough free space, and a synced
 * probe write that RocksDB takes (it refuses every write until it has
 * recovered from its background error, which it does by itself a few seconds
 * after space returns), and the node rejoins. */
static void replica_retry_cb(struct node *n)
{
    if (!replica_heals(n->rep->storage_failed) || n->stopping) {
        n->io->timer_cancel(n, n->rep->storage_retry);
        return;
    }
    if (n->rep->installing)
        return; /* replica_drive finishes the install first */
    struct errbuf eb;
    if (n->rep->storage_failed == ERR_IO && !n->rep->store_reopened) {
        /* RocksDB keeps a failed sync's error and refuses writes until it is
         * reopened. Nothing may use the store meanwhile: the sync in flight
         * ends first, a snapshot being written is cancelled (its .tmp goes),
         * and a snapshot save still imaging the state is waited for. */
        char probe[600];
        snprintf(probe, sizeof probe, "%s/ddkv-sync-probe", n->cfg.data_dir);
        if (file_write_durable(probe, "ok\n", 3, 0600, &eb) != ERR_OK) {
            uint64_t now = clock_mono_ms();
            if (n->rep->storage_note_ms == 0 || now - n->rep->storage_note_ms >= REPLICA_RETRY_NOTE_MS) {
                n->rep->storage_note_ms = now;
                log_warn("the disk does not sync yet (%s); still fenced, retrying every second", eb.msg);
            }
            return; /* the store is reopened only on a disk that syncs: its recovery syncs */
        }
        unlink(probe);
        replica_flush(n);
        n->io->snap_job_free(n, n->rep->snap_job);
        n->rep->snap_job = NULL;
        int rc = store_reopen(n->st, n->cfg.data_dir, &eb);
        if (rc == ERR_AGAIN)
            return;
        if (rc) {
            log_error("cannot reopen the store in %s after an I/O error: %s; exiting (a restart opens it "
                      "again, or says what is wrong with it)", n->cfg.data_dir, eb.msg);
            abort();
        }
        n->rep->store_reopened = true;
        log_info("store reopened after an I/O error: RocksDB recovered it from its log");
    }
    uint64_t now = clock_mono_ms();
    bool note = n->rep->storage_note_ms == 0 || now - n->rep->storage_note_ms >= REPLICA_RETRY_NOTE_MS;
    struct statvfs sv;
    if (statvfs(n->cfg.data_dir, &sv) == 0) {
        uint64_t avail = (uint64_t)sv.f_bavail * sv.f_frsize;
        uint64_t need = replica_space_needed((uint64_t)sv.f_blocks * sv.f_frsize) +
                        store_memtable_bytes(n->st);
        if (avail < need) {
            if (note) {
                n->rep->storage_note_ms = now;
                log_warn("disk full: %llu KiB free in %s, waiting for %llu KiB before rejoining",
                         (unsigned long long)(avail >> 10), n->cfg.data_dir,
                         (unsigned long long)(need >> 10));
            }
            return;
        }
    }
    int rc = store_probe(n->st, &eb);
    if (rc != ERR_OK) {
        if (rc == ERR_IO) {
            /* A sync failed (whatever fenced the node first, a full disk
             * too): the store refuses writes until it is reopened, so the
             * fence is an I/O error's from now on, reopened at the next try. */
            n->rep->storage_failed = ERR_IO;
            n->rep->store_reopened = false;
        }
        if (note) {
            n->rep->storage_note_ms = now;
            log_warn("the store does not take writes yet (%s); still fenced, retrying every second",
                     eb.msg);
        }
        return;
    }
    if ((rc = replica_rejoin(n, &eb)) != ERR_OK && note) {
        n->rep->storage_note_ms = now;
        log_error("the store takes writes again, but the node cannot reload its state from it: %s; "
                  "still fenced, retrying every second", eb.msg);
    }
}

/* A committed entry's time beyond the member budget is logged once per process. */
static bool replica_clamp_logged;

/* Apply committed entries in order; answer the proposals they settle once the
 * state machine batch is written. */
static int replica_apply(struct node *n, const struct raft_entry *ents, size_t count)
{
    struct errbuf eb;
    size_t settled = 0; /* proposals at the head of the queue settled by this batch */
    for (size_t i = 0; i < count; i++) {
        const struct raft_entry *e = &ents[i];
        struct sm_op op = {.kind = SM_OP_NOOP};
        uint64_t lamport = 0;
        struct cmd *c = &replica_cmd;
        n->rep->snap_log_bytes += e->len;
        modules_on_stage(n, e, n->sm.batch);
        if (e->type == RAFT_ENTRY_NORMAL && e->len > 0) {
            if (cmd_decode(e->data, e->len, c) != ERR_OK) {
                /* Every member holds the same bytes: applying them differently
                 * or skipping them would fork the state. Stop. */
                log_error("committed entry %llu is not a valid command: the log is corrupt",
                          (unsigned long long)e->index);
                abort();
            }
            op = c->op;
            /* Out of range (only a faulty leader or an older version writes
             * one): stored as the ceiling, a function of the entry alone, so
             * every member stores the same time and no reply carries a time
             * a receiver refuses. */
            lamport = c->lamport > LAMPORT_CEIL ? LAMPORT_CEIL : c->lamport;
        }
        struct sm_result res;
        int rc = sm_stage(&n->sm, e->index, lamport, &op, &res, &eb);
        if (rc) {
            modules_on_apply_end(n, false);
            replica_fence(n, rc, "applying committed entries", eb.msg);
            return rc;
        }
        modules_on_applied(n, e, &op, &res);
        /* A committed entry's time is a member's (its leader's): observed
         * within the member budget, never fatal. */
        if (lamport_observe_member(&n->clock, lamport, clock_mono_ms()) && !replica_clamp_logged) {
            replica_clamp_logged = true;
            log_warn("committed entry %llu carries Lamport time %llu, beyond this node's budget for "
                     "members' advances: the clock moved by the budget only (logged once)",
                     (unsigned long long)e->index, (unsigned long long)lamport);
        }
        /* Match the proposal waiting for this index, if any. */
        /* Proposals below this index that no entry settled cannot exist while
         * entries apply in order; if one did, it never committed. */
        while (settled < n->rep->nprop && n->rep->prop[settled].index < e->index) {
            memset(&n->rep->prop[settled].res, 0, sizeof n->rep->prop[settled].res);
            n->rep->prop[settled++].lost = true;
        }
        if (settled < n->rep->nprop && n->rep->prop[settled].index == e->index) {
            struct proposal *p = &n->rep->prop[settled];
            p->res = res;
            /* A different term at this index: the proposal was overwritten by
             * another leader's entry and will never commit. */
            p->lost = e->term != p->term;
            settled++;
        }
    }
    int rc = sm_commit(&n->sm, false, &eb);
    if (rc) {
        modules_on_apply_end(n, false);
        replica_fence(n, rc, "applying committed entries", eb.msg);
        return rc;
    }
    modules_on_apply_end(n, true);
    struct proposal *done = replica_take(n, 0, settled);
    for (size_t i = 0; i < settled; i++)
        replica_answer(n, &done[i], &done[i].res, done[i].lost ? DDKV_WERR_UNAVAILABLE : 0,
                       "the leader changed before this write committed; it was not applied");
    free(done);
    return ERR_OK;
}

/* --- reads --- */

/* Answers from the applied state: VALUE for a key, LIST_RESULT for a page. */

static void replica_storage_error(struct conn *c, uint64_t rid, int rc, const struct errbuf *eb)
{
    conn_reply_error(c, rid, err_to_wire(rc), "storage: %s", eb->msg);
}

static void replica_reply_value(struct node *n, struct conn *c, uint64_t rid, const uint8_t *key, size_t klen)
{
    struct kv_record r;
    struct store_val hold;
    struct errbuf eb;
    int rc = sm_get(&n->sm, key, klen, &r, &hold, &eb);
    if (rc == ERR_NOT_FOUND) {
        conn_reply_error(c, rid, DDKV_WERR_NOT_FOUND, "key not found");
        return;
    }
    if (rc) {
        replica_storage_error(c, rid, rc, &eb);
        return;
    }
    struct msg_writer w;
    conn_reply_begin(c, &w, DDKV_MSG_VALUE, rid, 6);
    mw_bin(&w, key, klen);
    mw_bin(&w, r.value, r.vlen);
    mw_u64(&w, r.create_rev);
    mw_u64(&w, r.mod_rev);
    mw_u64(&w, r.version);
    mw_u64(&w, r.lamport);
    store_val_release(&hold);
    conn_reply_end(c, &w);
}

struct list_ctx {
    struct msg_writer *w;
    uint32_t count;
};

static int replica_list_entry(void *arg, const uint8_t *key, size_t klen, const struct kv_record *r)
{
    struct list_ctx *lc = arg;
    mw_array(lc->w, 6);
    mw_bin(lc->w, key, klen);
    mw_bin(lc->w, r->value, r->vlen);
    mw_u64(lc->w, r->create_rev);
    mw_u64(lc->w, r->mod_rev);
    mw_u64(lc->w, r->version);
    mw_u64(lc->w, r->lamport);
    lc->count++;
    return 0;
}

/* A LIST page from the applied state: cut at limit entries or at what fits in
 * a frame, whichever comes first; `more` tells the client to ask again from
 * its last key. */
static void replica_reply_list(struct node *n, struct conn *c, uint64_t rid, const uint8_t *prefix, size_t plen,
                   const uint8_t *after, size_t alen, uint32_t limit)
{
    /* Entries are packed first, into their own buffer, because the array
     * header needs the count; then the reply is assembled around them. */
    struct buf entries = BUF_INIT;
    struct msg_writer ew;
    msg_writer_raw(&ew, &entries);
    struct list_ctx lc = {.w = &ew};
    bool more = false;
    struct errbuf eb;
    /* Leave room for the header and per-entry overhead within one frame. */
    size_t max_bytes = n->cfg.max_frame_bytes / 2;
    int rc = sm_list(&n->sm, prefix, plen, after, alen, limit, max_bytes, replica_list_entry, &lc, &more, &eb);
    if (rc || ew.failed) {
        buf_free(&entries);
        replica_storage_error(c, rid, rc ? rc : ERR_NOMEM, &eb);
        return;
    }
    struct msg_writer w;
    conn_reply_begin(c, &w, DDKV_MSG_LIST_RESULT, rid, 3);
    mw_array(&w, lc.count);
    mw_raw(&w, entries.data, entries.len);
    mw_bool(&w, more);
    mw_u64(&w, n->sm.revision);
    buf_free(&entries);
    conn_reply_end(c, &w);
}

static void replica_reply_target(struct node *n, struct conn *c, uint64_t rid, const struct read_target *t)
{
    if (t->list)
        replica_reply_list(n, c, rid, t->key, t->klen, t->after, t->alen, t->limit);
    else
        replica_reply_value(n, c, rid, t->key, t->klen);
}


static void replica_read_answer(struct node *n, struct pending_read *r)
{
    if (r->done) {
        if (conn_is_open(r->c))
            r->done(n, r->c, r->request_id, r->done_arg);
        return;
    }
    if (conn_is_open(r->c))
        replica_reply_target(n, r->c, r->request_id, &r->t);
    node_observe(n, r->t.list ? DDKV_MSG_LIST : DDKV_MSG_READ, r->t0_ns);
}

static void replica_read_fail(struct node *n, struct pending_read *r, uint32_t code, const char *text)
{
    if (conn_is_open(r->c))
        conn_reply_error(r->c, r->request_id, code, "%s", text);
    (void)n;
}

/* Answer every parked read that may be answered now, and those past their
 * deadline with an error; keep the rest in order. */
static void replica_reads_settle(struct node *n, bool expire)
{
    uint64_t now = expire ? clock_mono_ms() : 0;
    size_t keep = 0;
    for (size_t i = 0; i < n->rep->nreads; i++) {
        struct pending_read *r = &n->rep->reads[i];
        bool done = true;
        if (r->ctx == 0 && n->sm.applied_lamport >= r->after_lamport) {
            replica_read_answer(n, r);
        } else if (n->rep->installing && !expire) {
            done = false; /* the state machine is being replaced */
        } else if (r->ctx != 0 && r->ready && n->sm.applied_index >= r->index) {
            replica_read_answer(n, r);
        } else if (expire && now >= r->deadline_ms) {
            n->stats.reads_timed_out++;
            replica_read_fail(n, r, DDKV_WERR_UNAVAILABLE,
                              r->ctx ? "no leader confirmed this read in time (an election?); retry"
                                     : "this member has not caught up to the requested Lamport time; "
                                       "retry or ask another member");
        } else {
            done = false;
        }
        if (done) {
            conn_unref(r->c);
            free(r->buf);
        } else {
            n->rep->reads[keep++] = *r;
        }
    }
    n->rep->nreads = keep;
}

void replica_read(struct node *n, struct conn *c, uint64_t request_id, const struct read_target *t,
                  uint32_t consistency, uint64_t after_lamport)
{
    uint32_t type = t->list ? DDKV_MSG_LIST : DDKV_MSG_READ;
    if (n->rep->storage_failed == ERR_CORRUPT) {
        conn_reply_error(c, request_id, DDKV_WERR_UNAVAILABLE,
                         "this member's data dir is damaged (fenced); ask another member");
        return;
    }
    if (n->rep->installing) {
        conn_reply_error(c, request_id, DDKV_WERR_UNAVAILABLE,
                         "this member is installing a snapshot; ask another or retry");
        return;
    }
    if (consistency == DDKV_CONSISTENCY_STALE ||
        (consistency == DDKV_CONSISTENCY_CAUSAL && n->sm.applied_lamport >= after_lamport)) {
        if (consistency == DDKV_CONSISTENCY_STALE)
            n->stats.reads_stale++;
        else
            n->stats.reads_causal++;
        replica_reply_target(n, c, request_id, t);
        node_observe(n, type, n->req_t0_ns);
        return;
    }
    uint64_t ctx = 0;
    if (consistency == DDKV_CONSISTENCY_LINEARIZABLE) {
        if (n->rep->storage_failed) {
            /* Fenced: alone in its configuration, nobody else can have
             * committed anything, so its state is the latest; with peers, a
             * newer leader may have, and another member must answer. */
            const struct raft_conf *conf = raft_get_conf(n->raft);
            if (raft_conf_voters(conf) == 1 && raft_conf_is_voter(conf, n->self_id)) {
                n->stats.reads_linearizable++;
                replica_reply_target(n, c, request_id, t);
                node_observe(n, type, n->req_t0_ns);
            } else {
                conn_reply_error(c, request_id, DDKV_WERR_UNAVAILABLE,
                                 "this member stopped taking part in consensus after a storage failure");
            }
            return;
        }
        ctx = ++n->rep->read_ctx;
        if (raft_read_index(n->raft, ctx) != ERR_OK) {
            conn_reply_error(c, request_id, DDKV_WERR_UNAVAILABLE, "no leader known (an election?); retry");
            return;
        }
        n->stats.reads_linearizable++;
    } else {
        n->stats.reads_causal++;
    }
    if (n->rep->nreads == n->rep->capreads)
        n->rep->reads = replica_grow(n->rep->reads, &n->rep->capreads, sizeof *n->rep->reads);
    uint8_t *k = malloc(t->klen + t->alen + 1);
    ASSERT(k != NULL);
    if (t->klen)
        memcpy(k, t->key, t->klen);
    if (t->alen)
        memcpy(k + t->klen, t->after, t->alen);
    struct read_target own = *t;
    own.key = k;
    own.after = k + t->klen;
    conn_ref(c);
    n->rep->reads[n->rep->nreads++] = (struct pending_read){
        .c = c, .request_id = request_id, .ctx = ctx, .after_lamport = after_lamport,
        .deadline_ms = clock_mono_ms() + 2 * (uint64_t)n->cfg.election_timeout_ms,
        .t0_ns = n->req_t0_ns, .t = own, .buf = k};
}

void replica_read_barrier(struct node *n, struct conn *c, uint64_t request_id,
                          void (*done)(struct node *n, struct conn *c, uint64_t request_id, uint64_t arg),
                          uint64_t arg)
{
    ASSERT(!n->rep->storage_failed && !n->rep->installing);
    static const struct read_target nothing = {0};
    size_t before = n->rep->nreads;
    replica_read(n, c, request_id, &nothing, DDKV_CONSISTENCY_LINEARIZABLE, 0);
    /* Parked (or refused with an error, and then there is nothing to do). */
    if (n->rep->nreads > before) {
        n->rep->reads[n->rep->nreads - 1].done = done;
        n->rep->reads[n->rep->nreads - 1].done_arg = arg;
    }
}

/* Every tick: time out reads and writes that can no longer be settled here
 * (this member lost its leader, or its leadership), and count leader changes. */
static void replica_sweep(struct node *n)
{
    replica_reads_settle(n, true);
    if (!n->raft)
        return;
    struct raft_status st;
    raft_status(n->raft, &st);
    if (st.leader && st.leader != n->rep->last_leader) {
        n->stats.leader_changes++;
        modules_on_leader(n, st.leader, st.term);
    }
    if (st.leader)
        n->rep->last_leader = st.leader;
    /* A write waits for its entry to apply here; if this member is cut off
     * it may never learn the outcome. Give up on it after a long while:
     * outcome unknown (the client's session makes its retry safe). */
    uint64_t limit_ns = (uint64_t)n->cfg.election_timeout_ms * 10 * 1000000u;
    uint64_t now = clock_mono_ns();
    size_t k = 0;
    while (k < n->rep->nprop && now - n->rep->prop[k].t0_ns > limit_ns)
        k++;
    replica_fail_props(n, replica_take(n, 0, k), k, DDKV_WERR_TIMEOUT,
                       "the write was not seen to commit in time; its outcome is unknown");
}

/* Keep the clock above every Lamport time in the log, so a member that becomes
 * leader hands out times above those of entries it holds but has not applied:
 * committed entries' times never go down across leader changes. */
static void replica_observe_entries(struct node *n, const struct raft_entry *e, size_t count)
{
    for (size_t i = 0; i < count; i++) {
        struct cmd *c = &replica_cmd;
        if (e[i].type == RAFT_ENTRY_NORMAL && e[i].len > 0 &&
            cmd_decode(e[i].data, e[i].len, c) == ERR_OK)
            (void)lamport_observe_member(&n->clock, c->lamport, clock_mono_ms());
    }
}

/* --- snapshots --- */

static void replica_snap_dir(struct node *n, char *out, size_t cap)
{
    snprintf(out, cap, "%s/snap", n->cfg.data_dir);
}

/* The core reads the image it sends to a follower from here. A node that
 * installed a received image may lead later and send that one on. */
static int replica_snap_read(void *ud, const struct raft_snap_meta *meta, uint64_t offset, uint8_t *buf,
                             size_t cap, size_t *len, bool *last)
{
    struct node *n = ud;
    char dir[512], path[600];
    struct errbuf eb;
    replica_snap_dir(n, dir, sizeof dir);
    static const char *const exts[] = {"snap", "recv"};
    int rc = ERR_NOT_FOUND;
    errf(&eb, ERR_NOT_FOUND, "no image file for index %llu term %llu in %s", (unsigned long long)meta->index,
         (unsigned long long)meta->term, dir);
    for (int i = 0; i < 2 && rc == ERR_NOT_FOUND; i++) {
        if (snap_path(path, sizeof path, dir, meta->index, meta->term, exts[i], &eb) != ERR_OK)
            break;
        /* A send starts at offset 0: check the whole image once (its CRCs
         * and length) so a damaged one is replaced instead of being sent
         * again and again to a follower that refuses it. */
        if (offset == 0 && (n->rep->snap_verified_index != meta->index || n->rep->snap_verified_term != meta->term)) {
            rc = n->io->snap_verify(n, path, &eb);
            if (rc == ERR_NOT_FOUND)
                continue;
            if (rc != ERR_OK)
                break;
            n->rep->snap_verified_index = meta->index;
            n->rep->snap_verified_term = meta->term;
        }
        rc = n->io->snap_read(n, path, offset, buf, cap, len, last, &eb);
    }
    if (rc == ERR_OK)
        return ERR_OK;
    /* The image a follower needs cannot be read: say so once, count it,
     * and take a fresh snapshot to send instead (replica_snap_tick). */
    if (n->rep->snap_bad_index != meta->index || !n->rep->snap_force) {
        n->rep->snap_bad_index = meta->index;
        n->stats.snap_image_errors++;
        n->rep->snap_verified_index = 0;
        log_error("snapshot image for index %llu (term %llu) cannot be sent: %s; taking a fresh snapshot "
                  "to send instead",
                  (unsigned long long)meta->index, (unsigned long long)meta->term, eb.msg);
    }
    n->rep->snap_force = true;
    return ERR_NOT_FOUND;
}

/* Every tick: start a snapshot when the log grew past the threshold since the
 * last one; when one finished, compact the log up to it. */
/* Every tick: start a snapshot when the log grew past the threshold since the
 * last one; when one finished, compact the log -- up to the *previous* image,
 * not this one. The log thus keeps at least --snapshot-entries entries past
 * the image followers are sent, so a follower a little behind (entries in
 * flight, a short pause) catches up from the log instead of being sent a
 * whole image (etcd keeps a catch-up tail for the same reason). */
static void replica_snap_tick(struct node *n)
{
    struct errbuf eb;
    char dir[512];
    replica_snap_dir(n, dir, sizeof dir);
    if (n->rep->snap_job) {
        int rc;
        if (!n->io->snap_job_done(n, n->rep->snap_job, &rc, &eb))
            return;
        n->io->snap_job_free(n, n->rep->snap_job);
        n->rep->snap_job = NULL;
        if (rc) {
            log_error("snapshot at %llu failed: %s", (unsigned long long)n->rep->snap_index_taking, eb.msg);
            return;
        }
        n->stats.snapshots_taken++;
        n->rep->snap_image_bytes = n->io->snap_bytes(n, n->rep->snap_taking);
        uint64_t prev = n->rep->snap_newest;
        char prev_path[600];
        snprintf(prev_path, sizeof prev_path, "%s", n->rep->snap_newest_path);
        n->rep->snap_newest = n->rep->snap_index_taking;
        snprintf(n->rep->snap_newest_path, sizeof n->rep->snap_newest_path, "%s", n->rep->snap_taking);
        uint64_t first = raft_get_snap(n->raft)->index + 1;
        if (n->rep->snap_forcing) {
            /* Taken to replace an image that could not be read: compact to
             * this one, so it is what followers are sent from now on. */
            n->rep->snap_forcing = false;
            n->rep->snap_verified_index = 0;
            prev = n->rep->snap_newest;
            snprintf(prev_path, sizeof prev_path, "%s", n->rep->snap_newest_path);
            if (prev < first) { /* the same index: its file was rewritten in place */
                (void)snap_prune(dir, prev_path, &eb);
                log_info("snapshot at index %llu written again, replacing the unreadable image",
                         (unsigned long long)prev);
                return;
            }
        }
        if (prev < first || raft_compact(n->raft, prev) != ERR_OK) {
            log_info("snapshot at index %llu written", (unsigned long long)n->rep->snap_newest);
            return;
        }
        /* The image is durable (fsynced, renamed) before its metadata is
         * written: a crash in between leaves the log as it was. */
        struct store_batch *b = store_batch_new(n->st);
        raftlog_stage_snapshot(b, raft_get_snap(n->raft));
        raftlog_stage_compact(b, first, prev);
        rc = store_write(n->st, b, false, &eb);
        store_batch_free(b);
        if (rc) {
            replica_fence(n, rc, "recording a snapshot", eb.msg);
            return;
        }
        n->rep->log_first = prev + 1;
        (void)snap_prune(dir, prev_path, &eb);
        log_info("snapshot at index %llu written; log compacted up to the one before, at %llu",
                 (unsigned long long)n->rep->snap_newest, (unsigned long long)prev);
        return;
    }
    uint64_t applied = n->sm.applied_index;
    uint64_t base = raft_get_snap(n->raft)->index;
    if (n->rep->snap_newest > base)
        base = n->rep->snap_newest;
    bool force = n->rep->snap_force && !n->rep->installing && applied > 0;
    if (force) {
        n->rep->snap_force = false;
        n->rep->snap_forcing = true;
    } else if (n->rep->installing || applied < base + n->cfg.snapshot_entries ||
               n->rep->snap_log_bytes < n->rep->snap_image_bytes / SNAP_LOG_SHARE) {
        return;
    }
    uint64_t term;
    if (!raft_log_term(n->raft, applied, &term)) {
        n->rep->snap_force |= force;
        n->rep->snap_forcing = false;
        return;
    }
    if (snap_path(n->rep->snap_taking, sizeof n->rep->snap_taking, dir, applied, term, "snap", &eb) != ERR_OK ||
        n->io->snap_write_start(n, n->rep->snap_taking, applied, term, &n->rep->snap_job, &eb) != ERR_OK) {
        log_error("cannot start a snapshot at %llu: %s", (unsigned long long)applied, eb.msg);
        n->rep->snap_force |= force;
        n->rep->snap_forcing = false;
        return;
    }
    n->rep->snap_index_taking = applied;
    n->rep->snap_log_bytes = 0;
}

/* A snapshot image arrived: install it in the background, keeping the ready
 * batch open (no raft_advance) until it is in. */
static bool replica_install_begin(struct node *n, const struct raft_ready *rd)
{
    struct errbuf eb;
    const struct raft_snap_meta *m = rd->install;
    if (!n->rep->recv_done[0]) {
        replica_fence(n, ERR_IO, "installing a snapshot", "the image for it was not received");
        return false;
    }
    struct store_batch *b = store_batch_new(n->st);
    raftlog_stage_snapshot(b, m);
    if (n->rep->log_last >= n->rep->log_first)
        raftlog_stage_compact(b, n->rep->log_first, n->rep->log_last);
    if (rd->hs_changed)
        raftlog_stage_hard_state(b, &rd->hs);
    int rc = n->io->snap_install_start(n, n->rep->recv_done, b, &n->rep->install_job, &eb);
    if (rc) {
        store_batch_free(b);
        replica_fence(n, rc, "installing a snapshot", eb.msg);
        return false;
    }
    n->rep->install_batch = b;
    n->rep->installing = true;
    n->rep->pending = *rd;
    log_info("installing snapshot at index %llu (term %llu) from %s", (unsigned long long)m->index,
             (unsigned long long)m->term, n->rep->recv_done);
    return true;
}

/* Finish an install once its job is done. Returns false while it runs. */
static bool replica_install_end(struct node *n)
{
    struct errbuf eb;
    int rc;
    if (!n->io->snap_job_done(n, n->rep->install_job, &rc, &eb))
        return false;
    n->io->snap_job_free(n, n->rep->install_job);
    n->rep->install_job = NULL;
    store_batch_free(n->rep->install_batch);
    n->rep->install_batch = NULL;
    n->rep->installing = false;
    if (rc) {
        replica_fence(n, rc, "installing a snapshot", eb.msg);
        return true;
    }
    const struct raft_snap_meta *m = n->rep->pending.install;
    sm_close(&n->sm);
    if ((rc = sm_open(&n->sm, n->st, &eb)) || (rc = cluster_reload(n, &eb))) {
        replica_fence(n, rc, "reopening the state machine after a snapshot", eb.msg);
        return true;
    }
    replica_sm_hooks(n);
    modules_on_state_replaced(n, n->sm.applied_index);
    /* The image came from a member: its time is a member's, budgeted. */
    (void)lamport_observe_member(&n->clock, n->sm.applied_lamport, clock_mono_ms());
    n->rep->log_first = m->index + 1;
    n->rep->log_last = m->index;
    n->rep->snap_newest = 0; /* the received image is the base now */
    n->rep->snap_newest_path[0] = 0;
    if (n->rep->pending.hs_changed)
        n->rep->hs_synced = n->rep->pending.hs;
    n->stats.snapshots_installed++;
    log_info("installed snapshot at index %llu: %llu keys", (unsigned long long)m->index,
             (unsigned long long)n->sm.keys);
    /* Writes this member proposed as leader that the image covers: their
     * fate is not known here (the client's session makes a retry safe). */
    size_t k = 0;
    while (k < n->rep->nprop && n->rep->prop[k].index <= m->index)
        k++;
    replica_fail_props(n, replica_take(n, 0, k), k, DDKV_WERR_TIMEOUT,
                       "a snapshot replaced this member's log; the write's outcome is unknown");
    char dir[512];
    replica_snap_dir(n, dir, sizeof dir);
    (void)snap_prune(dir, n->rep->recv_done, &eb);
    n->rep->recv_done[0] = 0;
    return true;
}

/* Mark the reads whose ReadIndex round completed: they are answered once
 * applied reaches their index. */
static void replica_reads_ready(struct node *n, const struct raft_ready *rd)
{
    for (size_t i = 0; i < rd->n_reads; i++) {
        for (size_t j = 0; j < n->rep->nreads; j++) {
            if (n->rep->reads[j].ctx == rd->reads[i].ctx) {
                n->rep->reads[j].ready = true;
                n->rep->reads[j].index = rd->reads[i].index;
                break;
            }
        }
    }
}

/* Steps 3-5 once the batch's entries are durable: apply what is left of its
 * committed entries (the first `done` were applied before the sync), settle
 * reads, advance. */
static void replica_complete(struct node *n, const struct raft_ready *rd, size_t done)
{
    if (rd->n_committed > done &&
        replica_apply(n, rd->committed + done, rd->n_committed - done) != ERR_OK)
        return;
    replica_reads_ready(n, rd);
    if (n->rep->nreads)
        replica_reads_settle(n, false);
    raft_advance(n->raft, rd);
}

/* How many of rd's committed entries were durable before this batch: at or
 * below the log written by earlier syncs, and below the first entry this
 * batch (re)writes. Committed entries are never replaced, so these may be
 * applied while the batch's own sync runs. */
static size_t replica_durable_committed(const struct node *n, const struct raft_ready *rd)
{
    uint64_t bound = n->rep->log_last;
    if (rd->n_entries && rd->entries[0].index - 1 < bound)
        bound = rd->entries[0].index - 1;
    size_t k = 0;
    while (k < rd->n_committed && rd->committed[k].index <= bound)
        k++;
    return k;
}

/* The sync of the pending batch finished (rc): its entries and hard state
 * are durable; finish the batch. */
static void replica_sync_done(struct node *n, int rc, uint64_t ns, const char *detail)
{
    const struct raft_ready *rd = &n->rep->pending;
    n->rep->syncing = false;
    if (n->rep->storage_failed)
        return; /* fenced meanwhile: rejoining rebuilds from the store */
    hist_record(&n->rep->h_commit, ns);
    n->stats.commits++;
    n->stats.commit_entries += rd->n_entries;
    if (rc) {
        replica_fence(n, rc, "syncing the Raft log", detail);
        return;
    }
    if (rd->n_entries) {
        n->rep->log_last = rd->entries[rd->n_entries - 1].index;
        for (size_t i = 0; i < rd->n_entries; i++)
            modules_on_appended(n, &rd->entries[i]);
    }
    if (rd->hs_changed)
        n->rep->hs_synced = rd->hs;
    replica_complete(n, rd, n->rep->sync_applied);
}

/* Wait for (block) or check the sync in flight; true once it is finished
 * and its batch dealt with. */
static bool replica_sync_end(struct node *n, bool block)
{
    int rc;
    uint64_t ns;
    struct errbuf eb = {0};
    if (block)
        n->io->sync_wait(n, &rc, &ns, &eb);
    else if (!n->io->sync_poll(n, &rc, &ns, &eb))
        return false;
    replica_sync_done(n, rc, ns, eb.msg);
    return true;
}

/* Steps 2-5 of a ready batch.
 *
 * 2. persist: the new entries (replacing a conflicting suffix) and the hard
 * state. Entries, term and vote must be durable before anything that depends
 * on them is said (the core holds those messages until the advance); a
 * commit index alone need not be (it is learned again, and raft_create takes
 * max(commit, applied)), so when only it moved it rides along, unsynced, in
 * the batch that applies the entries it commits. A batch that must be
 * durable is written unsynced here and synced by the log syncer thread while
 * the loop goes on; committed entries that were already durable are applied
 * (and their writes answered) at once, the rest when the sync is done. */
static void replica_finish(struct node *n, const struct raft_ready *rd)
{
    struct errbuf eb;
    bool sync = rd->n_entries > 0 || rd->hs.term != n->rep->hs_synced.term ||
                rd->hs.vote != n->rep->hs_synced.vote;
    if (!sync) {
        if (rd->hs_changed && rd->n_committed == 0) {
            store_batch_clear(n->rep->logb);
            raftlog_stage_hard_state(n->rep->logb, &rd->hs);
            int rc = store_write(n->st, n->rep->logb, false, &eb);
            if (rc) {
                replica_fence(n, rc, "writing the Raft hard state", eb.msg);
                return;
            }
        } else if (rd->hs_changed) {
            raftlog_stage_hard_state(n->sm.batch, &rd->hs);
        }
        replica_complete(n, rd, 0);
        return;
    }
    store_batch_clear(n->rep->logb);
    raftlog_stage_entries(n->rep->logb, rd->entries, rd->n_entries, n->rep->log_last);
    if (rd->hs_changed)
        raftlog_stage_hard_state(n->rep->logb, &rd->hs);
    int rc = store_write(n->st, n->rep->logb, false, &eb);
    if (rc) {
        replica_fence(n, rc, "writing the Raft log", eb.msg);
        return;
    }
    replica_observe_entries(n, rd->entries, rd->n_entries);
    size_t k = replica_durable_committed(n, rd);
    if (k && replica_apply(n, rd->committed, k) != ERR_OK)
        return;
    replica_reads_ready(n, rd);
    if (n->rep->nreads)
        replica_reads_settle(n, false);
    n->rep->pending = *rd;
    n->rep->sync_applied = k;
    n->rep->syncing = true;
    n->io->sync_submit(n);
}

void replica_drive(struct node *n)
{
    /* A checksum that failed anywhere (a client's read, a scan, a
     * background compaction) fences the member: what else on its disk
     * changed is not known, so it neither votes, acknowledges nor serves. */
    const char *why;
    if (n->rep->storage_failed != ERR_CORRUPT && store_corruption(n->st, &why))
        replica_fence(n, ERR_CORRUPT, "reading the store", why);
    if (!n->rep->storage_failed)
        replica_note_commit(n);
    if (n->rep->syncing && !replica_sync_end(n, false))
        return;
    if (n->rep->installing) {
        if (!replica_install_end(n))
            return;
        if (n->rep->storage_failed)
            return;
        struct raft_ready rd = n->rep->pending;
        replica_finish(n, &rd);
    }
    while (!n->rep->storage_failed && !n->rep->syncing && raft_has_ready(n->raft)) {
        struct raft_ready rd;
        raft_ready(n->raft, &rd);
        /* 1. send: messages that need durable state are held by the core
         * until the advance that made it durable, so sending before the
         * fsync is safe; flushing now lets followers write while we do. */
        for (size_t i = 0; i < rd.n_msgs; i++) {
            if (!cluster_may_send(n, &rd.msgs[i]))
                continue; /* as if lost: the core sends again */
            int rc = n->io->send(n, &rd.msgs[i]);
            if (rc != ERR_OK && rc != ERR_AGAIN)
                log_debug("cannot send %s to %llx: %s", raft_msg_type_name(rd.msgs[i].type),
                          (unsigned long long)rd.msgs[i].to, err_str(rc));
        }
        if (rd.n_msgs)
            n->io->flush(n);
        /* Snapshot bytes, then the install (in the background: the ready
         * stays open and the rest of it is done when the install is). */
        if (rd.chunk) {
            const struct raft_snap_chunk *ch = rd.chunk;
            char dir[512];
            struct errbuf eb;
            replica_snap_dir(n, dir, sizeof dir);
            if (ch->offset == 0)
                n->rep->recv_done[0] = 0;
            int rc = snap_recv_chunk(&n->rep->srecv, dir, ch->meta.index, ch->meta.term, ch->offset, ch->data,
                                     ch->len, ch->last, n->rep->recv_done, sizeof n->rep->recv_done, &eb);
            if (rc) {
                replica_fence(n, rc, "receiving a snapshot", eb.msg);
                return;
            }
        }
        if (rd.install) {
            if (replica_install_begin(n, &rd))
                return;
            return; /* fenced */
        }
        replica_finish(n, &rd);
    }
}
