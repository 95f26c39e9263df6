"""The same podman scenarios against conmon and ctrmon: what a user sees
must be the same, apart from documented ctrmon fixes (see compat.py)."""

import pytest

import compat
import scenarios  # noqa: F401  (registers the scenarios)
import scenarios_io  # noqa: F401
from loop import loop_scenario

ROOTFUL = [s for s in compat.SCENARIOS]
ROOTLESS = [s for s in compat.SCENARIOS if s.rootless]


def check(pair, sc, table):
    verdict, lines, a, b = pair.run(sc, table)
    if verdict.startswith("DIFF"):
        pytest.fail(f"{sc.name}: ctrmon differs from conmon:\n  "
                    + "\n  ".join(lines), pytrace=False)


@pytest.mark.parametrize("sc", ROOTFUL, ids=[s.slug for s in ROOTFUL])
def test_rootful(pair, sc, table):
    check(pair, sc, table)


@pytest.mark.parametrize("sc", ROOTLESS, ids=[s.slug for s in ROOTLESS])
def test_rootless(rootless_pair, sc, table):
    check(rootless_pair, sc, table)


def test_loop(pair, table):
    check(pair, loop_scenario(), table)
