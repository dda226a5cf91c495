/* libddkv: the job queue and the authentication calls, over client_call
 * (client.c) and the client core's sessions. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "client/client_int.h"
#include "proto/msg.h"
#include "util/err.h"

/* --- the job queue --- */

static bool job_str_ok(const char *s, size_t cap)
{
    return s && *s && strlen(s) < cap;
}

ddkv_err ddkv_job_put(ddkv_client *c, const char *data_key, const char *name, uint32_t max_attempts, char **id)
{
    return ddkv_job_put_priority(c, data_key, name, max_attempts, NULL, id);
}

ddkv_err ddkv_job_put_priority(ddkv_client *c, const char *data_key, const char *name, uint32_t max_attempts,
                               const char *priority, char **id)
{
    *id = NULL;
    if (!job_str_ok(data_key, 256) || max_attempts < 1 || max_attempts > 100 || (name && strlen(name) >= 128))
        return client_fail(c, DDKV_ERR_USAGE,
                           "a job needs a data key (< 256 bytes), a name < 128 bytes and 1..100 attempts");
    if (priority && *priority && strcmp(priority, "high") && strcmp(priority, "normal") && strcmp(priority, "low"))
        return client_fail(c, DDKV_ERR_USAGE, "a job's priority is high, normal or low");
    bool prio = priority && *priority;
    struct cc_field f[] = {
        {.kind = CC_BIN, .p = data_key, .n = strlen(data_key)},
        {.kind = CC_U64, .u = max_attempts},
        {.kind = CC_U64, .u = c->cc.client_id},
        {.kind = CC_U64, .u = ++c->cc.seq},
        {.kind = CC_BIN, .p = name ? name : "", .n = name ? strlen(name) : 0},
        {.kind = CC_BIN, .p = priority, .n = prio ? strlen(priority) : 0},
    };
    struct cc_call k = {.type = DDKV_MSG_JOB_PUT, .reply_type = DDKV_MSG_JOB, .mutates = true, .f = f,
                     .nf = prio ? 6 : name ? 5 : 4};
    ddkv_err rc = client_call(c, &k);
    if (rc != DDKV_OK)
        return rc;
    const uint8_t *p;
    size_t n;
    if (msg_bytes(&k.reply, 0, &p, &n) != ERR_OK || n == 0)
        rc = client_bad_reply(c, &k, "expected [id, revision]");
    else if (!(*id = dup_bytes(p, n)))
        rc = client_fail(c, DDKV_ERR_NOMEM, "out of memory");
    msg_free(&k.reply);
    return rc;
}

void ddkv_job_claim_free(struct ddkv_job_claim *j)
{
    free(j->id);
    free(j->data_key);
    memset(j, 0, sizeof *j);
}

/* JOB_CLAIMED [id, token, data_key, attempts] into out. */
static ddkv_err job_claimed(struct ddkv_client *c, struct cc_call *k, struct ddkv_job_claim *out)
{
    const uint8_t *id, *data;
    size_t idn, datan;
    ddkv_err rc = DDKV_OK;
    if (msg_bytes(&k->reply, 0, &id, &idn) != ERR_OK || msg_u64(&k->reply, 1, &out->token) != ERR_OK ||
        msg_bytes(&k->reply, 2, &data, &datan) != ERR_OK || msg_u64(&k->reply, 3, &out->attempts) != ERR_OK) {
        rc = client_bad_reply(c, k, "expected [id, token, data_key, attempts]");
    } else {
        out->id = dup_bytes(id, idn);
        out->data_key = dup_bytes(data, datan);
        if (!out->id || !out->data_key) {
            ddkv_job_claim_free(out);
            rc = client_fail(c, DDKV_ERR_NOMEM, "out of memory");
        }
    }
    msg_free(&k->reply);
    return rc;
}

ddkv_err ddkv_job_claim(ddkv_client *c, const char *worker, uint64_t visibility_ms, struct ddkv_job_claim *out)
{
    memset(out, 0, sizeof *out);
    if (!job_str_ok(worker, 64))
        return client_fail(c, DDKV_ERR_USAGE, "a worker needs a name (< 64 bytes)");
    struct cc_field f[] = {
        {.kind = CC_BIN, .p = worker, .n = strlen(worker)},
        {.kind = CC_U64, .u = visibility_ms},
    };
    /* Never resent once sent: a claim whose answer is lost expires. */
    struct cc_call k = {.type = DDKV_MSG_JOB_CLAIM, .reply_type = DDKV_MSG_JOB_CLAIMED, .mutates = true,
                     .once = true, .f = f, .nf = 2};
    ddkv_err rc = client_call(c, &k);
    if (rc != DDKV_OK)
        return rc;
    if (k.reply.nf == 0) {
        msg_free(&k.reply);
        return client_fail(c, DDKV_ERR_NOT_FOUND, "no job waits");
    }
    return job_claimed(c, &k, out);
}

static ddkv_err job_settle(ddkv_client *c, uint32_t type, const char *id, uint64_t token, const char *arg,
                           const void *result, size_t rlen, char **state)
{
    if (state)
        *state = NULL;
    if (!job_str_ok(id, 64) || !arg || strlen(arg) >= 256)
        return client_fail(c, DDKV_ERR_USAGE, "a job id (< 64 bytes) and an argument (< 256 bytes)");
    /* Under the client's session: a retry after a lost answer is answered
     * with the first attempt's outcome, not refused as fenced. */
    struct cc_field f[] = {
        {.kind = CC_BIN, .p = id, .n = strlen(id)},
        {.kind = CC_U64, .u = token},
        {.kind = CC_BIN, .p = arg, .n = strlen(arg)},
        {.kind = CC_U64, .u = c->cc.client_id},
        {.kind = CC_U64, .u = ++c->cc.seq},
        {.kind = CC_BIN, .p = result, .n = rlen},
    };
    struct cc_call k = {.type = type, .reply_type = DDKV_MSG_JOB_SETTLED, .mutates = true, .f = f,
                     .nf = result ? 6 : 5};
    ddkv_err rc = client_call(c, &k);
    if (rc != DDKV_OK)
        return rc;
    const uint8_t *p;
    size_t n;
    if (msg_bytes(&k.reply, 0, &p, &n) != ERR_OK)
        rc = client_bad_reply(c, &k, "expected [state]");
    else if (state && !(*state = dup_bytes(p, n)))
        rc = client_fail(c, DDKV_ERR_NOMEM, "out of memory");
    msg_free(&k.reply);
    return rc;
}

ddkv_err ddkv_job_ack(ddkv_client *c, const char *id, uint64_t token, const char *result_key, const void *result,
                      size_t rlen)
{
    if (!result_key)
        result_key = ""; /* the node derives it: jobresult/<id> */
    if (strlen(result_key) >= 256)
        return client_fail(c, DDKV_ERR_USAGE, "the result's key must be under 256 bytes");
    return job_settle(c, DDKV_MSG_JOB_ACK, id, token, result_key, result, rlen, NULL);
}

ddkv_err ddkv_job_nack(ddkv_client *c, const char *id, uint64_t token, const char *reason, char **state)
{
    return job_settle(c, DDKV_MSG_JOB_NACK, id, token, reason ? reason : "", NULL, 0, state);
}

ddkv_err ddkv_job_extend(ddkv_client *c, const char *id, uint64_t *token, uint64_t visibility_ms)
{
    return ddkv_job_progress(c, id, token, visibility_ms, UINT64_MAX, 0);
}

ddkv_err ddkv_job_progress(ddkv_client *c, const char *id, uint64_t *token, uint64_t visibility_ms, uint64_t rows,
                           uint32_t percent)
{
    if (!job_str_ok(id, 64) || (rows != UINT64_MAX && percent > 100))
        return client_fail(c, DDKV_ERR_USAGE, "a job id (< 64 bytes) and a percent 0..100");
    struct cc_field f[] = {
        {.kind = CC_BIN, .p = id, .n = strlen(id)},
        {.kind = CC_U64, .u = *token},
        {.kind = CC_U64, .u = visibility_ms},
        {.kind = CC_U64, .u = c->cc.client_id},
        {.kind = CC_U64, .u = ++c->cc.seq},
        {.kind = CC_U64, .u = rows},
        {.kind = CC_U64, .u = percent},
    };
    struct cc_call k = {.type = DDKV_MSG_JOB_EXTEND, .reply_type = DDKV_MSG_JOB_CLAIMED, .mutates = true,
                     .f = f, .nf = rows != UINT64_MAX ? 7 : 5};
    ddkv_err rc = client_call(c, &k);
    if (rc != DDKV_OK)
        return rc;
    struct ddkv_job_claim j = {0};
    rc = job_claimed(c, &k, &j);
    if (rc == DDKV_OK)
        *token = j.token;
    ddkv_job_claim_free(&j);
    return rc;
}

ddkv_err ddkv_job_cancel(ddkv_client *c, const char *id, enum ddkv_job_removal what, char **state)
{
    if (state)
        *state = NULL;
    if (!job_str_ok(id, 64) || what < DDKV_JOB_CANCEL || what > DDKV_JOB_DELETE_RESULT)
        return client_fail(c, DDKV_ERR_USAGE, "a job id (< 64 bytes) and what to do (cancel, delete, delete result)");
    struct cc_field f[] = {
        {.kind = CC_BIN, .p = id, .n = strlen(id)},
        {.kind = CC_U64, .u = (uint64_t)what},
        {.kind = CC_U64, .u = c->cc.client_id},
        {.kind = CC_U64, .u = ++c->cc.seq},
    };
    struct cc_call k = {.type = DDKV_MSG_JOB_CANCEL, .reply_type = DDKV_MSG_JOB_SETTLED, .mutates = true, .f = f,
                     .nf = 4};
    ddkv_err rc = client_call(c, &k);
    if (rc != DDKV_OK)
        return rc;
    const uint8_t *p;
    size_t n;
    if (msg_bytes(&k.reply, 0, &p, &n) != ERR_OK)
        rc = client_bad_reply(c, &k, "expected [state]");
    else if (state && !(*state = dup_bytes(p, n)))
        rc = client_fail(c, DDKV_ERR_NOMEM, "out of memory");
    msg_free(&k.reply);
    return rc;
}

/* --- authentication and permissions --- */

/* One AUTH_CHANGE, a write under the client's session. */
static ddkv_err auth_change(ddkv_client *c, enum ddkv_auth_op op, const char *name, const void *arg, size_t alen,
                            uint64_t perm)
{
    if ((!arg && alen) || (op != DDKV_AUTH_ENABLE && op != DDKV_AUTH_DISABLE && (!name || !*name)))
        return client_fail(c, DDKV_ERR_USAGE, "a user or role name is required");
    struct cc_field f[] = {
        {.kind = CC_U64, .u = (uint64_t)op},
        {.kind = CC_BIN, .p = name ? name : "", .n = name ? strlen(name) : 0},
        {.kind = CC_BIN, .p = arg, .n = alen},
        {.kind = CC_U64, .u = perm},
        {.kind = CC_U64, .u = c->cc.client_id},
        {.kind = CC_U64, .u = ++c->cc.seq},
    };
    struct cc_call k = {.type = DDKV_MSG_AUTH_CHANGE, .reply_type = DDKV_MSG_AUTH_CHANGED, .mutates = true,
                     .f = f, .nf = 6};
    struct ddkv_write_result r;
    return client_change(c, &k, &r);
}

ddkv_err ddkv_auth_enable(ddkv_client *c)
{
    return auth_change(c, DDKV_AUTH_ENABLE, NULL, NULL, 0, 0);
}

ddkv_err ddkv_auth_disable(ddkv_client *c)
{
    return auth_change(c, DDKV_AUTH_DISABLE, NULL, NULL, 0, 0);
}

ddkv_err ddkv_user_add(ddkv_client *c, const char *name, const char *password)
{
    if (!password || !*password)
        return client_fail(c, DDKV_ERR_USAGE, "a password must not be empty");
    return auth_change(c, DDKV_AUTH_USER_ADD, name, password, strlen(password), 0);
}

ddkv_err ddkv_user_passwd(ddkv_client *c, const char *name, const char *password)
{
    if (!password || !*password)
        return client_fail(c, DDKV_ERR_USAGE, "a password must not be empty");
    return auth_change(c, DDKV_AUTH_USER_PASSWD, name, password, strlen(password), 0);
}

ddkv_err ddkv_user_remove(ddkv_client *c, const char *name)
{
    return auth_change(c, DDKV_AUTH_USER_REMOVE, name, NULL, 0, 0);
}

ddkv_err ddkv_user_grant(ddkv_client *c, const char *name, const char *role)
{
    if (!role || !*role)
        return client_fail(c, DDKV_ERR_USAGE, "a role name is required");
    return auth_change(c, DDKV_AUTH_USER_GRANT, name, role, strlen(role), 0);
}

ddkv_err ddkv_user_revoke(ddkv_client *c, const char *name, const char *role)
{
    if (!role || !*role)
        return client_fail(c, DDKV_ERR_USAGE, "a role name is required");
    return auth_change(c, DDKV_AUTH_USER_REVOKE, name, role, strlen(role), 0);
}

ddkv_err ddkv_role_add(ddkv_client *c, const char *name)
{
    return auth_change(c, DDKV_AUTH_ROLE_ADD, name, NULL, 0, 0);
}

ddkv_err ddkv_role_remove(ddkv_client *c, const char *name)
{
    return auth_change(c, DDKV_AUTH_ROLE_REMOVE, name, NULL, 0, 0);
}

ddkv_err ddkv_role_grant(ddkv_client *c, const char *name, const void *prefix, size_t plen, enum ddkv_perm perm)
{
    if (perm != DDKV_PERM_READ && perm != DDKV_PERM_READWRITE)
        return client_fail(c, DDKV_ERR_USAGE, "perm is DDKV_PERM_READ or DDKV_PERM_READWRITE");
    return auth_change(c, DDKV_AUTH_ROLE_GRANT, name, prefix, plen, (uint64_t)perm);
}

ddkv_err ddkv_role_revoke(ddkv_client *c, const char *name, const void *prefix, size_t plen)
{
    return auth_change(c, DDKV_AUTH_ROLE_REVOKE, name, prefix, plen, 0);
}

void ddkv_auth_status_free(struct ddkv_auth_status *s)
{
    for (size_t i = 0; i < s->n_roles; i++)
        free(s->roles[i]);
    free(s->roles);
    free(s->user);
    memset(s, 0, sizeof *s);
}

ddkv_err ddkv_auth_status(ddkv_client *c, struct ddkv_auth_status *out)
{
    memset(out, 0, sizeof *out);
    struct cc_call k = {.type = DDKV_MSG_AUTH_STATUS, .reply_type = DDKV_MSG_AUTH_INFO, .f = NULL, .nf = 0};
    ddkv_err rc = client_call(c, &k);
    if (rc != DDKV_OK)
        return rc;
    const msgpack_object *f = k.reply.f;
    const uint8_t *u = NULL;
    size_t ulen = 0;
    if (k.reply.nf < 3 || f[0].type != MSGPACK_OBJECT_BOOLEAN || f[2].type != MSGPACK_OBJECT_BOOLEAN ||
        msg_bytes_opt(&k.reply, 1, &u, &ulen) != ERR_OK) {
        rc = client_bad_reply(c, &k, "expected [enabled, user, root]");
    } else {
        out->enabled = f[0].via.boolean;
        out->root = f[2].via.boolean;
        if (!msg_is_nil(&k.reply, 1) && !(out->user = dup_bytes(u, ulen)))
            rc = client_fail(c, DDKV_ERR_NOMEM, "out of memory");
        /* roles, from 0.2 on: the user's role names */
        if (rc == DDKV_OK && k.reply.nf >= 4 && f[3].type == MSGPACK_OBJECT_ARRAY && f[3].via.array.size) {
            const msgpack_object_array *a = &f[3].via.array;
            out->roles = calloc(a->size, sizeof *out->roles);
            for (uint32_t i = 0; out->roles && i < a->size; i++) {
                if (a->ptr[i].type != MSGPACK_OBJECT_STR && a->ptr[i].type != MSGPACK_OBJECT_BIN)
                    continue;
                const msgpack_object_str *st = &a->ptr[i].via.str;
                if (!(out->roles[out->n_roles] = dup_bytes(st->ptr, st->size)))
                    break;
                out->n_roles++;
            }
            if (!out->roles || out->n_roles < a->size)
                rc = client_fail(c, DDKV_ERR_NOMEM, "out of memory"); /* or a role that is not a string */
        }
    }
    msg_free(&k.reply);
    if (rc != DDKV_OK)
        ddkv_auth_status_free(out);
    return rc;
}

void ddkv_auth_list_free(struct ddkv_auth_list *l)
{
    for (size_t i = 0; i < l->n_users; i++) {
        for (size_t r = 0; r < l->users[i].n_roles; r++)
            free(l->users[i].roles[r]);
        free(l->users[i].roles);
        free(l->users[i].name);
    }
    for (size_t i = 0; i < l->n_roles; i++) {
        for (size_t g = 0; g < l->roles[i].n_grants; g++)
            free(l->roles[i].grants[g].prefix);
        free(l->roles[i].grants);
        free(l->roles[i].name);
    }
    free(l->users);
    free(l->roles);
    memset(l, 0, sizeof *l);
}

/* A msgpack string or bin as an owned NUL-terminated copy (NULL if neither). */
static char *mpo_dup(const msgpack_object *o, size_t *len)
{
    const uint8_t *p;
    size_t n;
    if (mpo_bytes(o, &p, &n) != ERR_OK)
        return NULL;
    if (len)
        *len = n;
    return dup_bytes(p, n);
}

/* [name, [role...]] */
static bool user_decode(const msgpack_object *o, struct ddkv_user *u)
{
    if (o->type != MSGPACK_OBJECT_ARRAY || o->via.array.size != 2 ||
        o->via.array.ptr[1].type != MSGPACK_OBJECT_ARRAY || !(u->name = mpo_dup(&o->via.array.ptr[0], NULL)))
        return false;
    const msgpack_object *roles = &o->via.array.ptr[1];
    if (roles->via.array.size && !(u->roles = calloc(roles->via.array.size, sizeof *u->roles)))
        return false;
    for (uint32_t i = 0; i < roles->via.array.size; i++) {
        if (!(u->roles[i] = mpo_dup(&roles->via.array.ptr[i], NULL)))
            return false;
        u->n_roles++;
    }
    return true;
}

/* [name, [[prefix, perm]...]] */
static bool role_decode(const msgpack_object *o, struct ddkv_role *r)
{
    if (o->type != MSGPACK_OBJECT_ARRAY || o->via.array.size != 2 ||
        o->via.array.ptr[1].type != MSGPACK_OBJECT_ARRAY || !(r->name = mpo_dup(&o->via.array.ptr[0], NULL)))
        return false;
    const msgpack_object *gs = &o->via.array.ptr[1];
    if (gs->via.array.size && !(r->grants = calloc(gs->via.array.size, sizeof *r->grants)))
        return false;
    for (uint32_t i = 0; i < gs->via.array.size; i++) {
        const msgpack_object *g = &gs->via.array.ptr[i];
        uint64_t perm;
        if (g->type != MSGPACK_OBJECT_ARRAY || g->via.array.size != 2 || mpo_u64(&g->via.array.ptr[1], &perm) ||
            (perm != DDKV_PERM_READ && perm != DDKV_PERM_READWRITE))
            return false;
        struct ddkv_grant *d = &r->grants[i];
        if (!(d->prefix = (uint8_t *)mpo_dup(&g->via.array.ptr[0], &d->prefix_len)))
            return false;
        d->perm = (enum ddkv_perm)perm;
        r->n_grants++;
    }
    return true;
}

ddkv_err ddkv_auth_list(ddkv_client *c, struct ddkv_auth_list *out)
{
    memset(out, 0, sizeof *out);
    struct cc_call k = {.type = DDKV_MSG_AUTH_LIST, .reply_type = DDKV_MSG_AUTH_LIST_RESULT, .f = NULL, .nf = 0};
    ddkv_err rc = client_call(c, &k);
    if (rc != DDKV_OK)
        return rc;
    const msgpack_object *f = k.reply.f;
    bool ok = k.reply.nf >= 3 && f[0].type == MSGPACK_OBJECT_ARRAY && f[1].type == MSGPACK_OBJECT_ARRAY &&
              f[2].type == MSGPACK_OBJECT_BOOLEAN;
    if (ok) {
        out->enabled = f[2].via.boolean;
        uint32_t nu = f[0].via.array.size, nr = f[1].via.array.size;
        out->users = nu ? calloc(nu, sizeof *out->users) : NULL;
        out->roles = nr ? calloc(nr, sizeof *out->roles) : NULL;
        ok = (!nu || out->users) && (!nr || out->roles);
        for (uint32_t i = 0; ok && i < nu; i++) {
            out->n_users++;
            ok = user_decode(&f[0].via.array.ptr[i], &out->users[i]);
        }
        for (uint32_t i = 0; ok && i < nr; i++) {
            out->n_roles++;
            ok = role_decode(&f[1].via.array.ptr[i], &out->roles[i]);
        }
    }
    if (!ok) {
        rc = client_bad_reply(c, &k, "expected [users, roles, enabled]");
        ddkv_auth_list_free(out);
    }
    msg_free(&k.reply);
    return rc;
}

