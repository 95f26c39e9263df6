/* libFuzzer target for the console socket message (console.h): what the
 * runtime sends on the -t console socket. The input is sent over a fresh
 * socketpair as payload, with no fd, one fd, two fds in one SCM_RIGHTS
 * message, or after the peer closed; console_receive_fd() must return an
 * error or a valid fd, never crash, and must not leave received fds open
 * (checked on the fd numbers the run used). */
#include "console.h"

#include <fcntl.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int fuzz_lowest_free_fd(void)
{
        int fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
        if (fd < 0)
                abort();
        close(fd);
        return fd;
}

/* Send `payload` with `n_fds` copies of `fd` in one SCM_RIGHTS message. */
static void fuzz_send(int sock, const uint8_t *payload, size_t len, int fd, int n_fds)
{
        union {
                char buf[CMSG_SPACE(2 * sizeof(int))];
                struct cmsghdr align;
        } control;
        char empty = 0;
        struct iovec iov = { .iov_base = len ? (void *) payload : &empty, .iov_len = len ? len : 1 };
        struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1 };

        memset(&control, 0, sizeof control);
        if (n_fds > 0) {
                int fds[2] = { fd, fd };
                msg.msg_control = control.buf;
                msg.msg_controllen = CMSG_SPACE(n_fds * sizeof(int));
                struct cmsghdr *cmsg = CMSG_FIRSTHDR(&msg);
                cmsg->cmsg_level = SOL_SOCKET;
                cmsg->cmsg_type = SCM_RIGHTS;
                cmsg->cmsg_len = CMSG_LEN(n_fds * sizeof(int));
                memcpy(CMSG_DATA(cmsg), fds, n_fds * sizeof(int));
        }
        /* A full socket buffer just means a short send: fine. */
        (void) sendmsg(sock, &msg, MSG_DONTWAIT | MSG_NOSIGNAL);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        if (size == 0)
                return 0;
        int mode = data[0] % 5;
        data++;
        size--;

        int before = fuzz_lowest_free_fd();
        bool was_open[8];
        for (int i = 0; i < 8; i++)
                was_open[i] = fcntl(before + i, F_GETFD) >= 0;
        int sv[2];
        /* Non-blocking receiver: console_receive_fd() does a blocking
         * recvmsg, which must not hang the fuzzer when nothing was sent. */
        if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
                abort();
        if (fcntl(sv[0], F_SETFL, O_NONBLOCK) < 0)
                abort();
        int payload_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
        if (payload_fd < 0)
                abort();

        switch (mode) {
        case 0: /* payload only */
                fuzz_send(sv[1], data, size, -1, 0);
                break;
        case 1: /* the runtime's message: name + one fd */
                fuzz_send(sv[1], data, size, payload_fd, 1);
                break;
        case 2: /* two fds in one control message */
                fuzz_send(sv[1], data, size, payload_fd, 2);
                break;
        case 3: /* payload, then the peer goes away */
                fuzz_send(sv[1], data, size, payload_fd, size & 1);
                close(sv[1]);
                sv[1] = -1;
                break;
        case 4: /* nothing sent at all */
                break;
        }
        close(payload_fd);

        int fd = -1;
        GError *error = NULL;
        int r = console_receive_fd(sv[0], &fd, &error);
        if (r == 0) {
                if (error || fd < 0 || fcntl(fd, F_GETFD) < 0)
                        abort();
                if (!(fcntl(fd, F_GETFD) & FD_CLOEXEC))
                        abort();
                close(fd);
        } else {
                if (r > 0 || !error || fd != -1)
                        abort();
                g_error_free(error);
        }
        close(sv[0]);
        if (sv[1] >= 0)
                close(sv[1]);

        /* The run's fds (at most 5) were numbered lowest-free first from
         * `before`, and all were closed: a number open now that was not
         * before leaked. */
        for (int i = 0; i < 8; i++)
                if (!was_open[i] && fcntl(before + i, F_GETFD) >= 0)
                        abort(); /* a received fd was left open */
        return 0;
}
