"""Shared helpers for the monitor's systemd tests (test_units.py,
test_scopes.py): where the built monitor and unit templates are, unique ids,
bounded polling, /proc/PID/cgroup parsing and cleanup of directories on the
file system the sandbox shares with the host.

Env: CTRMON_BIN        the monitor binary (default: a build found below)
     CTRMON_BUILD_DIR  the meson build dir holding monitor/ctrmon and
                       systemd/{system,user}-ctrmon@.service
"""
import os
import re
import shutil
import subprocess
import tempfile
import time
import uuid

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
PYTHON = "/usr/bin/python3"
RUNC = "/usr/sbin/runc"
MAKE_BUNDLE = os.path.join(HERE, "make_bundle.py")
MAKE_ROOTFS = os.path.join(REPO, "tests", "lib", "make-rootfs.sh")
SCOPE_PROBE = os.path.join(HERE, "scope_probe.py")
BUILD_CANDIDATES = (os.path.join(REPO, "build"), "/tmp/build-lead", "/tmp/build-h10")


@pytest.fixture(scope="session")
def rootfs_cache():
    """A rootfs from make-rootfs.sh, world-readable, for make_bundle.py
    --rootfs-from (import this fixture into the test module)."""
    d = tempfile.mkdtemp(prefix="ctrmon-rootfs-", dir="/tmp")
    try:
        os.chmod(d, 0o755)
        subprocess.run(["sh", MAKE_ROOTFS, os.path.join(d, "rootfs")], check=True, timeout=120)
        yield os.path.join(d, "rootfs")
    finally:
        shutil.rmtree(d, ignore_errors=True)


def build_dir():
    """The meson build dir: $CTRMON_BUILD_DIR, the one $CTRMON_BIN lives in,
    or the first candidate with a monitor binary; skip if there is none."""
    env = os.environ.get("CTRMON_BUILD_DIR")
    if env:
        return os.path.abspath(env)
    binary = os.environ.get("CTRMON_BIN")
    if binary:
        return os.path.dirname(os.path.dirname(os.path.abspath(binary)))
    for cand in BUILD_CANDIDATES:
        if os.access(os.path.join(cand, "monitor", "ctrmon"), os.X_OK):
            return cand
    pytest.skip("no monitor build (set CTRMON_BUILD_DIR or CTRMON_BIN)")


def monitor_binary():
    binary = os.environ.get("CTRMON_BIN") or os.path.join(build_dir(), "monitor", "ctrmon")
    if not os.access(binary, os.X_OK):
        pytest.fail(f"monitor binary {binary} does not exist or is not executable")
    return os.path.abspath(binary)


def shipped_template(kind):
    """Text of the generated unit template KIND ("system" or "user")."""
    path = os.path.join(build_dir(), "systemd", f"{kind}-ctrmon@.service")
    if not os.path.exists(path):
        pytest.fail(f"no generated unit template {path}")
    with open(path) as f:
        return f.read()


def installable_template(kind, binary):
    """The shipped template with only ExecStart's program replaced by BINARY."""
    text, n = re.subn(r"^(ExecStart=)(\S+)", lambda m: m.group(1) + binary,
                      shipped_template(kind), count=1, flags=re.M)
    assert n == 1, "no ExecStart= in the shipped template"
    return text


def exec_start_option(template, option):
    """The value of OPTION (e.g. --bundle) in the template's ExecStart."""
    m = re.search(r"^ExecStart=((?:.*\\\n)*.*)$", template, flags=re.M)
    assert m, "no ExecStart= in the template"
    words = m.group(1).replace("\\\n", " ").split()
    assert option in words, f"{option} not in ExecStart: {words}"
    return words[words.index(option) + 1]


def unique_id(prefix, length):
    """PREFIX + random hex, LENGTH characters in all: ids must not collide
    with parallel sessions (/home, /var and /tmp are shared)."""
    return prefix + uuid.uuid4().hex[:length - len(prefix)]


def wait_for(fn, timeout, interval=0.1):
    """fn()'s first truthy result within TIMEOUT seconds, else the last one."""
    deadline = time.monotonic() + timeout
    while True:
        r = fn()
        if r or time.monotonic() > deadline:
            return r
        time.sleep(interval)


def out(p):
    return f"rc={p.returncode}\nstdout:\n{p.stdout}\nstderr:\n{p.stderr}"


def cgroup_lines(text):
    """{"name=systemd": path, "": path (the 0:: line), "pids": path, ...}."""
    found = {}
    for line in text.splitlines():
        parts = line.split(":", 2)
        if len(parts) == 3:
            found[parts[1]] = parts[2]
    return found


def show(sandbox, unit, props, user=None):
    """{prop: value} of `systemctl [--user] show -p ...`."""
    argv = ["systemctl"] + (["--user"] if user else []) + ["show", unit]
    for prop in props:
        argv += ["-p", prop]
    p = sandbox.run(argv, user=user, timeout=30)
    assert p.returncode == 0, out(p)
    return dict(line.split("=", 1) for line in p.stdout.splitlines() if "=" in line)


class MadeDirs:
    """mkdir -p that remembers what it created, so that cleanup() removes only
    that (and only when empty: parallel sessions may share the parents)."""

    def __init__(self):
        self.created = []

    def makedirs(self, path, owner=None):
        missing = []
        d = os.path.abspath(path)
        while not os.path.exists(d):
            missing.append(d)
            d = os.path.dirname(d)
        for d in reversed(missing):
            os.mkdir(d)
            if owner is not None:
                os.chown(d, owner.pw_uid, owner.pw_gid)
            self.created.append(d)
        return path

    def cleanup(self, *trees):
        for tree in trees:
            shutil.rmtree(tree, ignore_errors=True)
        for d in reversed(self.created):
            try:
                os.rmdir(d)
            except OSError:
                pass
        self.created = []
