"""pytest fixtures for the podman suite.

CTRMON_BIN names the monitor under test (required; nothing falls back to a
system conmon).  One private podman world per session; after every test all
its containers are removed and every monitor the test saw must be gone.
"""

import os
import sys

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from podmanworld import PodmanWorld, zombie_children  # noqa: E402


def _monitor_from_env():
    m = os.environ.get("CTRMON_BIN")
    if not m:
        pytest.fail("CTRMON_BIN is not set: it must name the monitor under test",
                    pytrace=False)
    if not (os.path.isfile(m) and os.access(m, os.X_OK)):
        pytest.fail(f"CTRMON_BIN={m} is not an executable file", pytrace=False)
    return os.path.abspath(m)


@pytest.fixture(scope="session")
def world():
    if os.geteuid() != 0:
        pytest.fail("the podman suite runs rootful podman: run it as root",
                    pytrace=False)
    w = PodmanWorld(_monitor_from_env())
    try:
        w.import_image()
    except BaseException:
        w.teardown()
        raise
    yield w
    problems = w.teardown()
    assert not problems, "; ".join(problems)


@pytest.fixture(autouse=True)
def pw(world):
    """The world, checked after each test: the test must have proved at
    least once which monitor ran; once its containers are removed, each
    monitor it saw must be gone and must not have left zombies."""
    world.take_monitors()
    yield world
    rc, _, err = world.podman("rm", "-af", "-t", "0", timeout=120)
    assert rc == 0, f"podman rm -af after the test: rc={rc} {err!r}"
    seen = world.take_monitors()
    assert seen, "test never verified which monitor podman ran (verify_monitor)"
    for info in seen:
        world.assert_monitor_gone(info)
        zs = zombie_children(info.conmon_pid)
        assert not zs, f"{info}: zombie children {zs} left behind"
    # exit commands the monitors started may outlive them: let them finish
    # so that they cannot act on the next test's containers.
    world.wait_helpers()
