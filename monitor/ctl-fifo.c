/* ctl-fifo: the <bundle>/ctl and <bundle>/winsz FIFOs (spec §5). Owns the two
 * FIFOs, their read and keep-alive write ends, their GSources and the line
 * protocol (parsing and line assembly with conmon's rules). It never touches
 * the pty or the logs itself: requests go to the caller's CtlHandlers. It
 * never logs above g_debug; a bad line from the engine is not our failure. */
#include "ctl-fifo.h"

#include "fs-util.h"

#include <ctrmon/error.h>
#include <ctrmon/fd-util.h>

#include <errno.h>
#include <fcntl.h>
#include <glib-unix.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* Both directions of the winsz range check (spec §5.1): rows and columns. */
#define CTL_DIM_MAX 1000

typedef enum {
        CTL_FIFO_CTL,
        CTL_FIFO_WINSZ,
} CtlFifoKind;

typedef struct {
        CtlFifos *owner;
        CtlFifoKind kind;
        const char *name;
        char *path;
        int read_fd;
        int write_fd;
        FsFileId id;           /* the FIFO we made, to remove only that one */
        GSource *source;
        CtlLineBuffer lb;
} CtlFifo;

struct CtlFifos {
        CtlHandlers handlers;
        CtlFifo ctl;
        CtlFifo winsz;
        bool closed;
};

/* --- the line protocol --- */

static bool ctl_dim_valid(int v)
{
        return v >= 0 && v <= CTL_DIM_MAX;
}

int ctl_parse_line(const char *line, CtlMessage *ret_message)
{
        int type, a, b;

        g_return_val_if_fail(line != NULL, -EINVAL);

        /* Exactly conmon's parse: three %d conversions. sscanf skips leading
         * whitespace, accepts leading zeros and signs, stops at the first
         * non-digit ("1 2 3.5" is 1 2 3, valid; "1 0x10 5" and "1 1.5 2"
         * yield fewer than three numbers, invalid) and ignores whatever
         * follows the third number ("1 2 2 3" is a 2x2 resize). */
        if (sscanf(line, "%d %d %d", &type, &a, &b) != 3)
                return -EINVAL;
        if (type != CTL_MSG_RESIZE && type != CTL_MSG_REOPEN_LOGS)
                return -EINVAL;
        /* conmon 2.2 range-checks both numbers for both types, so a reopen
         * request needs two dummy numbers in range ("2 0 0"). */
        if (!ctl_dim_valid(a) || !ctl_dim_valid(b))
                return -EINVAL;

        if (ret_message)
                *ret_message = (CtlMessage){ .type = type, .a = a, .b = b };
        return 0;
}

int ctl_parse_winsz_line(const char *line, int *ret_rows, int *ret_cols)
{
        int rows, cols;

        g_return_val_if_fail(line != NULL, -EINVAL);

        if (sscanf(line, "%d %d", &rows, &cols) != 2)
                return -EINVAL;
        if (!ctl_dim_valid(rows) || !ctl_dim_valid(cols))
                return -EINVAL;

        if (ret_rows)
                *ret_rows = rows;
        if (ret_cols)
                *ret_cols = cols;
        return 0;
}

/* Hand out the complete lines at the start of lb->buf. Returns false if a
 * line was invalid (the caller then throws away the rest of the read). */
static bool ctl_line_buffer_drain(CtlLineBuffer *lb,
                                  bool (*line_cb)(const char *line, void *user_data),
                                  void *user_data)
{
        size_t start = 0;
        char *nl;

        while ((nl = memchr(lb->buf + start, '\n', lb->len - start))) {
                bool skip = lb->discarding;

                *nl = '\0';
                /* The first newline after an overlong line ends it; what
                 * came before belongs to that line and is never parsed. */
                lb->discarding = false;
                /* Unlike conmon, which hands sscanf the whole rest of the
                 * buffer, the parser sees this line only: "1 2\n3 4 5\n"
                 * must not turn into a 2x3 resize by borrowing a number
                 * from the next line. */
                if (!skip && !line_cb(lb->buf + start, user_data)) {
                        lb->len = 0;
                        return false;
                }
                start = (size_t) (nl - lb->buf) + 1;
        }

        if (start == 0 && lb->len >= CTL_READ_MAX) {
                /* Full and no newline: no valid message is this long. Drop
                 * it and skip up to the next newline, so the tail of the
                 * overlong line is not mistaken for a new message. */
                lb->len = 0;
                lb->discarding = true;
                return true;
        }

        memmove(lb->buf, lb->buf + start, lb->len - start);
        lb->len -= start;
        return true;
}

void ctl_line_buffer_feed(CtlLineBuffer *lb, const char *data, size_t len,
                          bool (*line_cb)(const char *line, void *user_data), void *user_data)
{
        g_return_if_fail(lb != NULL);
        g_return_if_fail(line_cb != NULL);
        g_return_if_fail(data != NULL || len == 0);

        /* The FIFO reader never reads more than fits, but callers may feed
         * bigger chunks: take them in buffer-sized pieces, still as one
         * read as far as the discard rule is concerned. */
        while (len > 0) {
                size_t room = CTL_READ_MAX - lb->len;
                size_t n = MIN(len, room);

                memcpy(lb->buf + lb->len, data, n);
                lb->len += n;
                lb->buf[lb->len] = '\0';
                data += n;
                len -= n;

                if (!ctl_line_buffer_drain(lb, line_cb, user_data))
                        return;
        }
}

/* --- the FIFOs --- */

static bool ctl_handle_ctl_line(const char *line, void *user_data)
{
        CtlFifos *fifos = user_data;
        CtlMessage msg;

        if (ctl_parse_line(line, &msg) < 0) {
                g_debug("Invalid ctl message \"%s\", discarding the rest of the read", line);
                return false;
        }

        switch (msg.type) {
        case CTL_MSG_RESIZE:
                /* conmon writes "a b\n" into its own winsz FIFO and resizes
                 * when it reads that back; that round trip only delays the
                 * resize (and fills the FIFO while no pty exists), so ctrmon
                 * calls the resize handler directly. */
                if (fifos->handlers.resize_cb)
                        fifos->handlers.resize_cb(msg.a, msg.b, fifos->handlers.user_data);
                break;
        case CTL_MSG_REOPEN_LOGS:
                if (fifos->handlers.reopen_cb)
                        fifos->handlers.reopen_cb(fifos->handlers.user_data);
                break;
        default:
                g_assert_not_reached();
        }
        return true;
}

static bool ctl_handle_winsz_line(const char *line, void *user_data)
{
        CtlFifos *fifos = user_data;
        int rows, cols;

        if (ctl_parse_winsz_line(line, &rows, &cols) < 0) {
                g_debug("Invalid winsz message \"%s\", discarding the rest of the read", line);
                return false;
        }
        if (fifos->handlers.resize_cb)
                fifos->handlers.resize_cb(rows, cols, fifos->handlers.user_data);
        return true;
}

static gboolean ctl_fifo_readable_cb(int fd, GIOCondition condition, gpointer user_data)
{
        CtlFifo *fifo = user_data;
        char data[CTL_READ_MAX];
        size_t room = CTL_READ_MAX - fifo->lb.len;
        ssize_t n;

        /* One read per wake-up, never more than the buffer has room for:
         * the "rest of the read" an invalid line discards is exactly what
         * one conmon read() would have returned. */
        n = read(fd, data, room);
        if (n < 0) {
                if (errno != EAGAIN && errno != EINTR)
                        g_debug("Failed to read from %s: %s", fifo->path, g_strerror(errno));
                return G_SOURCE_CONTINUE;
        }
        /* 0 cannot mean EOF while we hold a write end; nothing to do. */
        if (n == 0)
                return G_SOURCE_CONTINUE;

        ctl_line_buffer_feed(&fifo->lb, data, (size_t) n,
                             fifo->kind == CTL_FIFO_CTL ? ctl_handle_ctl_line : ctl_handle_winsz_line,
                             fifo->owner);
        return G_SOURCE_CONTINUE;
}

static void ctl_fifo_close(CtlFifo *fifo, bool unlink_file)
{
        if (fifo->source) {
                g_source_destroy(fifo->source);
                g_clear_pointer(&fifo->source, g_source_unref);
        }
        ctrmon_close_fd(&fifo->read_fd);
        ctrmon_close_fd(&fifo->write_fd);
        /* Only if the name still is our FIFO: the engine may have started
         * the next monitor on this bundle (restart policy), whose fresh
         * FIFO must survive our exit. */
        if (unlink_file && fifo->path) {
                int r = fs_unlink_if_same_at(AT_FDCWD, fifo->path, &fifo->id);
                if (r < 0)
                        g_debug("Failed to remove %s: %s", fifo->path, g_strerror(-r));
                else if (r == 0)
                        g_debug("Not removing %s: it is no longer ours", fifo->path);
        }
}

static int ctl_fifo_open(CtlFifo *fifo, const char *bundle, GError **error)
{
        fifo->path = g_build_filename(bundle, fifo->name, NULL);

        /* Replace whatever is there: a FIFO left by an earlier monitor (they
         * are never removed at exit), or a stray file. */
        if (unlink(fifo->path) < 0 && errno != ENOENT)
                return ctrmon_set_error_errno(error, errno, "Failed to remove existing %s", fifo->path);
        if (mkfifo(fifo->path, 0660) < 0)
                return ctrmon_set_error_errno(error, errno, "Failed to create FIFO %s", fifo->path);

        /* O_NOFOLLOW: whatever replaced the FIFO since mkfifo() is not
         * followed, and it must still be a FIFO. */
        fifo->read_fd = open(fifo->path, O_RDONLY | O_NONBLOCK | O_NOFOLLOW | O_CLOEXEC);
        if (fifo->read_fd < 0)
                return ctrmon_set_error_errno(error, errno, "Failed to open %s for reading", fifo->path);
        struct stat st;
        if (fstat(fifo->read_fd, &st) < 0)
                return ctrmon_set_error_errno(error, errno, "Failed to stat %s", fifo->path);
        if (!S_ISFIFO(st.st_mode))
                return ctrmon_set_error(error, EEXIST, "%s was replaced by something that is not a FIFO", fifo->path);
        fifo->id = (FsFileId) { .dev = st.st_dev, .ino = st.st_ino, .set = true };

        /* Our own writer: the FIFO never reaches EOF, so poll does not
         * report HUP every time the engine's writer closes, and the
         * engine's open(O_WRONLY) never blocks. Opened through the read
         * end, so it is the same FIFO whatever happened at the name since;
         * it does not block, since that read end is open. */
        char self_path[64];
        g_snprintf(self_path, sizeof self_path, "/proc/self/fd/%d", fifo->read_fd);
        fifo->write_fd = open(self_path, O_WRONLY | O_NONBLOCK | O_CLOEXEC);
        if (fifo->write_fd < 0)
                return ctrmon_set_error_errno(error, errno, "Failed to open %s for writing", fifo->path);

        fifo->source = g_unix_fd_source_new(fifo->read_fd, G_IO_IN);
        g_source_set_callback(fifo->source, G_SOURCE_FUNC(ctl_fifo_readable_cb), fifo, NULL);
        g_source_set_name(fifo->source, fifo->kind == CTL_FIFO_CTL ? "ctrmon ctl" : "ctrmon winsz");
        g_source_attach(fifo->source, NULL);
        return 0;
}

int ctl_fifos_new(const char *bundle, const CtlHandlers *handlers, CtlFifos **ret_fifos, GError **error)
{
        g_autoptr(CtlFifos) fifos = NULL;
        int r;

        g_return_val_if_fail(bundle != NULL, -EINVAL);
        g_return_val_if_fail(ret_fifos != NULL, -EINVAL);
        g_return_val_if_fail(error == NULL || *error == NULL, -EINVAL);

        fifos = g_new0(CtlFifos, 1);
        if (handlers)
                fifos->handlers = *handlers;
        fifos->ctl = (CtlFifo){ .owner = fifos, .kind = CTL_FIFO_CTL, .name = "ctl",
                                .read_fd = -1, .write_fd = -1 };
        fifos->winsz = (CtlFifo){ .owner = fifos, .kind = CTL_FIFO_WINSZ, .name = "winsz",
                                  .read_fd = -1, .write_fd = -1 };

        r = ctl_fifo_open(&fifos->ctl, bundle, error);
        if (r < 0)
                return r;
        r = ctl_fifo_open(&fifos->winsz, bundle, error);
        if (r < 0)
                return r;

        *ret_fifos = g_steal_pointer(&fifos);
        return 0;
}

void ctl_fifos_close(CtlFifos *fifos, bool unlink_files)
{
        if (!fifos || fifos->closed)
                return;
        ctl_fifo_close(&fifos->ctl, unlink_files);
        ctl_fifo_close(&fifos->winsz, unlink_files);
        fifos->closed = true;
}

void ctl_fifos_free(CtlFifos *fifos)
{
        if (!fifos)
                return;
        /* conmon leaves the FIFOs behind; whether to remove them is the
         * caller's decision, made with ctl_fifos_close() first. */
        ctl_fifos_close(fifos, false);
        g_free(fifos->ctl.path);
        g_free(fifos->winsz.path);
        g_free(fifos);
}
