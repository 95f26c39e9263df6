"""A small client for ctrmon's control API (include/ctrmon/control.h):
newline-delimited JSON-RPC 2.0 over the UNIX socket at
<bundle>/ctrmon/api.sock, plus the framed stream "attach" turns the
connection into. Every read is bounded by a timeout."""
import base64
import json
import os
import select
import socket
import struct
import time

# attach frame types (CTRMON_ATTACH_FRAME_*)
F_STDIN, F_STDOUT, F_STDERR, F_RESIZE, F_CLOSE_STDIN, F_EXIT, F_DROPPED = range(1, 8)


def api_socket_path(bundle_path):
    return os.path.join(bundle_path, "ctrmon", "api.sock")


class ControlError(Exception):
    """A JSON-RPC error response."""

    def __init__(self, code, message):
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message


class ControlClient:
    """One connection. call() sends a request and returns its result (or
    raises ControlError); notifications that arrive meanwhile are kept in
    self.notifications in order."""

    def __init__(self, path, timeout=10):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(timeout)
        self.sock.connect(path)
        self.buf = b""
        self.notifications = []
        self.responses = {}
        self._next_id = 1

    def close(self):
        if self.sock is not None:
            self.sock.close()
            self.sock = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def send(self, method, params=None):
        """Send a request; returns its id."""
        rid = self._next_id
        self._next_id += 1
        req = {"jsonrpc": "2.0", "id": rid, "method": method}
        if params is not None:
            req["params"] = params
        self.sock.sendall(json.dumps(req).encode() + b"\n")
        return rid

    def _read_line(self, deadline):
        while b"\n" not in self.buf:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError("no message from the monitor in time")
            r, _, _ = select.select([self.sock], [], [], left)
            if not r:
                continue
            chunk = self.sock.recv(65536)
            if not chunk:
                return None
            self.buf += chunk
        line, self.buf = self.buf.split(b"\n", 1)
        return json.loads(line)

    def read_message(self, timeout=10):
        """Next message (dict), or None at EOF."""
        return self._read_line(time.monotonic() + timeout)

    def wait_response(self, rid, timeout=10):
        """The response with id `rid` (the raw dict)."""
        deadline = time.monotonic() + timeout
        while rid not in self.responses:
            msg = self._read_line(deadline)
            if msg is None:
                raise EOFError("connection closed before the response")
            if "id" in msg and ("result" in msg or "error" in msg):
                self.responses[msg["id"]] = msg
            else:
                self.notifications.append(msg)
        return self.responses.pop(rid)

    def call(self, method, params=None, timeout=10):
        msg = self.wait_response(self.send(method, params), timeout)
        if "error" in msg:
            raise ControlError(msg["error"]["code"], msg["error"]["message"])
        return msg["result"]

    def next_notification(self, timeout=10):
        """The next notification (dict), or None at EOF."""
        if self.notifications:
            return self.notifications.pop(0)
        deadline = time.monotonic() + timeout
        while True:
            msg = self._read_line(deadline)
            if msg is None or "method" in msg:
                return msg
            self.responses[msg.get("id")] = msg

    def attach(self, params=None, timeout=10):
        """Call "attach" and turn this connection into an AttachStream."""
        result = self.call("attach", params or {}, timeout)
        s = AttachStream(self.sock, self.buf, result)
        self.sock, self.buf = None, b""
        return s


class AttachStream:
    """The framed byte stream after "attach"."""

    def __init__(self, sock, leftover, result):
        self.sock = sock
        self.buf = leftover
        self.result = result
        self.frames = []  # (type, payload) received

    def close(self):
        if self.sock is not None:
            self.sock.close()
            self.sock = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def send_frame(self, ftype, payload=b""):
        self.sock.sendall(struct.pack(">BI", ftype, len(payload)) + payload)

    def send_stdin(self, data):
        self.send_frame(F_STDIN, data)

    def send_resize(self, rows, cols):
        self.send_frame(F_RESIZE, struct.pack(">HH", rows, cols))

    def read_frame(self, timeout=10):
        """Next (type, payload), or None at EOF."""
        deadline = time.monotonic() + timeout
        while True:
            if len(self.buf) >= 5:
                ftype, length = struct.unpack(">BI", self.buf[:5])
                if len(self.buf) >= 5 + length:
                    payload = self.buf[5:5 + length]
                    self.buf = self.buf[5 + length:]
                    self.frames.append((ftype, payload))
                    return ftype, payload
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError("no attach frame in time")
            r, _, _ = select.select([self.sock], [], [], left)
            if not r:
                continue
            try:
                chunk = self.sock.recv(65536)
            except ConnectionResetError:
                chunk = b""
            if not chunk:
                if self.buf:
                    raise AssertionError(f"EOF inside a frame: {self.buf!r}")
                return None
            self.buf += chunk

    def read_until(self, predicate, timeout=10):
        """Read frames until predicate(self) is true; returns self."""
        deadline = time.monotonic() + timeout
        while not predicate(self):
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"attach: condition not met; frames "
                                   f"{self.frames!r}")
            if self.read_frame(left) is None:
                raise EOFError(f"attach: EOF; frames {self.frames!r}")
        return self

    def read_to_eof(self, timeout=10):
        deadline = time.monotonic() + timeout
        while self.read_frame(max(0.01, deadline - time.monotonic())):
            pass
        return self.frames

    def data(self, ftype=F_STDOUT):
        return b"".join(p for t, p in self.frames if t == ftype)


def exec_output(result, stream):
    """An exec result's stdout/stderr as bytes, whichever way it came."""
    if stream in result:
        return result[stream].encode()
    return base64.b64decode(result[stream + "_base64"])
