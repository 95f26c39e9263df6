"""Fixtures for tests/crio: the monitor ($CTRMON_BIN) driven the way CRI-O
1.33-1.36 drives conmon (crioemu.py), with real runc containers built by
the shared helpers in tests/lib/ctrtest.

Run:  CTRMON_BIN=<builddir>/monitor/ctrmon python3 -m pytest tests/crio -q
      CTRMON_BIN=/usr/bin/conmon python3 -m pytest tests/crio -q  (reference)
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
from ctrtest.monitor import monitor_binary  # noqa: E402
from ctrtest.rootfs import ensure_rootfs  # noqa: E402

import crioemu  # noqa: E402

def pytest_configure(config):
    suite.register_conmon_differs(config, "ctrmon's (what CRI-O needs)")


def pytest_collection_modifyitems(config, items):
    suite.xfail_conmon_differs(items)


@pytest.fixture(scope="session")
def monitor():
    """Absolute path of the monitor under test (CRI-O's monitor_path must
    be absolute: conmonmgr.New refuses anything else)."""
    b = os.path.abspath(monitor_binary())
    if not os.access(b, os.X_OK):
        pytest.fail(f"CTRMON_BIN={b} is not executable", pytrace=False)
    return b


@pytest.fixture(scope="session")
def probe(monitor):
    """What CRI-O learns at start-up from `<monitor> --version`
    (conmonmgr.New); CRI-O refuses to start when this raises."""
    return crioemu.conmonmgr_probe(monitor)


@pytest.fixture(scope="session")
def rootfs():
    if os.geteuid() != 0:
        pytest.fail("tests/crio needs root (runc, cgroups)", pytrace=False)
    return ensure_rootfs()


@pytest.fixture(scope="session")
def session_dir():
    yield from suite.session_dir(f"crio{os.getpid()}")


@pytest.fixture(scope="session")
def attach_socket_dir(session_dir):
    """container_attach_socket_dir: short, like /var/run/crio, because the
    monitor binds <dir>/<64-hex id>/attach and sun_path has 108 bytes."""
    d = os.path.join(session_dir, "s")
    os.makedirs(d, exist_ok=True)
    return d


@pytest.fixture(scope="session")
def cgroup_root():
    """Stands in for the kubelet's /kubepods/besteffort: pod cgroups
    (cgroupfs driver) go below it."""
    rel = f"/ctrtest-crio-{os.getpid()}"
    yield rel
    crioemu.rmdir_cgroup(rel)


@pytest.fixture(scope="session")
def runc(session_dir):
    """runc with a private --root: CRI-O's runtime_root."""
    yield from suite.private_runc(session_dir)


@pytest.fixture(autouse=True)
def test_time_limit():
    """No test may hang (CRI-O itself waits for some events without a
    timeout): SIGALRM aborts the test after CTRTEST_TEST_TIMEOUT seconds."""
    yield from suite.time_limit()


_work_counter = iter(range(1, 1 << 30))


@pytest.fixture
def work(session_dir):
    d = os.path.join(session_dir, f"t{next(_work_counter)}")
    os.makedirs(d)
    return d


@pytest.fixture
def node(work, rootfs, runc, monitor, attach_socket_dir, cgroup_root):
    """One CRI-O node for the test: its directories, its exit monitor
    (started before any container, as CRI-O's StartExitMonitor) and its
    operations (crioemu.CrioNode)."""
    n = crioemu.CrioNode(work, rootfs, runc, monitor, attach_socket_dir,
                         cgroup_root)
    yield n
    n.cleanup()
