"""The Debian packages built from this tree (debian/, tests/install/build-deb.sh),
installed on this machine with apt-get and used as installed: podman with
--conmon /usr/libexec/ctrmon/ctrmon, and the installed, unmodified user unit
/usr/lib/systemd/user/ctrmon@.service under a real systemd (the sandbox shares
/usr with the host).

The packages are purged again at the end of the module, so the machine is
left as it was (no other suite uses an installed ctrmon: they all run the
build tree's binaries and install their units under /run). A ctrmon package
installed before the suite ran is replaced, then removed.
"""
import glob
import os
import re
import shutil
import subprocess
import sys
import tempfile

import pytest

from conftest import REPO

sys.path.insert(0, os.path.join(REPO, "tests", "podman"))
sys.path.insert(0, os.path.join(REPO, "tests", "systemd"))

from podmanworld import IMAGE, PodmanWorld  # noqa: E402
from ctrmon_sd import (MAKE_BUNDLE, PYTHON, MadeDirs, out, rootfs_cache, show,  # noqa: E402,F401
                       unique_id, wait_for)

BUILD_DEB = os.path.join(REPO, "tests", "install", "build-deb.sh")
MONITOR = "/usr/libexec/ctrmon/ctrmon"
USER_UNIT = "/usr/lib/systemd/user/ctrmon@.service"
APT = ["apt-get", "-o", "DPkg::Lock::Timeout=300", "-q", "-y"]
PACKAGES = ["ctrmon", "libctrmon0"]


def _run(argv, timeout=600, **kw):
    p = subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT, text=True, timeout=timeout,
                       env=dict(os.environ, DEBIAN_FRONTEND="noninteractive"), **kw)
    assert p.returncode == 0, f"{' '.join(argv)}: rc={p.returncode}\n{p.stdout[-4000:]}"
    return p.stdout


@pytest.fixture(scope="module")
def debs():
    """Directory holding the .deb files built from the tree."""
    d = tempfile.mkdtemp(prefix="ctrmon-debs-", dir="/tmp")
    try:
        _run(["sh", BUILD_DEB, d])
        yield d
    finally:
        shutil.rmtree(d, ignore_errors=True)


@pytest.fixture(scope="module")
def installed(debs):
    """ctrmon and libctrmon0 installed with apt-get; purged afterwards."""
    files = []
    for pkg in PACKAGES:
        found = glob.glob(os.path.join(debs, f"{pkg}_*.deb"))
        assert len(found) == 1, f"{pkg}_*.deb in {debs}: {os.listdir(debs)}"
        files.append("./" + os.path.basename(found[0]))
    try:
        _run(APT + ["install", "--reinstall"] + files, cwd=debs)
        yield
    finally:
        _run(APT + ["purge"] + PACKAGES)


def test_packages_hold_what_they_should(debs):
    def contents(pkg):
        (deb,) = glob.glob(os.path.join(debs, f"{pkg}_*.deb"))
        listing = _run(["dpkg-deb", "-c", deb])
        return {line.split()[5].lstrip(".") for line in listing.splitlines()}, deb

    files, deb = contents("ctrmon")
    for f in (MONITOR, "/usr/bin/ctrmonctl", USER_UNIT,
              "/usr/share/man/man8/ctrmon.8.gz", "/usr/share/man/man1/ctrmonctl.1.gz",
              "/usr/share/man/man7/ctrmon-api.7.gz",
              "/usr/share/bash-completion/completions/ctrmonctl"):
        assert f in files, f"{f} not in {deb}"
    assert [f for f in files if f.endswith("/system/ctrmon@.service")], files
    depends = _run(["dpkg-deb", "-f", deb, "Depends"])
    assert "runc | crun" in depends and "libctrmon0" in depends, depends

    files, deb = contents("libctrmon0")
    assert [f for f in files if re.search(r"/libctrmon\.so\.0(\.1\.0)?$", f)], files
    files, deb = contents("libctrmon-dev")
    for f in ("/usr/include/ctrmon/client.h", "/usr/include/ctrmon/control.h"):
        assert f in files, f"{f} not in {deb}"
    assert [f for f in files if f.endswith("/pkgconfig/libctrmon.pc")], files


def test_installed_binaries_run(installed):
    v = _run([MONITOR, "--version"])
    assert v.splitlines()[0] == "conmon version 2.2.1", v
    # No LD_LIBRARY_PATH: libctrmon comes from libctrmon0.
    assert "0.1.0" in _run(["/usr/bin/ctrmonctl", "--version"])
    assert "ctrmonctl" in _run(["dpkg", "-L", "ctrmon"])


@pytest.fixture(scope="module")
def world(installed):
    w = PodmanWorld(MONITOR)
    try:
        w.import_image()
    except BaseException:
        w.teardown()
        raise
    yield w
    problems = w.teardown()
    assert not problems, "; ".join(problems)


def test_podman_runs_with_installed_monitor(world):
    rc, stdout, stderr = world.podman("run", "--rm", IMAGE, "echo", "hi")
    assert (rc, stdout) == (0, b"hi\n"), stderr
    # Prove podman did not fall back to another conmon: look at a running one.
    name = world.name("deb")
    world.ok("run", "-d", "--name", name, IMAGE, "sleep", "100")
    info = world.verify_monitor(name)
    world.ok("rm", "-f", "-t", "0", name, timeout=60)
    world.assert_monitor_gone(info)


def test_installed_user_unit_runs_a_rootless_container(installed, systemd_sandbox, test_user,
                                                       rootfs_cache):
    sb, user, uid = systemd_sandbox, test_user.pw_name, test_user.pw_uid
    cid = unique_id("deb", 12)
    unit = f"ctrmon@{cid}.service"
    bundle = os.path.join(test_user.pw_dir, ".local", "share", "ctrmon", cid)
    dirs = MadeDirs()
    dirs.makedirs(bundle, owner=test_user)
    try:
        p = sb.run([PYTHON, MAKE_BUNDLE, bundle, "--rootless", "--rootfs-from", rootfs_cache],
                   user=user, timeout=60)
        assert p.returncode == 0, out(p)
        p = sb.run(f"systemctl --user daemon-reload && systemctl --user start {unit}",
                   user=user, timeout=60)
        if p.returncode != 0:
            st = sb.run(f"systemctl --user status --no-pager {unit}; "
                        f"journalctl --user --no-pager -q -n 20 --user-unit {unit}",
                        user=user, timeout=30)
            pytest.fail(f"systemctl --user start {unit} failed:\n{out(p)}\n{st.stdout}")
        props = show(sb, unit, ["ActiveState", "FragmentPath", "StatusText", "MainPID"],
                     user=user)
        assert props["FragmentPath"] == USER_UNIT, props
        assert props["ActiveState"] == "active", props
        assert re.fullmatch(rf"Container {cid} running \(pid \d+\)", props["StatusText"]), props
        p = sb.run(["readlink", f"/proc/{props['MainPID']}/exe"], timeout=30)
        assert p.stdout.strip() == MONITOR, out(p)
        # The installed ctrmonctl talks to the unit's monitor.
        p = sb.run(["/usr/bin/ctrmonctl", "-b", bundle, "status"], user=user, timeout=30)
        assert p.returncode == 0 and "running" in p.stdout, out(p)
        p = sb.run(["systemctl", "--user", "stop", unit], user=user, timeout=30)
        assert p.returncode == 0, out(p)
        props = show(sb, unit, ["ExecMainStatus", "StatusText"], user=user)
        assert props["ExecMainStatus"] == "7", props
    finally:
        sb.run(f"systemctl --user stop {unit}; systemctl --user reset-failed {unit}",
               user=user, timeout=40)
        dirs.cleanup(bundle)
