"""OOM reporting on cgroup v1 (spec §8.3, §8.4)."""
import os
import stat

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
