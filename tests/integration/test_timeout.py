"""-T/--timeout (spec §2.8; ctrmon drains output on timeout)."""
import os
import signal
import time

import pytest

from ctrtest import procs
from ctrtest.bundle import SHARED_IN_CTR
from ctrtest.wait import wait_for

from conftest import scaled


def test_timeout_kills_container_exit_file_minus1_status_255(env):
    m = env.monitor(["sh", "-c", "echo before; sleep 100"], sync=True,
                    timeout=1)
    t0 = time.monotonic()
    ctr = m.run()
    assert m.wait_status(scaled(10)) == 255
    assert time.monotonic() - t0 < scaled(6)
    assert m.wait_exit_file() == "-1"
    with open(m.persist_exit) as f:
        assert f.read() == "-1"
    wait_for(lambda: procs.is_gone(ctr), scaled(5), "container to be killed")
    m.assert_clean_exit()
    assert b" stdout F before\n" in m.log_bytes()


def test_timeout_is_ignored_when_container_exits_first(env):
    m = env.monitor(["sh", "-c", "exit 3"], sync=True, timeout=5)
    t0 = time.monotonic()
    m.run()
    assert m.wait_status(scaled(10)) == 3
    assert time.monotonic() - t0 < scaled(4)
    assert m.wait_exit_file() == "3"
    m.assert_clean_exit()


LINE = "x" * 99


@pytest.mark.conmon_differs("no output drain on timeout (spec §2.8)")
def test_timeout_drains_output_written_before_the_kill(env):
    # Stop the monitor, let the container write while it is stopped and
    # the -T deadline passes, then resume it: the timeout fires with
    # "late" still unread in the pipe. ctrmon must drain it into the log.
    # 600 lines of 100 bytes (60000 bytes, within one pipe buffer) make sure
    # one read at the deadline is not enough: conmon reads 8 KiB per loop
    # turn and stops at the timer, so it loses most of them.
    shared = os.path.join(env.work, "shared")
    script = (f"echo early; while [ ! -e {SHARED_IN_CTR}/go ]; do "
              f"sleep 0.05; done; yes {LINE} | head -n 600; echo late; "
              f"touch {SHARED_IN_CTR}/written; "
              "sleep 100")
    m = env.monitor(["sh", "-c", script], sync=True, timeout=2,
                    bundle_opts={"shared_dir": shared})
    t0 = time.monotonic()
    m.run()
    m.wait_log_contains(b"early\n")
    m.signal(signal.SIGSTOP)
    try:
        open(os.path.join(shared, "go"), "w").close()
        wait_for(lambda: os.path.exists(os.path.join(shared, "written")), 5,
                 "container to write 'late'")
        time.sleep(max(0, 2.5 - (time.monotonic() - t0)))
    finally:
        m.signal(signal.SIGCONT)
    assert m.wait_status(10) == 255
    assert m.wait_exit_file() == "-1"
    m.assert_clean_exit()
    log = m.log_bytes()
    assert b" stdout F late\n" in log
    assert log.count(b" stdout F " + LINE.encode() + b"\n") == 600
