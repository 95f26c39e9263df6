"""podman logs over the k8s-file log the monitor writes."""

import os
import random
import re
import threading
import time

from podmanworld import IMAGE


def run_gated_d(pw, script, args=(), gate=None):
    """podman run -d a container that waits at the gate before SCRIPT;
    verifies the monitor, opens the gate unless told not to."""
    g = gate or pw.gate()
    name = pw.name()
    pw.ok("run", "-d", "--name", name, *g.volume, *args, IMAGE,
          "sh", "-c", g.wait_cmd("go", script))
    info = pw.verify_monitor(name)
    return name, g, info


def finish(pw, name, info, code=0, timeout=60):
    assert pw.ok("wait", name, timeout=timeout) == f"{code}\n".encode()
    pw.assert_monitor_gone(info)


def test_logs_returns_10000_lines_exactly(pw):
    name, g, info = run_gated_d(pw, "seq 1 10000")
    g.open()
    finish(pw, name, info)
    want = b"".join(b"%d\n" % i for i in range(1, 10001))
    rc, out, err = pw.podman("logs", name)
    assert rc == 0, err
    assert out == want
    assert err == b""


def test_logs_line_over_64k_comes_back_whole(pw):
    rnd = random.Random(64)
    line = bytes(rnd.choice(b"abcdefghijklmnopqrstuvwxyz0123456789") for _ in
                 range(64 * 1024 + 3001)) + b"\n"
    name, g, info = run_gated_d(pw, "cat /gate/data")
    g.write("data", line)
    g.open()
    finish(pw, name, info)
    out = pw.ok("logs", name)
    assert len(out) == len(line)
    assert out == line


def test_logs_output_without_final_newline(pw):
    name, g, info = run_gated_d(pw, "printf abc")
    g.open()
    finish(pw, name, info)
    assert pw.ok("logs", name) == b"abc"


def test_logs_stderr_lines_are_kept(pw):
    name, g, info = run_gated_d(pw, "echo one >&2; usleep 100000; echo two")
    g.open()
    finish(pw, name, info)
    rc, out, err = pw.podman("logs", name)
    assert rc == 0
    # podman logs writes stderr records to its stderr
    assert (out, err) == (b"two\n", b"one\n")


def test_logs_follow_returns_when_container_exits(pw):
    script = ("i=1; while [ $i -le 50 ]; do echo follow-$i; usleep 20000; "
              "i=$((i+1)); done; exit 4")
    name, g, info = run_gated_d(pw, script)
    f = pw.popen("logs", "-f", name)
    time.sleep(0.3)
    assert f.poll() is None, "logs -f returned before the container exited"
    g.open()
    out, err = f.communicate(timeout=30)
    assert f.returncode == 0, err
    assert out == b"".join(b"follow-%d\n" % i for i in range(1, 51))
    finish(pw, name, info, code=4)


def test_log_max_size_truncates_and_logs_still_work(pw):
    max_size = 10000
    lines = [b"line-%04d-%s\n" % (i, b"x" * 40) for i in range(2000)]
    want = b"".join(lines)
    script = ("i=0; while [ $i -lt 20 ]; do j=0; while [ $j -lt 100 ]; do "
              "printf 'line-%04d-%s\\n' $((i*100+j)) "
              "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx; j=$((j+1)); done; "
              "usleep 20000; i=$((i+1)); done")
    name, g, info = run_gated_d(pw, script, args=["--log-opt", f"max-size={max_size}"])
    path = pw.inspect(name, "{{.HostConfig.LogConfig.Path}}")
    assert os.path.isabs(path), path
    assert pw.inspect(name, "{{.HostConfig.LogConfig.Size}}") in ("10kB", "10000B", "10000"), \
        pw.inspect(name, "{{.HostConfig.LogConfig.Size}}")
    sizes = []
    stop = threading.Event()

    def sample():
        while not stop.is_set():
            try:
                sizes.append(os.stat(path).st_size)
            except FileNotFoundError:
                pass  # between unlink-by-rename steps
            time.sleep(0.005)

    t = threading.Thread(target=sample)
    t.start()
    try:
        g.open()
        finish(pw, name, info)
    finally:
        stop.set()
        t.join()
    with open(path, "rb") as f:
        data = f.read()
    records = data.splitlines(keepends=True)
    assert records, "log file is empty"
    header = re.compile(rb"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}[+-]\d\d:\d\d "
                        rb"(stdout|stderr) [PF] ")
    for r in records:
        assert header.match(r), r
    biggest = max(len(r) for r in records)
    assert len(data) <= max_size + biggest
    assert sizes and max(sizes) <= max_size + biggest, max(sizes)
    rc, out, err = pw.podman("logs", name)
    assert rc == 0, err
    assert err == b""
    # Truncation drops the start: what is left is a non-empty tail of the
    # output, no longer than the file, ending with the last line.
    assert 0 < len(out) <= len(data)
    assert want.endswith(out), out[:200]
    assert out.endswith(lines[-1])
