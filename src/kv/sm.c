/* Key-value state machine: staged apply, atomic commit, reads and prefix scans. */
#include "kv/sm.h"

#include <string.h>

#include "util/buf.h"

static const char META_FORMAT[] = "format_version";
static const char META_APPLIED_INDEX[] = "applied_index";
static const char META_APPLIED_LAMPORT[] = "applied_lamport";
static const char META_REVISION[] = "revision";
static const char META_KEYS[] = "keys";

int kv_record_decode(const uint8_t *p, size_t n, struct kv_record *r)
{
    if (n < KV_RECORD_HEADER || p[0] != 1)
        return ERR_CORRUPT;
    r->create_rev = get_be64(p + 1);
    r->mod_rev = get_be64(p + 9);
    r->version = get_be64(p + 17);
    r->lamport = get_be64(p + 25);
    r->lease = get_be64(p + 33);
    r->value = p + KV_RECORD_HEADER;
    r->vlen = n - KV_RECORD_HEADER;
    return ERR_OK;
}

static int meta_get_u64(struct sm *sm, const char *key, uint64_t *v, struct errbuf *eb)
{
    struct store_val val;
    int rc = store_get(sm->st, STORE_CF_META, key, strlen(key), NULL, &val, eb);
    if (rc == ERR_NOT_FOUND) {
        *v = 0;
        return ERR_OK;
    }
    if (rc)
        return rc;
    if (val.n != 8) {
        store_val_release(&val);
        return errf(eb, ERR_CORRUPT, "meta %s has %zu bytes, want 8", key, val.n);
    }
    *v = get_be64(val.p);
    store_val_release(&val);
    return ERR_OK;
}

static void meta_put_u64(struct store_batch *b, const char *key, uint64_t v)
{
    uint8_t be[8];
    put_be64(be, v);
    store_batch_put(b, STORE_CF_META, key, strlen(key), be, sizeof be);
}

int sm_open(struct sm *sm, struct store *st, struct errbuf *eb)
{
    memset(sm, 0, sizeof *sm);
    sm->st = st;
    uint64_t format;
    int rc = meta_get_u64(sm, META_FORMAT, &format, eb);
    if (rc)
        return rc;
    if (format > SM_FORMAT_VERSION)
        return errf(eb, ERR_CORRUPT,
                    "data dir has format version %llu, this ddkv reads up to %d: upgrade ddkv",
                    (unsigned long long)format, SM_FORMAT_VERSION);
    if ((rc = meta_get_u64(sm, META_APPLIED_INDEX, &sm->applied_index, eb)) ||
        (rc = meta_get_u64(sm, META_APPLIED_LAMPORT, &sm->applied_lamport, eb)) ||
        (rc = meta_get_u64(sm, META_REVISION, &sm->revision, eb)) ||
        (rc = meta_get_u64(sm, META_KEYS, &sm->keys, eb)))
        return rc;
    sm->batch = store_batch_new(st);
    if (format == 0) {
        /* A new data dir: stamp the format before anything else is written. */
        meta_put_u64(sm->batch, META_FORMAT, SM_FORMAT_VERSION);
        rc = store_write(st, sm->batch, true, eb);
        store_batch_clear(sm->batch);
        if (rc)
            return rc;
    }
    sm_discard(sm);
    return ERR_OK;
}

void sm_close(struct sm *sm)
{
    store_batch_free(sm->batch);
    sm->batch = NULL;
}

void sm_discard(struct sm *sm)
{
    store_batch_clear(sm->batch);
    sm->st_index = sm->applied_index;
    sm->st_lamport = sm->applied_lamport;
    sm->st_revision = sm->revision;
    sm->st_keys_delta = 0;
}

int sm_stage(struct sm *sm, uint64_t index, uint64_t lamport, const struct sm_op *op,
             struct sm_result *res, struct errbuf *eb)
{
    ASSERT(index == sm->st_index + 1);
    memset(res, 0, sizeof *res);
    if (op->kind == SM_OP_NOOP) {
        sm->st_index = index;
        return ERR_OK;
    }
    struct store_val old;
    int rc = store_get(sm->st, STORE_CF_DATA, op->key, op->klen, sm->batch, &old, eb);
    if (rc && rc != ERR_NOT_FOUND)
        return rc;
    struct kv_record prev = {0};
    bool exists = rc == ERR_OK;
    if (exists) {
        rc = kv_record_decode(old.p, old.n, &prev);
        store_val_release(&old);
        if (rc)
            return errf(eb, rc, "stored record for a key is corrupt");
    }
    res->found = exists;
    if (op->kind == SM_OP_PUT) {
        uint8_t hdr[KV_RECORD_HEADER];
        hdr[0] = 1;
        put_be64(hdr + 1, exists ? prev.create_rev : index);
        put_be64(hdr + 9, index);
        put_be64(hdr + 17, exists ? prev.version + 1 : 1);
        put_be64(hdr + 25, lamport);
        put_be64(hdr + 33, op->lease);
        store_batch_put2(sm->batch, STORE_CF_DATA, op->key, op->klen, hdr, sizeof hdr, op->val, op->vlen);
        if (!exists)
            sm->st_keys_delta++;
        sm->st_revision = index;
        res->revision = index;
    } else if (exists) {
        store_batch_delete(sm->batch, STORE_CF_DATA, op->key, op->klen);
        sm->st_keys_delta--;
        sm->st_revision = index;
        res->revision = index;
    }
    res->lamport = lamport;
    sm->st_index = index;
    if (lamport > sm->st_lamport)
        sm->st_lamport = lamport;
    return ERR_OK;
}

int sm_commit(struct sm *sm, bool sync, struct errbuf *eb)
{
    if (sm->st_index == sm->applied_index)
        return ERR_OK;
    uint64_t keys = (uint64_t)((int64_t)sm->keys + sm->st_keys_delta);
    meta_put_u64(sm->batch, META_APPLIED_INDEX, sm->st_index);
    meta_put_u64(sm->batch, META_APPLIED_LAMPORT, sm->st_lamport);
    meta_put_u64(sm->batch, META_REVISION, sm->st_revision);
    meta_put_u64(sm->batch, META_KEYS, keys);
    int rc = store_write(sm->st, sm->batch, sync, eb);
    if (rc) {
        sm_discard(sm);
        return rc;
    }
    sm->applied_index = sm->st_index;
    sm->applied_lamport = sm->st_lamport;
    sm->revision = sm->st_revision;
    sm->keys = keys;
    sm->st_keys_delta = 0;
    store_batch_clear(sm->batch);
    return ERR_OK;
}

int sm_get(struct sm *sm, const uint8_t *key, size_t klen, struct kv_record *r,
           struct store_val *hold, struct errbuf *eb)
{
    int rc = store_get(sm->st, STORE_CF_DATA, key, klen, NULL, hold, eb);
    if (rc)
        return rc;
    rc = kv_record_decode(hold->p, hold->n, r);
    if (rc) {
        store_val_release(hold);
        return errf(eb, rc, "stored record for a key is corrupt");
    }
    return ERR_OK;
}

/* The smallest key greater than every key with this prefix; false if none
 * (empty prefix or all 0xff), meaning no upper bound. */
static bool prefix_successor(const uint8_t *prefix, size_t plen, struct buf *out)
{
    size_t n = plen;
    while (n > 0 && prefix[n - 1] == 0xff)
        n--;
    if (n == 0)
        return false;
    buf_append(out, prefix, n);
    out->data[n - 1]++;
    return true;
}

int sm_list(struct sm *sm, const uint8_t *prefix, size_t plen, const uint8_t *start_after,
            size_t salen, uint32_t limit, size_t max_bytes, sm_list_cb cb, void *ctx, bool *more,
            struct errbuf *eb)
{
    struct buf upper = BUF_INIT, start = BUF_INIT;
    bool bounded = prefix_successor(prefix, plen, &upper);
    struct store_iter *it = store_iter_new(sm->st, STORE_CF_DATA, bounded ? upper.data : NULL, upper.len);
    /* Start at the later of the prefix and just past start_after. */
    if (salen > 0 && (salen > plen ? memcmp(start_after, prefix, plen) >= 0
                                   : memcmp(start_after, prefix, salen) > 0)) {
        buf_append(&start, start_after, salen);
        buf_append(&start, "", 1); /* start_after + "\0" is its immediate successor */
    } else {
        buf_append(&start, prefix, plen);
    }
    store_iter_seek(it, start.data ? start.data : (const uint8_t *)"", start.len);
    uint32_t count = 0;
    size_t bytes = 0;
    int rc = ERR_OK;
    *more = false;
    for (; store_iter_valid(it); store_iter_next(it)) {
        size_t kn, vn;
        const uint8_t *k = store_iter_key(it, &kn);
        const uint8_t *v = store_iter_value(it, &vn);
        if (kn < plen || memcmp(k, prefix, plen) != 0)
            break;
        if (count >= limit || (count > 0 && bytes + kn + vn > max_bytes)) {
            *more = true;
            break;
        }
        struct kv_record r;
        if ((rc = kv_record_decode(v, vn, &r))) {
            errf(eb, rc, "stored record for a key is corrupt");
            break;
        }
        if ((rc = cb(ctx, k, kn, &r)))
            break;
        count++;
        bytes += kn + vn;
    }
    if (!rc)
        rc = store_iter_status(it, eb);
    store_iter_free(it);
    buf_free(&upper);
    buf_free(&start);
    return rc;
}
