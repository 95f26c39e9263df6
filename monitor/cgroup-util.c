/* Reading /proc/PID/cgroup and telling cgroup layouts apart: one parser for
 * every module that needs a cgroup path. Read-only; it never writes cgroups. */
#include "cgroup-util.h"

#include <linux/magic.h>
#include <string.h>
#include <sys/statfs.h>

#ifndef CGROUP2_SUPER_MAGIC
#define CGROUP2_SUPER_MAGIC 0x63677270
#endif

char *cgroup_path_from_proc(const char *proc_cgroup, const char *controller)
{
        g_auto(GStrv) lines = g_strsplit(proc_cgroup, "\n", -1);
        for (char **l = lines; *l; l++) {
                /* "ID:CONTROLLERS:PATH"; the path itself may contain ':' */
                char *c1 = strchr(*l, ':');
                char *c2 = c1 ? strchr(c1 + 1, ':') : NULL;
                if (!c2)
                        continue;
                if (!controller) {
                        if (g_str_has_prefix(*l, "0::"))
                                return g_strdup(c2 + 1);
                        continue;
                }
                g_autofree char *list = g_strndup(c1 + 1, (gsize) (c2 - c1 - 1));
                g_auto(GStrv) names = g_strsplit(list, ",", -1);
                if (g_strv_contains((const char *const *) names, controller))
                        return g_strdup(c2 + 1);
        }
        return NULL;
}

char *cgroup_path_of_pid(pid_t pid, const char *controller)
{
        g_autofree char *path = g_strdup_printf("/proc/%d/cgroup", (int) pid);
        g_autofree char *content = NULL;
        if (!g_file_get_contents(path, &content, NULL, NULL))
                return NULL;
        return cgroup_path_from_proc(content, controller);
}

static bool cgroup_is_cgroup2(const char *mount)
{
        struct statfs sfs;
        return statfs(mount, &sfs) == 0 && sfs.f_type == CGROUP2_SUPER_MAGIC;
}

bool cgroup_host_is_unified(void)
{
        return cgroup_is_cgroup2("/sys/fs/cgroup");
}

const char *cgroup_unified_root(void)
{
        if (cgroup_is_cgroup2("/sys/fs/cgroup"))
                return "/sys/fs/cgroup";
        if (cgroup_is_cgroup2("/sys/fs/cgroup/unified"))
                return "/sys/fs/cgroup/unified";
        return NULL;
}
