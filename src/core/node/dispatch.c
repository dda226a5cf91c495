/* Message-type routing table. */
#include "node/dispatch.h"

#include <string.h>

void dispatcher_init(struct dispatcher *d)
{
    memset(d, 0, sizeof *d);
}

static int dispatcher_claim(struct dispatcher *d, uint32_t type, const char *module, bool ok,
                            struct errbuf *eb, struct dispatch_entry **out)
{
    if (type == 0 || type >= DDKV_MSG_TYPE_MAX || !ok)
        return errf(eb, ERR_BAD_INPUT, "module %s: message type %u out of range", module, type);
    struct dispatch_entry *e = &d->table[type];
    if (e->fn || e->peer_fn)
        return errf(eb, ERR_EXISTS, "message type %u (%s) registered by both %s and %s", type,
                    msg_type_name(type), e->module, module);
    *out = e;
    return ERR_OK;
}

int dispatcher_register(struct dispatcher *d, uint32_t type, const char *module, dispatch_fn fn,
                        void *ctx, struct errbuf *eb)
{
    struct dispatch_entry *e = NULL;
    int rc = dispatcher_claim(d, type, module, fn != NULL, eb, &e);
    if (rc == ERR_OK)
        *e = (struct dispatch_entry){.fn = fn, .ctx = ctx, .module = module};
    return rc;
}

int dispatcher_register_peer(struct dispatcher *d, uint32_t type, const char *module,
                             dispatch_peer_fn fn, void *ctx, struct errbuf *eb)
{
    struct dispatch_entry *e = NULL;
    int rc = dispatcher_claim(d, type, module, fn != NULL, eb, &e);
    if (rc == ERR_OK)
        *e = (struct dispatch_entry){.peer_fn = fn, .ctx = ctx, .module = module};
    return rc;
}

const struct dispatch_entry *dispatcher_lookup(const struct dispatcher *d, uint32_t type)
{
    if (type >= DDKV_MSG_TYPE_MAX || (d->table[type].fn == NULL && d->table[type].peer_fn == NULL))
        return NULL;
    return &d->table[type];
}
