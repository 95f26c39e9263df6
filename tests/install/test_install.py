"""`meson install` into a DESTDIR, then the installed files used as installed:
a fresh build dir (--prefix=/usr), `meson install --destdir D`, the file list
(binaries, library and its links, headers, pkg-config file, units, man
pages, bash completion) and a busybox container run by D's ctrmon under runc,
driven by D's ctrmonctl against D's libctrmon.
"""
import glob
import json
import os
import re
import shutil
import subprocess
import tempfile
import time

import pytest

from conftest import REPO
from ctrtest.bundle import Bundle

RUNC = "/usr/sbin/runc"
MAKE_ROOTFS = os.path.join(REPO, "tests", "lib", "make-rootfs.sh")
CTRMON = "usr/libexec/ctrmon/ctrmon"
CTRMONCTL = "usr/bin/ctrmonctl"


def _run(argv, timeout=300, **kw):
    p = subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT, text=True, timeout=timeout, **kw)
    assert p.returncode == 0, f"{' '.join(argv)}: rc={p.returncode}\n{p.stdout[-4000:]}"
    return p.stdout


def _pkg_var(pkg, var, define=None):
    """`pkg-config --variable` of PKG, or None if PKG has no .pc file."""
    argv = ["pkg-config"] + ([f"--define-variable={define}"] if define else [])
    p = subprocess.run(argv + [f"--variable={var}", pkg], stdout=subprocess.PIPE,
                       stderr=subprocess.DEVNULL, text=True)
    return p.stdout.strip() if p.returncode == 0 and p.stdout.strip() else None


@pytest.fixture(scope="module")
def dest():
    """D: the tree built with --prefix=/usr and installed with --destdir D."""
    work = tempfile.mkdtemp(prefix="ctrmon-install-", dir="/tmp")
    os.chmod(work, 0o755)
    build, d = os.path.join(work, "build"), os.path.join(work, "dest")
    try:
        _run(["meson", "setup", build, REPO, "--prefix=/usr", "-Dunit_tests=false",
              "-Dman=enabled"])
        _run(["ninja", "-C", build])
        _run(["meson", "install", "-C", build, "--destdir", d, "--no-rebuild"])
        yield d
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _libdir(d):
    found = glob.glob(os.path.join(d, "usr", "lib*", "**", "libctrmon.so.0.1.0"),
                      recursive=True)
    assert len(found) == 1, f"libctrmon.so.0.1.0 under {d}/usr/lib*: {found}"
    return os.path.dirname(found[0])


def _ctl_env(d):
    return dict(os.environ, LD_LIBRARY_PATH=_libdir(d),
                CTRMON_BIN=os.path.join(d, CTRMON))


def _exec_start(path):
    with open(path) as f:
        m = re.search(r"^ExecStart=(\S+)", f.read(), flags=re.M)
    assert m, f"no ExecStart= in {path}"
    return m.group(1)


def test_binaries_are_installed_executable(dest):
    for rel in (CTRMON, CTRMONCTL):
        path = os.path.join(dest, rel)
        assert os.path.isfile(path) and os.access(path, os.X_OK), path
    out = _run([os.path.join(dest, CTRMON), "--version"])
    assert out.splitlines()[0] == "conmon version 2.2.1", out
    assert "ctrmon version 0.1.0" in out, out
    out = _run([os.path.join(dest, CTRMONCTL), "--version"], env=_ctl_env(dest))
    assert "0.1.0" in out, out


def test_installed_ctrmonctl_has_no_build_tree_rpath(dest):
    """meson strips the build-tree RUNPATH on install: the installed client
    must find libctrmon where the system looks, not in a build dir."""
    out = _run(["readelf", "-d", os.path.join(dest, CTRMONCTL)])
    assert not re.search(r"R(UN)?PATH", out), out
    env = dict(os.environ, LD_LIBRARY_PATH=_libdir(dest))
    out = _run(["ldd", os.path.join(dest, CTRMONCTL)], env=env)
    line = [x for x in out.splitlines() if "libctrmon.so.0" in x]
    assert line and _libdir(dest) in line[0], out


def test_installed_monitor_links_only_libc(dest):
    """Start latency and idle memory: glib and json-c are linked in
    statically (the static_deps option, on by default), and libsystemd (with
    the compression and crypto libraries it pulls in) is dlopen()ed for
    --systemd-scope only, so each monitor's exec relocates nothing but libc
    (README, Performance)."""
    out = _run(["readelf", "-d", os.path.join(dest, CTRMON)])
    needed = sorted(re.findall(r"\(NEEDED\)\s+Shared library: \[([^\]]+)\]", out))
    assert "libc.so.6" in needed, out
    assert set(needed) <= {"libc.so.6", "ld-linux-x86-64.so.2"}, out


def test_library_links_headers_and_pkgconfig(dest):
    libdir = _libdir(dest)
    assert os.readlink(os.path.join(libdir, "libctrmon.so.0")) == "libctrmon.so.0.1.0"
    assert os.readlink(os.path.join(libdir, "libctrmon.so")) == "libctrmon.so.0"
    for h in ("client.h", "control.h", "signal-names.h"):
        assert os.path.isfile(os.path.join(dest, "usr", "include", "ctrmon", h)), h
    pc = os.path.join(libdir, "pkgconfig", "libctrmon.pc")
    with open(pc) as f:
        text = f.read()
    assert "prefix=/usr\n" in text, text
    assert re.search(r"^Libs: .*-lctrmon", text, flags=re.M), text
    assert re.search(r"^Requires.private: json-c", text, flags=re.M), text
    # A consumer compiles and links against the installed files alone.
    with tempfile.TemporaryDirectory(prefix="ctrmon-pc-") as t:
        src, exe = os.path.join(t, "t.c"), os.path.join(t, "t")
        with open(src, "w") as f:
            f.write("#include <ctrmon/client.h>\n#include <ctrmon/control.h>\n"
                    "#include <ctrmon/signal-names.h>\n"
                    "int main(void) { CtrmonClient *c = NULL; "
                    "if (ctrmon_signal_from_name(\"SIGTERM\") != 15) return 2; "
                    "return ctrmon_client_connect(\"/nonexistent\", &c) < 0 ? 0 : 1; }\n")
        _run(["cc", "-o", exe, src, f"-I{dest}/usr/include", f"-L{libdir}", "-lctrmon"])
        _run([exe], env=dict(os.environ, LD_LIBRARY_PATH=libdir))


def test_units_in_systemds_dirs_run_the_installed_monitor(dest):
    # systemd.pc roots system units at ${root_prefix}; the build defines it
    # as the install prefix (systemd/meson.build), so they follow --prefix.
    system_dir = (_pkg_var("systemd", "systemdsystemunitdir", "root_prefix=/usr")
                  or "/usr/lib/systemd/system")
    user_dir = (_pkg_var("systemd", "systemduserunitdir", "prefix=/usr")
                or "/usr/lib/systemd/user")
    for unit_dir in (system_dir, user_dir):
        unit = os.path.join(dest, unit_dir.lstrip("/"), "ctrmon@.service")
        assert os.path.isfile(unit), unit
        assert _exec_start(unit) == "/usr/libexec/ctrmon/ctrmon", unit


def test_man_pages(dest):
    for page in ("man1/ctrmonctl.1", "man7/ctrmon-api.7", "man8/ctrmon.8"):
        path = os.path.join(dest, "usr", "share", "man", page)
        assert os.path.isfile(path) and os.path.getsize(path) > 0, path
        with open(path) as f:
            assert f.read().lstrip().startswith((".", "'\\\"")), f"{path} is not roff"


def test_bash_completion_completes_commands_and_options(dest):
    cdir = (_pkg_var("bash-completion", "completionsdir", "datadir=/usr/share")
            or "/usr/share/bash-completion/completions")
    path = os.path.join(dest, cdir.lstrip("/"), "ctrmonctl")
    assert os.path.isfile(path), path

    def complete(line):
        script = f"""
source '{path}'
line='{line}'
read -ra COMP_WORDS <<<"$line"
[[ $line == *" " ]] && COMP_WORDS+=("")
COMP_LINE=$line; COMP_POINT=${{#line}}; COMP_CWORD=$((${{#COMP_WORDS[@]}} - 1))
_ctrmonctl
printf '%s\\n' "${{COMPREPLY[@]}}"
"""
        return set(_run(["bash", "--norc", "-c", script]).split())

    assert {"status", "ps", "wait", "kill", "exec", "attach", "logs", "run"} <= complete("ctrmonctl ")
    assert complete("ctrmonctl --j") == {"--json"}
    assert {"-s", "--signal", "--all"} <= complete("ctrmonctl -b /x kill -")
    assert "TERM" in complete("ctrmonctl kill -s TE")
    assert complete("ctrmonctl run --r") == {"--runtime", "--runtime-arg"}
    assert {"--follow", "--tail"} <= complete("ctrmonctl logs --")


@pytest.fixture
def work():
    d = tempfile.mkdtemp(prefix="ctrmon-inst-run-", dir="/tmp")
    yield d
    shutil.rmtree(d, ignore_errors=True)


def _wait_for(fn, timeout, what):
    deadline = time.monotonic() + timeout
    while True:
        r = fn()
        if r:
            return r
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.05)


def test_installed_monitor_runs_a_container(dest, work):
    """D's ctrmonctl starts D's ctrmon (create + start) for a busybox bundle
    under runc with a private state dir; `status` reports it running, the
    monitor process is D's binary, and after a TERM the exit file holds the
    container's status."""
    rootfs = os.path.join(work, "rootfs")
    _run(["sh", MAKE_ROOTFS, rootfs], timeout=120)
    runc_root = os.path.join(work, "runc")
    bundle = Bundle(os.path.join(work, "bundle"), rootfs,
                    ["sh", "-c", "trap 'exit 3' TERM; echo up; "
                                 "while :; do sleep 1 & wait $!; done"])
    cid = f"inst{os.getpid()}"
    env = _ctl_env(dest)
    ctl = os.path.join(dest, CTRMONCTL)
    try:
        out = _run([ctl, "run", "-d", "--runtime", RUNC,
                    "--runtime-arg", f"--root={runc_root}", bundle.path, cid],
                   env=env, timeout=60)
        pid = int(out.split()[-1])
        ppid = int(open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()[1])
        assert os.path.realpath(f"/proc/{ppid}/exe") == os.path.join(dest, CTRMON), \
            f"container {pid}'s parent {ppid} is not the installed monitor"

        st = json.loads(_run([ctl, "-b", bundle.path, "--json", "status"], env=env))
        assert st["state"] == "running", st
        human = _run([ctl, "-b", bundle.path, "status"], env=env)
        assert "running" in human and str(pid) in human, human

        # wait connects before the container dies: the monitor exits with it.
        w = subprocess.Popen([ctl, "-b", bundle.path, "wait"], env=env,
                             stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE)
        time.sleep(0.3)
        _run([ctl, "-b", bundle.path, "kill", "-s", "TERM"], env=env)
        _, err = w.communicate(timeout=30)
        assert w.returncode == 3, err
        exit_file = os.path.join(bundle.path, "exits", cid)
        _wait_for(lambda: os.path.exists(exit_file) and os.path.getsize(exit_file),
                  15, "the exit file")
        with open(exit_file) as f:
            assert f.read().strip() == "3"
    finally:
        subprocess.run([RUNC, f"--root={runc_root}", "kill", cid, "KILL"],
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        subprocess.run([RUNC, f"--root={runc_root}", "delete", "--force", cid],
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        sock = os.path.join(bundle.path, "ctrmon", "api.sock")
        _wait_for(lambda: not os.path.exists(sock), 15, "ctrmon to exit")
