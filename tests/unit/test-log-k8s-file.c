/* Unit tests for the k8s-file log sink: byte-exact records and timestamps
 * (spec §6.2), size limits, truncation and rotation (spec §6.3), and write
 * failures that must be reported and counted, never fatal. */

#include "log-k8s-file.h"

#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <glib.h>
#include <glib/gstdio.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <ctrmon/error.h>

/* 2026-11-22T23:13:55.215615259Z */
static const struct timespec TS0 = { .tv_sec = 1795389235, .tv_nsec = 215615259 };
static const struct timespec TS1 = { .tv_sec = 1795389236, .tv_nsec = 5 };
#define TS0_UTC "2026-11-22T23:13:55.215615259+00:00"
#define TS1_UTC "2026-11-22T23:13:56.000000005+00:00"

static char *tmp_dir;

static void set_tz(const char *tz)
{
        ck_assert_int_eq(setenv("TZ", tz, 1), 0);
        tzset();
}

static void setup(void)
{
        const char *base = getenv("CTRMON_TEST_TMPDIR");
        g_autofree char *tmpl = g_build_filename(base ?: g_get_tmp_dir(), "k8s-file-XXXXXX", NULL);

        umask(022);
        set_tz("UTC");
        tmp_dir = g_mkdtemp(g_steal_pointer(&tmpl));
        ck_assert_ptr_nonnull(tmp_dir);
}

static void rm_rf(const char *dir)
{
        g_autoptr(GDir) d = g_dir_open(dir, 0, NULL);
        const char *name;

        if (!d)
                return;
        while ((name = g_dir_read_name(d))) {
                g_autofree char *p = g_build_filename(dir, name, NULL);
                (void) unlink(p);
        }
        (void) rmdir(dir);
}

static void teardown(void)
{
        rm_rf(tmp_dir);
        g_clear_pointer(&tmp_dir, g_free);
}

static char *tmp_path(const char *name)
{
        return g_build_filename(tmp_dir, name, NULL);
}

static int open_log(const char *path)
{
        int fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);

        ck_assert_int_ge(fd, 0);
        return fd;
}

static LogSink *new_sink_full(const char *path, int64_t size_max, int64_t global_max,
                              bool rotate, int max_files, const char *const *allowlist)
{
        K8sFileConfig config = {
                .path = path,
                .fd = open_log(path),
                .size_max = size_max,
                .global_size_max = global_max,
                .rotate = rotate,
                .max_files = max_files,
                .allowlist_dirs = allowlist,
        };
        g_autoptr(GError) error = NULL;
        LogSink *sink = NULL;

        ck_assert_int_eq(k8s_file_sink_new(&config, &sink, &error), 0);
        ck_assert_ptr_null(error);
        ck_assert_ptr_nonnull(sink);
        return sink;
}

static LogSink *new_sink(const char *path, int64_t size_max, int64_t global_max)
{
        return new_sink_full(path, size_max, global_max, false, 1, NULL);
}

static void write_ok(LogSink *sink, CtrmonStream stream, const struct timespec *ts,
                     const char *data)
{
        g_autoptr(GError) error = NULL;
        int r = sink->ops->write(sink, stream, ts, data, strlen(data), &error);

        ck_assert_msg(r == 0, "write failed: %s", error ? error->message : "?");
        ck_assert_ptr_null(error);
}

static char *read_all(const char *path)
{
        g_autoptr(GError) error = NULL;
        char *contents = NULL;

        ck_assert_msg(g_file_get_contents(path, &contents, NULL, &error), "read %s: %s", path,
                      error ? error->message : "?");
        return contents;
}

static void assert_file_eq(const char *path, const char *expected)
{
        g_autofree char *got = read_all(path);

        ck_assert_str_eq(got, expected);
}

static bool exists(const char *path)
{
        struct stat st;

        return lstat(path, &st) == 0;
}

/* "lin01\n": with the 45-byte header every record is exactly 51 bytes. */
static char *line51(int i)
{
        return g_strdup_printf("lin%02d\n", i);
}

#define REC(ts, stream, flag, text) ts " " stream " " flag " " text

/* ---- timestamps -------------------------------------------------------- */

START_TEST(test_timestamp_utc_is_numeric_offset_never_z)
{
        char buf[64];

        ck_assert_int_eq(k8s_file_format_timestamp(&TS0, buf), 35);
        ck_assert_str_eq(buf, TS0_UTC);
}
END_TEST

START_TEST(test_timestamp_est5edt_minus_0500_and_dst_minus_0400)
{
        const struct timespec summer = { .tv_sec = 1783166400, .tv_nsec = 123 };
        char buf[64];

        set_tz("EST5EDT");
        ck_assert_int_eq(k8s_file_format_timestamp(&TS0, buf), 35);
        ck_assert_str_eq(buf, "2026-11-22T18:13:55.215615259-05:00");
        ck_assert_int_eq(k8s_file_format_timestamp(&summer, buf), 35);
        ck_assert_str_eq(buf, "2026-07-04T08:00:00.000000123-04:00");
}
END_TEST

START_TEST(test_timestamp_kolkata_plus_0530)
{
        char buf[64];

        set_tz(access("/usr/share/zoneinfo/Asia/Kolkata", R_OK) == 0 ? "Asia/Kolkata"
                                                                     : "IST-5:30");
        ck_assert_int_eq(k8s_file_format_timestamp(&TS0, buf), 35);
        ck_assert_str_eq(buf, "2026-11-23T04:43:55.215615259+05:30");
}
END_TEST

START_TEST(test_timestamp_nanoseconds_zero_padded_to_9_digits)
{
        const struct timespec zero = { .tv_sec = 1795389235, .tv_nsec = 0 };
        char buf[64];

        ck_assert_int_eq(k8s_file_format_timestamp(&TS1, buf), 35);
        ck_assert_str_eq(buf, TS1_UTC);
        ck_assert_int_eq(k8s_file_format_timestamp(&zero, buf), 35);
        ck_assert_str_eq(buf, "2026-11-22T23:13:55.000000000+00:00");
}
END_TEST

START_TEST(test_timestamp_rejects_out_of_range_nanoseconds)
{
        const struct timespec bad = { .tv_sec = 1, .tv_nsec = 1000000000L };
        const struct timespec neg = { .tv_sec = 1, .tv_nsec = -1 };
        char buf[64];

        ck_assert_int_eq(k8s_file_format_timestamp(&bad, buf), -EINVAL);
        ck_assert_int_eq(k8s_file_format_timestamp(&neg, buf), -EINVAL);
}
END_TEST

/* ---- record format ----------------------------------------------------- */

START_TEST(test_two_lines_in_one_chunk_are_two_F_records_with_same_timestamp)
{
        g_autofree char *path = tmp_path("ctr.log");
        g_autoptr(LogSink) sink = new_sink(path, 0, 0);

        write_ok(sink, CTRMON_STREAM_STDOUT, &TS0, "a\nb\n");
        assert_file_eq(path, REC(TS0_UTC, "stdout", "F", "a\n")
                             REC(TS0_UTC, "stdout", "F", "b\n"));
}
END_TEST

START_TEST(test_fragment_is_P_record_with_added_newline)
{
        g_autofree char *path = tmp_path("ctr.log");
        g_autoptr(LogSink) sink = new_sink(path, 0, 0);

        write_ok(sink, CTRMON_STREAM_STDOUT, &TS0, "partial");
        assert_file_eq(path, REC(TS0_UTC, "stdout", "P", "partial\n"));
}
END_TEST

START_TEST(test_fragment_continuation_is_new_record_with_new_timestamp)
{
        g_autofree char *path = tmp_path("ctr.log");
        g_autoptr(LogSink) sink = new_sink(path, 0, 0);
        g_autoptr(GError) error = NULL;

        write_ok(sink, CTRMON_STREAM_STDOUT, &TS0, "par");
        write_ok(sink, CTRMON_STREAM_STDOUT, &TS1, "tial\nend");
        /* At exit a final fragment stays P: flush adds no closing F. */
        ck_assert_int_eq(sink->ops->flush(sink, &error), 0);
        assert_file_eq(path, REC(TS0_UTC, "stdout", "P", "par\n")
                             REC(TS1_UTC, "stdout", "F", "tial\n")
                             REC(TS1_UTC, "stdout", "P", "end\n"));
}
END_TEST

START_TEST(test_bare_newline_is_F_record_with_empty_text)
{
        g_autofree char *path = tmp_path("ctr.log");
        g_autoptr(LogSink) sink = new_sink(path, 0, 0);

        write_ok(sink, CTRMON_STREAM_STDOUT, &TS0, "\n");
        assert_file_eq(path, TS0_UTC " stdout F \n");
}
END_TEST

START_TEST(test_carriage_return_preserved)
{
        g_autofree char *path = tmp_path("ctr.log");
        g_autoptr(LogSink) sink = new_sink(path, 0, 0);

        write_ok(sink, CTRMON_STREAM_STDOUT, &TS0, "crlf\r\n");
        assert_file_eq(path, TS0_UTC " stdout F crlf\r\n");
}
END_TEST

START_TEST(test_stderr_stream_name_and_43_byte_header)
{
        g_autofree char *path = tmp_path("ctr.log");
        g_autoptr(LogSink) sink = new_sink(path, 0, 0);
        g_autofree char *got = NULL;

        write_ok(sink, CTRMON_STREAM_STDERR, &TS0, "oops\n");
        write_ok(sink, CTRMON_STREAM_STDOUT, &TS0, "fine\n");
        got = read_all(path);
        ck_assert_str_eq(got, REC(TS0_UTC, "stderr", "F", "oops\n")
                              REC(TS0_UTC, "stdout", "F", "fine\n"));
        ck_assert_int_eq(strlen(TS0_UTC " stderr "), 43);
        ck_assert_int_eq(got[43], 'F');
}
END_TEST

START_TEST(test_three_lines_and_fragment_in_one_chunk)
{
        g_autofree char *path = tmp_path("ctr.log");
        g_autoptr(LogSink) sink = new_sink(path, 0, 0);
        K8sFileStats stats;

        write_ok(sink, CTRMON_STREAM_STDOUT, &TS0, "one\ntwo\n\nfrag");
        assert_file_eq(path, REC(TS0_UTC, "stdout", "F", "one\n")
                             REC(TS0_UTC, "stdout", "F", "two\n")
                             REC(TS0_UTC, "stdout", "F", "\n")
                             REC(TS0_UTC, "stdout", "P", "frag\n"));
        k8s_file_sink_get_stats(sink, &stats);
        ck_assert_uint_eq(stats.bytes_written, 4 * 45 + 4 + 4 + 1 + 5);
        ck_assert_uint_eq(stats.bytes_dropped, 0);
        ck_assert_int_eq(stats.current_size, (int64_t) stats.bytes_written);
}
END_TEST

START_TEST(test_empty_chunk_writes_nothing)
{
        g_autofree char *path = tmp_path("ctr.log");
        g_autoptr(LogSink) sink = new_sink(path, 0, 0);
        g_autoptr(GError) error = NULL;

        ck_assert_int_eq(sink->ops->write(sink, CTRMON_STREAM_STDOUT, &TS0, "", 0, &error), 0);
        assert_file_eq(path, "");
}
END_TEST

/* More records than one writev takes (IOV_MAX): batches must join up with
 * nothing lost or reordered. */
START_TEST(test_chunk_with_thousands_of_lines_spans_several_writev_batches)
{
        g_autofree char *path = tmp_path("ctr.log");
        g_autoptr(LogSink) sink = new_sink(path, 0, 0);
        g_autoptr(GString) in = g_string_new(NULL);
        g_autoptr(GString) want = g_string_new(NULL);
        g_autofree char *got = NULL;

        for (int i = 0; i < 3000; i++) {
                g_string_append_printf(in, "line %d\n", i);
                g_string_append_printf(want, TS0_UTC " stdout F line %d\n", i);
        }
        g_string_append(in, "tail");
        g_string_append(want, TS0_UTC " stdout P tail\n");
        write_ok(sink, CTRMON_STREAM_STDOUT, &TS0, in->str);
        got = read_all(path);
        ck_assert_str_eq(got, want->str);
}
END_TEST

/* Short lines are copied into a staging buffer, long ones (over 1 KiB) are
 * written in place: a chunk that mixes them and fills the staging buffer
 * several times over must still come out in order, byte for byte. */
START_TEST(test_mixed_short_and_long_lines_past_the_staging_buffer_keep_order)
{
        g_autofree char *path = tmp_path("ctr.log");
        g_autoptr(LogSink) sink = new_sink(path, 0, 0);
        g_autoptr(GString) in = g_string_new(NULL);
        g_autoptr(GString) want = g_string_new(NULL);
        g_autofree char *got = NULL;
        K8sFileStats stats;

        for (int i = 0; i < 8000; i++) {
                g_autoptr(GString) line = g_string_new(NULL);

                g_string_append_printf(line, "line %d of a chunk of mixed lengths", i);
                /* Every 97th line is 1-5 KiB long. */
                if (i % 97 == 0)
                        for (int k = 0; k < 1000 + (i % 4000); k++)
                                g_string_append_c(line, (char) ('a' + (i + k) % 26));
                g_string_append_c(line, '\n');
                g_string_append(in, line->str);
                g_string_append_printf(want, TS0_UTC " stdout F %s", line->str);
        }
        g_string_append(in, "tail");
        g_string_append(want, TS0_UTC " stdout P tail\n");
        ck_assert_uint_gt(in->len, 3 * 128 * 1024);

        write_ok(sink, CTRMON_STREAM_STDOUT, &TS0, in->str);
        got = read_all(path);
        ck_assert_str_eq(got, want->str);
        k8s_file_sink_get_stats(sink, &stats);
        ck_assert_uint_eq(stats.bytes_written, want->len);
        ck_assert_int_eq(stats.current_size, (int64_t) want->len);
}
END_TEST

/* ---- size limits ------------------------------------------------------- */

/* Spec §6.3: 51-byte records, max 200: lines 1-3, 4-6, 7-9 are each
 * discarded by truncation; the file ends with line 10 only. */
START_TEST(test_size_max_200_truncation_leaves_only_line_10)
{
        g_autofree char *path = tmp_path("ctr.log");
        g_autofree char *tmp = g_strconcat(path, ".tmp", NULL);
        g_autoptr(LogSink) sink = new_sink(path, 200, 0);
        K8sFileStats stats;

        for (int i = 1; i <= 10; i++) {
                g_autofree char *l = line51(i);
                write_ok(sink, CTRMON_STREAM_STDOUT, &TS0, l);
        }
        assert_file_eq(path, REC(TS0_UTC, "stdout", "F", "lin10\n"));
        ck_assert_int_eq(strlen(REC(TS0_UTC, "stdout", "F", "lin10\n")), 51);
        k8s_file_sink_get_stats(sink, &stats);
        ck_assert_int_eq(stats.current_size, 51);
        ck_assert_uint_eq(stats.bytes_written, 510);
        ck_assert_uint_eq(stats.bytes_dropped, 0);
        ck_assert(!exists(tmp));
}
END_TEST

/* Same scenario with all ten lines in one chunk: pending records are flushed
 * before each truncation. */
START_TEST(test_size_max_200_truncation_within_one_chunk)
{
        g_autofree char *path = tmp_path("ctr.log");
        g_autoptr(LogSink) sink = new_sink(path, 200, 0);
        g_autoptr(GString) in = g_string_new(NULL);

        for (int i = 1; i <= 10; i++)
                g_string_append_printf(in, "lin%02d\n", i);
        write_ok(sink, CTRMON_STREAM_STDOUT, &TS0, in->str);
        assert_file_eq(path, REC(TS0_UTC, "stdout", "F", "lin10\n"));
}
END_TEST

START_TEST(test_global_max_300_overshoots_by_one_record_to_306_bytes)
{
        g_autofree char *path = tmp_path("ctr.log");
        g_autoptr(LogSink) sink = new_sink(path, 0, 300);
        g_autoptr(GString) want = g_string_new(NULL);
        g_autofree char *got = NULL;
        K8sFileStats stats;

        for (int i = 1; i <= 10; i++) {
                g_autofree char *l = line51(i);
                write_ok(sink, CTRMON_STREAM_STDOUT, &TS0, l);
                if (i <= 6)
                        g_string_append_printf(want, TS0_UTC " stdout F %s", l);
        }
        got = read_all(path);
        ck_assert_int_eq(strlen(got), 306);
        ck_assert_str_eq(got, want->str);
        k8s_file_sink_get_stats(sink, &stats);
        ck_assert_uint_eq(stats.bytes_written, 306);
        ck_assert_uint_eq(stats.bytes_dropped, 4 * 51);
}
END_TEST

START_TEST(test_global_max_drops_rest_of_chunk)
{
        g_autofree char *path = tmp_path("ctr.log");
        g_autoptr(LogSink) sink = new_sink(path, 0, 100);
        K8sFileStats stats;

        write_ok(sink, CTRMON_STREAM_STDOUT, &TS0, "lin01\nlin02\nlin03\nfrag");
        assert_file_eq(path, REC(TS0_UTC, "stdout", "F", "lin01\n")
                             REC(TS0_UTC, "stdout", "F", "lin02\n"));
        k8s_file_sink_get_stats(sink, &stats);
        ck_assert_uint_eq(stats.bytes_dropped, 51 + 45 + 5);
}
END_TEST

START_TEST(test_record_larger_than_size_max_still_written_into_fresh_file)
{
        g_autofree char *path = tmp_path("ctr.log");
        g_autoptr(LogSink) sink = new_sink(path, 60, 0);
        g_autofree char *big = g_strnfill(100, 'x');
        g_autofree char *big_nl = g_strconcat(big, "\n", NULL);
        g_autofree char *want = g_strconcat(TS0_UTC " stdout F ", big_nl, NULL);

        /* Into the empty file: nothing to truncate. */
        write_ok(sink, CTRMON_STREAM_STDOUT, &TS0, big_nl);
        assert_file_eq(path, want);
        /* The next one replaces it. */
        write_ok(sink, CTRMON_STREAM_STDOUT, &TS0, "lin01\n");
        assert_file_eq(path, REC(TS0_UTC, "stdout", "F", "lin01\n"));
        write_ok(sink, CTRMON_STREAM_STDOUT, &TS0, big_nl);
        assert_file_eq(path, want);
}
END_TEST

START_TEST(test_initial_size_counts_existing_file_content)
{
        g_autofree char *path = tmp_path("ctr.log");
        g_autofree char *old = g_strnfill(180, 'o');
        g_autoptr(LogSink) sink = NULL;
        K8sFileStats stats;

        ck_assert(g_file_set_contents(path, old, -1, NULL));
        sink = new_sink(path, 200, 0);
        k8s_file_sink_get_stats(sink, &stats);
        ck_assert_int_eq(stats.current_size, 180);

        /* 180 + 51 > 200: truncated before the first record. */
        write_ok(sink, CTRMON_STREAM_STDOUT, &TS0, "lin01\n");
        assert_file_eq(path, REC(TS0_UTC, "stdout", "F", "lin01\n"));
}
END_TEST

START_TEST(test_initial_size_counts_towards_global_max)
{
        g_autofree char *path = tmp_path("ctr.log");
        g_autofree char *old = g_strnfill(300, 'o');
        g_autoptr(LogSink) sink = NULL;
        K8sFileStats stats;

        ck_assert(g_file_set_contents(path, old, -1, NULL));
        sink = new_sink(path, 0, 300);
        write_ok(sink, CTRMON_STREAM_STDOUT, &TS0, "lin01\n");
        assert_file_eq(path, old);
        k8s_file_sink_get_stats(sink, &stats);
        ck_assert_uint_eq(stats.bytes_dropped, 51);
}
END_TEST

/* ---- reopen ------------------------------------------------------------ */

START_TEST(test_reopen_without_rotate_truncates_and_keeps_writing)
{
        g_autofree char *path = tmp_path("ctr.log");
        g_autofree char *tmp = g_strconcat(path, ".tmp", NULL);
        g_autoptr(LogSink) sink = new_sink(path, 0, 0);
        g_autoptr(GError) error = NULL;
        K8sFileStats stats;
        struct stat st;

        write_ok(sink, CTRMON_STREAM_STDOUT, &TS0, "before\n");
        ck_assert_int_eq(sink->ops->reopen(sink, &error), 0);
        ck_assert_ptr_null(error);
        assert_file_eq(path, "");
        ck_assert(!exists(tmp));
        ck_assert_int_eq(stat(path, &st), 0);
        ck_assert_int_eq(st.st_mode & 07777, 0640);
        k8s_file_sink_get_stats(sink, &stats);
        ck_assert_int_eq(stats.current_size, 0);

        write_ok(sink, CTRMON_STREAM_STDOUT, &TS0, "after\n");
        assert_file_eq(path, REC(TS0_UTC, "stdout", "F", "after\n"));
}
END_TEST

/* kubelet renames the log away, then asks for a reopen: the old content
 * must stay in the renamed file and new output go to a new file. */
START_TEST(test_reopen_after_external_rename_writes_new_file)
{
        g_autofree char *path = tmp_path("ctr.log");
        g_autofree char *moved = tmp_path("ctr.log.20260101");
        g_autoptr(LogSink) sink = new_sink(path, 0, 0);
        g_autoptr(GError) error = NULL;

        write_ok(sink, CTRMON_STREAM_STDOUT, &TS0, "old\n");
        ck_assert_int_eq(rename(path, moved), 0);
        ck_assert_int_eq(sink->ops->reopen(sink, &error), 0);
        write_ok(sink, CTRMON_STREAM_STDOUT, &TS0, "new\n");
        assert_file_eq(moved, REC(TS0_UTC, "stdout", "F", "old\n"));
        assert_file_eq(path, REC(TS0_UTC, "stdout", "F", "new\n"));
}
END_TEST

static void write_rotating_lines(LogSink *sink, int n)
{
        for (int i = 1; i <= n; i++) {
                g_autofree char *l = line51(i);
                write_ok(sink, CTRMON_STREAM_STDOUT, &TS0, l);
        }
}

static void assert_backup(const char *path, int k, int line)
{
        g_autofree char *b = g_strdup_printf("%s.%d", path, k);
        g_autofree char *l = line51(line);
        g_autofree char *want = g_strconcat(TS0_UTC " stdout F ", l, NULL);

        assert_file_eq(b, want);
}

/* DECISION: conmon keeps max(2, N) backups (quirk 8); ctrmon keeps exactly N. */
START_TEST(test_rotate_max_files_1_keeps_exactly_one_backup_not_conmons_two)
{
        g_autofree char *path = tmp_path("ctr.log");
        g_autofree char *b2 = g_strconcat(path, ".2", NULL);
        g_autofree char *nw = g_strconcat(path, ".new", NULL);
        g_autoptr(LogSink) sink = new_sink_full(path, 100, 0, true, 1, NULL);

        /* 51-byte records, max 100: every record after the first rotates. */
        write_rotating_lines(sink, 5);
        assert_backup(path, 1, 4);
        assert_file_eq(path, REC(TS0_UTC, "stdout", "F", "lin05\n"));
        ck_assert(!exists(b2));
        ck_assert(!exists(nw));
}
END_TEST

START_TEST(test_rotate_max_files_3_shifts_backups)
{
        g_autofree char *path = tmp_path("ctr.log");
        g_autofree char *b4 = g_strconcat(path, ".4", NULL);
        g_autoptr(LogSink) sink = new_sink_full(path, 100, 0, true, 3, NULL);
        struct stat st;

        write_rotating_lines(sink, 6);
        assert_file_eq(path, REC(TS0_UTC, "stdout", "F", "lin06\n"));
        assert_backup(path, 1, 5);
        assert_backup(path, 2, 4);
        assert_backup(path, 3, 3);
        ck_assert(!exists(b4));
        ck_assert_int_eq(stat(path, &st), 0);
        ck_assert_int_eq(st.st_mode & 07777, 0640);
}
END_TEST

START_TEST(test_rotate_via_reopen_moves_file_to_dot_1)
{
        g_autofree char *path = tmp_path("ctr.log");
        g_autofree char *b1 = g_strconcat(path, ".1", NULL);
        g_autoptr(LogSink) sink = new_sink_full(path, 0, 0, true, 2, NULL);
        g_autoptr(GError) error = NULL;

        write_ok(sink, CTRMON_STREAM_STDOUT, &TS0, "one\n");
        ck_assert_int_eq(sink->ops->reopen(sink, &error), 0);
        ck_assert_ptr_null(error);
        write_ok(sink, CTRMON_STREAM_STDOUT, &TS0, "two\n");
        assert_file_eq(b1, REC(TS0_UTC, "stdout", "F", "one\n"));
        assert_file_eq(path, REC(TS0_UTC, "stdout", "F", "two\n"));
}
END_TEST

/* Issue 14: whoever can write the log's directory plants "<log>.tmp" as a
 * symlink to a 0600 file. The truncation (no --log-rotate) must neither
 * open nor truncate the target, must not turn the log into a symlink, and
 * must still truncate. */
START_TEST(test_truncate_ignores_planted_tmp_symlink)
{
        g_autofree char *path = tmp_path("ctr.log");
        g_autofree char *tmp = g_strconcat(path, ".tmp", NULL);
        g_autofree char *secret = tmp_path("secret");
        g_autoptr(LogSink) sink = new_sink(path, 100, 0);
        struct stat st;

        ck_assert(g_file_set_contents(secret, "top secret\n", -1, NULL));
        ck_assert_int_eq(chmod(secret, 0600), 0);
        ck_assert_int_eq(symlink(secret, tmp), 0);

        /* 51-byte records, max 100: the third record truncates. */
        write_rotating_lines(sink, 3);

        assert_file_eq(secret, "top secret\n");
        ck_assert_int_eq(stat(secret, &st), 0);
        ck_assert_int_eq(st.st_mode & 07777, 0600);
        ck_assert_int_eq(lstat(path, &st), 0);
        ck_assert(S_ISREG(st.st_mode));
        ck_assert_int_eq(st.st_mode & 07777, 0640);
        assert_file_eq(path, REC(TS0_UTC, "stdout", "F", "lin03\n"));
        /* The planted link is left alone, and nothing else is left over. */
        ck_assert_int_eq(lstat(tmp, &st), 0);
        ck_assert(S_ISLNK(st.st_mode));
        g_autoptr(GDir) d = g_dir_open(tmp_dir, 0, NULL);
        int n = 0;
        while (g_dir_read_name(d))
                n++;
        ck_assert_int_eq(n, 3); /* ctr.log, ctr.log.tmp, secret */
}
END_TEST

/* A regular "<log>.tmp" left behind (by an older monitor that died
 * mid-truncation) neither blocks the truncation nor is written to. */
START_TEST(test_truncate_with_stale_tmp_file)
{
        g_autofree char *path = tmp_path("ctr.log");
        g_autofree char *tmp = g_strconcat(path, ".tmp", NULL);
        g_autoptr(LogSink) sink = new_sink(path, 0, 0);
        g_autoptr(GError) error = NULL;

        ck_assert(g_file_set_contents(tmp, "stale", -1, NULL));
        write_ok(sink, CTRMON_STREAM_STDOUT, &TS0, "before\n");
        ck_assert_int_eq(sink->ops->reopen(sink, &error), 0);
        write_ok(sink, CTRMON_STREAM_STDOUT, &TS0, "after\n");
        assert_file_eq(path, REC(TS0_UTC, "stdout", "F", "after\n"));
        assert_file_eq(tmp, "stale");
}
END_TEST

/* The log path is a symlink: no rotation, no truncation, the file keeps
 * growing and every record over the limit retries (and reports). */
START_TEST(test_rotate_refuses_symlink_and_file_keeps_growing)
{
        g_autofree char *real = tmp_path("real.log");
        g_autofree char *path = tmp_path("ctr.log");
        g_autofree char *b1 = g_strconcat(path, ".1", NULL);
        g_autoptr(LogSink) sink = NULL;
        g_autoptr(GError) error = NULL;
        K8sFileStats stats;

        ck_assert_int_eq(symlink(real, path), 0);
        sink = new_sink_full(path, 100, 0, true, 1, NULL);
        write_ok(sink, CTRMON_STREAM_STDOUT, &TS0, "lin01\n");
        ck_assert_int_lt(sink->ops->write(sink, CTRMON_STREAM_STDOUT, &TS0, "lin02\n", 6, &error), 0);
        ck_assert_ptr_nonnull(error);
        ck_assert_int_eq(error->code, ELOOP);
        g_clear_error(&error);
        ck_assert_int_lt(sink->ops->write(sink, CTRMON_STREAM_STDOUT, &TS0, "lin03\n", 6, &error), 0);
        assert_file_eq(real, REC(TS0_UTC, "stdout", "F", "lin01\n")
                             REC(TS0_UTC, "stdout", "F", "lin02\n")
                             REC(TS0_UTC, "stdout", "F", "lin03\n"));
        ck_assert(!exists(b1));
        k8s_file_sink_get_stats(sink, &stats);
        ck_assert_int_eq(stats.current_size, 153);
        ck_assert_uint_eq(stats.bytes_dropped, 0);
}
END_TEST

START_TEST(test_rotate_skipped_while_another_process_holds_lock)
{
        g_autofree char *path = tmp_path("ctr.log");
        g_autofree char *b1 = g_strconcat(path, ".1", NULL);
        g_autoptr(LogSink) sink = new_sink_full(path, 0, 0, true, 1, NULL);
        g_autoptr(GError) error = NULL;
        int locked[2], release[2], status;
        char c;
        pid_t pid;

        write_ok(sink, CTRMON_STREAM_STDOUT, &TS0, "one\n");
        ck_assert_int_eq(pipe2(locked, O_CLOEXEC), 0);
        ck_assert_int_eq(pipe2(release, O_CLOEXEC), 0);
        pid = fork();
        ck_assert_int_ge(pid, 0);
        if (pid == 0) {
                struct flock fl = { .l_type = F_WRLCK, .l_whence = SEEK_SET };
                int fd = open(path, O_RDWR | O_CLOEXEC);

                /* Our copy of the write end would keep read() from ever
                 * seeing EOF. */
                close(release[1]);
                close(locked[0]);
                if (fd < 0 || fcntl(fd, F_SETLKW, &fl) < 0)
                        _exit(1);
                if (write(locked[1], "x", 1) != 1)
                        _exit(1);
                (void) read(release[0], &c, 1);
                _exit(0);
        }
        close(locked[1]);
        close(release[0]);
        ck_assert_int_eq(read(locked[0], &c, 1), 1);

        ck_assert_int_eq(sink->ops->reopen(sink, &error), -EBUSY);
        ck_assert_ptr_nonnull(error);
        ck_assert(!exists(b1));
        assert_file_eq(path, REC(TS0_UTC, "stdout", "F", "one\n"));

        close(release[1]);
        ck_assert_int_eq(waitpid(pid, &status, 0), pid);
        ck_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0);
        close(locked[0]);

        /* Lock gone: the retry rotates. */
        g_clear_error(&error);
        ck_assert_int_eq(sink->ops->reopen(sink, &error), 0);
        assert_file_eq(b1, REC(TS0_UTC, "stdout", "F", "one\n"));
}
END_TEST

START_TEST(test_rotate_recreates_missing_log_file)
{
        g_autofree char *path = tmp_path("ctr.log");
        g_autofree char *b1 = g_strconcat(path, ".1", NULL);
        g_autoptr(LogSink) sink = new_sink_full(path, 0, 0, true, 1, NULL);
        g_autoptr(GError) error = NULL;

        write_ok(sink, CTRMON_STREAM_STDOUT, &TS0, "one\n");
        ck_assert_int_eq(unlink(path), 0);
        ck_assert_int_eq(sink->ops->reopen(sink, &error), 0);
        write_ok(sink, CTRMON_STREAM_STDOUT, &TS0, "two\n");
        assert_file_eq(path, REC(TS0_UTC, "stdout", "F", "two\n"));
        ck_assert(!exists(b1));
}
END_TEST

START_TEST(test_rotate_missing_file_outside_allowlist_refused)
{
        g_autofree char *path = tmp_path("ctr.log");
        const char *allow[] = { "/nonexistent-ctrmon-allow", NULL };
        g_autoptr(LogSink) sink = new_sink_full(path, 0, 0, true, 1, allow);
        g_autoptr(GError) error = NULL;

        ck_assert_int_eq(unlink(path), 0);
        ck_assert_int_eq(sink->ops->reopen(sink, &error), -EPERM);
        ck_assert(!exists(path));
}
END_TEST

START_TEST(test_rotate_missing_file_inside_allowlist_recreated)
{
        g_autofree char *path = tmp_path("ctr.log");
        const char *allow[] = { "/nonexistent-ctrmon-allow", tmp_dir, NULL };
        g_autoptr(LogSink) sink = new_sink_full(path, 0, 0, true, 1, allow);
        g_autoptr(GError) error = NULL;

        ck_assert_int_eq(unlink(path), 0);
        ck_assert_int_eq(sink->ops->reopen(sink, &error), 0);
        ck_assert(exists(path));
}
END_TEST

START_TEST(test_rotate_missing_file_with_dotdot_refused)
{
        g_autofree char *sub = tmp_path("sub");
        g_autofree char *path = NULL;
        g_autoptr(LogSink) sink = NULL;
        g_autoptr(GError) error = NULL;

        ck_assert_int_eq(mkdir(sub, 0755), 0);
        path = g_build_filename(sub, "..", "ctr.log", NULL);
        sink = new_sink_full(path, 0, 0, true, 1, NULL);
        ck_assert_int_eq(unlink(path), 0);
        ck_assert_int_eq(sink->ops->reopen(sink, &error), -EINVAL);
        ck_assert(!exists(path));
        (void) rmdir(sub);
}
END_TEST

/* ---- failures ---------------------------------------------------------- */

START_TEST(test_dev_full_write_returns_enospc_and_counts_dropped)
{
        K8sFileConfig config = {
                .path = "/dev/full",
                .fd = open("/dev/full", O_WRONLY | O_CLOEXEC),
        };
        g_autoptr(LogSink) sink = NULL;
        g_autoptr(GError) error = NULL;
        K8sFileStats stats;

        ck_assert_int_ge(config.fd, 0);
        ck_assert_int_eq(k8s_file_sink_new(&config, &sink, &error), 0);

        ck_assert_int_eq(sink->ops->write(sink, CTRMON_STREAM_STDOUT, &TS0, "a\nbc", 4, &error),
                         -ENOSPC);
        ck_assert_ptr_nonnull(error);
        ck_assert(g_error_matches(error, CTRMON_ERROR, ENOSPC));
        g_clear_error(&error);
        k8s_file_sink_get_stats(sink, &stats);
        ck_assert_uint_eq(stats.bytes_written, 0);
        ck_assert_uint_eq(stats.bytes_dropped, 45 + 2 + 45 + 3);
        ck_assert_int_eq(stats.current_size, 0);

        /* The next write tries again. */
        ck_assert_int_eq(sink->ops->write(sink, CTRMON_STREAM_STDERR, &TS0, "x\n", 2, &error),
                         -ENOSPC);
        k8s_file_sink_get_stats(sink, &stats);
        ck_assert_uint_eq(stats.bytes_dropped, 95 + 47);
}
END_TEST

/* RLIMIT_FSIZE makes the kernel accept part of a writev (a short write
 * ending mid-iovec) and refuse the rest with EFBIG: every byte must be
 * counted once, as written or as dropped. */
START_TEST(test_short_write_then_failure_accounts_every_byte)
{
        g_autofree char *path = tmp_path("ctr.log");
        g_autoptr(LogSink) sink = new_sink(path, 0, 0);
        g_autoptr(GError) error = NULL;
        struct rlimit rl = { .rlim_cur = 100, .rlim_max = RLIM_INFINITY };
        g_autofree char *got = NULL;
        K8sFileStats stats;
        int r;

        int rl_set, rl_restored;

        /* Check reports through a file too: no assertion while the limit
         * is in place. */
        signal(SIGXFSZ, SIG_IGN);
        rl_set = setrlimit(RLIMIT_FSIZE, &rl);
        r = sink->ops->write(sink, CTRMON_STREAM_STDOUT, &TS0, "lin01\nlin02\nlin03\n", 18,
                             &error);
        rl.rlim_cur = RLIM_INFINITY;
        rl_restored = setrlimit(RLIMIT_FSIZE, &rl);
        ck_assert_int_eq(rl_set, 0);
        ck_assert_int_eq(rl_restored, 0);
        ck_assert_int_eq(r, -EFBIG);
        k8s_file_sink_get_stats(sink, &stats);
        ck_assert_uint_eq(stats.bytes_written, 100);
        ck_assert_uint_eq(stats.bytes_dropped, 153 - 100);
        ck_assert_int_eq(stats.current_size, 100);
        got = read_all(path);
        ck_assert_int_eq(strlen(got), 100);
        ck_assert(strncmp(got, REC(TS0_UTC, "stdout", "F", "lin01\n")
                               REC(TS0_UTC, "stdout", "F", "lin02\n"), 100) == 0);
}
END_TEST

START_TEST(test_invalid_stream_rejected)
{
        g_autofree char *path = tmp_path("ctr.log");
        g_autoptr(LogSink) sink = new_sink(path, 0, 0);
        g_autoptr(GError) error = NULL;

        ck_assert_int_eq(sink->ops->write(sink, CTRMON_STREAM_STDIN, &TS0, "x\n", 2, &error),
                         -EINVAL);
        ck_assert_ptr_nonnull(error);
        assert_file_eq(path, "");
}
END_TEST

START_TEST(test_sync_and_flush_succeed_on_regular_file)
{
        g_autofree char *path = tmp_path("ctr.log");
        g_autoptr(LogSink) sink = new_sink(path, 0, 0);
        g_autoptr(GError) error = NULL;

        write_ok(sink, CTRMON_STREAM_STDOUT, &TS0, "x\n");
        ck_assert_int_eq(sink->ops->sync(sink, &error), 0);
        ck_assert_int_eq(sink->ops->flush(sink, &error), 0);
        ck_assert_ptr_null(error);
        ck_assert_str_eq(sink->ops->name, "k8s-file");
}
END_TEST

START_TEST(test_new_without_fd_opens_path_itself)
{
        g_autofree char *path = tmp_path("ctr.log");
        K8sFileConfig config = { .path = path, .fd = -1 };
        g_autoptr(LogSink) sink = NULL;
        g_autoptr(GError) error = NULL;

        ck_assert_int_eq(k8s_file_sink_new(&config, &sink, &error), 0);
        write_ok(sink, CTRMON_STREAM_STDOUT, &TS0, "x\n");
        assert_file_eq(path, REC(TS0_UTC, "stdout", "F", "x\n"));
}
END_TEST

static Suite *k8s_file_suite(void)
{
        Suite *s = suite_create("log-k8s-file");
        TCase *tc;

        tc = tcase_create("timestamp");
        tcase_add_checked_fixture(tc, setup, teardown);
        tcase_add_test(tc, test_timestamp_utc_is_numeric_offset_never_z);
        tcase_add_test(tc, test_timestamp_est5edt_minus_0500_and_dst_minus_0400);
        tcase_add_test(tc, test_timestamp_kolkata_plus_0530);
        tcase_add_test(tc, test_timestamp_nanoseconds_zero_padded_to_9_digits);
        tcase_add_test(tc, test_timestamp_rejects_out_of_range_nanoseconds);
        suite_add_tcase(s, tc);

        tc = tcase_create("format");
        tcase_add_checked_fixture(tc, setup, teardown);
        tcase_add_test(tc, test_two_lines_in_one_chunk_are_two_F_records_with_same_timestamp);
        tcase_add_test(tc, test_fragment_is_P_record_with_added_newline);
        tcase_add_test(tc, test_fragment_continuation_is_new_record_with_new_timestamp);
        tcase_add_test(tc, test_bare_newline_is_F_record_with_empty_text);
        tcase_add_test(tc, test_carriage_return_preserved);
        tcase_add_test(tc, test_stderr_stream_name_and_43_byte_header);
        tcase_add_test(tc, test_three_lines_and_fragment_in_one_chunk);
        tcase_add_test(tc, test_empty_chunk_writes_nothing);
        tcase_add_test(tc, test_chunk_with_thousands_of_lines_spans_several_writev_batches);
        tcase_add_test(tc, test_mixed_short_and_long_lines_past_the_staging_buffer_keep_order);
        suite_add_tcase(s, tc);

        tc = tcase_create("limits");
        tcase_add_checked_fixture(tc, setup, teardown);
        tcase_add_test(tc, test_size_max_200_truncation_leaves_only_line_10);
        tcase_add_test(tc, test_size_max_200_truncation_within_one_chunk);
        tcase_add_test(tc, test_global_max_300_overshoots_by_one_record_to_306_bytes);
        tcase_add_test(tc, test_global_max_drops_rest_of_chunk);
        tcase_add_test(tc, test_record_larger_than_size_max_still_written_into_fresh_file);
        tcase_add_test(tc, test_initial_size_counts_existing_file_content);
        tcase_add_test(tc, test_initial_size_counts_towards_global_max);
        suite_add_tcase(s, tc);

        tc = tcase_create("reopen");
        tcase_add_checked_fixture(tc, setup, teardown);
        tcase_add_test(tc, test_reopen_without_rotate_truncates_and_keeps_writing);
        tcase_add_test(tc, test_reopen_after_external_rename_writes_new_file);
        tcase_add_test(tc, test_truncate_ignores_planted_tmp_symlink);
        tcase_add_test(tc, test_truncate_with_stale_tmp_file);
        tcase_add_test(tc, test_rotate_max_files_1_keeps_exactly_one_backup_not_conmons_two);
        tcase_add_test(tc, test_rotate_max_files_3_shifts_backups);
        tcase_add_test(tc, test_rotate_via_reopen_moves_file_to_dot_1);
        tcase_add_test(tc, test_rotate_refuses_symlink_and_file_keeps_growing);
        tcase_add_test(tc, test_rotate_skipped_while_another_process_holds_lock);
        tcase_add_test(tc, test_rotate_recreates_missing_log_file);
        tcase_add_test(tc, test_rotate_missing_file_outside_allowlist_refused);
        tcase_add_test(tc, test_rotate_missing_file_inside_allowlist_recreated);
        tcase_add_test(tc, test_rotate_missing_file_with_dotdot_refused);
        suite_add_tcase(s, tc);

        tc = tcase_create("failures");
        tcase_add_checked_fixture(tc, setup, teardown);
        tcase_add_test(tc, test_dev_full_write_returns_enospc_and_counts_dropped);
        tcase_add_test(tc, test_short_write_then_failure_accounts_every_byte);
        tcase_add_test(tc, test_invalid_stream_rejected);
        tcase_add_test(tc, test_sync_and_flush_succeed_on_regular_file);
        tcase_add_test(tc, test_new_without_fd_opens_path_itself);
        suite_add_tcase(s, tc);

        return s;
}

int main(void)
{
        SRunner *sr = srunner_create(k8s_file_suite());
        int failed;

        srunner_run_all(sr, CK_NORMAL);
        failed = srunner_ntests_failed(sr);
        srunner_free(sr);
        return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
