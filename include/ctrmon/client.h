/* libctrmon: a client for ctrmon's control API (include/ctrmon/control.h).
 *
 * Error convention (one for the whole library): every fallible function
 * returns an int, >= 0 on success and -errno on failure. The failure's
 * message a person can act on is then ctrmon_client_error(client), valid
 * until the next call on that client; ctrmon_client_error_code() gives the
 * JSON-RPC error code when the monitor answered with an error (0 when the
 * failure was local: a socket error, a malformed answer). Remote errors map
 * to errno values so callers can branch without knowing JSON-RPC:
 *
 *   CTRMON_CONTROL_ERROR_ACCESS_DENIED    -EACCES
 *   CTRMON_CONTROL_ERROR_NOT_RUNNING      -ESRCH
 *   CTRMON_CONTROL_ERROR_METHOD_NOT_FOUND -EOPNOTSUPP
 *   CTRMON_CONTROL_ERROR_UNSUPPORTED      -EOPNOTSUPP
 *   CTRMON_CONTROL_ERROR_INVALID_PARAMS   -EINVAL
 *   CTRMON_CONTROL_ERROR_LIMIT            -EAGAIN (a limit of the monitor's
 *                                         is reached: try again later)
 *   anything else                         -EREMOTEIO
 *
 * Connecting fails with a plain -errno and no client (-ENOENT: no monitor
 * there; -EACCES: the socket's directory refused us). Out-parameters are
 * written only on success. Strings and buffers handed out are malloc()ed:
 * release them with free() or the matching *_clear() function. JSON is
 * passed as text so this header needs no JSON library.
 *
 * A client is one connection and is not thread-safe; calls are synchronous
 * (each sends one request and reads until its answer). Notifications that
 * arrive meanwhile are dropped unless a subscribe/logs call is consuming
 * them. */
#pragma once

#include <ctrmon/control.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <sys/un.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct CtrmonClient CtrmonClient;

/* ------------------------------------------------------------ connection */

/* Connect to the control socket at `socket_path`. Paths longer than
 * sun_path are reached through the directory's /proc/self/fd entry. */
int ctrmon_client_connect(const char *socket_path, CtrmonClient **ret_client);
/* Connect to <bundle_dir>/ctrmon/api.sock. */
int ctrmon_client_connect_bundle(const char *bundle_dir, CtrmonClient **ret_client);
/* The socket path a bundle's monitor listens on (malloc()ed). */
char *ctrmon_client_bundle_socket_path(const char *bundle_dir);
/* Close the connection and free the client. NULL-safe. */
void ctrmon_client_close(CtrmonClient *client);
/* The connected socket (for poll()); -1 after ctrmon_client_attach(). */
int ctrmon_client_fd(const CtrmonClient *client);
/* The last failure's message ("" if none) and JSON-RPC code (0 if local). */
const char *ctrmon_client_error(const CtrmonClient *client);
int ctrmon_client_error_code(const CtrmonClient *client);

/* ------------------------------------------------------------ generic call */

/* Send `method` with `params_json` (one JSON object as text, read in json-c's
 * strict mode, or NULL for none; anything else is -EINVAL)
 * and wait for its answer; on success *ret_result_json (if not NULL) gets
 * the result as JSON text. */
int ctrmon_client_call(CtrmonClient *client, const char *method, const char *params_json,
                       char **ret_result_json);

/* ------------------------------------------------------------ typed helpers */

typedef struct {
        int protocol;
        char *ctrmon;          /* ctrmon's version                     */
        char *conmon_compat;   /* the conmon version it implements     */
} CtrmonVersion;
int ctrmon_client_version(CtrmonClient *client, CtrmonVersion *ret_version);
void ctrmon_version_clear(CtrmonVersion *version);

typedef struct {
        char *id;
        char *name;            /* NULL if none                          */
        char *state;           /* creating, created, running, exited   */
        bool exec;             /* an exec session's monitor            */
        pid_t monitor_pid;
        pid_t container_pid;   /* 0 if not created                      */
        bool exited;
        int exit_code;         /* valid when exited                     */
        int signal;            /* 0 unless killed by a signal           */
        bool timed_out;
        bool oom;
        bool terminal;
        bool stdin_open;
        char *bundle;          /* NULL if none                          */
        char *json;            /* the whole result, for everything else */
} CtrmonStatus;
int ctrmon_client_status(CtrmonClient *client, CtrmonStatus *ret_status);
void ctrmon_status_clear(CtrmonStatus *status);

typedef struct {
        int exit_code;         /* as in the exit file: 128+N for signal N */
        int signal;            /* 0 unless killed by a signal           */
        bool timed_out;
        bool oom;
} CtrmonExit;
/* Block until the container exits (at once if it has). */
int ctrmon_client_wait(CtrmonClient *client, CtrmonExit *ret_exit);

/* Send `signo` to the container's init, or with `all` to every process
 * (the runtime's kill --all). */
int ctrmon_client_kill(CtrmonClient *client, int signo, bool all);
int ctrmon_client_resize(CtrmonClient *client, unsigned rows, unsigned cols);
int ctrmon_client_close_stdin(CtrmonClient *client);
int ctrmon_client_reopen_log(CtrmonClient *client);
/* Results as JSON text: their shapes are documented in ctrmon-api(7). */
int ctrmon_client_stats(CtrmonClient *client, char **ret_json);
int ctrmon_client_processes(CtrmonClient *client, char **ret_json);

typedef struct {
        const char *const *argv;       /* NULL-terminated, required     */
        const void *stdin_data;        /* may be NULL                   */
        size_t stdin_len;
        int timeout;                   /* seconds, 0: none              */
        bool tty;                      /* ctrmon 0.1 refuses this: use attach */
} CtrmonExecOptions;

typedef struct {
        int exit_code;                 /* 128+N for signal N, -1 timed out */
        int signal;
        bool timed_out;
        char *out;                     /* NUL-terminated for convenience */
        size_t out_len;
        char *err;
        size_t err_len;
        bool out_truncated;
        bool err_truncated;
        char *json;                    /* the whole result               */
} CtrmonExecResult;
/* Run a process in the container and collect its output (like CRI's
 * ExecSync). Blocks until it ends. */
int ctrmon_client_exec(CtrmonClient *client, const CtrmonExecOptions *options, CtrmonExecResult *ret_result);
void ctrmon_exec_result_clear(CtrmonExecResult *result);

typedef struct {
        const char *time;              /* RFC 3339, may be NULL          */
        const char *stream;            /* "stdout"/"stderr", may be NULL */
        const char *text;              /* the line, without newline      */
        size_t text_len;
        bool partial;                  /* the line goes on in the next   */
        const char *json;              /* the whole entry                */
} CtrmonLogLine;
/* Return 0 to go on, anything else to stop (it becomes the return value). */
typedef int (*CtrmonLogFn)(const CtrmonLogLine *line, void *userdata);
/* Replay the container's log: the last `tail` lines (< 0: all), then with
 * `follow` new lines as they are written, until the container's log ends
 * or `fn` stops. Returns 0 at the end, fn's value if it stopped. */
int ctrmon_client_logs(CtrmonClient *client, int tail, bool follow, CtrmonLogFn fn, void *userdata);

typedef struct {
        const char *type;              /* CTRMON_EVENT_*                 */
        const char *time;
        const char *json;              /* the notification's params      */
} CtrmonEvent;
typedef int (*CtrmonEventFn)(const CtrmonEvent *event, void *userdata);
/* Subscribe and deliver events until the monitor hangs up (returns 0) or
 * `fn` returns non-zero (returns that). *ret_state (optional, malloc()ed)
 * is the container's state at subscription time, before any event. */
int ctrmon_client_subscribe(CtrmonClient *client, CtrmonEventFn fn, void *userdata, char **ret_state);

/* ------------------------------------------------------------ attach */

/* Frame types on an attached connection (ctrmon-attach-v1, described in
 * control.h): 1 byte type, 4-byte big-endian payload length, payload. */
enum {
        CTRMON_FRAME_STDIN = CTRMON_ATTACH_FRAME_STDIN,             /* client -> monitor */
        CTRMON_FRAME_STDOUT = CTRMON_ATTACH_FRAME_STDOUT,           /* monitor -> client */
        CTRMON_FRAME_STDERR = CTRMON_ATTACH_FRAME_STDERR,           /* monitor -> client */
        CTRMON_FRAME_RESIZE = CTRMON_ATTACH_FRAME_RESIZE,           /* u16 rows, u16 cols */
        CTRMON_FRAME_CLOSE_STDIN = CTRMON_ATTACH_FRAME_CLOSE_STDIN, /* empty payload */
        CTRMON_FRAME_EXIT = CTRMON_ATTACH_FRAME_EXIT,               /* i32 status, -1: timed out */
        CTRMON_FRAME_DROPPED = CTRMON_ATTACH_FRAME_DROPPED,         /* lossy only: why, UTF-8 */
};
#define CTRMON_FRAME_HEADER_SIZE CTRMON_ATTACH_HEADER_SIZE
/* What we accept from the monitor; it accepts CTRMON_ATTACH_FRAME_MAX. */
#define CTRMON_FRAME_MAX_PAYLOAD (16u * 1024 * 1024)

typedef struct {
        const char *detach_keys;       /* NULL: the monitor's default (ctrl-p,ctrl-q) */
        bool no_stdin;                 /* the caller will not send STDIN (informational) */
        /* Never hold the container: if this client falls
         * CTRMON_ATTACH_QUEUE_MAX behind, it gets a DROPPED frame and EOF
         * instead (the default, false, is lossless back-pressure). */
        bool lossy;
} CtrmonAttachOptions;
/* Switch the connection to framed attach mode. On success *ret_fd is the
 * connection (now owned by the caller, O_CLOEXEC, blocking) and the client
 * can only be closed. Nothing past the answer has been read from it. */
int ctrmon_client_attach(CtrmonClient *client, const CtrmonAttachOptions *options, int *ret_fd);

/* Write the 5-byte header for a frame. */
void ctrmon_frame_encode_header(uint8_t header[CTRMON_FRAME_HEADER_SIZE], uint8_t type, uint32_t payload_len);
/* Decode the frame at the start of buf: returns the bytes it takes (> 0)
 * with its type and payload (pointing into buf), 0 if buf holds only part
 * of it, -EBADMSG if its length is over CTRMON_FRAME_MAX_PAYLOAD. Unknown
 * types are returned too: callers skip them, as the monitor does. */
int ctrmon_frame_decode(const void *buf, size_t len, uint8_t *ret_type, const uint8_t **ret_payload,
                        uint32_t *ret_payload_len);
/* Write one whole frame to a blocking fd (retrying short writes). */
int ctrmon_frame_write(int fd, uint8_t type, const void *payload, size_t len);
int ctrmon_frame_write_resize(int fd, unsigned rows, unsigned cols);
/* Payload helpers: the exit status, the resize size. -EBADMSG if short. */
int ctrmon_frame_parse_exit(const uint8_t *payload, uint32_t len, int *ret_status);
int ctrmon_frame_parse_resize(const uint8_t *payload, uint32_t len, unsigned *ret_rows, unsigned *ret_cols);

/* ------------------------------------------------------------ pure helpers */

/* Build the address for `path`. If it does not fit sun_path, `dir_fd` must
 * be an O_PATH fd of its directory: the address becomes
 * "/proc/self/fd/<dir_fd>/<basename>"; with dir_fd < 0 that case returns
 * -ENAMETOOLONG. */
int ctrmon_client_build_address(const char *path, int dir_fd, struct sockaddr_un *ret_addr,
                                socklen_t *ret_len);

#ifdef __cplusplus
}
#endif
