/* The console socket for -t: one connection from the runtime carrying the pty
 * master. It owns the listening socket and its path; the master it receives
 * belongs to the caller from then on. */
#include "console.h"

#include "ctrmon/error.h"
#include "ctrmon/fd-util.h"

#include <fcntl.h>
#include <glib-unix.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <termios.h>
#include <sys/ioctl.h>
#include <unistd.h>

struct ConsoleSocket {
        int fd;
        char *path;            /* NULL once unlinked */
        guint source_id;
        ConsoleReadyFn ready_cb;
        void *user_data;
};

/* "conmon-term." and six random letters or digits, as mkstemp() names it. */
static void console_socket_random_name(char *x6)
{
        static const char chars[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
        for (int i = 0; i < 6; i++)
                x6[i] = chars[g_random_int_range(0, (gint32) sizeof chars - 1)];
}

int console_socket_new(ConsoleSocket **ret_console, GError **error)
{
        const char *tmpdir = g_getenv("TMPDIR");
        if (!tmpdir || !*tmpdir)
                tmpdir = "/tmp";

        g_autofree char *path = g_build_filename(tmpdir, "conmon-term.XXXXXX", NULL);
        struct sockaddr_un addr = { .sun_family = AF_UNIX };
        if (strlen(path) >= sizeof addr.sun_path)
                return ctrmon_set_error(error, ENAMETOOLONG,
                                        "Console socket path %s is longer than %zu bytes: set TMPDIR to a shorter directory",
                                        path, sizeof addr.sun_path - 1);

        _cleanup_close_ int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (fd < 0)
                return ctrmon_set_error_errno(error, errno, "Failed to create the console socket");
        /* bind() gives the file the socket inode's mode (minus the umask):
         * 0700 from birth, so nothing is ever chmod'ed by name. conmon
         * chmod()s the path after bind, which follows whatever has been put
         * at the name by then (a symlink in a TMPDIR others can write). */
        if (fchmod(fd, 0700) < 0)
                return ctrmon_set_error_errno(error, errno, "Failed to set the console socket's mode");

        /* bind() is the exclusive create: it never follows a symlink and
         * fails with EADDRINUSE on any existing name. conmon reserves the
         * name with mkstemp() and unlinks it again before bind(), a window
         * in which anyone who can write TMPDIR can take the name. */
        char *x6 = path + strlen(path) - 6;
        for (int attempt = 0;; attempt++) {
                console_socket_random_name(x6);
                memcpy(addr.sun_path, path, strlen(path) + 1);
                if (bind(fd, (struct sockaddr *) &addr, sizeof addr) == 0)
                        break;
                if (errno != EADDRINUSE || attempt >= 100)
                        return ctrmon_set_error_errno(error, errno, "Failed to bind the console socket %s", path);
        }
        if (listen(fd, 128) < 0) {
                int e = errno;
                unlink(path);
                return ctrmon_set_error_errno(error, e, "Failed to set up the console socket %s", path);
        }

        ConsoleSocket *c = g_new0(ConsoleSocket, 1);
        c->fd = TAKE_FD(fd);
        c->path = g_steal_pointer(&path);
        *ret_console = c;
        return 0;
}

const char *console_socket_path(const ConsoleSocket *console)
{
        return console->path;
}

int console_receive_fd(int conn, int *ret_fd, GError **error)
{
        /* The runtime sends the pty name as payload; it is not needed. */
        char name[4096];
        struct iovec iov = { .iov_base = name, .iov_len = sizeof name };
        union {
                char buf[CMSG_SPACE(sizeof(int))];
                struct cmsghdr align;
        } control;
        struct msghdr msg = {
                .msg_iov = &iov,
                .msg_iovlen = 1,
                .msg_control = control.buf,
                .msg_controllen = sizeof control.buf,
        };

        ssize_t n;
        do
                n = recvmsg(conn, &msg, MSG_CMSG_CLOEXEC);
        while (n < 0 && errno == EINTR);
        if (n < 0)
                return ctrmon_set_error_errno(error, errno, "Failed to receive the terminal from the runtime");

        /* The kernel installs every fd that fits the control buffer (two fit
         * in CMSG_SPACE(sizeof(int))): take a lone fd, close all others, or
         * they leak (found by tests/fuzz/fuzz-console). */
        int master = -1;
        for (struct cmsghdr *cmsg = CMSG_FIRSTHDR(&msg); cmsg; cmsg = CMSG_NXTHDR(&msg, cmsg)) {
                if (cmsg->cmsg_level != SOL_SOCKET || cmsg->cmsg_type != SCM_RIGHTS)
                        continue;
                size_t n_fds = (cmsg->cmsg_len - CMSG_LEN(0)) / sizeof(int);
                for (size_t i = 0; i < n_fds; i++) {
                        int fd;
                        memcpy(&fd, CMSG_DATA(cmsg) + i * sizeof(int), sizeof(int));
                        if (master < 0 && n_fds == 1)
                                master = fd;
                        else
                                close(fd);
                }
        }
        if (master >= 0) {
                *ret_fd = master;
                return 0;
        }
        return ctrmon_set_error(error, EBADMSG, "The runtime connected to the console socket but sent no terminal");
}

int console_socket_try_accept(ConsoleSocket *c, int *ret_master_fd, GError **error)
{
        if (c->fd < 0)
                return 0;
        _cleanup_close_ int conn = accept4(c->fd, NULL, NULL, SOCK_CLOEXEC);
        if (conn < 0) {
                if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)
                        return 0;
                return ctrmon_set_error_errno(error, errno, "Failed to accept on the console socket");
        }

        /* One connection is all there is: drop the name and the listener. */
        if (c->path) {
                unlink(c->path);
                g_clear_pointer(&c->path, g_free);
        }
        if (c->source_id) {
                g_source_remove(c->source_id);
                c->source_id = 0;
        }
        close(c->fd);
        c->fd = -1;

        /* The connection is blocking: the runtime sends right after connect. */
        int master = -1;
        int r = console_receive_fd(conn, &master, error);
        if (r < 0)
                return r;
        *ret_master_fd = master;
        return 1;
}

static gboolean console_socket_accept_cb(int fd, GIOCondition condition, gpointer user_data)
{
        ConsoleSocket *c = user_data;
        g_autoptr(GError) error = NULL;
        int master = -1;
        int r = console_socket_try_accept(c, &master, &error);
        if (r == 0)
                return G_SOURCE_CONTINUE;
        /* try_accept removed this source already when it got a connection. */
        if (r > 0 && c->ready_cb)
                c->ready_cb(master, c->user_data);
        else if (r < 0)
                g_debug("%s", error->message);
        return c->source_id ? G_SOURCE_CONTINUE : G_SOURCE_REMOVE;
}

void console_socket_attach(ConsoleSocket *c, ConsoleReadyFn ready_cb, void *user_data)
{
        c->ready_cb = ready_cb;
        c->user_data = user_data;
        if (c->fd >= 0 && !c->source_id)
                c->source_id = g_unix_fd_add(c->fd, G_IO_IN, console_socket_accept_cb, c);
}

void console_socket_free(ConsoleSocket *c)
{
        if (!c)
                return;
        if (c->source_id)
                g_source_remove(c->source_id);
        if (c->fd >= 0)
                close(c->fd);
        if (c->path)
                unlink(c->path);
        g_free(c->path);
        g_free(c);
}

int console_set_onlcr(int master_fd, GError **error)
{
        struct termios tio;
        if (tcgetattr(master_fd, &tio) < 0)
                return ctrmon_set_error_errno(error, errno, "Failed to read the terminal attributes");
        tio.c_oflag |= ONLCR;
        if (tcsetattr(master_fd, TCSANOW, &tio) < 0)
                return ctrmon_set_error_errno(error, errno, "Failed to set ONLCR on the terminal");
        return 0;
}

int console_resize(int master_fd, int rows, int cols, GError **error)
{
        struct winsize ws = { .ws_row = (unsigned short) rows, .ws_col = (unsigned short) cols };
        if (ioctl(master_fd, TIOCSWINSZ, &ws) < 0)
                return ctrmon_set_error_errno(error, errno, "Failed to resize the terminal to %dx%d", rows, cols);
        return 0;
}
