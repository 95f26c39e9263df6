/* libctrmon's typed helpers: each builds its method's params, calls, and
 * picks the common fields out of the result. Shapes follow ctrmon's
 * control-methods.c; unknown fields are ignored so newer monitors work. */
#include "client-private.h"

#include "ctrmon/control.h"

#include <errno.h>
#include <json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define JSON_FLAGS (JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE)

/* Call with a json-c params object (taken) and parse the result into
 * *ret_result (an object). */
static int methods_call(CtrmonClient *c, const char *method, json_object *params, bool exact,
                        json_object **ret_result, char **ret_text)
{
        const char *text = params ? json_object_to_json_string_ext(params, JSON_FLAGS) : NULL;
        char *result = NULL;
        int r = client_call_full(c, method, text, exact, &result);
        json_object_put(params);
        if (r < 0)
                return r;
        json_object *obj = json_tokener_parse(result);
        if (!obj || !json_object_is_type(obj, json_type_object)) {
                json_object_put(obj);
                free(result);
                return client_set_error(c, -EBADMSG, 0, "The monitor's answer to %s is not an object", method);
        }
        if (ret_result)
                *ret_result = obj;
        else
                json_object_put(obj);
        if (ret_text)
                *ret_text = result;
        else
                free(result);
        return 0;
}

static char *methods_dup_string(json_object *o, const char *key)
{
        json_object *v = NULL;
        if (!json_object_object_get_ex(o, key, &v) || !json_object_is_type(v, json_type_string))
                return NULL;
        return strdup(json_object_get_string(v));
}

static const char *methods_get_string(json_object *o, const char *key)
{
        json_object *v = NULL;
        if (!json_object_object_get_ex(o, key, &v) || !json_object_is_type(v, json_type_string))
                return NULL;
        return json_object_get_string(v);
}

static int64_t methods_get_int(json_object *o, const char *key, int64_t fallback)
{
        json_object *v = NULL;
        if (!json_object_object_get_ex(o, key, &v) || !json_object_is_type(v, json_type_int))
                return fallback;
        return json_object_get_int64(v);
}

static bool methods_get_bool(json_object *o, const char *key)
{
        json_object *v = NULL;
        return json_object_object_get_ex(o, key, &v) && json_object_get_boolean(v);
}

int ctrmon_client_version(CtrmonClient *c, CtrmonVersion *ret)
{
        json_object *o;
        int r = methods_call(c, CTRMON_METHOD_VERSION, NULL, false, &o, NULL);
        if (r < 0)
                return r;
        *ret = (CtrmonVersion) {
                .protocol = (int) methods_get_int(o, "protocol", 0),
                .ctrmon = methods_dup_string(o, "ctrmon"),
                .conmon_compat = methods_dup_string(o, "conmon_compat"),
        };
        json_object_put(o);
        return 0;
}

void ctrmon_version_clear(CtrmonVersion *v)
{
        if (!v)
                return;
        free(v->ctrmon);
        free(v->conmon_compat);
        *v = (CtrmonVersion) { 0 };
}

int ctrmon_client_status(CtrmonClient *c, CtrmonStatus *ret)
{
        json_object *o;
        char *text;
        int r = methods_call(c, CTRMON_METHOD_STATUS, NULL, false, &o, &text);
        if (r < 0)
                return r;
        json_object *v = NULL;
        bool exited = json_object_object_get_ex(o, "exit_code", &v) && json_object_is_type(v, json_type_int);
        *ret = (CtrmonStatus) {
                .id = methods_dup_string(o, "id"),
                .name = methods_dup_string(o, "name"),
                .state = methods_dup_string(o, "state"),
                .exec = methods_get_bool(o, "exec"),
                .monitor_pid = (pid_t) methods_get_int(o, "monitor_pid", 0),
                .container_pid = (pid_t) methods_get_int(o, "container_pid", 0),
                .exited = exited,
                .exit_code = (int) methods_get_int(o, "exit_code", 0),
                .signal = (int) methods_get_int(o, "signal", 0),
                .timed_out = methods_get_bool(o, "timed_out"),
                .oom = methods_get_bool(o, "oom"),
                .terminal = methods_get_bool(o, "terminal"),
                .stdin_open = methods_get_bool(o, "stdin"),
                .bundle = methods_dup_string(o, "bundle"),
                .json = text,
        };
        json_object_put(o);
        return 0;
}

void ctrmon_status_clear(CtrmonStatus *s)
{
        if (!s)
                return;
        free(s->id);
        free(s->name);
        free(s->state);
        free(s->bundle);
        free(s->json);
        *s = (CtrmonStatus) { 0 };
}

int ctrmon_client_wait(CtrmonClient *c, CtrmonExit *ret)
{
        json_object *o;
        int r = methods_call(c, CTRMON_METHOD_WAIT, NULL, false, &o, NULL);
        if (r < 0)
                return r;
        *ret = (CtrmonExit) {
                .exit_code = (int) methods_get_int(o, "exit_code", -1),
                .signal = (int) methods_get_int(o, "signal", 0),
                .timed_out = methods_get_bool(o, "timed_out"),
                .oom = methods_get_bool(o, "oom"),
        };
        json_object_put(o);
        return 0;
}

int ctrmon_client_kill(CtrmonClient *c, int signo, bool all)
{
        json_object *p = json_object_new_object();
        json_object_object_add(p, "signal", json_object_new_int(signo));
        json_object_object_add(p, "all", json_object_new_boolean(all));
        return methods_call(c, CTRMON_METHOD_KILL, p, false, NULL, NULL);
}

int ctrmon_client_resize(CtrmonClient *c, unsigned rows, unsigned cols)
{
        json_object *p = json_object_new_object();
        json_object_object_add(p, "rows", json_object_new_int((int) rows));
        json_object_object_add(p, "cols", json_object_new_int((int) cols));
        return methods_call(c, CTRMON_METHOD_RESIZE, p, false, NULL, NULL);
}

int ctrmon_client_close_stdin(CtrmonClient *c)
{
        return methods_call(c, CTRMON_METHOD_CLOSE_STDIN, NULL, false, NULL, NULL);
}

int ctrmon_client_reopen_log(CtrmonClient *c)
{
        return methods_call(c, CTRMON_METHOD_REOPEN_LOG, NULL, false, NULL, NULL);
}

int ctrmon_client_stats(CtrmonClient *c, char **ret_json)
{
        return methods_call(c, CTRMON_METHOD_STATS, NULL, false, NULL, ret_json);
}

int ctrmon_client_processes(CtrmonClient *c, char **ret_json)
{
        return methods_call(c, CTRMON_METHOD_PROCESSES, NULL, false, NULL, ret_json);
}

/* ------------------------------------------------------------ exec */

/* Output as the monitor sent it: "<key>" as text or "<key>_base64". */
static int methods_dup_bytes(json_object *o, const char *key, char **ret, size_t *ret_len)
{
        json_object *v = NULL;
        char b64_key[64];
        snprintf(b64_key, sizeof b64_key, "%s_base64", key);
        if (json_object_object_get_ex(o, b64_key, &v) && json_object_is_type(v, json_type_string))
                return client_proto_base64_decode(json_object_get_string(v), (size_t) json_object_get_string_len(v),
                                                  ret, ret_len);
        const char *s = "";
        size_t n = 0;
        if (json_object_object_get_ex(o, key, &v) && json_object_is_type(v, json_type_string)) {
                s = json_object_get_string(v);
                n = (size_t) json_object_get_string_len(v);
        }
        char *b = malloc(n + 1);
        if (!b)
                return -ENOMEM;
        memcpy(b, s, n);
        b[n] = '\0';
        *ret = b;
        *ret_len = n;
        return 0;
}

int ctrmon_client_exec(CtrmonClient *c, const CtrmonExecOptions *opts, CtrmonExecResult *ret)
{
        if (!opts || !opts->argv || !opts->argv[0])
                return client_set_error(c, -EINVAL, 0, "exec needs a command");
        json_object *p = json_object_new_object();
        json_object *argv = json_object_new_array();
        for (size_t i = 0; opts->argv[i]; i++)
                json_object_array_add(argv, json_object_new_string(opts->argv[i]));
        json_object_object_add(p, "command", argv);
        if (opts->stdin_data && client_proto_is_plain_text(opts->stdin_data, opts->stdin_len)) {
                json_object_object_add(p, "stdin",
                                       json_object_new_string_len(opts->stdin_data, (int) opts->stdin_len));
        } else if (opts->stdin_data) {
                char *b64 = client_proto_base64_encode(opts->stdin_data, opts->stdin_len);
                if (!b64) {
                        json_object_put(p);
                        return client_set_error(c, -ENOMEM, 0, "Out of memory");
                }
                json_object_object_add(p, "stdin_base64", json_object_new_string(b64));
                free(b64);
        }
        if (opts->timeout > 0)
                json_object_object_add(p, "timeout", json_object_new_int(opts->timeout));
        /* Only when asked: monitors that collect output refuse a tty. */
        if (opts->tty)
                json_object_object_add(p, "tty", json_object_new_boolean(true));

        json_object *o;
        char *text;
        int r = methods_call(c, CTRMON_METHOD_EXEC, p, false, &o, &text);
        if (r < 0)
                return r;
        CtrmonExecResult x = {
                .exit_code = (int) methods_get_int(o, "exit_code", -1),
                .signal = (int) methods_get_int(o, "signal", 0),
                .timed_out = methods_get_bool(o, "timed_out"),
                .out_truncated = methods_get_bool(o, "stdout_truncated"),
                .err_truncated = methods_get_bool(o, "stderr_truncated"),
                .json = text,
        };
        r = methods_dup_bytes(o, "stdout", &x.out, &x.out_len);
        if (r >= 0)
                r = methods_dup_bytes(o, "stderr", &x.err, &x.err_len);
        json_object_put(o);
        if (r < 0) {
                ctrmon_exec_result_clear(&x);
                return client_set_error(c, r, 0, "The monitor's exec output cannot be decoded");
        }
        *ret = x;
        return 0;
}

void ctrmon_exec_result_clear(CtrmonExecResult *x)
{
        if (!x)
                return;
        free(x->out);
        free(x->err);
        free(x->json);
        *x = (CtrmonExecResult) { 0 };
}

/* ------------------------------------------------------------ logs */

typedef struct {
        CtrmonLogFn fn;
        void *userdata;
        int stopped;           /* fn's non-zero answer               */
        bool ended;            /* "log-end" seen                     */
} LogsState;

static void methods_deliver_log(LogsState *st, json_object *entry)
{
        if (st->stopped || !json_object_is_type(entry, json_type_object))
                return;
        const char *text = NULL;
        size_t text_len = 0;
        json_object *v = NULL;
        if (json_object_object_get_ex(entry, "text", &v) && json_object_is_type(v, json_type_string)) {
                text = json_object_get_string(v);
                text_len = (size_t) json_object_get_string_len(v);
        }
        CtrmonLogLine line = {
                .time = methods_get_string(entry, "time"),
                .stream = methods_get_string(entry, "stream"),
                .text = text ? text : "",
                .text_len = text_len,
                .partial = methods_get_bool(entry, "partial"),
                .json = json_object_to_json_string_ext(entry, JSON_FLAGS),
        };
        st->stopped = st->fn(&line, st->userdata);
}

/* The array of entries in a logs result; NULL for a "log" notification,
 * which is one entry. */
static json_object *methods_log_entries(json_object *o)
{
        json_object *v = NULL;
        if (json_object_object_get_ex(o, "lines", &v) && json_object_is_type(v, json_type_array))
                return v;
        return NULL;
}

static void methods_deliver_log_object(LogsState *st, json_object *o)
{
        json_object *entries = methods_log_entries(o);
        if (!entries) {
                methods_deliver_log(st, o);
                return;
        }
        for (size_t i = 0; i < json_object_array_length(entries); i++)
                methods_deliver_log(st, json_object_array_get_idx(entries, i));
}

static void methods_logs_notify(CtrmonClient *c, const ClientMessage *m, void *userdata)
{
        LogsState *st = userdata;
        if (strcmp(m->method, CTRMON_NOTIFICATION_LOG_END) == 0) {
                st->ended = true;
                return;
        }
        if (strcmp(m->method, CTRMON_NOTIFICATION_LOG) != 0)
                return;
        json_object *p = json_tokener_parse(m->params);
        if (p)
                methods_deliver_log_object(st, p);
        json_object_put(p);
}

int ctrmon_client_logs(CtrmonClient *c, int tail, bool follow, CtrmonLogFn fn, void *userdata)
{
        if (!fn)
                return client_set_error(c, -EINVAL, 0, "logs needs a callback");
        json_object *p = json_object_new_object();
        if (tail >= 0)
                json_object_object_add(p, "tail", json_object_new_int(tail));
        json_object_object_add(p, "follow", json_object_new_boolean(follow));
        /* A log too big for one answer comes as "log" notifications after
         * it ("more": true) and ends with "log-end". */
        json_object_object_add(p, "chunked", json_object_new_boolean(true));

        LogsState st = { .fn = fn, .userdata = userdata };
        c->notify_fn = methods_logs_notify;
        c->notify_userdata = &st;
        json_object *o = NULL;
        int r = methods_call(c, CTRMON_METHOD_LOGS, p, false, &o, NULL);
        if (r >= 0) {
                bool more = methods_get_bool(o, "more");
                methods_deliver_log_object(&st, o);
                json_object_put(o);
                /* Following, or the rest of a big log: lines come as
                 * notifications until "log-end" (the end of the log, or of
                 * the container's output) or the hang-up. */
                while ((follow || more) && !st.stopped && !st.ended) {
                        ClientMessage m;
                        r = client_read_message(c, false, &m);
                        if (r == -ECONNRESET) {
                                r = 0;
                                break;
                        }
                        if (r < 0)
                                break;
                        if (m.kind == CLIENT_MESSAGE_NOTIFICATION)
                                methods_logs_notify(c, &m, &st);
                        client_message_clear(&m);
                }
        }
        c->notify_fn = NULL;
        c->notify_userdata = NULL;
        if (r < 0)
                return r;
        return st.stopped;
}

/* ------------------------------------------------------------ subscribe */

typedef struct {
        CtrmonEventFn fn;
        void *userdata;
        int stopped;
} EventsState;

static void methods_events_notify(CtrmonClient *c, const ClientMessage *m, void *userdata)
{
        EventsState *st = userdata;
        if (st->stopped || strcmp(m->method, CTRMON_NOTIFICATION_EVENT) != 0)
                return;
        json_object *p = json_tokener_parse(m->params);
        if (!p)
                return;
        CtrmonEvent ev = {
                .type = methods_get_string(p, "type"),
                .time = methods_get_string(p, "time"),
                .json = m->params,
        };
        if (ev.type)
                st->stopped = st->fn(&ev, st->userdata);
        json_object_put(p);
}

int ctrmon_client_subscribe(CtrmonClient *c, CtrmonEventFn fn, void *userdata, char **ret_state)
{
        if (!fn)
                return client_set_error(c, -EINVAL, 0, "subscribe needs a callback");
        json_object *o;
        int r = methods_call(c, CTRMON_METHOD_SUBSCRIBE, NULL, false, &o, NULL);
        if (r < 0)
                return r;
        if (ret_state)
                *ret_state = methods_dup_string(o, "state");
        json_object_put(o);

        EventsState st = { .fn = fn, .userdata = userdata };
        while (!st.stopped) {
                ClientMessage m;
                r = client_read_message(c, false, &m);
                if (r == -ECONNRESET)
                        return 0; /* the monitor exited: the stream ends */
                if (r < 0)
                        return r;
                if (m.kind == CLIENT_MESSAGE_NOTIFICATION)
                        methods_events_notify(c, &m, &st);
                client_message_clear(&m);
        }
        return st.stopped;
}

/* ------------------------------------------------------------ attach */

int ctrmon_client_attach(CtrmonClient *c, const CtrmonAttachOptions *opts, int *ret_fd)
{
        if (c->len > 0)
                /* Bytes already buffered would be lost to the caller. */
                return client_set_error(c, -EBUSY, 0, "attach must be the connection's first streaming call");
        json_object *p = json_object_new_object();
        if (opts && opts->detach_keys)
                json_object_object_add(p, "detach_keys", json_object_new_string(opts->detach_keys));
        if (opts && opts->lossy)
                json_object_object_add(p, "lossy", json_object_new_boolean(true));
        json_object *o;
        int r = methods_call(c, CTRMON_METHOD_ATTACH, p, true, &o, NULL);
        if (r < 0)
                return r;
        const char *framing = methods_get_string(o, "framing");
        if (!framing || strcmp(framing, CTRMON_ATTACH_FRAMING) != 0) {
                r = client_set_error(c, -EPROTO, 0, "The monitor offers attach framing %s, not %s",
                                     framing ? framing : "(none)", CTRMON_ATTACH_FRAMING);
                json_object_put(o);
                return r;
        }
        json_object_put(o);
        *ret_fd = c->fd;
        c->fd = -1;
        return 0;
}
