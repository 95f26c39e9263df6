/* libFuzzer target for the API "logs" reader (control-logs.h): the k8s-file
 * record parser control_logs_parse_record(), the line assembler
 * control_log_assembler_*() that joins P records with their F record (in
 * pieces of at most CONTROL_LOGS_LINE_MAX bytes, skipping records over
 * CONTROL_LOGS_RECORD_MAX) and the backward tail scan
 * control_log_tail_scan_*() that finds where to start for the last N lines.
 *
 * Input: byte 0 is the stream filter (% 3: both, stdout, stderr) and the
 * seed for the chunk sizes; byte 1 says at which chunk boundaries the file
 * is "replaced" (control_log_assembler_reset_record); byte 2: every 0x01
 * byte of the body stands for (1 + (b & 7)) * 16 KiB of filler text (until
 * the file has 1 MiB), which
 * bits 3-4 make 'x', "é", "€" or "𝄞" (so records and lines pass the size
 * bounds under -max_len, with UTF-8 sequences at the cuts); byte 3: lines
 * to skip per stream (bits 0-1
 * stdout, 2-3 stderr) and N for the tail (bits 4-7); byte 4 seeds the tail
 * scan's block sizes; the rest is the body of the log file.
 *
 * Checked:
 * - a parsed record's parts lie inside it, in order, and put back together
 *   they give the record again; the time has no space, is not empty and at
 *   most CONTROL_LOGS_TIME_MAX bytes;
 * - the assembler, fed the file in chunks (with resets and skips), emits
 *   exactly the pieces an independent model computes from the same bytes:
 *   per stream, P texts joined up to their F, cut every LINE_MAX bytes (not
 *   inside a UTF-8 sequence) into partial pieces, each with the time of the
 *   record that ended it, in file order, then the begun lines as partials;
 *   each text is valid UTF-8 without a newline; partials(take=false) does
 *   not consume, take=true does;
 * - the tail scan, fed the file backwards in blocks of any size, gives a
 *   range and skip counts from which the assembler produces exactly the
 *   last N lines of the whole file (ordered by their last record, a begun
 *   line by its latest P), every piece of them and nothing else. */
#include "control-logs.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FUZZ_HEADER 5

typedef struct {
        char *time;
        CtrmonStream stream;
        char *text;
        bool partial;
        size_t line;            /* model only: which line it is a piece of */
} FuzzLine;

static void fuzz_line_free(gpointer p)
{
        FuzzLine *l = p;
        g_free(l->time);
        g_free(l->text);
        g_free(l);
}

static FuzzLine *fuzz_collect_line(const ControlLogLine *line, GPtrArray *out)
{
        if (!line->text || !g_utf8_validate(line->text, -1, NULL) || strchr(line->text, '\n'))
                abort();
        if (line->stream != CTRMON_STREAM_STDOUT && line->stream != CTRMON_STREAM_STDERR)
                abort();
        if (!line->time || strlen(line->time) > CONTROL_LOGS_TIME_MAX)
                abort();
        FuzzLine *l = g_new0(FuzzLine, 1);
        l->time = g_strdup(line->time);
        l->stream = line->stream;
        l->text = g_strdup(line->text);
        l->partial = line->partial;
        g_ptr_array_add(out, l);
        return l;
}

static void fuzz_collect(const ControlLogLine *line, void *user_data)
{
        fuzz_collect_line(line, user_data);
}

/* "<time> <stdout|stderr> <P|F>[ <text>]", time 1..TIME_MAX bytes. */
static bool fuzz_is_record(const char *rec, size_t len, size_t *ret_time_len)
{
        const char *sp = memchr(rec, ' ', len);
        size_t tl = sp ? (size_t) (sp - rec) : 0;
        if (!(sp && tl > 0 && tl <= CONTROL_LOGS_TIME_MAX && len >= tl + 9 &&
              (memcmp(rec + tl + 1, "stdout ", 7) == 0 || memcmp(rec + tl + 1, "stderr ", 7) == 0) &&
              (rec[tl + 8] == 'P' || rec[tl + 8] == 'F') && (len == tl + 9 || rec[tl + 9] == ' ')))
                return false;
        *ret_time_len = tl;
        return true;
}

/* ------------------------------------------------------------ the parser */

static void fuzz_check_record(const char *rec, size_t len)
{
        const char *time = NULL, *text = NULL;
        size_t time_len = 0, text_len = 0;
        CtrmonStream stream = 0;
        bool full = false;
        int r = control_logs_parse_record(rec, len, &time, &time_len, &stream, &full, &text, &text_len);
        size_t tl = 0;
        bool ok = fuzz_is_record(rec, len, &tl);
        if (ok != (r == 0))
                abort();
        if (r != 0) {
                if (r != -EINVAL)
                        abort();
                return;
        }
        if (time != rec || time_len != tl || memchr(time, ' ', time_len))
                abort();
        if (stream != (rec[tl + 4] == 'o' ? CTRMON_STREAM_STDOUT : CTRMON_STREAM_STDERR))
                abort();
        if (full != (rec[tl + 8] == 'F'))
                abort();
        if (text < rec || text + text_len != rec + len)
                abort();
        /* Put back together. */
        GString *again = g_string_new(NULL);
        g_string_append_len(again, time, (gssize) time_len);
        g_string_append(again, stream == CTRMON_STREAM_STDOUT ? " stdout " : " stderr ");
        g_string_append_c(again, full ? 'F' : 'P');
        if (len > tl + 9)
                g_string_append_c(again, ' ');
        g_string_append_len(again, text, (gssize) text_len);
        if (again->len != len || memcmp(again->str, rec, len) != 0)
                abort();
        g_string_free(again, TRUE);
}

/* ------------------------------------------------------------ the model */

typedef struct {
        CtrmonStream only;
        GString *line[2];
        char *time[2];
        uint64_t skip[2];
        size_t line_id[2];      /* the id of the line begun, per stream */
        bool begun[2];          /* ... and it has had a piece or a byte */
        size_t last_rec[2];     /* offset of the stream's latest record */
        size_t next_id;
        GPtrArray *out;         /* FuzzLine, with .line */
        GArray *line_end;       /* per line id: offset of its last record */
} FuzzModel;

static void fuzz_model_init(FuzzModel *m, CtrmonStream only, uint64_t skip0, uint64_t skip1)
{
        *m = (FuzzModel) { .only = only, .skip = { skip0, skip1 } };
        m->line[0] = g_string_new(NULL);
        m->line[1] = g_string_new(NULL);
        m->out = g_ptr_array_new_with_free_func(fuzz_line_free);
        m->line_end = g_array_new(FALSE, TRUE, sizeof(size_t));
        m->line_id[0] = m->next_id++;
        m->line_id[1] = m->next_id++;
}

static void fuzz_model_clear(FuzzModel *m)
{
        for (int i = 0; i < 2; i++) {
                g_string_free(m->line[i], TRUE);
                g_free(m->time[i]);
        }
        g_ptr_array_unref(m->out);
        g_array_unref(m->line_end);
}

static void fuzz_model_emit(FuzzModel *m, int i, const char *text, size_t len, bool partial)
{
        if (m->skip[i] > 0) {
                if (!partial)
                        m->skip[i]--;
                return;
        }
        ControlLogLine l = { .time = m->time[i], .stream = i ? CTRMON_STREAM_STDERR : CTRMON_STREAM_STDOUT,
                             .partial = partial };
        char *valid = g_utf8_make_valid(text, (gssize) len);
        l.text = valid;
        fuzz_collect_line(&l, m->out)->line = m->line_id[i];
        g_free(valid);
}

static void fuzz_model_end_line(FuzzModel *m, int i, size_t rec_off)
{
        size_t id = m->line_id[i];
        if (m->line_end->len <= id)
                g_array_set_size(m->line_end, (guint) id + 1);
        g_array_index(m->line_end, size_t, id) = rec_off;
        m->line_id[i] = m->next_id++;
        m->begun[i] = false;
}

/* Where a LINE_MAX piece ends: not inside a UTF-8 sequence (a lead byte
 * whose sequence does not fit begins the next piece). */
static size_t fuzz_cut(const char *s, size_t len)
{
        for (size_t k = 1; k <= 3 && k <= len; k++) {
                unsigned char b = (unsigned char) s[len - k];
                if ((b & 0xC0) == 0x80)
                        continue; /* a continuation byte: look further back */
                size_t need = b >= 0xF0 ? 4 : b >= 0xE0 ? 3 : b >= 0xC0 ? 2 : 1;
                return need > k ? len - k : len;
        }
        return len;
}

static void fuzz_model_record(FuzzModel *m, const char *rec, size_t len, size_t off)
{
        size_t tl = 0;
        if (len > CONTROL_LOGS_RECORD_MAX || !fuzz_is_record(rec, len, &tl))
                return;
        CtrmonStream s = rec[tl + 4] == 'o' ? CTRMON_STREAM_STDOUT : CTRMON_STREAM_STDERR;
        if (m->only && s != m->only)
                return;
        int i = s == CTRMON_STREAM_STDERR;
        const char *text = len > tl + 9 ? rec + tl + 10 : rec + len;
        size_t text_len = (size_t) (rec + len - text);
        g_free(m->time[i]);
        m->time[i] = g_strndup(rec, tl);
        m->last_rec[i] = off;
        GString *l = m->line[i];
        if (rec[tl + 8] == 'F' && l->len == 0 && text_len <= CONTROL_LOGS_LINE_MAX) {
                /* A line in one F record: one piece, even of exactly
                 * LINE_MAX bytes (as P + F records it would be a LINE_MAX
                 * partial piece and an empty last one). */
                fuzz_model_emit(m, i, text, text_len, false);
                fuzz_model_end_line(m, i, off);
                return;
        }
        g_string_append_len(l, text, (gssize) text_len);
        if (text_len > 0)
                m->begun[i] = true;
        while (l->len >= CONTROL_LOGS_LINE_MAX) {
                size_t cut = fuzz_cut(l->str, CONTROL_LOGS_LINE_MAX);
                fuzz_model_emit(m, i, l->str, cut, true);
                g_string_erase(l, 0, (gssize) cut);
        }
        if (rec[tl + 8] == 'F') {
                fuzz_model_emit(m, i, l->str, l->len, false);
                g_string_truncate(l, 0);
                fuzz_model_end_line(m, i, off);
        }
}

/* Whole records of `buf`, then the begun lines as partials. */
static void fuzz_model_run(FuzzModel *m, const char *buf, size_t len)
{
        for (const char *p = buf, *end = buf + len; p < end;) {
                const char *nl = memchr(p, '\n', (size_t) (end - p));
                if (!nl)
                        break; /* not ended: not a record yet */
                fuzz_model_record(m, p, (size_t) (nl - p), (size_t) (p - buf));
                p = nl + 1;
        }
        for (int i = 0; i < 2; i++) {
                /* A begun line whose bytes all went out in LINE_MAX pieces
                 * has nothing left to show, but is still a line (its
                 * latest P ends it, for the tail). */
                if (m->line[i]->len > 0) {
                        if (m->skip[i] == 0)
                                fuzz_model_emit(m, i, m->line[i]->str, m->line[i]->len, true);
                        else
                                m->skip[i]--;
                }
                if (m->begun[i])
                        fuzz_model_end_line(m, i, m->last_rec[i]);
        }
}

static void fuzz_compare(GPtrArray *got, GPtrArray *want)
{
        if (got->len != want->len)
                abort();
        for (guint i = 0; i < got->len; i++) {
                FuzzLine *a = g_ptr_array_index(got, i), *b = g_ptr_array_index(want, i);
                if (a->stream != b->stream || a->partial != b->partial || strcmp(a->time, b->time) != 0 ||
                    strcmp(a->text, b->text) != 0)
                        abort();
        }
}

/* ------------------------------------------------------------ the tail */

static gint fuzz_cmp_size(gconstpointer a, gconstpointer b)
{
        size_t x = *(const size_t *) a, y = *(const size_t *) b;
        return x < y ? -1 : x > y;
}

static void fuzz_check_tail(const char *file, size_t len, CtrmonStream only, uint64_t n, unsigned seed)
{
        /* What the whole file gives, and which lines are the last n. */
        FuzzModel m;
        fuzz_model_init(&m, only, 0, 0);
        fuzz_model_run(&m, file, len);
        size_t n_lines = 0;
        GArray *ends = g_array_new(FALSE, FALSE, sizeof(size_t));
        bool *used = g_new0(bool, m.next_id);
        for (guint j = 0; j < m.out->len; j++) {
                size_t id = ((FuzzLine *) g_ptr_array_index(m.out, j))->line;
                if (id >= m.line_end->len)
                        abort(); /* a piece of a line the model never ended */
                used[id] = true;
        }
        for (guint id = 0; id < m.line_end->len; id++) {
                if (used[id]) {
                        g_array_append_val(ends, g_array_index(m.line_end, size_t, id));
                        n_lines++;
                }
        }
        g_free(used);
        /* The cut: line ends at or after it are kept (record offsets are
         * distinct per stream, and a record ends at most one line). */
        g_array_sort(ends, fuzz_cmp_size);
        GPtrArray *want = g_ptr_array_new_with_free_func(fuzz_line_free);
        if (n > 0 && n_lines > 0) {
                size_t cut = g_array_index(ends, size_t, n_lines - MIN(n, (uint64_t) n_lines));
                for (guint j = 0; j < m.out->len; j++) {
                        FuzzLine *l = g_ptr_array_index(m.out, j);
                        if (g_array_index(m.line_end, size_t, l->line) >= cut) {
                                FuzzLine *c = g_new0(FuzzLine, 1);
                                *c = (FuzzLine) { g_strdup(l->time), l->stream, g_strdup(l->text), l->partial, 0 };
                                g_ptr_array_add(want, c);
                        }
                }
        }
        g_array_unref(ends);
        fuzz_model_clear(&m);

        /* The scan, backwards in blocks. */
        ControlLogTailScan *s = control_log_tail_scan_new(only, n, (off_t) len);
        for (unsigned k = 0; !control_log_tail_scan_done(s); k++) {
                off_t next = control_log_tail_scan_next(s);
                if (next <= 0 || (size_t) next > len)
                        abort(); /* not done, yet nothing left to feed */
                size_t block = seed == 0 ? (size_t) next : 1 + (seed * 37 + k * 11) % 211;
                block = MIN(block, (size_t) next);
                bool done = control_log_tail_scan_feed(s, file + next - (off_t) block, block);
                if (done != control_log_tail_scan_done(s))
                        abort();
                if (!done && control_log_tail_scan_next(s) != next - (off_t) block)
                        abort();
        }
        ControlLogTailRange range;
        control_log_tail_scan_range(s, &range);
        control_log_tail_scan_free(s);
        if (range.start < 0 || range.start > range.end || (size_t) range.end > len)
                abort();
        /* The range ends after the file's last '\n' (nothing if none). */
        const char *last_nl = memrchr(file, '\n', len);
        if (range.end != (last_nl ? (off_t) (last_nl - file) + 1 : 0) && n > 0)
                abort();
        if (range.start > 0 && file[range.start - 1] != '\n')
                abort();

        GPtrArray *got = g_ptr_array_new_with_free_func(fuzz_line_free);
        ControlLogAssembler *a = control_log_assembler_new(only);
        control_log_assembler_set_skip(a, range.skip[0], range.skip[1]);
        control_log_assembler_feed(a, file + range.start, (size_t) (range.end - range.start), fuzz_collect, got);
        control_log_assembler_partials(a, true, fuzz_collect, got);
        control_log_assembler_free(a);
        if (n > 0)
                fuzz_compare(got, want);
        g_ptr_array_unref(got);
        g_ptr_array_unref(want);
}

/* ------------------------------------------------------------ the run */

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        if (size < FUZZ_HEADER)
                return 0;
        static const CtrmonStream filters[3] = { 0, CTRMON_STREAM_STDOUT, CTRMON_STREAM_STDERR };
        CtrmonStream only = filters[data[0] % 3];
        unsigned seed = data[0] / 3;
        uint8_t resets = data[1];
        size_t filler_len = (size_t) (1 + (data[2] & 7)) * 16 * 1024;
        static const char *const fillers[4] = { "x", "\xc3\xa9", "\xe2\x82\xac", "\xf0\x9d\x84\x9e" };
        const char *filler = fillers[(data[2] >> 3) & 3];
        uint64_t skip0 = data[3] & 3, skip1 = (data[3] >> 2) & 3, tail = data[3] >> 4;
        unsigned tail_seed = data[4];
        const char *body = (const char *) data + FUZZ_HEADER;
        size_t body_len = size - FUZZ_HEADER;

        GString *block = g_string_sized_new(filler_len + 4);
        while (block->len < filler_len)
                g_string_append(block, filler);
        GString *f = g_string_sized_new(body_len);
        for (size_t i = 0; i < body_len; i++) {
                if (body[i] == '\x01' && f->len <= 1024 * 1024)
                        g_string_append_len(f, block->str, (gssize) block->len);
                else
                        g_string_append_c(f, body[i]);
        }
        g_string_free(block, TRUE);
        const char *file = f->str;
        size_t len = f->len;

        /* Every line of the body, and the body as one record. */
        for (const char *p = body, *end = body + body_len; p < end;) {
                const char *nl = memchr(p, '\n', (size_t) (end - p));
                size_t n = nl ? (size_t) (nl - p) : (size_t) (end - p);
                fuzz_check_record(p, n);
                p += n + 1;
        }
        fuzz_check_record(body, body_len);

        /* The assembler in chunks; `effective` is the file as the model
         * must see it: an unfinished record is cut at a reset. */
        GPtrArray *got = g_ptr_array_new_with_free_func(fuzz_line_free);
        GString *effective = g_string_new(NULL);
        ControlLogAssembler *a = control_log_assembler_new(only);
        control_log_assembler_set_skip(a, skip0, skip1);
        size_t off = 0, records_end = 0; /* effective->str[0, records_end): whole records */
        for (unsigned chunk = 0; off < len; chunk++) {
                size_t n = seed == 0 ? len - off : 1 + (seed * 31 + off * 17) % (seed & 1 ? 97 : 70000);
                n = MIN(n, len - off);
                control_log_assembler_feed(a, file + off, n, fuzz_collect, got);
                g_string_append_len(effective, file + off, (gssize) n);
                const char *nl = memrchr(file + off, '\n', n);
                if (nl)
                        records_end = effective->len - (size_t) (file + off + n - nl) + 1;
                off += n;
                if (off < len && (resets >> (chunk % 8)) & 1) {
                        control_log_assembler_reset_record(a);
                        g_string_truncate(effective, records_end);
                }
        }
        /* Partials: looking does not consume, taking does. */
        GPtrArray *peek1 = g_ptr_array_new_with_free_func(fuzz_line_free);
        GPtrArray *after = g_ptr_array_new_with_free_func(fuzz_line_free);
        control_log_assembler_partials(a, false, fuzz_collect, peek1);
        control_log_assembler_partials(a, true, fuzz_collect, got);
        control_log_assembler_partials(a, true, fuzz_collect, after);
        if (after->len != 0)
                abort();
        control_log_assembler_free(a);

        /* The model on the effective bytes. */
        FuzzModel m;
        fuzz_model_init(&m, only, skip0, skip1);
        fuzz_model_run(&m, effective->str, effective->len);
        fuzz_compare(got, m.out);
        /* The peek was the taken partials: the tail of `got`. */
        if (peek1->len > got->len)
                abort();
        GPtrArray *tail_of_got = g_ptr_array_new();
        for (guint i = got->len - peek1->len; i < got->len; i++)
                g_ptr_array_add(tail_of_got, g_ptr_array_index(got, i));
        fuzz_compare(peek1, tail_of_got);
        for (guint i = 0; i < peek1->len; i++)
                if (!((FuzzLine *) g_ptr_array_index(peek1, i))->partial)
                        abort();
        g_ptr_array_unref(tail_of_got);
        fuzz_model_clear(&m);

        fuzz_check_tail(file, len, only, tail, tail_seed);

        g_ptr_array_unref(got);
        g_ptr_array_unref(peek1);
        g_ptr_array_unref(after);
        g_string_free(effective, TRUE);
        g_string_free(f, TRUE);
        return 0;
}
