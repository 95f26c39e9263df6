"""The unprivileged users the suites run things as (ctrmon-test for the
integration and systemd suites, ctrmon-compat for compat's rootless podman).

    from testusers import ensure_user      # tests/lib on sys.path
    pw = ensure_user("ctrmon-test")        # pwd.struct_passwd

ensure_user(name) returns a user every suite can use, whatever created it
before (an older suite, a half-finished run, an admin):

  * a regular user: UID_MIN <= uid <= UID_MAX of /etc/login.defs (journald
    keeps no per-user journal for a system uid, so `journalctl --user` of a
    uid below 1000 is empty);
  * its own primary group, named after it, a regular gid (>= GID_MIN);
  * a home directory it owns (~/.local/share/ctrmon holds user-unit bundles);
  * a login shell (listed in /etc/shells, not nologin/false);
  * subuid and subgid ranges of at least SUBID_COUNT ids of its own that
    overlap no other entry of /etc/subuid or /etc/subgid.

Missing pieces are added in place (home, shell, ranges: an overlapping range
of the user's is dropped and a free one added). A wrong identity (system
uid, foreign or system primary group) is repaired by `userdel -r` and a new
`useradd`; if the user has processes, UserBusy is raised instead: nothing is
killed. Everything runs under a flock of USER_LOCK (user_lock()), so
parallel sessions (suites, xdist workers) check and repair one at a time.
Needs root.

user_problems(name) lists what ensure_user would repair ([] when none).
"""
import contextlib
import fcntl
import grp
import os
import pwd
import shutil
import subprocess

SUBID_COUNT = 65536
# flock()ed around the check-and-repair. shadow's lckpwdf() takes fcntl locks
# on it, which do not conflict with flock(); the file exists on every Debian
# system, so nothing is left behind (/etc/passwd itself is replaced by rename).
USER_LOCK = "/etc/.pwd.lock"
LOGIN_DEFS = "/etc/login.defs"
SUBUID, SUBGID = "/etc/subuid", "/etc/subgid"
HOME_BASE = "/home"
DEFAULT_SHELL = "/bin/bash"
_DEFAULTS = {"UID_MIN": 1000, "UID_MAX": 60000, "GID_MIN": 1000, "GID_MAX": 60000,
             "SUB_UID_MIN": 100000, "SUB_UID_MAX": 600100000,
             "SUB_GID_MIN": 100000, "SUB_GID_MAX": 600100000}
_NO_HOME = ("", "/", "/nonexistent")


@contextlib.contextmanager
def user_lock():
    """The flock ensure_user holds; hold it to change users or ranges by hand
    without racing another session's ensure_user (not around ensure_user:
    a second flock of the file blocks, in the same process too)."""
    with open(USER_LOCK, "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


class UserBusy(RuntimeError):
    """The user must be recreated but has processes running."""


def login_defs(path=LOGIN_DEFS):
    """The numeric limits of login.defs that matter here (shadow's defaults
    for the ones it leaves out)."""
    out = dict(_DEFAULTS)
    try:
        with open(path) as f:
            for line in f:
                parts = line.split()
                if len(parts) >= 2 and parts[0] in out:
                    try:
                        out[parts[0]] = int(parts[1], 0)
                    except ValueError:
                        pass
    except FileNotFoundError:
        pass
    return out


def parse_subids(path):
    """[(owner, start, count)] of an /etc/subuid-style file."""
    out = []
    try:
        with open(path) as f:
            for line in f:
                parts = line.strip().split(":")
                if len(parts) == 3 and parts[1].isdigit() and parts[2].isdigit():
                    out.append((parts[0], int(parts[1]), int(parts[2])))
    except FileNotFoundError:
        pass
    return out


def _split_subids(path, pw):
    """(the user's entries, everyone else's) of PATH; an entry is the user's
    if it names it or its uid."""
    mine, others = [], []
    for e in parse_subids(path):
        (mine if e[0] in (pw.pw_name, str(pw.pw_uid)) else others).append(e)
    return mine, others


def _overlaps(a_start, a_count, b_start, b_count):
    return a_start < b_start + b_count and b_start < a_start + a_count


def _good_ranges(mine, others):
    return [e for e in mine if e[2] >= SUBID_COUNT
            and not any(_overlaps(e[1], e[2], o[1], o[2]) for o in others)]


def login_shells():
    shells = set()
    try:
        with open("/etc/shells") as f:
            for line in f:
                line = line.split("#", 1)[0].strip()
                if line:
                    shells.add(line)
    except FileNotFoundError:
        pass
    return shells


def _is_login_shell(shell):
    return (shell in login_shells() and os.path.basename(shell) not in ("nologin", "false")
            and os.access(shell, os.X_OK))


def user_processes(uid):
    """[(pid, comm)] of the processes with UID as a real, effective, saved or
    file-system uid (what keeps userdel from deleting the user)."""
    out = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/status") as f:
                status = f.read()
        except OSError:
            continue
        name, uids = "?", []
        for line in status.splitlines():
            if line.startswith("Name:"):
                name = line.split(None, 1)[1] if len(line.split()) > 1 else ""
            elif line.startswith("Uid:"):
                uids = [int(x) for x in line.split()[1:]]
        if uid in uids:
            out.append((int(entry), name))
    return out


def _identity_problems(pw, defs):
    out = []
    if not defs["UID_MIN"] <= pw.pw_uid <= defs["UID_MAX"]:
        out.append(f"uid {pw.pw_uid} is not a regular uid "
                   f"({defs['UID_MIN']}..{defs['UID_MAX']} in {LOGIN_DEFS})")
    try:
        g = grp.getgrgid(pw.pw_gid)
    except KeyError:
        out.append(f"primary gid {pw.pw_gid} has no group")
    else:
        if g.gr_name != pw.pw_name:
            out.append(f"primary group {g.gr_name} is not its own group {pw.pw_name}")
        elif not defs["GID_MIN"] <= g.gr_gid <= defs["GID_MAX"]:
            out.append(f"its group {g.gr_name} has the system gid {g.gr_gid}")
    return out


def _home_problems(pw):
    if pw.pw_dir in _NO_HOME:
        return [f"home {pw.pw_dir!r} is not a home directory"]
    try:
        st = os.lstat(pw.pw_dir)
    except FileNotFoundError:
        return [f"home {pw.pw_dir} does not exist"]
    if not os.path.isdir(pw.pw_dir) or os.path.islink(pw.pw_dir):
        return [f"home {pw.pw_dir} is not a directory"]
    if st.st_uid != pw.pw_uid:
        return [f"home {pw.pw_dir} is owned by uid {st.st_uid}, not {pw.pw_uid}"]
    return []


def _subid_problems(pw):
    out = []
    for path in (SUBUID, SUBGID):
        mine, others = _split_subids(path, pw)
        if not mine:
            out.append(f"no range in {path}")
            continue
        overlaps = [f"{path}: {e[1]}-{e[1] + e[2] - 1} overlaps "
                    f"{o[0]}'s {o[1]}-{o[1] + o[2] - 1}"
                    for e in mine for o in others if _overlaps(e[1], e[2], o[1], o[2])]
        out += overlaps
        if not overlaps and not _good_ranges(mine, others):
            out.append(f"{path}: no range of {SUBID_COUNT} ids")
    return out


def user_problems(name):
    """What is wrong with NAME for the suites ([] if nothing)."""
    try:
        pw = pwd.getpwnam(name)
    except KeyError:
        return [f"no user {name}"]
    out = _identity_problems(pw, login_defs())
    out += _home_problems(pw)
    if not _is_login_shell(pw.pw_shell):
        out.append(f"shell {pw.pw_shell!r} is not a login shell")
    return out + _subid_problems(pw)


def _run(argv):
    p = subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, text=True, timeout=60)
    return p


def _check(argv):
    p = _run(argv)
    if p.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} failed (rc {p.returncode}): "
                           f"{p.stderr.strip()}")
    return p


def _delete(pw, why):
    """userdel -r PW (-r only if the home is its own or missing); UserBusy
    if it has processes (userdel would refuse them too)."""
    if pw.pw_uid == 0:
        raise RuntimeError(f"{pw.pw_name} has uid 0: refusing to delete it")
    procs = user_processes(pw.pw_uid)
    if procs:
        shown = ", ".join(f"{pid} ({comm})" for pid, comm in procs[:10])
        raise UserBusy(
            f"user {pw.pw_name} must be recreated ({'; '.join(why)}) but uid "
            f"{pw.pw_uid} has {len(procs)} process(es) running: {shown}. "
            f"Stop them (nothing was killed), then run the tests again.")
    argv = ["userdel"]
    # userdel -r removes the home directory and the mail spool; not a
    # directory someone else owns (userdel itself would refuse with rc 12)
    try:
        own_home = (pw.pw_dir not in _NO_HOME
                    and os.lstat(pw.pw_dir).st_uid == pw.pw_uid)
    except FileNotFoundError:
        own_home = True  # nothing to remove; -r still drops the mail spool
    if own_home:
        argv.append("-r")
    p = _run(argv + [pw.pw_name])
    try:
        pwd.getpwnam(pw.pw_name)
    except KeyError:
        pass  # gone; a warning exit (e.g. 12: no home/mail spool to remove) is fine
    else:
        raise RuntimeError(f"{' '.join(argv)} {pw.pw_name} failed (rc {p.returncode}): "
                           f"{p.stderr.strip()}")


def _drop_stale_group(name):
    """Before useradd --user-group NAME: a group NAME that no user has as
    primary group and that has no members (left by an older userdel) goes;
    one still in use is an error."""
    try:
        g = grp.getgrnam(name)
    except KeyError:
        return
    users = [u.pw_name for u in pwd.getpwall() if u.pw_gid == g.gr_gid]
    if g.gr_mem or users:
        raise RuntimeError(f"group {name} (gid {g.gr_gid}) exists and is used by "
                           f"{sorted(set(g.gr_mem + users))}: cannot create "
                           f"the user {name} with its own group")
    _check(["groupdel", name])


def _create(name, comment, shell):
    _drop_stale_group(name)
    _check(["useradd", "--create-home", "--user-group", "--shell", shell,
            "--comment", comment, name])
    return pwd.getpwnam(name)


def _chown_tree(path, uid, gid):
    for dirpath, dirnames, filenames in os.walk(path):
        os.lchown(dirpath, uid, gid)
        for f in filenames + [d for d in dirnames
                              if os.path.islink(os.path.join(dirpath, d))]:
            os.lchown(os.path.join(dirpath, f), uid, gid)


def _repair_home(pw):
    name = pw.pw_name
    if pw.pw_dir in _NO_HOME:
        _check(["usermod", "--home", os.path.join(HOME_BASE, name), name])
        pw = pwd.getpwnam(name)
    home = pw.pw_dir
    if os.path.islink(home) or (os.path.lexists(home) and not os.path.isdir(home)):
        raise RuntimeError(f"home {home} of {name} exists and is not a directory")
    if not os.path.exists(home):
        os.makedirs(os.path.dirname(home), mode=0o755, exist_ok=True)
        if os.path.isdir("/etc/skel"):
            shutil.copytree("/etc/skel", home, symlinks=True)
        else:
            os.mkdir(home)
        os.chmod(home, 0o755 & ~_login_umask())
    # a home left by a deleted user of the same name, or created above
    _chown_tree(home, pw.pw_uid, pw.pw_gid)
    return pw


def _login_umask():
    try:
        with open(LOGIN_DEFS) as f:
            for line in f:
                parts = line.split()
                if len(parts) >= 2 and parts[0] == "UMASK":
                    return int(parts[1], 8)
    except (OSError, ValueError):
        pass
    return 0o022


def _free_start(taken, lo, hi):
    """The lowest start >= LO of SUBID_COUNT ids overlapping no (start, count)
    of TAKEN and ending at or below HI."""
    start = lo
    for s, c in sorted(taken):
        if _overlaps(start, SUBID_COUNT, s, c):
            start = max(start, s + c)
    # one pass over sorted ranges is enough: start only moves up, past ranges
    # that begin at or below it
    if start + SUBID_COUNT - 1 > hi:
        raise RuntimeError(f"no free range of {SUBID_COUNT} subordinate ids below {hi}")
    return start


def _repair_subids(pw, defs):
    name = pw.pw_name
    files = ((SUBUID, "uids", defs["SUB_UID_MIN"], defs["SUB_UID_MAX"]),
             (SUBGID, "gids", defs["SUB_GID_MIN"], defs["SUB_GID_MAX"]))
    need = []
    for path, kind, lo, hi in files:
        mine, others = _split_subids(path, pw)
        for owner, s, c in mine:
            if any(_overlaps(s, c, o[1], o[2]) for o in others):
                if owner != name:
                    raise RuntimeError(f"{path}: {owner}:{s}:{c} (the uid of {name}) "
                                       f"overlaps another range; usermod cannot remove it")
                _check(["usermod", f"--del-sub{kind}", f"{s}-{s + c - 1}", name])
        mine, others = _split_subids(path, pw)
        if not _good_ranges(mine, others):
            need.append((path, kind, lo, hi))
    if not need:
        return
    # one start free in both files when there is one (subuid = subgid reads well)
    taken = [(s, c) for path in (SUBUID, SUBGID) for _, s, c in parse_subids(path)]
    lo = max(f[2] for f in need)
    hi = min(f[3] for f in need)
    try:
        common = _free_start(taken, lo, hi)
    except RuntimeError:
        common = None
    for path, kind, lo, hi in need:
        start = common
        if start is None:
            start = _free_start([(s, c) for _, s, c in parse_subids(path)], lo, hi)
        _check(["usermod", f"--add-sub{kind}", f"{start}-{start + SUBID_COUNT - 1}", name])


def ensure_user(name, comment="ctrmon tests", shell=DEFAULT_SHELL):
    """NAME as every suite needs it (see the module doc), created or repaired;
    returns its pwd entry. Raises UserBusy if it must be recreated while it
    has processes, RuntimeError if a repair failed."""
    defs = login_defs()
    with user_lock():
        try:
            pw = pwd.getpwnam(name)
        except KeyError:
            pw = _create(name, comment, shell)
        else:
            why = _identity_problems(pw, defs)
            if why:
                _delete(pw, why)
                pw = _create(name, comment, shell)
        if not _is_login_shell(pw.pw_shell):
            _check(["usermod", "--shell", shell, name])
            pw = pwd.getpwnam(name)
        if _home_problems(pw):
            pw = _repair_home(pw)
        # again if a useradd or usermod outside the lock (which does not
        # take it) took the range chosen here in the meantime
        for _ in range(3):
            _repair_subids(pw, defs)
            left = user_problems(name)
            if not left:
                return pwd.getpwnam(name)
        raise RuntimeError(f"user {name} is still not usable: {'; '.join(left)}")
