/* The monitor's state machine. It owns the order of things (spec §2) and the
 * reporting to the caller (sync pipe, exit files); every mechanism it uses
 * lives in its own file. After the runtime has been started nothing here
 * exits the process: failures are reported and the run ends through
 * lifecycle_finish(), which always writes what the caller waits for. */
#include "lifecycle.h"

#include "context.h"
#include "daemon.h"
#include "control-methods.h"
#include "diag.h"
#include "exit-report.h"
#include "reaper.h"
#include "service.h"
#include "runtime-shim.h"
#include "ctrmon/error.h"
#include "ctrmon/fd-util.h"

#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

/* How long a killed container (timeout) may take to be reaped before the
 * monitor reports anyway. */
#define LIFECYCLE_KILL_GRACE_MS 5000
/* How long queued attach output may take to reach clients at exit. */
#define LIFECYCLE_ATTACH_FLUSH_MS 500
/* After --runtime-timeout: how long the killed runtime and what it started
 * may take to be reaped. */
#define LIFECYCLE_RUNTIME_REAP_MS 5000
/* mnt, net, ipc, uts, cgroup, time, user: see lifecycle_hold_namespaces() */
#define LIFECYCLE_HELD_NS_MAX 7
/* After the exit, once nothing of the output is queued in the monitor: how
 * long an attach client may go without reading any of what its socket still
 * holds before the monitor goes on to its exit command anyway (the bytes
 * stay in the socket for it), and how often that is looked at. */
#define LIFECYCLE_SOCKET_DRAIN_STALL_MS 2000
#define LIFECYCLE_SOCKET_DRAIN_POLL_MS 10

/* A failure after daemonizing: the caller reads it on the sync pipe, a unit's
 * manager in its status line. */
static void lifecycle_report_failure(CtrmonContext *ctx, const char *message)
{
        sync_pipe_send(&ctx->sync, -1, message, NULL);
        if (message) {
                g_autofree char *line = g_strstrip(g_strdup(message));
                service_notify(ctx, "STATUS=Failed: %s", line);
        }
}

/* ------------------------------------------------------------- callbacks */

/* The loop runs until this holds. Callbacks only record what happened;
 * after every main-loop turn this decides (no quit-before-run races). */
static bool lifecycle_is_done(CtrmonContext *ctx)
{
        const CtrmonOptions *o = ctx->opts;
        if (ctx->kill_grace_expired)
                return true;
        if (!ctx->container_exited)
                return false;
        /* An exec'd process without a terminal is done when its output is,
         * too: it may have written its last bytes just before exiting. */
        if (o->exec && !o->terminal && ctx->relay && stdio_relay_outputs_open(ctx->relay) && !ctx->timed_out)
                return false;
        /* With a terminal, `runtime exec` may still be attached to it. */
        if (o->exec && o->api_version_1 && o->terminal && !ctx->runtime_exited && !ctx->timed_out)
                return false;
        return true;
}

static void lifecycle_container_exited(CtrmonContext *ctx, int wstatus)
{
        ctx->container_exited = true;
        ctx->container_wstatus = wstatus;
        if (ctx->liveness_id) {
                g_source_remove(ctx->liveness_id);
                ctx->liveness_id = 0;
        }
}

static void lifecycle_child_exited_cb(pid_t pid, int wstatus, void *user_data)
{
        CtrmonContext *ctx = user_data;

        /* A runtime or process of the control API's exec, first: once the
         * monitor's own runtime is gone its pid may be reused by them. */
        if (context_child_exited(ctx, pid, wstatus))
                return;
        if (pid == ctx->runtime_pid) {
                ctx->runtime_exited = true;
                ctx->runtime_wstatus = wstatus;
        }
        if (ctx->container_pid > 0 && pid == ctx->container_pid) {
                lifecycle_container_exited(ctx, wstatus);
                return;
        }
        if (ctx->container_pid <= 0 && pid != ctx->runtime_pid)
                return; /* kept by context_child_exited() until the pidfile is read */
        if (pid != ctx->runtime_pid)
                log_debug("Reaped orphan %d", (int) pid);
}

static void lifecycle_forward_signal(CtrmonContext *ctx, int signo)
{
        pid_t target = ctx->container_pid > 0 && !ctx->container_exited ? ctx->container_pid : ctx->runtime_pid;
        if (target <= 0)
                return;
        if (kill(target, signo) < 0 && errno == ESRCH && ctx->container_pid > 0 && target != ctx->container_pid)
                kill(ctx->container_pid, signo);
}

static void lifecycle_reopen_cb(void *user_data)
{
        context_reopen_logs(user_data);
        control_emit(user_data, CTRMON_EVENT_LOG_ROTATED, NULL);
}

static void lifecycle_signal_cb(int signo, const struct signalfd_siginfo *info, void *user_data)
{
        CtrmonContext *ctx = user_data;
        switch (signo) {
        case SIGCHLD:
                /* The container's exit is taken without reaping it when that
                 * ends the monitor's wait: lifecycle_report_exit() reaps it
                 * (and whatever else has exited) after the exit files. */
                if (!ctx->container_exited && ctx->container_pid > 0) {
                        int wstatus;
                        if (reaper_peek(ctx->container_pid, &wstatus)) {
                                lifecycle_container_exited(ctx, wstatus);
                                if (lifecycle_is_done(ctx))
                                        break;
                        }
                }
                reaper_drain(lifecycle_child_exited_cb, ctx);
                break;
        case SIGTERM:
        case SIGINT:
        case SIGQUIT:
                if (ctx->phase == CTRMON_PHASE_EXITED) {
                        /* Nothing to forward to: the only wait left is for
                         * slow attach clients (lifecycle_linger_for_readers). */
                        log_info("Signal %d after the container's exit: not waiting for attach clients", signo);
                        ctx->readers_abandoned = true;
                        break;
                }
                log_info("Forwarding signal %d to the container", signo);
                service_notify(ctx, "STOPPING=1\nSTATUS=Stopping: sent %s to container %s",
                                 strsignal(signo), ctx->opts->cid);
                lifecycle_forward_signal(ctx, signo);
                break;
        case SIGUSR1:
                log_info("SIGUSR1: reopening the log files");
                lifecycle_reopen_cb(ctx);
                break;
        default:
                /* SIGHUP, SIGUSR2: the monitor has no terminal and no
                 * configuration to reload; they must not kill it. */
                log_info("Ignoring signal %d", signo);
                break;
        }
}

static void lifecycle_attach_input_cb(const char *buf, size_t len, void *user_data)
{
        CtrmonContext *ctx = user_data;
        stdio_relay_write_input(ctx->relay, buf, len);
}

static void lifecycle_attach_hangup_cb(void *user_data)
{
        CtrmonContext *ctx = user_data;
        /* conmon closes one dup of the pty master here, which the container
         * never notices and which breaks later attaches; ctrmon closes only a
         * stdin pipe. */
        if (ctx->opts->stdin_open && !ctx->opts->leave_stdin_open && !ctx->opts->terminal) {
                log_debug("Attach client hung up: closing the container's stdin");
                if (stdio_relay_has_input(ctx->relay)) {
                        stdio_relay_close_input(ctx->relay);
                        control_emit(ctx, CTRMON_EVENT_STDIN_CLOSED, NULL);
                }
        }
}

static void lifecycle_resize_cb(int rows, int cols, void *user_data)
{
        CtrmonContext *ctx = user_data;
        if (!ctx->opts->terminal)
                return; /* resizes only mean something with -t */
        g_autoptr(GError) error = NULL;
        if (context_resize_terminal(ctx, rows, cols, &error) < 0)
                log_warning("%s, ignoring", error->message);
}

static void lifecycle_attach_client_cb(bool connected, void *user_data)
{
        if (connected) {
                control_emit(user_data, CTRMON_EVENT_ATTACH_CONNECTED, NULL);
                return;
        }
        json_object *f = json_object_new_object();
        json_object_object_add(f, "reason", json_object_new_string("closed"));
        json_object_object_add(f, "bytes_dropped", json_object_new_int64(0));
        control_emit(user_data, CTRMON_EVENT_ATTACH_DISCONNECTED, f);
}

/* A client of the attach socket has a full queue (true): read no more
 * output until it has caught up. */
static void lifecycle_attach_backlog_cb(bool full, void *user_data)
{
        CtrmonContext *ctx = user_data;
        if (!ctx->relay)
                return;
        if (full)
                stdio_relay_hold_output(ctx->relay);
        else
                stdio_relay_release_output(ctx->relay);
}

/* The container's stdin queue is full (true): read no more attach input. */
static void lifecycle_input_room_cb(bool full, void *user_data)
{
        CtrmonContext *ctx = user_data;
        if (ctx->attach)
                attach_server_set_input_paused(ctx->attach, full);
}

static void lifecycle_console_ready_cb(int master_fd, void *user_data)
{
        context_set_pty(user_data, master_fd);
}

static void lifecycle_oom_cb(void *user_data)
{
        CtrmonContext *ctx = user_data;
        g_autoptr(GError) error = NULL;
        log_info("The container was hit by the OOM killer");
        ctx->oom_reported = true;
        control_emit(ctx, CTRMON_EVENT_OOM, NULL);
        if (exit_report_write_oom(ctx->opts->persist_dir, ctx->opts->bundle, &error) < 0)
                log_warning("%s, ignoring", error->message);
}

static gboolean lifecycle_kill_grace_cb(gpointer user_data)
{
        CtrmonContext *ctx = user_data;
        ctx->timeout_id = 0;
        log_warning("The container did not die within %d ms of SIGKILL", LIFECYCLE_KILL_GRACE_MS);
        ctx->kill_grace_expired = true;
        return G_SOURCE_REMOVE;
}

static void lifecycle_kill_tree(pid_t pid, int depth);

static gboolean lifecycle_timeout_cb(gpointer user_data)
{
        CtrmonContext *ctx = user_data;
        ctx->timeout_id = 0;
        if (ctx->container_exited)
                return G_SOURCE_REMOVE;
        ctx->timed_out = true;
        log_info("Timeout of %d s reached: killing the container", ctx->opts->timeout);
        /* The whole process group, so nothing the process started outlives
         * the timeout; but never our own group (a runtime that does not give
         * the process a session of its own leaves it in ours: the monitor
         * would kill itself) nor init's: then the process and what it
         * started, found through /proc (issue 14). */
        pid_t pgid = getpgid(ctx->container_pid);
        if (pgid > 1 && pgid != getpgrp())
                kill(-pgid, SIGKILL);
        else
                lifecycle_kill_tree(ctx->container_pid, 0);
        ctx->timeout_id = g_timeout_add(LIFECYCLE_KILL_GRACE_MS, lifecycle_kill_grace_cb, ctx);
        return G_SOURCE_REMOVE;
}

static gboolean lifecycle_liveness_cb(gpointer user_data)
{
        CtrmonContext *ctx = user_data;
        if (kill(ctx->container_pid, 0) < 0 && errno == ESRCH) {
                ctx->liveness_id = 0;
                /* Not our child: its status is unknowable; conmon reports 0. */
                lifecycle_container_exited(ctx, 0);
                return G_SOURCE_REMOVE;
        }
        return G_SOURCE_CONTINUE;
}

static gboolean lifecycle_runtime_timeout_cb(gpointer user_data)
{
        CtrmonContext *ctx = user_data;
        ctx->runtime_timeout_id = 0;
        if (ctx->runtime_exited)
                return G_SOURCE_REMOVE;
        ctx->runtime_timed_out = true;
        return G_SOURCE_REMOVE;
}

/* ------------------------------------------------------------- set-up */

static int lifecycle_prepare(CtrmonContext *ctx, GError **error)
{
        const CtrmonOptions *o = ctx->opts;
        int r;

        r = signals_block(&ctx->signals, &ctx->original_sigmask, error);
        if (r < 0)
                return r;
        signals_attach(ctx->signals, lifecycle_signal_cb, ctx);

        if (o->sdnotify_socket && o->bundle) {
                /* A relay that cannot be set up costs readiness reports, not
                 * the container: warn and go on. */
                g_autoptr(GError) local = NULL;
                if (sdnotify_relay_new(o->bundle, o->sdnotify_socket, &ctx->sdnotify, &local) < 0)
                        log_warning("%s, ignoring", local->message);
        }

        r = context_open_sinks(ctx, error);
        if (r < 0)
                return r;

        r = stdio_pipes_create(&ctx->pipes, o->stdin_open, o->terminal, o->log.passthrough, ctx->dev_null_fd, error);
        if (r < 0)
                return r;
        ctx->relay = stdio_relay_new(ctx->sinks);
        if (ctx->pipes.stdin_fd >= 0)
                stdio_relay_set_input(ctx->relay, TAKE_FD(ctx->pipes.stdin_fd));
        else if (o->terminal)
                /* Input that comes before the runtime has made the pty
                 * (podman sends it as soon as it has attached) waits. */
                stdio_relay_expect_input(ctx->relay);

        if (o->terminal) {
                r = console_socket_new(&ctx->console, error);
                if (r < 0)
                        return r;
                console_socket_attach(ctx->console, lifecycle_console_ready_cb, ctx);
        }

        if (o->bundle && !o->log.passthrough) {
                AttachConfig ac = {
                        .bundle = o->bundle,
                        .socket_dir_path = o->socket_dir_path,
                        .cuuid = o->cuuid,
                        .full_attach = o->full_attach || !o->cuuid,
                        /* Input goes to a stdin pipe, or to the pty even
                         * without -i (observed conmon behaviour). */
                        .input_cb = (o->stdin_open || o->terminal) ? lifecycle_attach_input_cb : NULL,
                        .hangup_cb = lifecycle_attach_hangup_cb,
                        .client_cb = lifecycle_attach_client_cb,
                        .backlog_cb = lifecycle_attach_backlog_cb,
                        .user_data = ctx,
                };
                r = attach_server_new(&ac, &ctx->attach, error);
                if (r < 0)
                        return r;
                stdio_relay_set_attach(ctx->relay, ctx->attach);
                stdio_relay_watch_input(ctx->relay, lifecycle_input_room_cb, ctx);

                CtlHandlers handlers = {
                        .resize_cb = lifecycle_resize_cb,
                        .reopen_cb = lifecycle_reopen_cb,
                        .user_data = ctx,
                };
                r = ctl_fifos_new(o->bundle, &handlers, &ctx->ctl, error);
                if (r < 0)
                        return r;
        }

        {
                /* The control API costs the container nothing if it fails. */
                g_autoptr(GError) local = NULL;
                if (control_setup(ctx, &local) < 0)
                        log_warning("No control API: %s", local->message);
        }

        if (o->exec_attach) {
                /* Tell the caller the attach socket is ready: it connects,
                 * then releases the runtime through the start pipe. */
                SyncPipe attach_pipe = { .fd = ctx->attach_pipe_fd, .key = "data" };
                r = sync_pipe_send(&attach_pipe, 0, NULL, error);
                ctx->attach_pipe_fd = attach_pipe.fd;
                if (r < 0)
                        return r;
        }
        return 0;
}

static int lifecycle_spawn_runtime(CtrmonContext *ctx, GError **error)
{
        const CtrmonOptions *o = ctx->opts;
        RuntimeCall call = {
                .action = o->exec ? RUNTIME_ACTION_EXEC : o->restore_path ? RUNTIME_ACTION_RESTORE
                                                                           : RUNTIME_ACTION_CREATE,
                .runtime_path = o->runtime_path,
                .cid = o->cid,
                .bundle = o->bundle,
                .pid_file = o->container_pidfile,
                .exec_process_spec = o->exec_process_spec,
                .restore_path = o->restore_path,
                .console_socket = ctx->console ? console_socket_path(ctx->console) : NULL,
                .runtime_args = (const char *const *) o->runtime_args,
                .runtime_opts = (const char *const *) o->runtime_opts,
                .systemd_cgroup = o->systemd_cgroup,
                .no_pivot = o->no_pivot,
                .no_new_keyring = o->no_new_keyring,
        };
        g_auto(GStrv) argv = runtime_argv_build(&call);
        if (o->log_level >= CTRMON_LOG_LEVEL_DEBUG) {
                g_autofree char *line = g_strjoinv(" ", argv);
                log_debug("Running: %s", line);
        }

        RuntimeSpawn spawn = {
                .argv = argv,
                .stdin_fd = ctx->pipes.child_stdin,
                .stdout_fd = ctx->pipes.child_stdout,
                .stderr_fd = ctx->pipes.child_stderr,
                .replace_listen_pid = o->replace_listen_pid,
                .monitor_pid = getpid(),
                .start_pipe_fd = ctx->start_pipe_fd,
                .oom_score_adj = ctx->saved_oom_score_adj,
                .sigmask = &ctx->original_sigmask,
        };
        /* The container may die before its pid is read from the pidfile:
         * exits reaped until then are kept (context_child_exited). */
        context_claim_pending(ctx, +1);
        int r = runtime_spawn(&spawn, &ctx->runtime_pid, error);
        if (r < 0)
                return r;

        ctrmon_close_fd(&ctx->start_pipe_fd);
        stdio_pipes_close_child_ends(&ctx->pipes);
        if (o->log.passthrough)
                for (int fd = 0; fd < 3; fd++)
                        dup2(ctx->dev_null_fd, fd);
        return 0;
}

/* The runtime's own error text: one read of what it wrote to stderr. */
static char *lifecycle_read_runtime_error(CtrmonContext *ctx)
{
        if (ctx->pipes.stderr_fd < 0)
                return NULL;
        char buf[8192];
        ssize_t n;
        do
                n = read(ctx->pipes.stderr_fd, buf, sizeof buf - 1);
        while (n < 0 && errno == EINTR);
        if (n <= 0)
                return NULL;
        return g_strndup(buf, (gsize) n);
}

/* The pids whose parent is `parent`, from /proc. */
static GArray *lifecycle_children_of(pid_t parent)
{
        GArray *out = g_array_new(FALSE, FALSE, sizeof(pid_t));
        DIR *dir = opendir("/proc");
        if (!dir)
                return out;
        struct dirent *de;
        while ((de = readdir(dir))) {
                if (!g_ascii_isdigit(de->d_name[0]))
                        continue;
                char path[64], buf[512];
                g_snprintf(path, sizeof path, "/proc/%s/stat", de->d_name);
                int fd = open(path, O_RDONLY | O_CLOEXEC);
                if (fd < 0)
                        continue;
                ssize_t n = read(fd, buf, sizeof buf - 1);
                close(fd);
                if (n <= 0)
                        continue;
                buf[n] = '\0';
                /* "pid (comm) state ppid ...": comm may hold anything. */
                char *end = strrchr(buf, ')');
                char state;
                int ppid;
                if (end && sscanf(end + 1, " %c %d", &state, &ppid) == 2 && ppid == parent) {
                        pid_t pid = atoi(de->d_name);
                        g_array_append_val(out, pid);
                }
        }
        closedir(dir);
        return out;
}

/* SIGKILL pid and everything below it (a snapshot, children first found
 * are killed last so that they cannot fork more from a dead parent). */
static void lifecycle_kill_tree(pid_t pid, int depth)
{
        g_autoptr(GArray) kids = lifecycle_children_of(pid);
        kill(pid, SIGKILL);
        for (guint i = 0; depth < 64 && i < kids->len; i++)
                lifecycle_kill_tree(g_array_index(kids, pid_t, i), depth + 1);
}

/* --runtime-timeout expired: kill the runtime, whatever it started (the
 * container init it may have forked, found through the pidfile or as an
 * orphan the subreaper adopted) and reap it all, bounded. */
static void lifecycle_kill_runtime(CtrmonContext *ctx)
{
        lifecycle_kill_tree(ctx->runtime_pid, 0);
        pid_t pid = 0;
        if (runtime_read_pidfile(ctx->opts->container_pidfile, &pid, NULL) == 0 && pid > 1)
                kill(pid, SIGKILL);

        gint64 deadline = g_get_monotonic_time() + LIFECYCLE_RUNTIME_REAP_MS * 1000;
        while (g_get_monotonic_time() < deadline) {
                /* Orphans of the killed processes are now ours: kill them
                 * too, until no child is left. */
                g_autoptr(GArray) kids = lifecycle_children_of(getpid());
                for (guint i = 0; i < kids->len; i++)
                        lifecycle_kill_tree(g_array_index(kids, pid_t, i), 0);
                int wstatus;
                pid_t reaped;
                while ((reaped = waitpid(-1, &wstatus, WNOHANG)) > 0)
                        if (reaped == ctx->runtime_pid) {
                                ctx->runtime_exited = true;
                                ctx->runtime_wstatus = wstatus;
                        }
                if (reaped < 0 && errno == ECHILD)
                        return;
                g_usleep(10000);
        }
        log_warning("Processes of the runtime were still alive %d ms after SIGKILL", LIFECYCLE_RUNTIME_REAP_MS);
}

static const char *lifecycle_runtime_action(const CtrmonOptions *o)
{
        return o->exec ? "exec" : o->restore_path ? "restore" : "create";
}

/* Phase RUNTIME -> RUNNING. Returns 0 when the container runs, or -1 after
 * reporting a failure on the sync pipe. */
static int lifecycle_await_runtime(CtrmonContext *ctx)
{
        const CtrmonOptions *o = ctx->opts;

        ctx->phase = CTRMON_PHASE_RUNTIME;
        /* A runtime that exited before the loop started is found here. */
        signals_dispatch_pending(ctx->signals);
        if (!ctx->runtime_exited) {
                if (o->runtime_timeout > 0)
                        ctx->runtime_timeout_id = g_timeout_add_seconds_full(
                                G_PRIORITY_DEFAULT, (guint) o->runtime_timeout, lifecycle_runtime_timeout_cb, ctx, NULL);
                while (!ctx->runtime_exited && !ctx->runtime_timed_out)
                        g_main_context_iteration(NULL, TRUE);
                if (ctx->runtime_timeout_id) {
                        g_source_remove(ctx->runtime_timeout_id);
                        ctx->runtime_timeout_id = 0;
                }
        }
        if (ctx->runtime_timed_out) {
                g_autofree char *message = g_strdup_printf("runtime did not finish %s within %d s",
                                                           lifecycle_runtime_action(o), o->runtime_timeout);
                log_error("%s: killing it", message);
                lifecycle_kill_runtime(ctx);
                lifecycle_report_failure(ctx, message);
                return -1;
        }

        int wstatus = ctx->runtime_wstatus;
        bool runtime_ok = WIFEXITED(wstatus) && WEXITSTATUS(wstatus) == 0;
        if (!runtime_ok && !o->exec) {
                g_autofree char *message = lifecycle_read_runtime_error(ctx);
                /* The sync pipe gets the text verbatim; our own log one line. */
                g_autofree char *line = message ? g_strstrip(g_strdup(message)) : NULL;
                log_error("Runtime failed with status %d: %s", reaper_exit_code(wstatus),
                          line && *line ? line : "(no output)");
                lifecycle_report_failure(ctx, message);
                return -1;
        }

        if (o->terminal && ctx->pty_master < 0) {
                int master = -1;
                g_autoptr(GError) error = NULL;
                if (console_socket_try_accept(ctx->console, &master, &error) > 0)
                        lifecycle_console_ready_cb(master, ctx);
                if (ctx->pty_master < 0) {
                        log_error("Runtime did not set up terminal");
                        lifecycle_report_failure(ctx, "Runtime did not set up terminal");
                        return -1;
                }
        }

        pid_t pid = 0;
        g_autoptr(GError) error = NULL;
        if (runtime_read_pidfile(o->container_pidfile, &pid, &error) < 0) {
                /* A failed `runtime exec` is seen here: no pidfile. Its own
                 * words explain why better than ours. */
                g_autofree char *message = lifecycle_read_runtime_error(ctx);
                log_error("Failed to read pidfile: %s", error->message);
                lifecycle_report_failure(ctx, message ? message : error->message);
                return -1;
        }
        ctx->container_pid = pid;

        /* Before the caller hears the pid (it may start the container at
         * once): a runtime that does not use systemd itself leaves the
         * container where we are; give it a scope of its own. */
        if (o->systemd_scope && !o->systemd_cgroup && !o->exec) {
                if (service_scope(ctx, "-container.scope", "Container", pid, true, &error) < 0) {
                        log_error("%s", error->message);
                        kill(pid, SIGKILL);
                        lifecycle_report_failure(ctx, error->message);
                        return -1;
                }
        }

        /* Also before the caller hears the pid: a container started at once
         * can be OOM-killed before the relay is set up, and an OOM the
         * watch never saw is never reported. */
        g_autoptr(GError) oom_error = NULL;
        if (oom_watch_new(ctx->container_pid, lifecycle_oom_cb, ctx, &ctx->oom, &oom_error) < 0)
                log_debug("No OOM monitoring: %s", oom_error->message);

        /* Legacy exec reports only the exit status. */
        if (!(o->exec && !o->api_version_1)) {
                g_autoptr(GError) send_error = NULL;
                if (sync_pipe_send(&ctx->sync, pid, NULL, &send_error) < 0)
                        log_warning("%s, ignoring", send_error->message);
        }
        control_container_created(ctx);
        return 0;
}

static void lifecycle_start_relaying(CtrmonContext *ctx)
{
        const CtrmonOptions *o = ctx->opts;

        ctx->phase = CTRMON_PHASE_RUNNING;
        if (o->terminal) {
                int input = fcntl(ctx->pty_master, F_DUPFD_CLOEXEC, 3);
                if (input >= 0)
                        stdio_relay_set_input(ctx->relay, input);
                stdio_relay_add_output(ctx->relay, TAKE_FD(ctx->pty_master), CTRMON_STREAM_STDOUT);
                /* Keep a handle for resizes: the relay owns the read side. */
                ctx->pty_master = fcntl(input, F_DUPFD_CLOEXEC, 3);
        } else if (ctx->pipes.stdout_fd >= 0) {
                stdio_relay_add_output(ctx->relay, TAKE_FD(ctx->pipes.stdout_fd), CTRMON_STREAM_STDOUT);
        }
        if (ctx->pipes.stderr_fd >= 0)
                stdio_relay_add_output(ctx->relay, TAKE_FD(ctx->pipes.stderr_fd), CTRMON_STREAM_STDERR);

        if (o->timeout > 0)
                ctx->timeout_id = g_timeout_add_seconds((guint) o->timeout, lifecycle_timeout_cb, ctx);

        int early;
        bool exited_early = context_take_unclaimed_exit(ctx, ctx->container_pid, &early);
        context_claim_pending(ctx, -1);
        if (exited_early) {
                lifecycle_container_exited(ctx, early);
                return;
        }
        /* Is it our child? (waitid with WNOWAIT asks without reaping.) If
         * not, SIGCHLD will never tell us it ended: poll instead. */
        siginfo_t info = { 0 };
        if (waitid(P_PID, (id_t) ctx->container_pid, &info, WEXITED | WNOHANG | WNOWAIT) < 0 && errno == ECHILD)
                ctx->liveness_id = g_timeout_add(100, lifecycle_liveness_cb, ctx);
}

/* ------------------------------------------------------------- the end */

static void lifecycle_remove_endpoints(CtrmonContext *ctx)
{
        /* conmon leaves ctl, winsz, and on failures the attach socket behind;
         * nobody can use them once the monitor is gone. */
        if (ctx->attach) {
                attach_server_close(ctx->attach, LIFECYCLE_ATTACH_FLUSH_MS);
                g_clear_pointer(&ctx->attach, attach_server_free);
                stdio_relay_set_attach(ctx->relay, NULL);
        }
        if (ctx->ctl) {
                ctl_fifos_close(ctx->ctl, true);
                g_clear_pointer(&ctx->ctl, ctl_fifos_free);
        }
        g_clear_pointer(&ctx->console, console_socket_free);
}

/* The container's namespaces, held from the pid report until the exit files
 * are written. When the last task in a namespace exits, the kernel tears it
 * down: the mount namespace before it tells the parent (unmounting every
 * mount in it and a synchronize_rcu_expedited() in namespace_unlock(), from
 * free_nsproxy() in do_exit(); traced: 0.4-4 ms on the 2-core VM, all of it
 * before SIGCHLD), the network and IPC namespaces on workqueues right after
 * (cleanup_net() and free_ipc(), with RCU grace periods: traced as kworkers
 * and rcu_exp_gp_kthread taking the CPU the monitor needs to write the exit
 * files). With our references the init's exit only drops one each; the
 * teardown happens at our close(), after the exit files exist. */
static const char *const held_namespaces[LIFECYCLE_HELD_NS_MAX] = {
        "mnt", "net", "ipc", "uts", "cgroup", "time", "user",
};

static void lifecycle_hold_namespaces(pid_t pid, int fds[LIFECYCLE_HELD_NS_MAX])
{
        for (size_t i = 0; i < LIFECYCLE_HELD_NS_MAX; i++) {
                char theirs_path[64], ours_path[64];
                g_snprintf(theirs_path, sizeof theirs_path, "/proc/%d/ns/%s", (int) pid, held_namespaces[i]);
                g_snprintf(ours_path, sizeof ours_path, "/proc/self/ns/%s", held_namespaces[i]);
                _cleanup_close_ int fd = open(theirs_path, O_RDONLY | O_CLOEXEC);
                struct stat theirs, ours;
                /* Not there (an old kernel), gone already, not permitted,
                 * or shared with us: nothing of the container's to hold. */
                if (fd < 0 || fstat(fd, &theirs) < 0 || stat(ours_path, &ours) < 0)
                        continue;
                if (theirs.st_dev == ours.st_dev && theirs.st_ino == ours.st_ino)
                        continue;
                fds[i] = TAKE_FD(fd);
        }
}

static void lifecycle_release_namespaces(int fds[LIFECYCLE_HELD_NS_MAX])
{
        for (size_t i = 0; i < LIFECYCLE_HELD_NS_MAX; i++)
                ctrmon_close_fd(&fds[i]);
}

static void lifecycle_sync_logs(CtrmonContext *ctx)
{
        if (ctx->opts->no_sync_log)
                return;
        for (guint i = 0; i < ctx->sinks->len; i++) {
                LogSink *sink = g_ptr_array_index(ctx->sinks, i);
                g_autoptr(GError) error = NULL;
                if (sink->ops->sync && sink->ops->sync(sink, &error) < 0)
                        log_warning("%s, ignoring", error->message);
        }
}

/* The one question after the exit: is anyone still reading? Attach
 * clients (conmon's socket and API attach) are waited for without a bound;
 * the control API's last answers (waiters, followers, "kill --all") only
 * within its exit linger (control_exit_pending). */
static bool lifecycle_readers_pending(CtrmonContext *ctx)
{
        return (ctx->attach && attach_server_pending(ctx->attach) > 0) || control_attach_pending(ctx) ||
               control_exit_pending(ctx);
}

/* Lossless to the end: the exit files exist, and attach clients still have
 * output queued here (a slow reader of `podman run ... | consumer`). The
 * main loop runs on (API, signals) until they have it all or hang up; only
 * SIGTERM, SIGINT or SIGQUIT to the monitor gives up on them. As with
 * conmon, a client that never reads keeps the monitor (and the exit
 * command) waiting. */
static gboolean lifecycle_drain_poll_cb(gpointer user_data)
{
        (void) user_data;
        return G_SOURCE_CONTINUE; /* only wakes the loop */
}

/* Then, while attach clients are still reading what their sockets hold
 * (up to 4 MiB each) and make progress: the output is theirs already, but
 * the exit command must not run before they have it. podman's cleanup
 * removes an exec session's exit file, which podman exec, still writing
 * that output to a slow consumer, reads only after it; it would then wait
 * 5 s for the file. A client that stops reading for
 * LIFECYCLE_SOCKET_DRAIN_STALL_MS is left the rest in its socket. */
static void lifecycle_linger_for_sockets(CtrmonContext *ctx)
{
        size_t unread = ctx->attach ? attach_server_unread(ctx->attach) : 0;
        if (unread == 0)
                return;
        guint poll_id = g_timeout_add(LIFECYCLE_SOCKET_DRAIN_POLL_MS, lifecycle_drain_poll_cb, NULL);
        gint64 progress = g_get_monotonic_time();
        while (unread > 0 && !ctx->readers_abandoned &&
               g_get_monotonic_time() - progress < LIFECYCLE_SOCKET_DRAIN_STALL_MS * 1000) {
                g_main_context_iteration(NULL, TRUE);
                size_t now = attach_server_unread(ctx->attach);
                if (now < unread)
                        progress = g_get_monotonic_time();
                unread = now;
        }
        g_source_remove(poll_id);
        if (unread > 0 && !ctx->readers_abandoned)
                log_debug("An attach client has read none of its last %zu bytes for %d ms: they stay in its "
                          "socket; going on",
                          unread, LIFECYCLE_SOCKET_DRAIN_STALL_MS);
}

static void lifecycle_linger_for_readers(CtrmonContext *ctx)
{
        if (lifecycle_readers_pending(ctx)) {
                log_debug("Waiting for attach clients to read the rest of the output");
                service_notify(ctx,
                               "STATUS=Container %s exited; attach clients are reading the rest of its output",
                               ctx->opts->cid);
                while (lifecycle_readers_pending(ctx) && !ctx->readers_abandoned)
                        g_main_context_iteration(NULL, TRUE);
                if (ctx->readers_abandoned)
                        log_warning("Gave up on attach clients with %zu bytes of output unread",
                                    ctx->attach ? attach_server_pending(ctx->attach) : 0);
        }
        lifecycle_linger_for_sockets(ctx);
}

/* Report a normal end: returns the status to exit with. The exit files are
 * written as soon as the status is known and the output is in the log;
 * everything else waits until they exist. */
static int lifecycle_report_exit(CtrmonContext *ctx, ExitReport *report, int held_ns[LIFECYCLE_HELD_NS_MAX])
{
        const CtrmonOptions *o = ctx->opts;
        ctx->phase = CTRMON_PHASE_EXITED;

        if (ctx->oom && oom_watch_final_check(ctx->oom) && !ctx->oom_reported)
                lifecycle_oom_cb(ctx);

        /* Unlike conmon, also after a timeout: what the process wrote before
         * it was killed belongs in its log. */
        stdio_relay_drain(ctx->relay);

        int status = ctx->timed_out ? -1 : reaper_exit_code(ctx->container_wstatus);
        if (ctx->start_failed)
                status = 1;

        daemon_close_inherited_fds(ctx);

        /* Unlike conmon, the log is fsynced after the exit files, not
         * before: the caller waits for them, and the fsync is a journal
         * commit (ms on a virtual disk). Nothing a caller reads changes:
         * every byte is in the log (page cache) before the exit files
         * exist. Only what survives a power loss in the few ms between the
         * two differs, and the exit files are never fsynced themselves, so
         * "exit file on disk implies log on disk" was never promised; on
         * ext4 the log's fsync commits the exit files' journal entries too. */
        g_autoptr(GError) error = NULL;
        int written = exit_report_write(report, status, &error);
        lifecycle_release_namespaces(held_ns);
        /* The container, left a zombie until its exit files existed. */
        reaper_drain(lifecycle_child_exited_cb, ctx);
        lifecycle_sync_logs(ctx);

        log_info("Container %d exited with status %d", (int) ctx->container_pid, status);
        service_notify(ctx, "STOPPING=1\nSTATUS=Container %s exited with status %d", o->cid, status);

        /* Waiters hear it after the exit files exist, so what they read
         * there agrees; API attach clients get the exit frame behind their
         * last output. */
        control_container_exited(ctx, status);
        lifecycle_linger_for_readers(ctx);
        /* Removing sockets and FIFOs can wait until the exit files exist. */
        lifecycle_remove_endpoints(ctx);
        if (written < 0) {
                log_error("%s", error->message);
                return 1;
        }
        if (o->exec) {
                g_autoptr(GError) send_error = NULL;
                if (sync_pipe_send(&ctx->sync, status, ctx->timed_out ? "command timed out" : NULL, &send_error) < 0)
                        log_warning("%s, ignoring", send_error->message);
        }
        return status;
}

static int lifecycle_supervise(CtrmonContext *ctx)
{
        if (lifecycle_await_runtime(ctx) < 0) {
                lifecycle_remove_endpoints(ctx);
                return 1;
        }
        lifecycle_start_relaying(ctx);

        /* After the pid report, so none of this delays the start. */
        const CtrmonOptions *o = ctx->opts;
        g_autoptr(ExitReport) report = exit_report_prepare(o->exit_dir, o->persist_dir, o->cid);
        int held_ns[LIFECYCLE_HELD_NS_MAX] = { -1, -1, -1, -1, -1, -1, -1 };
        /* Only the container's own init (our child, so its pid cannot be
         * reused before we reap it); an exec'd process shares the
         * container's namespace with its init. */
        if (!o->exec && !ctx->container_exited && !ctx->liveness_id)
                lifecycle_hold_namespaces(ctx->container_pid, held_ns);

        if (o->start && !ctx->container_exited)
                service_start_container(ctx);
        while (!lifecycle_is_done(ctx))
                g_main_context_iteration(NULL, TRUE);
        return lifecycle_report_exit(ctx, report, held_ns);
}

int lifecycle_run(CtrmonOptions *opts)
{
        g_autoptr(CtrmonContext) ctx = context_new(opts);
        g_autoptr(GError) error = NULL;

        diag_init(opts->log_level, opts->syslog, opts->cid, opts->log_tag);
        daemon_protect_from_oom_killer(ctx);
        /* Also inherited by the runtime and the exit command, as conmon. */
        signal(SIGPIPE, SIG_IGN);

        if (daemon_read_start_pipe(ctx, &error) < 0) {
                log_error("%s", error->message);
                return 1;
        }
        ctx->dev_null_fd = open("/dev/null", O_RDWR | O_CLOEXEC);
        if (ctx->dev_null_fd < 0) {
                log_error_errno(errno, "Failed to open /dev/null");
                return 1;
        }
        if (daemon_fork(ctx, &error) < 0) {
                log_error("%s", error->message);
                return 1;
        }

        /* The daemon (or the --sync process) from here on. */
        if (daemon_become(ctx, &error) < 0) {
                log_error("%s", error->message);
                lifecycle_report_failure(ctx, error->message);
                return 1;
        }
        daemon_record_inherited_fds(ctx);

        if (service_setup(ctx, &error) < 0) {
                log_error("%s", error->message);
                lifecycle_report_failure(ctx, error->message);
                return 1;
        }

        if (lifecycle_prepare(ctx, &error) < 0 || lifecycle_spawn_runtime(ctx, &error) < 0) {
                /* Unlike conmon (EOF only), the caller gets the reason. */
                log_error("%s", error->message);
                lifecycle_report_failure(ctx, error->message);
                lifecycle_remove_endpoints(ctx);
                return 1;
        }

        int status = lifecycle_supervise(ctx);

        /* Everything of ours is closed before the exit command runs, so the
         * caller sees EOF on the sync pipe first. */
        ExitCommand command = {
                .command = opts->exit_command,
                .args = opts->exit_command_args,
                .delay_seconds = opts->exit_delay,
                .oom_score_adj = NULL,
        };
        g_autofree char *oom_score_adj = g_strdup(ctx->saved_oom_score_adj);
        command.oom_score_adj = oom_score_adj;
        g_clear_pointer(&ctx, context_free);

        if (command.command) {
                g_autoptr(GError) command_error = NULL;
                int r = exit_report_run_command(&command, &command_error);
                if (r < 0)
                        log_error("%s", command_error->message);
                else
                        log_debug("Exit command %s exited with %d", command.command, r);
        }
        return status & 0xff;
}
