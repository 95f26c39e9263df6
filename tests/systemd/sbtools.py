"""Shared bits of the systemd suite's monitor tests (test_journald.py,
test_syslog.py): which monitor binary, a busybox rootfs, running
monitor_runs.py inside the sandbox, and reading journalctl's JSON."""
import json
import os
import subprocess


from ctrmon_sd import monitor_binary, out  # noqa: F401 (re-exported)

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
MAKE_ROOTFS = os.path.join(REPO, "tests", "lib", "make-rootfs.sh")
MONITOR_RUNS = os.path.join(HERE, "monitor_runs.py")
PYTHON = "/usr/bin/python3"


def make_rootfs(path):
    subprocess.run(["sh", MAKE_ROOTFS, str(path)], check=True, timeout=60)
    return str(path)


def monitor_runs(sandbox, monitor, rootfs, workdir, runs, timeout=120):
    """Run monitor_runs.py inside SANDBOX; returns its list of run reports."""
    req = {"monitor": monitor, "rootfs": rootfs, "workdir": str(workdir), "runs": runs}
    p = sandbox.run([PYTHON, MONITOR_RUNS], input=json.dumps(req), timeout=timeout)
    assert p.returncode == 0 and p.stdout.strip(), out(p)
    return json.loads(p.stdout.splitlines()[-1])["runs"]


def field_bytes(entry, name):
    """A journalctl -o json field as bytes (strings, byte arrays, or None)."""
    v = entry.get(name)
    if v is None:
        return None
    if isinstance(v, list):
        if v and isinstance(v[0], int):
            return bytes(v)
        raise AssertionError(f"field {name} given several times: {v!r}")
    return v.encode()


def seqnum(entry):
    """The entry's sequence number (systemd 252 has no __SEQNUM in JSON; the
    cursor carries it as i=HEX)."""
    if "__SEQNUM" in entry:
        return int(entry["__SEQNUM"])
    parts = dict(p.split("=", 1) for p in entry["__CURSOR"].split(";"))
    return int(parts["i"], 16)


def by_seqnum(entries):
    return sorted(entries, key=seqnum)
