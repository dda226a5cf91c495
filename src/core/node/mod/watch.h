/* Watch: a bounded in-memory history of applied changes, and the streams
 * that deliver it to watchers.
 *
 * History. Every key change the state machine applies (a put, a delete, each
 * change of a transaction, each key a lease revoke removes) becomes one event,
 * appended in apply order once its batch is committed. The history keeps the
 * newest events up to a count and a byte bound; `oldest_rev` is the first
 * revision all of whose events are still held (evicting any event of revision
 * r makes it r + 1). After a start or a snapshot install the history begins
 * empty at applied + 1: a member only vouches for what it applied itself.
 *
 * Every member applies the same entries in the same order, so the events of a
 * revision come out in the same order everywhere: a watcher that resumes on
 * another member from revision r and skips the events of r it already has
 * sees no gap and no duplicate.
 *
 * Streams. WATCH [prefix, from_rev] registers a watcher on its connection,
 * positioned at the first held event of revision >= from_rev (from_rev 0: the
 * next change), or answers ERROR COMPACTED naming oldest_rev. Events are
 * written to the connection while its output buffer holds less than
 * WATCH_OUT_HIGH; the rest wait in the history (not copied per watcher). A
 * watcher whose next event falls out of the history is cut off with ERROR
 * COMPACTED: a reader that stops reading costs at most WATCH_OUT_HIGH of
 * output plus the shared history, never more. A watch ends with its
 * connection. */
#ifndef DDKV_NODE_WATCH_H
#define DDKV_NODE_WATCH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define WATCH_OUT_HIGH (1u << 20)        /* output buffered per watching connection */
#define WATCH_MAX_PER_CONN 1024u       /* WATCH streams one connection may hold */
#define WATCH_HISTORY_EVENTS 200000u     /* events kept */
#define WATCH_HISTORY_BYTES (64u << 20)  /* default bound on the keys and values kept */

struct node;
struct conn;

struct watch_event {
    uint64_t seq; /* position in the history, from 1 */
    uint8_t kind; /* DDKV_OP_PUT / DDKV_OP_DELETE */
    uint64_t create_rev, mod_rev, version, lamport;
    uint32_t klen, vlen;
    uint8_t data[]; /* key then value */
};

struct watcher {
    struct conn *c; /* referenced */
    uint64_t request_id;
    uint8_t *prefix;
    size_t plen;
    uint64_t next_seq; /* next history event to consider */
    /* Events below this revision are not sent: on a member that has not yet
     * applied up to the revision a WATCH asked for, next_seq is the end of
     * the history, and what it applies next may still be below it. */
    uint64_t from_rev;
    struct watcher *next;
};

struct watch_hub {
    struct watch_event **ring; /* capacity WATCH_HISTORY_EVENTS */
    uint64_t first_seq, next_seq; /* held: [first_seq, next_seq) */
    size_t bytes, max_bytes;
    uint64_t oldest_rev; /* first revision wholly held */
    struct watch_event **pending; /* staged by the apply, published after commit */
    size_t npending, cappending;
    struct watcher *watchers;
    uint64_t cut_off, delivered; /* counters */
};

int watch_init(struct watch_hub *h, uint64_t applied, size_t max_bytes);
void watch_free(struct watch_hub *h);
/* Forget the history (a snapshot replaced the state): it restarts at applied + 1. */
void watch_reset(struct node *n, uint64_t applied);
/* During an apply: copy one change (staged until watch_publish). */
void watch_stage(struct watch_hub *h, uint8_t kind, const uint8_t *key, size_t klen, const uint8_t *val,
                 size_t vlen, uint64_t create_rev, uint64_t mod_rev, uint64_t version, uint64_t lamport);
/* The apply batch committed: append what was staged and feed the watchers. */
void watch_publish(struct node *n);
/* The apply batch failed: drop what was staged. */
void watch_discard(struct watch_hub *h);
/* A connection drained its output, or closed. */
void watch_conn_writable(struct node *n, struct conn *c);
void watch_conn_closed(struct node *n, struct conn *c);

#endif
