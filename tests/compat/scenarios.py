"""The podman scenarios run against both monitors, most valuable first.

Each records what a user sees into obs; the harness (compat.py) compares.
A scenario must prove at least once which monitor ran (verify_monitor on a
running container); gated() does that for `podman run` in the foreground.
"""

import os
import re
import subprocess
import time

from compat import (IMAGE, LEAKED_FIFOS, blob, podman_version, scenario,
                    stop_if_running, wait_until)

STATE = "{{.State.Status}} {{.State.ExitCode}} {{.State.OOMKilled}}"


def gated(w, o, key, args, script, name=None, input=None, timeout=90):
    """`podman run --name NAME ARGS IMAGE sh -c SCRIPT` held at a gate
    until the monitor is verified; records KEY.rc/.out/.err."""
    g = w.gate()
    name = name or o.name()
    p = w.popen("run", "--name", name, *g.volume, *args, IMAGE, "sh", "-c",
                g.wait_cmd("go", script),
                stdin=subprocess.PIPE if input is not None else subprocess.DEVNULL)
    try:
        w.verify_monitor(name)
        g.open()
        out, err = p.communicate(input=input, timeout=timeout)
    finally:
        stop_if_running(p)
    o.rc_out_err(key, (p.returncode, out, err))
    return name


def run_d_gated(w, o, name, script, args=()):
    """run -d of sh -c SCRIPT held at a gate until the monitor is verified
    (a short-lived container could exit before verify_monitor sees it)."""
    g = w.gate()
    rc = run_d(w, o, name, "sh", "-c", g.wait_cmd("go", script),
               args=[*g.volume, *args])
    g.open()
    return rc


def run_d(w, o, name, *cmd, args=()):
    rc, out, err = w.podman("run", "-d", "--name", name, *args, IMAGE, *cmd)
    o[f"run-d {name}.rc"] = rc
    o[f"run-d {name}.err"] = re.sub(rb'time="[^"]*"', b'time="<t>"', err)
    if rc == 0:
        w.verify_monitor(name)
    return rc


def state(w, o, name, extra=""):
    """The container's state. podman 5 returns from `run`, `stop` and `wait`
    once it has the exit code, and its cleanup process (the exit command)
    moves the state from "stopped" to "exited" moments later: seen right
    after `podman run`, with conmon 2.1.12 as with ctrmon. So under podman 5
    a "stopped" state is read again until it changes (10 s at most); how
    many reads it took is a note, not compared."""
    def read():
        return w.podman("inspect", "--type", "container", "--format",
                        STATE + extra, name)
    rc, out, err = read()
    if rc == 0 and out.startswith(b"stopped ") and podman_version()[0] >= 5:
        reads = 1
        deadline = time.monotonic() + 10
        while rc == 0 and out.startswith(b"stopped ") and time.monotonic() < deadline:
            time.sleep(0.05)
            rc, out, err = read()
            reads += 1
        o.notes[f"state {name} reads until not stopped"] = reads
    o[f"state {name}"] = out.decode().strip() if rc == 0 else f"rc={rc} {err!r}"


def logs(w, o, key, name, *args):
    o.rc_out_err(key, w.podman("logs", *args, name, timeout=90))


def wait_logs(w, name, want, timeout=20):
    wait_until(lambda: w.podman("logs", name)[1] == want, timeout,
               what=f"logs of {name} == {want!r}")


# -- run / exit codes -------------------------------------------------------

@scenario("run --rm stdout/stderr", rootless=True)
def s_run_rm(w, o):
    n = gated(w, o, "run", ["--rm"],
              "echo out; echo err >&2; printf 'no-nl-out'; printf 'no-nl-err' >&2")
    o["exists-after"] = w.podman("container", "exists", n)[0]


def exit_code(code):
    def f(w, o):
        n = gated(w, o, "run", [], f"echo bye; exit {code}")
        state(w, o, n)
        o.rc_out_err("wait", w.podman("wait", n))
    return f


for _code in (0, 3, 42):
    scenario(f"exit code {_code}", fixes={"files-exited": LEAKED_FIFOS},
             rootless=True)(exit_code(_code))


@scenario("kill -s KILL: 137", fixes={"files-exited": LEAKED_FIFOS},
          rootless=True)
def s_kill(w, o):
    n = o.name()
    run_d(w, o, n, "sleep", "1000")
    o.rc_out_err("kill", w.podman("kill", "-s", "KILL", n))
    o.rc_out_err("wait", w.podman("wait", n))
    state(w, o, n)


@scenario("stop --init sleep: 143", fixes={"files-exited": LEAKED_FIFOS},
          rootless=True)
def s_stop_143(w, o):
    n = o.name()
    run_d(w, o, n, "sleep", "1000", args=["--init"])
    o.rc_out_err("stop", w.podman("stop", "-t", "10", n))
    o.rc_out_err("wait", w.podman("wait", n))
    state(w, o, n)


@scenario("stop: TERM trapped, exit 3",
          fixes={"files-exited": LEAKED_FIFOS}, rootless=True)
def s_stop_trap(w, o):
    n = o.name()
    run_d(w, o, n, "sh", "-c", "trap 'echo term; exit 3' TERM; echo ready; "
          "while :; do usleep 50000; done")
    wait_logs(w, n, b"ready\n")
    o.rc_out_err("stop", w.podman("stop", "-t", "10", n))
    o.rc_out_err("wait", w.podman("wait", n))
    state(w, o, n)
    logs(w, o, "logs", n)


@scenario("stop: TERM ignored, killed after -t 1",
          fixes={"files-exited": LEAKED_FIFOS}, rootless=True)
def s_stop_ignored(w, o):
    n = o.name()
    run_d(w, o, n, "sh", "-c", "trap '' TERM; echo ready; "
          "while :; do usleep 50000; done")
    wait_logs(w, n, b"ready\n")
    o.rc_out_err("stop", w.podman("stop", "-t", "1", n))
    o.rc_out_err("wait", w.podman("wait", n))
    state(w, o, n)


@scenario("signal death: SEGV under --init",
          fixes={"files-exited": LEAKED_FIFOS}, rootless=True)
def s_segv(w, o):
    n = gated(w, o, "run", ["--init"], "echo dying; kill -SEGV $$")
    state(w, o, n)


@scenario("kill -s HUP under --init: 129",
          fixes={"files-exited": LEAKED_FIFOS}, rootless=True)
def s_hup(w, o):
    n = o.name()
    run_d(w, o, n, "sleep", "1000", args=["--init"])
    o.rc_out_err("kill", w.podman("kill", "-s", "HUP", n))
    o.rc_out_err("wait", w.podman("wait", n))
    state(w, o, n)


# -- logs ---------------------------------------------------------------------

@scenario("run -d + logs: 20000 lines, stdout and stderr",
          fixes={"files-exited": LEAKED_FIFOS}, rootless=True)
def s_logs_many(w, o):
    n = o.name()
    run_d_gated(w, o, n, "seq 1 20000; seq 1 500 | sed s/^/e/ >&2")
    o.rc_out_err("wait", w.podman("wait", n))
    logs(w, o, "logs", n)
    state(w, o, n)


@scenario("1 MiB line: run and logs",
          fixes={"files-exited": LEAKED_FIFOS}, rootless=True)
def s_big_line(w, o):
    script = "head -c 1048576 /dev/zero | tr '\\0' a; echo; echo after"
    n = gated(w, o, "run", [], script)
    logs(w, o, "logs", n)


@scenario("binary bytes, no final newline",
          fixes={"files-exited": LEAKED_FIFOS}, rootless=True)
def s_binary(w, o):
    script = ("printf 'a\\000b\\001\\377\\r\\n\\033[1mbold\\tx'; "
              "printf 'e\\000\\376' >&2")
    n = gated(w, o, "run", [], script)
    logs(w, o, "logs", n)
    n2 = o.name("d")
    run_d_gated(w, o, n2, script)
    w.podman("wait", n2)
    logs(w, o, "logs-d", n2)


@scenario("logs --tail 5 and --since",
          fixes={"files-exited": LEAKED_FIFOS}, rootless=True)
def s_tail_since(w, o):
    g = w.gate()
    n = o.name()
    run_d(w, o, n, "sh", "-c",
          "seq 1 20 | sed s/^/early/; " + g.wait_cmd("go", "seq 1 3 | sed s/^/late/"),
          args=g.volume)
    wait_until(lambda: w.podman("logs", n)[1].endswith(b"early20\n"), 20,
               what="early lines")
    time.sleep(1.1)
    since = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime()) + "Z"
    time.sleep(1.1)
    g.open()
    o.rc_out_err("wait", w.podman("wait", n))
    logs(w, o, "tail5", n, "--tail", "5")
    logs(w, o, "tail0", n, "--tail", "0")
    logs(w, o, "since", n, "--since", since)


@scenario("log driver none", fixes={"files-exited": LEAKED_FIFOS}, rootless=True)
def s_log_none(w, o):
    n = gated(w, o, "run", ["--log-driver", "none"], "echo out; echo err >&2")
    logs(w, o, "logs", n)


def k8s_streams(data):
    """{stream: lines} of a k8s-file log: each record is '<ts> stream P|F
    text'; P records are joined to the next record of the same stream.
    Where a monitor splits partial records and how it interleaves stdout
    and stderr records depends on read timing, so that is not compared."""
    out = {}
    pending = {}
    for line in data.split(b"\n"):
        if not line:
            continue
        _, stream, tag, text = (line.split(b" ", 3) + [b""])[:4]
        pending[stream] = pending.get(stream, b"") + text
        if tag == b"F":
            out.setdefault(stream.decode(), []).append(pending.pop(stream))
    for stream, rest in pending.items():
        out.setdefault(stream.decode(), []).append(rest + b"<partial>")
    return {k: blob(b"\n".join(v)) for k, v in out.items()}


@scenario("log driver k8s-file with path, file format",
          fixes={"files-exited": LEAKED_FIFOS}, rootless=True)
def s_k8s_file(w, o):
    path = os.path.join(w.scratch, "k8s.log")
    n = gated(w, o, "run", ["--log-driver", "k8s-file", "--log-opt", f"path={path}"],
              "echo out; echo err >&2; printf partial; "
              "head -c 20000 /dev/zero | tr '\\0' b; echo")
    logs(w, o, "logs", n)
    with open(path, "rb") as f:
        for stream, text in k8s_streams(f.read()).items():
            o[f"file.{stream}"] = text


@scenario("log rotation: --log-opt max-size=10k",
          fixes={"files-exited": LEAKED_FIFOS}, rootless=True)
def s_rotation(w, o):
    n = o.name()
    run_d_gated(w, o, n, "seq 1 30000 | sed s/^/line-/; echo last",
                args=["--log-opt", "max-size=10k"])
    o.rc_out_err("wait", w.podman("wait", n))
    rc, out, err = w.podman("logs", n)
    o["logs.rc"] = rc
    o["logs.err"] = err
    # where the truncation falls depends on write chunking; what a user
    # must see is a log no bigger than the limit that ends with the end.
    o["logs.ends-with-last"] = out.endswith(b"line-30000\nlast\n")
    o["logs.lines-well-formed"] = all(
        l.startswith(b"line-") or l == b"last" for l in out.split(b"\n")[1:-1])
    o["logs.below-limit"] = len(out) <= 10 * 1024
    logpath = w.inspect(n, "{{.HostConfig.LogConfig.Path}}")
    o["log-dir"] = tuple(sorted(os.listdir(os.path.dirname(logpath))))


# -- start / exec / lifecycle -----------------------------------------------

@scenario("create + start --attach",
          fixes={"files-exited": LEAKED_FIFOS}, rootless=True)
def s_start_attach(w, o):
    n = o.name()
    g = w.gate()
    o.rc_out_err("create", (*w.podman("create", "--name", n, *g.volume, IMAGE,
                                      "sh", "-c", g.wait_cmd(
                                          "go", "echo out; echo err >&2; exit 5"))[:1],
                            b"", b""))
    p = w.popen("start", "--attach", n)
    try:
        w.verify_monitor(n)
        g.open()
        out, err = p.communicate(timeout=60)
    finally:
        stop_if_running(p)
    o.rc_out_err("start", (p.returncode, out, err))
    state(w, o, n)


@scenario("exec: stdout, stderr, exit code, -i stdin",
          fixes={"files-exited": LEAKED_FIFOS}, rootless=True)
def s_exec(w, o):
    n = o.name()
    run_d(w, o, n, "sleep", "1000")
    o.rc_out_err("exec", w.podman("exec", n, "sh", "-c",
                                  "echo out; echo err >&2; exit 7"))
    o.rc_out_err("exec-i", w.podman("exec", "-i", n, "sh", "-c",
                                    "cat; echo done", input=b"in\x00put\nmore"))
    o.rc_out_err("exec-big", w.podman("exec", n, "seq", "1", "50000"))
    o.rc_out_err("exec-missing", w.podman("exec", n, "/nonexistent"))
    o.rc_out_err("exec-kill", w.podman("exec", n, "sh", "-c", "kill -KILL $$"))
    o.rc_out_err("stop", w.podman("stop", "-t", "0", n))
    state(w, o, n)


MNT_NS = re.compile(rb"mnt:\[\d+\]")


@scenario("exec enters the container: rootfs and mount namespace",
          fixes={"files-exited": LEAKED_FIFOS}, rootless=True)
def s_exec_enters(w, o):
    """podman exec must run in the container, not next to it (seen with
    podman 5 under a plain chroot, with either monitor): the exec'd process
    reads a file only the container's rootfs holds, does not see one only
    the test's own root holds, and has the container init's mount
    namespace.  Asserted as well as compared: two monitors that both ran
    the exec in the wrong place would compare equal."""
    outside = os.path.join(w.scratch, "only-outside")
    with open(outside, "w") as f:
        f.write("outside\n")
    n = o.name()
    g = w.gate()
    run_d(w, o, n, "sh", "-c",
          "echo inside > /only-inside; echo ready; sleep 1000", args=g.volume)
    wait_logs(w, n, b"ready\n")
    ctr_ns = os.readlink(f"/proc/{w.monitors[-1].ctr_pid}/ns/mnt").encode()
    assert ctr_ns != os.readlink("/proc/self/ns/mnt").encode(), (
        "the container shares the test's mount namespace")
    probe = (f"cat /only-inside; test -e {outside}; echo outside:$?; "
             "readlink /proc/self/ns/mnt")
    want = b"inside\noutside:1\n" + ctr_ns + b"\n"
    wrong = []

    def record(key, rc, out, err):
        out = out.replace(b"\r\n", b"\n")
        if (rc, out) != (0, want):
            wrong.append(f"{key}: rc={rc} out={out!r} err={err[-200:]!r}")
        out = MNT_NS.sub(lambda m: b"<container's>" if m.group(0) == ctr_ns
                         else b"<another>", out)
        o.rc_out_err(key, (rc, out, err))

    # held at the gate until the exec's monitor is known to be the world's
    p = w.popen("exec", n, "sh", "-c", probe + "; " + g.wait_cmd("exec-go"))
    try:
        mons = wait_until(lambda: w.exec_monitors(n), 30, what="the exec monitor")
        o["exec monitor is the world's"] = [e == w.monitor_real for _, e in mons]
        g.open("exec-go")
        out, err = p.communicate(timeout=60)
    finally:
        stop_if_running(p)
    record("exec", p.returncode, out, err)
    for key, args, stdin in (("exec-t", ["-t"], None),
                             ("exec-i", ["-i"], b"")):
        record(key, *w.podman("exec", *args, n, "sh", "-c", probe, input=stdin))
    # a detached exec writes what it saw into the container's /tmp
    rc, out, err = w.podman("exec", "-d", n, "sh", "-c", f"({probe}) > /tmp/probe-d")
    o["exec-d.rc"] = rc
    wait_until(lambda: w.podman("exec", n, "cat", "/tmp/probe-d")[1].count(b"\n") >= 3,
               30, what="the detached exec's report")
    record("exec-d", *w.podman("exec", n, "cat", "/tmp/probe-d"))
    o.rc_out_err("stop", w.podman("stop", "-t", "0", n))
    assert not wrong, "podman exec did not run in the container: " + "; ".join(wrong)
    assert o["exec monitor is the world's"] == [True], o["exec monitor is the world's"]


@scenario("restart, then stop and wait",
          fixes={"files-exited": LEAKED_FIFOS}, rootless=True)
def s_restart(w, o):
    n = o.name()
    run_d(w, o, n, "sh", "-c", "echo started; trap 'exit 9' TERM; "
          "while :; do usleep 50000; done")
    wait_logs(w, n, b"started\n")
    o.rc_out_err("restart", w.podman("restart", "-t", "5", n))
    w.verify_monitor(n)
    wait_logs(w, n, b"started\nstarted\n")
    o.rc_out_err("stop", w.podman("stop", "-t", "5", n))
    o.rc_out_err("wait", w.podman("wait", n))
    state(w, o, n, " {{.RestartCount}}")
    logs(w, o, "logs", n)


@scenario("restart policy on-failure:2",
          fixes={"files-exited": LEAKED_FIFOS}, rootless=True)
def s_restart_policy(w, o):
    n = o.name()
    g = w.gate()
    run_d(w, o, n, "sh", "-c", g.wait_cmd("go", "echo run; exit 5"),
          args=["--restart", "on-failure:2", *g.volume])
    g.open()

    def settled():
        rc, out, _ = w.podman("inspect", "--format",
                              "{{.State.Status}} {{.RestartCount}}", n)
        return rc == 0 and out.decode().split() == ["exited", "2"]
    try:
        wait_until(settled, 30, interval=0.2, what="two restarts")
    except AssertionError:
        pass
    time.sleep(1)   # a third restart would show up now
    state(w, o, n, " {{.RestartCount}}")
    logs(w, o, "logs", n)


@scenario("run -d --rm: gone after exit", rootless=True)
def s_run_d_rm(w, o):
    g = w.gate()
    n = o.name()
    run_d(w, o, n, "sh", "-c", g.wait_cmd("go", "exit 4"), args=["--rm", *g.volume])
    g.open()
    wait_until(lambda: w.podman("container", "exists", n)[0] == 1, 30,
               what=f"{n} removed")
    o["exists-after"] = 1


@scenario("podman top", fixes={"files-exited": LEAKED_FIFOS}, rootless=True)
def s_top(w, o):
    n = o.name()
    run_d(w, o, n, "sleep", "1000")
    o.rc_out_err("top", w.podman("top", n, "pid", "args"))
    o.rc_out_err("stop", w.podman("stop", "-t", "0", n))


@scenario("wait --condition=stopped",
          fixes={"files-exited": LEAKED_FIFOS}, rootless=True)
def s_wait_cond(w, o):
    n = o.name()
    run_d(w, o, n, "sh", "-c", "trap 'exit 6' TERM; while :; do usleep 50000; done")
    p = w.popen("wait", "--condition=stopped", n)
    time.sleep(0.5)
    o.rc_out_err("stop", w.podman("stop", "-t", "5", n))
    out, err = p.communicate(timeout=60)
    o.rc_out_err("wait-stopped", (p.returncode, out, err))
    state(w, o, n)


@scenario("healthcheck run by hand",
          fixes={"files-exited": LEAKED_FIFOS}, rootless=True)
def s_health(w, o):
    n = o.name()
    run_d(w, o, n, "sleep", "1000",
          args=["--health-cmd", "test -e /tmp/ok", "--health-interval", "disable"])
    o.rc_out_err("hc-1", w.podman("healthcheck", "run", n))
    o.rc_out_err("touch", w.podman("exec", n, "touch", "/tmp/ok"))
    o.rc_out_err("hc-2", w.podman("healthcheck", "run", n))
    o["health"] = w.inspect(n, "{{.State.Health.Status}} {{.State.Health.FailingStreak}}")
    o.rc_out_err("stop", w.podman("stop", "-t", "0", n))


@scenario("pod with infra container", fixes={"files-exited": LEAKED_FIFOS},
          pods=True, rootless=True)
def s_pod(w, o):
    p = o.name("pod")
    rc, out, err = w.podman("pod", "create", "--name", p, timeout=120)
    o["pod-create.rc"] = rc
    o["pod-create.err"] = err
    n = o.name()
    run_d(w, o, n, "sh", "-c", "echo in-pod; sleep 1000", args=["--pod", p])
    o["pod-state"] = w.podman("pod", "inspect", "--format", "{{.State}}", p)[1]
    wait_logs(w, n, b"in-pod\n")
    o.rc_out_err("pod-stop", (w.podman("pod", "stop", "-t", "0", p)[0], b"", b""))
    state(w, o, n)
    o.rc_out_err("pod-rm", (w.podman("pod", "rm", "-f", "-t", "0", p)[0], b"", b""))
    o["exists-after"] = w.podman("container", "exists", n)[0]


@scenario("--preserve-fds 1", fixes={"files-exited": LEAKED_FIFOS}, rootless=True)
def s_preserve_fds(w, o):
    data = b"fd3 data\x00\xff\n"
    src = os.path.join(w.scratch, "fd3")
    with open(src, "wb") as f:
        f.write(data)
    os.chmod(src, 0o644)
    g = w.gate()
    n = o.name()
    argv = ["/bin/bash", "-c", f"exec 3<'{src}'; exec \"$@\"", "bash",
            *w.argv("run", "--name", n, "--preserve-fds", "1", *g.volume, IMAGE,
                    "sh", "-c", g.wait_cmd("go", "cat <&3; echo end"))]
    p = subprocess.Popen(argv, env=w.env, stdin=subprocess.DEVNULL,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        w.verify_monitor(n)
        g.open()
        out, err = p.communicate(timeout=60)
    finally:
        stop_if_running(p)
    o.rc_out_err("run", (p.returncode, out, err))
