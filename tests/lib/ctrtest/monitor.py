"""Launching the monitor (ctrmon or conmon) the way podman does, and
observing what it reports.

One Monitor = one container: a private work dir holds the exit dir,
persist dir, socket dir, TMPDIR, log and pidfiles; the sync pipe and the
start pipe are real pipes passed through _OCI_SYNCPIPE/_OCI_STARTPIPE.
Every wait is bounded. Nothing here asserts expected behaviour except
where a format is part of the protocol being parsed (sync-pipe lines).
"""
import itertools
import json
import os
import re
import select
import signal
import subprocess
import time
import uuid

from . import procs
from .attach import AttachClient
from .wait import scaled, wait_for

_counter = itertools.count(1)
SYNC_LINE_RE = re.compile(rb'^\{"(pid|data|exit_code)": (-?\d+)'
                          rb'(?:, "message": "((?:[^"\\]|\\.)*)")?\}\n$')


def monitor_binary():
    """The binary under test: $CTRMON_BIN (required)."""
    b = os.environ.get("CTRMON_BIN")
    if not b:
        raise RuntimeError("set CTRMON_BIN to the monitor binary under test")
    return b


def ctrmonctl_binary():
    """The client under test: $CTRMONCTL_BIN, else the one built next to
    the monitor (<BUILD_DIR, or the monitor's build dir>/client/ctrmonctl;
    under valgrind CTRMON_BIN is the wrapper, so run-all sets BUILD_DIR)."""
    b = os.environ.get("CTRMONCTL_BIN")
    if b:
        return b
    build = os.environ.get("BUILD_DIR") or os.path.dirname(
        os.path.dirname(os.path.abspath(monitor_binary())))
    return os.path.join(build, "client", "ctrmonctl", "ctrmonctl")


def new_cid(tag="ctr"):
    """Unique, runc-valid container id (also used to find stray processes)."""
    tag = re.sub(r"[^A-Za-z0-9_.-]", "-", tag)[:40]
    return f"ctrtest-{os.getpid()}-{next(_counter)}-{tag}"


class SyncMessage:
    """One parsed sync-pipe line; `raw` keeps the exact bytes."""

    def __init__(self, raw):
        m = SYNC_LINE_RE.match(raw)
        if not m:
            raise AssertionError(f"malformed sync-pipe line: {raw!r}")
        self.raw = raw
        self.key = m.group(1).decode()
        self.value = int(m.group(2))
        msg = m.group(3)
        # json does the unescaping (it accepts "\/" as well).
        self.message = (json.loads(b'"' + msg + b'"') if msg is not None
                        else None)

    def __repr__(self):
        return f"SyncMessage({self.raw!r})"


class Monitor:
    """Spawn and observe one monitor process.

    Options mirror the CLI; `extra_args` is appended verbatim. Paths are
    attributes (exit_file, persist_exit, log_path, ...) so tests can assert
    on them. Call start(), then the observation helpers; cleanup() is
    idempotent and is run by the fixture in any case."""

    def __init__(self, workdir, bundle, runc, *, cid=None, cuuid=None,
                 binary=None, api_version=True, sync=False, terminal=False,
                 stdin=False, full_attach=False, leave_stdin_open=False,
                 log_paths=None, exit_dir=True, persist_dir=True,
                 conmon_pidfile=True, timeout=None, extra_args=(),
                 extra_env=None, pass_fds=(), socket_dir=None,
                 start_pipe=True, log_level=None, exec_spec=None,
                 attach_pipe=False):
        self.binary = binary or monitor_binary()
        self.workdir = workdir
        self.bundle = bundle
        self.runc = runc
        self.cid = cid or new_cid()
        self.cuuid = cuuid or uuid.uuid4().hex
        self.sync = sync
        self.terminal = terminal
        self.full_attach = full_attach
        for sub in ("exits", "persist", "sock", "tmp"):
            os.makedirs(os.path.join(workdir, sub), exist_ok=True)
        # True: workdir/exits and workdir/persist; a path: that directory
        # (made here), e.g. on a tmpfs as podman's runroot is.
        for d in (exit_dir, persist_dir):
            if isinstance(d, str):
                os.makedirs(d, exist_ok=True)
        self.exit_dir = (exit_dir if isinstance(exit_dir, str) else
                         os.path.join(workdir, "exits") if exit_dir else None)
        self.persist_dir = (persist_dir if isinstance(persist_dir, str) else
                            os.path.join(workdir, "persist") if persist_dir
                            else None)
        self.socket_dir = socket_dir or os.path.join(workdir, "sock")
        self.tmpdir = os.path.join(workdir, "tmp")
        self.log_path = os.path.join(workdir, "ctr.log")
        self.container_pidfile = os.path.join(workdir, "ctr.pid")
        self.conmon_pidfile = (os.path.join(workdir, "conmon.pid")
                               if conmon_pidfile and not sync else None)
        self.stdout_path = os.path.join(workdir, "monitor.stdout")
        self.stderr_path = os.path.join(workdir, "monitor.stderr")
        if log_paths is None:
            log_paths = [f"k8s-file:{self.log_path}"]

        args = [self.binary]
        if api_version:
            args.append("--api-version")
        args += ["-c", self.cid, "-u", self.cuuid, "-r", runc.binary,
                 "-b", bundle.path, "-p", self.container_pidfile,
                 "--socket-dir-path", self.socket_dir,
                 "--runtime-arg", runc.root_arg]
        for lp in log_paths:
            args += ["-l", lp]
        if self.exit_dir:
            args += ["--exit-dir", self.exit_dir]
        if self.persist_dir:
            args += ["--persist-dir", self.persist_dir]
        if self.conmon_pidfile:
            args += ["-P", self.conmon_pidfile]
        if sync:
            args.append("--sync")
        if terminal:
            args.append("-t")
        if stdin:
            args.append("-i")
        if leave_stdin_open:
            args.append("--leave-stdin-open")
        if full_attach:
            args.append("--full-attach")
        if timeout is not None:
            args += ["-T", str(timeout)]
        if log_level:
            args += ["--log-level", log_level]
        if exec_spec:
            args += ["--exec", "--exec-process-spec", exec_spec]
        args += list(extra_args)
        self.args = args

        env = {k: v for k, v in os.environ.items()
               if not k.startswith(("_OCI_", "LISTEN_", "NOTIFY_SOCKET"))}
        env["TMPDIR"] = self.tmpdir
        env.update(extra_env or {})
        self.env = env
        self.pass_fds = tuple(pass_fds)
        self.use_start_pipe = start_pipe
        self.use_attach_pipe = attach_pipe
        self._attach_r = None

        self.popen = None
        self.foreground_status = None
        self.daemon_pid = None
        self._sync_r = None
        self._start_w = None
        self.spawn_env = None  # the exact environment of the last spawn()
        self._sync_buf = b""
        self._sync_eof = False
        self.sync_messages = []
        self.container_pid = None

    # -- launching -------------------------------------------------------

    def spawn(self, stdout=None):
        """Fork/exec the monitor without waiting for anything.

        stdout: file object/fd for the monitor's stdout (passthrough
        tests); default is a file in the work dir."""
        sync_r, sync_w = os.pipe()
        pass_fds = [sync_w, *self.pass_fds]
        env = dict(self.env)
        env["_OCI_SYNCPIPE"] = str(sync_w)
        start_r = None
        if self.use_start_pipe:
            start_r, self._start_w = os.pipe()
            pass_fds.append(start_r)
            env["_OCI_STARTPIPE"] = str(start_r)
        attach_w = None
        if self.use_attach_pipe:
            self._attach_r, attach_w = os.pipe()
            pass_fds.append(attach_w)
            env["_OCI_ATTACHPIPE"] = str(attach_w)
        self.spawn_env = dict(env)
        own_out = stdout is None
        out = open(self.stdout_path, "wb") if own_out else stdout
        err = open(self.stderr_path, "wb")
        try:
            self.popen = subprocess.Popen(
                self.args, env=env, pass_fds=pass_fds, cwd=self.workdir,
                stdin=subprocess.DEVNULL, stdout=out, stderr=err,
                close_fds=True)
        finally:
            os.close(sync_w)
            if start_r is not None:
                os.close(start_r)
            if attach_w is not None:
                os.close(attach_w)
            if own_out:
                out.close()
            err.close()
        self._sync_r = sync_r
        return self.popen

    def write_start_pipe(self, data=b"go"):
        """One write to the start pipe, which stays open (--exec-attach
        needs two separate messages, spec §3.1)."""
        os.write(self._start_w, data)

    def release_start_pipe(self, data=b"go"):
        """Write to and close the start pipe (releases the first read)."""
        if self._start_w is not None:
            if data:
                try:
                    os.write(self._start_w, data)
                except BrokenPipeError:
                    # It exited before reading it (an argument error):
                    # the tests check its status and output for that.
                    pass
            os.close(self._start_w)
            self._start_w = None

    def read_attach_pipe(self, timeout):
        """Everything conmon writes to _OCI_ATTACHPIPE up to the first
        newline (or EOF), as bytes."""
        buf = b""
        deadline = time.monotonic() + timeout
        while not buf.endswith(b"\n"):
            left = deadline - time.monotonic()
            r, _, _ = select.select([self._attach_r], [], [], max(0, left))
            if not r:
                raise TimeoutError(f"attach pipe silent for {timeout}s")
            chunk = os.read(self._attach_r, 4096)
            if not chunk:
                break
            buf += chunk
        return buf

    def start(self, stdout=None, timeout=10):
        """spawn + release the start pipe; without --sync also wait for the
        foreground process and read the daemon pid from -P."""
        self.spawn(stdout=stdout)
        self.release_start_pipe()
        if self.sync:
            self.daemon_pid = self.popen.pid
        else:
            self.foreground_status = self.popen.wait(timeout=scaled(timeout))
            if self.conmon_pidfile and os.path.exists(self.conmon_pidfile):
                with open(self.conmon_pidfile) as f:
                    self.daemon_pid = int(f.read())
        return self

    def create(self, timeout=15):
        """start() and wait for the pid report; returns the container pid
        (asserting the report is a success)."""
        self.start()
        msg = self.read_sync(timeout)
        assert msg is not None, (
            f"sync pipe EOF before pid report; foreground status "
            f"{self.foreground_status}, stdout={self.stdout()!r}, "
            f"stderr={self.stderr()!r}")
        assert msg.value > 0, f"create failed: {msg!r}"
        self.container_pid = msg.value
        return msg.value

    def run(self, timeout=15):
        """create + `runc start`; returns the container pid."""
        pid = self.create(timeout)
        self.runc.start(self.cid)
        return pid

    # -- observing -------------------------------------------------------

    def stderr(self):
        with open(self.stderr_path, "rb") as f:
            return f.read()

    def stdout(self):
        with open(self.stdout_path, "rb") as f:
            return f.read()

    def read_sync_raw(self, timeout):
        """Next complete sync-pipe line (bytes incl. '\n'), or None at EOF."""
        timeout = scaled(timeout)
        deadline = time.monotonic() + timeout
        while b"\n" not in self._sync_buf:
            if self._sync_eof:
                if self._sync_buf:
                    raise AssertionError(
                        f"sync pipe ended mid-line: {self._sync_buf!r}")
                return None
            left = deadline - time.monotonic()
            r, _, _ = select.select([self._sync_r], [], [], max(0, left))
            if not r:
                raise TimeoutError(f"no sync-pipe line within {timeout}s "
                                   f"(have {self._sync_buf!r})")
            chunk = os.read(self._sync_r, 65536)
            if not chunk:
                self._sync_eof = True
            self._sync_buf += chunk
        line, self._sync_buf = self._sync_buf.split(b"\n", 1)
        return line + b"\n"

    def read_sync(self, timeout):
        """Next sync message parsed (SyncMessage) or None at EOF."""
        raw = self.read_sync_raw(timeout)
        if raw is None:
            return None
        msg = SyncMessage(raw)
        self.sync_messages.append(msg)
        return msg

    def sync_rest(self, timeout):
        """All remaining sync lines until EOF (raw bytes)."""
        out = []
        while True:
            raw = self.read_sync_raw(timeout)
            if raw is None:
                return out
            out.append(raw)

    @property
    def exit_file(self):
        return os.path.join(self.exit_dir, self.cid)

    @property
    def persist_exit(self):
        return os.path.join(self.persist_dir, "exit")

    @property
    def attach_path(self):
        return self.bundle.file("attach")

    @property
    def symlink_path(self):
        return os.path.join(self.socket_dir, self.cuuid)

    def wait_exit_file(self, timeout=15):
        """Content of <exit-dir>/<cid> once it exists (str)."""
        wait_for(lambda: os.path.exists(self.exit_file), scaled(timeout),
                 f"exit file {self.exit_file}")
        with open(self.exit_file) as f:
            return f.read()

    def wait_status(self, timeout=15):
        """--sync only: the monitor's own exit status."""
        assert self.sync, "wait_status needs --sync"
        return self.popen.wait(timeout=scaled(timeout))

    def wait_gone(self, timeout=10):
        """Wait until the monitor (daemon) process is gone or a zombie."""
        timeout = scaled(timeout)
        if self.sync:
            self.popen.wait(timeout=timeout)
            return
        assert self.daemon_pid, "daemon pid unknown (no -P file?)"
        wait_for(lambda: procs.is_gone(self.daemon_pid), timeout,
                 f"monitor {self.daemon_pid} to exit")

    def log_bytes(self):
        with open(self.log_path, "rb") as f:
            return f.read()

    def wait_log_contains(self, needle, timeout=10):
        def has():
            try:
                return needle in self.log_bytes()
            except FileNotFoundError:
                return False
        wait_for(has, timeout, f"{needle!r} in {self.log_path}")

    def attach(self, timeout=10):
        """Connect an attach client (at <bundle>/attach; the symlink path
        is equivalent and tested separately)."""
        return AttachClient(self.bundle.path, timeout=timeout)

    def ctl_write(self, data, name="ctl"):
        """Write bytes to <bundle>/ctl (or winsz) in one write()."""
        fd = os.open(self.bundle.file(name), os.O_WRONLY | os.O_NONBLOCK)
        try:
            os.write(fd, data)
        finally:
            os.close(fd)

    def signal(self, sig):
        os.kill(self.daemon_pid, sig)

    def stray_processes(self):
        """Live processes of this monitor: the monitor and its runtime both
        carry the container pidfile path, which is unique per Monitor (the
        cid is not: exec monitors share it with the container's)."""
        return procs.live_pids_mentioning(self.container_pidfile)

    def term_sockets(self):
        return sorted(n for n in os.listdir(self.tmpdir)
                      if n.startswith("conmon-term."))

    def assert_clean_exit(self, timeout=10):
        """After the container ended: the monitor is gone, nothing carrying
        the container id runs, the container's init is gone and no
        conmon-term.* socket is left in the monitor's TMPDIR."""
        self.wait_gone(timeout)
        assert self.stray_processes() == [], f"processes left in {self.workdir}"
        if self.container_pid:
            assert procs.is_gone(self.container_pid), "container still runs"
        assert self.term_sockets() == [], "conmon-term.* left in TMPDIR"

    # -- teardown --------------------------------------------------------

    def cleanup(self):
        if self._start_w is not None:
            os.close(self._start_w)
            self._start_w = None
        if self.popen and self.popen.poll() is None:
            self.popen.kill()
            try:
                self.popen.wait(timeout=5)
            except subprocess.TimeoutExpired:
                pass
        # Only kill a pid that still is our monitor (pids get reused).
        if (self.daemon_pid and not procs.is_gone(self.daemon_pid)
                and self.cid in procs.cmdline(self.daemon_pid)):
            try:
                os.kill(self.daemon_pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        self.runc.delete(self.cid)
        for attr in ("_sync_r", "_attach_r"):
            if getattr(self, attr) is not None:
                os.close(getattr(self, attr))
                setattr(self, attr, None)
