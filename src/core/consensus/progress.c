/* Owns the leader's per-follower replication state machine (probe, replicate,
 * snapshot) and its inflight window. */
#include "consensus/progress.h"

#include <string.h>

#include "util/err.h"

void progress_init(struct progress *p, uint64_t id, uint64_t next, uint32_t max_inflight)
{
    ASSERT(max_inflight >= 1 && max_inflight <= RAFT_MAX_INFLIGHT);
    memset(p, 0, sizeof *p);
    p->id = id;
    p->next = next;
    p->state = PROGRESS_PROBE;
    p->infl.size = max_inflight;
}

void inflights_reset(struct inflights *f)
{
    f->start = 0;
    f->count = 0;
}

void inflights_add(struct inflights *f, uint64_t last)
{
    ASSERT(f->count < f->size);
    f->last[(f->start + f->count) % f->size] = last;
    f->count++;
}

void inflights_free_to(struct inflights *f, uint64_t index)
{
    while (f->count > 0 && f->last[f->start] <= index) {
        f->start = (f->start + 1) % f->size;
        f->count--;
    }
}

void inflights_free_first(struct inflights *f)
{
    if (f->count > 0) {
        f->start = (f->start + 1) % f->size;
        f->count--;
    }
}

void progress_become_probe(struct progress *p)
{
    /* After a snapshot the follower has at least the snapshot's index. */
    if (p->state == PROGRESS_SNAPSHOT) {
        uint64_t s = p->snap_index;
        p->next = (p->match > s ? p->match : s) + 1;
    } else {
        p->next = p->match + 1;
    }
    p->state = PROGRESS_PROBE;
    p->probe_sent = false;
    inflights_reset(&p->infl);
}

void progress_become_replicate(struct progress *p)
{
    p->state = PROGRESS_REPLICATE;
    p->next = p->match + 1;
    p->probe_sent = false;
    inflights_reset(&p->infl);
}

void progress_become_snapshot(struct progress *p, uint64_t snap_index, uint64_t snap_term)
{
    p->state = PROGRESS_SNAPSHOT;
    p->snap_index = snap_index;
    p->snap_term = snap_term;
    p->snap_off = 0;
    p->snap_last_sent = false;
    p->snap_wait = 0;
    p->probe_sent = false;
    inflights_reset(&p->infl);
}

bool progress_update(struct progress *p, uint64_t index)
{
    bool moved = false;
    if (p->match < index) {
        p->match = index;
        moved = true;
        p->probe_sent = false;
    }
    if (p->next < index + 1)
        p->next = index + 1;
    return moved;
}

bool progress_decr_to(struct progress *p, uint64_t rejected, uint64_t hint)
{
    if (p->state == PROGRESS_REPLICATE) {
        /* An answer to an append below what already matched is stale. */
        if (rejected <= p->match)
            return false;
        p->next = p->match + 1;
        return true;
    }
    /* PROBE: only the answer to the append we are waiting for counts. */
    if (p->next == 0 || p->next - 1 != rejected)
        return false;
    uint64_t n = rejected < hint + 1 ? rejected : hint + 1;
    if (n < p->match + 1)
        n = p->match + 1;
    if (n < 1)
        n = 1;
    p->next = n;
    p->probe_sent = false;
    return true;
}

bool progress_paused(const struct progress *p)
{
    switch (p->state) {
    case PROGRESS_PROBE: return p->probe_sent;
    case PROGRESS_REPLICATE: return inflights_full(&p->infl);
    default: return true;
    }
}

void progress_sent(struct progress *p, uint64_t last, uint32_t n_entries)
{
    if (p->state == PROGRESS_REPLICATE) {
        if (n_entries > 0) {
            p->next = last + 1;
            inflights_add(&p->infl, last);
        }
    } else if (p->state == PROGRESS_PROBE) {
        p->probe_sent = true;
    }
}
