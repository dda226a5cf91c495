/* Users, roles and permissions: the replicated auth state.
 *
 * Changed only by SM_OP_AUTH commands (kv/cmd.h), applied by the state
 * machine like every write, so every member holds the same users and roles
 * at the same index. They live in the meta column family, out of reach of
 * every client key operation (those touch the data column family only), and
 * travel in snapshots with the rest of meta:
 *   "auth_enabled"  -> u64 1 (absent or 0: auth is off)
 *   "auth_rev"      -> u64 the index of the last change applied (absent: 0)
 *   "u/" + name     -> user: [u8 1][u64 rev][53-byte password hash (kv/passwd.h)]
 *                      [u8 n][n x (u8 len, role name)], roles sorted
 *   "r/" + name     -> role: [u8 1][u8 n][n x (u8 perm, u16 len, prefix)],
 *                      prefixes sorted bytewise, each at most once
 * rev is the index that added the user or last set its password: a
 * connection authenticated under another rev must authenticate again.
 *
 * The role "root" is built in: it is never stored, cannot be added, removed
 * or given prefixes, and grants everything, auth administration and
 * membership included.
 *
 * A grant of prefix G with read (or readwrite) allows reading (writing) every
 * key that starts with G; "" is every key. A range of keys (a LIST or WATCH
 * prefix P) is allowed when one grant covers all of it: G is a prefix of P.
 * A key is the range of itself, so one test serves both.
 *
 * In memory the state machine keeps the committed auth_db for permission
 * checks, and a copy the open batch changes (sm.c). */
#ifndef DDKV_KV_AUTHDB_H
#define DDKV_KV_AUTHDB_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ddkv/wire.h"
#include "kv/passwd.h"
#include "kv/store.h"

#define AUTH_USERS_MAX 4096u
#define AUTH_ROLES_MAX 256u
#define AUTH_USER_ROLES_MAX 32u
#define AUTH_ROLE_PERMS_MAX 64u
#define AUTH_PREFIX_MAX 1024u

typedef char auth_name[DDKV_AUTH_NAME_MAX + 1];

struct auth_perm {
    uint8_t *prefix; /* owned; NULL when empty */
    size_t plen;
    uint8_t perm;    /* enum ddkv_perm */
};

/* name comes first in both records: kv/authdb.c searches them by it. */
struct auth_role {
    auth_name name;
    struct auth_perm *perms; /* sorted by prefix */
    size_t nperms;
};

struct auth_user {
    auth_name name;
    uint64_t rev;
    uint8_t hash[PASSWD_RECORD_BYTES];
    auth_name *roles; /* sorted */
    size_t nroles;
};

struct auth_db {
    bool enabled;
    /* The index of the last change applied (0: none yet). A write admitted
     * under an older one is checked again where it applies (sm.h, auth_rev). */
    uint64_t rev;
    struct auth_user *users; /* sorted by name */
    size_t nusers;
    struct auth_role *roles; /* sorted by name; never "root" */
    size_t nroles;
};

/* One AUTH_CHANGE as a command: op is an enum ddkv_auth_op; name, arg and
 * perm as on the wire (docs/wire-format.md), except that USER_ADD and
 * USER_PASSWD carry the password's hash record, never the password. Pointers
 * are borrowed. */
struct sm_auth {
    uint8_t op;
    const uint8_t *name;
    size_t nlen;
    const uint8_t *arg;
    size_t alen;
    uint8_t perm;
};

/* Whether name is a valid user or role name (1..64 of [A-Za-z0-9_.@-]). */
bool auth_name_ok(const void *name, size_t n);

void auth_db_free(struct auth_db *db);
/* A deep copy of src into *dst (dst empty). ERR_OK or ERR_NOMEM (dst empty). */
int auth_db_clone(struct auth_db *dst, const struct auth_db *src);
/* Read the committed auth state from meta. ERR_OK, ERR_CORRUPT, ERR_NOMEM or a
 * store error (eb says which). */
int auth_db_load(struct auth_db *db, struct store *st, struct errbuf *eb);

/* Apply one change at index to db and stage its records into b. On a refused
 * change (*refused an enum sm_error, see sm.h) nothing changed; ERR_NOMEM
 * may leave db half changed: the caller discards it with the batch. */
int auth_apply(struct auth_db *db, struct store_batch *b, uint64_t index, const struct sm_auth *a, int *refused,
               struct errbuf *eb);

/* --- permission checks (pure) --- */

const struct auth_user *auth_user_find(const struct auth_db *db, const char *name);
const struct auth_role *auth_role_find(const struct auth_db *db, const char *name);
bool auth_is_root(const struct auth_db *db, const struct auth_user *u);
/* Whether u may do `need` (enum ddkv_perm) on every key starting with
 * p[0..n) (for one key: the key itself). */
bool auth_may(const struct auth_db *db, const struct auth_user *u, const void *p, size_t n, uint8_t need);
/* Whether u holds readwrite on some prefix (or is root). */
bool auth_may_write_somewhere(const struct auth_db *db, const struct auth_user *u);

#endif
