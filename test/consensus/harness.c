/* Owns the synchronous test harness for the Raft unit tests (see harness.h). */
#include "harness.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/buf.h"

static uint64_t h_hash(uint64_t h, const void *p, size_t n)
{
    const uint8_t *b = p;
    h ^= UINT64_C(0xcbf29ce484222325);
    for (size_t i = 0; i < n; i++) {
        h ^= b[i];
        h *= UINT64_C(0x100000001b3);
    }
    return h ? h : 1;
}

static void h_die(const char *what)
{
    fprintf(stderr, "harness: %s\n", what);
    abort();
}

struct raft_config h_default_cfg(void)
{
    struct raft_config c;
    raft_config_defaults(&c, 1);
    c.pre_vote = false;
    c.check_quorum = false;
    c.max_inflight = 4;
    c.max_msg_entries = 8;
    c.snap_chunk_bytes = 16;
    c.promote_lag = 2;
    return c;
}

static size_t h_image(struct hnet *h, uint64_t index, uint64_t hash, uint8_t *out)
{
    put_be64(out, index);
    put_be64(out + 8, hash);
    for (size_t k = 0; k < h->snap_pad; k++)
        out[16 + k] = (uint8_t)(hash >> (k % 8 * 8));
    return 16 + h->snap_pad;
}

static int h_snap_read(void *ud, const struct raft_snap_meta *meta, uint64_t offset, uint8_t *buf,
                       size_t cap, size_t *n, bool *last)
{
    struct hnode *nd = ud;
    if (nd->snap.index != meta->index || offset > nd->snap_len)
        return ERR_NOT_FOUND;
    size_t k = nd->snap_len - (size_t)offset;
    if (k > cap)
        k = cap;
    memcpy(buf, nd->snap_data + offset, k);
    *n = k;
    *last = offset + k == nd->snap_len;
    return ERR_OK;
}

static void h_disk_append(struct hnode *nd, const struct raft_entry *e)
{
    if (nd->n_log >= H_LOG_MAX || e->len > sizeof nd->log[0].data)
        h_die("log full");
    struct hent *x = &nd->log[nd->n_log++];
    x->term = e->term;
    x->index = e->index;
    x->type = e->type;
    x->len = e->len;
    if (e->len)
        memcpy(x->data, e->data, e->len);
}

void h_init(struct hnet *h, int n, int voters, int learners, const struct raft_config *tmpl)
{
    memset(h, 0, sizeof *h);
    if (n > H_MAX)
        h_die("too many nodes");
    h->n = n;
    h->tmpl = tmpl ? *tmpl : h_default_cfg();
    h->snap_pad = 40;
    struct raft_conf c = {0};
    for (int i = 1; i <= voters + learners; i++) {
        c.ids[c.n] = (uint64_t)i;
        if (i > voters)
            c.learners |= 1u << c.n;
        c.n++;
    }
    for (int i = 1; i <= n; i++) {
        struct hnode *nd = &h->nd[i];
        nd->id = (uint64_t)i;
        nd->auto_ready = true;
        if (i <= voters + learners) {
            struct raft_bootstrap_buf bb;
            struct raft_persisted p;
            if (raft_bootstrap(&c, &bb, &p) != ERR_OK)
                h_die("bootstrap");
            nd->hs = p.hs;
            for (size_t k = 0; k < p.n_entries; k++)
                h_disk_append(nd, &p.entries[k]);
        }
        h_start(h, i);
    }
}

void h_free(struct hnet *h)
{
    for (int i = 1; i <= h->n; i++)
        raft_destroy(h->nd[i].r);
    free(h->q);
    memset(h, 0, sizeof *h);
}

void h_start(struct hnet *h, int i)
{
    struct hnode *nd = &h->nd[i];
    struct raft_config cfg = h->tmpl;
    cfg.id = nd->id;
    cfg.seed = nd->id * 7919;
    cfg.snap_src.read = h_snap_read;
    cfg.snap_src.ud = nd;
    static struct raft_entry ents[H_LOG_MAX];
    for (size_t k = 0; k < nd->n_log; k++)
        ents[k] = (struct raft_entry){.term = nd->log[k].term, .index = nd->log[k].index,
                                      .type = nd->log[k].type, .data = nd->log[k].data,
                                      .len = nd->log[k].len};
    struct raft_persisted p = {.hs = nd->hs, .snap = nd->snap, .entries = ents,
                               .n_entries = nd->n_log, .applied = nd->applied};
    struct errbuf eb;
    if (raft_create(&cfg, &p, &nd->r, &eb) != ERR_OK) {
        fprintf(stderr, "harness: node %d: %s\n", i, eb.msg);
        abort();
    }
    nd->recv_len = 0;
}

void h_crash(struct hnet *h, int i)
{
    raft_destroy(h->nd[i].r);
    h->nd[i].r = NULL;
}

static void h_queue(struct hnet *h, const struct raft_msg *m)
{
    if (h->nq == h->capq) {
        h->capq = h->capq ? h->capq * 2 : 64;
        h->q = realloc(h->q, h->capq * sizeof *h->q);
        if (!h->q)
            h_die("oom");
    }
    struct hmsg *c = &h->q[h->nq++];
    memset(c, 0, sizeof *c);
    c->m = *m;
    if (m->n_entries > 64 || m->len > sizeof c->data)
        h_die("message too big for the harness");
    for (uint32_t k = 0; k < m->n_entries; k++) {
        c->ents[k] = m->entries[k];
        c->ents[k].blob = NULL;
        if (m->entries[k].len > 64)
            h_die("entry too big for the harness");
        if (m->entries[k].len)
            memcpy(c->edata[k], m->entries[k].data, m->entries[k].len);
        c->ents[k].data = NULL; /* pointed at c->edata[k] on delivery */
    }
    c->m.entries = NULL; /* fixed when delivered (the array may move) */
    c->m.blob = NULL;
    if (m->len)
        memcpy(c->data, m->data, m->len);
    c->m.data = NULL;
}

void h_ready(struct hnet *h, int i)
{
    struct hnode *nd = &h->nd[i];
    while (nd->r && raft_has_ready(nd->r)) {
        struct raft_ready rd;
        raft_ready(nd->r, &rd);
        if (rd.chunk) {
            if (rd.chunk->offset == 0)
                nd->recv_len = 0;
            if (rd.chunk->offset != nd->recv_len || nd->recv_len + rd.chunk->len > sizeof nd->recv)
                h_die("chunk out of order");
            if (rd.chunk->len)
                memcpy(nd->recv + nd->recv_len, rd.chunk->data, rd.chunk->len);
            nd->recv_len += rd.chunk->len;
        }
        if (rd.install) {
            memcpy(nd->snap_data, nd->recv, nd->recv_len);
            nd->snap_len = nd->recv_len;
            nd->snap = *rd.install;
            nd->n_log = 0;
            nd->applied = rd.install->index;
            nd->sm_hash = get_be64(nd->recv + 8);
            if (nd->applied < H_LOG_MAX)
                nd->hash_at[nd->applied] = nd->sm_hash;
        }
        if (rd.n_entries) {
            uint64_t first = rd.entries[0].index;
            while (nd->n_log && nd->log[nd->n_log - 1].index >= first)
                nd->n_log--;
            for (size_t k = 0; k < rd.n_entries; k++)
                h_disk_append(nd, &rd.entries[k]);
        }
        if (rd.hs_changed)
            nd->hs = rd.hs;
        for (size_t k = 0; k < rd.n_msgs; k++)
            h_queue(h, &rd.msgs[k]);
        for (size_t k = 0; k < rd.n_committed; k++) {
            const struct raft_entry *e = &rd.committed[k];
            if (e->index != nd->applied + 1)
                h_die("applied out of order");
            nd->applied = e->index;
            nd->sm_hash = h_hash(nd->sm_hash, e->data, e->len);
            if (e->index < H_LOG_MAX)
                nd->hash_at[e->index] = nd->sm_hash;
            if (nd->n_applied < H_LOG_MAX) {
                struct hent *x = &nd->applied_ents[nd->n_applied++];
                x->term = e->term;
                x->index = e->index;
                x->type = e->type;
                x->len = e->len < sizeof x->data ? e->len : sizeof x->data;
                if (x->len)
                    memcpy(x->data, e->data, x->len);
            }
        }
        for (size_t k = 0; k < rd.n_reads && nd->n_reads < 64; k++)
            nd->reads[nd->n_reads++] = rd.reads[k];
        raft_advance(nd->r, &rd);
    }
}

void h_tick(struct hnet *h, int i, int times)
{
    for (int k = 0; k < times; k++) {
        if (!h->nd[i].r)
            return;
        raft_tick(h->nd[i].r);
        if (h->nd[i].auto_ready)
            h_ready(h, i);
    }
}

void h_tick_all(struct hnet *h, int times)
{
    for (int k = 0; k < times; k++)
        for (int i = 1; i <= h->n; i++)
            h_tick(h, i, 1);
}

int h_step(struct hnet *h, int i, const struct raft_msg *m)
{
    int rc = raft_step(h->nd[i].r, m);
    if (h->nd[i].auto_ready)
        h_ready(h, i);
    return rc;
}

bool h_deliver_one(struct hnet *h)
{
    if (h->nq == 0)
        return false;
    struct hmsg c = h->q[0];
    memmove(h->q, h->q + 1, (h->nq - 1) * sizeof *h->q);
    h->nq--;
    int to = (int)c.m.to, from = (int)c.m.from;
    if (to < 1 || to > h->n || !h->nd[to].r || h->cut[from][to])
        return true;
    for (uint32_t k = 0; k < c.m.n_entries; k++)
        c.ents[k].data = c.ents[k].len ? c.edata[k] : NULL; /* the copy owns them now */
    c.m.entries = c.m.n_entries ? c.ents : NULL;
    c.m.data = c.m.len ? c.data : NULL;
    h->delivered[c.m.type - RAFT_MSG_TYPE_FIRST]++;
    if (c.m.type == RAFT_MSG_APP_RESP && c.m.reject)
        h->rejects[from]++;
    if (h_step(h, to, &c.m) != ERR_OK)
        h_die("a core refused a message from a peer");
    return true;
}

void h_settle(struct hnet *h)
{
    for (int k = 0; k < 100000 && h_deliver_one(h); k++) {
    }
}

void h_drop_all(struct hnet *h)
{
    h->nq = 0;
}

void h_isolate(struct hnet *h, int i)
{
    for (int j = 1; j <= h->n; j++)
        if (j != i)
            h->cut[i][j] = h->cut[j][i] = true;
}

void h_heal(struct hnet *h)
{
    memset(h->cut, 0, sizeof h->cut);
}

enum raft_role h_elect(struct hnet *h, int i)
{
    raft_campaign(h->nd[i].r);
    h_ready(h, i);
    h_settle(h);
    return h_status(h, i).role;
}

uint64_t h_propose(struct hnet *h, int i, const char *data)
{
    uint64_t index = 0;
    if (raft_propose(h->nd[i].r, data, strlen(data), &index, NULL) != ERR_OK)
        return 0;
    h_ready(h, i);
    return index;
}

int h_compact(struct hnet *h, int i, uint64_t index)
{
    struct hnode *nd = &h->nd[i];
    int rc = raft_compact(nd->r, index);
    if (rc != ERR_OK)
        return rc;
    nd->snap_len = h_image(h, index, nd->hash_at[index], nd->snap_data);
    size_t drop = 0;
    while (drop < nd->n_log && nd->log[drop].index <= index)
        drop++;
    memmove(nd->log, nd->log + drop, (nd->n_log - drop) * sizeof nd->log[0]);
    nd->n_log -= drop;
    nd->snap = *raft_get_snap(nd->r);
    return ERR_OK;
}

struct raft_status h_status(struct hnet *h, int i)
{
    struct raft_status st;
    raft_status(h->nd[i].r, &st);
    return st;
}

size_t h_count(const struct hnet *h, uint32_t type, uint64_t from)
{
    size_t c = 0;
    for (size_t k = 0; k < h->nq; k++)
        if ((!type || h->q[k].m.type == type) && (!from || h->q[k].m.from == from))
            c++;
    return c;
}

const struct raft_msg *h_find(const struct hnet *h, uint32_t type, uint64_t from)
{
    for (size_t k = 0; k < h->nq; k++)
        if ((!type || h->q[k].m.type == type) && (!from || h->q[k].m.from == from))
            return &h->q[k].m;
    return NULL;
}

const struct raft_msg *h_find_to(const struct hnet *h, uint32_t type, uint64_t from, uint64_t to)
{
    for (size_t k = 0; k < h->nq; k++)
        if (h->q[k].m.type == type && h->q[k].m.from == from && h->q[k].m.to == to)
            return &h->q[k].m;
    return NULL;
}

void h_elect_votes_only(struct hnet *h, int i)
{
    raft_campaign(h->nd[i].r);
    h_ready(h, i);
    while (h_status(h, i).role != RAFT_LEADER) {
        if (h->nq == 0)
            h_die("ran out of vote traffic before the node led");
        if (h->q[0].m.type == RAFT_MSG_VOTE || h->q[0].m.type == RAFT_MSG_VOTE_RESP)
            h_deliver_one(h);
        else
            memmove(h->q, h->q + 1, --h->nq * sizeof *h->q);
    }
}
