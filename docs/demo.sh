#!/bin/bash
# The README's first command: on a fresh Debian 12 machine (as root) install
# what ctrmon needs, build it, and run one busybox container under ctrmon with
# runc. Shows the process tree, the container's log and its exit status.
#   sudo bash docs/demo.sh
set -euo pipefail
cd "$(dirname "$0")/.."
top=$PWD

need=(meson ninja-build pkg-config gcc libglib2.0-dev libsystemd-dev libjson-c-dev check runc busybox-static psmisc)
missing=()
for p in "${need[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
if [ ${#missing[@]} -gt 0 ]; then
        echo "== installing: ${missing[*]}"
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi

echo "== building ctrmon into ./build"
[ -d build ] || meson setup build >/dev/null
ninja -C build >/dev/null
ctrmon=$top/build/monitor/ctrmon

work=$(mktemp -d /tmp/ctrmon-demo.XXXXXX)
cid=ctrmon-demo-$$
runc_root=$work/runc
cleanup() { runc --root "$runc_root" delete -f "$cid" >/dev/null 2>&1 || true; rm -rf "$work"; }
trap cleanup EXIT

echo "== building a busybox root filesystem and an OCI bundle in $work"
tests/lib/make-rootfs.sh "$work/rootfs"
mkdir -p "$work/bundle" "$work/exits"
(cd "$work/bundle" && runc spec)
python3 - "$work" <<'PY'
import json, sys
work = sys.argv[1]
path = f"{work}/bundle/config.json"
c = json.load(open(path))
c["root"] = {"path": f"{work}/rootfs", "readonly": True}
c["process"]["terminal"] = False
c["process"]["args"] = ["sh", "-c", "echo hello from a container under ctrmon; echo to stderr >&2; sleep 3; exit 3"]
json.dump(c, open(path, "w"), indent=1)
PY

echo "== starting: ctrmon -c $cid -r /usr/sbin/runc -b BUNDLE -l k8s-file:LOG --exit-dir EXITS ..."
"$ctrmon" --api-version 1 -c "$cid" -u "$cid" -r /usr/sbin/runc -b "$work/bundle" \
        -p "$work/bundle/pidfile" -l "k8s-file:$work/ctr.log" --exit-dir "$work/exits" \
        --socket-dir-path "$work" --conmon-pidfile "$work/ctrmon.pid" \
        --runtime-arg "--root=$runc_root"
for _ in $(seq 50); do [ -s "$work/bundle/pidfile" ] && break; sleep 0.1; done
runc --root "$runc_root" start "$cid"
pid=$(cat "$work/bundle/pidfile")
echo "== ctrmon (pid $(cat "$work/ctrmon.pid")) holds the container's PID 1 (pid $pid):"
pstree -p -s "$pid"
echo "== ctrmonctl -b BUNDLE status (the control API):"
"$top/build/client/ctrmonctl/ctrmonctl" -b "$work/bundle" status
for _ in $(seq 100); do [ -f "$work/exits/$cid" ] && break; sleep 0.1; done
echo "== the container's log ($work/ctr.log, k8s-file format):"
cat "$work/ctr.log"
echo "== exit status written by ctrmon to $work/exits/$cid: $(cat "$work/exits/$cid")"
