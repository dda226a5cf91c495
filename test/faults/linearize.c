/* Wing-Gong-Lowe linearizability search over per-key register histories (see
 * linearize.h). */
#include "linearize.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The search gives up (reports -1) past this many explored configurations
 * per key rather than run for hours on a pathological history. */
#define LIN_MAX_CONFIGS 20000000u

/* One event of the doubly linked list the search walks. */
struct ev {
    bool is_call;
    uint64_t time;
    size_t op;           /* index into the key's op array */
    struct ev *match;    /* call <-> return */
    struct ev *prev, *next;
};

struct kop {
    const struct lin_op *src;
    int value, expected;  /* interned; -1 = absent */
    bool optional_end;    /* unknown: no return event */
};

/* Interned values: small ints, so the state is an int. */
struct interner {
    const char **s;
    size_t n, cap;
};

static int intern(struct interner *in, const char *v)
{
    if (!v)
        return -1;
    for (size_t i = 0; i < in->n; i++)
        if (strcmp(in->s[i], v) == 0)
            return (int)i;
    if (in->n == in->cap) {
        in->cap = in->cap ? in->cap * 2 : 16;
        in->s = realloc(in->s, in->cap * sizeof *in->s);
    }
    in->s[in->n] = v;
    return (int)in->n++;
}

/* The register's step: can op take effect in state, and what state follows? */
static bool step(const struct kop *k, int state, int *next)
{
    const struct lin_op *o = k->src;
    switch (o->kind) {
    case LIN_READ:
        *next = state;
        return state == k->value;
    case LIN_WRITE:
        *next = k->value;
        return true;
    case LIN_CAS:
        if (o->outcome == LIN_UNKNOWN) { /* swapped if it could, else nothing */
            *next = state == k->expected ? k->value : state;
            return true;
        }
        if (o->succeeded) {
            *next = k->value;
            return state == k->expected;
        }
        *next = state;
        return state != k->expected;
    case LIN_LIST: /* turned into reads before the search */
        break;
    }
    return false;
}

/* The explored set: (linearized bitset, state) pairs, open addressing. */
struct cache {
    uint64_t *bits; /* cap entries of `words` words each */
    int *state;
    bool *used;
    size_t cap, n, words;
};

static uint64_t cache_hash(const uint64_t *b, size_t words, int state)
{
    uint64_t h = (uint64_t)(unsigned)state * UINT64_C(0x9e3779b97f4a7c15);
    for (size_t i = 0; i < words; i++) {
        h ^= b[i] + UINT64_C(0x9e3779b97f4a7c15) + (h << 6) + (h >> 2);
    }
    return h;
}

static bool cache_insert(struct cache *c, const uint64_t *b, int state);

static void cache_grow(struct cache *c)
{
    struct cache old = *c;
    c->cap = old.cap ? old.cap * 2 : 1024;
    c->bits = calloc(c->cap * c->words, sizeof *c->bits);
    c->state = calloc(c->cap, sizeof *c->state);
    c->used = calloc(c->cap, sizeof *c->used);
    c->n = 0;
    for (size_t i = 0; i < old.cap; i++)
        if (old.used[i])
            cache_insert(c, old.bits + i * old.words, old.state[i]);
    free(old.bits);
    free(old.state);
    free(old.used);
}

/* True if newly inserted, false if it was there. */
static bool cache_insert(struct cache *c, const uint64_t *b, int state)
{
    if ((c->n + 1) * 2 > c->cap)
        cache_grow(c);
    size_t i = (size_t)cache_hash(b, c->words, state) & (c->cap - 1);
    for (;; i = (i + 1) & (c->cap - 1)) {
        if (!c->used[i]) {
            c->used[i] = true;
            c->state[i] = state;
            memcpy(c->bits + i * c->words, b, c->words * sizeof *b);
            c->n++;
            return true;
        }
        if (c->state[i] == state && memcmp(c->bits + i * c->words, b, c->words * sizeof *b) == 0)
            return false;
    }
}

static void lift(struct ev *call)
{
    call->prev->next = call->next;
    call->next->prev = call->prev;
    if (call->match) {
        call->match->prev->next = call->match->next;
        call->match->next->prev = call->match->prev;
    }
}

static void unlift(struct ev *call)
{
    if (call->match) {
        call->match->prev->next = call->match;
        call->match->next->prev = call->match;
    }
    call->prev->next = call;
    call->next->prev = call;
}

static int cmp_ev(const void *a, const void *b)
{
    const struct ev *x = *(struct ev *const *)a, *y = *(struct ev *const *)b;
    if (x->time != y->time)
        return x->time < y->time ? -1 : 1;
    /* At equal times a call comes first: the two overlap. */
    return (int)y->is_call - (int)x->is_call;
}

/* Check one key's operations. */
static int check_key(const struct lin_op *const *ops, size_t n, struct lin_report *r)
{
    struct interner in = {0};
    struct kop *k = calloc(n ? n : 1, sizeof *k);
    struct ev *evs = calloc(2 * n + 2, sizeof *evs);
    struct ev **order = calloc(2 * n + 1, sizeof *order);
    size_t ne = 0;
    for (size_t i = 0; i < n; i++) {
        k[i].src = ops[i];
        k[i].value = intern(&in, ops[i]->value);
        k[i].expected = intern(&in, ops[i]->expected);
        k[i].optional_end = ops[i]->outcome == LIN_UNKNOWN;
        struct ev *c = &evs[ne++];
        *c = (struct ev){.is_call = true, .time = ops[i]->call, .op = i};
        order[ne - 1] = c;
        if (!k[i].optional_end) {
            struct ev *ret = &evs[ne++];
            *ret = (struct ev){.is_call = false, .time = ops[i]->ret, .op = i, .match = c};
            c->match = ret;
            order[ne - 1] = ret;
        }
    }
    qsort(order, ne, sizeof *order, cmp_ev);
    struct ev head = {0}, tail = {0};
    struct ev *p = &head;
    for (size_t i = 0; i < ne; i++) {
        p->next = order[i];
        order[i]->prev = p;
        p = order[i];
    }
    p->next = &tail;
    tail.prev = p;

    struct cache cache = {.words = (n + 63) / 64 ? (n + 63) / 64 : 1};
    uint64_t *bits = calloc(cache.words, sizeof *bits);
    struct { struct ev *call; int state; } *stack = calloc(n + 1, sizeof *stack);
    size_t depth = 0, best = 0;
    const struct lin_op *stuck = NULL;
    int state = -1, rc = 0;
    bool ok = true;
    struct ev *e = head.next;
    size_t explored = 0, required = 0;
    for (size_t i = 0; i < n; i++)
        required += !k[i].optional_end;
    for (;;) {
        /* Done when no required operation is left: what remains are calls of
         * unknown operations, which may simply never have taken effect. */
        if (required == 0)
            break;
        if (e == &tail) {
            /* Only unknown calls were left to try from here: back up. */
            goto backtrack;
        }
        if (e->is_call) {
            int next;
            if (step(&k[e->op], state, &next)) {
                bits[e->op / 64] |= UINT64_C(1) << (e->op % 64);
                if (cache_insert(&cache, bits, next)) {
                    if (++explored > LIN_MAX_CONFIGS) {
                        snprintf(r->why, sizeof r->why, "search bound passed on key %s", ops[0]->key);
                        rc = -1;
                        break;
                    }
                    stack[depth].call = e;
                    stack[depth].state = state;
                    depth++;
                    if (depth > best)
                        best = depth;
                    state = next;
                    required -= !k[e->op].optional_end;
                    lift(e);
                    e = head.next;
                    continue;
                }
                bits[e->op / 64] &= ~(UINT64_C(1) << (e->op % 64));
            }
            e = e->next;
            continue;
        }
        /* A return whose operation has not been placed. */
        if (!stuck || depth >= best)
            stuck = k[e->op].src;
    backtrack:
        if (depth == 0) {
            ok = false;
            break;
        }
        depth--;
        e = stack[depth].call;
        state = stack[depth].state;
        bits[e->op / 64] &= ~(UINT64_C(1) << (e->op % 64));
        required += !k[e->op].optional_end;
        unlift(e);
        e = e->next;
    }
    if (rc == 0 && !ok) {
        r->linearizable = false;
        snprintf(r->key, sizeof r->key, "%s", ops[0]->key);
        if (stuck)
            r->stuck = *stuck;
        r->prefix = best;
        if (stuck && stuck->from_list)
            snprintf(r->why, sizeof r->why,
                     "key %s: no order of its %zu operations is legal; at most %zu could be placed, "
                     "then the list page from line %zu (which saw %s %s) could not", ops[0]->key, n, best,
                     stuck->line, ops[0]->key, stuck->value ? stuck->value : "absent");
        else
            snprintf(r->why, sizeof r->why,
                     "key %s: no order of its %zu operations is legal; at most %zu could be placed, "
                     "then the operation from line %zu could not", ops[0]->key, n, best, stuck ? stuck->line : 0);
    }
    free(stack);
    free(bits);
    free(cache.bits);
    free(cache.state);
    free(cache.used);
    free(order);
    free(evs);
    free(k);
    free(in.s);
    return rc;
}

static int cmp_key(const void *a, const void *b)
{
    const struct lin_op *x = *(const struct lin_op *const *)a, *y = *(const struct lin_op *const *)b;
    return strcmp(x->key, y->key);
}

/* --- LIST pages: reads of every key in the range they cover --- */

static bool answered_page(const struct lin_op *o)
{
    return o->kind == LIN_LIST && o->outcome == LIN_OK;
}

static int cmp_strp(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* The keys the history names (operations, and entries of answered pages),
 * sorted and unique, borrowed from ops; *nk of them. NULL when out of memory. */
static const char **history_keys(const struct lin_op *ops, size_t n, size_t *nk)
{
    size_t cap = 1;
    for (size_t i = 0; i < n; i++)
        cap += ops[i].kind == LIN_LIST ? (answered_page(&ops[i]) ? ops[i].nentries : 0) : 1;
    const char **k = malloc(cap * sizeof *k);
    if (!k)
        return NULL;
    size_t m = 0;
    for (size_t i = 0; i < n; i++) {
        if (ops[i].kind != LIN_LIST)
            k[m++] = ops[i].key;
        else if (answered_page(&ops[i]))
            for (size_t e = 0; e < ops[i].nentries; e++)
                k[m++] = ops[i].entries[e].key;
    }
    qsort(k, m, sizeof *k, cmp_strp);
    size_t u = 0;
    for (size_t i = 0; i < m; i++)
        if (u == 0 || strcmp(k[u - 1], k[i]) != 0)
            k[u++] = k[i];
    *nk = u;
    return k;
}

/* Whether key is in the range page p covers: its prefix, after p->after, and
 * (when more keys remain) not after its last entry. */
static bool page_covers(const struct lin_op *p, const char *key)
{
    if (strncmp(key, p->key, strlen(p->key)) != 0)
        return false;
    if (p->after && strcmp(key, p->after) <= 0)
        return false;
    if (p->more)
        return p->nentries > 0 && strcmp(key, p->entries[p->nentries - 1].key) <= 0;
    return true;
}

/* A page's entries must be in its range, in strictly increasing key order. */
static bool page_well_formed(const struct lin_op *p, const char **bad_key)
{
    for (size_t e = 0; e < p->nentries; e++) {
        const char *k = p->entries[e].key;
        if (!k || !p->entries[e].value || !page_covers(p, k) ||
            (e > 0 && strcmp(p->entries[e - 1].key, k) >= 0)) {
            *bad_key = k ? k : "(null)";
            return false;
        }
    }
    return true;
}

/* What page p saw of a key it covers: the value returned, or NULL (absent). */
static const char *page_value(const struct lin_op *p, const char *key)
{
    for (size_t e = 0; e < p->nentries; e++)
        if (strcmp(p->entries[e].key, key) == 0)
            return p->entries[e].value;
    return NULL;
}

/* Turn the answered pages into reads: *out (caller frees) holds them, *nout of
 * them. -1 out of memory; 1 when a page is malformed (r says which). */
static int derive_page_reads(const struct lin_op *ops, size_t n, struct lin_op **out, size_t *nout,
                             struct lin_report *r)
{
    size_t nk = 0, nd = 0;
    const char **keys = history_keys(ops, n, &nk);
    if (!keys)
        return -1;
    for (size_t i = 0; i < n; i++)
        if (answered_page(&ops[i]))
            for (size_t k = 0; k < nk; k++)
                nd += page_covers(&ops[i], keys[k]);
    struct lin_op *d = calloc(nd ? nd : 1, sizeof *d);
    if (!d) {
        free(keys);
        return -1;
    }
    size_t m = 0;
    for (size_t i = 0; i < n; i++) {
        const struct lin_op *p = &ops[i];
        if (!answered_page(p))
            continue;
        r->pages++;
        const char *bad = NULL;
        if (!page_well_formed(p, &bad)) {
            r->linearizable = false;
            snprintf(r->key, sizeof r->key, "%s", bad);
            r->stuck = *p;
            snprintf(r->why, sizeof r->why,
                     "the list page from line %zu (prefix %s, after %s) returned %s out of its range or order",
                     p->line, p->key, p->after ? p->after : "none", bad);
            free(d);
            free(keys);
            return 1;
        }
        for (size_t k = 0; k < nk; k++) {
            if (!page_covers(p, keys[k]))
                continue;
            d[m] = (struct lin_op){.client = p->client, .kind = LIN_READ, .key = keys[k],
                                   .value = page_value(p, keys[k]), .call = p->call, .ret = p->ret,
                                   .outcome = LIN_OK, .line = p->line, .from_list = true};
            m++;
        }
    }
    free(keys);
    *out = d;
    *nout = m;
    return 0;
}

int lin_check(const struct lin_op *ops, size_t n, struct lin_report *r)
{
    memset(r, 0, sizeof *r);
    r->linearizable = true;
    struct lin_op *derived = NULL;
    size_t nd = 0;
    int rc = derive_page_reads(ops, n, &derived, &nd, r);
    if (rc != 0) {
        if (rc < 0)
            snprintf(r->why, sizeof r->why, "out of memory");
        return rc < 0 ? -1 : 0;
    }
    const struct lin_op **keep = calloc(n + nd + 1, sizeof *keep);
    if (!keep) {
        free(derived);
        snprintf(r->why, sizeof r->why, "out of memory");
        return -1;
    }
    size_t m = 0;
    for (size_t i = 0; i < n; i++) {
        const struct lin_op *o = &ops[i];
        if (o->kind == LIN_LIST || o->outcome == LIN_FAILED || (o->outcome == LIN_UNKNOWN && o->kind == LIN_READ))
            continue; /* a page (its reads come next), never took effect, or says nothing */
        keep[m++] = o;
    }
    for (size_t i = 0; i < nd; i++)
        keep[m++] = &derived[i];
    qsort(keep, m, sizeof *keep, cmp_key);
    for (size_t i = 0; i < m && rc == 0 && r->linearizable;) {
        size_t j = i;
        while (j < m && strcmp(keep[j]->key, keep[i]->key) == 0)
            j++;
        rc = check_key(keep + i, j - i, r);
        r->keys++;
        r->ops_checked += j - i;
        i = j;
    }
    free(keep);
    free(derived);
    return rc;
}

/* --- JSON lines --- */

static const char *json_str_or_null(json_t *o, const char *name, bool *bad)
{
    json_t *v = json_object_get(o, name);
    if (!v || json_is_null(v))
        return NULL;
    if (!json_is_string(v)) {
        *bad = true;
        return NULL;
    }
    return json_string_value(v);
}

/* A list line's "after", "entries" and "more" into op (strings borrowed from
 * o; op->entries allocated, the caller frees). False if malformed. */
static bool parse_page(json_t *o, struct lin_op *op)
{
    bool bad = false;
    op->after = json_str_or_null(o, "after", &bad);
    json_t *more = json_object_get(o, "more"), *ents = json_object_get(o, "entries");
    if (bad || (more && !json_is_boolean(more)) || (ents && !json_is_array(ents)))
        return false;
    op->more = json_is_true(more);
    size_t n = json_array_size(ents);
    struct lin_entry *e = calloc(n ? n : 1, sizeof *e);
    if (!e)
        return false;
    op->entries = e;
    op->nentries = n;
    for (size_t i = 0; i < n; i++) {
        json_t *kv = json_array_get(ents, i);
        json_t *k = json_array_get(kv, 0), *v = json_array_get(kv, 1);
        if (!json_is_array(kv) || json_array_size(kv) != 2 || !json_is_string(k) || !json_is_string(v))
            return false;
        e[i].key = json_string_value(k);
        e[i].value = json_string_value(v);
    }
    return true;
}

int lin_check_file(const char *path, struct lin_report *r)
{
    memset(r, 0, sizeof *r);
    FILE *f = fopen(path, "r");
    if (!f) {
        snprintf(r->why, sizeof r->why, "cannot open %s", path);
        return -1;
    }
    struct lin_op *ops = NULL;
    json_t **keep = NULL; /* the parsed lines own the strings */
    size_t n = 0, cap = 0, line = 0;
    char *buf = NULL;
    size_t bcap = 0;
    int rc = 0;
    while (getline(&buf, &bcap, f) > 0) {
        line++;
        json_error_t je;
        json_t *o = json_loads(buf, 0, &je);
        if (!o || !json_is_object(o)) {
            snprintf(r->why, sizeof r->why, "%s:%zu: not a JSON object", path, line);
            json_decref(o);
            rc = -1;
            break;
        }
        if (n == cap) {
            cap = cap ? cap * 2 : 256;
            ops = realloc(ops, cap * sizeof *ops);
            keep = realloc(keep, cap * sizeof *keep);
        }
        keep[n] = o;
        struct lin_op *op = &ops[n];
        memset(op, 0, sizeof *op);
        op->line = line;
        bool bad = false;
        const char *kind = json_str_or_null(o, "op", &bad);
        bool page = kind && strcmp(kind, "list") == 0;
        op->key = json_str_or_null(o, page ? "prefix" : "key", &bad);
        op->value = json_str_or_null(o, "value", &bad);
        op->expected = json_str_or_null(o, "expected", &bad);
        json_t *okv = json_object_get(o, "ok");
        op->client = (int)json_integer_value(json_object_get(o, "client"));
        op->call = (uint64_t)json_integer_value(json_object_get(o, "call"));
        op->ret = (uint64_t)json_integer_value(json_object_get(o, "return"));
        op->kind = kind && strcmp(kind, "read") == 0    ? LIN_READ
                   : kind && strcmp(kind, "write") == 0 ? LIN_WRITE
                   : kind && strcmp(kind, "cas") == 0   ? LIN_CAS
                   : page                               ? LIN_LIST
                                                        : (bad = true, LIN_READ);
        if (page && !parse_page(o, op))
            bad = true;
        if (json_is_true(okv)) {
            op->outcome = LIN_OK;
            op->succeeded = true;
        } else if (json_is_false(okv)) {
            /* A CAS answered "not swapped" happened (it read the value); a
             * read or write answered with an error did not. */
            op->outcome = op->kind == LIN_CAS ? LIN_OK : LIN_FAILED;
            op->succeeded = false;
        } else if (json_is_string(okv) && strcmp(json_string_value(okv), "unknown") == 0) {
            op->outcome = LIN_UNKNOWN;
        } else {
            bad = true;
        }
        if (bad || !op->key) {
            snprintf(r->why, sizeof r->why,
                     "%s:%zu: want op, key (list: prefix, after, entries [[key, value], ...], more), "
                     "ok (true|false|\"unknown\")", path, line);
            rc = -1;
            n++;
            break;
        }
        n++;
    }
    free(buf);
    fclose(f);
    if (rc == 0)
        rc = lin_check(ops, n, r);
    for (size_t i = 0; i < n; i++) {
        free((void *)ops[i].entries);
        json_decref(keep[i]);
    }
    free(keep);
    free(ops);
    return rc;
}
