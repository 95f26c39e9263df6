/* libctrmon's connection: connecting (also to paths longer than sun_path),
 * sending one request at a time and reading lines until its answer, and
 * handing notifications that arrive meanwhile to whoever consumes them.
 * Method-specific parsing lives in methods.c; nothing here exits or logs. */
#include "client-private.h"

#include "ctrmon/control.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define CLIENT_READ_CHUNK 65536
/* Answers can be large (exec output, log tails); bound what we buffer for
 * one line so a broken peer cannot make us eat all memory. */
#define CLIENT_MAX_LINE (256u * 1024 * 1024)

int client_set_error(CtrmonClient *c, int r, int code, const char *format, ...)
{
        if (!c)
                return r;
        va_list ap;
        va_start(ap, format);
        char *m = NULL;
        if (vasprintf(&m, format, ap) < 0)
                m = NULL;
        va_end(ap);
        free(c->error);
        c->error = m;
        c->error_code = code;
        return r;
}

char *ctrmon_client_bundle_socket_path(const char *bundle_dir)
{
        char *p = NULL;
        if (!bundle_dir || asprintf(&p, "%s/%s/%s", bundle_dir, CTRMON_CONTROL_SOCKET_DIR,
                                    CTRMON_CONTROL_SOCKET_NAME) < 0)
                return NULL;
        return p;
}

static int client_connect_fd(const char *path)
{
        int dir_fd = -1;
        struct sockaddr_un addr;
        socklen_t alen;
        int r = ctrmon_client_build_address(path, -1, &addr, &alen);
        if (r == -ENAMETOOLONG) {
                /* Reach the socket through its directory's fd, as the
                 * monitor bound it: sun_path is only 108 bytes. */
                char *dir = strdup(path);
                if (!dir)
                        return -ENOMEM;
                char *slash = strrchr(dir, '/');
                if (slash == dir)
                        slash[1] = '\0';
                else if (slash)
                        *slash = '\0';
                else
                        strcpy(dir, ".");
                dir_fd = open(dir, O_PATH | O_DIRECTORY | O_CLOEXEC);
                r = dir_fd < 0 ? -errno : 0;
                free(dir);
                if (r < 0)
                        return r;
                r = ctrmon_client_build_address(path, dir_fd, &addr, &alen);
        }
        if (r < 0) {
                if (dir_fd >= 0)
                        close(dir_fd);
                return r;
        }
        int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd < 0) {
                r = -errno;
        } else {
                while ((r = connect(fd, (struct sockaddr *) &addr, alen)) < 0 && errno == EINTR)
                        ;
                if (r < 0) {
                        r = -errno;
                        close(fd);
                } else {
                        r = fd;
                }
        }
        if (dir_fd >= 0)
                close(dir_fd);
        return r;
}

int ctrmon_client_connect(const char *socket_path, CtrmonClient **ret_client)
{
        if (!socket_path || !ret_client)
                return -EINVAL;
        int fd = client_connect_fd(socket_path);
        if (fd < 0)
                return fd;
        CtrmonClient *c = calloc(1, sizeof *c);
        if (!c) {
                close(fd);
                return -ENOMEM;
        }
        c->fd = fd;
        c->next_id = 1;
        *ret_client = c;
        return 0;
}

int ctrmon_client_connect_bundle(const char *bundle_dir, CtrmonClient **ret_client)
{
        char *path = ctrmon_client_bundle_socket_path(bundle_dir);
        if (!path)
                return -EINVAL;
        int r = ctrmon_client_connect(path, ret_client);
        free(path);
        return r;
}

void ctrmon_client_close(CtrmonClient *c)
{
        if (!c)
                return;
        if (c->fd >= 0)
                close(c->fd);
        free(c->buf);
        free(c->error);
        free(c);
}

int ctrmon_client_fd(const CtrmonClient *c)
{
        return c ? c->fd : -1;
}

const char *ctrmon_client_error(const CtrmonClient *c)
{
        return c && c->error ? c->error : "";
}

int ctrmon_client_error_code(const CtrmonClient *c)
{
        return c ? c->error_code : 0;
}

static int client_send_all(CtrmonClient *c, const char *data, size_t len)
{
        while (len > 0) {
                ssize_t n = send(c->fd, data, len, MSG_NOSIGNAL);
                if (n < 0) {
                        if (errno == EINTR)
                                continue;
                        return client_set_error(c, -errno, 0, "Failed to send to the monitor: %s",
                                                strerror(errno));
                }
                data += n;
                len -= (size_t) n;
        }
        return 0;
}

static int client_buf_reserve(CtrmonClient *c, size_t extra)
{
        if (c->len + extra <= c->cap)
                return 0;
        size_t cap = c->cap ? c->cap : CLIENT_READ_CHUNK;
        while (cap < c->len + extra)
                cap *= 2;
        char *b = realloc(c->buf, cap);
        if (!b)
                return client_set_error(c, -ENOMEM, 0, "Out of memory");
        c->buf = b;
        c->cap = cap;
        return 0;
}

/* One recv into the buffer. `exact`: take no byte past the first newline
 * (peek first), so that after an attach answer the stream is untouched. */
static int client_fill(CtrmonClient *c, bool exact)
{
        if (c->len > CLIENT_MAX_LINE)
                return client_set_error(c, -EMSGSIZE, 0, "The monitor sent an over-long line");
        int r = client_buf_reserve(c, CLIENT_READ_CHUNK);
        if (r < 0)
                return r;
        size_t want = CLIENT_READ_CHUNK;
        if (exact) {
                ssize_t p;
                while ((p = recv(c->fd, c->buf + c->len, want, MSG_PEEK)) < 0 && errno == EINTR)
                        ;
                if (p > 0) {
                        char *nl = memchr(c->buf + c->len, '\n', (size_t) p);
                        want = nl ? (size_t) (nl - (c->buf + c->len)) + 1 : (size_t) p;
                }
        }
        ssize_t n;
        while ((n = recv(c->fd, c->buf + c->len, want, 0)) < 0 && errno == EINTR)
                ;
        if (n < 0)
                return client_set_error(c, -errno, 0, "Failed to read from the monitor: %s", strerror(errno));
        if (n == 0)
                return client_set_error(c, -ECONNRESET, 0, "The monitor closed the connection");
        c->len += (size_t) n;
        return 0;
}

int client_read_message(CtrmonClient *c, bool exact, ClientMessage *ret_msg)
{
        for (;;) {
                char *nl = c->len ? memchr(c->buf, '\n', c->len) : NULL;
                if (nl) {
                        size_t line_len = (size_t) (nl - c->buf);
                        char *reason = NULL;
                        int r = client_proto_parse_message(c->buf, line_len, ret_msg, &reason);
                        memmove(c->buf, nl + 1, c->len - line_len - 1);
                        c->len -= line_len + 1;
                        if (r < 0) {
                                client_set_error(c, r, 0, "%s", reason ? reason : "bad message");
                                free(reason);
                        }
                        return r;
                }
                int r = client_fill(c, exact);
                if (r < 0)
                        return r;
        }
}

int client_call_full(CtrmonClient *c, const char *method, const char *params_json, bool exact,
                     char **ret_result_json)
{
        if (!c || c->fd < 0)
                return client_set_error(c, -EBADF, 0, "Not connected");
        int64_t id = c->next_id++;
        char *line = NULL;
        size_t len = 0;
        int r = client_proto_encode_request(id, method, params_json, &line, &len);
        if (r < 0)
                return client_set_error(c, r, 0, "Cannot encode the request for %s: params must be a JSON object",
                                        method ? method : "(null)");
        r = client_send_all(c, line, len);
        free(line);
        bool send_failed = r < 0;
        if (send_failed && r != -EPIPE && r != -ECONNRESET)
                return r;

        for (;;) {
                ClientMessage m;
                r = client_read_message(c, exact, &m);
                if (r < 0)
                        return r;
                /* A monitor that refuses us answers once and hangs up,
                 * maybe before our request went out: that answer still
                 * says why. */
                if (send_failed && (m.kind != CLIENT_MESSAGE_ERROR || m.has_id)) {
                        client_message_clear(&m);
                        continue;
                }
                if (m.kind == CLIENT_MESSAGE_NOTIFICATION) {
                        if (c->notify_fn)
                                c->notify_fn(c, &m, c->notify_userdata);
                        client_message_clear(&m);
                        continue;
                }
                /* An error without id answers whatever we asked: the
                 * monitor could not read our request, or refused us. */
                if (m.has_id && m.id != id) {
                        client_message_clear(&m);
                        continue;
                }
                if (m.kind == CLIENT_MESSAGE_ERROR) {
                        r = client_set_error(c, client_proto_errno_for_code(m.error_code), m.error_code, "%s",
                                             m.error_message);
                } else {
                        r = 0;
                        if (ret_result_json) {
                                *ret_result_json = m.result;
                                m.result = NULL;
                        }
                        client_set_error(c, 0, 0, "%s", "");
                }
                client_message_clear(&m);
                return r;
        }
}

int ctrmon_client_call(CtrmonClient *c, const char *method, const char *params_json, char **ret_result_json)
{
        return client_call_full(c, method, params_json, false, ret_result_json);
}
