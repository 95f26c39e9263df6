"""What the monitor prepares while the container runs so that the exit
files follow the container's exit quickly (monitor/lifecycle.c,
monitor/exit-report.c): unnamed exit files made at start, a hold on the
container's namespaces so their teardown happens after the exit files, and
the container reaped only once they exist."""
import os
import signal

from ctrtest.wait import wait_for


def _fd_targets(pid):
    out = []
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            out.append(os.readlink(f"/proc/{pid}/fd/{fd}"))
        except FileNotFoundError:
            pass
    return out


NAMESPACES = ("mnt", "net", "ipc", "uts", "cgroup", "time", "user")


def test_running_monitor_holds_namespaces_and_unnamed_exit_files(env):
    m = env.monitor(["sh", "-c", "trap 'exit 3' TERM; echo ready; while :; do sleep 0.1; done"])
    pid = m.run()
    theirs = {n: os.readlink(f"/proc/{pid}/ns/{n}") for n in NAMESPACES}
    ours = {n: os.readlink(f"/proc/self/ns/{n}") for n in NAMESPACES}
    own = {n for n in NAMESPACES if theirs[n] != ours[n]}
    # The test bundle unshares these (ctrtest.bundle).
    assert {"mnt", "net", "ipc", "uts"} <= own, own
    # Prepared right after the pid report, while the container runs: every
    # namespace of the container's own is held, none of ours.
    wait_for(lambda: theirs["mnt"] in _fd_targets(m.daemon_pid), 10,
             "the monitor to hold the container's mount namespace")
    targets = _fd_targets(m.daemon_pid)
    for n in own:
        assert theirs[n] in targets, (n, targets)
    for n in set(NAMESPACES) - own:
        assert ours[n] not in targets, (n, targets)
    assert any(t.startswith(m.exit_dir + "/#") for t in targets), targets
    assert any(t.startswith(m.persist_dir + "/#") for t in targets), targets
    # Unnamed: nobody sees an exit file, or a temporary one, before the end.
    assert os.listdir(m.exit_dir) == []
    assert "exit" not in os.listdir(m.persist_dir)

    # A namespace's init ignores SIGTERM until its trap is set.
    m.wait_log_contains(b"ready")
    m.signal(signal.SIGTERM)
    assert m.wait_exit_file() == "3"
    m.assert_clean_exit()
    assert os.listdir(m.exit_dir) == [m.cid]
    assert [n for n in os.listdir(m.persist_dir) if n.startswith("exit")] == ["exit"]
    with open(m.persist_exit) as f:
        assert f.read() == "3"
    assert os.stat(m.exit_file).st_mode & 0o7777 == 0o644


def test_exit_file_written_when_exit_dir_appears_only_later(env):
    # No unnamed file can be made in a missing directory: the exit file is
    # then written the classic way (temp file and rename) at the end.
    m = env.monitor(["sh", "-c", "trap 'exit 5' TERM; echo ready; while :; do sleep 0.1; done"])
    os.rmdir(m.exit_dir)
    pid = m.run()
    ns = os.readlink(f"/proc/{pid}/ns/mnt")
    wait_for(lambda: ns in _fd_targets(m.daemon_pid), 10,
             "the monitor to be done preparing")
    os.mkdir(m.exit_dir)
    m.wait_log_contains(b"ready")
    m.signal(signal.SIGTERM)
    assert m.wait_exit_file() == "5"
    m.assert_clean_exit()
    assert os.listdir(m.exit_dir) == [m.cid]
