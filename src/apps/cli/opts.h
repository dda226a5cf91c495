/* Table-driven flags for every subcommand.
 *
 * A subcommand declares its options as a table of struct opt_def; the parser
 * takes one or more tables (the global client flags and the subcommand's own),
 * reads argv, and resolves each option's value in the order
 *     --flag  >  environment DDKV_<FLAG>  >  --config file  >  default.
 * Values stay text until a typed getter reads them, and the getter's error names
 * where the bad text came from (the flag, the variable or the file line), so a
 * bad DDKV_TIMEOUT_MS is as easy to find as a bad --timeout-ms. */
#ifndef DDKV_CLI_OPTS_H
#define DDKV_CLI_OPTS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

enum opt_flag {
    OPT_ARG = 1 << 0,      /* takes a value (--name VALUE or --name=VALUE) */
    OPT_REQUIRED = 1 << 1, /* must have a value from somewhere (no default) */
    OPT_NO_FILE = 1 << 2,  /* not settable from the config file (e.g. --config itself) */
    OPT_MULTI = 1 << 3,    /* may be given more than once as a flag: the values joined by '\n' */
};

struct opt_def {
    const char *name;    /* long name without "--"; env DDKV_<NAME>, '-' -> '_' */
    char short_name;     /* e.g. 'o' for -o, or 0 */
    unsigned flags;      /* enum opt_flag */
    const char *dflt;    /* default value as text, or NULL for none */
    const char *metavar; /* shown in help: --timeout-ms MS */
    const char *help;
};

enum opt_source { OPT_SRC_NONE = 0, OPT_SRC_DEFAULT, OPT_SRC_FILE, OPT_SRC_ENV, OPT_SRC_FLAG };

#define OPTS_MAX 64

struct opts {
    const struct opt_def *defs[OPTS_MAX];
    size_t n;
    const char *val[OPTS_MAX];    /* borrowed from argv, environ, the defs or owned[] */
    enum opt_source src[OPTS_MAX];
    char *where[OPTS_MAX];        /* "DDKV_X" or "FILE:LINE" for messages; owned */
    char *owned[OPTS_MAX];        /* values read from the config file; owned */
    const char **pos;             /* positional arguments, borrowed from argv */
    size_t npos;
    bool help;                    /* --help or -h was given */
    char err[512];                /* why the last call failed */
};

void opts_init(struct opts *o);
void opts_free(struct opts *o);

/* Add a table of n options. Returns -1 (err set) if the total passes OPTS_MAX
 * or a name is already known: both are bugs in the tables. */
int opts_add(struct opts *o, const struct opt_def *defs, size_t n);

/* Parse argv[0..argc) (no program name) against the options added so far.
 * With stop_at_positional, stop at the first positional argument and return its
 * index (argc if none); otherwise collect positionals into o->pos and return
 * argc. "--" ends the options; a lone "-" is positional. Returns -1 with err set
 * on an unknown option or a missing value. */
int opts_parse(struct opts *o, int argc, char **argv, bool stop_at_positional);

/* Fill options not given as flags from the environment, then from the config
 * file named by the option config_name (NULL: no file), then from defaults, and
 * check OPT_REQUIRED. Returns 0, or -1 with err set. */
int opts_resolve(struct opts *o, const char *config_name);

/* The value of a known option, or NULL if it has none. */
const char *opts_get(const struct opts *o, const char *name);
/* True if the value came from the command line, env or file (not a default). */
bool opts_is_set(const struct opts *o, const char *name);
/* Typed getters: 0 on success (or no value: *out untouched), -1 with err set
 * naming the source of the bad text. Decimal only; min/max inclusive. */
int opts_get_u64(struct opts *o, const char *name, uint64_t min, uint64_t max, uint64_t *out);
int opts_get_u32(struct opts *o, const char *name, uint32_t min, uint32_t max, uint32_t *out);
/* value must be one of the NULL-terminated choices; *out is its index. */
int opts_get_choice(struct opts *o, const char *name, const char *const *choices, int *out);

/* One help line per option (name, metavar, help, default, env variable). */
void opts_print_help(FILE *f, const struct opt_def *defs, size_t n);

/* The env variable name of an option ("DDKV_TIMEOUT_MS") into buf. */
void opts_env_name(const char *name, char *buf, size_t len);

#endif
