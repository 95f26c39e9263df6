"""ctrmon benchmark: ctrmon vs conmon (and other conmon-compatible monitors)
against real runc. Entry point: bench/run. See bench/README.md."""
