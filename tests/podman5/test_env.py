"""podman 5 hands the monitor its whole environment (configureConmonEnv:
os.Environ() minus NOTIFY_SOCKET, plus XDG_RUNTIME_DIR; podman 4 passed a
short list), socket activation's LISTEN_* included, and the LISTEN_FDS fds
as --preserve-fds (createOCIContainer)."""
import os
import socket

import pytest

import p5emu
from ctrtest import k8slog
from ctrtest.recording import RECORDING_RUNTIME, environ_dict
from ctrtest.wait import scaled, wait_for

# What a user's shell (or a systemd unit) typically has, and podman 5 now
# passes on: GLib's debug switch, a session bus, a TMPDIR, a NOTIFY_SOCKET
# (filtered by podman), locale and terminal.
USER_ENV = ["LANG=C.UTF-8", "HOME=/root", "SHELL=/bin/bash", "TERM=xterm-256color",
            "G_MESSAGES_DEBUG=all", "DBUS_SESSION_BUS_ADDRESS=unix:path=/nonexistent/bus",
            "INVOCATION_ID=0123456789abcdef0123456789abcdef", "NOTIFY_SOCKET=/nonexistent/notify",
            "CONTAINERS_CONF=/nonexistent/containers.conf", "XDG_RUNTIME_DIR=/run/user/0"]


def _wait_exit(c, timeout=15):
    wait_for(lambda: os.path.exists(c.exit_file), scaled(timeout), f"exit file {c.exit_file}")
    return p5emu.handle_exit_file(c.exit_file)


def test_podman5_environment_reaches_the_runtime_unchanged_and_not_the_container(p5, recorder):
    p5.env += USER_ENV
    p5.runtime_path = RECORDING_RUNTIME
    c = p5.container(["env"])
    res = p5.run(c)

    # what podman 5 hands over: conmon_env_vars, the _OCI_ sockets, its
    # own environment without NOTIFY_SOCKET, and XDG_RUNTIME_DIR= (root)
    env = environ_dict({"role": "podman", "environ": res.env})
    assert "NOTIFY_SOCKET" not in env
    assert env["XDG_RUNTIME_DIR"] == "" and res.env[-1] == "XDG_RUNTIME_DIR="
    assert env["_OCI_SYNCPIPE"] == "3" and env["_OCI_STARTPIPE"] == "4"
    assert env["G_MESSAGES_DEBUG"] == "all" and env["LANG"] == "C.UTF-8"
    assert "--syslog" in res.argv and "--full-attach" in res.argv
    assert "--socket-dir-path" not in res.argv

    # the user's terminal (podman's stdout/stderr, which the foreground
    # monitor shares) stays clean, G_MESSAGES_DEBUG=all notwithstanding
    assert res.foreground_status == 0
    assert p5emu.read(res.stdout_path) == b"" and p5emu.read(res.stderr_path) == b""

    # the runtime gets exactly the monitor's environment, as from conmon
    create = recorder.one("create")
    assert create["environ"] == res.env

    # the container's environment is config.json's, nothing of podman's
    assert _wait_exit(c)[1] == 0
    lines = k8slog.lines(k8slog.read(c.log_path))
    assert sorted(x.decode() for x in lines) == sorted(c.bundle.spec["process"]["env"])


@pytest.mark.conmon_differs("passes LISTEN_* and _OCI_* on to the exit command")
def test_socket_activation_fd_reaches_the_container_and_listen_env_not_the_exit_command(
        p5, recorder, work):
    """systemd starts podman with LISTEN_FDS=1 LISTEN_PID=<podman>, fd 3 a
    listening socket. podman 5 passes fd 3 on (preserveFDs = LISTEN_FDS,
    _OCI_SYNCPIPE=4), adds --runtime-opt --preserve-fds 1, and in the
    container's spec LISTEN_FDS=1 LISTEN_PID=1 (generateSpec). The monitor
    must leave LISTEN_PID alone (not its own pid) and give the runtime
    fd 3; its exit command (podman container cleanup, which restarts
    containers) has no fd 3 and must not be told LISTEN_FDS=1."""
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(os.path.join(work, "activation.sock"))
    listener.listen(8)
    podman_pid = os.getpid()
    p5.env += ["LISTEN_FDS=1", f"LISTEN_PID={podman_pid}", "LISTEN_FDNAMES=web"]
    p5.runtime_path = RECORDING_RUNTIME
    c = p5.container(["sh", "-c", "readlink /proc/self/fd/3; echo $LISTEN_FDS $LISTEN_PID $LISTEN_FDNAMES"],
                     env=["LISTEN_FDS=1", "LISTEN_PID=1", "LISTEN_FDNAMES=web"])
    res = p5.run(c, extra_files=[listener.fileno()])

    assert res.argv[-4:] == ["--runtime-opt", "--preserve-fds", "--runtime-opt", "1"]
    env = environ_dict({"role": "podman", "environ": res.env})
    assert (env["_OCI_SYNCPIPE"], env["_OCI_STARTPIPE"]) == ("4", "5")
    assert res.fd_types == (socket.SOCK_SEQPACKET, socket.SOCK_SEQPACKET)

    create = recorder.one("create")
    renv = environ_dict(create)
    assert renv["LISTEN_PID"] == str(podman_pid)          # not the monitor's: untouched
    assert renv["LISTEN_FDS"] == "1"
    assert create["fds"]["3"]["target"] == f"socket:[{os.fstat(listener.fileno()).st_ino}]"
    assert create["argv"][-3:] == ["--preserve-fds", "1", c.id]

    assert _wait_exit(c)[1] == 0
    lines = k8slog.lines(k8slog.read(c.log_path))
    assert lines == [b"socket:[%d]" % os.fstat(listener.fileno()).st_ino, b"1 1 web"]

    # the exit command: stdio only, so nothing may claim fds 3.. exist
    ec = recorder.one("exitcmd")
    assert sorted(ec["fds"]) == ["0", "1", "2"]
    eenv = environ_dict(ec)
    for name in ("LISTEN_FDS", "LISTEN_PID", "LISTEN_FDNAMES", "_OCI_SYNCPIPE", "_OCI_STARTPIPE"):
        assert name not in eenv, (name, eenv.get(name))
    assert eenv["PATH"] == environ_dict(create)["PATH"]  # the rest is kept
    assert ec["argv"][-3:] == ["container", "cleanup", c.id]
    listener.close()


def test_tmpdir_from_podmans_environment_holds_the_console_socket(p5, recorder, work):
    """podman 4 did not pass TMPDIR; podman 5 does, and conmon (so the
    monitor) puts conmon-term.XXXXXX there for a -t container."""
    tmp = os.path.join(work, "usertmp")
    os.makedirs(tmp)
    p5.env += [f"TMPDIR={tmp}"]
    p5.runtime_path = RECORDING_RUNTIME
    c = p5.container(["sh", "-c", "tty; exit 0"], terminal=True)
    p5.run(c)
    argv = recorder.one("create")["argv"]
    sock = argv[argv.index("--console-socket") + 1]
    assert os.path.dirname(sock) == tmp and os.path.basename(sock).startswith("conmon-term.")
    assert _wait_exit(c)[1] == 0
    assert k8slog.lines(k8slog.read(c.log_path))[0].startswith(b"/dev/pts/")
    assert not os.path.exists(sock)
