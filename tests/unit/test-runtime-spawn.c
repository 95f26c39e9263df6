/* Unit tests for runtime_spawn() and runtime_read_pidfile(). The "runtime"
 * is /bin/sh or /bin/cat, so every test observes what a real exec'd process
 * sees: its fds, environment, signal state and timing. Check forks each test,
 * so environment, signal and fd changes made here stay inside one test. */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <ctrmon/error.h>
#include <ctrmon/fd-util.h>

#include "runtime-shim.h"

/* --- helpers --------------------------------------------------------------- */

static RuntimeSpawn spawn_new(char **argv)
{
        return (RuntimeSpawn){
                .argv = argv,
                .stdin_fd = -1,
                .stdout_fd = -1,
                .stderr_fd = -1,
                .start_pipe_fd = -1,
        };
}

static pid_t spawn_ok(const RuntimeSpawn *spawn)
{
        g_autoptr(GError) error = NULL;
        pid_t pid = -1;
        int r;

        r = runtime_spawn(spawn, &pid, &error);
        ck_assert_msg(r == 0, "runtime_spawn: %d %s", r, error ? error->message : "");
        ck_assert_int_gt(pid, 0);
        return pid;
}

/* Wait for `pid` and return its raw wait status. */
static int wait_status(pid_t pid)
{
        int status = 0;
        pid_t r;

        do
                r = waitpid(pid, &status, 0);
        while (r < 0 && errno == EINTR);
        ck_assert_int_eq(r, pid);
        return status;
}

static int wait_exit_code(pid_t pid)
{
        int status = wait_status(pid);

        ck_assert_msg(WIFEXITED(status), "child did not exit normally (status 0x%x)", status);
        return WEXITSTATUS(status);
}

/* Everything currently buffered in a pipe, without waiting for EOF (the test
 * may itself hold a write end). Call after the writer has exited. */
static char *read_available(int fd)
{
        GString *s = g_string_new(NULL);
        char buf[4096];
        int flags = fcntl(fd, F_GETFL);

        ck_assert_int_ge(flags, 0);
        ck_assert_int_eq(fcntl(fd, F_SETFL, flags | O_NONBLOCK), 0);
        for (;;) {
                ssize_t n = read(fd, buf, sizeof(buf));
                if (n < 0 && errno == EINTR)
                        continue;
                if (n <= 0)
                        break;
                g_string_append_len(s, buf, n);
        }
        return g_string_free(s, FALSE);
}

static void make_pipe(int p[2])
{
        ck_assert_int_eq(pipe2(p, O_CLOEXEC), 0);
}

static void write_str(int fd, const char *s)
{
        ck_assert_int_eq(write(fd, s, strlen(s)), (ssize_t) strlen(s));
}

static char *make_tmpdir(void)
{
        g_autoptr(GError) error = NULL;
        char *dir = g_dir_make_tmp("ctrmon-test-spawn-XXXXXX", &error);

        ck_assert_msg(dir != NULL, "g_dir_make_tmp: %s", error ? error->message : "");
        return dir;
}

/* The test dirs hold only plain files. */
static void remove_tmpdir(const char *dir)
{
        GDir *d = g_dir_open(dir, 0, NULL);
        const char *name;

        if (!d)
                return;
        while ((name = g_dir_read_name(d))) {
                g_autofree char *p = g_build_filename(dir, name, NULL);
                (void) unlink(p);
        }
        g_dir_close(d);
        (void) rmdir(dir);
}

/* Run `sh -c script` with a fresh stdout pipe and return what it printed;
 * *ret_exit gets its exit code. */
static char *run_sh_capture(const char *script, RuntimeSpawn *spawn, int *ret_exit)
{
        char *argv[] = { "/bin/sh", "-c", (char *) script, NULL };
        _cleanup_close_ int out_r = -1;
        _cleanup_close_ int out_w = -1;
        int p[2];
        pid_t pid;

        make_pipe(p);
        out_r = p[0];
        out_w = p[1];
        spawn->argv = argv;
        spawn->stdout_fd = out_w;
        pid = spawn_ok(spawn);
        ctrmon_close_fd(&out_w);
        *ret_exit = wait_exit_code(pid);
        spawn->argv = NULL;
        return read_available(out_r);
}

/* Parse one hex mask line ("SigBlk:\t0000000000010002") of /proc/PID/status. */
static guint64 status_mask(const char *status, const char *key)
{
        g_autofree char *needle = g_strdup_printf("\n%s:\t", key);
        const char *p = strstr(status, needle);

        ck_assert_msg(p != NULL, "no %s in status", key);
        return g_ascii_strtoull(p + strlen(needle), NULL, 16);
}

#define SIGBIT(sig) (G_GUINT64_CONSTANT(1) << ((sig) - 1))

/* --- stdio ----------------------------------------------------------------- */

START_TEST(test_spawn_stdio_lands_on_0_1_2)
{
        char *argv[] = { "/bin/sh", "-c",
                         "read line; printf 'out:%s' \"$line\"; printf 'err:%s' \"$line\" >&2",
                         NULL };
        _cleanup_close_ int in_r = -1, in_w = -1, out_r = -1, out_w = -1, err_r = -1, err_w = -1;
        RuntimeSpawn s = spawn_new(argv);
        g_autofree char *out = NULL;
        g_autofree char *err = NULL;
        int p[2];
        pid_t pid;

        make_pipe(p), in_r = p[0], in_w = p[1];
        make_pipe(p), out_r = p[0], out_w = p[1];
        make_pipe(p), err_r = p[0], err_w = p[1];
        s.stdin_fd = in_r;
        s.stdout_fd = out_w;
        s.stderr_fd = err_w;
        pid = spawn_ok(&s);
        ctrmon_close_fd(&in_r);
        ctrmon_close_fd(&out_w);
        ctrmon_close_fd(&err_w);

        write_str(in_w, "hello world\n");
        ctrmon_close_fd(&in_w);
        ck_assert_int_eq(wait_exit_code(pid), 0);

        out = read_available(out_r);
        err = read_available(err_r);
        ck_assert_str_eq(out, "out:hello world");
        ck_assert_str_eq(err, "err:hello world");
}
END_TEST

/* Sources already sitting on 0/1 but on the "wrong" slot: stdout comes from
 * fd 0 and stdin from fd 1. A naive dup2 sequence clobbers one of them. */
START_TEST(test_spawn_stdio_crossed_low_fds)
{
        char *argv[] = { "/bin/sh", "-c", "read x; printf 'got:%s' \"$x\"", NULL };
        _cleanup_close_ int save0 = -1, save1 = -1, a_r = -1, b_w = -1;
        RuntimeSpawn s = spawn_new(argv);
        g_autofree char *out = NULL;
        int a[2], b[2];
        pid_t pid;

        save0 = fcntl(0, F_DUPFD_CLOEXEC, 10);
        save1 = fcntl(1, F_DUPFD_CLOEXEC, 10);
        ck_assert_int_ge(save0, 0);
        ck_assert_int_ge(save1, 0);
        make_pipe(a); /* child stdout -> a */
        make_pipe(b); /* b -> child stdin */
        ck_assert_int_eq(dup3(a[1], 0, O_CLOEXEC), 0);
        ck_assert_int_eq(dup3(b[0], 1, O_CLOEXEC), 1);
        close(a[1]);
        close(b[0]);
        a_r = a[0];
        b_w = b[1];

        s.stdin_fd = 1;
        s.stdout_fd = 0;
        pid = spawn_ok(&s);
        write_str(b_w, "ping\n");
        ctrmon_close_fd(&b_w);
        ck_assert_int_eq(wait_exit_code(pid), 0);

        ck_assert_int_eq(dup2(save0, 0), 0);
        ck_assert_int_eq(dup2(save1, 1), 1);
        out = read_available(a_r);
        ck_assert_str_eq(out, "got:ping");
}
END_TEST

/* A source that already is its target but CLOEXEC must survive the exec. */
START_TEST(test_spawn_stdio_same_fd_clears_cloexec)
{
        char *argv[] = { "/bin/sh", "-c", "printf same", NULL };
        _cleanup_close_ int save1 = -1, out_r = -1;
        RuntimeSpawn s = spawn_new(argv);
        g_autofree char *out = NULL;
        int p[2];
        pid_t pid;

        save1 = fcntl(1, F_DUPFD_CLOEXEC, 10);
        ck_assert_int_ge(save1, 0);
        make_pipe(p);
        ck_assert_int_eq(dup3(p[1], 1, O_CLOEXEC), 1);
        close(p[1]);
        out_r = p[0];

        s.stdout_fd = 1;
        pid = spawn_ok(&s);
        ck_assert_int_eq(wait_exit_code(pid), 0);
        ck_assert_int_eq(dup2(save1, 1), 1);
        out = read_available(out_r);
        ck_assert_str_eq(out, "same");
}
END_TEST

START_TEST(test_spawn_chmods_pipes_0777)
{
        char *argv[] = { "/bin/sh", "-c", "exit 0", NULL };
        _cleanup_close_ int in_r = -1, in_w = -1, out_r = -1, out_w = -1, err_r = -1, err_w = -1;
        RuntimeSpawn s = spawn_new(argv);
        struct stat st;
        int p[2];

        make_pipe(p), in_r = p[0], in_w = p[1];
        make_pipe(p), out_r = p[0], out_w = p[1];
        make_pipe(p), err_r = p[0], err_w = p[1];
        ck_assert_int_eq(fstat(out_r, &st), 0);
        ck_assert_int_ne(st.st_mode & 07777, 0777); /* or the test proves nothing */

        s.stdin_fd = in_r;
        s.stdout_fd = out_w;
        s.stderr_fd = err_w;
        ck_assert_int_eq(wait_exit_code(spawn_ok(&s)), 0);

        /* Both ends of a pipe share one inode. */
        ck_assert_int_eq(fstat(in_w, &st), 0);
        ck_assert_int_eq(st.st_mode & 07777, 0777);
        ck_assert_int_eq(fstat(out_r, &st), 0);
        ck_assert_int_eq(st.st_mode & 07777, 0777);
        ck_assert_int_eq(fstat(err_r, &st), 0);
        ck_assert_int_eq(st.st_mode & 07777, 0777);
}
END_TEST

START_TEST(test_spawn_chmods_tty_0777)
{
        char *argv[] = { "/bin/sh", "-c", "exit 0", NULL };
        _cleanup_close_ int master = -1, slave = -1;
        RuntimeSpawn s = spawn_new(argv);
        struct stat st;

        master = posix_openpt(O_RDWR | O_NOCTTY | O_CLOEXEC);
        if (master < 0 || grantpt(master) < 0 || unlockpt(master) < 0) {
                fprintf(stderr, "no ptys here, skipping the tty case\n");
                return;
        }
        slave = open(ptsname(master), O_RDWR | O_NOCTTY | O_CLOEXEC);
        ck_assert_int_ge(slave, 0);
        ck_assert_int_eq(fchmod(slave, 0620), 0);

        s.stdout_fd = slave;
        ck_assert_int_eq(wait_exit_code(spawn_ok(&s)), 0);
        ck_assert_int_eq(fstat(slave, &st), 0);
        ck_assert_int_eq(st.st_mode & 07777, 0777);
}
END_TEST

/* /dev/null and regular files must keep their mode: chmodding the host's
 * /dev/null as root would be a real bug. */
START_TEST(test_spawn_does_not_chmod_devnull_or_files)
{
        char *argv[] = { "/bin/sh", "-c", "exit 0", NULL };
        g_autofree char *dir = make_tmpdir();
        g_autofree char *file = g_build_filename(dir, "out", NULL);
        _cleanup_close_ int null_fd = -1, file_fd = -1;
        RuntimeSpawn s = spawn_new(argv);
        struct stat before, after, fst;

        null_fd = open("/dev/null", O_RDWR | O_CLOEXEC);
        ck_assert_int_ge(null_fd, 0);
        file_fd = open(file, O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
        ck_assert_int_ge(file_fd, 0);
        ck_assert_int_eq(fchmod(file_fd, 0600), 0);
        ck_assert_int_eq(fstat(null_fd, &before), 0);

        s.stdin_fd = null_fd;
        s.stdout_fd = file_fd;
        s.stderr_fd = null_fd;
        ck_assert_int_eq(wait_exit_code(spawn_ok(&s)), 0);

        ck_assert_int_eq(fstat(null_fd, &after), 0);
        if ((after.st_mode & 07777) != (before.st_mode & 07777))
                (void) fchmod(null_fd, before.st_mode & 07777); /* repair, then fail */
        ck_assert_int_eq(after.st_mode & 07777, before.st_mode & 07777);
        ck_assert_int_eq(fstat(file_fd, &fst), 0);
        ck_assert_int_eq(fst.st_mode & 07777, 0600);
        remove_tmpdir(dir);
}
END_TEST

/* --- inherited descriptors ------------------------------------------------- */

START_TEST(test_spawn_inherits_non_cloexec_fd_at_same_number)
{
        const char *script = "read x <&9 && [ \"$x\" = nine ] || exit 3; "
                             "[ -e /proc/$$/fd/10 ] && exit 4; exit 0";
        RuntimeSpawn s = spawn_new(NULL);
        g_autofree char *out = NULL;
        int p[2], q[2], code;

        make_pipe(p);
        ck_assert_int_eq(dup2(p[0], 9), 9); /* dup2 result is not CLOEXEC */
        close(p[0]);
        write_str(p[1], "nine\n");
        close(p[1]);
        make_pipe(q);
        ck_assert_int_eq(dup3(q[0], 10, O_CLOEXEC), 10);
        ck_assert_int_eq(fcntl(9, F_GETFD) & FD_CLOEXEC, 0);

        out = run_sh_capture(script, &s, &code);
        ck_assert_int_eq(code, 0);
        /* Still ours afterwards: the spawn must not close caller fds. */
        ck_assert_int_ge(fcntl(9, F_GETFD), 0);
        ck_assert_int_ge(fcntl(10, F_GETFD), 0);
        close(9);
        close(10);
        close(q[0]);
        close(q[1]);
}
END_TEST

/* --- exec ------------------------------------------------------------------ */

START_TEST(test_spawn_missing_runtime_exits_127)
{
        char *argv[] = { "/nonexistent/ctrmon-runtime", "create", NULL };
        RuntimeSpawn s = spawn_new(argv);

        ck_assert_int_eq(wait_exit_code(spawn_ok(&s)), 127);
}
END_TEST

START_TEST(test_spawn_does_not_search_path)
{
        char *argv[] = { "sh", "-c", "exit 0", NULL };
        g_autofree char *dir = make_tmpdir();
        g_autofree char *cwd = g_get_current_dir();
        RuntimeSpawn s = spawn_new(argv);

        /* An empty cwd makes sure no ./sh exists. */
        ck_assert_int_eq(chdir(dir), 0);
        g_setenv("PATH", "/bin:/usr/bin", TRUE);
        ck_assert_int_eq(wait_exit_code(spawn_ok(&s)), 127);
        ck_assert_int_eq(chdir(cwd), 0);
        remove_tmpdir(dir);
}
END_TEST

START_TEST(test_spawn_passes_argv_and_env)
{
        const char *script = "printf '%s|%s|%s' \"$0\" \"$1\" \"$CTRMON_TEST_VAR\"";
        char *argv[] = { "/bin/sh", "-c", (char *) script, "zero", "", NULL };
        _cleanup_close_ int out_r = -1, out_w = -1;
        RuntimeSpawn s = spawn_new(argv);
        g_autofree char *out = NULL;
        int p[2];

        g_setenv("CTRMON_TEST_VAR", "a b=c", TRUE);
        make_pipe(p), out_r = p[0], out_w = p[1];
        s.stdout_fd = out_w;
        ck_assert_int_eq(wait_exit_code(spawn_ok(&s)), 0);
        out = read_available(out_r);
        ck_assert_str_eq(out, "zero||a b=c");
}
END_TEST

START_TEST(test_spawn_rejects_missing_argv)
{
        g_autoptr(GError) error = NULL;
        RuntimeSpawn s = spawn_new(NULL);
        pid_t pid = 4242;

        ck_assert_int_eq(runtime_spawn(&s, &pid, &error), -EINVAL);
        ck_assert_int_eq(pid, 4242);
        ck_assert_ptr_nonnull(error);
        ck_assert(g_error_matches(error, CTRMON_ERROR, EINVAL));
}
END_TEST

/* --- LISTEN_PID ------------------------------------------------------------ */

static const char *listen_script = "printf '%s' \"${LISTEN_PID-unset}:$$:$LISTEN_FDS\"";

START_TEST(test_listen_pid_replaced_when_asked)
{
        RuntimeSpawn s = spawn_new(NULL);
        g_autofree char *out = NULL;
        g_autofree char *pid_str = NULL;
        int code;

        g_setenv("LISTEN_PID", "12345", TRUE);
        g_setenv("LISTEN_FDS", "2", TRUE);
        s.replace_listen_pid = true;
        s.monitor_pid = getpid();
        out = run_sh_capture(listen_script, &s, &code);
        ck_assert_int_eq(code, 0);

        g_auto(GStrv) parts = g_strsplit(out, ":", -1);
        ck_assert_int_eq(g_strv_length(parts), 3);
        ck_assert_str_eq(parts[0], parts[1]); /* LISTEN_PID == the runtime's pid */
        ck_assert_str_ne(parts[0], "12345");
        ck_assert_str_eq(parts[2], "2");
        /* The parent's own environment is untouched. */
        ck_assert_str_eq(g_getenv("LISTEN_PID"), "12345");
}
END_TEST

START_TEST(test_listen_pid_kept_when_unrelated)
{
        RuntimeSpawn s = spawn_new(NULL);
        g_autofree char *out = NULL;
        g_autofree char *want = NULL;
        int code;

        g_setenv("LISTEN_PID", "12345", TRUE);
        g_setenv("LISTEN_FDS", "1", TRUE);
        s.monitor_pid = getpid();
        out = run_sh_capture(listen_script, &s, &code);
        ck_assert_int_eq(code, 0);
        ck_assert(g_str_has_prefix(out, "12345:"));
        ck_assert(g_str_has_suffix(out, ":1"));
}
END_TEST

START_TEST(test_listen_pid_replaced_when_it_names_monitor)
{
        RuntimeSpawn s = spawn_new(NULL);
        g_autofree char *out = NULL;
        g_autofree char *self = g_strdup_printf("%d", (int) getpid());
        int code;

        g_setenv("LISTEN_PID", self, TRUE);
        s.monitor_pid = getpid();
        out = run_sh_capture(listen_script, &s, &code);
        ck_assert_int_eq(code, 0);

        g_auto(GStrv) parts = g_strsplit(out, ":", -1);
        ck_assert_int_eq(g_strv_length(parts), 3);
        ck_assert_str_eq(parts[0], parts[1]);
        ck_assert_str_ne(parts[0], self);
}
END_TEST

START_TEST(test_listen_pid_unset_stays_unset)
{
        RuntimeSpawn s = spawn_new(NULL);
        g_autofree char *out = NULL;
        int code;

        g_unsetenv("LISTEN_PID");
        g_unsetenv("LISTEN_FDS");
        s.replace_listen_pid = true;
        out = run_sh_capture(listen_script, &s, &code);
        ck_assert_int_eq(code, 0);
        ck_assert(g_str_has_prefix(out, "unset:"));
}
END_TEST

/* conmon parses with strtol() and no end check: "12abc" is 12. */
START_TEST(test_listen_pid_trailing_garbage_passes_through)
{
        RuntimeSpawn s = spawn_new(NULL);
        g_autofree char *out = NULL;
        int code;

        g_setenv("LISTEN_PID", "12abc", TRUE);
        out = run_sh_capture(listen_script, &s, &code);
        ck_assert_int_eq(code, 0);
        ck_assert(g_str_has_prefix(out, "12abc:"));
}
END_TEST

/* Spawn `sh -c 'echo ran'` with LISTEN_PID=value; expect exit 1, nothing on
 * stdout and exactly `want` on stderr. */
static void check_listen_pid_invalid(const char *value, const char *want)
{
        char *argv[] = { "/bin/sh", "-c", "echo ran", NULL };
        _cleanup_close_ int out_r = -1, out_w = -1, err_r = -1, err_w = -1;
        RuntimeSpawn s = spawn_new(argv);
        g_autofree char *out = NULL;
        g_autofree char *err = NULL;
        int p[2];

        g_setenv("LISTEN_PID", value, TRUE);
        make_pipe(p), out_r = p[0], out_w = p[1];
        make_pipe(p), err_r = p[0], err_w = p[1];
        s.stdout_fd = out_w;
        s.stderr_fd = err_w;
        ck_assert_int_eq(wait_exit_code(spawn_ok(&s)), 1);
        out = read_available(out_r);
        err = read_available(err_r);
        ck_assert_str_eq(out, "");
        ck_assert_str_eq(err, want);
}

START_TEST(test_listen_pid_invalid_text)
{
        check_listen_pid_invalid("abcdefghijklmnop",
                                 "[conmon:e]: Invalid LISTEN_PID abcdefghij Success\n");
}
END_TEST

START_TEST(test_listen_pid_invalid_zero_and_negative)
{
        check_listen_pid_invalid("0", "[conmon:e]: Invalid LISTEN_PID 0 Success\n");
        check_listen_pid_invalid("-42", "[conmon:e]: Invalid LISTEN_PID -42 Success\n");
        check_listen_pid_invalid("", "[conmon:e]: Invalid LISTEN_PID  Success\n");
}
END_TEST

START_TEST(test_listen_pid_invalid_overflow)
{
        check_listen_pid_invalid("999999999999999999999999",
                                 "[conmon:e]: Invalid LISTEN_PID 9999999999 Numerical result out of range\n");
}
END_TEST

/* --- signals ---------------------------------------------------------------- */

static char *spawn_cat_status(RuntimeSpawn *s)
{
        char *argv[] = { "/bin/cat", "/proc/self/status", NULL };
        _cleanup_close_ int out_r = -1, out_w = -1;
        int p[2];

        make_pipe(p), out_r = p[0], out_w = p[1];
        s->argv = argv;
        s->stdout_fd = out_w;
        ck_assert_int_eq(wait_exit_code(spawn_ok(s)), 0);
        s->argv = NULL;
        return read_available(out_r);
}

START_TEST(test_spawn_child_mask_empty_and_dispositions_reset)
{
        struct sigaction ign = { .sa_handler = SIG_IGN }, dfl = { .sa_handler = SIG_DFL };
        RuntimeSpawn s = spawn_new(NULL);
        g_autofree char *status = NULL;
        sigset_t block, before, after;

        /* What a monitor looks like: SIGCHLD/SIGTERM blocked, some signals
         * ignored, and SIGPIPE at default to prove the child forces it. */
        sigemptyset(&block);
        sigaddset(&block, SIGCHLD);
        sigaddset(&block, SIGTERM);
        ck_assert_int_eq(sigprocmask(SIG_BLOCK, &block, NULL), 0);
        ck_assert_int_eq(sigaction(SIGTERM, &ign, NULL), 0);
        ck_assert_int_eq(sigaction(SIGHUP, &ign, NULL), 0);
        ck_assert_int_eq(sigaction(SIGUSR1, &ign, NULL), 0);
        ck_assert_int_eq(sigaction(SIGPIPE, &dfl, NULL), 0);
        ck_assert_int_eq(sigprocmask(SIG_SETMASK, NULL, &before), 0);

        status = spawn_cat_status(&s);
        ck_assert_msg(status_mask(status, "SigBlk") == 0, "SigBlk %016" G_GINT64_MODIFIER "x",
                      status_mask(status, "SigBlk"));
        /* Only SIGPIPE stays ignored; SIGTERM & co. are back to default. */
        ck_assert_msg(status_mask(status, "SigIgn") == SIGBIT(SIGPIPE),
                      "SigIgn %016" G_GINT64_MODIFIER "x", status_mask(status, "SigIgn"));
        ck_assert((status_mask(status, "SigIgn") & SIGBIT(SIGTERM)) == 0);

        /* And the parent's mask is as it was. */
        ck_assert_int_eq(sigprocmask(SIG_SETMASK, NULL, &after), 0);
        ck_assert(sigismember(&after, SIGCHLD) && sigismember(&after, SIGTERM));
        for (int sig = 1; sig < SIGRTMIN; sig++)
                ck_assert_int_eq(sigismember(&before, sig), sigismember(&after, sig));
}
END_TEST

START_TEST(test_spawn_child_mask_as_given)
{
        RuntimeSpawn s = spawn_new(NULL);
        g_autofree char *status = NULL;
        sigset_t block, want;

        sigemptyset(&block);
        sigaddset(&block, SIGCHLD);
        ck_assert_int_eq(sigprocmask(SIG_BLOCK, &block, NULL), 0);
        sigemptyset(&want);
        sigaddset(&want, SIGUSR2);
        s.sigmask = &want;

        status = spawn_cat_status(&s);
        ck_assert_msg(status_mask(status, "SigBlk") == SIGBIT(SIGUSR2),
                      "SigBlk %016" G_GINT64_MODIFIER "x", status_mask(status, "SigBlk"));
}
END_TEST

/* The runtime dies with the monitor: an intermediate "monitor" spawns a
 * sleeper and exits; as subreaper we inherit the sleeper and see SIGKILL. */
START_TEST(test_spawn_sets_pdeathsig_kill)
{
        int report[2];
        pid_t monitor, runtime = 0;

        ck_assert_int_eq(prctl(PR_SET_CHILD_SUBREAPER, 1), 0);
        make_pipe(report);
        monitor = fork();
        ck_assert_int_ge(monitor, 0);
        if (monitor == 0) {
                char *argv[] = { "/bin/sh", "-c", "echo ready; exec sleep 30", NULL };
                RuntimeSpawn s = spawn_new(argv);
                char buf[16];
                int p[2];
                pid_t pid;

                if (pipe2(p, O_CLOEXEC) < 0)
                        _exit(2);
                s.stdout_fd = p[1];
                if (runtime_spawn(&s, &pid, NULL) < 0)
                        _exit(3);
                /* Exit only once the runtime has exec'd. */
                if (read(p[0], buf, sizeof(buf)) <= 0)
                        _exit(4);
                if (write(report[1], &pid, sizeof(pid)) != sizeof(pid))
                        _exit(5);
                _exit(0);
        }
        close(report[1]);
        ck_assert_int_eq(read(report[0], &runtime, sizeof(runtime)), (ssize_t) sizeof(runtime));
        ck_assert_int_eq(wait_exit_code(monitor), 0);

        int status = wait_status(runtime);
        ck_assert_msg(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL,
                      "runtime not killed by SIGKILL (status 0x%x)", status);
}
END_TEST

/* --- start pipe, oom_score_adj ---------------------------------------------- */

START_TEST(test_spawn_waits_for_start_pipe)
{
        g_autofree char *dir = make_tmpdir();
        g_autofree char *marker = g_build_filename(dir, "marker", NULL);
        g_autofree char *script = NULL;
        char *argv[] = { "/bin/sh", "-c", NULL, NULL };
        RuntimeSpawn s = spawn_new(argv);
        struct timespec ts = { .tv_sec = 0, .tv_nsec = 300 * 1000 * 1000 };
        int status = 0, p[2];
        pid_t pid;

        /* Non-CLOEXEC on purpose: the child must close it itself. */
        ck_assert_int_eq(pipe(p), 0);
        script = g_strdup_printf("[ -e /proc/$$/fd/%d ] && exit 5; touch '%s'", p[0], marker);
        argv[2] = script;
        s.start_pipe_fd = p[0];
        pid = spawn_ok(&s);

        nanosleep(&ts, NULL);
        ck_assert_int_eq(waitpid(pid, &status, WNOHANG), 0);
        ck_assert_msg(!g_file_test(marker, G_FILE_TEST_EXISTS), "runtime ran before start");

        write_str(p[1], "go");
        ck_assert_int_eq(wait_exit_code(pid), 0);
        ck_assert(g_file_test(marker, G_FILE_TEST_EXISTS));
        close(p[0]);
        close(p[1]);
        remove_tmpdir(dir);
}
END_TEST

/* Without a start pipe the child runs vfork-style (no copy of the
 * monitor's memory): when runtime_spawn() returns, the runtime has already
 * been exec'd. A fork()ed child would usually still be the test binary. */
START_TEST(test_spawn_returns_after_the_runtime_is_execd)
{
        char *argv[] = { "/bin/sleep", "5", NULL };
        RuntimeSpawn s = spawn_new(argv);
        g_autofree char *exe_link = NULL;
        g_autofree char *exe = NULL;
        g_autofree char *sleep_path = realpath("/bin/sleep", NULL);
        pid_t pid;

        pid = spawn_ok(&s);
        exe_link = g_strdup_printf("/proc/%d/exe", (int) pid);
        exe = g_file_read_link(exe_link, NULL);
        kill(pid, SIGKILL);
        wait_status(pid);
        ck_assert_ptr_nonnull(sleep_path);
        ck_assert_ptr_nonnull(exe);
        ck_assert_str_eq(exe, sleep_path);
}
END_TEST

START_TEST(test_spawn_sets_oom_score_adj)
{
        char *argv[] = { "/bin/cat", "/proc/self/oom_score_adj", NULL };
        _cleanup_close_ int out_r = -1, out_w = -1;
        g_autofree char *mine = NULL;
        g_autofree char *out = NULL;
        RuntimeSpawn s = spawn_new(argv);
        int p[2];

        ck_assert(g_file_get_contents("/proc/self/oom_score_adj", &mine, NULL, NULL));
        /* Raising is always allowed; only check it if there is room. */
        if (atoi(mine) >= 1000)
                return;
        make_pipe(p), out_r = p[0], out_w = p[1];
        s.stdout_fd = out_w;
        s.oom_score_adj = "1000";
        ck_assert_int_eq(wait_exit_code(spawn_ok(&s)), 0);
        out = read_available(out_r);
        ck_assert_str_eq(out, "1000\n");
}
END_TEST

/* --- pidfile ---------------------------------------------------------------- */

/* Write `content` to a pidfile and read it back; returns the result code. */
static int pidfile_try(const char *content, gssize len, pid_t *pid, GError **error)
{
        g_autofree char *dir = make_tmpdir();
        g_autofree char *path = g_build_filename(dir, "pidfile", NULL);
        int r;

        ck_assert(g_file_set_contents(path, content, len, NULL));
        r = runtime_read_pidfile(path, pid, error);
        remove_tmpdir(dir);
        return r;
}

START_TEST(test_pidfile_plain)
{
        g_autoptr(GError) error = NULL;
        pid_t pid = 0;

        ck_assert_int_eq(pidfile_try("1234", -1, &pid, &error), 0);
        ck_assert_int_eq(pid, 1234);
        ck_assert_ptr_null(error);
}
END_TEST

START_TEST(test_pidfile_trailing_newline)
{
        g_autoptr(GError) error = NULL;
        pid_t pid = 0;

        ck_assert_int_eq(pidfile_try("4321\n", -1, &pid, &error), 0);
        ck_assert_int_eq(pid, 4321);
        ck_assert_int_eq(pidfile_try("77 \t\n", -1, &pid, NULL), 0);
        ck_assert_int_eq(pid, 77);
}
END_TEST

START_TEST(test_pidfile_missing_uses_glib_message)
{
        g_autoptr(GError) error = NULL;
        g_autofree char *dir = make_tmpdir();
        g_autofree char *path = g_build_filename(dir, "pidfile", NULL);
        g_autofree char *want = g_strdup_printf("Failed to open file “%s”: No such file or directory",
                                                path);
        pid_t pid = 99;

        ck_assert_int_eq(runtime_read_pidfile(path, &pid, &error), -ENOENT);
        ck_assert_int_eq(pid, 99);
        ck_assert_ptr_nonnull(error);
        ck_assert(g_error_matches(error, CTRMON_ERROR, ENOENT));
        ck_assert(g_str_has_prefix(error->message, "Failed to open file"));
        ck_assert_str_eq(error->message, want);
        remove_tmpdir(dir);
}
END_TEST

static void check_pidfile_invalid(const char *content, gssize len)
{
        g_autoptr(GError) error = NULL;
        pid_t pid = 99;

        ck_assert_int_eq(pidfile_try(content, len, &pid, &error), -EINVAL);
        ck_assert_int_eq(pid, 99);
        ck_assert_ptr_nonnull(error);
        ck_assert(g_error_matches(error, CTRMON_ERROR, EINVAL));
        ck_assert_msg(strstr(error->message, "is not a positive pid") != NULL, "%s", error->message);
}

START_TEST(test_pidfile_garbage)
{
        check_pidfile_invalid("abc", -1);
        check_pidfile_invalid("12abc", -1);
        check_pidfile_invalid("12 34", -1);
        check_pidfile_invalid(" 12", -1);
        check_pidfile_invalid("", -1);
        check_pidfile_invalid("\n", -1);
        check_pidfile_invalid("12\0" "3", 4);
        check_pidfile_invalid("99999999999", -1);
}
END_TEST

START_TEST(test_pidfile_zero_and_negative)
{
        check_pidfile_invalid("0", -1);
        check_pidfile_invalid("0\n", -1);
        check_pidfile_invalid("-5", -1);
}
END_TEST

static Suite *runtime_spawn_suite(void)
{
        Suite *s = suite_create("runtime-spawn");
        TCase *tc;

        tc = tcase_create("stdio");
        tcase_add_test(tc, test_spawn_stdio_lands_on_0_1_2);
        tcase_add_test(tc, test_spawn_stdio_crossed_low_fds);
        tcase_add_test(tc, test_spawn_stdio_same_fd_clears_cloexec);
        tcase_add_test(tc, test_spawn_chmods_pipes_0777);
        tcase_add_test(tc, test_spawn_chmods_tty_0777);
        tcase_add_test(tc, test_spawn_does_not_chmod_devnull_or_files);
        tcase_add_test(tc, test_spawn_inherits_non_cloexec_fd_at_same_number);
        suite_add_tcase(s, tc);

        tc = tcase_create("exec");
        tcase_add_test(tc, test_spawn_missing_runtime_exits_127);
        tcase_add_test(tc, test_spawn_does_not_search_path);
        tcase_add_test(tc, test_spawn_passes_argv_and_env);
        tcase_add_test(tc, test_spawn_rejects_missing_argv);
        suite_add_tcase(s, tc);

        tc = tcase_create("listen-pid");
        tcase_add_test(tc, test_listen_pid_replaced_when_asked);
        tcase_add_test(tc, test_listen_pid_kept_when_unrelated);
        tcase_add_test(tc, test_listen_pid_replaced_when_it_names_monitor);
        tcase_add_test(tc, test_listen_pid_unset_stays_unset);
        tcase_add_test(tc, test_listen_pid_trailing_garbage_passes_through);
        tcase_add_test(tc, test_listen_pid_invalid_text);
        tcase_add_test(tc, test_listen_pid_invalid_zero_and_negative);
        tcase_add_test(tc, test_listen_pid_invalid_overflow);
        suite_add_tcase(s, tc);

        tc = tcase_create("signals");
        tcase_add_test(tc, test_spawn_child_mask_empty_and_dispositions_reset);
        tcase_add_test(tc, test_spawn_child_mask_as_given);
        tcase_add_test(tc, test_spawn_sets_pdeathsig_kill);
        suite_add_tcase(s, tc);

        tc = tcase_create("start");
        tcase_add_test(tc, test_spawn_waits_for_start_pipe);
        /* Sanitizer builds fork (RUNTIME_SPAWN_CLONE_VM): the property
         * does not exist there. */
        if (RUNTIME_SPAWN_CLONE_VM)
                tcase_add_test(tc, test_spawn_returns_after_the_runtime_is_execd);
        tcase_add_test(tc, test_spawn_sets_oom_score_adj);
        suite_add_tcase(s, tc);

        tc = tcase_create("pidfile");
        tcase_add_test(tc, test_pidfile_plain);
        tcase_add_test(tc, test_pidfile_trailing_newline);
        tcase_add_test(tc, test_pidfile_missing_uses_glib_message);
        tcase_add_test(tc, test_pidfile_garbage);
        tcase_add_test(tc, test_pidfile_zero_and_negative);
        suite_add_tcase(s, tc);

        return s;
}

int main(void)
{
        SRunner *sr = srunner_create(runtime_spawn_suite());
        int failed;

        srunner_run_all(sr, CK_ENV); /* CK_VERBOSITY=verbose lists each test */
        failed = srunner_ntests_failed(sr);
        srunner_free(sr);
        return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
