"""The plain-text table and the target checks.

Every figure is the median over the interleaved runs. The ratio column is
always MONITOR / REFERENCE; the `better` column says which direction wins
(lower for times, memory, CPU and instructions; higher for throughput)."""

import statistics

# (key, label, unit, better, fmt); better None = a baseline row whose value
# lives in a pseudo-column ("runc" or "cat") instead of a monitor column.
START = [
    ("start.create.ms", "spawn -> sync pipe {\"data\": pid}", "ms", "lower", "{:.2f}"),
    ("start.create.ms@runc", "  runc create alone (baseline)", "ms", None, "{:.2f}"),
    ("start.create.over", "  over runc create", "ms", "lower", "{:.2f}"),
    ("start.true.ms", "spawn -> exit file, container `true`", "ms", "lower", "{:.2f}"),
    ("start.true.ms@runc", "  runc run alone (baseline)", "ms", None, "{:.2f}"),
    ("start.true.over", "  over runc run", "ms", "lower", "{:.2f}"),
]
MEM = [
    ("idle1.rss_kb", "1 idle monitor: Rss", "KiB", "lower", "{:.0f}"),
    ("idle1.pss_kb", "1 idle monitor: Pss", "KiB", "lower", "{:.0f}"),
    ("idle1.anon_kb", "1 idle monitor: Anonymous", "KiB", "lower", "{:.0f}"),
    ("idle50.pss_total_kb", "50 idle monitors: total Pss", "KiB", "lower", "{:.0f}"),
    ("idle50.rss_total_kb", "50 idle monitors: total Rss", "KiB", "lower", "{:.0f}"),
]
LOGS = [("lines", "100-byte lines, 64K writes"),
        ("nonl", "no newline, 64K writes"),
        ("small", "100-byte lines, 1 write()/line"),
        ("lines.attach", "100-byte lines + 1 attach")]
EXIT = [("exit.floor_us@floor", "  any process: exit -> parent's wake-up (floor)",
         "us", None, "{:.0f}"),
        ("exit.us", "container exit -> exit file", "us", "lower", "{:.0f}"),
        ("exit.split.us", "the same, watched with a pidfd too", "us",
         "lower", "{:.0f}"),
        ("exit.split.exited_us", "  of which: until init's exit is visible",
         "us", "lower", "{:.0f}"),
        ("exit.split.monitor_us", "  of which: exit visible -> exit file",
         "us", "lower", "{:.0f}"),
        ("exit.nosync.us", "same with --no-sync-log (no log fsync)", "us",
         "lower", "{:.0f}"),
        ("exit.nosync.monitor_us", "  of which: exit visible -> exit file",
         "us", "lower", "{:.0f}")]
CG = [("callgrind.ir_per_byte", "instructions per byte (Ir/B)", "Ir/B", "lower", "{:.2f}"),
      ("callgrind.ir", "instructions total (Ir)", "Ir", "lower", "{:.4g}")]


def _log_rows():
    rows = []
    for mode, label in LOGS:
        rows.append((f"log.{mode}.mb_s", label + ": throughput", "MB/s",
                     "higher", "{:.0f}"))
        rows.append((f"log.{mode}.cpu_s_gib", "  monitor CPU per GiB", "s/GiB",
                     "lower", "{:.3f}"))
        if mode != "lines.attach":
            rows.append((f"log.{mode}.mb_s@cat", "  writer | cat > file (ceiling)",
                         "MB/s", None, "{:.0f}"))
            rows.append((f"log.{mode}.cpu_s_gib@cat", "  cat CPU per GiB (ceiling)",
                         "s/GiB", None, "{:.3f}"))
    return rows


SECTIONS = [("1. start latency", START), ("2. memory (smaps_rollup)", MEM),
            ("3./4./6. log throughput (k8s-file on /var/tmp)", _log_rows()),
            ("5. exit latency", EXIT), ("7. callgrind (noise-free)", CG)]


def _value(res, key, col):
    """Median for a row key and column; handles @pseudo-column and the
    derived `over` rows (monitor median minus runc baseline median)."""
    if "@" in key:
        k, pseudo = key.split("@")
        return res.median(k, pseudo)
    if key.endswith(".over"):
        base = key[:-len(".over")] + ".ms"
        ms = res.samples.get(base, {}).get(col)
        bs = res.samples.get(base, {}).get("runc")
        if not ms or not bs:
            return None
        if len(ms) == len(bs):  # interleaved pairs: median of differences
            return statistics.median(a - b for a, b in zip(ms, bs))
        return statistics.median(ms) - statistics.median(bs)
    return res.median(key, col)


def _targets(res, ref, col):
    """(label, figure text, met?) for one monitor against the reference."""
    def ratio(key):
        a, b = _value(res, key, col), _value(res, key, ref)
        return None if a is None or not b else a / b

    out = []
    failed = {grp for grp, c, _ in res.failures if c == col}

    def add(label, fig, ok, fmt, groups=()):
        text = "no data" if fig is None else fmt.format(fig)
        bad = [g for g in groups if g in failed]
        if bad:  # a run that lost or reordered bytes never meets a target
            text += " + failed byte check"
        out.append((label, text, fig is not None and ok and not bad))

    r = ratio("log.lines.mb_s")
    add(f"100-byte lines: throughput >= 4x {ref}", r, r is not None and r >= 4,
        "{:.2f}x", ["log.lines"])
    v = _value(res, "log.lines.cpu_s_gib", col)
    add("100-byte lines: monitor CPU <= 1.0 s/GiB", v, v is not None and v <= 1.0,
        "{:.3f} s/GiB", ["log.lines"])
    r = ratio("log.lines.attach.mb_s")
    add(f"with 1 attach client: throughput >= 4x {ref}", r,
        r is not None and r >= 4, "{:.2f}x", ["log.lines.attach"])
    r = ratio("idle50.pss_total_kb")
    add(f"50 idle monitors: total Pss <= 0.8x {ref}", r,
        r is not None and r <= 0.8, "{:.2f}x")
    a, b = _value(res, "idle1.anon_kb", col), _value(res, "idle1.anon_kb", ref)
    add(f"1 idle monitor: Anonymous <= {ref}'s ({b if b is not None else '?'} KiB)",
        a, a is not None and b is not None and a <= b, "{:.0f} KiB")
    v = _value(res, "start.create.over", col)
    add("start: spawn->pid <= 3 ms over runc create", v,
        v is not None and v <= 3.0, "{:+.2f} ms")
    v = _value(res, "exit.us", col)
    add("exit -> exit file: median < 0.3 ms", v, v is not None and v < 300,
        "{:.0f} us")
    v = _value(res, "exit.split.monitor_us", col)
    add("  (diagnostic) its monitor part: exit visible -> file < 0.3 ms", v,
        v is not None and v < 300, "{:.0f} us")
    return out


def render(info, mons, versions, ref, res, prof, sizes, elapsed):
    names = list(mons)
    others = [n for n in names if n != ref]
    W0, WU, WC = 44, 6, 11
    lines = []
    add = lines.append
    add("ctrmon benchmark" + (" (--quick)" if prof.quick else ""))
    add(f"date:     {info['date']}   (took {elapsed:.0f} s)")
    add(f"machine:  {info['nproc']} x {info['model']}, kernel {info['kernel']}, "
        f"{info['runc']}")
    for n in names:
        add(f"monitor:  {n:<8} {mons[n]}  [{versions[n]}]")
    add(f"runs:     interleaved; start {prof.start_reps}, exit {prof.exit_reps}, "
        f"idle {prof.idle_reps}, 50-idle {prof.many_reps}, log {prof.log_reps} "
        f"per monitor; medians shown")
    add(f"ratio:    MONITOR/{ref}; `better` says which way wins")
    head = (f"{'metric':<{W0}} {'unit':<{WU}}"
            + "".join(f"{n[:WC]:>{WC}}" for n in names)
            + "".join(f"{(o + '/' + ref)[:14]:>15}" for o in others)
            + "  better")
    samples = res.samples
    medians = {}
    for title, rows in SECTIONS:
        if not any(k.split("@")[0].replace(".over", ".ms") in samples
                   for k, *_ in rows):
            continue
        add("")
        add(f"== {title}")
        add(head)
        for key, label, unit, better, fmt in rows:
            if better is None:
                v = _value(res, key, None)
                if v is None:
                    continue
                pseudo = key.split("@")[1]
                cells = f"{fmt.format(v):>{WC}}" + f"{'(' + pseudo + ')':>{WC}}"
                add(f"{label:<{W0}} {unit:<{WU}}{cells}")
                medians[key] = v
                continue
            vals = {n: _value(res, key, n) for n in names}
            if all(v is None for v in vals.values()):
                continue
            medians[key] = vals
            cells = "".join(f"{'-' if vals[n] is None else fmt.format(vals[n]):>{WC}}"
                            for n in names)
            for o in others:
                a, b = vals[o], vals[ref]
                if a is None or b is None or b == 0 or key.endswith(".over"):
                    cells += f"{'':>15}"
                else:
                    cells += f"{a / b:>15.2f}"
            add(f"{label:<{W0}} {unit:<{WU}}{cells}  {better}")
    # Bytes per run (the same for every monitor in a mode).
    if sizes:
        add("")
        add("bytes per log run (the same for every monitor: what the fastest "
            f"moves in ~{prof.log_secs} s): " + "; ".join(
                f"{k[0][4:]}/{k[1]} {v / 2**20:.0f} MiB"
                for k, v in sorted(sizes.items())))
    if "callgrind.top" in res.extra:
        for n in names:
            tops = res.extra["callgrind.top"].get(n)
            if not tops:
                continue
            add("")
            add(f"== callgrind: top functions by self Ir, {n}")
            for t in tops[0][:10]:
                add("   " + t)
    targets = {}
    if others:
        add("")
        add(f"== targets (against {ref})")
        for o in others:
            tl = _targets(res, ref, o)
            targets[o] = [{"target": t, "figure": f, "met": ok}
                          for t, f, ok in tl]
            for t, f, ok in tl:
                add(f"{o:<8} {t:<52} {f:>14}   {'met' if ok else 'NOT MET'}")
    if res.failures:
        add("")
        add("== FAILED CHECKS (these runs are excluded from the medians)")
        for grp, col, msg in res.failures:
            add(f"   {grp} {col}: {msg}")
    else:
        add("")
        add("all byte-order checks passed (every k8s-file log and attach "
            "stream reassembled exactly)")
    return "\n".join(lines), {"medians": medians, "targets": targets}
