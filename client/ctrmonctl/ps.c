/* `ctrmonctl ps`: the "processes" result made readable: the container's
 * processes as a tree (indented by parent) with host and in-container PIDs
 * side by side, the chain from the container's init up to host PID 1, and
 * the namespace table with the ones the container does not share marked. */
#include "ctrmonctl.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int64_t ps_int(json_object *o, const char *key)
{
        json_object *v = NULL;
        return json_object_object_get_ex(o, key, &v) && json_object_is_type(v, json_type_int) ? json_object_get_int64(v)
                                                                                              : -1;
}

static const char *ps_str(json_object *o, const char *key, const char *fallback)
{
        json_object *v = NULL;
        return json_object_object_get_ex(o, key, &v) && json_object_is_type(v, json_type_string)
                       ? json_object_get_string(v)
                       : fallback;
}

static bool ps_has_pid(json_object *list, int64_t pid)
{
        for (size_t i = 0; i < json_object_array_length(list); i++)
                if (ps_int(json_object_array_get_idx(list, i), "pid") == pid)
                        return true;
        return false;
}

/* Depth-first; `depth` bounds a parent loop a racing /proc could show. */
static void ps_print_tree(json_object *list, int64_t parent, int depth)
{
        if (depth > 64)
                return;
        for (size_t i = 0; i < json_object_array_length(list); i++) {
                json_object *p = json_object_array_get_idx(list, i);
                int64_t ppid = ps_int(p, "ppid");
                bool root = parent < 0 && !ps_has_pid(list, ppid);
                if (!root && (parent < 0 || ppid != parent))
                        continue;
                printf("%9lld %8lld %6lld %-3s %*s%s%s\n", (long long) ps_int(p, "pid"),
                       (long long) ps_int(p, "ns_pid"), (long long) ps_int(p, "uid"), ps_str(p, "state", "?"),
                       depth * 2, "", depth ? "\\_ " : "", ps_str(p, "command", "?"));
                ps_print_tree(list, ps_int(p, "pid"), depth + 1);
        }
}

int ctl_cmd_ps(Ctl *ctl, int argc, char **argv)
{
        if (argc > 1)
                return ctl_usage(ctl_find_command("ps"), true);
        CtrmonClient *client = NULL;
        int r = ctl_connect(ctl, &client);
        if (r)
                return r;
        char *json = NULL;
        r = ctrmon_client_processes(client, &json);
        if (r < 0) {
                r = ctl_rpc_failed(ctl, client, "ps", r);
                ctrmon_client_close(client);
                return r;
        }
        ctrmon_client_close(client);
        if (ctl->json) {
                ctl_print_json(json, false);
                free(json);
                return CTL_EXIT_OK;
        }
        json_object *o = json_tokener_parse(json);
        free(json);
        json_object *v = NULL;

        printf("%9s %8s %6s %-3s %s\n", "HOST PID", "CTR PID", "UID", "S", "COMMAND");
        if (json_object_object_get_ex(o, "processes", &v) && json_object_is_type(v, json_type_array))
                ps_print_tree(v, -1, 0);

        if (json_object_object_get_ex(o, "ancestors", &v) && json_object_is_type(v, json_type_array)) {
                printf("\nAncestors (container init up to host PID 1):\n");
                for (size_t i = 0; i < json_object_array_length(v); i++) {
                        json_object *a = json_object_array_get_idx(v, i);
                        printf("%9lld %*s%s  %s\n", (long long) ps_int(a, "pid"), (int) i * 2, "",
                               ps_str(a, "comm", "?"), ps_str(a, "cmdline", ""));
                }
        }

        if (json_object_object_get_ex(o, "namespaces", &v) && json_object_is_type(v, json_type_object)) {
                printf("\nNamespaces (* = not shared with the monitor):\n");
                printf("  %-7s %-26s %s\n", "TYPE", "CONTAINER", "MONITOR");
                json_object_object_foreach(v, kind, ns) {
                        json_object *d;
                        bool differs = json_object_object_get_ex(ns, "differs", &d) && json_object_get_boolean(d);
                        printf("%c %-7s %-26s %s\n", differs ? '*' : ' ', kind, ps_str(ns, "container", "-"),
                               ps_str(ns, "monitor", "-"));
                }
        }
        json_object_put(o);
        return CTL_EXIT_OK;
}
