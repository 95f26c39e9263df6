"""Fixtures for the install suite: the tree installed into a DESTDIR
(test_install.py) and the Debian packages built from it and installed on
this machine (test_deb.py).

Run:  /usr/bin/python3 -m pytest tests/install -q     (as root)
Env:  CTRTEST_TEST_TIMEOUT   bound on every test in seconds (default 300;
                             the first test of a module also builds)
"""
import os
import signal
import sys

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(REPO, "tests", "lib"))

from ctrtest_systemd import systemd_sandbox, test_user  # noqa: E402,F401

TEST_TIMEOUT = int(os.environ.get("CTRTEST_TEST_TIMEOUT", "300"))


class _Timeout(Exception):
    pass


def _alarm(signum, frame):
    raise _Timeout(f"test exceeded {TEST_TIMEOUT}s (CTRTEST_TEST_TIMEOUT)")


@pytest.fixture(autouse=True)
def _bounded():
    if os.geteuid() != 0:
        pytest.fail("the install suite runs containers and apt-get: run it as root",
                    pytrace=False)
    old = signal.signal(signal.SIGALRM, _alarm)
    signal.alarm(TEST_TIMEOUT)
    yield
    signal.alarm(0)
    signal.signal(signal.SIGALRM, old)
