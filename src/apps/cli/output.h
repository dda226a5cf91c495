/* What the CLI prints: exit codes, error lines, JSON objects and tables.
 *
 * Every result goes to stdout (text, or one JSON object per line with -o json);
 * every error goes to stderr as one line "ddkv: <what>". Exit codes are the
 * SPEC's, the same for every subcommand. */
#ifndef DDKV_CLI_OUTPUT_H
#define DDKV_CLI_OUTPUT_H

#include <jansson.h>
#include <stddef.h>
#include <stdio.h>

#include "ddkv/ddkv.h"

enum out_format { OUT_TEXT = 0, OUT_JSON = 1 };

enum {
    EXIT_DONE = 0,        /* success */
    EXIT_NO = 1,          /* the answer is "no": key not found, cas lost, lease unknown, history
                           * compacted (the revision asked for is no longer kept: a fact
                           * about the cluster, not a usage error or an outage) */
    EXIT_USAGE = 2,       /* usage or bad input, including TOO_LARGE, BAD_REQUEST and
                           * PERMISSION_DENIED (wrong credentials, or a request the user may
                           * not make: not "no" about the data, which a denial must not
                           * reveal, and not worth retrying) */
    EXIT_UNAVAILABLE = 3, /* unreachable, no quorum, timed out, or a write's outcome unknown */
};

/* The exit code for a library result. */
int out_exit_code(ddkv_err e);

/* "ddkv: <message>\n" on stderr. */
void out_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Bytes made safe for a one-line message: printable ASCII as is, the rest as
 * \xNN, cut at about len bytes with "...". Returns buf. */
const char *out_escape(const void *p, size_t n, char *buf, size_t len);

/* User data (keys, values, names) as text that is safe on a terminal and
 * reads back unambiguously, for every text output that prints it (list,
 * read on a terminal, watch, job list, status):
 *   backslash -> \\, TAB -> \t, newline -> \n, CR -> \r,
 *   any other control byte (0x00-0x1f, 0x7f), a C1 control character
 *   (U+0080-U+009F) and any byte that is not part of well-formed UTF-8
 *   -> \xHH, one per byte;
 *   everything else (printable ASCII, other UTF-8 text) as it is.
 * Unescaping \\, \t, \n, \r and \xHH gives back the bytes exactly.
 * OUT_TEXT_KEEP_LINES keeps TAB and newline as they are (a value shown to a
 * person at a terminal). */
#define OUT_TEXT_KEEP_LINES 1u
/* Write p[0..n) escaped to f. Returns 0, or -1 on a write error. */
int out_text(FILE *f, const void *p, size_t n, unsigned flags);
/* The same as a malloc'd NUL-terminated string (caller frees); NULL if out
 * of memory. */
char *out_text_dup(const void *p, size_t n, unsigned flags);

/* Set field to p[0..n) as a JSON string if it is valid UTF-8, otherwise as
 * base64 with enc_field set to "base64". Returns 0, or -1 out of memory. */
int out_json_set_bytes(json_t *obj, const char *field, const char *enc_field, const void *p, size_t n);

/* Print obj compactly on one line of stdout and drop the reference (obj may be
 * NULL after a failed json_object(): reported as out of memory). */
int out_json_line(json_t *obj);

/* Raw bytes to stdout. Returns 0 or -1 (errno set). */
int out_raw(const void *p, size_t n);

/* A text table with a header row, columns padded to their widest cell.
 * cells is row-major, nrows * ncols strings (borrowed). */
void out_table(FILE *f, size_t ncols, const char *const *header, const char *const *cells, size_t nrows);

#endif
