"""Container stdio relayed to the k8s log, attach clients and passthrough
(spec §2.3, §2.5, §4.4, §6.2, §6.5)."""
import os
import time

from ctrtest import k8slog, procs
from ctrtest.attach import STDOUT


def test_stdout_and_stderr_keep_stream_names_and_order(env):
    script = "echo o1; echo e1 >&2; echo o2; echo e2 >&2; echo o3"
    m = env.monitor(["sh", "-c", script])
    m.run()
    assert m.wait_exit_file() == "0"
    m.assert_clean_exit()
    recs = k8slog.read(m.log_path)
    assert all(r.tag == "F" for r in recs)
    assert k8slog.lines(recs, "stdout") == [b"o1", b"o2", b"o3"]
    assert k8slog.lines(recs, "stderr") == [b"e1", b"e2"]


def test_no_byte_lost_when_container_exits_right_after_writing_1mib(env):
    size = 1 << 20
    m = env.monitor(["sh", "-c", f"yes 0123456789abcdef | head -c {size}"])
    m.run()
    assert m.wait_exit_file() == "0"
    m.assert_clean_exit()
    recs = k8slog.read(m.log_path)
    data = k8slog.stream_bytes(recs, "stdout")
    expected = (b"0123456789abcdef\n" * (size // 17 + 1))[:size]
    assert len(data) == size
    assert data == expected
    # Every chunk is at most 8192 bytes, so P records carry < 8192 bytes.
    assert all(len(r.payload) <= 8192 for r in recs)


def test_final_line_without_newline_stays_partial_record(env):
    m = env.monitor(["printf", "a\\nno-newline"])
    m.run()
    assert m.wait_exit_file() == "0"
    m.assert_clean_exit()
    recs = k8slog.read(m.log_path)
    assert [(r.tag, r.payload) for r in recs] == [
        ("F", b"a\n"), ("P", b"no-newline")]
    assert recs[-1].raw.endswith(b" stdout P no-newline\n")


def test_bare_newline_and_carriage_return_are_kept(env):
    m = env.monitor(["printf", "\\ncrlf\\r\\n"])
    m.run()
    m.wait_exit_file()
    m.assert_clean_exit()
    recs = k8slog.read(m.log_path)
    assert [r.raw[35:] for r in recs] == [b" stdout F \n",
                                          b" stdout F crlf\r\n"]


def test_stdin_from_attach_client_reaches_container_and_eof_closes_it(env):
    m = env.monitor(["cat"], stdin=True)
    m.create()
    with m.attach() as c:
        env.runc.start(m.cid)
        c.send(b"abc\n")
        c.read_until(lambda c: c.data(STDOUT) == b"abc\n", 10)
        c.shutdown_write()  # half-close: cat must see EOF and exit 0
        assert m.wait_exit_file() == "0"
        c.read_to_eof(10)
        assert c.data(STDOUT) == b"abc\n"
    m.assert_clean_exit()
    recs = k8slog.read(m.log_path)
    assert k8slog.lines(recs) == [b"abc"]


def test_leave_stdin_open_keeps_container_stdin_after_client_hangup(env):
    m = env.monitor(["cat"], stdin=True, leave_stdin_open=True)
    m.run()
    with m.attach() as c:
        c.send(b"one\n")
        c.read_until(lambda c: c.data(STDOUT) == b"one\n", 10)
        c.shutdown_write()
        time.sleep(1)
    assert not procs.is_gone(m.container_pid), "stdin closed on hang-up"
    assert not os.path.exists(m.exit_file)
    with m.attach() as c2:
        c2.send(b"two\n")
        c2.read_until(lambda c: c.data(STDOUT) == b"two\n", 10)
    env.runc.kill(m.cid, "KILL")
    assert m.wait_exit_file() == "137"
    m.assert_clean_exit()
    assert k8slog.lines(k8slog.read(m.log_path)) == [b"one", b"two"]


def test_terminal_output_is_stdout_with_onlcr(env):
    m = env.monitor(["echo", "hi"], terminal=True)
    m.run()
    assert m.wait_exit_file() == "0"
    m.assert_clean_exit()
    recs = k8slog.read(m.log_path)
    assert [(r.stream, r.tag, r.payload) for r in recs] == [
        ("stdout", "F", b"hi\r\n")]


def test_terminal_resize_via_ctl_changes_stty_size(env):
    script = ('i=0; while [ $i -lt 100 ]; do s=$(stty size); echo "$s"; '
              '[ "$s" = "24 80" ] && exit 0; i=$((i+1)); sleep 0.1; done; '
              'exit 1')
    m = env.monitor(["sh", "-c", script], terminal=True)
    m.run()
    m.wait_log_contains(b"\r\n", timeout=10)  # the loop is running
    m.ctl_write(b"1 24 80\n")
    assert m.wait_exit_file(15) == "0"
    m.assert_clean_exit()
    assert k8slog.lines(k8slog.read(m.log_path))[-1] == b"24 80\r"


def test_terminal_resize_via_winsz_fifo(env):
    script = ('i=0; while [ $i -lt 100 ]; do s=$(stty size); echo "$s"; '
              '[ "$s" = "5 6" ] && exit 0; i=$((i+1)); sleep 0.1; done; '
              'exit 1')
    m = env.monitor(["sh", "-c", script], terminal=True)
    m.run()
    m.wait_log_contains(b"\r\n", timeout=10)
    m.ctl_write(b"5 6\n", name="winsz")
    assert m.wait_exit_file(15) == "0"
    m.assert_clean_exit()


def test_terminal_attach_input_reaches_pty_without_stdin_flag(env):
    m = env.monitor(["sh", "-c", "read x; echo got-$x"], terminal=True)
    m.create()
    with m.attach() as c:
        env.runc.start(m.cid)
        c.send(b"zz\n")
        c.read_until(lambda c: b"got-zz\r\n" in c.data(STDOUT), 10)
    assert m.wait_exit_file() == "0"
    m.assert_clean_exit()


def test_passthrough_container_writes_to_inherited_stdout(env):
    m = env.monitor(["sh", "-c", "echo hello; echo oops >&2"],
                    log_paths=["passthrough"])
    m.run()
    assert m.wait_exit_file() == "0"
    m.assert_clean_exit()
    assert m.stdout() == b"hello\n"
    assert m.stderr() == b"oops\n"
    assert not os.path.exists(m.log_path)
    # passthrough has no attach socket and no ctl/winsz (spec §6.5)
    for name in ("attach", "ctl", "winsz"):
        assert not os.path.lexists(m.bundle.file(name)), name


def test_log_none_writes_no_log_file(env):
    m = env.monitor(["echo", "hello"], log_paths=["none"])
    m.run()
    assert m.wait_exit_file() == "0"
    m.assert_clean_exit()
    assert not os.path.exists(m.log_path)
    assert os.listdir(m.workdir) and not any(
        n.endswith(".log") for n in os.listdir(m.workdir))
