/* Writing a socket bufferevent's output now, from outside its callbacks. */
#ifndef DDKV_NODE_EVWRITE_H
#define DDKV_NODE_EVWRITE_H

#include <event2/buffer.h>
#include <event2/bufferevent.h>

/* Write what the socket bufferevent bev has queued to its socket now,
 * instead of when the loop next finds the socket writable: evbuffer_write's
 * result (bytes written, 0 with nothing queued, -1 when the socket takes
 * nothing now or failed).
 *
 * libevent keeps a socket bufferevent's output frozen at its start, so that
 * only its own write callback, which unfreezes it around the write, drains
 * it: evbuffer_write alone writes nothing. This does what that callback does.
 * What is left, and any error (EAGAIN, a reset), stays for the bufferevent,
 * whose write event is still pending, to write or report. Not for a TLS
 * bufferevent (its output is plaintext): use the socket underneath it. */
static inline int evwrite_now(struct bufferevent *bev)
{
    struct evbuffer *out = bufferevent_get_output(bev);
    if (evbuffer_get_length(out) == 0)
        return 0;
    evbuffer_unfreeze(out, 1);
    int wr = evbuffer_write(out, bufferevent_getfd(bev));
    evbuffer_freeze(out, 1);
    return wr;
}

#endif
