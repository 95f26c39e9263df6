/* The container's cgroup figures for the control API's "stats": memory, CPU
 * and pids, from cgroup v1 controllers or the v2 unified tree. */
#pragma once

#include <glib.h>
#include <json.h>
#include <stdbool.h>
#include <sys/types.h>

/* A JSON object {"version":1|2,"memory":{...},"cpu":{...},"pids":{...}};
 * figures that cannot be read are left out. NULL if /proc/<pid> is gone. */
json_object *cgroup_stats_read(pid_t pid);

