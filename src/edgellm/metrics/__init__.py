"""Pure functions over joint-inference results; definitions in docs/metrics.md."""
