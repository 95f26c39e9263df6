"""Go's os/exec as podman and CRI-O use it to start the monitor, for the
emulations in tests/podman5 (p5emu.py) and tests/crio (crioemu.py)."""

import fcntl
import os
import signal

from .wait import wait_for


def go_dedup_env(env):
    """os/exec dedupEnv: duplicate keys removed, the last value wins, each
    survivor keeping the position of its last occurrence."""
    out, seen = [], set()
    for kv in reversed(env):
        k = kv.split("=", 1)[0]
        if k in seen:
            continue
        seen.add(k)
        out.append(kv)
    out.reverse()
    return out


class GoCmd:
    """A child started the way Go's exec.Command(...).Start() starts it
    (podman's and CRI-O's monitor): fds 0, 1, 2, 3, ... are `fds` (Stdin,
    Stdout, Stderr, ExtraFiles...), every other fd closed (all of Go's own
    fds are O_CLOEXEC), env exactly `env`, cwd = cmd.Dir (None: the
    caller's own), setpgid = SysProcAttr.Setpgid. Go does not ignore the
    signals Python does; the mask is empty. pre_exec runs in the child
    (e.g. podman 5's private_mounts)."""

    def __init__(self, argv, env, fds, cwd=None, setpgid=True, pre_exec=None):
        self.argv, self.env, self.cwd = list(argv), list(env), cwd
        envd = {}
        for kv in self.env:
            k, _, v = kv.partition("=")
            envd[k] = v
        assert len(envd) == len(self.env), "env must be deduplicated"
        self.pid = os.fork()
        if self.pid == 0:  # child: nothing but syscalls until execve
            try:
                signal.pthread_sigmask(signal.SIG_SETMASK, [])
                for sig in (signal.SIGPIPE, signal.SIGXFSZ, signal.SIGALRM):
                    signal.signal(sig, signal.SIG_DFL)
                if setpgid:
                    os.setpgid(0, 0)
                if pre_exec is not None:
                    pre_exec()
                # Go's two passes: move every source out of the way first,
                # then dup2 each into place (dup2 clears FD_CLOEXEC).
                high = [fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, 256) for fd in fds]
                for i, fd in enumerate(high):
                    os.dup2(fd, i, inheritable=True)
                os.closerange(len(fds), 1 << 16)
                if cwd is not None:
                    os.chdir(cwd)
                os.execve(self.argv[0], self.argv, envd)
            except BaseException as e:  # noqa: B902
                try:
                    os.write(2, f"go-spawn: {e!r}\n".encode())
                finally:
                    os._exit(127)
        self.returncode = None

    def poll(self):
        if self.returncode is None:
            pid, status = os.waitpid(self.pid, os.WNOHANG)
            if pid:
                self.returncode = os.waitstatus_to_exitcode(status)
        return self.returncode

    def wait(self, timeout):
        """cmd.Wait() (bounded)."""
        wait_for(lambda: self.poll() is not None, timeout,
                 f"{self.argv[0]} (pid {self.pid}) to exit")
        return self.returncode

    def kill(self):
        if self.poll() is None:
            try:
                os.kill(self.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            try:
                self.wait(5)
            except AssertionError:
                pass
