"""The compat harness: run one podman scenario against two private podman
worlds, one whose monitor is the reference conmon and one whose monitor is
ctrmon, and compare what a user sees.

A scenario is a function f(world, obs) that drives podman and records
observations (exit codes, stdout/stderr bytes, `podman logs`, inspect
State fields) in obs under its own keys.  The harness adds, per world:

  files-exited  the file listing of the world's runroot and tmp_dir once
                the scenario's containers have exited (before removal),
                container/pod/exec ids replaced by names
  files-removed the same listing after `podman rm -af`
  cleanup       problems found after removal: a live monitor of this world,
                a zombie child of a monitor, a container init left behind,
                a scenario that never proved which monitor ran

Every key must be equal between the two monitors, except keys a scenario
declares as a documented ctrmon fix (Fix: the value ctrmon must show and
why).  ctrmon's cleanup must be clean whatever conmon did.
"""

import hashlib
import os
import re
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "podman"))

from podmanworld import (IMAGE, PodmanWorld, podman_version,  # noqa: E402,F401
                         proc_stat, wait_until, zombie_children)

CONMON = "/usr/bin/conmon"
HEX64 = re.compile(rb"[0-9a-f]{64}")


def blob(data):
    """A compact, exact stand-in for big byte strings in observations."""
    if len(data) <= 400:
        return data
    h = hashlib.sha256(data).hexdigest()[:16]
    return f"{len(data)}B sha256:{h} head={data[:40]!r} tail={data[-20:]!r}"


class Fix:
    """A documented difference: ctrmon must show `ctrmon` (a value, or a
    function of conmon's value) for the key, because of `reason`. `also`:
    other values ctrmon may show for a reason outside the monitors (a race
    of the runtime's), named in `reason`."""

    def __init__(self, ctrmon, reason, also=()):
        self.ctrmon = ctrmon
        self.reason = reason
        self.also = tuple(also)

    def expected(self, conmon_value):
        return self.ctrmon(conmon_value) if callable(self.ctrmon) else self.ctrmon

    def accepts(self, conmon_value, value):
        return value == self.expected(conmon_value) or value in self.also


def stop_if_running(p):
    """Kill a podman client the scenario is done with (a failed wait, an
    exception) and collect it, so it leaves no zombie behind."""
    if p.poll() is None:
        p.kill()
        p.communicate()


def without(*names):
    """Fix value: conmon's file listing minus files with these base names."""
    def f(listing):
        if not isinstance(listing, tuple):
            return listing
        return tuple(p for p in listing
                     if os.path.basename(p.rstrip("/")) not in names)
    return f


LEAKED_FIFOS = Fix(without("ctl", "winsz"),
                   "conmon leaves ctl and winsz FIFOs behind; ctrmon removes "
                   "them when it exits (README: what ctrmon does differently)")


class Obs(dict):
    """Observations of one scenario in one world."""

    def __init__(self, scenario):
        super().__init__()
        self.scenario = scenario
        # measurements shown under the table but not compared (e.g. a
        # monitor's peak RSS; what is compared is a bound on it)
        self.notes = {}

    def name(self, suffix="a"):
        return f"{self.scenario.slug}-{suffix}"

    def rc_out_err(self, key, res):
        rc, out, err = res[:3]
        # podman's warnings carry a wall-clock time
        err = re.sub(rb'time="[^"]*"', b'time="<t>"', err)
        self[key + ".rc"] = rc
        self[key + ".out"] = blob(out)
        self[key + ".err"] = blob(err)


class Scenario:
    def __init__(self, name, func, fixes=None, rootless=False, timeout=120,
                 pods=False):
        self.name = name
        self.pods = pods
        self.slug = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")[:40]
        self.func = func
        self.fixes = fixes or {}
        self.rootless = rootless
        self.timeout = timeout


SCENARIOS = []


def scenario(name, fixes=None, rootless=False, pods=False):
    def deco(func):
        SCENARIOS.append(Scenario(name, func, fixes, rootless, pods=pods))
        return func
    return deco


# -- per-world bookkeeping ------------------------------------------------

def id_map(w, pods):
    """{full id: name} for the world's containers (and pods)."""
    m = {}
    cmds = [["ps", "-a", "--no-trunc", "--format", "{{.ID}} {{.Names}}"]]
    if pods:
        cmds.append(["pod", "ps", "--no-trunc", "--format", "{{.ID}} {{.Name}}"])
    for args in cmds:
        rc, out, _ = w.podman(*args, timeout=60)
        if rc != 0:
            continue
        for line in out.decode().splitlines():
            parts = line.split()
            if len(parts) == 2:
                m[parts[0]] = parts[1]
    return m


def normalize_path(rel, ids):
    for full, name in ids.items():
        rel = rel.replace(full, f"<{name}>").replace(full[:12], f"<{name}>")
    return HEX64.sub(b"<id>", rel.encode()).decode()


def listing(w, ids):
    """Sorted, normalized relative paths under the world's runroot and
    tmp_dir.  Storage-internal mount points and lock files of layers are
    podman's business and identical for both monitors; they stay in."""
    out = []
    for top, label in ((w.runroot, "run"), (w.tmp, "tmp")):
        for dirpath, dirnames, filenames in os.walk(top):
            rel = os.path.relpath(dirpath, top)
            # the rootfs of a container still mounted: not the monitor's
            if rel.endswith("/merged") or "/merged/" in rel:
                dirnames[:] = []
                continue
            for d in dirnames:
                out.append(f"{label}/{os.path.normpath(os.path.join(rel, d))}/")
            for f in filenames:
                out.append(f"{label}/{os.path.normpath(os.path.join(rel, f))}")
    return tuple(sorted({normalize_path(p, ids) for p in out}))


def live_monitors(w):
    """Pids of live processes running the world's monitor binary for this
    world (their argv names the world's directories)."""
    out = []
    key = w.base.encode()
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            exe = os.path.realpath(f"/proc/{entry}/exe")
            if exe != w.monitor_real:
                continue
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                argv = f.read()
        except OSError:
            continue
        st = proc_stat(entry)
        if key in argv and st and st[0] not in ("Z", "X"):
            out.append(int(entry))
    return out


def run_in_world(w, sc):
    """Run scenario sc in world w; returns (Obs, error or None)."""
    o = Obs(sc)
    w.take_monitors()
    err = None
    t0 = time.monotonic()
    try:
        sc.func(w, o)
    except Exception as e:  # recorded, compared, reported
        err = f"{type(e).__name__}: {e}"
        o["error"] = err[:400]
    try:
        if err:
            # containers still running must not race the listing: stop
            # them first; exited ones are left for the listing.
            w.podman("stop", "-a", "-t", "0", timeout=120)
        w.wait_helpers()
        ids = id_map(w, sc.pods)
        o["files-exited"] = listing(w, ids)
        problems = []
        if sc.pods:
            w.podman("pod", "rm", "-af", "-t", "0", timeout=120)
        rc, _, e2 = w.podman("rm", "-af", "-t", "0", timeout=120)
        if rc != 0:
            problems.append(f"rm -af rc={rc} {e2[:200]!r}")
        w.wait_helpers()
        o["files-removed"] = listing(w, ids)
        seen = w.take_monitors()
        if not seen:
            problems.append("never proved which monitor ran")
        for info in seen:
            try:
                w.assert_monitor_gone(info)
            except AssertionError as e:
                problems.append(str(e))
            zs = zombie_children(info.conmon_pid)
            if zs:
                problems.append(f"zombies {zs} under monitor {info.conmon_pid}")
        stray = live_monitors(w)
        if stray:
            problems.append(f"stray monitors {stray}")
        # (zombie children of the test process itself are not checked: the
        # other world's thread may be between a podman exit and its wait)
        o["cleanup"] = "; ".join(problems) or "clean"
    except Exception as e:
        o["cleanup"] = f"harness: {type(e).__name__}: {e}"[:400]
    o.seconds = time.monotonic() - t0
    return o, err


def compare(sc, ref, mine):
    """(verdict, [difference lines]); verdict is 'same', 'fix: ...' or
    'DIFF: ...'."""
    diffs, fixed = [], []
    for key in sorted(set(ref) | set(mine)):
        a, b = ref.get(key, "<missing>"), mine.get(key, "<missing>")
        fix = sc.fixes.get(key)
        if fix is not None:
            want = fix.expected(a)
            if fix.accepts(a, b):
                if a != b:
                    fixed.append(f"{key}: {fix.reason}" + (f" (ctrmon: {show(b)})" if b != want else ""))
                continue
            diffs.append(f"{key}: documented fix expects {show(want)}, "
                         f"ctrmon shows {show(b)} (conmon {show(a)})")
            continue
        if a != b:
            diffs.append(f"{key}: conmon {show(a)} != ctrmon {show(b)}")
    if "error" in mine and "error" not in sc.fixes and not any(
            d.startswith("error:") for d in diffs):
        # the same failure in both worlds still leaves the scenario untested
        diffs.append(f"error: the scenario did not complete: {mine['error']}")
    if mine.get("cleanup") != "clean" and not any(
            d.startswith("cleanup:") for d in diffs):
        diffs.append(f"cleanup: ctrmon {mine.get('cleanup')}")
    if diffs:
        return "DIFF: " + ", ".join(d.split(":")[0] for d in diffs), diffs + fixed
    if fixed:
        return "fix: " + "; ".join(fixed), fixed
    return "same", []


def show(v, n=300):
    if isinstance(v, tuple):
        return "[" + ", ".join(v) + "]"
    s = repr(v)
    return s if len(s) <= n else s[:n] + "..."


def summary(o):
    """The table cell: the first exit code, a digest of all observations
    and the cleanup state."""
    rc = next((o[k] for k in o if k.endswith(".rc")), None)
    h = hashlib.sha256(repr(sorted((k, repr(v)) for k, v in o.items()
                                   if k != "cleanup")).encode()).hexdigest()[:8]
    c = "clean" if o.get("cleanup") == "clean" else "UNCLEAN"
    err = " ERR" if "error" in o else ""
    return f"rc={rc} #{h} {c}{err}"


class Pair:
    """Two worlds, one per monitor, and the table of results."""

    def __init__(self, ref, mine, label=""):
        self.ref = ref
        self.mine = mine
        self.label = label

    def run(self, sc, table):
        with ThreadPoolExecutor(max_workers=2) as ex:
            fa = ex.submit(run_in_world, self.ref, sc)
            fb = ex.submit(run_in_world, self.mine, sc)
            (a, _), (b, _) = fa.result(), fb.result()
        verdict, lines = compare(sc, a, b)
        for k in sorted(set(a.notes) | set(b.notes)):
            lines = lines + [f"{k} (not compared): conmon {a.notes.get(k, '-')}, "
                             f"ctrmon {b.notes.get(k, '-')}"]
        name = f"{sc.name} ({self.label})" if self.label else sc.name
        table.append((name, summary(a), summary(b), verdict, lines,
                      a.seconds, b.seconds))
        return verdict, lines, a, b


def format_table(rows):
    head = ("scenario", "conmon", "ctrmon", "verdict")
    cells = [head] + [r[:4] for r in rows]
    widths = [max(len(c[i]) for c in cells) for i in range(3)]
    lines = []
    for c in cells:
        lines.append(" | ".join(c[i].ljust(widths[i]) for i in range(3))
                     + " | " + c[3])
        if c is head:
            lines.append("-+-".join("-" * w for w in widths) + "-+-" + "-" * 7)
    details = [f"  {r[0]}: {d}" for r in rows for d in r[4]]
    if details:
        lines += ["", "differences, documented fixes and notes:"] + details
    return "\n".join(lines) + "\n"


def new_world(monitor, tag):
    w = PodmanWorld(monitor, tag=tag)
    try:
        w.import_image()
    except BaseException:
        w.teardown()
        raise
    return w


def run_capture(argv, env, timeout=60, input=None, pass_fds=()):
    p = subprocess.run(argv, env=env, input=input, timeout=timeout,
                       stdin=None if input is not None else subprocess.DEVNULL,
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       pass_fds=pass_fds)
    return p.returncode, p.stdout, p.stderr
