"""`podman info` shows host.conmon.version as getConmonVersion() makes it:
`conmon --version` with the first newline turned into ", " and the final
one trimmed (podman 4.3 and 5 alike); podman only accepts a monitor whose
output starts "conmon version X.Y.Z" (containers/common probeConmon)."""
import subprocess

import p5emu


def _version_output(monitor):
    return subprocess.run([monitor, "--version"], stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, timeout=30, check=True).stdout.decode()


def test_podman_info_shows_the_version_on_one_line(monitor):
    out = _version_output(monitor)
    shown = p5emu.get_conmon_version(monitor)
    assert p5emu.CONMON_VERSION_RE.match(out), out
    # two lines, as conmon's, so that podman info has one
    assert out.count("\n") == 2 and out.endswith("\n"), out
    assert "\n" not in shown, shown
    assert shown.startswith("conmon version ")


def test_podman_info_names_ctrmon_and_its_commit(monitor):
    out = _version_output(monitor)
    if not out.startswith("conmon version 2.2.1\n"):
        assert "ctrmon" not in out   # the reference conmon: nothing to name
        return
    shown = p5emu.get_conmon_version(monitor)
    first, second = out.splitlines()
    assert first == "conmon version 2.2.1"
    assert second.startswith("ctrmon version ") and ", commit: " in second
    assert shown == f"{first}, {second}"
