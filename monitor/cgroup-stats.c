/* Reads a container's cgroup counters for "stats". Read-only and best
 * effort: a missing file leaves its figure out, it never fails the call. */
#include "cgroup-stats.h"

#include "cgroup-util.h"

#include <string.h>

/* Add integer `key` from the first number in <dir>/<file>; "max" adds null. */
static void cgroup_stats_add_file(json_object *obj, const char *key, const char *dir, const char *file)
{
        g_autofree char *path = g_build_filename(dir, file, NULL);
        g_autofree char *content = NULL;
        if (!g_file_get_contents(path, &content, NULL, NULL))
                return;
        g_strstrip(content);
        if (g_str_equal(content, "max")) {
                json_object_object_add(obj, key, NULL);
                return;
        }
        json_object_object_add(obj, key, json_object_new_int64((int64_t) g_ascii_strtoull(content, NULL, 10)));
}

/* "key value" lines (cpu.stat, memory.stat): add `want` as `key`. */
static void cgroup_stats_add_keyed(json_object *obj, const char *key, const char *dir, const char *file,
                                   const char *want, guint64 scale)
{
        g_autofree char *path = g_build_filename(dir, file, NULL);
        g_autofree char *content = NULL;
        if (!g_file_get_contents(path, &content, NULL, NULL))
                return;
        g_auto(GStrv) lines = g_strsplit(content, "\n", -1);
        size_t wlen = strlen(want);
        for (char **l = lines; *l; l++)
                if (strncmp(*l, want, wlen) == 0 && (*l)[wlen] == ' ') {
                        guint64 v = g_ascii_strtoull(*l + wlen + 1, NULL, 10);
                        json_object_object_add(obj, key, json_object_new_int64((int64_t) (v * scale)));
                        return;
                }
}

json_object *cgroup_stats_read(pid_t pid)
{
        g_autofree char *proc = g_strdup_printf("/proc/%d/cgroup", (int) pid);
        g_autofree char *content = NULL;
        if (!g_file_get_contents(proc, &content, NULL, NULL))
                return NULL;

        bool v2 = cgroup_host_is_unified();
        json_object *out = json_object_new_object();
        json_object *memory = json_object_new_object();
        json_object *cpu = json_object_new_object();
        json_object *pids = json_object_new_object();
        json_object_object_add(out, "version", json_object_new_int(v2 ? 2 : 1));

        if (v2) {
                g_autofree char *rel = cgroup_path_from_proc(content, NULL);
                if (rel) {
                        g_autofree char *dir = g_build_filename("/sys/fs/cgroup", rel, NULL);
                        json_object_object_add(out, "path", json_object_new_string(rel));
                        cgroup_stats_add_file(memory, "usage_bytes", dir, "memory.current");
                        cgroup_stats_add_file(memory, "limit_bytes", dir, "memory.max");
                        cgroup_stats_add_file(memory, "peak_bytes", dir, "memory.peak");
                        cgroup_stats_add_keyed(cpu, "usage_ns", dir, "cpu.stat", "usage_usec", 1000);
                        cgroup_stats_add_file(pids, "current", dir, "pids.current");
                        cgroup_stats_add_file(pids, "limit", dir, "pids.max");
                }
        } else {
                g_autofree char *mem = cgroup_path_from_proc(content, "memory");
                if (mem) {
                        g_autofree char *dir = g_build_filename("/sys/fs/cgroup/memory", mem, NULL);
                        json_object_object_add(out, "path", json_object_new_string(mem));
                        cgroup_stats_add_file(memory, "usage_bytes", dir, "memory.usage_in_bytes");
                        cgroup_stats_add_file(memory, "limit_bytes", dir, "memory.limit_in_bytes");
                        cgroup_stats_add_file(memory, "peak_bytes", dir, "memory.max_usage_in_bytes");
                        cgroup_stats_add_file(memory, "failcnt", dir, "memory.failcnt");
                }
                g_autofree char *acct = cgroup_path_from_proc(content, "cpuacct");
                if (acct) {
                        g_autofree char *dir = g_build_filename("/sys/fs/cgroup/cpuacct", acct, NULL);
                        cgroup_stats_add_file(cpu, "usage_ns", dir, "cpuacct.usage");
                }
                g_autofree char *p = cgroup_path_from_proc(content, "pids");
                if (p) {
                        g_autofree char *dir = g_build_filename("/sys/fs/cgroup/pids", p, NULL);
                        cgroup_stats_add_file(pids, "current", dir, "pids.current");
                        cgroup_stats_add_file(pids, "limit", dir, "pids.max");
                }
        }
        json_object_object_add(out, "memory", memory);
        json_object_object_add(out, "cpu", cpu);
        json_object_object_add(out, "pids", pids);
        return out;
}
