#!/bin/sh
# Build a minimal container root filesystem from Debian's busybox-static:
#   tests/lib/make-rootfs.sh DIR
# DIR/bin holds busybox and one symlink per applet; /etc has root and nobody.
# Idempotent: an existing DIR/bin/busybox is left as is.
set -eu
dir=${1:?usage: make-rootfs.sh DIR}
busybox=${BUSYBOX:-/bin/busybox}
[ -x "$busybox" ] || { echo "make-rootfs: $busybox missing (apt-get install busybox-static)" >&2; exit 1; }
if [ -x "$dir/bin/busybox" ]; then exit 0; fi
mkdir -p "$dir/bin" "$dir/sbin" "$dir/usr/bin" "$dir/etc" "$dir/proc" "$dir/sys" \
         "$dir/dev" "$dir/tmp" "$dir/root" "$dir/run" "$dir/var/tmp"
chmod 1777 "$dir/tmp" "$dir/var/tmp"
cp "$busybox" "$dir/bin/busybox"
for applet in $("$busybox" --list); do
        [ "$applet" = busybox ] || ln -sf busybox "$dir/bin/$applet"
done
cat > "$dir/etc/passwd" <<'PW'
root:x:0:0:root:/root:/bin/sh
nobody:x:65534:65534:nobody:/nonexistent:/bin/false
PW
cat > "$dir/etc/group" <<'GR'
root:x:0:
nogroup:x:65534:
GR
echo "ctrmon-test" > "$dir/etc/hostname"
: > "$dir/etc/resolv.conf"
: > "$dir/etc/hosts"
