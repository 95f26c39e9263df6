"""Helpers for the back-pressure tests (test_backpressure.py) and the compat
scenarios that drive the same paths (tests/compat/scenarios_io.py):

* data_file: a file of random bytes on the host with its sha256, to
  bind-mount and cat in a container;
* SlowReader: a consumer of podman's stdout that waits, then reads a little
  at a time, hashing what it gets;
* Feeder: a deterministic, non-periodic stream (block index in every block)
  written to podman's stdin, hashed as it goes;
* RssSampler: the peak VmRSS of a process, sampled while data flows;
* on_terminal: a command run by util-linux `script` on a pseudo-terminal of
  a known size that the caller controls, as a user's shell would run it.
"""

import fcntl
import hashlib
import os
import random
import re
import select
import shlex
import struct
import subprocess
import termios
import threading
import time

KiB = 1024
MiB = 1024 * KiB


def data_file(path, size, seed=None):
    """A file of `size` random bytes at path (mode 0644, so that rootless
    podman can bind-mount it); returns its sha256 hex digest.  With a seed
    the bytes are pattern_blocks(size, seed=seed), the same every time.
    Reused when it exists with the right size (the digest is kept next to
    it)."""
    sumfile = path + ".sha256"
    if (os.path.exists(path) and os.path.getsize(path) == size
            and os.path.exists(sumfile)):
        with open(sumfile) as f:
            return f.read().strip()
    h = hashlib.sha256()
    if seed is None:
        blocks = (os.urandom(min(4 * MiB, size - off))
                  for off in range(0, size, 4 * MiB))
    else:
        blocks = pattern_blocks(size, seed=seed)
    with open(path + ".tmp", "wb") as f:
        for b in blocks:
            h.update(b)
            f.write(b)
    os.chmod(path + ".tmp", 0o644)
    os.rename(path + ".tmp", path)
    with open(sumfile, "w") as f:
        f.write(h.hexdigest() + "\n")
    return h.hexdigest()


class SlowReader(threading.Thread):
    """Reads fd to EOF: nothing for `delay` seconds, then `chunk` bytes per
    read with `pause` seconds between reads (`tail_pause` once `tail_from`
    bytes were read).  .nbytes, .sha256, .reads and the monotonic times of
    the last byte (.t_last) and of EOF (.t_eof) once joined."""

    def __init__(self, fd, delay=8.0, chunk=64 * KiB, pause=0.002,
                 tail_from=None, tail_pause=None):
        super().__init__(daemon=True)
        self.fd, self.delay, self.chunk, self.pause = fd, delay, chunk, pause
        self.tail_from, self.tail_pause = tail_from, tail_pause
        self.nbytes = 0
        self.reads = 0
        self.t_last = self.t_eof = None
        self.h = hashlib.sha256()
        self.error = None

    def run(self):
        try:
            time.sleep(self.delay)
            while True:
                d = os.read(self.fd, self.chunk)
                if not d:
                    self.t_eof = time.monotonic()
                    break
                self.t_last = time.monotonic()
                self.h.update(d)
                self.nbytes += len(d)
                self.reads += 1
                if self.tail_from is not None and self.nbytes >= self.tail_from:
                    time.sleep(self.tail_pause)
                else:
                    time.sleep(self.pause)
        except Exception as e:  # reported by the caller
            self.error = e

    @property
    def sha256(self):
        return self.h.hexdigest()


class Drain(threading.Thread):
    """Reads fd to EOF at once, keeping everything (podman's stderr)."""

    def __init__(self, fd):
        super().__init__(daemon=True)
        self.fd = fd
        self.data = b""

    def run(self):
        while True:
            try:
                d = os.read(self.fd, 65536)
            except OSError:
                break
            if not d:
                break
            self.data += d


def pattern_blocks(n, block=64 * KiB, seed=13):
    """n bytes in blocks of `block`: one pseudo-random body (fixed seed),
    each block starting with its index, so that a lost, repeated or
    reordered block changes the digest."""
    body = random.Random(seed).randbytes(block)
    i = 0
    left = n
    while left:
        b = struct.pack(">Q", i) + body[8:]
        b = b[:min(left, block)]
        yield b
        left -= len(b)
        i += 1


def pattern_digest(n, algo="md5"):
    h = hashlib.new(algo)
    for b in pattern_blocks(n):
        h.update(b)
    return h.hexdigest()


class Feeder(threading.Thread):
    """Writes pattern_blocks(n) to the file object f (podman's stdin) and
    closes it; .sent bytes, .digest of what was sent, .error if a write
    failed (podman gone)."""

    def __init__(self, f, n, algo="md5"):
        super().__init__(daemon=True)
        self.f, self.n = f, n
        self.h = hashlib.new(algo)
        self.sent = 0
        self.error = None

    def run(self):
        try:
            for b in pattern_blocks(self.n):
                self.f.write(b)
                self.h.update(b)
                self.sent += len(b)
            self.f.close()
        except Exception as e:
            self.error = e
            try:
                self.f.close()
            except Exception:
                pass

    @property
    def digest(self):
        return self.h.hexdigest()

    def held(self, wait, settle=0.5):
        """After `wait` s: (bytes sent by then, whether no more was sent in
        the next `settle` s), for a container that reads nothing."""
        time.sleep(wait)
        a = self.sent
        time.sleep(settle)
        return a, self.sent == a


def vmrss_kib(pid):
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


class RssSampler(threading.Thread):
    """Samples /proc/PID/status VmRSS every `interval` s until stop() or the
    process is gone (or a zombie, which has no VmRSS); .peak_kib, .samples."""

    def __init__(self, pid, interval=0.02):
        super().__init__(daemon=True)
        self.pid, self.interval = pid, interval
        self.peak_kib = 0
        self.samples = 0
        self._done = threading.Event()

    def run(self):
        while not self._done.is_set():
            v = vmrss_kib(self.pid)
            if v is None:
                break
            self.samples += 1
            self.peak_kib = max(self.peak_kib, v)
            self._done.wait(self.interval)

    def stop(self):
        self._done.set()
        self.join(10)


def set_winsize(fd, rows, cols):
    fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))


class Terminal:
    """`script -qec CMD /dev/null` on a pseudo-terminal of rows x cols whose
    master the test holds: script gives the command a pty of its own with
    that size, as a terminal emulator and a shell would.  Anything typed
    is written to the master."""

    def __init__(self, argv, env, rows=33, cols=101):
        self.master, slave = os.openpty()
        set_winsize(self.master, rows, cols)
        cmd = shlex.join(argv)
        self.p = subprocess.Popen(["script", "-qec", cmd, "/dev/null"],
                                  stdin=slave, stdout=slave, stderr=slave,
                                  env=dict(env, SHELL="/bin/sh"),
                                  start_new_session=True, close_fds=True)
        os.close(slave)
        self.buf = b""
        self.eof = False

    def type(self, data):
        os.write(self.master, data)

    def pump(self, timeout):
        r, _, _ = select.select([self.master], [], [], timeout)
        if not r:
            return
        try:
            d = os.read(self.master, 65536)
        except OSError:  # EIO: no slave fd left
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

    def finish(self, timeout=60):
        """Read to EOF, reap script; returns (rc, everything read)."""
        deadline = time.monotonic() + timeout
        while not self.eof and time.monotonic() < deadline:
            self.pump(0.2)
        try:
            rc = self.p.wait(timeout=max(1, deadline - time.monotonic()))
        finally:
            self.close()
        return rc, self.buf

    def close(self):
        if self.p.poll() is None:
            self.p.kill()
            self.p.wait()
        if self.master is not None:
            os.close(self.master)
            self.master = None


SIZE_RE = re.compile(rb"^(\d+) (\d+)\r*$", re.M)


def sizes(buf):
    """The `stty size` answers on a terminal, as (rows, cols) tuples."""
    return [(int(a), int(b)) for a, b in SIZE_RE.findall(buf)]
