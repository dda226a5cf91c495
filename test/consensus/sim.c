/* Deterministic cluster simulator for the Raft core: 3, 5 or 7 cores (plus
 * spares that join as learners) in one process, a seeded PRNG driving a
 * network that drops, delays, duplicates, reorders and partitions, crashes
 * that lose whatever was not persisted, compaction, membership changes,
 * leadership transfers, proposals and reads; safety is checked after every
 * event, then faults stop and liveness is required within a bound.
 *
 *   consensus_sim [--first F] [--count N] [--quiet] [--all]
 *   (--all: keep going after failures, naming each seed before it runs)
 *   DDKV_SEED=S     replay exactly seed S (with DDKV_SIM_TRACE=1 to see every event)
 *   DDKV_SEEDS=N    run N seeds starting at --first (default: --count)
 *
 * Every message goes through the wire codec (raft_msg_encode/decode). */
#include <inttypes.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "consensus/raft.h"
#include "proto/msg.h"

#define SIM_MAX 10            /* node ids 1..9 */
#define TICK_MS 10
#define ELECTION_TICKS 10
/* Liveness: once faults stop, a leader must be elected and a new proposal
 * committed within COMMIT_BOUND_MS; then every member must apply everything
 * acknowledged within CATCHUP_BASE_MS plus one worst-case round trip per
 * entry it is behind (small append limits make catch-up slow, not stuck). */
#define COMMIT_BOUND_MS 3000
#define CATCHUP_BASE_MS 3000

/* --- deterministic PRNG --- */

struct rng {
    uint64_t s;
};

static uint64_t rng_next(struct rng *g)
{
    uint64_t z = (g->s += UINT64_C(0x9e3779b97f4a7c15));
    z = (z ^ (z >> 30)) * UINT64_C(0xbf58476d1ce4e5b9);
    z = (z ^ (z >> 27)) * UINT64_C(0x94d049bb133111eb);
    return z ^ (z >> 31);
}

static uint32_t rng_below(struct rng *g, uint32_t n)
{
    return n ? (uint32_t)(rng_next(g) % n) : 0;
}

static bool rng_pct(struct rng *g, uint32_t pct)
{
    return rng_below(g, 100) < pct;
}

static uint64_t hash_bytes(uint64_t h, const void *p, size_t n)
{
    const uint8_t *b = p;
    h ^= UINT64_C(0xcbf29ce484222325);
    for (size_t i = 0; i < n; i++) {
        h ^= b[i];
        h *= UINT64_C(0x100000001b3);
    }
    h ^= h >> 29;
    h *= UINT64_C(0xbf58476d1ce4e5b9);
    return h ^ (h >> 32);
}

static uint64_t entry_hash(const struct raft_entry *e)
{
    uint64_t h = hash_bytes(e->term * 31 + e->type, e->data, e->len);
    return h ? h : 1;
}

/* The state machine's running digest: equal digests at an index mean equal
 * applied sequences up to it. */
static uint64_t chain(uint64_t prev, const struct raft_entry *e)
{
    uint64_t x[3] = {prev, e->index, entry_hash(e)};
    uint64_t h = hash_bytes(0, x, sizeof x);
    return h ? h : 1;
}

/* --- simulated nodes --- */

struct sim_entry {
    uint64_t term;
    uint8_t type;
    uint8_t *data;
    size_t len;
};

struct disk {
    struct raft_hard_state hs;
    struct raft_snap_meta snap;
    uint8_t *snap_data;
    size_t snap_len;
    struct sim_entry *log; /* snap.index + 1 ... */
    size_t n_log, cap_log;
    uint64_t applied;      /* the state machine is durable, applied atomically */
    uint64_t sm_hash;
    uint8_t *recv;         /* snapshot being received */
    size_t recv_len, recv_cap;
};

struct node {
    uint64_t id;
    bool exists; /* started at least once */
    struct raft *r;
    struct disk disk;
    uint64_t inc; /* incarnation: stale events are ignored */
    bool persisting;
    bool persisting_vote; /* the pending write changes term or vote */
    struct raft_ready rd;
    uint32_t tick_phase;
    uint64_t seen_commit;
    uint64_t leader_term_checked;
};

enum ev_type { EV_TICK, EV_DELIVER, EV_PERSIST, EV_CLIENT, EV_CHAOS, EV_RESTART, EV_HEAL };

struct event {
    uint64_t time, seq;
    int type;
    int node;
    uint64_t inc;
    uint8_t *bytes;
    size_t len;
};

struct proposal {
    int node;
    uint64_t index, term;
    bool acked;
};

struct read_rec {
    int node;
    uint64_t min_index;
    bool answered;
};

struct etab_slot {
    uint64_t index, term; /* term 0: empty */
    uint64_t hash, prev_term;
};

struct sim {
    uint64_t seed;
    struct rng g;
    bool trace;
    int n_init, n_ids;
    struct node nodes[SIM_MAX];
    bool blocked[SIM_MAX][SIM_MAX];
    uint64_t link_last[SIM_MAX][SIM_MAX]; /* latest delivery time per link (FIFO) */
    bool retired[SIM_MAX];
    /* knobs drawn from the seed */
    uint32_t fsync_crash_pct; /* a pending disk write dies with its node */
    uint32_t drop_pct, dup_pct, reorder_pct, delay_min, delay_max, long_delay_pct, disk_max, disk_zero_pct;
    uint32_t max_uncommitted;
    uint32_t heartbeat_ticks, max_inflight, max_entries, chunk_bytes, snap_pad;
    bool pre_vote, check_quorum, lease_reads;
    uint32_t client_gap_max, chaos_gap_max, chaos_ms;
    /* time */
    uint64_t now, seq, step;
    struct event *heap;
    size_t n_ev, cap_ev;
    bool chaos;
    uint64_t heal_time;
    uint64_t catchup_deadline; /* set when the first post-heal proposal is acked */
    uint64_t lamport;
    /* invariants */
    uint64_t *leader_of;    /* by term */
    size_t cap_terms;
    uint64_t *applied_hash; /* by index: the state machine digest */
    size_t cap_applied;
    uint64_t *committed_term;
    size_t cap_committed;
    uint64_t *commit_seen_in;   /* lowest term in which a node saw the index committed */
    size_t cap_seen;
    uint64_t max_committed;
    struct etab_slot *etab;
    size_t etab_cap, etab_n;
    struct proposal *props;
    size_t n_props, cap_props;
    uint64_t max_acked;
    bool acked_after_heal;
    struct read_rec *reads;
    size_t n_reads, cap_reads;
    /* stats */
    uint64_t n_msgs, n_elections, n_snap_installs, n_crashes, n_conf, n_transfers, n_reads_ok;
    /* failure */
    bool failed;
    char why[512];
};

static void sim_fail(struct sim *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void sim_fail(struct sim *s, const char *fmt, ...)
{
    if (s->failed)
        return;
    s->failed = true;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(s->why, sizeof s->why, fmt, ap);
    va_end(ap);
}

static void trace(struct sim *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void trace(struct sim *s, const char *fmt, ...)
{
    if (!s->trace)
        return;
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "[%6" PRIu64 " #%" PRIu64 "] ", s->now, s->step);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
}

static void *xrealloc(void *p, size_t n)
{
    void *q = realloc(p, n ? n : 1);
    if (!q) {
        fprintf(stderr, "sim: out of memory\n");
        abort();
    }
    return q;
}

static void grow_u64(uint64_t **v, size_t *cap, size_t need)
{
    if (need < *cap)
        return;
    size_t nc = *cap ? *cap : 256;
    while (nc <= need)
        nc *= 2;
    *v = xrealloc(*v, nc * sizeof **v);
    memset(*v + *cap, 0, (nc - *cap) * sizeof **v);
    *cap = nc;
}

/* --- events --- */

static bool ev_less(const struct event *a, const struct event *b)
{
    return a->time < b->time || (a->time == b->time && a->seq < b->seq);
}

static void ev_push(struct sim *s, struct event e)
{
    if (s->n_ev == s->cap_ev) {
        s->cap_ev = s->cap_ev ? s->cap_ev * 2 : 1024;
        s->heap = xrealloc(s->heap, s->cap_ev * sizeof *s->heap);
    }
    e.seq = s->seq++;
    size_t i = s->n_ev++;
    while (i > 0) {
        size_t p = (i - 1) / 2;
        if (!ev_less(&e, &s->heap[p]))
            break;
        s->heap[i] = s->heap[p];
        i = p;
    }
    s->heap[i] = e;
}

static struct event ev_pop(struct sim *s)
{
    struct event top = s->heap[0];
    struct event last = s->heap[--s->n_ev];
    size_t i = 0;
    for (;;) {
        size_t l = 2 * i + 1, r = l + 1, m = i;
        const struct event *best = &last;
        if (l < s->n_ev && ev_less(&s->heap[l], best)) {
            m = l;
            best = &s->heap[l];
        }
        if (r < s->n_ev && ev_less(&s->heap[r], best))
            m = r;
        if (m == i)
            break;
        s->heap[i] = s->heap[m];
        i = m;
    }
    if (s->n_ev > 0)
        s->heap[i] = last;
    return top;
}

static void schedule(struct sim *s, uint64_t at, int type, int node, uint64_t inc)
{
    struct event e = {.time = at, .type = type, .node = node, .inc = inc};
    ev_push(s, e);
}

/* --- entry table for Log Matching --- */

static struct etab_slot *etab_find(struct sim *s, uint64_t index, uint64_t term, bool insert)
{
    if (insert && (s->etab_n + 1) * 2 > s->etab_cap) {
        size_t oc = s->etab_cap;
        struct etab_slot *old = s->etab;
        s->etab_cap = oc ? oc * 2 : 1024;
        s->etab = calloc(s->etab_cap, sizeof *s->etab);
        if (!s->etab)
            abort();
        s->etab_n = 0;
        for (size_t i = 0; i < oc; i++)
            if (old[i].term) {
                struct etab_slot *d = etab_find(s, old[i].index, old[i].term, true);
                *d = old[i];
            }
        free(old);
    }
    if (s->etab_cap == 0)
        return NULL;
    uint64_t k[2] = {index, term};
    size_t i = (size_t)(hash_bytes(0, k, sizeof k) & (s->etab_cap - 1));
    for (;;) {
        struct etab_slot *sl = &s->etab[i];
        if (sl->term == 0) {
            if (!insert)
                return NULL;
            sl->index = index;
            sl->term = term;
            s->etab_n++;
            return sl;
        }
        if (sl->index == index && sl->term == term)
            return sl;
        i = (i + 1) & (s->etab_cap - 1);
    }
}

/* Log Matching, inductively: an (index, term) pair names one entry (same
 * payload) whose predecessor always has the same term. */
static void check_log_entry(struct sim *s, int n, uint64_t index, uint64_t term, uint64_t h,
                            uint64_t prev_term)
{
    struct etab_slot *sl = etab_find(s, index, term, false);
    if (!sl) {
        sl = etab_find(s, index, term, true);
        sl->hash = h;
        sl->prev_term = prev_term;
        return;
    }
    if (sl->hash != h || sl->prev_term != prev_term)
        sim_fail(s, "log matching: node %d has entry %" PRIu64 "/%" PRIu64
                    " differing from another log (payload %s, previous term %" PRIu64 " vs %" PRIu64 ")",
                 n, index, term, sl->hash != h ? "differs" : "same", prev_term, sl->prev_term);
}

/* --- disk --- */

static void disk_truncate(struct disk *d, uint64_t index)
{
    /* drop entries >= index */
    while (d->n_log > 0 && d->snap.index + d->n_log >= index) {
        d->n_log--;
        free(d->log[d->n_log].data);
    }
}

static void disk_append(struct disk *d, const struct raft_entry *e)
{
    if (d->n_log == d->cap_log) {
        d->cap_log = d->cap_log ? d->cap_log * 2 : 64;
        d->log = xrealloc(d->log, d->cap_log * sizeof *d->log);
    }
    struct sim_entry *x = &d->log[d->n_log++];
    x->term = e->term;
    x->type = e->type;
    x->len = e->len;
    x->data = NULL;
    if (e->len) {
        x->data = xrealloc(NULL, e->len);
        memcpy(x->data, e->data, e->len);
    }
}

static void disk_free(struct disk *d)
{
    disk_truncate(d, 0);
    free(d->log);
    free(d->snap_data);
    free(d->recv);
    memset(d, 0, sizeof *d);
}

static uint64_t disk_term(const struct disk *d, uint64_t index)
{
    if (index == d->snap.index)
        return d->snap.term;
    if (index < d->snap.index || index > d->snap.index + d->n_log)
        return UINT64_MAX;
    return d->log[index - d->snap.index - 1].term;
}

/* A snapshot image: index, state digest, then padding derived from both. */
static size_t snap_image(struct sim *s, uint64_t index, uint64_t h, uint8_t **out)
{
    size_t len = 16 + s->snap_pad;
    uint8_t *b = xrealloc(NULL, len);
    put_be64(b, index);
    put_be64(b + 8, h);
    uint64_t x = h ^ index;
    for (size_t i = 16; i < len; i++) {
        x = x * UINT64_C(6364136223846793005) + 1442695040888963407u;
        b[i] = (uint8_t)(x >> 56);
    }
    *out = b;
    return len;
}

static int snap_read(void *ud, const struct raft_snap_meta *meta, uint64_t offset, uint8_t *buf,
                     size_t cap, size_t *n, bool *last)
{
    struct node *nd = ud;
    const struct disk *d = &nd->disk;
    if (d->snap.index != meta->index || d->snap.term != meta->term || !d->snap_data)
        return ERR_NOT_FOUND;
    if (offset > d->snap_len)
        return ERR_BAD_INPUT;
    size_t k = d->snap_len - (size_t)offset;
    if (k > cap)
        k = cap;
    memcpy(buf, d->snap_data + offset, k);
    *n = k;
    *last = offset + k == d->snap_len;
    return ERR_OK;
}

/* --- node lifecycle --- */

static void node_start(struct sim *s, int i)
{
    struct node *nd = &s->nodes[i];
    struct raft_config cfg;
    raft_config_defaults(&cfg, nd->id);
    cfg.election_ticks = ELECTION_TICKS;
    cfg.heartbeat_ticks = s->heartbeat_ticks;
    cfg.seed = s->seed * 1000 + nd->id * 10 + nd->inc;
    cfg.pre_vote = s->pre_vote;
    cfg.check_quorum = s->check_quorum;
    cfg.lease_reads = s->lease_reads;
    cfg.max_inflight = s->max_inflight;
    cfg.max_msg_entries = s->max_entries;
    cfg.max_msg_bytes = 64;
    cfg.snap_chunk_bytes = s->chunk_bytes;
    cfg.promote_lag = 4;
    cfg.max_uncommitted = s->max_uncommitted;
    cfg.snap_src.read = snap_read;
    cfg.snap_src.ud = nd;
    struct disk *d = &nd->disk;
    struct raft_entry *ents = xrealloc(NULL, (d->n_log + 1) * sizeof *ents);
    for (size_t k = 0; k < d->n_log; k++) {
        ents[k] = (struct raft_entry){.term = d->log[k].term,
                                      .index = d->snap.index + 1 + k,
                                      .type = d->log[k].type,
                                      .data = d->log[k].data,
                                      .len = d->log[k].len};
    }
    struct raft_persisted p = {.hs = d->hs, .snap = d->snap, .entries = ents,
                               .n_entries = d->n_log, .applied = d->applied};
    struct errbuf eb;
    int rc = raft_create(&cfg, &p, &nd->r, &eb);
    free(ents);
    if (rc != ERR_OK) {
        sim_fail(s, "node %d cannot restart from its disk: %s", i, eb.msg);
        return;
    }
    nd->exists = true;
    nd->inc++;
    nd->persisting = false;
    nd->seen_commit = 0;
    nd->leader_term_checked = 0;
    d->recv_len = 0;
    schedule(s, s->now + 1 + nd->tick_phase, EV_TICK, i, nd->inc);
    trace(s, "node %d starts (term %" PRIu64 ", log %" PRIu64 "..%" PRIu64 ", applied %" PRIu64 ")",
          i, d->hs.term, d->snap.index, d->snap.index + d->n_log, d->applied);
}

static void node_crash(struct sim *s, int i)
{
    struct node *nd = &s->nodes[i];
    if (!nd->r)
        return;
    raft_destroy(nd->r);
    nd->r = NULL;
    nd->persisting = false;
    nd->inc++;
    s->n_crashes++;
    trace(s, "node %d crashes", i);
}

/* --- the network --- */

static void net_send(struct sim *s, int from, const struct raft_msg *m)
{
    s->n_msgs++;
    int to = (int)m->to;
    if (m->to >= (uint64_t)s->n_ids + 1 || to <= 0)
        return;
    if (s->blocked[from][to] || (s->chaos && rng_pct(&s->g, s->drop_pct)))
        return;
    struct buf b = BUF_INIT;
    if (raft_msg_encode(m, ++s->lamport, &b) != ERR_OK) {
        sim_fail(s, "encode failed for %s", raft_msg_type_name(m->type));
        buf_free(&b);
        return;
    }
    int copies = s->chaos && rng_pct(&s->g, s->dup_pct) ? 2 : 1;
    for (int c = 0; c < copies; c++) {
        uint64_t delay = s->delay_min + rng_below(&s->g, s->delay_max - s->delay_min + 1);
        if (s->chaos && rng_pct(&s->g, s->long_delay_pct))
            delay += 50 + rng_below(&s->g, 200);
        uint64_t at = s->now + delay;
        /* Links are streams (TCP): a message overtakes an earlier one only
         * as a fault, and only while faults are on. */
        if (!(s->chaos && rng_pct(&s->g, s->reorder_pct)) && at < s->link_last[from][to])
            at = s->link_last[from][to];
        if (at > s->link_last[from][to])
            s->link_last[from][to] = at;
        struct event e = {.time = at, .type = EV_DELIVER, .node = to, .inc = (uint64_t)from};
        e.len = b.len;
        e.bytes = xrealloc(NULL, b.len);
        memcpy(e.bytes, b.data, b.len);
        ev_push(s, e);
    }
    buf_free(&b);
}

/* --- invariants on volatile state --- */

static void observe(struct sim *s, int i)
{
    struct node *nd = &s->nodes[i];
    if (!nd->r || s->failed)
        return;
    struct raft_status st;
    raft_status(nd->r, &st);
    if (st.role == RAFT_LEADER) {
        /* Election Safety: at most one leader per term. */
        grow_u64(&s->leader_of, &s->cap_terms, st.term);
        if (s->leader_of[st.term] && s->leader_of[st.term] != nd->id) {
            sim_fail(s, "election safety: nodes %" PRIu64 " and %" PRIu64 " both lead term %" PRIu64,
                     s->leader_of[st.term], nd->id, st.term);
            return;
        }
        if (!s->leader_of[st.term]) {
            s->leader_of[st.term] = nd->id;
            s->n_elections++;
            trace(s, "node %d leads term %" PRIu64, i, st.term);
        }
        if (nd->leader_term_checked != st.term) {
            /* Leader Completeness: the new leader holds every entry
             * committed in an earlier term. An index seen committed by a
             * node in term u was committed in a term <= u, so take the
             * highest index seen committed below this term (Log Matching
             * covers everything before it). */
            nd->leader_term_checked = st.term;
            uint64_t c = s->max_committed, t;
            while (c > 0 && s->commit_seen_in[c] >= st.term)
                c--;
            if (c > st.snap_index && (c > st.last_index || !raft_log_term(nd->r, c, &t) ||
                                      t != s->committed_term[c]))
                sim_fail(s, "leader completeness: leader %d of term %" PRIu64
                            " lacks committed entry %" PRIu64,
                         i, st.term, c);
        }
    }
    if (st.commit > nd->seen_commit) {
        /* Committed entries are the same everywhere. */
        grow_u64(&s->committed_term, &s->cap_committed, st.commit);
        grow_u64(&s->applied_hash, &s->cap_applied, st.commit);
        grow_u64(&s->commit_seen_in, &s->cap_seen, st.commit);
        for (uint64_t x = nd->seen_commit + 1; x <= st.commit; x++) {
            uint64_t t;
            if (!s->commit_seen_in[x] || st.term < s->commit_seen_in[x])
                s->commit_seen_in[x] = st.term;
            if (!raft_log_term(nd->r, x, &t))
                continue;
            if (s->committed_term[x] && s->committed_term[x] != t) {
                sim_fail(s, "committed entry %" PRIu64 " has term %" PRIu64 " on node %d but %" PRIu64
                            " elsewhere",
                         x, t, i, s->committed_term[x]);
                return;
            }
            s->committed_term[x] = t;
        }
        nd->seen_commit = st.commit;
        if (st.commit > s->max_committed)
            s->max_committed = st.commit;
    }
}

/* --- the ready cycle --- */

static int find_leader(struct sim *s);

static void catchup_deadline(struct sim *s)
{
    uint64_t behind = 0;
    int l = find_leader(s);
    const struct raft_conf *c = l ? raft_get_conf(s->nodes[l].r) : NULL;
    for (int i = 1; i <= s->n_ids; i++) {
        const struct node *nd = &s->nodes[i];
        if (nd->exists && (!c || raft_conf_has(c, nd->id)) && nd->disk.applied < s->max_acked &&
            s->max_acked - nd->disk.applied > behind)
            behind = s->max_acked - nd->disk.applied;
    }
    uint64_t rtt = 2 * (uint64_t)s->delay_max + s->disk_max + 2;
    s->catchup_deadline = s->now + CATCHUP_BASE_MS + behind * rtt;
}

static void apply_entry(struct sim *s, int i, const struct raft_entry *e)
{
    struct node *nd = &s->nodes[i];
    struct disk *d = &nd->disk;
    if (e->index != d->applied + 1) {
        sim_fail(s, "node %d applies %" PRIu64 " after %" PRIu64 " (applied index must move by one)",
                 i, e->index, d->applied);
        return;
    }
    uint64_t h = chain(d->sm_hash, e);
    grow_u64(&s->applied_hash, &s->cap_applied, e->index);
    grow_u64(&s->committed_term, &s->cap_committed, e->index);
    if (s->applied_hash[e->index] && s->applied_hash[e->index] != h) {
        sim_fail(s, "state machine safety: node %d applied a different entry at %" PRIu64, i,
                 e->index);
        return;
    }
    s->applied_hash[e->index] = h;
    d->applied = e->index;
    d->sm_hash = h;
    if (e->type == RAFT_ENTRY_NORMAL && e->len >= 8) {
        uint64_t pid = get_be64(e->data);
        if (pid < s->n_props) {
            struct proposal *p = &s->props[pid];
            if (p->node == i && p->index == e->index && p->term == e->term && !p->acked) {
                p->acked = true; /* the client hears "committed" */
                if (e->index > s->max_acked)
                    s->max_acked = e->index;
                if (!s->chaos && !s->acked_after_heal) {
                    s->acked_after_heal = true;
                    catchup_deadline(s);
                }
            }
        }
    }
}

static void install_snapshot(struct sim *s, int i, const struct raft_snap_meta *m)
{
    struct node *nd = &s->nodes[i];
    struct disk *d = &nd->disk;
    if (d->recv_len < 16 || get_be64(d->recv) != m->index) {
        sim_fail(s, "node %d installs snapshot %" PRIu64 " from %zu bad bytes", i, m->index,
                 d->recv_len);
        return;
    }
    uint64_t h = get_be64(d->recv + 8);
    uint8_t *want;
    size_t wl = snap_image(s, m->index, h, &want);
    bool same = wl == d->recv_len && memcmp(want, d->recv, wl) == 0;
    free(want);
    if (!same) {
        sim_fail(s, "node %d received a corrupt snapshot at %" PRIu64, i, m->index);
        return;
    }
    if (m->index <= d->applied) {
        sim_fail(s, "node %d installs snapshot %" PRIu64 " behind applied %" PRIu64, i, m->index,
                 d->applied);
        return;
    }
    grow_u64(&s->applied_hash, &s->cap_applied, m->index);
    if (s->applied_hash[m->index] != h) {
        sim_fail(s, "state machine safety: snapshot at %" PRIu64 " differs from what was applied",
                 m->index);
        return;
    }
    disk_truncate(d, 0);
    free(d->snap_data);
    d->snap_data = d->recv;
    d->snap_len = d->recv_len;
    d->recv = NULL;
    d->recv_len = d->recv_cap = 0;
    d->snap = *m;
    d->applied = m->index;
    d->sm_hash = h;
    s->n_snap_installs++;
    trace(s, "node %d installs snapshot %" PRIu64 "/%" PRIu64, i, m->index, m->term);
}

/* Persist, apply, answer, advance: what a node does when its disk write is done. */
static void complete_ready(struct sim *s, int i)
{
    struct node *nd = &s->nodes[i];
    struct disk *d = &nd->disk;
    const struct raft_ready *rd = &nd->rd;
    if (rd->chunk) {
        const struct raft_snap_chunk *c = rd->chunk;
        if (c->offset == 0)
            d->recv_len = 0;
        if (c->offset != d->recv_len) {
            sim_fail(s, "node %d: snapshot chunk at %" PRIu64 " but %zu bytes stored", i, c->offset,
                     d->recv_len);
            return;
        }
        if (d->recv_len + c->len > d->recv_cap) {
            d->recv_cap = (d->recv_len + c->len) * 2;
            d->recv = xrealloc(d->recv, d->recv_cap);
        }
        if (c->len)
            memcpy(d->recv + d->recv_len, c->data, c->len);
        d->recv_len += c->len;
    }
    if (rd->install)
        install_snapshot(s, i, rd->install);
    if (rd->n_entries) {
        uint64_t first = rd->entries[0].index;
        if (first <= d->snap.index || first > d->snap.index + d->n_log + 1) {
            sim_fail(s, "node %d persists entry %" PRIu64 " outside its stored log (%" PRIu64
                        "..%" PRIu64 ")",
                     i, first, d->snap.index, d->snap.index + d->n_log);
            return;
        }
        disk_truncate(d, first);
        for (size_t k = 0; k < rd->n_entries; k++) {
            const struct raft_entry *e = &rd->entries[k];
            uint64_t pt = disk_term(d, e->index - 1);
            check_log_entry(s, i, e->index, e->term, entry_hash(e), pt);
            disk_append(d, e);
        }
    }
    if (rd->hs_changed) {
        if (rd->hs.term < d->hs.term || (rd->hs.term == d->hs.term && d->hs.vote &&
                                         rd->hs.vote != d->hs.vote))
            sim_fail(s, "node %d: hard state goes back (term %" PRIu64 " vote %" PRIu64
                        " over term %" PRIu64 " vote %" PRIu64 ")",
                     i, rd->hs.term, rd->hs.vote, d->hs.term, d->hs.vote);
        d->hs = rd->hs;
    }
    for (size_t k = 0; k < rd->n_committed && !s->failed; k++)
        apply_entry(s, i, &rd->committed[k]);
    for (size_t k = 0; k < rd->n_reads; k++) {
        uint64_t ctx = rd->reads[k].ctx;
        if (ctx >= s->n_reads)
            continue;
        struct read_rec *rr = &s->reads[ctx];
        if (rr->node != i)
            continue;
        if (rd->reads[k].index < rr->min_index)
            sim_fail(s, "linearizable read %" PRIu64 " on node %d answered at index %" PRIu64
                        " but %" PRIu64 " was committed before it was asked",
                     ctx, i, rd->reads[k].index, rr->min_index);
        if (!rr->answered)
            s->n_reads_ok++;
        rr->answered = true;
    }
    raft_advance(nd->r, rd);
    nd->persisting = false;
}

static void pump(struct sim *s, int i)
{
    struct node *nd = &s->nodes[i];
    while (nd->r && !nd->persisting && !s->failed && raft_has_ready(nd->r)) {
        raft_ready(nd->r, &nd->rd);
        /* Messages may leave before the disk write: the core holds back
         * everything that depends on it. */
        for (size_t k = 0; k < nd->rd.n_msgs; k++)
            net_send(s, i, &nd->rd.msgs[k]);
        bool writes = nd->rd.hs_changed || nd->rd.n_entries || nd->rd.chunk || nd->rd.install;
        if (writes && !rng_pct(&s->g, s->disk_zero_pct)) {
            nd->persisting = true;
            nd->persisting_vote = nd->rd.hs_changed && (nd->rd.hs.term != nd->disk.hs.term ||
                                                        nd->rd.hs.vote != nd->disk.hs.vote);
            schedule(s, s->now + 1 + rng_below(&s->g, s->disk_max), EV_PERSIST, i, nd->inc);
            break;
        }
        complete_ready(s, i);
        observe(s, i);
    }
    observe(s, i);
}

/* --- clients and the nemesis --- */

static int find_leader(struct sim *s)
{
    int best = 0;
    uint64_t best_term = 0;
    for (int i = 1; i <= s->n_ids; i++) {
        if (!s->nodes[i].r)
            continue;
        struct raft_status st;
        raft_status(s->nodes[i].r, &st);
        if (st.role == RAFT_LEADER && st.term >= best_term) {
            best = i;
            best_term = st.term;
        }
    }
    return best;
}

static void client_event(struct sim *s)
{
    if (rng_pct(&s->g, 80)) {
        if (!s->chaos && s->acked_after_heal)
            return; /* liveness: one new commit, then let everyone catch up */
        int l = find_leader(s);
        if (!l)
            return;
        if (s->n_props == s->cap_props) {
            s->cap_props = s->cap_props ? s->cap_props * 2 : 256;
            s->props = xrealloc(s->props, s->cap_props * sizeof *s->props);
        }
        uint64_t pid = s->n_props;
        uint8_t data[8 + 24];
        size_t len = 8 + rng_below(&s->g, 25);
        put_be64(data, pid);
        for (size_t k = 8; k < len; k++)
            data[k] = (uint8_t)rng_next(&s->g);
        uint64_t index, term;
        if (raft_propose(s->nodes[l].r, data, len, &index, &term) == ERR_OK) {
            s->props[s->n_props++] = (struct proposal){l, index, term, false};
            trace(s, "propose #%" PRIu64 " on node %d -> %" PRIu64 "/%" PRIu64, pid, l, index, term);
            pump(s, l);
        }
        return;
    }
    int i = 1 + (int)rng_below(&s->g, (uint32_t)s->n_ids);
    if (!s->nodes[i].r)
        return;
    if (s->n_reads == s->cap_reads) {
        s->cap_reads = s->cap_reads ? s->cap_reads * 2 : 256;
        s->reads = xrealloc(s->reads, s->cap_reads * sizeof *s->reads);
    }
    uint64_t ctx = s->n_reads;
    s->reads[s->n_reads] = (struct read_rec){i, s->max_committed, false};
    if (raft_read_index(s->nodes[i].r, ctx) == ERR_OK) {
        s->n_reads++;
        trace(s, "read %" PRIu64 " on node %d (min %" PRIu64 ")", ctx, i, s->max_committed);
        pump(s, i);
    }
}

static void restart_later(struct sim *s, int i)
{
    uint64_t after = rng_pct(&s->g, 50) ? 1 + rng_below(&s->g, 20) : 20 + rng_below(&s->g, 300);
    schedule(s, s->now + after, EV_RESTART, i, s->nodes[i].inc);
}

static void chaos_event(struct sim *s)
{
    uint32_t a = rng_below(&s->g, 100);
    int i = 1 + (int)rng_below(&s->g, (uint32_t)s->n_ids);
    if (rng_pct(&s->g, 30)) {
        int l = find_leader(s); /* aim at the leader: more elections */
        if (l)
            i = l;
    }
    struct node *nd = &s->nodes[i];
    if (a < 8) {
        if (nd->r) {
            node_crash(s, i);
            restart_later(s, i);
        }
    } else if (a < 14) {
        /* isolate one node */
        for (int j = 1; j <= s->n_ids; j++)
            s->blocked[i][j] = s->blocked[j][i] = j != i;
        trace(s, "partition: node %d isolated", i);
    } else if (a < 19) {
        /* split in two random halves */
        uint32_t mask = (uint32_t)rng_next(&s->g);
        for (int x = 1; x <= s->n_ids; x++)
            for (int y = 1; y <= s->n_ids; y++)
                s->blocked[x][y] = ((mask >> x) & 1) != ((mask >> y) & 1);
        trace(s, "partition: split %x", mask);
    } else if (a < 25) {
        /* asymmetric: i cannot send to j */
        int j = 1 + (int)rng_below(&s->g, (uint32_t)s->n_ids);
        if (j != i) {
            s->blocked[i][j] = true;
            trace(s, "partition: %d -> %d blocked", i, j);
        }
    } else if (a < 36) {
        memset(s->blocked, 0, sizeof s->blocked);
        trace(s, "partition healed");
    } else if (a < 48) {
        /* compaction, keeping a few entries sometimes */
        if (nd->r && !nd->persisting) {
            struct raft_status st;
            raft_status(nd->r, &st);
            uint64_t keep = rng_below(&s->g, 4);
            if (st.applied > st.snap_index + keep) {
                uint64_t idx = st.applied - keep;
                uint64_t h = s->applied_hash[idx];
                if (raft_compact(nd->r, idx) != ERR_OK) {
                    sim_fail(s, "node %d cannot compact at %" PRIu64, i, idx);
                    return;
                }
                struct disk *d = &nd->disk;
                free(d->snap_data);
                d->snap_len = snap_image(s, idx, h, &d->snap_data);
                /* Drop the stored entries the snapshot covers. */
                uint64_t drop = idx - d->snap.index;
                if (drop > d->n_log) {
                    sim_fail(s, "node %d compacts past its stored log", i);
                    return;
                }
                for (uint64_t k = 0; k < drop; k++)
                    free(d->log[k].data);
                memmove(d->log, d->log + drop, (d->n_log - drop) * sizeof *d->log);
                d->n_log -= drop;
                d->snap = *raft_get_snap(nd->r);
                trace(s, "node %d compacts to %" PRIu64, i, idx);
            }
        }
    } else if (a < 58) {
        int l = find_leader(s);
        if (!l)
            return;
        const struct raft_conf *c = raft_get_conf(s->nodes[l].r);
        uint32_t k = rng_below(&s->g, 3);
        enum raft_cc_type t = RAFT_CC_ADD_LEARNER;
        uint64_t id = 0;
        if (k == 0) {
            /* add a spare that never was a member */
            for (int j = s->n_init + 1; j <= s->n_ids; j++)
                if (!raft_conf_has(c, (uint64_t)j) && !s->retired[j]) {
                    id = (uint64_t)j;
                    break;
                }
            if (id && !s->nodes[id].r)
                node_start(s, (int)id);
        } else if (k == 1) {
            t = RAFT_CC_PROMOTE;
            for (uint32_t x = 0; x < c->n; x++)
                if (c->learners & (1u << x))
                    id = c->ids[x];
        } else {
            t = RAFT_CC_REMOVE;
            uint32_t x = rng_below(&s->g, c->n);
            bool learner = (c->learners >> x) & 1;
            /* A removed server that missed its removal keeps campaigning;
             * only pre-vote or the check-quorum lease keep it from deposing
             * leaders (thesis 4.2.3), so plain Raft gets no removals. */
            if ((learner || raft_conf_voters(c) > 3) && (s->pre_vote || s->check_quorum))
                id = c->ids[x];
        }
        if (!id)
            return;
        int rc = raft_propose_conf_change(s->nodes[l].r, t, id, NULL, NULL);
        if (rc == ERR_OK) {
            s->n_conf++;
            if (t == RAFT_CC_REMOVE)
                s->retired[id] = true;
            trace(s, "conf change %d node %" PRIu64 " proposed on %d", (int)t, id, l);
            pump(s, l);
        }
    } else if (a < 70) {
        /* Election timeouts firing together: rival candidates of one term. */
        int k = 2 + (int)rng_below(&s->g, 2);
        for (int c = 0; c < k; c++) {
            int j = 1 + (int)rng_below(&s->g, (uint32_t)s->n_ids);
            if (s->nodes[j].r && raft_campaign(s->nodes[j].r) == ERR_OK) {
                trace(s, "node %d times out", j);
                pump(s, j);
            }
        }
    } else if (a < 76) {
        int l = find_leader(s);
        if (!l)
            return;
        const struct raft_conf *c = raft_get_conf(s->nodes[l].r);
        uint64_t to = c->ids[rng_below(&s->g, c->n)];
        if (raft_transfer_leadership(s->nodes[l].r, to) == ERR_OK) {
            s->n_transfers++;
            trace(s, "transfer leadership %d -> %" PRIu64, l, to);
            pump(s, l);
        }
    }
}

/* --- one seed --- */

static void sim_setup(struct sim *s, uint64_t seed, bool tr)
{
    memset(s, 0, sizeof *s);
    s->seed = seed;
    s->g.s = seed * UINT64_C(0x2545F4914F6CDD1D) + 7;
    s->trace = tr;
    uint32_t k = rng_below(&s->g, 10);
    s->n_init = k < 5 ? 3 : k < 8 ? 5 : 7;
    s->n_ids = s->n_init + 2;
    s->drop_pct = rng_below(&s->g, 16);
    s->dup_pct = rng_below(&s->g, 6);
    s->reorder_pct = rng_below(&s->g, 40);
    s->fsync_crash_pct = rng_below(&s->g, 6);
    s->delay_min = 1 + rng_below(&s->g, 3);
    s->delay_max = s->delay_min + 2 + rng_below(&s->g, 30);
    s->long_delay_pct = rng_below(&s->g, 3);
    s->disk_max = 1 + rng_below(&s->g, 8);
    s->disk_zero_pct = rng_below(&s->g, 60);
    s->heartbeat_ticks = 1 + rng_below(&s->g, 3);
    s->max_inflight = 1 + rng_below(&s->g, 8);
    s->max_entries = 1 + rng_below(&s->g, 8);
    s->chunk_bytes = 8 + rng_below(&s->g, 40);
    s->max_uncommitted = 8 + rng_below(&s->g, 120);
    s->snap_pad = rng_below(&s->g, 120);
    s->check_quorum = rng_pct(&s->g, 85);
    s->pre_vote = rng_pct(&s->g, 85);
    s->lease_reads = s->check_quorum && s->pre_vote && rng_pct(&s->g, 30);
    s->client_gap_max = 4 + rng_below(&s->g, 20);
    s->chaos_gap_max = 20 + rng_below(&s->g, 60);
    s->chaos_ms = 1000 + rng_below(&s->g, 3000);
    s->chaos = true;
    for (int i = 1; i <= s->n_ids; i++) {
        struct node *nd = &s->nodes[i];
        nd->id = (uint64_t)i;
        nd->tick_phase = rng_below(&s->g, TICK_MS);
        /* Founding members share the bootstrap configuration; spares start
         * empty and join as learners. */
        if (i <= s->n_init) {
            struct raft_conf c = {.n = (uint32_t)s->n_init};
            for (int j = 0; j < s->n_init; j++)
                c.ids[j] = (uint64_t)(j + 1);
            struct raft_bootstrap_buf bb;
            struct raft_persisted p;
            if (raft_bootstrap(&c, &bb, &p) != ERR_OK)
                abort();
            nd->disk.hs = p.hs;
            for (size_t e = 0; e < p.n_entries; e++)
                disk_append(&nd->disk, &p.entries[e]);
        }
    }
}

static void sim_teardown(struct sim *s)
{
    for (int i = 1; i <= s->n_ids; i++) {
        raft_destroy(s->nodes[i].r);
        disk_free(&s->nodes[i].disk);
    }
    for (size_t k = 0; k < s->n_ev; k++)
        free(s->heap[k].bytes);
    free(s->heap);
    free(s->leader_of);
    free(s->applied_hash);
    free(s->committed_term);
    free(s->commit_seen_in);
    free(s->etab);
    free(s->props);
    free(s->reads);
}

static void deliver(struct sim *s, struct event *e)
{
    struct node *nd = &s->nodes[e->node];
    if (!nd->r)
        return;
    struct msg wm;
    struct errbuf eb;
    if (e->len < 4 || msg_decode(&wm, e->bytes + 4, e->len - 4, &msg_limits_reply, &eb) != ERR_OK) {
        sim_fail(s, "a message does not decode: %s", eb.msg);
        return;
    }
    struct raft_msg m;
    if (raft_msg_decode(&wm, &m) != ERR_OK) {
        sim_fail(s, "a %s message does not decode as Raft", msg_type_name(wm.type));
        msg_free(&wm);
        return;
    }
    if (s->trace)
        trace(s, "%" PRIu64 " -> %" PRIu64 " %s t%" PRIu64 " i%" PRIu64 " lt%" PRIu64 " c%" PRIu64
                 " n%u%s ctx%" PRIu64 " off%" PRIu64,
              m.from, m.to, raft_msg_type_name(m.type), m.term, m.index, m.log_term, m.commit,
              m.n_entries, m.reject ? " REJECT" : "", m.ctx, m.offset);
    int rc = raft_step(nd->r, &m);
    if (rc != ERR_OK)
        sim_fail(s, "node %d refused a %s from %" PRIu64 ": %s", e->node,
                 raft_msg_type_name(m.type), m.from, err_str(rc));
    raft_msg_release(&m);
    msg_free(&wm);
    pump(s, e->node);
}

static void heal(struct sim *s)
{
    s->chaos = false;
    s->heal_time = s->now;
    memset(s->blocked, 0, sizeof s->blocked);
    for (int i = 1; i <= s->n_ids; i++)
        if (s->nodes[i].exists && !s->nodes[i].r)
            node_start(s, i);
    trace(s, "faults stop; liveness from here");
}

/* Done when a proposal made after the heal was acknowledged and every member
 * of the leader's configuration applied every acknowledged proposal. */
static bool converged(struct sim *s)
{
    if (!s->acked_after_heal)
        return false;
    int l = find_leader(s);
    if (!l)
        return false;
    const struct raft_conf *c = raft_get_conf(s->nodes[l].r);
    for (uint32_t x = 0; x < c->n; x++) {
        const struct node *nd = &s->nodes[c->ids[x]];
        if (!nd->r || nd->disk.applied < s->max_acked)
            return false;
    }
    return true;
}

static int sim_run(uint64_t seed, bool tr, bool verbose)
{
    struct sim *s = calloc(1, sizeof *s);
    if (!s)
        abort();
    sim_setup(s, seed, tr);
    for (int i = 1; i <= s->n_init; i++)
        node_start(s, i);
    schedule(s, 1, EV_CLIENT, 0, 0);
    schedule(s, 50, EV_CHAOS, 0, 0);
    schedule(s, s->chaos_ms, EV_HEAL, 0, 0);
    bool done = false;
    while (!s->failed && !done && s->n_ev > 0) {
        struct event e = ev_pop(s);
        s->now = e.time;
        s->step++;
        struct node *nd = e.node > 0 ? &s->nodes[e.node] : NULL;
        switch (e.type) {
        case EV_TICK:
            if (nd->r && nd->inc == e.inc) {
                raft_tick(nd->r);
                pump(s, e.node);
                schedule(s, s->now + TICK_MS, EV_TICK, e.node, e.inc);
            }
            break;
        case EV_DELIVER:
            deliver(s, &e);
            break;
        case EV_PERSIST:
            if (nd->r && nd->inc == e.inc && nd->persisting && s->chaos &&
                rng_pct(&s->g, s->fsync_crash_pct * (nd->persisting_vote ? 6 : 1))) {
                /* The node dies before its write completes: the batch is
                 * lost, though its messages already left. */
                node_crash(s, e.node);
                /* a supervisor restarts it at once */
                schedule(s, s->now + 1 + rng_below(&s->g, 5), EV_RESTART, e.node, nd->inc);
            } else if (nd->r && nd->inc == e.inc && nd->persisting) {
                complete_ready(s, e.node);
                observe(s, e.node);
                pump(s, e.node);
            }
            break;
        case EV_RESTART:
            if (!nd->r && s->chaos)
                node_start(s, e.node);
            break;
        case EV_CLIENT:
            client_event(s);
            if (!s->chaos && converged(s))
                done = true;
            else
                schedule(s, s->now + 1 + rng_below(&s->g, s->client_gap_max), EV_CLIENT, 0, 0);
            break;
        case EV_CHAOS:
            if (s->chaos) {
                chaos_event(s);
                schedule(s, s->now + 1 + rng_below(&s->g, s->chaos_gap_max), EV_CHAOS, 0, 0);
            }
            break;
        case EV_HEAL:
            heal(s);
            break;
        }
        free(e.bytes);
        if (!s->chaos && !done && !s->acked_after_heal && s->now > s->heal_time + COMMIT_BOUND_MS)
            sim_fail(s, "liveness: no new proposal committed %d ms after faults stopped (leader %d)",
                     COMMIT_BOUND_MS, find_leader(s));
        if (!s->chaos && !done && s->acked_after_heal && s->now > s->catchup_deadline)
            sim_fail(s, "liveness: members have not applied everything acknowledged by %" PRIu64
                        " ms (leader %d, max acked %" PRIu64 ")",
                     s->catchup_deadline, find_leader(s), s->max_acked);
    }
    int rc = 0;
    if (s->failed) {
        fprintf(stderr, "SIM FAILURE seed=%" PRIu64 " step=%" PRIu64 " time=%" PRIu64 "ms: %s\n"
                        "  replay: DDKV_SEED=%" PRIu64 " DDKV_SIM_TRACE=1 consensus_sim\n",
                seed, s->step, s->now, s->why, seed);
        rc = 1;
    } else if (!done) {
        fprintf(stderr, "SIM FAILURE seed=%" PRIu64 ": ran out of events\n", seed);
        rc = 1;
    } else if (verbose) {
        fprintf(stderr,
                "seed %" PRIu64 ": %d nodes, %" PRIu64 " steps, %" PRIu64 " ms, %" PRIu64
                " msgs, %" PRIu64 " leaders, %zu proposals (max acked %" PRIu64 "), %" PRIu64
                " reads, %" PRIu64 " crashes, %" PRIu64 " snapshots, %" PRIu64 " conf, %" PRIu64
                " transfers, converged %" PRIu64 " ms after heal\n",
                seed, s->n_init, s->step, s->now, s->n_msgs, s->n_elections, s->n_props,
                s->max_acked, s->n_reads_ok, s->n_crashes, s->n_snap_installs, s->n_conf,
                s->n_transfers, s->now - s->heal_time);
    }
    sim_teardown(s);
    free(s);
    return rc;
}

int main(int argc, char **argv)
{
    uint64_t first = 1, count = 100;
    bool quiet = false, all = false;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--first") && i + 1 < argc)
            first = strtoull(argv[++i], NULL, 10);
        else if (!strcmp(argv[i], "--count") && i + 1 < argc)
            count = strtoull(argv[++i], NULL, 10);
        else if (!strcmp(argv[i], "--quiet"))
            quiet = true;
        else if (!strcmp(argv[i], "--all"))
            all = true;
        else {
            fprintf(stderr, "usage: %s [--first F] [--count N] [--quiet] [--all]\n", argv[0]);
            return 2;
        }
    }
    const char *tr = getenv("DDKV_SIM_TRACE");
    bool tracing = tr && *tr && strcmp(tr, "0") != 0;
    const char *one = getenv("DDKV_SEED");
    if (one && *one)
        return sim_run(strtoull(one, NULL, 10), tracing, true);
    const char *many = getenv("DDKV_SEEDS");
    if (many && *many)
        count = strtoull(many, NULL, 10);
    uint64_t failures = 0;
    for (uint64_t k = 0; k < count; k++) {
        if (all)
            fprintf(stderr, "SEED %" PRIu64 "\n", first + k);
        if (sim_run(first + k, tracing, false) != 0)
            failures++;
        if (failures >= 5 && !all)
            break;
    }
    if (!quiet || failures)
        fprintf(stderr, "sim: %" PRIu64 " seeds from %" PRIu64 ", %" PRIu64 " failed\n", count,
                first, failures);
    return failures ? 1 : 0;
}
