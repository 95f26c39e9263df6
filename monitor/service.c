/* ctrmon and systemd: unit mode (--start under a Type=notify unit: READY=1,
 * STATUS=, STOPPING=1, watchdog pings, `runtime start`) and the transient
 * scopes of --systemd-scope. Outside a unit nothing here talks to systemd
 * for the monitor itself. */
#include "service.h"

#include "bus.h"
#include "cgroup-util.h"
#include "control-methods.h"
#include "diag.h"
#include "runtime-shim.h"
#include "ctrmon/error.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <signal.h>
#include <stdarg.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

/* Unit mode only (--start with $NOTIFY_SOCKET): tell the service manager.
 * Outside a unit ctx->notify is NULL and nothing is sent. */
void service_notify(CtrmonContext *ctx, const char *format, ...)
{
        if (!ctx->notify)
                return;
        va_list ap;
        va_start(ap, format);
        g_autofree char *message = g_strdup_vprintf(format, ap);
        va_end(ap);
        g_autoptr(GError) error = NULL;
        if (sdnotify_client_send(ctx->notify, message, &error) < 0)
                log_warning("%s, ignoring", error->message);
}

static gboolean service_watchdog_cb(gpointer user_data)
{
        service_notify(user_data, "WATCHDOG=1");
        return G_SOURCE_CONTINUE;
}

/* --systemd-scope: put `pid` into a transient scope. Returns < 0 only when
 * the scope is required; otherwise a failure is a warning. */
int service_scope(CtrmonContext *ctx, const char *suffix, const char *what, pid_t pid, bool delegate,
                  GError **error)
{
        const CtrmonOptions *o = ctx->opts;
        CtrmonBusKind kind = o->systemd_bus ? (g_str_equal(o->systemd_bus, "user") ? CTRMON_BUS_USER : CTRMON_BUS_SYSTEM)
                                            : bus_default_kind(geteuid());
        g_autofree char *unit = bus_unit_name("ctrmon-", o->cid, suffix);
        g_autofree char *description = g_strdup_printf("%s %s%s%s%s", what, o->cid, o->name ? " (" : "",
                                                       o->name ? o->name : "", o->name ? ")" : "");
        BusScope scope = {
                .kind = kind,
                .unit = unit,
                .description = description,
                .slice = o->systemd_slice ? o->systemd_slice : bus_default_slice(kind),
                .pid = pid,
                .delegate = delegate,
        };
        g_autoptr(GError) local = NULL;
        if (bus_start_scope(&scope, &local) < 0) {
                if (o->systemd_scope_required) {
                        g_propagate_error(error, g_steal_pointer(&local));
                        return -EIO;
                }
                log_warning("%s; the container runs without it", local->message);
                return 0;
        }
        log_info("%s runs in %s on the %s manager", what, unit, bus_kind_name(kind));
        g_free(pid == getpid() ? ctx->monitor_scope : ctx->container_scope);
        if (pid == getpid())
                ctx->monitor_scope = g_steal_pointer(&unit);
        else
                ctx->container_scope = g_steal_pointer(&unit);
        return 0;
}


int service_setup(CtrmonContext *ctx, GError **error)
{
        const CtrmonOptions *o = ctx->opts;
        g_autoptr(GError) local = NULL;

        /* Unit mode: our own channel to systemd, and NOTIFY_SOCKET out of
         * the runtime's environment. */
        if (o->start && sdnotify_client_from_env(&ctx->notify, &local) < 0)
                log_warning("%s, ignoring", local->message);
        if (o->systemd_scope && service_scope(ctx, ".scope", "ctrmon monitor of container", getpid(), false, error) < 0)
                return -EIO;
        service_notify(ctx, "STATUS=Creating container %s", o->cid);
        return 0;
}

/* --start: `runtime start` once the output is being relayed, then tell the
 * service manager the container runs. */
void service_start_container(CtrmonContext *ctx)
{
        const CtrmonOptions *o = ctx->opts;
        if (ctx->notify && !o->systemd_scope)
                service_keep_container_in_unit(ctx);
        RuntimeCall call = {
                .action = RUNTIME_ACTION_START,
                .runtime_path = o->runtime_path,
                .cid = o->cid,
                .runtime_args = (const char *const *) o->runtime_args,
        };
        g_auto(GStrv) argv = runtime_argv_build(&call);
        int err_pipe[2];
        g_autoptr(GError) error = NULL;
        if (pipe2(err_pipe, O_CLOEXEC) < 0) {
                log_error_errno(errno, "Failed to create a pipe for runtime start");
                ctx->start_failed = true;
                return;
        }
        RuntimeSpawn spawn = {
                .argv = argv,
                .stdin_fd = ctx->dev_null_fd,
                .stdout_fd = ctx->dev_null_fd,
                .stderr_fd = err_pipe[1],
                .monitor_pid = getpid(),
                .start_pipe_fd = -1,
                .oom_score_adj = ctx->saved_oom_score_adj,
                .sigmask = &ctx->original_sigmask,
        };
        pid_t pid = 0;
        int r = runtime_spawn(&spawn, &pid, &error);
        close(err_pipe[1]);
        int wstatus = 0;
        if (r >= 0) {
                /* Only this child: the drain loop collects the rest later. */
                while (waitpid(pid, &wstatus, 0) < 0 && errno == EINTR)
                        ;
        }
        char message[4096] = "";
        ssize_t n = read(err_pipe[0], message, sizeof message - 1);
        message[n > 0 ? n : 0] = '\0';
        close(err_pipe[0]);

        if (r < 0 || !WIFEXITED(wstatus) || WEXITSTATUS(wstatus) != 0) {
                log_error("Failed to start container %s: %s", o->cid,
                          r < 0 ? error->message : *message ? g_strstrip(message) : "runtime start failed");
                service_notify(ctx, "STATUS=Failed to start container %s", o->cid);
                ctx->start_failed = true;
                kill(ctx->container_pid, SIGKILL);
                return;
        }
        log_info("Container %s started (pid %d)", o->cid, (int) ctx->container_pid);
        control_container_started(ctx);
        service_notify(ctx, "READY=1\nMAINPID=%d\nSTATUS=Container %s running (pid %d)", (int) getpid(), o->cid,
                         (int) ctx->container_pid);
        guint64 watchdog_usec = sdnotify_client_watchdog_usec(ctx->notify);
        if (watchdog_usec > 0)
                ctx->watchdog_id = g_timeout_add((guint) MAX(watchdog_usec / 2000, 1), service_watchdog_cb, ctx);
}

bool service_stderr_is_journal(void)
{
        const char *stream = g_getenv("JOURNAL_STREAM");
        struct stat st;
        if (!stream || fstat(2, &st) < 0)
                return false;
        g_autofree char *mine = g_strdup_printf("%lu:%lu", (unsigned long) st.st_dev, (unsigned long) st.st_ino);
        return g_str_equal(stream, mine);
}

void service_keep_container_in_unit(CtrmonContext *ctx)
{
        const char *root = cgroup_unified_root();
        g_autofree char *own = cgroup_path_of_pid(getpid(), NULL);
        g_autofree char *theirs = cgroup_path_of_pid(ctx->container_pid, NULL);
        if (!root || !own || !theirs)
                return;
        size_t n = strlen(own);
        if (strncmp(theirs, own, n) == 0 && (theirs[n] == '/' || theirs[n] == '\0' || g_str_equal(own, "/")))
                return; /* already inside: rootless runc, or a runtime that nests */

        /* runc 1.1 in the hybrid layout puts the unified cgroup at /<id>,
         * outside the unit: systemd would neither see nor stop it. */
        g_autofree char *escaped = g_uri_escape_string(ctx->opts->cid, NULL, FALSE);
        g_autofree char *dir = g_build_filename(root, own, escaped, NULL);
        g_autofree char *procs = g_build_filename(dir, "cgroup.procs", NULL);
        g_autofree char *pid = g_strdup_printf("%d", (int) ctx->container_pid);
        int fd = -1;
        if ((mkdir(dir, 0755) < 0 && errno != EEXIST) || (fd = open(procs, O_WRONLY | O_CLOEXEC)) < 0 ||
            write(fd, pid, strlen(pid)) < 0) {
                int e = errno;
                if (fd >= 0)
                        close(fd);
                log_warning("Could not move container %s into the unit's cgroup %s: %s; systemd will not count it "
                            "as part of the unit",
                            ctx->opts->cid, dir, g_strerror(e));
                return;
        }
        close(fd);
        log_info("Moved container %s from cgroup %s into the unit's %s", ctx->opts->cid, theirs, dir);
}
