/* Watch history and streams (see watch.h). */
#include "node/mod/watch.h"

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <stdlib.h>
#include <string.h>

#include "node/node_int.h"
#include "util/log.h"

static struct watch_event *hist_at(const struct watch_hub *h, uint64_t seq)
{
    return h->ring[(seq - 1) % WATCH_HISTORY_EVENTS];
}

int watch_init(struct watch_hub *h, uint64_t applied, size_t max_bytes)
{
    memset(h, 0, sizeof *h);
    h->ring = calloc(WATCH_HISTORY_EVENTS, sizeof *h->ring);
    if (!h->ring)
        return ERR_NOMEM;
    h->first_seq = h->next_seq = 1;
    h->oldest_rev = applied + 1;
    h->max_bytes = max_bytes;
    return ERR_OK;
}

static void hist_clear(struct watch_hub *h)
{
    for (uint64_t s = h->first_seq; s < h->next_seq; s++)
        free(hist_at(h, s));
    h->first_seq = h->next_seq;
    h->bytes = 0;
}

void watch_discard(struct watch_hub *h)
{
    for (size_t i = 0; i < h->npending; i++)
        free(h->pending[i]);
    h->npending = 0;
}

static void watcher_free(struct watcher *w)
{
    ASSERT(w->c->watches > 0);
    w->c->watches--;
    conn_unref(w->c);
    free(w->prefix);
    free(w);
}

void watch_free(struct watch_hub *h)
{
    if (!h->ring)
        return;
    hist_clear(h);
    watch_discard(h);
    free(h->pending);
    while (h->watchers) {
        struct watcher *w = h->watchers;
        h->watchers = w->next;
        watcher_free(w);
    }
    free(h->ring);
    h->ring = NULL;
}

void watch_stage(struct watch_hub *h, uint8_t kind, const uint8_t *key, size_t klen, const uint8_t *val,
                 size_t vlen, uint64_t create_rev, uint64_t mod_rev, uint64_t version, uint64_t lamport)
{
    struct watch_event *e = malloc(sizeof *e + klen + vlen);
    ASSERT(e != NULL);
    *e = (struct watch_event){.kind = kind, .create_rev = create_rev, .mod_rev = mod_rev,
                              .version = version, .lamport = lamport, .klen = (uint32_t)klen,
                              .vlen = (uint32_t)vlen};
    if (klen)
        memcpy(e->data, key, klen);
    if (vlen)
        memcpy(e->data + klen, val, vlen);
    if (h->npending == h->cappending) {
        size_t cap = h->cappending ? h->cappending * 2 : 64;
        struct watch_event **p = realloc(h->pending, cap * sizeof *p);
        ASSERT(p != NULL);
        h->pending = p;
        h->cappending = cap;
    }
    h->pending[h->npending++] = e;
}

/* Drop the oldest event; its revision is no longer wholly held. */
static void hist_evict(struct watch_hub *h)
{
    struct watch_event *e = hist_at(h, h->first_seq);
    if (e->mod_rev + 1 > h->oldest_rev)
        h->oldest_rev = e->mod_rev + 1;
    h->bytes -= e->klen + e->vlen;
    free(e);
    h->first_seq++;
}

static bool conn_output_full(const struct conn *c)
{
    if (!c->bev)
        return c->out == NULL; /* a detached connection (conn.h) takes every frame at once */
    return evbuffer_get_length(bufferevent_get_output(c->bev)) >= WATCH_OUT_HIGH;
}

/* Write what the watcher may have now. Returns false if it was cut off (and
 * freed by the caller). */
static bool watcher_pump(struct node *n, struct watcher *w)
{
    struct watch_hub *h = &n->watch;
    if (!conn_is_open(w->c))
        return false;
    if (w->next_seq < h->first_seq) {
        /* It fell behind what the history holds: its stream has a gap now. */
        h->cut_off++;
        conn_reply_error(w->c, w->request_id, DDKV_WERR_COMPACTED,
                         "watch fell behind the history; oldest revision available %llu",
                         (unsigned long long)h->oldest_rev);
        return false;
    }
    while (w->next_seq < h->next_seq && !conn_output_full(w->c)) {
        const struct watch_event *e = hist_at(h, w->next_seq++);
        if (e->mod_rev < w->from_rev || e->klen < w->plen ||
            (w->plen && memcmp(e->data, w->prefix, w->plen) != 0))
            continue;
        struct msg_writer mw;
        conn_reply_begin(w->c, &mw, DDKV_MSG_EVENT, w->request_id, 7);
        mw_u64(&mw, e->kind);
        mw_bin(&mw, e->data, e->klen);
        mw_bin(&mw, e->data + e->klen, e->vlen);
        mw_u64(&mw, e->create_rev);
        mw_u64(&mw, e->mod_rev);
        mw_u64(&mw, e->version);
        mw_u64(&mw, e->lamport);
        conn_reply_end(w->c, &mw);
        h->delivered++;
    }
    return true;
}

static void watch_pump_all(struct node *n, const struct conn *only)
{
    struct watcher **pp = &n->watch.watchers;
    while (*pp) {
        struct watcher *w = *pp;
        if ((only && w->c != only) || watcher_pump(n, w)) {
            pp = &w->next;
            continue;
        }
        *pp = w->next;
        watcher_free(w);
    }
}

void watch_publish(struct node *n)
{
    struct watch_hub *h = &n->watch;
    if (!h->npending)
        return;
    for (size_t i = 0; i < h->npending; i++) {
        struct watch_event *e = h->pending[i];
        while (h->next_seq - h->first_seq >= WATCH_HISTORY_EVENTS ||
               (h->first_seq < h->next_seq && h->bytes + e->klen + e->vlen > h->max_bytes))
            hist_evict(h);
        e->seq = h->next_seq++;
        h->ring[(e->seq - 1) % WATCH_HISTORY_EVENTS] = e;
        h->bytes += e->klen + e->vlen;
    }
    h->npending = 0;
    watch_pump_all(n, NULL);
}

void watch_reset(struct node *n, uint64_t applied)
{
    struct watch_hub *h = &n->watch;
    watch_discard(h);
    hist_clear(h);
    /* Watchers positioned before the reset cannot be served without a gap:
     * a sequence number is skipped, so that every one of them, the caught-up
     * ones (next_seq == the old next_seq) included, is now behind first_seq
     * and told COMPACTED, instead of going on silently past the jump. */
    h->next_seq++;
    h->first_seq = h->next_seq;
    h->oldest_rev = applied + 1;
    watch_pump_all(n, NULL);
}

void watch_conn_writable(struct node *n, struct conn *c)
{
    if (n->watch.watchers)
        watch_pump_all(n, c);
}

void watch_conn_closed(struct node *n, struct conn *c)
{
    struct watcher **pp = &n->watch.watchers;
    while (*pp) {
        struct watcher *w = *pp;
        if (w->c != c) {
            pp = &w->next;
            continue;
        }
        *pp = w->next;
        watcher_free(w);
    }
}

/* The first held event of revision >= rev (the history is in revision order). */
static uint64_t hist_find(const struct watch_hub *h, uint64_t rev)
{
    uint64_t lo = h->first_seq, hi = h->next_seq;
    while (lo < hi) {
        uint64_t mid = lo + (hi - lo) / 2;
        if (hist_at(h, mid)->mod_rev < rev)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

/* WATCH [prefix, from_rev] */
static void watch_handle(void *ctx, struct conn *c, const struct msg *m)
{
    struct node *n = ctx;
    struct watch_hub *h = &n->watch;
    const uint8_t *prefix;
    size_t plen;
    uint64_t from;
    if (msg_bytes_opt(m, 0, &prefix, &plen) || msg_u64_opt(m, 1, 0, &from)) {
        conn_reply_error(c, m->request_id, DDKV_WERR_BAD_REQUEST, "WATCH wants [prefix, from_rev]");
        return;
    }
    if (plen > n->cfg.max_key_bytes) {
        conn_reply_error(c, m->request_id, DDKV_WERR_TOO_LARGE, "prefix over the key limit");
        return;
    }
    uint64_t start;
    if (from == 0) {
        start = h->next_seq;
    } else if (from < h->oldest_rev) {
        conn_reply_error(c, m->request_id, DDKV_WERR_COMPACTED,
                         "revision %llu is older than this member's history; oldest revision available %llu",
                         (unsigned long long)from, (unsigned long long)h->oldest_rev);
        return;
    } else {
        start = hist_find(h, from);
    }
    if (c->watches >= WATCH_MAX_PER_CONN) {
        conn_reply_error(c, m->request_id, DDKV_WERR_BAD_REQUEST,
                         "%u watches on this connection already: open another connection", WATCH_MAX_PER_CONN);
        return;
    }
    struct watcher *w = calloc(1, sizeof *w);
    ASSERT(w != NULL);
    if (plen) {
        w->prefix = malloc(plen);
        ASSERT(w->prefix != NULL);
        memcpy(w->prefix, prefix, plen);
    }
    w->plen = plen;
    w->c = c;
    conn_ref(c);
    c->watches++;
    w->request_id = m->request_id;
    w->next_seq = start;
    w->from_rev = from;
    w->next = h->watchers;
    h->watchers = w;
    n->stats.watches++;
    watch_pump_all(n, c);
}

static int watch_mod_init(struct node *n, struct errbuf *eb)
{
    if (watch_init(&n->watch, n->sm.applied_index, n->cfg.watch_history_bytes))
        return errf(eb, ERR_NOMEM, "out of memory for the watch history");
    return dispatcher_register(&n->disp, DDKV_MSG_WATCH, "watch", watch_handle, n, eb);
}

static void watch_mod_free(struct node *n)
{
    watch_free(&n->watch);
}

/* Each change the state machine stages is held until its batch commits. */
static void watch_on_change(struct node *n, const struct sm_event *ev)
{
    watch_stage(&n->watch, ev->kind, ev->key, ev->klen, ev->val, ev->vlen, ev->create_rev, ev->mod_rev,
                ev->version, ev->lamport);
}

static void watch_on_apply_end(struct node *n, bool ok)
{
    if (ok)
        watch_publish(n);
    else
        watch_discard(&n->watch);
}

/* Only while the output holds less than WATCH_OUT_HIGH is it topped up. */
static void watch_on_conn_writable(struct node *n, struct conn *c)
{
    if (evbuffer_get_length(bufferevent_get_output(c->bev)) < WATCH_OUT_HIGH)
        watch_conn_writable(n, c);
}

const struct module mod_watch = {
    .name = "watch",
    .init = watch_mod_init,
    .on_change = watch_on_change,
    .on_apply_end = watch_on_apply_end,
    .on_state_replaced = watch_reset,
    .on_conn_writable = watch_on_conn_writable,
    .on_conn_closed = watch_conn_closed,
    .free = watch_mod_free,
};
