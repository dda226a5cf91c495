/* Leases: LEASE_GRANT, LEASE_KEEPALIVE, LEASE_REVOKE, and the leader's expiry.
 *
 * A lease lives in the state machine (id = the index of its grant, ttl); its
 * countdown lives only in the leader's memory. The leader proposes a REVOKE
 * through the log when a countdown runs out, so every member deletes the same
 * keys at the same index. A keepalive only restarts the leader's countdown
 * (nothing is logged: keepalives are frequent and carry no state change).
 *
 * A new leader starts every countdown afresh at the full ttl, once it has
 * applied what it committed as leader (so it knows every granted lease): a
 * failover can only lengthen a lease, never shorten it. The cost is that a
 * client that died just before a failover keeps its keys for up to one more
 * ttl.
 *
 * A lease belongs to the user who granted it: the grant's log entry carries
 * the connection's user, the state machine keeps it, and only that user
 * (or root) may keep the lease alive, attach keys to it or revoke it, which
 * access.c checks with every other permission. */
#include <stdlib.h>
#include <string.h>

#include "node/node_int.h"
#include "node/mod/auth.h"
#include "util/clock.h"
#include "util/log.h"

struct lease_slot {
    uint64_t id; /* 0: empty */
    uint64_t ttl_ms;
    uint64_t deadline_ms;
    uint64_t revoking_until_ms; /* a REVOKE was proposed; retry after this */
};

/* Open addressing, linear probing, tombstone-free deletion by backward shift. */
struct lease_table {
    struct lease_slot *slots;
    size_t cap, n; /* cap a power of two */
    uint64_t term; /* the term it was built for */
};

static size_t lt_hash(uint64_t id, size_t cap)
{
    id ^= id >> 33;
    id *= UINT64_C(0xff51afd7ed558ccd);
    id ^= id >> 33;
    return (size_t)id & (cap - 1);
}

static struct lease_slot *lt_find(struct lease_table *t, uint64_t id)
{
    if (!t->cap)
        return NULL;
    for (size_t i = lt_hash(id, t->cap);; i = (i + 1) & (t->cap - 1)) {
        if (t->slots[i].id == id)
            return &t->slots[i];
        if (t->slots[i].id == 0)
            return NULL;
    }
}

static void lt_put(struct lease_table *t, uint64_t id, uint64_t ttl_ms, uint64_t deadline_ms);

static void lt_grow(struct lease_table *t)
{
    struct lease_table old = *t;
    t->cap = old.cap ? old.cap * 2 : 64;
    t->slots = calloc(t->cap, sizeof *t->slots);
    ASSERT(t->slots != NULL);
    t->n = 0;
    for (size_t i = 0; i < old.cap; i++)
        if (old.slots[i].id)
            lt_put(t, old.slots[i].id, old.slots[i].ttl_ms, old.slots[i].deadline_ms);
    free(old.slots);
}

static void lt_put(struct lease_table *t, uint64_t id, uint64_t ttl_ms, uint64_t deadline_ms)
{
    struct lease_slot *s = lt_find(t, id);
    if (!s) {
        if ((t->n + 1) * 4 > t->cap * 3)
            lt_grow(t);
        size_t i = lt_hash(id, t->cap);
        while (t->slots[i].id)
            i = (i + 1) & (t->cap - 1);
        s = &t->slots[i];
        t->n++;
    }
    *s = (struct lease_slot){.id = id, .ttl_ms = ttl_ms, .deadline_ms = deadline_ms};
}

static void lt_del(struct lease_table *t, uint64_t id)
{
    struct lease_slot *s = lt_find(t, id);
    if (!s)
        return;
    size_t i = (size_t)(s - t->slots), mask = t->cap - 1;
    t->slots[i].id = 0;
    t->n--;
    /* Shift back the entries of the probe run after the hole. */
    for (size_t j = (i + 1) & mask; t->slots[j].id; j = (j + 1) & mask) {
        size_t home = lt_hash(t->slots[j].id, t->cap);
        bool movable = i <= j ? (home <= i || home > j) : (home <= i && home > j);
        if (movable) {
            t->slots[i] = t->slots[j];
            t->slots[j].id = 0;
            i = j;
        }
    }
}

static void lease_free(struct node *n)
{
    if (n->leases)
        free(n->leases->slots);
    free(n->leases);
    n->leases = NULL;
}

static int lease_load_cb(void *ctx, uint64_t id, uint64_t ttl_ms)
{
    struct lease_table *t = ctx;
    lt_put(t, id, ttl_ms, clock_mono_ms() + ttl_ms);
    return 0;
}

/* Every tick. A leader that has applied everything it committed builds the
 * table for its term; then it proposes a revoke for every lease past its
 * deadline. A member that is not leader holds no table. */
static void lease_tick(struct node *n)
{
    struct raft_status st;
    raft_status(n->raft, &st);
    if (st.role != RAFT_LEADER || replica_fenced(n) || replica_installing(n)) {
        if (n->leases)
            lease_free(n);
        return;
    }
    if (!n->leases || n->leases->term != st.term) {
        /* Only once it committed an entry of its own term (so its commit
         * index covers every entry an earlier leader committed, every grant
         * included) and applied up to there. */
        uint64_t cterm = 0;
        if (st.commit == 0 || !raft_log_term(n->raft, st.commit, &cterm) || cterm != st.term ||
            n->sm.applied_index < st.commit)
            return;
        lease_free(n);
        n->leases = calloc(1, sizeof *n->leases);
        ASSERT(n->leases != NULL);
        struct errbuf eb;
        if (sm_lease_foreach(&n->sm, lease_load_cb, n->leases, &eb) != ERR_OK) {
            log_error("cannot load leases: %s", eb.msg);
            lease_free(n);
            return;
        }
        n->leases->term = st.term;
        if (n->leases->n)
            log_info("leader of term %llu: %zu leases, each given its full ttl again",
                     (unsigned long long)st.term, n->leases->n);
    }
    uint64_t now = clock_mono_ms();
    struct lease_table *t = n->leases;
    for (size_t i = 0; i < t->cap; i++) {
        struct lease_slot *s = &t->slots[i];
        if (!s->id || now < s->deadline_ms || now < s->revoking_until_ms)
            continue;
        struct sm_op op = {.kind = SM_OP_LEASE_REVOKE, .lease = s->id};
        if (replica_propose_internal(n, &op) == ERR_OK) {
            n->stats.leases_expired++;
            log_debug("lease %llu expired: revoking", (unsigned long long)s->id);
        }
        /* Until the revoke applies (and removes it), do not ask again for a
         * while; if it was lost to a leader change, the next leader decides. */
        s->revoking_until_ms = now + 2 * (uint64_t)n->cfg.election_timeout_ms;
    }
}

/* A grant or a revoke applied (not a duplicate, a stale retry or a refusal):
 * the leader's table follows. */
static void lease_on_applied(struct node *n, const struct raft_entry *e, const struct sm_op *op,
                             const struct sm_result *res)
{
    (void)e;
    if (res->duplicate || res->stale || res->error || !n->leases)
        return;
    if (op->kind == SM_OP_LEASE_GRANT && res->lease_id)
        lt_put(n->leases, res->lease_id, res->lease_ttl_ms, clock_mono_ms() + res->lease_ttl_ms);
    else if (op->kind == SM_OP_LEASE_REVOKE && res->found)
        lt_del(n->leases, op->lease);
}

/* --- the module --- */

/* A grant or a revoke applied: LEASE [lease_id, ttl_ms], or NOT_FOUND for a
 * revoke of a lease that is gone (replica_reply_fn). */
static void lease_answer(struct node *n, const struct proposal *p, const struct sm_result *res)
{
    (void)n;
    if (res->lease_id == 0 && !res->found) {
        conn_reply_error(p->c, p->request_id, DDKV_WERR_NOT_FOUND, "lease not found (expired or revoked)");
        return;
    }
    struct msg_writer w;
    conn_reply_begin(p->c, &w, DDKV_MSG_LEASE, p->request_id, 2);
    mw_u64(&w, res->lease_id);
    mw_u64(&w, res->lease_ttl_ms);
    conn_reply_end(p->c, &w);
}

#define LEASE_TTL_MIN_MS 100u
#define LEASE_TTL_MAX_MS (UINT64_C(365) * 24 * 3600 * 1000)

/* LEASE_GRANT [ttl_ms, client_id, seq] */
static void lease_grant(void *ctx, struct conn *c, const struct msg *m)
{
    struct node *n = ctx;
    struct sm_op op = {.kind = SM_OP_LEASE_GRANT};
    if (msg_u64(m, 0, &op.lease_ttl_ms) || msg_u64_opt(m, 1, 0, &op.client_id) ||
        msg_u64_opt(m, 2, 0, &op.seq)) {
        conn_reply_error(c, m->request_id, DDKV_WERR_BAD_REQUEST, "LEASE_GRANT wants [ttl_ms, client_id, seq]");
        return;
    }
    if (op.lease_ttl_ms < LEASE_TTL_MIN_MS || op.lease_ttl_ms > LEASE_TTL_MAX_MS) {
        conn_reply_error(c, m->request_id, DDKV_WERR_BAD_REQUEST, "lease ttl must be %u ms .. 1 year",
                         LEASE_TTL_MIN_MS);
        return;
    }
    /* Its owner: whoever this connection is (none without an identity, as
     * with auth disabled and no login: such a lease is root's to use once
     * auth is enabled). Encoded into the entry before this returns. */
    op.owner = auth_conn_user(n, c);
    op.owner_len = op.owner ? strlen(op.owner) : 0;
    replica_propose_reply(n, c, m->request_id, DDKV_MSG_LEASE, lease_answer, &op);
}

/* LEASE_REVOKE [lease_id, client_id, seq] */
static void lease_revoke(void *ctx, struct conn *c, const struct msg *m)
{
    struct node *n = ctx;
    struct sm_op op = {.kind = SM_OP_LEASE_REVOKE};
    if (msg_u64(m, 0, &op.lease) || op.lease == 0 || msg_u64_opt(m, 1, 0, &op.client_id) ||
        msg_u64_opt(m, 2, 0, &op.seq)) {
        conn_reply_error(c, m->request_id, DDKV_WERR_BAD_REQUEST, "LEASE_REVOKE wants [lease_id, client_id, seq]");
        return;
    }
    replica_propose_reply(n, c, m->request_id, DDKV_MSG_LEASE, lease_answer, &op);
}

/* Whether this member may extend lease id now, as its leader; if not, c is
 * answered why. The slot, or NULL. */
static struct lease_slot *lease_extendable(struct node *n, struct conn *c, uint64_t rid, uint64_t id)
{
    /* A leader whose storage failed takes no part in consensus: it no longer
     * ticks, so it never learns that another member leads now and expires
     * the lease on its own countdown. It must not extend one. */
    if (!replica_lead_or_refuse(n, c, rid, true))
        return NULL;
    struct raft_status st;
    raft_status(n->raft, &st);
    if (!n->leases || n->leases->term != st.term) {
        conn_reply_error(c, rid, DDKV_WERR_UNAVAILABLE, "a new leader is catching up; retry");
        return NULL;
    }
    struct lease_slot *s = lt_find(n->leases, id);
    /* A lease whose revoke this leader has proposed is gone, though the
     * revoke has not applied yet: a keepalive answered now would promise a
     * ttl the revoke is about to break. */
    if (!s || s->revoking_until_ms) {
        conn_reply_error(c, rid, DDKV_WERR_NOT_FOUND, "lease %llu not found (expired or revoked)",
                         (unsigned long long)id);
        return NULL;
    }
    return s;
}

/* The barrier passed: a quorum still followed this member after the
 * keepalive arrived, so no other member can lead yet, and one elected later
 * starts its countdowns later than the ttl from now. */
static void lease_keepalive_confirmed(struct node *n, struct conn *c, uint64_t rid, uint64_t id)
{
    struct lease_slot *s = lease_extendable(n, c, rid, id);
    if (!s)
        return;
    s->deadline_ms = clock_mono_ms() + s->ttl_ms;
    struct msg_writer w;
    conn_reply_begin(c, &w, DDKV_MSG_LEASE, rid, 2);
    mw_u64(&w, id);
    mw_u64(&w, s->ttl_ms);
    conn_reply_end(c, &w);
}

/* LEASE_KEEPALIVE [lease_id]: the leader restarts the countdown, once a
 * ReadIndex round has shown it still leads. Without it a deposed leader that
 * does not know it yet (cut off, its term not yet over) would promise a ttl
 * the new leader's countdown, started at its election, does not honour. */
static void lease_keepalive(void *ctx, struct conn *c, const struct msg *m)
{
    struct node *n = ctx;
    uint64_t id;
    if (msg_u64(m, 0, &id)) {
        conn_reply_error(c, m->request_id, DDKV_WERR_BAD_REQUEST, "LEASE_KEEPALIVE wants [lease_id]");
        return;
    }
    if (!lease_extendable(n, c, m->request_id, id))
        return;
    if (replica_installing(n)) {
        conn_reply_error(c, m->request_id, DDKV_WERR_UNAVAILABLE, "installing a snapshot; retry");
        return;
    }
    replica_read_barrier(n, c, m->request_id, lease_keepalive_confirmed, id);
    node_observe(n, DDKV_MSG_LEASE_KEEPALIVE, n->req_t0_ns);
}

static int lease_mod_init(struct node *n, struct errbuf *eb)
{
    int rc;
    if ((rc = dispatcher_register(&n->disp, DDKV_MSG_LEASE_GRANT, "lease", lease_grant, n, eb)) ||
        (rc = dispatcher_register(&n->disp, DDKV_MSG_LEASE_KEEPALIVE, "lease", lease_keepalive, n, eb)) ||
        (rc = dispatcher_register(&n->disp, DDKV_MSG_LEASE_REVOKE, "lease", lease_revoke, n, eb)))
        return rc;
    return ERR_OK;
}

const struct module mod_lease = {
    .name = "lease",
    .init = lease_mod_init,
    .on_applied = lease_on_applied,
    .on_tick = lease_tick,
    .on_rejoin = lease_free, /* a restart starts without countdowns */
    .free = lease_free,
};
