"""Driver: parse options, run every measurement for every monitor with the
runs interleaved (A,B,B,A,A,B... so slow drift of the shared VM hits all
monitors alike), then print the table and optionally write JSON."""
import argparse
import json
import os
import statistics
import sys
import time
import traceback

from . import measure as M
from . import report
from .env import REPO, Workspace, binary_version, machine

MEASUREMENTS = ("start", "exit", "mem", "log", "attach", "cat", "callgrind")
LOG_MODES = ("lines", "nonl", "small")
UNIT = 1600  # N is a multiple of the line (100) and block (64) sizes


class Profile:
    def __init__(self, quick):
        self.quick = quick
        self.start_reps = 5 if quick else 31
        self.exit_reps = 7 if quick else 21
        self.idle_reps = 3 if quick else 7
        self.many_reps = 1 if quick else 3
        self.many_n = 50
        self.log_reps = 2 if quick else 5
        self.log_secs = 0.6 if quick else 1.5   # target duration of one run
        self.cal_bytes = 16 * 2**20 if quick else 48 * 2**20
        self.max_bytes = 1536 * 2**20
        self.cat_reps = 2 if quick else 5
        self.callgrind_bytes = 16 * 2**20 if quick else 64 * 2**20


def default_ctrmon():
    env = os.environ.get("CTRMON_BIN")
    if env:
        return env
    for p in ("./build/monitor/ctrmon",
              os.path.join(REPO, "build", "monitor", "ctrmon")):
        if os.path.exists(p):
            return os.path.abspath(p)
    return os.path.abspath("./build/monitor/ctrmon")


def parse_args(argv):
    ap = argparse.ArgumentParser(
        prog="bench/run",
        description="ctrmon vs conmon (and others): start latency, memory, "
                    "log throughput, attach, exit latency, callgrind")
    ap.add_argument("--quick", action="store_true",
                    help="fewer repetitions and smaller runs (~2 min)")
    ap.add_argument("--monitor", action="append", default=[],
                    metavar="NAME=PATH",
                    help="add (or, for ctrmon/conmon, replace) a monitor")
    ap.add_argument("--json", metavar="FILE", help="write all samples here")
    ap.add_argument("--only", metavar="LIST",
                    help="comma-separated subset of: " + ",".join(MEASUREMENTS))
    ap.add_argument("--reference", default="conmon",
                    help="monitor the ratios are relative to (default conmon)")
    a = ap.parse_args(argv)
    mons = {"ctrmon": default_ctrmon(), "conmon": "/usr/bin/conmon"}
    for spec in a.monitor:
        name, sep, path = spec.partition("=")
        if not sep or not name or not path:
            ap.error(f"--monitor wants NAME=PATH, got {spec!r}")
        mons[name] = os.path.abspath(path)
    for name, path in mons.items():
        if not os.access(path, os.X_OK):
            ap.error(f"monitor {name}: {path} is not an executable "
                     f"(build ctrmon or set CTRMON_BIN)")
    if a.reference not in mons:
        ap.error(f"reference {a.reference} is not among the monitors")
    only = set(MEASUREMENTS)
    if a.only:
        only = set(a.only.split(","))
        bad = only - set(MEASUREMENTS)
        if bad:
            ap.error(f"unknown measurement(s): {','.join(sorted(bad))}")
    return a, mons, only


class Results:
    def __init__(self):
        self.samples = {}     # metric -> column -> [values]
        self.extra = {}       # metric -> column -> anything (bytes, top)
        self.failures = []    # (metric group, column, message)

    def add(self, prefix, col, d):
        for k, v in d.items():
            key = f"{prefix}.{k}"
            if isinstance(v, (int, float)) and not isinstance(v, bool):
                self.samples.setdefault(key, {}).setdefault(col, []).append(v)
            else:
                self.extra.setdefault(key, {}).setdefault(col, []).append(v)

    def median(self, key, col):
        v = self.samples.get(key, {}).get(col)
        return statistics.median(v) if v else None


def interleave(res, prefix, cols, reps, fn, progress):
    """Run fn(col) reps times per column, alternating the order."""
    for rep in range(reps):
        order = cols if rep % 2 == 0 else cols[::-1]
        for col in order:
            try:
                res.add(prefix, col, fn(col))
            except (M.BenchError, OSError, TimeoutError, AssertionError,
                    ValueError) as e:
                res.failures.append((prefix, col, str(e)))
                print(f"  {prefix} {col}: FAILED: {e}", file=sys.stderr)
        progress(f"{prefix} {rep + 1}/{reps}")


def run(argv=None):
    args, mons, only = parse_args(argv if argv is not None else sys.argv[1:])
    if os.geteuid() != 0:
        sys.exit("bench/run needs root (runc, cgroups): use sudo")
    prof = Profile(args.quick)
    names = list(mons)
    t_begin = time.monotonic()

    def progress(msg):
        print(f"[{time.monotonic() - t_begin:6.1f}s] {msg}", file=sys.stderr,
              flush=True)

    ws = Workspace()
    res = Results()
    sizes = {}
    try:
        ws.setup()
        progress(f"workspace {ws.root}; helper built")
        if "start" in only:
            cols = names + ["runc"]
            interleave(res, "start.create", cols, prof.start_reps,
                       lambda c: M.baseline_create(ws) if c == "runc"
                       else M.start_create(ws, mons[c]), progress)
            interleave(res, "start.true", cols, prof.start_reps,
                       lambda c: M.baseline_run(ws) if c == "runc"
                       else M.start_true(ws, mons[c]), progress)
        if "exit" in only:
            interleave(res, "exit", ["floor"], 3,
                       lambda c: M.exit_floor(ws), progress)
            interleave(res, "exit", names, prof.exit_reps,
                       lambda c: M.exit_latency(ws, mons[c]), progress)
            interleave(res, "exit.split", names, prof.exit_reps,
                       lambda c: M.exit_latency(ws, mons[c], split=True),
                       progress)
            interleave(res, "exit.nosync", names, prof.exit_reps,
                       lambda c: M.exit_latency(ws, mons[c], sync_log=False,
                                                    split=True),
                       progress)
        if "mem" in only:
            interleave(res, "idle1", names, prof.idle_reps,
                       lambda c: M.idle_one(ws, mons[c]), progress)
            interleave(res, "idle50", names, prof.many_reps,
                       lambda c: M.idle_many(ws, mons[c], prof.many_n),
                       progress)
        log_cases = []
        if "log" in only:
            log_cases += [(m, False) for m in LOG_MODES]
        if "attach" in only:
            log_cases.append(("lines", True))
        for mode, att in log_cases:
            prefix = f"log.{mode}{'.attach' if att else ''}"
            for c in names:  # calibration: size N so a run takes log_secs
                cal = prof.cal_bytes // (4 if mode == "small" else 1)
                cal -= cal % UNIT
                # A fast monitor moves cal_bytes in well under 0.1 s, so one
                # stall of the loaded VM could make N several times too small
                # (and its fixed start-up CPU then weighs on CPU per GiB):
                # while a calibration run is much shorter than a real one,
                # calibrate again with half the estimated N (at most 3 runs).
                for _ in range(3):
                    try:
                        r = M.log_run(ws, mons[c], mode, cal, attach=att)
                        n = int(r["mb_s"] * 1e6 * prof.log_secs)
                    except M.BenchError as e:
                        res.failures.append((prefix, c, f"calibration: {e}"))
                        n = cal
                        break
                    if cal * 4 >= n or cal >= prof.max_bytes:
                        break
                    cal = min(prof.max_bytes, n // 2)
                    cal -= cal % UNIT
                n = max(UNIT, min(prof.max_bytes, n - n % UNIT))
                sizes[(prefix, c)] = n
            # The same bytes for every monitor, as many as the fastest moves
            # in log_secs: equal work, and the same page-cache and writeback
            # pressure (a 1.5 GiB run crosses the background dirty threshold
            # that a 0.4 GiB one does not).
            same = max(sizes[(prefix, c)] for c in names)
            for c in names:
                sizes[(prefix, c)] = same
            interleave(res, prefix, names, prof.log_reps,
                       lambda c: M.log_run(ws, mons[c], mode,
                                           sizes[(prefix, c)], attach=att),
                       progress)
        if "cat" in only:
            for mode in LOG_MODES:
                # As many bytes as the fastest monitor moved in this mode.
                n = max([sizes.get((f"log.{mode}", c), 0) for c in names]
                        + [256 * 2**20 // (8 if mode == "small" else 1)])
                interleave(res, f"log.{mode}", ["cat"], prof.cat_reps,
                           lambda c: M.cat_run(ws, mode, n), progress)
        if "callgrind" in only:
            interleave(res, "callgrind", names, 1,
                       lambda c: M.callgrind_run(ws, mons[c],
                                                 prof.callgrind_bytes),
                       progress)
    except KeyboardInterrupt:
        print("interrupted; cleaning up", file=sys.stderr)
        raise
    except Exception:
        traceback.print_exc()
        res.failures.append(("bench", "-", "aborted: see traceback"))
    finally:
        ws.cleanup()
    elapsed = time.monotonic() - t_begin

    info = machine()
    versions = {n: binary_version(p) for n, p in mons.items()}
    text, summary = report.render(info, mons, versions, args.reference, res,
                                  prof, sizes, elapsed)
    print(text)
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"machine": info, "monitors": mons,
                       "versions": versions, "reference": args.reference,
                       "quick": prof.quick, "elapsed_s": elapsed,
                       "samples": res.samples, "extra": res.extra,
                       "sizes": {f"{k[0]}:{k[1]}": v
                                 for k, v in sizes.items()},
                       "medians": summary["medians"],
                       "targets": summary["targets"],
                       "failures": res.failures}, f, indent=1)
    return 1 if res.failures else 0
