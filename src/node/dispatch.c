/* Message-type routing table. */
#include "node/dispatch.h"

#include <string.h>

void dispatcher_init(struct dispatcher *d)
{
    memset(d, 0, sizeof *d);
}

int dispatcher_register(struct dispatcher *d, uint32_t type, const char *module, dispatch_fn fn,
                        void *ctx, struct errbuf *eb)
{
    if (type == 0 || type >= DDKV_MSG_TYPE_MAX || fn == NULL)
        return errf(eb, ERR_BAD_INPUT, "module %s: message type %u out of range", module, type);
    struct dispatch_entry *e = &d->table[type];
    if (e->fn)
        return errf(eb, ERR_EXISTS, "message type %u (%s) registered by both %s and %s", type,
                    msg_type_name(type), e->module, module);
    e->fn = fn;
    e->ctx = ctx;
    e->module = module;
    return ERR_OK;
}

const struct dispatch_entry *dispatcher_lookup(const struct dispatcher *d, uint32_t type)
{
    if (type >= DDKV_MSG_TYPE_MAX || d->table[type].fn == NULL)
        return NULL;
    return &d->table[type];
}
