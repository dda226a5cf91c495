/* The client core: the rules of a ddkv client with no I/O of its own.
 *
 * It holds what a client knows (endpoints given and leaders learned, which
 * one is current, the session's client id and sequence numbers, request ids,
 * the Lamport clock, credentials, what the last greeting said) and runs one
 * request at a time through the retry and in-doubt rules. It never touches a
 * socket or a clock: a driver reports what happened (connected, a frame
 * arrived, the connection broke, time passed) with the time, and the core
 * answers with what to do next: connect to an endpoint, send cc->out, wait
 * for a frame, sleep until a time, or done (k->err, and on DDKV_OK k->reply).
 *
 * Drivers: the blocking one over poll(2) in client.c (libddkv's API) and the
 * libevent one in src/apps/cli/cmd_bench.c (ddkv bench). Unit tests script frames
 * and time against the core alone (test/unit/test_clientcore.c).
 *
 * The rules, in one place:
 *  - HELLO first on every connection (WELCOME gives the versions; a 0.1.0
 *    node answers BAD_REQUEST and is taken as 0.1.0); then AUTH when the
 *    client has credentials; a refused login is final.
 *  - NOT_LEADER was refused before it was proposed: resend to the named
 *    leader (a learned endpoint), or to the next member after a backoff when
 *    none is named. The first CC_FREE_REDIRECTS redirects are followed at
 *    once, later ones after a backoff: two nodes naming each other cannot
 *    spin the client, and the deadline bounds it.
 *  - UNAVAILABLE: not acted on; next member after a backoff.
 *  - A request not wholly sent was never acted on: retried elsewhere.
 *  - A read whose connection broke or whose attempt timed out after it left:
 *    retried elsewhere.
 *  - Once a frame has been sent, its reply is awaited for attempt_ms at most
 *    (never past the call's deadline; a slow call waits until the deadline).
 *    When that passes first, the member is taken as gone, as if the
 *    connection had broken: the driver closes it (a late reply can only
 *    arrive on that closed connection, and would carry an old request id
 *    anyway), and the next attempt goes to the next member.
 *  - A write (mutates) whose connection broke, whose attempt timed out, or
 *    that the node answered TIMEOUT after it left is in doubt. With a session
 *    (not once) it is resent, to another member, with the same (client_id,
 *    seq): the cluster applies it once. Without one it is UNKNOWN_OUTCOME at
 *    once. A write still in doubt at the deadline is UNKNOWN_OUTCOME, never
 *    "unavailable".
 *  - UNAUTHENTICATED with credentials: log in again once and resend.
 *  - Every wait is bounded by the call's deadline (timeout_ms from start).
 *    A call that ends waiting on a member (no reply, or a send that did not
 *    finish, by the deadline) leaves the client on the next member: the next
 *    call does not start at the one that went silent. */
#ifndef DDKV_CLIENT_CORE_H
#define DDKV_CLIENT_CORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ddkv/ddkv.h"
#include "proto/lamport.h"
#include "proto/msg.h"
#include "util/buf.h"

#define CC_MAX_ENDPOINTS 64
#define CC_BACKOFF_MIN_MS 10u
#define CC_BACKOFF_MAX_MS 500u
#define CC_FREE_REDIRECTS 3u
/* The default attempt_ms: how long a sent frame waits for its reply before
 * the member is given up on. Above a node's default election timeout (1000
 * ms, randomized up to twice that; heartbeats every 100 ms): by then a leader
 * that went silent has been replaced, or is being, and a live leader answers
 * well within it (a commit is a few round trips, a linearizable read one
 * heartbeat round). Below the default call deadline (DDKV_DEFAULT_TIMEOUT_MS),
 * so a write sent to a leader that vanished without a reset is resent to the
 * new leader instead of waiting out the whole call. */
#define CC_DEFAULT_ATTEMPT_MS 1500u
/* A member whose reply did not come within an attempt is shunned this long:
 * neither a leader hint naming it nor the rotation leads back to it (unless
 * it is the only endpoint). The others go on naming a leader whose machine
 * died until they elect another, an election timeout or two (1-2 s by
 * default); following them back would cost a connect timeout to a machine
 * that answers nothing. A reply from it ends the shun. */
#define CC_SHUN_MS 3000u

struct cc_endpoint {
    char *text; /* "host:port" as written, for messages and comparisons */
    char *host; /* without IPv6 brackets */
    char *port;
};

/* One request field. Requests are described as data so that every attempt can
 * be re-encoded with a fresh Lamport time and request id. CC_CMPS and CC_OPS
 * are nested arrays: p points at n struct ddkv_compare or struct ddkv_op
 * (borrowed), encoded as [[key, field, cmp, operand]...] and
 * [[kind, key, value, lease_id]...]. */
enum cc_field_kind { CC_U64, CC_BIN, CC_CMPS, CC_OPS };

struct cc_field {
    enum cc_field_kind kind;
    uint64_t u;
    const void *p;
    size_t n;
};

/* What the driver does next. */
enum cc_do {
    CC_DO_CONNECT, /* close any connection; connect to eps[cur] until k->until_ms */
    CC_DO_SEND,    /* send cc->out (by k->until_ms), report cc_sent or cc_failed */
    CC_DO_RECV,    /* wait for frames until k->until_ms (the attempt's deadline), report each with
                    * cc_frame; when it passes, cc_no_reply and cc_failed(CC_IO_TIMEOUT) */
    CC_DO_SLEEP,   /* nothing until k->until_ms, then cc_woke */
    CC_DO_DONE,    /* k->err (DDKV_OK: k->reply holds the reply; caller msg_frees) */
};

/* How a send or a wait failed. */
enum cc_io {
    CC_IO_BROKEN,  /* the connection failed */
    CC_IO_TIMEOUT, /* k->until_ms passed */
    CC_IO_GARBLED, /* bytes that are not a valid frame */
    CC_IO_REFUSED, /* a TLS port refused this client: nothing was read there (final) */
    CC_IO_NOMEM,
};

enum cc_phase { CC_P_CONNECT, CC_P_GREET, CC_P_LOGIN, CC_P_REQUEST, CC_P_DONE };

struct cc_call {
    /* Set by the caller. */
    uint32_t type;
    uint32_t reply_type;
    bool mutates; /* a write: resent after it left only under its session (client_id, seq) */
    bool once;    /* a write without a session: never resent once it left (unknown outcome) */
    bool slow;    /* the node may work long before it answers (SNAPSHOT_SAVE images the state):
                   * the reply is awaited until the call's deadline, not attempt_ms */
    const struct cc_field *f;
    uint32_t nf;
    /* Kept by the core. */
    enum cc_phase phase;
    enum cc_phase ended_in; /* the phase the call was in when it ended (CC_P_LOGIN: a refused login) */
    bool sent;       /* cc->out was wholly handed over: the node may act on it */
    uint64_t sent_ms; /* when it was */
    uint64_t rid;    /* of the frame in flight */
    uint64_t deadline_ms, until_ms;
    uint32_t backoff_ms;
    unsigned redirects;
    size_t conn_fails; /* connection attempts failed in a row */
    bool reached;    /* some endpoint accepted a connection */
    bool in_doubt;   /* a write was fully sent and its fate never learned */
    bool relogged;   /* the node said the identity was gone and it was given again */
    ddkv_err err;
    struct msg reply; /* on DDKV_OK */
    uint64_t rtt_ns;  /* the driver's: of the attempt that was answered */
};

struct cc {
    struct cc_endpoint eps[CC_MAX_ENDPOINTS];
    size_t n_eps;
    size_t n_given; /* eps[0..n_given) were given; the rest were learned */
    size_t cur;     /* endpoint of the connection, or the next to try */
    int answered;   /* endpoint that sent the last reply, or -1 */
    bool up;        /* the driver holds a connection to eps[cur] */
    bool greeted, authed; /* of that connection */
    uint64_t node_version, cluster_version; /* as the last greeting said */
    struct lamport clock;
    uint64_t next_rid; /* 0 is never used: an ERROR with request id 0 is about the connection */
    uint64_t client_id, seq;
    uint64_t rng;      /* backoff jitter only */
    uint32_t timeout_ms, connect_timeout_ms;
    uint32_t attempt_ms; /* the longest wait for one reply (CC_DEFAULT_ATTEMPT_MS; 0: the call's deadline) */
    char *user, *password; /* owned; NULL user: no credentials */
    int shunned;                /* endpoint given up on for silence (CC_SHUN_MS), or -1 */
    uint64_t shunned_until_ms;
    uint64_t redirects_total; /* NOT_LEADER answers followed, for statistics */
    struct buf out;    /* the frame to send */
    char errmsg[256];
};

/* Endpoints as "host:port[,host:port...]". Returns DDKV_OK or DDKV_ERR_USAGE
 * / DDKV_ERR_NOMEM with why filled. client_id must not be 0. */
/* A copy of n bytes with a NUL after them (NULL: out of memory); the
 * drivers use it too. */
void *dup_bytes(const void *p, size_t n);

ddkv_err cc_init(struct cc *c, const char *endpoints, uint64_t client_id, uint32_t timeout_ms,
                 uint32_t connect_timeout_ms, char *why, size_t why_len);
ddkv_err cc_set_credentials(struct cc *c, const char *user, const char *password, char *why, size_t why_len);
void cc_free(struct cc *c);
int cc_endpoint_parse(struct cc_endpoint *e, const char *s, size_t n, char *why, size_t why_len);
void cc_endpoint_free(struct cc_endpoint *e);

ddkv_err cc_fail(struct cc *c, ddkv_err code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
const char *cc_cur_text(const struct cc *c);
/* The connection is gone (closed by the driver or the node). */
void cc_lost(struct cc *c);
/* Give up on the current endpoint: the next attempt goes to the next one
 * (past a shunned one). */
void cc_rotate(struct cc *c);
/* Follow a leader hint (NOT_LEADER's address): false if there is nothing to
 * follow (none, unparsable, the current endpoint itself, or a shunned one). */
bool cc_redirect(struct cc *c, const uint8_t *addr, size_t n);
/* Encode k with a fresh request id and Lamport time into c->out. */
int cc_encode(struct cc *c, struct cc_call *k);
/* Decode a frame body into m and observe its Lamport time; ERR_OK or an error
 * with errmsg set (m untouched). */
int cc_decode(struct cc *c, const uint8_t *body, size_t len, struct msg *m);
/* The next pseudo-random number (backoff jitter). */
uint64_t cc_rand(struct cc *c);

/* How a login went: CC_LOGIN_OK (c->authed set); CC_LOGIN_RETRY (the member
 * failed: another one); CC_LOGIN_REFUSED (the credentials were refused, *err
 * says how: final). errmsg says why when not OK. */
enum cc_login { CC_LOGIN_OK, CC_LOGIN_RETRY, CC_LOGIN_REFUSED };
enum cc_login cc_login_answer(struct cc *c, const struct msg *m, ddkv_err *err);

/* The step machine of one request. k's caller fields are set; the rest is
 * the core's. Each returns what to do next. */
enum cc_do cc_start(struct cc *c, struct cc_call *k, uint64_t now_ms);
enum cc_do cc_connected(struct cc *c, struct cc_call *k, uint64_t now_ms);
enum cc_do cc_connect_failed(struct cc *c, struct cc_call *k, uint64_t now_ms); /* errmsg set */
enum cc_do cc_sent(struct cc *c, struct cc_call *k, uint64_t now_ms);
enum cc_do cc_failed(struct cc *c, struct cc_call *k, enum cc_io how, uint64_t now_ms); /* errmsg set */
/* The errmsg of a CC_DO_RECV whose k->until_ms passed ("no reply from ...
 * within N ms"), for the driver to report with cc_failed(CC_IO_TIMEOUT). */
void cc_no_reply(struct cc *c, const struct cc_call *k);
enum cc_do cc_frame(struct cc *c, struct cc_call *k, const uint8_t *body, size_t len, uint64_t now_ms);
enum cc_do cc_woke(struct cc *c, struct cc_call *k, uint64_t now_ms);

#endif
