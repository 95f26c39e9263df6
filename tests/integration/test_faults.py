"""Faults the monitor must survive or report cleanly (issue 8): broken and
hanging runtimes, bad bundles, orphan storms, signals to the daemon, log
files that disappear or cannot be written, misbehaving clients, and the
monitor itself being SIGKILLed."""
import errno
import os
import re
import signal
import socket
import subprocess
import time

import pytest

from ctrtest import procs
from ctrtest.control import ControlClient, api_socket_path
from ctrtest.runc import Runc
from ctrtest.wait import wait_for

from conftest import scaled


# -- fake runtimes -----------------------------------------------------------

def fake_runtime(env, name, create_body):
    """A shell-script runtime: `create_body` runs for `create` (with $PIDFILE
    set to the --pid-file argument); every other subcommand (the harness'
    `delete -f`) exits 0 at once. Returns a Runc bound to it."""
    path = os.path.join(env.work, name)
    with open(path, "w") as f:
        f.write('#!/bin/sh\n'
                'PIDFILE=; action=; prev=\n'
                'for a; do\n'
                '  [ "$prev" = --pid-file ] && PIDFILE=$a\n'
                '  case "$a" in create|restore|exec) action=$a;; esac\n'
                '  prev=$a\n'
                'done\n'
                '[ "$action" = create ] || exit 0\n'
                + create_body + "\n")
    os.chmod(path, 0o755)
    return Runc(os.path.join(env.work, name + ".root"), binary=path)


def entries(*dirs):
    return {d: sorted(os.listdir(d)) for d in dirs}


def sync_failure(m, timeout=15):
    msg = m.read_sync(timeout)
    assert msg is not None, f"EOF instead of a failure: {m.stderr()!r}"
    assert (msg.key, msg.value) == ("data", -1), msg
    return msg


# -- the runtime ---------------------------------------------------------------

@pytest.mark.parametrize("kind", ["missing", "not-executable"])
def test_unusable_runtime_path_exits_1_before_fork_with_conmon_message(
        env, kind):
    path = os.path.join(env.work, "runtime")
    if kind == "not-executable":
        with open(path, "w") as f:
            f.write("#!/bin/sh\nexit 0\n")
        os.chmod(path, 0o644)
        reason = "Permission denied"
    else:
        reason = "No such file or directory"
    m = env.monitor(["true"])
    m.args[m.args.index(env.runc.binary)] = path
    before = entries(m.exit_dir, m.persist_dir, m.socket_dir, m.bundle.path)
    m.start()
    assert m.foreground_status == 1
    assert m.stderr() == (f"[conmon:e]: Runtime path {path} is not valid "
                          f"{reason}\n").encode()
    # Before the fork: no daemon, no report, nothing created but nothing
    # either (step 11 comes before the log is opened).
    assert m.read_sync(5) is None
    assert not os.path.exists(m.conmon_pidfile)
    assert not os.path.exists(m.log_path)
    assert entries(m.exit_dir, m.persist_dir, m.socket_dir,
                   m.bundle.path) == before


def test_hanging_runtime_is_killed_after_runtime_timeout(env):
    rt = fake_runtime(env, "hang", 'sleep 1000 & echo $! > "$PIDFILE"\n'
                      'echo $$ > "$PIDFILE.runtime"\nsleep 1000')
    m = env.monitor(["true"], sync=True, extra_args=["--runtime-timeout", "2"])
    m.runc = rt
    m.args[m.args.index(env.runc.binary)] = rt.binary
    t0 = time.monotonic()
    m.start()
    msg = sync_failure(m, 15)
    took = time.monotonic() - t0
    assert msg.message == "runtime did not finish create within 2 s"
    assert 1.5 < took < scaled(6), took
    assert m.wait_status(10) == 1
    assert m.sync_rest(5) == []
    # Nothing left running: the script, its sleep, the "container init"
    # it wrote to the pidfile.
    with open(m.container_pidfile) as f:
        init = int(f.read())
    with open(m.container_pidfile + ".runtime") as f:
        runtime = int(f.read())
    assert procs.is_gone(init) and procs.is_gone(runtime)
    assert m.stray_processes() == []
    # No socket or FIFO, no exit file.
    for name in ("attach", "ctl", "winsz", "ctrmon"):
        assert not os.path.lexists(m.bundle.file(name)) or \
            os.listdir(m.bundle.file(name)) == [], name
    assert os.listdir(m.socket_dir) == []
    assert os.listdir(m.exit_dir) == [] and os.listdir(m.persist_dir) == []
    assert m.term_sockets() == []


def test_runtime_timeout_0_waits_for_a_slow_runtime(env):
    rt = fake_runtime(env, "slow", 'sleep 2; echo oops >&2; exit 3')
    m = env.monitor(["true"], sync=True, extra_args=["--runtime-timeout=0"])
    m.runc = rt
    m.args[m.args.index(env.runc.binary)] = rt.binary
    m.start()
    assert sync_failure(m).message == "oops\n"
    assert m.wait_status(10) == 1


def test_negative_runtime_timeout_is_an_argument_error(env):
    m = env.monitor(["true"], extra_args=["--runtime-timeout", "-1"])
    m.start()
    assert m.foreground_status == 1
    assert m.stderr() == (b"[conmon:e]: --runtime-timeout must be between 0 "
                          b"and 2000000 seconds, not -1\n")


def test_runtime_crashing_with_sigsegv_reports_its_stderr(env):
    rt = fake_runtime(env, "segv",
                      'echo "half-way through create: giving up" >&2\n'
                      'kill -SEGV $$')
    m = env.monitor(["true"], sync=True)
    m.runc = rt
    m.args[m.args.index(env.runc.binary)] = rt.binary
    m.start()
    assert sync_failure(m).message == "half-way through create: giving up\n"
    assert m.wait_status(10) == 1
    assert m.sync_rest(5) == []
    assert m.stray_processes() == []
    assert os.listdir(m.exit_dir) == []


def test_runtime_exiting_0_without_pidfile_is_a_failure(env):
    rt = fake_runtime(env, "nopid", "exit 0")
    m = env.monitor(["true"], sync=True)
    m.runc = rt
    m.args[m.args.index(env.runc.binary)] = rt.binary
    m.start()
    msg = sync_failure(m)
    assert m.container_pidfile in msg.message, msg
    assert "No such file or directory" in msg.message, msg
    assert m.wait_status(10) == 1
    assert m.sync_rest(5) == []
    assert os.listdir(m.exit_dir) == []


def _break_bundle(b, how):
    if how == "no-config":
        os.unlink(b.config_path)
    elif how == "broken-json":
        with open(b.config_path, "w") as f:
            f.write('{"ociVersion": "1.0.2", "process": {')
    else:
        b.spec["root"]["path"] = b.path + "/no-such-rootfs"
        b.write()


@pytest.mark.parametrize("how", ["no-config", "broken-json",
                                 "missing-rootfs"])
def test_bad_bundle_reports_runc_error_verbatim(env, how):
    b = env.bundle(["true"])
    _break_bundle(b, how)
    m = env.monitor(bundle=b, sync=True)
    m.start()
    msg = sync_failure(m)
    assert m.wait_status(10) == 1
    # The same runc call by hand: identical apart from the timestamp.
    p = subprocess.run(
        [env.runc.binary, env.runc.root_arg, "create", "--bundle", b.path,
         "--pid-file", os.path.join(m.workdir, "x.pid"), m.cid + "-x"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=30)
    env.runc.delete(m.cid + "-x")
    assert p.returncode != 0
    strip = lambda s: re.sub(r'time="[^"]*" ', "", s)  # noqa: E731
    assert strip(msg.message) == strip(p.stderr.decode()).replace(
        m.cid + "-x", m.cid)
    assert m.stray_processes() == []


# -- orphans -----------------------------------------------------------------

def _rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError("no VmRSS")


def _zombies_of(pid):
    return procs.zombie_children(pid)


def test_1000_orphans_are_reaped_and_rss_stays_flat(env):
    shared = os.path.join(env.work, "shared")
    script = ('for i in $(seq 1000); do (true &) ; done; '
              'touch /run/done; exec sleep 100')
    # No PID namespace: the orphans are reparented to the monitor
    # (subreaper), not to the container's init.
    m = env.monitor(["sh", "-c", script],
                    bundle_opts={"pid_ns": False, "shared_dir": shared})
    m.create()
    before = _rss_kib(m.daemon_pid)
    env.runc.start(m.cid)
    wait_for(lambda: os.path.exists(os.path.join(shared, "done")), 30,
             "1000 orphans forked")
    wait_for(lambda: _zombies_of(m.daemon_pid) == [], 10,
             "no zombie child of the monitor")
    after = _rss_kib(m.daemon_pid)
    assert after - before < 2048, (before, after)
    assert not procs.is_gone(m.container_pid)
    env.runc.kill(m.cid, "KILL")
    assert m.wait_exit_file(15) == "137"
    m.assert_clean_exit()


# -- signals to the daemon -----------------------------------------------------

TRAPS = ('for s in TERM INT QUIT HUP USR2; do trap "echo got-$s" $s; done; '
         'echo ready; i=0; while [ $i -lt 600 ]; do sleep 0.05; '
         'i=$((i+1)); done')


def test_term_int_quit_are_forwarded_hup_usr2_are_ignored(env):
    m = env.monitor(["sh", "-c", TRAPS])
    m.run()
    m.wait_log_contains(b"ready\n")
    for sig in (signal.SIGHUP, signal.SIGUSR2):
        m.signal(sig)
    time.sleep(0.5)
    assert not procs.is_gone(m.daemon_pid)
    assert not procs.is_gone(m.container_pid)
    for name, sig in (("TERM", signal.SIGTERM), ("INT", signal.SIGINT),
                      ("QUIT", signal.SIGQUIT)):
        m.signal(sig)
        m.wait_log_contains(f"got-{name}\n".encode())
    log = m.log_bytes()
    assert b"got-HUP" not in log and b"got-USR2" not in log
    assert not procs.is_gone(m.daemon_pid)
    env.runc.kill(m.cid, "KILL")
    assert m.wait_exit_file(15) == "137"
    m.assert_clean_exit()


TICKER = ('i=0; while [ $i -lt 400 ]; do echo line-$i; sleep 0.05; '
          'i=$((i+1)); done')


def test_sigusr1_replaces_a_renamed_log_with_a_new_file(env):
    m = env.monitor(["sh", "-c", TICKER])
    m.run()
    m.wait_log_contains(b"line-3\n")
    old = m.log_path + ".old"
    os.rename(m.log_path, old)
    m.signal(signal.SIGUSR1)
    wait_for(lambda: os.path.exists(m.log_path), 5, "a new log file")
    assert os.stat(m.log_path).st_ino != os.stat(old).st_ino
    m.wait_log_contains(b" line-", 5)
    # Later lines go to the new file only.
    n = int(re.findall(rb"line-(\d+)", m.log_bytes())[-1])
    with open(old, "rb") as f:
        assert f"line-{n}\n".encode() not in f.read()
    env.runc.kill(m.cid, "KILL")
    m.wait_exit_file(15)
    m.assert_clean_exit()


def test_deleted_log_file_does_not_stop_monitor_or_container(env):
    script = ('i=0; while [ $i -lt 30 ]; do echo line-$i; sleep 0.05; '
              'i=$((i+1)); done; exit 3')
    m = env.monitor(["sh", "-c", script])
    m.run()
    m.wait_log_contains(b"line-1\n")
    os.unlink(m.log_path)
    assert m.wait_exit_file(15) == "3"
    m.assert_clean_exit()


def test_log_replaced_by_a_directory_then_restored_recovers(env):
    # The log path becomes a directory: reopening fails (the monitor goes on
    # with the old file, the container is untouched); once the path is free
    # again, the next reopen creates a fresh log that gets the later lines.
    m = env.monitor(["sh", "-c", TICKER])
    m.run()
    m.wait_log_contains(b"line-3\n")
    os.unlink(m.log_path)
    os.mkdir(m.log_path)
    m.signal(signal.SIGUSR1)
    time.sleep(0.5)
    assert os.path.isdir(m.log_path)
    assert not procs.is_gone(m.daemon_pid), "monitor died on a failed reopen"
    with ControlClient(api_socket_path(m.bundle.path)) as c:
        assert c.call("status")["state"] == "running"
    os.rmdir(m.log_path)
    m.signal(signal.SIGUSR1)
    wait_for(lambda: os.path.isfile(m.log_path), 5, "the log file to come back")
    m.wait_log_contains(b" stdout F line-", 5)
    env.runc.kill(m.cid, "KILL")
    m.wait_exit_file(15)
    m.assert_clean_exit()


@pytest.fixture
def small_fs(env):
    d = os.path.join(env.work, "smallfs")
    os.makedirs(d)
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", d],
                   check=True, timeout=10)
    yield d
    subprocess.run(["umount", "-l", d], timeout=10)


def test_unwritable_log_is_counted_in_stats_and_monitor_keeps_running(
        env, small_fs):
    # As root, chmod 0555 does not stop writes (CAP_DAC_OVERRIDE): a full
    # filesystem is the failure root cannot override.
    log = os.path.join(small_fs, "ctr.log")
    script = ('i=0; while [ $i -lt 400 ]; do '
              'echo line-$i-aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa'
              'aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa'
              'aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa'
              'aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa'
              'aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa; '
              'i=$((i+1)); done; sleep 100')
    m = env.monitor(["sh", "-c", script], log_paths=[f"k8s-file:{log}"])
    m.run()

    def failing():
        with ControlClient(api_socket_path(m.bundle.path)) as c:
            st = c.call("stats")["monitor"]
        # Every line is still read from the container (it is not blocked
        # on a full pipe), and the failures are counted.
        return (st["log_write_errors"] > 0 or st["log_bytes_dropped"] > 0) \
            and st["stdout"]["lines"] == 400 and st
    wait_for(failing, 15, "400 lines read and log write errors in stats")
    assert not procs.is_gone(m.daemon_pid)
    assert not procs.is_gone(m.container_pid)
    env.runc.kill(m.cid, "KILL")
    assert m.wait_exit_file(15) == "137"
    m.assert_clean_exit()


def test_failed_reopen_on_read_only_log_dir_keeps_logging_to_old_file(env):
    d = os.path.join(env.work, "logdir")
    os.makedirs(d)
    log = os.path.join(d, "ctr.log")
    m = env.monitor(["sh", "-c", TICKER], log_paths=[f"k8s-file:{log}"])
    m.run()
    m.log_path = log
    m.wait_log_contains(b"line-2\n")
    # Read-only bind mount over the directory: the reopen (truncate) cannot
    # create anything; root ignores chmod 0555, not a read-only mount.
    subprocess.run(["mount", "--bind", d, d], check=True, timeout=10)
    try:
        subprocess.run(["mount", "-o", "remount,bind,ro", d], check=True,
                       timeout=10)
        m.signal(signal.SIGUSR1)
        n = int(re.findall(rb"line-(\d+)", m.log_bytes())[-1])
        m.wait_log_contains(f"line-{n + 5}\n".encode(), 10)
        assert not procs.is_gone(m.daemon_pid)
        with ControlClient(api_socket_path(m.bundle.path)) as c:
            assert c.call("status")["state"] == "running"
    finally:
        subprocess.run(["umount", "-l", d], timeout=10)
    env.runc.kill(m.cid, "KILL")
    m.wait_exit_file(15)
    m.assert_clean_exit()


# -- misbehaving clients -------------------------------------------------------

def _fd_count(pid):
    return len(os.listdir(f"/proc/{pid}/fd"))


def _fd_table(pid):
    out = {}
    for n in os.listdir(f"/proc/{pid}/fd"):
        try:
            out[int(n)] = os.readlink(f"/proc/{pid}/fd/{n}")
        except FileNotFoundError:
            pass
    return out


def _settled_fd_count(pid):
    """The fd count once it has not changed for 0.3 s (a client that just
    hung up may still be being closed)."""
    last, since = _fd_count(pid), time.monotonic()
    while time.monotonic() - since < 0.3:
        time.sleep(0.05)
        now = _fd_count(pid)
        if now != last:
            last, since = now, time.monotonic()
    return last


def _attach_sock(m):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    dirfd = os.open(m.bundle.path, os.O_PATH | os.O_DIRECTORY)
    try:
        # Blocking: a full backlog makes a non-blocking connect EAGAIN.
        s.connect(f"/proc/self/fd/{dirfd}/attach")
        s.settimeout(5)
    finally:
        os.close(dirfd)
    return s


def _largest_seqpacket_send(s):
    """Send the largest record the socket accepts (a 1 MiB record is
    EMSGSIZE: bigger than the send buffer); returns its size. Every probe
    that fits is sent, too: the monitor gets a dozen big records."""
    def fits(size):
        try:
            s.send(b"x" * size)
            return True
        except OSError as err:
            assert err.errno == errno.EMSGSIZE, err
            return False
    assert not fits(1 << 20)
    bad, ok = 1 << 20, 1 << 19
    while not fits(ok):
        bad, ok = ok, ok // 2
    while bad - ok > 1:
        mid = (ok + bad) // 2
        if fits(mid):
            ok = mid
        else:
            bad = mid
    return ok


def test_misbehaving_attach_and_api_clients_leave_monitor_serving(env):
    # -i, and the container drains its stdin: attach input flows.
    m = env.monitor(["sh", "-c", "cat >/dev/null & "
                     "while :; do echo tick; sleep 0.1; done"],
                    stdin=True, extra_args=["--leave-stdin-open"])
    m.run()
    m.wait_log_contains(b"tick\n")
    api = api_socket_path(m.bundle.path)
    with ControlClient(api) as c:   # the control API's own fds exist now
        c.call("status")
    start = _settled_fd_count(m.daemon_pid)
    start_table = _fd_table(m.daemon_pid)

    # connect and vanish, half-close, largest record, 1000 connects.
    for _ in range(20):
        _attach_sock(m).close()
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.connect(api)
        s.close()
    a = _attach_sock(m)
    a.shutdown(socket.SHUT_WR)
    h = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    h.connect(api)
    h.sendall(b'{"jsonrpc": "2.0", "id": 1, "meth')
    h.shutdown(socket.SHUT_WR)
    big = _attach_sock(m)
    size = _largest_seqpacket_send(big)
    assert size > 8192
    j = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    j.settimeout(10)
    j.connect(api)
    try:
        j.sendall(b"{" + b"x" * (1 << 20) + b"\n")
    except OSError:
        pass   # the monitor may close an oversized request early
    for _ in range(1000):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.connect(api)
        s.close()
    for s in (a, h, big, j):
        s.close()

    # Still serving both sockets (ControlClient connects non-blocking:
    # EAGAIN while the burst still fills the listen backlog) ...
    def client():
        try:
            return ControlClient(api)
        except BlockingIOError:
            return None
    with wait_for(client, 5, "a control connection") as c:
        assert c.call("status")["state"] == "running"
    with m.attach() as cl:
        assert cl.read_until(lambda c: b"tick\n" in c.data(), 5)
    # ... and every descriptor of those clients is closed.
    try:
        wait_for(lambda: _fd_count(m.daemon_pid) == start, 10,
                 f"fd count back to {start}")
    except AssertionError:
        raise AssertionError(f"fds before {start_table}, "
                             f"after {_fd_table(m.daemon_pid)}")
    env.runc.kill(m.cid, "KILL")
    assert m.wait_exit_file(15) == "137"
    m.assert_clean_exit()


# -- the monitor killed --------------------------------------------------------

def test_sigkilled_monitor_leaves_container_running_and_api_refusing(env):
    m = env.monitor(["sleep", "100"])
    pid = m.run()
    api = api_socket_path(m.bundle.path)
    with ControlClient(api) as c:
        c.call("status")
    os.kill(m.daemon_pid, signal.SIGKILL)
    wait_for(lambda: procs.is_gone(m.daemon_pid), 5, "monitor dead")
    time.sleep(0.3)
    # The container keeps running, as an orphan of init; nothing reports it.
    assert not procs.is_gone(pid)
    assert procs.ppid(pid) == 1
    assert env.runc.state(m.cid)["status"] == "running"
    assert not os.path.exists(m.exit_file)
    assert not os.path.exists(m.persist_exit)
    # The socket file is left behind, nobody listens: ECONNREFUSED.
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    with pytest.raises(ConnectionRefusedError):
        s.connect(api)
    s.close()
    env.runc.kill(m.cid, "KILL")
    wait_for(lambda: procs.is_gone(pid), 10, "container killed")
