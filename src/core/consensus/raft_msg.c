/* Owns the wire form of peer messages: [type, lamport, 0, from, to, term,
 * index, log_term, commit, reject, hint_index, hint_term, ctx, flags,
 * entries, snapshot] in the project's msgpack frame, and its strict decoder. */
#include <stdlib.h>
#include <string.h>

#include "consensus/raft.h"
#include "proto/msg.h"

#define RAFT_MSG_FIELDS 13
#define RAFT_MSG_MAX_ENTRIES 65536u

static void raft_msg_write_conf(struct msg_writer *w, const struct raft_conf *c)
{
    mw_array(w, c->n);
    for (uint32_t i = 0; i < c->n; i++)
        mw_u64(w, c->ids[i]);
    mw_u64(w, c->learners);
}

int raft_msg_encode(const struct raft_msg *m, uint64_t lamport, struct buf *b)
{
    if (m->type < RAFT_MSG_TYPE_FIRST || m->type > RAFT_MSG_TYPE_LAST)
        return ERR_BAD_INPUT;
    struct msg_writer w;
    msg_begin(&w, b, m->type, lamport, 0, RAFT_MSG_FIELDS);
    mw_u64(&w, m->from);
    mw_u64(&w, m->to);
    mw_u64(&w, m->term);
    mw_u64(&w, m->index);
    mw_u64(&w, m->log_term);
    mw_u64(&w, m->commit);
    mw_bool(&w, m->reject);
    mw_u64(&w, m->hint_index);
    mw_u64(&w, m->hint_term);
    mw_u64(&w, m->ctx);
    mw_u64(&w, m->flags);
    if (m->type == RAFT_MSG_APP) {
        mw_array(&w, m->n_entries);
        for (uint32_t k = 0; k < m->n_entries; k++) {
            const struct raft_entry *e = &m->entries[k];
            mw_array(&w, 3);
            mw_u64(&w, e->term);
            mw_u64(&w, e->type);
            mw_bin(&w, e->data, e->len);
        }
    } else {
        mw_nil(&w);
    }
    if (m->type == RAFT_MSG_SNAP) {
        mw_array(&w, 3);
        mw_array(&w, 2);
        raft_msg_write_conf(&w, &m->conf);
        mw_u64(&w, m->offset);
        mw_bin(&w, m->data, m->len);
    } else if (m->type == RAFT_MSG_SNAP_RESP) {
        mw_array(&w, 1);
        mw_u64(&w, m->offset);
    } else {
        mw_nil(&w);
    }
    return msg_end(&w);
}

static int raft_msg_read_conf(const msgpack_object *o, struct raft_conf *c)
{
    memset(c, 0, sizeof *c);
    if (o->type != MSGPACK_OBJECT_ARRAY || o->via.array.size != 2)
        return ERR_BAD_INPUT;
    const msgpack_object *ids = &o->via.array.ptr[0];
    uint64_t learners;
    if (ids->type != MSGPACK_OBJECT_ARRAY || ids->via.array.size == 0 ||
        ids->via.array.size > RAFT_MAX_NODES || mpo_u64(&o->via.array.ptr[1], &learners))
        return ERR_BAD_INPUT;
    c->n = ids->via.array.size;
    if (learners >> c->n)
        return ERR_BAD_INPUT;
    c->learners = (uint32_t)learners;
    for (uint32_t i = 0; i < c->n; i++) {
        if (mpo_u64(&ids->via.array.ptr[i], &c->ids[i]) || c->ids[i] == 0)
            return ERR_BAD_INPUT;
        for (uint32_t j = 0; j < i; j++)
            if (c->ids[j] == c->ids[i])
                return ERR_BAD_INPUT;
    }
    return raft_conf_voters(c) > 0 ? ERR_OK : ERR_BAD_INPUT;
}

int raft_msg_decode(const struct msg *wm, struct raft_msg *m)
{
    memset(m, 0, sizeof *m);
    if (wm->type < RAFT_MSG_TYPE_FIRST || wm->type > RAFT_MSG_TYPE_LAST || wm->nf < RAFT_MSG_FIELDS)
        return ERR_BAD_INPUT;
    m->type = wm->type;
    uint64_t flags;
    if (msg_u64(wm, 0, &m->from) || msg_u64(wm, 1, &m->to) || msg_u64(wm, 2, &m->term) ||
        msg_u64(wm, 3, &m->index) || msg_u64(wm, 4, &m->log_term) || msg_u64(wm, 5, &m->commit) ||
        msg_u64(wm, 7, &m->hint_index) || msg_u64(wm, 8, &m->hint_term) ||
        msg_u64(wm, 9, &m->ctx) || msg_u64(wm, 10, &flags))
        return ERR_BAD_INPUT;
    if (wm->f[6].type != MSGPACK_OBJECT_BOOLEAN)
        return ERR_BAD_INPUT;
    m->reject = wm->f[6].via.boolean;
    if (flags > (RAFT_MSGF_TRANSFER | RAFT_MSGF_LAST))
        return ERR_BAD_INPUT;
    m->flags = (uint32_t)flags;
    if (m->from == 0 || m->to == 0 || m->from == m->to)
        return ERR_BAD_INPUT;
    if (m->term >= RAFT_NUM_MAX || m->index >= RAFT_NUM_MAX || m->log_term >= RAFT_NUM_MAX ||
        m->hint_index >= RAFT_NUM_MAX || m->hint_term >= RAFT_NUM_MAX)
        return ERR_BAD_INPUT;

    const msgpack_object *ents = &wm->f[11];
    if (m->type == RAFT_MSG_APP) {
        if (ents->type != MSGPACK_OBJECT_ARRAY || ents->via.array.size > RAFT_MSG_MAX_ENTRIES)
            return ERR_BAD_INPUT;
        uint32_t n = ents->via.array.size;
        if (m->log_term > m->term || m->index >= RAFT_NUM_MAX - n)
            return ERR_BAD_INPUT;
        if (n) {
            struct raft_entry *v = calloc(n, sizeof *v);
            if (!v)
                return ERR_NOMEM;
            m->entries = v;
            m->n_entries = n;
            uint64_t prev = m->log_term;
            for (uint32_t k = 0; k < n; k++) {
                const msgpack_object *e = &ents->via.array.ptr[k];
                uint64_t type;
                if (e->type != MSGPACK_OBJECT_ARRAY || e->via.array.size != 3 ||
                    mpo_u64(&e->via.array.ptr[0], &v[k].term) ||
                    mpo_u64(&e->via.array.ptr[1], &type) ||
                    e->via.array.ptr[2].type != MSGPACK_OBJECT_BIN ||
                    mpo_bytes(&e->via.array.ptr[2], &v[k].data, &v[k].len))
                    goto fail;
                /* Terms never fall along a log and never pass the leader's. */
                if (type > RAFT_ENTRY_CONF || v[k].term == 0 || v[k].term < prev ||
                    v[k].term > m->term)
                    goto fail;
                v[k].type = (uint8_t)type;
                v[k].index = m->index + 1 + k;
                prev = v[k].term;
            }
        }
    } else if (ents->type != MSGPACK_OBJECT_NIL) {
        return ERR_BAD_INPUT;
    }

    const msgpack_object *sn = &wm->f[12];
    if (m->type == RAFT_MSG_SNAP) {
        if (sn->type != MSGPACK_OBJECT_ARRAY || sn->via.array.size != 3 ||
            raft_msg_read_conf(&sn->via.array.ptr[0], &m->conf) ||
            mpo_u64(&sn->via.array.ptr[1], &m->offset) ||
            sn->via.array.ptr[2].type != MSGPACK_OBJECT_BIN ||
            mpo_bytes(&sn->via.array.ptr[2], &m->data, &m->len))
            goto fail;
        if (m->index == 0 || m->log_term == 0 || m->log_term > m->term ||
            m->offset >= RAFT_NUM_MAX || m->len >= RAFT_NUM_MAX - m->offset)
            goto fail;
    } else if (m->type == RAFT_MSG_SNAP_RESP) {
        if (sn->type != MSGPACK_OBJECT_ARRAY || sn->via.array.size != 1 ||
            mpo_u64(&sn->via.array.ptr[0], &m->offset))
            goto fail;
    } else if (sn->type != MSGPACK_OBJECT_NIL) {
        goto fail;
    }
    if ((m->type == RAFT_MSG_VOTE || m->type == RAFT_MSG_PREVOTE) && m->log_term > m->term)
        goto fail;
    return ERR_OK;
fail:
    raft_msg_release(m);
    return ERR_BAD_INPUT;
}

void raft_msg_release(struct raft_msg *m)
{
    /* Only decoded messages own their entries array (never the bytes). */
    free((void *)m->entries);
    m->entries = NULL;
    m->n_entries = 0;
}

const char *raft_msg_type_name(uint32_t type)
{
    /* One name table for every wire type (proto/msg.c); anything outside the
     * Raft range is not a Raft message. */
    if (type < RAFT_MSG_TYPE_FIRST || type > RAFT_MSG_TYPE_LAST)
        return "UNKNOWN";
    return msg_type_name(type);
}
