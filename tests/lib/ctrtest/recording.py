"""The recording runtime (tests/lib/recording-runtime) and launch wrappers
for tests that must control exactly what the monitor inherits.

The recording runtime writes one JSON record per invocation into a
directory and then execs real runc (or fails on demand), so a test can
compare the argv, environment, fds and cwd the monitor gave its runtime with
what the test passed in, while the container still runs for real."""
import glob
import json
import os

from .runc import Runc
from .wait import wait_for

LIB_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RECORDING_RUNTIME = os.path.join(LIB_DIR, "recording-runtime")


class Recorder:
    """A record directory plus the env that points the runtime at it."""

    def __init__(self, path, fail=None):
        self.path = path
        os.makedirs(path, exist_ok=True)
        self.env = {"RECORDING_RUNTIME_DIR": path}
        if fail is not None:
            status, text = fail
            self.env["RECORDING_RUNTIME_FAIL"] = f"{status}:{text}"

    def runc(self, real_runc):
        """A Runc bound to real_runc's state dir whose binary (what the
        monitor gets as -r) is the recording runtime."""
        return Runc(real_runc.root, binary=RECORDING_RUNTIME)

    def records(self, role):
        out = []
        for p in sorted(glob.glob(os.path.join(self.path, f"{role}-*.json"))):
            with open(p) as f:
                out.append(json.load(f))
        return out

    def one(self, role, timeout=10):
        """The single record for role (waits for it to appear)."""
        recs = wait_for(lambda: self.records(role), timeout,
                        f"a {role} record in {self.path}")
        assert len(recs) == 1, f"{len(recs)} {role} records: {recs}"
        return recs[0]


def environ_dict(record):
    """A record's environment as a dict (asserting no duplicate names)."""
    d = {}
    for e in record["environ"]:
        k, _, v = e.partition("=")
        assert k not in d, f"duplicate env var {k} in {record['role']}"
        d[k] = v
    return d


def fd_wrapper(path, binary, fds):
    """Write an executable /bin/sh script at path that opens the given
    files at exact fd numbers (fds: {number: file path}, opened read-only
    without O_CLOEXEC) and then execs binary with its own arguments: the
    monitor starts with those fds inherited, as podman's extra fds are."""
    redirs = " ".join(f"{n}<'{p}'" for n, p in sorted(fds.items()))
    with open(path, "w") as f:
        f.write(f"#!/bin/sh\nexec {redirs}\nexec '{binary}' \"$@\"\n")
    os.chmod(path, 0o755)
    return path


def listen_pid_self_wrapper(path, binary):
    """A wrapper that sets LISTEN_PID to its own pid, then execs binary:
    with --sync the monitor keeps that pid, so LISTEN_PID names it."""
    with open(path, "w") as f:
        f.write(f"#!/bin/sh\nLISTEN_PID=$$ exec '{binary}' \"$@\"\n")
    os.chmod(path, 0o755)
    return path


class ReservedLowFds:
    """Occupy fds 3..upto-1 in the test process (with /dev/null) so that
    pipes the Monitor creates, which keep their numbers in the child, never
    collide with the fixed numbers a wrapper opens."""

    def __init__(self, upto=10):
        self.upto = upto
        self.held = []

    def __enter__(self):
        while True:
            fd = os.open("/dev/null", os.O_RDONLY | os.O_CLOEXEC)
            if fd >= self.upto:
                os.close(fd)
                break
            self.held.append(fd)
        return self

    def __exit__(self, *exc):
        for fd in self.held:
            os.close(fd)
        self.held = []
