/* Proves the exit and oom files (names, bytes, modes) and the exit command's
 * contract: args in order, delay, /dev/null stdio, no inherited fds. */
#include "exit-report.h"

#include <check.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static char *tmpdir;

static void setup(void)
{
        umask(022);
        tmpdir = g_dir_make_tmp("ctrmon-exit-XXXXXX", NULL);
        ck_assert_ptr_nonnull(tmpdir);
}

static void teardown(void)
{
        g_autofree char *cmd = g_strdup_printf("rm -rf '%s'", tmpdir);
        ck_assert_int_eq(system(cmd), 0);
        g_free(tmpdir);
}

static char *read_file(const char *dir, const char *name)
{
        g_autofree char *path = g_build_filename(dir, name, NULL);
        char *content = NULL;
        if (!g_file_get_contents(path, &content, NULL, NULL))
                return NULL;
        return content;
}

static unsigned mode_of(const char *dir, const char *name)
{
        g_autofree char *path = g_build_filename(dir, name, NULL);
        struct stat st;
        ck_assert_int_eq(stat(path, &st), 0);
        return st.st_mode & 07777;
}

START_TEST(test_exit_files_hold_status_without_newline_mode_0644)
{
        g_autofree char *exits = g_build_filename(tmpdir, "exits", NULL);
        g_autofree char *persist = g_build_filename(tmpdir, "persist", NULL);
        ck_assert_int_eq(g_mkdir_with_parents(exits, 0755), 0);
        ck_assert_int_eq(g_mkdir_with_parents(persist, 0755), 0);
        ck_assert_int_eq(exit_report_write_status(exits, persist, "abc123", 137, NULL), 0);
        g_autofree char *a = read_file(exits, "abc123");
        g_autofree char *b = read_file(persist, "exit");
        ck_assert_str_eq(a, "137");
        ck_assert_str_eq(b, "137");
        ck_assert_uint_eq(mode_of(exits, "abc123"), 0644);
        ck_assert_uint_eq(mode_of(persist, "exit"), 0644);
}
END_TEST

START_TEST(test_timeout_status_is_written_as_minus_one)
{
        ck_assert_int_eq(exit_report_write_status(tmpdir, NULL, "c1", -1, NULL), 0);
        g_autofree char *a = read_file(tmpdir, "c1");
        ck_assert_str_eq(a, "-1");
}
END_TEST

START_TEST(test_exit_file_in_missing_dir_fails_with_message)
{
        GError *error = NULL;
        g_autofree char *missing = g_build_filename(tmpdir, "nope", NULL);
        ck_assert_int_lt(exit_report_write_status(missing, NULL, "c1", 0, &error), 0);
        ck_assert(strstr(error->message, "Failed to write 0 to the exit file") != NULL);
        g_error_free(error);
}
END_TEST

START_TEST(test_oom_files_are_empty_mode_0644_in_both_dirs)
{
        g_autofree char *persist = g_build_filename(tmpdir, "p", NULL);
        g_autofree char *bundle = g_build_filename(tmpdir, "b", NULL);
        g_mkdir_with_parents(persist, 0755);
        g_mkdir_with_parents(bundle, 0755);
        ck_assert_int_eq(exit_report_write_oom(persist, bundle, NULL), 0);
        g_autofree char *a = read_file(persist, "oom");
        g_autofree char *b = read_file(bundle, "oom");
        ck_assert_str_eq(a, "");
        ck_assert_str_eq(b, "");
        ck_assert_uint_eq(mode_of(persist, "oom"), 0644);
}
END_TEST

/* Runs the exit command in a child process (it closes fds and waits for all
 * children, which must not disturb the test runner). */
static int run_command_in_child(const ExitCommand *cmd)
{
        pid_t pid = fork();
        if (pid == 0)
                _exit(exit_report_run_command(cmd, NULL) & 0xff);
        int wstatus;
        waitpid(pid, &wstatus, 0);
        return WEXITSTATUS(wstatus);
}

START_TEST(test_exit_command_gets_args_in_order_including_empty_one)
{
        g_autofree char *out = g_build_filename(tmpdir, "args", NULL);
        g_autofree char *script = g_strdup_printf("printf '[%%s]' \"$@\" > '%s'", out);
        char *args[] = { "-c", script, "sh", "one", "", "three", NULL };
        ExitCommand cmd = { .command = "/bin/sh", .args = args };
        ck_assert_int_eq(run_command_in_child(&cmd), 0);
        g_autofree char *content = read_file(tmpdir, "args");
        ck_assert_str_eq(content, "[one][][three]");
}
END_TEST

START_TEST(test_exit_command_sees_only_stdio_and_devnull)
{
        int extra = open("/dev/null", O_RDONLY); /* not CLOEXEC on purpose */
        ck_assert_int_ge(extra, 3);
        g_autofree char *out = g_build_filename(tmpdir, "fds", NULL);
        g_autofree char *script = g_strdup_printf(
                "ls /proc/$$/fd | sort -n | tr '\\n' ' ' > '%s'; readlink /proc/$$/fd/0 >> '%s'", out, out);
        char *args[] = { "-c", script, NULL };
        ExitCommand cmd = { .command = "/bin/sh", .args = args };
        ck_assert_int_eq(run_command_in_child(&cmd), 0);
        g_autofree char *content = read_file(tmpdir, "fds");
        /* The shell's own descriptors: stdio only, and stdin is /dev/null. */
        ck_assert_str_eq(content, "0 1 2 /dev/null\n");
}
END_TEST

START_TEST(test_exit_command_waits_for_delay)
{
        char *args[] = { "-c", "exit 0", NULL };
        ExitCommand cmd = { .command = "/bin/sh", .args = args, .delay_seconds = 1 };
        gint64 start = g_get_monotonic_time();
        ck_assert_int_eq(run_command_in_child(&cmd), 0);
        ck_assert_int_ge(g_get_monotonic_time() - start, 1000000);
}
END_TEST

START_TEST(test_exit_command_status_is_returned_not_imposed)
{
        char *args[] = { "-c", "exit 9", NULL };
        ExitCommand cmd = { .command = "/bin/sh", .args = args };
        ck_assert_int_eq(run_command_in_child(&cmd), 9);
}
END_TEST

START_TEST(test_missing_exit_command_exits_127)
{
        ExitCommand cmd = { .command = "/nonexistent/cleanup" };
        ck_assert_int_eq(run_command_in_child(&cmd), 127);
}
END_TEST

int main(void)
{
        Suite *s = suite_create("exit-report");
        TCase *tc = tcase_create("core");
        tcase_add_checked_fixture(tc, setup, teardown);
        tcase_add_test(tc, test_exit_files_hold_status_without_newline_mode_0644);
        tcase_add_test(tc, test_timeout_status_is_written_as_minus_one);
        tcase_add_test(tc, test_exit_file_in_missing_dir_fails_with_message);
        tcase_add_test(tc, test_oom_files_are_empty_mode_0644_in_both_dirs);
        tcase_add_test(tc, test_exit_command_gets_args_in_order_including_empty_one);
        tcase_add_test(tc, test_exit_command_sees_only_stdio_and_devnull);
        tcase_add_test(tc, test_exit_command_waits_for_delay);
        tcase_add_test(tc, test_exit_command_status_is_returned_not_imposed);
        tcase_add_test(tc, test_missing_exit_command_exits_127);
        suite_add_tcase(s, tc);
        SRunner *sr = srunner_create(s);
        srunner_run_all(sr, CK_NORMAL);
        int failed = srunner_ntests_failed(sr);
        srunner_free(sr);
        return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
