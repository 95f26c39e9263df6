/* The monitor's start-up as a daemon (see daemon.c). */
#pragma once

#include "context.h"

/* oom_score_adj -1000 for the monitor; the old value is kept for children. */
void daemon_protect_from_oom_killer(CtrmonContext *ctx);
/* One read of _OCI_STARTPIPE, if set (kept open for --exec-attach). */
int daemon_read_start_pipe(CtrmonContext *ctx, GError **error);
/* The non-CLOEXEC descriptors the caller passed (podman's --preserve-fds). */
void daemon_record_inherited_fds(CtrmonContext *ctx);
void daemon_close_inherited_fds(CtrmonContext *ctx);
/* Without --sync: fork; the parent writes -P and exits 0. */
int daemon_fork(CtrmonContext *ctx, GError **error);
/* In the daemon: sync/attach pipes, stdio to /dev/null, setsid, subreaper. */
int daemon_become(CtrmonContext *ctx, GError **error);
