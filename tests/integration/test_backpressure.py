"""Lose nothing under back-pressure (issue 13), with real runc containers:

* a reader of the API attach stream that does not read holds the output
  (lossless, the default) and gets every byte once it reads; one that asked
  for {"lossy": true} gets a DROPPED frame saying why, is counted, and does
  not hold the container;
* the container's stdin queue is bounded: a client that sends far more than
  the container reads is itself held (its socket fills up), the monitor's
  queue and memory stay small, and every byte arrives in order;
* a terminal size and input sent before the runtime made the pty are applied
  and delivered the moment it arrives (podman exec -it writes its first size
  that early);
* after the exit, the monitor waits for a slow attach client to read the
  rest, and a SIGTERM makes it give up.

The writer is tests/load/load-helper.c (see test_never_stall.py)."""
import hashlib
import os
import signal
import socket
import stat
import subprocess
import sys
import threading
import time

from ctrtest.attach import AttachClient
from ctrtest.bundle import SHARED_IN_CTR
from ctrtest.control import (F_DROPPED, F_EXIT, F_STDOUT, ControlClient,
                             api_socket_path)
from ctrtest.procs import is_gone, rss_limit
from ctrtest.wait import wait_for

MiB = 1024 * 1024
QUEUE_MAX = 4 * MiB          # CTRMON_ATTACH_QUEUE_MAX
STDIN_QUEUE_MAX = 1 * MiB    # STDIO_INPUT_QUEUE_MAX


def stats(m):
    with ControlClient(api_socket_path(m.bundle.path)) as c:
        return c.call("stats")["monitor"]


def touch(path):
    with open(path, "w"):
        pass


def gen(shared, n):
    return subprocess.run([os.path.join(shared, "load-helper"), "gen", str(n)],
                          capture_output=True, timeout=60, check=True).stdout


def gated_gen(n):
    return [f"{SHARED_IN_CTR}/load-helper", "gen", str(n), f"{SHARED_IN_CTR}/start",
            f"{SHARED_IN_CTR}/done", f"{SHARED_IN_CTR}/end", "0"]


def no_progress(m, seconds=1.0):
    """The container is held: the monitor read nothing for `seconds`."""
    a = stats(m)
    time.sleep(seconds)
    b = stats(m)
    return a["stdout"]["bytes"] == b["stdout"]["bytes"] and b


# -- API attach ------------------------------------------------------------------

N_API = 40 * MiB


def test_api_attach_that_does_not_read_holds_the_output_then_gets_every_byte(env, shared):
    m = env.monitor(gated_gen(N_API), bundle_opts={"shared_dir": shared})
    m.run()
    with ControlClient(api_socket_path(m.bundle.path), timeout=30) as c:
        a = c.attach()
        a.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024)
        touch(os.path.join(shared, "start"))
        wait_for(lambda: stats(m)["output_held"], 60, "the API reader to hold the output")
        held = no_progress(m)
        assert held, "the container went on writing while the reader did not read"
        assert held["stdout"]["bytes"] < N_API
        assert held["attach_clients_dropped"] == 0
        assert not os.path.exists(os.path.join(shared, "done"))
        # Bounded: the queue bound plus the one read that filled it.
        assert held["rss_bytes"] < rss_limit(40 * MiB), held

        # Now it reads: everything arrives, then the exit frame.
        frames = []
        done = threading.Event()

        def read_all():
            while True:
                f = a.read_frame(120)
                if f is None:
                    break
                frames.append(f)
            done.set()
        t = threading.Thread(target=read_all, daemon=True)
        t.start()
        wait_for(lambda: os.path.exists(os.path.join(shared, "done")), 60,
                 "the container to finish once the reader reads")
        touch(os.path.join(shared, "end"))
        assert done.wait(120)
        a.close()
    out = b"".join(p for t_, p in frames if t_ == F_STDOUT)
    assert out == gen(shared, N_API)
    assert frames[-1] == (F_EXIT, b"\0\0\0\0")
    m.assert_clean_exit(30)


def test_lossy_api_attach_is_cut_off_with_a_dropped_frame_and_does_not_hold(env, shared):
    m = env.monitor(gated_gen(N_API), bundle_opts={"shared_dir": shared})
    m.run()
    events = ControlClient(api_socket_path(m.bundle.path), timeout=30)
    events.call("subscribe")
    with ControlClient(api_socket_path(m.bundle.path), timeout=30) as c:
        a = c.attach({"lossy": True})
        a.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024)
        touch(os.path.join(shared, "start"))
        # Not held: the container writes everything while this client
        # reads nothing.
        wait_for(lambda: os.path.exists(os.path.join(shared, "done")), 60,
                 "the container to write everything past a lossy reader")
        st = stats(m)
        assert st["stdout"]["bytes"] == N_API
        assert st["attach_clients_dropped"] == 1, st
        assert st["attach_bytes_dropped"] > 0, st
        assert st["output_held_count"] == 0, st
        # What it reads: a prefix of the output, in whole frames, then the
        # reason, then EOF.
        frames = a.read_to_eof(60)
        a.close()
    assert frames[-1][0] == F_DROPPED, frames[-3:]
    assert frames[-1][1].startswith(b"too far behind: "), frames[-1]
    out = b"".join(p for t_, p in frames if t_ == F_STDOUT)
    assert 0 < len(out) < N_API
    assert gen(shared, len(out)) == out
    ev = None
    while ev is None or ev["type"] != "attach-disconnected":
        msg = events.next_notification(30)
        assert msg is not None
        ev = msg["params"]
    assert ev["reason"] == "too far behind" and ev["api"] is True, ev
    events.close()
    touch(os.path.join(shared, "end"))
    assert m.wait_exit_file(30) == "0"
    m.assert_clean_exit(30)


def test_lossy_must_be_a_boolean(env):
    m = env.monitor(["sleep", "30"])
    m.run()
    with ControlClient(api_socket_path(m.bundle.path)) as c:
        c.send("attach", {"lossy": "yes"})
        msg = c.read_message(10)
    assert msg["error"]["message"] == 'Parameter "lossy" must be true or false', msg
    env.runc.kill(m.cid, "KILL")
    m.wait_exit_file(15)


# -- stdin ----------------------------------------------------------------------------

N_STDIN = 64 * MiB
# Reads nothing until /run/go exists, then hashes all of stdin.
SLOW_READER = (f"while [ ! -e {SHARED_IN_CTR}/go ]; do usleep 20000; done; "
               "sha256sum")


def pattern(n):
    block = hashlib.sha256(b"ctrmon").digest() * 2048  # 64 KiB
    out = bytearray()
    while len(out) < n:
        out += block[:n - len(out)]
        block = block[1:] + block[:1]
    return bytes(out)


def test_stdin_queue_is_bounded_and_every_byte_arrives_in_order(env, shared):
    m = env.monitor(["sh", "-c", SLOW_READER], stdin=True, full_attach=True,
                    bundle_opts={"shared_dir": shared})
    m.create()
    data = pattern(N_STDIN)
    client = AttachClient(m.bundle.path, timeout=120)
    client.sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 256 * 1024)
    sent = []

    def send_all():
        # Blocking sends: they stall once the monitor stops reading us.
        for off in range(0, len(data), 8192):
            client.sock.send(data[off:off + 8192])
            sent.append(off + 8192)
        client.sock.shutdown(socket.SHUT_WR)
    t = threading.Thread(target=send_all, daemon=True)
    t.start()
    env.runc.start(m.cid)

    # The container reads nothing: the monitor's queue fills to its bound,
    # then it stops reading the client, whose sends block.
    wait_for(lambda: stats(m)["stdin_queued"] >= STDIN_QUEUE_MAX, 30,
             "the stdin queue to fill")
    time.sleep(1)
    before = sent[-1] if sent else 0
    time.sleep(1)
    st = stats(m)
    assert sent[-1] == before, "the client was not held"
    assert sent[-1] < N_STDIN
    # 1 MiB plus at most one batch of client records (16 x 32 KiB).
    assert st["stdin_queued"] <= STDIN_QUEUE_MAX + 512 * 1024, st
    assert st["rss_bytes"] < rss_limit(24 * MiB), st

    touch(os.path.join(shared, "go"))
    t.join(120)
    assert not t.is_alive()
    assert m.wait_exit_file(120) == "0"
    client.read_to_eof(30)
    out = client.data().split()
    # Every byte, in order.
    assert out[0].decode() == hashlib.sha256(data).hexdigest(), out
    m.assert_clean_exit(30)


# -- before the pty ----------------------------------------------------------------

GATED_RUNTIME = """#!/bin/sh
# Holds `runc create` until the test opens the gate: the monitor then has
# its attach socket and ctl FIFO, but no pty yet.
if [ "$1" != "--version" ]; then
    while [ ! -e {gate} ]; do sleep 0.01; done
fi
exec /usr/sbin/runc "$@"
"""


def test_size_and_input_sent_before_the_pty_are_applied_when_it_arrives(env):
    m = env.monitor(["sh", "-c", "read l; echo size:$(stty size); echo got:$l; exit 3"],
                    terminal=True, full_attach=True)
    gate = os.path.join(m.workdir, "gate")
    wrapper = os.path.join(m.workdir, "gated-runc")
    with open(wrapper, "w") as f:
        f.write(GATED_RUNTIME.format(gate=gate))
    os.chmod(wrapper, stat.S_IRWXU)
    m.args[m.args.index("-r") + 1] = wrapper
    m.start()
    # The monitor waits for the runtime: attach and ctl exist, no pty.
    wait_for(lambda: os.path.exists(m.bundle.file("ctl")), 15, "the ctl FIFO")
    wait_for(lambda: os.path.exists(m.attach_path), 15, "the attach socket")
    client = AttachClient(m.bundle.path, timeout=30)
    m.ctl_write(b"1 33 101\n")
    client.send(b"hello\r")
    time.sleep(0.3)  # both reach the monitor before the pty exists
    touch(gate)
    msg = m.read_sync(30)
    assert msg is not None and msg.value > 0, msg
    env.runc.start(m.cid)
    assert m.wait_exit_file(30) == "3"
    client.read_to_eof(30)
    out = client.data()
    assert b"size:33 101\r\n" in out, out
    assert b"got:hello\r\n" in out, out
    client.close()
    m.assert_clean_exit(30)


# -- after the exit ------------------------------------------------------------------

STOPPED_CLIENT = r"""
import os, socket, sys
d = os.open(sys.argv[1], os.O_PATH | os.O_DIRECTORY)
s = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
s.connect(f"/proc/self/fd/{d}/attach")
print("connected", flush=True)
total = 0
while True:
    data = s.recv(65536)
    if not data:
        break
    total += len(data) - 1
print(total, flush=True)
"""


def test_after_the_exit_the_monitor_waits_for_a_slow_client_and_sigterm_gives_up(env, shared):
    n = 20 * MiB
    m = env.monitor([f"{SHARED_IN_CTR}/load-helper", "gen", str(n)],
                    full_attach=True, bundle_opts={"shared_dir": shared})
    m.create()
    p = subprocess.Popen([sys.executable, "-c", STOPPED_CLIENT, m.bundle.path],
                         stdout=subprocess.PIPE)
    try:
        assert p.stdout.readline() == b"connected\n"
        os.kill(p.pid, signal.SIGSTOP)
        env.runc.start(m.cid)
        wait_for(lambda: stats(m)["output_held"], 30, "the stopped client to hold the output")
        # The container is killed: its exit is reported at once, the log
        # has everything read, and the monitor stays for the client.
        env.runc.kill(m.cid, "KILL")
        assert m.wait_exit_file(30) == "137"
        time.sleep(1)
        assert not is_gone(m.daemon_pid)
        assert os.path.exists(m.attach_path)
        m.signal(signal.SIGTERM)
        wait_for(lambda: is_gone(m.daemon_pid), 15, "the monitor to give up and exit")
        os.kill(p.pid, signal.SIGCONT)
        out, _ = p.communicate(timeout=30)
    finally:
        if p.poll() is None:
            os.kill(p.pid, signal.SIGCONT)
            p.kill()
            p.wait(10)
    # It got what its socket held, then EOF.
    assert 0 < int(out) < n
    m.assert_clean_exit(30)


# A reader of the attach socket that records, in wall-clock time, when it
# got its last byte; it reads one record per `pause` seconds.
PACED_CLIENT = r"""
import os, socket, sys, time
d = os.open(sys.argv[1], os.O_PATH | os.O_DIRECTORY)
pause = float(sys.argv[2])
s = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
s.connect(f"/proc/self/fd/{d}/attach")
print("connected", flush=True)
total, last = 0, 0.0
while True:
    data = s.recv(65536)
    if not data:
        break
    total += len(data) - 1
    last = time.time()
    time.sleep(pause)
print(total, last, flush=True)
"""


def _exit_stamp_args(path):
    return ["--exit-command", "/bin/sh", "--exit-command-arg", "-c",
            "--exit-command-arg", f"date +%s.%N > {path}"]


def test_the_exit_command_waits_until_a_reading_client_has_its_sockets_last_byte(env, shared):
    """The monitor's own queue empties long before a slow client has read
    what its socket holds (up to 4 MiB). podman's exit command for an exec
    (`podman container cleanup --exec`) removes the exit file that podman
    exec reads after the last byte; run before that, it made podman exec
    end 5 s late. So the exit command runs only once the client has read
    everything, while it keeps reading."""
    n = 6 * MiB
    stamp = os.path.join(env.work, "exit-command-ran")
    m = env.monitor([f"{SHARED_IN_CTR}/load-helper", "gen", str(n)], full_attach=True,
                    bundle_opts={"shared_dir": shared}, extra_args=_exit_stamp_args(stamp))
    m.create()
    # 8 KiB records, one per 2 ms: 4 MiB/s, so a full socket takes ~1 s.
    p = subprocess.Popen([sys.executable, "-c", PACED_CLIENT, m.bundle.path, "0.002"],
                         stdout=subprocess.PIPE)
    try:
        assert p.stdout.readline() == b"connected\n"
        env.runc.start(m.cid)
        assert m.wait_exit_file(60) == "0"
        out, _ = p.communicate(timeout=120)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait(10)
    total, last = out.split()
    assert int(total) == n
    wait_for(lambda: os.path.exists(stamp) and os.path.getsize(stamp) > 0, 30, "the exit command")
    ran = float(open(stamp).read())
    assert ran >= float(last), f"the exit command ran {float(last) - ran:.2f} s before the client's last byte"
    m.assert_clean_exit(30)


def test_a_client_that_stops_reading_its_socket_does_not_hold_the_exit_command(env, shared):
    """Once nothing is queued in the monitor, what a client's socket still
    holds is the client's already: a client that reads none of it for 2 s
    (here: stopped) is left it, the exit command runs and the monitor
    ends; the client, continued, still gets every byte."""
    n = 1 * MiB
    stamp = os.path.join(env.work, "exit-command-ran")
    m = env.monitor([f"{SHARED_IN_CTR}/load-helper", "gen", str(n)], full_attach=True,
                    bundle_opts={"shared_dir": shared}, extra_args=_exit_stamp_args(stamp))
    m.create()
    p = subprocess.Popen([sys.executable, "-c", PACED_CLIENT, m.bundle.path, "0"],
                         stdout=subprocess.PIPE)
    try:
        assert p.stdout.readline() == b"connected\n"
        os.kill(p.pid, signal.SIGSTOP)
        env.runc.start(m.cid)
        assert m.wait_exit_file(60) == "0"
        exited = time.time()
        wait_for(lambda: os.path.exists(stamp) and os.path.getsize(stamp) > 0, 30,
                 "the exit command, with the client stopped")
        waited = float(open(stamp).read()) - exited
        wait_for(lambda: is_gone(m.daemon_pid), 30, "the monitor to end, with the client stopped")
        os.kill(p.pid, signal.SIGCONT)
        out, _ = p.communicate(timeout=60)
    finally:
        if p.poll() is None:
            os.kill(p.pid, signal.SIGCONT)
            p.kill()
            p.wait(10)
    assert int(out.split()[0]) == n
    # It gave the client its 2 s (LIFECYCLE_SOCKET_DRAIN_STALL_MS).
    assert waited > 1.5, f"{waited:.2f} s"
    m.assert_clean_exit(30)
