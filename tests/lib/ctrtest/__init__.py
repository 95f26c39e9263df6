"""Helpers for driving a conmon-compatible monitor (ctrmon) against real runc.

The package is deliberately free of pytest: fixtures live in
tests/integration/conftest.py and only glue these pieces together.

  rootfs   - build the shared busybox root filesystem once
  bundle   - per-test OCI bundle (config.json from `runc spec`, edited)
  runc     - runc wrapper bound to a private --root state dir
  monitor  - spawn the monitor with sync/start pipes, read its reports
  attach   - SOCK_SEQPACKET attach client
  k8slog   - k8s-file log parser
  procs    - /proc inspection (gone/zombie, children, fds, sessions)
  wait     - bounded polling
"""
