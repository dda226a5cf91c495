/* The CLI's output: exit codes, "ddkv: ..." error lines, binary-safe JSON and text tables. */
#include "cli/output.h"

#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "util/text.h"

int out_exit_code(ddkv_err e)
{
    switch (e) {
    case DDKV_OK:
        return EXIT_DONE;
    case DDKV_ERR_NOT_FOUND:
    case DDKV_ERR_COMPACTED:
    case DDKV_ERR_FENCED: /* the answer is no: the claim is not yours any more */
        return EXIT_NO;
    case DDKV_ERR_BAD_REQUEST:
    case DDKV_ERR_TOO_LARGE:
    case DDKV_ERR_USAGE:
    case DDKV_ERR_PERMISSION_DENIED: /* the request as given (credentials, key) must change */
        return EXIT_USAGE;
    case DDKV_ERR_UNAVAILABLE:
    case DDKV_ERR_TIMEOUT:
    case DDKV_ERR_UNKNOWN_OUTCOME:
    case DDKV_ERR_PROTOCOL:
    case DDKV_ERR_NOMEM:
    case DDKV_ERR__COUNT:
        break;
    }
    /* The operation did not complete: for a script the same as "the cluster did
     * not answer", which is what 3 means. */
    return EXIT_UNAVAILABLE;
}

void out_error(const char *fmt, ...)
{
    /* Built in one buffer and written at once, so it stays one line even when
     * several processes share stderr. */
    char line[1024];
    int n = snprintf(line, sizeof line, "ddkv: ");
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line + n, sizeof line - (size_t)n - 1, fmt, ap);
    va_end(ap);
    size_t len = strlen(line);
    line[len++] = '\n';
    fflush(stdout);
    fwrite(line, 1, len, stderr);
}

const char *out_escape(const void *p, size_t n, char *buf, size_t len)
{
    static const char hex[] = "0123456789abcdef";
    const unsigned char *s = p;
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        if (o + 8 >= len) { /* room for \xNN, "..." and the NUL */
            memcpy(buf + o, "...", 3);
            o += 3;
            break;
        }
        if (s[i] >= 0x20 && s[i] < 0x7f && s[i] != '\\') {
            buf[o++] = (char)s[i];
        } else {
            buf[o++] = '\\';
            buf[o++] = 'x';
            buf[o++] = hex[s[i] >> 4];
            buf[o++] = hex[s[i] & 15];
        }
    }
    buf[o] = 0;
    return buf;
}

/* How many bytes of p[i..n) to copy as they are: a well-formed UTF-8
 * sequence for a character that is not a control (0 otherwise). */
static size_t text_run(const unsigned char *p, size_t i, size_t n)
{
    unsigned char b = p[i];
    if (b >= 0x20 && b < 0x7f)
        return b == '\\' ? 0 : 1;
    size_t len = b >= 0xf0 ? 4 : b >= 0xe0 ? 3 : b >= 0xc2 ? 2 : 0;
    if (!len || n - i < len || !utf8_valid(p + i, len))
        return 0;
    if (len == 2 && (((unsigned)(b & 0x1f) << 6) | (p[i + 1] & 0x3fu)) < 0xa0)
        return 0; /* C1 controls: 0x9b is a CSI to some terminals */
    return len;
}

int out_text(FILE *f, const void *p, size_t n, unsigned flags)
{
    static const char hex[] = "0123456789abcdef";
    const unsigned char *s = p;
    size_t i = 0;
    while (i < n) {
        size_t run = 0, k;
        while (i + run < n && (k = text_run(s, i + run, n)) != 0)
            run += k;
        if (run && fwrite(s + i, 1, run, f) != run)
            return -1;
        i += run;
        if (i == n)
            break;
        unsigned char b = s[i++];
        char esc[4] = {'\\', 0, 0, 0};
        size_t elen = 2;
        if ((flags & OUT_TEXT_KEEP_LINES) && (b == '\n' || b == '\t')) {
            esc[0] = (char)b;
            elen = 1;
        } else if (b == '\\') {
            esc[1] = '\\';
        } else if (b == '\t') {
            esc[1] = 't';
        } else if (b == '\n') {
            esc[1] = 'n';
        } else if (b == '\r') {
            esc[1] = 'r';
        } else {
            esc[1] = 'x';
            esc[2] = hex[b >> 4];
            esc[3] = hex[b & 15];
            elen = 4;
        }
        if (fwrite(esc, 1, elen, f) != elen)
            return -1;
    }
    return 0;
}

char *out_text_dup(const void *p, size_t n, unsigned flags)
{
    char *s = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&s, &len);
    if (!f)
        return NULL;
    int rc = out_text(f, p, n, flags);
    if (fclose(f) != 0 || rc != 0) {
        free(s);
        return NULL;
    }
    return s;
}

int out_json_set_bytes(json_t *obj, const char *field, const char *enc_field, const void *p, size_t n)
{
    if (utf8_valid(p, n))
        return json_object_set_new(obj, field, json_stringn(p, n));
    char *b64 = base64_encode(p, n);
    if (!b64)
        return -1;
    int rc = json_object_set_new(obj, field, json_string(b64));
    free(b64);
    if (rc == 0)
        rc = json_object_set_new(obj, enc_field, json_string("base64"));
    return rc;
}

int out_json_line(json_t *obj)
{
    char *s = obj ? json_dumps(obj, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;
    json_decref(obj);
    if (!s) {
        out_error("out of memory formatting JSON");
        return -1;
    }
    fputs(s, stdout);
    fputc('\n', stdout);
    free(s);
    return 0;
}

int out_raw(const void *p, size_t n)
{
    return n && fwrite(p, 1, n, stdout) != n ? -1 : 0;
}

void out_table(FILE *f, size_t ncols, const char *const *header, const char *const *cells, size_t nrows)
{
    size_t width[16] = {0};
    if (ncols > 16)
        ncols = 16;
    for (size_t c = 0; c < ncols; c++) {
        width[c] = strlen(header[c]);
        for (size_t r = 0; r < nrows; r++) {
            size_t w = strlen(cells[r * ncols + c]);
            if (w > width[c])
                width[c] = w;
        }
    }
    for (size_t r = 0; r <= nrows; r++) {
        const char *const *row = r == 0 ? header : cells + (r - 1) * ncols;
        for (size_t c = 0; c < ncols; c++) {
            if (c + 1 < ncols)
                fprintf(f, "%-*s  ", (int)width[c], row[c]);
            else
                fprintf(f, "%s\n", row[c]);
        }
    }
}
