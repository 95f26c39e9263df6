"""The compat scenarios of the journald log driver, run *inside* the systemd
sandbox (tests/lib/systemd-sandbox) so that both monitors log to a real
journald and `podman logs` reads the entries back.  test_journald.py starts
it:

    journald_probe.py rootful|rootless CTRMON

It builds a pair of private podman worlds (conmon and CTRMON, as
conftest.py's `pair` and `rootless_pair` do), runs each scenario through
compat.Pair.run unchanged, tears the worlds down and prints one JSON line:
the table rows, both worlds' observations (repr'd) and the tear-down
problems.  Exit 1 only if the worlds could not be set up.

PIDs inside the sandbox are small and the sandbox shares /var/tmp with the
host: the worlds live under directories named by a random id, never by PID.
"""

import json
import os
import subprocess
import sys
import time
import uuid
from concurrent.futures import ThreadPoolExecutor

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import compat  # noqa: E402
import podmanworld  # noqa: E402  (the module compat imported)

TAG = "compat-jtag"
# What a user's container writes: stdout and stderr lines, a line over
# 16 KiB (split into partial entries), control and non-UTF-8 bytes with a
# NUL, and a last line without newline on each stream.
SCRIPT = ("echo out1; echo err1 >&2; head -c 20000 /dev/zero | tr '\\0' L; echo; "
          "printf 'bin \\001\\033[1m\\377\\376\\000z end\\n'; echo out2; "
          "printf 'err-no-newline' >&2; printf 'out-no-newline'")
# (PRIORITY, bytes that stream's entries end with) once the monitor flushed
LAST = {"6": b"out-no-newline", "3": b"err-no-newline"}
PLAIN = "echo plain; echo plain-err >&2"
# A stdout line starting with a syslog prefix: conmon 2.1.6 logs it as
# written (PRIORITY=6); conmon 2.2.0 takes PRIORITY from it (spec 6.4).
PREFIX = "echo before; printf '<5>notice on stdout\\n'; echo after; echo err >&2"
# The fields of an entry that are the same for every entry of a container.
FIXED = ("CONTAINER_NAME", "CONTAINER_ID", "CONTAINER_ID_FULL", "CONTAINER_TAG",
         "SYSLOG_IDENTIFIER")


def gated(w, o, key, args, script, name):
    """`podman run --name NAME ARGS IMAGE sh -c SCRIPT`, held at a gate
    until the monitor is verified (/proc/<ConmonPid>/exe); records KEY."""
    g = w.gate()
    p = w.popen("run", "--name", name, *g.volume, *args, compat.IMAGE, "sh", "-c",
                g.wait_cmd("go", script))
    try:
        w.verify_monitor(name)
        g.open()
        out, err = p.communicate(timeout=90)
    finally:
        if p.poll() is None:
            p.kill()
            p.communicate()
    o.rc_out_err(key, (p.returncode, out, err))


def field_bytes(entry, name):
    v = entry.get(name)
    if isinstance(v, list):  # journalctl's form of non-UTF-8 or binary values
        return bytes(v)
    return None if v is None else v.encode()


def journal(cid):
    p = subprocess.run(["journalctl", "--no-pager", "--all", "-o", "json",
                        f"CONTAINER_ID_FULL={cid}"], stdin=subprocess.DEVNULL,
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=30)
    entries = [json.loads(line) for line in p.stdout.splitlines() if line.strip()]
    return sorted(entries, key=lambda e: int(dict(
        kv.split("=", 1) for kv in e["__CURSOR"].split(";"))["i"], 16))


def lines_by_priority(entries):
    """{PRIORITY: (line, ...)}: each stream's entries joined back into the
    lines a user wrote (CONTAINER_PARTIAL_MESSAGE=true pieces joined to the
    next piece).  Where a monitor cuts partial entries depends on its reads,
    so the cuts are not compared, only that a long line was cut."""
    out, pending = {}, {}
    for e in entries:
        prio = e.get("PRIORITY")
        pending[prio] = pending.get(prio, b"") + (field_bytes(e, "MESSAGE") or b"")
        if e.get("CONTAINER_PARTIAL_MESSAGE") != "true":
            out.setdefault(prio, []).append(pending.pop(prio))
    for prio, rest in pending.items():
        out.setdefault(prio, []).append(rest + b"<last entry flagged partial>")
    # compat.show() wants tuples of str
    return {p: tuple(str(compat.blob(line)) for line in v) for p, v in out.items()}


def record_journal(w, o, key, name, want_last):
    """The entries of container NAME as a user sees them in journalctl,
    ids replaced by <id> and <id12>."""
    cid = w.inspect(name, "{{.Id}}")

    def flushed():
        e = journal(cid)
        text = {p: b"".join(field_bytes(x, "MESSAGE") or b"" for x in e
                            if x.get("PRIORITY") == p) for p in want_last}
        return e if all(text[p].endswith(b) for p, b in want_last.items()) else None
    try:
        entries = compat.wait_until(flushed, 20, interval=0.1,
                                    what=f"journal entries of {name}")
    except AssertionError as e:
        o[key + ".wait"] = str(e)
        entries = journal(cid)

    def norm(v):
        return v.replace(cid, "<id>").replace(cid[:12], "<id12>") if isinstance(v, str) else v
    o[key + ".fields"] = tuple(sorted({k for e in entries for k in e
                                       if not k.startswith("_")}))
    o[key + ".fixed"] = tuple(sorted({repr(tuple(norm(e.get(k)) for k in FIXED))
                                      for e in entries}))
    o[key + ".partial-values"] = tuple(sorted({repr(e.get("CONTAINER_PARTIAL_MESSAGE"))
                                               for e in entries}))
    o[key + ".transport"] = tuple(sorted({e.get("_TRANSPORT", "") for e in entries}))
    for k in sorted({k for e in entries for k in e if k.startswith("CONTAINER_LOG")}):
        o[f"{key}.{k}"] = tuple(sorted({repr(norm(e.get(k))) for e in entries}))
    for prio, lines in lines_by_priority(entries).items():
        o[f"{key}.priority-{prio}"] = lines
    # a line over 16 KiB must arrive in several entries, flagged partial
    o[key + ".long-line-split"] = sum(
        1 for e in entries if (field_bytes(e, "MESSAGE") or b"").startswith(b"L")) > 1


def s_journald(w, o):
    n = o.name()
    gated(w, o, "run", ["--log-driver", "journald", "--log-opt", f"tag={TAG}"],
          SCRIPT, n)
    o.rc_out_err("logs", w.podman("logs", n, timeout=90))
    record_journal(w, o, "journal", n, LAST)
    o["log-config"] = w.inspect(n, "{{.HostConfig.LogConfig.Type}} "
                                   "{{.HostConfig.LogConfig.Tag}}")
    n2 = o.name("plain")
    gated(w, o, "run-plain", ["--log-driver", "journald"], PLAIN, n2)
    o.rc_out_err("logs-plain", w.podman("logs", n2, timeout=90))
    record_journal(w, o, "journal-plain", n2,
                   {"6": b"plain\n", "3": b"plain-err\n"})


def s_prefix(w, o):
    n = o.name()
    gated(w, o, "run", ["--log-driver", "journald"], PREFIX, n)
    o.rc_out_err("logs", w.podman("logs", n, timeout=90))
    record_journal(w, o, "journal", n, {"6": b"after\n", "3": b"err\n"})


SCENARIOS = [
    compat.Scenario("log driver journald", s_journald,
                    fixes={"files-exited": compat.LEAKED_FIFOS}),
    compat.Scenario("log driver journald: <5> prefix line", s_prefix,
                    fixes={"files-exited": compat.LEAKED_FIFOS}),
]


def make_pair(mode, ctrmon):
    if mode == "rootless":
        import rootless
        rootless.BASE = f"/var/tmp/ctrmon-cj-rl-{uuid.uuid4().hex[:8]}"
        make = rootless.new_world
    else:
        make = compat.new_world
    with ThreadPoolExecutor(max_workers=2) as ex:
        futures = [ex.submit(make, m, t) for m, t in ((compat.CONMON, "c"), (ctrmon, "m"))]
        worlds, errors = [], []
        for f in futures:
            try:
                worlds.append(f.result())
            except Exception as e:
                errors.append(e)
    if errors:
        for w in worlds:
            w.teardown()
        raise errors[0]
    return compat.Pair(worlds[0], worlds[1], "" if mode == "rootful" else mode)


def main():
    mode, ctrmon = sys.argv[1], sys.argv[2]
    podmanworld.BASE_DIR = f"/var/tmp/ctrmon-cj-{uuid.uuid4().hex[:8]}"
    report = {"problems": []}
    t0 = time.monotonic()
    try:
        pair = make_pair(mode, ctrmon)
    except Exception as e:
        report["problems"].append(f"world set-up: {type(e).__name__}: {e}")
        print(json.dumps(report), flush=True)
        sys.exit(1)
    report["setup_seconds"] = time.monotonic() - t0
    try:
        report["rows"], report["obs"] = [], []
        for sc in SCENARIOS:
            rows = []
            _, _, a, b = pair.run(sc, rows)
            report["rows"].append(list(rows[0]))
            report["obs"].append({"conmon": {k: repr(v) for k, v in a.items()},
                                  "ctrmon": {k: repr(v) for k, v in b.items()}})
    finally:
        for w in (pair.ref, pair.mine):
            report["problems"] += w.teardown()
        if mode == "rootless":
            import rootless
            rootless.kill_leftovers()
            report["base_left"] = os.path.exists(rootless.BASE)
        report["base_left"] = report.get("base_left") or os.path.exists(podmanworld.BASE_DIR)
    print(json.dumps(report), flush=True)


if __name__ == "__main__":
    main()
