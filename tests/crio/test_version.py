"""`<monitor> --version` as CRI-O reads it at start-up
(internal/config/conmonmgr/conmonmgr.go New, parseConmonVersion,
initializeSupportsSync, initializeSupportsLogGlobalSizeMax): the combined
output split with strings.Fields, fields[2] through blang/semver/v4's
semver.New; >= 2.0.19 enables --sync for ExecSync, >= 2.1.2 enables
--log-global-size-max (below that CRI-O greps --help for the option).
A parse failure makes CRI-O refuse to start."""
import subprocess

import pytest

import crioemu


def test_version_third_field_is_semver_that_enables_sync_and_global_max(
        monitor, probe):
    p = subprocess.run([monitor, "--version"], stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, timeout=30)
    assert p.returncode == 0
    first = p.stdout.decode().splitlines()[0]
    # the first line's third field is what CRI-O's Fields(...)[2] picks
    assert first.split()[2] == probe["field"], (first, probe["output"])
    assert first.startswith("conmon version ")
    v = crioemu.semver_parse(probe["field"])
    assert crioemu.semver_gte(v, crioemu.semver_parse("2.0.19"))
    assert crioemu.semver_gte(v, crioemu.semver_parse("2.1.2"))
    assert probe["supports_sync"] is True
    assert probe["supports_log_global_size_max"] is True


def test_help_lists_the_options_crio_passes(monitor):
    """CRI-O's fallback probe for --log-global-size-max (a grep of
    --help), and every option CRI-O 1.33-1.36 may put on the command
    line."""
    p = subprocess.run([monitor, "--help"], stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT, timeout=30)
    assert p.returncode == 0
    out = p.stdout.decode()
    for opt in ["--bundle", "--cid", "--exit-dir", "--log-path",
                "--log-level", "--name", "--conmon-pidfile",
                "--container-pidfile", "--persist-dir", "--runtime",
                "--runtime-arg", "--socket-dir-path", "--syslog", "--cuuid",
                "--systemd-cgroup", "--log-size-max", "--no-sync-log",
                "--no-pivot", "--terminal", "--stdin", "--leave-stdin-open",
                "--restore", "--runtime-opt", "--exec", "--exec-process-spec",
                "--sync", "--log-global-size-max", "--timeout"]:
        assert opt in out, opt


@pytest.mark.parametrize("s,ok", [
    ("2.1.6", True), ("2.2.1", True), ("0.0.0", True), ("2.1.2-rc.1", True),
    ("2.1.2+dev", True), ("10.20.30", True), ("1.0.0-alpha-1.0", True),
    ("v2.1.6", False), ("2.1", False), ("2", False), ("02.1.1", False),
    ("2.01.1", False), ("2.1.06", False), ("2.1.6-", False),
    ("2.1.6-01", False), ("2.1.6+", False), ("2.1.x", False), ("", False),
    ("2.1.6,", False),
])
def test_semver_replica_accepts_what_blang_semver_accepts(s, ok):
    """The replica of blang/semver/v4 Parse used above (no monitor
    involved): what CRI-O would accept in the third field."""
    if ok:
        crioemu.semver_parse(s)
    else:
        with pytest.raises(ValueError):
            crioemu.semver_parse(s)


@pytest.mark.parametrize("a,b,gte", [
    ("2.0.19", "2.0.19", True), ("2.0.18", "2.0.19", False),
    ("2.1.0", "2.0.19", True), ("2.1.2-rc.1", "2.1.2", False),
    ("2.1.2", "2.1.2-rc.1", True), ("3.0.0", "2.1.2", True),
    ("1.9.99", "2.0.19", False),
])
def test_semver_replica_compares_like_gte(a, b, gte):
    assert crioemu.semver_gte(crioemu.semver_parse(a),
                              crioemu.semver_parse(b)) is gte
