/* Proves the /proc parsers under "processes": NSpid's innermost pid, the
 * real uid, state and ppid from a stat line whose comm holds spaces and
 * parentheses, and cgroup paths for v1 controllers and the unified
 * hierarchy. */
#include "control-processes.h"
#include "cgroup-util.h"

#include <check.h>
#include <errno.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

static const char *const status_text =
        "Name:\tsleep\n"
        "State:\tS (sleeping)\n"
        "Tgid:\t4242\n"
        "NSpid:\t4242\t17\t3\n"
        "PPid:\t4200\n"
        "Uid:\t1000\t1001\t1002\t1003\n"
        "Gid:\t0\t0\t0\t0\n";

START_TEST(test_nspid_is_the_last_field)
{
        pid_t pid = 0;
        ck_assert_int_eq(control_proc_parse_nspid(status_text, &pid), 0);
        ck_assert_int_eq(pid, 3);
}
END_TEST

START_TEST(test_nspid_single_namespace_is_the_host_pid)
{
        pid_t pid = 0;
        ck_assert_int_eq(control_proc_parse_nspid("Name:\tx\nNSpid:\t99\n", &pid), 0);
        ck_assert_int_eq(pid, 99);
}
END_TEST

START_TEST(test_nspid_missing_is_einval_and_leaves_output)
{
        pid_t pid = 7;
        ck_assert_int_lt(control_proc_parse_nspid("Name:\tx\nPid:\t5\n", &pid), 0);
        /* "NSpids:" is not "NSpid:" */
        ck_assert_int_lt(control_proc_parse_nspid("NSpids:\t5\n", &pid), 0);
        ck_assert_int_eq(pid, 7);
}
END_TEST

START_TEST(test_uid_is_the_real_uid)
{
        uid_t uid = 0;
        ck_assert_int_eq(control_proc_parse_uid(status_text, &uid), 0);
        ck_assert_uint_eq(uid, 1000);
}
END_TEST

START_TEST(test_stat_plain)
{
        char state = 0;
        pid_t ppid = 0;
        ck_assert_int_eq(control_proc_parse_stat("123 (sleep) S 45 123 123 0 -1 4194304\n", &state, &ppid), 0);
        ck_assert_int_eq(state, 'S');
        ck_assert_int_eq(ppid, 45);
}
END_TEST

START_TEST(test_stat_comm_with_spaces_and_parentheses)
{
        char state = 0;
        pid_t ppid = 0;
        /* A process may name itself ") R 1 (" to fool naive parsers. */
        ck_assert_int_eq(control_proc_parse_stat("77 (a) R 1 (b c)) Z 6543 77 77 0\n", &state, &ppid), 0);
        ck_assert_int_eq(state, 'Z');
        ck_assert_int_eq(ppid, 6543);
}
END_TEST

START_TEST(test_stat_pid1_has_ppid_0_and_garbage_fails)
{
        char state = 0;
        pid_t ppid = -1;
        ck_assert_int_eq(control_proc_parse_stat("1 (init) S 0 1 1 0\n", &state, &ppid), 0);
        ck_assert_int_eq(ppid, 0);
        ck_assert_int_lt(control_proc_parse_stat("1 init S 0\n", &state, &ppid), 0);
        ck_assert_int_lt(control_proc_parse_stat("1 (init)\n", &state, &ppid), 0);
        ck_assert_int_lt(control_proc_parse_stat("1 (init) S x\n", &state, &ppid), 0);
}
END_TEST

/* A number that does not fit is refused, never wrapped: a uid of 2^32 read
 * as 0 would make a process look like root's (fuzz-proc-parsers found
 * these; each input is one of its crash-* seeds). */
START_TEST(test_numbers_that_do_not_fit_are_refused)
{
        pid_t pid = -77;
        ck_assert_int_eq(control_proc_parse_nspid("NSpid:\t12\t4294967297\n", &pid), -EINVAL);
        ck_assert_int_eq(control_proc_parse_nspid("NSpid:\t2147483648\n", &pid), -EINVAL);
        ck_assert_int_eq(pid, -77);
        ck_assert_int_eq(control_proc_parse_nspid("NSpid:\t2147483647\n", &pid), 0);
        ck_assert_int_eq(pid, 2147483647);

        uid_t uid = 4242;
        ck_assert_int_eq(control_proc_parse_uid("Uid:\t4294967296\t0\t0\t0\n", &uid), -EINVAL);
        ck_assert_int_eq(control_proc_parse_uid("Uid:\t99999999999999999999999\n", &uid), -EINVAL);
        ck_assert_uint_eq(uid, 4242);
        ck_assert_int_eq(control_proc_parse_uid("Uid:\t4294967295\n", &uid), 0);
        ck_assert_uint_eq(uid, 4294967295u);

        char state = '?';
        pid_t ppid = -77;
        ck_assert_int_eq(control_proc_parse_stat("5 (x) S -1 5\n", &state, &ppid), -EINVAL);
        ck_assert_int_eq(control_proc_parse_stat("5 (x) S 4294967296 5\n", &state, &ppid), -EINVAL);
        ck_assert_int_eq(control_proc_parse_stat("5 (x) S 2147483648 5\n", &state, &ppid), -EINVAL);
        ck_assert_int_eq(ppid, -77);
        ck_assert_int_eq(state, '?');
}
END_TEST

START_TEST(test_cgroup_paths_v1_and_unified)
{
        const char *text = "12:pids:/ctr/a\n"
                           "4:memory:/ctr/b\n"
                           "3:cpu,cpuacct:/ctr/c\n"
                           "1:name=systemd:/x\n"
                           "0::/unified/d:with:colons\n";
        char *p = cgroup_path_from_proc(text, "pids");
        ck_assert_str_eq(p, "/ctr/a");
        free(p);
        p = cgroup_path_from_proc(text, "cpuacct");
        ck_assert_str_eq(p, "/ctr/c");
        free(p);
        p = cgroup_path_from_proc(text, NULL);
        ck_assert_str_eq(p, "/unified/d:with:colons");
        free(p);
        ck_assert_ptr_null(cgroup_path_from_proc(text, "cpu,cpuacct"));
        ck_assert_ptr_null(cgroup_path_from_proc("4:memory:/m\n", NULL));
        ck_assert_ptr_null(cgroup_path_from_proc("", "pids"));
}
END_TEST

START_TEST(test_descendants_finds_a_grandchild)
{
        int go[2];
        ck_assert_int_eq(pipe(go), 0);
        pid_t child = fork();
        if (child == 0) {
                if (fork() == 0) {
                        char b;
                        close(go[1]);
                        (void) !read(go[0], &b, 1);
                        _exit(0);
                }
                char b;
                close(go[1]);
                (void) !read(go[0], &b, 1);
                _exit(0);
        }
        close(go[0]);
        GArray *d = NULL;
        /* Up to 30 s for the grandchild to be forked: a loaded machine may
         * take far longer than usual to run the child. */
        for (int i = 0; i < 3000; i++) {
                if (d)
                        g_array_unref(d);
                d = control_proc_descendants(child);
                if (d->len == 1)
                        break;
                usleep(10000);
        }
        ck_assert_uint_eq(d->len, 1);
        pid_t grandchild = g_array_index(d, pid_t, 0);
        pid_t ppid = 0;
        ck_assert_int_eq(control_proc_ppid(grandchild, &ppid), 0);
        ck_assert_int_eq(ppid, child);
        g_array_unref(d);
        close(go[1]);
        waitpid(child, NULL, 0);
}
END_TEST

static Suite *control_processes_suite(void)
{
        Suite *s = suite_create("control-processes");
        TCase *tc = tcase_create("core");
        tcase_add_test(tc, test_nspid_is_the_last_field);
        tcase_add_test(tc, test_nspid_single_namespace_is_the_host_pid);
        tcase_add_test(tc, test_nspid_missing_is_einval_and_leaves_output);
        tcase_add_test(tc, test_uid_is_the_real_uid);
        tcase_add_test(tc, test_stat_plain);
        tcase_add_test(tc, test_stat_comm_with_spaces_and_parentheses);
        tcase_add_test(tc, test_stat_pid1_has_ppid_0_and_garbage_fails);
        tcase_add_test(tc, test_numbers_that_do_not_fit_are_refused);
        tcase_add_test(tc, test_cgroup_paths_v1_and_unified);
        tcase_add_test(tc, test_descendants_finds_a_grandchild);
        suite_add_tcase(s, tc);
        return s;
}

int main(void)
{
        SRunner *sr = srunner_create(control_processes_suite());
        srunner_run_all(sr, CK_NORMAL);
        int failed = srunner_ntests_failed(sr);
        srunner_free(sr);
        return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
