"""ctrmonctl (client/ctrmonctl) against real runc containers: every command
through the control API, the exit codes it promises (mirrored statuses, 1,
125) and `run` + `attach` on a real pty.

Env: CTRMONCTL_BIN (default: <build dir>/client/ctrmonctl/ctrmonctl, the
build dir being the one CTRMON_BIN was built in, or $BUILD_DIR).
"""
import json
import os
import pty
import re
import select
import signal
import subprocess
import time

import pytest

from ctrtest.monitor import Monitor, ctrmonctl_binary, monitor_binary, new_cid
from ctrtest.runc import Runc
from ctrtest.wait import wait_for
from testusers import ensure_user

TEST_USER = "ctrmon-test"


def ctl(*args, target=None, input=None, timeout=20, user=None, env=None):
    """Run ctrmonctl; `target` is a Monitor (→ -b its bundle) or a path
    (→ -S). Returns the CompletedProcess (bytes)."""
    argv = [ctrmonctl_binary()]
    if isinstance(target, Monitor):
        argv += ["-b", target.bundle.path]
    elif target is not None:
        argv += ["-S", target]
    argv += list(args)
    if user:
        argv = ["setpriv", f"--reuid={user}", f"--regid={user}",
                "--clear-groups", "--"] + argv
    return subprocess.run(argv, input=input, stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, timeout=timeout, env=env,
                          stdin=None if input is not None else subprocess.DEVNULL)


def api_socket(m):
    return os.path.join(m.bundle.path, "ctrmon", "api.sock")


def stop(m):
    """Kill a container a test left running and let its monitor finish."""
    m.runc.kill(m.cid, "KILL")
    if m.daemon_pid:
        m.wait_gone(timeout=15)


def run_until_running(m, timeout=5):
    """create + start, then wait until the monitor reports "running":
    `runc start` returns a moment before the init has exec'd the command,
    and until then the container is rightly still "created"."""
    import time
    pid = m.run()
    deadline = time.monotonic() + timeout
    while True:
        p = ctl("--json", "status", target=api_socket(m))
        if p.returncode == 0 and json.loads(p.stdout)["state"] == "running":
            return pid
        assert time.monotonic() < deadline, p.stdout
        time.sleep(0.02)


@pytest.fixture(scope="module", autouse=True)
def have_ctrmonctl():
    if not os.access(ctrmonctl_binary(), os.X_OK):
        pytest.fail(f"ctrmonctl not built at {ctrmonctl_binary()} "
                    "(set CTRMONCTL_BIN)")


# ------------------------------------------------------------ status

def test_status_human_shows_state_and_pid(env):
    m = env.monitor(["sleep", "100"])
    pid = run_until_running(m)
    p = ctl("status", target=m)
    assert p.returncode == 0, p.stderr
    out = p.stdout.decode()
    assert re.search(rf"^ID: +{re.escape(m.cid)}$", out, re.M)
    assert re.search(r"^State: +running$", out, re.M)
    assert re.search(rf"^PID: +{pid}$", out, re.M)
    assert p.stderr == b""
    stop(m)


def test_status_json_is_the_raw_result_on_one_line(env):
    m = env.monitor(["sleep", "100"])
    pid = run_until_running(m)
    p = ctl("--json", "status", target=api_socket(m))
    assert p.returncode == 0, p.stderr
    assert p.stdout.count(b"\n") == 1
    st = json.loads(p.stdout)
    assert st["id"] == m.cid
    assert st["state"] == "running"
    assert st["container_pid"] == pid
    assert st["exit_code"] is None
    stop(m)


def test_status_from_ctrmon_socket_env(env):
    m = env.monitor(["sleep", "100"])
    m.run()
    e = dict(os.environ, CTRMON_SOCKET=api_socket(m))
    p = ctl("--json", "status", env=e)
    assert p.returncode == 0, p.stderr
    assert json.loads(p.stdout)["id"] == m.cid
    stop(m)


# ------------------------------------------------------------ wait, kill

def test_wait_exit_code_mirrors_container_exit_7(env):
    m = env.monitor(["sh", "-c", "trap 'exit 7' TERM; while :; do sleep 0.1; done"])
    m.run()
    w = _background_wait(m)
    assert ctl("kill", "-s", "TERM", target=m).returncode == 0
    out, err = w.communicate(timeout=15)
    assert w.returncode == 7, err
    assert out == b"7\n"
    m.wait_gone()


def _waiters(m):
    p = ctl("--json", "status", target=m)
    return json.loads(p.stdout)["waiters"] if p.returncode == 0 else -1


def _background_wait(m, *opts):
    """ctrmonctl wait, registered with the monitor before the container dies
    (the monitor exits with its container, so a later wait finds no
    monitor): polls status until the monitor counts one more waiter."""
    before = _waiters(m)
    w = subprocess.Popen([ctrmonctl_binary(), *opts, "-b", m.bundle.path,
                          "wait"], stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE)
    deadline = time.monotonic() + 15
    while _waiters(m) <= before:
        assert time.monotonic() < deadline, "ctrmonctl wait never registered"
        time.sleep(0.05)
    return w


def test_kill_sigkill_makes_wait_report_137(env):
    m = env.monitor(["sleep", "100"])
    m.run()
    w = _background_wait(m, "--json")
    p = ctl("kill", "-s", "KILL", target=m)
    assert p.returncode == 0, p.stderr
    out, err = w.communicate(timeout=15)
    assert w.returncode == 137, err
    assert json.loads(out)["signal"] == signal.SIGKILL
    m.wait_gone()


def test_kill_all_with_signal_name(env):
    m = env.monitor(["sleep", "100"])
    m.run()
    w = _background_wait(m)
    # (TERM would not do: the container's PID 1 has no default actions.)
    p = ctl("kill", "--all", "-s", "SIGKILL", target=m)
    assert p.returncode == 0, p.stderr
    w.communicate(timeout=15)
    assert w.returncode == 128 + signal.SIGKILL
    m.wait_gone()


def test_kill_unknown_signal_is_usage_error_1(env):
    m = env.monitor(["sleep", "100"])
    m.run()
    p = ctl("kill", "-s", "NOPE", target=m)
    assert p.returncode == 1
    assert b"unknown signal" in p.stderr
    stop(m)


def test_rpc_error_is_exit_1_with_monitor_message(env):
    m = env.monitor(["sleep", "100"])
    m.run()
    p = ctl("resize", "24", "80", target=m)  # no -t: unsupported
    assert p.returncode == 1
    assert p.stderr.startswith(b"ctrmonctl: resize: ")
    assert b"terminal" in p.stderr
    stop(m)


# ------------------------------------------------------------ stats, ps

def test_stats_human_and_json(env):
    m = env.monitor(["sleep", "100"])
    m.run()
    p = ctl("stats", target=m)
    assert p.returncode == 0, p.stderr
    assert re.search(rb"^monitor\.rss_bytes: \d+$", p.stdout, re.M)
    j = ctl("--json", "stats", target=m)
    assert j.returncode == 0, j.stderr
    st = json.loads(j.stdout)
    assert st["monitor"]["rss_bytes"] > 0
    stop(m)


def test_ps_tree_pairs_host_and_container_pids(env):
    m = env.monitor(["sh", "-c", "sleep 100 & wait"])
    pid = m.run()
    # init: host pid, in-container pid 1, not indented; its child, indented
    # under it. Both asleep once sh waits (a loaded machine may show sh
    # still running right after the fork, so wait for the settled tree).
    init_row = rf"^ +{pid} +1 +0 S +sh -c"
    child_row = r"^ +\d+ +\d+ +0 S +\\_ sleep 100$"

    def settled():
        p = ctl("ps", target=m)
        assert p.returncode == 0, p.stderr
        out = p.stdout.decode()
        if re.search(init_row, out, re.M) and re.search(child_row, out, re.M):
            return out
        return None

    out = wait_for(settled, 10, "sh waiting for sleep 100 in ps")
    assert out.split()[:2] == ["HOST", "PID"]
    assert "Ancestors" in out and "ctrmon" in out
    assert re.search(r"^\* pid +pid:\[\d+\]", out, re.M)
    assert re.search(r"^  user +user:", out, re.M)
    stop(m)


# ------------------------------------------------------------ events

def test_events_prints_created_started_exited_in_order(env, work):
    # A runtime whose create takes a second: ctrmonctl events connects
    # between the control socket appearing and the container's creation.
    wrapper = os.path.join(work, "slow-create-runc")
    with open(wrapper, "w") as f:
        f.write("#!/bin/sh\n"
                "for a in \"$@\"; do [ \"$a\" = create ] && sleep 1 && break; done\n"
                f"exec {env.runc.binary} \"$@\"\n")
    os.chmod(wrapper, 0o755)
    slow = Runc(env.runc.root, binary=wrapper)
    wd = os.path.join(work, "events")
    os.makedirs(wd)
    # It runs a moment: ctrmon notices "started" by polling.
    m = Monitor(wd, env.bundle(["sh", "-c", "sleep 0.5; exit 3"]), slow)
    env.monitors.append(m)
    m.spawn()
    m.release_start_pipe()
    wait_for(lambda: os.path.exists(api_socket(m)), 10, "the control socket")
    ev = subprocess.Popen([ctrmonctl_binary(), "-b", m.bundle.path, "events"],
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        msg = m.read_sync(15)
        assert msg and msg.value > 0, msg
        m.container_pid = msg.value
        m.popen.wait(timeout=10)
        env.runc.start(m.cid)
        out, err = ev.communicate(timeout=20)
    finally:
        if ev.poll() is None:
            ev.kill()
            ev.wait()
    assert ev.returncode == 0, err
    types = [line.split()[1] for line in out.decode().splitlines()]
    for t in ("created", "started", "exited"):
        assert t in types, out
    assert types.index("created") < types.index("started") < \
        types.index("exited"), out
    exited = [line for line in out.decode().splitlines()
              if line.split()[1] == "exited"][0]
    assert "exit_code=3" in exited


# ------------------------------------------------------------ exec

def test_exec_mirrors_exit_code_and_splits_output(env):
    m = env.monitor(["sleep", "100"])
    m.run()
    p = ctl("exec", "--", "sh", "-c", "echo out; echo err >&2; exit 5",
            target=m)
    assert p.returncode == 5, p.stderr
    assert p.stdout == b"out\n"
    assert p.stderr == b"err\n"
    stop(m)


def test_exec_interactive_sends_stdin(env):
    m = env.monitor(["sleep", "100"])
    m.run()
    p = ctl("exec", "-i", "--", "cat", target=m, input=b"from stdin\n")
    assert p.returncode == 0, p.stderr
    assert p.stdout == b"from stdin\n"
    stop(m)


# ------------------------------------------------------------ logs

def test_logs_tail_prints_last_lines(env):
    m = env.monitor(["sh", "-c",
                     "for i in 1 2 3 4 5; do echo line$i; done; sleep 100"])
    m.run()
    m.wait_log_contains(b"line5\n")
    p = ctl("logs", "-n", "2", target=m)
    assert p.returncode == 0, p.stderr
    assert p.stdout == b"line4\nline5\n"
    stop(m)


def test_logs_follow_ends_with_the_container(env):
    m = env.monitor(["sh", "-c", "echo early; sleep 1; echo late"])
    m.run()
    m.wait_log_contains(b"early\n")
    p = ctl("logs", "-f", target=m)
    assert p.returncode == 0, p.stderr
    assert p.stdout == b"early\nlate\n"
    m.wait_gone()


def test_logs_of_a_log_bigger_than_one_answer_prints_every_line(env):
    """30 MB of lines is 30 answers' worth: libctrmon asks for "chunked"
    and reads the rest as notifications up to "log-end" (before, it got
    the monitor's "does not fit one answer" error and printed nothing)."""
    # Under memcheck (20-50x slower) 3 MB is still 3 answers' worth.
    lines = 30_000 if os.environ.get("VALGRIND_LOG_DIR") else 300_000
    m = env.monitor(["sleep", "1000"])
    filler = "f" * 60
    with open(m.log_path, "wb") as f:
        f.write(b"".join(b"2024-01-01T00:00:00.000000000+00:00 stdout F %06d %s\n"
                         % (k, filler.encode()) for k in range(lines)))
    run_until_running(m)
    p = ctl("logs", target=m, timeout=120)
    assert p.returncode == 0, p.stderr
    want = b"".join(b"%06d %s\n" % (k, filler.encode()) for k in range(lines))
    assert len(p.stdout) == len(want) and p.stdout == want
    p = ctl("logs", "-n", str(lines // 2), target=m, timeout=120)
    assert p.returncode == 0, p.stderr
    assert p.stdout == want[len(want) // 2:]
    stop(m)


# ------------------------------------------------------------ run + attach

def _read_until(fd, pattern, timeout, buf=b""):
    deadline = time.monotonic() + timeout
    while not re.search(pattern, buf):
        left = deadline - time.monotonic()
        if left <= 0:
            raise AssertionError(f"no {pattern!r} in {buf!r}")
        r, _, _ = select.select([fd], [], [], left)
        if not r:
            continue
        try:
            chunk = os.read(fd, 4096)
        except OSError:  # EIO: the slave side closed
            chunk = b""
        if not chunk:
            raise AssertionError(f"EOF before {pattern!r} in {buf!r}")
        buf += chunk
    return buf


def test_run_attach_on_pty_echo_then_detach_keeps_container(env, rootfs):
    b = env.bundle(["sh"], terminal=True)
    cid = new_cid("run")
    master, slave = pty.openpty()
    proc = subprocess.Popen(
        [ctrmonctl_binary(), "run", "-t", "-i",
         "--runtime-arg", env.runc.root_arg, b.path, cid],
        stdin=slave, stdout=slave, stderr=slave, start_new_session=True,
        env=dict(os.environ, CTRMON_BIN=monitor_binary()))
    os.close(slave)
    try:
        buf = _read_until(master, rb"^\d+\r?\n", 20)
        pid = int(re.match(rb"^(\d+)", buf).group(1))
        assert pid > 0
        time.sleep(0.3)  # let the shell reach its prompt
        os.write(master, b"echo hi\r")
        _read_until(master, rb"\nhi\r?\n", 10, buf)
        os.write(master, b"\x10\x11")  # ctrl-p ctrl-q
        assert proc.wait(timeout=10) == 0
        st = env.runc.state(cid)
        assert st and st["status"] == "running"
        p = ctl("--json", "status", target=os.path.join(b.path, "ctrmon",
                                                        "api.sock"))
        assert json.loads(p.stdout)["state"] == "running"
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        os.close(master)
        env.runc.kill(cid, "KILL")
        sock = os.path.join(b.path, "ctrmon", "api.sock")
        wait_for(lambda: not os.path.exists(sock), 15, "ctrmon to exit")


def test_run_detached_then_wait_mirrors_exit(env):
    b = env.bundle(["sh", "-c", "trap 'exit 9' TERM; while :; do sleep 0.1; done"])
    cid = new_cid("rund")
    p = subprocess.run(
        [ctrmonctl_binary(), "run", "-d", "--runtime-arg",
         env.runc.root_arg, b.path, cid],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=30,
        env=dict(os.environ, CTRMON_BIN=monitor_binary()))
    assert p.returncode == 0, p.stderr
    assert int(p.stdout) > 0
    w = ctl("wait", "--help")
    assert w.returncode == 0 and w.stdout.startswith(b"Usage:")
    # Registered as a waiter before the container is told to exit 9.
    w = subprocess.Popen([ctrmonctl_binary(), "-b", b.path, "wait"],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE)

    def waiters():
        st = subprocess.run([ctrmonctl_binary(), "-b", b.path, "--json", "status"],
                            stdout=subprocess.PIPE, timeout=10)
        return json.loads(st.stdout)["waiters"] if st.returncode == 0 else 0

    wait_for(lambda: waiters() >= 1, 15, "ctrmonctl wait to register")
    k = subprocess.run([ctrmonctl_binary(), "-b", b.path, "kill", "-s", "TERM"], timeout=20)
    assert k.returncode == 0
    w.communicate(timeout=20)
    assert w.returncode == 9
    wait_for(lambda: os.path.exists(os.path.join(b.path, "exits", cid)), 10,
             "the exit file")


def test_attach_to_running_container_gets_exit_status(env):
    m = env.monitor(["sh", "-c", "read x; echo got $x; exit 4"],
                    stdin=True)
    m.run()
    p = ctl("attach", target=m, input=b"ping\n")
    assert p.returncode == 4, p.stderr
    assert b"got ping" in p.stdout


# ------------------------------------------------------------ 125

def test_missing_socket_is_125_with_message(work):
    path = os.path.join(work, "nothing", "api.sock")
    p = ctl("status", target=path)
    assert p.returncode == 125
    assert p.stderr == (f"ctrmonctl: no ctrmon at {path}: "
                        "No such file or directory\n").encode()


def _ensure_test_user():
    # the systemd suite's user too: regular, with home and subids, whichever
    # suite ran first (tests/lib/testusers.py)
    return ensure_user(TEST_USER)


def test_other_user_refused_by_socket_directory_125(env):
    _ensure_test_user()
    m = env.monitor(["sleep", "100"])
    m.run()
    path = api_socket(m)
    p = ctl("status", target=path, user=TEST_USER)
    assert p.returncode == 125, p.stderr
    assert p.stderr.decode().startswith(f"ctrmonctl: access to {path} refused: ")
    stop(m)


def test_other_user_refused_by_monitor_peer_check_125(env, work):
    # A socket anyone can reach (mode opened up after the fact): the
    # refusal comes from the monitor's SO_PEERCRED check instead.
    user = _ensure_test_user()
    sockdir = os.path.join(work, "open")
    os.makedirs(sockdir)
    os.chmod(work, 0o755)
    os.chmod(sockdir, 0o755)
    path = os.path.join(sockdir, "api.sock")
    m = env.monitor(["sleep", "100"], extra_args=["--api-socket", path])
    m.run()
    os.chmod(path, 0o666)
    p = ctl("status", target=path, user=TEST_USER)
    assert p.returncode == 125, p.stderr
    assert p.stderr.decode() == (
        f"ctrmonctl: access to {path} refused: Access denied: uid "
        f"{user.pw_uid} may not control this monitor\n")
    stop(m)
