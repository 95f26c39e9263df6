"""The sync and start "pipes" are AF_UNIX SOCK_SEQPACKET socketpairs
(newPipe), and podman reads the sync one with bufio.Reader.ReadBytes('\\n')
(readConmonPipeData): read(2)s of at most 4096 bytes, each of which takes
one record, the rest of a longer record being dropped by the kernel."""
import os
import socket

import pytest

import p5emu
from ctrtest.recording import RECORDING_RUNTIME


def test_pid_report_is_one_record_holding_one_line(p5):
    c = p5.container(["sleep", "30"])
    res = p5.create_container(c)
    assert res.fd_types == (socket.SOCK_SEQPACKET, socket.SOCK_SEQPACKET)
    assert res.foreground_status == 0
    assert res.pipe_data.error is None, res.pipe_data
    assert res.pipe_data.raw == b'{"data": %d}\n' % res.pid
    with open(c.pidfile) as f:
        assert int(f.read()) == res.pid
    assert p5.runc.state(c.id)["status"] == "created"
    mon = c.read_conmon_pid()
    assert os.readlink(f"/proc/{mon}/exe") == p5.monitor


def test_start_socket_eof_releases_the_monitor_as_the_byte_does(p5):
    """podman closes its end without writing when it bails out between
    cmd.Start() and the signal; a SEQPACKET EOF is a 0-byte read, which
    must release the monitor like the byte (conmon: one read())."""
    c = p5.container(["true"])
    res = p5.create_container(c, release_start=False)
    assert res.foreground_status == 0
    assert res.pid and res.pid > 0, res.pipe_data


@pytest.mark.conmon_differs("sends the whole 8 KiB line, podman's 4096-byte read cuts the JSON")
def test_runtime_error_longer_than_podmans_read_still_decodes(p5):
    """A runtime that fails with more than 4 KiB on stderr (runc's error
    plus a long CRIU or hook log). The oci-log is not there (the fake
    runtime writes none), so podman shows the sync message: it must still
    be one JSON line within podman's 4096-byte read."""
    text = "runc create failed: " + "hook output " * 600 + "END"
    p5.runtime_path = RECORDING_RUNTIME
    p5.env += [f"RECORDING_RUNTIME_FAIL=1:{text}"]
    c = p5.container(["true"])
    res = p5.create_container(c)
    pd = res.pipe_data
    assert res.foreground_status == 0
    assert len(pd.raw) <= p5emu.BUFIO_SIZE and pd.raw.endswith(b'"}\n'), pd.raw[-80:]
    assert pd.data == -1
    # what podman prints: "runc: <message>", the message the runtime's text
    # from its start (shortened to fit, never cut inside a character)
    assert pd.error.startswith("runc: runc create failed: hook output hook output"), pd.error[:200]
    assert text.startswith(pd.message) and len(pd.message) > 4000


def test_short_runtime_error_is_passed_whole(p5):
    p5.runtime_path = RECORDING_RUNTIME
    p5.env += ["RECORDING_RUNTIME_FAIL=1:runc create failed: no such luck\n"]
    c = p5.container(["true"])
    pd = p5.create_container(c).pipe_data
    assert pd.raw == b'{"data": -1, "message": "runc create failed: no such luck\\n"}\n'
    assert pd.error == "runc: runc create failed: no such luck\n"
