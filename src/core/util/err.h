/* One error convention for the whole tree: functions that can fail return an
 * err code (0 is success) and, where there is more to say, fill a caller's
 * struct errbuf. Bugs are assertions, not error codes. */
#ifndef DDKV_UTIL_ERR_H
#define DDKV_UTIL_ERR_H

#include <stddef.h>

enum err {
    ERR_OK = 0,
    ERR_NOMEM,
    ERR_IO,          /* an operating-system or storage call failed */
    ERR_NOSPACE,     /* storage is full */
    ERR_CORRUPT,     /* stored data failed a check */
    ERR_TOO_LARGE,   /* input over a configured limit */
    ERR_BAD_INPUT,   /* malformed input from outside */
    ERR_NOT_FOUND,
    ERR_AGAIN,       /* not enough input yet */
    ERR_CLOSED,
    ERR_EXISTS,
    ERR_TIMEOUT,
    ERR_UNAVAILABLE,
    ERR__COUNT
};

struct errbuf {
    char msg[256];
};

const char *err_str(int code);
/* Format a message into eb (if non-NULL) and return code, for "return errf(...)". */
int errf(struct errbuf *eb, int code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* Assertions that stay on in release builds. */
void panic_at(const char *file, int line, const char *what) __attribute__((noreturn));
#define ASSERT(cond) ((cond) ? (void)0 : panic_at(__FILE__, __LINE__, #cond))

#endif
