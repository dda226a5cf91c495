/* The permission table and prefix matching (node/access.c, kv/authdb.c) on an
 * auth_db built in memory, and password hashing (kv/passwd.c). */
#include <criterion/criterion.h>
#include <stdarg.h>
#include <string.h>

#include "ddkv/wire.h"
#include "kv/authdb.h"
#include "kv/passwd.h"
#include "node/access.h"
#include "proto/msg.h"
#include "util/buf.h"

/* --- a small db: viewer reads metrics/, writer writes app/ and reads "",
 * admin is root, nobody holds a role that does not exist --- */

static struct auth_perm viewer_perms[] = {{(uint8_t *)"metrics/", 8, DDKV_PERM_READ}};
static struct auth_perm writer_perms[] = {{NULL, 0, DDKV_PERM_READ}, {(uint8_t *)"app/", 4, DDKV_PERM_READWRITE}};
static struct auth_role roles[] = {
    {"reader-metrics", viewer_perms, 1},
    {"writer-app", writer_perms, 2},
};
static auth_name admin_roles[] = {"root"};
static auth_name nobody_roles[] = {"gone"};
static auth_name viewer_roles[] = {"reader-metrics"};
static auth_name writer_roles[] = {"writer-app"};
static struct auth_user users[] = {
    {.name = "admin", .rev = 1, .roles = admin_roles, .nroles = 1},
    {.name = "nobody", .rev = 1, .roles = nobody_roles, .nroles = 1},
    {.name = "viewer", .rev = 1, .roles = viewer_roles, .nroles = 1},
    {.name = "writer", .rev = 1, .roles = writer_roles, .nroles = 1},
};
static struct auth_db db = {.enabled = true, .users = users, .nusers = 4, .roles = roles, .nroles = 2};

static const struct auth_user *user(const char *name)
{
    const struct auth_user *u = auth_user_find(&db, name);
    cr_assert_not_null(u, "%s", name);
    return u;
}

static bool may(const char *name, const char *p, uint8_t need)
{
    return auth_may(&db, user(name), p, strlen(p), need);
}

Test(auth, prefix_boundaries)
{
    cr_assert(may("viewer", "metrics/x", DDKV_PERM_READ));
    cr_assert(may("viewer", "metrics/", DDKV_PERM_READ), "the prefix itself is a key under it");
    cr_assert(may("viewer", "metrics/a/b/c", DDKV_PERM_READ));
    cr_assert(!may("viewer", "metrics", DDKV_PERM_READ), "shorter than the grant");
    cr_assert(!may("viewer", "metricsX", DDKV_PERM_READ));
    cr_assert(!may("viewer", "metrics-x/", DDKV_PERM_READ));
    cr_assert(!may("viewer", "Metrics/x", DDKV_PERM_READ), "bytes compare exactly");
    cr_assert(!may("viewer", "other/y", DDKV_PERM_READ));
    cr_assert(!may("viewer", "", DDKV_PERM_READ), "the empty range is every key");
}

Test(auth, read_and_readwrite)
{
    cr_assert(!may("viewer", "metrics/x", DDKV_PERM_READWRITE), "read does not give write");
    cr_assert(may("writer", "app/k", DDKV_PERM_READWRITE));
    cr_assert(may("writer", "app/k", DDKV_PERM_READ), "readwrite gives read");
    cr_assert(may("writer", "anything", DDKV_PERM_READ), "a grant of \"\" covers every key");
    cr_assert(may("writer", "", DDKV_PERM_READ), "and the range of every key");
    cr_assert(!may("writer", "anything", DDKV_PERM_READWRITE));
    cr_assert(!may("writer", "ap", DDKV_PERM_READWRITE));
    cr_assert(auth_may_write_somewhere(&db, user("writer")));
    cr_assert(!auth_may_write_somewhere(&db, user("viewer")));
}

Test(auth, root_and_missing_roles)
{
    cr_assert(auth_is_root(&db, user("admin")));
    cr_assert(may("admin", "", DDKV_PERM_READWRITE));
    cr_assert(auth_may_write_somewhere(&db, user("admin")));
    cr_assert(!auth_is_root(&db, user("viewer")));
    cr_assert(!may("nobody", "metrics/x", DDKV_PERM_READ), "a role that does not exist grants nothing");
    cr_assert_null(auth_user_find(&db, "ghost"));
    cr_assert_null(auth_user_find(&db, ""));
}

Test(auth, names)
{
    cr_assert(auth_name_ok("a", 1));
    cr_assert(auth_name_ok("ops.team-1@site_x", 17));
    cr_assert(!auth_name_ok("", 0));
    cr_assert(!auth_name_ok("a b", 3));
    cr_assert(!auth_name_ok("a/b", 3));
    cr_assert(!auth_name_ok("a\0b", 3));
    char longest[DDKV_AUTH_NAME_MAX + 1];
    memset(longest, 'x', sizeof longest);
    cr_assert(auth_name_ok(longest, DDKV_AUTH_NAME_MAX));
    cr_assert(!auth_name_ok(longest, DDKV_AUTH_NAME_MAX + 1));
}

/* --- messages through the table --- */

/* A request built field by field: 'b' bytes (string), 'n' nil, 'u' u64,
 * 'r' raw nested msgpack already packed in the next argument (const struct buf *). */
/* The frames the built messages point into, freed after each test. */
static struct buf pool[32];
static size_t npool;

static void pool_free(void)
{
    for (size_t i = 0; i < npool; i++)
        buf_free(&pool[i]);
    npool = 0;
}

TestSuite(access, .fini = pool_free);

static struct msg build(uint32_t type, const char *shape, ...)
{
    cr_assert_lt(npool, sizeof pool / sizeof pool[0]);
    struct buf *bp = &pool[npool++];
    *bp = (struct buf)BUF_INIT;
    struct msg_writer w;
    va_list ap;
    va_start(ap, shape);
    msg_begin(&w, bp, type, 1, 7, (uint32_t)strlen(shape));
    for (const char *s = shape; *s; s++) {
        if (*s == 'b') {
            const char *v = va_arg(ap, const char *);
            mw_bin(&w, v, strlen(v));
        } else if (*s == 'u') {
            mw_u64(&w, va_arg(ap, uint64_t));
        } else if (*s == 'r') {
            const struct buf *raw = va_arg(ap, const struct buf *);
            mw_raw(&w, raw->data, raw->len);
        } else {
            mw_nil(&w);
        }
    }
    va_end(ap);
    cr_assert_eq(msg_end(&w), ERR_OK);
    struct msg m;
    struct errbuf eb;
    cr_assert_eq(msg_decode(&m, bp->data + DDKV_FRAME_HEADER_BYTES, bp->len - DDKV_FRAME_HEADER_BYTES,
                            &msg_limits_request, &eb),
                 ERR_OK, "%s", eb.msg);
    return m; /* it points into the pool's frame */
}

static uint32_t check(const char *who, const struct msg *m)
{
    char why[256];
    return access_check(&db, NULL, who, m, why, sizeof why);
}

Test(access, disabled_is_open)
{
    struct auth_db off = db;
    off.enabled = false;
    struct msg m = build(DDKV_MSG_WRITE, "bb", "other/y", "v");
    char why[256];
    cr_assert_eq(access_check(&off, NULL, NULL, &m, why, sizeof why), 0);
    msg_free(&m);
}

Test(access, identity)
{
    struct msg ping = build(DDKV_MSG_PING, "");
    struct msg auth = build(DDKV_MSG_AUTH, "bb", "viewer", "pw");
    struct msg status = build(DDKV_MSG_STATUS, "");
    struct msg read = build(DDKV_MSG_READ, "b", "metrics/x");
    cr_assert_eq(check(NULL, &ping), 0, "PING is open for health checks");
    cr_assert_eq(check(NULL, &auth), 0);
    cr_assert_eq(check(NULL, &status), DDKV_WERR_UNAUTHENTICATED);
    cr_assert_eq(check(NULL, &read), DDKV_WERR_UNAUTHENTICATED);
    cr_assert_eq(check("ghost", &read), DDKV_WERR_UNAUTHENTICATED, "a user that no longer exists has no identity");
    cr_assert_eq(check("viewer", &status), 0, "STATUS: any user");
    cr_assert_eq(check("viewer", &read), 0);
    msg_free(&ping);
    msg_free(&auth);
    msg_free(&status);
    msg_free(&read);
}

Test(access, keys_and_ranges)
{
    struct msg r1 = build(DDKV_MSG_READ, "b", "other/y");
    struct msg w1 = build(DDKV_MSG_WRITE, "bb", "metrics/x", "v");
    struct msg d1 = build(DDKV_MSG_DELETE, "b", "metrics/x");
    struct msg l1 = build(DDKV_MSG_LIST, "b", "metrics/");
    struct msg l2 = build(DDKV_MSG_LIST, "b", "metrics");
    struct msg l3 = build(DDKV_MSG_LIST, "n");
    struct msg l4 = build(DDKV_MSG_LIST, "bb", "metrics/", "metrics/zz");
    struct msg wa = build(DDKV_MSG_WATCH, "bu", "metrics/sub/", (uint64_t)0);
    struct msg wb = build(DDKV_MSG_WATCH, "nu", (uint64_t)0);
    cr_assert_eq(check("viewer", &r1), DDKV_WERR_PERMISSION_DENIED);
    cr_assert_eq(check("viewer", &w1), DDKV_WERR_PERMISSION_DENIED);
    cr_assert_eq(check("writer", &w1), DDKV_WERR_PERMISSION_DENIED);
    cr_assert_eq(check("viewer", &d1), DDKV_WERR_PERMISSION_DENIED);
    cr_assert_eq(check("viewer", &l1), 0);
    cr_assert_eq(check("viewer", &l2), DDKV_WERR_PERMISSION_DENIED, "'metrics' also covers 'metricsX'");
    cr_assert_eq(check("viewer", &l3), DDKV_WERR_PERMISSION_DENIED, "nil prefix: every key");
    cr_assert_eq(check("writer", &l3), 0);
    cr_assert_eq(check("viewer", &l4), 0, "a page after start_after stays inside the prefix");
    cr_assert_eq(check("viewer", &wa), 0);
    cr_assert_eq(check("viewer", &wb), DDKV_WERR_PERMISSION_DENIED);
    cr_assert_eq(check("admin", &wb), 0);
    struct msg *all[] = {&r1, &w1, &d1, &l1, &l2, &l3, &l4, &wa, &wb};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++)
        msg_free(all[i]);
}

/* [[key, field, cmp, operand]] compares and [[kind, key, value, lease]] ops. */
static void txn_parts(struct buf *cmps, const char *ckey, struct buf *ops, const char *okey)
{
    struct msg_writer w;
    msg_writer_raw(&w, cmps);
    mw_array(&w, 1);
    mw_array(&w, 4);
    mw_bin(&w, ckey, strlen(ckey));
    mw_u64(&w, DDKV_CMP_VERSION);
    mw_u64(&w, DDKV_CMP_EQ);
    mw_u64(&w, 0);
    msg_writer_raw(&w, ops);
    mw_array(&w, 1);
    mw_array(&w, 4);
    mw_u64(&w, DDKV_OP_PUT);
    mw_bin(&w, okey, strlen(okey));
    mw_bin(&w, "v", 1);
    mw_u64(&w, 0);
}

Test(access, txn)
{
    struct buf c1 = BUF_INIT, o1 = BUF_INIT, c2 = BUF_INIT, o2 = BUF_INIT;
    txn_parts(&c1, "other/guard", &o1, "app/x");
    txn_parts(&c2, "app/guard", &o2, "other/x");
    struct msg ok = build(DDKV_MSG_TXN, "rrn", &c1, &o1);
    struct msg bad_fail_branch = build(DDKV_MSG_TXN, "rnr", &c1, &o2);
    struct msg viewer_cas = build(DDKV_MSG_TXN, "rrn", &c2, &o1);
    cr_assert_eq(check("writer", &ok), 0, "compares need read (\"\"), operations readwrite (app/)");
    cr_assert_eq(check("writer", &bad_fail_branch), DDKV_WERR_PERMISSION_DENIED,
                 "the on_failure branch is checked too");
    cr_assert_eq(check("viewer", &viewer_cas), DDKV_WERR_PERMISSION_DENIED);
    struct msg garbled = build(DDKV_MSG_TXN, "bnn", "not an array");
    cr_assert_eq(check("writer", &garbled), DDKV_WERR_BAD_REQUEST);
    cr_assert_eq(check("admin", &garbled), 0, "root passes without a look (the handler refuses it)");
    msg_free(&ok);
    msg_free(&bad_fail_branch);
    msg_free(&viewer_cas);
    msg_free(&garbled);
    buf_free(&c1);
    buf_free(&o1);
    buf_free(&c2);
    buf_free(&o2);
}

Test(access, root_only_and_leases_and_jobs)
{
    struct msg add = build(DDKV_MSG_MEMBER_ADD, "bb", "n4", "127.0.0.1:1");
    struct msg change = build(DDKV_MSG_AUTH_CHANGE, "ub", (uint64_t)DDKV_AUTH_ROLE_ADD, "r");
    struct msg grant = build(DDKV_MSG_LEASE_GRANT, "u", (uint64_t)5000);
    struct msg put = build(DDKV_MSG_JOB_PUT, "bu", "app/input/", (uint64_t)1);
    cr_assert_eq(check("writer", &add), DDKV_WERR_PERMISSION_DENIED);
    cr_assert_eq(check("writer", &change), DDKV_WERR_PERMISSION_DENIED);
    cr_assert_eq(check("admin", &add), 0);
    cr_assert_eq(check("admin", &change), 0);
    cr_assert_eq(check("viewer", &grant), DDKV_WERR_PERMISSION_DENIED, "a reader holds no lease");
    cr_assert_eq(check("writer", &grant), 0);
    cr_assert_eq(check("writer", &put), DDKV_WERR_PERMISSION_DENIED, "jobs need readwrite on the job space");
    cr_assert_eq(check("admin", &put), 0);
    msg_free(&add);
    msg_free(&change);
    msg_free(&grant);
    msg_free(&put);
}

Test(access, every_client_type_has_a_rule)
{
    static const uint32_t types[] = {
        DDKV_MSG_PING, DDKV_MSG_READ, DDKV_MSG_WRITE, DDKV_MSG_DELETE, DDKV_MSG_LIST, DDKV_MSG_STATUS,
        DDKV_MSG_MEMBER_ADD, DDKV_MSG_MEMBER_REMOVE, DDKV_MSG_TXN, DDKV_MSG_LEASE_GRANT, DDKV_MSG_LEASE_KEEPALIVE,
        DDKV_MSG_LEASE_REVOKE, DDKV_MSG_WATCH, DDKV_MSG_LEADER_TRANSFER, DDKV_MSG_JOB_PUT, DDKV_MSG_JOB_CLAIM,
        DDKV_MSG_JOB_ACK, DDKV_MSG_JOB_NACK, DDKV_MSG_JOB_EXTEND, DDKV_MSG_AUTH, DDKV_MSG_AUTH_CHANGE,
        DDKV_MSG_AUTH_STATUS, DDKV_MSG_AUTH_LIST};
    for (size_t i = 0; i < sizeof types / sizeof types[0]; i++)
        cr_assert(access_has_rule(types[i]), "%s", msg_type_name(types[i]));
    cr_assert(!access_has_rule(200));
    /* A type without a rule is refused to all but root (fail closed). */
    struct msg m = build(200, "");
    cr_assert_eq(check("writer", &m), DDKV_WERR_PERMISSION_DENIED);
    msg_free(&m);
}

/* --- passwords --- */

Test(passwd, hash_and_verify)
{
    uint8_t a[PASSWD_RECORD_BYTES], b[PASSWD_RECORD_BYTES];
    cr_assert_eq(passwd_hash("s3cret", 6, PASSWD_ITERATIONS_MIN, a), ERR_OK);
    cr_assert_eq(passwd_hash("s3cret", 6, PASSWD_ITERATIONS_MIN, b), ERR_OK);
    cr_assert(passwd_record_ok(a, sizeof a));
    cr_assert_eq(get_be32(a + 1), PASSWD_ITERATIONS_MIN, "the iteration count travels with the hash");
    cr_assert(memcmp(a + 5, b + 5, PASSWD_SALT_BYTES) != 0, "every hash has its own salt");
    cr_assert(memcmp(a + 21, b + 21, PASSWD_KEY_BYTES) != 0, "so the same password hashes differently");
    cr_assert(passwd_verify("s3cret", 6, a, sizeof a));
    cr_assert(passwd_verify("s3cret", 6, b, sizeof b));
    cr_assert(!passwd_verify("s3cre", 5, a, sizeof a));
    cr_assert(!passwd_verify("s3cret!", 7, a, sizeof a));
    cr_assert(!passwd_verify("", 0, a, sizeof a));
    for (size_t i = 0; i + 6 <= sizeof a; i++)
        cr_assert(memcmp(a + i, "s3cret", 6) != 0, "the password is not in the record");
}

Test(passwd, malformed_records_match_nothing)
{
    uint8_t a[PASSWD_RECORD_BYTES];
    cr_assert_eq(passwd_hash("pw", 2, PASSWD_ITERATIONS_MIN, a), ERR_OK);
    cr_assert(!passwd_verify("pw", 2, a, sizeof a - 1), "short");
    uint8_t t[PASSWD_RECORD_BYTES];
    memcpy(t, a, sizeof t);
    t[30] ^= 1;
    cr_assert(!passwd_verify("pw", 2, t, sizeof t), "a changed key");
    memcpy(t, a, sizeof t);
    t[6] ^= 1;
    cr_assert(!passwd_verify("pw", 2, t, sizeof t), "a changed salt");
    memcpy(t, a, sizeof t);
    t[0] = 2;
    cr_assert(!passwd_record_ok(t, sizeof t), "unknown algorithm");
    memcpy(t, a, sizeof t);
    put_be32(t + 1, 1);
    cr_assert(!passwd_record_ok(t, sizeof t), "too few iterations to be a real hash");
    cr_assert(!passwd_verify("pw", 2, t, sizeof t));
}
