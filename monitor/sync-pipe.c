/* Sync-pipe messages to the caller (podman, CRI-O): formatting is pure and
 * byte-exact with conmon 2.2.1; sending tolerates a caller that has gone away.
 * Nothing here decides *when* to report: lifecycle.c does. */
#include "sync-pipe.h"

#include "ctrmon/error.h"

#include <fcntl.h>
#include <limits.h>
#include <stdlib.h>
#include <unistd.h>

const char *sync_pipe_key(bool api_version_1, bool exec)
{
        if (api_version_1)
                return "data";
        return exec ? "exit_code" : "pid";
}

char *sync_pipe_escape(const char *s)
{
        GString *out = g_string_sized_new(strlen(s) + 16);
        for (const unsigned char *p = (const unsigned char *) s; *p; p++) {
                switch (*p) {
                case '\\':
                        g_string_append(out, "\\\\");
                        break;
                case '"':
                        g_string_append(out, "\\\"");
                        break;
                case '/':
                        g_string_append(out, "\\/");
                        break;
                case '\n':
                        g_string_append(out, "\\n");
                        break;
                case '\r':
                        g_string_append(out, "\\r");
                        break;
                case '\t':
                        g_string_append(out, "\\t");
                        break;
                case '\b':
                        g_string_append(out, "\\b");
                        break;
                case '\f':
                        g_string_append(out, "\\f");
                        break;
                default:
                        /* Bytes >= 0x80 are copied raw, without UTF-8
                         * validation, exactly as conmon does. */
                        if (*p < 0x20 || *p == 0x7f)
                                g_string_append_printf(out, "\\u%04x", *p);
                        else
                                g_string_append_c(out, (char) *p);
                }
        }
        return g_string_free(out, FALSE);
}

char *sync_pipe_format(const char *key, int value, const char *message)
{
        if (message && *message) {
                g_autofree char *escaped = sync_pipe_escape(message);
                return g_strdup_printf("{\"%s\": %d, \"message\": \"%s\"}\n", key, value, escaped);
        }
        return g_strdup_printf("{\"%s\": %d}\n", key, value);
}

int sync_pipe_send(SyncPipe *pipe, int value, const char *message, GError **error)
{
        if (!pipe || pipe->fd < 0)
                return 0;

        g_autofree char *line = sync_pipe_format(pipe->key, value, message);
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
