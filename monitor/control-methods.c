/* The control API's methods that read or steer the monitor's own state:
 * version, status, wait, kill, resize, close_stdin, reopen_log, stats,
 * subscribe; and the hooks through which the lifecycle tells clients what
 * happened. processes, exec, attach and logs live in their own files. */
#include "control-methods.h"

#include "cgroup-stats.h"
#include "console.h"
#include "control-logs.h"
#include "control-processes.h"
#include "diag.h"
#include "fs-util.h"
#include "log-k8s-file.h"
#include "reaper.h"
#include "runtime-shim.h"
#include "ctrmon-config.h"
#include "ctrmon/error.h"
#include "ctrmon/fd-util.h"
#include "ctrmon/signal-names.h"

#include <errno.h>
#include <fcntl.h>
#include <glib-unix.h>
#include <signal.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

/* ------------------------------------------------------------ helpers */

static json_object *control_time_or_null(gint64 usec)
{
        if (!usec)
                return NULL;
        g_autoptr(GDateTime) dt = g_date_time_new_from_unix_utc(usec / G_USEC_PER_SEC);
        g_autofree char *base = g_date_time_format(dt, "%Y-%m-%dT%H:%M:%S");
        g_autofree char *text = g_strdup_printf("%s.%06" G_GINT64_FORMAT "Z", base, usec % G_USEC_PER_SEC);
        return json_object_new_string(text);
}

static json_object *control_string_or_null(const char *s)
{
        return s ? json_object_new_string(s) : NULL;
}

const char *control_container_state(CtrmonContext *ctx)
{
        if (ctx->exited_usec || ctx->container_exited)
                return "exited";
        if (ctx->container_pid <= 0)
                return "creating";
        return ctx->started_usec ? "running" : "created";
}

void control_emit(CtrmonContext *ctx, const char *type, json_object *fields)
{
        if (!fields)
                fields = json_object_new_object();
        json_object_object_add(fields, "id", json_object_new_string(ctx->opts->cid));
        control_api_emit_event(ctx->api, type, fields);
}

/* Between create and start the container's PID 1 is still the runtime's
 * init waiting to exec (runc:[2:INIT], crun's own binary): once it has
 * exec'd the container's process, it runs. */
static bool control_pid_is_runtime_init(pid_t pid, const char *runtime_path)
{
        g_autofree char *comm_path = g_strdup_printf("/proc/%d/comm", (int) pid);
        g_autofree char *comm = NULL;
        if (!g_file_get_contents(comm_path, &comm, NULL, NULL))
                return false;
        g_strstrip(comm);
        if (g_str_has_prefix(comm, "runc:"))
                return true;
        g_autofree char *runtime_name = g_path_get_basename(runtime_path);
        return g_str_equal(comm, runtime_name);
}

static void control_mark_started(CtrmonContext *ctx)
{
        if (ctx->started_usec)
                return;
        ctx->started_usec = g_get_real_time();
        json_object *f = json_object_new_object();
        json_object_object_add(f, "pid", json_object_new_int(ctx->container_pid));
        control_emit(ctx, CTRMON_EVENT_STARTED, f);
}

static gboolean control_started_poll_cb(gpointer user_data)
{
        CtrmonContext *ctx = user_data;
        ctx->started_poll_id = 0;
        if (ctx->container_exited || ctx->started_usec)
                return G_SOURCE_REMOVE;
        if (!control_pid_is_runtime_init(ctx->container_pid, ctx->opts->runtime_path)) {
                control_mark_started(ctx);
                return G_SOURCE_REMOVE;
        }
        /* Engines start right after create; a container left created is
         * looked at less and less often. */
        ctx->started_poll_ms = MIN(ctx->started_poll_ms * 2, 1000);
        ctx->started_poll_id = g_timeout_add(ctx->started_poll_ms, control_started_poll_cb, ctx);
        return G_SOURCE_REMOVE;
}

static bool control_require_running(CtrmonContext *ctx, ControlCall *call)
{
        if (ctx->container_pid > 0 && !ctx->container_exited)
                return true;
        control_call_error(call, CTRMON_CONTROL_ERROR_NOT_RUNNING, "Container %s is %s", ctx->opts->cid,
                           control_container_state(ctx));
        return false;
}

static bool control_get_int(ControlCall *call, json_object *params, const char *key, bool required, int min,
                            int max, int *ret)
{
        json_object *v = NULL;
        if (!json_object_object_get_ex(params, key, &v) || !v) {
                if (required)
                        control_call_error(call, CTRMON_CONTROL_ERROR_INVALID_PARAMS, "Missing parameter \"%s\"", key);
                return !required;
        }
        if (!json_object_is_type(v, json_type_int)) {
                control_call_error(call, CTRMON_CONTROL_ERROR_INVALID_PARAMS, "Parameter \"%s\" must be an integer",
                                   key);
                return false;
        }
        int64_t x = json_object_get_int64(v);
        if (x < min || x > max) {
                control_call_error(call, CTRMON_CONTROL_ERROR_INVALID_PARAMS,
                                   "Parameter \"%s\" must be between %d and %d", key, min, max);
                return false;
        }
        *ret = (int) x;
        return true;
}

/* ------------------------------------------------------------ methods */

static void control_method_version(ControlCall *call, json_object *params, void *user_data)
{
        json_object *r = json_object_new_object();
        json_object_object_add(r, "protocol", json_object_new_int(CTRMON_CONTROL_PROTOCOL_VERSION));
        json_object_object_add(r, "ctrmon", json_object_new_string(CTRMON_VERSION));
        json_object_object_add(r, "conmon_compat", json_object_new_string(CTRMON_CONMON_COMPAT_VERSION));
        json_object *methods = json_object_new_array();
        static const char *const names[] = {
                CTRMON_METHOD_VERSION, CTRMON_METHOD_STATUS, CTRMON_METHOD_PROCESSES, CTRMON_METHOD_WAIT,
                CTRMON_METHOD_KILL, CTRMON_METHOD_RESIZE, CTRMON_METHOD_CLOSE_STDIN, CTRMON_METHOD_REOPEN_LOG,
                CTRMON_METHOD_EXEC, CTRMON_METHOD_ATTACH, CTRMON_METHOD_LOGS, CTRMON_METHOD_STATS,
                CTRMON_METHOD_SUBSCRIBE,
        };
        for (size_t i = 0; i < G_N_ELEMENTS(names); i++)
                json_object_array_add(methods, json_object_new_string(names[i]));
        json_object_object_add(r, "methods", methods);
        json_object *events = json_object_new_array();
        static const char *const types[] = {
                CTRMON_EVENT_CREATED, CTRMON_EVENT_STARTED, CTRMON_EVENT_EXITED, CTRMON_EVENT_OOM,
                CTRMON_EVENT_LOG_ROTATED, CTRMON_EVENT_ATTACH_CONNECTED, CTRMON_EVENT_ATTACH_DISCONNECTED,
                CTRMON_EVENT_STDIN_CLOSED, CTRMON_EVENT_LOG_DROPPED, CTRMON_EVENT_LOG_WRITE_FAILED,
                CTRMON_EVENT_LOG_WRITE_RESUMED,
        };
        for (size_t i = 0; i < G_N_ELEMENTS(types); i++)
                json_object_array_add(events, json_object_new_string(types[i]));
        json_object_object_add(r, "events", events);
        control_call_reply(call, r);
}

static json_object *control_exit_fields(CtrmonContext *ctx)
{
        json_object *r = json_object_new_object();
        int status = ctx->exit_status;
        json_object_object_add(r, "exit_code", json_object_new_int(status));
        bool signaled = !ctx->timed_out && ctx->container_exited && WIFSIGNALED(ctx->container_wstatus);
        json_object_object_add(r, "signal", signaled ? json_object_new_int(WTERMSIG(ctx->container_wstatus)) : NULL);
        json_object_object_add(r, "timed_out", json_object_new_boolean(ctx->timed_out));
        json_object_object_add(r, "oom", json_object_new_boolean(ctx->oom_reported));
        return r;
}

static void control_method_status(ControlCall *call, json_object *params, void *user_data)
{
        CtrmonContext *ctx = user_data;
        const CtrmonOptions *o = ctx->opts;
        if (ctx->container_pid > 0 && !ctx->started_usec && !ctx->container_exited &&
            !control_pid_is_runtime_init(ctx->container_pid, o->runtime_path))
                control_mark_started(ctx);

        json_object *r = json_object_new_object();
        json_object_object_add(r, "id", json_object_new_string(o->cid));
        json_object_object_add(r, "name", control_string_or_null(o->name));
        json_object_object_add(r, "state", json_object_new_string(control_container_state(ctx)));
        json_object_object_add(r, "exec", json_object_new_boolean(o->exec));
        json_object_object_add(r, "monitor_pid", json_object_new_int(getpid()));
        json_object_object_add(r, "container_pid",
                               ctx->container_pid > 0 ? json_object_new_int(ctx->container_pid) : NULL);
        if (ctx->exited_usec) {
                json_object *e = control_exit_fields(ctx);
                json_object_object_foreach(e, key, val) json_object_object_add(r, key, json_object_get(val));
                json_object_put(e);
        } else {
                json_object_object_add(r, "exit_code", NULL);
                json_object_object_add(r, "signal", NULL);
                json_object_object_add(r, "timed_out", json_object_new_boolean(false));
                json_object_object_add(r, "oom", json_object_new_boolean(ctx->oom_reported));
        }
        json_object_object_add(r, "created_at", control_time_or_null(ctx->created_usec));
        json_object_object_add(r, "started_at", control_time_or_null(ctx->started_usec));
        json_object_object_add(r, "exited_at", control_time_or_null(ctx->exited_usec));
        json_object_object_add(r, "bundle", control_string_or_null(o->bundle));
        json_object_object_add(r, "runtime", json_object_new_string(o->runtime_path));
        json_object_object_add(r, "terminal", json_object_new_boolean(o->terminal));
        json_object_object_add(r, "stdin", json_object_new_boolean(o->stdin_open));
        json_object *logs = json_object_new_object();
        json_object_object_add(logs, "k8s_file", control_string_or_null(o->log.k8s_file ? o->log.k8s_path : NULL));
        json_object_object_add(logs, "journald", json_object_new_boolean(o->log.journald));
        json_object_object_add(logs, "passthrough", json_object_new_boolean(o->log.passthrough));
        json_object_object_add(r, "logs", logs);
        json_object *scopes = json_object_new_object();
        json_object_object_add(scopes, "monitor", control_string_or_null(ctx->monitor_scope));
        json_object_object_add(scopes, "container", control_string_or_null(ctx->container_scope));
        json_object_object_add(r, "scopes", scopes);
        json_object_object_add(r, "exit_dir", control_string_or_null(o->exit_dir));
        json_object_object_add(r, "api_socket", control_string_or_null(ctx->api_path));
        json_object_object_add(r, "waiters", json_object_new_int(ctx->waiters ? (int) ctx->waiters->len : 0));
        control_call_reply(call, r);
}

/* A waiter's client went away: nobody will hear the answer. */
static void control_waiter_gone_cb(ControlCall *call, void *user_data)
{
        CtrmonContext *ctx = user_data;
        if (ctx->waiters && g_ptr_array_remove(ctx->waiters, call))
                control_call_unref(call);
}

static void control_method_wait(ControlCall *call, json_object *params, void *user_data)
{
        CtrmonContext *ctx = user_data;
        if (ctx->exited_usec) {
                control_call_reply(call, control_exit_fields(ctx));
                return;
        }
        guint64 conn = control_call_connection_id(call);
        unsigned same = 0;
        for (guint i = 0; i < ctx->waiters->len; i++)
                if (control_call_connection_id(g_ptr_array_index(ctx->waiters, i)) == conn)
                        same++;
        if (same >= CTRMON_CONTROL_MAX_WAITS_PER_CONNECTION) {
                control_call_error(call, CTRMON_CONTROL_ERROR_LIMIT,
                                   "Too many waits: this connection has %u pending, the limit is %d", same,
                                   CTRMON_CONTROL_MAX_WAITS_PER_CONNECTION);
                return;
        }
        g_ptr_array_add(ctx->waiters, control_call_ref(call));
        control_call_set_gone_fn(call, control_waiter_gone_cb, ctx);
}

/* "signal": a number, or a name as ctrmon-api(7) and signal-names.h say. */
static int control_parse_signal(json_object *v)
{
        if (json_object_is_type(v, json_type_int)) {
                int64_t n = json_object_get_int64(v);
                return n >= 1 && n < NSIG ? (int) n : -1;
        }
        if (!json_object_is_type(v, json_type_string))
                return -1;
        return ctrmon_signal_from_name(json_object_get_string(v));
}

/* "kill" with "all": `runtime kill --all`, run like every other child of
 * the monitor (reaped through the context's child watches, never waited
 * for in the loop), bounded by --runtime-timeout. Its stderr is kept (the
 * first CONTROL_KILL_STDERR_MAX bytes) for the error message. */
typedef struct {
        CtrmonContext *ctx;
        ControlCall *call;
        int signo;
        pid_t pid;              /* > 0 until reaped */
        int err_fd;
        guint err_id;
        GString *err;
        guint timeout_id;
} ControlKillAll;

#define CONTROL_KILL_STDERR_MAX 4096

static void control_kill_all_free(ControlKillAll *k)
{
        if (!k)
                return;
        if (k->err_id)
                g_source_remove(k->err_id);
        ctrmon_close_fd(&k->err_fd);
        if (k->timeout_id)
                g_source_remove(k->timeout_id);
        /* Still running (a timeout, teardown): no longer waited for, the
         * reaper treats it as an orphan. */
        if (k->pid > 0)
                context_unwatch_child(k->ctx, k->pid);
        if (k->call)
                control_call_unref(k->call);
        if (k->err)
                g_string_free(k->err, TRUE);
        g_free(k);
}

static void control_kill_all_finish(ControlKillAll *k)
{
        g_ptr_array_remove(k->ctx->control_kills, k);
        control_kill_all_free(k);
}

/* Read what the runtime wrote; false at EOF or error (then closed). */
static bool control_kill_all_read(ControlKillAll *k)
{
        char buf[4096];
        ssize_t n = read(k->err_fd, buf, sizeof buf);
        if (n < 0 && (errno == EAGAIN || errno == EINTR))
                return false;
        if (n <= 0) {
                if (k->err_id)
                        g_source_remove(k->err_id);
                k->err_id = 0;
                ctrmon_close_fd(&k->err_fd);
                return false;
        }
        size_t room = CONTROL_KILL_STDERR_MAX > k->err->len ? CONTROL_KILL_STDERR_MAX - k->err->len : 0;
        g_string_append_len(k->err, buf, (gssize) MIN((size_t) n, room));
        return true;
}

static gboolean control_kill_all_stderr_cb(int fd, GIOCondition condition, gpointer user_data)
{
        ControlKillAll *k = user_data;
        control_kill_all_read(k);
        if (k->err_fd < 0) {
                k->err_id = 0; /* removed by returning */
                return G_SOURCE_REMOVE;
        }
        return G_SOURCE_CONTINUE;
}

static void control_kill_all_reply(ControlKillAll *k)
{
        json_object *r = json_object_new_object();
        json_object_object_add(r, "signal", json_object_new_int(k->signo));
        json_object_object_add(r, "all", json_object_new_boolean(true));
        control_call_reply(k->call, r);
}

static void control_kill_all_exited_cb(pid_t pid, int wstatus, void *user_data)
{
        ControlKillAll *k = user_data;
        k->pid = 0;
        while (k->err_fd >= 0 && control_kill_all_read(k))
                ;
        if (WIFEXITED(wstatus) && WEXITSTATUS(wstatus) == 0) {
                control_kill_all_reply(k);
        } else {
                g_strstrip(k->err->str);
                k->err->len = strlen(k->err->str);
                control_call_error(k->call, CTRMON_CONTROL_ERROR_FAILED, "%s kill --all failed with status %d%s%s",
                                   k->ctx->opts->runtime_path, reaper_exit_code(wstatus), k->err->len ? ": " : "",
                                   k->err->str);
        }
        control_kill_all_finish(k);
}

static gboolean control_kill_all_timeout_cb(gpointer user_data)
{
        ControlKillAll *k = user_data;
        k->timeout_id = 0;
        /* The runtime and whatever it started (runc leaves them in our
         * process group: never signal the group). */
        g_autoptr(GArray) tree = control_proc_descendants(k->pid);
        kill(k->pid, SIGKILL);
        for (guint i = 0; i < tree->len; i++)
                kill(g_array_index(tree, pid_t, i), SIGKILL);
        log_warning("%s kill --all did not finish within %d s: killed it", k->ctx->opts->runtime_path,
                    k->ctx->opts->runtime_timeout);
        control_call_error(k->call, CTRMON_CONTROL_ERROR_FAILED,
                           "%s kill --all did not finish within %d s (--runtime-timeout)", k->ctx->opts->runtime_path,
                           k->ctx->opts->runtime_timeout);
        control_kill_all_finish(k);
        return G_SOURCE_REMOVE;
}

static int control_kill_all_start(CtrmonContext *ctx, ControlCall *call, int signo, GError **error)
{
        const CtrmonOptions *o = ctx->opts;
        int fds[2];
        if (pipe2(fds, O_CLOEXEC | O_NONBLOCK) < 0)
                return ctrmon_set_error_errno(error, errno, "Failed to create a pipe");
        _cleanup_close_ int err_read = fds[0], err_write = fds[1];
        /* The runtime writes blocking; only our end is non-blocking. */
        fcntl(err_write, F_SETFL, fcntl(err_write, F_GETFL) & ~O_NONBLOCK);

        RuntimeCall rc = {
                .action = RUNTIME_ACTION_KILL,
                .runtime_path = o->runtime_path,
                .cid = o->cid,
                .runtime_args = (const char *const *) o->runtime_args,
                .signal = signo,
                .kill_all = true,
        };
        g_auto(GStrv) argv = runtime_argv_build(&rc);
        RuntimeSpawn spawn = {
                .argv = argv,
                .stdin_fd = ctx->dev_null_fd,
                .stdout_fd = ctx->dev_null_fd,
                .stderr_fd = err_write,
                .monitor_pid = getpid(),
                .start_pipe_fd = -1,
                .oom_score_adj = ctx->saved_oom_score_adj,
                .sigmask = &ctx->original_sigmask,
        };
        pid_t pid;
        int r = runtime_spawn(&spawn, &pid, error);
        if (r < 0)
                return r;

        ControlKillAll *k = g_new0(ControlKillAll, 1);
        k->ctx = ctx;
        k->call = control_call_ref(call);
        k->signo = signo;
        k->pid = pid;
        k->err_fd = TAKE_FD(err_read);
        k->err = g_string_new(NULL);
        /* SIGCHLD is read in the main loop: nothing is reaped before the
         * watch exists. */
        context_watch_child(ctx, pid, control_kill_all_exited_cb, k);
        k->err_id = g_unix_fd_add(k->err_fd, G_IO_IN | G_IO_HUP | G_IO_ERR, control_kill_all_stderr_cb, k);
        if (o->runtime_timeout > 0)
                k->timeout_id = g_timeout_add_seconds((guint) o->runtime_timeout, control_kill_all_timeout_cb, k);
        if (!ctx->control_kills)
                ctx->control_kills = g_ptr_array_new();
        g_ptr_array_add(ctx->control_kills, k);
        return 0;
}

static void control_method_kill(ControlCall *call, json_object *params, void *user_data)
{
        CtrmonContext *ctx = user_data;
        int signo = SIGTERM;
        json_object *v = NULL;
        if (json_object_object_get_ex(params, "signal", &v) && v && (signo = control_parse_signal(v)) < 0) {
                control_call_error(call, CTRMON_CONTROL_ERROR_INVALID_PARAMS,
                                   "Parameter \"signal\" must be a signal number or name such as \"TERM\"");
                return;
        }
        bool all = json_object_object_get_ex(params, "all", &v) && json_object_get_boolean(v);
        if (!control_require_running(ctx, call))
                return;
        if (all) {
                guint running = ctx->control_kills ? ctx->control_kills->len : 0;
                if (running >= CTRMON_CONTROL_MAX_KILLS) {
                        control_call_error(call, CTRMON_CONTROL_ERROR_LIMIT,
                                           "Too many \"kill\" with \"all\": %u running, the limit is %d", running,
                                           CTRMON_CONTROL_MAX_KILLS);
                        return;
                }
                /* Answered when the runtime has exited. */
                g_autoptr(GError) error = NULL;
                if (control_kill_all_start(ctx, call, signo, &error) < 0)
                        control_call_error(call, CTRMON_CONTROL_ERROR_FAILED, "%s", error->message);
                return;
        }
        if (kill(ctx->container_pid, signo) < 0) {
                control_call_error(call, CTRMON_CONTROL_ERROR_FAILED, "Failed to send signal %d to %d: %s", signo,
                                   (int) ctx->container_pid, g_strerror(errno));
                return;
        }
        json_object *r = json_object_new_object();
        json_object_object_add(r, "signal", json_object_new_int(signo));
        json_object_object_add(r, "all", json_object_new_boolean(false));
        control_call_reply(call, r);
}

static void control_method_resize(ControlCall *call, json_object *params, void *user_data)
{
        CtrmonContext *ctx = user_data;
        int rows = 0, cols = 0;
        if (!control_get_int(call, params, "rows", true, 0, 65535, &rows) ||
            !control_get_int(call, params, "cols", true, 0, 65535, &cols))
                return;
        g_autoptr(GError) error = NULL;
        int r = context_resize_terminal(ctx, rows, cols, &error);
        if (r < 0) {
                control_call_error(call, r == -ENOTTY ? CTRMON_CONTROL_ERROR_UNSUPPORTED : CTRMON_CONTROL_ERROR_FAILED,
                                   "%s", error->message);
                return;
        }
        control_call_reply(call, NULL);
}

static void control_method_close_stdin(ControlCall *call, json_object *params, void *user_data)
{
        CtrmonContext *ctx = user_data;
        if (!ctx->relay || !stdio_relay_has_input(ctx->relay)) {
                control_call_error(call, CTRMON_CONTROL_ERROR_UNSUPPORTED,
                                   "Container %s has no open stdin (ctrmon was started without -i, or it is closed)",
                                   ctx->opts->cid);
                return;
        }
        stdio_relay_close_input(ctx->relay);
        control_emit(ctx, CTRMON_EVENT_STDIN_CLOSED, NULL);
        control_call_reply(call, NULL);
}

static void control_method_reopen_log(ControlCall *call, json_object *params, void *user_data)
{
        CtrmonContext *ctx = user_data;
        context_reopen_logs(ctx);
        control_emit(ctx, CTRMON_EVENT_LOG_ROTATED, NULL);
        control_call_reply(call, NULL);
}

static gint64 control_self_rss_bytes(void)
{
        g_autofree char *status = NULL;
        if (!g_file_get_contents("/proc/self/status", &status, NULL, NULL))
                return -1;
        const char *p = strstr(status, "VmRSS:");
        return p ? (gint64) g_ascii_strtoull(p + 6, NULL, 10) * 1024 : -1;
}

static void control_method_stats(ControlCall *call, json_object *params, void *user_data)
{
        CtrmonContext *ctx = user_data;
        json_object *r = json_object_new_object();
        json_object *cg = ctx->container_pid > 0 && !ctx->container_exited ? cgroup_stats_read(ctx->container_pid) : NULL;
        json_object_object_add(r, "cgroup", cg);

        json_object *m = json_object_new_object();
        StdioStats st = { 0 };
        if (ctx->relay)
                stdio_relay_get_stats(ctx->relay, &st);
        static const char *const streams[] = { "stdout", "stderr" };
        for (int i = 0; i < 2; i++) {
                json_object *s = json_object_new_object();
                json_object_object_add(s, "bytes", json_object_new_int64((int64_t) st.bytes[i]));
                json_object_object_add(s, "lines", json_object_new_int64((int64_t) st.lines[i]));
                json_object_object_add(m, streams[i], s);
        }
        json_object_object_add(m, "stdin_bytes", json_object_new_int64((int64_t) st.stdin_bytes));
        guint64 dropped = 0;
        K8sFileStats ks;
        if (context_get_k8s_stats(ctx, &ks)) {
                dropped += ks.bytes_dropped;
                json_object_object_add(m, "log_file_bytes", json_object_new_int64(ks.current_size));
        }
        LogBufferStats lb = { 0 };
        context_get_log_buffer_stats(ctx, &lb);
        json_object_object_add(m, "log_bytes_dropped", json_object_new_int64((int64_t) dropped));
        json_object_object_add(m, "log_write_errors", json_object_new_int64((int64_t) lb.write_errors));
        /* --log-buffer-size: what waits for the writer thread, and the
         * container output that did not fit (all zero in lossless mode). */
        json_object *buf = json_object_new_object();
        json_object_object_add(buf, "size", json_object_new_int64((int64_t) lb.size));
        json_object_object_add(buf, "bytes_queued", json_object_new_int64((int64_t) lb.bytes_queued));
        json_object_object_add(buf, "bytes_queued_max", json_object_new_int64((int64_t) lb.bytes_queued_max));
        json_object_object_add(buf, "bytes_dropped", json_object_new_int64((int64_t) lb.bytes_dropped));
        json_object_object_add(buf, "chunks_dropped", json_object_new_int64((int64_t) lb.chunks_dropped));
        json_object_object_add(m, "log_buffer", buf);
        AttachStats as = { 0 };
        if (ctx->attach)
                attach_server_get_stats(ctx->attach, &as);
        json_object_object_add(m, "attach_clients", json_object_new_int((int) as.clients));
        /* Back-pressure: clients at their queue bound now and how often one
         * got there; whether output reading is paused for a consumer now,
         * and how often it was. */
        json_object_object_add(m, "attach_clients_full", json_object_new_int((int) as.clients_full));
        json_object_object_add(m, "attach_holds", json_object_new_int64((int64_t) as.holds_total));
        json_object_object_add(m, "output_held", json_object_new_boolean(st.output_held));
        json_object_object_add(m, "output_held_count", json_object_new_int64((int64_t) st.output_held_count));
        json_object_object_add(m, "stdin_queued", json_object_new_int64((int64_t) st.stdin_queued));
        /* Only API attach clients that asked to be "lossy" are ever cut
         * off, and only they count here. */
        json_object_object_add(m, "attach_clients_dropped", json_object_new_int64((int64_t) ctx->attach_lossy_dropped));
        json_object_object_add(m, "attach_bytes_dropped", json_object_new_int64((int64_t) ctx->attach_lossy_bytes_dropped));
        json_object_object_add(m, "attach_bytes_queued_max", json_object_new_int64((int64_t) as.bytes_queued_max));
        json_object_object_add(m, "rss_bytes", json_object_new_int64(control_self_rss_bytes()));
        json_object_object_add(m, "uptime_seconds",
                               json_object_new_double((double) (g_get_monotonic_time() - ctx->start_monotonic_usec) /
                                                      G_USEC_PER_SEC));
        json_object_object_add(r, "monitor", m);
        control_call_reply(call, r);
}

static void control_method_subscribe(ControlCall *call, json_object *params, void *user_data)
{
        CtrmonContext *ctx = user_data;
        control_call_subscribe(call);
        json_object *r = json_object_new_object();
        json_object_object_add(r, "subscribed", json_object_new_boolean(true));
        json_object_object_add(r, "state", json_object_new_string(control_container_state(ctx)));
        control_call_reply(call, r);
}

static const ControlMethod control_methods[] = {
        { CTRMON_METHOD_VERSION, control_method_version },
        { CTRMON_METHOD_STATUS, control_method_status },
        { CTRMON_METHOD_WAIT, control_method_wait },
        { CTRMON_METHOD_KILL, control_method_kill },
        { CTRMON_METHOD_RESIZE, control_method_resize },
        { CTRMON_METHOD_CLOSE_STDIN, control_method_close_stdin },
        { CTRMON_METHOD_REOPEN_LOG, control_method_reopen_log },
        { CTRMON_METHOD_STATS, control_method_stats },
        { CTRMON_METHOD_SUBSCRIBE, control_method_subscribe },
        { CTRMON_METHOD_PROCESSES, control_method_processes },
        { CTRMON_METHOD_LOGS, control_method_logs },
        { CTRMON_METHOD_EXEC, control_method_exec },
        { CTRMON_METHOD_ATTACH, control_method_attach },
        { NULL, NULL },
};

/* ------------------------------------------------------------ hooks */

int control_setup(CtrmonContext *ctx, GError **error)
{
        const CtrmonOptions *o = ctx->opts;
        ctx->waiters = g_ptr_array_new();
        ctx->started_poll_ms = 10;

        if (o->api_socket) {
                ctx->api_path = g_strdup(o->api_socket);
        } else if (o->bundle) {
                g_autofree char *dir = g_build_filename(o->bundle, CTRMON_CONTROL_SOCKET_DIR, NULL);
                /* Only the owner may enter: the socket's mode alone is not
                 * a boundary on every system. */
                /* Never through a planted symlink: made or repaired as a
                 * real 0700 directory of ours, else refused. */
                int dfd = fs_open_private_dir(dir, 0700, error);
                if (dfd < 0)
                        return dfd;
                close(dfd);
                g_autofree char *name = o->exec ? g_strdup_printf("exec-%d.sock", (int) getpid())
                                                : g_strdup(CTRMON_CONTROL_SOCKET_NAME);
                ctx->api_path = g_build_filename(dir, name, NULL);
        } else {
                return 0; /* an exec without bundle: no place for a socket */
        }

        ControlApiConfig config = {
                .path = ctx->api_path,
                .methods = control_methods,
                .user_data = ctx,
                .owner_uid = geteuid(),
                .remove_dir = !o->api_socket,
        };
        /* A predecessor monitor on this bundle (a restart) may remove the
         * directory at its exit just as we bind in it: make it again. */
        for (int attempt = 0;; attempt++) {
                g_autoptr(GError) local = NULL;
                int r = control_api_new(&config, &ctx->api, &local);
                if (r != -ENOENT || o->api_socket || attempt >= 2) {
                        if (r < 0)
                                g_propagate_error(error, g_steal_pointer(&local));
                        return r;
                }
                g_autofree char *dir = g_path_get_dirname(ctx->api_path);
                int dfd = fs_open_private_dir(dir, 0700, error);
                if (dfd < 0)
                        return dfd;
                close(dfd);
        }
}

void control_container_created(CtrmonContext *ctx)
{
        ctx->created_usec = g_get_real_time();
        json_object *f = json_object_new_object();
        json_object_object_add(f, "pid", json_object_new_int(ctx->container_pid));
        control_emit(ctx, CTRMON_EVENT_CREATED, f);
        if (control_pid_is_runtime_init(ctx->container_pid, ctx->opts->runtime_path))
                ctx->started_poll_id = g_timeout_add(ctx->started_poll_ms, control_started_poll_cb, ctx);
        else
                control_mark_started(ctx); /* exec, restore: running already */
}

void control_container_started(CtrmonContext *ctx)
{
        control_mark_started(ctx);
}

/* Answer (or, at teardown, drop) every waiter. Answering may close a
 * connection and so call waiters' gone callbacks: they look in the new,
 * empty array and leave these alone. */
static void control_answer_waiters(CtrmonContext *ctx, bool answer)
{
        if (!ctx->waiters)
                return;
        g_autoptr(GPtrArray) waiters = g_steal_pointer(&ctx->waiters);
        ctx->waiters = g_ptr_array_new();
        for (guint i = 0; i < waiters->len; i++)
                control_call_set_gone_fn(g_ptr_array_index(waiters, i), NULL, NULL);
        for (guint i = 0; i < waiters->len; i++) {
                ControlCall *call = g_ptr_array_index(waiters, i);
                if (answer)
                        control_call_reply(call, control_exit_fields(ctx));
                control_call_unref(call);
        }
}

void control_container_exited(CtrmonContext *ctx, int status)
{
        ctx->exit_status = status;
        /* A container that exited before the start poll saw it run still
         * ran: a created one cannot exit by itself (the runtime's init waits
         * for start), it can only be killed. So "exited normally" implies
         * "started", and subscribers see created, started, exited. */
        if (!ctx->started_usec && ctx->container_exited && WIFEXITED(ctx->container_wstatus))
                control_mark_started(ctx);
        ctx->exited_usec = g_get_real_time();
        if (ctx->started_poll_id) {
                g_source_remove(ctx->started_poll_id);
                ctx->started_poll_id = 0;
        }
        control_answer_waiters(ctx, true);
        control_emit(ctx, CTRMON_EVENT_EXITED, control_exit_fields(ctx));
        control_exec_container_exited(ctx);
        control_logs_container_exited(ctx, status);
        control_attach_container_exited(ctx, status);
        /* Waiters, followers, subscribers and "kill --all" callers should
         * get their last answers: the lifecycle runs the loop while
         * control_exit_pending(); a client that does not read them within
         * the bound loses them. Nothing blocks here. */
        control_api_linger(ctx->api, CTRMON_CONTROL_EXIT_LINGER_MS);
}

bool control_exit_pending(CtrmonContext *ctx)
{
        if (!control_api_lingering(ctx->api))
                return false;
        return control_api_pending(ctx->api) || (ctx->control_kills && ctx->control_kills->len > 0) ||
               control_logs_pending(ctx);
}

void control_teardown(CtrmonContext *ctx)
{
        control_exec_teardown(ctx);
        control_logs_teardown(ctx);
        control_attach_teardown(ctx);
        while (ctx->control_kills && ctx->control_kills->len > 0)
                control_kill_all_finish(g_ptr_array_index(ctx->control_kills, 0));
        g_clear_pointer(&ctx->control_kills, g_ptr_array_unref);
        control_answer_waiters(ctx, false);
        /* Removes the socket (if still ours) and, for the default path, its
         * directory if empty. */
        g_clear_pointer(&ctx->api, control_api_free);
}
