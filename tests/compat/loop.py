"""The loop: COMPAT_LOOP containers (default 50; issue 7 asks for 200,
50 keeps CI time sane) started, logging and stopped in each world; every
monitor must go away without zombies or files left behind."""

import os
from concurrent.futures import ThreadPoolExecutor

from compat import IMAGE, LEAKED_FIFOS, Scenario

WORKERS = 4


def loop_count():
    return int(os.environ.get("COMPAT_LOOP", "50"))


def run_loop(w, o):
    n = loop_count()
    names = [o.name(str(i)) for i in range(n)]

    def start(i):
        rc, out, err = w.podman(
            "run", "-d", "--name", names[i], IMAGE, "sh", "-c",
            f"seq 1 {200 + i} | sed s/^/c{i}-/; echo err{i} >&2; "
            f"trap 'echo bye{i}; exit {i % 100}' TERM; "
            # waiting on a sleep costs no CPU (a usleep loop in each of
            # 2x200 containers forks 8000 times a second); TERM interrupts
            # the wait and runs the trap.
            "sleep 100000 & wait", timeout=120)
        if rc != 0:
            return f"{names[i]}: run rc={rc} {err[:200]!r}"
        w.verify_monitor(names[i], timeout=60)
        want = "".join(f"c{i}-{k}\n" for k in range(1, 201 + i)).encode()
        for _ in range(200):
            if w.podman("logs", names[i])[1] == want:
                return None
        return f"{names[i]}: logs never complete"

    with ThreadPoolExecutor(max_workers=WORKERS) as ex:
        started = [r for r in ex.map(start, range(n)) if r]
    o["start-problems"] = tuple(started)
    rc, out, err = w.podman("stop", "-t", "10", *names, timeout=300)
    o.rc_out_err("stop", (rc, b"", err))
    # not `podman wait NAMES`: podman 4.3 intermittently fails it with "no
    # such exit code (container in state exited)" for a few of many
    # containers with either monitor; the exit codes are read from inspect.
    w.wait_helpers(timeout=120)
    rc, out, err = w.podman("inspect", "--format", "{{.State.ExitCode}}",
                            *names, timeout=120)
    o.rc_out_err("exit-codes", (rc, out, err))

    def check(i):
        rc, out, err = w.podman("logs", names[i], timeout=120)
        want = ("".join(f"c{i}-{k}\n" for k in range(1, 201 + i))
                + f"bye{i}\n").encode()
        if (rc, out, err) != (0, want, f"err{i}\n".encode()):
            return f"{names[i]}: logs rc={rc} out={out[-40:]!r} err={err!r}"
        return None

    with ThreadPoolExecutor(max_workers=WORKERS) as ex:
        bad = [r for r in ex.map(check, range(n)) if r]
    o["log-problems"] = tuple(bad)
    o["count"] = n


def loop_scenario():
    return Scenario(f"loop: {loop_count()} containers start/log/stop", run_loop,
                    fixes={"files-exited": LEAKED_FIFOS}, timeout=900)
