/* A small synchronous harness for the Raft unit tests: cores with in-memory
 * disks, a FIFO message queue that copies what it carries, and helpers to
 * tick, elect and settle. Persistence is synchronous: every ready batch is
 * written, sent, applied and advanced at once (h_ready). */
#ifndef DDKV_TEST_CONSENSUS_HARNESS_H
#define DDKV_TEST_CONSENSUS_HARNESS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "consensus/raft.h"

#define H_MAX 8
#define H_LOG_MAX 4096

struct hent {
    uint64_t term, index;
    uint8_t type;
    uint8_t data[64];
    size_t len;
};

struct hmsg {
    struct raft_msg m;
    struct raft_entry ents[64];
    uint8_t edata[64][64];
    uint8_t data[256];
};

struct hnode {
    uint64_t id;
    struct raft *r;
    bool auto_ready;              /* h_ready after every event (default on) */
    /* disk */
    struct raft_hard_state hs;
    struct raft_snap_meta snap;
    uint8_t snap_data[256];
    size_t snap_len;
    uint8_t recv[256];
    size_t recv_len;
    struct hent log[H_LOG_MAX];   /* snap.index + 1 ... */
    size_t n_log;
    /* state machine */
    uint64_t applied;
    uint64_t sm_hash;
    uint64_t hash_at[H_LOG_MAX];
    struct hent applied_ents[H_LOG_MAX];
    size_t n_applied;
    struct raft_read_state reads[64];
    size_t n_reads;
};

struct hnet {
    int n;
    struct hnode nd[H_MAX + 1];
    struct hmsg *q;
    size_t nq, capq;
    bool cut[H_MAX + 1][H_MAX + 1];
    struct raft_config tmpl;
    size_t snap_pad;
    /* delivered[type - RAFT_MSG_TYPE_FIRST], rejects[from] (APP_RESP rejections) */
    size_t delivered[RAFT_MSG_TYPE_LAST - RAFT_MSG_TYPE_FIRST + 1];
    size_t rejects[H_MAX + 1];
};

/* n nodes; ids 1..voters vote, voters+1..learners are learners, the rest
 * (up to n) are spares outside the configuration (empty disks). */
void h_init(struct hnet *h, int n, int voters, int learners, const struct raft_config *tmpl);
void h_free(struct hnet *h);
/* The first queued message of this type from -> to, or NULL. */
const struct raft_msg *h_find_to(const struct hnet *h, uint32_t type, uint64_t from, uint64_t to);
struct raft_config h_default_cfg(void);

void h_start(struct hnet *h, int i);
void h_crash(struct hnet *h, int i);
void h_ready(struct hnet *h, int i);
void h_tick(struct hnet *h, int i, int times);
void h_tick_all(struct hnet *h, int times);
/* Deliver queued messages until none are left (or max deliveries). */
void h_settle(struct hnet *h);
/* Deliver exactly the first queued message; false when empty. */
bool h_deliver_one(struct hnet *h);
void h_drop_all(struct hnet *h);
void h_isolate(struct hnet *h, int i);
void h_heal(struct hnet *h);
/* Make i leader (campaign + settle); returns its role afterwards. */
enum raft_role h_elect(struct hnet *h, int i);
/* Make node i leader by delivering vote traffic only and dropping the rest,
 * so the new leader has sent nothing else (its followers stay in probe and
 * its no-op is not committed). */
void h_elect_votes_only(struct hnet *h, int i);
uint64_t h_propose(struct hnet *h, int i, const char *data);
int h_compact(struct hnet *h, int i, uint64_t index);

struct raft_status h_status(struct hnet *h, int i);
/* Count queued messages of a type (0: any) from `from` (0: anyone). */
size_t h_count(const struct hnet *h, uint32_t type, uint64_t from);
const struct raft_msg *h_find(const struct hnet *h, uint32_t type, uint64_t from);

/* Feed a message built by the test straight into node i's core. */
int h_step(struct hnet *h, int i, const struct raft_msg *m);

#endif
