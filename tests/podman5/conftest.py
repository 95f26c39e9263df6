"""Fixtures for tests/podman5: the monitor ($CTRMON_BIN) driven the way
podman 5 drives conmon (p5emu.py), with real runc containers built by the
shared helpers in tests/lib/ctrtest.

Run:  CTRMON_BIN=<builddir>/monitor/ctrmon python3 -m pytest tests/podman5 -q
      CTRMON_BIN=/usr/bin/conmon python3 -m pytest tests/podman5 -q  (reference)
Env:  CTRTEST_KEEP=1 keeps the per-test work dirs under /run/ctrmon-tests.
      CTRTEST_TEST_TIMEOUT (default 60) bounds every test in seconds.
      CTRTEST_TIME_SCALE (default 1) stretches the deadlines that are only
      about time.
"""
import os
import sys

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "lib"))
sys.path.insert(0, HERE)

from ctrtest import suite  # noqa: E402
from ctrtest.bundle import Bundle  # noqa: E402
from ctrtest.monitor import monitor_binary  # noqa: E402
from ctrtest.recording import RECORDING_RUNTIME, Recorder  # noqa: E402
from ctrtest.rootfs import ensure_rootfs  # noqa: E402

import p5emu  # noqa: E402

def pytest_configure(config):
    suite.register_conmon_differs(config, "ctrmon's (what a podman 5 user needs)")


def pytest_collection_modifyitems(config, items):
    suite.xfail_conmon_differs(items)


@pytest.fixture(scope="session")
def monitor():
    """Absolute path of the monitor under test (podman's conmon_path)."""
    b = os.path.abspath(monitor_binary())
    if not os.access(b, os.X_OK):
        pytest.fail(f"CTRMON_BIN={b} is not executable", pytrace=False)
    return b


@pytest.fixture(scope="session")
def rootfs():
    if os.geteuid() != 0:
        pytest.fail("tests/podman5 needs root (runc, cgroups, mount namespaces)", pytrace=False)
    return ensure_rootfs()


@pytest.fixture(scope="session")
def session_dir():
    yield from suite.session_dir(f"p5-{os.getpid()}")


@pytest.fixture(scope="session")
def runc(session_dir):
    """runc with a private --root (podman's --runtime-flag root=...)."""
    yield from suite.private_runc(session_dir)


@pytest.fixture(autouse=True)
def test_time_limit():
    """No test may hang: SIGALRM aborts it after CTRTEST_TEST_TIMEOUT seconds."""
    yield from suite.time_limit()


_work_counter = iter(range(1, 1 << 30))


@pytest.fixture
def work(session_dir):
    d = os.path.join(session_dir, f"t{next(_work_counter)}")
    os.makedirs(d)
    return d


@pytest.fixture
def recorder(work):
    """Records the exit command (and, as -r, the runtime) of the test."""
    return Recorder(os.path.join(work, "records"))


@pytest.fixture
def p5(work, rootfs, runc, monitor, recorder):
    """podman 5 on this node, its exit command `podman ... container
    cleanup <id>` replaced by the recording runtime, which records its argv,
    environment and fds and exits 0."""
    def bundle_factory(path, args, **kw):
        return Bundle(path, rootfs, args, **kw)
    exit_command = [RECORDING_RUNTIME, "--record-exit-command", "--root",
                    os.path.join(work, "var/lib/containers/storage"), "--log-level",
                    "warning", "--syslog", "container", "cleanup"]
    node = p5emu.Podman5(work, rootfs, runc, monitor, bundle_factory, exit_command)
    node.env += [f"{k}={v}" for k, v in recorder.env.items()]
    yield node
    node.cleanup()
