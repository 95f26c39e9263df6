/* The sync pipe (_OCI_SYNCPIPE, spec §3.2): one JSON object per line from the
 * monitor to its caller, formatted byte for byte like conmon's:
 *     {"KEY": INT}\n   or   {"KEY": INT, "message": "ESCAPED"}\n
 * KEY is "data" with --api-version, else "exit_code" for exec, else "pid". */
#pragma once

#include <glib.h>
#include <stdbool.h>

typedef struct {
        int fd;          /* -1: none (or closed after EPIPE)                 */
        const char *key; /* from sync_pipe_key()                            */
} SyncPipe;

const char *sync_pipe_key(bool api_version_1, bool exec);

/* Pure: conmon's JSON string escaping (spec §3.2). */
char *sync_pipe_escape(const char *s);

/* Pure: the whole line, including the trailing newline. `message` NULL or ""
 * omits the "message" member. */
char *sync_pipe_format(const char *key, int value, const char *message);

/* Write one message with a single write-all. EPIPE closes the pipe and later
 * messages are skipped silently (the caller went away); other errors are
 * returned. No-op without a pipe. */
int sync_pipe_send(SyncPipe *pipe, int value, const char *message, GError **error);

/* Parse a decimal fd number from an environment variable such as
 * _OCI_SYNCPIPE (whole string must parse) and make the fd CLOEXEC.
 * Returns 0 with *ret_fd = -1 when the variable is unset or <= 0. Errors use
 * conmon's texts: "unable to parse NAME", "unable to make NAME CLOEXEC". */
int sync_pipe_fd_from_env(const char *name, int *ret_fd, GError **error);
