"""Exit codes in exit files and as the monitor's own status (spec §2.7,
§2.9)."""
import os

import pytest


@pytest.mark.parametrize("script,expected", [
    ("exit 42", "42"),
    ("exit 0", "0"),
])
def test_exit_file_holds_container_exit_code(env, script, expected):
    m = env.monitor(["sh", "-c", script])
    m.run()
    assert m.wait_exit_file() == expected
    with open(m.persist_exit) as f:
        assert f.read() == expected
    m.assert_clean_exit()


def test_container_killed_by_sigkill_reports_137(env):
    # Without a PID namespace the shell is not a namespace init, so its own
    # SIGKILL is not ignored by the kernel.
    m = env.monitor(["sh", "-c", "kill -9 $$"],
                    bundle_opts={"pid_ns": False})
    m.run()
    assert m.wait_exit_file() == "137"
    m.assert_clean_exit()


def test_sync_mode_monitor_status_is_container_status_and_no_pidfile(env):
    m = env.monitor(["sh", "-c", "exit 42"], sync=True)
    pidfile = os.path.join(m.workdir, "conmon.pid")
    m.args += ["-P", pidfile]
    m.run()
    assert m.wait_status() == 42
    assert m.wait_exit_file() == "42"
    assert not os.path.exists(pidfile), "-P written despite --sync"
    m.assert_clean_exit()
