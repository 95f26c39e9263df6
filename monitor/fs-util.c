/* Small file helpers for names in directories that others may write to (a
 * bundle, a log dir, TMPDIR): atomic small-file writes for pidfiles and exit
 * files, files and directories created without following a planted symlink,
 * and removal of a name only while it still is what we created. */
#include "fs-util.h"

#include "ctrmon/error.h"
#include "ctrmon/fd-util.h"

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

/* Rounds of "something was there, we dealt with it, someone planted
 * another" before giving up. */
#define FS_PRIVATE_DIR_ATTEMPTS 4

static int fs_write_all(int fd, const char *buf, size_t len)
{
        while (len > 0) {
                ssize_t n = write(fd, buf, len);
                if (n < 0) {
                        if (errno == EINTR)
                                continue;
                        return -errno;
                }
                buf += n;
                len -= (size_t) n;
        }
        return 0;
}

int fs_write_file_atomic(const char *path, const char *content, size_t len, mode_t mode, GError **error)
{
        g_autofree char *tmp = g_strdup_printf("%s.XXXXXX", path);
        /* mkostemp: O_CREAT|O_EXCL, so a symlink planted at the temp name is
         * never followed; rename() replaces whatever is at `path` itself. */
        _cleanup_close_ int fd = mkostemp(tmp, O_CLOEXEC);
        if (fd < 0)
                return ctrmon_set_error_errno(error, errno, "Failed to create %s", tmp);

        int r = 0;
        if (fchmod(fd, mode) < 0)
                r = ctrmon_set_error_errno(error, errno, "Failed to set the mode of %s", tmp);
        else if ((r = fs_write_all(fd, content, len)) < 0)
                r = ctrmon_set_error_errno(error, r, "Failed to write %s", tmp);
        else if (close(TAKE_FD(fd)) < 0)
                r = ctrmon_set_error_errno(error, errno, "Failed to close %s", tmp);
        else if (rename(tmp, path) < 0)
                r = ctrmon_set_error_errno(error, errno, "Failed to rename %s to %s", tmp, path);

        if (r < 0)
                unlink(tmp);
        return r;
}

int fs_touch(const char *path, mode_t mode, GError **error)
{
        for (int attempt = 0;; attempt++) {
                struct stat st;

                /* Only existence matters: an existing regular file is never
                 * opened, and nothing else at the name ever is (opening a
                 * FIFO blocks, opening a device may act). */
                if (lstat(path, &st) == 0) {
                        if (S_ISREG(st.st_mode))
                                return 0;
                        if (S_ISDIR(st.st_mode))
                                return ctrmon_set_error(error, EISDIR, "Failed to create %s: it is a directory",
                                                        path);
                        /* A symlink, FIFO, socket or device: replace the name,
                         * never touch what it is or points to. */
                        g_autoptr(GError) local = NULL;
                        int r = fs_write_file_atomic(path, "", 0, mode, &local);
                        if (r < 0)
                                return ctrmon_set_error(error, -r, "Failed to replace %s, which is not a regular file: %s",
                                                        path, local->message);
                        return 0;
                }
                if (errno != ENOENT)
                        return ctrmon_set_error_errno(error, errno, "Failed to stat %s", path);

                /* O_EXCL: a symlink planted since the lstat() is not followed. */
                int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_NOCTTY | O_CLOEXEC, mode);
                if (fd >= 0) {
                        close(fd);
                        return 0;
                }
                if (errno != EEXIST || attempt >= FS_PRIVATE_DIR_ATTEMPTS)
                        return ctrmon_set_error_errno(error, errno, "Failed to create %s", path);
        }
}

int fs_file_id_at(int dirfd, const char *name, FsFileId *ret_id)
{
        struct stat st;

        if (fstatat(dirfd, name, &st, AT_SYMLINK_NOFOLLOW) < 0)
                return -errno;
        *ret_id = (FsFileId) { .dev = st.st_dev, .ino = st.st_ino, .set = true };
        return 0;
}

int fs_unlink_if_same_at(int dirfd, const char *name, const FsFileId *id)
{
        FsFileId now;
        int r;

        if (!id || !id->set)
                return 0;
        r = fs_file_id_at(dirfd, name, &now);
        if (r == -ENOENT)
                return 0;
        if (r < 0)
                return r;
        if (now.dev != id->dev || now.ino != id->ino)
                return 0;
        if (unlinkat(dirfd, name, 0) < 0)
                return errno == ENOENT ? 0 : -errno;
        return 1;
}

int fs_chmod_nofollow_at(int dirfd, const char *name, mode_t type, mode_t mode, GError **error)
{
        _cleanup_close_ int fd = openat(dirfd, name, O_PATH | O_NOFOLLOW | O_CLOEXEC);
        struct stat st;
        char proc_path[64];

        if (fd < 0)
                return ctrmon_set_error_errno(error, errno, "Failed to open %s", name);
        if (fstat(fd, &st) < 0)
                return ctrmon_set_error_errno(error, errno, "Failed to stat %s", name);
        if (S_ISLNK(st.st_mode))
                return ctrmon_set_error(error, ELOOP, "Refusing to chmod %s: it was replaced by a symlink", name);
        if (type && (st.st_mode & S_IFMT) != type)
                return ctrmon_set_error(error, EPERM, "Refusing to chmod %s: it was replaced (file type %o)", name,
                                        (unsigned) (st.st_mode & S_IFMT));
        if (st.st_uid != geteuid())
                return ctrmon_set_error(error, EPERM, "Refusing to chmod %s: it is owned by uid %u", name,
                                        (unsigned) st.st_uid);
        /* chmod() through the magic link acts on the pinned inode itself;
         * fchmod() does not take O_PATH fds. */
        g_snprintf(proc_path, sizeof proc_path, "/proc/self/fd/%d", fd);
        if (chmod(proc_path, mode) < 0)
                return ctrmon_set_error_errno(error, errno, "Failed to chmod %s", name);
        return 0;
}

int fs_open_private_dir(const char *path, mode_t mode, GError **error)
{
        g_autofree char *parent = g_path_get_dirname(path);
        g_autofree char *name = g_path_get_basename(path);
        _cleanup_close_ int pfd = -1;
        _cleanup_close_ int fd = -1;
        struct stat st;

        pfd = open(parent, O_PATH | O_DIRECTORY | O_CLOEXEC);
        if (pfd < 0)
                return ctrmon_set_error_errno(error, errno, "Failed to open %s", parent);

        for (int attempt = 0;; attempt++) {
                if (mkdirat(pfd, name, mode) < 0 && errno != EEXIST)
                        return ctrmon_set_error_errno(error, errno, "Failed to create %s", path);
                fd = openat(pfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
                if (fd >= 0)
                        break;
                int e = errno;
                if (e != ELOOP && e != ENOTDIR && e != ENOENT)
                        return ctrmon_set_error_errno(error, e, "Failed to open %s", path);
                if (attempt + 1 >= FS_PRIVATE_DIR_ATTEMPTS)
                        return ctrmon_set_error_errno(error, e, "Failed to create %s (it keeps being replaced)",
                                                      path);
                if (fstatat(pfd, name, &st, AT_SYMLINK_NOFOLLOW) < 0) {
                        if (errno == ENOENT)
                                continue; /* removed in between: make it again */
                        return ctrmon_set_error_errno(error, errno, "Failed to stat %s", path);
                }
                if (!S_ISLNK(st.st_mode))
                        return ctrmon_set_error(error, ENOTDIR, "Refusing to use %s: it is not a directory", path);
                /* A planted symlink: drop the link (not its target). */
                if (unlinkat(pfd, name, 0) < 0 && errno != ENOENT)
                        return ctrmon_set_error_errno(error, errno, "Failed to remove the symlink %s", path);
        }

        if (fstat(fd, &st) < 0)
                return ctrmon_set_error_errno(error, errno, "Failed to stat %s", path);
        if (st.st_uid != geteuid())
                return ctrmon_set_error(error, EPERM, "Refusing to use %s: it is owned by uid %u, not %u", path,
                                        (unsigned) st.st_uid, (unsigned) geteuid());
        if ((st.st_mode & 07777) != mode && fchmod(fd, mode) < 0)
                return ctrmon_set_error_errno(error, errno, "Failed to chmod %s", path);
        return TAKE_FD(fd);
}
