"""Command-line validation against the binary itself (spec §1)."""
import re
import subprocess

import pytest

from ctrtest.monitor import monitor_binary

from conftest import scaled

# Every long option of spec §1.2 except the hidden --restore-arg/--pidfile.
LONG_OPTIONS = [
    "api-version", "bundle", "cid", "conmon-pidfile", "container-pidfile",
    "cuuid", "exec", "exec-attach", "exec-process-spec", "exit-command",
    "exit-command-arg", "exit-delay", "exit-dir", "leave-stdin-open",
    "log-level", "log-path", "log-size-max", "log-global-size-max",
    "log-tag", "log-label", "no-container-partial-message", "name",
    "no-new-keyring", "no-pivot", "no-sync-log", "persist-dir",
    "replace-listen-pid", "restore", "runtime", "runtime-arg",
    "runtime-opt", "sdnotify-socket", "socket-dir-path", "stdin", "sync",
    "syslog", "systemd-cgroup", "terminal", "timeout", "version",
    "full-attach", "log-rotate", "log-max-files", "log-allowlist-dir",
]


def run(*args, timeout=scaled(10)):
    return subprocess.run([monitor_binary(), *args], stdin=subprocess.DEVNULL,
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          timeout=timeout)


def test_missing_cid_exits_1_with_message():
    p = run("-u", "x", "-r", "/usr/sbin/runc", "-l", "none")
    assert p.returncode == 1
    assert p.stderr == b"conmon: Container ID not provided. Use --cid\n"


def test_bad_runtime_path_exits_1_with_strerror():
    p = run("-c", "x", "-u", "x", "-r", "/nonexistent", "-l", "none")
    assert p.returncode == 1
    assert p.stderr == (b"[conmon:e]: Runtime path /nonexistent is not "
                        b"valid No such file or directory\n")


@pytest.mark.conmon_differs("parse errors go to stdout")
def test_unknown_option_is_reported_on_stderr():
    p = run("--bogus")
    assert p.returncode == 1
    assert p.stderr == b"conmon: option parsing failed: Unknown option --bogus\n"


@pytest.mark.conmon_differs("logger prefix is '[conmon:e] ' without colon")
def test_negative_exit_delay_is_rejected():
    p = run("-c", "x", "-u", "x", "-r", "/usr/sbin/runc", "-l", "none",
            "--exit-delay", "-1")
    assert p.returncode == 1
    assert p.stderr == (b"[conmon:e]: Delay before invoking exit command "
                        b"must be greater than or equal to 0\n")


@pytest.mark.parametrize("logpath,message", [
    ("k8s-file", b"k8s-file requires a filename\n"),
    ("bogus:/x", b"No such log driver bogus\n"),
    ("", b"log-path must not be empty\n"),
])
def test_bad_log_path_is_rejected(logpath, message):
    p = run("-c", "x", "-u", "x", "-r", "/usr/sbin/runc", "-l", logpath)
    assert p.returncode == 1
    assert p.stderr.startswith(b"[conmon:e]") and p.stderr.endswith(message)


@pytest.mark.conmon_differs("reports 'conmon version 2.1.6'")
def test_version_reports_conmon_2_2_1_then_ctrmon():
    p = run("--version")
    assert p.returncode == 0
    lines = p.stdout.decode().split("\n")
    assert lines[0] == "conmon version 2.2.1"
    assert lines[1].startswith("ctrmon version ") and ", commit: " in lines[1]
    assert lines[2:] == [""]  # two lines, as conmon's (podman info joins them)


def test_version_needs_no_other_options():
    p = run("--version")
    assert p.returncode == 0
    assert re.match(rb"conmon version \d+\.\d+\.\d+\n", p.stdout)


@pytest.mark.conmon_differs("lacks the 2.2.0 log-rotation/journald options")
def test_help_exits_0_and_lists_every_long_option():
    p = run("--help")
    assert p.returncode == 0
    out = p.stdout.decode()
    assert out.startswith("Usage:\n")
    missing = [o for o in LONG_OPTIONS
               if not re.search(rf"--{re.escape(o)}(?![\w-])", out)]
    assert missing == []
