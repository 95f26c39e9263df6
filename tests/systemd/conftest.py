"""Fixtures for the systemd suite: one sandbox per session (tests/lib/ctrtest_systemd.py).

Run:  /usr/bin/python3 -m pytest tests/systemd -q     (as root)
Env:  CTRMON_BIN             monitor binary for the journald test (required in CI)
      CTRTEST_SYSTEMD_KEEP=1 leave the session sandbox up
      CTRTEST_TEST_TIMEOUT   bound on every test in seconds (default 120)
"""
import os
import signal
import sys

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))), "lib"))

from ctrtest_systemd import systemd_sandbox, test_user  # noqa: E402,F401

TEST_TIMEOUT = int(os.environ.get("CTRTEST_TEST_TIMEOUT", "120"))


class _Timeout(Exception):
    pass


def _alarm(signum, frame):
    raise _Timeout(f"test exceeded {TEST_TIMEOUT}s (CTRTEST_TEST_TIMEOUT)")


@pytest.fixture(autouse=True)
def _bounded():
    """Every test is bounded even if one of its own timeouts is missing."""
    old = signal.signal(signal.SIGALRM, _alarm)
    signal.alarm(TEST_TIMEOUT)
    yield
    signal.alarm(0)
    signal.signal(signal.SIGALRM, old)
