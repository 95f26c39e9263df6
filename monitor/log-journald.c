/* journald sink (spec §6.4): container lines become journal entries with
 * conmon's field set, in conmon's order; partial lines are buffered per stream
 * up to 8192 bytes and flagged CONTAINER_PARTIAL_MESSAGE when sent incomplete.
 * It speaks journald's native protocol itself (no libsystemd) on one socket
 * opened with the first entry; a failed send drops that entry only, is
 * counted, and is returned for the relay to log. */
#include "log-journald.h"

#include "ctrmon/error.h"

#include <fcntl.h>
#include <stddef.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

/* conmon's STDIO_BUF_SIZE: the partial buffer and the rule "buffer a
 * fragment only while it fits into what is left" both use it. */
#define JOURNALD_PARTIAL_MAX 8192

/* MESSAGE, CONTAINER_ID_FULL, PRIORITY, CONTAINER_ID, CONTAINER_TAG,
 * CONTAINER_NAME, SYSLOG_IDENTIFIER, CONTAINER_PARTIAL_MESSAGE. */
#define JOURNALD_FIXED_FIELDS 8

typedef struct {
        char buf[JOURNALD_PARTIAL_MAX];
        size_t len;
} JournaldPartial;

/* As sd-journal: a send buffer big enough that a burst of entries does
 * not block the monitor while journald catches up. */
#define JOURNALD_SNDBUF (8 * 1024 * 1024)

typedef struct {
        const char *path;             /* JOURNALD_SOCKET_PATH, or a test's   */
        int fd;                       /* -1 until the first entry            */
} JournaldSocket;

typedef struct {
        LogSink base;
        /* Every field that does not change per entry, preformatted once. */
        char *field_id_full;
        char *field_id;
        char *field_tag;              /* NULL without --log-tag */
        char *field_name;             /* NULL without --name */
        char *field_ident;
        char **labels;
        bool no_partial_flag;
        bool priority_prefix;
        JournaldPartial partial[2];   /* stdout, stderr */
        /* Reused per entry, so the hot path does not allocate: "MESSAGE="
         * followed by the buffered fragment and the new line. */
        GString *message;
        struct iovec *iov;            /* JOURNALD_FIXED_FIELDS + labels */
        JournaldSocket socket;        /* the native transport's state */
        JournaldSendFn send;
        void *send_data;
        uint64_t dropped_entries;
} JournaldSink;

static const char *const journald_priority_fields[8] = {
        "PRIORITY=0", "PRIORITY=1", "PRIORITY=2", "PRIORITY=3",
        "PRIORITY=4", "PRIORITY=5", "PRIORITY=6", "PRIORITY=7",
};

/* The journal's native protocol, spoken as sd_journal_sendv() speaks it
 * (systemd's journal-send.c), so the journald driver needs no libsystemd:
 * one datagram per entry, "FIELD=value\n" per field, or "FIELD\n", the
 * value's length (64-bit little endian), the value and "\n" when the value
 * holds a newline. An entry too big for a datagram goes as a sealed memfd. */
static int journald_socket_get_fd(JournaldSocket *js)
{
        if (js->fd >= 0)
                return js->fd;
        int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
        if (fd < 0)
                return -errno;
        int size = JOURNALD_SNDBUF;
        if (setsockopt(fd, SOL_SOCKET, SO_SNDBUFFORCE, &size, sizeof size) < 0)
                (void) setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &size, sizeof size);
        js->fd = fd;
        return fd;
}

static int journald_socket_send_memfd(int fd, const struct msghdr *datagram)
{
        int data_fd = memfd_create("journal-data", MFD_CLOEXEC | MFD_ALLOW_SEALING);
        if (data_fd < 0)
                return -errno;
        int r = 0;
        if (writev(data_fd, datagram->msg_iov, (int) datagram->msg_iovlen) < 0 ||
            fcntl(data_fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE | F_SEAL_SEAL) < 0)
                r = -errno;
        if (r == 0) {
                union {
                        struct cmsghdr align;
                        char buf[CMSG_SPACE(sizeof(int))];
                } control = { 0 };
                struct msghdr mh = {
                        .msg_name = datagram->msg_name,
                        .msg_namelen = datagram->msg_namelen,
                        .msg_control = control.buf,
                        .msg_controllen = sizeof control.buf,
                };
                struct cmsghdr *cmsg = CMSG_FIRSTHDR(&mh);
                cmsg->cmsg_level = SOL_SOCKET;
                cmsg->cmsg_type = SCM_RIGHTS;
                cmsg->cmsg_len = CMSG_LEN(sizeof(int));
                memcpy(CMSG_DATA(cmsg), &data_fd, sizeof(int));
                if (sendmsg(fd, &mh, MSG_NOSIGNAL) < 0 && errno != ENOENT)
                        r = -errno;
        }
        close(data_fd);
        return r;
}

static int journald_socket_sendv(JournaldSocket *js, const struct iovec *iov, int n)
{
        struct iovec *w = g_newa(struct iovec, (size_t) n * 5);
        uint64_t *value_len = g_newa(uint64_t, (size_t) n);
        size_t j = 0;
        for (int i = 0; i < n; i++) {
                const char *field = iov[i].iov_base;
                size_t len = iov[i].iov_len;
                const char *eq = field && len > 1 ? memchr(field, '=', len) : NULL;
                if (!eq || eq == field)
                        return -EINVAL;
                const char *nl = memchr(field, '\n', len);
                if (nl) {
                        if (nl < eq)
                                return -EINVAL;
                        size_t name_len = (size_t) (eq - field);
                        value_len[i] = GUINT64_TO_LE(len - name_len - 1);
                        w[j++] = (struct iovec) { (void *) field, name_len };
                        w[j++] = (struct iovec) { (void *) "\n", 1 };
                        w[j++] = (struct iovec) { &value_len[i], sizeof value_len[i] };
                        w[j++] = (struct iovec) { (void *) (eq + 1), len - name_len - 1 };
                } else {
                        w[j++] = iov[i];
                }
                w[j++] = (struct iovec) { (void *) "\n", 1 };
        }

        int fd = journald_socket_get_fd(js);
        if (fd < 0)
                return fd;
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        if (strlen(js->path) >= sizeof sa.sun_path)
                return -ENAMETOOLONG;
        strcpy(sa.sun_path, js->path);
        struct msghdr mh = {
                .msg_name = &sa,
                .msg_namelen = (socklen_t) (offsetof(struct sockaddr_un, sun_path) + strlen(sa.sun_path) + 1),
                .msg_iov = w,
                .msg_iovlen = j,
        };
        if (sendmsg(fd, &mh, MSG_NOSIGNAL) >= 0)
                return 0;
        /* As sd-journal: no journal running is not an error (the entry is
         * lost, as it would be with conmon). */
        if (errno == ENOENT)
                return 0;
        if (errno != EMSGSIZE && errno != ENOBUFS && errno != EAGAIN)
                return -errno;
        return journald_socket_send_memfd(fd, &mh);
}

/* The fields sd_journal_sendv_with_location() appends. __FILE__ is relative
 * to the build directory: name the source file the same way on every build
 * instead (conmon's say src/ctr_logging.c). */
static int journald_send_native(const struct iovec *iov, int n, void *user_data)
{
        static const struct iovec location[] = {
                { (void *) "CODE_FILE=monitor/log-journald.c", sizeof "CODE_FILE=monitor/log-journald.c" - 1 },
                { (void *) "CODE_LINE=" G_STRINGIFY(__LINE__), sizeof "CODE_LINE=" G_STRINGIFY(__LINE__) - 1 },
                { (void *) "CODE_FUNC=journald_send_native", sizeof "CODE_FUNC=journald_send_native" - 1 },
        };
        struct iovec *all = g_newa(struct iovec, (size_t) n + G_N_ELEMENTS(location));
        memcpy(all, iov, sizeof *iov * (size_t) n);
        memcpy(all + n, location, sizeof location);
        return journald_socket_sendv(user_data, all, n + (int) G_N_ELEMENTS(location));
}

int journald_parse_priority(const char **line, size_t *len)
{
        const char *p = *line;
        if (*len >= 3 && p[0] == '<' && p[1] >= '0' && p[1] <= '7' && p[2] == '>') {
                int prio = p[1] - '0';
                *line += 3;
                *len -= 3;
                return prio;
        }
        return -1;
}

static void journald_add_field(struct iovec *iov, size_t *n, const char *field)
{
        if (!field)
                return;
        iov[*n].iov_base = (void *) field;
        iov[*n].iov_len = strlen(field);
        (*n)++;
}

/* One entry: MESSAGE=<part><text>. `priority` < 0 means the stream's
 * default (stdout 6, stderr 3). */
static int journald_send(JournaldSink *s, CtrmonStream stream, int priority, const char *part, size_t part_len,
                         const char *text, size_t text_len, bool partial, GError **error)
{
        if (priority < 0)
                priority = stream == CTRMON_STREAM_STDERR ? 3 : 6;

        g_string_truncate(s->message, strlen("MESSAGE="));
        g_string_append_len(s->message, part, (gssize) part_len);
        g_string_append_len(s->message, text, (gssize) text_len);

        size_t n = 0;
        s->iov[n].iov_base = s->message->str;
        s->iov[n].iov_len = s->message->len;
        n++;
        journald_add_field(s->iov, &n, s->field_id_full);
        journald_add_field(s->iov, &n, journald_priority_fields[priority]);
        journald_add_field(s->iov, &n, s->field_id);
        journald_add_field(s->iov, &n, s->field_tag);
        journald_add_field(s->iov, &n, s->field_name);
        journald_add_field(s->iov, &n, s->field_ident);
        if (partial && !s->no_partial_flag)
                journald_add_field(s->iov, &n, "CONTAINER_PARTIAL_MESSAGE=true");
        for (char **l = s->labels; l && *l; l++)
                journald_add_field(s->iov, &n, *l);

        int r = s->send(s->iov, (int) n, s->send_data);
        if (r < 0) {
                /* conmon gives up on the rest of the chunk here; we drop only
                 * this entry and go on with the next line. */
                s->dropped_entries++;
                return ctrmon_set_error_errno(error, r, "Failed to send a log entry to journald");
        }
        return 0;
}

/* Per line of one read of at most 8192 bytes, as conmon 2.2.x:
 *  - a fragment (no '\n') shorter than the room left in the stream's buffer
 *    is buffered and nothing is sent;
 *  - otherwise (a complete line, or a fragment that does not fit) one entry
 *    is sent with the buffered bytes in front, partial if it has no '\n'.
 * Priority prefix "<d>": looked for only when an entry is sent with nothing
 * buffered, at the start of the new line. A fragment that gets buffered is
 * copied verbatim, so "<3>" at its start stays text and its entry gets the
 * stream's priority, when the line is completed and at exit alike. This is
 * conmon's behaviour (its parser runs only with an empty buffer) and it is
 * the same rule that makes a prefix split across reads plain text; the
 * k8s-file log keeps such a prefix verbatim as well. */
static int journald_write_read(JournaldSink *s, CtrmonStream stream, const char *buf, size_t len, GError **error)
{
        JournaldPartial *part = &s->partial[stream == CTRMON_STREAM_STDERR ? 1 : 0];
        int ret = 0;

        while (len > 0) {
                const char *nl = memchr(buf, '\n', len);
                size_t line_len = nl ? (size_t) (nl - buf) + 1 : len;
                const char *text = buf;
                size_t text_len = line_len;
                buf += line_len;
                len -= line_len;

                if (!nl && line_len < JOURNALD_PARTIAL_MAX - part->len) {
                        memcpy(part->buf + part->len, text, line_len);
                        part->len += line_len;
                        break; /* a fragment is always the end of the read */
                }

                /* Off by default: podman 4's journald reader takes only
                 * PRIORITY 6 (stdout) and 3 (stderr) and stops `podman logs`
                 * at any other entry, so conmon 2.2's prefix rule is opt-in. */
                int priority = s->priority_prefix && part->len == 0 ? journald_parse_priority(&text, &text_len) : -1;
                g_autoptr(GError) local = NULL;
                /* A complete line keeps its '\n' in MESSAGE, as conmon. */
                int r = journald_send(s, stream, priority, part->buf, part->len, text, text_len, !nl, &local);
                part->len = 0;
                if (r < 0 && ret == 0) {
                        ret = r;
                        g_propagate_error(error, g_steal_pointer(&local));
                }
        }
        return ret;
}

/* The relay reads up to 64 KiB at once, conmon at most 8192 bytes (its
 * STDIO_BUF_SIZE), and the rules above depend on the read size: a 20000-byte
 * fragment read at once would be one entry, conmon makes 8192 + 8192 + 3616.
 * So a chunk is handled as the consecutive 8192-byte reads conmon would have
 * made of the same pipe contents; entries never exceed 2 * 8192 - 1 bytes. */
static int journald_sink_write(LogSink *sink, CtrmonStream stream, const struct timespec *now,
                               const char *buf, size_t len, GError **error)
{
        JournaldSink *s = (JournaldSink *) sink;
        int ret = 0;

        while (len > 0) {
                size_t window = MIN(len, (size_t) JOURNALD_PARTIAL_MAX);
                g_autoptr(GError) local = NULL;
                int r = journald_write_read(s, stream, buf, window, &local);
                if (r < 0 && ret == 0) {
                        ret = r;
                        g_propagate_error(error, g_steal_pointer(&local));
                }
                buf += window;
                len -= window;
        }
        return ret;
}

/* Container exited: what is still buffered goes out partial (stdout first),
 * with the stream's priority (see above). */
static int journald_sink_flush(LogSink *sink, GError **error)
{
        JournaldSink *s = (JournaldSink *) sink;
        int ret = 0;
        for (int i = 0; i < 2; i++) {
                JournaldPartial *part = &s->partial[i];
                if (!part->len)
                        continue;
                g_autoptr(GError) local = NULL;
                int r = journald_send(s, i ? CTRMON_STREAM_STDERR : CTRMON_STREAM_STDOUT, -1, part->buf, part->len,
                                      "", 0, true, &local);
                part->len = 0;
                if (r < 0 && ret == 0) {
                        ret = r;
                        g_propagate_error(error, g_steal_pointer(&local));
                }
        }
        return ret;
}

static int journald_sink_reopen(LogSink *sink, GError **error)
{
        return 0; /* nothing to reopen: journald has no file of ours */
}

static void journald_sink_free(LogSink *sink)
{
        JournaldSink *s = (JournaldSink *) sink;
        if (!s)
                return;
        g_free(s->field_id_full);
        g_free(s->field_id);
        g_free(s->field_tag);
        g_free(s->field_name);
        g_free(s->field_ident);
        g_strfreev(s->labels);
        if (s->message)
                g_string_free(s->message, TRUE);
        g_free(s->iov);
        if (s->socket.fd >= 0)
                close(s->socket.fd);
        g_free(s);
}

static const LogSinkOps journald_sink_ops = {
        .name = "journald",
        .write = journald_sink_write,
        .flush = journald_sink_flush,
        .sync = NULL,
        .reopen = journald_sink_reopen,
        .free = journald_sink_free,
};

int journald_sink_new(const JournaldConfig *config, LogSink **ret_sink, GError **error)
{
        /* conmon's "longer than 12 characters" rule is enforced on the
         * command line (options.c), where ctrmon's unit mode is exempt: a
         * short ID is then CONTAINER_ID as a whole. */
        if (!config->cid || !*config->cid)
                return ctrmon_set_error(error, EINVAL, "journald needs a container ID");

        JournaldSink *s = g_new0(JournaldSink, 1);
        g_autofree char *short_id = g_strndup(config->cid, 12);
        s->base.ops = &journald_sink_ops;
        s->field_id_full = g_strconcat("CONTAINER_ID_FULL=", config->cid, NULL);
        s->field_id = g_strconcat("CONTAINER_ID=", short_id, NULL);
        s->field_tag = config->tag ? g_strconcat("CONTAINER_TAG=", config->tag, NULL) : NULL;
        s->field_name = config->name ? g_strconcat("CONTAINER_NAME=", config->name, NULL) : NULL;
        /* tag, else name, else the short id. */
        s->field_ident = g_strconcat("SYSLOG_IDENTIFIER=",
                                     config->tag ? config->tag : config->name ? config->name : short_id, NULL);
        s->labels = g_strdupv((char **) config->labels);
        s->no_partial_flag = config->no_partial_flag;
        s->priority_prefix = config->priority_prefix;
        s->message = g_string_sized_new(strlen("MESSAGE=") + 2 * JOURNALD_PARTIAL_MAX);
        g_string_append(s->message, "MESSAGE=");
        s->iov = g_new(struct iovec, JOURNALD_FIXED_FIELDS + (s->labels ? g_strv_length(s->labels) : 0));
        s->send = journald_send_native;
        s->socket.path = config->socket_path ? config->socket_path : JOURNALD_SOCKET_PATH;
        s->socket.fd = -1;
        s->send_data = &s->socket;
        *ret_sink = &s->base;
        return 0;
}

void journald_sink_set_sender(LogSink *sink, JournaldSendFn fn, void *user_data)
{
        JournaldSink *s = (JournaldSink *) sink;
        g_return_if_fail(sink && sink->ops == &journald_sink_ops);
        s->send = fn ? fn : journald_send_native;
        s->send_data = fn ? user_data : &s->socket;
}

uint64_t journald_sink_get_dropped(const LogSink *sink)
{
        const JournaldSink *s = (const JournaldSink *) sink;
        g_return_val_if_fail(sink && sink->ops == &journald_sink_ops, 0);
        return s->dropped_entries;
}
