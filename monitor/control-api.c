/* The control API transport. It owns the listening socket and every
 * connection: non-blocking, one line per request, bounded input (the request
 * size limit), bounded output (a client that stops reading is dropped, it
 * never blocks the monitor) and a bounded number of connections (per uid, in
 * all, and never into the monitor's reserve of descriptors). It knows
 * nothing of containers: methods are looked up by name and get a ControlCall
 * to answer. Nothing here blocks the main loop, not even at the exit. */
#include "control-api.h"

#include "diag.h"
#include "out-queue.h"
#include "ctrmon/error.h"
#include "ctrmon/fd-util.h"

#include <fcntl.h>
#include <glib-unix.h>
#include <limits.h>
#include <stdarg.h>
#include <string.h>
#include <sys/file.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#define CONTROL_READ_CHUNK 65536
/* Input read and dropped after "request too large" before hanging up. */
#define CONTROL_DISCARD_MAX (64 * 1024 * 1024)
/* An answer bigger than CTRMON_CONTROL_OUTPUT_MAX is queued only for a
 * client that has (almost) caught up: at most this much unread before it. */
#define CONTROL_ANSWER_BACKLOG_MAX (1024 * 1024)
/* Connections taken per wake-up of the listening socket: the loop has other
 * work (the container's output) between batches. */
#define CONTROL_ACCEPT_BATCH 32
/* Requests handled per turn of one connection: a client that sends
 * thousands in one write waits for the rest to be handled in later turns
 * (its socket is not read meanwhile), the loop and other clients do not. */
#define CONTROL_REQUESTS_BATCH 32
/* The directory lock (see control_api_free): at start-up a competing
 * monitor may hold it for a moment; at exit we rather leave a stale socket
 * than wait (1 ms per try). */
#define CONTROL_LOCK_TRIES_SETUP 1000
#define CONTROL_LOCK_TRIES_EXIT 50
/* At most one warning about a connection limit in this many seconds. */
#define CONTROL_LIMIT_WARN_INTERVAL_USEC (10 * G_USEC_PER_SEC)

typedef struct ControlConn ControlConn;

struct ControlApi {
        int fd;
        int dir_fd;            /* the socket's directory: flock, fstatat, unlinkat */
        char *path;
        char *dir;
        char *name;
        dev_t sock_dev;        /* the socket file we bound */
        ino_t sock_ino;
        bool remove_dir;
        guint source_id;       /* the listening socket's watch; 0: paused */
        guint retry_id;        /* paused after EMFILE: try again then */
        const ControlMethod *methods;
        void *user_data;
        uid_t owner_uid;
        GList *conns;
        unsigned n_conns;
        guint64 next_conn_id;
        gint64 last_limit_warning;
        bool linger_started;   /* control_api_linger() */
        bool linger_expired;
        guint linger_id;
        ControlApiStats stats;
};

struct ControlConn {
        ControlApi *api;       /* NULL once closed */
        guint64 id;
        int fd;
        uid_t uid;
        pid_t pid;
        guint in_id;
        guint hup_id;          /* after read EOF: the peer's full hang-up */
        guint batch_id;        /* more request lines wait in `in`: next turn */
        GByteArray *in;
        size_t in_off;         /* `in` before this: requests already handled */
        size_t in_scanned;     /* `in` from in_off to this has no '\n' */
        bool in_grown;         /* `in` held more than a read: shrink it after */
        OutQueue *out;         /* NULL once closed */
        bool subscribed;
        /* The peer shut its write side (`nc -N`): no more requests, but it
         * still reads; closed once its calls are done and answers written. */
        bool read_eof;
        /* Answered "too large": the conversation is over. Our write side is
         * shut once `out` is written; input is read and dropped. */
        bool ending;
        bool shut_down;
        size_t discard_left;   /* > 0: draining input after "too large" */
        GList *calls;          /* ControlCall* still referenced (answered or not) */
};

struct ControlCall {
        int refs;
        ControlConn *conn;     /* NULL once the connection closed */
        json_object *id;       /* NULL: notification, no answer */
        bool has_id;
        bool answered;
        json_object *params;
        ControlCallGoneFn gone_fn;
        void *gone_data;
};

static void control_conn_close(ControlConn *c);
static bool control_conn_handle_lines(ControlConn *c);
static void control_api_resume_accept(ControlApi *api);

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

static bool control_conn_open(const ControlConn *c)
{
        return c && c->api && c->fd >= 0 && c->out;
}

/* A half-closed client is done once nothing it asked is outstanding and
 * every answer is written; one that was told "too large" once its answer
 * is written. */
static void control_conn_check_done(ControlConn *c)
{
        if (!control_conn_open(c) || !c->read_eof || out_queue_pending(c->out) > 0)
                return;
        if (!c->calls || c->ending)
                control_conn_close(c);
}

/* The connection's output queue ran empty or the peer went away. */
static void control_conn_output_cb(OutQueue *q, OutQueueEvent event, int error, void *user_data)
{
        ControlConn *c = user_data;
        if (event == OUT_QUEUE_FAILED) {
                control_conn_close(c);
                return;
        }
        if (c->ending && !c->shut_down) {
                /* The client sees EOF right after the error. */
                shutdown(c->fd, SHUT_WR);
                c->shut_down = true;
        }
        control_conn_check_done(c);
}

/* May `len` more bytes be queued? Notifications and errors only while the
 * unread output stays within CTRMON_CONTROL_OUTPUT_MAX; an answer also
 * beyond, up to CTRMON_CONTROL_ANSWER_MAX, when the client has caught up. */
static bool control_conn_fits(const ControlConn *c, size_t len, bool answer)
{
        size_t unread = out_queue_pending(c->out);
        if (unread + len <= CTRMON_CONTROL_OUTPUT_MAX)
                return true;
        return answer && unread <= CONTROL_ANSWER_BACKLOG_MAX && unread + len <= CTRMON_CONTROL_ANSWER_MAX;
}

static const char *control_message_text(json_object *msg, size_t *ret_len)
{
        return json_object_to_json_string_length(msg, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE,
                                                 ret_len);
}

static void control_conn_write(ControlConn *c, const char *text, size_t len)
{
        struct iovec line[2] = { { (void *) text, len }, { (void *) "\n", 1 } };
        out_queue_append_iov(c->out, line, 2); /* may close c */
}

static void control_conn_drop_nonreader(ControlConn *c)
{
        log_warning("Control client (pid %d) does not read its answers (%zu bytes unread): disconnecting it",
                    (int) c->pid, out_queue_pending(c->out));
        control_conn_close(c);
}

/* Notifications and errors. */
static void control_conn_send(ControlConn *c, json_object *msg)
{
        if (!control_conn_open(c))
                return;
        size_t len = 0;
        const char *text = control_message_text(msg, &len);
        if (!control_conn_fits(c, len + 1, false)) {
                control_conn_drop_nonreader(c);
                return;
        }
        control_conn_write(c, text, len);
}

static json_object *control_envelope(json_object *id)
{
        json_object *msg = json_object_new_object();
        json_object_object_add(msg, "jsonrpc", json_object_new_string("2.0"));
        json_object_object_add(msg, "id", id ? json_object_get(id) : NULL);
        return msg;
}

static json_object *control_error_message(json_object *id, int code, const char *message)
{
        json_object *msg = control_envelope(id);
        json_object *err = json_object_new_object();
        json_object_object_add(err, "code", json_object_new_int(code));
        json_object_object_add(err, "message", json_object_new_string(message));
        json_object_object_add(msg, "error", err);
        return msg;
}

static void control_send_error(ControlConn *c, json_object *id, int code, const char *message)
{
        if (!control_conn_open(c))
                return;
        json_object *msg = control_error_message(id, code, message);
        c->api->stats.errors++;
        control_conn_send(c, msg);
        json_object_put(msg);
}

/* A result. One that does not fit is replaced by an error saying why, so
 * the client hears something rather than EOF. */
static void control_conn_send_answer(ControlConn *c, json_object *id, json_object *msg)
{
        if (!control_conn_open(c))
                return;
        size_t len = 0;
        const char *text = control_message_text(msg, &len);
        if (control_conn_fits(c, len + 1, true)) {
                control_conn_write(c, text, len);
                return;
        }
        size_t unread = out_queue_pending(c->out);
        g_autofree char *why =
                len + 1 > CTRMON_CONTROL_ANSWER_MAX
                        ? g_strdup_printf("Answer too large: %zu bytes, over the limit of %d bytes", len + 1,
                                          CTRMON_CONTROL_ANSWER_MAX)
                        : g_strdup_printf("Answer of %zu bytes not sent: the client has %zu bytes of earlier "
                                          "output unread (an answer over %d bytes needs at most %d unread)",
                                          len + 1, unread, CTRMON_CONTROL_OUTPUT_MAX,
                                          CONTROL_ANSWER_BACKLOG_MAX);
        log_warning("Control client (pid %d): %s", (int) c->pid, why);
        control_send_error(c, id, CTRMON_CONTROL_ERROR_FAILED, why);
}

/* ------------------------------------------------------------ calls */

ControlCall *control_call_ref(ControlCall *call)
{
        call->refs++;
        return call;
}

static void control_call_detach(ControlCall *call)
{
        ControlConn *c = call->conn;
        if (!c)
                return;
        c->calls = g_list_remove(c->calls, call);
        call->conn = NULL;
        control_conn_check_done(c); /* may close c */
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
        return control_conn_open(call->conn);
}

uid_t control_call_peer_uid(const ControlCall *call)
{
        return call->conn ? call->conn->uid : (uid_t) -1;
}

size_t control_call_output_pending(const ControlCall *call)
{
        return control_conn_open(call->conn) ? out_queue_pending(call->conn->out) : 0;
}

guint64 control_call_connection_id(const ControlCall *call)
{
        return call->conn ? call->conn->id : 0;
}

void control_call_set_gone_fn(ControlCall *call, ControlCallGoneFn fn, void *user_data)
{
        call->gone_fn = fn;
        call->gone_data = fn ? user_data : NULL;
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
                control_conn_send_answer(call->conn, call->id, msg);
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
        if (!control_conn_open(call->conn)) {
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

int control_call_take_connection(ControlCall *call, json_object *result, GByteArray **ret_in, GBytes **ret_out,
                                 GError **error)
{
        ControlConn *c = call->conn;
        if (!control_conn_open(c)) {
                json_object_put(result);
                return ctrmon_set_error(error, ENOTCONN, "The client has gone away");
        }
        if (call->answered) {
                json_object_put(result);
                return ctrmon_set_error(error, EALREADY, "The call was answered already");
        }
        /* The answer must precede the stream. With nothing else unwritten
         * the new owner writes it first, from its own queue; with earlier
         * answers still queued here, handing over would need them too, and
         * a client that leaves answers unread has no business attaching. */
        size_t unread = out_queue_pending(c->out);
        if (unread > 0) {
                json_object_put(result);
                return ctrmon_set_error(error, EAGAIN, "The client has %zu bytes of earlier answers unread", unread);
        }
        GBytes *out = NULL;
        if (call->has_id) {
                json_object *msg = control_envelope(call->id);
                json_object_object_add(msg, "result", result ? result : json_object_new_object());
                size_t len = 0;
                const char *text = control_message_text(msg, &len);
                guint8 *line = g_malloc(len + 1);
                memcpy(line, text, len);
                line[len] = '\n';
                out = g_bytes_new_take(line, len + 1);
                json_object_put(msg);
        } else {
                json_object_put(result);
                out = g_bytes_new(NULL, 0);
        }
        call->answered = true;

        int fd = TAKE_FD(c->fd);
        GByteArray *rest = g_byte_array_sized_new((guint) (c->in->len - c->in_off));
        g_byte_array_append(rest, c->in->data + c->in_off, (guint) (c->in->len - c->in_off));
        *ret_in = rest;
        *ret_out = out;
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

static gboolean control_conn_hup_cb(int fd, GIOCondition condition, gpointer user_data)
{
        ControlConn *c = user_data;
        c->hup_id = 0;
        control_conn_close(c);
        return G_SOURCE_REMOVE;
}

/* recv() saw EOF. A client that only shut its write side (`echo ... | nc
 * -U -N`) still reads: it hears what it asked for, then we close. One that
 * is gone entirely (HUP: both directions shut) hears nothing. A
 * half-written request is dropped. */
static void control_conn_read_eof(ControlConn *c, GIOCondition condition)
{
        if ((condition & (G_IO_HUP | G_IO_ERR)) || c->discard_left > 0) {
                control_conn_close(c);
                return;
        }
        c->read_eof = true;
        g_byte_array_set_size(c->in, 0);
        c->in_off = c->in_scanned = 0;
        /* Not G_IO_IN: at EOF the socket stays readable for good. */
        c->hup_id = g_unix_fd_add(c->fd, G_IO_HUP | G_IO_ERR, control_conn_hup_cb, c);
        control_conn_check_done(c);
}

/* A request line over the limit: answer, then end the conversation (the
 * client sees EOF after the error). What it still sends is read and thrown
 * away (up to a bound) so the answer survives. */
static void control_conn_too_large(ControlConn *c)
{
        g_byte_array_unref(c->in);
        c->in = g_byte_array_new();
        c->in_off = c->in_scanned = 0;
        c->in_grown = false;
        c->discard_left = CONTROL_DISCARD_MAX;
        c->ending = true;
        g_autofree char *text = g_strdup_printf("Request too large: over %d bytes", CTRMON_CONTROL_MAX_REQUEST);
        /* A client that shut its read side (or hung up) fails this write:
         * the connection is then closed under us. */
        control_send_error(c, NULL, CTRMON_CONTROL_ERROR_TOO_LARGE, text);
        if (!control_conn_open(c))
                return;
        if (out_queue_pending(c->out) == 0 && !c->shut_down) {
                shutdown(c->fd, SHUT_WR);
                c->shut_down = true;
        }
}

static gboolean control_conn_readable_cb(int fd, GIOCondition condition, gpointer user_data)
{
        ControlConn *c = user_data;
        guint8 buf[CONTROL_READ_CHUNK];
        ssize_t n = recv(c->fd, buf, sizeof buf, MSG_DONTWAIT);
        if (n < 0 && (errno == EAGAIN || errno == EINTR))
                return G_SOURCE_CONTINUE;
        if (n < 0) {
                c->in_id = 0;
                control_conn_close(c);
                return G_SOURCE_REMOVE;
        }
        if (n == 0) {
                c->in_id = 0;
                control_conn_read_eof(c, condition);
                return G_SOURCE_REMOVE;
        }
        if (c->discard_left > 0) {
                /* Closing with unread input would reset the connection and
                 * could destroy the answer before the client reads it. */
                c->discard_left = (size_t) n < c->discard_left ? c->discard_left - (size_t) n : 0;
                if (c->discard_left > 0)
                        return G_SOURCE_CONTINUE;
                c->in_id = 0;
                control_conn_close(c);
                return G_SOURCE_REMOVE;
        }

        /* A line that cannot end within the limit is refused before its
         * bytes are kept: c->in never grows past the limit. */
        guint8 *first_nl = memchr(buf, '\n', (size_t) n);
        size_t line_end = first_nl ? (size_t) (first_nl - buf) : (size_t) n;
        if (c->in->len - c->in_off + line_end > CTRMON_CONTROL_MAX_REQUEST) {
                control_conn_too_large(c);
                return control_conn_open(c) ? G_SOURCE_CONTINUE : G_SOURCE_REMOVE;
        }
        g_byte_array_append(c->in, buf, (guint) n);
        if (c->in->len > CONTROL_READ_CHUNK)
                c->in_grown = true;
        if (!control_conn_handle_lines(c))
                return G_SOURCE_REMOVE; /* closed or taken over meanwhile */
        return c->in_id ? G_SOURCE_CONTINUE : G_SOURCE_REMOVE;
}

static gboolean control_conn_batch_cb(gpointer user_data)
{
        ControlConn *c = user_data;
        c->batch_id = 0;
        if (control_conn_handle_lines(c) && !c->batch_id && !c->in_id)
                c->in_id = g_unix_fd_add(c->fd, G_IO_IN | G_IO_HUP | G_IO_ERR, control_conn_readable_cb, c);
        return G_SOURCE_REMOVE;
}

/* Handle the complete request lines in c->in, at most
 * CONTROL_REQUESTS_BATCH of them: with more waiting, the socket is not
 * read (c->in_id removed: the caller's source returns G_SOURCE_REMOVE) and
 * the rest is handled in a later turn of the loop (c->batch_id). While a
 * method runs, c->in from c->in_off holds exactly the bytes after its
 * request line: what control_call_take_connection() hands over. Returns
 * false if the connection was closed or taken over meanwhile. */
static bool control_conn_handle_lines(ControlConn *c)
{
        for (unsigned handled = 0;; handled++) {
                guint8 *start = c->in->data + c->in_off;
                guint8 *nl = memchr(c->in->data + c->in_scanned, '\n', c->in->len - c->in_scanned);
                if (!nl) {
                        c->in_scanned = c->in->len;
                        break;
                }
                if (handled == CONTROL_REQUESTS_BATCH) {
                        c->in_scanned = (size_t) (nl - c->in->data);
                        c->in_id = 0; /* the caller removes it by its return */
                        c->batch_id = g_idle_add_full(G_PRIORITY_DEFAULT, control_conn_batch_cb, c, NULL);
                        return true;
                }
                size_t line_len = (size_t) (nl - start);
                g_autofree char *line = g_strndup((const char *) start, line_len);
                c->in_off += line_len + 1;
                c->in_scanned = c->in_off;
                control_conn_handle_line(c, line, line_len);
                if (!control_conn_open(c))
                        return false;
        }
        /* Every complete line is handled: drop them, keep the partial one. */
        g_byte_array_remove_range(c->in, 0, (guint) c->in_off);
        c->in_scanned -= c->in_off;
        c->in_off = 0;
        if (c->in->len > CTRMON_CONTROL_MAX_REQUEST) {
                control_conn_too_large(c);
                return control_conn_open(c);
        }
        /* A big request is done with: give its buffer back rather than
         * keep it for the connection's life. */
        if (c->in_grown && c->in->len <= CONTROL_READ_CHUNK) {
                GByteArray *small = g_byte_array_sized_new(c->in->len);
                g_byte_array_append(small, c->in->data, c->in->len);
                g_byte_array_unref(c->in);
                c->in = small;
                c->in_grown = false;
        }
        return true;
}

static gboolean control_conn_free_cb(gpointer user_data)
{
        g_free(user_data);
        return G_SOURCE_REMOVE;
}

/* Close now, free the struct on the next main-loop turn: a callback
 * further up the stack (the one that read the request) may still look at
 * `c`; it checks c->api first and touches nothing else then. Its buffers go
 * at once, and the struct at default priority, not idle: under a flood of
 * clients the loop is never idle, and closed connections (with their up
 * to 1 MiB of request) would pile up. The owners of calls still on it hear
 * that the client has gone (control_call_set_gone_fn). */
static void control_conn_close(ControlConn *c)
{
        if (!c || !c->api)
                return;
        ControlApi *api = c->api;
        c->api = NULL;
        if (c->in_id)
                g_source_remove(c->in_id);
        c->in_id = 0;
        if (c->hup_id)
                g_source_remove(c->hup_id);
        c->hup_id = 0;
        if (c->batch_id)
                g_source_remove(c->batch_id);
        c->batch_id = 0;
        g_clear_pointer(&c->out, out_queue_free);
        g_clear_pointer(&c->in, g_byte_array_unref);
        ctrmon_close_fd(&c->fd);
        api->conns = g_list_remove(api->conns, c);
        api->n_conns--;
        api->stats.connections = api->n_conns;
        while (c->calls) {
                ControlCall *call = c->calls->data;
                c->calls = g_list_delete_link(c->calls, c->calls);
                call->conn = NULL;
                ControlCallGoneFn fn = call->gone_fn;
                void *data = call->gone_data;
                call->gone_fn = NULL;
                if (fn)
                        fn(call, data); /* may free the call */
        }
        g_idle_add_full(G_PRIORITY_DEFAULT, control_conn_free_cb, c, NULL);
        control_api_resume_accept(api);
}

/* ------------------------------------------------------------ accepting */

static unsigned control_api_conns_of(const ControlApi *api, uid_t uid)
{
        unsigned n = 0;
        for (GList *l = api->conns; l; l = l->next)
                if (((ControlConn *) l->data)->uid == uid)
                        n++;
        return n;
}

/* Could no admitted peer be taken now? */
static bool control_api_full(const ControlApi *api)
{
        if (api->n_conns >= CTRMON_CONTROL_MAX_CONNECTIONS)
                return true;
        if (control_api_conns_of(api, 0) < CTRMON_CONTROL_MAX_CONNECTIONS_PER_UID)
                return false;
        return api->owner_uid == 0 ||
               control_api_conns_of(api, api->owner_uid) >= CTRMON_CONTROL_MAX_CONNECTIONS_PER_UID;
}

static gboolean control_accept_cb(int fd, GIOCondition condition, gpointer user_data);

static gboolean control_api_retry_cb(gpointer user_data)
{
        ControlApi *api = user_data;
        api->retry_id = 0;
        control_api_resume_accept(api);
        return G_SOURCE_REMOVE;
}

/* Stop watching the listening socket: new clients wait in the backlog.
 * With `retry`, look again after CTRMON_CONTROL_ACCEPT_RETRY_MS (a closing
 * connection resumes it earlier). */
static void control_api_pause_accept(ControlApi *api, bool retry)
{
        if (api->source_id) {
                g_source_remove(api->source_id);
                api->source_id = 0;
                api->stats.accept_pauses++;
        }
        if (retry && !api->retry_id)
                api->retry_id = g_timeout_add(CTRMON_CONTROL_ACCEPT_RETRY_MS, control_api_retry_cb, api);
}

static void control_api_resume_accept(ControlApi *api)
{
        if (api->fd < 0 || api->source_id || control_api_full(api))
                return;
        if (api->retry_id) {
                g_source_remove(api->retry_id);
                api->retry_id = 0;
        }
        api->source_id = g_unix_fd_add(api->fd, G_IO_IN, control_accept_cb, api);
}

static void control_api_warn_limit(ControlApi *api, const char *message)
{
        gint64 now = g_get_monotonic_time();
        if (api->last_limit_warning && now - api->last_limit_warning < CONTROL_LIMIT_WARN_INTERVAL_USEC) {
                log_debug("Control API: %s", message);
                return;
        }
        api->last_limit_warning = now;
        log_warning("Control API: %s", message);
}

/* One error line ("id": null) to a peer we will not serve, then close. It
 * is never waited for: a peer that does not take it loses it. What the
 * peer already sent is read first (a little, without waiting): closing
 * with unread input resets the connection, which can destroy the line. */
static void control_refuse(int cfd, int code, const char *message)
{
        json_object *msg = control_error_message(NULL, code, message);
        size_t len = 0;
        const char *text = control_message_text(msg, &len);
        struct iovec line[2] = { { (void *) text, len }, { (void *) "\n", 1 } };
        struct msghdr mh = { .msg_iov = line, .msg_iovlen = 2 };
        ssize_t ignored = sendmsg(cfd, &mh, MSG_NOSIGNAL | MSG_DONTWAIT);
        (void) ignored;
        json_object_put(msg);
        char drain[4096];
        for (int i = 0; i < 16 && recv(cfd, drain, sizeof drain, MSG_DONTWAIT) > 0; i++)
                ;
        close(cfd);
}

/* The lowest fd number we may take for a connection: beyond it fewer than
 * CTRMON_CONTROL_FD_RESERVE descriptors would be left (fd numbers are
 * allocated lowest first, so every lower one is in use). */
static int control_fd_ceiling(void)
{
        struct rlimit rl;
        if (getrlimit(RLIMIT_NOFILE, &rl) < 0 || rl.rlim_cur == RLIM_INFINITY || rl.rlim_cur > INT_MAX)
                return INT_MAX;
        return (int) rl.rlim_cur - CTRMON_CONTROL_FD_RESERVE;
}

static gboolean control_accept_cb(int fd, GIOCondition condition, gpointer user_data)
{
        ControlApi *api = user_data;
        guint self = api->source_id;
        int ceiling = control_fd_ceiling();
        for (int i = 0; i < CONTROL_ACCEPT_BATCH; i++) {
                if (control_api_full(api)) {
                        g_autofree char *text = g_strdup_printf(
                                "%u connections (limits: %d per uid, %d in all): accepting no more until one closes",
                                api->n_conns, CTRMON_CONTROL_MAX_CONNECTIONS_PER_UID, CTRMON_CONTROL_MAX_CONNECTIONS);
                        control_api_warn_limit(api, text);
                        control_api_pause_accept(api, false);
                        break;
                }
                int cfd = accept4(api->fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
                if (cfd < 0) {
                        if (errno == EAGAIN || errno == EWOULDBLOCK)
                                break;
                        if (errno == EINTR || errno == ECONNABORTED)
                                continue;
                        /* EMFILE, ENFILE, ENOBUFS, ENOMEM: the connection stays
                         * in the backlog and the socket readable, so trying
                         * again at once would spin. */
                        int e = errno;
                        g_autofree char *text = g_strdup_printf("cannot accept a connection (%s): pausing for %d ms",
                                                                g_strerror(e), CTRMON_CONTROL_ACCEPT_RETRY_MS);
                        control_api_warn_limit(api, text);
                        control_api_pause_accept(api, true);
                        break;
                }
                api->stats.connections_total++;
                if (cfd >= ceiling) {
                        api->stats.refused_limit++;
                        g_autofree char *text = g_strdup_printf(
                                "Too many open files: the monitor keeps %d descriptors for its own work",
                                CTRMON_CONTROL_FD_RESERVE);
                        control_refuse(cfd, CTRMON_CONTROL_ERROR_LIMIT, text);
                        control_api_warn_limit(api, text);
                        control_api_pause_accept(api, true);
                        break;
                }
                struct ucred cred = { 0 };
                socklen_t len = sizeof cred;
                if (getsockopt(cfd, SOL_SOCKET, SO_PEERCRED, &cred, &len) < 0) {
                        close(cfd);
                        continue;
                }
                if (cred.uid != 0 && cred.uid != api->owner_uid) {
                        api->stats.refused++;
                        log_warning("Control API: refused uid %u (pid %d): only uid %u and root may connect",
                                    (unsigned) cred.uid, (int) cred.pid, (unsigned) api->owner_uid);
                        g_autofree char *text = g_strdup_printf("Access denied: uid %u may not control this monitor",
                                                                (unsigned) cred.uid);
                        control_refuse(cfd, CTRMON_CONTROL_ERROR_ACCESS_DENIED, text);
                        continue;
                }
                if (control_api_conns_of(api, cred.uid) >= CTRMON_CONTROL_MAX_CONNECTIONS_PER_UID) {
                        api->stats.refused_limit++;
                        g_autofree char *text =
                                g_strdup_printf("Too many connections: uid %u has %d, the limit per uid",
                                                (unsigned) cred.uid, CTRMON_CONTROL_MAX_CONNECTIONS_PER_UID);
                        control_api_warn_limit(api, text);
                        control_refuse(cfd, CTRMON_CONTROL_ERROR_LIMIT, text);
                        continue;
                }
                ControlConn *c = g_new0(ControlConn, 1);
                c->api = api;
                c->id = ++api->next_conn_id;
                c->fd = cfd;
                c->uid = cred.uid;
                c->pid = cred.pid;
                c->in = g_byte_array_new();
                c->out = out_queue_new(cfd, OUT_QUEUE_SOCKET, control_conn_output_cb, c);
                c->in_id = g_unix_fd_add(cfd, G_IO_IN | G_IO_HUP | G_IO_ERR, control_conn_readable_cb, c);
                api->conns = g_list_prepend(api->conns, c);
                api->n_conns++;
                api->stats.connections = api->n_conns;
        }
        return self && api->source_id == self ? G_SOURCE_CONTINUE : G_SOURCE_REMOVE;
}

/* ------------------------------------------------------------ the API */

/* flock() on the socket's directory: creation (unlink + bind) and removal
 * (check + unlink) by different monitors on one bundle never interleave.
 * -EBADF, -EACCES etc. if this directory cannot be locked (we go on
 * without), -EWOULDBLOCK if someone holds it all along. */
static int control_lock_dir(int dfd, int tries)
{
        for (int i = 0;; i++) {
                if (flock(dfd, LOCK_EX | LOCK_NB) == 0)
                        return 0;
                if (errno != EWOULDBLOCK && errno != EINTR)
                        return -errno;
                if (i + 1 >= tries)
                        return -EWOULDBLOCK;
                g_usleep(1000);
        }
}

int control_api_new(const ControlApiConfig *config, ControlApi **ret_api, GError **error)
{
        g_autofree char *dir = g_path_get_dirname(config->path);
        g_autofree char *name = g_path_get_basename(config->path);

        /* O_RDONLY rather than O_PATH: flock() needs a real open. */
        _cleanup_close_ int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (dfd < 0 && errno == EACCES)
                dfd = open(dir, O_PATH | O_DIRECTORY | O_CLOEXEC);
        if (dfd < 0)
                return ctrmon_set_error_errno(error, errno, "Failed to open %s for the control socket", dir);
        int lr = control_lock_dir(dfd, CONTROL_LOCK_TRIES_SETUP);
        if (lr == -EWOULDBLOCK)
                log_warning("Control API: %s stays locked by another process, going on without the lock", dir);
        /* A predecessor's exit may have removed the directory after we
         * opened it: a socket cannot be made in it any more. */
        struct stat dst;
        if (fstat(dfd, &dst) == 0 && dst.st_nlink == 0)
                return ctrmon_set_error(error, ENOENT, "%s was removed meanwhile", dir);

        /* Bind through the directory's /proc/self/fd entry, so a bundle path
         * longer than sun_path does not matter. */
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
        /* What makes the file ours at the exit (fstat of the socket would
         * give the socket's inode, not the file's). */
        struct stat st;
        if (fstatat(dfd, name, &st, AT_SYMLINK_NOFOLLOW) < 0) {
                e = errno;
                return ctrmon_set_error_errno(error, e, "Failed to stat the control socket %s", config->path);
        }
        if (listen(fd, 64) < 0) {
                e = errno;
                unlinkat(dfd, name, 0);
                return ctrmon_set_error_errno(error, e, "Failed to listen on %s", config->path);
        }
        if (lr == 0)
                flock(dfd, LOCK_UN);

        ControlApi *api = g_new0(ControlApi, 1);
        api->fd = TAKE_FD(fd);
        api->dir_fd = TAKE_FD(dfd);
        api->path = g_strdup(config->path);
        api->dir = g_steal_pointer(&dir);
        api->name = g_steal_pointer(&name);
        api->sock_dev = st.st_dev;
        api->sock_ino = st.st_ino;
        api->remove_dir = config->remove_dir;
        api->methods = config->methods;
        api->user_data = config->user_data;
        api->owner_uid = config->owner_uid;
        api->source_id = g_unix_fd_add(api->fd, G_IO_IN, control_accept_cb, api);
        *ret_api = api;
        return 0;
}

/* Remove the socket file if it still is the one we bound. While our
 * socket is open its inode cannot be reused, so dev/ino identify it. */
static void control_api_remove_socket(ControlApi *api)
{
        if (api->dir_fd < 0)
                return;
        int lr = control_lock_dir(api->dir_fd, CONTROL_LOCK_TRIES_EXIT);
        if (lr == -EWOULDBLOCK) {
                log_warning("Control API: %s is locked by another monitor: leaving %s in place", api->dir, api->name);
                return;
        }
        struct stat st;
        if (fstatat(api->dir_fd, api->name, &st, AT_SYMLINK_NOFOLLOW) == 0) {
                if (st.st_dev == api->sock_dev && st.st_ino == api->sock_ino)
                        unlinkat(api->dir_fd, api->name, 0);
                else
                        log_debug("Control API: %s is no longer ours (a successor's?): leaving it", api->path);
        }
        if (api->remove_dir)
                rmdir(api->dir); /* only if empty: another monitor's socket may live there */
        if (lr == 0)
                flock(api->dir_fd, LOCK_UN);
}

void control_api_free(ControlApi *api)
{
        if (!api)
                return;
        if (api->source_id)
                g_source_remove(api->source_id);
        api->source_id = 0;
        if (api->retry_id)
                g_source_remove(api->retry_id);
        api->retry_id = 0;
        if (api->linger_id)
                g_source_remove(api->linger_id);
        api->linger_id = 0;
        /* Before closing the socket: see control_api_remove_socket(). */
        if (api->fd >= 0)
                control_api_remove_socket(api);
        ctrmon_close_fd(&api->fd);
        ctrmon_close_fd(&api->dir_fd);
        while (api->conns) {
                ControlConn *c = api->conns->data;
                control_conn_close(c);
        }
        g_free(api->path);
        g_free(api->dir);
        g_free(api->name);
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

static gboolean control_api_linger_cb(gpointer user_data)
{
        ControlApi *api = user_data;
        api->linger_id = 0;
        api->linger_expired = true; /* and the loop that waits wakes up */
        return G_SOURCE_REMOVE;
}

void control_api_linger(ControlApi *api, int timeout_ms)
{
        if (!api)
                return;
        if (api->linger_id)
                g_source_remove(api->linger_id);
        api->linger_started = true;
        api->linger_expired = timeout_ms <= 0;
        api->linger_id = timeout_ms > 0 ? g_timeout_add((guint) timeout_ms, control_api_linger_cb, api) : 0;
}

bool control_api_lingering(const ControlApi *api)
{
        return api && api->linger_started && !api->linger_expired;
}

bool control_api_pending(const ControlApi *api)
{
        if (!control_api_lingering(api))
                return false;
        for (GList *l = api->conns; l; l = l->next) {
                const ControlConn *c = l->data;
                if (control_conn_open(c) && out_queue_pending(c->out) > 0)
                        return true;
        }
        return false;
}

void control_api_get_stats(const ControlApi *api, ControlApiStats *ret_stats)
{
        *ret_stats = api->stats;
}
