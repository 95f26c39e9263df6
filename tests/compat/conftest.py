"""pytest fixtures for the compat suite: one pair of private podman worlds
(conmon, ctrmon) for the session, a rootless pair on demand, and the
comparison table printed at the end and written to $BUILD_DIR."""

import os
import sys
from concurrent.futures import ThreadPoolExecutor

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import compat  # noqa: E402

TABLE = []


def _ctrmon():
    m = os.environ.get("CTRMON_BIN")
    if not m:
        pytest.fail("CTRMON_BIN is not set: it must name the monitor under test",
                    pytrace=False)
    if not (os.path.isfile(m) and os.access(m, os.X_OK)):
        pytest.fail(f"CTRMON_BIN={m} is not an executable file", pytrace=False)
    if not os.access(compat.CONMON, os.X_OK):
        pytest.fail(f"the reference {compat.CONMON} is missing", pytrace=False)
    return os.path.abspath(m)


def _pair(make, label):
    with ThreadPoolExecutor(max_workers=2) as ex:
        fa = ex.submit(make, compat.CONMON, "c")
        fb = ex.submit(make, _ctrmon(), "m")
        worlds, errors = [], []
        for f in (fa, fb):
            try:
                worlds.append(f.result())
            except BaseException as e:
                errors.append(e)
    if errors:
        for w in worlds:
            w.teardown()
        raise errors[0]
    return compat.Pair(worlds[0], worlds[1], label)


def _teardown(pair):
    problems = []
    for w in (pair.ref, pair.mine):
        problems += w.teardown()
    assert not problems, "; ".join(problems)


@pytest.fixture(scope="session")
def pair():
    if os.geteuid() != 0:
        pytest.fail("the compat suite drives rootful podman: run it as root",
                    pytrace=False)
    p = _pair(compat.new_world, "")
    yield p
    _teardown(p)


@pytest.fixture(scope="session")
def rootless_pair():
    import rootless
    _ctrmon()
    rootless.ensure_user()
    p = _pair(rootless.new_world, "rootless")
    yield p
    bases = [p.ref.base, p.mine.base]
    try:
        _teardown(p)
    finally:
        rootless.kill_leftovers(bases)


@pytest.fixture
def table():
    return TABLE


def pytest_terminal_summary(terminalreporter):
    if not TABLE:
        return
    text = compat.format_table(TABLE)
    t = sum(r[5] for r in TABLE), sum(r[6] for r in TABLE)
    text += f"\nscenario time: conmon {t[0]:.1f}s, ctrmon {t[1]:.1f}s (run in parallel)\n"
    major = compat.podman_version()[0]
    terminalreporter.write_sep("=", "compat: conmon vs ctrmon, podman "
                               + ".".join(map(str, compat.podman_version())))
    terminalreporter.write(text)
    build = os.environ.get("BUILD_DIR")
    if build and os.path.isdir(build):
        # podman 5's table (tests/lib/in-trixie) next to podman 4's
        name = "compat-table.txt" if major == 4 else f"compat-table-podman{major}.txt"
        with open(os.path.join(build, name), "w") as f:
            f.write(text)
