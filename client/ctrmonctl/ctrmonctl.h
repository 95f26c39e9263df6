/* What ctrmonctl's command files share: the global options, connecting
 * with the documented exit codes, and small output helpers. */
#pragma once

#include "ctrmon/client.h"

#include <json.h>
#include <stdbool.h>

/* Exit codes besides a mirrored container/process status. */
#define CTL_EXIT_OK 0
#define CTL_EXIT_FAILURE 1     /* usage or RPC error                  */
#define CTL_EXIT_NO_MONITOR 125 /* socket missing or access refused   */

typedef struct {
        char *socket_path;     /* the resolved target, or NULL         */
        bool json;             /* print raw JSON results               */
} Ctl;

typedef struct {
        const char *name;
        int (*run)(Ctl *ctl, int argc, char **argv);
        const char *usage;     /* after "ctrmonctl [OPTIONS] NAME "     */
        const char *summary;
} CtlCommand;

/* Connect to the target; on failure print why and return the exit code
 * (125 for a missing monitor or refused access, 1 otherwise). */
int ctl_connect(Ctl *ctl, CtrmonClient **ret_client);
/* Print an RPC failure of `what` and return the exit code to use:
 * a refusal by the monitor is 125 like a refused connect. */
int ctl_rpc_failed(Ctl *ctl, CtrmonClient *client, const char *what, int r);
/* "--help" handling and usage errors for one command. */
bool ctl_wants_help(int argc, char **argv);
int ctl_usage(const CtlCommand *cmd, bool error);
const CtlCommand *ctl_find_command(const char *name);
/* Print a JSON text pretty (human) or as one line (--json). */
void ctl_print_json(const char *text, bool pretty);
/* Clamp a status to what exit() can carry. */
int ctl_exit_status(int status);
/* Parse "TERM", "SIGTERM", "15": the number or -1. */

/* The attach loop (attach.c), shared by `attach` and `run`: returns the
 * exit code (the container's status, 0 after a detach). */
int ctl_attach_stream(Ctl *ctl, CtrmonClient *client, const char *detach_keys, bool forward_stdin, bool lossy);

int ctl_cmd_status(Ctl *ctl, int argc, char **argv);
int ctl_cmd_ps(Ctl *ctl, int argc, char **argv);
int ctl_cmd_wait(Ctl *ctl, int argc, char **argv);
int ctl_cmd_kill(Ctl *ctl, int argc, char **argv);
int ctl_cmd_resize(Ctl *ctl, int argc, char **argv);
int ctl_cmd_exec(Ctl *ctl, int argc, char **argv);
int ctl_cmd_attach(Ctl *ctl, int argc, char **argv);
int ctl_cmd_logs(Ctl *ctl, int argc, char **argv);
int ctl_cmd_stats(Ctl *ctl, int argc, char **argv);
int ctl_cmd_events(Ctl *ctl, int argc, char **argv);
int ctl_cmd_version(Ctl *ctl, int argc, char **argv);
int ctl_cmd_run(Ctl *ctl, int argc, char **argv);
