/* Lamport clock arithmetic with range checks. */
#include "proto/lamport.h"

#include "ddkv/wire.h"
#include "util/err.h"

uint64_t lamport_tick(struct lamport *c)
{
    /* Inputs are capped below 2^62, so reaching 2^63 takes 2^62 local events. */
    ASSERT(c->now < (UINT64_C(1) << 63));
    return ++c->now;
}

int lamport_observe(struct lamport *c, uint64_t received, uint64_t max_ahead)
{
    if (received >= DDKV_LAMPORT_MAX)
        return ERR_BAD_INPUT;
    if (max_ahead && received > c->now && received - c->now > max_ahead)
        return ERR_BAD_INPUT;
    if (received > c->now)
        c->now = received;
    return lamport_tick(c), ERR_OK;
}

int lamport_cmp(uint64_t a, uint64_t b)
{
    return a < b ? -1 : a > b;
}
