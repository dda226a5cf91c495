#include "util/file.h"

#include <errno.h>
#include <stdint.h>
#include <string.h>
#include <unistd.h>

int file_io_err(struct errbuf *eb, int e, const char *what, const char *path)
{
    int code = ERR_IO;
    if (e == ENOSPC || e == EDQUOT)
        code = ERR_NOSPACE;
    else if (e == ENOENT)
        code = ERR_NOT_FOUND;
    return errf(eb, code, "%s %s: %s", what, path, strerror(e));
}

int file_write_all(int fd, const void *p, size_t n)
{
    const uint8_t *s = p;
    while (n > 0) {
        ssize_t w = write(fd, s, n);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            return errno;
        }
        s += w;
        n -= (size_t)w;
    }
    return 0;
}
