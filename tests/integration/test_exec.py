"""Exec mode: `runtime exec` in a running container (spec §3.3, §3.4, §7)."""
import os

import pytest

from ctrtest import k8slog
from ctrtest.attach import STDOUT


@pytest.fixture
def running(env):
    """A running container that lives until the test ends."""
    m = env.monitor(["sleep", "60"])
    m.run()
    yield m
    env.runc.kill(m.cid, "KILL")
    m.wait_exit_file(15)
    m.assert_clean_exit()


def test_exec_api_version_reports_pid_then_status(env, running):
    x = env.exec_monitor(running, ["sh", "-c", "echo in-exec; exit 5"],
                         sync=True)
    x.start()
    lines = x.sync_rest(15)
    assert len(lines) == 2, lines
    assert lines[0].startswith(b'{"data": ') and int(lines[0][9:-2]) > 0
    assert lines[1] == b'{"data": 5}\n'
    assert x.wait_status() == 5
    assert x.wait_exit_file() == "5"
    assert k8slog.lines(k8slog.read(x.log_path)) == [b"in-exec"]
    x.assert_clean_exit()


def test_legacy_exec_reports_only_exit_code(env, running):
    x = env.exec_monitor(running, ["sh", "-c", "exit 5"], sync=True,
                         api_version=False)
    x.start()
    assert x.sync_rest(15) == [b'{"exit_code": 5}\n']
    assert x.wait_status() == 5


def test_exec_timeout_reports_command_timed_out(env, running):
    x = env.exec_monitor(running, ["sleep", "100"], sync=True, timeout=1)
    x.start()
    lines = x.sync_rest(15)
    assert len(lines) == 2, lines
    assert lines[1] == b'{"data": -1, "message": "command timed out"}\n'
    assert x.wait_status() == 255
    assert x.wait_exit_file() == "-1"
    x.assert_clean_exit()


def test_failed_exec_reports_minus_one_with_runc_error(env, running):
    x = env.exec_monitor(running, ["/nonexistent-binary"], sync=True)
    x.start()
    msg = x.read_sync(15)
    assert msg.key == "data" and msg.value == -1, msg
    assert "exec failed" in msg.message
    assert "/nonexistent-binary" in msg.message
    assert x.wait_status() != 0
    x.assert_clean_exit()


def test_exec_attach_handshake_then_output_reaches_client(env, running):
    x = env.exec_monitor(running, ["echo", "attached"], sync=True,
                         attach_pipe=True, full_attach=True,
                         extra_args=["--exec-attach"])
    x.spawn()
    x.write_start_pipe(b"1")           # first read: before daemonizing
    assert x.read_attach_pipe(15) == b'{"data": 0}\n'
    with x.attach() as c:              # socket is ready before the runtime
        x.release_start_pipe(b"2")     # second read: runtime exec proceeds
        c.read_until(lambda c: c.data(STDOUT) == b"attached\n", 15)
    lines = x.sync_rest(15)
    assert lines[-1] == b'{"data": 0}\n'
    assert x.wait_status() == 0
    x.assert_clean_exit()
    assert os.path.exists(x.exit_file)
