"""/proc inspection.

PID 1 on the test host reaps lazily, so a process counts as "gone" when it
is missing *or* a zombie."""
import os


def _status(pid):
    try:
        with open(f"/proc/{pid}/status") as f:
            return dict(line.rstrip("\n").split(":\t", 1)
                        for line in f if ":\t" in line)
    except (FileNotFoundError, ProcessLookupError):
        return None


def state(pid):
    """Single-letter state ('R', 'S', 'Z', ...) or None if missing."""
    st = _status(pid)
    return st["State"][0] if st else None


def is_gone(pid):
    return state(pid) in (None, "Z", "X")


def ppid(pid):
    st = _status(pid)
    return int(st["PPid"]) if st else None


def stat_fields(pid):
    """/proc/<pid>/stat split after the comm field: index 0 is `state`,
    so pgrp is [2], session [3], tty_nr [4] (see proc(5), minus 3)."""
    with open(f"/proc/{pid}/stat") as f:
        data = f.read()
    return data[data.rindex(")") + 2:].split()


def session_id(pid):
    return int(stat_fields(pid)[3])


def pgrp(pid):
    return int(stat_fields(pid)[2])


def tty_nr(pid):
    return int(stat_fields(pid)[4])


def all_pids():
    return [int(d) for d in os.listdir("/proc") if d.isdigit()]


def children(pid):
    """Pids whose PPid is pid (any state)."""
    out = []
    for p in all_pids():
        if ppid(p) == pid:
            out.append(p)
    return out


def zombie_children(pid):
    return [p for p in children(pid) if state(p) == "Z"]


def cmdline(pid):
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return [a.decode(errors="replace") for a in f.read().split(b"\0")
                    if a]
    except (FileNotFoundError, ProcessLookupError):
        return []


def live_pids_mentioning(word):
    """Live (non-zombie) processes whose argv contains `word` as a
    substring of some argument: finds monitors/runtimes for a test cid."""
    me = os.getpid()
    found = []
    for p in all_pids():
        if p == me or is_gone(p):
            continue
        if any(word in a for a in cmdline(p)):
            found.append(p)
    return found


def fds(pid):
    """Sorted fd numbers open in pid."""
    return sorted(int(n) for n in os.listdir(f"/proc/{pid}/fd"))


def rss_limit(nbytes):
    """A bound on a monitor's RSS for an assertion. Under memcheck (the
    integration-valgrind run sets VALGRIND_LOG_DIR) the process also holds
    valgrind itself (~50 MiB) and shadow memory about as large as its own
    heap, so the bound is doubled and 96 MiB added there."""
    if os.environ.get("VALGRIND_LOG_DIR"):
        return 2 * nbytes + 96 * 1024 * 1024
    if under_asan():
        # AddressSanitizer keeps freed memory in its quarantine (256 MiB
        # by default) and shadows the heap: only a runaway is caught.
        return 2 * nbytes + 512 * 1024 * 1024
    return nbytes


def under_asan():
    """The integration-asan run: tests/run-all sets ASAN_OPTIONS for it."""
    return bool(os.environ.get("ASAN_OPTIONS"))
