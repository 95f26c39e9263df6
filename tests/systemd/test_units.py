"""The shipped ctrmon@.service templates under a real systemd (the sandbox of
tests/lib/systemd-sandbox): a rootless container as a user unit of the test
user's manager, a rootful one as a system unit, and the watchdog.

The templates are the generated ones (CTRMON_BUILD_DIR/systemd/*-ctrmon@.service)
with only ExecStart's program replaced by the built binary, installed into
the sandbox's private /run (/run/systemd/system, $XDG_RUNTIME_DIR/systemd/user).
Bundles go where the template says; they are on file systems shared with the
host and are removed afterwards, as are the directories the tests created.
"""
import json
import os
import re

import pytest

from ctrmon_sd import (MAKE_BUNDLE, PYTHON, MadeDirs, cgroup_lines, exec_start_option,
                       installable_template, monitor_binary, out, rootfs_cache, show,  # noqa: F401
                       shipped_template, unique_id, wait_for)

# The instance name is the container id. Short words are what people use
# (ctrmon@web1); ids longer than 12 characters are what engines use.
ID_LENGTHS = [pytest.param(7, id="short-id"), pytest.param(16, id="long-id")]
START_TIMEOUT = 30


def _install(sandbox, path, text, user=None):
    """Write TEXT to PATH inside the sandbox and daemon-reload."""
    ctl = "systemctl --user" if user else "systemctl"
    p = sandbox.run(f'mkdir -p "$(dirname "{path}")" && cat > "{path}" && {ctl} daemon-reload',
                    user=user, input=text, timeout=30)
    assert p.returncode == 0, out(p)


def _uninstall(sandbox, paths, user=None):
    ctl = "systemctl --user" if user else "systemctl"
    quoted = " ".join(f'"{p}"' for p in paths)
    sandbox.run(f"rm -rf {quoted}; {ctl} daemon-reload", user=user, timeout=30)


@pytest.fixture(scope="module")
def monitor():
    return monitor_binary()


@pytest.fixture(scope="module")
def system_template(systemd_sandbox, monitor):
    """The system template, installed in the sandbox's /run/systemd/system."""
    text = installable_template("system", monitor)
    path = "/run/systemd/system/ctrmon@.service"
    _install(systemd_sandbox, path, text)
    yield text
    _uninstall(systemd_sandbox, [path])


@pytest.fixture(scope="module")
def user_template(systemd_sandbox, monitor):
    """The user template, installed in the test user's $XDG_RUNTIME_DIR/systemd/user."""
    text = installable_template("user", monitor)
    user = systemd_sandbox.user
    path = "$XDG_RUNTIME_DIR/systemd/user/ctrmon@.service"
    _install(systemd_sandbox, path, text, user=user)
    yield text
    _uninstall(systemd_sandbox, [path], user=user)


def _start_and_probe(sandbox, unit, pidfile, user=None):
    """`systemctl [--user] start UNIT`, then at once: the container pid from
    PIDFILE and the state letter of /proc/PID/stat. Returns (pid, state)."""
    ctl = "systemctl --user" if user else "systemctl"
    script = f"""
{ctl} start {unit} || exit 90
pid=$(cat "{pidfile}") || exit 91
stat=$(cat /proc/$pid/stat) || exit 92
echo "$pid ${{stat##*) }}"
"""
    p = sandbox.run(script, user=user, timeout=START_TIMEOUT)
    if p.returncode == 90:
        st = sandbox.run(f"{ctl} status --no-pager {unit}; journalctl --no-pager -n 20 -q "
                         f"{'--user-unit' if user else '-u'} {unit}", user=user, timeout=30)
        pytest.fail(f"{ctl} start {unit} failed:\n{out(p)}\n{st.stdout}")
    assert p.returncode == 0, out(p)
    pid, state = p.stdout.split()[:2]
    return int(pid), state


def _inspect(sandbox, mainpid, pid, cgls):
    """One look from inside, as root: `pstree -p -s PID`, /proc/{MAINPID,PID}/cgroup,
    the container's notify/watchdog variables (there must be none) and
    `systemd-cgls --no-pager CGLS...`. Returns a dict of those."""
    script = f"""
echo @pstree; pstree -A -p -s {pid}
echo @monitor; cat /proc/{mainpid}/cgroup
echo @container; cat /proc/{pid}/cgroup
echo @env; tr '\\0' '\\n' < /proc/{pid}/environ | grep -E '^(NOTIFY_SOCKET|WATCHDOG_)'
echo @cgls; systemd-cgls --no-pager --xattr=no --cgroup-id=no {cgls}
"""
    p = sandbox.run(script, timeout=30)
    sections, name = {}, None
    for line in p.stdout.splitlines():
        if line.startswith("@") and line[1:] in ("pstree", "monitor", "container", "env", "cgls"):
            name = line[1:]
            sections[name] = []
        elif name:
            sections[name].append(line)
    got = {k: "\n".join(v) for k, v in sections.items()}
    assert set(got) == {"pstree", "monitor", "container", "env", "cgls"}, out(p)
    got["monitor"], got["container"] = cgroup_lines(got["monitor"]), cgroup_lines(got["container"])
    return got


def _stop_and_check(sandbox, unit, cid, user=None):
    ctl = ["systemctl", "--user"] if user else ["systemctl"]
    p = sandbox.run(ctl + ["stop", unit], user=user, timeout=30)
    assert p.returncode == 0, out(p)
    props = show(sandbox, unit, ["ExecMainStatus", "Result", "ActiveState", "StatusText"], user=user)
    assert props["ExecMainStatus"] == "7", props
    assert props["Result"] == "exit-code", props
    assert props["StatusText"] == f"Container {cid} exited with status 7", props


def _cleanup_unit(sandbox, unit, user=None):
    ctl = "systemctl --user" if user else "systemctl"
    sandbox.run(f"{ctl} stop {unit}; {ctl} reset-failed {unit}", user=user, timeout=40)


def test_shipped_templates_use_the_documented_bundle_dirs():
    """System bundles in /var/lib/ctrmon/ID, user bundles in ~/.local/share/ctrmon/ID
    (systemd/meson.build and the README say so)."""
    assert exec_start_option(shipped_template("user"), "--bundle") == "%h/.local/share/ctrmon/%i"
    assert exec_start_option(shipped_template("system"), "--bundle") == "/var/lib/ctrmon/%i"


@pytest.mark.parametrize("id_len", ID_LENGTHS)
def test_user_unit_runs_rootless_container_under_the_user_manager(
        systemd_sandbox, test_user, user_template, rootfs_cache, id_len):
    sb, user, uid = systemd_sandbox, test_user.pw_name, test_user.pw_uid
    cid = unique_id("web", id_len)
    unit = f"ctrmon@{cid}.service"
    rt = f"/run/user/{uid}"
    assert exec_start_option(user_template, "--bundle") == "%h/.local/share/ctrmon/%i"
    bundle = os.path.join(test_user.pw_dir, ".local", "share", "ctrmon", cid)
    dirs = MadeDirs()
    dirs.makedirs(bundle, owner=test_user)
    try:
        p = sb.run([PYTHON, MAKE_BUNDLE, bundle, "--rootless", "--rootfs-from", rootfs_cache],
                   user=user, timeout=60)
        assert p.returncode == 0, out(p)

        # systemctl start returns once ctrmon said READY=1: the container runs.
        pid, state = _start_and_probe(sb, unit, f"{rt}/ctrmon/{cid}/pidfile", user=user)
        assert state[0] in "RS", f"container {pid} state {state}"
        props = show(sb, unit, ["ActiveState", "SubState", "MainPID", "StatusText"], user=user)
        assert (props["ActiveState"], props["SubState"]) == ("active", "running"), props
        assert props["StatusText"] == f"Container {cid} running (pid {pid})", props
        mainpid = int(props["MainPID"])
        manager = int(show(sb, f"user@{uid}.service", ["MainPID"])["MainPID"])

        seen = _inspect(sb, mainpid, pid, f"-u user@{uid}.service")
        print(f"\n$ pstree -p -s {pid}\n{seen['pstree']}")
        print(f"$ systemd-cgls --no-pager -u user@{uid}.service\n{seen['cgls']}")
        assert re.fullmatch(rf"systemd\(1\)---systemd\({manager}\)---ctrmon\({mainpid}\)"
                            rf"---sh\({pid}\)(---sleep\(\d+\))?", seen["pstree"]), seen["pstree"]
        manager_cg = f"/user.slice/user-{uid}.slice/user@{uid}.service/"
        for who in ("monitor", "container"):
            cg = seen[who]
            assert cg["name=systemd"].startswith(manager_cg), (who, cg)
            assert cg[""].startswith(manager_cg), (who, cg)
        assert seen["env"] == "", f"the container sees {seen['env']}"

        def journal():
            q = sb.run(["journalctl", "--user", "--no-pager", "-o", "json",
                        f"CONTAINER_NAME={cid}"], user=user, timeout=30)
            return [e for e in map(json.loads, q.stdout.splitlines())
                    if e.get("MESSAGE") == "hello\n"]
        entries = wait_for(journal, 10)
        assert entries, "journalctl --user CONTAINER_NAME= has no 'hello'"
        assert entries[0]["CONTAINER_NAME"] == cid and entries[0]["_UID"] == str(uid), entries[0]
        p = sb.run(["cat", f"{rt}/ctrmon/{cid}/ctr.log"], user=user, timeout=30)
        assert re.search(r"^\S+ stdout F hello$", p.stdout, flags=re.M), out(p)

        _stop_and_check(sb, unit, cid, user=user)
        assert sb.run(["test", "-e", f"/proc/{pid}"], timeout=30).returncode != 0, \
            f"container {pid} survived the stop"
        p = sb.run(["/usr/sbin/runc", f"--root={rt}/ctrmon/runc", "state", cid],
                   user=user, timeout=30)
        assert p.returncode != 0, out(p)
    finally:
        _cleanup_unit(sb, unit, user=user)
        dirs.cleanup(bundle)


def _system_bundle(template, cid):
    """The bundle dir the system template names (the host's /var)."""
    return exec_start_option(template, "--bundle").replace("%i", cid)


@pytest.mark.parametrize("id_len", ID_LENGTHS)
def test_system_unit_runs_container_under_pid1(systemd_sandbox, system_template, rootfs_cache,
                                               id_len):
    sb = systemd_sandbox
    cid = unique_id("sys", id_len)
    unit = f"ctrmon@{cid}.service"
    bundle = _system_bundle(system_template, cid)
    dirs = MadeDirs()
    dirs.makedirs(bundle)
    try:
        p = sb.run([PYTHON, MAKE_BUNDLE, bundle, "--rootfs-from", rootfs_cache], timeout=60)
        assert p.returncode == 0, out(p)

        pid, state = _start_and_probe(sb, unit, f"/run/ctrmon/{cid}/pidfile")
        assert state[0] in "RS", f"container {pid} state {state}"
        props = show(sb, unit, ["ActiveState", "MainPID", "StatusText", "Slice", "ControlGroup"])
        assert props["ActiveState"] == "active", props
        assert props["StatusText"] == f"Container {cid} running (pid {pid})", props
        assert props["Slice"] == "machine.slice", props
        mainpid = int(props["MainPID"])

        seen = _inspect(sb, mainpid, pid, "")
        print(f"\n$ pstree -p -s {pid}\n{seen['pstree']}")
        print(f"$ systemd-cgls --no-pager\n{seen['cgls']}")
        assert re.fullmatch(rf"systemd\(1\)---ctrmon\({mainpid}\)---sh\({pid}\)(---sleep\(\d+\))?",
                            seen["pstree"]), seen["pstree"]
        # name=systemd (and the v1 controllers systemd manages): below the
        # unit in machine.slice. The unified line: see the test below.
        for who in ("monitor", "container"):
            cg = seen[who]
            assert cg["name=systemd"].startswith(props["ControlGroup"]), (who, cg)
            assert cg["pids"].startswith("/machine.slice/"), (who, cg)
            assert not [v for v in cg.values() if "user@" in v], (who, cg)
        assert seen["env"] == "", f"the container sees {seen['env']}"

        def journal():
            q = sb.run(["journalctl", "--no-pager", "-o", "cat", f"CONTAINER_NAME={cid}"],
                       timeout=30)
            return "hello" in q.stdout.splitlines()
        assert wait_for(journal, 10), "journalctl CONTAINER_NAME= has no 'hello'"

        _stop_and_check(sb, unit, cid)
        assert sb.run(["test", "-e", f"/proc/{pid}"], timeout=30).returncode != 0
        p = sb.run(["/usr/sbin/runc", "--root=/run/ctrmon/runc", "state", cid], timeout=30)
        assert p.returncode != 0, out(p)
    finally:
        _cleanup_unit(sb, unit)
        dirs.cleanup(bundle)


def test_system_unit_container_is_in_the_units_unified_cgroup(systemd_sandbox, system_template,
                                                              rootfs_cache):
    """On this hybrid layout systemd tracks units in the unified (0::) hierarchy:
    the container must be below the unit there too, or `systemctl status` and
    systemd-cgls do not show it as the unit's."""
    sb = systemd_sandbox
    cid = unique_id("cgr", 16)
    unit = f"ctrmon@{cid}.service"
    bundle = _system_bundle(system_template, cid)
    dirs = MadeDirs()
    dirs.makedirs(bundle)
    try:
        p = sb.run([PYTHON, MAKE_BUNDLE, bundle, "--rootfs-from", rootfs_cache], timeout=60)
        assert p.returncode == 0, out(p)
        pid, _ = _start_and_probe(sb, unit, f"/run/ctrmon/{cid}/pidfile")
        control_group = show(sb, unit, ["ControlGroup"])["ControlGroup"]
        p = sb.run(["cat", f"/proc/{pid}/cgroup"], timeout=30)
        cg = cgroup_lines(p.stdout)
        assert cg[""].startswith(control_group), (control_group, p.stdout)
    finally:
        _cleanup_unit(sb, unit)
        dirs.cleanup(bundle)


def test_watchdog_pings_keep_the_unit_alive(systemd_sandbox, system_template, rootfs_cache):
    sb = systemd_sandbox
    cid = unique_id("wdg", 16)
    unit = f"ctrmon@{cid}.service"
    dropin = f"/run/systemd/system/{unit}.d"
    bundle = _system_bundle(system_template, cid)
    dirs = MadeDirs()
    dirs.makedirs(bundle)
    try:
        p = sb.run([PYTHON, MAKE_BUNDLE, bundle, "--rootfs-from", rootfs_cache], timeout=60)
        assert p.returncode == 0, out(p)
        _install(sb, f"{dropin}/50-watchdog.conf", "[Service]\nWatchdogSec=2\n")
        pid, _ = _start_and_probe(sb, unit, f"/run/ctrmon/{cid}/pidfile")
        props = ["ActiveState", "MainPID", "WatchdogUSec", "WatchdogTimestampMonotonic",
                 "ExecMainStartTimestampMonotonic", "NRestarts"]
        before = show(sb, unit, props)
        assert before["WatchdogUSec"] in ("2s", "2000000"), before
        # Three watchdog periods: without pings systemd kills it after one.
        p = sb.run(["sleep", "6.5"], timeout=30)
        after = show(sb, unit, props)
        assert after["ActiveState"] == "active", after
        assert after["MainPID"] == before["MainPID"], (before, after)
        assert after["ExecMainStartTimestampMonotonic"] == before["ExecMainStartTimestampMonotonic"]
        assert int(after["WatchdogTimestampMonotonic"]) > int(before["WatchdogTimestampMonotonic"]) \
            + 5_000_000, (before, after)
        p = sb.run(["journalctl", "--no-pager", "-q", "-u", unit, "-g", "[Ww]atchdog"], timeout=30)
        assert "timeout" not in p.stdout, p.stdout
        _stop_and_check(sb, unit, cid)
    finally:
        _cleanup_unit(sb, unit)
        _uninstall(sb, [dropin])
        dirs.cleanup(bundle)


def test_container_killed_by_signal_ends_the_unit_with_128_plus_signal(
        systemd_sandbox, system_template, rootfs_cache):
    """ctrmon --sync exits with the container's status, 128+N when a signal
    killed it, and the unit stops by itself when the container ends."""
    sb = systemd_sandbox
    cid = unique_id("sig", 16)
    unit = f"ctrmon@{cid}.service"
    bundle = _system_bundle(system_template, cid)
    dirs = MadeDirs()
    dirs.makedirs(bundle)
    try:
        p = sb.run([PYTHON, MAKE_BUNDLE, bundle, "--rootfs-from", rootfs_cache], timeout=60)
        assert p.returncode == 0, out(p)
        pid, _ = _start_and_probe(sb, unit, f"/run/ctrmon/{cid}/pidfile")
        p = sb.run(["kill", "-KILL", str(pid)], timeout=30)
        assert p.returncode == 0, out(p)
        props = ["ActiveState", "ExecMainStatus", "Result", "StatusText"]
        assert wait_for(lambda: show(sb, unit, props)["ActiveState"] in ("failed", "inactive"), 15)
        got = show(sb, unit, props)
        assert (got["ExecMainStatus"], got["Result"]) == ("137", "exit-code"), got
        assert got["StatusText"] == f"Container {cid} exited with status 137", got
    finally:
        _cleanup_unit(sb, unit)
        dirs.cleanup(bundle)
