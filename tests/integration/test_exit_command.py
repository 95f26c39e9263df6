"""--exit-command, --exit-command-arg, --exit-delay (spec §2.7)."""
import os

from ctrtest.wait import wait_for

# $1.. are the extra args; writes what the command saw into $OUT.
SCRIPT = ('printf "[%s]" "$0" "$@" > "$OUT/args.tmp"; '
          'date +%s.%N > "$OUT/time"; '
          # $(...) so the shell's own fds are read before any redirection
          's=$(readlink /proc/$$/fd/0 /proc/$$/fd/1 /proc/$$/fd/2); '
          'echo "$s" > "$OUT/stdio"; '
          'ls /proc/self/fd > "$OUT/fds"; '
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


def test_exit_command_runs_after_exit_with_args_in_order_and_no_fds(env):
    m, out = _exit_command_monitor(env, ["true"])
    m.run()
    assert m.wait_exit_file() == "0"
    # The monitor waits for the command before it exits itself.
    m.assert_clean_exit(timeout=15)
    assert _read(out, "args") == "[x][a b][][c]"
    assert _read(out, "stdio").split() == ["/dev/null"] * 3
    fds = [int(n) for n in _read(out, "fds").split()]
    # 0-2 plus the one directory fd ls itself opens: nothing inherited.
    assert fds == [0, 1, 2, 3], fds


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
