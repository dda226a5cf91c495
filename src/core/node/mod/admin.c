/* The admin module: PING and STATUS, and the node status shared with ops HTTP. */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>

#include "node/peer.h"
#include "node/node_int.h"
#include "node/mod/admin.h"
#include "proto/version.h"
#include "util/build_info.h"
#include "util/clock.h"

/* What the Raft core says about leadership, for PONG, STATUS and /health. */
struct admin_view {
    const char *role;
    uint64_t term, commit;
    const char *leader; /* name, or NULL when no leader is known */
    uint64_t leader_id;
};

static struct admin_view admin_view(struct node *n)
{
    struct raft_status st;
    raft_status(n->raft, &st);
    const struct member *m = st.leader ? cluster_member(n, st.leader) : NULL;
    return (struct admin_view){.role = raft_role_name(st.role), .term = st.term, .commit = st.commit,
                               .leader = m ? m->name : NULL, .leader_id = st.leader};
}

bool node_has_leader(struct node *n)
{
    return admin_view(n).leader != NULL;
}

/* This member's own health: it sees a leader, its storage takes writes, and
 * it has applied the cluster's commit index to within the configured lag. */
struct node_health node_health(struct node *n)
{
    struct node_health h;
    uint64_t now = clock_mono_ms();
    uint64_t have = n->sm.applied_index;
    h.lag_entries = lag_entries(replica_lag(n), have);
    h.lag_ms = lag_age_ms(replica_lag(n), have, now);
    h.sees_leader = node_has_leader(n);
    h.healthy = h.sees_leader && !replica_fenced(n) && h.lag_entries <= n->cfg.health_max_lag_entries &&
                h.lag_ms <= n->cfg.health_max_lag_ms;
    return h;
}

/* On a leader, its view of member id: false when it has none. */
bool node_member_lag(struct node *n, uint64_t id, uint64_t *match, uint64_t *entries, uint64_t *ms)
{
    struct raft_progress_info pi;
    if (raft_progress_get(n->raft, id, &pi) != ERR_OK)
        return false;
    *match = pi.match;
    *entries = lag_entries(replica_lag(n), pi.match);
    *ms = lag_age_ms(replica_lag(n), pi.match, clock_mono_ms());
    return true;
}

static void admin_ping(void *ctx, struct conn *c, const struct msg *m)
{
    struct node *n = ctx;
    struct admin_view v = admin_view(n);
    struct msg_writer w;
    conn_reply_begin(c, &w, DDKV_MSG_PONG, m->request_id, 3);
    mw_str(&w, n->cfg.name);
    mw_str(&w, v.leader);
    mw_u64(&w, v.term);
    conn_reply_end(c, &w);
}

void node_pack_status(struct node *n, struct msg_writer *w)
{
    struct admin_view v = admin_view(n);
    const char *leader_addr = cluster_leader_client_addr(n);
    char cluster_id[17];
    snprintf(cluster_id, sizeof cluster_id, "%016llx", (unsigned long long)n->cluster_id);
    struct node_health health = node_health(n);
    char ver[32];
    mw_map(w, 25);
    mw_str(w, "name"); mw_str(w, n->cfg.name);
    mw_str(w, "cluster_id"); mw_str(w, n->cluster_id ? cluster_id : NULL);
    mw_str(w, "role"); mw_str(w, v.role);
    mw_str(w, "term"); mw_u64(w, v.term);
    mw_str(w, "leader"); mw_str(w, v.leader);
    mw_str(w, "leader_client_addr"); mw_str(w, leader_addr);
    mw_str(w, "client_addr"); mw_str(w, conn_server_addr(n));
    mw_str(w, "peer_addr"); mw_str(w, cluster_peer_addr(n)[0] ? cluster_peer_addr(n) : NULL);
    mw_str(w, "commit"); mw_u64(w, v.commit);
    mw_str(w, "applied"); mw_u64(w, n->sm.applied_index);
    mw_str(w, "lamport"); mw_u64(w, n->clock.now);
    mw_str(w, "applied_lamport"); mw_u64(w, n->sm.applied_lamport);
    mw_str(w, "revision"); mw_u64(w, n->sm.revision);
    mw_str(w, "keys"); mw_u64(w, n->sm.keys);
    mw_str(w, "leases"); mw_u64(w, n->sm.leases);
    struct conn_server_stats cs;
    conn_server_stats(n, &cs);
    mw_str(w, "connections"); mw_u64(w, cs.conns);
    mw_str(w, "uptime_ms"); mw_u64(w, clock_wall_ms() - n->started_ms);
    mw_str(w, "version"); mw_str(w, version_string());
    mw_str(w, "git_rev"); mw_str(w, version_git_rev());
    mw_str(w, "cluster_version"); mw_str(w, version_text(n->sm.cluster_version, ver, sizeof ver));
    mw_str(w, "healthy"); mw_bool(w, health.healthy);
    snprintf(cluster_id, sizeof cluster_id, "%016llx", (unsigned long long)cluster_incarnation(n));
    mw_str(w, "incarnation"); mw_str(w, cluster_id);
    mw_str(w, "lag_entries"); mw_u64(w, health.lag_entries);
    mw_str(w, "lag_ms"); mw_u64(w, health.lag_ms);
    /* Every member of the configuration in force, as this node sees it. */
    const struct raft_conf *conf = raft_get_conf(n->raft);
    mw_str(w, "members");
    mw_array(w, conf->n);
    for (uint32_t i = 0; i < conf->n; i++) {
        uint64_t id = conf->ids[i];
        const struct member *m = cluster_member(n, id);
        bool learner = (conf->learners >> i) & 1u;
        bool self = id == n->self_id;
        bool reachable = self;
        if (!self && cluster_peers(n)) {
            struct peer_stats ps;
            peer_get_stats(cluster_peers(n), id, &ps);
            reachable = ps.connects > ps.disconnects;
        }
        /* A leader knows how far each member is behind; others say nil. */
        uint64_t match = 0, lag_n = 0, lag_t = 0;
        bool lag_known = node_member_lag(n, id, &match, &lag_n, &lag_t);
        bool within = !lag_known || (lag_n <= n->cfg.health_max_lag_entries && lag_t <= n->cfg.health_max_lag_ms);
        /* The incarnation of its data dir the cluster recorded (amnesia guard). */
        uint64_t inc = 0;
        struct errbuf ieb;
        char inc_hex[17];
        if (sm_member_incarnation(&n->sm, n->cluster_id, id, &inc, &ieb) != ERR_OK)
            inc = 0;
        snprintf(inc_hex, sizeof inc_hex, "%016llx", (unsigned long long)inc);
        /* Its release: ours, or what its hello said (nil: not connected to us). */
        uint64_t mv = self ? DDKV_RELEASE_VERSION : cluster_peers(n) ? peer_version_of(cluster_peers(n), id) : 0;
        mw_map(w, 11);
        mw_str(w, "name"); mw_str(w, m ? m->name : NULL);
        mw_str(w, "version"); mw_str(w, mv ? version_text(mv, ver, sizeof ver) : NULL);
        mw_str(w, "incarnation"); mw_str(w, inc ? inc_hex : NULL);
        mw_str(w, "client_addr"); mw_str(w, m && m->client_addr[0] ? m->client_addr : NULL);
        mw_str(w, "peer_addr"); mw_str(w, m && m->peer_addr[0] ? m->peer_addr : NULL);
        mw_str(w, "role"); mw_str(w, self ? v.role : id == v.leader_id ? "leader" : learner ? "learner" : "follower");
        mw_str(w, "voter"); mw_bool(w, !learner);
        mw_str(w, "healthy"); mw_bool(w, (self ? health.healthy : reachable) && within);
        mw_str(w, "match");
        if (lag_known) mw_u64(w, match); else mw_nil(w);
        mw_str(w, "lag_entries");
        if (lag_known) mw_u64(w, lag_n); else mw_nil(w);
        mw_str(w, "lag_ms");
        if (lag_known) mw_u64(w, lag_t); else mw_nil(w);
    }
}

/* msgpack -> JSON for the value shapes node_pack_status uses. Strings in a
 * status are node names and addresses: valid UTF-8 (jansson checks). */
static json_t *admin_to_json(const msgpack_object *o)
{
    switch (o->type) {
    case MSGPACK_OBJECT_NIL: return json_null();
    case MSGPACK_OBJECT_BOOLEAN: return json_boolean(o->via.boolean);
    case MSGPACK_OBJECT_POSITIVE_INTEGER: return json_integer((json_int_t)o->via.u64);
    case MSGPACK_OBJECT_STR: return json_stringn(o->via.str.ptr, o->via.str.size);
    case MSGPACK_OBJECT_ARRAY: {
        json_t *a = json_array();
        for (uint32_t i = 0; a && i < o->via.array.size; i++)
            json_array_append_new(a, admin_to_json(&o->via.array.ptr[i]));
        return a;
    }
    case MSGPACK_OBJECT_MAP: {
        json_t *m = json_object();
        for (uint32_t i = 0; m && i < o->via.map.size; i++) {
            const msgpack_object *k = &o->via.map.ptr[i].key;
            ASSERT(k->type == MSGPACK_OBJECT_STR);
            json_object_setn_new(m, k->via.str.ptr, k->via.str.size, admin_to_json(&o->via.map.ptr[i].val));
        }
        return m;
    }
    default: ASSERT(!"status holds only nil, bool, uint, str, array, map"); return NULL;
    }
}

/* The same status as STATUS_RESULT, as JSON: converted from the one packed
 * map, so the two can never disagree. */
char *node_status_json(struct node *n)
{
    struct buf b = BUF_INIT;
    struct msg_writer w;
    msg_writer_raw(&w, &b);
    node_pack_status(n, &w);
    char *s = NULL;
    msgpack_unpacked up;
    msgpack_unpacked_init(&up);
    size_t off = 0;
    if (!w.failed &&
        msgpack_unpack_next(&up, (const char *)b.data, b.len, &off) == MSGPACK_UNPACK_SUCCESS) {
        json_t *o = admin_to_json(&up.data);
        s = o ? json_dumps(o, JSON_COMPACT) : NULL;
        json_decref(o);
    }
    msgpack_unpacked_destroy(&up);
    buf_free(&b);
    return s;
}

/* HELLO [protocol_version, client_version] -> WELCOME [protocol_version,
 * node_version, cluster_version, node_name]. A client that sends none is
 * taken for 0.1.0. */
static void admin_hello(void *ctx, struct conn *c, const struct msg *m)
{
    struct node *n = ctx;
    uint64_t proto, ver;
    if (msg_u64_opt(m, 0, DDKV_PROTOCOL_VERSION, &proto) || msg_u64_opt(m, 1, DDKV_VERSION_0_1_0, &ver) ||
        !version_valid(ver)) {
        conn_reply_error(c, m->request_id, DDKV_WERR_BAD_REQUEST, "HELLO wants [protocol_version, client_version]");
        return;
    }
    if (proto != DDKV_PROTOCOL_VERSION) {
        conn_reply_error(c, m->request_id, DDKV_WERR_BAD_REQUEST,
                         "protocol version %llu is not spoken here (this node speaks %u)", (unsigned long long)proto,
                         DDKV_PROTOCOL_VERSION);
        return;
    }
    c->client_version = ver;
    struct msg_writer w;
    conn_reply_begin(c, &w, DDKV_MSG_WELCOME, m->request_id, 4);
    mw_u64(&w, DDKV_PROTOCOL_VERSION);
    mw_u64(&w, DDKV_RELEASE_VERSION);
    mw_u64(&w, n->sm.cluster_version);
    mw_str(&w, n->cfg.name);
    conn_reply_end(c, &w);
}

static void admin_status(void *ctx, struct conn *c, const struct msg *m)
{
    struct node *n = ctx;
    struct msg_writer w;
    conn_reply_begin(c, &w, DDKV_MSG_STATUS_RESULT, m->request_id, 1);
    node_pack_status(n, &w);
    conn_reply_end(c, &w);
}

static int admin_init(struct node *n, struct errbuf *eb)
{
    int rc;
    if ((rc = dispatcher_register(&n->disp, DDKV_MSG_PING, "admin", admin_ping, n, eb)) ||
        (rc = dispatcher_register(&n->disp, DDKV_MSG_HELLO, "admin", admin_hello, n, eb)) ||
        (rc = dispatcher_register(&n->disp, DDKV_MSG_STATUS, "admin", admin_status, n, eb)))
        return rc;
    return ERR_OK;
}

const struct module mod_admin = {.name = "admin", .init = admin_init};
