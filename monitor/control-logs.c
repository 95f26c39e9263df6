/* "logs": the container's k8s-file log read back as lines (P records joined
 * with their F), all of them or the last N, and with "follow" every line
 * written afterwards, as notifications until the container exits. Each call
 * is a LogReader with its own descriptor: the log's writer stays the only
 * writer, rotation and truncation are noticed by inode and size. A reader
 * works in slices (CONTROL_LOGS_SLICE_*) from the main loop and only while
 * its client reads (CONTROL_LOGS_QUEUE_HIGH), so neither a big log nor a
 * slow client costs more than a bounded moment or a bounded amount of
 * memory. Ordering and answer shape: docs/man/ctrmon-api.7.scd. */
#include "control-logs.h"

#include "control-methods.h"
#include "diag.h"
#include "ctrmon/fd-util.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* Followers look for new bytes this often. */
#define CONTROL_LOGS_POLL_MS 100
#define CONTROL_LOGS_READ_CHUNK (64 * 1024)
/* One dispatch reads at most this much of the file, for at most this long
 * (checked between chunks), then gives the loop back. */
#define CONTROL_LOGS_SLICE_BYTES (256 * 1024)
#define CONTROL_LOGS_SLICE_USEC 3000
/* Nothing more is read while the connection has this much unsent; a
 * reader waiting for its client looks again this often. */
#define CONTROL_LOGS_QUEUE_HIGH (1024 * 1024)
#define CONTROL_LOGS_QUEUE_POLL_MS 5
/* The answer holds the lines up to this much JSON; the rest comes as "log"
 * notifications (follow, chunked) or the call fails (neither). */
#define CONTROL_LOGS_ANSWER_MAX (1024 * 1024)
/* Readers at once (each holds up to ~2 MiB while it builds its answer);
 * over it: CTRMON_CONTROL_ERROR_LIMIT. */
#define CONTROL_LOGS_MAX_READERS 32
/* Enough of a record's start to parse its header. */
#define CONTROL_LOGS_PEEK (CONTROL_LOGS_TIME_MAX + 16)

#define CONTROL_LOGS_JSON_FLAGS (JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE)

static int control_log_index(CtrmonStream s)
{
        return s == CTRMON_STREAM_STDERR ? 1 : 0;
}

/* ------------------------------------------------------------ parsing */

int control_logs_parse_record(const char *rec, size_t len, const char **ret_time, size_t *ret_time_len,
                              CtrmonStream *ret_stream, bool *ret_full, const char **ret_text,
                              size_t *ret_text_len)
{
        const char *end = rec + len;
        /* Bounded, so that the backward scan, which sees only a record's
         * first CONTROL_LOGS_PEEK bytes, judges it as the assembler does. */
        const char *sp = memchr(rec, ' ', MIN(len, (size_t) CONTROL_LOGS_TIME_MAX + 1));
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
        bool skipping;          /* in a record over RECORD_MAX: drop to its '\n' */
        GString *line[2];       /* begun lines by stream, < LINE_MAX bytes   */
        char line_time[2][CONTROL_LOGS_TIME_MAX + 1];
        uint64_t skip[2];
};

ControlLogAssembler *control_log_assembler_new(CtrmonStream only)
{
        ControlLogAssembler *a = g_new0(ControlLogAssembler, 1);
        a->only = only;
        a->record = g_string_new(NULL);
        a->line[0] = g_string_new(NULL);
        a->line[1] = g_string_new(NULL);
        return a;
}

void control_log_assembler_set_skip(ControlLogAssembler *a, uint64_t skip_stdout, uint64_t skip_stderr)
{
        a->skip[0] = skip_stdout;
        a->skip[1] = skip_stderr;
}

static void control_log_emit(ControlLogAssembler *a, int i, const char *text, size_t len, bool partial,
                             ControlLogLineFn fn, void *user_data)
{
        if (a->skip[i] > 0) {
                if (!partial)
                        a->skip[i]--; /* the last piece of a line to skip */
                return;
        }
        g_autofree char *valid = g_utf8_make_valid(text, (gssize) len);
        ControlLogLine line = {
                .time = a->line_time[i],
                .stream = i ? CTRMON_STREAM_STDERR : CTRMON_STREAM_STDOUT,
                .text = valid,
                .partial = partial,
        };
        fn(&line, user_data);
}

/* Where to end a piece of `len` bytes without cutting a UTF-8 sequence in
 * two (a lead byte whose sequence does not fit begins the next piece). */
static size_t control_logs_utf8_cut(const char *s, size_t len)
{
        for (size_t k = 1; k <= 3 && k <= len; k++) {
                unsigned char b = (unsigned char) s[len - k];
                if ((b & 0xC0) == 0x80)
                        continue;
                if (b >= 0xC0 && (size_t) (b >= 0xF0 ? 4 : b >= 0xE0 ? 3 : 2) > k)
                        return len - k;
                break;
        }
        return len;
}

static void control_log_assembler_record(ControlLogAssembler *a, const char *rec, size_t len, ControlLogLineFn fn,
                                         void *user_data)
{
        const char *time, *text;
        size_t time_len, text_len;
        CtrmonStream stream;
        bool full;
        /* Not ours to judge: skip what is not a record. */
        if (len > CONTROL_LOGS_RECORD_MAX ||
            control_logs_parse_record(rec, len, &time, &time_len, &stream, &full, &text, &text_len) < 0)
                return;
        if (a->only && stream != a->only)
                return;
        int i = control_log_index(stream);
        memcpy(a->line_time[i], time, time_len);
        a->line_time[i][time_len] = '\0';
        GString *l = a->line[i];
        if (full && l->len == 0 && text_len <= CONTROL_LOGS_LINE_MAX) {
                /* The common case: one F record is one line, no copy. */
                control_log_emit(a, i, text, text_len, false, fn, user_data);
                return;
        }
        while (text_len > 0) {
                size_t take = MIN(text_len, CONTROL_LOGS_LINE_MAX - l->len);
                g_string_append_len(l, text, (gssize) take);
                text += take;
                text_len -= take;
                if (l->len == CONTROL_LOGS_LINE_MAX) {
                        size_t cut = control_logs_utf8_cut(l->str, l->len);
                        control_log_emit(a, i, l->str, cut, true, fn, user_data);
                        g_string_erase(l, 0, (gssize) cut);
                }
        }
        if (full) {
                control_log_emit(a, i, l->str, l->len, false, fn, user_data);
                g_string_truncate(l, 0);
        }
}

void control_log_assembler_feed(ControlLogAssembler *a, const char *buf, size_t len, ControlLogLineFn fn,
                                void *user_data)
{
        const char *p = buf, *end = buf + len;
        while (p < end) {
                const char *nl = memchr(p, '\n', (size_t) (end - p));
                size_t n = (size_t) ((nl ? nl : end) - p);
                if (a->skipping) {
                        a->skipping = !nl;
                } else if (a->record->len + n > CONTROL_LOGS_RECORD_MAX) {
                        /* Too long to be a record (skipped either way): do
                         * not hold it. */
                        g_string_truncate(a->record, 0);
                        a->skipping = !nl;
                } else if (!nl) {
                        g_string_append_len(a->record, p, (gssize) n);
                } else if (a->record->len > 0) {
                        g_string_append_len(a->record, p, (gssize) n);
                        control_log_assembler_record(a, a->record->str, a->record->len, fn, user_data);
                        g_string_truncate(a->record, 0);
                } else {
                        control_log_assembler_record(a, p, n, fn, user_data);
                }
                if (!nl)
                        return;
                p = nl + 1;
        }
}

void control_log_assembler_partials(ControlLogAssembler *a, bool take, ControlLogLineFn fn, void *user_data)
{
        for (int i = 0; i < 2; i++) {
                if (a->line[i]->len == 0)
                        continue; /* nothing begun (an empty P shows nothing) */
                if (a->skip[i] == 0)
                        control_log_emit(a, i, a->line[i]->str, a->line[i]->len, true, fn, user_data);
                if (take) {
                        g_string_truncate(a->line[i], 0);
                        if (a->skip[i] > 0)
                                a->skip[i]--;
                }
        }
}

void control_log_assembler_reset_record(ControlLogAssembler *a)
{
        g_string_truncate(a->record, 0);
        a->skipping = false;
}

void control_log_assembler_free(ControlLogAssembler *a)
{
        if (!a)
                return;
        g_string_free(a->record, TRUE);
        g_string_free(a->line[0], TRUE);
        g_string_free(a->line[1], TRUE);
        g_free(a);
}

/* ------------------------------------------------------------ the tail */

/* Walking back, an F record ends a line of its stream, and so does the
 * stream's latest record if a line is still being written (P records with
 * text after its last F). The first N line ends are kept; each kept
 * stream's oldest kept line starts after that stream's next line end
 * further back (or at the file's start), and the range starts where the
 * earliest of them does. Every line end between that start and the kept
 * ones is an older line the assembler completes from the range (cut at its
 * beginning, or whole) and skips.
 *
 * Whether a line is still being written is known at once from a stream's
 * latest record, unless that is a P without text (nothing the sink writes,
 * but it may be in a file): then it is known only at the stream's next F
 * (no) or P with text (yes) further back. Until then both answers are
 * followed, each in its own LogTailCount (at most two streams: four). */
typedef struct {
        bool exists[2];         /* the assumed answer, per stream           */
        bool in_line[2];        /* walking through a line of the stream     */
        uint64_t counted;       /* kept line ends so far (<= want)          */
        bool need_start[2];     /* has kept lines, their start not found yet */
        uint64_t kept[2];
        uint64_t lines[2];      /* line ends in the range, kept or not      */
        bool done;
        off_t start;
} LogTailCount;

typedef enum {
        LOG_TAIL_UNSEEN,        /* no record of the stream yet              */
        LOG_TAIL_UNDECIDED,     /* only P records without text so far       */
        LOG_TAIL_DECIDED,
} LogTailStreamState;

struct ControlLogTailScan {
        CtrmonStream only;
        uint64_t want;
        off_t next;             /* the next block ends here                 */
        off_t rec_to;           /* the '\n' ending the record being walked
                                 * back; -1: no '\n' found yet              */
        char peek[CONTROL_LOGS_PEEK];
        size_t peek_len;        /* leading bytes of [next, rec_to)          */
        LogTailStreamState state[2];
        LogTailCount count[4];
        unsigned n_count;
        bool done;
        ControlLogTailRange range;
};

static void control_log_tail_count_finish(LogTailCount *c, off_t start)
{
        c->done = true;
        c->start = start;
}

static void control_log_tail_count_record(LogTailCount *c, uint64_t want, int i, bool full, off_t off, size_t len)
{
        if (c->done)
                return;
        bool line_end = full || (!c->in_line[i] && c->exists[i]);
        if (!line_end)
                return; /* inside a line, or P records of no line */
        c->in_line[i] = true;
        if (c->counted < want) {
                c->counted++;
                c->kept[i]++;
                c->lines[i]++;
                c->need_start[i] = true;
                return;
        }
        if (c->need_start[i]) {
                c->need_start[i] = false;
                if (!c->need_start[1 - i]) {
                        control_log_tail_count_finish(c, off + (off_t) len + 1);
                        return;
                }
        }
        c->lines[i]++;
}

/* Stream i's open question is answered: drop the counts that assumed
 * otherwise. */
static void control_log_tail_scan_decide(ControlLogTailScan *s, int i, bool exists)
{
        unsigned k = 0;
        for (unsigned j = 0; j < s->n_count; j++)
                if (s->count[j].exists[i] == exists)
                        s->count[k++] = s->count[j];
        s->n_count = k;
        s->state[i] = LOG_TAIL_DECIDED;
}

static void control_log_tail_scan_finish(ControlLogTailScan *s)
{
        g_assert(s->n_count == 1 && s->count[0].done);
        const LogTailCount *c = &s->count[0];
        s->done = true;
        s->range.start = c->start;
        for (int i = 0; i < 2; i++)
                s->range.skip[i] = c->lines[i] - c->kept[i];
}

ControlLogTailScan *control_log_tail_scan_new(CtrmonStream only, uint64_t lines, off_t size)
{
        ControlLogTailScan *s = g_new0(ControlLogTailScan, 1);
        s->only = only;
        s->want = lines;
        s->next = MAX(size, 0);
        s->rec_to = -1;
        s->n_count = 1;
        if (s->next == 0) {
                control_log_tail_count_finish(&s->count[0], 0);
                control_log_tail_scan_finish(s);
        }
        return s;
}

off_t control_log_tail_scan_next(const ControlLogTailScan *s)
{
        return s->next;
}

bool control_log_tail_scan_done(const ControlLogTailScan *s)
{
        return s->done;
}

void control_log_tail_scan_range(const ControlLogTailScan *s, ControlLogTailRange *ret_range)
{
        g_return_if_fail(s->done);
        *ret_range = s->range;
}

void control_log_tail_scan_free(ControlLogTailScan *s)
{
        g_free(s);
}

/* One record [off, off + len), of which `hdr` holds the first `hlen` bytes. */
static void control_log_tail_scan_record(ControlLogTailScan *s, const char *hdr, size_t hlen, size_t len, off_t off)
{
        const char *time, *text;
        size_t time_len, text_len;
        CtrmonStream stream;
        bool full;
        if (len > CONTROL_LOGS_RECORD_MAX ||
            control_logs_parse_record(hdr, hlen, &time, &time_len, &stream, &full, &text, &text_len) < 0)
                return;
        if (s->only && stream != s->only)
                return;
        int i = control_log_index(stream);
        /* The header is whole in `hdr`: text follows iff the record is
         * longer than the header and its space. */
        bool has_text = len > (size_t) (text - hdr);
        if (s->state[i] == LOG_TAIL_UNSEEN && !full && !has_text) {
                /* Follow both answers from here. */
                for (unsigned j = 0, n = s->n_count; j < n; j++) {
                        s->count[s->n_count] = s->count[j];
                        s->count[s->n_count++].exists[i] = false;
                        s->count[j].exists[i] = true;
                }
                s->state[i] = LOG_TAIL_UNDECIDED;
        } else if (s->state[i] == LOG_TAIL_UNSEEN) {
                for (unsigned j = 0; j < s->n_count; j++)
                        s->count[j].exists[i] = !full;
                s->state[i] = LOG_TAIL_DECIDED;
        } else if (s->state[i] == LOG_TAIL_UNDECIDED && (full || has_text)) {
                control_log_tail_scan_decide(s, i, !full);
        }
        for (unsigned j = 0; j < s->n_count; j++)
                control_log_tail_count_record(&s->count[j], s->want, i, full, off, len);
        if (s->n_count == 1 && s->count[0].done)
                control_log_tail_scan_finish(s);
}

/* The file's start: what is still open is answered "no", and the start of
 * the range is the file's. */
static void control_log_tail_scan_at_start(ControlLogTailScan *s)
{
        for (int i = 0; i < 2; i++)
                if (s->state[i] == LOG_TAIL_UNDECIDED)
                        control_log_tail_scan_decide(s, i, false);
        if (!s->count[0].done)
                control_log_tail_count_finish(&s->count[0], 0);
        control_log_tail_scan_finish(s);
}

bool control_log_tail_scan_feed(ControlLogTailScan *s, const char *block, size_t len)
{
        if (s->done)
                return true;
        g_return_val_if_fail((off_t) len <= s->next, false);
        off_t base = s->next - (off_t) len;
        const char *stop = block + len; /* the '\n' handled last, or the block's end */
        while (!s->done) {
                const char *nl = memrchr(block, '\n', (size_t) (stop - block));
                if (!nl)
                        break;
                off_t nl_off = base + (nl - block);
                if (s->rec_to < 0) {
                        /* What follows the last '\n' is still being written. */
                        s->range.end = nl_off + 1;
                        if (s->want == 0) {
                                control_log_tail_count_finish(&s->count[0], nl_off + 1);
                                control_log_tail_scan_finish(s);
                                break;
                        }
                } else {
                        /* s->peek is non-empty only while the record runs
                         * on past this block's end. */
                        char hdr[CONTROL_LOGS_PEEK];
                        size_t n = MIN((size_t) (stop - nl - 1), sizeof hdr);
                        memcpy(hdr, nl + 1, n);
                        size_t m = MIN(sizeof hdr - n, s->peek_len);
                        memcpy(hdr + n, s->peek, m);
                        control_log_tail_scan_record(s, hdr, n + m, (size_t) (s->rec_to - nl_off - 1), nl_off + 1);
                }
                s->rec_to = nl_off;
                s->peek_len = 0;
                stop = nl;
        }
        s->next = base;
        if (s->done)
                return true;
        if (s->rec_to >= 0) {
                /* The block's head begins (or goes on with) the record
                 * being walked back: keep the first bytes of what is known. */
                size_t n = MIN((size_t) (stop - block), sizeof s->peek);
                size_t m = MIN(sizeof s->peek - n, s->peek_len);
                memmove(s->peek + n, s->peek, m);
                memcpy(s->peek, block, n);
                s->peek_len = n + m;
        }
        if (base == 0) {
                if (s->rec_to >= 0)
                        control_log_tail_scan_record(s, s->peek, s->peek_len, (size_t) s->rec_to, 0);
                if (!s->done)
                        control_log_tail_scan_at_start(s);
        }
        return s->done;
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

static void control_logs_free_userdata(json_object *jso, void *userdata)
{
        g_free(userdata);
}

/* ------------------------------------------------------------ readers */

typedef enum {
        LOG_READER_SCAN,        /* tail: finding where it starts, backwards */
        LOG_READER_BACKLOG,     /* [offset, end): the answer, then "log"s   */
        LOG_READER_FOLLOW,      /* new bytes, as "log"s                      */
} LogReaderPhase;

#define LOG_READER_FINISHED (-1)
#define LOG_READER_MORE (-2)

typedef struct {
        CtrmonContext *ctx;
        ControlCall *call;
        char *path;
        int fd;
        dev_t dev;
        ino_t ino;
        bool follow;
        bool chunked;
        CtrmonStream only;
        uint64_t tail;
        LogReaderPhase phase;
        ControlLogTailScan *scan;
        off_t offset;
        off_t end;
        ControlLogAssembler *assembler;
        /* The answer's "lines" as JSON text, "[" entry ("," entry)*, until
         * it is sent; lines go out as notifications after that. Holding
         * text, not a json_object per line, keeps it near its size. */
        GString *answer;
        bool answer_partial;
        bool exited;
        int exit_status;
        guint source_id;
        char *buf;
} LogReader;

static void control_log_reader_free(LogReader *r)
{
        if (!r)
                return;
        if (r->source_id)
                g_source_remove(r->source_id);
        ctrmon_close_fd(&r->fd);
        control_log_assembler_free(r->assembler);
        control_log_tail_scan_free(r->scan);
        if (r->answer) {
                g_string_free(r->answer, TRUE);
                control_call_error(r->call, CTRMON_CONTROL_ERROR_FAILED, "The monitor stopped reading the log");
        }
        control_call_unref(r->call);
        g_free(r->buf);
        g_free(r->path);
        g_free(r);
}

static void control_log_reader_remove(LogReader *r)
{
        g_ptr_array_remove(r->ctx->log_followers, r);
        control_log_reader_free(r);
}

static void control_log_reader_line_cb(const ControlLogLine *line, void *user_data)
{
        LogReader *r = user_data;
        json_object *o = control_log_line_json(line);
        if (!r->answer) {
                control_call_notify(r->call, CTRMON_NOTIFICATION_LOG, o);
                return;
        }
        size_t len = 0;
        const char *text = json_object_to_json_string_length(o, CONTROL_LOGS_JSON_FLAGS, &len);
        if (r->answer->len > 1)
                g_string_append_c(r->answer, ',');
        g_string_append_len(r->answer, text, (gssize) len);
        r->answer_partial = line->partial;
        json_object_put(o);
}

static void control_log_reader_answer(LogReader *r, bool more)
{
        g_string_append_c(r->answer, ']');
        json_object *lines = json_object_new_array();
        json_object_set_serializer(lines, json_object_userdata_to_json_string,
                                   g_string_free(g_steal_pointer(&r->answer), FALSE), control_logs_free_userdata);
        json_object *res = json_object_new_object();
        json_object_object_add(res, "lines", lines);
        json_object_object_add(res, "partial", json_object_new_boolean(r->answer_partial));
        json_object_object_add(res, "more", json_object_new_boolean(more));
        control_call_reply(r->call, res);
}

static int control_log_open(const char *path, struct stat *ret_st)
{
        _cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
        if (fd < 0)
                return -errno;
        if (fstat(fd, ret_st) < 0)
                return -errno;
        return TAKE_FD(fd);
}

/* At the end of the file: go on with a new inode at the path (rotated or
 * replaced; the old one was read to its end) or from the start (truncated
 * in place). Returns whether there may be more to read. */
static bool control_log_reader_reopen(LogReader *r)
{
        struct stat st;
        if (stat(r->path, &st) < 0)
                return false; /* between a rename and the new file: next time */
        if (st.st_dev != r->dev || st.st_ino != r->ino) {
                int fd = control_log_open(r->path, &st);
                if (fd < 0)
                        return false;
                ctrmon_close_fd(&r->fd);
                r->fd = fd;
                r->dev = st.st_dev;
                r->ino = st.st_ino;
        } else if (st.st_size >= r->offset) {
                return false;
        }
        r->offset = 0;
        control_log_assembler_reset_record(r->assembler);
        return true;
}

static int control_log_reader_restart_scan(LogReader *r)
{
        struct stat st;
        if (fstat(r->fd, &st) < 0)
                return -errno;
        control_log_tail_scan_free(r->scan);
        r->scan = control_log_tail_scan_new(r->only, r->tail, st.st_size);
        return 0;
}

/* The backlog is out. Returns true when the call is done. */
static bool control_log_reader_backlog_done(LogReader *r)
{
        /* A line still being written counts as the last line. */
        control_log_assembler_partials(r->assembler, false, control_log_reader_line_cb, r);
        /* Lines completed from now on are new: all of them are wanted. */
        control_log_assembler_set_skip(r->assembler, 0, 0);
        if (r->answer)
                control_log_reader_answer(r, false);
        else if (!r->follow) {
                json_object *p = json_object_new_object();
                json_object_object_add(p, "eof", json_object_new_boolean(true));
                control_call_notify(r->call, CTRMON_NOTIFICATION_LOG_END, p);
        }
        if (!r->follow)
                return true;
        r->phase = LOG_READER_FOLLOW;
        return false;
}

static void control_log_reader_end(LogReader *r)
{
        /* Nothing will complete them now: say what there is. */
        control_log_assembler_partials(r->assembler, true, control_log_reader_line_cb, r);
        json_object *p = json_object_new_object();
        json_object_object_add(p, "exit_code", json_object_new_int(r->exit_status));
        control_call_notify(r->call, CTRMON_NOTIFICATION_LOG_END, p);
}

static bool control_log_reader_queue_full(LogReader *r)
{
        return control_call_output_pending(r->call) >= CONTROL_LOGS_QUEUE_HIGH;
}

static void control_logs_string_free(GString *s)
{
        g_string_free(s, TRUE);
}

static int control_log_reader_read_failed(LogReader *r, int error)
{
        log_warning("Failed to read %s for a \"logs\" call: %s", r->path, g_strerror(error));
        if (r->answer) {
                g_clear_pointer(&r->answer, control_logs_string_free);
                control_call_error(r->call, CTRMON_CONTROL_ERROR_FAILED, "Failed to read %s: %s", r->path,
                                   g_strerror(error));
        }
        return LOG_READER_FINISHED;
}

/* The phases' steps: each reads at most one chunk (adding it to *done) and
 * returns LOG_READER_MORE to go on within the slice, or what step returns. */
static int control_log_reader_scan(LogReader *r, size_t *done)
{
        if (!control_log_tail_scan_done(r->scan)) {
                off_t next = control_log_tail_scan_next(r->scan);
                size_t want = (size_t) MIN((off_t) CONTROL_LOGS_READ_CHUNK, next);
                ssize_t n = pread(r->fd, r->buf, want, next - (off_t) want);
                if (n < 0)
                        return errno == EINTR ? LOG_READER_MORE : control_log_reader_read_failed(r, errno);
                *done += (size_t) n;
                if ((size_t) n < want) {
                        /* Truncated underneath: start again from its new end. */
                        int e = control_log_reader_restart_scan(r);
                        return e < 0 ? control_log_reader_read_failed(r, -e) : LOG_READER_MORE;
                }
                if (!control_log_tail_scan_feed(r->scan, r->buf, (size_t) n))
                        return LOG_READER_MORE;
        }
        ControlLogTailRange range;
        control_log_tail_scan_range(r->scan, &range);
        g_clear_pointer(&r->scan, control_log_tail_scan_free);
        control_log_assembler_set_skip(r->assembler, range.skip[0], range.skip[1]);
        r->offset = range.start;
        r->end = range.end;
        r->phase = LOG_READER_BACKLOG;
        return LOG_READER_MORE;
}

static int control_log_reader_backlog(LogReader *r, size_t *done)
{
        if (r->offset >= r->end)
                return control_log_reader_backlog_done(r) ? LOG_READER_FINISHED : LOG_READER_MORE;
        ssize_t n = pread(r->fd, r->buf, (size_t) MIN((off_t) CONTROL_LOGS_READ_CHUNK, r->end - r->offset),
                          r->offset);
        if (n < 0)
                return errno == EINTR ? LOG_READER_MORE : control_log_reader_read_failed(r, errno);
        if (n == 0) {
                r->end = r->offset; /* truncated underneath */
                return LOG_READER_MORE;
        }
        r->offset += n;
        *done += (size_t) n;
        control_log_assembler_feed(r->assembler, r->buf, (size_t) n, control_log_reader_line_cb, r);
        if (!r->answer || r->answer->len < CONTROL_LOGS_ANSWER_MAX)
                return LOG_READER_MORE;
        if (r->follow || r->chunked) {
                control_log_reader_answer(r, true);
                return LOG_READER_MORE;
        }
        /* The client reads only the answer: a cut log would pass for all. */
        g_clear_pointer(&r->answer, control_logs_string_free);
        control_call_error(r->call, CTRMON_CONTROL_ERROR_FAILED,
                           "The log does not fit one answer (%d bytes of lines): ask for the last lines with "
                           "\"tail\", or for the rest as \"log\" notifications with \"chunked\": true or "
                           "\"follow\"",
                           CONTROL_LOGS_ANSWER_MAX);
        return LOG_READER_FINISHED;
}

static int control_log_reader_follow(LogReader *r, size_t *done)
{
        ssize_t n = pread(r->fd, r->buf, CONTROL_LOGS_READ_CHUNK, r->offset);
        if (n < 0 && errno == EINTR)
                return LOG_READER_MORE;
        if (n > 0) {
                r->offset += n;
                *done += (size_t) n;
                control_log_assembler_feed(r->assembler, r->buf, (size_t) n, control_log_reader_line_cb, r);
                return LOG_READER_MORE;
        }
        if (control_log_reader_reopen(r))
                return LOG_READER_MORE;
        if (!r->exited)
                return CONTROL_LOGS_POLL_MS;
        control_log_reader_end(r);
        return LOG_READER_FINISHED;
}

/* One slice. Returns the milliseconds to wait before the next (0: at
 * once) or LOG_READER_FINISHED. */
static int control_log_reader_step(LogReader *r)
{
        gint64 deadline = g_get_monotonic_time() + CONTROL_LOGS_SLICE_USEC;
        size_t done = 0;
        for (;;) {
                if (!control_call_connected(r->call))
                        return LOG_READER_FINISHED;
                if (control_log_reader_queue_full(r))
                        return CONTROL_LOGS_QUEUE_POLL_MS;
                if (done >= CONTROL_LOGS_SLICE_BYTES || g_get_monotonic_time() >= deadline)
                        return 0;
                int ret = r->phase == LOG_READER_SCAN      ? control_log_reader_scan(r, &done)
                          : r->phase == LOG_READER_BACKLOG ? control_log_reader_backlog(r, &done)
                                                           : control_log_reader_follow(r, &done);
                if (ret != LOG_READER_MORE)
                        return ret;
        }
}

static gboolean control_log_reader_cb(gpointer user_data);

static void control_log_reader_schedule(LogReader *r, int ms)
{
        if (r->source_id)
                g_source_remove(r->source_id);
        /* Default priority, not idle: a container that keeps the loop busy
         * must not starve its readers; the slices keep each turn short. */
        r->source_id = ms == 0 ? g_idle_add_full(G_PRIORITY_DEFAULT, control_log_reader_cb, r, NULL)
                               : g_timeout_add((guint) ms, control_log_reader_cb, r);
}

static void control_log_reader_run(LogReader *r)
{
        int wait = control_log_reader_step(r);
        if (wait == LOG_READER_FINISHED)
                control_log_reader_remove(r);
        else
                control_log_reader_schedule(r, wait);
}

static gboolean control_log_reader_cb(gpointer user_data)
{
        LogReader *r = user_data;
        r->source_id = 0;
        control_log_reader_run(r);
        return G_SOURCE_REMOVE;
}

void control_logs_container_exited(CtrmonContext *ctx, int status)
{
        /* Backwards: running a reader may remove it from the array. */
        for (guint i = ctx->log_followers ? ctx->log_followers->len : 0; i > 0; i--) {
                LogReader *r = g_ptr_array_index(ctx->log_followers, i - 1);
                r->exited = true;
                r->exit_status = status;
                /* A follower is mostly at the end already: its last lines
                 * and "log-end" go out now, in one slice. The rest finish
                 * while the exit linger runs the loop (control_logs_pending). */
                if (r->phase == LOG_READER_FOLLOW)
                        control_log_reader_run(r);
        }
}

bool control_logs_pending(CtrmonContext *ctx)
{
        return ctx->exited_usec && ctx->log_followers && ctx->log_followers->len > 0;
}

void control_logs_teardown(CtrmonContext *ctx)
{
        while (ctx->log_followers && ctx->log_followers->len > 0)
                control_log_reader_remove(g_ptr_array_index(ctx->log_followers, 0));
}

/* ------------------------------------------------------------ the method */

static bool control_logs_bool_param(ControlCall *call, json_object *params, const char *name, bool *ret)
{
        json_object *v = NULL;
        *ret = false;
        if (!json_object_object_get_ex(params, name, &v) || !v)
                return true;
        if (!json_object_is_type(v, json_type_boolean)) {
                control_call_error(call, CTRMON_CONTROL_ERROR_INVALID_PARAMS, "Parameter \"%s\" must be a boolean",
                                   name);
                return false;
        }
        *ret = json_object_get_boolean(v);
        return true;
}

static bool control_logs_params(ControlCall *call, json_object *params, bool *ret_has_tail, uint64_t *ret_tail,
                                bool *ret_follow, bool *ret_chunked, CtrmonStream *ret_only)
{
        json_object *v = NULL;
        *ret_has_tail = false;
        *ret_tail = 0;
        *ret_only = 0;
        if (json_object_object_get_ex(params, "tail", &v) && v) {
                if (!json_object_is_type(v, json_type_int) || json_object_get_int64(v) < 0) {
                        control_call_error(call, CTRMON_CONTROL_ERROR_INVALID_PARAMS,
                                           "Parameter \"tail\" must be a number of lines >= 0");
                        return false;
                }
                *ret_has_tail = true;
                *ret_tail = (uint64_t) json_object_get_int64(v);
        }
        if (!control_logs_bool_param(call, params, "follow", ret_follow) ||
            !control_logs_bool_param(call, params, "chunked", ret_chunked))
                return false;
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
        bool has_tail, follow, chunked;
        uint64_t tail;
        CtrmonStream only;
        if (!control_logs_params(call, params, &has_tail, &tail, &follow, &chunked, &only))
                return;
        if (!o->log.k8s_file || !o->log.k8s_path) {
                control_call_error(call, CTRMON_CONTROL_ERROR_UNSUPPORTED,
                                   "Container %s has no k8s-file log to read", o->cid);
                return;
        }
        if (ctx->log_followers && ctx->log_followers->len >= CONTROL_LOGS_MAX_READERS) {
                control_call_error(call, CTRMON_CONTROL_ERROR_LIMIT,
                                   "Too many \"logs\" calls at once: the limit is %d", CONTROL_LOGS_MAX_READERS);
                return;
        }
        struct stat st;
        int fd = control_log_open(o->log.k8s_path, &st);
        if (fd < 0) {
                control_call_error(call, CTRMON_CONTROL_ERROR_FAILED, "Failed to open %s: %s", o->log.k8s_path,
                                   g_strerror(-fd));
                return;
        }

        LogReader *r = g_new0(LogReader, 1);
        r->ctx = ctx;
        r->call = control_call_ref(call);
        r->path = g_strdup(o->log.k8s_path);
        r->fd = fd;
        r->dev = st.st_dev;
        r->ino = st.st_ino;
        r->follow = follow;
        r->chunked = chunked;
        r->only = only;
        r->tail = tail;
        r->assembler = control_log_assembler_new(only);
        r->answer = g_string_new("[");
        /* Asked for after the end: read to it, then "log-end". */
        r->exited = ctx->exited_usec != 0;
        r->exit_status = ctx->exit_status;
        r->buf = g_malloc(CONTROL_LOGS_READ_CHUNK);
        if (has_tail) {
                r->phase = LOG_READER_SCAN;
                r->scan = control_log_tail_scan_new(only, tail, st.st_size);
        } else {
                r->phase = LOG_READER_BACKLOG;
                r->end = st.st_size;
        }
        if (!ctx->log_followers)
                ctx->log_followers = g_ptr_array_new();
        g_ptr_array_add(ctx->log_followers, r);
        /* The first slice at once: a small log is answered before this
         * returns, as before. */
        control_log_reader_run(r);
}
