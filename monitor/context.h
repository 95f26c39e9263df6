/* The one context of a monitor: it owns the main loop, every descriptor, the
 * child pids and the sinks. It is passed as user_data everywhere; there is no
 * other mutable global state (only the diagnostics level, in diag.c). */
#pragma once

#include "attach.h"
#include "console.h"
#include "control-api.h"
#include "ctl-fifo.h"
#include "oom.h"
#include "options.h"
#include "sdnotify.h"
#include "signals.h"
#include "stdio-relay.h"
#include "sync-pipe.h"

#include <glib.h>
#include <signal.h>
#include <stdbool.h>
#include <sys/types.h>

typedef enum {
        CTRMON_PHASE_SETUP,     /* before the runtime runs                      */
        CTRMON_PHASE_RUNTIME,   /* waiting for `runtime create|exec` to return  */
        CTRMON_PHASE_RUNNING,   /* container (or exec process) running          */
        CTRMON_PHASE_EXITED,    /* reaped; reporting                            */
} CtrmonPhase;

typedef struct {
        const CtrmonOptions *opts;
        GMainLoop *loop;
        CtrmonPhase phase;

        /* caller pipes (spec §3) */
        SyncPipe sync;
        int start_pipe_fd;
        int attach_pipe_fd;
        int dev_null_fd;

        /* descriptors the caller passed (>= 3, not ours): closed before the
         * exit files are written, as conmon does */
        GArray *inherited_fds;

        char *saved_oom_score_adj;
        sigset_t original_sigmask;
        Signals *signals;

        StdioPipes pipes;
        StdioRelay *relay;
        GPtrArray *sinks;               /* LogSink*, owned */
        ConsoleSocket *console;
        int pty_master;                 /* -1 until the runtime sent it */
        AttachServer *attach;
        CtlFifos *ctl;
        OomWatch *oom;
        SdNotifyRelay *sdnotify;        /* --sdnotify-socket relay          */
        SdNotifyClient *notify;         /* our own, in unit mode            */
        guint watchdog_id;
        bool start_failed;              /* --start: `runtime start` failed  */
        bool oom_reported;

        /* children */
        pid_t runtime_pid;
        bool runtime_exited;
        int runtime_wstatus;
        pid_t container_pid;
        bool container_exited;
        int container_wstatus;
        GHashTable *early_exits;        /* pid -> wstatus reaped before known */
        /* control API */
        ControlApi *api;
        char *api_path;
        GPtrArray *waiters;             /* ControlCall* of "wait" */
        gint64 created_usec;            /* CLOCK_REALTIME, 0: not yet */
        gint64 started_usec;
        gint64 exited_usec;
        int exit_status;                /* valid once exited_usec */
        guint started_poll_id;
        guint started_poll_ms;
        gint64 start_monotonic_usec;
        char *monitor_scope;            /* --systemd-scope units, once made */
        char *container_scope;

        guint timeout_id;
        guint liveness_id;              /* polls a container that is not our child */
        bool timed_out;
} CtrmonContext;

CtrmonContext *context_new(const CtrmonOptions *opts);
void context_free(CtrmonContext *ctx);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(CtrmonContext, context_free)

/* Build the log sinks the options ask for (k8s-file takes over the fd the
 * options opened). */
int context_open_sinks(CtrmonContext *ctx, GError **error);

/* Ask every sink to reopen its file (ctl "2 0 0", SIGUSR1). */
void context_reopen_logs(CtrmonContext *ctx);
