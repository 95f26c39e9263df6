"""ctl and winsz FIFOs (spec §5) and the reopen command (spec §6.3)."""
import os
import stat
import time

import pytest

from ctrtest import k8slog
from ctrtest.bundle import SHARED_IN_CTR
from ctrtest.wait import wait_for

WAIT_FOR_GO = (f"while [ ! -e {SHARED_IN_CTR}/go ]; do sleep 0.05; done")


def _waiting_container(env, before, after, **kw):
    shared = os.path.join(env.work, "shared")
    m = env.monitor(["sh", "-c", f"{before}; {WAIT_FOR_GO}; {after}"],
                    bundle_opts={"shared_dir": shared}, **kw)
    m.go = lambda: open(os.path.join(shared, "go"), "w").close()
    return m


def test_ctl_and_winsz_are_fifos_mode_0640_while_running(env):
    m = _waiting_container(env, "true", "true")
    m.run()
    for name in ("ctl", "winsz"):
        st = os.lstat(m.bundle.file(name))
        assert stat.S_ISFIFO(st.st_mode), name
        assert stat.S_IMODE(st.st_mode) == 0o640, name
    m.go()
    assert m.wait_exit_file() == "0"
    m.assert_clean_exit()


def _assert_lines_ignored_then_reopen_truncates(env, bad_lines):
    m = _waiting_container(env, "echo one; echo two", "echo three")
    m.run()
    m.wait_log_contains(b"two\n")
    before = m.log_bytes()
    for bad in bad_lines:
        m.ctl_write(bad)
    # Nothing above may reopen the log; give the monitor time to act.
    time.sleep(0.5)
    assert m.log_bytes() == before
    m.ctl_write(b"2 0 0\n")
    wait_for(lambda: b"one" not in m.log_bytes(), 5, "log truncation")
    m.go()
    assert m.wait_exit_file() == "0"
    m.assert_clean_exit()
    recs = k8slog.read(m.log_path)
    assert [r.payload for r in recs] == [b"three\n"]


def test_ctl_reopen_truncates_log_and_malformed_lines_are_ignored(env):
    _assert_lines_ignored_then_reopen_truncates(env, [
        b"garbage\n", b"9 0 0\n", b"2 0\n", b"2 0x1 0\n",
        b"1 24 80\n"])  # resize: no effect without -t, no crash


@pytest.mark.conmon_differs("no range check: '2 -1 0' reopens the log")
def test_ctl_lines_with_out_of_range_numbers_are_ignored(env):
    _assert_lines_ignored_then_reopen_truncates(env, [
        b"2 -1 0\n", b"2 1001 0\n", b"2 0 1001\n"])


def test_ctl_line_split_across_writes_is_assembled(env):
    m = _waiting_container(env, "echo one", "echo two")
    m.run()
    m.wait_log_contains(b"one\n")
    m.ctl_write(b"2 0")
    m.ctl_write(b" 0\n")
    wait_for(lambda: b"one" not in m.log_bytes(), 5, "log truncation")
    m.go()
    assert m.wait_exit_file() == "0"
    m.assert_clean_exit()
    assert [r.payload for r in k8slog.read(m.log_path)] == [b"two\n"]


@pytest.mark.conmon_differs("leaves <bundle>/ctl and <bundle>/winsz")
def test_ctl_and_winsz_are_removed_at_exit(env):
    m = env.monitor(["true"])
    m.run()
    assert m.wait_exit_file() == "0"
    m.assert_clean_exit()
    for name in ("ctl", "winsz", "attach"):
        assert not os.path.lexists(m.bundle.file(name)), name
