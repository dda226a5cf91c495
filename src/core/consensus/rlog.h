/* The in-memory Raft log: entries after the last snapshot, with the index up
 * to which the caller has made them durable. Internal to src/core/consensus. */
#ifndef DDKV_CONSENSUS_RLOG_H
#define DDKV_CONSENSUS_RLOG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "consensus/raft.h"

struct rlog {
    struct raft_entry *ents; /* ents[k] has index snap_index + 1 + k */
    size_t n, cap;
    uint64_t snap_index;     /* last index covered by the snapshot (0: none) */
    uint64_t snap_term;
    uint64_t stable;         /* highest index known durable, >= snap_index */
};

/* Blobs: reference-counted payloads. NULL is a valid empty blob. */
struct raft_blob *rblob_new(const void *data, size_t len);
struct raft_blob *rblob_ref(struct raft_blob *b);
void rblob_unref(struct raft_blob *b);

/* Allocation that cannot fail (fail-stop on out of memory). */
void *raft_xrealloc(void *p, size_t n);

void rlog_init(struct rlog *l, uint64_t snap_index, uint64_t snap_term);
void rlog_free(struct rlog *l);

static inline uint64_t rlog_first(const struct rlog *l) { return l->snap_index + 1; }
static inline uint64_t rlog_last(const struct rlog *l) { return l->snap_index + l->n; }

/* Term at index: true with *term set when known (the snapshot's last index
 * counts; compacted and future indexes do not). Index 0 has term 0. */
bool rlog_term(const struct rlog *l, uint64_t index, uint64_t *term);
/* True when the entry at index is known and has this term. */
bool rlog_match(const struct rlog *l, uint64_t index, uint64_t term);
/* Entry at index, NULL when outside [first, last]. Borrowed. */
const struct raft_entry *rlog_get(const struct rlog *l, uint64_t index);
/* Term of the last entry. */
uint64_t rlog_last_term(const struct rlog *l);

/* Append one entry at last + 1. The data is copied into a new blob unless
 * e->blob is set, in which case the log takes a reference to it. */
void rlog_append(struct rlog *l, const struct raft_entry *e);
/* Drop entries >= index (index > snap_index); stable falls below index. */
void rlog_truncate(struct rlog *l, uint64_t index);
/* Drop entries <= index (snap_index < index <= last); index becomes the
 * snapshot point. */
void rlog_compact(struct rlog *l, uint64_t index);
/* Replace everything by a snapshot at (index, term), durable from there on. */
void rlog_reset(struct rlog *l, uint64_t index, uint64_t term);

/* The largest index <= index whose term is <= term, as far back as the
 * snapshot point (fast backtracking, thesis 5.3 optimization). */
uint64_t rlog_find_conflict_by_term(const struct rlog *l, uint64_t index, uint64_t term,
                                    uint64_t *found_term);

#endif
