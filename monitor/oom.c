/* OOM watching for one cgroup. It reports OOM kills to its callback; writing
 * the oom files and telling clients is the caller's business. Failing to set
 * up a watch costs only the OOM report, never the container. */
#include "oom.h"

#include "cgroup-util.h"

#include "ctrmon/error.h"
#include "ctrmon/fd-util.h"

#include <fcntl.h>
#include <glib-unix.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/inotify.h>
#include <unistd.h>

struct OomWatch {
        bool v2;
        int event_fd;          /* v1: eventfd; v2: inotify fd */
        int oom_control_fd;    /* v1 only */
        char *cgroup_dir;
        guint source_id;
        guint64 last_oom;
        guint64 last_oom_kill;
        OomFn oom_cb;
        void *user_data;
};

void oom_parse_memory_events(const char *content, guint64 *ret_oom, guint64 *ret_oom_kill)
{
        guint64 oom = 0, oom_kill = 0;
        g_auto(GStrv) lines = g_strsplit(content, "\n", -1);
        for (char **l = lines; *l; l++) {
                if (g_str_has_prefix(*l, "oom "))
                        oom = g_ascii_strtoull(*l + 4, NULL, 10);
                else if (g_str_has_prefix(*l, "oom_kill "))
                        oom_kill = g_ascii_strtoull(*l + 9, NULL, 10);
        }
        *ret_oom = oom;
        *ret_oom_kill = oom_kill;
}

/* v2: a changed counter that is non-zero means a new OOM. Unlike conmon, the
 * watch stays armed after a change without OOM (quirk 13 fixed). */
static bool oom_watch_v2_check(OomWatch *w)
{
        g_autofree char *path = g_build_filename(w->cgroup_dir, "memory.events", NULL);
        g_autofree char *content = NULL;
        if (!g_file_get_contents(path, &content, NULL, NULL))
                return false;
        guint64 oom, oom_kill;
        oom_parse_memory_events(content, &oom, &oom_kill);
        bool fresh = (oom && oom != w->last_oom) || (oom_kill && oom_kill != w->last_oom_kill);
        w->last_oom = oom;
        w->last_oom_kill = oom_kill;
        return fresh;
}

/* v1: memory.oom_control's oom_kill counter (kernel 4.13 and later), read
 * through the descriptor held since the watch began. */
static bool oom_watch_v1_kills(OomWatch *w, guint64 *ret_kills)
{
        char buf[512];
        ssize_t n = pread(w->oom_control_fd, buf, sizeof buf - 1, 0);
        if (n <= 0)
                return false;
        buf[n] = '\0';
        if (!strstr(buf, "oom_kill "))
                return false;
        guint64 oom_unused;
        oom_parse_memory_events(buf, &oom_unused, ret_kills);
        return true;
}

static bool oom_watch_v1_check(OomWatch *w)
{
        guint64 kills;
        if (!oom_watch_v1_kills(w, &kills))
                return false;
        bool fresh = kills > w->last_oom_kill;
        w->last_oom_kill = kills;
        return fresh;
}

static gboolean oom_watch_event_cb(int fd, GIOCondition condition, gpointer user_data)
{
        OomWatch *w = user_data;

        if (w->v2) {
                char buf[4096] __attribute__((aligned(__alignof__(struct inotify_event))));
                while (read(fd, buf, sizeof buf) > 0)
                        ;
                if (oom_watch_v2_check(w) && w->oom_cb)
                        w->oom_cb(w->user_data);
                return G_SOURCE_CONTINUE;
        }

        uint64_t count = 0;
        if (read(fd, &count, sizeof count) != sizeof count)
                return G_SOURCE_CONTINUE;

        /* The eventfd also fires when the cgroup is removed; then the
         * control file is gone. */
        g_autofree char *control = g_build_filename(w->cgroup_dir, "cgroup.event_control", NULL);
        if (access(control, F_OK) < 0) {
                w->source_id = 0;
                return G_SOURCE_REMOVE;
        }
        /* Seen here: the final check must not count it again. */
        (void) oom_watch_v1_check(w);
        if (w->oom_cb)
                w->oom_cb(w->user_data);
        return G_SOURCE_CONTINUE;
}

static int oom_watch_setup_v1(OomWatch *w, GError **error)
{
        g_autofree char *oom_control = g_build_filename(w->cgroup_dir, "memory.oom_control", NULL);
        w->oom_control_fd = open(oom_control, O_RDONLY | O_CLOEXEC);
        if (w->oom_control_fd < 0)
                return ctrmon_set_error_errno(error, errno, "Failed to open %s", oom_control);
        /* Kills before the watch (a reused cgroup) are not the container's. */
        if (!oom_watch_v1_kills(w, &w->last_oom_kill))
                w->last_oom_kill = 0;

        w->event_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
        if (w->event_fd < 0)
                return ctrmon_set_error_errno(error, errno, "Failed to create an eventfd");

        g_autofree char *control = g_build_filename(w->cgroup_dir, "cgroup.event_control", NULL);
        g_autofree char *line = g_strdup_printf("%d %d", w->event_fd, w->oom_control_fd);
        _cleanup_close_ int cfd = open(control, O_WRONLY | O_CLOEXEC);
        if (cfd < 0 || write(cfd, line, strlen(line)) < 0)
                return ctrmon_set_error_errno(error, errno, "Failed to register for OOM events at %s", control);
        return 0;
}

static int oom_watch_setup_v2(OomWatch *w, GError **error)
{
        g_autofree char *events = g_build_filename(w->cgroup_dir, "memory.events", NULL);
        if (access(events, R_OK) < 0)
                return ctrmon_set_error_errno(error, errno, "No memory.events in %s", w->cgroup_dir);
        w->event_fd = inotify_init1(IN_CLOEXEC | IN_NONBLOCK);
        if (w->event_fd < 0)
                return ctrmon_set_error_errno(error, errno, "Failed to create an inotify instance");
        if (inotify_add_watch(w->event_fd, events, IN_MODIFY) < 0)
                return ctrmon_set_error_errno(error, errno, "Failed to watch %s", events);
        return 0;
}

int oom_watch_new(pid_t pid, OomFn oom_cb, void *user_data, OomWatch **ret_watch, GError **error)
{
        bool v2 = cgroup_host_is_unified();
        g_autofree char *rel = cgroup_path_of_pid(pid, v2 ? NULL : "memory");
        if (!rel) {
                *ret_watch = NULL;
                return 0;
        }

        OomWatch *w = g_new0(OomWatch, 1);
        w->v2 = v2;
        w->event_fd = -1;
        w->oom_control_fd = -1;
        w->oom_cb = oom_cb;
        w->user_data = user_data;
        w->cgroup_dir = v2 ? g_build_filename("/sys/fs/cgroup", rel, NULL)
                           : g_build_filename("/sys/fs/cgroup/memory", rel, NULL);

        int r = v2 ? oom_watch_setup_v2(w, error) : oom_watch_setup_v1(w, error);
        if (r < 0) {
                oom_watch_free(w);
                return r;
        }
        w->source_id = g_unix_fd_add(w->event_fd, G_IO_IN, oom_watch_event_cb, w);
        *ret_watch = w;
        return 0;
}

bool oom_watch_final_check(OomWatch *w)
{
        if (!w)
                return false;
        return w->v2 ? oom_watch_v2_check(w) : oom_watch_v1_check(w);
}

void oom_watch_free(OomWatch *w)
{
        if (!w)
                return;
        if (w->source_id)
                g_source_remove(w->source_id);
        if (w->event_fd >= 0)
                close(w->event_fd);
        if (w->oom_control_fd >= 0)
                close(w->oom_control_fd);
        g_free(w->cgroup_dir);
        g_free(w);
}
