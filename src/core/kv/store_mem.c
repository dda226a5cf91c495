/* The store interface (kv/store.h) in memory, over a simulated disk with a
 * disk's failure model (kv/memdisk.h). Linked instead of store.c into the
 * simulator's binaries (ddkv_kv_mem); the contract test runs one suite
 * against both, so the node cannot tell them apart except by the faults.
 *
 * Layout. A column family's state is a struct cfmap: a sorted array of
 * immutable, reference-counted blobs (key then value). The open store's
 * state (live) and the disk's durable state are separate cfmaps; the disk
 * also keeps the writes made since the last sync, in order (struct rec).
 * Iterators and snapshots take a reference to the cfmaps they read, and a
 * write to a cfmap someone else holds copies its array first (copy on
 * write: pointers only, the blobs are shared), so a reader sees the state
 * of the moment it began, as a RocksDB iterator does. */
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kv/memdisk.h"
#include "kv/store.h"

/* --- blobs and sorted maps ------------------------------------------------ */

struct blob {
    uint32_t refs; /* atomic */
    size_t kn, vn;
    uint8_t data[]; /* key, then value */
};

static struct blob *blob_new(const void *k, size_t kn, const void *v1, size_t n1, const void *v2, size_t n2)
{
    struct blob *b = malloc(sizeof *b + kn + n1 + n2 + 1);
    ASSERT(b != NULL);
    b->refs = 1;
    b->kn = kn;
    b->vn = n1 + n2;
    if (kn)
        memcpy(b->data, k, kn);
    if (n1)
        memcpy(b->data + kn, v1, n1);
    if (n2)
        memcpy(b->data + kn + n1, v2, n2);
    return b;
}

static struct blob *blob_ref(struct blob *b)
{
    __atomic_add_fetch(&b->refs, 1, __ATOMIC_RELAXED);
    return b;
}

static void blob_unref(struct blob *b)
{
    if (b && __atomic_sub_fetch(&b->refs, 1, __ATOMIC_ACQ_REL) == 0)
        free(b);
}

static int key_cmp(const uint8_t *a, size_t an, const uint8_t *b, size_t bn)
{
    size_t n = an < bn ? an : bn;
    int c = n ? memcmp(a, b, n) : 0;
    if (c)
        return c;
    return an < bn ? -1 : an > bn ? 1 : 0;
}

struct cfmap {
    uint32_t refs; /* atomic: the owner's, plus each iterator's and snapshot's */
    size_t n, cap;
    struct blob **e; /* sorted by key, keys unique */
};

static struct cfmap *map_new(void)
{
    struct cfmap *m = calloc(1, sizeof *m);
    ASSERT(m != NULL);
    m->refs = 1;
    return m;
}

static struct cfmap *map_ref(struct cfmap *m)
{
    __atomic_add_fetch(&m->refs, 1, __ATOMIC_RELAXED);
    return m;
}

static void map_unref(struct cfmap *m)
{
    if (!m || __atomic_sub_fetch(&m->refs, 1, __ATOMIC_ACQ_REL) != 0)
        return;
    for (size_t i = 0; i < m->n; i++)
        blob_unref(m->e[i]);
    free(m->e);
    free(m);
}

static struct cfmap *map_clone(const struct cfmap *m)
{
    struct cfmap *c = map_new();
    if (m->n) {
        c->e = malloc(m->n * sizeof *c->e);
        ASSERT(c->e != NULL);
        for (size_t i = 0; i < m->n; i++)
            c->e[i] = blob_ref(m->e[i]);
        c->n = c->cap = m->n;
    }
    return c;
}

/* *mp, made private to its owner before a change (copy on write). */
static struct cfmap *map_own(struct cfmap **mp)
{
    if (__atomic_load_n(&(*mp)->refs, __ATOMIC_ACQUIRE) > 1) {
        struct cfmap *c = map_clone(*mp);
        map_unref(*mp);
        *mp = c;
    }
    return *mp;
}

/* The first position whose key is >= k. */
static size_t map_lower(const struct cfmap *m, const void *k, size_t kn)
{
    size_t lo = 0, hi = m->n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (key_cmp(m->e[mid]->data, m->e[mid]->kn, k, kn) < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

static struct blob *map_find(const struct cfmap *m, const void *k, size_t kn)
{
    size_t i = map_lower(m, k, kn);
    if (i < m->n && key_cmp(m->e[i]->data, m->e[i]->kn, k, kn) == 0)
        return m->e[i];
    return NULL;
}

/* Put b (taking a new reference) in an owned map, replacing its key's blob. */
static void map_put(struct cfmap *m, struct blob *b)
{
    size_t i = map_lower(m, b->data, b->kn);
    if (i < m->n && key_cmp(m->e[i]->data, m->e[i]->kn, b->data, b->kn) == 0) {
        blob_unref(m->e[i]);
        m->e[i] = blob_ref(b);
        return;
    }
    if (m->n == m->cap) {
        m->cap = m->cap ? m->cap * 2 : 16;
        m->e = realloc(m->e, m->cap * sizeof *m->e);
        ASSERT(m->e != NULL);
    }
    memmove(m->e + i + 1, m->e + i, (m->n - i) * sizeof *m->e);
    m->e[i] = blob_ref(b);
    m->n++;
}

static void map_del(struct cfmap *m, const void *k, size_t kn)
{
    size_t i = map_lower(m, k, kn);
    if (i < m->n && key_cmp(m->e[i]->data, m->e[i]->kn, k, kn) == 0) {
        blob_unref(m->e[i]);
        memmove(m->e + i, m->e + i + 1, (m->n - i - 1) * sizeof *m->e);
        m->n--;
    }
}

static void map_wipe(struct cfmap *m)
{
    for (size_t i = 0; i < m->n; i++)
        blob_unref(m->e[i]);
    m->n = 0;
}

/* --- writes: batches and records ------------------------------------------ */

enum op_kind { OP_PUT, OP_DEL, OP_WIPE };

struct op {
    enum op_kind kind;
    enum store_cf cf;
    struct blob *b; /* PUT: key and value; DEL: the key; WIPE: NULL */
};

struct store_batch {
    struct store *s;
    struct op *ops;
    size_t n, cap;
};

/* A write as the disk holds it until synced: its operations, in order. */
struct rec {
    struct rec *next;
    struct op *ops;
    size_t n;
    uint64_t bytes;
};

static void ops_push(struct op **ops, size_t *n, size_t *cap, enum op_kind kind, enum store_cf cf, struct blob *b)
{
    if (*n == *cap) {
        *cap = *cap ? *cap * 2 : 8;
        *ops = realloc(*ops, *cap * sizeof **ops);
        ASSERT(*ops != NULL);
    }
    (*ops)[(*n)++] = (struct op){.kind = kind, .cf = cf, .b = b};
}

static void op_apply(struct cfmap *m, const struct op *o)
{
    switch (o->kind) {
    case OP_PUT: map_put(m, o->b); break;
    case OP_DEL: map_del(m, o->b->data, o->b->kn); break;
    case OP_WIPE: map_wipe(m); break;
    }
}

/* Apply ops to maps (one per column family); own: copy a shared map first. */
static void ops_apply(struct cfmap **maps, const struct op *ops, size_t n, bool own)
{
    for (size_t i = 0; i < n; i++)
        op_apply(own ? map_own(&maps[ops[i].cf]) : maps[ops[i].cf], &ops[i]);
}

static void rec_free(struct rec *r)
{
    for (size_t i = 0; i < r->n; i++)
        blob_unref(r->ops[i].b);
    free(r->ops);
    free(r);
}

/* --- the disk ------------------------------------------------------------- */

struct memdisk {
    pthread_mutex_t mu;
    struct cfmap *durable[STORE_CF__COUNT]; /* the disk's own (never shared) */
    struct rec *pend, *pend_tail;           /* written since the last sync, in order */
    size_t npend;
    bool open;
    bool full;
    bool fail_sync, fail_lose;
    bool torn_middle;      /* a power cut damaged a record with whole ones after it */
    struct blob **rotten;  /* durable blobs whose bytes rotted (referenced) */
    size_t nrotten;
};

struct memdisk *memdisk_new(void)
{
    struct memdisk *d = calloc(1, sizeof *d);
    ASSERT(d != NULL);
    pthread_mutex_init(&d->mu, NULL);
    for (int i = 0; i < STORE_CF__COUNT; i++)
        d->durable[i] = map_new();
    return d;
}

static void disk_drop_pending(struct memdisk *d)
{
    while (d->pend) {
        struct rec *r = d->pend;
        d->pend = r->next;
        rec_free(r);
    }
    d->pend_tail = NULL;
    d->npend = 0;
}

void memdisk_free(struct memdisk *d)
{
    if (!d)
        return;
    ASSERT(!d->open);
    disk_drop_pending(d);
    for (int i = 0; i < STORE_CF__COUNT; i++)
        map_unref(d->durable[i]);
    for (size_t i = 0; i < d->nrotten; i++)
        blob_unref(d->rotten[i]);
    free(d->rotten);
    pthread_mutex_destroy(&d->mu);
    free(d);
}

/* Make every pending write durable (d->mu held). */
static void disk_settle(struct memdisk *d)
{
    for (struct rec *r = d->pend; r; r = r->next)
        ops_apply(d->durable, r->ops, r->n, false);
    disk_drop_pending(d);
}

size_t memdisk_unsynced(const struct memdisk *d)
{
    return d->npend;
}

uint64_t memdisk_durable_bytes(const struct memdisk *d)
{
    uint64_t sum = 0;
    for (int c = 0; c < STORE_CF__COUNT; c++)
        for (size_t i = 0; i < d->durable[c]->n; i++)
            sum += d->durable[c]->e[i]->kn + d->durable[c]->e[i]->vn;
    return sum;
}

bool memdisk_is_open(const struct memdisk *d)
{
    return d->open;
}

void memdisk_crash(struct memdisk *d, size_t keep, enum memdisk_tear tear)
{
    pthread_mutex_lock(&d->mu);
    ASSERT(!d->open);
    if (tear == MEMDISK_TEAR_MIDDLE && keep >= 2 && keep <= d->npend)
        d->torn_middle = true;
    size_t i = 0;
    for (struct rec *r = d->pend; r && i < keep; r = r->next, i++)
        ops_apply(d->durable, r->ops, r->n, false);
    disk_drop_pending(d);
    d->fail_sync = false;
    pthread_mutex_unlock(&d->mu);
}

void memdisk_fail_next_sync(struct memdisk *d, bool lose)
{
    pthread_mutex_lock(&d->mu);
    d->fail_sync = true;
    d->fail_lose = lose;
    pthread_mutex_unlock(&d->mu);
}

void memdisk_set_full(struct memdisk *d, bool full)
{
    pthread_mutex_lock(&d->mu);
    d->full = full;
    pthread_mutex_unlock(&d->mu);
}

void memdisk_rot(struct memdisk *d, enum store_cf cf, const void *k, size_t kn)
{
    pthread_mutex_lock(&d->mu);
    struct blob *b = map_find(d->durable[cf], k, kn);
    if (b) {
        d->rotten = realloc(d->rotten, (d->nrotten + 1) * sizeof *d->rotten);
        ASSERT(d->rotten != NULL);
        d->rotten[d->nrotten++] = blob_ref(b);
    }
    pthread_mutex_unlock(&d->mu);
}

static bool disk_rotten(struct memdisk *d, const struct blob *b)
{
    for (size_t i = 0; i < d->nrotten; i++)
        if (d->rotten[i] == b)
            return true;
    return false;
}

/* --- the registry of disks by directory ------------------------------------ */

#define MEMDISK_DIRS 64
static pthread_mutex_t reg_mu = PTHREAD_MUTEX_INITIALIZER;
static struct {
    char *dir;
    struct memdisk *d;
} reg[MEMDISK_DIRS];

void memdisk_register(const char *dir, struct memdisk *d)
{
    pthread_mutex_lock(&reg_mu);
    int free_slot = -1;
    for (int i = 0; i < MEMDISK_DIRS; i++) {
        if (reg[i].dir && !strcmp(reg[i].dir, dir)) {
            if (d) {
                reg[i].d = d;
            } else {
                free(reg[i].dir);
                reg[i].dir = NULL;
                reg[i].d = NULL;
            }
            pthread_mutex_unlock(&reg_mu);
            return;
        }
        if (!reg[i].dir && free_slot < 0)
            free_slot = i;
    }
    if (d) {
        ASSERT(free_slot >= 0);
        reg[free_slot].dir = strdup(dir);
        ASSERT(reg[free_slot].dir != NULL);
        reg[free_slot].d = d;
    }
    pthread_mutex_unlock(&reg_mu);
}

static bool reg_auto;
static struct memdisk *reg_made[MEMDISK_DIRS]; /* made by autocreate */

void memdisk_autocreate(bool on)
{
    reg_auto = on;
}

static void reg_free_made(void)
{
    for (int i = 0; i < MEMDISK_DIRS; i++) {
        if (!reg_made[i])
            continue;
        for (int j = 0; j < MEMDISK_DIRS; j++)
            if (reg[j].d == reg_made[i]) {
                free(reg[j].dir);
                reg[j].dir = NULL;
                reg[j].d = NULL;
            }
        if (!reg_made[i]->open) /* a store left open keeps its disk */
            memdisk_free(reg_made[i]);
        reg_made[i] = NULL;
    }
}

static struct memdisk *reg_find(const char *dir)
{
    pthread_mutex_lock(&reg_mu);
    struct memdisk *d = NULL;
    for (int i = 0; i < MEMDISK_DIRS && !d; i++)
        if (reg[i].dir && !strcmp(reg[i].dir, dir))
            d = reg[i].d;
    pthread_mutex_unlock(&reg_mu);
    if (!d && reg_auto) {
        static bool hooked;
        if (!hooked) {
            atexit(reg_free_made);
            hooked = true;
        }
        d = memdisk_new();
        memdisk_register(dir, d);
        int i = 0;
        while (i < MEMDISK_DIRS && reg_made[i])
            i++;
        ASSERT(i < MEMDISK_DIRS);
        reg_made[i] = d;
    }
    return d;
}

/* --- the store ------------------------------------------------------------ */

struct store {
    struct memdisk *d;
    struct cfmap *live[STORE_CF__COUNT]; /* what reads see: durable plus pending, and failed syncs' writes */
    int held;                            /* a failed sync's ERR_IO, held until store_reopen */
    int nlive;                           /* iterators and snapshots not yet freed (atomic) */
    int corrupt;                         /* atomic */
    char corrupt_msg[256];
};

static const char *const cf_label[STORE_CF__COUNT] = {"default", "meta", "data", "raft_log", "raft_state"};

static void latch_corrupt(struct store *s, const char *msg)
{
    int expect = 0;
    if (__atomic_compare_exchange_n(&s->corrupt, &expect, 1, false, __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE))
        snprintf(s->corrupt_msg, sizeof s->corrupt_msg, "%s", msg);
}

bool store_corruption(struct store *s, const char **msg)
{
    if (!__atomic_load_n(&s->corrupt, __ATOMIC_ACQUIRE))
        return false;
    if (msg)
        *msg = s->corrupt_msg;
    return true;
}

/* Build the open store's state from the disk and check it as store.c's open
 * does (d->mu held). */
static int store_load(struct store *s, struct errbuf *eb)
{
    struct memdisk *d = s->d;
    if (d->torn_middle)
        return errf(eb, ERR_CORRUPT, "simulated disk: a WAL record is damaged with whole records after it");
    for (int c = 0; c < STORE_CF__COUNT; c++)
        for (size_t i = 0; i < d->durable[c]->n; i++)
            if (disk_rotten(d, d->durable[c]->e[i]))
                return errf(eb, ERR_CORRUPT, "simulated disk: a block of column family %s fails its checksum",
                            cf_label[c]);
    for (int c = 0; c < STORE_CF__COUNT; c++) {
        map_unref(s->live[c]);
        s->live[c] = map_clone(d->durable[c]);
    }
    for (struct rec *r = d->pend; r; r = r->next)
        ops_apply(s->live, r->ops, r->n, true);
    return ERR_OK;
}

int store_open(struct store **out, const char *dir, const struct store_options *opt, struct errbuf *eb)
{
    (void)opt;
    struct memdisk *d = reg_find(dir);
    if (!d)
        return errf(eb, ERR_IO, "no simulated disk is registered for %s", dir);
    struct store *s = calloc(1, sizeof *s);
    if (!s)
        return errf(eb, ERR_NOMEM, "out of memory");
    s->d = d;
    pthread_mutex_lock(&d->mu);
    int rc = d->open ? errf(eb, ERR_IO, "data dir %s is in use by another process", dir) : store_load(s, eb);
    if (rc == ERR_OK)
        d->open = true;
    pthread_mutex_unlock(&d->mu);
    if (rc) {
        for (int c = 0; c < STORE_CF__COUNT; c++)
            map_unref(s->live[c]);
        free(s);
        return rc;
    }
    *out = s;
    return ERR_OK;
}

void store_close(struct store *s)
{
    if (!s)
        return;
    ASSERT(__atomic_load_n(&s->nlive, __ATOMIC_ACQUIRE) == 0);
    pthread_mutex_lock(&s->d->mu);
    s->d->open = false;
    pthread_mutex_unlock(&s->d->mu);
    for (int c = 0; c < STORE_CF__COUNT; c++)
        map_unref(s->live[c]);
    free(s);
}

void store_close_clean(struct store *s)
{
    store_close(s);
}

void store_val_release(struct store_val *v)
{
    free(v->handle);
    memset(v, 0, sizeof *v);
}

static int val_out(struct store *s, const struct blob *b, struct store_val *out, struct errbuf *eb)
{
    if (disk_rotten(s->d, b)) {
        latch_corrupt(s, "simulated disk: a block fails its checksum on read");
        return errf(eb, ERR_CORRUPT, "simulated disk: a block fails its checksum on read");
    }
    uint8_t *p = malloc(b->vn ? b->vn : 1);
    if (!p)
        return errf(eb, ERR_NOMEM, "out of memory");
    memcpy(p, b->data + b->kn, b->vn);
    out->p = p;
    out->n = b->vn;
    out->handle = p;
    return ERR_OK;
}

int store_get(struct store *s, enum store_cf cf, const void *k, size_t kn, struct store_batch *overlay,
              struct store_val *out, struct errbuf *eb)
{
    memset(out, 0, sizeof *out);
    if (overlay) {
        for (size_t i = overlay->n; i-- > 0;) {
            const struct op *o = &overlay->ops[i];
            if (o->cf != cf || key_cmp(o->b->data, o->b->kn, k, kn))
                continue;
            if (o->kind == OP_DEL)
                return ERR_NOT_FOUND;
            return val_out(s, o->b, out, eb);
        }
    }
    const struct blob *b = map_find(s->live[cf], k, kn);
    if (!b)
        return ERR_NOT_FOUND;
    return val_out(s, b, out, eb);
}

struct store_batch *store_batch_new(struct store *s)
{
    struct store_batch *b = calloc(1, sizeof *b);
    ASSERT(b != NULL);
    b->s = s;
    return b;
}

void store_batch_clear(struct store_batch *b)
{
    for (size_t i = 0; i < b->n; i++)
        blob_unref(b->ops[i].b);
    b->n = 0;
}

void store_batch_free(struct store_batch *b)
{
    if (!b)
        return;
    store_batch_clear(b);
    free(b->ops);
    free(b);
}

void store_batch_put(struct store_batch *b, enum store_cf cf, const void *k, size_t kn, const void *v, size_t vn)
{
    ops_push(&b->ops, &b->n, &b->cap, OP_PUT, cf, blob_new(k, kn, v, vn, NULL, 0));
}

void store_batch_put2(struct store_batch *b, enum store_cf cf, const void *k, size_t kn, const void *v1, size_t n1,
                      const void *v2, size_t n2)
{
    ops_push(&b->ops, &b->n, &b->cap, OP_PUT, cf, blob_new(k, kn, v1, n1, v2, n2));
}

void store_batch_delete(struct store_batch *b, enum store_cf cf, const void *k, size_t kn)
{
    ops_push(&b->ops, &b->n, &b->cap, OP_DEL, cf, blob_new(k, kn, NULL, 0, NULL, 0));
}

/* A sync of every write so far (d->mu held). */
static int disk_sync(struct store *s, struct errbuf *eb, const char *what)
{
    struct memdisk *d = s->d;
    if (s->held)
        return errf(eb, s->held, "%s: simulated disk: an earlier sync failed (reopen the store)", what);
    if (d->full)
        return errf(eb, ERR_NOSPACE, "%s: simulated disk: no space left on device", what);
    if (d->fail_sync) {
        d->fail_sync = false;
        s->held = ERR_IO;
        if (d->fail_lose)
            disk_drop_pending(d);
        return errf(eb, ERR_IO, "%s: simulated disk: fsync: Input/output error", what);
    }
    disk_settle(d);
    return ERR_OK;
}

/* Append ops (taking references) as one write; sync it if asked. */
static int disk_write(struct store *s, const struct op *ops, size_t n, bool sync, struct errbuf *eb,
                      const char *what)
{
    struct memdisk *d = s->d;
    pthread_mutex_lock(&d->mu);
    int rc = ERR_OK;
    if (s->held)
        rc = errf(eb, s->held, "%s: simulated disk: an earlier sync failed (reopen the store)", what);
    else if (d->full)
        rc = errf(eb, ERR_NOSPACE, "%s: simulated disk: no space left on device", what);
    if (rc) {
        pthread_mutex_unlock(&d->mu);
        return rc;
    }
    struct rec *r = calloc(1, sizeof *r);
    ASSERT(r != NULL);
    if (n) {
        r->ops = malloc(n * sizeof *r->ops);
        ASSERT(r->ops != NULL);
    }
    for (size_t i = 0; i < n; i++) {
        r->ops[i] = ops[i];
        if (ops[i].b) {
            blob_ref(ops[i].b);
            r->bytes += ops[i].b->kn + ops[i].b->vn;
        }
    }
    r->n = n;
    ops_apply(s->live, r->ops, r->n, true);
    if (d->pend_tail)
        d->pend_tail->next = r;
    else
        d->pend = r;
    d->pend_tail = r;
    d->npend++;
    if (sync)
        rc = disk_sync(s, eb, what);
    pthread_mutex_unlock(&d->mu);
    return rc;
}

int store_write(struct store *s, struct store_batch *b, bool sync, struct errbuf *eb)
{
    ASSERT(b->s == s);
    return disk_write(s, b->ops, b->n, sync, eb, "write");
}

int store_sync_wal(struct store *s, struct errbuf *eb)
{
    pthread_mutex_lock(&s->d->mu);
    int rc = disk_sync(s, eb, "WAL sync");
    pthread_mutex_unlock(&s->d->mu);
    return rc;
}

int store_probe(struct store *s, struct errbuf *eb)
{
    return store_sync_wal(s, eb);
}

int store_reopen(struct store *s, const char *dir, struct errbuf *eb)
{
    (void)dir;
    if (__atomic_load_n(&s->nlive, __ATOMIC_ACQUIRE) > 0)
        return errf(eb, ERR_AGAIN, "%d iterators or snapshots still read the store", s->nlive);
    pthread_mutex_lock(&s->d->mu);
    /* As a restart: what the disk holds, recovered and written out synced. */
    int rc = store_load(s, eb);
    if (rc == ERR_OK && !s->d->full) {
        disk_settle(s->d);
        s->held = 0;
    } else if (rc == ERR_OK) {
        s->held = 0;
    }
    pthread_mutex_unlock(&s->d->mu);
    return rc;
}

uint64_t store_memtable_bytes(struct store *s)
{
    pthread_mutex_lock(&s->d->mu);
    uint64_t sum = 0;
    for (struct rec *r = s->d->pend; r; r = r->next)
        sum += r->bytes;
    pthread_mutex_unlock(&s->d->mu);
    return sum;
}

void store_engine_stats(struct store *s, struct store_engine_stats *out)
{
    (void)s;
    *out = (struct store_engine_stats){0}; /* no engine: nothing runs in the background */
}

/* --- iterators and snapshots ------------------------------------------------ */

struct store_iter {
    struct store *s;
    struct cfmap *m; /* referenced: the state as of the iterator's creation */
    size_t pos;
    bool seeked;
    int err;
    uint8_t *upper;
    size_t upper_n;
    bool has_upper;
};

struct store_snapshot {
    struct store *s;
    struct cfmap *m[STORE_CF__COUNT];
};

static struct store_iter *iter_make(struct store *s, struct cfmap *m, const void *upper, size_t upper_n)
{
    struct store_iter *it = calloc(1, sizeof *it);
    ASSERT(it != NULL);
    it->s = s;
    it->m = m;
    if (upper) {
        it->upper = malloc(upper_n ? upper_n : 1);
        ASSERT(it->upper != NULL);
        memcpy(it->upper, upper, upper_n);
        it->upper_n = upper_n;
        it->has_upper = true;
    }
    __atomic_add_fetch(&s->nlive, 1, __ATOMIC_ACQ_REL);
    return it;
}

struct store_iter *store_iter_new(struct store *s, enum store_cf cf, const void *upper, size_t upper_n)
{
    return iter_make(s, map_ref(s->live[cf]), upper, upper_n);
}

struct store_iter *store_iter_new_overlay(struct store *s, enum store_cf cf, struct store_batch *overlay)
{
    ASSERT(overlay->s == s);
    struct cfmap *m = map_clone(s->live[cf]);
    for (size_t i = 0; i < overlay->n; i++)
        if (overlay->ops[i].cf == cf)
            op_apply(m, &overlay->ops[i]);
    return iter_make(s, m, NULL, 0);
}

struct store_iter *store_iter_new_at(struct store *s, enum store_cf cf, const struct store_snapshot *snap,
                                     const void *upper, size_t upper_n)
{
    if (!snap)
        return store_iter_new(s, cf, upper, upper_n);
    ASSERT(snap->s == s);
    return iter_make(s, map_ref(snap->m[cf]), upper, upper_n);
}

/* Stop at a rotten blob, as RocksDB's iterator stops with a checksum error. */
static void iter_check(struct store_iter *it)
{
    if (it->pos < it->m->n && disk_rotten(it->s->d, it->m->e[it->pos])) {
        it->err = ERR_CORRUPT;
        latch_corrupt(it->s, "simulated disk: a block fails its checksum while iterating");
    }
}

void store_iter_seek(struct store_iter *it, const void *k, size_t kn)
{
    it->seeked = true;
    it->err = 0;
    it->pos = map_lower(it->m, k, kn);
    iter_check(it);
}

bool store_iter_valid(struct store_iter *it)
{
    if (!it->seeked || it->err || it->pos >= it->m->n)
        return false;
    const struct blob *b = it->m->e[it->pos];
    return !it->has_upper || key_cmp(b->data, b->kn, it->upper, it->upper_n) < 0;
}

void store_iter_next(struct store_iter *it)
{
    ASSERT(store_iter_valid(it));
    it->pos++;
    iter_check(it);
}

const uint8_t *store_iter_key(struct store_iter *it, size_t *n)
{
    const struct blob *b = it->m->e[it->pos];
    *n = b->kn;
    return b->data;
}

const uint8_t *store_iter_value(struct store_iter *it, size_t *n)
{
    const struct blob *b = it->m->e[it->pos];
    *n = b->vn;
    return b->data + b->kn;
}

int store_iter_status(struct store_iter *it, struct errbuf *eb)
{
    if (it->err)
        return errf(eb, it->err, "iterate: simulated disk: a block fails its checksum");
    return ERR_OK;
}

void store_iter_free(struct store_iter *it)
{
    if (!it)
        return;
    map_unref(it->m);
    free(it->upper);
    __atomic_sub_fetch(&it->s->nlive, 1, __ATOMIC_ACQ_REL);
    free(it);
}

struct store_snapshot *store_snapshot_new(struct store *s)
{
    struct store_snapshot *snap = calloc(1, sizeof *snap);
    ASSERT(snap != NULL);
    snap->s = s;
    for (int c = 0; c < STORE_CF__COUNT; c++)
        snap->m[c] = map_ref(s->live[c]);
    __atomic_add_fetch(&s->nlive, 1, __ATOMIC_ACQ_REL);
    return snap;
}

void store_snapshot_free(struct store_snapshot *snap)
{
    if (!snap)
        return;
    for (int c = 0; c < STORE_CF__COUNT; c++)
        map_unref(snap->m[c]);
    __atomic_sub_fetch(&snap->s->nlive, 1, __ATOMIC_ACQ_REL);
    free(snap);
}

int store_get_at(struct store *s, enum store_cf cf, const struct store_snapshot *snap, const void *k, size_t kn,
                 struct store_val *out, struct errbuf *eb)
{
    if (!snap)
        return store_get(s, cf, k, kn, NULL, out, eb);
    ASSERT(snap->s == s);
    memset(out, 0, sizeof *out);
    const struct blob *b = map_find(snap->m[cf], k, kn);
    if (!b)
        return ERR_NOT_FOUND;
    return val_out(s, b, out, eb);
}

int store_wipe_cf(struct store *s, enum store_cf cf, bool sync, struct errbuf *eb)
{
    struct op o = {.kind = OP_WIPE, .cf = cf, .b = NULL};
    return disk_write(s, &o, 1, sync, eb, "wipe");
}
