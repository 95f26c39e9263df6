"""Run one busybox container with runc under the monitor's journald driver and
print its journal entries. Meant to run as root *inside* the systemd sandbox
(`systemd-sandbox exec NAME python3 journald_probe.py ...`), so that the
monitor's sd_journal_send() reaches the sandbox's journald.

    journald_probe.py --monitor BIN --workdir DIR --rootfs DIR --cid CID --name NAME

The container writes "hello\\n" to stdout and "oops\\n" to stderr. The last
stdout line is JSON: {"container_pid", "exit_file", "entries"} where entries
is `journalctl CONTAINER_ID_FULL=CID -o json` once two entries are there (or
whatever is there after 15 s). Diagnostics go to stderr; exit 1 on a setup
failure. Every wait is bounded.
"""
import argparse
import json
import os
import select
import subprocess
import sys
import time

RUNC = "/usr/sbin/runc"


def log(msg):
    print(f"journald_probe: {msg}", file=sys.stderr, flush=True)


def fail(msg):
    log(msg)
    sys.exit(1)


def read_sync(fd, deadline):
    """First complete line from the sync pipe ({"data": PID}), or None."""
    buf = b""
    while b"\n" not in buf:
        left = deadline - time.monotonic()
        if left <= 0:
            return None
        r, _, _ = select.select([fd], [], [], left)
        if not r:
            return None
        chunk = os.read(fd, 4096)
        if not chunk:
            break
        buf += chunk
    return buf.split(b"\n", 1)[0] or None


def make_bundle(bundle, rootfs):
    os.makedirs(bundle, exist_ok=True)
    subprocess.run([RUNC, "spec", "--bundle", bundle], check=True, timeout=30)
    path = os.path.join(bundle, "config.json")
    with open(path) as f:
        spec = json.load(f)
    spec["root"] = {"path": rootfs, "readonly": True}
    spec["process"]["terminal"] = False
    spec["process"]["args"] = ["/bin/sh", "-c", "printf 'hello\\n'; printf 'oops\\n' >&2"]
    with open(path, "w") as f:
        json.dump(spec, f, indent=1)


def journal_entries(cid):
    p = subprocess.run(["journalctl", "--no-pager", f"CONTAINER_ID_FULL={cid}", "-o", "json"],
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=30)
    return [json.loads(line) for line in p.stdout.splitlines() if line.strip()]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--monitor", required=True)
    ap.add_argument("--workdir", required=True)
    ap.add_argument("--rootfs", required=True)
    ap.add_argument("--cid", required=True)
    ap.add_argument("--name", required=True)
    a = ap.parse_args()

    work = os.path.abspath(a.workdir)
    bundle = os.path.join(work, "bundle")
    exits = os.path.join(work, "exits")
    socks = os.path.join(work, "sock")
    runc_root = os.path.join(work, "runc")
    for d in (exits, socks, runc_root):
        os.makedirs(d, exist_ok=True)
    make_bundle(bundle, os.path.abspath(a.rootfs))

    sync_r, sync_w = os.pipe()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("_OCI_", "NOTIFY_SOCKET"))}
    env["_OCI_SYNCPIPE"] = str(sync_w)
    args = [a.monitor, "--api-version", "1", "-c", a.cid, "-u", a.cid, "-n", a.name,
            "-r", RUNC, "-b", bundle, "-p", os.path.join(bundle, "pidfile"),
            "-l", "journald", "--exit-dir", exits, "--socket-dir-path", socks,
            "--runtime-arg", f"--root={runc_root}"]
    log("starting " + " ".join(args))
    with open(os.path.join(work, "monitor.stderr"), "wb") as err:
        mon = subprocess.Popen(args, env=env, pass_fds=(sync_w,), cwd=work,
                               stdin=subprocess.DEVNULL, stdout=err, stderr=err)
    os.close(sync_w)
    try:
        line = read_sync(sync_r, time.monotonic() + 30)
        if line is None:
            fail("no {\"data\": PID} on the sync pipe within 30 s")
        msg = json.loads(line)
        pid = msg.get("data", -1)
        if pid <= 0:
            fail(f"container creation failed: {line!r}")
        log(f"container pid {pid}")
        subprocess.run([RUNC, f"--root={runc_root}", "start", a.cid], check=True, timeout=30)
        exit_file = os.path.join(exits, a.cid)
        deadline = time.monotonic() + 30
        while not os.path.exists(exit_file):
            if time.monotonic() > deadline:
                fail(f"no exit file {exit_file} within 30 s")
            time.sleep(0.05)
        time.sleep(0.05)  # the monitor writes the file, then renames or closes it
        with open(exit_file) as f:
            exit_status = f.read().strip()
        entries = []
        deadline = time.monotonic() + 15
        while True:
            entries = journal_entries(a.cid)
            if len(entries) >= 2 or time.monotonic() > deadline:
                break
            time.sleep(0.1)
        print(json.dumps({"container_pid": pid, "exit_file": exit_status, "entries": entries}),
              flush=True)
    finally:
        os.close(sync_r)
        subprocess.run([RUNC, f"--root={runc_root}", "delete", "--force", a.cid],
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=30)
        try:
            mon.wait(timeout=10)
        except subprocess.TimeoutExpired:
            mon.kill()
            mon.wait(timeout=10)


if __name__ == "__main__":
    main()
