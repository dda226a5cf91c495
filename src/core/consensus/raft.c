/* Owns the Raft protocol: terms, votes and roles, elections (pre-vote,
 * check-quorum), replication and commit, snapshots, reads, leadership
 * transfer, membership, and the ready/advance cycle that keeps
 * persist-before-send in one place. */
#include "consensus/raft.h"

#include <stdlib.h>
#include <string.h>

#include "consensus/progress.h"
#include "consensus/rlog.h"

/* Outgoing messages wait in an outbox. A message that needs durable state is
 * born WAIT_READY; the next raft_ready moves it to WAIT_ADVANCE (the state it
 * depends on is in that batch), and the raft_advance of that batch makes it
 * SEND, so the ready after that hands it out. */
enum ob_state { OB_SEND = 0, OB_WAIT_READY = 1, OB_WAIT_ADVANCE = 2 };

struct outbox {
    struct raft_msg *msgs;
    uint8_t *state;
    size_t *ent_off; /* first entry of msgs[i] in ents (pointers fixed at ready) */
    size_t n, cap;
    struct raft_entry *ents;
    size_t n_ents, cap_ents;
};

struct read_req {
    uint64_t ctx;
    uint64_t index; /* 0 while deferred: no entry of this term committed yet */
    uint64_t round; /* heartbeat round whose quorum of acks confirms it */
    uint64_t from;  /* 0: local; else the follower that forwarded it */
};

/* Heartbeat rounds remembered for lease reads (send tick of each round). */
#define ROUND_RING 64

struct entbuf {
    struct raft_entry *v;
    size_t n, cap;
};

struct raft {
    struct raft_config cfg;
    uint64_t id;
    uint64_t prng;

    /* Persistent state (thesis figure 3.1) and its durable copy. */
    uint64_t term, vote, commit;
    struct rlog log;
    struct raft_hard_state hs_durable;
    struct raft_snap_meta snap;   /* latest snapshot (compaction or install) */
    struct raft_conf conf;        /* latest configuration in the log (4.1) */
    uint64_t conf_index;          /* index of the entry (or snapshot) that set it */

    /* Volatile state. */
    enum raft_role role;
    uint64_t lead;
    uint64_t applied;
    uint64_t leader_commit; /* highest commit index a leader told us of (ours, when leading) */
    uint64_t regressions;   /* followers found holding less than they had acknowledged */
    uint64_t ticks;
    uint32_t election_elapsed, heartbeat_elapsed, rand_timeout;

    uint32_t n_votes;
    uint64_t vote_from[RAFT_MAX_NODES];
    bool vote_granted[RAFT_MAX_NODES];

    /* Leader. */
    struct progress prs[RAFT_MAX_NODES];
    uint32_t n_prs;
    bool bcast_pending;
    uint64_t transferee;
    uint32_t transfer_elapsed;
    bool lease_broken; /* a TimeoutNow went out in this term: no lease reads */

    /* Reads. */
    struct read_req *reqs;
    size_t n_reqs, cap_reqs;
    uint64_t read_round;
    bool round_pending;
    uint64_t round_tick[ROUND_RING];
    struct raft_read_state *rs;
    size_t n_rs, cap_rs;

    /* Snapshot receiving (follower). */
    bool recv_active;
    struct raft_snap_meta recv_meta;
    uint64_t recv_from, recv_term; /* two leaders' images of one index may differ */
    uint64_t recv_off;
    bool chunk_pending;            /* chunk not yet handed out in a ready */
    struct raft_snap_chunk chunk;
    struct raft_blob *chunk_blob;
    bool install_pending;
    struct raft_snap_meta install;

    /* The ready batch in flight. */
    struct outbox ob[2];
    int ob_cur;
    bool rd_inflight;
    struct entbuf rd_ents, rd_committed;
    struct raft_read_state *rd_rs;
    size_t rd_n_rs, rd_cap_rs;
    uint64_t rd_last_index, rd_last_term;
    bool rd_has_chunk, rd_has_install;
    struct raft_snap_chunk rd_chunk;
    struct raft_blob *rd_chunk_blob;
    struct raft_snap_meta rd_install;
};

enum campaign_kind { CAMPAIGN_PRE, CAMPAIGN_ELECTION, CAMPAIGN_TRANSFER };

static void raft_become_follower(struct raft *r, uint64_t term, uint64_t lead);
static bool raft_send_append(struct raft *r, struct progress *pr, bool send_empty);
static void raft_conf_changed(struct raft *r);
static void raft_release_reads(struct raft *r);

/* --- small helpers --- */

static uint64_t raft_rand(struct raft *r)
{
    /* splitmix64: the PRNG state lives in the struct, seeded by the caller. */
    uint64_t z = (r->prng += UINT64_C(0x9e3779b97f4a7c15));
    z = (z ^ (z >> 30)) * UINT64_C(0xbf58476d1ce4e5b9);
    z = (z ^ (z >> 27)) * UINT64_C(0x94d049bb133111eb);
    return z ^ (z >> 31);
}

/* §5.2: "election timeouts are chosen randomly from a fixed interval". */
static void raft_reset_timeout(struct raft *r)
{
    r->rand_timeout = r->cfg.election_ticks + (uint32_t)(raft_rand(r) % r->cfg.election_ticks);
}

static uint32_t raft_quorum(const struct raft *r)
{
    return raft_conf_voters(&r->conf) / 2 + 1;
}

static bool raft_promotable(const struct raft *r)
{
    return raft_conf_is_voter(&r->conf, r->id);
}

static const struct progress *raft_progress_c(const struct raft *r, uint64_t id)
{
    for (uint32_t i = 0; i < r->n_prs; i++)
        if (r->prs[i].id == id)
            return &r->prs[i];
    return NULL;
}

static struct progress *raft_progress(struct raft *r, uint64_t id)
{
    for (uint32_t i = 0; i < r->n_prs; i++)
        if (r->prs[i].id == id)
            return &r->prs[i];
    return NULL;
}

static bool raft_committed_in_term(const struct raft *r)
{
    return rlog_match(&r->log, r->commit, r->term);
}

/* Anything the core holds that is not yet durable on the caller's disk. */
static bool raft_unstable(const struct raft *r)
{
    return r->term != r->hs_durable.term || r->vote != r->hs_durable.vote ||
           rlog_last(&r->log) > r->log.stable || r->chunk_pending || r->rd_has_chunk ||
           r->install_pending || r->rd_has_install;
}

/* --- outbox --- */

static void ob_push(struct raft *r, const struct raft_msg *m, uint8_t state)
{
    struct outbox *o = &r->ob[r->ob_cur];
    if (o->n == o->cap) {
        o->cap = o->cap ? o->cap * 2 : 16;
        o->msgs = raft_xrealloc(o->msgs, o->cap * sizeof *o->msgs);
        o->state = raft_xrealloc(o->state, o->cap * sizeof *o->state);
        o->ent_off = raft_xrealloc(o->ent_off, o->cap * sizeof *o->ent_off);
    }
    if (o->n_ents + m->n_entries > o->cap_ents) {
        while (o->n_ents + m->n_entries > o->cap_ents)
            o->cap_ents = o->cap_ents ? o->cap_ents * 2 : 64;
        o->ents = raft_xrealloc(o->ents, o->cap_ents * sizeof *o->ents);
    }
    struct raft_msg *d = &o->msgs[o->n];
    *d = *m;
    d->entries = NULL;
    d->blob = rblob_ref(m->blob);
    o->ent_off[o->n] = o->n_ents;
    for (uint32_t k = 0; k < m->n_entries; k++) {
        struct raft_entry e = m->entries[k];
        ASSERT(e.len == 0 || e.blob != NULL); /* outgoing entries come from the log */
        e.blob = rblob_ref(e.blob);
        o->ents[o->n_ents++] = e;
    }
    o->state[o->n] = state;
    o->n++;
}

static void ob_clear(struct outbox *o)
{
    for (size_t i = 0; i < o->n; i++)
        rblob_unref(o->msgs[i].blob);
    for (size_t k = 0; k < o->n_ents; k++)
        rblob_unref(o->ents[k].blob);
    o->n = 0;
    o->n_ents = 0;
}

static void ob_free(struct outbox *o)
{
    ob_clear(o);
    free(o->msgs);
    free(o->state);
    free(o->ent_off);
    free(o->ents);
}

static void raft_msg_init(const struct raft *r, struct raft_msg *m, uint32_t type, uint64_t to)
{
    memset(m, 0, sizeof *m);
    m->type = type;
    m->from = r->id;
    m->to = to;
    m->term = r->term;
}

/* Thesis 3.8: a server must not answer with a claim about its vote or log
 * before that state is durable. needs_durable marks such messages; and any
 * message sent under a term that is not durable yet is held, so a crash can
 * never make this server reuse a term it already spoke in. */
static void raft_send(struct raft *r, const struct raft_msg *m, bool needs_durable)
{
    ASSERT(m->to != r->id && m->to != 0);
    bool hold = r->term != r->hs_durable.term || (needs_durable && raft_unstable(r));
    ob_push(r, m, hold ? OB_WAIT_READY : OB_SEND);
}

static void entbuf_push(struct entbuf *b, const struct raft_entry *e)
{
    if (b->n == b->cap) {
        b->cap = b->cap ? b->cap * 2 : 64;
        b->v = raft_xrealloc(b->v, b->cap * sizeof *b->v);
    }
    b->v[b->n] = *e;
    b->v[b->n].blob = rblob_ref(e->blob);
    b->n++;
}

static void entbuf_clear(struct entbuf *b)
{
    for (size_t k = 0; k < b->n; k++)
        rblob_unref(b->v[k].blob);
    b->n = 0;
}

static void raft_push_read_state(struct raft *r, uint64_t ctx, uint64_t index)
{
    if (r->n_rs == r->cap_rs) {
        r->cap_rs = r->cap_rs ? r->cap_rs * 2 : 16;
        r->rs = raft_xrealloc(r->rs, r->cap_rs * sizeof *r->rs);
    }
    r->rs[r->n_rs].ctx = ctx;
    r->rs[r->n_rs].index = index;
    r->n_rs++;
}

/* --- configuration --- */

static void raft_apply_conf_entry(struct raft_conf *c, const struct raft_entry *e)
{
    enum raft_cc_type t;
    uint64_t id;
    /* A malformed or ill-fitting change is a no-op on every server alike, so
     * configurations stay a pure function of the log. */
    if (e->type == RAFT_ENTRY_CONF && raft_cc_decode(e->data, e->len, &t, &id) == ERR_OK)
        (void)raft_conf_apply(c, t, id);
}

/* The configuration in force at index: the snapshot's, then every CONF entry
 * up to index. */
static void raft_conf_at(const struct raft *r, uint64_t index, struct raft_conf *c,
                         uint64_t *conf_index)
{
    *c = r->snap.conf;
    *conf_index = r->snap.index;
    uint64_t last = rlog_last(&r->log);
    for (uint64_t i = rlog_first(&r->log); i <= index && i <= last; i++) {
        const struct raft_entry *e = rlog_get(&r->log, i);
        if (e->type == RAFT_ENTRY_CONF) {
            raft_apply_conf_entry(c, e);
            *conf_index = i;
        }
    }
}

static void raft_sync_progress(struct raft *r)
{
    /* Drop progress of servers that left, add servers that joined. */
    uint32_t w = 0;
    for (uint32_t i = 0; i < r->n_prs; i++)
        if (raft_conf_has(&r->conf, r->prs[i].id))
            r->prs[w++] = r->prs[i];
    r->n_prs = w;
    for (uint32_t i = 0; i < r->conf.n; i++) {
        uint64_t id = r->conf.ids[i];
        if (id != r->id && !raft_progress(r, id)) {
            ASSERT(r->n_prs < RAFT_MAX_NODES);
            struct progress *pr = &r->prs[r->n_prs++];
            progress_init(pr, id, rlog_last(&r->log) + 1, r->cfg.max_inflight);
            pr->recent_active = true;
        }
    }
}

/* Thesis 4.1: "a server always uses the latest configuration in its log,
 * regardless of whether the entry is committed". */
static void raft_conf_changed(struct raft *r)
{
    if (r->role == RAFT_LEADER) {
        raft_sync_progress(r);
        if (r->transferee && !raft_conf_is_voter(&r->conf, r->transferee))
            r->transferee = 0;
    } else if (r->role != RAFT_FOLLOWER && !raft_promotable(r)) {
        raft_become_follower(r, r->term, 0);
    }
}

static void raft_append_entry(struct raft *r, const struct raft_entry *e)
{
    rlog_append(&r->log, e);
    if (e->type == RAFT_ENTRY_CONF) {
        raft_apply_conf_entry(&r->conf, rlog_get(&r->log, rlog_last(&r->log)));
        r->conf_index = rlog_last(&r->log);
        raft_conf_changed(r);
    }
}

static void raft_truncate(struct raft *r, uint64_t index)
{
    rlog_truncate(&r->log, index);
    if (r->conf_index >= index) {
        /* The entry that set the configuration is gone: fall back to the one
         * before it (thesis 4.1, "reverted to the previous configuration"). */
        raft_conf_at(r, rlog_last(&r->log), &r->conf, &r->conf_index);
        raft_conf_changed(r);
    }
}

/* --- roles --- */

static void raft_drop_reads(struct raft *r)
{
    /* Reads confirmed by nobody are dropped; the caller times them out. */
    r->n_reqs = 0;
    r->round_pending = false;
}

static void raft_reset(struct raft *r, uint64_t term)
{
    if (term != r->term) {
        ASSERT(term > r->term);
        r->term = term;
        r->vote = 0;
        r->lease_broken = false;
    }
    r->lead = 0;
    r->election_elapsed = 0;
    r->heartbeat_elapsed = 0;
    raft_reset_timeout(r);
    r->n_votes = 0;
    r->transferee = 0;
    r->transfer_elapsed = 0;
    r->bcast_pending = false;
    raft_drop_reads(r);
}

/* §5.1: "if a server discovers its term is out of date, it immediately
 * reverts to follower state". */
static void raft_become_follower(struct raft *r, uint64_t term, uint64_t lead)
{
    raft_reset(r, term);
    r->role = RAFT_FOLLOWER;
    r->lead = lead;
}

static void raft_become_pre_candidate(struct raft *r)
{
    /* Thesis 9.6: a pre-candidate keeps its term; it only asks. */
    r->role = RAFT_PRE_CANDIDATE;
    r->lead = 0;
    r->n_votes = 0;
    raft_reset_timeout(r);
    r->transferee = 0;
    raft_drop_reads(r);
}

/* §5.2: "to begin an election, a follower increments its current term ...
 * votes for itself". */
static void raft_become_candidate(struct raft *r)
{
    raft_reset(r, r->term + 1);
    r->vote = r->id;
    r->role = RAFT_CANDIDATE;
}

/* §5.2/§8: the new leader appends a no-op entry of its term so that it can
 * commit (and learn the commit index) as soon as possible. */
static void raft_become_leader(struct raft *r)
{
    raft_reset(r, r->term);
    r->role = RAFT_LEADER;
    r->lead = r->id;
    r->n_prs = 0;
    raft_sync_progress(r);
    for (uint32_t i = 0; i < r->n_prs; i++)
        r->prs[i].recent_active = false;
    struct raft_entry e = {.term = r->term, .type = RAFT_ENTRY_NORMAL};
    raft_append_entry(r, &e);
    r->bcast_pending = true;
}

static void raft_record_vote(struct raft *r, uint64_t from, bool granted)
{
    for (uint32_t i = 0; i < r->n_votes; i++)
        if (r->vote_from[i] == from)
            return; /* first answer counts */
    if (r->n_votes == RAFT_MAX_NODES)
        return;
    r->vote_from[r->n_votes] = from;
    r->vote_granted[r->n_votes] = granted;
    r->n_votes++;
}

/* Returns 1 won, -1 lost, 0 pending. Only voters of the latest configuration count. */
static int raft_tally(const struct raft *r)
{
    uint32_t granted = 0, rejected = 0, voters = raft_conf_voters(&r->conf), q = raft_quorum(r);
    for (uint32_t i = 0; i < r->n_votes; i++) {
        if (!raft_conf_is_voter(&r->conf, r->vote_from[i]))
            continue;
        if (r->vote_granted[i])
            granted++;
        else
            rejected++;
    }
    if (granted >= q)
        return 1;
    if (voters - rejected < q)
        return -1;
    return 0;
}

static void raft_campaign_kind(struct raft *r, enum campaign_kind kind)
{
    if (!raft_promotable(r))
        return;
    uint64_t vote_term;
    uint32_t type;
    if (kind == CAMPAIGN_PRE) {
        raft_become_pre_candidate(r);
        vote_term = r->term + 1;
        type = RAFT_MSG_PREVOTE;
    } else {
        raft_become_candidate(r);
        vote_term = r->term;
        type = RAFT_MSG_VOTE;
    }
    raft_record_vote(r, r->id, true);
    if (raft_tally(r) == 1) {
        if (kind == CAMPAIGN_PRE)
            raft_campaign_kind(r, CAMPAIGN_ELECTION);
        else
            raft_become_leader(r);
        return;
    }
    for (uint32_t i = 0; i < r->conf.n; i++) {
        uint64_t id = r->conf.ids[i];
        if (id == r->id || !raft_conf_is_voter(&r->conf, id))
            continue;
        struct raft_msg m;
        raft_msg_init(r, &m, type, id);
        m.term = vote_term;
        m.index = rlog_last(&r->log);
        m.log_term = rlog_last_term(&r->log);
        if (kind == CAMPAIGN_TRANSFER)
            m.flags = RAFT_MSGF_TRANSFER;
        /* The request carries a term this server must not forget (held
         * until term and self-vote are durable). */
        raft_send(r, &m, kind != CAMPAIGN_PRE);
    }
}

/* --- leader: replication --- */

static void raft_send_chunk(struct raft *r, struct progress *pr)
{
    if (pr->snap_index != r->snap.index)
        progress_become_snapshot(pr, r->snap.index, r->snap.term);
    size_t cap = r->cfg.snap_chunk_bytes;
    struct raft_blob *b = raft_xrealloc(NULL, sizeof *b + cap);
    b->refs = 1;
    size_t n = 0;
    bool last = false;
    int rc = r->cfg.snap_src.read(r->cfg.snap_src.ud, &r->snap, pr->snap_off, b->data, cap, &n,
                                  &last);
    if (rc != ERR_OK || n > cap || (n == 0 && !last)) {
        /* Unreadable right now: start over from the newest snapshot after a
         * while (the resend timer). */
        rblob_unref(b);
        pr->snap_off = 0;
        pr->snap_wait = 0;
        pr->snap_last_sent = false;
        return;
    }
    b->len = n;
    struct raft_msg m;
    raft_msg_init(r, &m, RAFT_MSG_SNAP, pr->id);
    m.index = r->snap.index;
    m.log_term = r->snap.term;
    m.conf = r->snap.conf;
    m.offset = pr->snap_off;
    m.data = n ? b->data : NULL;
    m.len = n;
    m.blob = n ? b : NULL;
    m.flags = last ? RAFT_MSGF_LAST : 0;
    raft_send(r, &m, false);
    rblob_unref(b);
    pr->snap_last_sent = last;
    pr->snap_wait = 0;
}

/* §5.3 AppendEntries with the previous index/term for the consistency check;
 * §7: when the entries the follower needs are compacted, InstallSnapshot. */
static bool raft_send_append(struct raft *r, struct progress *pr, bool send_empty)
{
    if (progress_paused(pr))
        return false;
    uint64_t prev = pr->next - 1, prev_term;
    if (!rlog_term(&r->log, prev, &prev_term)) {
        if (!r->cfg.snap_src.read || r->snap.index == 0)
            return false;
        progress_become_snapshot(pr, r->snap.index, r->snap.term);
        raft_send_chunk(r, pr);
        return true;
    }
    uint64_t last = rlog_last(&r->log);
    uint32_t n = 0;
    size_t bytes = 0;
    for (uint64_t i = pr->next; i <= last && n < r->cfg.max_msg_entries; i++) {
        const struct raft_entry *e = rlog_get(&r->log, i);
        if (n > 0 && bytes + e->len > r->cfg.max_msg_bytes)
            break;
        bytes += e->len;
        n++;
    }
    if (n == 0 && !send_empty)
        return false;
    struct raft_msg m;
    raft_msg_init(r, &m, RAFT_MSG_APP, pr->id);
    m.index = prev;
    m.log_term = prev_term;
    m.commit = r->commit;
    m.entries = n ? rlog_get(&r->log, pr->next) : NULL;
    m.n_entries = n;
    raft_send(r, &m, false);
    progress_sent(pr, prev + n, n);
    return true;
}

static void raft_send_timeout_now(struct raft *r, uint64_t to)
{
    struct raft_msg m;
    raft_msg_init(r, &m, RAFT_MSG_TIMEOUT_NOW, to);
    r->lease_broken = true; /* the target may win before our lease ends */
    raft_send(r, &m, false);
}

static void raft_bcast_heartbeat(struct raft *r)
{
    /* Each broadcast is a new read round; its send tick bounds the lease. */
    r->read_round++;
    r->round_tick[r->read_round % ROUND_RING] = r->ticks;
    r->round_pending = false;
    for (uint32_t i = 0; i < r->n_prs; i++) {
        struct progress *pr = &r->prs[i];
        struct raft_msg m;
        raft_msg_init(r, &m, RAFT_MSG_HEARTBEAT, pr->id);
        /* Never tell a follower to commit past what it is known to hold. */
        m.commit = pr->match < r->commit ? pr->match : r->commit;
        m.index = r->commit; /* the real commit index: followers learn how far behind they are */
        m.ctx = r->read_round;
        raft_send(r, &m, false);
    }
}

/* Send what proposals and commits since the last ready produced: one append
 * per follower per batch, and one heartbeat round for all pending reads. */
static void raft_flush(struct raft *r)
{
    if (r->role != RAFT_LEADER)
        return;
    if (r->bcast_pending) {
        r->bcast_pending = false;
        for (uint32_t i = 0; i < r->n_prs; i++)
            raft_send_append(r, &r->prs[i], true);
    }
    if (r->round_pending)
        raft_bcast_heartbeat(r);
    raft_release_reads(r); /* a lone voter, or reads that waited for a commit */
}

/* §5.3/§5.4.2: commit the highest index stored on a majority of voters, but
 * only by counting replicas of an entry of the current term. The leader
 * counts itself only up to what it has made durable. */
static bool raft_maybe_commit(struct raft *r)
{
    uint64_t m[RAFT_MAX_NODES];
    uint32_t n = 0;
    for (uint32_t i = 0; i < r->conf.n; i++) {
        uint64_t id = r->conf.ids[i];
        if (!raft_conf_is_voter(&r->conf, id))
            continue;
        if (id == r->id) {
            m[n++] = r->log.stable;
        } else {
            const struct progress *pr = raft_progress(r, id);
            m[n++] = pr ? pr->match : 0;
        }
    }
    if (n == 0)
        return false;
    for (uint32_t i = 1; i < n; i++) /* insertion sort, descending */
        for (uint32_t j = i; j > 0 && m[j] > m[j - 1]; j--) {
            uint64_t t = m[j];
            m[j] = m[j - 1];
            m[j - 1] = t;
        }
    uint64_t mci = m[raft_quorum(r) - 1];
    if (mci <= r->commit || !rlog_match(&r->log, mci, r->term))
        return false;
    r->commit = mci;
    /* Reads deferred until the first commit of this term get today's index. */
    for (size_t k = 0; k < r->n_reqs; k++)
        if (r->reqs[k].index == 0)
            r->reqs[k].index = r->commit;
    return true;
}

/* Thesis 6.4: release reads whose heartbeat round a quorum acknowledged. */
static void raft_release_reads(struct raft *r)
{
    uint32_t q = raft_quorum(r);
    size_t done = 0;
    while (done < r->n_reqs) {
        const struct read_req *rq = &r->reqs[done];
        if (rq->index == 0)
            break;
        uint32_t acks = 0;
        for (uint32_t i = 0; i < r->conf.n; i++) {
            uint64_t id = r->conf.ids[i];
            if (!raft_conf_is_voter(&r->conf, id))
                continue;
            const struct progress *pr = id == r->id ? NULL : raft_progress(r, id);
            if (id == r->id || (pr && pr->read_round >= rq->round))
                acks++;
        }
        if (acks < q)
            break;
        if (rq->from == 0) {
            raft_push_read_state(r, rq->ctx, rq->index);
        } else {
            struct raft_msg m;
            raft_msg_init(r, &m, RAFT_MSG_READ_INDEX_RESP, rq->from);
            m.ctx = rq->ctx;
            m.index = rq->index;
            raft_send(r, &m, false);
        }
        done++;
    }
    if (done) {
        memmove(r->reqs, r->reqs + done, (r->n_reqs - done) * sizeof *r->reqs);
        r->n_reqs -= done;
    }
}

/* Lease reads. Safety assumption (write it down, thesis 6.4.1): the tick
 * rates of any two servers differ by less than 10%. A follower that acked a
 * heartbeat refuses (pre-)votes for election_ticks of its own ticks after
 * receiving it (check-quorum lease), and a restarted server refuses them for
 * election_ticks after starting; with pre-vote, no server reaches a higher
 * term without a quorum whose leases ran out. So counting from the *send*
 * tick of the round that a quorum acknowledged, and allowing one tick of
 * quantization on each side plus the 10% drift, no other leader can exist for
 * (election_ticks - 1) * 10 / 11 - 1 leader ticks. A TimeoutNow breaks the
 * assumption (the target campaigns at once), so lease reads stop for the rest
 * of the term once one was sent. */
static bool raft_lease_valid(const struct raft *r)
{
    if (!r->cfg.lease_reads || r->lease_broken || r->transferee || r->role != RAFT_LEADER)
        return false;
    uint64_t lease = ((uint64_t)r->cfg.election_ticks - 1) * 10 / 11;
    if (lease < 2)
        return false;
    lease -= 1;
    uint64_t rounds[RAFT_MAX_NODES];
    uint32_t n = 0;
    for (uint32_t i = 0; i < r->conf.n; i++) {
        uint64_t id = r->conf.ids[i];
        if (!raft_conf_is_voter(&r->conf, id))
            continue;
        if (id == r->id) {
            rounds[n++] = r->read_round;
        } else {
            const struct progress *pr = raft_progress_c(r, id);
            rounds[n++] = pr ? pr->read_round : 0;
        }
    }
    for (uint32_t i = 1; i < n; i++)
        for (uint32_t j = i; j > 0 && rounds[j] > rounds[j - 1]; j--) {
            uint64_t t = rounds[j];
            rounds[j] = rounds[j - 1];
            rounds[j - 1] = t;
        }
    uint64_t round = rounds[raft_quorum(r) - 1];
    if (round == 0 || r->read_round - round >= ROUND_RING)
        return false;
    return r->ticks < r->round_tick[round % ROUND_RING] + lease;
}

static void raft_handle_app_resp(struct raft *r, struct progress *pr, const struct raft_msg *m)
{
    uint64_t last = rlog_last(&r->log);
    if (m->reject) {
        if (pr->state == PROGRESS_SNAPSHOT)
            return;
        /* Fast backtracking: jump to the last index where our log could
         * match the follower's hint (term <= its term there). */
        uint64_t hint = m->hint_index < m->index ? m->hint_index : m->index;
        if (m->hint_term > 0) {
            uint64_t t;
            hint = rlog_find_conflict_by_term(&r->log, hint, m->hint_term, &t);
        }
        if (progress_decr_to(pr, m->index, hint)) {
            if (pr->state == PROGRESS_REPLICATE)
                progress_become_probe(pr);
            raft_send_append(r, pr, true);
        }
        return;
    }
    if (m->index > last)
        return; /* an ack for entries we never had: not from a sane follower */
    bool was_paused = progress_paused(pr);
    if (!progress_update(pr, m->index))
        return;
    switch (pr->state) {
    case PROGRESS_PROBE:
        progress_become_replicate(pr);
        break;
    case PROGRESS_SNAPSHOT:
        /* Done, or the follower caught up far enough that the log serves it. */
        if (pr->match >= pr->snap_index || pr->match >= r->log.snap_index) {
            progress_become_probe(pr);
            progress_become_replicate(pr);
        }
        break;
    case PROGRESS_REPLICATE:
        inflights_free_to(&pr->infl, m->index);
        break;
    }
    if (raft_maybe_commit(r))
        r->bcast_pending = true;
    else if (was_paused)
        raft_send_append(r, pr, true); /* at least tell it the commit index */
    /* Pipelining: fill the window. */
    while (raft_send_append(r, pr, false)) {
    }
    if (pr->id == r->transferee && pr->match == rlog_last(&r->log))
        raft_send_timeout_now(r, pr->id);
}

static void raft_handle_snap_resp(struct raft *r, struct progress *pr, const struct raft_msg *m)
{
    if (pr->state != PROGRESS_SNAPSHOT || m->index != pr->snap_index)
        return;
    if (m->reject) {
        pr->snap_off = m->offset < pr->snap_off ? m->offset : pr->snap_off;
        raft_send_chunk(r, pr);
    } else if (m->offset > pr->snap_off && !pr->snap_last_sent) {
        pr->snap_off = m->offset;
        raft_send_chunk(r, pr);
    }
}

static int raft_step_leader(struct raft *r, const struct raft_msg *m)
{
    struct progress *pr = raft_progress(r, m->from);
    switch (m->type) {
    case RAFT_MSG_APP_RESP:
        if (!pr)
            return ERR_OK;
        pr->recent_active = true;
        raft_handle_app_resp(r, pr, m);
        return ERR_OK;
    case RAFT_MSG_HEARTBEAT_RESP:
        if (!pr)
            return ERR_OK;
        pr->recent_active = true;
        pr->probe_sent = false;
        /* A heartbeat answer shows the follower is alive: let one more
         * append through a full window in case earlier ones were lost. */
        if (pr->state == PROGRESS_REPLICATE && inflights_full(&pr->infl))
            inflights_free_first(&pr->infl);
        if (m->ctx > pr->read_round && m->ctx <= r->read_round)
            pr->read_round = m->ctx;
        if (m->index > 0 && m->index - 1 < pr->match && pr->state != PROGRESS_SNAPSHOT) {
            /* The follower holds less than it acknowledged: its disk lost
             * entries (or it came back empty). Replicating from what it
             * has is the only way forward; commit never moves back, so a
             * lower match only makes the leader more careful. */
            pr->match = m->index - 1;
            progress_become_probe(pr);
            r->regressions++;
        }
        if (pr->match < rlog_last(&r->log))
            raft_send_append(r, pr, true);
        raft_release_reads(r);
        return ERR_OK;
    case RAFT_MSG_SNAP_RESP:
        if (!pr)
            return ERR_OK;
        pr->recent_active = true;
        raft_handle_snap_resp(r, pr, m);
        return ERR_OK;
    case RAFT_MSG_READ_INDEX:
        /* A follower forwards a read; answered like a local one. */
        if (r->n_reqs == r->cap_reqs) {
            r->cap_reqs = r->cap_reqs ? r->cap_reqs * 2 : 16;
            r->reqs = raft_xrealloc(r->reqs, r->cap_reqs * sizeof *r->reqs);
        }
        r->reqs[r->n_reqs++] = (struct read_req){m->ctx, raft_committed_in_term(r) ? r->commit : 0,
                                                r->read_round + 1, m->from};
        r->round_pending = true;
        return ERR_OK;
    default:
        return ERR_OK;
    }
}

/* --- follower --- */

/* §5.3 receiver rules 1-5 (rule 1, the term, was checked by raft_step). */
static int raft_handle_append(struct raft *r, const struct raft_msg *m)
{
    struct raft_msg resp;
    raft_msg_init(r, &resp, RAFT_MSG_APP_RESP, m->from);
    if (m->index < r->commit) {
        /* Everything up to commit matches already. */
        resp.index = r->commit;
        raft_send(r, &resp, true);
        return ERR_OK;
    }
    if (!rlog_match(&r->log, m->index, m->log_term)) {
        /* Rule 2: reject, hinting where the logs may match (the last index
         * whose term is <= the leader's term at the probe point). */
        uint64_t last = rlog_last(&r->log);
        uint64_t hint = m->index < last ? m->index : last;
        uint64_t hint_term = 0;
        hint = rlog_find_conflict_by_term(&r->log, hint, m->log_term, &hint_term);
        resp.reject = true;
        resp.index = m->index;
        resp.hint_index = hint;
        resp.hint_term = hint_term;
        raft_send(r, &resp, false);
        return ERR_OK;
    }
    /* Rules 3 and 4: delete a conflicting suffix, append what is new. */
    uint64_t lastnew = m->index + m->n_entries;
    uint32_t k = 0;
    while (k < m->n_entries && rlog_match(&r->log, m->index + 1 + k, m->entries[k].term))
        k++;
    if (k < m->n_entries) {
        uint64_t conflict = m->index + 1 + k;
        if (conflict <= r->commit)
            return ERR_BAD_INPUT; /* would rewrite a committed entry: not a real leader */
        if (conflict <= rlog_last(&r->log))
            raft_truncate(r, conflict);
        for (; k < m->n_entries; k++)
            raft_append_entry(r, &m->entries[k]);
    }
    /* Rule 5: commit up to min(leaderCommit, index of last new entry). */
    uint64_t c = m->commit < lastnew ? m->commit : lastnew;
    if (c > r->commit)
        r->commit = c;
    resp.index = lastnew;
    raft_send(r, &resp, true);
    return ERR_OK;
}

static void raft_handle_heartbeat(struct raft *r, const struct raft_msg *m)
{
    uint64_t c = m->commit < rlog_last(&r->log) ? m->commit : rlog_last(&r->log);
    if (c > r->commit)
        r->commit = c;
    if (m->index > r->leader_commit)
        r->leader_commit = m->index;
    struct raft_msg resp;
    raft_msg_init(r, &resp, RAFT_MSG_HEARTBEAT_RESP, m->from);
    resp.ctx = m->ctx;
    /* Our last index + 1 (0 would mean "not told", as from an older member):
     * lets the leader see a follower that lost entries it had acknowledged. */
    resp.index = rlog_last(&r->log) + 1;
    raft_send(r, &resp, false);
}

/* §7 InstallSnapshot receiver, one chunk at a time. */
static int raft_handle_snapshot(struct raft *r, const struct raft_msg *m)
{
    struct raft_msg resp;
    if (m->index <= r->commit || rlog_match(&r->log, m->index, m->log_term)) {
        /* Rule 6: the log already holds the snapshot's last entry: keep the
         * entries after it; nothing to install. */
        if (m->index > r->commit)
            r->commit = m->index;
        r->recv_active = false;
        raft_msg_init(r, &resp, RAFT_MSG_APP_RESP, m->from);
        resp.index = r->commit;
        raft_send(r, &resp, true);
        return ERR_OK;
    }
    if (r->chunk_pending || r->rd_has_chunk || r->install_pending || r->rd_has_install)
        return ERR_OK; /* one chunk at a time: the leader resends */
    /* Chunks are only ever joined to chunks of the same image: same
     * snapshot, same sender, same sender term. */
    bool same = r->recv_active && r->recv_meta.index == m->index &&
                r->recv_meta.term == m->log_term && r->recv_from == m->from &&
                r->recv_term == m->term;
    if (!same && m->offset == 0) {
        r->recv_active = true;
        r->recv_meta.index = m->index;
        r->recv_meta.term = m->log_term;
        r->recv_meta.conf = m->conf;
        r->recv_from = m->from;
        r->recv_term = m->term;
        r->recv_off = 0;
        same = true;
    }
    raft_msg_init(r, &resp, RAFT_MSG_SNAP_RESP, m->from);
    resp.index = m->index;
    if (!same || m->offset != r->recv_off) {
        /* Ask for the bytes we miss (0: start over); a duplicate is acked. */
        resp.offset = same ? r->recv_off : 0;
        resp.reject = !same || m->offset > r->recv_off;
        raft_send(r, &resp, false);
        return ERR_OK;
    }
    if (r->recv_off + m->len < r->recv_off)
        return ERR_BAD_INPUT;
    r->chunk_pending = true;
    r->chunk_blob = rblob_new(m->data, m->len);
    r->chunk.meta = r->recv_meta;
    r->chunk.offset = m->offset;
    r->chunk.data = r->chunk_blob ? r->chunk_blob->data : NULL;
    r->chunk.len = m->len;
    r->chunk.last = (m->flags & RAFT_MSGF_LAST) != 0;
    r->recv_off += m->len;
    if (!r->chunk.last) {
        resp.offset = r->recv_off;
        raft_send(r, &resp, true);
        return ERR_OK;
    }
    /* Rules 7-8: discard the log, take the snapshot's state and configuration. */
    r->recv_active = false;
    r->install_pending = true;
    r->install = r->recv_meta;
    r->snap = r->recv_meta;
    rlog_reset(&r->log, r->snap.index, r->snap.term);
    r->commit = r->snap.index;
    r->conf = r->snap.conf;
    r->conf_index = r->snap.index;
    raft_conf_changed(r);
    raft_msg_init(r, &resp, RAFT_MSG_APP_RESP, m->from);
    resp.index = r->snap.index;
    raft_send(r, &resp, true);
    return ERR_OK;
}

static int raft_step_follower(struct raft *r, const struct raft_msg *m)
{
    switch (m->type) {
    case RAFT_MSG_APP:
        r->election_elapsed = 0;
        r->lead = m->from;
        return raft_handle_append(r, m);
    case RAFT_MSG_HEARTBEAT:
        r->election_elapsed = 0;
        r->lead = m->from;
        raft_handle_heartbeat(r, m);
        return ERR_OK;
    case RAFT_MSG_SNAP:
        r->election_elapsed = 0;
        r->lead = m->from;
        return raft_handle_snapshot(r, m);
    case RAFT_MSG_TIMEOUT_NOW:
        /* Thesis 3.10: the transfer target starts an election at once,
         * without pre-vote, and voters set aside their lease for it. */
        raft_campaign_kind(r, CAMPAIGN_TRANSFER);
        return ERR_OK;
    case RAFT_MSG_READ_INDEX_RESP:
        if (!m->reject)
            raft_push_read_state(r, m->ctx, m->index);
        return ERR_OK;
    default:
        return ERR_OK;
    }
}

static int raft_step_candidate(struct raft *r, const struct raft_msg *m)
{
    switch (m->type) {
    case RAFT_MSG_APP:
    case RAFT_MSG_HEARTBEAT:
    case RAFT_MSG_SNAP:
        /* §5.2: a candidate that hears from a leader of its term steps down. */
        raft_become_follower(r, m->term, m->from);
        return raft_step_follower(r, m);
    case RAFT_MSG_VOTE_RESP:
    case RAFT_MSG_PREVOTE_RESP: {
        bool pre = m->type == RAFT_MSG_PREVOTE_RESP;
        if (pre != (r->role == RAFT_PRE_CANDIDATE))
            return ERR_OK;
        if (pre && !m->reject && m->term != r->term + 1)
            return ERR_OK; /* a grant from an older round */
        raft_record_vote(r, m->from, !m->reject);
        int res = raft_tally(r);
        if (res == 1) {
            if (pre)
                raft_campaign_kind(r, CAMPAIGN_ELECTION);
            else
                raft_become_leader(r);
        } else if (res == -1) {
            raft_become_follower(r, r->term, 0);
        }
        return ERR_OK;
    }
    default:
        return ERR_OK;
    }
}

/* --- voting --- */

/* §5.4.1: grant only if the candidate's log is at least as up-to-date. */
static bool raft_log_up_to_date(const struct raft *r, uint64_t index, uint64_t term)
{
    uint64_t lt = rlog_last_term(&r->log);
    return term > lt || (term == lt && index >= rlog_last(&r->log));
}

/* §5.2: at most one vote per term, first come first served; thesis 9.6: a
 * pre-vote is granted under the same rules without changing any state. */
static void raft_handle_vote(struct raft *r, const struct raft_msg *m)
{
    bool pre = m->type == RAFT_MSG_PREVOTE;
    bool can = r->vote == m->from || (r->vote == 0 && r->lead == 0) || (pre && m->term > r->term);
    struct raft_msg resp;
    raft_msg_init(r, &resp, pre ? RAFT_MSG_PREVOTE_RESP : RAFT_MSG_VOTE_RESP, m->from);
    if (can && raft_log_up_to_date(r, m->index, m->log_term)) {
        resp.term = m->term;
        if (!pre) {
            r->election_elapsed = 0;
            r->vote = m->from;
        }
        raft_send(r, &resp, !pre);
    } else {
        resp.reject = true;
        raft_send(r, &resp, false);
    }
}

/* Thesis 4.2.3: a server that heard from a leader within the minimum election
 * timeout does not grant votes nor adopt the term of a vote request. With
 * lease reads a server also waits one timeout after starting (it may have
 * acked a heartbeat just before a restart). */
static bool raft_in_lease(const struct raft *r)
{
    if (!r->cfg.check_quorum)
        return false;
    if (r->lead != 0 && r->election_elapsed < r->cfg.election_ticks)
        return true;
    return r->cfg.lease_reads && r->ticks < r->cfg.election_ticks;
}

/* --- message validation --- */

static bool raft_msg_valid(const struct raft *r, const struct raft_msg *m)
{
    if (m->type < RAFT_MSG_TYPE_FIRST || m->type > RAFT_MSG_TYPE_LAST)
        return false;
    if (m->to != r->id || m->from == 0 || m->from == r->id)
        return false;
    if (m->term >= RAFT_NUM_MAX || m->index >= RAFT_NUM_MAX || m->log_term >= RAFT_NUM_MAX ||
        m->hint_index >= RAFT_NUM_MAX || m->hint_term >= RAFT_NUM_MAX ||
        m->n_entries >= RAFT_NUM_MAX - m->index || m->offset >= RAFT_NUM_MAX ||
        m->len >= RAFT_NUM_MAX - m->offset)
        return false;
    if (m->n_entries && m->type != RAFT_MSG_APP)
        return false;
    if (m->type == RAFT_MSG_APP) {
        if (m->n_entries && !m->entries)
            return false;
        if (m->index > UINT64_MAX - m->n_entries - 1 || m->log_term > m->term)
            return false;
        uint64_t prev = m->log_term;
        for (uint32_t k = 0; k < m->n_entries; k++) {
            const struct raft_entry *e = &m->entries[k];
            if (e->term < prev || e->term > m->term || e->term == 0 || e->type > RAFT_ENTRY_CONF ||
                (e->len && !e->data))
                return false;
            prev = e->term;
        }
    }
    if (m->type == RAFT_MSG_SNAP) {
        if (m->index == 0 || m->log_term == 0 || m->log_term > m->term || (m->len && !m->data))
            return false;
        if (m->conf.n == 0 || m->conf.n > RAFT_MAX_NODES || raft_conf_voters(&m->conf) == 0)
            return false;
        for (uint32_t i = 0; i < m->conf.n; i++) {
            if (m->conf.ids[i] == 0)
                return false;
            for (uint32_t j = 0; j < i; j++)
                if (m->conf.ids[j] == m->conf.ids[i])
                    return false;
        }
        if (m->conf.n < 32 && (m->conf.learners >> m->conf.n) != 0)
            return false;
    }
    if ((m->type == RAFT_MSG_VOTE || m->type == RAFT_MSG_PREVOTE) && m->log_term > m->term)
        return false;
    return true;
}

/* --- public API --- */

void raft_config_defaults(struct raft_config *cfg, uint64_t id)
{
    memset(cfg, 0, sizeof *cfg);
    cfg->id = id;
    cfg->election_ticks = 10;
    cfg->heartbeat_ticks = 1;
    cfg->seed = id;
    cfg->pre_vote = true;
    cfg->check_quorum = true;
    cfg->lease_reads = false;
    cfg->max_inflight = 16;
    cfg->max_msg_entries = 256;
    cfg->max_msg_bytes = 1u << 20;
    cfg->snap_chunk_bytes = 1u << 20;
    cfg->promote_lag = 64;
    cfg->max_uncommitted = 4096;
}

int raft_create(const struct raft_config *cfg, const struct raft_persisted *p, struct raft **out,
                struct errbuf *eb)
{
    *out = NULL;
    if (cfg->id == 0 || cfg->heartbeat_ticks == 0 || cfg->election_ticks <= cfg->heartbeat_ticks ||
        cfg->max_inflight == 0 || cfg->max_inflight > RAFT_MAX_INFLIGHT ||
        cfg->max_msg_entries == 0 || cfg->snap_chunk_bytes == 0)
        return errf(eb, ERR_BAD_INPUT, "raft config out of range");
    if (cfg->lease_reads && !(cfg->check_quorum && cfg->pre_vote))
        return errf(eb, ERR_BAD_INPUT, "lease reads need check_quorum and pre_vote");
    const struct raft_snap_meta *s = &p->snap;
    if (s->conf.n > RAFT_MAX_NODES)
        return errf(eb, ERR_CORRUPT, "snapshot configuration too large");
    if (s->index == 0 && s->conf.n != 0)
        return errf(eb, ERR_BAD_INPUT, "a founding configuration belongs in the log "
                                       "(raft_bootstrap), not in an empty snapshot");
    if ((s->index == 0) != (s->term == 0) || p->hs.term < s->term)
        return errf(eb, ERR_CORRUPT, "snapshot %llu/%llu beyond term %llu",
                    (unsigned long long)s->index, (unsigned long long)s->term,
                    (unsigned long long)p->hs.term);
    uint64_t prev = s->term;
    for (size_t k = 0; k < p->n_entries; k++) {
        const struct raft_entry *e = &p->entries[k];
        if (e->index != s->index + 1 + k || e->term < prev || e->term > p->hs.term ||
            e->type > RAFT_ENTRY_CONF || (e->len && !e->data))
            return errf(eb, ERR_CORRUPT, "log entry %zu out of order", k);
        prev = e->term;
    }
    uint64_t last = s->index + p->n_entries;
    uint64_t commit = p->hs.commit;
    if (p->applied > commit)
        commit = p->applied;
    if (s->index > commit)
        commit = s->index;
    if (commit > last || p->applied < s->index)
        return errf(eb, ERR_CORRUPT, "commit %llu / applied %llu outside the log [%llu, %llu]",
                    (unsigned long long)commit, (unsigned long long)p->applied,
                    (unsigned long long)s->index, (unsigned long long)last);

    struct raft *r = calloc(1, sizeof *r);
    if (!r)
        return errf(eb, ERR_NOMEM, "raft");
    r->cfg = *cfg;
    r->id = cfg->id;
    r->prng = cfg->seed ^ (cfg->id * UINT64_C(0x9e3779b97f4a7c15));
    r->term = p->hs.term;
    r->vote = p->hs.vote;
    r->commit = commit;
    r->hs_durable = p->hs;
    r->snap = *s;
    rlog_init(&r->log, s->index, s->term);
    r->conf = s->conf;
    r->conf_index = s->index;
    for (size_t k = 0; k < p->n_entries; k++) {
        struct raft_entry e = p->entries[k];
        e.blob = NULL; /* copy: the caller's entries are borrowed */
        rlog_append(&r->log, &e);
        if (e.type == RAFT_ENTRY_CONF) {
            raft_apply_conf_entry(&r->conf, rlog_get(&r->log, e.index));
            r->conf_index = e.index;
        }
    }
    r->log.stable = last;
    r->applied = p->applied;
    r->role = RAFT_FOLLOWER;
    raft_reset_timeout(r);
    *out = r;
    return ERR_OK;
}

int raft_bootstrap(const struct raft_conf *conf, struct raft_bootstrap_buf *b,
                   struct raft_persisted *p)
{
    memset(p, 0, sizeof *p);
    if (conf->n == 0 || conf->n > RAFT_MAX_NODES || raft_conf_voters(conf) == 0)
        return ERR_BAD_INPUT;
    struct raft_conf check = {0};
    uint32_t n = 0;
    /* Voters first, so no prefix of the entries is a configuration without one. */
    for (int pass = 0; pass < 2; pass++) {
        for (uint32_t i = 0; i < conf->n; i++) {
            bool learner = (conf->learners >> i) & 1;
            if (learner != (pass == 1))
                continue;
            enum raft_cc_type t = learner ? RAFT_CC_ADD_LEARNER : RAFT_CC_ADD_VOTER;
            if (raft_conf_apply(&check, t, conf->ids[i]) != ERR_OK)
                return ERR_BAD_INPUT;
            raft_cc_encode(b->data[n], t, conf->ids[i]);
            b->ents[n] = (struct raft_entry){.term = 1, .index = n + 1, .type = RAFT_ENTRY_CONF,
                                             .data = b->data[n], .len = RAFT_CC_BYTES};
            n++;
        }
    }
    p->hs.term = 1;
    p->hs.commit = n;
    p->entries = b->ents;
    p->n_entries = n;
    return ERR_OK;
}

void raft_destroy(struct raft *r)
{
    if (!r)
        return;
    rlog_free(&r->log);
    ob_free(&r->ob[0]);
    ob_free(&r->ob[1]);
    entbuf_clear(&r->rd_ents);
    entbuf_clear(&r->rd_committed);
    free(r->rd_ents.v);
    free(r->rd_committed.v);
    rblob_unref(r->chunk_blob);
    rblob_unref(r->rd_chunk_blob);
    free(r->reqs);
    free(r->rs);
    free(r->rd_rs);
    free(r);
}

/* A leader removed by a committed configuration steps down (thesis 4.2.2). */
static void raft_after_event(struct raft *r)
{
    if (r->role == RAFT_LEADER && !raft_promotable(r) && r->conf_index <= r->commit) {
        raft_flush(r); /* tell the followers the removal committed */
        raft_become_follower(r, r->term, 0);
    }
}

void raft_tick(struct raft *r)
{
    r->ticks++;
    if (r->role != RAFT_LEADER) {
        r->election_elapsed++;
        if (raft_promotable(r) && r->election_elapsed >= r->rand_timeout) {
            r->election_elapsed = 0;
            raft_campaign_kind(r, r->cfg.pre_vote ? CAMPAIGN_PRE : CAMPAIGN_ELECTION);
        }
        return;
    }
    r->heartbeat_elapsed++;
    r->election_elapsed++;
    if (r->election_elapsed >= r->cfg.election_ticks) {
        r->election_elapsed = 0;
        if (r->cfg.check_quorum) {
            /* Thesis 6.2: a leader that did not hear from a quorum within an
             * election timeout steps down. */
            uint32_t active = raft_promotable(r) ? 1 : 0;
            for (uint32_t i = 0; i < r->n_prs; i++) {
                if (raft_conf_is_voter(&r->conf, r->prs[i].id) && r->prs[i].recent_active)
                    active++;
                r->prs[i].recent_active = false;
            }
            if (active < raft_quorum(r)) {
                raft_become_follower(r, r->term, 0);
                return;
            }
        }
    }
    if (r->transferee && ++r->transfer_elapsed >= r->cfg.election_ticks) {
        r->transferee = 0; /* thesis 3.10: abort a transfer that takes too long */
        r->transfer_elapsed = 0;
    }
    for (uint32_t i = 0; i < r->n_prs; i++) {
        struct progress *pr = &r->prs[i];
        if (pr->state == PROGRESS_SNAPSHOT && ++pr->snap_wait >= 3 * r->cfg.heartbeat_ticks + 1)
            raft_send_chunk(r, pr); /* resend the chunk that got no answer */
    }
    if (r->heartbeat_elapsed >= r->cfg.heartbeat_ticks) {
        r->heartbeat_elapsed = 0;
        raft_bcast_heartbeat(r);
    }
}

int raft_step(struct raft *r, const struct raft_msg *m)
{
    if (!raft_msg_valid(r, m))
        return ERR_BAD_INPUT;
    if (m->term > r->term) {
        if (m->type == RAFT_MSG_VOTE || m->type == RAFT_MSG_PREVOTE) {
            if (!(m->flags & RAFT_MSGF_TRANSFER) && raft_in_lease(r))
                return ERR_OK;
        }
        if (m->type == RAFT_MSG_PREVOTE) {
            /* A pre-vote never changes our term. */
        } else if (m->type == RAFT_MSG_PREVOTE_RESP && !m->reject) {
            /* Granted for the term we would campaign in. */
        } else {
            bool from_leader = m->type == RAFT_MSG_APP || m->type == RAFT_MSG_HEARTBEAT ||
                               m->type == RAFT_MSG_SNAP;
            raft_become_follower(r, m->term, from_leader ? m->from : 0);
        }
    } else if (m->term < r->term) {
        if ((r->cfg.check_quorum || r->cfg.pre_vote) &&
            (m->type == RAFT_MSG_APP || m->type == RAFT_MSG_HEARTBEAT)) {
            /* A stale leader that our term never reaches would keep its
             * followers' timers from firing; tell it about our term. */
            struct raft_msg resp;
            raft_msg_init(r, &resp, RAFT_MSG_APP_RESP, m->from);
            raft_send(r, &resp, false);
        } else if (m->type == RAFT_MSG_PREVOTE) {
            struct raft_msg resp;
            raft_msg_init(r, &resp, RAFT_MSG_PREVOTE_RESP, m->from);
            resp.reject = true;
            raft_send(r, &resp, false);
        }
        return ERR_OK;
    }
    int rc = ERR_OK;
    if (m->type == RAFT_MSG_VOTE || m->type == RAFT_MSG_PREVOTE) {
        raft_handle_vote(r, m);
    } else {
        switch (r->role) {
        case RAFT_LEADER: rc = raft_step_leader(r, m); break;
        case RAFT_CANDIDATE:
        case RAFT_PRE_CANDIDATE: rc = raft_step_candidate(r, m); break;
        case RAFT_FOLLOWER: rc = raft_step_follower(r, m); break;
        }
    }
    raft_after_event(r);
    return rc;
}

int raft_propose(struct raft *r, const void *data, size_t len, uint64_t *index, uint64_t *term)
{
    if (r->role != RAFT_LEADER || r->transferee)
        return ERR_UNAVAILABLE;
    if (r->cfg.max_uncommitted && rlog_last(&r->log) - r->commit >= r->cfg.max_uncommitted)
        return ERR_AGAIN; /* let the followers catch up before taking more */
    struct raft_entry e = {.term = r->term, .type = RAFT_ENTRY_NORMAL, .data = data, .len = len};
    raft_append_entry(r, &e);
    r->bcast_pending = true;
    if (index)
        *index = rlog_last(&r->log);
    if (term)
        *term = r->term;
    return ERR_OK;
}

int raft_propose_conf_change(struct raft *r, enum raft_cc_type type, uint64_t node,
                             uint64_t *index, uint64_t *term)
{
    return raft_propose_conf_change_ctx(r, type, node, NULL, 0, index, term);
}

int raft_propose_conf_change_ctx(struct raft *r, enum raft_cc_type type, uint64_t node,
                                 const void *ctx, size_t ctx_len, uint64_t *index, uint64_t *term)
{
    if (ctx_len > RAFT_CC_CTX_MAX || (ctx_len && !ctx))
        return ERR_BAD_INPUT;
    if (r->role != RAFT_LEADER || r->transferee)
        return ERR_UNAVAILABLE;
    /* One change at a time (thesis 4.1), and only after an entry of this term
     * committed (the fix to single-server changes, Ongaro 2015). */
    if (r->conf_index > r->commit || !raft_committed_in_term(r))
        return ERR_AGAIN;
    struct raft_conf c = r->conf;
    if (raft_conf_apply(&c, type, node) != ERR_OK)
        return ERR_BAD_INPUT;
    if (type == RAFT_CC_PROMOTE) {
        const struct progress *pr = raft_progress(r, node);
        if (!pr || pr->match + r->cfg.promote_lag < rlog_last(&r->log))
            return ERR_AGAIN; /* thesis 4.2.1: catch up before voting */
    }
    uint8_t data[RAFT_CC_BYTES + RAFT_CC_CTX_MAX];
    raft_cc_encode(data, type, node);
    if (ctx_len)
        memcpy(data + RAFT_CC_BYTES, ctx, ctx_len);
    struct raft_entry e = {.term = r->term, .type = RAFT_ENTRY_CONF, .data = data,
                           .len = RAFT_CC_BYTES + ctx_len};
    raft_append_entry(r, &e);
    r->bcast_pending = true;
    if (index)
        *index = rlog_last(&r->log);
    if (term)
        *term = r->term;
    return ERR_OK;
}

int raft_read_index(struct raft *r, uint64_t ctx)
{
    if (r->role != RAFT_LEADER) {
        if (r->lead == 0 || r->role != RAFT_FOLLOWER)
            return ERR_UNAVAILABLE;
        struct raft_msg m;
        raft_msg_init(r, &m, RAFT_MSG_READ_INDEX, r->lead);
        m.ctx = ctx;
        raft_send(r, &m, false);
        return ERR_OK;
    }
    bool in_term = raft_committed_in_term(r);
    if (in_term && raft_lease_valid(r)) {
        raft_push_read_state(r, ctx, r->commit);
        return ERR_OK;
    }
    if (r->n_reqs == r->cap_reqs) {
        r->cap_reqs = r->cap_reqs ? r->cap_reqs * 2 : 16;
        r->reqs = raft_xrealloc(r->reqs, r->cap_reqs * sizeof *r->reqs);
    }
    r->reqs[r->n_reqs++] = (struct read_req){ctx, in_term ? r->commit : 0, r->read_round + 1, 0};
    if (raft_quorum(r) == 1 && raft_promotable(r))
        raft_release_reads(r); /* a lone voter confirms itself */
    else
        r->round_pending = true;
    return ERR_OK;
}

int raft_transfer_leadership(struct raft *r, uint64_t to)
{
    if (r->role != RAFT_LEADER)
        return ERR_UNAVAILABLE;
    if (to == r->id || !raft_conf_is_voter(&r->conf, to))
        return ERR_BAD_INPUT;
    struct progress *pr = raft_progress(r, to);
    if (!pr)
        return ERR_BAD_INPUT;
    r->transferee = to;
    r->transfer_elapsed = 0;
    r->lease_broken = true;
    if (pr->match == rlog_last(&r->log))
        raft_send_timeout_now(r, to);
    else
        raft_send_append(r, pr, true);
    return ERR_OK;
}

/* The leader's process is gone (its address refuses connections). Forget it
 * as leader: this follower stops counting the leader's lease (thesis 4.2.3),
 * so it grants votes at once, and the caller may campaign without waiting a
 * whole election timeout. Only liveness changes: a vote still needs an
 * up-to-date log, and a leader that is in fact alive wins its followers back
 * with its next heartbeat (or is deposed by a higher term, as after any
 * election). */
int raft_leader_lost(struct raft *r, uint64_t leader)
{
    if (r->role != RAFT_FOLLOWER || leader == 0 || r->lead != leader)
        return ERR_BAD_INPUT;
    r->lead = 0;
    r->election_elapsed = r->cfg.election_ticks; /* out of the lease, as if timed out */
    return ERR_OK;
}

int raft_campaign(struct raft *r)
{
    if (r->role == RAFT_LEADER || !raft_promotable(r))
        return ERR_UNAVAILABLE;
    r->election_elapsed = 0;
    raft_campaign_kind(r, r->cfg.pre_vote ? CAMPAIGN_PRE : CAMPAIGN_ELECTION);
    return ERR_OK;
}

/* §7: the caller's state machine has a snapshot at index; the log before it
 * can go. The snapshot records the term and configuration there. */
int raft_compact(struct raft *r, uint64_t index)
{
    if (index <= r->log.snap_index)
        return ERR_OK;
    if (index > r->applied || index > rlog_last(&r->log))
        return ERR_BAD_INPUT;
    struct raft_snap_meta s;
    uint64_t ci;
    raft_conf_at(r, index, &s.conf, &ci);
    s.index = index;
    bool known = rlog_term(&r->log, index, &s.term);
    ASSERT(known);
    rlog_compact(&r->log, index);
    r->snap = s;
    return ERR_OK;
}

bool raft_has_ready(struct raft *r)
{
    if (r->rd_inflight)
        return false;
    raft_flush(r);
    uint64_t apply_from = r->applied + 1;
    if (r->install_pending && r->install.index + 1 > apply_from)
        apply_from = r->install.index + 1;
    return r->term != r->hs_durable.term || r->vote != r->hs_durable.vote ||
           r->commit != r->hs_durable.commit || rlog_last(&r->log) > r->log.stable ||
           r->chunk_pending || r->install_pending || r->ob[r->ob_cur].n > 0 || r->n_rs > 0 ||
           r->commit >= apply_from;
}

void raft_ready(struct raft *r, struct raft_ready *rd)
{
    ASSERT(!r->rd_inflight);
    raft_flush(r);
    memset(rd, 0, sizeof *rd);
    rd->hs.term = r->term;
    rd->hs.vote = r->vote;
    rd->hs.commit = r->commit;
    rd->hs_changed = r->term != r->hs_durable.term || r->vote != r->hs_durable.vote ||
                     r->commit != r->hs_durable.commit;

    if (r->chunk_pending) {
        r->rd_chunk = r->chunk;
        r->rd_chunk_blob = r->chunk_blob;
        r->chunk_blob = NULL;
        r->chunk_pending = false;
        r->rd_has_chunk = true;
        rd->chunk = &r->rd_chunk;
    }
    uint64_t apply_from = r->applied + 1;
    if (r->install_pending) {
        r->rd_install = r->install;
        r->install_pending = false;
        r->rd_has_install = true;
        rd->install = &r->rd_install;
        if (r->rd_install.index + 1 > apply_from)
            apply_from = r->rd_install.index + 1;
    }

    /* Entries to persist: everything past the durable point. */
    uint64_t last = rlog_last(&r->log);
    for (uint64_t i = r->log.stable + 1; i <= last; i++)
        entbuf_push(&r->rd_ents, rlog_get(&r->log, i));
    r->rd_last_index = last;
    bool known = rlog_term(&r->log, last, &r->rd_last_term);
    ASSERT(known);
    rd->entries = r->rd_ents.v;
    rd->n_entries = r->rd_ents.n;

    /* Committed entries: all within what this batch makes durable. */
    for (uint64_t i = apply_from; i <= r->commit; i++) {
        const struct raft_entry *e = rlog_get(&r->log, i);
        ASSERT(e != NULL);
        entbuf_push(&r->rd_committed, e);
    }
    rd->committed = r->rd_committed.v;
    rd->n_committed = r->rd_committed.n;

    /* Messages: hand out the sendable ones; held ones move to the fresh
     * outbox, now waiting for this batch's advance. */
    struct outbox *old = &r->ob[r->ob_cur];
    r->ob_cur ^= 1;
    struct outbox *nw = &r->ob[r->ob_cur];
    ASSERT(nw->n == 0 && nw->n_ents == 0);
    size_t w = 0;
    for (size_t i = 0; i < old->n; i++) {
        struct raft_msg *m = &old->msgs[i];
        if (old->state[i] == OB_SEND) {
            old->msgs[w] = *m;
            old->ent_off[w] = old->ent_off[i];
            old->state[w] = OB_SEND;
            w++;
            continue;
        }
        ASSERT(old->state[i] == OB_WAIT_READY);
        /* Move the message and its entry references (no count change). */
        struct raft_msg mv = *m;
        mv.entries = m->n_entries ? old->ents + old->ent_off[i] : NULL;
        ob_push(r, &mv, OB_WAIT_ADVANCE);
        rblob_unref(m->blob);
        for (uint32_t k = 0; k < m->n_entries; k++) {
            rblob_unref(old->ents[old->ent_off[i] + k].blob);
            old->ents[old->ent_off[i] + k].blob = NULL;
        }
    }
    old->n = w;
    for (size_t i = 0; i < w; i++)
        old->msgs[i].entries = old->msgs[i].n_entries ? old->ents + old->ent_off[i] : NULL;
    rd->msgs = old->msgs;
    rd->n_msgs = w;

    /* Read states: swap buffers. */
    struct raft_read_state *t = r->rd_rs;
    size_t tc = r->rd_cap_rs;
    r->rd_rs = r->rs;
    r->rd_cap_rs = r->cap_rs;
    r->rd_n_rs = r->n_rs;
    r->rs = t;
    r->cap_rs = tc;
    r->n_rs = 0;
    rd->reads = r->rd_rs;
    rd->n_reads = r->rd_n_rs;

    r->rd_inflight = true;
}

void raft_advance(struct raft *r, const struct raft_ready *rd)
{
    ASSERT(r->rd_inflight);
    if (rd->hs_changed)
        r->hs_durable = rd->hs;
    if (r->rd_has_install) {
        if (r->rd_install.index > r->applied)
            r->applied = r->rd_install.index;
        r->rd_has_install = false;
    }
    if (r->rd_has_chunk) {
        rblob_unref(r->rd_chunk_blob);
        r->rd_chunk_blob = NULL;
        r->rd_has_chunk = false;
    }
    /* The entries are durable if the log still holds them (a conflicting
     * append may have replaced them meanwhile; Log Matching makes the last
     * index and term enough to tell). */
    if (r->rd_last_index > r->log.stable && rlog_match(&r->log, r->rd_last_index, r->rd_last_term))
        r->log.stable = r->rd_last_index;
    if (r->rd_committed.n) {
        uint64_t a = r->rd_committed.v[r->rd_committed.n - 1].index;
        if (a > r->applied)
            r->applied = a;
    }
    entbuf_clear(&r->rd_ents);
    entbuf_clear(&r->rd_committed);
    r->rd_n_rs = 0;
    ob_clear(&r->ob[r->ob_cur ^ 1]);
    struct outbox *cur = &r->ob[r->ob_cur];
    for (size_t i = 0; i < cur->n; i++)
        if (cur->state[i] == OB_WAIT_ADVANCE)
            cur->state[i] = OB_SEND;
    r->rd_inflight = false;
    if (r->role == RAFT_LEADER && raft_maybe_commit(r))
        r->bcast_pending = true;
    raft_after_event(r);
}

void raft_status(const struct raft *r, struct raft_status *st)
{
    memset(st, 0, sizeof *st);
    st->id = r->id;
    st->term = r->term;
    st->vote = r->vote;
    st->leader = r->lead;
    st->role = r->role;
    st->commit = r->commit;
    st->applied = r->applied;
    st->first_index = rlog_first(&r->log);
    st->last_index = rlog_last(&r->log);
    st->stable_index = r->log.stable;
    st->snap_index = r->snap.index;
    st->snap_term = r->snap.term;
    st->transferee = r->transferee;
    st->leader_commit = r->role == RAFT_LEADER ? r->commit : r->leader_commit;
    if (st->leader_commit < r->commit)
        st->leader_commit = r->commit;
    st->regressions = r->regressions;
}

int raft_progress_get(const struct raft *r, uint64_t id, struct raft_progress_info *out)
{
    memset(out, 0, sizeof *out);
    if (r->role != RAFT_LEADER || !raft_conf_has(&r->conf, id))
        return ERR_NOT_FOUND;
    if (id == r->id) {
        out->match = r->log.stable;
        out->next = rlog_last(&r->log) + 1;
        out->state = PROGRESS_REPLICATE;
        out->recent_active = true;
        return ERR_OK;
    }
    const struct progress *pr = raft_progress((struct raft *)r, id);
    if (!pr)
        return ERR_NOT_FOUND;
    out->match = pr->match;
    out->next = pr->next;
    out->state = pr->state;
    out->recent_active = pr->recent_active;
    return ERR_OK;
}

const struct raft_conf *raft_get_conf(const struct raft *r) { return &r->conf; }
const struct raft_snap_meta *raft_get_snap(const struct raft *r) { return &r->snap; }

bool raft_log_term(const struct raft *r, uint64_t index, uint64_t *term)
{
    return rlog_term(&r->log, index, term);
}

const struct raft_entry *raft_log_entry(const struct raft *r, uint64_t index)
{
    return rlog_get(&r->log, index);
}

const char *raft_role_name(enum raft_role role)
{
    switch (role) {
    case RAFT_FOLLOWER: return "follower";
    case RAFT_PRE_CANDIDATE: return "pre-candidate";
    case RAFT_CANDIDATE: return "candidate";
    case RAFT_LEADER: return "leader";
    }
    return "?";
}
