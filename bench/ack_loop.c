/* The write load of bench/failover.sh: THREADS closed-loop writers, each with
 * its own connection and one write in flight, and one line on stdout per
 * acknowledged write: "NS WHO", the CLOCK_MONOTONIC time (ns) at which the
 * answer came back, and who answered it: for ddkv the member's client address
 * (only a leader acknowledges a write), for etcd the raft_term in the
 * answer's header. The script kills the leader with the `kill` mode below,
 * which stamps the kill on the same clock, and reads the gap around each kill
 * from the lines: the last ack before the kill, and the first ack after it
 * that a new leader gave (for ddkv, another member than the one killed; for
 * etcd, a later term). WHO tells those apart from the acks the old leader
 * sent just before it died, which still arrive in the first milliseconds
 * after the kill.
 *
 *   ddkv-bench-ack-loop ddkv ENDPOINTS [options]   writes through libddkv
 *   ddkv-bench-ack-loop etcd ENDPOINTS [options]   writes through etcd's v3
 *                                                  JSON gateway (POST
 *                                                  /v3/kv/put, HTTP/1.1
 *                                                  keep-alive, raw sockets)
 *   ddkv-bench-ack-loop kill PID                   SIGKILL PID; print the time just
 *                                                  before (monotonic ns, then
 *                                                  realtime ns, to match logs)
 *   ddkv-bench-ack-loop stamp CMD [ARG...]         print the time as kill does (monotonic
 *                                                  ns, realtime ns), then run CMD (its
 *                                                  stdout to stderr) and exit with its
 *                                                  status (failover.sh --fault silent:
 *                                                  the leader's link going down)
 *   ddkv-bench-ack-loop now                        print the time
 *
 * Options: --threads N (4), --value-size BYTES (256), --max-s S (stop by
 * itself after S seconds; 3600), --timeout-ms MS (ddkv: libddkv's deadline
 * of one whole write, retries included, 5000; etcd: the deadline of one HTTP
 * attempt, 500).
 *
 * How each client rides out a failover:
 *   ddkv: libddkv's own policy (include/ddkv/ddkv.h): a broken connection or
 *     NOT_LEADER moves it to another member or the named leader, UNAVAILABLE
 *     is retried with a backoff of 10 ms doubling to 500 ms (jittered), all
 *     within --timeout-ms; writes follow the leader.
 *   etcd: any member takes a put (a follower forwards it to its leader). A
 *     put whose proposal went to a dead leader is never answered by etcd
 *     (its own request timeout is 7 s here), so each attempt has a deadline
 *     (--timeout-ms); on a broken connection, an HTTP error or that
 *     deadline, the client closes the connection, moves to the next member
 *     and backs off like libddkv (10 ms doubling to 500 ms, jittered).
 *     Threads start on different members (thread i on member i mod n), as
 *     the ddkv clients do before they follow the leader.
 * Each stops on SIGTERM or SIGINT; the acknowledgements already printed are
 * flushed first. Failures go to stderr, at most one line per thread per
 * second, and a count at the end. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "ddkv/ddkv.h"
#include "util/clock.h"
#include "util/rng.h"
#include "httpc.h"

#define MAX_EPS 16
#define MAX_THREADS 256
#define BACKOFF_MIN_MS 10u
#define BACKOFF_MAX_MS 500u

static volatile sig_atomic_t stop_flag;
static void on_signal(int sig)
{
    (void)sig;
    stop_flag = 1;
}

/* stdout is shared: workers print under this lock, main flushes under it. */
static pthread_mutex_t out_mu = PTHREAD_MUTEX_INITIALIZER;
static atomic_ullong acks, failures;

static void ack(uint64_t t, const char *who)
{
    pthread_mutex_lock(&out_mu);
    printf("%llu %s\n", (unsigned long long)t, who);
    pthread_mutex_unlock(&out_mu);
    atomic_fetch_add(&acks, 1);
}

struct worker {
    pthread_t th;
    int id;
    uint64_t last_err_ns;
    uint64_t rng;
};

static struct {
    bool etcd;
    char eps[MAX_EPS][128];
    int neps;
    int threads;
    size_t value_size;
    uint32_t timeout_ms;
    double max_s;
} cfg = {.threads = 4, .value_size = 256, .max_s = 3600};

static void fail(struct worker *w, const char *what, const char *detail)
{
    atomic_fetch_add(&failures, 1);
    uint64_t now = clock_mono_ns();
    if (now - w->last_err_ns < 1000000000u)
        return;
    w->last_err_ns = now;
    fprintf(stderr, "ack_loop: %.3f thread %d: %s%s%s\n", (double)now / 1e9, w->id, what, detail ? ": " : "",
            detail ? detail : "");
}

static uint64_t rnd(struct worker *w)
{
    return rng_next(&w->rng);
}

static void sleep_ms(uint32_t ms)
{
    struct timespec ts = {(time_t)(ms / 1000), (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR && !stop_flag) {
    }
}

/* Sleep between backoff/2 and backoff, then double it (up to the cap). */
static void backoff(struct worker *w, uint32_t *b)
{
    sleep_ms(*b / 2 + (uint32_t)(rnd(w) % (*b / 2 + 1)));
    *b = *b * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : *b * 2;
}

/* --- ddkv, through libddkv --- */

static void *run_ddkv(void *arg)
{
    struct worker *w = arg;
    char mine[MAX_EPS * 130] = "";
    for (int i = 0; i < cfg.neps; i++) {
        size_t l = strlen(mine);
        snprintf(mine + l, sizeof mine - l, "%s%s", i ? "," : "", cfg.eps[(i + w->id) % cfg.neps]);
    }
    struct ddkv_options o;
    ddkv_options_init(&o);
    o.endpoints = mine;
    if (cfg.timeout_ms)
        o.timeout_ms = cfg.timeout_ms;
    ddkv_client *c;
    char err[256];
    if (ddkv_client_new(&o, &c, err, sizeof err) != DDKV_OK) {
        fail(w, "client", err);
        return NULL;
    }
    char *val = malloc(cfg.value_size + 1);
    memset(val, 'v', cfg.value_size);
    for (uint64_t i = 0; !stop_flag; i++) {
        char key[32];
        int kl = snprintf(key, sizeof key, "ack/%03d/%06llu", w->id, (unsigned long long)(i % 10000));
        struct ddkv_write_result r;
        ddkv_err e = ddkv_write(c, key, (size_t)kl, val, cfg.value_size, 0, &r);
        if (e == DDKV_OK) {
            uint64_t t = clock_mono_ns();
            const char *who = ddkv_client_endpoint(c);
            ack(t, who ? who : "?");
        } else
            fail(w, ddkv_strerror(e), ddkv_client_errmsg(c));
    }
    free(val);
    ddkv_client_free(c);
    return NULL;
}

/* --- etcd, through its v3 JSON gateway over HTTP/1.1 --- */

static size_t b64(const void *in, size_t n, char *out)
{
    static const char t[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    const uint8_t *p = in;
    size_t o = 0, i = 0;
    for (; i + 2 < n; i += 3) {
        uint32_t v = (uint32_t)p[i] << 16 | (uint32_t)p[i + 1] << 8 | p[i + 2];
        out[o++] = t[v >> 18 & 63];
        out[o++] = t[v >> 12 & 63];
        out[o++] = t[v >> 6 & 63];
        out[o++] = t[v & 63];
    }
    if (i < n) {
        uint32_t v = (uint32_t)p[i] << 16 | (i + 1 < n ? (uint32_t)p[i + 1] << 8 : 0);
        out[o++] = t[v >> 18 & 63];
        out[o++] = t[v >> 12 & 63];
        out[o++] = i + 1 < n ? t[v >> 6 & 63] : '=';
        out[o++] = '=';
    }
    out[o] = 0;
    return o;
}

/* One response: its status, whether its body names an error, and the
 * raft_term of its header (0 if none). Handles a Content-Length body and a
 * chunked one. */
static const char *hresponse(struct httpc *h, int *status, bool *body_error, unsigned long long *term,
                             uint64_t deadline_ns)
{
    char *end;
    const char *e;
    while (!(end = memmem(h->buf, h->len, "\r\n\r\n", 4)))
        if ((e = httpc_fill(h, deadline_ns)))
            return e;
    size_t hlen = (size_t)(end - h->buf) + 4;
    char head[4096];
    size_t cl = hlen < sizeof head ? hlen : sizeof head - 1;
    memcpy(head, h->buf, cl);
    head[cl] = 0;
    if (sscanf(head, "HTTP/1.%*d %d", status) != 1)
        return "garbled status line";
    long content_length = -1;
    bool chunked = false;
    for (char *line = strstr(head, "\r\n"); line && line[2]; line = strstr(line + 2, "\r\n")) {
        char *l = line + 2;
        if (strncasecmp(l, "content-length:", 15) == 0)
            content_length = strtol(l + 15, NULL, 10);
        else if (strncasecmp(l, "transfer-encoding:", 18) == 0 && strcasestr(l, "chunked") &&
                 strcasestr(l, "chunked") < strstr(l, "\r\n"))
            chunked = true;
    }
    httpc_consume(h, hlen);
    char body[4096];
    size_t blen = 0;
    if (chunked) {
        for (;;) {
            char *crlf;
            while (!(crlf = memmem(h->buf, h->len, "\r\n", 2)))
                if ((e = httpc_fill(h, deadline_ns)))
                    return e;
            size_t sz = strtoul(h->buf, NULL, 16);
            size_t need = (size_t)(crlf - h->buf) + 2 + sz + 2;
            if (need > HTTPC_MAX_BUFFER)
                return "chunk too large";
            while (h->len < need)
                if ((e = httpc_fill(h, deadline_ns)))
                    return e;
            size_t take = sz < sizeof body - 1 - blen ? sz : sizeof body - 1 - blen;
            memcpy(body + blen, crlf + 2, take);
            blen += take;
            httpc_consume(h, need);
            if (sz == 0)
                break; /* no trailers from this server */
        }
    } else {
        if (content_length < 0 || (size_t)content_length > HTTPC_MAX_BUFFER)
            return "response without a usable Content-Length";
        while (h->len < (size_t)content_length)
            if ((e = httpc_fill(h, deadline_ns)))
                return e;
        blen = (size_t)content_length < sizeof body - 1 ? (size_t)content_length : sizeof body - 1;
        memcpy(body, h->buf, blen);
        httpc_consume(h, (size_t)content_length);
    }
    body[blen] = 0;
    *body_error = strstr(body, "\"error\"") != NULL;
    const char *rt = strstr(body, "\"raft_term\":\"");
    *term = rt ? strtoull(rt + 13, NULL, 10) : 0;
    return NULL;
}

static void *run_etcd(void *arg)
{
    struct worker *w = arg;
    struct httpc *h = calloc(1, sizeof *h);
    h->fd = -1;
    char *val = malloc(cfg.value_size + 1), *val64 = malloc(cfg.value_size * 4 / 3 + 8);
    memset(val, 'v', cfg.value_size);
    b64(val, cfg.value_size, val64);
    size_t cap = cfg.value_size * 2 + 512;
    char *req = malloc(cap), *json = malloc(cap);
    int ep = w->id % cfg.neps;
    uint32_t b = BACKOFF_MIN_MS;
    uint32_t attempt_ms = cfg.timeout_ms ? cfg.timeout_ms : 500;
    for (uint64_t i = 0; !stop_flag; i++) {
        char key[32], key64[48];
        int kl = snprintf(key, sizeof key, "ack/%03d/%06llu", w->id, (unsigned long long)(i % 10000));
        b64(key, (size_t)kl, key64);
        int jl = snprintf(json, cap, "{\"key\":\"%s\",\"value\":\"%s\"}", key64, val64);
        for (;;) { /* attempts of this write */
            if (stop_flag)
                break;
            uint64_t deadline = clock_mono_ns() + (uint64_t)attempt_ms * 1000000u;
            const char *e = NULL;
            if (h->fd < 0)
                e = httpc_connect(h, cfg.eps[ep], deadline);
            int rl = snprintf(req, cap,
                              "POST /v3/kv/put HTTP/1.1\r\nHost: %s\r\nContent-Type: application/json\r\n"
                              "Content-Length: %d\r\n\r\n%s",
                              cfg.eps[ep], jl, json);
            if (!e)
                e = httpc_send(h, req, (size_t)rl, deadline);
            int status = 0;
            bool body_error = false;
            unsigned long long term = 0;
            if (!e)
                e = hresponse(h, &status, &body_error, &term, deadline);
            if (!e && status == 200 && !body_error) {
                uint64_t t = clock_mono_ns();
                char who[24];
                snprintf(who, sizeof who, "%llu", term);
                ack(t, who);
                b = BACKOFF_MIN_MS;
                break;
            }
            char detail[192];
            snprintf(detail, sizeof detail, "%s: %s", cfg.eps[ep], e ? e : "HTTP error");
            if (!e)
                snprintf(detail, sizeof detail, "%s: HTTP %d%s", cfg.eps[ep], status,
                         body_error ? " with an error body" : "");
            fail(w, "put failed", detail);
            httpc_close(h);
            ep = (ep + 1) % cfg.neps;
            backoff(w, &b);
        }
    }
    httpc_close(h);
    free(h);
    free(val);
    free(val64);
    free(req);
    free(json);
    return NULL;
}

/* The time of a fault: monotonic (the acks' clock), and realtime, to match
 * the members' logs. */
struct stamp {
    uint64_t mono, real;
};

static struct stamp stamp_now(void)
{
    struct timespec real;
    clock_gettime(CLOCK_REALTIME, &real);
    return (struct stamp){clock_mono_ns(), (uint64_t)real.tv_sec * 1000000000u + (uint64_t)real.tv_nsec};
}

static void stamp_print(struct stamp st)
{
    printf("%llu %llu\n", (unsigned long long)st.mono, (unsigned long long)st.real);
}

static int usage(void)
{
    fprintf(stderr, "usage: ddkv-bench-ack-loop ddkv|etcd ENDPOINTS [--threads N] [--value-size BYTES]\n"
                    "                           [--timeout-ms MS] [--max-s S]\n"
                    "       ddkv-bench-ack-loop kill PID\n"
                    "       ddkv-bench-ack-loop stamp CMD [ARG...]\n"
                    "       ddkv-bench-ack-loop now\n");
    return 2;
}

int main(int argc, char **argv)
{
    if (argc >= 2 && strcmp(argv[1], "now") == 0) {
        printf("%llu\n", (unsigned long long)clock_mono_ns());
        return 0;
    }
    if (argc == 3 && strcmp(argv[1], "kill") == 0) {
        char *end;
        long pid = strtol(argv[2], &end, 10);
        if (*end || pid <= 1)
            return usage();
        struct stamp st = stamp_now();
        if (kill((pid_t)pid, SIGKILL) != 0) {
            perror("kill");
            return 1;
        }
        stamp_print(st);
        return 0;
    }
    if (argc >= 3 && strcmp(argv[1], "stamp") == 0) {
        /* The stamp first (stdout flushed before the command can print),
         * then the command: the fault it makes takes effect a few ms after
         * the stamp, never before it. */
        stamp_print(stamp_now());
        fflush(stdout);
        pid_t pid = fork();
        if (pid < 0) {
            perror("fork");
            return 1;
        }
        if (pid == 0) {
            dup2(2, 1); /* stdout holds the stamp alone */
            execvp(argv[2], argv + 2);
            perror(argv[2]);
            _exit(127);
        }
        int st;
        while (waitpid(pid, &st, 0) < 0)
            if (errno != EINTR) {
                perror("waitpid");
                return 1;
            }
        return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
    }
    if (argc < 3 || (strcmp(argv[1], "ddkv") != 0 && strcmp(argv[1], "etcd") != 0))
        return usage();
    cfg.etcd = strcmp(argv[1], "etcd") == 0;
    char list[MAX_EPS * 130];
    snprintf(list, sizeof list, "%s", argv[2]);
    for (char *save = NULL, *t = strtok_r(list, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
        if (strncmp(t, "http://", 7) == 0)
            t += 7;
        if (cfg.neps == MAX_EPS || strlen(t) >= sizeof cfg.eps[0])
            return usage();
        snprintf(cfg.eps[cfg.neps++], sizeof cfg.eps[0], "%s", t);
    }
    for (int i = 3; i < argc; i += 2) { /* --flag value pairs */
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!v)
            return usage();
        if (strcmp(argv[i], "--threads") == 0)
            cfg.threads = atoi(v);
        else if (strcmp(argv[i], "--value-size") == 0)
            cfg.value_size = (size_t)atol(v);
        else if (strcmp(argv[i], "--timeout-ms") == 0)
            cfg.timeout_ms = (uint32_t)atol(v);
        else if (strcmp(argv[i], "--max-s") == 0)
            cfg.max_s = atof(v);
        else
            return usage();
    }
    if (cfg.neps == 0 || cfg.threads < 1 || cfg.threads > MAX_THREADS || cfg.value_size > 65536 || cfg.max_s <= 0)
        return usage();

    struct sigaction sa = {.sa_handler = on_signal};
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
    static char outbuf[1 << 16];
    setvbuf(stdout, outbuf, _IOFBF, sizeof outbuf);

    struct worker *ws = calloc((size_t)cfg.threads, sizeof *ws);
    uint64_t t0 = clock_mono_ns();
    for (int i = 0; i < cfg.threads; i++) {
        ws[i].id = i;
        ws[i].rng = (t0 ^ ((uint64_t)i * 0x9e3779b97f4a7c15u)) | 1;
        pthread_create(&ws[i].th, NULL, cfg.etcd ? run_etcd : run_ddkv, &ws[i]);
    }
    /* Flush every 20 ms, so the script can see writes resume as they do. */
    uint64_t end = t0 + (uint64_t)(cfg.max_s * 1e9);
    while (!stop_flag && clock_mono_ns() < end) {
        sleep_ms(20);
        pthread_mutex_lock(&out_mu);
        fflush(stdout);
        pthread_mutex_unlock(&out_mu);
    }
    /* Workers may sit in a write for up to its deadline: do not wait for
     * them. Nothing else prints to stdout, so holding the lock makes the
     * last flush whole. */
    pthread_mutex_lock(&out_mu);
    fflush(stdout);
    fprintf(stderr, "ack_loop: %s, %d threads, %.1f s: %llu acknowledged writes, %llu failed attempts\n",
            cfg.etcd ? "etcd" : "ddkv", cfg.threads, (double)(clock_mono_ns() - t0) / 1e9,
            (unsigned long long)atomic_load(&acks), (unsigned long long)atomic_load(&failures));
    fflush(stderr);
    _exit(0);
}
