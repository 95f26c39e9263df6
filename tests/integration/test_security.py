"""Security properties of the monitor (issue 8): what the container
inherits, the modes and owners of every file the monitor makes, who may
connect, and ids that would escape the directories they name files in.

The environment the runtime and the exit command see is tested in
test_runtime_env.py."""
import errno
import os
import stat
import subprocess
import sys

import pytest

from ctrtest import procs
from ctrtest.control import api_socket_path
from ctrtest.wait import wait_for

NOBODY = 65534


def _wait_exec(pid, comm="sleep", timeout=5):
    """`runc start` returns before the init has exec'd."""
    def done():
        try:
            with open(f"/proc/{pid}/comm") as f:
                return f.read().strip() == comm
        except FileNotFoundError:
            return False
    wait_for(done, timeout, f"{pid} to exec {comm}")


@pytest.mark.parametrize("mode", ["plain", "terminal", "stdin"])
def test_container_sees_no_fd_of_the_monitor_beyond_stdio(env, mode):
    extra = os.open("/dev/null", os.O_RDONLY)  # inherited by the monitor
    try:
        m = env.monitor(["sleep", "100"], terminal=(mode == "terminal"),
                        stdin=(mode == "stdin"), pass_fds=[extra])
        pid = m.run()
    finally:
        os.close(extra)
    _wait_exec(pid)
    assert procs.fds(pid) == [0, 1, 2]
    targets = [os.readlink(f"/proc/{pid}/fd/{n}") for n in (0, 1, 2)]
    if mode == "terminal":
        assert all(t.startswith("/dev/pts/") for t in targets), targets
    else:
        assert all(t.startswith(("pipe:", "/dev/null")) for t in targets), \
            targets
    env.runc.kill(m.cid, "KILL")
    assert m.wait_exit_file(15) == "137"
    m.assert_clean_exit()


def _mode(path, follow=False):
    st = os.stat(path) if follow else os.lstat(path)
    return st, stat.S_IMODE(st.st_mode)


def test_every_file_has_its_documented_mode_and_owner(env):
    old = os.umask(0)   # the modes must not come from the caller's umask
    try:
        m = env.monitor(["sleep", "100"])
        pid = m.run()
    finally:
        os.umask(old)
    _wait_exec(pid)
    checks = {
        m.attach_path: (stat.S_ISSOCK, 0o700),
        m.bundle.file("ctl"): (stat.S_ISFIFO, 0o640),
        m.bundle.file("winsz"): (stat.S_ISFIFO, 0o640),
        api_socket_path(m.bundle.path): (stat.S_ISSOCK, 0o600),
        os.path.dirname(api_socket_path(m.bundle.path)):
            (stat.S_ISDIR, 0o700),
        m.log_path: (stat.S_ISREG, 0o640),
        m.conmon_pidfile: (stat.S_ISREG, 0o644),
    }
    for path, (kind, mode) in checks.items():
        st, got = _mode(path)
        assert kind(st.st_mode), path
        assert got == mode, f"{path}: {oct(got)} != {oct(mode)}"
        assert (st.st_uid, st.st_gid) == (0, 0), path
    assert os.path.islink(m.symlink_path)
    env.runc.kill(m.cid, "KILL")
    assert m.wait_exit_file(15) == "137"
    for path in (m.exit_file, m.persist_exit):
        st, got = _mode(path)
        assert stat.S_ISREG(st.st_mode) and got == 0o644, path
        assert st.st_uid == 0, path
    m.assert_clean_exit()


def _connect_errno_as(uid, path, kind):
    code = (
        "import os,socket\n"
        f"os.setgroups([]); os.setgid({uid}); os.setuid({uid})\n"
        f"os.stat({os.path.dirname(path)!r})  # the directory is reachable\n"
        f"s=socket.socket(socket.AF_UNIX, {kind})\n"
        "try:\n"
        f"    s.connect({path!r}); print('CONNECTED')\n"
        "except OSError as e:\n"
        "    print('ERRNO', e.errno)\n")
    p = subprocess.run([sys.executable, "-c", code], capture_output=True,
                       timeout=20)
    assert p.returncode == 0, p.stderr
    return p.stdout.decode().strip()


def test_attach_socket_refuses_another_user(env):
    m = env.monitor(["sleep", "100"])
    m.run()
    # Every directory down to the bundle is searchable by others, so the
    # refusal is the socket's own 0700.
    assert _connect_errno_as(NOBODY, m.attach_path,
                             "socket.SOCK_SEQPACKET") == \
        f"ERRNO {errno.EACCES}"
    # The owner still connects.
    with m.attach():
        pass
    env.runc.kill(m.cid, "KILL")
    m.wait_exit_file(15)
    m.assert_clean_exit()


BAD_IDS = {
    "dotdot": "..",
    "slash": "a/b",
    "control-char": "ab\x01cd",
    "newline": "ab\ncd",
    "2000-chars": "x" * 2000,
}


@pytest.mark.parametrize("which", ["cid", "cuuid"])
@pytest.mark.parametrize("name", list(BAD_IDS))
def test_bad_id_is_refused_and_creates_nothing(env, which, name):
    bad = BAD_IDS[name]
    logdir = os.path.join(env.work, "logs")
    os.makedirs(logdir)
    log = os.path.join(logdir, "ctr.log")
    kw = {which: bad}
    m = env.monitor(["true"], log_paths=[f"k8s-file:{log}"], **kw)
    watched = (m.exit_dir, m.persist_dir, m.socket_dir, m.bundle.path,
               m.workdir, logdir)
    before = {d: sorted(os.listdir(d)) for d in watched}
    m.start()
    assert m.foreground_status == 1
    what = "container ID" if which == "cid" else "container UUID"
    err = m.stderr()
    assert err.startswith(f"[conmon:e]: Invalid {what} '".encode()), err
    assert err.endswith(b"\n") and err.count(b"\n") == 1, err
    assert m.read_sync(5) is None
    # Nothing was created: no log, no pidfile, no socket, no exit file.
    after = {d: sorted(os.listdir(d)) for d in watched}
    after[m.workdir] = [n for n in after[m.workdir]
                        if not n.startswith("monitor.")]
    before[m.workdir] = [n for n in before[m.workdir]
                         if not n.startswith("monitor.")]
    assert after == before
    assert not os.path.exists(log)
    assert m.stray_processes() == []


def test_bad_id_keeps_an_existing_log_file(env):
    # The log removal is only for a file the refused run created.
    log = os.path.join(env.work, "existing.log")
    with open(log, "wb") as f:
        f.write(b"old\n")
    m = env.monitor(["true"], cid="a/b", log_paths=[f"k8s-file:{log}"])
    m.start()
    assert m.foreground_status == 1
    with open(log, "rb") as f:
        assert f.read() == b"old\n"


def test_conmon_errors_still_win_over_the_id_check(env):
    # conmon's own step-15 check fails first: its message, not ctrmon's.
    log = os.path.join(env.work, "x.log")
    m = env.monitor(["true"], cid="a/b",
                    log_paths=[f"k8s-file:{log}"],
                    extra_args=["--log-tag", "t"])
    m.start()
    assert m.foreground_status == 1
    assert m.stderr() == b"[conmon:e]: k8s-file doesn't support --log-tag\n"
