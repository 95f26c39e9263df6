/* Proves the sync-pipe bytes are conmon's, byte for byte (spec §3.2): keys,
 * spacing, omitted empty message, escaping, EPIPE tolerance, env parsing;
 * and that a line on a SOCK_SEQPACKET socketpair (podman's) is one record a
 * 4096-byte read gets whole. */
#include "sync-pipe.h"

#include <check.h>
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

START_TEST(test_key_is_data_with_api_version_else_exit_code_for_exec_else_pid)
{
        ck_assert_str_eq(sync_pipe_key(true, false), "data");
        ck_assert_str_eq(sync_pipe_key(true, true), "data");
        ck_assert_str_eq(sync_pipe_key(false, true), "exit_code");
        ck_assert_str_eq(sync_pipe_key(false, false), "pid");
}
END_TEST

START_TEST(test_format_pid_line_has_one_space_and_newline)
{
        g_autofree char *line = sync_pipe_format("data", 4242, NULL);
        ck_assert_str_eq(line, "{\"data\": 4242}\n");
        g_autofree char *empty = sync_pipe_format("pid", -1, "");
        ck_assert_str_eq(empty, "{\"pid\": -1}\n");
}
END_TEST

START_TEST(test_format_with_message_matches_conmon_timeout_line)
{
        g_autofree char *line = sync_pipe_format("data", -1, "command timed out");
        ck_assert_str_eq(line, "{\"data\": -1, \"message\": \"command timed out\"}\n");
        g_autofree char *legacy = sync_pipe_format("exit_code", -1, "command timed out");
        ck_assert_str_eq(legacy, "{\"exit_code\": -1, \"message\": \"command timed out\"}\n");
}
END_TEST

START_TEST(test_escape_covers_every_special_byte)
{
        g_autofree char *e = sync_pipe_escape("a\\b\"c/d\ne\rf\tg\bh\fi\x01j\x1fk\x7fl");
        ck_assert_str_eq(e, "a\\\\b\\\"c\\/d\\ne\\rf\\tg\\bh\\fi\\u0001j\\u001fk\\u007fl");
}
END_TEST

START_TEST(test_escape_copies_high_bytes_raw)
{
        g_autofree char *e = sync_pipe_escape("caf\xc3\xa9 \xff");
        ck_assert_str_eq(e, "caf\xc3\xa9 \xff");
}
END_TEST

START_TEST(test_runc_error_line_is_escaped_like_conmon)
{
        const char *runc = "time=\"2026-11-22T23:13:55Z\" level=error msg=\"runc create failed: "
                           "unable to start container process: exec: \\\"/nope\\\": stat /nope: no such file\"\n";
        g_autofree char *line = sync_pipe_format("data", -1, runc);
        ck_assert_str_eq(line,
                         "{\"data\": -1, \"message\": \"time=\\\"2026-11-22T23:13:55Z\\\" level=error "
                         "msg=\\\"runc create failed: unable to start container process: exec: "
                         "\\\\\\\"\\/nope\\\\\\\": stat \\/nope: no such file\\\"\\n\"}\n");
}
END_TEST

START_TEST(test_send_writes_exact_bytes_to_the_pipe)
{
        int fds[2];
        ck_assert_int_eq(pipe(fds), 0);
        SyncPipe p = { .fd = fds[1], .key = "data" };
        ck_assert_int_eq(sync_pipe_send(&p, 77, NULL, NULL), 0);
        ck_assert_int_eq(sync_pipe_send(&p, 0, "ok/fine", NULL), 0);
        close(fds[1]);
        char buf[256] = { 0 };
        ssize_t n = read(fds[0], buf, sizeof buf - 1);
        ck_assert_int_gt(n, 0);
        ck_assert_str_eq(buf, "{\"data\": 77}\n{\"data\": 0, \"message\": \"ok\\/fine\"}\n");
        close(fds[0]);
}
END_TEST

START_TEST(test_send_after_reader_left_closes_pipe_and_skips_silently)
{
        signal(SIGPIPE, SIG_IGN);
        int fds[2];
        ck_assert_int_eq(pipe(fds), 0);
        close(fds[0]);
        SyncPipe p = { .fd = fds[1], .key = "pid" };
        GError *error = NULL;
        ck_assert_int_eq(sync_pipe_send(&p, 1, NULL, &error), 0);
        ck_assert_ptr_null(error);
        ck_assert_int_eq(p.fd, -1);
        ck_assert_int_eq(sync_pipe_send(&p, 2, NULL, &error), 0);
}
END_TEST

START_TEST(test_fd_from_env_parses_and_sets_cloexec)
{
        int fds[2];
        ck_assert_int_eq(pipe(fds), 0);
        char value[16];
        g_snprintf(value, sizeof value, "%d", fds[1]);
        setenv("_OCI_SYNCPIPE", value, 1);
        int fd = -2;
        ck_assert_int_eq(sync_pipe_fd_from_env("_OCI_SYNCPIPE", &fd, NULL), 0);
        ck_assert_int_eq(fd, fds[1]);
        ck_assert(fcntl(fd, F_GETFD) & FD_CLOEXEC);
}
END_TEST

START_TEST(test_fd_from_env_rejects_garbage_with_conmon_message)
{
        setenv("_OCI_SYNCPIPE", "12abc", 1);
        int fd = 99;
        GError *error = NULL;
        ck_assert_int_lt(sync_pipe_fd_from_env("_OCI_SYNCPIPE", &fd, &error), 0);
        ck_assert_str_eq(error->message, "unable to parse _OCI_SYNCPIPE");
        ck_assert_int_eq(fd, 99); /* out-parameter untouched on failure */
        g_error_free(error);
}
END_TEST

START_TEST(test_fd_from_env_unset_or_nonpositive_means_absent)
{
        unsetenv("_OCI_STARTPIPE");
        int fd = 5;
        ck_assert_int_eq(sync_pipe_fd_from_env("_OCI_STARTPIPE", &fd, NULL), 0);
        ck_assert_int_eq(fd, -1);
        setenv("_OCI_STARTPIPE", "0", 1);
        fd = 5;
        ck_assert_int_eq(sync_pipe_fd_from_env("_OCI_STARTPIPE", &fd, NULL), 0);
        ck_assert_int_eq(fd, -1);
}
END_TEST

START_TEST(test_fd_from_env_closed_fd_cannot_be_made_cloexec)
{
        setenv("_OCI_STARTPIPE", "987", 1);
        int fd = -2;
        GError *error = NULL;
        ck_assert_int_lt(sync_pipe_fd_from_env("_OCI_STARTPIPE", &fd, &error), 0);
        ck_assert_str_eq(error->message, "unable to make _OCI_STARTPIPE CLOEXEC");
        g_error_free(error);
}
END_TEST

START_TEST(test_bounded_format_leaves_short_lines_alone)
{
        g_autofree char *plain = sync_pipe_format("data", -1, "runc: exit status 1");
        g_autofree char *bounded = sync_pipe_format_bounded("data", -1, "runc: exit status 1", 4096);
        g_autofree char *long_msg = g_strnfill(9000, 'x');
        g_autofree char *unbounded = sync_pipe_format_bounded("data", -1, long_msg, 0);
        ck_assert_str_eq(bounded, plain);
        ck_assert_uint_eq(strlen(unbounded), 25 + 9000 + 3);
}
END_TEST

START_TEST(test_bounded_format_cuts_message_to_exactly_max)
{
        g_autofree char *msg = g_strnfill(10000, 'x');
        g_autofree char *line = sync_pipe_format_bounded("data", -1, msg, 4096);
        ck_assert_uint_eq(strlen(line), 4096);
        ck_assert(g_str_has_prefix(line, "{\"data\": -1, \"message\": \"xxx"));
        ck_assert(g_str_has_suffix(line, "xxx\"}\n"));
}
END_TEST

START_TEST(test_bounded_format_never_splits_an_escape_or_a_utf8_character)
{
        /* "\n" escapes to two bytes, 0x01 to six, "é" is two bytes raw */
        const char *units[] = { "\n", "\x01", "\xc3\xa9", "a\xc3\xa9" };
        for (size_t u = 0; u < G_N_ELEMENTS(units); u++) {
                GString *msg = g_string_new(NULL);
                while (msg->len < 9000)
                        g_string_append(msg, units[u]);
                for (size_t max = 4090; max <= 4096; max++) {
                        g_autofree char *line = sync_pipe_format_bounded("data", -1, msg->str, max);
                        ck_assert_uint_le(strlen(line), max);
                        ck_assert_uint_ge(strlen(line), max - 6);
                        ck_assert(g_str_has_suffix(line, "\"}\n"));
                        ck_assert(g_utf8_validate(line, -1, NULL));
                        /* the body is whole escapes: no lone backslash before the quote */
                        size_t len = strlen(line), bs = 0;
                        for (size_t i = len - 4; i > 0 && line[i] == '\\'; i--)
                                bs++;
                        ck_assert_uint_eq(bs % 2, 0);
                        if (u == 1)
                                ck_assert_uint_eq((len - 25 - 3) % 6, 0);
                }
                g_string_free(msg, TRUE);
        }
}
END_TEST

START_TEST(test_send_on_seqpacket_is_one_record_a_4096_byte_read_gets_whole)
{
        int sv[2];
        ck_assert_int_eq(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv), 0);
        SyncPipe p = { .fd = sv[1], .key = "data" };
        g_autofree char *msg = g_strnfill(8191, 'e');
        ck_assert_int_eq(sync_pipe_send(&p, -1, msg, NULL), 0);
        ck_assert_int_eq(sync_pipe_send(&p, 4242, NULL, NULL), 0);
        close(sv[1]);
        /* Go's bufio.Reader: read(2) into a 4096-byte buffer */
        char buf[4096];
        ssize_t n = recv(sv[0], buf, sizeof buf, MSG_TRUNC);
        ck_assert_int_eq(n, 4096); /* MSG_TRUNC: the record's real length */
        ck_assert(memcmp(buf + n - 3, "\"}\n", 3) == 0);
        n = recv(sv[0], buf, sizeof buf, 0);
        ck_assert_int_eq(n, (ssize_t) strlen("{\"data\": 4242}\n"));
        ck_assert(memcmp(buf, "{\"data\": 4242}\n", (size_t) n) == 0);
        ck_assert_int_eq(recv(sv[0], buf, sizeof buf, 0), 0); /* EOF */
        close(sv[0]);
}
END_TEST

START_TEST(test_send_on_a_pipe_or_stream_socket_writes_the_whole_line)
{
        int fds[2];
        ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds), 0);
        SyncPipe p = { .fd = fds[1], .key = "pid" };
        g_autofree char *msg = g_strnfill(6000, 'e');
        ck_assert_int_eq(sync_pipe_send(&p, -1, msg, NULL), 0);
        close(fds[1]);
        GString *got = g_string_new(NULL);
        char buf[4096];
        ssize_t n;
        while ((n = read(fds[0], buf, sizeof buf)) > 0)
                g_string_append_len(got, buf, n);
        ck_assert_uint_eq(got->len, strlen("{\"pid\": -1, \"message\": \"\"}\n") + 6000);
        g_string_free(got, TRUE);
        close(fds[0]);
}
END_TEST

int main(void)
{
        Suite *s = suite_create("sync-pipe");
        TCase *tc = tcase_create("core");
        tcase_add_test(tc, test_key_is_data_with_api_version_else_exit_code_for_exec_else_pid);
        tcase_add_test(tc, test_format_pid_line_has_one_space_and_newline);
        tcase_add_test(tc, test_format_with_message_matches_conmon_timeout_line);
        tcase_add_test(tc, test_escape_covers_every_special_byte);
        tcase_add_test(tc, test_escape_copies_high_bytes_raw);
        tcase_add_test(tc, test_runc_error_line_is_escaped_like_conmon);
        tcase_add_test(tc, test_send_writes_exact_bytes_to_the_pipe);
        tcase_add_test(tc, test_send_after_reader_left_closes_pipe_and_skips_silently);
        tcase_add_test(tc, test_bounded_format_leaves_short_lines_alone);
        tcase_add_test(tc, test_bounded_format_cuts_message_to_exactly_max);
        tcase_add_test(tc, test_bounded_format_never_splits_an_escape_or_a_utf8_character);
        tcase_add_test(tc, test_send_on_seqpacket_is_one_record_a_4096_byte_read_gets_whole);
        tcase_add_test(tc, test_send_on_a_pipe_or_stream_socket_writes_the_whole_line);
        tcase_add_test(tc, test_fd_from_env_parses_and_sets_cloexec);
        tcase_add_test(tc, test_fd_from_env_rejects_garbage_with_conmon_message);
        tcase_add_test(tc, test_fd_from_env_unset_or_nonpositive_means_absent);
        tcase_add_test(tc, test_fd_from_env_closed_fd_cannot_be_made_cloexec);
        suite_add_tcase(s, tc);
        SRunner *sr = srunner_create(s);
        srunner_run_all(sr, CK_NORMAL);
        int failed = srunner_ntests_failed(sr);
        srunner_free(sr);
        return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
