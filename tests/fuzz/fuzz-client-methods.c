/* libFuzzer target for libctrmon's reading side (client.c's line reader and
 * methods.c's typed helpers): the input is what "the monitor" sends. A
 * CtrmonClient is set up on one end of a socketpair; the input is written
 * to the other end, which then shuts its write side, so every read ends
 * (at worst with EOF) and nothing blocks. Then one call is made.
 *
 * Input: byte 0 picks the call (% 15), byte 1 its argument; the rest is
 * the monitor's byte stream. The request id is 1 (a fresh client).
 *
 * Checked (libctrmon's error convention, ctrmon/client.h):
 * - every call returns >= 0 or -errno; on failure the message is not
 *   empty, a remote error's JSON-RPC code maps to the returned errno, and
 *   out-parameters are left alone; on success they are filled;
 * - exec's output buffers are NUL-terminated at their length;
 * - log lines and events handed to callbacks have their documented
 *   fields (text never NULL, text_len covers the string, json set);
 * - attach hands over the socket only with the right framing;
 * - no leak or overrun, whatever the stream (ASan/LSan). */
#include "client-private.h"

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

typedef struct {
        unsigned calls;
        unsigned stop_after;
} FuzzCb;

static int fuzz_log_cb(const CtrmonLogLine *line, void *userdata)
{
        FuzzCb *cb = userdata;
        if (!line->text || !line->json || strlen(line->text) > line->text_len)
                abort();
        if (line->text[line->text_len] != '\0')
                abort();
        cb->calls++;
        return cb->stop_after && cb->calls >= cb->stop_after ? 7 : 0;
}

static int fuzz_event_cb(const CtrmonEvent *ev, void *userdata)
{
        FuzzCb *cb = userdata;
        if (!ev->type || !ev->json)
                abort();
        cb->calls++;
        return cb->stop_after && cb->calls >= cb->stop_after ? 9 : 0;
}

static void fuzz_check_failure(CtrmonClient *c, int r)
{
        if (r >= 0)
                abort();
        if (r < -4095)
                abort(); /* not an errno */
        const char *msg = ctrmon_client_error(c);
        if (!msg || !*msg)
                abort();
        int code = ctrmon_client_error_code(c);
        if (code != 0 && client_proto_errno_for_code(code) != r)
                abort();
}

/* A buffer of `size` bytes none of which may change. */
static bool fuzz_untouched(const void *p, size_t size)
{
        const uint8_t *b = p;
        for (size_t i = 0; i < size; i++)
                if (b[i] != 0x5a)
                        return false;
        return true;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        if (size < 2)
                return 0;
        unsigned which = data[0] % 15, arg = data[1];
        int sv[2];
        if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
                abort();
        int big = 1 << 20;
        setsockopt(sv[1], SOL_SOCKET, SO_SNDBUF, &big, sizeof big);
        setsockopt(sv[0], SOL_SOCKET, SO_RCVBUF, &big, sizeof big);
        const uint8_t *p = data + 2;
        size_t left = size - 2;
        while (left > 0) {
                ssize_t n = send(sv[1], p, left, MSG_DONTWAIT | MSG_NOSIGNAL);
                if (n <= 0)
                        break; /* does not fit: the rest is not sent */
                p += n;
                left -= (size_t) n;
        }
        shutdown(sv[1], SHUT_WR);

        CtrmonClient *c = calloc(1, sizeof *c);
        c->fd = sv[0];
        c->next_id = 1;

        int r = 0;
        FuzzCb cb = { .stop_after = arg & 3 };
        switch (which) {
        case 0: {
                CtrmonVersion v;
                memset(&v, 0x5a, sizeof v);
                r = ctrmon_client_version(c, &v);
                if (r < 0 && !fuzz_untouched(&v, sizeof v))
                        abort();
                if (r >= 0)
                        ctrmon_version_clear(&v);
                break;
        }
        case 1: {
                CtrmonStatus s;
                memset(&s, 0x5a, sizeof s);
                r = ctrmon_client_status(c, &s);
                if (r < 0 && !fuzz_untouched(&s, sizeof s))
                        abort();
                if (r >= 0) {
                        if (!s.json)
                                abort();
                        ctrmon_status_clear(&s);
                }
                break;
        }
        case 2: {
                CtrmonExit x;
                memset(&x, 0x5a, sizeof x);
                r = ctrmon_client_wait(c, &x);
                if (r < 0 && !fuzz_untouched(&x, sizeof x))
                        abort();
                break;
        }
        case 3:
                r = ctrmon_client_kill(c, (int) arg % 65, arg & 1);
                break;
        case 4:
                r = ctrmon_client_resize(c, arg * 3, arg * 5);
                break;
        case 5:
                r = ctrmon_client_close_stdin(c);
                break;
        case 6:
                r = ctrmon_client_reopen_log(c);
                break;
        case 7:
        case 8: {
                char *json = (char *) 1;
                r = which == 7 ? ctrmon_client_stats(c, &json) : ctrmon_client_processes(c, &json);
                if (r < 0 && json != (char *) 1)
                        abort();
                if (r >= 0) {
                        if (!json || json == (char *) 1)
                                abort();
                        free(json);
                }
                break;
        }
        case 9: {
                static const char *const argv[] = { "sh", "-c", "true", NULL };
                static const char bin[] = { 'a', 0, 'b', '\xff' };
                CtrmonExecOptions o = {
                        .argv = argv,
                        .stdin_data = (arg & 1) ? bin : (arg & 2) ? "text" : NULL,
                        .stdin_len = (arg & 1) ? sizeof bin : 4,
                        .timeout = (int) (arg >> 4),
                };
                CtrmonExecResult x;
                memset(&x, 0x5a, sizeof x);
                r = ctrmon_client_exec(c, &o, &x);
                if (r < 0 && !fuzz_untouched(&x, sizeof x))
                        abort();
                if (r >= 0) {
                        if (!x.out || !x.err || !x.json || x.out[x.out_len] != '\0' || x.err[x.err_len] != '\0')
                                abort();
                        ctrmon_exec_result_clear(&x);
                }
                break;
        }
        case 10:
                r = ctrmon_client_logs(c, (int) arg - 128, arg & 4, fuzz_log_cb, &cb);
                if (r > 0 && (r != 7 || !cb.stop_after))
                        abort(); /* > 0 only when the callback stopped it */
                break;
        case 11: {
                char *state = (char *) 1;
                r = ctrmon_client_subscribe(c, fuzz_event_cb, &cb, (arg & 8) ? &state : NULL);
                if (r > 0 && (r != 9 || !cb.stop_after))
                        abort();
                if ((arg & 8) && state != (char *) 1)
                        free(state);
                break;
        }
        case 12: {
                CtrmonAttachOptions o = { .detach_keys = (arg & 1) ? "ctrl-a" : NULL, .lossy = arg & 2 };
                int fd = -77;
                r = ctrmon_client_attach(c, &o, &fd);
                if (r < 0) {
                        if (fd != -77 || ctrmon_client_fd(c) != sv[0])
                                abort();
                } else {
                        if (fd != sv[0] || ctrmon_client_fd(c) != -1 || c->len != 0)
                                abort();
                        /* Exactly the answer was read: the rest of the
                         * stream, from just after a '\n', is still there. */
                        size_t sent = size - 2 - left, got = 0;
                        uint8_t *rest = malloc(sent + 1);
                        ssize_t n;
                        while (got <= sent && (n = recv(fd, rest + got, sent + 1 - got, MSG_DONTWAIT)) > 0)
                                got += (size_t) n;
                        if (got >= sent || data[2 + sent - got - 1] != '\n' ||
                            (got && memcmp(rest, data + 2 + sent - got, got) != 0))
                                abort();
                        free(rest);
                        close(fd);
                }
                break;
        }
        case 13:
        case 14: {
                /* The generic call, and a second call on the same stream. */
                char *result = (char *) 1;
                r = ctrmon_client_call(c, (arg & 1) ? "status" : "x", (arg & 2) ? "{\"a\":1}" : NULL,
                                       (arg & 4) ? &result : NULL);
                if (r >= 0 && (arg & 4)) {
                        if (!result || result == (char *) 1)
                                abort();
                        free(result);
                } else if (result != (char *) 1) {
                        abort();
                }
                if (r < 0)
                        fuzz_check_failure(c, r);
                if (which == 14) {
                        CtrmonVersion v;
                        r = ctrmon_client_version(c, &v);
                        if (r >= 0)
                                ctrmon_version_clear(&v);
                }
                break;
        }
        }
        if (r < 0)
                fuzz_check_failure(c, r);
        /* The buffer never holds a whole line it could have handed out,
         * except after an attach, which reads exactly its answer. */
        if (c->len > c->cap)
                abort();
        ctrmon_client_close(c);
        close(sv[1]);
        return 0;
}
