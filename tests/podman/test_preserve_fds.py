"""podman run --preserve-fds through the monitor under test: podman hands
its extra fds to the monitor, which must pass them to runc at the same
numbers (spec §2.4, inherited descriptors); runc gives fds 3.. to the
container. A bash wrapper puts the test's file or pipe at fd 3 of podman."""

import os
import subprocess

from podmanworld import IMAGE


def podman_with_fd3(pw, args, fd3_spec):
    """argv for `podman ARGS` with fd 3 opened by bash from fd3_spec (a
    redirection such as '3<file' or '3>&5') and no other extra fd."""
    # bash: dash only takes single-digit fds in redirections.
    argv = ["/bin/bash", "-c", f'exec {fd3_spec}; exec "$@"', "bash",
            *pw.argv(*args)]
    return argv


def test_preserve_fds_1_container_reads_file_on_fd_3(pw):
    data = b"preserved fd 3 content\n\x00\x01binary\xff\n"
    src = os.path.join(pw.scratch, "fd3-input")
    with open(src, "wb") as f:
        f.write(data)
    g = pw.gate()
    name = pw.name("f")
    argv = podman_with_fd3(
        pw, ["run", "--name", name, "--preserve-fds", "1", *g.volume, IMAGE,
             "sh", "-c", g.wait_cmd("go", "cat <&3")], f"3<'{src}'")
    p = subprocess.Popen(argv, env=pw.env, stdin=subprocess.DEVNULL,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        info = pw.verify_monitor(name)
        # The monitor holds podman's fd 3 at the same number while the
        # container runs.
        assert os.readlink(f"/proc/{info.conmon_pid}/fd/3") == src
        g.open()
        out, err = p.communicate(timeout=60)
    finally:
        if p.poll() is None:
            p.kill()
            p.communicate()
    assert (p.returncode, out, err) == (0, data, b"")
    pw.assert_monitor_gone(info)


def test_preserve_fds_1_container_writes_pipe_on_fd_3(pw):
    r, w = os.pipe()
    g = pw.gate()
    name = pw.name("f")
    argv = podman_with_fd3(
        pw, ["run", "--rm", "--name", name, "--preserve-fds", "1", *g.volume,
             IMAGE, "sh", "-c", g.wait_cmd("go", "echo to-fd3 >&3; echo out")],
        f"3>&{w} {w}>&-")
    p = subprocess.Popen(argv, env=pw.env, stdin=subprocess.DEVNULL,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         pass_fds=(w,))
    os.close(w)
    try:
        info = pw.verify_monitor(name)
        g.open()
        out, err = p.communicate(timeout=60)
        # EOF once podman, the monitor and the container all let go of it.
        got = b""
        while True:
            chunk = os.read(r, 65536)
            if not chunk:
                break
            got += chunk
    finally:
        if p.poll() is None:
            p.kill()
            p.communicate()
        os.close(r)
    assert (p.returncode, out, err) == (0, b"out\n", b"")
    assert got == b"to-fd3\n"
    pw.assert_monitor_gone(info)


def test_without_preserve_fds_container_has_no_fd_3(pw):
    src = os.path.join(pw.scratch, "fd3-secret")
    with open(src, "wb") as f:
        f.write(b"secret\n")
    g = pw.gate()
    name = pw.name("f")
    argv = podman_with_fd3(
        pw, ["run", "--name", name, *g.volume, IMAGE, "sh", "-c",
             g.wait_cmd("go", "ls /proc/self/fd; cat <&3")], f"3<'{src}'")
    p = subprocess.Popen(argv, env=pw.env, stdin=subprocess.DEVNULL,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        info = pw.verify_monitor(name)
        g.open()
        out, err = p.communicate(timeout=60)
    finally:
        if p.poll() is None:
            p.kill()
            p.communicate()
    assert p.returncode != 0
    assert b"secret" not in out
    # ls's own directory fd is 3 at most; no inherited fd 3 to cat from.
    assert out.split() == [b"0", b"1", b"2", b"3"], out
    pw.assert_monitor_gone(info)
