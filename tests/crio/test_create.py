"""CreateContainer / StartContainer / the exit monitor / StopContainer, as
CRI-O 1.33-1.36 does them (internal/oci/runtime_oci.go CreateContainer,
StartContainer, StopContainer, UpdateContainerStatus; server/server.go
StartExitMonitor, monitorExits, handleExit)."""
import os
import socket
import time

import pytest

import crioemu
from ctrtest import k8slog, procs
from ctrtest.wait import scaled, wait_for

MIB = 1 << 20


def _expected_create_argv(node, c):
    """CRI-O's argument list, restated from runtime_oci.go (cgroupfs
    manager, log_size_max = -1, no journald, no_pivot, tty or stdin)."""
    return [node.monitor_path,
            "-b", c.bundle_path,
            "-c", c.id,
            "--exit-dir", node.exits_dir,
            "-l", c.log_path,
            "--log-level", "info",
            "-n", c.name,
            "-P", os.path.join(c.bundle_path, "conmon-pidfile"),
            "-p", os.path.join(c.bundle_path, "pidfile"),
            "--persist-dir", c.dir,
            "-r", node.runtime_path,
            "--runtime-arg", f"--root={node.runtime_root}",
            "--socket-dir-path", node.attach_socket_dir,
            "--syslog",
            "-u", c.id]


@pytest.mark.parametrize("style,crio_env,expected_env", [
    ("prepareEnv", {"PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin"},
     ["CRI_O_EXTERNAL=1",
      "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin",
      "_OCI_SYNCPIPE=3", "_OCI_STARTPIPE=4"]),
    ("prepareEnv",
     {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "XDG_RUNTIME_DIR": "/run/user/0"},
     ["CRI_O_EXTERNAL=1", "XDG_RUNTIME_DIR=/run/user/0",
      "PATH=/usr/sbin:/usr/bin:/sbin:/bin",
      "_OCI_SYNCPIPE=3", "_OCI_STARTPIPE=4"]),
    # before prepareEnv: monitor_env and the pipes only
    ("legacy", {"PATH": "/usr/sbin:/usr/bin", "XDG_RUNTIME_DIR": "/run/user/0"},
     ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
      "_OCI_SYNCPIPE=3", "_OCI_STARTPIPE=4", "XDG_RUNTIME_DIR=/run/user/0"]),
], ids=["systemd-unit", "with-xdg-runtime-dir", "pre-prepareEnv"])
def test_create_with_crio_argv_env_and_socketpairs_reports_legacy_pid(
        node, style, crio_env, expected_env):
    node.crio_env = crio_env
    node.env_style = style
    c = node.container(["sleep", "30"])
    res = node.create_container(c)

    # what CRI-O hands over: its argv (no --api-version), its short env,
    # fds 3 and 4 AF_UNIX SOCK_STREAM socketpair ends
    assert res.argv == _expected_create_argv(node, c)
    assert "--api-version" not in res.argv
    assert res.env == expected_env
    assert res.fd_types == (socket.SOCK_STREAM, socket.SOCK_STREAM)

    # what CRI-O needs back: the foreground gone with status 0, then one
    # JSON value on the sync socket, the legacy {"pid": N} (json.Decoder
    # into syncInfo{Pid, Message}), N > 0, nothing after it
    assert res.foreground_status == 0, node.read(res.stderr_path)
    assert res.sync_raw == b'{"pid": %d}\n' % res.pid, res.sync_raw
    assert res.sync_value == {"pid": res.pid}
    assert res.sync_rest == b""
    assert res.pid > 0

    # the pid is the container's init: runc's --pid-file in the bundle
    # and runc's state agree, and the container is waiting for `start`
    with open(os.path.join(c.bundle_path, "pidfile")) as f:
        assert int(f.read()) == res.pid
    st = node.runc.state(c.id)
    assert st["status"] == "created" and st["pid"] == res.pid

    # the daemonized monitor runs with exactly that argv, env and cwd, and
    # is the parent (subreaper) of the container's init
    mon = c.read_conmon_pid_file()
    with open(f"/proc/{mon}/cmdline", "rb") as f:
        assert f.read() == b"\0".join(a.encode() for a in res.argv) + b"\0"
    with open(f"/proc/{mon}/environ", "rb") as f:
        assert f.read() == b"".join(e.encode() + b"\0" for e in expected_env)
    assert os.readlink(f"/proc/{mon}/cwd") == c.bundle_path
    assert procs.ppid(res.pid) == mon

    node.start_container(c)
    assert node.runc.state(c.id)["status"] == "running"


def test_exit_dir_event_finds_exit_code_in_persist_dir(node):
    """The exit monitor: a Create event named <exit-dir>/<id>; at that
    moment UpdateContainerStatus sees `runc state` stopped and reads
    <persist-dir>/exit with strconv.ParseInt(s, 10, 32)."""
    c = node.container(["sh", "-c", "echo bye; exit 7"])
    node.run(c)
    snap = node.wait_exit_event(c)

    assert snap["event"].name == os.path.join(node.exits_dir, c.id)
    assert snap["runc_status"] == "stopped"
    assert snap["persist_exit"] is not None, (
        "exit-dir event before <persist-dir>/exit exists")
    assert node.exit_code_from_file(snap["persist_exit"]) == 7
    assert node.exit_code_from_file(snap["exit_dir_file"]) == 7
    assert snap["oom"] is False

    # CRI-O closed both of its socket ends when CreateContainer returned;
    # the monitor still finished its job and is gone, leaving nothing
    mon = c.read_conmon_pid_file()
    wait_for(lambda: procs.is_gone(mon), scaled(10), f"monitor {mon} to exit")
    assert procs.live_pids_mentioning(c.id) == []
    out, err, bad = crioemu.parse_log(c.log_bytes())
    assert (out, err, bad) == (b"bye\n", b"", 0)
    assert k8slog.lines(k8slog.read(c.log_path)) == [b"bye"]


def test_stop_container_term_then_kill_reports_137(node):
    """StopContainer: `runc kill <id> TERM` (ignored by a pid-1 shell
    without a handler), then KILL after the grace period: 128+9."""
    c = node.container(["sleep", "60"])
    res = node.run(c)
    node.runc.kill(c.id, "TERM")
    time.sleep(0.3)
    assert node.runc.state(c.id)["status"] == "running"
    assert not procs.is_gone(res.pid)
    node.runc.kill(c.id, "KILL")
    snap = node.wait_exit_event(c)
    assert snap["runc_status"] == "stopped"
    assert node.exit_code_from_file(snap["persist_exit"]) == 137


def test_conmon_pidfile_in_bundle_holds_monitor_pid_before_pid_report(node):
    """-P <bundle>/conmon-pidfile: read with strconv.Atoi (no newline
    allowed) by ReadConmonPidFile, right after the create (getConmonProcess
    also takes the pid's start time from /proc)."""
    seen = {}

    def at_foreground_exit(c):
        try:
            with open(c.conmon_pid_file_path()) as f:
                seen["content"] = f.read()
        except FileNotFoundError:
            seen["content"] = None

    c = node.container(["sleep", "30"])
    res = node.create_container(c, on_foreground_exit=at_foreground_exit)
    assert res.pid > 0, res.sync_value
    assert seen["content"] is not None, (
        "conmon-pidfile missing when the foreground monitor had exited")
    pid = crioemu.go_atoi(seen["content"])
    assert pid == c.read_conmon_pid_file()
    assert not procs.is_gone(pid)
    assert procs.cmdline(pid)[0] == node.monitor_path
    assert "-c" in procs.cmdline(pid) and c.id in procs.cmdline(pid)
    with open(f"/proc/{pid}/stat") as f:
        assert int(f.read().rsplit(")", 1)[1].split()[19]) > 0  # starttime
    node.start_container(c)
    node.runc.kill(c.id, "KILL")
    node.wait_exit_event(c)
    wait_for(lambda: procs.is_gone(pid), scaled(10), f"monitor {pid} to exit")


def test_oom_kill_leaves_bundle_oom_before_exit_event(node):
    """cgroup v1 memory limit in config.json: the container's init (dd,
    a 64 MiB buffer under a 32 MiB limit) is OOM-killed. When the exit
    event arrives, <bundle>/oom must already exist: UpdateContainerStatus
    stats it right after reading the exit code (OOMKilled, reason
    "OOMKilled")."""
    c = node.container(["dd", "if=/dev/zero", "of=/dev/null", "bs=64M",
                        "count=1"], memory_limit=32 * MIB)
    node.run(c)
    snap = node.wait_exit_event(c, timeout=30)
    assert node.exit_code_from_file(snap["persist_exit"]) == 137
    assert snap["oom"] is True, "no <bundle>/oom when the exit event arrived"


def test_no_oom_file_without_oom(node):
    c = node.container(["true"], memory_limit=32 * MIB)
    node.run(c)
    snap = node.wait_exit_event(c)
    assert node.exit_code_from_file(snap["persist_exit"]) == 0
    assert snap["oom"] is False
    assert not os.path.exists(os.path.join(c.bundle_path, "oom"))


def test_attach_socket_at_socket_dir_path_id_attach(node):
    """AttachContainer dials unixpacket <container_attach_socket_dir>/<id>
    /attach; each record is a stream byte (2 = stdout) and the data."""
    c = node.container(["sh", "-c", "while :; do echo tick; sleep 0.1; done"])
    node.run(c)
    s = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    s.settimeout(scaled(10))
    try:
        s.connect(c.attach_socket_path)
        got = b""
        deadline = time.monotonic() + scaled(10)
        while b"tick\n" not in got and time.monotonic() < deadline:
            rec = s.recv(65536)
            assert rec, "attach socket closed"
            if rec[0] == 2:
                got += rec[1:]
        assert b"tick\n" in got
    finally:
        s.close()
    node.runc.kill(c.id, "KILL")
    snap = node.wait_exit_event(c)
    assert node.exit_code_from_file(snap["persist_exit"]) == 137
