"""The bench's workspace: temp dirs, the compiled helper, the runc state
dir, bundles, the machine description, and cleanup of all of it.

Everything lives under one directory in /var/tmp (on disk, so k8s-file
logs hit a real filesystem) and one private runc --root; cleanup() deletes
every container in that root by id and removes the directory. Exit and
persist dirs go on a tmpfs mounted inside it (run/), as podman's are: its
runroot is /run (or $XDG_RUNTIME_DIR), a tmpfs on a systemd machine, while
the container's log is in its graphroot on disk."""
import ctypes
import datetime
import itertools
import os
import platform
import select
import shutil
import struct
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(REPO, "tests", "lib"))

from ctrtest import procs  # noqa: E402
from ctrtest.bundle import RUNC, Bundle  # noqa: E402
from ctrtest.monitor import Monitor, new_cid  # noqa: E402,F401
from ctrtest.rootfs import ensure_rootfs  # noqa: E402
from ctrtest.runc import Runc  # noqa: E402

HELPER_SRC = os.path.join(HERE, "helper.c")
HELPER_IN_CTR = "/run/ctrbench-helper"  # the shared dir is mounted at /run


class Workspace:
    def __init__(self, base="/var/tmp"):
        self.root = os.path.join(base, f"ctrmon-bench.{os.getpid()}")
        os.makedirs(self.root)
        self.shared = os.path.join(self.root, "shared")
        os.makedirs(self.shared)
        self.helper = os.path.join(self.shared, "ctrbench-helper")
        self.runc = Runc(os.path.join(self.root, "runc-root"))
        self.rootfs = None
        self.run = os.path.join(self.root, "run")
        self.run_mounted = False
        self._n = itertools.count(1)
        self.monitors = []  # every Monitor started, for cleanup

    def setup(self):
        subprocess.run(["gcc", "-static", "-O2", "-Wall", "-o", self.helper,
                        HELPER_SRC], check=True, timeout=120)
        self.rootfs = ensure_rootfs()
        os.makedirs(self.run)
        subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64m,mode=0755",
                        "ctrmon-bench-run", self.run], check=True, timeout=30)
        self.run_mounted = True

    def new_dir(self, tag):
        d = os.path.join(self.root, f"{next(self._n):05d}-{tag}")
        os.makedirs(d)
        return d

    def run_dirs(self, workdir):
        """Exit and persist dirs for the monitor of workdir, on the tmpfs."""
        base = os.path.join(self.run, os.path.basename(workdir))
        return {"exit_dir": os.path.join(base, "exits"),
                "persist_dir": os.path.join(base, "persist")}

    def bundle(self, workdir, args):
        """A bundle in workdir/bundle running args (the helper is at
        HELPER_IN_CTR inside the container)."""
        return Bundle(os.path.join(workdir, "bundle"), self.rootfs, args,
                      shared_dir=self.shared)

    def monitor(self, workdir, bundle, binary, **kw):
        for k, v in self.run_dirs(workdir).items():
            kw.setdefault(k, v)
        m = Monitor(workdir, bundle, self.runc, binary=binary,
                    cid=new_cid(os.path.basename(workdir)), **kw)
        self.monitors.append(m)
        return m

    def finish(self, mon, workdir=None):
        """Delete the container, make sure the monitor is gone, drop the
        work dir (logs can be GiBs)."""
        try:
            mon.cleanup()
        finally:
            if mon in self.monitors:
                self.monitors.remove(mon)
            if workdir:
                shutil.rmtree(workdir, ignore_errors=True)
                shutil.rmtree(os.path.join(self.run, os.path.basename(workdir)),
                              ignore_errors=True)

    def cleanup(self):
        for m in list(self.monitors):
            try:
                m.cleanup()
            except Exception as e:  # keep cleaning the rest
                print(f"cleanup: {m.cid}: {e}", file=sys.stderr)
        self.monitors.clear()
        for cid in self.runc.list_ids():
            self.runc.delete(cid)
        if self.run_mounted:
            subprocess.run(["umount", self.run], check=False, timeout=30)
            self.run_mounted = False
        shutil.rmtree(self.root, ignore_errors=True)


def wait_gone(pid, timeout=10):
    import time
    deadline = time.monotonic() + timeout
    while not procs.is_gone(pid):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.002)
    return True


# -- inotify (ctypes; the stdlib has none) -------------------------------

IN_CLOSE_WRITE = 0x8
IN_MOVED_TO = 0x80
IN_CREATE = 0x100
_libc = ctypes.CDLL(None, use_errno=True)


class Inotify:
    """Watch one directory for a finished file (renamed into place or
    closed after writing)."""

    def __init__(self, directory):
        self.fd = _libc.inotify_init1(os.O_CLOEXEC | os.O_NONBLOCK)
        if self.fd < 0:
            raise OSError(ctypes.get_errno(), "inotify_init1")
        wd = _libc.inotify_add_watch(self.fd, os.fsencode(directory),
                                     IN_CLOSE_WRITE | IN_MOVED_TO)
        if wd < 0:
            raise OSError(ctypes.get_errno(), "inotify_add_watch")

    def wait(self, name, timeout, pidfd=None, on_pid_exit=None):
        """Block until `name` is finished; return time.time_ns() taken
        right after the wake-up that delivered its event. If pidfd is
        given, on_pid_exit(time.time_ns()) is called when it turns
        readable (the process has exited) while waiting, or
        on_pid_exit(None) if it turned readable unseen before the file."""
        import time
        want = os.fsencode(name)
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"no inotify event for {name}")
            fds = [self.fd] + ([pidfd] if pidfd is not None else [])
            r, _, _ = select.select(fds, [], [], left)
            if pidfd is not None and pidfd in r:
                # Both ready in one wake-up: we woke too late to tell
                # them apart, so the split is unknown for this run.
                on_pid_exit(None if self.fd in r else time.time_ns())
                pidfd = None
            if self.fd not in r:
                continue
            t = time.time_ns()
            buf = os.read(self.fd, 65536)
            pos = 0
            while pos < len(buf):
                _wd, _mask, _cookie, ln = struct.unpack_from("iIII", buf, pos)
                nm = buf[pos + 16:pos + 16 + ln].rstrip(b"\0")
                pos += 16 + ln
                if nm == want:
                    return t

    def close(self):
        os.close(self.fd)


# -- machine description --------------------------------------------------

def machine():
    model = "?"
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    runc_v = subprocess.run([RUNC, "--version"], stdout=subprocess.PIPE,
                            text=True).stdout.splitlines()
    return {
        "date": datetime.datetime.now(datetime.timezone.utc)
        .strftime("%Y-%m-%d %H:%M:%S UTC"),
        "nproc": os.cpu_count(),
        "model": model,
        "kernel": platform.release(),
        "runc": runc_v[0] if runc_v else "?",
    }


def binary_version(path):
    try:
        p = subprocess.run([path, "--version"], stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, text=True, timeout=10)
        return " / ".join(p.stdout.splitlines()[:2])
    except OSError as e:
        return f"? ({e})"
