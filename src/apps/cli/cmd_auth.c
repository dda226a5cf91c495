/* ddkv auth | user | role: turning authentication on and off, users and their
 * passwords and roles, roles and their grants (libddkv's auth calls). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/commands.h"

static const struct opt_def user_opts[] = {
    {"new-password", 0, OPT_ARG, NULL, "PASSWORD",
     "user add|passwd: the new password (default: the first line of stdin; or DDKV_NEW_PASSWORD)"},
};

/* Print "done" in the chosen format. */
static int auth_done(struct cli_ctx *ctx, const char *text, json_t *obj)
{
    if (ctx->fmt == OUT_JSON)
        return obj && out_json_line(obj) == 0 ? EXIT_DONE : EXIT_UNAVAILABLE;
    json_decref(obj);
    printf("%s\n", text);
    return EXIT_DONE;
}

/* --- auth enable | disable | status --- */

static int auth_status_print(struct cli_ctx *ctx, ddkv_client *c)
{
    struct ddkv_auth_status st;
    ddkv_err e = ddkv_auth_status(c, &st);
    if (e != DDKV_OK)
        return cli_fail(c, e, "auth status", NULL, 0);
    int rc;
    if (ctx->fmt == OUT_JSON) {
        json_t *o = json_pack("{s:b, s:s?, s:b}", "enabled", st.enabled, "user", st.user, "root", st.root);
        rc = o && out_json_line(o) == 0 ? EXIT_DONE : EXIT_UNAVAILABLE;
    } else {
        printf("auth: %s\n", st.enabled ? "enabled" : "disabled");
        if (st.user)
            printf("user: %s%s\n", st.user, st.root ? " (root)" : "");
        rc = EXIT_DONE;
    }
    ddkv_auth_status_free(&st);
    return rc;
}

static int auth_cmd(struct cli_ctx *ctx)
{
    const char *verb = ctx->opts->pos[0];
    bool enable = strcmp(verb, "enable") == 0, disable = strcmp(verb, "disable") == 0;
    if (!enable && !disable && strcmp(verb, "status") != 0) {
        out_error("auth: unknown action '%s' (enable | disable | status)", verb);
        return EXIT_USAGE;
    }
    ddkv_client *c = NULL;
    int rc = cli_client(ctx, &c);
    if (rc != EXIT_DONE)
        return rc;
    if (!enable && !disable) {
        rc = auth_status_print(ctx, c);
    } else {
        ddkv_err e = enable ? ddkv_auth_enable(c) : ddkv_auth_disable(c);
        if (e != DDKV_OK)
            rc = cli_fail(c, e, enable ? "auth enable" : "auth disable", NULL, 0);
        else
            rc = auth_done(ctx, enable ? "auth enabled" : "auth disabled",
                           json_pack("{s:b}", "enabled", enable));
    }
    ddkv_client_free(c);
    return rc;
}

/* --- user --- */

/* The new password of user add|passwd: --new-password (or DDKV_NEW_PASSWORD),
 * else the first line of stdin. Into buf; false (reported) if there is none. */
static bool user_new_password(struct cli_ctx *ctx, char *buf, size_t cap)
{
    const char *p = opts_get(ctx->opts, "new-password");
    if (p) {
        snprintf(buf, cap, "%s", p);
    } else {
        if (isatty(STDIN_FILENO))
            fprintf(stderr, "new password: ");
        if (!fgets(buf, (int)cap, stdin))
            buf[0] = 0;
        buf[strcspn(buf, "\r\n")] = 0;
    }
    if (!buf[0] || strlen(buf) > DDKV_AUTH_PASSWORD_MAX) {
        out_error("a new password (1..%u bytes) is needed: --new-password, DDKV_NEW_PASSWORD or a line on stdin",
                  DDKV_AUTH_PASSWORD_MAX);
        return false;
    }
    return true;
}

static json_t *user_json(const struct ddkv_user *u)
{
    json_t *roles = json_array();
    for (size_t i = 0; roles && i < u->n_roles; i++)
        json_array_append_new(roles, json_string(u->roles[i]));
    return json_pack("{s:s, s:o?}", "user", u->name, "roles", roles);
}

static int user_print(struct cli_ctx *ctx, const struct ddkv_user *u)
{
    if (ctx->fmt == OUT_JSON)
        return out_json_line(user_json(u)) == 0 ? EXIT_DONE : EXIT_UNAVAILABLE;
    printf("%s\t", u->name);
    for (size_t i = 0; i < u->n_roles; i++)
        printf("%s%s", i ? "," : "", u->roles[i]);
    printf("\n");
    return EXIT_DONE;
}

/* user list, or user get NAME (exit 1 if there is no such user). */
static int user_show(struct cli_ctx *ctx, ddkv_client *c, const char *only)
{
    struct ddkv_auth_list l;
    ddkv_err e = ddkv_auth_list(c, &l);
    if (e != DDKV_OK)
        return cli_fail(c, e, "user list", NULL, 0);
    int rc = only ? EXIT_NO : EXIT_DONE;
    for (size_t i = 0; i < l.n_users; i++)
        if (!only || strcmp(l.users[i].name, only) == 0)
            rc = user_print(ctx, &l.users[i]);
    if (only && rc == EXIT_NO)
        out_error("no such user: '%s'", only);
    ddkv_auth_list_free(&l);
    return rc;
}

/* The user action's positional arguments, as (count, usage). */
struct verb_shape {
    const char *verb;
    size_t npos; /* with the verb */
    const char *usage;
};

static const struct verb_shape user_verbs[] = {
    {"add", 2, "user add NAME [--new-password P]"},
    {"passwd", 2, "user passwd NAME [--new-password P]"},
    {"remove", 2, "user remove NAME"},
    {"grant", 3, "user grant NAME ROLE"},
    {"revoke", 3, "user revoke NAME ROLE"},
    {"get", 2, "user get NAME"},
    {"list", 1, "user list"},
};

static const struct verb_shape role_verbs[] = {
    {"add", 2, "role add NAME"},
    {"remove", 2, "role remove NAME"},
    {"grant", 4, "role grant NAME PREFIX read|readwrite"},
    {"revoke", 3, "role revoke NAME PREFIX"},
    {"get", 2, "role get NAME"},
    {"list", 1, "role list"},
};

/* The shape of the verb in pos[0], or NULL after reporting a usage error. */
static const struct verb_shape *verb_find(struct cli_ctx *ctx, const char *what, const struct verb_shape *v,
                                          size_t n)
{
    const char *verb = ctx->opts->pos[0];
    for (size_t i = 0; i < n; i++) {
        if (strcmp(v[i].verb, verb) != 0)
            continue;
        if (ctx->opts->npos == v[i].npos)
            return &v[i];
        out_error("usage: ddkv %s", v[i].usage);
        return NULL;
    }
    out_error("%s: unknown action '%s' (%s)", what, verb,
              v == user_verbs ? "add | passwd | remove | grant | revoke | get | list"
                              : "add | remove | grant | revoke | get | list");
    return NULL;
}

static int user_cmd(struct cli_ctx *ctx)
{
    const struct verb_shape *v = verb_find(ctx, "user", user_verbs, sizeof user_verbs / sizeof user_verbs[0]);
    if (!v)
        return EXIT_USAGE;
    const char *const *pos = ctx->opts->pos;
    char pw[DDKV_AUTH_PASSWORD_MAX + 2];
    bool sets_pw = strcmp(v->verb, "add") == 0 || strcmp(v->verb, "passwd") == 0;
    if (sets_pw && !user_new_password(ctx, pw, sizeof pw))
        return EXIT_USAGE;
    ddkv_client *c = NULL;
    int rc = cli_client(ctx, &c);
    if (rc != EXIT_DONE)
        return rc;
    char done[200], what[32];
    snprintf(what, sizeof what, "user %s", v->verb);
    ddkv_err e = DDKV_OK;
    if (strcmp(v->verb, "list") == 0 || strcmp(v->verb, "get") == 0) {
        rc = user_show(ctx, c, v->npos == 2 ? pos[1] : NULL);
        ddkv_client_free(c);
        return rc;
    }
    if (strcmp(v->verb, "add") == 0) {
        e = ddkv_user_add(c, pos[1], pw);
        snprintf(done, sizeof done, "user %s added", pos[1]);
    } else if (strcmp(v->verb, "passwd") == 0) {
        e = ddkv_user_passwd(c, pos[1], pw);
        snprintf(done, sizeof done, "password of %s changed", pos[1]);
    } else if (strcmp(v->verb, "remove") == 0) {
        e = ddkv_user_remove(c, pos[1]);
        snprintf(done, sizeof done, "user %s removed", pos[1]);
    } else if (strcmp(v->verb, "grant") == 0) {
        e = ddkv_user_grant(c, pos[1], pos[2]);
        snprintf(done, sizeof done, "role %s granted to %s", pos[2], pos[1]);
    } else {
        e = ddkv_user_revoke(c, pos[1], pos[2]);
        snprintf(done, sizeof done, "role %s revoked from %s", pos[2], pos[1]);
    }
    memset(pw, 0, sizeof pw);
    if (e != DDKV_OK)
        rc = cli_fail(c, e, what, pos[1], strlen(pos[1]));
    else
        rc = auth_done(ctx, done, json_pack("{s:s, s:s, s:s}", "user", pos[1], "action", v->verb, "result", "done"));
    ddkv_client_free(c);
    return rc;
}

/* --- role --- */

static const char *perm_name(enum ddkv_perm p)
{
    return p == DDKV_PERM_READWRITE ? "readwrite" : "read";
}

static int role_print(struct cli_ctx *ctx, const struct ddkv_role *r, bool one)
{
    if (ctx->fmt == OUT_JSON) {
        json_t *grants = json_array();
        for (size_t i = 0; grants && i < r->n_grants; i++) {
            json_t *g = json_pack("{s:s}", "perm", perm_name(r->grants[i].perm));
            if (!g || out_json_set_bytes(g, "prefix", "prefix_encoding", r->grants[i].prefix,
                                         r->grants[i].prefix_len) != 0) {
                json_decref(g);
                json_decref(grants);
                grants = NULL;
                break;
            }
            json_array_append_new(grants, g);
        }
        json_t *o = grants ? json_pack("{s:s, s:o}", "role", r->name, "grants", grants) : NULL;
        return out_json_line(o) == 0 ? EXIT_DONE : EXIT_UNAVAILABLE;
    }
    /* role list: "role<TAB>perm<TAB>prefix" per grant ("role" alone if none);
     * role get: "perm<TAB>prefix" per grant. */
    if (!one && r->n_grants == 0)
        printf("%s\n", r->name);
    for (size_t i = 0; i < r->n_grants; i++) {
        char esc[600];
        out_escape(r->grants[i].prefix, r->grants[i].prefix_len, esc, sizeof esc);
        if (one)
            printf("%s\t%s\n", perm_name(r->grants[i].perm), esc);
        else
            printf("%s\t%s\t%s\n", r->name, perm_name(r->grants[i].perm), esc);
    }
    return EXIT_DONE;
}

static int role_show(struct cli_ctx *ctx, ddkv_client *c, const char *only)
{
    struct ddkv_auth_list l;
    ddkv_err e = ddkv_auth_list(c, &l);
    if (e != DDKV_OK)
        return cli_fail(c, e, "role list", NULL, 0);
    int rc = only ? EXIT_NO : EXIT_DONE;
    for (size_t i = 0; i < l.n_roles; i++)
        if (!only || strcmp(l.roles[i].name, only) == 0)
            rc = role_print(ctx, &l.roles[i], only != NULL);
    if (only && rc == EXIT_NO)
        out_error("no such role: '%s'%s", only,
                  strcmp(only, DDKV_ROOT_ROLE) == 0 ? " (the built-in root role grants everything)" : "");
    ddkv_auth_list_free(&l);
    return rc;
}

static int role_cmd(struct cli_ctx *ctx)
{
    const struct verb_shape *v = verb_find(ctx, "role", role_verbs, sizeof role_verbs / sizeof role_verbs[0]);
    if (!v)
        return EXIT_USAGE;
    const char *const *pos = ctx->opts->pos;
    enum ddkv_perm perm = DDKV_PERM_READ;
    if (strcmp(v->verb, "grant") == 0) {
        if (strcmp(pos[3], "readwrite") == 0) {
            perm = DDKV_PERM_READWRITE;
        } else if (strcmp(pos[3], "read") != 0) {
            out_error("role grant: permission '%s' is not read or readwrite", pos[3]);
            return EXIT_USAGE;
        }
    }
    ddkv_client *c = NULL;
    int rc = cli_client(ctx, &c);
    if (rc != EXIT_DONE)
        return rc;
    if (strcmp(v->verb, "list") == 0 || strcmp(v->verb, "get") == 0) {
        rc = role_show(ctx, c, v->npos == 2 ? pos[1] : NULL);
        ddkv_client_free(c);
        return rc;
    }
    char done[200], what[32], esc[160];
    snprintf(what, sizeof what, "role %s", v->verb);
    ddkv_err e;
    if (strcmp(v->verb, "add") == 0) {
        e = ddkv_role_add(c, pos[1]);
        snprintf(done, sizeof done, "role %s added", pos[1]);
    } else if (strcmp(v->verb, "remove") == 0) {
        e = ddkv_role_remove(c, pos[1]);
        snprintf(done, sizeof done, "role %s removed", pos[1]);
    } else if (strcmp(v->verb, "grant") == 0) {
        e = ddkv_role_grant(c, pos[1], pos[2], strlen(pos[2]), perm);
        snprintf(done, sizeof done, "role %s: %s on '%s'", pos[1], perm_name(perm),
                 out_escape(pos[2], strlen(pos[2]), esc, sizeof esc));
    } else {
        e = ddkv_role_revoke(c, pos[1], pos[2], strlen(pos[2]));
        snprintf(done, sizeof done, "role %s: '%s' revoked", pos[1], out_escape(pos[2], strlen(pos[2]), esc, sizeof esc));
    }
    if (e != DDKV_OK)
        rc = cli_fail(c, e, what, pos[1], strlen(pos[1]));
    else
        rc = auth_done(ctx, done, json_pack("{s:s, s:s, s:s}", "role", pos[1], "action", v->verb, "result", "done"));
    ddkv_client_free(c);
    return rc;
}

const struct cli_command cmd_auth_commands[] = {
    {"auth", "enable|disable|status",
     "turn authentication on (needs a user root holding the role root) or off, or show it", NULL, 0,
     CMD_CLIENT, 1, 1, NULL, auth_cmd},
    {"user", "add|passwd|remove NAME | grant|revoke NAME ROLE | get NAME | list",
     "manage users: passwords (stored as salted PBKDF2 hashes) and roles", user_opts,
     sizeof user_opts / sizeof user_opts[0], CMD_CLIENT, 1, 3, NULL, user_cmd},
    {"role", "add|remove NAME | grant NAME PREFIX read|readwrite | revoke NAME PREFIX | get NAME | list",
     "manage roles: read or readwrite on key prefixes (\"\" is every key; the role root has all)", NULL, 0,
     CMD_CLIENT, 1, 4, NULL, role_cmd},
};

const size_t cmd_auth_count = sizeof cmd_auth_commands / sizeof cmd_auth_commands[0];
