/* Client sessions in the state machine: a retried write applies exactly once
 * and gets its original result, an older one is refused, sessions expire by
 * entry time (never by a member's own clock), the work per entry is bounded,
 * and every member applying the same log ends with the same bytes however it
 * groups entries into commits. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

#include "harness.h"
#include "kv/sm.h"
#include "kv/store.h"
#include "util/buf.h"

/* One member: a data dir, its store and its state machine. */
struct member {
    char dir[256];
    struct store *st;
    struct sm sm;
};

static struct member m0, m1;

static void member_open(struct member *m, uint64_t ttl_ms)
{
    struct errbuf eb;
    cr_assert_eq(store_open(&m->st, m->dir, NULL, &eb), ERR_OK, "%s", eb.msg);
    cr_assert_eq(sm_open(&m->sm, m->st, &eb), ERR_OK, "%s", eb.msg);
    if (ttl_ms)
        m->sm.session_ttl_ms = ttl_ms;
}

static void member_close(struct member *m)
{
    sm_close(&m->sm);
    store_close(m->st);
    m->st = NULL;
}

static void member_init(struct member *m, const char *tag, uint64_t ttl_ms)
{
    cr_assert_eq(harness_tmpdir(m->dir, sizeof m->dir, tag), 0);
    member_open(m, ttl_ms);
}

static void member_fini(struct member *m)
{
    if (m->st)
        member_close(m);
    if (m->dir[0])
        harness_rmrf(m->dir);
    m->dir[0] = 0;
}

static void setup(void)
{
    member_init(&m0, "sess", 0);
}

static void teardown(void)
{
    member_fini(&m0);
    member_fini(&m1);
}

static struct sm_result stage_at(struct member *m, enum sm_op_kind kind, const char *k, const char *v,
                                 uint64_t client, uint64_t seq, uint64_t time_ms)
{
    struct sm_op op = {.kind = kind, .client_id = client, .seq = seq, .time_ms = time_ms};
    if (kind != SM_OP_NOOP) {
        op.key = (const uint8_t *)k;
        op.klen = strlen(k);
    }
    if (kind == SM_OP_PUT) {
        op.val = (const uint8_t *)v;
        op.vlen = strlen(v);
    }
    struct sm_result r;
    struct errbuf eb;
    uint64_t lamport = kind == SM_OP_NOOP ? 0 : m->sm.st_lamport + 1;
    cr_assert_eq(sm_stage(&m->sm, m->sm.st_index + 1, lamport, &op, &r, &eb), ERR_OK, "%s", eb.msg);
    return r;
}

static struct sm_result put(const char *k, const char *v, uint64_t client, uint64_t seq, uint64_t t)
{
    return stage_at(&m0, SM_OP_PUT, k, v, client, seq, t);
}

static struct sm_result del(const char *k, uint64_t client, uint64_t seq, uint64_t t)
{
    return stage_at(&m0, SM_OP_DELETE, k, NULL, client, seq, t);
}

static void commit_m(struct member *m, bool sync)
{
    struct errbuf eb;
    cr_assert_eq(sm_commit(&m->sm, sync, &eb), ERR_OK, "%s", eb.msg);
}

static void commit(void)
{
    commit_m(&m0, true);
}

/* The committed record of k in m0; false if absent. */
static bool get(const char *k, struct kv_record *r, struct buf *val)
{
    struct store_val hold;
    struct errbuf eb;
    int rc = sm_get(&m0.sm, (const uint8_t *)k, strlen(k), r, &hold, &eb);
    if (rc == ERR_NOT_FOUND)
        return false;
    cr_assert_eq(rc, ERR_OK, "%s", eb.msg);
    buf_reset(val);
    buf_append(val, r->value, r->vlen);
    store_val_release(&hold);
    return true;
}

static bool has_session(struct member *m, uint64_t client, struct sm_session *s)
{
    struct sm_session tmp;
    struct errbuf eb;
    int rc = sm_session_get(&m->sm, client, s ? s : &tmp, &eb);
    if (rc == ERR_NOT_FOUND)
        return false;
    cr_assert_eq(rc, ERR_OK, "%s", eb.msg);
    return true;
}

/* Every key and value of a column family, length-prefixed, in order. */
static void dump_cf(struct member *m, enum store_cf cf, struct buf *out)
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

/* Stored meta keys starting with prefix. */
static size_t count_meta(struct member *m, const char *prefix)
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

/* The stored sessions, their index and the count agree. */
static void check_session_counts(struct member *m)
{
    size_t s = count_meta(m, "s/"), e = count_meta(m, "e/");
    cr_assert_eq(s, e, "%zu sessions but %zu index keys", s, e);
    cr_assert_eq(s, m->sm.sessions, "%zu sessions stored, count says %llu", s,
                 (unsigned long long)m->sm.sessions);
}

TestSuite(sessions, .init = setup, .fini = teardown, .timeout = 120);

Test(sessions, a_retried_put_returns_the_original_result_and_changes_nothing)
{
    struct sm_result first = put("k", "v1", 7, 1, 1000);
    cr_assert_not(first.duplicate);
    cr_assert_not(first.stale);
    cr_assert_eq(first.revision, 1);
    /* A retry in the same batch, carrying a different value. */
    struct sm_result again = put("k", "v2", 7, 1, 1001);
    cr_assert(again.duplicate);
    cr_assert_not(again.stale);
    cr_assert_eq(again.revision, first.revision);
    cr_assert_eq(again.lamport, first.lamport);
    cr_assert_eq(again.found, first.found);
    commit();
    /* And a retry after the commit. */
    struct sm_result later = put("k", "v3", 7, 1, 1002);
    cr_assert(later.duplicate);
    cr_assert_eq(later.revision, 1);
    cr_assert_eq(later.lamport, first.lamport);
    commit();
    struct kv_record r;
    struct buf v = BUF_INIT;
    cr_assert(get("k", &r, &v));
    cr_assert(v.len == 2 && memcmp(v.data, "v1", 2) == 0, "a retry must not change the value");
    cr_assert_eq(r.version, 1);
    cr_assert_eq(r.mod_rev, 1);
    cr_assert_eq(r.lamport, first.lamport);
    cr_assert_eq(m0.sm.revision, 1, "a retry makes no revision");
    cr_assert_eq(m0.sm.applied_index, 3, "a retry still consumes its index");
    cr_assert_eq(m0.sm.sessions, 1);
    /* The next seq applies. */
    struct sm_result next = put("k", "v4", 7, 2, 1003);
    cr_assert_not(next.duplicate);
    cr_assert_eq(next.revision, 4);
    commit();
    cr_assert(get("k", &r, &v));
    cr_assert_eq(r.version, 2);
    check_session_counts(&m0);
    buf_free(&v);
}

Test(sessions, an_older_seq_is_stale_and_changes_nothing)
{
    put("k", "1", 9, 1, 10);
    put("k", "2", 9, 2, 10);
    commit();
    struct sm_result old = put("k", "old", 9, 1, 11);
    cr_assert(old.stale);
    cr_assert_not(old.duplicate);
    cr_assert_eq(old.revision, 0);
    struct sm_result old_del = del("k", 9, 1, 11);
    cr_assert(old_del.stale);
    commit();
    struct kv_record r;
    struct buf v = BUF_INIT;
    cr_assert(get("k", &r, &v));
    cr_assert(v.len == 1 && v.data[0] == '2');
    cr_assert_eq(r.version, 2);
    cr_assert_eq(m0.sm.revision, 2);
    struct sm_session s;
    cr_assert(has_session(&m0, 9, &s));
    cr_assert_eq(s.last_seq, 2, "a stale write does not move the session");
    cr_assert_eq(s.revision, 2);
    /* The last seq is still recognised. */
    cr_assert(put("k", "x", 9, 2, 12).duplicate);
    buf_free(&v);
}

Test(sessions, a_retried_delete_returns_the_original_found)
{
    put("k", "v", 3, 1, 100);
    struct sm_result d = del("k", 3, 2, 100);
    cr_assert(d.found);
    cr_assert_eq(d.revision, 2);
    commit();
    /* The key is gone now; the retry must still say it was found. */
    struct sm_result again = del("k", 3, 2, 101);
    cr_assert(again.duplicate);
    cr_assert(again.found, "a retried delete returns the original found");
    cr_assert_eq(again.revision, 2);
    cr_assert_eq(again.lamport, d.lamport);
    /* A retried delete does not delete a key written since by someone else. */
    put("k", "new", 4, 1, 102);
    cr_assert(del("k", 3, 2, 103).duplicate);
    /* A delete of a missing key: the retry is not found either. */
    struct sm_result missing = del("nope", 3, 3, 104);
    cr_assert_not(missing.found);
    struct sm_result missing2 = del("nope", 3, 3, 105);
    cr_assert(missing2.duplicate);
    cr_assert_not(missing2.found);
    cr_assert_eq(missing2.revision, 0);
    cr_assert_eq(missing2.lamport, missing.lamport);
    commit();
    struct kv_record r;
    struct buf v = BUF_INIT;
    cr_assert(get("k", &r, &v));
    cr_assert(v.len == 3 && memcmp(v.data, "new", 3) == 0);
    cr_assert_eq(m0.sm.keys, 1);
    buf_free(&v);
}

Test(sessions, client_zero_has_no_session)
{
    put("k", "1", 0, 1, 5);
    struct sm_result r2 = put("k", "1", 0, 1, 5);
    cr_assert_not(r2.duplicate);
    cr_assert_eq(r2.revision, 2);
    commit();
    cr_assert_eq(m0.sm.sessions, 0);
    cr_assert_eq(count_meta(&m0, "s/"), 0);
    struct kv_record r;
    struct buf v = BUF_INIT;
    cr_assert(get("k", &r, &v));
    cr_assert_eq(r.version, 2);
    buf_free(&v);
}

Test(sessions, sessions_expire_by_entry_time_and_the_client_then_starts_over)
{
    m0.sm.session_ttl_ms = 1000;
    put("a", "1", 1, 1, 1000);
    commit();
    /* last_used + ttl == now: not yet expired. */
    put("b", "1", 2, 1, 2000);
    commit();
    cr_assert(has_session(&m0, 1, NULL));
    cr_assert(put("a", "retry", 1, 1, 2000).duplicate);
    commit();
    /* One ms later it has. */
    put("c", "1", 0, 0, 2001);
    commit();
    cr_assert_not(has_session(&m0, 1, NULL), "client 1 should have expired");
    cr_assert(has_session(&m0, 2, NULL));
    cr_assert_eq(m0.sm.sessions, 1);
    /* The same (client, seq) now applies as a new write. */
    struct sm_result r = put("a", "2", 1, 1, 2002);
    cr_assert_not(r.duplicate);
    cr_assert_not(r.stale);
    cr_assert_eq(r.revision, m0.sm.st_index);
    commit();
    struct kv_record rec;
    struct buf v = BUF_INIT;
    cr_assert(get("a", &rec, &v));
    cr_assert_eq(rec.version, 2);
    cr_assert_eq(m0.sm.sessions, 2);
    check_session_counts(&m0);
    buf_free(&v);
}

Test(sessions, a_session_made_and_expired_within_one_batch_is_gone)
{
    m0.sm.session_ttl_ms = 10;
    put("a", "1", 1, 1, 100);
    put("b", "1", 2, 1, 200); /* expires client 1, staged in this very batch */
    cr_assert_not(put("a", "again", 1, 1, 200).duplicate, "expired sessions are not consulted");
    commit();
    /* client 1's session is the one made at 200; client 2's too. */
    struct sm_session s;
    cr_assert(has_session(&m0, 1, &s));
    cr_assert_eq(s.last_used_ms, 200);
    cr_assert_eq(m0.sm.sessions, 2);
    check_session_counts(&m0);
    put("c", "1", 0, 0, 211);
    commit();
    cr_assert_eq(m0.sm.sessions, 0);
    check_session_counts(&m0);
}

Test(sessions, a_clock_going_backwards_neither_revives_nor_shortens_sessions)
{
    m0.sm.session_ttl_ms = 1000;
    put("a", "1", 1, 1, 10000);
    put("b", "1", 2, 1, 20000); /* client 1 expires */
    commit();
    cr_assert_not(has_session(&m0, 1, NULL));
    cr_assert_eq(m0.sm.applied_time_ms, 20000);
    /* A new leader whose clock is far behind. */
    struct sm_result r = put("a", "2", 1, 1, 5000);
    cr_assert_not(r.duplicate, "a session expired at 20000 must stay expired at 5000");
    put("c", "1", 3, 1, 5000);
    commit();
    cr_assert_eq(m0.sm.applied_time_ms, 20000, "the expiry clock never goes back");
    struct sm_session s;
    cr_assert(has_session(&m0, 3, &s));
    cr_assert_eq(s.last_used_ms, 20000, "a session is stamped with the high-water time");
    /* 20000 + 1000 >= 20900: the sessions used "at 5000" are still alive. */
    put("d", "1", 0, 0, 20900);
    commit();
    cr_assert(has_session(&m0, 3, NULL));
    cr_assert(has_session(&m0, 1, NULL));
    cr_assert(put("c", "x", 3, 1, 20900).duplicate);
    commit();
    /* The high-water mark survives a restart. */
    member_close(&m0);
    member_open(&m0, 1000);
    cr_assert_eq(m0.sm.applied_time_ms, 20900);
    put("e", "1", 0, 0, 100);
    commit();
    cr_assert_eq(m0.sm.applied_time_ms, 20900);
    cr_assert(has_session(&m0, 3, NULL));
    /* Only time from entries counts: 21001 expires them. */
    put("f", "1", 0, 0, 21001);
    commit();
    cr_assert_not(has_session(&m0, 3, NULL));
    cr_assert_not(has_session(&m0, 1, NULL));
    cr_assert_not(has_session(&m0, 2, NULL), "client 2 (used at 20000) expired too");
    check_session_counts(&m0);
}

Test(sessions, expiry_work_per_entry_is_bounded)
{
    m0.sm.session_ttl_ms = 1000;
    for (uint64_t c = 1; c <= 1000; c++) {
        char k[16];
        snprintf(k, sizeof k, "k%llu", (unsigned long long)c);
        put(k, "v", c, 1, c); /* client c last used at time c */
        if (c % 100 == 0)
            commit();
    }
    cr_assert_eq(m0.sm.sessions, 1000);
    check_session_counts(&m0);
    uint64_t left = 1000;
    for (int i = 0; left > 0; i++) {
        cr_assert_lt(i, 100);
        put("x", "v", 0, 0, 1000000);
        commit();
        uint64_t want = left > SM_SESSION_EXPIRE_BATCH ? left - SM_SESSION_EXPIRE_BATCH : 0;
        cr_assert_eq(m0.sm.sessions, want, "entry %d left %llu sessions, want %llu", i,
                     (unsigned long long)m0.sm.sessions, (unsigned long long)want);
        check_session_counts(&m0);
        /* Oldest first. */
        uint64_t gone = 1000 - want;
        cr_assert_not(has_session(&m0, gone, NULL));
        if (want)
            cr_assert(has_session(&m0, gone + 1, NULL));
        left = want;
    }
}

Test(sessions, a_backlog_within_one_millisecond_drains_at_the_first_expired_time)
{
    m0.sm.session_ttl_ms = 1000;
    for (uint64_t c = 1; c <= 100; c++)
        put("k", "v", c, 1, 1000);
    commit();
    /* 1000 + 1000 < 2001: all expired, at the earliest time they can be. */
    put("x", "v", 0, 0, 2001);
    commit();
    cr_assert_eq(m0.sm.sessions, 100 - SM_SESSION_EXPIRE_BATCH);
    put("x", "v", 0, 0, 2001);
    commit();
    cr_assert_eq(m0.sm.sessions, 0, "the rest of the same millisecond must go next");
    check_session_counts(&m0);
}

Test(sessions, an_expired_session_not_yet_removed_counts_as_none)
{
    m0.sm.session_ttl_ms = 1000;
    for (uint64_t c = 1; c <= 200; c++)
        put("k", "v", c, 5, c);
    commit();
    /* One entry removes only the first 64; client 200 is expired but stored. */
    put("x", "v", 0, 0, 5000);
    commit();
    cr_assert(has_session(&m0, 200, NULL));
    uint64_t rev = m0.sm.revision;
    struct sm_result r = put("k", "again", 200, 5, 5000);
    cr_assert_not(r.duplicate);
    cr_assert_eq(r.revision, rev + 1);
    commit();
    struct sm_session s;
    cr_assert(has_session(&m0, 200, &s));
    cr_assert_eq(s.last_used_ms, 5000);
    check_session_counts(&m0);
    /* Its old index key went with it: it is not expired again at 5000+. */
    for (int i = 0; i < 10; i++)
        put("x", "v", 0, 0, 5500);
    commit();
    cr_assert(has_session(&m0, 200, NULL));
    cr_assert_eq(m0.sm.sessions, 1);
    check_session_counts(&m0);
}

Test(sessions, a_restart_keeps_sessions)
{
    struct sm_result first = put("k", "v", 11, 4, 50);
    del("k", 12, 1, 60);
    commit();
    member_close(&m0);
    member_open(&m0, 0);
    cr_assert_eq(m0.sm.sessions, 2);
    cr_assert_eq(m0.sm.applied_time_ms, 60);
    struct sm_result again = put("k", "other", 11, 4, 70);
    cr_assert(again.duplicate);
    cr_assert_eq(again.revision, first.revision);
    cr_assert_eq(again.lamport, first.lamport);
    struct sm_result d = del("k", 12, 1, 70);
    cr_assert(d.duplicate);
    cr_assert(d.found);
    cr_assert(put("k", "x", 11, 3, 70).stale);
    commit();
    struct sm_session s;
    cr_assert(has_session(&m0, 11, &s));
    cr_assert_eq(s.last_seq, 4);
    cr_assert_eq(s.kind, SM_OP_PUT);
    cr_assert(has_session(&m0, 12, &s));
    cr_assert_eq(s.kind, SM_OP_DELETE);
    cr_assert(s.found);
    check_session_counts(&m0);
}

/* A deterministic pseudo-random generator for the log. */
static uint64_t rng_next(uint64_t *s)
{
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return *s;
}

/* The state machine caches what the staged view says of sessions and keys
 * (sm.h). A batch dropped with sm_discard takes its sessions and records out
 * of the caches too: the same write staged again is new, not a duplicate,
 * and the key it made is made again (version 1). */
Test(sessions, a_discarded_batch_leaves_nothing_in_the_caches)
{
    put("a", "1", 31, 1, 100);
    commit();
    struct sm_result r = put("a", "2", 31, 2, 100);
    cr_assert(!r.duplicate);
    put("b", "1", 32, 1, 100);
    del("a", 33, 1, 100);
    sm_discard(&m0.sm);
    r = put("a", "2", 31, 2, 100);
    cr_assert(!r.duplicate, "seq 2 of client 31 was dropped with its batch; staged again it applies");
    r = put("b", "1", 32, 1, 100);
    cr_assert(!r.duplicate, "client 32's session was dropped with its batch");
    commit();
    struct kv_record rec;
    struct buf val = BUF_INIT;
    cr_assert(get("a", &rec, &val), "a was deleted only in the dropped batch");
    cr_assert_eq(rec.version, 2, "a: version %llu, want 2 (put twice)", (unsigned long long)rec.version);
    cr_assert(get("b", &rec, &val));
    cr_assert_eq(rec.version, 1, "b: version %llu, want 1 (the dropped put made nothing)",
                 (unsigned long long)rec.version);
    cr_assert(!has_session(&m0, 33, NULL));
    buf_free(&val);
    check_session_counts(&m0);
}

/* Emptying the caches moves their generation on; when it wraps, the slots
 * are wiped, so none written under the generation that comes round again
 * counts. Here the slots of a dropped batch were written at generation 1,
 * and the discard that wraps the counter back to 1 must not revive them. */
Test(sessions, the_cache_generation_wrapping_revives_no_slot)
{
    m0.sm.cache_gen = 1; /* what the wrap comes back to (no slot was written yet) */
    put("b", "1", 51, 1, 100);
    m0.sm.cache_gen = UINT32_MAX; /* as if emptied 2^32 - 2 times since */
    sm_discard(&m0.sm);
    cr_assert_eq(m0.sm.cache_gen, 1);
    struct sm_result r = put("b", "1", 51, 1, 100);
    cr_assert(!r.duplicate, "the dropped batch's session came back");
    commit();
    struct kv_record rec;
    struct buf val = BUF_INIT;
    cr_assert(get("b", &rec, &val));
    cr_assert_eq(rec.version, 1, "b: version %llu, want 1 (the dropped put came back)",
                 (unsigned long long)rec.version);
    buf_free(&val);
}

/* sm_session_get reads what is committed, not the open batch. */
Test(sessions, a_committed_view_read_does_not_see_the_open_batch)
{
    put("a", "1", 41, 1, 100);
    commit();
    put("a", "2", 41, 2, 200);
    put("b", "1", 42, 1, 200);
    struct sm_session s;
    cr_assert(has_session(&m0, 41, &s));
    cr_assert_eq(s.last_seq, 1, "the committed session has seq 1, the open batch's seq 2 is not committed");
    cr_assert(!has_session(&m0, 42, NULL), "client 42's session is only in the open batch");
    commit();
    cr_assert(has_session(&m0, 41, &s));
    cr_assert_eq(s.last_seq, 2);
    cr_assert(has_session(&m0, 42, NULL));
}

/* Many more keys and clients than the caches have slots, so that slots are
 * shared: every key's version counts its puts, and every client's retry is
 * found, whichever key or client used the slot last. */
Test(sessions, keys_and_clients_sharing_cache_slots_keep_their_own_records)
{
    enum { KEYS = 3 * SM_KEY_CACHE, CLIENTS = 3 * SM_SESS_CACHE };
    static uint8_t puts[KEYS];
    uint64_t s = 777, t = 1000;
    char k[16];
    for (int round = 0; round < 4; round++) {
        for (int i = 0; i < KEYS; i++) {
            int key = (int)(rng_next(&s) % KEYS);
            uint64_t client = 1 + (uint64_t)i % CLIENTS;
            uint64_t seq = (uint64_t)round * 4 + 1 + (uint64_t)i / CLIENTS;
            snprintf(k, sizeof k, "key%d", key);
            struct sm_result r = put(k, "v", client, seq, t);
            cr_assert(!r.duplicate && !r.stale, "round %d put %d: a fresh seq was taken for a retry", round, i);
            puts[key]++;
            if (rng_next(&s) % 8 == 0) {
                r = put(k, "v", client, seq, t); /* a retry: found in the session */
                cr_assert(r.duplicate, "round %d put %d: the retry was not found", round, i);
            }
            if (i % 500 == 499)
                commit();
        }
        commit();
    }
    struct kv_record rec;
    struct buf val = BUF_INIT;
    for (int key = 0; key < KEYS; key++) {
        snprintf(k, sizeof k, "key%d", key);
        if (!puts[key]) {
            cr_assert(!get(k, &rec, &val));
            continue;
        }
        cr_assert(get(k, &rec, &val), "%s is missing", k);
        cr_assert_eq(rec.version, puts[key], "%s: version %llu after %u puts", k, (unsigned long long)rec.version,
                     puts[key]);
    }
    buf_free(&val);
    check_session_counts(&m0);
}

struct entry {
    enum sm_op_kind kind;
    char key[8];
    char val[24];
    uint64_t client, seq, time_ms;
};

/* A log with retries, stale retries, equal and backward times, bursts of
 * sessions expiring at once and sessions made and expired within a batch. */
static void make_log(struct entry *e, size_t n, uint64_t seed)
{
    uint64_t s = seed, t = 5000;
    uint64_t seqs[1000] = {0};
    for (size_t i = 0; i < n; i++) {
        uint64_t r = rng_next(&s);
        struct entry *x = &e[i];
        memset(x, 0, sizeof *x);
        /* time (ttl 2000): mostly equal or 1 ms later, sometimes back, now
         * and then a leap that expires part or all of the sessions at once */
        unsigned roll = (unsigned)(r % 1000);
        if (roll < 700)
            t += 0;
        else if (roll < 900)
            t += 1;
        else if (roll < 990)
            t -= t > 255 ? (r >> 32 & 255) : 0;
        else
            t += 500 + (r >> 24) % 2500;
        x->time_ms = t;
        r = rng_next(&s);
        x->kind = r % 20 == 0 ? SM_OP_NOOP : r % 5 == 0 ? SM_OP_DELETE : SM_OP_PUT;
        snprintf(x->key, sizeof x->key, "k%u", (unsigned)(r >> 8 & 31));
        snprintf(x->val, sizeof x->val, "v%zu", i);
        r = rng_next(&s);
        uint64_t c = r % 1000; /* client 0: no session */
        x->client = c;
        if (c != 0) {
            unsigned how = (unsigned)(r >> 32 & 15);
            if (how == 0 && seqs[c] > 0)
                x->seq = seqs[c]; /* a retry */
            else if (how == 1 && seqs[c] > 1)
                x->seq = seqs[c] - 1; /* a late retry */
            else
                x->seq = ++seqs[c];
        }
    }
}

static void apply_entry(struct member *m, const struct entry *x, struct sm_result *r)
{
    struct sm_op op = {.kind = x->kind, .client_id = x->client, .seq = x->seq, .time_ms = x->time_ms};
    uint64_t lamport = 0;
    if (x->kind != SM_OP_NOOP) {
        op.key = (const uint8_t *)x->key;
        op.klen = strlen(x->key);
        lamport = m->sm.st_index + 1; /* what the leader gave it */
    }
    if (x->kind == SM_OP_PUT) {
        op.val = (const uint8_t *)x->val;
        op.vlen = strlen(x->val);
    }
    struct errbuf eb;
    cr_assert_eq(sm_stage(&m->sm, m->sm.st_index + 1, lamport, &op, r, &eb), ERR_OK, "%s", eb.msg);
}

static void assert_same_bytes(void)
{
    static const enum store_cf cfs[] = {STORE_CF_META, STORE_CF_DATA};
    for (size_t i = 0; i < 2; i++) {
        struct buf a = BUF_INIT, b = BUF_INIT;
        dump_cf(&m0, cfs[i], &a);
        dump_cf(&m1, cfs[i], &b);
        cr_assert_eq(a.len, b.len, "column family %d differs in size: %zu vs %zu", (int)cfs[i], a.len, b.len);
        cr_assert_eq(memcmp(a.data, b.data, a.len), 0, "column family %d differs", (int)cfs[i]);
        buf_free(&a);
        buf_free(&b);
    }
}

Test(sessions, members_grouping_entries_differently_end_with_identical_bytes)
{
    enum { N = 8000 };
    static struct entry log[N];
    make_log(log, N, 0x9e3779b97f4a7c15ull);
    member_init(&m1, "sess1", 0);
    m0.sm.session_ttl_ms = 2000;
    m1.sm.session_ttl_ms = 2000;
    uint64_t s = 12345;
    size_t next_commit = 1, dups = 0, stales = 0, compares = 0, drains = 0;
    for (size_t i = 0; i < N; i++) {
        struct sm_result a, b;
        /* m0 commits every entry; m1 commits in batches of 1 to 700 entries,
         * and often in the middle of a backlog of expired sessions (where the
         * bound, and the order of removal, matter). */
        uint64_t before = m0.sm.sessions;
        apply_entry(&m0, &log[i], &a);
        commit_m(&m0, false);
        bool draining = before >= m0.sm.sessions + SM_SESSION_EXPIRE_BATCH - 1;
        drains += draining;
        if (draining && rng_next(&s) % 2 == 0)
            next_commit = i + 1;
        apply_entry(&m1, &log[i], &b);
        cr_assert(a.found == b.found && a.revision == b.revision && a.lamport == b.lamport &&
                      a.duplicate == b.duplicate && a.stale == b.stale,
                  "entry %zu answered differently", i);
        dups += a.duplicate;
        stales += a.stale;
        if (i + 1 == next_commit || i + 1 == N) {
            commit_m(&m1, false);
            cr_assert_eq(m0.sm.sessions, m1.sm.sessions, "session counts differ at entry %zu", i);
            assert_same_bytes();
            check_session_counts(&m1);
            compares++;
            next_commit = i + 2 + (size_t)(rng_next(&s) % 700);
            if (rng_next(&s) % 4 == 0) {
                /* and a restart now and then */
                member_close(&m1);
                member_open(&m1, 2000);
            }
        }
    }
    cr_assert_gt(dups, 50, "the log should hold retries");
    cr_assert_gt(stales, 50, "the log should hold late retries");
    cr_assert_gt(compares, 10);
    cr_assert_gt(drains, 20, "the log should make backlogs of expired sessions");
    assert_same_bytes();
    check_session_counts(&m0);
    cr_assert_eq(m0.sm.applied_index, N);
    cr_assert_eq(m1.sm.applied_time_ms, m0.sm.applied_time_ms);
}

Test(sessions, a_format_1_data_dir_is_read_and_stamped)
{
    /* A data dir as format 1 left it: 34-byte session records. */
    struct sm_result first = put("k", "v", 21, 3, 100);
    del("k", 22, 1, 100);
    commit();
    member_close(&m0);
    struct errbuf eb;
    cr_assert_eq(store_open(&m0.st, m0.dir, NULL, &eb), ERR_OK, "%s", eb.msg);
    struct store_batch *b = store_batch_new(m0.st);
    uint8_t be[8];
    put_be64(be, 1);
    store_batch_put(b, STORE_CF_META, "format_version", 14, be, 8);
    for (uint64_t c = 21; c <= 22; c++) {
        uint8_t k[10] = {'s', '/'};
        put_be64(k + 2, c);
        struct store_val v;
        cr_assert_eq(store_get(m0.st, STORE_CF_META, k, sizeof k, NULL, &v, &eb), ERR_OK);
        cr_assert_eq(v.n, SM_SESSION_RECORD);
        uint8_t old[SM_SESSION_RECORD_V1];
        memcpy(old, v.p, sizeof old);
        store_val_release(&v);
        store_batch_put(b, STORE_CF_META, k, sizeof k, old, sizeof old);
    }
    cr_assert_eq(store_write(m0.st, b, true, &eb), ERR_OK, "%s", eb.msg);
    store_batch_free(b);
    store_close(m0.st);
    member_open(&m0, 0);
    struct store_val v;
    cr_assert_eq(store_get(m0.st, STORE_CF_META, "format_version", 14, NULL, &v, &eb), ERR_OK);
    cr_assert(v.n == 8 && get_be64(v.p) == SM_FORMAT_BASE, "opened format 1 dirs are stamped");
    store_val_release(&v);
    struct sm_session s;
    cr_assert(has_session(&m0, 22, &s));
    cr_assert_eq(s.kind, SM_OP_DELETE);
    cr_assert(s.found);
    cr_assert_eq(s.lease_id, 0);
    /* Short records still answer retries, and are rewritten in full. */
    struct sm_result again = put("k", "other", 21, 3, 101);
    cr_assert(again.duplicate);
    cr_assert_eq(again.revision, first.revision);
    cr_assert(del("k", 22, 1, 101).found);
    put("k", "next", 21, 4, 102);
    commit();
    uint8_t k[10] = {'s', '/'};
    put_be64(k + 2, 21);
    cr_assert_eq(store_get(m0.st, STORE_CF_META, k, sizeof k, NULL, &v, &eb), ERR_OK);
    cr_assert_eq(v.n, SM_SESSION_RECORD);
    store_val_release(&v);
    check_session_counts(&m0);
}
