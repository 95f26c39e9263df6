/* The control API's "logs": reading the k8s-file log back as lines. The
 * record parser, the line assembler and the backward tail scan are pure and
 * bounded (whatever the input, they hold at most the sizes below), for the
 * unit tests and the fuzz targets. */
#pragma once

#include "context.h"
#include "log-sink.h"

#include <glib.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* A record's time field is at most this long (ours are 35 bytes). */
#define CONTROL_LOGS_TIME_MAX 64
/* A record longer than this (without its '\n') is not one the k8s-file
 * sink wrote (its records are at most one 128 KiB read plus the header):
 * it is skipped like any other line that is not a record. */
#define CONTROL_LOGS_RECORD_MAX (256 * 1024)
/* A line (P records joined with their F) longer than this is handed out in
 * pieces of at most this many bytes, each but the last "partial", so that
 * a line without newline costs bounded memory however long it gets. */
#define CONTROL_LOGS_LINE_MAX (64 * 1024)

/* Pure: split one k8s-file record without its '\n':
 * "<time> <stdout|stderr> <P|F> <text>". Pointers point into `rec`.
 * Returns 0, or -EINVAL for anything else (also a time field longer than
 * CONTROL_LOGS_TIME_MAX). */
int control_logs_parse_record(const char *rec, size_t len, const char **ret_time, size_t *ret_time_len,
                              CtrmonStream *ret_stream, bool *ret_full, const char **ret_text,
                              size_t *ret_text_len);

typedef struct {
        const char *time;       /* of the last record of the line (piece) */
        CtrmonStream stream;
        const char *text;       /* without '\n', valid UTF-8              */
        bool partial;           /* the line goes on (no F record yet)     */
} ControlLogLine;

typedef void (*ControlLogLineFn)(const ControlLogLine *line, void *user_data);

/* Reassembles lines from P/F records fed as raw file bytes in any chunks.
 * It holds at most one record (CONTROL_LOGS_RECORD_MAX) and one line piece
 * per stream (CONTROL_LOGS_LINE_MAX). */
typedef struct ControlLogAssembler ControlLogAssembler;

/* `only`: 0 for both streams, else the one stream to keep. */
ControlLogAssembler *control_log_assembler_new(CtrmonStream only);
/* Hand nothing out for the first `skip_stdout` / `skip_stderr` lines of
 * each stream (every piece of them); for a tail (ControlLogTailRange). */
void control_log_assembler_set_skip(ControlLogAssembler *a, uint64_t skip_stdout, uint64_t skip_stderr);
/* Every line completed by these bytes goes to `fn`, in file order, and
 * every CONTROL_LOGS_LINE_MAX bytes of a longer one as a partial piece. A
 * record not yet ended by '\n' is kept for the next call. */
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

/* The last N lines of a log without reading it all: the file is fed to the
 * scan backwards in blocks from its end, until the scan knows where the
 * assembler must start so that it completes those N lines, and how many
 * older lines of each stream it completes first (to skip). Lines are
 * ordered by their last record: an F, or for a line still being written
 * (P records with text after the stream's last F) the stream's latest
 * record. It reads back until N lines and where each kept stream's oldest
 * begins are known (further only past P records without text, whose line
 * is unknown until a record with text or an F). O(1) memory. */
typedef struct ControlLogTailScan ControlLogTailScan;

typedef struct {
        off_t start;            /* feed the assembler [start, end)       */
        off_t end;              /* after the last '\n' of the file       */
        uint64_t skip[2];       /* lines to skip: stdout's, stderr's     */
} ControlLogTailRange;

/* `size`: the file's size; `lines`: N. */
ControlLogTailScan *control_log_tail_scan_new(CtrmonStream only, uint64_t lines, off_t size);
/* The offset the next block must end at (it starts at `size`). */
off_t control_log_tail_scan_next(const ControlLogTailScan *s);
/* Feed the `len` bytes just before control_log_tail_scan_next(). Returns
 * true once the range is known (feed nothing more), false for more. */
bool control_log_tail_scan_feed(ControlLogTailScan *s, const char *block, size_t len);
bool control_log_tail_scan_done(const ControlLogTailScan *s);
/* Only once done. */
void control_log_tail_scan_range(const ControlLogTailScan *s, ControlLogTailRange *ret_range);
void control_log_tail_scan_free(ControlLogTailScan *s);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(ControlLogTailScan, control_log_tail_scan_free)

/* After the container's exit: readers still delivering their last lines
 * (and "log-end"). The exit linger should run the loop while this is true
 * (control_exit_pending()); its deadline bounds a client that does not
 * read. */
bool control_logs_pending(CtrmonContext *ctx);
