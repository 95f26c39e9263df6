/* "processes": every process of the container (found through its cgroup,
 * else by walking /proc for descendants of its init), the chain from its
 * init up to host PID 1, and its namespaces next to the monitor's. It only
 * reads /proc and /sys; processes that vanish while being read are skipped,
 * never reported as errors. */
#include "control-processes.h"

#include "cgroup-util.h"

#include "control-methods.h"

#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define CONTROL_PROC_CGROUP_ROOT "/sys/fs/cgroup"

/* ------------------------------------------------------------ parsers */

/* The value of "Key:" at the start of a line of /proc/PID/status text. */
static const char *control_proc_status_field(const char *status, const char *key)
{
        size_t klen = strlen(key);
        for (const char *line = status; line && *line;) {
                if (strncmp(line, key, klen) == 0 && line[klen] == ':')
                        return line + klen + 1;
                line = strchr(line, '\n');
                if (line)
                        line++;
        }
        return NULL;
}

/* The decimal digits at *p, which must be at least one, as a value of at
 * most max; *p moves past all the digits either way. A number that does
 * not fit is refused, never wrapped: a uid of 2^32 is not root. */
static bool control_proc_decimal(const char **p, uint64_t max, uint64_t *ret)
{
        const char *s = *p;
        uint64_t v = 0;
        bool fits = true;
        if (*s < '0' || *s > '9')
                return false;
        for (; *s >= '0' && *s <= '9'; s++) {
                unsigned d = (unsigned) (*s - '0');
                if (v > (max - d) / 10)
                        fits = false;
                else
                        v = v * 10 + d;
        }
        *p = s;
        if (fits)
                *ret = v;
        return fits;
}

int control_proc_parse_nspid(const char *status, pid_t *ret_pid)
{
        const char *p = control_proc_status_field(status, "NSpid");
        if (!p)
                return -EINVAL;
        /* The last of the numbers is the pid in the innermost namespace. */
        bool any = false, fits = false;
        uint64_t last = 0;
        for (;;) {
                while (*p == ' ' || *p == '\t')
                        p++;
                if (*p < '0' || *p > '9')
                        break;
                any = true;
                fits = control_proc_decimal(&p, INT_MAX, &last);
        }
        if (!any || !fits || last == 0)
                return -EINVAL;
        *ret_pid = (pid_t) last;
        return 0;
}

int control_proc_parse_uid(const char *status, uid_t *ret_uid)
{
        const char *p = control_proc_status_field(status, "Uid");
        if (!p)
                return -EINVAL;
        while (*p == ' ' || *p == '\t')
                p++;
        uint64_t v;
        if (!control_proc_decimal(&p, UINT32_MAX, &v))
                return -EINVAL;
        *ret_uid = (uid_t) v;
        return 0;
}

int control_proc_parse_stat(const char *stat, char *ret_state, pid_t *ret_ppid)
{
        /* "pid (comm) state ppid ...": a comm of "a) b (c" is legal. */
        const char *rparen = strrchr(stat, ')');
        if (!rparen || rparen[1] != ' ' || !rparen[2] || rparen[3] != ' ')
                return -EINVAL;
        char state = rparen[2];
        const char *p = rparen + 4;
        /* The ppid is 0 or more, never negative, and fits pid_t. */
        uint64_t ppid;
        if (!control_proc_decimal(&p, INT_MAX, &ppid))
                return -EINVAL;
        *ret_state = state;
        *ret_ppid = (pid_t) ppid;
        return 0;
}

/* ------------------------------------------------------------ /proc */

static char *control_proc_read(pid_t pid, const char *name)
{
        g_autofree char *path = g_strdup_printf("/proc/%d/%s", (int) pid, name);
        char *text = NULL;
        if (!g_file_get_contents(path, &text, NULL, NULL))
                return NULL;
        return text;
}

int control_proc_ppid(pid_t pid, pid_t *ret_ppid)
{
        g_autofree char *stat = control_proc_read(pid, "stat");
        char state;
        if (!stat)
                return -ESRCH;
        return control_proc_parse_stat(stat, &state, ret_ppid);
}

static char *control_proc_command(pid_t pid)
{
        g_autofree char *path = g_strdup_printf("/proc/%d/cmdline", (int) pid);
        g_autofree char *raw = NULL;
        gsize len = 0;
        if (g_file_get_contents(path, &raw, &len, NULL) && len > 0) {
                /* NUL-separated, usually NUL-terminated. */
                while (len > 0 && raw[len - 1] == '\0')
                        len--;
                for (gsize i = 0; i < len; i++)
                        if (raw[i] == '\0')
                                raw[i] = ' ';
                return g_utf8_make_valid(raw, (gssize) len);
        }
        /* Kernel threads and zombies have no cmdline: ps shows [comm]. */
        g_autofree char *comm = control_proc_read(pid, "comm");
        if (!comm)
                return NULL;
        g_strchomp(comm);
        g_autofree char *valid = g_utf8_make_valid(comm, -1);
        return g_strdup_printf("[%s]", valid);
}

static char *control_proc_comm(pid_t pid)
{
        char *comm = control_proc_read(pid, "comm");
        if (!comm)
                return NULL;
        g_strchomp(comm);
        char *valid = g_utf8_make_valid(comm, -1);
        g_free(comm);
        return valid;
}

/* Every pid in /proc with its parent, in one pass. */
static GHashTable *control_proc_parent_map(void)
{
        GHashTable *parents = g_hash_table_new(g_direct_hash, g_direct_equal);
        DIR *dir = opendir("/proc");
        if (!dir)
                return parents;
        struct dirent *de;
        while ((de = readdir(dir))) {
                char *end;
                long pid = strtol(de->d_name, &end, 10);
                if (*end || pid <= 0)
                        continue;
                pid_t ppid;
                if (control_proc_ppid((pid_t) pid, &ppid) == 0)
                        g_hash_table_insert(parents, GINT_TO_POINTER(pid), GINT_TO_POINTER(ppid));
        }
        closedir(dir);
        return parents;
}

GArray *control_proc_descendants(pid_t pid)
{
        GArray *out = g_array_new(FALSE, FALSE, sizeof(pid_t));
        g_autoptr(GHashTable) parents = control_proc_parent_map();
        g_array_append_val(out, pid);
        /* Breadth-first: out grows while it is walked. */
        for (guint i = 0; i < out->len; i++) {
                pid_t parent = g_array_index(out, pid_t, i);
                GHashTableIter it;
                gpointer k, v;
                g_hash_table_iter_init(&it, parents);
                while (g_hash_table_iter_next(&it, &k, &v)) {
                        if (GPOINTER_TO_INT(v) == parent) {
                                pid_t child = GPOINTER_TO_INT(k);
                                g_array_append_val(out, child);
                        }
                }
        }
        g_array_remove_index(out, 0);
        return out;
}

/* ------------------------------------------------------------ cgroups */

static void control_proc_read_procs(const char *dir, GArray *pids, int depth)
{
        g_autofree char *procs_path = g_build_filename(dir, "cgroup.procs", NULL);
        g_autofree char *text = NULL;
        if (g_file_get_contents(procs_path, &text, NULL, NULL)) {
                g_auto(GStrv) lines = g_strsplit(text, "\n", -1);
                for (char **l = lines; *l; l++) {
                        pid_t p = (pid_t) atoi(*l);
                        if (p > 0)
                                g_array_append_val(pids, p);
                }
        }
        /* Processes may sit in sub-cgroups the container made itself. */
        if (depth >= 8)
                return;
        g_autoptr(GDir) d = g_dir_open(dir, 0, NULL);
        const char *name;
        while (d && (name = g_dir_read_name(d))) {
                g_autofree char *sub = g_build_filename(dir, name, NULL);
                if (g_file_test(sub, G_FILE_TEST_IS_DIR) && !g_file_test(sub, G_FILE_TEST_IS_SYMLINK))
                        control_proc_read_procs(sub, pids, depth + 1);
        }
}

static bool control_proc_array_has(GArray *pids, pid_t pid)
{
        for (guint i = 0; i < pids->len; i++)
                if (g_array_index(pids, pid_t, i) == pid)
                        return true;
        return false;
}

/* The container's processes from one of its cgroups, or NULL when no
 * cgroup is its own (the root, or one the monitor shares: then the
 * cgroup would list strangers). */
static GArray *control_proc_from_cgroup(pid_t container_pid, const char **ret_source)
{
        g_autofree char *cgroup = control_proc_read(container_pid, "cgroup");
        if (!cgroup)
                return NULL;
        bool unified_only = g_file_test(CONTROL_PROC_CGROUP_ROOT "/cgroup.controllers", G_FILE_TEST_EXISTS);
        static const struct {
                const char *controller;
                const char *mount;
                const char *source;
        } candidates[] = {
                { "pids", CONTROL_PROC_CGROUP_ROOT "/pids", "cgroup:pids" },
                { "memory", CONTROL_PROC_CGROUP_ROOT "/memory", "cgroup:memory" },
                { NULL, NULL, "cgroup:unified" },
        };
        for (size_t i = 0; i < G_N_ELEMENTS(candidates); i++) {
                g_autofree char *path = cgroup_path_from_proc(cgroup, candidates[i].controller);
                if (!path || g_str_equal(path, "/") || strstr(path, "/.."))
                        continue;
                const char *mount = candidates[i].mount ? candidates[i].mount
                                    : unified_only   ? CONTROL_PROC_CGROUP_ROOT
                                                     : CONTROL_PROC_CGROUP_ROOT "/unified";
                g_autofree char *dir = g_build_filename(mount, path, NULL);
                GArray *pids = g_array_new(FALSE, FALSE, sizeof(pid_t));
                control_proc_read_procs(dir, pids, 0);
                if (control_proc_array_has(pids, container_pid) && !control_proc_array_has(pids, getpid())) {
                        *ret_source = candidates[i].source;
                        return pids;
                }
                g_array_unref(pids);
        }
        return NULL;
}

/* ------------------------------------------------------------ the method */

static json_object *control_proc_entry(pid_t pid, GHashTable *ns_pids)
{
        g_autofree char *status = control_proc_read(pid, "status");
        g_autofree char *stat = control_proc_read(pid, "stat");
        char state;
        pid_t ppid, ns_pid;
        uid_t uid;
        if (!status || !stat || control_proc_parse_stat(stat, &state, &ppid) < 0 ||
            control_proc_parse_uid(status, &uid) < 0)
                return NULL; /* gone meanwhile */
        if (control_proc_parse_nspid(status, &ns_pid) < 0)
                ns_pid = pid; /* kernels before 4.1 have no NSpid */
        g_autofree char *command = control_proc_command(pid);
        char state_text[2] = { state, '\0' };

        json_object *p = json_object_new_object();
        json_object_object_add(p, "pid", json_object_new_int(pid));
        json_object_object_add(p, "ns_pid", json_object_new_int(ns_pid));
        json_object_object_add(p, "ppid", json_object_new_int(ppid));
        /* As getppid() answers inside: 0 when the parent is outside the
         * container (its init, an exec'd process: their parent is us). */
        gpointer parent_ns;
        int ns_ppid = g_hash_table_lookup_extended(ns_pids, GINT_TO_POINTER(ppid), NULL, &parent_ns)
                              ? GPOINTER_TO_INT(parent_ns)
                              : 0;
        json_object_object_add(p, "ns_ppid", json_object_new_int(ns_ppid));
        json_object_object_add(p, "uid", json_object_new_int64(uid));
        json_object_object_add(p, "state", json_object_new_string(state_text));
        json_object_object_add(p, "command", command ? json_object_new_string(command) : NULL);
        return p;
}

static json_object *control_proc_ancestors(pid_t pid)
{
        json_object *chain = json_object_new_array();
        /* Bounded: a loop in a racing /proc must not hang the monitor. */
        for (int depth = 0; pid > 0 && depth < 256; depth++) {
                g_autofree char *comm = control_proc_comm(pid);
                g_autofree char *command = control_proc_command(pid);
                pid_t ppid = 0;
                if (!comm || control_proc_ppid(pid, &ppid) < 0)
                        break;
                json_object *a = json_object_new_object();
                json_object_object_add(a, "pid", json_object_new_int(pid));
                json_object_object_add(a, "comm", json_object_new_string(comm));
                json_object_object_add(a, "cmdline", command ? json_object_new_string(command) : NULL);
                json_object_array_add(chain, a);
                if (pid == 1)
                        break;
                pid = ppid;
        }
        return chain;
}

static json_object *control_proc_ns_id(const char *path)
{
        char buf[256];
        ssize_t n = readlink(path, buf, sizeof buf - 1);
        if (n < 0)
                return NULL;
        buf[n] = '\0';
        return json_object_new_string(buf);
}

static json_object *control_proc_namespaces(pid_t pid)
{
        static const char *const kinds[] = { "pid", "mnt", "net", "uts", "ipc", "user", "cgroup", "time" };
        json_object *all = json_object_new_object();
        for (size_t i = 0; i < G_N_ELEMENTS(kinds); i++) {
                g_autofree char *cpath = g_strdup_printf("/proc/%d/ns/%s", (int) pid, kinds[i]);
                g_autofree char *mpath = g_strdup_printf("/proc/self/ns/%s", kinds[i]);
                json_object *c = control_proc_ns_id(cpath);
                json_object *m = control_proc_ns_id(mpath);
                json_object *e = json_object_new_object();
                bool differs = c && m && strcmp(json_object_get_string(c), json_object_get_string(m)) != 0;
                json_object_object_add(e, "container", c);
                json_object_object_add(e, "monitor", m);
                json_object_object_add(e, "differs", json_object_new_boolean(differs));
                json_object_object_add(all, kinds[i], e);
        }
        return all;
}

static gint control_proc_pid_cmp(gconstpointer a, gconstpointer b)
{
        return *(const pid_t *) a - *(const pid_t *) b;
}

void control_method_processes(ControlCall *call, json_object *params, void *user_data)
{
        CtrmonContext *ctx = user_data;
        pid_t cpid = ctx->container_pid;
        if (cpid <= 0 || ctx->container_exited || kill(cpid, 0) < 0) {
                control_call_error(call, CTRMON_CONTROL_ERROR_NOT_RUNNING, "Container %s is %s", ctx->opts->cid,
                                   control_container_state(ctx));
                return;
        }

        const char *source = "proc";
        g_autoptr(GArray) pids = control_proc_from_cgroup(cpid, &source);
        if (!pids) {
                pids = control_proc_descendants(cpid);
                g_array_prepend_val(pids, cpid);
        }
        g_array_sort(pids, control_proc_pid_cmp);

        /* Inner pids first, so each entry can name its parent's. */
        g_autoptr(GHashTable) ns_pids = g_hash_table_new(g_direct_hash, g_direct_equal);
        for (guint i = 0; i < pids->len; i++) {
                pid_t p = g_array_index(pids, pid_t, i), ns;
                g_autofree char *status = control_proc_read(p, "status");
                if (status && control_proc_parse_nspid(status, &ns) == 0)
                        g_hash_table_insert(ns_pids, GINT_TO_POINTER(p), GINT_TO_POINTER(ns));
        }
        json_object *list = json_object_new_array();
        for (guint i = 0; i < pids->len; i++) {
                json_object *e = control_proc_entry(g_array_index(pids, pid_t, i), ns_pids);
                if (e)
                        json_object_array_add(list, e);
        }

        json_object *r = json_object_new_object();
        json_object_object_add(r, "container_pid", json_object_new_int(cpid));
        json_object_object_add(r, "source", json_object_new_string(source));
        json_object_object_add(r, "processes", list);
        json_object_object_add(r, "ancestors", control_proc_ancestors(cpid));
        json_object_object_add(r, "namespaces", control_proc_namespaces(cpid));
        control_call_reply(call, r);
}
