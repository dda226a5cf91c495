/* Helpers for the state-machine tests of transactions and leases: a member
 * (data dir, store, state machine), staging each kind of command, reading
 * keys back, recording change events, and byte-level checks of the meta and
 * data column families (identical members, consistent lease indexes).
 *
 * Everything here is static inline so each test file takes what it uses. */
#ifndef DDKV_TEST_KV_SM_FIXTURE_H
#define DDKV_TEST_KV_SM_FIXTURE_H

#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ddkv/wire.h"
#include "harness.h"
#include "kv/sm.h"
#include "kv/store.h"
#include "util/buf.h"

/* One recorded change event, with its bytes copied. */
#define FX_MAX_EVENTS 4096
struct fx_event {
    uint8_t kind;
    char key[40];
    char val[40];
    uint64_t create_rev, mod_rev, version, lamport, lease;
};

struct fx_events {
    struct fx_event e[FX_MAX_EVENTS];
    size_t n;
};

/* One member: a data dir, its store and its state machine, and the events
 * its state machine reported. */
struct member {
    char dir[256];
    struct store *st;
    struct sm sm;
    struct fx_events *ev; /* NULL: events not recorded */
};

static inline void fx_on_event(void *ctx, const struct sm_event *ev)
{
    struct fx_events *log = ctx;
    cr_assert_lt(log->n, FX_MAX_EVENTS);
    cr_assert_lt(ev->klen, sizeof log->e[0].key);
    cr_assert_lt(ev->vlen, sizeof log->e[0].val);
    struct fx_event *x = &log->e[log->n++];
    memset(x, 0, sizeof *x);
    x->kind = ev->kind;
    memcpy(x->key, ev->key, ev->klen);
    if (ev->vlen)
        memcpy(x->val, ev->val, ev->vlen);
    x->create_rev = ev->create_rev;
    x->mod_rev = ev->mod_rev;
    x->version = ev->version;
    x->lamport = ev->lamport;
    x->lease = ev->lease;
}

static inline void member_open(struct member *m)
{
    struct errbuf eb;
    cr_assert_eq(store_open(&m->st, m->dir, NULL, &eb), ERR_OK, "%s", eb.msg);
    cr_assert_eq(sm_open(&m->sm, m->st, &eb), ERR_OK, "%s", eb.msg);
    if (m->ev) {
        m->sm.on_event = fx_on_event;
        m->sm.event_ctx = m->ev;
    }
}

static inline void member_close(struct member *m)
{
    sm_close(&m->sm);
    store_close(m->st);
    m->st = NULL;
}

static inline void member_init(struct member *m, const char *tag, bool events)
{
    memset(m, 0, sizeof *m);
    cr_assert_eq(harness_tmpdir(m->dir, sizeof m->dir, tag), 0);
    if (events) {
        m->ev = calloc(1, sizeof *m->ev);
        cr_assert_not_null(m->ev);
    }
    member_open(m);
}

static inline void member_fini(struct member *m)
{
    if (m->st)
        member_close(m);
    if (m->dir[0])
        harness_rmrf(m->dir);
    m->dir[0] = 0;
    free(m->ev);
    m->ev = NULL;
}

static inline void member_restart(struct member *m)
{
    member_close(m);
    member_open(m);
}

/* Stage op as the member's next entry with the next Lamport time. */
static inline struct sm_result fx_stage(struct member *m, struct sm_op op)
{
    struct sm_result r;
    struct errbuf eb;
    uint64_t lamport = op.kind == SM_OP_NOOP ? 0 : m->sm.st_lamport + 1;
    cr_assert_eq(sm_stage(&m->sm, m->sm.st_index + 1, lamport, &op, &r, &eb), ERR_OK, "%s", eb.msg);
    return r;
}

static inline struct sm_op fx_put_op(const char *k, const char *v, uint64_t lease)
{
    return (struct sm_op){.kind = SM_OP_PUT, .key = (const uint8_t *)k, .klen = strlen(k),
                          .val = (const uint8_t *)v, .vlen = strlen(v), .lease = lease};
}

static inline struct sm_op fx_del_op(const char *k)
{
    return (struct sm_op){.kind = SM_OP_DELETE, .key = (const uint8_t *)k, .klen = strlen(k)};
}

static inline struct sm_result fx_put(struct member *m, const char *k, const char *v, uint64_t lease)
{
    return fx_stage(m, fx_put_op(k, v, lease));
}

static inline struct sm_result fx_del(struct member *m, const char *k)
{
    return fx_stage(m, fx_del_op(k));
}

static inline struct sm_result fx_grant(struct member *m, uint64_t ttl_ms)
{
    return fx_stage(m, (struct sm_op){.kind = SM_OP_LEASE_GRANT, .lease_ttl_ms = ttl_ms});
}

static inline struct sm_result fx_revoke(struct member *m, uint64_t lease)
{
    return fx_stage(m, (struct sm_op){.kind = SM_OP_LEASE_REVOKE, .lease = lease});
}

static inline void fx_commit(struct member *m)
{
    struct errbuf eb;
    cr_assert_eq(sm_commit(&m->sm, false, &eb), ERR_OK, "%s", eb.msg);
}

/* Compares and operations, built with string keys and values. */
static inline struct sm_cmp fx_cmp_val(const char *k, enum ddkv_cmp_op cmp, const char *v)
{
    return (struct sm_cmp){.key = (const uint8_t *)k, .klen = strlen(k), .field = DDKV_CMP_VALUE,
                           .cmp = (uint8_t)cmp, .val = (const uint8_t *)v, .vlen = strlen(v)};
}

static inline struct sm_cmp fx_cmp_num(const char *k, enum ddkv_cmp_field f, enum ddkv_cmp_op cmp,
                                       uint64_t num)
{
    return (struct sm_cmp){.key = (const uint8_t *)k, .klen = strlen(k), .field = (uint8_t)f,
                           .cmp = (uint8_t)cmp, .num = num};
}

static inline struct sm_txn_op fx_tput(const char *k, const char *v, uint64_t lease)
{
    return (struct sm_txn_op){.kind = DDKV_OP_PUT, .key = (const uint8_t *)k, .klen = strlen(k),
                              .val = (const uint8_t *)v, .vlen = strlen(v), .lease = lease};
}

static inline struct sm_txn_op fx_tdel(const char *k)
{
    return (struct sm_txn_op){.kind = DDKV_OP_DELETE, .key = (const uint8_t *)k, .klen = strlen(k)};
}

/* Stage a TXN with the given client session (client 0: none). */
static inline struct sm_result fx_txn_s(struct member *m, const struct sm_cmp *cmps, size_t ncmp,
                                        const struct sm_txn_op *ok, size_t nok, const struct sm_txn_op *ko,
                                        size_t nko, uint64_t client, uint64_t seq)
{
    struct sm_txn t = {.cmps = cmps, .ncmp = ncmp, .ops = {ok, ko}, .nops = {nok, nko}};
    return fx_stage(m, (struct sm_op){.kind = SM_OP_TXN, .txn = &t, .client_id = client, .seq = seq});
}

static inline struct sm_result fx_txn(struct member *m, const struct sm_cmp *cmps, size_t ncmp,
                                      const struct sm_txn_op *ok, size_t nok, const struct sm_txn_op *ko,
                                      size_t nko)
{
    return fx_txn_s(m, cmps, ncmp, ok, nok, ko, nko, 0, 0);
}

/* The committed record of k; false if absent. The value is copied to val
 * (NUL-terminated) if non-NULL. */
static inline bool fx_get(struct member *m, const char *k, struct kv_record *r, char *val, size_t cap)
{
    struct store_val hold;
    struct errbuf eb;
    struct kv_record tmp;
    if (!r)
        r = &tmp;
    int rc = sm_get(&m->sm, (const uint8_t *)k, strlen(k), r, &hold, &eb);
    if (rc == ERR_NOT_FOUND)
        return false;
    cr_assert_eq(rc, ERR_OK, "%s", eb.msg);
    if (val) {
        cr_assert_lt(r->vlen, cap);
        memcpy(val, r->value, r->vlen);
        val[r->vlen] = 0;
    }
    r->value = NULL;
    store_val_release(&hold);
    return true;
}

/* Every key and value of a column family, length-prefixed, in order. */
static inline void fx_dump_cf(struct member *m, enum store_cf cf, struct buf *out)
{
    struct store_iter *it = store_iter_new(m->st, cf, NULL, 0);
    store_iter_seek(it, "", 0);
    for (; store_iter_valid(it); store_iter_next(it)) {
        size_t kn, vn;
        const uint8_t *k = store_iter_key(it, &kn);
        const uint8_t *v = store_iter_value(it, &vn);
        uint8_t len[4];
        put_be32(len, (uint32_t)kn);
        buf_append(out, len, 4);
        buf_append(out, k, kn);
        put_be32(len, (uint32_t)vn);
        buf_append(out, len, 4);
        buf_append(out, v, vn);
    }
    struct errbuf eb;
    cr_assert_eq(store_iter_status(it, &eb), ERR_OK, "%s", eb.msg);
    store_iter_free(it);
}

static inline void fx_assert_same_bytes(struct member *a, struct member *b)
{
    static const enum store_cf cfs[] = {STORE_CF_META, STORE_CF_DATA};
    for (size_t i = 0; i < 2; i++) {
        struct buf x = BUF_INIT, y = BUF_INIT;
        fx_dump_cf(a, cfs[i], &x);
        fx_dump_cf(b, cfs[i], &y);
        cr_assert_eq(x.len, y.len, "column family %d differs in size: %zu vs %zu", (int)cfs[i], x.len, y.len);
        cr_assert(x.len == 0 || memcmp(x.data, y.data, x.len) == 0, "column family %d differs", (int)cfs[i]);
        buf_free(&x);
        buf_free(&y);
    }
}

/* Stored meta keys starting with prefix. */
static inline size_t fx_count_meta(struct member *m, const char *prefix)
{
    size_t n = 0, plen = strlen(prefix);
    struct store_iter *it = store_iter_new(m->st, STORE_CF_META, NULL, 0);
    for (store_iter_seek(it, prefix, plen); store_iter_valid(it); store_iter_next(it)) {
        size_t kn;
        const uint8_t *k = store_iter_key(it, &kn);
        if (kn < plen || memcmp(k, prefix, plen) != 0)
            break;
        n++;
    }
    store_iter_free(it);
    return n;
}

/* The committed lease indexes agree with the records: every "k/" key names a
 * live lease and a key whose record carries it, every key with a lease has
 * its "k/" key, and the counts match what is stored. */
static inline void fx_check_leases(struct member *m)
{
    size_t attached = 0, keys = 0;
    struct store_iter *it = store_iter_new(m->st, STORE_CF_DATA, NULL, 0);
    for (store_iter_seek(it, "", 0); store_iter_valid(it); store_iter_next(it)) {
        size_t kn, vn;
        const uint8_t *k = store_iter_key(it, &kn);
        const uint8_t *v = store_iter_value(it, &vn);
        struct kv_record r;
        cr_assert_eq(kv_record_decode(v, vn, &r), ERR_OK);
        keys++;
        if (r.lease == 0)
            continue;
        attached++;
        uint8_t ak[256];
        cr_assert_lt(kn + 10, sizeof ak);
        ak[0] = 'k';
        ak[1] = '/';
        put_be64(ak + 2, r.lease);
        memcpy(ak + 10, k, kn);
        struct store_val sv;
        struct errbuf eb;
        cr_assert_eq(store_get(m->st, STORE_CF_META, ak, kn + 10, NULL, &sv, &eb), ERR_OK,
                     "a key attached to lease %llu has no index entry", (unsigned long long)r.lease);
        store_val_release(&sv);
        uint64_t ttl;
        cr_assert_eq(sm_lease_get(&m->sm, r.lease, &ttl, NULL, &eb), ERR_OK, "a key is attached to a dead lease");
    }
    store_iter_free(it);
    cr_assert_eq(fx_count_meta(m, "k/"), attached, "%zu attachment keys for %zu attached keys",
                 fx_count_meta(m, "k/"), attached);
    cr_assert_eq(keys, m->sm.keys, "%zu keys stored, count says %llu", keys, (unsigned long long)m->sm.keys);
    cr_assert_eq(fx_count_meta(m, "l/"), m->sm.leases, "%zu leases stored, count says %llu",
                 fx_count_meta(m, "l/"), (unsigned long long)m->sm.leases);
}

#endif
