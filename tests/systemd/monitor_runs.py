"""Run busybox containers with runc under the monitor, as root *inside* the
systemd sandbox, and report what reached the sandbox's journal.

    monitor_runs.py < REQUEST.json     (one JSON line with the report on stdout)

REQUEST: {"monitor": BIN, "rootfs": DIR, "workdir": DIR, "runs": [RUN, ...]}
RUN:     {"cid": CID, "script": "sh -c text", "args": [extra monitor args],
          "logs": [drivers] (default ["journald"]; each becomes -l DRIVER),
          "k8s": bool (adds -l k8s-file:WORK/ctr.log), "runtime": path (default
          runc; a failing fake runtime for the --syslog test), "min_entries": N,
          "journal_match": [journalctl args] (default CONTAINER_ID_FULL=CID)}
Runs start one after another, their journal queries happen at the end. Per
run the report has: monitor_pid and monitor_rc (the foreground process), sync
(the sync pipe's lines), exit_file, stderr (the monitor's), k8s_log (base64,
if asked), entries (`journalctl -o json --all` with journal_match, once at
least min_entries are there and their number stayed the same for 0.3 s, or
after 10 s). Every wait is bounded.
"""
import base64
import json
import os
import select
import subprocess
import sys
import time

RUNC = "/usr/sbin/runc"


def log(msg):
    print(f"monitor_runs: {msg}", file=sys.stderr, flush=True)


def read_lines(fd, want, deadline):
    """Up to WANT lines from FD (the sync pipe) before DEADLINE or EOF."""
    buf = b""
    while buf.count(b"\n") < want:
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
    return [json.loads(line) for line in buf.split(b"\n") if line.strip()]


def make_bundle(bundle, rootfs, script):
    os.makedirs(bundle, exist_ok=True)
    cfg = os.path.join(bundle, "config.json")
    if os.path.exists(cfg):
        os.unlink(cfg)
    subprocess.run([RUNC, "spec", "--bundle", bundle], check=True, timeout=30)
    with open(cfg) as f:
        spec = json.load(f)
    spec["root"] = {"path": rootfs, "readonly": True}
    spec["process"]["terminal"] = False
    spec["process"]["args"] = ["/bin/sh", "-c", script]
    with open(cfg, "w") as f:
        json.dump(spec, f, indent=1)


def journal(match):
    p = subprocess.run(["journalctl", "--no-pager", "--all", "-o", "json", *match],
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=30)
    return [json.loads(line) for line in p.stdout.splitlines() if line.strip()]


def wait_entries(match, min_entries, timeout=10.0):
    deadline = time.monotonic() + timeout
    last, since = None, time.monotonic()
    while True:
        entries = journal(match)
        now = time.monotonic()
        if last is None or len(entries) != len(last):
            last, since = entries, now
        elif len(entries) >= min_entries and now - since >= 0.3:
            return entries
        if now > deadline:
            return entries
        time.sleep(0.1)


def run_one(req, run, index):
    work = os.path.join(os.path.abspath(req["workdir"]), f"run{index}")
    bundle = os.path.join(work, "bundle")
    exits = os.path.join(work, "exits")
    socks = os.path.join(work, "sock")
    runc_root = os.path.join(work, "runc")
    for d in (exits, socks, runc_root):
        os.makedirs(d, exist_ok=True)
    make_bundle(bundle, os.path.abspath(req["rootfs"]), run.get("script", "true"))
    cid = run["cid"]
    runtime = run.get("runtime", RUNC)
    k8s = os.path.join(work, "ctr.log")

    sync_r, sync_w = os.pipe()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("_OCI_", "NOTIFY_SOCKET"))}
    env["_OCI_SYNCPIPE"] = str(sync_w)
    args = [req["monitor"], "--api-version", "1", "-c", cid, "-u", cid,
            "-r", runtime, "-b", bundle, "-p", os.path.join(bundle, "pidfile"),
            *[a for d in run.get("logs", ["journald"]) for a in ("-l", d)], "--exit-dir", exits, "--socket-dir-path", socks,
            "--runtime-arg", f"--root={runc_root}", *run.get("args", [])]
    if run.get("k8s"):
        args += ["-l", f"k8s-file:{k8s}"]
    log("starting " + " ".join(args))
    errpath = os.path.join(work, "monitor.stderr")
    with open(errpath, "wb") as err:
        mon = subprocess.Popen(args, env=env, pass_fds=(sync_w,), cwd=work,
                               stdin=subprocess.DEVNULL, stdout=err, stderr=err)
    os.close(sync_w)
    result = {"cid": cid, "sync": [], "exit_file": None, "monitor_pid": mon.pid}
    try:
        result["monitor_rc"] = mon.wait(timeout=30)  # the foreground parent
        deadline = time.monotonic() + 30
        result["sync"] = read_lines(sync_r, 1, deadline)
        pid = result["sync"][0].get("data", -1) if result["sync"] else -1
        if pid > 0:
            subprocess.run([RUNC, f"--root={runc_root}", "start", cid], check=True, timeout=30)
            exit_file = os.path.join(exits, cid)
            while not os.path.exists(exit_file) and time.monotonic() < deadline:
                time.sleep(0.02)
            time.sleep(0.05)
            if os.path.exists(exit_file):
                with open(exit_file) as f:
                    result["exit_file"] = f.read().strip()
        # EOF on the sync pipe: the daemon closed it (it exits right after).
        result["sync"] += read_lines(sync_r, 1, time.monotonic() + 10)
    finally:
        os.close(sync_r)
        if runtime == RUNC:
            subprocess.run([RUNC, f"--root={runc_root}", "delete", "--force", cid],
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=30)
    with open(errpath, "rb") as f:
        result["stderr"] = f.read().decode(errors="replace")
    if run.get("k8s") and os.path.exists(k8s):
        with open(k8s, "rb") as f:
            result["k8s_log"] = base64.b64encode(f.read()).decode()
    return result


def main():
    req = json.loads(sys.stdin.read())
    results = [run_one(req, run, i) for i, run in enumerate(req["runs"])]
    for run, res in zip(req["runs"], results):
        match = run.get("journal_match") or [f"CONTAINER_ID_FULL={run['cid']}"]
        res["entries"] = wait_entries(match, run.get("min_entries", 1))
    print(json.dumps({"runs": results}), flush=True)


if __name__ == "__main__":
    main()
