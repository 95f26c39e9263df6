/* Proves the k8s-file reading under "logs": records split into their
 * fields, P fragments joined with their F into one line per stream even
 * when the records interleave and arrive cut at any byte, what a line
 * still being written looks like, and that junk is skipped; that memory
 * stays bounded (a line without end comes in CONTROL_LOGS_LINE_MAX pieces,
 * cut between UTF-8 characters; an over-long record is not held); and that
 * the backward tail scan plus the assembler give exactly the last N lines
 * of a full forward read, for random logs cut into random blocks. */
#include "control-logs.h"

#include <check.h>
#include <stdlib.h>
#include <string.h>

#define TS1 "2024-01-02T03:04:05.000000001+00:00"
#define TS2 "2024-01-02T03:04:05.000000002+00:00"
#define TS3 "2024-01-02T03:04:05.000000003+00:00"

typedef struct {
        GPtrArray *texts;       /* "stream|partial|time|text" */
} Collected;

static void collect_cb(const ControlLogLine *line, void *user_data)
{
        Collected *c = user_data;
        g_ptr_array_add(c->texts, g_strdup_printf("%s|%s|%s|%s",
                                                  line->stream == CTRMON_STREAM_STDERR ? "err" : "out",
                                                  line->partial ? "P" : "F", line->time, line->text));
}

static Collected collect_new(void)
{
        return (Collected){ g_ptr_array_new_with_free_func(g_free) };
}

START_TEST(test_parse_record_fields)
{
        const char *rec = TS1 " stderr P some text ";
        const char *time, *text;
        size_t tlen, xlen;
        CtrmonStream stream;
        bool full = true;
        ck_assert_int_eq(control_logs_parse_record(rec, strlen(rec), &time, &tlen, &stream, &full, &text, &xlen), 0);
        ck_assert_uint_eq(tlen, 35);
        ck_assert_int_eq(stream, CTRMON_STREAM_STDERR);
        ck_assert(!full);
        ck_assert_uint_eq(xlen, strlen("some text "));
        ck_assert(memcmp(text, "some text ", xlen) == 0);
}
END_TEST

START_TEST(test_parse_record_empty_line_and_junk)
{
        const char *time, *text;
        size_t tlen, xlen;
        CtrmonStream stream;
        bool full;
        const char *empty = TS1 " stdout F ";
        ck_assert_int_eq(control_logs_parse_record(empty, strlen(empty), &time, &tlen, &stream, &full, &text, &xlen), 0);
        ck_assert(full);
        ck_assert_uint_eq(xlen, 0);
        const char *bare = TS1 " stdout F";
        ck_assert_int_eq(control_logs_parse_record(bare, strlen(bare), &time, &tlen, &stream, &full, &text, &xlen), 0);
        const char *bad[] = { "", "nospace", TS1 " stdin F x", TS1 " stdout X x", TS1 " stdout Fx" };
        for (size_t i = 0; i < G_N_ELEMENTS(bad); i++)
                ck_assert_int_lt(control_logs_parse_record(bad[i], strlen(bad[i]), &time, &tlen, &stream, &full,
                                                           &text, &xlen),
                                 0);
}
END_TEST

static const char *const interleaved = TS1 " stdout P hel\n"
                                       TS1 " stderr F oops\n"
                                       "garbage line\n"
                                       TS2 " stdout P lo \n"
                                       TS3 " stdout F world\n"
                                       TS3 " stdout F \n"
                                       TS3 " stderr P unfinished\n";

static void check_interleaved(Collected *c)
{
        ck_assert_uint_eq(c->texts->len, 3);
        ck_assert_str_eq(g_ptr_array_index(c->texts, 0), "err|F|" TS1 "|oops");
        ck_assert_str_eq(g_ptr_array_index(c->texts, 1), "out|F|" TS3 "|hello world");
        ck_assert_str_eq(g_ptr_array_index(c->texts, 2), "out|F|" TS3 "|");
}

START_TEST(test_assembler_joins_fragments_per_stream)
{
        Collected c = collect_new();
        ControlLogAssembler *a = control_log_assembler_new(0);
        control_log_assembler_feed(a, interleaved, strlen(interleaved), collect_cb, &c);
        check_interleaved(&c);
        /* Peek at the partial line, then take it. */
        control_log_assembler_partials(a, false, collect_cb, &c);
        control_log_assembler_partials(a, true, collect_cb, &c);
        control_log_assembler_partials(a, true, collect_cb, &c);
        ck_assert_uint_eq(c.texts->len, 5);
        ck_assert_str_eq(g_ptr_array_index(c.texts, 3), "err|P|" TS3 "|unfinished");
        ck_assert_str_eq(g_ptr_array_index(c.texts, 4), "err|P|" TS3 "|unfinished");
        control_log_assembler_free(a);
        g_ptr_array_unref(c.texts);
}
END_TEST

START_TEST(test_assembler_byte_at_a_time_gives_the_same_lines)
{
        Collected c = collect_new();
        ControlLogAssembler *a = control_log_assembler_new(0);
        for (size_t i = 0; interleaved[i]; i++)
                control_log_assembler_feed(a, interleaved + i, 1, collect_cb, &c);
        check_interleaved(&c);
        control_log_assembler_free(a);
        g_ptr_array_unref(c.texts);
}
END_TEST

START_TEST(test_assembler_stream_filter)
{
        Collected c = collect_new();
        ControlLogAssembler *a = control_log_assembler_new(CTRMON_STREAM_STDERR);
        control_log_assembler_feed(a, interleaved, strlen(interleaved), collect_cb, &c);
        ck_assert_uint_eq(c.texts->len, 1);
        ck_assert_str_eq(g_ptr_array_index(c.texts, 0), "err|F|" TS1 "|oops");
        control_log_assembler_free(a);
        g_ptr_array_unref(c.texts);
}
END_TEST

START_TEST(test_assembler_reset_drops_the_cut_record_keeps_the_line)
{
        Collected c = collect_new();
        ControlLogAssembler *a = control_log_assembler_new(0);
        const char *before = TS1 " stdout P begun \n" TS1 " stdout F cut-o";
        control_log_assembler_feed(a, before, strlen(before), collect_cb, &c);
        control_log_assembler_reset_record(a); /* the file was replaced */
        const char *after = TS2 " stdout F ended\n";
        control_log_assembler_feed(a, after, strlen(after), collect_cb, &c);
        ck_assert_uint_eq(c.texts->len, 1);
        ck_assert_str_eq(g_ptr_array_index(c.texts, 0), "out|F|" TS2 "|begun ended");
        control_log_assembler_free(a);
        g_ptr_array_unref(c.texts);
}
END_TEST

START_TEST(test_assembler_makes_text_valid_utf8)
{
        Collected c = collect_new();
        ControlLogAssembler *a = control_log_assembler_new(0);
        const char *rec = TS1 " stdout F a\xff" "b\n";
        control_log_assembler_feed(a, rec, strlen(rec), collect_cb, &c);
        ck_assert_uint_eq(c.texts->len, 1);
        ck_assert(g_utf8_validate(g_ptr_array_index(c.texts, 0), -1, NULL));
        control_log_assembler_free(a);
        g_ptr_array_unref(c.texts);
}
END_TEST


START_TEST(test_parse_record_time_field_is_bounded)
{
        const char *time, *text;
        size_t tlen, xlen;
        CtrmonStream stream;
        bool full;
        g_autofree char *t = g_strnfill(CONTROL_LOGS_TIME_MAX + 1, 't');
        g_autofree char *ok = g_strdup_printf("%.*s stdout F x", CONTROL_LOGS_TIME_MAX, t);
        g_autofree char *bad = g_strdup_printf("%s stdout F x", t);
        ck_assert_int_eq(control_logs_parse_record(ok, strlen(ok), &time, &tlen, &stream, &full, &text, &xlen), 0);
        ck_assert_uint_eq(tlen, CONTROL_LOGS_TIME_MAX);
        ck_assert_int_lt(control_logs_parse_record(bad, strlen(bad), &time, &tlen, &stream, &full, &text, &xlen), 0);
}
END_TEST

/* Pieces of one stream, checked as they come. */
typedef struct {
        GString *all;
        size_t pieces;
        size_t max_piece;
        bool all_partial;
        bool valid;
        GString *last_time;
} Pieces;

static void pieces_cb(const ControlLogLine *line, void *user_data)
{
        Pieces *p = user_data;
        size_t n = strlen(line->text);
        g_string_append(p->all, line->text);
        p->pieces++;
        p->max_piece = MAX(p->max_piece, n);
        p->all_partial = p->all_partial && line->partial;
        /* No piece was cut inside a character: nothing had to be replaced. */
        p->valid = p->valid && !strstr(line->text, "\xef\xbf\xbd");
        g_string_assign(p->last_time, line->time);
}

/* A line that never ends, as the k8s-file sink writes it: P records of up
 * to 128 KiB. 4 MiB of it come out as pieces of at most LINE_MAX, all
 * partial, which put together are the text. */
START_TEST(test_assembler_endless_line_comes_in_bounded_partial_pieces)
{
        const char *unit = _i ? "\xe2\x82\xac" /* € */ : "x";
        size_t ulen = strlen(unit);
        GString *text = g_string_new(NULL);
        while (text->len < 128 * 1024 - ulen)
                g_string_append(text, unit);
        g_autofree char *rec = g_strdup_printf(TS1 " stdout P %s\n", text->str);
        Pieces p = { g_string_new(NULL), 0, 0, true, true, g_string_new(NULL) };
        ControlLogAssembler *a = control_log_assembler_new(0);
        size_t records = 32, rlen = strlen(rec);
        for (size_t r = 0; r < records; r++) /* cut at odd places, too */
                for (size_t off = 0; off < rlen; off += 70001)
                        control_log_assembler_feed(a, rec + off, MIN(70001, rlen - off), pieces_cb, &p);
        ck_assert_uint_le(p.max_piece, CONTROL_LOGS_LINE_MAX);
        ck_assert_uint_ge(p.max_piece, CONTROL_LOGS_LINE_MAX - 3);
        ck_assert(p.all_partial);
        ck_assert(p.valid);
        ck_assert_uint_ge(p.pieces, records * text->len / CONTROL_LOGS_LINE_MAX);
        /* The rest, under LINE_MAX, is the line still being written. */
        control_log_assembler_partials(a, true, pieces_cb, &p);
        ck_assert_uint_eq(p.all->len, records * text->len);
        for (size_t r = 0; r < records; r++)
                ck_assert(memcmp(p.all->str + r * text->len, text->str, text->len) == 0);
        ck_assert_str_eq(p.last_time->str, TS1);
        control_log_assembler_free(a);
        g_string_free(p.all, TRUE);
        g_string_free(p.last_time, TRUE);
        g_string_free(text, TRUE);
}
END_TEST

/* An F ends a long line: the pieces before are partial, the last is not. */
START_TEST(test_assembler_long_line_ends_with_a_full_piece)
{
        g_autofree char *big = g_strnfill(CONTROL_LOGS_LINE_MAX + 10, 'y');
        g_autofree char *log = g_strdup_printf(TS1 " stderr P %s\n" TS2 " stderr F end\n", big);
        Collected c = collect_new();
        ControlLogAssembler *a = control_log_assembler_new(0);
        control_log_assembler_feed(a, log, strlen(log), collect_cb, &c);
        ck_assert_uint_eq(c.texts->len, 2);
        g_autofree char *first = g_strdup_printf("err|P|" TS1 "|%.*s", CONTROL_LOGS_LINE_MAX, big);
        ck_assert_str_eq(g_ptr_array_index(c.texts, 0), first);
        ck_assert_str_eq(g_ptr_array_index(c.texts, 1), "err|F|" TS2 "|yyyyyyyyyyend");
        control_log_assembler_free(a);
        g_ptr_array_unref(c.texts);
}
END_TEST

/* A record longer than any the sink writes is skipped, whether it comes
 * whole or cut, and what follows is read as before. */
START_TEST(test_assembler_skips_an_overlong_record)
{
        GString *log = g_string_new(TS1 " stdout F before\n" TS1 " stdout F ");
        while (log->len < 3 * CONTROL_LOGS_RECORD_MAX)
                g_string_append_c(log, 'z');
        g_string_append(log, "\n" TS2 " stdout F after\n");
        size_t cut = _i == 0 ? log->len : _i == 1 ? 4096 : 1;
        Collected c = collect_new();
        ControlLogAssembler *a = control_log_assembler_new(0);
        for (size_t off = 0; off < log->len; off += cut)
                control_log_assembler_feed(a, log->str + off, MIN(cut, log->len - off), collect_cb, &c);
        ck_assert_uint_eq(c.texts->len, 2);
        ck_assert_str_eq(g_ptr_array_index(c.texts, 0), "out|F|" TS1 "|before");
        ck_assert_str_eq(g_ptr_array_index(c.texts, 1), "out|F|" TS2 "|after");
        control_log_assembler_free(a);
        g_ptr_array_unref(c.texts);
        g_string_free(log, TRUE);
}
END_TEST

START_TEST(test_assembler_skip_drops_whole_lines_per_stream)
{
        const char *log = TS1 " stdout P a\n" TS1 " stderr F e1\n" TS2 " stdout F b\n" TS2 " stderr F e2\n"
                          TS3 " stdout F c\n" TS3 " stderr P e3\n";
        Collected c = collect_new();
        ControlLogAssembler *a = control_log_assembler_new(0);
        control_log_assembler_set_skip(a, 1, 2);
        control_log_assembler_feed(a, log, strlen(log), collect_cb, &c);
        control_log_assembler_partials(a, false, collect_cb, &c);
        ck_assert_uint_eq(c.texts->len, 2);
        ck_assert_str_eq(g_ptr_array_index(c.texts, 0), "out|F|" TS3 "|c");
        ck_assert_str_eq(g_ptr_array_index(c.texts, 1), "err|P|" TS3 "|e3");
        control_log_assembler_free(a);
        g_ptr_array_unref(c.texts);
}
END_TEST

/* ------------------------------------------------------------ the tail */

/* What a full forward read gives, each entry with its line: per stream, a
 * line ends with an entry that is not partial, or is the line still being
 * written (P records with text after the stream's last F), which ends with
 * the stream's latest record. */
typedef struct {
        GPtrArray *texts;       /* as collect_cb */
        GArray *line_id;        /* (stream index << 32) | line number */
        guint64 next_line[2];
        GArray *line_end;       /* line id -> offset of the record ending it, by stream */
        off_t record_off;       /* the record being fed */
        GHashTable *ends;       /* line id -> end offset */
} Reference;

static void reference_cb(const ControlLogLine *line, void *user_data)
{
        Reference *r = user_data;
        int i = line->stream == CTRMON_STREAM_STDERR;
        guint64 id = ((guint64) i << 32) | r->next_line[i];
        collect_cb(line, &(Collected){ r->texts });
        g_array_append_val(r->line_id, id);
        if (!line->partial) {
                g_hash_table_insert(r->ends, g_memdup2(&id, sizeof id), g_memdup2(&r->record_off, sizeof(off_t)));
                r->next_line[i]++;
        }
}

static gint off_desc(gconstpointer a, gconstpointer b)
{
        off_t x = *(const off_t *) a, y = *(const off_t *) b;
        return x < y ? 1 : x > y ? -1 : 0;
}

/* The expected answer to tail=n: the entries of the n lines whose ending
 * records come last, in the order a forward read hands them out. */
static GPtrArray *reference_tail(const char *log, size_t len, CtrmonStream only, guint64 n, off_t *ret_end)
{
        Reference r = { g_ptr_array_new_with_free_func(g_free), g_array_new(FALSE, FALSE, sizeof(guint64)),
                        { 0, 0 }, NULL, 0, g_hash_table_new_full(g_int64_hash, g_int64_equal, g_free, g_free) };
        ControlLogAssembler *a = control_log_assembler_new(only);
        off_t last_rec[2] = { -1, -1 };
        bool begun[2] = { false, false }; /* a P with text since the last F */
        const char *p = log, *end = log + len;
        *ret_end = 0;
        while (p < end) {
                const char *nl = memchr(p, '\n', (size_t) (end - p));
                if (!nl)
                        break; /* still being written: not read */
                r.record_off = p - log;
                const char *time, *text;
                size_t tlen, xlen;
                CtrmonStream stream;
                bool full;
                size_t rlen = (size_t) (nl - p);
                if (rlen <= CONTROL_LOGS_RECORD_MAX &&
                    control_logs_parse_record(p, rlen, &time, &tlen, &stream, &full, &text, &xlen) == 0 &&
                    (!only || stream == only)) {
                        int i = stream == CTRMON_STREAM_STDERR;
                        last_rec[i] = p - log;
                        begun[i] = !full && (begun[i] || xlen > 0);
                }
                control_log_assembler_feed(a, p, rlen + 1, reference_cb, &r);
                p = nl + 1;
                *ret_end = p - log;
        }
        control_log_assembler_partials(a, false, reference_cb, &r);
        for (int i = 0; i < 2; i++) {
                if (!begun[i])
                        continue; /* no line still being written */
                guint64 id = ((guint64) i << 32) | r.next_line[i];
                g_hash_table_insert(r.ends, g_memdup2(&id, sizeof id), g_memdup2(&last_rec[i], sizeof(off_t)));
        }
        /* The n latest line ends. */
        GArray *offs = g_array_new(FALSE, FALSE, sizeof(off_t));
        GHashTableIter it;
        gpointer k, v;
        g_hash_table_iter_init(&it, r.ends);
        while (g_hash_table_iter_next(&it, &k, &v))
                g_array_append_val(offs, *(off_t *) v);
        g_array_sort(offs, off_desc);
        off_t cutoff = n == 0 ? G_MAXINT64 : n >= offs->len ? -1 : g_array_index(offs, off_t, n - 1);
        GPtrArray *want = g_ptr_array_new_with_free_func(g_free);
        for (guint e = 0; e < r.texts->len; e++) {
                guint64 id = g_array_index(r.line_id, guint64, e);
                off_t *lend = g_hash_table_lookup(r.ends, &id);
                ck_assert_ptr_nonnull(lend);
                if (*lend >= cutoff)
                        g_ptr_array_add(want, g_strdup(g_ptr_array_index(r.texts, e)));
        }
        g_array_free(offs, TRUE);
        g_hash_table_unref(r.ends);
        g_array_free(r.line_id, TRUE);
        g_ptr_array_unref(r.texts);
        control_log_assembler_free(a);
        return want;
}

/* The way the monitor does it: the scan backwards in blocks of `block`
 * bytes, then the assembler over the range with the skips. Returns how
 * many bytes the scan read. */
static size_t scan_tail(const char *log, size_t len, CtrmonStream only, guint64 n, size_t block, Collected *c,
                        off_t *ret_end)
{
        ControlLogTailScan *s = control_log_tail_scan_new(only, n, (off_t) len);
        size_t read = 0;
        while (!control_log_tail_scan_done(s)) {
                off_t next = control_log_tail_scan_next(s);
                size_t b = (size_t) MIN((off_t) block, next);
                read += b;
                control_log_tail_scan_feed(s, log + next - b, b);
        }
        ControlLogTailRange range;
        control_log_tail_scan_range(s, &range);
        control_log_tail_scan_free(s);
        ck_assert_int_le(range.start, range.end);
        ControlLogAssembler *a = control_log_assembler_new(only);
        control_log_assembler_set_skip(a, range.skip[0], range.skip[1]);
        control_log_assembler_feed(a, log + range.start, (size_t) (range.end - range.start), collect_cb, c);
        control_log_assembler_partials(a, false, collect_cb, c);
        control_log_assembler_free(a);
        *ret_end = range.end;
        return read;
}

static void random_log(GRand *rand, GString *log, int records, bool long_ones)
{
        static const char *const bits[] = { "a", "b", " ", "é", "€", "\xf0\x9f\x90\xb3", "\t", "\xff" };
        for (int r = 0; r < records; r++) {
                guint32 kind = g_rand_int_range(rand, 0, 100);
                if (kind < 4) {
                        g_string_append(log, kind < 2 ? "garbage\n" : "\n");
                        continue;
                }
                if (kind < 5 && long_ones) {
                        g_string_append(log, TS1 " stdout F ");
                        for (int k = 0; k < CONTROL_LOGS_RECORD_MAX + 1; k++)
                                g_string_append_c(log, 'L');
                        g_string_append_c(log, '\n');
                        continue;
                }
                g_string_append_printf(log, "2024-01-02T03:04:05.%09d+00:00 %s %c", r,
                                       g_rand_boolean(rand) ? "stdout" : "stderr",
                                       g_rand_int_range(rand, 0, 3) ? 'F' : 'P');
                int words = g_rand_int_range(rand, 0, 6);
                if (words || g_rand_boolean(rand))
                        g_string_append_c(log, ' ');
                for (int w = 0; w < words; w++)
                        g_string_append(log, bits[g_rand_int_range(rand, 0, G_N_ELEMENTS(bits))]);
                if (long_ones && g_rand_int_range(rand, 0, 10) == 0)
                        for (int k = g_rand_int_range(rand, 1, 50000); k > 0; k--)
                                g_string_append_c(log, 'm');
                g_string_append_c(log, '\n');
        }
        if (g_rand_boolean(rand))
                g_string_append(log, TS3 " stdout F unfinished record, no newline yet");
}

static void check_tail(const GString *log, CtrmonStream only, guint64 n, size_t block)
{
        off_t want_end, got_end;
        g_autoptr(GPtrArray) want = reference_tail(log->str, log->len, only, n, &want_end);
        Collected c = collect_new();
        scan_tail(log->str, log->len, only, n, block, &c, &got_end);
        ck_assert_int_eq(got_end, want_end);
        if (c.texts->len != want->len)
                ck_abort_msg("tail %" G_GUINT64_FORMAT " only %d block %zu: %u entries, want %u", n, only, block,
                             c.texts->len, want->len);
        for (guint e = 0; e < want->len; e++)
                ck_assert_str_eq(g_ptr_array_index(c.texts, e), g_ptr_array_index(want, e));
        g_ptr_array_unref(c.texts);
}

START_TEST(test_tail_scan_gives_the_last_lines_of_random_logs)
{
        static const CtrmonStream onlys[] = { 0, CTRMON_STREAM_STDOUT, CTRMON_STREAM_STDERR };
        static const guint64 ns[] = { 0, 1, 2, 3, 5, 17, 1000000 };
        static const size_t blocks[] = { 1, 7, 64, 4096, 65536 };
        GRand *rand = g_rand_new_with_seed(0x14 + (guint32) _i);
        for (int iter = 0; iter < 40; iter++) {
                g_autoptr(GString) log = g_string_new(NULL);
                random_log(rand, log, g_rand_int_range(rand, 0, 60), false);
                for (size_t o = 0; o < G_N_ELEMENTS(onlys); o++)
                        for (size_t k = 0; k < G_N_ELEMENTS(ns); k++)
                                check_tail(log, onlys[o], ns[k],
                                           blocks[g_rand_int_range(rand, 0, G_N_ELEMENTS(blocks))]);
        }
        g_rand_free(rand);
}
END_TEST

/* With lines over LINE_MAX (pieces) and records over RECORD_MAX (skipped). */
START_TEST(test_tail_scan_with_long_lines_and_overlong_records)
{
        GRand *rand = g_rand_new_with_seed(1400 + (guint32) _i);
        g_autoptr(GString) log = g_string_new(NULL);
        random_log(rand, log, 300, true);
        static const guint64 ns[] = { 1, 4, 40, 1000 };
        for (size_t k = 0; k < G_N_ELEMENTS(ns); k++) {
                check_tail(log, 0, ns[k], 65536);
                check_tail(log, CTRMON_STREAM_STDERR, ns[k], 4099);
        }
        g_rand_free(rand);
}
END_TEST

/* tail=2 of a long log reads one block from its end, not the log. */
START_TEST(test_tail_scan_reads_only_the_end)
{
        g_autoptr(GString) log = g_string_new(NULL);
        for (int r = 0; r < 100000; r++)
                g_string_append_printf(log, TS1 " %s F line %d\n", r % 2 ? "stderr" : "stdout", r);
        Collected c = collect_new();
        off_t end;
        size_t read = scan_tail(log->str, log->len, 0, 2, 65536, &c, &end);
        ck_assert_uint_eq(read, 65536);
        ck_assert_int_eq(end, (off_t) log->len);
        ck_assert_uint_eq(c.texts->len, 2);
        ck_assert_str_eq(g_ptr_array_index(c.texts, 0), "out|F|" TS1 "|line 99998");
        ck_assert_str_eq(g_ptr_array_index(c.texts, 1), "err|F|" TS1 "|line 99999");
        g_ptr_array_unref(c.texts);
}
END_TEST

/* A line still being written is last only if its latest record is: an old
 * unfinished stderr prompt does not push out the newest stdout line. */
START_TEST(test_tail_orders_a_stale_partial_by_its_last_record)
{
        const char *log = TS1 " stderr P Password: \n" TS2 " stdout F one\n" TS3 " stdout F two\n";
        Collected c = collect_new();
        off_t end;
        scan_tail(log, strlen(log), 0, 1, 7, &c, &end);
        ck_assert_uint_eq(c.texts->len, 1);
        ck_assert_str_eq(g_ptr_array_index(c.texts, 0), "out|F|" TS3 "|two");
        g_ptr_array_unref(c.texts);
        c = collect_new();
        scan_tail(log, strlen(log), 0, 3, 7, &c, &end);
        ck_assert_uint_eq(c.texts->len, 3);
        ck_assert_str_eq(g_ptr_array_index(c.texts, 2), "err|P|" TS1 "|Password: ");
        g_ptr_array_unref(c.texts);
}
END_TEST

/* A P record without text is no line by itself: whether the stream has a
 * line still being written is known only further back (the fuzz target's
 * crash-tail-trailing-empty-p-hides-last-line). */
START_TEST(test_tail_trailing_empty_p_is_not_a_line)
{
        static const struct {
                const char *log;
                guint64 n;
                const char *want[3];
        } cases[] = {
                /* No text since the last F: not a line. */
                { TS1 " stdout F one\n" TS2 " stdout F two\n" TS3 " stdout P \n", 1, { "out|F|" TS2 "|two" } },
                { TS1 " stderr F e\n" TS2 " stdout F two\n" TS3 " stderr P\n", 1, { "out|F|" TS2 "|two" } },
                /* Text further back: a line, ending with its latest P. */
                { TS1 " stderr P begun\n" TS2 " stdout F two\n" TS3 " stderr P \n", 1, { "err|P|" TS3 "|begun" } },
                { TS1 " stderr P begun\n" TS2 " stdout F two\n" TS3 " stderr P \n", 2,
                  { "out|F|" TS2 "|two", "err|P|" TS3 "|begun" } },
                /* Both streams open at once, answered differently. */
                { TS1 " stdout F one\n" TS1 " stderr P err\n" TS2 " stdout F two\n" TS3 " stdout P \n"
                  TS3 " stderr P \n",
                  2, { "out|F|" TS2 "|two", "err|P|" TS3 "|err" } },
                /* Open to the file's start. */
                { TS1 " stdout P \n" TS2 " stderr F e\n" TS3 " stdout P \n", 2, { "err|F|" TS2 "|e" } },
        };
        for (size_t k = 0; k < G_N_ELEMENTS(cases); k++) {
                static const size_t blocks[] = { 1, 5, 4096 };
                for (size_t b = 0; b < G_N_ELEMENTS(blocks); b++) {
                        Collected c = collect_new();
                        off_t end;
                        scan_tail(cases[k].log, strlen(cases[k].log), 0, cases[k].n, blocks[b], &c, &end);
                        guint n = 0;
                        while (n < G_N_ELEMENTS(cases[k].want) && cases[k].want[n])
                                n++;
                        if (c.texts->len != n)
                                ck_abort_msg("case %zu block %zu: %u entries, want %u", k, blocks[b], c.texts->len,
                                             n);
                        for (guint e = 0; e < n; e++)
                                ck_assert_str_eq(g_ptr_array_index(c.texts, e), cases[k].want[e]);
                        g_ptr_array_unref(c.texts);
                }
        }
}
END_TEST

int main(void)
{
        Suite *s = suite_create("control-logs");
        TCase *tc = tcase_create("core");
        tcase_add_test(tc, test_parse_record_fields);
        tcase_add_test(tc, test_parse_record_empty_line_and_junk);
        tcase_add_test(tc, test_assembler_joins_fragments_per_stream);
        tcase_add_test(tc, test_assembler_byte_at_a_time_gives_the_same_lines);
        tcase_add_test(tc, test_assembler_stream_filter);
        tcase_add_test(tc, test_assembler_reset_drops_the_cut_record_keeps_the_line);
        tcase_add_test(tc, test_assembler_makes_text_valid_utf8);
        tcase_add_test(tc, test_parse_record_time_field_is_bounded);
        tcase_add_loop_test(tc, test_assembler_endless_line_comes_in_bounded_partial_pieces, 0, 2);
        tcase_add_test(tc, test_assembler_long_line_ends_with_a_full_piece);
        tcase_add_loop_test(tc, test_assembler_skips_an_overlong_record, 0, 3);
        tcase_add_test(tc, test_assembler_skip_drops_whole_lines_per_stream);
        tcase_add_loop_test(tc, test_tail_scan_gives_the_last_lines_of_random_logs, 0, 5);
        tcase_add_loop_test(tc, test_tail_scan_with_long_lines_and_overlong_records, 0, 3);
        tcase_add_test(tc, test_tail_scan_reads_only_the_end);
        tcase_add_test(tc, test_tail_orders_a_stale_partial_by_its_last_record);
        tcase_add_test(tc, test_tail_trailing_empty_p_is_not_a_line);
        suite_add_tcase(s, tc);
        SRunner *sr = srunner_create(s);
        srunner_run_all(sr, CK_NORMAL);
        int failed = srunner_ntests_failed(sr);
        srunner_free(sr);
        return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
