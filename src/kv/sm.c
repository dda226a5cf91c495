/* Key-value state machine: staged apply, client sessions and their expiry,
 * atomic commit, reads and prefix scans. */
#include "kv/sm.h"

#include <stdlib.h>
#include <string.h>

#include "util/buf.h"

static const char META_FORMAT[] = "format_version";
static const char META_APPLIED_INDEX[] = "applied_index";
static const char META_APPLIED_LAMPORT[] = "applied_lamport";
static const char META_REVISION[] = "revision";
static const char META_KEYS[] = "keys";
static const char META_TIME_MS[] = "applied_time_ms";
static const char META_SESSIONS[] = "sessions";

/* Session keys: "s/" + be64 client_id; expiry index keys: "e/" + be64
 * last_used_ms + be64 client_id. No other meta key contains a '/'. */
#define SESS_KEY_LEN 10
#define EXP_KEY_LEN 18

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

static void sess_key(uint8_t k[SESS_KEY_LEN], uint64_t client_id)
{
    k[0] = 's';
    k[1] = '/';
    put_be64(k + 2, client_id);
}

static void exp_key(uint8_t k[EXP_KEY_LEN], struct sm_exp_key e)
{
    k[0] = 'e';
    k[1] = '/';
    put_be64(k + 2, e.ms);
    put_be64(k + 10, e.client_id);
}

static int exp_key_decode(const uint8_t *k, size_t n, struct sm_exp_key *e, struct errbuf *eb)
{
    if (n != EXP_KEY_LEN || k[0] != 'e' || k[1] != '/')
        return errf(eb, ERR_CORRUPT, "session expiry index key of %zu bytes is malformed", n);
    e->ms = get_be64(k + 2);
    e->client_id = get_be64(k + 10);
    return ERR_OK;
}

/* Order of expiry index keys (their byte order in the store). */
static int exp_cmp(struct sm_exp_key a, struct sm_exp_key b)
{
    if (a.ms != b.ms)
        return a.ms < b.ms ? -1 : 1;
    if (a.client_id != b.client_id)
        return a.client_id < b.client_id ? -1 : 1;
    return 0;
}

/* Read a session, through overlay if non-NULL. ERR_OK, ERR_NOT_FOUND or an error. */
static int sess_read(struct sm *sm, uint64_t client_id, struct store_batch *overlay,
                     struct sm_session *s, struct errbuf *eb)
{
    uint8_t k[SESS_KEY_LEN];
    sess_key(k, client_id);
    struct store_val v;
    int rc = store_get(sm->st, STORE_CF_META, k, sizeof k, overlay, &v, eb);
    if (rc)
        return rc;
    if (v.n != SM_SESSION_RECORD || (v.p[16] != SM_OP_PUT && v.p[16] != SM_OP_DELETE) || v.p[17] > 1) {
        store_val_release(&v);
        return errf(eb, ERR_CORRUPT, "session record of client %llx is malformed",
                    (unsigned long long)client_id);
    }
    s->last_seq = get_be64(v.p);
    s->last_used_ms = get_be64(v.p + 8);
    s->kind = (enum sm_op_kind)v.p[16];
    s->found = v.p[17] == 1;
    s->revision = get_be64(v.p + 18);
    s->lamport = get_be64(v.p + 26);
    store_val_release(&v);
    return ERR_OK;
}

/* Whether a session last used at used_ms has expired at time now. */
static bool sess_expired(const struct sm *sm, uint64_t used_ms, uint64_t now)
{
    /* used_ms + ttl < now, without overflow */
    return now > sm->session_ttl_ms && used_ms < now - sm->session_ttl_ms;
}

/* Position of e in st_new[st_new_head..st_new_n), or where it would go. */
static size_t st_new_find(const struct sm *sm, struct sm_exp_key e, bool *found)
{
    size_t lo = sm->st_new_head, hi = sm->st_new_n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (exp_cmp(sm->st_new[mid], e) < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    *found = lo < sm->st_new_n && exp_cmp(sm->st_new[lo], e) == 0;
    return lo;
}

/* Room for one more st_new key, so that nothing after it can fail. */
static int st_new_reserve(struct sm *sm, struct errbuf *eb)
{
    if (sm->st_new_head > sm->st_new_cap / 2 && sm->st_new_n == sm->st_new_cap) {
        memmove(sm->st_new, sm->st_new + sm->st_new_head,
                (sm->st_new_n - sm->st_new_head) * sizeof *sm->st_new);
        sm->st_new_n -= sm->st_new_head;
        sm->st_new_head = 0;
    }
    if (sm->st_new_n < sm->st_new_cap)
        return ERR_OK;
    size_t cap = sm->st_new_cap ? sm->st_new_cap * 2 : 64;
    struct sm_exp_key *p = realloc(sm->st_new, cap * sizeof *p);
    if (!p)
        return errf(eb, ERR_NOMEM, "out of memory staging a client session");
    sm->st_new = p;
    sm->st_new_cap = cap;
    return ERR_OK;
}

static void st_new_insert(struct sm *sm, struct sm_exp_key e)
{
    ASSERT(sm->st_new_n < sm->st_new_cap);
    bool found;
    size_t at = st_new_find(sm, e, &found);
    ASSERT(!found);
    memmove(sm->st_new + at + 1, sm->st_new + at, (sm->st_new_n - at) * sizeof *sm->st_new);
    sm->st_new[at] = e;
    sm->st_new_n++;
}

/* Mark e removed if the batch added it (a stored key is not in st_new). A
 * key never comes back within a batch: a session's next key is later. */
static void st_new_remove(struct sm *sm, struct sm_exp_key e)
{
    bool found;
    size_t at = st_new_find(sm, e, &found);
    if (found)
        sm->st_new[at].removed = true;
}

/* The first key the batch added that is still in the index, or NULL. */
static const struct sm_exp_key *st_new_first(struct sm *sm)
{
    while (sm->st_new_head < sm->st_new_n && sm->st_new[sm->st_new_head].removed)
        sm->st_new_head++;
    return sm->st_new_head < sm->st_new_n ? &sm->st_new[sm->st_new_head] : NULL;
}

/* Remove one session and its index key from the staged view. */
static void sess_remove(struct sm *sm, struct sm_exp_key e)
{
    uint8_t sk[SESS_KEY_LEN], ek[EXP_KEY_LEN];
    sess_key(sk, e.client_id);
    exp_key(ek, e);
    store_batch_delete(sm->batch, STORE_CF_META, sk, sizeof sk);
    store_batch_delete(sm->batch, STORE_CF_META, ek, sizeof ek);
    sm->st_sessions_delta--;
}

/* Remove up to SM_SESSION_EXPIRE_BATCH sessions expired at `now`, oldest
 * first. The staged view of the index is the stored keys after st_cursor that
 * the batch has not removed, merged with the batch's own keys (st_new). */
static int sess_expire(struct sm *sm, uint64_t now, struct errbuf *eb)
{
    if (now <= sm->session_ttl_ms)
        return ERR_OK;
    uint64_t cut = now - sm->session_ttl_ms; /* sessions last used before cut have expired */
    if (sm->st_exp_floor >= cut)
        return ERR_OK;
    uint8_t upper[SESS_KEY_LEN], start[EXP_KEY_LEN];
    upper[0] = 'e';
    upper[1] = '/';
    put_be64(upper + 2, cut); /* every index key with ms < cut sorts below this */
    struct store_iter *it = store_iter_new(sm->st, STORE_CF_META, upper, sizeof upper);
    if (sm->st_cursor_set) {
        exp_key(start, sm->st_cursor);
        store_iter_seek(it, start, sizeof start);
    } else {
        store_iter_seek(it, "e/", 2);
    }
    int rc = ERR_OK;
    unsigned removed = 0;
    bool have_stored = false, exhausted = false;
    struct sm_exp_key stored = {0}, last = {0};
    while (removed < SM_SESSION_EXPIRE_BATCH) {
        /* The next stored key still in the staged view. */
        while (!have_stored && store_iter_valid(it)) {
            size_t kn;
            const uint8_t *k = store_iter_key(it, &kn);
            if ((rc = exp_key_decode(k, kn, &stored, eb)))
                goto out;
            if (sm->st_cursor_set && exp_cmp(stored, sm->st_cursor) <= 0) {
                store_iter_next(it);
                continue;
            }
            /* Live iff its session still points at it; the batch may have
             * moved the session on (a later write) or removed it. */
            struct sm_session s;
            rc = sess_read(sm, stored.client_id, sm->batch, &s, eb);
            if (rc && rc != ERR_NOT_FOUND)
                goto out;
            bool live = rc == ERR_OK && s.last_used_ms == stored.ms;
            rc = ERR_OK;
            if (live) {
                have_stored = true;
                break;
            }
            /* Gone from the staged view, as is everything before it. */
            sm->st_cursor = stored;
            sm->st_cursor_set = true;
            store_iter_next(it);
        }
        const struct sm_exp_key *fresh = st_new_first(sm);
        if (fresh && fresh->ms >= cut)
            fresh = NULL;
        if (!have_stored && !fresh) {
            exhausted = true;
            break;
        }
        if (have_stored && (!fresh || exp_cmp(stored, *fresh) < 0)) {
            last = stored;
            sm->st_cursor = stored;
            sm->st_cursor_set = true;
            have_stored = false;
            store_iter_next(it);
        } else {
            last = sm->st_new[sm->st_new_head++];
        }
        sess_remove(sm, last);
        removed++;
    }
    if ((rc = store_iter_status(it, eb)))
        goto out;
    /* Everything left in the index is at or after `last`, or (when the scan
     * ran out) at or after cut. */
    sm->st_exp_floor = exhausted ? cut : last.ms;
out:
    store_iter_free(it);
    return rc;
}

/* Record the session's new last write: its result, and its place in the
 * expiry index. old is the session as it was (NULL if none). */
static void sess_record(struct sm *sm, const struct sm_op *op, const struct sm_result *res, uint64_t now,
                        const struct sm_session *old)
{
    uint8_t sk[SESS_KEY_LEN], ek[EXP_KEY_LEN], rec[SM_SESSION_RECORD];
    put_be64(rec, op->seq);
    put_be64(rec + 8, now);
    rec[16] = (uint8_t)op->kind;
    rec[17] = res->found ? 1 : 0;
    put_be64(rec + 18, res->revision);
    put_be64(rec + 26, res->lamport);
    sess_key(sk, op->client_id);
    store_batch_put(sm->batch, STORE_CF_META, sk, sizeof sk, rec, sizeof rec);
    struct sm_exp_key e = {.ms = now, .client_id = op->client_id, .removed = false};
    if (old) {
        if (old->last_used_ms == now)
            return; /* its index key stays as it is */
        struct sm_exp_key was = {.ms = old->last_used_ms, .client_id = op->client_id, .removed = false};
        exp_key(ek, was);
        store_batch_delete(sm->batch, STORE_CF_META, ek, sizeof ek);
        st_new_remove(sm, was);
    } else {
        sm->st_sessions_delta++;
    }
    exp_key(ek, e);
    store_batch_put(sm->batch, STORE_CF_META, ek, sizeof ek, "", 0);
    st_new_insert(sm, e);
    if (now < sm->st_exp_floor)
        sm->st_exp_floor = now;
}

/* The lowest last_used_ms in the stored expiry index (UINT64_MAX if empty). */
static int exp_floor_load(struct sm *sm, uint64_t *floor, struct errbuf *eb)
{
    struct store_iter *it = store_iter_new(sm->st, STORE_CF_META, "e0", 2); /* '0' follows '/' */
    store_iter_seek(it, "e/", 2);
    int rc = ERR_OK;
    *floor = UINT64_MAX;
    if (store_iter_valid(it)) {
        size_t kn;
        const uint8_t *k = store_iter_key(it, &kn);
        struct sm_exp_key e;
        if ((rc = exp_key_decode(k, kn, &e, eb)) == ERR_OK)
            *floor = e.ms;
    }
    if (!rc)
        rc = store_iter_status(it, eb);
    store_iter_free(it);
    return rc;
}

int sm_open(struct sm *sm, struct store *st, struct errbuf *eb)
{
    memset(sm, 0, sizeof *sm);
    sm->st = st;
    sm->session_ttl_ms = SM_SESSION_TTL_MS;
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
        (rc = meta_get_u64(sm, META_KEYS, &sm->keys, eb)) ||
        (rc = meta_get_u64(sm, META_TIME_MS, &sm->applied_time_ms, eb)) ||
        (rc = meta_get_u64(sm, META_SESSIONS, &sm->sessions, eb)) ||
        (rc = exp_floor_load(sm, &sm->exp_floor, eb)))
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
    free(sm->st_new);
    sm->st_new = NULL;
    sm->st_new_head = sm->st_new_n = sm->st_new_cap = 0;
}

void sm_discard(struct sm *sm)
{
    store_batch_clear(sm->batch);
    sm->st_index = sm->applied_index;
    sm->st_lamport = sm->applied_lamport;
    sm->st_revision = sm->revision;
    sm->st_keys_delta = 0;
    sm->st_time_ms = sm->applied_time_ms;
    sm->st_sessions_delta = 0;
    sm->st_exp_floor = sm->exp_floor;
    sm->st_cursor_set = false;
    sm->st_new_head = sm->st_new_n = 0;
}

/* Apply a PUT or DELETE to the data column family. */
static int kv_apply(struct sm *sm, uint64_t index, uint64_t lamport, const struct sm_op *op,
                    struct sm_result *res, struct errbuf *eb)
{
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
    return ERR_OK;
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
    int rc;
    if (op->client_id != 0 && (rc = st_new_reserve(sm, eb)))
        return rc;
    /* The entry's time: never behind an earlier entry's, so a leader whose
     * clock is behind can neither bring an expired session back nor keep one
     * alive longer. */
    uint64_t now = op->time_ms > sm->st_time_ms ? op->time_ms : sm->st_time_ms;
    if ((rc = sess_expire(sm, now, eb)))
        return rc;
    struct sm_session sess;
    bool had_session = false, apply = true;
    if (op->client_id != 0) {
        rc = sess_read(sm, op->client_id, sm->batch, &sess, eb);
        if (rc && rc != ERR_NOT_FOUND)
            return rc;
        had_session = rc == ERR_OK;
        /* An expired session not yet removed counts as none. */
        if (had_session && !sess_expired(sm, sess.last_used_ms, now) && op->seq <= sess.last_seq) {
            apply = false;
            if (op->seq == sess.last_seq) {
                res->duplicate = true;
                res->found = sess.found;
                res->revision = sess.revision;
                res->lamport = sess.lamport;
            } else {
                res->stale = true;
            }
        }
    }
    if (apply) {
        if ((rc = kv_apply(sm, index, lamport, op, res, eb)))
            return rc;
        if (op->client_id != 0)
            sess_record(sm, op, res, now, had_session ? &sess : NULL);
    }
    sm->st_index = index;
    sm->st_time_ms = now;
    /* A retry's Lamport time was handed out by its leader too: the clock
     * restarts above it. */
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
    uint64_t sessions = (uint64_t)((int64_t)sm->sessions + sm->st_sessions_delta);
    meta_put_u64(sm->batch, META_TIME_MS, sm->st_time_ms);
    meta_put_u64(sm->batch, META_SESSIONS, sessions);
    int rc = store_write(sm->st, sm->batch, sync, eb);
    if (rc) {
        sm_discard(sm);
        return rc;
    }
    sm->applied_index = sm->st_index;
    sm->applied_lamport = sm->st_lamport;
    sm->revision = sm->st_revision;
    sm->keys = keys;
    sm->applied_time_ms = sm->st_time_ms;
    sm->sessions = sessions;
    sm->exp_floor = sm->st_exp_floor;
    sm_discard(sm); /* the staged state now equals the durable state */
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

int sm_session_get(struct sm *sm, uint64_t client_id, struct sm_session *s, struct errbuf *eb)
{
    return sess_read(sm, client_id, NULL, s, eb);
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
