/* `ctrmonctl attach`: the terminal side of ctrmon-attach-v1. Puts a tty in
 * raw mode (restored on every way out), forwards stdin as frames, turns
 * SIGWINCH into resize frames (through a signalfd: no work in a handler)
 * and ends with the container's status from the exit frame. A hang-up
 * without exit frame is a detach (the monitor saw the detach keys). */
#include "ctrmonctl.h"

#include <errno.h>
#include <getopt.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/signalfd.h>
#include <termios.h>
#include <unistd.h>

#define ATTACH_CHUNK 65536

static int attach_send_size(int fd)
{
        struct winsize ws;
        if (ioctl(STDIN_FILENO, TIOCGWINSZ, &ws) < 0 || ws.ws_row == 0)
                return 0; /* no size to tell */
        return ctrmon_frame_write_resize(fd, ws.ws_row, ws.ws_col);
}

static int attach_write_out(int fd, const uint8_t *p, size_t n)
{
        while (n > 0) {
                ssize_t w = write(fd, p, n);
                if (w < 0 && errno == EINTR)
                        continue;
                if (w < 0)
                        return -errno;
                p += w;
                n -= (size_t) w;
        }
        return 0;
}

int ctl_attach_stream(Ctl *ctl, CtrmonClient *client, const char *detach_keys, bool forward_stdin, bool lossy)
{
        CtrmonAttachOptions opts = { .detach_keys = detach_keys, .no_stdin = !forward_stdin, .lossy = lossy };
        int fd = -1;
        int r = ctrmon_client_attach(client, &opts, &fd);
        if (r < 0)
                return ctl_rpc_failed(ctl, client, "attach", r);

        bool tty = isatty(STDIN_FILENO);
        struct termios saved;
        bool raw = false;
        if (tty && forward_stdin && tcgetattr(STDIN_FILENO, &saved) == 0) {
                struct termios t = saved;
                cfmakeraw(&t);
                /* Keep output post-processing off too: the container's
                 * terminal already produced \r\n. */
                raw = tcsetattr(STDIN_FILENO, TCSANOW, &t) == 0;
        }
        sigset_t mask, old_mask;
        sigemptyset(&mask);
        sigaddset(&mask, SIGWINCH);
        sigprocmask(SIG_BLOCK, &mask, &old_mask);
        int sfd = tty ? signalfd(-1, &mask, SFD_CLOEXEC | SFD_NONBLOCK) : -1;
        if (tty)
                attach_send_size(fd);

        uint8_t *buf = malloc(ATTACH_CHUNK + CTRMON_FRAME_MAX_PAYLOAD / 64);
        size_t cap = ATTACH_CHUNK + CTRMON_FRAME_MAX_PAYLOAD / 64, len = 0;
        int status = -1;
        bool stdin_open = forward_stdin, done = false;
        int result = CTL_EXIT_OK;
        while (!done && buf) {
                struct pollfd p[3] = {
                        { .fd = fd, .events = POLLIN },
                        { .fd = stdin_open ? STDIN_FILENO : -1, .events = POLLIN },
                        { .fd = sfd, .events = POLLIN },
                };
                if (poll(p, 3, -1) < 0) {
                        if (errno == EINTR)
                                continue;
                        break;
                }
                if (p[2].revents & POLLIN) {
                        struct signalfd_siginfo si;
                        while (read(sfd, &si, sizeof si) == (ssize_t) sizeof si)
                                ;
                        attach_send_size(fd);
                }
                if (p[1].revents & (POLLIN | POLLHUP | POLLERR)) {
                        uint8_t in[ATTACH_CHUNK];
                        ssize_t n = read(STDIN_FILENO, in, sizeof in);
                        if (n > 0) {
                                /* A monitor that hung up shows on the read side. */
                                ctrmon_frame_write(fd, CTRMON_FRAME_STDIN, in, (size_t) n);
                        } else if (n == 0 || (errno != EINTR && errno != EAGAIN)) {
                                ctrmon_frame_write(fd, CTRMON_FRAME_CLOSE_STDIN, NULL, 0);
                                stdin_open = false;
                        }
                }
                if (p[0].revents & (POLLIN | POLLHUP | POLLERR)) {
                        if (cap - len < ATTACH_CHUNK) {
                                uint8_t *b = realloc(buf, cap * 2);
                                if (!b)
                                        break;
                                buf = b;
                                cap *= 2;
                        }
                        ssize_t n = read(fd, buf + len, cap - len);
                        if (n < 0 && errno == EINTR)
                                continue;
                        if (n <= 0) {
                                done = true; /* hang-up without exit frame: detached */
                                break;
                        }
                        len += (size_t) n;
                        size_t off = 0;
                        for (;;) {
                                uint8_t type;
                                const uint8_t *payload;
                                uint32_t plen;
                                int used = ctrmon_frame_decode(buf + off, len - off, &type, &payload, &plen);
                                if (used == 0)
                                        break;
                                if (used < 0) {
                                        fprintf(stderr, "%sctrmonctl attach: malformed frame from the monitor\n",
                                                raw ? "\r\n" : "");
                                        result = CTL_EXIT_FAILURE;
                                        done = true;
                                        break;
                                }
                                off += (size_t) used;
                                if (type == CTRMON_FRAME_STDOUT)
                                        attach_write_out(STDOUT_FILENO, payload, plen);
                                else if (type == CTRMON_FRAME_STDERR)
                                        attach_write_out(STDERR_FILENO, payload, plen);
                                else if (type == CTRMON_FRAME_EXIT && ctrmon_frame_parse_exit(payload, plen, &status) == 0)
                                        done = true;
                                else if (type == CTRMON_FRAME_DROPPED) {
                                        /* --lossy, and we fell behind: the
                                         * monitor says so, then closes. */
                                        fprintf(stderr, "%sctrmonctl attach: output cut off by the monitor: %.*s\n",
                                                raw ? "\r\n" : "", (int) (plen < 4096 ? plen : 4096), (const char *) payload);
                                        result = CTL_EXIT_FAILURE;
                                        done = true;
                                }
                                if (done)
                                        break;
                        }
                        memmove(buf, buf + off, len - off);
                        len -= off;
                }
        }
        free(buf);
        if (raw)
                tcsetattr(STDIN_FILENO, TCSANOW, &saved);
        if (sfd >= 0)
                close(sfd);
        sigprocmask(SIG_SETMASK, &old_mask, NULL);
        close(fd);
        if (result != CTL_EXIT_OK)
                return result;
        if (status >= 0)
                return ctl_exit_status(status);
        if (raw)
                fputs("\r\n", stderr);
        return CTL_EXIT_OK; /* detached: the container goes on */
}

int ctl_cmd_attach(Ctl *ctl, int argc, char **argv)
{
        static const struct option options[] = {
                { "detach-keys", required_argument, NULL, 'd' },
                { "no-stdin", no_argument, NULL, 'n' },
                { "lossy", no_argument, NULL, 'l' },
                { NULL, 0, NULL, 0 },
        };
        const char *keys = NULL;
        bool forward_stdin = true, lossy = false;
        int c;
        optind = 0;
        while ((c = getopt_long(argc, argv, "+", options, NULL)) != -1) {
                switch (c) {
                case 'd':
                        keys = optarg;
                        break;
                case 'n':
                        forward_stdin = false;
                        break;
                case 'l':
                        lossy = true;
                        break;
                default:
                        return ctl_usage(ctl_find_command("attach"), true);
                }
        }
        if (optind < argc)
                return ctl_usage(ctl_find_command("attach"), true);
        CtrmonClient *client = NULL;
        int r = ctl_connect(ctl, &client);
        if (r)
                return r;
        r = ctl_attach_stream(ctl, client, keys, forward_stdin, lossy);
        ctrmon_client_close(client);
        return r;
}
