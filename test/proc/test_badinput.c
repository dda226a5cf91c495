/* Bad input against a real node: after each attack the node still answers PING
 * and every write acknowledged before it still reads back. */
#include <criterion/criterion.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include "ddkv/ddkv.h"
#include "ddkv/wire.h"
#include "harness.h"

static struct proc_node node;
static int nwritten;

static void start(void)
{
    memset(&node, 0, sizeof node);
    nwritten = 0;
    cr_assert_eq(pn_start(&node, NULL, NULL), 0, "node did not start (see %s)", node.log);
}

static void stop(void)
{
    pn_cleanup(&node);
}

/* Write a few keys the node must keep through whatever comes next. */
static void write_witnesses(void)
{
    for (int i = 0; i < 5; i++) {
        char k[32], v[32];
        snprintf(k, sizeof k, "witness/%d", nwritten);
        snprintf(v, sizeof v, "value-%d", nwritten);
        cr_assert_eq(pn_write(node.port, k, v, strlen(v)), 0, "witness write %d failed", nwritten);
        nwritten++;
    }
}

static void assert_still_serving(void)
{
    cr_assert(pn_alive(&node), "node died (log: %s)", node.log);
    cr_assert_eq(pn_ping(node.port), 0, "node stopped answering PING");
    struct buf v = BUF_INIT;
    for (int i = 0; i < nwritten; i++) {
        char k[32], want[32];
        snprintf(k, sizeof k, "witness/%d", i);
        snprintf(want, sizeof want, "value-%d", i);
        cr_assert_eq(pn_read(node.port, k, &v), 0, "acknowledged write %s lost", k);
        cr_assert(v.len == strlen(want) && memcmp(v.data, want, v.len) == 0, "%s changed", k);
    }
    buf_free(&v);
}

/* Read one reply and check it is ERROR with the given code. */
static void expect_error(int fd, uint32_t code)
{
    struct buf hold = BUF_INIT;
    cr_assert_eq(recv_frame(fd, 10000, &hold), 0, "no reply");
    struct msg m;
    struct errbuf eb;
    cr_assert_eq(msg_decode(&m, hold.data, hold.len, &msg_limits_reply, &eb), 0, "reply undecodable");
    cr_assert_eq(m.type, DDKV_MSG_ERROR, "got %s, want ERROR", msg_type_name(m.type));
    uint64_t got;
    cr_assert_eq(msg_u64(&m, 0, &got), 0);
    cr_assert_eq(got, code, "error %s, want %s", wire_error_name((uint32_t)got), wire_error_name(code));
    const uint8_t *text;
    size_t tl;
    cr_assert_eq(msg_bytes(&m, 1, &text, &tl), 0);
    cr_assert_gt(tl, 0, "error without a message");
    msg_free(&m);
    buf_free(&hold);
}

TestSuite(badinput, .init = start, .fini = stop, .timeout = 120);

Test(badinput, a_2GiB_length_prefix_is_refused_without_buffering)
{
    write_witnesses();
    long rss_before = pn_rss_kb(&node);
    int fd = tcp_connect_port(node.port);
    cr_assert_geq(fd, 0);
    uint8_t hdr[4] = {0x80, 0, 0, 0};
    cr_assert_eq(send_all(fd, hdr, 4), 0);
    /* The body never needs to come: the length alone is enough to refuse it. */
    expect_error(fd, DDKV_WERR_TOO_LARGE);
    cr_assert(wait_closed(fd, 5000), "connection not closed after an oversized frame");
    close(fd);
    long rss_after = pn_rss_kb(&node);
    cr_assert_lt(rss_after - rss_before, 64 * 1024, "RSS grew by %ld KiB", rss_after - rss_before);
    assert_still_serving();
}

Test(badinput, random_bytes_get_an_error_and_a_close)
{
    write_witnesses();
    unsigned seed = 12345;
    for (int round = 0; round < 40; round++) {
        int fd = tcp_connect_port(node.port);
        cr_assert_geq(fd, 0);
        size_t n = 1 + (size_t)(rand_r(&seed) % 3000);
        uint8_t *junk = malloc(n + 4);
        for (size_t i = 0; i < n + 4; i++)
            junk[i] = (uint8_t)rand_r(&seed);
        /* Half the rounds: a plausible length so the junk reaches the message decoder. */
        if (round % 2 == 0) {
            junk[0] = 0;
            junk[1] = 0;
            junk[2] = (uint8_t)(n >> 8);
            junk[3] = (uint8_t)n;
        }
        send_all(fd, junk, n + 4);
        free(junk);
        cr_assert(wait_closed(fd, 10000) || round % 2 == 1,
                  "a garbled frame did not get the connection closed (round %d)", round);
        close(fd);
    }
    assert_still_serving();
}

Test(badinput, a_truncated_frame_then_disconnect_loses_nothing)
{
    write_witnesses();
    for (int i = 0; i < 20; i++) {
        int fd = tcp_connect_port(node.port);
        cr_assert_geq(fd, 0);
        struct buf req = BUF_INIT;
        req_write(&req, 1, "half/key", 8, "never acknowledged", 18);
        /* Cut the frame at a different byte each time, then vanish. */
        size_t cut = 1 + (size_t)i % (req.len - 1);
        send_all(fd, req.data, cut);
        buf_free(&req);
        close(fd);
    }
    usleep(200 * 1000);
    assert_still_serving();
    struct buf v = BUF_INIT;
    cr_assert_eq(pn_read(node.port, "half/key", &v), 1, "a write that never fully arrived was applied");
    buf_free(&v);
}

Test(badinput, an_unknown_message_type_gets_bad_request_and_the_connection_stays)
{
    write_witnesses();
    int fd = tcp_connect_port(node.port);
    cr_assert_geq(fd, 0);
    struct buf req = BUF_INIT;
    struct msg_writer w;
    msg_begin(&w, &req, 200, 1, 42, 1);
    mw_str(&w, "from the future");
    msg_end(&w);
    cr_assert_eq(send_all(fd, req.data, req.len), 0);
    expect_error(fd, DDKV_WERR_BAD_REQUEST);
    /* The same connection still works. */
    buf_reset(&req);
    req_ping(&req, 43);
    struct buf hold = BUF_INIT;
    struct msg m;
    cr_assert_eq(rpc(fd, &req, &hold, &m), 0);
    cr_assert_eq(m.type, DDKV_MSG_PONG);
    cr_assert_eq(m.request_id, 43);
    msg_free(&m);
    buf_free(&hold);
    buf_free(&req);
    close(fd);
    assert_still_serving();
}

Test(badinput, a_5MiB_value_is_refused_and_a_1MiB_value_is_kept)
{
    write_witnesses();
    size_t big = 5u << 20;
    uint8_t *val = malloc(big);
    for (size_t i = 0; i < big; i++)
        val[i] = (uint8_t)(i * 31 + 7);
    int fd = tcp_connect_port(node.port);
    cr_assert_geq(fd, 0);
    struct buf req = BUF_INIT;
    req_write(&req, 1, "big", 3, val, big);
    send_all(fd, req.data, req.len); /* may fail part-way once the node closes */
    expect_error(fd, DDKV_WERR_TOO_LARGE);
    close(fd);

    /* Just over the value limit but inside the frame limit: refused, connection kept. */
    fd = tcp_connect_port(node.port);
    buf_reset(&req);
    req_write(&req, 2, "big", 3, val, DDKV_DEFAULT_MAX_VALUE_BYTES + 1);
    cr_assert_eq(send_all(fd, req.data, req.len), 0);
    expect_error(fd, DDKV_WERR_TOO_LARGE);
    close(fd);

    /* Exactly at the limit: stored and read back byte for byte. */
    cr_assert_eq(pn_write(node.port, "big", val, DDKV_DEFAULT_MAX_VALUE_BYTES), 0);
    struct buf got = BUF_INIT;
    cr_assert_eq(pn_read(node.port, "big", &got), 0);
    cr_assert_eq(got.len, DDKV_DEFAULT_MAX_VALUE_BYTES);
    cr_assert(memcmp(got.data, val, got.len) == 0, "1 MiB value corrupted");
    buf_free(&got);
    buf_free(&req);
    free(val);
    assert_still_serving();
}

Test(badinput, a_huge_key_is_refused)
{
    write_witnesses();
    char key[5000];
    memset(key, 'k', sizeof key);
    int fd = tcp_connect_port(node.port);
    struct buf req = BUF_INIT;
    req_write(&req, 1, key, sizeof key, "v", 1);
    cr_assert_eq(send_all(fd, req.data, req.len), 0);
    expect_error(fd, DDKV_WERR_TOO_LARGE);
    buf_reset(&req);
    req_read(&req, 2, key, sizeof key);
    cr_assert_eq(send_all(fd, req.data, req.len), 0);
    expect_error(fd, DDKV_WERR_TOO_LARGE);
    buf_reset(&req);
    req_write(&req, 3, "", 0, "v", 1);
    cr_assert_eq(send_all(fd, req.data, req.len), 0);
    expect_error(fd, DDKV_WERR_BAD_REQUEST);
    buf_free(&req);
    close(fd);
    assert_still_serving();
}

Test(badinput, msgpack_with_lying_counts_is_refused_cheaply)
{
    write_witnesses();
    long rss_before = pn_rss_kb(&node);
    /* The DEPENDENCIES.md bombs: a map32 and an array32 claiming billions of
     * entries, inside a valid frame, and a message array hiding one. */
    static const uint8_t bombs[][16] = {
        {0, 0, 0, 5, 0xdf, 0x01, 0x00, 0x00, 0x00},
        {0, 0, 0, 5, 0xdd, 0xff, 0xff, 0xff, 0xff},
        {0, 0, 0, 9, 0x94, 0x02, 0x01, 0x01, 0xdd, 0x7f, 0xff, 0xff, 0xff},
    };
    static const size_t lens[] = {9, 9, 13};
    for (size_t i = 0; i < 3; i++) {
        int fd = tcp_connect_port(node.port);
        cr_assert_eq(send_all(fd, bombs[i], lens[i]), 0);
        expect_error(fd, DDKV_WERR_BAD_REQUEST);
        cr_assert(wait_closed(fd, 5000));
        close(fd);
    }
    long rss_after = pn_rss_kb(&node);
    cr_assert_lt(rss_after - rss_before, 64 * 1024, "RSS grew by %ld KiB", rss_after - rss_before);
    assert_still_serving();
}

Test(badinput, a_lamport_time_that_would_overflow_is_refused)
{
    write_witnesses();
    int fd = tcp_connect_port(node.port);
    struct buf req = BUF_INIT;
    struct msg_writer w;
    msg_begin(&w, &req, DDKV_MSG_PING, UINT64_MAX, 5, 0);
    msg_end(&w);
    cr_assert_eq(send_all(fd, req.data, req.len), 0);
    expect_error(fd, DDKV_WERR_BAD_REQUEST);
    buf_free(&req);
    close(fd);
    assert_still_serving();
}

Test(badinput, thousands_of_connections_opening_and_closing)
{
    write_witnesses();
    struct rlimit rl;
    getrlimit(RLIMIT_NOFILE, &rl);
    int wave = rl.rlim_cur > 600 ? 250 : 50;
    int fds[250];
    int opened = 0;
    for (int round = 0; round < 16; round++) {
        for (int i = 0; i < wave; i++) {
            fds[i] = tcp_connect_port(node.port);
            cr_assert_geq(fds[i], 0, "connect %d failed", opened);
            opened++;
            /* Some speak a little before leaving, some leave mid-frame. */
            if (i % 3 == 1) {
                struct buf req = BUF_INIT;
                req_ping(&req, (uint64_t)i);
                send_all(fds[i], req.data, req.len);
                buf_free(&req);
            } else if (i % 3 == 2) {
                uint8_t half[3] = {0, 0, 0};
                send_all(fds[i], half, sizeof half);
            }
        }
        for (int i = 0; i < wave; i++)
            close(fds[i]);
    }
    cr_assert_geq(opened, 800);
    usleep(300 * 1000);
    assert_still_serving();
}

Test(badinput, pipelined_requests_in_one_write_are_each_answered_once)
{
    write_witnesses();
    int fd = tcp_connect_port(node.port);
    struct buf req = BUF_INIT;
    for (uint64_t i = 1; i <= 200; i++) {
        char k[16];
        snprintf(k, sizeof k, "pipe/%03llu", (unsigned long long)i);
        if (i % 2)
            req_write(&req, i, k, strlen(k), k, strlen(k));
        else
            req_ping(&req, i);
    }
    cr_assert_eq(send_all(fd, req.data, req.len), 0);
    /* Replies are matched by request id: writes wait for their group commit,
     * so a PING sent after a write may be answered first. */
    bool seen[201] = {false};
    struct buf hold = BUF_INIT;
    for (int k = 0; k < 200; k++) {
        cr_assert_eq(recv_frame(fd, 10000, &hold), 0, "only %d of 200 replies", k);
        struct msg m;
        struct errbuf eb;
        cr_assert_eq(msg_decode(&m, hold.data, hold.len, &msg_limits_reply, &eb), 0);
        cr_assert(m.request_id >= 1 && m.request_id <= 200 && !seen[m.request_id],
                  "unexpected or duplicate reply id %llu", (unsigned long long)m.request_id);
        seen[m.request_id] = true;
        cr_assert_eq(m.type, m.request_id % 2 ? DDKV_MSG_WRITTEN_AT : DDKV_MSG_PONG);
        msg_free(&m);
    }
    buf_free(&hold);
    buf_free(&req);
    close(fd);
    for (int i = 1; i <= 200; i += 2) {
        char k[16];
        snprintf(k, sizeof k, "pipe/%03d", i);
        struct buf v = BUF_INIT;
        cr_assert_eq(pn_read(node.port, k, &v), 0, "%s lost", k);
        buf_free(&v);
    }
    assert_still_serving();
}

static void start_limited(void)
{
    memset(&node, 0, sizeof node);
    nwritten = 0;
    static const char *const extra[] = {"--max-connections", "8", NULL};
    cr_assert_eq(pn_start(&node, NULL, extra), 0, "node did not start (see %s)", node.log);
}

Test(badinput, connections_over_the_limit_are_told_why_and_the_rest_are_served,
     .init = start_limited, .fini = stop)
{
    write_witnesses();
    int held[8];
    for (int i = 0; i < 8; i++) {
        held[i] = tcp_connect_port(node.port);
        cr_assert_geq(held[i], 0);
    }
    usleep(200 * 1000);
    int extra = tcp_connect_port(node.port);
    cr_assert_geq(extra, 0, "the kernel accepts; the node answers and hangs up");
    expect_error(extra, DDKV_WERR_UNAVAILABLE);
    cr_assert(wait_closed(extra, 5000));
    close(extra);
    /* The held connections still work. */
    struct buf req = BUF_INIT, hold = BUF_INIT;
    req_ping(&req, 99);
    struct msg m;
    cr_assert_eq(rpc(held[3], &req, &hold, &m), 0);
    cr_assert_eq(m.type, DDKV_MSG_PONG);
    msg_free(&m);
    buf_free(&req);
    buf_free(&hold);
    for (int i = 0; i < 8; i++)
        close(held[i]);
    usleep(200 * 1000);
    assert_still_serving();
}

static void start_short_frame_timeout(void)
{
    memset(&node, 0, sizeof node);
    nwritten = 0;
    static const char *const extra[] = {"--frame-timeout-ms", "1500", NULL};
    cr_assert_eq(pn_start(&node, NULL, extra), 0, "node did not start (see %s)", node.log);
}

Test(badinput, a_partial_frame_must_complete_in_time_even_when_dripped,
     .init = start_short_frame_timeout, .fini = stop)
{
    write_witnesses();
    struct buf req = BUF_INIT;
    req_write(&req, 1, "slow", 4, "loris", 5);
    /* Silent after half a frame: cut by the inactivity timer. */
    int silent = tcp_connect_port(node.port);
    cr_assert_eq(send_all(silent, req.data, 6), 0);
    /* Dripping a byte every 400 ms never goes quiet for long, but the frame
     * misses its deadline: cut all the same. */
    int drip = tcp_connect_port(node.port);
    bool drip_cut = false;
    for (size_t i = 0; i < req.len - 1 && !drip_cut; i++) {
        if (send(drip, req.data + i, 1, MSG_NOSIGNAL) != 1)
            drip_cut = true;
        else
            usleep(400 * 1000);
        struct pollfd pfd = {.fd = drip, .events = POLLIN};
        if (poll(&pfd, 1, 0) == 1) {
            char b;
            drip_cut = recv(drip, &b, 1, MSG_DONTWAIT) <= 0;
        }
    }
    cr_assert(drip_cut, "a dripped frame outlived its deadline");
    cr_assert(wait_closed(silent, 3000), "a silent partial frame was not cut");
    /* An idle connection between frames is not cut. */
    int idle = tcp_connect_port(node.port);
    usleep(2500 * 1000);
    struct buf hold = BUF_INIT;
    struct msg m;
    buf_reset(&req);
    req_ping(&req, 5);
    cr_assert_eq(rpc(idle, &req, &hold, &m), 0, "an idle pooled connection was cut");
    msg_free(&m);
    buf_free(&hold);
    buf_free(&req);
    close(idle);
    close(drip);
    close(silent);
    struct buf v = BUF_INIT;
    cr_assert_eq(pn_read(node.port, "slow", &v), 1, "the incomplete write was applied");
    buf_free(&v);
    assert_still_serving();
}

/* --- limits set on the command line hold on every path --- */

enum { SMALL_KEY = 64, SMALL_VALUE = 256 };

static void start_small_limits(void)
{
    memset(&node, 0, sizeof node);
    nwritten = 0;
    static const char *const extra[] = {"--max-key-bytes", "64", "--max-value-bytes", "256", NULL};
    cr_assert_eq(pn_start(&node, NULL, extra), 0, "node did not start (see %s)", node.log);
}

static ddkv_client *limits_client(void)
{
    char ep[64];
    snprintf(ep, sizeof ep, "127.0.0.1:%d", node.port);
    struct ddkv_options o;
    ddkv_options_init(&o);
    o.endpoints = ep;
    o.timeout_ms = 10000;
    ddkv_client *c = NULL;
    char err[256];
    cr_assert_eq(ddkv_client_new(&o, &c, err, sizeof err), DDKV_OK, "%s", err);
    return c;
}

#define ASSERT_TOO_LARGE(call, what)                                                               \
    do {                                                                                           \
        ddkv_err e_ = (call);                                                                      \
        cr_assert_eq(e_, DDKV_ERR_TOO_LARGE, "%s: %s (%s), want TOO_LARGE", what, ddkv_strerror(e_), \
                     ddkv_client_errmsg(c));                                                       \
    } while (0)

Test(badinput, configured_key_and_value_limits_hold_on_every_path, .init = start_small_limits, .fini = stop)
{
    write_witnesses();
    ddkv_client *c = limits_client();
    char key[SMALL_KEY + 1], val[SMALL_VALUE + 1];
    memset(key, 'k', sizeof key);
    memcpy(key, "big/", 4);
    memset(val, 'v', sizeof val);
    struct ddkv_write_result wr;
    struct ddkv_value v;
    /* At the limits: taken. */
    cr_assert_eq(ddkv_write(c, key, SMALL_KEY, val, SMALL_VALUE, 0, &wr), DDKV_OK, "%s", ddkv_client_errmsg(c));
    /* One byte over, on each path that carries a key or a value. */
    ASSERT_TOO_LARGE(ddkv_write(c, key, SMALL_KEY + 1, "v", 1, 0, &wr), "WRITE key");
    ASSERT_TOO_LARGE(ddkv_write(c, "big/v", 5, val, SMALL_VALUE + 1, 0, &wr), "WRITE value");
    ASSERT_TOO_LARGE(ddkv_read(c, key, SMALL_KEY + 1, DDKV_CONSISTENCY_LINEARIZABLE, 0, &v), "READ key");
    ASSERT_TOO_LARGE(ddkv_delete(c, key, SMALL_KEY + 1, &wr), "DELETE key");
    struct ddkv_list l;
    ASSERT_TOO_LARGE(ddkv_list(c, key, SMALL_KEY + 1, NULL, 0, 0, &l), "LIST prefix");
    ASSERT_TOO_LARGE(ddkv_list(c, "big/", 4, key, SMALL_KEY + 1, 0, &l), "LIST start_after");
    struct ddkv_txn_result tr;
    struct ddkv_op put_long_key = {.kind = DDKV_OP_PUT, .key = key, .key_len = SMALL_KEY + 1, .value = "v", .value_len = 1};
    struct ddkv_op put_long_val = {.kind = DDKV_OP_PUT, .key = "big/t", .key_len = 5, .value = val, .value_len = SMALL_VALUE + 1};
    struct ddkv_op put_ok = {.kind = DDKV_OP_PUT, .key = "big/t", .key_len = 5, .value = "v", .value_len = 1};
    struct ddkv_compare cmp_long = {.key = key, .key_len = SMALL_KEY + 1, .field = DDKV_CMP_VERSION, .cmp = DDKV_CMP_EQ};
    ASSERT_TOO_LARGE(ddkv_txn(c, NULL, 0, &put_long_key, 1, NULL, 0, &tr), "TXN op key");
    ASSERT_TOO_LARGE(ddkv_txn(c, NULL, 0, &put_ok, 1, &put_long_val, 1, &tr), "TXN on_failure value");
    ASSERT_TOO_LARGE(ddkv_txn(c, &cmp_long, 1, &put_ok, 1, NULL, 0, &tr), "TXN compare key");
    ASSERT_TOO_LARGE(ddkv_cas(c, "big/c", 5, NULL, 0, true, val, SMALL_VALUE + 1, 0, &tr), "CAS value");
    /* A watch of a prefix over the key limit is refused, for good. */
    char ep[64];
    snprintf(ep, sizeof ep, "127.0.0.1:%d", node.port);
    struct ddkv_options o;
    ddkv_options_init(&o);
    o.endpoints = ep;
    ddkv_watch *w = NULL;
    char err[256];
    cr_assert_eq(ddkv_watch_open(&o, key, SMALL_KEY + 1, 0, &w, err, sizeof err), DDKV_OK, "%s", err);
    struct ddkv_event ev;
    cr_assert_eq(ddkv_watch_next(w, &ev, 5000), DDKV_ERR_TOO_LARGE, "WATCH prefix: %s", ddkv_watch_errmsg(w));
    ddkv_watch_close(w);
    /* A job's result goes through the same value limit. */
    char *id = NULL;
    cr_assert_eq(ddkv_job_put(c, "jobdata/1", "limits", 1, &id), DDKV_OK, "%s", ddkv_client_errmsg(c));
    struct ddkv_job_claim jc;
    cr_assert_eq(ddkv_job_claim(c, "w1", 60000, &jc), DDKV_OK, "%s", ddkv_client_errmsg(c));
    ASSERT_TOO_LARGE(ddkv_job_ack(c, jc.id, jc.token, NULL, val, SMALL_VALUE + 1), "JOB_ACK result");
    cr_assert_eq(ddkv_job_ack(c, jc.id, jc.token, NULL, val, SMALL_VALUE), DDKV_OK, "%s", ddkv_client_errmsg(c));
    char rkey[96];
    snprintf(rkey, sizeof rkey, "jobresult/%s", jc.id);
    struct ddkv_value rv;
    cr_assert_eq(ddkv_read(c, rkey, strlen(rkey), DDKV_CONSISTENCY_LINEARIZABLE, 0, &rv), DDKV_OK);
    cr_assert_eq(rv.len, SMALL_VALUE, "the result at the limit is the job's");
    ddkv_free(rv.value);
    ddkv_job_claim_free(&jc);
    ddkv_free(id);
    /* Nothing refused was written: the only key under big/ is the one taken. */
    cr_assert_eq(ddkv_list_all(c, "big/", 4, 0, &l), DDKV_OK, "%s", ddkv_client_errmsg(c));
    cr_assert_eq(l.n, 1, "%zu keys under big/, want the key at the limit", l.n);
    ddkv_list_free(&l);
    ddkv_client_free(c);
    assert_still_serving();
}
