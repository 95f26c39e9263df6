/* Atomic small-file writes for pidfiles and exit files: a reader sees either
 * no file or the whole content, never a half-written one. */
#include "fs-util.h"

#include "ctrmon/error.h"
#include "ctrmon/fd-util.h"

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

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
        int fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC, mode);
        if (fd < 0)
                return ctrmon_set_error_errno(error, errno, "Failed to create %s", path);
        close(fd);
        return 0;
}
