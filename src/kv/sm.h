/* The key-value state machine on top of the store.
 *
 * Entries are applied in index order. Applying stages the data changes, the
 * applied index, the applied Lamport time and the revision into one write batch,
 * and sm_commit writes it atomically, so a crash never leaves them apart and a
 * restart resumes exactly after the last committed index.
 *
 * A user key maps to a record in the data column family:
 *   byte 0       record format (1)
 *   bytes 1..40  create_rev, mod_rev, version, lamport, lease (big-endian u64)
 *   bytes 41..   the value
 * create_rev/mod_rev are the indexes of the key's creation and last change;
 * version counts changes since creation; lamport is the time the change was
 * given by the leader. */
#ifndef DDKV_KV_SM_H
#define DDKV_KV_SM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "kv/store.h"

#define SM_FORMAT_VERSION 1
#define KV_RECORD_HEADER 41

struct kv_record {
    uint64_t create_rev, mod_rev, version, lamport, lease;
    const uint8_t *value; /* borrowed from the store_val it was decoded from */
    size_t vlen;
};

int kv_record_decode(const uint8_t *p, size_t n, struct kv_record *r);

/* NOOP: an entry that consumes an index but changes no key (a leader's empty
 * entry, a configuration change). */
enum sm_op_kind { SM_OP_PUT = 1, SM_OP_DELETE = 2, SM_OP_NOOP = 3 };

struct sm_op {
    enum sm_op_kind kind;
    const uint8_t *key;
    size_t klen;
    const uint8_t *val;
    size_t vlen;
    uint64_t lease;
};

struct sm_result {
    bool found;        /* DELETE: the key existed */
    uint64_t revision; /* the index that made the change (0 if nothing changed) */
    uint64_t lamport;
};

struct sm {
    struct store *st;
    struct store_batch *batch;
    /* durable state (as of the last successful commit) */
    uint64_t applied_index;
    uint64_t applied_lamport;
    uint64_t revision;
    /* staged state of the open batch */
    uint64_t st_index, st_lamport, st_revision;
    int64_t st_keys_delta;
    uint64_t keys; /* approximate live key count (for status) */
};

/* Load the applied index, Lamport time and revision; refuses a newer format. */
int sm_open(struct sm *sm, struct store *st, struct errbuf *eb);
void sm_close(struct sm *sm);

/* Stage entry `index` (must be st_index + 1) into the open batch. */
int sm_stage(struct sm *sm, uint64_t index, uint64_t lamport, const struct sm_op *op,
             struct sm_result *res, struct errbuf *eb);
/* Write everything staged in one atomic batch (synced if asked). On failure the
 * staged changes are dropped and the state is as before the first stage. */
int sm_commit(struct sm *sm, bool sync, struct errbuf *eb);
void sm_discard(struct sm *sm);

/* Read a key's committed record. hold keeps the bytes alive: release it with
 * store_val_release. */
int sm_get(struct sm *sm, const uint8_t *key, size_t klen, struct kv_record *r,
           struct store_val *hold, struct errbuf *eb);

/* Keys with the prefix, strictly after start_after (if non-empty), in order, at
 * most limit of them and at most max_bytes of keys and values together (at
 * least one is always returned). *more tells whether keys remain. The callback
 * returns nonzero to stop with that error. */
typedef int (*sm_list_cb)(void *ctx, const uint8_t *key, size_t klen, const struct kv_record *r);
int sm_list(struct sm *sm, const uint8_t *prefix, size_t plen, const uint8_t *start_after,
            size_t salen, uint32_t limit, size_t max_bytes, sm_list_cb cb, void *ctx, bool *more,
            struct errbuf *eb);

#endif
