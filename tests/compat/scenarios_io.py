"""The interactive podman scenarios, run against both monitors: logs -f,
the passthrough log driver, stdin, terminals and resizes, attach and detach
keys, every form of exec, and --sdnotify.  Registered like scenarios.py.

Terminal scenarios give podman a real pseudo-terminal (os.openpty) as its
stdio and read what podman writes to it.  Detach keys are only typed once
podman put the terminal in raw mode: before that the line discipline would
swallow ctrl-q (IXON) and buffer ctrl-p.
"""

import fcntl
import os
import re
import select
import struct
import subprocess
import termios
import time

from compat import (HEX64, IMAGE, LEAKED_FIFOS, Fix, blob, scenario,
                    stop_if_running, wait_until)
from scenarios import gated, logs, run_d, state, wait_logs
from notifysock import NotifySocket  # tests/podman, on the path by compat
from slowio import (MiB, Drain, Feeder, RssSampler, SlowReader, Terminal,  # ditto
                    data_file, sizes)

ALL = True   # every scenario here also runs rootless (see each decorator)


# -- helpers ------------------------------------------------------------------

class Pty:
    """A pseudo-terminal whose slave side is podman's stdio; the test reads
    and types on the master side."""

    def __init__(self, rows=24, cols=80):
        self.master, self.slave = os.openpty()
        self.resize(rows, cols)
        os.set_blocking(self.master, False)
        self.buf = b""

    def resize(self, rows, cols):
        fcntl.ioctl(self.master, termios.TIOCSWINSZ,
                    struct.pack("HHHH", rows, cols, 0, 0))

    def popen(self, w, *args):
        """podman ARGS in a new session whose controlling terminal is this
        one (setsid -c), as in a shell: a resize makes the kernel send
        SIGWINCH to podman's process group, which for rootless podman also
        holds the podman re-executed inside the user namespace."""
        return subprocess.Popen(["setsid", "-c", *w.argv(*args)], env=w.env,
                                stdin=self.slave, stdout=self.slave,
                                stderr=self.slave, close_fds=True)

    def pump(self, timeout):
        r, _, _ = select.select([self.master], [], [], timeout)
        if not r:
            return False
        try:
            d = os.read(self.master, 65536)
        except (BlockingIOError, OSError):  # EIO: no slave left
            return False
        self.buf += d
        return bool(d)

    def wait_for(self, want, timeout=30):
        deadline = time.monotonic() + timeout
        while want not in self.buf:
            if time.monotonic() > deadline:
                raise AssertionError(f"waiting for {want!r} on the terminal: "
                                     f"got {self.buf!r}")
            self.pump(0.1)

    def raw(self):
        """True once podman put the terminal in raw mode."""
        return not termios.tcgetattr(self.slave)[3] & termios.ICANON

    def type(self, data):
        wait_until(self.raw, 30, what="podman to put the terminal in raw mode")
        os.write(self.master, data)

    def pending(self):
        """Bytes typed that podman has not read yet."""
        return struct.unpack("i", fcntl.ioctl(self.slave, termios.FIONREAD,
                                              b"\0" * 4))[0]

    def type_keys(self, keys):
        """Type a detach key sequence one key per read: podman (CopyDetachable)
        only recognises a key that arrives alone in its read, so each key
        waits until podman consumed the one before.  A byte written to the
        master reaches the slave's input queue a moment later (the kernel's
        flip-buffer work), so "consumed" is: seen in the queue, then gone;
        or never seen within half a second because podman took it at once."""
        for k in keys:
            self.type(bytes([k]))
            try:
                wait_until(lambda: self.pending() > 0, 0.5, interval=0.001)
            except AssertionError:
                continue
            wait_until(lambda: self.pending() == 0, 30, interval=0.001,
                       what=f"podman to read key {k:#x}")

    def drain(self):
        """Everything podman wrote: called once podman exited, so all of it
        is already in the terminal's buffer."""
        while self.pump(0):
            pass
        return self.buf

    def close(self):
        os.close(self.master)
        os.close(self.slave)


def finish(p, timeout=60):
    try:
        p.wait(timeout=timeout)
    finally:
        stop_if_running(p)
    return p.returncode


def no_ids(data):
    return HEX64.sub(b"<id>", data)


def podman_text(w, data):
    """podman's messages with what differs between two worlds replaced: ids,
    the world's directory and logrus' elapsed-seconds stamp."""
    data = no_ids(data).replace(w.base.encode(), b"<world>")
    # podman resizes the terminal from a goroutine of its own: when that
    # runs just after the container exited, podman prints this line, with
    # either monitor, depending on timing alone.
    data = re.sub(rb"(\x1b\[31m)?ERRO(\x1b\[0m)?\[\d+\] container not running"
                  rb" *\r?\n", b"", data)
    return re.sub(rb"(ERRO|WARN|INFO)(\x1b\[0m)?\[\d+\]", rb"\1\2[<t>]", data)


# -- logs -f and the passthrough driver --------------------------------------

def read_until(p, want_out, want_err=b"", timeout=60):
    """Read podman's stdout and stderr until they end with want_out and
    want_err; returns (stdout, stderr) read so far."""
    got = {p.stdout: b"", p.stderr: b""}
    want = {p.stdout: want_out, p.stderr: want_err}
    deadline = time.monotonic() + timeout
    while not all(got[f].endswith(want[f]) for f in got):
        if time.monotonic() > deadline:
            raise AssertionError(f"waiting for {want_out!r}/{want_err!r} from "
                                 f"podman: got {blob(got[p.stdout])!r}/"
                                 f"{blob(got[p.stderr])!r}")
        for f in select.select(list(got), [], [], 0.2)[0]:
            d = os.read(f.fileno(), 65536)
            if not d:
                raise AssertionError(f"podman closed a stream early: got "
                                     f"{blob(got[p.stdout])!r}/"
                                     f"{blob(got[p.stderr])!r}")
            got[f] += d
    return got[p.stdout], got[p.stderr]


@scenario("logs -f: follow until exit", fixes={"files-exited": LEAKED_FIFOS},
          rootless=ALL)
def s_logs_follow(w, o):
    # Every line is seen by the follower before the container goes on, and
    # the container exits without writing after the last line the follower
    # saw: podman 4.3's tail library (nxadm/tail, sendLine) drops random
    # lines still unsent when podman stops it at the container's exit, with
    # either monitor; later nxadm/tail releases fixed that.  For the same
    # reason `podman logs -f` of an exited container is not compared: it
    # stops the tail at once and loses lines under load.
    n = o.name()
    g = w.gate()
    run_d(w, o, n, "sh", "-c", "echo one; echo e-one >&2; " + g.wait_cmd(
        "go", "seq 2 3000; echo e-two >&2; echo last; "
        + g.wait_cmd("exit", "exit 4")), args=g.volume)
    wait_logs(w, n, b"one\n")
    p = w.popen("logs", "-f", n)
    try:
        out1, err1 = read_until(p, b"one\n", b"e-one\n")
        g.open()
        out2, err2 = read_until(p, b"3000\nlast\n", b"e-two\n")
        g.open("exit")
        out, err = p.communicate(timeout=60)
    finally:
        stop_if_running(p)
    o.rc_out_err("logs-f", (p.returncode, out1 + out2 + out, err1 + err2 + err))
    o.rc_out_err("wait", w.podman("wait", n))
    logs(w, o, "logs", n)
    state(w, o, n)


@scenario("log driver passthrough: stdio pipes", rootless=ALL,
          fixes={"files-exited": LEAKED_FIFOS})
def s_passthrough(w, o):
    n = gated(w, o, "run", ["-i", "--log-driver", "passthrough"],
              "cat; echo out; echo err >&2; printf 'no-nl'; exit 2",
              input=b"in\x00\xffput\nno-newline")
    state(w, o, n)
    logs(w, o, "logs", n)


# -- stdin and terminals -------------------------------------------------------

@scenario("run -i: piped stdin to EOF", fixes={"files-exited": LEAKED_FIFOS},
          rootless=ALL)
def s_run_i(w, o):
    data = bytes(range(256)) * 800 + b"last line, no newline"
    gated(w, o, "run", ["-i"], "cat; echo; echo eof-seen; exit 3", input=data)
    # without -i the container's stdin is empty
    n2 = o.name("no-i")
    gated(w, o, "run-no-i", [], "cat; echo eof-seen", name=n2, input=b"ignored")


@scenario("run -it on a terminal, resized", fixes={"files-exited": LEAKED_FIFOS},
          rootless=ALL)
def s_run_it_resize(w, o):
    t = Pty(30, 100)
    n = o.name()
    # The container prints its size, then polls until it changes and prints
    # it again.  It lingers a second before exiting: podman turns one
    # SIGWINCH into more than one resize, and logs an error to the terminal
    # if the container is gone by the last one (with either monitor).
    script = ('stty size; i=0; while [ "$(stty size)" = "30 100" ] && '
              '[ $i -lt 500 ]; do usleep 20000; i=$((i+1)); done; stty size; '
              'sleep 1; exit 3')
    p = t.popen(w, "run", "-it", "--name", n, IMAGE, "sh", "-c", script)
    try:
        t.wait_for(b"30 100\r\n")
        w.verify_monitor(n)
        # the kernel tells podman (SIGWINCH): the pty is its terminal
        t.resize(40, 120)
        t.wait_for(b"40 120\r\n")
        o["run.rc"] = finish(p)
        o["terminal"] = podman_text(w, t.drain())
    finally:
        stop_if_running(p)
        t.close()
    state(w, o, n)
    logs(w, o, "logs", n)


def attach_and_detach(w, o, key, t, args, keys):
    """Run `podman ARGS` on terminal t, type a line, expect the container's
    answer, type the detach keys; records what the terminal showed and
    podman's exit code."""
    p = t.popen(w, *args)
    try:
        t.type(b"hello\r")
        t.wait_for(b"got:hello\r\n")
        t.type_keys(keys)
        o[key + ".rc"] = finish(p)
        o[key + ".terminal"] = podman_text(w, t.drain())
    finally:
        stop_if_running(p)


ECHO_LOOP = "echo ready; while read l; do echo got:$l; done; echo stdin-closed"


@scenario("attach: default and custom detach keys",
          fixes={"files-exited": LEAKED_FIFOS}, rootless=ALL)
def s_attach_detach(w, o):
    n = o.name()
    run_d(w, o, n, "sh", "-c", ECHO_LOOP, args=["-it"])
    wait_logs(w, n, b"ready\r\n")
    t = Pty()
    try:
        attach_and_detach(w, o, "attach", t, ("attach", n), b"\x10\x11")
        state(w, o, n)
        t.buf = b""
        attach_and_detach(w, o, "attach-custom", t,
                          ("attach", "--detach-keys", "ctrl-x,y", n), b"\x18y")
        state(w, o, n)
    finally:
        t.close()
    w.verify_monitor(n)
    logs(w, o, "logs", n)
    o.rc_out_err("stop", w.podman("stop", "-t", "0", n))
    state(w, o, n)


@scenario("run -it --detach-keys, then attach", rootless=ALL,
          fixes={"files-exited": LEAKED_FIFOS})
def s_run_it_detach(w, o):
    n = o.name()
    t = Pty()
    try:
        p = t.popen(w, "run", "-it", "--detach-keys", "ctrl-a,b", "--name", n,
                    IMAGE, "sh", "-c", ECHO_LOOP)
        try:
            t.wait_for(b"ready\r\n")
            w.verify_monitor(n)
            t.type(b"hello\r")
            t.wait_for(b"got:hello\r\n")
            t.type_keys(b"\x01b")
            o["run.rc"] = finish(p)
            o["run.terminal"] = podman_text(w, t.drain())
        finally:
            stop_if_running(p)
        state(w, o, n)
        # attach again and end the container with ctrl-d: podman attach
        # returns the container's exit code.
        t.buf = b""
        p = t.popen(w, "attach", n)
        try:
            t.type(b"again\r")
            t.wait_for(b"got:again\r\n")
            t.type(b"\x04")
            o["attach.rc"] = finish(p)
            o["attach.terminal"] = podman_text(w, t.drain())
        finally:
            stop_if_running(p)
    finally:
        t.close()
    o.rc_out_err("wait", w.podman("wait", n))
    state(w, o, n)


# -- exec ----------------------------------------------------------------------

@scenario("exec -t -d -e -w -u and exec -it --detach-keys",
          fixes={"files-exited": LEAKED_FIFOS}, rootless=ALL)
def s_exec_forms(w, o):
    n = o.name()
    run_d(w, o, n, "sleep", "1000")
    o.rc_out_err("exec-t", w.podman("exec", "-t", n, "sh", "-c",
                                    "echo a; [ -t 1 ] && echo tty; exit 5"))
    o.rc_out_err("exec-e", w.podman("exec", "-e", "FOO=bar baz", "-e", "EMPTY=",
                                    n, "sh", "-c", 'echo "$FOO|$EMPTY|"'))
    o.rc_out_err("exec-w", w.podman("exec", "-w", "/tmp", n, "pwd"))
    o.rc_out_err("exec-w-missing", w.podman("exec", "-w", "/nonexistent", n, "pwd"))
    o.rc_out_err("exec-u", w.podman("exec", "-u", "65534:65534", n, "id"))
    o.rc_out_err("exec-u-name", w.podman("exec", "-u", "nobody", n, "id", "-un"))
    rc, out, err = w.podman("exec", "-d", n, "sh", "-c",
                            "echo detached-ok > /tmp/exec-d; sleep 1")
    o.rc_out_err("exec-d", (rc, no_ids(out), err))
    o["exec-d.id-printed"] = bool(HEX64.fullmatch(out.strip()))
    wait_until(lambda: w.podman("exec", n, "cat", "/tmp/exec-d")[1]
               == b"detached-ok\n", 30, what="the detached exec's file")
    t = Pty()
    try:
        p = t.popen(w, "exec", "-it", "--detach-keys", "ctrl-x,y", n, "sh", "-c",
                    ECHO_LOOP)
        try:
            t.wait_for(b"ready\r\n")
            t.type(b"hello\r")
            t.wait_for(b"got:hello\r\n")
            t.type_keys(b"\x18y")
            o["exec-it-detach.rc"] = finish(p)
            o["exec-it-detach.terminal"] = podman_text(w, t.drain())
        finally:
            stop_if_running(p)
    finally:
        t.close()
    # the detached exec session goes on, under an exec monitor of this world
    # compared: that the session goes on under this world's monitor; how
    # many exec monitors are alive at this moment is timing (the exec -d
    # one may still be ending: CI saw 2 with ctrmon, 1 with conmon) and
    # only noted.
    mons = w.settled_exec_monitors(n)
    o["exec monitors after detach"] = sorted({
        exe == w.monitor_real for _, exe in mons})
    o.notes["exec monitors alive after detach"] = len(mons)
    o.rc_out_err("ps", w.podman("exec", n, "sh", "-c",
                                "ps -o args | grep -c '^sh -c echo ready'"))
    o.rc_out_err("stop", w.podman("stop", "-t", "0", n))
    wait_until(lambda: not w.exec_monitors(n), 30,
               what="the exec monitors to exit with the container")
    state(w, o, n)


# -- --sdnotify -----------------------------------------------------------------

NOTIFIER_C = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                          "podman", "notify-helper.c")

def notifier(w):
    """A static sd_notify client built at test time (busybox has none that
    speaks unix datagrams), shared by the world's scenarios."""
    exe = os.path.join(w.scratch, "notify")
    if not os.path.exists(exe):
        p = subprocess.run(["gcc", "-static", "-Os", "-o", exe + ".tmp", NOTIFIER_C],
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                           timeout=120)
        assert p.returncode == 0, f"cannot build the notifier: {p.stdout!r}"
        os.rename(exe + ".tmp", exe)
    return exe


def notify_socket(w, name):
    """A NOTIFY_SOCKET for podman in world w (owned by its test user when
    rootless)."""
    owner = (w.uid, w.gid) if hasattr(w, "uid") else None
    return NotifySocket(os.path.join(w.scratch, f"{name}.sock"), owner)


def wait_notified(s, want, timeout=30):
    """Until one datagram has `want` among its lines."""
    s.wait_until(lambda got: any(want in d.split(b"\n") for _, d in got),
                 timeout, repr(want))


def notify_received(s, who):
    """The datagrams, pids replaced by what they are: who maps pid to a role
    ('monitor', 'container', 'podman')."""
    def role(pid):
        return who.get(pid, "other")
    out = []
    for pid, d in s.got:
        d = re.sub(rb"MAINPID=(\d+)",
                   lambda m: b"MAINPID=<" + role(int(m.group(1))).encode()
                   + b">", d)
        out.append(f"from {role(pid)}: {d!r}")
    return tuple(out)


@scenario("--sdnotify=conmon: MAINPID and READY", rootless=ALL,
          fixes={"files-exited": LEAKED_FIFOS})
def s_sdnotify_conmon(w, o):
    n = o.name()
    s = notify_socket(w, n)
    try:
        p = w.popen("run", "-d", "--name", n, "--sdnotify=conmon", IMAGE,
                    "sleep", "1000", env=dict(w.env, NOTIFY_SOCKET=s.path))
        out, err = p.communicate(timeout=60)
        o.rc_out_err("run", (p.returncode, no_ids(out), err))
        info = w.verify_monitor(n)
        wait_notified(s, b"READY=1")
        s.drain()
        o["notify"] = notify_received(s, {info.conmon_pid: "monitor",
                                  info.ctr_pid: "container", p.pid: "podman"})
    finally:
        s.close()
    o.rc_out_err("stop", w.podman("stop", "-t", "0", n))


@scenario("--sdnotify=container: READY relayed by the monitor", rootless=ALL,
          fixes={"files-exited": LEAKED_FIFOS})
def s_sdnotify_container(w, o):
    exe = notifier(w)
    n = o.name()
    g = w.gate()
    s = notify_socket(w, n)
    try:
        p = w.popen("run", "-d", "--name", n, "--sdnotify=container", *g.volume,
                    "-v", f"{exe}:/notify:ro", IMAGE, "sh", "-c",
                    g.wait_cmd("go", "/notify READY=1; echo sent:$?; "
                               "sleep 1000"),
                    env=dict(w.env, NOTIFY_SOCKET=s.path))
        try:
            info = w.verify_monitor(n)
            g.open()
            wait_notified(s, b"READY=1")
            out, err = p.communicate(timeout=60)
        finally:
            stop_if_running(p)
        o.rc_out_err("run", (p.returncode, no_ids(out), err))
        wait_logs(w, n, b"sent:0\n")
        s.drain()
        o["notify"] = notify_received(s, {info.conmon_pid: "monitor",
                                  info.ctr_pid: "container", p.pid: "podman"})
    finally:
        s.close()
    o.rc_out_err("stop", w.podman("stop", "-t", "0", n))
    state(w, o, n)


# -- back-pressure: slow consumers, big stdin, the caller's terminal size ------
# The podman suite's test_backpressure.py, compared between the monitors
# (helpers in tests/podman/slowio.py).

BP_OUT = 100_000_000       # bytes cat'ed to a slow consumer
# bytes piped into a container that first reads nothing: 500 MB keeps the
# scenario near 20 s per world pair on the 2-core VM (2 GB took 80-100 s
# under load); COMPAT_BP_STDIN=2000000000 runs the podman suite's size.
BP_IN = int(os.environ.get("COMPAT_BP_STDIN", "500000000"))
BP_HOLD = 2                # seconds the container reads no stdin
BP_RSS_LIMIT_KIB = 16 * 1024
BP_HELD = 64 * MiB         # podman sent less than this while nothing read
SMALL_RSS = Fix(True, "ctrmon bounds the container's stdin queue (~1 MiB) "
                "and then stops reading podman: its RSS stays below 16 MiB")


def bp_data(w):
    """(path, sha256) of BP_OUT pattern bytes in the world's scratch dir:
    the same bytes in every world."""
    path = os.path.join(w.scratch, "bp-data")
    return path, data_file(path, BP_OUT, seed=7)


def bp_slow_consume(o, key, p, sha):
    """podman's stdout to a consumer that reads nothing for 3 s, then 64 KiB
    every 2 ms; records KEY.rc, the bytes it got, whether they are the
    file, and podman's stderr."""
    r, e = SlowReader(p.stdout.fileno(), delay=3), Drain(p.stderr.fileno())
    r.start()
    e.start()
    r.join(180)
    e.join(30)
    o[key + ".rc"] = finish(p, 60)
    o[key + ".bytes"] = r.nbytes
    o[key + ".sha256 is the file's"] = r.sha256 == sha
    o[key + ".err"] = blob(e.data)


@scenario("backpressure: slow consumer of run and exec output",
          fixes={"files-exited": LEAKED_FIFOS}, rootless=ALL)
def s_bp_slow_consumer(w, o):
    path, sha = bp_data(w)
    vol = ["-v", f"{path}:/data:ro"]
    g = w.gate()
    n = o.name("run")
    p = w.popen("run", "--name", n, *g.volume, *vol, IMAGE, "sh", "-c",
                g.wait_cmd("go", "cat /data"))
    try:
        w.verify_monitor(n)
        g.open()
        bp_slow_consume(o, "run", p, sha)
    finally:
        stop_if_running(p)
    state(w, o, n)
    n = o.name("exec")
    run_d(w, o, n, "sleep", "1000", args=vol)
    # exec has no log: the attach socket carries the only copy
    p = w.popen("exec", n, "cat", "/data")
    try:
        bp_slow_consume(o, "exec", p, sha)
    finally:
        stop_if_running(p)
    o.rc_out_err("stop", w.podman("stop", "-t", "0", n))


def bp_feed(w, o, key, p, gate, monitor_pid):
    """BP_IN pattern bytes into podman's stdin while the container waits at
    gate/read, which opens once podman is held; then the container md5sums
    its stdin.  Records KEY.rc/.out/.err, whether podman was held while
    nothing read and whether the monitor's peak RSS (sampled throughout)
    stayed below 16 MiB; the peak itself and the bytes sent before the gate
    opened are notes."""
    f = Feeder(p.stdin, BP_IN)
    out, err = Drain(p.stdout.fileno()), Drain(p.stderr.fileno())
    f.start()
    out.start()
    err.start()
    s = RssSampler(monitor_pid())
    s.start()
    sent, stalled = f.held(BP_HOLD)
    gate.open("read")
    for t in (f, out, err):
        t.join(240)
    s.stop()
    o[key + ".rc"] = finish(p, 60)
    o[key + ".out"] = out.data
    o[key + ".err"] = blob(err.data)
    o[key + ".md5 of what was sent"] = f"{f.digest}  -\n".encode()
    o[key + ".sent"] = f.sent if f.error is None else f"{f.sent} {f.error!r}"
    o[key + ".held while nothing read"] = stalled and sent < BP_HELD
    o[key + ".monitor RSS < 16 MiB"] = 0 < s.peak_kib < BP_RSS_LIMIT_KIB
    o.notes[key + " monitor peak VmRSS"] = f"{s.peak_kib} kB ({s.samples} samples)"
    o.notes[key + " sent while nothing read"] = sent


@scenario("backpressure: big stdin into exec -i and run -i",
          fixes={"files-exited": LEAKED_FIFOS,
                 "exec-i.monitor RSS < 16 MiB": SMALL_RSS,
                 "run-i.monitor RSS < 16 MiB": SMALL_RSS}, rootless=ALL)
def s_bp_big_stdin(w, o):
    g = w.gate()
    reader = g.wait_cmd("read", "md5sum")
    n = o.name()
    run_d(w, o, n, "sleep", "1000", args=g.volume)

    def exec_monitor():
        mons = wait_until(lambda: w.exec_monitors(n), 30, what="the exec monitor")
        o["exec monitor is the world's"] = [e == w.monitor_real for _, e in mons]
        return mons[0][0]
    p = w.popen("exec", "-i", n, "sh", "-c", reader, stdin=subprocess.PIPE)
    try:
        bp_feed(w, o, "exec-i", p, g, exec_monitor)
    finally:
        stop_if_running(p)
    o.rc_out_err("stop", w.podman("stop", "-t", "0", n))
    g = w.gate()
    n = o.name("run")
    p = w.popen("run", "-i", "--name", n, *g.volume, IMAGE, "sh", "-c",
                g.wait_cmd("read", "md5sum"), stdin=subprocess.PIPE)
    try:
        bp_feed(w, o, "run-i", p, g, lambda: w.verify_monitor(n).conmon_pid)
    finally:
        stop_if_running(p)
    state(w, o, n)


def bp_terminal(w, o, key, args, then=None):
    """podman ARGS under `script` on a 33x101 terminal (slowio.Terminal);
    `then(t)` drives it; records KEY.rc and the sizes `stty size` printed."""
    t = Terminal(w.argv(*args), w.env, 33, 101)
    try:
        if then:
            then(t)
        rc, buf = t.finish(60)
    finally:
        t.close()
    o[key + ".rc"] = rc
    o[key + ".stty size"] = stty_result(buf)
    return buf


# Two races outside ctrmon's reach. The runtime starts the process right
# after it hands the monitor the pty, without waiting for a size: conmon
# 2.1.6 applies podman's first size later and loses about 1 in 15 under
# load (`stty size` says 0 0 or fails); ctrmon applies it the moment the
# pty arrives. And with either monitor, about 1 exec in 40 on the loaded
# 2-core VM (December, tried 40 times each), the exec'd `stty size` fails
# with "stty: standard input" and exit code 0 from podman: its terminal is
# not usable yet. A failed stty is accepted for both; anything else (no
# output at all, another size) is not.
SIZE_RACE = "the runtime starts the process without waiting for the size"
RACE_LOST = "stty ran before the pty had a size (the runtime's race)"


def stty_result(buf):
    got = sizes(buf)
    if got:
        return got
    if b"stty: " in buf:
        return RACE_LOST
    return []  # no stty output at all (or none asked for: exec-it-early)


@scenario("backpressure: caller's size for exec -it, run -it, start -ai",
          fixes={"files-exited": LEAKED_FIFOS,
                 "exec-it.rc": Fix(0, SIZE_RACE),
                 "exec-it.stty size": Fix([(33, 101)], SIZE_RACE, also=(RACE_LOST,)),
                 "run-it.stty size": Fix([(33, 101)], SIZE_RACE, also=(RACE_LOST,)),
                 "start-ai.stty size": Fix([(33, 101)], SIZE_RACE, also=(RACE_LOST,)),
                 "exec-it early input answered": Fix(True, "ctrmon keeps input "
                                                     "sent before the pty exists")},
          rootless=ALL)
def s_bp_terminal_size(w, o):
    n = o.name()
    run_d(w, o, n, "sleep", "1000")
    bp_terminal(w, o, "exec-it", ("exec", "-it", n, "stty", "size"))

    # typed the moment podman starts: podman forwards it once attached,
    # before the runtime handed the exec monitor the pty
    def early_input(t):
        t.type(b"echo hi-$((40+2))\r")
        try:
            t.wait_for(lambda b: b"hi-42\r\n" in b, 20, "the answer")
            o["exec-it early input answered"] = True
        except AssertionError:
            o["exec-it early input answered"] = False
        t.type(b"exit 3\r")
    bp_terminal(w, o, "exec-it-early", ("exec", "-it", n, "sh"), early_input)
    o.rc_out_err("stop", w.podman("stop", "-t", "0", n))

    for key, create in (("run-it", False), ("start-ai", True)):
        g = w.gate()
        n = o.name(key)
        cmd = ["--name", n, *g.volume, IMAGE, "sh", "-c",
               "stty size; " + g.wait_cmd("go", "exit 4")]

        def verify(t, n=n, g=g):
            t.wait_for(lambda b: sizes(b) or b"stty: " in b, 30, "stty size")
            w.verify_monitor(n)
            g.open()
        if create:
            o.rc_out_err("create", w.podman("create", "-it", *cmd)[:1] + (b"", b""))
            bp_terminal(w, o, key, ("start", "-ai", n), verify)
        else:
            bp_terminal(w, o, key, ("run", "-it", *cmd), verify)
        state(w, o, n)
