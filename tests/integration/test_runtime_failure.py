"""Runtime failures are reported on the sync pipe (spec §3.2, §3.3)."""
import os
import re
import subprocess

import pytest

from ctrtest import procs


def _failure(env, m):
    msg = m.read_sync(15)
    assert msg is not None, "EOF instead of a failure report"
    assert msg.key == "data" and msg.value == -1, msg
    assert m.wait_status() == 1
    assert m.sync_rest(5) == []
    return msg


def test_missing_container_binary_reports_runc_error(env):
    m = env.monitor(["/nonexistent-binary"], sync=True)
    m.start()
    msg = _failure(env, m)
    assert "runc create failed" in msg.message
    assert "exec" in msg.message and "/nonexistent-binary" in msg.message
    assert msg.message.endswith("\n")
    assert re.match(r'time="[^"]+" level=error msg="', msg.message)
    # Create never ran: no exit file (exit files report container exits).
    assert not os.path.exists(m.exit_file)
    assert m.stray_processes() == []
    assert env.runc.state(m.cid) is None or \
        env.runc.state(m.cid)["status"] == "stopped"


def test_runtime_failure_without_api_version_uses_pid_key(env):
    m = env.monitor(["/nonexistent-binary"], sync=True, api_version=False)
    m.start()
    msg = m.read_sync(15)
    assert msg.key == "pid" and msg.value == -1, msg
    assert "runc create failed" in msg.message
    assert m.wait_status() == 1


def test_bundle_without_config_reports_runc_stderr_verbatim(env):
    b = env.bundle(["true"])
    os.unlink(b.config_path)
    m = env.monitor(bundle=b, sync=True)
    m.start()
    msg = _failure(env, m)
    # Same runc invocation by hand: identical text apart from the timestamp.
    p = subprocess.run(
        [env.runc.binary, env.runc.root_arg, "create", "--bundle", b.path,
         "--pid-file", os.path.join(m.workdir, "x.pid"), m.cid + "-x"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=30)
    assert p.returncode != 0
    strip = lambda s: re.sub(r'^time="[^"]*" ', "", s)  # noqa: E731
    assert strip(msg.message) == strip(p.stderr.decode())
    assert m.stray_processes() == []


@pytest.mark.conmon_differs("leaks <bundle>/attach, ctl, winsz on failure")
def test_runtime_failure_leaves_no_sockets_or_fifos(env):
    m = env.monitor(["/nonexistent-binary"], sync=True)
    m.start()
    _failure(env, m)
    for name in ("attach", "ctl", "winsz"):
        assert not os.path.lexists(m.bundle.file(name)), name
    assert not os.path.lexists(m.symlink_path)
    assert m.term_sockets() == []


@pytest.mark.conmon_differs("leaks the unused conmon-term.* socket")
def test_terminal_runtime_failure_before_console_leaves_no_socket(env):
    # runc fails before it connects to the console socket, so the monitor
    # itself must remove $TMPDIR/conmon-term.* (ctrmon decision).
    b = env.bundle(["true"], terminal=True)
    os.unlink(b.config_path)
    m = env.monitor(bundle=b, sync=True, terminal=True)
    m.start()
    _failure(env, m)
    assert m.term_sockets() == []
    assert procs.is_gone(m.popen.pid)
