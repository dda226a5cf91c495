/* libddkv's insides shared by its files (client.c: the blocking driver and
 * the key-value, backup, membership, transaction, lease and watch calls;
 * client_ops.c: the job queue and authentication calls). Not installed. */
#ifndef DDKV_CLIENT_INT_H
#define DDKV_CLIENT_INT_H

#include <openssl/ssl.h>
#include <stdbool.h>
#include <stdint.h>

#include "client/core.h"
#include "ddkv/ddkv.h"
#include "proto/frame.h"

/* The blocking driver of the client core (client/core.h): the core holds the
 * endpoints, the session, request ids and the retry rules; this holds the
 * connection and waits with poll(2). */
struct ddkv_client {
    struct cc cc;   /* the state and rules; cc.up says whether fd is the connection to cc.eps[cc.cur] */
    int fd;         /* -1 when not connected */
    SSL_CTX *tls;   /* NULL: plain TCP */
    SSL *ssl;       /* the connection's TLS session (with tls, while fd >= 0) */
    bool tls_check_name;
    short tls_want; /* POLLIN or POLLOUT: what the last TLS call waits for */
    bool heard;     /* bytes arrived on this connection */
    bool io_refused; /* the last TLS failure was the node refusing this client */
    char io_why[160]; /* a TLS failure, when errno is EPROTO */
    struct frame_decoder dec;
    uint64_t seen_lamport;
    uint32_t list_consistency;
    uint32_t max_reply_bytes;
};

/* How one send or wait on one connection ended (the core's enum cc_io, plus
 * ATTEMPT_REPLY: done). */
enum attempt {
    ATTEMPT_REPLY = -1, /* sent, or a reply to this request is in call->reply */
    ATTEMPT_BROKEN = CC_IO_BROKEN,
    ATTEMPT_TIMEOUT = CC_IO_TIMEOUT,
    ATTEMPT_GARBLED = CC_IO_GARBLED,
    ATTEMPT_REFUSED = CC_IO_REFUSED,
    ATTEMPT_NOMEM = CC_IO_NOMEM,
};

ddkv_err client_fail(struct ddkv_client *c, ddkv_err code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
void client_disconnect(struct ddkv_client *c);
/* Run one request to completion through the core; on DDKV_OK k->reply holds
 * the reply (the caller msg_frees it). */
ddkv_err client_call(struct ddkv_client *c, struct cc_call *k);
/* Fail an operation whose reply could not be understood. */
ddkv_err client_bad_reply(struct ddkv_client *c, const struct cc_call *k, const char *what);
void client_saw(struct ddkv_client *c, uint64_t lamport);
/* A write answered [lamport, revision]. */
ddkv_err client_change(struct ddkv_client *c, struct cc_call *k, struct ddkv_write_result *out);

#endif
