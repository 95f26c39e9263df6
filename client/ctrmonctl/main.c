/* ctrmonctl: a thin command line over libctrmon. This file owns the global
 * options, target selection, the command table and the mapping of
 * failures to exit codes; each command lives in its own file and returns
 * its exit code here (only main exits). */
#include "ctrmonctl.h"

#include "ctrmon/control.h"
#include "ctrmon/signal-names.h"
#include "ctrmon-config.h"

#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const CtlCommand ctl_commands[] = {
        { "status", ctl_cmd_status, "", "Show the container's state" },
        { "ps", ctl_cmd_ps, "", "Show the container's processes, ancestors and namespaces" },
        { "wait", ctl_cmd_wait, "", "Wait for the container to exit; exit with its status" },
        { "kill", ctl_cmd_kill, "[-s SIGNAL] [--all]", "Send a signal (default TERM) to the container" },
        { "resize", ctl_cmd_resize, "ROWS COLS", "Resize the container's terminal" },
        { "exec", ctl_cmd_exec, "[-i] [-t] [--timeout SECONDS] -- COMMAND [ARG...]",
          "Run a command in the container; exit with its status" },
        { "attach", ctl_cmd_attach, "[--detach-keys KEYS] [--no-stdin] [--lossy]",
          "Attach to the container's stdio; exit with its status" },
        { "logs", ctl_cmd_logs, "[-n LINES] [-f]", "Print the container's log" },
        { "stats", ctl_cmd_stats, "", "Show cgroup and monitor statistics" },
        { "events", ctl_cmd_events, "", "Print the monitor's events as they happen" },
        { "version", ctl_cmd_version, "", "Show the monitor's version and protocol" },
        { "run", ctl_cmd_run,
          "[--name NAME] [-t] [-i] [-d] [--runtime PATH] [--runtime-arg ARG]... BUNDLE [ID]",
          "Start a ctrmon for BUNDLE (create + start), then attach or wait" },
        { NULL, NULL, NULL, NULL },
};

static void ctl_main_usage(FILE *f)
{
        fprintf(f,
                "Usage: ctrmonctl [-b BUNDLE | -S SOCKET] [--json] COMMAND [ARGS...]\n"
                "\n"
                "Control a running ctrmon through its JSON-RPC API.\n"
                "\n"
                "Options:\n"
                "  -b, --bundle DIR     the monitor of bundle DIR (DIR/%s/%s)\n"
                "  -S, --socket PATH    the monitor listening at PATH (default: $CTRMON_SOCKET)\n"
                "      --json           print results as raw JSON\n"
                "  -h, --help           show this help; COMMAND --help for a command's\n"
                "      --version        show ctrmonctl's version\n"
                "\n"
                "Commands:\n",
                CTRMON_CONTROL_SOCKET_DIR, CTRMON_CONTROL_SOCKET_NAME);
        for (const CtlCommand *c = ctl_commands; c->name; c++)
                fprintf(f, "  %-9s %s\n", c->name, c->summary);
        fprintf(f,
                "\n"
                "Exit status: 0 on success; wait, exec, attach and run mirror the\n"
                "container's or process's status; 1 on usage or RPC errors; 125 when no\n"
                "monitor is at the socket or access to it is refused.\n");
}

const CtlCommand *ctl_find_command(const char *name)
{
        for (const CtlCommand *c = ctl_commands; c->name; c++)
                if (strcmp(c->name, name) == 0)
                        return c;
        return NULL;
}

bool ctl_wants_help(int argc, char **argv)
{
        for (int i = 1; i < argc; i++) {
                if (strcmp(argv[i], "--") == 0)
                        return false;
                if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0)
                        return true;
        }
        return false;
}

int ctl_usage(const CtlCommand *cmd, bool error)
{
        FILE *f = error ? stderr : stdout;
        fprintf(f, "Usage: ctrmonctl [-b BUNDLE | -S SOCKET] [--json] %s%s%s\n\n%s.\n", cmd->name,
                *cmd->usage ? " " : "", cmd->usage, cmd->summary);
        return error ? CTL_EXIT_FAILURE : CTL_EXIT_OK;
}

int ctl_connect(Ctl *ctl, CtrmonClient **ret_client)
{
        if (!ctl->socket_path) {
                fprintf(stderr, "ctrmonctl: no target: use -b BUNDLE, -S SOCKET or set $CTRMON_SOCKET\n");
                return CTL_EXIT_FAILURE;
        }
        int r = ctrmon_client_connect(ctl->socket_path, ret_client);
        if (r >= 0)
                return CTL_EXIT_OK;
        if (r == -EACCES || r == -EPERM) {
                fprintf(stderr, "ctrmonctl: access to %s refused: %s\n", ctl->socket_path, strerror(-r));
                return CTL_EXIT_NO_MONITOR;
        }
        /* ENOENT: nothing there; ECONNREFUSED: a socket left by a monitor
         * that is gone; ENOTDIR: a path through a file. */
        if (r == -ENOENT || r == -ECONNREFUSED || r == -ENOTDIR) {
                fprintf(stderr, "ctrmonctl: no ctrmon at %s: %s\n", ctl->socket_path, strerror(-r));
                return CTL_EXIT_NO_MONITOR;
        }
        fprintf(stderr, "ctrmonctl: cannot connect to %s: %s\n", ctl->socket_path, strerror(-r));
        return CTL_EXIT_FAILURE;
}

int ctl_rpc_failed(Ctl *ctl, CtrmonClient *client, const char *what, int r)
{
        const char *msg = ctrmon_client_error(client);
        if (!*msg)
                msg = strerror(-r);
        if (ctrmon_client_error_code(client) == CTRMON_CONTROL_ERROR_ACCESS_DENIED) {
                fprintf(stderr, "ctrmonctl: access to %s refused: %s\n", ctl->socket_path, msg);
                return CTL_EXIT_NO_MONITOR;
        }
        fprintf(stderr, "ctrmonctl: %s: %s\n", what, msg);
        return CTL_EXIT_FAILURE;
}

void ctl_print_json(const char *text, bool pretty)
{
        json_object *o = json_tokener_parse(text);
        if (!o) {
                printf("%s\n", text);
                return;
        }
        int flags = JSON_C_TO_STRING_NOSLASHESCAPE |
                    (pretty ? JSON_C_TO_STRING_PRETTY | JSON_C_TO_STRING_SPACED : JSON_C_TO_STRING_PLAIN);
        printf("%s\n", json_object_to_json_string_ext(o, flags));
        json_object_put(o);
}

int ctl_exit_status(int status)
{
        if (status < 0)
                return CTL_EXIT_FAILURE;
        return status > 255 ? 255 : status;
}

int main(int argc, char **argv)
{
        static const struct option options[] = {
                { "bundle", required_argument, NULL, 'b' },
                { "socket", required_argument, NULL, 'S' },
                { "json", no_argument, NULL, 'J' },
                { "help", no_argument, NULL, 'h' },
                { "version", no_argument, NULL, 'V' },
                { NULL, 0, NULL, 0 },
        };
        Ctl ctl = { 0 };
        const char *bundle = NULL, *socket_path = NULL;
        int c;
        /* "+": stop at the command; its options are its own. */
        while ((c = getopt_long(argc, argv, "+b:S:h", options, NULL)) != -1) {
                switch (c) {
                case 'b':
                        bundle = optarg;
                        break;
                case 'S':
                        socket_path = optarg;
                        break;
                case 'J':
                        ctl.json = true;
                        break;
                case 'h':
                        ctl_main_usage(stdout);
                        return CTL_EXIT_OK;
                case 'V':
                        printf("ctrmonctl version %s\n", CTRMON_VERSION);
                        return CTL_EXIT_OK;
                default:
                        ctl_main_usage(stderr);
                        return CTL_EXIT_FAILURE;
                }
        }
        if (optind >= argc) {
                ctl_main_usage(stderr);
                return CTL_EXIT_FAILURE;
        }
        if (bundle && socket_path) {
                fprintf(stderr, "ctrmonctl: -b and -S are exclusive\n");
                return CTL_EXIT_FAILURE;
        }
        const CtlCommand *cmd = ctl_find_command(argv[optind]);
        if (!cmd) {
                fprintf(stderr, "ctrmonctl: unknown command \"%s\" (see ctrmonctl --help)\n", argv[optind]);
                return CTL_EXIT_FAILURE;
        }
        if (bundle)
                ctl.socket_path = ctrmon_client_bundle_socket_path(bundle);
        else if (socket_path)
                ctl.socket_path = strdup(socket_path);
        else if (getenv("CTRMON_SOCKET") && *getenv("CTRMON_SOCKET"))
                ctl.socket_path = strdup(getenv("CTRMON_SOCKET"));

        /* A closed pipe (ctrmonctl events | head) ends us with EPIPE
         * handled in place, not by a signal. */
        signal(SIGPIPE, SIG_IGN);

        int sub_argc = argc - optind;
        char **sub_argv = argv + optind;
        int status = ctl_wants_help(sub_argc, sub_argv) ? ctl_usage(cmd, false) : cmd->run(&ctl, sub_argc, sub_argv);
        free(ctl.socket_path);
        fflush(stdout);
        return status;
}
