/* The control API transport. It owns the listening socket and every
 * connection: non-blocking, one line per request, bounded input (the request
 * size limit) and bounded output (a client that stops reading is dropped, it
 * never blocks the monitor). It knows nothing of containers: methods are
 * looked up by name and get a ControlCall to answer. */
#include "control-api.h"

#include "diag.h"
#include "out-queue.h"
#include "ctrmon/error.h"
#include "ctrmon/fd-util.h"

#include <fcntl.h>
#include <glib-unix.h>
#include <stdarg.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

/* Output a client may leave unread before it is disconnected. */
#define CONTROL_OUTPUT_MAX (16 * 1024 * 1024)
/* How long an answer may take to leave before its connection is handed over. */
#define CONTROL_HANDOVER_FLUSH_USEC (1000 * 1000)
#define CONTROL_READ_CHUNK 65536
/* Input read and dropped after "request too large" before hanging up. */
#define CONTROL_DISCARD_MAX (64 * 1024 * 1024)

typedef struct ControlConn ControlConn;

struct ControlApi {
        int fd;
        char *path;
        guint source_id;
        const ControlMethod *methods;
        void *user_data;
        uid_t owner_uid;
        GList *conns;
        ControlApiStats stats;
};

struct ControlConn {
        ControlApi *api;
        int fd;
        uid_t uid;
        pid_t pid;
        guint in_id;
        GByteArray *in;
        OutQueue *out;         /* NULL once closed */
        bool subscribed;
        bool closing;          /* close once `out` is written */
        size_t discard_left;   /* > 0: answered "too large", now draining */
        GList *calls;          /* ControlCall* still referenced (answered or not) */
};

struct ControlCall {
        int refs;
        ControlConn *conn;     /* NULL once the connection closed */
        json_object *id;       /* NULL: notification, no answer */
        bool has_id;
        bool answered;
        json_object *params;
};

static void control_conn_close(ControlConn *c);

/* ------------------------------------------------------------ parsing */

int control_parse_request(const char *line, size_t len, char **ret_method, json_object **ret_params,
                          json_object **ret_id, bool *ret_has_id, char **ret_error_message)
{
        *ret_id = NULL;
        *ret_has_id = false;

        json_tokener *tok = json_tokener_new();
        json_object *req = json_tokener_parse_ex(tok, line, (int) len);
        enum json_tokener_error jerr = json_tokener_get_error(tok);
        /* The whole line must be one value: trailing bytes are an error. */
        bool trailing = req && json_tokener_get_parse_end(tok) < len;
        json_tokener_free(tok);
        if (!req || jerr != json_tokener_success || trailing) {
                json_object_put(req);
                *ret_error_message = g_strdup_printf(
                        "Parse error: %s", trailing ? "trailing characters after the request"
                                           : jerr == json_tokener_continue ? "unexpected end of the request"
                                                                           : json_tokener_error_desc(jerr));
                return CTRMON_CONTROL_ERROR_PARSE;
        }

        int code = 0;
        const char *message = NULL;
        json_object *v = NULL;
        if (!json_object_is_type(req, json_type_object)) {
                code = CTRMON_CONTROL_ERROR_INVALID_REQUEST;
                message = "Invalid request: not a JSON object";
                goto out;
        }
        if (json_object_object_get_ex(req, "id", &v)) {
                if (v && !json_object_is_type(v, json_type_string) && !json_object_is_type(v, json_type_int) &&
                    !json_object_is_type(v, json_type_double)) {
                        code = CTRMON_CONTROL_ERROR_INVALID_REQUEST;
                        message = "Invalid request: \"id\" must be a string, a number or null";
                        goto out;
                }
                *ret_id = json_object_get(v);
                *ret_has_id = true;
        }
        if (!json_object_object_get_ex(req, "jsonrpc", &v) || !json_object_is_type(v, json_type_string) ||
            strcmp(json_object_get_string(v), "2.0") != 0) {
                code = CTRMON_CONTROL_ERROR_INVALID_REQUEST;
                message = "Invalid request: \"jsonrpc\" must be \"2.0\"";
                goto out;
        }
        if (!json_object_object_get_ex(req, "method", &v) || !json_object_is_type(v, json_type_string)) {
                code = CTRMON_CONTROL_ERROR_INVALID_REQUEST;
                message = "Invalid request: \"method\" must be a string";
                goto out;
        }
        const char *method = json_object_get_string(v);
        json_object *params = NULL;
        if (json_object_object_get_ex(req, "params", &v) && v) {
                if (!json_object_is_type(v, json_type_object)) {
                        code = CTRMON_CONTROL_ERROR_INVALID_PARAMS;
                        message = "Invalid params: \"params\" must be an object";
                        goto out;
                }
                params = json_object_get(v);
        } else {
                params = json_object_new_object();
        }
        *ret_method = g_strdup(method);
        *ret_params = params;
out:
        if (code) {
                *ret_error_message = g_strdup(message);
        }
        json_object_put(req);
        return code;
}

/* ------------------------------------------------------------ output */

/* The connection's output queue ran empty or the peer went away. */
static void control_conn_output_cb(OutQueue *q, OutQueueEvent event, int error, void *user_data)
{
        ControlConn *c = user_data;
        if (event == OUT_QUEUE_FAILED || c->closing)
                control_conn_close(c);
}

static void control_conn_send(ControlConn *c, json_object *msg)
{
        if (!c || c->fd < 0)
                return;
        size_t len = 0;
        const char *text = json_object_to_json_string_length(
                msg, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE, &len);
        if (out_queue_pending(c->out) + len + 1 > CONTROL_OUTPUT_MAX) {
                log_warning("Control client (pid %d) does not read its answers: disconnecting it", (int) c->pid);
                control_conn_close(c);
                return;
        }
        struct iovec line[2] = { { (void *) text, len }, { (void *) "\n", 1 } };
        out_queue_append_iov(c->out, line, 2); /* may close c */
}

static json_object *control_envelope(json_object *id)
{
        json_object *msg = json_object_new_object();
        json_object_object_add(msg, "jsonrpc", json_object_new_string("2.0"));
        json_object_object_add(msg, "id", id ? json_object_get(id) : NULL);
        return msg;
}

static void control_send_error(ControlConn *c, json_object *id, int code, const char *message)
{
        json_object *msg = control_envelope(id);
        json_object *err = json_object_new_object();
        json_object_object_add(err, "code", json_object_new_int(code));
        json_object_object_add(err, "message", json_object_new_string(message));
        json_object_object_add(msg, "error", err);
        c->api->stats.errors++;
        control_conn_send(c, msg);
        json_object_put(msg);
}

/* ------------------------------------------------------------ calls */

ControlCall *control_call_ref(ControlCall *call)
{
        call->refs++;
        return call;
}

static void control_call_detach(ControlCall *call)
{
        if (call->conn) {
                call->conn->calls = g_list_remove(call->conn->calls, call);
                call->conn = NULL;
        }
}

void control_call_unref(ControlCall *call)
{
        if (!call || --call->refs > 0)
                return;
        if (!call->answered)
                control_call_error(call, CTRMON_CONTROL_ERROR_INTERNAL, "Internal error: the method gave no answer");
        control_call_detach(call);
        json_object_put(call->id);
        json_object_put(call->params);
        g_free(call);
}

bool control_call_connected(const ControlCall *call)
{
        return call->conn && call->conn->fd >= 0;
}

uid_t control_call_peer_uid(const ControlCall *call)
{
        return call->conn ? call->conn->uid : (uid_t) -1;
}

void control_call_subscribe(ControlCall *call)
{
        if (call->conn)
                call->conn->subscribed = true;
}

void control_call_reply(ControlCall *call, json_object *result)
{
        if (call->answered) {
                json_object_put(result);
                return;
        }
        call->answered = true;
        if (call->has_id && call->conn) {
                json_object *msg = control_envelope(call->id);
                json_object_object_add(msg, "result", result ? result : json_object_new_object());
                control_conn_send(call->conn, msg);
                json_object_put(msg);
        } else {
                json_object_put(result);
        }
        /* The call stays on its connection until its last reference goes:
         * an answered call may still send notifications (logs follow) or
         * take the connection over (attach). */
}

void control_call_error(ControlCall *call, int code, const char *format, ...)
{
        if (call->answered)
                return;
        call->answered = true;
        if (call->has_id && call->conn) {
                va_list ap;
                va_start(ap, format);
                g_autofree char *message = g_strdup_vprintf(format, ap);
                va_end(ap);
                control_send_error(call->conn, call->id, code, message);
        }
}

void control_call_notify(ControlCall *call, const char *method, json_object *params)
{
        if (!call->conn || call->conn->fd < 0) {
                json_object_put(params);
                return;
        }
        json_object *msg = json_object_new_object();
        json_object_object_add(msg, "jsonrpc", json_object_new_string("2.0"));
        json_object_object_add(msg, "method", json_object_new_string(method));
        json_object_object_add(msg, "params", params ? params : json_object_new_object());
        control_conn_send(call->conn, msg);
        json_object_put(msg);
}

int control_call_take_connection(ControlCall *call, GByteArray **ret_pending, GError **error)
{
        ControlConn *c = call->conn;
        if (!c || c->fd < 0)
                return ctrmon_set_error(error, ENOTCONN, "The client has gone away");

        /* The answer must precede the stream: write it out now, waiting a
         * little if the socket is full (it was just read from, so it is
         * not). */
        int r = out_queue_flush_until(c->out, g_get_monotonic_time() + CONTROL_HANDOVER_FLUSH_USEC);
        if (r == -EAGAIN)
                return ctrmon_set_error(error, EAGAIN, "The client does not read its answer");
        if (r < 0)
                return ctrmon_set_error_errno(error, -r, "Failed to answer the client");

        int fd = TAKE_FD(c->fd);
        *ret_pending = c->in;
        c->in = g_byte_array_new();
        control_conn_close(c);
        return fd;
}

/* ------------------------------------------------------------ input */

static const ControlMethod *control_find_method(ControlApi *api, const char *name)
{
        for (const ControlMethod *m = api->methods; m && m->name; m++)
                if (strcmp(m->name, name) == 0)
                        return m;
        return NULL;
}

static void control_conn_handle_line(ControlConn *c, const char *line, size_t len)
{
        ControlApi *api = c->api;
        g_autofree char *method = NULL;
        g_autofree char *message = NULL;
        json_object *params = NULL, *id = NULL;
        bool has_id = false;

        api->stats.requests++;
        int code = control_parse_request(line, len, &method, &params, &id, &has_id, &message);
        if (code < 0) {
                /* Without a readable id the answer carries "id": null. */
                control_send_error(c, id, code, message);
                json_object_put(id);
                return;
        }
        const ControlMethod *m = control_find_method(api, method);
        if (!m) {
                if (has_id) {
                        g_autofree char *text = g_strdup_printf("Method not found: %s", method);
                        control_send_error(c, id, CTRMON_CONTROL_ERROR_METHOD_NOT_FOUND, text);
                }
                json_object_put(id);
                json_object_put(params);
                return;
        }

        ControlCall *call = g_new0(ControlCall, 1);
        call->refs = 1;
        call->conn = c;
        call->id = id;
        call->has_id = has_id;
        call->params = params;
        c->calls = g_list_prepend(c->calls, call);
        m->fn(call, params, api->user_data);
        control_call_unref(call);
}

static gboolean control_conn_readable_cb(int fd, GIOCondition condition, gpointer user_data)
{
        ControlConn *c = user_data;
        guint8 buf[CONTROL_READ_CHUNK];
        ssize_t n = recv(c->fd, buf, sizeof buf, MSG_DONTWAIT);
        if (n < 0 && (errno == EAGAIN || errno == EINTR))
                return G_SOURCE_CONTINUE;
        if (n > 0 && c->discard_left > 0) {
                /* Closing with unread input would reset the connection and
                 * could destroy the answer before the client reads it. */
                c->discard_left = (size_t) n < c->discard_left ? c->discard_left - (size_t) n : 0;
                if (c->discard_left > 0)
                        return G_SOURCE_CONTINUE;
                n = 0;
        }
        if (n <= 0) {
                /* Hang-up: a half-written request is dropped. Deferred
                 * calls stay answerable to nobody. */
                c->in_id = 0;
                control_conn_close(c);
                return G_SOURCE_REMOVE;
        }

        /* Lines are cut out of c->in one at a time, so that while a method
         * runs c->in holds exactly the bytes after its request line: what
         * control_call_take_connection() hands over. */
        size_t scan_from = c->in->len;
        g_byte_array_append(c->in, buf, (guint) n);
        for (;;) {
                guint8 *nl = memchr(c->in->data + scan_from, '\n', c->in->len - scan_from);
                if (!nl)
                        break;
                size_t line_len = (size_t) (nl - c->in->data);
                g_autofree char *line = g_strndup((const char *) c->in->data, line_len);
                g_byte_array_remove_range(c->in, 0, (guint) (line_len + 1));
                control_conn_handle_line(c, line, line_len);
                if (!c->api)
                        return G_SOURCE_REMOVE; /* closed or taken over meanwhile */
                scan_from = 0;
        }
        if (c->in->len > CTRMON_CONTROL_MAX_REQUEST) {
                g_autofree char *text = g_strdup_printf("Request too large: over %d bytes",
                                                        CTRMON_CONTROL_MAX_REQUEST);
                control_send_error(c, NULL, CTRMON_CONTROL_ERROR_TOO_LARGE, text);
                g_byte_array_set_size(c->in, 0);
                /* Answer, then end the conversation: the client sees EOF
                 * after the error. What it still sends is read and thrown
                 * away (up to a bound) so the answer survives. */
                out_queue_flush(c->out); /* may close c */
                if (c->api) {
                        shutdown(c->fd, SHUT_WR);
                        c->discard_left = CONTROL_DISCARD_MAX;
                }
        }
        return G_SOURCE_CONTINUE;
}

static gboolean control_conn_free_cb(gpointer user_data)
{
        ControlConn *c = user_data;
        if (c->in)
                g_byte_array_unref(c->in);
        g_free(c);
        return G_SOURCE_REMOVE;
}

/* Close now, free on the next main-loop turn: a callback further up the
 * stack (the one that read the request) may still look at `c`; it checks
 * c->api first. */
static void control_conn_close(ControlConn *c)
{
        if (!c || !c->api)
                return;
        ControlApi *api = c->api;
        if (c->in_id)
                g_source_remove(c->in_id);
        c->in_id = 0;
        g_clear_pointer(&c->out, out_queue_free);
        ctrmon_close_fd(&c->fd);
        while (c->calls)
                control_call_detach(c->calls->data);
        api->conns = g_list_remove(api->conns, c);
        api->stats.connections = g_list_length(api->conns);
        c->api = NULL;
        g_idle_add(control_conn_free_cb, c);
}

static gboolean control_accept_cb(int fd, GIOCondition condition, gpointer user_data)
{
        ControlApi *api = user_data;
        for (;;) {
                int cfd = accept4(api->fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
                if (cfd < 0)
                        break;
                struct ucred cred = { 0 };
                socklen_t len = sizeof cred;
                if (getsockopt(cfd, SOL_SOCKET, SO_PEERCRED, &cred, &len) < 0) {
                        close(cfd);
                        continue;
                }
                api->stats.connections_total++;
                if (cred.uid != 0 && cred.uid != api->owner_uid) {
                        api->stats.refused++;
                        log_warning("Control API: refused uid %u (pid %d): only uid %u and root may connect",
                                    (unsigned) cred.uid, (int) cred.pid, (unsigned) api->owner_uid);
                        g_autofree char *line = g_strdup_printf(
                                "{\"jsonrpc\":\"2.0\",\"id\":null,\"error\":{\"code\":%d,\"message\":"
                                "\"Access denied: uid %u may not control this monitor\"}}\n",
                                CTRMON_CONTROL_ERROR_ACCESS_DENIED, (unsigned) cred.uid);
                        ssize_t ignored = send(cfd, line, strlen(line), MSG_NOSIGNAL | MSG_DONTWAIT);
                        (void) ignored;
                        close(cfd);
                        continue;
                }
                ControlConn *c = g_new0(ControlConn, 1);
                c->api = api;
                c->fd = cfd;
                c->uid = cred.uid;
                c->pid = cred.pid;
                c->in = g_byte_array_new();
                c->out = out_queue_new(cfd, OUT_QUEUE_SOCKET, control_conn_output_cb, c);
                c->in_id = g_unix_fd_add(cfd, G_IO_IN | G_IO_HUP | G_IO_ERR, control_conn_readable_cb, c);
                api->conns = g_list_prepend(api->conns, c);
                api->stats.connections = g_list_length(api->conns);
        }
        return G_SOURCE_CONTINUE;
}

/* ------------------------------------------------------------ the API */

int control_api_new(const ControlApiConfig *config, ControlApi **ret_api, GError **error)
{
        g_autofree char *dir = g_path_get_dirname(config->path);
        g_autofree char *name = g_path_get_basename(config->path);

        /* Bind through the directory's /proc/self/fd entry, so a bundle path
         * longer than sun_path does not matter. */
        _cleanup_close_ int dfd = open(dir, O_PATH | O_DIRECTORY | O_CLOEXEC);
        if (dfd < 0)
                return ctrmon_set_error_errno(error, errno, "Failed to open %s for the control socket", dir);
        struct sockaddr_un addr = { .sun_family = AF_UNIX };
        int n = g_snprintf(addr.sun_path, sizeof addr.sun_path, "/proc/self/fd/%d/%s", dfd, name);
        if (n < 0 || (size_t) n >= sizeof addr.sun_path)
                return ctrmon_set_error(error, ENAMETOOLONG, "Control socket name %s is too long", name);

        _cleanup_close_ int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (fd < 0)
                return ctrmon_set_error_errno(error, errno, "Failed to create the control socket");
        unlinkat(dfd, name, 0);
        /* 0600 from birth: no window in which others could connect. */
        mode_t old = umask(0177);
        int r = bind(fd, (struct sockaddr *) &addr, sizeof addr);
        int e = errno;
        umask(old);
        if (r < 0)
                return ctrmon_set_error_errno(error, e, "Failed to bind the control socket %s", config->path);
        if (listen(fd, 64) < 0) {
                e = errno;
                unlinkat(dfd, name, 0);
                return ctrmon_set_error_errno(error, e, "Failed to listen on %s", config->path);
        }

        ControlApi *api = g_new0(ControlApi, 1);
        api->fd = TAKE_FD(fd);
        api->path = g_strdup(config->path);
        api->methods = config->methods;
        api->user_data = config->user_data;
        api->owner_uid = config->owner_uid;
        api->source_id = g_unix_fd_add(api->fd, G_IO_IN, control_accept_cb, api);
        *ret_api = api;
        return 0;
}

void control_api_free(ControlApi *api)
{
        if (!api)
                return;
        if (api->source_id)
                g_source_remove(api->source_id);
        ctrmon_close_fd(&api->fd);
        while (api->conns) {
                ControlConn *c = api->conns->data;
                control_conn_close(c);
        }
        if (api->path)
                unlink(api->path);
        g_free(api->path);
        g_free(api);
}

static char *control_now_rfc3339(void)
{
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        struct tm tm;
        gmtime_r(&ts.tv_sec, &tm);
        char buf[64];
        strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%S", &tm);
        return g_strdup_printf("%s.%09ldZ", buf, ts.tv_nsec);
}

void control_api_emit_event(ControlApi *api, const char *type, json_object *fields)
{
        if (!api) {
                json_object_put(fields);
                return;
        }
        json_object *params = fields ? fields : json_object_new_object();
        g_autofree char *now = control_now_rfc3339();
        json_object_object_add(params, "type", json_object_new_string(type));
        json_object_object_add(params, "time", json_object_new_string(now));
        json_object *msg = json_object_new_object();
        json_object_object_add(msg, "jsonrpc", json_object_new_string("2.0"));
        json_object_object_add(msg, "method", json_object_new_string(CTRMON_NOTIFICATION_EVENT));
        json_object_object_add(msg, "params", params);
        for (GList *l = api->conns; l;) {
                ControlConn *c = l->data;
                l = l->next; /* sending may close c */
                if (c->subscribed)
                        control_conn_send(c, msg);
        }
        json_object_put(msg);
}

void control_api_flush(ControlApi *api, int timeout_ms)
{
        if (!api)
                return;
        gint64 deadline = g_get_monotonic_time() + (gint64) timeout_ms * 1000;
        for (;;) {
                bool pending = false;
                for (GList *l = api->conns; l; l = l->next)
                        if (out_queue_pending(((ControlConn *) l->data)->out) > 0)
                                pending = true;
                if (!pending || g_get_monotonic_time() >= deadline)
                        return;
                g_main_context_iteration(NULL, FALSE);
                g_usleep(1000);
        }
}

void control_api_get_stats(const ControlApi *api, ControlApiStats *ret_stats)
{
        *ret_stats = api->stats;
}
