"""Never stall, never lose (issue 6), in the default lossless mode, with
real runc containers: a 200 MB burst followed by exit reaches the k8s-file
log byte for byte; a stopped (SIGSTOP) attach client is cut off and
counted while the container, the log and a reading client go on; a full
log disk is counted and reported, and writing resumes once space returns.

The writer is tests/load/load-helper.c (compiled here, bind-mounted at
/run): its stream is a pure function of the offset, and `verify-k8s`
checks a whole log against it."""
import errno
import os
import re
import select
import signal
import subprocess
import sys

import pytest

from ctrtest.bundle import SHARED_IN_CTR
from ctrtest.control import ControlClient, api_socket_path
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
# Paced so that a Python client on a loaded machine can keep up: a reader
# more than the attach queue behind is (rightly) cut off too.
ATTACH_RATE = 16 * 1024 * 1024

# Connects to the attach socket, says so, then reads whatever it gets until
# EOF and prints the byte count. The test SIGSTOPs it right after connecting.
STOPPED_CLIENT = r"""
import os, socket, sys
d = os.open(sys.argv[1], os.O_PATH | os.O_DIRECTORY)
s = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
s.connect(f"/proc/self/fd/{d}/attach")
print("connected", flush=True)
total = 0
while True:
    try:
        data = s.recv(65536)
    except ConnectionResetError:
        break
    if not data:
        break
    total += len(data) - 1
print(total, flush=True)
"""


def read_attach_bytes(sock, n, timeout):
    """Payload bytes of attach records until `n` arrived (list of chunks)."""
    import time
    deadline = time.monotonic() + timeout
    chunks, total = [], 0
    while total < n:
        left = deadline - time.monotonic()
        assert left > 0, f"attach reader got {total} of {n} bytes in time"
        r, _, _ = select.select([sock], [], [], left)
        if not r:
            continue
        rec = sock.recv(65536)
        assert rec, f"attach reader: EOF after {total} of {n} bytes"
        assert rec[0] == 2, f"record on stream {rec[0]}"
        chunks.append(rec[1:])
        total += len(rec) - 1
    return chunks


def test_stopped_attach_client_is_cut_off_and_counted_while_log_and_reader_get_every_byte(
        env, shared):
    m = env.monitor(gen_args(ATTACH_BYTES, gated=True, rate=ATTACH_RATE),
                    bundle_opts={"shared_dir": shared}, full_attach=True)
    m.create()
    events = ControlClient(api_socket_path(m.bundle.path), timeout=30)
    events.call("subscribe")
    reader = m.attach(timeout=30)
    stopped = subprocess.Popen([sys.executable, "-c", STOPPED_CLIENT,
                                m.bundle.path], stdout=subprocess.PIPE)
    try:
        assert stopped.stdout.readline() == b"connected\n"
        os.kill(stopped.pid, signal.SIGSTOP)
        env.runc.start(m.cid)
        touch(os.path.join(shared, "start"))

        chunks = read_attach_bytes(reader.sock, ATTACH_BYTES, 50)
        # The writer finished: a client that reads nothing did not hold it.
        wait_for(lambda: os.path.exists(os.path.join(shared, "done")), 30,
                 "the container to finish writing")
        st = stats(m)
        assert st["stdout"]["bytes"] == ATTACH_BYTES
        assert st["attach_clients_dropped"] == 1, st
        assert st["attach_bytes_dropped"] > 0, st
        # The stopped client's backlog came within one read (128 KiB) of
        # the bound, 32 MiB, before it was cut off.
        assert 31 * 1024 * 1024 <= st["attach_bytes_queued_max"] <= 32 * 1024 * 1024, st

        # Woken up, the stopped client finds its stream ended while the
        # container still runs (it waits for "end"): it was cut off then,
        # not at exit, and got less than everything.
        os.kill(stopped.pid, signal.SIGCONT)
        out, _ = stopped.communicate(timeout=30)
        got = int(out.split()[-1])
        assert got < ATTACH_BYTES, got
        # Its disconnection is an event while the container still runs,
        # with the reason and what it will never get.
        evs = drain_notifications(events, "attach-disconnected")
        assert evs[-1]["reason"] == "too far behind", evs[-1]
        assert evs[-1]["bytes_dropped"] == st["attach_bytes_dropped"], (evs[-1], st)
        assert not os.path.exists(m.exit_file)
    finally:
        if stopped.poll() is None:
            os.kill(stopped.pid, signal.SIGCONT)
            stopped.kill()
            stopped.wait(10)

    touch(os.path.join(shared, "end"))
    assert m.wait_exit_file(30) == "0"
    evs += drain_notifications(events, "exited")
    events.close()
    types = [e["type"] for e in evs]
    assert types.count("attach-connected") == 2, types
    # The reading client got every byte, in order.
    data = b"".join(chunks)
    assert len(data) == ATTACH_BYTES
    p = subprocess.run([os.path.join(shared, "load-helper"), "gen",
                        str(ATTACH_BYTES)], capture_output=True, timeout=60,
                       check=True)
    assert data == p.stdout
    reader.close()
    m.assert_clean_exit(30)
    verify_k8s(os.path.join(shared, "load-helper"), m.log_path, ATTACH_BYTES)


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
