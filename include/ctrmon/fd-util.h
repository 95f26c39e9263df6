/* Small file-descriptor helpers in systemd's style, shared by monitor/ and
 * runtime-shim/: a cleanup attribute that closes, and TAKE_FD to hand the
 * descriptor over to a new owner. */
#pragma once

#include <errno.h>
#include <unistd.h>

static inline void ctrmon_close_fdp(int *fd)
{
        if (fd && *fd >= 0) {
                int saved = errno;
                close(*fd);
                errno = saved;
                *fd = -1;
        }
}

#define _cleanup_close_ __attribute__((cleanup(ctrmon_close_fdp)))

#define TAKE_FD(fd)                                                             \
        ({                                                                      \
                int _fd = (fd);                                                 \
                (fd) = -1;                                                      \
                _fd;                                                            \
        })

/* Close *fd if open and mark it closed. */
static inline void ctrmon_close_fd(int *fd)
{
        ctrmon_close_fdp(fd);
}
