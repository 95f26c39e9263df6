/* Proves libctrmon's wire behaviour: request lines byte for byte, how
 * results, errors and notifications are told apart, attach frames, the
 * long-path address, and (over a real socket at a path longer than
 * sun_path, against a scripted peer) that calls skip notifications and
 * foreign answers, map errors, and that attach reads nothing past its
 * answer. */
#include "protocol.h"
#include "ctrmon/client.h"
#include "ctrmon/control.h"
#include "ctrmon/signal-names.h"

#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* ------------------------------------------------------------ encoding */

/* The one signal-name table of the protocol (monitor and ctrmonctl). */
START_TEST(test_signal_names_numbers_sig_prefix_case_and_rtmin)
{
        ck_assert_int_eq(ctrmon_signal_from_name("TERM"), SIGTERM);
        ck_assert_int_eq(ctrmon_signal_from_name("SIGKILL"), SIGKILL);
        ck_assert_int_eq(ctrmon_signal_from_name("sigusr1"), SIGUSR1);
        ck_assert_int_eq(ctrmon_signal_from_name("winch"), SIGWINCH);
        ck_assert_int_eq(ctrmon_signal_from_name("15"), 15);
        ck_assert_int_eq(ctrmon_signal_from_name("RTMIN+2"), SIGRTMIN + 2);
        ck_assert_int_eq(ctrmon_signal_from_name("SIGRTMIN+0"), SIGRTMIN);
        ck_assert_int_eq(ctrmon_signal_from_name("RTMIN+99"), -1);
        ck_assert_int_eq(ctrmon_signal_from_name("RTMIN+-1"), -1);
        ck_assert_int_eq(ctrmon_signal_from_name("0"), -1);
        ck_assert_int_eq(ctrmon_signal_from_name("65"), -1);
        ck_assert_int_eq(ctrmon_signal_from_name("-9"), -1);
        ck_assert_int_eq(ctrmon_signal_from_name("15x"), -1);
        ck_assert_int_eq(ctrmon_signal_from_name("SIG"), -1);
        ck_assert_int_eq(ctrmon_signal_from_name("BOGUS"), -1);
        ck_assert_int_eq(ctrmon_signal_from_name(""), -1);
        ck_assert_int_eq(ctrmon_signal_from_name(NULL), -1);
}
END_TEST

START_TEST(test_request_line_is_compact_jsonrpc_with_newline)
{
        char *line = NULL;
        size_t len = 0;
        ck_assert_int_eq(client_proto_encode_request(7, "kill", "{ \"signal\": 9, \"all\": true }", &line, &len), 0);
        ck_assert_str_eq(line, "{\"jsonrpc\":\"2.0\",\"id\":7,\"method\":\"kill\",\"params\":{\"signal\":9,\"all\":true}}\n");
        ck_assert_uint_eq(len, strlen(line));
        free(line);
}
END_TEST

START_TEST(test_request_without_params_omits_them_and_keeps_slashes)
{
        char *line = NULL;
        size_t len = 0;
        ck_assert_int_eq(client_proto_encode_request(1, "status", NULL, &line, &len), 0);
        ck_assert_str_eq(line, "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"status\"}\n");
        free(line);
        ck_assert_int_eq(client_proto_encode_request(2, "exec", "{\"command\":[\"/bin/sh\"]}", &line, &len), 0);
        ck_assert_ptr_nonnull(strstr(line, "\"/bin/sh\""));
        free(line);
}
END_TEST

START_TEST(test_request_rejects_non_object_params_and_empty_method)
{
        char *line = NULL;
        size_t len = 0;
        ck_assert_int_eq(client_proto_encode_request(1, "kill", "[1]", &line, &len), -EINVAL);
        ck_assert_int_eq(client_proto_encode_request(1, "kill", "{\"a\":", &line, &len), -EINVAL);
        ck_assert_int_eq(client_proto_encode_request(1, "kill", "{} {}", &line, &len), -EINVAL);
        ck_assert_int_eq(client_proto_encode_request(1, "", NULL, &line, &len), -EINVAL);
        /* json-c's lenient extras: what would go on the wire is not what
         * the caller wrote ("-10e" would be sent as -10). */
        ck_assert_int_eq(client_proto_encode_request(1, "kill", "{\"signal\": -10e}", &line, &len), -EINVAL);
        ck_assert_int_eq(client_proto_encode_request(1, "kill", "{\"signal\": 9,}", &line, &len), -EINVAL);
        ck_assert_int_eq(client_proto_encode_request(1, "kill", "{\"signal\": 9 /* c */}", &line, &len), -EINVAL);
        ck_assert_ptr_null(line);
}
END_TEST

/* ------------------------------------------------------------ parsing */

static int parse(const char *text, ClientMessage *m, char **reason)
{
        *reason = NULL;
        return client_proto_parse_message(text, strlen(text), m, reason);
}

START_TEST(test_parse_result_keeps_id_and_result_text)
{
        ClientMessage m;
        char *reason;
        ck_assert_int_eq(parse("{\"jsonrpc\":\"2.0\",\"id\":3,\"result\":{\"state\":\"running\"}}", &m, &reason), 0);
        ck_assert_int_eq(m.kind, CLIENT_MESSAGE_RESULT);
        ck_assert(m.has_id);
        ck_assert_int_eq(m.id, 3);
        ck_assert_str_eq(m.result, "{\"state\":\"running\"}");
        client_message_clear(&m);
        /* "result": null (resize answers {} but null is valid JSON-RPC). */
        ck_assert_int_eq(parse("{\"jsonrpc\":\"2.0\",\"id\":4,\"result\":null}", &m, &reason), 0);
        ck_assert_str_eq(m.result, "null");
        client_message_clear(&m);
}
END_TEST

START_TEST(test_parse_error_gives_code_and_message)
{
        ClientMessage m;
        char *reason;
        ck_assert_int_eq(parse("{\"jsonrpc\":\"2.0\",\"id\":5,\"error\":{\"code\":-32003,\"message\":\"Container x is exited\"}}",
                               &m, &reason),
                         0);
        ck_assert_int_eq(m.kind, CLIENT_MESSAGE_ERROR);
        ck_assert_int_eq(m.id, 5);
        ck_assert_int_eq(m.error_code, CTRMON_CONTROL_ERROR_NOT_RUNNING);
        ck_assert_str_eq(m.error_message, "Container x is exited");
        client_message_clear(&m);
}
END_TEST

START_TEST(test_parse_error_with_null_id_is_an_error_without_id)
{
        ClientMessage m;
        char *reason;
        ck_assert_int_eq(parse("{\"jsonrpc\":\"2.0\",\"id\":null,\"error\":{\"code\":-32001,\"message\":\"Access denied\"}}",
                               &m, &reason),
                         0);
        ck_assert_int_eq(m.kind, CLIENT_MESSAGE_ERROR);
        ck_assert(!m.has_id);
        ck_assert_int_eq(m.error_code, CTRMON_CONTROL_ERROR_ACCESS_DENIED);
        client_message_clear(&m);
}
END_TEST

START_TEST(test_parse_notification_gives_method_and_params)
{
        ClientMessage m;
        char *reason;
        ck_assert_int_eq(parse("{\"jsonrpc\":\"2.0\",\"method\":\"event\",\"params\":{\"type\":\"exited\",\"exit_code\":7}}",
                               &m, &reason),
                         0);
        ck_assert_int_eq(m.kind, CLIENT_MESSAGE_NOTIFICATION);
        ck_assert(!m.has_id);
        ck_assert_str_eq(m.method, "event");
        ck_assert_str_eq(m.params, "{\"type\":\"exited\",\"exit_code\":7}");
        client_message_clear(&m);
        ck_assert_int_eq(parse("{\"jsonrpc\":\"2.0\",\"method\":\"log-end\"}", &m, &reason), 0);
        ck_assert_str_eq(m.params, "{}");
        client_message_clear(&m);
}
END_TEST

START_TEST(test_parse_rejects_what_is_not_an_answer)
{
        static const char *const bad[] = {
                "not json",
                "{\"jsonrpc\":\"2.0\",\"id\":1,\"result\":{}} trailing",
                "[1,2]",
                "{\"jsonrpc\":\"1.0\",\"id\":1,\"result\":{}}",
                "{\"id\":1,\"result\":{}}",
                "{\"jsonrpc\":\"2.0\",\"result\":{}}",
                "{\"jsonrpc\":\"2.0\",\"id\":\"x\",\"result\":{}}",
                "{\"jsonrpc\":\"2.0\",\"id\":1,\"result\":{},\"error\":{\"code\":1}}",
                "{\"jsonrpc\":\"2.0\",\"id\":1,\"error\":{\"message\":\"no code\"}}",
                "{\"jsonrpc\":\"2.0\",\"id\":1}",
        };
        for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
                ClientMessage m = { 0 };
                char *reason;
                ck_assert_msg(parse(bad[i], &m, &reason) == -EBADMSG, "accepted: %s", bad[i]);
                ck_assert_ptr_nonnull(reason);
                ck_assert_ptr_null(m.result);
                free(reason);
        }
}
END_TEST

START_TEST(test_error_codes_map_to_documented_errno)
{
        ck_assert_int_eq(client_proto_errno_for_code(CTRMON_CONTROL_ERROR_ACCESS_DENIED), -EACCES);
        ck_assert_int_eq(client_proto_errno_for_code(CTRMON_CONTROL_ERROR_NOT_RUNNING), -ESRCH);
        ck_assert_int_eq(client_proto_errno_for_code(CTRMON_CONTROL_ERROR_METHOD_NOT_FOUND), -EOPNOTSUPP);
        ck_assert_int_eq(client_proto_errno_for_code(CTRMON_CONTROL_ERROR_UNSUPPORTED), -EOPNOTSUPP);
        ck_assert_int_eq(client_proto_errno_for_code(CTRMON_CONTROL_ERROR_INVALID_PARAMS), -EINVAL);
        ck_assert_int_eq(client_proto_errno_for_code(CTRMON_CONTROL_ERROR_LIMIT), -EAGAIN);
        ck_assert_int_eq(client_proto_errno_for_code(CTRMON_CONTROL_ERROR_FAILED), -EREMOTEIO);
}
END_TEST

/* ------------------------------------------------------------ bytes in JSON */

START_TEST(test_plain_text_is_utf8_without_nul)
{
        ck_assert(client_proto_is_plain_text("hello\n", 6));
        ck_assert(client_proto_is_plain_text("gr\xc3\xbc\xc3\x9f \xe2\x82\xac \xf0\x9f\x98\x80", 15));
        ck_assert(client_proto_is_plain_text("", 0));
        ck_assert(!client_proto_is_plain_text("a\0b", 3));
        ck_assert(!client_proto_is_plain_text("\xff", 1));
        ck_assert(!client_proto_is_plain_text("\xc3", 1));         /* cut short */
        ck_assert(!client_proto_is_plain_text("\xc0\xaf", 2));     /* overlong "/" */
        ck_assert(!client_proto_is_plain_text("\xed\xa0\x80", 3)); /* surrogate */
}
END_TEST

START_TEST(test_base64_round_trips_every_padding)
{
        static const struct {
                const char *in, *out;
        } v[] = { { "", "" }, { "f", "Zg==" }, { "fo", "Zm8=" }, { "foo", "Zm9v" }, { "foob", "Zm9vYg==" } };
        for (size_t i = 0; i < sizeof v / sizeof v[0]; i++) {
                char *e = client_proto_base64_encode(v[i].in, strlen(v[i].in));
                ck_assert_str_eq(e, v[i].out);
                char *d = NULL;
                size_t n = 0;
                ck_assert_int_eq(client_proto_base64_decode(e, strlen(e), &d, &n), 0);
                ck_assert_uint_eq(n, strlen(v[i].in));
                ck_assert_mem_eq(d, v[i].in, n);
                free(d);
                free(e);
        }
        char *d = NULL;
        size_t n;
        ck_assert_int_eq(client_proto_base64_decode("AP8A", 4, &d, &n), 0);
        ck_assert_uint_eq(n, 3);
        ck_assert_mem_eq(d, "\x00\xff\x00", 3);
        free(d);
        ck_assert_int_eq(client_proto_base64_decode("a!b=", 4, &d, &n), -EBADMSG);
}
END_TEST

/* ------------------------------------------------------------ frames */

START_TEST(test_frame_header_is_type_then_big_endian_length)
{
        uint8_t h[CTRMON_FRAME_HEADER_SIZE];
        ctrmon_frame_encode_header(h, CTRMON_FRAME_STDOUT, 0x01020304);
        ck_assert_mem_eq(h, "\x02\x01\x02\x03\x04", 5);
}
END_TEST

START_TEST(test_frame_decode_whole_partial_and_bad)
{
        const uint8_t two[] = { 2, 0, 0, 0, 2, 'h', 'i', 6, 0, 0, 0, 4, 0, 0, 0, 7 };
        uint8_t type;
        const uint8_t *payload;
        uint32_t plen;
        ck_assert_int_eq(ctrmon_frame_decode(two, sizeof two, &type, &payload, &plen), 7);
        ck_assert_int_eq(type, CTRMON_FRAME_STDOUT);
        ck_assert_uint_eq(plen, 2);
        ck_assert_mem_eq(payload, "hi", 2);
        ck_assert_int_eq(ctrmon_frame_decode(two + 7, 9, &type, &payload, &plen), 9);
        ck_assert_int_eq(type, CTRMON_FRAME_EXIT);
        int status = -1;
        ck_assert_int_eq(ctrmon_frame_parse_exit(payload, plen, &status), 0);
        ck_assert_int_eq(status, 7);
        /* Every prefix of a frame is "need more". */
        for (size_t n = 0; n < 7; n++)
                ck_assert_int_eq(ctrmon_frame_decode(two, n, &type, &payload, &plen), 0);
        /* Unknown types decode: the caller skips them. */
        const uint8_t unknown[] = { 9, 0, 0, 0, 0 };
        ck_assert_int_eq(ctrmon_frame_decode(unknown, sizeof unknown, &type, &payload, &plen), 5);
        ck_assert_int_eq(type, 9);
        ck_assert_uint_eq(plen, 0);
        const uint8_t huge[] = { 2, 0xff, 0, 0, 0 };
        ck_assert_int_eq(ctrmon_frame_decode(huge, sizeof huge, &type, &payload, &plen), -EBADMSG);
        ck_assert_int_eq(ctrmon_frame_parse_exit(payload, 3, &status), -EBADMSG);
}
END_TEST

START_TEST(test_frame_write_sends_header_and_payload_and_resize_sizes)
{
        int p[2];
        ck_assert_int_eq(pipe2(p, O_CLOEXEC), 0);
        ck_assert_int_eq(ctrmon_frame_write(p[1], CTRMON_FRAME_STDIN, "ls\n", 3), 0);
        ck_assert_int_eq(ctrmon_frame_write(p[1], CTRMON_FRAME_CLOSE_STDIN, NULL, 0), 0);
        ck_assert_int_eq(ctrmon_frame_write_resize(p[1], 300, 80), 0);
        ck_assert_int_eq(ctrmon_frame_write_resize(p[1], 70000, 80), -ERANGE);
        uint8_t buf[64];
        ssize_t n = read(p[0], buf, sizeof buf);
        ck_assert_int_eq(n, 8 + 5 + 9);
        ck_assert_mem_eq(buf, "\x01\x00\x00\x00\x03ls\n\x05\x00\x00\x00\x00\x04\x00\x00\x00\x04\x01\x2c\x00\x50", 22);
        unsigned rows, cols;
        ck_assert_int_eq(ctrmon_frame_parse_resize(buf + 18, 4, &rows, &cols), 0);
        ck_assert_uint_eq(rows, 300);
        ck_assert_uint_eq(cols, 80);
        close(p[0]);
        close(p[1]);
}
END_TEST

/* ------------------------------------------------------------ addresses */

START_TEST(test_address_short_path_is_used_as_is)
{
        struct sockaddr_un a;
        socklen_t len;
        ck_assert_int_eq(ctrmon_client_build_address("/run/b/ctrmon/api.sock", -1, &a, &len), 0);
        ck_assert_str_eq(a.sun_path, "/run/b/ctrmon/api.sock");
        ck_assert_int_eq(a.sun_family, AF_UNIX);
        ck_assert_uint_eq(len, offsetof(struct sockaddr_un, sun_path) + strlen("/run/b/ctrmon/api.sock") + 1);
}
END_TEST

START_TEST(test_address_long_path_goes_through_proc_self_fd)
{
        char path[400];
        memset(path, 'd', sizeof path);
        path[0] = '/';
        strcpy(path + 300, "/ctrmon/api.sock");
        struct sockaddr_un a;
        socklen_t len;
        ck_assert_int_eq(ctrmon_client_build_address(path, -1, &a, &len), -ENAMETOOLONG);
        ck_assert_int_eq(ctrmon_client_build_address(path, 12, &a, &len), 0);
        ck_assert_str_eq(a.sun_path, "/proc/self/fd/12/api.sock");
        ck_assert_int_eq(ctrmon_client_build_address("", -1, &a, &len), -EINVAL);
        /* A name that alone overflows sun_path cannot be reached at all. */
        char name[300];
        memset(name, 'n', sizeof name);
        name[0] = '/';
        name[sizeof name - 1] = '\0';
        ck_assert_int_eq(ctrmon_client_build_address(name, 12, &a, &len), -ENAMETOOLONG);
}
END_TEST

START_TEST(test_bundle_socket_path_is_bundle_ctrmon_api_sock)
{
        char *p = ctrmon_client_bundle_socket_path("/run/b1");
        ck_assert_str_eq(p, "/run/b1/ctrmon/api.sock");
        free(p);
}
END_TEST

/* ------------------------------------------------------------ a scripted peer */

typedef struct {
        char top[512];
        char dir[512];
        char path[600];
        int listen_fd;
        int dir_fd;
} Peer;

/* Listen at a path longer than sun_path, as a monitor in a deep bundle. */
static void peer_listen(Peer *p)
{
        const char *base = getenv("CTRMON_TEST_TMPDIR");
        snprintf(p->dir, sizeof p->dir, "%s/client-XXXXXX", base ? base : "/tmp");
        ck_assert_ptr_nonnull(mkdtemp(p->dir));
        memcpy(p->top, p->dir, sizeof p->top);
        size_t n = strlen(p->dir);
        while (n < 200) {
                strcat(p->dir, "/deeper-directory-level");
                ck_assert_int_eq(mkdir(p->dir, 0700), 0);
                n = strlen(p->dir);
        }
        snprintf(p->path, sizeof p->path, "%s/api.sock", p->dir);
        ck_assert_uint_gt(strlen(p->path), sizeof(((struct sockaddr_un *) 0)->sun_path));
        p->dir_fd = open(p->dir, O_PATH | O_DIRECTORY | O_CLOEXEC);
        ck_assert_int_ge(p->dir_fd, 0);
        struct sockaddr_un a;
        socklen_t len;
        ck_assert_int_eq(ctrmon_client_build_address(p->path, p->dir_fd, &a, &len), 0);
        p->listen_fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        ck_assert_int_eq(bind(p->listen_fd, (struct sockaddr *) &a, len), 0);
        ck_assert_int_eq(listen(p->listen_fd, 4), 0);
}

/* Connect a client and pre-load the peer's side with `script`: the client
 * finds the answers waiting when it reads. */
static CtrmonClient *peer_connect_n(Peer *p, const char *script, size_t len, int *ret_conn)
{
        CtrmonClient *c = NULL;
        ck_assert_int_eq(ctrmon_client_connect(p->path, &c), 0);
        int conn = accept4(p->listen_fd, NULL, NULL, SOCK_CLOEXEC);
        ck_assert_int_ge(conn, 0);
        if (script)
                ck_assert_int_eq(write(conn, script, len), (ssize_t) len);
        *ret_conn = conn;
        return c;
}

static CtrmonClient *peer_connect(Peer *p, const char *script, int *ret_conn)
{
        return peer_connect_n(p, script, script ? strlen(script) : 0, ret_conn);
}

/* Close the peer and remove its socket and every directory level it made. */
static void peer_close(Peer *p)
{
        close(p->listen_fd);
        close(p->dir_fd);
        ck_assert_int_eq(unlink(p->path), 0);
        size_t top_len = strlen(p->top);
        while (strlen(p->dir) > top_len) {
                ck_assert_int_eq(rmdir(p->dir), 0);
                *strrchr(p->dir, '/') = '\0';
        }
        ck_assert_int_eq(rmdir(p->top), 0);
}

START_TEST(test_call_skips_notifications_and_foreign_answers)
{
        Peer p;
        peer_listen(&p);
        int conn;
        CtrmonClient *c = peer_connect(&p,
                                       "{\"jsonrpc\":\"2.0\",\"method\":\"event\",\"params\":{\"type\":\"started\"}}\n"
                                       "{\"jsonrpc\":\"2.0\",\"id\":99,\"result\":{\"wrong\":true}}\n"
                                       "{\"jsonrpc\":\"2.0\",\"id\":1,\"result\":{\"state\":\"running\"}}\n",
                                       &conn);
        char *result = NULL;
        ck_assert_int_eq(ctrmon_client_call(c, "status", NULL, &result), 0);
        ck_assert_str_eq(result, "{\"state\":\"running\"}");
        free(result);
        /* The request the peer got. */
        char req[256] = { 0 };
        ck_assert_int_gt(read(conn, req, sizeof req - 1), 0);
        ck_assert_str_eq(req, "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"status\"}\n");
        ctrmon_client_close(c);
        close(conn);
        peer_close(&p);
}
END_TEST

START_TEST(test_error_answers_set_errno_code_and_message)
{
        Peer p;
        peer_listen(&p);
        int conn;
        CtrmonClient *c = peer_connect(
                &p, "{\"jsonrpc\":\"2.0\",\"id\":1,\"error\":{\"code\":-32003,\"message\":\"Container x is exited\"}}\n",
                &conn);
        ck_assert_int_eq(ctrmon_client_kill(c, 15, false), -ESRCH);
        ck_assert_str_eq(ctrmon_client_error(c), "Container x is exited");
        ck_assert_int_eq(ctrmon_client_error_code(c), CTRMON_CONTROL_ERROR_NOT_RUNNING);
        /* Then the peer hangs up: a local error, code 0. */
        close(conn);
        CtrmonStatus st;
        ck_assert_int_eq(ctrmon_client_status(c, &st), -ECONNRESET);
        ck_assert_int_eq(ctrmon_client_error_code(c), 0);
        ctrmon_client_close(c);
        peer_close(&p);
}
END_TEST

START_TEST(test_refusal_with_null_id_is_eacces)
{
        Peer p;
        peer_listen(&p);
        int conn;
        CtrmonClient *c = peer_connect(&p,
                                       "{\"jsonrpc\":\"2.0\",\"id\":null,\"error\":{\"code\":-32001,\"message\":"
                                       "\"Access denied: uid 1000 may not control this monitor\"}}\n",
                                       &conn);
        close(conn);
        CtrmonExit ex;
        ck_assert_int_eq(ctrmon_client_wait(c, &ex), -EACCES);
        ck_assert_int_eq(ctrmon_client_error_code(c), CTRMON_CONTROL_ERROR_ACCESS_DENIED);
        ctrmon_client_close(c);
        peer_close(&p);
}
END_TEST

START_TEST(test_typed_status_and_wait_pick_fields)
{
        Peer p;
        peer_listen(&p);
        int conn;
        CtrmonClient *c = peer_connect(
                &p,
                "{\"jsonrpc\":\"2.0\",\"id\":1,\"result\":{\"id\":\"c1\",\"name\":null,\"state\":\"exited\",\"exec\":false,"
                "\"monitor_pid\":10,\"container_pid\":11,\"exit_code\":137,\"signal\":9,\"timed_out\":false,\"oom\":true,"
                "\"terminal\":true,\"stdin\":false,\"bundle\":\"/b\"}}\n"
                "{\"jsonrpc\":\"2.0\",\"id\":2,\"result\":{\"exit_code\":7,\"signal\":null,\"timed_out\":false,\"oom\":false}}\n",
                &conn);
        CtrmonStatus st;
        ck_assert_int_eq(ctrmon_client_status(c, &st), 0);
        ck_assert_str_eq(st.id, "c1");
        ck_assert_ptr_null(st.name);
        ck_assert_str_eq(st.state, "exited");
        ck_assert_int_eq(st.container_pid, 11);
        ck_assert(st.exited);
        ck_assert_int_eq(st.exit_code, 137);
        ck_assert_int_eq(st.signal, 9);
        ck_assert(st.oom && st.terminal && !st.stdin_open);
        ck_assert_str_eq(st.bundle, "/b");
        ck_assert_ptr_nonnull(st.json);
        ctrmon_status_clear(&st);
        CtrmonExit ex;
        ck_assert_int_eq(ctrmon_client_wait(c, &ex), 0);
        ck_assert_int_eq(ex.exit_code, 7);
        ck_assert_int_eq(ex.signal, 0);
        ctrmon_client_close(c);
        close(conn);
        peer_close(&p);
}
END_TEST

START_TEST(test_attach_reads_nothing_past_its_answer)
{
        Peer p;
        peer_listen(&p);
        int conn;
        static const char script[] = "{\"jsonrpc\":\"2.0\",\"id\":1,\"result\":{\"framing\":\"ctrmon-attach-v1\"}}\n"
                                     "\x02\x00\x00\x00\x02hi";
        CtrmonClient *c = peer_connect_n(&p, script, sizeof script - 1, &conn);
        int fd = -1;
        ck_assert_int_eq(ctrmon_client_attach(c, NULL, &fd), 0);
        ck_assert_int_ge(fd, 0);
        ck_assert_int_eq(ctrmon_client_fd(c), -1);
        ck_assert_int_eq(fcntl(fd, F_GETFD) & FD_CLOEXEC, FD_CLOEXEC);
        uint8_t buf[16];
        ck_assert_int_eq(read(fd, buf, sizeof buf), 7);
        ck_assert_mem_eq(buf, "\x02\x00\x00\x00\x02hi", 7);
        ctrmon_client_close(c);
        close(fd);
        close(conn);
        peer_close(&p);
}
END_TEST

static int events_cb(const CtrmonEvent *ev, void *userdata)
{
        char *seen = userdata;
        strcat(seen, ev->type);
        strcat(seen, ";");
        return 0;
}

START_TEST(test_subscribe_delivers_events_until_hangup)
{
        Peer p;
        peer_listen(&p);
        int conn;
        CtrmonClient *c = peer_connect(&p,
                                       "{\"jsonrpc\":\"2.0\",\"id\":1,\"result\":{\"subscribed\":true,\"state\":\"created\"}}\n"
                                       "{\"jsonrpc\":\"2.0\",\"method\":\"event\",\"params\":{\"type\":\"started\",\"pid\":5}}\n"
                                       "{\"jsonrpc\":\"2.0\",\"method\":\"other\",\"params\":{\"type\":\"nope\"}}\n"
                                       "{\"jsonrpc\":\"2.0\",\"method\":\"event\",\"params\":{\"type\":\"exited\"}}\n",
                                       &conn);
        /* Half-close: our request still goes out, then EOF. */
        shutdown(conn, SHUT_WR);
        char seen[128] = "";
        char *state = NULL;
        ck_assert_int_eq(ctrmon_client_subscribe(c, events_cb, seen, &state), 0);
        ck_assert_str_eq(state, "created");
        ck_assert_str_eq(seen, "started;exited;");
        free(state);
        ctrmon_client_close(c);
        close(conn);
        peer_close(&p);
}
END_TEST

int main(void)
{
        Suite *s = suite_create("client");
        TCase *tc = tcase_create("core");
        tcase_add_test(tc, test_request_line_is_compact_jsonrpc_with_newline);
        tcase_add_test(tc, test_signal_names_numbers_sig_prefix_case_and_rtmin);
        tcase_add_test(tc, test_request_without_params_omits_them_and_keeps_slashes);
        tcase_add_test(tc, test_request_rejects_non_object_params_and_empty_method);
        tcase_add_test(tc, test_parse_result_keeps_id_and_result_text);
        tcase_add_test(tc, test_parse_error_gives_code_and_message);
        tcase_add_test(tc, test_parse_error_with_null_id_is_an_error_without_id);
        tcase_add_test(tc, test_parse_notification_gives_method_and_params);
        tcase_add_test(tc, test_parse_rejects_what_is_not_an_answer);
        tcase_add_test(tc, test_error_codes_map_to_documented_errno);
        tcase_add_test(tc, test_plain_text_is_utf8_without_nul);
        tcase_add_test(tc, test_base64_round_trips_every_padding);
        tcase_add_test(tc, test_frame_header_is_type_then_big_endian_length);
        tcase_add_test(tc, test_frame_decode_whole_partial_and_bad);
        tcase_add_test(tc, test_frame_write_sends_header_and_payload_and_resize_sizes);
        tcase_add_test(tc, test_address_short_path_is_used_as_is);
        tcase_add_test(tc, test_address_long_path_goes_through_proc_self_fd);
        tcase_add_test(tc, test_bundle_socket_path_is_bundle_ctrmon_api_sock);
        tcase_add_test(tc, test_call_skips_notifications_and_foreign_answers);
        tcase_add_test(tc, test_error_answers_set_errno_code_and_message);
        tcase_add_test(tc, test_refusal_with_null_id_is_eacces);
        tcase_add_test(tc, test_typed_status_and_wait_pick_fields);
        tcase_add_test(tc, test_attach_reads_nothing_past_its_answer);
        tcase_add_test(tc, test_subscribe_delivers_events_until_hangup);
        suite_add_tcase(s, tc);
        SRunner *sr = srunner_create(s);
        srunner_run_all(sr, CK_NORMAL);
        int failed = srunner_ntests_failed(sr);
        srunner_free(sr);
        return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
