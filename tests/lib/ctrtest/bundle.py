"""Per-test OCI bundles.

config.json starts from `runc spec` (generated once per process and cached)
and is edited here: process args/terminal/env, an optional memory limit, an
optional tmpfs on /tmp (the shared rootfs is mounted read-only), an optional
read-write bind mount of a host directory at SHARED_IN_CTR (lets the host
and the container exchange trigger and result files), and optionally no PID
namespace (so orphans and self-signals behave as on the host).
"""
import copy
import json
import os
import subprocess
import tempfile

RUNC = os.environ.get("CTRTEST_RUNC", "/usr/sbin/runc")
_TEMPLATE = None
# Where Bundle(shared_dir=...) appears inside the container. The rootfs is
# read-only and already has an empty /run, so the mount point needs no mkdir.
SHARED_IN_CTR = "/run"


def runc_spec_template():
    """The unmodified `runc spec` output as a dict (cached)."""
    global _TEMPLATE
    if _TEMPLATE is None:
        with tempfile.TemporaryDirectory(prefix="ctrtest-spec-") as d:
            subprocess.run([RUNC, "spec"], cwd=d, check=True, timeout=30)
            with open(os.path.join(d, "config.json")) as f:
                _TEMPLATE = json.load(f)
    return copy.deepcopy(_TEMPLATE)


class Bundle:
    """An OCI bundle directory with a generated config.json."""

    def __init__(self, path, rootfs, args, *, terminal=False, env=None,
                 memory_limit=None, pid_ns=True, tmpfs_tmp=True,
                 shared_dir=None):
        self.path = os.path.abspath(path)
        self.rootfs = rootfs
        self.shared_dir = shared_dir
        os.makedirs(self.path, exist_ok=True)
        spec = runc_spec_template()
        proc = spec["process"]
        proc["args"] = list(args)
        proc["terminal"] = bool(terminal)
        proc["env"] = ["PATH=/usr/sbin:/usr/bin:/sbin:/bin", "TERM=xterm",
                       "HOME=/root"] + list(env or [])
        spec["root"] = {"path": rootfs, "readonly": True}
        mounts = spec.setdefault("mounts", [])
        if tmpfs_tmp:
            mounts.append({"destination": "/tmp", "type": "tmpfs",
                           "source": "tmpfs",
                           "options": ["nosuid", "nodev", "mode=1777",
                                       "size=16m"]})
        if shared_dir is not None:
            os.makedirs(shared_dir, exist_ok=True)
            mounts.append({"destination": SHARED_IN_CTR, "type": "bind",
                           "source": os.path.abspath(shared_dir),
                           "options": ["rbind", "rw"]})
        linux = spec.setdefault("linux", {})
        if not pid_ns:
            linux["namespaces"] = [ns for ns in linux.get("namespaces", [])
                                   if ns.get("type") != "pid"]
        if memory_limit is not None:
            res = linux.setdefault("resources", {})
            # No swap on the test host; set memsw equal anyway so a host
            # with swap still hits the limit instead of swapping.
            res["memory"] = {"limit": int(memory_limit),
                             "swap": int(memory_limit)}
        self.spec = spec
        self.write()

    @property
    def config_path(self):
        return os.path.join(self.path, "config.json")

    def write(self):
        with open(self.config_path, "w") as f:
            json.dump(self.spec, f, indent=1)

    def file(self, name):
        """Path of a file inside the bundle dir (attach, ctl, winsz, oom)."""
        return os.path.join(self.path, name)


class SessionDir:
    """A plain directory standing in for -b where no OCI bundle is needed
    (exec sessions: it only hosts attach, ctl and winsz)."""

    def __init__(self, path):
        self.path = os.path.abspath(path)
        os.makedirs(self.path, exist_ok=True)

    def file(self, name):
        return os.path.join(self.path, name)


def write_process_spec(path, args, *, terminal=False, env=None, cwd="/"):
    """A process.json for `runc exec --process` (what --exec-process-spec
    names)."""
    spec = {"terminal": bool(terminal), "user": {"uid": 0, "gid": 0},
            "args": list(args), "cwd": cwd,
            "env": ["PATH=/usr/sbin:/usr/bin:/sbin:/bin"] + list(env or [])}
    with open(path, "w") as f:
        json.dump(spec, f)
    return path
