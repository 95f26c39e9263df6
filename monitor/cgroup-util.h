/* cgroup facts shared by OOM watching, stats, the process list and unit mode:
 * where a process sits in each hierarchy, and which layout the host has. */
#pragma once

#include <glib.h>
#include <stdbool.h>
#include <sys/types.h>

/* Pure: the path of `controller` ("memory", "pids", ...; NULL for the
 * unified "0::" line) in /proc/PID/cgroup content, or NULL. */
char *cgroup_path_from_proc(const char *proc_cgroup, const char *controller);

/* The same, read from /proc/<pid>/cgroup; NULL if gone or absent. */
char *cgroup_path_of_pid(pid_t pid, const char *controller);

/* /sys/fs/cgroup itself is cgroup2 (not the v1 or hybrid layout). */
bool cgroup_host_is_unified(void);

/* Where the unified hierarchy is mounted: /sys/fs/cgroup on a pure v2 host,
 * /sys/fs/cgroup/unified in the hybrid layout; NULL without one. */
const char *cgroup_unified_root(void);
