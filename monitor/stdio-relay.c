/* The stdio relay, the monitor's hot path: one large read per wake-up, one
 * timestamp per chunk, the chunk handed to every sink and then to attach
 * clients. It never blocks: output fds and stdin are non-blocking, sinks and
 * attach clients do their own bounded buffering. It decides nothing about the
 * container's life; it reports EOF and counts. */
#include "stdio-relay.h"

#include "diag.h"
#include "ctrmon/error.h"
#include "ctrmon/fd-util.h"

#include <fcntl.h>
#include <glib-unix.h>
#include <string.h>
#include <unistd.h>

/* A pipe holds 64 KiB by default: reading that much at once empties it in one
 * call under load and keeps syscalls per byte low. */
#define STDIO_READ_MAX (64 * 1024)

typedef struct {
        int fd;
        CtrmonStream stream;
        guint source_id;
} StdioOutput;

typedef struct {
        guint id;              /* 0: removed during a dispatch, dropped after */
        StdioListenerFn fn;
        void *user_data;
} StdioListener;

struct StdioRelay {
        GPtrArray *sinks;
        AttachServer *attach;
        StdioOutput out[2];
        unsigned outputs_open;

        int stdin_fd;
        guint stdin_source_id;
        GByteArray *stdin_pending;
        bool stdin_close_requested;

        GArray *listeners;     /* StdioListener; NULL until the first one */
        guint next_listener_id;
        bool dispatching;

        StdioStats stats;
        /* Not zeroed and not inside the (zeroed) struct: pages nobody
         * writes are never backed, so a quiet container costs no 64 KiB. */
        char *buf;
};

static int stdio_pipe_pair(int *ret_read, int *ret_write, GError **error)
{
        int fds[2];
        if (pipe2(fds, O_CLOEXEC) < 0)
                return ctrmon_set_error_errno(error, errno, "Failed to create a pipe");
        *ret_read = fds[0];
        *ret_write = fds[1];
        return 0;
}

static int stdio_set_nonblock(int fd)
{
        int flags = fcntl(fd, F_GETFL);
        if (flags < 0 || fcntl(fd, F_SETFL, flags | O_NONBLOCK) < 0)
                return -errno;
        return 0;
}

int stdio_pipes_create(StdioPipes *ret, bool stdin_open, bool terminal, bool passthrough,
                       int dev_null_fd, GError **error)
{
        StdioPipes p = { -1, -1, -1, -1, -1, -1 };
        int r;

        if (passthrough) {
                *ret = p;
                return 0;
        }

        if (stdin_open && !terminal) {
                if ((r = stdio_pipe_pair(&p.child_stdin, &p.stdin_fd, error)) < 0)
                        goto fail;
                stdio_set_nonblock(p.stdin_fd);
        } else {
                p.child_stdin = fcntl(dev_null_fd, F_DUPFD_CLOEXEC, 3);
        }

        if (terminal) {
                p.child_stdout = fcntl(dev_null_fd, F_DUPFD_CLOEXEC, 3);
        } else {
                if ((r = stdio_pipe_pair(&p.stdout_fd, &p.child_stdout, error)) < 0)
                        goto fail;
                stdio_set_nonblock(p.stdout_fd);
        }

        /* Also in terminal mode: the runtime's own errors arrive here. */
        if ((r = stdio_pipe_pair(&p.stderr_fd, &p.child_stderr, error)) < 0)
                goto fail;
        stdio_set_nonblock(p.stderr_fd);

        if (p.child_stdin < 0 || p.child_stdout < 0) {
                r = ctrmon_set_error_errno(error, errno, "Failed to duplicate /dev/null");
                goto fail;
        }
        *ret = p;
        return 0;
fail:
        stdio_pipes_close(&p);
        return r;
}

void stdio_pipes_close_child_ends(StdioPipes *p)
{
        ctrmon_close_fd(&p->child_stdin);
        ctrmon_close_fd(&p->child_stdout);
        ctrmon_close_fd(&p->child_stderr);
}

void stdio_pipes_close(StdioPipes *p)
{
        stdio_pipes_close_child_ends(p);
        ctrmon_close_fd(&p->stdin_fd);
        ctrmon_close_fd(&p->stdout_fd);
        ctrmon_close_fd(&p->stderr_fd);
}

StdioRelay *stdio_relay_new(GPtrArray *sinks)
{
        StdioRelay *r = g_new0(StdioRelay, 1);
        r->buf = g_malloc(STDIO_READ_MAX);
        r->sinks = sinks;
        r->out[0].fd = r->out[1].fd = -1;
        r->stdin_fd = -1;
        r->stdin_pending = g_byte_array_new();
        return r;
}

void stdio_relay_set_attach(StdioRelay *r, AttachServer *attach)
{
        r->attach = attach;
}

guint stdio_relay_add_listener(StdioRelay *r, StdioListenerFn fn, void *user_data)
{
        if (!r->listeners)
                r->listeners = g_array_new(FALSE, FALSE, sizeof(StdioListener));
        StdioListener l = { .id = ++r->next_listener_id, .fn = fn, .user_data = user_data };
        g_array_append_val(r->listeners, l);
        return l.id;
}

void stdio_relay_remove_listener(StdioRelay *r, guint id)
{
        for (guint i = 0; r->listeners && i < r->listeners->len; i++) {
                StdioListener *l = &g_array_index(r->listeners, StdioListener, i);
                if (l->id != id)
                        continue;
                /* Inside a dispatch the array is being walked: mark only. */
                if (r->dispatching)
                        l->id = 0;
                else
                        g_array_remove_index(r->listeners, i);
                return;
        }
}

static void stdio_relay_notify_listeners(StdioRelay *r, CtrmonStream stream, const char *buf, size_t len)
{
        r->dispatching = true;
        /* By index: a listener may add others (they see the next chunk). */
        guint n = r->listeners->len;
        for (guint i = 0; i < n; i++) {
                StdioListener l = g_array_index(r->listeners, StdioListener, i);
                if (l.id)
                        l.fn(stream, buf, len, l.user_data);
        }
        r->dispatching = false;
        for (guint i = r->listeners->len; i > 0; i--)
                if (g_array_index(r->listeners, StdioListener, i - 1).id == 0)
                        g_array_remove_index(r->listeners, i - 1);
}

static void stdio_relay_dispatch(StdioRelay *r, CtrmonStream stream, const char *buf, size_t len)
{
        struct timespec now;
        clock_gettime(CLOCK_REALTIME, &now);

        for (guint i = 0; r->sinks && i < r->sinks->len; i++) {
                LogSink *sink = g_ptr_array_index(r->sinks, i);
                g_autoptr(GError) error = NULL;
                if (sink->ops->write(sink, stream, &now, buf, len, &error) < 0) {
                        /* Counted and logged; the relay goes on. The first few
                         * are logged, then one in 1024, to keep a full disk
                         * from flooding the monitor's own log. */
                        r->stats.sink_errors++;
                        if (r->stats.sink_errors <= 3 || r->stats.sink_errors % 1024 == 0)
                                log_warning("%s log: %s, ignoring", sink->ops->name, error->message);
                }
        }
        /* After the logs, as conmon: an attach client never sees output the
         * log has not. */
        if (r->attach)
                attach_server_broadcast(r->attach, stream, buf, len);
        if (r->listeners && r->listeners->len > 0)
                stdio_relay_notify_listeners(r, stream, buf, len);
}

static void stdio_output_close(StdioRelay *r, StdioOutput *o)
{
        if (o->fd < 0)
                return;
        if (o->source_id) {
                g_source_remove(o->source_id);
                o->source_id = 0;
        }
        ctrmon_close_fd(&o->fd);
        r->outputs_open--;
}

/* Read once from `o`. Returns true if more may follow right away. */
static bool stdio_output_read(StdioRelay *r, StdioOutput *o)
{
        ssize_t n = read(o->fd, r->buf, STDIO_READ_MAX);
        if (n > 0) {
                int i = o->stream == CTRMON_STREAM_STDERR ? 1 : 0;
                r->stats.bytes[i] += (uint64_t) n;
                r->stats.reads[i]++;
                for (const char *p = r->buf, *end = r->buf + n; (p = memchr(p, '\n', (size_t) (end - p))); p++)
                        r->stats.lines[i]++;
                stdio_relay_dispatch(r, o->stream, r->buf, (size_t) n);
                return true;
        }
        if (n < 0 && errno == EINTR)
                return true;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
                return false;
        /* EOF, or EIO from a pty master whose last slave closed. */
        stdio_output_close(r, o);
        return false;
}

static gboolean stdio_output_cb(int fd, GIOCondition condition, gpointer user_data)
{
        StdioRelay *r = user_data;
        StdioOutput *o = r->out[0].fd == fd ? &r->out[0] : &r->out[1];
        /* One read per wake-up keeps stdout and stderr interleaved fairly. */
        stdio_output_read(r, o);
        if (o->fd < 0)
                return G_SOURCE_REMOVE; /* source id already cleared */
        return G_SOURCE_CONTINUE;
}

void stdio_relay_add_output(StdioRelay *r, int fd, CtrmonStream stream)
{
        StdioOutput *o = stream == CTRMON_STREAM_STDERR ? &r->out[1] : &r->out[0];
        g_return_if_fail(o->fd < 0);
        o->fd = fd;
        o->stream = stream;
        r->outputs_open++;
        o->source_id = g_unix_fd_add(fd, G_IO_IN | G_IO_HUP | G_IO_ERR, stdio_output_cb, r);
}

bool stdio_relay_outputs_open(const StdioRelay *r)
{
        return r->outputs_open > 0;
}

void stdio_relay_drain(StdioRelay *r)
{
        for (int i = 0; i < 2; i++) {
                StdioOutput *o = &r->out[i];
                while (o->fd >= 0 && stdio_output_read(r, o))
                        ;
        }
        for (guint i = 0; r->sinks && i < r->sinks->len; i++) {
                LogSink *sink = g_ptr_array_index(r->sinks, i);
                g_autoptr(GError) error = NULL;
                if (sink->ops->flush && sink->ops->flush(sink, &error) < 0)
                        log_warning("%s log: %s, ignoring", sink->ops->name, error->message);
        }
}

/* --- stdin --- */

static void stdio_input_close_now(StdioRelay *r)
{
        if (r->stdin_source_id) {
                g_source_remove(r->stdin_source_id);
                r->stdin_source_id = 0;
        }
        ctrmon_close_fd(&r->stdin_fd);
        g_byte_array_set_size(r->stdin_pending, 0);
}

static void stdio_input_flush(StdioRelay *r);

static gboolean stdio_input_writable_cb(int fd, GIOCondition condition, gpointer user_data)
{
        StdioRelay *r = user_data;
        r->stdin_source_id = 0;
        stdio_input_flush(r);
        return G_SOURCE_REMOVE;
}

static void stdio_input_flush(StdioRelay *r)
{
        while (r->stdin_fd >= 0 && r->stdin_pending->len > 0) {
                ssize_t n = write(r->stdin_fd, r->stdin_pending->data, r->stdin_pending->len);
                if (n > 0) {
                        r->stats.stdin_bytes += (uint64_t) n;
                        g_byte_array_remove_range(r->stdin_pending, 0, (guint) n);
                        continue;
                }
                if (n < 0 && errno == EINTR)
                        continue;
                if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
                        if (!r->stdin_source_id)
                                r->stdin_source_id = g_unix_fd_add(r->stdin_fd, G_IO_OUT | G_IO_ERR,
                                                                   stdio_input_writable_cb, r);
                        return;
                }
                /* The container closed its stdin: drop what it will never read. */
                log_debug("Container stdin closed: %s", g_strerror(errno));
                stdio_input_close_now(r);
                return;
        }
        if (r->stdin_fd >= 0 && r->stdin_close_requested)
                stdio_input_close_now(r);
}

void stdio_relay_set_input(StdioRelay *r, int fd)
{
        stdio_input_close_now(r);
        r->stdin_fd = fd;
        r->stdin_close_requested = false;
        stdio_set_nonblock(fd);
}

bool stdio_relay_has_input(const StdioRelay *r)
{
        return r->stdin_fd >= 0;
}

void stdio_relay_write_input(StdioRelay *r, const char *buf, size_t len)
{
        if (r->stdin_fd < 0 || r->stdin_close_requested)
                return;
        g_byte_array_append(r->stdin_pending, (const guint8 *) buf, (guint) len);
        if (!r->stdin_source_id)
                stdio_input_flush(r);
}

void stdio_relay_close_input(StdioRelay *r)
{
        r->stdin_close_requested = true;
        if (!r->stdin_source_id)
                stdio_input_flush(r);
        if (r->stdin_fd >= 0 && r->stdin_pending->len == 0)
                stdio_input_close_now(r);
}

void stdio_relay_get_stats(const StdioRelay *r, StdioStats *ret)
{
        *ret = r->stats;
}

void stdio_relay_free(StdioRelay *r)
{
        if (!r)
                return;
        for (int i = 0; i < 2; i++) {
                if (r->out[i].source_id)
                        g_source_remove(r->out[i].source_id);
                ctrmon_close_fd(&r->out[i].fd);
        }
        stdio_input_close_now(r);
        g_byte_array_unref(r->stdin_pending);
        if (r->listeners)
                g_array_unref(r->listeners);
        g_free(r->buf);
        g_free(r);
}
