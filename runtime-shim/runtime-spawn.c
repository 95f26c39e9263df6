/* runtime-spawn: forks the OCI runtime with conmon's child set-up (spec §2.4):
 * death signal, clean signal state, stdio on 0/1/2, LISTEN_PID, the
 * --exec-attach start pipe, oom_score_adj, then execve. Everything that
 * allocates or formats happens in the parent before fork(); the child only
 * makes async-signal-safe calls, because the monitor may have threads, and
 * because it usually runs in the parent's memory (vfork-style, see
 * runtime_spawn_clone()). */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sched.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <termios.h>
#include <unistd.h>

#include <ctrmon/error.h>

#include "runtime-shim.h"

#define RUNTIME_SPAWN_LISTEN_PID_PREFIX "LISTEN_PID="
/* conmon's read size for the start pipe (spec §3.1). */
#define RUNTIME_SPAWN_START_PIPE_READ 8192
/* The vfork-style child's own stack: it holds a few frames of small
 * locals (the start-pipe buffer is only used by a forked child). */
#define RUNTIME_SPAWN_CHILD_STACK (64 * 1024)


/* Everything the child needs, computed by the parent before fork(). */
typedef struct {
        const RuntimeSpawn *spawn;
        pid_t parent_pid;
        /* execve() environment: the caller's environ, with the LISTEN_PID
         * entry pointing at listen_pid_entry when it must be replaced. */
        char **envp;
        /* Non-NULL: LISTEN_PID=<child pid> goes here, formatted in the
         * child. Sized for the prefix, any pid_t and the NUL. */
        char *listen_pid_entry;
        /* Non-NULL: LISTEN_PID is invalid; the child writes this to its
         * stderr and exits 1, like conmon's _pexitf(). */
        const char *listen_pid_error;
} RuntimeSpawnPlan;

/* --- child side: async-signal-safe calls only ---------------------------- */

static void runtime_spawn_child_write_all(int fd, const char *buf, size_t len)
{
        while (len > 0) {
                ssize_t n = write(fd, buf, len);
                if (n < 0) {
                        if (errno == EINTR)
                                continue;
                        return;
                }
                buf += n;
                len -= (size_t) n;
        }
}

/* The runtime's stderr is the monitor's error channel: whatever lands there
 * is what the caller sees on the sync pipe. strerror() is not safe here, so
 * these messages carry no errno text. */
static _Noreturn void runtime_spawn_child_fail(const char *msg)
{
        runtime_spawn_child_write_all(STDERR_FILENO, "[conmon:e]: ", strlen("[conmon:e]: "));
        runtime_spawn_child_write_all(STDERR_FILENO, msg, strlen(msg));
        runtime_spawn_child_write_all(STDERR_FILENO, "\n", 1);
        _exit(EXIT_FAILURE);
}

/* Write the decimal form of a positive pid at `out` and NUL-terminate it;
 * snprintf() is not on the async-signal-safe list. */
static void runtime_spawn_child_format_pid(char *out, pid_t pid)
{
        char digits[3 * sizeof(pid_t) + 1];
        size_t n = 0;
        unsigned long v = (unsigned long) pid;

        do {
                digits[n++] = (char) ('0' + v % 10);
                v /= 10;
        } while (v > 0);
        while (n > 0)
                *out++ = digits[--n];
        *out = '\0';
}

static void runtime_spawn_child_reset_signals(const sigset_t *mask)
{
        struct sigaction sa = { .sa_handler = SIG_DFL };
        sigset_t empty;

        sigemptyset(&sa.sa_mask);
        /* Some numbers (SIGKILL, SIGSTOP, glibc's internal RT signals) are
         * refused with EINVAL; that is expected and harmless. */
        for (int sig = 1; sig < NSIG; sig++)
                (void) sigaction(sig, &sa, NULL);

        /* conmon ignores SIGPIPE for itself and its runtime child inherits
         * that; runc relies on EPIPE rather than dying on a closed pipe. */
        sa.sa_handler = SIG_IGN;
        (void) sigaction(SIGPIPE, &sa, NULL);

        if (!mask) {
                sigemptyset(&empty);
                mask = &empty;
        }
        if (sigprocmask(SIG_SETMASK, mask, NULL) < 0)
                runtime_spawn_child_fail("Failed to unblock signals");
}

/* A pipe or a terminal gets mode 0777 so that a non-root container user can
 * reopen /dev/stdout (spec §2.3). Anything else (/dev/null, a file) keeps
 * its mode; failures are not worth failing the container for. */
static void runtime_spawn_child_chmod_stdio(int fd)
{
        struct termios t;
        struct stat st;

        if (fstat(fd, &st) < 0)
                return;
        if (!S_ISFIFO(st.st_mode) && !(S_ISCHR(st.st_mode) && ioctl(fd, TCGETS, &t) == 0))
                return;
        (void) fchmod(fd, 0777);
}

static void runtime_spawn_child_setup_stdio(const RuntimeSpawn *spawn, int *start_pipe_fd)
{
        int src[3] = { spawn->stdin_fd, spawn->stdout_fd, spawn->stderr_fd };

        /* Move any source sitting on another slot of 0..2 out of the way
         * first, so that one dup2() cannot clobber the next one's source.
         * The copies are CLOEXEC and vanish at exec. */
        for (int i = 0; i < 3; i++) {
                if (src[i] >= 0 && src[i] < 3 && src[i] != i) {
                        src[i] = fcntl(src[i], F_DUPFD_CLOEXEC, 3);
                        if (src[i] < 0)
                                runtime_spawn_child_fail("Failed to dup stdio");
                }
        }
        if (*start_pipe_fd >= 0 && *start_pipe_fd < 3) {
                *start_pipe_fd = fcntl(*start_pipe_fd, F_DUPFD_CLOEXEC, 3);
                if (*start_pipe_fd < 0)
                        runtime_spawn_child_fail("Failed to dup start pipe");
        }

        for (int i = 0; i < 3; i++) {
                if (src[i] < 0)
                        continue;
                if (src[i] == i) {
                        /* dup2(fd, fd) is a no-op that would leave CLOEXEC
                         * set and the runtime without this descriptor. */
                        int flags = fcntl(i, F_GETFD);
                        if (flags < 0 || fcntl(i, F_SETFD, flags & ~FD_CLOEXEC) < 0)
                                runtime_spawn_child_fail(i == 0   ? "Failed to dup over stdin"
                                                         : i == 1 ? "Failed to dup over stdout"
                                                                  : "Failed to dup over stderr");
                } else if (dup2(src[i], i) < 0) {
                        runtime_spawn_child_fail(i == 0   ? "Failed to dup over stdin"
                                                 : i == 1 ? "Failed to dup over stdout"
                                                          : "Failed to dup over stderr");
                }
                runtime_spawn_child_chmod_stdio(i);
        }
}

/* One read, content ignored, EOF counts as "go" (spec §3.1). */
static void runtime_spawn_child_wait_start_pipe(int fd)
{
        char buf[RUNTIME_SPAWN_START_PIPE_READ];
        ssize_t n;

        do
                n = read(fd, buf, sizeof(buf));
        while (n < 0 && errno == EINTR);
        if (n < 0)
                runtime_spawn_child_fail("start-pipe read failed");
        close(fd);
}

static void runtime_spawn_child_restore_oom(const char *value)
{
        int fd = open("/proc/self/oom_score_adj", O_WRONLY | O_CLOEXEC);

        if (fd < 0)
                return;
        /* Best effort, as in conmon: a runtime that keeps the monitor's
         * score is still a working runtime. */
        runtime_spawn_child_write_all(fd, value, strlen(value));
        close(fd);
}

static _Noreturn void runtime_spawn_child(const RuntimeSpawnPlan *plan)
{
        const RuntimeSpawn *spawn = plan->spawn;
        int start_pipe_fd = spawn->start_pipe_fd;

        if (prctl(PR_SET_PDEATHSIG, SIGKILL) < 0)
                runtime_spawn_child_fail("Failed to set PDEATHSIG");
        /* The monitor may have died before prctl() took effect. */
        if (getppid() != plan->parent_pid)
                _exit(EXIT_FAILURE);

        runtime_spawn_child_reset_signals(spawn->sigmask);
        runtime_spawn_child_setup_stdio(spawn, &start_pipe_fd);

        if (plan->listen_pid_error) {
                runtime_spawn_child_write_all(STDERR_FILENO, plan->listen_pid_error,
                                              strlen(plan->listen_pid_error));
                _exit(EXIT_FAILURE);
        }
        if (plan->listen_pid_entry)
                runtime_spawn_child_format_pid(plan->listen_pid_entry +
                                                       strlen(RUNTIME_SPAWN_LISTEN_PID_PREFIX),
                                               getpid());

        if (start_pipe_fd >= 0)
                runtime_spawn_child_wait_start_pipe(start_pipe_fd);

        if (spawn->oom_score_adj)
                runtime_spawn_child_restore_oom(spawn->oom_score_adj);

        /* By path, never through PATH: --runtime is an absolute path. */
        execve(spawn->argv[0], spawn->argv, plan->envp);
        _exit(127);
}

static int runtime_spawn_child_entry(void *plan)
{
        runtime_spawn_child(plan);
}

/* --- parent side ---------------------------------------------------------- */

/* Start the child the way posix_spawn() does: CLONE_VM | CLONE_VFORK, on a
 * stack of its own, the parent suspended until the child has exec'd or
 * exited. Unlike fork() nothing of the monitor's address space is copied:
 * on the 2-core VM a fork() of a small process took at least 0.4-0.5 ms,
 * vfork() and exec 0.19-0.22 ms (minimum of 40 each), and this is on the
 * path to the pid report. The child writes only its own stack, the
 * LISTEN_PID buffer and errno. Returns the pid, or -1 with errno, or -2 if
 * no stack could be had or the build is sanitized (the caller forks). */
static pid_t runtime_spawn_clone(RuntimeSpawnPlan *plan)
{
        if (!RUNTIME_SPAWN_CLONE_VM)
                return -2;
        void *stack = mmap(NULL, RUNTIME_SPAWN_CHILD_STACK, PROT_READ | PROT_WRITE,
                           MAP_PRIVATE | MAP_ANONYMOUS | MAP_STACK, -1, 0);
        if (stack == MAP_FAILED)
                return -2;
        pid_t pid = clone(runtime_spawn_child_entry, (char *) stack + RUNTIME_SPAWN_CHILD_STACK,
                          CLONE_VM | CLONE_VFORK | SIGCHLD, plan);
        int e = errno;
        munmap(stack, RUNTIME_SPAWN_CHILD_STACK);
        errno = e;
        return pid;
}


/* Decide, before fork(), what the child does with LISTEN_PID. Mirrors
 * conmon: strtol() without an end check (so "12abc" is 12), errno or a
 * value <= 0 is fatal for the child, reported as "%.10s" plus strerror. */
static void runtime_spawn_plan_listen_pid(RuntimeSpawnPlan *plan, char *entry_buf, char *error_buf,
                                          size_t error_size)
{
        const RuntimeSpawn *spawn = plan->spawn;
        const char *value = getenv("LISTEN_PID");
        long lpid;

        if (!value)
                return;

        errno = 0;
        lpid = strtol(value, NULL, 10);
        if (errno != 0 || lpid <= 0) {
                /* On the caller's stack, not the heap: a child that exits
                 * after writing it must leave nothing allocated behind. */
                int e = errno;
                snprintf(error_buf, error_size, "[conmon:e]: Invalid LISTEN_PID %.10s %s\n", value,
                         strerror(e));
                plan->listen_pid_error = error_buf;
                return;
        }

        if (!spawn->replace_listen_pid &&
            !(spawn->monitor_pid > 0 && lpid == (long) spawn->monitor_pid))
                return;

        memcpy(entry_buf, RUNTIME_SPAWN_LISTEN_PID_PREFIX,
               sizeof(RUNTIME_SPAWN_LISTEN_PID_PREFIX));
        plan->listen_pid_entry = entry_buf;
        for (size_t i = 0; plan->envp[i]; i++) {
                if (g_str_has_prefix(plan->envp[i], RUNTIME_SPAWN_LISTEN_PID_PREFIX))
                        plan->envp[i] = entry_buf;
        }
}

int runtime_spawn(const RuntimeSpawn *spawn, pid_t *ret_pid, GError **error)
{
        char listen_pid_entry[sizeof(RUNTIME_SPAWN_LISTEN_PID_PREFIX) + 3 * sizeof(pid_t) + 1];
        char listen_pid_error[128];
        g_autofree char **envp = NULL;
        RuntimeSpawnPlan plan = { .spawn = spawn };
        sigset_t all, saved;
        size_t n_env = 0;
        pid_t pid;
        int r;

        if (!spawn || !spawn->argv || !spawn->argv[0])
                return ctrmon_set_error(error, EINVAL, "No runtime command line to spawn");
        if (!ret_pid)
                return ctrmon_set_error(error, EINVAL, "No place to return the runtime pid");

        /* A shallow copy: the strings stay environ's, only LISTEN_PID may
         * point at our own buffer. */
        while (environ && environ[n_env])
                n_env++;
        envp = g_new0(char *, n_env + 1);
        for (size_t i = 0; i < n_env; i++)
                envp[i] = environ[i];
        plan.envp = envp;
        plan.parent_pid = getpid();
        runtime_spawn_plan_listen_pid(&plan, listen_pid_entry, listen_pid_error, sizeof listen_pid_error);

        /* Block everything across fork() so that no handler of the monitor
         * (GLib's unix-signal handler, say) runs in the child before its
         * dispositions are reset. */
        sigfillset(&all);
        r = pthread_sigmask(SIG_SETMASK, &all, &saved);
        if (r != 0)
                return ctrmon_set_error_errno(error, r, "Failed to block signals for fork");

        /* With --exec-attach the child waits on the start pipe before its
         * exec, for as long as the caller takes: the monitor must go on
         * meanwhile, so that child is forked. */
        pid = spawn->start_pipe_fd >= 0 ? -2 : runtime_spawn_clone(&plan);
        if (pid == -2) {
                pid = fork();
                if (pid == 0)
                        runtime_spawn_child(&plan);
        }

        r = pid < 0 ? errno : 0;
        (void) pthread_sigmask(SIG_SETMASK, &saved, NULL);
        if (pid < 0)
                return ctrmon_set_error_errno(error, r, "Failed to fork runtime %s",
                                              spawn->argv[0]);

        *ret_pid = pid;
        return 0;
}
