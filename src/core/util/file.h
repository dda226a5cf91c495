/* Small file helpers shared by the writers of images and backups, and the
 * one way ddkv makes a file or directory it creates durable (see
 * docs/lossyfs.md for the model of a disk after power loss they answer). */
#ifndef DDKV_UTIL_FILE_H
#define DDKV_UTIL_FILE_H

#include <stddef.h>
#include <sys/types.h>

#include "util/err.h"

/* An errno from a file operation as an error code (ENOSPC/EDQUOT:
 * ERR_NOSPACE, ENOENT: ERR_NOT_FOUND, else ERR_IO), with "what path: reason". */
int file_io_err(struct errbuf *eb, int e, const char *what, const char *path);
/* Write all n bytes (retrying short writes and EINTR). 0 or an errno. */
int file_write_all(int fd, const void *p, size_t n);

/* The directory holding path's entry ("." for a bare name, "/" for "/x"). */
void file_parent_dir(const char *path, char *out, size_t cap);
/* fsync a directory: the entries created, renamed or removed in it survive
 * a power cut (a file's own fsync does not promise its name). */
int file_fsync_dir(const char *dir, struct errbuf *eb);
/* fsync an existing file by path (one another library wrote). */
int file_fsync_path(const char *path, struct errbuf *eb);
/* mkdir -p, durable: every directory it creates has its entry fsynced in its
 * parent, up to and including the first directory that already existed;
 * when path already existed, its parent is fsynced anyway (a run cut between
 * the mkdir and the fsync leaves a directory that a power cut would take),
 * if this process may read that parent.
 * Not a directory, or a missing permission: an error naming the path. */
int file_mkdir_durable(const char *path, mode_t mode, struct errbuf *eb);
/* rename(from, to), then fsync to's directory (and from's, if another): the
 * last step of write-temp, fsync, rename, fsync-dir. from must have been
 * fsynced by the caller. */
int file_rename_durable(const char *from, const char *to, struct errbuf *eb);
/* The whole sequence for a small file: path.tmp written and fsynced, renamed
 * over path, path's directory fsynced. On failure nothing is left behind. */
int file_write_durable(const char *path, const void *p, size_t n, mode_t mode, struct errbuf *eb);

#endif
