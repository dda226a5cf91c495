/* Raft log, hard state and snapshot metadata on RocksDB column families. */
#include "kv/raftlog.h"

#include <stdlib.h>
#include <string.h>

#include "util/buf.h"

static const char KEY_HS[] = "hard_state";
static const char KEY_SNAP[] = "snapshot";
#define ENTRY_HEADER 9 /* term + type */

void raftlog_stage_entries(struct store_batch *b, const struct raft_entry *e, size_t n,
                           uint64_t old_last)
{
    if (n == 0)
        return;
    uint64_t first = e[0].index;
    for (uint64_t i = first; i <= old_last; i++) {
        uint8_t k[8];
        put_be64(k, i);
        store_batch_delete(b, STORE_CF_RAFT_LOG, k, sizeof k);
    }
    for (size_t i = 0; i < n; i++) {
        ASSERT(e[i].index == first + i);
        uint8_t k[8], hdr[ENTRY_HEADER];
        put_be64(k, e[i].index);
        put_be64(hdr, e[i].term);
        hdr[8] = e[i].type;
        store_batch_put2(b, STORE_CF_RAFT_LOG, k, sizeof k, hdr, sizeof hdr, e[i].data, e[i].len);
    }
}

void raftlog_stage_hard_state(struct store_batch *b, const struct raft_hard_state *hs)
{
    uint8_t v[24];
    put_be64(v, hs->term);
    put_be64(v + 8, hs->vote);
    put_be64(v + 16, hs->commit);
    store_batch_put(b, STORE_CF_RAFT_STATE, KEY_HS, strlen(KEY_HS), v, sizeof v);
}

void raftlog_stage_snapshot(struct store_batch *b, const struct raft_snap_meta *m)
{
    ASSERT(m->conf.n <= RAFT_MAX_NODES);
    uint8_t v[24 + 8 * RAFT_MAX_NODES];
    put_be64(v, m->index);
    put_be64(v + 8, m->term);
    put_be32(v + 16, m->conf.n);
    put_be32(v + 20, m->conf.learners);
    for (uint32_t i = 0; i < m->conf.n; i++)
        put_be64(v + 24 + 8 * i, m->conf.ids[i]);
    store_batch_put(b, STORE_CF_RAFT_STATE, KEY_SNAP, strlen(KEY_SNAP), v, 24 + 8 * (size_t)m->conf.n);
}

void raftlog_stage_compact(struct store_batch *b, uint64_t first, uint64_t upto)
{
    for (uint64_t i = first; i <= upto; i++) {
        uint8_t k[8];
        put_be64(k, i);
        store_batch_delete(b, STORE_CF_RAFT_LOG, k, sizeof k);
    }
}

static int load_hs(struct store *st, struct raft_hard_state *hs, struct errbuf *eb)
{
    struct store_val v;
    int rc = store_get(st, STORE_CF_RAFT_STATE, KEY_HS, strlen(KEY_HS), NULL, &v, eb);
    if (rc == ERR_NOT_FOUND)
        return ERR_OK;
    if (rc)
        return rc;
    if (v.n != 24) {
        store_val_release(&v);
        return errf(eb, ERR_CORRUPT, "raft hard state has %zu bytes, want 24", v.n);
    }
    hs->term = get_be64(v.p);
    hs->vote = get_be64(v.p + 8);
    hs->commit = get_be64(v.p + 16);
    store_val_release(&v);
    return ERR_OK;
}

static int load_snap(struct store *st, struct raft_snap_meta *m, struct errbuf *eb)
{
    struct store_val v;
    int rc = store_get(st, STORE_CF_RAFT_STATE, KEY_SNAP, strlen(KEY_SNAP), NULL, &v, eb);
    if (rc == ERR_NOT_FOUND)
        return ERR_OK;
    if (rc)
        return rc;
    uint32_t n = v.n >= 24 ? get_be32(v.p + 16) : UINT32_MAX;
    if (n > RAFT_MAX_NODES || v.n != 24 + 8 * (size_t)n) {
        store_val_release(&v);
        return errf(eb, ERR_CORRUPT, "raft snapshot metadata is malformed (%zu bytes)", v.n);
    }
    m->index = get_be64(v.p);
    m->term = get_be64(v.p + 8);
    m->conf.n = n;
    m->conf.learners = get_be32(v.p + 20);
    for (uint32_t i = 0; i < n; i++)
        m->conf.ids[i] = get_be64(v.p + 24 + 8 * i);
    store_val_release(&v);
    return ERR_OK;
}

int raftlog_load(struct store *st, struct raftlog_loaded *out, struct errbuf *eb)
{
    memset(out, 0, sizeof *out);
    int rc;
    if ((rc = load_hs(st, &out->hs, eb)) || (rc = load_snap(st, &out->snap, eb)))
        return rc;
    /* Two passes: size the arena, then fill it, so entry data stays put. */
    struct store_iter *it = store_iter_new(st, STORE_CF_RAFT_LOG, NULL, 0);
    size_t count = 0, bytes = 0;
    uint8_t start[8];
    put_be64(start, out->snap.index + 1);
    for (store_iter_seek(it, start, 8); store_iter_valid(it); store_iter_next(it)) {
        size_t vn;
        store_iter_value(it, &vn);
        count++;
        bytes += vn;
    }
    if ((rc = store_iter_status(it, eb))) {
        store_iter_free(it);
        return rc;
    }
    out->entries = calloc(count ? count : 1, sizeof *out->entries);
    out->arena = malloc(bytes ? bytes : 1);
    if (!out->entries || !out->arena) {
        store_iter_free(it);
        raftlog_loaded_free(out);
        return errf(eb, ERR_NOMEM, "out of memory loading %zu log entries", count);
    }
    size_t off = 0;
    uint64_t want = out->snap.index + 1;
    for (store_iter_seek(it, start, 8); store_iter_valid(it) && out->n_entries < count;
         store_iter_next(it)) {
        size_t kn, vn;
        const uint8_t *k = store_iter_key(it, &kn);
        const uint8_t *v = store_iter_value(it, &vn);
        if (kn != 8 || vn < ENTRY_HEADER) {
            rc = errf(eb, ERR_CORRUPT, "raft log record malformed (key %zu bytes, value %zu)", kn, vn);
            break;
        }
        uint64_t index = get_be64(k);
        if (index != want) {
            rc = errf(eb, ERR_CORRUPT, "raft log has a gap: expected index %llu, found %llu",
                      (unsigned long long)want, (unsigned long long)index);
            break;
        }
        struct raft_entry *e = &out->entries[out->n_entries++];
        e->index = index;
        e->term = get_be64(v);
        e->type = v[8];
        e->len = vn - ENTRY_HEADER;
        memcpy(out->arena + off, v + ENTRY_HEADER, e->len);
        e->data = out->arena + off;
        off += e->len;
        want++;
    }
    if (!rc)
        rc = store_iter_status(it, eb);
    store_iter_free(it);
    if (rc)
        raftlog_loaded_free(out);
    return rc;
}

void raftlog_loaded_free(struct raftlog_loaded *l)
{
    free(l->entries);
    free(l->arena);
    l->entries = NULL;
    l->arena = NULL;
    l->n_entries = 0;
}
