"""tests/lib/testusers.py: ensure_user() hands out a user every suite can use
(regular uid, own group, home, login shell, subuid/subgid ranges of its own)
whatever state the user was left in, e.g. the system user without a home an
older test_ctrmonctl.py created as ctrmon-test (journald keeps no per-user
journal for it, which failed the systemd suite's `journalctl --user`).

Each test works on throwaway users of its own, removed at the end."""
import grp
import itertools
import os
import pwd
import signal
import subprocess

import pytest

import testusers
from ctrtest.wait import wait_for

_seq = itertools.count()


def _run(*argv):
    return subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, text=True, timeout=60)


def _exists(name):
    try:
        pwd.getpwnam(name)
        return True
    except KeyError:
        return False


@pytest.fixture
def names():
    """new_name() -> an unused user name; all of them deleted afterwards."""
    made = []

    def new_name():
        name = f"ctrmon-tu{os.getpid()}-{next(_seq)}"
        assert not _exists(name)
        made.append(name)
        return name
    yield new_name
    with testusers.user_lock():
        for name in made:
            if _exists(name):
                _run("userdel", "-r", name)
            _run("groupdel", name)  # a group a failed test left; fails if absent


def _subids(path, name):
    pw = pwd.getpwnam(name)
    return [(s, c) for o, s, c in testusers.parse_subids(path)
            if o in (name, str(pw.pw_uid))]


def _others(path, name):
    pw = pwd.getpwnam(name)
    return [(o, s, c) for o, s, c in testusers.parse_subids(path)
            if o not in (name, str(pw.pw_uid))]


def assert_usable(name):
    defs = testusers.login_defs()
    pw = pwd.getpwnam(name)
    assert defs["UID_MIN"] <= pw.pw_uid <= defs["UID_MAX"], pw
    assert pw.pw_uid >= 1000, pw  # journald's per-user journals start there
    g = grp.getgrgid(pw.pw_gid)
    assert g.gr_name == name and g.gr_gid >= defs["GID_MIN"], g
    st = os.stat(pw.pw_dir)
    assert os.path.isdir(pw.pw_dir) and st.st_uid == pw.pw_uid, (pw.pw_dir, st)
    assert pw.pw_shell in testusers.login_shells(), pw.pw_shell
    assert os.path.basename(pw.pw_shell) not in ("nologin", "false"), pw.pw_shell
    for path in (testusers.SUBUID, testusers.SUBGID):
        mine = _subids(path, name)
        assert any(c >= testusers.SUBID_COUNT for _, c in mine), (path, mine)
        for s, c in mine:
            for o, os_, oc in _others(path, name):
                assert not (s < os_ + oc and os_ < s + c), \
                    f"{path}: {name}'s {s}+{c} overlaps {o}'s {os_}+{oc}"
    assert testusers.user_problems(name) == []
    return pw


def test_a_system_user_without_home_is_recreated_regular(names):
    # what test_ctrmonctl.py's _ensure_test_user() used to create
    name = names()
    with testusers.user_lock():
        p = _run("useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin",
                 name)
    assert p.returncode == 0, p.stderr
    old = pwd.getpwnam(name)
    assert old.pw_uid < testusers.login_defs()["UID_MIN"]
    assert testusers.user_problems(name)

    pw = testusers.ensure_user(name)
    assert pw == assert_usable(name)
    assert pw.pw_uid != old.pw_uid


def test_a_regular_user_is_repaired_in_place(names):
    # regular uid, but no home, no login shell and no ranges: fixed without
    # a new uid (its files elsewhere keep their owner)
    name = names()
    with testusers.user_lock():
        p = _run("useradd", "--no-create-home", "--user-group", "--shell",
                 "/usr/sbin/nologin", name)
        assert p.returncode == 0, p.stderr
        for path, kind in ((testusers.SUBUID, "uids"), (testusers.SUBGID, "gids")):
            for s, c in _subids(path, name):  # useradd's own ranges, if it gave any
                assert _run("usermod", f"--del-sub{kind}", f"{s}-{s + c - 1}",
                            name).returncode == 0
            assert _subids(path, name) == []
    uid = pwd.getpwnam(name).pw_uid

    pw = testusers.ensure_user(name)
    assert_usable(name)
    assert pw.pw_uid == uid


def test_a_range_overlapping_another_users_is_replaced(names):
    first, second = names(), names()
    testusers.ensure_user(first)
    theirs = _subids(testusers.SUBUID, first)
    s, c = theirs[0]
    second_pw = testusers.ensure_user(second)
    with testusers.user_lock():
        for path, kind in ((testusers.SUBUID, "uids"), (testusers.SUBGID, "gids")):
            for s2, c2 in _subids(path, second):
                assert _run("usermod", f"--del-sub{kind}", f"{s2}-{s2 + c2 - 1}",
                            second).returncode == 0
            # second now claims first's range
            assert _run("usermod", f"--add-sub{kind}", f"{s}-{s + c - 1}",
                        second).returncode == 0
    assert any("overlaps" in x for x in testusers.user_problems(second))

    pw = testusers.ensure_user(second)
    assert pw.pw_uid == second_pw.pw_uid
    assert_usable(second)
    assert _subids(testusers.SUBUID, first) == theirs  # the other user's untouched
    assert_usable(first)


def test_ensure_user_twice_changes_nothing(names):
    name = names()
    # its own entries only: other sessions (xdist workers) may add theirs
    pw = testusers.ensure_user(name)
    before = [_subids(path, name) for path in (testusers.SUBUID, testusers.SUBGID)]
    assert testusers.ensure_user(name) == pw
    assert [_subids(path, name) for path in (testusers.SUBUID, testusers.SUBGID)] == before


def test_a_busy_system_user_is_refused_not_killed(names):
    name = names()
    with testusers.user_lock():
        assert _run("useradd", "--system", "--no-create-home", name).returncode == 0
    uid = pwd.getpwnam(name).pw_uid
    proc = subprocess.Popen(["setpriv", f"--reuid={uid}", f"--regid={uid}",
                             "--clear-groups", "sleep", "60"])
    try:
        wait_for(lambda: any(pid == proc.pid
                             for pid, _ in testusers.user_processes(uid)), 10,
                 "the sleep running as the user")
        with pytest.raises(testusers.UserBusy) as e:
            testusers.ensure_user(name)
        msg = str(e.value)
        assert name in msg and str(proc.pid) in msg and "nothing was killed" in msg, msg
        assert proc.poll() is None, "ensure_user killed the user's process"
        assert pwd.getpwnam(name).pw_uid == uid
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
