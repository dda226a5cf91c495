/* Message decode (bounded) and encode for the wire protocol. */
#include "proto/msg.h"

#include <string.h>

#include "ddkv/wire.h"
#include "proto/mpcheck.h"

const struct mpcheck_limits msg_limits_request = {.max_depth = 8, .max_objects = 4096};
const struct mpcheck_limits msg_limits_reply = {.max_depth = 8, .max_objects = 1u << 20};

int msg_decode(struct msg *m, const uint8_t *body, size_t len, const struct mpcheck_limits *lim,
               struct errbuf *eb)
{
    memset(m, 0, sizeof *m);
    const char *why = NULL;
    if (mpcheck(body, len, lim, &why) != ERR_OK)
        return errf(eb, ERR_BAD_INPUT, "malformed msgpack: %s", why);
    msgpack_unpacked_init(&m->up);
    size_t off = 0;
    msgpack_unpack_return ret = msgpack_unpack_next(&m->up, (const char *)body, len, &off);
    if (ret != MSGPACK_UNPACK_SUCCESS || off != len) {
        msgpack_unpacked_destroy(&m->up);
        return errf(eb, ERR_BAD_INPUT, "malformed msgpack (unpack %d)", (int)ret);
    }
    const msgpack_object *o = &m->up.data;
    uint64_t type, lamport, rid;
    if (o->type != MSGPACK_OBJECT_ARRAY || o->via.array.size < 3 ||
        mpo_u64(&o->via.array.ptr[0], &type) || mpo_u64(&o->via.array.ptr[1], &lamport) ||
        mpo_u64(&o->via.array.ptr[2], &rid)) {
        msgpack_unpacked_destroy(&m->up);
        return errf(eb, ERR_BAD_INPUT, "a message is an array [type, lamport, request_id, ...]");
    }
    if (type == 0 || type >= DDKV_MSG_TYPE_MAX) {
        msgpack_unpacked_destroy(&m->up);
        return errf(eb, ERR_BAD_INPUT, "message type %llu out of range", (unsigned long long)type);
    }
    m->type = (uint32_t)type;
    m->lamport = lamport;
    m->request_id = rid;
    m->f = o->via.array.ptr + 3;
    m->nf = o->via.array.size - 3;
    return ERR_OK;
}

void msg_free(struct msg *m)
{
    msgpack_unpacked_destroy(&m->up);
    m->f = NULL;
    m->nf = 0;
}

int mpo_u64(const msgpack_object *o, uint64_t *v)
{
    if (o->type != MSGPACK_OBJECT_POSITIVE_INTEGER)
        return ERR_BAD_INPUT;
    *v = o->via.u64;
    return ERR_OK;
}

int mpo_bytes(const msgpack_object *o, const uint8_t **p, size_t *n)
{
    if (o->type == MSGPACK_OBJECT_BIN) {
        *p = (const uint8_t *)o->via.bin.ptr;
        *n = o->via.bin.size;
    } else if (o->type == MSGPACK_OBJECT_STR) {
        *p = (const uint8_t *)o->via.str.ptr;
        *n = o->via.str.size;
    } else {
        return ERR_BAD_INPUT;
    }
    if (*n == 0)
        *p = (const uint8_t *)""; /* never hand out NULL for an empty string */
    return ERR_OK;
}

bool mpo_bool(const msgpack_object *o)
{
    return o->type == MSGPACK_OBJECT_BOOLEAN && o->via.boolean;
}

const msgpack_object *mpo_map_get(const msgpack_object *o, const char *key)
{
    if (o->type != MSGPACK_OBJECT_MAP)
        return NULL;
    size_t klen = strlen(key);
    for (uint32_t i = 0; i < o->via.map.size; i++) {
        const msgpack_object *k = &o->via.map.ptr[i].key;
        /* msgpack-c may give an empty string a NULL ptr: memcmp(NULL, .., 0) is UB. */
        if (k->type == MSGPACK_OBJECT_STR && k->via.str.size == klen &&
            (klen == 0 || memcmp(k->via.str.ptr, key, klen) == 0))
            return &o->via.map.ptr[i].val;
    }
    return NULL;
}

int msg_u64(const struct msg *m, uint32_t i, uint64_t *v)
{
    return i < m->nf ? mpo_u64(&m->f[i], v) : ERR_BAD_INPUT;
}

int msg_bytes(const struct msg *m, uint32_t i, const uint8_t **p, size_t *n)
{
    return i < m->nf ? mpo_bytes(&m->f[i], p, n) : ERR_BAD_INPUT;
}

bool msg_is_nil(const struct msg *m, uint32_t i)
{
    return i >= m->nf || m->f[i].type == MSGPACK_OBJECT_NIL;
}

int msg_u64_opt(const struct msg *m, uint32_t i, uint64_t dflt, uint64_t *v)
{
    if (msg_is_nil(m, i)) {
        *v = dflt;
        return ERR_OK;
    }
    return msg_u64(m, i, v);
}

int msg_bytes_opt(const struct msg *m, uint32_t i, const uint8_t **p, size_t *n)
{
    if (msg_is_nil(m, i)) {
        *p = (const uint8_t *)"";
        *n = 0;
        return ERR_OK;
    }
    return msg_bytes(m, i, p, n);
}

/* --- encoding --- */

static int mw_write_cb(void *data, const char *p, size_t n)
{
    struct msg_writer *w = data;
    if (w->failed || buf_append(w->b, p, n) != ERR_OK) {
        w->failed = 1;
        return -1;
    }
    return 0;
}

void msg_begin(struct msg_writer *w, struct buf *b, uint32_t type, uint64_t lamport,
               uint64_t request_id, uint32_t nfields)
{
    w->b = b;
    w->start = b->len;
    w->failed = 0;
    static const uint8_t zero[4];
    if (buf_append(b, zero, sizeof zero) != ERR_OK)
        w->failed = 1;
    msgpack_packer_init(&w->pk, w, mw_write_cb);
    msgpack_pack_array(&w->pk, 3 + nfields);
    msgpack_pack_uint32(&w->pk, type);
    msgpack_pack_uint64(&w->pk, lamport);
    msgpack_pack_uint64(&w->pk, request_id);
}

void msg_writer_raw(struct msg_writer *w, struct buf *b)
{
    w->b = b;
    w->start = b->len;
    w->failed = 0;
    msgpack_packer_init(&w->pk, w, mw_write_cb);
}

void mw_raw(struct msg_writer *w, const void *p, size_t n)
{
    if (n)
        mw_write_cb(w, p, n);
}

void mw_u64(struct msg_writer *w, uint64_t v) { msgpack_pack_uint64(&w->pk, v); }
void mw_bool(struct msg_writer *w, bool v) { v ? msgpack_pack_true(&w->pk) : msgpack_pack_false(&w->pk); }
void mw_nil(struct msg_writer *w) { msgpack_pack_nil(&w->pk); }
void mw_array(struct msg_writer *w, uint32_t n) { msgpack_pack_array(&w->pk, n); }
void mw_map(struct msg_writer *w, uint32_t n) { msgpack_pack_map(&w->pk, n); }

void mw_bin(struct msg_writer *w, const void *p, size_t n)
{
    msgpack_pack_bin(&w->pk, n);
    if (n)
        msgpack_pack_bin_body(&w->pk, p, n);
}

void mw_strn(struct msg_writer *w, const char *s, size_t n)
{
    msgpack_pack_str(&w->pk, n);
    if (n)
        msgpack_pack_str_body(&w->pk, s, n);
}

void mw_str(struct msg_writer *w, const char *s)
{
    if (s)
        mw_strn(w, s, strlen(s));
    else
        mw_nil(w);
}

int msg_end(struct msg_writer *w)
{
    size_t body = w->b->len - w->start - 4;
    if (w->failed || body > UINT32_MAX) {
        w->b->len = w->start;
        return ERR_NOMEM;
    }
    put_be32(w->b->data + w->start, (uint32_t)body);
    return ERR_OK;
}

int msg_encode_error(struct buf *b, uint64_t lamport, uint64_t request_id, uint32_t code,
                     const char *message, const char *leader_addr)
{
    struct msg_writer w;
    msg_begin(&w, b, DDKV_MSG_ERROR, lamport, request_id, 3);
    mw_u64(&w, code);
    mw_str(&w, message ? message : "");
    mw_str(&w, leader_addr);
    return msg_end(&w);
}

const char *msg_type_name(uint32_t type)
{
    switch (type) {
    case DDKV_MSG_ERROR: return "ERROR";
    case DDKV_MSG_PING: return "PING";
    case DDKV_MSG_PONG: return "PONG";
    case DDKV_MSG_READ: return "READ";
    case DDKV_MSG_VALUE: return "VALUE";
    case DDKV_MSG_WRITE: return "WRITE";
    case DDKV_MSG_WRITTEN_AT: return "WRITTEN_AT";
    case DDKV_MSG_DELETE: return "DELETE";
    case DDKV_MSG_DELETED: return "DELETED";
    case DDKV_MSG_LIST: return "LIST";
    case DDKV_MSG_LIST_RESULT: return "LIST_RESULT";
    case DDKV_MSG_STATUS: return "STATUS";
    case DDKV_MSG_STATUS_RESULT: return "STATUS_RESULT";
    case DDKV_MSG_MEMBER_ADD: return "MEMBER_ADD";
    case DDKV_MSG_MEMBER_REMOVE: return "MEMBER_REMOVE";
    case DDKV_MSG_MEMBER_CHANGED: return "MEMBER_CHANGED";
    case DDKV_MSG_TXN: return "TXN";
    case DDKV_MSG_TXN_RESULT: return "TXN_RESULT";
    case DDKV_MSG_LEASE_GRANT: return "LEASE_GRANT";
    case DDKV_MSG_LEASE: return "LEASE";
    case DDKV_MSG_LEASE_KEEPALIVE: return "LEASE_KEEPALIVE";
    case DDKV_MSG_LEASE_REVOKE: return "LEASE_REVOKE";
    case DDKV_MSG_WATCH: return "WATCH";
    case DDKV_MSG_EVENT: return "EVENT";
    case DDKV_MSG_LEADER_TRANSFER: return "LEADER_TRANSFER";
    case DDKV_MSG_LEADER_TRANSFERRING: return "LEADER_TRANSFERRING";
    case DDKV_MSG_JOB_PUT: return "JOB_PUT";
    case DDKV_MSG_JOB: return "JOB";
    case DDKV_MSG_JOB_CLAIM: return "JOB_CLAIM";
    case DDKV_MSG_JOB_CLAIMED: return "JOB_CLAIMED";
    case DDKV_MSG_JOB_ACK: return "JOB_ACK";
    case DDKV_MSG_JOB_NACK: return "JOB_NACK";
    case DDKV_MSG_JOB_EXTEND: return "JOB_EXTEND";
    case DDKV_MSG_JOB_SETTLED: return "JOB_SETTLED";
    case DDKV_MSG_SNAPSHOT_SAVE: return "SNAPSHOT_SAVE";
    case DDKV_MSG_SNAPSHOT_META: return "SNAPSHOT_META";
    case DDKV_MSG_SNAPSHOT_CHUNK: return "SNAPSHOT_CHUNK";
    case DDKV_MSG_AUTH: return "AUTH";
    case DDKV_MSG_AUTHED: return "AUTHED";
    case DDKV_MSG_AUTH_CHANGE: return "AUTH_CHANGE";
    case DDKV_MSG_AUTH_CHANGED: return "AUTH_CHANGED";
    case DDKV_MSG_AUTH_STATUS: return "AUTH_STATUS";
    case DDKV_MSG_AUTH_INFO: return "AUTH_INFO";
    case DDKV_MSG_AUTH_LIST: return "AUTH_LIST";
    case DDKV_MSG_AUTH_LIST_RESULT: return "AUTH_LIST_RESULT";
    case DDKV_MSG_HELLO: return "HELLO";
    case DDKV_MSG_WELCOME: return "WELCOME";
    case DDKV_MSG_DELETE_PREFIX: return "DELETE_PREFIX";
    case DDKV_MSG_RAFT_APP: return "APP";
    case DDKV_MSG_RAFT_APP_RESP: return "APP_RESP";
    case DDKV_MSG_RAFT_VOTE: return "VOTE";
    case DDKV_MSG_RAFT_VOTE_RESP: return "VOTE_RESP";
    case DDKV_MSG_RAFT_PREVOTE: return "PREVOTE";
    case DDKV_MSG_RAFT_PREVOTE_RESP: return "PREVOTE_RESP";
    case DDKV_MSG_RAFT_HEARTBEAT: return "HEARTBEAT";
    case DDKV_MSG_RAFT_HEARTBEAT_RESP: return "HEARTBEAT_RESP";
    case DDKV_MSG_RAFT_SNAP: return "SNAP";
    case DDKV_MSG_RAFT_SNAP_RESP: return "SNAP_RESP";
    case DDKV_MSG_RAFT_TIMEOUT_NOW: return "TIMEOUT_NOW";
    case DDKV_MSG_RAFT_READ_INDEX: return "READ_INDEX";
    case DDKV_MSG_RAFT_READ_INDEX_RESP: return "READ_INDEX_RESP";
    case DDKV_MSG_PEER_HELLO: return "PEER_HELLO";
    case DDKV_MSG_PEER_CHALLENGE: return "PEER_CHALLENGE";
    case DDKV_MSG_PEER_AUTH: return "PEER_AUTH";
    default: return "UNKNOWN";
    }
}

const char *wire_error_name(uint32_t code)
{
    switch (code) {
    case DDKV_WERR_NOT_LEADER: return "NOT_LEADER";
    case DDKV_WERR_NOT_FOUND: return "NOT_FOUND";
    case DDKV_WERR_TOO_LARGE: return "TOO_LARGE";
    case DDKV_WERR_BAD_REQUEST: return "BAD_REQUEST";
    case DDKV_WERR_UNAVAILABLE: return "UNAVAILABLE";
    case DDKV_WERR_TIMEOUT: return "TIMEOUT";
    case DDKV_WERR_COMPACTED: return "COMPACTED";
    case DDKV_WERR_PERMISSION_DENIED: return "PERMISSION_DENIED";
    case DDKV_WERR_INTERNAL: return "INTERNAL";
    case DDKV_WERR_FENCED: return "FENCED";
    case DDKV_WERR_UNAUTHENTICATED: return "UNAUTHENTICATED";
    default: return "UNKNOWN_ERROR";
    }
}
