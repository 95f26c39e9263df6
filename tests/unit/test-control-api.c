/* Unit tests for monitor/control-api.c, the control API's transport, against
 * hostile and broken peers (issue 14): real UNIX stream clients in this
 * process, the server driven through the default GMainContext. Each test
 * runs in its own forked child (Check's default), so a crash or a changed
 * RLIMIT_NOFILE stays there. */
#include "control-api.h"

#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdio.h>
#include <glib.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

/* A bound on slowness only: a passing check waits no longer than the
 * event takes. */
#define WAIT_USEC (20 * G_USEC_PER_SEC)

/* ------------------------------------------------------------ fixture */

static char *tmpdir;
static char *sock_path;
static ControlApi *api;

static ControlCall *deferred;      /* "defer" */
static int gone_calls;
static int take_result = 1;        /* "take": fd or -errno; 1: not called */
static GByteArray *take_in;
static GBytes *take_out;
static gint64 take_usec;

static void gone_cb(ControlCall *call, void *user_data)
{
        gone_calls++;
        if (call == deferred) {
                deferred = NULL;
                control_call_unref(call);
        }
}

static void method_echo(ControlCall *call, json_object *params, void *user_data)
{
        control_call_reply(call, json_object_get(params));
}

static void method_defer(ControlCall *call, json_object *params, void *user_data)
{
        deferred = control_call_ref(call);
        control_call_set_gone_fn(call, gone_cb, NULL);
}

/* {"size": N}: a result of about N bytes. */
static void method_big(ControlCall *call, json_object *params, void *user_data)
{
        json_object *v = NULL;
        json_object_object_get_ex(params, "size", &v);
        size_t n = (size_t) json_object_get_int64(v);
        char *s = g_malloc(n + 1);
        memset(s, 'x', n);
        s[n] = 0;
        json_object *r = json_object_new_object();
        json_object_object_add(r, "data", json_object_new_string_len(s, (int) n));
        g_free(s);
        control_call_reply(call, r);
}

static void method_take(ControlCall *call, json_object *params, void *user_data)
{
        json_object *r = json_object_new_object();
        json_object_object_add(r, "taken", json_object_new_boolean(true));
        GError *error = NULL;
        gint64 t0 = g_get_monotonic_time();
        take_result = control_call_take_connection(call, r, &take_in, &take_out, &error);
        take_usec = g_get_monotonic_time() - t0;
        if (take_result < 0) {
                control_call_error(call, CTRMON_CONTROL_ERROR_FAILED, "%s", error->message);
                g_error_free(error);
        }
}

static const ControlMethod methods[] = {
        { "echo", method_echo },
        { "defer", method_defer },
        { "big", method_big },
        { "take", method_take },
        { NULL, NULL },
};

static void make_api(uid_t owner)
{
        ControlApiConfig config = {
                .path = sock_path,
                .methods = methods,
                .owner_uid = owner,
        };
        GError *error = NULL;
        int r = control_api_new(&config, &api, &error);
        ck_assert_msg(r == 0, "control_api_new: %s", error ? error->message : "?");
}

static void setup(void)
{
        const char *base = g_getenv("CTRMON_TEST_TMPDIR");
        tmpdir = g_build_filename(base ? base : g_get_tmp_dir(), "capi-XXXXXX", NULL);
        ck_assert_ptr_nonnull(g_mkdtemp(tmpdir));
        sock_path = g_build_filename(tmpdir, "api.sock", NULL);
        deferred = NULL;
        gone_calls = 0;
        take_result = 1;
        make_api(geteuid());
}

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
        remove(path);
        return 0;
}

static void teardown(void)
{
        g_clear_pointer(&api, control_api_free);
        nftw(tmpdir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
        g_clear_pointer(&sock_path, g_free);
        g_clear_pointer(&tmpdir, g_free);
}

/* ------------------------------------------------------------ helpers */

static void pump(void)
{
        while (g_main_context_iteration(NULL, FALSE))
                ;
}

static void pump_until(bool (*done)(void), const char *what)
{
        gint64 deadline = g_get_monotonic_time() + WAIT_USEC;
        while (!done()) {
                ck_assert_msg(g_get_monotonic_time() < deadline, "timed out waiting for %s", what);
                pump();
                g_usleep(1000);
        }
}

static unsigned connections(void)
{
        ControlApiStats st;
        control_api_get_stats(api, &st);
        return st.connections;
}

static bool no_connections(void)
{
        return connections() == 0;
}

static int client_new(void)
{
        int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
        ck_assert_int_ge(fd, 0);
        struct sockaddr_un addr = { .sun_family = AF_UNIX };
        g_strlcpy(addr.sun_path, sock_path, sizeof addr.sun_path);
        ck_assert_int_eq(connect(fd, (struct sockaddr *) &addr, sizeof addr), 0);
        return fd;
}

/* Send it all, running the server meanwhile. 0, or -errno of the send. */
static int client_send(int fd, const void *data, size_t len)
{
        const guint8 *p = data;
        gint64 deadline = g_get_monotonic_time() + WAIT_USEC;
        while (len > 0) {
                ssize_t n = send(fd, p, len, MSG_DONTWAIT | MSG_NOSIGNAL);
                if (n > 0) {
                        p += n;
                        len -= (size_t) n;
                        continue;
                }
                if (n < 0 && errno != EAGAIN)
                        return -errno;
                ck_assert_msg(g_get_monotonic_time() < deadline, "send timed out");
                pump();
                g_usleep(200);
        }
        return 0;
}

static void client_send_str(int fd, const char *s)
{
        ck_assert_int_eq(client_send(fd, s, strlen(s)), 0);
}

typedef struct {
        int fd;
        GByteArray *buf;
        bool eof;
} Reader;

static void reader_init(Reader *r, int fd)
{
        r->fd = fd;
        r->buf = g_byte_array_new();
        r->eof = false;
}

static void reader_clear(Reader *r)
{
        g_byte_array_unref(r->buf);
        close(r->fd);
}

/* Read what is there now. */
static void reader_fill(Reader *r)
{
        guint8 chunk[65536];
        for (;;) {
                ssize_t n = recv(r->fd, chunk, sizeof chunk, MSG_DONTWAIT);
                if (n > 0) {
                        g_byte_array_append(r->buf, chunk, (guint) n);
                        continue;
                }
                if (n == 0 || (n < 0 && errno != EAGAIN))
                        r->eof = true;
                return;
        }
}

/* The next line (without '\n'), or NULL at EOF. Runs the server while it
 * waits, for up to `usec`. */
static char *reader_line_within(Reader *r, gint64 usec)
{
        gint64 deadline = g_get_monotonic_time() + usec;
        for (;;) {
                guint8 *nl = r->buf->len ? memchr(r->buf->data, '\n', r->buf->len) : NULL;
                if (nl) {
                        size_t len = (size_t) (nl - r->buf->data);
                        char *line = g_strndup((const char *) r->buf->data, len);
                        g_byte_array_remove_range(r->buf, 0, (guint) len + 1);
                        return line;
                }
                if (r->eof)
                        return NULL;
                if (g_get_monotonic_time() >= deadline)
                        return g_strdup("(timeout)");
                pump();
                reader_fill(r);
                if (!r->eof && (!r->buf->len || !memchr(r->buf->data, '\n', r->buf->len)))
                        g_usleep(500);
        }
}

static char *reader_line(Reader *r)
{
        char *line = reader_line_within(r, WAIT_USEC);
        ck_assert_msg(!line || strcmp(line, "(timeout)") != 0, "no line from the server in time");
        return line;
}

static json_object *reader_message(Reader *r)
{
        g_autofree char *line = reader_line(r);
        ck_assert_msg(line != NULL, "EOF instead of a message");
        json_object *msg = json_tokener_parse(line);
        ck_assert_msg(msg != NULL, "not JSON: %.200s", line);
        return msg;
}

static int error_code(json_object *msg)
{
        json_object *err = NULL, *code = NULL;
        if (!json_object_object_get_ex(msg, "error", &err) || !json_object_object_get_ex(err, "code", &code))
                return 0;
        return json_object_get_int(code);
}

static const char *error_text(json_object *msg)
{
        json_object *err = NULL, *text = NULL;
        if (!json_object_object_get_ex(msg, "error", &err) || !json_object_object_get_ex(err, "message", &text))
                return "";
        return json_object_get_string(text);
}

/* A new client is still served: {"id":9,"method":"echo"} comes back. */
static void assert_api_serves(void)
{
        Reader r;
        reader_init(&r, client_new());
        client_send_str(r.fd, "{\"jsonrpc\":\"2.0\",\"id\":9,\"method\":\"echo\",\"params\":{\"ok\":1}}\n");
        g_autofree char *line = reader_line(&r);
        ck_assert_str_eq(line, "{\"jsonrpc\":\"2.0\",\"id\":9,\"result\":{\"ok\":1}}");
        reader_clear(&r);
}

/* ------------------------------------------------------------ the tests */

/* Finding 1: the "too large" answer fails (the client shut its read side),
 * the connection is closed under the error path, which then used the
 * freed queue (SIGSEGV). */
START_TEST(test_oversize_request_from_a_client_that_shut_its_read_side_does_not_crash)
{
        int fd = client_new();
        ck_assert_int_eq(shutdown(fd, SHUT_RD), 0);
        size_t len = CTRMON_CONTROL_MAX_REQUEST + 65536;
        g_autofree char *junk = g_malloc(len);
        memset(junk, 'a', len);
        memcpy(junk, "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"echo\",\"params\":{\"p\":\"", 54);
        int r = client_send(fd, junk, len);
        ck_assert_msg(r == 0 || r == -EPIPE || r == -ECONNRESET, "send: %s", g_strerror(-r));
        pump_until(no_connections, "the oversize client to be closed");
        close(fd);
        assert_api_serves();
}
END_TEST

START_TEST(test_oversize_request_from_a_client_that_hangs_up_does_not_crash)
{
        for (int i = 0; i < 3; i++) {
                int fd = client_new();
                size_t len = CTRMON_CONTROL_MAX_REQUEST + 1024;
                g_autofree char *junk = g_malloc(len);
                memset(junk, 'b', len);
                client_send(fd, junk, len);
                close(fd);
                pump_until(no_connections, "the oversize client to be closed");
        }
        assert_api_serves();
}
END_TEST

START_TEST(test_oversize_request_is_answered_then_eof)
{
        Reader r;
        reader_init(&r, client_new());
        size_t len = CTRMON_CONTROL_MAX_REQUEST + 1024;
        g_autofree char *junk = g_malloc(len);
        memset(junk, 'c', len);
        client_send(r.fd, junk, len);
        json_object *msg = reader_message(&r);
        ck_assert_int_eq(error_code(msg), CTRMON_CONTROL_ERROR_TOO_LARGE);
        json_object_put(msg);
        ck_assert_ptr_null(reader_line(&r)); /* EOF */
        reader_clear(&r);
}
END_TEST

/* Finding 8: `echo '{...}' | nc -U -N`: the request, then a half-close. */
START_TEST(test_half_closed_client_hears_its_deferred_answer_then_eof)
{
        Reader r;
        reader_init(&r, client_new());
        client_send_str(r.fd, "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"defer\"}\n"
                              "{\"jsonrpc\":\"2.0\",\"id\":2,\"method\":\"echo\",\"params\":{\"a\":1}}\n");
        ck_assert_int_eq(shutdown(r.fd, SHUT_WR), 0);
        g_autofree char *first = reader_line(&r);
        ck_assert_str_eq(first, "{\"jsonrpc\":\"2.0\",\"id\":2,\"result\":{\"a\":1}}");
        /* Some time passes; the connection must still be there. */
        for (int i = 0; i < 20; i++) {
                pump();
                g_usleep(1000);
        }
        ck_assert_ptr_nonnull(deferred);
        ck_assert_int_eq(connections(), 1);
        ck_assert(control_call_connected(deferred));
        json_object *res = json_object_new_object();
        json_object_object_add(res, "late", json_object_new_boolean(true));
        control_call_reply(deferred, res);
        control_call_unref(g_steal_pointer(&deferred));
        g_autofree char *second = reader_line(&r);
        ck_assert_str_eq(second, "{\"jsonrpc\":\"2.0\",\"id\":1,\"result\":{\"late\":true}}");
        ck_assert_ptr_null(reader_line(&r)); /* and then EOF */
        pump_until(no_connections, "the half-closed client to be closed");
        ck_assert_int_eq(gone_calls, 0);
        reader_clear(&r);
}
END_TEST

START_TEST(test_half_closed_client_without_pending_calls_is_closed_after_its_answers)
{
        Reader r;
        reader_init(&r, client_new());
        client_send_str(r.fd, "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"echo\"}\n");
        ck_assert_int_eq(shutdown(r.fd, SHUT_WR), 0);
        g_autofree char *line = reader_line(&r);
        ck_assert_str_eq(line, "{\"jsonrpc\":\"2.0\",\"id\":1,\"result\":{}}");
        ck_assert_ptr_null(reader_line(&r));
        pump_until(no_connections, "the connection to close");
        reader_clear(&r);
}
END_TEST

/* Finding 2's base: a client that goes away entirely takes its deferred
 * calls with it (the owner hears it and drops them), also after a
 * half-close. */
START_TEST(test_client_that_hangs_up_calls_gone_fn_of_its_deferred_call)
{
        int fd = client_new();
        client_send_str(fd, "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"defer\"}\n");
        while (!deferred)
                pump();
        ck_assert_int_eq(shutdown(fd, SHUT_WR), 0);
        for (int i = 0; i < 20; i++) {
                pump();
                g_usleep(1000);
        }
        ck_assert_ptr_nonnull(deferred); /* half-closed: still waits */
        close(fd);
        pump_until(no_connections, "the hang-up to be seen");
        ck_assert_int_eq(gone_calls, 1);
        ck_assert_ptr_null(deferred); /* gone_cb dropped the reference */
}
END_TEST

/* Finding 6: the hand-over returns at once with the answer unwritten, for
 * the new owner to write first; the bytes behind the request come along. */
START_TEST(test_take_connection_hands_the_answer_and_the_rest_over_unwritten)
{
        int fd = client_new();
        client_send_str(fd, "{\"jsonrpc\":\"2.0\",\"id\":7,\"method\":\"take\"}\nFRAMES");
        while (take_result == 1)
                pump();
        ck_assert_int_ge(take_result, 0);
        gsize len = 0;
        const char *out = g_bytes_get_data(take_out, &len);
        g_autofree char *text = g_strndup(out, len);
        ck_assert_str_eq(text, "{\"jsonrpc\":\"2.0\",\"id\":7,\"result\":{\"taken\":true}}\n");
        ck_assert_int_eq(take_in->len, 6);
        ck_assert(memcmp(take_in->data, "FRAMES", 6) == 0);
        /* Nothing was written by the API itself. */
        char buf[16];
        ck_assert_int_eq(recv(fd, buf, sizeof buf, MSG_DONTWAIT), -1);
        ck_assert_int_eq(errno, EAGAIN);
        ck_assert_int_eq(connections(), 0);
        close(take_result);
        close(fd);
}
END_TEST

/* The answers a reader has whole so far. */
static unsigned reader_count_lines(Reader *r)
{
        reader_fill(r);
        unsigned n = 0;
        for (guint i = 0; i < r->buf->len; i++)
                n += r->buf->data[i] == '\n';
        return n;
}

static GString *echo_requests(unsigned first, unsigned n)
{
        GString *req = g_string_new(NULL);
        for (unsigned i = first; i < first + n; i++)
                g_string_append_printf(req, "{\"jsonrpc\":\"2.0\",\"id\":%u,\"method\":\"echo\",\"params\":{}}\n", i);
        return req;
}

/* 1000 requests in one write are not handled in one go: 32 per turn of the
 * loop, so another client is answered long before the flood is, and then
 * the flood is answered whole and in order. */
START_TEST(test_a_flood_of_requests_is_handled_in_bounded_batches)
{
        Reader a, b;
        reader_init(&a, client_new());
        pump(); /* accepted */
        g_autoptr(GString) flood = echo_requests(0, 1000);
        ck_assert_int_lt(flood->len, 65536); /* one read takes it all */
        ck_assert_int_eq(send(a.fd, flood->str, flood->len, MSG_NOSIGNAL), (ssize_t) flood->len);
        g_main_context_iteration(NULL, FALSE);
        g_usleep(2000);
        unsigned first_turn = reader_count_lines(&a);
        ck_assert_uint_ge(first_turn, 1);
        ck_assert_uint_le(first_turn, 32);

        reader_init(&b, client_new());
        client_send_str(b.fd, "{\"jsonrpc\":\"2.0\",\"id\":\"b\",\"method\":\"echo\"}\n");
        json_object *msg = reader_message(&b);
        json_object *id = NULL;
        ck_assert(json_object_object_get_ex(msg, "id", &id));
        ck_assert_str_eq(json_object_get_string(id), "b");
        json_object_put(msg);
        ck_assert_uint_lt(reader_count_lines(&a), 1000);

        for (unsigned i = 0; i < 1000; i++) {
                msg = reader_message(&a);
                ck_assert(json_object_object_get_ex(msg, "id", &id));
                ck_assert_int_eq(json_object_get_int(id), (int) i);
                json_object_put(msg);
        }
        reader_clear(&a);
        reader_clear(&b);
}
END_TEST

/* A "take" behind more requests than one turn handles still gets exactly
 * the bytes after its own line. */
START_TEST(test_take_connection_after_a_batch_hands_over_only_the_rest)
{
        Reader a;
        reader_init(&a, client_new());
        g_autoptr(GString) req = echo_requests(0, 40);
        g_string_append(req, "{\"jsonrpc\":\"2.0\",\"id\":\"t\",\"method\":\"take\"}\nFRAMES");
        client_send_str(a.fd, req->str);
        gint64 deadline = g_get_monotonic_time() + WAIT_USEC;
        while (take_result == 1) {
                ck_assert(g_get_monotonic_time() < deadline);
                pump();
                reader_fill(&a); /* keep the earlier answers read */
        }
        ck_assert_int_ge(take_result, 0);
        ck_assert_int_eq(take_in->len, 6);
        ck_assert(memcmp(take_in->data, "FRAMES", 6) == 0);
        ck_assert_uint_eq(reader_count_lines(&a), 40);
        close(take_result);
        reader_clear(&a);
}
END_TEST

START_TEST(test_take_connection_with_answers_unread_fails_at_once)
{
        Reader r;
        reader_init(&r, client_new());
        /* Answers the client does not read: more than the socket holds. */
        for (int i = 0; i < 4; i++)
                client_send_str(r.fd,
                                "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"big\",\"params\":{\"size\":1048576}}\n");
        for (int i = 0; i < 50; i++) {
                pump();
                g_usleep(1000);
        }
        client_send_str(r.fd, "{\"jsonrpc\":\"2.0\",\"id\":2,\"method\":\"take\"}\n");
        while (take_result == 1)
                pump();
        ck_assert_int_eq(take_result, -EAGAIN);
        ck_assert_msg(take_usec < 100 * 1000, "take_connection took %" G_GINT64_FORMAT " us", take_usec);
        /* The connection stays in JSON mode: the error follows the rest. */
        int got = 0;
        for (;;) {
                json_object *msg = reader_message(&r);
                json_object *id = NULL;
                json_object_object_get_ex(msg, "id", &id);
                if (json_object_get_int(id) == 2) {
                        ck_assert_int_eq(error_code(msg), CTRMON_CONTROL_ERROR_FAILED);
                        ck_assert_msg(strstr(error_text(msg), "unread") != NULL, "%s", error_text(msg));
                        json_object_put(msg);
                        break;
                }
                got++;
                json_object_put(msg);
        }
        ck_assert_int_eq(got, 4);
        reader_clear(&r);
}
END_TEST

/* Finding 5: an answer over CTRMON_CONTROL_OUTPUT_MAX reaches a client that
 * reads; one over CTRMON_CONTROL_ANSWER_MAX is replaced by an error, and so
 * is a big one behind unread output: data or an error, never EOF. */
START_TEST(test_answer_over_the_output_bound_reaches_a_reading_client)
{
        Reader r;
        reader_init(&r, client_new());
        char req[128];
        size_t size = CTRMON_CONTROL_OUTPUT_MAX + 1024 * 1024;
        g_snprintf(req, sizeof req, "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"big\",\"params\":{\"size\":%zu}}\n",
                   size);
        client_send_str(r.fd, req);
        g_autofree char *line = reader_line(&r);
        ck_assert_ptr_nonnull(line);
        ck_assert_uint_eq(strlen(line), size + strlen("{\"jsonrpc\":\"2.0\",\"id\":1,\"result\":{\"data\":\"\"}}"));
        ck_assert_int_eq(connections(), 1);
        reader_clear(&r);
}
END_TEST

START_TEST(test_answer_over_the_answer_bound_is_replaced_by_an_error)
{
        Reader r;
        reader_init(&r, client_new());
        char req[128];
        g_snprintf(req, sizeof req, "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"big\",\"params\":{\"size\":%d}}\n",
                   CTRMON_CONTROL_ANSWER_MAX);
        client_send_str(r.fd, req);
        json_object *msg = reader_message(&r);
        ck_assert_int_eq(error_code(msg), CTRMON_CONTROL_ERROR_FAILED);
        ck_assert_msg(strstr(error_text(msg), "Answer too large") != NULL, "%s", error_text(msg));
        json_object_put(msg);
        reader_clear(&r);
        assert_api_serves();
}
END_TEST

START_TEST(test_big_answer_behind_unread_output_is_replaced_by_an_error)
{
        Reader r;
        reader_init(&r, client_new());
        char req[256];
        g_snprintf(req, sizeof req,
                   "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"big\",\"params\":{\"size\":4194304}}\n"
                   "{\"jsonrpc\":\"2.0\",\"id\":2,\"method\":\"big\",\"params\":{\"size\":%d}}\n",
                   CTRMON_CONTROL_OUTPUT_MAX);
        client_send_str(r.fd, req);
        json_object *m1 = reader_message(&r);
        ck_assert_int_eq(error_code(m1), 0);
        json_object *m2 = reader_message(&r);
        ck_assert_int_eq(error_code(m2), CTRMON_CONTROL_ERROR_FAILED);
        ck_assert_msg(strstr(error_text(m2), "unread") != NULL, "%s", error_text(m2));
        json_object_put(m1);
        json_object_put(m2);
        reader_clear(&r);
}
END_TEST

/* Finding 3: connections are capped. With the owner being root (one uid
 * admitted) the API stops accepting at the per-uid limit and resumes when
 * one closes; with another owner, root's 65th connection is refused. */
START_TEST(test_connections_at_the_limit_pause_accepting_until_one_closes)
{
        if (geteuid() != 0)
                return; /* the owner is then not root: see the next test */
        int fds[CTRMON_CONTROL_MAX_CONNECTIONS_PER_UID];
        for (int i = 0; i < CTRMON_CONTROL_MAX_CONNECTIONS_PER_UID; i++)
                fds[i] = client_new();
        for (int i = 0; i < 50 && connections() < CTRMON_CONTROL_MAX_CONNECTIONS_PER_UID; i++) {
                pump();
                g_usleep(1000);
        }
        ck_assert_int_eq(connections(), CTRMON_CONTROL_MAX_CONNECTIONS_PER_UID);
        /* One more: it waits in the backlog, unanswered, and the loop does
         * not spin over it. */
        Reader r;
        reader_init(&r, client_new());
        client_send_str(r.fd, "{\"jsonrpc\":\"2.0\",\"id\":3,\"method\":\"echo\"}\n");
        int dispatched = 0;
        for (int i = 0; i < 200; i++)
                dispatched += g_main_context_iteration(NULL, FALSE) ? 1 : 0;
        ck_assert_int_le(dispatched, 2);
        g_autofree char *none = reader_line_within(&r, 100 * 1000);
        ck_assert_str_eq(none, "(timeout)");
        ck_assert_int_eq(connections(), CTRMON_CONTROL_MAX_CONNECTIONS_PER_UID);
        ControlApiStats st;
        control_api_get_stats(api, &st);
        ck_assert_uint_ge(st.accept_pauses, 1);
        close(fds[0]);
        g_autofree char *line = reader_line(&r);
        ck_assert_str_eq(line, "{\"jsonrpc\":\"2.0\",\"id\":3,\"result\":{}}");
        for (int i = 1; i < CTRMON_CONTROL_MAX_CONNECTIONS_PER_UID; i++)
                close(fds[i]);
        reader_clear(&r);
}
END_TEST

START_TEST(test_connection_over_the_per_uid_limit_is_refused_with_an_error)
{
        /* Admit a second uid, so that one uid at its limit does not stop
         * the API from accepting. */
        g_clear_pointer(&api, control_api_free);
        make_api(geteuid() == 0 ? 4242 : 0);
        int fds[CTRMON_CONTROL_MAX_CONNECTIONS_PER_UID];
        for (int i = 0; i < CTRMON_CONTROL_MAX_CONNECTIONS_PER_UID; i++)
                fds[i] = client_new();
        for (int i = 0; i < 50 && connections() < CTRMON_CONTROL_MAX_CONNECTIONS_PER_UID; i++) {
                pump();
                g_usleep(1000);
        }
        ck_assert_int_eq(connections(), CTRMON_CONTROL_MAX_CONNECTIONS_PER_UID);
        Reader r;
        reader_init(&r, client_new());
        json_object *msg = reader_message(&r);
        ck_assert_int_eq(error_code(msg), CTRMON_CONTROL_ERROR_LIMIT);
        ck_assert_msg(strstr(error_text(msg), "Too many connections") != NULL, "%s", error_text(msg));
        json_object_put(msg);
        ck_assert_ptr_null(reader_line(&r));
        reader_clear(&r);
        ck_assert_int_eq(connections(), CTRMON_CONTROL_MAX_CONNECTIONS_PER_UID);
        for (int i = 0; i < CTRMON_CONTROL_MAX_CONNECTIONS_PER_UID; i++)
                close(fds[i]);
        pump_until(no_connections, "the clients to be closed");
        assert_api_serves();
}
END_TEST

/* The lowest free descriptor now. */
static int next_fd(void)
{
        int fd = dup(0);
        ck_assert_int_ge(fd, 0);
        close(fd);
        return fd;
}

static void set_nofile(rlim_t cur)
{
        struct rlimit rl;
        ck_assert_int_eq(getrlimit(RLIMIT_NOFILE, &rl), 0);
        rl.rlim_cur = cur;
        ck_assert_int_eq(setrlimit(RLIMIT_NOFILE, &rl), 0);
}

/* Finding 3: at the fd limit accept4() fails with EMFILE and leaves the
 * connection in the backlog: retrying at once spun at 100% CPU. */
START_TEST(test_emfile_pauses_accepting_instead_of_spinning)
{
        struct rlimit saved;
        getrlimit(RLIMIT_NOFILE, &saved);
        pump();
        Reader r;
        reader_init(&r, client_new());
        set_nofile((rlim_t) next_fd()); /* no descriptor left to accept into */
        client_send_str(r.fd, "{\"jsonrpc\":\"2.0\",\"id\":4,\"method\":\"echo\"}\n");
        int dispatched = 0;
        for (int i = 0; i < 1000; i++)
                dispatched += g_main_context_iteration(NULL, FALSE) ? 1 : 0;
        ck_assert_msg(dispatched <= 3, "the loop dispatched %d times in 1000 turns", dispatched);
        ControlApiStats st;
        control_api_get_stats(api, &st);
        ck_assert_uint_ge(st.accept_pauses, 1);
        /* Descriptors come back: the client is served after the pause. */
        set_nofile(saved.rlim_cur);
        g_autofree char *line = reader_line(&r);
        ck_assert_str_eq(line, "{\"jsonrpc\":\"2.0\",\"id\":4,\"result\":{}}");
        reader_clear(&r);
}
END_TEST

START_TEST(test_connection_into_the_fd_reserve_is_refused)
{
        struct rlimit saved;
        getrlimit(RLIMIT_NOFILE, &saved);
        pump();
        Reader r;
        reader_init(&r, client_new());
        /* The connection would get the lowest free fd: leave fewer than the
         * reserve beyond it. */
        set_nofile((rlim_t) next_fd() + CTRMON_CONTROL_FD_RESERVE - 1);
        json_object *msg = reader_message(&r);
        ck_assert_int_eq(error_code(msg), CTRMON_CONTROL_ERROR_LIMIT);
        ck_assert_msg(strstr(error_text(msg), "Too many open files") != NULL, "%s", error_text(msg));
        json_object_put(msg);
        reader_clear(&r);
        ck_assert_int_eq(connections(), 0);
        set_nofile(saved.rlim_cur);
        assert_api_serves();
}
END_TEST

/* Finding 9: the exit linger never blocks; it is pending while an answer
 * is unread and ends at its deadline (or once the client read it). */
START_TEST(test_linger_is_pending_until_the_deadline_for_a_client_that_does_not_read)
{
        int fd = client_new();
        client_send_str(fd, "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"big\",\"params\":{\"size\":4194304}}\n");
        for (int i = 0; i < 50; i++) {
                pump();
                g_usleep(1000);
        }
        ck_assert(!control_api_pending(api)); /* no linger yet */
        gint64 t0 = g_get_monotonic_time();
        control_api_linger(api, 300);
        ck_assert_int_lt(g_get_monotonic_time() - t0, 10 * 1000);
        ck_assert(control_api_pending(api));
        while (control_api_pending(api))
                g_main_context_iteration(NULL, TRUE); /* the deadline's timer wakes it */
        gint64 took = g_get_monotonic_time() - t0;
        ck_assert_msg(took >= 290 * 1000 && took < 2 * G_USEC_PER_SEC, "lingered %" G_GINT64_FORMAT " us", took);
        close(fd);
}
END_TEST

START_TEST(test_linger_ends_once_the_client_has_read)
{
        Reader r;
        reader_init(&r, client_new());
        client_send_str(r.fd, "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"big\",\"params\":{\"size\":4194304}}\n");
        for (int i = 0; i < 50; i++) {
                pump();
                g_usleep(1000);
        }
        control_api_linger(api, 10000);
        ck_assert(control_api_pending(api));
        g_autofree char *line = reader_line(&r);
        ck_assert_ptr_nonnull(line);
        pump();
        ck_assert(!control_api_pending(api));
        ck_assert(control_api_lingering(api));
        reader_clear(&r);
}
END_TEST

/* At the exit a monitor removes its socket file only if it still is the
 * one it bound: a successor on the same bundle keeps its own. */
START_TEST(test_free_leaves_a_successors_socket_in_place)
{
        int other = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        struct sockaddr_un addr = { .sun_family = AF_UNIX };
        g_strlcpy(addr.sun_path, sock_path, sizeof addr.sun_path);
        ck_assert_int_eq(unlink(sock_path), 0);
        ck_assert_int_eq(bind(other, (struct sockaddr *) &addr, sizeof addr), 0);
        struct stat before, after;
        ck_assert_int_eq(stat(sock_path, &before), 0);
        g_clear_pointer(&api, control_api_free);
        ck_assert_int_eq(stat(sock_path, &after), 0);
        ck_assert_uint_eq(after.st_ino, before.st_ino);
        close(other);
}
END_TEST

START_TEST(test_free_removes_its_own_socket_and_with_remove_dir_the_empty_directory)
{
        ck_assert_int_eq(access(sock_path, F_OK), 0);
        g_clear_pointer(&api, control_api_free);
        ck_assert_int_eq(access(sock_path, F_OK), -1);

        ControlApiConfig config = {
                .path = sock_path, .methods = methods, .owner_uid = geteuid(), .remove_dir = true,
        };
        GError *error = NULL;
        ck_assert_int_eq(control_api_new(&config, &api, &error), 0);
        g_clear_pointer(&api, control_api_free);
        ck_assert_int_eq(access(tmpdir, F_OK), -1);
        ck_assert_int_eq(mkdir(tmpdir, 0700), 0); /* for the teardown */
}
END_TEST

START_TEST(test_new_in_a_removed_directory_fails_with_enoent)
{
        g_clear_pointer(&api, control_api_free);
        g_autofree char *dir = g_build_filename(tmpdir, "gone", NULL);
        g_autofree char *path = g_build_filename(dir, "api.sock", NULL);
        ControlApiConfig config = { .path = path, .methods = methods, .owner_uid = geteuid() };
        GError *error = NULL;
        ck_assert_int_eq(control_api_new(&config, &api, &error), -ENOENT);
        g_clear_error(&error);
        ck_assert_ptr_null(api);
}
END_TEST

static Suite *control_api_suite(void)
{
        Suite *s = suite_create("control-api");
        TCase *tc = tcase_create("hostile peers");
        tcase_add_checked_fixture(tc, setup, teardown);
        tcase_set_timeout(tc, 60);
        tcase_add_test(tc, test_oversize_request_from_a_client_that_shut_its_read_side_does_not_crash);
        tcase_add_test(tc, test_oversize_request_from_a_client_that_hangs_up_does_not_crash);
        tcase_add_test(tc, test_oversize_request_is_answered_then_eof);
        tcase_add_test(tc, test_a_flood_of_requests_is_handled_in_bounded_batches);
        tcase_add_test(tc, test_take_connection_after_a_batch_hands_over_only_the_rest);
        tcase_add_test(tc, test_half_closed_client_hears_its_deferred_answer_then_eof);
        tcase_add_test(tc, test_half_closed_client_without_pending_calls_is_closed_after_its_answers);
        tcase_add_test(tc, test_client_that_hangs_up_calls_gone_fn_of_its_deferred_call);
        tcase_add_test(tc, test_take_connection_hands_the_answer_and_the_rest_over_unwritten);
        tcase_add_test(tc, test_take_connection_with_answers_unread_fails_at_once);
        tcase_add_test(tc, test_answer_over_the_output_bound_reaches_a_reading_client);
        tcase_add_test(tc, test_answer_over_the_answer_bound_is_replaced_by_an_error);
        tcase_add_test(tc, test_big_answer_behind_unread_output_is_replaced_by_an_error);
        tcase_add_test(tc, test_connections_at_the_limit_pause_accepting_until_one_closes);
        tcase_add_test(tc, test_connection_over_the_per_uid_limit_is_refused_with_an_error);
        tcase_add_test(tc, test_emfile_pauses_accepting_instead_of_spinning);
        tcase_add_test(tc, test_connection_into_the_fd_reserve_is_refused);
        tcase_add_test(tc, test_linger_is_pending_until_the_deadline_for_a_client_that_does_not_read);
        tcase_add_test(tc, test_linger_ends_once_the_client_has_read);
        tcase_add_test(tc, test_free_leaves_a_successors_socket_in_place);
        tcase_add_test(tc, test_free_removes_its_own_socket_and_with_remove_dir_the_empty_directory);
        tcase_add_test(tc, test_new_in_a_removed_directory_fails_with_enoent);
        suite_add_tcase(s, tc);
        return s;
}

int main(void)
{
        SRunner *sr = srunner_create(control_api_suite());
        srunner_run_all(sr, CK_NORMAL);
        int failed = srunner_ntests_failed(sr);
        srunner_free(sr);
        return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
