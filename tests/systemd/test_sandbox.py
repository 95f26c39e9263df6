"""The systemd sandbox (tests/lib/systemd-sandbox) is a real systemd: boot,
journal, transient scopes on the system and the user bus, user services, a
clean tear-down, and the monitor's journald driver talking to its journald."""
import glob
import json
import os
import re
import subprocess
import time
import uuid


from ctrtest_systemd import SystemdSandbox
from ctrmon_sd import monitor_binary, out, wait_for

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
MAKE_ROOTFS = os.path.join(REPO, "tests", "lib", "make-rootfs.sh")
PYTHON = "/usr/bin/python3"


def proc_start(pid):
    """Start time of a live (non-zombie) PID, or None."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except (FileNotFoundError, ProcessLookupError):
        return None
    return None if fields[0] == "Z" else fields[19]


def pids_in_pid_ns(ns):
    """Host PIDs of live processes whose PID namespace is NS ("pid:[N]")."""
    found = []
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            if os.readlink(f"/proc/{d}/ns/pid") == ns and proc_start(d):
                found.append(int(d))
        except OSError:
            pass
    return found


def scope_cgroup(sandbox, cmd, user=None):
    """Run CMD (which execs `sleep 1` in a scope) in the background inside and
    return /proc/PID/cgroup of that process once it is sleep."""
    script = f"""
{cmd} &
p=$!
for i in $(seq 100); do
    [ "$(cat /proc/$p/comm 2>/dev/null)" = sleep ] && break
    sleep 0.05
done
cat /proc/$p/comm /proc/$p/cgroup
wait $p
"""
    return sandbox.run(script, user=user, timeout=60)


def test_exec_passes_stdio_and_exit_code(systemd_sandbox):
    p = systemd_sandbox.run("read x; echo out:$x; echo err >&2; exit 7", input="in\n")
    assert (p.returncode, p.stdout, p.stderr) == (7, "out:in\n", "err\n"), out(p)
    p = systemd_sandbox.run('echo "$(id -un) $XDG_RUNTIME_DIR $DBUS_SESSION_BUS_ADDRESS"; exit 3',
                            user=systemd_sandbox.user)
    uid = systemd_sandbox.run(["id", "-u", systemd_sandbox.user]).stdout.strip()
    assert p.returncode == 3, out(p)
    assert p.stdout == (f"{systemd_sandbox.user} /run/user/{uid} "
                        f"unix:path=/run/user/{uid}/bus\n"), out(p)


def test_boot_pid1_is_systemd_and_running_and_journald_answers(systemd_sandbox):
    sb = systemd_sandbox
    p = sb.run("cat /proc/1/comm; readlink /proc/1/exe; systemd-detect-virt --container")
    comm, exe, virt = (p.stdout.split() + ["", "", ""])[:3]
    assert (comm, virt) == ("systemd", "container-other"), out(p)
    assert exe.endswith("/lib/systemd/systemd"), out(p)
    state = sb.run(["systemctl", "is-system-running"]).stdout.strip()
    failed = ""
    if state != "running":
        failed = sb.run(["systemctl", "--failed", "--no-legend", "--plain"]).stdout
    assert state == "running", f"system state {state!r}; failed units:\n{failed}"
    p = sb.run(["systemctl", "is-active", "systemd-journald.service", "dbus.service",
                "systemd-logind.service"])
    assert p.stdout.split() == ["active"] * 3, out(p)
    # --sync is a round trip to journald (varlink), not just a file read.
    p = sb.run(["journalctl", "--sync"], timeout=30)
    assert p.returncode == 0, out(p)
    p = sb.run(["journalctl", "-b", "-n", "1", "-q", "--no-pager"])
    assert p.returncode == 0 and p.stdout.strip(), out(p)


def test_systemd_cat_reaches_the_journal(systemd_sandbox):
    tag = f"ctrmon-probe-{uuid.uuid4().hex[:8]}"
    p = systemd_sandbox.run(["systemd-cat", "-t", tag, "echo", "hi"])
    assert p.returncode == 0, out(p)
    p = wait_for(lambda: (lambda q: q if q.stdout == "hi\n" else None)(
        systemd_sandbox.run(["journalctl", "--no-pager", "-t", tag, "-o", "cat"])), 10)
    assert p, "journalctl -t found no 'hi'"


def test_system_bus_transient_scope_owns_the_process(systemd_sandbox):
    p = scope_cgroup(systemd_sandbox, "systemd-run --scope --unit ctrmon-probe-scope sleep 1")
    assert p.returncode == 0, out(p)
    lines = p.stdout.splitlines()
    assert lines[0] == "sleep", out(p)
    assert "0::/system.slice/ctrmon-probe-scope.scope" in lines, out(p)
    assert any(re.fullmatch(r"\d+:name=systemd:/system\.slice/ctrmon-probe-scope\.scope", line)
               for line in lines), out(p)


def test_user_bus_transient_scope_lands_under_user_manager(systemd_sandbox):
    sb = systemd_sandbox
    uid = sb.run(["id", "-u", sb.user]).stdout.strip()
    p = scope_cgroup(sb, "systemd-run --user --scope --unit ctrmon-probe-uscope sleep 1",
                     user=sb.user)
    assert p.returncode == 0, out(p)
    unified = [line for line in p.stdout.splitlines() if line.startswith("0::")]
    assert len(unified) == 1, out(p)
    assert re.fullmatch(rf"0::/user\.slice/user-{uid}\.slice/user@{uid}\.service/"
                        r"(.+/)?ctrmon-probe-uscope\.scope", unified[0]), out(p)


def test_user_service_is_a_child_of_the_user_manager(systemd_sandbox):
    sb = systemd_sandbox
    unit = "ctrmon-probe-sleep.service"
    script = f"""
set -e
mkdir -p "$XDG_RUNTIME_DIR/systemd/user"
printf '[Service]\\nExecStart=/bin/sleep 60\\n' > "$XDG_RUNTIME_DIR/systemd/user/{unit}"
systemctl --user daemon-reload
systemctl --user start {unit}
pid=$(systemctl --user show -P MainPID {unit})
pstree -A -p -s "$pid"
systemctl --user stop {unit}
rm "$XDG_RUNTIME_DIR/systemd/user/{unit}"
systemctl --user daemon-reload
"""
    p = sb.run(script, user=sb.user, timeout=60)
    assert p.returncode == 0, out(p)
    assert re.fullmatch(r"systemd\(1\)---systemd\(\d+\)---sleep\(\d+\)", p.stdout.strip()), out(p)


def test_down_leaves_nothing_behind(test_user):
    name = f"ctrmon-td-{os.getpid()}"
    sb = SystemdSandbox(name, user=test_user.pw_name)
    ptmp_glob = "/tmp/systemd-private-*-ctrmon-td-ptmp.service-*"
    t0 = time.monotonic()
    pid = sb.up()
    boot_s = time.monotonic() - t0
    try:
        assert sb.up() == pid, "up of a running sandbox must print the same PID"
        st = sb.status()
        assert st["state"] == "up" and int(st["pid"]) == pid, st
        cgroups, state_dir = st["cgroups"], st["state_dir"]
        upid = int(st["unshare_pid"])
        upid_start = proc_start(upid)
        assert cgroups and all(os.path.isdir(d) for d in cgroups), st
        ns = os.readlink(f"/proc/{pid}/ns/pid")
        # Give the halt something to stop: a PrivateTmp system service (its
        # dir is on the shared /tmp) and a user manager with a service.
        p = sb.run(["systemd-run", "--unit", "ctrmon-td-ptmp", "-p", "PrivateTmp=yes",
                    "sleep", "300"])
        assert p.returncode == 0, out(p)
        p = sb.run(["systemd-run", "--user", "--unit", "ctrmon-td-usleep", "sleep", "300"],
                   user=sb.user)
        assert p.returncode == 0, out(p)
        assert wait_for(lambda: glob.glob(ptmp_glob), 10), "PrivateTmp dir never appeared"
        # (PID, start time): the namespace's inode number is reused soon after.
        inside = [(q, proc_start(q)) for q in pids_in_pid_ns(ns)]
        assert len(inside) >= 7, inside  # systemd, journald, dbus, logind, 2x sleep, user mgr
    finally:
        t0 = time.monotonic()
        p = sb.down()
        down_s = time.monotonic() - t0
    print(f"\nsandbox {name}: up {boot_s:.1f}s, down {down_s:.1f}s")
    assert p.returncode == 0, out(p)
    assert [(q, t) for q, t in inside if proc_start(q) == t] == []
    assert proc_start(upid) != upid_start, "unshare still runs"
    assert [d for d in cgroups if os.path.exists(d)] == []
    assert not os.path.exists(state_dir)
    with open("/proc/self/mountinfo") as f:
        mounts = f.read()
    assert state_dir not in mounts
    assert not re.search(r" sandbox-(run|dev|devpts|shm|mqueue|journal|cgroup|tmp) ", mounts)
    assert glob.glob(ptmp_glob) == []
    p = sb.down()
    assert p.returncode == 0, out(p)
    assert sb.status()["state"] == "down"




def test_monitor_journald_driver_fields(systemd_sandbox, tmp_path):
    monitor = monitor_binary()
    rootfs = tmp_path / "rootfs"
    subprocess.run(["sh", MAKE_ROOTFS, str(rootfs)], check=True, timeout=60)
    cid = "ctrmonprobe" + uuid.uuid4().hex  # > 12 chars, unique 12-char prefix
    p = systemd_sandbox.run([PYTHON, os.path.join(HERE, "journald_probe.py"),
                             "--monitor", monitor, "--workdir", str(tmp_path / "work"),
                             "--rootfs", str(rootfs), "--cid", cid, "--name", "probe"],
                            timeout=120)
    assert p.returncode == 0, out(p)
    report = json.loads(p.stdout.splitlines()[-1])
    assert report["exit_file"] == "0", report

    def message(e):  # journalctl -o json gives non-printable data as a byte array
        m = e.get("MESSAGE")
        return bytes(m).decode() if isinstance(m, list) else m

    entries = report["entries"]
    got = sorted((message(e), e.get("PRIORITY"), e.get("CONTAINER_ID"),
                  e.get("CONTAINER_ID_FULL"), e.get("CONTAINER_NAME"),
                  e.get("SYSLOG_IDENTIFIER")) for e in entries)
    want = sorted([("hello\n", "6", cid[:12], cid, "probe", "probe"),
                   ("oops\n", "3", cid[:12], cid, "probe", "probe")])
    assert got == want, json.dumps(entries, indent=1)
