"""Lossless attach with back-pressure, as a podman user sees it:

* a slow consumer of `podman run` / `podman exec` output gets every byte of
  100 MB (the monitor holds the container once the client is 4 MiB behind,
  instead of dropping the client);
* 2 GB piped into `podman exec -i` / `podman run -i` of a container that
  reads nothing for a while all arrives, in order, while the monitor's
  memory stays small (its stdin queue is bounded; it stops reading podman);
* `podman exec -it`, `run -it` and `start -ai` start with the caller's
  terminal size (exec -it writes it to the ctl FIFO before the runtime made
  the pty);
* input typed before the container's pty exists reaches the shell.

Terminal tests run podman under util-linux `script` on a pseudo-terminal of
a known size (slowio.Terminal), as from an interactive shell."""

import os
import subprocess
import time

import pytest

from podmanworld import IMAGE, wait_until
from slowio import (MiB, Drain, Feeder, RssSampler, SlowReader, Terminal,
                    data_file, sizes)

OUT_SIZE = 100_000_000          # bytes a container writes to a slow consumer
IN_SIZE = 2_000_000_000         # bytes piped into a container's stdin
RSS_LIMIT_KIB = 16 * 1024       # the monitor's VmRSS must stay below 16 MiB
HOLD = 3                        # s the container reads no stdin
ROWS, COLS = 33, 101


def _is_conmon_216():
    try:
        p = subprocess.run([os.environ.get("CTRMON_BIN", "/nonexistent"),
                            "--version"], stdout=subprocess.PIPE,
                           stderr=subprocess.DEVNULL, timeout=10)
    except OSError:
        return False
    return p.stdout.startswith(b"conmon version 2.1.6\n")


# Seen with Debian's conmon 2.1.6 on 2026-12-07, about 1 run in 15 on the
# loaded 2-core VM (run -it and start -ai): the container's first
# `stty size` fails ("stty: standard input", size 0 0): conmon applied the
# size podman sent only after the container had read it.
conmon_216_size_race = pytest.mark.xfail(
    _is_conmon_216(), strict=False,
    reason="conmon 2.1.6 sometimes applies the initial terminal size late")


@pytest.fixture(scope="module")
def data(world):
    """(host path, sha256) of OUT_SIZE random bytes."""
    d = os.path.join(world.scratch, "backpressure")
    os.makedirs(d, exist_ok=True)
    path = os.path.join(d, "data")
    return path, data_file(path, OUT_SIZE)


@pytest.fixture
def ctr(pw, data):
    """A running container with the data file at /data and a gate."""
    g = pw.gate()
    name = pw.name("bp")
    pw.ok("run", "-d", "--name", name, *g.volume, "-v", f"{data[0]}:/data:ro",
          IMAGE, "sleep", "1000")
    info = pw.verify_monitor(name)
    return name, g, info


def slow_consume(p):
    """podman's stdout read by a SlowReader (8 s of nothing, then 64 KiB
    every 2 ms), its stderr drained; returns both threads, started."""
    r = SlowReader(p.stdout.fileno())
    e = Drain(p.stderr.fileno())
    r.start()
    e.start()
    return r, e


def finish(p, threads, timeout):
    deadline = time.monotonic() + timeout
    try:
        for t in threads:
            t.join(max(0.1, deadline - time.monotonic()))
        rc = p.wait(timeout=max(0.1, deadline - time.monotonic()))
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    for t in threads:
        assert not t.is_alive(), f"{t} still running after {timeout}s"
    return rc


# -- a slow consumer of the output ---------------------------------------------

def test_run_output_to_a_slow_consumer_is_complete(pw, data):
    path, sha = data
    g = pw.gate()
    name = pw.name()
    p = pw.popen("run", "--rm", "--name", name, *g.volume,
                 "-v", f"{path}:/data:ro", IMAGE, "sh", "-c",
                 g.wait_cmd("go", "cat /data"))
    try:
        info = pw.verify_monitor(name)
        r, e = slow_consume(p)
        g.open()
        rc = finish(p, (r, e), 180)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    assert r.error is None, r.error
    assert (rc, e.data) == (0, b"")
    assert r.nbytes == OUT_SIZE
    assert r.sha256 == sha
    pw.assert_monitor_gone(info)


def test_exec_output_to_a_slow_consumer_is_complete(pw, data, ctr):
    # exec has no log: the attach socket carries the only copy of its output
    name, _, _ = ctr
    p = pw.popen("exec", name, "cat", "/data")
    r, e = slow_consume(p)
    rc = finish(p, (r, e), 180)
    assert r.error is None, r.error
    assert (rc, e.data) == (0, b"")
    assert r.nbytes == OUT_SIZE
    assert r.sha256 == data[1]


# Seen on 2026-12-07 with ctrmon before the fix, every time: the exec
# monitor exited while up to 4 MiB of output still sat in the attach
# socket (ctrmon raises SO_SNDBUF to 4 MiB; it waited only for its own
# queue).  Its exit command, `podman container cleanup --exec`, removed
# the exec session's exit file before podman, still writing that output to
# the slow consumer, read it: podman polls for the file for 5 s
# (readExecExitCode, WaitForFile(..., 5s)), then takes the exit code from
# its database.  Nothing was lost; podman exec just ended 5 s late.  Now
# the monitor runs the exit command once the socket is read
# (lifecycle_linger_for_sockets).
def test_exec_to_a_consumer_slow_at_the_end_returns_with_the_last_byte(pw, data, ctr):
    name, _, _ = ctr
    p = pw.popen("exec", name, "sh", "-c", "cat /data; exit 7")
    # 1 s of nothing (the monitor's queue and socket fill up), fast, then
    # 64 KiB every 20 ms over the last 8 MiB
    r = SlowReader(p.stdout.fileno(), delay=1, tail_from=OUT_SIZE - 8 * MiB,
                   tail_pause=0.02)
    e = Drain(p.stderr.fileno())
    r.start()
    e.start()
    rc = finish(p, (r, e), 120)
    assert r.error is None, r.error
    assert (rc, e.data, r.nbytes) == (7, b"", OUT_SIZE)
    assert r.sha256 == data[1]
    late = r.t_eof - r.t_last
    assert late < 2, f"podman exec ended {late:.1f} s after the last byte"


# -- 2 GB into stdin ------------------------------------------------------------

def feed_and_sample(p, gate, monitor_pid_of, what):
    """Feed IN_SIZE bytes to podman's stdin while the container reads
    nothing (it waits at `gate`), open the gate once podman is held, and
    let the container md5sum it all; samples the monitor's RSS throughout.
    Returns (rc, stdout, stderr, feeder, sampler, (sent, held))."""
    f = Feeder(p.stdin, IN_SIZE)
    out, err = Drain(p.stdout.fileno()), Drain(p.stderr.fileno())
    try:
        f.start()
        out.start()
        err.start()
        s = RssSampler(monitor_pid_of())
        s.start()
        t0 = time.monotonic()
        held = f.held(HOLD)
        gate.open("read")
        rc = finish(p, (f, out, err), 240)
        s.stop()
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    assert f.error is None, f"{what}: writing stdin failed after {f.sent} bytes: {f.error!r}"
    assert s.samples >= (time.monotonic() - t0) / 0.1, \
        f"{what}: only {s.samples} RSS samples"
    return rc, out.data, err.data, f, s, held


def check_fed(what, rc, out, err, f, s, held):
    assert (rc, err) == (0, b""), what
    assert out == f"{f.digest}  -\n".encode(), what
    assert f.sent == IN_SIZE, what
    assert s.peak_kib < RSS_LIMIT_KIB, \
        f"{what}: monitor peak VmRSS {s.peak_kib} kB ({held[0]} bytes sent early)"
    assert held[1] and held[0] < 64 * MiB, \
        f"{what}: podman was not held: {held[0]} bytes sent, still sending: {not held[1]}"


def test_exec_i_2gb_stdin_arrives_whole_and_the_monitor_stays_small(pw, ctr):
    name, g, _ = ctr
    p = pw.popen("exec", "-i", name, "sh", "-c", g.wait_cmd("read", "md5sum"),
                 stdin=subprocess.PIPE)

    def exec_monitor():
        mons = wait_until(lambda: pw.exec_monitors(name), 30,
                          what="the exec monitor")
        assert len(mons) == 1, mons
        pid, exe = mons[0]
        assert exe == pw.monitor_real, f"podman ran exec monitor {exe}"
        return pid
    check_fed("exec -i", *feed_and_sample(p, g, exec_monitor, "exec -i"))


def test_run_i_2gb_stdin_arrives_whole_and_the_monitor_stays_small(pw):
    name = pw.name()
    g = pw.gate()
    p = pw.popen("run", "-i", "--rm", "--name", name, *g.volume, IMAGE, "sh", "-c",
                 g.wait_cmd("read", "md5sum"), stdin=subprocess.PIPE)
    infos = []

    def monitor():
        infos.append(pw.verify_monitor(name))
        return infos[0].conmon_pid
    check_fed("run -i", *feed_and_sample(p, g, monitor, "run -i"))
    pw.assert_monitor_gone(infos[0])


# -- the caller's terminal size -------------------------------------------------

def stty_answered(buf):
    """`stty size` printed a size, or failed (a size of 0 0)."""
    return sizes(buf) or b"stty: " in buf


# Seen with conmon 2.1.6 and with ctrmon alike, about 1 exec in 40 on the
# loaded 2-core VM (December): the exec'd `stty size` fails with
# "stty: standard input" (its terminal not usable yet), a race between
# runc and the process it starts, before either monitor is involved. Such
# a run is tried again; any other output is a failure.
RUNTIME_TTY_RACE = b"stty: standard input\r\n"


def test_exec_it_starts_with_the_callers_terminal_size(pw, ctr):
    name, _, _ = ctr
    for attempt in range(3):
        t = Terminal(pw.argv("exec", "-it", name, "stty", "size"), pw.env, ROWS, COLS)
        rc, buf = t.finish(60)
        if buf != RUNTIME_TTY_RACE:
            break
    assert rc == 0, buf
    assert sizes(buf) == [(ROWS, COLS)], buf


@conmon_216_size_race
def test_run_it_starts_with_the_callers_terminal_size(pw):
    g = pw.gate()
    name = pw.name()
    t = Terminal(pw.argv("run", "-it", "--rm", "--name", name, *g.volume, IMAGE,
                         "sh", "-c", "stty size; " + g.wait_cmd("go")),
                 pw.env, ROWS, COLS)
    try:
        t.wait_for(stty_answered, 30, "stty size")
        info = pw.verify_monitor(name)
        g.open()
        rc, buf = t.finish(60)
    finally:
        t.close()
    assert rc == 0, buf
    assert sizes(buf) == [(ROWS, COLS)], buf
    pw.assert_monitor_gone(info)


@conmon_216_size_race
def test_start_ai_starts_with_the_callers_terminal_size(pw):
    g = pw.gate()
    name = pw.name()
    pw.ok("create", "-it", "--name", name, *g.volume, IMAGE,
          "sh", "-c", "stty size; " + g.wait_cmd("go", "exit 4"))
    t = Terminal(pw.argv("start", "-ai", name), pw.env, ROWS, COLS)
    try:
        t.wait_for(stty_answered, 30, "stty size")
        info = pw.verify_monitor(name)
        g.open()
        rc, buf = t.finish(60)
    finally:
        t.close()
    assert rc == 4, buf
    assert sizes(buf) == [(ROWS, COLS)], buf
    pw.assert_monitor_gone(info)


# -- input typed before the pty exists ----------------------------------------

# The shell's answer, not the echo of what was typed.
TYPED = b"echo hi-$((40+2))\r"
ANSWER = b"hi-42\r\n"


def type_early_then_exit(t):
    # typed the moment podman starts: podman forwards it as soon as it is
    # attached, before the runtime handed the monitor the container's pty
    t.type(TYPED)
    t.wait_for(lambda b: ANSWER in b, 30, "the shell's answer to early input")


def test_exec_it_input_typed_before_the_pty_reaches_the_shell(pw, ctr):
    name, _, _ = ctr
    t = Terminal(pw.argv("exec", "-it", name, "sh"), pw.env, ROWS, COLS)
    try:
        type_early_then_exit(t)
        t.type(b"exit 3\r")
        rc, buf = t.finish(60)
    finally:
        t.close()
    assert rc == 3, buf


def test_run_it_input_typed_before_the_pty_reaches_the_shell(pw):
    name = pw.name()
    t = Terminal(pw.argv("run", "-it", "--rm", "--name", name, IMAGE, "sh"),
                 pw.env, ROWS, COLS)
    try:
        type_early_then_exit(t)
        info = pw.verify_monitor(name)
        t.type(b"exit 3\r")
        rc, buf = t.finish(60)
    finally:
        t.close()
    assert rc == 3, buf
    pw.assert_monitor_gone(info)
