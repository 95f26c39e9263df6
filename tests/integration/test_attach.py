"""Attach socket: location, type, framing, teardown (spec §4)."""
import os
import stat

import pytest

from ctrtest.attach import STDERR, STDOUT, AttachClient


def test_full_attach_socket_is_seqpacket_0700_in_bundle_without_symlink(env):
    m = env.monitor(["true"], full_attach=True)
    m.create()
    st = os.lstat(m.attach_path)
    assert stat.S_ISSOCK(st.st_mode)
    assert stat.S_IMODE(st.st_mode) == 0o700
    assert os.listdir(m.socket_dir) == []
    with m.attach():  # connects as SOCK_SEQPACKET
        pass
    env.runc.start(m.cid)
    assert m.wait_exit_file() == "0"
    m.assert_clean_exit()


def test_attach_symlink_in_socket_dir_points_to_bundle(env):
    m = env.monitor(["true"])
    m.create()
    assert os.readlink(m.symlink_path) == m.bundle.path
    with AttachClient(m.symlink_path):  # clients use <socket-dir>/<cuuid>
        pass
    env.runc.start(m.cid)
    assert m.wait_exit_file() == "0"
    m.assert_clean_exit()


def test_attach_records_split_at_8192_and_carry_stream_id(env):
    # dd does one write(20000): the pipe holds it whole, the monitor reads
    # it in 8192-byte chunks and sends one record per read.
    m = env.monitor(["sh", "-c",
                     "dd if=/dev/zero bs=20000 count=1 2>/dev/null; "
                     "sleep 0.2; echo err >&2"])
    m.create()
    with m.attach() as c:
        env.runc.start(m.cid)
        c.read_to_eof(15)
    assert [s for s, _ in c.records] == [STDOUT] * 3 + [STDERR]
    assert [len(p) for _, p in c.records] == [8192, 8192, 3616, 4]
    assert c.data(STDOUT) == b"\0" * 20000
    assert c.data(STDERR) == b"err\n"
    assert m.wait_exit_file() == "0"
    m.assert_clean_exit()


def test_attach_clients_see_eof_and_socket_goes_at_exit(env):
    m = env.monitor(["sh", "-c", "echo out"])
    m.create()
    c1, c2 = m.attach(), AttachClient(m.symlink_path)
    env.runc.start(m.cid)
    for c in (c1, c2):
        c.read_to_eof(15)
        assert c.data(STDOUT) == b"out\n"  # every client gets the output
        c.close()
    assert m.wait_exit_file() == "0"
    m.assert_clean_exit()
    assert not os.path.lexists(m.attach_path)


@pytest.mark.conmon_differs("leaves the <socket-dir>/<cuuid> symlink")
def test_attach_symlink_is_removed_at_exit(env):
    m = env.monitor(["true"])
    m.create()
    assert os.path.islink(m.symlink_path)
    env.runc.start(m.cid)
    assert m.wait_exit_file() == "0"
    m.assert_clean_exit()
    assert os.listdir(m.socket_dir) == []


@pytest.mark.conmon_differs("the 107-char symlink is truncated and leaked")
def test_truncated_107_char_symlink_is_removed_at_exit(env):
    # strlen("<socket-dir>/<cuuid>") == 107 makes conmon drop the last
    # character of the link name; ctrmon must still remove it.
    sock_dir = os.path.join(env.work, "s")
    os.makedirs(sock_dir)
    cuuid = "u" * (107 - len(sock_dir) - 1)
    assert len(os.path.join(sock_dir, cuuid)) == 107
    m = env.monitor(["sh", "-c", "echo via-short-link"], cuuid=cuuid,
                    socket_dir=sock_dir)
    m.create()
    truncated = os.path.join(sock_dir, cuuid[:-1])
    assert os.readlink(truncated) == m.bundle.path
    with AttachClient(truncated) as c:
        env.runc.start(m.cid)
        c.read_to_eof(15)
        assert c.data(STDOUT) == b"via-short-link\n"
    assert m.wait_exit_file() == "0"
    m.assert_clean_exit()
    assert os.listdir(sock_dir) == []


def test_attach_works_with_bundle_path_longer_than_sun_path(env):
    long_dir = os.path.join(env.work, "d" * 60, "e" * 60)
    b = env.bundle(["echo", "long"])
    os.makedirs(os.path.dirname(long_dir))
    os.rename(b.path, long_dir)
    b.path = long_dir
    m = env.monitor(bundle=b, full_attach=True)
    m.create()
    with m.attach() as c:
        env.runc.start(m.cid)
        c.read_to_eof(15)
        assert c.data(STDOUT) == b"long\n"
    assert m.wait_exit_file() == "0"
    m.assert_clean_exit()
