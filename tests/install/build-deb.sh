#!/bin/sh
# Build the Debian packages from this tree without writing next to it:
#   tests/install/build-deb.sh OUTDIR
# Copies the source (no build dirs, no .git) to a temporary directory, runs
# `dpkg-buildpackage -us -uc -b` there (tests skipped: DEB_BUILD_OPTIONS=nocheck)
# and moves the resulting .deb files into OUTDIR. Needs debhelper, dpkg-dev and
# the Build-Depends of debian/control.
set -eu
out=$(realpath -m "${1:?usage: build-deb.sh OUTDIR}")
repo=$(cd "$(dirname "$0")/../.." && pwd)
work=$(mktemp -d /tmp/ctrmon-deb.XXXXXX)
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/ctrmon" "$out"
tar -C "$repo" --exclude=./.git --exclude='./build*' --exclude='./obj-*' --exclude=./debian/.debhelper \
	--exclude=./debian/tmp --exclude=__pycache__ -cf - . |
	tar -C "$work/ctrmon" -xf -
cd "$work/ctrmon"
DEB_BUILD_OPTIONS="nocheck noddebs parallel=$(nproc)" dpkg-buildpackage -us -uc -b
mv "$work"/*.deb "$out"/
ls "$out"
