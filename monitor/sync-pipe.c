/* Sync-pipe messages to the caller (podman, CRI-O): formatting is pure and
 * byte-exact with conmon 2.2.1; sending tolerates a caller that has gone away.
 * Nothing here decides *when* to report: lifecycle.c does. */
#include "sync-pipe.h"

#include "ctrmon/error.h"

#include <fcntl.h>
#include <limits.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

const char *sync_pipe_key(bool api_version_1, bool exec)
{
        if (api_version_1)
                return "data";
        return exec ? "exit_code" : "pid";
}

/* The escaped form of one byte (conmon's rules, spec §3.2), NUL-terminated
 * in buf; returns its length. Bytes >= 0x80 are copied raw, without UTF-8
 * validation, exactly as conmon does. */
static size_t sync_pipe_escape_byte(unsigned char c, char buf[static 7])
{
        char e = 0;
        switch (c) {
        case '\\':
        case '"':
        case '/':
                e = (char) c;
                break;
        case '\n':
                e = 'n';
                break;
        case '\r':
                e = 'r';
                break;
        case '\t':
                e = 't';
                break;
        case '\b':
                e = 'b';
                break;
        case '\f':
                e = 'f';
                break;
        default:
                if (c < 0x20 || c == 0x7f)
                        return (size_t) g_snprintf(buf, 7, "\\u%04x", c);
                buf[0] = (char) c;
                buf[1] = '\0';
                return 1;
        }
        buf[0] = '\\';
        buf[1] = e;
        buf[2] = '\0';
        return 2;
}

static char *sync_pipe_escape_n(const char *s, size_t n)
{
        GString *out = g_string_sized_new(n + 16);
        char buf[7];
        for (size_t i = 0; i < n; i++) {
                size_t len = sync_pipe_escape_byte((unsigned char) s[i], buf);
                g_string_append_len(out, buf, (gssize) len);
        }
        return g_string_free(out, FALSE);
}

char *sync_pipe_escape(const char *s)
{
        return sync_pipe_escape_n(s, strlen(s));
}

char *sync_pipe_format(const char *key, int value, const char *message)
{
        if (message && *message) {
                g_autofree char *escaped = sync_pipe_escape(message);
                return g_strdup_printf("{\"%s\": %d, \"message\": \"%s\"}\n", key, value, escaped);
        }
        return g_strdup_printf("{\"%s\": %d}\n", key, value);
}

char *sync_pipe_format_bounded(const char *key, int value, const char *message, size_t max)
{
        g_autofree char *line = sync_pipe_format(key, value, message);
        if (max == 0 || strlen(line) <= max)
                return g_steal_pointer(&line);

        g_autofree char *head = g_strdup_printf("{\"%s\": %d, \"message\": \"", key, value);
        static const char tail[] = "\"}\n";
        if (strlen(head) + sizeof tail - 1 >= max)
                return g_steal_pointer(&line); /* no room for any message */

        /* Whole escaped bytes only, then back to the start of a UTF-8
         * sequence, so the cut never makes an invalid escape or character. */
        size_t room = max - strlen(head) - (sizeof tail - 1), used = 0, n = 0;
        char buf[7];
        while (message[n]) {
                size_t len = sync_pipe_escape_byte((unsigned char) message[n], buf);
                if (used + len > room)
                        break;
                used += len;
                n++;
        }
        while (n > 0 && ((unsigned char) message[n] & 0xc0) == 0x80)
                n--;
        if (n == 0)
                return sync_pipe_format(key, value, NULL); /* as conmon: no empty message */
        g_autofree char *escaped = sync_pipe_escape_n(message, n);
        return g_strconcat(head, escaped, tail, NULL);
}

/* True for a SOCK_SEQPACKET socket: a record per write, which a reader
 * with a short buffer gets cut (see SYNC_PIPE_SEQPACKET_RECORD_MAX). */
static bool sync_pipe_is_seqpacket(int fd)
{
        int type = 0;
        socklen_t len = sizeof type;
        return getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &len) == 0 && type == SOCK_SEQPACKET;
}

int sync_pipe_send(SyncPipe *pipe, int value, const char *message, GError **error)
{
        if (!pipe || pipe->fd < 0)
                return 0;

        size_t max = sync_pipe_is_seqpacket(pipe->fd) ? SYNC_PIPE_SEQPACKET_RECORD_MAX : 0;
        g_autofree char *line = sync_pipe_format_bounded(pipe->key, value, message, max);
        const char *p = line;
        size_t left = strlen(line);
        while (left > 0) {
                ssize_t n = write(pipe->fd, p, left);
                if (n < 0) {
                        if (errno == EINTR)
                                continue;
                        if (errno == EPIPE) {
                                /* The caller closed its end: nobody is
                                 * listening any more, which is not an error
                                 * of ours. */
                                close(pipe->fd);
                                pipe->fd = -1;
                                return 0;
                        }
                        return ctrmon_set_error_errno(error, errno, "Failed to write to the sync pipe");
                }
                p += n;
                left -= (size_t) n;
        }
        return 0;
}

int sync_pipe_fd_from_env(const char *name, int *ret_fd, GError **error)
{
        const char *value = g_getenv(name);
        if (!value) {
                *ret_fd = -1;
                return 0;
        }

        char *end = NULL;
        errno = 0;
        long fd = strtol(value, &end, 10);
        if (errno != 0 || end == value || *end != '\0' || fd > INT_MAX || fd < INT_MIN)
                return ctrmon_set_error(error, EINVAL, "unable to parse %s", name);
        if (fd <= 0) {
                /* conmon treats values <= 0 as absent. */
                *ret_fd = -1;
                return 0;
        }
        if (fcntl((int) fd, F_SETFD, FD_CLOEXEC) < 0)
                return ctrmon_set_error(error, errno, "unable to make %s CLOEXEC", name);
        *ret_fd = (int) fd;
        return 0;
}
