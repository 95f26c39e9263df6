/* File helpers with one job each: atomic small-file writes (pidfiles, exit
 * files), files and directories made where others may have planted a
 * symlink, and removing a name only while it is still ours. */
#pragma once

#include <glib.h>
#include <stdbool.h>
#include <sys/types.h>

/* Write `len` bytes to `path` atomically: a temp file "<path>.XXXXXX" in the
 * same directory, fchmod(mode), rename over `path`. */
int fs_write_file_atomic(const char *path, const char *content, size_t len, mode_t mode, GError **error);

/* Make sure `path` exists as a regular file (the oom files: only existence
 * matters). An existing regular file is left as it is; nothing at `path` is
 * ever followed or opened for writing: a symlink, FIFO, socket or device
 * planted there is replaced by an empty file (mode) through rename(), so
 * neither its target is created or touched nor can a FIFO block us. */
int fs_touch(const char *path, mode_t mode, GError **error);

/* The identity of a file we created, to recognise it later at its name. */
typedef struct {
        dev_t dev;
        ino_t ino;
        bool set;
} FsFileId;

/* Record what is at `name` in `dirfd` (AT_FDCWD: a path) now, without
 * following a symlink. -errno if nothing is there. */
int fs_file_id_at(int dirfd, const char *name, FsFileId *ret_id);

/* unlinkat(dirfd, name) only if what is there now is still `id` (lstat
 * semantics): a successor (the engine's next monitor on the same bundle)
 * that replaced it keeps its own. 1: removed; 0: gone already, replaced, or
 * `id` unset; -errno: the check or the unlink failed. The check and the
 * unlink are two steps: a replacement in between cannot be told apart. */
int fs_unlink_if_same_at(int dirfd, const char *name, const FsFileId *id);

/* chmod the file at `name` in `dirfd` without following a symlink there,
 * and only if it has type `type` (S_IFSOCK, S_IFREG...; 0: any but a
 * symlink) and belongs to us: an O_PATH|O_NOFOLLOW fd pins the inode
 * between the check and the chmod (done through /proc/self/fd). */
int fs_chmod_nofollow_at(int dirfd, const char *name, mode_t type, mode_t mode, GError **error);

/* Create-or-open the directory `path` for our private use and return an
 * O_DIRECTORY fd of it (O_CLOEXEC), whose mode is then exactly `mode`.
 * Its last component is never followed: a symlink planted there is removed
 * (unlink() does not follow either) and the directory made in its place; a
 * directory owned by someone else, or anything that is not a directory,
 * is refused (EPERM / ENOTDIR) and left alone. Parent components are
 * resolved normally (a bundle path may legitimately hold symlinks). */
int fs_open_private_dir(const char *path, mode_t mode, GError **error);
