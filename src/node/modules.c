/* The one list of the node's modules, and the loops that run their hooks.
 *
 * Nothing else names a module: the driver calls modules_on_* and each module
 * keeps its own state behind its hooks. */
#include "node/module.h"

#include "node/server.h"
#include "util/err.h"
#include "util/log.h"

extern const struct module mod_admin, mod_kv, mod_raft, mod_members, mod_watch, mod_jobs, mod_lease,
    mod_backup, mod_auth;

/* The order is the order of every hook, and it matters where two modules
 * share a hook:
 * - on_tick: members before lease. A leader first promotes caught-up learners
 *   and proposes its bookkeeping (cluster_tick), then the expired leases'
 *   revokes, as the driver always did.
 * - on_conn_writable / on_conn_closed: watch before backup. A watching
 *   connection is topped up with events before a snapshot save paces its next
 *   chunk on the same output buffer, and a hook may close the connection:
 *   the later ones are then skipped (writable) or see it closed.
 * - free: jobs, lease, backup, auth. Waiting claims are answered (to closed
 *   connections) before anything they refer to goes; the auth module's
 *   worker stops last, and the driver frees the address table only after it
 *   (a queued AUTH refers to its address's entry).
 * - on_rejoin runs before on_state_replaced (lease countdowns are dropped,
 *   then the watch history restarts). */
const struct module *const node_modules[] = {&mod_admin, &mod_kv,   &mod_raft,   &mod_members, &mod_watch,
                                             &mod_jobs,  &mod_lease, &mod_backup, &mod_auth};
const size_t node_nmodules = sizeof node_modules / sizeof node_modules[0];

#define EACH(hook) \
    for (size_t i_ = 0; i_ < node_nmodules; i_++) \
        if (node_modules[i_]->hook)
#define M (node_modules[i_])

int modules_init(struct node *n, struct errbuf *eb)
{
    EACH(init) {
        int rc = M->init(n, eb);
        if (rc) {
            log_error("module %s: %s", M->name, eb->msg);
            return rc;
        }
    }
    return ERR_OK;
}

bool modules_admit(struct node *n, struct conn *c, const struct msg *m)
{
    EACH(admit) {
        if (!M->admit(n, c, m))
            return false;
    }
    return true;
}

void modules_on_stage(struct node *n, const struct raft_entry *e, struct store_batch *b)
{
    EACH(on_stage) M->on_stage(n, e, b);
}

void modules_on_change(struct node *n, const struct sm_event *ev)
{
    EACH(on_change) M->on_change(n, ev);
}

void modules_on_applied(struct node *n, const struct raft_entry *e, const struct sm_op *op,
                        const struct sm_result *res)
{
    EACH(on_applied) M->on_applied(n, e, op, res);
}

void modules_on_apply_end(struct node *n, bool ok)
{
    EACH(on_apply_end) M->on_apply_end(n, ok);
}

void modules_on_appended(struct node *n, const struct raft_entry *e)
{
    EACH(on_appended) M->on_appended(n, e);
}

void modules_on_tick(struct node *n)
{
    EACH(on_tick) M->on_tick(n);
}

void modules_on_leader(struct node *n, uint64_t leader, uint64_t term)
{
    EACH(on_leader) M->on_leader(n, leader, term);
}

void modules_on_state_replaced(struct node *n, uint64_t applied)
{
    EACH(on_state_replaced) M->on_state_replaced(n, applied);
}

void modules_on_rejoin(struct node *n)
{
    EACH(on_rejoin) M->on_rejoin(n);
}

void modules_on_conn_writable(struct node *n, struct conn *c)
{
    EACH(on_conn_writable) {
        if (!conn_is_open(c))
            return;
        M->on_conn_writable(n, c);
    }
}

void modules_on_conn_closed(struct node *n, struct conn *c)
{
    EACH(on_conn_closed) M->on_conn_closed(n, c);
}

void modules_free(struct node *n)
{
    EACH(free) M->free(n);
}
