/* JSON-RPC 2.0 framing for the client: building request lines and telling
 * results, errors and notifications apart. Pure functions only (no fds, no
 * clocks) so every branch is unit-tested; client.c does the I/O. */
#include "protocol.h"

#include "ctrmon/control.h"

#include <errno.h>
#include <glib.h>
#include <json.h>
#include <string.h>

#define JSON_FLAGS (JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE)

/* Parse text that must be exactly one JSON value; NULL if it is not. */
static json_object *client_proto_parse_whole(const char *text, size_t len)
{
        json_tokener *tok = json_tokener_new();
        if (!tok)
                return NULL;
        json_object *v = json_tokener_parse_ex(tok, text, (int) len);
        bool ok = json_tokener_get_error(tok) == json_tokener_success &&
                  json_tokener_get_parse_end(tok) == len;
        json_tokener_free(tok);
        if (!ok) {
                json_object_put(v);
                return NULL;
        }
        return v;
}

int client_proto_encode_request(int64_t id, const char *method, const char *params_json, char **ret_line,
                                size_t *ret_len)
{
        if (!method || !*method)
                return -EINVAL;
        json_object *params = NULL;
        if (params_json) {
                params = client_proto_parse_whole(params_json, strlen(params_json));
                /* The monitor takes named params only. */
                if (!params || !json_object_is_type(params, json_type_object)) {
                        json_object_put(params);
                        return -EINVAL;
                }
        }
        json_object *req = json_object_new_object();
        json_object_object_add(req, "jsonrpc", json_object_new_string("2.0"));
        json_object_object_add(req, "id", json_object_new_int64(id));
        json_object_object_add(req, "method", json_object_new_string(method));
        if (params)
                json_object_object_add(req, "params", params);
        size_t len = 0;
        const char *text = json_object_to_json_string_length(req, JSON_FLAGS, &len);
        char *line = malloc(len + 2);
        if (!line) {
                json_object_put(req);
                return -ENOMEM;
        }
        memcpy(line, text, len);
        line[len] = '\n';
        line[len + 1] = '\0';
        json_object_put(req);
        *ret_line = line;
        *ret_len = len + 1;
        return 0;
}

static char *client_proto_to_text(json_object *v)
{
        /* json-c prints a missing value as "null", which is what we want. */
        return strdup(json_object_to_json_string_ext(v, JSON_FLAGS));
}

static int client_proto_fail(char **ret_reason, const char *reason)
{
        if (ret_reason)
                *ret_reason = strdup(reason);
        return -EBADMSG;
}

int client_proto_parse_message(const char *line, size_t len, ClientMessage *ret_msg, char **ret_reason)
{
        json_object *msg = client_proto_parse_whole(line, len);
        if (!msg)
                return client_proto_fail(ret_reason, "the monitor sent a line that is not JSON");
        ClientMessage m = { 0 };
        json_object *v, *id = NULL;
        int r = 0;

        if (!json_object_is_type(msg, json_type_object) || !json_object_object_get_ex(msg, "jsonrpc", &v) ||
            !json_object_is_type(v, json_type_string) || strcmp(json_object_get_string(v), "2.0") != 0) {
                r = client_proto_fail(ret_reason, "the monitor sent a message that is not JSON-RPC 2.0");
                goto out;
        }
        bool has_id_key = json_object_object_get_ex(msg, "id", &id);
        if (id) {
                /* We only send integer ids; anything else cannot be ours. */
                if (!json_object_is_type(id, json_type_int)) {
                        r = client_proto_fail(ret_reason, "the monitor answered with an id we never sent");
                        goto out;
                }
                m.has_id = true;
                m.id = json_object_get_int64(id);
        }

        json_object *result = NULL, *error = NULL;
        bool has_result = json_object_object_get_ex(msg, "result", &result);
        bool has_error = json_object_object_get_ex(msg, "error", &error);
        if (has_result && has_error) {
                r = client_proto_fail(ret_reason, "the monitor sent both a result and an error");
                goto out;
        }
        if (has_result) {
                if (!m.has_id) {
                        r = client_proto_fail(ret_reason, "the monitor sent a result without an id");
                        goto out;
                }
                m.kind = CLIENT_MESSAGE_RESULT;
                m.result = client_proto_to_text(result);
        } else if (has_error) {
                json_object *code, *message;
                if (!json_object_is_type(error, json_type_object) ||
                    !json_object_object_get_ex(error, "code", &code) || !json_object_is_type(code, json_type_int)) {
                        r = client_proto_fail(ret_reason, "the monitor sent a malformed error");
                        goto out;
                }
                m.kind = CLIENT_MESSAGE_ERROR;
                m.error_code = json_object_get_int(code);
                m.error_message = strdup(json_object_object_get_ex(error, "message", &message) &&
                                                         json_object_is_type(message, json_type_string)
                                                 ? json_object_get_string(message)
                                                 : "(no message)");
        } else if (!has_id_key && json_object_object_get_ex(msg, "method", &v) &&
                   json_object_is_type(v, json_type_string)) {
                m.kind = CLIENT_MESSAGE_NOTIFICATION;
                m.method = strdup(json_object_get_string(v));
                json_object *params = NULL;
                if (json_object_object_get_ex(msg, "params", &params) && params)
                        m.params = client_proto_to_text(params);
                else
                        m.params = strdup("{}");
        } else {
                r = client_proto_fail(ret_reason, "the monitor sent neither a result, an error nor a notification");
                goto out;
        }
        *ret_msg = m;
        m = (ClientMessage) { 0 };
out:
        client_message_clear(&m);
        json_object_put(msg);
        return r;
}

void client_message_clear(ClientMessage *msg)
{
        if (!msg)
                return;
        free(msg->result);
        free(msg->error_message);
        free(msg->method);
        free(msg->params);
        *msg = (ClientMessage) { 0 };
}

int client_proto_errno_for_code(int code)
{
        switch (code) {
        case CTRMON_CONTROL_ERROR_ACCESS_DENIED:
                return -EACCES;
        case CTRMON_CONTROL_ERROR_NOT_RUNNING:
                return -ESRCH;
        case CTRMON_CONTROL_ERROR_METHOD_NOT_FOUND:
        case CTRMON_CONTROL_ERROR_UNSUPPORTED:
                return -EOPNOTSUPP;
        case CTRMON_CONTROL_ERROR_INVALID_PARAMS:
                return -EINVAL;
        default:
                return -EREMOTEIO;
        }
}
