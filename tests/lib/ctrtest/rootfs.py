"""The shared busybox root filesystem, built once by tests/lib/make-rootfs.sh.

Bundles mount it read-only, so one copy serves every test."""
import os
import subprocess

LIB_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MAKE_ROOTFS = os.path.join(LIB_DIR, "make-rootfs.sh")
DEFAULT_DIR = "/var/tmp/ctrmon-test-rootfs"


def ensure_rootfs(path=None):
    """Build (idempotently) and return the absolute rootfs path."""
    path = os.path.abspath(path or os.environ.get("CTRTEST_ROOTFS", DEFAULT_DIR))
    subprocess.run(["/bin/sh", MAKE_ROOTFS, path], check=True, timeout=120)
    return path
