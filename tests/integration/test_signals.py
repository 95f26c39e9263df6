"""Signals to the monitor are forwarded to the container (spec §2.8)."""
import signal

import pytest


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT,
                                 signal.SIGQUIT],
                         ids=["TERM", "INT", "QUIT"])
def test_signal_to_monitor_is_forwarded_to_container(env, sig):
    script = ('trap "exit 7" TERM INT QUIT; echo ready; '
              'i=0; while [ $i -lt 200 ]; do sleep 0.05; i=$((i+1)); done')
    m = env.monitor(["sh", "-c", script])
    m.run()
    m.wait_log_contains(b"ready\n")  # trap installed
    m.signal(sig)
    assert m.wait_exit_file(10) == "7"
    m.assert_clean_exit()
