/* runtime-shim: the only code that knows OCI runtime command lines (runc,
 * crun) and how to start one. It never includes monitor headers and never logs
 * above debug: it returns errors (include/ctrmon/error.h) and the monitor
 * decides what to say. */
#pragma once

#include <glib.h>
#include <stdbool.h>
#include <signal.h>
#include <sys/types.h>

typedef enum {
        RUNTIME_ACTION_CREATE,
        RUNTIME_ACTION_RESTORE,
        RUNTIME_ACTION_EXEC,
        RUNTIME_ACTION_START,   /* RT [args…] start CID (ctrmon's --start) */
        RUNTIME_ACTION_KILL,    /* RT [args…] kill [--all] CID SIGNAL (control API) */
} RuntimeAction;

/* Everything that shapes a runtime command line (spec §2.4). */
typedef struct {
        RuntimeAction action;
        const char *runtime_path;        /* argv[0], exec'd by this path    */
        const char *cid;                 /* last word                        */
        const char *bundle;              /* create/restore: --bundle         */
        const char *pid_file;            /* --pid-file                       */
        const char *exec_process_spec;   /* exec: --process                  */
        const char *restore_path;        /* restore: --image-path            */
        const char *console_socket;      /* --console-socket, or NULL        */
        const char *const *runtime_args; /* global, before the subcommand    */
        const char *const *runtime_opts; /* after the subcommand's options   */
        bool systemd_cgroup;             /* create/restore only              */
        bool no_pivot;                   /* create/restore only              */
        bool no_new_keyring;             /* create/restore only              */
        int signal;                      /* kill: signal number              */
        bool kill_all;                   /* kill: every process (--all)      */
} RuntimeCall;

/* Pure: build the argument vector for `call`, exactly as conmon 2.2.1 does:
 *   create : RT [--systemd-cgroup] [args…] create --bundle B --pid-file P
 *            [--no-pivot] [--no-new-keyring] [opts…] [--console-socket S] CID
 *   restore: RT [--systemd-cgroup] [args…] restore --bundle B --pid-file P
 *            [--no-pivot] [--no-new-keyring] --detach --image-path R
 *            --work-path B [opts…] [--console-socket S] CID
 *   exec   : RT [args…] exec --pid-file P --process SPEC --detach [opts…]
 *            [--console-socket S] CID
 * Returns a NULL-terminated vector (g_strfreev), never NULL. */
char **runtime_argv_build(const RuntimeCall *call);

/* How to start the runtime process. */
typedef struct {
        char *const *argv;          /* from runtime_argv_build()              */
        /* fds to dup2 onto 0, 1, 2 in the child (-1: leave as is). The
         * child fchmod()s pipes it received to 0777 (spec §2.3). */
        int stdin_fd;
        int stdout_fd;
        int stderr_fd;
        /* If LISTEN_PID is set, it must be a positive integer; it is replaced
         * by the child's pid when `replace_listen_pid` or when it names
         * `monitor_pid` (spec §2.4). */
        bool replace_listen_pid;
        pid_t monitor_pid;
        /* --exec-attach: fd to block on with one read() right before exec
         * (-1: none). It is closed afterwards. */
        int start_pipe_fd;
        /* oom_score_adj to restore in the child, or NULL to leave it. */
        const char *oom_score_adj;
        /* Signal mask to restore in the child before exec (NULL: empty). */
        const sigset_t *sigmask;
} RuntimeSpawn;

/* Fork and exec the runtime. The child sets PR_SET_PDEATHSIG(SIGKILL), resets
 * every signal disposition except SIGPIPE (left ignored, as conmon does), sets
 * `sigmask`, sets up stdio and execs; on exec failure it _exit(127)s. Every
 * descriptor of the caller that is not CLOEXEC is inherited at its number
 * (podman's --preserve-fds). Returns the child's pid in *ret_pid.
 *
 * Details the caller may rely on:
 *  - SIGPIPE is set to ignored in the child whatever the caller's
 *    disposition; all other signals go back to SIG_DFL.
 *  - A stdio source may be any fd, including 0..2 in crossed order or the
 *    target itself (its CLOEXEC is then cleared). Only pipes and ttys are
 *    fchmod()ed; /dev/null and files keep their mode. No stdio fds are
 *    closed in the parent: that stays the caller's job.
 *  - Child-side failures before exec (bad LISTEN_PID, failed dup2, ...)
 *    write "[conmon:e]: ..." to the child's fd 2 and exit 1; exec failure
 *    exits 127 silently. The runtime's environment is the caller's, with
 *    only LISTEN_PID possibly rewritten; the caller's own env is untouched.
 *  - Fails only before fork (-EINVAL for a missing argv, fork errors). */
int runtime_spawn(const RuntimeSpawn *spawn, pid_t *ret_pid, GError **error);

/* 1 if runtime_spawn() starts a child without a start pipe vfork-style
 * (CLONE_VM | CLONE_VFORK: it returns once the runtime has been exec'd).
 * AddressSanitizer does not know a stack made with mmap(): it warns in the
 * child and reports false stack overflows once a second child gets the
 * same pages, so sanitizer builds fork. */
#if defined(__SANITIZE_ADDRESS__)
#define RUNTIME_SPAWN_CLONE_VM 0
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define RUNTIME_SPAWN_CLONE_VM 0
#endif
#endif
#ifndef RUNTIME_SPAWN_CLONE_VM
#define RUNTIME_SPAWN_CLONE_VM 1
#endif

/* Read the container pid that the runtime wrote to `path` (decimal, optional
 * trailing newline). Returns -ENOENT etc. with a GError on failure, -EINVAL
 * if the content is not a positive pid. */
int runtime_read_pidfile(const char *path, pid_t *ret_pid, GError **error);
