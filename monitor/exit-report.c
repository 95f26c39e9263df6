/* Exit files, oom files and the exit command. These are the last things the
 * monitor does; nothing here may depend on the main loop still running. */
#include "exit-report.h"

#include "fs-util.h"
#include "ctrmon/error.h"

#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

int exit_report_write_status(const char *exit_dir, const char *persist_dir, const char *cid,
                             int status, GError **error)
{
        char content[16];
        int len = g_snprintf(content, sizeof content, "%d", status);
        int ret = 0;

        if (persist_dir) {
                g_autofree char *path = g_build_filename(persist_dir, "exit", NULL);
                g_autoptr(GError) local = NULL;
                int r = fs_write_file_atomic(path, content, (size_t) len, 0644, &local);
                if (r < 0) {
                        g_propagate_prefixed_error(error, g_steal_pointer(&local),
                                                   "Failed to write %s to the persist exit file: ", content);
                        ret = r;
                }
        }
        if (exit_dir) {
                g_autofree char *path = g_build_filename(exit_dir, cid, NULL);
                g_autoptr(GError) local = NULL;
                int r = fs_write_file_atomic(path, content, (size_t) len, 0644, &local);
                if (r < 0 && ret == 0) {
                        g_propagate_prefixed_error(error, g_steal_pointer(&local),
                                                   "Failed to write %s to the exit file: ", content);
                        ret = r;
                }
        }
        return ret;
}

int exit_report_write_oom(const char *persist_dir, const char *bundle, GError **error)
{
        int ret = 0;
        const char *dirs[] = { persist_dir, bundle };
        for (size_t i = 0; i < G_N_ELEMENTS(dirs); i++) {
                if (!dirs[i])
                        continue;
                g_autofree char *path = g_build_filename(dirs[i], "oom", NULL);
                g_autoptr(GError) local = NULL;
                int r = fs_touch(path, 0644, &local);
                if (r < 0 && ret == 0) {
                        g_propagate_error(error, g_steal_pointer(&local));
                        ret = r;
                }
        }
        return ret;
}

static void exit_report_close_fds_from(int first)
{
#ifdef SYS_close_range
        if (syscall(SYS_close_range, (unsigned) first, ~0U, 0) == 0)
                return;
#endif
        long max = sysconf(_SC_OPEN_MAX);
        for (long fd = first; fd < (max > 0 ? max : 65536); fd++)
                close((int) fd);
}

int exit_report_run_command(const ExitCommand *command, GError **error)
{
        if (!command || !command->command)
                return 0;

        /* Prepare everything the child needs before forking: after fork only
         * async-signal-safe calls are allowed. */
        g_autoptr(GPtrArray) argv = g_ptr_array_new();
        g_ptr_array_add(argv, (char *) command->command);
        for (char *const *a = command->args; a && *a; a++)
                g_ptr_array_add(argv, *a);
        g_ptr_array_add(argv, NULL);

        /* conmon closes everything first, so the caller sees EOF on the sync
         * pipe before the (possibly slow) exit command runs. */
        exit_report_close_fds_from(3);

        /* Orphans of the exit command (podman cleanup may daemonize helpers)
         * must not be ours to wait for. */
        prctl(PR_SET_CHILD_SUBREAPER, 0, 0, 0, 0);

        sigset_t all;
        sigfillset(&all);
        sigset_t old;
        sigprocmask(SIG_BLOCK, &all, &old);

        pid_t pid = fork();
        if (pid < 0) {
                int e = errno;
                sigprocmask(SIG_SETMASK, &old, NULL);
                return ctrmon_set_error_errno(error, e, "Failed to fork the exit command");
        }
        if (pid == 0) {
                for (int sig = 1; sig < NSIG; sig++)
                        if (sig != SIGKILL && sig != SIGSTOP && sig != SIGPIPE)
                                signal(sig, SIG_DFL);
                sigset_t none;
                sigemptyset(&none);
                sigprocmask(SIG_SETMASK, &none, NULL);

                if (command->delay_seconds > 0) {
                        struct timespec ts = { .tv_sec = command->delay_seconds };
                        while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
                                ;
                }
                int null_fd = open("/dev/null", O_RDWR);
                if (null_fd >= 0) {
                        dup2(null_fd, 0);
                        dup2(null_fd, 1);
                        dup2(null_fd, 2);
                        if (null_fd > 2)
                                close(null_fd);
                }
                if (command->oom_score_adj) {
                        int fd = open("/proc/self/oom_score_adj", O_WRONLY | O_CLOEXEC);
                        if (fd >= 0) {
                                ssize_t ignored = write(fd, command->oom_score_adj, strlen(command->oom_score_adj));
                                (void) ignored;
                                close(fd);
                        }
                }
                execv(command->command, (char *const *) argv->pdata);
                _exit(127);
        }
        sigprocmask(SIG_SETMASK, &old, NULL);

        /* Wait for every child, not just the command: the monitor exits only
         * when nothing it started is left. */
        int command_status = -1;
        for (;;) {
                int wstatus;
                pid_t r = waitpid(-1, &wstatus, 0);
                if (r < 0) {
                        if (errno == EINTR)
                                continue;
                        break;
                }
                if (r == pid)
                        command_status = WIFEXITED(wstatus) ? WEXITSTATUS(wstatus) : 128 + WTERMSIG(wstatus);
        }
        return command_status;
}
