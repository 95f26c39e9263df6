"""The journald log driver, conmon vs ctrmon, against a real journald: the
scenarios of journald_probe.py run inside a booted systemd sandbox
(tests/lib/systemd-sandbox), rootful and as the rootless user ctrmon-compat,
and add their rows to the compat table.  The sandbox is this module's own
(named by this process), booted once and halted at the end."""

import json
import os
import subprocess
import sys

import pytest

import compat

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "lib"))

from ctrtest_systemd import SystemdSandbox  # noqa: E402

PROBE = os.path.join(HERE, "journald_probe.py")
PYTHON = "/usr/bin/python3"
PROBE_TIMEOUT = 150


def ctrmon():
    m = os.environ.get("CTRMON_BIN")
    if not m or not (os.path.isfile(m) and os.access(m, os.X_OK)):
        pytest.fail(f"CTRMON_BIN={m!r} must name the monitor under test", pytrace=False)
    if not os.access(compat.CONMON, os.X_OK):
        pytest.fail(f"the reference {compat.CONMON} is missing", pytrace=False)
    return os.path.abspath(m)


@pytest.fixture(scope="module")
def sandbox():
    if os.geteuid() != 0:
        pytest.fail("the systemd sandbox and rootful podman need root", pytrace=False)
    sb = SystemdSandbox(f"ctrmon-cj-{os.getpid()}")
    try:
        sb.up()
    except Exception:
        sb.down()
        raise
    yield sb
    p = sb.down()
    assert p.returncode == 0, f"systemd-sandbox down {sb.name}: {p.stderr.strip()}"


def run_probe(sb, mode, table):
    """Run the scenarios in MODE inside the sandbox; add their rows to the
    table; fail on a difference or on anything left behind."""
    try:
        p = sb.run([PYTHON, PROBE, mode, ctrmon()], timeout=PROBE_TIMEOUT)
    except subprocess.TimeoutExpired:
        pytest.fail(f"journald_probe.py {mode} took over {PROBE_TIMEOUT}s", pytrace=False)
    lines = p.stdout.strip().splitlines()
    assert p.returncode == 0 and lines, (
        f"journald_probe.py {mode}: rc={p.returncode}\n{p.stdout}\n{p.stderr[-3000:]}")
    report = json.loads(lines[-1])
    failures = []
    for row, obs in zip(report["rows"], report["obs"]):
        table.append(tuple(row))
        print(f"\n{row[0]}: {row[3]}")
        for monitor in ("conmon", "ctrmon"):
            for k, v in obs[monitor].items():
                print(f"  {monitor} {k}: {v[:200]}")
        if row[3].startswith("DIFF"):
            failures.append(f"{row[0]}: ctrmon differs from conmon:\n  " + "\n  ".join(row[4]))
    assert not report["problems"], report["problems"]
    assert not report["base_left"], "the probe left its podman worlds' directories behind"
    if failures:
        pytest.fail("\n".join(failures), pytrace=False)


def test_journald_rootful(sandbox, table):
    run_probe(sandbox, "rootful", table)


def test_journald_rootless(sandbox, table):
    import rootless
    rootless.ensure_user()
    run_probe(sandbox, "rootless", table)
