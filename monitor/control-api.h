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
        bool remove_dir;                /* free: rmdir the parent if then empty */
} ControlApiConfig;

/* Bind and listen at config->path (mode 0600; the parent directory must
 * exist) and serve from the default main context. -ENOENT if the directory
 * went away meanwhile (another monitor's exit removed it): make it again
 * and retry. Connections are limited as include/ctrmon/control.h says. */
int control_api_new(const ControlApiConfig *config, ControlApi **ret_api, GError **error);
/* Close every connection and remove the socket file, only if it still is
 * the one this API bound: a successor monitor on the same bundle (a
 * restart) may have bound its own at the path meanwhile. Socket creation
 * and removal hold flock() on the directory, so neither can slip between
 * the other's check and its act. NULL-safe. */
void control_api_free(ControlApi *api);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(ControlApi, control_api_free)

/* Send {"type": type, "time": ..., fields...} to every subscriber. Takes
 * `fields` (may be NULL). */
void control_api_emit_event(ControlApi *api, const char *type, json_object *fields);

/* At the exit: give queued answers until `timeout_ms` from now to leave.
 * Never blocks; the caller runs the main loop while control_api_pending()
 * (a timer at the deadline wakes the loop). */
void control_api_linger(ControlApi *api, int timeout_ms);
/* True while control_api_linger()'s deadline has not passed and answers
 * are still queued for a client. NULL-safe. */
bool control_api_pending(const ControlApi *api);
/* Whether control_api_linger() was called and its deadline has not passed. */
bool control_api_lingering(const ControlApi *api);

typedef struct {
        unsigned connections;
        guint64 connections_total;
        guint64 refused;               /* peers not admitted                   */
        guint64 refused_limit;         /* refused at a connection/fd limit     */
        guint64 accept_pauses;         /* accepting paused (limit, EMFILE)     */
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
/* Bytes queued on the call's connection and not yet written (0 once the
 * client has gone): a producer of many notifications (logs) paces itself
 * by it instead of running into CTRMON_CONTROL_OUTPUT_MAX. */
size_t control_call_output_pending(const ControlCall *call);
/* Which connection the call came on (unique in the API's life; 0 once the
 * client has gone away). */
guint64 control_call_connection_id(const ControlCall *call);
/* Called once if the client goes away (its connection closes, or is taken
 * over) while `call` still has references: the owner drops what it holds
 * for the call there (a waiter, a running exec). A half-close (the client
 * shut its write side only) is not going away: it still hears its answers.
 * NULL fn clears it. */
typedef void (*ControlCallGoneFn)(ControlCall *call, void *user_data);
void control_call_set_gone_fn(ControlCall *call, ControlCallGoneFn fn, void *user_data);

/* Answer `call` with `result` (taken) and take the connection out of JSON
 * mode (attach). Never blocks: the answer is not written here but returned
 * in *ret_out, for the new owner to write before anything else; bytes
 * already read beyond the request line are in *ret_in. Returns the fd
 * (owned by the caller), or -ENOTCONN (the client has gone) or -EAGAIN
 * (earlier answers are still unwritten: the client does not read them); on
 * failure the call is not answered and `result` is freed. */
int control_call_take_connection(ControlCall *call, json_object *result, GByteArray **ret_in, GBytes **ret_out,
                                 GError **error);

/* Pure: parse one request line. On success returns 0 with the method name,
 * the params object (a new empty object if absent) and the id (NULL for a
 * notification, a JSON null for "id": null). On failure returns the JSON-RPC
 * error code (< 0) with a message, and the id if one could be read. */
int control_parse_request(const char *line, size_t len, char **ret_method, json_object **ret_params,
                          json_object **ret_id, bool *ret_has_id, char **ret_error_message);
