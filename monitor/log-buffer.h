/* The one LogSink the stdio relay writes to: it stands in front of the real
 * sinks (k8s-file, journald) and watches whether their writes fail and
 * recover (a full disk), counting and reporting each outage.
 *
 * Two modes, chosen by --log-buffer-size:
 *   size 0 (default): lossless. Every call goes straight to the real sinks,
 *     so the relay reads only as fast as they write.
 *   size > 0: non-blocking. write() copies the chunk into a buffer bounded
 *     to `size` bytes and returns at once; a writer thread hands chunks to
 *     the real sinks in order. What does not fit is dropped and counted,
 *     never silently. flush() and sync() wait until the thread has written
 *     everything accepted before them; reopen() is queued in order.
 * The real sinks are then only ever called from the writer thread. */
#pragma once

#include "log-sink.h"

#include <glib.h>
#include <stdbool.h>
#include <stdint.h>

typedef struct {
        uint64_t size;             /* --log-buffer-size; 0: lossless mode       */
        uint64_t bytes_queued;     /* accepted, not yet handed to the sinks     */
        uint64_t bytes_queued_max; /* high-water mark of bytes_queued           */
        uint64_t bytes_dropped;    /* container bytes not accepted (buffer full)*/
        uint64_t chunks_dropped;   /* chunks dropped in whole or in part        */
        uint64_t write_errors;     /* failed writes to the real sinks           */
} LogBufferStats;

/* A sink started or stopped failing. `failed_writes` is the number of
 * failed writes of this outage (on resume: the whole outage). */
typedef struct {
        const char *sink;    /* "k8s-file", "journald"                    */
        bool failing;        /* true: writes fail now; false: resumed     */
        const char *message; /* the first error of the outage             */
        uint64_t failed_writes;
} LogBufferSinkState;

typedef struct {
        uint64_t size; /* 0: lossless, synchronous                  */
        /* Reports, all called on the main thread (the default main context):
         * output was dropped (the counts since the previous report; at most
         * one report per `drop_report_interval_ms`, the rest summed up into
         * the next one, and a last one at flush) ... */
        void (*dropped_fn)(uint64_t bytes, uint64_t chunks, const LogBufferStats *totals, void *user_data);
        /* ... a sink started or stopped failing ... */
        void (*sink_state_fn)(const LogBufferSinkState *state, void *user_data);
        /* ... and, on the thread that calls the sinks, right after each call
         * into them: the only safe moment to read their counters. */
        void (*sinks_called_fn)(GPtrArray *sinks, void *user_data);
        void *user_data;
        guint drop_report_interval_ms; /* 0: 1000 */
} LogBufferConfig;

/* Takes `sinks` (LogSink*, with log_sink_free as free func) on success. */
int log_buffer_new(GPtrArray *sinks, const LogBufferConfig *config, LogSink **ret_sink, GError **error);

/* Thread-safe snapshot of the counters. */
void log_buffer_get_stats(LogSink *sink, LogBufferStats *ret_stats);
