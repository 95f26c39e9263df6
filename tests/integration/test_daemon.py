"""Start pipe and daemonizing (spec §2.1, §2.2)."""
import os
import stat
import time

from ctrtest import procs

from conftest import scaled


def test_foreground_exits_zero_and_pidfile_names_session_leader_daemon(env):
    m = env.monitor(["true"])
    t0 = time.monotonic()
    m.start()
    assert m.foreground_status == 0
    assert time.monotonic() - t0 < scaled(5)
    with open(m.conmon_pidfile, "rb") as f:
        content = f.read()
    assert content.isdigit(), content  # decimal, no newline
    assert stat.S_IMODE(os.stat(m.conmon_pidfile).st_mode) == 0o644
    daemon = int(content)
    assert daemon != m.popen.pid
    m.container_pid = m.read_sync(15).value
    # While the container exists (created, not started) the daemon lives.
    assert not procs.is_gone(daemon)
    assert procs.session_id(daemon) == daemon
    assert procs.pgrp(daemon) == daemon
    assert procs.tty_nr(daemon) == 0, "daemon has a controlling tty"
    env.runc.start(m.cid)
    assert m.wait_exit_file() == "0"
    m.assert_clean_exit()


def test_monitor_waits_for_start_pipe_before_daemonizing(env):
    m = env.monitor(["true"])
    m.spawn()
    time.sleep(0.5)
    assert m.popen.poll() is None, "foreground did not block on start pipe"
    assert not os.path.exists(m.conmon_pidfile)
    assert not os.path.exists(m.container_pidfile)
    m.release_start_pipe()
    assert m.popen.wait(10) == 0
    msg = m.read_sync(15)
    assert msg.key == "data" and msg.value > 0
    env.runc.start(m.cid)
    m.daemon_pid = int(open(m.conmon_pidfile).read())
    assert m.wait_exit_file() == "0"
    m.assert_clean_exit()


def test_start_pipe_eof_also_releases_the_monitor(env):
    m = env.monitor(["true"])
    m.spawn()
    m.release_start_pipe(data=b"")  # close without writing
    assert m.popen.wait(10) == 0
    assert m.read_sync(15).value > 0
    env.runc.start(m.cid)
    m.daemon_pid = int(open(m.conmon_pidfile).read())
    assert m.wait_exit_file() == "0"
    m.assert_clean_exit()
