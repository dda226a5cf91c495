/* Users, roles and the auth switch in the state machine (kv/authdb.c through
 * sm_stage): applied as commands, refused without changing anything,
 * committed atomically, persisted across a restart, carried by a snapshot
 * image, and encoded in the log without the password. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

#include "ddkv/wire.h"
#include "harness.h"
#include "kv/cmd.h"
#include "kv/passwd.h"
#include "kv/sm.h"
#include "kv/snapshot.h"
#include "kv/store.h"

struct db {
    char dir[256];
    struct store *st;
    struct sm sm;
};

static struct db A, B;

static void db_open(struct db *d)
{
    struct errbuf eb;
    cr_assert_eq(store_open(&d->st, d->dir, NULL, &eb), ERR_OK, "%s", eb.msg);
    cr_assert_eq(sm_open(&d->sm, d->st, &eb), ERR_OK, "%s", eb.msg);
}

static void db_close(struct db *d)
{
    if (!d->st)
        return;
    sm_close(&d->sm);
    store_close(d->st);
    d->st = NULL;
}

static void setup(void)
{
    cr_assert_eq(harness_tmpdir(A.dir, sizeof A.dir, "auth-a"), 0);
    cr_assert_eq(harness_tmpdir(B.dir, sizeof B.dir, "auth-b"), 0);
    db_open(&A);
}

static void teardown(void)
{
    db_close(&A);
    db_close(&B);
    harness_rmrf(A.dir);
    harness_rmrf(B.dir);
}

TestSuite(auth_sm, .init = setup, .fini = teardown);

static uint8_t hash[PASSWD_RECORD_BYTES];

/* Stage one change into d's open batch; returns its result error. */
static int stage(struct db *d, uint8_t op, const char *name, const void *arg, size_t alen, uint8_t perm)
{
    struct sm_auth a = {.op = op, .name = (const uint8_t *)name, .nlen = strlen(name), .arg = arg, .alen = alen,
                        .perm = perm};
    struct sm_op o = {.kind = SM_OP_AUTH, .auth = &a};
    struct sm_result r;
    struct errbuf eb;
    cr_assert_eq(sm_stage(&d->sm, d->sm.st_index + 1, d->sm.st_lamport + 1, &o, &r, &eb), ERR_OK, "%s", eb.msg);
    cr_assert_eq(r.revision, r.error ? 0 : d->sm.st_index, "a change's revision is its index");
    return r.error;
}

static int apply(struct db *d, uint8_t op, const char *name, const char *arg, uint8_t perm)
{
    int e = stage(d, op, name, arg, arg ? strlen(arg) : 0, perm);
    struct errbuf eb;
    cr_assert_eq(sm_commit(&d->sm, false, &eb), ERR_OK, "%s", eb.msg);
    return e;
}

static int add_user(struct db *d, const char *name)
{
    int e = stage(d, DDKV_AUTH_USER_ADD, name, hash, sizeof hash, 0);
    struct errbuf eb;
    cr_assert_eq(sm_commit(&d->sm, false, &eb), ERR_OK, "%s", eb.msg);
    return e;
}

/* The usual set-up: viewer reads metrics/, root is root. */
static void populate(struct db *d)
{
    cr_assert_eq(passwd_hash("pw", 2, PASSWD_ITERATIONS_MIN, hash), ERR_OK);
    cr_assert_eq(add_user(d, "root"), 0);
    cr_assert_eq(add_user(d, "viewer"), 0);
    cr_assert_eq(apply(d, DDKV_AUTH_ROLE_ADD, "metrics-read", NULL, 0), 0);
    cr_assert_eq(apply(d, DDKV_AUTH_ROLE_GRANT, "metrics-read", "metrics/", DDKV_PERM_READ), 0);
    cr_assert_eq(apply(d, DDKV_AUTH_USER_GRANT, "viewer", "metrics-read", 0), 0);
    cr_assert_eq(apply(d, DDKV_AUTH_USER_GRANT, "root", "root", 0), 0);
    cr_assert_eq(apply(d, DDKV_AUTH_ENABLE, "", NULL, 0), 0);
}

static void expect_populated(struct db *d)
{
    const struct auth_db *db = &d->sm.auth;
    cr_assert(db->enabled);
    const struct auth_user *v = auth_user_find(db, "viewer");
    cr_assert_not_null(v);
    cr_assert(passwd_verify("pw", 2, v->hash, sizeof v->hash));
    cr_assert(auth_may(db, v, "metrics/x", 9, DDKV_PERM_READ));
    cr_assert(!auth_may(db, v, "metrics/x", 9, DDKV_PERM_READWRITE));
    cr_assert(!auth_may(db, v, "other/y", 7, DDKV_PERM_READ));
    cr_assert(auth_is_root(db, auth_user_find(db, "root")));
}

Test(auth_sm, applies_and_survives_a_restart)
{
    populate(&A);
    expect_populated(&A);
    db_close(&A);
    db_open(&A);
    expect_populated(&A);
}

Test(auth_sm, enable_needs_root_holding_root)
{
    cr_assert_eq(passwd_hash("pw", 2, PASSWD_ITERATIONS_MIN, hash), ERR_OK);
    cr_assert_eq(apply(&A, DDKV_AUTH_ENABLE, "", NULL, 0), SM_ERR_AUTH_NO_ROOT, "no user root");
    cr_assert_eq(add_user(&A, "root"), 0);
    cr_assert_eq(apply(&A, DDKV_AUTH_ENABLE, "", NULL, 0), SM_ERR_AUTH_NO_ROOT, "root without the role");
    cr_assert(!A.sm.auth.enabled);
    cr_assert_eq(apply(&A, DDKV_AUTH_USER_GRANT, "root", "root", 0), 0);
    cr_assert_eq(apply(&A, DDKV_AUTH_ENABLE, "", NULL, 0), 0);
    cr_assert(A.sm.auth.enabled);
    /* While enabled, root stays root. */
    cr_assert_eq(apply(&A, DDKV_AUTH_USER_REVOKE, "root", "root", 0), SM_ERR_AUTH_ROOT_KEPT);
    cr_assert_eq(apply(&A, DDKV_AUTH_USER_REMOVE, "root", NULL, 0), SM_ERR_AUTH_ROOT_KEPT);
    cr_assert_eq(apply(&A, DDKV_AUTH_DISABLE, "", NULL, 0), 0);
    cr_assert(!A.sm.auth.enabled);
    cr_assert_eq(apply(&A, DDKV_AUTH_USER_REMOVE, "root", NULL, 0), 0, "off again: root may go");
}

Test(auth_sm, refusals_change_nothing)
{
    populate(&A);
    uint64_t rev = A.sm.revision;
    cr_assert_eq(add_user(&A, "viewer"), SM_ERR_AUTH_EXISTS);
    cr_assert_eq(apply(&A, DDKV_AUTH_ROLE_ADD, "metrics-read", NULL, 0), SM_ERR_AUTH_EXISTS);
    cr_assert_eq(apply(&A, DDKV_AUTH_ROLE_ADD, "root", NULL, 0), SM_ERR_AUTH_EXISTS, "root is built in");
    cr_assert_eq(apply(&A, DDKV_AUTH_ROLE_REMOVE, "root", NULL, 0), SM_ERR_AUTH_ROOT_KEPT);
    cr_assert_eq(apply(&A, DDKV_AUTH_ROLE_GRANT, "root", "x/", DDKV_PERM_READ), SM_ERR_AUTH_ROOT_KEPT);
    cr_assert_eq(apply(&A, DDKV_AUTH_USER_GRANT, "ghost", "metrics-read", 0), SM_ERR_AUTH_NO_USER);
    cr_assert_eq(apply(&A, DDKV_AUTH_USER_GRANT, "viewer", "ghost", 0), SM_ERR_AUTH_NO_ROLE);
    cr_assert_eq(apply(&A, DDKV_AUTH_USER_REVOKE, "viewer", "root", 0), SM_ERR_AUTH_NO_GRANT);
    cr_assert_eq(apply(&A, DDKV_AUTH_ROLE_REVOKE, "metrics-read", "other/", 0), SM_ERR_AUTH_NO_GRANT);
    cr_assert_eq(apply(&A, DDKV_AUTH_ROLE_GRANT, "metrics-read", "x/", 3), SM_ERR_AUTH_INVALID, "no such perm");
    cr_assert_eq(apply(&A, DDKV_AUTH_USER_ADD, "bad name", NULL, 0), SM_ERR_AUTH_INVALID);
    cr_assert_eq(stage(&A, DDKV_AUTH_USER_ADD, "short", "xx", 2, 0), SM_ERR_AUTH_INVALID, "not a hash record");
    struct errbuf eb;
    cr_assert_eq(sm_commit(&A.sm, false, &eb), ERR_OK);
    cr_assert_eq(A.sm.revision, rev, "refused changes made no revision");
    expect_populated(&A);
    cr_assert_null(auth_user_find(&A.sm.auth, "short"));
}

Test(auth_sm, grants_replace_revoke_and_cascade)
{
    populate(&A);
    const struct auth_db *db = &A.sm.auth;
    cr_assert_eq(apply(&A, DDKV_AUTH_ROLE_GRANT, "metrics-read", "metrics/", DDKV_PERM_READWRITE), 0);
    cr_assert(auth_may(db, auth_user_find(db, "viewer"), "metrics/x", 9, DDKV_PERM_READWRITE),
              "a new grant of a prefix replaces its perm");
    cr_assert_eq(auth_role_find(db, "metrics-read")->nperms, 1);
    cr_assert_eq(apply(&A, DDKV_AUTH_ROLE_REVOKE, "metrics-read", "metrics/", 0), 0);
    cr_assert(!auth_may(db, auth_user_find(db, "viewer"), "metrics/x", 9, DDKV_PERM_READ));
    /* Removing a role takes it from its users, in the store too. */
    cr_assert_eq(apply(&A, DDKV_AUTH_ROLE_REMOVE, "metrics-read", NULL, 0), 0);
    cr_assert_eq(auth_user_find(db, "viewer")->nroles, 0);
    cr_assert_eq(apply(&A, DDKV_AUTH_ROLE_ADD, "metrics-read", NULL, 0), 0);
    db_close(&A);
    db_open(&A);
    cr_assert_eq(auth_user_find(&A.sm.auth, "viewer")->nroles, 0, "a role added again is not held by old users");
}

Test(auth_sm, staged_changes_are_invisible_until_commit)
{
    populate(&A);
    cr_assert_eq(stage(&A, DDKV_AUTH_USER_REMOVE, "viewer", NULL, 0, 0), 0);
    cr_assert_eq(stage(&A, DDKV_AUTH_DISABLE, "", NULL, 0, 0), 0);
    cr_assert_not_null(auth_user_find(&A.sm.auth, "viewer"), "checks read the committed state");
    cr_assert(A.sm.auth.enabled);
    sm_discard(&A.sm);
    expect_populated(&A);
    db_close(&A);
    db_open(&A);
    expect_populated(&A);
}

Test(auth_sm, a_password_change_moves_the_rev)
{
    populate(&A);
    uint64_t rev = auth_user_find(&A.sm.auth, "viewer")->rev;
    uint8_t other[PASSWD_RECORD_BYTES];
    cr_assert_eq(passwd_hash("new", 3, PASSWD_ITERATIONS_MIN, other), ERR_OK);
    cr_assert_eq(stage(&A, DDKV_AUTH_USER_PASSWD, "viewer", other, sizeof other, 0), 0);
    struct errbuf eb;
    cr_assert_eq(sm_commit(&A.sm, false, &eb), ERR_OK);
    const struct auth_user *v = auth_user_find(&A.sm.auth, "viewer");
    cr_assert_gt(v->rev, rev, "connections logged in before must log in again");
    cr_assert(passwd_verify("new", 3, v->hash, sizeof v->hash));
    cr_assert(!passwd_verify("pw", 2, v->hash, sizeof v->hash));
}

Test(auth_sm, a_snapshot_carries_users_and_roles)
{
    populate(&A);
    char path[300];
    snprintf(path, sizeof path, "%s/img.snap", A.dir);
    struct errbuf eb;
    cr_assert_eq(snap_write(A.st, path, A.sm.applied_index, 1, &eb), ERR_OK, "%s", eb.msg);
    db_open(&B);
    sm_close(&B.sm);
    cr_assert_eq(snap_install(B.st, path, NULL, &eb), ERR_OK, "%s", eb.msg);
    cr_assert_eq(sm_open(&B.sm, B.st, &eb), ERR_OK, "%s", eb.msg);
    expect_populated(&B);
}

Test(auth_sm, the_log_holds_the_hash_not_the_password)
{
    static struct cmd c;
    uint8_t rec[PASSWD_RECORD_BYTES];
    cr_assert_eq(passwd_hash("hunter2", 7, PASSWD_ITERATIONS_MIN, rec), ERR_OK);
    struct sm_auth a = {.op = DDKV_AUTH_USER_ADD, .name = (const uint8_t *)"viewer", .nlen = 6, .arg = rec,
                        .alen = sizeof rec};
    struct sm_op op = {.kind = SM_OP_AUTH, .auth = &a, .client_id = 9, .seq = 4};
    struct buf b = BUF_INIT;
    cr_assert_eq(cmd_encode_op(&op, 77, &b), ERR_OK);
    cr_assert_eq(cmd_decode(b.data, b.len, &c), ERR_OK);
    cr_assert_eq(c.op.kind, SM_OP_AUTH);
    cr_assert_eq(c.op.auth->op, DDKV_AUTH_USER_ADD);
    cr_assert_eq(c.op.auth->nlen, 6);
    cr_assert(memcmp(c.op.auth->name, "viewer", 6) == 0);
    cr_assert_eq(c.op.auth->alen, sizeof rec);
    cr_assert(memcmp(c.op.auth->arg, rec, sizeof rec) == 0);
    cr_assert_eq(c.op.client_id, 9);
    cr_assert_eq(c.lamport, 77);
    for (size_t i = 0; i + 7 <= b.len; i++)
        cr_assert(memcmp(b.data + i, "hunter2", 7) != 0);
    /* One encoding only: trailing bytes, a cut, an unknown op are corrupt. */
    buf_append(&b, "x", 1);
    cr_assert_eq(cmd_decode(b.data, b.len, &c), ERR_CORRUPT);
    cr_assert_eq(cmd_decode(b.data, b.len - 2, &c), ERR_CORRUPT);
    b.data[25] = 12; /* the op, in the low byte of arg */
    cr_assert_eq(cmd_decode(b.data, b.len - 1, &c), ERR_CORRUPT);
    buf_free(&b);
}

Test(auth_sm, retries_apply_once)
{
    cr_assert_eq(passwd_hash("pw", 2, PASSWD_ITERATIONS_MIN, hash), ERR_OK);
    struct sm_auth a = {.op = DDKV_AUTH_ROLE_ADD, .name = (const uint8_t *)"ops", .nlen = 3};
    struct sm_op o = {.kind = SM_OP_AUTH, .auth = &a, .client_id = 5, .seq = 1, .time_ms = 1000};
    struct sm_result r1, r2;
    struct errbuf eb;
    cr_assert_eq(sm_stage(&A.sm, A.sm.st_index + 1, 1, &o, &r1, &eb), ERR_OK);
    cr_assert_eq(sm_stage(&A.sm, A.sm.st_index + 1, 2, &o, &r2, &eb), ERR_OK);
    cr_assert_eq(sm_commit(&A.sm, false, &eb), ERR_OK);
    cr_assert_eq(r1.error, 0);
    cr_assert(r2.duplicate, "the session answers the retry");
    cr_assert_eq(r2.error, 0, "with the first result, not 'exists'");
    cr_assert_eq(r2.revision, r1.revision);
}

/* A client's write stage at the next index, admitted under auth_rev. */
static struct sm_result put_admitted(struct db *d, uint64_t auth_rev, uint64_t seq)
{
    struct sm_op o = {.kind = SM_OP_PUT, .key = (const uint8_t *)"metrics/x", .klen = 9,
                      .val = (const uint8_t *)"v", .vlen = 1, .client_id = 9, .seq = seq, .time_ms = 1000,
                      .auth_checked = true, .auth_rev = auth_rev};
    struct sm_result r;
    struct errbuf eb;
    cr_assert_eq(sm_stage(&d->sm, d->sm.st_index + 1, d->sm.st_lamport + 1, &o, &r, &eb), ERR_OK, "%s", eb.msg);
    return r;
}

Test(auth_sm, a_write_admitted_before_an_auth_change_is_refused_where_it_applies)
{
    populate(&A);
    uint64_t rev = A.sm.auth.rev;
    cr_assert_eq(rev, A.sm.st_index, "the rev is the index of the last change (enable)");
    /* Admitted under the current rev: applies. */
    struct sm_result r = put_admitted(&A, rev, 1);
    cr_assert_eq(r.error, 0);
    /* A revoke applies before a write admitted under the old rev, in the same
     * batch: the write is refused and changes nothing. */
    cr_assert_eq(stage(&A, DDKV_AUTH_USER_REVOKE, "viewer", "metrics-read", 12, 0), 0);
    uint64_t revoke = A.sm.st_index;
    r = put_admitted(&A, rev, 2);
    cr_assert_eq(r.error, SM_ERR_AUTH_CHANGED);
    cr_assert_eq(r.revision, 0);
    uint32_t code;
    sm_error_text(r.error, &code);
    cr_assert_eq(code, DDKV_WERR_UNAVAILABLE, "a retry is admitted afresh");
    struct errbuf eb;
    cr_assert_eq(sm_commit(&A.sm, false, &eb), ERR_OK, "%s", eb.msg);
    cr_assert_eq(A.sm.auth.rev, revoke);
    /* Not kept in the session: the same seq, admitted again, applies. */
    r = put_admitted(&A, A.sm.auth.rev, 2);
    cr_assert_eq(r.error, 0);
    cr_assert(!r.duplicate);
    cr_assert_eq(sm_commit(&A.sm, false, &eb), ERR_OK, "%s", eb.msg);
    /* The rev survives a restart (members must agree at every index). */
    db_close(&A);
    db_open(&A);
    cr_assert_eq(A.sm.auth.rev, revoke);
    /* With auth off, nothing is refused. */
    cr_assert_eq(apply(&A, DDKV_AUTH_DISABLE, "", NULL, 0), 0);
    r = put_admitted(&A, 1, 3);
    cr_assert_eq(r.error, 0);
    cr_assert_eq(sm_commit(&A.sm, false, &eb), ERR_OK, "%s", eb.msg);
}
