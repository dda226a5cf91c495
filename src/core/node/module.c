/* The loops that run the modules' hooks, over the list the node holds
 * (n->modules, from modules.c), in its order. */
#include "node/node_int.h"
#include "util/log.h"

#define EACH(hook) \
    for (size_t i_ = 0; i_ < n->nmodules; i_++) \
        if (n->modules[i_]->hook)
#define M (n->modules[i_])

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
