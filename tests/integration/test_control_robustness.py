"""The control API's socket: who may connect, and bad input that must get a
JSON-RPC error while the monitor keeps serving (include/ctrmon/control.h)."""
import json
import os
import socket
import stat
import subprocess
import sys

import pytest

NOBODY = 65534


def api_path(m):
    return os.path.join(m.bundle.path, "ctrmon", "api.sock")


class Conn:
    def __init__(self, path):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(10)
        self.sock.connect(path)
        self.file = self.sock.makefile("rb")

    def send_raw(self, data):
        self.sock.sendall(data)

    def read(self):
        line = self.file.readline()
        return json.loads(line) if line else None

    def call(self, method, params=None, rid=1):
        req = {"jsonrpc": "2.0", "id": rid, "method": method}
        if params is not None:
            req["params"] = params
        self.send_raw(json.dumps(req).encode() + b"\n")
        return self.read()

    def close(self):
        self.file.close()
        self.sock.close()


@pytest.fixture
def running(env):
    m = env.monitor(["sleep", "100"])
    m.run()
    wait_running(m)
    yield m
    env.runc.kill(m.cid, "KILL")
    m.wait_exit_file(15)
    m.assert_clean_exit()


def wait_running(m, timeout=5):
    """`runc start` returns before the init has exec'd: wait for it."""
    import time
    c = Conn(api_path(m))
    deadline = time.monotonic() + timeout
    while c.call("status")["result"]["state"] != "running":
        assert time.monotonic() < deadline, "container never reached running"
        time.sleep(0.02)
    c.close()


def open_fds(pid):
    return len(os.listdir(f"/proc/{pid}/fd"))


def test_socket_is_0600_in_a_0700_dir_owned_by_the_monitors_uid(running):
    d = os.path.dirname(api_path(running))
    st_dir, st_sock = os.stat(d), os.stat(api_path(running))
    assert stat.S_IMODE(st_dir.st_mode) == 0o700 and st_dir.st_uid == 0
    assert stat.S_ISSOCK(st_sock.st_mode)
    assert stat.S_IMODE(st_sock.st_mode) == 0o600 and st_sock.st_uid == 0


def _connect_as(uid, path):
    """Connect as `uid` in a child; print what the server said, or the
    errno name."""
    code = (
        "import os,socket,sys\n"
        f"os.setgroups([]); os.setgid({uid}); os.setuid({uid})\n"
        "s=socket.socket(socket.AF_UNIX); s.settimeout(10)\n"
        "try:\n"
        f"    s.connect({path!r})\n"
        "except OSError as e:\n"
        "    print('ERRNO', e.errno); sys.exit(0)\n"
        "try:\n"
        "    s.sendall(b'{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"status\"}\\n')\n"
        "except OSError:\n"
        "    pass  # refused peers may be hung up on before they speak\n"
        "data=b''\n"
        "while True:\n"
        "    try:\n"
        "        b=s.recv(65536)\n"
        "    except ConnectionResetError:\n"
        "        break\n"
        "    if not b: break\n"
        "    data+=b\n"
        "sys.stdout.write(data.decode())\n")
    return subprocess.run([sys.executable, "-c", code], capture_output=True,
                          timeout=20, check=True).stdout.decode()


def test_other_user_cannot_reach_the_socket(running):
    import errno
    out = _connect_as(NOBODY, api_path(running))
    assert out.strip() == f"ERRNO {errno.EACCES}"


def test_other_user_is_refused_by_peer_credentials_even_if_reachable(running):
    # Open the file modes on purpose: the SO_PEERCRED check must still hold.
    path = api_path(running)
    os.chmod(os.path.dirname(path), 0o755)
    os.chmod(path, 0o666)
    out = _connect_as(NOBODY, path)
    lines = out.splitlines()
    assert len(lines) == 1, out   # one error, then the connection closes
    msg = json.loads(lines[0])
    assert msg["id"] is None
    assert msg["error"]["code"] == -32001
    assert "Access denied: uid 65534" in msg["error"]["message"]
    # ... and the owner is still served.
    c = Conn(path)
    assert c.call("status")["result"]["state"] == "running"
    c.close()


def test_bad_requests_get_jsonrpc_errors_and_the_connection_stays_usable(running):
    c = Conn(api_path(running))
    c.send_raw(b"{not json\n")
    r = c.read()
    assert r["id"] is None and r["error"]["code"] == -32700
    r = c.call("no_such_method", rid="x")
    assert r == {"jsonrpc": "2.0", "id": "x",
                 "error": {"code": -32601, "message": "Method not found: no_such_method"}}
    c.send_raw(b'{"jsonrpc":"2.0","id":2,"method":"status","params":[1]}\n')
    assert c.read()["error"]["code"] == -32602
    c.send_raw(b'{"jsonrpc":"1.0","id":3,"method":"status"}\n')
    r = c.read()
    assert r["id"] == 3 and r["error"]["code"] == -32600
    c.send_raw(b'{"jsonrpc":"2.0","id":{"a":1},"method":"status"}\n')
    assert c.read()["error"]["code"] == -32600
    c.send_raw(b'[1,2]\n')
    assert c.read()["error"]["code"] == -32600
    r = c.call("kill", {"signal": [1]}, rid=4)
    assert r["id"] == 4 and r["error"]["code"] == -32602
    r = c.call("resize", {"rows": "a", "cols": 1}, rid=5)
    assert r["error"]["code"] == -32602
    # The container was not touched by any of it.
    r = c.call("status", rid=6)
    assert r["result"]["state"] == "running"
    c.close()


def test_request_over_the_size_limit_is_answered_then_closed(running):
    c = Conn(api_path(running))
    big = b'{"jsonrpc":"2.0","id":1,"method":"status","params":{"pad":"' + \
        b"x" * (2 * 1024 * 1024) + b'"}}\n'
    try:
        c.send_raw(big)
    except (BrokenPipeError, ConnectionResetError):
        pass  # the server hung up while we were still writing: fine
    r = c.read()
    assert r["error"]["code"] == -32002
    assert "Request too large" in r["error"]["message"]
    assert c.file.readline() == b""   # closed after the answer
    c.close()
    c2 = Conn(api_path(running))
    assert c2.call("status")["result"]["state"] == "running"
    c2.close()


def test_request_just_under_the_limit_is_served(running):
    c = Conn(api_path(running))
    pad = "y" * (1024 * 1024 - 200)
    r = c.call("status", {"pad": pad})
    assert r["result"]["state"] == "running"
    c.close()


def test_half_written_request_then_hangup_leaves_the_monitor_serving(running):
    c = Conn(api_path(running))
    c.send_raw(b'{"jsonrpc":"2.0","id":1,"meth')
    c.close()
    c2 = Conn(api_path(running))
    assert c2.call("status")["result"]["state"] == "running"
    c2.close()


def test_notification_without_id_gets_no_answer(running):
    c = Conn(api_path(running))
    c.send_raw(b'{"jsonrpc":"2.0","method":"status"}\n')
    r = c.call("version", rid=7)
    assert r["id"] == 7 and r["result"]["protocol"] == 1
    c.close()


def test_connect_and_vanish_300_times_leaves_fd_count_where_it_was(running):
    c = Conn(api_path(running))
    assert c.call("status")["result"]["state"] == "running"
    pid = running.daemon_pid
    before = open_fds(pid)
    for i in range(300):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.connect(api_path(running))
        if i % 3 == 0:
            s.sendall(b'{"jsonrpc":"2.0","id":1,"method":"status"}\n')
        elif i % 3 == 1:
            s.shutdown(socket.SHUT_WR)
        s.close()
    # The monitor still answers, and closes every connection (the last
    # hang-ups may still be in flight when it answers: give it a moment).
    assert c.call("status", rid=2)["result"]["state"] == "running"
    import time
    deadline = time.monotonic() + 5
    while open_fds(pid) != before and time.monotonic() < deadline:
        time.sleep(0.05)
    assert open_fds(pid) == before
    c.close()
