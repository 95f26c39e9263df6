"""OOM reporting on cgroup v1 (spec §8.3, §8.4)."""
import os
import signal
import stat
import time

import pytest

MIB = 1 << 20
# busybox dd allocates bs bytes: 64 MiB cannot fit in 32 MiB, so the kernel
# kills dd; the shell (container init) survives and exits 0.
SCRIPT = "dd if=/dev/zero of=/dev/null bs=64M count=1; exit 0"


def _oom_run(env):
    m = env.monitor(["sh", "-c", SCRIPT],
                    bundle_opts={"memory_limit": 32 * MIB})
    m.run()
    assert m.wait_exit_file(20) == "0"
    m.assert_clean_exit()
    return m


def _assert_empty_0644(path):
    st = os.stat(path)
    assert st.st_size == 0
    assert stat.S_IMODE(st.st_mode) == 0o644


def test_oom_kill_creates_empty_oom_file_in_persist_dir(env):
    m = _oom_run(env)
    _assert_empty_0644(os.path.join(m.persist_dir, "oom"))


@pytest.mark.conmon_differs("writes oom into the cwd, not the bundle")
def test_oom_kill_creates_empty_oom_file_in_bundle(env):
    m = _oom_run(env)
    _assert_empty_0644(m.bundle.file("oom"))
    assert not os.path.exists(os.path.join(m.workdir, "oom"))


def test_no_oom_file_without_oom(env):
    m = env.monitor(["true"], bundle_opts={"memory_limit": 32 * MIB})
    m.run()
    assert m.wait_exit_file() == "0"
    m.assert_clean_exit()
    assert not os.path.exists(os.path.join(m.persist_dir, "oom"))
    assert not os.path.exists(m.bundle.file("oom"))


@pytest.mark.conmon_differs("arms its OOM watch after the pid report")
def test_oom_right_after_the_pid_report_is_reported(env):
    """The caller may start the container the moment it hears the pid: an
    OOM kill before the monitor runs again is still reported. Stopping the
    monitor right after the report makes that order certain."""
    m = env.monitor(["dd", "if=/dev/zero", "of=/dev/null", "bs=64M", "count=1"],
                    bundle_opts={"memory_limit": 32 * MIB})
    pid = m.create()
    os.kill(m.daemon_pid, signal.SIGSTOP)
    try:
        m.runc.start(m.cid)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                with open(f"/proc/{pid}/stat") as f:
                    if f.read().rsplit(")", 1)[1].split()[0] in "ZX":
                        break
            except FileNotFoundError:
                break
            time.sleep(0.02)
    finally:
        os.kill(m.daemon_pid, signal.SIGCONT)
    assert m.wait_exit_file(20) == "137"
    _assert_empty_0644(os.path.join(m.persist_dir, "oom"))
    _assert_empty_0644(m.bundle.file("oom"))
