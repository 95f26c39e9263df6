/* The pure half of libctrmon: JSON-RPC request encoding and answer parsing.
 * No I/O here, so the unit tests can feed it bytes. Not installed. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef enum {
        CLIENT_MESSAGE_RESULT,
        CLIENT_MESSAGE_ERROR,
        CLIENT_MESSAGE_NOTIFICATION,
} ClientMessageKind;

typedef struct {
        ClientMessageKind kind;
        bool has_id;           /* false for notifications and "id": null */
        int64_t id;
        char *result;          /* RESULT: JSON text                      */
        int error_code;        /* ERROR                                  */
        char *error_message;   /* ERROR                                  */
        char *method;          /* NOTIFICATION                           */
        char *params;          /* NOTIFICATION: JSON text ("{}" if none) */
} ClientMessage;

/* Encode one request line, newline included (malloc()ed). `params_json`
 * may be NULL; otherwise it must be one JSON object, read in json-c's strict mode
 * (no trailing commas, comments or "-10e"). Returns 0 or -EINVAL. */
int client_proto_encode_request(int64_t id, const char *method, const char *params_json, char **ret_line,
                                size_t *ret_len);

/* Parse one line from the monitor (without its newline). Returns 0 or
 * -EBADMSG with a reason in *ret_reason (malloc()ed). */
int client_proto_parse_message(const char *line, size_t len, ClientMessage *ret_msg, char **ret_reason);
void client_message_clear(ClientMessage *msg);

/* Map a JSON-RPC error code to the -errno documented in client.h. */
int client_proto_errno_for_code(int code);

/* Bytes travel in JSON as a plain string when they are valid UTF-8 without
 * NUL, else base64 under "<name>_base64" (the monitor's rule). */
bool client_proto_is_plain_text(const void *data, size_t len);
char *client_proto_base64_encode(const void *data, size_t len);
/* Decode; the result is NUL-terminated for convenience. -EBADMSG on junk. */
int client_proto_base64_decode(const char *text, size_t len, char **ret, size_t *ret_len);
