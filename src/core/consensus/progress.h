/* What a leader knows about one follower: how much of the log matches, what
 * to send next, and the flow-control window of appends in flight. Internal to
 * src/core/consensus. */
#ifndef DDKV_CONSENSUS_PROGRESS_H
#define DDKV_CONSENSUS_PROGRESS_H

#include <stdbool.h>
#include <stdint.h>

#include "consensus/raft.h"

enum progress_state {
    PROGRESS_PROBE = 0,     /* one append at a time until the match point is found */
    PROGRESS_REPLICATE = 1, /* pipelined appends, up to the inflight window */
    PROGRESS_SNAPSHOT = 2,  /* sending InstallSnapshot chunks, no appends */
};

/* Last indexes of the appends in flight, oldest first (a ring). */
struct inflights {
    uint32_t start, count, size;
    uint64_t last[RAFT_MAX_INFLIGHT];
};

struct progress {
    uint64_t id;
    uint64_t match;      /* highest index known replicated (durable) on the follower */
    uint64_t next;       /* next index to send */
    uint8_t state;       /* enum progress_state */
    bool probe_sent;     /* PROBE: an append is out, wait for its answer or a heartbeat reply */
    bool recent_active;  /* heard from within this election timeout (check-quorum) */
    struct inflights infl;
    /* PROGRESS_SNAPSHOT */
    uint64_t snap_index, snap_term;
    uint64_t snap_off;   /* bytes the follower acknowledged as durable */
    bool snap_last_sent; /* the last chunk went out; waiting for the follower's append ack */
    uint32_t snap_wait;  /* ticks since the last chunk was sent */
    /* ReadIndex / lease */
    uint64_t read_round; /* highest heartbeat round acknowledged in this term */
};

void progress_init(struct progress *p, uint64_t id, uint64_t next, uint32_t max_inflight);
/* A successful append ack for index: returns true if it moved match forward. */
bool progress_update(struct progress *p, uint64_t index);
/* A rejection of the append whose previous index was `rejected`, with the
 * leader's probe hint. Returns false when the rejection is stale. */
bool progress_decr_to(struct progress *p, uint64_t rejected, uint64_t hint);
void progress_become_probe(struct progress *p);
void progress_become_replicate(struct progress *p);
void progress_become_snapshot(struct progress *p, uint64_t snap_index, uint64_t snap_term);
/* Whether the leader must hold further appends back. */
bool progress_paused(const struct progress *p);
/* Account for an append carrying entries up to `last` (n_entries of them). */
void progress_sent(struct progress *p, uint64_t last, uint32_t n_entries);

void inflights_add(struct inflights *f, uint64_t last);
void inflights_free_to(struct inflights *f, uint64_t index);
void inflights_free_first(struct inflights *f);
static inline bool inflights_full(const struct inflights *f) { return f->count == f->size; }
void inflights_reset(struct inflights *f);

#endif
