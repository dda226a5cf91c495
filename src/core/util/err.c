/* Error codes, their messages, and the always-on assertion. */
#include "util/err.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

static const char *const err_names[ERR__COUNT] = {
    [ERR_OK] = "ok",
    [ERR_NOMEM] = "out of memory",
    [ERR_IO] = "i/o error",
    [ERR_NOSPACE] = "no space left on device",
    [ERR_CORRUPT] = "data corrupted",
    [ERR_TOO_LARGE] = "too large",
    [ERR_BAD_INPUT] = "bad input",
    [ERR_NOT_FOUND] = "not found",
    [ERR_AGAIN] = "incomplete input",
    [ERR_CLOSED] = "closed",
    [ERR_EXISTS] = "already exists",
    [ERR_TIMEOUT] = "timed out",
    [ERR_UNAVAILABLE] = "unavailable",
};

const char *err_str(int code)
{
    if (code < 0 || code >= ERR__COUNT || !err_names[code])
        return "unknown error";
    return err_names[code];
}

int errf(struct errbuf *eb, int code, const char *fmt, ...)
{
    if (eb) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(eb->msg, sizeof eb->msg, fmt, ap);
        va_end(ap);
    }
    return code;
}

void panic_at(const char *file, int line, const char *what)
{
    fprintf(stderr, "PANIC %s:%d: assertion failed: %s\n", file, line, what);
    fflush(stderr);
    abort();
}
