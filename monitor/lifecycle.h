/* The monitor's life from start-up to exit, as one state machine: validate ->
 * daemonize -> prepare stdio, sockets and FIFOs -> runtime -> report the pid
 * -> relay and reap -> exit files -> exit command. */
#pragma once

#include "options.h"

/* Runs the monitor. Returns the process exit status: in the foreground 0
 * after daemonizing and 1 on set-up errors; in the daemon (or with --sync)
 * the container's status (128+signal when killed, 255 on timeout) or 1 when
 * the runtime or the monitor failed. */
int lifecycle_run(CtrmonOptions *opts);
