/* The journald log driver (spec §6.4): one journal entry per container line,
 * with conmon's fields (CONTAINER_ID, CONTAINER_NAME, PRIORITY, ...). */
#pragma once

#include "log-sink.h"
#include <stdbool.h>

typedef struct {
        const char *cid;              /* longer than 12 chars (validated)     */
        const char *name;             /* CONTAINER_NAME, or NULL              */
        const char *tag;              /* CONTAINER_TAG, or NULL               */
        const char *const *labels;    /* extra "NAME=VALUE" fields            */
        bool no_partial_flag;         /* --no-container-partial-message       */
} JournaldConfig;

int journald_sink_new(const JournaldConfig *config, LogSink **ret_sink, GError **error);

/* Pure: if `line` starts with "<d>" (d in 0..7) return d and skip the prefix
 * (advancing *line, shrinking *len); else return -1. */
int journald_parse_priority(const char **line, size_t *len);
