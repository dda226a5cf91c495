/* libddkv's transactions, leases and watch against scripted fake members on
 * 127.0.0.1: the TXN request carries every compare and operation as given and
 * keeps its (client_id, seq) across a retry; lease requests have their wire
 * shapes; a watch cut off in the middle of a revision resumes on another
 * member from that revision and delivers every event exactly once, in order;
 * COMPACTED, timeouts and garbled frames come out as documented. */
#include <criterion/criterion.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "ddkv/ddkv.h"
#include "harness.h"
#include "proto/frame.h"
#include "proto/msg.h"
#include "util/clock.h"

#define FAKE_MAX_FRAMES 32

struct fake;
/* Called for each request frame on connection number conn (from 1). Returns
 * true to close the connection. */
typedef bool (*fake_fn)(struct fake *f, int fd, int conn, const struct msg *m);

struct fake {
    int lfd, port;
    pthread_t th;
    volatile int stop;
    fake_fn on_msg;
    /* Set by the test; the fake thread then calls on_push once on the open connection. */
    volatile int push;
    void (*on_push)(struct fake *f, int fd);
    uint64_t watch_rid; /* request id of the last WATCH received */
    char text[128];     /* a message or address for scripts that need one */
    pthread_mutex_t mu;
    int conns;
    /* Every request received: body bytes and connection number. */
    struct buf frames[FAKE_MAX_FRAMES];
    int frame_conn[FAKE_MAX_FRAMES];
    int nframes;
};

static void fake_serve(struct fake *f, int fd, int conn)
{
    struct frame_decoder dec;
    frame_decoder_init(&dec, 1u << 20);
    bool done = false;
    while (!f->stop && !done) {
        if (f->push && f->on_push) {
            f->push = 0;
            f->on_push(f, fd);
        }
        struct pollfd p = {.fd = fd, .events = POLLIN};
        if (poll(&p, 1, 20) <= 0)
            continue;
        uint8_t chunk[4096];
        ssize_t n = recv(fd, chunk, sizeof chunk, 0);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0 || frame_decoder_feed(&dec, chunk, (size_t)n) != ERR_OK)
            break;
        const uint8_t *body;
        size_t len;
        while (!done && frame_decoder_next(&dec, &body, &len) == ERR_OK) {
            struct msg m;
            struct errbuf eb;
            if (msg_decode(&m, body, len, &msg_limits_request, &eb) != ERR_OK) {
                done = true;
                break;
            }
            if (m.type == DDKV_MSG_HELLO) {
                /* As a 0.2.0 node: WELCOME, not recorded among the requests. */
                struct buf out = BUF_INIT;
                struct msg_writer w;
                msg_begin(&w, &out, DDKV_MSG_WELCOME, 5, m.request_id, 4);
                mw_u64(&w, DDKV_PROTOCOL_VERSION);
                mw_u64(&w, DDKV_VERSION_0_2_0);
                mw_u64(&w, DDKV_VERSION_0_2_0);
                mw_str(&w, "fake");
                msg_end(&w);
                done = send_all(fd, out.data, out.len) != 0;
                buf_free(&out);
                msg_free(&m);
                continue;
            }
            pthread_mutex_lock(&f->mu);
            if (f->nframes < FAKE_MAX_FRAMES) {
                buf_append(&f->frames[f->nframes], body, len);
                f->frame_conn[f->nframes++] = conn;
            }
            pthread_mutex_unlock(&f->mu);
            if (m.type == DDKV_MSG_WATCH)
                f->watch_rid = m.request_id;
            done = f->on_msg(f, fd, conn, &m);
            msg_free(&m);
        }
    }
    frame_decoder_free(&dec);
}

static void *fake_main(void *arg)
{
    struct fake *f = arg;
    while (!f->stop) {
        struct sockaddr_in a;
        socklen_t al = sizeof a;
        int fd = accept(f->lfd, (struct sockaddr *)&a, &al);
        if (fd < 0)
            continue;
        pthread_mutex_lock(&f->mu);
        int conn = ++f->conns;
        pthread_mutex_unlock(&f->mu);
        fake_serve(f, fd, conn);
        close(fd);
    }
    return NULL;
}

static void fake_start(struct fake *f, fake_fn fn)
{
    memset(f, 0, sizeof *f);
    f->on_msg = fn;
    pthread_mutex_init(&f->mu, NULL);
    f->lfd = listen_loopback(&f->port, 50); /* accept wakes to see stop */
    cr_assert_geq(f->lfd, 0);
    cr_assert_eq(pthread_create(&f->th, NULL, fake_main, f), 0);
}

static void fake_stop(struct fake *f)
{
    f->stop = 1;
    pthread_join(f->th, NULL);
    close(f->lfd);
    for (int i = 0; i < FAKE_MAX_FRAMES; i++)
        buf_free(&f->frames[i]);
    pthread_mutex_destroy(&f->mu);
}

/* The i-th request of the given type the fake received (decoded into m, the
 * caller msg_frees), or false. */
static bool fake_request(struct fake *f, uint32_t type, int i, struct msg *m, int *conn)
{
    bool found = false;
    pthread_mutex_lock(&f->mu);
    for (int k = 0; k < f->nframes && !found; k++) {
        struct errbuf eb;
        if (msg_decode(m, f->frames[k].data, f->frames[k].len, &msg_limits_request, &eb) != ERR_OK)
            continue;
        if (m->type == type && i-- == 0) {
            found = true;
            if (conn)
                *conn = f->frame_conn[k];
        } else {
            msg_free(m);
        }
    }
    pthread_mutex_unlock(&f->mu);
    return found;
}

static int fake_count(struct fake *f, uint32_t type)
{
    int n = 0;
    struct msg m;
    while (fake_request(f, type, n, &m, NULL)) {
        msg_free(&m);
        n++;
    }
    return n;
}

/* Wait until the fake has received n requests of the type (it reads them on
 * its own thread, maybe after the client call returned). */
static bool fake_wait(struct fake *f, uint32_t type, int n)
{
    for (int i = 0; i < 200; i++) {
        if (fake_count(f, type) >= n)
            return true;
        poll(NULL, 0, 10);
    }
    return false;
}

static void send_buf(int fd, struct buf *b)
{
    send_all(fd, b->data, b->len);
    buf_free(b);
}

static void fake_error(int fd, uint64_t rid, uint32_t code, const char *text)
{
    struct buf b = BUF_INIT;
    msg_encode_error(&b, 3, rid, code, text, NULL);
    send_buf(fd, &b);
}

static void fake_event(int fd, uint64_t rid, uint32_t kind, const char *key, const char *val,
                       uint64_t mod_rev, uint64_t lamport)
{
    struct buf b = BUF_INIT;
    struct msg_writer w;
    msg_begin(&w, &b, DDKV_MSG_EVENT, 3, rid, 7);
    mw_u64(&w, kind);
    mw_bin(&w, key, strlen(key));
    mw_bin(&w, val, strlen(val));
    mw_u64(&w, 2);       /* create_rev */
    mw_u64(&w, mod_rev);
    mw_u64(&w, kind == DDKV_OP_PUT ? 1 : 0);
    mw_u64(&w, lamport);
    msg_end(&w);
    send_buf(fd, &b);
}

static ddkv_client *client(const char *eps, uint32_t timeout_ms)
{
    struct ddkv_options o;
    ddkv_options_init(&o);
    o.endpoints = eps;
    o.timeout_ms = timeout_ms;
    ddkv_client *c;
    char err[128];
    cr_assert_eq(ddkv_client_new(&o, &c, err, sizeof err), DDKV_OK, "%s", err);
    return c;
}

static bool bytes_eq(const msgpack_object *o, const void *p, size_t n)
{
    const uint8_t *q;
    size_t qn;
    return o->type == MSGPACK_OBJECT_BIN && mpo_bytes(o, &q, &qn) == ERR_OK && qn == n &&
           (n == 0 || memcmp(q, p, n) == 0);
}

static uint64_t u64_of(const msgpack_object *o)
{
    uint64_t v = UINT64_MAX;
    cr_assert_eq(mpo_u64(o, &v), ERR_OK, "expected an unsigned integer");
    return v;
}

/* --- transactions --- */

static bool txn_first_drop_then_answer(struct fake *f, int fd, int conn, const struct msg *m)
{
    if (m->type != DDKV_MSG_TXN)
        return false;
    if (conn == 1 && strcmp(f->text, "answer") != 0)
        return true; /* read it, then die without answering */
    struct buf b = BUF_INIT;
    struct msg_writer w;
    msg_begin(&w, &b, DDKV_MSG_TXN_RESULT, 50, m->request_id, 3);
    mw_bool(&w, true);
    mw_u64(&w, 42);
    mw_u64(&w, 9);
    msg_end(&w);
    send_buf(fd, &b);
    return false;
}

static void check_txn_fields(const struct msg *m, const struct ddkv_compare *cmps, size_t ncmp,
                             const struct ddkv_op *ops[2], const size_t nops[2])
{
    cr_assert_eq(m->nf, 5, "TXN has [compares, on_success, on_failure, client_id, seq]");
    const msgpack_object *co = &m->f[0];
    cr_assert_eq(co->type, MSGPACK_OBJECT_ARRAY);
    cr_assert_eq(co->via.array.size, ncmp);
    for (size_t i = 0; i < ncmp; i++) {
        const msgpack_object *e = &co->via.array.ptr[i];
        cr_assert_eq(e->type, MSGPACK_OBJECT_ARRAY);
        cr_assert_eq(e->via.array.size, 4, "a compare is [key, field, cmp, operand]");
        cr_assert(bytes_eq(&e->via.array.ptr[0], cmps[i].key, cmps[i].key_len), "compare %zu key", i);
        cr_assert_eq(u64_of(&e->via.array.ptr[1]), (uint64_t)cmps[i].field, "compare %zu field", i);
        cr_assert_eq(u64_of(&e->via.array.ptr[2]), (uint64_t)cmps[i].cmp, "compare %zu cmp", i);
        if (cmps[i].field == DDKV_CMP_VALUE)
            cr_assert(bytes_eq(&e->via.array.ptr[3], cmps[i].value, cmps[i].value_len),
                      "compare %zu operand is the value's bytes", i);
        else
            cr_assert_eq(u64_of(&e->via.array.ptr[3]), cmps[i].number, "compare %zu operand", i);
    }
    for (int l = 0; l < 2; l++) {
        const msgpack_object *lo = &m->f[1 + l];
        cr_assert_eq(lo->type, MSGPACK_OBJECT_ARRAY);
        cr_assert_eq(lo->via.array.size, nops[l]);
        for (size_t i = 0; i < nops[l]; i++) {
            const struct ddkv_op *op = &ops[l][i];
            const msgpack_object *e = &lo->via.array.ptr[i];
            cr_assert_eq(e->type, MSGPACK_OBJECT_ARRAY);
            cr_assert_eq(e->via.array.size, 4, "an op is [kind, key, value, lease_id]");
            cr_assert_eq(u64_of(&e->via.array.ptr[0]), (uint64_t)op->kind);
            cr_assert(bytes_eq(&e->via.array.ptr[1], op->key, op->key_len), "list %d op %zu key", l, i);
            if (op->kind == DDKV_OP_PUT) {
                cr_assert(bytes_eq(&e->via.array.ptr[2], op->value, op->value_len), "op %zu value", i);
                cr_assert_eq(u64_of(&e->via.array.ptr[3]), op->lease_id);
            } else {
                cr_assert(bytes_eq(&e->via.array.ptr[2], "", 0), "a delete sends an empty value");
                cr_assert_eq(u64_of(&e->via.array.ptr[3]), 0, "a delete sends lease 0");
            }
        }
    }
}

Test(client_coord, txn_sends_every_compare_and_op_and_keeps_its_session_across_a_retry)
{
    struct fake dying, good;
    fake_start(&dying, txn_first_drop_then_answer);
    fake_start(&good, txn_first_drop_then_answer);
    snprintf(good.text, sizeof good.text, "answer");
    char eps[64];
    snprintf(eps, sizeof eps, "127.0.0.1:%d,127.0.0.1:%d", dying.port, good.port);
    ddkv_client *c = client(eps, 5000);

    static const uint8_t binval[] = {0, 1, 0xff, 'x'};
    const struct ddkv_compare cmps[] = {
        {.key = "a", .key_len = 1, .field = DDKV_CMP_VALUE, .cmp = DDKV_CMP_EQ, .value = binval,
         .value_len = sizeof binval},
        {.key = "bb", .key_len = 2, .field = DDKV_CMP_VERSION, .cmp = DDKV_CMP_NE, .number = 0},
        {.key = "c", .key_len = 1, .field = DDKV_CMP_CREATE_REV, .cmp = DDKV_CMP_LT, .number = 77},
        {.key = "d", .key_len = 1, .field = DDKV_CMP_MOD_REV, .cmp = DDKV_CMP_GT,
         .number = UINT64_C(1) << 40},
        {.key = "e", .key_len = 1, .field = DDKV_CMP_VALUE, .cmp = DDKV_CMP_NE, .value = "",
         .value_len = 0},
    };
    const struct ddkv_op succ[] = {
        {.kind = DDKV_OP_PUT, .key = "a", .key_len = 1, .value = "new", .value_len = 3, .lease_id = 12},
        {.kind = DDKV_OP_DELETE, .key = "bb", .key_len = 2, .value = "ignored", .value_len = 7,
         .lease_id = 99},
        {.kind = DDKV_OP_PUT, .key = "z", .key_len = 1, .value = binval, .value_len = sizeof binval},
    };
    const struct ddkv_op fail[] = {
        {.kind = DDKV_OP_PUT, .key = "lost", .key_len = 4, .value = "1", .value_len = 1},
    };
    struct ddkv_txn_result r;
    cr_assert_eq(ddkv_txn(c, cmps, 5, succ, 3, fail, 1, &r), DDKV_OK, "%s", ddkv_client_errmsg(c));
    cr_assert(r.succeeded);
    cr_assert_eq(r.lamport, 42);
    cr_assert_eq(r.revision, 9);
    cr_assert_geq(ddkv_client_seen_lamport(c), 42, "the result's Lamport time is seen");
    cr_assert_gt(ddkv_client_lamport(c), 50, "the reply's Lamport time moved the clock");

    const struct ddkv_op *ops[2] = {succ, fail};
    const size_t nops[2] = {3, 1};
    struct msg first, retry;
    cr_assert(fake_request(&dying, DDKV_MSG_TXN, 0, &first, NULL), "the first member got the TXN");
    cr_assert(fake_request(&good, DDKV_MSG_TXN, 0, &retry, NULL), "the retry reached the second");
    check_txn_fields(&first, cmps, 5, ops, nops);
    check_txn_fields(&retry, cmps, 5, ops, nops);
    cr_assert_eq(u64_of(&retry.f[3]), ddkv_client_id(c));
    cr_assert_eq(u64_of(&retry.f[3]), u64_of(&first.f[3]), "the retry keeps the client id");
    cr_assert_eq(u64_of(&retry.f[4]), u64_of(&first.f[4]), "the retry keeps the sequence number");
    uint64_t seq = u64_of(&first.f[4]);
    msg_free(&first);
    msg_free(&retry);

    /* An empty transaction is still one write, with the next sequence number. */
    cr_assert_eq(ddkv_txn(c, NULL, 0, NULL, 0, NULL, 0, &r), DDKV_OK, "%s", ddkv_client_errmsg(c));
    cr_assert(fake_request(&good, DDKV_MSG_TXN, 1, &retry, NULL));
    const size_t none[2] = {0, 0};
    check_txn_fields(&retry, NULL, 0, ops, none);
    cr_assert_eq(u64_of(&retry.f[4]), seq + 1);
    msg_free(&retry);
    ddkv_client_free(c);
    fake_stop(&dying);
    fake_stop(&good);
}

static bool cas_answer_not_swapped(struct fake *f, int fd, int conn, const struct msg *m)
{
    struct buf b = BUF_INIT;
    struct msg_writer w;
    msg_begin(&w, &b, DDKV_MSG_TXN_RESULT, 5, m->request_id, 3);
    mw_bool(&w, false);
    mw_u64(&w, 17);
    mw_u64(&w, 4);
    msg_end(&w);
    send_buf(fd, &b);
    return false;
}

Test(client_coord, cas_is_one_compare_and_one_put)
{
    struct fake f;
    fake_start(&f, cas_answer_not_swapped);
    char eps[64];
    snprintf(eps, sizeof eps, "127.0.0.1:%d", f.port);
    ddkv_client *c = client(eps, 5000);
    struct ddkv_txn_result r;
    cr_assert_eq(ddkv_cas(c, "k", 1, "old", 3, false, "new", 3, 5, &r), DDKV_OK, "%s",
                 ddkv_client_errmsg(c));
    cr_assert_not(r.succeeded, "a compare that fails is an answer, not an error");
    cr_assert_eq(r.revision, 4);
    cr_assert_eq(r.lamport, 17);
    cr_assert_eq(ddkv_cas(c, "k", 1, "ignored", 7, true, "first", 5, 0, &r), DDKV_OK);

    const struct ddkv_compare by_value = {.key = "k", .key_len = 1, .field = DDKV_CMP_VALUE,
                                          .cmp = DDKV_CMP_EQ, .value = "old", .value_len = 3};
    const struct ddkv_compare absent = {.key = "k", .key_len = 1, .field = DDKV_CMP_VERSION,
                                        .cmp = DDKV_CMP_EQ, .number = 0};
    const struct ddkv_op put1 = {.kind = DDKV_OP_PUT, .key = "k", .key_len = 1, .value = "new",
                                 .value_len = 3, .lease_id = 5};
    const struct ddkv_op put2 = {.kind = DDKV_OP_PUT, .key = "k", .key_len = 1, .value = "first",
                                 .value_len = 5};
    const size_t nops[2] = {1, 0};
    struct msg m;
    cr_assert(fake_request(&f, DDKV_MSG_TXN, 0, &m, NULL));
    const struct ddkv_op *ops1[2] = {&put1, NULL};
    check_txn_fields(&m, &by_value, 1, ops1, nops);
    msg_free(&m);
    cr_assert(fake_request(&f, DDKV_MSG_TXN, 1, &m, NULL));
    const struct ddkv_op *ops2[2] = {&put2, NULL};
    check_txn_fields(&m, &absent, 1, ops2, nops);
    msg_free(&m);
    ddkv_client_free(c);
    fake_stop(&f);
}

Test(client_coord, txn_limits_and_bad_arguments_are_usage_errors_without_a_request)
{
    ddkv_client *c = client("127.0.0.1:1", 300);
    static struct ddkv_compare many[DDKV_TXN_MAX + 1];
    static struct ddkv_op ops[DDKV_TXN_MAX + 1];
    for (size_t i = 0; i <= DDKV_TXN_MAX; i++) {
        many[i] = (struct ddkv_compare){.key = "k", .key_len = 1, .field = DDKV_CMP_VERSION};
        ops[i] = (struct ddkv_op){.kind = DDKV_OP_DELETE, .key = "k", .key_len = 1};
    }
    struct ddkv_txn_result r;
    cr_assert_eq(ddkv_txn(c, many, DDKV_TXN_MAX + 1, NULL, 0, NULL, 0, &r), DDKV_ERR_USAGE);
    cr_assert_eq(ddkv_txn(c, NULL, 0, ops, DDKV_TXN_MAX + 1, NULL, 0, &r), DDKV_ERR_USAGE);
    cr_assert_eq(ddkv_txn(c, NULL, 0, NULL, 0, ops, DDKV_TXN_MAX + 1, &r), DDKV_ERR_USAGE);
    cr_assert_eq(ddkv_txn(c, NULL, 1, NULL, 0, NULL, 0, &r), DDKV_ERR_USAGE);
    struct ddkv_compare bad = {.key = "k", .key_len = 1, .field = (enum ddkv_cmp_field)4};
    cr_assert_eq(ddkv_txn(c, &bad, 1, NULL, 0, NULL, 0, &r), DDKV_ERR_USAGE);
    struct ddkv_op badop = {.kind = (enum ddkv_op_kind)3, .key = "k", .key_len = 1};
    cr_assert_eq(ddkv_txn(c, NULL, 0, &badop, 1, NULL, 0, &r), DDKV_ERR_USAGE);
    cr_assert_eq(ddkv_lease_grant(c, 0, &r.revision, NULL), DDKV_ERR_USAGE);
    cr_assert_eq(ddkv_lease_keepalive(c, 0, NULL), DDKV_ERR_USAGE);
    cr_assert_eq(ddkv_lease_revoke(c, 0), DDKV_ERR_USAGE);
    cr_assert_eq(ddkv_client_endpoint(c), NULL, "nothing was sent");
    /* At the limit it is sent (and here finds no one). */
    cr_assert_eq(ddkv_txn(c, many, DDKV_TXN_MAX, ops, DDKV_TXN_MAX, ops, DDKV_TXN_MAX, &r),
                 DDKV_ERR_UNAVAILABLE);
    ddkv_client_free(c);
}

/* --- leases --- */

/* Lease 1000 exists (ttl 3000); others are NOT_FOUND. Grants get id 1000. */
static bool lease_script(struct fake *f, int fd, int conn, const struct msg *m)
{
    struct buf b = BUF_INIT;
    struct msg_writer w;
    uint64_t id = 0, ttl = 0;
    switch (m->type) {
    case DDKV_MSG_LEASE_GRANT:
        msg_u64(m, 0, &ttl);
        id = 1000;
        break;
    case DDKV_MSG_LEASE_KEEPALIVE:
        msg_u64(m, 0, &id);
        ttl = 3000;
        break;
    case DDKV_MSG_LEASE_REVOKE:
        msg_u64(m, 0, &id);
        ttl = 0;
        break;
    case DDKV_MSG_READ:
        fake_error(fd, m->request_id, DDKV_WERR_COMPACTED, "oldest revision available 12");
        return false;
    default:
        fake_error(fd, m->request_id, DDKV_WERR_BAD_REQUEST, "unknown message type");
        return false;
    }
    if (id != 1000) {
        fake_error(fd, m->request_id, DDKV_WERR_NOT_FOUND, "lease not found (expired or revoked)");
        return false;
    }
    msg_begin(&w, &b, DDKV_MSG_LEASE, 5, m->request_id, 2);
    mw_u64(&w, id);
    mw_u64(&w, ttl);
    msg_end(&w);
    send_buf(fd, &b);
    return false;
}

Test(client_coord, lease_requests_have_their_wire_shapes)
{
    struct fake f;
    fake_start(&f, lease_script);
    char eps[64];
    snprintf(eps, sizeof eps, "127.0.0.1:%d", f.port);
    ddkv_client *c = client(eps, 5000);
    uint64_t id = 0, ttl = 0;
    cr_assert_eq(ddkv_lease_grant(c, 3000, &id, &ttl), DDKV_OK, "%s", ddkv_client_errmsg(c));
    cr_assert_eq(id, 1000);
    cr_assert_eq(ttl, 3000);
    cr_assert_eq(ddkv_lease_keepalive(c, 1000, &ttl), DDKV_OK, "%s", ddkv_client_errmsg(c));
    cr_assert_eq(ttl, 3000);
    cr_assert_eq(ddkv_lease_keepalive(c, 55, &ttl), DDKV_ERR_NOT_FOUND);
    cr_assert_eq(ddkv_lease_revoke(c, 1000), DDKV_OK, "%s", ddkv_client_errmsg(c));
    cr_assert_eq(ddkv_lease_revoke(c, 56), DDKV_ERR_NOT_FOUND);
    /* COMPACTED on an ordinary call has its own code. */
    struct ddkv_value v;
    cr_assert_eq(ddkv_read(c, "k", 1, DDKV_CONSISTENCY_LINEARIZABLE, 0, &v), DDKV_ERR_COMPACTED);
    cr_assert_str_neq(ddkv_strerror(DDKV_ERR_COMPACTED), "unknown error");

    struct msg m;
    cr_assert(fake_request(&f, DDKV_MSG_LEASE_GRANT, 0, &m, NULL));
    cr_assert_eq(m.nf, 3, "LEASE_GRANT is [ttl_ms, client_id, seq]");
    cr_assert_eq(u64_of(&m.f[0]), 3000);
    cr_assert_eq(u64_of(&m.f[1]), ddkv_client_id(c));
    uint64_t seq = u64_of(&m.f[2]);
    cr_assert_gt(seq, 0);
    msg_free(&m);
    for (int i = 0; i < 2; i++) {
        cr_assert(fake_request(&f, DDKV_MSG_LEASE_KEEPALIVE, i, &m, NULL));
        cr_assert_eq(m.nf, 1, "LEASE_KEEPALIVE is [lease_id]: no session, it is not logged");
        cr_assert_eq(u64_of(&m.f[0]), i == 0 ? 1000 : 55);
        msg_free(&m);
    }
    for (int i = 0; i < 2; i++) {
        cr_assert(fake_request(&f, DDKV_MSG_LEASE_REVOKE, i, &m, NULL));
        cr_assert_eq(m.nf, 3, "LEASE_REVOKE is [lease_id, client_id, seq]");
        cr_assert_eq(u64_of(&m.f[0]), i == 0 ? 1000 : 56);
        cr_assert_eq(u64_of(&m.f[1]), ddkv_client_id(c));
        cr_assert_eq(u64_of(&m.f[2]), seq + 1 + (uint64_t)i, "each revoke is its own write");
        msg_free(&m);
    }
    ddkv_client_free(c);
    fake_stop(&f);
}

/* --- watch --- */

static ddkv_watch *watch_open(const char *eps, const char *prefix, uint64_t from, uint32_t timeout_ms)
{
    struct ddkv_options o;
    ddkv_options_init(&o);
    o.endpoints = eps;
    o.timeout_ms = timeout_ms;
    ddkv_watch *w = NULL;
    char err[256];
    ddkv_err rc = ddkv_watch_open(&o, prefix, strlen(prefix), from, &w, err, sizeof err);
    cr_assert_eq(rc, DDKV_OK, "watch_open: %s (%s)", ddkv_strerror(rc), err);
    return w;
}

static void expect_event(ddkv_watch *w, uint32_t kind, const char *key, const char *val, uint64_t rev)
{
    struct ddkv_event ev;
    ddkv_err rc = ddkv_watch_next(w, &ev, 3000);
    cr_assert_eq(rc, DDKV_OK, "expected %s at rev %llu: %s (%s)", key, (unsigned long long)rev,
                 ddkv_strerror(rc), ddkv_watch_errmsg(w));
    cr_assert_eq(ev.kind, kind, "%s: kind", key);
    cr_assert_eq(ev.key_len, strlen(key));
    cr_assert_str_eq((const char *)ev.key, key, "expected event %s at rev %llu", key, (unsigned long long)rev);
    cr_assert_str_eq((const char *)ev.value, val);
    cr_assert_eq(ev.value_len, strlen(val));
    cr_assert_eq(ev.mod_rev, rev, "%s: revision", key);
    cr_assert_eq(ddkv_watch_revision(w), rev);
    ddkv_event_free(&ev);
    cr_assert_null(ev.key);
}

/* The first member: revision 5, then 2 of the 3 events of revision 7, then it
 * dies; a later connection is refused with UNAVAILABLE. */
static bool watch_cut_mid_revision(struct fake *f, int fd, int conn, const struct msg *m)
{
    if (m->type != DDKV_MSG_WATCH)
        return false;
    if (conn > 1) {
        fake_error(fd, m->request_id, DDKV_WERR_UNAVAILABLE, "shutting down");
        return false;
    }
    fake_event(fd, m->request_id, DDKV_OP_PUT, "p/a", "1", 5, 100);
    fake_event(fd, m->request_id, DDKV_OP_PUT, "p/b", "2", 7, 101);
    fake_event(fd, m->request_id, DDKV_OP_DELETE, "p/a", "", 7, 101);
    return true;
}

/* The second member replays revision 7 whole, then goes on. */
static bool watch_replay_from_7(struct fake *f, int fd, int conn, const struct msg *m)
{
    if (m->type != DDKV_MSG_WATCH)
        return false;
    fake_event(fd, m->request_id, DDKV_OP_PUT, "p/b", "2", 7, 101);
    fake_event(fd, m->request_id, DDKV_OP_DELETE, "p/a", "", 7, 101);
    fake_event(fd, m->request_id, DDKV_OP_PUT, "p/c", "3", 7, 101);
    fake_event(fd, m->request_id, DDKV_OP_PUT, "p/d", "4", 8, 102);
    return false;
}

static void check_watch_request(struct fake *f, int i, const char *prefix, uint64_t from)
{
    struct msg m;
    fake_wait(f, DDKV_MSG_WATCH, i + 1);
    cr_assert(fake_request(f, DDKV_MSG_WATCH, i, &m, NULL), "WATCH %d not received", i);
    cr_assert_eq(m.nf, 2, "WATCH is [prefix, from_rev]");
    cr_assert(bytes_eq(&m.f[0], prefix, strlen(prefix)), "WATCH %d prefix", i);
    cr_assert_eq(u64_of(&m.f[1]), from, "WATCH %d from_rev", i);
    msg_free(&m);
}

Test(client_coord, a_watch_cut_mid_revision_resumes_elsewhere_without_gap_or_duplicate)
{
    struct fake a, b;
    fake_start(&a, watch_cut_mid_revision);
    fake_start(&b, watch_replay_from_7);
    char eps[64];
    snprintf(eps, sizeof eps, "127.0.0.1:%d,127.0.0.1:%d", a.port, b.port);
    ddkv_watch *w = watch_open(eps, "p/", 5, 3000);
    expect_event(w, DDKV_OP_PUT, "p/a", "1", 5);
    expect_event(w, DDKV_OP_PUT, "p/b", "2", 7);
    expect_event(w, DDKV_OP_DELETE, "p/a", "", 7);
    /* The connection breaks here; the second member replays 7 from the start. */
    expect_event(w, DDKV_OP_PUT, "p/c", "3", 7);
    expect_event(w, DDKV_OP_PUT, "p/d", "4", 8);
    struct ddkv_event ev;
    cr_assert_eq(ddkv_watch_next(w, &ev, 150), DDKV_ERR_TIMEOUT, "nothing more: %s", ddkv_watch_errmsg(w));
    check_watch_request(&a, 0, "p/", 5);
    check_watch_request(&b, 0, "p/", 7);
    cr_assert_eq(fake_count(&b, DDKV_MSG_WATCH), 1);
    ddkv_watch_close(w);
    fake_stop(&a);
    fake_stop(&b);
}

/* A member that replays fewer events of the resumed revision than were seen. */
static bool watch_short_replay(struct fake *f, int fd, int conn, const struct msg *m)
{
    if (m->type != DDKV_MSG_WATCH)
        return false;
    fake_event(fd, m->request_id, DDKV_OP_PUT, "p/b", "2", 7, 101);
    fake_event(fd, m->request_id, DDKV_OP_PUT, "p/d", "4", 8, 102);
    return false;
}

Test(client_coord, a_member_that_replays_a_revision_short_is_a_protocol_error)
{
    struct fake a, b;
    fake_start(&a, watch_cut_mid_revision);
    fake_start(&b, watch_short_replay);
    char eps[64];
    snprintf(eps, sizeof eps, "127.0.0.1:%d,127.0.0.1:%d", a.port, b.port);
    ddkv_watch *w = watch_open(eps, "p/", 5, 3000);
    for (int i = 0; i < 3; i++) {
        struct ddkv_event ev;
        cr_assert_eq(ddkv_watch_next(w, &ev, 3000), DDKV_OK);
        ddkv_event_free(&ev);
    }
    struct ddkv_event ev;
    cr_assert_eq(ddkv_watch_next(w, &ev, 3000), DDKV_ERR_PROTOCOL);
    cr_assert(strstr(ddkv_watch_errmsg(w), "replayed 1 of the 2 events of revision 7"), "%s",
              ddkv_watch_errmsg(w));
    cr_assert_eq(ddkv_watch_revision(w), 7, "nothing of revision 8 was delivered");
    ddkv_watch_close(w);
    fake_stop(&a);
    fake_stop(&b);
}

static bool watch_compacted(struct fake *f, int fd, int conn, const struct msg *m)
{
    if (m->type == DDKV_MSG_WATCH)
        fake_error(fd, m->request_id, DDKV_WERR_COMPACTED, f->text);
    return false;
}

Test(client_coord, compacted_on_every_member_is_final_and_names_the_oldest_revision)
{
    struct fake a, b;
    fake_start(&a, watch_compacted);
    fake_start(&b, watch_compacted);
    snprintf(a.text, sizeof a.text, "revision 3 is older than this member's history; oldest revision available 120");
    snprintf(b.text, sizeof b.text, "revision 3 is older than this member's history; oldest revision available 90");
    char eps[64];
    snprintf(eps, sizeof eps, "127.0.0.1:%d,127.0.0.1:%d", a.port, b.port);
    ddkv_watch *w = watch_open(eps, "", 3, 3000);
    struct ddkv_event ev;
    cr_assert_eq(ddkv_watch_next(w, &ev, 3000), DDKV_ERR_COMPACTED, "%s", ddkv_watch_errmsg(w));
    cr_assert_eq(ddkv_watch_compacted_rev(w), 90, "the oldest revision some member still has");
    cr_assert_eq(fake_count(&a, DDKV_MSG_WATCH), 1, "each member asked once");
    cr_assert_eq(fake_count(&b, DDKV_MSG_WATCH), 1);
    cr_assert_eq(ddkv_watch_next(w, &ev, 100), DDKV_ERR_COMPACTED, "final");
    cr_assert_eq(ddkv_watch_revision(w), 0);
    ddkv_watch_close(w);
    fake_stop(&a);
    fake_stop(&b);
}

/* One member with a short history (it restarted), another with the revision. */
static bool watch_has_rev_3(struct fake *f, int fd, int conn, const struct msg *m)
{
    if (m->type == DDKV_MSG_WATCH)
        fake_event(fd, m->request_id, DDKV_OP_PUT, "k", "v", 3, 50);
    return false;
}

Test(client_coord, compacted_on_one_member_asks_another_first)
{
    struct fake a, b;
    fake_start(&a, watch_compacted);
    fake_start(&b, watch_has_rev_3);
    snprintf(a.text, sizeof a.text, "oldest revision available 40");
    char eps[64];
    snprintf(eps, sizeof eps, "127.0.0.1:%d,127.0.0.1:%d", a.port, b.port);
    ddkv_watch *w = watch_open(eps, "", 3, 3000);
    expect_event(w, DDKV_OP_PUT, "k", "v", 3);
    cr_assert_eq(ddkv_watch_compacted_rev(w), 0);
    ddkv_watch_close(w);
    fake_stop(&a);
    fake_stop(&b);
}

/* Answers STATUS with applied 41; holds the WATCH until the test pushes. */
static bool watch_quiet(struct fake *f, int fd, int conn, const struct msg *m)
{
    if (m->type == DDKV_MSG_STATUS) {
        struct buf b = BUF_INIT;
        struct msg_writer w;
        msg_begin(&w, &b, DDKV_MSG_STATUS_RESULT, 5, m->request_id, 1);
        mw_map(&w, 2);
        mw_str(&w, "name");
        mw_str(&w, "fake");
        mw_str(&w, "applied");
        mw_u64(&w, 41);
        msg_end(&w);
        send_buf(fd, &b);
    }
    return false;
}

static void push_one_event(struct fake *f, int fd)
{
    fake_event(fd, f->watch_rid, DDKV_OP_PUT, "q/1", "x", 42, 60);
}

Test(client_coord, a_quiet_watch_times_out_and_goes_on_and_from_rev_0_is_pinned_at_open)
{
    struct fake f;
    fake_start(&f, watch_quiet);
    f.on_push = push_one_event;
    char eps[64];
    snprintf(eps, sizeof eps, "127.0.0.1:%d", f.port);
    ddkv_watch *w = watch_open(eps, "q/", 0, 3000);
    check_watch_request(&f, 0, "q/", 42);
    struct ddkv_event ev;
    uint64_t t0 = clock_mono_ms();
    cr_assert_eq(ddkv_watch_next(w, &ev, 150), DDKV_ERR_TIMEOUT, "%s", ddkv_watch_errmsg(w));
    uint64_t took = clock_mono_ms() - t0;
    cr_assert_geq(took, 140);
    cr_assert_lt(took, 1000);
    cr_assert_null(ev.key);
    f.push = 1;
    expect_event(w, DDKV_OP_PUT, "q/1", "x", 42);
    cr_assert_str_eq(ddkv_watch_errmsg(w), "");
    cr_assert_eq(f.conns, 1, "the watch stayed on its connection");
    cr_assert_eq(fake_count(&f, DDKV_MSG_WATCH), 1);
    ddkv_watch_close(w);
    fake_stop(&f);
}

/* First connection: an EVENT under another request id (garbled); second: a good one. */
static bool watch_garbled_then_good(struct fake *f, int fd, int conn, const struct msg *m)
{
    if (m->type != DDKV_MSG_WATCH)
        return false;
    if (conn == 1)
        fake_event(fd, m->request_id + 1000, DDKV_OP_PUT, "g/1", "x", 9, 60);
    else
        fake_event(fd, m->request_id, DDKV_OP_PUT, "g/1", "x", 9, 60);
    return false;
}

/* An event outside the prefix. */
static bool watch_wrong_prefix(struct fake *f, int fd, int conn, const struct msg *m)
{
    if (m->type == DDKV_MSG_WATCH)
        fake_event(fd, m->request_id, DDKV_OP_PUT, "other", "x", 9, 60);
    return false;
}

Test(client_coord, a_garbled_frame_is_a_protocol_error_then_the_watch_reconnects)
{
    struct fake f, g;
    fake_start(&f, watch_garbled_then_good);
    fake_start(&g, watch_wrong_prefix);
    char eps[64];
    snprintf(eps, sizeof eps, "127.0.0.1:%d", f.port);
    ddkv_watch *w = watch_open(eps, "g/", 9, 3000);
    struct ddkv_event ev;
    cr_assert_eq(ddkv_watch_next(w, &ev, 3000), DDKV_ERR_PROTOCOL);
    cr_assert(strstr(ddkv_watch_errmsg(w), "request"), "%s", ddkv_watch_errmsg(w));
    expect_event(w, DDKV_OP_PUT, "g/1", "x", 9);
    cr_assert_eq(f.conns, 2);
    check_watch_request(&f, 1, "g/", 9);
    ddkv_watch_close(w);

    snprintf(eps, sizeof eps, "127.0.0.1:%d", g.port);
    w = watch_open(eps, "g/", 9, 3000);
    cr_assert_eq(ddkv_watch_next(w, &ev, 3000), DDKV_ERR_PROTOCOL);
    cr_assert(strstr(ddkv_watch_errmsg(w), "prefix"), "%s", ddkv_watch_errmsg(w));
    ddkv_watch_close(w);
    fake_stop(&f);
    fake_stop(&g);
}

static bool watch_refused(struct fake *f, int fd, int conn, const struct msg *m)
{
    fake_error(fd, m->request_id, DDKV_WERR_UNAVAILABLE, "no quorum");
    return false;
}

Test(client_coord, a_watch_no_member_serves_is_unavailable_after_the_timeout_and_goes_on_trying)
{
    struct fake f;
    fake_start(&f, watch_refused);
    char eps[64];
    snprintf(eps, sizeof eps, "127.0.0.1:%d", f.port);
    ddkv_watch *w = watch_open(eps, "", 1, 400);
    struct ddkv_event ev;
    ddkv_err rc;
    uint64_t t0 = clock_mono_ms();
    while ((rc = ddkv_watch_next(w, &ev, 100)) == DDKV_ERR_TIMEOUT)
        cr_assert_lt(clock_mono_ms() - t0, 3000, "never gave up");
    cr_assert_eq(rc, DDKV_ERR_UNAVAILABLE, "%s", ddkv_watch_errmsg(w));
    cr_assert(strstr(ddkv_watch_errmsg(w), "no quorum"), "%s", ddkv_watch_errmsg(w));
    cr_assert_geq(clock_mono_ms() - t0, 300);
    int asked = fake_count(&f, DDKV_MSG_WATCH);
    cr_assert_geq(asked, 2, "retried while time was left");
    rc = ddkv_watch_next(w, &ev, 200);
    cr_assert(rc == DDKV_ERR_TIMEOUT || rc == DDKV_ERR_UNAVAILABLE);
    cr_assert_gt(fake_count(&f, DDKV_MSG_WATCH), asked, "the watch keeps trying");
    ddkv_watch_close(w);
    fake_stop(&f);
}

Test(client_coord, watch_open_fails_when_no_endpoint_answers)
{
    struct ddkv_options o;
    ddkv_options_init(&o);
    o.endpoints = "127.0.0.1:1";
    o.timeout_ms = 300;
    ddkv_watch *w = (ddkv_watch *)1;
    char err[256];
    cr_assert_eq(ddkv_watch_open(&o, "p", 1, 5, &w, err, sizeof err), DDKV_ERR_UNAVAILABLE);
    cr_assert_null(w);
    cr_assert(strstr(err, "127.0.0.1:1"), "%s", err);
    cr_assert_eq(ddkv_watch_open(&o, NULL, 1, 5, &w, err, sizeof err), DDKV_ERR_USAGE);
}
