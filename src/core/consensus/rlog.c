/* Owns the in-memory Raft log and the reference-counted entry payloads. */
#include "consensus/rlog.h"

#include <stdlib.h>
#include <string.h>

#include "util/err.h"

void *raft_xrealloc(void *p, size_t n)
{
    void *q = realloc(p, n ? n : 1);
    ASSERT(q != NULL); /* fail-stop: the core has no way to half-apply an event */
    return q;
}

struct raft_blob *rblob_new(const void *data, size_t len)
{
    if (len == 0)
        return NULL;
    struct raft_blob *b = raft_xrealloc(NULL, sizeof *b + len);
    b->refs = 1;
    b->len = len;
    memcpy(b->data, data, len);
    return b;
}

struct raft_blob *rblob_ref(struct raft_blob *b)
{
    if (b) {
        ASSERT(b->refs > 0 && b->refs < UINT32_MAX);
        b->refs++;
    }
    return b;
}

void rblob_unref(struct raft_blob *b)
{
    if (!b)
        return;
    ASSERT(b->refs > 0);
    if (--b->refs == 0)
        free(b);
}

void rlog_init(struct rlog *l, uint64_t snap_index, uint64_t snap_term)
{
    memset(l, 0, sizeof *l);
    l->snap_index = snap_index;
    l->snap_term = snap_term;
    l->stable = snap_index;
}

void rlog_free(struct rlog *l)
{
    for (size_t k = 0; k < l->n; k++)
        rblob_unref(l->ents[k].blob);
    free(l->ents);
    memset(l, 0, sizeof *l);
}

bool rlog_term(const struct rlog *l, uint64_t index, uint64_t *term)
{
    if (index == l->snap_index) {
        *term = l->snap_term;
        return true;
    }
    if (index < l->snap_index || index > rlog_last(l))
        return false;
    *term = l->ents[index - l->snap_index - 1].term;
    return true;
}

bool rlog_match(const struct rlog *l, uint64_t index, uint64_t term)
{
    uint64_t t;
    return rlog_term(l, index, &t) && t == term;
}

const struct raft_entry *rlog_get(const struct rlog *l, uint64_t index)
{
    if (index <= l->snap_index || index > rlog_last(l))
        return NULL;
    return &l->ents[index - l->snap_index - 1];
}

uint64_t rlog_last_term(const struct rlog *l)
{
    return l->n ? l->ents[l->n - 1].term : l->snap_term;
}

void rlog_append(struct rlog *l, const struct raft_entry *e)
{
    /* Log Matching relies on terms never decreasing along the log. */
    ASSERT(e->term >= rlog_last_term(l));
    if (l->n == l->cap) {
        l->cap = l->cap ? l->cap * 2 : 64;
        l->ents = raft_xrealloc(l->ents, l->cap * sizeof *l->ents);
    }
    struct raft_entry *d = &l->ents[l->n++];
    d->term = e->term;
    d->index = rlog_last(l);
    d->type = e->type;
    d->blob = e->blob ? rblob_ref(e->blob) : rblob_new(e->data, e->len);
    d->data = d->blob ? d->blob->data : NULL;
    d->len = d->blob ? d->blob->len : 0;
}

void rlog_truncate(struct rlog *l, uint64_t index)
{
    ASSERT(index > l->snap_index && index <= rlog_last(l) + 1);
    while (rlog_last(l) >= index) {
        l->n--;
        rblob_unref(l->ents[l->n].blob);
    }
    if (l->stable >= index)
        l->stable = index - 1;
}

void rlog_compact(struct rlog *l, uint64_t index)
{
    ASSERT(index > l->snap_index && index <= rlog_last(l));
    size_t drop = (size_t)(index - l->snap_index);
    l->snap_term = l->ents[drop - 1].term;
    for (size_t k = 0; k < drop; k++)
        rblob_unref(l->ents[k].blob);
    memmove(l->ents, l->ents + drop, (l->n - drop) * sizeof *l->ents);
    l->n -= drop;
    l->snap_index = index;
    if (l->stable < index)
        l->stable = index;
}

void rlog_reset(struct rlog *l, uint64_t index, uint64_t term)
{
    for (size_t k = 0; k < l->n; k++)
        rblob_unref(l->ents[k].blob);
    l->n = 0;
    l->snap_index = index;
    l->snap_term = term;
    l->stable = index;
}

uint64_t rlog_find_conflict_by_term(const struct rlog *l, uint64_t index, uint64_t term,
                                    uint64_t *found_term)
{
    if (index > rlog_last(l))
        index = rlog_last(l);
    uint64_t t = 0;
    while (index > l->snap_index) {
        t = l->ents[index - l->snap_index - 1].term;
        if (t <= term) {
            *found_term = t;
            return index;
        }
        index--;
    }
    if (index < l->snap_index) {
        *found_term = 0;
        return index;
    }
    *found_term = l->snap_term;
    return index;
}
