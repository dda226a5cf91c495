/* The client core (src/lib/client/core.h) alone: no sockets, no clock. Each test
 * plays the driver: it reports connections, scripted reply frames and the
 * time, and checks what the core does next and what it sends. One test per
 * retry rule. */
#include <criterion/criterion.h>
#include <string.h>

#include "client/core.h"
#include "proto/frame.h"
#include "proto/msg.h"
#include "proto/version.h"
#include "util/err.h"

static struct cc C;
static struct cc_call K;
static uint64_t now;
static const char key[] = "k", val[] = "v";
static struct cc_field wfields[5];
static struct frame_decoder SD; /* holds the bytes of sent_msg()'s message */

static void setup3(void)
{
    char why[200];
    now = 1000;
    frame_decoder_init(&SD, 1u << 20);
    cr_assert_eq(cc_init(&C, "127.0.0.1:1,127.0.0.1:2,127.0.0.1:3", 77, 2000, 500, why, sizeof why), DDKV_OK, "%s",
                 why);
}

static void teardown(void)
{
    if (K.phase == CC_P_DONE && K.err == DDKV_OK)
        msg_free(&K.reply);
    memset(&K, 0, sizeof K);
    cc_free(&C);
    frame_decoder_free(&SD);
}

TestSuite(clientcore, .init = setup3, .fini = teardown);

/* A write as libddkv makes one: (key, value, lease, client_id, seq). */
static void write_call(bool once)
{
    memset(&K, 0, sizeof K);
    wfields[0] = (struct cc_field){.kind = CC_BIN, .p = key, .n = 1};
    wfields[1] = (struct cc_field){.kind = CC_BIN, .p = val, .n = 1};
    wfields[2] = (struct cc_field){.kind = CC_U64, .u = 0};
    wfields[3] = (struct cc_field){.kind = CC_U64, .u = once ? 0 : C.client_id};
    wfields[4] = (struct cc_field){.kind = CC_U64, .u = once ? 0 : ++C.seq};
    K.type = DDKV_MSG_WRITE;
    K.reply_type = DDKV_MSG_WRITTEN_AT;
    K.mutates = true;
    K.once = once;
    K.f = wfields;
    K.nf = 5;
}

static void read_call(void)
{
    memset(&K, 0, sizeof K);
    wfields[0] = (struct cc_field){.kind = CC_BIN, .p = key, .n = 1};
    wfields[1] = (struct cc_field){.kind = CC_U64, .u = DDKV_CONSISTENCY_LINEARIZABLE};
    wfields[2] = (struct cc_field){.kind = CC_U64, .u = 0};
    K.type = DDKV_MSG_READ;
    K.reply_type = DDKV_MSG_VALUE;
    K.f = wfields;
    K.nf = 3;
}

/* What the core asks to send, decoded (caller msg_frees before the next
 * call: the message borrows the decoder's bytes). */
static struct msg sent_msg(void)
{
    frame_decoder_free(&SD);
    frame_decoder_init(&SD, 1u << 20);
    cr_assert_eq(frame_decoder_feed(&SD, C.out.data, C.out.len), ERR_OK);
    const uint8_t *body;
    size_t len;
    cr_assert_eq(frame_decoder_next(&SD, &body, &len), ERR_OK);
    struct msg m;
    struct errbuf eb;
    cr_assert_eq(msg_decode(&m, body, len, &msg_limits_request, &eb), ERR_OK, "%s", eb.msg);
    return m;
}

static uint32_t sent_type(void)
{
    struct msg m = sent_msg();
    uint32_t t = m.type;
    msg_free(&m);
    return t;
}

static uint64_t sent_u64(uint32_t i)
{
    struct msg m = sent_msg();
    uint64_t v = 0;
    cr_assert_eq(msg_u64(&m, i, &v), ERR_OK);
    msg_free(&m);
    return v;
}

/* Hand the core a frame built in b. */
static enum cc_do feed(struct buf *b)
{
    struct frame_decoder d;
    frame_decoder_init(&d, 1u << 20);
    cr_assert_eq(frame_decoder_feed(&d, b->data, b->len), ERR_OK);
    const uint8_t *body;
    size_t len;
    cr_assert_eq(frame_decoder_next(&d, &body, &len), ERR_OK);
    enum cc_do r = cc_frame(&C, &K, body, len, now);
    frame_decoder_free(&d);
    buf_free(b);
    return r;
}

static enum cc_do reply_error(uint64_t rid, uint32_t code, const char *leader)
{
    struct buf b = BUF_INIT;
    cr_assert_eq(msg_encode_error(&b, 5, rid, code, "scripted", leader), ERR_OK);
    return feed(&b);
}

static enum cc_do reply_plain(uint64_t rid, uint32_t type, uint32_t n, const uint64_t *v)
{
    struct buf b = BUF_INIT;
    struct msg_writer w;
    msg_begin(&w, &b, type, 5, rid, n);
    for (uint32_t i = 0; i < n; i++)
        mw_u64(&w, v[i]);
    cr_assert_eq(msg_end(&w), ERR_OK);
    return feed(&b);
}

static enum cc_do welcome(void)
{
    uint64_t v[3] = {DDKV_PROTOCOL_VERSION, DDKV_RELEASE_VERSION, DDKV_RELEASE_VERSION};
    return reply_plain(K.rid, DDKV_MSG_WELCOME, 3, v);
}

static enum cc_do written(void)
{
    uint64_t v[2] = {40, 7};
    return reply_plain(K.rid, DDKV_MSG_WRITTEN_AT, 2, v);
}

/* From CC_DO_CONNECT: connect, greet, and stand at the request's send. */
static void connect_greet(enum cc_do d)
{
    cr_assert_eq(d, CC_DO_CONNECT);
    cr_assert_eq(cc_connected(&C, &K, now), CC_DO_SEND);
    cr_assert_eq(sent_type(), DDKV_MSG_HELLO);
    cr_assert_eq(cc_sent(&C, &K, now), CC_DO_RECV);
    cr_assert_eq(welcome(), CC_DO_SEND);
}

/* Sleep out a backoff (it must be bounded and non-empty). */
static enum cc_do sleep_out(enum cc_do d)
{
    cr_assert_eq(d, CC_DO_SLEEP);
    cr_assert(K.until_ms > now && K.until_ms <= now + CC_BACKOFF_MAX_MS);
    now = K.until_ms;
    return cc_woke(&C, &K, now);
}

/* The greeting: HELLO with our versions first on a connection, WELCOME's
 * versions kept, no second HELLO on the same connection; a 0.1.0 node's
 * BAD_REQUEST is taken as 0.1.0. */
Test(clientcore, greeting)
{
    read_call();
    cr_assert_eq(cc_start(&C, &K, now), CC_DO_CONNECT);
    cr_assert_eq(C.cur, 0);
    cr_assert_eq(cc_connected(&C, &K, now), CC_DO_SEND);
    struct msg h = sent_msg();
    uint64_t proto = 0, rel = 0;
    cr_assert_eq(h.type, DDKV_MSG_HELLO);
    cr_assert_eq(msg_u64(&h, 0, &proto), ERR_OK);
    cr_assert_eq(msg_u64(&h, 1, &rel), ERR_OK);
    cr_assert_eq(proto, DDKV_PROTOCOL_VERSION);
    cr_assert_eq(rel, DDKV_RELEASE_VERSION);
    msg_free(&h);
    cr_assert_eq(cc_sent(&C, &K, now), CC_DO_RECV);
    cr_assert_eq(welcome(), CC_DO_SEND);
    cr_assert_eq(C.node_version, DDKV_RELEASE_VERSION);
    cr_assert_eq(sent_type(), DDKV_MSG_READ);
    cr_assert_eq(cc_sent(&C, &K, now), CC_DO_RECV);
    uint64_t v[1] = {1};
    cr_assert_eq(reply_plain(K.rid, DDKV_MSG_VALUE, 1, v), CC_DO_DONE);
    cr_assert_eq(K.err, DDKV_OK);
    msg_free(&K.reply);
    /* The next request on the same connection goes straight out. */
    read_call();
    cr_assert_eq(cc_start(&C, &K, now), CC_DO_SEND);
    cr_assert_eq(sent_type(), DDKV_MSG_READ);
    /* A new connection to a 0.1.0 node. */
    cc_lost(&C);
    read_call();
    cr_assert_eq(cc_start(&C, &K, now), CC_DO_CONNECT);
    cr_assert_eq(cc_connected(&C, &K, now), CC_DO_SEND);
    cr_assert_eq(cc_sent(&C, &K, now), CC_DO_RECV);
    cr_assert_eq(reply_error(K.rid, DDKV_WERR_BAD_REQUEST, NULL), CC_DO_SEND);
    cr_assert_eq(C.node_version, DDKV_VERSION_0_1_0);
    cr_assert_eq(sent_type(), DDKV_MSG_READ);
}

/* Login: with credentials, AUTH [user, password] follows the greeting on
 * every new connection, before the request; a refused login is final. */
Test(clientcore, login_on_new_connection)
{
    char why[100];
    cr_assert_eq(cc_set_credentials(&C, "alice", "pw", why, sizeof why), DDKV_OK);
    write_call(false);
    connect_greet(cc_start(&C, &K, now));
    struct msg a = sent_msg();
    const uint8_t *p;
    size_t n;
    cr_assert_eq(a.type, DDKV_MSG_AUTH);
    cr_assert_eq(msg_bytes(&a, 0, &p, &n), ERR_OK);
    cr_assert(n == 5 && memcmp(p, "alice", 5) == 0, "%zu %.*s", n, (int)n, (const char *)p);
    msg_free(&a);
    cr_assert_eq(cc_sent(&C, &K, now), CC_DO_RECV);
    cr_assert_eq(reply_plain(K.rid, DDKV_MSG_AUTHED, 0, NULL), CC_DO_SEND);
    cr_assert_eq(sent_type(), DDKV_MSG_WRITE);
    /* The connection breaks before the write was wholly sent: the next
     * connection logs in again before the write goes out. */
    enum cc_do d = cc_failed(&C, &K, CC_IO_BROKEN, now);
    connect_greet(sleep_out(d));
    cr_assert_eq(C.cur, 1);
    cr_assert_eq(sent_type(), DDKV_MSG_AUTH);
    cr_assert_eq(cc_sent(&C, &K, now), CC_DO_RECV);
    /* Refused: final, not tried elsewhere. */
    cr_assert_eq(reply_error(K.rid, DDKV_WERR_PERMISSION_DENIED, NULL), CC_DO_DONE);
    cr_assert_eq(K.err, DDKV_ERR_PERMISSION_DENIED);
    cr_assert(!C.up);
}

/* NOT_LEADER naming the leader: the write goes there at once (no sleep),
 * with its session number unchanged. */
Test(clientcore, not_leader_with_hint)
{
    write_call(false);
    uint64_t seq = C.seq;
    connect_greet(cc_start(&C, &K, now));
    cr_assert_eq(cc_sent(&C, &K, now), CC_DO_RECV);
    uint64_t rid1 = K.rid;
    cr_assert_eq(reply_error(K.rid, DDKV_WERR_NOT_LEADER, "127.0.0.9:7"), CC_DO_CONNECT);
    cr_assert_eq(C.n_eps, 4);
    cr_assert_str_eq(cc_cur_text(&C), "127.0.0.9:7");
    cr_assert_eq(C.redirects_total, 1);
    connect_greet(CC_DO_CONNECT);
    cr_assert_eq(sent_type(), DDKV_MSG_WRITE);
    cr_assert_eq(sent_u64(3), C.client_id);
    cr_assert_eq(sent_u64(4), seq);
    cr_assert_neq(K.rid, rid1);
    cr_assert_eq(cc_sent(&C, &K, now), CC_DO_RECV);
    cr_assert_eq(written(), CC_DO_DONE);
    cr_assert_eq(K.err, DDKV_OK);
    cr_assert_str_eq(C.eps[C.answered].text, "127.0.0.9:7");
}

/* NOT_LEADER without a hint (an election): the next member, after a backoff. */
Test(clientcore, not_leader_without_hint)
{
    write_call(false);
    connect_greet(cc_start(&C, &K, now));
    cr_assert_eq(cc_sent(&C, &K, now), CC_DO_RECV);
    enum cc_do d = reply_error(K.rid, DDKV_WERR_NOT_LEADER, NULL);
    cr_assert_eq(d, CC_DO_SLEEP);
    cr_assert(!C.up);
    cr_assert_eq(C.cur, 1);
    cr_assert_eq(C.n_eps, 3);
    connect_greet(sleep_out(d));
    cr_assert_eq(sent_type(), DDKV_MSG_WRITE);
}

/* Two members that name each other: the first CC_FREE_REDIRECTS redirects
 * are followed at once, then each waits a backoff, and the call ends at its
 * deadline as unavailable (nothing was acted on), in a bounded number of
 * steps. */
Test(clientcore, not_leader_loop_bounded)
{
    write_call(false);
    enum cc_do d = cc_start(&C, &K, now);
    unsigned steps = 0, immediate = 0, slept = 0;
    uint64_t deadline = K.deadline_ms;
    while (d != CC_DO_DONE) {
        cr_assert(++steps < 200, "the redirect loop did not end");
        if (d == CC_DO_SLEEP) {
            slept++;
            now = K.until_ms;
            d = cc_woke(&C, &K, now);
            continue;
        }
        connect_greet(d);
        cr_assert_eq(cc_sent(&C, &K, now), CC_DO_RECV);
        now += 1;
        const char *other = C.cur == 0 ? "127.0.0.1:2" : "127.0.0.1:1";
        d = reply_error(K.rid, DDKV_WERR_NOT_LEADER, other);
        if (d == CC_DO_CONNECT)
            immediate++;
    }
    cr_assert_eq(immediate, CC_FREE_REDIRECTS);
    cr_assert(slept > 0);
    cr_assert_eq(K.err, DDKV_ERR_UNAVAILABLE, "%s", C.errmsg);
    cr_assert_geq(now, deadline);
}

/* The leader dies mid-request (after the write left): the write is in doubt
 * and resent elsewhere under the same session; the next member names the new
 * leader, which answers. */
Test(clientcore, leader_change_mid_request)
{
    write_call(false);
    uint64_t seq = C.seq;
    connect_greet(cc_start(&C, &K, now));
    cr_assert_eq(cc_sent(&C, &K, now), CC_DO_RECV);
    enum cc_do d = cc_failed(&C, &K, CC_IO_BROKEN, now);
    cr_assert(K.in_doubt);
    connect_greet(sleep_out(d));
    cr_assert_eq(C.cur, 1);
    cr_assert_eq(sent_u64(4), seq);
    cr_assert_eq(cc_sent(&C, &K, now), CC_DO_RECV);
    d = reply_error(K.rid, DDKV_WERR_NOT_LEADER, "127.0.0.1:3");
    connect_greet(d);
    cr_assert_eq(C.cur, 2);
    cr_assert_eq(sent_u64(3), C.client_id);
    cr_assert_eq(sent_u64(4), seq);
    cr_assert_eq(cc_sent(&C, &K, now), CC_DO_RECV);
    cr_assert_eq(written(), CC_DO_DONE);
    cr_assert_eq(K.err, DDKV_OK);
}

/* A broken connection after a session write left: resent with the same
 * (client_id, seq) and a new request id, so the cluster applies it once. */
Test(clientcore, resend_after_broken_keeps_session)
{
    write_call(false);
    connect_greet(cc_start(&C, &K, now));
    uint64_t id = sent_u64(3), seq = sent_u64(4), rid = K.rid;
    cr_assert_eq(id, C.client_id);
    cr_assert_eq(cc_sent(&C, &K, now), CC_DO_RECV);
    connect_greet(sleep_out(cc_failed(&C, &K, CC_IO_BROKEN, now)));
    cr_assert_eq(sent_type(), DDKV_MSG_WRITE);
    cr_assert_eq(sent_u64(3), id);
    cr_assert_eq(sent_u64(4), seq);
    cr_assert_neq(K.rid, rid);
    /* A late answer to the first attempt's id is not this attempt's. */
    cr_assert_eq(cc_sent(&C, &K, now), CC_DO_RECV);
    uint64_t v[2] = {1, 1};
    cr_assert_eq(reply_plain(rid, DDKV_MSG_WRITTEN_AT, 2, v), CC_DO_RECV);
    cr_assert_eq(written(), CC_DO_DONE);
    cr_assert_eq(K.err, DDKV_OK);
}

/* A write without a session whose connection broke after it left: never
 * resent (it could apply twice); UNKNOWN_OUTCOME at once. One that was not
 * wholly sent is safe to send again. */
Test(clientcore, sessionless_write_never_resent)
{
    write_call(true);
    connect_greet(cc_start(&C, &K, now));
    enum cc_do d = cc_failed(&C, &K, CC_IO_BROKEN, now); /* before cc_sent: not wholly sent */
    connect_greet(sleep_out(d));
    cr_assert_eq(sent_type(), DDKV_MSG_WRITE);
    cr_assert_eq(cc_sent(&C, &K, now), CC_DO_RECV);
    cr_assert_eq(cc_failed(&C, &K, CC_IO_BROKEN, now), CC_DO_DONE);
    cr_assert_eq(K.err, DDKV_ERR_UNKNOWN_OUTCOME);
}

/* A write whose reply never came by the call's deadline (sent with less than
 * an attempt left): UNKNOWN_OUTCOME, not retried. The node's TIMEOUT answer:
 * a session write is retried elsewhere under its session, a write without one
 * is not resent (the claim expires); a write still in doubt at the deadline
 * is UNKNOWN_OUTCOME, never "unavailable". */
Test(clientcore, write_timeout_unknown_outcome)
{
    write_call(false);
    connect_greet(cc_start(&C, &K, now));
    now = K.deadline_ms - 100;
    cr_assert_eq(cc_sent(&C, &K, now), CC_DO_RECV);
    cr_assert_eq(K.until_ms, K.deadline_ms);
    now = K.until_ms;
    cr_assert_eq(cc_failed(&C, &K, CC_IO_TIMEOUT, now), CC_DO_DONE);
    cr_assert_eq(K.err, DDKV_ERR_UNKNOWN_OUTCOME);

    write_call(false);
    uint64_t seq = C.seq;
    connect_greet(cc_start(&C, &K, now));
    cr_assert_eq(cc_sent(&C, &K, now), CC_DO_RECV);
    enum cc_do d = reply_error(K.rid, DDKV_WERR_TIMEOUT, NULL);
    cr_assert_eq(d, CC_DO_SLEEP);
    cr_assert(K.in_doubt);
    connect_greet(sleep_out(d));
    cr_assert_eq(sent_u64(4), seq);
    /* Every member is down until the deadline. */
    cr_assert_eq(cc_failed(&C, &K, CC_IO_BROKEN, now), CC_DO_SLEEP);
    d = CC_DO_SLEEP;
    for (int i = 0; d != CC_DO_DONE; i++) {
        cr_assert(i < 500);
        if (d == CC_DO_SLEEP) {
            now = K.until_ms;
            d = cc_woke(&C, &K, now);
        } else {
            cr_assert_eq(d, CC_DO_CONNECT);
            now += 50;
            d = cc_connect_failed(&C, &K, now);
        }
    }
    cr_assert_eq(K.err, DDKV_ERR_UNKNOWN_OUTCOME, "%s", C.errmsg);

    /* Without a session: not resent; the node's TIMEOUT is the answer. */
    write_call(true);
    connect_greet(cc_start(&C, &K, now));
    cr_assert_eq(cc_sent(&C, &K, now), CC_DO_RECV);
    cr_assert_eq(reply_error(K.rid, DDKV_WERR_TIMEOUT, NULL), CC_DO_DONE);
    cr_assert(!K.in_doubt);
    cr_assert_eq(K.err, DDKV_ERR_TIMEOUT, "%d %s", K.err, C.errmsg);
}

/* A read changes nothing: one whose connection broke after it left is asked
 * again elsewhere; one with no reply by the call's deadline is TIMEOUT (not
 * UNKNOWN_OUTCOME). */
Test(clientcore, read_retried_elsewhere)
{
    read_call();
    connect_greet(cc_start(&C, &K, now));
    cr_assert_eq(cc_sent(&C, &K, now), CC_DO_RECV);
    enum cc_do d = cc_failed(&C, &K, CC_IO_BROKEN, now);
    connect_greet(sleep_out(d));
    cr_assert_eq(C.cur, 1);
    cr_assert_eq(sent_type(), DDKV_MSG_READ);
    now = K.deadline_ms - 100;
    cr_assert_eq(cc_sent(&C, &K, now), CC_DO_RECV);
    now = K.until_ms;
    cr_assert_eq(cc_failed(&C, &K, CC_IO_TIMEOUT, now), CC_DO_DONE);
    cr_assert_eq(K.err, DDKV_ERR_TIMEOUT);
}

/* UNAVAILABLE (no quorum): not acted on, so another member after a backoff;
 * connecting tries every member once before a backoff. */
Test(clientcore, unavailable_and_connect_rotation)
{
    write_call(false);
    enum cc_do d = cc_start(&C, &K, now);
    cr_assert_eq(cc_connect_failed(&C, &K, now), CC_DO_CONNECT);
    cr_assert_eq(C.cur, 1);
    cr_assert_eq(cc_connect_failed(&C, &K, now), CC_DO_CONNECT);
    cr_assert_eq(C.cur, 2);
    d = cc_connect_failed(&C, &K, now);
    cr_assert_eq(C.cur, 0);
    connect_greet(sleep_out(d));
    cr_assert_eq(cc_sent(&C, &K, now), CC_DO_RECV);
    d = reply_error(K.rid, DDKV_WERR_UNAVAILABLE, NULL);
    cr_assert_eq(C.cur, 1);
    cr_assert(!K.in_doubt);
    connect_greet(sleep_out(d));
    cr_assert_eq(cc_sent(&C, &K, now), CC_DO_RECV);
    cr_assert_eq(written(), CC_DO_DONE);
    cr_assert_eq(K.err, DDKV_OK);
}

/* UNAUTHENTICATED with credentials: log in again once and resend; a second
 * one is PERMISSION_DENIED. */
Test(clientcore, relogin_once)
{
    char why[100];
    cr_assert_eq(cc_set_credentials(&C, "bob", "x", why, sizeof why), DDKV_OK);
    read_call();
    connect_greet(cc_start(&C, &K, now));
    cr_assert_eq(cc_sent(&C, &K, now), CC_DO_RECV);
    cr_assert_eq(reply_plain(K.rid, DDKV_MSG_AUTHED, 0, NULL), CC_DO_SEND);
    cr_assert_eq(cc_sent(&C, &K, now), CC_DO_RECV);
    cr_assert_eq(reply_error(K.rid, DDKV_WERR_UNAUTHENTICATED, NULL), CC_DO_SEND);
    cr_assert_eq(sent_type(), DDKV_MSG_AUTH);
    cr_assert_eq(cc_sent(&C, &K, now), CC_DO_RECV);
    cr_assert_eq(reply_plain(K.rid, DDKV_MSG_AUTHED, 0, NULL), CC_DO_SEND);
    cr_assert_eq(sent_type(), DDKV_MSG_READ);
    cr_assert_eq(cc_sent(&C, &K, now), CC_DO_RECV);
    cr_assert_eq(reply_error(K.rid, DDKV_WERR_UNAUTHENTICATED, NULL), CC_DO_DONE);
    cr_assert_eq(K.err, DDKV_ERR_PERMISSION_DENIED);
}

/* --- the attempt's deadline: a member that goes silent after a frame left
 * (its machine died without a reset) is given up on after attempt_ms, as if
 * the connection had broken. setup3: timeout 2000 ms, attempt 1500 ms. --- */

/* The driver's side of an attempt that timed out: until_ms passed. */
static enum cc_do attempt_times_out(void)
{
    cr_assert_lt(K.until_ms, K.deadline_ms, "the attempt ends before the call");
    now = K.until_ms;
    cc_no_reply(&C, &K);
    return cc_failed(&C, &K, CC_IO_TIMEOUT, now);
}

/* A session write sent to a member that never answers: after attempt_ms the
 * connection is given up (the driver closes it), and the write is resent to
 * the next member with the same (client_id, seq) and a new request id; that
 * member's answer is the call's. */
Test(clientcore, attempt_timeout_resends_write_elsewhere)
{
    cr_assert_eq(C.attempt_ms, CC_DEFAULT_ATTEMPT_MS);
    write_call(false);
    uint64_t seq = C.seq;
    connect_greet(cc_start(&C, &K, now));
    cr_assert_eq(sent_u64(3), C.client_id);
    cr_assert_eq(sent_u64(4), seq);
    uint64_t rid1 = K.rid;
    cr_assert_eq(cc_sent(&C, &K, now), CC_DO_RECV);
    cr_assert_eq(K.until_ms, now + CC_DEFAULT_ATTEMPT_MS, "the reply is awaited one attempt, not the whole call");
    enum cc_do d = attempt_times_out();
    cr_assert(strstr(C.errmsg, "no reply from 127.0.0.1:1 within 1500 ms"), "%s", C.errmsg);
    cr_assert_eq(d, CC_DO_SLEEP, "%s", C.errmsg);
    cr_assert(K.in_doubt);
    cr_assert(!C.up, "the silent connection is given up");
    cr_assert_eq(C.cur, 1);
    connect_greet(sleep_out(d));
    cr_assert_eq(sent_type(), DDKV_MSG_WRITE);
    cr_assert_eq(sent_u64(3), C.client_id, "the same session");
    cr_assert_eq(sent_u64(4), seq, "the same sequence number");
    cr_assert_neq(K.rid, rid1);
    cr_assert_eq(cc_sent(&C, &K, now), CC_DO_RECV);
    cr_assert_leq(K.until_ms, K.deadline_ms);
    cr_assert_eq(written(), CC_DO_DONE);
    cr_assert_eq(K.err, DDKV_OK, "%s", C.errmsg);
    cr_assert_eq(C.answered, 1);
}

/* A read whose attempt timed out is asked again at the next member. */
Test(clientcore, attempt_timeout_retries_read_elsewhere)
{
    read_call();
    connect_greet(cc_start(&C, &K, now));
    cr_assert_eq(cc_sent(&C, &K, now), CC_DO_RECV);
    enum cc_do d = attempt_times_out();
    cr_assert_eq(d, CC_DO_SLEEP, "%d %s", K.err, C.errmsg);
    cr_assert(!C.up);
    cr_assert(!K.in_doubt);
    connect_greet(sleep_out(d));
    cr_assert_eq(C.cur, 1);
    cr_assert_eq(sent_type(), DDKV_MSG_READ);
    cr_assert_eq(cc_sent(&C, &K, now), CC_DO_RECV);
    uint64_t v[1] = {1};
    cr_assert_eq(reply_plain(K.rid, DDKV_MSG_VALUE, 1, v), CC_DO_DONE);
    cr_assert_eq(K.err, DDKV_OK);
}

/* A write without a session is never resent once it left: when its attempt
 * times out it is UNKNOWN_OUTCOME at once, before the call's deadline; the
 * next call starts at another member. */
Test(clientcore, attempt_timeout_once_write_unknown_outcome)
{
    write_call(true);
    connect_greet(cc_start(&C, &K, now));
    cr_assert_eq(cc_sent(&C, &K, now), CC_DO_RECV);
    cr_assert_eq(attempt_times_out(), CC_DO_DONE);
    cr_assert_eq(K.err, DDKV_ERR_UNKNOWN_OUTCOME);
    cr_assert_lt(now, K.deadline_ms);
    cr_assert(strstr(C.errmsg, "outcome is unknown") && strstr(C.errmsg, "no reply from 127.0.0.1:1"), "%s",
              C.errmsg);
    cr_assert(!C.up);
    read_call();
    cr_assert_eq(cc_start(&C, &K, now), CC_DO_CONNECT);
    cr_assert_eq(C.cur, 1);
}

/* The attempt's deadline is never past the call's: not when less than an
 * attempt is left, not for a slow call (the whole deadline), not with
 * attempt_ms 0 (none of its own); and at the call's deadline a session write
 * still unanswered is UNKNOWN_OUTCOME, not resent. Greetings are bounded by
 * the attempt too. */
Test(clientcore, attempt_never_past_call_deadline)
{
    write_call(false);
    cr_assert_eq(cc_start(&C, &K, now), CC_DO_CONNECT);
    cr_assert_eq(cc_connected(&C, &K, now), CC_DO_SEND);
    cr_assert_eq(cc_sent(&C, &K, now), CC_DO_RECV); /* HELLO */
    cr_assert_eq(K.until_ms, now + CC_DEFAULT_ATTEMPT_MS);
    cr_assert_eq(welcome(), CC_DO_SEND);
    now = K.deadline_ms - 300;
    cr_assert_eq(cc_sent(&C, &K, now), CC_DO_RECV);
    cr_assert_eq(K.until_ms, K.deadline_ms, "less than an attempt left: the call's deadline");
    now = K.until_ms;
    cr_assert_eq(cc_failed(&C, &K, CC_IO_TIMEOUT, now), CC_DO_DONE);
    cr_assert_eq(K.err, DDKV_ERR_UNKNOWN_OUTCOME);

    /* A slow call (SNAPSHOT_SAVE) waits for its reply until the deadline. */
    memset(&K, 0, sizeof K);
    K.type = DDKV_MSG_SNAPSHOT_SAVE;
    K.reply_type = DDKV_MSG_SNAPSHOT_META;
    K.slow = true;
    connect_greet(cc_start(&C, &K, now));
    cr_assert_eq(cc_sent(&C, &K, now), CC_DO_RECV);
    cr_assert_eq(K.until_ms, K.deadline_ms);

    /* attempt_ms 0: no deadline of its own. */
    C.attempt_ms = 0;
    read_call();
    cr_assert_eq(cc_start(&C, &K, now), CC_DO_SEND);
    cr_assert_eq(cc_sent(&C, &K, now), CC_DO_RECV);
    cr_assert_eq(K.until_ms, K.deadline_ms);

    /* An attempt longer than the whole call: the call's deadline. */
    C.attempt_ms = 10 * C.timeout_ms;
    read_call();
    cr_assert_eq(cc_start(&C, &K, now), CC_DO_SEND);
    cr_assert_eq(cc_sent(&C, &K, now), CC_DO_RECV);
    cr_assert_eq(K.until_ms, K.deadline_ms);
}

/* The reply to the abandoned attempt, arriving late, is not the answer of
 * the resent request (another request id): dropped, whether it says
 * WRITTEN_AT or an error. The resent request's own answer is the call's. */
Test(clientcore, late_reply_to_abandoned_attempt_ignored)
{
    write_call(false);
    connect_greet(cc_start(&C, &K, now));
    cr_assert_eq(cc_sent(&C, &K, now), CC_DO_RECV);
    uint64_t rid1 = K.rid;
    enum cc_do d = attempt_times_out();
    cr_assert(!C.up, "the driver closes the connection the late reply would come on");
    connect_greet(sleep_out(d));
    cr_assert_eq(cc_sent(&C, &K, now), CC_DO_RECV);
    cr_assert_neq(K.rid, rid1);
    uint64_t late[2] = {99, 99};
    cr_assert_eq(reply_plain(rid1, DDKV_MSG_WRITTEN_AT, 2, late), CC_DO_RECV);
    cr_assert_eq(reply_error(rid1, DDKV_WERR_NOT_LEADER, "127.0.0.1:3"), CC_DO_RECV);
    cr_assert_eq(C.cur, 1);
    cr_assert_eq(K.phase, CC_P_REQUEST);
    uint64_t v[2] = {40, 7};
    cr_assert_eq(reply_plain(K.rid, DDKV_MSG_WRITTEN_AT, 2, v), CC_DO_DONE);
    cr_assert_eq(K.err, DDKV_OK);
    uint64_t rev = 0;
    cr_assert_eq(msg_u64(&K.reply, 1, &rev), ERR_OK);
    cr_assert_eq(rev, 7, "the resent request's answer, not the late one");
}

/* A call that ends waiting on a member (the call's deadline passed with no
 * reply) leaves the client on the next member: the next call does not start
 * at the one that went silent. Likewise a send that did not finish, which
 * for a write still in doubt from an earlier attempt is UNKNOWN_OUTCOME. */
Test(clientcore, next_call_after_timeout_starts_elsewhere)
{
    read_call();
    connect_greet(cc_start(&C, &K, now));
    now = K.deadline_ms - 10;
    cr_assert_eq(cc_sent(&C, &K, now), CC_DO_RECV);
    now = K.until_ms;
    cc_no_reply(&C, &K);
    cr_assert_eq(cc_failed(&C, &K, CC_IO_TIMEOUT, now), CC_DO_DONE);
    cr_assert_eq(K.err, DDKV_ERR_TIMEOUT);
    cr_assert(!C.up);
    cr_assert_eq(C.cur, 1);
    write_call(false);
    cr_assert_eq(cc_start(&C, &K, now), CC_DO_CONNECT);
    cr_assert_eq(C.cur, 1, "the next call goes to another member first");
    connect_greet(CC_DO_CONNECT);
    cr_assert_eq(cc_sent(&C, &K, now), CC_DO_RECV);
    enum cc_do d = attempt_times_out();
    cr_assert(K.in_doubt);
    connect_greet(sleep_out(d));
    cr_assert_eq(C.cur, 2);
    /* The resend still unfinished at the deadline. */
    now = K.deadline_ms;
    cc_fail(&C, DDKV_ERR_TIMEOUT, "timed out sending to %s", cc_cur_text(&C));
    cr_assert_eq(cc_failed(&C, &K, CC_IO_TIMEOUT, now), CC_DO_DONE);
    cr_assert_eq(K.err, DDKV_ERR_UNKNOWN_OUTCOME, "%s", C.errmsg);
    cr_assert_eq(C.cur, 0);
    read_call();
    cr_assert_eq(cc_start(&C, &K, now), CC_DO_CONNECT);
    cr_assert_eq(C.cur, 0);
}

/* The member given up on for silence is shunned for CC_SHUN_MS: the others,
 * which have not elected a new leader yet, still name it, and following them
 * back would cost a connect timeout to a machine that answers nothing. The
 * hint is not followed and the rotation passes it by; after the shun (or a
 * reply from it) it is a member like the others again. */
Test(clientcore, silent_member_is_not_followed_back)
{
    write_call(false);
    uint64_t seq = C.seq;
    connect_greet(cc_start(&C, &K, now));
    cr_assert_eq(cc_sent(&C, &K, now), CC_DO_RECV);
    uint64_t t_silent = K.until_ms;
    enum cc_do d = attempt_times_out();
    cr_assert_eq(C.cur, 1);
    connect_greet(sleep_out(d));
    cr_assert_eq(cc_sent(&C, &K, now), CC_DO_RECV);
    /* :2 has not seen the new leader yet: it names the silent one. */
    d = reply_error(K.rid, DDKV_WERR_NOT_LEADER, "127.0.0.1:1");
    cr_assert_eq(d, CC_DO_SLEEP, "the hint back to the silent member is not followed");
    cr_assert_eq(C.cur, 2, "on to the next member instead");
    cr_assert_eq(C.redirects_total, 0);
    connect_greet(sleep_out(d));
    cr_assert_eq(cc_sent(&C, &K, now), CC_DO_RECV);
    /* :3 cannot serve either: the rotation passes :1 by, back to :2. */
    d = reply_error(K.rid, DDKV_WERR_UNAVAILABLE, NULL);
    cr_assert_eq(C.cur, 1, "the rotation skips the shunned member");
    connect_greet(sleep_out(d));
    cr_assert_eq(sent_u64(4), seq, "still the same write");
    cr_assert_eq(cc_sent(&C, &K, now), CC_DO_RECV);
    cr_assert_eq(written(), CC_DO_DONE);
    cr_assert_eq(K.err, DDKV_OK, "%s", C.errmsg);
    msg_free(&K.reply);

    /* Once the shun is over a hint naming :1 is followed again. */
    now = t_silent + CC_SHUN_MS;
    read_call();
    cr_assert_eq(cc_start(&C, &K, now), CC_DO_SEND, "still connected to :2");
    cr_assert_eq(cc_sent(&C, &K, now), CC_DO_RECV);
    cr_assert_eq(reply_error(K.rid, DDKV_WERR_NOT_LEADER, "127.0.0.1:1"), CC_DO_CONNECT);
    cr_assert_eq(C.cur, 0);
    cr_assert_eq(C.redirects_total, 1);
}

/* With a single endpoint there is nowhere else to go: the silent member is
 * tried again, and its reply ends the shun (it was slow, not gone). */
Test(clientcore, single_endpoint_is_never_shunned_away)
{
    cc_free(&C);
    char why[200];
    cr_assert_eq(cc_init(&C, "127.0.0.1:1", 77, 2000, 500, why, sizeof why), DDKV_OK, "%s", why);
    read_call();
    connect_greet(cc_start(&C, &K, now));
    cr_assert_eq(cc_sent(&C, &K, now), CC_DO_RECV);
    enum cc_do d = attempt_times_out();
    cr_assert_eq(C.shunned, 0);
    cr_assert_eq(C.cur, 0, "one endpoint: nowhere else to go");
    connect_greet(sleep_out(d));
    cr_assert_eq(C.cur, 0);
    cr_assert_eq(cc_sent(&C, &K, now), CC_DO_RECV);
    cr_assert_eq(reply_error(K.rid, DDKV_WERR_NOT_FOUND, NULL), CC_DO_DONE);
    cr_assert_eq(K.err, DDKV_ERR_NOT_FOUND);
    cr_assert_eq(C.shunned, -1, "its answer ends the shun");
}
