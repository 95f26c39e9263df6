"""--help, the man page and the code agree: every option ctrmon accepts is
documented in docs/man/ctrmon.8.scd."""
import os
import re
import subprocess

from ctrtest.monitor import monitor_binary

TOP = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def help_options():
    out = subprocess.run([monitor_binary(), "--help"], capture_output=True,
                         timeout=10, check=True).stdout.decode()
    return re.findall(r"^\s+(?:-\w, )?(--[a-z0-9-]+)", out, re.M)


def test_every_option_in_help_is_in_the_man_page():
    with open(os.path.join(TOP, "docs", "man", "ctrmon.8.scd")) as f:
        page = f.read()
    options = help_options()
    assert len(options) > 40, options
    missing = [o for o in options if f"*{o}" not in page and f", {o}" not in page]
    assert missing == [], f"options in --help but not in ctrmon(8): {missing}"


def test_every_option_in_the_man_page_is_accepted():
    with open(os.path.join(TOP, "docs", "man", "ctrmon.8.scd")) as f:
        page = f.read()
    documented = set(re.findall(r"\*(--[a-z0-9-]+)", page))
    accepted = set(help_options()) | {"--pidfile", "--restore-arg"}
    assert documented - accepted == set()
