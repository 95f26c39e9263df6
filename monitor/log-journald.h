/* The journald log driver (spec §6.4): one journal entry per container line,
 * with conmon's fields (CONTAINER_ID, CONTAINER_NAME, PRIORITY, ...). */
#pragma once

#include "log-sink.h"
#include <stdbool.h>
#include <stdint.h>
#include <sys/uio.h>

typedef struct {
        const char *cid;              /* longer than 12 chars (validated)     */
        const char *name;             /* CONTAINER_NAME, or NULL              */
        const char *tag;              /* CONTAINER_TAG, or NULL               */
        const char *const *labels;    /* extra "NAME=VALUE" fields            */
        bool no_partial_flag;         /* --no-container-partial-message       */
        bool priority_prefix;         /* --log-priority-prefix                */
        const char *socket_path;      /* NULL: JOURNALD_SOCKET_PATH (tests)   */
} JournaldConfig;

/* journald's native socket. The default transport speaks its protocol
 * itself (as sd_journal_sendv() does), so this driver needs no libsystemd. */
#define JOURNALD_SOCKET_PATH "/run/systemd/journal/socket"

/* The transport: sends one entry made of N "FIELD=value" iovecs and returns
 * >= 0 or -errno, like sd_journal_sendv() (the default speaks its protocol). */
typedef int (*JournaldSendFn)(const struct iovec *iov, int n, void *user_data);

int journald_sink_new(const JournaldConfig *config, LogSink **ret_sink, GError **error);

/* Test seam: replace the transport (fn NULL restores the native one). */
void journald_sink_set_sender(LogSink *sink, JournaldSendFn fn, void *user_data);

/* Entries dropped because the transport failed. */
uint64_t journald_sink_get_dropped(const LogSink *sink);

/* Pure: if `line` starts with "<d>" (d in 0..7) return d and skip the prefix
 * (advancing *line, shrinking *len); else return -1. */
int journald_parse_priority(const char **line, size_t *len);
