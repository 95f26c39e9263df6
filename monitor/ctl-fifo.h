/* The control FIFOs <bundle>/ctl and <bundle>/winsz (spec §5): resize and
 * reopen-logs requests from the engine. The monitor keeps a write end of each
 * open itself so writers never block and readers never see a HUP storm. */
#pragma once

#include <glib.h>
#include <stdbool.h>
#include <stddef.h>

typedef struct CtlFifos CtlFifos;

typedef struct {
        void (*resize_cb)(int rows, int cols, void *user_data);
        void (*reopen_cb)(void *user_data);
        void *user_data;
} CtlHandlers;

/* mkfifo <bundle>/ctl and <bundle>/winsz (0660 before umask; existing
 * entries are replaced), open them and add GSources to the default context. */
int ctl_fifos_new(const char *bundle, const CtlHandlers *handlers, CtlFifos **ret_fifos, GError **error);
/* Closes the FIFOs. With `unlink_files`, removes them too (conmon leaves
 * them behind), but only those still ours: a FIFO the engine's next monitor
 * on the bundle has made at the name since is left alone. */
void ctl_fifos_free(CtlFifos *fifos);
void ctl_fifos_close(CtlFifos *fifos, bool unlink_files);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(CtlFifos, ctl_fifos_free)

/* --- the line protocol, pure and unit-tested --- */

typedef enum {
        CTL_MSG_RESIZE = 1,
        CTL_MSG_REOPEN_LOGS = 2,
} CtlMessageType;

typedef struct {
        int type;
        int a;
        int b;
} CtlMessage;

/* Parse one ctl line ("<type> <a> <b>", three %d, extra tokens ignored):
 * 0 and *ret filled if valid (type 1 or 2, 0 <= a,b <= 1000), else -EINVAL. */
int ctl_parse_line(const char *line, CtlMessage *ret_message);
/* Parse one winsz line ("<rows> <cols>", 0..1000 each). */
int ctl_parse_winsz_line(const char *line, int *ret_rows, int *ret_cols);

/* Line assembly with conmon's rules: reads of at most CTL_READ_MAX bytes are
 * appended; complete lines are handed out in order; an invalid line discards
 * the rest of the bytes from the same read; an incomplete tail waits for the
 * next read; a line that never fits the buffer is dropped. */
#define CTL_READ_MAX 199
typedef struct {
        char buf[CTL_READ_MAX + 1];
        size_t len;
        /* Set after an overlong line was dropped: bytes up to the next
         * newline are its tail and are skipped. Zero-initialise the buffer. */
        bool discarding;
} CtlLineBuffer;
/* Feed one read's bytes; `line_cb` is called per complete line and returns
 * false for an invalid line (the rest of this read is then discarded). */
void ctl_line_buffer_feed(CtlLineBuffer *lb, const char *data, size_t len,
                          bool (*line_cb)(const char *line, void *user_data), void *user_data);
