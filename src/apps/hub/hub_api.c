/* ddkv hub (see hub.h): the API's handlers. hub.c's loop routes a request
 * to a lane; a worker thread of the lane runs it here (hub_task_run) with its
 * own cluster client, or as the person signed in, and leaves the status and
 * reply in the task for the loop to send. Nothing here touches a
 * connection. */
#include "hub/hub_int.h"

#include <event2/buffer.h>
#include <event2/http.h>
#include <inttypes.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "hub/hub_jobs.h"
#include "hub/hub_series.h"
#include "hub/hub_session.h"
#include "hub/hub_users.h"
#include "jobs/submit.h"
#include "util/clock.h"

#define HUB_METRICS_DEFAULT_MS (40u * 60 * 1000)
#define HUB_LAMPORT_MAX 1000000000000ull /* a `since` below it (2001-09-09 in ms) is a Lamport time */

/* --- small helpers --- */

/* Client options for endpoints: the hub's timeout, TLS and credentials. */
void hub_options(const struct hub_config *cfg, const char *endpoints, uint32_t timeout_ms, struct ddkv_options *o)
{
    *o = cfg->cluster;
    o->endpoints = endpoints;
    o->timeout_ms = timeout_ms;
}

ddkv_client *hub_client(const struct hub_config *cfg, const char *endpoints, uint32_t timeout_ms)
{
    struct ddkv_options o;
    hub_options(cfg, endpoints, timeout_ms, &o);
    o.connect_timeout_ms = 500;
    /* What the hub lists (machines, metric points, jobs) is for display:
     * any member that has applied what this hub has seen may answer, without
     * a ReadIndex round through the leader per page. */
    o.list_consistency = DDKV_CONSISTENCY_CAUSAL;
    ddkv_client *c = NULL;
    char err[256];
    return ddkv_client_new(&o, &c, err, sizeof err) == DDKV_OK ? c : NULL;
}

char *hub_dump(json_t *o)
{
    char *s = o ? json_dumps(o, JSON_COMPACT | JSON_REAL_PRECISION(8)) : NULL;
    json_decref(o);
    return s;
}

void hub_task_error(struct task *t, int status, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    t->status = status;
    free(t->out);
    t->out = hub_dump(json_pack("{s:s}", "error", msg));
}

/* A libddkv failure as an HTTP status. */
static void task_fail(struct task *t, ddkv_client *c, ddkv_err e, const char *what)
{
    int status = e == DDKV_ERR_NOT_FOUND                                   ? 404
                 : e == DDKV_ERR_PERMISSION_DENIED                         ? 403
                 : e == DDKV_ERR_BAD_REQUEST || e == DDKV_ERR_TOO_LARGE ? 400
                                                                         : 503;
    hub_task_error(t, status, "%s: %s", what, c ? ddkv_client_errmsg(c) : ddkv_strerror(e));
}

/* A stored value as JSON, or as a string if it is not JSON. */
json_t *hub_value_json(const void *p, size_t n)
{
    json_error_t e;
    json_t *o = json_loadb(p, n, 0, &e);
    return o ? o : json_stringn_nocheck(p, n);
}

/* --- the handlers (worker threads) --- */

/* Every key under prefix as a JSON array of its values; with id_field, each
 * object value also gets the key's rest after the prefix under that name. */
/* The values under prefix as a JSON array, each object given its key's
 * rest as id_field (NULL: none). */
static ddkv_err list_array(ddkv_client *c, const char *prefix, uint64_t max, const char *id_field, json_t **out)
{
    size_t plen = strlen(prefix);
    struct ddkv_list l;
    ddkv_err e = ddkv_list_all(c, prefix, plen, max, &l);
    if (e != DDKV_OK)
        return e;
    json_t *arr = json_array();
    for (size_t i = 0; i < l.n; i++) {
        json_t *o = hub_value_json(l.entries[i].value, l.entries[i].value_len);
        if (id_field && json_is_object(o))
            json_object_set_new(o, id_field,
                                json_stringn((const char *)l.entries[i].key + plen, l.entries[i].key_len - plen));
        json_array_append_new(arr, o);
    }
    ddkv_list_free(&l);
    *out = arr;
    return DDKV_OK;
}

static void list_json(struct task *t, ddkv_client *c, const char *prefix, uint64_t max, const char *id_field,
                      const char *what)
{
    json_t *arr;
    ddkv_err e = list_array(c, prefix, max, id_field, &arr);
    if (e != DDKV_OK) {
        task_fail(t, c, e, what);
        return;
    }
    t->status = 200;
    t->out = hub_dump(arr);
}

/* A device that pushes series but runs no agent has no clients/ record:
 * it is listed as {"id","device":true} from its seriesmeta/ keys (up to
 * HUB_DEVICE_SCAN_MAX of them; none if the person may not read them). */
#define HUB_DEVICE_SCAN_MAX 20000u
static void h_clients(struct task *t, ddkv_client *c)
{
    json_t *arr;
    ddkv_err e = list_array(c, "clients/", 10000, "id", &arr);
    if (e != DDKV_OK) {
        task_fail(t, c, e, "listing clients");
        return;
    }
    struct ddkv_list l;
    if (ddkv_list_all(c, "seriesmeta/", 11, HUB_DEVICE_SCAN_MAX, &l) == DDKV_OK) {
        json_t *ids = json_object(); /* the ids listed so far */
        size_t i;
        json_t *v;
        json_array_foreach(arr, i, v)
        {
            const char *id = json_string_value(json_object_get(v, "id"));
            if (id)
                json_object_set_new(ids, id, json_true());
        }
        for (size_t k = 0; k < l.n; k++) {
            const char *key = (const char *)l.entries[k].key + 11;
            const char *slash = memchr(key, '/', l.entries[k].key_len - 11);
            if (!slash || slash == key)
                continue;
            json_t *id = json_stringn(key, (size_t)(slash - key));
            if (id && !json_object_get(ids, json_string_value(id))) {
                json_object_set_new(ids, json_string_value(id), json_true());
                json_array_append_new(arr, json_pack("{s:O, s:b}", "id", id, "device", 1));
            }
            json_decref(id);
        }
        json_decref(ids);
        ddkv_list_free(&l);
    }
    t->status = 200;
    t->out = hub_dump(arr);
}

static void h_metrics(struct task *t, ddkv_client *c)
{
    /* since: a Unix time in ms (points sampled after it), or, below
     * HUB_LAMPORT_MAX, a Lamport time (points written after it, whatever
     * their sample time: a flushed backlog included). Default: the last 40
     * minutes. */
    const char *s = evhttp_find_header(&t->query, "since");
    uint64_t since = s ? strtoull(s, NULL, 10) : 0, lamport = 0;
    if (since && since < HUB_LAMPORT_MAX) {
        lamport = since;
        since = 0;
    } else if (!since) {
        since = clock_wall_ms() - HUB_METRICS_DEFAULT_MS;
    }
    char prefix[192], after[224];
    int pl = snprintf(prefix, sizeof prefix, "metrics/%s/", t->arg);
    int al = lamport ? 0 : snprintf(after, sizeof after, "%s%013" PRIu64, prefix, since);
    /* The points are JSON already: splice them into one array. */
    struct evbuffer *out = evbuffer_new();
    evbuffer_add(out, "[", 1);
    bool first = true, more = true;
    while (more) {
        struct ddkv_list l;
        ddkv_err e = ddkv_list(c, prefix, (size_t)pl, after, (size_t)al, 1000, &l);
        if (e != DDKV_OK) {
            evbuffer_free(out);
            task_fail(t, c, e, "listing metrics");
            return;
        }
        for (size_t i = 0; i < l.n; i++) {
            if (l.entries[i].lamport <= lamport && lamport)
                continue;
            if (!first)
                evbuffer_add(out, ",", 1);
            evbuffer_add(out, l.entries[i].value, l.entries[i].value_len);
            first = false;
        }
        more = l.more && l.n > 0;
        if (l.n) {
            al = snprintf(after, sizeof after, "%.*s", (int)l.entries[l.n - 1].key_len,
                          (const char *)l.entries[l.n - 1].key);
        }
        ddkv_list_free(&l);
    }
    evbuffer_add(out, "]", 1);
    t->outbuf = out; /* sent as it is, without a copy */
    t->status = 200;
}

static void h_proxy(struct task *t, ddkv_client *c)
{
    char key[192];
    snprintf(key, sizeof key, "clients/%s", t->arg);
    struct ddkv_value v;
    ddkv_err e = ddkv_read(c, key, strlen(key), DDKV_CONSISTENCY_LINEARIZABLE, 0, &v);
    if (e != DDKV_OK) {
        task_fail(t, c, e, e == DDKV_ERR_NOT_FOUND ? "no such client (or its agent is gone)" : "reading the client");
        return;
    }
    ddkv_free(v.value);
    const char *kind = evhttp_find_header(&t->query, "kind");
    const char *minutes = evhttp_find_header(&t->query, "minutes");
    bool history = kind && strcmp(kind, "history") == 0;
    json_t *q = history ? json_pack("{s:s, s:i}", "kind", "history", "minutes", minutes ? atoi(minutes) : 5)
                        : json_pack("{s:s}", "kind", "now");
    char *qs = hub_dump(q);
    uint64_t rid = 0;
    if (getrandom(&rid, sizeof rid, 0) != (ssize_t)sizeof rid)
        rid = clock_mono_ns();
    char req[192], resp[192];
    snprintf(req, sizeof req, "req/%s/%016" PRIx64, t->arg, rid);
    snprintf(resp, sizeof resp, "resp/%s/%016" PRIx64, t->arg, rid);
    struct ddkv_write_result wr;
    e = qs ? ddkv_write(c, req, strlen(req), qs, strlen(qs), 0, &wr) : DDKV_ERR_NOMEM;
    free(qs);
    if (e != DDKV_OK) {
        task_fail(t, c, e, "asking the agent");
        return;
    }
    uint64_t until = clock_mono_ms() + HUB_PROXY_WAIT_MS;
    while (clock_mono_ms() < until) {
        e = ddkv_read(c, resp, strlen(resp), DDKV_CONSISTENCY_LINEARIZABLE, 0, &v);
        if (e == DDKV_OK) {
            t->out = malloc(v.len + 1);
            if (t->out)
                memcpy(t->out, v.value, v.len + 1);
            ddkv_free(v.value);
            t->status = t->out ? 200 : 500;
            return;
        }
        clock_sleep_ms(30);
    }
    ddkv_delete(c, req, strlen(req), &wr);
    hub_task_error(t, 504, "the agent of %s did not answer within %d ms", t->arg, HUB_PROXY_WAIT_MS);
}

/* Each endpoint's own status; a member that does not answer is named from
 * the member list of one that does (matching its client address). */
json_t *hub_cluster_json(const struct hub_config *cfg, const char *endpoints, uint32_t timeout_ms)
{
    enum { MAX_EPS = 16 };
    json_t *arr = json_array();
    char eps[1024];
    snprintf(eps, sizeof eps, "%s", endpoints);
    struct ddkv_status sts[MAX_EPS];
    size_t n = 0;
    const struct ddkv_status *known = NULL; /* the first answer's member list */
    const struct ddkv_status *lead = NULL;  /* the leader's: it knows each member's lag */
    for (char *save = NULL, *ep = strtok_r(eps, ",", &save); ep && n < MAX_EPS; ep = strtok_r(NULL, ",", &save)) {
        ddkv_client *c = hub_client(cfg, ep, timeout_ms < 1000 ? timeout_ms : 1000);
        struct ddkv_status *st = &sts[n];
        if (c && ddkv_status(c, st) == DDKV_OK) {
            /* Healthy: it sees a leader and, as it says itself, its storage
             * works and it is within the lag bounds (older nodes: leader). */
            bool healthy = st->leader != NULL && (!st->healthy_known || st->healthy);
            json_array_append_new(arr, json_pack("{s:s, s:s, s:s?, s:s?, s:I, s:I, s:I, s:I, s:I, s:b}", "endpoint", ep,
                                                 "name", st->name ? st->name : "?", "role", st->role, "leader",
                                                 st->leader, "term", (json_int_t)st->term, "commit",
                                                 (json_int_t)st->commit, "applied", (json_int_t)st->applied,
                                                 "revision", (json_int_t)st->revision, "keys", (json_int_t)st->keys,
                                                 "healthy", healthy));
            if (!known)
                known = st;
            if (st->role && !strcmp(st->role, "leader"))
                lead = st;
            n++;
        } else {
            json_array_append_new(arr, json_pack("{s:s, s:b, s:s}", "endpoint", ep, "healthy", 0, "error",
                                                 c ? ddkv_client_errmsg(c) : "bad endpoint"));
        }
        ddkv_client_free(c);
    }
    size_t i;
    json_t *o;
    json_array_foreach(arr, i, o) {
        const char *ep = json_string_value(json_object_get(o, "endpoint"));
        for (size_t m = 0; !json_object_get(o, "name") && known && m < known->n_members; m++) {
            const struct ddkv_member *mb = &known->members[m];
            if (mb->name && mb->client_addr && ep && !strcmp(mb->client_addr, ep))
                json_object_set_new(o, "name", json_string(mb->name));
        }
        /* The leader's view: match index and lag, and its word on health. */
        const char *name = json_string_value(json_object_get(o, "name"));
        for (size_t m = 0; name && lead && m < lead->n_members; m++) {
            const struct ddkv_member *mb = &lead->members[m];
            if (!mb->name || strcmp(mb->name, name) != 0 || !mb->lag_known)
                continue;
            json_object_set_new(o, "match", json_integer((json_int_t)mb->match));
            json_object_set_new(o, "lag_entries", json_integer((json_int_t)mb->lag_entries));
            json_object_set_new(o, "lag_ms", json_integer((json_int_t)mb->lag_ms));
            if (!mb->healthy)
                json_object_set_new(o, "healthy", json_false());
        }
    }
    for (size_t k = 0; k < n; k++)
        ddkv_status_free(&sts[k]);
    return arr;
}

static void h_cluster(struct task *t, ddkv_client *c)
{
    (void)c;
    t->status = 200;
    t->out = hub_dump(hub_cluster_json(t->h->cfg, t->h->cfg->endpoints, t->h->cfg->timeout_ms));
}

static void h_jobs(struct task *t, ddkv_client *c)
{
    list_json(t, c, "jobs/", 100000, NULL, "listing jobs");
}

static void h_job(struct task *t, ddkv_client *c)
{
    char key[192];
    snprintf(key, sizeof key, "jobs/%s", t->arg);
    struct ddkv_value v;
    ddkv_err e = ddkv_read(c, key, strlen(key), DDKV_CONSISTENCY_LINEARIZABLE, 0, &v);
    if (e != DDKV_OK) {
        task_fail(t, c, e, e == DDKV_ERR_NOT_FOUND ? "no such job" : "reading the job");
        return;
    }
    json_t *job = hub_value_json(v.value, v.len);
    ddkv_free(v.value);
    /* A done job's result lives at jobresult/<its id>, the only result key
     * the hub reads: the record's "result" field is data (a worker named
     * it) and is never followed, so a record naming another key cannot make
     * the hub serve that key. */
    if (json_is_string(json_object_get(job, "result"))) {
        snprintf(key, sizeof key, "jobresult/%s", t->arg);
        if (ddkv_read(c, key, strlen(key), DDKV_CONSISTENCY_LINEARIZABLE, 0, &v) == DDKV_OK) {
            json_object_set_new(job, "result_value", hub_value_json(v.value, v.len));
            ddkv_free(v.value);
        }
    }
    t->status = 200;
    t->out = hub_dump(job);
}

static long read_body(void *ctx, uint8_t *buf, size_t cap)
{
    struct task *t = ctx;
    size_t n = t->body_len - t->body_read < cap ? t->body_len - t->body_read : cap;
    memcpy(buf, t->body + t->body_read, n);
    t->body_read += n;
    return (long)n;
}

static void h_job_post(struct task *t, ddkv_client *c)
{
    const char *name = evhttp_find_header(&t->query, "name");
    if (!t->body || t->body_len == 0) {
        hub_task_error(t, 400, "POST /api/jobs wants the file as the request body");
        return;
    }
    struct job_submitted js;
    char err[256];
    const char *algo = evhttp_find_header(&t->query, "algorithm"), *prio = evhttp_find_header(&t->query, "priority");
    ddkv_err e = job_submit_at(c, name ? name : "upload", algo && *algo ? algo : "stats", prio, 3, read_body, t, &js,
                               err, sizeof err);
    if (e != DDKV_OK) {
        hub_task_error(t, e == DDKV_ERR_TOO_LARGE                                ? 413
                      : e == DDKV_ERR_PERMISSION_DENIED                      ? 403
                      : e == DDKV_ERR_USAGE || e == DDKV_ERR_BAD_REQUEST ? 400
                                                                           : 503,
                   "%s", err);
        return;
    }
    t->status = 201;
    t->out = hub_dump(json_pack("{s:s, s:s, s:I}", "id", js.id, "data", js.prefix, "size", (json_int_t)js.size));
}

static void h_health(struct task *t, ddkv_client *c)
{
    struct ddkv_pong p;
    ddkv_err e = ddkv_ping(c, &p);
    if (e != DDKV_OK || !p.leader) {
        if (e == DDKV_OK)
            ddkv_pong_free(&p);
        hub_task_error(t, 503, "the cluster does not answer with a leader");
        return;
    }
    t->status = 200;
    t->out = hub_dump(json_pack("{s:b, s:s}", "ok", 1, "leader", p.leader));
    ddkv_pong_free(&p);
}

/* --- sign-in: the handlers run as the person (hub_session.h) --- */

static void h_session(struct task *t, ddkv_client *uc, const struct hubsess_ref *ref)
{
    if (!ref) {
        t->status = 200;
        t->out = hub_dump(json_pack("{s:b, s:n, s:[], s:s}", "auth", 0, "user", "roles", "csrf", ""));
        return;
    }
    /* Roles as the cluster has them now: a revoked role shows at once. */
    struct ddkv_auth_status st;
    ddkv_err e = ddkv_auth_status(uc, &st);
    if (e != DDKV_OK) {
        task_fail(t, uc, e, "asking the cluster who you are");
        return;
    }
    json_t *roles = hubsess_roles_json(&st);
    t->status = 200;
    t->out = hub_dump(json_pack("{s:b, s:s, s:o, s:s, s:I}", "auth", 1, "user", ref->user, "roles", roles, "csrf",
                            ref->csrf, "expires", (json_int_t)ref->expires_ms));
    ddkv_auth_status_free(&st);
}

/* An event stream gets the kinds of event the person may read: one LIST of
 * each watched prefix as them (limit 1) says which (the cluster's status,
 * which every signed-in user may ask, always). */
static void h_events(struct task *t, ddkv_client *uc)
{
    static const char *const prefixes[3] = {"clients/", "metrics/", "jobs/"};
    t->sse_mask = 8;
    for (unsigned i = 0; i < 3; i++) {
        struct ddkv_list l;
        ddkv_err e = ddkv_list(uc, prefixes[i], strlen(prefixes[i]), NULL, 0, 1, &l);
        if (e == DDKV_OK) {
            t->sse_mask |= 1u << i;
            ddkv_list_free(&l);
        } else if (e != DDKV_ERR_PERMISSION_DENIED) {
            task_fail(t, uc, e, "opening the event stream");
            return;
        }
    }
    /* A series stream of one client: the person must read its series. */
    const char *sid = evhttp_find_header(&t->query, "series");
    if (sid) {
        char pfx[200];
        struct ddkv_list l;
        if (!hub_id_ok(sid)) {
            hub_task_error(t, 400, "bad client id in series=");
            return;
        }
        snprintf(pfx, sizeof pfx, "series/%s/", sid);
        ddkv_err e = ddkv_list(uc, pfx, strlen(pfx), NULL, 0, 1, &l);
        if (e == DDKV_OK) {
            ddkv_list_free(&l);
        } else {
            task_fail(t, uc, e, "opening the series stream");
            return;
        }
    }
    t->status = 200;
    t->out = strdup("{}");
}

static void h_users(struct task *t, ddkv_client *uc)
{
    enum hubusers_op op = t->route == R_USERS        ? HUBUSERS_LIST
                          : t->route == R_USER_ADD    ? HUBUSERS_ADD
                          : t->route == R_USER_REMOVE ? HUBUSERS_REMOVE
                          : t->route == R_USER_GRANT  ? HUBUSERS_GRANT
                                                      : HUBUSERS_REVOKE;
    t->out = hubusers_handle(uc, op, t->arg, (const char *)t->body, t->body_len, &t->status);
}

void hub_task_run(struct task *t, ddkv_client *hubc)
{
    struct hub *h = t->h;
    bool secure = h->tls != NULL; /* the cookie is then Secure */
    if (t->route == R_LOGIN) {
        hubsess_login(h->sess, hubc, t->addr, (const char *)t->body, t->body_len, secure, &t->status, &t->out,
                      &t->set_cookie);
        return;
    }
    /* With the cluster's auth on, everything but /health is done as the
     * person signed in, with their own logged-in client: the cluster's
     * permissions judge it, never the hub's. */
    struct hubsess_ref ref, *sref = NULL;
    ddkv_client *c = hubc;
    if (auth_on_get(h) && t->basic) {
        /* A device's push (route() lets Basic through on the push routes
         * only): as that user, no CSRF token (no cookie, nothing a
         * cross-site page could make a browser send). */
        char why[256];
        int st = hubsess_basic(h->sess, t->addr, t->basic, &ref, why, sizeof why);
        if (st) {
            hub_task_error(t, st, "%s", why);
            if (st == 401)
                t->set_cookie = strdup("WWW-Authenticate: Basic realm=\"ddkv hub\"\r\n");
            return;
        }
        sref = &ref;
        c = ref.client;
    } else if (auth_on_get(h) && t->route != R_HEALTH) {
        char why[256];
        int st = hubsess_open(h->sess, hubc, t->cookie, &ref, why, sizeof why);
        if (st) {
            hub_task_error(t, st, "%s", why);
            return;
        }
        if (t->mutating && !hubsess_token_eq(t->csrf, ref.csrf)) {
            hubsess_release(h->sess, &ref, false);
            hub_task_error(t, 403, "this request changes state and needs the header X-CSRF-Token (the csrf of "
                               "/api/login or /api/session)");
            return;
        }
        sref = &ref;
        c = ref.client;
    }
    switch (t->route) {
    case R_CLIENTS: h_clients(t, c); break;
    case R_METRICS: h_metrics(t, c); break;
    case R_PROXY: h_proxy(t, c); break;
    case R_CLUSTER: h_cluster(t, c); break;
    case R_JOBS: h_jobs(t, c); break;
    case R_JOB: h_job(t, c); break;
    case R_JOB_POST: h_job_post(t, c); break;
    case R_HEALTH: h_health(t, c); break;
    case R_SESSION: h_session(t, c, sref); break;
    case R_JOB_CANCEL: t->status = hub_job_remove(c, t->arg, 0, &t->out); break;
    case R_JOB_DELETE: t->status = hub_job_remove(c, t->arg, 1, &t->out); break;
    case R_JOB_DELETE_RESULT: t->status = hub_job_remove(c, t->arg, 2, &t->out); break;
    case R_JOB_CSV:
        t->status = hub_job_result_csv(c, t->arg, &t->out);
        t->ctype = t->status == 200 ? "text/csv; charset=utf-8" : NULL;
        break;
    case R_JOB_JSON:
        t->status = hub_job_result_json(c, t->arg, &t->out);
        if (t->status == 200 && (t->set_cookie = malloc(200))) /* the id is [0-9a-f-] (hub_jobs.c) */
            snprintf(t->set_cookie, 200, "Content-Disposition: attachment; filename=\"job-%.64s.json\"\r\n", t->arg);
        break;
    case R_ALGORITHMS: t->status = hub_algorithms(&t->out); break;
    case R_SERIES_LIST: t->status = hub_series_list(c, t->arg, &t->out); break;
    case R_SERIES:
        t->status = hub_series_query(c, t->arg, t->arg2, evhttp_find_header(&t->query, "window"), &t->out);
        break;
    case R_SERIES_POST:
        t->status = hub_series_post(c, t->arg, t->arg2, t->body, t->body_len, &t->out);
        break;
    case R_SERIES_BATCH: t->status = hub_series_post_batch(c, t->arg, t->body, t->body_len, &t->out); break;
    case R_EVENTS: h_events(t, c); break;
    case R_USERS:
    case R_USER_ADD:
    case R_USER_REMOVE:
    case R_USER_GRANT:
    case R_USER_REVOKE:
        if (!sref)
            hub_task_error(t, 409, "the cluster has authentication off: there are no users to manage");
        else
            h_users(t, c);
        break;
    case R_LOGOUT:
        if (sref) {
            char why[256];
            int st = hubsess_logout(h->sess, hubc, sref, secure, &t->set_cookie, why, sizeof why);
            if (st)
                hub_task_error(t, st, "%s", why);
            else
                t->status = 200, t->out = hub_dump(json_pack("{s:b}", "signed_out", 1));
        } else {
            t->status = 200;
            t->out = hub_dump(json_pack("{s:b}", "signed_out", 0));
        }
        break;
    case R_LOGIN: break;
    }
    /* A device's client that failed (its password changed, its grant gone)
     * is not kept: its next push logs in again, and is judged afresh. */
    if (sref)
        hubsess_release(h->sess, sref, t->basic && t->status >= 400);
}
