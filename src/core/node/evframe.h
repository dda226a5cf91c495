/* Feeding a frame decoder straight from a libevent input buffer: the client
 * connections (conn.c) and the peer connections (peer.c) read the same
 * way, a bounded share per turn so one connection cannot starve the rest. */
#ifndef DDKV_NODE_EVFRAME_H
#define DDKV_NODE_EVFRAME_H

#include <event2/buffer.h>
#include <stddef.h>

#include "proto/frame.h"
#include "util/err.h"

/* Feed up to budget bytes of in to d in place (no copy) and drain what was
 * fed; returns that count, and in *rc (if not NULL) the decoder's refusal
 * (ERR_OK if none). It stops at the first refusal, which is sticky:
 * frame_decoder_next reports it after the frames before it. */
static inline size_t evframe_feed(struct frame_decoder *d, struct evbuffer *in, size_t budget, int *rcp)
{
    struct evbuffer_iovec v[8];
    int nv = evbuffer_peek(in, (ev_ssize_t)budget, NULL, v, 8);
    size_t took = 0;
    int rc = ERR_OK;
    for (int i = 0; i < nv && i < 8 && rc == ERR_OK && took < budget; i++) {
        size_t k = v[i].iov_len < budget - took ? v[i].iov_len : budget - took;
        rc = frame_decoder_feed(d, v[i].iov_base, k);
        took += k;
    }
    evbuffer_drain(in, took);
    if (rcp)
        *rcp = rc;
    return took;
}

#endif
