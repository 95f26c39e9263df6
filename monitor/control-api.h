/* The control API's transport (include/ctrmon/control.h): the listening
 * socket, peer checks, line framing, JSON-RPC requests, replies, errors and
 * event notifications. What each method does lives in control-methods.c and
 * friends; they see only ControlCall and json-c objects. */
#pragma once

#include "ctrmon/control.h"

#include <glib.h>
#include <json.h>
#include <stdbool.h>
#include <sys/types.h>

typedef struct ControlApi ControlApi;
typedef struct ControlCall ControlCall;

/* A method handler. It answers with control_call_reply()/_error() before it
 * returns, or takes a reference (control_call_ref) and answers later. A call
 * left unanswered when its last reference goes is answered with an internal
 * error. `params` is a JSON object (never NULL) owned by the call. */
typedef void (*ControlMethodFn)(ControlCall *call, json_object *params, void *user_data);

typedef struct {
        const char *name;
        ControlMethodFn fn;
} ControlMethod;

typedef struct {
        const char *path;               /* socket path                          */
        const ControlMethod *methods;   /* terminated by { NULL, NULL }         */
        void *user_data;                /* passed to every method               */
        uid_t owner_uid;                /* admitted besides root                */
} ControlApiConfig;

/* Bind and listen at config->path (mode 0600; the parent directory must
 * exist) and serve from the default main context. */
int control_api_new(const ControlApiConfig *config, ControlApi **ret_api, GError **error);
/* Close every connection and remove the socket file. NULL-safe. */
void control_api_free(ControlApi *api);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(ControlApi, control_api_free)

/* Send {"type": type, "time": ..., fields...} to every subscriber. Takes
 * `fields` (may be NULL). */
void control_api_emit_event(ControlApi *api, const char *type, json_object *fields);

/* Try to deliver queued output for up to `timeout_ms` (at exit). */
void control_api_flush(ControlApi *api, int timeout_ms);

typedef struct {
        unsigned connections;
        guint64 connections_total;
        guint64 refused;               /* peers not admitted                   */
        guint64 requests;
        guint64 errors;                /* error responses sent                 */
} ControlApiStats;
void control_api_get_stats(const ControlApi *api, ControlApiStats *ret_stats);

/* --- answering --- */
void control_call_reply(ControlCall *call, json_object *result);  /* takes result */
void control_call_error(ControlCall *call, int code, const char *format, ...) G_GNUC_PRINTF(3, 4);
ControlCall *control_call_ref(ControlCall *call);
void control_call_unref(ControlCall *call);
/* Send the notification {"jsonrpc":"2.0","method":method,"params":params}
 * on the call's connection, also after the call was answered (streams such
 * as "logs" with follow). Takes `params` (NULL: {}). Dropped if the client
 * has gone away. */
void control_call_notify(ControlCall *call, const char *method, json_object *params);
/* False once the client has gone away: a deferred answer is then dropped. */
bool control_call_connected(const ControlCall *call);
/* Make this call's connection receive event notifications. */
void control_call_subscribe(ControlCall *call);
/* The peer's credentials, from SO_PEERCRED. */
uid_t control_call_peer_uid(const ControlCall *call);

/* Take the connection out of JSON mode after answering `call` (attach): the
 * answer is written first (blocking briefly), then the socket is handed over
 * with any bytes already read beyond the request line in *ret_pending.
 * Returns the fd (owned by the caller) or -errno. */
int control_call_take_connection(ControlCall *call, GByteArray **ret_pending, GError **error);

/* Pure: parse one request line. On success returns 0 with the method name,
 * the params object (a new empty object if absent) and the id (NULL for a
 * notification, a JSON null for "id": null). On failure returns the JSON-RPC
 * error code (< 0) with a message, and the id if one could be read. */
int control_parse_request(const char *line, size_t len, char **ret_method, json_object **ret_params,
                          json_object **ret_id, bool *ret_has_id, char **ret_error_message);
