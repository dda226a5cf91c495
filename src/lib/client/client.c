/* libddkv: endpoints, the connection, the retry policy and the request/reply codec of the client;
 * transactions, leases, and the watch stream that resumes across members. */
#include "ddkv/ddkv.h"

#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "client/client_int.h"
#include "client/core.h"
#include "proto/frame.h"
#include "proto/lamport.h"
#include "proto/msg.h"
#include "proto/version.h"
#include "util/buf.h"
#include "util/clock.h"
#include "util/err.h"
#include "util/tls.h"

#define CLIENT_RECV_CHUNK (64u * 1024)

static const char *const client_err_names[DDKV_ERR__COUNT] = {
    [DDKV_OK] = "ok",
    [DDKV_ERR_NOT_FOUND] = "key not found",
    [DDKV_ERR_BAD_REQUEST] = "bad request",
    [DDKV_ERR_TOO_LARGE] = "too large",
    [DDKV_ERR_UNAVAILABLE] = "cluster unavailable",
    [DDKV_ERR_TIMEOUT] = "timed out",
    [DDKV_ERR_UNKNOWN_OUTCOME] = "outcome unknown: the write may or may not have been applied",
    [DDKV_ERR_PROTOCOL] = "protocol error (garbled reply)",
    [DDKV_ERR_NOMEM] = "out of memory",
    [DDKV_ERR_USAGE] = "invalid argument",
    [DDKV_ERR_COMPACTED] = "revision compacted: older than the history kept",
    [DDKV_ERR_FENCED] = "fenced: the job's token is no longer the claim's",
    [DDKV_ERR_PERMISSION_DENIED] = "permission denied",
};

const char *ddkv_strerror(ddkv_err err)
{
    if ((int)err < 0 || err >= DDKV_ERR__COUNT)
        return "unknown error";
    return client_err_names[err];
}

ddkv_err client_fail(struct ddkv_client *c, ddkv_err code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(c->cc.errmsg, sizeof c->cc.errmsg, fmt, ap);
    va_end(ap);
    return code;
}

void ddkv_free(void *p)
{
    free(p);
}

/* --- lifecycle --- */

static uint64_t random_u64(void)
{
    uint64_t v = 0;
    if (getrandom(&v, sizeof v, 0) == (ssize_t)sizeof v)
        return v;
    int fd = open("/dev/urandom", O_RDONLY | O_CLOEXEC);
    if (fd >= 0) {
        ssize_t n = read(fd, &v, sizeof v);
        close(fd);
        if (n == (ssize_t)sizeof v)
            return v;
    }
    /* No kernel randomness at all: the time and pid still keep the ids of
     * processes on one host apart. */
    return clock_mono_ns() ^ ((uint64_t)getpid() << 32) ^ (uint64_t)(uintptr_t)&v;
}

void ddkv_options_init(struct ddkv_options *o)
{
    memset(o, 0, sizeof *o);
    o->endpoints = DDKV_DEFAULT_ENDPOINTS;
    o->timeout_ms = DDKV_DEFAULT_TIMEOUT_MS;
    o->connect_timeout_ms = DDKV_DEFAULT_CONNECT_TIMEOUT_MS;
    o->max_reply_bytes = DDKV_DEFAULT_MAX_REPLY_BYTES;
}

ddkv_err ddkv_client_new(const struct ddkv_options *opts, ddkv_client **out, char *errbuf,
                         size_t errlen)
{
    char why[200] = "";
    ddkv_err rc = DDKV_ERR_NOMEM;
    struct ddkv_options dflt;
    ddkv_options_init(&dflt);
    if (!opts)
        opts = &dflt;
    *out = NULL;
    struct ddkv_client *c = calloc(1, sizeof *c);
    if (!c) {
        if (errbuf && errlen)
            snprintf(errbuf, errlen, "out of memory");
        return DDKV_ERR_NOMEM;
    }
    c->fd = -1;
    c->max_reply_bytes = opts->max_reply_bytes ? opts->max_reply_bytes : DDKV_DEFAULT_MAX_REPLY_BYTES;
    frame_decoder_init(&c->dec, c->max_reply_bytes);
    rc = cc_init(&c->cc, opts->endpoints, random_u64(), opts->timeout_ms, opts->connect_timeout_ms, why,
                 sizeof why);
    if (rc != DDKV_OK)
        goto fail;
    rc = DDKV_ERR_USAGE;
    c->list_consistency = opts->list_consistency;
    if (c->list_consistency > DDKV_CONSISTENCY_STALE) {
        snprintf(why, sizeof why, "list_consistency %u is not a consistency level", (unsigned)c->list_consistency);
        goto fail;
    }
    if (opts->tls_ca_file) {
        struct errbuf eb;
        if (tls_client_ctx(&c->tls, opts->tls_ca_file, opts->tls_cert_file, opts->tls_key_file, &eb) != ERR_OK) {
            snprintf(why, sizeof why, "tls: %.190s", eb.msg);
            goto fail;
        }
        c->tls_check_name = !opts->tls_skip_name_check;
    }
    if (opts->user && (rc = cc_set_credentials(&c->cc, opts->user, opts->password, why, sizeof why)) != DDKV_OK)
        goto fail;
    *out = c;
    return DDKV_OK;

fail:
    if (errbuf && errlen)
        snprintf(errbuf, errlen, "%s", why);
    ddkv_client_free(c);
    return rc;
}

void client_disconnect(struct ddkv_client *c)
{
    /* No close_notify: the node takes a plain close as the end (it is never
     * mid-message when the client gives up on a connection that matters). */
    SSL_free(c->ssl);
    c->ssl = NULL;
    c->heard = false;
    if (c->fd >= 0)
        close(c->fd);
    c->fd = -1;
    cc_lost(&c->cc); /* a new connection has no identity and no greeting yet */
    /* Bytes of the old connection must never be read as replies on the next. */
    frame_decoder_free(&c->dec);
    frame_decoder_init(&c->dec, c->max_reply_bytes);
}

void ddkv_client_free(ddkv_client *c)
{
    if (!c)
        return;
    client_disconnect(c);
    SSL_CTX_free(c->tls);
    frame_decoder_free(&c->dec);
    cc_free(&c->cc);
    free(c);
}

const char *ddkv_client_errmsg(const ddkv_client *c)
{
    return c->cc.errmsg;
}

const char *ddkv_client_endpoint(const ddkv_client *c)
{
    return c->cc.answered >= 0 ? c->cc.eps[c->cc.answered].text : NULL;
}

uint64_t ddkv_client_lamport(const ddkv_client *c)
{
    return c->cc.clock.now;
}

uint64_t ddkv_client_seen_lamport(const ddkv_client *c)
{
    return c->seen_lamport;
}

uint64_t ddkv_client_id(const ddkv_client *c)
{
    return c->cc.client_id;
}

/* --- the connection --- */

static uint64_t ms_left(uint64_t deadline_ms)
{
    uint64_t now = clock_mono_ms();
    return now < deadline_ms ? deadline_ms - now : 0;
}

static int poll_ms(uint64_t ms)
{
    return ms > 60000 ? 60000 : (int)ms;
}

static void client_sleep(struct ddkv_client *c, uint32_t backoff_ms, uint64_t deadline_ms)
{
    /* Half fixed, half random: spreads clients that failed at the same moment. */
    uint64_t ms = backoff_ms / 2 + cc_rand(&c->cc) % (backoff_ms / 2 + 1);
    uint64_t left = ms_left(deadline_ms);
    if (ms > left)
        ms = left;
    if (ms)
        poll(NULL, 0, poll_ms(ms));
}

/* The TLS handshake on a fresh connection to e, bounded like the connect
 * (until): a node that accepts and then says nothing cannot hold the client
 * past it. Returns the session, or NULL with errmsg set. */
static SSL *client_tls_handshake(struct ddkv_client *c, const struct cc_endpoint *e, int fd, uint64_t until)
{
    SSL *ssl = SSL_new(c->tls);
    if (!ssl || tls_set_socket(ssl, fd) != ERR_OK || (c->tls_check_name && tls_expect_host(ssl, e->host) != ERR_OK)) {
        SSL_free(ssl);
        client_fail(c, DDKV_ERR_NOMEM, "out of memory for a TLS session");
        return NULL;
    }
    for (;;) {
        ERR_clear_error();
        int r = SSL_connect(ssl);
        if (r == 1)
            return ssl;
        int err = SSL_get_error(ssl, r);
        short ev = err == SSL_ERROR_WANT_READ ? POLLIN : err == SSL_ERROR_WANT_WRITE ? POLLOUT : 0;
        uint64_t left = ms_left(until);
        if (ev && left == 0) {
            client_fail(c, DDKV_ERR_UNAVAILABLE, "TLS handshake with %s not completed in time", e->text);
        } else if (!ev) {
            char why[160];
            bool cert = SSL_get_verify_result(ssl) != X509_V_OK;
            tls_error_text(ssl, NULL, 0, "the node closed the connection", why, sizeof why);
            /* A plain port answers a ClientHello with a frame, or hangs up. */
            client_fail(c, DDKV_ERR_UNAVAILABLE, "TLS handshake with %s failed: %s%s", e->text, why,
                        cert || strstr(why, "alert") ? "" : " (is the node's client port plain TCP?)");
        } else {
            struct pollfd p = {.fd = fd, .events = ev};
            poll(&p, 1, poll_ms(left));
            continue;
        }
        SSL_free(ssl);
        return NULL;
    }
}

/* One connection attempt to eps[i], bounded by the connect timeout and the
 * deadline. On failure errmsg says why. */
static int client_connect_one(struct ddkv_client *c, size_t i, uint64_t deadline_ms)
{
    const struct cc_endpoint *e = &c->cc.eps[i];
    struct addrinfo hints, *res = NULL;
    memset(&hints, 0, sizeof hints);
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_NUMERICSERV;
    int grc = getaddrinfo(e->host, e->port, &hints, &res);
    if (grc != 0) {
        client_fail(c, DDKV_ERR_UNAVAILABLE, "resolve %s: %s", e->text, gai_strerror(grc));
        return -1;
    }
    uint64_t until = clock_mono_ms() + c->cc.connect_timeout_ms;
    if (until > deadline_ms)
        until = deadline_ms;
    int fd = -1;
    for (const struct addrinfo *ai = res; ai; ai = ai->ai_next) {
        fd = socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, ai->ai_protocol);
        if (fd < 0) {
            client_fail(c, DDKV_ERR_UNAVAILABLE, "socket for %s: %s", e->text, strerror(errno));
            continue;
        }
        int err = 0;
        if (connect(fd, ai->ai_addr, ai->ai_addrlen) != 0) {
            err = errno;
            if (err == EINPROGRESS) {
                struct pollfd p = {.fd = fd, .events = POLLOUT};
                int pr;
                do
                    pr = poll(&p, 1, poll_ms(ms_left(until)));
                while (pr < 0 && errno == EINTR && ms_left(until) > 0);
                socklen_t len = sizeof err;
                if (pr <= 0)
                    err = ETIMEDOUT;
                else if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0)
                    err = errno;
            }
        }
        if (err == 0)
            break;
        client_fail(c, DDKV_ERR_UNAVAILABLE, "connect %s: %s", e->text, strerror(err));
        close(fd);
        fd = -1;
        if (ms_left(until) == 0)
            break;
    }
    freeaddrinfo(res);
    if (fd < 0)
        return -1;
    /* Requests are single small frames that wait for their reply: Nagle would
     * only add delay. */
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    SSL *ssl = NULL;
    if (c->tls && !(ssl = client_tls_handshake(c, e, fd, until))) {
        close(fd);
        return -1;
    }
    client_disconnect(c);
    c->fd = fd;
    c->ssl = ssl;
    c->cc.cur = i;
    return 0;
}

/* Try every endpoint once, starting with the current one. */
static int client_connect_any(struct ddkv_client *c, uint64_t deadline_ms)
{
    for (size_t k = 0; k < c->cc.n_eps && ms_left(deadline_ms) > 0; k++) {
        size_t i = (c->cc.cur + k) % c->cc.n_eps;
        if (client_connect_one(c, i, deadline_ms) == 0)
            return 0;
    }
    return -1;
}

/* Move on to the next endpoint after a failure of this one. */
static void client_rotate(struct ddkv_client *c)
{
    client_disconnect(c);
    c->cc.cur = (c->cc.cur + 1) % c->cc.n_eps;
}

/* Take the next complete message off the decoder: ERR_OK (m filled, caller
 * frees), ERR_AGAIN, or ATTEMPT_GARBLED/NOMEM via *how. */
static int client_next_msg(struct ddkv_client *c, struct msg *m, enum attempt *how)
{
    const uint8_t *body;
    size_t len;
    int rc = frame_decoder_next(&c->dec, &body, &len);
    if (rc == ERR_AGAIN)
        return ERR_AGAIN;
    if (rc == ERR_TOO_LARGE) {
        client_fail(c, DDKV_ERR_PROTOCOL, "%s sent a %u-byte frame, over the client's %u-byte limit",
                    c->cc.eps[c->cc.cur].text, (unsigned)c->dec.bad_len, (unsigned)c->max_reply_bytes);
        *how = ATTEMPT_GARBLED;
        return rc;
    }
    if (rc != ERR_OK) {
        *how = rc == ERR_NOMEM ? ATTEMPT_NOMEM : ATTEMPT_GARBLED;
        client_fail(c, DDKV_ERR_PROTOCOL, "reading from %s: %s", c->cc.eps[c->cc.cur].text, err_str(rc));
        return rc;
    }
    if (cc_decode(&c->cc, body, len, m) != ERR_OK) {
        *how = ATTEMPT_GARBLED;
        return ERR_BAD_INPUT;
    }
    return ERR_OK;
}

/* recv/send on the connection, through TLS when it has it: bytes moved, 0
 * when the node closed (recv), or -1 with errno (EAGAIN: wait for
 * c->tls_want; EPROTO: a TLS failure, c->io_why says which). */
static ssize_t client_io(struct ddkv_client *c, void *data, size_t n, bool writing)
{
    c->tls_want = writing ? POLLOUT : POLLIN;
    if (!c->ssl)
        return writing ? send(c->fd, data, n, MSG_NOSIGNAL) : recv(c->fd, data, n, 0);
    ERR_clear_error();
    int r = writing ? SSL_write(c->ssl, data, (int)n) : SSL_read(c->ssl, data, (int)n);
    if (r > 0)
        return r;
    int err = SSL_get_error(c->ssl, r);
    if (err == SSL_ERROR_WANT_READ || err == SSL_ERROR_WANT_WRITE) {
        c->tls_want = err == SSL_ERROR_WANT_READ ? POLLIN : POLLOUT;
        errno = EAGAIN;
        return -1;
    }
    if (err == SSL_ERROR_ZERO_RETURN || (err == SSL_ERROR_SYSCALL && r == 0 && ERR_peek_error() == 0))
        return 0;
    if (err == SSL_ERROR_SYSCALL && ERR_peek_error() == 0)
        return -1; /* errno says what */
    /* An alert before the node said anything: it refused the handshake (TLS
     * 1.3 tells a client whose certificate it refuses only now), so no
     * request on this connection was read. */
    c->io_refused = !c->heard && tls_queue_peer_alert();
    tls_error_text(c->ssl, NULL, 0, "TLS failure", c->io_why, sizeof c->io_why);
    errno = EPROTO;
    return -1;
}

static const char *client_io_error(const struct ddkv_client *c)
{
    return errno == EPROTO && c->ssl ? c->io_why : strerror(errno);
}

/* Read what the socket has into the decoder, waiting at most wait_ms.
 * Returns 1 if bytes arrived, 0 if none did in time, -1 if the connection is
 * gone or the bytes were refused (errmsg set, *how says which). */
static int client_fill(struct ddkv_client *c, uint64_t wait_ms, enum attempt *how)
{
    /* TLS may hold decrypted bytes the socket no longer shows. */
    if (!c->ssl || SSL_pending(c->ssl) == 0) {
        struct pollfd p = {.fd = c->fd, .events = c->ssl ? c->tls_want : POLLIN};
        int pr = poll(&p, 1, poll_ms(wait_ms));
        if (pr < 0 && errno != EINTR) {
            client_fail(c, DDKV_ERR_UNAVAILABLE, "poll: %s", strerror(errno));
            *how = ATTEMPT_BROKEN;
            return -1;
        }
        if (pr <= 0)
            return 0;
    }
    uint8_t chunk[CLIENT_RECV_CHUNK];
    ssize_t n = client_io(c, chunk, sizeof chunk, false);
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
        return 0;
    if (n < 0 && errno == EPROTO && c->io_refused) {
        client_fail(c, DDKV_ERR_UNAVAILABLE, "%s refused the TLS connection: %s%s", c->cc.eps[c->cc.cur].text, c->io_why,
                    strstr(c->io_why, "certificate required") ? " (give --tls-cert and --tls-key)" : "");
        *how = ATTEMPT_REFUSED;
        return -1;
    }
    if (n <= 0) {
        if (n == 0)
            client_fail(c, DDKV_ERR_UNAVAILABLE, "%s closed the connection%s", c->cc.eps[c->cc.cur].text,
                        frame_decoder_pending(&c->dec) ? " in the middle of a reply" : "");
        else
            client_fail(c, DDKV_ERR_UNAVAILABLE, "reading from %s: %s", c->cc.eps[c->cc.cur].text,
                        client_io_error(c));
        *how = ATTEMPT_BROKEN;
        return -1;
    }
    if (!c->ssl && !c->heard && tls_looks_like_record(chunk, (size_t)n)) {
        /* A TLS node's answer to a plain client is an alert record. */
        client_fail(c, DDKV_ERR_UNAVAILABLE,
                    "%s speaks TLS: connect with --tls-ca FILE (env DDKV_TLS_CA), the cluster's CA",
                    c->cc.eps[c->cc.cur].text);
        *how = ATTEMPT_REFUSED;
        return -1;
    }
    c->heard = true;
    int rc = frame_decoder_feed(&c->dec, chunk, (size_t)n);
    if (rc == ERR_OK)
        return 1;
    if (rc == ERR_TOO_LARGE)
        client_fail(c, DDKV_ERR_PROTOCOL, "%s sent a %u-byte frame, over the client's %u-byte limit",
                    c->cc.eps[c->cc.cur].text, (unsigned)c->dec.bad_len, (unsigned)c->max_reply_bytes);
    *how = rc == ERR_NOMEM ? ATTEMPT_NOMEM : ATTEMPT_GARBLED;
    return -1;
}

/* A kept-open connection may have been closed by the node while idle (restart,
 * idle timeout). Find out before sending, so a write is not sent into a dead
 * socket and reported as of unknown outcome when it was never received.
 * Anything else that arrived meanwhile answers nothing in flight: dropped. */
static bool client_conn_alive(struct ddkv_client *c)
{
    enum attempt how;
    for (;;) {
        int r = client_fill(c, 0, &how);
        if (r < 0)
            return false;
        struct msg m;
        int rc;
        while ((rc = client_next_msg(c, &m, &how)) == ERR_OK)
            msg_free(&m);
        if (rc != ERR_AGAIN)
            return false;
        if (r == 0)
            return true;
    }
}

static int client_encode(struct ddkv_client *c, struct cc_call *k)
{
    return cc_encode(&c->cc, k);
}

/* Send the encoded request. Returns ATTEMPT_REPLY when every byte has been
 * handed to the kernel: from then on the node may act on it. */
static enum attempt client_send(struct ddkv_client *c, uint64_t deadline_ms)
{
    size_t off = 0;
    while (off < c->cc.out.len) {
        ssize_t n = client_io(c, c->cc.out.data + off, c->cc.out.len - off, true);
        if (n > 0) {
            off += (size_t)n;
            continue;
        }
        if (n == 0 || (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)) {
            client_fail(c, DDKV_ERR_UNAVAILABLE, "sending to %s: %s", c->cc.eps[c->cc.cur].text,
                        n == 0 ? "the node closed the connection" : client_io_error(c));
            return ATTEMPT_BROKEN;
        }
        uint64_t left = ms_left(deadline_ms);
        if (left == 0) {
            client_fail(c, DDKV_ERR_TIMEOUT, "timed out sending to %s", c->cc.eps[c->cc.cur].text);
            return ATTEMPT_TIMEOUT;
        }
        struct pollfd p = {.fd = c->fd, .events = c->tls_want};
        poll(&p, 1, poll_ms(left));
    }
    return ATTEMPT_REPLY;
}

/* Wait for the reply to k->rid. Replies to other ids are stale (an attempt this
 * connection gave up on) and dropped. An ERROR with id 0 is the node refusing
 * the connection's last frame before it could read an id: with one request in
 * flight, that frame was ours. */
static enum attempt client_recv(struct ddkv_client *c, struct cc_call *k, uint64_t deadline_ms)
{
    enum attempt how = ATTEMPT_GARBLED;
    for (;;) {
        int rc = client_next_msg(c, &k->reply, &how);
        if (rc == ERR_OK) {
            if (k->reply.request_id == k->rid ||
                (k->reply.request_id == 0 && k->reply.type == DDKV_MSG_ERROR))
                return ATTEMPT_REPLY;
            msg_free(&k->reply);
            continue;
        }
        if (rc != ERR_AGAIN)
            return how;
        uint64_t left = ms_left(deadline_ms);
        if (left == 0) {
            client_fail(c, DDKV_ERR_TIMEOUT, "no reply from %s within %u ms", c->cc.eps[c->cc.cur].text,
                        (unsigned)c->cc.timeout_ms);
            return ATTEMPT_TIMEOUT;
        }
        if (client_fill(c, left, &how) < 0)
            return how;
    }
}

/* Follow NOT_LEADER to the address the node named (the core's rule); the
 * connection is closed when it is followed. */
static bool client_redirect(struct ddkv_client *c, const uint8_t *addr, size_t n)
{
    if (!cc_redirect(&c->cc, addr, n))
        return false;
    client_disconnect(c);
    return true;
}

static void client_backoff(struct ddkv_client *c, uint32_t *backoff_ms, uint64_t deadline_ms)
{
    client_sleep(c, *backoff_ms, deadline_ms);
    *backoff_ms = *backoff_ms * 2 > CC_BACKOFF_MAX_MS ? CC_BACKOFF_MAX_MS : *backoff_ms * 2;
}

/* Authenticate the open connection with the client's credentials, if it has
 * any and the connection has not been yet (the watch's connection; requests
 * log in through the core's step machine). CC_LOGIN_RETRY: the connection or
 * the member failed (it is closed; try another); CC_LOGIN_REFUSED: *err says
 * how (final). */
static enum cc_login client_login(struct ddkv_client *c, uint64_t deadline_ms, ddkv_err *err)
{
    if (!c->cc.user || c->cc.authed)
        return CC_LOGIN_OK;
    struct cc_field f[] = {
        {.kind = CC_BIN, .p = c->cc.user, .n = strlen(c->cc.user)},
        {.kind = CC_BIN, .p = c->cc.password, .n = strlen(c->cc.password)},
    };
    struct cc_call k = {.type = DDKV_MSG_AUTH, .reply_type = DDKV_MSG_AUTHED, .f = f, .nf = 2};
    if (client_encode(c, &k) != ERR_OK) {
        *err = client_fail(c, DDKV_ERR_NOMEM, "out of memory encoding AUTH");
        return CC_LOGIN_REFUSED;
    }
    if (client_send(c, deadline_ms) != ATTEMPT_REPLY || client_recv(c, &k, deadline_ms) != ATTEMPT_REPLY) {
        client_disconnect(c);
        return CC_LOGIN_RETRY;
    }
    enum cc_login how = cc_login_answer(&c->cc, &k.reply, err);
    msg_free(&k.reply);
    if (how != CC_LOGIN_OK)
        client_disconnect(c);
    return how;
}

void ddkv_client_versions(const ddkv_client *c, uint64_t *node_version, uint64_t *cluster_version)
{
    *node_version = c->cc.node_version;
    *cluster_version = c->cc.cluster_version;
}

/* Wait for frames and hand each to the core until it wants something else. */
static enum cc_do client_wait(struct ddkv_client *c, struct cc_call *k)
{
    for (;;) {
        const uint8_t *body;
        size_t len;
        enum attempt how = ATTEMPT_GARBLED;
        int rc = frame_decoder_next(&c->dec, &body, &len);
        if (rc == ERR_OK) {
            enum cc_do d = cc_frame(&c->cc, k, body, len, clock_mono_ms());
            if (d != CC_DO_RECV)
                return d;
            continue;
        }
        if (rc == ERR_TOO_LARGE) {
            client_fail(c, DDKV_ERR_PROTOCOL, "%s sent a %u-byte frame, over the client's %u-byte limit",
                        cc_cur_text(&c->cc), (unsigned)c->dec.bad_len, (unsigned)c->max_reply_bytes);
            return cc_failed(&c->cc, k, CC_IO_GARBLED, clock_mono_ms());
        }
        if (rc != ERR_AGAIN) {
            client_fail(c, DDKV_ERR_PROTOCOL, "reading from %s: %s", cc_cur_text(&c->cc), err_str(rc));
            return cc_failed(&c->cc, k, rc == ERR_NOMEM ? CC_IO_NOMEM : CC_IO_GARBLED, clock_mono_ms());
        }
        uint64_t left = ms_left(k->until_ms); /* the attempt's deadline (the core's) */
        if (left == 0) {
            cc_no_reply(&c->cc, k);
            return cc_failed(&c->cc, k, CC_IO_TIMEOUT, clock_mono_ms());
        }
        if (client_fill(c, left, &how) < 0)
            return cc_failed(&c->cc, k, (enum cc_io)how, clock_mono_ms());
    }
}

/* Run one request to completion: the core decides (connect, greet, log in,
 * follow the leader, retry what is safe, until the deadline); this does the
 * I/O and the waiting. On DDKV_OK k->reply holds the reply (type
 * k->reply_type); the caller msg_frees it. */
ddkv_err client_call(struct ddkv_client *c, struct cc_call *k)
{
    uint64_t t0 = 0;
    bool fresh = false; /* connected during this call, with no wait since */
    enum cc_do d = cc_start(&c->cc, k, clock_mono_ms());
    for (;;) {
        if (!c->cc.up && c->fd >= 0)
            client_disconnect(c); /* the core gave up on this connection */
        switch (d) {
        case CC_DO_DONE:
            if (k->err == DDKV_OK)
                k->rtt_ns = clock_mono_ns() - t0;
            return k->err;
        case CC_DO_SLEEP: {
            uint64_t left = ms_left(k->until_ms);
            if (left)
                poll(NULL, 0, poll_ms(left));
            fresh = false;
            d = cc_woke(&c->cc, k, clock_mono_ms());
            break;
        }
        case CC_DO_CONNECT:
            if (client_connect_one(c, c->cc.cur, k->until_ms) == 0) {
                fresh = true;
                d = cc_connected(&c->cc, k, clock_mono_ms());
            } else {
                d = cc_connect_failed(&c->cc, k, clock_mono_ms());
            }
            break;
        case CC_DO_SEND: {
            /* A kept-open connection the node closed while idle (restart,
             * idle timeout) is found out before a frame goes into it, so a
             * write is not sent into a dead socket and reported in doubt:
             * reconnect to the same member. A connection made during this
             * call is checked again only after a wait, so a member that
             * closes every connection is met with backoffs, not a loop. */
            if (!fresh && !client_conn_alive(c)) {
                client_disconnect(c);
                d = cc_woke(&c->cc, k, clock_mono_ms());
                break;
            }
            if (k->phase == CC_P_REQUEST)
                t0 = clock_mono_ns();
            enum attempt a = client_send(c, k->until_ms);
            d = a == ATTEMPT_REPLY ? cc_sent(&c->cc, k, clock_mono_ms())
                                   : cc_failed(&c->cc, k, (enum cc_io)a, clock_mono_ms());
            break;
        }
        case CC_DO_RECV:
            d = client_wait(c, k);
            break;
        }
    }
}

/* Fail an operation whose reply could not be understood. */
ddkv_err client_bad_reply(struct ddkv_client *c, const struct cc_call *k, const char *what)
{
    client_disconnect(c);
    if (k->mutates)
        return client_fail(c, DDKV_ERR_UNKNOWN_OUTCOME,
                           "garbled %s from %s (%s); the write's outcome is unknown",
                           msg_type_name(k->reply_type), c->cc.eps[c->cc.cur].text, what);
    return client_fail(c, DDKV_ERR_PROTOCOL, "garbled %s from %s (%s)", msg_type_name(k->reply_type),
                       c->cc.eps[c->cc.cur].text, what);
}

void client_saw(struct ddkv_client *c, uint64_t lamport)
{
    if (lamport > c->seen_lamport && lamport < DDKV_LAMPORT_MAX)
        c->seen_lamport = lamport;
}

/* --- operations --- */

void ddkv_pong_free(struct ddkv_pong *p)
{
    free(p->node);
    free(p->leader);
    memset(p, 0, sizeof *p);
}

ddkv_err ddkv_ping(ddkv_client *c, struct ddkv_pong *out)
{
    memset(out, 0, sizeof *out);
    struct cc_call k = {.type = DDKV_MSG_PING, .reply_type = DDKV_MSG_PONG};
    ddkv_err rc = client_call(c, &k);
    if (rc != DDKV_OK)
        return rc;
    const uint8_t *node, *leader = NULL;
    size_t node_len, leader_len = 0;
    if (msg_bytes(&k.reply, 0, &node, &node_len) != ERR_OK ||
        (!msg_is_nil(&k.reply, 1) && msg_bytes(&k.reply, 1, &leader, &leader_len) != ERR_OK) ||
        msg_u64(&k.reply, 2, &out->term) != ERR_OK) {
        rc = client_bad_reply(c, &k, "expected [node, leader|nil, term]");
        goto fail;
    }
    out->node = dup_bytes(node, node_len);
    out->leader = leader ? dup_bytes(leader, leader_len) : NULL;
    if (!out->node || (leader && !out->leader)) {
        rc = client_fail(c, DDKV_ERR_NOMEM, "out of memory");
        goto fail;
    }
    out->rtt_ns = k.rtt_ns;
    msg_free(&k.reply);
    return DDKV_OK;

fail:
    msg_free(&k.reply);
    ddkv_pong_free(out);
    return rc;
}

ddkv_err ddkv_read(ddkv_client *c, const void *key, size_t key_len,
                   enum ddkv_consistency consistency, uint64_t after_lamport, struct ddkv_value *out)
{
    memset(out, 0, sizeof *out);
    if (!key && key_len)
        return client_fail(c, DDKV_ERR_USAGE, "key is NULL");
    if (consistency != DDKV_CONSISTENCY_LINEARIZABLE && consistency != DDKV_CONSISTENCY_CAUSAL &&
        consistency != DDKV_CONSISTENCY_STALE)
        return client_fail(c, DDKV_ERR_USAGE, "unknown consistency %d", (int)consistency);
    if (consistency == DDKV_CONSISTENCY_CAUSAL && after_lamport == 0)
        after_lamport = c->seen_lamport;
    struct cc_field f[] = {
        {.kind = CC_BIN, .p = key, .n = key_len},
        {.kind = CC_U64, .u = (uint64_t)consistency},
        {.kind = CC_U64, .u = after_lamport},
    };
    struct cc_call k = {.type = DDKV_MSG_READ, .reply_type = DDKV_MSG_VALUE, .f = f, .nf = 3};
    ddkv_err rc = client_call(c, &k);
    if (rc != DDKV_OK)
        return rc;
    const uint8_t *v;
    size_t vlen;
    if (msg_bytes(&k.reply, 1, &v, &vlen) != ERR_OK ||
        msg_u64(&k.reply, 2, &out->create_rev) != ERR_OK ||
        msg_u64(&k.reply, 3, &out->mod_rev) != ERR_OK ||
        msg_u64(&k.reply, 4, &out->version) != ERR_OK ||
        msg_u64(&k.reply, 5, &out->lamport) != ERR_OK) {
        rc = client_bad_reply(c, &k, "expected [key, value, create_rev, mod_rev, version, lamport]");
        goto fail;
    }
    out->value = dup_bytes(v, vlen);
    if (!out->value) {
        rc = client_fail(c, DDKV_ERR_NOMEM, "out of memory for a %zu-byte value", vlen);
        goto fail;
    }
    out->len = vlen;
    client_saw(c, out->lamport);
    msg_free(&k.reply);
    return DDKV_OK;

fail:
    msg_free(&k.reply);
    memset(out, 0, sizeof *out);
    return rc;
}

/* WRITTEN_AT and DELETED share their fields: [lamport, revision]. */
ddkv_err client_change(struct ddkv_client *c, struct cc_call *k, struct ddkv_write_result *out)
{
    ddkv_err rc = client_call(c, k);
    if (rc != DDKV_OK)
        return rc;
    if (msg_u64(&k->reply, 0, &out->lamport) != ERR_OK ||
        msg_u64(&k->reply, 1, &out->revision) != ERR_OK) {
        rc = client_bad_reply(c, k, "expected [lamport, revision]");
        msg_free(&k->reply);
        memset(out, 0, sizeof *out);
        return rc;
    }
    client_saw(c, out->lamport);
    msg_free(&k->reply);
    return DDKV_OK;
}

ddkv_err ddkv_write(ddkv_client *c, const void *key, size_t key_len, const void *value,
                    size_t value_len, uint64_t lease_id, struct ddkv_write_result *out)
{
    memset(out, 0, sizeof *out);
    if ((!key && key_len) || (!value && value_len))
        return client_fail(c, DDKV_ERR_USAGE, "key or value is NULL");
    /* One seq per logical write, kept across its retries: that is what lets a
     * node recognise a retry as the same write. */
    struct cc_field f[] = {
        {.kind = CC_BIN, .p = key, .n = key_len},
        {.kind = CC_BIN, .p = value, .n = value_len},
        {.kind = CC_U64, .u = lease_id},
        {.kind = CC_U64, .u = c->cc.client_id},
        {.kind = CC_U64, .u = ++c->cc.seq},
    };
    struct cc_call k = {.type = DDKV_MSG_WRITE, .reply_type = DDKV_MSG_WRITTEN_AT, .mutates = true,
                     .f = f, .nf = 5};
    return client_change(c, &k, out);
}

ddkv_err ddkv_delete(ddkv_client *c, const void *key, size_t key_len, struct ddkv_write_result *out)
{
    memset(out, 0, sizeof *out);
    if (!key && key_len)
        return client_fail(c, DDKV_ERR_USAGE, "key is NULL");
    struct cc_field f[] = {
        {.kind = CC_BIN, .p = key, .n = key_len},
        {.kind = CC_U64, .u = c->cc.client_id},
        {.kind = CC_U64, .u = ++c->cc.seq},
    };
    struct cc_call k = {.type = DDKV_MSG_DELETE, .reply_type = DDKV_MSG_DELETED, .mutates = true,
                     .f = f, .nf = 3};
    return client_change(c, &k, out);
}

ddkv_err ddkv_delete_prefix(ddkv_client *c, const void *prefix, size_t prefix_len, uint64_t *deleted,
                            struct ddkv_write_result *out)
{
    memset(out, 0, sizeof *out);
    *deleted = 0;
    if (!prefix && prefix_len)
        return client_fail(c, DDKV_ERR_USAGE, "prefix is NULL");
    for (;;) {
        struct cc_field f[] = {
            {.kind = CC_BIN, .p = prefix, .n = prefix_len},
            {.kind = CC_U64, .u = 10000},
            {.kind = CC_U64, .u = c->cc.client_id},
            {.kind = CC_U64, .u = ++c->cc.seq},
        };
        struct cc_call k = {.type = DDKV_MSG_DELETE_PREFIX, .reply_type = DDKV_MSG_DELETED, .mutates = true,
                         .f = f, .nf = 4};
        ddkv_err rc = client_call(c, &k);
        if (rc == DDKV_ERR_BAD_REQUEST && c->cc.node_version && c->cc.node_version < DDKV_VERSION_0_2_0)
            /* A leader of a release before DELETE_PREFIX: it knows no such
             * message, so the cluster version cannot have it either. */
            return client_fail(c, DDKV_ERR_BAD_REQUEST,
                               "deleting by prefix needs cluster version 0.2.0; the leader (%s) runs ddkv 0.1.0, so "
                               "the cluster runs at 0.1.0 until every member runs 0.2.0 or later (README, Upgrading)",
                               c->cc.answered >= 0 ? c->cc.eps[c->cc.answered].text : c->cc.eps[c->cc.cur].text);
        if (rc != DDKV_OK)
            return rc;
        uint64_t count = 0;
        bool more = false;
        const msgpack_object *mo = k.reply.nf > 3 ? &k.reply.f[3] : NULL;
        if (msg_u64(&k.reply, 0, &out->lamport) != ERR_OK || msg_u64(&k.reply, 1, &out->revision) != ERR_OK ||
            msg_u64(&k.reply, 2, &count) != ERR_OK || !mo || mo->type != MSGPACK_OBJECT_BOOLEAN) {
            rc = client_bad_reply(c, &k, "expected [lamport, revision, count, more]");
            msg_free(&k.reply);
            return rc;
        }
        more = mo->via.boolean;
        client_saw(c, out->lamport);
        msg_free(&k.reply);
        *deleted += count;
        if (!more || count == 0)
            return DDKV_OK;
    }
}

void ddkv_list_free(struct ddkv_list *l)
{
    for (size_t i = 0; i < l->n; i++)
        free(l->entries[i].key); /* the value shares the key's allocation */
    free(l->entries);
    memset(l, 0, sizeof *l);
}

/* Copy one [key, value, create_rev, mod_rev, version, lamport] entry. */
static int list_entry_decode(const msgpack_object *o, struct ddkv_entry *e)
{
    const uint8_t *kp, *vp;
    size_t kn, vn;
    if (o->type != MSGPACK_OBJECT_ARRAY || o->via.array.size < 6)
        return ERR_BAD_INPUT;
    const msgpack_object *a = o->via.array.ptr;
    if (mpo_bytes(&a[0], &kp, &kn) || mpo_bytes(&a[1], &vp, &vn) || mpo_u64(&a[2], &e->create_rev) ||
        mpo_u64(&a[3], &e->mod_rev) || mpo_u64(&a[4], &e->version) || mpo_u64(&a[5], &e->lamport))
        return ERR_BAD_INPUT;
    /* Both are bounded by the reply frame, so kn + vn + 2 cannot overflow. */
    uint8_t *mem = malloc(kn + vn + 2);
    if (!mem)
        return ERR_NOMEM;
    memcpy(mem, kp, kn);
    mem[kn] = 0;
    memcpy(mem + kn + 1, vp, vn);
    mem[kn + 1 + vn] = 0;
    e->key = mem;
    e->key_len = kn;
    e->value = mem + kn + 1;
    e->value_len = vn;
    return ERR_OK;
}

ddkv_err ddkv_list(ddkv_client *c, const void *prefix, size_t prefix_len, const void *start_after,
                   size_t start_after_len, uint32_t limit, struct ddkv_list *out)
{
    memset(out, 0, sizeof *out);
    if ((!prefix && prefix_len) || (!start_after && start_after_len))
        return client_fail(c, DDKV_ERR_USAGE, "prefix or start_after is NULL");
    struct cc_field f[] = {
        {.kind = CC_BIN, .p = prefix, .n = prefix_len},
        {.kind = CC_BIN, .p = start_after, .n = start_after_len},
        {.kind = CC_U64, .u = limit},
        {.kind = CC_U64, .u = c->list_consistency},
        {.kind = CC_U64, .u = c->list_consistency == DDKV_CONSISTENCY_CAUSAL ? c->seen_lamport : 0},
    };
    struct cc_call k = {.type = DDKV_MSG_LIST, .reply_type = DDKV_MSG_LIST_RESULT, .f = f, .nf = 5};
    ddkv_err rc = client_call(c, &k);
    if (rc != DDKV_OK)
        return rc;
    const struct msg *m = &k.reply;
    if (m->nf < 3 || m->f[0].type != MSGPACK_OBJECT_ARRAY || m->f[1].type != MSGPACK_OBJECT_BOOLEAN ||
        msg_u64(m, 2, &out->revision) != ERR_OK) {
        rc = client_bad_reply(c, &k, "expected [entries, more, revision]");
        goto fail;
    }
    uint32_t n = m->f[0].via.array.size;
    if (n) {
        out->entries = calloc(n, sizeof *out->entries);
        if (!out->entries) {
            rc = client_fail(c, DDKV_ERR_NOMEM, "out of memory for %u entries", (unsigned)n);
            goto fail;
        }
    }
    for (uint32_t i = 0; i < n; i++) {
        int erc = list_entry_decode(&m->f[0].via.array.ptr[i], &out->entries[i]);
        if (erc == ERR_NOMEM) {
            rc = client_fail(c, DDKV_ERR_NOMEM, "out of memory");
            goto fail;
        }
        if (erc != ERR_OK) {
            rc = client_bad_reply(c, &k, "an entry is not [key, value, create_rev, mod_rev, version, lamport]");
            goto fail;
        }
        out->n++;
        client_saw(c, out->entries[i].lamport);
    }
    out->more = mpo_bool(&m->f[1]);
    msg_free(&k.reply);
    return DDKV_OK;

fail:
    msg_free(&k.reply);
    ddkv_list_free(out);
    return rc;
}

ddkv_err ddkv_list_all(ddkv_client *c, const void *prefix, size_t prefix_len, uint64_t max_entries,
                       struct ddkv_list *out)
{
    memset(out, 0, sizeof *out);
    struct ddkv_list page = {0};
    ddkv_err rc;
    for (;;) {
        uint64_t want = DDKV_DEFAULT_LIST_LIMIT;
        if (max_entries && max_entries - out->n < want)
            want = max_entries - out->n;
        const struct ddkv_entry *last = out->n ? &out->entries[out->n - 1] : NULL;
        rc = ddkv_list(c, prefix, prefix_len, last ? last->key : NULL, last ? last->key_len : 0,
                       (uint32_t)want, &page);
        if (rc != DDKV_OK)
            goto fail;
        if (page.n == 0 && page.more) {
            rc = client_fail(c, DDKV_ERR_PROTOCOL, "%s returned an empty LIST page with more set",
                             c->cc.eps[c->cc.cur].text);
            goto fail;
        }
        /* A node that ignores the limit: keep what was asked for. */
        bool cut = page.n > want;
        size_t take = cut ? (size_t)want : page.n;
        bool more = page.more || cut;
        uint64_t revision = page.revision;
        if (take) {
            struct ddkv_entry *grown = realloc(out->entries, (out->n + take) * sizeof *grown);
            if (!grown) {
                rc = client_fail(c, DDKV_ERR_NOMEM, "out of memory for %zu entries", out->n + take);
                goto fail;
            }
            out->entries = grown;
            memcpy(out->entries + out->n, page.entries, take * sizeof *grown);
            out->n += take;
            /* The moved entries now belong to out: only the rest is freed. */
            for (size_t i = take; i < page.n; i++)
                free(page.entries[i].key);
            free(page.entries);
            memset(&page, 0, sizeof page);
        } else {
            ddkv_list_free(&page);
        }
        out->more = more;
        out->revision = revision;
        if (!out->more || (max_entries && out->n >= max_entries))
            return DDKV_OK;
    }

fail:
    ddkv_list_free(&page);
    ddkv_list_free(out);
    return rc;
}

/* Status maps are read leniently: a missing field is 0 or NULL, so a newer or
 * older node still gives a status; a field of the wrong type is garbled. */
static int status_str(const msgpack_object *map, const char *key, char **out)
{
    const msgpack_object *o = mpo_map_get(map, key);
    const uint8_t *p;
    size_t n;
    if (!o || o->type == MSGPACK_OBJECT_NIL)
        return ERR_OK;
    if (mpo_bytes(o, &p, &n) != ERR_OK)
        return ERR_BAD_INPUT;
    *out = dup_bytes(p, n);
    return *out ? ERR_OK : ERR_NOMEM;
}

static int status_u64(const msgpack_object *map, const char *key, uint64_t *out)
{
    const msgpack_object *o = mpo_map_get(map, key);
    if (!o || o->type == MSGPACK_OBJECT_NIL)
        return ERR_OK;
    return mpo_u64(o, out);
}

void ddkv_status_free(struct ddkv_status *s)
{
    free(s->name);
    free(s->role);
    free(s->leader);
    free(s->client_addr);
    for (size_t i = 0; i < s->n_members; i++) {
        free(s->members[i].name);
        free(s->members[i].client_addr);
        free(s->members[i].peer_addr);
        free(s->members[i].role);
        free(s->members[i].version);
    }
    free(s->version);
    free(s->cluster_version);
    free(s->members);
    free(s->cluster_id);
    memset(s, 0, sizeof *s);
}

static int status_decode(const msgpack_object *map, struct ddkv_status *s)
{
    int rc;
    if (map->type != MSGPACK_OBJECT_MAP)
        return ERR_BAD_INPUT;
    if ((rc = status_str(map, "name", &s->name)) || (rc = status_str(map, "role", &s->role)) ||
        (rc = status_str(map, "leader", &s->leader)) ||
        (rc = status_str(map, "client_addr", &s->client_addr)) ||
        (rc = status_u64(map, "term", &s->term)) || (rc = status_u64(map, "commit", &s->commit)) ||
        (rc = status_u64(map, "applied", &s->applied)) ||
        (rc = status_u64(map, "lamport", &s->lamport)) ||
        (rc = status_u64(map, "revision", &s->revision)) || (rc = status_u64(map, "keys", &s->keys)) ||
        (rc = status_str(map, "cluster_id", &s->cluster_id)) ||
        (rc = status_u64(map, "lag_entries", &s->lag_entries)) || (rc = status_u64(map, "lag_ms", &s->lag_ms)) ||
        (rc = status_str(map, "version", &s->version)) ||
        (rc = status_str(map, "cluster_version", &s->cluster_version)))
        return rc;
    const msgpack_object *sh = mpo_map_get(map, "healthy");
    if (sh && sh->type == MSGPACK_OBJECT_BOOLEAN) {
        s->healthy_known = true;
        s->healthy = sh->via.boolean;
    }
    const msgpack_object *mem = mpo_map_get(map, "members");
    if (!mem || mem->type == MSGPACK_OBJECT_NIL)
        return ERR_OK;
    if (mem->type != MSGPACK_OBJECT_ARRAY)
        return ERR_BAD_INPUT;
    uint32_t n = mem->via.array.size;
    if (n == 0)
        return ERR_OK;
    s->members = calloc(n, sizeof *s->members);
    if (!s->members)
        return ERR_NOMEM;
    for (uint32_t i = 0; i < n; i++) {
        const msgpack_object *o = &mem->via.array.ptr[i];
        struct ddkv_member *m = &s->members[i];
        s->n_members++;
        if (o->type != MSGPACK_OBJECT_MAP)
            return ERR_BAD_INPUT;
        if ((rc = status_str(o, "name", &m->name)) ||
            (rc = status_str(o, "client_addr", &m->client_addr)) ||
            (rc = status_str(o, "peer_addr", &m->peer_addr)) || (rc = status_str(o, "role", &m->role)) ||
            (rc = status_str(o, "version", &m->version)))
            return rc;
        const msgpack_object *h = mpo_map_get(o, "healthy");
        m->healthy = h && mpo_bool(h);
        const msgpack_object *mt = mpo_map_get(o, "match");
        if (mt && mt->type == MSGPACK_OBJECT_POSITIVE_INTEGER) {
            m->lag_known = true;
            if ((rc = status_u64(o, "match", &m->match)) || (rc = status_u64(o, "lag_entries", &m->lag_entries)) ||
                (rc = status_u64(o, "lag_ms", &m->lag_ms)))
                return rc;
        }
    }
    return ERR_OK;
}

ddkv_err ddkv_status(ddkv_client *c, struct ddkv_status *out)
{
    memset(out, 0, sizeof *out);
    struct cc_call k = {.type = DDKV_MSG_STATUS, .reply_type = DDKV_MSG_STATUS_RESULT};
    ddkv_err rc = client_call(c, &k);
    if (rc != DDKV_OK)
        return rc;
    int drc = k.reply.nf >= 1 ? status_decode(&k.reply.f[0], out) : ERR_BAD_INPUT;
    if (drc == ERR_NOMEM) {
        rc = client_fail(c, DDKV_ERR_NOMEM, "out of memory");
        goto fail;
    }
    if (drc != ERR_OK) {
        rc = client_bad_reply(c, &k, "expected one map of status fields");
        goto fail;
    }
    msg_free(&k.reply);
    return DDKV_OK;

fail:
    msg_free(&k.reply);
    ddkv_status_free(out);
    return rc;
}

/* --- backups --- */

void ddkv_snapshot_meta_free(struct ddkv_snapshot_meta *m)
{
    free(m->members);
    memset(m, 0, sizeof *m);
}

static ddkv_err snapshot_meta_decode(struct ddkv_client *c, struct cc_call *k, struct ddkv_snapshot_meta *out)
{
    uint64_t *const nums[7] = {&out->cluster_id, &out->index, &out->term, &out->revision,
                               &out->lamport, &out->keys, &out->image_bytes};
    for (uint32_t i = 0; i < 7; i++)
        if (msg_u64(&k->reply, i, nums[i]) != ERR_OK)
            return client_bad_reply(c, k, "expected [cluster_id, index, term, revision, lamport, keys, "
                                          "image_bytes, members]");
    const uint8_t *p;
    size_t n;
    if (msg_bytes(&k->reply, 7, &p, &n) != ERR_OK)
        return client_bad_reply(c, k, "members is not a string");
    out->members = dup_bytes(p, n);
    return out->members ? DDKV_OK : client_fail(c, DDKV_ERR_NOMEM, "out of memory");
}

/* The stream broke or went wrong after the meta: the node is told by the
 * connection closing (it drops the save). */
static ddkv_err snapshot_broken(struct ddkv_client *c, ddkv_err code, uint64_t off, uint64_t total, const char *why)
{
    char detail[sizeof c->cc.errmsg];
    memcpy(detail, c->cc.errmsg, sizeof detail);
    client_disconnect(c);
    return client_fail(c, code, "snapshot stream from %s broke after %llu of %llu bytes: %.120s",
                       c->cc.eps[c->cc.cur].text, (unsigned long long)off, (unsigned long long)total,
                       why ? why : detail);
}

/* One SNAPSHOT_CHUNK [offset, data, last] of the stream, checked against
 * where the stream is, handed to the sink. */
static ddkv_err snapshot_chunk(struct ddkv_client *c, const struct msg *m, struct ddkv_snapshot_meta *meta,
                               uint64_t *off, bool *last, ddkv_snapshot_sink sink, void *ud)
{
    uint64_t at;
    const uint8_t *p;
    size_t n;
    if (m->type == DDKV_MSG_ERROR) {
        const uint8_t *text = NULL;
        size_t tl = 0;
        (void)msg_bytes_opt(m, 1, &text, &tl);
        char why[160];
        snprintf(why, sizeof why, "the node said: %.*s", (int)(tl > 120 ? 120 : tl), text ? (const char *)text : "");
        return snapshot_broken(c, DDKV_ERR_UNAVAILABLE, *off, meta->image_bytes, why);
    }
    if (m->type != DDKV_MSG_SNAPSHOT_CHUNK || msg_u64(m, 0, &at) != ERR_OK ||
        msg_bytes(m, 1, &p, &n) != ERR_OK || m->nf < 3 || m->f[2].type != MSGPACK_OBJECT_BOOLEAN)
        return snapshot_broken(c, DDKV_ERR_PROTOCOL, *off, meta->image_bytes, "garbled SNAPSHOT_CHUNK");
    *last = m->f[2].via.boolean;
    if (at != *off || n > meta->image_bytes - *off || *last != (*off + n == meta->image_bytes))
        return snapshot_broken(c, DDKV_ERR_PROTOCOL, *off, meta->image_bytes, "a chunk out of place");
    if (sink(ud, meta, at, p, n) != 0) {
        client_disconnect(c);
        return client_fail(c, DDKV_ERR_USAGE, "the receiver stopped the transfer");
    }
    *off += n;
    return DDKV_OK;
}

ddkv_err ddkv_snapshot_save(ddkv_client *c, ddkv_snapshot_sink sink, void *ud, struct ddkv_snapshot_meta *out)
{
    memset(out, 0, sizeof *out);
    /* Slow: the leader images its state before it answers, which takes as
     * long as the state is large; the call's deadline bounds it. */
    struct cc_call k = {.type = DDKV_MSG_SNAPSHOT_SAVE, .reply_type = DDKV_MSG_SNAPSHOT_META, .slow = true};
    ddkv_err rc = client_call(c, &k);
    if (rc != DDKV_OK)
        return rc;
    rc = snapshot_meta_decode(c, &k, out);
    msg_free(&k.reply);
    if (rc != DDKV_OK)
        goto fail;
    if (sink(ud, out, 0, NULL, 0) != 0) {
        client_disconnect(c);
        rc = client_fail(c, DDKV_ERR_USAGE, "the receiver stopped the transfer");
        goto fail;
    }
    uint64_t off = 0;
    for (bool last = out->image_bytes == 0; !last;) {
        enum attempt a = client_recv(c, &k, clock_mono_ms() + c->cc.timeout_ms);
        if (a != ATTEMPT_REPLY) {
            rc = snapshot_broken(c, a == ATTEMPT_TIMEOUT ? DDKV_ERR_TIMEOUT
                                    : a == ATTEMPT_NOMEM ? DDKV_ERR_NOMEM
                                    : a == ATTEMPT_GARBLED ? DDKV_ERR_PROTOCOL : DDKV_ERR_UNAVAILABLE,
                                 off, out->image_bytes, NULL);
            goto fail;
        }
        rc = snapshot_chunk(c, &k.reply, out, &off, &last, sink, ud);
        msg_free(&k.reply);
        if (rc != DDKV_OK)
            goto fail;
    }
    c->cc.errmsg[0] = 0;
    return DDKV_OK;

fail:
    ddkv_snapshot_meta_free(out);
    return rc;
}

/* --- membership --- */

static ddkv_err client_member_change(struct ddkv_client *c, struct cc_call *k, uint64_t *index)
{
    *index = 0;
    ddkv_err rc = client_call(c, k);
    if (rc != DDKV_OK)
        return rc;
    if (msg_u64(&k->reply, 0, index) != ERR_OK)
        rc = client_bad_reply(c, k, "expected [index]");
    msg_free(&k->reply);
    return rc;
}

ddkv_err ddkv_member_add(ddkv_client *c, const char *name, const char *peer_addr, uint64_t *index)
{
    if (!name || !*name || !peer_addr || !*peer_addr)
        return client_fail(c, DDKV_ERR_USAGE, "a member needs a name and a peer address");
    struct cc_field f[] = {
        {.kind = CC_BIN, .p = name, .n = strlen(name)},
        {.kind = CC_BIN, .p = peer_addr, .n = strlen(peer_addr)},
    };
    /* Adding the same name and address again is answered as done, so a retry
     * after a lost reply is harmless. */
    struct cc_call k = {.type = DDKV_MSG_MEMBER_ADD, .reply_type = DDKV_MSG_MEMBER_CHANGED,
                     .mutates = true, .f = f, .nf = 2};
    return client_member_change(c, &k, index);
}

ddkv_err ddkv_member_remove(ddkv_client *c, const char *name, uint64_t *index)
{
    if (!name || !*name)
        return client_fail(c, DDKV_ERR_USAGE, "a member needs a name");
    struct cc_field f[] = {{.kind = CC_BIN, .p = name, .n = strlen(name)}};
    struct cc_call k = {.type = DDKV_MSG_MEMBER_REMOVE, .reply_type = DDKV_MSG_MEMBER_CHANGED,
                     .mutates = true, .f = f, .nf = 1};
    return client_member_change(c, &k, index);
}

ddkv_err ddkv_leader_transfer(ddkv_client *c, const char *name, char **new_leader)
{
    if (new_leader)
        *new_leader = NULL;
    if (!name)
        name = "";
    uint64_t deadline_ms = clock_mono_ms() + c->cc.timeout_ms;
    struct cc_field f[] = {{.kind = CC_BIN, .p = name, .n = strlen(name)}};
    /* Asking twice is harmless (the second finds the transfer running, or a
     * new leader that refers us on), so the call may be resent. */
    struct cc_call k = {.type = DDKV_MSG_LEADER_TRANSFER, .reply_type = DDKV_MSG_LEADER_TRANSFERRING,
                     .f = f, .nf = 1};
    ddkv_err rc = client_call(c, &k);
    if (rc != DDKV_OK)
        return rc;
    const uint8_t *p;
    size_t len;
    uint64_t term = 0;
    char target[64];
    if (msg_bytes(&k.reply, 0, &p, &len) != ERR_OK || len == 0 || len >= sizeof target ||
        msg_u64(&k.reply, 1, &term) != ERR_OK) {
        rc = client_bad_reply(c, &k, "expected [name, term]");
        msg_free(&k.reply);
        return rc;
    }
    memcpy(target, p, len);
    target[len] = 0;
    msg_free(&k.reply);
    /* Done when a member names the target leader in a later term (or the same
     * term: the target was leader already). */
    for (;;) {
        struct ddkv_pong pong;
        if (ddkv_ping(c, &pong) == DDKV_OK) {
            bool done = pong.leader && strcmp(pong.leader, target) == 0 && pong.term >= term;
            ddkv_pong_free(&pong);
            if (done) {
                if (new_leader && !(*new_leader = dup_bytes(target, len)))
                    return client_fail(c, DDKV_ERR_NOMEM, "out of memory");
                return DDKV_OK;
            }
        }
        if (clock_mono_ms() >= deadline_ms)
            return client_fail(c, DDKV_ERR_TIMEOUT, "leadership did not move to %s within %u ms", target,
                               (unsigned)c->cc.timeout_ms);
        clock_sleep_ms(20);
    }
}

/* --- transactions --- */

static ddkv_err txn_check_ops(struct ddkv_client *c, const char *which, const struct ddkv_op *ops,
                              size_t n)
{
    if (n > DDKV_TXN_MAX)
        return client_fail(c, DDKV_ERR_USAGE, "%zu %s operations: at most %u", n, which, DDKV_TXN_MAX);
    if (n && !ops)
        return client_fail(c, DDKV_ERR_USAGE, "%s operations are NULL", which);
    for (size_t i = 0; i < n; i++) {
        const struct ddkv_op *op = &ops[i];
        if (op->kind != DDKV_OP_PUT && op->kind != DDKV_OP_DELETE)
            return client_fail(c, DDKV_ERR_USAGE, "%s operation %zu: unknown kind %d", which, i,
                               (int)op->kind);
        if ((!op->key && op->key_len) || (op->kind == DDKV_OP_PUT && !op->value && op->value_len))
            return client_fail(c, DDKV_ERR_USAGE, "%s operation %zu: key or value is NULL", which, i);
    }
    return DDKV_OK;
}

ddkv_err ddkv_txn(ddkv_client *c, const struct ddkv_compare *cmps, size_t ncmp,
                  const struct ddkv_op *on_success, size_t nsucc, const struct ddkv_op *on_failure,
                  size_t nfail, struct ddkv_txn_result *out)
{
    memset(out, 0, sizeof *out);
    c->cc.errmsg[0] = 0;
    if (ncmp > DDKV_TXN_MAX)
        return client_fail(c, DDKV_ERR_USAGE, "%zu compares: at most %u", ncmp, DDKV_TXN_MAX);
    if (ncmp && !cmps)
        return client_fail(c, DDKV_ERR_USAGE, "compares are NULL");
    for (size_t i = 0; i < ncmp; i++) {
        const struct ddkv_compare *cm = &cmps[i];
        if ((unsigned)cm->field > DDKV_CMP_MOD_REV || (unsigned)cm->cmp > DDKV_CMP_GT)
            return client_fail(c, DDKV_ERR_USAGE, "compare %zu: unknown field %d or cmp %d", i,
                               (int)cm->field, (int)cm->cmp);
        if ((!cm->key && cm->key_len) ||
            (cm->field == DDKV_CMP_VALUE && !cm->value && cm->value_len))
            return client_fail(c, DDKV_ERR_USAGE, "compare %zu: key or value is NULL", i);
    }
    ddkv_err rc;
    if ((rc = txn_check_ops(c, "on_success", on_success, nsucc)) != DDKV_OK ||
        (rc = txn_check_ops(c, "on_failure", on_failure, nfail)) != DDKV_OK)
        return rc;
    struct cc_field f[] = {
        {.kind = CC_CMPS, .p = cmps, .n = ncmp},
        {.kind = CC_OPS, .p = on_success, .n = nsucc},
        {.kind = CC_OPS, .p = on_failure, .n = nfail},
        {.kind = CC_U64, .u = c->cc.client_id},
        {.kind = CC_U64, .u = ++c->cc.seq},
    };
    struct cc_call k = {.type = DDKV_MSG_TXN, .reply_type = DDKV_MSG_TXN_RESULT, .mutates = true,
                     .f = f, .nf = 5};
    rc = client_call(c, &k);
    if (rc != DDKV_OK)
        return rc;
    if (k.reply.nf < 3 || k.reply.f[0].type != MSGPACK_OBJECT_BOOLEAN ||
        msg_u64(&k.reply, 1, &out->lamport) != ERR_OK ||
        msg_u64(&k.reply, 2, &out->revision) != ERR_OK) {
        rc = client_bad_reply(c, &k, "expected [succeeded, lamport, revision]");
        msg_free(&k.reply);
        memset(out, 0, sizeof *out);
        return rc;
    }
    out->succeeded = mpo_bool(&k.reply.f[0]);
    client_saw(c, out->lamport);
    msg_free(&k.reply);
    return DDKV_OK;
}

ddkv_err ddkv_cas(ddkv_client *c, const void *key, size_t klen, const void *expected, size_t elen,
                  bool expect_absent, const void *value, size_t vlen, uint64_t lease_id,
                  struct ddkv_txn_result *out)
{
    struct ddkv_compare cmp = {.key = key, .key_len = klen, .cmp = DDKV_CMP_EQ};
    if (expect_absent) {
        cmp.field = DDKV_CMP_VERSION;
        cmp.number = 0;
    } else {
        cmp.field = DDKV_CMP_VALUE;
        cmp.value = expected;
        cmp.value_len = elen;
    }
    struct ddkv_op put = {.kind = DDKV_OP_PUT, .key = key, .key_len = klen, .value = value,
                          .value_len = vlen, .lease_id = lease_id};
    return ddkv_txn(c, &cmp, 1, &put, 1, NULL, 0, out);
}

/* --- leases --- */

/* LEASE: [lease_id, ttl_ms]. */
static ddkv_err lease_call(struct ddkv_client *c, struct cc_call *k, uint64_t *id, uint64_t *ttl_ms)
{
    ddkv_err rc = client_call(c, k);
    if (rc != DDKV_OK)
        return rc;
    if (msg_u64(&k->reply, 0, id) != ERR_OK || msg_u64(&k->reply, 1, ttl_ms) != ERR_OK)
        rc = client_bad_reply(c, k, "expected [lease_id, ttl_ms]");
    msg_free(&k->reply);
    return rc;
}

ddkv_err ddkv_lease_grant(ddkv_client *c, uint64_t ttl_ms, uint64_t *lease_id, uint64_t *granted_ttl_ms)
{
    uint64_t id = 0, ttl = 0;
    *lease_id = 0;
    if (granted_ttl_ms)
        *granted_ttl_ms = 0;
    c->cc.errmsg[0] = 0;
    if (ttl_ms == 0)
        return client_fail(c, DDKV_ERR_USAGE, "a lease needs a ttl above 0 ms");
    struct cc_field f[] = {
        {.kind = CC_U64, .u = ttl_ms},
        {.kind = CC_U64, .u = c->cc.client_id},
        {.kind = CC_U64, .u = ++c->cc.seq},
    };
    struct cc_call k = {.type = DDKV_MSG_LEASE_GRANT, .reply_type = DDKV_MSG_LEASE, .mutates = true,
                     .f = f, .nf = 3};
    ddkv_err rc = lease_call(c, &k, &id, &ttl);
    if (rc != DDKV_OK)
        return rc;
    if (id == 0) {
        client_disconnect(c);
        return client_fail(c, DDKV_ERR_UNKNOWN_OUTCOME,
                           "%s granted lease 0 (garbled LEASE); the grant's outcome is unknown",
                           c->cc.eps[c->cc.cur].text);
    }
    *lease_id = id;
    if (granted_ttl_ms)
        *granted_ttl_ms = ttl;
    return DDKV_OK;
}

ddkv_err ddkv_lease_keepalive(ddkv_client *c, uint64_t lease_id, uint64_t *ttl_ms)
{
    uint64_t id = 0, ttl = 0;
    if (ttl_ms)
        *ttl_ms = 0;
    c->cc.errmsg[0] = 0;
    if (lease_id == 0)
        return client_fail(c, DDKV_ERR_USAGE, "lease id 0 is no lease");
    struct cc_field f[] = {{.kind = CC_U64, .u = lease_id}};
    struct cc_call k = {.type = DDKV_MSG_LEASE_KEEPALIVE, .reply_type = DDKV_MSG_LEASE, .f = f, .nf = 1};
    ddkv_err rc = lease_call(c, &k, &id, &ttl);
    if (rc != DDKV_OK)
        return rc;
    if (id != lease_id) {
        client_disconnect(c);
        return client_fail(c, DDKV_ERR_PROTOCOL, "%s answered a keepalive of lease %llu about lease %llu",
                           c->cc.eps[c->cc.cur].text, (unsigned long long)lease_id, (unsigned long long)id);
    }
    /* ttl 0 is how LEASE says "revoked". */
    if (ttl == 0)
        return client_fail(c, DDKV_ERR_NOT_FOUND, "lease %llu is revoked", (unsigned long long)lease_id);
    if (ttl_ms)
        *ttl_ms = ttl;
    return DDKV_OK;
}

ddkv_err ddkv_lease_revoke(ddkv_client *c, uint64_t lease_id)
{
    uint64_t id = 0, ttl = 0;
    c->cc.errmsg[0] = 0;
    if (lease_id == 0)
        return client_fail(c, DDKV_ERR_USAGE, "lease id 0 is no lease");
    struct cc_field f[] = {
        {.kind = CC_U64, .u = lease_id},
        {.kind = CC_U64, .u = c->cc.client_id},
        {.kind = CC_U64, .u = ++c->cc.seq},
    };
    struct cc_call k = {.type = DDKV_MSG_LEASE_REVOKE, .reply_type = DDKV_MSG_LEASE, .mutates = true,
                     .f = f, .nf = 3};
    return lease_call(c, &k, &id, &ttl);
}

/* --- watch --- */

/* The stream's position is (last_rev, n_at_last): the revision of the last
 * event delivered and how many of that revision's events were delivered.
 * Every member emits a revision's events in the same order, so a WATCH sent
 * again from last_rev is answered with those n_at_last events first (skipped)
 * and then the ones the caller has not seen. */
struct ddkv_watch {
    struct ddkv_client *c; /* its own connection, endpoints, clock and errmsg */
    uint8_t *prefix;
    size_t plen;
    uint64_t start_rev;    /* from_rev of the first WATCH (0: the member's next change) */
    uint64_t last_rev;     /* revision of the last event delivered; 0: none yet */
    uint64_t n_at_last;    /* events of last_rev delivered */
    /* The WATCH on the current connection (sent implies connected). */
    bool sent;
    uint64_t rid;
    uint64_t sent_from;    /* its from_rev */
    uint64_t skip;         /* events of last_rev this member has still to replay */
    uint64_t sent_at_ms;
    uint64_t conn_events;  /* events received on this connection */
    /* Failures. */
    uint64_t down_since_ms;   /* no member has served the watch since then; 0: served */
    uint32_t backoff_ms;
    size_t compacted_answers; /* members in a row that answered COMPACTED */
    uint64_t compacted_min;   /* the lowest oldest revision they named */
    uint64_t compacted_rev;   /* set with failed == DDKV_ERR_COMPACTED */
    ddkv_err failed;          /* a final error, repeated by every later call; DDKV_OK while usable */
};

/* The connection is gone (closed by the caller): the next call reconnects. An
 * outage starts now unless this connection never worked, in which case it
 * continues the one that led to it (so members that accept and at once refuse
 * cannot keep the watch "up" for ever). */
static void watch_lost(struct ddkv_watch *w)
{
    uint64_t now = clock_mono_ms();
    if (!w->down_since_ms || w->conn_events || (w->sent && now - w->sent_at_ms >= w->c->cc.timeout_ms))
        w->down_since_ms = now;
    w->sent = false;
    w->conn_events = 0;
    w->skip = 0;
}

/* Drop the connection and move on to the next endpoint. */
static void watch_drop(struct ddkv_watch *w)
{
    client_rotate(w->c);
    watch_lost(w);
}

static ddkv_err watch_garbled(struct ddkv_watch *w, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* A member sent something garbled or inconsistent: report it, and reconnect
 * elsewhere at the next call. */
static ddkv_err watch_garbled(struct ddkv_watch *w, const char *fmt, ...)
{
    struct ddkv_client *c = w->c;
    char what[200];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof what, fmt, ap);
    va_end(ap);
    client_fail(c, DDKV_ERR_PROTOCOL, "watch: %s %s", c->cc.eps[c->cc.cur].text, what);
    watch_drop(w);
    return DDKV_ERR_PROTOCOL;
}

/* Connect (and log in) if needed and send WATCH from where the stream
 * stands, within until_ms. DDKV_OK once sent; DDKV_ERR_TIMEOUT if no member
 * took it in time (errmsg says why); DDKV_ERR_NOMEM; the final error of a
 * refused login (DDKV_ERR_PERMISSION_DENIED, DDKV_ERR_BAD_REQUEST). */
static ddkv_err watch_send(struct ddkv_watch *w, uint64_t until_ms)
{
    struct ddkv_client *c = w->c;
    for (;;) {
        if (ms_left(until_ms) == 0)
            return DDKV_ERR_TIMEOUT;
        if (c->fd >= 0 && !client_conn_alive(c))
            client_disconnect(c);
        if (c->fd < 0 && client_connect_any(c, until_ms) != 0) {
            client_backoff(c, &w->backoff_ms, until_ms);
            continue;
        }
        ddkv_err refused;
        enum cc_login lg = client_login(c, until_ms, &refused);
        if (lg == CC_LOGIN_REFUSED)
            return refused;
        if (lg == CC_LOGIN_RETRY) {
            client_rotate(c);
            client_backoff(c, &w->backoff_ms, until_ms);
            continue;
        }
        uint64_t from = w->last_rev ? w->last_rev : w->start_rev;
        struct cc_field f[] = {
            {.kind = CC_BIN, .p = w->prefix, .n = w->plen},
            {.kind = CC_U64, .u = from},
        };
        struct cc_call k = {.type = DDKV_MSG_WATCH, .reply_type = DDKV_MSG_EVENT, .f = f, .nf = 2};
        if (client_encode(c, &k) != ERR_OK)
            return client_fail(c, DDKV_ERR_NOMEM, "out of memory encoding WATCH");
        if (client_send(c, until_ms) != ATTEMPT_REPLY) {
            client_rotate(c);
            client_backoff(c, &w->backoff_ms, until_ms);
            continue;
        }
        w->sent = true;
        w->rid = k.rid;
        w->sent_from = from;
        w->skip = w->last_rev ? w->n_at_last : 0;
        w->sent_at_ms = clock_mono_ms();
        w->conn_events = 0;
        return DDKV_OK;
    }
}

/* The oldest revision named in a COMPACTED message: its last number
 * ("... oldest revision available 120"), or 0 if it names none. */
static uint64_t watch_compacted_rev(const uint8_t *text, size_t n)
{
    size_t end = n;
    while (end && (text[end - 1] < '0' || text[end - 1] > '9'))
        end--;
    size_t start = end;
    while (start && text[start - 1] >= '0' && text[start - 1] <= '9')
        start--;
    uint64_t v = 0;
    for (size_t i = start; i < end; i++) {
        if (v > (UINT64_MAX - 9) / 10)
            return 0;
        v = v * 10 + (uint64_t)(text[i] - '0');
    }
    return v;
}

/* An ERROR on the watch's connection. Returns 0 to go on reading (after a
 * reconnect), -1 with *err to return. */
static int watch_error(struct ddkv_watch *w, const struct msg *m, uint64_t deadline_ms, ddkv_err *err)
{
    struct ddkv_client *c = w->c;
    uint64_t code = 0;
    const uint8_t *text = NULL, *leader = NULL;
    size_t text_len = 0, leader_len = 0;
    if (msg_u64(m, 0, &code) != ERR_OK || msg_bytes_opt(m, 1, &text, &text_len) != ERR_OK ||
        msg_bytes_opt(m, 2, &leader, &leader_len) != ERR_OK) {
        *err = watch_garbled(w, "sent a garbled ERROR");
        return -1;
    }
    if (text_len)
        client_fail(c, DDKV_ERR_UNAVAILABLE, "%s: %.*s", c->cc.eps[c->cc.cur].text,
                    (int)(text_len > 180 ? 180 : text_len), (const char *)text);
    else
        client_fail(c, DDKV_ERR_UNAVAILABLE, "%s: %s", c->cc.eps[c->cc.cur].text,
                    wire_error_name((uint32_t)code));
    switch (code) {
    case DDKV_WERR_NOT_LEADER:
        /* A member that will not serve watches: go where it points. */
        if (client_redirect(c, leader, leader_len))
            watch_lost(w);
        else
            watch_drop(w);
        client_backoff(c, &w->backoff_ms, deadline_ms);
        return 0;
    case DDKV_WERR_COMPACTED: {
        /* A member keeps only what it applied since it started: another may
         * still hold the revision. Final once every endpoint has said so. */
        uint64_t oldest = watch_compacted_rev(text, text_len);
        if (oldest && (!w->compacted_min || oldest < w->compacted_min))
            w->compacted_min = oldest;
        if (++w->compacted_answers < c->cc.n_eps) {
            watch_drop(w);
            return 0;
        }
        uint64_t from = w->sent_from;
        client_disconnect(c);
        watch_lost(w);
        w->compacted_rev = w->compacted_min;
        w->failed = DDKV_ERR_COMPACTED;
        *err = client_fail(c, DDKV_ERR_COMPACTED,
                           "watch: revision %llu is older than every member's history; oldest "
                           "revision available %llu", (unsigned long long)from,
                           (unsigned long long)w->compacted_rev);
        return -1;
    }
    case DDKV_WERR_UNAUTHENTICATED:
        if (c->cc.user) {
            /* The identity lapsed (auth enabled since, a new password): the
             * next send logs in again; a refused login is final there. */
            client_disconnect(c);
            watch_lost(w);
            client_backoff(c, &w->backoff_ms, deadline_ms);
            return 0;
        }
        /* No credentials to give: final, like the refusals below. */
        /* fall through */
    case DDKV_WERR_NOT_FOUND:
    case DDKV_WERR_BAD_REQUEST:
    case DDKV_WERR_PERMISSION_DENIED:
    case DDKV_WERR_TOO_LARGE:
        /* The request itself is refused: asking again changes nothing. */
        client_disconnect(c);
        watch_lost(w);
        w->failed = code == DDKV_WERR_TOO_LARGE  ? DDKV_ERR_TOO_LARGE
                    : code == DDKV_WERR_NOT_FOUND ? DDKV_ERR_NOT_FOUND
                    : code == DDKV_WERR_BAD_REQUEST ? DDKV_ERR_BAD_REQUEST
                                                    : DDKV_ERR_PERMISSION_DENIED;
        *err = w->failed;
        return -1;
    default:
        /* UNAVAILABLE, TIMEOUT, INTERNAL, newer codes: this member cannot
         * serve the watch now; another may. */
        watch_drop(w);
        client_backoff(c, &w->backoff_ms, deadline_ms);
        return 0;
    }
}

/* One frame on the watch's connection. Returns 1 with an event in *ev, 0 to go
 * on reading, -1 with *err to return. */
static int watch_frame(struct ddkv_watch *w, const struct msg *m, struct ddkv_event *ev,
                       uint64_t deadline_ms, ddkv_err *err)
{
    struct ddkv_client *c = w->c;
    bool conn_level = m->request_id == 0 && m->type == DDKV_MSG_ERROR;
    if (m->request_id != w->rid && !conn_level) {
        *err = watch_garbled(w, "sent a %s for request %llu on the connection of watch request %llu",
                             msg_type_name(m->type), (unsigned long long)m->request_id,
                             (unsigned long long)w->rid);
        return -1;
    }
    if (m->type == DDKV_MSG_ERROR)
        return watch_error(w, m, deadline_ms, err);
    if (m->type != DDKV_MSG_EVENT) {
        *err = watch_garbled(w, "answered WATCH with %s", msg_type_name(m->type));
        return -1;
    }
    uint64_t kind = 0, create_rev, mod_rev, version, lamport;
    const uint8_t *kp, *vp;
    size_t kn, vn;
    if (msg_u64(m, 0, &kind) != ERR_OK || msg_bytes(m, 1, &kp, &kn) != ERR_OK ||
        msg_bytes(m, 2, &vp, &vn) != ERR_OK || msg_u64(m, 3, &create_rev) != ERR_OK ||
        msg_u64(m, 4, &mod_rev) != ERR_OK || msg_u64(m, 5, &version) != ERR_OK ||
        msg_u64(m, 6, &lamport) != ERR_OK || (kind != DDKV_OP_PUT && kind != DDKV_OP_DELETE) ||
        mod_rev == 0) {
        *err = watch_garbled(w, "sent a garbled EVENT (expected [kind (1 put, 2 delete), key, value, "
                                "create_rev, mod_rev > 0, version, lamport])");
        return -1;
    }
    if (kn < w->plen || (w->plen && memcmp(kp, w->prefix, w->plen) != 0)) {
        *err = watch_garbled(w, "sent an event of a key outside the watched prefix");
        return -1;
    }
    if (mod_rev < w->sent_from || mod_rev < w->last_rev) {
        *err = watch_garbled(w, "sent an event of revision %llu, before revision %llu",
                             (unsigned long long)mod_rev,
                             (unsigned long long)(w->sent_from > w->last_rev ? w->sent_from : w->last_rev));
        return -1;
    }
    w->conn_events++;
    if (mod_rev == w->last_rev && w->skip) {
        w->skip--; /* delivered before the reconnect */
        return 0;
    }
    if (mod_rev != w->last_rev && w->skip) {
        *err = watch_garbled(w, "replayed %llu of the %llu events of revision %llu, then revision %llu",
                             (unsigned long long)(w->n_at_last - w->skip),
                             (unsigned long long)w->n_at_last, (unsigned long long)w->last_rev,
                             (unsigned long long)mod_rev);
        return -1;
    }
    /* Both are bounded by the frame, so kn + vn + 2 cannot overflow. */
    uint8_t *mem = malloc(kn + vn + 2);
    if (!mem) {
        /* Not delivered, so not counted: the reconnect asks for it again. */
        client_disconnect(c);
        watch_lost(w);
        *err = client_fail(c, DDKV_ERR_NOMEM, "out of memory for a %zu-byte event", kn + vn);
        return -1;
    }
    memcpy(mem, kp, kn);
    mem[kn] = 0;
    memcpy(mem + kn + 1, vp, vn);
    mem[kn + 1 + vn] = 0;
    *ev = (struct ddkv_event){.kind = (enum ddkv_op_kind)kind, .key = mem, .key_len = kn,
                              .value = mem + kn + 1, .value_len = vn, .create_rev = create_rev,
                              .mod_rev = mod_rev, .version = version, .lamport = lamport};
    if (mod_rev == w->last_rev) {
        w->n_at_last++;
    } else {
        w->last_rev = mod_rev;
        w->n_at_last = 1;
    }
    client_saw(c, lamport);
    c->cc.answered = (int)c->cc.cur;
    w->down_since_ms = 0;
    w->backoff_ms = CC_BACKOFF_MIN_MS;
    w->compacted_answers = 0;
    w->compacted_min = 0;
    c->cc.errmsg[0] = 0;
    return 1;
}

ddkv_err ddkv_watch_open(const struct ddkv_options *opts, const void *prefix, size_t plen,
                         uint64_t from_rev, ddkv_watch **out, char *errbuf, size_t errlen)
{
    *out = NULL;
    if (errbuf && errlen)
        errbuf[0] = 0;
    if (!prefix && plen) {
        if (errbuf && errlen)
            snprintf(errbuf, errlen, "watch: prefix is NULL");
        return DDKV_ERR_USAGE;
    }
    struct ddkv_watch *w = calloc(1, sizeof *w);
    if (!w) {
        if (errbuf && errlen)
            snprintf(errbuf, errlen, "out of memory");
        return DDKV_ERR_NOMEM;
    }
    ddkv_err rc = ddkv_client_new(opts, &w->c, errbuf, errlen);
    if (rc != DDKV_OK) {
        free(w);
        return rc;
    }
    struct ddkv_client *c = w->c;
    w->backoff_ms = CC_BACKOFF_MIN_MS;
    w->prefix = dup_bytes(plen ? prefix : "", plen);
    if (!w->prefix) {
        rc = client_fail(c, DDKV_ERR_NOMEM, "out of memory");
        goto fail;
    }
    w->plen = plen;
    w->start_rev = from_rev;
    if (from_rev == 0) {
        /* "From the next change" is pinned to a revision now, so a reconnect
         * before the first event cannot skip the changes made meanwhile. A
         * member's history always reaches back to its applied index + 1. */
        struct ddkv_status st;
        rc = ddkv_status(c, &st);
        if (rc != DDKV_OK)
            goto fail;
        w->start_rev = st.applied ? st.applied + 1 : 0;
        ddkv_status_free(&st);
    }
    uint64_t now = clock_mono_ms();
    w->down_since_ms = now;
    rc = watch_send(w, now + c->cc.timeout_ms);
    if (rc == DDKV_ERR_TIMEOUT) {
        char detail[sizeof c->cc.errmsg];
        memcpy(detail, c->cc.errmsg, sizeof detail);
        rc = client_fail(c, DDKV_ERR_UNAVAILABLE, "no endpoint took the watch within %u ms (last error: %.150s)",
                         (unsigned)c->cc.timeout_ms, detail[0] ? detail : "none");
    }
    if (rc != DDKV_OK)
        goto fail;
    c->cc.errmsg[0] = 0;
    *out = w;
    return DDKV_OK;

fail:
    if (errbuf && errlen)
        snprintf(errbuf, errlen, "%s", c->cc.errmsg[0] ? c->cc.errmsg : ddkv_strerror(rc));
    ddkv_watch_close(w);
    return rc;
}

ddkv_err ddkv_watch_next(ddkv_watch *w, struct ddkv_event *ev, uint32_t wait_ms)
{
    struct ddkv_client *c = w->c;
    memset(ev, 0, sizeof *ev);
    if (w->failed != DDKV_OK)
        return w->failed;
    uint64_t deadline_ms = clock_mono_ms() + wait_ms;
    for (;;) {
        if (!w->sent) {
            uint64_t now = clock_mono_ms();
            if (!w->down_since_ms)
                w->down_since_ms = now;
            uint64_t give_up = w->down_since_ms + c->cc.timeout_ms;
            if (now >= give_up) {
                char detail[sizeof c->cc.errmsg];
                memcpy(detail, c->cc.errmsg, sizeof detail);
                w->down_since_ms = now; /* the next call tries for another period */
                return client_fail(c, DDKV_ERR_UNAVAILABLE,
                                   "watch: no member served it for %u ms (last error: %.150s)",
                                   (unsigned)c->cc.timeout_ms, detail[0] ? detail : "none");
            }
            ddkv_err rc = watch_send(w, give_up < deadline_ms ? give_up : deadline_ms);
            if (rc == DDKV_ERR_NOMEM)
                return rc;
            if (rc == DDKV_ERR_PERMISSION_DENIED || rc == DDKV_ERR_BAD_REQUEST) {
                w->failed = rc;
                return rc;
            }
            if (rc != DDKV_OK) {
                if (ms_left(deadline_ms) == 0)
                    break;
                continue; /* the outage ran its time: reported above */
            }
        }
        struct msg m;
        enum attempt how = ATTEMPT_GARBLED;
        int rc = client_next_msg(c, &m, &how);
        if (rc == ERR_OK) {
            ddkv_err err = DDKV_OK;
            int r = watch_frame(w, &m, ev, deadline_ms, &err);
            msg_free(&m);
            if (r > 0)
                return DDKV_OK;
            if (r < 0)
                return err;
            continue;
        }
        if (rc != ERR_AGAIN) {
            watch_drop(w); /* errmsg set by client_next_msg */
            return how == ATTEMPT_NOMEM ? DDKV_ERR_NOMEM : DDKV_ERR_PROTOCOL;
        }
        uint64_t left = ms_left(deadline_ms);
        if (left == 0)
            break;
        if (client_fill(c, left, &how) < 0) {
            watch_drop(w);
            if (how != ATTEMPT_BROKEN)
                return how == ATTEMPT_NOMEM ? DDKV_ERR_NOMEM : DDKV_ERR_PROTOCOL;
            client_backoff(c, &w->backoff_ms, deadline_ms);
        }
    }
    if (w->sent)
        return client_fail(c, DDKV_ERR_TIMEOUT, "no change within %u ms", (unsigned)wait_ms);
    char detail[sizeof c->cc.errmsg];
    memcpy(detail, c->cc.errmsg, sizeof detail);
    return client_fail(c, DDKV_ERR_TIMEOUT, "no change within %u ms; reconnecting (last error: %.150s)",
                       (unsigned)wait_ms, detail[0] ? detail : "none");
}

uint64_t ddkv_watch_revision(const ddkv_watch *w)
{
    return w->last_rev;
}

uint64_t ddkv_watch_compacted_rev(const ddkv_watch *w)
{
    return w->compacted_rev;
}

const char *ddkv_watch_errmsg(const ddkv_watch *w)
{
    return w->c->cc.errmsg;
}

void ddkv_watch_close(ddkv_watch *w)
{
    if (!w)
        return;
    ddkv_client_free(w->c);
    free(w->prefix);
    free(w);
}

void ddkv_event_free(struct ddkv_event *ev)
{
    free(ev->key); /* the value shares the key's allocation */
    memset(ev, 0, sizeof *ev);
}
