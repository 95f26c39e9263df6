/* "logs": the container's k8s-file log read back as lines (P records joined
 * with their F), the last N of them, and with "follow" every line written
 * afterwards as a notification until the container exits. Followers poll
 * the file (100 ms) from their own descriptor and never touch the sink:
 * the log's writer stays the only writer, rotation and truncation are
 * noticed by inode and size. */
#include "control-logs.h"

#include "control-methods.h"
#include "diag.h"
#include "ctrmon/fd-util.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define CONTROL_LOGS_POLL_MS 100
#define CONTROL_LOGS_READ_CHUNK (64 * 1024)

/* ------------------------------------------------------------ parsing */

int control_logs_parse_record(const char *rec, size_t len, const char **ret_time, size_t *ret_time_len,
                              CtrmonStream *ret_stream, bool *ret_full, const char **ret_text,
                              size_t *ret_text_len)
{
        const char *end = rec + len;
        const char *sp = memchr(rec, ' ', len);
        if (!sp || sp == rec)
                return -EINVAL;
        const char *p = sp + 1;
        CtrmonStream stream;
        if ((size_t) (end - p) >= 7 && memcmp(p, "stdout ", 7) == 0)
                stream = CTRMON_STREAM_STDOUT;
        else if ((size_t) (end - p) >= 7 && memcmp(p, "stderr ", 7) == 0)
                stream = CTRMON_STREAM_STDERR;
        else
                return -EINVAL;
        p += 7;
        if (p >= end || (*p != 'P' && *p != 'F'))
                return -EINVAL;
        bool full = *p == 'F';
        p++;
        /* "<tag> <text>"; an empty F line may come without the space. */
        if (p < end) {
                if (*p != ' ')
                        return -EINVAL;
                p++;
        }
        *ret_time = rec;
        *ret_time_len = (size_t) (sp - rec);
        *ret_stream = stream;
        *ret_full = full;
        *ret_text = p;
        *ret_text_len = (size_t) (end - p);
        return 0;
}

/* ------------------------------------------------------------ assembling */

struct ControlLogAssembler {
        CtrmonStream only;
        GString *record;        /* bytes of a record not yet ended by '\n' */
        GString *line[2];       /* begun lines, by stream                  */
        char *line_time[2];
};

static int control_log_index(CtrmonStream s)
{
        return s == CTRMON_STREAM_STDERR ? 1 : 0;
}

ControlLogAssembler *control_log_assembler_new(CtrmonStream only)
{
        ControlLogAssembler *a = g_new0(ControlLogAssembler, 1);
        a->only = only;
        a->record = g_string_new(NULL);
        a->line[0] = g_string_new(NULL);
        a->line[1] = g_string_new(NULL);
        return a;
}

static void control_log_emit(const char *time, CtrmonStream stream, const char *text, size_t len, bool partial,
                             ControlLogLineFn fn, void *user_data)
{
        g_autofree char *valid = g_utf8_make_valid(text, (gssize) len);
        ControlLogLine line = { .time = time, .stream = stream, .text = valid, .partial = partial };
        fn(&line, user_data);
}

static void control_log_assembler_record(ControlLogAssembler *a, const char *rec, size_t len, ControlLogLineFn fn,
                                         void *user_data)
{
        const char *time, *text;
        size_t time_len, text_len;
        CtrmonStream stream;
        bool full;
        if (control_logs_parse_record(rec, len, &time, &time_len, &stream, &full, &text, &text_len) < 0)
                return; /* not ours to judge: skip what is not a record */
        if (a->only && stream != a->only)
                return;
        int i = control_log_index(stream);
        g_free(a->line_time[i]);
        a->line_time[i] = g_strndup(time, time_len);
        if (!full) {
                g_string_append_len(a->line[i], text, (gssize) text_len);
                return;
        }
        if (a->line[i]->len == 0) {
                /* The common case: one F record is one line, no copy. */
                control_log_emit(a->line_time[i], stream, text, text_len, false, fn, user_data);
        } else {
                g_string_append_len(a->line[i], text, (gssize) text_len);
                control_log_emit(a->line_time[i], stream, a->line[i]->str, a->line[i]->len, false, fn, user_data);
                g_string_truncate(a->line[i], 0);
        }
        g_clear_pointer(&a->line_time[i], g_free);
}

void control_log_assembler_feed(ControlLogAssembler *a, const char *buf, size_t len, ControlLogLineFn fn,
                                void *user_data)
{
        const char *p = buf, *end = buf + len;
        while (p < end) {
                const char *nl = memchr(p, '\n', (size_t) (end - p));
                if (!nl) {
                        g_string_append_len(a->record, p, end - p);
                        return;
                }
                if (a->record->len > 0) {
                        g_string_append_len(a->record, p, nl - p);
                        control_log_assembler_record(a, a->record->str, a->record->len, fn, user_data);
                        g_string_truncate(a->record, 0);
                } else {
                        control_log_assembler_record(a, p, (size_t) (nl - p), fn, user_data);
                }
                p = nl + 1;
        }
}

void control_log_assembler_partials(ControlLogAssembler *a, bool take, ControlLogLineFn fn, void *user_data)
{
        static const CtrmonStream streams[] = { CTRMON_STREAM_STDOUT, CTRMON_STREAM_STDERR };
        for (int i = 0; i < 2; i++) {
                if (a->line[i]->len == 0)
                        continue; /* nothing begun (an empty P shows nothing) */
                control_log_emit(a->line_time[i], streams[i], a->line[i]->str, a->line[i]->len, true, fn,
                                 user_data);
                if (take) {
                        g_string_truncate(a->line[i], 0);
                        g_clear_pointer(&a->line_time[i], g_free);
                }
        }
}

void control_log_assembler_reset_record(ControlLogAssembler *a)
{
        g_string_truncate(a->record, 0);
}

void control_log_assembler_free(ControlLogAssembler *a)
{
        if (!a)
                return;
        g_string_free(a->record, TRUE);
        for (int i = 0; i < 2; i++) {
                g_string_free(a->line[i], TRUE);
                g_free(a->line_time[i]);
        }
        g_free(a);
}

/* ------------------------------------------------------------ json */

static json_object *control_log_line_json(const ControlLogLine *line)
{
        json_object *o = json_object_new_object();
        json_object_object_add(o, "time", json_object_new_string(line->time ? line->time : ""));
        json_object_object_add(o, "stream",
                               json_object_new_string(line->stream == CTRMON_STREAM_STDERR ? "stderr" : "stdout"));
        json_object_object_add(o, "text", json_object_new_string(line->text));
        json_object_object_add(o, "partial", json_object_new_boolean(line->partial));
        return o;
}

typedef struct {
        GQueue lines;           /* json_object*, the last `max` */
        gint64 max;             /* < 0: all */
} ControlLogTail;

static void control_log_tail_cb(const ControlLogLine *line, void *user_data)
{
        ControlLogTail *t = user_data;
        if (t->max == 0)
                return;
        g_queue_push_tail(&t->lines, control_log_line_json(line));
        if (t->max > 0 && (gint64) t->lines.length > t->max)
                json_object_put(g_queue_pop_head(&t->lines));
}

/* ------------------------------------------------------------ following */

typedef struct {
        CtrmonContext *ctx;
        ControlCall *call;
        char *path;
        int fd;
        dev_t dev;
        ino_t ino;
        off_t offset;
        ControlLogAssembler *assembler;
        guint timer_id;
} LogFollower;

static void control_log_follower_free(LogFollower *f)
{
        if (!f)
                return;
        if (f->timer_id)
                g_source_remove(f->timer_id);
        ctrmon_close_fd(&f->fd);
        control_log_assembler_free(f->assembler);
        control_call_unref(f->call);
        g_free(f->path);
        g_free(f);
}

/* Read from f->fd to its end, feeding the assembler. */
static void control_log_read_to_end(int fd, off_t *offset, ControlLogAssembler *a, ControlLogLineFn fn,
                                    void *user_data)
{
        g_autofree char *buf = g_malloc(CONTROL_LOGS_READ_CHUNK);
        for (;;) {
                ssize_t n = pread(fd, buf, CONTROL_LOGS_READ_CHUNK, *offset);
                if (n < 0 && errno == EINTR)
                        continue;
                if (n <= 0)
                        return;
                *offset += n;
                control_log_assembler_feed(a, buf, (size_t) n, fn, user_data);
        }
}

static void control_log_notify_cb(const ControlLogLine *line, void *user_data)
{
        LogFollower *f = user_data;
        control_call_notify(f->call, CTRMON_NOTIFICATION_LOG, control_log_line_json(line));
}

static int control_log_open(const char *path, dev_t *ret_dev, ino_t *ret_ino)
{
        int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
        if (fd < 0)
                return -errno;
        struct stat st;
        if (fstat(fd, &st) < 0) {
                int r = -errno;
                close(fd);
                return r;
        }
        *ret_dev = st.st_dev;
        *ret_ino = st.st_ino;
        return fd;
}

static void control_log_follower_poll(LogFollower *f)
{
        control_log_read_to_end(f->fd, &f->offset, f->assembler, control_log_notify_cb, f);

        /* Rotated or replaced (a new inode at the path: the old one was read
         * to its end just above), or truncated in place. */
        struct stat st;
        if (stat(f->path, &st) < 0)
                return; /* between a rename and the new file: next time */
        if (st.st_dev != f->dev || st.st_ino != f->ino) {
                dev_t dev = 0;
                ino_t ino = 0;
                int fd = control_log_open(f->path, &dev, &ino);
                if (fd < 0)
                        return;
                ctrmon_close_fd(&f->fd);
                f->fd = fd;
                f->dev = dev;
                f->ino = ino;
                f->offset = 0;
                control_log_assembler_reset_record(f->assembler);
        } else if (st.st_size < f->offset) {
                f->offset = 0;
                control_log_assembler_reset_record(f->assembler);
        } else {
                return;
        }
        control_log_read_to_end(f->fd, &f->offset, f->assembler, control_log_notify_cb, f);
}

static void control_log_follower_remove(LogFollower *f)
{
        g_ptr_array_remove(f->ctx->log_followers, f);
        control_log_follower_free(f);
}

static gboolean control_log_follower_tick_cb(gpointer user_data)
{
        LogFollower *f = user_data;
        if (!control_call_connected(f->call)) {
                f->timer_id = 0;
                control_log_follower_remove(f);
                return G_SOURCE_REMOVE;
        }
        control_log_follower_poll(f);
        return G_SOURCE_CONTINUE;
}

static void control_log_follower_end(LogFollower *f, int status)
{
        control_log_follower_poll(f);
        /* Nothing will complete them now: say what there is. */
        control_log_assembler_partials(f->assembler, true, control_log_notify_cb, f);
        json_object *p = json_object_new_object();
        json_object_object_add(p, "exit_code", json_object_new_int(status));
        control_call_notify(f->call, CTRMON_NOTIFICATION_LOG_END, p);
}

void control_logs_container_exited(CtrmonContext *ctx, int status)
{
        while (ctx->log_followers && ctx->log_followers->len > 0) {
                LogFollower *f = g_ptr_array_index(ctx->log_followers, 0);
                control_log_follower_end(f, status);
                control_log_follower_remove(f);
        }
}

void control_logs_teardown(CtrmonContext *ctx)
{
        while (ctx->log_followers && ctx->log_followers->len > 0)
                control_log_follower_remove(g_ptr_array_index(ctx->log_followers, 0));
}

/* ------------------------------------------------------------ the method */

static bool control_logs_params(ControlCall *call, json_object *params, gint64 *ret_tail, bool *ret_follow,
                                CtrmonStream *ret_only)
{
        json_object *v = NULL;
        *ret_tail = -1;
        *ret_follow = false;
        *ret_only = 0;
        if (json_object_object_get_ex(params, "tail", &v) && v) {
                if (!json_object_is_type(v, json_type_int) || json_object_get_int64(v) < 0) {
                        control_call_error(call, CTRMON_CONTROL_ERROR_INVALID_PARAMS,
                                           "Parameter \"tail\" must be a number of lines >= 0");
                        return false;
                }
                *ret_tail = json_object_get_int64(v);
        }
        if (json_object_object_get_ex(params, "follow", &v) && v) {
                if (!json_object_is_type(v, json_type_boolean)) {
                        control_call_error(call, CTRMON_CONTROL_ERROR_INVALID_PARAMS,
                                           "Parameter \"follow\" must be a boolean");
                        return false;
                }
                *ret_follow = json_object_get_boolean(v);
        }
        if (json_object_object_get_ex(params, "stream", &v) && v) {
                const char *s = json_object_is_type(v, json_type_string) ? json_object_get_string(v) : "";
                if (g_str_equal(s, "stdout"))
                        *ret_only = CTRMON_STREAM_STDOUT;
                else if (g_str_equal(s, "stderr"))
                        *ret_only = CTRMON_STREAM_STDERR;
                else {
                        control_call_error(call, CTRMON_CONTROL_ERROR_INVALID_PARAMS,
                                           "Parameter \"stream\" must be \"stdout\", \"stderr\" or null");
                        return false;
                }
        }
        return true;
}

void control_method_logs(ControlCall *call, json_object *params, void *user_data)
{
        CtrmonContext *ctx = user_data;
        const CtrmonOptions *o = ctx->opts;
        gint64 tail;
        bool follow;
        CtrmonStream only;
        if (!control_logs_params(call, params, &tail, &follow, &only))
                return;
        if (!o->log.k8s_file || !o->log.k8s_path) {
                control_call_error(call, CTRMON_CONTROL_ERROR_UNSUPPORTED,
                                   "Container %s has no k8s-file log to read", o->cid);
                return;
        }

        dev_t dev = 0;
        ino_t ino = 0;
        int fd = control_log_open(o->log.k8s_path, &dev, &ino);
        if (fd < 0) {
                control_call_error(call, CTRMON_CONTROL_ERROR_FAILED, "Failed to open %s: %s", o->log.k8s_path,
                                   g_strerror(-fd));
                return;
        }
        g_autoptr(ControlLogAssembler) a = control_log_assembler_new(only);
        ControlLogTail t = { G_QUEUE_INIT, tail };
        off_t offset = 0;
        control_log_read_to_end(fd, &offset, a, control_log_tail_cb, &t);
        /* A line still being written counts as the last line. */
        control_log_assembler_partials(a, false, control_log_tail_cb, &t);

        json_object *lines = json_object_new_array();
        bool partial = false;
        for (GList *l = t.lines.head; l; l = l->next) {
                json_object_array_add(lines, l->data);
                json_object *pv;
                partial = json_object_object_get_ex(l->data, "partial", &pv) && json_object_get_boolean(pv);
        }
        g_queue_clear(&t.lines);
        json_object *r = json_object_new_object();
        json_object_object_add(r, "lines", lines);
        json_object_object_add(r, "partial", json_object_new_boolean(partial));
        control_call_reply(call, r);

        if (!follow) {
                close(fd);
                return;
        }
        LogFollower *f = g_new0(LogFollower, 1);
        f->ctx = ctx;
        f->call = control_call_ref(call);
        f->path = g_strdup(o->log.k8s_path);
        f->fd = fd;
        f->dev = dev;
        f->ino = ino;
        f->offset = offset;
        f->assembler = g_steal_pointer(&a);
        if (!ctx->log_followers)
                ctx->log_followers = g_ptr_array_new();
        g_ptr_array_add(ctx->log_followers, f);
        if (ctx->exited_usec) {
                /* Asked for after the end: there is nothing to wait for. */
                control_log_follower_end(f, ctx->exit_status);
                control_log_follower_remove(f);
                return;
        }
        f->timer_id = g_timeout_add(CONTROL_LOGS_POLL_MS, control_log_follower_tick_cb, f);
}
