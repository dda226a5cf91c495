/* The agent's --retention rules (agent/retention.h): names and prefixes,
 * the first match wins, the default for the rest, and every bad form a
 * clear error naming the flag. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

#include "agent/retention.h"

Test(retention, rules_and_first_match)
{
    struct retention_rules r;
    char err[256];
    cr_assert(retention_rules_parse("cpu=86400\ndisk.*=604800\ndisk.root.used=60\n*=120", &r, err, sizeof err), "%s",
              err);
    cr_assert_eq(r.n, 4);
    cr_assert_eq(retention_for(&r, "cpu", 3600), 86400);
    cr_assert_eq(retention_for(&r, "cpu.0", 3600), 120, "cpu is a name, not a prefix");
    cr_assert_eq(retention_for(&r, "disk.root.used", 3600), 604800, "the first match wins");
    cr_assert_eq(retention_for(&r, "disk.", 3600), 604800);
    cr_assert_eq(retention_for(&r, "mem.used", 3600), 120, "* matches every series");
    cr_assert(retention_rules_parse("temp=30\nsensor.*=900", &r, err, sizeof err));
    cr_assert_eq(retention_for(&r, "temp", 3600), 30);
    cr_assert_eq(retention_for(&r, "temp2", 3600), 3600, "no rule: the default (--retention-s)");
    cr_assert_eq(retention_for(&r, "sensor.hum", 3600), 900);
    cr_assert_eq(retention_for(&r, "sensor", 3600), 3600, "the prefix sensor. does not match sensor");
    cr_assert(retention_rules_parse(NULL, &r, err, sizeof err) && r.n == 0);
    cr_assert(retention_rules_parse("", &r, err, sizeof err) && r.n == 0);
    cr_assert_eq(retention_for(&r, "cpu", 77), 77);
    cr_assert(retention_rules_parse("a=2592000\nb=10", &r, err, sizeof err), "the bounds themselves are fine: %s", err);
}

static void refused(const char *spec, const char *want)
{
    struct retention_rules r;
    char err[256];
    cr_assert(!retention_rules_parse(spec, &r, err, sizeof err), "'%s' was accepted", spec);
    cr_assert(strstr(err, want), "'%s': the error '%s' does not say '%s'", spec, err, want);
}

Test(retention, bad_input)
{
    refused("cpu", "want NAME=SECONDS");
    refused("=60", "the pattern is a series name");
    refused("cpu/0=60", "the pattern is a series name");
    refused("a*b=60", "the pattern is a series name");
    refused("**=60", "the pattern is a series name");
    refused("cpu=", "SECONDS is a whole number of 10 to 2592000");
    refused("cpu=9", "10 to 2592000");
    refused("cpu=2592001", "10 to 2592000");
    refused("cpu=-5", "10 to 2592000");
    refused("cpu=1h", "10 to 2592000");
    refused("cpu=99999999999999999999999", "10 to 2592000");
    refused("cpu=60\nmem=x", "--retention 'mem=x'");
    char many[2048] = "";
    for (int i = 0; i < 33; i++)
        snprintf(many + strlen(many), sizeof many - strlen(many), "s%d=60\n", i);
    refused(many, "at most 32 --retention flags");
    char longname[200];
    memset(longname, 'a', 65);
    strcpy(longname + 65, "=60");
    refused(longname, "the pattern is a series name");
}
