/* Unit tests for the durable-creation helpers (src/core/util/file.c): what they
 * create and refuse. That they make it durable is what the power tests on
 * lossyfs check (test/power/). */
#include <criterion/criterion.h>
#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "util/file.h"
#include "harness.h"

static char base[256]; /* short, so every path below fits PATH_MAX */

static void setup(void)
{
    snprintf(base, sizeof base, "%s/ddkv-file-XXXXXX", getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
    cr_assert(mkdtemp(base) != NULL);
}

static int rm_all(const char *dir)
{
    char cmd[PATH_MAX + 16];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    return system(cmd);
}

static void teardown(void)
{
    rm_all(base);
}

static bool is_dir(const char *p)
{
    struct stat st;
    return stat(p, &st) == 0 && S_ISDIR(st.st_mode);
}

TestSuite(file, .init = setup, .fini = teardown);

Test(file, parent_dir)
{
    char out[64];
    const char *cases[][2] = {{"a/b/c", "a/b"}, {"a/b/", "a"}, {"n1", "."}, {"/x", "/"}, {"/", "/"}, {"a//b", "a/"}};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        file_parent_dir(cases[i][0], out, sizeof out);
        cr_expect_str_eq(out, cases[i][1], "parent of %s", cases[i][0]);
    }
}

Test(file, mkdir_durable_creates_missing_parents)
{
    char p[PATH_MAX];
    struct errbuf eb = {{0}};
    snprintf(p, sizeof p, "%s/x/y//z/", base);
    cr_assert_eq(file_mkdir_durable(p, 0700, &eb), ERR_OK, "%s", eb.msg);
    snprintf(p, sizeof p, "%s/x/y/z", base);
    cr_assert(is_dir(p));
    /* Again: it exists, which is fine (its entry is synced once more). */
    cr_assert_eq(file_mkdir_durable(p, 0700, &eb), ERR_OK, "%s", eb.msg);
    cr_assert_eq(file_mkdir_durable("/", 0700, &eb), ERR_OK, "%s", eb.msg);
}

Test(file, mkdir_durable_refuses_a_file_in_the_way)
{
    char f[PATH_MAX], p[PATH_MAX];
    struct errbuf eb = {{0}};
    snprintf(f, sizeof f, "%s/plain", base);
    FILE *fp = fopen(f, "w");
    cr_assert(fp != NULL);
    fclose(fp);
    snprintf(p, sizeof p, "%s/plain/sub", base);
    cr_assert_neq(file_mkdir_durable(p, 0700, &eb), ERR_OK);
    cr_expect(strstr(eb.msg, "plain") != NULL, "the message names the path: %s", eb.msg);
    cr_assert_neq(file_mkdir_durable(f, 0700, &eb), ERR_OK);
    cr_expect(strstr(eb.msg, "not a directory") != NULL, "%s", eb.msg);
    cr_assert_neq(file_mkdir_durable("", 0700, &eb), ERR_OK);
}

Test(file, write_durable_replaces_whole_and_leaves_no_temp)
{
    char p[PATH_MAX], tmp[PATH_MAX + 8], got[64] = "";
    struct errbuf eb = {{0}};
    snprintf(p, sizeof p, "%s/marker", base);
    snprintf(tmp, sizeof tmp, "%s.tmp", p);
    cr_assert_eq(file_write_durable(p, "first", 5, 0600, &eb), ERR_OK, "%s", eb.msg);
    cr_assert_eq(file_write_durable(p, "second", 6, 0600, &eb), ERR_OK, "%s", eb.msg);
    FILE *fp = fopen(p, "r");
    cr_assert(fp != NULL);
    cr_assert_eq(fread(got, 1, sizeof got - 1, fp), 6);
    fclose(fp);
    cr_expect_str_eq(got, "second");
    cr_expect(access(tmp, F_OK) != 0 && errno == ENOENT, "the temp file is gone");
    /* A directory that does not exist: an error, nothing left behind. */
    snprintf(p, sizeof p, "%s/none/marker", base);
    cr_assert_eq(file_write_durable(p, "x", 1, 0600, &eb), ERR_NOT_FOUND);
}

Test(file, rename_durable_across_directories)
{
    char a[PATH_MAX], d[PATH_MAX], b[PATH_MAX];
    struct errbuf eb = {{0}};
    snprintf(a, sizeof a, "%s/a", base);
    snprintf(d, sizeof d, "%s/d", base);
    snprintf(b, sizeof b, "%s/d/b", base);
    cr_assert_eq(file_write_durable(a, "x", 1, 0600, &eb), ERR_OK, "%s", eb.msg);
    cr_assert_eq(file_mkdir_durable(d, 0700, &eb), ERR_OK, "%s", eb.msg);
    cr_assert_eq(file_rename_durable(a, b, &eb), ERR_OK, "%s", eb.msg);
    cr_expect(access(b, F_OK) == 0 && access(a, F_OK) != 0);
    cr_assert_eq(file_rename_durable(a, b, &eb), ERR_NOT_FOUND, "a missing source is an error");
}
