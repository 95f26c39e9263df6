"""Fixtures for the monitor integration suite (see tests/lib/ctrtest).

Run:  CTRMON_BIN=<builddir>/monitor/ctrmon python3 -m pytest tests/integration -q
Env:  CTRTEST_KEEP=1 keeps the per-test work dirs under /run/ctrmon-tests.
      CTRTEST_TEST_TIMEOUT (default 60) bounds every test in seconds.
      CTRTEST_TIME_SCALE (default 1) stretches the deadlines that are only
      about time (conftest.scaled); the valgrind run sets it, since ctrmon
      runs 20-50x slower under memcheck.
      Under pytest-xdist (-n N) a test marked `alone` runs while no other
      test does (fixture `xdist_turn`).
      VALGRIND_LOG_DIR (set by the valgrind run, tests/lib/valgrind-ctrmon)
      holds valgrind's own log files, the fds valgrind adds to what the
      monitor's children inherit (fixture `valgrind_log_dir`).
"""
import fcntl
import os
import shutil
import subprocess
import sys

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))), "lib"))

from ctrtest.bundle import Bundle, SessionDir, write_process_spec  # noqa: E402,E501
from ctrtest.monitor import Monitor  # noqa: E402
from ctrtest.rootfs import ensure_rootfs  # noqa: E402
from ctrtest import suite  # noqa: E402

from ctrtest.wait import TIME_SCALE  # noqa: E402,F401  (CTRTEST_TIME_SCALE)


def pytest_configure(config):
    suite.register_conmon_differs(config, "ctrmon's or conmon 2.2.1's")
    config.addinivalue_line(
        "markers",
        "alone: measures the monitor's latency under a load of its own; under "
        "pytest-xdist no other test runs meanwhile")


def pytest_collection_modifyitems(config, items):
    suite.xfail_conmon_differs(items)


@pytest.fixture(scope="session")
def rootfs():
    if os.geteuid() != 0:
        pytest.skip("the integration suite needs root (runc, cgroups)")
    return ensure_rootfs()


@pytest.fixture(scope="session")
def session_dir():
    yield from suite.session_dir(f"s{os.getpid()}")


LOAD_HELPER_C = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                             "load", "load-helper.c")


@pytest.fixture(scope="session")
def load_helper(session_dir):
    """tests/load/load-helper.c, compiled (static) once per session: the
    writer whose output is a function of the byte offset, and its k8s-file
    checker."""
    d = os.path.join(session_dir, "load-helper")
    os.makedirs(d, exist_ok=True)
    path = os.path.join(d, "load-helper")
    subprocess.run(["gcc", "-static", "-O2", "-Wall", "-o", path, LOAD_HELPER_C],
                   check=True, timeout=120)
    return path


@pytest.fixture
def shared(env, load_helper):
    """A per-test directory bind-mounted at /run (bundle_opts shared_dir),
    holding load-helper."""
    d = os.path.join(env.work, "shared")
    os.makedirs(d)
    shutil.copy(load_helper, os.path.join(d, "load-helper"))
    return d


@pytest.fixture(scope="session")
def runc(session_dir):
    yield from suite.private_runc(session_dir)


def _turn_lock(name):
    """A lock file shared by the workers of one pytest-xdist run."""
    path = f"/tmp/ctrmon-xdist-{os.environ['PYTEST_XDIST_TESTRUNUID']}.{name}"
    return os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)


@pytest.fixture(autouse=True)
def xdist_turn(request):
    """Under pytest-xdist, a test marked `alone` holds the run's lock
    exclusively, every other test shares it. A gate lock in front gives the
    `alone` test its turn: once it waits at the gate's far side, no new test
    starts until it has run."""
    if "PYTEST_XDIST_TESTRUNUID" not in os.environ:
        yield
        return
    gate, turn = _turn_lock("gate"), _turn_lock("turn")
    try:
        alone = request.node.get_closest_marker("alone") is not None
        fcntl.flock(gate, fcntl.LOCK_EX)
        if alone:
            fcntl.flock(turn, fcntl.LOCK_EX)
            fcntl.flock(gate, fcntl.LOCK_UN)
        else:
            fcntl.flock(gate, fcntl.LOCK_UN)
            fcntl.flock(turn, fcntl.LOCK_SH)
        yield
    finally:
        os.close(turn)
        os.close(gate)


@pytest.fixture(autouse=True)
def test_time_limit(xdist_turn):
    """No test may hang: SIGALRM aborts it after CTRTEST_TEST_TIMEOUT
    seconds (the clock starts once the test has its turn)."""
    yield from suite.time_limit()


def scaled(seconds):
    """seconds x CTRTEST_TIME_SCALE (`from conftest import scaled`), for
    deadlines and durations that are only about time, never for what a
    test asserts about behaviour. The harness (ctrtest.monitor) scales its
    own waits the same way."""
    return seconds * TIME_SCALE


@pytest.fixture
def valgrind_log_dir():
    """The directory of valgrind's logs when ctrmon runs under
    tests/lib/valgrind-ctrmon, else None."""
    return os.environ.get("VALGRIND_LOG_DIR") or None


_work_counter = iter(range(1, 1 << 30))


@pytest.fixture
def work(session_dir):
    """A short, private per-test directory (short because conmon-term.*
    sockets under TMPDIR must fit in sun_path)."""
    d = os.path.join(session_dir, f"t{next(_work_counter)}")
    os.makedirs(d)
    return d


class Env:
    """Per-test factory for bundles and monitors; tears everything down."""

    def __init__(self, work, rootfs, runc):
        self.work = work
        self.rootfs = rootfs
        self.runc = runc
        self.monitors = []
        self._n = 0

    def bundle(self, args, **kw):
        self._n += 1
        return Bundle(os.path.join(self.work, f"b{self._n}"), self.rootfs,
                      args, **kw)

    def monitor(self, args=None, *, bundle=None, bundle_opts=None, **kw):
        """A Monitor for a new bundle running `args` (or a given bundle).

        terminal=True is mirrored into config.json automatically."""
        if bundle is None:
            bopts = dict(bundle_opts or {})
            bopts.setdefault("terminal", kw.get("terminal", False))
            bundle = self.bundle(args, **bopts)
        self._n += 1
        wd = os.path.join(self.work, f"m{self._n}")
        os.makedirs(wd)
        m = Monitor(wd, bundle, self.runc, **kw)
        self.monitors.append(m)
        return m

    def exec_monitor(self, container, args, **kw):
        """A Monitor in exec mode running `args` inside the running
        container of Monitor `container` (-b is a plain session dir)."""
        self._n += 1
        wd = os.path.join(self.work, f"x{self._n}")
        os.makedirs(wd)
        spec = write_process_spec(os.path.join(wd, "process.json"), args,
                                  terminal=kw.get("terminal", False))
        m = Monitor(wd, SessionDir(os.path.join(wd, "session")), self.runc,
                    cid=container.cid, exec_spec=spec, **kw)
        self.monitors.append(m)
        return m

    def cleanup(self):
        for m in self.monitors:
            m.cleanup()


@pytest.fixture
def env(work, rootfs, runc):
    e = Env(work, rootfs, runc)
    yield e
    e.cleanup()
