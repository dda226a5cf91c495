/* Owns cluster configurations: the voter/learner sets and the encoding of the
 * single-server changes (thesis 4.1) carried in CONF log entries. */
#include <string.h>

#include "consensus/raft.h"
#include "util/buf.h"

static int conf_find(const struct raft_conf *c, uint64_t id)
{
    for (uint32_t i = 0; i < c->n; i++)
        if (c->ids[i] == id)
            return (int)i;
    return -1;
}

bool raft_conf_has(const struct raft_conf *c, uint64_t id)
{
    return id != 0 && conf_find(c, id) >= 0;
}

bool raft_conf_is_voter(const struct raft_conf *c, uint64_t id)
{
    int i = id ? conf_find(c, id) : -1;
    return i >= 0 && !(c->learners & (1u << i));
}

uint32_t raft_conf_voters(const struct raft_conf *c)
{
    uint32_t v = 0;
    for (uint32_t i = 0; i < c->n; i++)
        if (!(c->learners & (1u << i)))
            v++;
    return v;
}

int raft_conf_apply(struct raft_conf *c, enum raft_cc_type type, uint64_t id)
{
    if (id == 0)
        return ERR_BAD_INPUT;
    int i = conf_find(c, id);
    switch (type) {
    case RAFT_CC_ADD_VOTER:
    case RAFT_CC_ADD_LEARNER:
        if (i >= 0 || c->n >= RAFT_MAX_NODES)
            return ERR_BAD_INPUT;
        c->ids[c->n] = id;
        if (type == RAFT_CC_ADD_LEARNER)
            c->learners |= 1u << c->n;
        else
            c->learners &= ~(1u << c->n);
        c->n++;
        return ERR_OK;
    case RAFT_CC_PROMOTE:
        if (i < 0 || !(c->learners & (1u << i)))
            return ERR_BAD_INPUT;
        c->learners &= ~(1u << i);
        return ERR_OK;
    case RAFT_CC_REMOVE: {
        if (i < 0)
            return ERR_BAD_INPUT;
        bool voter = !(c->learners & (1u << i));
        if (voter && raft_conf_voters(c) == 1)
            return ERR_BAD_INPUT; /* a configuration always has a voter */
        /* Close the gap, moving the learner bits down with the ids. */
        uint32_t low = c->learners & ((1u << i) - 1);
        uint32_t high = (c->learners >> (i + 1)) << i;
        memmove(&c->ids[i], &c->ids[i + 1], (c->n - (uint32_t)i - 1) * sizeof c->ids[0]);
        c->n--;
        c->ids[c->n] = 0;
        c->learners = low | high;
        return ERR_OK;
    }
    }
    return ERR_BAD_INPUT;
}

void raft_cc_encode(uint8_t out[RAFT_CC_BYTES], enum raft_cc_type type, uint64_t id)
{
    out[0] = (uint8_t)type;
    put_be64(out + 1, id);
}

int raft_cc_decode(const uint8_t *p, size_t n, enum raft_cc_type *type, uint64_t *id)
{
    if (n < RAFT_CC_BYTES || n > RAFT_CC_BYTES + RAFT_CC_CTX_MAX || p[0] < RAFT_CC_ADD_VOTER ||
        p[0] > RAFT_CC_REMOVE)
        return ERR_BAD_INPUT;
    *type = (enum raft_cc_type)p[0];
    *id = get_be64(p + 1);
    return *id ? ERR_OK : ERR_BAD_INPUT;
}
