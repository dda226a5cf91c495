/* Retention per series on the agent: `--retention PATTERN=SECONDS`, given
 * any number of times up to RETENTION_RULES_MAX. PATTERN is a series name
 * (cpu, disk./.used) or a prefix ending in '*' (disk.*, sensor.*, * alone
 * for every series); the first rule that matches a series' name gives its
 * retention, a series no rule matches keeps --retention-s. SECONDS is 10 to
 * SERIES_RETENTION_MAX_S. */
#ifndef DDKV_AGENT_RETENTION_H
#define DDKV_AGENT_RETENTION_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "agent/series.h"
#include "agent/series_store.h"

#define RETENTION_RULES_MAX 32

struct retention_rule {
    char pattern[SERIES_NAME_MAX + 1]; /* without the '*' */
    bool prefix;                       /* it ended in '*' */
    uint32_t seconds;
};

struct retention_rules {
    struct retention_rule r[RETENTION_RULES_MAX];
    size_t n;
};

/* specs: the flags' values, '\n'-separated (NULL or "": no rules). false
 * with a clear reason in err (which flag, what is wrong). */
bool retention_rules_parse(const char *specs, struct retention_rules *out, char *err, size_t cap);

/* The retention of series name: the first matching rule's, else dflt. */
uint32_t retention_for(const struct retention_rules *rules, const char *name, uint32_t dflt);

#endif
