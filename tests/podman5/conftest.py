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
import shutil
import signal
import subprocess
import sys

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "lib"))
sys.path.insert(0, HERE)

from ctrtest.bundle import Bundle  # noqa: E402
from ctrtest.monitor import monitor_binary  # noqa: E402
from ctrtest.recording import RECORDING_RUNTIME, Recorder  # noqa: E402
from ctrtest.rootfs import ensure_rootfs  # noqa: E402
from ctrtest.runc import Runc  # noqa: E402

import p5emu  # noqa: E402

STATE_ROOT = "/run/ctrmon-tests"
TEST_TIMEOUT = int(os.environ.get("CTRTEST_TEST_TIMEOUT", "60"))


def pytest_configure(config):
    config.addinivalue_line(
        "markers",
        "conmon_differs(reason): the expectation is ctrmon's (what a podman 5 "
        "user needs) and Debian's conmon 2.1.6 behaves differently; such "
        "tests are xfail when CTRMON_BIN reports 'conmon version 2.1.6'")


def _binary_version():
    try:
        p = subprocess.run([monitor_binary(), "--version"], stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, timeout=10)
        return p.stdout.decode(errors="replace").splitlines()[0]
    except Exception:  # missing binary: the tests will say so
        return ""


def pytest_collection_modifyitems(config, items):
    if _binary_version() != "conmon version 2.1.6":
        return
    for item in items:
        m = item.get_closest_marker("conmon_differs")
        if m:
            reason = m.args[0] if m.args else m.kwargs.get("reason", "")
            item.add_marker(pytest.mark.xfail(reason="conmon 2.1.6: " + reason, strict=False))


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
    d = os.path.join(STATE_ROOT, f"p5-{os.getpid()}")
    os.makedirs(d, exist_ok=True)
    yield d
    if not os.environ.get("CTRTEST_KEEP"):
        shutil.rmtree(d, ignore_errors=True)


@pytest.fixture(scope="session")
def runc(session_dir):
    """runc with a private --root (podman's --runtime-flag root=...)."""
    r = Runc(os.path.join(session_dir, "runc"))
    yield r
    for cid in r.list_ids():  # anything a test failed to clean up
        r.delete(cid)


class _Timeout(Exception):
    pass


@pytest.fixture(autouse=True)
def test_time_limit():
    """No test may hang: SIGALRM aborts it after TEST_TIMEOUT seconds."""
    def on_alarm(signum, frame):
        raise _Timeout(f"test exceeded {TEST_TIMEOUT}s")
    old = signal.signal(signal.SIGALRM, on_alarm)
    signal.alarm(TEST_TIMEOUT)
    yield
    signal.alarm(0)
    signal.signal(signal.SIGALRM, old)


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
