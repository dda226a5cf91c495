/* libddkv's retry rules against scripted fake members on 127.0.0.1: a write
 * whose connection dies after it left, or that a member leaves unanswered for
 * an attempt, is sent again under the same (client_id, seq) to another member;
 * a write that stays in doubt until the deadline is UNKNOWN_OUTCOME; NOT_LEADER
 * is followed to the named address. */
#include <criterion/criterion.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "ddkv/ddkv.h"
#include "harness.h"
#include "proto/msg.h"
#include "util/clock.h"

/* What a fake member does with each WRITE it receives. */
enum script { CLOSE_AFTER_READ, ANSWER_WRITTEN, ANSWER_TIMEOUT, ANSWER_NOT_LEADER, SILENT };

struct fake {
    int lfd, port;
    enum script script;
    char leader[64];         /* for ANSWER_NOT_LEADER */
    pthread_t th;
    volatile int stop;
    int writes;              /* WRITEs seen */
    volatile int closed_by_client; /* SILENT: connections the client gave up (closed) */
    uint64_t client_id[16], seq[16];
};

static void *fake_main(void *arg)
{
    struct fake *f = arg;
    while (!f->stop) {
        struct sockaddr_in a;
        socklen_t al = sizeof a;
        int fd = accept(f->lfd, (struct sockaddr *)&a, &al);
        if (fd < 0)
            continue;
        struct buf body = BUF_INIT, out = BUF_INIT;
        while (!f->stop && recv_frame(fd, 200, &body) == 0) {
            struct msg m;
            struct errbuf eb;
            if (msg_decode(&m, body.data, body.len, &msg_limits_request, &eb) != ERR_OK)
                break;
            bool close_now = false;
            buf_reset(&out);
            struct msg_writer w;
            if (m.type == DDKV_MSG_HELLO) {
                /* As a 0.1.0 node: it does not know HELLO, says so and keeps the connection. */
                msg_begin(&w, &out, DDKV_MSG_ERROR, 5, m.request_id, 3);
                mw_u64(&w, DDKV_WERR_BAD_REQUEST);
                mw_str(&w, "unknown message type 48");
                mw_nil(&w);
                msg_end(&w);
            } else if (m.type == DDKV_MSG_WRITE) {
                int i = f->writes++;
                if (i < 16) {
                    msg_u64(&m, 3, &f->client_id[i]);
                    msg_u64(&m, 4, &f->seq[i]);
                }
                switch (f->script) {
                case CLOSE_AFTER_READ:
                    close_now = true;
                    break;
                case SILENT:
                    /* As a member whose machine vanished: nothing comes
                     * back, and the connection stays until the client
                     * closes it. */
                    while (!f->stop && !wait_closed(fd, 100))
                        ;
                    if (!f->stop)
                        f->closed_by_client++;
                    close_now = true;
                    break;
                case ANSWER_WRITTEN:
                    msg_begin(&w, &out, DDKV_MSG_WRITTEN_AT, 5, m.request_id, 2);
                    mw_u64(&w, 42);
                    mw_u64(&w, 7);
                    msg_end(&w);
                    break;
                case ANSWER_TIMEOUT:
                case ANSWER_NOT_LEADER:
                    msg_begin(&w, &out, DDKV_MSG_ERROR, 5, m.request_id, 3);
                    mw_u64(&w, f->script == ANSWER_TIMEOUT ? DDKV_WERR_TIMEOUT : DDKV_WERR_NOT_LEADER);
                    mw_str(&w, "scripted");
                    if (f->script == ANSWER_NOT_LEADER)
                        mw_str(&w, f->leader);
                    else
                        mw_nil(&w);
                    msg_end(&w);
                    break;
                }
            }
            msg_free(&m);
            if (close_now)
                break;
            if (out.len && send_all(fd, out.data, out.len) != 0)
                break;
        }
        buf_free(&body);
        buf_free(&out);
        close(fd);
    }
    return NULL;
}

static void fake_start(struct fake *f, enum script s)
{
    memset(f, 0, sizeof *f);
    f->script = s;
    f->lfd = listen_loopback(&f->port, 100); /* accept wakes to see stop */
    cr_assert_geq(f->lfd, 0);
    cr_assert_eq(pthread_create(&f->th, NULL, fake_main, f), 0);
}

static void fake_stop(struct fake *f)
{
    f->stop = 1;
    pthread_join(f->th, NULL);
    close(f->lfd);
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

/* A client of two fake members, a first. */
static ddkv_client *client_of_two(const struct fake *a, const struct fake *b, uint32_t timeout_ms)
{
    char eps[64];
    snprintf(eps, sizeof eps, "127.0.0.1:%d,127.0.0.1:%d", a->port, b->port);
    return client(eps, timeout_ms);
}

Test(client, a_write_cut_off_after_sending_is_retried_elsewhere_under_the_same_session)
{
    struct fake dying, good;
    fake_start(&dying, CLOSE_AFTER_READ);
    fake_start(&good, ANSWER_WRITTEN);
    ddkv_client *c = client_of_two(&dying, &good, 5000);
    struct ddkv_write_result r;
    cr_assert_eq(ddkv_write(c, "k", 1, "v", 1, 0, &r), DDKV_OK, "%s", ddkv_client_errmsg(c));
    cr_assert_eq(r.revision, 7);
    cr_assert_eq(dying.writes, 1);
    cr_assert_eq(good.writes, 1);
    cr_assert_eq(good.client_id[0], dying.client_id[0], "the retry keeps the client id");
    cr_assert_eq(good.seq[0], dying.seq[0], "the retry keeps the sequence number");
    cr_assert_neq(good.client_id[0], 0);
    /* The next logical write takes the next sequence number. */
    cr_assert_eq(ddkv_write(c, "k", 1, "w", 1, 0, &r), DDKV_OK);
    cr_assert_eq(good.seq[1], good.seq[0] + 1);
    ddkv_client_free(c);
    fake_stop(&dying);
    fake_stop(&good);
}

Test(client, a_write_in_doubt_until_the_deadline_is_unknown_outcome_not_unavailable)
{
    struct fake dying;
    fake_start(&dying, CLOSE_AFTER_READ);
    char eps[64];
    snprintf(eps, sizeof eps, "127.0.0.1:%d", dying.port);
    ddkv_client *c = client(eps, 800);
    struct ddkv_write_result r;
    uint64_t t0 = clock_mono_ms();
    cr_assert_eq(ddkv_write(c, "k", 1, "v", 1, 0, &r), DDKV_ERR_UNKNOWN_OUTCOME, "%s",
                 ddkv_client_errmsg(c));
    cr_assert_lt(clock_mono_ms() - t0, 800 + 500, "gave up at the deadline");
    cr_assert_geq(dying.writes, 2, "retried while time was left");
    for (int i = 1; i < dying.writes && i < 16; i++)
        cr_assert_eq(dying.seq[i], dying.seq[0], "every retry is the same write");
    ddkv_client_free(c);
    fake_stop(&dying);
}

Test(client, a_node_timeout_answer_is_retried_and_a_read_is_never_unknown)
{
    struct fake slow, good;
    fake_start(&slow, ANSWER_TIMEOUT);
    fake_start(&good, ANSWER_WRITTEN);
    ddkv_client *c = client_of_two(&slow, &good, 5000);
    struct ddkv_write_result r;
    cr_assert_eq(ddkv_write(c, "k", 1, "v", 1, 0, &r), DDKV_OK, "%s", ddkv_client_errmsg(c));
    cr_assert_eq(slow.writes, 1);
    cr_assert_eq(good.seq[0], slow.seq[0]);
    ddkv_client_free(c);
    fake_stop(&slow);
    fake_stop(&good);
}

Test(client, not_leader_is_followed_to_the_named_leader)
{
    struct fake follower, leader;
    fake_start(&leader, ANSWER_WRITTEN);
    fake_start(&follower, ANSWER_NOT_LEADER);
    snprintf(follower.leader, sizeof follower.leader, "127.0.0.1:%d", leader.port);
    char eps[64];
    snprintf(eps, sizeof eps, "127.0.0.1:%d", follower.port);
    ddkv_client *c = client(eps, 5000);
    struct ddkv_write_result r;
    cr_assert_eq(ddkv_write(c, "k", 1, "v", 1, 0, &r), DDKV_OK, "%s", ddkv_client_errmsg(c));
    cr_assert_eq(leader.writes, 1, "the write reached the leader the follower named");
    ddkv_client_free(c);
    fake_stop(&follower);
    fake_stop(&leader);
}

/* A member that reads the write and never answers (a leader whose machine
 * vanished without a reset): after one attempt (1.5 s) libddkv closes that
 * connection and sends the write to the next member under the same session,
 * well before the call's 5 s deadline. */
Test(client, a_silent_member_is_given_up_after_one_attempt_and_the_write_resent)
{
    struct fake silent, good;
    fake_start(&silent, SILENT);
    fake_start(&good, ANSWER_WRITTEN);
    ddkv_client *c = client_of_two(&silent, &good, 5000);
    struct ddkv_write_result r;
    uint64_t t0 = clock_mono_ms();
    cr_assert_eq(ddkv_write(c, "k", 1, "v", 1, 0, &r), DDKV_OK, "%s", ddkv_client_errmsg(c));
    uint64_t took = clock_mono_ms() - t0;
    cr_assert_geq(took, 1400, "the silent member had its attempt (%llu ms)", (unsigned long long)took);
    cr_assert_lt(took, 4000, "resent after one attempt, not at the deadline (%llu ms)", (unsigned long long)took);
    cr_assert_eq(silent.writes, 1);
    cr_assert_eq(good.writes, 1);
    cr_assert_eq(good.client_id[0], silent.client_id[0], "the resend keeps the client id");
    cr_assert_eq(good.seq[0], silent.seq[0], "the resend keeps the sequence number");
    for (int i = 0; i < 50 && !silent.closed_by_client; i++)
        usleep(20 * 1000);
    cr_assert_eq(silent.closed_by_client, 1, "the abandoned connection was closed");
    ddkv_client_free(c);
    fake_stop(&silent);
    fake_stop(&good);
}

/* A call that runs out of time on a silent member (the deadline, 1 s, is
 * shorter than an attempt): UNKNOWN_OUTCOME, and the next call starts at the
 * next member instead of waiting on the silent one again. */
Test(client, after_a_call_times_out_on_a_member_the_next_starts_at_another)
{
    struct fake silent, good;
    fake_start(&silent, SILENT);
    fake_start(&good, ANSWER_WRITTEN);
    ddkv_client *c = client_of_two(&silent, &good, 1000);
    struct ddkv_write_result r;
    cr_assert_eq(ddkv_write(c, "k", 1, "v", 1, 0, &r), DDKV_ERR_UNKNOWN_OUTCOME, "%s", ddkv_client_errmsg(c));
    cr_assert_eq(silent.writes, 1);
    cr_assert_eq(good.writes, 0);
    uint64_t t0 = clock_mono_ms();
    cr_assert_eq(ddkv_write(c, "k", 1, "w", 1, 0, &r), DDKV_OK, "%s", ddkv_client_errmsg(c));
    cr_assert_lt(clock_mono_ms() - t0, 900, "went to the other member first");
    cr_assert_eq(silent.writes, 1, "not sent to the silent member again");
    cr_assert_eq(good.writes, 1);
    ddkv_client_free(c);
    fake_stop(&silent);
    fake_stop(&good);
}
