"""A private podman world for one pytest session, driven against the monitor
under test (env CTRMON_BIN).

Everything podman writes lives under /var/tmp/ctrmon-podman-tests/<session>:
storage (--root), run state (--runroot), tmp_dir (exit files, events log) and
the configuration files handed over with CONTAINERS_CONF and
CONTAINERS_STORAGE_CONF.  The monitor is given both with --conmon on every
command and as containers.conf's conmon_path, because podman only honours
--conmon for the one command: the exit command (`podman container cleanup`),
restart policies and later execs read conmon_path.

podman silently falls back to other conmon binaries when it dislikes the one
it was given, so tests prove which monitor ran with verify_monitor(), which
reads ConmonPid while the container runs and resolves /proc/PID/exe.
"""

import functools
import itertools
import os
import re
import shutil
import subprocess
import time

IMAGE = "localhost/ctrmon-busybox:latest"
BASE_DIR = "/var/tmp/ctrmon-podman-tests"
PODMAN = shutil.which("podman") or "/usr/bin/podman"
REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
MAKE_ROOTFS = os.path.join(REPO, "tests", "lib", "make-rootfs.sh")

DEFAULT_TIMEOUT = 60


class PodmanError(AssertionError):
    pass


@functools.lru_cache(maxsize=None)
def podman_version():
    """(major, minor, patch) of PODMAN, from `podman --version`: the few
    expectations that differ between podman 4 and 5 with every monitor are
    chosen by it."""
    out = subprocess.run([PODMAN, "--version"], stdout=subprocess.PIPE,
                         stderr=subprocess.DEVNULL, check=True, timeout=60).stdout
    m = re.search(rb"version (\d+)\.(\d+)\.(\d+)", out)
    if not m:
        raise PodmanError(f"cannot parse `podman --version`: {out!r}")
    return tuple(int(x) for x in m.groups())


def proc_stat(pid):
    """(state, ppid, starttime) of pid, or None if it does not exist."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            data = f.read().decode("ascii", "replace")
    except (FileNotFoundError, ProcessLookupError):
        return None
    # comm may hold spaces and parentheses: split at the last ')'.
    rest = data[data.rindex(")") + 2:].split()
    return rest[0], int(rest[1]), int(rest[19])


def same_process_alive(pid, starttime):
    """'gone', 'zombie' or 'alive' for the process identified by (pid, start)."""
    st = proc_stat(pid)
    if st is None or st[2] != starttime:
        return "gone"
    return "zombie" if st[0] in ("Z", "X") else "alive"


def zombie_children(pid):
    """Pids of zombie processes whose parent is pid."""
    out = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        st = proc_stat(entry)
        if st and st[1] == pid and st[0] == "Z":
            out.append(int(entry))
    return out


def wait_until(pred, timeout, interval=0.05, what="condition"):
    deadline = time.monotonic() + timeout
    while True:
        v = pred()
        if v:
            return v
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


class MonitorInfo:
    def __init__(self, name, conmon_pid, conmon_start, ctr_pid, ctr_start):
        self.name = name
        self.conmon_pid = conmon_pid
        self.conmon_start = conmon_start
        self.ctr_pid = ctr_pid
        self.ctr_start = ctr_start

    def __repr__(self):
        return (f"MonitorInfo({self.name!r}, monitor={self.conmon_pid}, "
                f"container={self.ctr_pid})")


class Gate:
    """A host directory bind-mounted at /gate: the container waits for
    /gate/NAME so the test can inspect it while it is known to be running."""

    def __init__(self, path):
        self.path = path
        os.makedirs(path, exist_ok=True)

    @property
    def volume(self):
        return ["-v", f"{self.path}:/gate"]

    @staticmethod
    def wait_cmd(name="go", then=""):
        return (f"while [ ! -e /gate/{name} ]; do usleep 20000; done; {then}")

    def open(self, name="go"):
        with open(os.path.join(self.path, name), "w"):
            pass

    def write(self, name, data):
        with open(os.path.join(self.path, name), "wb") as f:
            f.write(data)

    def read(self, name):
        """Contents of /gate/NAME, None while it does not exist."""
        try:
            with open(os.path.join(self.path, name), "rb") as f:
                return f.read()
        except FileNotFoundError:
            return None


class PodmanWorld:
    def __init__(self, monitor, tag="", base=None):
        """tag: appended to the session directory name, so that one process
        can hold several worlds (tests/compat runs one per monitor);
        base: the world's directory instead (it must not exist yet)."""
        self.monitor = monitor
        self.monitor_real = os.path.realpath(monitor)
        os.makedirs(BASE_DIR, exist_ok=True)
        # podman refuses a runroot longer than 50 characters (the attach
        # socket path must fit sun_path): keep the session name short.
        self.base = base or os.path.join(BASE_DIR, f"s{os.getpid()}{tag}")
        self.root = os.path.join(self.base, "root")
        self.runroot = os.path.join(self.base, "run")
        self.tmp = os.path.join(self.base, "tmp")
        self.scratch = os.path.join(self.base, "scratch")
        for d in (self.root, self.runroot, self.tmp, self.scratch):
            os.makedirs(d)
        self.containers_conf = os.path.join(self.base, "containers.conf")
        self.storage_conf = os.path.join(self.base, "storage.conf")
        self.driver = "overlay"
        self._write_conf()
        env = dict(os.environ)
        for k in list(env):
            if k.startswith(("CONTAINERS_", "REGISTRIES_")):
                del env[k]
        env.update({
            "CONTAINERS_CONF": self.containers_conf,
            "CONTAINERS_STORAGE_CONF": self.storage_conf,
            "TMPDIR": self.tmp,
            "LC_ALL": "C",
            # podman 5 warns on every command that cgroup v1 (this host's
            # hybrid layout) is deprecated, on stderr, with either monitor;
            # podman 4 ignores the variable.
            "PODMAN_IGNORE_CGROUPSV1_WARNING": "1",
        })
        self.env = env
        self._names = itertools.count(1)
        self._gates = itertools.count(1)
        # Monitors seen by verify_monitor() since the last take_monitors().
        self.monitors = []

    # -- configuration -----------------------------------------------------

    def _write_conf(self):
        with open(self.containers_conf, "w") as f:
            f.write(f"""\
[containers]
default_ulimits = ["nofile=20000:20000", "nproc=4096:4096"]
log_driver = "k8s-file"
netns = "none"
cgroupns = "host"
cgroups = "enabled"
init = false

[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
events_logger = "file"
conmon_path = ["{self.monitor}"]
tmp_dir = "{self.tmp}"
volume_path = "{os.path.join(self.root, 'volumes')}"
static_dir = "{os.path.join(self.root, 'libpod')}"
num_locks = 2048

[network]
# Private, so that `podman system reset` cannot remove anybody else's
# networks from the shared /etc/containers/networks.
network_config_dir = "{os.path.join(self.base, 'networks')}"
""")
        with open(self.storage_conf, "w") as f:
            f.write(f"""\
[storage]
driver = "{self.driver}"
graphroot = "{self.root}"
runroot = "{self.runroot}"
""")

    # -- running podman ----------------------------------------------------

    def argv(self, *args, conmon=True):
        a = [PODMAN, "--root", self.root, "--runroot", self.runroot,
             "--storage-driver", self.driver]
        if conmon:
            a += ["--conmon", self.monitor]
        return a + [str(x) for x in args]

    def podman(self, *args, input=None, timeout=DEFAULT_TIMEOUT, check=False,
               conmon=True, extra_env=None):
        """Run podman; returns (rc, stdout bytes, stderr bytes).
        extra_env: variables added to the world's environment."""
        argv = self.argv(*args, conmon=conmon)
        env = dict(self.env, **(extra_env or {}))
        try:
            p = subprocess.run(argv, input=input, env=env,
                               stdin=None if input is not None else subprocess.DEVNULL,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               timeout=timeout)
        except subprocess.TimeoutExpired as e:
            raise PodmanError(f"podman {' '.join(map(str, args))}: timed out after "
                              f"{timeout}s; stdout={e.stdout!r} stderr={e.stderr!r}")
        if check and p.returncode != 0:
            raise PodmanError(f"podman {' '.join(map(str, args))}: rc={p.returncode} "
                              f"stdout={p.stdout!r} stderr={p.stderr!r}")
        return p.returncode, p.stdout, p.stderr

    def ok(self, *args, **kw):
        """Run podman, require rc 0, return stdout bytes."""
        kw["check"] = True
        return self.podman(*args, **kw)[1]

    def popen(self, *args, **kw):
        kw.setdefault("env", self.env)
        kw.setdefault("stdin", subprocess.DEVNULL)
        kw.setdefault("stdout", subprocess.PIPE)
        kw.setdefault("stderr", subprocess.PIPE)
        return subprocess.Popen(self.argv(*args), **kw)

    def inspect(self, name, fmt):
        return self.ok("inspect", "--type", "container", "--format", fmt,
                       name).decode().strip()

    def name(self, prefix="t"):
        return f"{prefix}{next(self._names)}"

    def gate(self):
        return Gate(os.path.join(self.scratch, f"gate{next(self._gates)}"))

    # -- the monitor check -------------------------------------------------

    def wait_running(self, name, timeout=30):
        def running():
            rc, out, _ = self.podman("inspect", "--type", "container", "--format",
                                     "{{.State.Running}} {{.State.ConmonPid}} {{.State.Pid}}",
                                     name)
            if rc != 0:
                return None
            r, cpid, pid = out.decode().split()
            if r == "true" and int(cpid) > 0 and int(pid) > 0:
                return int(cpid), int(pid)
            return None
        return wait_until(running, timeout, interval=0.1,
                          what=f"container {name} running")

    def verify_monitor(self, name, timeout=30):
        """Assert the running container `name` is monitored by CTRMON_BIN,
        that the monitor is the parent of the container's init and that it
        carries no zombie children.  Returns a MonitorInfo, also remembered
        for the after-test check that the monitor went away."""
        cpid, pid = self.wait_running(name, timeout)
        cst = proc_stat(cpid)
        pst = proc_stat(pid)
        assert cst is not None, f"monitor pid {cpid} of {name} does not exist"
        assert pst is not None, f"container pid {pid} of {name} does not exist"
        exe = os.path.realpath(f"/proc/{cpid}/exe")
        assert exe == self.monitor_real, (
            f"container {name}: podman ran monitor {exe}, not {self.monitor_real}")
        assert pst[1] == cpid, (
            f"container {name}: init {pid} has parent {pst[1]}, not monitor {cpid}")
        wait_until(lambda: not zombie_children(cpid), 5,
                   what=f"monitor {cpid} to reap its zombie children "
                        f"{zombie_children(cpid)}")
        info = MonitorInfo(name, cpid, cst[2], pid, pst[2])
        self.monitors.append(info)
        return info

    def exec_monitors(self, name):
        """Live exec monitors of container `name`: (pid, exe) of processes
        whose argv has --exec and the container's full id."""
        cid = self.inspect(name, "{{.Id}}").encode()
        out = []
        for entry in os.listdir("/proc"):
            if not entry.isdigit():
                continue
            try:
                with open(f"/proc/{entry}/cmdline", "rb") as f:
                    argv = f.read().split(b"\0")
                exe = os.path.realpath(f"/proc/{entry}/exe")
            except OSError:
                continue
            st = proc_stat(entry)
            if (b"--exec" in argv and cid in argv and st
                    and st[0] not in ("Z", "X")):
                out.append((int(entry), exe))
        return out

    def settled_exec_monitors(self, name, timeout=15):
        """exec_monitors() once no exec monitor is between states: none is
        running its exit command (argv still has --exec, exe is podman), none
        is a monitor's fork child not yet turned into the runtime, and two
        reads 0.3 s apart agree.  An exec that ended just before (podman
        exec -d's, say) leaves such processes for a moment, with either
        monitor; they are not the sessions that go on."""
        prev = None

        def settled():
            nonlocal prev
            mons = self.exec_monitors(name)
            pids = {pid for pid, _ in mons}
            transient = any(exe != self.monitor_real
                            or (proc_stat(pid) or (None, None))[1] in pids
                            for pid, exe in mons)
            same = mons == prev
            prev = mons
            # a one-element tuple: true for wait_until also when mons is []
            return None if transient or not same else (mons,)
        return wait_until(settled, timeout, interval=0.3,
                          what=f"the exec monitors of {name} to settle")[0]

    def assert_monitor_gone(self, info, timeout=10):
        """After the container exited: the monitor process is gone (or a
        zombie waiting for the lazy PID 1) and the container's init was
        reaped, not left behind as a zombie."""
        def gone():
            m = same_process_alive(info.conmon_pid, info.conmon_start)
            c = same_process_alive(info.ctr_pid, info.ctr_start)
            return m in ("gone", "zombie") and c == "gone"
        try:
            wait_until(gone, timeout, interval=0.1)
        except AssertionError:
            m = same_process_alive(info.conmon_pid, info.conmon_start)
            c = same_process_alive(info.ctr_pid, info.ctr_start)
            raise AssertionError(
                f"{info}: after exit monitor is {m}, container init is {c} "
                f"(want monitor gone/zombie and container gone)") from None

    def take_monitors(self):
        m, self.monitors = self.monitors, []
        return m

    # -- set-up and tear-down ----------------------------------------------

    def import_image(self):
        rootfs = os.path.join(self.base, "rootfs")
        subprocess.run(["sh", MAKE_ROOTFS, rootfs], check=True)
        tarball = os.path.join(self.base, "rootfs.tar")
        subprocess.run(["tar", "-C", rootfs, "-cf", tarball, "."], check=True)
        self.ok("import", tarball, IMAGE, timeout=120)
        os.unlink(tarball)
        shutil.rmtree(rootfs)

    def mounts_below(self):
        out = []
        with open("/proc/self/mountinfo") as f:
            for line in f:
                mp = line.split()[4].replace("\\040", " ")
                if mp == self.base or mp.startswith(self.base + "/"):
                    out.append(mp)
        return out

    def helpers_running(self):
        """Pids of other processes working on this world, e.g. the exit
        command (`podman container cleanup`) a monitor started, which may
        outlive the monitor."""
        me = os.getpid()
        key = self.root.encode()
        out = []
        for entry in os.listdir("/proc"):
            if not entry.isdigit() or int(entry) == me:
                continue
            try:
                with open(f"/proc/{entry}/cmdline", "rb") as f:
                    argv = f.read().split(b"\0")
            except OSError:
                continue
            st = proc_stat(entry)
            if key in argv and st and st[0] != "Z":
                out.append(int(entry))
        return out

    def wait_helpers(self, timeout=30):
        wait_until(lambda: not self.helpers_running(), timeout, interval=0.1,
                   what=f"podman helpers {self.helpers_running()} to finish")

    def teardown(self):
        problems = []
        rc, out, err = self.podman("rm", "-af", "-t", "0", timeout=120)
        if rc != 0:
            problems.append(f"podman rm -af: rc={rc} {err!r}")
        try:
            self.wait_helpers()
        except AssertionError as e:
            problems.append(str(e))
        rc, out, err = self.podman("system", "reset", "-f", timeout=120)
        if rc != 0 and b"directory not empty" in err:
            # Seen once in CI (tmp/events): a podman event was being written
            # while reset removed the directory. Wait for every podman of
            # this world again and retry once; a second failure counts.
            try:
                self.wait_helpers()
            except AssertionError as e:
                problems.append(str(e))
            rc, out, err = self.podman("system", "reset", "-f", timeout=120)
        if rc != 0:
            problems.append(f"podman system reset: rc={rc} {err!r}")
        left = self.mounts_below()
        for mp in sorted(left, key=len, reverse=True):
            subprocess.run(["umount", "-l", mp], stderr=subprocess.DEVNULL)
        if left:
            problems.append(f"mounts left under {self.base}: {left}")
        shutil.rmtree(self.base, ignore_errors=True)
        if os.path.exists(self.base):
            problems.append(f"could not remove {self.base}")
        try:
            os.rmdir(BASE_DIR)
        except OSError:
            pass
        return problems
