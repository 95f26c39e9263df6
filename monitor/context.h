/* The one context of a monitor: it owns the main loop, every descriptor, the
 * child pids and the sinks. It is passed as user_data everywhere; there is no
 * other mutable global state (only the diagnostics level, in diag.c). */
#pragma once

#include "attach.h"
#include "console.h"
#include "control-api.h"
#include "ctl-fifo.h"
#include "log-buffer.h"
#include "log-k8s-file.h"
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

/* Called for a child reaped on behalf of someone other than the lifecycle. */
typedef void (*ContextChildFn)(pid_t pid, int wstatus, void *user_data);

typedef struct {
        const CtrmonOptions *opts;
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
        GPtrArray *sinks;               /* LogSink*, owned: the one log buffer
                                         * in front of the real sinks, or none */
        LogSink *log_buffer;            /* borrowed from sinks              */
        /* The k8s-file sink's counters as of its last call (it may be called
         * from the log writer thread): under log_stats_lock. */
        GMutex log_stats_lock;
        bool has_k8s_stats;
        K8sFileStats k8s_stats;
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
        /* Children the control API's "exec" waits for (runtime processes and
         * the processes they exec'd, which the subreaper inherits):
         * pid -> ContextChildWatch*. While child_claims_pending > 0 a
         * runtime has not yet told an exec'd pid (which may die first), so
         * exits of unknown pids are kept in unclaimed_exits (pid ->
         * wstatus) until then. */
        GHashTable *child_watches;
        GHashTable *unclaimed_exits;
        unsigned child_claims_pending;
        /* State of the control API's streaming methods (control-*.c). */
        GPtrArray *control_execs;       /* ControlExec*: exec calls in flight */
        GPtrArray *log_followers;       /* LogFollower*: "logs" with follow */
        GPtrArray *attach_clients;      /* AttachStream*: "attach" connections */
        uint64_t attach_lossy_dropped;  /* "lossy" attach clients cut off  */
        uint64_t attach_lossy_bytes_dropped;
        /* -t: a size asked for before the runtime sent the pty, applied
         * the moment it arrives (podman writes exec's first size early). */
        bool pending_size;
        int pending_rows, pending_cols;
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
        guint runtime_timeout_id;       /* --runtime-timeout, RUNTIME phase only */
        bool runtime_timed_out;
        guint liveness_id;              /* polls a container that is not our child */
        bool timed_out;
        bool kill_grace_expired;        /* killed on timeout, yet not reaped */
        bool readers_abandoned;         /* a signal ended the wait for slow
                                         * attach clients after the exit */

        /* control API "kill" with "all": ControlKillAll* whose runtime
         * still runs (control-methods.c) */
        GPtrArray *control_kills;
} CtrmonContext;

CtrmonContext *context_new(const CtrmonOptions *opts);
void context_free(CtrmonContext *ctx);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(CtrmonContext, context_free)

/* Build the log sinks the options ask for (k8s-file takes over the fd the
 * options opened). */
int context_open_sinks(CtrmonContext *ctx, GError **error);

/* The log counters for "stats": false if there is no such sink. */
bool context_get_k8s_stats(CtrmonContext *ctx, K8sFileStats *ret_stats);
bool context_get_log_buffer_stats(CtrmonContext *ctx, LogBufferStats *ret_stats);

/* Route the exit of `pid` to `fn` (once) instead of the lifecycle. */
void context_watch_child(CtrmonContext *ctx, pid_t pid, ContextChildFn fn, void *user_data);
void context_unwatch_child(CtrmonContext *ctx, pid_t pid);
/* The reaper's dispatch: true if `pid` was watched (or kept as unclaimed
 * while a claim is pending) and the lifecycle must ignore it. */
bool context_child_exited(CtrmonContext *ctx, pid_t pid, int wstatus);
/* A watcher learnt its pid: was it already reaped? Removes the record. */
bool context_take_unclaimed_exit(CtrmonContext *ctx, pid_t pid, int *ret_wstatus);
/* A pid is about to be learnt (+1) / has been learnt or given up (-1). */
void context_claim_pending(CtrmonContext *ctx, int delta);

/* Resize the container's terminal (ctl, API resize, API attach). Before
 * the runtime has sent the pty the latest size is kept, and applied by
 * context_set_pty(). -ENOTTY without -t. */
int context_resize_terminal(CtrmonContext *ctx, int rows, int cols, GError **error);
/* The pty master arrived (owned from now on): ONLCR, then the kept size. */
void context_set_pty(CtrmonContext *ctx, int master_fd);

/* Ask every sink to reopen its file (ctl "2 0 0", SIGUSR1). */
void context_reopen_logs(CtrmonContext *ctx);
