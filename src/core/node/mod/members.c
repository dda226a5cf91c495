/* The members module: MEMBER_ADD, MEMBER_REMOVE, LEADER_TRANSFER, and the
 * leader's membership housekeeping every tick (incarnation records, the
 * cluster version, promoting caught-up learners). The address book and the
 * peer transport it works on are the cluster part's (cluster.c). */
#include <stdlib.h>
#include <string.h>

#include "node/peer.h"
#include "node/node_int.h"
#include "node/node_io.h"
#include "proto/version.h"
#include "util/clock.h"
#include "util/log.h"
#include "util/net.h"

/* The module's own state, one per node. */
struct members_state {
    bool inc_self_logged;             /* the cluster's record of us is another incarnation: said once */
    uint64_t cv_proposed_ms;          /* a leader proposed a cluster version then */
    uint64_t cv_wait_id, cv_wait_ver; /* the member (and its version) it last said holds the cluster version */
};

/* Every tick: drop connections of members whose data dir is not the one
 * recorded (a record applied after they connected); a leader records each
 * member's incarnation through the log (the first one it sees wins) and
 * forgets the record of a member no longer in the configuration, so that a
 * member removed and added again is recorded anew. */
static void members_tick_incarnations(struct node *n, bool leader)
{
    if (!n->cluster_id || !n->io->has_peers(n))
        return;
    const struct raft_conf *conf = raft_get_conf(n->raft);
    uint64_t now = clock_mono_ms();
    struct errbuf eb;
    size_t nm;
    struct member *members = cluster_members(n, &nm);
    for (size_t i = 0; i < nm; i++) {
        struct member *m = &members[i];
        uint64_t rec = 0;
        if (sm_member_incarnation(&n->sm, n->cluster_id, m->id, &rec, &eb) != ERR_OK)
            continue;
        bool self = m->id == n->self_id;
        uint64_t have = self ? cluster_incarnation(n) : n->io->peer_incarnation(n, m->id);
        if (self && rec && rec != cluster_incarnation(n) && !n->mstate->inc_self_logged) {
            n->mstate->inc_self_logged = true;
            log_error("this member's data dir is not the one the cluster knows (incarnation %016llx, recorded "
                      "%016llx): the other members refuse it until it is removed and added again",
                      (unsigned long long)cluster_incarnation(n), (unsigned long long)rec);
        }
        if (!self && have && rec && rec != have && !cluster_incarnation_ok(n, m->id, m->name, have))
            n->io->peer_refuse(n, m->id, "its data dir is not the one the cluster knows");
        if (!leader || (m->inc_proposed_ms && now - m->inc_proposed_ms < 2000))
            continue;
        struct sm_op op = {.kind = SM_OP_MEMBER_INC, .member_id = m->id, .member_cluster = n->cluster_id};
        if (!raft_conf_has(conf, m->id)) {
            if (!rec)
                continue;
            op.incarnation = 0; /* removed: forget it */
        } else if (!rec && have) {
            op.incarnation = have;
        } else {
            continue;
        }
        m->inc_proposed_ms = now;
        if (replica_propose_internal(n, &op) == ERR_OK)
            log_info("recording member %s's incarnation %016llx", m->name, (unsigned long long)op.incarnation);
    }
}

/* On the leader: once every member of the configuration (voters and
 * learners) has said, in a hello on a live connection, that it runs a
 * release of a newer series than the cluster version, raise the cluster
 * version to the oldest such series, through the log. Only then does
 * anything new (proto/version.h) get proposed or sent. */
static void members_tick_version(struct node *n)
{
    uint64_t cv = n->sm.cluster_version, low = version_series(DDKV_RELEASE_VERSION);
    if (low <= cv)
        return;
    const struct raft_conf *conf = raft_get_conf(n->raft);
    uint64_t wait_id = 0, wait_ver = 0;
    for (uint32_t i = 0; i < conf->n; i++) {
        if (conf->ids[i] == n->self_id)
            continue;
        /* No transport (a one-node cluster without a peer port): no other
         * member can have said anything. */
        uint64_t v = version_series(n->io->peer_version(n, conf->ids[i]));
        if (v < low) {
            low = v;
            wait_id = conf->ids[i];
            wait_ver = v;
        }
    }
    uint64_t now = clock_mono_ms();
    if (low <= cv) {
        /* Said again only when what holds it changes, so an operator sees why. */
        if (wait_id && (n->mstate->cv_wait_id != wait_id || n->mstate->cv_wait_ver != wait_ver)) {
            const struct member *m = cluster_member(n, wait_id);
            char v[32], c[32];
            n->mstate->cv_wait_id = wait_id;
            n->mstate->cv_wait_ver = wait_ver;
            log_info("cluster version stays %s: member %s %s%s", version_text(cv, c, sizeof c), m ? m->name : "?",
                     wait_ver ? "runs " : "is not connected", wait_ver ? version_text(wait_ver, v, sizeof v) : "");
        }
        return;
    }
    if (n->mstate->cv_proposed_ms && now - n->mstate->cv_proposed_ms < 2000)
        return;
    n->mstate->cv_proposed_ms = now;
    struct sm_op op = {.kind = SM_OP_CLUSTER_VERSION, .version = low};
    char v[32], c[32];
    if (replica_propose_internal(n, &op) == ERR_OK)
        log_info("every member runs %s or later: raising the cluster version from %s", version_text(low, v, sizeof v),
                 version_text(cv, c, sizeof c));
}

/* Leader housekeeping every tick: promote caught-up learners. */
static void members_tick(struct node *n)
{
    struct raft_status st;
    raft_status(n->raft, &st);
    members_tick_incarnations(n, st.role == RAFT_LEADER);
    if (st.role != RAFT_LEADER)
        return;
    members_tick_version(n);
    const struct raft_conf *c = raft_get_conf(n->raft);
    for (uint32_t i = 0; i < c->n; i++) {
        if (!((c->learners >> i) & 1u))
            continue;
        uint64_t index;
        if (raft_propose_conf_change(n->raft, RAFT_CC_PROMOTE, c->ids[i], &index, NULL) == ERR_OK) {
            const struct member *m = cluster_member(n, c->ids[i]);
            log_info("learner %s caught up: promoting it to voter (entry %llu)", m ? m->name : "?",
                     (unsigned long long)index);
            return; /* one change at a time */
        }
    }
}

/* --- the members module: MEMBER_ADD, MEMBER_REMOVE --- */

static bool member_str(const struct msg *m, uint32_t i, char *out, size_t cap)
{
    const uint8_t *p;
    size_t len;
    if (msg_bytes(m, i, &p, &len) != ERR_OK || len == 0 || len >= cap || memchr(p, 0, len))
        return false;
    memcpy(out, p, len);
    out[len] = 0;
    return true;
}

/* A membership change applied: MEMBER_CHANGED [its entry's index]. */
static void members_answer(struct node *n, const struct proposal *p, const struct sm_result *res)
{
    (void)n;
    (void)res;
    struct msg_writer w;
    conn_reply_begin(p->c, &w, DDKV_MSG_MEMBER_CHANGED, p->request_id, 1);
    mw_u64(&w, p->index);
    conn_reply_end(p->c, &w);
}

static void members_change(struct node *n, struct conn *c, uint64_t rid, enum raft_cc_type type,
                           uint64_t id, const char *ctx, size_t ctx_len)
{
    uint64_t index, term;
    if (replica_fenced(n)) {
        conn_reply_error(c, rid, DDKV_WERR_UNAVAILABLE, "this member's storage failed; ask another");
        return;
    }
    int rc = raft_propose_conf_change_ctx(n->raft, type, id, ctx, ctx_len, &index, &term);
    if (rc == ERR_UNAVAILABLE) {
        conn_reply_not_leader(c, rid);
        return;
    }
    if (rc == ERR_AGAIN) {
        conn_reply_error(c, rid, DDKV_WERR_UNAVAILABLE,
                         "another membership change is in progress (or the leader is new); retry");
        return;
    }
    if (rc) {
        conn_reply_error(c, rid, DDKV_WERR_BAD_REQUEST, "the change does not fit the configuration");
        return;
    }
    replica_track(n, c, rid, DDKV_MSG_MEMBER_CHANGED, members_answer, index, term);
}

static void members_add(void *ctx, struct conn *c, const struct msg *m)
{
    struct node *n = ctx;
    char name[64], addr[64];
    if (!member_str(m, 0, name, sizeof name) || !member_str(m, 1, addr, sizeof addr) ||
        strchr(name, '=') || strchr(name, ',')) {
        conn_reply_error(c, m->request_id, DDKV_WERR_BAD_REQUEST,
                         "MEMBER_ADD wants [name, peer_addr] (name without '=' or ',', each < 64 bytes)");
        return;
    }
    struct sockaddr_storage ss;
    socklen_t sl;
    if (net_parse_addr(addr, &ss, &sl) != ERR_OK) {
        conn_reply_error(c, m->request_id, DDKV_WERR_BAD_REQUEST, "bad peer address '%s' (want host:port)", addr);
        return;
    }
    /* Only the leader answers, the "already done" of a retry included: a
     * follower's configuration may still hold a member the leader removed. */
    if (!replica_lead_or_refuse(n, c, m->request_id, true))
        return;
    uint64_t id = cluster_node_id(name);
    if (raft_conf_has(raft_get_conf(n->raft), id)) {
        const struct member *have = cluster_member(n, id);
        if (have && strcmp(have->peer_addr, addr) == 0) {
            /* Asked again (a retry): it is done. */
            struct msg_writer w;
            conn_reply_begin(c, &w, DDKV_MSG_MEMBER_CHANGED, m->request_id, 1);
            mw_u64(&w, 0);
            conn_reply_end(c, &w);
        } else {
            conn_reply_error(c, m->request_id, DDKV_WERR_BAD_REQUEST, "%s is already a member", name);
        }
        return;
    }
    /* A member added again comes with a new data dir: forget the old one's
     * incarnation first (the log keeps the order), so its hello is recorded
     * anew instead of refused. */
    uint64_t rec = 0;
    struct errbuf ieb;
    if (sm_member_incarnation(&n->sm, n->cluster_id, id, &rec, &ieb) == ERR_OK && rec) {
        struct sm_op op = {.kind = SM_OP_MEMBER_INC, .member_id = id, .member_cluster = n->cluster_id};
        if (replica_propose_internal(n, &op) != ERR_OK) {
            conn_reply_not_leader(c, m->request_id);
            return;
        }
    }
    char cctx[130];
    size_t cl = cluster_ctx_encode(cctx, sizeof cctx, name, addr);
    members_change(n, c, m->request_id, RAFT_CC_ADD_LEARNER, id, cctx, cl);
}

static void members_remove(void *ctx, struct conn *c, const struct msg *m)
{
    struct node *n = ctx;
    char name[64];
    if (!member_str(m, 0, name, sizeof name)) {
        conn_reply_error(c, m->request_id, DDKV_WERR_BAD_REQUEST, "MEMBER_REMOVE wants [name]");
        return;
    }
    /* Only the leader says "not a member": a follower's configuration may
     * lack a member the leader has (it joined after the follower's log). */
    if (!replica_lead_or_refuse(n, c, m->request_id, true))
        return;
    uint64_t id = cluster_node_id(name);
    if (!raft_conf_has(raft_get_conf(n->raft), id)) {
        conn_reply_error(c, m->request_id, DDKV_WERR_NOT_FOUND, "%s is not a member", name);
        return;
    }
    members_change(n, c, m->request_id, RAFT_CC_REMOVE, id, NULL, 0);
}

/* LEADER_TRANSFER [name]: the core brings the target up to date, then tells
 * it to campaign at once (thesis 3.10); proposals wait meanwhile. Answered
 * when the handing over has begun: the client watches for the new leader. */
static void members_transfer(void *ctx, struct conn *c, const struct msg *m)
{
    struct node *n = ctx;
    char name[64] = "";
    const uint8_t *p;
    size_t len;
    if (msg_bytes(m, 0, &p, &len) != ERR_OK || len >= sizeof name || memchr(p, 0, len)) {
        conn_reply_error(c, m->request_id, DDKV_WERR_BAD_REQUEST, "LEADER_TRANSFER wants [name] (< 64 bytes)");
        return;
    }
    memcpy(name, p, len);
    name[len] = 0;
    if (!replica_lead_or_refuse(n, c, m->request_id, true))
        return;
    struct raft_status st;
    raft_status(n->raft, &st);
    const struct raft_conf *conf = raft_get_conf(n->raft);
    uint64_t to = 0;
    if (name[0]) {
        to = cluster_node_id(name);
        if (!raft_conf_is_voter(conf, to)) {
            conn_reply_error(c, m->request_id, DDKV_WERR_NOT_FOUND, "%s is not a voting member", name);
            return;
        }
    } else {
        to = cluster_transfer_target(n);
        if (!to) {
            conn_reply_error(c, m->request_id, DDKV_WERR_UNAVAILABLE, "no other voter is reachable");
            return;
        }
    }
    if (to != n->self_id) {
        int rc = raft_transfer_leadership(n->raft, to);
        if (rc == ERR_UNAVAILABLE) {
            conn_reply_not_leader(c, m->request_id);
            return;
        }
        if (rc) {
            conn_reply_error(c, m->request_id, DDKV_WERR_BAD_REQUEST, "cannot hand leadership to that member");
            return;
        }
    }
    const struct member *target = cluster_member(n, to);
    log_info("handing leadership to %s (term %llu)", target ? target->name : "?", (unsigned long long)st.term);
    struct msg_writer w;
    conn_reply_begin(c, &w, DDKV_MSG_LEADER_TRANSFERRING, m->request_id, 2);
    mw_str(&w, target ? target->name : name);
    mw_u64(&w, st.term);
    conn_reply_end(c, &w);
}

static int members_init(struct node *n, struct errbuf *eb)
{
    n->mstate = calloc(1, sizeof *n->mstate);
    if (!n->mstate)
        return errf(eb, ERR_NOMEM, "out of memory");
    int rc;
    if ((rc = dispatcher_register(&n->disp, DDKV_MSG_MEMBER_ADD, "members", members_add, n, eb)) ||
        (rc = dispatcher_register(&n->disp, DDKV_MSG_LEADER_TRANSFER, "members", members_transfer, n, eb)) ||
        (rc = dispatcher_register(&n->disp, DDKV_MSG_MEMBER_REMOVE, "members", members_remove, n, eb)))
        return rc;
    return ERR_OK;
}

/* The leader this member now follows (or is), logged by name. */
static void members_on_leader(struct node *n, uint64_t leader, uint64_t term)
{
    const struct member *m = cluster_member(n, leader);
    log_info("leader is now %s (term %llu)", m ? m->name : "an unknown member", (unsigned long long)term);
}

/* Only configuration entries concern the address book. */
static void members_on_stage(struct node *n, const struct raft_entry *e, struct store_batch *b)
{
    if (e->type == RAFT_ENTRY_CONF)
        cluster_on_applied(n, e, b);
}

static void members_on_appended(struct node *n, const struct raft_entry *e)
{
    if (e->type == RAFT_ENTRY_CONF)
        cluster_on_appended(n, e);
}

static void members_free(struct node *n)
{
    free(n->mstate);
    n->mstate = NULL;
}

const struct module mod_members = {
    .name = "members",
    .init = members_init,
    .on_stage = members_on_stage,
    .on_appended = members_on_appended,
    .on_tick = members_tick,
    .on_leader = members_on_leader,
    .free = members_free,
};
