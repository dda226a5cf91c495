/* Durable Raft state in the store: log entries, hard state, snapshot metadata.
 *
 * Column families (see docs/disk-format.md):
 *   raft_log    key: big-endian u64 index -> [term u64][type u8][data...]
 *   raft_state  "hard_state" -> [term u64][vote u64][commit u64]
 *               "snapshot"   -> [index u64][term u64][n u32][learners u32][ids u64 * n]
 * Changes are staged into a store batch, so the caller decides which ones go
 * to disk together and with one fsync (group commit). */
#ifndef DDKV_KV_RAFTLOG_H
#define DDKV_KV_RAFTLOG_H

#include "consensus/raft.h"
#include "kv/store.h"

/* What raftlog_load found. entries[] and their data are owned by the struct:
 * release with raftlog_loaded_free. */
struct raftlog_loaded {
    struct raft_hard_state hs;
    struct raft_snap_meta snap;
    struct raft_entry *entries; /* snap.index + 1 ... last, contiguous */
    size_t n_entries;
    uint8_t *arena;             /* holds every entry's data */
};

/* Read everything back. ERR_CORRUPT when a record is malformed or the log has
 * a gap (eb says where). */
int raftlog_load(struct store *st, struct raftlog_loaded *out, struct errbuf *eb);
void raftlog_loaded_free(struct raftlog_loaded *l);

/* Stage entries e[0..n) (contiguous). Stored entries from e[0].index up to
 * old_last (the last index stored before this call) are deleted first: a
 * follower's log is overwritten from the first conflicting entry. */
void raftlog_stage_entries(struct store_batch *b, const struct raft_entry *e, size_t n,
                           uint64_t old_last);
void raftlog_stage_hard_state(struct store_batch *b, const struct raft_hard_state *hs);
void raftlog_stage_snapshot(struct store_batch *b, const struct raft_snap_meta *m);
/* Forget entries first..upto (after a snapshot covers them). */
void raftlog_stage_compact(struct store_batch *b, uint64_t first, uint64_t upto);

#endif
