"""podman exec as podman 5 does it (ExecContainer, startExec, attachToExec):
three SEQPACKET socketpairs (sync, start, attach), -e --exec-attach; the
attach-pipe line, then the initial terminal size on the session's ctl FIFO
*before* the second start byte lets the runtime run, then the attach socket
and the byte; the exit code from the session's exit file."""
import p5emu
from ctrtest.attach import STDERR, STDOUT


def _running(p5):
    c = p5.container(["sleep", "60"])
    p5.run(c)
    return c


def _data(records, stream):
    return b"".join(p for s, p in records if s == stream)


def test_exec_tty_gets_its_initial_size_through_ctl_before_the_runtime_runs(p5):
    c = _running(p5)
    # the process reads its size once, a moment after it starts (podman
    # 5.4 sets no consoleSize in the process spec: only the ctl line sizes
    # the pty)
    res = p5.exec(c, ["sh", "-c", "sleep 0.3; stty size"], terminal=True, size=(37, 121))
    assert res.attach_data.raw == b'{"data": 0}\n'
    # openControlFile succeeded at once: the FIFO had its reader when the
    # attach line came (ENXIO would have been fatal for podman)
    assert res.ctl_attempts == 1
    assert res.pipe_data.error is None and res.pipe_data.data > 0, res.pipe_data
    assert _data(res.records, STDOUT) == b"37 121\r\n", res.records
    assert p5emu.handle_exit_file(res.exit_file)[1] == 0


def test_exec_without_tty_relays_both_streams_and_exit_code(p5):
    c = _running(p5)
    res = p5.exec(c, ["sh", "-c", "echo out; echo err >&2; exit 3"], attach_stdin=False)
    assert res.attach_data.raw == b'{"data": 0}\n'
    assert res.pipe_data.raw == b'{"data": %d}\n' % res.pipe_data.data
    assert _data(res.records, STDOUT) == b"out\n"
    assert _data(res.records, STDERR) == b"err\n"
    assert p5emu.handle_exit_file(res.exit_file)[1] == 3
    assert all(s in (STDOUT, STDERR) for s, _ in res.records)
