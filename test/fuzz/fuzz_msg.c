/* libFuzzer target: msg_decode on raw bytes with both limit sets, every accessor on every field, re-encode round trip. */
#include <msgpack.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ddkv/wire.h"
#include "proto/mpcheck.h"
#include "proto/msg.h"
#include "util/buf.h"
#include "util/err.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "fuzz_msg: check failed at line %d: %s\n", __LINE__, #cond);          \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

static volatile uint8_t sink;

/* Bytes handed out by an accessor must lie inside the input (they are borrowed from it). */
static void touch_bytes(const uint8_t *p, size_t n, const uint8_t *base, size_t size)
{
    CHECK(p != NULL);
    CHECK(n == 0 || (p >= base && p + n <= base + size));
    for (size_t i = 0; i < n; i++)
        sink ^= p[i];
}

/* Exercise the mpo_* accessors on o and everything inside it. */
static void walk(const msgpack_object *o, const uint8_t *base, size_t size, int depth)
{
    CHECK(depth <= 16); /* mpcheck caps nesting well below this */
    uint64_t v;
    const uint8_t *p;
    size_t n;
    int rc = mpo_u64(o, &v);
    CHECK((rc == ERR_OK) == (o->type == MSGPACK_OBJECT_POSITIVE_INTEGER));
    rc = mpo_bytes(o, &p, &n);
    CHECK((rc == ERR_OK) == (o->type == MSGPACK_OBJECT_STR || o->type == MSGPACK_OBJECT_BIN));
    if (rc == ERR_OK)
        touch_bytes(p, n, base, size);
    CHECK(mpo_bool(o) == (o->type == MSGPACK_OBJECT_BOOLEAN && o->via.boolean));
    if (o->type != MSGPACK_OBJECT_MAP)
        CHECK(mpo_map_get(o, "") == NULL && mpo_map_get(o, "key") == NULL);

    if (o->type == MSGPACK_OBJECT_ARRAY) {
        for (uint32_t i = 0; i < o->via.array.size; i++)
            walk(&o->via.array.ptr[i], base, size, depth + 1);
    } else if (o->type == MSGPACK_OBJECT_MAP) {
        for (uint32_t i = 0; i < o->via.map.size; i++) {
            const msgpack_object *k = &o->via.map.ptr[i].key;
            walk(k, base, size, depth + 1);
            walk(&o->via.map.ptr[i].val, base, size, depth + 1);
            /* (The first 64 pairs only: a lookup is linear, so all would be quadratic.) */
            /* (msgpack-c may give an empty string a NULL ptr, hence the size tests.) */
            if (i >= 64 || k->type != MSGPACK_OBJECT_STR || k->via.str.size >= 64 ||
                (k->via.str.size && memchr(k->via.str.ptr, 0, k->via.str.size)))
                continue;
            /* Looking a string key up finds the first pair with that key. */
            char key[64];
            if (k->via.str.size)
                memcpy(key, k->via.str.ptr, k->via.str.size);
            key[k->via.str.size] = 0;
            const msgpack_object *got = mpo_map_get(o, key);
            CHECK(got != NULL);
            uint32_t first = i;
            for (uint32_t j = 0; j < i; j++) {
                const msgpack_object *kj = &o->via.map.ptr[j].key;
                if (kj->type == MSGPACK_OBJECT_STR && kj->via.str.size == k->via.str.size &&
                    (k->via.str.size == 0 || memcmp(kj->via.str.ptr, key, k->via.str.size) == 0)) {
                    first = j;
                    break;
                }
            }
            CHECK(got == &o->via.map.ptr[first].val);
        }
    }
}

/* True if mw_* can write o back (no negatives, floats or ext). */
static bool encodable(const msgpack_object *o)
{
    switch (o->type) {
    case MSGPACK_OBJECT_NIL:
    case MSGPACK_OBJECT_BOOLEAN:
    case MSGPACK_OBJECT_POSITIVE_INTEGER:
    case MSGPACK_OBJECT_STR:
    case MSGPACK_OBJECT_BIN:
        return true;
    case MSGPACK_OBJECT_ARRAY:
        for (uint32_t i = 0; i < o->via.array.size; i++)
            if (!encodable(&o->via.array.ptr[i]))
                return false;
        return true;
    case MSGPACK_OBJECT_MAP:
        for (uint32_t i = 0; i < o->via.map.size; i++)
            if (!encodable(&o->via.map.ptr[i].key) || !encodable(&o->via.map.ptr[i].val))
                return false;
        return true;
    default:
        return false;
    }
}

static void encode(struct msg_writer *w, const msgpack_object *o)
{
    switch (o->type) {
    case MSGPACK_OBJECT_NIL: mw_nil(w); break;
    case MSGPACK_OBJECT_BOOLEAN: mw_bool(w, o->via.boolean); break;
    case MSGPACK_OBJECT_POSITIVE_INTEGER: mw_u64(w, o->via.u64); break;
    case MSGPACK_OBJECT_STR: mw_strn(w, o->via.str.ptr, o->via.str.size); break;
    case MSGPACK_OBJECT_BIN: mw_bin(w, o->via.bin.ptr, o->via.bin.size); break;
    case MSGPACK_OBJECT_ARRAY:
        mw_array(w, o->via.array.size);
        for (uint32_t i = 0; i < o->via.array.size; i++)
            encode(w, &o->via.array.ptr[i]);
        break;
    case MSGPACK_OBJECT_MAP:
        mw_map(w, o->via.map.size);
        for (uint32_t i = 0; i < o->via.map.size; i++) {
            encode(w, &o->via.map.ptr[i].key);
            encode(w, &o->via.map.ptr[i].val);
        }
        break;
    default: CHECK(0);
    }
}

static void check_message(const struct msg *m, const uint8_t *data, size_t size,
                          const struct mpcheck_limits *lim)
{
    CHECK(m->type > 0 && m->type < DDKV_MSG_TYPE_MAX);
    CHECK(m->up.data.type == MSGPACK_OBJECT_ARRAY && m->up.data.via.array.size == m->nf + 3);
    for (uint32_t i = 0; i < m->nf + 2; i++) {
        bool present = i < m->nf;
        uint64_t v;
        const uint8_t *p;
        size_t n;
        int rc = msg_u64(m, i, &v);
        CHECK((rc == ERR_OK) == (present && m->f[i].type == MSGPACK_OBJECT_POSITIVE_INTEGER));
        rc = msg_bytes(m, i, &p, &n);
        CHECK((rc == ERR_OK) ==
              (present && (m->f[i].type == MSGPACK_OBJECT_STR || m->f[i].type == MSGPACK_OBJECT_BIN)));
        if (rc == ERR_OK)
            touch_bytes(p, n, data, size);
        bool nil = msg_is_nil(m, i);
        CHECK(nil == (!present || m->f[i].type == MSGPACK_OBJECT_NIL));
        rc = msg_u64_opt(m, i, 12345, &v);
        if (nil)
            CHECK(rc == ERR_OK && v == 12345);
        rc = msg_bytes_opt(m, i, &p, &n);
        if (nil)
            CHECK(rc == ERR_OK && n == 0 && p != NULL);
        else if (rc == ERR_OK)
            touch_bytes(p, n, data, size);
        if (present)
            walk(&m->f[i], data, size, 1);
    }

    /* Whatever the writer can express, written back, decodes to the same values. */
    for (uint32_t i = 0; i < m->nf; i++)
        if (!encodable(&m->f[i]))
            return;
    struct buf b = BUF_INIT;
    struct msg_writer w;
    msg_begin(&w, &b, m->type, m->lamport, m->request_id, m->nf);
    for (uint32_t i = 0; i < m->nf; i++)
        encode(&w, &m->f[i]);
    CHECK(msg_end(&w) == ERR_OK);
    CHECK(b.len >= 4 && get_be32(b.data) == b.len - 4);
    struct msg m2;
    struct errbuf eb;
    int rc = msg_decode(&m2, b.data + 4, b.len - 4, lim, &eb);
    if (rc != ERR_OK)
        fprintf(stderr, "re-encoded message refused: %s\n", eb.msg);
    CHECK(rc == ERR_OK);
    CHECK(m2.type == m->type && m2.lamport == m->lamport && m2.request_id == m->request_id);
    CHECK(m2.nf == m->nf);
    for (uint32_t i = 0; i < m->nf; i++)
        CHECK(msgpack_object_equal(m->f[i], m2.f[i]));
    msg_free(&m2);
    buf_free(&b);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct msg m;
    struct errbuf eb;
    eb.msg[0] = 0;
    int rc_req = msg_decode(&m, data, size, &msg_limits_request, &eb);
    if (rc_req == ERR_OK) {
        check_message(&m, data, size, &msg_limits_request);
        msg_free(&m);
    } else {
        CHECK(rc_req == ERR_BAD_INPUT && eb.msg[0] != 0);
    }

    eb.msg[0] = 0;
    int rc_rep = msg_decode(&m, data, size, &msg_limits_reply, &eb);
    if (rc_rep == ERR_OK) {
        check_message(&m, data, size, &msg_limits_reply);
        msg_free(&m);
    } else {
        CHECK(rc_rep == ERR_BAD_INPUT && eb.msg[0] != 0);
    }
    /* The reply limits only widen the request limits. */
    if (rc_req == ERR_OK)
        CHECK(rc_rep == ERR_OK);

    /* mpcheck is the guard in front of msgpack-c: whatever it accepts (at a depth
     * msgpack-c's own stack handles), msgpack-c unpacks as one whole value. */
    static const struct mpcheck_limits wide = {.max_depth = 16, .max_objects = 1u << 20};
    if (mpcheck(data, size, &wide, NULL) == ERR_OK) {
        msgpack_unpacked up;
        msgpack_unpacked_init(&up);
        size_t off = 0;
        msgpack_unpack_return ret = msgpack_unpack_next(&up, (const char *)data, size, &off);
        CHECK(ret == MSGPACK_UNPACK_SUCCESS && off == size);
        walk(&up.data, data, size, 0);
        msgpack_unpacked_destroy(&up);
    }
    return 0;
}
