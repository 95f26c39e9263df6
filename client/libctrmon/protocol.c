/* JSON-RPC 2.0 framing for the client: building request lines and telling
 * results, errors and notifications apart. Pure functions only (no fds, no
 * clocks) so every branch is unit-tested; client.c does the I/O. */
#include "protocol.h"

#include "ctrmon/control.h"

#include <errno.h>
#include <json.h>
#include <stdlib.h>
#include <string.h>

#define JSON_FLAGS (JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE)

/* Parse text that must be exactly one JSON value; NULL if it is not. */
/* One JSON value and nothing after it. `strict` is json-c's strict mode:
 * the lenient reader takes "-10e" as the double -10 and a trailing comma as
 * nothing, and what we would then send is not what the caller wrote. */
static json_object *client_proto_parse_whole(const char *text, size_t len, bool strict)
{
        json_tokener *tok = json_tokener_new();
        if (!tok)
                return NULL;
        if (strict)
                json_tokener_set_flags(tok, JSON_TOKENER_STRICT);
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
                params = client_proto_parse_whole(params_json, strlen(params_json), true);
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
        json_object *msg = client_proto_parse_whole(line, len, false);
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
        case CTRMON_CONTROL_ERROR_LIMIT:
                return -EAGAIN; /* a cap of the monitor's: try again later */
        default:
                return -EREMOTEIO;
        }
}

/* ------------------------------------------------------------ bytes in JSON */

bool client_proto_is_plain_text(const void *data, size_t len)
{
        /* The monitor's own rule for "stdout" vs "stdout_base64": valid
         * UTF-8 without NUL (JSON clients in C would cut the text there). */
        const uint8_t *p = data, *end = p + len;
        while (p < end) {
                uint8_t c = *p;
                size_t n;
                uint32_t cp;
                if (c == 0)
                        return false;
                if (c < 0x80) {
                        p++;
                        continue;
                } else if ((c & 0xe0) == 0xc0) {
                        n = 1;
                        cp = c & 0x1f;
                } else if ((c & 0xf0) == 0xe0) {
                        n = 2;
                        cp = c & 0x0f;
                } else if ((c & 0xf8) == 0xf0) {
                        n = 3;
                        cp = c & 0x07;
                } else {
                        return false;
                }
                if ((size_t) (end - p) <= n)
                        return false;
                for (size_t i = 1; i <= n; i++) {
                        if ((p[i] & 0xc0) != 0x80)
                                return false;
                        cp = cp << 6 | (p[i] & 0x3f);
                }
                /* Overlong forms, surrogates and beyond U+10FFFF. */
                if ((n == 1 && cp < 0x80) || (n == 2 && cp < 0x800) || (n == 3 && cp < 0x10000) || cp > 0x10ffff ||
                    (cp >= 0xd800 && cp <= 0xdfff))
                        return false;
                p += n + 1;
        }
        return true;
}

static const char client_b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

char *client_proto_base64_encode(const void *data, size_t len)
{
        const uint8_t *p = data;
        char *out = malloc((len + 2) / 3 * 4 + 1);
        if (!out)
                return NULL;
        char *o = out;
        size_t i = 0;
        for (; i + 2 < len; i += 3) {
                uint32_t v = (uint32_t) p[i] << 16 | (uint32_t) p[i + 1] << 8 | p[i + 2];
                *o++ = client_b64[v >> 18];
                *o++ = client_b64[(v >> 12) & 63];
                *o++ = client_b64[(v >> 6) & 63];
                *o++ = client_b64[v & 63];
        }
        if (i < len) {
                uint32_t v = (uint32_t) p[i] << 16 | (i + 1 < len ? (uint32_t) p[i + 1] << 8 : 0);
                *o++ = client_b64[v >> 18];
                *o++ = client_b64[(v >> 12) & 63];
                *o++ = i + 1 < len ? client_b64[(v >> 6) & 63] : '=';
                *o++ = '=';
        }
        *o = '\0';
        return out;
}

int client_proto_base64_decode(const char *text, size_t len, char **ret, size_t *ret_len)
{
        char *out = malloc(len / 4 * 3 + 4);
        if (!out)
                return -ENOMEM;
        size_t n = 0;
        uint32_t acc = 0;
        int bits = 0;
        for (size_t i = 0; i < len; i++) {
                char c = text[i];
                if (c == '=')
                        break;
                const char *pos = c ? strchr(client_b64, c) : NULL;
                if (!pos) {
                        free(out);
                        return -EBADMSG;
                }
                acc = acc << 6 | (uint32_t) (pos - client_b64);
                bits += 6;
                if (bits >= 8) {
                        bits -= 8;
                        out[n++] = (char) ((acc >> bits) & 0xff);
                }
        }
        out[n] = '\0';
        *ret = out;
        *ret_len = n;
        return 0;
}
