"""podman --log-driver journald with the monitor under test, as root *inside*
the systemd sandbox (so the monitor's entries reach the sandbox's journald and
`podman logs` reads them back).

    podman_journald_probe.py MONITOR

Uses tests/podman/podmanworld.py for a private podman (own containers.conf,
storage under /var/tmp, short runroot), imports the busybox image, then:
  1. podman run --log-driver journald --name jtest IMAGE sh -c 'echo a; echo b >&2'
  2. podman logs jtest
  3. journalctl CONTAINER_ID_FULL=<jtest's id> -o json
  4. a detached `sleep` container: /proc/<ConmonPid>/exe must be MONITOR
and tears everything down (podman rm -af, system reset -f). Prints one JSON
line; exit 1 only if the world could not be set up.
"""
import json
import os
import subprocess
import sys
import time
import uuid

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "podman"))

import podmanworld  # noqa: E402

# Not podmanworld's per-pid directory: PIDs inside the sandbox are small and
# could meet another session's on the host's shared /var/tmp.
podmanworld.BASE_DIR = f"/var/tmp/ctrmon-pj-{uuid.uuid4().hex[:8]}"


def journal(cid):
    p = subprocess.run(["journalctl", "--no-pager", "--all", "-o", "json",
                        f"CONTAINER_ID_FULL={cid}"],
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=30)
    return [json.loads(line) for line in p.stdout.splitlines() if line.strip()]


def main():
    monitor = sys.argv[1]
    report = {"problems": []}
    world = podmanworld.PodmanWorld(monitor)
    try:
        world.import_image()
        rc, o, e = world.podman("run", "--log-driver", "journald", "--name", "jtest",
                                podmanworld.IMAGE, "sh", "-c", "echo a; echo b >&2")
        report["run"] = {"rc": rc, "stdout": o.decode(), "stderr": e.decode()}
        report["log_driver"] = world.inspect("jtest", "{{.HostConfig.LogConfig.Type}}")
        cid = world.inspect("jtest", "{{.Id}}")
        report["cid"] = cid
        rc, o, e = world.podman("logs", "jtest")
        report["logs"] = {"rc": rc, "stdout": o.decode(), "stderr": e.decode()}
        deadline = time.monotonic() + 10
        entries = journal(cid)
        while len(entries) < 2 and time.monotonic() < deadline:
            time.sleep(0.1)
            entries = journal(cid)
        report["entries"] = entries

        world.ok("run", "-d", "--log-driver", "journald", "--name", "jsleep",
                 podmanworld.IMAGE, "sleep", "30")
        info = world.verify_monitor("jsleep")  # asserts /proc/PID/exe == monitor
        report["monitor_exe"] = os.path.realpath(f"/proc/{info.conmon_pid}/exe")
        with open(f"/proc/{info.conmon_pid}/cmdline", "rb") as f:
            report["monitor_argv"] = [a.decode() for a in f.read().split(b"\0") if a]
        world.ok("rm", "-f", "-t", "0", "jsleep")
    except AssertionError as e:  # podmanworld's failures (PodmanError too)
        report["problems"].append(str(e))
    finally:
        report["problems"] += world.teardown()
        report["base_left"] = os.path.exists(podmanworld.BASE_DIR)
    print(json.dumps(report), flush=True)


if __name__ == "__main__":
    main()
