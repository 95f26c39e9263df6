"""Rootless worlds: the same PodmanWorld, with podman run as the dedicated
test user ctrmon-compat (created or repaired on first use by
tests/lib/testusers.py: a regular user with home and subuid/subgid ranges
of its own) through setpriv, with its own XDG_RUNTIME_DIR and storage owned by
that user, and --network none (/dev/net/tun is root-only here).  The test
itself stays root, so that it can read /proc of the user's monitors."""

import os
import pwd
import signal
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "lib"))

import testusers  # noqa: E402
from compat import PodmanWorld, proc_stat  # noqa: E402

USER = "ctrmon-compat"
BASE = "/var/tmp/ctrmon-compat-rl"


def ensure_user():
    """USER created or repaired (regular uid, home, own group, login shell,
    subuid/subgid ranges overlapping nobody's); its pwd entry."""
    return testusers.ensure_user(USER, comment="ctrmon compat tests", shell="/bin/sh")


def chown_tree(path, uid, gid):
    for dirpath, dirnames, filenames in os.walk(path):
        os.chown(dirpath, uid, gid)
        for f in filenames:
            os.lchown(os.path.join(dirpath, f), uid, gid)


class RootlessWorld(PodmanWorld):
    def __init__(self, monitor, tag):
        pw = pwd.getpwnam(USER)
        self.uid, self.gid, self.home = pw.pw_uid, pw.pw_gid, pw.pw_dir
        os.makedirs(BASE, exist_ok=True)
        os.chmod(BASE, 0o755)
        super().__init__(monitor, base=os.path.join(BASE, f"r{os.getpid()}{tag}"))
        self.xdg = os.path.join(self.base, "xdg")
        os.makedirs(self.xdg, mode=0o700)
        chown_tree(self.base, self.uid, self.gid)
        self.env.update({"HOME": self.home, "USER": USER, "LOGNAME": USER,
                         "XDG_RUNTIME_DIR": self.xdg})
        self.env.pop("XDG_CONFIG_HOME", None)
        self.env.pop("XDG_DATA_HOME", None)

    def argv(self, *args, conmon=True):
        return ["setpriv", "--reuid", str(self.uid), "--regid", str(self.gid),
                "--init-groups", *super().argv(*args, conmon=conmon)]

    def gate(self):
        g = super().gate()
        os.chown(g.path, self.uid, self.gid)
        return g

    def import_image(self):
        super().import_image()


def new_world(monitor, tag):
    w = RootlessWorld(monitor, tag)
    try:
        w.import_image()
    except BaseException:
        w.teardown()
        raise
    return w


def _environ_mentions(pid, keys):
    try:
        with open(f"/proc/{pid}/environ", "rb") as f:
            env = f.read()
    except OSError:
        return False
    return any(k in env for k in keys)


def kill_leftovers(bases=None):
    """The rootless pause processes podman leaves for the test user: only
    those of the given world directories (default: everything under BASE),
    found by their environment (XDG_RUNTIME_DIR, TMPDIR), so that another
    session's worlds of the same user stay alive."""
    keys = [os.fsencode(b) for b in (bases or [BASE])]
    uid = pwd.getpwnam(USER).pw_uid
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            if os.stat(f"/proc/{entry}").st_uid != uid:
                continue
        except OSError:
            continue
        st = proc_stat(entry)
        if st and st[0] != "Z" and _environ_mentions(entry, keys):
            try:
                os.kill(int(entry), signal.SIGKILL)
            except ProcessLookupError:
                pass
    try:
        os.rmdir(BASE)
    except OSError:
        pass
