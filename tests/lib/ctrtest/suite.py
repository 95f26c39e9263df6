"""What the runc-driven pytest suites (tests/integration, tests/crio,
tests/podman5) share in their conftest.py: the conmon_differs marker, the
per-test time limit, the session's state directory and its private runc.
Each conftest keeps its own fixtures and calls these from them."""

import os
import shutil
import signal
import subprocess

import pytest

from .monitor import monitor_binary
from .runc import Runc

STATE_ROOT = "/run/ctrmon-tests"
TEST_TIMEOUT = int(os.environ.get("CTRTEST_TEST_TIMEOUT", "60"))
REFERENCE_CONMON = "conmon version 2.1.6"


def register_conmon_differs(config, whose):
    """Declare the marker conmon_differs(reason); `whose` says whose
    expectation such a test holds (e.g. "ctrmon's (what CRI-O needs)")."""
    config.addinivalue_line(
        "markers",
        f"conmon_differs(reason): the expectation is {whose} and Debian's "
        "conmon 2.1.6 behaves differently; such tests are xfail when "
        f"CTRMON_BIN reports '{REFERENCE_CONMON}'")


def _binary_version():
    try:
        p = subprocess.run([monitor_binary(), "--version"],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           timeout=10)
        return p.stdout.decode(errors="replace").splitlines()[0]
    except Exception:  # missing binary: the tests will say so
        return ""


def xfail_conmon_differs(items):
    """From pytest_collection_modifyitems: when the monitor under test is
    Debian's conmon 2.1.6, its conmon_differs tests are expected to fail."""
    if _binary_version() != REFERENCE_CONMON:
        return
    for item in items:
        m = item.get_closest_marker("conmon_differs")
        if m:
            reason = m.args[0] if m.args else m.kwargs.get("reason", "")
            item.add_marker(pytest.mark.xfail(
                reason="conmon 2.1.6: " + reason, strict=False))


class TimeLimitExceeded(Exception):
    pass


def time_limit(seconds=TEST_TIMEOUT):
    """For a fixture to `yield from`: SIGALRM aborts the test after
    `seconds`, so that no test hangs."""
    def on_alarm(signum, frame):
        raise TimeLimitExceeded(f"test exceeded {seconds}s")
    old = signal.signal(signal.SIGALRM, on_alarm)
    signal.alarm(seconds)
    yield
    signal.alarm(0)
    signal.signal(signal.SIGALRM, old)


def session_dir(name):
    """For a session fixture to `yield from`: STATE_ROOT/<name>, removed at
    the end unless CTRTEST_KEEP is set."""
    d = os.path.join(STATE_ROOT, name)
    os.makedirs(d, exist_ok=True)
    yield d
    if not os.environ.get("CTRTEST_KEEP"):
        shutil.rmtree(d, ignore_errors=True)


def private_runc(session_dir):
    """For a session fixture to `yield from`: runc with its own --root in
    the session directory; what a test failed to delete goes at the end."""
    r = Runc(os.path.join(session_dir, "runc"))
    yield r
    for cid in r.list_ids():
        r.delete(cid)
