/* The sink in front of the real log sinks (log-buffer.h): lossless
 * pass-through by default, a bounded buffer and a writer thread with
 * --log-buffer-size. It owns the real sinks, the writer thread and the
 * outage bookkeeping; it never decides what an outage means for the
 * container (nothing: the monitor keeps reading) and never talks to clients
 * itself (the context turns its reports into events). */
#include "log-buffer.h"

#include "diag.h"
#include "ctrmon/error.h"

#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <string.h>

#define LOG_BUFFER_DROP_REPORT_MS 1000
/* A sink that keeps failing is logged at the start of the outage, then once
 * every this many failures, and at its end: a full disk must not flood the
 * monitor's own log. */
#define LOG_BUFFER_ERROR_LOG_EVERY 1024

typedef enum {
        LOG_BUFFER_OP_WRITE,
        LOG_BUFFER_OP_FLUSH,
        LOG_BUFFER_OP_SYNC,
        LOG_BUFFER_OP_REOPEN,
} LogBufferOp;

/* One queued operation. Writes and reopens are freed by the writer thread;
 * flush and sync belong to the main thread, which waits for `done`. */
typedef struct {
        LogBufferOp op;
        bool done;
        CtrmonStream stream;
        struct timespec now;
        size_t len;
        char data[];
} LogBufferItem;

typedef struct {
        bool failing;
        uint64_t failed_writes; /* in the current outage */
        char *first_message;
} LogBufferSinkWatch;

typedef struct {
        char *sink;
        bool failing;
        char *message;
        uint64_t failed_writes;
} LogBufferNotice;

typedef struct {
        LogSink base;
        GPtrArray *sinks;
        LogBufferConfig config;
        /* One per sink; touched only by whoever calls the sinks (the writer
         * thread if there is one, else the main thread). */
        LogBufferSinkWatch *watch;

        GMutex lock;
        GCond work_cond; /* writer: an item arrived, or stop      */
        GCond done_cond; /* main: a flush or sync item is done    */
        GQueue items;    /* LogBufferItem*                        */
        bool stopping;
        bool threaded; /* false: lossless, synchronous mode     */
        GThread *thread;
        LogBufferStats stats;
        GQueue notices; /* LogBufferNotice*, for the main thread */
        guint notice_source_id;

        /* main thread only */
        uint64_t drop_pending_bytes;
        uint64_t drop_pending_chunks;
        gint64 drop_reported_usec; /* monotonic; 0: never */
        guint drop_timer_id;
} LogBuffer;

static LogBuffer *log_buffer_from(LogSink *sink)
{
        return (LogBuffer *) sink;
}

static void log_buffer_notice_free(LogBufferNotice *n)
{
        g_free(n->sink);
        g_free(n->message);
        g_free(n);
}

static void log_buffer_deliver_notice(LogBuffer *b, const LogBufferNotice *n)
{
        if (!b->config.sink_state_fn)
                return;
        LogBufferSinkState state = {
                .sink = n->sink,
                .failing = n->failing,
                .message = n->message,
                .failed_writes = n->failed_writes,
        };
        b->config.sink_state_fn(&state, b->config.user_data);
}

/* Deliver what the writer thread posted. `dispatching`: called as the idle
 * source itself, which then ends; otherwise that source is removed here. */
static void log_buffer_deliver_notices(LogBuffer *b, bool dispatching)
{
        g_mutex_lock(&b->lock);
        GQueue pending = b->notices;
        g_queue_init(&b->notices);
        guint source_id = b->notice_source_id;
        b->notice_source_id = 0;
        g_mutex_unlock(&b->lock);
        if (source_id && !dispatching)
                g_source_remove(source_id);

        LogBufferNotice *n;
        while ((n = g_queue_pop_head(&pending))) {
                log_buffer_deliver_notice(b, n);
                log_buffer_notice_free(n);
        }
}

static gboolean log_buffer_notices_cb(gpointer user_data)
{
        log_buffer_deliver_notices(user_data, true);
        return G_SOURCE_REMOVE;
}

/* Hand a notice to the main thread: directly in synchronous mode, through
 * an idle source of the default main context from the writer thread. */
static void log_buffer_post_notice(LogBuffer *b, LogBufferNotice *n)
{
        if (!b->threaded) {
                log_buffer_deliver_notice(b, n);
                log_buffer_notice_free(n);
                return;
        }
        g_mutex_lock(&b->lock);
        g_queue_push_tail(&b->notices, n);
        if (!b->notice_source_id)
                b->notice_source_id = g_idle_add(log_buffer_notices_cb, b);
        g_mutex_unlock(&b->lock);
}

/* The outcome of one write to sink `i`: count it, log and report the start
 * and the end of an outage. */
static void log_buffer_watch_write(LogBuffer *b, guint i, int r, const GError *error)
{
        LogSink *sink = g_ptr_array_index(b->sinks, i);
        LogBufferSinkWatch *w = &b->watch[i];
        const char *name = sink->ops->name;

        if (r < 0) {
                const char *message = error ? error->message : g_strerror(-r);
                g_mutex_lock(&b->lock);
                b->stats.write_errors++;
                g_mutex_unlock(&b->lock);
                w->failed_writes++;
                if (w->failing) {
                        if (w->failed_writes % LOG_BUFFER_ERROR_LOG_EVERY == 0)
                                log_warning("%s log: %" PRIu64 " writes failed so far, the latest: %s", name,
                                            w->failed_writes, message);
                        return;
                }
                w->failing = true;
                g_free(w->first_message);
                w->first_message = g_strdup(message);
                log_warning("%s log: %s; the monitor keeps reading the container and counts what it cannot write", name,
                            message);
                LogBufferNotice *n = g_new0(LogBufferNotice, 1);
                n->sink = g_strdup(name);
                n->failing = true;
                n->message = g_strdup(message);
                n->failed_writes = w->failed_writes;
                log_buffer_post_notice(b, n);
                return;
        }
        if (!w->failing)
                return;
        /* A warning, not info: it closes the outage the default level
         * showed, so whoever saw the start sees the end. */
        log_warning("%s log: writing again after %" PRIu64 " failed writes", name, w->failed_writes);
        LogBufferNotice *n = g_new0(LogBufferNotice, 1);
        n->sink = g_strdup(name);
        n->failing = false;
        n->message = g_steal_pointer(&w->first_message);
        n->failed_writes = w->failed_writes;
        w->failing = false;
        w->failed_writes = 0;
        log_buffer_post_notice(b, n);
}

/* Run one operation on every real sink, in order. Errors are logged here,
 * with the texts the relay and the lifecycle used before this wrapper
 * existed, and never returned: nothing upstream could do more. */
static void log_buffer_call_sinks(LogBuffer *b, LogBufferOp op, CtrmonStream stream, const struct timespec *now,
                                  const char *buf, size_t len)
{
        for (guint i = 0; i < b->sinks->len; i++) {
                LogSink *sink = g_ptr_array_index(b->sinks, i);
                const LogSinkOps *ops = sink->ops;
                g_autoptr(GError) error = NULL;
                int r;

                switch (op) {
                case LOG_BUFFER_OP_WRITE:
                        r = ops->write(sink, stream, now, buf, len, &error);
                        log_buffer_watch_write(b, i, r, error);
                        break;
                case LOG_BUFFER_OP_FLUSH:
                        if (ops->flush && ops->flush(sink, &error) < 0)
                                log_warning("%s log: %s, ignoring", ops->name, error ? error->message : "flush failed");
                        break;
                case LOG_BUFFER_OP_SYNC:
                        if (ops->sync && ops->sync(sink, &error) < 0)
                                log_warning("%s, ignoring", error ? error->message : "sync failed");
                        break;
                case LOG_BUFFER_OP_REOPEN:
                        if (ops->reopen && ops->reopen(sink, &error) < 0)
                                log_warning("Failed to reopen the %s log: %s", ops->name,
                                            error ? error->message : "reopen failed");
                        break;
                }
        }
        if (b->config.sinks_called_fn)
                b->config.sinks_called_fn(b->sinks, b->config.user_data);
}

static gpointer log_buffer_thread(gpointer user_data)
{
        LogBuffer *b = user_data;

        g_mutex_lock(&b->lock);
        for (;;) {
                LogBufferItem *item = g_queue_pop_head(&b->items);
                if (!item) {
                        /* Stop only once everything accepted is written. */
                        if (b->stopping)
                                break;
                        g_cond_wait(&b->work_cond, &b->lock);
                        continue;
                }
                g_mutex_unlock(&b->lock);
                log_buffer_call_sinks(b, item->op, item->stream, &item->now, item->data, item->len);
                g_mutex_lock(&b->lock);
                switch (item->op) {
                case LOG_BUFFER_OP_WRITE:
                        b->stats.bytes_queued -= item->len;
                        g_free(item);
                        break;
                case LOG_BUFFER_OP_REOPEN:
                        g_free(item);
                        break;
                case LOG_BUFFER_OP_FLUSH:
                case LOG_BUFFER_OP_SYNC:
                        item->done = true;
                        g_cond_broadcast(&b->done_cond);
                        break;
                }
        }
        g_mutex_unlock(&b->lock);
        return NULL;
}

/* --- drop reports (main thread) --- */

static void log_buffer_report_drops(LogBuffer *b)
{
        if (b->drop_pending_chunks == 0)
                return;
        LogBufferStats totals;
        log_buffer_get_stats(&b->base, &totals);
        log_warning("Log buffer full (%" PRIu64 " bytes): dropped %" PRIu64 " bytes of container output in %" PRIu64
                    " chunks (%" PRIu64 " bytes in all so far)",
                    totals.size, b->drop_pending_bytes, b->drop_pending_chunks, totals.bytes_dropped);
        uint64_t bytes = b->drop_pending_bytes, chunks = b->drop_pending_chunks;
        b->drop_pending_bytes = b->drop_pending_chunks = 0;
        b->drop_reported_usec = g_get_monotonic_time();
        if (b->config.dropped_fn)
                b->config.dropped_fn(bytes, chunks, &totals, b->config.user_data);
}

static gboolean log_buffer_drop_timer_cb(gpointer user_data)
{
        LogBuffer *b = user_data;
        b->drop_timer_id = 0;
        log_buffer_report_drops(b);
        return G_SOURCE_REMOVE;
}

static void log_buffer_note_drop(LogBuffer *b, uint64_t bytes)
{
        b->drop_pending_bytes += bytes;
        b->drop_pending_chunks++;
        if (b->drop_timer_id)
                return;
        gint64 interval = (gint64) b->config.drop_report_interval_ms * 1000;
        gint64 now = g_get_monotonic_time();
        if (!b->drop_reported_usec || now - b->drop_reported_usec >= interval) {
                log_buffer_report_drops(b);
                return;
        }
        guint wait_ms = (guint) ((b->drop_reported_usec + interval - now + 999) / 1000);
        b->drop_timer_id = g_timeout_add(wait_ms, log_buffer_drop_timer_cb, b);
}

/* --- LogSinkOps --- */

static int log_buffer_write(LogSink *sink, CtrmonStream stream, const struct timespec *now, const char *buf, size_t len,
                            G_GNUC_UNUSED GError **error)
{
        LogBuffer *b = log_buffer_from(sink);

        if (len == 0)
                return 0;
        if (!b->threaded) {
                log_buffer_call_sinks(b, LOG_BUFFER_OP_WRITE, stream, now, buf, len);
                return 0;
        }

        g_mutex_lock(&b->lock);
        uint64_t room = b->stats.size - MIN(b->stats.size, b->stats.bytes_queued);
        size_t take = (size_t) MIN((uint64_t) len, room);
        if (take > 0) {
                /* The part that fits is kept: the log shows the start of
                 * the chunk, in order, and the counters say what is missing. */
                LogBufferItem *item = g_malloc(sizeof(LogBufferItem) + take);
                item->op = LOG_BUFFER_OP_WRITE;
                item->done = false;
                item->stream = stream;
                item->now = *now;
                item->len = take;
                memcpy(item->data, buf, take);
                g_queue_push_tail(&b->items, item);
                b->stats.bytes_queued += take;
                b->stats.bytes_queued_max = MAX(b->stats.bytes_queued_max, b->stats.bytes_queued);
                g_cond_signal(&b->work_cond);
        }
        if (take < len) {
                b->stats.bytes_dropped += len - take;
                b->stats.chunks_dropped++;
        }
        g_mutex_unlock(&b->lock);

        if (take < len)
                log_buffer_note_drop(b, len - take);
        return 0;
}

/* Queue `op` and wait until the writer thread has done it, and with it
 * everything queued before. */
static void log_buffer_run_and_wait(LogBuffer *b, LogBufferOp op)
{
        LogBufferItem *item = g_malloc0(sizeof(LogBufferItem));
        item->op = op;
        g_mutex_lock(&b->lock);
        g_queue_push_tail(&b->items, item);
        g_cond_signal(&b->work_cond);
        while (!item->done)
                g_cond_wait(&b->done_cond, &b->lock);
        g_mutex_unlock(&b->lock);
        g_free(item);
}

static int log_buffer_flush(LogSink *sink, G_GNUC_UNUSED GError **error)
{
        LogBuffer *b = log_buffer_from(sink);

        if (!b->threaded) {
                log_buffer_call_sinks(b, LOG_BUFFER_OP_FLUSH, 0, NULL, NULL, 0);
                return 0;
        }
        /* The container is gone: what was dropped is told before "exited". */
        if (b->drop_timer_id) {
                g_source_remove(b->drop_timer_id);
                b->drop_timer_id = 0;
        }
        log_buffer_report_drops(b);
        log_buffer_run_and_wait(b, LOG_BUFFER_OP_FLUSH);
        /* Outage reports the thread made meanwhile go out now, too. */
        log_buffer_deliver_notices(b, false);
        return 0;
}

static int log_buffer_sync(LogSink *sink, G_GNUC_UNUSED GError **error)
{
        LogBuffer *b = log_buffer_from(sink);

        if (!b->threaded)
                log_buffer_call_sinks(b, LOG_BUFFER_OP_SYNC, 0, NULL, NULL, 0);
        else
                log_buffer_run_and_wait(b, LOG_BUFFER_OP_SYNC);
        return 0;
}

static int log_buffer_reopen(LogSink *sink, G_GNUC_UNUSED GError **error)
{
        LogBuffer *b = log_buffer_from(sink);

        if (!b->threaded) {
                log_buffer_call_sinks(b, LOG_BUFFER_OP_REOPEN, 0, NULL, NULL, 0);
                return 0;
        }
        /* Not waited for: a stalled log must not stall the main loop. It
         * happens in order, after the chunks accepted before it. */
        LogBufferItem *item = g_malloc0(sizeof(LogBufferItem));
        item->op = LOG_BUFFER_OP_REOPEN;
        g_mutex_lock(&b->lock);
        g_queue_push_tail(&b->items, item);
        g_cond_signal(&b->work_cond);
        g_mutex_unlock(&b->lock);
        return 0;
}

static void log_buffer_free(LogSink *sink)
{
        LogBuffer *b = log_buffer_from(sink);

        if (b->thread) {
                /* Everything accepted is written before the thread ends. */
                g_mutex_lock(&b->lock);
                b->stopping = true;
                g_cond_signal(&b->work_cond);
                g_mutex_unlock(&b->lock);
                g_thread_join(b->thread);
                b->thread = NULL;
        }
        if (b->drop_timer_id)
                g_source_remove(b->drop_timer_id);
        if (b->notice_source_id)
                g_source_remove(b->notice_source_id);
        g_queue_clear_full(&b->notices, (GDestroyNotify) log_buffer_notice_free);
        g_queue_clear_full(&b->items, g_free);
        if (b->sinks) {
                for (guint i = 0; i < b->sinks->len; i++)
                        g_free(b->watch[i].first_message);
                g_ptr_array_unref(b->sinks);
        }
        g_free(b->watch);
        g_mutex_clear(&b->lock);
        g_cond_clear(&b->work_cond);
        g_cond_clear(&b->done_cond);
        g_free(b);
}

static const LogSinkOps log_buffer_ops = {
        .name = "log-buffer",
        .write = log_buffer_write,
        .flush = log_buffer_flush,
        .sync = log_buffer_sync,
        .reopen = log_buffer_reopen,
        .free = log_buffer_free,
};

int log_buffer_new(GPtrArray *sinks, const LogBufferConfig *config, LogSink **ret_sink, GError **error)
{
        g_return_val_if_fail(sinks, -EINVAL);
        g_return_val_if_fail(config, -EINVAL);
        g_return_val_if_fail(ret_sink, -EINVAL);

        LogBuffer *b = g_new0(LogBuffer, 1);
        b->base.ops = &log_buffer_ops;
        b->sinks = sinks;
        b->config = *config;
        if (!b->config.drop_report_interval_ms)
                b->config.drop_report_interval_ms = LOG_BUFFER_DROP_REPORT_MS;
        b->watch = g_new0(LogBufferSinkWatch, MAX(sinks->len, 1));
        b->stats.size = config->size;
        g_mutex_init(&b->lock);
        g_cond_init(&b->work_cond);
        g_cond_init(&b->done_cond);
        g_queue_init(&b->items);
        g_queue_init(&b->notices);

        b->threaded = config->size > 0 && sinks->len > 0;
        if (b->threaded) {
                /* Signals stay with the main thread: SIGCHLD reaches the
                 * signalfd only while every thread blocks it, and no handler
                 * may run on the writer. The thread inherits this mask. */
                sigset_t all, saved;
                sigfillset(&all);
                pthread_sigmask(SIG_BLOCK, &all, &saved);
                g_autoptr(GError) thread_error = NULL;
                b->thread = g_thread_try_new("ctrmon-log", log_buffer_thread, b, &thread_error);
                pthread_sigmask(SIG_SETMASK, &saved, NULL);
                if (!b->thread) {
                        int r = ctrmon_set_error(error, EAGAIN, "Failed to start the log writer thread: %s",
                                                 thread_error->message);
                        b->sinks = NULL; /* not taken on failure */
                        log_buffer_free(&b->base);
                        return r;
                }
        }
        *ret_sink = &b->base;
        return 0;
}

void log_buffer_get_stats(LogSink *sink, LogBufferStats *ret_stats)
{
        LogBuffer *b = log_buffer_from(sink);
        g_mutex_lock(&b->lock);
        *ret_stats = b->stats;
        g_mutex_unlock(&b->lock);
}
