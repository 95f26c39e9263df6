"""The monitor's journald driver against the real journald of the systemd
sandbox (spec §6.4): busybox containers under runc, then every field of every
entry from `journalctl -o json --all`. With `-l journald -l k8s-file:PATH` the
k8s log shows exactly how the monitor read the container's output, so the
journal entries are compared with conmon's partial-line rules replayed on
those reads. Also the journald-related argument errors (spec §1.3 step 15)."""
import base64
import os
import subprocess
import uuid

import pytest

from sbtools import by_seqnum, field_bytes, make_rootfs, monitor_binary, monitor_runs

K8S_HEADER = 43      # "2026-11-22T23:13:55.215615259+00:00 stdout "
PARTIAL_MAX = 8192   # conmon's STDIO_BUF_SIZE
FIELDS = ("MESSAGE", "CONTAINER_ID", "CONTAINER_ID_FULL", "CONTAINER_NAME", "CONTAINER_TAG",
          "SYSLOG_IDENTIFIER", "PRIORITY", "CONTAINER_PARTIAL_MESSAGE", "A", "B_2")


def new_cid(prefix):
    return prefix + uuid.uuid4().hex  # > 12 chars, unique 12-char prefix


def k8s_segments(data):
    """[(stream, complete, bytes, ts)] of a k8s-file log: one per record, i.e.
    one per line piece the monitor saw (a P record is the end of a read)."""
    assert data.endswith(b"\n"), data[-100:]
    segs = []
    for rec in data[:-1].split(b"\n"):
        stream = rec[36:42].decode()
        assert stream in ("stdout", "stderr") and rec[42:43] == b" ", rec[:50]
        tag, content = rec[K8S_HEADER:K8S_HEADER + 2], rec[K8S_HEADER + 2:]
        assert tag in (b"F ", b"P "), rec[:50]
        segs.append((stream, tag == b"F ", content + b"\n" if tag == b"F " else content, rec[:35]))
    return segs


def k8s_reads(segs):
    """[(stream, bytes)]: the monitor's reads. The records of one read share
    its timestamp and stream, and only the last one can be P."""
    reads = []
    prev = None
    for stream, complete, data, ts in segs:
        if prev and prev == (stream, ts):
            reads[-1][1].append(data)
        else:
            reads.append((stream, [data]))
        prev = (stream, ts) if complete else None
    return [(s, b"".join(d)) for s, d in reads]


def stream_bytes(segs, stream):
    return b"".join(d for s, _, d, _ in segs if s == stream)


def replay_conmon(reads):
    """Spec §6.4 on the monitor's reads, cut into the <= 8192-byte reads conmon
    makes: [(MESSAGE bytes, priority, partial)]."""
    default = {"stdout": 6, "stderr": 3}
    buf = {"stdout": b"", "stderr": b""}
    entries = []
    for stream, chunk in reads:
        for at in range(0, len(chunk), PARTIAL_MAX):
            window = chunk[at:at + PARTIAL_MAX]
            lines = window.split(b"\n")
            pieces = [line + b"\n" for line in lines[:-1]] + ([lines[-1]] if lines[-1] else [])
            for data in pieces:
                complete = data.endswith(b"\n")
                if not complete and len(data) < PARTIAL_MAX - len(buf[stream]):
                    buf[stream] += data
                    continue
                prio, text = default[stream], data
                if (not buf[stream] and len(data) >= 3 and data[:1] == b"<"
                        and 0x30 <= data[1] <= 0x37 and data[2:3] == b">"):
                    prio, text = data[1] - 0x30, data[3:]
                entries.append((buf[stream] + text, prio, not complete))
                buf[stream] = b""
    for stream in ("stdout", "stderr"):  # the flush at exit
        if buf[stream]:
            entries.append((buf[stream], default[stream], True))
    return entries


def summary(entries):
    """(MESSAGE, PRIORITY, partial flag) per entry, in journal order."""
    return [(field_bytes(e, "MESSAGE"), int(e["PRIORITY"]), e.get("CONTAINER_PARTIAL_MESSAGE"))
            for e in by_seqnum(entries)]


def assert_fixed_fields(entries, cid, name=None, tag=None, labels=None):
    for e in entries:
        want = {"CONTAINER_ID": cid[:12], "CONTAINER_ID_FULL": cid, "CONTAINER_NAME": name,
                "CONTAINER_TAG": tag, "SYSLOG_IDENTIFIER": tag or name or cid[:12],
                "A": None, "B_2": None}
        want.update(labels or {})
        got = {k: e.get(k) for k in want}
        assert got == want, e
        assert e.get("CONTAINER_PARTIAL_MESSAGE") in (None, "true"), e
        assert e["_TRANSPORT"] == "journal", e


def show(entry):
    """The fields this suite is about, for -s output and failure messages."""
    return {k: entry.get(k) for k in FIELDS if k in entry}


@pytest.fixture(scope="module")
def journald_runs(systemd_sandbox, tmp_path_factory):
    """The three containers, run once for the module (one sandbox exec)."""
    monitor = monitor_binary()
    base = tmp_path_factory.mktemp("journald")
    rootfs = make_rootfs(base / "rootfs")
    cids = {k: new_cid(f"ctrj{k}") for k in "abc"}
    runs = [
        {   # journald alone, --name, --log-priority-prefix: stream priorities,
            # prefixes, final fragment
            "cid": cids["a"], "args": ["-n", "jA", "--log-priority-prefix"], "min_entries": 8,
            "script": "printf 'hello\\n'; printf 'oops\\n' >&2; printf '<3>stdout at err\\n'; "
                      "printf '<5>stderr notice\\n' >&2; printf '<8>eight\\n<>empty\\n<<0>>double\\n'; "
                      "sleep 0.1; printf 'no newline at end'",
        },
        {   # journald + k8s-file, --name, --log-tag, --log-label x2, long line,
            # --log-priority-prefix
            "cid": cids["b"], "k8s": True, "min_entries": 7,
            "args": ["-n", "jB", "--log-tag", "tagB", "--log-label", "A=1", "--log-label", "B_2=x",
                     "--log-priority-prefix"],
            "script": "printf 'first\\n'; printf '<3>err via prefix\\n'; printf '<3>frag'; sleep 0.2; "
                      "printf 'ment\\n'; head -c 20000 /dev/zero | tr '\\0' x; sleep 0.1; "
                      "printf 'E1\\n' >&2; printf '<4>warn\\n' >&2; printf 'final no newline' >&2",
        },
        {   # no name, no tag, --no-container-partial-message, no prefix parsing
            "cid": cids["c"], "args": ["--no-container-partial-message"], "min_entries": 4,
            "script": "head -c 20000 /dev/zero | tr '\\0' y; sleep 0.1; printf '<5>plain\\n' >&2; "
                      "sleep 0.1; printf 'tail' >&2",
        },
    ]
    reports = monitor_runs(systemd_sandbox, monitor, rootfs, base / "work", runs)
    for r in reports:
        assert r["monitor_rc"] == 0 and r["exit_file"] == "0", r
        assert r["sync"] and r["sync"][0]["data"] > 0, r
    return dict(zip("abc", reports))


def test_journald_alone_fields_priorities_and_final_fragment(journald_runs):
    r = journald_runs["a"]
    entries = r["entries"]
    print("\nrun a:", *[show(e) for e in by_seqnum(entries)], sep="\n  ")
    assert_fixed_fields(entries, r["cid"], name="jA")
    got = sorted(summary(entries))
    want = sorted([
        (b"hello\n", 6, None), (b"oops\n", 3, None),
        (b"stdout at err\n", 3, None), (b"stderr notice\n", 5, None),
        (b"<8>eight\n", 6, None), (b"<>empty\n", 6, None), (b"<<0>>double\n", 6, None),
        (b"no newline at end", 6, "true"),
    ])
    assert got == want, [show(e) for e in entries]


def test_journald_and_k8s_file_get_every_byte_split_as_conmon(journald_runs):
    r = journald_runs["b"]
    log = base64.b64decode(r["k8s_log"])
    segs = k8s_segments(log)
    assert stream_bytes(segs, "stdout") == (b"first\n<3>err via prefix\n<3>fragment\n" + b"x" * 20000)
    assert stream_bytes(segs, "stderr") == b"E1\n<4>warn\nfinal no newline"
    entries = r["entries"]
    reads = k8s_reads(segs)
    print("\nrun b reads:", [(s, len(d)) for s, d in reads])
    print("run b:", *[{**show(e), "MESSAGE": (lambda m: m if len(m) < 80 else f"<{len(m)} bytes>")(
        field_bytes(e, "MESSAGE"))} for e in by_seqnum(entries)], sep="\n  ")
    assert_fixed_fields(entries, r["cid"], name="jB", tag="tagB", labels={"A": "1", "B_2": "x"})
    want = [(m, p, "true" if partial else None) for m, p, partial in replay_conmon(reads)]
    assert summary(entries) == want
    # Both streams reach the journal complete, prefixes stripped.
    got = summary(entries)
    assert b"".join(m for m, p, _ in got if m.startswith(b"x")) == b"x" * 20000
    assert (b"err via prefix\n", 3, None) in got
    assert (b"final no newline", 3, "true") in got
    if ("stdout", b"<3>frag") in reads:  # read on its own (the sleep): buffered
        assert (b"<3>fragment\n", 6, None) in got


def test_no_partial_flag_and_identifier_falls_back_to_short_id(journald_runs):
    r = journald_runs["c"]
    entries = by_seqnum(r["entries"])
    print("\nrun c:", *[{**show(e), "MESSAGE": len(field_bytes(e, "MESSAGE"))} for e in entries],
          sep="\n  ")
    assert_fixed_fields(entries, r["cid"])
    assert all("CONTAINER_PARTIAL_MESSAGE" not in e for e in entries), [show(e) for e in entries]
    ys = [field_bytes(e, "MESSAGE") for e in entries if e["PRIORITY"] == "6"]
    assert b"".join(ys) == b"y" * 20000
    # Never more than the buffer plus one 8192-byte read; at least 2 entries.
    assert len(ys) >= 2 and all(len(m) <= 2 * PARTIAL_MAX - 1 for m in ys), [len(m) for m in ys]
    # Without --log-priority-prefix a "<5>" is text (conmon 2.1; podman 4
    # reads only priorities 6 and 3 back).
    assert [field_bytes(e, "MESSAGE") for e in entries if e["PRIORITY"] == "3"] == [b"<5>plain\n", b"tail"]


# ---- argument errors (no journal needed) ------------------------------------

LABEL_ERRORS = [
    ("=x", "Container labels must be in format LABEL=VALUE (no LABEL present in '=x')"),
    ("A", "Container labels must be in format LABEL=VALUE (none or more than one '=' present in 'A')"),
    ("A=1=2", "Container labels must be in format LABEL=VALUE "
              "(none or more than one '=' present in 'A=1=2')"),
    ("a=1", "Container label names must contain only uppercase letters, numbers and underscore "
            "(in 'a=1')"),
    ("A-B=1", "Container label names must contain only uppercase letters, numbers and underscore "
              "(in 'A-B=1')"),
]


def run_monitor_args(tmp_path, cid, *extra):
    monitor = monitor_binary()
    env = {k: v for k, v in os.environ.items() if not k.startswith("_OCI_")}
    return subprocess.run([monitor, "--api-version", "1", "-c", cid, "-u", cid,
                           "-r", "/usr/sbin/runc", "-b", str(tmp_path), *extra],
                          cwd=tmp_path, env=env, stdin=subprocess.DEVNULL, capture_output=True,
                          text=True, timeout=30)


@pytest.mark.parametrize("cid", ["0123456789ab", "x"])
def test_short_cid_with_journald_is_refused(tmp_path, cid):
    p = run_monitor_args(tmp_path, cid, "-l", "journald")
    assert (p.returncode, p.stdout, p.stderr) == (
        1, "", "[conmon:e]: Container ID must be longer than 12 characters\n")


@pytest.mark.parametrize("label,message", LABEL_ERRORS)
def test_bad_label_is_refused(tmp_path, label, message):
    p = run_monitor_args(tmp_path, new_cid("lbl"), "-l", "journald", "--log-label", "OK=1",
                         "--log-label", label)
    assert (p.returncode, p.stdout, p.stderr) == (1, "", f"[conmon:e]: {message}\n")


# ---- podman --log-driver journald -------------------------------------------

def test_podman_log_driver_journald(systemd_sandbox):
    """podman (root, private world) runs the monitor with -l journald: `podman
    logs` reads a and b back from the journal, the entries carry
    CONTAINER_NAME, and the monitor podman ran is CTRMON_BIN."""
    import json
    import shutil

    from sbtools import HERE, PYTHON, out

    monitor = monitor_binary()
    if not shutil.which("podman"):
        pytest.skip("podman not installed")
    p = systemd_sandbox.run([PYTHON, os.path.join(HERE, "podman_journald_probe.py"), monitor],
                            timeout=150)
    assert p.returncode == 0 and p.stdout.strip(), out(p)
    r = json.loads(p.stdout.splitlines()[-1])
    entries = r.pop("entries", [])
    print("\npodman:", *[show(e) for e in entries], sep="\n  ")
    assert r["problems"] == [] and not r["base_left"], r
    assert r["run"] == {"rc": 0, "stdout": "a\n", "stderr": "b\n"}, r
    assert r["log_driver"] == "journald", r
    assert r["logs"] == {"rc": 0, "stdout": "a\n", "stderr": "b\n"}, r
    assert r["monitor_exe"] == os.path.realpath(monitor), r
    assert r["monitor_argv"][r["monitor_argv"].index("-l") + 1] == "journald", r
    cid = r["cid"]
    assert sorted(summary(entries)) == [(b"a\n", 6, None), (b"b\n", 3, None)], entries
    assert_fixed_fields(entries, cid, name="jtest")
