/* Small file helpers shared by the writers of images and backups. */
#ifndef DDKV_UTIL_FILE_H
#define DDKV_UTIL_FILE_H

#include <stddef.h>

#include "util/err.h"

/* An errno from a file operation as an error code (ENOSPC/EDQUOT:
 * ERR_NOSPACE, ENOENT: ERR_NOT_FOUND, else ERR_IO), with "what path: reason". */
int file_io_err(struct errbuf *eb, int e, const char *what, const char *path);
/* Write all n bytes (retrying short writes and EINTR). 0 or an errno. */
int file_write_all(int fd, const void *p, size_t n);

#endif
