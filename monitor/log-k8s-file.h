/* The k8s-file log driver: CRI's log format, byte-exact with conmon 2.2.1
 * (spec §6.2, §6.3): "<RFC3339Nano local time> <stdout|stderr> <F|P> <text>\n",
 * size limits, truncation or rotation on reopen. */
#pragma once

#include "log-sink.h"
#include "log-timestamp.h" /* k8s_file_format_timestamp() */
#include <stdbool.h>
#include <stdint.h>

typedef struct {
        const char *path;
        int fd;                          /* already open (O_APPEND); taken over */
        int64_t size_max;                /* per file; <= 0 unlimited          */
        int64_t global_size_max;         /* all files ever; <= 0 unlimited    */
        bool rotate;                     /* --log-rotate                      */
        int max_files;                   /* --log-max-files                   */
        const char *const *allowlist_dirs;
} K8sFileConfig;

int k8s_file_sink_new(const K8sFileConfig *config, LogSink **ret_sink, GError **error);

/* Counters for stats and tests. */
typedef struct {
        uint64_t bytes_written;          /* record bytes written              */
        uint64_t bytes_dropped;          /* record bytes not written          */
        int64_t current_size;            /* bytes in the current file         */
} K8sFileStats;
void k8s_file_sink_get_stats(LogSink *sink, K8sFileStats *ret_stats);

