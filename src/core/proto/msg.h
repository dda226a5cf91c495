/* Messages: [type, lamport, request_id, ...fields] as one msgpack array.
 *
 * Decoding checks the bytes with mpcheck before msgpack-c unpacks them, then
 * exposes typed accessors that return ERR_BAD_INPUT on a missing field or a
 * wrong type, so handlers never index past what the sender sent. Byte strings
 * returned by the accessors point into the frame: borrowed until the frame's
 * buffer changes (copy what must outlive the handler).
 *
 * Encoding packs straight into a struct buf with msgpack-c's packer and patches
 * the frame length at the end, so a message is built with one allocation-free
 * pass once the buffer has grown. */
#ifndef DDKV_PROTO_MSG_H
#define DDKV_PROTO_MSG_H

#include <msgpack.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "util/buf.h"
#include "proto/mpcheck.h"
#include "util/err.h"

struct msg {
    msgpack_unpacked up;        /* owns the decoded objects (zone) */
    uint32_t type;
    uint64_t lamport;
    uint64_t request_id;
    const msgpack_object *f;    /* fields after the three header values */
    uint32_t nf;
};

/* Limits for untrusted input: requests to a node are small; replies to a
 * client (a LIST page) may hold many objects. */
extern const struct mpcheck_limits msg_limits_request;
extern const struct mpcheck_limits msg_limits_reply;

/* Decode one frame body. On success the caller must msg_free(m). On failure m
 * holds nothing to free and eb says why. */
int msg_decode(struct msg *m, const uint8_t *body, size_t len, const struct mpcheck_limits *lim,
               struct errbuf *eb);
void msg_free(struct msg *m);

/* Field accessors, by index into the fields after the header. */
int msg_u64(const struct msg *m, uint32_t i, uint64_t *v);
int msg_bytes(const struct msg *m, uint32_t i, const uint8_t **p, size_t *n);
bool msg_is_nil(const struct msg *m, uint32_t i); /* also true if absent */
/* Optional fields: absent or nil gives the default. */
int msg_u64_opt(const struct msg *m, uint32_t i, uint64_t dflt, uint64_t *v);
int msg_bytes_opt(const struct msg *m, uint32_t i, const uint8_t **p, size_t *n);

/* The same, on any object (for nested arrays and maps). */
int mpo_u64(const msgpack_object *o, uint64_t *v);
int mpo_bytes(const msgpack_object *o, const uint8_t **p, size_t *n);
bool mpo_bool(const msgpack_object *o);
/* Look up a string key in a map; NULL if absent or o is not a map. */
const msgpack_object *mpo_map_get(const msgpack_object *o, const char *key);

/* Encoding. */
struct msg_writer {
    struct buf *b;
    size_t start; /* offset of the frame header in b */
    msgpack_packer pk;
    int failed;
};

/* Start a frame in b (appending) with nfields fields after the header. */
void msg_begin(struct msg_writer *w, struct buf *b, uint32_t type, uint64_t lamport,
               uint64_t request_id, uint32_t nfields);
/* A writer with no frame or message header, for packing a nested part on its
 * own (e.g. list entries before their count is known); finish with nothing. */
void msg_writer_raw(struct msg_writer *w, struct buf *b);
/* Append bytes that already are msgpack (from a raw writer). */
void mw_raw(struct msg_writer *w, const void *p, size_t n);
void mw_u64(struct msg_writer *w, uint64_t v);
void mw_bool(struct msg_writer *w, bool v);
void mw_nil(struct msg_writer *w);
void mw_bin(struct msg_writer *w, const void *p, size_t n);
void mw_str(struct msg_writer *w, const char *s); /* NULL packs nil */
void mw_strn(struct msg_writer *w, const char *s, size_t n);
void mw_array(struct msg_writer *w, uint32_t n);
void mw_map(struct msg_writer *w, uint32_t n);
/* Finish the frame: patch its length. Returns ERR_NOMEM if any write failed
 * (the partial frame is removed from b). */
int msg_end(struct msg_writer *w);

/* Build a whole ERROR frame. */
int msg_encode_error(struct buf *b, uint64_t lamport, uint64_t request_id, uint32_t code,
                     const char *message, const char *leader_addr);

const char *msg_type_name(uint32_t type);
const char *wire_error_name(uint32_t code);

#endif
