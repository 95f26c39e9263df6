"""Start one container under the monitor from a plain command (no unit), the
way an engine does, and report what the caller sees. Meant to run *inside*
the systemd sandbox, as root or as the test user (`systemd-sandbox exec` /
`user-exec`), so that --systemd-scope talks to the sandbox's managers.

    scope_probe.py --monitor BIN --bundle DIR --cid CID --workdir DIR
                   [--runc-root DIR] [--sync] [-- MONITOR_ARGS...]

Without --sync the monitor daemonizes (the engine case): the probe waits for
the first line on the sync pipe, reads the daemon's pid from
--conmon-pidfile and exits, leaving the daemon and the container running.
With --sync it also waits (bounded) for the monitor to exit. The only stdout
line is JSON: {"sync": the parsed sync-pipe message or null, "raw": the raw
line, "monitor_pid", "exit_status" (--sync only, else null)}. Exit 1 on a set-up
failure; every wait is bounded.
"""
import argparse
import json
import os
import select
import subprocess
import sys
import time

RUNC = "/usr/sbin/runc"


def read_line(fd, deadline):
    """First line from FD (the sync pipe), or b"" at EOF / on timeout."""
    buf = b""
    while b"\n" not in buf:
        left = deadline - time.monotonic()
        if left <= 0:
            break
        r, _, _ = select.select([fd], [], [], left)
        if not r:
            break
        chunk = os.read(fd, 4096)
        if not chunk:
            break
        buf += chunk
    return buf.split(b"\n", 1)[0]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--monitor", required=True)
    ap.add_argument("--bundle", required=True)
    ap.add_argument("--cid", required=True)
    ap.add_argument("--workdir", required=True)
    ap.add_argument("--runc-root")
    ap.add_argument("--sync", action="store_true")
    ap.add_argument("extra", nargs="*")
    a = ap.parse_args()

    work = os.path.abspath(a.workdir)
    os.makedirs(work, exist_ok=True)
    pidfile = os.path.join(work, "monitor.pid")
    sync_r, sync_w = os.pipe()
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("_OCI_", "NOTIFY_SOCKET", "WATCHDOG_"))}
    env["_OCI_SYNCPIPE"] = str(sync_w)
    args = [a.monitor, "--api-version", "1", "-c", a.cid, "-u", a.cid, "-n", "probe",
            "-r", RUNC, "-b", a.bundle, "-p", os.path.join(work, "pidfile"),
            "-l", "k8s-file:" + os.path.join(work, "ctr.log"),
            "--exit-dir", os.path.join(work, "exits"),
            "--socket-dir-path", os.path.join(work, "sock"),
            "--conmon-pidfile", pidfile]
    for d in ("exits", "sock"):
        os.makedirs(os.path.join(work, d), exist_ok=True)
    if a.runc_root:
        args += ["--runtime-arg", f"--root={a.runc_root}"]
    if a.sync:
        args.append("--sync")
    args += a.extra
    print("scope_probe: " + " ".join(args), file=sys.stderr, flush=True)
    mon = subprocess.Popen(args, env=env, pass_fds=(sync_w,), cwd=work,
                           stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL)
    os.close(sync_w)
    raw = read_line(sync_r, time.monotonic() + 30)
    os.close(sync_r)
    try:
        msg = json.loads(raw) if raw else None
    except ValueError:
        msg = None
    status = None
    monitor_pid = None
    if a.sync:
        monitor_pid = mon.pid
        try:
            status = mon.wait(timeout=30)
        except subprocess.TimeoutExpired:
            print("scope_probe: the monitor did not exit within 30 s", file=sys.stderr)
    else:
        # The parent exits right after forking; the pidfile exists by then.
        mon.wait(timeout=30)
        try:
            with open(pidfile) as f:
                monitor_pid = int(f.read().strip())
        except (OSError, ValueError):
            pass
    print(json.dumps({"sync": msg, "raw": raw.decode(errors="replace"),
                      "monitor_pid": monitor_pid, "exit_status": status}), flush=True)


if __name__ == "__main__":
    main()
