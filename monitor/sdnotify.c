/* sd_notify, both ways: the relay between a container and the host's notify
 * socket (only lines a service manager should hear from a payload pass:
 * readiness, status, watchdog, errno; MAINPID and the like would let the
 * container lie about the host's processes), and ctrmon's own client. */
#include "sdnotify.h"

#include "fs-util.h"

#include "ctrmon/error.h"
#include "ctrmon/fd-util.h"

#include <fcntl.h>
#include <glib-unix.h>
#include <stdbool.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#define SDNOTIFY_DATAGRAM_MAX 32768
/* Datagrams taken per wake-up. The container can send as fast as it likes:
 * draining the socket dry let six flooders hold the main loop for 0.5 s
 * (the container's own output waited behind them). The rest waits in the
 * socket, whose buffer is the bound on what is pending; nothing is queued
 * here, and a full host socket drops (MSG_DONTWAIT), never blocks. */
#define SDNOTIFY_BATCH 32

struct SdNotifyRelay {
        int listen_fd;
        int host_fd;
        int dir_fd;            /* O_PATH: <bundle>/notify                    */
        FsFileId socket_id;    /* notify.sock as bound, removed only if same */
        char *path;
        guint source_id;
};

#define SDNOTIFY_SOCKET_NAME "notify.sock"

static bool sdnotify_line_allowed(const char *line)
{
        static const char *const exact[] = { "READY=1", "RELOADING=1", "STOPPING=1", "WATCHDOG=1", "WATCHDOG=trigger" };
        static const char *const prefixes[] = { "STATUS=", "ERRNO=", "BUSERROR=", "MONOTONIC_USEC=" };
        for (size_t i = 0; i < G_N_ELEMENTS(exact); i++)
                if (strcmp(line, exact[i]) == 0)
                        return true;
        for (size_t i = 0; i < G_N_ELEMENTS(prefixes); i++)
                if (g_str_has_prefix(line, prefixes[i]))
                        return true;
        return false;
}

char *sdnotify_filter(const char *datagram, size_t len)
{
        g_autofree char *copy = g_strndup(datagram, len);
        GString *out = g_string_new(NULL);
        char *save = NULL;
        for (char *line = strtok_r(copy, "\n\r", &save); line; line = strtok_r(NULL, "\n\r", &save)) {
                if (!sdnotify_line_allowed(line))
                        continue;
                if (out->len)
                        g_string_append_c(out, '\n');
                g_string_append(out, line);
        }
        if (!out->len) {
                g_string_free(out, TRUE);
                return NULL;
        }
        return g_string_free(out, FALSE);
}

static gboolean sdnotify_readable_cb(int fd, GIOCondition condition, gpointer user_data)
{
        SdNotifyRelay *relay = user_data;
        char buf[SDNOTIFY_DATAGRAM_MAX];
        for (int i = 0; i < SDNOTIFY_BATCH; i++) {
                /* MSG_TRUNC: the datagram's real length. A truncated one is
                 * dropped whole, as systemd does: its cut last line could
                 * read as another command ("READY=10" cut to "READY=1"). */
                ssize_t n = recv(fd, buf, sizeof buf, MSG_DONTWAIT | MSG_TRUNC);
                if (n < 0 && errno == EINTR)
                        continue;
                if (n < 0)
                        break;
                if ((size_t) n > sizeof buf) {
                        g_debug("Dropped a notify message of %zd bytes (over %zu)", n, sizeof buf);
                        continue;
                }
                g_autofree char *filtered = sdnotify_filter(buf, (size_t) n);
                if (filtered && send(relay->host_fd, filtered, strlen(filtered), MSG_DONTWAIT | MSG_NOSIGNAL) < 0)
                        g_debug("Failed to relay a notify message: %s", g_strerror(errno));
        }
        return G_SOURCE_CONTINUE;
}

/* Fill `addr` for `path`: as is when it fits in sun_path ("@name" is the
 * abstract namespace, as systemd writes it), else through an O_PATH fd of its
 * directory ("/proc/self/fd/N/name"), returned in *ret_dirfd and to be kept
 * open until bind() or connect() is done. podman's bundle paths are longer
 * than sun_path. */
static int sdnotify_fill_addr(const char *path, struct sockaddr_un *addr, socklen_t *ret_len, int *ret_dirfd,
                              GError **error)
{
        size_t len = strlen(path);
        *ret_dirfd = -1;
        if (len == 0)
                return ctrmon_set_error(error, EINVAL, "Empty notify socket path");
        memset(addr, 0, sizeof *addr);
        addr->sun_family = AF_UNIX;
        if (len >= sizeof addr->sun_path) {
                if (path[0] != '/')
                        return ctrmon_set_error(error, ENAMETOOLONG, "Notify socket path %s is too long", path);
                g_autofree char *dir = g_path_get_dirname(path);
                g_autofree char *name = g_path_get_basename(path);
                int dfd = open(dir, O_PATH | O_DIRECTORY | O_CLOEXEC);
                if (dfd < 0)
                        return ctrmon_set_error_errno(error, errno, "Failed to open %s", dir);
                int n = g_snprintf(addr->sun_path, sizeof addr->sun_path, "/proc/self/fd/%d/%s", dfd, name);
                if (n < 0 || (size_t) n >= sizeof addr->sun_path) {
                        close(dfd);
                        return ctrmon_set_error(error, ENAMETOOLONG, "Notify socket name %s is too long", name);
                }
                *ret_dirfd = dfd;
                *ret_len = (socklen_t) (offsetof(struct sockaddr_un, sun_path) + (size_t) n + 1);
                return 0;
        }
        memcpy(addr->sun_path, path, len);
        if (path[0] == '@')
                addr->sun_path[0] = '\0';
        *ret_len = (socklen_t) (offsetof(struct sockaddr_un, sun_path) + len + (path[0] == '@' ? 0 : 1));
        return 0;
}

int sdnotify_relay_new(const char *bundle, const char *host_socket, SdNotifyRelay **ret_relay, GError **error)
{
        g_autofree char *dir = g_build_filename(bundle, "notify", NULL);
        g_autofree char *path = g_build_filename(dir, SDNOTIFY_SOCKET_NAME, NULL);
        FsFileId socket_id = { 0 };
        int r;

        /* The container can write <bundle>/notify (it is bind-mounted in):
         * every step below goes through this fd and never follows what is
         * at notify.sock. The directory itself is the engine's; a symlink
         * there is refused rather than followed. */
        _cleanup_close_ int dir_fd = open(dir, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (dir_fd < 0)
                return ctrmon_set_error_errno(error, errno, "Failed to bind the notify socket %s: cannot open %s",
                                              path, dir);
        struct sockaddr_un addr = { .sun_family = AF_UNIX };
        int n = g_snprintf(addr.sun_path, sizeof addr.sun_path, "/proc/self/fd/%d/" SDNOTIFY_SOCKET_NAME, dir_fd);
        g_assert(n > 0 && (size_t) n < sizeof addr.sun_path);

        _cleanup_close_ int listen_fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (listen_fd < 0)
                return ctrmon_set_error_errno(error, errno, "Failed to create the notify socket");
        /* unlink() removes a planted symlink itself, not its target. */
        (void) unlinkat(dir_fd, SDNOTIFY_SOCKET_NAME, 0);
        if (bind(listen_fd, (struct sockaddr *) &addr, sizeof addr) < 0)
                return ctrmon_set_error_errno(error, errno, "Failed to bind the notify socket %s", path);
        (void) fs_file_id_at(dir_fd, SDNOTIFY_SOCKET_NAME, &socket_id);
        /* The container's processes may run as any user. Not chmod(path):
         * the container may have replaced the socket by a symlink since
         * bind(), and a chmod by name would make its target (any host file)
         * 0777. Only our socket's inode is changed, or nothing. */
        r = fs_chmod_nofollow_at(dir_fd, SDNOTIFY_SOCKET_NAME, S_IFSOCK, 0777, error);
        if (r < 0) {
                (void) fs_unlink_if_same_at(dir_fd, SDNOTIFY_SOCKET_NAME, &socket_id);
                g_prefix_error(error, "Failed to set up the notify socket %s: ", path);
                return r;
        }

        struct sockaddr_un host;
        socklen_t host_len;
        _cleanup_close_ int host_dirfd = -1;
        r = sdnotify_fill_addr(host_socket, &host, &host_len, &host_dirfd, error);
        if (r < 0) {
                (void) fs_unlink_if_same_at(dir_fd, SDNOTIFY_SOCKET_NAME, &socket_id);
                return r;
        }
        _cleanup_close_ int host_fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (host_fd < 0 || connect(host_fd, (struct sockaddr *) &host, host_len) < 0) {
                int e = errno;
                (void) fs_unlink_if_same_at(dir_fd, SDNOTIFY_SOCKET_NAME, &socket_id);
                return ctrmon_set_error_errno(error, e, "Failed to connect to the host notify socket %s", host_socket);
        }

        SdNotifyRelay *relay = g_new0(SdNotifyRelay, 1);
        relay->listen_fd = TAKE_FD(listen_fd);
        relay->host_fd = TAKE_FD(host_fd);
        relay->dir_fd = TAKE_FD(dir_fd);
        relay->socket_id = socket_id;
        relay->path = g_steal_pointer(&path);
        relay->source_id = g_unix_fd_add(relay->listen_fd, G_IO_IN, sdnotify_readable_cb, relay);
        *ret_relay = relay;
        return 0;
}

void sdnotify_relay_free(SdNotifyRelay *relay)
{
        if (!relay)
                return;
        if (relay->source_id)
                g_source_remove(relay->source_id);
        ctrmon_close_fd(&relay->listen_fd);
        ctrmon_close_fd(&relay->host_fd);
        if (relay->dir_fd >= 0)
                (void) fs_unlink_if_same_at(relay->dir_fd, SDNOTIFY_SOCKET_NAME, &relay->socket_id);
        ctrmon_close_fd(&relay->dir_fd);
        g_free(relay->path);
        g_free(relay);
}

struct SdNotifyClient {
        int fd;
        guint64 watchdog_usec;
};

int sdnotify_client_from_env(SdNotifyClient **ret_client, GError **error)
{
        const char *path = g_getenv("NOTIFY_SOCKET");
        if (!path || !*path) {
                *ret_client = NULL;
                return 0;
        }
        g_autofree char *socket_path = g_strdup(path);

        guint64 watchdog_usec = 0;
        const char *usec = g_getenv("WATCHDOG_USEC");
        const char *wpid = g_getenv("WATCHDOG_PID");
        if (usec && (!wpid || g_ascii_strtoll(wpid, NULL, 10) == getpid()))
                watchdog_usec = g_ascii_strtoull(usec, NULL, 10);
        g_unsetenv("NOTIFY_SOCKET");
        g_unsetenv("WATCHDOG_USEC");
        g_unsetenv("WATCHDOG_PID");

        struct sockaddr_un addr;
        socklen_t addr_len;
        _cleanup_close_ int dirfd = -1;
        int r = sdnotify_fill_addr(socket_path, &addr, &addr_len, &dirfd, error);
        if (r < 0)
                return r;
        _cleanup_close_ int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
        if (fd < 0 || connect(fd, (struct sockaddr *) &addr, addr_len) < 0)
                return ctrmon_set_error_errno(error, errno, "Failed to connect to NOTIFY_SOCKET %s", socket_path);

        SdNotifyClient *c = g_new0(SdNotifyClient, 1);
        c->fd = TAKE_FD(fd);
        c->watchdog_usec = watchdog_usec;
        *ret_client = c;
        return 0;
}

int sdnotify_client_send(SdNotifyClient *c, const char *message, GError **error)
{
        if (!c)
                return 0;
        ssize_t n;
        do
                n = send(c->fd, message, strlen(message), MSG_NOSIGNAL);
        while (n < 0 && errno == EINTR);
        if (n < 0)
                return ctrmon_set_error_errno(error, errno, "Failed to notify the service manager");
        return 0;
}

guint64 sdnotify_client_watchdog_usec(const SdNotifyClient *c)
{
        return c ? c->watchdog_usec : 0;
}

void sdnotify_client_free(SdNotifyClient *c)
{
        if (!c)
                return;
        ctrmon_close_fd(&c->fd);
        g_free(c);
}
