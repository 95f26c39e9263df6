/* The monitor's start-up as a daemon (spec §2.1-2.2): protection from the OOM
 * killer, the start pipe, the descriptors the caller passes on purpose, the
 * daemonizing fork and what the daemon sets up for itself. Nothing here
 * starts the runtime or reports to the caller; lifecycle.c does. */
#include "daemon.h"

#include "diag.h"
#include "fs-util.h"
#include "service.h"
#include "sync-pipe.h"
#include "ctrmon/error.h"

#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/prctl.h>
#include <unistd.h>

void daemon_protect_from_oom_killer(CtrmonContext *ctx)
{
        /* The monitor holds the exit status: it should be the last thing the
         * OOM killer picks. The runtime and exit command get the old value. */
        g_autofree char *old = NULL;
        if (g_file_get_contents("/proc/self/oom_score_adj", &old, NULL, NULL))
                ctx->saved_oom_score_adj = g_strstrip(g_steal_pointer(&old));
        int fd = open("/proc/self/oom_score_adj", O_WRONLY | O_CLOEXEC);
        if (fd < 0 || write(fd, "-1000", 5) < 0)
                log_debug("Failed to set oom_score_adj to -1000: %s", g_strerror(errno));
        if (fd >= 0)
                close(fd);
}

int daemon_read_start_pipe(CtrmonContext *ctx, GError **error)
{
        int fd = -1;
        int r = sync_pipe_fd_from_env("_OCI_STARTPIPE", &fd, error);
        if (r < 0 || fd < 0)
                return r;

        /* The caller uses this pause to move the monitor into a cgroup before
         * anything else exists; the content is not used. */
        char buf[8192];
        ssize_t n;
        do
                n = read(fd, buf, sizeof buf);
        while (n < 0 && errno == EINTR);
        if (n < 0)
                return ctrmon_set_error(error, errno, "start-pipe read failed");

        /* --exec-attach reads it a second time, in the runtime child. */
        if (ctx->opts->exec_attach)
                ctx->start_pipe_fd = fd;
        else
                close(fd);
        return 0;
}

/* Descriptors the caller passed on purpose (not CLOEXEC): the runtime inherits
 * them at the same numbers (podman's --preserve-fds); the monitor closes them
 * before it writes the exit files. */
void daemon_record_inherited_fds(CtrmonContext *ctx)
{
        DIR *dir = opendir("/proc/self/fd");
        if (!dir)
                return;
        int self = dirfd(dir);
        struct dirent *de;
        while ((de = readdir(dir))) {
                if (de->d_name[0] == '.')
                        continue;
                int fd = atoi(de->d_name);
                if (fd < 3 || fd == self)
                        continue;
                int flags = fcntl(fd, F_GETFD);
                if (flags >= 0 && !(flags & FD_CLOEXEC))
                        g_array_append_val(ctx->inherited_fds, fd);
        }
        closedir(dir);
}

int daemon_fork(CtrmonContext *ctx, GError **error)
{
        if (ctx->opts->sync)
                return 0;

        pid_t pid = fork();
        if (pid < 0)
                return ctrmon_set_error_errno(error, errno, "Failed to fork the monitor daemon");
        if (pid > 0) {
                /* The caller may rely on the pidfile existing as soon as
                 * this process has exited. */
                if (ctx->opts->conmon_pidfile) {
                        char content[32];
                        int len = g_snprintf(content, sizeof content, "%d", (int) pid);
                        g_autoptr(GError) local = NULL;
                        if (fs_write_file_atomic(ctx->opts->conmon_pidfile, content, (size_t) len, 0644,
                                                 &local) < 0) {
                                fprintf(stderr, "[conmon:e]: Failed to write conmon pidfile: %s\n", local->message);
                                _exit(1);
                        }
                }
                _exit(0);
        }
        return 0;
}

int daemon_become(CtrmonContext *ctx, GError **error)
{
        const CtrmonOptions *o = ctx->opts;
        int r = sync_pipe_fd_from_env("_OCI_SYNCPIPE", &ctx->sync.fd, error);
        if (r < 0)
                return r;
        if (o->exec_attach) {
                r = sync_pipe_fd_from_env("_OCI_ATTACHPIPE", &ctx->attach_pipe_fd, error);
                if (r < 0)
                        return r;
                if (ctx->attach_pipe_fd < 0)
                        return ctrmon_set_error(error, EINVAL, "--attach specified but _OCI_ATTACHPIPE was not");
        }

        /* Passthrough: the runtime needs the caller's stdio; ours is
         * replaced after the runtime has been forked. */
        /* In a unit, stdout and stderr are the journal: keep them so our own
         * messages reach `systemctl status`. */
        if (!o->log.passthrough) {
                bool keep_output = o->start && service_stderr_is_journal();
                for (int fd = 0; fd < 3; fd++)
                        if (fd == 0 || !keep_output)
                                dup2(ctx->dev_null_fd, fd);
        }

        if (setsid() < 0 && errno != EPERM)
                log_debug("setsid failed: %s", g_strerror(errno));

        if (prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) < 0)
                return ctrmon_set_error_errno(error, errno, "Failed to become the subreaper of the container");
        return 0;
}

void daemon_close_inherited_fds(CtrmonContext *ctx)
{
        for (guint i = 0; i < ctx->inherited_fds->len; i++)
                close(g_array_index(ctx->inherited_fds, int, i));
        g_array_set_size(ctx->inherited_fds, 0);
}
