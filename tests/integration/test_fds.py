"""Descriptors: the container sees none of the monitor's (spec §2.4)."""
import os

from ctrtest import k8slog


def test_container_init_has_only_stdio_even_with_inherited_fd(env):
    extra = os.open("/dev/null", os.O_RDONLY)  # not CLOEXEC via pass_fds
    try:
        # "; true" keeps sh as PID 1 so /proc/1/fd is the shell's table.
        m = env.monitor(["sh", "-c", "ls /proc/1/fd; true"],
                        pass_fds=[extra])
        m.run()
    finally:
        os.close(extra)
    assert m.wait_exit_file() == "0"
    m.assert_clean_exit()
    assert k8slog.lines(k8slog.read(m.log_path)) == [b"0", b"1", b"2"]
