/* ctrmon and systemd: unit mode and transient scopes (see service.c). */
#pragma once

#include "context.h"

/* After daemonizing: in unit mode take over NOTIFY_SOCKET; with
 * --systemd-scope move the monitor into ctrmon-<cid>.scope. Fails only when
 * the scope is required. */
int service_setup(CtrmonContext *ctx, GError **error);

/* Put `pid` into the transient scope ctrmon-<cid><suffix> on the chosen
 * manager. A failure is a warning unless --systemd-scope-required. */
int service_scope(CtrmonContext *ctx, const char *suffix, const char *what, pid_t pid, bool delegate,
                  GError **error);

/* --start: run `runtime start`, then READY=1 (unit mode) and the watchdog.
 * On failure the container is killed and ctx->start_failed is set. */
void service_start_container(CtrmonContext *ctx);

/* Send a message to the service manager in unit mode; nothing otherwise. */
void service_notify(CtrmonContext *ctx, const char *format, ...) G_GNUC_PRINTF(2, 3);

/* True when fd 2 is the journal stream systemd gave a unit ($JOURNAL_STREAM). */
bool service_stderr_is_journal(void);

/* Unit mode: if the runtime put the container's unified (v2) cgroup outside
 * the unit's, move it to <unit cgroup>/<cid>, so systemd counts it as part of
 * the unit (stop, kill, systemd-cgls). Best effort: warns on failure. */
void service_keep_container_in_unit(CtrmonContext *ctx);
