"""podman run -it on a real pseudo-terminal: the initial window size reaches
the container, and a resize (SIGWINCH to podman) is forwarded by the monitor."""

import fcntl
import os
import select
import signal
import struct
import subprocess
import termios
import time

from podmanworld import IMAGE


def set_winsize(fd, rows, cols):
    fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))


class PtyReader:
    def __init__(self, fd):
        self.fd = fd
        self.buf = b""
        self.eof = False

    def pump(self, timeout):
        r, _, _ = select.select([self.fd], [], [], timeout)
        if r:
            try:
                d = os.read(self.fd, 65536)
            except OSError:  # EIO: every slave fd closed
                d = b""
            if d:
                self.buf += d
            else:
                self.eof = True

    def wait_for(self, pred, timeout, what):
        deadline = time.monotonic() + timeout
        while not pred(self.buf):
            if self.eof or time.monotonic() > deadline:
                raise AssertionError(f"waiting for {what}: got {self.buf!r}")
            self.pump(0.1)


def test_run_it_initial_size_and_resize(pw):
    master, slave = os.openpty()
    set_winsize(master, 30, 100)
    name = pw.name()

    # The container prints its size, then polls until it changes (at most
    # 10 s) and prints it again.  It lingers for a second before exiting:
    # podman handles one SIGWINCH with more than one resize call and logs
    # "ERRO container not running" to the terminal if the container is gone
    # by the last one (seen with conmon 2.1.6 too).
    script = ('stty size; i=0; while [ "$(stty size)" = "30 100" ] && '
              '[ $i -lt 500 ]; do usleep 20000; i=$((i+1)); done; stty size; '
              'sleep 1; exit 3')
    p = subprocess.Popen(pw.argv("run", "-it", "--rm", "--name", name, IMAGE,
                                 "sh", "-c", script),
                         stdin=slave, stdout=slave, stderr=slave, env=pw.env,
                         start_new_session=True, close_fds=True)
    os.close(slave)
    rd = PtyReader(master)
    try:
        rd.wait_for(lambda b: b"30 100\r\n" in b, 30, "initial size")
        info = pw.verify_monitor(name)
        # The pty is not podman's controlling terminal, so the kernel sends
        # no SIGWINCH of its own: exactly one resize event reaches podman.
        set_winsize(master, 40, 120)
        p.send_signal(signal.SIGWINCH)
        rd.wait_for(lambda b: b"40 120\r\n" in b, 15, "resized size")
        deadline = time.monotonic() + 30
        while not rd.eof and time.monotonic() < deadline:
            rd.pump(0.2)
        rc = p.wait(timeout=30)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
        os.close(master)
    assert rc == 3
    assert rd.buf == b"30 100\r\n40 120\r\n"
    pw.assert_monitor_gone(info)


def test_run_t_without_i_output_has_crlf(pw):
    # -t allocates a terminal in the container: its output comes through the
    # monitor's pty with the terminal's \r\n translation, on podman's stdout.
    name = pw.name()
    g = pw.gate()
    p = pw.popen("run", "-t", "--rm", "--name", name, *g.volume, IMAGE,
                 "sh", "-c", g.wait_cmd("go", "echo one; echo two"))
    try:
        info = pw.verify_monitor(name)
        g.open()
        out, err = p.communicate(timeout=30)
    finally:
        if p.poll() is None:
            p.kill()
            p.communicate()
    assert (p.returncode, out) == (0, b"one\r\ntwo\r\n"), err
    pw.assert_monitor_gone(info)
