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

/* podman (4 and 5) passes the sync, start and attach "pipes" as AF_UNIX
 * SOCK_SEQPACKET socketpairs and reads the sync and attach ones with Go's
 * bufio.Reader (readConmonPipeData): read()s into its 4096-byte buffer. A
 * read of a longer record returns its first 4096 bytes and the kernel drops
 * the rest, so a longer line would reach podman as cut-off JSON ("unexpected
 * end of JSON input") instead of the runtime's error message. */
#define SYNC_PIPE_SEQPACKET_RECORD_MAX 4096

/* Pure: sync_pipe_format(), but with the message shortened (whole escaped
 * bytes, never inside a UTF-8 sequence) so that the line is at most `max`
 * bytes when it can be; max 0 means no bound. */
char *sync_pipe_format_bounded(const char *key, int value, const char *message, size_t max);

/* Write one message with a single write-all: on a SOCK_SEQPACKET socket one
 * record of at most SYNC_PIPE_SEQPACKET_RECORD_MAX bytes (the message is
 * shortened to fit), on a pipe or stream socket the whole line. EPIPE closes
 * the pipe and later messages are skipped silently (the caller went away);
 * other errors are returned. No-op without a pipe. */
int sync_pipe_send(SyncPipe *pipe, int value, const char *message, GError **error);

/* Parse a decimal fd number from an environment variable such as
 * _OCI_SYNCPIPE (whole string must parse) and make the fd CLOEXEC.
 * Returns 0 with *ret_fd = -1 when the variable is unset or <= 0. Errors use
 * conmon's texts: "unable to parse NAME", "unable to make NAME CLOEXEC". */
int sync_pipe_fd_from_env(const char *name, int *ret_fd, GError **error);
