"""The monitor is a child subreaper and reaps orphans (spec §2.2, §2.6)."""
from ctrtest import procs
from ctrtest.wait import wait_for

from conftest import scaled


def test_orphaned_grandchildren_are_reparented_to_monitor_and_reaped(env):
    # No PID namespace: orphans go to the nearest subreaper, the monitor.
    # The orphans end after 2 s, the container after 4 (both stretched under
    # valgrind, so that the slower monitor still reaps them while it runs).
    script = (f"for i in $(seq 100); do (sleep {scaled(2):g} &) ; done; "
              f"echo spawned; sleep {scaled(4):g}")
    m = env.monitor(["sh", "-c", script], bundle_opts={"pid_ns": False})
    ctr = m.run()
    m.wait_log_contains(b"spawned\n", timeout=scaled(10))
    adopted = [p for p in procs.children(m.daemon_pid) if p != ctr]
    assert len(adopted) >= 50, f"only {len(adopted)} orphans adopted"
    # All of them end within ~2 s; the monitor must reap every one while
    # the container still runs.
    wait_for(lambda: procs.children(m.daemon_pid) == [ctr], scaled(3.5),
             "monitor to reap all orphans")
    assert procs.zombie_children(m.daemon_pid) == []
    assert m.wait_exit_file(scaled(10)) == "0"
    m.assert_clean_exit()
