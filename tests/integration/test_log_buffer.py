"""--log-buffer-size (issue 6): the container never waits on its log.

A stalled log is a k8s-file "log" that is a FIFO the test holds open but
does not read: every write to it blocks once its 64 KiB are full, as a
hung network filesystem or a stopped log shipper would. Unlike a full disk
it fails nothing, so only the buffer stands between it and the container.
The writer is tests/load/load-helper.c (its stream is a function of the
offset), bind-mounted at /run."""
import os
import re
import subprocess
import threading

import pytest

from ctrtest import k8slog, procs
from ctrtest.bundle import SHARED_IN_CTR
from ctrtest.control import ControlClient, api_socket_path
from ctrtest.monitor import monitor_binary
from ctrtest.wait import wait_for

LINE = 100  # load-helper's line length
MiB = 1024 * 1024


def gated_gen(n, rate=0):
    """Write n bytes after /run/start (at `rate` bytes/s, 0: at once), close
    stdout, create /run/done, exit after /run/end."""
    return [f"{SHARED_IN_CTR}/load-helper", "gen", str(n),
            f"{SHARED_IN_CTR}/start", f"{SHARED_IN_CTR}/done",
            f"{SHARED_IN_CTR}/end", str(rate)]


def touch(path):
    with open(path, "w"):
        pass


def stats(m):
    with ControlClient(api_socket_path(m.bundle.path)) as c:
        return c.call("stats")["monitor"]


def filler(helper):
    """Bytes 9-98 of every load-helper line (after the 9-digit number)."""
    line0 = subprocess.run([helper, "gen", str(LINE)], capture_output=True,
                           timeout=10, check=True).stdout
    return line0[9:LINE - 1]


def start_and_write(env, m, shared, n, what):
    """Create m, subscribe to its events, start it and open its generator's
    gate; wait until the container has written its n bytes (`what`) and the
    monitor has read them all. Returns (the subscribed client, the stats)."""
    m.create()
    events = ControlClient(api_socket_path(m.bundle.path), timeout=30)
    events.call("subscribe")
    env.runc.start(m.cid)
    touch(os.path.join(shared, "start"))
    wait_for(lambda: os.path.exists(os.path.join(shared, "done")), 30, what)

    def read_all():
        st = stats(m)
        return st if st["stdout"]["bytes"] == n else None

    return events, wait_for(read_all, 30, "the monitor to read everything")


def test_stalled_log_never_holds_the_container_and_drops_are_counted_and_kept_bytes_intact(
        env, shared):
    n = 32 * MiB
    size = 1 * MiB
    fifo = os.path.join(env.work, "ctr.log")
    os.mkfifo(fifo)
    # Held open, not read: ctrmon's open() for writing succeeds, and its
    # writes block once the FIFO is full.
    rfd = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)
    try:
        m = env.monitor(gated_gen(n), log_paths=[f"k8s-file:{fifo}"],
                        bundle_opts={"shared_dir": shared},
                        extra_args=[f"--log-buffer-size={size // 1024}k"])
        # All 32 MiB written while nothing reads the log.
        events, st = start_and_write(env, m, shared, n,
                                     "the container to write everything while the log is stalled")
        buf = st["log_buffer"]
        assert buf["size"] == size
        assert buf["bytes_queued"] <= size
        assert buf["bytes_dropped"] > n // 2, buf
        assert buf["chunks_dropped"] > 0, buf
        # Every drop is in a "log-dropped" event (at most one a second, the
        # rest summed into the next): their sum reaches the total.
        reported = {"bytes": 0, "chunks": 0}

        def all_reported():
            msg = events.next_notification(5)
            assert msg is not None
            e = msg["params"]
            if e["type"] == "log-dropped":
                assert e["buffer_size"] == size
                reported["bytes"] += e["bytes"]
                reported["chunks"] += e["chunks"]
                assert e["bytes_dropped"] == reported["bytes"]
            return reported["bytes"] == buf["bytes_dropped"]
        wait_for(all_reported, 30, "log-dropped events summing to the stats")
        assert reported["chunks"] == buf["chunks_dropped"]

        # The container exits; the monitor still owes the log what it
        # accepted, so the exit file waits for it.
        touch(os.path.join(shared, "end"))
        wait_for(lambda: procs.is_gone(m.container_pid), 30,
                 "the container to exit")
        assert not os.path.exists(m.exit_file)

        data = bytearray()

        def drain():
            os.set_blocking(rfd, True)
            while True:
                chunk = os.read(rfd, 1 << 20)
                if not chunk:
                    return
                data.extend(chunk)
        t = threading.Thread(target=drain)
        t.start()
        assert m.wait_exit_file(30) == "0"
        m.assert_clean_exit(30)
        t.join(30)
        assert not t.is_alive()
    finally:
        os.close(rfd)
    events.close()

    records = k8slog.parse(bytes(data))  # every record whole
    kept = k8slog.stream_bytes(records, "stdout")
    # Nothing accepted was lost, nothing dropped went unreported.
    assert len(kept) + buf["bytes_dropped"] == n
    # What was kept is the stream in order, with gaps: each gap joins the
    # start of one line to the end of a later one, so at most one line per
    # dropped chunk is not the line its number names, and the numbers rise.
    lines = kept.split(b"\n")
    last = lines.pop()
    assert last == b"" or len(last) < LINE
    fill = filler(os.path.join(shared, "load-helper"))
    numbers, joined = [], 0
    for line in lines:
        if not re.fullmatch(rb"\d{9}\w{90}", line) or line[9:] != fill:
            joined += 1
            continue
        numbers.append(int(line[:9]))
    assert joined <= buf["chunks_dropped"], joined
    assert numbers == sorted(set(numbers))
    assert numbers[0] == 0 and len(numbers) > size // LINE // 2


def test_healthy_log_with_a_buffer_loses_nothing(env, shared):
    n = 24 * MiB + LINE // 2  # the last line without newline
    m = env.monitor(gated_gen(n, rate=8 * MiB),
                    bundle_opts={"shared_dir": shared},
                    extra_args=["--log-buffer-size=16M"])
    events, st = start_and_write(env, m, shared, n, "the container to write everything")
    assert st["log_buffer"]["size"] == 16 * MiB
    assert st["log_buffer"]["bytes_dropped"] == 0
    assert st["log_buffer"]["chunks_dropped"] == 0
    touch(os.path.join(shared, "end"))
    assert m.wait_exit_file(30) == "0"
    m.assert_clean_exit(30)
    types = []
    while True:
        msg = events.next_notification(10)
        if msg is None or msg["params"]["type"] == "exited":
            break
        types.append(msg["params"]["type"])
    events.close()
    assert "log-dropped" not in types
    p = subprocess.run([os.path.join(shared, "load-helper"), "verify-k8s",
                        m.log_path, str(n)], capture_output=True, timeout=60)
    assert p.returncode == 0, p.stdout


@pytest.mark.parametrize("value", ["lots", "1t", "-1", "4kb"])
def test_bad_log_buffer_size_is_refused_before_anything_starts(env, value):
    p = subprocess.run([monitor_binary(), "-c", "x", "-u", "y", "-r", "/bin/true",
                        "-l", "none", f"--log-buffer-size={value}"],
                       capture_output=True, timeout=10, cwd=env.work)
    assert p.returncode == 1
    assert f'Invalid --log-buffer-size "{value}"' in p.stderr.decode(), p.stderr
