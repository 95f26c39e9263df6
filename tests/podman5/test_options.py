"""Options newer podmans pass: `--runtime-opt --tcp-close` on restore
(podman 5.8, `podman container restore --tcp-close`; createOCIContainer
appends --runtime-opt for TCPEstablished, TCPClose, FileLocks in that
order) and `--log-label NAME=VALUE` with the journald driver (podman 6.0
sharedConmonArgs). conmon treats both generically: --runtime-opt values go
after the subcommand's own options, --log-label becomes a journal field."""
import os
import select
import socket
import struct
import time

import p5emu
from ctrtest.recording import RECORDING_RUNTIME


def test_restore_runtime_opts_tcp_close_follow_the_restore_options(p5, recorder):
    p5.runtime_path = RECORDING_RUNTIME
    p5.env += ["RECORDING_RUNTIME_FAIL=1:criu failed: no checkpoint here"]
    c = p5.container(["true"])
    checkpoint = os.path.join(c.bundle_path, "checkpoint")
    os.makedirs(checkpoint)
    res = p5.create_container(c, restore={"path": checkpoint,
                                          "opts": ["--tcp-established", "--tcp-close", "--file-locks"]})
    assert res.foreground_status == 0
    argv = recorder.one("restore")["argv"]
    i = argv.index("restore")
    assert argv[:i] == [RECORDING_RUNTIME, f"--root={p5.runc.root}", "--log-format=json",
                        "--log", c.oci_log]
    assert argv[i:] == ["restore", "--bundle", c.bundle_path, "--pid-file", c.pidfile,
                        "--detach", "--image-path", checkpoint, "--work-path", c.bundle_path,
                        "--tcp-established", "--tcp-close", "--file-locks", c.id]
    # the runtime's failure is what podman reports
    assert res.pipe_data.data == -1
    assert res.pipe_data.error == "runc: criu failed: no checkpoint here"


def _journal_fields(datagram):
    """journald's native protocol: KEY=VALUE\\n, or KEY\\n<le64 len><data>\\n."""
    fields, pos = [], 0
    while pos < len(datagram):
        nl = datagram.index(b"\n", pos)
        line = datagram[pos:nl]
        if b"=" in line:
            k, v = line.split(b"=", 1)
            pos = nl + 1
        else:
            (n,) = struct.unpack_from("<Q", datagram, nl + 1)
            k, v = line, datagram[nl + 9:nl + 9 + n]
            pos = nl + 9 + n + 1
        fields.append((k.decode(), v))
    return fields


def test_log_label_with_journald_becomes_a_field_of_every_entry(p5, work):
    journal = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    path = os.path.join(work, "journal.sock")
    journal.bind(path)
    c = p5.container(["sh", "-c", "echo hello; echo oops >&2"], name="labelled",
                     log_driver="journald", log_labels=["COM_EXAMPLE_TEAM=blue", "STAGE=ci"])
    res = p5.run(c, pre_exec=p5emu.private_mounts({"/run/systemd/journal/socket": path},
                                                  os.path.join(work, "ns")))
    assert res.argv[res.argv.index("-l") + 1] == "journald"
    assert res.argv.count("--log-label") == 2
    entries, deadline = [], time.monotonic() + 15
    while len(entries) < 2 and time.monotonic() < deadline:
        if select.select([journal], [], [], 0.2)[0]:
            entries.append(dict(_journal_fields(journal.recv(1 << 20))))
    journal.close()
    msgs = sorted(e.get("MESSAGE") for e in entries)
    assert msgs == [b"hello\n", b"oops\n"], entries
    for e in entries:
        assert e["COM_EXAMPLE_TEAM"] == b"blue" and e["STAGE"] == b"ci", e
        assert e["CONTAINER_ID_FULL"] == c.id.encode() and e["CONTAINER_NAME"] == b"labelled"
