/* The node's Raft driver: start-up from disk, proposals, and the one loop that
 * orders persist -> send -> apply -> answer for everything a turn produced. */
#include <event2/event.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "kv/cmd.h"
#include "kv/raftlog.h"
#include "node/server.h"
#include "util/clock.h"
#include "util/log.h"

/* Until the peer transport lands, a node is a one-voter cluster with this id. */
#define REPLICA_SELF_ID 1

/* The highest Lamport time among committed-but-unapplied commands, so the
 * clock restarts above every time the log has ever handed out. */
static uint64_t replica_log_lamport(const struct raftlog_loaded *l, uint64_t applied)
{
    uint64_t max = 0;
    for (size_t i = 0; i < l->n_entries; i++) {
        const struct raft_entry *e = &l->entries[i];
        struct cmd c;
        if (e->index > applied && e->type == RAFT_ENTRY_NORMAL && e->len > 0 &&
            cmd_decode(e->data, e->len, &c) == ERR_OK && c.lamport > max)
            max = c.lamport;
    }
    return max;
}

static void replica_tick_cb(evutil_socket_t fd, short what, void *arg)
{
    struct node *n = arg;
    (void)fd;
    (void)what;
    if (!n->storage_failed)
        raft_tick(n->raft);
}

int replica_start(struct node *n, struct errbuf *eb)
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
        /* A founding member: its configuration is the first entries of its
         * log, made durable before the core is created. */
        struct raft_conf conf = {.n = 1, .ids = {REPLICA_SELF_ID}};
        rc = raft_bootstrap(&conf, &bb, &p);
        ASSERT(rc == ERR_OK);
        struct store_batch *b = store_batch_new(n->st);
        raftlog_stage_entries(b, p.entries, p.n_entries, 0);
        raftlog_stage_hard_state(b, &p.hs);
        rc = store_write(n->st, b, true, eb);
        store_batch_free(b);
        if (rc) {
            raftlog_loaded_free(&l);
            return rc;
        }
        n->log_last = p.entries[p.n_entries - 1].index;
        log_info("bootstrapped a new one-node cluster");
    } else {
        p.hs = l.hs;
        p.snap = l.snap;
        p.entries = l.entries;
        p.n_entries = l.n_entries;
        n->log_last = l.n_entries ? l.entries[l.n_entries - 1].index : l.snap.index;
    }
    p.applied = n->sm.applied_index;
    n->hs_synced = p.hs;
    uint64_t log_lamport = replica_log_lamport(&l, p.applied);
    if (log_lamport > n->clock.now)
        n->clock.now = log_lamport;

    struct raft_config rc_cfg;
    raft_config_defaults(&rc_cfg, REPLICA_SELF_ID);
    rc_cfg.heartbeat_ticks = 1;
    rc_cfg.election_ticks = n->cfg.election_timeout_ms / n->cfg.heartbeat_ms;
    /* Election jitter only; nothing about safety depends on this seed. */
    rc_cfg.seed = clock_mono_ns() ^ ((uint64_t)getpid() << 32);
    rc_cfg.max_uncommitted = 65536;
    rc = raft_create(&rc_cfg, &p, &n->raft, eb);
    raftlog_loaded_free(&l);
    if (rc)
        return rc;
    n->logb = store_batch_new(n->st);
    n->tick = event_new(n->base, -1, EV_PERSIST, replica_tick_cb, n);
    uint32_t ms = n->cfg.heartbeat_ms;
    struct timeval tv = {(time_t)(ms / 1000), (suseconds_t)(ms % 1000) * 1000};
    event_add(n->tick, &tv);
    /* The only voter need not wait out an election timeout. */
    if (raft_conf_voters(raft_get_conf(n->raft)) == 1 &&
        raft_conf_is_voter(raft_get_conf(n->raft), REPLICA_SELF_ID))
        raft_campaign(n->raft);
    replica_drive(n);
    return ERR_OK;
}

void replica_stop(struct node *n)
{
    if (n->tick)
        event_free(n->tick);
    n->tick = NULL;
    store_batch_free(n->logb);
    n->logb = NULL;
    if (n->raft)
        raft_destroy(n->raft);
    n->raft = NULL;
}

int replica_propose(struct node *n, struct conn *c, uint64_t request_id, uint32_t reply_kind,
                    const struct sm_op *op)
{
    struct cmd cmd = {.op = *op, .lamport = lamport_tick(&n->clock)};
    buf_reset(&n->cmdbuf);
    if (cmd_encode(&cmd, &n->cmdbuf) != ERR_OK)
        return ERR_NOMEM;
    uint64_t index, term;
    int rc = raft_propose(n->raft, n->cmdbuf.data, n->cmdbuf.len, &index, &term);
    if (rc)
        return rc;
    if (n->nprop == n->capprop) {
        size_t cap = n->capprop ? n->capprop * 2 : 64;
        struct proposal *p = realloc(n->prop, cap * sizeof *p);
        ASSERT(p != NULL);
        n->prop = p;
        n->capprop = cap;
    }
    /* Proposals are appended in index order; the queue stays sorted. */
    ASSERT(n->nprop == 0 || n->prop[n->nprop - 1].index < index);
    conn_ref(c);
    n->prop[n->nprop++] = (struct proposal){.c = c, .request_id = request_id, .kind = reply_kind,
                                            .index = index, .term = term, .t0_ns = n->req_t0_ns};
    return ERR_OK;
}

static void replica_answer(struct node *n, struct proposal *p, const struct sm_result *res,
                           uint32_t err_code, const char *err_text)
{
    if (conn_is_open(p->c)) {
        if (err_code) {
            conn_reply_error(p->c, p->request_id, err_code, "%s", err_text);
        } else if (p->kind == DDKV_MSG_DELETED && !res->found) {
            conn_reply_error(p->c, p->request_id, DDKV_WERR_NOT_FOUND, "key not found");
        } else {
            struct msg_writer w;
            conn_reply_begin(p->c, &w, p->kind, p->request_id, 2);
            mw_u64(&w, res->lamport);
            mw_u64(&w, res->revision);
            conn_reply_end(p->c, &w);
        }
    }
    node_observe(n, p->kind == DDKV_MSG_DELETED ? DDKV_MSG_DELETE : DDKV_MSG_WRITE, p->t0_ns);
    conn_unref(p->c);
}

/* Storage failed: the core assumes what it handed out was persisted, so it
 * must not be driven again. Answer what is in flight as outcome unknown, and
 * refuse writes until an operator restarts the node (ARCHITECTURE.md). */
static void replica_fence(struct node *n, int rc, const char *what, const char *detail)
{
    n->storage_failed = rc;
    n->stats.commit_errors++;
    log_error("%s failed: %s; this node stops taking part in consensus and refuses writes "
              "(free space, then restart it)", what, detail);
    char text[96];
    snprintf(text, sizeof text, "storage failure (%s)", rc == ERR_NOSPACE ? "disk full" : err_str(rc));
    struct sm_result none = {0};
    for (size_t i = 0; i < n->nprop; i++)
        replica_answer(n, &n->prop[i], &none, DDKV_WERR_INTERNAL, text);
    n->nprop = 0;
}

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
        struct cmd c;
        if (e->type == RAFT_ENTRY_NORMAL && e->len > 0) {
            if (cmd_decode(e->data, e->len, &c) != ERR_OK) {
                /* Every member holds the same bytes: applying them differently
                 * or skipping them would fork the state. Stop. */
                log_error("committed entry %llu is not a valid command: the log is corrupt",
                          (unsigned long long)e->index);
                abort();
            }
            op = c.op;
            lamport = c.lamport;
        }
        struct sm_result res;
        int rc = sm_stage(&n->sm, e->index, lamport, &op, &res, &eb);
        if (rc) {
            replica_fence(n, rc, "applying committed entries", eb.msg);
            return rc;
        }
        if (lamport_observe(&n->clock, lamport, 0) != ERR_OK) {
            log_error("committed entry %llu carries Lamport time %llu, out of range",
                      (unsigned long long)e->index, (unsigned long long)lamport);
            abort();
        }
        /* Match the proposal waiting for this index, if any. */
        /* Proposals below this index that no entry settled cannot exist while
         * entries apply in order; if one did, it never committed. */
        while (settled < n->nprop && n->prop[settled].index < e->index) {
            memset(&n->prop[settled].res, 0, sizeof n->prop[settled].res);
            n->prop[settled++].lost = true;
        }
        if (settled < n->nprop && n->prop[settled].index == e->index) {
            struct proposal *p = &n->prop[settled];
            p->res = res;
            /* A different term at this index: the proposal was overwritten by
             * another leader's entry and will never commit. */
            p->lost = e->term != p->term;
            settled++;
        }
    }
    int rc = sm_commit(&n->sm, false, &eb);
    if (rc) {
        replica_fence(n, rc, "applying committed entries", eb.msg);
        return rc;
    }
    for (size_t i = 0; i < settled; i++) {
        struct proposal *p = &n->prop[i];
        replica_answer(n, p, &p->res, p->lost ? DDKV_WERR_UNAVAILABLE : 0,
                       "the leader changed before this write committed; it was not applied");
    }
    if (settled) {
        memmove(n->prop, n->prop + settled, (n->nprop - settled) * sizeof *n->prop);
        n->nprop -= settled;
    }
    return ERR_OK;
}

void replica_drive(struct node *n)
{
    while (!n->storage_failed && raft_has_ready(n->raft)) {
        struct raft_ready rd;
        raft_ready(n->raft, &rd);
        if (rd.chunk || rd.install) {
            /* Snapshots arrive with the replicated cluster; a one-voter node
             * never receives one. */
            replica_fence(n, ERR_IO, "installing a snapshot", "not supported by this version");
            return;
        }
        /* 1. persist: the new entries (replacing a conflicting suffix) and the
         * hard state, in one synced batch. Entries, term and vote must be on
         * disk before anything that depends on them is said; a commit index
         * alone need not be (it is learned again, and raft_create takes
         * max(commit, applied)), so when only it moved it rides along,
         * unsynced, in the batch that applies the entries it commits. */
        bool sync = rd.n_entries > 0 || rd.hs.term != n->hs_synced.term ||
                    rd.hs.vote != n->hs_synced.vote;
        if (sync || (rd.hs_changed && rd.n_committed == 0)) {
            struct errbuf eb;
            store_batch_clear(n->logb);
            raftlog_stage_entries(n->logb, rd.entries, rd.n_entries, n->log_last);
            if (rd.hs_changed)
                raftlog_stage_hard_state(n->logb, &rd.hs);
            uint64_t t0 = clock_mono_ns();
            int rc = store_write(n->st, n->logb, sync, &eb);
            if (sync) {
                hist_record(&n->h_commit, clock_mono_ns() - t0);
                n->stats.commits++;
                n->stats.commit_entries += rd.n_entries;
            }
            if (rc) {
                replica_fence(n, rc, "writing the Raft log", eb.msg);
                return;
            }
            if (rd.n_entries)
                n->log_last = rd.entries[rd.n_entries - 1].index;
            if (rd.hs_changed && sync)
                n->hs_synced = rd.hs;
        } else if (rd.hs_changed) {
            raftlog_stage_hard_state(n->sm.batch, &rd.hs);
        }
        /* 2. send: a one-voter cluster has no one to send to. */
        ASSERT(rd.n_msgs == 0);
        /* 3. apply, and answer the writes it settles. */
        if (rd.n_committed && replica_apply(n, rd.committed, rd.n_committed) != ERR_OK)
            return;
        raft_advance(n->raft, &rd);
    }
}
