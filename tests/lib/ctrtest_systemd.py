"""A real systemd for pytest: a session-scoped sandbox around tests/lib/systemd-sandbox.

Use from a conftest.py (tests/lib on sys.path):

    from ctrtest_systemd import systemd_sandbox, test_user  # noqa: F401  (fixtures)

    def test_x(systemd_sandbox):
        p = systemd_sandbox.run(["systemctl", "is-system-running"])
        p = systemd_sandbox.run("systemctl --user status", user=systemd_sandbox.user)

run() takes an argv list or a shell string (run by /bin/sh -c), never raises on
a non-zero exit and returns a CompletedProcess with text stdout and stderr;
check=True raises CalledProcessError instead. A timeout kills the command
inside too (the harness sets --pdeathsig) and raises subprocess.TimeoutExpired.

Env: CTRTEST_SYSTEMD_KEEP=1 leaves the sandbox up at session end;
     CTRTEST_SYSTEMD_NAME overrides the sandbox name (default ctrmon-pytest-<pid>).
The file system, /tmp and the network are shared with the host.
"""
import os
import subprocess

import pytest

import testusers  # tests/lib, on sys.path like this module

HARNESS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "systemd-sandbox")
TEST_USER = "ctrmon-test"


def ensure_user(name=TEST_USER):
    """NAME as a regular user with home, own group, login shell and subuid and
    subgid ranges, created or repaired (tests/lib/testusers.py; journald keeps
    a per-user journal only for a regular uid). Returns its pwd entry."""
    return testusers.ensure_user(name)


class SystemdSandbox:
    """One booted sandbox; see tests/lib/systemd-sandbox for the mechanics."""

    def __init__(self, name, user=None):
        self.name = name
        self.user = user
        self.pid = None

    def _harness(self, *args, timeout=120, **kw):
        return subprocess.run([HARNESS, *args], stdin=subprocess.DEVNULL,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True, timeout=timeout, **kw)

    def up(self, timeout=120):
        p = self._harness("up", self.name, timeout=timeout)
        if p.returncode != 0:
            raise RuntimeError(f"systemd-sandbox up {self.name} failed "
                               f"(rc {p.returncode}): {p.stderr.strip()}")
        self.pid = int(p.stdout.split()[-1])
        return self.pid

    def down(self, timeout=60):
        return self._harness("down", self.name, timeout=timeout)

    def status(self):
        """dict of `systemd-sandbox status` (cgroup= lines as the list 'cgroups')."""
        p = self._harness("status", self.name, timeout=30)
        out = {"cgroups": [], "rc": p.returncode}
        for line in p.stdout.splitlines():
            k, _, v = line.partition("=")
            if k == "cgroup":
                out["cgroups"].append(v)
            else:
                out[k] = v
        return out

    def run(self, cmd, user=None, timeout=60, input=None, check=False, env=None):
        """Run CMD inside (as root, or as USER with its user manager and bus)."""
        argv = ["/bin/sh", "-c", cmd] if isinstance(cmd, str) else list(cmd)
        if user is None:
            full = [HARNESS, "exec", self.name, *argv]
        else:
            full = [HARNESS, "user-exec", self.name, str(user), *argv]
        e = None
        if env:
            e = dict(os.environ)
            e.update(env)
        p = subprocess.run(full, input=input,
                           stdin=None if input is not None else subprocess.DEVNULL,
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           text=True, timeout=timeout, env=e)
        if check and p.returncode != 0:
            raise subprocess.CalledProcessError(p.returncode, argv, p.stdout, p.stderr)
        return p


def _require_root():
    if os.geteuid() != 0:
        pytest.skip("the systemd sandbox needs root")


@pytest.fixture(scope="session")
def test_user():
    """pwd entry of the unprivileged test user (created if needed)."""
    _require_root()
    return ensure_user()


@pytest.fixture(scope="session")
def systemd_sandbox(test_user):
    """A booted SystemdSandbox for the whole session, halted at its end."""
    name = os.environ.get("CTRTEST_SYSTEMD_NAME", f"ctrmon-pytest-{os.getpid()}")
    sb = SystemdSandbox(name, user=test_user.pw_name)
    try:
        sb.up()
    except Exception:
        sb.down()
        raise
    yield sb
    if not os.environ.get("CTRTEST_SYSTEMD_KEEP"):
        p = sb.down()
        if p.returncode != 0:
            raise RuntimeError(f"systemd-sandbox down {name} failed: {p.stderr.strip()}")
