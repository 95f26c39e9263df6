"""podman exec through the monitor under test: stdout/stderr bytes kept
apart, exit codes, piped stdin, -t on a pty, -d, and exec into a stopped
container. Exec monitors are checked like container monitors: the one podman
ran is CTRMON_BIN, and none is left afterwards."""

import os
import select
import subprocess
import time

import pytest

from podmanworld import IMAGE, wait_until


@pytest.fixture
def ctr(pw):
    """A running container (with a gate volume) and its MonitorInfo."""
    g = pw.gate()
    name = pw.name("x")
    pw.ok("run", "-d", "--name", name, *g.volume, IMAGE, "sleep", "1000")
    info = pw.verify_monitor(name)
    return name, g, info


def userdata(pw, name):
    """podman's per-container run dir (holds the exec session dirs)."""
    cid = pw.inspect(name, "{{.Id}}")
    return os.path.join(pw.runroot, "overlay-containers", cid, "userdata")


def assert_no_exec_monitor(pw, name):
    wait_until(lambda: not pw.exec_monitors(name), 10,
               what=f"exec monitors of {name} to exit: {pw.exec_monitors(name)}")


def test_exec_monitor_is_ctrmon_and_exits_with_the_exec(pw, ctr):
    name, g, info = ctr
    p = pw.popen("exec", name, "sh", "-c", g.wait_cmd("go", "echo done; exit 7"))
    try:
        found = wait_until(lambda: pw.exec_monitors(name), 30,
                           what="the exec monitor to appear")
        assert len(found) == 1, found
        pid, exe = found[0]
        assert exe == pw.monitor_real, f"podman ran exec monitor {exe}"
        assert pid != info.conmon_pid
        g.open()
        out, err = p.communicate(timeout=30)
    finally:
        if p.poll() is None:
            p.kill()
            p.communicate()
    assert (p.returncode, out, err) == (7, b"done\n", b"")
    assert_no_exec_monitor(pw, name)
    # The container and its monitor are untouched by the exec.
    assert pw.wait_running(name) == (info.conmon_pid, info.ctr_pid)


def test_exec_keeps_stdout_and_stderr_bytes_apart(pw, ctr):
    name, _, _ = ctr
    rc, out, err = pw.podman(
        "exec", name, "sh", "-c",
        "printf 'out-1\\n'; printf 'err-1\\n' >&2; printf 'out-2 no newline';"
        " printf 'err-2\\000bin\\377' >&2")
    assert rc == 0, err
    assert out == b"out-1\nout-2 no newline"
    assert err == b"err-1\nerr-2\x00bin\xff"
    assert_no_exec_monitor(pw, name)


@pytest.mark.parametrize("code", [0, 1, 42])
def test_exec_exit_code_is_the_process_exit_code(pw, ctr, code):
    name, _, _ = ctr
    rc, out, err = pw.podman("exec", name, "sh", "-c", f"echo c{code}; exit {code}")
    assert (rc, out, err) == (code, f"c{code}\n".encode(), b"")
    assert_no_exec_monitor(pw, name)


def test_exec_i_cat_echoes_100k_of_binary_stdin_exactly(pw, ctr):
    name, _, _ = ctr
    data = os.urandom(100 * 1024)
    rc, out, err = pw.podman("exec", "-i", name, "cat", input=data)
    assert rc == 0, err
    assert len(out) == len(data)
    assert out == data
    assert err == b""
    assert_no_exec_monitor(pw, name)


def read_pty_until_eof(master, timeout):
    buf = b""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        r, _, _ = select.select([master], [], [], 0.2)
        if r:
            try:
                d = os.read(master, 65536)
            except OSError:  # EIO: every slave fd closed
                break
            if not d:
                break
            buf += d
    return buf


def test_exec_t_runs_on_a_pts_and_output_has_crlf(pw, ctr):
    name, _, _ = ctr
    master, slave = os.openpty()
    p = subprocess.Popen(pw.argv("exec", "-t", name, "sh", "-c",
                                 "tty; echo one; echo two; exit 3"),
                         stdin=slave, stdout=slave, stderr=slave, env=pw.env,
                         start_new_session=True, close_fds=True)
    os.close(slave)
    try:
        buf = read_pty_until_eof(master, 30)
        rc = p.wait(timeout=30)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
        os.close(master)
    assert rc == 3, buf
    lines = buf.split(b"\r\n")
    assert lines[0].startswith(b"/dev/pts/") and lines[0][9:].isdigit(), buf
    assert lines[1:] == [b"one", b"two", b""], buf
    assert_no_exec_monitor(pw, name)


def test_exec_t_without_terminal_on_host_side_still_gets_crlf(pw, ctr):
    name, _, _ = ctr
    rc, out, err = pw.podman("exec", "-t", name, "sh", "-c", "tty; echo a")
    assert rc == 0, err
    assert out.startswith(b"/dev/pts/"), out
    assert out.endswith(b"\r\na\r\n"), out
    assert_no_exec_monitor(pw, name)


def test_exec_d_detached_process_writes_file_seen_by_later_exec(pw, ctr):
    name, _, _ = ctr
    rc, out, err = pw.podman("exec", "-d", name, "sh", "-c",
                             "echo detached-ok > /tmp/exec-d.txt")
    assert rc == 0, err
    assert len(out.strip()) == 64, out  # the exec session id
    def written():
        rc, out, _ = pw.podman("exec", name, "cat", "/tmp/exec-d.txt")
        return rc == 0 and out
    assert wait_until(written, 30, interval=0.2,
                      what="the detached exec's file") == b"detached-ok\n"
    assert_no_exec_monitor(pw, name)


def test_exec_into_stopped_container_fails_cleanly(pw):
    g = pw.gate()
    name = pw.name("s")
    pw.ok("run", "-d", "--name", name, *g.volume, IMAGE, "sh", "-c",
          g.wait_cmd("go", "exit 0"))
    info = pw.verify_monitor(name)
    g.open()
    assert pw.ok("wait", name) == b"0\n"
    pw.assert_monitor_gone(info)
    ud = userdata(pw, name)
    before = sorted(os.listdir(ud))
    rc, out, err = pw.podman("exec", name, "echo", "never")
    assert rc != 0
    assert out == b""
    assert b"can only create exec sessions on running containers" in err, err
    assert_no_exec_monitor(pw, name)
    assert sorted(os.listdir(ud)) == before
    assert pw.inspect(name, "{{.State.Status}}") == "exited"
