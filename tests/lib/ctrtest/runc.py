"""runc bound to a private state directory (--root), so tests never see or
touch podman's containers."""
import json
import os
import subprocess

from .bundle import RUNC


class Runc:
    def __init__(self, root, binary=RUNC):
        self.root = root
        self.binary = binary
        os.makedirs(root, mode=0o700, exist_ok=True)

    @property
    def root_arg(self):
        """The global option to hand to the monitor via --runtime-arg."""
        return f"--root={self.root}"

    def run(self, *args, timeout=30, check=True):
        return subprocess.run([self.binary, self.root_arg, *args],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              timeout=timeout, check=check)

    def start(self, cid):
        self.run("start", cid)

    def kill(self, cid, sig="KILL"):
        self.run("kill", cid, sig, check=False)

    def state(self, cid):
        """runc state as a dict, or None if runc does not know the id."""
        p = self.run("state", cid, check=False)
        if p.returncode != 0:
            return None
        return json.loads(p.stdout)

    def delete(self, cid):
        """Force-delete by id; ignores "does not exist"."""
        return self.run("delete", "-f", cid, check=False)

    def list_ids(self):
        p = self.run("list", "-q", check=False)
        return p.stdout.decode().split() if p.returncode == 0 else []
