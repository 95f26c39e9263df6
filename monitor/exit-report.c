/* Exit files, oom files and the exit command. These are the last things the
 * monitor does (the exit files are made ready while the container runs, so
 * that little is left to do once it has exited); nothing here may depend on
 * the main loop still running. */
#include "exit-report.h"

#include "fs-util.h"
#include "ctrmon/error.h"
#include "ctrmon/fd-util.h"

#include <fcntl.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

/* One exit file: its final name and, if it could be made in advance, an
 * unnamed file in its directory. Persist first, then the exit dir: the
 * order conmon writes them in (spec §2.7), so a caller woken by the exit
 * dir file finds the persist one already there. */
typedef struct {
        char *path;
        const char *what;
        int fd;
        char *tmp_path; /* the name fd is linked under before the rename */
} ExitFile;

struct ExitReport {
        ExitFile files[2];
};

/* The content an unnamed exit file is given in advance: the most common
 * status. At exit, a status of 0 needs no write at all, and any other one
 * overwrites a block that is already allocated (no delayed-allocation
 * reservation, no new tmpfs page) instead of allocating it then. Nobody can
 * read it before it is linked. */
#define EXIT_FILE_PRESET "0"

static int exit_file_open_unnamed(const char *path)
{
        g_autofree char *dir = g_path_get_dirname(path);
        _cleanup_close_ int fd = open(dir, O_TMPFILE | O_RDWR | O_CLOEXEC, 0644);
        /* The mode must not depend on the umask, as with the rename path. */
        if (fd < 0 || fchmod(fd, 0644) < 0)
                return -1;
        if (pwrite(fd, EXIT_FILE_PRESET, strlen(EXIT_FILE_PRESET), 0) != (ssize_t) strlen(EXIT_FILE_PRESET))
                return -1;
        return TAKE_FD(fd);
}

static ExitReport *exit_report_new(const char *exit_dir, const char *persist_dir, const char *cid,
                                   bool prepare)
{
        ExitReport *report = g_new0(ExitReport, 1);
        report->files[0] = (ExitFile) {
                .path = persist_dir ? g_build_filename(persist_dir, "exit", NULL) : NULL,
                .what = "persist exit file",
                .fd = -1,
        };
        report->files[1] = (ExitFile) {
                .path = exit_dir ? g_build_filename(exit_dir, cid, NULL) : NULL,
                .what = "exit file",
                .fd = -1,
        };
        for (size_t i = 0; prepare && i < G_N_ELEMENTS(report->files); i++) {
                ExitFile *file = &report->files[i];
                if (!file->path)
                        continue;
                file->fd = exit_file_open_unnamed(file->path);
                /* Named now: the first g_random_int() reads /dev/urandom. */
                if (file->fd >= 0)
                        file->tmp_path = g_strdup_printf("%s.%06X", file->path, g_random_int() & 0xffffff);
        }
        return report;
}

ExitReport *exit_report_prepare(const char *exit_dir, const char *persist_dir, const char *cid)
{
        return exit_report_new(exit_dir, persist_dir, cid, true);
}

void exit_report_free(ExitReport *report)
{
        if (!report)
                return;
        for (size_t i = 0; i < G_N_ELEMENTS(report->files); i++) {
                g_free(report->files[i].path);
                g_free(report->files[i].tmp_path);
                ctrmon_close_fd(&report->files[i].fd);
        }
        g_free(report);
}

/* Write and link the prepared file; false if that was not possible (the
 * caller then writes the file the classic way). */
static bool exit_file_link_prepared(ExitFile *file, const char *content, size_t len)
{
        _cleanup_close_ int fd = TAKE_FD(file->fd);
        if (fd < 0)
                return false;
        /* A status is at least as long as the preset, so an overwrite
         * leaves nothing of it behind. */
        if (len < strlen(EXIT_FILE_PRESET))
                return false;
        if (len != strlen(EXIT_FILE_PRESET) || memcmp(content, EXIT_FILE_PRESET, len) != 0) {
                ssize_t n;
                do
                        n = pwrite(fd, content, len, 0);
                while (n < 0 && errno == EINTR);
                if (n != (ssize_t) len)
                        return false;
        }
        /* Linked under a temporary name, then renamed: a watcher of the
         * directory sees the final name arrive by IN_MOVED_TO, as with
         * conmon's writes (linking it there directly would be IN_CREATE
         * only). linkat(AT_EMPTY_PATH) needs CAP_DAC_READ_SEARCH before
         * Linux 6.10 and is ~20 us faster (no /proc path walk); the /proc
         * link works for any user. */
        if (linkat(fd, "", AT_FDCWD, file->tmp_path, AT_EMPTY_PATH) < 0) {
                char proc_path[64];
                g_snprintf(proc_path, sizeof proc_path, "/proc/self/fd/%d", fd);
                if (linkat(AT_FDCWD, proc_path, AT_FDCWD, file->tmp_path, AT_SYMLINK_FOLLOW) < 0)
                        return false;
        }
        if (rename(file->tmp_path, file->path) < 0) {
                unlink(file->tmp_path);
                return false;
        }
        return true;
}

int exit_report_write(ExitReport *report, int status, GError **error)
{
        char content[16];
        int len = g_snprintf(content, sizeof content, "%d", status);
        int ret = 0;

        for (size_t i = 0; i < G_N_ELEMENTS(report->files); i++) {
                ExitFile *file = &report->files[i];
                if (!file->path)
                        continue;
                if (exit_file_link_prepared(file, content, (size_t) len))
                        continue;
                g_autoptr(GError) local = NULL;
                int r = fs_write_file_atomic(file->path, content, (size_t) len, 0644, &local);
                if (r < 0 && ret == 0) {
                        g_propagate_prefixed_error(error, g_steal_pointer(&local), "Failed to write %s to the %s: ",
                                                   content, file->what);
                        ret = r;
                }
        }
        return ret;
}

int exit_report_write_status(const char *exit_dir, const char *persist_dir, const char *cid,
                             int status, GError **error)
{
        g_autoptr(ExitReport) report = exit_report_new(exit_dir, persist_dir, cid, false);
        return exit_report_write(report, status, error);
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

/* podman 5 passes its whole environment to the monitor, socket
 * activation's LISTEN_FDS/LISTEN_PID/LISTEN_FDNAMES included (podman 4 passed
 * a short list without them), and the fds they name become the container's
 * (--preserve-fds). The exit command has none of them: it gets stdio only.
 * Yet `podman container cleanup` is the one that restarts a container with a
 * restart policy, and podman's createOCIContainer trusts LISTEN_FDS=N alone:
 * it would pass whatever the cleanup process has open at 3..N+2 to the new
 * container as its sockets, or fail on a closed fd. The _OCI_* pipes are
 * closed as well. So none of these reach the exit command. */
static const char *const exit_report_fd_env_names[] = {
        "LISTEN_FDS", "LISTEN_PID", "LISTEN_FDNAMES", "_OCI_SYNCPIPE", "_OCI_STARTPIPE", "_OCI_ATTACHPIPE",
};

static bool exit_report_names_fds(const char *entry)
{
        for (size_t i = 0; i < G_N_ELEMENTS(exit_report_fd_env_names); i++) {
                size_t n = strlen(exit_report_fd_env_names[i]);
                if (strncmp(entry, exit_report_fd_env_names[i], n) == 0 && entry[n] == '=')
                        return true;
        }
        return false;
}

char **exit_report_command_env(char *const *env)
{
        GPtrArray *out = g_ptr_array_new();
        for (char *const *e = env; e && *e; e++)
                if (!exit_report_names_fds(*e))
                        g_ptr_array_add(out, *e);
        g_ptr_array_add(out, NULL);
        return (char **) g_ptr_array_free(out, FALSE);
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
        g_autofree char **envp = exit_report_command_env(environ);

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
                execve(command->command, (char *const *) argv->pdata, envp);
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
