/* Proves the sync-pipe bytes are conmon's, byte for byte (spec §3.2): keys,
 * spacing, omitted empty message, escaping, EPIPE tolerance, env parsing. */
#include "sync-pipe.h"

#include <check.h>
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
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
