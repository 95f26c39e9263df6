"""Bounded polling: every wait in the suite goes through here, so nothing
can hang forever."""
import os
import time

# CTRTEST_TIME_SCALE (default 1) stretches the harness's own deadlines
# (Monitor's waits for the foreground exit, the sync pipe, the exit file, the
# monitor's end): the valgrind pass sets it, since memcheck slows ctrmon
# 20-50x. Tests scale their own time-only deadlines with scaled().
TIME_SCALE = float(os.environ.get("CTRTEST_TIME_SCALE", "1"))


def scaled(seconds):
    """seconds x CTRTEST_TIME_SCALE."""
    return seconds * TIME_SCALE


class WaitTimeout(AssertionError):
    """A condition did not become true in time (an assertion failure)."""


def wait_for(predicate, timeout, what, interval=0.02):
    """Poll predicate() until it returns a truthy value; return that value.

    Raises WaitTimeout naming `what` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise WaitTimeout(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)
