/* The control API's "logs": reading the k8s-file log back as lines. The
 * record parser and the line assembler are pure, for the unit tests. */
#pragma once

#include "log-sink.h"

#include <glib.h>
#include <stdbool.h>
#include <stddef.h>

/* Pure: split one k8s-file record without its '\n':
 * "<time> <stdout|stderr> <P|F> <text>". Pointers point into `rec`.
 * Returns 0, or -EINVAL for anything else. */
int control_logs_parse_record(const char *rec, size_t len, const char **ret_time, size_t *ret_time_len,
                              CtrmonStream *ret_stream, bool *ret_full, const char **ret_text,
                              size_t *ret_text_len);

typedef struct {
        const char *time;       /* of the record that completed the line */
        CtrmonStream stream;
        const char *text;       /* without '\n', valid UTF-8            */
        bool partial;           /* no F record (yet)                    */
} ControlLogLine;

typedef void (*ControlLogLineFn)(const ControlLogLine *line, void *user_data);

/* Reassembles lines from P/F records fed as raw file bytes in any chunks. */
typedef struct ControlLogAssembler ControlLogAssembler;

/* `only`: 0 for both streams, else the one stream to keep. */
ControlLogAssembler *control_log_assembler_new(CtrmonStream only);
/* Every line completed by these bytes goes to `fn`, in file order. A record
 * not yet ended by '\n' is kept for the next call. */
void control_log_assembler_feed(ControlLogAssembler *a, const char *buf, size_t len, ControlLogLineFn fn,
                                void *user_data);
/* The lines begun but not completed (stdout's, then stderr's), as partial
 * lines; `take` also forgets them. */
void control_log_assembler_partials(ControlLogAssembler *a, bool take, ControlLogLineFn fn, void *user_data);
/* The file was replaced or truncated: drop an unfinished record (its rest
 * is not coming), keep begun lines (their rest follows in the new file). */
void control_log_assembler_reset_record(ControlLogAssembler *a);
void control_log_assembler_free(ControlLogAssembler *a);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(ControlLogAssembler, control_log_assembler_free)
