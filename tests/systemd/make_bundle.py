"""Build an OCI bundle for runc: DIR/rootfs (tests/lib/make-rootfs.sh) and
DIR/config.json from `runc spec` (`runc spec --rootless` with --rootless).
Run it as whoever will run the container, so that the bundle is theirs (the
rootless case: as the test user inside the systemd sandbox).

    make_bundle.py DIR [--rootless] [--rootfs-from ROOTFS] [--script SCRIPT]

--rootfs-from copies a rootfs made earlier by make-rootfs.sh (one `cp`
instead of a few hundred `ln`; the copy belongs to the caller). The
container's process is /bin/sh -c SCRIPT (default: write "hello", then loop
until SIGTERM and exit 7), without a terminal. Prints nothing; exits
non-zero on failure.
"""
import argparse
import json
import os
import subprocess

HERE = os.path.dirname(os.path.abspath(__file__))
MAKE_ROOTFS = os.path.join(os.path.dirname(HERE), "lib", "make-rootfs.sh")
RUNC = "/usr/sbin/runc"
# `sleep & wait`: the trap runs at once (wait is interruptible), and the
# process tree stays sh---sleep for a second at a time.
DEFAULT_SCRIPT = "trap 'exit 7' TERM; echo hello; while :; do sleep 1 & wait $!; done"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("dir")
    ap.add_argument("--rootless", action="store_true")
    ap.add_argument("--rootfs-from")
    ap.add_argument("--script", default=DEFAULT_SCRIPT)
    a = ap.parse_args()

    bundle = os.path.abspath(a.dir)
    os.makedirs(bundle, exist_ok=True)
    rootfs = os.path.join(bundle, "rootfs")
    if a.rootfs_from and not os.path.exists(rootfs):
        subprocess.run(["cp", "-RP", "--preserve=mode", a.rootfs_from, rootfs], check=True,
                       timeout=60)
    else:
        subprocess.run(["sh", MAKE_ROOTFS, rootfs], check=True, timeout=60)
    config = os.path.join(bundle, "config.json")
    if os.path.exists(config):
        os.unlink(config)
    cmd = [RUNC, "spec", "--bundle", bundle] + (["--rootless"] if a.rootless else [])
    subprocess.run(cmd, check=True, timeout=30)
    with open(config) as f:
        spec = json.load(f)
    spec["process"]["terminal"] = False
    spec["process"]["args"] = ["/bin/sh", "-c", a.script]
    with open(config, "w") as f:
        json.dump(spec, f, indent=1)


if __name__ == "__main__":
    main()
