/* Retention rules of the agent's series (retention.h). */
#include "agent/retention.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static bool rule_parse(const char *spec, size_t len, struct retention_rule *r, char *err, size_t cap)
{
    const char *eq = memchr(spec, '=', len);
    if (!eq) {
        snprintf(err, cap, "--retention '%.*s': want NAME=SECONDS or PREFIX*=SECONDS", (int)(len > 80 ? 80 : len),
                 spec);
        return false;
    }
    size_t pl = (size_t)(eq - spec);
    r->prefix = pl > 0 && spec[pl - 1] == '*';
    size_t nl = r->prefix ? pl - 1 : pl;
    if ((nl > 0 || !r->prefix) && !series_name_ok(spec, nl)) {
        snprintf(err, cap,
                 "--retention '%.*s': the pattern is a series name (1-%d of A-Z a-z 0-9 _ . : -), or a prefix of "
                 "one followed by '*'",
                 (int)(len > 80 ? 80 : len), spec, SERIES_NAME_MAX);
        return false;
    }
    memcpy(r->pattern, spec, nl);
    r->pattern[nl] = 0;
    const char *num = eq + 1;
    size_t numl = len - pl - 1;
    char buf[24];
    if (numl == 0 || numl >= sizeof buf || strspn(num, "0123456789") < numl) {
        snprintf(err, cap, "--retention '%.*s': SECONDS is a whole number of 10 to %u", (int)(len > 80 ? 80 : len),
                 spec, SERIES_RETENTION_MAX_S);
        return false;
    }
    memcpy(buf, num, numl);
    buf[numl] = 0;
    errno = 0;
    unsigned long long s = strtoull(buf, NULL, 10);
    if (errno || s < 10 || s > SERIES_RETENTION_MAX_S) {
        snprintf(err, cap, "--retention '%.*s': SECONDS is a whole number of 10 to %u", (int)(len > 80 ? 80 : len),
                 spec, SERIES_RETENTION_MAX_S);
        return false;
    }
    r->seconds = (uint32_t)s;
    return true;
}

bool retention_rules_parse(const char *specs, struct retention_rules *out, char *err, size_t cap)
{
    memset(out, 0, sizeof *out);
    err[0] = 0;
    for (const char *p = specs; p && *p;) {
        size_t len = strcspn(p, "\n");
        if (out->n == RETENTION_RULES_MAX) {
            snprintf(err, cap, "at most %d --retention flags", RETENTION_RULES_MAX);
            return false;
        }
        if (!rule_parse(p, len, &out->r[out->n], err, cap))
            return false;
        out->n++;
        p += len;
        p += *p == '\n';
    }
    return true;
}

uint32_t retention_for(const struct retention_rules *rules, const char *name, uint32_t dflt)
{
    for (size_t i = 0; rules && i < rules->n; i++) {
        const struct retention_rule *r = &rules->r[i];
        if (r->prefix ? !strncmp(name, r->pattern, strlen(r->pattern)) : !strcmp(name, r->pattern))
            return r->seconds;
    }
    return dflt;
}
