/* The client core: endpoints, sessions, request ids and the retry and
 * in-doubt rules of one request, with no I/O (see core.h for the rules). */
#include "client/core.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proto/version.h"
#include "util/err.h"

/* --- state --- */

void *dup_bytes(const void *p, size_t n)
{
    if (n == SIZE_MAX)
        return NULL;
    char *q = malloc(n + 1);
    if (!q)
        return NULL;
    if (n)
        memcpy(q, p, n);
    q[n] = 0;
    return q;
}

ddkv_err cc_fail(struct cc *c, ddkv_err code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(c->errmsg, sizeof c->errmsg, fmt, ap);
    va_end(ap);
    return code;
}

const char *cc_cur_text(const struct cc *c)
{
    return c->n_eps ? c->eps[c->cur].text : "?";
}

void cc_endpoint_free(struct cc_endpoint *e)
{
    free(e->text);
    free(e->host);
    free(e->port);
    memset(e, 0, sizeof *e);
}

/* Parse "host:port" or "[v6]:port" (s[0..n), surrounding blanks allowed). */
int cc_endpoint_parse(struct cc_endpoint *e, const char *s, size_t n, char *why, size_t why_len)
{
    memset(e, 0, sizeof *e);
    while (n && (*s == ' ' || *s == '\t'))
        s++, n--;
    while (n && (s[n - 1] == ' ' || s[n - 1] == '\t'))
        n--;
    const char *host = s, *colon;
    size_t host_len;
    if (n && s[0] == '[') {
        const char *close = memchr(s, ']', n);
        if (!close || close + 1 == s + n || close[1] != ':') {
            snprintf(why, why_len, "'%.*s': expected [ipv6]:port", (int)n, s);
            return -1;
        }
        host = s + 1;
        host_len = (size_t)(close - host);
        colon = close + 1;
    } else {
        colon = NULL;
        for (size_t i = 0; i < n; i++)
            if (s[i] == ':') {
                if (colon) {
                    snprintf(why, why_len, "'%.*s': an IPv6 host needs brackets, [::1]:7001", (int)n, s);
                    return -1;
                }
                colon = s + i;
            }
        if (!colon) {
            snprintf(why, why_len, "'%.*s': expected host:port", (int)n, s);
            return -1;
        }
        host_len = (size_t)(colon - s);
    }
    const char *port = colon + 1;
    size_t port_len = (size_t)(s + n - port);
    unsigned long pv = 0;
    for (size_t i = 0; i < port_len && pv <= 65535; i++) {
        if (port[i] < '0' || port[i] > '9') {
            pv = 0;
            break;
        }
        pv = pv * 10 + (unsigned long)(port[i] - '0');
    }
    if (host_len == 0 || port_len == 0 || pv == 0 || pv > 65535) {
        snprintf(why, why_len, "'%.*s': expected host:port with a port in 1..65535", (int)n, s);
        return -1;
    }
    e->text = dup_bytes(s, n);
    e->host = dup_bytes(host, host_len);
    e->port = dup_bytes(port, port_len);
    if (!e->text || !e->host || !e->port) {
        cc_endpoint_free(e);
        snprintf(why, why_len, "out of memory");
        return -1;
    }
    return 0;
}

ddkv_err cc_init(struct cc *c, const char *endpoints, uint64_t client_id, uint32_t timeout_ms,
                 uint32_t connect_timeout_ms, char *why, size_t why_len)
{
    memset(c, 0, sizeof *c);
    c->answered = -1;
    c->shunned = -1;
    c->client_id = client_id ? client_id : 1; /* 0 reads as "no session" on the wire */
    c->rng = c->client_id;
    c->timeout_ms = timeout_ms ? timeout_ms : DDKV_DEFAULT_TIMEOUT_MS;
    c->connect_timeout_ms = connect_timeout_ms ? connect_timeout_ms : DDKV_DEFAULT_CONNECT_TIMEOUT_MS;
    c->attempt_ms = CC_DEFAULT_ATTEMPT_MS;
    const char *s = endpoints ? endpoints : DDKV_DEFAULT_ENDPOINTS;
    for (;;) {
        const char *comma = strchr(s, ',');
        size_t n = comma ? (size_t)(comma - s) : strlen(s);
        if (c->n_eps == CC_MAX_ENDPOINTS) {
            snprintf(why, why_len, "endpoints: more than %d endpoints", CC_MAX_ENDPOINTS);
            return DDKV_ERR_USAGE;
        }
        char ewhy[180];
        if (cc_endpoint_parse(&c->eps[c->n_eps], s, n, ewhy, sizeof ewhy) != 0) {
            snprintf(why, why_len, "endpoints: %s", ewhy);
            return strcmp(ewhy, "out of memory") == 0 ? DDKV_ERR_NOMEM : DDKV_ERR_USAGE;
        }
        c->n_eps++;
        if (!comma)
            break;
        s = comma + 1;
    }
    c->n_given = c->n_eps;
    return DDKV_OK;
}

ddkv_err cc_set_credentials(struct cc *c, const char *user, const char *password, char *why, size_t why_len)
{
    size_t ul = strlen(user), pl = password ? strlen(password) : 0;
    if (ul == 0 || ul > DDKV_AUTH_NAME_MAX || pl > DDKV_AUTH_PASSWORD_MAX) {
        snprintf(why, why_len, "credentials: a user name is 1..%u bytes and a password at most %u",
                 DDKV_AUTH_NAME_MAX, DDKV_AUTH_PASSWORD_MAX);
        return DDKV_ERR_USAGE;
    }
    c->user = dup_bytes(user, ul);
    c->password = dup_bytes(password ? password : "", pl);
    if (!c->user || !c->password) {
        snprintf(why, why_len, "out of memory");
        return DDKV_ERR_NOMEM;
    }
    return DDKV_OK;
}

void cc_free(struct cc *c)
{
    buf_free(&c->out);
    for (size_t i = 0; i < c->n_eps; i++)
        cc_endpoint_free(&c->eps[i]);
    c->n_eps = 0;
    free(c->user);
    if (c->password) {
        volatile char *p = c->password;
        while (*p)
            *p++ = 0;
        free(c->password);
    }
    c->user = c->password = NULL;
}

/* splitmix64: only spreads backoff sleeps of clients that failed together. */
uint64_t cc_rand(struct cc *c)
{
    uint64_t z = (c->rng += UINT64_C(0x9e3779b97f4a7c15));
    z = (z ^ (z >> 30)) * UINT64_C(0xbf58476d1ce4e5b9);
    z = (z ^ (z >> 27)) * UINT64_C(0x94d049bb133111eb);
    return z ^ (z >> 31);
}

void cc_lost(struct cc *c)
{
    c->up = false;
    c->greeted = false;
    c->authed = false; /* a new connection has no identity yet */
}

void cc_rotate(struct cc *c)
{
    cc_lost(c);
    if (c->n_eps)
        c->cur = (c->cur + 1) % c->n_eps;
    if (c->n_eps > 1 && (int)c->cur == c->shunned)
        c->cur = (c->cur + 1) % c->n_eps;
}

/* The current endpoint did not answer within an attempt. */
static void shun(struct cc *c, uint64_t now_ms)
{
    c->shunned = (int)c->cur;
    c->shunned_until_ms = now_ms + CC_SHUN_MS;
}

/* The shun ends when its time is up or the member answers. */
static void shun_check(struct cc *c, uint64_t now_ms)
{
    if (c->shunned >= 0 && (now_ms >= c->shunned_until_ms || c->answered == c->shunned))
        c->shunned = -1;
}

static int endpoint_find(const struct cc *c, const char *text)
{
    for (size_t i = 0; i < c->n_eps; i++)
        if (strcmp(c->eps[i].text, text) == 0)
            return (int)i;
    return -1;
}

bool cc_redirect(struct cc *c, const uint8_t *addr, size_t n)
{
    char why[128];
    struct cc_endpoint e;
    if (n == 0 || cc_endpoint_parse(&e, (const char *)addr, n, why, sizeof why) != 0)
        return false;
    int i = endpoint_find(c, e.text);
    if (i == (int)c->cur || (i >= 0 && i == c->shunned)) {
        cc_endpoint_free(&e);
        return false;
    }
    if (i >= 0) {
        cc_endpoint_free(&e);
    } else {
        /* Learned leaders go after the given endpoints; when the table is full
         * the first learned slot is reused. */
        size_t slot;
        if (c->n_eps < CC_MAX_ENDPOINTS) {
            slot = c->n_eps++;
        } else if (c->n_given < CC_MAX_ENDPOINTS && c->n_given != c->cur) {
            slot = c->n_given;
            cc_endpoint_free(&c->eps[slot]);
        } else {
            cc_endpoint_free(&e);
            return false;
        }
        c->eps[slot] = e;
        if (c->answered == (int)slot)
            c->answered = -1;
        if (c->shunned == (int)slot)
            c->shunned = -1;
        i = (int)slot;
    }
    cc_lost(c);
    c->cur = (size_t)i;
    c->redirects_total++;
    return true;
}

/* --- frames --- */

static int encode_fields(struct cc *c, uint32_t type, const struct cc_field *fs, uint32_t nf, uint64_t *rid)
{
    buf_reset(&c->out);
    *rid = ++c->next_rid;
    struct msg_writer w;
    msg_begin(&w, &c->out, type, lamport_tick(&c->clock), *rid, nf);
    for (uint32_t i = 0; i < nf; i++) {
        const struct cc_field *f = &fs[i];
        switch (f->kind) {
        case CC_U64:
            mw_u64(&w, f->u);
            break;
        case CC_BIN:
            mw_bin(&w, f->p, f->n);
            break;
        case CC_CMPS:
            mw_array(&w, (uint32_t)f->n);
            for (size_t j = 0; j < f->n; j++) {
                const struct ddkv_compare *cm = (const struct ddkv_compare *)f->p + j;
                mw_array(&w, 4);
                mw_bin(&w, cm->key, cm->key_len);
                mw_u64(&w, (uint64_t)cm->field);
                mw_u64(&w, (uint64_t)cm->cmp);
                if (cm->field == DDKV_CMP_VALUE)
                    mw_bin(&w, cm->value, cm->value_len);
                else
                    mw_u64(&w, cm->number);
            }
            break;
        case CC_OPS:
            mw_array(&w, (uint32_t)f->n);
            for (size_t j = 0; j < f->n; j++) {
                const struct ddkv_op *op = (const struct ddkv_op *)f->p + j;
                bool put = op->kind == DDKV_OP_PUT;
                mw_array(&w, 4);
                mw_u64(&w, (uint64_t)op->kind);
                mw_bin(&w, op->key, op->key_len);
                mw_bin(&w, put ? op->value : NULL, put ? op->value_len : 0);
                mw_u64(&w, put ? op->lease_id : 0);
            }
            break;
        }
    }
    return msg_end(&w);
}

int cc_encode(struct cc *c, struct cc_call *k)
{
    return encode_fields(c, k->type, k->f, k->nf, &k->rid);
}

int cc_decode(struct cc *c, const uint8_t *body, size_t len, struct msg *m)
{
    struct errbuf eb;
    int rc = msg_decode(m, body, len, &msg_limits_reply, &eb);
    if (rc != ERR_OK) {
        cc_fail(c, DDKV_ERR_PROTOCOL, "garbled reply from %s: %s", cc_cur_text(c), eb.msg);
        return rc;
    }
    rc = lamport_observe(&c->clock, m->lamport, 0);
    if (rc != ERR_OK) {
        cc_fail(c, DDKV_ERR_PROTOCOL, "garbled reply from %s: Lamport time %llu out of range", cc_cur_text(c),
                (unsigned long long)m->lamport);
        msg_free(m);
    }
    return rc;
}

/* --- the step machine --- */

static enum cc_do done(struct cc_call *k, ddkv_err err)
{
    k->err = err;
    k->ended_in = k->phase;
    k->phase = CC_P_DONE;
    return CC_DO_DONE;
}

/* Replace errmsg with a prefix and the old errmsg, for a write whose outcome
 * became unknown. */
static enum cc_do unknown_outcome(struct cc *c, struct cc_call *k)
{
    char detail[sizeof c->errmsg];
    memcpy(detail, c->errmsg, sizeof detail);
    cc_fail(c, DDKV_ERR_UNKNOWN_OUTCOME,
            "the write's outcome is unknown (it may or may not have been applied): %.150s", detail);
    return done(k, DDKV_ERR_UNKNOWN_OUTCOME);
}

/* Time is up. Attempts that led here either ended with the node not acting
 * on the request (then it is "unavailable"), or left a write in doubt: then
 * it is "unknown outcome". */
static enum cc_do out_of_time(struct cc *c, struct cc_call *k)
{
    if (k->in_doubt)
        return unknown_outcome(c, k);
    char detail[sizeof c->errmsg];
    memcpy(detail, c->errmsg, sizeof detail);
    if (!k->reached)
        cc_fail(c, DDKV_ERR_UNAVAILABLE, "no endpoint reachable within %u ms (last error: %.150s)",
                (unsigned)c->timeout_ms, detail[0] ? detail : "none");
    else
        cc_fail(c, DDKV_ERR_UNAVAILABLE, "cluster unavailable for %u ms (last error: %.150s)",
                (unsigned)c->timeout_ms, detail);
    return done(k, DDKV_ERR_UNAVAILABLE);
}

/* ms from now (0: no bound of its own), never past the call's deadline. */
static uint64_t within_deadline(const struct cc_call *k, uint64_t now, uint32_t ms)
{
    return ms && now + ms < k->deadline_ms ? now + ms : k->deadline_ms;
}

/* The next frame to send on the connection, or the connection to make. */
static enum cc_do next(struct cc *c, struct cc_call *k, uint64_t now)
{
    if (now >= k->deadline_ms)
        return out_of_time(c, k);
    k->sent = false;
    if (!c->up) {
        k->phase = CC_P_CONNECT;
        k->until_ms = within_deadline(k, now, c->connect_timeout_ms);
        return CC_DO_CONNECT;
    }
    k->until_ms = k->deadline_ms;
    if (!c->greeted) {
        struct cc_field f[] = {
            {.kind = CC_U64, .u = DDKV_PROTOCOL_VERSION},
            {.kind = CC_U64, .u = DDKV_RELEASE_VERSION},
        };
        k->phase = CC_P_GREET;
        if (encode_fields(c, DDKV_MSG_HELLO, f, 2, &k->rid) != ERR_OK) {
            cc_lost(c);
            return done(k, cc_fail(c, DDKV_ERR_NOMEM, "out of memory greeting the node"));
        }
        return CC_DO_SEND;
    }
    if (c->user && !c->authed) {
        struct cc_field f[] = {
            {.kind = CC_BIN, .p = c->user, .n = strlen(c->user)},
            {.kind = CC_BIN, .p = c->password, .n = strlen(c->password)},
        };
        k->phase = CC_P_LOGIN;
        if (encode_fields(c, DDKV_MSG_AUTH, f, 2, &k->rid) != ERR_OK)
            return done(k, cc_fail(c, DDKV_ERR_NOMEM, "out of memory encoding AUTH"));
        return CC_DO_SEND;
    }
    k->phase = CC_P_REQUEST;
    if (cc_encode(c, k) != ERR_OK)
        return done(k, cc_fail(c, DDKV_ERR_NOMEM, "out of memory encoding the request"));
    return CC_DO_SEND;
}

/* Wait before the next attempt: half fixed, half random (spreads clients that
 * failed at the same moment), doubling up to CC_BACKOFF_MAX_MS, never past
 * the deadline. */
static enum cc_do backoff(struct cc *c, struct cc_call *k, uint64_t now)
{
    uint64_t ms = k->backoff_ms / 2 + cc_rand(c) % (k->backoff_ms / 2 + 1);
    k->backoff_ms = k->backoff_ms * 2 > CC_BACKOFF_MAX_MS ? CC_BACKOFF_MAX_MS : k->backoff_ms * 2;
    uint64_t left = now < k->deadline_ms ? k->deadline_ms - now : 0;
    if (ms > left)
        ms = left;
    if (ms == 0)
        return next(c, k, now);
    k->until_ms = now + ms;
    return CC_DO_SLEEP;
}

static enum cc_do rotate_backoff(struct cc *c, struct cc_call *k, uint64_t now)
{
    cc_rotate(c);
    return backoff(c, k, now);
}

enum cc_do cc_start(struct cc *c, struct cc_call *k, uint64_t now_ms)
{
    k->phase = CC_P_CONNECT;
    k->sent = k->reached = k->in_doubt = k->relogged = false;
    k->redirects = 0;
    k->conn_fails = 0;
    k->backoff_ms = CC_BACKOFF_MIN_MS;
    k->deadline_ms = now_ms + c->timeout_ms;
    k->err = DDKV_OK;
    memset(&k->reply, 0, sizeof k->reply);
    c->errmsg[0] = 0;
    shun_check(c, now_ms);
    c->answered = -1;
    if ((int)c->cur == c->shunned && c->n_eps > 1)
        cc_rotate(c); /* which passes the shunned one by */
    return next(c, k, now_ms);
}

enum cc_do cc_woke(struct cc *c, struct cc_call *k, uint64_t now_ms)
{
    return next(c, k, now_ms);
}

enum cc_do cc_connected(struct cc *c, struct cc_call *k, uint64_t now_ms)
{
    c->up = true;
    c->greeted = c->authed = false;
    k->reached = true;
    k->conn_fails = 0;
    return next(c, k, now_ms);
}

/* Every endpoint is tried once, from the current one, before a backoff. */
enum cc_do cc_connect_failed(struct cc *c, struct cc_call *k, uint64_t now_ms)
{
    cc_rotate(c);
    if (++k->conn_fails % c->n_eps == 0)
        return backoff(c, k, now_ms);
    return next(c, k, now_ms);
}

/* From now the node may act on the frame: its reply is awaited for one
 * attempt (see cc_failed for when that passes). */
enum cc_do cc_sent(struct cc *c, struct cc_call *k, uint64_t now_ms)
{
    k->sent = true;
    k->sent_ms = now_ms;
    k->until_ms = within_deadline(k, now_ms, k->slow ? 0 : c->attempt_ms);
    return CC_DO_RECV;
}

void cc_no_reply(struct cc *c, const struct cc_call *k)
{
    cc_fail(c, DDKV_ERR_TIMEOUT, "no reply from %s within %llu ms", cc_cur_text(c),
            (unsigned long long)(k->until_ms > k->sent_ms ? k->until_ms - k->sent_ms : 0));
}

enum cc_do cc_failed(struct cc *c, struct cc_call *k, enum cc_io how, uint64_t now_ms)
{
    if (k->phase == CC_P_GREET) {
        cc_lost(c);
        if (how == CC_IO_REFUSED)
            return k->in_doubt ? unknown_outcome(c, k) : done(k, DDKV_ERR_UNAVAILABLE);
        if (how == CC_IO_NOMEM)
            return done(k, cc_fail(c, DDKV_ERR_NOMEM, "out of memory greeting the node"));
        return rotate_backoff(c, k, now_ms);
    }
    if (k->phase == CC_P_LOGIN)
        return rotate_backoff(c, k, now_ms);
    if (k->phase != CC_P_REQUEST)
        return done(k, k->err ? k->err : DDKV_ERR_USAGE);
    if (!k->sent) {
        /* Not wholly sent: a node never acts on a partial frame. A send
         * waits until the deadline; the next call starts elsewhere. */
        if (how == CC_IO_TIMEOUT) {
            cc_rotate(c);
            return k->in_doubt ? unknown_outcome(c, k) : done(k, DDKV_ERR_TIMEOUT);
        }
        return rotate_backoff(c, k, now_ms);
    }
    /* No reply in time: the member is taken as gone (a leader whose machine
     * died without a reset looks just like this). Before the call's deadline
     * (the attempt's passed) that is as if the connection had broken. Either
     * way what comes next, in this call or the next one, goes to another
     * member first. */
    bool silent = how == CC_IO_TIMEOUT;
    if (silent)
        shun(c, now_ms);
    if (silent && now_ms < k->deadline_ms)
        how = CC_IO_BROKEN;
    cc_lost(c);
    if (how == CC_IO_REFUSED)
        return done(k, DDKV_ERR_UNAVAILABLE); /* a TLS port never read the request */
    if (how == CC_IO_NOMEM)
        return done(k, cc_fail(c, DDKV_ERR_NOMEM, "out of memory reading the reply"));
    if (k->mutates && !k->once && how == CC_IO_BROKEN) {
        /* The node died or cut us off after the write left: it may have been
         * applied. Sending it again with the same (client_id, seq) is safe:
         * the session table applies it once and answers the retry with the
         * original result. Ask another member. */
        k->in_doubt = true;
        return rotate_backoff(c, k, now_ms);
    }
    /* A read that lost its connection is safe to ask elsewhere. */
    if (!k->mutates && how == CC_IO_BROKEN)
        return rotate_backoff(c, k, now_ms);
    if (silent)
        cc_rotate(c); /* the call ends here: the next starts at another member */
    if (k->mutates)
        return unknown_outcome(c, k);
    return done(k, how == CC_IO_TIMEOUT ? DDKV_ERR_TIMEOUT : DDKV_ERR_PROTOCOL);
}

/* HELLO -> WELCOME. A 0.1.0 node does not know HELLO: it answers BAD_REQUEST
 * and keeps the connection, and is taken for 0.1.0. */
static enum cc_do greet_reply(struct cc *c, struct cc_call *k, struct msg *m, uint64_t now)
{
    uint32_t type = m->type;
    uint64_t proto = 0, nv = 0, cv = 0, code = 0;
    bool ok = true;
    if (m->type == DDKV_MSG_WELCOME) {
        ok = msg_u64(m, 0, &proto) == ERR_OK && msg_u64(m, 1, &nv) == ERR_OK && msg_u64(m, 2, &cv) == ERR_OK &&
             version_valid(nv) && version_valid(cv);
    } else if (m->type == DDKV_MSG_ERROR && msg_u64(m, 0, &code) == ERR_OK && code == DDKV_WERR_BAD_REQUEST &&
               m->request_id != 0) {
        nv = cv = DDKV_VERSION_0_1_0;
    } else if (m->type == DDKV_MSG_ERROR && code != 0) {
        /* The node refused the connection (a plain client on a TLS port,
         * too many connections, shutting down): its words, then another. */
        const uint8_t *text = NULL;
        size_t tlen = 0;
        (void)msg_bytes_opt(m, 1, &text, &tlen);
        cc_fail(c, DDKV_ERR_UNAVAILABLE, "%s: %.*s", cc_cur_text(c), (int)(tlen > 180 ? 180 : tlen),
                text ? (const char *)text : wire_error_name((uint32_t)code));
        msg_free(m);
        return rotate_backoff(c, k, now);
    } else {
        ok = false;
    }
    msg_free(m);
    if (!ok) {
        cc_fail(c, DDKV_ERR_UNAVAILABLE, "%s answered HELLO with a malformed %s", cc_cur_text(c),
                msg_type_name(type));
        return rotate_backoff(c, k, now);
    }
    c->node_version = nv;
    c->cluster_version = cv;
    c->greeted = true;
    return next(c, k, now);
}

enum cc_login cc_login_answer(struct cc *c, const struct msg *m, ddkv_err *err)
{
    uint64_t code = 0;
    const uint8_t *text = NULL;
    size_t tlen = 0;
    if (m->type == DDKV_MSG_AUTHED) {
        c->authed = true;
        return CC_LOGIN_OK;
    }
    if (m->type == DDKV_MSG_ERROR && msg_u64(m, 0, &code) == ERR_OK && msg_bytes_opt(m, 1, &text, &tlen) == ERR_OK &&
        code != DDKV_WERR_UNAVAILABLE && code != DDKV_WERR_NOT_LEADER && code != DDKV_WERR_TIMEOUT) {
        /* PERMISSION_DENIED (wrong user or password), or a node that does
         * not know AUTH (BAD_REQUEST): either way, not for another try. */
        *err = cc_fail(c, code == DDKV_WERR_BAD_REQUEST ? DDKV_ERR_BAD_REQUEST : DDKV_ERR_PERMISSION_DENIED,
                       "%s: authenticating as '%.64s': %.*s", cc_cur_text(c), c->user ? c->user : "",
                       (int)(tlen > 150 ? 150 : tlen), text ? (const char *)text : "");
        return CC_LOGIN_REFUSED;
    }
    cc_fail(c, DDKV_ERR_UNAVAILABLE, "%s did not authenticate the connection (%s)", cc_cur_text(c),
            msg_type_name(m->type));
    return CC_LOGIN_RETRY;
}

static enum cc_do login_reply(struct cc *c, struct cc_call *k, struct msg *m, uint64_t now)
{
    ddkv_err refused = DDKV_ERR_PERMISSION_DENIED;
    enum cc_login how = cc_login_answer(c, m, &refused);
    msg_free(m);
    if (how == CC_LOGIN_OK)
        return next(c, k, now);
    if (how == CC_LOGIN_REFUSED) {
        cc_lost(c);
        return k->in_doubt ? unknown_outcome(c, k) : done(k, refused);
    }
    return rotate_backoff(c, k, now);
}

/* The node's ERROR answer to the request: retry what is safe, else the error. */
static enum cc_do error_reply(struct cc *c, struct cc_call *k, struct msg *m, uint64_t now)
{
    uint64_t code = 0;
    const uint8_t *text = NULL, *leader = NULL;
    size_t text_len = 0, leader_len = 0;
    if (msg_u64(m, 0, &code) != ERR_OK || msg_bytes_opt(m, 1, &text, &text_len) != ERR_OK ||
        msg_bytes_opt(m, 2, &leader, &leader_len) != ERR_OK) {
        msg_free(m);
        cc_lost(c);
        cc_fail(c, DDKV_ERR_PROTOCOL, "garbled ERROR from %s", cc_cur_text(c));
        return k->mutates ? unknown_outcome(c, k) : done(k, DDKV_ERR_PROTOCOL);
    }
    bool conn_level = m->request_id == 0;
    if (text_len)
        cc_fail(c, DDKV_ERR_UNAVAILABLE, "%s: %.*s", cc_cur_text(c), (int)(text_len > 180 ? 180 : text_len),
                (const char *)text);
    else
        cc_fail(c, DDKV_ERR_UNAVAILABLE, "%s: %s", cc_cur_text(c), wire_error_name((uint32_t)code));
    ddkv_err result;
    switch (code) {
    case DDKV_WERR_NOT_LEADER: {
        /* Refused before it was proposed: safe to send again, writes included.
         * The hint is parsed before the frame (which holds it) is freed. */
        bool followed = cc_redirect(c, leader, leader_len);
        msg_free(m);
        if (!followed) /* no leader known yet (an election): another member later */
            return rotate_backoff(c, k, now);
        if (++k->redirects > CC_FREE_REDIRECTS)
            return backoff(c, k, now);
        return next(c, k, now);
    }
    case DDKV_WERR_UNAVAILABLE:
        /* Refused without proposing (no quorum, shutting down, storage
         * failure), or proposed and refused where it applied, nothing
         * changed (permissions changed since it was admitted): safe to
         * retry. Another member may do better. */
        msg_free(m);
        if (c->n_eps > 1 || conn_level)
            cc_rotate(c);
        return backoff(c, k, now);
    case DDKV_WERR_NOT_FOUND:
        result = DDKV_ERR_NOT_FOUND;
        break;
    case DDKV_WERR_TOO_LARGE:
        result = DDKV_ERR_TOO_LARGE;
        break;
    case DDKV_WERR_COMPACTED:
        result = DDKV_ERR_COMPACTED;
        break;
    case DDKV_WERR_FENCED:
        result = DDKV_ERR_FENCED;
        break;
    case DDKV_WERR_BAD_REQUEST:
        result = DDKV_ERR_BAD_REQUEST;
        break;
    case DDKV_WERR_UNAUTHENTICATED:
        /* Refused before it was acted on. With credentials, the identity
         * lapsed (auth was enabled after this connection logged in, or the
         * password changed): log in again once and resend. */
        if (c->user && !k->relogged && !conn_level) {
            k->relogged = true;
            c->authed = false;
            msg_free(m);
            return next(c, k, now);
        }
        result = DDKV_ERR_PERMISSION_DENIED;
        break;
    case DDKV_WERR_PERMISSION_DENIED:
        result = DDKV_ERR_PERMISSION_DENIED;
        break;
    case DDKV_WERR_TIMEOUT:
        /* Proposed but the commit was not confirmed in time. A write is
         * retried under its session (applied at most once). */
        if (k->mutates && !k->once) {
            msg_free(m);
            k->in_doubt = true;
            return rotate_backoff(c, k, now);
        }
        result = DDKV_ERR_TIMEOUT;
        break;
    default:
        /* INTERNAL or a code newer than this client: the node failed in a way
         * that says nothing about whether a write took effect. */
        result = k->mutates ? DDKV_ERR_UNKNOWN_OUTCOME : DDKV_ERR_UNAVAILABLE;
        break;
    }
    msg_free(m);
    if (conn_level)
        cc_lost(c); /* the node closes after refusing a frame */
    return result == DDKV_ERR_UNKNOWN_OUTCOME ? unknown_outcome(c, k) : done(k, result);
}

enum cc_do cc_frame(struct cc *c, struct cc_call *k, const uint8_t *body, size_t len, uint64_t now_ms)
{
    struct msg m;
    if (cc_decode(c, body, len, &m) != ERR_OK)
        return cc_failed(c, k, CC_IO_GARBLED, now_ms);
    /* Replies to other ids are stale (an attempt given up on): dropped. An
     * ERROR with id 0 is the node refusing the connection's last frame before
     * it could read an id: with one request in flight, that frame was ours. */
    if (!k->sent || !(m.request_id == k->rid || (m.request_id == 0 && m.type == DDKV_MSG_ERROR))) {
        msg_free(&m);
        return k->sent ? CC_DO_RECV : CC_DO_SEND;
    }
    if (k->phase == CC_P_GREET)
        return greet_reply(c, k, &m, now_ms);
    if (k->phase == CC_P_LOGIN)
        return login_reply(c, k, &m, now_ms);
    if (k->phase != CC_P_REQUEST) {
        msg_free(&m);
        return k->phase == CC_P_DONE ? CC_DO_DONE : CC_DO_CONNECT;
    }
    c->answered = (int)c->cur;
    shun_check(c, now_ms);
    if (m.type == DDKV_MSG_ERROR)
        return error_reply(c, k, &m, now_ms);
    if (m.type == k->reply_type) {
        c->errmsg[0] = 0; /* the failures on the way here were handled */
        k->reply = m;
        return done(k, DDKV_OK);
    }
    uint32_t got = m.type;
    msg_free(&m);
    cc_lost(c);
    cc_fail(c, DDKV_ERR_PROTOCOL, "%s answered %s with %s", cc_cur_text(c), msg_type_name(k->type),
            msg_type_name(got));
    return k->mutates ? unknown_outcome(c, k) : done(k, DDKV_ERR_PROTOCOL);
}
