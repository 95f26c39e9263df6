/* The one interface every log driver implements (k8s-file, journald). The
 * stdio relay hands each chunk it read from the container to every sink, in
 * read order. A sink never blocks the main loop for long and never kills the
 * monitor: a failed write is returned as an error, the caller logs it and goes
 * on. */
#pragma once

#include <glib.h>
#include <stddef.h>
#include <time.h>

/* Values are the attach protocol's stream ids (spec §4.3). */
typedef enum {
        CTRMON_STREAM_STDIN = 1,
        CTRMON_STREAM_STDOUT = 2,
        CTRMON_STREAM_STDERR = 3,
} CtrmonStream;

typedef struct LogSink LogSink;

typedef struct {
        const char *name;
        /* One chunk as read from the container (any bytes, any length).
         * `now` is CLOCK_REALTIME when the chunk was read: every record made
         * from one chunk carries it. */
        int (*write)(LogSink *sink, CtrmonStream stream, const struct timespec *now,
                     const char *buf, size_t len, GError **error);
        /* Container exited: emit what is buffered (journald partial lines). */
        int (*flush)(LogSink *sink, GError **error);
        /* fsync the backing file, if any (NULL: nothing to do). */
        int (*sync)(LogSink *sink, GError **error);
        /* ctl "2 0 0", SIGUSR1 or the control API: reopen / rotate. */
        int (*reopen)(LogSink *sink, GError **error);
        void (*free)(LogSink *sink);
} LogSinkOps;

struct LogSink {
        const LogSinkOps *ops;
};

static inline void log_sink_free(LogSink *sink)
{
        if (sink)
                sink->ops->free(sink);
}
G_DEFINE_AUTOPTR_CLEANUP_FUNC(LogSink, log_sink_free)
