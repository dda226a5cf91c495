/* The hub's sessions and failed-login throttle (see hub_session.h). */
#include "hub/hub_session.h"

#include <inttypes.h>
#include <jansson.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "util/clock.h"

#define HUBSESS_POOL 64        /* idle logged-in clients kept */
#define HUBSESS_POOL_IDLE_MS (5u * 60 * 1000) /* one idle for this long is logged out */
#define HUBSESS_BASIC_MAX 1500 /* an Authorization: Basic value (base64 of user:password) */
#define HUBSESS_ADDRS 1024     /* client addresses whose failed logins are remembered */
#define HUBSESS_FREE_FAILS 3   /* failures before an address must wait */
#define HUBSESS_WAIT_MAX_MS 60000
#define HUBSESS_FORGET_MS (15u * 60 * 1000) /* an address that has not failed for this long starts afresh */
#define HUBSESS_IV 12
#define HUBSESS_TAG 16

struct pooled {
    char sid[33];
    ddkv_client *c;
    uint64_t used_ms;
};

struct failed {
    uint8_t addr[16];
    uint32_t fails;
    uint64_t until_ms, last_ms;
};

struct hubsess {
    struct ddkv_options base;
    uint32_t ttl_s;
    pthread_mutex_t mu;
    struct pooled pool[HUBSESS_POOL];
    struct failed addrs[HUBSESS_ADDRS];
    uint8_t pool_key[32]; /* keys the pool's entries for Basic credentials (hubsess_basic) */
};

struct hubsess *hubsess_new(const struct ddkv_options *base, uint32_t ttl_s)
{
    struct hubsess *s = calloc(1, sizeof *s);
    if (!s)
        return NULL;
    s->base = *base;
    s->base.user = NULL;
    s->base.password = NULL;
    s->ttl_s = ttl_s;
    if (getrandom(s->pool_key, sizeof s->pool_key, 0) != (ssize_t)sizeof s->pool_key) {
        free(s);
        return NULL;
    }
    pthread_mutex_init(&s->mu, NULL);
    return s;
}

void hubsess_free(struct hubsess *s)
{
    if (!s)
        return;
    for (size_t i = 0; i < HUBSESS_POOL; i++)
        ddkv_client_free(s->pool[i].c);
    OPENSSL_cleanse(s->pool_key, sizeof s->pool_key);
    pthread_mutex_destroy(&s->mu);
    free(s);
}

/* --- the throttle --- */

static struct failed *addr_slot(struct hubsess *s, const uint8_t addr[16], bool make, uint64_t now)
{
    struct failed *oldest = &s->addrs[0];
    for (size_t i = 0; i < HUBSESS_ADDRS; i++) {
        struct failed *f = &s->addrs[i];
        if (f->last_ms && !memcmp(f->addr, addr, 16)) {
            if (now - f->last_ms > HUBSESS_FORGET_MS)
                memset(f, 0, sizeof *f), memcpy(f->addr, addr, 16), f->last_ms = now;
            return f;
        }
        if (f->last_ms < oldest->last_ms)
            oldest = f;
    }
    if (!make)
        return NULL;
    /* A full table forgets the address that failed longest ago. */
    memset(oldest, 0, sizeof *oldest);
    memcpy(oldest->addr, addr, 16);
    oldest->last_ms = now;
    return oldest;
}

bool hubsess_throttled(struct hubsess *s, const uint8_t addr[16], uint32_t *retry_s)
{
    uint64_t now = clock_mono_ms() + 1;
    pthread_mutex_lock(&s->mu);
    struct failed *f = addr_slot(s, addr, false, now);
    bool wait = f && f->until_ms > now;
    if (wait)
        *retry_s = (uint32_t)((f->until_ms - now + 999) / 1000);
    pthread_mutex_unlock(&s->mu);
    return wait;
}

/* After HUBSESS_FREE_FAILS failures an address waits 1 s, doubling with each
 * further failure up to a minute, before its next login is tried. */
static void addr_failed(struct hubsess *s, const uint8_t addr[16])
{
    uint64_t now = clock_mono_ms() + 1;
    pthread_mutex_lock(&s->mu);
    struct failed *f = addr_slot(s, addr, true, now);
    f->fails++;
    f->last_ms = now;
    if (f->fails >= HUBSESS_FREE_FAILS) {
        uint32_t shift = f->fails - HUBSESS_FREE_FAILS;
        uint64_t wait = shift >= 6 ? HUBSESS_WAIT_MAX_MS : 1000ull << shift;
        f->until_ms = now + (wait < HUBSESS_WAIT_MAX_MS ? wait : HUBSESS_WAIT_MAX_MS);
    }
    pthread_mutex_unlock(&s->mu);
}

static void addr_succeeded(struct hubsess *s, const uint8_t addr[16])
{
    pthread_mutex_lock(&s->mu);
    struct failed *f = addr_slot(s, addr, false, clock_mono_ms() + 1);
    if (f)
        memset(f, 0, sizeof *f);
    pthread_mutex_unlock(&s->mu);
}

/* --- the pool of logged-in clients --- */

/* Entries idle for HUBSESS_POOL_IDLE_MS out of the pool (s->mu held), into
 * idle[] to be freed once it is released. */
static size_t pool_expire(struct hubsess *s, ddkv_client *idle[HUBSESS_POOL])
{
    size_t n = 0;
    uint64_t now = clock_mono_ms();
    for (size_t i = 0; i < HUBSESS_POOL; i++) {
        if (s->pool[i].c && now - s->pool[i].used_ms > HUBSESS_POOL_IDLE_MS) {
            idle[n++] = s->pool[i].c;
            s->pool[i].c = NULL;
        }
    }
    return n;
}

static ddkv_client *pool_take(struct hubsess *s, const char *sid)
{
    ddkv_client *c = NULL, *idle[HUBSESS_POOL];
    pthread_mutex_lock(&s->mu);
    size_t ni = pool_expire(s, idle);
    for (size_t i = 0; i < HUBSESS_POOL && !c; i++) {
        if (s->pool[i].c && !strcmp(s->pool[i].sid, sid)) {
            c = s->pool[i].c;
            s->pool[i].c = NULL;
        }
    }
    pthread_mutex_unlock(&s->mu);
    for (size_t i = 0; i < ni; i++)
        ddkv_client_free(idle[i]);
    return c;
}

static void pool_put(struct hubsess *s, const char *sid, ddkv_client *c)
{
    ddkv_client *evict = NULL, *idle[HUBSESS_POOL];
    pthread_mutex_lock(&s->mu);
    size_t ni = pool_expire(s, idle);
    struct pooled *slot = NULL;
    for (size_t i = 0; i < HUBSESS_POOL; i++) {
        if (!s->pool[i].c) {
            slot = &s->pool[i];
            break;
        }
        if (!slot || s->pool[i].used_ms < slot->used_ms)
            slot = &s->pool[i];
    }
    evict = slot->c;
    snprintf(slot->sid, sizeof slot->sid, "%s", sid);
    slot->c = c;
    slot->used_ms = clock_mono_ms();
    pthread_mutex_unlock(&s->mu);
    ddkv_client_free(evict);
    for (size_t i = 0; i < ni; i++)
        ddkv_client_free(idle[i]);
}

static void pool_drop(struct hubsess *s, const char *sid)
{
    for (ddkv_client *c; (c = pool_take(s, sid));)
        ddkv_client_free(c);
}

static ddkv_client *client_as(struct hubsess *s, const char *user, const char *password)
{
    struct ddkv_options o = s->base;
    o.user = user;
    o.password = password;
    ddkv_client *c = NULL;
    char err[256];
    return ddkv_client_new(&o, &c, err, sizeof err) == DDKV_OK ? c : NULL;
}

/* --- sealing --- */

static void hex(const uint8_t *p, size_t n, char *out)
{
    static const char digits[] = "0123456789abcdef";
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = digits[p[i] >> 4];
        out[2 * i + 1] = digits[p[i] & 15];
    }
    out[2 * n] = 0;
}

static bool unhex(const char *s, size_t n, uint8_t *out)
{
    for (size_t i = 0; i < n; i++) {
        int v = 0;
        for (int k = 0; k < 2; k++) {
            char ch = s[2 * i + k];
            int d = ch >= '0' && ch <= '9' ? ch - '0' : ch >= 'a' && ch <= 'f' ? ch - 'a' + 10 : -1;
            if (d < 0)
                return false;
            v = v * 16 + d;
        }
        out[i] = (uint8_t)v;
    }
    return true;
}

static bool random_bytes(void *p, size_t n)
{
    return getrandom(p, n, 0) == (ssize_t)n;
}

/* AES-256-GCM: iv || ciphertext || tag, sid as associated data. */
static uint8_t *seal(const uint8_t key[32], const char *sid, const char *plain, size_t n, size_t *outlen)
{
    uint8_t *out = malloc(HUBSESS_IV + n + HUBSESS_TAG);
    EVP_CIPHER_CTX *x = EVP_CIPHER_CTX_new();
    int l = 0, l2 = 0;
    bool ok = out && x && random_bytes(out, HUBSESS_IV) &&
              EVP_EncryptInit_ex(x, EVP_aes_256_gcm(), NULL, key, out) == 1 &&
              EVP_EncryptUpdate(x, NULL, &l, (const uint8_t *)sid, (int)strlen(sid)) == 1 &&
              EVP_EncryptUpdate(x, out + HUBSESS_IV, &l, (const uint8_t *)plain, (int)n) == 1 &&
              EVP_EncryptFinal_ex(x, out + HUBSESS_IV + l, &l2) == 1 &&
              EVP_CIPHER_CTX_ctrl(x, EVP_CTRL_GCM_GET_TAG, HUBSESS_TAG, out + HUBSESS_IV + l + l2) == 1;
    EVP_CIPHER_CTX_free(x);
    if (!ok) {
        free(out);
        return NULL;
    }
    *outlen = HUBSESS_IV + (size_t)(l + l2) + HUBSESS_TAG;
    return out;
}

/* The plaintext (NUL-terminated, malloc), or NULL if the record was not
 * sealed with key for sid. */
static char *unseal(const uint8_t key[32], const char *sid, const uint8_t *p, size_t n)
{
    if (n < HUBSESS_IV + HUBSESS_TAG || n > 8192)
        return NULL;
    size_t cl = n - HUBSESS_IV - HUBSESS_TAG;
    char *out = malloc(cl + 1);
    EVP_CIPHER_CTX *x = EVP_CIPHER_CTX_new();
    int l = 0, l2 = 0;
    bool ok = out && x && EVP_DecryptInit_ex(x, EVP_aes_256_gcm(), NULL, key, p) == 1 &&
              EVP_DecryptUpdate(x, NULL, &l, (const uint8_t *)sid, (int)strlen(sid)) == 1 &&
              EVP_DecryptUpdate(x, (uint8_t *)out, &l, p + HUBSESS_IV, (int)cl) == 1 &&
              EVP_CIPHER_CTX_ctrl(x, EVP_CTRL_GCM_SET_TAG, HUBSESS_TAG, (void *)(p + n - HUBSESS_TAG)) == 1 &&
              EVP_DecryptFinal_ex(x, (uint8_t *)out + l, &l2) == 1;
    EVP_CIPHER_CTX_free(x);
    if (!ok) {
        if (out)
            OPENSSL_cleanse(out, cl + 1);
        free(out);
        return NULL;
    }
    out[l + l2] = 0;
    return out;
}

static void wipe_free(char *p)
{
    if (p) {
        OPENSSL_cleanse(p, strlen(p));
        free(p);
    }
}

bool hubsess_token_eq(const char *a, const char *b)
{
    size_t n = strlen(a);
    if (n != strlen(b) || n == 0)
        return false;
    return CRYPTO_memcmp(a, b, n) == 0;
}

/* --- login, open, logout --- */

static char *error_json(const char *msg)
{
    json_t *o = json_pack("{s:s}", "error", msg);
    char *s = o ? json_dumps(o, JSON_COMPACT) : NULL;
    json_decref(o);
    return s;
}

static char *cookie_line(const char *value, uint32_t max_age, bool secure)
{
    size_t n = strlen(value) + 128;
    char *s = malloc(n);
    if (s)
        snprintf(s, n, "Set-Cookie: " HUBSESS_COOKIE "=%s; Path=/; Max-Age=%u; HttpOnly; SameSite=Strict%s\r\n", value,
                 max_age, secure ? "; Secure" : "");
    return s;
}

static bool name_ok(const char *u, size_t n)
{
    if (n == 0 || n > 64 || strlen(u) != n)
        return false;
    for (size_t i = 0; i < n; i++) {
        char ch = u[i];
        if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') || ch == '_' ||
              ch == '.' || ch == '@' || ch == '-'))
            return false;
    }
    return true;
}

json_t *hubsess_roles_json(const struct ddkv_auth_status *st)
{
    json_t *roles = json_array();
    if (st->root)
        json_array_append_new(roles, json_string("root"));
    for (size_t i = 0; i < st->n_roles; i++)
        if (!st->root || strcmp(st->roles[i], "root"))
            json_array_append_new(roles, json_string(st->roles[i]));
    return roles;
}

void hubsess_login(struct hubsess *s, ddkv_client *hubc, const uint8_t addr[16], const char *body, size_t n,
                   bool secure, int *status, char **out, char **set_cookie)
{
    *out = NULL;
    *set_cookie = NULL;
    json_error_t je;
    json_t *req = body ? json_loadb(body, n, 0, &je) : NULL;
    const char *user = json_string_value(json_object_get(req, "user"));
    const char *pw = json_string_value(json_object_get(req, "password"));
    size_t ulen = user ? json_string_length(json_object_get(req, "user")) : 0;
    size_t plen = pw ? json_string_length(json_object_get(req, "password")) : 0;
    if (!json_is_object(req) || !user || !pw) {
        *status = 400;
        *out = error_json("POST /api/login wants JSON {\"user\": ..., \"password\": ...}");
        goto done;
    }
    if (!name_ok(user, ulen) || plen == 0 || plen > 1024 || strlen(pw) != plen) {
        /* Counted as a failure: the answer is the same as for a wrong password. */
        addr_failed(s, addr);
        *status = 401;
        *out = error_json("wrong user or password");
        goto done;
    }
    struct ddkv_auth_status hst;
    ddkv_err e = ddkv_auth_status(hubc, &hst);
    if (e != DDKV_OK) {
        *status = 503;
        *out = error_json("the cluster does not answer; try again");
        goto done;
    }
    bool enabled = hst.enabled, hub_user = hst.user != NULL;
    ddkv_auth_status_free(&hst);
    if (!enabled) {
        *status = 409;
        *out = error_json("the cluster has authentication off: there is nothing to sign in to, and anyone who "
                          "reaches this hub may do anything");
        goto done;
    }
    if (!hub_user) {
        *status = 503;
        *out = error_json("this hub has no cluster user of its own (ddkv hub --user) to keep sessions with");
        goto done;
    }
    ddkv_client *uc = client_as(s, user, pw);
    struct ddkv_auth_status st;
    e = uc ? ddkv_auth_status(uc, &st) : DDKV_ERR_NOMEM;
    if (e == DDKV_OK && !st.user) {
        ddkv_auth_status_free(&st);
        e = DDKV_ERR_PERMISSION_DENIED;
    }
    if (e != DDKV_OK) {
        ddkv_client_free(uc);
        if (e == DDKV_ERR_PERMISSION_DENIED) {
            addr_failed(s, addr);
            *status = 401;
            *out = error_json("wrong user or password");
        } else {
            *status = 503;
            *out = error_json("the cluster does not answer; try again");
        }
        goto done;
    }
    /* A new session: sid, its key, its CSRF token. */
    uint8_t sid_b[16], key[32], csrf_b[32];
    char sid[33], keyhex[65], csrf[65];
    if (!random_bytes(sid_b, sizeof sid_b) || !random_bytes(key, sizeof key) || !random_bytes(csrf_b, sizeof csrf_b)) {
        ddkv_auth_status_free(&st);
        ddkv_client_free(uc);
        *status = 500;
        *out = error_json("no randomness");
        goto done;
    }
    hex(sid_b, sizeof sid_b, sid);
    hex(key, sizeof key, keyhex);
    hex(csrf_b, sizeof csrf_b, csrf);
    uint64_t expires = clock_wall_ms() + (uint64_t)s->ttl_s * 1000;
    char *plain = NULL;
    json_t *rec = json_pack("{s:s, s:s, s:s, s:I}", "u", user, "p", pw, "c", csrf, "e", (json_int_t)expires);
    plain = rec ? json_dumps(rec, JSON_COMPACT) : NULL;
    json_decref(rec);
    size_t sl = 0;
    uint8_t *sealed = plain ? seal(key, sid, plain, strlen(plain), &sl) : NULL;
    wipe_free(plain);
    char k[64];
    snprintf(k, sizeof k, "hubsess/%s", sid);
    uint64_t lease = 0, granted = 0;
    /* The lease removes the record when the session expires; without one
     * (refused), the expiry inside the record still holds. */
    if (ddkv_lease_grant(hubc, (uint64_t)s->ttl_s * 1000 + 60000, &lease, &granted) != DDKV_OK)
        lease = 0;
    struct ddkv_write_result wr;
    e = sealed ? ddkv_write(hubc, k, strlen(k), sealed, sl, lease, &wr) : DDKV_ERR_NOMEM;
    free(sealed);
    if (e != DDKV_OK) {
        ddkv_auth_status_free(&st);
        ddkv_client_free(uc);
        *status = 503;
        char msg[300];
        snprintf(msg, sizeof msg, "cannot keep the session in the cluster: %s", ddkv_client_errmsg(hubc));
        *out = error_json(msg);
        goto done;
    }
    addr_succeeded(s, addr);
    json_t *roles = hubsess_roles_json(&st);
    json_t *r = json_pack("{s:s, s:o, s:s, s:I, s:b}", "user", st.user, "roles", roles, "csrf", csrf, "expires",
                          (json_int_t)expires, "auth", 1);
    *out = r ? json_dumps(r, JSON_COMPACT) : NULL;
    json_decref(r);
    ddkv_auth_status_free(&st);
    char cv[130];
    snprintf(cv, sizeof cv, "%s.%s", sid, keyhex);
    *set_cookie = cookie_line(cv, s->ttl_s, secure);
    OPENSSL_cleanse(key, sizeof key);
    OPENSSL_cleanse(keyhex, sizeof keyhex);
    OPENSSL_cleanse(cv, sizeof cv);
    pool_put(s, sid, uc);
    *status = 200;
done:
    if (pw)
        OPENSSL_cleanse((void *)pw, plen);
    json_decref(req);
}

/* sid and key from a Cookie header ("a=b; ddkv_session=SID.KEY; ..."). */
static bool cookie_parse(const char *cookie, char sid[33], uint8_t key[32])
{
    const size_t nl = strlen(HUBSESS_COOKIE);
    for (const char *p = cookie; p && *p;) {
        p += strspn(p, " \t;");
        if (!strncmp(p, HUBSESS_COOKIE, nl) && p[nl] == '=') {
            const char *v = p + nl + 1;
            size_t vl = strcspn(v, "; \t");
            if (vl != 32 + 1 + 64 || v[32] != '.')
                return false;
            uint8_t sb[16];
            if (!unhex(v, 16, sb) || !unhex(v + 33, 32, key))
                return false;
            hex(sb, 16, sid);
            return true;
        }
        p = strchr(p, ';');
    }
    return false;
}

int hubsess_open(struct hubsess *s, ddkv_client *hubc, const char *cookie, struct hubsess_ref *ref, char *why,
                 size_t cap)
{
    memset(ref, 0, sizeof *ref);
    uint8_t key[32];
    if (!cookie || !cookie_parse(cookie, ref->sid, key)) {
        snprintf(why, cap, "not signed in");
        return 401;
    }
    char k[64];
    snprintf(k, sizeof k, "hubsess/%s", ref->sid);
    struct ddkv_value v;
    ddkv_err e = ddkv_read(hubc, k, strlen(k), DDKV_CONSISTENCY_LINEARIZABLE, 0, &v);
    if (e != DDKV_OK) {
        OPENSSL_cleanse(key, sizeof key);
        snprintf(why, cap, "%s", e == DDKV_ERR_NOT_FOUND ? "the session ended (signed out or expired); sign in again"
                                                          : "the cluster does not answer; try again");
        return e == DDKV_ERR_NOT_FOUND ? 401 : 503;
    }
    char *plain = unseal(key, ref->sid, v.value, v.len);
    OPENSSL_cleanse(key, sizeof key);
    ddkv_free(v.value);
    json_error_t je;
    json_t *rec = plain ? json_loads(plain, 0, &je) : NULL;
    wipe_free(plain);
    const char *user = json_string_value(json_object_get(rec, "u"));
    const char *pw = json_string_value(json_object_get(rec, "p"));
    const char *csrf = json_string_value(json_object_get(rec, "c"));
    json_int_t exp = json_integer_value(json_object_get(rec, "e"));
    int rc = 0;
    if (!user || !pw || !csrf || strlen(user) >= sizeof ref->user || strlen(csrf) >= sizeof ref->csrf) {
        snprintf(why, cap, "not signed in");
        rc = 401;
    } else if ((uint64_t)exp <= clock_wall_ms()) {
        snprintf(why, cap, "the session expired; sign in again");
        struct ddkv_write_result wr;
        (void)ddkv_delete(hubc, k, strlen(k), &wr);
        rc = 401;
    } else {
        snprintf(ref->user, sizeof ref->user, "%s", user);
        snprintf(ref->csrf, sizeof ref->csrf, "%s", csrf);
        ref->expires_ms = (uint64_t)exp;
        ref->client = pool_take(s, ref->sid);
        if (!ref->client)
            ref->client = client_as(s, user, pw);
        if (!ref->client) {
            snprintf(why, cap, "out of memory");
            rc = 500;
        }
    }
    if (pw)
        OPENSSL_cleanse((void *)pw, strlen(pw));
    json_decref(rec);
    return rc;
}

void hubsess_release(struct hubsess *s, struct hubsess_ref *ref, bool broken)
{
    if (!ref->client)
        return;
    if (broken)
        ddkv_client_free(ref->client);
    else
        pool_put(s, ref->sid, ref->client);
    ref->client = NULL;
}

int hubsess_logout(struct hubsess *s, ddkv_client *hubc, struct hubsess_ref *ref, bool secure, char **set_cookie,
                   char *why, size_t cap)
{
    char k[64];
    snprintf(k, sizeof k, "hubsess/%s", ref->sid);
    struct ddkv_write_result wr;
    ddkv_err e = ddkv_delete(hubc, k, strlen(k), &wr);
    if (e != DDKV_OK && e != DDKV_ERR_NOT_FOUND) {
        snprintf(why, cap, "the cluster did not take the sign-out: %s; try again", ddkv_client_errmsg(hubc));
        return 503;
    }
    hubsess_release(s, ref, true);
    pool_drop(s, ref->sid);
    *set_cookie = cookie_line("", 0, secure);
    return 0;
}

/* --- a device's Basic credentials --- */

bool hubsess_basic_transport_ok(bool https, const uint8_t addr[16])
{
    static const uint8_t v6_loop[16] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1};
    static const uint8_t v4_mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
    return https || addr[0] == 127 || !memcmp(addr, v6_loop, 16) || (!memcmp(addr, v4_mapped, 12) && addr[12] == 127);
}

int hubsess_basic(struct hubsess *s, const uint8_t addr[16], const char *b64, struct hubsess_ref *ref, char *why,
                  size_t cap)
{
    memset(ref, 0, sizeof *ref);
    size_t bl = strlen(b64);
    if (bl == 0 || bl > HUBSESS_BASIC_MAX || bl % 4) {
        snprintf(why, cap, "Authorization: Basic wants base64 of USER:PASSWORD");
        return 400;
    }
    uint8_t raw[HUBSESS_BASIC_MAX];
    int rl = EVP_DecodeBlock(raw, (const uint8_t *)b64, (int)bl);
    if (rl < 0) {
        snprintf(why, cap, "Authorization: Basic wants base64 of USER:PASSWORD");
        return 400;
    }
    for (size_t i = bl; i > 0 && b64[i - 1] == '=' && rl > 0; i--)
        rl--; /* EVP_DecodeBlock counts the padding as bytes */
    int rc = 0;
    const uint8_t *colon = memchr(raw, ':', (size_t)rl);
    char user[65], *pw = NULL;
    size_t ulen = colon ? (size_t)(colon - raw) : 0, plen = colon ? (size_t)rl - ulen - 1 : 0;
    if (!colon) {
        snprintf(why, cap, "Authorization: Basic wants base64 of USER:PASSWORD");
        rc = 400;
        goto done;
    }
    if (ulen >= sizeof user || plen == 0 || plen > 1024 || memchr(raw, 0, (size_t)rl)) {
        addr_failed(s, addr); /* the same answer as a wrong password */
        snprintf(why, cap, "wrong user or password");
        rc = 401;
        goto done;
    }
    memcpy(user, raw, ulen);
    user[ulen] = 0;
    if (!name_ok(user, ulen)) {
        addr_failed(s, addr);
        snprintf(why, cap, "wrong user or password");
        rc = 401;
        goto done;
    }
    pw = malloc(plen + 1);
    if (!pw) {
        snprintf(why, cap, "out of memory");
        rc = 500;
        goto done;
    }
    memcpy(pw, colon + 1, plen);
    pw[plen] = 0;
    /* The pool's name for these credentials: '~' and 124 bits of
     * HMAC-SHA256(pool key, user:password) in hex ('~' is never in a
     * session's sid, so the two never meet). */
    uint8_t mac[32];
    unsigned ml = 0;
    if (!HMAC(EVP_sha256(), s->pool_key, sizeof s->pool_key, raw, (size_t)rl, mac, &ml)) {
        snprintf(why, cap, "no HMAC");
        rc = 500;
        goto done;
    }
    char mh[65];
    hex(mac, sizeof mac, mh);
    snprintf(ref->sid, sizeof ref->sid, "~%.31s", mh);
    OPENSSL_cleanse(mac, sizeof mac);
    OPENSSL_cleanse(mh, sizeof mh);
    snprintf(ref->user, sizeof ref->user, "%s", user);
    ref->client = pool_take(s, ref->sid);
    if (ref->client)
        goto done; /* the same user and password logged in before */
    ddkv_client *uc = client_as(s, user, pw);
    struct ddkv_auth_status st;
    ddkv_err e = uc ? ddkv_auth_status(uc, &st) : DDKV_ERR_NOMEM;
    if (e == DDKV_OK) {
        bool who = st.user != NULL;
        ddkv_auth_status_free(&st);
        if (!who)
            e = DDKV_ERR_PERMISSION_DENIED;
    }
    if (e != DDKV_OK) {
        ddkv_client_free(uc);
        if (e == DDKV_ERR_PERMISSION_DENIED) {
            addr_failed(s, addr);
            snprintf(why, cap, "wrong user or password");
            rc = 401;
        } else {
            snprintf(why, cap, "the cluster does not answer; try again");
            rc = 503;
        }
        goto done;
    }
    addr_succeeded(s, addr);
    ref->client = uc;
done:
    OPENSSL_cleanse(raw, sizeof raw);
    if (pw) {
        OPENSSL_cleanse(pw, plen);
        free(pw);
    }
    return rc;
}
