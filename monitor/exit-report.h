/* How the world learns that the container ended: exit files in --exit-dir and
 * --persist-dir, oom files, and the --exit-command run last (spec §2.7). */
#pragma once

#include <glib.h>
#include <stdbool.h>

/* Write the status as decimal ASCII, no newline, mode 0644, atomically, to
 * <persist_dir>/exit, then <exit_dir>/<cid> (each only if the dir is set).
 * Both are attempted; the first error is returned. */
int exit_report_write_status(const char *exit_dir, const char *persist_dir, const char *cid,
                             int status, GError **error);

/* The same two files, made ready while the container runs: an unnamed file
 * (O_TMPFILE, mode 0644, holding "0") is created in each directory at
 * start-up, so that at exit only a non-zero status is written and the file
 * is linked under a temporary name and renamed into place; a reader still
 * sees no file or the whole content, and a watcher the same rename as
 * before. Creating a file is the slow part (an ext4 journal handle: 60 us
 * to 0.8 ms measured under load), and the caller is waiting for these.
 * Where an unnamed file cannot be made or linked (no O_TMPFILE, no /proc,
 * another filesystem), the write falls back to exit_report_write_status()'s
 * temp file and rename. */
typedef struct ExitReport ExitReport;

ExitReport *exit_report_prepare(const char *exit_dir, const char *persist_dir, const char *cid);
int exit_report_write(ExitReport *report, int status, GError **error);
void exit_report_free(ExitReport *report);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(ExitReport, exit_report_free)

/* Create the empty oom files <persist_dir>/oom and <bundle>/oom (each only if
 * set), mode 0644. */
int exit_report_write_oom(const char *persist_dir, const char *bundle, GError **error);

typedef struct {
        const char *command;            /* --exit-command                      */
        char *const *args;              /* --exit-command-arg (may be NULL)    */
        int delay_seconds;              /* --exit-delay                        */
        const char *oom_score_adj;      /* restored in the child, or NULL      */
} ExitCommand;

/* Pure: the exit command's environment, `env` less the variables that name
 * descriptors the command never gets (LISTEN_FDS, LISTEN_PID,
 * LISTEN_FDNAMES, _OCI_SYNCPIPE, _OCI_STARTPIPE, _OCI_ATTACHPIPE). A
 * NULL-terminated array of env's own strings: free the array only. */
char **exit_report_command_env(char *const *env);

/* Run the exit command the way conmon does: close every descriptor >= 3 of
 * the monitor (so the caller sees the sync pipe close first), stop being a
 * subreaper, fork; the child sleeps `delay_seconds`, gets /dev/null as stdio
 * and no other fd, and execs the command with the monitor's environment
 * less what exit_report_command_env() drops (conmon drops nothing).
 * The monitor then waits for all its children. The command's status is
 * returned (>= 0) for the monitor's own log; it never changes the monitor's
 * exit status. */
int exit_report_run_command(const ExitCommand *command, GError **error);
