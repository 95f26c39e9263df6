"""The control API's processes, logs, exec and attach methods against real
runc containers (include/ctrmon/control.h). Every test ends with the
monitor gone and its <bundle>/ctrmon directory removed."""
import os
import struct
import time

import pytest

from ctrtest.control import (F_CLOSE_STDIN, F_EXIT, F_STDOUT, ControlClient,
                             ControlError, api_socket_path, exec_output)
from ctrtest.wait import wait_for

from conftest import scaled

ERROR_FAILED = -32004
ERROR_INVALID_PARAMS = -32602


def client(m):
    return ControlClient(api_socket_path(m.bundle.path))


def run_container(env, args, **kw):
    """Create, start and wait until the container's own process runs."""
    m = env.monitor(args, **kw)
    m.run()
    with client(m) as c:
        wait_for(lambda: c.call("status")["state"] == "running", 5,
                 "container running")
    return m


def assert_monitor_clean(m, timeout=15):
    m.wait_exit_file(timeout)
    m.assert_clean_exit()
    assert not os.path.exists(os.path.join(m.bundle.path, "ctrmon")), \
        "<bundle>/ctrmon left behind"


def stop(env, m):
    env.runc.kill(m.cid, "KILL")
    assert_monitor_clean(m)


# ------------------------------------------------------------ processes


def test_processes_lists_init_and_children_with_ns_pids_ancestors_namespaces(
        env):
    m = run_container(env, ["sh", "-c", "sleep 100 & sleep 100 & wait"])
    def settled():
        # A busybox child is briefly "[exe]" while it re-execs itself.
        x = c.call("processes")
        cmds = sorted(p["command"] for p in x["processes"])
        return x if cmds[1:] == ["sleep 100", "sleep 100"] else None

    with client(m) as c:
        r = wait_for(settled, 5, "three processes")
    assert len(r["processes"]) == 3
    assert r["container_pid"] == m.container_pid
    procs = {p["pid"]: p for p in r["processes"]}
    init = procs[m.container_pid]
    assert init["ns_pid"] == 1
    assert init["ns_ppid"] == 0
    assert init["ppid"] == m.daemon_pid
    assert init["command"] == "sh -c sleep 100 & sleep 100 & wait"
    kids = [p for p in r["processes"] if p["pid"] != m.container_pid]
    assert [k["command"] for k in kids] == ["sleep 100", "sleep 100"]
    for k in kids:
        assert k["ppid"] == m.container_pid and k["ns_ppid"] == 1
        assert k["ns_pid"] > 1 and k["uid"] == 0 and k["state"] in ("R", "S")

    chain = [a["pid"] for a in r["ancestors"]]
    assert chain[0] == m.container_pid
    assert chain[1] == m.daemon_pid
    assert chain[-1] == 1
    assert r["ancestors"][0]["cmdline"].startswith("sh -c")

    ns = r["namespaces"]
    assert set(ns) == {"pid", "mnt", "net", "uts", "ipc", "user", "cgroup",
                       "time"}
    for kind in ("pid", "mnt"):
        assert ns[kind]["differs"] is True
        assert ns[kind]["container"].startswith(kind + ":[")
    assert ns["user"]["differs"] is False
    assert ns["user"]["container"] == ns["user"]["monitor"]
    stop(env, m)


# ------------------------------------------------------------ logs


def test_logs_tail_2_of_5_lines_exact(env):
    m = run_container(env, ["sh", "-c",
                            "for i in 1 2 3 4 5; do echo line$i; done; "
                            "sleep 100"])
    m.wait_log_contains(b"line5\n")
    with client(m) as c:
        r = c.call("logs", {"tail": 2})
        assert [(x["stream"], x["text"], x["partial"]) for x in r["lines"]] \
            == [("stdout", "line4", False), ("stdout", "line5", False)]
        assert r["partial"] is False
        assert all(len(x["time"]) == 35 for x in r["lines"])
        assert len(c.call("logs")["lines"]) == 5
        assert c.call("logs", {"stream": "stderr"})["lines"] == []
    stop(env, m)


def test_logs_follow_streams_new_lines_then_log_end_with_exit_code(env, work):
    shared = os.path.join(work, "shared")
    m = run_container(
        env, ["sh", "-c",
              "echo before; while [ ! -e /run/go ]; do sleep 0.05; done; "
              "echo after1; echo after2 >&2; printf tail; exit 3"],
        bundle_opts={"shared_dir": shared})
    m.wait_log_contains(b"before\n")
    with client(m) as c:
        r = c.call("logs", {"tail": 1, "follow": True})
        assert [x["text"] for x in r["lines"]] == ["before"]
        open(os.path.join(shared, "go"), "w").close()
        got = []
        while True:
            n = c.next_notification(15)
            assert n is not None, f"EOF after {got!r}"
            got.append((n["method"], n["params"]))
            if n["method"] == "log-end":
                break
    lines = [(p["stream"], p["text"], p["partial"]) for meth, p in got
             if meth == "log"]
    assert sorted(lines[:2]) == [("stderr", "after2", False),
                                 ("stdout", "after1", False)]
    assert lines[2:] == [("stdout", "tail", True)]
    assert got[-1] == ("log-end", {"exit_code": 3})
    assert_monitor_clean(m)


def test_logs_without_k8s_file_is_unsupported(env):
    m = run_container(env, ["sleep", "100"], log_paths=["journald:"])
    with client(m) as c:
        with pytest.raises(ControlError) as e:
            c.call("logs")
    assert e.value.code == -32005
    stop(env, m)


# ------------------------------------------------------------ exec


@pytest.mark.parametrize("code", [0, 1, 42])
def test_exec_returns_exact_stdout_stderr_and_exit_code(env, code):
    m = run_container(env, ["sleep", "100"])
    with client(m) as c:
        r = c.call("exec", {"command": [
            "sh", "-c", f"echo out; echo err >&2; exit {code}"]})
    assert r["exit_code"] == code and r["signal"] is None
    assert r["stdout"] == "out\n" and r["stderr"] == "err\n"
    assert r["stdout_truncated"] is False and r["stderr_truncated"] is False
    assert r["timed_out"] is False
    stop(env, m)


def test_exec_env_cwd_and_stdin_reach_the_command(env):
    m = run_container(env, ["sleep", "100"])
    with client(m) as c:
        r = c.call("exec", {"command": ["cat"], "stdin": "hello\nworld"})
        assert r["stdout"] == "hello\nworld" and r["exit_code"] == 0
        r = c.call("exec", {"command": ["cat"], "stdin_base64": "aGkA/w=="})
        assert exec_output(r, "stdout") == b"hi\0\xff"
        r = c.call("exec", {"command": ["sh", "-c", "echo $FOO $HOME; pwd"],
                            "env": ["FOO=bar"], "cwd": "/tmp"})
        # HOME comes from config.json's process.env, FOO from the call.
        assert r["stdout"] == "bar /root\n/tmp\n"
        r = c.call("exec", {"command": ["printf", "\\377\\000"]})
        assert "stdout" not in r and exec_output(r, "stdout") == b"\xff\0"
    stop(env, m)


def test_exec_timeout_kills_the_command_and_reports_timed_out(env):
    m = run_container(env, ["sleep", "100"])
    with client(m) as c:
        t0 = time.monotonic()
        r = c.call("exec", {"command": ["sleep", "100"], "timeout": 1},
                   timeout=15)
        assert time.monotonic() - t0 < scaled(5)
        assert r["timed_out"] is True and r["exit_code"] == -1
        procs = c.call("processes")["processes"]
        assert [p["pid"] for p in procs] == [m.container_pid]
    stop(env, m)


def test_exec_output_limit_truncates_and_says_so(env):
    m = run_container(env, ["sleep", "100"])
    with client(m) as c:
        r = c.call("exec", {"command": ["sh", "-c",
                                        "yes | head -c 100000; echo e >&2"],
                            "output_limit": 1000})
    assert r["stdout"] == "y\n" * 500
    assert r["stdout_truncated"] is True
    assert r["stderr"] == "e\n" and r["stderr_truncated"] is False
    assert r["exit_code"] == 0
    stop(env, m)


def test_ten_concurrent_execs_each_get_their_own_answer(env):
    m = run_container(env, ["sleep", "100"])
    with client(m) as c:
        ids = {c.send("exec", {"command": ["sh", "-c",
                                           "sleep 0.3; echo n$1; exit $1",
                                           "sh", str(i)]}): i
               for i in range(10)}
        for rid, i in ids.items():
            msg = c.wait_response(rid, 30)
            r = msg["result"]
            assert (r["exit_code"], r["stdout"]) == (i, f"n{i}\n")
    stop(env, m)


def test_exec_failures_carry_the_runtimes_words(env):
    m = run_container(env, ["sleep", "100"])
    with client(m) as c:
        with pytest.raises(ControlError) as e:
            c.call("exec", {"command": ["/no/such/binary"]}, timeout=15)
        assert e.value.code == ERROR_FAILED
        assert "/no/such/binary" in e.value.message
        env.runc.run("pause", m.cid)
        with pytest.raises(ControlError) as e:
            c.call("exec", {"command": ["true"]}, timeout=15)
        assert e.value.code == ERROR_FAILED
        assert "paused" in e.value.message
        env.runc.run("resume", m.cid)
        with pytest.raises(ControlError) as e:
            c.call("exec", {"command": []})
        assert e.value.code == ERROR_INVALID_PARAMS
        assert c.call("exec", {"command": ["true"]})["exit_code"] == 0
    stop(env, m)


def test_exec_leaves_no_temp_files(env):
    m = run_container(env, ["sleep", "100"])
    with client(m) as c:
        c.call("exec", {"command": ["true"]})
    assert [n for n in os.listdir(m.tmpdir)
            if n.startswith("ctrmon-exec-")] == []
    stop(env, m)


# ------------------------------------------------------------ attach


def test_attach_stdin_reaches_cat_and_exit_frame_carries_status(env):
    m = run_container(env, ["sh", "-c", "cat; exit 7"], stdin=True)
    with client(m).attach() as a:
        assert a.result == {"framing": "ctrmon-attach-v1"}
        a.send_stdin(b"hi\n")
        a.read_until(lambda s: s.data(F_STDOUT) == b"hi\n")
        a.send_frame(F_CLOSE_STDIN)
        a.read_to_eof(15)
    assert a.frames[-1] == (F_EXIT, struct.pack(">i", 7))
    assert a.data(F_STDOUT) == b"hi\n"
    assert_monitor_clean(m)


def test_attach_detach_keys_close_the_connection_and_container_runs_on(env):
    m = run_container(env, ["cat"], stdin=True)
    with client(m).attach() as a:
        a.send_stdin(b"one\n\x10")
        a.send_stdin(b"\x11more\n")
        assert a.read_to_eof(10) == [] or \
            all(t == F_STDOUT for t, _ in a.frames)
    with client(m) as c:
        assert c.call("status")["state"] == "running"
    # Custom keys; what preceded them was forwarded.
    with client(m).attach({"detach_keys": "ctrl-x"}) as a:
        a.send_stdin(b"two\n")
        a.read_until(lambda s: b"two\n" in s.data(F_STDOUT))
        a.send_stdin(b"\x18")
        a.read_to_eof(10)
        assert all(t == F_STDOUT for t, _ in a.frames)
    m.wait_log_contains(b"one\n")
    assert b"more" not in m.log_bytes()
    stop(env, m)


def test_attach_with_terminal_resize_frame_sets_the_pty_size(env):
    m = run_container(env, ["sh", "-c", "read x; stty size"], terminal=True)
    with client(m).attach() as a:
        a.send_resize(33, 77)
        a.send_stdin(b"go\n")
        a.read_to_eof(15)
    assert b"33 77" in a.data(F_STDOUT)
    assert a.frames[-1] == (F_EXIT, struct.pack(">i", 0))
    assert_monitor_clean(m)


def test_exec_in_flight_when_container_dies_is_answered_and_monitor_exits(
        env):
    m = run_container(env, ["sleep", "100"])
    with client(m) as c:
        rid = c.send("exec", {"command": ["sleep", "100"]})
        wait_for(lambda: len(c.call("processes")["processes"]) == 2, 5,
                 "exec'd sleep running")
        env.runc.kill(m.cid, "KILL")
        msg = c.wait_response(rid, 15)
    assert "error" in msg or msg["result"]["exit_code"] == 137
    assert_monitor_clean(m)


def test_logs_follow_continues_after_reopen_log_replaces_the_file(env, work):
    shared = os.path.join(work, "shared")
    m = run_container(
        env, ["sh", "-c",
              "echo one; while [ ! -e /run/go ]; do sleep 0.05; done; "
              "echo two; sleep 100"],
        bundle_opts={"shared_dir": shared})
    m.wait_log_contains(b"one\n")
    with client(m) as c:
        assert c.call("logs", {"tail": 0, "follow": True})["lines"] == []
        ino = os.stat(m.log_path).st_ino
        c.call("reopen_log")
        assert os.stat(m.log_path).st_ino != ino
        open(os.path.join(shared, "go"), "w").close()
        n = c.next_notification(10)
        assert (n["method"], n["params"]["text"]) == ("log", "two")
        env.runc.kill(m.cid, "KILL")
        n = c.next_notification(10)
        assert n == {"jsonrpc": "2.0", "method": "log-end",
                     "params": {"exit_code": 137}}
    assert_monitor_clean(m)
