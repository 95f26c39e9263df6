"""Create path end to end (spec §2, §3.2, §6.2, §9)."""
import os
import re
import stat

import pytest

from ctrtest import k8slog, procs

F_HELLO_RE = re.compile(
    rb"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}[+-]\d\d:\d\d stdout F hello\n$")


def _assert_status_file(path, content):
    with open(path, "rb") as f:
        assert f.read() == content
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o644


def test_create_reports_data_pid_logs_hello_and_writes_exit_files(env):
    m = env.monitor(["echo", "hello"])
    m.start()
    assert m.foreground_status == 0
    raw = m.read_sync_raw(15)
    assert re.fullmatch(rb'\{"data": [1-9]\d*\}\n', raw), raw
    pid = int(raw[9:-2])
    with open(m.container_pidfile) as f:
        assert int(f.read()) == pid
    # The container init is the monitor's child (subreaper), not runc's.
    assert procs.ppid(pid) == m.daemon_pid
    m.container_pid = pid
    env.runc.start(m.cid)

    assert m.wait_exit_file() == "0"
    _assert_status_file(m.exit_file, b"0")
    _assert_status_file(m.persist_exit, b"0")
    m.assert_clean_exit()
    assert F_HELLO_RE.match(m.log_bytes()), m.log_bytes()
    # No further sync message for create after the pid (spec §3.3).
    assert m.sync_rest(5) == []


def test_create_without_api_version_reports_pid_key(env):
    m = env.monitor(["true"], api_version=False)
    m.start()
    raw = m.read_sync_raw(15)
    assert re.fullmatch(rb'\{"pid": [1-9]\d*\}\n', raw), raw
    env.runc.start(m.cid)
    assert m.wait_exit_file() == "0"
    m.assert_clean_exit()


@pytest.mark.conmon_differs("log file mode 0600 (spec §6.2 Δ2.1.6)")
def test_log_file_is_created_before_fork_with_mode_0640(env):
    m = env.monitor(["true"])
    m.start()
    # k8s log is opened pre-fork by the foreground process (spec §1.3 #15).
    assert os.path.exists(m.log_path)
    assert stat.S_IMODE(os.stat(m.log_path).st_mode) == 0o640
    m.read_sync(15)
    env.runc.start(m.cid)
    m.wait_exit_file()
    m.assert_clean_exit()
    assert k8slog.read(m.log_path) == []


def test_podman_style_api_version_1_positional_is_accepted(env):
    # podman passes "--api-version 1": the "1" is a discarded positional.
    m = env.monitor(["true"], api_version=False,
                    extra_args=["--api-version", "1"])
    m.start()
    assert m.foreground_status == 0
    assert re.fullmatch(rb'\{"data": [1-9]\d*\}\n', m.read_sync_raw(15))
    env.runc.start(m.cid)
    assert m.wait_exit_file() == "0"
    m.assert_clean_exit()
