/* ctrmon's control protocol, version 1: newline-delimited JSON-RPC 2.0 over a
 * UNIX stream socket. Every ctrmon creates one (also in conmon-compatible
 * mode), by default at <bundle>/ctrmon/api.sock (the ctrmon directory has
 * mode 0700, the socket 0600), or at --api-socket PATH. Only the monitor's own
 * uid and root may connect (SO_PEERCRED); anyone else gets one error response
 * and the connection is closed.
 *
 * Framing: one JSON object per line, UTF-8, no embedded newlines (JSON
 * escapes them). A request line may be at most CTRMON_CONTROL_MAX_REQUEST
 * bytes; a longer one gets CTRMON_CONTROL_ERROR_TOO_LARGE and the connection
 * is closed. Requests on one connection are answered in order of completion
 * (match them by "id"); "wait" and "exec" answer later, others at once. A
 * client may shut down its write side after its requests (`nc -N`): the
 * monitor answers what it asked, then closes.
 *
 * The methods, their params and results are documented in ctrmon-api(7);
 * the names below are the wire names. */
#pragma once

#define CTRMON_CONTROL_PROTOCOL_VERSION 1
#define CTRMON_CONTROL_MAX_REQUEST (1024 * 1024)
#define CTRMON_CONTROL_SOCKET_DIR "ctrmon"     /* inside the bundle */
#define CTRMON_CONTROL_SOCKET_NAME "api.sock"

/* methods */
#define CTRMON_METHOD_VERSION "version"
#define CTRMON_METHOD_STATUS "status"
#define CTRMON_METHOD_PROCESSES "processes"
#define CTRMON_METHOD_WAIT "wait"
#define CTRMON_METHOD_KILL "kill"
#define CTRMON_METHOD_RESIZE "resize"
#define CTRMON_METHOD_CLOSE_STDIN "close_stdin"
#define CTRMON_METHOD_REOPEN_LOG "reopen_log"
#define CTRMON_METHOD_EXEC "exec"
#define CTRMON_METHOD_ATTACH "attach"
#define CTRMON_METHOD_LOGS "logs"
#define CTRMON_METHOD_STATS "stats"
#define CTRMON_METHOD_SUBSCRIBE "subscribe"

/* notifications sent after "subscribe": {"jsonrpc":"2.0","method":"event",
 * "params":{"type":TYPE,"time":"RFC3339 ns",...}} */
#define CTRMON_NOTIFICATION_EVENT "event"
#define CTRMON_EVENT_CREATED "created"
#define CTRMON_EVENT_STARTED "started"
#define CTRMON_EVENT_EXITED "exited"
#define CTRMON_EVENT_OOM "oom"
#define CTRMON_EVENT_LOG_ROTATED "log-rotated"
#define CTRMON_EVENT_ATTACH_CONNECTED "attach-connected"
#define CTRMON_EVENT_ATTACH_DISCONNECTED "attach-disconnected"
#define CTRMON_EVENT_STDIN_CLOSED "stdin-closed"
/* Container output the log buffer had no room for (--log-buffer-size):
 * {"bytes","chunks"} since the previous report, {"bytes_dropped",
 * "chunks_dropped"} in all, "buffer_size"; at most one a second. */
#define CTRMON_EVENT_LOG_DROPPED "log-dropped"
/* A log sink's writes started failing (full disk) / succeed again:
 * {"sink","error","failed_writes"}. The monitor keeps reading meanwhile. */
#define CTRMON_EVENT_LOG_WRITE_FAILED "log-write-failed"
#define CTRMON_EVENT_LOG_WRITE_RESUMED "log-write-resumed"

/* errors: JSON-RPC 2.0's own, then ctrmon's (-32000 .. -32099) */
#define CTRMON_CONTROL_ERROR_PARSE -32700            /* not JSON */
#define CTRMON_CONTROL_ERROR_INVALID_REQUEST -32600  /* not a JSON-RPC request */
#define CTRMON_CONTROL_ERROR_METHOD_NOT_FOUND -32601
#define CTRMON_CONTROL_ERROR_INVALID_PARAMS -32602
#define CTRMON_CONTROL_ERROR_INTERNAL -32603
#define CTRMON_CONTROL_ERROR_ACCESS_DENIED -32001    /* peer uid not admitted */
#define CTRMON_CONTROL_ERROR_TOO_LARGE -32002        /* request line too long */
#define CTRMON_CONTROL_ERROR_NOT_RUNNING -32003      /* container not running */
#define CTRMON_CONTROL_ERROR_FAILED -32004           /* the operation failed; message says why */
#define CTRMON_CONTROL_ERROR_UNSUPPORTED -32005      /* not in this mode (e.g. resize without -t) */
#define CTRMON_CONTROL_ERROR_LIMIT -32006            /* a limit below is reached; message names it */

/* Limits. A hostile or broken client costs bounded memory and descriptors
 * and never stalls the monitor's loop (which also relays the container's
 * output and reaps it): */
/* Connections per peer uid. A connection over it gets one
 * CTRMON_CONTROL_ERROR_LIMIT answer ("id": null) and is closed. */
#define CTRMON_CONTROL_MAX_CONNECTIONS_PER_UID 64
/* Connections in all (root and the owner). While no admitted uid could
 * connect (at this, or every admitted uid at its own limit), the monitor
 * accepts nothing: new clients wait in the listen backlog until a
 * connection closes. */
#define CTRMON_CONTROL_MAX_CONNECTIONS 128
/* Descriptors the API leaves free under RLIMIT_NOFILE for the monitor's own
 * work (exec pipes, log reopen, attach): a connection that would eat into
 * them is refused (CTRMON_CONTROL_ERROR_LIMIT), and accepting pauses for
 * CTRMON_CONTROL_ACCEPT_RETRY_MS; so it does on EMFILE/ENFILE. */
#define CTRMON_CONTROL_FD_RESERVE 32
#define CTRMON_CONTROL_ACCEPT_RETRY_MS 250
/* Output a client may leave unread: a notification (event, log line) that
 * would pass it disconnects the client. */
#define CTRMON_CONTROL_OUTPUT_MAX (16 * 1024 * 1024)
/* An answer may take the unread output up to this (the largest "exec"
 * answer fits an empty queue). One that does not fit is replaced by a
 * CTRMON_CONTROL_ERROR_FAILED answer saying so: a client gets its data or
 * an error, never EOF. */
#define CTRMON_CONTROL_ANSWER_MAX (48 * 1024 * 1024)
/* "wait" calls pending on one connection; over it: CTRMON_CONTROL_ERROR_LIMIT.
 * A waiter is dropped when its client goes away. */
#define CTRMON_CONTROL_MAX_WAITS_PER_CONNECTION 16
/* "exec" calls running at once (all connections); over it:
 * CTRMON_CONTROL_ERROR_LIMIT. A client that goes away (full close, not a
 * half-close) takes its execs with it: their commands are killed. */
#define CTRMON_CONTROL_MAX_EXECS 16
/* "exec" params.output_limit: bytes kept per stream, default and maximum.
 * Output is sent as text when that is not much longer than base64, so two
 * full streams fit CTRMON_CONTROL_ANSWER_MAX. */
#define CTRMON_EXEC_OUTPUT_LIMIT_DEFAULT (16 * 1024 * 1024)
#define CTRMON_EXEC_OUTPUT_LIMIT_MAX (16 * 1024 * 1024)
/* "kill" with "all" running at once (each is a `runtime kill --all`
 * process, bounded by --runtime-timeout); over it: CTRMON_CONTROL_ERROR_LIMIT. */
#define CTRMON_CONTROL_MAX_KILLS 4
/* API "attach" clients at once; over it: CTRMON_CONTROL_ERROR_LIMIT. */
#define CTRMON_CONTROL_MAX_ATTACH 32
/* At the container's exit: how long answers still queued for slow readers
 * (and "kill" with "all" still running) may keep the monitor. The loop runs
 * meanwhile; nothing blocks. */
#define CTRMON_CONTROL_EXIT_LINGER_MS 2000

/* "attach": after the answer {"framing":"ctrmon-attach-v1"} the connection
 * stops being JSON and carries frames both ways until it closes:
 *
 *      +--------+----------------------+-----------------+
 *      | type 1 | length 4 (big-endian) | payload: length |
 *      +--------+----------------------+-----------------+
 *
 * client -> monitor: STDIN (bytes for the container's stdin; ignored
 * without -i/-t), RESIZE (payload: rows, cols as two big-endian uint16;
 * ignored without -t), CLOSE_STDIN (empty payload).
 * monitor -> client: STDOUT, STDERR (container output as read, from the
 * moment of attaching), EXIT (payload: the exit status as a big-endian
 * int32, -1 after a timeout), after which the monitor closes.
 * Params: {"detach_keys": "ctrl-p,ctrl-q"} (the default; "" disables):
 * when the client's STDIN bytes contain the sequence, the monitor stops
 * forwarding, sends nothing more and closes; the container runs on.
 * Lossless by default: while a client leaves CTRMON_ATTACH_QUEUE_MAX bytes
 * unread, the monitor reads no more container output (the container waits,
 * as for a slow reader of the conmon attach socket). {"lossy": true} opts
 * out: such a client that falls that far behind gets no more output but a
 * DROPPED frame (payload: a UTF-8 message saying why), then the monitor
 * closes; it is counted in "stats" (attach_clients_dropped) and reported
 * as an attach-disconnected event with reason "too far behind". Unknown
 * frame types are ignored; a frame longer than CTRMON_ATTACH_FRAME_MAX
 * closes the connection. */
#define CTRMON_ATTACH_FRAMING "ctrmon-attach-v1"
#define CTRMON_ATTACH_FRAME_STDIN 1
#define CTRMON_ATTACH_FRAME_STDOUT 2
#define CTRMON_ATTACH_FRAME_STDERR 3
#define CTRMON_ATTACH_FRAME_RESIZE 4
#define CTRMON_ATTACH_FRAME_CLOSE_STDIN 5
#define CTRMON_ATTACH_FRAME_EXIT 6
#define CTRMON_ATTACH_FRAME_DROPPED 7
#define CTRMON_ATTACH_HEADER_SIZE 5
#define CTRMON_ATTACH_FRAME_MAX (1024 * 1024)
#define CTRMON_ATTACH_QUEUE_MAX (4 * 1024 * 1024)

/* "logs" with follow: after the answer, one notification per new line,
 * {"jsonrpc":"2.0","method":"log","params":{"time","stream","text",
 * "partial"}}, and at the container's exit {"method":"log-end",
 * "params":{"exit_code":N}}. */
#define CTRMON_NOTIFICATION_LOG "log"
#define CTRMON_NOTIFICATION_LOG_END "log-end"
