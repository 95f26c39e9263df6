"""--log-size-max, --log-rotate, --log-max-files, --log-global-size-max
(spec §6.3)."""
import os

import pytest

from ctrtest import k8slog

# Ten 51-byte records: 43-byte "TS stream " header + "F " + "ln-NN\n".
TEN_LINES = "for i in 01 02 03 04 05 06 07 08 09 10; do echo ln-$i; done"


def _run(env, *extra):
    m = env.monitor(["sh", "-c", TEN_LINES], extra_args=list(extra))
    m.run()
    assert m.wait_exit_file() == "0"
    m.assert_clean_exit()
    return m


def _payloads(path):
    recs = k8slog.read(path)
    assert all(len(r.raw) == 51 for r in recs)
    return [r.payload.decode().strip() for r in recs]


def _lines(*nums):
    return [f"ln-{n:02d}" for n in nums]


def test_log_size_max_truncates_and_keeps_only_last_record(env):
    m = _run(env, "--log-size-max", "200")
    # 3 records fit in 200 bytes; the 4th, 7th and 10th each reopen.
    assert _payloads(m.log_path) == _lines(10)
    assert not os.path.exists(m.log_path + ".1")


@pytest.mark.conmon_differs("--log-rotate/--log-max-files are 2.2.0 options")
def test_log_rotate_with_two_files_keeps_log_1_and_log_2(env):
    m = _run(env, "--log-size-max", "200", "--log-rotate",
             "--log-max-files", "2")
    assert _payloads(m.log_path) == _lines(10)
    assert _payloads(m.log_path + ".1") == _lines(7, 8, 9)
    assert _payloads(m.log_path + ".2") == _lines(4, 5, 6)
    assert not os.path.exists(m.log_path + ".3")


@pytest.mark.conmon_differs("--log-rotate is a 2.2.0 option; conmon keeps "
                            "max(2, N) backups")
def test_log_rotate_with_one_file_keeps_exactly_one_backup(env):
    m = _run(env, "--log-size-max", "200", "--log-rotate",
             "--log-max-files", "1")
    assert _payloads(m.log_path) == _lines(10)
    assert _payloads(m.log_path + ".1") == _lines(7, 8, 9)
    assert not os.path.exists(m.log_path + ".2")


def test_log_global_size_max_stops_logging_after_limit(env):
    m = _run(env, "--log-global-size-max", "300")
    # The limit is checked before each record: 6 x 51 = 306 (spec §6.3).
    assert _payloads(m.log_path) == _lines(1, 2, 3, 4, 5, 6)
