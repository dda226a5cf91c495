/* The replicated auth state: records in meta, the in-memory copy, applying
 * changes, and the permission tests (layout and rules in authdb.h). */
#include "kv/authdb.h"

#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kv/sm.h"
#include "util/buf.h"

static const char AUTH_ENABLED_KEY[] = "auth_enabled";
static const char AUTH_REV_KEY[] = "auth_rev";
#define AUTH_RECORD_FORMAT 1
#define USER_FIXED (1 + 8 + PASSWD_RECORD_BYTES + 1)

bool auth_name_ok(const void *name, size_t n)
{
    const uint8_t *p = name;
    if (n == 0 || n > DDKV_AUTH_NAME_MAX)
        return false;
    for (size_t i = 0; i < n; i++) {
        uint8_t c = p[i];
        bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
                  c == '.' || c == '@' || c == '-';
        if (!ok)
            return false;
    }
    return true;
}

/* Bytewise order: memcmp, then the shorter first. */
static int bytes_order(const uint8_t *a, size_t an, const uint8_t *b, size_t bn)
{
    size_t n = an < bn ? an : bn;
    int c = n ? memcmp(a, b, n) : 0;
    if (c)
        return c < 0 ? -1 : 1;
    return an == bn ? 0 : an < bn ? -1 : 1;
}

/* --- the in-memory db --- */

static void role_free(struct auth_role *r)
{
    for (size_t i = 0; i < r->nperms; i++)
        free(r->perms[i].prefix);
    free(r->perms);
    r->perms = NULL;
    r->nperms = 0;
}

static void user_free(struct auth_user *u)
{
    free(u->roles);
    u->roles = NULL;
    u->nroles = 0;
}

void auth_db_free(struct auth_db *db)
{
    for (size_t i = 0; i < db->nusers; i++)
        user_free(&db->users[i]);
    for (size_t i = 0; i < db->nroles; i++)
        role_free(&db->roles[i]);
    free(db->users);
    free(db->roles);
    memset(db, 0, sizeof *db);
}

static int perm_copy(struct auth_perm *dst, const struct auth_perm *src)
{
    *dst = *src;
    dst->prefix = NULL;
    if (src->plen) {
        dst->prefix = malloc(src->plen);
        if (!dst->prefix)
            return ERR_NOMEM;
        memcpy(dst->prefix, src->prefix, src->plen);
    }
    return ERR_OK;
}

static int role_copy(struct auth_role *dst, const struct auth_role *src)
{
    memcpy(dst->name, src->name, sizeof dst->name);
    dst->nperms = 0;
    dst->perms = src->nperms ? calloc(src->nperms, sizeof *dst->perms) : NULL;
    if (src->nperms && !dst->perms)
        return ERR_NOMEM;
    for (size_t i = 0; i < src->nperms; i++) {
        if (perm_copy(&dst->perms[i], &src->perms[i]))
            return ERR_NOMEM;
        dst->nperms++;
    }
    return ERR_OK;
}

static int user_copy(struct auth_user *dst, const struct auth_user *src)
{
    *dst = *src;
    dst->roles = NULL;
    dst->nroles = 0;
    if (src->nroles) {
        dst->roles = malloc(src->nroles * sizeof *dst->roles);
        if (!dst->roles)
            return ERR_NOMEM;
        memcpy(dst->roles, src->roles, src->nroles * sizeof *dst->roles);
        dst->nroles = src->nroles;
    }
    return ERR_OK;
}

int auth_db_clone(struct auth_db *dst, const struct auth_db *src)
{
    memset(dst, 0, sizeof *dst);
    dst->enabled = src->enabled;
    dst->rev = src->rev;
    dst->users = src->nusers ? calloc(src->nusers, sizeof *dst->users) : NULL;
    dst->roles = src->nroles ? calloc(src->nroles, sizeof *dst->roles) : NULL;
    if ((src->nusers && !dst->users) || (src->nroles && !dst->roles))
        goto fail;
    for (size_t i = 0; i < src->nusers; i++) {
        dst->nusers++;
        if (user_copy(&dst->users[i], &src->users[i]))
            goto fail;
    }
    for (size_t i = 0; i < src->nroles; i++) {
        dst->nroles++;
        if (role_copy(&dst->roles[i], &src->roles[i]))
            goto fail;
    }
    return ERR_OK;
fail:
    auth_db_free(dst);
    return ERR_NOMEM;
}

/* Binary search by name in a sorted array of n elements of sz bytes each,
 * whose first member is their auth_name (struct auth_user, struct
 * auth_role): the index of name, or where it would go. */
static size_t name_pos(const void *arr, size_t n, size_t sz, const char *name, bool *found)
{
    const char *base = arr;
    size_t lo = 0, hi = n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (strcmp(base + mid * sz, name) < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    *found = lo < n && strcmp(base + lo * sz, name) == 0;
    return lo;
}

_Static_assert(offsetof(struct auth_user, name) == 0, "name_pos reads a user's name first");
_Static_assert(offsetof(struct auth_role, name) == 0, "name_pos reads a role's name first");

static size_t user_pos(const struct auth_db *db, const char *name, bool *found)
{
    return name_pos(db->users, db->nusers, sizeof *db->users, name, found);
}

static size_t role_pos(const struct auth_db *db, const char *name, bool *found)
{
    return name_pos(db->roles, db->nroles, sizeof *db->roles, name, found);
}

const struct auth_user *auth_user_find(const struct auth_db *db, const char *name)
{
    bool found;
    size_t at = user_pos(db, name, &found);
    return found ? &db->users[at] : NULL;
}

const struct auth_role *auth_role_find(const struct auth_db *db, const char *name)
{
    bool found;
    size_t at = role_pos(db, name, &found);
    return found ? &db->roles[at] : NULL;
}

/* The position of role in the user's sorted list, or where it would go. */
static size_t user_role_pos(const struct auth_user *u, const char *role, bool *found)
{
    return name_pos(u->roles, u->nroles, sizeof *u->roles, role, found);
}

static size_t perm_pos(const struct auth_role *r, const uint8_t *p, size_t n, bool *found)
{
    size_t lo = 0, hi = r->nperms;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (bytes_order(r->perms[mid].prefix, r->perms[mid].plen, p, n) < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    *found = lo < r->nperms && bytes_order(r->perms[lo].prefix, r->perms[lo].plen, p, n) == 0;
    return lo;
}

/* --- permission tests --- */

bool auth_is_root(const struct auth_db *db, const struct auth_user *u)
{
    (void)db;
    bool found;
    user_role_pos(u, DDKV_ROOT_ROLE, &found);
    return found;
}

bool auth_may(const struct auth_db *db, const struct auth_user *u, const void *p, size_t n, uint8_t need)
{
    ASSERT(need == DDKV_PERM_READ || need == DDKV_PERM_READWRITE);
    if (auth_is_root(db, u))
        return true;
    for (size_t i = 0; i < u->nroles; i++) {
        const struct auth_role *r = auth_role_find(db, u->roles[i]);
        if (!r)
            continue;
        for (size_t j = 0; j < r->nperms; j++) {
            const struct auth_perm *g = &r->perms[j];
            if (g->perm >= need && g->plen <= n && (g->plen == 0 || memcmp(g->prefix, p, g->plen) == 0))
                return true;
        }
    }
    return false;
}

bool auth_may_write_somewhere(const struct auth_db *db, const struct auth_user *u)
{
    if (auth_is_root(db, u))
        return true;
    for (size_t i = 0; i < u->nroles; i++) {
        const struct auth_role *r = auth_role_find(db, u->roles[i]);
        for (size_t j = 0; r && j < r->nperms; j++)
            if (r->perms[j].perm == DDKV_PERM_READWRITE)
                return true;
    }
    return false;
}

/* --- records --- */

static int user_encode(const struct auth_user *u, struct buf *b)
{
    uint8_t h[USER_FIXED];
    h[0] = AUTH_RECORD_FORMAT;
    put_be64(h + 1, u->rev);
    memcpy(h + 9, u->hash, PASSWD_RECORD_BYTES);
    h[USER_FIXED - 1] = (uint8_t)u->nroles;
    buf_reset(b);
    int rc = buf_append(b, h, sizeof h);
    for (size_t i = 0; i < u->nroles && !rc; i++) {
        uint8_t len = (uint8_t)strlen(u->roles[i]);
        if (!(rc = buf_append(b, &len, 1)))
            rc = buf_append(b, u->roles[i], len);
    }
    return rc;
}

static int role_encode(const struct auth_role *r, struct buf *b)
{
    uint8_t h[2] = {AUTH_RECORD_FORMAT, (uint8_t)r->nperms};
    buf_reset(b);
    int rc = buf_append(b, h, sizeof h);
    for (size_t i = 0; i < r->nperms && !rc; i++) {
        uint8_t ph[3] = {r->perms[i].perm, (uint8_t)(r->perms[i].plen >> 8), (uint8_t)r->perms[i].plen};
        if (!(rc = buf_append(b, ph, sizeof ph)) && r->perms[i].plen)
            rc = buf_append(b, r->perms[i].prefix, r->perms[i].plen);
    }
    return rc;
}

/* Copy a stored name (key suffix or record field) after checking it. */
static bool name_take(auth_name out, const uint8_t *p, size_t n)
{
    if (!auth_name_ok(p, n))
        return false;
    memcpy(out, p, n);
    out[n] = 0;
    return true;
}

static int user_decode(struct auth_user *u, const uint8_t *k, size_t kn, const uint8_t *v, size_t vn)
{
    memset(u, 0, sizeof *u);
    if (!name_take(u->name, k + 2, kn - 2) || vn < USER_FIXED || v[0] != AUTH_RECORD_FORMAT ||
        !passwd_record_ok(v + 9, PASSWD_RECORD_BYTES))
        return ERR_CORRUPT;
    u->rev = get_be64(v + 1);
    memcpy(u->hash, v + 9, PASSWD_RECORD_BYTES);
    size_t n = v[USER_FIXED - 1], at = USER_FIXED;
    if (n > AUTH_USER_ROLES_MAX)
        return ERR_CORRUPT;
    u->roles = n ? calloc(n, sizeof *u->roles) : NULL;
    if (n && !u->roles)
        return ERR_NOMEM;
    for (size_t i = 0; i < n; i++) {
        if (at >= vn || vn - at - 1 < v[at] || !name_take(u->roles[i], v + at + 1, v[at]) ||
            (i > 0 && strcmp(u->roles[i - 1], u->roles[i]) >= 0))
            return ERR_CORRUPT;
        at += 1 + (size_t)v[at];
        u->nroles++;
    }
    return at == vn ? ERR_OK : ERR_CORRUPT;
}

static int role_decode(struct auth_role *r, const uint8_t *k, size_t kn, const uint8_t *v, size_t vn)
{
    memset(r, 0, sizeof *r);
    if (!name_take(r->name, k + 2, kn - 2) || strcmp(r->name, DDKV_ROOT_ROLE) == 0 || vn < 2 ||
        v[0] != AUTH_RECORD_FORMAT || v[1] > AUTH_ROLE_PERMS_MAX)
        return ERR_CORRUPT;
    size_t n = v[1], at = 2;
    r->perms = n ? calloc(n, sizeof *r->perms) : NULL;
    if (n && !r->perms)
        return ERR_NOMEM;
    for (size_t i = 0; i < n; i++) {
        if (vn - at < 3)
            return ERR_CORRUPT;
        struct auth_perm *g = &r->perms[i];
        g->perm = v[at];
        g->plen = (size_t)v[at + 1] << 8 | v[at + 2];
        at += 3;
        if ((g->perm != DDKV_PERM_READ && g->perm != DDKV_PERM_READWRITE) || g->plen > AUTH_PREFIX_MAX ||
            vn - at < g->plen)
            return ERR_CORRUPT;
        if (g->plen && !(g->prefix = malloc(g->plen)))
            return ERR_NOMEM;
        if (g->plen)
            memcpy(g->prefix, v + at, g->plen);
        at += g->plen;
        r->nperms++;
        if (i > 0 && bytes_order(r->perms[i - 1].prefix, r->perms[i - 1].plen, g->prefix, g->plen) >= 0)
            return ERR_CORRUPT;
    }
    return at == vn ? ERR_OK : ERR_CORRUPT;
}

/* Every record with the one-letter prefix c ("u/" or "r/"), in key order. */
static int load_records(struct auth_db *db, struct store *st, char c, struct errbuf *eb)
{
    char lo[2] = {c, '/'}, hi[2] = {c, '/' + 1};
    struct store_iter *it = store_iter_new(st, STORE_CF_META, hi, 2);
    int rc = ERR_OK;
    for (store_iter_seek(it, lo, 2); store_iter_valid(it) && !rc; store_iter_next(it)) {
        size_t kn, vn;
        const uint8_t *k = store_iter_key(it, &kn);
        const uint8_t *v = store_iter_value(it, &vn);
        size_t *count = c == 'u' ? &db->nusers : &db->nroles;
        size_t cap = c == 'u' ? AUTH_USERS_MAX : AUTH_ROLES_MAX;
        if (*count == cap) {
            rc = errf(eb, ERR_CORRUPT, "more auth records than the limit of %zu", cap);
            break;
        }
        if (c == 'u') {
            rc = user_decode(&db->users[db->nusers], k, kn, v, vn);
            db->nusers++; /* freed with the db even when half decoded */
        } else {
            rc = role_decode(&db->roles[db->nroles], k, kn, v, vn);
            db->nroles++;
        }
        if (rc)
            rc = errf(eb, rc, "auth record %c/%.*s is %s", c, (int)(kn > 66 ? 64 : kn - 2), (const char *)k + 2,
                      rc == ERR_NOMEM ? "too large for memory" : "malformed");
    }
    if (!rc)
        rc = store_iter_status(it, eb);
    store_iter_free(it);
    return rc;
}

static void shrink(void **arr, size_t n, size_t sz)
{
    if (n == 0) {
        free(*arr);
        *arr = NULL;
        return;
    }
    void *p = realloc(*arr, n * sz);
    if (p) /* else the larger block stays, which is as good */
        *arr = p;
}

int auth_db_load(struct auth_db *db, struct store *st, struct errbuf *eb)
{
    memset(db, 0, sizeof *db);
    db->users = calloc(AUTH_USERS_MAX, sizeof *db->users);
    db->roles = calloc(AUTH_ROLES_MAX, sizeof *db->roles);
    if (!db->users || !db->roles) {
        auth_db_free(db);
        return errf(eb, ERR_NOMEM, "out of memory loading users and roles");
    }
    struct store_val v;
    int rc = store_get(st, STORE_CF_META, AUTH_ENABLED_KEY, strlen(AUTH_ENABLED_KEY), NULL, &v, eb);
    if (rc == ERR_OK) {
        bool ok = v.n == 8;
        db->enabled = ok && get_be64(v.p) != 0;
        store_val_release(&v);
        if (!ok)
            rc = errf(eb, ERR_CORRUPT, "meta %s is malformed", AUTH_ENABLED_KEY);
    } else if (rc == ERR_NOT_FOUND) {
        rc = ERR_OK;
    }
    if (!rc && (rc = store_get(st, STORE_CF_META, AUTH_REV_KEY, strlen(AUTH_REV_KEY), NULL, &v, eb)) == ERR_OK) {
        bool ok = v.n == 8;
        db->rev = ok ? get_be64(v.p) : 0;
        store_val_release(&v);
        if (!ok)
            rc = errf(eb, ERR_CORRUPT, "meta %s is malformed", AUTH_REV_KEY);
    } else if (rc == ERR_NOT_FOUND) {
        rc = ERR_OK;
    }
    if (!rc)
        rc = load_records(db, st, 'u', eb);
    if (!rc)
        rc = load_records(db, st, 'r', eb);
    if (rc) {
        auth_db_free(db);
        return rc;
    }
    /* Shrink to what was read (the arrays grow one at a time as changes apply). */
    shrink((void **)&db->users, db->nusers, sizeof *db->users);
    shrink((void **)&db->roles, db->nroles, sizeof *db->roles);
    return ERR_OK;
}

/* --- applying changes --- */

static int stage_user(struct store_batch *b, const struct auth_user *u)
{
    struct buf k = BUF_INIT, v = BUF_INIT;
    int rc = buf_append(&k, "u/", 2);
    if (!rc)
        rc = buf_append(&k, u->name, strlen(u->name));
    if (!rc)
        rc = user_encode(u, &v);
    if (!rc)
        store_batch_put(b, STORE_CF_META, k.data, k.len, v.data, v.len);
    buf_free(&k);
    buf_free(&v);
    return rc;
}

static int stage_role(struct store_batch *b, const struct auth_role *r)
{
    struct buf k = BUF_INIT, v = BUF_INIT;
    int rc = buf_append(&k, "r/", 2);
    if (!rc)
        rc = buf_append(&k, r->name, strlen(r->name));
    if (!rc)
        rc = role_encode(r, &v);
    if (!rc)
        store_batch_put(b, STORE_CF_META, k.data, k.len, v.data, v.len);
    buf_free(&k);
    buf_free(&v);
    return rc;
}

static void stage_delete(struct store_batch *b, char c, const char *name)
{
    char k[2 + DDKV_AUTH_NAME_MAX];
    size_t n = strlen(name);
    k[0] = c;
    k[1] = '/';
    memcpy(k + 2, name, n);
    store_batch_delete(b, STORE_CF_META, k, 2 + n);
}

/* Make room for one more element of size sz in *arr (n of them). */
static int grow(void **arr, size_t n, size_t sz)
{
    void *p = realloc(*arr, (n + 1) * sz);
    if (!p)
        return ERR_NOMEM;
    *arr = p;
    return ERR_OK;
}

static int set_enabled(struct auth_db *db, struct store_batch *b, bool on, int *refused)
{
    if (on) {
        const struct auth_user *root = auth_user_find(db, DDKV_ROOT_USER);
        if (!root || !auth_is_root(db, root)) {
            *refused = SM_ERR_AUTH_NO_ROOT;
            return ERR_OK;
        }
    }
    uint8_t v[8];
    put_be64(v, on ? 1 : 0);
    store_batch_put(b, STORE_CF_META, AUTH_ENABLED_KEY, strlen(AUTH_ENABLED_KEY), v, sizeof v);
    db->enabled = on;
    return ERR_OK;
}

static int user_add(struct auth_db *db, struct store_batch *b, uint64_t index, const char *name,
                    const struct sm_auth *a, int *refused)
{
    bool found;
    size_t at = user_pos(db, name, &found);
    if (!passwd_record_ok(a->arg, a->alen))
        *refused = SM_ERR_AUTH_INVALID;
    else if (found)
        *refused = SM_ERR_AUTH_EXISTS;
    else if (db->nusers >= AUTH_USERS_MAX)
        *refused = SM_ERR_AUTH_LIMIT;
    if (*refused || grow((void **)&db->users, db->nusers, sizeof *db->users))
        return *refused ? ERR_OK : ERR_NOMEM;
    memmove(&db->users[at + 1], &db->users[at], (db->nusers - at) * sizeof *db->users);
    db->nusers++;
    struct auth_user *u = &db->users[at];
    memset(u, 0, sizeof *u);
    snprintf(u->name, sizeof u->name, "%s", name);
    u->rev = index;
    memcpy(u->hash, a->arg, PASSWD_RECORD_BYTES);
    return stage_user(b, u);
}

static int user_remove(struct auth_db *db, struct store_batch *b, const char *name, int *refused)
{
    bool found;
    size_t at = user_pos(db, name, &found);
    if (!found) {
        *refused = SM_ERR_AUTH_NO_USER;
        return ERR_OK;
    }
    if (db->enabled && strcmp(name, DDKV_ROOT_USER) == 0) {
        *refused = SM_ERR_AUTH_ROOT_KEPT;
        return ERR_OK;
    }
    user_free(&db->users[at]);
    memmove(&db->users[at], &db->users[at + 1], (db->nusers - at - 1) * sizeof *db->users);
    db->nusers--;
    stage_delete(b, 'u', name);
    return ERR_OK;
}

static int user_passwd(struct auth_db *db, struct store_batch *b, uint64_t index, const char *name,
                       const struct sm_auth *a, int *refused)
{
    bool found;
    size_t at = user_pos(db, name, &found);
    if (!passwd_record_ok(a->arg, a->alen))
        *refused = SM_ERR_AUTH_INVALID;
    else if (!found)
        *refused = SM_ERR_AUTH_NO_USER;
    if (*refused)
        return ERR_OK;
    struct auth_user *u = &db->users[at];
    memcpy(u->hash, a->arg, PASSWD_RECORD_BYTES);
    u->rev = index;
    return stage_user(b, u);
}

static int user_grant(struct auth_db *db, struct store_batch *b, const char *name, const char *role, bool grant,
                      int *refused)
{
    bool found, has;
    size_t at = user_pos(db, name, &found);
    if (!found) {
        *refused = SM_ERR_AUTH_NO_USER;
        return ERR_OK;
    }
    struct auth_user *u = &db->users[at];
    size_t ri = user_role_pos(u, role, &has);
    if (grant && strcmp(role, DDKV_ROOT_ROLE) != 0 && !auth_role_find(db, role))
        *refused = SM_ERR_AUTH_NO_ROLE;
    else if (grant && !has && u->nroles >= AUTH_USER_ROLES_MAX)
        *refused = SM_ERR_AUTH_LIMIT;
    else if (!grant && !has)
        *refused = SM_ERR_AUTH_NO_GRANT;
    else if (!grant && db->enabled && strcmp(name, DDKV_ROOT_USER) == 0 && strcmp(role, DDKV_ROOT_ROLE) == 0)
        *refused = SM_ERR_AUTH_ROOT_KEPT;
    if (*refused || (grant && has))
        return ERR_OK;
    if (grant) {
        if (grow((void **)&u->roles, u->nroles, sizeof *u->roles))
            return ERR_NOMEM;
        memmove(&u->roles[ri + 1], &u->roles[ri], (u->nroles - ri) * sizeof *u->roles);
        snprintf(u->roles[ri], sizeof u->roles[ri], "%s", role);
        u->nroles++;
    } else {
        memmove(&u->roles[ri], &u->roles[ri + 1], (u->nroles - ri - 1) * sizeof *u->roles);
        u->nroles--;
    }
    return stage_user(b, u);
}

static int role_add(struct auth_db *db, struct store_batch *b, const char *name, int *refused)
{
    bool found;
    size_t at = role_pos(db, name, &found);
    if (found || strcmp(name, DDKV_ROOT_ROLE) == 0)
        *refused = SM_ERR_AUTH_EXISTS;
    else if (db->nroles >= AUTH_ROLES_MAX)
        *refused = SM_ERR_AUTH_LIMIT;
    if (*refused || grow((void **)&db->roles, db->nroles, sizeof *db->roles))
        return *refused ? ERR_OK : ERR_NOMEM;
    memmove(&db->roles[at + 1], &db->roles[at], (db->nroles - at) * sizeof *db->roles);
    db->nroles++;
    struct auth_role *r = &db->roles[at];
    memset(r, 0, sizeof *r);
    snprintf(r->name, sizeof r->name, "%s", name);
    return stage_role(b, r);
}

/* Remove the role, and take it from every user that holds it. */
static int role_remove(struct auth_db *db, struct store_batch *b, const char *name, int *refused)
{
    bool found;
    size_t at = role_pos(db, name, &found);
    if (strcmp(name, DDKV_ROOT_ROLE) == 0)
        *refused = SM_ERR_AUTH_ROOT_KEPT;
    else if (!found)
        *refused = SM_ERR_AUTH_NO_ROLE;
    if (*refused)
        return ERR_OK;
    role_free(&db->roles[at]);
    memmove(&db->roles[at], &db->roles[at + 1], (db->nroles - at - 1) * sizeof *db->roles);
    db->nroles--;
    stage_delete(b, 'r', name);
    for (size_t i = 0; i < db->nusers; i++) {
        struct auth_user *u = &db->users[i];
        bool has;
        size_t ri = user_role_pos(u, name, &has);
        if (!has)
            continue;
        memmove(&u->roles[ri], &u->roles[ri + 1], (u->nroles - ri - 1) * sizeof *u->roles);
        u->nroles--;
        int rc = stage_user(b, u);
        if (rc)
            return rc;
    }
    return ERR_OK;
}

static int role_grant(struct auth_db *db, struct store_batch *b, const char *name, const struct sm_auth *a,
                      bool grant, int *refused)
{
    bool found, has = false;
    size_t at = role_pos(db, name, &found);
    struct auth_role *r = found ? &db->roles[at] : NULL;
    size_t pi = r ? perm_pos(r, a->arg, a->alen, &has) : 0;
    if (strcmp(name, DDKV_ROOT_ROLE) == 0)
        *refused = SM_ERR_AUTH_ROOT_KEPT; /* it grants everything already */
    else if (!r)
        *refused = SM_ERR_AUTH_NO_ROLE;
    else if (grant && (a->alen > AUTH_PREFIX_MAX || (a->perm != DDKV_PERM_READ && a->perm != DDKV_PERM_READWRITE)))
        *refused = SM_ERR_AUTH_INVALID;
    else if (grant && !has && r->nperms >= AUTH_ROLE_PERMS_MAX)
        *refused = SM_ERR_AUTH_LIMIT;
    else if (!grant && !has)
        *refused = SM_ERR_AUTH_NO_GRANT;
    if (*refused)
        return ERR_OK;
    if (!grant) {
        free(r->perms[pi].prefix);
        memmove(&r->perms[pi], &r->perms[pi + 1], (r->nperms - pi - 1) * sizeof *r->perms);
        r->nperms--;
    } else if (has) {
        r->perms[pi].perm = a->perm; /* a new grant of a prefix replaces the old one */
    } else {
        uint8_t *copy = a->alen ? malloc(a->alen) : NULL;
        if ((a->alen && !copy) || grow((void **)&r->perms, r->nperms, sizeof *r->perms)) {
            free(copy);
            return ERR_NOMEM;
        }
        if (a->alen)
            memcpy(copy, a->arg, a->alen);
        memmove(&r->perms[pi + 1], &r->perms[pi], (r->nperms - pi) * sizeof *r->perms);
        r->perms[pi] = (struct auth_perm){.prefix = copy, .plen = a->alen, .perm = a->perm};
        r->nperms++;
    }
    return stage_role(b, r);
}

/* A name argument as a C string; false if it is not a valid name. */
static bool arg_name(auth_name out, const uint8_t *p, size_t n)
{
    return name_take(out, p, n);
}

int auth_apply(struct auth_db *db, struct store_batch *b, uint64_t index, const struct sm_auth *a, int *refused,
               struct errbuf *eb)
{
    auth_name name = "", role = "";
    *refused = SM_ERR_NONE;
    bool named = a->op != DDKV_AUTH_ENABLE && a->op != DDKV_AUTH_DISABLE;
    bool role_arg = a->op == DDKV_AUTH_USER_GRANT || a->op == DDKV_AUTH_USER_REVOKE;
    if ((named && !arg_name(name, a->name, a->nlen)) || (!named && a->nlen != 0) ||
        (role_arg && !arg_name(role, a->arg, a->alen))) {
        *refused = SM_ERR_AUTH_INVALID;
        return ERR_OK;
    }
    int rc;
    switch (a->op) {
    case DDKV_AUTH_ENABLE: rc = set_enabled(db, b, true, refused); break;
    case DDKV_AUTH_DISABLE: rc = set_enabled(db, b, false, refused); break;
    case DDKV_AUTH_USER_ADD: rc = user_add(db, b, index, name, a, refused); break;
    case DDKV_AUTH_USER_REMOVE: rc = user_remove(db, b, name, refused); break;
    case DDKV_AUTH_USER_PASSWD: rc = user_passwd(db, b, index, name, a, refused); break;
    case DDKV_AUTH_USER_GRANT: rc = user_grant(db, b, name, role, true, refused); break;
    case DDKV_AUTH_USER_REVOKE: rc = user_grant(db, b, name, role, false, refused); break;
    case DDKV_AUTH_ROLE_ADD: rc = role_add(db, b, name, refused); break;
    case DDKV_AUTH_ROLE_REMOVE: rc = role_remove(db, b, name, refused); break;
    case DDKV_AUTH_ROLE_GRANT: rc = role_grant(db, b, name, a, true, refused); break;
    case DDKV_AUTH_ROLE_REVOKE: rc = role_grant(db, b, name, a, false, refused); break;
    default: *refused = SM_ERR_AUTH_INVALID; rc = ERR_OK; break;
    }
    if (rc)
        return errf(eb, rc, "out of memory applying an auth change");
    if (*refused == SM_ERR_NONE) {
        uint8_t v[8];
        put_be64(v, index);
        store_batch_put(b, STORE_CF_META, AUTH_REV_KEY, strlen(AUTH_REV_KEY), v, sizeof v);
        db->rev = index;
    }
    return ERR_OK;
}
