/* Shared by the connection attacks (test_conn_*.c): sockets from another
 * loopback address, a well-behaved writer that records its latencies and
 * what was acknowledged, and an RSS watch of a node. Everything stays on
 * 127.0.0.0/8; every loop is bounded in time. */
#ifndef DDKV_TEST_CONN_ATTACK_H
#define DDKV_TEST_CONN_ATTACK_H

#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "ddkv/ddkv.h"
#include "harness.h"
#include "util/clock.h"

/* The sanitizer build keeps freed memory in a quarantine (256 MiB by
 * default) that the release build does not have: the nodes started here get
 * a small one, so their RSS is what the node itself holds. */
static void conn_small_quarantine(void)
{
    const char *a = getenv("ASAN_OPTIONS");
    char buf[512];
    snprintf(buf, sizeof buf, "%s%squarantine_size_mb=8", a ? a : "", a && *a ? ":" : "");
    setenv("ASAN_OPTIONS", buf, 1);
}

/* A TCP connection to 127.0.0.1:port from src (say "127.0.0.7"), non-blocking
 * once connected; -1 on failure. */
static int conn_from(const char *src, int port, int timeout_ms)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    struct sockaddr_in a = {.sin_family = AF_INET};
    if (src) {
        inet_pton(AF_INET, src, &a.sin_addr);
        if (bind(fd, (struct sockaddr *)&a, sizeof a) != 0) {
            close(fd);
            return -1;
        }
    }
    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
    struct sockaddr_in to = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    inet_pton(AF_INET, "127.0.0.1", &to.sin_addr);
    if (connect(fd, (struct sockaddr *)&to, sizeof to) != 0 && errno != EINPROGRESS) {
        close(fd);
        return -1;
    }
    struct pollfd p = {.fd = fd, .events = POLLOUT};
    int err = 0;
    socklen_t el = sizeof err;
    if (poll(&p, 1, timeout_ms) != 1 || getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &el) != 0 || err != 0) {
        close(fd);
        return -1;
    }
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    return fd;
}

/* ddkv_write without the result. */
static ddkv_err kv_put(ddkv_client *c, const void *k, size_t kl, const void *v, size_t vl)
{
    struct ddkv_write_result r;
    return ddkv_write(c, k, kl, v, vl, 0, &r);
}

/* A well-behaved client: writes key prefix%d (small values) in a loop until
 * stop, on one libddkv client, recording each write's latency and which were
 * acknowledged. */
#define WRITER_MAX 20000
struct writer {
    pthread_t th;
    char endpoints[512];
    char prefix[32];
    uint32_t pause_ms;      /* between writes */
    const char *user, *password; /* credentials, or NULL */
    volatile int stop;
    int n, errors;
    uint64_t lat_ns[WRITER_MAX];
    char err[400];
};

static void *writer_main(void *arg)
{
    struct writer *wr = arg;
    struct ddkv_options o;
    ddkv_options_init(&o);
    o.endpoints = wr->endpoints;
    o.timeout_ms = 10000;
    o.user = wr->user;
    o.password = wr->password;
    ddkv_client *c = NULL;
    char err[256];
    if (ddkv_client_new(&o, &c, err, sizeof err) != DDKV_OK) {
        snprintf(wr->err, sizeof wr->err, "client: %s", err);
        wr->errors++;
        return NULL;
    }
    while (!wr->stop && wr->n < WRITER_MAX) {
        char key[64], val[64];
        snprintf(key, sizeof key, "%s%d", wr->prefix, wr->n);
        int vl = snprintf(val, sizeof val, "v%d", wr->n);
        uint64_t t0 = clock_mono_ns();
        ddkv_err e = kv_put(c, key, strlen(key), val, (size_t)vl);
        uint64_t dt = clock_mono_ns() - t0;
        if (e != DDKV_OK) {
            snprintf(wr->err, sizeof wr->err, "write %s: %s (%s)", key, ddkv_strerror(e), ddkv_client_errmsg(c));
            wr->errors++;
            break;
        }
        wr->lat_ns[wr->n++] = dt;
        if (wr->pause_ms)
            usleep(wr->pause_ms * 1000);
    }
    ddkv_client_free(c);
    return NULL;
}

static int u64_cmp(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

/* The q-quantile (0..1) of the writer's latencies, in ms. */
static double writer_quantile_ms(struct writer *wr, double q)
{
    if (wr->n == 0)
        return 1e9;
    uint64_t *s = malloc((size_t)wr->n * sizeof *s);
    memcpy(s, wr->lat_ns, (size_t)wr->n * sizeof *s);
    qsort(s, (size_t)wr->n, sizeof *s, u64_cmp);
    size_t i = (size_t)(q * (wr->n - 1));
    double ms = (double)s[i] / 1e6;
    free(s);
    return ms;
}

/* Every write the writer had acknowledged is there, with its value. */
static void writer_check_present(struct writer *wr, const char *endpoints)
{
    struct ddkv_options o;
    ddkv_options_init(&o);
    o.endpoints = endpoints;
    o.timeout_ms = 10000;
    o.user = wr->user;
    o.password = wr->password;
    ddkv_client *c = NULL;
    char err[256];
    cr_assert_eq(ddkv_client_new(&o, &c, err, sizeof err), DDKV_OK, "%s", err);
    for (int i = 0; i < wr->n; i++) {
        char key[64], val[64];
        snprintf(key, sizeof key, "%s%d", wr->prefix, i);
        int vl = snprintf(val, sizeof val, "v%d", i);
        struct ddkv_value v;
        ddkv_err e = ddkv_read(c, key, strlen(key), DDKV_CONSISTENCY_LINEARIZABLE, 0, &v);
        cr_assert_eq(e, DDKV_OK, "acknowledged write %s is gone: %s (%s)", key, ddkv_strerror(e),
                     ddkv_client_errmsg(c));
        cr_assert(v.len == (size_t)vl && memcmp(v.value, val, v.len) == 0, "acknowledged write %s has another value",
                  key);
        ddkv_free(v.value);
    }
    ddkv_client_free(c);
}

#endif
