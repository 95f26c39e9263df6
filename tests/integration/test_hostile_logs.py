"""Hostile logs (issue 14): "logs" on a k8s-file log far bigger than one
answer, and a follower of a line that never ends. The monitor runs with
oom_score_adj -1000 beside every container, so what is proved here is that
its memory stays bounded whatever the log (VmHWM), and that its main loop
keeps serving meanwhile: a "status" call on another connection answers
promptly, and the lines of a container writing one every 10 ms reach the
log on time.

On a 2-core machine shared with other work, a monitor busy sending 160 MB
waits for a CPU now and then, and so does the container: a tick's
lateness is measured against the container's own clock (so the
container's delays do not count), and the time the monitor spent runnable
but not running, or blocked writing its log to a busy disk, meanwhile
(/proc/PID/schedstat, /proc/PID/stat) is the machine's, not the loop's.
What is left must stay under 100 ms.

The big log is written by the test before the monitor starts (the
k8s-file sink appends to what is there), 100-byte records "L%09d" + filler
so that order and completeness can be checked without keeping the lines."""
import bisect
import itertools
import json
import multiprocessing
import os
import re
import socket
import threading
import time
import traceback
from datetime import datetime

import pytest

from ctrtest.bundle import SHARED_IN_CTR
from ctrtest.control import ControlClient, ControlError, api_socket_path
from ctrtest.procs import rss_limit
from ctrtest.wait import wait_for

from conftest import scaled

MiB = 1024 * 1024
# Under memcheck (the integration-valgrind run) the monitor is 20-50x
# slower: a 20 MB log is still 20 answers' worth, and the point there is
# memory errors, not scale.
UNDER_VALGRIND = bool(os.environ.get("VALGRIND_LOG_DIR"))
BIG_LINES = 200_000 if UNDER_VALGRIND else 1_600_000  # x 100 bytes: 160 MB
FOLLOW_TAIL = BIG_LINES * 3 // 16
TS = b"2024-01-01T00:00:00.000000000+00:00"
FILLER = b"f" * (100 - len(TS) - len(b" stdout F L000000000 ") - 1)
RSS_MAX = rss_limit(32 * MiB)
STATUS_MAX_S = 0.2
TICK_GAP_MAX_S = 0.1
# Each tick carries the container's clock (/proc/uptime, 10 ms steps; read
# by the shell itself, no fork), so that a late tick can be told from a
# tick written late (the container's own scheduling).
TICKER = "while :; do read up idle < /proc/uptime; echo tick $up; usleep 10000; done"


def client(m, timeout=10):
    return ControlClient(api_socket_path(m.bundle.path), timeout)


def write_big_log(path, lines=BIG_LINES):
    """`lines` records L000000000.. (the text after "F ": "L%09d <filler>")."""
    with open(path, "wb") as f:
        block = 10_000
        for base in range(0, lines, block):
            f.write(b"".join(b"%s stdout F L%09d %s\n" % (TS, k, FILLER)
                             for k in range(base, min(base + block, lines))))
        # On disk before the monitor starts: 160 MB of dirty pages would
        # throttle its own log writes (writev in D state) for a while.
        os.fsync(f.fileno())
    return os.path.getsize(path)


def big_text(k):
    return "L%09d %s" % (k, FILLER.decode())


def proc_status(pid, field):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    raise AssertionError(f"no {field} in /proc/{pid}/status")


def start_with_big_log(env, args, lines=BIG_LINES):
    m = env.monitor(args)
    size = write_big_log(m.log_path, lines)
    m.run()
    with client(m) as c:
        wait_for(lambda: c.call("status")["state"] == "running", 5, "running")
    return m, size


def stop(env, m):
    env.runc.kill(m.cid, "KILL")
    m.wait_exit_file(15)
    m.assert_clean_exit()


class SchedSampler(threading.Thread):
    """Every 5 ms, the monitor's state and its time spent runnable but not
    running (the 2nd field of /proc/PID/schedstat): on a machine whose CPUs
    and disk are busy with other work, a tick may be late because the
    monitor waited for a CPU, or was blocked writing its log (D: the
    kernel throttles writers of dirty pages), not because its loop was busy
    with "logs"."""

    def __init__(self, pid):
        super().__init__(daemon=True)
        self.pid = pid
        self.done = threading.Event()
        self.samples = []  # (time.time(), seconds waited so far, state)

    def run(self):
        while not self.done.is_set():
            with open(f"/proc/{self.pid}/schedstat") as f:
                waited = int(f.read().split()[1]) / 1e9
            with open(f"/proc/{self.pid}/stat") as f:
                state = f.read().rsplit(")", 1)[1].split()[0]
            self.samples.append((time.time(), waited, state))
            self.done.wait(0.005)

    def stop(self):
        self.done.set()
        self.join(10)

    def not_ours(self, a, b):
        """Of [a, b], the seconds the monitor waited for a CPU or was
        blocked in D, at most: the kernel adds a wait to the counter only
        when the task runs again, so it is taken from the last sample
        before a to the first one 10 ms after b."""
        s = self.samples
        i = max(bisect.bisect_right(s, (a, float("inf"))) - 1, 0)
        j = min(bisect.bisect_left(s, (b + 0.01, 0.0)), len(s) - 1)
        blocked = sum(s[k + 1][0] - s[k][0] for k in range(i, j) if s[k][2] == "D" or s[k + 1][2] == "D")
        return s[j][1] - s[i][1] + blocked


def thread_cpu_wait():
    """Seconds the calling thread has waited for a CPU."""
    with open(f"/proc/self/task/{threading.get_native_id()}/schedstat") as f:
        return int(f.read().split()[1]) / 1e9


class StatusProbe(threading.Thread):
    """Calls "status" on its own connection every 50 ms until stopped;
    keeps every call's (start, end, its own wait for a CPU meanwhile) and
    the monitor's largest VmRSS."""

    def __init__(self, m):
        super().__init__(daemon=True)
        self.m = m
        self.done = threading.Event()
        self.times = []
        self.rss_max = 0

    def run(self):
        with client(self.m) as c:
            while not self.done.is_set():
                w0, t0 = thread_cpu_wait(), time.time()
                c.call("status")
                t1, w1 = time.time(), thread_cpu_wait()
                self.times.append((t0, t1, w1 - w0))
                self.rss_max = max(self.rss_max, proc_status(self.m.daemon_pid, "VmRSS"))
                self.done.wait(0.05)

    def stop(self):
        self.done.set()
        self.join(10)

    def slowest(self, sched=None):
        """The slowest call's seconds: as measured, or less the probe's and
        (with a SchedSampler of the monitor) the monitor's machine time."""
        if sched is None:
            return max(t1 - t0 for t0, t1, _ in self.times)
        return max(t1 - t0 - own - sched.not_ours(t0, t1) for t0, t1, own in self.times)


class RawReader:
    """The logs connection, read raw: a json.loads per line would make the
    test the bottleneck (and load the machine it measures), so the big
    lines are checked per chunk with one regex, the rest parsed."""

    def __init__(self, m, params):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(20)
        self.sock.connect(api_socket_path(m.bundle.path))
        self.sock.sendall(json.dumps({"jsonrpc": "2.0", "id": 1, "method": "logs",
                                      "params": params}).encode() + b"\n")
        self.buf = b""

    def chunks(self):
        """Whole lines, many at a time."""
        while True:
            chunk = self.sock.recv(1 << 20)
            if not chunk:
                return
            cut = chunk.rfind(b"\n")
            if cut < 0:
                self.buf += chunk
                continue
            whole, self.buf = self.buf + chunk[:cut + 1], chunk[cut + 1:]
            yield whole

    def close(self):
        self.sock.close()


BIG_RE = re.compile(rb'^\{"jsonrpc":"2.0","method":"log","params":\{"time":"' + re.escape(TS) +
                    rb'","stream":"stdout","text":"L(\d{9}) f+","partial":false\}\}$', re.M)


def read_big_backlog(chunks, lines, follow, first=0):
    """Read the answer and the "log" notifications until every big line
    from `first` (None: wherever the answer starts) has come, in order,
    then up to "log-end" (or with follow the first tick); returns (the
    first big line, the messages after the last)."""
    answer, nxt, after = None, 0, []
    for data in chunks:
        if answer is None:
            raw, _, data = data.partition(b"\n")
            msg = json.loads(raw)
            assert msg.get("id") == 1 and "result" in msg, msg
            answer = msg["result"]
            assert len(raw) < 2 * MiB  # one bounded answer
            texts = [x["text"] for x in answer["lines"]]
            if first is None:
                first = int(texts[0][1:10])
            assert texts == [big_text(k) for k in range(first, first + len(texts))]
            nxt = first + len(texts)
            assert answer["more"] is True
        if nxt < lines:
            found = BIG_RE.findall(data)
            if found:
                assert int(found[0]) == nxt and int(found[-1]) == nxt + len(found) - 1, (nxt, found[:3])
                nxt += len(found)
            # Every line of the chunk was a big line, up to the last one.
            rest = data.split(b"\n")[len(found):]
            if nxt < lines:
                assert rest == [b""], (nxt, rest[:2])
                continue
            data = b"\n".join(rest)
        for raw in data.split(b"\n"):
            if not raw:
                continue
            msg = json.loads(raw)
            after.append(msg)
            if msg.get("method") != "log" or (follow and msg["params"]["text"].startswith("tick ")):
                assert nxt == lines, f"{nxt} of {lines} lines"
                return first, after
    raise AssertionError(f"EOF after {nxt} of {lines} lines")


def _reader_child(conn, m, params, lines):
    # At nice 19: the test's own CPU use must not pass for the monitor's.
    os.nice(19)
    try:
        reader = RawReader(m, params)
        first = None if "tail" in params else 0
        conn.send(("ok", read_big_backlog(reader.chunks(), lines, params.get("follow", False), first)))
        reader.close()
    except BaseException:
        conn.send(("error", traceback.format_exc()))


def read_big_backlog_niced(m, params, lines=BIG_LINES):
    """read_big_backlog() from a forked child process at nice 19."""
    ours, theirs = multiprocessing.get_context("fork").Pipe()
    child = multiprocessing.get_context("fork").Process(
        target=_reader_child, args=(theirs, m, params, lines), daemon=True)
    child.start()
    try:
        if not ours.poll(scaled(50)):
            raise AssertionError(f"the reader did not finish in {scaled(50)} s")
        kind, value = ours.recv()
    finally:
        child.join(5)
        if child.is_alive():
            child.kill()
    if kind == "error":
        raise AssertionError(f"reader: {value}")
    return value


def ticks(m, since, start):
    """The "tick" records of the log from byte `since` logged after `start`
    (seconds since the epoch): [(logged at, written at)], both in seconds,
    "written at" on the container's clock (uptime)."""
    with open(m.log_path, "rb") as f:
        f.seek(since)
        data = f.read()
    out = []
    for ts, up in re.findall(rb"^(\S+) stdout F tick (\d+\.\d+)$", data, re.M):
        ts = ts.decode()
        logged = datetime.fromisoformat(ts[:26] + ts[29:]).timestamp()
        if logged >= start:
            out.append((logged, float(up)))
    assert len(out) > 20, len(out)
    return out


def tick_lateness(ticks, window=1.0):
    """How much later than the promptest tick around it (within `window`
    seconds: the two clocks drift apart) each tick was logged after it was
    written: the delay the monitor added. [(seconds late, logged at)]."""
    delay = [(logged, logged - up) for logged, up in ticks]
    out, lo = [], 0
    for i, (logged, d) in enumerate(delay):
        while delay[lo][0] < logged - window:
            lo += 1
        hi = i
        while hi + 1 < len(delay) and delay[hi + 1][0] <= logged + window:
            hi += 1
        out.append((d - min(x for _, x in delay[lo:hi + 1]), logged))
    return out


# alone: its reader has 50 s (scaled) for 160 MB; other tests on the same
# two cores (xdist) must not eat that budget.
@pytest.mark.alone
def test_logs_of_a_160mb_log_stream_in_bounded_memory_while_the_loop_serves(env):
    """Both ways of getting more than one answer holds, one after the other
    (at once they would measure the machine's two cores, not the loop):
    all of the log with "chunked", and the last 300000 lines (30 MB)
    with "follow", which then goes on with the new lines."""
    m, size = start_with_big_log(env, ["sh", "-c", TICKER])
    m.wait_log_contains(b" stdout F tick ")
    called = time.time()
    probe = StatusProbe(m)
    probe.start()
    runq = SchedSampler(m.daemon_pid)
    runq.start()
    took = {}
    try:
        for params in ({"chunked": True}, {"follow": True, "tail": FOLLOW_TAIL}):
            t0 = time.monotonic()
            first, after = read_big_backlog_niced(m, params)
            if "tail" in params:
                # tail counts the ticks written before the call, too.
                assert BIG_LINES - FOLLOW_TAIL <= first < BIG_LINES - FOLLOW_TAIL + 10_000, first
            else:
                assert first == 0, first
            took[json.dumps(params)] = round(time.monotonic() - t0, 1)
            # The ticks written before the call, then: chunked, "log-end"
            # {"eof"}; follow, the ticks written since, as they come.
            if params.get("follow"):
                assert after[-1]["method"] == "log" and after[-1]["params"]["text"].startswith("tick ")
            else:
                assert after[-1] == {"jsonrpc": "2.0", "method": "log-end", "params": {"eof": True}}
            assert all(x["method"] == "log" and x["params"]["text"].startswith("tick ") for x in after[:-1])
    finally:
        probe.stop()
        runq.stop()
    hwm = proc_status(m.daemon_pid, "VmHWM")
    assert len(probe.times) >= 10
    slowest, slowest_loop = probe.slowest(), probe.slowest(runq)
    t = ticks(m, size, called)
    gap, gap_at = max((b[0] - a[0], a[0]) for a, b in zip(t, t[1:]))
    late, late_at = max(tick_lateness(t))
    # Of the latest tick's delay, the machine's part (see SchedSampler).
    machine = runq.not_ours(late_at - late, late_at)
    stop(env, m)
    report = (f"{size / MiB:.0f} MiB, in {took}s; status max {slowest * 1000:.0f} ms "
              f"({slowest_loop * 1000:.0f} ms less the machine's) over {len(probe.times)}; "
              f"VmHWM {hwm / MiB:.1f} MiB, VmRSS max {probe.rss_max / MiB:.1f} MiB; ticks: largest gap "
              f"{gap * 1000:.0f} ms at {gap_at - called:+.2f}s, latest {late * 1000:.0f} ms late at "
              f"{late_at - called:+.2f}s, of which {machine * 1000:.0f} ms waiting for a CPU or the disk")
    print(report)
    assert hwm < RSS_MAX, report
    assert slowest_loop < scaled(STATUS_MAX_S), report
    # The loop's part (+ the 10 ms steps of /proc/uptime). Before issue 14
    # one "logs" stopped the loop for 5.8 s: the raw figures get a looser
    # bound that still catches that.
    assert late - machine < scaled(TICK_GAP_MAX_S) + 0.01, report
    assert slowest < scaled(5 * STATUS_MAX_S), report
    assert gap < scaled(10 * TICK_GAP_MAX_S), report


def test_logs_tail_of_a_160mb_log_reads_only_its_end(env):
    m, size = start_with_big_log(env, ["sleep", "1000"])
    with client(m) as c:
        for n in (1, 3, 1000):
            t0 = time.monotonic()
            r = c.call("logs", {"tail": n})
            took = time.monotonic() - t0
            assert [x["text"] for x in r["lines"]] == \
                [big_text(k) for k in range(BIG_LINES - n, BIG_LINES)]
            assert r["more"] is False and r["partial"] is False
            assert took < scaled(0.2), f"tail={n} took {took * 1000:.0f} ms"
        # More than one answer holds: the rest as notifications, in order.
        r = c.call("logs", {"tail": 100_000, "chunked": True})
        assert r["more"] is True
        texts = [x["text"] for x in r["lines"]]
        while True:
            n = c.next_notification(20)
            if n["method"] == "log-end":
                break
            texts.append(n["params"]["text"])
        assert n["params"] == {"eof": True}
        assert texts == [big_text(k) for k in range(BIG_LINES - 100_000, BIG_LINES)]
    hwm = proc_status(m.daemon_pid, "VmHWM")
    stop(env, m)
    assert hwm < RSS_MAX, f"VmHWM {hwm / MiB:.1f} MiB"


def test_logs_of_a_big_log_without_tail_chunked_or_follow_is_refused_with_a_hint(env):
    """An old client that reads only the answer must not get a cut log
    silently: past one answer (1 MiB of lines) it gets an error telling it
    what to ask for instead, at once, and the monitor stays small."""
    m, size = start_with_big_log(env, ["sleep", "1000"])
    with client(m) as c:
        t0 = time.monotonic()
        with pytest.raises(ControlError) as e:
            c.call("logs")
        took = time.monotonic() - t0
        assert e.value.code == -32004
        assert '"tail"' in e.value.message and '"chunked"' in e.value.message
        assert took < scaled(0.5), f"{took * 1000:.0f} ms"
        # The connection goes on serving.
        assert c.call("status")["state"] == "running"
    hwm = proc_status(m.daemon_pid, "VmHWM")
    stop(env, m)
    assert hwm < RSS_MAX, f"VmHWM {hwm / MiB:.1f} MiB"


def test_logs_small_log_is_one_answer_as_before(env):
    """What existing clients read: all lines in the answer, "more" false,
    nothing after it."""
    m = env.monitor(["sh", "-c", "for i in 1 2 3; do echo l$i; done; printf part; sleep 100"])
    m.run()
    m.wait_log_contains(b"part")
    with client(m) as c:
        r = c.call("logs")
        assert [(x["text"], x["partial"]) for x in r["lines"]] == \
            [("l1", False), ("l2", False), ("l3", False), ("part", True)]
        assert r["partial"] is True and r["more"] is False
        r = c.call("logs", {"chunked": True, "tail": 2})
        assert [x["text"] for x in r["lines"]] == ["l3", "part"]
        assert r["more"] is False
        assert c.call("status")["state"] == "running"
        assert c.notifications == []
    stop(env, m)


def test_logs_to_a_client_that_stops_reading_waits_for_it_in_bounded_memory(env):
    """A client that stops reading in the middle of a 160 MB log is waited
    for (the monitor reads no more of the file meanwhile), not fed until
    the API's 16 MiB output bound cuts it off; then it gets the rest."""
    m, size = start_with_big_log(env, ["sleep", "1000"])
    reader = RawReader(m, {"chunked": True})
    chunks = reader.chunks()
    first = next(chunks)
    base = proc_status(m.daemon_pid, "VmRSS")
    time.sleep(2)
    paused = proc_status(m.daemon_pid, "VmRSS")
    with client(m) as c:
        assert c.call("status")["state"] == "running"
    _, after = read_big_backlog(itertools.chain([first], chunks), BIG_LINES, False)
    assert after[-1]["method"] == "log-end"
    reader.close()
    stop(env, m)
    assert paused - base < rss_limit(8 * MiB), f"VmRSS {base / MiB:.1f} -> {paused / MiB:.1f} MiB while paused"


def test_logs_readers_at_once_are_limited(env):
    m = env.monitor(["sleep", "1000"])
    m.run()
    with client(m) as c:
        for _ in range(32):
            assert c.call("logs", {"tail": 0, "follow": True})["lines"] == []
        with pytest.raises(ControlError) as e:
            c.call("logs", {"tail": 0})
        assert e.value.code == -32006 and "32" in e.value.message
    # The client's going away ends its readers.
    with client(m) as c:
        wait_for(lambda: "lines" in _logs_or_error(c), 5, "a free reader")
    stop(env, m)


def _logs_or_error(c):
    try:
        return c.call("logs", {"tail": 0})
    except ControlError as e:
        return {"error": e.code}


ENDLESS = (20 if UNDER_VALGRIND else 150) * 1000 * 1000


def test_logs_follow_of_a_150mb_line_without_newline_comes_in_bounded_partial_pieces(env, work):
    """Defect 2: the follower held a line without newline whole (150 MB ->
    149 MB RSS). Now it hands it out in pieces of at most 64 KiB, each
    "partial": true, and the monitor's memory stays bounded."""
    shared = os.path.join(work, "shared")
    os.makedirs(shared)
    go, end = f"{SHARED_IN_CTR}/go", f"{SHARED_IN_CTR}/end"
    m = env.monitor(["sh", "-c",
                     f"echo ready; while [ ! -e {go} ]; do usleep 20000; done; "
                     f"head -c {ENDLESS} /dev/zero | tr '\\0' x; "
                     f"while [ ! -e {end} ]; do usleep 20000; done; exit 7"],
                    bundle_opts={"shared_dir": shared})
    m.run()
    m.wait_log_contains(b"ready\n")
    with client(m, timeout=30) as c:
        r = c.call("logs", {"tail": 0, "follow": True})
        assert r["lines"] == []
        open(os.path.join(shared, "go"), "w").close()
        total, pieces, biggest, rss_max, hwm = 0, 0, 0, 0, 0
        while True:
            if not hwm and total > ENDLESS - 64 * 1024:
                # All but the last piece, which ends with the container.
                hwm = proc_status(m.daemon_pid, "VmHWM")
                open(os.path.join(shared, "end"), "w").close()
            n = c.next_notification(30)
            assert n is not None, "EOF"
            if n["method"] == "log-end":
                break
            assert n["method"] == "log", n
            p = n["params"]
            assert p["stream"] == "stdout" and p["partial"] is True
            assert set(p["text"]) <= {"x"}
            total += len(p["text"])
            pieces += 1
            biggest = max(biggest, len(p["text"]))
            if pieces % 200 == 0:
                rss_max = max(rss_max, proc_status(m.daemon_pid, "VmRSS"))
    assert total == ENDLESS
    assert n == {"jsonrpc": "2.0", "method": "log-end", "params": {"exit_code": 7}}
    m.wait_exit_file(15)
    m.assert_clean_exit()
    print(f"{pieces} pieces, biggest {biggest}, VmHWM {hwm / MiB:.1f} MiB, "
          f"VmRSS max {rss_max / MiB:.1f} MiB")
    assert biggest <= 64 * 1024
    assert pieces >= ENDLESS // (64 * 1024)
    assert hwm < RSS_MAX, f"VmHWM {hwm / MiB:.1f} MiB"
