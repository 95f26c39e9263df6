"""podman 5's side of the monitor protocol, replayed from Python.

podman 5 is not packaged in Debian 12, so this module does what podman 5
(libpod, module path v5; see README.md for the files and functions followed)
does with its conmon, and nothing more:

  createOCIContainer  argv from sharedConmonArgs (--api-version 1, -c/-u the
                      container id, --full-attach, --persist-dir, --syslog
                      always, -l k8s-file:..., --runtime-arg --log-format=json
                      --log=<oci-log> for runc), --conmon-pidfile,
                      --exit-command; env = conmon_env_vars, _OCI_SYNCPIPE,
                      _OCI_STARTPIPE, then podman's *whole* environment minus
                      NOTIFY_SOCKET, then XDG_RUNTIME_DIR (configureConmonEnv),
                      deduplicated by Go's os/exec (the last one wins); fds
                      0-2 podman's own, then the preserved fds (LISTEN_FDS),
                      then the child ends of AF_UNIX SOCK_SEQPACKET
                      socketpairs (newPipe); own process group. One byte 0 on
                      the start socket (moveConmonToCgroupAndSignal), wait for
                      the foreground, then readConmonPipeData: one line read
                      with bufio.Reader (4096-byte reads) and json.Unmarshal.
  startExec + attach  the same plus -e --exec-attach --exec-process-spec,
                      _OCI_ATTACHPIPE, cwd = exec bundle; then (attachToExec)
                      the attach-pipe line, the initial terminal size on
                      <exec bundle>/ctl (openControlFile: O_WRONLY|O_NONBLOCK,
                      retried on EAGAIN/EINTR only), connect <bundle>/attach,
                      the second byte on the start socket.
  getConmonVersion    `conmon --version` with the first "\\n" replaced by
                      ", " and the trailing "\\n" trimmed: what `podman info`
                      shows as host.conmon.version.
  handleExitFile      FinishedAt = the exit file's ctime, exit code =
                      strconv.Atoi of its content.

Nothing here asserts anything about the monitor: the tests do. Every wait is
bounded.
"""
import ctypes
import errno
import json
import os
import re
import select
import signal
import socket
import subprocess
import time

from ctrtest.goexec import GoCmd, go_dedup_env
from ctrtest.wait import scaled, wait_for

# --- facts taken from podman's and containers/common's source ---------------

# containers/common pkg/config/default.go: conmon_env_vars default.
CONMON_ENV_VARS = ("PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",)
# libpod/oci_conmon_common.go: Go's bufio.NewReader default size, which
# readConmonPipeData reads the sync and attach sockets with.
BUFIO_SIZE = 4096
# pkg/util GetRootlessRuntimeDir(): "" when not rootless (these tests run as
# root), so podman appends "XDG_RUNTIME_DIR=" (empty) last.
ROOT_RUNTIME_DIR = ""
# logrus.GetLevel().String() for podman's default --log-level=warn.
PODMAN_LOG_LEVEL = "warning"
# containers/common probeConmon: what podman requires of `conmon --version`.
CONMON_VERSION_RE = re.compile(r"^conmon version (?P<Major>\d+).(?P<Minor>\d+).(?P<Patch>\d+)")


# --- the monitor's environment (Go's dedupEnv and cmd.Start: ctrtest.goexec) --

def podman5_conmon_env(podman_env, *, preserve_fds=0, exec_attach=False,
                       runtime_dir=ROOT_RUNTIME_DIR):
    """createOCIContainer / startExec: cmd.Env = conmon_env_vars, the _OCI_
    fds (after the preserved ones), then configureConmonEnv(): every entry
    of podman's environment (in its order) except NOTIFY_SOCKET, then
    XDG_RUNTIME_DIR. podman_env is a list of "K=V" (os.Environ())."""
    env = list(CONMON_ENV_VARS)
    env += [f"_OCI_SYNCPIPE={preserve_fds + 3}", f"_OCI_STARTPIPE={preserve_fds + 4}"]
    if exec_attach:
        env.append(f"_OCI_ATTACHPIPE={preserve_fds + 5}")
    env += [kv for kv in podman_env if not kv.startswith("NOTIFY_SOCKET=")]
    env.append("XDG_RUNTIME_DIR=" + runtime_dir)
    return go_dedup_env(env)


def podman4_conmon_env(podman_env, runtime_dir=ROOT_RUNTIME_DIR):
    """podman 4.x configureConmonEnv(), for comparison: LC_*, PATH,
    CONTAINERS_CONF, CONTAINERS_HELPER_BINARY_DIR, XDG_RUNTIME_DIR,
    _CONTAINERS_USERNS_CONFIGURED, _CONTAINERS_ROOTLESS_UID, HOME."""
    d = dict(kv.split("=", 1) for kv in podman_env)
    env = [kv for kv in podman_env if kv.startswith("LC_")]
    for k in ("PATH", "CONTAINERS_CONF", "CONTAINERS_HELPER_BINARY_DIR"):
        if k in d:
            env.append(f"{k}={d[k]}")
    env.append("XDG_RUNTIME_DIR=" + runtime_dir)
    env.append("_CONTAINERS_USERNS_CONFIGURED=" + d.get("_CONTAINERS_USERNS_CONFIGURED", ""))
    env.append("_CONTAINERS_ROOTLESS_UID=" + d.get("_CONTAINERS_ROOTLESS_UID", ""))
    if d.get("HOME"):
        env.append("HOME=" + d["HOME"])
    return env


def new_pipe():
    """libpod newPipe(): Socketpair(AF_LOCAL, SOCK_SEQPACKET|SOCK_CLOEXEC),
    returned as (parent, child) = (fds[1], fds[0])."""
    a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    return b, a


def write_conmon_pipe_data(sock):
    """writeConmonPipeData: one write of the single byte 0."""
    return sock.send(b"\0")


def bufio_read_bytes(fd, timeout, size=BUFIO_SIZE):
    """bufio.NewReader(pipe).ReadBytes('\\n') on a SOCK_SEQPACKET socket:
    every read(2) goes into what is left of the 4096-byte buffer, and the
    kernel discards the rest of a record that does not fit; a full buffer
    without '\\n' is set aside and reading goes on. Returns (bytes, eof)."""
    buf, frags = b"", b""
    deadline = time.monotonic() + timeout
    while True:
        i = buf.find(b"\n")
        if i >= 0:
            return frags + buf[:i + 1], False
        if len(buf) >= size:
            frags, buf = frags + buf, b""
            continue
        left = deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError(f"readConmonPipeData: nothing within {timeout}s (have {frags + buf!r})")
        r, _, _ = select.select([fd], [], [], left)
        if not r:
            continue
        chunk = os.read(fd, size - len(buf))
        if not chunk:
            return frags + buf, True
        buf += chunk


class PipeData:
    """readConmonPipeData's result: `data` (the int) or `error` (the text
    podman builds), and `raw`, the bytes it decoded."""

    def __init__(self, raw, data=None, message="", error=None):
        self.raw, self.data, self.message, self.error = raw, data, message, error

    def __repr__(self):
        return f"PipeData(raw={self.raw!r}, data={self.data}, error={self.error!r})"


def read_conmon_pipe_data(runtime_name, sock, oci_log=None, timeout=15):
    """readConmonPipeData(runtimeName, pipe, ociLog): one line, EOF ignored,
    json.Unmarshal into syncInfo{Data int "data"; Message string}; a
    negative Data is an error whose text comes from the oci-log if it
    parses, else from Message."""
    raw, _eof = bufio_read_bytes(sock.fileno(), scaled(timeout))
    try:
        # Go's Unmarshal replaces invalid UTF-8 in strings with U+FFFD
        si = json.loads(raw.decode("utf-8", errors="replace"))
        if not isinstance(si, dict) or not isinstance(si.get("data", 0), int):
            raise ValueError(f"cannot unmarshal {si!r} into syncInfo")
    except ValueError as e:
        err = f"conmon bytes {raw.decode(errors='replace')!r}: {e}"
        oci = _oci_log_msg(oci_log)
        if oci is not None:
            return PipeData(raw, -1, error=f"{runtime_name}: {oci}")
        return PipeData(raw, -1, error=f"container create failed (no logs from conmon): {err}")
    data, message = si.get("data", 0), si.get("message", "")
    if data < 0:
        oci = _oci_log_msg(oci_log)
        if oci is not None:
            return PipeData(raw, data, message, error=f"{runtime_name}: {oci}")
        if message:
            return PipeData(raw, data, message, error=f"{runtime_name}: {message}")
        return PipeData(raw, data, message, error="container create failed: internal libpod error")
    return PipeData(raw, data, message)


def _oci_log_msg(path):
    """The oci-log's {"msg": ...} as podman's ociError reads it, or None."""
    if not path:
        return None
    try:
        with open(path) as f:
            return json.load(f)["msg"]
    except (OSError, ValueError, KeyError, TypeError):
        return None


def get_conmon_version(binary):
    """ConmonOCIRuntime.getConmonVersion: what `podman info` shows."""
    out = subprocess.run([binary, "--version"], stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, timeout=30, check=True).stdout.decode()
    return out.replace("\n", ", ", 1).removesuffix("\n")


def open_control_file(parent_dir, tries=600):
    """openControlFile: O_WRONLY|O_NONBLOCK on <dir>/ctl, retried every
    0.1 s on EAGAIN/EINTR only (ENXIO, no reader, is an error at once).
    Returns (fd, attempts)."""
    path = os.path.join(parent_dir, "ctl")
    for i in range(tries):
        try:
            return os.open(path, os.O_WRONLY | os.O_NONBLOCK | os.O_CLOEXEC), i + 1
        except OSError as e:
            if e.errno not in (errno.EAGAIN, errno.EINTR):
                raise
            time.sleep(0.1)
    raise TimeoutError(f"timeout waiting for {path!r}")


def open_unix_socket(path):
    """openUnixSocket: dial unixpacket through /proc/self/fd/<dirfd>/<name>
    (bundle paths are longer than sun_path)."""
    dirfd = os.open(os.path.dirname(path), os.O_PATH | os.O_CLOEXEC)
    try:
        s = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        s.connect(f"/proc/self/fd/{dirfd}/{os.path.basename(path)}")
        return s
    finally:
        os.close(dirfd)


def handle_exit_file(path):
    """handleExitFile: (FinishedAt as ctime in ns, ExitCode via Atoi)."""
    st = os.stat(path)
    with open(path) as f:
        content = f.read()
    if not re.fullmatch(r"[+-]?[0-9]+", content):
        raise ValueError(f"converting exit status code ({content!r}) to int")
    return st.st_ctime_ns, int(content)


# --- the private mounts podman 5 makes for the monitor (GoCmd's pre_exec) ---

_libc = ctypes.CDLL(None, use_errno=True)
CLONE_NEWNS = 0x00020000
MS_BIND, MS_REC, MS_PRIVATE, MS_MOVE = 0x1000, 0x4000, 0x40000, 0x2000


def _mount(src, target, fstype, flags, data=None):
    def enc(s):
        return s.encode() if s is not None else None
    if _libc.mount(enc(src), enc(target), enc(fstype), ctypes.c_ulong(flags), enc(data)) != 0:
        e = ctypes.get_errno()
        raise OSError(e, f"mount {src} on {target}: {os.strerror(e)}")


def private_mounts(binds, staging):
    """A pre-exec step for GoCmd: a private mount namespace in which each
    `binds` target (e.g. /dev/log, /run/systemd/journal/socket) is the
    test's own socket. /dev is replaced by a tmpfs carrying the host's
    character devices and pts; a /run/systemd target gets a tmpfs
    /run/systemd. Nothing outside the child's namespace changes."""
    def step():
        if _libc.unshare(CLONE_NEWNS) != 0:
            raise OSError(ctypes.get_errno(), "unshare(CLONE_NEWNS)")
        _mount(None, "/", None, MS_REC | MS_PRIVATE)
        for target, source in binds.items():
            parent = os.path.dirname(target)
            if target.startswith("/dev/"):
                new = os.path.join(staging, "dev")
                os.makedirs(new, exist_ok=True)
                _mount("tmpfs", new, "tmpfs", 0, "mode=755")
                for n in ("null", "zero", "full", "random", "urandom", "tty"):
                    open(os.path.join(new, n), "w").close()
                    _mount("/dev/" + n, os.path.join(new, n), None, MS_BIND)
                for d in ("pts", "shm", "mqueue"):
                    if os.path.isdir("/dev/" + d):
                        os.mkdir(os.path.join(new, d))
                        _mount("/dev/" + d, os.path.join(new, d), None, MS_BIND | MS_REC)
                os.symlink("pts/ptmx", os.path.join(new, "ptmx"))
                for i, n in enumerate(("stdin", "stdout", "stderr")):
                    os.symlink(f"/proc/self/fd/{i}", os.path.join(new, n))
                os.symlink("/proc/self/fd", os.path.join(new, "fd"))
                open(os.path.join(new, os.path.basename(target)), "w").close()
                _mount(source, os.path.join(new, os.path.basename(target)), None, MS_BIND)
                _mount(new, "/dev", None, MS_MOVE)
            else:
                top = "/run/systemd"
                assert target.startswith(top + "/"), target
                _mount("tmpfs", top, "tmpfs", 0, "mode=755")
                os.makedirs(parent, exist_ok=True)
                open(target, "w").close()
                _mount(source, target, None, MS_BIND)
    return step


# --- the podman 5 node: its directories and operations ------------------------

class Container:
    """What libpod knows of one container: StaticDir (the bundle, as
    bundlePath() without a transient store), RunDir (pidfiles, oci-log),
    the persist dir <tmp>/persist/<id>, the exit file <tmp>/exits/<id>."""

    def __init__(self, node, bundle_factory, args, *, name="ctr", terminal=False,
                 stdin=False, log_driver="k8s-file", log_labels=(), **bundle_opts):
        self.node = node
        self.log_driver = log_driver            # ctr.LogDriver()
        self.log_labels = list(log_labels)      # ctr.LogLabels() (podman 6.0)
        self.id = os.urandom(32).hex()          # 64 hex digits
        self.name = name
        self.terminal, self.stdin = terminal, stdin
        self.static_dir = os.path.join(node.graphroot, "overlay-containers", self.id, "userdata")
        self.run_dir = os.path.join(node.runroot, "overlay-containers", self.id, "userdata")
        os.makedirs(self.run_dir)
        self.bundle = bundle_factory(self.static_dir, args, terminal=terminal, **bundle_opts)
        self.pidfile = os.path.join(self.run_dir, "pidfile")
        self.conmon_pidfile = os.path.join(self.run_dir, "conmon.pid")
        self.log_path = os.path.join(self.static_dir, "ctr.log")
        self.oci_log = os.path.join(self.run_dir, "oci-log")
        self.persist_dir = os.path.join(node.tmpdir, "persist", self.id)
        self.exit_file = os.path.join(node.exits_dir, self.id)
        self.create = None
        self.pid = None

    @property
    def bundle_path(self):
        return self.static_dir

    def read_conmon_pid(self):
        """readConmonPidFile: strconv.Atoi of the whole file."""
        with open(self.conmon_pidfile) as f:
            s = f.read()
        if not re.fullmatch(r"[+-]?[0-9]+", s):
            raise ValueError(f"strconv.Atoi: parsing {s!r}: invalid syntax")
        return int(s)


class CreateResult:
    def __init__(self):
        self.argv = self.env = None
        self.fd_types = None
        self.foreground_status = None
        self.pipe_data = None          # PipeData from the sync socket
        self.stdout_path = self.stderr_path = None

    @property
    def pid(self):
        return self.pipe_data.data if self.pipe_data and self.pipe_data.error is None else None


class ExecResult:
    def __init__(self):
        self.argv = self.env = None
        self.attach_data = None        # PipeData from the attach socket
        self.ctl_attempts = None       # openControlFile tries
        self.records = []              # (stream, payload) from <bundle>/attach
        self.foreground_status = None
        self.pipe_data = None
        self.exit_file = None


class Podman5:
    """podman 5 as root on this node: containers.conf defaults (runc with
    JSON errors, cgroupfs, conmon_env_vars, enable_keyring), paths moved
    below the test's work dir, its environment (`env`, a list like
    os.Environ()) and the operations that start the monitor."""

    def __init__(self, work, rootfs, runc, monitor, bundle_factory, exit_command):
        self.work, self.rootfs, self.runc, self.monitor = work, rootfs, runc, monitor
        self.bundle_factory = bundle_factory
        self.runtime_path = runc.binary
        self.runtime_flags = [f"--root={runc.root}"]     # --runtime-flag root=...
        self.graphroot = os.path.join(work, "var/lib/containers/storage")
        self.runroot = os.path.join(work, "run/containers/storage")
        self.tmpdir = os.path.join(work, "run/libpod")   # engine tmp_dir
        self.exits_dir = os.path.join(self.tmpdir, "exits")
        for d in (self.graphroot, self.runroot, self.exits_dir,
                  os.path.join(self.tmpdir, "persist")):
            os.makedirs(d, exist_ok=True)
        self.exit_command = list(exit_command)
        self.env = [f"{k}={v}" for k, v in os.environ.items()
                    if not k.startswith(("_OCI_", "LISTEN_", "NOTIFY_SOCKET", "PYTEST_"))]
        self.cmds = []
        self.containers = []

    def container(self, args, **kw):
        c = Container(self, self.bundle_factory, args, **kw)
        self.containers.append(c)
        return c

    def shared_conmon_args(self, c, cuuid, bundle, pidfile, log_driver_arg,
                           exit_dir, persist_dir, oci_log):
        """sharedConmonArgs (cgroupfs: no -s; no log size, tag or labels)."""
        os.makedirs(persist_dir, 0o750, exist_ok=True)
        args = ["--api-version", "1", "-c", c.id, "-u", cuuid, "-r", self.runtime_path,
                "-b", bundle, "-p", pidfile, "-n", c.name, "--exit-dir", exit_dir,
                "--persist-dir", persist_dir, "--full-attach"]
        for f in self.runtime_flags:
            args += ["--runtime-arg", f]
        args += ["-l", log_driver_arg, "--log-level", PODMAN_LOG_LEVEL, "--syslog"]
        if oci_log:
            args += ["--runtime-arg", "--log-format=json", "--runtime-arg", "--log",
                     f"--runtime-arg={oci_log}"]
        return args

    def create_args(self, c, preserve_fds=0, restore=None, extra=()):
        """createOCIContainer's argv."""
        driver = f"k8s-file:{c.log_path}" if c.log_driver == "k8s-file" else c.log_driver
        args = self.shared_conmon_args(c, c.id, c.bundle_path, c.pidfile, driver,
                                       self.exits_dir, c.persist_dir, c.oci_log)
        if driver == "journald":
            # podman 6.0 sharedConmonArgs: --log-label only with journald
            for label in c.log_labels:
                args += ["--log-label", label]
        if c.terminal:
            args.append("-t")
        elif c.stdin:
            args.append("-i")
        # enable_keyring = true: no --no-new-keyring
        args += ["--conmon-pidfile", c.conmon_pidfile]
        args += ["--exit-command", self.exit_command[0]]
        for a in self.exit_command[1:] + [c.id]:
            args += ["--exit-command-arg", a]
        if preserve_fds:
            args += ["--runtime-opt", "--preserve-fds", "--runtime-opt", str(preserve_fds)]
        if restore is not None:
            args += ["--restore", restore["path"]]
            for opt in restore.get("opts", ()):
                args += ["--runtime-opt", opt]
        args += list(extra)
        return [self.monitor] + args

    def create_container(self, c, *, extra_files=(), restore=None, extra_args=(),
                         pre_exec=None, release_start=True, timeout=15):
        """createOCIContainer; returns a CreateResult (nothing judged)."""
        res = CreateResult()
        c.create = res
        parent_sync, child_sync = new_pipe()
        child_start, parent_start = new_pipe()
        res.fd_types = tuple(s.getsockopt(socket.SOL_SOCKET, socket.SO_TYPE)
                             for s in (child_sync, child_start))
        preserve = len(extra_files)
        res.argv = self.create_args(c, preserve, restore, extra_args)
        res.env = podman5_conmon_env(self.env, preserve_fds=preserve)
        res.stdout_path = os.path.join(self.work, f"podman-{c.id[:12]}.stdout")
        res.stderr_path = os.path.join(self.work, f"podman-{c.id[:12]}.stderr")
        stdin = os.open("/dev/null", os.O_RDONLY | os.O_CLOEXEC)
        out = os.open(res.stdout_path, os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC, 0o644)
        err = os.open(res.stderr_path, os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            cmd = GoCmd(res.argv, res.env,
                        [stdin, out, err, *extra_files, child_sync.fileno(), child_start.fileno()],
                        cwd=None, setpgid=True, pre_exec=pre_exec)
        finally:
            for fd in (stdin, out, err):
                os.close(fd)
            child_sync.close()
            child_start.close()
        self.cmds.append(cmd)
        try:
            if release_start:
                write_conmon_pipe_data(parent_start)
            else:
                parent_start.close()    # EOF instead of the byte
            res.foreground_status = cmd.wait(scaled(timeout))
            res.pipe_data = read_conmon_pipe_data("runc", parent_sync, c.oci_log, timeout)
            c.pid = res.pid
        finally:
            parent_sync.close()
            parent_start.close()
        return res

    def run(self, c, **kw):
        res = self.create_container(c, **kw)
        assert res.pid and res.pid > 0, (
            f"create failed: {res.pipe_data!r} fg={res.foreground_status} "
            f"stderr={read(res.stderr_path)!r}")
        self.runc.start(c.id)
        return res

    # -- exec ------------------------------------------------------------------

    def exec_dirs(self, c, session):
        """createExecBundle: execBundlePath = <bundle>/<session id>, with
        its exit dir <that>/exit (execExitFileDir)."""
        b = os.path.join(c.bundle_path, session)
        os.makedirs(os.path.join(b, "exit"), exist_ok=True)
        return b

    def exec(self, c, command, *, terminal=False, attach_stdin=True, size=None,
             timeout=15):
        """ExecContainer + attachToExec (podman exec -t/-i); returns an
        ExecResult once the session's exit file exists."""
        res = ExecResult()
        session = os.urandom(32).hex()
        b = self.exec_dirs(c, session)
        spec = dict(c.bundle.spec["process"])
        spec["args"], spec["terminal"] = list(command), bool(terminal)
        # prepareProcessExec: os.CreateTemp(execBundlePath, "exec-process-")
        process_path = os.path.join(b, "exec-process-" + str(int.from_bytes(os.urandom(4), "big")))
        with open(process_path, "w") as f:
            json.dump(spec, f)
        parent_sync, child_sync = new_pipe()
        child_start, parent_start = new_pipe()
        parent_attach, child_attach = new_pipe()
        args = self.shared_conmon_args(c, session, b, os.path.join(b, "exec_pid"), "none",
                                       os.path.join(b, "exit"), os.path.join(b, "persist"),
                                       os.path.join(b, "oci-log"))
        if terminal:
            args.append("-t")
        if attach_stdin:
            args.append("-i")
        args += ["-e", "--exec-attach", "--exec-process-spec", process_path]
        res.argv = [self.monitor] + args
        res.env = podman5_conmon_env(self.env, exec_attach=True)
        stdin = os.open("/dev/null", os.O_RDONLY | os.O_CLOEXEC)
        out = os.open(os.path.join(self.work, f"exec-{session[:12]}.out"),
                      os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            cmd = GoCmd(res.argv, res.env, [stdin, out, out, child_sync.fileno(),
                                            child_start.fileno(), child_attach.fileno()],
                        cwd=b, setpgid=True)
        finally:
            os.close(stdin)
            os.close(out)
            for s in (child_sync, child_start, child_attach):
                s.close()
        self.cmds.append(cmd)
        conn = None
        try:
            write_conmon_pipe_data(parent_start)                 # moveConmonToCgroupAndSignal
            res.attach_data = read_conmon_pipe_data("runc", parent_attach, None, timeout)
            if size is not None:                                 # ExecAttachResize
                ctl, res.ctl_attempts = open_control_file(b)
                try:
                    os.write(ctl, b"%d %d %d\n" % (1, size[0], size[1]))
                finally:
                    os.close(ctl)
            conn = open_unix_socket(os.path.join(b, "attach"))
            write_conmon_pipe_data(parent_start)                 # 4: start the process
            res.foreground_status = cmd.wait(scaled(timeout))
            res.pipe_data = read_conmon_pipe_data("runc", parent_sync, None, timeout)
            conn.settimeout(scaled(timeout))
            while True:
                rec = conn.recv(BUFIO_SIZE * 2 + 1)
                if not rec:
                    break
                res.records.append((rec[0], rec[1:]))
            res.exit_file = os.path.join(b, "exit", c.id)
            wait_for(lambda: os.path.exists(res.exit_file), scaled(timeout), "the exec exit file")
        finally:
            if conn is not None:
                conn.close()
            for s in (parent_sync, parent_start, parent_attach):
                s.close()
        return res

    def cleanup(self):
        for cmd in self.cmds:
            cmd.kill()
        for c in self.containers:
            try:
                pid = c.read_conmon_pid()
            except (OSError, ValueError):
                pid = None
            if pid:
                try:
                    with open(f"/proc/{pid}/cmdline", "rb") as f:
                        mine = c.id.encode() in f.read()
                except OSError:
                    mine = False
                if mine:
                    try:
                        os.kill(pid, signal.SIGKILL)
                    except ProcessLookupError:
                        pass
            self.runc.delete(c.id)


def read(path):
    try:
        with open(path, "rb") as f:
            return f.read()
    except FileNotFoundError:
        return None
