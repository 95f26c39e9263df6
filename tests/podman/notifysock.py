"""The systemd side of NOTIFY_SOCKET for the podman and compat suites: a
datagram socket with SO_PASSCRED, so each sd_notify message is kept as
(sender pid, bytes)."""
import os
import socket
import struct
import time

SCM_CREDENTIALS = 2


class NotifySocket:
    def __init__(self, path, owner=None):
        """Bind at `path`; `owner` (uid, gid) chowns it for a rootless
        podman that must connect to it as the test user."""
        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(path)
        if owner is not None:
            os.chown(path, *owner)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_PASSCRED, 1)
        self.got = []

    def pump(self, timeout):
        """Receive one datagram within `timeout` s (0: only one already
        there); False if none came."""
        self.sock.settimeout(timeout)
        try:
            data, anc, _, _ = self.sock.recvmsg(65536, socket.CMSG_SPACE(12))
        except (socket.timeout, BlockingIOError):
            return False
        pid = None
        for level, typ, cdata in anc:
            if level == socket.SOL_SOCKET and typ == SCM_CREDENTIALS:
                pid = struct.unpack("iII", cdata[:12])[0]
        self.got.append((pid, data))
        return True

    def drain(self):
        """Receive whatever is already queued."""
        while self.pump(0):
            pass

    def wait_until(self, pred, timeout, what):
        """Receive until pred(self.got) holds; AssertionError after
        `timeout` s, naming `what`."""
        deadline = time.monotonic() + timeout
        while not pred(self.got):
            if time.monotonic() > deadline:
                raise AssertionError(f"waiting for {what}: got {self.got!r}")
            self.pump(0.2)

    def close(self):
        """Close and remove the socket file."""
        self.sock.close()
        os.unlink(self.path)
