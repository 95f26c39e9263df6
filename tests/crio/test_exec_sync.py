"""ExecSyncContainer (exec probes and `crictl exec --sync`), as CRI-O
1.33-1.36 does it (internal/oci/runtime_oci.go ExecSyncContainer,
prepareExec, prepareProcessExec, parseLog, TruncateAndReadFile)."""
import os

import pytest

import crioemu
from ctrtest import k8slog, procs
from ctrtest.wait import scaled, wait_for


@pytest.fixture
def running(node):
    """A running container that lives until the test ends."""
    c = node.container(["sleep", "300"])
    node.run(c)
    yield c
    node.runc.kill(c.id, "KILL")
    node.wait_exit_event(c)


def _expected_exec_argv(node, c, x, timeout):
    return [node.monitor_path,
            "-c", c.id, "-n", c.name, "-r", node.runtime_path,
            "-p", x.pid_file, "-e", "-l", x.log_path,
            "--socket-dir-path", node.attach_socket_dir,
            "--log-level", "info",
            "--sync",
            "--log-global-size-max", "16777216",
            "-T", str(timeout),
            "--exec-process-spec", x.process_file,
            "--runtime-arg", f"--root={node.runtime_root}"]


def test_exec_sync_reports_exit_code_and_output_from_k8s_log(node, running,
                                                              probe):
    sockets_before = set(os.listdir(node.attach_socket_dir))
    x = node.exec_sync(running, ["sh", "-c", "echo out; echo err >&2; exit 3"],
                       timeout=10, probe=probe)

    # CRI-O's argv (no --api-version, no -b/-u/--exit-dir/-P), its env, and
    # a plain pipe as the sync fd
    assert x.argv == _expected_exec_argv(node, running, x, 10)
    assert "--api-version" not in x.argv
    assert x.env == ["CRI_O_EXTERNAL=1",
                     f"PATH={crioemu.CRIO_PROCESS_PATH}",
                     "_OCI_SYNCPIPE=3", "_OCI_STARTPIPE=4"]
    assert crioemu.is_fifo(x.sync_fd_mode)

    # exactly one JSON value on the pipe, the legacy exit_code key (a
    # {"pid": ...} or {"data": ...} first would decode as exit code 0)
    assert x.sync_raw == b'{"exit_code": 3}\n', x.sync_raw
    assert x.error is None, x.error
    assert x.exit_code == 3
    # the output comes from the k8s-file log the exec wrote
    assert (x.stdout, x.stderr) == (b"out\n", b"err\n")
    assert crioemu.parse_log(x.log)[2] == 0
    recs = k8slog.parse(x.log_raw)
    assert sorted((r.stream, r.payload) for r in recs) == [
        ("stderr", b"err\n"), ("stdout", b"out\n")]

    # --sync: CRI-O's cmd.Wait() returned, so the monitor is gone; it left
    # nothing in its cwd (CRI-O's own) and no attach link for the exec
    assert x.elapsed < scaled(10)
    assert os.listdir(node.cwd) == []
    assert set(os.listdir(node.attach_socket_dir)) == sockets_before

    # and a probe that succeeds
    y = node.exec_sync(running, ["sh", "-c", "echo ready"], timeout=1,
                       probe=probe)
    assert y.sync_raw == b'{"exit_code": 0}\n', y.sync_raw
    assert (y.exit_code, y.stdout, y.stderr, y.error) == (0, b"ready\n", b"", None)
    assert node.runc.state(running.id)["status"] == "running"


def test_exec_sync_timeout_reports_minus_one_command_timed_out(node, running,
                                                               probe):
    """-T 1: the monitor kills the exec and reports exit_code -1 with
    conmon's TimedOutMessage; CRI-O turns that into ExitCode -1 and
    Stderr "command timed out" (what the kubelet prober counts as a
    failure, not as an error)."""
    marker = f"probe-{running.id[:12]}"
    x = node.exec_sync(running, ["sh", "-c", f"sleep 30; : {marker}"],
                       timeout=1, probe=probe)
    assert x.sync_raw == (b'{"exit_code": -1, "message": "command timed out"}\n'), \
        x.sync_raw
    assert x.error is None
    assert x.exit_code == -1 and x.stderr == b"command timed out"
    # (both monitors use second-granularity timers: the kill may come a
    # little before the full second)
    assert x.elapsed < scaled(10), x.elapsed
    # the probe's process is gone, the container is not
    wait_for(lambda: procs.live_pids_mentioning(marker) == [], scaled(5),
             "the timed-out exec to be killed")
    assert node.runc.state(running.id)["status"] == "running"


def test_exec_sync_20mib_output_stops_at_log_global_size_max(node, running,
                                                             probe):
    """--log-global-size-max 16777216 (maxExecSyncSize): an exec writing
    20 MiB gets its log cut off at the limit, the writer is not blocked by
    the cap, and the exit code still arrives.

    Like conmon, the monitor checks the limit before each record, so the
    record that crosses 16 MiB is still written whole (spec 6.3): CRI-O's
    TruncateAndReadFile then cuts the file back to 16 MiB (logging an
    error). What is asserted: logging stopped at the first record past
    the limit, every byte before it is intact, and CRI-O's result is the
    first 16 MiB."""
    line = "a" * 99
    x = node.exec_sync(running, ["sh", "-c",
                                 f"yes {line} | head -c 20971520; exit 0"],
                       timeout=60, wait_timeout=90, probe=probe)
    assert x.sync_raw == b'{"exit_code": 0}\n', (x.sync_raw, x.error)
    assert x.exit_code == 0 and x.error is None
    assert x.elapsed < scaled(60)

    limit = crioemu.MAX_EXEC_SYNC_SIZE
    size = len(x.log_raw)
    recs = k8slog.parse(x.log_raw)           # well-formed to the last byte
    last_start = size - len(recs[-1].raw)
    assert last_start < limit <= size, (last_start, size)   # cut right there
    assert size - limit <= 64 * 1024, size                   # one record over
    payload = k8slog.stream_bytes(recs, "stdout")
    assert len(payload) < 20971520
    assert payload == (line.encode() + b"\n") * (len(payload) // 100) + \
        (line.encode() + b"\n")[:len(payload) % 100], "log content corrupted"
    # what CRI-O hands back: the first 16 MiB, parsed
    assert len(x.log) == limit
    out, err, _ = crioemu.parse_log(x.log)
    assert err == b"" and payload.startswith(out[:-1])


def test_exec_sync_of_missing_binary_is_not_a_success(node, running, probe):
    """A probe whose command cannot be executed must not come back as
    exit code 0: the monitor reports exit_code -1 with the runtime's error
    as the message, which CRI-O returns as an ExecSyncError."""
    x = node.exec_sync(running, ["/no/such/probe"], timeout=10, probe=probe)
    assert x.sync_raw.count(b"\n") == 1, x.sync_raw   # one line, one value
    assert x.exit_info["exit_code"] == -1, x.sync_raw
    assert "/no/such/probe" in x.exit_info["message"]  # runc's error
    assert x.exit_code is None and x.error == x.exit_info["message"]
    assert node.runc.state(running.id)["status"] == "running"
    assert os.listdir(node.cwd) == []
