/* The CLI's flag parser: argv, DDKV_* environment, the serve config file and defaults, from option tables. */
#include "cli/opts.h"

#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "util/err.h"

static int opts_fail(struct opts *o, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static int opts_fail(struct opts *o, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(o->err, sizeof o->err, fmt, ap);
    va_end(ap);
    return -1;
}

void opts_init(struct opts *o)
{
    memset(o, 0, sizeof *o);
}

void opts_free(struct opts *o)
{
    for (size_t i = 0; i < o->n; i++) {
        free(o->where[i]);
        free(o->owned[i]);
    }
    free(o->pos);
    memset(o, 0, sizeof *o);
}

static int opts_find(const struct opts *o, const char *name, size_t len)
{
    for (size_t i = 0; i < o->n; i++)
        if (strlen(o->defs[i]->name) == len && memcmp(o->defs[i]->name, name, len) == 0)
            return (int)i;
    return -1;
}

static int opts_find_short(const struct opts *o, char c)
{
    for (size_t i = 0; i < o->n; i++)
        if (o->defs[i]->short_name == c)
            return (int)i;
    return -1;
}

int opts_add(struct opts *o, const struct opt_def *defs, size_t n)
{
    for (size_t k = 0; k < n; k++) {
        if (o->n == OPTS_MAX)
            return opts_fail(o, "too many options (more than %d)", OPTS_MAX);
        if (opts_find(o, defs[k].name, strlen(defs[k].name)) >= 0)
            return opts_fail(o, "option --%s is declared twice", defs[k].name);
        o->defs[o->n++] = &defs[k];
    }
    return 0;
}

void opts_env_name(const char *name, char *buf, size_t len)
{
    size_t j = (size_t)snprintf(buf, len, "DDKV_");
    for (const char *p = name; *p && j + 1 < len; p++)
        buf[j++] = *p == '-' ? '_' : (char)toupper((unsigned char)*p);
    if (j < len)
        buf[j] = 0;
}

static int opts_push_pos(struct opts *o, char *arg, int argc)
{
    if (!o->pos) {
        /* Every positional comes from this argv, so argc slots are enough. */
        o->pos = calloc((size_t)argc + 1, sizeof *o->pos);
        if (!o->pos)
            return opts_fail(o, "out of memory");
    }
    o->pos[o->npos++] = arg;
    return 0;
}

int opts_parse(struct opts *o, int argc, char **argv, bool stop_at_positional)
{
    bool options_ended = false;
    for (int i = 0; i < argc; i++) {
        char *tok = argv[i];
        if (options_ended || tok[0] != '-' || strcmp(tok, "-") == 0) {
            if (stop_at_positional)
                return i;
            if (opts_push_pos(o, tok, argc) != 0)
                return -1;
            continue;
        }
        if (strcmp(tok, "--") == 0) {
            options_ended = true;
            continue;
        }
        if (strcmp(tok, "--help") == 0 || strcmp(tok, "-h") == 0) {
            o->help = true;
            continue;
        }
        int d;
        const char *inline_val = NULL;
        char shown[64];
        if (tok[1] == '-') {
            const char *name = tok + 2;
            const char *eq = strchr(name, '=');
            size_t len = eq ? (size_t)(eq - name) : strlen(name);
            d = opts_find(o, name, len);
            snprintf(shown, sizeof shown, "--%.*s", (int)(len > 50 ? 50 : len), name);
            if (eq)
                inline_val = eq + 1;
        } else {
            d = opts_find_short(o, tok[1]);
            snprintf(shown, sizeof shown, "-%c", tok[1]);
            if (tok[2])
                inline_val = tok[2] == '=' ? tok + 3 : tok + 2;
        }
        if (d < 0)
            return opts_fail(o, "unknown option '%s'", shown);
        const struct opt_def *def = o->defs[d];
        const char *val;
        if (def->flags & OPT_ARG) {
            if (inline_val) {
                val = inline_val;
            } else if (i + 1 < argc) {
                val = argv[++i];
            } else {
                return opts_fail(o, "option %s needs a value (%s)", shown,
                                 def->metavar ? def->metavar : "VALUE");
            }
        } else {
            if (inline_val)
                return opts_fail(o, "option %s takes no value", shown);
            val = "true";
        }
        if ((def->flags & OPT_MULTI) && o->src[d] == OPT_SRC_FLAG && o->val[d]) {
            size_t l1 = strlen(o->val[d]), l2 = strlen(val);
            char *joined = malloc(l1 + l2 + 2);
            if (!joined)
                return opts_fail(o, "out of memory");
            memcpy(joined, o->val[d], l1);
            joined[l1] = '\n';
            memcpy(joined + l1 + 1, val, l2 + 1);
            free(o->owned[d]);
            o->owned[d] = joined;
            val = joined;
        }
        o->val[d] = val;
        o->src[d] = OPT_SRC_FLAG;
    }
    return argc;
}

static char *trim(char *s)
{
    while (*s == ' ' || *s == '\t')
        s++;
    size_t n = strlen(s);
    while (n && (s[n - 1] == ' ' || s[n - 1] == '\t' || s[n - 1] == '\r' || s[n - 1] == '\n'))
        s[--n] = 0;
    return s;
}

/* Read "key = value" lines; a key may be set more than once (the last wins),
 * and fills only options that neither a flag nor the environment set. */
static int opts_read_file(struct opts *o, const char *path)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return opts_fail(o, "cannot read config file %s: %s", path, strerror(errno));
    int rc = -1;
    char *line = NULL;
    size_t cap = 0;
    unsigned lineno = 0;
    while (getline(&line, &cap, f) >= 0) {
        lineno++;
        char *s = trim(line);
        if (*s == 0 || *s == '#')
            continue;
        char *eq = strchr(s, '=');
        if (!eq) {
            opts_fail(o, "%s:%u: expected 'name = value'", path, lineno);
            goto fail;
        }
        *eq = 0;
        char *key = trim(s), *val = trim(eq + 1);
        size_t vlen = strlen(val);
        if (vlen >= 2 && val[0] == '"' && val[vlen - 1] == '"') {
            val[vlen - 1] = 0; /* quotes keep leading or trailing blanks */
            val++;
        }
        int d = opts_find(o, key, strlen(key));
        if (d < 0 || !(o->defs[d]->flags & OPT_ARG) || (o->defs[d]->flags & OPT_NO_FILE)) {
            opts_fail(o, "%s:%u: unknown setting '%.64s'", path, lineno, key);
            goto fail;
        }
        if (o->src[d] > OPT_SRC_FILE)
            continue;
        char *copy = strdup(val);
        char *where = malloc(strlen(path) + 16);
        if (!copy || !where) {
            free(copy);
            free(where);
            opts_fail(o, "out of memory");
            goto fail;
        }
        sprintf(where, "%s:%u", path, lineno);
        free(o->owned[d]);
        free(o->where[d]);
        o->owned[d] = copy;
        o->where[d] = where;
        o->val[d] = copy;
        o->src[d] = OPT_SRC_FILE;
    }
    if (ferror(f)) {
        opts_fail(o, "reading config file %s: %s", path, strerror(errno));
        goto fail;
    }
    rc = 0;

fail:
    free(line);
    fclose(f);
    return rc;
}

/* Environment for one option (an empty variable counts as unset). */
static int opts_from_env(struct opts *o, size_t i)
{
    if (o->src[i] != OPT_SRC_NONE || !(o->defs[i]->flags & OPT_ARG))
        return 0;
    char env[96];
    opts_env_name(o->defs[i]->name, env, sizeof env);
    const char *v = getenv(env);
    if (!v || !*v)
        return 0;
    free(o->where[i]);
    o->where[i] = strdup(env);
    if (!o->where[i])
        return opts_fail(o, "out of memory");
    o->val[i] = v;
    o->src[i] = OPT_SRC_ENV;
    return 0;
}

int opts_resolve(struct opts *o, const char *config_name)
{
    for (size_t i = 0; i < o->n; i++)
        if (opts_from_env(o, i) != 0)
            return -1;
    const char *config = config_name ? opts_get(o, config_name) : NULL;
    if (config && opts_read_file(o, config) != 0)
        return -1;
    for (size_t i = 0; i < o->n; i++) {
        if (o->src[i] == OPT_SRC_NONE && o->defs[i]->dflt) {
            o->val[i] = o->defs[i]->dflt;
            o->src[i] = OPT_SRC_DEFAULT;
        }
    }
    for (size_t i = 0; i < o->n; i++) {
        if (o->src[i] == OPT_SRC_NONE && (o->defs[i]->flags & OPT_REQUIRED)) {
            char env[96];
            opts_env_name(o->defs[i]->name, env, sizeof env);
            return opts_fail(o, "--%s is required (or set %s%s%s%s)", o->defs[i]->name, env,
                             config_name ? ", or put it in the --" : "", config_name ? config_name : "",
                             config_name ? " file" : "");
        }
    }
    return 0;
}

const char *opts_get(const struct opts *o, const char *name)
{
    int d = opts_find(o, name, strlen(name));
    ASSERT(d >= 0); /* asking for an option no table declares is a bug */
    return o->val[d];
}

bool opts_is_set(const struct opts *o, const char *name)
{
    int d = opts_find(o, name, strlen(name));
    ASSERT(d >= 0);
    return o->src[d] >= OPT_SRC_FILE;
}

/* " (from DDKV_X)" or " (from FILE:LINE)" for a value that did not come from
 * the command line. */
static const char *opts_origin(const struct opts *o, int d, char *buf, size_t len)
{
    if (o->src[d] == OPT_SRC_ENV || o->src[d] == OPT_SRC_FILE)
        snprintf(buf, len, " (from %s)", o->where[d] ? o->where[d] : "?");
    else if (o->src[d] == OPT_SRC_DEFAULT)
        snprintf(buf, len, " (the default)");
    else
        buf[0] = 0;
    return buf;
}

int opts_get_u64(struct opts *o, const char *name, uint64_t min, uint64_t max, uint64_t *out)
{
    int d = opts_find(o, name, strlen(name));
    ASSERT(d >= 0);
    const char *s = o->val[d];
    if (!s)
        return 0;
    uint64_t v = 0;
    bool ok = *s != 0;
    for (const char *p = s; *p && ok; p++) {
        if (*p < '0' || *p > '9' || v > (UINT64_MAX - (uint64_t)(*p - '0')) / 10)
            ok = false;
        else
            v = v * 10 + (uint64_t)(*p - '0');
    }
    if (!ok || v < min || v > max) {
        char origin[300];
        return opts_fail(o, "--%s: '%.64s' is not a whole number from %llu to %llu%s", name, s,
                         (unsigned long long)min, (unsigned long long)max,
                         opts_origin(o, d, origin, sizeof origin));
    }
    *out = v;
    return 0;
}

int opts_get_u32(struct opts *o, const char *name, uint32_t min, uint32_t max, uint32_t *out)
{
    uint64_t v;
    int d = opts_find(o, name, strlen(name));
    ASSERT(d >= 0);
    if (!o->val[d])
        return 0;
    if (opts_get_u64(o, name, min, max, &v) != 0)
        return -1;
    *out = (uint32_t)v;
    return 0;
}

int opts_get_choice(struct opts *o, const char *name, const char *const *choices, int *out)
{
    int d = opts_find(o, name, strlen(name));
    ASSERT(d >= 0);
    const char *s = o->val[d];
    if (!s)
        return 0;
    char list[200] = "";
    size_t used = 0;
    for (int i = 0; choices[i]; i++) {
        if (strcmp(s, choices[i]) == 0) {
            *out = i;
            return 0;
        }
        int w = snprintf(list + used, sizeof list - used, "%s%s", i ? "|" : "", choices[i]);
        if (w > 0 && (size_t)w < sizeof list - used)
            used += (size_t)w;
    }
    char origin[300];
    return opts_fail(o, "--%s: '%.64s' is not one of %s%s", name, s, list,
                     opts_origin(o, d, origin, sizeof origin));
}

void opts_print_help(FILE *f, const struct opt_def *defs, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        const struct opt_def *d = &defs[i];
        char left[80];
        const char *arg = (d->flags & OPT_ARG) ? (d->metavar ? d->metavar : "VALUE") : "";
        int w;
        if (d->short_name)
            w = snprintf(left, sizeof left, "  -%c, --%s%s%s", d->short_name, d->name, *arg ? " " : "", arg);
        else
            w = snprintf(left, sizeof left, "      --%s%s%s", d->name, *arg ? " " : "", arg);
        char env[96];
        opts_env_name(d->name, env, sizeof env);
        fprintf(f, "%s%*s%s", left, w < 36 ? 36 - w : 1, "", d->help ? d->help : "");
        if (d->flags & OPT_REQUIRED)
            fprintf(f, " (required)");
        else if (d->dflt)
            fprintf(f, " (default %s)", d->dflt);
        if (d->flags & OPT_ARG)
            fprintf(f, " [env %s]", env);
        fputc('\n', f);
    }
}
