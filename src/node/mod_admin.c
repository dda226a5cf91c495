/* The admin module: PING and STATUS, and the node status shared with ops HTTP. */
#include <jansson.h>
#include <stdlib.h>

#include "node/server.h"
#include "util/clock.h"

/* What the Raft core says about leadership, for PONG, STATUS and /health. */
struct admin_view {
    const char *role;
    uint64_t term, commit;
    const char *leader; /* name, or NULL when no leader is known */
};

static struct admin_view admin_view(struct node *n)
{
    struct raft_status st;
    raft_status(n->raft, &st);
    /* One voter until the peer transport lands: the leader, if any, is us. */
    return (struct admin_view){.role = raft_role_name(st.role), .term = st.term, .commit = st.commit,
                               .leader = st.leader ? n->cfg.name : NULL};
}

bool node_has_leader(struct node *n)
{
    return admin_view(n).leader != NULL;
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
    mw_map(w, 14);
    mw_str(w, "name"); mw_str(w, n->cfg.name);
    mw_str(w, "role"); mw_str(w, v.role);
    mw_str(w, "term"); mw_u64(w, v.term);
    mw_str(w, "leader"); mw_str(w, v.leader);
    mw_str(w, "client_addr"); mw_str(w, n->client_addr);
    mw_str(w, "commit"); mw_u64(w, v.commit);
    mw_str(w, "applied"); mw_u64(w, n->sm.applied_index);
    mw_str(w, "lamport"); mw_u64(w, n->clock.now);
    mw_str(w, "revision"); mw_u64(w, n->sm.revision);
    mw_str(w, "keys"); mw_u64(w, n->sm.keys);
    mw_str(w, "connections"); mw_u64(w, n->nconns);
    mw_str(w, "uptime_ms"); mw_u64(w, clock_wall_ms() - n->started_ms);
    mw_str(w, "version"); mw_str(w, DDKV_VERSION_STRING);
    mw_str(w, "members");
    mw_array(w, 1);
    mw_map(w, 5);
    mw_str(w, "name"); mw_str(w, n->cfg.name);
    mw_str(w, "client_addr"); mw_str(w, n->client_addr);
    mw_str(w, "peer_addr"); mw_nil(w);
    mw_str(w, "role"); mw_str(w, v.role);
    mw_str(w, "healthy"); mw_bool(w, v.leader != NULL && !n->storage_failed);
}

char *node_status_json(struct node *n)
{
    struct admin_view v = admin_view(n);
    json_t *member = json_pack("{s:s, s:s, s:n, s:s, s:b}", "name", n->cfg.name, "client_addr",
                               n->client_addr, "peer_addr", "role", v.role, "healthy",
                               v.leader != NULL && !n->storage_failed);
    json_t *o = json_pack("{s:s, s:s, s:I, s:s?, s:s, s:I, s:I, s:I, s:I, s:I, s:I, s:s, s:[o]}",
                          "name", n->cfg.name, "role", v.role, "term", (json_int_t)v.term, "leader",
                          v.leader, "client_addr", n->client_addr, "commit",
                          (json_int_t)v.commit, "applied", (json_int_t)n->sm.applied_index,
                          "lamport", (json_int_t)n->clock.now, "revision", (json_int_t)n->sm.revision,
                          "keys", (json_int_t)n->sm.keys, "connections", (json_int_t)n->nconns,
                          "version", DDKV_VERSION_STRING, "members", member);
    char *s = o ? json_dumps(o, JSON_COMPACT) : NULL;
    json_decref(o);
    return s;
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
        (rc = dispatcher_register(&n->disp, DDKV_MSG_STATUS, "admin", admin_status, n, eb)))
        return rc;
    return ERR_OK;
}

const struct module mod_admin = {"admin", admin_init};
