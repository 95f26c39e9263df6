/* Construction and destruction of the monitor's context, and the sinks it
 * owns. Destruction accepts a half-built context. */
#include "context.h"

#include "control-methods.h"

#include "diag.h"
#include "log-journald.h"
#include "log-k8s-file.h"
#include "ctrmon/error.h"
#include "ctrmon/fd-util.h"

#include <errno.h>

#include <unistd.h>

CtrmonContext *context_new(const CtrmonOptions *opts)
{
        CtrmonContext *ctx = g_new0(CtrmonContext, 1);
        ctx->opts = opts;
        ctx->sync.fd = -1;
        ctx->sync.key = sync_pipe_key(opts->api_version_1, opts->exec);
        ctx->start_pipe_fd = -1;
        ctx->attach_pipe_fd = -1;
        ctx->dev_null_fd = -1;
        ctx->inherited_fds = g_array_new(FALSE, FALSE, sizeof(int));
        ctx->pipes = (StdioPipes){ -1, -1, -1, -1, -1, -1 };
        ctx->sinks = g_ptr_array_new_with_free_func((GDestroyNotify) log_sink_free);
        g_mutex_init(&ctx->log_stats_lock);
        ctx->pty_master = -1;
        ctx->child_watches = g_hash_table_new_full(g_direct_hash, g_direct_equal, NULL, g_free);
        ctx->unclaimed_exits = g_hash_table_new(g_direct_hash, g_direct_equal);
        ctx->start_monotonic_usec = g_get_monotonic_time();
        return ctx;
}

/* --- reports of the log buffer (log-buffer.h) --- */

static void context_log_dropped_cb(uint64_t bytes, uint64_t chunks, const LogBufferStats *totals, void *user_data)
{
        CtrmonContext *ctx = user_data;
        json_object *f = json_object_new_object();
        json_object_object_add(f, "bytes", json_object_new_int64((int64_t) bytes));
        json_object_object_add(f, "chunks", json_object_new_int64((int64_t) chunks));
        json_object_object_add(f, "bytes_dropped", json_object_new_int64((int64_t) totals->bytes_dropped));
        json_object_object_add(f, "chunks_dropped", json_object_new_int64((int64_t) totals->chunks_dropped));
        json_object_object_add(f, "buffer_size", json_object_new_int64((int64_t) totals->size));
        control_emit(ctx, CTRMON_EVENT_LOG_DROPPED, f);
}

static void context_log_sink_state_cb(const LogBufferSinkState *state, void *user_data)
{
        CtrmonContext *ctx = user_data;
        json_object *f = json_object_new_object();
        json_object_object_add(f, "sink", json_object_new_string(state->sink));
        json_object_object_add(f, "error", state->message ? json_object_new_string(state->message) : NULL);
        json_object_object_add(f, "failed_writes", json_object_new_int64((int64_t) state->failed_writes));
        control_emit(ctx, state->failing ? CTRMON_EVENT_LOG_WRITE_FAILED : CTRMON_EVENT_LOG_WRITE_RESUMED, f);
}

/* On the thread that calls the sinks, right after it did. */
static void context_log_sinks_called_cb(GPtrArray *sinks, void *user_data)
{
        CtrmonContext *ctx = user_data;
        for (guint i = 0; i < sinks->len; i++) {
                LogSink *sink = g_ptr_array_index(sinks, i);
                if (!g_str_equal(sink->ops->name, "k8s-file"))
                        continue;
                K8sFileStats ks;
                k8s_file_sink_get_stats(sink, &ks);
                g_mutex_lock(&ctx->log_stats_lock);
                ctx->k8s_stats = ks;
                ctx->has_k8s_stats = true;
                g_mutex_unlock(&ctx->log_stats_lock);
        }
}

bool context_get_k8s_stats(CtrmonContext *ctx, K8sFileStats *ret_stats)
{
        g_mutex_lock(&ctx->log_stats_lock);
        bool has = ctx->has_k8s_stats;
        if (has)
                *ret_stats = ctx->k8s_stats;
        g_mutex_unlock(&ctx->log_stats_lock);
        return has;
}

bool context_get_log_buffer_stats(CtrmonContext *ctx, LogBufferStats *ret_stats)
{
        if (!ctx->log_buffer)
                return false;
        log_buffer_get_stats(ctx->log_buffer, ret_stats);
        return true;
}

int context_open_sinks(CtrmonContext *ctx, GError **error)
{
        const CtrmonOptions *o = ctx->opts;
        CtrmonOptions *mutable_opts = (CtrmonOptions *) o;
        g_autoptr(GPtrArray) sinks = g_ptr_array_new_with_free_func((GDestroyNotify) log_sink_free);

        if (o->log.k8s_file && o->log.k8s_fd >= 0) {
                K8sFileConfig config = {
                        .path = o->log.k8s_path,
                        .fd = o->log.k8s_fd,
                        .size_max = o->log_size_max,
                        .global_size_max = o->log_global_size_max,
                        .rotate = o->log_rotate,
                        .max_files = o->log_max_files,
                        .allowlist_dirs = (const char *const *) o->log_allowlist_dirs,
                };
                LogSink *sink = NULL;
                int r = k8s_file_sink_new(&config, &sink, error);
                if (r < 0)
                        return r;
                /* The sink owns the descriptor now. */
                mutable_opts->log.k8s_fd = -1;
                g_ptr_array_add(sinks, sink);
        }
        if (o->log.journald) {
                JournaldConfig config = {
                        .cid = o->cid,
                        .name = o->name,
                        .tag = o->log_tag,
                        .labels = (const char *const *) o->log_labels,
                        .no_partial_flag = o->no_container_partial_message,
                        .priority_prefix = o->log_priority_prefix,
                };
                LogSink *sink = NULL;
                int r = journald_sink_new(&config, &sink, error);
                if (r < 0)
                        return r;
                g_ptr_array_add(sinks, sink);
        }
        if (sinks->len == 0)
                return 0;

        /* The counters as they are before the first write (the size of an
         * existing file), then after every call. */
        context_log_sinks_called_cb(sinks, ctx);
        LogBufferConfig config = {
                .size = o->log_buffer_size,
                .dropped_fn = context_log_dropped_cb,
                .sink_state_fn = context_log_sink_state_cb,
                .sinks_called_fn = context_log_sinks_called_cb,
                .user_data = ctx,
        };
        LogSink *buffer = NULL;
        int r = log_buffer_new(sinks, &config, &buffer, error);
        if (r < 0)
                return r;
        g_steal_pointer(&sinks);
        ctx->log_buffer = buffer;
        g_ptr_array_add(ctx->sinks, buffer);
        return 0;
}

typedef struct {
        ContextChildFn fn;
        void *user_data;
} ContextChildWatch;

void context_watch_child(CtrmonContext *ctx, pid_t pid, ContextChildFn fn, void *user_data)
{
        ContextChildWatch *w = g_new0(ContextChildWatch, 1);
        w->fn = fn;
        w->user_data = user_data;
        g_hash_table_replace(ctx->child_watches, GINT_TO_POINTER(pid), w);
}

void context_unwatch_child(CtrmonContext *ctx, pid_t pid)
{
        g_hash_table_remove(ctx->child_watches, GINT_TO_POINTER(pid));
}

bool context_child_exited(CtrmonContext *ctx, pid_t pid, int wstatus)
{
        ContextChildWatch *w = g_hash_table_lookup(ctx->child_watches, GINT_TO_POINTER(pid));
        if (w) {
                ContextChildWatch copy = *w;
                /* Removed first: the callback may free its owner. */
                g_hash_table_remove(ctx->child_watches, GINT_TO_POINTER(pid));
                copy.fn(pid, wstatus, copy.user_data);
                return true;
        }
        if (ctx->child_claims_pending > 0) {
                g_hash_table_insert(ctx->unclaimed_exits, GINT_TO_POINTER(pid), GINT_TO_POINTER(wstatus));
                return false; /* the lifecycle may still know it */
        }
        return false;
}

bool context_take_unclaimed_exit(CtrmonContext *ctx, pid_t pid, int *ret_wstatus)
{
        gpointer status;
        if (!g_hash_table_lookup_extended(ctx->unclaimed_exits, GINT_TO_POINTER(pid), NULL, &status))
                return false;
        g_hash_table_remove(ctx->unclaimed_exits, GINT_TO_POINTER(pid));
        *ret_wstatus = GPOINTER_TO_INT(status);
        return true;
}

void context_claim_pending(CtrmonContext *ctx, int delta)
{
        g_return_if_fail(delta > 0 || ctx->child_claims_pending > 0);
        ctx->child_claims_pending = (unsigned) ((int) ctx->child_claims_pending + delta);
        /* Nobody can claim what is left: forget it (pids are reused). */
        if (ctx->child_claims_pending == 0)
                g_hash_table_remove_all(ctx->unclaimed_exits);
}

void context_reopen_logs(CtrmonContext *ctx)
{
        for (guint i = 0; i < ctx->sinks->len; i++) {
                LogSink *sink = g_ptr_array_index(ctx->sinks, i);
                g_autoptr(GError) error = NULL;
                if (sink->ops->reopen && sink->ops->reopen(sink, &error) < 0)
                        log_warning("Failed to reopen the %s log: %s", sink->ops->name, error->message);
        }
}

int context_resize_terminal(CtrmonContext *ctx, int rows, int cols, GError **error)
{
        if (!ctx->opts->terminal)
                return ctrmon_set_error(error, ENOTTY, "Container %s has no terminal (ctrmon was started without -t)",
                                        ctx->opts->cid);
        if (ctx->pty_master < 0) {
                ctx->pending_size = true;
                ctx->pending_rows = rows;
                ctx->pending_cols = cols;
                return 0;
        }
        return console_resize(ctx->pty_master, rows, cols, error);
}

void context_set_pty(CtrmonContext *ctx, int master_fd)
{
        g_autoptr(GError) error = NULL;
        ctrmon_close_fd(&ctx->pty_master);
        ctx->pty_master = master_fd;
        if (console_set_onlcr(master_fd, &error) < 0) {
                log_warning("%s, ignoring", error->message);
                g_clear_error(&error);
        }
        if (ctx->pending_size) {
                ctx->pending_size = false;
                if (console_resize(master_fd, ctx->pending_rows, ctx->pending_cols, &error) < 0)
                        log_warning("%s, ignoring", error->message);
        }
}

void context_free(CtrmonContext *ctx)
{
        if (!ctx)
                return;
        control_teardown(ctx);
        if (ctx->started_poll_id)
                g_source_remove(ctx->started_poll_id);
        if (ctx->timeout_id)
                g_source_remove(ctx->timeout_id);
        if (ctx->runtime_timeout_id)
                g_source_remove(ctx->runtime_timeout_id);
        if (ctx->liveness_id)
                g_source_remove(ctx->liveness_id);
        /* The attach server first: dropping a full client releases its
         * hold on the relay. */
        g_clear_pointer(&ctx->attach, attach_server_free);
        g_clear_pointer(&ctx->relay, stdio_relay_free);
        ctl_fifos_free(ctx->ctl);
        console_socket_free(ctx->console);
        oom_watch_free(ctx->oom);
        sdnotify_relay_free(ctx->sdnotify);
        if (ctx->watchdog_id)
                g_source_remove(ctx->watchdog_id);
        sdnotify_client_free(ctx->notify);
        signals_free(ctx->signals);
        stdio_pipes_close(&ctx->pipes);
        ctrmon_close_fd(&ctx->pty_master);
        ctrmon_close_fd(&ctx->start_pipe_fd);
        ctrmon_close_fd(&ctx->attach_pipe_fd);
        ctrmon_close_fd(&ctx->dev_null_fd);
        if (ctx->sync.fd >= 0)
                close(ctx->sync.fd);
        /* Joins the log writer thread, which still calls back into ctx. */
        g_ptr_array_unref(ctx->sinks);
        ctx->log_buffer = NULL;
        g_mutex_clear(&ctx->log_stats_lock);
        g_array_unref(ctx->inherited_fds);
        g_hash_table_unref(ctx->child_watches);
        g_hash_table_unref(ctx->unclaimed_exits);
        if (ctx->control_execs)
                g_ptr_array_unref(ctx->control_execs);
        if (ctx->log_followers)
                g_ptr_array_unref(ctx->log_followers);
        if (ctx->attach_clients)
                g_ptr_array_unref(ctx->attach_clients);
        g_free(ctx->saved_oom_score_adj);
        g_free(ctx->monitor_scope);
        g_free(ctx->container_scope);
        g_free(ctx->api_path);
        if (ctx->waiters)
                g_ptr_array_unref(ctx->waiters);
        g_free(ctx);
}
