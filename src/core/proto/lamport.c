/* Lamport clock arithmetic: range checks, saturation, the budgets for outside input. */
#include "proto/lamport.h"

#include "util/err.h"

uint64_t lamport_tick(struct lamport *c)
{
    if (c->now < LAMPORT_CEIL)
        c->now++;
    return c->now;
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

void lamport_raise(struct lamport *c, uint64_t t)
{
    if (t > LAMPORT_CEIL)
        t = LAMPORT_CEIL;
    if (t > c->now)
        c->now = t;
}

void lamport_budget_init(struct lamport *c, uint64_t now_ms)
{
    c->budgeted = true;
    c->client = (struct lamport_bucket){LAMPORT_CLIENT_BURST, now_ms, LAMPORT_CLIENT_BURST, LAMPORT_CLIENT_REFILL_PER_S};
    c->member = (struct lamport_bucket){LAMPORT_MEMBER_BURST, now_ms, LAMPORT_MEMBER_BURST, LAMPORT_MEMBER_REFILL_PER_S};
}

/* Refill b for the time since its last refill. Below the full-refill time
 * (burst / refill seconds: 256 s for clients, 2048 s for members) the product
 * stays under 2^21 * 2^29 = 2^50: no overflow. */
static void lamport_refill(struct lamport_bucket *b, uint64_t now_ms)
{
    if (now_ms <= b->last_ms)
        return;
    uint64_t dt = now_ms - b->last_ms;
    b->last_ms = now_ms;
    if (dt >= b->burst / b->refill_per_s * 1000) {
        b->tokens = b->burst;
        return;
    }
    uint64_t add = dt * b->refill_per_s / 1000;
    b->tokens = b->burst - b->tokens <= add ? b->burst : b->tokens + add;
}

int lamport_admit_client(struct lamport *c, uint64_t received, uint64_t now_ms, uint64_t *allowed)
{
    ASSERT(c->budgeted);
    if (received >= DDKV_LAMPORT_MAX)
        return ERR_BAD_INPUT;
    uint64_t cost = received > c->now ? received - c->now : 0;
    if (cost) {
        lamport_refill(&c->client, now_ms);
        uint64_t may = c->client.tokens < LAMPORT_CLIENT_MAX_AHEAD ? c->client.tokens : LAMPORT_CLIENT_MAX_AHEAD;
        if (cost > may) {
            if (allowed)
                *allowed = may;
            return ERR_TOO_LARGE;
        }
        c->client.tokens -= cost;
        c->now = received;
    }
    lamport_tick(c);
    return ERR_OK;
}

uint64_t lamport_observe_member(struct lamport *c, uint64_t received, uint64_t now_ms)
{
    ASSERT(c->budgeted);
    if (received > LAMPORT_CEIL)
        received = LAMPORT_CEIL;
    uint64_t cost = received > c->now ? received - c->now : 0, take = cost;
    if (cost) {
        lamport_refill(&c->member, now_ms);
        if (take > c->member.tokens)
            take = c->member.tokens;
        c->member.tokens -= take;
        c->now += take;
    }
    lamport_tick(c);
    return cost - take;
}

int lamport_cmp(uint64_t a, uint64_t b)
{
    return a < b ? -1 : a > b;
}
