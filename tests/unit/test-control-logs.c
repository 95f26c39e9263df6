/* Proves the k8s-file reading under "logs": records split into their
 * fields, P fragments joined with their F into one line per stream even
 * when the records interleave and arrive cut at any byte, what a line
 * still being written looks like, and that junk is skipped. */
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
        suite_add_tcase(s, tc);
        SRunner *sr = srunner_create(s);
        srunner_run_all(sr, CK_NORMAL);
        int failed = srunner_ntests_failed(sr);
        srunner_free(sr);
        return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
