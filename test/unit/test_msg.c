/* Unit tests for message encode/decode and accessors (src/core/proto/msg.c): round trips, header rules, ERROR layout. */
#include <criterion/criterion.h>
#include <msgpack.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "ddkv/wire.h"
#include "proto/frame.h"
#include "proto/msg.h"
#include "util/buf.h"
#include "util/err.h"

#define BYTES(...) ((const uint8_t[]){__VA_ARGS__}), sizeof((const uint8_t[]){__VA_ARGS__})

/* The body of the single frame at b->data + off; checks the length prefix. */
static const uint8_t *frame_body(const struct buf *b, size_t off, size_t *len)
{
    cr_assert_geq(b->len, off + 4);
    uint32_t n = get_be32(b->data + off);
    cr_assert_leq(off + 4 + n, b->len, "length prefix %u past the buffer", n);
    *len = n;
    return b->data + off + 4;
}

/* Decode a whole buffer holding exactly one frame; the frame must be complete. */
static void decode_one(struct msg *m, const struct buf *b)
{
    size_t len;
    const uint8_t *body = frame_body(b, 0, &len);
    cr_assert_eq(4 + len, b->len, "frame length %zu + 4 != buffer %zu", len, b->len);
    struct errbuf eb = {{0}};
    int rc = msg_decode(m, body, len, &msg_limits_request, &eb);
    cr_assert_eq(rc, ERR_OK, "decode failed: %s", eb.msg);
}

static int decode_raw(const uint8_t *p, size_t n, struct errbuf *eb)
{
    struct msg m;
    int rc = msg_decode(&m, p, n, &msg_limits_request, eb);
    if (rc == ERR_OK)
        msg_free(&m);
    return rc;
}

Test(msg, header_round_trip)
{
    static const uint64_t values[] = {0, 1, 127, 128, 255, 256, 65535, 65536, UINT32_MAX,
                                      (uint64_t)UINT32_MAX + 1, DDKV_LAMPORT_MAX - 1, UINT64_MAX};
    for (size_t i = 0; i < sizeof values / sizeof values[0]; i++) {
        for (uint32_t type = 1; type < DDKV_MSG_TYPE_MAX; type += 127) {
            struct buf b = BUF_INIT;
            struct msg_writer w;
            msg_begin(&w, &b, type, values[i], values[sizeof values / sizeof values[0] - 1 - i], 0);
            cr_assert_eq(msg_end(&w), ERR_OK);
            struct msg m;
            decode_one(&m, &b);
            cr_assert_eq(m.type, type);
            cr_assert_eq(m.lamport, values[i]);
            cr_assert_eq(m.request_id, values[sizeof values / sizeof values[0] - 1 - i]);
            cr_assert_eq(m.nf, 0);
            msg_free(&m);
            buf_free(&b);
        }
    }
}

Test(msg, every_field_kind_round_trips)
{
    static const uint8_t binary[] = {0x00, 0xff, 0xc1, 0x00, 0x80};
    static const char with_nul[] = {'a', '\0', 'b'};
    struct buf b = BUF_INIT;
    struct msg_writer w;
    msg_begin(&w, &b, DDKV_MSG_WRITE, 77, 88, 14);
    mw_u64(&w, 0);                          /* 0 */
    mw_u64(&w, UINT64_MAX);                 /* 1 */
    mw_bool(&w, true);                      /* 2 */
    mw_bool(&w, false);                     /* 3 */
    mw_nil(&w);                             /* 4 */
    mw_bin(&w, binary, sizeof binary);      /* 5 */
    mw_bin(&w, NULL, 0);                    /* 6 */
    mw_str(&w, "key/é");                    /* 7 */
    mw_str(&w, NULL);                       /* 8: nil */
    mw_strn(&w, with_nul, sizeof with_nul); /* 9 */
    mw_str(&w, "");                         /* 10 */
    mw_array(&w, 2);                        /* 11 */
    mw_u64(&w, 5);
    mw_str(&w, "x");
    mw_map(&w, 2); /* 12 */
    mw_str(&w, "name");
    mw_str(&w, "n1");
    mw_str(&w, "term");
    mw_u64(&w, 9);
    mw_u64(&w, 1u << 20); /* 13 */
    cr_assert_eq(msg_end(&w), ERR_OK);

    struct msg m;
    decode_one(&m, &b);
    cr_assert_eq(m.type, DDKV_MSG_WRITE);
    cr_assert_eq(m.lamport, 77);
    cr_assert_eq(m.request_id, 88);
    cr_assert_eq(m.nf, 14);

    uint64_t v;
    const uint8_t *p;
    size_t n;
    cr_assert_eq(msg_u64(&m, 0, &v), ERR_OK);
    cr_assert_eq(v, 0);
    cr_assert_eq(msg_u64(&m, 1, &v), ERR_OK);
    cr_assert_eq(v, UINT64_MAX);
    cr_assert(mpo_bool(&m.f[2]));
    cr_assert_not(mpo_bool(&m.f[3]));
    cr_assert(msg_is_nil(&m, 4));
    cr_assert_eq(msg_bytes(&m, 5, &p, &n), ERR_OK);
    cr_assert_eq(n, sizeof binary);
    cr_assert_eq(memcmp(p, binary, n), 0);
    cr_assert_eq(m.f[5].type, MSGPACK_OBJECT_BIN);
    cr_assert_eq(msg_bytes(&m, 6, &p, &n), ERR_OK);
    cr_assert_eq(n, 0);
    cr_assert_not_null(p, "empty bytes must not come back as NULL");
    cr_assert_eq(msg_bytes(&m, 7, &p, &n), ERR_OK);
    cr_assert_eq(n, strlen("key/é"));
    cr_assert_eq(memcmp(p, "key/é", n), 0);
    cr_assert_eq(m.f[7].type, MSGPACK_OBJECT_STR);
    cr_assert(msg_is_nil(&m, 8));
    cr_assert_eq(msg_bytes(&m, 9, &p, &n), ERR_OK);
    cr_assert_eq(n, 3, "embedded NUL cut the string");
    cr_assert_eq(memcmp(p, with_nul, 3), 0);
    cr_assert_eq(msg_bytes(&m, 10, &p, &n), ERR_OK);
    cr_assert_eq(n, 0);
    cr_assert_not_null(p);
    cr_assert_not(msg_is_nil(&m, 10), "an empty string is not nil");

    const msgpack_object *arr = &m.f[11];
    cr_assert_eq(arr->type, MSGPACK_OBJECT_ARRAY);
    cr_assert_eq(arr->via.array.size, 2);
    cr_assert_eq(mpo_u64(&arr->via.array.ptr[0], &v), ERR_OK);
    cr_assert_eq(v, 5);
    cr_assert_eq(mpo_bytes(&arr->via.array.ptr[1], &p, &n), ERR_OK);
    cr_assert_eq(n, 1);
    cr_assert_eq(p[0], 'x');

    const msgpack_object *map = &m.f[12];
    const msgpack_object *name = mpo_map_get(map, "name");
    cr_assert_not_null(name);
    cr_assert_eq(mpo_bytes(name, &p, &n), ERR_OK);
    cr_assert_eq(n, 2);
    cr_assert_eq(memcmp(p, "n1", 2), 0);
    const msgpack_object *term = mpo_map_get(map, "term");
    cr_assert_not_null(term);
    cr_assert_eq(mpo_u64(term, &v), ERR_OK);
    cr_assert_eq(v, 9);

    cr_assert_eq(msg_u64(&m, 13, &v), ERR_OK);
    cr_assert_eq(v, 1u << 20);
    msg_free(&m);
    buf_free(&b);
}

Test(msg, large_value_round_trips)
{
    size_t n = DDKV_DEFAULT_MAX_VALUE_BYTES;
    uint8_t *val = malloc(n);
    cr_assert_not_null(val);
    for (size_t i = 0; i < n; i++)
        val[i] = (uint8_t)(i * 31 + 7);
    struct buf b = BUF_INIT;
    struct msg_writer w;
    msg_begin(&w, &b, DDKV_MSG_WRITE, 1, 2, 2);
    mw_str(&w, "k");
    mw_bin(&w, val, n);
    cr_assert_eq(msg_end(&w), ERR_OK);
    cr_assert_leq(b.len - 4, DDKV_DEFAULT_MAX_FRAME_BYTES);
    struct msg m;
    decode_one(&m, &b);
    const uint8_t *p;
    size_t got;
    cr_assert_eq(msg_bytes(&m, 1, &p, &got), ERR_OK);
    cr_assert_eq(got, n);
    cr_assert_eq(memcmp(p, val, n), 0);
    /* Decoded bytes point into the frame: nothing was copied. */
    cr_assert(p >= b.data && p + got <= b.data + b.len);
    msg_free(&m);
    buf_free(&b);
    free(val);
}

Test(msg, messages_append_to_the_buffer_and_stream_through_the_decoder)
{
    struct buf b = BUF_INIT;
    for (uint64_t i = 0; i < 50; i++) {
        struct msg_writer w;
        msg_begin(&w, &b, DDKV_MSG_READ, 100 + i, i, 3);
        mw_strn(&w, "key", 3);
        mw_u64(&w, DDKV_CONSISTENCY_CAUSAL);
        mw_u64(&w, i * 1000);
        cr_assert_eq(msg_end(&w), ERR_OK);
    }
    struct frame_decoder d;
    frame_decoder_init(&d, DDKV_DEFAULT_MAX_FRAME_BYTES);
    cr_assert_eq(frame_decoder_feed(&d, b.data, b.len), ERR_OK);
    const uint8_t *body;
    size_t len;
    uint64_t i = 0;
    while (frame_decoder_next(&d, &body, &len) == ERR_OK) {
        struct msg m;
        struct errbuf eb;
        cr_assert_eq(msg_decode(&m, body, len, &msg_limits_request, &eb), ERR_OK, "%s", eb.msg);
        cr_assert_eq(m.type, DDKV_MSG_READ);
        cr_assert_eq(m.lamport, 100 + i);
        cr_assert_eq(m.request_id, i);
        uint64_t after;
        cr_assert_eq(msg_u64(&m, 2, &after), ERR_OK);
        cr_assert_eq(after, i * 1000);
        msg_free(&m);
        i++;
    }
    cr_assert_eq(i, 50);
    cr_assert_eq(frame_decoder_pending(&d), 0);
    frame_decoder_free(&d);
    buf_free(&b);
}

Test(msg, begin_appends_after_existing_bytes)
{
    struct buf b = BUF_INIT;
    cr_assert_eq(buf_append(&b, "xyz", 3), ERR_OK);
    struct msg_writer w;
    msg_begin(&w, &b, DDKV_MSG_PING, 1, 2, 0);
    cr_assert_eq(msg_end(&w), ERR_OK);
    cr_assert_eq(memcmp(b.data, "xyz", 3), 0, "earlier bytes overwritten");
    size_t len;
    const uint8_t *body = frame_body(&b, 3, &len);
    cr_assert_eq(3 + 4 + len, b.len);
    struct msg m;
    cr_assert_eq(msg_decode(&m, body, len, &msg_limits_request, NULL), ERR_OK);
    cr_assert_eq(m.type, DDKV_MSG_PING);
    msg_free(&m);
    buf_free(&b);
}

Test(msg, wire_bytes_of_a_ping)
{
    /* The documented layout, byte for byte: length, fixarray 3, type, lamport, request_id. */
    struct buf b = BUF_INIT;
    struct msg_writer w;
    msg_begin(&w, &b, DDKV_MSG_PING, 5, 6, 0);
    cr_assert_eq(msg_end(&w), ERR_OK);
    static const uint8_t want[] = {0, 0, 0, 4, 0x93, DDKV_MSG_PING, 5, 6};
    cr_assert_eq(b.len, sizeof want);
    cr_assert_eq(memcmp(b.data, want, sizeof want), 0);
    buf_free(&b);
}

/* --- header validation --- */

Test(msg, body_that_is_not_an_array_is_refused)
{
    struct errbuf eb;
    cr_assert_eq(decode_raw(BYTES(0x02), &eb), ERR_BAD_INPUT);
    cr_assert_eq(decode_raw(BYTES(0xa3, 'a', 'b', 'c'), &eb), ERR_BAD_INPUT);
    cr_assert_eq(decode_raw(BYTES(0x83, 0x02, 0x00, 0x00, 0x00, 0x00, 0x00), &eb), ERR_BAD_INPUT);
    cr_assert_eq(decode_raw(BYTES(0xc0), &eb), ERR_BAD_INPUT);
    cr_assert_gt(strlen(eb.msg), 0);
}

Test(msg, fewer_than_three_header_values_refused)
{
    struct errbuf eb;
    cr_assert_eq(decode_raw(BYTES(0x90), &eb), ERR_BAD_INPUT);
    cr_assert_eq(decode_raw(BYTES(0x91, 0x02), &eb), ERR_BAD_INPUT);
    cr_assert_eq(decode_raw(BYTES(0x92, 0x02, 0x00), &eb), ERR_BAD_INPUT);
    cr_assert_eq(decode_raw(BYTES(0x93, 0x02, 0x00, 0x00), &eb), ERR_OK);
}

Test(msg, type_range)
{
    struct errbuf eb;
    cr_assert_eq(decode_raw(BYTES(0x93, 0x00, 0x00, 0x00), &eb), ERR_BAD_INPUT, "type 0 accepted");
    cr_assert_eq(decode_raw(BYTES(0x93, 0x01, 0x00, 0x00), &eb), ERR_OK);
    cr_assert_eq(decode_raw(BYTES(0x93, 0xcc, 0xff, 0x00, 0x00), &eb), ERR_OK, "type 255 refused");
    cr_assert_eq(decode_raw(BYTES(0x93, 0xcd, 0x01, 0x00, 0x00, 0x00), &eb), ERR_BAD_INPUT,
                 "type 256 accepted");
    /* 2^32 + 2 must not be truncated to type 2. */
    cr_assert_eq(decode_raw(BYTES(0x93, 0xcf, 0, 0, 0, 1, 0, 0, 0, 2, 0x00, 0x00), &eb), ERR_BAD_INPUT,
                 "type 2^32+2 accepted");
    cr_assert_eq(decode_raw(BYTES(0x93, 0xcf, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0, 0), &eb),
                 ERR_BAD_INPUT);
}

Test(msg, type_with_a_non_minimal_encoding_is_still_the_type)
{
    /* uint64 0x0000000000000002 and int8 2 are both type 2. */
    struct msg m;
    const uint8_t a[] = {0x93, 0xcf, 0, 0, 0, 0, 0, 0, 0, 2, 0x00, 0x00};
    cr_assert_eq(msg_decode(&m, a, sizeof a, &msg_limits_request, NULL), ERR_OK);
    cr_assert_eq(m.type, 2);
    msg_free(&m);
    const uint8_t s[] = {0x93, 0xd0, 0x02, 0x00, 0x00};
    cr_assert_eq(msg_decode(&m, s, sizeof s, &msg_limits_request, NULL), ERR_OK);
    cr_assert_eq(m.type, 2);
    msg_free(&m);
}

Test(msg, negative_or_non_integer_header_values_refused)
{
    struct errbuf eb;
    cr_assert_eq(decode_raw(BYTES(0x93, 0xff, 0x00, 0x00), &eb), ERR_BAD_INPUT, "type -1");
    cr_assert_eq(decode_raw(BYTES(0x93, 0xd0, 0x80, 0x00, 0x00), &eb), ERR_BAD_INPUT, "type -128");
    cr_assert_eq(decode_raw(BYTES(0x93, 0xa1, '2', 0x00, 0x00), &eb), ERR_BAD_INPUT, "type \"2\"");
    cr_assert_eq(decode_raw(BYTES(0x93, 0xc0, 0x00, 0x00), &eb), ERR_BAD_INPUT, "type nil");
    cr_assert_eq(decode_raw(BYTES(0x93, 0xc3, 0x00, 0x00), &eb), ERR_BAD_INPUT, "type true");
    cr_assert_eq(decode_raw(BYTES(0x93, 0xca, 0x40, 0x00, 0x00, 0x00, 0x00, 0x00), &eb), ERR_BAD_INPUT,
                 "type 2.0f");
    cr_assert_eq(decode_raw(BYTES(0x93, 0x02, 0xff, 0x00), &eb), ERR_BAD_INPUT, "lamport -1");
    cr_assert_eq(decode_raw(BYTES(0x93, 0x02, 0xa0, 0x00), &eb), ERR_BAD_INPUT, "lamport \"\"");
    cr_assert_eq(decode_raw(BYTES(0x93, 0x02, 0x00, 0xe0), &eb), ERR_BAD_INPUT, "request_id -32");
    cr_assert_eq(decode_raw(BYTES(0x93, 0x02, 0x00, 0x90), &eb), ERR_BAD_INPUT, "request_id []");
}

Test(msg, malformed_msgpack_refused_with_a_message)
{
    struct errbuf eb = {{0}};
    cr_assert_eq(decode_raw(BYTES(0x93, 0x02, 0x00), &eb), ERR_BAD_INPUT);
    cr_assert_gt(strlen(eb.msg), 0);
    cr_assert_eq(decode_raw(BYTES(0x93, 0x02, 0x00, 0x00, 0x00), &eb), ERR_BAD_INPUT, "trailing byte");
    cr_assert_eq(decode_raw(BYTES(0x93, 0x02, 0x00, 0xc1), &eb), ERR_BAD_INPUT);
    const uint8_t none = 0;
    cr_assert_eq(decode_raw(&none, 0, &eb), ERR_BAD_INPUT, "empty body");
    /* eb is optional. */
    cr_assert_eq(decode_raw(BYTES(0xc1), NULL), ERR_BAD_INPUT);
}

Test(msg, request_and_reply_limits_differ_in_object_count)
{
    /* A LIST_RESULT page of 3000 entries fits the reply limit, not the request limit. */
    struct buf b = BUF_INIT;
    struct msg_writer w;
    msg_begin(&w, &b, DDKV_MSG_LIST_RESULT, 1, 1, 3);
    mw_array(&w, 3000);
    for (int i = 0; i < 3000; i++) {
        mw_array(&w, 2);
        mw_str(&w, "k");
        mw_str(&w, "v");
    }
    mw_bool(&w, false);
    mw_u64(&w, 10);
    cr_assert_eq(msg_end(&w), ERR_OK);
    size_t len;
    const uint8_t *body = frame_body(&b, 0, &len);
    struct msg m;
    struct errbuf eb;
    cr_assert_eq(msg_decode(&m, body, len, &msg_limits_request, &eb), ERR_BAD_INPUT);
    cr_assert_eq(msg_decode(&m, body, len, &msg_limits_reply, &eb), ERR_OK, "%s", eb.msg);
    cr_assert_eq(m.f[0].via.array.size, 3000);
    msg_free(&m);
    buf_free(&b);
}

/* --- accessors --- */

/* [VALUE, 1, 2, "str", 7, nil, -3, true, 1.5, [1], {"a": 1}, bin "b"] */
static void build_accessor_msg(struct msg *m, uint8_t *storage, size_t *len)
{
    static const uint8_t bytes[] = {0x9c, 0x05, 0x01, 0x02, 0xa3, 's', 't', 'r', 0x07, 0xc0, 0xfd, 0xc3,
                                    0xcb, 0x3f, 0xf8, 0, 0, 0, 0, 0, 0, 0x91, 0x01, 0x81, 0xa1, 'a', 0x01,
                                    0xc4, 0x01, 'b'};
    memcpy(storage, bytes, sizeof bytes);
    *len = sizeof bytes;
    struct errbuf eb;
    cr_assert_eq(msg_decode(m, storage, *len, &msg_limits_request, &eb), ERR_OK, "%s", eb.msg);
    cr_assert_eq(m->nf, 9);
}

Test(msg, accessors_refuse_wrong_types)
{
    uint8_t storage[64];
    size_t len;
    struct msg m;
    build_accessor_msg(&m, storage, &len);
    uint64_t v = 12345;
    const uint8_t *p;
    size_t n;
    cr_assert_eq(msg_u64(&m, 0, &v), ERR_BAD_INPUT, "string read as integer");
    cr_assert_eq(msg_u64(&m, 2, &v), ERR_BAD_INPUT, "nil read as integer");
    cr_assert_eq(msg_u64(&m, 3, &v), ERR_BAD_INPUT, "negative read as unsigned");
    cr_assert_eq(msg_u64(&m, 4, &v), ERR_BAD_INPUT, "bool read as integer");
    cr_assert_eq(msg_u64(&m, 5, &v), ERR_BAD_INPUT, "float read as integer");
    cr_assert_eq(msg_u64(&m, 6, &v), ERR_BAD_INPUT, "array read as integer");
    cr_assert_eq(msg_u64(&m, 7, &v), ERR_BAD_INPUT, "map read as integer");
    cr_assert_eq(msg_u64(&m, 8, &v), ERR_BAD_INPUT, "bin read as integer");
    cr_assert_eq(msg_bytes(&m, 1, &p, &n), ERR_BAD_INPUT, "integer read as bytes");
    cr_assert_eq(msg_bytes(&m, 2, &p, &n), ERR_BAD_INPUT, "nil read as bytes");
    cr_assert_eq(msg_bytes(&m, 6, &p, &n), ERR_BAD_INPUT, "array read as bytes");
    cr_assert_eq(msg_bytes(&m, 7, &p, &n), ERR_BAD_INPUT, "map read as bytes");
    cr_assert_eq(msg_u64(&m, 1, &v), ERR_OK);
    cr_assert_eq(v, 7);
    cr_assert_eq(msg_bytes(&m, 0, &p, &n), ERR_OK);
    cr_assert_eq(n, 3);
    cr_assert_eq(memcmp(p, "str", 3), 0);
    cr_assert_eq(msg_bytes(&m, 8, &p, &n), ERR_OK);
    cr_assert_eq(n, 1);
    cr_assert_eq(p[0], 'b');
    msg_free(&m);
}

Test(msg, accessors_refuse_missing_index)
{
    uint8_t storage[64];
    size_t len;
    struct msg m;
    build_accessor_msg(&m, storage, &len);
    uint64_t v;
    const uint8_t *p;
    size_t n;
    for (uint32_t i = m.nf; i < m.nf + 3; i++) {
        cr_assert_eq(msg_u64(&m, i, &v), ERR_BAD_INPUT);
        cr_assert_eq(msg_bytes(&m, i, &p, &n), ERR_BAD_INPUT);
    }
    cr_assert_eq(msg_u64(&m, UINT32_MAX, &v), ERR_BAD_INPUT);
    cr_assert_eq(msg_bytes(&m, UINT32_MAX, &p, &n), ERR_BAD_INPUT);
    msg_free(&m);
}

Test(msg, accessors_on_a_message_without_fields)
{
    struct msg m;
    cr_assert_eq(msg_decode(&m, BYTES(0x93, 0x02, 0x00, 0x00), &msg_limits_request, NULL), ERR_OK);
    cr_assert_eq(m.nf, 0);
    uint64_t v;
    const uint8_t *p;
    size_t n;
    cr_assert_eq(msg_u64(&m, 0, &v), ERR_BAD_INPUT);
    cr_assert_eq(msg_bytes(&m, 0, &p, &n), ERR_BAD_INPUT);
    cr_assert(msg_is_nil(&m, 0));
    cr_assert_eq(msg_u64_opt(&m, 0, 42, &v), ERR_OK);
    cr_assert_eq(v, 42);
    msg_free(&m);
}

Test(msg, nil_means_nil_or_absent)
{
    uint8_t storage[64];
    size_t len;
    struct msg m;
    build_accessor_msg(&m, storage, &len);
    cr_assert(msg_is_nil(&m, 2));
    cr_assert(msg_is_nil(&m, m.nf), "absent field is nil");
    cr_assert(msg_is_nil(&m, UINT32_MAX));
    for (uint32_t i = 0; i < m.nf; i++)
        if (i != 2)
            cr_assert_not(msg_is_nil(&m, i), "field %u is not nil", i);
    msg_free(&m);
}

Test(msg, optional_accessors_give_defaults)
{
    uint8_t storage[64];
    size_t len;
    struct msg m;
    build_accessor_msg(&m, storage, &len);
    uint64_t v = 0;
    const uint8_t *p = NULL;
    size_t n = 99;
    cr_assert_eq(msg_u64_opt(&m, 2, 1234, &v), ERR_OK, "nil gives the default");
    cr_assert_eq(v, 1234);
    cr_assert_eq(msg_u64_opt(&m, m.nf, 4321, &v), ERR_OK, "absent gives the default");
    cr_assert_eq(v, 4321);
    cr_assert_eq(msg_u64_opt(&m, 1, 1234, &v), ERR_OK);
    cr_assert_eq(v, 7, "present value ignored");
    cr_assert_eq(msg_u64_opt(&m, 0, 1234, &v), ERR_BAD_INPUT, "wrong type is not absent");
    cr_assert_eq(msg_u64_opt(&m, 3, 1234, &v), ERR_BAD_INPUT);

    cr_assert_eq(msg_bytes_opt(&m, 2, &p, &n), ERR_OK);
    cr_assert_not_null(p);
    cr_assert_eq(n, 0);
    p = NULL;
    n = 99;
    cr_assert_eq(msg_bytes_opt(&m, m.nf + 5, &p, &n), ERR_OK);
    cr_assert_not_null(p);
    cr_assert_eq(n, 0);
    cr_assert_eq(msg_bytes_opt(&m, 0, &p, &n), ERR_OK);
    cr_assert_eq(n, 3);
    cr_assert_eq(memcmp(p, "str", 3), 0);
    cr_assert_eq(msg_bytes_opt(&m, 1, &p, &n), ERR_BAD_INPUT);
    msg_free(&m);
}

Test(msg, mpo_bool_is_true_only_for_true)
{
    uint8_t storage[64];
    size_t len;
    struct msg m;
    build_accessor_msg(&m, storage, &len);
    for (uint32_t i = 0; i < m.nf; i++) {
        if (i == 4)
            cr_assert(mpo_bool(&m.f[i]));
        else
            cr_assert_not(mpo_bool(&m.f[i]), "field %u read as true", i);
    }
    msg_free(&m);
}

Test(msg, mpo_bytes_never_hands_out_null)
{
    /* An empty string or bin may carry a NULL pointer (msgpack-c objects built in
     * memory do); callers pass the result to memcpy/fwrite, so it must not be NULL. */
    msgpack_object o;
    memset(&o, 0, sizeof o);
    const uint8_t *p = NULL;
    size_t n = 99;
    o.type = MSGPACK_OBJECT_STR;
    o.via.str.ptr = NULL;
    o.via.str.size = 0;
    cr_assert_eq(mpo_bytes(&o, &p, &n), ERR_OK);
    cr_assert_not_null(p);
    cr_assert_eq(n, 0);
    p = NULL;
    o.type = MSGPACK_OBJECT_BIN;
    o.via.bin.ptr = NULL;
    o.via.bin.size = 0;
    cr_assert_eq(mpo_bytes(&o, &p, &n), ERR_OK);
    cr_assert_not_null(p);
    cr_assert_eq(n, 0);
    o.type = MSGPACK_OBJECT_EXT;
    cr_assert_eq(mpo_bytes(&o, &p, &n), ERR_BAD_INPUT, "ext read as bytes");
    o.type = MSGPACK_OBJECT_NEGATIVE_INTEGER;
    uint64_t v;
    cr_assert_eq(mpo_u64(&o, &v), ERR_BAD_INPUT);
}

Test(msg, mpo_map_get_finds_string_keys_only)
{
    /* {"ab": 1, "abc": 2, "": 3, bin "k": 4, 5: 6, "dup": 7, "dup": 8} */
    static const uint8_t bytes[] = {0x87, 0xa2, 'a', 'b', 0x01, 0xa3, 'a', 'b', 'c', 0x02, 0xa0, 0x03,
                                    0xc4, 0x01, 'k', 0x04, 0x05, 0x06, 0xa3, 'd', 'u', 'p', 0x07,
                                    0xa3, 'd', 'u', 'p', 0x08};
    msgpack_unpacked up;
    msgpack_unpacked_init(&up);
    size_t off = 0;
    cr_assert_eq(msgpack_unpack_next(&up, (const char *)bytes, sizeof bytes, &off), MSGPACK_UNPACK_SUCCESS);
    const msgpack_object *map = &up.data;
    uint64_t v;
    const msgpack_object *o = mpo_map_get(map, "ab");
    cr_assert_not_null(o);
    cr_assert_eq(mpo_u64(o, &v), ERR_OK);
    cr_assert_eq(v, 1, "\"ab\" matched a longer key");
    o = mpo_map_get(map, "abc");
    cr_assert_not_null(o);
    cr_assert_eq(mpo_u64(o, &v), ERR_OK);
    cr_assert_eq(v, 2);
    o = mpo_map_get(map, "");
    cr_assert_not_null(o);
    cr_assert_eq(mpo_u64(o, &v), ERR_OK);
    cr_assert_eq(v, 3);
    cr_assert_null(mpo_map_get(map, "a"), "prefix of a key matched");
    cr_assert_null(mpo_map_get(map, "abcd"));
    cr_assert_null(mpo_map_get(map, "k"), "binary key matched a string lookup");
    cr_assert_null(mpo_map_get(map, "5"));
    o = mpo_map_get(map, "dup");
    cr_assert_not_null(o);
    cr_assert_eq(mpo_u64(o, &v), ERR_OK);
    cr_assert_eq(v, 7, "duplicate key: the first one wins");
    /* Not a map. */
    cr_assert_null(mpo_map_get(&map->via.map.ptr[0].key, "ab"));
    msgpack_unpacked_destroy(&up);
}

Test(msg, mpo_map_get_empty_key_as_decoded)
{
    /* msgpack-c decodes some empty strings with a NULL ptr (here: the first key of
     * {"": 3}); looking up "" must find it without passing NULL to memcmp (UBSan). */
    static const uint8_t bytes[] = {0x82, 0xa0, 0x03, 0xa1, 'x', 0x04};
    msgpack_unpacked up;
    msgpack_unpacked_init(&up);
    size_t off = 0;
    cr_assert_eq(msgpack_unpack_next(&up, (const char *)bytes, sizeof bytes, &off), MSGPACK_UNPACK_SUCCESS);
    uint64_t v;
    const msgpack_object *o = mpo_map_get(&up.data, "");
    cr_assert_not_null(o);
    cr_assert_eq(mpo_u64(o, &v), ERR_OK);
    cr_assert_eq(v, 3);
    o = mpo_map_get(&up.data, "x");
    cr_assert_not_null(o);
    cr_assert_eq(mpo_u64(o, &v), ERR_OK);
    cr_assert_eq(v, 4);
    msgpack_unpacked_destroy(&up);

    /* The same with a hand-built NULL-ptr key, whatever msgpack-c happens to do. */
    msgpack_object_kv kv;
    memset(&kv, 0, sizeof kv);
    kv.key.type = MSGPACK_OBJECT_STR;
    kv.key.via.str.ptr = NULL;
    kv.key.via.str.size = 0;
    kv.val.type = MSGPACK_OBJECT_POSITIVE_INTEGER;
    kv.val.via.u64 = 9;
    msgpack_object map;
    memset(&map, 0, sizeof map);
    map.type = MSGPACK_OBJECT_MAP;
    map.via.map.size = 1;
    map.via.map.ptr = &kv;
    cr_assert_eq(mpo_map_get(&map, ""), &kv.val);
    cr_assert_null(mpo_map_get(&map, "y"));
}

Test(msg, mpo_accessors_on_nested_values)
{
    /* [PONG, 1, 2, [[1, "a"], {"x": [true]}]] */
    struct buf b = BUF_INIT;
    struct msg_writer w;
    msg_begin(&w, &b, DDKV_MSG_PONG, 1, 2, 1);
    mw_array(&w, 2);
    mw_array(&w, 2);
    mw_u64(&w, 1);
    mw_str(&w, "a");
    mw_map(&w, 1);
    mw_str(&w, "x");
    mw_array(&w, 1);
    mw_bool(&w, true);
    cr_assert_eq(msg_end(&w), ERR_OK);
    struct msg m;
    decode_one(&m, &b);
    const msgpack_object *top = &m.f[0];
    uint64_t v;
    const uint8_t *p;
    size_t n;
    cr_assert_eq(mpo_u64(top, &v), ERR_BAD_INPUT);
    cr_assert_eq(mpo_bytes(top, &p, &n), ERR_BAD_INPUT);
    cr_assert_null(mpo_map_get(top, "x"));
    const msgpack_object *inner = &top->via.array.ptr[0];
    cr_assert_eq(mpo_u64(&inner->via.array.ptr[0], &v), ERR_OK);
    cr_assert_eq(v, 1);
    cr_assert_eq(mpo_bytes(&inner->via.array.ptr[1], &p, &n), ERR_OK);
    cr_assert_eq(n, 1);
    const msgpack_object *x = mpo_map_get(&top->via.array.ptr[1], "x");
    cr_assert_not_null(x);
    cr_assert_eq(x->type, MSGPACK_OBJECT_ARRAY);
    cr_assert(mpo_bool(&x->via.array.ptr[0]));
    msg_free(&m);
    buf_free(&b);
}

/* --- ERROR messages --- */

Test(msg, encode_error_layout)
{
    struct buf b = BUF_INIT;
    cr_assert_eq(msg_encode_error(&b, 11, 22, DDKV_WERR_NOT_LEADER, "not the leader", "127.0.0.1:7002"),
                 ERR_OK);
    struct msg m;
    decode_one(&m, &b);
    cr_assert_eq(m.type, DDKV_MSG_ERROR);
    cr_assert_eq(m.lamport, 11);
    cr_assert_eq(m.request_id, 22);
    cr_assert_eq(m.nf, 3);
    uint64_t code;
    cr_assert_eq(msg_u64(&m, 0, &code), ERR_OK);
    cr_assert_eq(code, DDKV_WERR_NOT_LEADER);
    const uint8_t *p;
    size_t n;
    cr_assert_eq(msg_bytes(&m, 1, &p, &n), ERR_OK);
    cr_assert_eq(n, strlen("not the leader"));
    cr_assert_eq(memcmp(p, "not the leader", n), 0);
    cr_assert_eq(m.f[1].type, MSGPACK_OBJECT_STR);
    cr_assert_eq(msg_bytes(&m, 2, &p, &n), ERR_OK);
    cr_assert_eq(n, strlen("127.0.0.1:7002"));
    cr_assert_eq(memcmp(p, "127.0.0.1:7002", n), 0);
    msg_free(&m);
    buf_free(&b);
}

Test(msg, encode_error_without_leader_or_message)
{
    struct buf b = BUF_INIT;
    cr_assert_eq(msg_encode_error(&b, 1, 2, DDKV_WERR_NOT_FOUND, NULL, NULL), ERR_OK);
    struct msg m;
    decode_one(&m, &b);
    cr_assert_eq(m.type, DDKV_MSG_ERROR);
    cr_assert_eq(m.nf, 3, "the leader field is present as nil, not left out");
    uint64_t code;
    cr_assert_eq(msg_u64(&m, 0, &code), ERR_OK);
    cr_assert_eq(code, DDKV_WERR_NOT_FOUND);
    const uint8_t *p;
    size_t n;
    cr_assert_eq(msg_bytes(&m, 1, &p, &n), ERR_OK, "a NULL message is an empty string, not nil");
    cr_assert_eq(n, 0);
    cr_assert_eq(m.f[2].type, MSGPACK_OBJECT_NIL);
    cr_assert(msg_is_nil(&m, 2));
    msg_free(&m);
    buf_free(&b);
}

Test(msg, names_for_types_and_errors)
{
    cr_assert_str_eq(msg_type_name(DDKV_MSG_ERROR), "ERROR");
    cr_assert_str_eq(msg_type_name(DDKV_MSG_PING), "PING");
    cr_assert_str_eq(msg_type_name(DDKV_MSG_WRITTEN_AT), "WRITTEN_AT");
    cr_assert_str_eq(msg_type_name(DDKV_MSG_STATUS_RESULT), "STATUS_RESULT");
    cr_assert_str_eq(msg_type_name(0), "UNKNOWN");
    cr_assert_str_eq(msg_type_name(255), "UNKNOWN");
    for (uint32_t t = 0; t < 2 * DDKV_MSG_TYPE_MAX; t++)
        cr_assert_not_null(msg_type_name(t));
    cr_assert_str_eq(wire_error_name(DDKV_WERR_NOT_LEADER), "NOT_LEADER");
    cr_assert_str_eq(wire_error_name(DDKV_WERR_TOO_LARGE), "TOO_LARGE");
    cr_assert_str_eq(wire_error_name(DDKV_WERR_INTERNAL), "INTERNAL");
    cr_assert_str_eq(wire_error_name(0), "UNKNOWN_ERROR");
    cr_assert_str_eq(wire_error_name(UINT32_MAX), "UNKNOWN_ERROR");
}

Test(msg, failed_decode_leaves_nothing_to_free)
{
    /* Run under ASan with detect_leaks: a failing decode must not leak its zone. */
    static const uint8_t bad[][6] = {
        {0x93, 0x00, 0x00, 0x00},             /* type 0: fails after unpacking */
        {0x92, 0x02, 0x00},                   /* short header */
        {0xa1, 'x'},                          /* not an array */
        {0x93, 0xcd, 0x01, 0x00, 0x00, 0x00}, /* type 256 */
    };
    static const size_t len[] = {4, 3, 2, 6};
    for (size_t i = 0; i < 4; i++) {
        struct msg m;
        cr_assert_eq(msg_decode(&m, bad[i], len[i], &msg_limits_request, NULL), ERR_BAD_INPUT);
    }
}
