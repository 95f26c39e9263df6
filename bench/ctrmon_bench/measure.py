"""One run of each measurement, for one monitor binary (or the baseline).

Every function starts its containers, measures, verifies, and cleans up
after itself (container deleted by id, work dir removed) even on failure.
Each returns a dict of figures; a failed check raises BenchError, which
the driver records against the run instead of silently dropping it."""
import os
import re
import select
import shutil
import subprocess
import time

from .env import HELPER_IN_CTR, RUNC, Inotify, new_cid, wait_gone

SYNC_TIMEOUT = 30
RUN_TIMEOUT = 300


class BenchError(Exception):
    pass


def _smaps_rollup(pid):
    out = {}
    with open(f"/proc/{pid}/smaps_rollup") as f:
        for line in f:
            parts = line.split()
            if len(parts) == 3 and parts[2] == "kB":
                out[parts[0].rstrip(":")] = int(parts[1])
    return out


def _zombie_cpu(pid):
    """utime+stime (s) of an exited, not yet reaped process. The kernel
    keeps the thread group's times until the parent reaps it; this
    excludes cutime/cstime, i.e. the runtime and the container, which
    wait4's rusage would add in."""
    with open(f"/proc/{pid}/stat") as f:
        data = f.read()
    fields = data[data.rindex(")") + 2:].split()
    tck = os.sysconf("SC_CLK_TCK")
    return (int(fields[11]) + int(fields[12])) / tck


def _wait_exit_nowait(pid, timeout):
    """Block until pid (our child) has exited, without reaping it; return
    time.time_ns() at the wake-up."""
    pfd = os.pidfd_open(pid)
    try:
        r, _, _ = select.select([pfd], [], [], timeout)
        t = time.time_ns()
        if not r:
            raise BenchError(f"monitor {pid} still running after {timeout}s")
    finally:
        os.close(pfd)
    os.waitid(os.P_PID, pid, os.WEXITED | os.WNOWAIT)
    return t


def _stop(ws, mon, workdir):
    """Delete the container by id, wait for the monitor, drop everything."""
    try:
        ws.runc.delete(mon.cid)
        if mon.daemon_pid:
            wait_gone(mon.daemon_pid, 10)
    finally:
        ws.finish(mon, workdir)


# -- 1. start latency -----------------------------------------------------

def start_create(ws, binary):
    """Spawn (podman-style: daemonizing, start pipe, -P file) until the
    {"data": pid} line is read from the sync pipe. ms."""
    wd = ws.new_dir("create")
    mon = ws.monitor(wd, ws.bundle(wd, ["sleep", "3600"]), binary)
    try:
        t0 = time.perf_counter()
        mon.create(timeout=SYNC_TIMEOUT)
        t1 = time.perf_counter()
    finally:
        _stop(ws, mon, wd)
    return {"ms": (t1 - t0) * 1e3}


def baseline_create(ws):
    """`runc create` of the same bundle, spawn to exit. ms."""
    wd = ws.new_dir("rcreate")
    b = ws.bundle(wd, ["sleep", "3600"])
    cid = new_cid("rcreate")
    try:
        t0 = time.perf_counter()
        subprocess.run([RUNC, ws.runc.root_arg, "create", "--bundle", b.path,
                        "--pid-file", os.path.join(wd, "pid"), cid],
                       stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL, check=True,
                       timeout=SYNC_TIMEOUT)
        t1 = time.perf_counter()
    finally:
        ws.runc.delete(cid)
        shutil.rmtree(wd, ignore_errors=True)
    return {"ms": (t1 - t0) * 1e3}


def start_true(ws, binary):
    """Spawn, sync pid, `runc start`, until the exit file is in place
    (inotify) for a container running `true`. ms."""
    wd = ws.new_dir("true")
    mon = ws.monitor(wd, ws.bundle(wd, ["true"]), binary)
    ino = Inotify(mon.exit_dir)
    try:
        t0 = time.time_ns()
        mon.create(timeout=SYNC_TIMEOUT)
        ws.runc.start(mon.cid)
        t1 = ino.wait(mon.cid, SYNC_TIMEOUT)
        with open(mon.exit_file) as f:
            if f.read() != "0":
                raise BenchError("exit file of `true` is not 0")
    finally:
        ino.close()
        _stop(ws, mon, wd)
    return {"ms": (t1 - t0) / 1e6}


def baseline_run(ws):
    """`runc run` of the same bundle (foreground), spawn to exit. ms."""
    wd = ws.new_dir("rrun")
    b = ws.bundle(wd, ["true"])
    cid = new_cid("rrun")
    try:
        t0 = time.perf_counter()
        subprocess.run([RUNC, ws.runc.root_arg, "run", "--bundle", b.path,
                        cid], stdin=subprocess.DEVNULL,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                       check=True, timeout=SYNC_TIMEOUT)
        t1 = time.perf_counter()
    finally:
        ws.runc.delete(cid)
        shutil.rmtree(wd, ignore_errors=True)
    return {"ms": (t1 - t0) * 1e3}


# -- 5. exit -> exit file -------------------------------------------------

def exit_latency(ws, binary, sync_log=True, split=False):
    """The container's last act is writing CLOCK_REALTIME ns to a shared
    file; latency = inotify wake-up for the exit file minus that. us.
    sync_log=False adds --no-sync-log (no fsync of the log at exit).

    split=True also watches the init's pidfd, which turns readable when
    the kernel has finished the exit (the moment it also sends SIGCHLD to
    the monitor), to split the figure into the kernel's part (no monitor
    can beat it) and the monitor's. That observer is not free: woken at the
    same moment as the monitor, it takes a CPU for ~0.1 ms of Python just
    when the monitor needs one (traced on the 2-core VM), so the headline
    figure comes from runs without it."""
    wd = ws.new_dir("exitlat")
    name = os.path.basename(wd) + ".exitstamp"
    go = os.path.join(ws.shared, name + ".go")
    os.mkfifo(go)
    mon = ws.monitor(wd, ws.bundle(wd, [HELPER_IN_CTR, "stampexit",
                                        "/run/" + name,
                                        "/run/" + name + ".go"]), binary,
                     extra_args=[] if sync_log else ["--no-sync-log"])
    ino = Inotify(mon.exit_dir)
    stamp = os.path.join(ws.shared, name)
    seen = []
    pidfd = None
    try:
        pid = mon.create(timeout=SYNC_TIMEOUT)
        if split:
            pidfd = os.pidfd_open(pid)
        ws.runc.start(mon.cid)
        # `runc start` has exited and been reaped: now let the container
        # go, so its exit is measured alone (traced: an init that exits at
        # once overlaps runc's own exit, 1.5 ms of Go runtime teardown on
        # the same CPUs).
        time.sleep(0.005)
        with open(go, "wb", buffering=0) as f:
            f.write(b"x")
        t = ino.wait(mon.cid, SYNC_TIMEOUT, pidfd, seen.append)
        with open(mon.exit_file) as f:
            if f.read() != "0":
                raise BenchError("exit file of `stampexit` is not 0")
        with open(stamp) as f:
            t_exit = int(f.read())
    finally:
        ino.close()
        if pidfd is not None:
            os.close(pidfd)
        _stop(ws, mon, wd)
        for path in (stamp, go):
            if os.path.exists(path):
                os.unlink(path)
    out = {"us": (t - t_exit) / 1e3}
    if seen and seen[0] is not None:
        out["exited_us"] = (seen[0] - t_exit) / 1e3
        out["monitor_us"] = (t - seen[0]) / 1e3
    return out


def exit_floor(ws, n=200):
    """What any process's exit costs on this machine, with no container and
    no monitor: the helper forks n children that stamp CLOCK_MONOTONIC and
    _exit while it blocks in waitid(); median of stamp -> wake-up. us."""
    p = subprocess.run([ws.helper, "exitfloor", str(n)], stdout=subprocess.PIPE,
                       text=True, timeout=RUN_TIMEOUT)
    if p.returncode != 0:
        raise BenchError(f"exitfloor exited {p.returncode}")
    med, p10, p90 = (float(x) for x in p.stdout.split())
    return {"floor_us": med, "floor_p10_us": p10, "floor_p90_us": p90}


# -- 2. idle memory -------------------------------------------------------

def _start_idle(ws, binary, tag):
    wd = ws.new_dir(tag)
    mon = ws.monitor(wd, ws.bundle(wd, ["sleep", "3600"]), binary)
    try:
        mon.create(timeout=SYNC_TIMEOUT)
        ws.runc.start(mon.cid)
    except BaseException:
        _stop(ws, mon, wd)
        raise
    return mon, wd


def idle_one(ws, binary, settle=0.3):
    """smaps_rollup of one daemonized monitor holding a sleeping
    container. kB."""
    mon, wd = _start_idle(ws, binary, "idle1")
    try:
        time.sleep(settle)
        r = _smaps_rollup(mon.daemon_pid)
    finally:
        _stop(ws, mon, wd)
    return {"rss_kb": r["Rss"], "pss_kb": r["Pss"],
            "anon_kb": r["Anonymous"]}


def idle_many(ws, binary, n, settle=0.5):
    """Sum over n simultaneous idle monitors. kB."""
    started = []
    try:
        for _ in range(n):
            started.append(_start_idle(ws, binary, "idleN"))
        time.sleep(settle)
        tot = {"Rss": 0, "Pss": 0, "Anonymous": 0}
        for mon, _wd in started:
            r = _smaps_rollup(mon.daemon_pid)
            for k in tot:
                tot[k] += r[k]
    finally:
        for mon, wd in started:
            _stop(ws, mon, wd)
    return {"pss_total_kb": tot["Pss"], "rss_total_kb": tot["Rss"],
            "anon_total_kb": tot["Anonymous"]}


# -- 3./4. log throughput ---------------------------------------------------

def _verify_log(ws, path, mode, nbytes):
    p = subprocess.run([ws.helper, "verify-k8s", path, mode, str(nbytes)],
                       stdout=subprocess.PIPE, text=True, timeout=RUN_TIMEOUT)
    if p.returncode != 0:
        raise BenchError(f"log check: {p.stdout.strip()}")
    return p.stdout.strip()


def log_run(ws, binary, mode, nbytes, attach=False):
    """The container writes nbytes of `mode` to stdout; the monitor (with
    --sync, so it is our child, and --no-sync-log, so the end-of-run fsync
    of a GiB-sized log does not count) writes the k8s-file log on disk.

    MB/s = nbytes / (monitor exit - writer's first write). CPU = the
    monitor's own utime+stime, read while it is an unreaped zombie. The log
    (and the attach client's stream) is checked byte for byte."""
    # Start from a clean page cache state: the previous run's dirty log
    # pages written back now, not during this run.
    os.sync()
    wd = ws.new_dir(f"log-{mode}{'-att' if attach else ''}")
    name = os.path.basename(wd) + ".stamp"
    stamp = os.path.join(ws.shared, name)
    mon = ws.monitor(wd, ws.bundle(wd, [HELPER_IN_CTR, "gen", mode,
                                        str(nbytes), "/run/" + name]),
                     binary, sync=True, full_attach=attach,
                     extra_args=["--no-sync-log"])
    client = None
    try:
        mon.create(timeout=SYNC_TIMEOUT)
        if attach:
            client = subprocess.Popen(
                [ws.helper, "attach", mon.bundle.path, mode, str(nbytes)],
                stdout=subprocess.PIPE, text=True)
            ready = client.stdout.readline().strip()
            if ready != "ready":
                raise BenchError(f"attach client: {ready}")
        ws.runc.start(mon.cid)
        t_end = _wait_exit_nowait(mon.popen.pid, RUN_TIMEOUT)
        cpu = _zombie_cpu(mon.popen.pid)
        rc = mon.popen.wait()
        if rc != 0:
            raise BenchError(f"monitor exited {rc}: {mon.stderr()[-300:]!r}")
        with open(stamp) as f:
            t_w0, t_w1 = (int(x) for x in f.read().split())
        secs = (t_end - t_w0) / 1e9
        log_check = _verify_log(ws, mon.log_path, mode, nbytes)
        res = {"bytes": nbytes, "secs": secs,
               "mb_s": nbytes / secs / 1e6,
               "cpu_s": cpu, "cpu_s_gib": cpu / (nbytes / 2**30),
               "writer_secs": (t_w1 - t_w0) / 1e9, "log_check": log_check}
        if client:
            out, _ = client.communicate(timeout=RUN_TIMEOUT)
            if client.returncode != 0:
                raise BenchError(f"attach check: {out.strip()} (this run: "
                                 f"{res['mb_s']:.0f} MB/s, log "
                                 f"{log_check})")
            res["attach_check"] = out.strip()
        return res
    finally:
        if client and client.poll() is None:
            client.kill()
            client.wait()
        _stop(ws, mon, wd)
        if os.path.exists(stamp):
            os.unlink(stamp)


# -- 6. the ceiling: writer | cat > file ----------------------------------

def cat_run(ws, mode, nbytes):
    """The same writer piped into `cat > file` (no container, no monitor).
    MB/s from the writer's first write to cat's exit; CPU = cat's rusage."""
    wd = ws.new_dir(f"cat-{mode}")
    stamp = os.path.join(wd, "stamp")
    out = os.path.join(wd, "out")
    try:
        with open(out, "wb") as fo:
            w = subprocess.Popen([ws.helper, "gen", mode, str(nbytes), stamp],
                                 stdout=subprocess.PIPE)
            c = subprocess.Popen(["cat"], stdin=w.stdout, stdout=fo)
            w.stdout.close()
            _, status, ru = os.wait4(c.pid, 0)
            t_end = time.time_ns()
            c.returncode = os.waitstatus_to_exitcode(status)
            w.wait(timeout=60)
        if c.returncode or w.returncode:
            raise BenchError("writer | cat failed")
        if os.path.getsize(out) != nbytes:
            raise BenchError("cat output has the wrong size")
        with open(stamp) as f:
            t_w0 = int(f.read().split()[0])
        secs = (t_end - t_w0) / 1e9
        cpu = ru.ru_utime + ru.ru_stime
        return {"bytes": nbytes, "secs": secs, "mb_s": nbytes / secs / 1e6,
                "cpu_s": cpu, "cpu_s_gib": cpu / (nbytes / 2**30)}
    finally:
        shutil.rmtree(wd, ignore_errors=True)


# -- 7. callgrind ---------------------------------------------------------

_TOTALS_RE = re.compile(r"^(?:totals|summary):\s+(\d+)", re.M)


def callgrind_run(ws, binary, nbytes, top=12):
    """The monitor (--sync, so valgrind holds the real process; the runtime
    it forks is exec'd natively with --trace-children=no) relays nbytes of
    100-byte lines. Ir = every instruction the monitor executed, start-up
    included. Returns Ir, Ir/byte and the top functions (inclusive of
    nothing: self cost, from callgrind_annotate)."""
    wd = ws.new_dir("callgrind")
    out = os.path.join(wd, "callgrind.out")
    mon = ws.monitor(wd, ws.bundle(wd, [HELPER_IN_CTR, "gen", "lines",
                                        str(nbytes)]),
                     binary, sync=True, extra_args=["--no-sync-log"])
    mon.args = ["valgrind", "--tool=callgrind", "--trace-children=no",
                f"--callgrind-out-file={out}"] + mon.args
    try:
        mon.create(timeout=120)
        ws.runc.start(mon.cid)
        rc = mon.popen.wait(timeout=RUN_TIMEOUT * 3)
        if rc != 0:
            raise BenchError(f"monitor under valgrind exited {rc}")
        _verify_log(ws, mon.log_path, "lines", nbytes)
        with open(out) as f:
            m = _TOTALS_RE.search(f.read())
        ir = int(m.group(1))
        ann = subprocess.run(["callgrind_annotate", out],
                             stdout=subprocess.PIPE, text=True,
                             timeout=120).stdout
        funcs = []
        lines = ann.splitlines()
        for i, line in enumerate(lines):
            if "file:function" in line:
                for fl in lines[i + 1:]:
                    fl = fl.strip()
                    if fl.startswith("-"):
                        continue
                    if not fl:
                        if funcs:
                            break
                        continue
                    funcs.append(fl)
                    if len(funcs) >= top:
                        break
                break
        return {"bytes": nbytes, "ir": ir, "ir_per_byte": ir / nbytes,
                "top": funcs}
    finally:
        _stop(ws, mon, wd)
