/* libFuzzer target for libctrmon's pure protocol code (protocol.h, and
 * ctrmon_client_build_address from ctrmon/client.h): what a client makes of
 * the monitor's lines, and what it puts on the wire.
 *
 * Input: byte 0 picks the part (% 6), the rest is its input.
 *   0 client_proto_parse_message(): a result has an id and JSON text that
 *     parses back whole, an error a message, a notification a method, no
 *     id and JSON params; a refusal is -EBADMSG with a reason and leaves
 *     the out-parameter alone; a result put back on the wire parses the
 *     same again.
 *   1 client_proto_encode_request(): method = bytes up to the first NUL,
 *     params = the rest; it refuses exactly an empty method and params that
 *     are not one JSON object in json-c's strict mode; what it accepts is one line that the
 *     monitor's own parser (control_parse_request) reads back as the same
 *     id, method and params.
 *   2 base64: decode(encode(x)) == x with the canonical length; decoding
 *     any text agrees with an independent decoder (alphabet only, stops at
 *     '=', leftover bits dropped) and is NUL-terminated.
 *   3 client_proto_is_plain_text() == GLib's UTF-8 validation without NUL.
 *   4 client_proto_errno_for_code() maps every code to the documented set.
 *   5 ctrmon_client_build_address(): a path that fits is copied with its
 *     NUL and the length says so; a long one goes through
 *     /proc/self/fd/N/<basename> or fails -ENAMETOOLONG/-EINVAL. */
#include "control-api.h"
#include "protocol.h"
#include "ctrmon/client.h"

#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FUZZ_JSON_FLAGS (JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE)

/* A NUL-terminated text that must be exactly one JSON value, nothing after
 * it (not even a comment). json-c cannot tell that a bare number at the end
 * of its buffer has ended: that case gets a second try with the NUL. */
static json_object *fuzz_parse_whole_ext(const char *text, bool strict)
{
        size_t len = strlen(text);
        json_tokener *tok = json_tokener_new();
        if (strict)
                json_tokener_set_flags(tok, JSON_TOKENER_STRICT);
        json_object *v = json_tokener_parse_ex(tok, text, (int) len);
        enum json_tokener_error e = json_tokener_get_error(tok);
        bool ok = e == json_tokener_success && json_tokener_get_parse_end(tok) == len;
        if (!v && e == json_tokener_continue) {
                json_tokener_reset(tok);
                v = json_tokener_parse_ex(tok, text, (int) len + 1);
                /* Only for a scalar: an object or array has ended at its
                 * bracket, and what follows (a comment) is trailing. */
                ok = json_tokener_get_error(tok) == json_tokener_success && json_tokener_get_parse_end(tok) >= len &&
                     !json_object_is_type(v, json_type_object) && !json_object_is_type(v, json_type_array);
        }
        json_tokener_free(tok);
        if (!ok) {
                json_object_put(v);
                return NULL;
        }
        return v;
}

static json_object *fuzz_parse_whole(const char *text)
{
        return fuzz_parse_whole_ext(text, false);
}

/* ------------------------------------------------------------ messages */

static void fuzz_message(const char *line, size_t len)
{
        ClientMessage m, sentinel;
        memset(&sentinel, 0x5a, sizeof sentinel);
        m = sentinel;
        char *reason = NULL;
        int r = client_proto_parse_message(line, len, &m, &reason);
        if (r < 0) {
                if (r != -EBADMSG || !reason || !*reason || memcmp(&m, &sentinel, sizeof m) != 0)
                        abort();
                free(reason);
                /* NULL reason is allowed. */
                if (client_proto_parse_message(line, len, &m, NULL) != -EBADMSG)
                        abort();
                return;
        }
        if (r != 0 || reason)
                abort();
        switch (m.kind) {
        case CLIENT_MESSAGE_RESULT: {
                if (!m.has_id || !m.result || m.error_message || m.method || m.params)
                        abort();
                json_object *v = fuzz_parse_whole(m.result);
                if (!v && strcmp(m.result, "null") != 0)
                        abort();
                /* Back on the wire, it reads the same. */
                g_autofree char *again = g_strdup_printf("{\"jsonrpc\":\"2.0\",\"id\":%" G_GINT64_FORMAT
                                                         ",\"result\":%s}",
                                                         m.id, m.result);
                ClientMessage m2;
                if (client_proto_parse_message(again, strlen(again), &m2, NULL) != 0 ||
                    m2.kind != CLIENT_MESSAGE_RESULT || m2.id != m.id || strcmp(m2.result, m.result) != 0)
                        abort();
                client_message_clear(&m2);
                json_object_put(v);
                break;
        }
        case CLIENT_MESSAGE_ERROR:
                if (!m.error_message || m.result || m.method || m.params)
                        abort();
                break;
        case CLIENT_MESSAGE_NOTIFICATION: {
                if (m.has_id || !m.method || !m.params || m.result || m.error_message)
                        abort();
                json_object *p = fuzz_parse_whole(m.params);
                if (!p && strcmp(m.params, "null") != 0)
                        abort();
                json_object_put(p);
                break;
        }
        default:
                abort();
        }
        client_message_clear(&m);
        if (m.result || m.error_message || m.method || m.params || m.has_id)
                abort();
}

/* ------------------------------------------------------------ requests */

/* The same JSON value, numbers compared by value: json-c's lenient reader
 * takes "-10e" as the double -10, which goes on the wire as "-10" and comes
 * back an int. */
static bool fuzz_json_same(json_object *a, json_object *b)
{
        bool a_num = json_object_is_type(a, json_type_int) || json_object_is_type(a, json_type_double);
        bool b_num = json_object_is_type(b, json_type_int) || json_object_is_type(b, json_type_double);
        if (a_num && b_num && json_object_get_type(a) != json_object_get_type(b))
                return json_object_get_double(a) == json_object_get_double(b);
        if (json_object_get_type(a) != json_object_get_type(b))
                return false;
        if (json_object_is_type(a, json_type_object)) {
                if (json_object_object_length(a) != json_object_object_length(b))
                        return false;
                json_object_object_foreach(a, key, va) {
                        json_object *vb = NULL;
                        if (!json_object_object_get_ex(b, key, &vb) || !fuzz_json_same(va, vb))
                                return false;
                }
                return true;
        }
        if (json_object_is_type(a, json_type_array)) {
                size_t n = json_object_array_length(a);
                if (n != json_object_array_length(b))
                        return false;
                for (size_t i = 0; i < n; i++)
                        if (!fuzz_json_same(json_object_array_get_idx(a, i), json_object_array_get_idx(b, i)))
                                return false;
                return true;
        }
        if (json_object_is_type(a, json_type_double) && isnan(json_object_get_double(a)))
                return isnan(json_object_get_double(b));
        return json_object_equal(a, b);
}

static void fuzz_request(const uint8_t *data, size_t size)
{
        int64_t id = 0;
        memcpy(&id, data, MIN(size, sizeof id));
        const char *text = (const char *) data + MIN(size, sizeof id);
        size_t len = size - MIN(size, sizeof id);
        const char *nul = memchr(text, '\0', len);
        g_autofree char *method = g_strndup(text, nul ? (size_t) (nul - text) : len);
        g_autofree char *params = nul ? g_strndup(nul + 1, (size_t) (text + len - nul - 1)) : NULL;
        bool with_params = nul && (text + len - nul - 1) > 0;
        if (!with_params)
                g_clear_pointer(&params, g_free);

        json_object *want_params = params ? fuzz_parse_whole_ext(params, true) : NULL;
        bool valid = *method && (!params || (want_params && json_object_is_type(want_params, json_type_object)));

        char *line = NULL;
        size_t line_len = 0;
        int r = client_proto_encode_request(id, method, params, &line, &line_len);
        if (!valid) {
                if (r != -EINVAL || line)
                        abort();
                json_object_put(want_params);
                return;
        }
        if (r != 0 || !line || line_len == 0 || line[line_len - 1] != '\n' || line[line_len] != '\0' ||
            memchr(line, '\n', line_len - 1))
                abort();

        /* The monitor reads it back as sent. */
        char *m = NULL, *message = NULL;
        json_object *p = NULL, *rid = NULL;
        bool has_id = false;
        int pr = control_parse_request(line, line_len - 1, &m, &p, &rid, &has_id, &message);
        if (pr != 0 || !has_id || !rid || !json_object_is_type(rid, json_type_int) ||
            json_object_get_int64(rid) != id || strcmp(m, method) != 0)
                abort();
        json_object *empty = json_object_new_object();
        if (!fuzz_json_same(p, want_params ? want_params : empty))
                abort();
        json_object_put(empty);
        g_free(m);
        g_free(message);
        json_object_put(p);
        json_object_put(rid);
        json_object_put(want_params);
        free(line);
}

/* ------------------------------------------------------------ base64 */

static const char fuzz_b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

static int fuzz_b64_value(char c)
{
        if (c >= 'A' && c <= 'Z')
                return c - 'A';
        if (c >= 'a' && c <= 'z')
                return c - 'a' + 26;
        if (c >= '0' && c <= '9')
                return c - '0' + 52;
        if (c == '+')
                return 62;
        if (c == '/')
                return 63;
        return -1;
}

static void fuzz_base64(const uint8_t *data, size_t size)
{
        /* Round trip. */
        char *enc = client_proto_base64_encode(data, size);
        if (!enc || strlen(enc) != (size + 2) / 3 * 4)
                abort();
        for (const char *p = enc; *p; p++)
                if (!strchr(fuzz_b64, *p) && *p != '=')
                        abort();
        char *dec = NULL;
        size_t dec_len = 0;
        if (client_proto_base64_decode(enc, strlen(enc), &dec, &dec_len) != 0 || dec_len != size ||
            (size && memcmp(dec, data, size) != 0) || dec[dec_len] != '\0')
                abort();
        free(enc);
        free(dec);

        /* Any text, against the oracle. */
        const char *text = (const char *) data;
        GByteArray *want = g_byte_array_new();
        bool ok = true;
        uint32_t acc = 0;
        int bits = 0;
        for (size_t i = 0; i < size && text[i] != '='; i++) {
                int v = fuzz_b64_value(text[i]);
                if (v < 0) {
                        ok = false;
                        break;
                }
                acc = acc << 6 | (uint32_t) v;
                bits += 6;
                if (bits >= 8) {
                        bits -= 8;
                        guint8 b = (guint8) (acc >> bits);
                        g_byte_array_append(want, &b, 1);
                }
        }
        char *sentinel = (char *) 1;
        dec = sentinel;
        dec_len = 77;
        int r = client_proto_base64_decode(text, size, &dec, &dec_len);
        if (!ok) {
                if (r != -EBADMSG || dec != sentinel || dec_len != 77)
                        abort();
        } else {
                if (r != 0 || dec_len != want->len || (dec_len && memcmp(dec, want->data, dec_len) != 0) ||
                    dec[dec_len] != '\0')
                        abort();
                free(dec);
        }
        g_byte_array_unref(want);
}

/* ------------------------------------------------------------ the rest */

static void fuzz_errno(const uint8_t *data, size_t size)
{
        int code = 0;
        memcpy(&code, data, MIN(size, sizeof code));
        int e = client_proto_errno_for_code(code);
        int want;
        switch (code) {
        case CTRMON_CONTROL_ERROR_ACCESS_DENIED:
                want = -EACCES;
                break;
        case CTRMON_CONTROL_ERROR_NOT_RUNNING:
                want = -ESRCH;
                break;
        case CTRMON_CONTROL_ERROR_METHOD_NOT_FOUND:
        case CTRMON_CONTROL_ERROR_UNSUPPORTED:
                want = -EOPNOTSUPP;
                break;
        case CTRMON_CONTROL_ERROR_INVALID_PARAMS:
                want = -EINVAL;
                break;
        case CTRMON_CONTROL_ERROR_LIMIT:
                want = -EAGAIN;
                break;
        default:
                want = -EREMOTEIO;
        }
        if (e != want)
                abort();
}

static void fuzz_address(const uint8_t *data, size_t size)
{
        int dir_fd = size ? (int) (data[0] % 4) - 1 : -1; /* -1 .. 2: a number only, never used */
        g_autofree char *path = size > 1 ? g_strndup((const char *) data + 1, size - 1) : g_strdup("");
        struct sockaddr_un addr;
        memset(&addr, 0x5a, sizeof addr);
        socklen_t alen = 0x5a5a;
        int r = ctrmon_client_build_address(path, dir_fd, &addr, &alen);
        size_t len = strlen(path);
        if (len == 0) {
                if (r != -EINVAL)
                        abort();
                return;
        }
        if (len < sizeof addr.sun_path) {
                if (r != 0 || addr.sun_family != AF_UNIX || strcmp(addr.sun_path, path) != 0 ||
                    alen != offsetof(struct sockaddr_un, sun_path) + len + 1)
                        abort();
                return;
        }
        if (r < 0) {
                if (r != -ENAMETOOLONG && r != -EINVAL)
                        abort();
                if (dir_fd < 0 && r != -ENAMETOOLONG)
                        abort();
                if (alen != 0x5a5a)
                        abort(); /* out-parameters only on success */
                return;
        }
        const char *slash = strrchr(path, '/');
        const char *name = slash ? slash + 1 : path;
        g_autofree char *want = g_strdup_printf("/proc/self/fd/%d/%s", dir_fd, name);
        if (dir_fd < 0 || !*name || strcmp(addr.sun_path, want) != 0 ||
            alen != offsetof(struct sockaddr_un, sun_path) + strlen(want) + 1 ||
            alen > sizeof addr)
                abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        if (size == 0)
                return 0;
        const uint8_t *d = data + 1;
        size_t n = size - 1;
        switch (data[0] % 6) {
        case 0: {
                /* An exact-size copy: ASan sees a read past the line. */
                char *line = malloc(n ? n : 1);
                memcpy(line, d, n);
                fuzz_message(line, n);
                free(line);
                break;
        }
        case 1:
                fuzz_request(d, n);
                break;
        case 2:
                fuzz_base64(d, n);
                break;
        case 3:
                if (client_proto_is_plain_text(d, n) != (bool) g_utf8_validate_len((const char *) d, n, NULL))
                        abort();
                break;
        case 4:
                fuzz_errno(d, n);
                break;
        case 5:
                fuzz_address(d, n);
                break;
        }
        return 0;
}
