/* Documents generated from the CLI's own tables: `ddkv completion bash` and the man page sections (`ddkv __doc`). */
#include <ctype.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "cli/commands.h"
#include "util/build_info.h"

/* --- reading the tables --- */

/* True if the word is a sub-command name in a usage line: lower case letters
 * and '-' only ("grant"), as opposed to a metavariable ("TTL_S", "[PREFIX]"). */
static bool doc_is_word(const char *s, size_t n)
{
    if (n == 0)
        return false;
    for (size_t i = 0; i < n; i++)
        if (!islower((unsigned char)s[i]) && s[i] != '-')
            return false;
    return true;
}

/* The alternatives of a usage line ("grant TTL_S | keepalive ID | revoke ID")
 * are separated by " | "; a '|' without spaces joins choices within a word. */
static const char *doc_alt_end(const char *s)
{
    const char *e = strstr(s, " | ");
    return e ? e : s + strlen(s);
}

/* Calls fn for each sub-command name the usage line args declares: the first
 * word of each alternative, split at '|' ("add|passwd|remove NAME"), when every
 * piece is a name. Returns how many. */
static size_t doc_subcommands(const char *args, void (*fn)(const char *name, size_t n, const char *rest, void *arg),
                              void *arg)
{
    size_t count = 0;
    for (const char *alt = args; *alt;) {
        const char *end = doc_alt_end(alt);
        size_t wl = strcspn(alt, " ");
        if (wl > (size_t)(end - alt))
            wl = (size_t)(end - alt);
        bool all = wl > 0;
        for (size_t i = 0; i < wl && all;) {
            size_t pl = strcspn(alt + i, "|");
            if (pl > wl - i)
                pl = wl - i;
            all = doc_is_word(alt + i, pl);
            i += pl + 1;
        }
        if (all)
            for (size_t i = 0; i < wl;) {
                size_t pl = strcspn(alt + i, "|");
                if (pl > wl - i)
                    pl = wl - i;
                if (fn)
                    fn(alt + i, pl, alt + wl, arg);
                count++;
                i += pl + 1;
            }
        alt = *end ? end + 3 : end;
    }
    return count;
}

/* If s[0..n) is a list of choices ("a | b | c", "on|off": names with a '|'
 * in every gap), writes " a b c" to buf and returns true. */
static bool doc_choices(const char *s, size_t n, char *buf, size_t len)
{
    size_t o = 0, words = 0;
    for (size_t i = 0; i < n;) {
        size_t gap = i;
        while (i < n && (s[i] == ' ' || s[i] == '|'))
            i++;
        if (words > 0 && !memchr(s + gap, '|', i - gap))
            return false;
        if (i == n)
            return false; /* a trailing separator */
        size_t w = 0;
        while (i + w < n && s[i + w] != ' ' && s[i + w] != '|')
            w++;
        if ((words == 0 && i != gap) || !doc_is_word(s + i, w) || o + w + 2 > len)
            return false;
        o += (size_t)snprintf(buf + o, len - o, " %.*s", (int)w, s + i);
        words++;
        i += w;
    }
    return words >= 2;
}

/* What a value or positional argument named by metavar (or described by help)
 * completes to: "file", "dir", "words a b c", or NULL for free text. The words
 * come from a metavar "on|off", or from a help text holding a list of choices
 * between its colons once parenthesised remarks are dropped ("reads:
 * linearizable | causal (...) | stale"). buf holds the answer. */
static const char *doc_value_kind(const char *metavar, const char *help, char *buf, size_t len)
{
    if (metavar && (strstr(metavar, "FILE") || strcmp(metavar, "PATH") == 0))
        return "file";
    if (metavar && strstr(metavar, "DIR"))
        return "dir";
    int o = snprintf(buf, len, "words");
    if (metavar && doc_choices(metavar, strlen(metavar), buf + o, len - (size_t)o))
        return buf;
    if (!help)
        return NULL;
    char plain[512];
    size_t n = 0;
    int depth = 0;
    for (const char *p = help; *p && n + 1 < sizeof plain; p++) {
        if (*p == '(')
            depth++;
        else if (*p == ')' && depth > 0)
            depth--;
        else if (depth == 0)
            plain[n++] = *p;
    }
    plain[n] = 0;
    for (char *seg = plain; *seg;) {
        size_t sl = strcspn(seg, ":");
        size_t b = 0, e = sl;
        while (b < e && seg[b] == ' ')
            b++;
        while (e > b && seg[e - 1] == ' ')
            e--;
        if (doc_choices(seg + b, e - b, buf + o, len - (size_t)o))
            return buf;
        seg += sl + (seg[sl] != 0);
    }
    return NULL;
}

static bool doc_visible(const struct cli_command *c)
{
    return !(c->flags & CMD_HIDDEN) && c->run;
}

/* --- bash completion --- */

static void comp_word(const char *name, size_t n, const char *rest, void *arg)
{
    (void)rest;
    fprintf(arg, " %.*s", (int)n, name);
}

static void comp_flags(FILE *f, const struct opt_def *d, size_t n, bool values_only)
{
    for (size_t i = 0; i < n; i++) {
        if (values_only && !(d[i].flags & OPT_ARG))
            continue;
        fprintf(f, " --%s", d[i].name);
        if (d[i].short_name)
            fprintf(f, " -%c", d[i].short_name);
    }
}

/* One case line per flag whose value completes to something. */
static void comp_value_cases(FILE *f, const char *cmd, const struct opt_def *d, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        char buf[256];
        const char *kind = (d[i].flags & OPT_ARG) ? doc_value_kind(d[i].metavar, d[i].help, buf, sizeof buf) : NULL;
        if (!kind)
            continue;
        fprintf(f, "    %s:--%s", cmd, d[i].name);
        if (d[i].short_name)
            fprintf(f, "|%s:-%c", cmd, d[i].short_name);
        fprintf(f, ") echo '%s' ;;\n", kind);
    }
}

struct comp_pos {
    FILE *f;
    const char *cmd;
};

/* The positional arguments after a sub-command ("save FILE") or, with no sub
 * name, of the command itself: case lines "CMD:SUB:INDEX". */
static void comp_pos_cases(FILE *f, const char *cmd, const char *sub, size_t sublen, const char *rest)
{
    size_t idx = 0;
    for (const char *p = rest; *p && strncmp(p, " | ", 3) != 0;) {
        while (*p == ' ')
            p++;
        size_t w = strcspn(p, " ");
        if (w == 0 || *p == '-' || (*p == '[' && p[1] == '-'))
            break; /* options written into the usage line end the positionals */
        char tok[64];
        snprintf(tok, sizeof tok, "%.*s", (int)(w < sizeof tok ? w : sizeof tok - 1), p);
        char *t = tok + (*tok == '[');
        t[strcspn(t, "]")] = 0;
        char buf[256];
        const char *kind = doc_value_kind(t, NULL, buf, sizeof buf);
        if (kind)
            fprintf(f, "    '%s:%.*s:%zu') echo '%s' ;;\n", cmd, (int)sublen, sub, idx, kind);
        idx++;
        p += w;
    }
}

static void comp_pos_sub(const char *name, size_t n, const char *rest, void *arg)
{
    struct comp_pos *cp = arg;
    comp_pos_cases(cp->f, cp->cmd, name, n, rest);
}

/* The completion function: generic shell, fed by the tables above it. It
 * splits COMP_LINE up to the cursor on blanks itself, so "--flag=value" and
 * HOST:PORT values (split by COMP_WORDBREAKS) count as one word. */
static const char comp_body[] =
    "_ddkv()\n"
    "{\n"
    "    local line=${COMP_LINE:0:COMP_POINT} cur prev cmd='' kind w i\n"
    "    local -a words pos=()\n"
    "    read -ra words <<<\"$line\"\n"
    "    [[ -z $line || $line == *[[:blank:]] ]] && words+=('')\n"
    "    cur=${words[${#words[@]}-1]}\n"
    "    COMPREPLY=()\n"
    "    # The command, its sub-command and positionals before the cursor; a flag\n"
    "    # that takes a value (not given as --flag=value) consumes the next word.\n"
    "    for ((i = 1; i < ${#words[@]} - 1; i++)); do\n"
    "        w=${words[i]}\n"
    "        if [[ $w == -* ]]; then\n"
    "            [[ $w != *=* ]] && _ddkv_takes_value \"$cmd\" \"$w\" && ((i++))\n"
    "        elif [[ -z $cmd ]]; then\n"
    "            cmd=$w\n"
    "        else\n"
    "            pos+=(\"$w\")\n"
    "        fi\n"
    "    done\n"
    "    prev=''\n"
    "    if [[ $cur == -*=* ]]; then\n"
    "        prev=${cur%%=*}\n"
    "        cur=${cur#*=}\n"
    "    elif ((${#words[@]} > 1)); then\n"
    "        w=${words[${#words[@]}-2]}\n"
    "        [[ $w == -* && $w != *=* ]] && _ddkv_takes_value \"$cmd\" \"$w\" && prev=$w\n"
    "    fi\n"
    "    if [[ -n $prev ]]; then\n"
    "        kind=$(_ddkv_value \"${cmd:-}\" \"$prev\")\n"
    "    elif [[ $cur == -* ]]; then\n"
    "        mapfile -t COMPREPLY < <(compgen -W \"$(_ddkv_flags \"$cmd\")\" -- \"$cur\")\n"
    "        return 0\n"
    "    elif [[ -z $cmd ]]; then\n"
    "        mapfile -t COMPREPLY < <(compgen -W \"$_ddkv_commands\" -- \"$cur\")\n"
    "        return 0\n"
    "    else\n"
    "        w=$(_ddkv_subs \"$cmd\")\n"
    "        if [[ -n $w ]]; then\n"
    "            if ((${#pos[@]} == 0)); then\n"
    "                mapfile -t COMPREPLY < <(compgen -W \"$w\" -- \"$cur\")\n"
    "                return 0\n"
    "            fi\n"
    "            kind=$(_ddkv_pos \"$cmd:${pos[0]}:$((${#pos[@]} - 1))\")\n"
    "        else\n"
    "            kind=$(_ddkv_pos \"$cmd::${#pos[@]}\")\n"
    "        fi\n"
    "    fi\n"
    "    case $kind in\n"
    "    file)\n"
    "        compopt -o filenames 2>/dev/null\n"
    "        mapfile -t COMPREPLY < <(compgen -f -- \"$cur\") ;;\n"
    "    dir)\n"
    "        compopt -o filenames 2>/dev/null\n"
    "        mapfile -t COMPREPLY < <(compgen -d -- \"$cur\") ;;\n"
    "    words\\ *)\n"
    "        mapfile -t COMPREPLY < <(compgen -W \"${kind#words }\" -- \"$cur\") ;;\n"
    "    esac\n"
    "    return 0\n"
    "}\n"
    "complete -F _ddkv ddkv\n";

static void comp_print(FILE *f)
{
    const struct opt_def *g = cli_global_opts;
    size_t ng = cli_global_nopts;
    fprintf(f, "# bash completion for ddkv %s, generated by `ddkv completion bash` from the\n"
               "# binary's own command and flag tables (regenerate it after an upgrade).\n"
               "# shellcheck shell=bash\n\n",
            version_string());
    fprintf(f, "_ddkv_commands='");
    bool first = true;
    for (size_t i = 0; cli_command_at(i); i++)
        if (doc_visible(cli_command_at(i))) {
            fprintf(f, "%s%s", first ? "" : " ", cli_command_at(i)->name);
            first = false;
        }
    fprintf(f, "'\n\n");

    /* Every flag a command accepts (before it: the global ones). */
    fprintf(f, "_ddkv_flags()\n{\n    case $1 in\n    '') echo '--help --version");
    comp_flags(f, g, ng, false);
    fprintf(f, "' ;;\n");
    for (size_t i = 0; cli_command_at(i); i++) {
        const struct cli_command *c = cli_command_at(i);
        if (!doc_visible(c))
            continue;
        fprintf(f, "    %s) echo '--help", c->name);
        comp_flags(f, c->opts, c->nopts, false);
        if (c->flags & CMD_CLIENT)
            comp_flags(f, g, ng, false);
        fprintf(f, "' ;;\n");
    }
    fprintf(f, "    esac\n}\n\n");

    /* Whether a flag consumes the next word. */
    fprintf(f, "_ddkv_takes_value()\n{\n    local w\n    case $1 in\n    '') w='");
    comp_flags(f, g, ng, true);
    fprintf(f, " ' ;;\n");
    for (size_t i = 0; cli_command_at(i); i++) {
        const struct cli_command *c = cli_command_at(i);
        if (!doc_visible(c))
            continue;
        fprintf(f, "    %s) w='", c->name);
        comp_flags(f, c->opts, c->nopts, true);
        if (c->flags & CMD_CLIENT)
            comp_flags(f, g, ng, true);
        fprintf(f, " ' ;;\n");
    }
    fprintf(f, "    *) return 1 ;;\n    esac\n    [[ $w == *\" $2 \"* ]]\n}\n\n");

    /* What a flag's value completes to. */
    fprintf(f, "_ddkv_value()\n{\n    case $1:$2 in\n");
    for (size_t i = 0; cli_command_at(i); i++) {
        const struct cli_command *c = cli_command_at(i);
        if (doc_visible(c))
            comp_value_cases(f, c->name, c->opts, c->nopts);
    }
    comp_value_cases(f, "*", g, ng);
    fprintf(f, "    esac\n}\n\n");

    /* Sub-commands ("lease grant"). */
    fprintf(f, "_ddkv_subs()\n{\n    case $1 in\n");
    for (size_t i = 0; cli_command_at(i); i++) {
        const struct cli_command *c = cli_command_at(i);
        if (!doc_visible(c) || doc_subcommands(c->args, NULL, NULL) == 0)
            continue;
        fprintf(f, "    %s) echo '", c->name);
        doc_subcommands(c->args, comp_word, f);
        fprintf(f, "' ;;\n");
    }
    fprintf(f, "    esac\n}\n\n");

    /* Positional arguments that name files: "CMD:SUB:INDEX" (SUB empty without sub-commands). */
    fprintf(f, "_ddkv_pos()\n{\n    case $1 in\n");
    for (size_t i = 0; cli_command_at(i); i++) {
        const struct cli_command *c = cli_command_at(i);
        if (!doc_visible(c))
            continue;
        struct comp_pos cp = {f, c->name};
        if (doc_subcommands(c->args, comp_pos_sub, &cp) == 0)
            comp_pos_cases(f, c->name, "", 0, c->args);
    }
    fprintf(f, "    esac\n}\n\n%s", comp_body);
}

static int doc_completion(struct cli_ctx *ctx)
{
    if (strcmp(ctx->opts->pos[0], "bash") != 0) {
        out_error("completion: only 'bash' is supported");
        return EXIT_USAGE;
    }
    comp_print(stdout);
    return EXIT_DONE;
}

/* --- man page sections (roff) --- */

/* Text into roff: backslashes escaped, '-' as a minus where it is a flag's,
 * and a line never opening with '.' or '\''. */
static void roff_text(FILE *f, const char *s, bool minus)
{
    if (*s == '.' || *s == '\'')
        fputs("\\&", f);
    for (; *s; s++) {
        if (*s == '\\')
            fputs("\\e", f);
        else if (*s == '-' && minus)
            fputs("\\-", f);
        else if (*s == '\n')
            fputs(s[1] == '.' || s[1] == '\'' ? "\n\\&" : "\n", f);
        else
            fputc(*s, f);
    }
}

static void roff_opts(FILE *f, const struct opt_def *d, size_t n, bool config)
{
    for (size_t i = 0; i < n; i++) {
        if (config && (!(d[i].flags & OPT_ARG) || (d[i].flags & OPT_NO_FILE)))
            continue;
        fputs(".TP\n", f);
        if (config) {
            fputs("\\fB", f);
            roff_text(f, d[i].name, true);
            fputs("\\fR = \\fI", f);
            roff_text(f, d[i].metavar ? d[i].metavar : "VALUE", false);
            fputs("\\fR\n", f);
        } else {
            if (d[i].short_name)
                fprintf(f, "\\fB\\-%c\\fR, ", d[i].short_name);
            fputs("\\fB\\-\\-", f);
            roff_text(f, d[i].name, true);
            fputs("\\fR", f);
            if (d[i].flags & OPT_ARG) {
                fputs(" \\fI", f);
                roff_text(f, d[i].metavar ? d[i].metavar : "VALUE", false);
                fputs("\\fR", f);
            }
            fputc('\n', f);
        }
        const char *help = d[i].help ? d[i].help : "";
        roff_text(f, help, false);
        fputs(*help && help[strlen(help) - 1] != '.' ? ".\n" : "\n", f);
        if (d[i].flags & OPT_REQUIRED) {
            fputs("Required.\n", f);
        } else if (d[i].dflt) {
            fputs("Default: \\fB", f);
            roff_text(f, d[i].dflt, false);
            fputs("\\fR.\n", f);
        }
        if (!config && (d[i].flags & OPT_ARG)) {
            char env[96];
            opts_env_name(d[i].name, env, sizeof env);
            fprintf(f, "Environment: \\fB%s\\fR.\n", env);
        }
    }
}

static void roff_commands(FILE *f)
{
    for (size_t i = 0; cli_command_at(i); i++) {
        const struct cli_command *c = cli_command_at(i);
        if (!doc_visible(c))
            continue;
        fprintf(f, ".SS %s\n", c->name); /* names are [a-z-]: no escaping */
        roff_text(f, c->summary, false);
        fputs(".\n", f);
        fputs(".br\nUsage: \\fBddkv ", f);
        roff_text(f, c->name, false);
        fputs("\\fR", f);
        if (*c->args) {
            fputs(" \\fI", f);
            roff_text(f, c->args, false);
            fputs("\\fR", f);
        }
        fputs(" [options]\n.br\n", f);
        if (c->flags & CMD_CLIENT)
            fputs("Takes the global options.\n", f);
        if (c->nopts) {
            fputs(".RS\n", f);
            roff_opts(f, c->opts, c->nopts, false);
            fputs(".RE\n", f);
        }
    }
}

static int doc_run(struct cli_ctx *ctx)
{
    const char *what = ctx->opts->pos[0];
    if (strcmp(what, "man-commands") == 0) {
        roff_commands(stdout);
    } else if (strcmp(what, "man-global") == 0) {
        roff_opts(stdout, cli_global_opts, cli_global_nopts, false);
    } else if (strcmp(what, "man-config") == 0) {
        const struct cli_command *serve = NULL;
        for (size_t i = 0; cli_command_at(i); i++)
            if (strcmp(cli_command_at(i)->name, "serve") == 0)
                serve = cli_command_at(i);
        if (!serve) {
            out_error("__doc: no serve command in this build");
            return EXIT_USAGE;
        }
        roff_opts(stdout, serve->opts, serve->nopts, true);
    } else if (strcmp(what, "version") == 0) {
        printf("%s\n", version_string());
    } else {
        out_error("__doc: man-commands | man-global | man-config | version");
        return EXIT_USAGE;
    }
    return EXIT_DONE;
}

const struct cli_command cmd_doc_commands[] = {
    {"completion", "bash", "print a bash completion script (generated from this binary's own commands and flags)",
     NULL, 0, 0, 1, 1, NULL, doc_completion},
    /* Sections of the man pages, for scripts/man.sh: hidden from help and completion. */
    {"__doc", "man-commands|man-global|man-config|version", "man page sections from the command tables", NULL, 0,
     CMD_HIDDEN, 1, 1, NULL, doc_run},
};

const size_t cmd_doc_count = sizeof cmd_doc_commands / sizeof cmd_doc_commands[0];
