"""--help, the man page and the code agree: every option ctrmon accepts is
documented in docs/man/ctrmon.8.scd."""
import os
import re
import subprocess

from ctrtest.monitor import ctrmonctl_binary, monitor_binary

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


def test_every_ctrmonctl_command_and_option_in_help_is_in_its_man_page():
    out = subprocess.run([ctrmonctl_binary(), "--help"], capture_output=True, timeout=10,
                         check=True).stdout.decode()
    with open(os.path.join(TOP, "docs", "man", "ctrmonctl.1.scd")) as f:
        page = f.read()
    commands = re.findall(r"^  ([a-z]+)\s{2,}\S", out.split("Commands:")[1], re.M)
    options = re.findall(r"(--[a-z-]+)", out.split("Commands:")[0])
    assert len(commands) >= 12 and len(options) >= 4, (commands, options)
    missing = [c for c in commands if f"*{c}*" not in page]
    missing += [o for o in options if o not in page]
    assert missing == [], f"in ctrmonctl --help but not in ctrmonctl(1): {missing}"


def test_every_test_named_in_docs_faults_exists():
    """docs/faults.md names, for each fault, the test that shows it: each
    `dir/file::name` (and `::name`, in the same file as the one before it)
    must be a test of that file, each `fuzz/...` a fuzz target."""
    text = open(os.path.join(TOP, "docs", "faults.md")).read()
    missing, checked, current = [], 0, None
    for cell in re.findall(r"`([^`\s]+)`", text):
        m = re.fullmatch(r"((?:unit|integration|podman|compat|crio|systemd|install|load|fuzz)/[\w./-]+)?"
                         r"(?:::(\w+))?", cell)
        if not m or not (m.group(1) or m.group(2)):
            continue
        if m.group(1):
            current = os.path.join(TOP, "tests", m.group(1))
            if not os.path.exists(current):
                missing.append(cell)
                continue
        if m.group(2):
            if current is None:
                missing.append(cell)
                continue
            src = open(current).read()
            pattern = (rf"START_TEST\({m.group(2)}\)" if current.endswith(".c")
                       else rf"def {m.group(2)}\(")
            if not re.search(pattern, src):
                missing.append(f"{os.path.relpath(current, TOP)}::{m.group(2)}")
        checked += 1
    assert checked > 100, checked
    assert not missing, missing
