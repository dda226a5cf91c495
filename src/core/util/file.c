/* File helpers: errors, whole writes, and durable creation (fsync the file,
 * then the directory holding its entry, up to the first that existed). */
#include "util/file.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
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

void file_parent_dir(const char *path, char *out, size_t cap)
{
    size_t len = strlen(path);
    while (len > 1 && path[len - 1] == '/') /* "a/b/" is "a/b" */
        len--;
    const char *slash = NULL;
    for (size_t i = len; i-- > 0;)
        if (path[i] == '/') {
            slash = path + i;
            break;
        }
    if (!slash)
        snprintf(out, cap, ".");
    else if (slash == path)
        snprintf(out, cap, "/");
    else
        snprintf(out, cap, "%.*s", (int)(slash - path), path);
}

static int fsync_open(const char *path, int flags, const char *what, struct errbuf *eb)
{
    int fd = open(path, flags | O_CLOEXEC);
    if (fd < 0)
        return file_io_err(eb, errno, "open", path);
    int rc = ERR_OK;
    if (fsync(fd) != 0)
        rc = file_io_err(eb, errno, what, path);
    close(fd);
    return rc;
}

int file_fsync_dir(const char *dir, struct errbuf *eb)
{
    return fsync_open(dir, O_RDONLY | O_DIRECTORY, "fsync directory", eb);
}

int file_fsync_path(const char *path, struct errbuf *eb)
{
    return fsync_open(path, O_RDONLY, "fsync", eb);
}

int file_mkdir_durable(const char *path, mode_t mode, struct errbuf *eb)
{
    char p[PATH_MAX], parent[PATH_MAX];
    size_t len = strlen(path);
    if (len == 0)
        return errf(eb, ERR_BAD_INPUT, "empty directory path");
    if (len >= sizeof p)
        return errf(eb, ERR_TOO_LARGE, "directory path %s is too long", path);
    memcpy(p, path, len + 1);
    while (len > 1 && p[len - 1] == '/')
        p[--len] = 0;
    /* The end of each component ("/a/b": 2, 4), shallowest first. */
    size_t ends[PATH_MAX / 2 + 1], n = 0;
    for (size_t i = 1; i <= len; i++)
        if ((i == len || p[i] == '/') && p[i - 1] != '/')
            ends[n++] = i;
    if (n == 0)
        return ERR_OK; /* "/" */
    /* Create each missing one; the first created is where durability work
     * starts: its parent is the first directory that already existed. */
    size_t first_made = n;
    for (size_t k = 0; k < n; k++) {
        char saved = p[ends[k]];
        p[ends[k]] = 0;
        int rc = ERR_OK;
        if (mkdir(p, mode) == 0) {
            if (first_made == n)
                first_made = k;
        } else if (errno == EEXIST) {
            struct stat st;
            if (stat(p, &st) != 0 || !S_ISDIR(st.st_mode))
                rc = errf(eb, ERR_IO, "cannot create directory %s: %s is not a directory", path, p);
        } else {
            rc = file_io_err(eb, errno, "cannot create directory", p);
        }
        p[ends[k]] = saved;
        if (rc)
            return rc;
    }
    /* Deepest first, each new directory's entry in its parent. When all of
     * it existed, the leaf's entry anyway (a run cut between its mkdir and
     * the fsync leaves a directory that a power cut would take), unless the
     * parent may not be read: then someone else made it, and synced it. */
    if (first_made == n) {
        file_parent_dir(p, parent, sizeof parent);
        int fd = open(parent, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (fd < 0)
            return errno == EACCES || errno == EPERM ? ERR_OK : file_io_err(eb, errno, "open", parent);
        int rc = fsync(fd) == 0 ? ERR_OK : file_io_err(eb, errno, "fsync directory", parent);
        close(fd);
        return rc;
    }
    for (size_t k = n; k-- > first_made;) {
        p[ends[k]] = 0;
        file_parent_dir(p, parent, sizeof parent);
        int rc = file_fsync_dir(parent, eb);
        if (rc)
            return rc;
    }
    return ERR_OK;
}

int file_rename_durable(const char *from, const char *to, struct errbuf *eb)
{
    if (rename(from, to) != 0)
        return file_io_err(eb, errno, "rename to", to);
    char d1[PATH_MAX], d2[PATH_MAX];
    file_parent_dir(to, d2, sizeof d2);
    file_parent_dir(from, d1, sizeof d1);
    int rc = file_fsync_dir(d2, eb);
    if (!rc && strcmp(d1, d2) != 0)
        rc = file_fsync_dir(d1, eb);
    return rc;
}

int file_write_durable(const char *path, const void *p, size_t n, mode_t mode, struct errbuf *eb)
{
    char tmp[PATH_MAX];
    int len = snprintf(tmp, sizeof tmp, "%s.tmp", path);
    if (len < 0 || (size_t)len >= sizeof tmp)
        return errf(eb, ERR_TOO_LARGE, "path %s is too long", path);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
    if (fd < 0)
        return file_io_err(eb, errno, "create", tmp);
    int rc = ERR_OK, e = file_write_all(fd, p, n);
    if (e)
        rc = file_io_err(eb, e, "write", tmp);
    else if (fsync(fd) != 0)
        rc = file_io_err(eb, errno, "fsync", tmp);
    if (close(fd) != 0 && !rc)
        rc = file_io_err(eb, errno, "close", tmp);
    if (!rc)
        rc = file_rename_durable(tmp, path, eb);
    if (rc)
        unlink(tmp);
    return rc;
}
