/* The module interface: what a module of the node (kv, lease, watch, jobs,
 * backup, auth, admin, members, raft) offers the driver, and the one list of
 * them (modules.c, the only place that names the modules).
 *
 * A module registers its message types with the dispatcher in init and may
 * fill in any of the hooks; the driver (replica.c, conn.c) calls a hook on
 * every module that has it, in the list's order, and never calls a module by
 * name. Every hook runs on the loop thread. */
#ifndef DDKV_NODE_MODULE_H
#define DDKV_NODE_MODULE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct node;
struct conn;
struct errbuf;
struct msg;
struct raft_entry;
struct sm_event;
struct sm_op;
struct sm_result;
struct store_batch;

struct module {
    const char *name;
    /* At start-up, after the state machine is loaded: register message types. */
    int (*init)(struct node *n, struct errbuf *eb);
    /* A client request, before its handler: false when the module refused it
     * (and answered c). */
    bool (*admit)(struct node *n, struct conn *c, const struct msg *m);
    /* A committed entry is about to be staged in the apply batch b. */
    void (*on_stage)(struct node *n, const struct raft_entry *e, struct store_batch *b);
    /* One key change the state machine staged (its batch is not committed yet). */
    void (*on_change)(struct node *n, const struct sm_event *ev);
    /* A committed entry was staged: op is its command (NOOP for none), res
     * what the state machine made of it. The batch may still fail. */
    void (*on_applied)(struct node *n, const struct raft_entry *e, const struct sm_op *op,
                       const struct sm_result *res);
    /* The apply batch committed (ok) or failed (the node fences). */
    void (*on_apply_end)(struct node *n, bool ok);
    /* An entry is durable in this member's log (not yet committed). */
    void (*on_appended)(struct node *n, const struct raft_entry *e);
    /* Every Raft tick while the storage takes writes. */
    void (*on_tick)(struct node *n);
    /* This member learned of a new leader (leader: its member id) in term. */
    void (*on_leader)(struct node *n, uint64_t leader, uint64_t term);
    /* The state machine was replaced from the store (a snapshot installed, or
     * a rejoin that moved the applied index): it now stands at applied. */
    void (*on_state_replaced)(struct node *n, uint64_t applied);
    /* A fenced node rejoins from its durable state as a restart would: drop
     * what a restart starts without. */
    void (*on_rejoin)(struct node *n);
    /* A client connection's output drained, or it closed. */
    void (*on_conn_writable)(struct node *n, struct conn *c);
    void (*on_conn_closed)(struct node *n, struct conn *c);
    /* The node stops: free everything (connections are closed, the store is
     * still open). */
    void (*free)(struct node *n);
};

/* The modules, in the order their hooks run (modules.c says why). */
extern const struct module *const node_modules[];
extern const size_t node_nmodules;

/* The driver's calls: each runs one hook on every module that has it. */
int modules_init(struct node *n, struct errbuf *eb);
bool modules_admit(struct node *n, struct conn *c, const struct msg *m);
void modules_on_stage(struct node *n, const struct raft_entry *e, struct store_batch *b);
void modules_on_change(struct node *n, const struct sm_event *ev);
void modules_on_applied(struct node *n, const struct raft_entry *e, const struct sm_op *op,
                        const struct sm_result *res);
void modules_on_apply_end(struct node *n, bool ok);
void modules_on_appended(struct node *n, const struct raft_entry *e);
void modules_on_tick(struct node *n);
void modules_on_leader(struct node *n, uint64_t leader, uint64_t term);
void modules_on_state_replaced(struct node *n, uint64_t applied);
void modules_on_rejoin(struct node *n);
void modules_on_conn_writable(struct node *n, struct conn *c);
void modules_on_conn_closed(struct node *n, struct conn *c);
void modules_free(struct node *n);

#endif
