/* Cluster identity and the peer side of a node: member ids and addresses, the
 * cluster id, the peer transport (the modules that use them: mod/members.c,
 * mod/raft_peer.c).
 *
 * Ids. A member's Raft id is a 64-bit FNV-1a hash of its name, so every member
 * computes the same id for "n2" from the same --cluster flag, with nothing to
 * exchange. The founding node writes its own id and the cluster id into the
 * raft_state column family; a restart under another --name is refused (the
 * data dir belongs to the member it was created for).
 *
 * Cluster id. A hash of the founding --cluster list (sorted), of the
 * --cluster-token (so two clusters founded apart with the same names and
 * addresses differ: deploy/cluster.sh passes a random one) and, for a cluster
 * restored from a backup, of the backup's checksum (the "seed", stored in the
 * data dir), persisted at bootstrap. A node from another cluster is refused at
 * the peer hello, before any Raft message is read; a founding member whose
 * flags derive another id than its data dir holds refuses to start
 * (cluster_check_identity). Joined members learn the id from the first hello. */
#include <stdlib.h>
#include <string.h>


#include "kv/cmd.h"
#include "kv/store.h"
#include "node/peer.h"
#include "node/node_int.h"
#include "node/node_io.h"
#include "proto/version.h"
#include "util/buf.h"
#include "util/clock.h"
#include "util/log.h"
#include "util/net.h"

static const char RS_SELF_ID[] = "self_id";
static const char RS_INCARNATION[] = "incarnation"; /* random at the data dir's creation */
static const char RS_CLUSTER_ID[] = "cluster_id";
static const char RS_JOINING[] = "joining"; /* started with --join: never bootstrap */
static const char RS_CLUSTER_SEED[] = "cluster_seed"; /* restored from a backup: its checksum's first 8 bytes */
static const char RS_TOKEN_FP[] = "cluster_token_fp";  /* a hash of the founding --cluster-token (0: none) */

#define FNV_BASIS UINT64_C(0xcbf29ce484222325)

/* The cluster part's state: nothing outside cluster.c reads or writes it but
 * through cluster.h. */
struct cluster {
    struct member members[RAFT_MAX_NODES * 2]; /* the configuration's, plus addresses learned */
    size_t nmembers;
    uint64_t incarnation;         /* this data dir's, random at creation */
    bool founding;                /* bootstrapped this run: the log starts with our --cluster */
    struct peer_transport *peers; /* NULL for a one-node cluster without --peer-addr */
    char peer_addr[64];           /* as bound */
    char client_addr[64];         /* this member's client port as bound ("" before it listens) */
};

struct cluster *cluster_new(void)
{
    return calloc(1, sizeof(struct cluster));
}

void cluster_free(struct node *n)
{
    free(n->cl);
    n->cl = NULL;
}

struct member *cluster_members(struct node *n, size_t *count)
{
    *count = n->cl->nmembers;
    return n->cl->members;
}

uint64_t cluster_incarnation(const struct node *n)
{
    return n->cl->incarnation;
}

bool cluster_founding(const struct node *n)
{
    return n->cl->founding;
}

const char *cluster_peer_addr(const struct node *n)
{
    return n->cl->peer_addr;
}

struct peer_transport *cluster_peers(const struct node *n)
{
    return n->cl->peers;
}

void cluster_set_client_addr(struct node *n, const char *addr)
{
    snprintf(n->cl->client_addr, sizeof n->cl->client_addr, "%s", addr);
}

/* 64-bit FNV-1a over n bytes, continuing from h. */
static uint64_t fnv1a(uint64_t h, const void *p, size_t n)
{
    for (const unsigned char *b = p; n--; b++) {
        h ^= *b;
        h *= UINT64_C(0x100000001b3);
    }
    return h;
}

/* "NAME=HOST:PORT" (len bytes, no NUL inside) into name and addr (64 bytes
 * each); false if it is not that shape or a part is too long. */
static bool split_name_addr(const void *p, size_t len, char name[64], char addr[64])
{
    const char *s = p, *eq = len ? memchr(s, '=', len) : NULL;
    if (!eq || memchr(s, 0, len))
        return false;
    size_t nl = (size_t)(eq - s), al = len - nl - 1;
    if (nl >= 64 || al >= 64)
        return false;
    memcpy(name, s, nl);
    name[nl] = 0;
    memcpy(addr, eq + 1, al);
    addr[al] = 0;
    return true;
}

uint64_t cluster_node_id(const char *name)
{
    uint64_t h = fnv1a(FNV_BASIS, name, strlen(name));
    /* Ids travel as Raft numbers, which must stay below 2^62; 0 means none. */
    h &= (UINT64_C(1) << 62) - 1;
    return h ? h : 1;
}

static int member_cmp(const void *a, const void *b)
{
    return strcmp(((const struct member *)a)->name, ((const struct member *)b)->name);
}

int cluster_parse(const char *spec, struct member *out, size_t *n, struct errbuf *eb)
{
    *n = 0;
    const char *p = spec;
    while (*p) {
        const char *end = strchr(p, ',');
        size_t len = end ? (size_t)(end - p) : strlen(p);
        const char *eq = memchr(p, '=', len);
        if (!eq || eq == p || eq == p + len - 1)
            return errf(eb, ERR_BAD_INPUT, "--cluster entry '%.*s' is not NAME=HOST:PORT", (int)len, p);
        if (*n == RAFT_MAX_NODES)
            return errf(eb, ERR_BAD_INPUT, "--cluster names more than %d members", RAFT_MAX_NODES);
        struct member *m = &out[*n];
        memset(m, 0, sizeof *m);
        size_t nl = (size_t)(eq - p), al = len - nl - 1;
        if (nl >= sizeof m->name || al >= sizeof m->peer_addr)
            return errf(eb, ERR_BAD_INPUT, "--cluster entry '%.*s' is too long", (int)len, p);
        memcpy(m->name, p, nl);
        memcpy(m->peer_addr, eq + 1, al);
        struct sockaddr_storage ss;
        socklen_t sl;
        if (net_parse_addr(m->peer_addr, &ss, &sl) != ERR_OK)
            return errf(eb, ERR_BAD_INPUT, "--cluster: bad address '%s' for %s (want host:port)",
                        m->peer_addr, m->name);
        m->id = cluster_node_id(m->name);
        for (size_t i = 0; i < *n; i++) {
            if (out[i].id == m->id)
                return errf(eb, ERR_BAD_INPUT, "--cluster names %s twice (or two names share an id)",
                            m->name);
            if (strcmp(out[i].peer_addr, m->peer_addr) == 0)
                return errf(eb, ERR_BAD_INPUT, "--cluster gives %s and %s the same address %s",
                            out[i].name, m->name, m->peer_addr);
        }
        (*n)++;
        if (!end)
            break;
        p = end + 1;
    }
    if (*n == 0)
        return errf(eb, ERR_BAD_INPUT, "--cluster is empty");
    qsort(out, *n, sizeof *out, member_cmp);
    return ERR_OK;
}

uint64_t cluster_derive_id(const struct member *m, size_t n, const char *token, uint64_t seed)
{
    uint64_t h = FNV_BASIS;
    for (size_t i = 0; i < n; i++) {
        h = fnv1a(h, m[i].name, strlen(m[i].name));
        h = fnv1a(h, "=", 1);
        h = fnv1a(h, m[i].peer_addr, strlen(m[i].peer_addr));
        h = fnv1a(h, ",", 1);
    }
    /* Without a token or a seed the id is what it was before either existed,
     * so data dirs made then still start. */
    if (token && *token) {
        h = fnv1a(h, "token:", 6);
        h = fnv1a(h, token, strlen(token));
    }
    if (seed) {
        uint8_t be[8];
        put_be64(be, seed);
        h = fnv1a(h, "seed:", 5);
        h = fnv1a(h, be, sizeof be);
    }
    return h ? h : 1;
}

uint64_t cluster_token_fp(const char *token)
{
    if (!token || !*token)
        return 0;
    uint64_t h = fnv1a(FNV_BASIS, "ddkv cluster token:", 19);
    h = fnv1a(h, token, strlen(token));
    return h ? h : 1;
}

struct member *cluster_member(struct node *n, uint64_t id)
{
    for (size_t i = 0; i < n->cl->nmembers; i++)
        if (n->cl->members[i].id == id)
            return &n->cl->members[i];
    return NULL;
}

const char *cluster_leader_client_addr(struct node *n)
{
    if (!n->raft)
        return NULL;
    struct raft_status st;
    raft_status(n->raft, &st);
    if (!st.leader)
        return NULL;
    if (st.leader == n->self_id)
        return n->cl->client_addr;
    const struct member *m = cluster_member(n, st.leader);
    return m && m->client_addr[0] ? m->client_addr : NULL;
}

static int rs_get_u64(struct node *n, const char *key, uint64_t *v, struct errbuf *eb)
{
    struct store_val val;
    int rc = store_get(n->st, STORE_CF_RAFT_STATE, key, strlen(key), NULL, &val, eb);
    if (rc)
        return rc;
    if (val.n != 8) {
        store_val_release(&val);
        return errf(eb, ERR_CORRUPT, "raft_state %s has %zu bytes, want 8", key, val.n);
    }
    *v = get_be64(val.p);
    store_val_release(&val);
    return ERR_OK;
}

static int rs_put_u64(struct node *n, const char *key, uint64_t v, struct errbuf *eb)
{
    struct store_batch *b = store_batch_new(n->st);
    uint8_t be[8];
    put_be64(be, v);
    store_batch_put(b, STORE_CF_RAFT_STATE, key, strlen(key), be, 8);
    int rc = store_write(n->st, b, true, eb);
    store_batch_free(b);
    return rc;
}

/* --- the member table --- */

/* Add or update a member's name and peer address; a new one becomes a peer
 * target at once (and is dialled, so it learns our hello). */
static struct member *cluster_learn(struct node *n, uint64_t id, const char *name, const char *peer_addr)
{
    struct member *m = cluster_member(n, id);
    if (!m) {
        if (n->cl->nmembers == RAFT_MAX_NODES * 2) {
            log_warn("member table full; ignoring %s", name);
            return NULL;
        }
        m = &n->cl->members[n->cl->nmembers++];
        memset(m, 0, sizeof *m);
        m->id = id;
    }
    if (name && name[0])
        snprintf(m->name, sizeof m->name, "%s", name);
    if (peer_addr && peer_addr[0] && strcmp(m->peer_addr, peer_addr) != 0) {
        snprintf(m->peer_addr, sizeof m->peer_addr, "%s", peer_addr);
        if (n->cl->peers && id != n->self_id) {
            peer_remove(n->cl->peers, id);
            if (peer_add(n->cl->peers, id, m->peer_addr) == ERR_OK)
                peer_dial(n->cl->peers, id);
            else
                log_warn("member %s: cannot use peer address %s", m->name, m->peer_addr);
        }
    }
    if (id == n->self_id)
        snprintf(m->client_addr, sizeof m->client_addr, "%s", n->cl->client_addr);
    return m;
}

static void cluster_forget(struct node *n, uint64_t id)
{
    for (size_t i = 0; i < n->cl->nmembers; i++) {
        if (n->cl->members[i].id != id)
            continue;
        log_info("member %s left the cluster", n->cl->members[i].name);
        n->cl->members[i] = n->cl->members[--n->cl->nmembers];
        if (n->cl->peers)
            peer_remove(n->cl->peers, id);
        return;
    }
}

/* A CONF entry's context is "NAME=HOST:PORT". */
static bool cluster_ctx_parse(const struct raft_entry *e, enum raft_cc_type *type, uint64_t *id,
                              char name[64], char addr[64])
{
    if (e->type != RAFT_ENTRY_CONF || raft_cc_decode(e->data, e->len, type, id) != ERR_OK)
        return false;
    if (!split_name_addr(e->data + RAFT_CC_BYTES, e->len - RAFT_CC_BYTES, name, addr))
        name[0] = addr[0] = 0;
    return true;
}

size_t cluster_ctx_encode(char *out, size_t cap, const char *name, const char *peer_addr)
{
    int k = snprintf(out, cap, "%s=%s", name, peer_addr);
    return k < 0 || (size_t)k >= cap ? 0 : (size_t)k;
}

/* A CONF entry was appended to the log: the member becomes reachable. */
void cluster_on_appended(struct node *n, const struct raft_entry *e)
{
    enum raft_cc_type type;
    uint64_t id;
    char name[64], addr[64];
    if (!cluster_ctx_parse(e, &type, &id, name, addr))
        return;
    /* A change takes effect on append: the new member must be reachable now.
     * A removal waits for its commit (cluster_on_applied): an appended one
     * may still be overwritten, and an address kept too long costs nothing. */
    if ((type == RAFT_CC_ADD_LEARNER || type == RAFT_CC_ADD_VOTER) && name[0])
        cluster_learn(n, id, name, addr);
}

/* A CONF entry applies: the address book in META is updated in the apply batch b. */
void cluster_on_applied(struct node *n, const struct raft_entry *e, struct store_batch *b)
{
    enum raft_cc_type type;
    uint64_t id;
    char name[64], addr[64];
    if (!cluster_ctx_parse(e, &type, &id, name, addr))
        return;
    uint8_t key[10] = {'m', '/'};
    put_be64(key + 2, id);
    if ((type == RAFT_CC_ADD_LEARNER || type == RAFT_CC_ADD_VOTER) && name[0]) {
        /* The address book lives in the state machine (META), a function of
         * the log, so it travels in snapshots and survives restarts. */
        char v[130];
        size_t vl = cluster_ctx_encode(v, sizeof v, name, addr);
        store_batch_put(b, STORE_CF_META, key, sizeof key, v, vl);
        cluster_learn(n, id, name, addr);
    } else if (type == RAFT_CC_REMOVE) {
        store_batch_delete(b, STORE_CF_META, key, sizeof key);
        if (id != n->self_id)
            cluster_forget(n, id);
        else
            log_warn("this member was removed from the cluster: it takes no part until it is "
                     "added again (ddkv members add %s %s) or stopped", n->cfg.name, n->cl->peer_addr);
    }
}

/* Load the address book from the state machine. */
static int cluster_load_book(struct node *n, struct errbuf *eb)
{
    static const uint8_t upper[] = {'m', '/' + 1};
    struct store_iter *it = store_iter_new(n->st, STORE_CF_META, upper, sizeof upper);
    store_iter_seek(it, "m/", 2);
    for (; store_iter_valid(it); store_iter_next(it)) {
        size_t kn, vn;
        const uint8_t *k = store_iter_key(it, &kn);
        const uint8_t *v = store_iter_value(it, &vn);
        char name[64], addr[64];
        if (kn == 10 && split_name_addr(v, vn, name, addr))
            cluster_learn(n, get_be64(k + 2), name, addr);
    }
    int rc = store_iter_status(it, eb);
    store_iter_free(it);
    return rc;
}

int cluster_reload(struct node *n, struct errbuf *eb)
{
    return cluster_load_book(n, eb);
}

/* The peer transport hands over a Raft message: route it by type. */
static void cluster_deliver(void *ud, const struct raft_msg *m)
{
    struct node *n = ud;
    const struct dispatch_entry *e = dispatcher_lookup(&n->disp, m->type);
    if (!e || !e->peer_fn) {
        log_warn("peer message type %u from %llx has no handler; dropped", m->type,
                 (unsigned long long)m->from);
        return;
    }
    e->peer_fn(e->ctx, m);
}

/* The amnesia guard: a member whose data dir is not the one the cluster
 * recorded (wiped, replaced, restored from elsewhere) may have forgotten its
 * term, its vote and entries it acknowledged; letting it speak Raft could
 * make it vote twice in a term. It is refused until removed and added again. */
bool cluster_incarnation_ok(struct node *n, uint64_t id, const char *name, uint64_t inc)
{
    uint64_t rec = 0;
    struct errbuf eb;
    if (!inc || !n->cluster_id || sm_member_incarnation(&n->sm, n->cluster_id, id, &rec, &eb) != ERR_OK || !rec ||
        rec == inc)
        return true;
    struct member *m = cluster_member(n, id);
    uint64_t now = clock_mono_ms();
    if (!m || !m->inc_logged_ms || now - m->inc_logged_ms >= 10000) {
        if (m)
            m->inc_logged_ms = now;
        log_error("refusing member %s (node %llx): its data dir is not the one the cluster knows (incarnation "
                  "%016llx, recorded %016llx); it may have lost its term, vote and log, so it must not vote. If its "
                  "data is gone for good: 'ddkv members remove %s', start it on an empty --data-dir with --join, "
                  "then 'ddkv members add %s %s'",
                  name && *name ? name : "?", (unsigned long long)id, (unsigned long long)inc,
                  (unsigned long long)rec, name && *name ? name : "NAME", name && *name ? name : "NAME",
                  m && m->peer_addr[0] ? m->peer_addr : "PEER_ADDR");
    }
    return false;
}

/* At most one line a member per 10 s about its release version. */
static bool cluster_ver_log_due(struct member *m)
{
    uint64_t now = clock_mono_ms();
    if (m && m->ver_logged_ms && now - m->ver_logged_ms < 10000)
        return false;
    if (m)
        m->ver_logged_ms = now;
    return true;
}

/* A member older than the cluster version cannot read what the log may now
 * hold: it is refused (and sent no entries, cluster_may_send). */
static bool cluster_version_ok(struct node *n, uint64_t id, const char *name, uint64_t version)
{
    if (version >= n->sm.cluster_version)
        return true;
    if (cluster_ver_log_due(cluster_member(n, id))) {
        char v[32], cv[32];
        log_error("refusing member %s (node %llx): it runs ddkv %s, older than the cluster version %s, and "
                  "cannot read this cluster's log; upgrade it to %s or later (README, Upgrading)",
                  name && *name ? name : "?", (unsigned long long)id, version_text(version, v, sizeof v),
                  version_text(n->sm.cluster_version, cv, sizeof cv), cv);
    }
    return false;
}

static bool cluster_hello(void *ud, const struct peer_hello *h)
{
    struct node *n = ud;
    if (!cluster_incarnation_ok(n, h->from, h->name, h->incarnation) ||
        !cluster_version_ok(n, h->from, h->name, h->version))
        return false;
    if (n->cluster_id == 0) {
        struct errbuf eb;
        n->cluster_id = h->cluster_id;
        if (rs_put_u64(n, RS_CLUSTER_ID, n->cluster_id, &eb) != ERR_OK)
            log_error("cannot record the cluster id: %s", eb.msg);
    }
    struct member *m = cluster_member(n, h->from);
    if (!m) {
        if (!h->name[0] || !h->peer_addr[0]) {
            log_info("hello from node %llx without a name and address", (unsigned long long)h->from);
            return true;
        }
        m = cluster_learn(n, h->from, h->name, h->peer_addr);
        if (!m)
            return true;
        log_info("learned member %s at %s from its hello", m->name, m->peer_addr);
    }
    if (h->client_addr[0] && strcmp(m->client_addr, h->client_addr) != 0) {
        snprintf(m->client_addr, sizeof m->client_addr, "%s", h->client_addr);
        log_info("member %s serves clients on %s", m->name, m->client_addr);
    }
    /* Answer with our own hello (a no-op when our connection to it is up):
     * a member that restarted learns where every other member's clients
     * connect, not only the leader's. */
    if (n->cl->peers)
        peer_dial(n->cl->peers, h->from);
    return true;
}

void cluster_stage_identity(struct store_batch *b, uint64_t self_id, uint64_t cluster_id, uint64_t seed,
                            uint64_t token_fp)
{
    const char *const keys[4] = {RS_SELF_ID, RS_CLUSTER_ID, RS_CLUSTER_SEED, RS_TOKEN_FP};
    const uint64_t vals[4] = {self_id, cluster_id, seed, token_fp};
    for (int i = 0; i < 4; i++) {
        uint8_t be[8];
        put_be64(be, vals[i]);
        store_batch_put(b, STORE_CF_RAFT_STATE, keys[i], strlen(keys[i]), be, 8);
    }
}

int cluster_replace_book(struct store *st, const struct member *m, size_t nm, struct errbuf *eb)
{
    static const uint8_t upper[] = {'m', '/' + 1};
    struct store_batch *b = store_batch_new(st);
    struct store_iter *it = store_iter_new(st, STORE_CF_META, upper, sizeof upper);
    for (store_iter_seek(it, "m/", 2); store_iter_valid(it); store_iter_next(it)) {
        size_t kn;
        const uint8_t *k = store_iter_key(it, &kn);
        store_batch_delete(b, STORE_CF_META, k, kn);
    }
    int rc = store_iter_status(it, eb);
    store_iter_free(it);
    for (size_t i = 0; !rc && i < nm; i++) {
        uint8_t key[10] = {'m', '/'};
        put_be64(key + 2, m[i].id);
        char v[130];
        size_t vl = cluster_ctx_encode(v, sizeof v, m[i].name, m[i].peer_addr);
        store_batch_put(b, STORE_CF_META, key, sizeof key, v, vl);
    }
    if (!rc)
        rc = store_write(st, b, true, eb);
    store_batch_free(b);
    return rc;
}

/* rs_get_u64, with 0 for a key that is not there. */
static int rs_get_u64_or_0(struct node *n, const char *key, uint64_t *v, struct errbuf *eb)
{
    int rc = rs_get_u64(n, key, v, eb);
    if (rc == ERR_NOT_FOUND) {
        *v = 0;
        return ERR_OK;
    }
    return rc;
}

/* Does the address book (the membership the log made) name every member of
 * list at the same address? Then a --cluster that no longer matches the
 * founding one describes this cluster as it is now (members were added or
 * removed since), not another cluster. */
static bool cluster_book_agrees(struct node *n, const struct member *list, size_t nm)
{
    for (size_t i = 0; i < nm; i++) {
        const struct member *m = cluster_member(n, list[i].id);
        if (!m || strcmp(m->peer_addr, list[i].peer_addr) != 0)
            return false;
    }
    return true;
}

/* A founding member's restart: the data dir must belong to the cluster the
 * flags describe. The id its --cluster and --cluster-token derive (with the
 * seed a restore left) must be the stored one, or --cluster must be this
 * cluster's current membership with the same token. A joined member has no
 * derivation: its id came from the cluster's first hello. */
static int cluster_check_identity(struct node *n, struct errbuf *eb)
{
    if (!n->cl->founding || n->cluster_id == 0)
        return ERR_OK;
    uint64_t seed, fp;
    int rc;
    if ((rc = rs_get_u64_or_0(n, RS_CLUSTER_SEED, &seed, eb)) || (rc = rs_get_u64_or_0(n, RS_TOKEN_FP, &fp, eb)))
        return rc;
    bool token_ok = fp == cluster_token_fp(n->cfg.cluster_token);
    if (!n->cfg.cluster) {
        if (!n->cfg.cluster_token || !*n->cfg.cluster_token || token_ok)
            return ERR_OK;
        return errf(eb, ERR_BAD_INPUT,
                    "data dir %s belongs to cluster %016llx, which was founded with another --cluster-token: "
                    "it holds another cluster's data (use the flags of its own cluster, or a fresh --data-dir)",
                    n->cfg.data_dir, (unsigned long long)n->cluster_id);
    }
    struct member tmp[RAFT_MAX_NODES];
    size_t nm = 0;
    if ((rc = cluster_parse(n->cfg.cluster, tmp, &nm, eb)))
        return rc;
    uint64_t derived = cluster_derive_id(tmp, nm, n->cfg.cluster_token, seed);
    if (derived == n->cluster_id)
        return ERR_OK;
    if (token_ok && cluster_book_agrees(n, tmp, nm)) {
        log_info("--cluster is not the founding list of cluster %016llx but matches its current members; "
                 "membership comes from the log", (unsigned long long)n->cluster_id);
        return ERR_OK;
    }
    return errf(eb, ERR_BAD_INPUT,
                "data dir %s belongs to cluster %016llx, but --cluster and --cluster-token describe cluster "
                "%016llx: it holds another cluster's data (start it with the flags of its own cluster, "
                "or use a fresh --data-dir)",
                n->cfg.data_dir, (unsigned long long)n->cluster_id, (unsigned long long)derived);
}

static int cluster_load_identity(struct node *n, struct errbuf *eb);

/* This data dir's incarnation: made once, at random, and stored (synced)
 * before the node serves anything. */
static int cluster_load_incarnation(struct node *n, struct errbuf *eb)
{
    int rc = rs_get_u64(n, RS_INCARNATION, &n->cl->incarnation, eb);
    if (rc != ERR_NOT_FOUND)
        return rc;
    do {
        if (n->io->random(n, &n->cl->incarnation) != ERR_OK)
            return errf(eb, ERR_IO, "no random bytes for this data dir's incarnation");
    } while (n->cl->incarnation == 0);
    return rs_put_u64(n, RS_INCARNATION, n->cl->incarnation, eb);
}

int cluster_load(struct node *n, struct errbuf *eb)
{
    int rc = cluster_load_identity(n, eb);
    return rc ? rc : cluster_load_incarnation(n, eb);
}

static int cluster_load_identity(struct node *n, struct errbuf *eb)
{
    n->self_id = cluster_node_id(n->cfg.name);
    n->cl->nmembers = 0;
    uint64_t self = 0;
    int rc = rs_get_u64(n, RS_SELF_ID, &self, eb);
    if (rc && rc != ERR_NOT_FOUND)
        return rc;
    bool fresh = rc == ERR_NOT_FOUND;
    if (!fresh && self != n->self_id)
        return errf(eb, ERR_BAD_INPUT,
                    "data dir %s belongs to another member (id %llx), not to --name %s (id %llx)",
                    n->cfg.data_dir, (unsigned long long)self, n->cfg.name,
                    (unsigned long long)n->self_id);
    if (fresh && n->cfg.join) {
        /* Joining: no members, no cluster id until the leader's hello. */
        n->cl->founding = false;
        n->cluster_id = 0;
        cluster_learn(n, n->self_id, n->cfg.name, n->cfg.peer_addr);
        if ((rc = rs_put_u64(n, RS_JOINING, 1, eb)))
            return rc;
        return rs_put_u64(n, RS_SELF_ID, n->self_id, eb);
    }
    if (fresh) {
        struct member tmp[RAFT_MAX_NODES];
        size_t nm = 0;
        if (n->cfg.cluster) {
            if ((rc = cluster_parse(n->cfg.cluster, tmp, &nm, eb)))
                return rc;
        } else {
            memset(&tmp[0], 0, sizeof tmp[0]);
            snprintf(tmp[0].name, sizeof tmp[0].name, "%s", n->cfg.name);
            tmp[0].id = n->self_id;
            if (n->cfg.peer_addr)
                snprintf(tmp[0].peer_addr, sizeof tmp[0].peer_addr, "%s", n->cfg.peer_addr);
            nm = 1;
        }
        bool found = false;
        for (size_t i = 0; i < nm; i++)
            found |= tmp[i].id == n->self_id;
        if (!found)
            return errf(eb, ERR_BAD_INPUT, "--name %s is not one of the --cluster members", n->cfg.name);
        for (size_t i = 0; i < nm; i++)
            cluster_learn(n, tmp[i].id, tmp[i].name, tmp[i].peer_addr);
        n->cluster_id = cluster_derive_id(tmp, nm, n->cfg.cluster_token, 0);
        n->cl->founding = true;
        struct store_batch *b = store_batch_new(n->st);
        cluster_stage_identity(b, n->self_id, n->cluster_id, 0, cluster_token_fp(n->cfg.cluster_token));
        rc = store_write(n->st, b, true, eb);
        store_batch_free(b);
        return rc;
    }
    /* A restart: who is in the cluster is what the log says; --cluster was
     * only for the founding. A founder whose log is still empty (it crashed
     * before bootstrapping) founds again; a joiner never does. */
    uint64_t joining = 0;
    rc = rs_get_u64(n, RS_JOINING, &joining, eb);
    if (rc && rc != ERR_NOT_FOUND)
        return rc;
    n->cl->founding = !joining;
    rc = rs_get_u64(n, RS_CLUSTER_ID, &n->cluster_id, eb);
    if (rc == ERR_NOT_FOUND)
        n->cluster_id = 0; /* joined, but never heard from the cluster */
    else if (rc)
        return rc;
    if ((rc = cluster_load_book(n, eb)) || (rc = cluster_check_identity(n, eb)))
        return rc;
    if (!cluster_member(n, n->self_id))
        cluster_learn(n, n->self_id, n->cfg.name, n->cfg.peer_addr);
    if (n->cfg.cluster) {
        /* Still useful before the log is replayed: the founding addresses. */
        struct member tmp[RAFT_MAX_NODES];
        size_t nm = 0;
        if (cluster_parse(n->cfg.cluster, tmp, &nm, eb) == ERR_OK)
            for (size_t i = 0; i < nm; i++)
                if (!cluster_member(n, tmp[i].id))
                    cluster_learn(n, tmp[i].id, tmp[i].name, tmp[i].peer_addr);
    }
    return ERR_OK;
}

int cluster_start(struct node *n, void (*leader_refused)(void *node, uint64_t id), struct errbuf *eb)
{
    struct member *self = cluster_member(n, n->self_id);
    const char *advertised = n->cfg.peer_addr ? n->cfg.peer_addr : self->peer_addr;
    const char *listen = n->cfg.listen_peer_addr ? n->cfg.listen_peer_addr : advertised;
    if (n->cl->nmembers == 1 && !listen[0])
        return ERR_OK; /* one node, no peer port */
    /* A plain peer port beyond loopback without a token: anyone who reaches
     * it could pose as a member. Refused before anything is bound, unless the
     * operator accepts that (--insecure-peers). */
    struct sockaddr_storage ss;
    socklen_t sslen;
    bool token = n->cfg.cluster_token && *n->cfg.cluster_token;
    bool beyond = net_parse_addr(listen, &ss, &sslen) == ERR_OK && !net_is_loopback((struct sockaddr *)&ss);
    if (beyond && !n->tls_peer && !token && !n->cfg.insecure_peers)
        return errf(eb, ERR_BAD_INPUT,
                    "peer port %s is reachable beyond loopback without TLS or a --cluster-token (anyone "
                    "reaching it could pose as a member): give every member the same token, or use TLS, "
                    "or accept the risk with --insecure-peers",
                    listen);
    struct peer_config pc;
    peer_config_defaults(&pc);
    pc.self_id = n->self_id;
    pc.cluster_id = n->cluster_id;
    pc.max_frame_bytes = n->cfg.max_frame_bytes + (64u << 10);
    snprintf(pc.self_name, sizeof pc.self_name, "%s", n->cfg.name);
    snprintf(pc.self_client_addr, sizeof pc.self_client_addr, "%s", n->cl->client_addr);
    pc.tls = n->tls_peer;
    pc.id_of_name = cluster_node_id;
    pc.token = n->cfg.cluster_token;
    pc.self_incarnation = n->cl->incarnation;
    int rc = peer_transport_new(n->base, &pc, &n->clock, cluster_deliver, n, &n->cl->peers, eb);
    if (rc)
        return rc;
    peer_set_hello_cb(n->cl->peers, cluster_hello);
    peer_set_refused_cb(n->cl->peers, leader_refused);
    char bound[64];
    if ((rc = peer_listen(n->cl->peers, listen, bound, sizeof bound, eb)))
        return rc;
    if (beyond && !n->tls_peer && !token)
        log_warn("peer port %s is reachable beyond loopback without TLS or a cluster token "
                 "(--insecure-peers): anyone who reaches it can speak Raft to this node",
                 bound);
    else if (beyond && !n->tls_peer)
        log_warn("peer port %s is reachable beyond loopback without TLS: members prove the cluster token "
                 "at each connection, but the traffic itself is neither encrypted nor authenticated "
                 "(see --tls-cert, --tls-key, --tls-ca)",
                 bound);
    /* What peers dial: the bound address (with the port the kernel picked),
     * unless the node is reached elsewhere (--listen-peer-addr). */
    snprintf(n->cl->peer_addr, sizeof n->cl->peer_addr, "%s", n->cfg.listen_peer_addr ? advertised : bound);
    peer_set_self_peer_addr(n->cl->peers, n->cl->peer_addr);
    snprintf(self->peer_addr, sizeof self->peer_addr, "%s", n->cl->peer_addr);
    for (size_t i = 0; i < n->cl->nmembers; i++) {
        struct member *m = &n->cl->members[i];
        if (m->id == n->self_id || !m->peer_addr[0])
            continue;
        if ((rc = peer_add(n->cl->peers, m->id, m->peer_addr)) != ERR_OK)
            return errf(eb, rc, "cannot add peer %s at %s", m->name, m->peer_addr);
        /* Dial at once: our hello tells every member where our clients
         * connect, so any of them can name us in NOT_LEADER. */
        peer_dial(n->cl->peers, m->id);
    }
    log_info("peer listening on %s, cluster id %016llx, %zu members known", n->cl->peer_addr,
             (unsigned long long)n->cluster_id, n->cl->nmembers);
    return ERR_OK;
}

void cluster_stop(struct node *n)
{
    peer_transport_free(n->cl->peers);
    n->cl->peers = NULL;
}

/* Every tick on the leader: promote a learner that has caught up. */
bool cluster_may_send(struct node *n, const struct raft_msg *m)
{
    uint64_t need = 0;
    if (m->type == RAFT_MSG_SNAP) {
        /* An image holds the state machine as of the cluster version. */
        need = n->sm.cluster_version > DDKV_VERSION_0_1_0 ? n->sm.cluster_version : 0;
    } else if (m->type == RAFT_MSG_APP) {
        for (uint32_t i = 0; i < m->n_entries; i++) {
            const struct raft_entry *e = &m->entries[i];
            /* A kind 0.1 has no op for, or a write in a format-3 envelope. */
            if (e->type == RAFT_ENTRY_NORMAL && e->len >= 2 &&
                (e->data[1] >= SM_OP_CLUSTER_VERSION || e->data[0] == CMD_FORMAT_AUTH_REV)) {
                need = DDKV_VERSION_0_2_0;
                break;
            }
        }
    }
    if (!need || !n->cl->peers)
        return true;
    uint64_t have = peer_version_of(n->cl->peers, m->to);
    if (have >= need)
        return true;
    struct member *mb = cluster_member(n, m->to);
    if (cluster_ver_log_due(mb)) {
        char v[32], w[32];
        log_warn("holding back %s from member %s: it %s%s and what it would get needs %s", raft_msg_type_name(m->type),
                 mb ? mb->name : "?", have ? "runs " : "has not said which version it runs",
                 have ? version_text(have, v, sizeof v) : "", version_text(need, w, sizeof w));
    }
    return false;
}

uint64_t cluster_transfer_target(struct node *n)
{
    /* The first other voter whose connection is up, in configuration order. */
    const struct raft_conf *conf = raft_get_conf(n->raft);
    for (uint32_t i = 0; i < conf->n; i++) {
        uint64_t id = conf->ids[i];
        if (id == n->self_id || ((conf->learners >> i) & 1u))
            continue;
        struct peer_stats ps = {0};
        if (n->cl->peers)
            peer_get_stats(n->cl->peers, id, &ps);
        if (ps.connects > ps.disconnects)
            return id;
    }
    return 0;
}
