"""--syslog: the monitor's own diagnostics reach syslog(3) -- here the sandbox
journald's /dev/log -- in conmon's format (spec §6.6):

    ident "conmon" (conmon calls no openlog, so glibc uses its program name;
    ctrmon sets that ident itself), facility user, LOG_ERR for errors and
    LOG_INFO otherwise; text "conmon " + first 20 chars of CID (or of
    "CID: TAG") + " <KIND>: " + message.

A fake runtime that fails makes the daemon (after the fork, stderr already
/dev/null) log an error; --no-container-partial-message without journald gives
a warning from the foreground process."""
import json
import time
import uuid

from sbtools import make_rootfs, monitor_binary, monitor_runs, out

WARNING = "--no-container-partial-message has no effect without journald log driver"
RUNTIME_SAYS = "badrt: no such luck"


def test_dev_log_is_journald_socket(systemd_sandbox):
    """The sandbox's /dev is private: /dev/log must be journald's dev-log."""
    p = systemd_sandbox.run("readlink -f /dev/log; test -S /dev/log && echo socket")
    assert p.stdout.split() == ["/run/systemd/journal/dev-log", "socket"], out(p)


def test_syslog_format_from_foreground_and_daemon(systemd_sandbox, tmp_path):
    monitor = monitor_binary()
    ident = "conmon"  # conmon: glibc's __progname; ctrmon: openlog("conmon")
    runtime = tmp_path / "badrt"
    runtime.write_text(f"#!/bin/sh\necho '{RUNTIME_SAYS}' >&2\nexit 1\n")
    runtime.chmod(0o755)
    long_cid = "ctrsl" + uuid.uuid4().hex
    short_cid = "sl" + uuid.uuid4().hex[:8]
    quiet_cid = "ctrsq" + uuid.uuid4().hex
    match = [f"SYSLOG_IDENTIFIER={ident}", "--since=-5min"]

    def run(cid, *args):
        return {"cid": cid, "runtime": str(runtime), "logs": ["none"], "journal_match": match,
                "args": ["--no-container-partial-message", *args], "min_entries": 0}

    reports = monitor_runs(systemd_sandbox, monitor, make_rootfs(tmp_path / "rootfs"),
                           tmp_path / "work",
                           [run(long_cid, "--syslog"), run(short_cid, "--syslog", "--log-tag", "tg"),
                            run(quiet_cid)])
    for r in reports:
        # Validation passed (the warning only), the failure came on the sync pipe.
        assert r["monitor_rc"] == 0 and r["stderr"] == f"[conmon:w]: {WARNING}\n", r
        assert r["sync"] and r["sync"][0]["data"] == -1, r
        assert RUNTIME_SAYS in r["sync"][0]["message"], r

    def query():
        p = systemd_sandbox.run(["journalctl", "--no-pager", "-o", "json", *match], timeout=30)
        return [json.loads(line) for line in p.stdout.splitlines() if line.strip()]

    # Four entries are due (two per --syslog run); journald files them
    # asynchronously. Then a little longer for anything from the quiet run.
    deadline = time.monotonic() + 10
    while True:
        entries = query()
        n = sum(1 for e in entries for c in (long_cid[:20], short_cid) if c in e["MESSAGE"])
        if n >= 4 or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    time.sleep(0.3)
    entries = query()

    for r, who in ((reports[0], long_cid[:20]), (reports[1], f"{short_cid}: tg")):
        mine = [e for e in entries if e["MESSAGE"].startswith(f"conmon {who} ")]
        print(f"\n{r['cid']}:", *[{k: e.get(k) for k in (
            "MESSAGE", "PRIORITY", "SYSLOG_FACILITY", "SYSLOG_IDENTIFIER", "_PID", "_TRANSPORT")}
            for e in mine], sep="\n  ")
        got = sorted((e["MESSAGE"], e["PRIORITY"], e["SYSLOG_FACILITY"], e["SYSLOG_IDENTIFIER"],
                      e["_TRANSPORT"]) for e in mine)
        want = sorted([
            (f"conmon {who} <nwarn>: {WARNING}", "6", "1", ident, "syslog"),
            (f"conmon {who} <error>: Runtime failed with status 1: {RUNTIME_SAYS}",
             "3", "1", ident, "syslog"),
        ])
        assert got == want, mine
        pids = {e["PRIORITY"]: int(e["_PID"]) for e in mine}
        # The warning is the foreground process's, the error the daemon's.
        assert pids["6"] == r["monitor_pid"] and pids["3"] != r["monitor_pid"], (pids, r)

    assert [e for e in entries if quiet_cid[:20] in e["MESSAGE"]] == [], \
        "without --syslog nothing may reach syslog"
