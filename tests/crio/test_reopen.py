"""ReopenContainerLog, as CRI-O 1.33-1.36 does it for the kubelet's log
rotation (internal/oci/runtime_oci.go ReopenContainerLog; the kubelet's
pkg/kubelet/logs/container_log_manager.go rotateLatestLog renames the log
to <log>.<YYYYmmdd-HHMMSS> first and renames it back if the reopen fails).

CRI-O writes "2 0 0\\n" on <bundle>/ctl and then waits, without a timeout,
for an fsnotify Create or Write event whose name is exactly the log path,
on a watch of the log's directory added for that one call."""
import errno
import os
import re
import shutil
import time

import pytest

from ctrtest import k8slog, procs
from ctrtest.wait import scaled, wait_for

SEQ_RE = re.compile(rb"^seq (\d+)$")
SEQ_SCRIPT = "i=0; while :; do echo seq $i; i=$((i+1)); sleep 0.05; done"


def _seq_lines(path):
    return [int(SEQ_RE.match(l).group(1))
            for l in k8slog.lines(k8slog.read(path))]


def _wait_lines(c, n, path=None):
    path = path or c.log_path

    def enough():
        try:
            return len(_seq_lines(path)) >= n
        except FileNotFoundError:
            return False
    wait_for(enough, scaled(10), f"{n} lines in {path}")


@pytest.fixture
def logging_ctr(node):
    c = node.container(["sh", "-c", SEQ_SCRIPT])
    node.run(c)
    _wait_lines(c, 3)
    return c


def _stop(node, c):
    node.runc.kill(c.id, "KILL")
    snap = node.wait_exit_event(c)
    assert node.exit_code_from_file(snap["persist_exit"]) == 137
    return snap


def test_reopen_without_rotation_replaces_log_and_event_arrives(node):
    """A quiet container, so no Write of its own can satisfy CRI-O: the
    event is the monitor putting a new file at the log path."""
    c = node.container(["sleep", "300"])
    node.run(c)
    wait_for(lambda: os.path.exists(c.log_path), scaled(5), "the log file")
    ino = os.stat(c.log_path).st_ino
    res = node.reopen_container_log(c)
    assert res.watch_error is None
    assert res.event is not None and "Create" in res.event.ops, res.events
    assert res.event.name == c.log_path
    assert os.stat(c.log_path).st_ino != ino
    assert res.elapsed < scaled(5)
    _stop(node, c)


def test_kubelet_rotation_twice_loses_and_repeats_no_line(node, logging_ctr):
    c = logging_ctr
    rotated = []
    for _ in range(2):
        path, res = node.kubelet_rotate(c)
        rotated.append(path)
        assert res.watch_error is None
        # the file CRI-O waits for did not exist after the rename: only the
        # monitor can have created it
        assert res.event is not None and "Create" in res.event.ops, res.events
        assert os.path.exists(c.log_path)
        _wait_lines(c, 3)          # new output goes to the new file
    _stop(node, c)

    seqs = []
    for p in rotated + [c.log_path]:
        seqs.append(_seq_lines(p))   # each file parses as k8s-file
    assert all(seqs), [len(s) for s in seqs]
    flat = [n for s in seqs for n in s]
    assert flat == list(range(len(flat))), "lines lost, repeated or reordered"
    # everything in a rotated file predates everything after it
    assert seqs[0][-1] < seqs[1][0] and seqs[1][-1] < seqs[2][0]


def test_reopen_after_log_dir_removed_and_recreated(node, logging_ctr):
    """CRI-O adds a fresh watch on every call, so a directory that was
    removed and made again is watched as it now is."""
    c = logging_ctr
    shutil.rmtree(c.log_dir)
    os.makedirs(c.log_dir)
    res = node.reopen_container_log(c)
    assert res.watch_error is None
    assert res.event is not None and "Create" in res.event.ops, res.events
    _wait_lines(c, 3)
    _stop(node, c)
    seqs = _seq_lines(c.log_path)
    assert seqs == list(range(seqs[0], seqs[0] + len(seqs)))


@pytest.mark.conmon_differs(
    "exits when the reopened log cannot be created (reopen_k8s_file: "
    "pexitf 'Failed to open log file'), leaving the container unmonitored")
def test_reopen_with_log_dir_gone_keeps_container_monitored(node,
                                                            logging_ctr):
    """Log directory removed and not (yet) recreated: CRI-O 1.33-1.36's
    Watcher.Add fails, it writes "2 0 0" anyway and returns without
    waiting. The monitor must survive that request, keep the container,
    and reopen once the directory is back."""
    c = logging_ctr
    mon = c.read_conmon_pid_file()
    shutil.rmtree(c.log_dir)
    res = node.reopen_container_log(c)
    assert isinstance(res.watch_error, OSError)
    assert res.watch_error.errno == errno.ENOENT
    assert res.event is None
    time.sleep(0.5)
    assert not procs.is_gone(mon), "the monitor died on the reopen request"
    assert node.runc.state(c.id)["status"] == "running"

    os.makedirs(c.log_dir)
    res = node.reopen_container_log(c)
    assert res.event is not None and "Create" in res.event.ops, res.events
    _wait_lines(c, 3)
    _stop(node, c)
    wait_for(lambda: procs.is_gone(mon), scaled(10), f"monitor {mon} to exit")
