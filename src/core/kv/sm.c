/* Key-value state machine: staged apply of puts, deletes, transactions and
 * leases, client sessions and their expiry, change events, atomic commit,
 * reads and prefix scans. */
#include "kv/sm.h"

#include <stdlib.h>
#include <string.h>

#include "ddkv/wire.h"
#include "proto/version.h"
#include "util/buf.h"

static const char META_FORMAT[] = "format_version";
static const char META_APPLIED_INDEX[] = "applied_index";
static const char META_APPLIED_LAMPORT[] = "applied_lamport";
static const char META_REVISION[] = "revision";
static const char META_KEYS[] = "keys";
static const char META_TIME_MS[] = "applied_time_ms";
static const char META_SESSIONS[] = "sessions";
static const char META_LEASES[] = "leases";
static const char META_CLUSTER_VERSION[] = "cluster_version";

/* Session keys: "s/" + be64 client_id; expiry index keys: "e/" + be64
 * last_used_ms + be64 client_id; lease keys "l/" + be64 id; attachment keys
 * "k/" + be64 lease + user key. The address book (src/core/node/cluster.c) has
 * "m/", member incarnations "i/", users and roles (kv/authdb.c) "u/" and "r/"; no other meta key
 * contains a '/'. */
#define SESS_KEY_LEN 10
#define EXP_KEY_LEN 18
#define LEASE_KEY_LEN 10
#define ATT_PREFIX_LEN 10

/* The flags byte of a session record (offset 17; layout in sm.h). */
#define SESS_FLAG_FOUND 1u
#define SESS_FLAG_SUCCEEDED 2u

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

/* Decode a stored session record (both formats). */
static int sess_decode(const uint8_t *p, size_t n, uint64_t client_id, struct sm_session *s,
                       struct errbuf *eb)
{
    bool ok;
    if (n == SM_SESSION_RECORD) {
        uint8_t kind = p[16];
        ok = kind != SM_OP_NOOP && kind >= SM_OP_PUT && kind <= SM_OP__MAX && kind != SM_OP_MEMBER_INC &&
             kind != SM_OP_CLUSTER_VERSION &&
             p[17] <= (SESS_FLAG_FOUND | SESS_FLAG_SUCCEEDED) && p[34] <= SM_ERR__MAX;
    } else {
        /* format 1: puts and deletes only, byte 17 is found */
        ok = n == SM_SESSION_RECORD_V1 && (p[16] == SM_OP_PUT || p[16] == SM_OP_DELETE) && p[17] <= 1;
    }
    if (!ok)
        return errf(eb, ERR_CORRUPT, "session record of client %llx is malformed",
                    (unsigned long long)client_id);
    memset(s, 0, sizeof *s);
    s->last_seq = get_be64(p);
    s->last_used_ms = get_be64(p + 8);
    s->kind = (enum sm_op_kind)p[16];
    s->found = (p[17] & SESS_FLAG_FOUND) != 0;
    s->succeeded = (p[17] & SESS_FLAG_SUCCEEDED) != 0;
    s->revision = get_be64(p + 18);
    s->lamport = get_be64(p + 26);
    if (n == SM_SESSION_RECORD) {
        s->error = p[34];
        s->lease_id = get_be64(p + 35);
        s->lease_ttl_ms = get_be64(p + 43);
    }
    return ERR_OK;
}

/* The cache slot a client's session goes in. */
static struct sm_sess_slot *sess_slot(struct sm *sm, uint64_t client_id)
{
    uint64_t h = client_id * 0x9e3779b97f4a7c15ull; /* ids are random or small: spread them */
    return &sm->sess_cache[(h >> 32) & (SM_SESS_CACHE - 1)];
}

/* The staged view's word on a client's session is now this (s NULL: none). */
static void sess_cache_set(struct sm *sm, uint64_t client_id, const struct sm_session *s)
{
    struct sm_sess_slot *slot = sess_slot(sm, client_id);
    slot->client_id = client_id;
    slot->gen = sm->cache_gen;
    slot->present = s != NULL;
    if (s)
        slot->s = *s;
}

/* Forget what the caches hold: staged changes they may hold are dropped. A
 * new generation does it without touching the slots (a fresh state
 * machine's are never written before use, so opening one costs no page). */
static void caches_clear(struct sm *sm)
{
    if (++sm->cache_gen != 0)
        return;
    memset(sm->sess_cache, 0, SM_SESS_CACHE * sizeof *sm->sess_cache);
    memset(sm->key_cache, 0, SM_KEY_CACHE * sizeof *sm->key_cache);
    sm->cache_gen = 1;
}

/* Read a session: the staged view (overlay is the open batch; the cache
 * answers first) or, with overlay NULL, the committed one. ERR_OK,
 * ERR_NOT_FOUND or an error. */
static int sess_read(struct sm *sm, uint64_t client_id, struct store_batch *overlay,
                     struct sm_session *s, struct errbuf *eb)
{
    ASSERT(overlay == NULL || overlay == sm->batch);
    struct sm_sess_slot *slot = overlay ? sess_slot(sm, client_id) : NULL;
    if (slot && slot->gen == sm->cache_gen && slot->client_id == client_id) {
        if (!slot->present)
            return ERR_NOT_FOUND;
        *s = slot->s;
        return ERR_OK;
    }
    uint8_t k[SESS_KEY_LEN];
    sess_key(k, client_id);
    struct store_val v;
    int rc = store_get(sm->st, STORE_CF_META, k, sizeof k, overlay, &v, eb);
    if (rc == ERR_NOT_FOUND && slot)
        sess_cache_set(sm, client_id, NULL);
    if (rc)
        return rc;
    rc = sess_decode(v.p, v.n, client_id, s, eb);
    store_val_release(&v);
    if (rc == ERR_OK && slot)
        sess_cache_set(sm, client_id, s);
    return rc;
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
    sess_cache_set(sm, e.client_id, NULL);
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
    rec[17] = (uint8_t)((res->found ? SESS_FLAG_FOUND : 0) | (res->succeeded ? SESS_FLAG_SUCCEEDED : 0));
    put_be64(rec + 18, res->revision);
    put_be64(rec + 26, res->lamport);
    ASSERT(res->error >= 0 && res->error <= SM_ERR__MAX);
    rec[34] = (uint8_t)res->error;
    put_be64(rec + 35, op->kind == SM_OP_DELETE_PREFIX ? res->count : res->lease_id);
    put_be64(rec + 43, res->lease_ttl_ms);
    sess_key(sk, op->client_id);
    store_batch_put(sm->batch, STORE_CF_META, sk, sizeof sk, rec, sizeof rec);
    /* The cache holds what a read of rec would give. */
    struct sm_session now_s;
    struct errbuf eb;
    ASSERT(sess_decode(rec, sizeof rec, op->client_id, &now_s, &eb) == ERR_OK);
    sess_cache_set(sm, op->client_id, &now_s);
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
        struct sm_exp_key e = {0};
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
    sm->sess_cache = calloc(SM_SESS_CACHE, sizeof *sm->sess_cache);
    sm->key_cache = calloc(SM_KEY_CACHE, sizeof *sm->key_cache);
    sm->cache_gen = 1; /* calloc'd slots have gen 0: empty */
    if (!sm->sess_cache || !sm->key_cache)
        return errf(eb, ERR_NOMEM, "out of memory for the session and key caches");
    uint64_t format = 0;
    int rc = meta_get_u64(sm, META_FORMAT, &format, eb);
    if (rc)
        return rc;
    if (format > SM_FORMAT_VERSION)
        return errf(eb, ERR_CORRUPT,
                    "data dir has format version %llu, this ddkv reads up to %d: upgrade ddkv",
                    (unsigned long long)format, SM_FORMAT_VERSION);
    if ((rc = meta_get_u64(sm, META_CLUSTER_VERSION, &sm->cluster_version, eb)))
        return rc;
    if (sm->cluster_version == 0)
        sm->cluster_version = DDKV_VERSION_0_1_0;
    if ((rc = meta_get_u64(sm, META_APPLIED_INDEX, &sm->applied_index, eb)) ||
        (rc = meta_get_u64(sm, META_APPLIED_LAMPORT, &sm->applied_lamport, eb)) ||
        (rc = meta_get_u64(sm, META_REVISION, &sm->revision, eb)) ||
        (rc = meta_get_u64(sm, META_KEYS, &sm->keys, eb)) ||
        (rc = meta_get_u64(sm, META_TIME_MS, &sm->applied_time_ms, eb)) ||
        (rc = meta_get_u64(sm, META_SESSIONS, &sm->sessions, eb)) ||
        (rc = meta_get_u64(sm, META_LEASES, &sm->leases, eb)) ||
        (rc = exp_floor_load(sm, &sm->exp_floor, eb)) || (rc = auth_db_load(&sm->auth, st, eb)))
        return rc;
    sm->batch = store_batch_new(st);
    if (format < SM_FORMAT_BASE) {
        /* A new data dir: stamp the format before anything else is written.
         * A format 1 dir is read as it is (its session records are the short
         * kind) and stamped, so an older ddkv will not read what this one
         * writes next. Format 4 comes with the cluster version (above). */
        meta_put_u64(sm->batch, META_FORMAT, SM_FORMAT_BASE);
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
    free(sm->sess_cache);
    sm->sess_cache = NULL;
    free(sm->key_cache);
    sm->key_cache = NULL;
    free(sm->st_new);
    sm->st_new = NULL;
    sm->st_new_head = sm->st_new_n = sm->st_new_cap = 0;
    free(sm->st_att);
    sm->st_att = NULL;
    sm->st_att_n = sm->st_att_cap = 0;
    buf_free(&sm->st_att_keys);
    buf_free(&sm->scratch);
    auth_db_free(&sm->auth);
    if (sm->st_auth_open)
        auth_db_free(&sm->st_auth);
    sm->st_auth_open = false;
}

/* Empty the open batch: the staged state becomes the durable state again. */
static void staged_reset(struct sm *sm)
{
    store_batch_clear(sm->batch);
    sm->st_index = sm->applied_index;
    sm->st_lamport = sm->applied_lamport;
    sm->st_revision = sm->revision;
    sm->st_cluster_version = sm->cluster_version;
    sm->st_keys_delta = 0;
    sm->st_time_ms = sm->applied_time_ms;
    sm->st_sessions_delta = 0;
    sm->st_exp_floor = sm->exp_floor;
    sm->st_cursor_set = false;
    sm->st_new_head = sm->st_new_n = 0;
    sm->st_leases_delta = 0;
    sm->st_att_n = 0;
    buf_reset(&sm->st_att_keys);
    if (sm->st_auth_open)
        auth_db_free(&sm->st_auth);
    sm->st_auth_open = false;
}

void sm_discard(struct sm *sm)
{
    caches_clear(sm); /* they may hold staged changes */
    staged_reset(sm);
}

/* --- leases and their attached keys --- */

static void lease_key(uint8_t k[LEASE_KEY_LEN], uint64_t id)
{
    k[0] = 'l';
    k[1] = '/';
    put_be64(k + 2, id);
}

/* A lease record: [u64 ttl_ms][owner] (an owner of 0..DDKV_AUTH_NAME_MAX
 * bytes; format 2's records are the ttl alone). */
static bool lease_rec_ok(size_t n)
{
    return n >= 8 && n - 8 <= DDKV_AUTH_NAME_MAX;
}

/* Whether lease id exists, through overlay if non-NULL; its ttl and owner
 * (either may be NULL) if so. */
static int lease_read(struct sm *sm, uint64_t id, struct store_batch *overlay, bool *exists,
                      uint64_t *ttl_ms, auth_name owner, struct errbuf *eb)
{
    uint8_t k[LEASE_KEY_LEN];
    lease_key(k, id);
    struct store_val v;
    int rc = store_get(sm->st, STORE_CF_META, k, sizeof k, overlay, &v, eb);
    *exists = false;
    if (rc == ERR_NOT_FOUND)
        return ERR_OK;
    if (rc)
        return rc;
    if (!lease_rec_ok(v.n)) {
        store_val_release(&v);
        return errf(eb, ERR_CORRUPT, "lease record %llu has %zu bytes, want 8..%u", (unsigned long long)id, v.n,
                    8 + DDKV_AUTH_NAME_MAX);
    }
    *exists = true;
    if (ttl_ms)
        *ttl_ms = get_be64(v.p);
    if (owner) {
        memcpy(owner, v.p + 8, v.n - 8);
        owner[v.n - 8] = 0;
    }
    store_val_release(&v);
    return ERR_OK;
}

/* sm->scratch = the attachment key "k/" + be64 lease + key. */
static int att_key(struct sm *sm, uint64_t lease, const uint8_t *key, size_t klen, struct errbuf *eb)
{
    uint8_t p[ATT_PREFIX_LEN] = {'k', '/'};
    put_be64(p + 2, lease);
    buf_reset(&sm->scratch);
    if (buf_append(&sm->scratch, p, sizeof p) || buf_append(&sm->scratch, key, klen))
        return errf(eb, ERR_NOMEM, "out of memory staging a lease attachment");
    return ERR_OK;
}

/* Attach key to lease: the index key, and the in-memory list of the batch. */
static int att_add(struct sm *sm, uint64_t lease, const uint8_t *key, size_t klen, struct errbuf *eb)
{
    int rc = att_key(sm, lease, key, klen, eb);
    if (rc)
        return rc;
    if (sm->st_att_n == sm->st_att_cap) {
        size_t cap = sm->st_att_cap ? sm->st_att_cap * 2 : 16;
        struct sm_attach *p = realloc(sm->st_att, cap * sizeof *p);
        if (!p)
            return errf(eb, ERR_NOMEM, "out of memory staging a lease attachment");
        sm->st_att = p;
        sm->st_att_cap = cap;
    }
    size_t off = sm->st_att_keys.len;
    if (buf_append(&sm->st_att_keys, key, klen))
        return errf(eb, ERR_NOMEM, "out of memory staging a lease attachment");
    sm->st_att[sm->st_att_n++] = (struct sm_attach){.lease = lease, .off = off, .len = klen};
    store_batch_put(sm->batch, STORE_CF_META, sm->scratch.data, sm->scratch.len, "", 0);
    return ERR_OK;
}

/* Detach key from lease. A stale entry may stay in st_att: whoever reads it
 * checks the key's record. */
static int att_del(struct sm *sm, uint64_t lease, const uint8_t *key, size_t klen, struct errbuf *eb)
{
    int rc = att_key(sm, lease, key, klen, eb);
    if (rc)
        return rc;
    store_batch_delete(sm->batch, STORE_CF_META, sm->scratch.data, sm->scratch.len);
    return ERR_OK;
}

/* --- key changes --- */

/* A key's record in the staged view; *exists false if absent. The value is
 * not kept (r->value NULL). */
/* The key cache's slot for a key, NULL when the key is too long for one. */
static struct sm_key_slot *key_slot(struct sm *sm, const uint8_t *key, size_t klen)
{
    if (klen > SM_KEY_CACHE_KEY)
        return NULL;
    uint64_t h = 0xcbf29ce484222325ull; /* FNV-1a */
    for (size_t i = 0; i < klen; i++)
        h = (h ^ key[i]) * 0x100000001b3ull;
    return &sm->key_cache[(h ^ (h >> 29)) & (SM_KEY_CACHE - 1)];
}

/* The staged view's word on key is now this record (r NULL: absent). */
static void key_cache_set(struct sm *sm, const uint8_t *key, size_t klen, const struct kv_record *r)
{
    struct sm_key_slot *slot = key_slot(sm, key, klen);
    if (!slot)
        return;
    slot->gen = sm->cache_gen;
    slot->exists = r != NULL;
    slot->klen = (uint8_t)klen;
    memcpy(slot->key, key, klen);
    if (r) {
        slot->create_rev = r->create_rev;
        slot->mod_rev = r->mod_rev;
        slot->version = r->version;
        slot->lamport = r->lamport;
        slot->lease = r->lease;
    }
}

/* A key's record header (value NULL) in the staged view; *exists false when
 * there is none. The key cache answers first. */
static int rec_read(struct sm *sm, const uint8_t *key, size_t klen, bool *exists, struct kv_record *r,
                    struct errbuf *eb)
{
    memset(r, 0, sizeof *r);
    *exists = false;
    struct sm_key_slot *slot = key_slot(sm, key, klen);
    if (slot && slot->gen == sm->cache_gen && slot->klen == klen && memcmp(slot->key, key, klen) == 0) {
        if (slot->exists) {
            r->create_rev = slot->create_rev;
            r->mod_rev = slot->mod_rev;
            r->version = slot->version;
            r->lamport = slot->lamport;
            r->lease = slot->lease;
            *exists = true;
        }
        return ERR_OK;
    }
    struct store_val v;
    int rc = store_get(sm->st, STORE_CF_DATA, key, klen, sm->batch, &v, eb);
    if (rc == ERR_NOT_FOUND) {
        key_cache_set(sm, key, klen, NULL);
        return ERR_OK;
    }
    if (rc)
        return rc;
    rc = kv_record_decode(v.p, v.n, r);
    store_val_release(&v);
    if (rc)
        return errf(eb, rc, "stored record for a key is corrupt");
    r->value = NULL;
    r->vlen = 0;
    *exists = true;
    key_cache_set(sm, key, klen, r);
    return ERR_OK;
}

static void emit(struct sm *sm, const struct sm_event *ev)
{
    if (sm->on_event)
        sm->on_event(sm->event_ctx, ev);
}

/* Put key at index with lease (which the caller has checked exists): the
 * record, the lease attachment, the counts, the event. *existed: the key was
 * there before. */
static int key_put(struct sm *sm, uint64_t index, uint64_t lamport, const uint8_t *key, size_t klen,
                   const uint8_t *val, size_t vlen, uint64_t lease, bool *existed, struct errbuf *eb)
{
    bool exists;
    struct kv_record prev;
    int rc = rec_read(sm, key, klen, &exists, &prev, eb);
    if (rc)
        return rc;
    if (exists && prev.lease != 0 && prev.lease != lease && (rc = att_del(sm, prev.lease, key, klen, eb)))
        return rc;
    if (lease != 0 && (!exists || prev.lease != lease) && (rc = att_add(sm, lease, key, klen, eb)))
        return rc;
    struct sm_event ev = {.kind = DDKV_OP_PUT, .key = key, .klen = klen, .val = val, .vlen = vlen,
                          .create_rev = exists ? prev.create_rev : index, .mod_rev = index,
                          .version = exists ? prev.version + 1 : 1, .lamport = lamport, .lease = lease};
    uint8_t hdr[KV_RECORD_HEADER];
    hdr[0] = 1;
    put_be64(hdr + 1, ev.create_rev);
    put_be64(hdr + 9, ev.mod_rev);
    put_be64(hdr + 17, ev.version);
    put_be64(hdr + 25, ev.lamport);
    put_be64(hdr + 33, ev.lease);
    store_batch_put2(sm->batch, STORE_CF_DATA, key, klen, hdr, sizeof hdr, val, vlen);
    struct kv_record now_r = {.create_rev = ev.create_rev, .mod_rev = ev.mod_rev, .version = ev.version,
                              .lamport = ev.lamport, .lease = ev.lease};
    key_cache_set(sm, key, klen, &now_r);
    if (!exists)
        sm->st_keys_delta++;
    sm->st_revision = index;
    *existed = exists;
    emit(sm, &ev);
    return ERR_OK;
}

/* Delete key at index if it exists and, when only_lease is nonzero, is
 * attached to that lease. *deleted says whether it was. */
static int key_delete(struct sm *sm, uint64_t index, uint64_t lamport, const uint8_t *key, size_t klen,
                      uint64_t only_lease, bool *deleted, struct errbuf *eb)
{
    bool exists;
    struct kv_record prev;
    int rc = rec_read(sm, key, klen, &exists, &prev, eb);
    *deleted = false;
    if (rc || !exists || (only_lease != 0 && prev.lease != only_lease))
        return rc;
    if (prev.lease != 0 && (rc = att_del(sm, prev.lease, key, klen, eb)))
        return rc;
    store_batch_delete(sm->batch, STORE_CF_DATA, key, klen);
    key_cache_set(sm, key, klen, NULL);
    sm->st_keys_delta--;
    sm->st_revision = index;
    *deleted = true;
    struct sm_event ev = {.kind = DDKV_OP_DELETE, .key = key, .klen = klen, .val = NULL, .vlen = 0,
                          .create_rev = 0, .mod_rev = index, .version = 0, .lamport = lamport,
                          .lease = prev.lease};
    emit(sm, &ev);
    return ERR_OK;
}

/* Whether lease (nonzero) exists in the staged view. */
static int lease_exists(struct sm *sm, uint64_t lease, bool *exists, struct errbuf *eb)
{
    return lease_read(sm, lease, sm->batch, exists, NULL, NULL, eb);
}

/* --- the operations --- */

static int apply_put_delete(struct sm *sm, uint64_t index, uint64_t lamport, const struct sm_op *op,
                            struct sm_result *res, struct errbuf *eb)
{
    int rc;
    res->lamport = lamport;
    if (op->kind == SM_OP_PUT) {
        if (op->lease != 0) {
            bool exists;
            if ((rc = lease_exists(sm, op->lease, &exists, eb)))
                return rc;
            if (!exists) {
                res->error = SM_ERR_NO_LEASE;
                return ERR_OK;
            }
        }
        if ((rc = key_put(sm, index, lamport, op->key, op->klen, op->val, op->vlen, op->lease, &res->found,
                          eb)))
            return rc;
        res->revision = index;
        return ERR_OK;
    }
    if ((rc = key_delete(sm, index, lamport, op->key, op->klen, 0, &res->found, eb)))
        return rc;
    res->revision = res->found ? index : 0;
    return ERR_OK;
}

/* Bytewise order: memcmp, then the shorter first. */
static int bytes_cmp(const uint8_t *a, size_t an, const uint8_t *b, size_t bn)
{
    size_t n = an < bn ? an : bn;
    int c = n ? memcmp(a, b, n) : 0;
    if (c)
        return c < 0 ? -1 : 1;
    return an == bn ? 0 : an < bn ? -1 : 1;
}

/* Whether compare c holds in the staged view. */
static int cmp_eval(struct sm *sm, const struct sm_cmp *c, bool *holds, struct errbuf *eb)
{
    struct store_val v;
    struct kv_record r = {0};
    int rc = store_get(sm->st, STORE_CF_DATA, c->key, c->klen, sm->batch, &v, eb);
    if (rc && rc != ERR_NOT_FOUND)
        return rc;
    bool exists = rc == ERR_OK;
    if (exists && (rc = kv_record_decode(v.p, v.n, &r))) {
        store_val_release(&v);
        return errf(eb, rc, "stored record for a key is corrupt");
    }
    int order; /* the key's field against the operand */
    if (c->field == DDKV_CMP_VALUE) {
        if (!exists) {
            /* an absent value equals nothing and is neither below nor above anything */
            *holds = c->cmp == DDKV_CMP_NE;
            return ERR_OK;
        }
        order = bytes_cmp(r.value, r.vlen, c->val, c->vlen);
    } else {
        uint64_t x = c->field == DDKV_CMP_VERSION ? r.version
                     : c->field == DDKV_CMP_CREATE_REV ? r.create_rev : r.mod_rev;
        order = x == c->num ? 0 : x < c->num ? -1 : 1;
    }
    if (exists)
        store_val_release(&v);
    switch (c->cmp) {
    case DDKV_CMP_EQ: *holds = order == 0; break;
    case DDKV_CMP_NE: *holds = order != 0; break;
    case DDKV_CMP_LT: *holds = order < 0; break;
    default: *holds = order > 0; break;
    }
    return ERR_OK;
}

static int apply_txn(struct sm *sm, uint64_t index, uint64_t lamport, const struct sm_txn *t,
                     struct sm_result *res, struct errbuf *eb)
{
    ASSERT(t != NULL && t->ncmp <= SM_TXN_MAX && t->nops[0] <= SM_TXN_MAX && t->nops[1] <= SM_TXN_MAX);
    ASSERT(t->ncmp == 0 || t->cmps != NULL);
    int rc;
    bool ok = true;
    res->lamport = lamport;
    for (size_t i = 0; i < t->ncmp && ok; i++) {
        const struct sm_cmp *c = &t->cmps[i];
        ASSERT(c->field <= DDKV_CMP_MOD_REV && c->cmp <= DDKV_CMP_GT);
        if ((rc = cmp_eval(sm, c, &ok, eb)))
            return rc;
    }
    const struct sm_txn_op *ops = t->ops[ok ? 0 : 1];
    size_t n = t->nops[ok ? 0 : 1];
    ASSERT(n == 0 || ops != NULL);
    /* Every lease the branch names must exist before anything changes. */
    for (size_t i = 0; i < n; i++) {
        ASSERT(ops[i].kind == DDKV_OP_PUT || ops[i].kind == DDKV_OP_DELETE);
        if (ops[i].kind != DDKV_OP_PUT || ops[i].lease == 0)
            continue;
        bool exists;
        if ((rc = lease_exists(sm, ops[i].lease, &exists, eb)))
            return rc;
        if (!exists) {
            res->error = SM_ERR_NO_LEASE;
            return ERR_OK;
        }
    }
    res->succeeded = ok;
    bool changed = false;
    for (size_t i = 0; i < n; i++) {
        const struct sm_txn_op *o = &ops[i];
        bool existed, deleted = false;
        if (o->kind == DDKV_OP_PUT)
            rc = key_put(sm, index, lamport, o->key, o->klen, o->val, o->vlen, o->lease, &existed, eb);
        else
            rc = key_delete(sm, index, lamport, o->key, o->klen, 0, &deleted, eb);
        if (rc)
            return rc;
        changed = changed || o->kind == DDKV_OP_PUT || deleted;
    }
    res->revision = changed ? index : sm->st_revision;
    return ERR_OK;
}

/* Member incarnations: "i/" + be64 member id -> be64 cluster id + be64
 * incarnation of its data dir, in meta (so snapshots carry them; a cluster
 * restored from a backup has another id, so the old records count as none). Recorded once (the first proposal
 * applied wins: a second one for the same member is a no-op), forgotten by
 * an incarnation of 0 (a member removed before it is added again). */
#define MEMBER_KEY_LEN 10
static void member_key(uint8_t k[MEMBER_KEY_LEN], uint64_t id)
{
    k[0] = 'i';
    k[1] = '/';
    put_be64(k + 2, id);
}

static void apply_member_inc(struct sm *sm, const struct sm_op *op, struct sm_result *res, uint64_t lamport)
{
    uint8_t k[MEMBER_KEY_LEN], v[16];
    member_key(k, op->member_id);
    res->lamport = lamport;
    if (op->incarnation == 0) {
        store_batch_delete(sm->batch, STORE_CF_META, k, sizeof k);
        return;
    }
    struct store_val cur;
    struct errbuf eb;
    if (store_get(sm->st, STORE_CF_META, k, sizeof k, sm->batch, &cur, &eb) == ERR_OK) {
        bool same_cluster = cur.n == 16 && get_be64(cur.p) == op->member_cluster;
        store_val_release(&cur);
        if (same_cluster) {
            res->found = true; /* already recorded: kept */
            return;
        }
    }
    put_be64(v, op->member_cluster);
    put_be64(v + 8, op->incarnation);
    store_batch_put(sm->batch, STORE_CF_META, k, sizeof k, v, sizeof v);
}

/* The cluster version moves up, never down; reaching 0.2 stamps format 4 in
 * the same batch (kv/sm.h). */
static void apply_cluster_version(struct sm *sm, const struct sm_op *op, struct sm_result *res, uint64_t lamport)
{
    res->lamport = lamport;
    if (op->version <= sm->st_cluster_version)
        return;
    res->found = true;
    sm->st_cluster_version = op->version;
    meta_put_u64(sm->batch, META_CLUSTER_VERSION, op->version);
    if (op->version >= VERSION_FORMAT_4)
        meta_put_u64(sm->batch, META_FORMAT, 4);
}

/* Delete up to op->limit keys under the prefix op->key, in key order, all at
 * this index. The keys are gathered first (through the open batch, so keys
 * staged earlier in it count) and deleted after: the merged iterator must
 * not see the batch change under it. */
static int apply_delete_prefix(struct sm *sm, uint64_t index, uint64_t lamport, const struct sm_op *op,
                               struct sm_result *res, struct errbuf *eb)
{
    res->lamport = lamport;
    struct buf keys = BUF_INIT; /* [u32 length][bytes]... */
    uint32_t n = 0;
    struct store_iter *it = store_iter_new_overlay(sm->st, STORE_CF_DATA, sm->batch);
    store_iter_seek(it, op->key, op->klen);
    for (; store_iter_valid(it); store_iter_next(it)) {
        size_t kn;
        const uint8_t *k = store_iter_key(it, &kn);
        if (kn < op->klen || memcmp(k, op->key, op->klen) != 0)
            break;
        if (n == op->limit) {
            res->succeeded = true; /* more are left */
            break;
        }
        uint8_t len[4];
        put_be32(len, (uint32_t)kn);
        buf_append(&keys, len, sizeof len);
        buf_append(&keys, k, kn);
        n++;
    }
    int rc = store_iter_status(it, eb);
    store_iter_free(it);
    for (size_t at = 0; rc == ERR_OK && at < keys.len;) {
        uint32_t kn = get_be32(keys.data + at);
        bool deleted;
        if ((rc = key_delete(sm, index, lamport, keys.data + at + 4, kn, 0, &deleted, eb)))
            break;
        ASSERT(deleted);
        res->count++;
        at += 4 + (size_t)kn;
    }
    buf_free(&keys);
    if (rc)
        return rc;
    res->found = res->count > 0;
    res->revision = res->found ? index : 0;
    return ERR_OK;
}

int sm_member_incarnation(struct sm *sm, uint64_t cluster_id, uint64_t id, uint64_t *inc, struct errbuf *eb)
{
    uint8_t k[MEMBER_KEY_LEN];
    member_key(k, id);
    struct store_val v;
    *inc = 0;
    int rc = store_get(sm->st, STORE_CF_META, k, sizeof k, NULL, &v, eb);
    if (rc == ERR_NOT_FOUND)
        return ERR_OK;
    if (rc)
        return rc;
    if (v.n == 16)
        *inc = get_be64(v.p) == cluster_id ? get_be64(v.p + 8) : 0;
    else
        rc = errf(eb, ERR_CORRUPT, "member incarnation record has %zu bytes, want 16", v.n);
    store_val_release(&v);
    return rc;
}

static int apply_grant(struct sm *sm, uint64_t index, uint64_t lamport, const struct sm_op *op,
                       struct sm_result *res)
{
    uint8_t k[LEASE_KEY_LEN], v[8 + DDKV_AUTH_NAME_MAX];
    ASSERT(op->owner_len <= DDKV_AUTH_NAME_MAX); /* cmd_decode refuses more */
    lease_key(k, index);
    put_be64(v, op->lease_ttl_ms);
    if (op->owner_len)
        memcpy(v + 8, op->owner, op->owner_len);
    store_batch_put(sm->batch, STORE_CF_META, k, sizeof k, v, 8 + op->owner_len);
    sm->st_leases_delta++;
    res->lease_id = index;
    res->lease_ttl_ms = op->lease_ttl_ms;
    res->lamport = lamport;
    return ERR_OK;
}

/* A key attached to the lease being revoked, staged by the open batch. */
struct att_ref {
    const uint8_t *key;
    size_t klen;
};

static int att_ref_cmp(const void *a, const void *b)
{
    const struct att_ref *x = a, *y = b;
    return bytes_cmp(x->key, x->klen, y->key, y->klen);
}

/* The keys the open batch attached to lease, sorted, without repeats (the
 * caller frees *out). Their bytes stay in st_att_keys, which a revoke does
 * not grow. */
static int att_staged(struct sm *sm, uint64_t lease, struct att_ref **out, size_t *n, struct errbuf *eb)
{
    size_t m = 0;
    *out = NULL;
    *n = 0;
    for (size_t i = 0; i < sm->st_att_n; i++)
        m += sm->st_att[i].lease == lease;
    if (m == 0)
        return ERR_OK;
    struct att_ref *r = malloc(m * sizeof *r);
    if (!r)
        return errf(eb, ERR_NOMEM, "out of memory revoking a lease");
    m = 0;
    for (size_t i = 0; i < sm->st_att_n; i++)
        if (sm->st_att[i].lease == lease)
            r[m++] = (struct att_ref){.key = sm->st_att_keys.data + sm->st_att[i].off, .klen = sm->st_att[i].len};
    qsort(r, m, sizeof *r, att_ref_cmp);
    size_t u = 0;
    for (size_t i = 0; i < m; i++)
        if (u == 0 || att_ref_cmp(&r[u - 1], &r[i]) != 0)
            r[u++] = r[i];
    *out = r;
    *n = u;
    return ERR_OK;
}
/* The stored attachments of a lease: keys from prefix (k/<lease>) up to
 * upper (k/<lease+1>, or past every k/ key for the last lease id); returns
 * upper's length. */
static size_t att_range(uint64_t lease, uint8_t prefix[ATT_PREFIX_LEN], uint8_t upper[ATT_PREFIX_LEN])
{
    prefix[0] = upper[0] = 'k';
    prefix[1] = upper[1] = '/';
    put_be64(prefix + 2, lease);
    if (lease == UINT64_MAX) {
        upper[1] = '/' + 1;
        return 2;
    }
    put_be64(upper + 2, lease + 1);
    return ATT_PREFIX_LEN;
}


/* Delete the lease and every key attached to it, in key order: the stored
 * attachment index merged with the batch's own attachments, each checked
 * against the key's staged record (the batch may have moved it on). */
static int apply_revoke(struct sm *sm, uint64_t index, uint64_t lamport, uint64_t lease,
                        struct sm_result *res, struct errbuf *eb)
{
    bool exists;
    res->lamport = lamport;
    int rc = lease_exists(sm, lease, &exists, eb);
    if (rc || !exists)
        return rc;
    res->found = true;
    res->lease_id = lease;
    struct att_ref *staged;
    size_t ns, si = 0;
    if ((rc = att_staged(sm, lease, &staged, &ns, eb)))
        return rc;
    uint8_t prefix[ATT_PREFIX_LEN], upper[ATT_PREFIX_LEN];
    size_t upper_n = att_range(lease, prefix, upper);
    struct store_iter *it = store_iter_new(sm->st, STORE_CF_META, upper, upper_n);
    store_iter_seek(it, prefix, sizeof prefix);
    bool changed = false;
    for (;;) {
        const uint8_t *key = NULL;
        size_t klen = 0;
        bool stored = store_iter_valid(it), from_iter = false;
        if (stored) {
            size_t kn;
            const uint8_t *k = store_iter_key(it, &kn);
            if (kn < ATT_PREFIX_LEN || memcmp(k, prefix, ATT_PREFIX_LEN) != 0) {
                rc = errf(eb, ERR_CORRUPT, "lease attachment key of %zu bytes is malformed", kn);
                break;
            }
            key = k + ATT_PREFIX_LEN;
            klen = kn - ATT_PREFIX_LEN;
        }
        if (!stored && si == ns)
            break;
        int c = !stored ? 1 : si == ns ? -1 : bytes_cmp(key, klen, staged[si].key, staged[si].klen);
        if (c <= 0) {
            from_iter = true;
            if (c == 0)
                si++;
        } else {
            key = staged[si].key;
            klen = staged[si].klen;
            si++;
        }
        bool deleted;
        if ((rc = key_delete(sm, index, lamport, key, klen, lease, &deleted, eb)))
            break;
        changed = changed || deleted;
        if (from_iter)
            store_iter_next(it);
    }
    if (!rc)
        rc = store_iter_status(it, eb);
    store_iter_free(it);
    free(staged);
    if (rc)
        return rc;
    uint8_t k[LEASE_KEY_LEN];
    lease_key(k, lease);
    store_batch_delete(sm->batch, STORE_CF_META, k, sizeof k);
    sm->st_leases_delta--;
    res->revision = changed ? index : 0;
    return ERR_OK;
}

/* A change of the auth state, on the batch's own copy of it (made at the
 * first change of the batch), so that the committed copy permission checks
 * read never shows a change before it is durable. */
static int apply_auth(struct sm *sm, uint64_t index, uint64_t lamport, const struct sm_auth *a,
                      struct sm_result *res, struct errbuf *eb)
{
    ASSERT(a != NULL);
    res->lamport = lamport;
    if (!sm->st_auth_open) {
        if (auth_db_clone(&sm->st_auth, &sm->auth))
            return errf(eb, ERR_NOMEM, "out of memory staging an auth change");
        sm->st_auth_open = true;
    }
    int refused;
    int rc = auth_apply(&sm->st_auth, sm->batch, index, a, &refused, eb);
    if (rc)
        return rc;
    res->error = refused;
    res->revision = refused ? 0 : index;
    return ERR_OK;
}

const char *sm_error_text(int error, uint32_t *wire_code)
{
    *wire_code = DDKV_WERR_BAD_REQUEST;
    switch (error) {
    case SM_ERR_NO_LEASE: return "the lease does not exist (expired or revoked)";
    case SM_ERR_AUTH_EXISTS: return "it exists already";
    case SM_ERR_AUTH_NO_USER: *wire_code = DDKV_WERR_NOT_FOUND; return "no such user";
    case SM_ERR_AUTH_NO_ROLE: *wire_code = DDKV_WERR_NOT_FOUND; return "no such role";
    case SM_ERR_AUTH_NO_GRANT: *wire_code = DDKV_WERR_NOT_FOUND; return "not granted";
    case SM_ERR_AUTH_NO_ROOT:
        return "auth enable needs a user 'root' holding the role 'root' (ddkv user add root; "
               "ddkv user grant root root)";
    case SM_ERR_AUTH_ROOT_KEPT:
        return "while auth is enabled the user 'root' must exist and hold the role 'root'; the role 'root' "
               "itself (built in, granting everything) cannot be added, removed or changed";
    case SM_ERR_AUTH_INVALID: return "bad name, prefix, permission or password hash";
    case SM_ERR_AUTH_LIMIT: return "too many users, roles or grants";
    case SM_ERR_AUTH_CHANGED:
        *wire_code = DDKV_WERR_UNAVAILABLE;
        return "users or permissions changed while this write was in flight; it was not applied (retry: it is "
               "checked again)";
    default: *wire_code = DDKV_WERR_INTERNAL; return "unknown result error";
    }
}

int sm_stage(struct sm *sm, uint64_t index, uint64_t lamport, const struct sm_op *op,
             struct sm_result *res, struct errbuf *eb)
{
    ASSERT(index == sm->st_index + 1);
    ASSERT(op->kind >= SM_OP_PUT && op->kind <= SM_OP__MAX);
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
                res->succeeded = sess.succeeded;
                res->error = sess.error;
                res->revision = sess.revision;
                res->lamport = sess.lamport;
                res->lease_id = sess.lease_id;
                res->lease_ttl_ms = sess.lease_ttl_ms;
                if (sess.kind == SM_OP_DELETE_PREFIX) {
                    res->count = sess.lease_id;
                    res->lease_id = 0;
                }
            } else {
                res->stale = true;
            }
        }
    }
    const struct auth_db *adb = sm->st_auth_open ? &sm->st_auth : &sm->auth;
    if (apply && op->auth_checked && adb->enabled && adb->rev > op->auth_rev) {
        /* Admitted under permissions an auth change has replaced since: the
         * write is not applied, and not kept in the session either, so that
         * its retry (the same seq) is admitted afresh. */
        res->error = SM_ERR_AUTH_CHANGED;
        apply = false;
    }
    if (apply) {
        switch (op->kind) {
        case SM_OP_PUT:
        case SM_OP_DELETE: rc = apply_put_delete(sm, index, lamport, op, res, eb); break;
        case SM_OP_TXN: rc = apply_txn(sm, index, lamport, op->txn, res, eb); break;
        case SM_OP_LEASE_GRANT: rc = apply_grant(sm, index, lamport, op, res); break;
        case SM_OP_AUTH: rc = apply_auth(sm, index, lamport, op->auth, res, eb); break;
        case SM_OP_MEMBER_INC: apply_member_inc(sm, op, res, lamport); rc = ERR_OK; break;
        case SM_OP_CLUSTER_VERSION: apply_cluster_version(sm, op, res, lamport); rc = ERR_OK; break;
        case SM_OP_DELETE_PREFIX: rc = apply_delete_prefix(sm, index, lamport, op, res, eb); break;
        default: rc = apply_revoke(sm, index, lamport, op->lease, res, eb); break;
        }
        if (rc)
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
    uint64_t leases = (uint64_t)((int64_t)sm->leases + sm->st_leases_delta);
    meta_put_u64(sm->batch, META_TIME_MS, sm->st_time_ms);
    meta_put_u64(sm->batch, META_SESSIONS, sessions);
    meta_put_u64(sm->batch, META_LEASES, leases);
    int rc = store_write(sm->st, sm->batch, sync, eb);
    if (rc) {
        sm_discard(sm);
        return rc;
    }
    sm->applied_index = sm->st_index;
    sm->applied_lamport = sm->st_lamport;
    sm->revision = sm->st_revision;
    sm->cluster_version = sm->st_cluster_version;
    sm->keys = keys;
    sm->applied_time_ms = sm->st_time_ms;
    sm->sessions = sessions;
    sm->leases = leases;
    sm->exp_floor = sm->st_exp_floor;
    if (sm->st_auth_open) {
        auth_db_free(&sm->auth);
        sm->auth = sm->st_auth;
        memset(&sm->st_auth, 0, sizeof sm->st_auth);
        sm->st_auth_open = false;
    }
    staged_reset(sm); /* the staged state now equals the durable state (so does the cache) */
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

int sm_lease_foreach(struct sm *sm, int (*cb)(void *ctx, uint64_t id, uint64_t ttl_ms), void *ctx,
                     struct errbuf *eb)
{
    struct store_iter *it = store_iter_new(sm->st, STORE_CF_META, "l0", 2); /* '0' follows '/' */
    int rc = ERR_OK;
    for (store_iter_seek(it, "l/", 2); store_iter_valid(it); store_iter_next(it)) {
        size_t kn, vn;
        const uint8_t *k = store_iter_key(it, &kn);
        const uint8_t *v = store_iter_value(it, &vn);
        if (kn != LEASE_KEY_LEN || !lease_rec_ok(vn)) {
            rc = errf(eb, ERR_CORRUPT, "lease record (key %zu bytes, value %zu) is malformed", kn, vn);
            break;
        }
        if ((rc = cb(ctx, get_be64(k + 2), get_be64(v))))
            break;
    }
    if (!rc)
        rc = store_iter_status(it, eb);
    store_iter_free(it);
    return rc;
}

int sm_lease_keys_foreach(struct sm *sm, uint64_t lease, int (*cb)(void *ctx, const uint8_t *key, size_t klen),
                          void *ctx, struct errbuf *eb)
{
    uint8_t prefix[ATT_PREFIX_LEN], upper[ATT_PREFIX_LEN];
    size_t upper_n = att_range(lease, prefix, upper);
    struct store_iter *it = store_iter_new(sm->st, STORE_CF_META, upper, upper_n);
    int rc = ERR_OK;
    for (store_iter_seek(it, prefix, sizeof prefix); store_iter_valid(it); store_iter_next(it)) {
        size_t kn;
        const uint8_t *k = store_iter_key(it, &kn);
        if (kn <= ATT_PREFIX_LEN || memcmp(k, prefix, ATT_PREFIX_LEN) != 0) {
            rc = errf(eb, ERR_CORRUPT, "lease attachment key of %zu bytes is malformed", kn);
            break;
        }
        if ((rc = cb(ctx, k + ATT_PREFIX_LEN, kn - ATT_PREFIX_LEN)))
            break;
    }
    if (!rc)
        rc = store_iter_status(it, eb);
    store_iter_free(it);
    return rc;
}

int sm_lease_get(struct sm *sm, uint64_t id, uint64_t *ttl_ms, auth_name owner, struct errbuf *eb)
{
    bool exists;
    int rc = lease_read(sm, id, NULL, &exists, ttl_ms, owner, eb);
    if (rc)
        return rc;
    return exists ? ERR_OK : ERR_NOT_FOUND;
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
