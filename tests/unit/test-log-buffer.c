/* Unit tests for monitor/log-buffer.c: the sink in front of the real log
 * sinks, against a fake sink that records every call, can be held (a stalled
 * log) and can fail (a full disk). Also --log-buffer-size's size syntax
 * (options_parse_size). */
#include "log-buffer.h"
#include "options.h"

#include <check.h>
#include <errno.h>
#include <glib.h>
#include <string.h>

/* --- a fake sink --- */

typedef struct {
        LogSink base;
        GMutex lock;
        GCond cond;
        bool held;           /* write() waits while set                 */
        bool fail;           /* write() fails while set                 */
        bool in_write;       /* a write is waiting on `held`             */
        GByteArray *data[2]; /* stdout, stderr bytes written            */
        GString *calls;      /* "w" per write, "f" flush, "s" sync, "r" reopen */
        GThread *caller;     /* the thread of the last call              */
        bool freed;
} FakeSink;

static int fake_write(LogSink *sink, CtrmonStream stream, const struct timespec *now, const char *buf, size_t len,
                      GError **error)
{
        FakeSink *f = (FakeSink *) sink;
        g_mutex_lock(&f->lock);
        f->caller = g_thread_self();
        f->in_write = true;
        g_cond_broadcast(&f->cond);
        while (f->held)
                g_cond_wait(&f->cond, &f->lock);
        f->in_write = false;
        g_string_append_c(f->calls, 'w');
        int r = 0;
        if (f->fail) {
                g_set_error(error, G_FILE_ERROR, G_FILE_ERROR_NOSPC, "No space left on device");
                r = -ENOSPC;
        } else {
                g_byte_array_append(f->data[stream == CTRMON_STREAM_STDERR], (const guint8 *) buf, (guint) len);
        }
        g_mutex_unlock(&f->lock);
        return r;
}

static int fake_op(FakeSink *f, char c)
{
        g_mutex_lock(&f->lock);
        f->caller = g_thread_self();
        g_string_append_c(f->calls, c);
        g_mutex_unlock(&f->lock);
        return 0;
}

static int fake_flush(LogSink *sink, GError **error)
{
        return fake_op((FakeSink *) sink, 'f');
}

static int fake_sync(LogSink *sink, GError **error)
{
        return fake_op((FakeSink *) sink, 's');
}

static int fake_reopen(LogSink *sink, GError **error)
{
        return fake_op((FakeSink *) sink, 'r');
}

/* Freed by the buffer; the test keeps the record (see fake_sink_new). */
static void fake_free(LogSink *sink)
{
        FakeSink *f = (FakeSink *) sink;
        g_mutex_lock(&f->lock);
        f->freed = true;
        g_mutex_unlock(&f->lock);
}

static const LogSinkOps fake_ops = {
        .name = "fake",
        .write = fake_write,
        .flush = fake_flush,
        .sync = fake_sync,
        .reopen = fake_reopen,
        .free = fake_free,
};

static FakeSink *fake_sink_new(void)
{
        FakeSink *f = g_new0(FakeSink, 1);
        f->base.ops = &fake_ops;
        g_mutex_init(&f->lock);
        g_cond_init(&f->cond);
        f->data[0] = g_byte_array_new();
        f->data[1] = g_byte_array_new();
        f->calls = g_string_new(NULL);
        return f;
}

static void fake_sink_destroy(FakeSink *f)
{
        g_byte_array_unref(f->data[0]);
        g_byte_array_unref(f->data[1]);
        g_string_free(f->calls, TRUE);
        g_mutex_clear(&f->lock);
        g_cond_clear(&f->cond);
        g_free(f);
}

static void fake_set(FakeSink *f, bool *flag, bool value)
{
        g_mutex_lock(&f->lock);
        *flag = value;
        g_cond_broadcast(&f->cond);
        g_mutex_unlock(&f->lock);
}

/* Wait until the writer thread sits in a held write. */
static void fake_wait_in_write(FakeSink *f)
{
        gint64 deadline = g_get_monotonic_time() + 10 * G_USEC_PER_SEC;
        g_mutex_lock(&f->lock);
        while (!f->in_write)
                ck_assert_msg(g_cond_wait_until(&f->cond, &f->lock, deadline) || f->in_write,
                              "the writer thread never called the sink");
        g_mutex_unlock(&f->lock);
}

/* --- what the buffer reports --- */

typedef struct {
        unsigned drop_reports;
        uint64_t dropped_bytes;
        uint64_t dropped_chunks;
        LogBufferStats last_totals;
        GString *states; /* "F" failing, "R" resumed */
        uint64_t resumed_failed_writes;
        char *first_error;
        GThread *called_on;
        unsigned sinks_called;
} Reports;

static void on_dropped(uint64_t bytes, uint64_t chunks, const LogBufferStats *totals, void *user_data)
{
        Reports *r = user_data;
        r->drop_reports++;
        r->dropped_bytes += bytes;
        r->dropped_chunks += chunks;
        r->last_totals = *totals;
        r->called_on = g_thread_self();
}

static void on_state(const LogBufferSinkState *s, void *user_data)
{
        Reports *r = user_data;
        ck_assert_str_eq(s->sink, "fake");
        g_string_append_c(r->states, s->failing ? 'F' : 'R');
        if (s->failing) {
                g_free(r->first_error);
                r->first_error = g_strdup(s->message);
        } else {
                r->resumed_failed_writes = s->failed_writes;
        }
        r->called_on = g_thread_self();
}

static void on_sinks_called(GPtrArray *sinks, void *user_data)
{
        Reports *r = user_data;
        g_atomic_int_inc(&r->sinks_called);
}

static LogSink *buffer_new(FakeSink *f, uint64_t size, Reports *reports, guint interval_ms)
{
        GPtrArray *sinks = g_ptr_array_new_with_free_func((GDestroyNotify) log_sink_free);
        g_ptr_array_add(sinks, &f->base);
        LogBufferConfig config = {
                .size = size,
                .dropped_fn = on_dropped,
                .sink_state_fn = on_state,
                .sinks_called_fn = on_sinks_called,
                .user_data = reports,
                .drop_report_interval_ms = interval_ms,
        };
        LogSink *b = NULL;
        GError *error = NULL;
        ck_assert_int_eq(log_buffer_new(sinks, &config, &b, &error), 0);
        ck_assert_ptr_nonnull(b);
        return b;
}

static void write_chunk(LogSink *b, CtrmonStream stream, const char *buf, size_t len)
{
        struct timespec now = {1, 2};
        GError *error = NULL;
        ck_assert_int_eq(b->ops->write(b, stream, &now, buf, len, &error), 0);
        ck_assert_ptr_null(error);
}

/* Run the default main context until `cond` holds (bounded). */
#define ITERATE_UNTIL(cond)                                                                                            \
        do {                                                                                                           \
                gint64 _deadline = g_get_monotonic_time() + 10 * G_USEC_PER_SEC;                                       \
                while (!(cond)) {                                                                                      \
                        ck_assert_msg(g_get_monotonic_time() < _deadline, "timed out: " #cond);                        \
                        g_main_context_iteration(NULL, FALSE);                                                         \
                        g_usleep(1000);                                                                                \
                }                                                                                                      \
        } while (0)

/* Stream bytes as a function of the offset: order and loss are visible. */
static void pattern(char *buf, size_t off, size_t len)
{
        for (size_t i = 0; i < len; i++)
                buf[i] = (char) ('a' + (off + i) % 26);
}

/* --- lossless mode --- */

START_TEST(test_lossless_mode_passes_every_call_through_on_the_callers_thread)
{
        FakeSink *f = fake_sink_new();
        Reports rep = {.states = g_string_new(NULL)};
        LogSink *b = buffer_new(f, 0, &rep, 0);
        GError *error = NULL;

        write_chunk(b, CTRMON_STREAM_STDOUT, "out1\n", 5);
        write_chunk(b, CTRMON_STREAM_STDERR, "err\n", 4);
        /* Synchronous: the bytes are there when write() returns. */
        ck_assert_uint_eq(f->data[0]->len, 5);
        ck_assert_ptr_eq(f->caller, g_thread_self());
        write_chunk(b, CTRMON_STREAM_STDOUT, "out2", 4);
        ck_assert_int_eq(b->ops->reopen(b, &error), 0);
        ck_assert_int_eq(b->ops->flush(b, &error), 0);
        ck_assert_int_eq(b->ops->sync(b, &error), 0);
        ck_assert_str_eq(f->calls->str, "wwwrfs");
        ck_assert_int_eq(memcmp(f->data[0]->data, "out1\nout2", 9), 0);
        ck_assert_int_eq(memcmp(f->data[1]->data, "err\n", 4), 0);
        ck_assert_uint_eq(rep.sinks_called, 6);

        LogBufferStats st;
        log_buffer_get_stats(b, &st);
        ck_assert_uint_eq(st.size, 0);
        ck_assert_uint_eq(st.bytes_dropped, 0);
        ck_assert_uint_eq(st.bytes_queued, 0);
        log_sink_free(b);
        ck_assert(f->freed);
        fake_sink_destroy(f);
        g_string_free(rep.states, TRUE);
}
END_TEST

START_TEST(test_lossless_mode_reports_a_failing_sink_once_and_its_recovery)
{
        FakeSink *f = fake_sink_new();
        Reports rep = {.states = g_string_new(NULL)};
        LogSink *b = buffer_new(f, 0, &rep, 0);

        write_chunk(b, CTRMON_STREAM_STDOUT, "a\n", 2);
        f->fail = true;
        for (int i = 0; i < 5; i++)
                write_chunk(b, CTRMON_STREAM_STDOUT, "lost\n", 5);
        ck_assert_str_eq(rep.states->str, "F");
        ck_assert_str_eq(rep.first_error, "No space left on device");
        f->fail = false;
        write_chunk(b, CTRMON_STREAM_STDOUT, "b\n", 2);
        write_chunk(b, CTRMON_STREAM_STDOUT, "c\n", 2);
        ck_assert_str_eq(rep.states->str, "FR");
        ck_assert_uint_eq(rep.resumed_failed_writes, 5);

        LogBufferStats st;
        log_buffer_get_stats(b, &st);
        ck_assert_uint_eq(st.write_errors, 5);
        ck_assert_uint_eq(f->data[0]->len, 6);
        ck_assert_int_eq(memcmp(f->data[0]->data, "a\nb\nc\n", 6), 0);
        log_sink_free(b);
        fake_sink_destroy(f);
        g_string_free(rep.states, TRUE);
        g_free(rep.first_error);
}
END_TEST

/* --- buffered mode --- */

START_TEST(test_buffered_mode_writes_everything_in_order_on_another_thread)
{
        FakeSink *f = fake_sink_new();
        Reports rep = {.states = g_string_new(NULL)};
        LogSink *b = buffer_new(f, 1 << 20, &rep, 0);
        GError *error = NULL;
        char chunk[4000];
        size_t off = 0;

        for (int i = 0; i < 200; i++) {
                pattern(chunk, off, sizeof chunk);
                write_chunk(b, CTRMON_STREAM_STDOUT, chunk, sizeof chunk);
                off += sizeof chunk;
                if (i == 100)
                        ck_assert_int_eq(b->ops->reopen(b, &error), 0);
        }
        ck_assert_int_eq(b->ops->flush(b, &error), 0);
        /* flush() returned: everything accepted before it is written. */
        g_mutex_lock(&f->lock);
        ck_assert_uint_eq(f->data[0]->len, off);
        ck_assert_ptr_ne(f->caller, g_thread_self());
        /* The reopen happened in order: after the 101st write. */
        ck_assert_int_eq((int) (strchr(f->calls->str, 'r') - f->calls->str), 101);
        ck_assert_int_eq(f->calls->str[f->calls->len - 1], 'f');
        g_mutex_unlock(&f->lock);
        char *want = g_malloc(off);
        pattern(want, 0, off);
        ck_assert_int_eq(memcmp(f->data[0]->data, want, off), 0);
        g_free(want);

        ck_assert_int_eq(b->ops->sync(b, &error), 0);
        ck_assert_int_eq(f->calls->str[f->calls->len - 1], 's');
        LogBufferStats st;
        log_buffer_get_stats(b, &st);
        ck_assert_uint_eq(st.size, 1 << 20);
        ck_assert_uint_eq(st.bytes_dropped, 0);
        ck_assert_uint_eq(st.chunks_dropped, 0);
        ck_assert_uint_eq(st.bytes_queued, 0);
        ck_assert_uint_eq(rep.drop_reports, 0);
        log_sink_free(b);
        fake_sink_destroy(f);
        g_string_free(rep.states, TRUE);
}
END_TEST

START_TEST(test_buffered_mode_drops_and_counts_what_a_stalled_sink_has_no_room_for)
{
        FakeSink *f = fake_sink_new();
        Reports rep = {.states = g_string_new(NULL)};
        LogSink *b = buffer_new(f, 10000, &rep, 0);
        GError *error = NULL;
        char chunk[3000];

        /* The first chunk is taken by the writer thread, which then stalls
         * in the sink; the buffer behind it holds 10000 bytes. */
        f->held = true;
        pattern(chunk, 0, sizeof chunk);
        write_chunk(b, CTRMON_STREAM_STDOUT, chunk, sizeof chunk);
        fake_wait_in_write(f);
        size_t off = sizeof chunk;
        for (int i = 0; i < 5; i++) {
                pattern(chunk, off, sizeof chunk);
                write_chunk(b, CTRMON_STREAM_STDOUT, chunk, sizeof chunk); /* never blocks */
                off += sizeof chunk;
        }
        /* The chunk being written still counts: 2 more fit, the 3rd
         * keeps 1000 of its 3000 bytes, the 4th and 5th nothing. */
        LogBufferStats st;
        log_buffer_get_stats(b, &st);
        ck_assert_uint_eq(st.bytes_queued, 10000);
        ck_assert_uint_eq(st.bytes_queued_max, 10000);
        ck_assert_uint_eq(st.bytes_dropped, 2000 + 3000 + 3000);
        ck_assert_uint_eq(st.chunks_dropped, 3);
        /* The first drop is reported at once, on this thread. */
        ck_assert_uint_eq(rep.drop_reports, 1);
        ck_assert_ptr_eq(rep.called_on, g_thread_self());

        fake_set(f, &f->held, false);
        ck_assert_int_eq(b->ops->flush(b, &error), 0);
        /* flush() reported the rest before waiting. */
        ck_assert_uint_eq(rep.dropped_bytes, 8000);
        ck_assert_uint_eq(rep.dropped_chunks, 3);
        ck_assert_uint_eq(rep.last_totals.bytes_dropped, 8000);

        /* What was kept: chunks 0-2 whole, then the first 1000 bytes of
         * chunk 3, in order. */
        ck_assert_uint_eq(f->data[0]->len, 3 * 3000 + 1000);
        char *want = g_malloc(3 * 3000 + 1000);
        pattern(want, 0, 3 * 3000 + 1000);
        ck_assert_int_eq(memcmp(f->data[0]->data, want, 3 * 3000 + 1000), 0);
        g_free(want);
        log_buffer_get_stats(b, &st);
        ck_assert_uint_eq(st.bytes_queued, 0);
        log_sink_free(b);
        fake_sink_destroy(f);
        g_string_free(rep.states, TRUE);
}
END_TEST

START_TEST(test_buffered_mode_reports_drops_at_most_once_per_interval)
{
        FakeSink *f = fake_sink_new();
        Reports rep = {.states = g_string_new(NULL)};
        LogSink *b = buffer_new(f, 100, &rep, 1000);
        char chunk[100] = {0};

        f->held = true;
        write_chunk(b, CTRMON_STREAM_STDOUT, chunk, sizeof chunk); /* fills the buffer */
        fake_wait_in_write(f);
        for (int i = 0; i < 50; i++)
                write_chunk(b, CTRMON_STREAM_STDOUT, chunk, sizeof chunk);
        ck_assert_uint_eq(rep.drop_reports, 1);
        ck_assert_uint_eq(rep.dropped_chunks, 1);
        /* The other 49 come in one report once the interval is over. */
        ITERATE_UNTIL(rep.drop_reports == 2);
        ck_assert_uint_eq(rep.dropped_chunks, 50);
        ck_assert_uint_eq(rep.dropped_bytes, 5000);
        ck_assert_uint_eq(rep.last_totals.chunks_dropped, 50);
        fake_set(f, &f->held, false);
        log_sink_free(b);
        fake_sink_destroy(f);
        g_string_free(rep.states, TRUE);
}
END_TEST

START_TEST(test_buffered_mode_reports_outages_on_the_main_thread)
{
        FakeSink *f = fake_sink_new();
        Reports rep = {.states = g_string_new(NULL)};
        LogSink *b = buffer_new(f, 1 << 20, &rep, 0);
        GError *error = NULL;

        fake_set(f, &f->fail, true);
        for (int i = 0; i < 3; i++)
                write_chunk(b, CTRMON_STREAM_STDOUT, "x\n", 2);
        ITERATE_UNTIL(rep.states->len == 1);
        ck_assert_str_eq(rep.states->str, "F");
        ck_assert_ptr_eq(rep.called_on, g_thread_self());
        b->ops->sync(b, &error); /* all three written (and failed) */
        fake_set(f, &f->fail, false);
        write_chunk(b, CTRMON_STREAM_STDOUT, "y\n", 2);
        ITERATE_UNTIL(rep.states->len == 2);
        ck_assert_str_eq(rep.states->str, "FR");
        ck_assert_uint_eq(rep.resumed_failed_writes, 3);
        LogBufferStats st;
        log_buffer_get_stats(b, &st);
        ck_assert_uint_eq(st.write_errors, 3);
        ck_assert_uint_eq(f->data[0]->len, 2);
        log_sink_free(b);
        fake_sink_destroy(f);
        g_string_free(rep.states, TRUE);
        g_free(rep.first_error);
}
END_TEST

START_TEST(test_buffered_mode_free_writes_everything_accepted_first)
{
        FakeSink *f = fake_sink_new();
        Reports rep = {.states = g_string_new(NULL)};
        LogSink *b = buffer_new(f, 1 << 20, &rep, 0);
        char chunk[1000];

        f->held = true;
        for (int i = 0; i < 100; i++) {
                pattern(chunk, (size_t) i * sizeof chunk, sizeof chunk);
                write_chunk(b, CTRMON_STREAM_STDOUT, chunk, sizeof chunk);
        }
        fake_wait_in_write(f);
        fake_set(f, &f->held, false);
        log_sink_free(b); /* no flush: free itself drains */
        ck_assert(f->freed);
        ck_assert_uint_eq(f->data[0]->len, 100 * sizeof chunk);
        char *want = g_malloc(100 * sizeof chunk);
        pattern(want, 0, 100 * sizeof chunk);
        ck_assert_int_eq(memcmp(f->data[0]->data, want, 100 * sizeof chunk), 0);
        g_free(want);
        fake_sink_destroy(f);
        g_string_free(rep.states, TRUE);
}
END_TEST

/* --- --log-buffer-size's syntax --- */

START_TEST(test_size_accepts_bytes_and_k_m_g_suffixes)
{
        uint64_t v = 7;
        ck_assert_int_eq(options_parse_size("0", &v), 0);
        ck_assert_uint_eq(v, 0);
        ck_assert_int_eq(options_parse_size("4096", &v), 0);
        ck_assert_uint_eq(v, 4096);
        ck_assert_int_eq(options_parse_size("64k", &v), 0);
        ck_assert_uint_eq(v, 64 * 1024);
        ck_assert_int_eq(options_parse_size("8M", &v), 0);
        ck_assert_uint_eq(v, 8 * 1024 * 1024);
        ck_assert_int_eq(options_parse_size("2g", &v), 0);
        ck_assert_uint_eq(v, 2ULL * 1024 * 1024 * 1024);
}
END_TEST

START_TEST(test_size_rejects_anything_else_and_leaves_the_value)
{
        static const char *const bad[] = {"", "k", "-1", " 1", "1 ", "1kb", "1t", "0x10", "1.5m", NULL};
        uint64_t v = 7;
        for (const char *const *s = bad; *s; s++)
                ck_assert_msg(options_parse_size(*s, &v) == -EINVAL, "accepted \"%s\"", *s);
        ck_assert_int_eq(options_parse_size(NULL, &v), -EINVAL);
        ck_assert_int_eq(options_parse_size("99999999999999999999", &v), -ERANGE);
        ck_assert_int_eq(options_parse_size("17179869184g", &v), -ERANGE);
        ck_assert_uint_eq(v, 7);
}
END_TEST

START_TEST(test_option_sets_the_size_and_rejects_garbage_with_its_name)
{
        char *ok[] = {"ctrmon", "-c", "x", "-u", "u", "-r", "/bin/true", "-l", "none", "--log-buffer-size=16m", NULL};
        CtrmonOptions *o = NULL;
        GError *error = NULL;
        int r = options_parse(G_N_ELEMENTS(ok) - 1, ok, &o, &error);
        ck_assert_msg(r == 0, "%s", error ? error->message : "?");
        ck_assert_uint_eq(o->log_buffer_size, 16 * 1024 * 1024);
        options_free(o);
        o = NULL;

        char *bad[] = {"ctrmon", "-c", "x", "-u", "u", "-r", "/bin/true", "-l", "none", "--log-buffer-size=lots", NULL};
        ck_assert_int_lt(options_parse(G_N_ELEMENTS(bad) - 1, bad, &o, &error), 0);
        ck_assert_ptr_null(o);
        ck_assert_msg(strstr(error->message, "--log-buffer-size \"lots\""), "%s", error->message);
        g_error_free(error);
}
END_TEST

static Suite *log_buffer_suite(void)
{
        Suite *s = suite_create("log-buffer");
        TCase *tc = tcase_create("lossless");
        tcase_add_test(tc, test_lossless_mode_passes_every_call_through_on_the_callers_thread);
        tcase_add_test(tc, test_lossless_mode_reports_a_failing_sink_once_and_its_recovery);
        suite_add_tcase(s, tc);

        tc = tcase_create("buffered");
        tcase_add_test(tc, test_buffered_mode_writes_everything_in_order_on_another_thread);
        tcase_add_test(tc, test_buffered_mode_drops_and_counts_what_a_stalled_sink_has_no_room_for);
        tcase_add_test(tc, test_buffered_mode_reports_drops_at_most_once_per_interval);
        tcase_add_test(tc, test_buffered_mode_reports_outages_on_the_main_thread);
        tcase_add_test(tc, test_buffered_mode_free_writes_everything_accepted_first);
        suite_add_tcase(s, tc);

        tc = tcase_create("size");
        tcase_add_test(tc, test_size_accepts_bytes_and_k_m_g_suffixes);
        tcase_add_test(tc, test_size_rejects_anything_else_and_leaves_the_value);
        tcase_add_test(tc, test_option_sets_the_size_and_rejects_garbage_with_its_name);
        suite_add_tcase(s, tc);
        return s;
}

int main(void)
{
        SRunner *sr = srunner_create(log_buffer_suite());
        srunner_run_all(sr, CK_NORMAL);
        int failed = srunner_ntests_failed(sr);
        srunner_free(sr);
        return failed == 0 ? 0 : 1;
}
