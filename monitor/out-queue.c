/* The monitor's one non-blocking output queue (see out-queue.h). It owns the
 * pending bytes and the G_IO_OUT watch, never the fd. Written bytes are
 * consumed by moving a read offset: the array is compacted only when the
 * dead prefix is large and at least half of it, so a queue that is written
 * in many partial sends costs no memmove per send. */
#include "out-queue.h"

#include <errno.h>
#include <glib-unix.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

/* Compact once at least this much has been written out of the front. */
#define OUT_QUEUE_COMPACT_MIN (64 * 1024)

struct OutQueue {
        int fd;
        OutQueueKind kind;
        OutQueueCallback cb;
        void *user_data;
        GByteArray *buf;
        size_t head;      /* buf->data[head..len) is pending */
        guint watch_id;
        bool failed;
        uint64_t written;
};

OutQueue *out_queue_new(int fd, OutQueueKind kind, OutQueueCallback cb, void *user_data)
{
        OutQueue *q = g_new0(OutQueue, 1);
        q->fd = fd;
        q->kind = kind;
        q->cb = cb;
        q->user_data = user_data;
        q->buf = g_byte_array_new();
        return q;
}

void out_queue_free(OutQueue *q)
{
        if (!q)
                return;
        if (q->watch_id)
                g_source_remove(q->watch_id);
        g_byte_array_unref(q->buf);
        g_free(q);
}

size_t out_queue_pending(const OutQueue *q)
{
        return q->buf->len - q->head;
}

uint64_t out_queue_written(const OutQueue *q)
{
        return q->written;
}

bool out_queue_failed(const OutQueue *q)
{
        return q->failed;
}

void out_queue_discard(OutQueue *q)
{
        g_byte_array_set_size(q->buf, 0);
        q->head = 0;
}

/* Write until empty or the fd is full. Returns 0 (empty), -EAGAIN (full)
 * or -errno (failed; the queue is then marked failed). No callback. */
static int out_queue_write_some(OutQueue *q)
{
        if (q->failed)
                return -EPIPE;
        while (q->head < q->buf->len) {
                const guint8 *p = q->buf->data + q->head;
                size_t left = q->buf->len - q->head;
                ssize_t n = q->kind == OUT_QUEUE_SOCKET ? send(q->fd, p, left, MSG_DONTWAIT | MSG_NOSIGNAL)
                                                        : write(q->fd, p, left);
                if (n > 0) {
                        q->head += (size_t) n;
                        q->written += (uint64_t) n;
                        continue;
                }
                if (n < 0 && errno == EINTR)
                        continue;
                if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
                        return -EAGAIN;
                int e = n < 0 ? errno : EPIPE; /* 0 bytes taken: treat as gone */
                q->failed = true;
                out_queue_discard(q);
                return -e;
        }
        out_queue_discard(q);
        return 0;
}

static gboolean out_queue_writable_cb(int fd, GIOCondition condition, gpointer user_data)
{
        OutQueue *q = user_data;
        q->watch_id = 0;
        out_queue_flush(q); /* may free q */
        return G_SOURCE_REMOVE;
}

void out_queue_flush(OutQueue *q)
{
        int r = out_queue_write_some(q);
        if (r == -EAGAIN) {
                if (!q->watch_id)
                        q->watch_id = g_unix_fd_add(q->fd, G_IO_OUT | G_IO_ERR | G_IO_HUP, out_queue_writable_cb, q);
                return;
        }
        if (q->watch_id) {
                g_source_remove(q->watch_id);
                q->watch_id = 0;
        }
        if (q->cb)
                q->cb(q, r == 0 ? OUT_QUEUE_DRAINED : OUT_QUEUE_FAILED, r == 0 ? 0 : -r, q->user_data);
}

void out_queue_append(OutQueue *q, const void *data, size_t len)
{
        struct iovec iov = { (void *) data, len };
        out_queue_append_iov(q, &iov, 1);
}

void out_queue_push_iov(OutQueue *q, const struct iovec *iov, int n)
{
        if (q->failed)
                return;
        if (q->head >= OUT_QUEUE_COMPACT_MIN && q->head * 2 >= q->buf->len) {
                g_byte_array_remove_range(q->buf, 0, (guint) q->head);
                q->head = 0;
        }
        for (int i = 0; i < n; i++)
                g_byte_array_append(q->buf, iov[i].iov_base, (guint) iov[i].iov_len);
}

void out_queue_append_iov(OutQueue *q, const struct iovec *iov, int n)
{
        out_queue_push_iov(q, iov, n);
        if (q->failed || out_queue_pending(q) == 0)
                return;
        /* With a watch armed the fd was full a moment ago: let the watch
         * write, rather than try again now. */
        if (!q->watch_id)
                out_queue_flush(q);
}

int out_queue_flush_until(OutQueue *q, gint64 deadline)
{
        for (;;) {
                int r = out_queue_write_some(q);
                if (r != -EAGAIN)
                        return r;
                gint64 left_ms = (deadline - g_get_monotonic_time()) / 1000;
                if (left_ms <= 0)
                        return -EAGAIN;
                struct pollfd pfd = { .fd = q->fd, .events = POLLOUT };
                if (poll(&pfd, 1, (int) MIN(left_ms, G_MAXINT)) < 0 && errno != EINTR)
                        return -errno;
        }
}
