/* How the world learns that the container ended: exit files in --exit-dir and
 * --persist-dir, oom files, and the --exit-command run last (spec §2.7). */
#pragma once

#include <glib.h>
#include <stdbool.h>

/* Write the status as decimal ASCII, no newline, mode 0644, atomically, to
 * <exit_dir>/<cid> and <persist_dir>/exit (each only if the dir is set).
 * Both are attempted; the first error is returned. */
int exit_report_write_status(const char *exit_dir, const char *persist_dir, const char *cid,
                             int status, GError **error);

/* Create the empty oom files <persist_dir>/oom and <bundle>/oom (each only if
 * set), mode 0644. */
int exit_report_write_oom(const char *persist_dir, const char *bundle, GError **error);

typedef struct {
        const char *command;            /* --exit-command                      */
        char *const *args;              /* --exit-command-arg (may be NULL)    */
        int delay_seconds;              /* --exit-delay                        */
        const char *oom_score_adj;      /* restored in the child, or NULL      */
} ExitCommand;

/* Run the exit command the way conmon does: close every descriptor >= 3 of
 * the monitor (so the caller sees the sync pipe close first), stop being a
 * subreaper, fork; the child sleeps `delay_seconds`, gets /dev/null as stdio
 * and no other fd, and execs the command with the monitor's environment.
 * The monitor then waits for all its children. The command's status is
 * returned (>= 0) for the monitor's own log; it never changes the monitor's
 * exit status. */
int exit_report_run_command(const ExitCommand *command, GError **error);
