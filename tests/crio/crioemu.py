"""CRI-O's side of the monitor protocol, replayed from Python.

CRI-O is not packaged in Debian, so this module does what CRI-O 1.33-1.36
does with its monitor (internal/oci/runtime_oci.go and friends, see
README.md for the functions followed), and nothing more:

  CreateContainer     argv, environment, fds 3/4 as AF_UNIX SOCK_STREAM
                      socketpairs, cwd = bundle, own process group; a \\0 on
                      the start socket, wait for the foreground, then one
                      JSON value {"pid": N} decoded from the sync socket.
  ExecSyncContainer   the same for `-e --exec-process-spec --sync -T`,
                      except that the sync fd is a plain pipe (prepareExec);
                      stdout/stderr are pipes (bytes.Buffer) that Go's
                      cmd.Wait drains to EOF; the result is decoded after the
                      wait; the output is read back from the k8s-file log.
  ReopenContainerLog  "2 0 0\\n" on <bundle>/ctl, then a wait without timeout
                      for an fsnotify Create or Write event named exactly like
                      the log path, on a fresh watch of the log's directory.
  exit monitor        fsnotify on --exit-dir; a Create (IN_CREATE or
                      IN_MOVED_TO, as fsnotify maps them) whose base name is
                      the container id triggers UpdateContainerStatus, which
                      reads <persist-dir>/exit with strconv.ParseInt and
                      checks <bundle>/oom.
  conmonmgr.New       `<monitor> --version` (combined output), third
                      whitespace-separated field parsed as strict semver.

Nothing here asserts anything about the monitor: the tests do. Every wait
is bounded (CRI-O's own unbounded waits get the caller's timeout).
"""
import ctypes
import errno
import json
import os
import re
import select
import signal
import socket
import stat
import struct
import subprocess
import time
import uuid

from ctrtest import procs
from ctrtest.bundle import Bundle
from ctrtest.goexec import GoCmd, go_dedup_env
from ctrtest.wait import scaled

# --- facts taken from CRI-O's source (see README.md) ------------------------

# pkg/config/config.go defaultRuntimeHandler(): the handler's monitor_env.
DEFAULT_MONITOR_ENV = (
    "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",)
# crio.service has no Environment= for PATH, so CRI-O runs with systemd's
# default PATH, which prepareEnv() passes on (last PATH wins in Go's exec).
CRIO_PROCESS_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin"
# logrus.GetLevel().String() for CRI-O's default log_level = "info".
CRIO_LOG_LEVEL = "info"
# internal/oci/oci.go
MAX_EXEC_SYNC_SIZE = 16 * 1024 * 1024        # maxExecSyncSize
CONTAINER_CREATE_TIMEOUT = 240               # ContainerCreateTimeout, s
# github.com/containers/conmon/runner/config: TimedOutMessage
TIMED_OUT_MESSAGE = "command timed out"
# internal/config/conmonmgr/conmonmgr.go
VERSION_SUPPORTS_SYNC = "2.0.19"
VERSION_SUPPORTS_LOG_GLOBAL_SIZE_MAX = "2.1.2"
# kubelet pkg/kubelet/logs/container_log_manager.go: rotated-log suffix
KUBELET_ROTATE_TIMESTAMP = "%Y%m%d-%H%M%S"   # Go layout "20060102-150405"


# --- Go standard library behaviour (dedupEnv and cmd.Start: ctrtest.goexec) -

def crio_monitor_env(monitor_env=DEFAULT_MONITOR_ENV, crio_env=None,
                     oci_pipes=True, style="prepareEnv"):
    """runtimeOCI.prepareEnv(cmd, addOCISyncPipe): monitor_env, then
    CRI_O_EXTERNAL=1, then XDG_RUNTIME_DIR and PATH if CRI-O has them, then
    _OCI_SYNCPIPE=3 and _OCI_STARTPIPE=4; as Go's exec then dedups it.

    style="legacy": what CreateContainer/ExecSyncContainer did inline
    before prepareEnv (cri-o PR #8808, December 2024): monitor_env, the two
    _OCI_ variables, then XDG_RUNTIME_DIR if set."""
    crio_env = {"PATH": CRIO_PROCESS_PATH} if crio_env is None else crio_env
    if style == "legacy":
        env = list(monitor_env)
        if oci_pipes:
            env += ["_OCI_SYNCPIPE=3", "_OCI_STARTPIPE=4"]
        if "XDG_RUNTIME_DIR" in crio_env:
            env.append("XDG_RUNTIME_DIR=" + crio_env["XDG_RUNTIME_DIR"])
        return go_dedup_env(env)
    env = list(monitor_env) + ["CRI_O_EXTERNAL=1"]
    if "XDG_RUNTIME_DIR" in crio_env:
        env.append("XDG_RUNTIME_DIR=" + crio_env["XDG_RUNTIME_DIR"])
    if "PATH" in crio_env:
        env.append("PATH=" + crio_env["PATH"])
    if oci_pipes:
        env += ["_OCI_SYNCPIPE=3", "_OCI_STARTPIPE=4"]
    return go_dedup_env(env)


def go_parse_int(s, bits):
    """strconv.ParseInt(s, 10, bits): optional sign, ASCII digits, nothing
    else (no whitespace, no newline). Raises ValueError."""
    if not re.fullmatch(r"[+-]?[0-9]+", s):
        raise ValueError(f"strconv.ParseInt: parsing {s!r}: invalid syntax")
    v = int(s)
    if not -(1 << (bits - 1)) <= v < (1 << (bits - 1)):
        raise ValueError(f"strconv.ParseInt: parsing {s!r}: value out of range")
    return v


def go_atoi(s):
    """strconv.Atoi (64-bit int)."""
    return go_parse_int(s, 64)


def go_wait_buffered(cmd, fds, timeout):
    """cmd.Wait() with Stdout/Stderr set to a bytes.Buffer: Go copies each
    pipe concurrently and Wait returns once the process has exited *and*
    every pipe has reached EOF (whoever else holds a write end keeps CRI-O
    waiting). Returns (exit status, {fd: bytes})."""
    out = {fd: b"" for fd in fds}
    open_fds = set(fds)
    deadline = time.monotonic() + timeout
    while open_fds or cmd.poll() is None:
        left = deadline - time.monotonic()
        if left <= 0:
            raise AssertionError(
                f"cmd.Wait would still be waiting after {timeout}s: "
                f"process {'exited' if cmd.poll() is not None else 'running'},"
                f" {len(open_fds)} stdout/stderr pipe(s) still open")
        if open_fds:
            r, _, _ = select.select(list(open_fds), [], [], min(left, 0.05))
            for fd in r:
                chunk = os.read(fd, 65536)
                if chunk:
                    out[fd] += chunk
                else:
                    open_fds.discard(fd)
        else:
            time.sleep(min(left, 0.02))
    return cmd.returncode, out


def json_decode_one(fd, timeout):
    """json.NewDecoder(r).Decode(&v): read until one complete JSON value.
    Returns (value, raw bytes read so far) or raises EOFError/ValueError."""
    raw = b""
    dec = json.JSONDecoder()
    deadline = time.monotonic() + timeout
    while True:
        text = raw.decode(errors="replace").lstrip(" \t\r\n")
        if text:
            try:
                value, _ = dec.raw_decode(text)
                return value, raw
            except json.JSONDecodeError:
                pass
        left = deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError(f"no JSON value within {timeout}s (have {raw!r})")
        r, _, _ = select.select([fd], [], [], left)
        if not r:
            continue
        chunk = os.read(fd, 4096)
        if not chunk:
            if raw.strip():
                raise ValueError(f"unexpected EOF in JSON value {raw!r}")
            raise EOFError("EOF before any JSON value")
        raw += chunk


def read_rest(fd):
    """Whatever else is readable right now (non-blocking)."""
    rest = b""
    while select.select([fd], [], [], 0)[0]:
        chunk = os.read(fd, 65536)
        if not chunk:
            break
        rest += chunk
    return rest


def go_create_temp(directory, prefix):
    """os.CreateTemp(dir, prefix): prefix + random decimal, mode 0600; the
    file is created (CRI-O closes it right away)."""
    while True:
        name = os.path.join(directory,
                            prefix + str(int.from_bytes(os.urandom(4), "big")))
        try:
            os.close(os.open(name, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600))
            return name
        except FileExistsError:
            continue


# --- blang/semver v4, as conmonmgr uses it ----------------------------------

_NUM = re.compile(r"[0-9]+")
_ALNUM = re.compile(r"[0-9A-Za-z-]+")


def semver_parse(s):
    """semver.New(s) (blang/semver/v4 Parse): MAJOR.MINOR.PATCH with no
    leading zeros, optional -prerelease and +build, nothing else (no 'v').
    Returns (major, minor, patch, prerelease tuple)."""
    if not s:
        raise ValueError("Version string empty")
    parts = s.split(".", 2)
    if len(parts) != 3:
        raise ValueError("No Major.Minor.Patch elements found")

    def num(p, what):
        if not _NUM.fullmatch(p):
            raise ValueError(f"Invalid character(s) found in {what} {p!r}")
        if len(p) > 1 and p[0] == "0":
            raise ValueError(f"{what} number must not contain leading zeroes {p!r}")
        return int(p)
    major, minor = num(parts[0], "major"), num(parts[1], "minor")
    patch, pre, build = parts[2], [], []
    if "+" in patch:
        patch, b = patch.split("+", 1)
        build = b.split(".")
    if "-" in patch:
        patch, p = patch.split("-", 1)
        pre = p.split(".")
    patch = num(patch, "patch")
    prerelease = []
    for p in pre:
        if not p or not _ALNUM.fullmatch(p):
            raise ValueError(f"Invalid prerelease {p!r}")
        if _NUM.fullmatch(p):
            if len(p) > 1 and p[0] == "0":
                raise ValueError(f"Numeric prerelease with leading zero {p!r}")
            prerelease.append((0, int(p)))
        else:
            prerelease.append((1, p))
    for b in build:
        if not b or not _ALNUM.fullmatch(b):
            raise ValueError(f"Invalid build metadata {b!r}")
    return (major, minor, patch, tuple(prerelease))


def semver_gte(a, b):
    """Version.GTE: a prerelease sorts before its release; prerelease
    identifiers compare numeric < alphanumeric, then in order."""
    if a[:3] != b[:3]:
        return a[:3] > b[:3]
    pa, pb = a[3], b[3]
    if not pa or not pb:
        return not pa  # release >= anything with the same triple
    return pa >= pb


def conmonmgr_probe(binary):
    """conmonmgr.New: CombinedOutput(path, "--version"), strings.Fields of
    the whole output, fields[2] through semver.New, then the two gates.
    Returns a dict (raises ValueError where CRI-O refuses to start)."""
    if not os.path.isabs(binary):
        raise ValueError(f"conmon path is not absolute: {binary}")
    p = subprocess.run([binary, "--version"], stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT, timeout=30)
    if p.returncode != 0:
        raise ValueError(f"get conmon version: exit status {p.returncode}")
    out = p.stdout.decode(errors="replace")
    fields = out.split()  # strings.Fields: runs of Unicode white space
    if len(fields) < 3:
        raise ValueError(f"conmon version output too short: {out!r}")
    v = semver_parse(fields[2])
    return {"output": out, "field": fields[2], "version": v,
            "supports_sync": semver_gte(v, semver_parse(VERSION_SUPPORTS_SYNC)),
            "supports_log_global_size_max": semver_gte(
                v, semver_parse(VERSION_SUPPORTS_LOG_GLOBAL_SIZE_MAX))}


# --- fsnotify (inotify backend), as CRI-O's watchers see events -------------

IN_MODIFY, IN_ATTRIB = 0x2, 0x4
IN_MOVED_FROM, IN_MOVED_TO, IN_CREATE = 0x40, 0x80, 0x100
IN_DELETE, IN_DELETE_SELF, IN_MOVE_SELF = 0x200, 0x400, 0x800
IN_Q_OVERFLOW, IN_IGNORED = 0x4000, 0x8000
# fsnotify.Watcher.Add's mask (backend_inotify.go)
FSNOTIFY_MASK = (IN_MOVED_TO | IN_MOVED_FROM | IN_CREATE | IN_ATTRIB |
                 IN_MODIFY | IN_MOVE_SELF | IN_DELETE | IN_DELETE_SELF)
_MASK_NAMES = {IN_MODIFY: "IN_MODIFY", IN_ATTRIB: "IN_ATTRIB",
               IN_MOVED_FROM: "IN_MOVED_FROM", IN_MOVED_TO: "IN_MOVED_TO",
               IN_CREATE: "IN_CREATE", IN_DELETE: "IN_DELETE",
               IN_DELETE_SELF: "IN_DELETE_SELF", IN_MOVE_SELF: "IN_MOVE_SELF",
               IN_IGNORED: "IN_IGNORED", IN_Q_OVERFLOW: "IN_Q_OVERFLOW"}

_libc = ctypes.CDLL(None, use_errno=True)
_libc.inotify_init1.argtypes = [ctypes.c_int]
_libc.inotify_add_watch.argtypes = [ctypes.c_int, ctypes.c_char_p,
                                    ctypes.c_uint32]


class FsEvent:
    """An fsnotify.Event: Name is the watched path + "/" + the entry name;
    ops as fsnotify derives them from the inotify mask."""
    __slots__ = ("name", "mask", "ops", "t")

    def __init__(self, name, mask):
        self.name, self.mask, self.t = name, mask, time.monotonic()
        ops = set()
        if mask & (IN_CREATE | IN_MOVED_TO):
            ops.add("Create")
        if mask & (IN_DELETE_SELF | IN_DELETE):
            ops.add("Remove")
        if mask & IN_MODIFY:
            ops.add("Write")
        if mask & (IN_MOVE_SELF | IN_MOVED_FROM):
            ops.add("Rename")
        if mask & IN_ATTRIB:
            ops.add("Chmod")
        self.ops = ops

    @property
    def raw(self):
        return "|".join(n for b, n in _MASK_NAMES.items() if self.mask & b)

    def __repr__(self):
        return f"FsEvent({self.name!r}, {self.raw})"


class FsWatcher:
    """fsnotify.NewWatcher() + Add(dir)."""

    def __init__(self):
        self.fd = _libc.inotify_init1(os.O_CLOEXEC | os.O_NONBLOCK)
        if self.fd < 0:
            e = ctypes.get_errno()
            raise OSError(e, os.strerror(e), "inotify_init1")
        self.paths = {}
        self.events = []     # everything read so far, in order
        self._pending = []

    def add(self, path):
        path = os.path.normpath(path)  # fsnotify cleans the path
        wd = _libc.inotify_add_watch(self.fd, path.encode(), FSNOTIFY_MASK)
        if wd < 0:
            e = ctypes.get_errno()
            raise OSError(e, os.strerror(e), path)
        self.paths[wd] = path

    def _read(self, timeout):
        r, _, _ = select.select([self.fd], [], [], max(0, timeout))
        if not r:
            return
        try:
            data = os.read(self.fd, 1 << 16)
        except BlockingIOError:
            return
        pos = 0
        while pos < len(data):
            wd, mask, _cookie, n = struct.unpack_from("iIII", data, pos)
            raw = data[pos + 16:pos + 16 + n].rstrip(b"\0").decode()
            pos += 16 + n
            if mask & IN_Q_OVERFLOW:
                raise AssertionError("inotify queue overflow")
            if mask & IN_IGNORED:
                self.paths.pop(wd, None)
                continue
            base = self.paths.get(wd)
            if base is None:
                continue
            ev = FsEvent(base + "/" + raw if raw else base, mask)
            self.events.append(ev)
            self._pending.append(ev)

    def wait(self, predicate, timeout, what):
        """First not yet consumed event for which predicate(ev) holds (the
        ones before it are consumed too). Raises TimeoutError."""
        deadline = time.monotonic() + timeout
        while True:
            while self._pending:
                ev = self._pending.pop(0)
                if predicate(ev):
                    return ev
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(
                    f"no fsnotify event for {what} within {timeout}s; "
                    f"events seen: {self.events!r}")
            self._read(left)

    def close(self):
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1


# --- k8s-file log, as CRI-O's parseLog reads it ------------------------------

def parse_log(data):
    """internal/oci/runtime_oci.go parseLog: SplitAfter '\\n', SplitN ' ' 4,
    P contents lose their trailing newline; returns (stdout, stderr,
    number of lines it would warn about)."""
    out = {b"stdout": [], b"stderr": []}
    bad = 0
    for line in data.splitlines(keepends=True):
        parts = line.split(b" ", 3)
        if len(parts) < 4:
            bad += 1
            continue
        content = parts[3]
        if parts[2] == b"P" and content.endswith(b"\n"):
            content = content[:-1]
        if parts[1] in out:
            out[parts[1]].append(content)
        else:
            bad += 1
    return b"".join(out[b"stdout"]), b"".join(out[b"stderr"]), bad


# --- the node: CRI-O's directories, one per test ----------------------------

def new_container_id():
    """CRI-O ids are 64 lower-case hex digits (stringid.GenerateRandomID)."""
    return uuid.uuid4().hex + uuid.uuid4().hex


def _socket_type(sock):
    return sock.getsockopt(socket.SOL_SOCKET, socket.SO_TYPE)


class Container:
    """One CRI-O container: what internal/oci.Container knows of it."""

    def __init__(self, node, args, *, name="app", memory_limit=None,
                 pod="pod", namespace="default", attempt=0):
        self.node = node
        self.id = new_container_id()
        self.pod_uid = str(uuid.uuid4())
        # server/container_create.go: k8s_<container>_<pod>_<ns>_<uid>_<attempt>
        self.name = f"k8s_{name}_{pod}_{namespace}_{self.pod_uid}_{attempt}"
        # containers/storage: runroot userdata is the bundle (c.bundlePath),
        # graphroot userdata the persist dir (c.dir)
        self.bundle_path = os.path.join(node.runroot, "overlay-containers",
                                        self.id, "userdata")
        self.dir = os.path.join(node.graphroot, "overlay-containers",
                                self.id, "userdata")
        os.makedirs(self.dir)
        # kubelet: /var/log/pods/<ns>_<pod>_<uid>/<container>/<attempt>.log,
        # the container directory made by the kubelet
        self.log_dir = os.path.join(node.log_root,
                                    f"{namespace}_{pod}_{self.pod_uid}", name)
        os.makedirs(self.log_dir)
        self.log_path = os.path.join(self.log_dir, f"{attempt}.log")
        # cgroupfs manager: <pod cgroup parent>/crio-<id>
        self.cgroup_parent = f"{node.cgroup_root}/pod{self.pod_uid}"
        self.bundle = Bundle(self.bundle_path, node.rootfs, args,
                             memory_limit=memory_limit)
        self.bundle.spec["linux"]["cgroupsPath"] = \
            f"{self.cgroup_parent}/crio-{self.id}"
        self.bundle.write()
        self.create = None       # CreateResult once created
        self.init_pid = None

    # paths CRI-O computes
    def conmon_pid_file_path(self):
        return os.path.join(self.bundle_path, "conmon-pidfile")

    def exit_file_path(self):
        return os.path.join(self.dir, "exit")

    @property
    def exit_dir_file(self):
        return os.path.join(self.node.exits_dir, self.id)

    @property
    def ctl_path(self):
        return os.path.join(self.bundle_path, "ctl")

    @property
    def attach_socket_path(self):
        return os.path.join(self.node.attach_socket_dir, self.id, "attach")

    def log_bytes(self, path=None):
        with open(path or self.log_path, "rb") as f:
            return f.read()

    def read_conmon_pid_file(self):
        """ReadConmonPidFile: strconv.Atoi of the whole file."""
        with open(self.conmon_pid_file_path()) as f:
            return go_atoi(f.read())


class CreateResult:
    def __init__(self):
        self.argv = self.env = None
        self.fd_types = None
        self.foreground_status = None
        self.sync_value = None    # the decoded syncInfo (a dict)
        self.sync_raw = b""       # the bytes read to decode it
        self.sync_rest = b""      # anything else that was already there
        self.pid = None
        self.stdout_path = self.stderr_path = None


class ExecSyncResult:
    def __init__(self):
        self.argv = self.env = None
        self.sync_fd_mode = None
        self.wait_status = None
        self.sync_raw = b""
        self.exit_info = None     # exitCodeInfo dict, or None
        self.decode_error = None
        self.log_raw = b""        # the exec's log file as the monitor left it
        self.log = b""            # what TruncateAndReadFile returned
        self.stdout = self.stderr = b""
        self.exit_code = None     # ExecSyncResponse.ExitCode
        self.error = None         # ExecSyncError text instead of a response
        self.elapsed = None
        self.monitor_stdout = self.monitor_stderr = b""
        self.process_file = self.pid_file = self.log_path = None


class ReopenResult:
    def __init__(self):
        self.watch_error = None   # watcher.Add failed (CRI-O then does not wait)
        self.event = None         # the event CRI-O returned on
        self.elapsed = None
        self.events = []


class CrioNode:
    """CRI-O's configuration on this node (crio.conf defaults, with the
    paths moved under the test's work dir) and its operations."""

    def __init__(self, work, rootfs, runc, binary, attach_socket_dir,
                 cgroup_root):
        self.work = work
        self.rootfs = rootfs
        self.runc = runc
        self.monitor_path = binary                      # monitor_path
        self.runtime_path = runc.binary                 # runtime_path
        self.runtime_root = runc.root                   # runtime_root
        self.exits_dir = os.path.join(work, "crio", "exits")  # container_exits_dir
        self.attach_socket_dir = attach_socket_dir      # container_attach_socket_dir
        self.runroot = os.path.join(work, "run")
        self.graphroot = os.path.join(work, "lib")
        self.log_root = os.path.join(work, "log", "pods")
        self.tmpdir = os.path.join(work, "tmp")         # CRI-O's TMPDIR
        # CRI-O's own cwd ("/" under systemd), inherited by the exec-sync
        # monitor (no cmd.Dir): an empty directory here, so that anything
        # the monitor drops into its cwd shows
        self.cwd = os.path.join(work, "cwd")
        self.cgroup_root = cgroup_root
        self.log_size_max = -1                          # log_size_max default
        self.crio_env = {"PATH": CRIO_PROCESS_PATH}     # CRI-O's own env
        self.env_style = "prepareEnv"                   # or "legacy"
        for d in (self.exits_dir, self.runroot, self.graphroot, self.log_root,
                  self.tmpdir, self.cwd):
            os.makedirs(d, exist_ok=True)
        self.containers = []
        self.cmds = []
        self.exit_watcher = FsWatcher()                 # StartExitMonitor
        self.exit_watcher.add(self.exits_dir)

    def container(self, args, **kw):
        c = Container(self, args, **kw)
        self.containers.append(c)
        return c

    # -- CreateContainer ----------------------------------------------------

    def create_args(self, c):
        args = [
            "-b", c.bundle_path,
            "-c", c.id,
            "--exit-dir", self.exits_dir,
            "-l", c.log_path,
            "--log-level", CRIO_LOG_LEVEL,
            "-n", c.name,
            "-P", c.conmon_pid_file_path(),
            "-p", os.path.join(c.bundle_path, "pidfile"),
            "--persist-dir", c.dir,
            "-r", self.runtime_path,
            "--runtime-arg", f"--root={self.runtime_root}",
            "--socket-dir-path", self.attach_socket_dir,
            "--syslog",
            "-u", c.id,
        ]
        # cgroup_manager = "cgroupfs": no "-s"
        if self.log_size_max >= 0:
            args += ["--log-size-max", str(self.log_size_max)]
        # no_sync_log, log_to_journald, no_pivot, terminal, stdin: all off
        return [self.monitor_path] + args

    def create_container(self, c, timeout=15, on_foreground_exit=None):
        """runtimeOCI.CreateContainer. Returns a CreateResult; the pid
        report is decoded but not judged. on_foreground_exit(c) runs right
        after cmd.Wait() returned, before the sync socket is read."""
        res = CreateResult()
        c.create = res
        # newPipe(): unix.Socketpair(AF_LOCAL, SOCK_STREAM|SOCK_CLOEXEC);
        # parent = fds[1], child = fds[0] (for the start pipe the names swap,
        # which a socketpair does not care about)
        parent_pipe, child_pipe = socket.socketpair(socket.AF_UNIX,
                                                    socket.SOCK_STREAM)
        child_start, parent_start = socket.socketpair(socket.AF_UNIX,
                                                      socket.SOCK_STREAM)
        res.fd_types = (_socket_type(child_pipe), _socket_type(child_start))
        res.argv = self.create_args(c)
        res.env = crio_monitor_env(crio_env=self.crio_env,
                                   style=self.env_style)
        res.stdout_path = os.path.join(self.work, f"crio-{c.id[:12]}.stdout")
        res.stderr_path = os.path.join(self.work, f"crio-{c.id[:12]}.stderr")
        stdin = os.open("/dev/null", os.O_RDONLY | os.O_CLOEXEC)
        out = os.open(res.stdout_path, os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC, 0o644)
        err = os.open(res.stderr_path, os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            cmd = GoCmd(res.argv, res.env,
                        [stdin, out, err, child_pipe.fileno(),
                         child_start.fileno()],
                        cwd=c.bundle_path, setpgid=True)
        finally:
            for fd in (stdin, out, err):
                os.close(fd)
            child_pipe.close()
            child_start.close()
        self.cmds.append(cmd)
        try:
            # createContainerPlatform: the cgroupfs manager moves the monitor
            # only for workload CPU settings (none here); then one \0
            parent_start.send(b"\0")
            res.foreground_status = cmd.wait(scaled(timeout))
            if on_foreground_exit is not None:
                on_foreground_exit(c)
            try:
                res.sync_value, res.sync_raw = json_decode_one(
                    parent_pipe.fileno(), scaled(timeout))
            except (EOFError, ValueError) as e:
                res.sync_value = e
            res.sync_rest = read_rest(parent_pipe.fileno())
            if isinstance(res.sync_value, dict):
                res.pid = res.sync_value.get("pid", 0)
                c.init_pid = res.pid
        finally:
            # the deferred Close()s when CreateContainer returns
            parent_pipe.close()
            parent_start.close()
        return res

    def start_container(self, c):
        """runtimeOCI.StartContainer: `runc --root <root> start <id>`."""
        self.runc.start(c.id)

    def run(self, c, timeout=15):
        """create + start, asserting only what CRI-O itself rejects."""
        res = self.create_container(c, timeout)
        assert isinstance(res.sync_value, dict) and res.pid > 0, (
            f"CreateContainer failed: {res.sync_value!r} raw={res.sync_raw!r}"
            f" fg={res.foreground_status} stderr={self.read(res.stderr_path)!r}")
        self.start_container(c)
        return res

    @staticmethod
    def read(path):
        try:
            with open(path, "rb") as f:
                return f.read()
        except FileNotFoundError:
            return None

    # -- the exit monitor -----------------------------------------------------

    def wait_exit_event(self, c, timeout=15):
        """The Create event handleExit acts on (base name == container id),
        with what UpdateContainerStatus finds at that very moment."""
        ev = self.exit_watcher.wait(
            lambda e: "Create" in e.ops and os.path.basename(e.name) == c.id,
            scaled(timeout), f"exit of {c.id}")
        snap = {"event": ev,
                "persist_exit": self.read(c.exit_file_path()),
                "exit_dir_file": self.read(c.exit_dir_file),
                "oom": os.path.exists(os.path.join(c.bundle_path, "oom"))}
        st = self.runc.state(c.id)
        snap["runc_status"] = st["status"] if st else None
        return snap

    @staticmethod
    def exit_code_from_file(content):
        """updateContainerStatusFromExitFile: ParseInt(string(b), 10, 32)."""
        return go_parse_int(content.decode(errors="replace"), 32)

    # -- ExecSyncContainer ----------------------------------------------------

    def process_json(self, c, command):
        """prepareProcessExec: the container's process spec, args replaced,
        terminal false, json.Marshal'ed (compact, Go field order)."""
        p = dict(c.bundle.spec["process"])
        p["args"] = list(command)
        p["terminal"] = False
        order = ["terminal", "consoleSize", "user", "args", "commandLine",
                 "env", "cwd", "capabilities", "rlimits", "noNewPrivileges",
                 "apparmorProfile", "oomScoreAdj", "scheduler", "selinuxLabel",
                 "ioPriority", "execCPUAffinity"]
        out = {}
        for k in order + sorted(set(p) - set(order)):
            if k in p:
                out[k] = p[k]
        if not out.get("terminal"):   # `json:"terminal,omitempty"`
            out.pop("terminal", None)
        return json.dumps(out, separators=(",", ":")).encode()

    def exec_sync_args(self, c, pid_file, log_path, process_file, timeout,
                       probe):
        args = ["-c", c.id, "-n", c.name, "-r", self.runtime_path,
                "-p", pid_file, "-e", "-l", log_path,
                "--socket-dir-path", self.attach_socket_dir,
                "--log-level", CRIO_LOG_LEVEL]
        if probe["supports_sync"]:
            args.append("--sync")
        if probe["supports_log_global_size_max"]:
            args += ["--log-global-size-max", str(MAX_EXEC_SYNC_SIZE)]
        # terminal: no "-t"
        if timeout > 0:
            args += ["-T", str(timeout)]
        # cgroupfs: no "-s"
        args += ["--exec-process-spec", process_file,
                 "--runtime-arg", f"--root={self.runtime_root}"]
        return [self.monitor_path] + args

    def exec_sync(self, c, command, timeout, wait_timeout=30, probe=None):
        """runtimeOCI.ExecSyncContainer; returns an ExecSyncResult with the
        ExecSyncResponse (or error) CRI-O would hand the kubelet."""
        probe = probe or conmonmgr_probe(self.monitor_path)
        res = ExecSyncResult()
        t0 = time.monotonic()
        # prepareExec: os.Pipe() for the sync fd, a temp pidfile
        parent_pipe, child_pipe = os.pipe()
        res.sync_fd_mode = os.fstat(child_pipe).st_mode
        res.pid_file = go_create_temp(self.tmpdir, "pidfile")
        child_start, parent_start = socket.socketpair(socket.AF_UNIX,
                                                      socket.SOCK_STREAM)
        res.log_path = go_create_temp(self.tmpdir, "crio-log-" + c.id)
        res.process_file = go_create_temp(self.tmpdir, "exec-process-")
        with open(res.process_file, "wb") as f:
            f.write(self.process_json(c, command))
        res.argv = self.exec_sync_args(c, res.pid_file, res.log_path,
                                       res.process_file, timeout, probe)
        res.env = crio_monitor_env(crio_env=self.crio_env,
                                   style=self.env_style)
        # cmd.Stdout/Stderr = &bytes.Buffer: Go makes a pipe for each
        out_r, out_w = os.pipe()
        err_r, err_w = os.pipe()
        stdin = os.open("/dev/null", os.O_RDONLY | os.O_CLOEXEC)
        try:
            cmd = GoCmd(res.argv, res.env,
                        [stdin, out_w, err_w, child_pipe, child_start.fileno()],
                        cwd=self.cwd, setpgid=False)  # no cmd.Dir
        finally:
            for fd in (stdin, out_w, err_w, child_pipe):
                os.close(fd)
            child_start.close()
        self.cmds.append(cmd)
        try:
            parent_start.send(b"\0")          # unblock children
            res.wait_status, bufs = go_wait_buffered(cmd, [out_r, err_r],
                                                     scaled(wait_timeout))
            res.monitor_stdout, res.monitor_stderr = bufs[out_r], bufs[err_r]
            # decoded after the wait, whatever the wait said
            try:
                res.exit_info, res.sync_raw = json_decode_one(parent_pipe,
                                                              scaled(5))
            except (EOFError, ValueError, TimeoutError) as e:
                res.decode_error = e
            res.sync_raw += read_rest(parent_pipe)
            res.log_raw = self.read(res.log_path) or b""
            ec = res.exit_info if isinstance(res.exit_info, dict) else None
            code = ec.get("exit_code", 0) if ec is not None else None
            msg = ec.get("message", "") if ec is not None else None
            if ec is not None and code == -1 and msg == TIMED_OUT_MESSAGE:
                res.exit_code, res.stderr = -1, TIMED_OUT_MESSAGE.encode()
            elif res.decode_error is not None:
                res.error = f"decode: {res.decode_error}"
            elif code == -1:
                res.error = msg
            else:
                # TruncateAndReadFile(logPath, maxExecSyncSize), parseLog
                res.log = res.log_raw[:MAX_EXEC_SYNC_SIZE]
                res.stdout, res.stderr, _ = parse_log(res.log)
                res.exit_code = code
        finally:
            for fd in (parent_pipe, out_r, err_r):
                os.close(fd)
            parent_start.close()
            for p in (res.pid_file, res.log_path, res.process_file):
                try:
                    os.unlink(p)
                except FileNotFoundError:
                    pass
        res.elapsed = time.monotonic() - t0
        return res

    # -- ReopenContainerLog ---------------------------------------------------

    def reopen_container_log(self, c, timeout=15):
        """runtimeOCI.ReopenContainerLog as in CRI-O 1.33-1.36: open ctl
        (blocking O_WRONLY), watch the log dir; if the watch cannot be
        added, write the request anyway and return without waiting."""
        res = ReopenResult()
        t0 = time.monotonic()
        ctl = os.open(c.ctl_path, os.O_WRONLY | os.O_CLOEXEC)
        watcher = FsWatcher()
        try:
            try:
                watcher.add(os.path.dirname(c.log_path))
            except OSError as e:
                res.watch_error = e
            os.write(ctl, b"%d %d %d\n" % (2, 0, 0))
            if res.watch_error is None:
                res.event = watcher.wait(
                    lambda e: bool(e.ops & {"Create", "Write"})
                    and e.name == c.log_path,
                    scaled(timeout), f"reopen of {c.log_path}")
        finally:
            res.events = list(watcher.events)
            watcher.close()
            os.close(ctl)
        res.elapsed = time.monotonic() - t0
        return res

    def kubelet_rotate(self, c, timeout=15):
        """kubelet containerLogManager.rotateLatestLog: rename the log to
        <log>.<timestamp>, ReopenContainerLog, rename back on error."""
        while True:
            rotated = c.log_path + "." + time.strftime(KUBELET_ROTATE_TIMESTAMP)
            if not os.path.exists(rotated):
                break
            time.sleep(0.2)   # one rotation per second at most
        os.rename(c.log_path, rotated)
        try:
            res = self.reopen_container_log(c, timeout)
        except BaseException:
            if not os.path.exists(c.log_path):
                os.rename(rotated, c.log_path)
            raise
        return rotated, res

    # -- teardown -------------------------------------------------------------

    def monitor_pid(self, c):
        try:
            return c.read_conmon_pid_file()
        except (OSError, ValueError):
            return None

    def cleanup(self):
        for cmd in self.cmds:
            cmd.kill()
        for c in self.containers:
            pid = self.monitor_pid(c)
            if (pid and not procs.is_gone(pid)
                    and c.id in " ".join(procs.cmdline(pid))):
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            self.runc.delete(c.id)
            rmdir_cgroup(c.cgroup_parent)
        self.exit_watcher.close()


def rmdir_cgroup(rel):
    """Remove a cgroup directory (and nothing above it) in every
    hierarchy; runc removed the container's own."""
    base = "/sys/fs/cgroup"
    try:
        hierarchies = os.listdir(base)
    except OSError:
        return
    for h in hierarchies:
        p = os.path.join(base, h, rel.lstrip("/"))
        for _ in range(50):
            try:
                os.rmdir(p)
                break
            except FileNotFoundError:
                break
            except OSError as e:
                if e.errno != errno.EBUSY:
                    break
                time.sleep(0.05)


def is_sock_stream(fd_type):
    return fd_type == socket.SOCK_STREAM


def is_fifo(mode):
    return stat.S_ISFIFO(mode)
