/* libFuzzer target for the control API's connection state machine
 * (control-api.h): a real ControlApi with a small method table, driven by up
 * to FUZZ_MAX_CLIENTS non-blocking clients from inside the target. The input
 * says how its payload is cut into pieces and what happens between them:
 * half-closes (SHUT_WR), shut read sides (SHUT_RD), hang-ups, requests over
 * CTRMON_CONTROL_MAX_REQUEST (generated filler, so -max_len stays small),
 * main-loop turns, reads, deferred answers and events.
 *
 * Input: byte 0 flags, byte 1 the number of op bytes N (at most
 * FUZZ_MAX_OPS), N op bytes, then the payload (request bytes). An op byte is
 * op = b & 7, p = b >> 3:
 *   0 SEND      the next piece_len(p) payload bytes to the current client
 *   1 FILLER    (p + 1) * 48 KiB of 'a' (no newline) to the current client
 *   2 SHUTDOWN  p % 3: SHUT_WR, SHUT_RD, SHUT_RDWR of the current client
 *   3 CLOSE     the current client
 *   4 CLIENT    p odd (or none yet): connect a new client; else switch
 *   5 ITERATE   p + 1 g_main_context_iteration(NULL, FALSE)
 *   6 READ      drain what the clients that read have been sent
 *   7 DEFERRED  p odd: emit an event; else act on deferred call
 *               (p >> 1) / 6: (p >> 1) % 6 says reply, error, notify,
 *               hand over, drop unanswered, answer them all
 * The rest of the payload is sent to the current client at the end.
 *
 * Nothing blocks: every socket is non-blocking and every loop is bounded.
 * Checked:
 * - every line a client receives is a JSON-RPC 2.0 answer (an "id" and
 *   exactly one of "result"/"error" with an integer code and a string
 *   message) or a notification (a "method", no "id");
 * - nothing follows a "request too large" error on its connection;
 * - inside a method the call is connected;
 * - a handed-over connection's answer is one JSON-RPC result line;
 * - a client that shut only its write side and still reads sees EOF once
 *   nothing it asked is outstanding (the half-close contract);
 * - once every client has closed, the API drops every connection within a
 *   bounded number of loop turns;
 * - ASan/UBSan/LSan: no use after free, no leak, across all of the above. */
#include "control-api.h"
#include "diag.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#define FUZZ_MAX_CLIENTS 4
#define FUZZ_MAX_OPS 48
#define FUZZ_MAX_DEFERRED 16
#define FUZZ_FILLER_UNIT (48 * 1024)
/* Loop turns for the final drain and for the hang-up check. */
#define FUZZ_DRAIN_TURNS 400
/* Attempts to push one buffer into a full socket. */
#define FUZZ_SEND_ROUNDS 4096

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

typedef struct {
        int fd;                /* -1: closed by us */
        bool shut_wr;
        bool shut_rd;
        bool eof;              /* recv() gave 0 */
        bool reset;            /* recv() failed (ECONNRESET, ...) */
        bool too_large;        /* got the "request too large" error */
        GByteArray *in;        /* received, not yet a whole line */
} FuzzClient;

static char fuzz_dir[] = "/tmp/ctrmon-fuzz-conn.XXXXXX";
static char *fuzz_path;
static FuzzClient clients[FUZZ_MAX_CLIENTS];
static int n_clients;
static int cur = -1;
static GPtrArray *deferred;    /* ControlCall*, one reference each */
static ControlApi *api;
static guint8 filler[64 * 1024];

static void fuzz_cleanup(void)
{
        unlink(fuzz_path);
        rmdir(fuzz_dir);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
        (void) argc;
        (void) argv;
        if (!mkdtemp(fuzz_dir))
                abort();
        fuzz_path = g_build_filename(fuzz_dir, "api.sock", NULL);
        atexit(fuzz_cleanup);
        /* The API warns about misbehaving clients: that is the point here. */
        diag_init(CTRMON_LOG_LEVEL_ERROR, false, NULL, NULL);
        memset(filler, 'a', sizeof filler);
        deferred = g_ptr_array_new();
        return 0;
}

/* ------------------------------------------------------------ checking */

static void fuzz_check_line(FuzzClient *cl, const char *line, size_t len)
{
#ifdef FUZZ_CONN_VERBOSE
        fprintf(stderr, "client %d: %.*s\n", (int) (cl - clients), (int) MIN(len, 160), line);
#endif
        if (cl->too_large)
                abort(); /* the conversation was over */
        json_tokener *tok = json_tokener_new();
        json_object *msg = json_tokener_parse_ex(tok, line, (int) len);
        bool whole = json_tokener_get_error(tok) == json_tokener_success && json_tokener_get_parse_end(tok) == len;
        json_tokener_free(tok);
        if (!msg || !whole || !json_object_is_type(msg, json_type_object))
                abort();
        json_object *v = NULL, *id = NULL, *result = NULL, *error = NULL, *method = NULL;
        if (!json_object_object_get_ex(msg, "jsonrpc", &v) || !json_object_is_type(v, json_type_string) ||
            strcmp(json_object_get_string(v), "2.0") != 0)
                abort();
        bool has_id = json_object_object_get_ex(msg, "id", &id);
        bool has_result = json_object_object_get_ex(msg, "result", &result);
        bool has_error = json_object_object_get_ex(msg, "error", &error);
        bool has_method = json_object_object_get_ex(msg, "method", &method);
        if (has_id) {
                /* An answer: the id as the request had it, or null. */
                if (id && !json_object_is_type(id, json_type_string) && !json_object_is_type(id, json_type_int) &&
                    !json_object_is_type(id, json_type_double))
                        abort();
                if (has_result == has_error || has_method)
                        abort();
                if (has_error) {
                        json_object *code = NULL, *message = NULL;
                        if (!json_object_is_type(error, json_type_object) ||
                            !json_object_object_get_ex(error, "code", &code) ||
                            !json_object_is_type(code, json_type_int) ||
                            !json_object_object_get_ex(error, "message", &message) ||
                            !json_object_is_type(message, json_type_string))
                                abort();
                        if (json_object_get_int(code) == CTRMON_CONTROL_ERROR_TOO_LARGE)
                                cl->too_large = true;
                }
        } else {
                if (!has_method || !json_object_is_type(method, json_type_string) || has_result || has_error)
                        abort();
        }
        json_object_put(msg);
}

/* Take what the client was sent, without blocking. */
static void fuzz_read(FuzzClient *cl)
{
        if (cl->fd < 0 || cl->shut_rd || cl->eof || cl->reset)
                return;
        guint8 buf[65536];
        for (int i = 0; i < 512; i++) {
                ssize_t n = recv(cl->fd, buf, sizeof buf, MSG_DONTWAIT);
                if (n < 0 && errno == EINTR)
                        continue;
                if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
                        break;
                if (n < 0) {
                        cl->reset = true;
                        break;
                }
                if (n == 0) {
                        /* A half line may end here: a client that let
                         * CTRMON_CONTROL_OUTPUT_MAX go unread is dropped
                         * mid-answer, and a handed-over answer may not fit
                         * the socket at once (fuzz_take). */
                        cl->eof = true;
                        break;
                }
                size_t scan = cl->in->len;
                g_byte_array_append(cl->in, buf, (guint) n);
                for (;;) {
                        guint8 *nl = memchr(cl->in->data + scan, '\n', cl->in->len - scan);
                        if (!nl)
                                break;
                        size_t len = (size_t) (nl - cl->in->data);
                        fuzz_check_line(cl, (const char *) cl->in->data, len);
                        g_byte_array_remove_range(cl->in, 0, (guint) len + 1);
                        scan = 0;
                }
        }
}

static void fuzz_read_all(void)
{
        for (int i = 0; i < n_clients; i++)
                fuzz_read(&clients[i]);
}

static void fuzz_iterate(int n)
{
        for (int i = 0; i < n; i++)
                g_main_context_iteration(NULL, FALSE);
}

/* ------------------------------------------------------------ methods */

static void fuzz_call_gone(ControlCall *call, void *user_data)
{
        (void) user_data;
        if (g_ptr_array_remove(deferred, call))
                control_call_unref(call);
}

static void fuzz_check_connected(ControlCall *call)
{
        if (!control_call_connected(call) || control_call_connection_id(call) == 0)
                abort();
}

static int64_t fuzz_param_int(json_object *params, const char *key, int64_t max)
{
        json_object *v = NULL;
        if (!json_object_object_get_ex(params, key, &v) || !json_object_is_type(v, json_type_int))
                return 0;
        int64_t n = json_object_get_int64(v);
        return n < 0 ? 0 : n > max ? max : n;
}

static void fuzz_m_echo(ControlCall *call, json_object *params, void *user_data)
{
        fuzz_check_connected(call);
        control_call_reply(call, json_object_get(params));
}

static void fuzz_m_defer(ControlCall *call, json_object *params, void *user_data)
{
        fuzz_check_connected(call);
        if (deferred->len >= FUZZ_MAX_DEFERRED) {
                control_call_error(call, CTRMON_CONTROL_ERROR_LIMIT, "too many deferred calls");
                return;
        }
        g_ptr_array_add(deferred, control_call_ref(call));
        control_call_set_gone_fn(call, fuzz_call_gone, NULL);
}

static void fuzz_m_noanswer(ControlCall *call, json_object *params, void *user_data)
{
        fuzz_check_connected(call);
}

static void fuzz_m_error(ControlCall *call, json_object *params, void *user_data)
{
        fuzz_check_connected(call);
        control_call_error(call, CTRMON_CONTROL_ERROR_FAILED, "failed as asked (%s)", "fuzz");
}

static void fuzz_m_twice(ControlCall *call, json_object *params, void *user_data)
{
        control_call_reply(call, NULL);
        control_call_error(call, CTRMON_CONTROL_ERROR_FAILED, "second answer");
        control_call_reply(call, json_object_new_int(2));
}

/* {"n": notifications, "len": bytes each} then the answer. */
static void fuzz_m_notify(ControlCall *call, json_object *params, void *user_data)
{
        int64_t n = fuzz_param_int(params, "n", 64);
        int64_t len = fuzz_param_int(params, "len", 65536);
        g_autofree char *text = g_malloc((gsize) len + 1);
        memset(text, 'n', (size_t) len);
        text[len] = '\0';
        for (int64_t i = 0; i < n; i++) {
                json_object *p = json_object_new_object();
                json_object_object_add(p, "text", json_object_new_string(text));
                control_call_notify(call, "fuzz", p);
        }
        control_call_reply(call, json_object_new_int64(n));
}

static void fuzz_m_subscribe(ControlCall *call, json_object *params, void *user_data)
{
        control_call_subscribe(call);
        control_call_reply(call, NULL);
}

/* {"kib": size of the answer} */
static void fuzz_m_big(ControlCall *call, json_object *params, void *user_data)
{
        int64_t kib = fuzz_param_int(params, "kib", 6 * 1024);
        size_t len = (size_t) kib * 1024;
        char *text = g_malloc(len + 1);
        memset(text, 'b', len);
        text[len] = '\0';
        json_object *r = json_object_new_object();
        json_object_object_add(r, "data", json_object_new_string_len(text, (int) len));
        g_free(text);
        control_call_reply(call, r);
}

/* Hand the connection over (attach): the new owner writes the answer, then
 * hangs up. */
static void fuzz_take(ControlCall *call)
{
        GByteArray *in = NULL;
        GBytes *out = NULL;
        GError *error = NULL;
        json_object *r = json_object_new_object();
        json_object_object_add(r, "framing", json_object_new_string("fuzz"));
        int fd = control_call_take_connection(call, r, &in, &out, &error);
        if (fd < 0) {
                if (!error || in || out)
                        abort();
                g_error_free(error);
                return;
        }
        if (error || !in || !out || control_call_connected(call))
                abort();
        gsize n = 0;
        const char *line = g_bytes_get_data(out, &n);
        if (n > 0) {
                /* One line: {"jsonrpc":"2.0","id":...,"result":{...}}\n */
                if (line[n - 1] != '\n' || memchr(line, '\n', n - 1))
                        abort();
                json_tokener *tok = json_tokener_new();
                json_object *msg = json_tokener_parse_ex(tok, line, (int) n - 1);
                json_object *result = NULL;
                if (!msg || json_tokener_get_parse_end(tok) != n - 1 ||
                    !json_object_object_get_ex(msg, "result", &result) ||
                    !json_object_is_type(result, json_type_object))
                        abort();
                json_object_put(msg);
                json_tokener_free(tok);
        }
        if (n > 0) {
                ssize_t w = send(fd, line, n, MSG_DONTWAIT | MSG_NOSIGNAL);
                (void) w; /* a full socket: the client gets half a line */
        }
        close(fd);
        g_byte_array_unref(in);
        g_bytes_unref(out);
}

static void fuzz_m_take(ControlCall *call, json_object *params, void *user_data)
{
        fuzz_take(call);
}

static const ControlMethod fuzz_methods[] = {
        { "echo", fuzz_m_echo },
        { "defer", fuzz_m_defer },
        { "noanswer", fuzz_m_noanswer },
        { "error", fuzz_m_error },
        { "twice", fuzz_m_twice },
        { "notify", fuzz_m_notify },
        { "subscribe", fuzz_m_subscribe },
        { "big", fuzz_m_big },
        { "take", fuzz_m_take },
        { NULL, NULL },
};

/* ------------------------------------------------------------ ops */

static const size_t piece_lens[32] = {
        1, 2, 3, 4, 5, 7, 8, 11, 13, 16, 17, 31, 32, 33, 63, 64,
        65, 100, 127, 128, 129, 255, 256, 511, 512, 1000, 1024, 4096, 8192, 16384, 65536, SIZE_MAX,
};

static bool fuzz_client_usable(const FuzzClient *cl)
{
        return cl && cl->fd >= 0;
}

static FuzzClient *fuzz_current(void)
{
        return cur >= 0 ? &clients[cur] : NULL;
}

static void fuzz_connect(void)
{
        if (n_clients >= FUZZ_MAX_CLIENTS)
                return;
        int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (fd < 0)
                abort();
        struct sockaddr_un addr = { .sun_family = AF_UNIX };
        g_strlcpy(addr.sun_path, fuzz_path, sizeof addr.sun_path);
        /* A listening UNIX socket with room in its backlog takes it now. */
        if (connect(fd, (struct sockaddr *) &addr, sizeof addr) < 0)
                abort();
        FuzzClient *cl = &clients[n_clients];
        *cl = (FuzzClient) { .fd = fd, .in = g_byte_array_new() };
        cur = n_clients++;
}

/* Push `len` bytes, turning the loop while the socket is full. Stops when
 * the monitor has gone (EPIPE, ECONNRESET). */
static void fuzz_send(FuzzClient *cl, const void *data, size_t len)
{
        const guint8 *p = data;
        for (int round = 0; len > 0 && round < FUZZ_SEND_ROUNDS; round++) {
                if (!fuzz_client_usable(cl) || cl->shut_wr)
                        return;
                ssize_t n = send(cl->fd, p, len, MSG_DONTWAIT | MSG_NOSIGNAL);
                if (n > 0) {
                        p += n;
                        len -= (size_t) n;
                        continue;
                }
                if (n < 0 && errno == EINTR)
                        continue;
                if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
                        fuzz_iterate(1);
                        fuzz_read_all();
                        continue;
                }
                return;
        }
}

static void fuzz_filler(FuzzClient *cl, size_t len)
{
        while (len > 0 && fuzz_client_usable(cl) && !cl->shut_wr) {
                size_t n = MIN(len, sizeof filler);
                fuzz_send(cl, filler, n);
                len -= n;
        }
}

static void fuzz_shutdown(FuzzClient *cl, int how)
{
        if (!fuzz_client_usable(cl))
                return;
        shutdown(cl->fd, how);
        if (how == SHUT_WR || how == SHUT_RDWR)
                cl->shut_wr = true;
        if (how == SHUT_RD || how == SHUT_RDWR)
                cl->shut_rd = true;
}

static void fuzz_close(FuzzClient *cl)
{
        if (!fuzz_client_usable(cl))
                return;
        close(cl->fd);
        cl->fd = -1;
}

/* Answer, notify on, hand over or drop the deferred calls. */
static void fuzz_deferred(unsigned how)
{
        if (deferred->len == 0)
                return;
        guint idx = (how / 6) % deferred->len;
        ControlCall *call = g_ptr_array_index(deferred, idx);
        switch (how % 6) {
        case 2:
                control_call_notify(call, "progress", NULL);
                return; /* still outstanding */
        case 5:
                /* Every one of them, in order. */
                while (deferred->len > 0) {
                        ControlCall *c = g_ptr_array_steal_index(deferred, 0);
                        control_call_set_gone_fn(c, NULL, NULL);
                        control_call_reply(c, NULL);
                        control_call_unref(c);
                }
                return;
        }
        /* Ours to finish: off the list and deaf to "gone" first, as what
         * follows may close its connection (which calls the gone fns). */
        g_ptr_array_steal_index(deferred, idx);
        control_call_set_gone_fn(call, NULL, NULL);
        switch (how % 6) {
        case 0:
                control_call_reply(call, json_object_new_string("late"));
                break;
        case 1:
                control_call_error(call, CTRMON_CONTROL_ERROR_FAILED, "late failure");
                break;
        case 3:
                fuzz_take(call);
                break;
        case 4:
                break; /* dropped unanswered: an internal error goes out */
        }
        control_call_unref(call);
}

static void fuzz_emit(unsigned how)
{
        json_object *f = NULL;
        if (how & 2) {
                f = json_object_new_object();
                json_object_object_add(f, "n", json_object_new_int((int) how));
        }
        control_api_emit_event(api, "fuzz", f);
}

static void fuzz_drop_deferred(void)
{
        while (deferred->len > 0) {
                ControlCall *c = g_ptr_array_steal_index(deferred, deferred->len - 1);
                control_call_set_gone_fn(c, NULL, NULL);
                control_call_unref(c);
        }
}

static unsigned fuzz_open_conns(void)
{
        ControlApiStats st;
        control_api_get_stats(api, &st);
        return st.connections;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        if (size < 2)
                return 0;
        uint8_t flags = data[0];
        size_t n_ops = MIN((size_t) data[1], (size_t) FUZZ_MAX_OPS);
        if (size < 2 + n_ops)
                return 0;
        const uint8_t *ops = data + 2;
        const uint8_t *payload = ops + n_ops, *end = data + size;

        ControlApiConfig config = {
                .path = fuzz_path,
                .methods = fuzz_methods,
                .owner_uid = getuid(),
        };
        GError *error = NULL;
        if (control_api_new(&config, &api, &error) < 0)
                abort();
        n_clients = 0;
        cur = -1;
        fuzz_connect();

        for (size_t i = 0; i < n_ops; i++) {
                unsigned op = ops[i] & 7, p = ops[i] >> 3;
                FuzzClient *cl = fuzz_current();
                switch (op) {
                case 0: {
                        size_t n = MIN(piece_lens[p], (size_t) (end - payload));
                        fuzz_send(cl, payload, n);
                        payload += n;
                        break;
                }
                case 1:
                        fuzz_filler(cl, (size_t) (p + 1) * FUZZ_FILLER_UNIT);
                        break;
                case 2:
                        fuzz_shutdown(cl, p % 3 == 0 ? SHUT_WR : p % 3 == 1 ? SHUT_RD : SHUT_RDWR);
                        break;
                case 3:
                        fuzz_close(cl);
                        break;
                case 4:
                        if ((p & 1) || n_clients == 0)
                                fuzz_connect();
                        else
                                cur = (int) (p / 2) % n_clients;
                        break;
                case 5:
                        fuzz_iterate((int) p + 1);
                        break;
                case 6:
                        fuzz_read_all();
                        break;
                case 7:
                        if (p & 1)
                                fuzz_emit(p);
                        else
                                fuzz_deferred(p >> 1);
                        break;
                }
        }
        if (payload < end)
                fuzz_send(fuzz_current(), payload, (size_t) (end - payload));

        /* Let everything sent be read and answered. */
        if (flags & 1)
                fuzz_deferred(5); /* answer every deferred call */
        for (int t = 0; t < FUZZ_DRAIN_TURNS; t++) {
                fuzz_read_all();
                if (!g_main_context_pending(NULL))
                        break; /* the API has nothing left to do now */
                fuzz_iterate(1);
        }
        fuzz_read_all();

        /* The half-close contract: a client that shut only its write side
         * and still reads hears the end once nothing it asked is pending. */
        if (deferred->len == 0) {
                for (int i = 0; i < n_clients; i++) {
                        FuzzClient *cl = &clients[i];
                        if (cl->fd >= 0 && cl->shut_wr && !cl->shut_rd && !cl->eof && !cl->reset)
                                abort();
                }
        }

        /* Everyone hangs up: the API must let go of every connection. */
        if (!(flags & 2))
                fuzz_drop_deferred();
        for (int i = 0; i < n_clients; i++)
                fuzz_close(&clients[i]);
        for (int t = 0; t < FUZZ_DRAIN_TURNS && fuzz_open_conns() > 0; t++)
                fuzz_iterate(1);
        if (fuzz_open_conns() != 0)
                abort();

        /* flags & 2: free the API with deferred calls still held; their
         * owner hears they are gone and drops them. */
        control_api_free(api);
        api = NULL;
        fuzz_drop_deferred();
        for (int t = 0; t < 100 && g_main_context_pending(NULL); t++)
                fuzz_iterate(1);
        for (int i = 0; i < n_clients; i++)
                g_byte_array_unref(clients[i].in);
        n_clients = 0;
        return 0;
}
