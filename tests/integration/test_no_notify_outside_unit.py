"""Outside a unit (no --start) ctrmon sends nothing to systemd for itself,
even with $NOTIFY_SOCKET set (as under an engine running in a unit), and
the runtime gets NOTIFY_SOCKET unchanged, exactly as with conmon."""
import os
import socket
import time


def test_engine_mode_sends_no_notify_and_passes_notify_socket_through(env, work):
    path = os.path.join(work, "notify.sock")
    s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    s.bind(path)
    s.settimeout(0.5)
    m = env.monitor(["sh", "-c", "echo NS=$NOTIFY_SOCKET"],
                    extra_env={"NOTIFY_SOCKET": path})
    m.run()
    assert m.wait_exit_file() == "0"
    m.assert_clean_exit()
    got = []
    deadline = time.monotonic() + 1.0
    while time.monotonic() < deadline:
        try:
            got.append(s.recv(4096))
        except socket.timeout:
            break
    s.close()
    assert got == [], f"ctrmon talked to systemd outside a unit: {got}"
    # ctrmon left NOTIFY_SOCKET to the runtime: runc acted on it and handed
    # the container its own socket (in unit mode ctrmon removes it instead).
    assert m.log_bytes().endswith(b" stdout F NS=/run/notify/notify.sock\n"), m.log_bytes()
