/* The hub's sign-in: sessions kept in the cluster, sealed with a key that
 * only the browser holds, and the per-address throttle of failed logins.
 *
 * A session is the key hubsess/<sid> (sid: 16 random bytes, hex), written by
 * the hub's own user with a lease of the session's lifetime. Its value is
 * AES-256-GCM of {"u": user, "p": password, "c": csrf, "e": expiry ms} under
 * a 32-byte key K drawn at login, with sid as associated data. The browser's
 * cookie holds sid and K (HttpOnly, SameSite=Strict): the cluster alone
 * cannot open the record, the cookie alone names nothing, so any hub reading
 * the cluster serves any session (several hubs, restarts), and logout
 * deletes the record (a stolen cookie dies with it). The password is kept so
 * that the hub talks to the cluster as that person (libddkv logs in with it):
 * the cluster's own permissions judge every request, never the hub's.
 * Logged-in clients are pooled per session (a login costs the node a PBKDF2
 * check); the pool is a cache, rebuilt from the record after a restart. */
#ifndef DDKV_HUB_SESSION_H
#define DDKV_HUB_SESSION_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "ddkv/ddkv.h"

#define HUBSESS_COOKIE "ddkv_session"

struct hubsess;

/* A signed-in request: who, and a client logged in as them (checked out of
 * the pool; give it back with hubsess_release). */
struct hubsess_ref {
    char sid[33];
    char user[65];
    char csrf[65];
    uint64_t expires_ms;
    ddkv_client *client;
};

/* base: client options to reach the cluster (TLS, timeouts; user and password
 * are replaced by the person's); ttl_s: a session's lifetime. */
struct hubsess *hubsess_new(const struct ddkv_options *base, uint32_t ttl_s);
void hubsess_free(struct hubsess *s);

/* Failed-login throttle per client address (16 bytes, v4 in the first 4):
 * true while that address must wait, with the seconds left. Any thread. */
bool hubsess_throttled(struct hubsess *s, const uint8_t addr[16], uint32_t *retry_s);

/* POST /api/login with body {"user","password"}: on success *status 200,
 * *out the JSON reply and *set_cookie a Set-Cookie header line (both malloc);
 * else an error status and *out {"error"}. hubc: the hub's own client (it
 * writes the session record). secure: the hub speaks HTTPS. */
void hubsess_login(struct hubsess *s, ddkv_client *hubc, const uint8_t addr[16], const char *body, size_t n,
                   bool secure, int *status, char **out, char **set_cookie);

/* The session the Cookie header names: 0 and *ref, or an HTTP status (401:
 * none, expired or signed out; 503: the cluster did not answer) with the
 * reason in why. */
int hubsess_open(struct hubsess *s, ddkv_client *hubc, const char *cookie, struct hubsess_ref *ref, char *why,
                 size_t cap);
/* Back to the pool (or freed when the request failed on its connection). */
void hubsess_release(struct hubsess *s, struct hubsess_ref *ref, bool broken);

/* A device's push with `Authorization: Basic B64` (b64: the part after
 * "Basic "): 0 and *ref (user and a client logged in as them; no csrf), or a
 * status with the reason: 400 malformed, 401 wrong user or password (counted
 * in the address's failed-login throttle), 503 the cluster did not answer.
 * Logged-in clients are pooled under a keyed hash of user and password (a
 * random key drawn at hubsess_new), never the password itself, so a device
 * pushing every second costs the node one PBKDF2 check, not one a push. */
int hubsess_basic(struct hubsess *s, const uint8_t addr[16], const char *b64, struct hubsess_ref *ref, char *why,
                  size_t cap);
/* Whether Basic credentials may come over this connection: under HTTPS, or
 * from a loopback address (127/8, ::1, ::ffff:127.x) when the password does
 * not cross a network in clear. addr as in hubsess_throttled. */
bool hubsess_basic_transport_ok(bool https, const uint8_t addr[16]);

/* Sign out: the record deleted, the pooled clients freed; *set_cookie clears it. */
int hubsess_logout(struct hubsess *s, ddkv_client *hubc, struct hubsess_ref *ref, bool secure, char **set_cookie,
                   char *why, size_t cap);

/* Whether the two tokens are equal, in time independent of where they differ. */
bool hubsess_token_eq(const char *a, const char *b);
/* A person's roles as the page shows them: "root" first (if root), then the
 * others, root not repeated. A new reference. */
json_t *hubsess_roles_json(const struct ddkv_auth_status *st);

#endif
