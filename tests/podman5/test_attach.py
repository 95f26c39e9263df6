"""--full-attach always (sharedConmonArgs), and no --socket-dir-path: the
attach socket is <bundle>/attach, in podman's long StaticDir path, reached
through /proc/self/fd/<dirfd>/attach (openUnixSocket)."""
import os
import stat
import time

import p5emu
from ctrtest.attach import STDOUT
from ctrtest.wait import scaled, wait_for


def test_attach_socket_in_a_bundle_longer_than_sun_path(p5):
    c = p5.container(["sh", "-c", "while :; do echo tick; sleep 0.1; done"])
    res = p5.run(c)
    assert "--full-attach" in res.argv and "--socket-dir-path" not in res.argv
    path = os.path.join(c.bundle_path, "attach")
    assert len(path) > 107                      # sun_path has 108 bytes
    assert stat.S_ISSOCK(os.lstat(path).st_mode)
    # nothing below the default socket dir (conmon's /var/run/crio)
    assert not os.path.lexists(os.path.join("/var/run/crio", c.id))
    conn = p5emu.open_unix_socket(path)
    conn.settimeout(scaled(10))
    got, deadline = b"", time.monotonic() + scaled(10)
    try:
        while b"tick\n" not in got and time.monotonic() < deadline:
            rec = conn.recv(8193)
            assert rec, "attach socket closed"
            assert rec[0] == STDOUT and len(rec) <= 8193
            got += rec[1:]
    finally:
        conn.close()
    assert b"tick\n" in got
    p5.runc.kill(c.id, "KILL")
    wait_for(lambda: os.path.exists(c.exit_file), scaled(15), "exit file")
    assert p5emu.handle_exit_file(c.exit_file)[1] == 137
