/* Writing a socket bufferevent's output now, from outside its callbacks, and
 * the event base that makes it cheap. */
#ifndef DDKV_UTIL_EVWRITE_H
#define DDKV_UTIL_EVWRITE_H

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_struct.h>
#include <event2/event.h>

/* An event base whose epoll changes wait in libevent's change list until
 * the loop next polls, so that an event added and deleted within one turn
 * (a reply queued, then written by evwrite_now and evwrite_idle) costs no
 * system call. libevent's one caveat: no file descriptor it watches may be a
 * dup() of another, which none of ours is. NULL when out of memory. */
static inline struct event_base *evbase_new(void)
{
    struct event_config *cfg = event_config_new();
    if (!cfg)
        return NULL;
    event_config_set_flag(cfg, EVENT_BASE_FLAG_EPOLL_USE_CHANGELIST);
    struct event_base *base = event_base_new_with_config(cfg);
    event_config_free(cfg);
    return base;
}

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

/* After evwrite_now: when bev's output is empty, take its write event off the
 * loop, as the bufferevent's own write callback would on finding the socket
 * writable with nothing to write. Otherwise the loop's next turn asks epoll
 * for the socket's writability, wakes on it and only then drops it: two
 * epoll_ctl calls and a wake-up for every reply. With the event base's change
 * list (EVENT_BASE_FLAG_EPOLL_USE_CHANGELIST) the add that queuing the bytes
 * made and this delete cancel out before epoll ever hears of them. Only for a
 * plain socket bufferevent that is connected (its write callback is also
 * how a connect finishes) and whose owner does what its write callback would
 * after a drain; not for the socket under a TLS filter, whose write callback
 * feeds it more. */
static inline void evwrite_idle(struct bufferevent *bev)
{
    if (evbuffer_get_length(bufferevent_get_output(bev)) == 0)
        event_del(&bev->ev_write);
}

#endif
