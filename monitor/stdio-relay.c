/* The stdio relay, the monitor's hot path: one large read per wake-up, one
 * timestamp per chunk, the chunk handed to every sink and then to attach
 * clients. It never blocks: output fds and stdin are non-blocking. It never
 * loses a byte either: a consumer whose bounded queue is full holds the
 * relay (stdio_relay_hold_output), which then stops reading the container's
 * output until it is released, so the container waits on its pipe, as with
 * conmon's blocking writes. The container's stdin queue is bounded the same
 * way, upstream: producers stop reading their peers while it is full. It
 * decides nothing about the container's life; it reports EOF and counts. */
#include "stdio-relay.h"

#include "diag.h"
#include "out-queue.h"
#include "ctrmon/error.h"
#include "ctrmon/fd-util.h"

#include <fcntl.h>
#include <glib-unix.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

/* The container's output pipes are grown to this (F_SETPIPE_SZ; 1 MiB is
 * /proc/sys/fs/pipe-max-size's default): a writer then rarely blocks while the
 * monitor is busy writing the log, and one read moves up to a whole pipe. */
#define STDIO_PIPE_SIZE (1024 * 1024)
/* One read takes what the pipe holds, up to this. The buffer is allocated on
 * the first data, and pages the kernel never wrote into are never backed. */
#define STDIO_READ_MAX (128 * 1024)
/* Bytes read from one output per wake-up before the other output and the rest
 * of the loop (attach clients, control API) get their turn. */
#define STDIO_WAKEUP_BUDGET (4 * STDIO_READ_MAX)
/* After this many wake-ups in a row that each read at most STDIO_KEEP_BYTES,
 * the rest of the buffer a burst touched is handed back to the kernel. */
#define STDIO_KEEP_BYTES (64 * 1024)
#define STDIO_QUIET_WAKEUPS 64
/* The container's stdin queue: while it holds this much, producers stop
 * reading their peers (stdio_relay_input_full()). They may add one read
 * more each before they notice, so the bound is this plus a read of each
 * producer (attach: 16 x 32 KiB, API attach: a frame of at most 1 MiB). */
#define STDIO_INPUT_QUEUE_MAX (1024 * 1024)

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

typedef struct {
        guint id;
        StdioInputRoomFn fn;
        void *user_data;
} StdioInputWatch;

struct StdioRelay {
        GPtrArray *sinks;
        AttachServer *attach;
        StdioOutput out[2];
        unsigned outputs_open;

        /* Consumers whose queue is full: while > 0 no output is read. */
        unsigned output_holds;
        uint64_t output_held_count;     /* times reading was paused */

        int stdin_fd;
        OutQueue *stdin_out;            /* bytes for the container's stdin */
        uint64_t stdin_bytes_before;    /* written through earlier stdin fds */
        bool stdin_close_requested;
        /* Input will come (a pty not made yet): bytes written before the fd
         * exists wait here, bounded like the queue. */
        bool input_expected;
        GByteArray *early_input;
        bool input_full;                /* producers were told to stop */
        GArray *input_watches;          /* StdioInputWatch */
        guint next_input_watch_id;

        GArray *listeners;     /* StdioListener; NULL until the first one */
        guint next_listener_id;
        bool dispatching;

        StdioStats stats;
        /* NULL until the first data; then its own mapping, so only the
         * pages reads wrote into are backed and the tail can be released.
         * buf_used: the most a read wrote since the last release. */
        char *buf;
        size_t buf_used;
        unsigned quiet_wakeups;
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

/* Whether growing pipes costs nobody else anything. For a user without
 * CAP_SYS_RESOURCE in the initial user namespace (rootless podman), pipe
 * buffers count against fs/pipe-user-pages-soft (64 MiB), and past it every
 * new pipe of that user is cut to two pages: growing ours would shrink the
 * user's shell pipelines. So only root of the initial namespace grows them. */
static bool stdio_pipe_growth_free(void)
{
        static int cached = -1;

        if (cached < 0) {
                g_autofree char *map = NULL;
                unsigned long inside, outside, count;

                cached = geteuid() == 0 &&
                         g_file_get_contents("/proc/self/uid_map", &map, NULL, NULL) &&
                         sscanf(map, "%lu %lu %lu", &inside, &outside, &count) == 3 &&
                         inside == 0 && outside == 0 && count == 4294967295UL;
        }
        return cached;
}

/* Best effort: a failure leaves the default 64 KiB pipe, which works. */
static void stdio_pipe_grow(int fd)
{
        if (stdio_pipe_growth_free() && fcntl(fd, F_SETPIPE_SZ, STDIO_PIPE_SIZE) < 0)
                log_debug("Failed to grow an output pipe to %d bytes, ignoring: %m", STDIO_PIPE_SIZE);
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
                stdio_pipe_grow(p.stdout_fd);
        }

        /* Also in terminal mode: the runtime's own errors arrive here. */
        if ((r = stdio_pipe_pair(&p.stderr_fd, &p.child_stderr, error)) < 0)
                goto fail;
        stdio_set_nonblock(p.stderr_fd);
        if (!terminal)
                stdio_pipe_grow(p.stderr_fd);

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
        r->sinks = sinks;
        r->out[0].fd = r->out[1].fd = -1;
        r->stdin_fd = -1;
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

/* The stats' line count. Not memchr per line (a call per 100-byte line
 * costs more than the whole scan): compare-and-subtract over 32-byte
 * vectors, four at a time, into byte counters that are folded before they
 * can wrap (255 rounds). On x86-64 the compiler emits an AVX2 clone and an
 * ifunc picks it where the CPU has AVX2 (callgrind: 0.09 instructions per
 * byte, memchr per line 0.37); elsewhere plain vector code. */
typedef unsigned char StdioVec __attribute__((vector_size(32)));
#define STDIO_VEC_BLOCK (4 * sizeof(StdioVec))
#if defined(__x86_64__)
#define STDIO_VEC_CLONES __attribute__((target_clones("avx2", "default")))
#else
#define STDIO_VEC_CLONES
#endif

STDIO_VEC_CLONES
static uint64_t stdio_count_newlines(const char *buf, size_t len)
{
        const StdioVec nl = (StdioVec) { 0 } + '\n';
        uint64_t count = 0;
        size_t i = 0;

        while (len - i >= STDIO_VEC_BLOCK) {
                StdioVec acc[4] = { { 0 } };
                size_t rounds = MIN((len - i) / STDIO_VEC_BLOCK, (size_t) 255);

                for (size_t k = 0; k < rounds; k++, i += STDIO_VEC_BLOCK) {
                        for (size_t j = 0; j < 4; j++) {
                                StdioVec v;
                                memcpy(&v, buf + i + j * sizeof(StdioVec), sizeof(v));
                                acc[j] -= (StdioVec) (v == nl);
                        }
                }
                for (size_t j = 0; j < 4; j++)
                        for (size_t b = 0; b < sizeof(StdioVec); b++)
                                count += acc[j][b];
        }
        for (; i < len; i++)
                count += buf[i] == '\n';
        return count;
}

static void stdio_relay_dispatch(StdioRelay *r, CtrmonStream stream, const char *buf, size_t len)
{
        struct timespec now;
        clock_gettime(CLOCK_REALTIME, &now);

        for (guint i = 0; r->sinks && i < r->sinks->len; i++) {
                LogSink *sink = g_ptr_array_index(r->sinks, i);
                g_autoptr(GError) error = NULL;
                /* The monitor's sink is the log buffer (log-buffer.c), which
                 * counts, reports and rate-limits its drivers' failures
                 * itself and never fails a write. */
                if (sink->ops->write(sink, stream, &now, buf, len, &error) < 0)
                        log_warning("%s log: %s, ignoring", sink->ops->name, error->message);
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

static bool stdio_relay_ensure_buf(StdioRelay *r)
{
        if (r->buf)
                return true;
        void *p = mmap(NULL, STDIO_READ_MAX, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (p == MAP_FAILED) {
                log_warning("Failed to allocate the output buffer, retrying on the next wake-up: %m");
                return false;
        }
        r->buf = p;
        return true;
}

/* A burst leaves up to STDIO_READ_MAX of the buffer backed; once output has
 * been quiet (small reads only) for a while, give the tail back. */
static void stdio_relay_note_wakeup(StdioRelay *r, size_t max_read)
{
        if (max_read > STDIO_KEEP_BYTES) {
                r->quiet_wakeups = 0;
                return;
        }
        if (r->buf_used <= STDIO_KEEP_BYTES || ++r->quiet_wakeups < STDIO_QUIET_WAKEUPS)
                return;
        if (madvise(r->buf + STDIO_KEEP_BYTES, STDIO_READ_MAX - STDIO_KEEP_BYTES, MADV_DONTNEED) < 0)
                log_debug("Failed to release the output buffer's tail, ignoring: %m");
        r->buf_used = STDIO_KEEP_BYTES;
        r->quiet_wakeups = 0;
}

/* Read once from `o`. Returns the bytes read (0 at EOF or when nothing is
 * there), or -1 if the read should be retried (EINTR). */
static ssize_t stdio_output_read(StdioRelay *r, StdioOutput *o)
{
        if (!stdio_relay_ensure_buf(r))
                return 0;
        ssize_t n = read(o->fd, r->buf, STDIO_READ_MAX);
        if (n > 0) {
                int i = o->stream == CTRMON_STREAM_STDERR ? 1 : 0;
                r->stats.bytes[i] += (uint64_t) n;
                r->stats.reads[i]++;
                r->stats.lines[i] += stdio_count_newlines(r->buf, (size_t) n);
                r->buf_used = MAX(r->buf_used, (size_t) n);
                stdio_relay_dispatch(r, o->stream, r->buf, (size_t) n);
                return n;
        }
        if (n < 0 && errno == EINTR)
                return -1;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
                return 0;
        /* EOF, or EIO from a pty master whose last slave closed. */
        stdio_output_close(r, o);
        return 0;
}

static gboolean stdio_output_cb(int fd, GIOCondition condition, gpointer user_data)
{
        StdioRelay *r = user_data;
        StdioOutput *o = r->out[0].fd == fd ? &r->out[0] : &r->out[1];
        size_t total = 0, max_read = 0;

        /* Drain up to a budget, then let stderr and the rest of the loop
         * have their turn. A short read means the pipe was empty a moment
         * ago: stop there rather than pay a read for EAGAIN. */
        while (o->fd >= 0 && r->output_holds == 0 && total < STDIO_WAKEUP_BUDGET) {
                ssize_t n = stdio_output_read(r, o);
                if (n < 0)
                        continue;
                total += (size_t) n;
                max_read = MAX(max_read, (size_t) n);
                if ((size_t) n < STDIO_READ_MAX)
                        break;
        }
        if (r->buf)
                stdio_relay_note_wakeup(r, max_read);
        /* Closed, or held (stdio_relay_hold_output removed the source while
         * a consumer's broadcast ran): the source id is already cleared. */
        if (o->source_id == 0)
                return G_SOURCE_REMOVE;
        return G_SOURCE_CONTINUE;
}

static void stdio_output_watch(StdioRelay *r, StdioOutput *o)
{
        if (o->fd >= 0 && !o->source_id && r->output_holds == 0)
                o->source_id = g_unix_fd_add(o->fd, G_IO_IN | G_IO_HUP | G_IO_ERR, stdio_output_cb, r);
}

void stdio_relay_add_output(StdioRelay *r, int fd, CtrmonStream stream)
{
        StdioOutput *o = stream == CTRMON_STREAM_STDERR ? &r->out[1] : &r->out[0];
        g_return_if_fail(o->fd < 0);
        o->fd = fd;
        o->stream = stream;
        r->outputs_open++;
        stdio_output_watch(r, o);
}

/* Back-pressure: not reading leaves the bytes in the pipe (or pty), whose
 * writer blocks once it is full. Nothing is dropped and nothing waits here:
 * the rest of the loop (API, signals, the exit) goes on. */
void stdio_relay_hold_output(StdioRelay *r)
{
        if (r->output_holds++ > 0)
                return;
        r->output_held_count++;
        for (int i = 0; i < 2; i++) {
                if (r->out[i].source_id) {
                        g_source_remove(r->out[i].source_id);
                        r->out[i].source_id = 0;
                }
        }
}

void stdio_relay_release_output(StdioRelay *r)
{
        g_return_if_fail(r->output_holds > 0);
        if (--r->output_holds > 0)
                return;
        for (int i = 0; i < 2; i++)
                stdio_output_watch(r, &r->out[i]);
}

bool stdio_relay_output_held(const StdioRelay *r)
{
        return r->output_holds > 0;
}

bool stdio_relay_outputs_open(const StdioRelay *r)
{
        return r->outputs_open > 0;
}

void stdio_relay_drain(StdioRelay *r)
{
        for (int i = 0; i < 2; i++) {
                StdioOutput *o = &r->out[i];
                while (o->fd >= 0 && stdio_output_read(r, o) != 0)
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

static size_t stdio_input_pending(const StdioRelay *r)
{
        if (r->stdin_out)
                return out_queue_pending(r->stdin_out);
        return r->early_input ? r->early_input->len : 0;
}

/* Tell producers when the queue crosses the bound (full) and when it has
 * room again (empty: the container took everything). */
static void stdio_input_update_room(StdioRelay *r)
{
        bool open = r->stdin_fd >= 0 || r->input_expected;
        bool full = open && stdio_input_pending(r) >= STDIO_INPUT_QUEUE_MAX;
        if (!full && r->input_full && stdio_input_pending(r) > 0)
                return; /* resume only once it ran empty: fewer flips */
        if (full == r->input_full)
                return;
        r->input_full = full;
        /* By index and by id: a watch may remove itself. */
        for (guint i = 0; r->input_watches && i < r->input_watches->len; i++) {
                StdioInputWatch w = g_array_index(r->input_watches, StdioInputWatch, i);
                w.fn(full, w.user_data);
        }
}

static void stdio_input_close_now(StdioRelay *r)
{
        if (r->stdin_out) {
                r->stdin_bytes_before += out_queue_written(r->stdin_out);
                g_clear_pointer(&r->stdin_out, out_queue_free); /* drops what was not written */
        }
        ctrmon_close_fd(&r->stdin_fd);
        /* Whatever is written from now on is dropped: nobody need wait. */
        stdio_input_update_room(r);
}

/* The queue ran empty: a requested close happens now, and producers may go
 * on. The container closed its stdin: drop what it will never read. */
static void stdio_input_sent_cb(OutQueue *q, OutQueueEvent event, int error, void *user_data)
{
        StdioRelay *r = user_data;
        if (event == OUT_QUEUE_FAILED) {
                log_debug("Container stdin closed: %s", g_strerror(error));
                stdio_input_close_now(r);
        } else if (r->stdin_close_requested) {
                stdio_input_close_now(r);
        } else {
                stdio_input_update_room(r);
        }
}

void stdio_relay_expect_input(StdioRelay *r)
{
        r->input_expected = true;
}

void stdio_relay_set_input(StdioRelay *r, int fd)
{
        g_autoptr(GByteArray) early = g_steal_pointer(&r->early_input);
        bool close_requested = r->stdin_close_requested;

        r->input_expected = false;
        stdio_input_close_now(r);
        r->stdin_fd = fd;
        r->stdin_close_requested = false;
        stdio_set_nonblock(fd);
        r->stdin_out = out_queue_new(fd, OUT_QUEUE_PIPE, stdio_input_sent_cb, r);
        /* What producers sent before the fd existed, first and in order. */
        if (early && early->len > 0)
                out_queue_append(r->stdin_out, early->data, early->len); /* may close stdin */
        if (close_requested)
                stdio_relay_close_input(r);
        else
                stdio_input_update_room(r);
}

bool stdio_relay_has_input(const StdioRelay *r)
{
        return r->stdin_fd >= 0;
}

void stdio_relay_write_input(StdioRelay *r, const char *buf, size_t len)
{
        if (r->stdin_close_requested || len == 0)
                return;
        if (r->stdin_fd >= 0) {
                out_queue_append(r->stdin_out, buf, len); /* may close stdin */
        } else if (r->input_expected) {
                if (!r->early_input)
                        r->early_input = g_byte_array_new();
                g_byte_array_append(r->early_input, (const guint8 *) buf, (guint) len);
        } else {
                return;
        }
        stdio_input_update_room(r);
}

bool stdio_relay_input_full(const StdioRelay *r)
{
        return r->input_full;
}

guint stdio_relay_watch_input(StdioRelay *r, StdioInputRoomFn fn, void *user_data)
{
        if (!r->input_watches)
                r->input_watches = g_array_new(FALSE, FALSE, sizeof(StdioInputWatch));
        StdioInputWatch w = { .id = ++r->next_input_watch_id, .fn = fn, .user_data = user_data };
        g_array_append_val(r->input_watches, w);
        return w.id;
}

void stdio_relay_unwatch_input(StdioRelay *r, guint id)
{
        for (guint i = 0; r->input_watches && i < r->input_watches->len; i++) {
                if (g_array_index(r->input_watches, StdioInputWatch, i).id == id) {
                        g_array_remove_index(r->input_watches, i);
                        return;
                }
        }
}

/* Close once what is queued is written (at once if nothing is). */
void stdio_relay_close_input(StdioRelay *r)
{
        if (r->stdin_fd < 0) {
                /* Not there yet: close it as soon as it comes. */
                if (r->input_expected)
                        r->stdin_close_requested = true;
                return;
        }
        r->stdin_close_requested = true;
        if (out_queue_pending(r->stdin_out) == 0)
                stdio_input_close_now(r);
}

void stdio_relay_get_stats(const StdioRelay *r, StdioStats *ret)
{
        *ret = r->stats;
        ret->stdin_bytes = r->stdin_bytes_before + (r->stdin_out ? out_queue_written(r->stdin_out) : 0);
        ret->stdin_queued = stdio_input_pending(r);
        ret->output_held = r->output_holds > 0;
        ret->output_held_count = r->output_held_count;
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
        /* Nobody is told about the queue going away. */
        g_clear_pointer(&r->input_watches, g_array_unref);
        stdio_input_close_now(r);
        if (r->early_input)
                g_byte_array_unref(r->early_input);
        if (r->listeners)
                g_array_unref(r->listeners);
        if (r->buf)
                munmap(r->buf, STDIO_READ_MAX);
        g_free(r);
}
