"""podman 5 always passes --syslog (sharedConmonArgs). What a user filtering
on `conmon` (journalctl -t conmon, grep conmon /var/log/syslog) finds: the
monitor runs in a private mount namespace whose /dev/log is this test's
datagram socket, and a failing runtime makes the daemon log an error."""
import os
import re
import select
import socket
import time

import p5emu
from ctrtest.recording import RECORDING_RUNTIME

# glibc syslog(3): "<PRI>Mmm dd hh:mm:ss IDENT[PID]: MESSAGE" (no [PID]
# without LOG_PID)
SYSLOG_RE = re.compile(r"^<(\d+)>([A-Z][a-z]{2} [ \d]\d \d\d:\d\d:\d\d) ([^\[: ]+)(\[\d+\])?: (.*)$", re.S)
LOG_USER = 1 << 3
LOG_ERR, LOG_INFO = 3, 6


def _receive(sock, want, timeout):
    got, deadline = [], time.monotonic() + timeout
    while len(got) < want and time.monotonic() < deadline:
        if select.select([sock], [], [], 0.1)[0]:
            got.append(sock.recv(65536).decode(errors="replace"))
    while select.select([sock], [], [], 0.3)[0]:
        got.append(sock.recv(65536).decode(errors="replace"))
    return got


def test_syslog_entries_carry_conmons_ident_and_prefix(p5, work):
    dev_log = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    path = os.path.join(work, "dev-log")
    dev_log.bind(path)
    p5.runtime_path = RECORDING_RUNTIME
    p5.env += ["RECORDING_RUNTIME_FAIL=1:runc create failed: no such luck"]
    c = p5.container(["true"])
    res = p5.create_container(c, pre_exec=p5emu.private_mounts({"/dev/log": path},
                                                              os.path.join(work, "ns")))
    assert "--syslog" in res.argv
    assert res.pipe_data.data == -1, res.pipe_data
    entries = _receive(dev_log, 1, 10)
    dev_log.close()
    parsed = [SYSLOG_RE.match(e) for e in entries]
    assert entries and all(parsed), entries
    mine = [m for m in parsed if f"conmon {c.id[:20]} " in m.group(5)]
    assert mine, entries
    for m in mine:
        pri, ident, pid, text = int(m.group(1)), m.group(3), m.group(4), m.group(5)
        # conmon's ident (glibc's default, its program name), no [pid]
        assert ident == "conmon", entries
        assert pid is None
        assert pri >> 3 == LOG_USER >> 3
    errors = [m.group(5) for m in mine if int(m.group(1)) & 7 == LOG_ERR]
    assert f"conmon {c.id[:20]} <error>: Runtime failed with status 1: runc create failed: no such luck" \
        in errors, entries
