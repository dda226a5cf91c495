/* The fault proxy: it forwards a peer connection, names its ends from the
 * hello, holds bytes while a direction is cut and lets them through when
 * healed, and passes on a close from either end. */
#include <criterion/criterion.h>
#include <poll.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "ddkv/wire.h"
#include "harness.h"
#include "proto/msg.h"
#include "proxy.h"

static struct fproxy *px;
static int lfd = -1;

static void fini(void)
{
    fproxy_free(px);
    if (lfd >= 0)
        close(lfd);
}

TestSuite(proxy, .fini = fini, .timeout = 60);

/* A member "B" listening, its front, and a connection from "A" through it
 * (the hello sent); returns the dialler's fd, the member's in *member. */
static int connect_through(int *member)
{
    int target;
    lfd = listen_loopback(&target, 2000);
    cr_assert_geq(lfd, 0);
    px = fproxy_new();
    cr_assert_not_null(px);
    int front = fproxy_front(px, "B", 0, target);
    cr_assert_gt(front, 0);
    int fd = tcp_connect_port(front);
    cr_assert_geq(fd, 0);
    struct buf b = BUF_INIT;
    struct msg_writer w;
    msg_begin(&w, &b, DDKV_MSG_PEER_HELLO, 1, 0, 6);
    mw_u64(&w, 7);
    mw_u64(&w, 1);
    mw_u64(&w, 1);
    mw_str(&w, "A");
    mw_str(&w, "127.0.0.1:1");
    mw_str(&w, "127.0.0.1:2");
    cr_assert_eq(msg_end(&w), 0);
    cr_assert_eq(send_all(fd, b.data, b.len), 0);
    *member = accept(lfd, NULL, NULL);
    cr_assert_geq(*member, 0);
    struct buf got = BUF_INIT;
    cr_assert_eq(recv_frame(*member, 2000, &got), 0, "the hello is forwarded");
    cr_assert_eq(got.len + 4, b.len);
    buf_free(&got);
    buf_free(&b);
    return fd;
}

static bool readable(int fd, int ms)
{
    struct pollfd p = {.fd = fd, .events = POLLIN};
    return poll(&p, 1, ms) == 1;
}

Test(proxy, a_cut_holds_bytes_and_healing_delivers_them_in_order)
{
    int member, fd = connect_through(&member);
    fproxy_cut(px, "A", "B", true);
    cr_assert(fproxy_is_cut(px, "A", "B"));
    cr_assert_eq(send_all(fd, "hello", 5), 0);
    cr_assert_not(readable(member, 300), "bytes crossed a cut");
    /* The other direction still flows. */
    cr_assert_eq(send_all(member, "back", 4), 0);
    cr_assert(readable(fd, 2000));
    char buf[16];
    cr_assert_eq(read(fd, buf, sizeof buf), 4);
    fproxy_heal(px);
    cr_assert(readable(member, 2000), "healing did not deliver the held bytes");
    cr_assert_eq(read(member, buf, sizeof buf), 5);
    cr_assert_eq(memcmp(buf, "hello", 5), 0);
    struct fproxy_stats st;
    fproxy_stats(px, &st);
    cr_assert_eq(st.identified, 1);
    close(fd);
    close(member);
}

Test(proxy, a_member_that_dies_closes_the_dialler_connection)
{
    int member, fd = connect_through(&member);
    close(member);
    cr_assert(wait_closed(fd, 2000), "the dialler never saw the member go");
    close(fd);
}

Test(proxy, a_member_that_dies_during_a_cut_closes_the_dialler_connection_after_healing)
{
    int member, fd = connect_through(&member);
    fproxy_cut(px, "B", "A", true);
    fproxy_cut(px, "A", "B", true);
    close(member);
    usleep(200 * 1000);
    fproxy_heal(px);
    cr_assert(wait_closed(fd, 2000), "the dialler never saw the member go");
    close(fd);
}

Test(proxy, a_dialler_that_goes_closes_the_member_connection)
{
    int member, fd = connect_through(&member);
    close(fd);
    cr_assert(wait_closed(member, 2000), "the member never saw the dialler go");
    close(member);
}

Test(proxy, a_member_marked_down_refuses_connections_until_it_is_up_again)
{
    int target;
    lfd = listen_loopback(&target, 2000);
    cr_assert_geq(lfd, 0);
    px = fproxy_new();
    cr_assert_not_null(px);
    int front = fproxy_front(px, "B", 0, target);
    cr_assert_gt(front, 0);
    cr_assert_eq(fproxy_set_down(px, "B", true), 0);
    cr_assert_lt(tcp_connect_port(front), 0, "a down member's front still accepts");
    cr_assert_eq(fproxy_set_down(px, "B", false), 0);
    int fd = tcp_connect_port(front);
    cr_assert_geq(fd, 0, "the front did not come back on its port");
    close(fd);
    cr_assert_neq(fproxy_set_down(px, "nobody", true), 0);
}
