"""--exit-command, --exit-command-arg, --exit-delay (spec §2.7)."""
import os

from ctrtest.wait import wait_for

# $1.. are the extra args; writes what the command saw into $OUT.
SCRIPT = ('printf "[%s]" "$0" "$@" > "$OUT/args.tmp"; '
          'date +%s.%N > "$OUT/time"; '
          # $(...) so the shell's own fds are read before any redirection
          's=$(readlink /proc/$$/fd/0 /proc/$$/fd/1 /proc/$$/fd/2); '
          'echo "$s" > "$OUT/stdio"; '
          'ls -l /proc/self/fd > "$OUT/fds"; '
          'mv "$OUT/args.tmp" "$OUT/args"')


def _exit_command_monitor(env, ctr_args, delay=None, **kw):
    out = os.path.join(env.work, "out")
    os.makedirs(out, exist_ok=True)
    extra = ["--exit-command", "/bin/sh"]
    for a in ("-c", SCRIPT, "x", "a b", "", "c"):
        extra += ["--exit-command-arg", a]
    if delay is not None:
        extra += ["--exit-delay", str(delay)]
    m = env.monitor(ctr_args, extra_args=extra, extra_env={"OUT": out}, **kw)
    return m, out


def _read(out, name):
    with open(os.path.join(out, name)) as f:
        return f.read()


def _fds(out, valgrind_log_dir):
    """{fd: target} from the command's `ls -l /proc/self/fd`, less the fds
    valgrind itself adds under tests/lib/valgrind-ctrmon: its memcheck logs
    (<VALGRIND_LOG_DIR>/<pid>.log) of the monitor and of the forked child,
    open without close-on-exec and outside the monitor's control."""
    fds = {}
    for line in _read(out, "fds").splitlines():
        if " -> " in line:
            left, target = line.split(" -> ", 1)
            fds[int(left.split()[-1])] = target
    if valgrind_log_dir:
        fds = {n: t for n, t in fds.items()
               if os.path.dirname(t) != os.path.abspath(valgrind_log_dir)}
    return fds


def test_exit_command_runs_after_exit_with_args_in_order_and_no_fds(
        env, valgrind_log_dir):
    m, out = _exit_command_monitor(env, ["true"])
    m.run()
    assert m.wait_exit_file() == "0"
    # The monitor waits for the command before it exits itself.
    m.assert_clean_exit(timeout=15)
    assert _read(out, "args") == "[x][a b][][c]"
    assert _read(out, "stdio").split() == ["/dev/null"] * 3
    fds = _fds(out, valgrind_log_dir)
    # 0-2 plus the one directory fd ls itself opens (3 natively; 4 under
    # valgrind, whose log holds 3): nothing inherited.
    others = {n: t for n, t in fds.items() if n > 2}
    assert sorted(fds)[:3] == [0, 1, 2], fds
    assert len(others) == 1, fds
    assert list(others.values())[0].endswith("/fd"), fds


def test_exit_delay_runs_command_at_least_delay_after_exit_file(env):
    m, out = _exit_command_monitor(env, ["true"], delay=1)
    m.run()
    assert m.wait_exit_file() == "0"
    exit_mtime = os.stat(m.exit_file).st_mtime_ns / 1e9
    wait_for(lambda: os.path.exists(os.path.join(out, "args")), 10,
             "exit command to run")
    ran = float(_read(out, "time"))
    assert ran - exit_mtime >= 0.99, ran - exit_mtime
    m.assert_clean_exit(timeout=15)


def test_exit_command_runs_after_runtime_failure(env):
    m, out = _exit_command_monitor(env, ["/nonexistent-binary"], sync=True)
    m.start()
    msg = m.read_sync(15)
    assert msg.value == -1
    assert m.wait_status(15) == 1
    assert _read(out, "args") == "[x][a b][][c]"


def test_exit_command_status_is_ignored(env):
    extra = ["--exit-command", "/bin/sh", "--exit-command-arg", "-c",
             "--exit-command-arg", "exit 9"]
    m = env.monitor(["sh", "-c", "exit 4"], sync=True, extra_args=extra)
    m.run()
    assert m.wait_status(15) == 4
    assert m.wait_exit_file() == "4"
