/* The one list of the node's modules: nothing else names a module. node_run
 * hands it to the node; the driver runs the hooks through it (module.c). */
#include "node/module.h"

extern const struct module mod_admin, mod_kv, mod_raft, mod_members, mod_watch, mod_jobs, mod_lease,
    mod_backup, mod_auth;

/* The order is the order of every hook, and it matters where two modules
 * share a hook:
 * - on_tick: members before lease. A leader first promotes caught-up learners
 *   and proposes its bookkeeping (members_tick), then the expired leases'
 *   revokes, as the driver always did.
 * - on_conn_writable / on_conn_closed: watch before backup. A watching
 *   connection is topped up with events before a snapshot save paces its next
 *   chunk on the same output buffer, and a hook may close the connection:
 *   the later ones are then skipped (writable) or see it closed.
 * - free: members, watch, jobs, lease, backup, auth. Waiting claims are
 *   answered (to closed connections) before anything they refer to goes;
 *   the auth module's worker stops last, and the driver frees the address
 *   table only after it (a queued AUTH refers to its address's entry).
 * - on_rejoin runs before on_state_replaced (lease countdowns are dropped,
 *   then the watch history restarts). */
const struct module *const node_modules[] = {&mod_admin, &mod_kv,   &mod_raft,   &mod_members, &mod_watch,
                                             &mod_jobs,  &mod_lease, &mod_backup, &mod_auth};
const size_t node_nmodules = sizeof node_modules / sizeof node_modules[0];
