/* Unit tests for the journald log sink (spec §6.4) without a journal: the
 * transport is replaced by a recorder (journald_sink_set_sender), so every
 * entry is checked field by field, in order, byte for byte. Covers the
 * partial-line rules, priority prefixes, labels and send failures. */

#include "log-journald.h"

#include <check.h>
#include <errno.h>
#include <glib.h>
#include <string.h>

#include <ctrmon/error.h>

#define CID "0123456789abcdef0123"
#define SHORT "0123456789ab"
#define MAXBUF 8192

/* ---- the recording transport ------------------------------------------- */

typedef struct {
        GPtrArray *entries;     /* of GPtrArray of GBytes (one per field) */
        int calls;
        int fail_call;          /* 1-based call number that fails, 0: none */
        int fail_errno;
} Recorder;

static int recorder_send(const struct iovec *iov, int n, void *user_data)
{
        Recorder *rec = user_data;

        rec->calls++;
        if (rec->fail_call && rec->calls == rec->fail_call)
                return -rec->fail_errno;
        GPtrArray *fields = g_ptr_array_new_with_free_func((GDestroyNotify) g_bytes_unref);
        for (int i = 0; i < n; i++)
                g_ptr_array_add(fields, g_bytes_new(iov[i].iov_base, iov[i].iov_len));
        g_ptr_array_add(rec->entries, fields);
        return 0;
}

static Recorder rec;
static LogSink *sink;

static void recorder_reset(void)
{
        if (rec.entries)
                g_ptr_array_unref(rec.entries);
        memset(&rec, 0, sizeof rec);
        rec.entries = g_ptr_array_new_with_free_func((GDestroyNotify) g_ptr_array_unref);
}

static bool priority_prefix; /* --log-priority-prefix for the next sinks */

static LogSink *make_sink(const char *name, const char *tag, const char *const *labels, bool no_partial)
{
        JournaldConfig config = {
                .cid = CID, .name = name, .tag = tag, .labels = labels, .no_partial_flag = no_partial,
                .priority_prefix = priority_prefix,
        };
        g_autoptr(GError) error = NULL;
        LogSink *s = NULL;

        ck_assert_int_eq(journald_sink_new(&config, &s, &error), 0);
        ck_assert_ptr_null(error);
        journald_sink_set_sender(s, recorder_send, &rec);
        return s;
}

static void setup(void)
{
        recorder_reset();
        priority_prefix = false;
        sink = make_sink(NULL, NULL, NULL, false);
}

static void setup_priority_prefix(void)
{
        recorder_reset();
        priority_prefix = true;
        sink = make_sink(NULL, NULL, NULL, false);
}

static void teardown(void)
{
        g_clear_pointer(&sink, log_sink_free);
        g_clear_pointer(&rec.entries, g_ptr_array_unref);
}

static void use_sink(LogSink *s)
{
        log_sink_free(sink);
        sink = s;
}

static int put(CtrmonStream stream, const char *buf, size_t len)
{
        static const struct timespec now = { 1, 2 };
        g_autoptr(GError) error = NULL;
        int r = sink->ops->write(sink, stream, &now, buf, len, &error);

        ck_assert(r < 0 ? error != NULL : error == NULL);
        return r;
}

#define OUT(s) ck_assert_int_eq(put(CTRMON_STREAM_STDOUT, (s), strlen(s)), 0)
#define ERR(s) ck_assert_int_eq(put(CTRMON_STREAM_STDERR, (s), strlen(s)), 0)

static void flush(void)
{
        g_autoptr(GError) error = NULL;
        ck_assert_int_eq(sink->ops->flush(sink, &error), 0);
        ck_assert_ptr_null(error);
}

static GPtrArray *entry(guint i)
{
        ck_assert_uint_lt(i, rec.entries->len);
        return g_ptr_array_index(rec.entries, i);
}

/* Entry I has exactly the NULL-terminated FIELDS (C strings), in order. */
static void assert_entry_v(guint i, const char *const *fields)
{
        GPtrArray *got = entry(i);
        guint n = g_strv_length((char **) fields);

        for (guint k = 0; k < MIN(n, got->len); k++) {
                gsize len;
                const char *data = g_bytes_get_data(g_ptr_array_index(got, k), &len);
                g_autofree char *shown = g_strndup(data, len);
                ck_assert_msg(len == strlen(fields[k]) && memcmp(data, fields[k], len) == 0,
                              "entry %u field %u: got '%s', want '%s'", i, k, shown, fields[k]);
        }
        ck_assert_msg(got->len == n, "entry %u: %u fields, want %u", i, got->len, n);
}
#define assert_entry(i, ...) assert_entry_v((i), (const char *const[]){ __VA_ARGS__, NULL })

/* Field K of entry I as a NUL-terminated copy (and its length). */
static char *field(guint i, guint k, gsize *ret_len)
{
        GPtrArray *got = entry(i);
        gsize len;

        ck_assert_uint_lt(k, got->len);
        const char *data = g_bytes_get_data(g_ptr_array_index(got, k), &len);
        if (ret_len)
                *ret_len = len;
        char *copy = g_malloc(len + 1); /* not g_strndup: keep NUL bytes */
        memcpy(copy, data, len);
        copy[len] = '\0';
        return copy;
}

/* Entry I's MESSAGE is exactly LEN bytes of CH, and the rest of its fields
 * are the default ones with PRIORITY PRIO, partial or not. */
static void assert_run_entry(guint i, char ch, size_t len, int prio, bool partial)
{
        gsize got_len;
        g_autofree char *msg = field(i, 0, &got_len);
        g_autofree char *prio_field = g_strdup_printf("PRIORITY=%d", prio);

        ck_assert_msg(got_len == strlen("MESSAGE=") + len, "entry %u: MESSAGE of %zu bytes, want %zu", i,
                      got_len - strlen("MESSAGE="), len);
        ck_assert(g_str_has_prefix(msg, "MESSAGE="));
        for (size_t k = 0; k < len; k++)
                ck_assert_int_eq(msg[strlen("MESSAGE=") + k], ch);
        g_autofree char *f2 = field(i, 2, NULL);
        ck_assert_str_eq(f2, prio_field);
        GPtrArray *got = entry(i);
        ck_assert_uint_eq(got->len, partial ? 6 : 5);
        if (partial) {
                g_autofree char *f5 = field(i, 5, NULL);
                ck_assert_str_eq(f5, "CONTAINER_PARTIAL_MESSAGE=true");
        }
}

static char *run_of(char ch, size_t len)
{
        char *s = g_malloc(len + 1);
        memset(s, ch, len);
        s[len] = '\0';
        return s;
}

/* The default field set (no name, tag or labels). */
#define PLAIN(msg, prio) "MESSAGE=" msg, "CONTAINER_ID_FULL=" CID, "PRIORITY=" #prio, "CONTAINER_ID=" SHORT, \
                         "SYSLOG_IDENTIFIER=" SHORT
#define PARTIAL(msg, prio) PLAIN(msg, prio), "CONTAINER_PARTIAL_MESSAGE=true"

/* ---- priority parser --------------------------------------------------- */

static int parse(const char *s, const char **rest)
{
        size_t len = strlen(s);
        const char *p = s;
        int r = journald_parse_priority(&p, &len);

        ck_assert_uint_eq(len, strlen(p));
        *rest = p;
        return r;
}

START_TEST(test_parse_priority_digits_0_to_7_only)
{
        const char *rest;

        for (int d = 0; d <= 7; d++) {
                char buf[8];
                g_snprintf(buf, sizeof buf, "<%d>x", d);
                ck_assert_int_eq(parse(buf, &rest), d);
                ck_assert_str_eq(rest, "x");
        }
        ck_assert_int_eq(parse("<7>", &rest), 7);
        ck_assert_str_eq(rest, "");
        const char *plain[] = { "<8>x", "<9>", "<>x", "<<0>>x", "<3", "<", "", "x<3>", " <3>x", "<a>", "<3]x" };
        for (size_t k = 0; k < G_N_ELEMENTS(plain); k++) {
                ck_assert_msg(parse(plain[k], &rest) == -1, "'%s' parsed as a prefix", plain[k]);
                ck_assert_str_eq(rest, plain[k]);
        }
}
END_TEST

/* ---- fields ------------------------------------------------------------ */

START_TEST(test_stdout_line_fields_in_order_priority_6)
{
        OUT("hello\n");
        ck_assert_uint_eq(rec.entries->len, 1);
        assert_entry(0, PLAIN("hello\n", 6));
}
END_TEST

START_TEST(test_stderr_line_priority_3)
{
        ERR("oops\n");
        assert_entry(0, PLAIN("oops\n", 3));
}
END_TEST

START_TEST(test_name_sets_container_name_and_identifier)
{
        use_sink(make_sink("web", NULL, NULL, false));
        OUT("x\n");
        assert_entry(0, "MESSAGE=x\n", "CONTAINER_ID_FULL=" CID, "PRIORITY=6", "CONTAINER_ID=" SHORT,
                     "CONTAINER_NAME=web", "SYSLOG_IDENTIFIER=web");
}
END_TEST

START_TEST(test_tag_wins_identifier_and_comes_before_name)
{
        use_sink(make_sink("web", "mytag", NULL, false));
        ERR("x\n");
        assert_entry(0, "MESSAGE=x\n", "CONTAINER_ID_FULL=" CID, "PRIORITY=3", "CONTAINER_ID=" SHORT,
                     "CONTAINER_TAG=mytag", "CONTAINER_NAME=web", "SYSLOG_IDENTIFIER=mytag");
        use_sink(make_sink(NULL, "mytag", NULL, false));
        OUT("y\n");
        assert_entry(1, "MESSAGE=y\n", "CONTAINER_ID_FULL=" CID, "PRIORITY=6", "CONTAINER_ID=" SHORT,
                     "CONTAINER_TAG=mytag", "SYSLOG_IDENTIFIER=mytag");
}
END_TEST

START_TEST(test_labels_verbatim_last_in_order_after_partial_flag)
{
        const char *const labels[] = { "B_2=x", "A=1", "EMPTY=", NULL };
        use_sink(make_sink("n", "t", labels, false));
        OUT("line\nfrag");
        flush();
        const char *head[] = { "CONTAINER_ID_FULL=" CID, "PRIORITY=6", "CONTAINER_ID=" SHORT, "CONTAINER_TAG=t",
                               "CONTAINER_NAME=n", "SYSLOG_IDENTIFIER=t" };
        assert_entry(0, "MESSAGE=line\n", head[0], head[1], head[2], head[3], head[4], head[5], "B_2=x", "A=1",
                     "EMPTY=");
        assert_entry(1, "MESSAGE=frag", head[0], head[1], head[2], head[3], head[4], head[5],
                     "CONTAINER_PARTIAL_MESSAGE=true", "B_2=x", "A=1", "EMPTY=");
}
END_TEST

START_TEST(test_many_labels_are_all_sent)
{
        g_autoptr(GPtrArray) labels = g_ptr_array_new_with_free_func(g_free);
        for (int i = 0; i < 200; i++)
                g_ptr_array_add(labels, g_strdup_printf("L%d=%d", i, i));
        g_ptr_array_add(labels, NULL);
        use_sink(make_sink(NULL, NULL, (const char *const *) labels->pdata, false));
        OUT("x\n");
        ck_assert_uint_eq(entry(0)->len, 5 + 200);
        g_autofree char *last = field(0, 5 + 199, NULL);
        ck_assert_str_eq(last, "L199=199");
}
END_TEST

START_TEST(test_config_is_copied)
{
        char name[] = "name", tag[] = "tag", label[] = "A=1";
        const char *labels[] = { label, NULL };
        use_sink(make_sink(name, tag, labels, false));
        name[0] = tag[0] = label[0] = 'X';
        OUT("x\n");
        assert_entry(0, "MESSAGE=x\n", "CONTAINER_ID_FULL=" CID, "PRIORITY=6", "CONTAINER_ID=" SHORT,
                     "CONTAINER_TAG=tag", "CONTAINER_NAME=name", "SYSLOG_IDENTIFIER=tag", "A=1");
}
END_TEST

START_TEST(test_short_cid_is_whole_container_id_and_empty_refused)
{
        JournaldConfig config = { .cid = "web1" };
        g_autoptr(GError) error = NULL;
        LogSink *s = NULL;

        /* Unit mode (ctrmon@web1) passes short IDs: CONTAINER_ID is all of it. */
        ck_assert_int_eq(journald_sink_new(&config, &s, &error), 0);
        ck_assert_ptr_nonnull(s);
        log_sink_free(s);
        s = NULL;
        config.cid = "";
        ck_assert_int_eq(journald_sink_new(&config, &s, &error), -EINVAL);
        ck_assert_ptr_null(s);
        ck_assert_str_eq(error->message, "journald needs a container ID");
        g_clear_error(&error);
        config.cid = NULL;
        ck_assert_int_eq(journald_sink_new(&config, &s, &error), -EINVAL);
        ck_assert_ptr_null(s);
}
END_TEST

/* ---- lines and fragments ----------------------------------------------- */

START_TEST(test_chunk_split_into_lines_keeping_newlines_and_bytes)
{
        OUT("a\nb\n\ncrlf\r\n");
        ck_assert_int_eq(put(CTRMON_STREAM_STDOUT, "n\0ul\n", 5), 0);
        ck_assert_uint_eq(rec.entries->len, 5);
        assert_entry(0, PLAIN("a\n", 6));
        assert_entry(1, PLAIN("b\n", 6));
        assert_entry(2, PLAIN("\n", 6));
        assert_entry(3, PLAIN("crlf\r\n", 6));
        gsize len;
        g_autofree char *msg = field(4, 0, &len);
        ck_assert_uint_eq(len, 13);
        ck_assert_mem_eq(msg, "MESSAGE=n\0ul\n", 13);
}
END_TEST

START_TEST(test_empty_chunk_and_empty_flush_send_nothing)
{
        ck_assert_int_eq(put(CTRMON_STREAM_STDOUT, "", 0), 0);
        flush();
        ck_assert_int_eq(rec.calls, 0);
}
END_TEST

START_TEST(test_fragment_buffered_then_completed_not_partial)
{
        OUT("ab");
        OUT("cd");
        ck_assert_int_eq(rec.calls, 0);
        OUT("ef\nnext\n");
        ck_assert_uint_eq(rec.entries->len, 2);
        assert_entry(0, PLAIN("abcdef\n", 6));
        assert_entry(1, PLAIN("next\n", 6));
        flush();
        ck_assert_uint_eq(rec.entries->len, 2);
}
END_TEST

START_TEST(test_lines_then_trailing_fragment_in_one_chunk)
{
        OUT("one\ntwo");
        ck_assert_uint_eq(rec.entries->len, 1);
        assert_entry(0, PLAIN("one\n", 6));
        OUT("\n");
        assert_entry(1, PLAIN("two\n", 6));
}
END_TEST

START_TEST(test_flush_sends_fragment_partial_once)
{
        OUT("tail");
        ERR("etail");
        ck_assert_int_eq(rec.calls, 0);
        flush();
        ck_assert_uint_eq(rec.entries->len, 2);
        assert_entry(0, PARTIAL("tail", 6));
        assert_entry(1, PARTIAL("etail", 3));
        flush();
        ck_assert_uint_eq(rec.entries->len, 2);
}
END_TEST

START_TEST(test_stdout_and_stderr_buffers_are_independent)
{
        OUT("out-");
        ERR("err-");
        ERR("frag\n");
        OUT("frag\n");
        ck_assert_uint_eq(rec.entries->len, 2);
        assert_entry(0, PLAIN("err-frag\n", 3));
        assert_entry(1, PLAIN("out-frag\n", 6));
        /* A stderr fragment that does not fit does not touch stdout's. */
        OUT("keep");
        g_autofree char *big = run_of('e', MAXBUF);
        ERR(big);
        ck_assert_uint_eq(rec.entries->len, 3);
        assert_run_entry(2, 'e', MAXBUF, 3, true);
        OUT("\n");
        assert_entry(3, PLAIN("keep\n", 6));
}
END_TEST

/* conmon: a fragment is buffered iff len < 8192 - buffered. */
START_TEST(test_fragment_that_fits_exactly_one_byte_less_is_buffered)
{
        g_autofree char *a = run_of('a', MAXBUF - 1);
        OUT(a);
        ck_assert_int_eq(rec.calls, 0);
        OUT("b"); /* 1 < 8192 - 8191 is false: sent with the buffer */
        ck_assert_uint_eq(rec.entries->len, 1);
        g_autofree char *want = g_strconcat("MESSAGE=", a, "b", NULL);
        g_autofree char *msg = field(0, 0, NULL);
        ck_assert_str_eq(msg, want);
        ck_assert_uint_eq(entry(0)->len, 6);
        flush();
        ck_assert_uint_eq(rec.entries->len, 1);
}
END_TEST

START_TEST(test_fragment_boundary_with_buffered_bytes)
{
        g_autofree char *head = run_of('h', 100);
        g_autofree char *fits = run_of('f', MAXBUF - 100 - 1);
        g_autofree char *no_fit = run_of('n', MAXBUF - 100);

        OUT(head);
        OUT(fits); /* 8091 < 8092: buffered, 8191 now */
        ck_assert_int_eq(rec.calls, 0);
        OUT("\n");
        ck_assert_uint_eq(rec.entries->len, 1);
        ck_assert_uint_eq(g_bytes_get_size(g_ptr_array_index(entry(0), 0)), 8 + MAXBUF);

        OUT(head);
        OUT(no_fit); /* 8092 < 8092 is false: sent partial with the 100 */
        ck_assert_uint_eq(rec.entries->len, 2);
        gsize len;
        g_autofree char *msg = field(1, 0, &len);
        ck_assert_uint_eq(len, 8 + MAXBUF);
        ck_assert(strncmp(msg + 8, head, 100) == 0 && msg[8 + 100] == 'n' && msg[len - 1] == 'n');
        ck_assert_uint_eq(entry(1)->len, 6);
}
END_TEST

/* 20000 bytes without '\n', read as the relay does (<= 8192 per read). */
START_TEST(test_20000_byte_line_full_reads)
{
        g_autofree char *chunk = run_of('x', MAXBUF);
        OUT(chunk);         /* 8192 >= 8192 - 0: sent at once */
        OUT(chunk);
        ck_assert_uint_eq(rec.entries->len, 2);
        chunk[20000 - 2 * MAXBUF] = '\0';
        OUT(chunk);         /* 3616 < 8192: buffered */
        ck_assert_uint_eq(rec.entries->len, 2);
        flush();
        ck_assert_uint_eq(rec.entries->len, 3);
        assert_run_entry(0, 'x', MAXBUF, 6, true);
        assert_run_entry(1, 'x', MAXBUF, 6, true);
        assert_run_entry(2, 'x', 20000 - 2 * MAXBUF, 6, true);
}
END_TEST

START_TEST(test_20000_byte_line_short_first_read_then_newline)
{
        g_autofree char *c1 = run_of('y', 4000);
        g_autofree char *c2 = run_of('y', MAXBUF);
        g_autofree char *c3 = run_of('y', 20000 - 4000 - MAXBUF);
        ERR(c1);            /* buffered */
        ERR(c2);            /* 8192 >= 4192: 12192 bytes sent partial */
        ERR(c3);            /* 7808 < 8192: buffered */
        ERR("\n");          /* completes it: not partial */
        ck_assert_uint_eq(rec.entries->len, 2);
        assert_run_entry(0, 'y', 4000 + MAXBUF, 3, true);
        gsize len;
        g_autofree char *msg = field(1, 0, &len);
        ck_assert_uint_eq(len, 8 + 7808 + 1);
        ck_assert_int_eq(msg[len - 1], '\n');
        ck_assert_uint_eq(entry(1)->len, 5);
}
END_TEST

/* The relay may read more than conmon's 8192 bytes at once: the sink splits
 * the chunk as conmon's consecutive reads would have. */
START_TEST(test_20000_byte_line_in_one_chunk_split_as_8192_reads)
{
        g_autofree char *all = run_of('x', 20000);
        OUT(all);
        ck_assert_uint_eq(rec.entries->len, 2);
        flush();
        ck_assert_uint_eq(rec.entries->len, 3);
        assert_run_entry(0, 'x', MAXBUF, 6, true);
        assert_run_entry(1, 'x', MAXBUF, 6, true);
        assert_run_entry(2, 'x', 20000 - 2 * MAXBUF, 6, true);
}
END_TEST

START_TEST(test_big_chunk_lines_across_read_windows_stay_whole)
{
        g_autoptr(GString) chunk = g_string_new(NULL);
        for (int i = 0; i < 3000; i++)
                g_string_append_printf(chunk, "<%d>line %04d\n", i % 8, i); /* 13 bytes */
        ck_assert_int_eq(put(CTRMON_STREAM_STDERR, chunk->str, chunk->len), 0);
        ck_assert_uint_eq(rec.entries->len, 3000);
        for (int i = 0; i < 3000; i++) {
                g_autofree char *msg = field(i, 0, NULL);
                g_autofree char *prio = field(i, 2, NULL);
                /* A line cut by a window boundary is buffered and completed
                 * by the next window, so its prefix is text (as conmon). */
                bool cut = i * 13 / MAXBUF != (i * 13 + 12) / MAXBUF;
                g_autofree char *want = cut ? g_strdup_printf("MESSAGE=<%d>line %04d\n", i % 8, i)
                                            : g_strdup_printf("MESSAGE=line %04d\n", i);
                g_autofree char *want_prio = g_strdup_printf("PRIORITY=%d", cut ? 3 : i % 8);
                ck_assert_str_eq(msg, want);
                ck_assert_str_eq(prio, want_prio);
                ck_assert_uint_eq(entry(i)->len, 5);
        }
}
END_TEST

START_TEST(test_8193_byte_line_in_one_chunk)
{
        g_autoptr(GString) chunk = g_string_new(NULL);
        for (int i = 0; i < MAXBUF - 2; i++)
                g_string_append_c(chunk, 'A');
        g_string_append(chunk, "bc\n");
        OUT(chunk->str); /* read 1: 8192 bytes without '\n', read 2: "\n" */
        ck_assert_uint_eq(rec.entries->len, 2);
        gsize len;
        g_autofree char *msg = field(0, 0, &len);
        ck_assert_uint_eq(len, 8 + MAXBUF);
        ck_assert_uint_eq(entry(0)->len, 6);
        assert_entry(1, PLAIN("\n", 6));
}
END_TEST

START_TEST(test_no_partial_flag_omits_only_the_flag)
{
        const char *const labels[] = { "A=1", NULL };
        use_sink(make_sink(NULL, NULL, labels, true));
        g_autofree char *big = run_of('z', MAXBUF);
        OUT(big);
        OUT("tail");
        flush();
        ck_assert_uint_eq(rec.entries->len, 2);
        ck_assert_uint_eq(entry(0)->len, 6);
        g_autofree char *last0 = field(0, 5, NULL);
        ck_assert_str_eq(last0, "A=1");
        assert_entry(1, PLAIN("tail", 6), "A=1");
}
END_TEST

/* ---- priority prefix --------------------------------------------------- */

/* The default (conmon 2.1, and what podman 4 can read back): a "<d>" is
 * text and every entry has the stream's priority. */
START_TEST(test_prefix_is_text_by_default)
{
        OUT("<3>bad\n<5>notice\n");
        ERR("<6>fine\n");
        ck_assert_uint_eq(rec.entries->len, 3);
        assert_entry(0, PLAIN("<3>bad\n", 6));
        assert_entry(1, PLAIN("<5>notice\n", 6));
        assert_entry(2, PLAIN("<6>fine\n", 3));
}
END_TEST

START_TEST(test_prefix_sets_priority_and_is_removed_on_both_streams)
{
        OUT("<3>bad\n<0>emerg\n");
        ERR("<6>fine\n");
        ERR("<7>\n");
        ck_assert_uint_eq(rec.entries->len, 4);
        assert_entry(0, PLAIN("bad\n", 3));
        assert_entry(1, PLAIN("emerg\n", 0));
        assert_entry(2, PLAIN("fine\n", 6));
        assert_entry(3, PLAIN("\n", 7));
}
END_TEST

START_TEST(test_non_prefixes_stay_text)
{
        OUT("<8>a\n<>b\n<<0>>c\n <1>d\nx<2>e\n");
        ERR("<9>f\n");
        ck_assert_uint_eq(rec.entries->len, 6);
        assert_entry(0, PLAIN("<8>a\n", 6));
        assert_entry(1, PLAIN("<>b\n", 6));
        assert_entry(2, PLAIN("<<0>>c\n", 6));
        assert_entry(3, PLAIN(" <1>d\n", 6));
        assert_entry(4, PLAIN("x<2>e\n", 6));
        assert_entry(5, PLAIN("<9>f\n", 3));
}
END_TEST

START_TEST(test_prefix_split_across_reads_is_text)
{
        OUT("<");
        OUT("3>x\n");
        ERR("<4");
        ERR(">y\n");
        assert_entry(0, PLAIN("<3>x\n", 6));
        assert_entry(1, PLAIN("<4>y\n", 3));
}
END_TEST

START_TEST(test_prefix_after_buffered_fragment_is_text)
{
        OUT("frag");
        OUT("<3>x\n<2>y\n");
        ck_assert_uint_eq(rec.entries->len, 2);
        assert_entry(0, PLAIN("frag<3>x\n", 6));
        assert_entry(1, PLAIN("y\n", 2)); /* nothing buffered again: parsed */
}
END_TEST

/* The documented choice: a buffered fragment is kept verbatim, so its "<d>"
 * is text and the entry gets the stream's priority (conmon 2.2.x). */
START_TEST(test_prefix_at_start_of_buffered_fragment_is_text)
{
        OUT("<3>frag");
        ck_assert_int_eq(rec.calls, 0);
        OUT("ment\n");
        assert_entry(0, PLAIN("<3>fragment\n", 6));
        ERR("<5>tail");
        OUT("<4>tail");
        flush();
        assert_entry(1, PARTIAL("<4>tail", 6));
        assert_entry(2, PARTIAL("<5>tail", 3));
}
END_TEST

START_TEST(test_prefix_on_fragment_sent_at_once_is_parsed)
{
        g_autofree char *big = run_of('q', MAXBUF);
        memcpy(big, "<2>", 3);
        ERR(big);
        ck_assert_uint_eq(rec.entries->len, 1);
        assert_run_entry(0, 'q', MAXBUF - 3, 2, true);
}
END_TEST

/* ---- failures ---------------------------------------------------------- */

START_TEST(test_send_error_drops_entry_counts_and_goes_on)
{
        rec.fail_call = 2;
        rec.fail_errno = ENOBUFS;
        g_autoptr(GError) error = NULL;
        static const struct timespec now = { 0, 0 };
        int r = sink->ops->write(sink, CTRMON_STREAM_STDOUT, &now, "a\nb\nc\n", 6, &error);

        ck_assert_int_eq(r, -ENOBUFS);
        ck_assert(g_error_matches(error, CTRMON_ERROR, ENOBUFS));
        ck_assert(strstr(error->message, "journald") != NULL);
        ck_assert_uint_eq(journald_sink_get_dropped(sink), 1);
        ck_assert_uint_eq(rec.entries->len, 2);
        assert_entry(0, PLAIN("a\n", 6));
        assert_entry(1, PLAIN("c\n", 6));
        OUT("d\n");
        assert_entry(2, PLAIN("d\n", 6));
        ck_assert_uint_eq(journald_sink_get_dropped(sink), 1);
}
END_TEST

START_TEST(test_first_error_is_returned_all_counted)
{
        rec.fail_call = 1;
        rec.fail_errno = EAGAIN;
        ck_assert_int_eq(put(CTRMON_STREAM_STDERR, "a\n", 2), -EAGAIN);
        rec.fail_call = 3;
        rec.fail_errno = ECONNREFUSED;
        ck_assert_int_eq(put(CTRMON_STREAM_STDERR, "b\nc\n", 4), -ECONNREFUSED);
        ck_assert_uint_eq(journald_sink_get_dropped(sink), 2);
        ck_assert_uint_eq(rec.entries->len, 1);
        assert_entry(0, PLAIN("b\n", 3));
}
END_TEST

START_TEST(test_failed_partial_and_flush_drop_the_buffer)
{
        OUT("lost");
        rec.fail_call = 1;
        rec.fail_errno = EIO;
        g_autoptr(GError) error = NULL;
        ck_assert_int_eq(sink->ops->flush(sink, &error), -EIO);
        ck_assert(g_error_matches(error, CTRMON_ERROR, EIO));
        ck_assert_uint_eq(journald_sink_get_dropped(sink), 1);
        flush();
        ck_assert_uint_eq(rec.entries->len, 0);
        OUT("x\n"); /* the dropped fragment is not prepended */
        assert_entry(0, PLAIN("x\n", 6));

        OUT("head-");
        rec.calls = 0;
        rec.fail_call = 1;
        g_autofree char *big = run_of('b', MAXBUF);
        ck_assert_int_eq(put(CTRMON_STREAM_STDOUT, big, MAXBUF), -EIO);
        OUT("y\n");
        assert_entry(1, PLAIN("y\n", 6));
        ck_assert_uint_eq(journald_sink_get_dropped(sink), 2);
}
END_TEST

START_TEST(test_sender_reset_to_default_and_reopen_is_noop)
{
        g_autoptr(GError) error = NULL;
        ck_assert_int_eq(sink->ops->reopen(sink, &error), 0);
        ck_assert_ptr_null(sink->ops->sync);
        ck_assert_str_eq(sink->ops->name, "journald");
        journald_sink_set_sender(sink, NULL, NULL);
        journald_sink_set_sender(sink, recorder_send, &rec);
        OUT("z\n");
        assert_entry(0, PLAIN("z\n", 6));
}
END_TEST

static Suite *log_journald_suite(void)
{
        Suite *s = suite_create("log-journald");
        TCase *tc;

        tc = tcase_create("parse");
        tcase_add_test(tc, test_parse_priority_digits_0_to_7_only);
        suite_add_tcase(s, tc);

        tc = tcase_create("fields");
        tcase_add_checked_fixture(tc, setup, teardown);
        tcase_add_test(tc, test_stdout_line_fields_in_order_priority_6);
        tcase_add_test(tc, test_stderr_line_priority_3);
        tcase_add_test(tc, test_name_sets_container_name_and_identifier);
        tcase_add_test(tc, test_tag_wins_identifier_and_comes_before_name);
        tcase_add_test(tc, test_labels_verbatim_last_in_order_after_partial_flag);
        tcase_add_test(tc, test_many_labels_are_all_sent);
        tcase_add_test(tc, test_config_is_copied);
        tcase_add_test(tc, test_short_cid_is_whole_container_id_and_empty_refused);
        suite_add_tcase(s, tc);

        tc = tcase_create("lines");
        tcase_add_checked_fixture(tc, setup, teardown);
        tcase_add_test(tc, test_chunk_split_into_lines_keeping_newlines_and_bytes);
        tcase_add_test(tc, test_empty_chunk_and_empty_flush_send_nothing);
        tcase_add_test(tc, test_fragment_buffered_then_completed_not_partial);
        tcase_add_test(tc, test_lines_then_trailing_fragment_in_one_chunk);
        tcase_add_test(tc, test_flush_sends_fragment_partial_once);
        tcase_add_test(tc, test_stdout_and_stderr_buffers_are_independent);
        tcase_add_test(tc, test_fragment_that_fits_exactly_one_byte_less_is_buffered);
        tcase_add_test(tc, test_fragment_boundary_with_buffered_bytes);
        tcase_add_test(tc, test_20000_byte_line_full_reads);
        tcase_add_test(tc, test_20000_byte_line_short_first_read_then_newline);
        tcase_add_test(tc, test_20000_byte_line_in_one_chunk_split_as_8192_reads);
        tcase_add_test(tc, test_8193_byte_line_in_one_chunk);
        tcase_add_test(tc, test_no_partial_flag_omits_only_the_flag);
        suite_add_tcase(s, tc);

        tc = tcase_create("priority-default");
        tcase_add_checked_fixture(tc, setup, teardown);
        tcase_add_test(tc, test_prefix_is_text_by_default);
        suite_add_tcase(s, tc);

        tc = tcase_create("priority-prefix-option");
        tcase_add_checked_fixture(tc, setup_priority_prefix, teardown);
        tcase_add_test(tc, test_big_chunk_lines_across_read_windows_stay_whole);
        tcase_add_test(tc, test_prefix_sets_priority_and_is_removed_on_both_streams);
        tcase_add_test(tc, test_non_prefixes_stay_text);
        tcase_add_test(tc, test_prefix_split_across_reads_is_text);
        tcase_add_test(tc, test_prefix_after_buffered_fragment_is_text);
        tcase_add_test(tc, test_prefix_at_start_of_buffered_fragment_is_text);
        tcase_add_test(tc, test_prefix_on_fragment_sent_at_once_is_parsed);
        suite_add_tcase(s, tc);

        tc = tcase_create("failures");
        tcase_add_checked_fixture(tc, setup, teardown);
        tcase_add_test(tc, test_send_error_drops_entry_counts_and_goes_on);
        tcase_add_test(tc, test_first_error_is_returned_all_counted);
        tcase_add_test(tc, test_failed_partial_and_flush_drop_the_buffer);
        tcase_add_test(tc, test_sender_reset_to_default_and_reopen_is_noop);
        suite_add_tcase(s, tc);

        return s;
}

int main(void)
{
        SRunner *sr = srunner_create(log_journald_suite());
        srunner_run_all(sr, CK_NORMAL);
        int failed = srunner_ntests_failed(sr);
        srunner_free(sr);
        return failed ? 1 : 0;
}
