/* The hub's user and role management (/api/users), run as the signed-in
 * person: the cluster allows it to root alone, and refuses anyone else. */
#include "hub/hub_users.h"

#include <jansson.h>
#include <openssl/crypto.h>
#include <stdio.h>
#include <string.h>

static char *reply(int *status, int code, json_t *o)
{
    *status = code;
    char *s = o ? json_dumps(o, JSON_COMPACT) : NULL;
    json_decref(o);
    return s;
}

static char *fail(int *status, ddkv_client *c, ddkv_err e, const char *what)
{
    int code = e == DDKV_ERR_PERMISSION_DENIED ? 403
               : e == DDKV_ERR_NOT_FOUND      ? 404
               : e == DDKV_ERR_BAD_REQUEST || e == DDKV_ERR_USAGE ? 400
                                                                  : 503;
    char msg[400];
    snprintf(msg, sizeof msg, "%s: %s", what, ddkv_client_errmsg(c));
    return reply(status, code, json_pack("{s:s}", "error", msg));
}

static json_t *auth_list_json(const struct ddkv_auth_list *l)
{
    json_t *users = json_array(), *roles = json_array();
    for (size_t i = 0; i < l->n_users; i++) {
        json_t *rs = json_array();
        for (size_t r = 0; r < l->users[i].n_roles; r++)
            json_array_append_new(rs, json_string(l->users[i].roles[r]));
        json_array_append_new(users, json_pack("{s:s, s:o}", "name", l->users[i].name, "roles", rs));
    }
    for (size_t i = 0; i < l->n_roles; i++) {
        json_t *gs = json_array();
        for (size_t g = 0; g < l->roles[i].n_grants; g++) {
            const struct ddkv_grant *gr = &l->roles[i].grants[g];
            json_array_append_new(gs, json_pack("{s:s%, s:s}", "prefix", (const char *)gr->prefix, gr->prefix_len,
                                                "perm", gr->perm == DDKV_PERM_READWRITE ? "readwrite" : "read"));
        }
        json_array_append_new(roles, json_pack("{s:s, s:o}", "name", l->roles[i].name, "grants", gs));
    }
    return json_pack("{s:b, s:o, s:o}", "enabled", l->enabled, "users", users, "roles", roles);
}

char *hubusers_handle(ddkv_client *c, enum hubusers_op op, const char *name, const char *body, size_t n, int *status)
{
    if (op == HUBUSERS_LIST) {
        struct ddkv_auth_list l;
        ddkv_err e = ddkv_auth_list(c, &l);
        if (e != DDKV_OK)
            return fail(status, c, e, "listing users and roles");
        json_t *o = auth_list_json(&l);
        ddkv_auth_list_free(&l);
        return reply(status, 200, o);
    }
    json_error_t je;
    json_t *req = body && n ? json_loadb(body, n, 0, &je) : NULL;
    char *out = NULL;
    ddkv_err e;
    if (op == HUBUSERS_ADD) {
        const char *user = json_string_value(json_object_get(req, "user"));
        const char *pw = json_string_value(json_object_get(req, "password"));
        if (!user || !pw || strlen(pw) != json_string_length(json_object_get(req, "password"))) {
            out = reply(status, 400, json_pack("{s:s}", "error", "POST /api/users wants JSON {\"user\", \"password\"}"));
        } else if ((e = ddkv_user_add(c, user, pw)) != DDKV_OK) {
            out = fail(status, c, e, "adding the user");
        } else {
            out = reply(status, 201, json_pack("{s:s}", "user", user));
        }
        if (pw)
            OPENSSL_cleanse((void *)pw, strlen(pw));
    } else if (op == HUBUSERS_REMOVE) {
        if ((e = ddkv_user_remove(c, name)) != DDKV_OK)
            out = fail(status, c, e, "removing the user");
        else
            out = reply(status, 200, json_pack("{s:s, s:b}", "user", name, "removed", 1));
    } else {
        const char *role = json_string_value(json_object_get(req, "role"));
        if (!role) {
            out = reply(status, 400, json_pack("{s:s}", "error", "this wants JSON {\"role\": ...}"));
        } else if ((e = op == HUBUSERS_GRANT ? ddkv_user_grant(c, name, role) : ddkv_user_revoke(c, name, role)) !=
                   DDKV_OK) {
            out = fail(status, c, e, op == HUBUSERS_GRANT ? "granting the role" : "revoking the role");
        } else {
            out = reply(status, 200, json_pack("{s:s, s:s, s:b}", "user", name, "role", role,
                                               op == HUBUSERS_GRANT ? "granted" : "revoked", 1));
        }
    }
    json_decref(req);
    return out;
}
