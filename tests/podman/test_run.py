"""podman run / kill / stop / wait / restart through the monitor under test."""

import subprocess
import time

import pytest

from podmanworld import IMAGE, wait_until


def gated_run(pw, args, script, timeout=60):
    """Start `podman run ARGS IMAGE sh -c SCRIPT` held at a gate, verify the
    monitor while it waits, open the gate; returns (rc, out, err, info)."""
    g = pw.gate()
    name = pw.name()
    p = pw.popen("run", "--name", name, *g.volume, *args, IMAGE,
                 "sh", "-c", g.wait_cmd("go", script))
    try:
        info = pw.verify_monitor(name)
        g.open()
        out, err = p.communicate(timeout=timeout)
    finally:
        if p.poll() is None:
            p.kill()
            p.communicate()
    return p.returncode, out, err, info


def test_run_rm_keeps_stdout_and_stderr_apart(pw):
    rc, out, err, info = gated_run(pw, ["--rm"], "echo out; echo err >&2")
    assert (rc, out, err) == (0, b"out\n", b"err\n")
    pw.assert_monitor_gone(info)
    rc, out, _ = pw.podman("container", "exists", info.name)
    assert rc == 1, "--rm container still exists"


@pytest.mark.parametrize("code", [0, 42])
def test_run_exit_code_is_the_container_exit_code(pw, code):
    rc, out, err, info = gated_run(pw, [], f"echo bye; exit {code}")
    assert (rc, out, err) == (code, b"bye\n", b"")
    pw.assert_monitor_gone(info)
    assert pw.inspect(info.name, "{{.State.Status}} {{.State.ExitCode}}") == \
        f"exited {code}"
    assert pw.ok("wait", info.name) == f"{code}\n".encode()


def run_d(pw, *cmd, args=()):
    name = pw.name()
    out = pw.ok("run", "-d", "--name", name, *args, IMAGE, *cmd)
    assert len(out.strip()) == 64, out
    return name


def test_kill_sigkill_running_container_wait_prints_137(pw):
    name = run_d(pw, "sleep", "1000")
    info = pw.verify_monitor(name)
    assert pw.ok("kill", "-s", "KILL", name) == f"{name}\n".encode()
    assert pw.ok("wait", name, timeout=30) == b"137\n"
    pw.assert_monitor_gone(info)
    assert pw.inspect(name, "{{.State.Status}} {{.State.ExitCode}}") == "exited 137"


def test_kill_custom_signal_reaches_container_trap(pw):
    name = run_d(pw, "sh", "-c",
                 "trap 'echo got-usr1; exit 7' USR1; echo ready; "
                 "while :; do usleep 50000; done")
    info = pw.verify_monitor(name)
    wait_until(lambda: pw.ok("logs", name) == b"ready\n", 10, what="ready")
    assert pw.ok("kill", "-s", "USR1", name) == f"{name}\n".encode()
    assert pw.ok("wait", name, timeout=30) == b"7\n"
    pw.assert_monitor_gone(info)
    assert pw.ok("logs", name) == b"ready\ngot-usr1\n"


def test_stop_container_trapping_term_exits_with_its_code(pw):
    name = run_d(pw, "sh", "-c",
                 "trap 'echo term; exit 3' TERM; echo ready; "
                 "while :; do usleep 50000; done")
    info = pw.verify_monitor(name)
    wait_until(lambda: pw.ok("logs", name) == b"ready\n", 10, what="ready")
    t0 = time.monotonic()
    assert pw.ok("stop", "-t", "10", name) == f"{name}\n".encode()
    assert time.monotonic() - t0 < 8, "stop waited for the timeout"
    assert pw.ok("wait", name) == b"3\n"
    pw.assert_monitor_gone(info)
    assert pw.inspect(name, "{{.State.Status}} {{.State.ExitCode}}") == "exited 3"
    assert pw.ok("logs", name) == b"ready\nterm\n"


def test_stop_container_ignoring_term_is_killed_after_timeout(pw):
    name = run_d(pw, "sh", "-c",
                 "trap '' TERM; echo ready; while :; do usleep 50000; done")
    info = pw.verify_monitor(name)
    wait_until(lambda: pw.ok("logs", name) == b"ready\n", 10, what="ready")
    t0 = time.monotonic()
    assert pw.ok("stop", "-t", "1", name) == f"{name}\n".encode()
    took = time.monotonic() - t0
    assert took >= 1.0, f"stop returned after {took:.2f}s, before -t 1 ran out"
    assert took < 15, f"stop took {took:.2f}s"
    assert pw.ok("wait", name) == b"137\n"
    pw.assert_monitor_gone(info)
    assert pw.inspect(name, "{{.State.ExitCode}}") == "137"


def test_wait_blocks_until_exit_and_prints_code(pw):
    g = pw.gate()
    name = run_d(pw, "sh", "-c", g.wait_cmd("go", "exit 5"), args=g.volume)
    info = pw.verify_monitor(name)
    w = pw.popen("wait", name)
    time.sleep(0.5)
    assert w.poll() is None, "podman wait returned while the container ran"
    g.open()
    out, err = w.communicate(timeout=30)
    assert (w.returncode, out) == (0, b"5\n"), err
    pw.assert_monitor_gone(info)
    # waiting on an exited container returns at once with the same code
    assert pw.ok("wait", name) == b"5\n"


def test_restart_runs_container_again_under_a_new_monitor(pw):
    name = run_d(pw, "sh", "-c", "echo started; exec sleep 1000")
    first = pw.verify_monitor(name)
    assert pw.ok("restart", "-t", "0", name) == f"{name}\n".encode()
    second = pw.verify_monitor(name)
    assert second.conmon_pid != first.conmon_pid
    assert second.ctr_pid != first.ctr_pid
    pw.assert_monitor_gone(first)
    assert pw.inspect(name, "{{.State.Status}}") == "running"
    wait_until(lambda: pw.ok("logs", name) == b"started\nstarted\n", 10,
               what="two 'started' lines in the log")
    assert pw.ok("kill", name) == f"{name}\n".encode()
    assert pw.ok("wait", name) == b"137\n"
    pw.assert_monitor_gone(second)


def test_restart_policy_on_failure_restarts_through_exit_command(pw):
    # The restart is done by the exit command the monitor runs
    # (`podman container cleanup`), which finds the monitor through
    # containers.conf's conmon_path.
    g = pw.gate()
    script = ('i=$(( $(cat /gate/count 2>/dev/null || echo 0) + 1 )); '
              'echo $i > /gate/count; echo run$i; ' + g.wait_cmd("go$i", "exit 1"))
    name = run_d(pw, "sh", "-c", script, args=[*g.volume, "--restart", "on-failure:1"])
    wait_until(lambda: g.read("count") == b"1\n", 10, what="first run")
    first = pw.verify_monitor(name)
    g.open("go1")
    wait_until(lambda: g.read("count") == b"2\n", 30, what="restarted run")
    second = pw.verify_monitor(name)
    assert second.conmon_pid != first.conmon_pid
    pw.assert_monitor_gone(first)
    g.open("go2")
    wait_until(lambda: pw.inspect(name, "{{.State.Status}}") == "exited", 30,
               interval=0.2, what="final exit")
    pw.assert_monitor_gone(second)
    assert pw.inspect(name, "{{.State.ExitCode}} {{.RestartCount}}") == "1 1"
    assert pw.ok("logs", name) == b"run1\nrun2\n"


def test_monitor_is_parent_of_container_init_in_pstree(pw):
    name = run_d(pw, "sleep", "1000")
    info = pw.verify_monitor(name)
    with open(f"/proc/{info.ctr_pid}/status") as f:
        ppid = [l.split()[1] for l in f if l.startswith("PPid:")][0]
    assert int(ppid) == info.conmon_pid
    with open(f"/proc/{info.conmon_pid}/comm") as f:
        comm = f.read().strip()
    tree = subprocess.run(["pstree", "-p", "-s", str(info.ctr_pid)],
                          stdout=subprocess.PIPE, check=True).stdout.decode()
    want = f"{comm}({info.conmon_pid})---sleep({info.ctr_pid})"
    assert want in tree, f"{want!r} not in pstree output {tree!r}"
    pw.ok("kill", name)
    assert pw.ok("wait", name) == b"137\n"
    pw.assert_monitor_gone(info)
