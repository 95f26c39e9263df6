"""The same podman scenarios against conmon and ctrmon: what a user sees
must be the same, apart from documented ctrmon fixes (see compat.py)."""

import os
import re
import subprocess

import pytest

import compat
import scenarios  # noqa: F401  (registers the scenarios)
import scenarios_io  # noqa: F401
from loop import loop_scenario

ROOTFUL = [s for s in compat.SCENARIOS]
ROOTLESS = [s for s in compat.SCENARIOS if s.rootless]


def check(pair, sc, table):
    verdict, lines, a, b = pair.run(sc, table)
    if verdict.startswith("DIFF"):
        pytest.fail(f"{sc.name}: ctrmon differs from conmon:\n  "
                    + "\n  ".join(lines), pytrace=False)


@pytest.mark.parametrize("sc", ROOTFUL, ids=[s.slug for s in ROOTFUL])
def test_rootful(pair, sc, table):
    check(pair, sc, table)


@pytest.mark.parametrize("sc", ROOTLESS, ids=[s.slug for s in ROOTLESS])
def test_rootless(rootless_pair, sc, table):
    check(rootless_pair, sc, table)


def test_loop(pair, table):
    check(pair, loop_scenario(), table)


def test_podman_info_names_each_monitor_and_its_version_on_one_line(pair):
    """What a user sees of the monitor in `podman info`: host.conmon.path and
    host.conmon.version.  podman trims the monitor's --version and joins its
    lines with ", "; ctrmon's two lines (conmon's version for the callers
    that compare it, then its own) read as one sentence there."""
    seen = {}
    for w in (pair.ref, pair.mine):
        rc, out, err = w.podman("info", "--format",
                                "{{.Host.Conmon.Path}}\t{{.Host.Conmon.Version}}")
        assert rc == 0, err
        path, version = out.decode().rstrip("\n").split("\t")
        assert os.path.realpath(path) == w.monitor_real, (path, w.monitor_real)
        own = subprocess.run([w.monitor, "--version"], stdout=subprocess.PIPE,
                             check=True).stdout.decode()
        assert version == ", ".join(own.strip().split("\n")), (version, own)
        seen[w] = version
    assert re.fullmatch(r"conmon version \d+\.\d+\.\d+, commit: \S+", seen[pair.ref]), seen
    assert re.fullmatch(r"conmon version \d+\.\d+\.\d+, ctrmon version \d+\.\d+\.\d+\S*, "
                        r"commit: [0-9a-f]{7,40}\S*", seen[pair.mine]), seen
