"""Bounded polling: every wait in the suite goes through here, so nothing
can hang forever."""
import time


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
