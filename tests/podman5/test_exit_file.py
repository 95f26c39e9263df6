"""podman takes a container's FinishedAt from the exit file's ctime
(handleExitFile: ctime.Created(fi)) and its exit code from the content. So
the file must be written when the container exits, and never touched again,
however long the monitor then lingers: ctrmon stays until attach clients
have read the rest of the output (lossless), after the exit files exist."""
import datetime
import os
import time

import p5emu
from ctrtest import k8slog, procs
from ctrtest.wait import scaled, wait_for

OUTPUT = 1_000_000


def _ts_ns(ts):
    """A k8s-file timestamp (local time, 9-digit ns, numeric offset) in ns."""
    s = ts.decode()
    dt = datetime.datetime.fromisoformat(s[:26] + s[29:])  # drop ns below µs
    return int(dt.timestamp()) * 10**9 + int(s[20:29])


def test_exit_file_ctime_is_the_exit_not_the_end_of_the_linger(p5):
    c = p5.container(["sh", "-c", f"yes x | head -c {OUTPUT}; echo; exit 4"])
    p5.create_container(c)
    # podman run attaches before it starts the container, then reads slowly
    conn = p5emu.open_unix_socket(os.path.join(c.bundle_path, "attach"))
    try:
        p5.runc.start(c.id)
        wait_for(lambda: os.path.exists(c.exit_file), scaled(20), "exit file")
        seen = time.time_ns()
        mon = c.read_conmon_pid()
        lingering = not procs.is_gone(mon)
        first = os.stat(c.exit_file)
        persist_first = os.stat(os.path.join(c.persist_dir, "exit"))
        time.sleep(1.0)
        got = 0
        conn.settimeout(scaled(20))
        while True:
            rec = conn.recv(8193)
            if not rec:
                break
            got += len(rec) - 1
    finally:
        conn.close()
    wait_for(lambda: procs.is_gone(mon), scaled(20), "the monitor to exit")
    ended = time.time_ns()

    assert lingering, "the monitor was gone when the exit file appeared: nothing to check"
    assert got == OUTPUT + 1                      # lossless, all of it
    finished, code = p5emu.handle_exit_file(c.exit_file)
    assert code == 4
    # written once, at the exit: not touched by the linger or the end
    assert finished == first.st_ctime_ns == os.stat(c.exit_file).st_ctime_ns
    assert os.stat(os.path.join(c.persist_dir, "exit")).st_ctime_ns == persist_first.st_ctime_ns
    assert finished <= seen and ended - finished >= 10**9
    # and it is the container's end: right after its last output
    last = k8slog.read(c.log_path)[-1]
    delta = finished - _ts_ns(last.ts)
    assert -50_000_000 <= delta <= 10**9, delta
