/* Unit tests for runtime_argv_build(): whole vectors compared word for word
 * against the orders conmon 2.2.1 uses (spec §2.4), and every conditional
 * word switched on and off on its own. */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "runtime-shim.h"
#include "ctrmon/error.h"

#include <limits.h>

#define RT "/usr/bin/runc"
#define BUNDLE "/run/b"
#define PIDFILE "/run/b/pidfile"
#define CID "c0ffee"

/* Compare the whole vector, including its length, and say where it differs. */
static void assert_argv_eq(char **got, const char *const *want)
{
        g_autofree char *got_s = NULL;
        g_autofree char *want_s = NULL;
        size_t i;

        ck_assert_ptr_nonnull(got);
        got_s = g_strjoinv("|", got);
        want_s = g_strjoinv("|", (char **) want);
        for (i = 0; want[i] && got[i]; i++)
                ck_assert_msg(strcmp(got[i], want[i]) == 0,
                              "word %zu: got \"%s\", want \"%s\"\n got:  %s\n want: %s", i,
                              got[i], want[i], got_s, want_s);
        ck_assert_msg(want[i] == NULL && got[i] == NULL,
                      "length differs at word %zu\n got:  %s\n want: %s", i, got_s, want_s);
}

static RuntimeCall call_create(void)
{
        return (RuntimeCall){
                .action = RUNTIME_ACTION_CREATE,
                .runtime_path = RT,
                .cid = CID,
                .bundle = BUNDLE,
                .pid_file = PIDFILE,
        };
}

static RuntimeCall call_restore(void)
{
        RuntimeCall c = call_create();
        c.action = RUNTIME_ACTION_RESTORE;
        c.restore_path = "/var/ckpt";
        return c;
}

static RuntimeCall call_exec(void)
{
        return (RuntimeCall){
                .action = RUNTIME_ACTION_EXEC,
                .runtime_path = RT,
                .cid = CID,
                .pid_file = "/run/e/pid",
                .exec_process_spec = "/run/e/process.json",
        };
}

static const char *const args3[] = { "--root=/run/runc", "--log", "/tmp/l", NULL };
static const char *const opts2[] = { "--keep", "--runtime-arg=x y", NULL };

/* --- create ---------------------------------------------------------------- */

START_TEST(test_create_minimal_exact)
{
        RuntimeCall c = call_create();
        g_auto(GStrv) argv = runtime_argv_build(&c);
        const char *const want[] = { RT, "create", "--bundle", BUNDLE, "--pid-file", PIDFILE,
                                     CID, NULL };
        assert_argv_eq(argv, want);
}
END_TEST

START_TEST(test_create_full_exact_order)
{
        RuntimeCall c = call_create();
        c.systemd_cgroup = true;
        c.no_pivot = true;
        c.no_new_keyring = true;
        c.runtime_args = args3;
        c.runtime_opts = opts2;
        c.console_socket = "/tmp/cs.sock";
        g_auto(GStrv) argv = runtime_argv_build(&c);
        const char *const want[] = { RT,
                                     "--systemd-cgroup",
                                     "--root=/run/runc",
                                     "--log",
                                     "/tmp/l",
                                     "create",
                                     "--bundle",
                                     BUNDLE,
                                     "--pid-file",
                                     PIDFILE,
                                     "--no-pivot",
                                     "--no-new-keyring",
                                     "--keep",
                                     "--runtime-arg=x y",
                                     "--console-socket",
                                     "/tmp/cs.sock",
                                     CID,
                                     NULL };
        assert_argv_eq(argv, want);
}
END_TEST

START_TEST(test_create_systemd_cgroup_only)
{
        RuntimeCall c = call_create();
        c.systemd_cgroup = true;
        g_auto(GStrv) argv = runtime_argv_build(&c);
        const char *const want[] = { RT,          "--systemd-cgroup", "create", "--bundle",
                                     BUNDLE,      "--pid-file",       PIDFILE,  CID,
                                     NULL };
        assert_argv_eq(argv, want);
}
END_TEST

START_TEST(test_create_no_pivot_only)
{
        RuntimeCall c = call_create();
        c.no_pivot = true;
        g_auto(GStrv) argv = runtime_argv_build(&c);
        const char *const want[] = { RT,      "create",     "--bundle", BUNDLE, "--pid-file",
                                     PIDFILE, "--no-pivot", CID,        NULL };
        assert_argv_eq(argv, want);
}
END_TEST

START_TEST(test_create_no_new_keyring_only)
{
        RuntimeCall c = call_create();
        c.no_new_keyring = true;
        g_auto(GStrv) argv = runtime_argv_build(&c);
        const char *const want[] = { RT,      "create",           "--bundle", BUNDLE, "--pid-file",
                                     PIDFILE, "--no-new-keyring", CID,        NULL };
        assert_argv_eq(argv, want);
}
END_TEST

START_TEST(test_create_console_socket_only)
{
        RuntimeCall c = call_create();
        c.console_socket = "/tmp/cs";
        g_auto(GStrv) argv = runtime_argv_build(&c);
        const char *const want[] = { RT,      "create",           "--bundle", BUNDLE, "--pid-file",
                                     PIDFILE, "--console-socket", "/tmp/cs",  CID,    NULL };
        assert_argv_eq(argv, want);
}
END_TEST

START_TEST(test_create_runtime_args_before_subcommand)
{
        RuntimeCall c = call_create();
        c.runtime_args = args3;
        g_auto(GStrv) argv = runtime_argv_build(&c);
        const char *const want[] = { RT,       "--root=/run/runc", "--log",      "/tmp/l",
                                     "create", "--bundle",         BUNDLE,       "--pid-file",
                                     PIDFILE,  CID,                NULL };
        assert_argv_eq(argv, want);
}
END_TEST

START_TEST(test_create_runtime_opts_before_console_socket)
{
        RuntimeCall c = call_create();
        c.runtime_opts = opts2;
        c.no_new_keyring = true;
        c.console_socket = "/tmp/cs";
        g_auto(GStrv) argv = runtime_argv_build(&c);
        const char *const want[] = { RT,
                                     "create",
                                     "--bundle",
                                     BUNDLE,
                                     "--pid-file",
                                     PIDFILE,
                                     "--no-new-keyring",
                                     "--keep",
                                     "--runtime-arg=x y",
                                     "--console-socket",
                                     "/tmp/cs",
                                     CID,
                                     NULL };
        assert_argv_eq(argv, want);
}
END_TEST

START_TEST(test_create_empty_string_args_preserved)
{
        const char *const args[] = { "", "--debug", NULL };
        const char *const opts[] = { "--x", "", NULL };
        RuntimeCall c = call_create();
        c.runtime_args = args;
        c.runtime_opts = opts;
        g_auto(GStrv) argv = runtime_argv_build(&c);
        const char *const want[] = { RT,      "",    "--debug", "create", "--bundle", BUNDLE,
                                     "--pid-file", PIDFILE, "--x", "", CID, NULL };
        assert_argv_eq(argv, want);
}
END_TEST

START_TEST(test_create_empty_arrays_are_none)
{
        const char *const empty[] = { NULL };
        RuntimeCall c = call_create();
        c.runtime_args = empty;
        c.runtime_opts = empty;
        g_auto(GStrv) argv = runtime_argv_build(&c);
        const char *const want[] = { RT, "create", "--bundle", BUNDLE, "--pid-file", PIDFILE,
                                     CID, NULL };
        assert_argv_eq(argv, want);
}
END_TEST

/* --- restore --------------------------------------------------------------- */

START_TEST(test_restore_minimal_exact)
{
        RuntimeCall c = call_restore();
        g_auto(GStrv) argv = runtime_argv_build(&c);
        const char *const want[] = { RT,           "restore",   "--bundle",     BUNDLE,
                                     "--pid-file", PIDFILE,     "--detach",     "--image-path",
                                     "/var/ckpt",  "--work-path", BUNDLE,       CID,
                                     NULL };
        assert_argv_eq(argv, want);
}
END_TEST

START_TEST(test_restore_full_exact_order)
{
        RuntimeCall c = call_restore();
        c.systemd_cgroup = true;
        c.no_pivot = true;
        c.no_new_keyring = true;
        c.runtime_args = args3;
        c.runtime_opts = opts2;
        c.console_socket = "/tmp/cs.sock";
        g_auto(GStrv) argv = runtime_argv_build(&c);
        const char *const want[] = { RT,
                                     "--systemd-cgroup",
                                     "--root=/run/runc",
                                     "--log",
                                     "/tmp/l",
                                     "restore",
                                     "--bundle",
                                     BUNDLE,
                                     "--pid-file",
                                     PIDFILE,
                                     "--no-pivot",
                                     "--no-new-keyring",
                                     "--detach",
                                     "--image-path",
                                     "/var/ckpt",
                                     "--work-path",
                                     BUNDLE,
                                     "--keep",
                                     "--runtime-arg=x y",
                                     "--console-socket",
                                     "/tmp/cs.sock",
                                     CID,
                                     NULL };
        assert_argv_eq(argv, want);
}
END_TEST

START_TEST(test_restore_no_pivot_before_detach)
{
        RuntimeCall c = call_restore();
        c.no_pivot = true;
        g_auto(GStrv) argv = runtime_argv_build(&c);
        const char *const want[] = { RT,         "restore",      "--bundle",  BUNDLE,
                                     "--pid-file", PIDFILE,      "--no-pivot", "--detach",
                                     "--image-path", "/var/ckpt", "--work-path", BUNDLE,
                                     CID,        NULL };
        assert_argv_eq(argv, want);
}
END_TEST

START_TEST(test_restore_systemd_cgroup_only)
{
        RuntimeCall c = call_restore();
        c.systemd_cgroup = true;
        g_auto(GStrv) argv = runtime_argv_build(&c);
        const char *const want[] = { RT,           "--systemd-cgroup", "restore",  "--bundle",
                                     BUNDLE,       "--pid-file",       PIDFILE,    "--detach",
                                     "--image-path", "/var/ckpt",      "--work-path", BUNDLE,
                                     CID,          NULL };
        assert_argv_eq(argv, want);
}
END_TEST

START_TEST(test_restore_work_path_is_bundle)
{
        RuntimeCall c = call_restore();
        c.bundle = "/other/bundle";
        g_auto(GStrv) argv = runtime_argv_build(&c);
        const char *const want[] = { RT,           "restore",        "--bundle",    "/other/bundle",
                                     "--pid-file", PIDFILE,          "--detach",    "--image-path",
                                     "/var/ckpt",  "--work-path",    "/other/bundle", CID,
                                     NULL };
        assert_argv_eq(argv, want);
}
END_TEST

/* --- exec ------------------------------------------------------------------ */

START_TEST(test_exec_minimal_exact)
{
        RuntimeCall c = call_exec();
        g_auto(GStrv) argv = runtime_argv_build(&c);
        const char *const want[] = { RT,          "exec",   "--pid-file", "/run/e/pid",
                                     "--process", "/run/e/process.json",  "--detach",
                                     CID,         NULL };
        assert_argv_eq(argv, want);
}
END_TEST

START_TEST(test_exec_full_exact_order)
{
        RuntimeCall c = call_exec();
        c.runtime_args = args3;
        c.runtime_opts = opts2;
        c.console_socket = "/tmp/cs.sock";
        g_auto(GStrv) argv = runtime_argv_build(&c);
        const char *const want[] = { RT,
                                     "--root=/run/runc",
                                     "--log",
                                     "/tmp/l",
                                     "exec",
                                     "--pid-file",
                                     "/run/e/pid",
                                     "--process",
                                     "/run/e/process.json",
                                     "--detach",
                                     "--keep",
                                     "--runtime-arg=x y",
                                     "--console-socket",
                                     "/tmp/cs.sock",
                                     CID,
                                     NULL };
        assert_argv_eq(argv, want);
}
END_TEST

START_TEST(test_exec_ignores_create_only_flags)
{
        RuntimeCall c = call_exec();
        c.systemd_cgroup = true;
        c.no_pivot = true;
        c.no_new_keyring = true;
        c.bundle = BUNDLE; /* exec does not name the bundle either */
        g_auto(GStrv) argv = runtime_argv_build(&c);
        const char *const want[] = { RT,          "exec",   "--pid-file", "/run/e/pid",
                                     "--process", "/run/e/process.json",  "--detach",
                                     CID,         NULL };
        assert_argv_eq(argv, want);
}
END_TEST

START_TEST(test_exec_console_socket_only)
{
        RuntimeCall c = call_exec();
        c.console_socket = "/tmp/cs";
        g_auto(GStrv) argv = runtime_argv_build(&c);
        const char *const want[] = { RT,
                                     "exec",
                                     "--pid-file",
                                     "/run/e/pid",
                                     "--process",
                                     "/run/e/process.json",
                                     "--detach",
                                     "--console-socket",
                                     "/tmp/cs",
                                     CID,
                                     NULL };
        assert_argv_eq(argv, want);
}
END_TEST

/* --- purity ---------------------------------------------------------------- */

START_TEST(test_build_copies_strings)
{
        char args_buf[] = "--debug";
        const char *args[] = { args_buf, NULL };
        RuntimeCall c = call_create();
        c.runtime_args = args;
        g_auto(GStrv) argv = runtime_argv_build(&c);

        ck_assert_ptr_ne(argv[1], args_buf);
        args_buf[0] = 'X';
        ck_assert_str_eq(argv[1], "--debug");
        ck_assert_ptr_ne(argv[0], c.runtime_path);
}
END_TEST

START_TEST(test_build_is_repeatable)
{
        RuntimeCall c = call_restore();
        c.runtime_args = args3;
        g_auto(GStrv) a = runtime_argv_build(&c);
        g_auto(GStrv) b = runtime_argv_build(&c);
        ck_assert(g_strv_equal((const char *const *) a, (const char *const *) b));
}
END_TEST

START_TEST(test_start_has_global_args_then_start_and_cid_only)
{
        const char *const args[] = { "--root=/run/x", "--log-format=json", NULL };
        const char *const opts[] = { "--preserve-fds=1", NULL };
        RuntimeCall call = {
                .action = RUNTIME_ACTION_START,
                .runtime_path = "/usr/sbin/runc",
                .cid = "c1",
                .bundle = "/b",
                .pid_file = "/b/pid",
                .runtime_args = args,
                .runtime_opts = opts,
                .systemd_cgroup = true,
                .console_socket = "/tmp/sock",
        };
        g_auto(GStrv) argv = runtime_argv_build(&call);
        g_autofree char *joined = g_strjoinv(" ", argv);
        ck_assert_str_eq(joined, "/usr/sbin/runc --root=/run/x --log-format=json start c1");
}
END_TEST

START_TEST(test_kill_all_has_global_args_then_kill_all_cid_signal)
{
        const char *const args[] = { "--root=/run/x", NULL };
        RuntimeCall call = {
                .action = RUNTIME_ACTION_KILL,
                .runtime_path = "/usr/sbin/runc",
                .cid = "c1",
                .runtime_args = args,
                .signal = 15,
                .kill_all = true,
        };
        g_auto(GStrv) argv = runtime_argv_build(&call);
        g_autofree char *joined = g_strjoinv(" ", argv);
        ck_assert_str_eq(joined, "/usr/sbin/runc --root=/run/x kill --all c1 15");
        call.kill_all = false;
        call.signal = 9;
        g_auto(GStrv) argv2 = runtime_argv_build(&call);
        g_autofree char *joined2 = g_strjoinv(" ", argv2);
        ck_assert_str_eq(joined2, "/usr/sbin/runc --root=/run/x kill c1 9");
}
END_TEST

/* --- include/ctrmon/error.h, shared by the shim and the monitor --- */

/* errno may be 0 when a failing call did not set it (or was clobbered):
 * the error helpers must still report a failure, never "success". */
START_TEST(test_error_errno_zero_is_eio)
{
        GError *error = NULL;
        int r = ctrmon_set_error_errno(&error, 0, "Failed to frob %s", "x");

        ck_assert_int_eq(r, -EIO);
        ck_assert_ptr_nonnull(error);
        ck_assert_int_eq(error->code, EIO);
        ck_assert_str_eq(error->message, "Failed to frob x: Input/output error");
        g_clear_error(&error);

        r = ctrmon_set_error(&error, 0, "plain");
        ck_assert_int_eq(r, -EIO);
        ck_assert_int_eq(error->code, EIO);
        g_clear_error(&error);

        /* NULL GError: the return value alone must still be a failure. */
        ck_assert_int_eq(ctrmon_set_error_errno(NULL, 0, "x"), -EIO);
        ck_assert_int_eq(ctrmon_set_error(NULL, 0, "x"), -EIO);
}
END_TEST

START_TEST(test_error_errno_sign_is_normalised)
{
        GError *error = NULL;

        ck_assert_int_eq(ctrmon_set_error_errno(&error, ENOENT, "a"), -ENOENT);
        ck_assert_int_eq(error->code, ENOENT);
        g_clear_error(&error);
        ck_assert_int_eq(ctrmon_set_error_errno(&error, -EPERM, "b"), -EPERM);
        ck_assert_int_eq(error->code, EPERM);
        g_clear_error(&error);
        /* -INT_MIN does not exist: no undefined negation, still a failure. */
        ck_assert_int_eq(ctrmon_set_error(&error, INT_MIN, "c"), -EIO);
        g_clear_error(&error);
        ck_assert_int_eq(ctrmon_errno_nonzero(0), EIO);
        ck_assert_int_eq(ctrmon_errno_nonzero(-EAGAIN), EAGAIN);
        ck_assert_int_eq(ctrmon_errno_nonzero(EAGAIN), EAGAIN);
}
END_TEST

static Suite *runtime_argv_suite(void)
{
        Suite *s = suite_create("runtime-argv");
        TCase *tc;

        tc = tcase_create("create");
        tcase_add_test(tc, test_create_minimal_exact);
        tcase_add_test(tc, test_start_has_global_args_then_start_and_cid_only);
        tcase_add_test(tc, test_kill_all_has_global_args_then_kill_all_cid_signal);
        tcase_add_test(tc, test_create_full_exact_order);
        tcase_add_test(tc, test_create_systemd_cgroup_only);
        tcase_add_test(tc, test_create_no_pivot_only);
        tcase_add_test(tc, test_create_no_new_keyring_only);
        tcase_add_test(tc, test_create_console_socket_only);
        tcase_add_test(tc, test_create_runtime_args_before_subcommand);
        tcase_add_test(tc, test_create_runtime_opts_before_console_socket);
        tcase_add_test(tc, test_create_empty_string_args_preserved);
        tcase_add_test(tc, test_create_empty_arrays_are_none);
        suite_add_tcase(s, tc);

        tc = tcase_create("restore");
        tcase_add_test(tc, test_restore_minimal_exact);
        tcase_add_test(tc, test_restore_full_exact_order);
        tcase_add_test(tc, test_restore_no_pivot_before_detach);
        tcase_add_test(tc, test_restore_systemd_cgroup_only);
        tcase_add_test(tc, test_restore_work_path_is_bundle);
        suite_add_tcase(s, tc);

        tc = tcase_create("exec");
        tcase_add_test(tc, test_exec_minimal_exact);
        tcase_add_test(tc, test_exec_full_exact_order);
        tcase_add_test(tc, test_exec_ignores_create_only_flags);
        tcase_add_test(tc, test_exec_console_socket_only);
        suite_add_tcase(s, tc);

        tc = tcase_create("error.h");
        tcase_add_test(tc, test_error_errno_zero_is_eio);
        tcase_add_test(tc, test_error_errno_sign_is_normalised);
        suite_add_tcase(s, tc);

        tc = tcase_create("purity");
        tcase_add_test(tc, test_build_copies_strings);
        tcase_add_test(tc, test_build_is_repeatable);
        suite_add_tcase(s, tc);

        return s;
}

int main(void)
{
        SRunner *sr = srunner_create(runtime_argv_suite());
        int failed;

        srunner_run_all(sr, CK_ENV); /* CK_VERBOSITY=verbose lists each test */
        failed = srunner_ntests_failed(sr);
        srunner_free(sr);
        return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
