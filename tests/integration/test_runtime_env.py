"""What the runtime inherits from the monitor (spec §2.4): LISTEN_PID
handling, the environment (runtime and exit command see exactly the
monitor's), inherited fds at their numbers and nothing of the monitor's own,
and runc's --preserve-fds fed by an fd the monitor inherited.

The recording runtime (tests/lib/recording-runtime) records and then execs
real runc, so every container here really runs."""
import os

import pytest

from ctrtest import k8slog, procs
from ctrtest.recording import (RECORDING_RUNTIME, Recorder, ReservedLowFds,
                               environ_dict, fd_wrapper,
                               listen_pid_self_wrapper)

UNRELATED_PID = "999999"

# What valgrind adds when ctrmon runs under tests/lib/valgrind-ctrmon (the
# valgrind run of tests/run-all), ignored there and only there:
# LD_LIBRARY_PATH=/usr/lib/debug (Debian's /usr/bin/valgrind script),
# GLIBCXX_FORCE_NEW/GLIBCPP_FORCE_NEW=1 (memcheck, against libstdc++ pools),
# LD_PRELOAD= (valgrind's preload entry, emptied for an untraced exec) and
# PWD and _ (the wrapper's shells reset PWD to the cwd the test gives them
# and drop the caller's "_", the shell's last-command variable).
VALGRIND_ENV = ("LD_LIBRARY_PATH", "GLIBCXX_FORCE_NEW", "GLIBCPP_FORCE_NEW",
                "LD_PRELOAD", "PWD", "_")


def monitor_env(d, valgrind_log_dir):
    """An environment dict less what valgrind adds (only under valgrind)."""
    if not valgrind_log_dir:
        return d
    return {k: v for k, v in d.items() if k not in VALGRIND_ENV}


def inherited_fds(record, valgrind_log_dir):
    """A record's fds less valgrind's own memcheck logs
    (<VALGRIND_LOG_DIR>/<pid>.log), which valgrind opens without
    close-on-exec in the monitor and in each forked child, so an untraced
    exec (runtime, exit command) inherits them; only under valgrind."""
    fds = record["fds"]
    if not valgrind_log_dir:
        return fds
    d = os.path.abspath(valgrind_log_dir)
    return {n: f for n, f in fds.items()
            if os.path.dirname(f["target"]) != d}


def recorded_run(env, args, *, extra_env=None, extra_args=(), binary=None,
                 sync=False, fail=None):
    """A monitor for `args` whose runtime is the recording runtime; returns
    (monitor, recorder). Nothing is started yet."""
    rec = Recorder(os.path.join(env.work, "rec"), fail=fail)
    e = dict(rec.env)
    e.update(extra_env or {})
    b = env.bundle(args)
    m = env.monitor(bundle=b, extra_env=e, extra_args=list(extra_args),
                    binary=binary, sync=sync)
    m.runc = rec.runc(env.runc)
    # Monitor built -r from the runc it was given: point it at the recorder.
    i = m.args.index("-r")
    m.args[i + 1] = RECORDING_RUNTIME
    return m, rec


def run_to_exit(m):
    m.run()
    assert m.wait_exit_file() == "0"
    m.assert_clean_exit()


# -- LISTEN_PID ------------------------------------------------------------

def test_listen_pid_unset_stays_unset_for_runtime(env):
    m, rec = recorded_run(env, ["true"])
    run_to_exit(m)
    assert "LISTEN_PID" not in environ_dict(rec.one("create"))


def test_listen_pid_unrelated_value_passes_through_unchanged(env):
    m, rec = recorded_run(env, ["true"], extra_env={"LISTEN_PID": UNRELATED_PID})
    run_to_exit(m)
    assert environ_dict(rec.one("create"))["LISTEN_PID"] == UNRELATED_PID


def test_replace_listen_pid_gives_runtime_its_own_pid(env):
    m, rec = recorded_run(env, ["true"], extra_env={"LISTEN_PID": UNRELATED_PID},
                          extra_args=["--replace-listen-pid"])
    run_to_exit(m)
    r = rec.one("create")
    assert environ_dict(r)["LISTEN_PID"] == str(r["pid"])


def test_replace_listen_pid_without_listen_pid_adds_nothing(env):
    m, rec = recorded_run(env, ["true"], extra_args=["--replace-listen-pid"])
    run_to_exit(m)
    assert "LISTEN_PID" not in environ_dict(rec.one("create"))


def test_listen_pid_naming_the_monitor_is_replaced_by_runtime_pid(env):
    # --sync: no daemonizing fork, so the wrapper's $$ is the monitor's pid.
    wrapper = listen_pid_self_wrapper(os.path.join(env.work, "lp-wrap"),
                                      os.path.abspath(os.environ["CTRMON_BIN"]))
    m, rec = recorded_run(env, ["true"], binary=wrapper, sync=True)
    m.run()
    assert m.wait_status() == 0
    r = rec.one("create")
    assert r["ppid"] == m.popen.pid
    assert environ_dict(r)["LISTEN_PID"] == str(r["pid"])


@pytest.mark.parametrize("value,shown", [
    ("abc", "abc"),
    ("abcdefghijklmnop", "abcdefghij"),  # only the first 10 chars
])
def test_invalid_listen_pid_fails_before_runtime_with_exact_sync_message(
        env, value, shown):
    m, rec = recorded_run(env, ["true"], extra_env={"LISTEN_PID": value},
                          sync=True)
    m.start()
    lines = m.sync_rest(15)
    # The child's "[conmon:e]: ...\n" stderr line, JSON-escaped (§3.2).
    assert lines == [b'{"data": -1, "message": "[conmon:e]: Invalid LISTEN_PID '
                     + shown.encode() + b' Success\\n"}\n'], lines
    assert m.wait_status() == 1
    assert rec.records("create") == [], "runtime ran despite bad LISTEN_PID"
    assert env.runc.state(m.cid) is None
    m.assert_clean_exit()


# -- environment -----------------------------------------------------------

# Variables naming descriptors that the exit command never gets (it has
# stdio only); podman 5 passes LISTEN_* along with its whole environment.
FD_NAMING_ENV = ("LISTEN_FDS", "LISTEN_PID", "LISTEN_FDNAMES",
                 "_OCI_SYNCPIPE", "_OCI_STARTPIPE", "_OCI_ATTACHPIPE")


def test_runtime_sees_the_monitor_environment_and_the_exit_command_it_less_fd_variables(
        env, valgrind_log_dir):
    m, rec = recorded_run(
        env, ["true"],
        extra_env={"CTRTEST_MARK": "a b=c\tq", "EMPTY_VAR": "",
                   "LISTEN_FDS": "1", "LISTEN_PID": UNRELATED_PID,
                   "LISTEN_FDNAMES": "web"},
        extra_args=["--exit-command", RECORDING_RUNTIME,
                    "--exit-command-arg", "--record-exit-command"])
    run_to_exit(m)
    want = monitor_env(m.spawn_env, valgrind_log_dir)
    assert "_OCI_SYNCPIPE" in want and want["LISTEN_FDS"] == "1"
    r = rec.one("create")
    assert monitor_env(environ_dict(r), valgrind_log_dir) == want
    x = rec.one("exitcmd")
    assert monitor_env(environ_dict(x), valgrind_log_dir) == {
        k: v for k, v in want.items() if k not in FD_NAMING_ENV}
    assert x["argv"][1:] == ["--record-exit-command"]
    # The exit command gets /dev/null as stdio and no other fd (§2.7).
    assert {n: f["target"] for n, f in
            inherited_fds(x, valgrind_log_dir).items()} == {
        "0": "/dev/null", "1": "/dev/null", "2": "/dev/null"}


def test_runtime_create_argv_and_cwd_are_exactly_as_specified(env):
    m, rec = recorded_run(env, ["true"])
    run_to_exit(m)
    r = rec.one("create")
    assert r["argv"][1:] == [m.runc.root_arg, "create", "--bundle",
                             m.bundle.path, "--pid-file", m.container_pidfile,
                             m.cid]
    assert r["cwd"] == m.workdir  # the monitor's cwd (Popen cwd=workdir)


# -- inherited descriptors ---------------------------------------------------

def write_file(path, data):
    with open(path, "wb") as f:
        f.write(data)
    return path


def test_inherited_fds_5_and_7_reach_runtime_at_same_numbers_and_nothing_else(
        env, valgrind_log_dir):
    f5 = write_file(os.path.join(env.work, "five"), b"five\n")
    f7 = write_file(os.path.join(env.work, "seven"), b"seven-seven\n")
    wrapper = fd_wrapper(os.path.join(env.work, "fd-wrap"),
                         os.path.abspath(os.environ["CTRMON_BIN"]),
                         {5: f5, 7: f7})
    m, rec = recorded_run(env, ["sleep", "30"], binary=wrapper)
    with ReservedLowFds():
        m.run()
    r = rec.one("create")
    fds = inherited_fds(r, valgrind_log_dir)
    # Only stdio plus the two inherited files: no log, pipe, socket, FIFO,
    # signalfd or eventfd of the monitor's own leaks into the runtime.
    assert sorted(fds, key=int) == ["0", "1", "2", "5", "7"], fds
    assert fds["0"]["target"] == "/dev/null"
    assert fds["1"]["target"].startswith("pipe:")
    assert fds["2"]["target"].startswith("pipe:")
    assert (fds["5"]["target"], fds["5"]["content"]) == (f5, "five\n")
    assert (fds["7"]["target"], fds["7"]["content"]) == (f7, "seven-seven\n")
    # The monitor itself keeps them open while the container runs.
    assert os.readlink(f"/proc/{m.daemon_pid}/fd/5") == f5
    assert os.readlink(f"/proc/{m.daemon_pid}/fd/7") == f7
    env.runc.kill(m.cid, "KILL")
    assert m.wait_exit_file() == "137"
    m.assert_clean_exit()


def test_runc_preserve_fds_1_lets_container_init_read_inherited_fd_3(env):
    data = b"bytes through fd 3\nsecond line\n"
    f3 = write_file(os.path.join(env.work, "three"), data)
    wrapper = fd_wrapper(os.path.join(env.work, "fd3-wrap"),
                         os.path.abspath(os.environ["CTRMON_BIN"]), {3: f3})
    m = env.monitor(["sh", "-c", "cat <&3"], binary=wrapper,
                    extra_args=["--runtime-opt", "--preserve-fds=1"])
    with ReservedLowFds():
        m.run()
    assert m.wait_exit_file() == "0"
    m.assert_clean_exit()
    recs = k8slog.read(m.log_path)
    assert k8slog.stream_bytes(recs, "stdout") == data
    assert k8slog.stream_bytes(recs, "stderr") == b""


def test_without_preserve_fds_container_init_does_not_get_fd_3(env):
    f3 = write_file(os.path.join(env.work, "three"), b"secret\n")
    wrapper = fd_wrapper(os.path.join(env.work, "fd3-wrap"),
                         os.path.abspath(os.environ["CTRMON_BIN"]), {3: f3})
    m = env.monitor(["sh", "-c", "cat <&3"], binary=wrapper)
    with ReservedLowFds():
        m.run()
    assert m.wait_exit_file() != "0"
    m.assert_clean_exit()
    assert b"secret" not in m.log_bytes()
    assert procs.is_gone(m.daemon_pid)
