/* The container's stdio: the pipes made before the runtime starts (spec
 * §2.3), and the relay that moves output to every log sink and attach client
 * and attach input to the container's stdin. */
#pragma once

#include "attach.h"
#include "log-sink.h"
#include <glib.h>
#include <stdbool.h>
#include <stdint.h>

typedef struct {
        /* What the runtime gets as fd 0, 1, 2 (owned; closed after spawn). */
        int child_stdin;
        int child_stdout;
        int child_stderr;
        /* The monitor's ends (owned until handed to the relay). */
        int stdin_fd;   /* write end for -i, else -1        */
        int stdout_fd;  /* read end, -1 in terminal mode     */
        int stderr_fd;  /* read end (also the runtime's stderr) */
} StdioPipes;

/* Make the pipes for the mode: default (null, pipe, pipe), -i (pipe, pipe,
 * pipe), -t (null, null, pipe). Passthrough makes none (all -1). The
 * monitor's ends are CLOEXEC and non-blocking; `dev_null_fd` is dup'ed. */
int stdio_pipes_create(StdioPipes *ret_pipes, bool stdin_open, bool terminal, bool passthrough,
                       int dev_null_fd, GError **error);
void stdio_pipes_close_child_ends(StdioPipes *pipes);
void stdio_pipes_close(StdioPipes *pipes);

typedef struct StdioRelay StdioRelay;

typedef struct {
        uint64_t bytes[2];       /* stdout, stderr bytes read from the container */
        uint64_t reads[2];
        uint64_t lines[2];       /* newlines seen per stream                    */
        uint64_t stdin_bytes;    /* bytes written to the container's stdin      */
        uint64_t stdin_queued;   /* waiting for the container to read them      */
        bool output_held;        /* a full consumer holds the output now        */
        uint64_t output_held_count; /* times output reading was paused         */
} StdioStats;

/* `sinks` (LogSink*) and `attach` are borrowed and must outlive the relay.
 * stdio_relay_outputs_open() tells when every output has reached EOF. */
StdioRelay *stdio_relay_new(GPtrArray *sinks);
void stdio_relay_set_attach(StdioRelay *relay, AttachServer *attach);

/* Output listeners (the control API's attach): `fn` gets every chunk after
 * the sinks and attach clients, in read order. It must not block. A
 * listener may remove itself or any other from inside the call. With no
 * listener the relay does no extra work. Returns an id > 0. */
typedef void (*StdioListenerFn)(CtrmonStream stream, const char *buf, size_t len, void *user_data);
guint stdio_relay_add_listener(StdioRelay *relay, StdioListenerFn fn, void *user_data);
void stdio_relay_remove_listener(StdioRelay *relay, guint id);

/* Relay `fd` (owned from now on) as `stream`, from the default main context. */
void stdio_relay_add_output(StdioRelay *relay, int fd, CtrmonStream stream);

/* Back-pressure from a consumer whose bounded queue is full (an attach
 * client that reads slowly): while any hold is taken, no output is read,
 * so the container blocks on its full pipe and nothing is lost. Each hold
 * is released once; the consumer may get one more chunk (up to 128 KiB)
 * from the read that filled it. stdio_relay_drain() reads regardless. */
void stdio_relay_hold_output(StdioRelay *relay);
void stdio_relay_release_output(StdioRelay *relay);
bool stdio_relay_output_held(const StdioRelay *relay);

/* Container stdin (owned from now on; non-blocking). Input written before
 * it, after stdio_relay_expect_input() (a pty still to come), is kept and
 * goes first; without the call it is dropped (no stdin). */
void stdio_relay_expect_input(StdioRelay *relay);
void stdio_relay_set_input(StdioRelay *relay, int fd);
/* Bytes for the container's stdin; queued while the fd is full. The queue
 * is bounded upstream: producers stop reading their peers while
 * stdio_relay_input_full(), and watches hear when that changes (full:
 * true at 1 MiB queued, false once the container has read it all or stdin
 * is gone). */
void stdio_relay_write_input(StdioRelay *relay, const char *buf, size_t len);
bool stdio_relay_input_full(const StdioRelay *relay);
typedef void (*StdioInputRoomFn)(bool full, void *user_data);
guint stdio_relay_watch_input(StdioRelay *relay, StdioInputRoomFn fn, void *user_data);
void stdio_relay_unwatch_input(StdioRelay *relay, guint id);
/* Close the container's stdin once the buffered input is written. */
void stdio_relay_close_input(StdioRelay *relay);
bool stdio_relay_has_input(const StdioRelay *relay);

/* Read every output until it would block or ends: nothing the container wrote
 * before it exited is lost. Then emit what sinks buffer (journald partials). */
void stdio_relay_drain(StdioRelay *relay);
bool stdio_relay_outputs_open(const StdioRelay *relay);
void stdio_relay_get_stats(const StdioRelay *relay, StdioStats *ret_stats);
void stdio_relay_free(StdioRelay *relay);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(StdioRelay, stdio_relay_free)
