/* libFuzzer target for the sd_notify relay's filter (sdnotify.h): which
 * lines of a container's datagram reach the host's notify socket.
 * - sdnotify_filter() on the input is checked against an independent
 *   reading of the rule: split on '\n' and '\r' (the datagram ends at a
 *   NUL, as for systemd), keep exactly READY=1, RELOADING=1, STOPPING=1,
 *   WATCHDOG=1, WATCHDOG=trigger and lines starting STATUS=, ERRNO=,
 *   BUSERROR=, MONOTONIC_USEC=, in order, joined with '\n'; NULL if none.
 *   So MAINPID=, FDSTORE=, NOTIFYACCESS=, BARRIER= ... never pass.
 * - The relay end to end: a real SdNotifyRelay (bundle and host socket in
 *   a private temp dir) gets the input as datagrams (byte 0 > 0: cut at
 *   the input's '\x1e' bytes); what reaches the host must be, per datagram
 *   and in order, the filter of the datagram that was sent, and nothing
 *   for a datagram nothing of which passes. */
#include "sdnotify.h"

#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static char fuzz_dir[] = "/tmp/ctrmon-fuzz-notify.XXXXXX";
static char *host_path, *notify_dir, *notify_path;
static SdNotifyRelay *relay;
static int host_fd = -1, send_fd = -1;

static void fuzz_cleanup(void)
{
        sdnotify_relay_free(relay);
        unlink(host_path);
        unlink(notify_path);
        rmdir(notify_dir);
        rmdir(fuzz_dir);
}

static int fuzz_dgram_socket(const char *bind_path, const char *connect_path)
{
        int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (fd < 0)
                abort();
        struct sockaddr_un a = { .sun_family = AF_UNIX };
        if (bind_path) {
                g_strlcpy(a.sun_path, bind_path, sizeof a.sun_path);
                if (bind(fd, (struct sockaddr *) &a, sizeof a) < 0)
                        abort();
        }
        if (connect_path) {
                g_strlcpy(a.sun_path, connect_path, sizeof a.sun_path);
                if (connect(fd, (struct sockaddr *) &a, sizeof a) < 0)
                        abort();
        }
        /* Room for the biggest input as one datagram. */
        int sz = 1 << 20;
        setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &sz, sizeof sz);
        setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &sz, sizeof sz);
        return fd;
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
        (void) argc;
        (void) argv;
        if (!mkdtemp(fuzz_dir))
                abort();
        atexit(fuzz_cleanup);
        host_path = g_build_filename(fuzz_dir, "host.sock", NULL);
        notify_dir = g_build_filename(fuzz_dir, "notify", NULL);
        notify_path = g_build_filename(notify_dir, "notify.sock", NULL);
        if (mkdir(notify_dir, 0700) < 0)
                abort();
        host_fd = fuzz_dgram_socket(host_path, NULL);
        GError *error = NULL;
        if (sdnotify_relay_new(fuzz_dir, host_path, &relay, &error) < 0)
                abort();
        send_fd = fuzz_dgram_socket(NULL, notify_path);
        return 0;
}

/* ------------------------------------------------------------ the oracle */

static bool fuzz_allowed(const char *l, size_t n)
{
        static const char *const exact[] = { "READY=1", "RELOADING=1", "STOPPING=1", "WATCHDOG=1",
                                             "WATCHDOG=trigger" };
        static const char *const prefixes[] = { "STATUS=", "ERRNO=", "BUSERROR=", "MONOTONIC_USEC=" };
        for (size_t i = 0; i < G_N_ELEMENTS(exact); i++)
                if (n == strlen(exact[i]) && memcmp(l, exact[i], n) == 0)
                        return true;
        for (size_t i = 0; i < G_N_ELEMENTS(prefixes); i++)
                if (n >= strlen(prefixes[i]) && memcmp(l, prefixes[i], strlen(prefixes[i])) == 0)
                        return true;
        return false;
}

static char *fuzz_oracle(const char *d, size_t len)
{
        const char *nul = memchr(d, '\0', len);
        if (nul)
                len = (size_t) (nul - d);
        GString *out = g_string_new(NULL);
        size_t i = 0;
        while (i < len) {
                size_t j = i;
                while (j < len && d[j] != '\n' && d[j] != '\r')
                        j++;
                if (j > i && fuzz_allowed(d + i, j - i)) {
                        if (out->len)
                                g_string_append_c(out, '\n');
                        g_string_append_len(out, d + i, (gssize) (j - i));
                }
                i = j + 1;
        }
        if (!out->len) {
                g_string_free(out, TRUE);
                return NULL;
        }
        return g_string_free(out, FALSE);
}

static void fuzz_check_filter(const char *d, size_t len)
{
        char *got = sdnotify_filter(d, len);
        char *want = fuzz_oracle(d, len);
        if ((got == NULL) != (want == NULL) || (got && strcmp(got, want) != 0))
                abort();
        if (got) {
                /* Never a forbidden field at a line start. */
                for (const char *p = got; p; p = strchr(p, '\n')) {
                        if (*p == '\n')
                                p++;
                        const char *e = strchr(p, '\n');
                        if (!fuzz_allowed(p, e ? (size_t) (e - p) : strlen(p)))
                                abort();
                        if (!e)
                                break;
                }
        }
        g_free(got);
        g_free(want);
}

/* ------------------------------------------------------------ the relay */

#define FUZZ_DATAGRAM_MAX 32768

static void fuzz_relay_one(const char *d, size_t len)
{
        if (send(send_fd, d, len, MSG_DONTWAIT | MSG_NOSIGNAL) != (ssize_t) len)
                return; /* too big for a datagram: not the relay's business */
        for (int i = 0; i < 16; i++)
                g_main_context_iteration(NULL, FALSE);
        /* A datagram longer than the relay reads (SDNOTIFY_DATAGRAM_MAX in
         * sdnotify.c) is dropped whole, never passed on cut. */
        char *want = len > FUZZ_DATAGRAM_MAX ? NULL : fuzz_oracle(d, len);
        static char buf[1 << 17];
        ssize_t n = recv(host_fd, buf, sizeof buf, MSG_DONTWAIT);
        if (!want) {
                if (n >= 0)
                        abort(); /* forwarded what nothing of passes */
        } else {
                /* The datagram's allowed lines, as sent: not a cut one. */
                if (n < 0 || (size_t) n != strlen(want) || memcmp(buf, want, (size_t) n) != 0)
                        abort();
        }
        if (recv(host_fd, buf, sizeof buf, MSG_DONTWAIT) >= 0)
                abort(); /* one datagram in, at most one out */
        g_free(want);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        if (size == 0)
                return 0;
        const char *d = (const char *) data + 1;
        size_t len = size - 1;
        fuzz_check_filter(d, len);
        if (data[0] == 0) {
                fuzz_relay_one(d, len);
                return 0;
        }
        /* Several datagrams, cut at '\x1e'. */
        for (const char *p = d, *end = d + len; p <= end;) {
                const char *sep = memchr(p, '\x1e', (size_t) (end - p));
                size_t n = sep ? (size_t) (sep - p) : (size_t) (end - p);
                fuzz_check_filter(p, n);
                fuzz_relay_one(p, n);
                if (!sep)
                        break;
                p = sep + 1;
        }
        return 0;
}
