/* Proves status decoding (exit code, 128+signal) and that the drain loop
 * reaps every exited child, orphans included, in one pass. */
#include "reaper.h"

#include <check.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

static int reaper_status_of(void (*body)(void))
{
        pid_t pid = fork();
        if (pid == 0) {
                body();
                _exit(0);
        }
        int wstatus;
        waitpid(pid, &wstatus, 0);
        return wstatus;
}

static void exit_42(void) { _exit(42); }
static void die_by_sigkill(void) { raise(SIGKILL); }
static void die_by_sigterm(void)
{
        signal(SIGTERM, SIG_DFL); /* Check installs its own handler */
        raise(SIGTERM);
}

START_TEST(test_exit_code_of_normal_exit_is_the_code)
{
        ck_assert_int_eq(reaper_exit_code(reaper_status_of(exit_42)), 42);
}
END_TEST

START_TEST(test_exit_code_of_sigkill_is_137)
{
        ck_assert_int_eq(reaper_exit_code(reaper_status_of(die_by_sigkill)), 137);
}
END_TEST

START_TEST(test_exit_code_of_sigterm_is_143)
{
        ck_assert_int_eq(reaper_exit_code(reaper_status_of(die_by_sigterm)), 143);
}
END_TEST

typedef struct {
        int count;
        pid_t direct;
        int direct_status;
} ReapLog;

static void record_cb(pid_t pid, int wstatus, void *user_data)
{
        ReapLog *log = user_data;
        log->count++;
        if (pid == log->direct)
                log->direct_status = wstatus;
}

START_TEST(test_drain_reaps_child_and_100_orphans_leaving_no_zombie)
{
        ck_assert_int_eq(prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0), 0);
        /* A child that leaves 100 orphans (its children outlive it) and exits
         * 7: all of them are re-parented to us. The orphans wait for EOF on a
         * pipe only the child holds open, so they outlive it for sure (a
         * fixed sleep does not on a slow machine, where forking 100 children
         * can take longer than the sleep). */
        pid_t direct = fork();
        if (direct == 0) {
                int gone[2];
                if (pipe(gone) < 0)
                        _exit(1);
                for (int i = 0; i < 100; i++)
                        if (fork() == 0) {
                                char c;
                                close(gone[1]);
                                (void) !read(gone[0], &c, 1);
                                _exit(0);
                        }
                _exit(7);
        }
        ReapLog log = { .direct = direct };
        /* Up to 30 s: forking 100 processes on a loaded machine (or under
         * valgrind) takes seconds. Passes as soon as all 101 are reaped. */
        for (int tries = 0; tries < 1500 && log.count < 101; tries++) {
                reaper_drain(record_cb, &log);
                usleep(20 * 1000);
        }
        ck_assert_int_eq(log.count, 101);
        ck_assert_int_eq(reaper_exit_code(log.direct_status), 7);
        /* Nothing left to reap: no zombie remains. */
        ck_assert_int_eq(waitpid(-1, NULL, WNOHANG), -1);
}
END_TEST

START_TEST(test_drain_with_no_children_returns_zero)
{
        ck_assert_uint_eq(reaper_drain(NULL, NULL), 0);
}
END_TEST

/* A child that ran `body`, now a zombie (waited for with WNOWAIT). */
static pid_t zombie_of(void (*body)(void))
{
        pid_t pid = fork();
        ck_assert_int_ge(pid, 0);
        if (pid == 0) {
                body();
                _exit(0);
        }
        siginfo_t info = { 0 };
        ck_assert_int_eq(waitid(P_PID, (id_t) pid, &info, WEXITED | WNOWAIT), 0);
        return pid;
}

/* reaper_peek() gives the very status waitpid() then gives, and leaves the
 * child to be reaped: the monitor writes the exit files before it reaps. */
START_TEST(test_peek_gives_waitpids_status_and_leaves_the_zombie)
{
        void (*bodies[])(void) = { exit_42, die_by_sigkill, die_by_sigterm };
        const int codes[] = { 42, 137, 143 };
        for (size_t i = 0; i < sizeof bodies / sizeof bodies[0]; i++) {
                pid_t pid = zombie_of(bodies[i]);
                int peeked = -1;
                ck_assert(reaper_peek(pid, &peeked));
                ck_assert_int_eq(reaper_exit_code(peeked), codes[i]);
                /* Twice: peeking reaps nothing. */
                int again = -1;
                ck_assert(reaper_peek(pid, &again));
                ck_assert_int_eq(again, peeked);
                int wstatus = -1;
                ck_assert_int_eq(waitpid(pid, &wstatus, WNOHANG), pid);
                ck_assert_int_eq(wstatus, peeked);
                /* Reaped now: nothing left to peek at. */
                ck_assert(!reaper_peek(pid, &again));
        }
}
END_TEST

START_TEST(test_peek_is_false_for_a_running_child_and_a_stranger)
{
        int fds[2];
        ck_assert_int_eq(pipe(fds), 0);
        pid_t pid = fork();
        ck_assert_int_ge(pid, 0);
        if (pid == 0) {
                char c;
                close(fds[1]);
                _exit(read(fds[0], &c, 1) == 0 ? 0 : 1);
        }
        close(fds[0]);
        int wstatus = -1;
        ck_assert(!reaper_peek(pid, &wstatus));
        ck_assert_int_eq(wstatus, -1);
        /* Not our child. */
        ck_assert(!reaper_peek(getppid(), &wstatus));
        close(fds[1]);
        ck_assert_int_eq(waitpid(pid, &wstatus, 0), pid);
        ck_assert_int_eq(reaper_exit_code(wstatus), 0);
}
END_TEST

int main(void)
{
        Suite *s = suite_create("reaper");
        TCase *tc = tcase_create("core");
        tcase_add_test(tc, test_exit_code_of_normal_exit_is_the_code);
        tcase_add_test(tc, test_exit_code_of_sigkill_is_137);
        tcase_add_test(tc, test_exit_code_of_sigterm_is_143);
        tcase_add_test(tc, test_drain_reaps_child_and_100_orphans_leaving_no_zombie);
        tcase_add_test(tc, test_drain_with_no_children_returns_zero);
        tcase_add_test(tc, test_peek_gives_waitpids_status_and_leaves_the_zombie);
        tcase_add_test(tc, test_peek_is_false_for_a_running_child_and_a_stranger);
        suite_add_tcase(s, tc);
        SRunner *sr = srunner_create(s);
        srunner_run_all(sr, CK_NORMAL);
        int failed = srunner_ntests_failed(sr);
        srunner_free(sr);
        return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
