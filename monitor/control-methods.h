/* The control API's methods over the monitor's context, and the hooks the
 * lifecycle calls so clients hear what happens (events, waiters). */
#pragma once

#include "context.h"
#include "control-api.h"

/* Create the API socket: --api-socket, else <bundle>/ctrmon/api.sock (exec
 * monitors: <bundle>/ctrmon/exec-<pid>.sock). A failure costs the API, not
 * the container: the caller warns. */
int control_setup(CtrmonContext *ctx, GError **error);
/* The pid is known: "created" (and "started" once the runtime's init has
 * exec'd the container's process). */
void control_container_created(CtrmonContext *ctx);
/* ctrmon itself started it (--start). */
void control_container_started(CtrmonContext *ctx);
/* Answer every waiter, emit "exited", and start the exit linger: answers
 * still queued (and "kill" with "all" still running) get
 * CTRMON_CONTROL_EXIT_LINGER_MS to complete while the lifecycle runs the
 * loop. Never blocks. */
void control_container_exited(CtrmonContext *ctx, int status);
/* After control_container_exited(): true while the linger has not expired
 * and an answer still waits to be written, a "kill --all" to finish or a
 * log follower to get its last lines (control_logs_pending). The
 * lifecycle runs the main loop while this is true (a timer at the deadline
 * wakes it). */
bool control_exit_pending(CtrmonContext *ctx);
void control_teardown(CtrmonContext *ctx);

/* Emit an event to subscribers (takes `fields`, may be NULL). */
void control_emit(CtrmonContext *ctx, const char *type, json_object *fields);

/* The container's state as clients see it: "creating", "created",
 * "running", "exited". */
const char *control_container_state(CtrmonContext *ctx);

/* Methods implemented in other files (control-*.c). */
void control_method_processes(ControlCall *call, json_object *params, void *user_data);
void control_method_exec(ControlCall *call, json_object *params, void *user_data);
void control_method_attach(ControlCall *call, json_object *params, void *user_data);
void control_method_logs(ControlCall *call, json_object *params, void *user_data);

/* Their state at the container's exit (after the logs are drained and
 * synced: followers get the last lines and "log-end", attach clients the
 * exit frame, exec calls still running an error) and at teardown. */
void control_exec_container_exited(CtrmonContext *ctx);
void control_logs_container_exited(CtrmonContext *ctx, int status);
void control_attach_container_exited(CtrmonContext *ctx, int status);
/* Lossless API attach clients still reading their last output and EXIT
 * (waited for without a bound, like conmon's attach clients). */
bool control_attach_pending(CtrmonContext *ctx);
void control_exec_teardown(CtrmonContext *ctx);
void control_logs_teardown(CtrmonContext *ctx);
void control_attach_teardown(CtrmonContext *ctx);
