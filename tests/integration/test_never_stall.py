"""Never stall, never lose (issues 6 and 13), in the default lossless mode,
with real runc containers: a 200 MB burst followed by exit reaches the
k8s-file log byte for byte; a stopped (SIGSTOP) attach client holds the
container (back-pressure, as with conmon) while the monitor answers the
API and forwards signals, and SIGCONT lets every byte through; a full log
disk is counted and reported, and writing resumes once space returns.

The writer is tests/load/load-helper.c (compiled here, bind-mounted at
/run): its stream is a pure function of the offset, and `verify-k8s`
checks a whole log against it."""
import errno
import hashlib
import os
import re
import select
import signal
import subprocess
import sys
import threading
import time

import pytest

from ctrtest import k8slog
from ctrtest.bundle import SHARED_IN_CTR
from ctrtest.control import ControlClient, api_socket_path
from ctrtest.procs import is_gone, rss_limit
from ctrtest.wait import wait_for

LINE = 100  # load-helper's line length


def gen_args(n, gated=False, rate=0):
    """load-helper gen: N bytes at once, or (gated) after /run/start at
    `rate` bytes/s (0: as fast as it can), then /run/done, and exit after
    /run/end."""
    args = [f"{SHARED_IN_CTR}/load-helper", "gen", str(n)]
    if gated:
        args += [f"{SHARED_IN_CTR}/start", f"{SHARED_IN_CTR}/done",
                 f"{SHARED_IN_CTR}/end", str(rate)]
    return args


def touch(path):
    with open(path, "w"):
        pass


def verify_k8s(helper, log, n):
    p = subprocess.run([helper, "verify-k8s", log, str(n)],
                       capture_output=True, timeout=120)
    assert p.returncode == 0, p.stdout.decode() + p.stderr.decode()
    return p.stdout.decode()


def stats(m):
    with ControlClient(api_socket_path(m.bundle.path)) as c:
        return c.call("stats")["monitor"]


def drain_notifications(client, until_type, timeout=30):
    """Every notification up to and including the first of `until_type`."""
    got = []
    while True:
        msg = client.next_notification(timeout)
        assert msg is not None, f"API closed before {until_type}: {got}"
        got.append(msg["params"])
        if msg["params"]["type"] == until_type:
            return got


# -- a burst, then exit ---------------------------------------------------------

# 200 MiB and half a line: the last line has no newline and must still be
# logged (as a P record).
BURST = 200 * 1024 * 1024 + LINE // 2


def test_200mb_burst_then_immediate_exit_reaches_the_k8s_log_byte_for_byte(
        env, shared):
    m = env.monitor(gen_args(BURST), bundle_opts={"shared_dir": shared})
    m.run()
    assert m.wait_exit_file(50) == "0"
    m.assert_clean_exit(30)
    assert verify_k8s(os.path.join(shared, "load-helper"), m.log_path,
                      BURST).startswith("ok ")
    with open(m.log_path, "rb") as f:
        f.seek(-200, os.SEEK_END)
        last = f.read().rsplit(b"\n", 2)[-2]
    # The unterminated last line: a P record holding exactly its 50 bytes.
    assert re.fullmatch(rb"\S+ stdout P 002097152\w{41}", last), last


# -- a stopped attach client ------------------------------------------------------

ATTACH_BYTES = 80 * 1024 * 1024

# Connects to the attach socket, says so, then reads whatever it gets until
# EOF and prints the payload byte count and its sha256. The test SIGSTOPs it
# right after connecting.
STOPPED_CLIENT = r"""
import hashlib, os, socket, sys
d = os.open(sys.argv[1], os.O_PATH | os.O_DIRECTORY)
s = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
s.connect(f"/proc/self/fd/{d}/attach")
print("connected", flush=True)
total, h = 0, hashlib.sha256()
while True:
    data = s.recv(65536)
    if not data:
        break
    if data[0] == 2:
        h.update(data[1:])
        total += len(data) - 1
print(total, h.hexdigest(), flush=True)
"""


class RecordReader(threading.Thread):
    """Reads one attach client's records until EOF, in the background."""

    def __init__(self, sock):
        super().__init__(daemon=True)
        self.sock, self.chunks, self.total = sock, [], 0
        self.sock.settimeout(120)

    def run(self):
        while True:
            rec = self.sock.recv(65536)
            if not rec:
                return
            assert rec[0] == 2, f"record on stream {rec[0]}"
            self.chunks.append(rec[1:])
            self.total += len(rec) - 1


def start_stopped_client(bundle):
    p = subprocess.Popen([sys.executable, "-c", STOPPED_CLIENT, bundle],
                         stdout=subprocess.PIPE)
    assert p.stdout.readline() == b"connected\n"
    os.kill(p.pid, signal.SIGSTOP)
    return p


def finish_client(p):
    if p.poll() is None:
        os.kill(p.pid, signal.SIGCONT)
        p.kill()
        p.wait(10)


def wait_held(m, shared):
    """Until the monitor holds the output for a full client, and the
    container is held with it: it makes no progress for a second."""
    wait_for(lambda: stats(m)["output_held"], 60,
             "the monitor to hold the output for the stopped client")
    a = stats(m)
    time.sleep(1)
    b = stats(m)
    assert b["output_held"] and b["attach_clients_full"] == 1, b
    assert a["stdout"]["bytes"] == b["stdout"]["bytes"], (a, b)
    return b


def test_stopped_attach_client_holds_the_container_monitor_answers_sigcont_delivers_every_byte(
        env, shared):
    m = env.monitor(gen_args(ATTACH_BYTES, gated=True),
                    bundle_opts={"shared_dir": shared}, full_attach=True)
    m.create()
    events = ControlClient(api_socket_path(m.bundle.path), timeout=30)
    events.call("subscribe")
    reader = m.attach(timeout=30)
    stopped = start_stopped_client(m.bundle.path)
    try:
        env.runc.start(m.cid)
        touch(os.path.join(shared, "start"))
        fast = RecordReader(reader.sock)
        fast.start()

        # The stopped client holds the container, as conmon's blocking
        # writes do: far from all of it was written, and nothing is lost.
        st = wait_held(m, shared)
        assert not os.path.exists(os.path.join(shared, "done"))
        assert st["stdout"]["bytes"] < ATTACH_BYTES, st
        assert st["attach_clients_dropped"] == 0, st
        assert st["attach_holds"] >= 1, st
        # Bounded: the stopped client's backlog is the queue bound (4 MiB)
        # plus at most one read (128 KiB), and the whole monitor stays small.
        assert st["attach_bytes_queued_max"] <= 4 * 1024 * 1024 + 132 * 1024, st
        assert st["rss_bytes"] < rss_limit(40 * 1024 * 1024), st
        # The monitor itself still answers.
        with ControlClient(api_socket_path(m.bundle.path), timeout=5) as c:
            assert c.call("status")["state"] == "running"
        # The fast client got what was read so far, and waits with it.
        assert fast.total <= st["stdout"]["bytes"]

        # Woken up, the stopped client lets everything through.
        os.kill(stopped.pid, signal.SIGCONT)
        wait_for(lambda: os.path.exists(os.path.join(shared, "done")), 60,
                 "the container to finish writing once the client reads")
        touch(os.path.join(shared, "end"))
        assert m.wait_exit_file(60) == "0"
        out, _ = stopped.communicate(timeout=60)
    finally:
        finish_client(stopped)

    want = subprocess.run([os.path.join(shared, "load-helper"), "gen",
                           str(ATTACH_BYTES)], capture_output=True, timeout=60,
                          check=True).stdout
    got, digest = out.split()
    assert int(got) == ATTACH_BYTES
    assert digest.decode() == hashlib.sha256(want).hexdigest()
    fast.join(60)
    assert b"".join(fast.chunks) == want
    evs = drain_notifications(events, "exited")
    events.close()
    assert not [e for e in evs if e["type"] == "attach-disconnected"
                and e.get("reason") == "too far behind"], evs
    reader.close()
    m.assert_clean_exit(30)
    verify_k8s(os.path.join(shared, "load-helper"), m.log_path, ATTACH_BYTES)


# pid 1 ignores SIGTERM unless it handles it: the shell's trap ends it,
# while its writer child is blocked on the full pipe.
TRAPPED_WRITER = ('trap "echo got-term >&2; exit 7" TERM; '
                  'head -c 200000000 /dev/urandom & wait')


def test_monitor_forwards_signals_and_reports_the_exit_while_output_is_held(env):
    m = env.monitor(["sh", "-c", TRAPPED_WRITER], full_attach=True)
    m.create()
    stopped = start_stopped_client(m.bundle.path)
    try:
        env.runc.start(m.cid)
        wait_held(m, None)
        # SIGTERM to the monitor reaches the container, whose exit is
        # reported while the stopped client still holds the output.
        m.signal(signal.SIGTERM)
        assert m.wait_exit_file(30) == "7"
        assert b"got-term" in m.log_bytes()
        # The monitor stays for the client: its last output is queued.
        assert not is_gone(m.daemon_pid)
        os.kill(stopped.pid, signal.SIGCONT)
        out, _ = stopped.communicate(timeout=60)
    finally:
        finish_client(stopped)
    # Every byte the log has, the client got too.
    got, digest = out.split()
    logged = k8slog.stream_bytes(k8slog.read(m.log_path), "stdout")
    assert int(got) == len(logged) > 8 * 1024 * 1024
    assert digest.decode() == hashlib.sha256(logged).hexdigest()
    m.assert_clean_exit(30)


# -- a full log disk ------------------------------------------------------------

@pytest.fixture
def tiny_fs(env):
    d = os.path.join(env.work, "tinyfs")
    os.makedirs(d)
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", d],
                   check=True, timeout=10)
    yield d
    subprocess.run(["umount", "-l", d], timeout=10)


def fill_up(path):
    """Write zeros to `path` until the filesystem is full."""
    block = b"\0" * 4096
    with open(path, "wb", buffering=0) as f:
        while True:
            try:
                f.write(block)
            except OSError as e:
                if e.errno != errno.ENOSPC:
                    raise
                return


# The container waits for /run/go, then writes a numbered line every ms or so.
TICKER = ('while [ ! -e /run/go ]; do usleep 10000; done; i=0; '
          'while :; do echo line-$i-' + "x" * 80 + '; i=$((i+1)); '
          'usleep 1000; done')


def logged_line_numbers(path):
    with open(path, "rb") as f:
        return [int(n) for n in re.findall(rb" F line-(\d+)-x{80}\n", f.read())]


# Lossless, and with --log-buffer-size, where the writer thread meets the
# full disk and its reports reach the main loop from there.
@pytest.mark.parametrize("buffer_args", [[], ["--log-buffer-size=4m"]],
                         ids=["lossless", "buffered"])
def test_full_log_disk_is_counted_and_reported_and_writing_resumes_when_space_returns(
        env, shared, tiny_fs, buffer_args):
    log = os.path.join(tiny_fs, "ctr.log")
    m = env.monitor(["sh", "-c", TICKER], log_paths=[f"k8s-file:{log}"],
                    bundle_opts={"shared_dir": shared},
                    extra_args=["--start"] + buffer_args)
    m.log_path = log
    # The monitor's own log: its stderr survives daemonizing only when it is
    # the journal of a unit (JOURNAL_STREAM names it), as under systemd.
    open(m.stderr_path, "wb").close()
    st_err = os.stat(m.stderr_path)
    m.env["JOURNAL_STREAM"] = f"{st_err.st_dev}:{st_err.st_ino}"
    m.create()  # --start: ctrmon starts the container itself
    filler = os.path.join(tiny_fs, "filler")
    fill_up(filler)

    events = ControlClient(api_socket_path(m.bundle.path), timeout=30)
    events.call("subscribe")
    touch(os.path.join(shared, "go"))

    failed = drain_notifications(events, "log-write-failed")[-1]
    assert failed["sink"] == "k8s-file"
    assert "No space left on device" in failed["error"], failed
    # The container is not held up by the full disk: it keeps writing and
    # the monitor keeps reading, counting what it cannot write.
    first = stats(m)
    wait_for(lambda: stats(m)["stdout"]["lines"] > first["stdout"]["lines"] + 200,
             30, "the container to go on writing while the disk is full")
    full = stats(m)
    assert full["log_write_errors"] > 0 and full["log_bytes_dropped"] > 0, full
    before = logged_line_numbers(log)

    os.unlink(filler)
    resumed = drain_notifications(events, "log-write-resumed")[-1]
    assert resumed["sink"] == "k8s-file"
    assert resumed["failed_writes"] > 0
    read_at_resume = stats(m)["stdout"]["lines"]

    def logged_again():
        nums = logged_line_numbers(log)
        return nums and nums[-1] > read_at_resume + 50 and nums
    nums = wait_for(logged_again, 30, "lines written after space returned")
    # Lines were lost while the disk was full (a gap), none after it.
    assert len(nums) < nums[-1] + 1
    assert nums[:len(before)] == before
    after = [n for n in nums if n >= read_at_resume]
    assert after == list(range(after[0], after[-1] + 1))
    assert stats(m)["log_bytes_dropped"] >= full["log_bytes_dropped"]

    err = m.stderr().decode()
    assert re.search(r"\[conmon:w\]: k8s-file log: .*No space left on device; "
                     r"the monitor keeps reading", err), err
    assert re.search(r"\[conmon:w\]: k8s-file log: writing again after \d+ "
                     r"failed writes", err), err

    env.runc.kill(m.cid, "KILL")
    assert m.wait_exit_file(15) == "137"
    events.close()
    m.assert_clean_exit()
