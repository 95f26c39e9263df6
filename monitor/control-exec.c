/* "exec": run a command in the container and answer with its exit status
 * and captured output (CRI ExecSync). `runtime exec --detach` starts it;
 * the process is then the subreaper's (ours) and its exit arrives through
 * the lifecycle's reaper via the context's child watches. Output goes into
 * bounded buffers; nothing here blocks the main loop or outlives the call
 * (temp spec, pidfile, pipes are removed when it is answered). */
#include "control-exec.h"

#include "control-methods.h"
#include "control-processes.h"
#include "diag.h"
#include "out-queue.h"
#include "reaper.h"
#include "runtime-shim.h"
#include "ctrmon/error.h"
#include "ctrmon/fd-util.h"

#include <errno.h>
#include <fcntl.h>
#include <glib-unix.h>
#include <glib/gstdio.h>
#include <signal.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#define CONTROL_EXEC_READ_CHUNK (64 * 1024)
/* Output up to this long as JSON text is sent as text even when base64
 * would be shorter (a few newlines, a tab). */
#define CONTROL_EXEC_TEXT_SLACK (64 * 1024)

/* Two full streams, base64, and the rest of the answer fit the bound an
 * answer has (control-api.c): a client gets its output or an error. */
G_STATIC_ASSERT(2 * ((CTRMON_EXEC_OUTPUT_LIMIT_MAX + 2) / 3 * 4) + 64 * 1024 <= CTRMON_CONTROL_ANSWER_MAX);
G_STATIC_ASSERT(CTRMON_EXEC_OUTPUT_LIMIT_DEFAULT <= CTRMON_EXEC_OUTPUT_LIMIT_MAX);
/* The parameter error below names it. */
G_STATIC_ASSERT(CTRMON_EXEC_OUTPUT_LIMIT_MAX == 16777216);
/* After a timeout's SIGKILL: how long the process may take to be reaped. */
#define CONTROL_EXEC_KILL_GRACE_MS 5000
#define CONTROL_EXEC_DEFAULT_PATH "PATH=/usr/sbin:/usr/bin:/sbin:/bin"

/* ------------------------------------------------------------ pure parts */

static const char *control_exec_env_name_end(const char *entry)
{
        const char *eq = strchr(entry, '=');
        return eq ? eq : entry + strlen(entry);
}

json_object *control_exec_build_spec(json_object *config, const char *const *args, const char *const *env,
                                     const char *cwd)
{
        json_object *process = NULL, *v;
        if (config && json_object_object_get_ex(config, "process", &v) && json_object_is_type(v, json_type_object))
                process = v;

        json_object *spec = json_object_new_object();
        json_object_object_add(spec, "terminal", json_object_new_boolean(false));

        json_object *user = NULL;
        if (process && json_object_object_get_ex(process, "user", &v) && json_object_is_type(v, json_type_object))
                user = json_object_get(v);
        if (!user) {
                user = json_object_new_object();
                json_object_object_add(user, "uid", json_object_new_int(0));
                json_object_object_add(user, "gid", json_object_new_int(0));
        }
        json_object_object_add(spec, "user", user);

        json_object *a = json_object_new_array();
        for (size_t i = 0; args[i]; i++)
                json_object_array_add(a, json_object_new_string(args[i]));
        json_object_object_add(spec, "args", a);

        /* Defaults first, each replaced in place by a same-named entry. */
        g_autoptr(GPtrArray) merged = g_ptr_array_new();
        json_object *denv = NULL;
        if (process && json_object_object_get_ex(process, "env", &v) && json_object_is_type(v, json_type_array))
                denv = v;
        if (denv) {
                for (size_t i = 0; i < json_object_array_length(denv); i++) {
                        json_object *e = json_object_array_get_idx(denv, i);
                        if (json_object_is_type(e, json_type_string))
                                g_ptr_array_add(merged, (gpointer) json_object_get_string(e));
                }
        } else {
                g_ptr_array_add(merged, (gpointer) CONTROL_EXEC_DEFAULT_PATH);
        }
        for (size_t i = 0; env && env[i]; i++) {
                size_t nlen = (size_t) (control_exec_env_name_end(env[i]) - env[i]);
                bool replaced = false;
                for (guint j = 0; j < merged->len && !replaced; j++) {
                        const char *old = g_ptr_array_index(merged, j);
                        if ((size_t) (control_exec_env_name_end(old) - old) == nlen && strncmp(old, env[i], nlen) == 0) {
                                g_ptr_array_index(merged, j) = (gpointer) env[i];
                                replaced = true;
                        }
                }
                if (!replaced)
                        g_ptr_array_add(merged, (gpointer) env[i]);
        }
        json_object *e = json_object_new_array();
        for (guint j = 0; j < merged->len; j++)
                json_object_array_add(e, json_object_new_string(g_ptr_array_index(merged, j)));
        json_object_object_add(spec, "env", e);

        const char *dcwd = "/";
        if (process && json_object_object_get_ex(process, "cwd", &v) && json_object_is_type(v, json_type_string))
                dcwd = json_object_get_string(v);
        json_object_object_add(spec, "cwd", json_object_new_string(cwd ? cwd : dcwd));
        return spec;
}

/* JSON text grows with escapes: \n, \t, \" and the like take 2 bytes,
 * other control characters 6 (\u0001). Base64 is 4/3 whatever the bytes. */
static bool control_exec_text_is_compact(const guint8 *buf, size_t len)
{
        size_t escaped = len;
        for (size_t i = 0; i < len; i++) {
                guint8 b = buf[i];
                if (b == '"' || b == '\\' || b == '\n' || b == '\t' || b == '\r' || b == '\b' || b == '\f')
                        escaped += 1;
                else if (b < 0x20)
                        escaped += 5;
        }
        return escaped <= MAX((len + 2) / 3 * 4, (size_t) CONTROL_EXEC_TEXT_SLACK);
}

void control_exec_add_output(json_object *obj, const char *name, const guint8 *buf, size_t len)
{
        /* g_utf8_validate_len() rejects NUL bytes: JSON clients would cut
         * the text there. Text that escaping would blow up goes as base64,
         * so the answer's size is bounded by the output limit. */
        if (g_utf8_validate_len((const char *) buf, len, NULL) && control_exec_text_is_compact(buf, len)) {
                json_object_object_add(obj, name, json_object_new_string_len((const char *) buf, (int) len));
                return;
        }
        g_autofree char *b64 = g_base64_encode(buf, len);
        g_autofree char *key = g_strdup_printf("%s_base64", name);
        json_object_object_add(obj, key, json_object_new_string(b64));
}

/* ------------------------------------------------------------ one exec */

typedef struct {
        int fd;
        guint source_id;
        GByteArray *data;
        bool truncated;
} ControlExecOutput;

typedef struct {
        CtrmonContext *ctx;
        ControlCall *call;
        char *tmpdir;
        char *spec_path;
        char *pid_path;

        pid_t runtime_pid;              /* > 0 until reaped */
        int runtime_wstatus;
        bool claim_pending;             /* counted in ctx->child_claims_pending */
        pid_t pid;                      /* the exec'd process, once known */
        bool exited;
        int wstatus;

        ControlExecOutput out[2];       /* stdout, stderr */
        size_t limit;
        int stdin_fd;
        OutQueue *stdin_out;
        GBytes *stdin_data;             /* until handed to stdin_out */

        guint timeout_id;
        guint grace_id;
        bool timed_out;
        bool abandoned;                 /* the client went away: killed */
} ControlExec;

static void control_exec_check_done(ControlExec *x);

static void control_exec_close_output(ControlExecOutput *o)
{
        if (o->source_id) {
                g_source_remove(o->source_id);
                o->source_id = 0;
        }
        ctrmon_close_fd(&o->fd);
}

static void control_exec_close_stdin(ControlExec *x)
{
        g_clear_pointer(&x->stdin_out, out_queue_free);
        ctrmon_close_fd(&x->stdin_fd);
}

/* Before answering: a client that hears the answer finds nothing left. */
static void control_exec_remove_files(ControlExec *x)
{
        if (x->spec_path)
                g_unlink(x->spec_path);
        if (x->pid_path)
                g_unlink(x->pid_path);
        if (x->tmpdir)
                g_rmdir(x->tmpdir);
        g_clear_pointer(&x->spec_path, g_free);
        g_clear_pointer(&x->pid_path, g_free);
        g_clear_pointer(&x->tmpdir, g_free);
}

static void control_exec_free(ControlExec *x)
{
        if (!x)
                return;
        for (int i = 0; i < 2; i++) {
                control_exec_close_output(&x->out[i]);
                if (x->out[i].data)
                        g_byte_array_unref(x->out[i].data);
        }
        control_exec_close_stdin(x);
        if (x->stdin_data)
                g_bytes_unref(x->stdin_data);
        control_call_set_gone_fn(x->call, NULL, NULL);
        if (x->timeout_id)
                g_source_remove(x->timeout_id);
        if (x->grace_id)
                g_source_remove(x->grace_id);
        /* Whatever is still running is no longer waited for: the reaper
         * treats it as an orphan from now on. */
        if (x->runtime_pid > 0)
                context_unwatch_child(x->ctx, x->runtime_pid);
        if (x->pid > 0 && !x->exited)
                context_unwatch_child(x->ctx, x->pid);
        if (x->claim_pending)
                context_claim_pending(x->ctx, -1);
        control_exec_remove_files(x);
        control_call_unref(x->call);
        g_free(x);
}

static void control_exec_finish(ControlExec *x)
{
        g_ptr_array_remove(x->ctx->control_execs, x);
        control_exec_free(x);
}

/* Read once; false at EOF or error (the output is then closed). */
static bool control_exec_read(ControlExec *x, ControlExecOutput *o)
{
        guint8 buf[CONTROL_EXEC_READ_CHUNK];
        ssize_t n = read(o->fd, buf, sizeof buf);
        if (n < 0 && (errno == EAGAIN || errno == EINTR))
                return false;
        if (n <= 0) {
                control_exec_close_output(o);
                return false;
        }
        /* Past the limit the bytes are read and dropped, so the process
         * never blocks on a full pipe. */
        size_t room = x->limit > o->data->len ? x->limit - o->data->len : 0;
        size_t keep = MIN((size_t) n, room);
        if (keep)
                g_byte_array_append(o->data, buf, (guint) keep);
        if (keep < (size_t) n)
                o->truncated = true;
        return true;
}

static void control_exec_drain(ControlExec *x)
{
        for (int i = 0; i < 2; i++)
                while (x->out[i].fd >= 0 && control_exec_read(x, &x->out[i]))
                        ;
}

static gboolean control_exec_output_cb(int fd, GIOCondition condition, gpointer user_data)
{
        ControlExec *x = user_data;
        ControlExecOutput *o = x->out[0].fd == fd ? &x->out[0] : &x->out[1];
        control_exec_read(x, o);
        if (o->fd < 0) {
                o->source_id = 0; /* removed by returning */
                control_exec_check_done(x);
                return G_SOURCE_REMOVE;
        }
        return G_SOURCE_CONTINUE;
}

/* All of stdin written, or refused (EPIPE: the command does not read it
 * all): EOF tells the command there is no more. */
static void control_exec_stdin_sent_cb(OutQueue *q, OutQueueEvent event, int error, void *user_data)
{
        control_exec_close_stdin(user_data);
}

static void control_exec_write_stdin(ControlExec *x)
{
        gsize size = 0;
        const void *data = x->stdin_data ? g_bytes_get_data(x->stdin_data, &size) : NULL;
        struct iovec iov = { (void *) data, size };
        x->stdin_out = out_queue_new(x->stdin_fd, OUT_QUEUE_PIPE, control_exec_stdin_sent_cb, x);
        out_queue_push_iov(x->stdin_out, &iov, 1);
        g_clear_pointer(&x->stdin_data, g_bytes_unref);
        out_queue_flush(x->stdin_out); /* calls back at once if nothing is pending */
}

static int control_exec_exit_code(const ControlExec *x, json_object **ret_signal)
{
        *ret_signal = NULL;
        if (x->timed_out)
                return -1;
        if (WIFSIGNALED(x->wstatus))
                *ret_signal = json_object_new_int(WTERMSIG(x->wstatus));
        return reaper_exit_code(x->wstatus);
}

static void control_exec_reply(ControlExec *x)
{
        control_exec_remove_files(x);
        json_object *sig;
        json_object *r = json_object_new_object();
        json_object_object_add(r, "exit_code", json_object_new_int(control_exec_exit_code(x, &sig)));
        json_object_object_add(r, "signal", sig);
        json_object_object_add(r, "pid", x->pid > 0 ? json_object_new_int(x->pid) : NULL);
        control_exec_add_output(r, "stdout", x->out[0].data->data, x->out[0].data->len);
        control_exec_add_output(r, "stderr", x->out[1].data->data, x->out[1].data->len);
        json_object_object_add(r, "stdout_truncated", json_object_new_boolean(x->out[0].truncated));
        json_object_object_add(r, "stderr_truncated", json_object_new_boolean(x->out[1].truncated));
        json_object_object_add(r, "timed_out", json_object_new_boolean(x->timed_out));
        control_call_reply(x->call, r);
}

static void control_exec_check_done(ControlExec *x)
{
        if (!x->exited || x->runtime_pid > 0)
                return;
        /* After a timeout the output is not waited for: a killed process's
         * children may hold the pipes open. */
        if (x->timed_out || x->abandoned)
                control_exec_drain(x);
        else if (x->out[0].fd >= 0 || x->out[1].fd >= 0)
                return;
        control_exec_reply(x);
        control_exec_finish(x);
}

static void control_exec_kill(ControlExec *x)
{
        if (x->pid <= 0 || x->exited)
                return;
        /* The process, what it started, and its group when it has one of its
         * own (runc leaves it in ours: never signal that). */
        g_autoptr(GArray) tree = control_proc_descendants(x->pid);
        kill(x->pid, SIGKILL);
        for (guint i = 0; i < tree->len; i++)
                kill(g_array_index(tree, pid_t, i), SIGKILL);
        pid_t pgid = getpgid(x->pid);
        if (pgid > 1 && pgid != getpgrp())
                kill(-pgid, SIGKILL);
}

static gboolean control_exec_grace_cb(gpointer user_data)
{
        ControlExec *x = user_data;
        x->grace_id = 0;
        log_warning("Exec'd process %d was not reaped within %d ms of SIGKILL", (int) x->pid,
                    CONTROL_EXEC_KILL_GRACE_MS);
        control_exec_drain(x);
        control_exec_reply(x);
        control_exec_finish(x);
        return G_SOURCE_REMOVE;
}

static gboolean control_exec_timeout_cb(gpointer user_data)
{
        ControlExec *x = user_data;
        x->timeout_id = 0;
        x->timed_out = true;
        if (x->pid > 0)
                control_exec_kill(x);
        else if (x->runtime_pid > 0)
                kill(x->runtime_pid, SIGKILL); /* stuck before it told the pid */
        x->grace_id = g_timeout_add(CONTROL_EXEC_KILL_GRACE_MS, control_exec_grace_cb, x);
        control_exec_check_done(x);
        return G_SOURCE_REMOVE;
}

static void control_exec_process_exited_cb(pid_t pid, int wstatus, void *user_data)
{
        ControlExec *x = user_data;
        x->exited = true;
        x->wstatus = wstatus;
        control_exec_check_done(x);
}

static void control_exec_runtime_failed(ControlExec *x, const char *why)
{
        control_exec_drain(x);
        if (x->timed_out) {
                x->exited = true;
                control_exec_reply(x);
                control_exec_finish(x);
                return;
        }
        /* The runtime's own words explain it best (it wrote them to the
         * stderr we gave it). */
        g_autofree char *text = g_strndup((const char *) x->out[1].data->data, x->out[1].data->len);
        g_strstrip(text);
        control_exec_remove_files(x);
        control_call_error(x->call, CTRMON_CONTROL_ERROR_FAILED, "%s", *text ? text : why);
        control_exec_finish(x);
}

static void control_exec_runtime_exited_cb(pid_t pid, int wstatus, void *user_data)
{
        ControlExec *x = user_data;
        x->runtime_pid = 0;
        x->runtime_wstatus = wstatus;

        pid_t child = 0;
        g_autoptr(GError) error = NULL;
        bool ok = WIFEXITED(wstatus) && WEXITSTATUS(wstatus) == 0;
        if (ok && runtime_read_pidfile(x->pid_path, &child, &error) < 0)
                ok = false;
        if (!ok) {
                g_autofree char *why = g_strdup_printf("%s exec failed with status %d%s%s",
                                                       x->ctx->opts->runtime_path, reaper_exit_code(wstatus),
                                                       error ? ": " : "", error ? error->message : "");
                control_exec_runtime_failed(x, why);
                return;
        }
        x->pid = child;
        int early;
        if (context_take_unclaimed_exit(x->ctx, child, &early)) {
                x->exited = true;
                x->wstatus = early;
        } else {
                context_watch_child(x->ctx, child, control_exec_process_exited_cb, x);
        }
        x->claim_pending = false;
        context_claim_pending(x->ctx, -1);
        if (x->timed_out || x->abandoned)
                control_exec_kill(x);
        control_exec_check_done(x);
}

/* The client is gone (not half-closed: gone): nobody will hear the answer,
 * so the command is stopped and its slot (CTRMON_CONTROL_MAX_EXECS) freed
 * once it is reaped. A runtime still starting it is let finish, then the
 * process is killed. */
static void control_exec_gone_cb(ControlCall *call, void *user_data)
{
        ControlExec *x = user_data;
        log_debug("Exec client went away: stopping process %d", (int) x->pid);
        x->abandoned = true;
        control_exec_kill(x);
        /* Exited already, but something it started may hold its output
         * open: nobody waits for that now (may free x). */
        control_exec_check_done(x);
}

/* ------------------------------------------------------------ parameters */

typedef struct {
        GPtrArray *args;        /* const char*, NULL-terminated, borrowed from params */
        GPtrArray *env;
        const char *cwd;
        GBytes *stdin_data;
        gint64 timeout;
        gint64 limit;
} ControlExecParams;

static void control_exec_params_clear(ControlExecParams *p)
{
        if (p->args)
                g_ptr_array_unref(p->args);
        if (p->env)
                g_ptr_array_unref(p->env);
        if (p->stdin_data)
                g_bytes_unref(p->stdin_data);
}

static GPtrArray *control_exec_strings(json_object *v)
{
        if (!json_object_is_type(v, json_type_array))
                return NULL;
        GPtrArray *a = g_ptr_array_new();
        for (size_t i = 0; i < json_object_array_length(v); i++) {
                json_object *e = json_object_array_get_idx(v, i);
                if (!json_object_is_type(e, json_type_string)) {
                        g_ptr_array_unref(a);
                        return NULL;
                }
                g_ptr_array_add(a, (gpointer) json_object_get_string(e));
        }
        g_ptr_array_add(a, NULL);
        return a;
}

static bool control_exec_get_int(json_object *params, const char *key, gint64 min, gint64 max, gint64 *ret)
{
        json_object *v = NULL;
        if (!json_object_object_get_ex(params, key, &v) || !v)
                return true;
        if (!json_object_is_type(v, json_type_int))
                return false;
        gint64 x = json_object_get_int64(v);
        if (x < min || x > max)
                return false;
        *ret = x;
        return true;
}

static const char *control_exec_parse_params(json_object *params, ControlExecParams *p)
{
        json_object *v = NULL;
        if (!json_object_object_get_ex(params, "command", &v) || !(p->args = control_exec_strings(v)) ||
            p->args->len < 2)
                return "Parameter \"command\" must be a non-empty array of strings";
        if (json_object_object_get_ex(params, "env", &v) && v && !(p->env = control_exec_strings(v)))
                return "Parameter \"env\" must be an array of NAME=VALUE strings";
        if (json_object_object_get_ex(params, "cwd", &v) && v) {
                if (!json_object_is_type(v, json_type_string) || json_object_get_string(v)[0] != '/')
                        return "Parameter \"cwd\" must be an absolute path";
                p->cwd = json_object_get_string(v);
        }
        json_object *plain = NULL, *b64 = NULL;
        json_object_object_get_ex(params, "stdin", &plain);
        json_object_object_get_ex(params, "stdin_base64", &b64);
        if (plain && b64)
                return "Give \"stdin\" or \"stdin_base64\", not both";
        if (plain) {
                if (!json_object_is_type(plain, json_type_string))
                        return "Parameter \"stdin\" must be a string";
                p->stdin_data = g_bytes_new(json_object_get_string(plain), (gsize) json_object_get_string_len(plain));
        } else if (b64) {
                if (!json_object_is_type(b64, json_type_string))
                        return "Parameter \"stdin_base64\" must be a base64 string";
                gsize len = 0;
                guchar *data = g_base64_decode(json_object_get_string(b64), &len);
                p->stdin_data = g_bytes_new_take(data, len);
        }
        p->timeout = 0;
        if (!control_exec_get_int(params, "timeout", 0, G_MAXINT / 1000, &p->timeout))
                return "Parameter \"timeout\" must be a number of seconds >= 0";
        p->limit = CTRMON_EXEC_OUTPUT_LIMIT_DEFAULT;
        if (!control_exec_get_int(params, "output_limit", 0, CTRMON_EXEC_OUTPUT_LIMIT_MAX, &p->limit))
                return "Parameter \"output_limit\" must be a number of bytes between 0 and 16777216 "
                       "(16 MiB, the limit)";
        if (json_object_object_get_ex(params, "tty", &v) && v && json_object_get_boolean(v))
                return "\"tty\": true is not supported by exec (use attach)";
        return NULL;
}

/* ------------------------------------------------------------ the method */

static int control_exec_pipe(int *ret_ours, int *ret_theirs, bool ours_reads, GError **error)
{
        int fds[2];
        if (pipe2(fds, O_CLOEXEC) < 0)
                return ctrmon_set_error_errno(error, errno, "Failed to create a pipe");
        *ret_ours = ours_reads ? fds[0] : fds[1];
        *ret_theirs = ours_reads ? fds[1] : fds[0];
        int flags = fcntl(*ret_ours, F_GETFL);
        fcntl(*ret_ours, F_SETFL, flags | O_NONBLOCK);
        return 0;
}

static int control_exec_write_spec(ControlExec *x, const ControlExecParams *p, GError **error)
{
        const CtrmonOptions *o = x->ctx->opts;
        x->tmpdir = g_dir_make_tmp("ctrmon-exec-XXXXXX", error);
        if (!x->tmpdir)
                return -EIO;
        x->spec_path = g_build_filename(x->tmpdir, "process.json", NULL);
        x->pid_path = g_build_filename(x->tmpdir, "pid", NULL);

        json_object *config = NULL;
        if (o->bundle) {
                g_autofree char *path = g_build_filename(o->bundle, "config.json", NULL);
                if (g_file_test(path, G_FILE_TEST_IS_REGULAR))
                        config = json_object_from_file(path);
        }
        json_object *spec = control_exec_build_spec(config, (const char *const *) p->args->pdata,
                                                    p->env ? (const char *const *) p->env->pdata : NULL, p->cwd);
        json_object_put(config);
        const char *text = json_object_to_json_string_ext(spec, JSON_C_TO_STRING_PLAIN);
        bool ok = g_file_set_contents(x->spec_path, text, -1, error);
        json_object_put(spec);
        return ok ? 0 : -EIO;
}

static int control_exec_start(ControlExec *x, GError **error)
{
        const CtrmonOptions *o = x->ctx->opts;
        _cleanup_close_ int child_in = -1, child_out = -1, child_err = -1;
        int r;
        if ((r = control_exec_pipe(&x->stdin_fd, &child_in, false, error)) < 0 ||
            (r = control_exec_pipe(&x->out[0].fd, &child_out, true, error)) < 0 ||
            (r = control_exec_pipe(&x->out[1].fd, &child_err, true, error)) < 0)
                return r;

        RuntimeCall rc = {
                .action = RUNTIME_ACTION_EXEC,
                .runtime_path = o->runtime_path,
                .cid = o->cid,
                .pid_file = x->pid_path,
                .exec_process_spec = x->spec_path,
                .runtime_args = (const char *const *) o->runtime_args,
        };
        g_auto(GStrv) argv = runtime_argv_build(&rc);
        RuntimeSpawn spawn = {
                .argv = argv,
                .stdin_fd = child_in,
                .stdout_fd = child_out,
                .stderr_fd = child_err,
                .monitor_pid = getpid(),
                .start_pipe_fd = -1,
                .oom_score_adj = x->ctx->saved_oom_score_adj,
                .sigmask = &x->ctx->original_sigmask,
        };
        pid_t pid;
        r = runtime_spawn(&spawn, &pid, error);
        if (r < 0)
                return r;
        /* SIGCHLD is read in the main loop, so nothing is reaped before the
         * watch exists. */
        x->runtime_pid = pid;
        context_watch_child(x->ctx, pid, control_exec_runtime_exited_cb, x);
        x->claim_pending = true;
        context_claim_pending(x->ctx, 1);
        return 0;
}

void control_method_exec(ControlCall *call, json_object *params, void *user_data)
{
        CtrmonContext *ctx = user_data;
        ControlExecParams p = { 0 };
        const char *invalid = control_exec_parse_params(params, &p);
        if (invalid) {
                control_call_error(call, CTRMON_CONTROL_ERROR_INVALID_PARAMS, "%s", invalid);
                control_exec_params_clear(&p);
                return;
        }
        if (ctx->container_pid <= 0 || ctx->container_exited) {
                control_call_error(call, CTRMON_CONTROL_ERROR_NOT_RUNNING, "Container %s is %s", ctx->opts->cid,
                                   control_container_state(ctx));
                control_exec_params_clear(&p);
                return;
        }
        guint running = ctx->control_execs ? ctx->control_execs->len : 0;
        if (running >= CTRMON_CONTROL_MAX_EXECS) {
                control_call_error(call, CTRMON_CONTROL_ERROR_LIMIT, "Too many execs: %u running, the limit is %d",
                                   running, CTRMON_CONTROL_MAX_EXECS);
                control_exec_params_clear(&p);
                return;
        }

        ControlExec *x = g_new0(ControlExec, 1);
        x->ctx = ctx;
        x->call = control_call_ref(call);
        x->stdin_fd = -1;
        x->limit = (size_t) p.limit;
        for (int i = 0; i < 2; i++) {
                x->out[i].fd = -1;
                x->out[i].data = g_byte_array_new();
        }
        x->stdin_data = g_steal_pointer(&p.stdin_data);
        if (!ctx->control_execs)
                ctx->control_execs = g_ptr_array_new();
        g_ptr_array_add(ctx->control_execs, x);

        g_autoptr(GError) error = NULL;
        if (control_exec_write_spec(x, &p, &error) < 0 || control_exec_start(x, &error) < 0) {
                control_exec_remove_files(x);
                control_call_error(call, CTRMON_CONTROL_ERROR_FAILED, "%s", error->message);
                control_exec_params_clear(&p);
                control_exec_finish(x);
                return;
        }
        control_exec_params_clear(&p);
        for (int i = 0; i < 2; i++)
                x->out[i].source_id = g_unix_fd_add(x->out[i].fd, G_IO_IN | G_IO_HUP | G_IO_ERR,
                                                    control_exec_output_cb, x);
        control_exec_write_stdin(x);
        if (p.timeout > 0)
                x->timeout_id = g_timeout_add_seconds((guint) p.timeout, control_exec_timeout_cb, x);
        control_call_set_gone_fn(x->call, control_exec_gone_cb, x);
}

/* ------------------------------------------------------------ hooks */

void control_exec_container_exited(CtrmonContext *ctx)
{
        /* The container's end killed every exec'd process; the loop that
         * would have told us in order has stopped. Answer with what is
         * known. */
        while (ctx->control_execs && ctx->control_execs->len > 0) {
                ControlExec *x = g_ptr_array_index(ctx->control_execs, 0);
                control_exec_drain(x);
                if (x->exited) {
                        control_exec_reply(x);
                } else {
                        control_exec_remove_files(x);
                        control_call_error(x->call, CTRMON_CONTROL_ERROR_NOT_RUNNING,
                                           "Container %s exited while the command ran", ctx->opts->cid);
                }
                control_exec_finish(x);
        }
}

void control_exec_teardown(CtrmonContext *ctx)
{
        while (ctx->control_execs && ctx->control_execs->len > 0) {
                ControlExec *x = g_ptr_array_index(ctx->control_execs, 0);
                control_exec_kill(x);
                control_exec_finish(x);
        }
}
