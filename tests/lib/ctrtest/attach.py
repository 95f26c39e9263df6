"""Attach socket client (spec §4).

SOCK_SEQPACKET; each record from the monitor is one stream byte (2 stdout,
3 stderr) plus up to 8192 payload bytes. Bundle paths can exceed
sun_path's 108 bytes, so the client opens the directory with O_PATH and
connects through /proc/self/fd/<dirfd>/attach, as conmon itself binds."""
import os
import select
import socket
import time

STDOUT, STDERR = 2, 3
RECV_SIZE = 65536  # > 8193 so an oversized record would be visible


class AttachClient:
    def __init__(self, directory, name="attach", timeout=10):
        dirfd = os.open(directory, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
            self.sock.settimeout(timeout)
            self.sock.connect(f"/proc/self/fd/{dirfd}/{name}")
        finally:
            os.close(dirfd)
        self.records = []  # (stream, payload) as received
        self.eof = False

    def send(self, data):
        self.sock.send(data)

    def shutdown_write(self):
        self.sock.shutdown(socket.SHUT_WR)

    def recv_record(self, timeout):
        """One record as (stream, payload), or None on EOF. Raises
        TimeoutError if nothing arrives in time."""
        r, _, _ = select.select([self.sock], [], [], timeout)
        if not r:
            raise TimeoutError("no attach record within %ss" % timeout)
        data = self.sock.recv(RECV_SIZE)
        if not data:
            self.eof = True
            return None
        rec = (data[0], data[1:])
        self.records.append(rec)
        return rec

    def read_until(self, predicate, timeout):
        """Receive records until predicate(self) is true or EOF; returns
        whether the predicate held. Bounded by timeout."""
        deadline = time.monotonic() + timeout
        while not predicate(self):
            if self.eof:
                return False
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError("attach predicate not met in %ss" % timeout)
            try:
                self.recv_record(left)
            except TimeoutError:
                raise TimeoutError("attach predicate not met in %ss" % timeout)
        return True

    def read_to_eof(self, timeout):
        self.read_until(lambda c: False, timeout)
        return self.records

    def data(self, stream=STDOUT):
        return b"".join(p for s, p in self.records if s == stream)

    def close(self):
        self.sock.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
