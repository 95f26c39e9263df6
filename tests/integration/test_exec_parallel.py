"""Exec mode under load and failure (spec §2.6-2.8, §3.3, §7): many exec
monitors at once on one container, a timeout that must not lose output, and
`runc exec` failures reported with runc's own error text."""
import os
import re
import signal
import time

import pytest

from ctrtest import k8slog, procs
from ctrtest.bundle import SessionDir
from ctrtest.monitor import Monitor, SyncMessage
from ctrtest.wait import wait_for

from conftest import TIME_SCALE, scaled

# 50 exec monitors at once; 10 under valgrind (CTRTEST_TIME_SCALE set),
# where 50 memcheck processes on two cores only measure the machine.
PARALLEL = 50 if TIME_SCALE == 1 else 10


@pytest.fixture
def running(env):
    """A running container (with /run shared with the host) that lives
    until the test ends."""
    shared = os.path.join(env.work, "shared")
    m = env.monitor(["sleep", str(int(scaled(60)))],
                    bundle_opts={"shared_dir": shared})
    m.run()
    m.shared = shared
    yield m
    env.runc.kill(m.cid, "KILL")
    m.wait_exit_file(15)
    m.assert_clean_exit()


def test_parallel_execs_each_report_their_own_exit_code_and_all_monitors_exit(
        env, running):
    codes = [100 + i for i in range(PARALLEL)]
    xs = [env.exec_monitor(running, ["sh", "-c", f"exit {c}"])
          for c in codes]
    for x in xs:  # foreground returns right after the daemonizing fork
        x.start(timeout=scaled(30))
        assert x.foreground_status == 0, x.stderr()
        assert x.daemon_pid
    pids = set()
    for x, c in zip(xs, codes):
        lines = x.sync_rest(scaled(60))
        assert len(lines) == 2, (c, lines)
        first = SyncMessage(lines[0])
        assert first.key == "data" and first.value > 0, lines
        pids.add(first.value)
        assert lines[1] == b'{"data": %d}\n' % c, (c, lines)
        assert x.wait_exit_file() == str(c)
        with open(x.persist_exit) as f:
            assert f.read() == str(c)
    assert len(pids) == PARALLEL, "two execs reported the same pid"
    for x in xs:
        x.assert_clean_exit(timeout=scaled(30))
        assert procs.is_gone(x.daemon_pid)
    # The container itself is untouched by all of it.
    assert not procs.is_gone(running.container_pid)
    assert env.runc.state(running.cid)["status"] == "running"


LINES = [b"line %05d %s" % (i, b"x" * 48) for i in range(1000)]  # 60 B each


@pytest.mark.conmon_differs("conmon does not drain stdout on timeout")
def test_exec_timeout_kills_reports_minus_one_and_keeps_output_written_before(
        env, running):
    assert sum(len(l) + 1 for l in LINES) == 60000
    script = ("while [ ! -e /run/go ]; do usleep 10000; done; "
              "i=0; while [ $i -lt 1000 ]; do "
              "printf 'line %05d %s\\n' $i "
              "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx; "
              "i=$((i+1)); done; touch /run/written; exec sleep 100")
    x = env.exec_monitor(running, ["sh", "-c", script], sync=True, timeout=1)
    x.start()
    pid_msg = x.read_sync(15)   # the -T timer is armed after this report
    t0 = time.monotonic()
    assert pid_msg.value > 0, pid_msg
    # Freeze the monitor so that all output is still in the pipe when the
    # timer fires: only a drain at the end can get it into the log.
    os.kill(x.popen.pid, signal.SIGSTOP)
    try:
        open(os.path.join(running.shared, "go"), "w").close()
        wait_for(lambda: os.path.exists(os.path.join(running.shared,
                                                     "written")),
                 15, "the exec to write its 60000 bytes")
        time.sleep(max(0, t0 + 1.5 - time.monotonic()))
    finally:
        os.kill(x.popen.pid, signal.SIGCONT)
    lines = x.sync_rest(15)
    assert lines == [b'{"data": -1, "message": "command timed out"}\n']
    assert x.wait_status() == 255
    assert x.wait_exit_file() == "-1"
    x.assert_clean_exit()
    assert procs.is_gone(pid_msg.value)
    recs = k8slog.read(x.log_path)
    assert k8slog.lines(recs) == LINES
    assert k8slog.stream_bytes(recs, "stderr") == b""


def exec_with_spec(env, container, spec_bytes, **kw):
    """An exec Monitor whose --exec-process-spec file holds spec_bytes."""
    env._n += 1
    wd = os.path.join(env.work, f"x{env._n}")
    os.makedirs(wd)
    spec = os.path.join(wd, "process.json")
    with open(spec, "wb") as f:
        f.write(spec_bytes)
    m = Monitor(wd, SessionDir(os.path.join(wd, "session")), env.runc,
                cid=container.cid, exec_spec=spec, **kw)
    env.monitors.append(m)
    return m


def runc_error_re(text):
    return (r'time="[^"]+" level=error msg="exec failed: '
            + re.escape(text) + r'"\n')


@pytest.fixture
def stopped(env):
    """A container whose process exited: runc still knows it, as stopped."""
    m = env.monitor(["true"])
    m.run()
    assert m.wait_exit_file() == "0"
    m.assert_clean_exit()
    assert env.runc.state(m.cid)["status"] == "stopped"
    return m


GOOD_SPEC = (b'{"terminal": false, "user": {"uid": 0, "gid": 0}, '
             b'"args": ["true"], "cwd": "/", "env": ["PATH=/bin"]}')


def assert_failed_exec(x, text):
    lines = x.sync_rest(15)
    assert len(lines) == 1, lines
    msg = SyncMessage(lines[0])
    assert (msg.key, msg.value) == ("data", -1), lines
    assert re.fullmatch(runc_error_re(text), msg.message), msg
    assert x.wait_status() == 1
    x.assert_clean_exit()
    assert not os.path.exists(x.exit_file)


def test_exec_into_stopped_container_reports_runc_error_text(env, stopped):
    x = exec_with_spec(env, stopped, GOOD_SPEC, sync=True)
    x.start()
    assert_failed_exec(x, "cannot exec in a stopped container")
    assert env.runc.state(stopped.cid)["status"] == "stopped"


def test_exec_with_malformed_process_json_reports_runc_error_text(env, running):
    x = exec_with_spec(env, running, b"{not json", sync=True)
    x.start()
    assert_failed_exec(
        x, "invalid character 'n' looking for beginning of object key string")
    assert not procs.is_gone(running.container_pid)


@pytest.mark.conmon_differs("conmon leaves attach, ctl and winsz behind when "
                            "the runtime fails")
@pytest.mark.parametrize("case", ["stopped", "bad-json"])
def test_failed_exec_leaves_no_attach_ctl_or_winsz_in_session_dir(env, case):
    if case == "stopped":
        target = env.monitor(["true"])
        target.run()
        target.wait_exit_file()
        spec = GOOD_SPEC
    else:
        target = env.monitor(["sleep", "60"])
        target.run()
        spec = b"{not json"
    x = exec_with_spec(env, target, spec, sync=True)
    x.start()
    assert x.read_sync(15).value == -1
    assert x.wait_status() == 1
    x.assert_clean_exit()
    assert os.listdir(x.bundle.path) == []
    assert not os.path.lexists(x.symlink_path)
    if case != "stopped":
        env.runc.kill(target.cid, "KILL")
        target.wait_exit_file()
        target.assert_clean_exit()
