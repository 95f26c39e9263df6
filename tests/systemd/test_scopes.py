"""--systemd-scope from a plain command (the engine case, no unit) under a
real systemd (tests/lib/systemd-sandbox): the monitor in ctrmon-<cid>.scope,
the container in ctrmon-<cid>-container.scope, on the system manager as root
and on the user manager as the test user; both gone once the container has
ended; a missing bus is a warning, or with --systemd-scope-required a failure
on the sync pipe that leaves nothing running.

The monitor is started by scope_probe.py inside the sandbox; bundles and
work directories are on the shared /tmp and removed afterwards.
"""
import json
import os
import shutil
import subprocess
import tempfile

import pytest

from ctrmon_sd import (MAKE_BUNDLE, PYTHON, RUNC, SCOPE_PROBE, cgroup_lines, monitor_binary, out,
                       rootfs_cache, show, unique_id, wait_for)  # noqa: F401


@pytest.fixture(scope="module")
def monitor():
    return monitor_binary()


def _tmpdir(owner=None):
    d = tempfile.mkdtemp(prefix="ctrmon-scope-", dir="/tmp")
    os.chmod(d, 0o755)
    if owner is not None:
        os.chown(d, owner.pw_uid, owner.pw_gid)
    return d


@pytest.fixture(scope="module")
def root_bundle(rootfs_cache):
    d = _tmpdir()
    try:
        subprocess.run([PYTHON, MAKE_BUNDLE, os.path.join(d, "bundle"), "--rootfs-from", rootfs_cache],
                       check=True, timeout=60,
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        yield os.path.join(d, "bundle")
    finally:
        shutil.rmtree(d, ignore_errors=True)


@pytest.fixture(scope="module")
def user_bundle(systemd_sandbox, test_user, rootfs_cache):
    """A rootless bundle owned by the test user (built by the user)."""
    d = _tmpdir(owner=test_user)
    try:
        p = systemd_sandbox.run([PYTHON, MAKE_BUNDLE, os.path.join(d, "bundle"), "--rootless",
                                 "--rootfs-from", rootfs_cache], user=test_user.pw_name, timeout=60)
        assert p.returncode == 0, out(p)
        yield os.path.join(d, "bundle")
    finally:
        shutil.rmtree(d, ignore_errors=True)


class Run:
    """One monitor started by scope_probe.py: its report and how to clean up."""

    def __init__(self, sandbox, monitor, bundle, cid, runc_root, user=None, owner=None):
        self.sb, self.monitor, self.bundle, self.cid = sandbox, monitor, bundle, cid
        self.runc_root, self.user = runc_root, user
        self.dir = _tmpdir(owner)
        self.work = os.path.join(self.dir, "work")
        self.report = None

    def probe(self, extra, sync=False, env=()):
        argv = ["env", *env, PYTHON, SCOPE_PROBE, "--monitor", self.monitor, "--bundle", self.bundle,
                "--cid", self.cid, "--workdir", self.work, "--runc-root", self.runc_root]
        if sync:
            argv.append("--sync")
        p = self.sb.run(argv + ["--", *extra], user=self.user, timeout=60)
        assert p.returncode == 0 and p.stdout.strip(), out(p)
        self.report = json.loads(p.stdout.splitlines()[-1])
        return self.report

    def runc(self, *args, timeout=30):
        return self.sb.run([RUNC, f"--root={self.runc_root}", *args], user=self.user,
                           timeout=timeout)

    def container_pid(self):
        with open(os.path.join(self.work, "pidfile")) as f:
            return int(f.read().strip())

    def alive(self, pid):
        p = self.sb.run(f"s=$(cat /proc/{pid}/stat 2>/dev/null) && [ \"${{s##*) }}\" != Z* ]",
                        timeout=30)
        return p.returncode == 0

    def cleanup(self):
        self.runc("delete", "--force", self.cid)
        pid = (self.report or {}).get("monitor_pid")
        if pid and self.alive(pid):
            self.sb.run(["kill", "-KILL", str(pid)], timeout=30)
        shutil.rmtree(self.dir, ignore_errors=True)


def _systemctl(user):
    return ["systemctl", "--user"] if user else ["systemctl"]


def _units_gone(sb, units, user=None):
    """True once none of UNITS is loaded any more (collected)."""
    states = [show(sb, u, ["LoadState"], user=user)["LoadState"] for u in units]
    return all(s == "not-found" for s in states)


def _listed(sb, cid, user=None):
    p = sb.run(_systemctl(user) + ["list-units", "--all", "--no-legend", "--plain",
                                   f"ctrmon-{cid}*"], user=user, timeout=30)
    return p.stdout.strip()


def _scopes_hold_monitor_and_container(run, slice_, cgroup_prefix):
    sb, cid, user = run.sb, run.cid, run.user
    report = run.probe(["--systemd-scope"])
    assert isinstance(report["sync"], dict) and report["sync"].get("data", -1) > 0, report
    pid, monitor_pid = report["sync"]["data"], report["monitor_pid"]
    assert run.container_pid() == pid
    p = run.runc("start", cid)
    assert p.returncode == 0, out(p)

    scope, cscope = f"ctrmon-{cid}.scope", f"ctrmon-{cid}-container.scope"
    p = sb.run(_systemctl(user) + ["is-active", scope, cscope], user=user, timeout=30)
    assert p.stdout.split() == ["active", "active"], out(p)
    props = ["Slice", "Description", "CollectMode", "Delegate", "ControlGroup"]
    s, c = show(sb, scope, props, user=user), show(sb, cscope, props, user=user)
    assert s["Slice"] == c["Slice"] == slice_, (s, c)
    assert s["Description"] == f"ctrmon monitor of container {cid} (probe)", s
    assert c["Description"] == f"Container {cid} (probe)", c
    assert s["CollectMode"] == c["CollectMode"] == "inactive-or-failed", (s, c)
    assert c["Delegate"] == "yes", c
    assert s["ControlGroup"] == f"{cgroup_prefix}/{scope}", s
    assert c["ControlGroup"] == f"{cgroup_prefix}/{cscope}", c
    for who, group in ((monitor_pid, s["ControlGroup"]), (pid, c["ControlGroup"])):
        p = sb.run(["cat", f"/proc/{who}/cgroup"], timeout=30)
        cg = cgroup_lines(p.stdout)
        assert cg.get("name=systemd") == group and cg.get("") == group, (who, p.stdout)

    # The container ends (SIGTERM -> exit 7): the monitor exits, both scopes go.
    p = run.runc("kill", cid, "TERM")
    assert p.returncode == 0, out(p)
    assert wait_for(lambda: not run.alive(monitor_pid), 15), "the monitor did not exit"
    with open(os.path.join(run.work, "exits", cid)) as f:
        assert f.read().strip() == "7"
    assert wait_for(lambda: _units_gone(sb, [scope, cscope], user=user), 10), \
        _listed(sb, cid, user=user)
    assert _listed(sb, cid, user=user) == ""


def test_root_scopes_on_the_system_manager_in_machine_slice(systemd_sandbox, monitor, root_bundle):
    cid = unique_id("scoperoot-", 24)
    run = Run(systemd_sandbox, monitor, root_bundle, cid, "/run/ctrmon-scope-test/runc")
    try:
        _scopes_hold_monitor_and_container(run, "machine.slice", "/machine.slice")
    finally:
        run.cleanup()


def test_rootless_scopes_on_the_user_manager_in_user_slice(systemd_sandbox, monitor, user_bundle,
                                                           test_user):
    uid = test_user.pw_uid
    cid = unique_id("scopeuser-", 24)
    run = Run(systemd_sandbox, monitor, user_bundle, cid, f"/run/user/{uid}/ctrmon-scope-test/runc",
              user=test_user.pw_name, owner=test_user)
    try:
        _scopes_hold_monitor_and_container(
            run, "user.slice", f"/user.slice/user-{uid}.slice/user@{uid}.service/user.slice")
    finally:
        run.cleanup()


def test_user_bus_missing_is_a_warning_and_the_container_runs(systemd_sandbox, monitor, root_bundle):
    sb = systemd_sandbox
    cid = unique_id("scopenobus-", 24)
    run = Run(sb, monitor, root_bundle, cid, "/run/ctrmon-scope-test/runc")
    try:
        report = run.probe(["--systemd-scope", "--systemd-bus=user", "--syslog"],
                           env=["-u", "DBUS_SESSION_BUS_ADDRESS", "-u", "XDG_RUNTIME_DIR"])
        assert isinstance(report["sync"], dict) and report["sync"].get("data", -1) > 0, report
        p = run.runc("start", cid)
        assert p.returncode == 0, out(p)
        assert run.alive(report["monitor_pid"]) and run.alive(report["sync"]["data"])
        assert _listed(sb, cid) == ""

        def warnings():
            # ident "conmon", as conmon's (see test_syslog.py)
            q = sb.run(["journalctl", "--no-pager", "-o", "cat", "-t", "conmon"], timeout=30)
            return [m for m in q.stdout.splitlines()
                    if m.startswith(f"conmon {cid[:20]} <nwarn>: Failed to connect to the user bus")]
        found = wait_for(warnings, 10)
        assert found and all(m.endswith("the container runs without it") for m in found), found
    finally:
        run.cleanup()


def test_scope_required_without_bus_fails_and_leaves_nothing(systemd_sandbox, monitor, root_bundle):
    cid = unique_id("scopereq-", 24)
    run = Run(systemd_sandbox, monitor, root_bundle, cid, "/run/ctrmon-scope-test/runc")
    try:
        report = run.probe(["--systemd-scope-required", "--systemd-bus", "system"], sync=True,
                           env=["DBUS_SYSTEM_BUS_ADDRESS=unix:path=/nonexistent-bus"])
        sync = report["sync"]
        assert isinstance(sync, dict) and sync.get("data") == -1, report
        assert "Failed to connect" in sync.get("message", ""), report
        assert report["exit_status"] == 1, report
        p = run.runc("state", cid)
        assert p.returncode != 0, out(p)
        p = run.runc("list", "-q")
        assert cid not in p.stdout.split(), out(p)
        assert _listed(systemd_sandbox, cid) == ""
    finally:
        run.cleanup()


def test_scope_required_refused_container_scope_kills_the_container(systemd_sandbox, monitor,
                                                                    root_bundle):
    """The monitor's scope works but the container's is refused (its name is
    taken): -1 on the sync pipe, exit 1, the created container is killed."""
    sb = systemd_sandbox
    cid = unique_id("scopetaken-", 24)
    blocker = f"ctrmon-{cid}-container.scope"
    run = Run(sb, monitor, root_bundle, cid, "/run/ctrmon-scope-test/runc")
    try:
        p = sb.run(f"systemd-run --scope --unit {blocker} sleep 60 >/dev/null 2>&1 &", timeout=30)
        assert wait_for(lambda: sb.run(["systemctl", "is-active", blocker], timeout=30)
                        .stdout.strip() == "active", 10), "blocker scope did not start"
        report = run.probe(["--systemd-scope-required"], sync=True)
        sync = report["sync"]
        assert isinstance(sync, dict) and sync.get("data") == -1, report
        assert blocker in sync.get("message", ""), report
        assert report["exit_status"] == 1, report
        pid = run.container_pid()
        assert not run.alive(pid), f"container {pid} still runs"
        p = run.runc("state", cid)
        assert p.returncode != 0 or json.loads(p.stdout)["status"] == "stopped", out(p)
        assert wait_for(lambda: _units_gone(sb, [f"ctrmon-{cid}.scope"]), 10), _listed(sb, cid)
    finally:
        sb.run(["systemctl", "stop", blocker], timeout=30)
        run.cleanup()
