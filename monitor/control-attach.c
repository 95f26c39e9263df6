/* "attach" over the control API: after the answer {"framing":
 * "ctrmon-attach-v1"} the connection leaves JSON and carries frames both
 * ways (include/ctrmon/control.h has the constants):
 *
 *     type (1 byte) | length (4 bytes, big-endian) | payload (length bytes)
 *
 *     1 STDIN        client -> monitor  bytes for the container's stdin
 *                                       (dropped without -i/-t)
 *     2 STDOUT       monitor -> client  container output, as read
 *     3 STDERR       monitor -> client
 *     4 RESIZE       client -> monitor  rows, cols: two big-endian uint16
 *                                       (ignored without -t)
 *     5 CLOSE_STDIN  client -> monitor  empty; closes a stdin pipe (-i)
 *     6 EXIT         monitor -> client  big-endian int32 exit status (-1:
 *                                       timeout); then the monitor closes
 *     7 DROPPED      monitor -> client  why a "lossy" client gets no more
 *                                       output; then the monitor closes
 *
 * Detach keys (params.detach_keys, default "ctrl-p,ctrl-q", "" disables)
 * in the STDIN bytes end the session: nothing more is forwarded or sent,
 * the connection is closed, the container runs on. Output reaches this
 * file through the stdio relay's listeners; each client has a bounded
 * queue (CTRMON_ATTACH_QUEUE_MAX). A full one holds the relay (no output
 * is read until it has drained: lossless, the default), or, with
 * {"lossy": true}, gets a DROPPED frame and is closed; either way it never
 * blocks the monitor. While the container's stdin queue is full, clients'
 * input is not read. A client's hang-up does not close the container's
 * stdin (CLOSE_STDIN does). */
#include "control-attach.h"

#include "control-methods.h"
#include "diag.h"
#include "out-queue.h"
#include "ctrmon/fd-util.h"

#include <errno.h>
#include <glib-unix.h>
#include <poll.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define CONTROL_ATTACH_DEFAULT_KEYS "ctrl-p,ctrl-q"
#define CONTROL_ATTACH_READ_CHUNK (64 * 1024)
/* How long queued output and the exit frame may take to leave at exit. */
#define CONTROL_ATTACH_EXIT_FLUSH_MS 500

/* ------------------------------------------------------------ detach keys */

GByteArray *control_attach_parse_detach_keys(const char *spec)
{
        GByteArray *keys = g_byte_array_new();
        if (!*spec)
                return keys;
        g_auto(GStrv) parts = g_strsplit(spec, ",", -1);
        for (char **p = parts; *p; p++) {
                const char *k = *p;
                guint8 b;
                if (strlen(k) == 1) {
                        b = (guint8) k[0];
                } else if (strlen(k) == 6 && g_ascii_strncasecmp(k, "ctrl-", 5) == 0) {
                        /* As Docker: ctrl-a..ctrl-z are 1..26, ctrl-@ 0,
                         * ctrl-[ 27, ctrl-\ 28, ctrl-] 29, ctrl-^ 30,
                         * ctrl-_ 31. */
                        char c = g_ascii_tolower(k[5]);
                        if (c >= 'a' && c <= 'z')
                                b = (guint8) (c - 'a' + 1);
                        else if (c == '@' || c == '[' || c == '\\' || c == ']' || c == '^' || c == '_')
                                b = (guint8) (c == '@' ? 0 : c - '[' + 27);
                        else
                                goto fail;
                } else {
                        goto fail;
                }
                g_byte_array_append(keys, &b, 1);
        }
        return keys;
fail:
        g_byte_array_unref(keys);
        return NULL;
}

bool control_attach_detach_scan(ControlDetachMatcher *m, const guint8 *in, size_t len, GByteArray *out)
{
        for (size_t i = 0; i < len; i++) {
                guint8 b = in[i];
                if (m->n_keys == 0) {
                        g_byte_array_append(out, in + i, (guint) (len - i));
                        return false;
                }
                if (b == m->keys[m->matched]) {
                        if (++m->matched == m->n_keys)
                                return true;
                        continue;
                }
                if (m->matched > 0) {
                        /* Not the sequence here. The held bytes and this
                         * one may still end in a beginning of it (keys
                         * "a,a,b", input "aaab"): keep the longest such
                         * tail, let out what comes before it. */
                        size_t held = m->matched + 1, k;
                        for (k = m->matched; k > 0; k--)
                                if (m->keys[k - 1] == b && memcmp(m->keys + held - k, m->keys, k - 1) == 0)
                                        break;
                        if (k > 0) {
                                g_byte_array_append(out, m->keys, (guint) (held - k));
                                m->matched = k;
                                continue;
                        }
                        g_byte_array_append(out, m->keys, (guint) m->matched);
                        m->matched = 0;
                }
                g_byte_array_append(out, &b, 1);
        }
        return false;
}

/* ------------------------------------------------------------ a client */

typedef struct {
        CtrmonContext *ctx;
        int fd;
        guint in_id;
        guint listener_id;
        guint input_watch_id;
        GByteArray *in;         /* received, not yet a whole frame */
        OutQueue *out;          /* frames not yet sent */
        GByteArray *keys;
        ControlDetachMatcher matcher;
        bool lossy;             /* cut off when full, instead of holding */
        bool holding;           /* holds the relay's output: queue full */
        bool input_paused;      /* the container's stdin is full */
        /* The last frame (EXIT, DROPPED) is queued: close once it is sent. */
        bool closing;
        const char *closing_why;
        bool disconnect_reported; /* the event went out at the cut-off */
} AttachStream;

static gboolean control_attach_readable_cb(int fd, GIOCondition condition, gpointer user_data);

static void control_attach_release(AttachStream *s)
{
        if (s->holding && s->ctx->relay)
                stdio_relay_release_output(s->ctx->relay);
        s->holding = false;
}

static void control_attach_stream_free(AttachStream *s)
{
        if (!s)
                return;
        if (s->in_id)
                g_source_remove(s->in_id);
        control_attach_release(s);
        if (s->input_watch_id && s->ctx->relay)
                stdio_relay_unwatch_input(s->ctx->relay, s->input_watch_id);
        if (s->listener_id && s->ctx->relay)
                stdio_relay_remove_listener(s->ctx->relay, s->listener_id);
        ctrmon_close_fd(&s->fd);
        g_byte_array_unref(s->in);
        out_queue_free(s->out);
        if (s->keys)
                g_byte_array_unref(s->keys);
        g_free(s);
}

static void control_attach_stream_close(AttachStream *s, const char *why)
{
        log_debug("Control attach client closed: %s", why);
        g_ptr_array_remove(s->ctx->attach_clients, s);
        if (!s->disconnect_reported) {
                json_object *f = json_object_new_object();
                json_object_object_add(f, "api", json_object_new_boolean(true));
                json_object_object_add(f, "reason", json_object_new_string(why));
                control_emit(s->ctx, CTRMON_EVENT_ATTACH_DISCONNECTED, f);
        }
        control_attach_stream_free(s);
}

/* Everything queued is in the socket: a holding client lets output go
 * on, a closing one is done. */
static void control_attach_output_sent_cb(OutQueue *q, OutQueueEvent event, int error, void *user_data)
{
        AttachStream *s = user_data;
        if (event == OUT_QUEUE_FAILED) {
                control_attach_stream_close(s, "the client went away");
                return;
        }
        control_attach_release(s);
        if (s->closing)
                control_attach_stream_close(s, s->closing_why);
}

/* Queue one frame; with `send_now`, also write what the socket takes now,
 * which may close (and free) `s`. */
static void control_attach_queue(AttachStream *s, guint8 type, const void *payload, size_t len, bool send_now)
{
        guint8 header[CTRMON_ATTACH_HEADER_SIZE] = {
                type, (guint8) (len >> 24), (guint8) (len >> 16), (guint8) (len >> 8), (guint8) len,
        };
        struct iovec frame[2] = { { header, sizeof header }, { (void *) payload, len } };
        if (send_now)
                out_queue_append_iov(s->out, frame, 2);
        else
                out_queue_push_iov(s->out, frame, 2);
}

/* Queue the last frame, stop forwarding anything, and close once it is
 * sent (may close and free `s` at once). */
static void control_attach_finish(AttachStream *s, guint8 type, const void *payload, size_t len, const char *why)
{
        if (s->listener_id && s->ctx->relay)
                stdio_relay_remove_listener(s->ctx->relay, s->listener_id);
        s->listener_id = 0;
        if (s->in_id)
                g_source_remove(s->in_id);
        s->in_id = 0;
        s->closing = true;
        s->closing_why = why;
        control_attach_queue(s, type, payload, len, true);
}

/* A "lossy" client that fell CTRMON_ATTACH_QUEUE_MAX behind: what is
 * queued still goes out (frames stay whole), then why, then EOF. */
static void control_attach_cut_off(AttachStream *s, size_t len)
{
        CtrmonContext *ctx = s->ctx;
        size_t queued = out_queue_pending(s->out);
        ctx->attach_lossy_dropped++;
        ctx->attach_lossy_bytes_dropped += len;
        log_warning("Control attach client (lossy) is %zu bytes behind: no more output for it", queued);
        json_object *f = json_object_new_object();
        json_object_object_add(f, "api", json_object_new_boolean(true));
        json_object_object_add(f, "reason", json_object_new_string("too far behind"));
        json_object_object_add(f, "bytes_queued", json_object_new_int64((int64_t) queued));
        control_emit(ctx, CTRMON_EVENT_ATTACH_DISCONNECTED, f);
        s->disconnect_reported = true;
        g_autofree char *why = g_strdup_printf("too far behind: %zu bytes unread, the output from here on "
                                               "is dropped for this lossy client", queued);
        control_attach_finish(s, CTRMON_ATTACH_FRAME_DROPPED, why, strlen(why), "too far behind");
}

static void control_attach_output_cb(CtrmonStream stream, const char *buf, size_t len, void *user_data)
{
        AttachStream *s = user_data;
        if (s->lossy && out_queue_pending(s->out) + CTRMON_ATTACH_HEADER_SIZE + len > CTRMON_ATTACH_QUEUE_MAX) {
                control_attach_cut_off(s, len);
                return;
        }
        control_attach_queue(s, stream == CTRMON_STREAM_STDERR ? CTRMON_ATTACH_FRAME_STDERR
                                                               : CTRMON_ATTACH_FRAME_STDOUT,
                             buf, len, false);
        /* Queued whole (the queue may pass the bound by this one chunk);
         * from here on no output is read until the client has drained. */
        if (!s->lossy && !s->holding && out_queue_pending(s->out) >= CTRMON_ATTACH_QUEUE_MAX) {
                s->holding = true;
                stdio_relay_hold_output(s->ctx->relay);
        }
        /* Last: writing may find the client gone and free `s`. */
        out_queue_flush(s->out);
}

static void control_attach_watch_in(AttachStream *s)
{
        if (!s->in_id && !s->closing && !s->input_paused)
                s->in_id = g_unix_fd_add(s->fd, G_IO_IN | G_IO_HUP | G_IO_ERR, control_attach_readable_cb, s);
}

/* The container's stdin queue is full: leave the client's input in its
 * socket until it has room. */
static void control_attach_input_room_cb(bool full, void *user_data)
{
        AttachStream *s = user_data;
        s->input_paused = full;
        if (full && s->in_id) {
                g_source_remove(s->in_id);
                s->in_id = 0;
        } else if (!full) {
                control_attach_watch_in(s);
        }
}

/* One frame from the client. Returns false if `s` was closed. */
static bool control_attach_frame(AttachStream *s, guint8 type, const guint8 *payload, size_t len)
{
        CtrmonContext *ctx = s->ctx;
        switch (type) {
        case CTRMON_ATTACH_FRAME_STDIN: {
                g_autoptr(GByteArray) pass = g_byte_array_new();
                bool detach = control_attach_detach_scan(&s->matcher, payload, len, pass);
                if (pass->len > 0 && (ctx->opts->stdin_open || ctx->opts->terminal))
                        stdio_relay_write_input(ctx->relay, (const char *) pass->data, pass->len);
                if (detach) {
                        control_attach_stream_close(s, "detached");
                        return false;
                }
                return true;
        }
        case CTRMON_ATTACH_FRAME_RESIZE:
                if (len == 4 && ctx->opts->terminal) {
                        int rows = payload[0] << 8 | payload[1];
                        int cols = payload[2] << 8 | payload[3];
                        g_autoptr(GError) error = NULL;
                        if (context_resize_terminal(ctx, rows, cols, &error) < 0)
                                log_warning("%s, ignoring", error->message);
                }
                return true;
        case CTRMON_ATTACH_FRAME_CLOSE_STDIN:
                /* A pty has no end-of-input to give: only a stdin pipe. */
                if (!ctx->opts->terminal && stdio_relay_has_input(ctx->relay)) {
                        stdio_relay_close_input(ctx->relay);
                        control_emit(ctx, CTRMON_EVENT_STDIN_CLOSED, NULL);
                }
                return true;
        default:
                return true; /* unknown: ignored, for later versions */
        }
}

/* Handle every whole frame in s->in. Returns false if `s` was closed. */
static bool control_attach_process_input(AttachStream *s)
{
        size_t pos = 0;
        while (s->in->len - pos >= CTRMON_ATTACH_HEADER_SIZE) {
                const guint8 *h = s->in->data + pos;
                size_t len = (size_t) h[1] << 24 | (size_t) h[2] << 16 | (size_t) h[3] << 8 | h[4];
                if (len > CTRMON_ATTACH_FRAME_MAX) {
                        control_attach_stream_close(s, "frame too large");
                        return false;
                }
                if (s->in->len - pos < CTRMON_ATTACH_HEADER_SIZE + len)
                        break;
                if (!control_attach_frame(s, h[0], h + CTRMON_ATTACH_HEADER_SIZE, len))
                        return false;
                pos += CTRMON_ATTACH_HEADER_SIZE + len;
        }
        g_byte_array_remove_range(s->in, 0, (guint) pos);
        return true;
}

static gboolean control_attach_readable_cb(int fd, GIOCondition condition, gpointer user_data)
{
        AttachStream *s = user_data;
        if (s->input_paused) {
                s->in_id = 0;
                return G_SOURCE_REMOVE; /* the room callback watches again */
        }
        guint8 buf[CONTROL_ATTACH_READ_CHUNK];
        ssize_t n = recv(s->fd, buf, sizeof buf, MSG_DONTWAIT);
        if (n < 0 && (errno == EAGAIN || errno == EINTR))
                return G_SOURCE_CONTINUE;
        if (n <= 0) {
                s->in_id = 0;
                control_attach_stream_close(s, "the client hung up");
                return G_SOURCE_REMOVE;
        }
        g_byte_array_append(s->in, buf, (guint) n);
        if (!control_attach_process_input(s))
                return G_SOURCE_REMOVE; /* closed: its source is gone */
        return G_SOURCE_CONTINUE;
}

/* ------------------------------------------------------------ the method */

void control_method_attach(ControlCall *call, json_object *params, void *user_data)
{
        CtrmonContext *ctx = user_data;
        const char *spec = CONTROL_ATTACH_DEFAULT_KEYS;
        json_object *v = NULL;
        if (json_object_object_get_ex(params, "detach_keys", &v) && v) {
                if (!json_object_is_type(v, json_type_string)) {
                        control_call_error(call, CTRMON_CONTROL_ERROR_INVALID_PARAMS,
                                           "Parameter \"detach_keys\" must be a string such as \"ctrl-p,ctrl-q\"");
                        return;
                }
                spec = json_object_get_string(v);
        }
        bool lossy = false;
        if (json_object_object_get_ex(params, "lossy", &v) && v) {
                if (!json_object_is_type(v, json_type_boolean)) {
                        control_call_error(call, CTRMON_CONTROL_ERROR_INVALID_PARAMS,
                                           "Parameter \"lossy\" must be true or false");
                        return;
                }
                lossy = json_object_get_boolean(v);
        }
        g_autoptr(GByteArray) keys = control_attach_parse_detach_keys(spec);
        if (!keys) {
                control_call_error(call, CTRMON_CONTROL_ERROR_INVALID_PARAMS,
                                   "Invalid detach keys \"%s\": use a comma-separated list of characters or ctrl-X",
                                   spec);
                return;
        }
        if (!ctx->relay || ctx->opts->log.passthrough) {
                control_call_error(call, CTRMON_CONTROL_ERROR_UNSUPPORTED,
                                   "Container %s has no relayed stdio (passthrough)", ctx->opts->cid);
                return;
        }
        if (ctx->container_exited || ctx->exited_usec) {
                control_call_error(call, CTRMON_CONTROL_ERROR_NOT_RUNNING, "Container %s is %s", ctx->opts->cid,
                                   control_container_state(ctx));
                return;
        }

        guint clients = ctx->attach_clients ? ctx->attach_clients->len : 0;
        if (clients >= CTRMON_CONTROL_MAX_ATTACH) {
                control_call_error(call, CTRMON_CONTROL_ERROR_LIMIT,
                                   "Too many attach clients: %u, the limit is %d", clients, CTRMON_CONTROL_MAX_ATTACH);
                return;
        }

        json_object *r = json_object_new_object();
        json_object_object_add(r, "framing", json_object_new_string(CTRMON_ATTACH_FRAMING));
        g_autoptr(GByteArray) pending = NULL;
        g_autoptr(GBytes) answer = NULL;
        g_autoptr(GError) error = NULL;
        int fd = control_call_take_connection(call, r, &pending, &answer, &error);
        if (fd < 0) {
                log_debug("Control attach: %s", error->message);
                control_call_error(call, CTRMON_CONTROL_ERROR_FAILED, "Attach refused: %s", error->message);
                return;
        }

        AttachStream *s = g_new0(AttachStream, 1);
        s->ctx = ctx;
        s->fd = fd;
        s->in = g_steal_pointer(&pending);
        s->out = out_queue_new(fd, OUT_QUEUE_SOCKET, control_attach_output_sent_cb, s);
        /* The answer goes first, from this queue: handed over unwritten, so
         * a client that does not read never stalls the monitor here. */
        gsize answer_len = 0;
        const void *answer_data = g_bytes_get_data(answer, &answer_len);
        struct iovec answer_iov = { (void *) answer_data, answer_len };
        out_queue_push_iov(s->out, &answer_iov, 1);
        s->keys = g_steal_pointer(&keys);
        s->matcher = (ControlDetachMatcher){ .keys = s->keys->data, .n_keys = s->keys->len };
        s->lossy = lossy;
        s->listener_id = stdio_relay_add_listener(ctx->relay, control_attach_output_cb, s);
        s->input_watch_id = stdio_relay_watch_input(ctx->relay, control_attach_input_room_cb, s);
        s->input_paused = stdio_relay_input_full(ctx->relay);
        control_attach_watch_in(s);
        if (!ctx->attach_clients)
                ctx->attach_clients = g_ptr_array_new();
        g_ptr_array_add(ctx->attach_clients, s);
        json_object *f = json_object_new_object();
        json_object_object_add(f, "api", json_object_new_boolean(true));
        json_object_object_add(f, "lossy", json_object_new_boolean(lossy));
        control_emit(ctx, CTRMON_EVENT_ATTACH_CONNECTED, f);
        /* Frames the client sent right behind its request; then write what
         * the socket takes now (may close s). */
        if (control_attach_process_input(s))
                out_queue_flush(s->out);
}

/* ------------------------------------------------------------ hooks */

/* The exit frame follows the last output. A lossless client gets it when
 * it has read the rest (the monitor waits in its loop for that:
 * control_attach_pending()); a lossy one gets a bounded moment now. */
void control_attach_container_exited(CtrmonContext *ctx, int status)
{
        gint64 deadline = g_get_monotonic_time() + CONTROL_ATTACH_EXIT_FLUSH_MS * 1000;
        guint32 u = (guint32) status;
        guint8 payload[4] = { (guint8) (u >> 24), (guint8) (u >> 16), (guint8) (u >> 8), (guint8) u };

        for (guint i = ctx->attach_clients ? ctx->attach_clients->len : 0; i > 0; i--) {
                AttachStream *s = g_ptr_array_index(ctx->attach_clients, i - 1);
                if (s->closing)
                        continue;
                if (!s->lossy) {
                        control_attach_finish(s, CTRMON_ATTACH_FRAME_EXIT, payload, sizeof payload,
                                              "the container exited"); /* may free s */
                        continue;
                }
                control_attach_queue(s, CTRMON_ATTACH_FRAME_EXIT, payload, sizeof payload, false);
                out_queue_flush_until(s->out, deadline);
                control_attach_stream_close(s, "the container exited");
        }
}

bool control_attach_pending(CtrmonContext *ctx)
{
        for (guint i = 0; ctx->attach_clients && i < ctx->attach_clients->len; i++) {
                AttachStream *s = g_ptr_array_index(ctx->attach_clients, i);
                if (!s->lossy && s->closing)
                        return true;
        }
        return false;
}

void control_attach_teardown(CtrmonContext *ctx)
{
        while (ctx->attach_clients && ctx->attach_clients->len > 0)
                control_attach_stream_close(g_ptr_array_index(ctx->attach_clients, 0), "the monitor exits");
}
