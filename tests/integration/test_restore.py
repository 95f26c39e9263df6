"""--restore (spec §2.4 restore line, §3.3): the exact runtime argv, and a
real `runc restore` failure reported on the sync pipe with nothing left
behind. CRIU cannot run on the test kernel, so a real restore can only fail:
runc refuses a missing checkpoint before it ever calls criu."""
import os
import re

import pytest

from ctrtest.monitor import SyncMessage
from ctrtest.recording import RECORDING_RUNTIME, Recorder

FAIL_TEXT = "recording runtime: restore refused\n"


def recorded_restore_monitor(env, extra_args, **kw):
    rec = Recorder(os.path.join(env.work, "rec"), fail=(1, FAIL_TEXT))
    m = env.monitor(["true"], sync=True, extra_env=rec.env,
                    extra_args=extra_args, **kw)
    m.args[m.args.index("-r") + 1] = RECORDING_RUNTIME
    return m, rec


def expect_runtime_failure(m, text):
    lines = m.sync_rest(15)
    assert len(lines) == 1, lines
    msg = SyncMessage(lines[0])
    assert (msg.key, msg.value) == ("data", -1), lines
    assert msg.message == text, lines
    assert m.wait_status() == 1
    return lines[0]


def test_restore_argv_minimal_is_exactly_the_spec_line(env):
    ckpt = os.path.join(env.work, "ckpt")
    m, rec = recorded_restore_monitor(env, ["--restore", ckpt])
    m.start()
    raw = expect_runtime_failure(m, FAIL_TEXT)
    assert raw == (b'{"data": -1, "message": '
                   b'"recording runtime: restore refused\\n"}\n')
    r = rec.one("restore")
    assert r["argv"][1:] == [
        m.runc.root_arg, "restore", "--bundle", m.bundle.path,
        "--pid-file", m.container_pidfile, "--detach", "--image-path", ckpt,
        "--work-path", m.bundle.path, m.cid]
    m.assert_clean_exit()


def test_restore_argv_interleaves_runtime_opt_and_restore_arg_with_all_flags(env):
    ckpt = os.path.join(env.work, "ckpt")
    m, rec = recorded_restore_monitor(env, [
        "--runtime-opt", "--tcp-established",
        "--restore", ckpt,
        "--restore-arg", "--ext-unix-sk",
        "--no-pivot",
        "--runtime-opt", "--file-locks",
        "--systemd-cgroup",
        "--restore-arg", "--lazy-pages",
        "--no-new-keyring",
    ], terminal=True)
    m.start()
    expect_runtime_failure(m, FAIL_TEXT)
    r = rec.one("restore")
    argv = r["argv"][1:]
    assert len(argv) == 21, argv
    sock = argv[-2]
    assert re.fullmatch(re.escape(m.tmpdir) + r"/conmon-term\.[A-Za-z0-9]{6}",
                        sock), sock
    assert argv == [
        "--systemd-cgroup", m.runc.root_arg, "restore",
        "--bundle", m.bundle.path, "--pid-file", m.container_pidfile,
        "--no-pivot", "--no-new-keyring", "--detach",
        "--image-path", ckpt, "--work-path", m.bundle.path,
        "--tcp-established", "--ext-unix-sk", "--file-locks", "--lazy-pages",
        "--console-socket", sock, m.cid]
    m.wait_gone()
    assert m.stray_processes() == []


def test_real_runc_restore_of_missing_checkpoint_reports_runc_error(env):
    ckpt = os.path.join(env.work, "no-such-checkpoint")
    m = env.monitor(["true"], sync=True, extra_args=["--restore", ckpt])
    m.start()
    lines = m.sync_rest(15)
    assert len(lines) == 1, lines
    msg = SyncMessage(lines[0])
    assert (msg.key, msg.value) == ("data", -1), lines
    # runc's whole stderr line, verbatim.
    assert re.fullmatch(r'time="[^"]+" level=error msg="open '
                        + re.escape(ckpt) + r'/descriptors.json: '
                        r'no such file or directory"\n', msg.message), msg
    assert m.wait_status() == 1
    m.assert_clean_exit()
    assert env.runc.state(m.cid) is None
    assert not os.path.exists(m.exit_file)
    assert not os.path.exists(m.persist_exit)


@pytest.mark.conmon_differs("conmon 2.1.6 leaves attach, ctl, winsz and the "
                            "socket-dir symlink behind on a runtime failure")
def test_failed_restore_leaves_bundle_and_socket_dir_as_they_were(env):
    ckpt = os.path.join(env.work, "no-such-checkpoint")
    m = env.monitor(["true"], sync=True, extra_args=["--restore", ckpt])
    before = sorted(os.listdir(m.bundle.path))
    m.start()
    assert m.read_sync(15).value == -1
    assert m.wait_status() == 1
    m.assert_clean_exit()
    assert sorted(os.listdir(m.bundle.path)) == before
    assert not os.path.lexists(m.symlink_path)
