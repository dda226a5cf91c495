/* evwrite_now (util/evwrite.h): a socket bufferevent's queued output reaches
 * the socket at once, without the loop turning, and the bufferevent goes on
 * working after it; evwrite_idle takes the write event off the loop only
 * when nothing is left. The loop is evbase_new's (epoll's change list). */
#include <criterion/criterion.h>
#include <errno.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "util/evwrite.h"

struct pair {
    struct event_base *base;
    struct bufferevent *bev;
    int far;
};

static struct pair pair_new(void)
{
    struct pair p;
    int sv[2];
    cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv), 0);
    p.base = evbase_new();
    cr_assert_not_null(p.base);
    p.bev = bufferevent_socket_new(p.base, sv[0], BEV_OPT_CLOSE_ON_FREE);
    cr_assert_not_null(p.bev);
    cr_assert_eq(bufferevent_enable(p.bev, EV_READ | EV_WRITE), 0);
    p.far = sv[1];
    return p;
}

static void pair_free(struct pair *p)
{
    bufferevent_free(p->bev);
    close(p->far);
    event_base_free(p->base);
}

static ssize_t take(int fd, char *buf, size_t cap)
{
    ssize_t r = recv(fd, buf, cap, MSG_DONTWAIT);
    return r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK) ? 0 : r;
}

Test(evwrite, queued_output_reaches_the_socket_without_a_loop_turn)
{
    struct pair p = pair_new();
    char got[64];
    cr_assert_eq(evwrite_now(p.bev), 0, "nothing queued, nothing written");
    cr_assert_eq(bufferevent_write(p.bev, "hello", 5), 0);
    cr_assert_eq(take(p.far, got, sizeof got), 0, "bufferevent_write alone writes at the next turn");
    cr_assert_eq(evwrite_now(p.bev), 5);
    cr_assert_eq(evbuffer_get_length(bufferevent_get_output(p.bev)), 0);
    cr_assert_eq(take(p.far, got, sizeof got), 5, "the bytes are on the socket before the loop ran");
    cr_assert_arr_eq(got, "hello", 5);
    /* The loop's pending write finds nothing more: no byte twice. */
    event_base_loop(p.base, EVLOOP_NONBLOCK);
    cr_assert_eq(take(p.far, got, sizeof got), 0);
    /* And the bufferevent still writes on its own afterwards. */
    cr_assert_eq(bufferevent_write(p.bev, "world", 5), 0);
    for (int i = 0; i < 10 && evbuffer_get_length(bufferevent_get_output(p.bev)) > 0; i++)
        event_base_loop(p.base, EVLOOP_NONBLOCK);
    cr_assert_eq(take(p.far, got, sizeof got), 5);
    cr_assert_arr_eq(got, "world", 5);
    pair_free(&p);
}

Test(evwrite, what_the_socket_cannot_take_stays_queued_in_order)
{
    struct pair p = pair_new();
    int small = 4096;
    setsockopt(bufferevent_getfd(p.bev), SOL_SOCKET, SO_SNDBUF, &small, sizeof small);
    static char big[1 << 20];
    for (size_t i = 0; i < sizeof big; i++)
        big[i] = (char)(i * 7);
    cr_assert_eq(bufferevent_write(p.bev, big, sizeof big), 0);
    int wr = evwrite_now(p.bev);
    cr_assert_gt(wr, 0);
    cr_assert_lt((size_t)wr, sizeof big, "a 1 MiB write fits no socket buffer here");
    evwrite_idle(p.bev);
    cr_assert(event_pending(&p.bev->ev_write, EV_WRITE, NULL), "bytes are left: the write event stays");
    size_t left = evbuffer_get_length(bufferevent_get_output(p.bev));
    cr_assert_eq(left, sizeof big - (size_t)wr);
    /* The rest goes out through the bufferevent, after what was written. */
    static char got[1 << 20];
    size_t have = 0;
    for (int i = 0; i < 100000 && have < sizeof big; i++) {
        ssize_t r = take(p.far, got + have, sizeof got - have);
        cr_assert_geq(r, 0);
        have += (size_t)r;
        event_base_loop(p.base, EVLOOP_NONBLOCK);
    }
    cr_assert_eq(have, sizeof big);
    cr_assert_arr_eq(got, big, sizeof big);
    pair_free(&p);
}

Test(evwrite, an_emptied_output_leaves_the_loop_and_comes_back_with_new_bytes)
{
    struct pair p = pair_new();
    char got[64];
    cr_assert_eq(bufferevent_write(p.bev, "one", 3), 0);
    cr_assert(event_pending(&p.bev->ev_write, EV_WRITE, NULL), "queuing bytes adds the write event");
    cr_assert_eq(evwrite_now(p.bev), 3);
    evwrite_idle(p.bev);
    cr_assert(!event_pending(&p.bev->ev_write, EV_WRITE, NULL), "nothing left: no write event");
    cr_assert_eq(take(p.far, got, sizeof got), 3);
    /* The next bytes add it again, and the loop writes them on its own. */
    cr_assert_eq(bufferevent_write(p.bev, "two", 3), 0);
    cr_assert(event_pending(&p.bev->ev_write, EV_WRITE, NULL));
    for (int i = 0; i < 10 && evbuffer_get_length(bufferevent_get_output(p.bev)) > 0; i++)
        event_base_loop(p.base, EVLOOP_NONBLOCK);
    cr_assert_eq(take(p.far, got, sizeof got), 3);
    cr_assert_arr_eq(got, "two", 3);
    /* And reading still works on the same bufferevent. */
    cr_assert_eq(send(p.far, "in", 2, 0), 2);
    for (int i = 0; i < 10 && evbuffer_get_length(bufferevent_get_input(p.bev)) == 0; i++)
        event_base_loop(p.base, EVLOOP_NONBLOCK);
    cr_assert_eq(evbuffer_get_length(bufferevent_get_input(p.bev)), 2);
    pair_free(&p);
}
